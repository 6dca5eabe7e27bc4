#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: nvidia_gpu_facts
short_description: Gather NVIDIA GPU facts and a health verdict per GPU from nvidia-smi and sysfs
version_added: 2.0.0
description:
  - The NVIDIA counterpart of M(gpuops.preflight.rocm_gpu_facts), with the same GPU fact keys and units.
  - Calls C(nvidia-smi -q -x) B(once) under a hard timeout, in a process group of its own that is killed when
    the time is up (a GPU that fell off the bus can make nvidia-smi hang).
  - Parses the XML of every schema (C(nvsmi_device_v10.dtd) to C(v13) and later); also the C(nvidia-smi -q) text,
    the C(--query-gpu) CSV, the default table and the error texts nvidia-smi prints instead (the driver not
    answering, a GPU it cannot open), whatever it was asked. C(N/A), C([Not Supported]), C(Unknown Error) and
    C(ERR!) are unknown values, never zeros; C(ERR!) in one field is a warning, in most fields of a GPU it makes
    the GPU C(degraded).
  - A GPU nvidia-smi cannot open ("Unable to determine the device handle for GPU 0000:01:00.0" or, newer, "for
    GPU0 0000:01:00.0") is C(lost) when the reason is "GPU is lost" or "Unknown Error", C(unknown) when it is
    "Insufficient Permissions" or "Driver Not Loaded" (not the hardware), else C(degraded).
  - Also C(degraded) - a reset required or a drain and reset recommended (an unrecoverable error happened), a
    memory channel or TPC repair pending, unrepairable memory (610+), SRAM errors over NVIDIA's threshold, a
    fabric (NVSwitch systems) whose state is not Completed or whose status is not Success (CUDA fails with error
    802), compute mode Prohibited.
  - Joins the tool's answer with sysfs on the PCI address. A GPU is a PCI function of vendor C(0x10de) and class
    C(0x0300) or C(0x0302) (a card's HD-audio or USB functions are not GPUs). A GPU bound to another driver than
    C(nvidia) is C(degraded); one whose PCI config space reads all-ones is C(lost); one in sysfs that nvidia-smi
    no longer reports is found and named.
  - C(index) is nvidia-smi's (PCI-address order of the GPUs the driver holds), never the device minor number.
  - Reports the processes holding GPU memory, from nvidia-smi's process list, and optionally the state of the
    Multi-Process Service (O(mps)).
options:
  nvidia_smi:
    description: The nvidia-smi executable, a name looked up on E(PATH), or a path.
    type: str
    default: nvidia-smi
  sysfs_root:
    description: Where sysfs is mounted.
    type: path
    default: /sys
  timeout:
    description: Seconds nvidia-smi may run before it is killed (SIGTERM to its process group, SIGKILL 2 s later).
    type: int
    default: 15
  kernel_log:
    description:
      - Also read the kernel log and mark GPUs that fell off the bus C(lost) and GPUs with hardware Xid errors
        C(degraded). V(none) does not read it; V(auto), V(journal) and V(dmesg) read the current boot's log; any
        other value is the path of a file to read.
    type: str
    default: none
  kernel_log_timeout:
    description: Seconds allowed for reading the kernel log.
    type: int
    default: 15
  mps:
    description: Also report the Multi-Process Service (MPS) state in RV(ansible_facts.nvidia_mps).
    type: bool
    default: false
  mps_pipe_dir:
    description: The MPS pipe directory (E(CUDA_MPS_PIPE_DIRECTORY) of the control daemon).
    type: path
    default: /tmp/nvidia-mps
  mps_log_dir:
    description: The MPS log directory (E(CUDA_MPS_LOG_DIRECTORY) of the control daemon).
    type: path
    default: /var/log/nvidia-mps
  mps_control:
    description: The MPS control program, a name looked up on E(PATH), or a path.
    type: str
    default: nvidia-cuda-mps-control
  mps_timeout:
    description: Seconds the MPS control program may take to list the servers.
    type: int
    default: 5
  proc_root:
    description: Where procfs is mounted (read to find the MPS control daemon and servers).
    type: path
    default: /proc
notes:
  - Runs no C(sudo); nvidia-smi needs no root to read. Reading the kernel log may need root when
    C(kernel.dmesg_restrict=1), and seeing other users' MPS processes needs root where /proc is mounted with
    C(hidepid).
  - C(xid_errors) lists a GPU's Xid errors from the kernel log when O(kernel_log) is set; it is empty otherwise.
seealso:
  - module: gpuops.preflight.rocm_gpu_facts
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
    details: It only reads; check mode changes nothing.
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    platforms: posix
author:
  - gpuops maintainers (@gpuops)
"""

EXAMPLES = r"""
- name: Gather NVIDIA GPU facts
  gpuops.preflight.nvidia_gpu_facts:
    timeout: 15

- name: Gather NVIDIA GPU facts with Xid errors from the kernel log, and the MPS state
  gpuops.preflight.nvidia_gpu_facts:
    kernel_log: auto
    mps: true
  become: true

- name: List GPUs that are not healthy
  ansible.builtin.debug:
    msg: "{{ ansible_facts['nvidia_gpus'] | rejectattr('health', 'eq', 'ok') | list }}"
"""

RETURN = r"""
ansible_facts:
  description: NVIDIA GPU facts.
  returned: always
  type: dict
  contains:
    nvidia_gpus:
      description:
        - One entry per GPU, sorted by nvidia-smi index. Metrics are null when unknown.
        - C(health) is V(ok), V(degraded), V(lost) or V(unknown); C(problems) says why it is not V(ok);
          C(warnings) lists what is worth a look on a GPU that is still usable (a field read as C(ERR!),
          lifetime ECC errors, a pending row remap or page retirement, clocks held down by a hardware slowdown,
          a corrupted infoROM).
        - C(hidden_from_tool) says why nvidia-smi cannot see a GPU of the host here (the module runs in a
          Slurm, PBS or LSF job or a container); such a GPU is V(unknown), never lost. Null otherwise.
        - C(ecc) has C(mode), C(volatile_uncorrected), C(aggregate_uncorrected), C(volatile_corrected) and
          C(aggregate_corrected); C(retired_pages) has C(single_bit), C(double_bit) and C(pending);
          C(remapped_rows) has C(corrected), C(uncorrected), C(pending) and C(failure);
          C(clocks_event_reasons) lists the active ones.
        - C(implausible_readings) lists the readings of C(temperature_edge_c), C(power_w), C(busy_percent),
          C(vram_total_bytes) and C(vram_used_bytes) that are no measurement (outside the range any GPU can read,
          busy outside 0-100 %, temperature outside -40..500 C, power outside 0-4000 W, VRAM outside 0-1 PiB; not
          finite, C(1e999) or a 5000-digit number; or what nvidia-smi printed instead of a value, C(N/A),
          C([Unknown Error]), C(ERR!), C([GPU requires reset])), and a process's memory outside the VRAM range;
          each C({field, value, unit, source}) with C(value) as text and C(source) V(nvidia-smi) (or
          C(nvidia-smi process <pid>)). Such a reading is not used (the metric is null), and the checks that need it
          are unknown; V([]) when there is none. N/A utilisation on a GPU with MIG enabled is normal and not listed.
          A GPU whose every utilisation, temperature and power reading is implausible (all-ones, as when its firmware
          stopped answering), with no plausible one, is V(unknown), never V(ok).
      returned: always
      type: list
      elements: dict
      sample:
        - index: 0
          bdf: "0000:81:00.0"
          vendor: nvidia
          drm_card: null
          model: NVIDIA RTX A5000
          device_id: "0x2231"
          gfx_version: null
          uuid: GPU-12345678-aaaa-bbbb-cccc-0123456789ab
          vram_total_bytes: 25757220864
          vram_used_bytes: 23526899712
          vram_free_bytes: 1759510528
          busy_percent: 0
          temperature_edge_c: 13.0
          power_w: 6.41
          perf_level: null
          performance_state: P8
          runtime_status: active
          persistence_mode: true
          mig_mode: null
          ecc: {mode: disabled, volatile_uncorrected: null, aggregate_uncorrected: null,
                volatile_corrected: null, aggregate_corrected: null}
          retired_pages: {single_bit: null, double_bit: null, pending: null}
          remapped_rows: {corrected: 0, uncorrected: 0, pending: false, failure: false}
          clocks_event_reasons: [gpu_idle]
          xid_errors: []
          health: ok
          problems: []
          warnings: []
          sources: [nvidia-smi, sysfs]
          in_tool_output: true
          responding: true
          hidden_from_tool: null
          implausible_readings: []
    nvidia_gpu_count:
      description: The number of GPUs found (all of them, whatever their health).
      returned: always
      type: int
    nvidia_gpu_tool:
      description: How nvidia-smi behaved.
      returned: always
      type: dict
      contains:
        name:
          description: V(nvidia-smi).
          type: str
          returned: always
        path:
          description: The tool's path; null when it cannot be used.
          type: str
          returned: always
        outcome:
          description:
            - V(answered), V(gpu_errors) (only per-GPU failures), V(no_driver) (the driver does not answer),
              V(no_data), V(unparseable), V(failed), V(timeout), V(missing) (not found or not executable) or
              V(error).
          type: str
          returned: always
        answered: {description: Whether nvidia-smi described at least one GPU., type: bool, returned: always}
        reason:
          description: Why nvidia-smi gave no answer (naming the path when it is missing or not executable); null when it answered.
          type: str
          returned: always
        format: {description: "What nvidia-smi printed: V(xml), V(text) (the -q text), V(csv), V(table), V(list) (-L) or null.",
                 type: str, returned: always}
        schema:
          description: The XML schema (V(v10) ... V(v13)) when the DOCTYPE names it, else null.
          type: str
          returned: always
        driver_version: {description: The driver version nvidia-smi reported., type: str, returned: always}
        elapsed_s: {description: Seconds the tool ran., type: float, returned: always}
        timed_out: {description: Whether the tool was killed at its timeout., type: bool, returned: always}
    nvidia_gpu_processes:
      description: Processes holding GPU memory, from nvidia-smi's process list (the shape of rocm_gpu_processes).
      returned: always
      type: list
      elements: dict
      sample:
        - {pid: 100477, name: llama-server, bdf: "0000:81:00.0", index: 0, vram_bytes: 23519559680, vendor: nvidia,
           type: C, command: /root/src/llama.cpp/build/bin/llama-server, gpu_instance_id: null}
    nvidia_gpu_processes_available:
      description: Whether nvidia-smi gave a process list (so an empty RV(ansible_facts.nvidia_gpu_processes) means none).
      returned: always
      type: bool
    nvidia_gpu_sysfs_unread:
      description:
        - Why C(/sys/bus/pci/devices) could not be listed (permission denied, missing in a container); null when it
          could. When set, no GPU seen in sysfs means the GPUs on the bus are unknown, not that there are none.
      returned: always
      type: str
    nvidia_mps:
      description: The Multi-Process Service state.
      returned: when O(mps=true)
      type: dict
      contains:
        control_daemon_running:
          description: >-
            Whether C(nvidia-cuda-mps-control -d) runs for O(mps_pipe_dir) (its PID file there, or a daemon whose
            C(CUDA_MPS_PIPE_DIRECTORY) is that folder); null when it cannot be told (/proc unreadable, or a daemon
            whose environment cannot be read while the folder holds no control entry).
          type: bool
          returned: always
        control_daemon_pid: {description: Its process id., type: int, returned: always}
        pipe_dir:
          description: >-
            {path, exists, writable, control_pipe}: the pipe directory and whether the daemon's C(control) entry is
            there (a UNIX socket on current drivers, a FIFO on older ones; null when it cannot be examined).
            C(exists) and C(writable) are null, and C(error) says why, when the folder cannot be looked at (no search
            permission on a folder above it): not a missing folder.
          type: dict
          returned: always
        log_dir:
          description: "{path, exists, writable}: the log directory; C(exists) and C(writable) null (and C(error)) when it cannot be looked at."
          type: dict
          returned: always
        daemons_elsewhere:
          description: Control daemons that serve another pipe directory, as {pid, pipe_dir}.
          type: list
          elements: dict
          returned: always
        servers:
          description: The MPS servers C(get_server_list) names, as {pid, uid, user, command}.
          type: list
          elements: dict
          returned: always
        error: {description: What could not be read or asked; null when all went well., type: str, returned: always}
kernel_log:
  description: What was read from the kernel log, with O(kernel_log) set.
  returned: when O(kernel_log) is not V(none)
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpuops.preflight.plugins.module_utils import _gpu_facts, _gpus, _mps


def main():
    module = AnsibleModule(
        argument_spec=dict(
            nvidia_smi=dict(type="str", default="nvidia-smi"),
            sysfs_root=dict(type="path", default="/sys"),
            timeout=dict(type="int", default=15),
            kernel_log=dict(type="str", default="none"),
            kernel_log_timeout=dict(type="int", default=15),
            mps=dict(type="bool", default=False),
            mps_pipe_dir=dict(type="path", default="/tmp/nvidia-mps"),
            mps_log_dir=dict(type="path", default="/var/log/nvidia-mps"),
            mps_control=dict(type="str", default="nvidia-cuda-mps-control"),
            mps_timeout=dict(type="int", default=5),
            proc_root=dict(type="path", default="/proc"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    _gpu_facts.check_timeouts(module, ("timeout", "kernel_log_timeout", "mps_timeout"))
    findings, log_info = _gpu_facts.kernel_findings(module, vendors="nvidia")
    result = _gpu_facts.probe(module, findings, vendor=_gpus.NVIDIA, nvidia_smi=params["nvidia_smi"],
                              sysfs_root=params["sysfs_root"], timeout=params["timeout"], proc_root=params["proc_root"])
    tool = result["tool"]
    if not tool["answered"]:
        module.warn("nvidia-smi gave no answer: %s" % tool["reason"])
    if result.get("sysfs_unread"):
        module.warn("sysfs: %s" % result["sysfs_unread"])
    facts = dict(
        nvidia_gpus=result["gpus"],
        nvidia_gpu_count=result["count"],
        nvidia_gpu_tool=tool,
        nvidia_gpu_processes=result["processes"],
        nvidia_gpu_processes_available=result["processes_available"],
        nvidia_gpu_sysfs_unread=result.get("sysfs_unread"),
    )
    if params["mps"]:
        facts["nvidia_mps"] = _mps.status(module, pipe_dir=params["mps_pipe_dir"], log_dir=params["mps_log_dir"],
                                          control=params["mps_control"], timeout=params["mps_timeout"],
                                          proc_root=params["proc_root"])
    output = dict(changed=False, ansible_facts=facts)
    if log_info is not None:
        output["kernel_log"] = log_info
    module.exit_json(**output)


if __name__ == "__main__":
    main()
