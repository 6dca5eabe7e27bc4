#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: training_progress
short_description: Tell whether the training daemon makes progress, and stop it when it has stalled
version_added: 2.0.0
description:
  - Reads the daemon's status file (C(status/training_status.json) under O(base_dir)) and its PID file. The daemon
    is B(stalled) when C(updated_at) (without it, C(current_step)) has not moved for O(stall_timeout) seconds, or
    for O(eval_timeout) seconds while the status says it is evaluating (C(phase) C(eval), C(evaluating), ...).
  - C(updated_at) is ISO 8601 (without an offset it is UTC, as C(datetime.utcnow) writes it) or epoch seconds.
    A stamp in the future is reported as clock skew, never as a stall; so is a stamp that lags the file's last
    write by a whole time-zone offset (the daemon wrote local time without an offset).
  - A daemon restarted after the last update is measured from its own start, so a daemon systemd has just
    restarted is not stopped again for the status its predecessor left.
  - Other verdicts, each named in RV(reason), are the status file missing or corrupt (a stall only when it stays
    so for O(stall_timeout) while the daemon runs) and the daemon dead (PID file stale, or naming another process).
    With O(unit), a dead daemon is explained by systemd's view of the unit; a unit systemd gave up on (its start
    limit hit) is a B(hard) failure, and the task fails with the unit's state and last log lines.
  - With O(act=true), a stalled daemon is stopped (SIGTERM to its process group, SIGKILL after O(kill_timeout)
    seconds), and the module verifies that every process of the group is gone and that none of them still holds
    GPU memory (through the same GPU probe as M(gpuops.preflight.rocm_gpu_facts)), then appends the event to
    O(log_file) as one JSON line. It never restarts anything; systemd does (the C(gpuops.preflight.training_watchdog)
    role installs the unit drop-in and the timer that runs this check every minute).
  - Costs a few milliseconds when the daemon makes progress; systemd is asked only about a dead daemon.
options:
  base_dir:
    description: The training host's base folder (C(training_base_dir)); relative file options are under it.
    type: path
    required: true
  status_file:
    description: The daemon's status file, relative to O(base_dir) unless absolute. A relative path may not leave O(base_dir).
    type: str
    default: status/training_status.json
  pid_file:
    description: The daemon's PID file, relative to O(base_dir) unless absolute; V(none) to not look at the daemon
      (then nothing can be stopped).
    type: str
    default: .daemon.pid
  log_file:
    description: Where each stop is recorded (JSON lines), relative to O(base_dir) unless absolute; V(none) records nothing.
    type: str
    default: logs/watchdog.log
  state_file:
    description:
      - Where the step last seen is kept, for a status file without C(updated_at) (relative to O(base_dir) unless
        absolute); V(none) keeps nothing (the file's modification time is used instead).
    type: str
    default: logs/.watchdog_state.json
  stall_timeout:
    description: Seconds without progress after which the daemon is stalled.
    type: int
    default: 900
  eval_timeout:
    description: Seconds without progress after which the daemon is stalled while it evaluates.
    type: int
    default: 1800
  act:
    description:
      - Stop a stalled daemon (not in check mode, where the result says what would be stopped).
      - Only a process proven to be the daemon is stopped, one whose command line contains O(daemon_match);
        without O(daemon_match) nothing is stopped (a warning says so). PID 1, this process and its parents
        are never stopped.
    type: bool
    default: false
  kill_timeout:
    description: Seconds between SIGTERM and SIGKILL when stopping the daemon; keep it equal to the unit's C(TimeoutStopSec).
    type: int
    default: 30
  unit:
    description: The daemon's systemd unit, asked about its state (and last log lines) when the daemon is dead.
    type: str
  daemon_match:
    description:
      - A text the daemon's command line must contain; a PID file naming another process is then stale.
      - With it, a process started a little after its PID file was written (a clock stepped at boot, an NFS
        server's clock) is still the daemon; without it, that is a reused PID.
      - Needed for O(act) to stop anything.
    type: str
  read_timeout:
    description: Seconds allowed for reading the status and PID files (a hung filesystem), and for systemctl.
    type: int
    default: 5
  log_lines:
    description: Journal lines of O(unit) returned when systemd gave up on it.
    type: int
    default: 10
  gpu_tool:
    description: The GPU tool the probe calls when verifying that a stopped daemon's GPU memory is released.
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
  nvidia_smi:
    description: The nvidia-smi executable (a name on E(PATH), or a path); its process list tells the GPU memory of NVIDIA GPUs.
    type: str
    default: nvidia-smi
  sysfs_root:
    description: Where sysfs is mounted (the KFD process list is read there).
    type: path
    default: /sys
  gpu_tool_timeout:
    description:
      - Seconds the GPU probe may take when verifying the GPU memory.
      - Named as in O(gpuops.preflight.node_training_health#module:gpu_tool_timeout); O(gpu_timeout) is its old name.
    type: int
    default: 15
    aliases: [gpu_timeout]
notes:
  - Stopping a daemon of another user needs root (O(act=true) with C(become)).
  - Whether GPU memory is released is known only where the probe can list GPU processes (the KFD process list
    of AMD GPUs, nvidia-smi's for NVIDIA GPUs); elsewhere C(vram_released) in RV(action) is null.
seealso:
  - module: gpuops.preflight.rocm_gpu_facts
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: In check mode nothing is stopped and nothing is written; C(would_stop) in RV(action) names the PID.
  diff_mode:
    support: none
  platform:
    platforms: posix
author:
  - gpuops maintainers (@gpuops)
"""

EXAMPLES = r"""
- name: Is the training daemon making progress?
  gpuops.preflight.training_progress:
    base_dir: /srv/training
  register: progress

- name: Stop it when it has stalled (systemd restarts it)
  gpuops.preflight.training_progress:
    base_dir: /srv/training
    unit: training-daemon.service
    act: true
    kill_timeout: 30
  become: true

- name: Say why
  ansible.builtin.debug:
    msg: "{{ progress.reason }}: {{ progress.message }}"
"""

RETURN = r"""
stalled:
  description: Whether the daemon has stalled (stopping it is the remedy).
  returned: always
  type: bool
reason:
  description: >-
    V(ok), V(step_stall), V(eval_stall), V(status_missing), V(status_corrupt), V(daemon_dead), V(clock_skew),
    V(daemon_error) or V(daemon_stopped).
  returned: always
  type: str
message:
  description: One line saying what was found, and what stopping the daemon did.
  returned: always
  type: str
  sample: "training stalled: updated_at has not changed for 16 min at step 1200 (limit 15 min); stopped PID 4242 with SIGTERM"
seconds_since_update:
  description: Seconds since the last progress (negative for a stamp in the future); null when unknown.
  returned: always
  type: float
status:
  description: The check-model status, V(ok), V(warn), V(fail) or V(unknown) (the status could not be read).
  returned: always
  type: str
severity:
  description: V(hard) when systemd gave up on the unit or the daemon could not be stopped, else V(soft).
  returned: always
  type: str
fix:
  description: The suggested fix; null when all is well.
  returned: always
  type: str
current_step:
  description: The status file's C(current_step).
  returned: always
  type: raw
phase:
  description: What the status says the daemon does (C(phase), else C(state) or C(status)), lower case.
  returned: always
  type: str
updated_at:
  description: C(updated_at) as ISO 8601 UTC.
  returned: always
  type: str
timeout_s:
  description: The threshold applied (O(stall_timeout) or O(eval_timeout)).
  returned: always
  type: int
measured_from:
  description: >-
    What the time without progress is measured from, V(updated_at), V(current_step), V(daemon_start) or V(file_mtime)
    (the status file's last write, when C(updated_at) is no time or looks like local time written without an offset).
  returned: always
  type: str
files:
  description: The files used (status_file, pid_file, log_file, state_file).
  returned: always
  type: dict
daemon:
  description:
    - What the PID file says (pid, alive, unknown, pgid, started_at, message, pid_file, state, stopped,
      namespace_pid); null with O(pid_file=none).
    - C(unknown) when it cannot be told whether the PID is the daemon (C(/proc) hides it, its command line cannot
      be read); a stall is then V(unknown) and nothing is stopped.
    - C(namespace_pid) is the PID file's number when it names the daemon in its container's PID namespace (C(pid)
      is then its PID on this host); C(stopped) when the daemon is stopped (C(state) T or t).
  returned: always
  type: dict
unit:
  description: systemd's view of O(unit) (properties, log, error), looked up when the daemon is dead.
  returned: always
  type: dict
action:
  description:
    - What stopping the daemon did, null when nothing was stopped. In check mode only C(would_stop) and C(pgid).
    - C(refused) and C(pid) when the stalled daemon was not stopped, saying why (no O(daemon_match), a process
      not proven to be the daemon, PID 1).
    - C(terminated) (gone after SIGTERM), C(killed) (SIGKILL was needed), C(gone), C(remaining), C(pids),
      C(vram_released) (true, false, or null when unknown), C(orphans) (C(pid), C(gpu), C(bdf), C(vram_bytes)
      of processes still holding GPU memory).
  returned: always
  type: dict
elapsed_s:
  description: Seconds the check took.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpuops.preflight.plugins.module_utils import _training_progress

POSITIVE = ("stall_timeout", "eval_timeout", "read_timeout", "gpu_tool_timeout")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            base_dir=dict(type="path", required=True),
            status_file=dict(type="str", default=_training_progress.STATUS_FILE),
            pid_file=dict(type="str", default=_training_progress.PID_FILE),
            log_file=dict(type="str", default=_training_progress.LOG_FILE),
            state_file=dict(type="str", default=_training_progress.STATE_FILE),
            stall_timeout=dict(type="int", default=_training_progress.DEFAULT_STALL_TIMEOUT),
            eval_timeout=dict(type="int", default=_training_progress.DEFAULT_EVAL_TIMEOUT),
            act=dict(type="bool", default=False),
            kill_timeout=dict(type="int", default=_training_progress.DEFAULT_KILL_TIMEOUT),
            unit=dict(type="str"),
            daemon_match=dict(type="str"),
            read_timeout=dict(type="int", default=5),
            log_lines=dict(type="int", default=10),
            gpu_tool=dict(type="str", default="auto", choices=["auto", "rocm-smi", "amd-smi", "sysfs"]),
            rocm_smi=dict(type="str", default="rocm-smi"),
            amd_smi=dict(type="str", default="amd-smi"),
            nvidia_smi=dict(type="str", default="nvidia-smi"),
            sysfs_root=dict(type="path", default="/sys"),
            gpu_tool_timeout=dict(type="int", default=15, aliases=["gpu_timeout"]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    for name in POSITIVE:
        if params[name] < 1:
            module.fail_json(msg="%s must be at least 1 second, got %s" % (name, params[name]))
    for name in ("kill_timeout", "log_lines"):
        if params[name] < 0:
            module.fail_json(msg="%s must be 0 or more, got %s" % (name, params[name]))
    try:
        result = _training_progress.watch(
            module, params["base_dir"], status_file=params["status_file"], pid_file=params["pid_file"],
            log_file=params["log_file"], state_file=params["state_file"], stall_timeout=params["stall_timeout"],
            eval_timeout=params["eval_timeout"], act=params["act"], kill_timeout=params["kill_timeout"],
            unit=params["unit"], daemon_match=params["daemon_match"], read_timeout=params["read_timeout"],
            log_lines=params["log_lines"], gpu_timeout=params["gpu_tool_timeout"],
            probe_options=dict(tool=params["gpu_tool"], rocm_smi=params["rocm_smi"], amd_smi=params["amd_smi"],
                               nvidia_smi=params["nvidia_smi"], sysfs_root=params["sysfs_root"],
                               timeout=params["gpu_tool_timeout"]))
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if result["severity"] == "hard" and result["status"] == "fail":
        module.fail_json(msg=result["message"], **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
