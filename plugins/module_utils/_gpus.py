# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: one view of a host's GPUs, with a health verdict per GPU.

Joins the GPU tool's output (rocm-smi, else amd-smi; ONE call, under a hard timeout) with sysfs,
on the PCI address. sysfs is always read for identity and liveness, and for metrics only where the
tool gave none. Health per GPU:

- ``lost``: PCI config space reads all-ones, or the kernel log says it fell off the bus;
- ``degraded``: SMU failures in the kernel log, or the tool answered for other GPUs but no longer
  for this one (rocm-smi drops a GPU whose every read fails), or no driver is bound to it;
- ``unknown``: the tool failed, timed out or printed nothing, and sysfs shows nothing wrong;
- ``ok``: the tool answered for it (or, with no tool installed, sysfs metric reads worked).

A GPU that vanished from the tool keeps its place in rocm-smi's numbering: PCI-address order
since ROCm 6.0, DRM card order before.
"""

from __future__ import annotations

import os
import time

from ansible_collections.gpuops.preflight.plugins.module_utils import _amd_smi, _rocm_smi, _sysfs, _tool
from ansible_collections.gpuops.preflight.plugins.module_utils._pci import normalize_bdf

OK = "ok"
DEGRADED = "degraded"
LOST = "lost"
UNKNOWN = "unknown"
HEALTH_STATES = (OK, DEGRADED, LOST, UNKNOWN)

# Kernel-log categories that speak about a GPU's health (the rest belong to the kernel_log check).
KERNEL_LOST = ("bus_lost",)
KERNEL_DEGRADED = ("smu_no_response", "smu_message_failed", "register_access_failed")

# How the tool run ended, beyond rocm-smi's own outcomes.
TIMEOUT = "timeout"
MISSING = "missing"
ERROR = "error"
NOT_USED = "not_used"

METRIC_KEYS = ("busy_percent", "temperature_edge_c", "power_w")


def choose_tool(module, tool, rocm_smi, amd_smi):
    """(name, path, looked_for) of the GPU tool to call; path None when it is not installed."""
    opt_dirs = _tool.ROCM_BIN_DIRS
    if tool == "sysfs":
        return None, None, []
    candidates = []
    if tool in ("auto", "rocm-smi"):
        candidates.append(("rocm-smi", rocm_smi or "rocm-smi"))
    if tool in ("auto", "amd-smi"):
        candidates.append(("amd-smi", amd_smi or "amd-smi"))
    for name, wanted in candidates:
        path = _tool.find_tool(module, wanted, opt_dirs)
        if path:
            return name, path, [c[1] for c in candidates]
    return candidates[0][0], None, [c[1] for c in candidates]


def run_gpu_tool(module, tool, rocm_smi, amd_smi, timeout, clock=time.monotonic):
    """Call the GPU tool once. Returns (info, cards, system, doc)."""
    name, path, looked_for = choose_tool(module, tool, rocm_smi, amd_smi)
    info = {"name": name, "path": path, "cmd": None, "rc": None, "elapsed_s": 0.0, "timed_out": False,
            "answered": False, "outcome": NOT_USED, "reason": None, "stderr": "", "timeout_s": timeout}
    if tool == "sysfs":
        info["reason"] = "GPU tool disabled (tool=sysfs): facts from sysfs only"
        return info, [], {}, None
    if not path:
        info["outcome"] = MISSING
        info["reason"] = "no GPU tool found (looked for %s on PATH and in /opt/rocm/bin)" % " and ".join(looked_for)
        return info, [], {}, None
    args = _rocm_smi.SHOW_ARGS if name == "rocm-smi" else _amd_smi.METRIC_ARGS
    run = _tool.run_tool(module, [path] + args, timeout, clock=clock)
    info.update(cmd=run.cmd, rc=run.rc, elapsed_s=round(run.elapsed, 3), timed_out=run.timed_out,
                stderr=_excerpt(run.stderr))
    if run.timed_out:
        info.update(outcome=TIMEOUT, reason=run.describe())
        return info, [], {}, None
    if not run.ran:
        info.update(outcome=MISSING if run.not_found else ERROR, reason=run.describe())
        return info, [], {}, None
    if name == "rocm-smi":
        outcome, doc, reason = _rocm_smi.classify(run.stdout, run.stderr, run.rc)
        cards, system = _rocm_smi.parse(doc) if doc is not None else ([], {})
    else:
        doc = _amd_smi.extract_json(run.stdout)
        cards, system = _amd_smi.parse(doc) if doc is not None else ([], {})
        outcome, reason = _rocm_smi.ANSWERED, None
        if not cards:
            outcome = _rocm_smi.NO_DATA if doc is not None else (_rocm_smi.FAILED if run.rc else _rocm_smi.UNPARSEABLE)
            reason = "amd-smi %s: %s" % ("reported no GPU" if doc is not None else "printed no JSON",
                                         _rocm_smi.first_line(run.stderr) or _rocm_smi.first_line(run.stdout)
                                         or "exit %s" % run.rc)
    info.update(outcome=outcome, reason=reason, answered=outcome == _rocm_smi.ANSWERED)
    return info, cards, system, doc


def _excerpt(text, lines=5):
    kept = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return "\n".join(kept[:lines])


def resolve_index_order(requested, tool_name, doc, tool_path):
    """'bdf' or 'drm': how the tool numbers GPUs (see the module docstring)."""
    if requested in ("bdf", "drm"):
        return requested
    if tool_name == "amd-smi":
        return "bdf"
    if doc is not None:
        order = _rocm_smi.index_order(doc)
        if order:
            return order
    return _rocm_smi.index_order_from_rocm_version(_sysfs.rocm_version(tool_path)) or "bdf"


def positions(sysfs_gpus, order):
    """{bdf: index} the tool gives GPUs it enumerates: those bound to a DRM card."""
    bound = [g for g in sysfs_gpus if g.get("drm_card") is not None]
    key = (lambda g: g["drm_card"]) if order == "drm" else (lambda g: g["bdf"])
    return dict((g["bdf"], i) for i, g in enumerate(sorted(bound, key=key)))


def _blank(index, bdf):
    gpu = {"index": index, "bdf": bdf, "drm_card": None, "model": None, "device_id": None, "gfx_version": None,
           "vram_total_bytes": None, "vram_used_bytes": None, "busy_percent": None, "temperature_edge_c": None,
           "power_w": None, "perf_level": None, "runtime_status": None, "health": UNKNOWN, "problems": [],
           "sources": [], "in_tool_output": None, "responding": None}
    return gpu


def join(cards, sysfs_gpus, order, tool_name, tool_answered):
    """GPU entries from the tool's cards and the sysfs scan, joined on the PCI address."""
    place = positions(sysfs_gpus, order)
    bdf_at = dict((i, bdf) for bdf, i in place.items())
    by_bdf = dict((g["bdf"], g) for g in sysfs_gpus)
    gpus, notes, taken = {}, [], set()
    for card in cards:
        bdf = card.get("bdf")
        if bdf is None and card.get("index") is not None:
            bdf = bdf_at.get(card["index"])  # amd-smi metric prints no address: its order is PCI order
        key = bdf or "index:%s" % card.get("index")
        gpu = gpus.setdefault(key, _blank(card.get("index"), bdf))
        for field in ("model", "device_id", "gfx_version", "vram_total_bytes", "vram_used_bytes",
                      "busy_percent", "temperature_edge_c", "power_w", "perf_level"):
            if card.get(field) is not None:
                gpu[field] = card[field]
        gpu["sources"].append(tool_name)
        gpu["in_tool_output"] = True
        taken.add(card.get("index"))
    for bdf, sysgpu in by_bdf.items():
        gpu = gpus.get(bdf)
        if gpu is None:
            index = place.get(bdf)
            if index in taken:
                notes.append("cannot place GPU %s in %s's numbering (index %s is another GPU's)" % (bdf, tool_name, index))
                index = None
            gpu = gpus[bdf] = _blank(index, bdf)
            gpu["in_tool_output"] = False if tool_answered else None
        gpu["drm_card"] = sysgpu.get("drm_card")
        gpu["runtime_status"] = sysgpu.get("runtime_status")
        for field in ("device_id", "vram_total_bytes", "vram_used_bytes", "perf_level"):
            if gpu.get(field) is None and sysgpu.get(field) is not None:
                gpu[field] = sysgpu[field]
        gpu["sources"].append("sysfs")
    ordered = sorted(gpus.values(), key=lambda g: (g["index"] is None, g["index"] if g["index"] is not None else 0,
                                                   g["bdf"] or ""))
    return ordered, notes


def assess(gpu, sysgpu, tool_info, kernel_findings, metrics_ok):
    """Set gpu['health'], gpu['problems'] and gpu['responding'] from all the evidence."""
    problems = []
    health = OK
    if sysgpu is not None:
        if sysgpu.get("lost"):
            health = LOST
            problems.append("PCI config space reads all-ones: the GPU is lost from the bus")
        elif sysgpu.get("driver") != "amdgpu":
            health = DEGRADED
            problems.append("no amdgpu driver bound to it (driver: %s)" % (sysgpu.get("driver") or "none"))
    seen = {}  # the same failure worded several ways is one problem, with the counts added up
    for finding in kernel_findings:
        if finding["category"] in KERNEL_LOST:
            health = LOST
        elif finding["category"] in KERNEL_DEGRADED:
            health = DEGRADED if health != LOST else health
        else:
            continue
        text = finding.get("summary") or finding["category"]
        seen[text] = seen.get(text, 0) + finding.get("count", 1)
    if seen:
        problems.append("kernel log: " + ", ".join(
            "%s%s" % (text, " (x%d)" % count if count > 1 else "") for text, count in seen.items()))
    if tool_info["answered"]:
        gpu["responding"] = bool(gpu["in_tool_output"]) and health != LOST
        if not gpu["in_tool_output"] and health == OK:
            health = DEGRADED
            problems.append("%s no longer reports it while it is still on the PCI bus" % tool_info["name"])
    elif tool_info["outcome"] in (MISSING, NOT_USED) and metrics_ok:
        gpu["responding"] = health != LOST  # no tool installed: sysfs metric reads are the GPU answering
    else:
        gpu["responding"] = False if health == LOST else None
        if health == OK:
            health = UNKNOWN
            problems.append("%s; sysfs shows it on the bus" % (tool_info["reason"] or "GPU tool gave no answer"))
    if gpu.get("runtime_status") == "suspended" and not problems:
        problems.append("runtime-suspended (idle): metrics not read, to avoid waking it")
    gpu["health"] = health
    gpu["problems"] = problems
    return gpu


def collect(module, tool="auto", rocm_smi="rocm-smi", amd_smi="amd-smi", sysfs_root="/sys", timeout=15,
            metrics_timeout=5, index_order="auto", proc_root="/proc", clock=time.monotonic):
    """Everything the GPU tool and sysfs say about the host's GPUs, before any health verdict."""
    start = clock()
    sysfs_gpus = _sysfs.scan_gpus(sysfs_root)
    notes = [] if sysfs_gpus else ["sysfs: no AMD GPU found under %s" % sysfs_root]
    tool_info, cards, system, doc = run_gpu_tool(module, tool, rocm_smi, amd_smi, timeout, clock)
    order = resolve_index_order(index_order, tool_info["name"], doc, tool_info["path"])
    tool_info["index_order"] = order
    tool_info["driver_version"] = system.get("driver_version")
    gpus, join_notes = join(cards, sysfs_gpus, order, tool_info["name"] or "tool", tool_info["answered"])
    notes.extend(join_notes)

    by_bdf = dict((g["bdf"], g) for g in sysfs_gpus)
    # Metrics from sysfs only where the tool gave none: each sysfs metric read costs SMU traffic.
    need = [by_bdf[g["bdf"]] for g in gpus
            if g["bdf"] in by_bdf and not by_bdf[g["bdf"]].get("lost")
            and all(g[k] is None for k in METRIC_KEYS)]
    metrics = _sysfs.read_metrics_all(need, metrics_timeout) if need else {}
    kfd = _sysfs.kfd_nodes(sysfs_root)
    gfx_by_bdf = dict((node["bdf"], _rocm_smi.gfx_from_target_version(node["gfx_target_version"]))
                      for node in kfd.values())
    for gpu in gpus:
        got = metrics.get(gpu["bdf"]) or {}
        for key in METRIC_KEYS:
            if gpu[key] is None:
                gpu[key] = got.get(key)
        gpu["_metrics_ok"] = any(got.get(k) is not None for k in METRIC_KEYS)
        if gpu["gfx_version"] is None:
            gpu["gfx_version"] = gfx_by_bdf.get(gpu["bdf"])
    processes = _sysfs.kfd_processes(sysfs_root, kfd, proc_root)
    tool_info["probe_elapsed_s"] = round(clock() - start, 3)
    return {"gpus": gpus, "tool": tool_info, "processes": processes, "index_order": order, "notes": notes,
            "kfd_available": os.path.isdir(os.path.join(sysfs_root, "class", "kfd", "kfd")),
            "_sysfs": by_bdf}


def apply_health(collected, kernel_findings=()):
    """Give every GPU its health verdict; returns the public result {gpus, count, tool, processes, ...}."""
    gpus, by_bdf, tool_info = collected["gpus"], collected["_sysfs"], collected["tool"]
    findings_by_bdf = {}
    for finding in kernel_findings or ():
        bdf = normalize_bdf(finding.get("bdf") or "")
        if bdf and finding["category"] in KERNEL_LOST + KERNEL_DEGRADED:
            findings_by_bdf.setdefault(bdf, []).append(finding)
    for bdf in sorted(findings_by_bdf):
        if not any(g["bdf"] == bdf for g in gpus):
            ghost = _blank(None, bdf)  # known only from the kernel log: gone from sysfs and the tool
            ghost["in_tool_output"] = False if tool_info["answered"] else None
            gpus.append(ghost)
    for gpu in gpus:
        assess(gpu, by_bdf.get(gpu["bdf"]), tool_info, findings_by_bdf.get(gpu["bdf"], []),
               gpu.pop("_metrics_ok", False))
        if findings_by_bdf.get(gpu["bdf"]) and "kernel_log" not in gpu["sources"]:
            gpu["sources"].append("kernel_log")
    index_by_bdf = dict((g["bdf"], g["index"]) for g in gpus)
    for proc in collected["processes"]:
        proc["index"] = index_by_bdf.get(proc["bdf"])
    return {"gpus": gpus, "count": len(gpus), "tool": tool_info, "processes": collected["processes"],
            "index_order": collected["index_order"], "notes": collected["notes"],
            "kfd_available": collected["kfd_available"]}


def probe(module, kernel_findings=(), **kwargs):
    """collect + apply_health: the host's GPUs with a health verdict each."""
    return apply_health(collect(module, **kwargs), kernel_findings)
