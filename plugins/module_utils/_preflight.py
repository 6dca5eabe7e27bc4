# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the host side of the preflight, in one module run.

Collectors (GPU probe, kernel log, step files, inputs, ramdisk space) run concurrently, each under
the timeout of the checks that need it; then every enabled check is evaluated from what was
collected. A collector that ran out of time makes its checks ``unknown`` and says so by name. The
GPU-naming policy of the host (excluded_gpus, gpu_watchlist) is applied here, where the GPUs are
known; blocking is decided once, on the controller (``_checks.judge``).
"""

from __future__ import annotations

import time

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks, _deadline, _gpus, _kernel_log, _node, _ramdisk
from ansible_collections.gpuops.preflight.plugins.module_utils._checks import FAIL, UNKNOWN, WARN, problem
from ansible_collections.gpuops.preflight.plugins.module_utils._pci import parse_gpu_refs, ref_matches

CHECKS = _checks.PREFLIGHT_CHECKS
HOST_CHECKS = [name for name, spec in CHECKS.items() if spec.where == _checks.HOST]

# Which collector each check reads, and which checks share a collector (so share its deadline).
COLLECTOR_OF = {
    "ramdisk": "ramdisk", "inputs": "inputs", "ramdisk_space": "space",
    "gpu_health": "gpus", "gpu_count": "gpus", "vram": "gpus", "gpu_temperature": "gpus",
    "kernel_log": "kernel_log",
}
GIB = 1024.0 ** 3


def gpu_ref(gpu):
    """The small GPU identity carried by problems and summaries."""
    ref = {"index": gpu.get("index"), "bdf": gpu.get("bdf"), "excluded": bool(gpu.get("excluded"))}
    if gpu.get("exclusion_reason"):
        ref["exclusion_reason"] = gpu["exclusion_reason"]
    return ref


def label(gpu):
    return "GPU %s" % _checks.gpu_label(gpu)


def mark_policy(gpus, excluded, watchlist):
    """Flag excluded and watchlisted GPUs; returns the names that matched no GPU."""
    unmatched = []
    for refs, flag in ((excluded, "excluded"), (watchlist, "watchlisted")):
        for ref, reason in refs:
            hits = [g for g in gpus if ref_matches(ref, g)]
            for gpu in hits:
                gpu[flag] = True
                if flag == "excluded" and reason:
                    gpu["exclusion_reason"] = reason
            if not hits:
                unmatched.append((flag, ref))
    for gpu in gpus:
        gpu.setdefault("excluded", False)
        gpu.setdefault("watchlisted", False)
    return unmatched


def parse_policy(values, option):
    """GPU names with their optional reasons: [(('index', 10), 'SMU 0xFFFFFFFF errors'), ...]."""
    values = values or []
    refs = parse_gpu_refs(values, option)
    reasons = [v.get("reason") if isinstance(v, dict) else None for v in values]
    return list(zip(refs, reasons))


def attribute_host_findings(findings, gpus):
    """On a one-GPU host, an amdgpu line that names no PCI address can only be about that GPU.

    Only the amdgpu driver's own lines: a PCIe bridge's line (pcieport) or a job's stderr
    (``Memory access fault by GPU node-2``) says nothing about which device failed.
    """
    real = [g for g in gpus if g.get("bdf")]
    if len(real) != 1:
        return findings
    out = []
    for finding in findings:
        if not finding.get("bdf") and "amdgpu" in (finding.get("line") or ""):
            finding = dict(finding, bdf=real[0]["bdf"], attributed=True)
        out.append(finding)
    return out


def times_text(finding):
    count = finding.get("count", 1)
    return " (x%d)" % count if count > 1 else ""


# ---------------------------------------------------------------- checks


def check_gpu_health(gpus, tool):
    problems = []
    unknown = [g for g in gpus if g["health"] == _gpus.UNKNOWN]
    tool_level_unknown = unknown and not tool["answered"] and tool["outcome"] not in (_gpus.MISSING, _gpus.NOT_USED)
    for gpu in gpus:
        if gpu["health"] in (_gpus.LOST, _gpus.DEGRADED):
            problems.append(problem("gpu_health", FAIL, "%s is %s: %s" % (label(gpu), gpu["health"], "; ".join(gpu["problems"])),
                                    CHECKS["gpu_health"].fix, gpu=gpu_ref(gpu)))
        elif gpu["health"] == _gpus.UNKNOWN and not tool_level_unknown:
            problems.append(problem("gpu_health", UNKNOWN, "%s state unknown: %s" % (label(gpu), "; ".join(gpu["problems"])),
                                    "Check the GPU by hand (rocm-smi, dmesg).", gpu=gpu_ref(gpu)))
    if tool_level_unknown:
        problems.append(problem(
            "gpu_health", UNKNOWN,
            "GPU state unknown: %s; sysfs shows %d GPU(s) on the bus and none lost" % (tool["reason"], len(unknown)),
            "Check the GPU tool on the host by hand (rocm-smi --showuse); a hung rocm-smi often means a hung GPU: "
            "read the kernel log. Clear a stuck rocm_smi mutex by deleting /dev/shm/rocm_smi*."))
    return problems, "%d GPU(s): %s" % (len(gpus), _health_counts(gpus))


def _health_counts(gpus):
    counts = {}
    for gpu in gpus:
        counts[gpu["health"]] = counts.get(gpu["health"], 0) + 1
    return ", ".join("%d %s" % (counts[h], h) for h in _gpus.HEALTH_STATES if h in counts) or "none found"


def check_gpu_count(gpus, expected, unmatched_excluded):
    problems = []
    for flag, (kind, value) in unmatched_excluded:
        what = "excluded_gpus" if flag == "excluded" else "gpu_watchlist"
        problems.append(problem("gpu_count", WARN, "%s names GPU %s, which this host does not have" % (what, value),
                                "Correct %s in the inventory (GPUs are named by rocm-smi index or PCI address)." % what))
    counted = [g for g in gpus if not g["excluded"]]
    found = [g for g in counted if g["responding"] is not False]
    unverified = [g for g in found if g["responding"] is None]
    if expected is None:
        return problems, "%d GPU(s) responding (expected_gpu_count not set)" % len(found)
    excluded_count = len([g for g in gpus if g["excluded"]])
    want = max(expected - excluded_count, 0)
    want_text = "%d" % want if not excluded_count else "%d (%d minus %d excluded)" % (want, expected, excluded_count)
    note = " (%d not verified: the GPU tool gave no answer)" % len(unverified) if unverified else ""
    if len(found) != want:
        missing = [g for g in counted if g["responding"] is False]
        detail = ""
        if missing:
            detail = "; not responding: " + ", ".join("%s %s" % (label(g), g["health"]) for g in missing)
        problems.append(problem("gpu_count", WARN, "expected %s GPUs, found %d%s%s" % (want_text, len(found), note, detail),
                                CHECKS["gpu_count"].fix))
    return problems, "expected %s GPUs, found %d%s" % (want_text, len(found), note)


def check_vram(processes, gpus, min_bytes, kfd_available):
    if not kfd_available and gpus:
        return [problem("vram", UNKNOWN, "KFD is not available (no /sys/class/kfd): cannot list processes holding VRAM",
                        "Check that the amdgpu driver exposes KFD (ls /sys/class/kfd/kfd/proc).")], "KFD not available"
    by_bdf = dict((g["bdf"], g) for g in gpus)
    problems = []
    for proc in processes:
        if (proc.get("vram_bytes") or 0) <= min_bytes:
            continue
        gpu = by_bdf.get(proc.get("bdf")) or {"index": proc.get("index"), "bdf": proc.get("bdf")}
        name = proc.get("name") or "?"
        problems.append(problem("vram", WARN, "pid %s (%s) holds %.2f GiB of VRAM on %s"
                                % (proc["pid"], name, proc["vram_bytes"] / GIB, label(gpu)),
                                "Stop it if it is a leftover (kill %s), or run the cleanup for the previous step." % proc["pid"],
                                gpu=gpu_ref(gpu)))
    return problems, "%d process(es) holding VRAM" % len(problems)


def check_temperature(gpus, warn_c):
    problems = []
    for gpu in gpus:
        temp = gpu.get("temperature_edge_c")
        if temp is not None and temp >= warn_c:
            problems.append(problem("gpu_temperature", WARN, "%s is at %.0f C (edge), at or above %.0f C before work starts"
                                    % (label(gpu), temp, warn_c), CHECKS["gpu_temperature"].fix, gpu=gpu_ref(gpu)))
    hottest = max([g["temperature_edge_c"] for g in gpus if g.get("temperature_edge_c") is not None] or [None],
                  key=lambda t: -1 if t is None else t)
    return problems, "hottest GPU %s" % ("unknown" if hottest is None else "%.0f C" % hottest)


def check_kernel_log(findings, gpus):
    """Findings not already judged by gpu_health: hard ones fail, soft ones warn on watchlisted GPUs."""
    by_bdf = dict((g["bdf"], g) for g in gpus)
    health_categories = _gpus.KERNEL_LOST + _gpus.KERNEL_DEGRADED
    problems, quiet, folded = [], 0, 0
    for finding in findings:
        gpu = by_bdf.get(finding.get("bdf"))
        text = "%s%s: %s" % (finding.get("summary") or finding["category"], times_text(finding), finding.get("message", ""))
        if gpu is not None and (finding["category"] in health_categories
                                or gpu["health"] in (_gpus.LOST, _gpus.DEGRADED)):
            folded += 1  # gpu_health already reports this GPU: one line per sick GPU, not one per log line
            continue
        hard = finding.get("severity") == _checks.HARD
        if gpu is not None:
            where = label(gpu)
            if hard:
                problems.append(problem("kernel_log", FAIL, "%s: %s" % (where, text), finding.get("fix"), gpu=gpu_ref(gpu)))
            elif gpu.get("watchlisted"):
                problems.append(problem("kernel_log", WARN, "watchlisted %s: %s" % (where, text), finding.get("fix"),
                                        gpu=gpu_ref(gpu)))
            else:
                quiet += 1
        elif hard:
            where = ("device %s" % finding["bdf"]) if finding.get("bdf") else "a GPU the log line does not name"
            problems.append(problem("kernel_log", FAIL, "%s on %s: %s" % (finding.get("summary") or finding["category"],
                                                                          where, finding.get("message", "")) + times_text(finding),
                                    finding.get("fix")))
        else:
            quiet += 1
    return problems, "%d finding(s): %d reported here, %d under gpu_health, %d soft on GPUs not watchlisted" % (
        len(findings), len(problems), folded, quiet)


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
    "missing_root": "Create the ramdisk root (mkdir -p) or correct preflight_ramdisk_root.",
    "not_tmpfs": "Put the ramdisk root on a tmpfs (/dev/shm is one), or set preflight_require_tmpfs: false.",
}


def file_problems(check, found, status=FAIL):
    return [problem(check, status, item["message"], FILE_FIXES.get(item.get("problem"), CHECKS[check].fix),
                    file=item.get("file"), code=item.get("problem"))
            for item in found]


# ---------------------------------------------------------------- the run


def run(module, params, clock=time.monotonic):
    """Run the enabled host checks; returns the module result (checks, gpus, facts, timings)."""
    start = clock()
    enabled, timeouts = _node.enabled_and_timeouts(CHECKS, HOST_CHECKS, params)

    collectors = {}

    def deadline(collector):
        return max(timeouts[c] for c in enabled if COLLECTOR_OF[c] == collector)

    needed = set(COLLECTOR_OF[c] for c in enabled)
    if "gpu_health" in enabled:
        needed.add("kernel_log")  # SMU failures only show in the kernel log
    step_dir_files = params["ramdisk_files"]
    if "ramdisk" in needed and not step_dir_files:
        needed.discard("ramdisk")  # nothing required for this step: its folder need not even exist
    if "ramdisk" in needed:
        collectors["ramdisk"] = (lambda: _ramdisk.check_step_files(
            params["ramdisk_root"], params["step"], step_dir_files, validate_json=params["validate_json"],
            max_age=params["max_age"]), deadline("ramdisk"))
    if "inputs" in needed:
        collectors["inputs"] = (lambda: _ramdisk.check_input_files(
            params["input_files"], validate_json=params["validate_json"]), deadline("inputs"))
    if "space" in needed:
        collectors["space"] = (lambda: _ramdisk.check_space(
            params["ramdisk_root"], min_free_bytes=params["ramdisk_min_free_mb"] * 1024 * 1024,
            require_tmpfs=params["require_tmpfs"]), deadline("space"))
    if "gpus" in needed:
        gpu_deadline = deadline("gpus")
        collectors["gpus"] = (lambda: _gpus.collect(
            module, tool=params["gpu_tool"], rocm_smi=params["rocm_smi"], amd_smi=params["amd_smi"],
            sysfs_root=params["sysfs_root"], timeout=min(params["gpu_tool_timeout"], max(gpu_deadline - 3, 1)),
            metrics_timeout=min(5, max(gpu_deadline - params["gpu_tool_timeout"], 1))), gpu_deadline)
    log_source, log_path = kernel_log_source(params["kernel_log"])
    if "kernel_log" in needed and log_source != "none":
        log_deadline = timeouts["kernel_log"]
        collectors["kernel_log"] = (lambda: _kernel_log.scan_kernel_log(
            # room inside the deadline for auto's fallback from the journal to dmesg
            module, log_source, log_path, params["kernel_log_since"], max(log_deadline - 3, 1)), log_deadline)

    outcomes = _deadline.run_all(collectors)
    results = {}

    def could_not(name, collector, what):
        outcome = outcomes[collector]
        results[name] = _checks.could_not_run(
            name, "%s: %s" % (what, outcome.describe_failure()),
            "Re-run the preflight; if it keeps failing, look at the host by hand.",
            elapsed=outcome.elapsed, timed_out=outcome.timed_out)

    # Kernel log first: gpu_health needs its SMU and bus findings.
    log_outcome = outcomes.get("kernel_log")
    findings, log_info, log_failure = kernel_log_outcome(log_outcome, log_source, params["kernel_log_since"])

    gpus, gpu_result = [], None
    unmatched = []
    excluded = parse_policy(params["excluded_gpus"], "excluded_gpus")
    watchlist = parse_policy(params["gpu_watchlist"], "gpu_watchlist")
    gpu_outcome = outcomes.get("gpus")
    if gpu_outcome is not None and gpu_outcome.ok:
        collected = gpu_outcome.value
        findings = attribute_host_findings(findings, collected["gpus"])
        gpu_result = _gpus.apply_health(collected, findings)
        gpus = gpu_result["gpus"]
        unmatched = mark_policy(gpus, excluded, watchlist)
    log_info["findings"] = findings

    for name in enabled:
        collector = COLLECTOR_OF[name]
        outcome = outcomes.get(collector)
        if name == "ramdisk" and not step_dir_files:
            results[name] = _checks.result(name, message="no ramdisk files required for step %s" % params["step"])
            continue
        if collector == "kernel_log" and log_source == "none":
            results[name] = _checks.skipped(name, "kernel log reading disabled (preflight_kernel_log: none)")
            continue
        if collector == "kernel_log" and log_failure:
            results[name] = _checks.could_not_run(
                name, "reading the kernel log (%s): %s" % (log_source, log_failure), CHECKS[name].fix,
                elapsed=outcome.elapsed, timed_out=outcome.timed_out or log_info.get("timed_out", False))
            continue
        if outcome is None or not outcome.ok:
            what = {"gpus": "GPU probe", "kernel_log": "reading the kernel log (%s)" % log_source,
                    "ramdisk": "checking %s/step%s" % (params["ramdisk_root"], params["step"]),
                    "inputs": "checking the input files", "space": "checking %s" % params["ramdisk_root"]}[collector]
            could_not(name, collector, what)
            continue
        elapsed, value = outcome.elapsed, outcome.value
        if name == "ramdisk":
            found, info = value
            results[name] = _checks.result(name, file_problems("ramdisk", found), elapsed=elapsed,
                                           details={"files": info},
                                           message=None if found else "%d file(s) staged" % len(step_dir_files))
        elif name == "inputs":
            found, info = value
            results[name] = _checks.result(name, file_problems("inputs", found), elapsed=elapsed, details={"files": info},
                                           message=None if found else "%d input file(s) present" % len(params["input_files"]))
        elif name == "ramdisk_space":
            found, info = value
            results[name] = _checks.result(name, file_problems("ramdisk_space", found, WARN), elapsed=elapsed,
                                           details=info, message=None if found else _space_text(info))
        else:
            if name == "kernel_log":
                found, text = check_kernel_log(findings, gpus)
            elif name == "gpu_health":
                found, text = check_gpu_health(gpus, gpu_result["tool"])
                if log_failure:
                    found.append(problem("gpu_health", UNKNOWN, "SMU failures not checked: could not read the kernel log (%s)"
                                         % log_failure, CHECKS["kernel_log"].fix))
            elif name == "gpu_count":
                found, text = check_gpu_count(gpus, params["expected_gpu_count"], unmatched)
            elif name == "vram":
                found, text = check_vram(gpu_result["processes"], gpus, params["vram_min_mb"] * 1024 * 1024,
                                         gpu_result["kfd_available"])
            else:
                found, text = check_temperature(gpus, params["gpu_temp_warn_c"])
            results[name] = _checks.result(name, found, elapsed=elapsed, message=None if found else text)

    for name in HOST_CHECKS:
        if name not in results:
            results[name] = _checks.skipped(name, "skipped by preflight_skip")

    usable = [g["index"] for g in gpus if g["health"] == _gpus.OK and not g["excluded"] and g["index"] is not None]
    unverified = [g["index"] for g in gpus if g["health"] == _gpus.UNKNOWN and not g["excluded"] and g["index"] is not None]
    return {
        "changed": False,
        "step": params["step"],
        "checks": results,
        "gpus": gpus,
        "gpu_count": len(gpus),
        "expected_gpu_count": params["expected_gpu_count"],
        "usable_gpus": usable,
        "unverified_gpus": unverified,
        "gpu_tool": gpu_result["tool"] if gpu_result else None,
        "processes": gpu_result["processes"] if gpu_result else [],
        "notes": gpu_result["notes"] if gpu_result else [],
        "kernel_log": log_info,
        "elapsed_s": round(clock() - start, 3),
    }


def _space_text(info):
    free = info.get("free_bytes")
    if free is None:
        return "ok"
    return "%s: %.1f GiB free (%s)" % (info.get("mount_point") or "ramdisk", free / GIB, info.get("fstype") or "?")


def kernel_log_outcome(outcome, source, since):
    """(findings, info, failure) of the kernel-log collector; ``failure`` says why the log could not
    be read (the collector timed out or failed, or the read itself did), else None."""
    info = {"source": source, "read": False, "since": since}
    if outcome is None:
        return [], info, None
    if not outcome.ok:
        return [], info, outcome.describe_failure()
    read, findings = outcome.value
    info.update(source=read.source, read=not (read.error or read.timed_out), error=read.error,
                timed_out=read.timed_out, lines_scanned=len(read.lines), elapsed_s=round(read.elapsed, 3))
    if read.error or read.timed_out:
        return [], info, read.error or "timed out after %ss" % outcome.timeout
    return findings, info, None


def kernel_log_source(value):
    """preflight_kernel_log: 'auto', 'journal', 'dmesg', 'none', or the path of a file."""
    if value in ("auto", "journal", "dmesg", "none"):
        return value, None
    return "file", value
