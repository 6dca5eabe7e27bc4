# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the cleanup family, declared.

After a distributed step: first the actions (GPU runtime caches removed, clocks reset when asked),
then the verification (every GPU still responds, no new kernel-log failure since the step
started, no process still holds VRAM): the GPU probe and the kernel log come ``after`` the
actions. Every check is soft and the family never blocks: every problem is a warning.
"""

from __future__ import annotations

from ansible_collections.gpuops.preflight.plugins.module_utils import _caches, _clocks, _gpu_checks, _sysfs
from ansible_collections.gpuops.preflight.plugins.module_utils._checks import (
    CONTROLLER, SOFT, UNKNOWN, WARN, CheckSpec, Family, problem, registry)
from ansible_collections.gpuops.preflight.plugins.module_utils._gpu_checks import GPU_NEEDS, KERNEL_LOG_NEEDS
from ansible_collections.gpuops.preflight.plugins.module_utils._host_runner import Collector


def group_errors(errors, targets):
    """One message per cache folder: a read-only ~/.cache must not give one warning per file."""
    grouped = {}
    for error in errors:
        path = error.get("path") or ""
        owner = next((t["path"] for t in targets
                      if path == t["path"] or path.startswith(t["path"].rstrip("/") + "/")), path)
        grouped.setdefault(owner, []).append(error["message"])
    messages = []
    for owner, texts in grouped.items():
        if len(texts) == 1:
            messages.append(texts[0])
        else:
            messages.append("could not remove %d paths in %s, e.g. %s" % (len(texts), owner, texts[0]))
    return messages


# ---------------------------------------------------------------- collectors (the actions)


def cache_vendor(params):
    """Whose runtime caches to remove: the vendor asked for, else (auto) those sysfs shows; 'all' for both or none."""
    if params["gpu_vendor"] != "auto":
        return params["gpu_vendor"]
    ids = set(found[3] for found in _sysfs.enumerate_gpus(params["sysfs_root"], [_sysfs.AMD_VENDOR, _sysfs.NVIDIA_VENDOR]))
    present = [name for name, vid in (("amd", _sysfs.AMD_VENDOR), ("nvidia", _sysfs.NVIDIA_VENDOR)) if vid in ids]
    return present[0] if len(present) == 1 else "all"


def _clean_caches(ctx, _deadline):
    """Remove the GPU runtime caches of the step's users: the report of what was removed and what not."""
    params = ctx.params
    homes = _caches.resolve_homes(params["users"], params["home_dirs"])
    patterns = _caches.cache_patterns(params["include_miopen_user_db"], params["extra_paths"], cache_vendor(params))
    targets, skipped = _caches.find_cache_targets(homes, patterns, keep=_caches.keep_paths(params["include_miopen_user_db"]))
    removed, errors, freed = _caches.remove_targets(targets, ctx.check_mode)
    return {"removed": removed, "bytes_freed": freed, "skipped": skipped, "errors": errors,
            "homes": [home for _label, home in homes], "grouped_errors": group_errors(errors, targets),
            "check_mode": ctx.check_mode}


def _reset_clocks(ctx, deadline):
    # room inside the deadline for the SIGKILL grace (2 s) and reading the levels back
    return _clocks.reset_clocks(ctx.module, ctx.params["rocm_smi"], ctx.params["sysfs_root"], max(deadline - 4, 1),
                                ctx.check_mode, vendor=ctx.params["gpu_vendor"], nvidia_smi=ctx.params["nvidia_smi"])


def _publish_actions(ctx):
    caches = ctx.value("caches")
    if caches is not None:
        caches = dict(caches)
        caches.pop("grouped_errors", None)
    return {"caches": caches, "clocks": ctx.value("clocks"), "bytes_freed": caches["bytes_freed"] if caches else 0}


COLLECTORS = {
    "caches": Collector("caches", _clean_caches, lambda params: "removing the caches", publish=_publish_actions,
                        # a cache partly removed (a file in it could not go) changed the host too
                        changed=lambda report: bool(report["removed"] or report["bytes_freed"])),
    "clocks": Collector("clocks", _reset_clocks, lambda params: "resetting the clocks",
                        changed=lambda report: report["changed"]),
}
# Verify after acting: the GPUs are probed once the clocks are back to auto.
COLLECTORS.update(_gpu_checks.collectors(after=("caches", "clocks")))


# ---------------------------------------------------------------- evaluations


def evaluate_caches(ctx, spec):
    report = ctx.value("caches")
    problems = [problem(spec.name, WARN, text, spec.fix) for text in report["grouped_errors"]]
    problems += [problem(spec.name, WARN, "left %s alone: %s" % (s["path"], s["reason"]), spec.fix)
                 for s in report["skipped"]]
    return problems, "%d cache folder(s) %sremoved, %d bytes freed" % (
        len(report["removed"]), "would be " if ctx.check_mode else "", report["bytes_freed"])


# How to reset clocks by hand, per vendor (the check's own fix covers both).
CLOCK_FIXES = {
    "amd": "Run 'rocm-smi --resetclocks' as root on the host.",
    "nvidia": "Run 'nvidia-smi -rgc' and 'nvidia-smi -rmc' as root on the host ('nvidia-smi -rac' for application "
              "clocks set with -ac).",
}


def evaluate_clocks(ctx, spec):
    report = ctx.value("clocks")
    vendors = report.get("vendors") or [ctx.params.get("gpu_vendor")]
    fix = " ".join(CLOCK_FIXES[v] for v in ("amd", "nvidia") if v in vendors) or spec.fix
    problems = [problem(spec.name, WARN, text, fix) for text in report["problems"]]
    # a level that could not be read is not a level at its default
    problems += [problem(spec.name, UNKNOWN, text, fix) for text in report.get("unverified") or ()]
    unsupported = report.get("unsupported") or []
    none = "; %d GPU(s) without clock control (not supported): %s" % (len(unsupported), ", ".join(unsupported)) \
        if unsupported else ""
    if report["needed"]:
        return problems, "%s %d GPU(s) to their default clocks%s" % (
            "would reset" if ctx.check_mode else "reset", len(report["needed"]), none)
    return problems, "every GPU %salready at its default clocks%s" % ("with clock control " if none else "", none)


def _clocks_not_asked(params):
    return None if params["reset_clocks"] else "clock reset not requested (cleanup_reset_clocks: false)"


# ---------------------------------------------------------------- the family

CHECKS = registry(
    CheckSpec("ssh", SOFT, 10, "The host answers over SSH.",
              "Check that the host is up and sshd runs; clean it up by hand when it is back.",
              "SSH_UNREACHABLE", "SSH", where=CONTROLLER),
    CheckSpec("probe", SOFT, 120, "The host-side cleanup module ran and reported.",
              "Run the cleanup with -vvv to see the module error.", "PROBE_FAILED", "Probe", where=CONTROLLER),
    CheckSpec("caches", SOFT, 60, "GPU runtime caches of the step's users are removed.",
              "Remove the cache folders by hand; check their ownership and permissions.",
              "CACHES_NOT_CLEARED", "Caches", needs=("caches",), evaluate=evaluate_caches),
    CheckSpec("clocks", SOFT, 30, "GPU clocks are back to their defaults (AMD: performance level auto; NVIDIA: no "
              "locked clocks).", " ".join(CLOCK_FIXES.values()), "CLOCKS_NOT_RESET", "Clocks",
              needs=("clocks",), evaluate=evaluate_clocks, applies=_clocks_not_asked),
    CheckSpec("gpu_health", SOFT, 30, "Every GPU still responds after the step.",
              "Reboot the rig before the next step, or add the GPU to excluded_gpus.",
              "GPU_UNHEALTHY", "GPU health", needs=GPU_NEEDS, evaluate=_gpu_checks.evaluate_health),
    CheckSpec("kernel_log", SOFT, 15, "No new GPU driver failures (amdgpu, NVIDIA Xids) in the kernel log since the step started.",
              "Read the kernel log on the host (journalctl -k --since <step start>).",
              "KERNEL_LOG_ERRORS", "Kernel log", needs=KERNEL_LOG_NEEDS,
              evaluate=_gpu_checks.evaluate_new_kernel_findings, applies=_gpu_checks.kernel_log_disabled),
    CheckSpec("vram", SOFT, 30, "No process still holds VRAM after the step.",
              "Stop the leftover process (kill <pid>) before the next step.",
              "VRAM_IN_USE", "VRAM", needs=GPU_NEEDS, evaluate=_gpu_checks.evaluate_vram),
)


def _refused_by(validate):
    """A role-variable rule from a host-side validator that raises ValueError naming the problem."""
    def rule(value):
        try:
            validate(value)
        except ValueError as exc:
            return "is refused: %s" % exc
        return None
    return rule


# Checked in the plan, before any host is contacted: on the host a bad value would only make the caches
# check "unknown" on every rig, run after run, and leave the caches in place. (Users are looked up per host.)
VARIABLE_RULES = {
    "extra_paths": _refused_by(_caches.validate_extra_paths),
    "home_dirs": _refused_by(lambda homes: _caches.resolve_homes((), homes, getpwuid=lambda uid: None) if homes
                             else None),
}

FAMILY = Family("cleanup", "Cleanup", CHECKS, COLLECTORS, node_module="node_cleanup", stats_key="gpuops_cleanup",
                file_prefix="cleanup", option_prefix="cleanup", never_block=True, listed_steps=True,
                since_from="preflight", variable_rules=VARIABLE_RULES)
