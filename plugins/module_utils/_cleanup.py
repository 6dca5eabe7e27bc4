# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the host side of the cleanup after a distributed step.

First the actions (GPU runtime caches removed, clocks reset when asked), then the verification:
every GPU still responds, no new kernel-log failure since the step started, no process still
holds VRAM. Every problem is reported, none raises: the cleanup never blocks the pipeline.
"""

from __future__ import annotations

import time

from ansible_collections.gpuops.preflight.plugins.module_utils import _caches, _checks, _clocks, _deadline, _gpus, _kernel_log
from ansible_collections.gpuops.preflight.plugins.module_utils import _node
from ansible_collections.gpuops.preflight.plugins.module_utils import _preflight
from ansible_collections.gpuops.preflight.plugins.module_utils._checks import WARN, problem

CHECKS = _checks.CLEANUP_CHECKS
HOST_CHECKS = [name for name, spec in CHECKS.items() if spec.where == _checks.HOST]


def clean_caches(params, check_mode):
    """Remove the GPU runtime caches of the step's users: (problems, report)."""
    homes = _caches.resolve_homes(params["users"], params["home_dirs"])
    patterns = _caches.cache_patterns(params["include_miopen_user_db"], params["extra_paths"])
    keep = () if params["include_miopen_user_db"] else (_caches.MIOPEN_USER_DB,)
    targets, skipped = _caches.find_cache_targets(homes, patterns, keep=keep)
    removed, errors, freed = _caches.remove_targets(targets, check_mode)
    problems = [problem("caches", WARN, text, CHECKS["caches"].fix) for text in group_errors(errors, targets)]
    problems += [problem("caches", WARN, "left %s alone: %s" % (s["path"], s["reason"]), CHECKS["caches"].fix)
                 for s in skipped]
    report = {"removed": removed, "bytes_freed": freed, "skipped": skipped, "errors": errors,
              "homes": [home for _label, home in homes]}
    return problems, report


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


def check_new_kernel_findings(findings, gpus):
    """Since the step started, every amdgpu finding is news worth a warning."""
    by_bdf = dict((g["bdf"], g) for g in gpus)
    problems = []
    for finding in findings:
        gpu = by_bdf.get(finding.get("bdf"))
        where = _preflight.label(gpu) if gpu else (finding.get("bdf") or "a GPU the log line does not name")
        problems.append(problem(
            "kernel_log", WARN, "new since the step started on %s: %s%s: %s" % (
                where, finding.get("summary") or finding["category"], _preflight.times_text(finding), finding.get("message", "")),
            finding.get("fix"), gpu=_preflight.gpu_ref(gpu) if gpu else None))
    return problems


def run(module, params, clock=time.monotonic):
    """Clean up, then verify; returns the module result. Never raises for a problem found."""
    start = clock()
    enabled, timeouts = _node.enabled_and_timeouts(CHECKS, HOST_CHECKS, params)
    results = {}

    # 1. Actions: caches and clocks are independent, so they run side by side.
    actions = {}
    if "caches" in enabled:
        actions["caches"] = (lambda: clean_caches(params, module.check_mode), timeouts["caches"])
    if "clocks" in enabled and params["reset_clocks"]:
        actions["clocks"] = (lambda: _clocks.reset_clocks(
            # room inside the deadline for the SIGKILL grace (2 s) and reading the levels back
            module, params["rocm_smi"], params["sysfs_root"], max(timeouts["clocks"] - 4, 1), module.check_mode),
            timeouts["clocks"])
    done = _deadline.run_all(actions)
    caches_report, clocks_report, changed = None, None, False
    for name in ("caches", "clocks"):
        if name not in enabled:
            results[name] = _checks.skipped(name, "skipped by cleanup_skip")
        elif name == "clocks" and not params["reset_clocks"]:
            results[name] = _checks.skipped(name, "clock reset not requested (cleanup_reset_clocks: false)")
        elif not done[name].ok:
            results[name] = _checks.could_not_run(name, "%s: %s" % (name, done[name].describe_failure()),
                                                  CHECKS[name].fix, elapsed=done[name].elapsed,
                                                  timed_out=done[name].timed_out)
        elif name == "caches":
            found, caches_report = done[name].value
            changed = changed or bool(caches_report["removed"])
            results[name] = _checks.result(name, found, elapsed=done[name].elapsed, message=None if found else (
                "%d cache folder(s) %sremoved, %d bytes freed" % (
                    len(caches_report["removed"]), "would be " if module.check_mode else "", caches_report["bytes_freed"])))
        else:
            clocks_report = done[name].value
            changed = changed or clocks_report["changed"]
            found = [problem("clocks", WARN, text, CHECKS["clocks"].fix) for text in clocks_report["problems"]]
            results[name] = _checks.result(name, found, elapsed=done[name].elapsed, message=None if found else (
                "reset %d GPU(s) to auto" % len(clocks_report["needed"]) if clocks_report["needed"]
                else "every GPU already at auto"))

    # 2. Verification, after the actions.
    verify = {}
    if set(enabled) & set(["gpu_health", "vram"]):
        verify["gpus"] = (lambda: _gpus.collect(
            module, tool=params["gpu_tool"], rocm_smi=params["rocm_smi"], amd_smi=params["amd_smi"],
            sysfs_root=params["sysfs_root"], timeout=min(params["gpu_tool_timeout"], max(timeouts["gpu_health"] - 3, 1))),
            max(timeouts["gpu_health"], timeouts["vram"]))
    log_source, log_path = _preflight.kernel_log_source(params["kernel_log"])
    if set(enabled) & set(["gpu_health", "kernel_log"]) and log_source != "none":
        verify["kernel_log"] = (lambda: _kernel_log.scan_kernel_log(
            module, log_source, log_path, params["kernel_log_since"], max(timeouts["kernel_log"] - 3, 1)),
            timeouts["kernel_log"])
    checked = _deadline.run_all(verify)

    findings, log_info, log_failure = _preflight.kernel_log_outcome(
        checked.get("kernel_log"), log_source, params["kernel_log_since"])
    gpus, gpu_result = [], None
    if "gpus" in checked and checked["gpus"].ok:
        collected = checked["gpus"].value
        findings = _preflight.attribute_host_findings(findings, collected["gpus"])
        gpu_result = _gpus.apply_health(collected, findings)
        gpus = gpu_result["gpus"]
        _preflight.mark_policy(gpus, _preflight.parse_policy(params["excluded_gpus"], "excluded_gpus"), [])
    log_info["findings"] = findings

    for name in ("gpu_health", "kernel_log", "vram"):
        if name not in enabled:
            results[name] = _checks.skipped(name, "skipped by cleanup_skip")
            continue
        collector = "kernel_log" if name == "kernel_log" else "gpus"
        if name == "kernel_log" and log_source == "none":
            results[name] = _checks.skipped(name, "kernel log reading disabled")
            continue
        if name == "kernel_log" and log_failure:
            results[name] = _checks.could_not_run(name, "could not read the kernel log: %s" % log_failure, CHECKS[name].fix)
            continue
        outcome = checked.get(collector)
        if outcome is None or not outcome.ok:
            results[name] = _checks.could_not_run(name, "GPU probe: %s" % (outcome.describe_failure() if outcome else "not run"),
                                                  CHECKS[name].fix, timed_out=bool(outcome and outcome.timed_out))
            continue
        if name == "gpu_health":
            found, text = _preflight.check_gpu_health(gpus, gpu_result["tool"])
            found = [dict(p, status=WARN) if p["status"] == _checks.FAIL else p for p in found]
        elif name == "kernel_log":
            found = check_new_kernel_findings(findings, gpus)
            text = "no new amdgpu failures since %s" % ("the step started" if params["kernel_log_since"] else "boot")
        else:
            found, text = _preflight.check_vram(gpu_result["processes"], gpus, params["vram_min_mb"] * 1024 * 1024,
                                                gpu_result["kfd_available"])
        results[name] = _checks.result(name, found, elapsed=outcome.elapsed, message=None if found else text)

    return {
        "changed": changed,
        "step": params["step"],
        "checks": results,
        "caches": caches_report,
        "clocks": clocks_report,
        "bytes_freed": caches_report["bytes_freed"] if caches_report else 0,
        "gpus": gpus,
        "gpu_count": len(gpus),
        "usable_gpus": [g["index"] for g in gpus if g["health"] == _gpus.OK and not g["excluded"] and g["index"] is not None],
        "gpu_tool": gpu_result["tool"] if gpu_result else None,
        "processes": gpu_result["processes"] if gpu_result else [],
        "kernel_log": log_info,
        "elapsed_s": round(clock() - start, 3),
    }
