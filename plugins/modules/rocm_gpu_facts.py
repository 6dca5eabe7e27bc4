#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: rocm_gpu_facts
short_description: Gather AMD GPU facts and a health verdict per GPU from rocm-smi, amd-smi and sysfs
version_added: 1.0.0
description:
  - Calls the GPU tool B(once) (C(rocm-smi), or C(amd-smi) where rocm-smi is absent) under a hard timeout, in a
    process group of its own that is killed when the time is up. A rig with a dead SMU makes rocm-smi take
    minutes or hang for ever.
  - Parses rocm-smi JSON of every ROCm release from 2.x to 7.x (keys differ between versions, values are
    strings, failed metrics are omitted, a dead GPU can vanish from the output, the exit status is 0 on
    failure) and amd-smi JSON in both of its shapes (a list, or an object with a C(gpu_data) list).
  - Joins the tool's output with sysfs on the PCI address, never on C(cardN). Reads sysfs directly too, for
    identity and liveness (a GPU whose PCI config space reads all-ones is lost from the bus); when the tool is
    missing, hangs or prints nothing, the sysfs facts are the fallback.
  - Metrics are read from sysfs only for GPUs the tool did not report or gave neither temperature nor power for
    (each such read costs SMU traffic), and never from a runtime-suspended GPU, which a read would wake. A GPU
    the tool lists whose temperature and power neither the tool nor sysfs can read is C(degraded) (its SMU may
    be hung), unless amdgpu refused the reads with EPERM (in a reset, or not runtime-active), which only warns. A GPU
    whose C(power/runtime_status) reads C(error) (a failed runtime suspend or resume, latched) is C(degraded).
  - A tool that answers but lists no GPU (rocm-smi's C(No JSON data to report)) makes every GPU sysfs shows
    bound to amdgpu C(degraded), as one GPU that vanished from its output is.
  - Reports the processes holding VRAM, from the KFD sysfs tree.
  - Optionally reads the kernel log, so that a GPU with SMU failures (which only the kernel log shows, as
    C(0xFFFFFFFF) responses), a failed reset or init, uncorrectable RAS errors or an unrecovered hang is
    reported C(degraded), and one that fell off the bus C(lost).
options:
  tool:
    description:
      - Which GPU tool to call. V(auto) calls rocm-smi when it is installed, else amd-smi.
      - V(sysfs) calls no tool; facts then come from sysfs only.
    type: str
    choices: [auto, rocm-smi, amd-smi, sysfs]
    default: auto
  rocm_smi:
    description: The rocm-smi executable, a name looked up on E(PATH) and in C(/opt/rocm/bin), or a path.
    type: str
    default: rocm-smi
  amd_smi:
    description: The amd-smi executable, a name looked up on E(PATH) and in C(/opt/rocm/bin), or a path.
    type: str
    default: amd-smi
  sysfs_root:
    description: Where sysfs is mounted.
    type: path
    default: /sys
  timeout:
    description: Seconds the GPU tool may run before it is killed (SIGTERM to its process group, SIGKILL 2 s later).
    type: int
    default: 15
  metrics_timeout:
    description: Seconds allowed for the sysfs metric reads of each GPU the tool did not report.
    type: int
    default: 5
  index_order:
    description:
      - How the tool numbers GPUs, used to give a GPU that vanished from its output its place back.
      - V(auto) tells it from the tool's output (rocm-smi numbers GPUs in PCI-address order since ROCm 6.0 and
        in DRM card order before) or from the ROCm release beside the tool; V(bdf) and V(drm) force one.
    type: str
    choices: [auto, bdf, drm]
    default: auto
  kernel_log:
    description:
      - Also read the kernel log and mark GPUs with hard findings (SMU failures, a failed reset or init,
        uncorrectable RAS errors, an unrecovered hang, KFD skipping them) C(degraded) and GPUs that fell off the
        bus C(lost). V(none) does not read it; V(auto), V(journal) and V(dmesg) read the current boot's log; any
        other value is the path of a file to read.
    type: str
    default: none
  kernel_log_timeout:
    description: Seconds allowed for reading the kernel log.
    type: int
    default: 15
notes:
  - Runs no C(sudo); rocm-smi and amd-smi need no root to read. Reading the kernel log may need root when
    C(kernel.dmesg_restrict=1).
seealso:
  - module: gpuops.preflight.gpu_kernel_log_info
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
- name: Gather GPU facts
  gpuops.preflight.rocm_gpu_facts:
    timeout: 15

- name: Gather GPU facts including SMU failures from the kernel log
  gpuops.preflight.rocm_gpu_facts:
    kernel_log: auto
  become: true

- name: List GPUs that are not healthy
  ansible.builtin.debug:
    msg: "{{ ansible_facts['rocm_gpus'] | rejectattr('health', 'eq', 'ok') | list }}"
"""

RETURN = r"""
ansible_facts:
  description: GPU facts.
  returned: always
  type: dict
  contains:
    rocm_gpus:
      description:
        - One entry per GPU, sorted by rocm-smi index. Metrics are null when unknown.
        - C(health) is V(ok), V(degraded), V(lost) or V(unknown); C(problems) says why it is not V(ok);
          C(warnings) lists what is worth a look on a GPU that is still usable. C(vendor) is V(amd).
        - On a host with NVIDIA GPUs too, only the AMD GPUs are listed here (see M(gpuops.preflight.nvidia_gpu_facts)).
        - C(implausible_readings) lists the readings no GPU can give (busy outside 0-100 %, temperature outside
          -40..500 C, power outside 0-4000 W, VRAM outside 0-1 PiB, or not finite; for example 65535 C, negative watts,
          C(inf), 18446744073709551615 bytes), each
          C({field, value, unit, source}) with C(value) as text and C(source) V(rocm-smi), V(amd-smi) or V(sysfs).
          Such a reading is not used (the metric stays null); V([]) when there is none. A GPU whose every busy,
          temperature and power reading is implausible (all-ones, as when its SMU stopped answering), with no
          plausible one from any source, is V(unknown), never V(ok).
      returned: always
      type: list
      elements: dict
      sample:
        - index: 0
          bdf: "0000:0b:00.0"
          vendor: amd
          drm_card: 1
          model: "Navi 23 [Radeon RX 6600/6600 XT/6600M]"
          device_id: "0x73ff"
          gfx_version: gfx1032
          vram_total_bytes: 8573157376
          vram_used_bytes: 15728640
          busy_percent: 0
          temperature_edge_c: 41.0
          power_w: 6.0
          perf_level: auto
          runtime_status: active
          health: ok
          problems: []
          warnings: []
          sources: [rocm-smi, sysfs]
          in_tool_output: true
          responding: true
          implausible_readings: []
    rocm_gpu_count:
      description: The number of GPUs found (all of them, whatever their health).
      returned: always
      type: int
    rocm_gpu_tool:
      description: How the GPU tool behaved.
      returned: always
      type: dict
      contains:
        name:
          description: The tool used, V(rocm-smi) or V(amd-smi); null with O(tool=sysfs).
          type: str
          returned: always
        path:
          description: The tool's path; null when it is not installed.
          type: str
          returned: always
        outcome:
          description:
            - V(answered), V(no_data), V(no_driver), V(none_seen) (the tool reaches no AMD GPU at all, C(No AMD GPUs
              specified), so it cannot tell), V(mutex), V(unparseable), V(failed), V(timeout), V(missing), V(error) or
              V(not_used).
          type: str
          returned: always
        answered: {description: Whether the tool reported at least one GPU., type: bool, returned: always}
        listed:
          description:
            - Whether the tool answered with its list of GPUs, at least one or none (V(no_data)). A GPU that sysfs
              shows bound to amdgpu and the list leaves out is C(degraded), as one that vanished from the output.
          type: bool
          returned: always
        reason:
          description: Why the tool gave no answer (naming the path when it is missing or not executable); null when it answered.
          type: str
          returned: always
        elapsed_s: {description: Seconds the tool ran., type: float, returned: always}
        timed_out: {description: Whether the tool was killed at its timeout., type: bool, returned: always}
        index_order:
          description: How GPUs are numbered, V(bdf) or V(drm).
          type: str
          returned: always
    rocm_gpu_sysfs_unread:
      description:
        - Why C(/sys/bus/pci/devices) could not be listed (permission denied, missing in a container); null when it
          could. When set, no GPU seen in sysfs means the GPUs on the bus are unknown, not that there are none.
      returned: always
      type: str
      sample: "cannot list /sys/bus/pci/devices: EACCES, permission denied: which GPUs are on the PCI bus is unknown, not none"
    rocm_gpu_processes:
      description: Processes known to KFD with the VRAM they hold per GPU (0 bytes for a process that only opened it).
      returned: always
      type: list
      elements: dict
      sample:
        - {pid: 4242, name: python3, bdf: "0000:0b:00.0", index: 0, gpu_id: 41840, vram_bytes: 2147483648}
kernel_log:
  description: What was read from the kernel log, with O(kernel_log) set.
  returned: when O(kernel_log) is not V(none)
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpuops.preflight.plugins.module_utils import _gpu_facts, _gpus


def main():
    module = AnsibleModule(
        argument_spec=dict(
            tool=dict(type="str", default="auto", choices=["auto", "rocm-smi", "amd-smi", "sysfs"]),
            rocm_smi=dict(type="str", default="rocm-smi"),
            amd_smi=dict(type="str", default="amd-smi"),
            sysfs_root=dict(type="path", default="/sys"),
            timeout=dict(type="int", default=15),
            metrics_timeout=dict(type="int", default=5),
            index_order=dict(type="str", default="auto", choices=["auto", "bdf", "drm"]),
            kernel_log=dict(type="str", default="none"),
            kernel_log_timeout=dict(type="int", default=15),
        ),
        supports_check_mode=True,
    )
    _gpu_facts.check_timeouts(module, ("timeout", "metrics_timeout", "kernel_log_timeout"))

    findings, log_info = _gpu_facts.kernel_findings(module, vendors="amd")
    result = _gpu_facts.probe(
        module,
        findings,
        vendor=_gpus.AMD,
        tool=module.params["tool"],
        rocm_smi=module.params["rocm_smi"],
        amd_smi=module.params["amd_smi"],
        sysfs_root=module.params["sysfs_root"],
        timeout=module.params["timeout"],
        metrics_timeout=module.params["metrics_timeout"],
        index_order=module.params["index_order"],
    )
    if not result["tool"]["answered"] and result["tool"]["outcome"] != _gpus.NOT_USED:
        module.warn("GPU tool gave no answer: %s" % result["tool"]["reason"])
    if result.get("sysfs_unread"):
        module.warn("sysfs: %s" % result["sysfs_unread"])
    output = dict(
        changed=False,
        ansible_facts=dict(
            rocm_gpus=result["gpus"],
            rocm_gpu_count=result["count"],
            rocm_gpu_tool=result["tool"],
            rocm_gpu_processes=result["processes"],
            rocm_gpu_sysfs_unread=result.get("sysfs_unread"),
        ),
    )
    if log_info is not None:
        output["kernel_log"] = log_info
    module.exit_json(**output)


if __name__ == "__main__":
    main()
