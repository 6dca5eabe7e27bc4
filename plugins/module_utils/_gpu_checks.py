# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the GPU and kernel-log evidence and checks that families share.

Collectors (``collectors()``): ``gpus`` (the GPU probe: one GPU-tool call joined with sysfs),
``kernel_log`` (read and scanned ONCE per run, whatever checks need it) and ``gpu_view`` (derived
from both: host-level kernel findings attributed, health per GPU, the host's GPU-naming policy
applied — ``excluded_gpus``, ``gpu_watchlist``). A family lists them with its own collectors.

Evaluations (``evaluate_*``): each takes the run's context and the family's OWN ``CheckSpec``, so
a problem carries that family's suggested fix and its severity (a soft family check turns what
would fail into a warning). A family declares e.g.
``CheckSpec("gpu_health", ..., needs=GPU_NEEDS, evaluate=_gpu_checks.evaluate_health)``.
"""

from __future__ import annotations

import time

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks, _gpus
from ansible_collections.gpuops.preflight.plugins.module_utils._checks import UNKNOWN, WARN, problem
from ansible_collections.gpuops.preflight.plugins.module_utils._host_runner import Collector, CollectorError
from ansible_collections.gpuops.preflight.plugins.module_utils._pci import gpu_name, parse_gpu_refs, ref_matches
from ansible_collections.gpuops.preflight.plugins.module_utils._timeparse import iso
from ansible_collections.gpuops.preflight.plugins.module_utils._values import all_sensors_implausible, duration, implausible_text

GIB = 1024.0 ** 3
# What GPU checks and the kernel-log check read.
GPU_NEEDS = ("gpus", "gpu_view")
KERNEL_LOG_NEEDS = ("kernel_log", "gpu_view")


# ---------------------------------------------------------------- naming GPUs


def gpu_ref(gpu):
    """The small GPU identity carried by problems and summaries."""
    ref = {"index": gpu.get("index"), "bdf": gpu.get("bdf"), "excluded": bool(gpu.get("excluded"))}
    if gpu.get("exclusion_reason"):
        ref["exclusion_reason"] = gpu["exclusion_reason"]
    return ref


def label(gpu):
    return "GPU %s" % _checks.gpu_label(gpu)


def times_text(finding):
    count = finding.get("count", 1)
    return " (x%d)" % count if count > 1 else ""


def parse_policy(values, option):
    """GPU names with their optional reasons: [(('index', 10), 'SMU 0xFFFFFFFF errors'), ...]."""
    values = values or []
    refs = parse_gpu_refs(values, option)
    reasons = [v.get("reason") if isinstance(v, dict) else None for v in values]
    return list(zip(refs, reasons))


def mark_policy(gpus, excluded, watchlist, index_map=None, order_known=True, mixed_vendors=False):
    """Flag excluded and watchlisted GPUs; returns (unmatched names, notes about names not applied, refused names).

    An index names a GPU in the GPU tool's numbering. When the tool did not answer, that numbering
    is a guess (PCI or DRM order): ``index_map`` ({index: bdf}, from the last run in which the tool
    answered) then says which GPU an index meant; without it, an index is not applied to a lost
    GPU (the guess could put the exclusion on the wrong card and hide a loss). On a host with GPUs
    of both vendors indices collide: an index is refused (one line each in ``refused``), since the
    GPU the operator took out of service cannot be told.
    """
    unmatched, notes, refused = [], [], []
    index_map = dict((int(k), v) for k, v in (index_map or {}).items())
    for refs, flag in ((excluded, "excluded"), (watchlist, "watchlisted")):
        what = "excluded_gpus" if flag == "excluded" else "gpu_watchlist"
        for ref, reason in refs:
            kind, value = ref
            if kind == "index" and mixed_vendors:
                same = ["%s %s" % (g.get("vendor"), g.get("bdf")) for g in gpus if g.get("index") == value]
                refused.append("%s names GPU %s by index, refused: this host has AMD and NVIDIA GPUs and each vendor's "
                               "tool numbers its own from 0 (%s); name it by PCI address" % (
                                   what, value, "index %s: %s" % (value, ", ".join(same)) if same
                                   else "no GPU has index %s" % value))
                continue
            if kind == "index" and not order_known and value in index_map:
                ref = ("bdf", index_map[value])
            hits = [g for g in gpus if ref_matches(ref, g)]
            if kind == "index" and not order_known and ref[0] == "index":
                lost = [g for g in hits if g.get("health") == _gpus.LOST]
                if lost:
                    notes.append("%s names GPU %s by index, but the GPU tool did not answer and the index order is "
                                 "a guess: not applied to the lost GPU at %s; name GPUs by PCI address"
                                 % (what, value, lost[0]["bdf"]))
                    hits = [g for g in hits if g not in lost]
                    if not hits:
                        continue
            for gpu in hits:
                gpu[flag] = True
                if flag == "excluded" and reason:
                    gpu["exclusion_reason"] = reason
            if not hits:
                unmatched.append((flag, ref))
    for gpu in gpus:
        gpu.setdefault("excluded", False)
        gpu.setdefault("watchlisted", False)
    return unmatched, notes, refused


def attribute_host_findings(findings, gpus):
    """On a one-GPU host, an amdgpu line that names no PCI address can only be about that GPU.

    Only the amdgpu driver's own lines: a PCIe bridge's line (pcieport) or a job's stderr
    (``Memory access fault by GPU node-2``) says nothing about which device failed; a line that names
    a device by PCI id (``pci_id``) is about that device, joined by ``_gpus.join_findings`` or not at all.
    """
    real = [g for g in gpus if g.get("bdf")]
    if len(real) != 1:
        return findings
    out = []
    for finding in findings:
        if not finding.get("bdf") and not finding.get("pci_id") and "amdgpu" in (finding.get("line") or ""):
            finding = dict(finding, bdf=real[0]["bdf"], attributed=True)
        out.append(finding)
    return out


# ---------------------------------------------------------------- collectors


def kernel_log_source(value):
    """The kernel_log option: 'auto', 'journal', 'dmesg', 'none', or the path of a file."""
    if value in ("auto", "journal", "dmesg", "none"):
        return value, None
    return "file", value


def _collect_gpus(ctx, deadline):
    params = ctx.params
    return _gpus.collect(
        ctx.module, tool=params["gpu_tool"], rocm_smi=params["rocm_smi"], amd_smi=params["amd_smi"],
        sysfs_root=params["sysfs_root"], timeout=min(params["gpu_tool_timeout"], max(deadline - 3, 1)),
        metrics_timeout=min(5, max(deadline - params["gpu_tool_timeout"], 1)), vendor=params["gpu_vendor"],
        nvidia_smi=params["nvidia_smi"])


def _kernel_log():
    """The kernel-log scanner, imported on the hosts that read the log: the controller imports this
    module for the declarations and never compiles the scanner and its pattern tables."""
    from ansible_collections.gpuops.preflight.plugins.module_utils import _kernel_log as scanner

    return scanner


# Seconds a host clock may be off the controller's before a controller-time kernel_log_since is moved by the
# difference (the task's own transit and templating take a second or two).
CLOCK_SKEW_TOLERANCE = 60


def since_on_host(since, controller_time, host_now):
    """(``kernel_log_since`` on the host's clock, the host clock's offset in seconds or None). The host dates its
    log lines by its own clock: one a year behind the controller's took every line for older than the step, one
    ahead took every line since boot for new."""
    if since is None or controller_time is None:
        return since, None
    offset = host_now - controller_time
    if abs(offset) <= CLOCK_SKEW_TOLERANCE:
        return since, None
    return since + offset, round(offset)


def _collect_kernel_log(ctx, deadline):
    source, path = kernel_log_source(ctx.params["kernel_log"])
    since, skew = since_on_host(ctx.params.get("kernel_log_since"), ctx.params.get("controller_time"), ctx.now)
    if since is not None and since > ctx.now + CLOCK_SKEW_TOLERANCE:
        # no line can be that new: the log would read clean having been read for nothing
        raise CollectorError("kernel_log_since %s is %s in the future of this host's clock: no kernel log line can be "
                             "that new (epoch milliseconds instead of seconds?)"
                             % (iso(since) if since < 253402300800 else repr(since), duration(since - ctx.now)))
    # room inside the deadline for auto's fallback from the journal to dmesg
    read, findings = _kernel_log().scan_kernel_log(ctx.module, source, path, since, max(deadline - 3, 1))
    info = {"source": read.source, "read": not (read.error or read.timed_out), "since": since, "error": read.error,
            "timed_out": read.timed_out, "lines_scanned": len(read.lines), "elapsed_s": round(read.elapsed, 3)}
    if skew is not None:
        info["clock_offset_s"] = skew
    if read.note:
        info["note"] = read.note
    if read.unscanned:
        info["unscanned"] = read.unscanned
    if read.error or read.timed_out:
        raise CollectorError(read.error or "timed out after %ss" % deadline, timed_out=read.timed_out, info=info)
    return {"info": info, "findings": findings}


def _derive_view(ctx, _deadline):
    """The host's GPUs with health, policy marks and the kernel-log findings that belong to them."""
    params = ctx.params
    source = kernel_log_source(params.get("kernel_log", "none"))[0]
    log = ctx.value("kernel_log")
    log_failure = None
    info = {"source": source, "read": False, "since": params.get("kernel_log_since")}
    if log is not None:
        info = dict(log["info"])
    elif "kernel_log" in ctx.outcomes:
        error = ctx.outcomes["kernel_log"].error
        info.update(getattr(error, "info", None) or {})
        log_failure = str(error) if isinstance(error, CollectorError) else ctx.failure("kernel_log")
    findings = list(log["findings"]) if log is not None else []
    view = {"gpus": [], "probe": None, "findings": findings, "log_info": info, "log_failure": log_failure,
            "log_source": source, "unmatched": [], "policy_notes": [], "policy_refused": [], "watch_hits": {}}
    collected = ctx.value("gpus")
    if collected is not None:
        findings = _kernel_log().resolve_addresses(findings, [g["bdf"] for g in collected["gpus"] if g.get("bdf")])
        findings = attribute_host_findings(
            _gpus.join_findings(findings, collected["gpus"], collected.get("pci_topology")), collected["gpus"])
        probe = _gpus.apply_health(collected, findings)
        view.update(gpus=probe["gpus"], probe=probe, findings=findings)
        order_known = all(t.get("answered") for t in probe["tools"].values())
        view["unmatched"], view["policy_notes"], view["policy_refused"] = mark_policy(
            probe["gpus"], parse_policy(params.get("excluded_gpus"), "excluded_gpus"),
            parse_policy(params.get("gpu_watchlist"), "gpu_watchlist"), params.get("index_map"), order_known,
            probe.get("mixed_vendors", False))
        view["watch_hits"] = watch_hits(probe["gpus"], findings, params.get("gpu_watch_window"), ctx.now)
    view["log_info"]["findings"] = findings
    return view


def watch_hits(gpus, findings, window, now):
    """{bdf: findings} of watchlisted GPUs seen within ``window`` seconds of ``now`` (a finding whose time
    cannot be read counts as inside: evidence is never dropped for want of a date). No window: none."""
    if window is None:
        return {}
    hits = {}
    for gpu in gpus:
        if not gpu.get("watchlisted") or not gpu.get("bdf"):
            continue
        recent = [f for f in findings if f.get("bdf") == gpu["bdf"]
                  and (f.get("last_epoch") is None or f["last_epoch"] >= now - window)]
        if recent:
            hits[gpu["bdf"]] = recent
    return hits


def _publish_view(ctx):
    view = ctx.value("gpu_view") or {}
    gpus = view.get("gpus") or []
    probe = view.get("probe") or {}
    # GPUs a scheduler may use, by index; by PCI address on a host with GPUs of two vendors (indices collide)
    mixed = probe.get("mixed_vendors", False)
    usable = [gpu_name(g, mixed) for g in gpus if g["health"] == _gpus.OK and not g["excluded"]
              and (mixed or g["index"] is not None)]
    unverified = [gpu_name(g, mixed) for g in gpus if g["health"] == _gpus.UNKNOWN and not g["excluded"]
                  and (mixed or g["index"] is not None)]
    out = {
        "gpus": gpus,
        "gpu_count": len(gpus),
        "usable_gpus": usable,
        "unverified_gpus": unverified,
        "gpu_tool": probe.get("tool"),
        "processes": probe.get("processes") or [],
        "notes": probe.get("notes") or [],
        "kernel_log": view.get("log_info") or {"source": None, "read": False},
    }
    if "expected_gpu_count" in ctx.params:
        out["expected_gpu_count"] = ctx.params["expected_gpu_count"]
    return out


def collectors(after=()):
    """The shared GPU collectors; ``after``: collectors of the family that must be done first."""
    return {
        "gpus": Collector("gpus", _collect_gpus, lambda params: "GPU probe", after=after),
        "kernel_log": Collector(
            "kernel_log", _collect_kernel_log,
            lambda params: "reading the kernel log (%s)" % kernel_log_source(params["kernel_log"])[0],
            after=after, wanted=lambda params: kernel_log_source(params["kernel_log"])[0] != "none",
            timeout_check="kernel_log",
            hint="Read the kernel log on the host by hand (journalctl -k -b); it needs root or the systemd-journal "
                 "group (dmesg: kernel.dmesg_restrict)."),
        "gpu_view": Collector("gpu_view", _derive_view, lambda params: "GPU view", after=("gpus", "kernel_log"),
                              inline=True, publish=_publish_view),
    }


def kernel_log_disabled(params):
    """``applies`` of a kernel-log check: the reason it does not run, or None."""
    if kernel_log_source(params.get("kernel_log"))[0] == "none":
        return "kernel log reading disabled (kernel_log: none)"
    return None


# ---------------------------------------------------------------- evaluations


def _health_counts(gpus):
    counts = {}
    for gpu in gpus:
        counts[gpu["health"]] = counts.get(gpu["health"], 0) + 1
    return ", ".join("%d %s" % (counts[h], h) for h in _gpus.HEALTH_STATES if h in counts) or "none found"


# What an excluded GPU's problems suggest, instead of "add it to excluded_gpus".
EXCLUDED_FIX = ("It is in excluded_gpus (not used): repair or replace it when convenient, and take it out of "
                "excluded_gpus once it is healthy again.")
WATCH_FIX = ("A watched GPU with recent kernel-log findings is not trusted with a long step: read the lines "
             "(journalctl -k -b), then power-cycle the rig or add the GPU to excluded_gpus. "
             "preflight_watch_window sets what counts as recent.")
SILENT_TOOL_FIX = {
    _gpus.AMD: "Check the GPU tool on the host by hand (rocm-smi --showuse); a hung rocm-smi often means a hung GPU: "
               "read the kernel log. Clear a stuck rocm_smi mutex by deleting /dev/shm/rocm_smi*.",
    _gpus.NVIDIA: "Check nvidia-smi on the host by hand (nvidia-smi -q); a hung nvidia-smi often means a hung GPU or "
                  "driver: read the kernel log (NVRM Xid lines). \"couldn't communicate with the NVIDIA driver\" means "
                  "the nvidia kernel module is not loaded or failed (lsmod | grep nvidia; dmesg | grep NVRM); \"Insufficient "
                  "Permissions\" means the user the check runs as may not open /dev/nvidia* (run it with become, or "
                  "pass the GPUs into the container).",
}
UNKNOWN_GPU_FIX = "Check the GPU by hand (rocm-smi or nvidia-smi, dmesg)."
# A GPU whose every sensor reading is implausible (_values.all_sensors_implausible): the all-ones reads of an SMU or
# firmware that stopped answering. Not verified, not proven broken: the kernel log tells, a reset usually clears it.
IMPLAUSIBLE_FIX = {
    _gpus.AMD: "Its sensors read only impossible values (all-ones), as they do when the GPU's SMU stopped answering: read "
               "the kernel log (journalctl -k -b | grep -i -e amdgpu -e smu) for SMU, hang or reset lines, then reset the "
               "GPU with nothing running on it (rocm-smi --gpureset -d <index>, as root) or power-cycle the rig and check "
               "again; keep it out of work (excluded_gpus) until it reads real values.",
    _gpus.NVIDIA: "Its sensors read only impossible values or failed reads (all-ones, ERR!), as they do when the GPU's firmware (GSP) or SMU "
                  "stopped answering: read the kernel log (journalctl -k -b | grep NVRM) for Xid lines, then reset the GPU "
                  "with nothing running on it (nvidia-smi -r -i <index>, as root) or power-cycle the rig and check again; "
                  "keep it out of work (excluded_gpus) until it reads real values.",
}
# A GPU a job or a container hides from the GPU tool (_gpus.confinement): the host itself can tell.
HIDDEN_FIX = ("It is hidden from this job or container, not judged: run the check on the host itself (outside the job "
              "or container) to judge every GPU; inside, only the GPUs given to the job are checked.")
# What a usable GPU's warning suggests (each warning says what it is about; the GPU may take work).
GPU_WARNING_FIX = ("The GPU may take work: act on the warning when convenient (it says what to do); nvidia-smi -q, "
                   "rocm-smi or amd-smi on the host tell more.")
MIXED_INDEX_FIX = ("Name the GPU by its PCI address in excluded_gpus / gpu_watchlist (e.g. 0000:41:00.0, as lspci "
                   "-D or the summary's gpus list shows it): on a host with AMD and NVIDIA GPUs, rocm-smi and nvidia-smi "
                   "each number their own GPUs from 0.")


def missing_tool_fix(family):
    """What to do when no GPU tool is found, in the family's own variable names (training_health_rocm_smi...)."""
    return ("Install the GPU tool on the host (ROCm's rocm-smi or amd-smi, NVIDIA's nvidia-smi) or point "
            "{0}_rocm_smi / {0}_nvidia_smi at it; set {0}_gpu_tool: sysfs to rely on sysfs on purpose."
            .format(family.option_prefix))


def seen_text(finding, now):
    """'x3, last seen 2026-12-01 09:12:00 UTC, 2 h ago' for a finding (its count and last time)."""
    parts = ["x%d" % finding["count"]] if finding.get("count", 1) > 1 else []
    epoch = finding.get("last_epoch")
    if epoch is not None:
        parts.append("last seen %s UTC, %s ago" % (time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch)),
                                                   duration(now - epoch)))
    elif finding.get("last_seen"):
        parts.append("last seen %s" % finding["last_seen"])
    return ", ".join(parts)


def _fix_for(gpu, fix):
    return EXCLUDED_FIX if gpu.get("excluded") else fix


def _unknown_fix(gpu):
    """What to do about a GPU whose state is unknown: hidden from the tool, every sensor implausible, or else."""
    if gpu.get("hidden_from_tool"):
        return HIDDEN_FIX
    if all_sensors_implausible(gpu):
        return IMPLAUSIBLE_FIX.get(_gpus.vendor_of(gpu), IMPLAUSIBLE_FIX[_gpus.AMD])
    return UNKNOWN_GPU_FIX


def gone_untold(view):
    """[(tool, count, text)]: GPUs provably gone from a GPU tool's list that cannot be told apart (amd-smi metric
    prints no address and ``list`` gave none: ``shortfall``). The GPUs it may be are ``unknown``; lost and
    excluded ones among them may be the gone ones, so only the rest is counted (never a GPU too many)."""
    by_bdf = dict((g["bdf"], g) for g in view["gpus"])
    out = []
    for _vendor, tool in sorted(view["probe"]["tools"].items()):
        short = tool.get("shortfall")
        if not short:
            continue
        maybe = [by_bdf[b] for b in short["gpus"] if b in by_bdf]
        explained = sum(1 for g in maybe if g.get("excluded") or g["health"] == _gpus.LOST)
        count = max(short["missing"] - explained, 0)
        if count:
            out.append((tool, count, "%s lists %d GPU(s) where sysfs shows %d with a DRM card: %d no longer answer%s "
                                     "it, which cannot be told (%s)" % (
                                         tool["name"], short["listed"], short["shown"], count,
                                         "s" if count == 1 else "", short["why"])))
    return out


def evaluate_health(ctx, spec):
    """Lost and degraded GPUs fail (warn for a soft spec), and so does a watched GPU with findings within the
    watch window; unknown ones are unknown, one line per host when the GPU tool itself gave no answer."""
    view = ctx.value("gpu_view")
    gpus, tools = view["gpus"], view["probe"]["tools"]
    problems = []
    # One line per GPU tool that gave no answer, for all of its vendor's GPUs left unknown (not one per GPU).
    unknown = {}
    for gpu in gpus:
        if gpu["health"] == _gpus.UNKNOWN:
            unknown.setdefault(_gpus.vendor_of(gpu), []).append(gpu)
    silent = {}
    for vendor, tool in tools.items():
        if tool["answered"] or tool["outcome"] == _gpus.NOT_USED:
            continue
        # A tool that gave no list on a host where sysfs shows none of its GPUs (a container hiding sysfs): their
        # state is as unknown as that of GPUs sysfs does show. A missing tool is said below either way.
        if unknown.get(vendor) or (not _gpus.listed(tool) and tool["outcome"] != _gpus.MISSING
                                   and not any(_gpus.vendor_of(g) == vendor for g in gpus)):
            silent[vendor] = tool
    for gpu in gpus:
        if gpu["health"] in (_gpus.LOST, _gpus.DEGRADED):
            problems.append(problem(spec.name, spec.fail_status, "%s is %s: %s" % (
                label(gpu), gpu["health"], "; ".join(gpu["problems"])), _fix_for(gpu, spec.fix), gpu=gpu_ref(gpu)))
        elif gpu["health"] == _gpus.UNKNOWN and _gpus.vendor_of(gpu) not in silent:
            problems.append(problem(spec.name, UNKNOWN, "%s state unknown: %s" % (label(gpu), "; ".join(gpu["problems"])),
                                    _unknown_fix(gpu), gpu=gpu_ref(gpu)))
        elif view["watch_hits"].get(gpu["bdf"]):
            hits = view["watch_hits"][gpu["bdf"]]
            newest = max(hits, key=lambda f: (f.get("last_epoch") is None, f.get("last_epoch") or 0))
            seen = "; ".join("%s (%s)" % (f.get("summary") or f["category"], seen_text(f, ctx.now)) for f in hits)
            message = "%s is on gpu_watchlist and the kernel log shows %s within the watch window (%s)" % (
                label(gpu), seen, duration(ctx.params["gpu_watch_window"]))
            problems.append(problem(spec.name, spec.fail_status, message, _fix_for(gpu, WATCH_FIX), gpu=gpu_ref(gpu),
                                    last_epoch=newest.get("last_epoch")))
        if gpu["health"] not in (_gpus.LOST, _gpus.DEGRADED) and not gpu.get("excluded"):
            # a GPU still in use: each of its notes is a warning of its own (a sick one's failure says it all)
            for warning in gpu.get("warnings") or ():
                problems.append(problem(spec.name, WARN, "%s: %s" % (label(gpu), warning), GPU_WARNING_FIX,
                                        gpu=gpu_ref(gpu)))
    for _tool, _count, text in gone_untold(view):
        problems.append(problem(spec.name, spec.fail_status, text, spec.fix))  # as a GPU missing from the tool
    for vendor, tool in sorted(silent.items()):
        shown = len(unknown.get(vendor, ()))
        problems.append(problem(
            spec.name, UNKNOWN,
            "GPU state unknown: %s; %s" % (tool["reason"], "sysfs shows %d GPU(s) on the bus and none lost" % shown
                                           if shown else sysfs_unread_text(view) or "sysfs shows none of its GPUs either"),
            missing_tool_fix(ctx.family) if tool["outcome"] == _gpus.MISSING
            else SILENT_TOOL_FIX.get(vendor, SILENT_TOOL_FIX[_gpus.AMD])))
    for tool in tools.values():
        if tool["outcome"] == _gpus.MISSING and ctx.params.get("gpu_tool") != "sysfs" and tool not in silent.values():
            problems.append(problem(spec.name, UNKNOWN, "%s: GPU health read from sysfs only (no tool, no SMU check)"
                                    % tool["reason"], missing_tool_fix(ctx.family)))
    for note in view["policy_notes"]:
        problems.append(problem(spec.name, UNKNOWN, note, "Name GPUs in excluded_gpus and gpu_watchlist by PCI "
                                                          "address (e.g. 0000:22:00.0) on such hosts."))
    for refusal in view.get("policy_refused") or ():
        problems.append(problem(spec.name, spec.fail_status, refusal, MIXED_INDEX_FIX))
    if view["log_failure"]:
        vendors = set(_gpus.vendor_of(g) for g in gpus) or set([_gpus.AMD])
        unchecked = " and ".join(LOG_FINDINGS[v] for v in _gpus.VENDORS if v in vendors)
        problems.append(problem(spec.name, UNKNOWN, "%s not checked: could not read the kernel log (%s)"
                                % (unchecked, view["log_failure"]), ctx.family.collectors["kernel_log"].hint))
    return problems, "%d GPU(s): %s" % (len(gpus), _health_counts(gpus))


def evaluate_available(ctx, spec):
    """A rig expected to have GPUs with none usable: none found, or every one excluded, lost or degraded.
    GPUs only ``unknown`` because the tool failed while sysfs looks healthy still count (gpu_health warns)."""
    view = ctx.value("gpu_view")
    gpus, expected = view["gpus"], ctx.params.get("expected_gpu_count")
    if expected == 0:
        return [], "no GPU expected (expected_gpu_count: 0)"
    # a GPU hidden from the tool in a job or a container is not this job's to use
    usable = [g for g in gpus if not g["excluded"] and g["health"] in (_gpus.OK, _gpus.UNKNOWN)
              and not g.get("hidden_from_tool")]
    usable_count = len(usable) - sum(count for _tool, count, _text in gone_untold(view))
    if usable_count > 0:
        return [], "%d usable GPU(s)" % usable_count
    unread = sysfs_unread_text(view)
    if unread and not gpus:  # none seen where the bus could not be looked at: not "no GPU"
        why = "no GPU found, but %s" % unread
        return [problem(spec.name, UNKNOWN, why, SYSFS_UNREAD_FIX)], why
    if not gpus:
        # only a tool that answered reported none; one that hung, crashed or printed garbage said nothing
        silent = ["%s: %s" % (VENDOR_NAMES.get(vendor, vendor), tool["reason"]) for vendor, tool
                  in sorted(view["probe"]["tools"].items()) if not tool["answered"] and tool["reason"]
                  and tool["outcome"] not in (_gpus.NOT_USED, _gpus.MISSING)]
        why = "no GPU found (sysfs shows none, and %s)" % (
            "the GPU tool gave no answer: %s" % "; ".join(silent) if silent else "the GPU tool reports none")
    else:
        counts = {}
        for gpu in gpus:
            state = "excluded" if gpu["excluded"] else (
                "hidden from the GPU tool (unknown)" if gpu.get("hidden_from_tool") else gpu["health"])
            counts[state] = counts.get(state, 0) + 1
        why = "%d GPU(s), none usable: %s" % (len(gpus), ", ".join("%d %s" % (n, s) for s, n in sorted(counts.items())))
    return [problem(spec.name, spec.fail_status, why, spec.fix)], why


SYSFS_UNREAD_FIX = ("Let the check read /sys/bus/pci/devices: run it on the host itself, or give the container the "
                    "host's /sys (a read-only bind mount) and the GPU device files (/dev/kfd, /dev/dri, /dev/nvidia*).")


def sysfs_unread_text(view):
    """'sysfs could not be read (cannot list ...)' when the GPU probe could not list the PCI bus, else ''."""
    unread = (view.get("probe") or {}).get("sysfs_unread")
    return "sysfs could not be read (%s)" % unread if unread else ""


def unverified_note(unverified, tools):
    """' (N not verified: why)' for GPUs counted without a word from their tool: it gave no answer, or it
    answered without saying which GPU an entry is (amd-smi's metric prints no address; see gpu_health)."""
    if not unverified:
        return ""
    hidden = [g for g in unverified if g.get("hidden_from_tool")]
    garbage = [g for g in unverified if g not in hidden and all_sensors_implausible(g)]
    answered = [g for g in unverified if (tools.get(_gpus.vendor_of(g)) or {}).get("answered") and g not in hidden
                and g not in garbage]
    whys = [(len(unverified) - len(answered) - len(hidden) - len(garbage), "the GPU tool gave no answer"),
            (len(answered), "the GPU tool's answer could not be matched to them, see gpu_health"),
            (len(garbage), "every sensor reading implausible, see gpu_health"),
            (len(hidden), "hidden from the GPU tool in this job or container, see gpu_health")]
    return " (%s)" % "; ".join("%d not verified: %s" % (count, why) for count, why in whys if count)


def evaluate_count(ctx, spec):
    """Responding GPUs against expected_gpu_count minus the excluded ones; GPU names that match nothing."""
    view = ctx.value("gpu_view")
    gpus, expected = view["gpus"], ctx.params.get("expected_gpu_count")
    problems = []
    for flag, (_kind, value) in view["unmatched"]:
        what = "excluded_gpus" if flag == "excluded" else "gpu_watchlist"
        problems.append(problem(spec.name, WARN, "%s names GPU %s, which this host does not have" % (what, value),
                                "Correct %s in the inventory (GPUs are named by the GPU tool's index, rocm-smi's or "
                                "nvidia-smi's, or by PCI address)." % what))
    counted = [g for g in gpus if not g["excluded"]]
    found = [g for g in counted if g["responding"] is not False]
    unverified = [g for g in found if g["responding"] is None]
    gone = gone_untold(view)
    found_count = len(found) - sum(count for _tool, count, _text in gone)
    if expected is None:
        return problems, "%d GPU(s) responding (expected_gpu_count not set)" % found_count
    excluded_count = len([g for g in gpus if g["excluded"]])
    want = max(expected - excluded_count, 0)
    want_text = "%d" % want if not excluded_count else "%d (%d minus %d excluded)" % (want, expected, excluded_count)
    note = unverified_note(unverified, view["probe"]["tools"])
    if gone:
        note = " (%s)" % "; ".join(text for _tool, _count, text in gone)
    unread = sysfs_unread_text(view)
    if found_count < want and unread:  # GPUs sysfs would show cannot be looked for: fewer found is no count
        why = "expected %s GPUs, found %d%s, and %s" % (want_text, found_count, note, unread)
        problems.append(problem(spec.name, UNKNOWN, why, SYSFS_UNREAD_FIX))
        return problems, why
    if found_count != want:
        missing = [g for g in counted if g["responding"] is False]
        detail = ""
        if missing:
            detail = "; not responding: " + ", ".join("%s %s" % (label(g), g["health"]) for g in missing)
        problems.append(problem(spec.name, spec.fail_status, "expected %s GPUs, found %d%s%s"
                                % (want_text, found_count, note, detail), spec.fix))
    return problems, "expected %s GPUs, found %d%s" % (want_text, found_count, note)


def missing_process_lists(probe):
    """[(vendor, why)] for each vendor whose list of processes holding GPU memory could not be read."""
    lists = probe.get("process_lists")
    if lists is None:
        lists = {_gpus.AMD: probe.get("processes_available", probe.get("kfd_available"))}
    missing = []
    for vendor in sorted(lists):
        if lists[vendor]:
            continue
        if vendor == _gpus.NVIDIA:
            tool = (probe.get("tools") or {}).get(vendor) or {}
            why = tool.get("process_list") or tool.get("reason") or "nvidia-smi answered in %s format, which has no process list" % (
                tool.get("format") or "another")
            missing.append((vendor, why))
        else:
            missing.append((vendor, "KFD is not available (no /sys/class/kfd)"))
    return missing


VENDOR_NAMES = {_gpus.AMD: "AMD", _gpus.NVIDIA: "NVIDIA"}
# What the kernel log would have told about a vendor's GPUs (said when it could not be read).
LOG_FINDINGS = {_gpus.AMD: "SMU failures", _gpus.NVIDIA: "Xid errors"}
VRAM_UNKNOWN_FIX = {
    _gpus.AMD: "Check that the amdgpu driver exposes KFD (ls /sys/class/kfd/kfd/proc).",
    _gpus.NVIDIA: "Check that nvidia-smi answers on the host (nvidia-smi -q -x); a hung nvidia-smi often means a hung "
                  "GPU or driver.",
}


def evaluate_vram(ctx, spec):
    """Processes still holding VRAM (from KFD, or nvidia-smi's process list); unknown for each vendor whose list could
    not be read, naming why (the processes the other vendor's list shows are still reported)."""
    view = ctx.value("gpu_view")
    gpus, probe = view["gpus"], view["probe"]
    vendors = set(_gpus.vendor_of(g) for g in gpus)
    missing = [(v, why) for v, why in missing_process_lists(probe) if v in vendors]
    unknown = [problem(spec.name, UNKNOWN, "no process list for the %s GPUs: %s; cannot tell who holds VRAM on them"
                       % (VENDOR_NAMES[vendor], why), VRAM_UNKNOWN_FIX[vendor]) for vendor, why in missing]
    if missing and len(missing) == len(vendors):
        return unknown, "no process list"
    min_bytes = ctx.params["vram_min_mb"] * 1024 * 1024
    by_bdf = dict((g["bdf"], g) for g in gpus)
    unknown += implausible_unknowns(spec, gpus, VRAM_FIELDS, "VRAM use unknown",
                                    "the tool's memory figures cannot be trusted")
    problems = []
    for proc in probe["processes"]:
        if (proc.get("vram_bytes") or 0) <= min_bytes:
            continue
        gpu = by_bdf.get(proc.get("bdf")) or {"index": proc.get("index"), "bdf": proc.get("bdf")}
        problems.append(problem(spec.name, WARN, "pid %s (%s) holds %.2f GiB of VRAM on %s"
                                % (proc["pid"], proc.get("name") or "?", proc["vram_bytes"] / GIB, label(gpu)),
                                spec.fix.replace("<pid>", str(proc["pid"])), gpu=gpu_ref(gpu)))
    return problems + unknown, "%d process(es) holding VRAM" % len(problems)


# What to do about a GPU whose tool gave a reading no GPU can give (65535 C, inf, N/A or ERR! where a value belongs),
# per vendor.
IMPLAUSIBLE_READING_FIX = {
    _gpus.AMD: ("Read the GPU's sensors by hand (rocm-smi --showtemp --showmeminfo vram, amd-smi metric, or "
                "/sys/class/drm/card*/device/hwmon/hwmon*/temp*_input in millidegrees): a sentinel such as 65535 C is a "
                "failed sensor read; if it persists, check the kernel log for SMU errors."),
    _gpus.NVIDIA: ("Read the GPU by hand (nvidia-smi -q -d TEMPERATURE,MEMORY -i <bdf>): a sentinel such as 4294967295 "
                   "or [Unknown Error] is a failed read; if it persists, check the kernel log for Xid errors and reset "
                   "the GPU (nvidia-smi -r) or reboot."),
}
TEMPERATURE_FIELDS = ("temperature_edge_c", "temperature_junction_c")
VRAM_FIELDS = ("vram_total_bytes", "vram_used_bytes")


def implausible_unknowns(spec, gpus, fields, what, why):
    """An unknown problem for each GPU with a reading of ``fields`` that is no measurement (its
    ``implausible_readings``), naming it: the check that needs the reading cannot run on that GPU."""
    problems = []
    for gpu in gpus:
        garbage = [r for r in gpu.get("implausible_readings") or () if r.get("field") in fields]
        if garbage:
            problems.append(problem(spec.name, UNKNOWN, "%s %s: %s, not a measurement (not used; %s)" % (
                label(gpu), what, "; ".join(implausible_text(r) for r in garbage), why),
                IMPLAUSIBLE_READING_FIX[_gpus.vendor_of(gpu)].replace("<bdf>", gpu.get("bdf") or "<bdf>"),
                gpu=gpu_ref(gpu)))
    return problems


def evaluate_temperature(ctx, spec):
    """GPUs at or above the warning temperature before work starts; unknown for a GPU whose temperature reading was
    no temperature (outside _values.PLAUSIBLE: a sentinel, inf): it is not used, and not taken for a cool GPU."""
    gpus, warn_c = ctx.value("gpu_view")["gpus"], ctx.params["gpu_temp_warn_c"]
    problems = implausible_unknowns(spec, [g for g in gpus if g.get("temperature_edge_c") is None],
                                    TEMPERATURE_FIELDS, "temperature unknown", "not taken for a cool GPU")
    unknown = len(problems)
    for gpu in gpus:
        temp = gpu.get("temperature_edge_c")
        if temp is not None and temp >= warn_c:
            problems.append(problem(spec.name, WARN, "%s is at %.0f C (edge), at or above %.0f C before work starts"
                                    % (label(gpu), temp, warn_c), spec.fix, gpu=gpu_ref(gpu)))
    temps = [g["temperature_edge_c"] for g in gpus if g.get("temperature_edge_c") is not None]
    text = "hottest GPU %s" % ("%.0f C" % max(temps) if temps else "unknown")
    return problems, text + ("; %d GPU(s) with an implausible temperature reading" % unknown if unknown else "")


def _unscanned(ctx, view, spec):
    unscanned = view["log_info"].get("unscanned")
    if not unscanned:
        return []
    return [problem(spec.name, UNKNOWN, "kernel log not scanned whole: %s" % unscanned.get("description"),
                    "Give the %s check more time (%s_timeouts: {%s: 60}), or rotate the log file it reads."
                    % (spec.name, ctx.family.option_prefix, spec.name))]


def _where(gpu, finding):
    if gpu is not None:
        return label(gpu)
    if finding.get("bdf"):
        return "device %s" % finding["bdf"]
    if finding.get("not_gpu"):  # _gpus.join_port_findings: the devices it names are no GPU's
        return "PCI device %s (no GPU at or below it)" % ", ".join(
            " ".join(x for x in (d.get("driver"), d.get("bdf")) if x) for d in finding.get("devices") or ())
    return "a GPU the log line does not name"


def evaluate_kernel_log(ctx, spec):
    """Findings gpu_health does not already report: hard ones fail; soft ones warn, one warning per GPU and
    category with the count and the last time seen."""
    view = ctx.value("gpu_view")
    findings, gpus = view["findings"], view["gpus"]
    by_bdf = dict((g["bdf"], g) for g in gpus)
    problems, folded, groups, order = _unscanned(ctx, view, spec), 0, {}, []
    for finding in findings:
        gpu = by_bdf.get(finding.get("bdf"))
        what = finding.get("summary") or finding["category"]
        if gpu is not None and (_gpus.health_level(finding) or gpu["health"] in (_gpus.LOST, _gpus.DEGRADED)
                                or gpu["bdf"] in view["watch_hits"]):
            folded += 1  # gpu_health already reports this GPU: one line per sick GPU, not one per log line
            continue
        if finding.get("severity") == _checks.HARD:
            where = _where(gpu, finding)
            times = seen_text(finding, ctx.now)
            problems.append(problem(spec.name, spec.fail_status, "%s: %s (%s): %s" % (
                where, what, times, finding.get("message", "")) if times else "%s: %s: %s" % (
                where, what, finding.get("message", "")), _fix_for(gpu or {}, finding.get("fix")),
                gpu=gpu_ref(gpu) if gpu else None))
            continue
        key = (finding.get("bdf"), finding["category"], bool(finding.get("not_gpu")))  # a device that is no GPU apart
        if key not in groups:
            groups[key] = {"gpu": gpu, "findings": []}
            order.append(key)
        groups[key]["findings"].append(finding)
    for key in order:
        gpu, same = groups[key]["gpu"], groups[key]["findings"]
        newest = max(same, key=lambda f: (f.get("last_epoch") is not None, f.get("last_epoch") or 0))
        merged = dict(newest, count=sum(f.get("count", 1) for f in same))
        where = _where(gpu, newest)
        problems.append(problem(spec.name, WARN, "%s: %s (%s): %s" % (
            where, newest.get("summary") or newest["category"], seen_text(merged, ctx.now), newest.get("message", "")),
            _fix_for(gpu or {}, newest.get("fix")), gpu=gpu_ref(gpu) if gpu else None))
    return problems, "%d finding(s): %d reported here, %d under gpu_health" % (len(findings), len(problems), folded)


def _clock_offset(view, spec):
    """A warning when the host's clock is off the controller's (the window was moved: since_on_host)."""
    offset = view["log_info"].get("clock_offset_s")
    if offset is None:
        return []
    side = "ahead of" if offset > 0 else "behind"
    return [problem(spec.name, WARN, "the host's clock is %s %s the controller's: the kernel log was read from the "
                    "step's start on the host's own clock" % (duration(abs(offset)), side),
                    "Synchronise the host's clock (timedatectl set-ntp true; chronyc tracking shows the offset): log "
                    "lines, summaries and file ages are compared across hosts.")]


def evaluate_new_kernel_findings(ctx, spec):
    """After a step: every finding since the step started is news worth a warning."""
    view = ctx.value("gpu_view")
    by_bdf = dict((g["bdf"], g) for g in view["gpus"])
    problems = _unscanned(ctx, view, spec) + _clock_offset(view, spec)
    for finding in view["findings"]:
        gpu = by_bdf.get(finding.get("bdf"))
        where = _where(gpu, finding)
        problems.append(problem(spec.name, WARN, "new since the step started on %s: %s%s: %s" % (
            where, finding.get("summary") or finding["category"], times_text(finding), finding.get("message", "")),
            finding.get("fix"), gpu=gpu_ref(gpu) if gpu else None))
    since = "the step started" if ctx.params.get("kernel_log_since") else "boot"
    return problems, "no new GPU failures since %s" % since
