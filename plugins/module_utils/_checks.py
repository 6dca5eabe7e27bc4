# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the one check model every check of the collection shares.

A *check* has a stable name, a severity (hard: its failure blocks the step; soft: it only warns)
and a default timeout. Running a check gives a *result* (ok / warn / fail / unknown / skipped)
made of *problems*; each problem carries a one-line message and a suggested fix, and names the
GPU it is about when there is one. The controller judges problems once, at the end
(see ``judge``): only a ``fail`` of a hard check blocks, and never for an excluded GPU or a
downgraded check. ``unknown`` means the check could not run (tool missing, timed out): it is never
a pass and never a hardware verdict.

Results and problems are plain dicts so that they cross the module/controller boundary as JSON.
"""

from __future__ import annotations

HARD = "hard"
SOFT = "soft"

OK = "ok"
WARN = "warn"
FAIL = "fail"
UNKNOWN = "unknown"
SKIPPED = "skipped"
_RANK = {SKIPPED: 0, OK: 1, WARN: 2, UNKNOWN: 3, FAIL: 4}

# Where a check runs: on the controller (it judges the connection or the module run itself),
# or on the host, inside the one module run per host.
CONTROLLER = "controller"
HOST = "host"


class CheckSpec(object):
    """The static description of a check: the part that is an interface."""

    __slots__ = ("name", "severity", "timeout", "summary", "fix", "where")

    def __init__(self, name, severity, timeout, summary, fix, where=HOST):
        self.name = name
        self.severity = severity
        self.timeout = timeout
        self.summary = summary
        self.fix = fix
        self.where = where


def _registry(*specs):
    names = [s.name for s in specs]
    if len(names) != len(set(names)):
        raise ValueError("duplicate check name in %s" % names)
    return dict((s.name, s) for s in specs)


# The preflight's checks. Names are part of the interface (preflight_skip, preflight_downgrade,
# the summary document, WATCHER's log lines): add new ones, never rename.
PREFLIGHT_CHECKS = _registry(
    CheckSpec("ssh", HARD, 10, "The host answers over SSH.",
              "Check that the host is up and sshd runs, and that its address in the inventory is right.",
              where=CONTROLLER),
    CheckSpec("probe", HARD, 90, "The host-side preflight module ran and reported.",
              "Run the preflight with -vvv to see the module error; check that python3 works on the host.",
              where=CONTROLLER),
    CheckSpec("ramdisk", HARD, 10, "The step's files are staged in the ramdisk: present, regular, non-empty, valid.",
              "Re-stage the step's files under the ramdisk folder (re-run the step that produces them)."),
    CheckSpec("inputs", HARD, 10, "The step's input files exist and are readable.",
              "Restore the input file at that path, or correct preflight_steps in the inventory."),
    CheckSpec("gpu_health", HARD, 30, "No GPU is lost from the bus, has SMU failures, or stopped answering the GPU tool.",
              "Reboot the rig (a GPU in this state rarely recovers without a power cycle), "
              "or add the GPU to excluded_gpus for this host."),
    CheckSpec("gpu_count", SOFT, 30, "The responding GPU count matches expected_gpu_count minus excluded_gpus.",
              "Find the missing GPU (lspci, dmesg, riser and power cables), or correct expected_gpu_count."),
    CheckSpec("kernel_log", HARD, 15, "The kernel log holds no amdgpu failures (ring timeouts, failed resets, RAS errors).",
              "Read the kernel log on the host (journalctl -k -b); reboot the rig to clear a GPU that failed a reset."),
    CheckSpec("vram", SOFT, 30, "No process still holds VRAM on the GPUs.",
              "Stop the leftover process (kill <pid>), or run the cleanup playbook for the previous step."),
    CheckSpec("gpu_temperature", SOFT, 30, "No GPU is hotter than the warning threshold before work starts.",
              "Check the rig's fans and airflow; let the GPUs cool down before a long step."),
    CheckSpec("ramdisk_space", SOFT, 10, "The ramdisk root is a tmpfs with enough free space.",
              "Free space in the ramdisk (remove old step folders), or enlarge the tmpfs."),
)

# The cleanup's checks: every problem is a warning, the cleanup never blocks.
CLEANUP_CHECKS = _registry(
    CheckSpec("ssh", SOFT, 10, "The host answers over SSH.",
              "Check that the host is up and sshd runs; clean it up by hand when it is back.", where=CONTROLLER),
    CheckSpec("probe", SOFT, 120, "The host-side cleanup module ran and reported.",
              "Run the cleanup with -vvv to see the module error.", where=CONTROLLER),
    CheckSpec("caches", SOFT, 60, "GPU runtime caches of the step's users are removed.",
              "Remove the cache folders by hand; check their ownership and permissions."),
    CheckSpec("clocks", SOFT, 30, "GPU clocks are back to automatic (power_dpm_force_performance_level = auto).",
              "Run 'rocm-smi --resetclocks' as root on the host."),
    CheckSpec("gpu_health", SOFT, 30, "Every GPU still responds after the step.",
              "Reboot the rig before the next step, or add the GPU to excluded_gpus."),
    CheckSpec("kernel_log", SOFT, 15, "No new amdgpu failures in the kernel log since the step started.",
              "Read the kernel log on the host (journalctl -k --since <step start>)."),
    CheckSpec("vram", SOFT, 30, "No process still holds VRAM after the step.",
              "Stop the leftover process (kill <pid>) before the next step."),
)

REGISTRIES = {"preflight": PREFLIGHT_CHECKS, "cleanup": CLEANUP_CHECKS}


def worst(statuses, default=OK):
    """The most severe of the given statuses (fail > unknown > warn > ok > skipped)."""
    statuses = list(statuses)
    if not statuses:
        return default
    return max(statuses, key=lambda s: _RANK[s])


def problem(check, status, message, fix=None, gpu=None, **details):
    """One problem found by a check. ``gpu`` is a dict with at least ``index`` and ``bdf``."""
    if status not in (WARN, FAIL, UNKNOWN):
        raise ValueError("a problem is warn, fail or unknown, not %r" % (status,))
    item = {"check": check, "status": status, "message": message, "fix": fix}
    if gpu is not None:
        item["gpu"] = gpu
    if details:
        item["details"] = details
    return item


def result(name, problems=(), message=None, elapsed=None, timed_out=False, details=None):
    """A check's result: its status is the worst of its problems, ok when it has none."""
    problems = list(problems)
    status = worst([p["status"] for p in problems])
    if message is None:
        message = "; ".join(p["message"] for p in problems) if problems else "ok"
    return {
        "name": name,
        "status": status,
        "message": message,
        "problems": problems,
        "elapsed_s": None if elapsed is None else round(elapsed, 3),
        "timed_out": bool(timed_out),
        "details": details or {},
    }


def skipped(name, reason):
    res = result(name, message=reason)
    res["status"] = SKIPPED
    return res


def could_not_run(name, why, fix, elapsed=None, timed_out=False, details=None):
    """A check that could not run: status unknown, never a pass and never a hardware verdict."""
    return result(name, [problem(name, UNKNOWN, why, fix)], elapsed=elapsed, timed_out=timed_out, details=details)


def validate_names(names, registry, option):
    """Reject names that are not checks of ``registry``, listing the valid ones."""
    if names is None:
        return []
    if isinstance(names, str):
        names = [n for n in names.replace(",", " ").split() if n]
    if not isinstance(names, (list, tuple)):
        raise ValueError("%s must be a list of check names, not %s" % (option, type(names).__name__))
    clean = []
    for name in names:
        key = str(name).strip().lower()
        if key not in registry:
            raise ValueError("%s: unknown check %r; valid checks are: %s"
                             % (option, str(name), ", ".join(registry)))
        if key not in clean:
            clean.append(key)
    return clean


BLOCK = "hard_failure"
WARNING = "warning"


def judge(item, registry, downgrade=(), never_block=False):
    """Decide what a problem means for the step: (BLOCK or WARNING, message).

    Only a ``fail`` of a hard check blocks. A problem about an excluded GPU, or of a check named
    in ``downgrade``, becomes a warning that says why; it is never hidden.
    """
    message = item["message"]
    spec = registry.get(item["check"])
    if never_block or item["status"] != FAIL or spec is None or spec.severity != HARD:
        return WARNING, message
    gpu = item.get("gpu") or {}
    if gpu.get("excluded"):
        return WARNING, "%s (GPU %s is in excluded_gpus)" % (message, gpu_label(gpu))
    if item["check"] in downgrade:
        return WARNING, "%s (downgraded by preflight_downgrade)" % message
    return BLOCK, message


def gpu_label(gpu):
    """How messages name a GPU: its rocm-smi index and its PCI address, e.g. '3 (0000:0b:00.0)'."""
    index, bdf = gpu.get("index"), gpu.get("bdf")
    if index is None:
        return bdf or "?"
    return "%s (%s)" % (index, bdf) if bdf else str(index)
