# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the preflight family, declared.

Every check of the preflight is one ``CheckSpec`` below: its stable name, hard or soft, default
timeout, what it checks, its suggested fix, its operator code and label, the collectors it needs
and its evaluation. The host runner (``_host_runner``) runs the host checks in one module run per
host (``node_preflight``); the controller judges every host's results once (``_summary``).

Check names are part of the interface (``preflight_skip``, ``preflight_downgrade``, the summary,
WATCHER's log lines): add new ones, never rename.
"""

from __future__ import annotations

from ansible_collections.gpuops.preflight.plugins.module_utils import _gpu_checks, _ramdisk
from ansible_collections.gpuops.preflight.plugins.module_utils._checks import (
    CONTROLLER, HARD, SOFT, UNKNOWN, CheckSpec, Family, problem, registry)
from ansible_collections.gpuops.preflight.plugins.module_utils._gpu_checks import GPU_NEEDS, KERNEL_LOG_NEEDS
from ansible_collections.gpuops.preflight.plugins.module_utils._host_runner import Collector

GIB = 1024.0 ** 3

# Suggested fixes per problem code of _ramdisk (the check's own fix covers the rest).
FILE_FIXES = {
    "missing_step_folder": "Stage the step's files: the step that produces them did not run or wrote elsewhere.",
    "escapes_root": "Replace the link or name with a regular file inside the step's folder; a required file must "
                    "not point outside the ramdisk.",
    "not_absolute": "Give input files as absolute paths in preflight_steps.",
    "not_regular": "Replace it with a regular file.",
    "unreadable": "Fix the file's permissions for the user the pipeline runs as.",
    "invalid_json": "Re-create the file: it is truncated or corrupted (a full disk or an interrupted write).",
    "too_old": "Re-run the step that produces it: it is stale.",
    "too_large": "Raise preflight_json_max_mb to validate it (it is read whole into memory), or set "
                 "preflight_validate_json: never if the step writes JSON this large on purpose.",
    "missing_root": "Create the ramdisk root (mkdir -p) or correct preflight_ramdisk_root.",
    "not_tmpfs": "Put the ramdisk root on a tmpfs (/dev/shm is one), or set preflight_require_tmpfs: false.",
    "low_inodes": "Remove old step folders (many small files use inodes, not space), or give the tmpfs more "
                  "inodes (mount -o remount,nr_inodes=...).",
    "read_only": "Remount the ramdisk read-write (mount -o remount,rw <mount point>), or point preflight_ramdisk_root "
                 "at a writable tmpfs.",
    "unsafe_root": "Re-create the ramdisk root as the pipeline's user, writable by nobody else (rm -rf it, "
                   "mkdir -m 0755), and re-stage the step's files.",
}


# Suggested fixes where the problem is that it could not be told (``unknown``), per problem code.
UNKNOWN_FIXES = {
    "unreadable": "Connect the preflight as the pipeline's user (ansible_user), or let its user search the folder "
                  "the message names; then it can tell whether the pipeline can read the step's files.",
}


def _file_problems(spec, found):
    # what could not be told (no mount table, no size from statvfs, a folder the preflight may not search) is
    # unknown, never a broken ramdisk
    return [problem(spec.name, UNKNOWN if item.get("unknown") else spec.fail_status, item["message"],
                    (UNKNOWN_FIXES if item.get("unknown") else {}).get(item.get("problem"))
                    or FILE_FIXES.get(item.get("problem"), spec.fix),
                    file=item.get("file"), code=item.get("problem"))
            for item in found]


# ---------------------------------------------------------------- collectors


def _collect_ramdisk(ctx, _deadline):
    params = ctx.params
    return _ramdisk.check_step_files(params["ramdisk_root"], params["step"], params["ramdisk_files"],
                                     validate_json=params["validate_json"], max_age=params["max_age"],
                                     json_max_bytes=params["json_max_mb"] * _ramdisk.MIB, folder=params.get("ramdisk_dir"))


def _collect_inputs(ctx, _deadline):
    return _ramdisk.check_input_files(ctx.params["input_files"], validate_json=ctx.params["validate_json"],
                                      json_max_bytes=ctx.params["json_max_mb"] * _ramdisk.MIB)


def _collect_space(ctx, _deadline):
    params = ctx.params
    return _ramdisk.check_space(params["ramdisk_root"], min_free_bytes=params["ramdisk_min_free_mb"] * 1024 * 1024,
                                require_tmpfs=params["require_tmpfs"])


def _step_folder_text(params):
    try:
        return _ramdisk.step_folder(params["ramdisk_root"], params["step"], params.get("ramdisk_dir"))
    except ValueError:
        return "%s (step %s)" % (params["ramdisk_root"], params["step"])


COLLECTORS = {
    # Nothing required for this step: its folder need not even exist.
    "ramdisk": Collector("ramdisk", _collect_ramdisk, lambda params: "checking %s" % _step_folder_text(params),
                         wanted=lambda params: bool(params["ramdisk_files"])),
    "inputs": Collector("inputs", _collect_inputs, lambda params: "checking the input files"),
    "space": Collector("space", _collect_space, lambda params: "checking %s" % params["ramdisk_root"]),
}
COLLECTORS.update(_gpu_checks.collectors())


# ---------------------------------------------------------------- evaluations


def evaluate_ramdisk(ctx, spec):
    value = ctx.value("ramdisk")
    if value is None:
        return [], "no ramdisk files required for step %s" % ctx.params["step"]
    found, info = value
    return _file_problems(spec, found), "%d file(s) staged" % len(ctx.params["ramdisk_files"]), {"files": info}


def evaluate_inputs(ctx, spec):
    found, info = ctx.value("inputs")
    return _file_problems(spec, found), "%d input file(s) present" % len(ctx.params["input_files"]), {"files": info}


def evaluate_space(ctx, spec):
    found, info = ctx.value("space")
    free = info.get("free_bytes")
    where = info.get("mount_point") or "ramdisk"
    text = "%s: free space unknown (%s)" % (where, info.get("fstype") or "?") if free is None else \
        "%s: %.1f GiB free (%s)" % (where, free / GIB, info.get("fstype") or "?")
    return _file_problems(spec, found), text, info


def _run_budget_applies(inputs):
    # Only step 1 searches parameters, and the check needs both variables (docs/RUN_ADVICE.md).
    if inputs.get("step") != "1":
        return "only step 1 runs the parameter search"
    if inputs.get("run_budget_params") in (None, "") or inputs.get("run_history_file") in (None, ""):
        return "run_budget_params or run_history_file not set"
    return None


# ---------------------------------------------------------------- the family

CHECKS = registry(
    CheckSpec("ssh", HARD, 10, "The host answers over SSH.",
              "Check that the host is up and sshd runs, and that its address in the inventory is right.",
              "SSH_UNREACHABLE", "SSH", where=CONTROLLER),
    CheckSpec("probe", HARD, 90, "The host-side preflight module ran and reported.",
              "Run the preflight with -vvv to see the module error; check that python3 works on the host.",
              "PROBE_FAILED", "Probe", where=CONTROLLER),
    CheckSpec("run_budget", SOFT, 10, "The planned step-1 trials and seeds do not repeat a run history says failed.",
              "Follow the suggestion (more trials, fewer seeds), or accept the plan knowingly.",
              "RUN_BUDGET_RISKY", "Run budget", where=CONTROLLER, evaluate="_advice.evaluate_run_budget",
              applies=_run_budget_applies),
    CheckSpec("ramdisk", HARD, 10, "The step's files are staged in the ramdisk: present, regular, non-empty, valid.",
              "Re-stage the step's files under the ramdisk folder (re-run the step that produces them).",
              "RAMDISK_NOT_READY", "Ramdisk", needs=("ramdisk",), evaluate=evaluate_ramdisk),
    CheckSpec("inputs", HARD, 10, "The step's input files exist and are readable.",
              "Restore the input file at that path, or correct preflight_steps in the inventory.",
              "INPUT_MISSING", "Inputs", needs=("inputs",), evaluate=evaluate_inputs),
    CheckSpec("gpu_health", HARD, 30,
              "No GPU is lost from the bus, degraded (SMU failures; uncorrectable ECC, pending row remaps, hardware "
              "Xids) or no longer answering its GPU tool.",
              "Reboot the rig (a GPU in this state rarely recovers without a power cycle), "
              "or add the GPU to excluded_gpus for this host.",
              "GPU_UNHEALTHY", "GPU health", needs=GPU_NEEDS, evaluate=_gpu_checks.evaluate_health),
    CheckSpec("gpu_available", HARD, 30,
              "A rig expected to have GPUs has at least one usable (not excluded, lost or degraded).",
              "Reboot the rig or repair its GPUs before the step; set expected_gpu_count: 0 for a host that has none.",
              "NO_USABLE_GPU", "GPU available", needs=GPU_NEEDS, evaluate=_gpu_checks.evaluate_available),
    CheckSpec("gpu_count", SOFT, 30, "The responding GPU count matches expected_gpu_count minus excluded_gpus.",
              "Find the missing GPU (lspci, dmesg, riser and power cables), or correct expected_gpu_count.",
              "GPU_COUNT_MISMATCH", "GPU count", needs=GPU_NEEDS, evaluate=_gpu_checks.evaluate_count),
    CheckSpec("kernel_log", HARD, 15,
              "The kernel log holds no GPU driver failures (amdgpu: failed resets, hangs, RAS errors; NVIDIA: "
              "hardware Xids).",
              "Read the kernel log on the host (journalctl -k -b); reboot the rig to clear a GPU that failed a reset.",
              "KERNEL_LOG_ERRORS", "Kernel log", needs=KERNEL_LOG_NEEDS, evaluate=_gpu_checks.evaluate_kernel_log,
              applies=_gpu_checks.kernel_log_disabled),
    CheckSpec("vram", SOFT, 30, "No process still holds VRAM on the GPUs.",
              "Stop the leftover process (kill <pid>), or run the cleanup playbook for the previous step.",
              "VRAM_IN_USE", "VRAM", needs=GPU_NEEDS, evaluate=_gpu_checks.evaluate_vram),
    CheckSpec("gpu_temperature", SOFT, 30, "No GPU is hotter than the warning threshold before work starts.",
              "Check the rig's fans and airflow; let the GPUs cool down before a long step.",
              "GPU_TOO_HOT", "GPU temperature", needs=GPU_NEEDS, evaluate=_gpu_checks.evaluate_temperature),
    CheckSpec("ramdisk_space", SOFT, 10, "The ramdisk root is a tmpfs with enough free space.",
              "Free space in the ramdisk (remove old step folders), or enlarge the tmpfs.",
              "RAMDISK_LOW_SPACE", "Ramdisk space", needs=("space",), evaluate=evaluate_space),
)

FAMILY = Family("preflight", "Preflight", CHECKS, COLLECTORS, node_module="node_preflight",
                stats_key="gpuops_preflight", file_prefix="summary", option_prefix="preflight",
                defined_steps_only=True)
