# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: one view of a host's GPUs, AMD and NVIDIA, with a health verdict per GPU.

Joins each vendor's GPU tool (AMD: rocm-smi, else amd-smi; NVIDIA: ``nvidia-smi -q -x``; ONE call
per vendor, under a hard timeout, in a process group of its own) with sysfs, on the PCI address.
Which vendors are probed: ``vendor="amd"|"nvidia"``, or ``"auto"``: the vendors whose GPUs sysfs
shows (PCI vendor 0x1002 / 0x10de and a GPU class). sysfs is always read for identity and
liveness, each GPU under its own deadline, concurrently with the tools; metrics are read from
sysfs only for AMD GPUs the tool gave none for. Health per GPU:

- ``lost``: PCI config space reads all-ones, the kernel log says it fell off the bus, or
  nvidia-smi says "GPU is lost" / cannot open it ("Unknown Error");
- ``degraded``: a kernel-log finding whose pattern row says so (SMU failures, a failed reset or
  init, uncorrectable RAS errors, an unrecovered hang, KFD skipping it); the tool answered (listing
  other GPUs, or none: rocm-smi's "No JSON data to report") but no longer for this one; the tool
  lists it but gives neither temperature nor power and its sysfs hwmon reads fail too (its SMU may be
  hung; not judged while it is runtime-suspended, nor for reads the driver refuses: EPERM); no driver
  (or the wrong one) is bound to it; its ``power/runtime_status`` reads ``error``
  (RUNTIME_STATUS_HEALTH);
  NVIDIA: uncorrectable ECC errors since the driver loaded, row remapping failed, a page retirement pending for
  double-bit errors, a recovery action asked for, ERR! in most of its fields (a remap or retirement merely
  pending is a warning);
- ``unknown``: the tool failed, timed out, is missing, reaches no GPU or the driver does not answer, and sysfs
  shows nothing wrong; or a sysfs read of this GPU did not return in time (the file is named); or (NVIDIA) this
  process runs in a job or a container that hides the GPU from nvidia-smi (``hidden_from_tool``, ``confinement``);
  or every sensor reading it gave, from any source, is implausible (``_values.all_sensors_implausible``: 65535 C,
  4294967295 %, the all-ones reads of an SMU or firmware that stopped answering);
- ``ok``: the tool answered for it (or, AMD with no tool installed, sysfs metric reads worked).

AMD tool entries are joined to sysfs by the address the tool printed, by the tool's index only where
that is provably the same GPU (``place_cards``); an entry that cannot be placed is given to no GPU, and the
GPUs it may describe are ``unknown``.

``index`` is the vendor tool's: rocm-smi's (PCI-address order since ROCm 6.0, DRM card order
before; a GPU that vanished from the tool keeps its place, unless sysfs shows GPUs split into compute
partitions, which the tools number one by one), nvidia-smi's (PCI order of the GPUs
the nvidia driver holds; never the device minor number). On a host with GPUs of both vendors the
indices collide: ``mixed_vendors`` is true and GPUs are best named by PCI address.
"""

from __future__ import annotations

import os
import re
import time

from ansible_collections.gpuops.preflight.plugins.module_utils import _deadline, _files, _rocm_smi, _sysfs, _tool, _toolpath
from ansible_collections.gpuops.preflight.plugins.module_utils._pci import is_partial, mixed_vendors, normalize_bdf
from ansible_collections.gpuops.preflight.plugins.module_utils._values import (
    all_sensors_implausible, clean_text, first_line, implausible_text)

OK = "ok"
DEGRADED = "degraded"
LOST = "lost"
UNKNOWN = "unknown"
HEALTH_STATES = (OK, DEGRADED, LOST, UNKNOWN)
_SEVERITY = {OK: 0, UNKNOWN: 1, DEGRADED: 2, LOST: 3}

AMD = "amd"
NVIDIA = "nvidia"
VENDORS = (AMD, NVIDIA)

# Which kernel-log findings speak about a GPU's health (the rest belong to the kernel_log check): the
# pattern row that gave a finding says it (its ``gpu_health``: 'lost' or 'degraded'). NVIDIA besides: every
# hard finding that was not recovered (an Xid that means the GPU, its memory, firmware, links or bus;
# application Xids are soft) is degraded.
_HARD = "hard"  # _checks.HARD
_SOFT = "soft"  # _checks.SOFT

# How the tool run ended, beyond rocm-smi's own outcomes.
TIMEOUT = "timeout"
MISSING = "missing"
ERROR = "error"
NOT_USED = "not_used"

METRIC_KEYS = ("busy_percent", "temperature_edge_c", "power_w")

# What a GPU's ``power/runtime_status`` says of it beyond being awake or asleep: {status: (health, problem)}. The PM
# core shows "error" once a runtime suspend or resume callback of the driver failed (an SMU that did not come back from
# BACO, ROCm/amdgpu #183); the error latches: every later wake fails with EINVAL, so nothing can open the GPU until
# its driver is rebound (drivers/base/power: runtime_status_show, rpm_resume).
RUNTIME_STATUS_HEALTH = {
    "error": (DEGRADED, "its runtime power management failed (power/runtime_status: error): the driver could not "
                        "suspend or resume it, and every later wake fails until the driver is rebound"),
}
SYSFS_TIMEOUT = _sysfs.GPU_READ_TIMEOUT
_KILL_AFTER = 2    # _tool.run_tool's SIGKILL grace

# A scheduler's job or a container may let this process open only some of the host's GPUs (cgroup device rules, the
# NVIDIA container runtime): nvidia-smi then lists only those, while sysfs, /proc/driver/nvidia and /dev show the
# host's. A GPU missing from nvidia-smi there is hidden, not failed: its state is unknown (``hidden_from_tool``).
# What tells that this process runs confined, declared once; the first that holds is named. Not CUDA_VISIBLE_DEVICES:
# it narrows what CUDA programs see, never nvidia-smi (NVML lists every GPU the process may open).
CONFINED_BY_ENV = (                     # (environment variable, what it says)
    ("SLURM_JOB_ID", "a Slurm job"),
    ("PBS_JOBID", "a PBS job"),
    ("LSB_JOBID", "an LSF job"),
    ("NVIDIA_VISIBLE_DEVICES", "a container of the NVIDIA runtime"),
)
CONFINED_BY_FILE = (                    # (file under the host's root, what it says)
    (".dockerenv", "a Docker container"),
    ("run/.containerenv", "a Podman container"),
)
CONFINED_BY_CGROUP = (                  # (word in a line of /proc/self/cgroup, what it says)
    ("kubepods", "a Kubernetes pod"),
    ("slurm", "a Slurm job"),
    ("/pbs", "a PBS job"),
    ("/lsf/", "an LSF job"),
    ("docker", "a Docker container"),
    ("libpod", "a Podman container"),
    ("containerd", "a container"),
    ("/lxc", "an LXC container"),
)
_DEVICE_NODE = re.compile(r"^nvidia\d+$")


def vendor_of(gpu):
    """A GPU's vendor; AMD for an entry that names none (the AMD-only facts before NVIDIA came)."""
    return gpu.get("vendor") or AMD


def listed(tool_info):
    """Whether the tool's answer is its list of GPUs (possibly empty): a GPU sysfs shows that it leaves out is
    missing from it. A tool that could not run lists nothing (its GPUs are unknown, not missing)."""
    return bool(tool_info.get("listed", tool_info.get("answered")))


def worst(*healths):
    return max(healths, key=lambda h: _SEVERITY.get(h, 0))


# --------------------------------------------------------------------------------------------
# the tools

def _tool_info(name, vendor, path, timeout):
    info = {"name": name, "vendor": vendor, "path": path, "cmd": None, "rc": None, "elapsed_s": 0.0,
            "timed_out": False, "answered": False, "listed": False, "outcome": NOT_USED, "reason": None,
            "stderr": "", "timeout_s": timeout}
    if vendor == NVIDIA:
        # process_list: why nvidia-smi's answer holds no process list for some GPU, else null
        info.update(format=None, index_order="bdf", driver_version=None, cuda_version=None, schema=None, process_list=None)
    else:
        # list: the one extra amd-smi call for addresses (place_by_list); shortfall: GPUs gone from the tool's list
        # that cannot be told apart (join)
        info.update(list=None, shortfall=None)
    return info


def _no_nvidia_answer():
    """What ``run_nvidia_tool`` returns as parsed when nvidia-smi was not asked or did not answer."""
    return {"outcome": None, "format": None, "cards": [], "processes": [], "errors": [], "system": {}, "reason": None}


def choose_tool(module, tool, rocm_smi, amd_smi):
    """(name, path, why_not) of the AMD tool to call; path None (and why_not says why) when unusable."""
    if tool == "sysfs":
        return None, None, None
    candidates = []
    if tool in ("auto", "rocm-smi"):
        candidates.append(("rocm-smi", rocm_smi or "rocm-smi"))
    if tool in ("auto", "amd-smi"):
        candidates.append(("amd-smi", amd_smi or "amd-smi"))
    reasons = []
    for name, wanted in candidates:
        path, why = _toolpath.locate(module, wanted, _tool.ROCM_BIN_DIRS)
        if path:
            return name, path, None
        reasons.append(why)
    return candidates[0][0], None, "no GPU tool found: %s" % "; ".join(reasons)


def _run(module, info, argv, timeout, clock):
    """Run the tool; fill ``info``. Returns the ToolRun when the tool ran and ended by itself, else None."""
    run = _tool.run_tool(module, argv, timeout, clock=clock)
    info.update(cmd=run.cmd, rc=run.rc, elapsed_s=round(run.elapsed, 3), timed_out=run.timed_out,
                stderr=_excerpt(run.stderr))
    if run.timed_out:
        info.update(outcome=TIMEOUT, reason=run.describe())
        return None
    if run.launch_failure:  # timeout could not start it: not found, or not executable
        info.update(outcome=MISSING, reason=run.describe())
        return None
    if not run.ran:
        info.update(outcome=ERROR, reason=clean_text(run.describe()))
        return None
    return run


def run_gpu_tool(module, tool, rocm_smi, amd_smi, timeout, clock=time.monotonic):
    """Call the AMD GPU tool once. Returns (info, cards, system, doc)."""
    name, path, why_not = choose_tool(module, tool, rocm_smi, amd_smi)
    info = _tool_info(name, AMD, path, timeout)
    if tool == "sysfs":
        info["reason"] = "GPU tool disabled (tool=sysfs): facts from sysfs only"
        return info, [], {}, None
    if not path:
        info.update(outcome=MISSING, reason=why_not)
        return info, [], {}, None
    # amd-smi's and nvidia-smi's parsers are imported when their tool runs: a host (or the controller,
    # which reads only this module's vocabulary) that never calls them does not compile them
    from ansible_collections.gpuops.preflight.plugins.module_utils import _amd_smi

    args = _rocm_smi.SHOW_ARGS if name == "rocm-smi" else _amd_smi.METRIC_ARGS
    run = _run(module, info, [path] + args, timeout, clock)
    if run is None:
        return info, [], {}, None
    stdout, stderr = clean_text(run.stdout), clean_text(run.stderr)
    if name == "rocm-smi":
        outcome, doc, reason = _rocm_smi.classify(stdout, stderr, run.rc)
        cards, system = _rocm_smi.parse(doc) if doc is not None else ([], {})
    else:
        outcome, doc, reason = _amd_smi.classify(stdout, stderr, run.rc)
        cards, system = _amd_smi.parse(doc) if doc is not None else ([], {})
    # NO_DATA is an answer too: the tool ran and listed no GPU, so every GPU sysfs shows is missing from it
    info.update(outcome=outcome, reason=reason, answered=outcome == _rocm_smi.ANSWERED,
                listed=outcome in (_rocm_smi.ANSWERED, _rocm_smi.NO_DATA))
    return info, cards, system, doc


def place_by_list(module, info, cards, sysfs_gpus, order, budget, clock=time.monotonic):
    """amd-smi's metric cards, each with the PCI address ``amd-smi list --json`` gives its index, and notes.

    Called only where ``place_cards`` cannot place every card (metric prints no address): ONE more call, within
    ``budget`` seconds (what is left of the probe's), recorded as ``info["list"]``. Its map is used only when it
    numbers exactly the GPUs metric numbered (a GPU that vanished between the calls renumbers the rest); otherwise,
    or when it fails, the cards stay as they were (``join`` then gives their data to no GPU) and a note says why.
    """
    from ansible_collections.gpuops.preflight.plugins.module_utils import _amd_smi

    if not place_cards(cards, sysfs_gpus, positions(sysfs_gpus, order), info["name"])[1]:
        return cards, []
    record = {"cmd": None, "rc": None, "elapsed_s": 0.0, "timed_out": False, "outcome": None, "reason": None}
    info["list"] = record
    if budget < 1:
        record.update(outcome=NOT_USED, reason="no time left in the probe's %ss for amd-smi list" % info["timeout_s"])
        return cards, [record["reason"]]
    run = _tool.run_tool(module, [info["path"]] + _amd_smi.LIST_ARGS, budget, clock=clock)
    record.update(cmd=run.cmd, rc=run.rc, elapsed_s=round(run.elapsed, 3), timed_out=run.timed_out)
    found, count = ({}, 0)
    if run.ran and not run.rc:
        doc = _amd_smi.extract_json(clean_text(run.stdout))
        found, count = _amd_smi.address_map(doc) if doc is not None else ({}, 0)
    wanted = sorted(card["index"] for card in cards if card.get("index") is not None)
    if not run.ran or run.rc:
        why = run.describe() if not run.ran else "exited %s, %s" % (
            run.rc, first_line(clean_text(run.stderr)) or first_line(clean_text(run.stdout)) or "no output")
        record.update(outcome=TIMEOUT if run.timed_out else _rocm_smi.FAILED, reason=why)
    elif not count:
        record.update(outcome=_rocm_smi.UNPARSEABLE, reason="printed no GPU entries: %s" % (
            first_line(clean_text(run.stdout)) or first_line(clean_text(run.stderr)) or "nothing"))
    elif count != len(cards) or sorted(found) != wanted:
        record.update(outcome="mismatch", reason="numbers %d GPU(s), %d with a PCI address (%s), where metric numbered "
                      "%d (%s)" % (count, len(found), ", ".join(str(i) for i in sorted(found)) or "none", len(cards),
                                   _indices(cards)))
    else:
        record.update(outcome=_rocm_smi.ANSWERED)
        return [dict(card, bdf=card.get("bdf") or found.get(card.get("index"))) for card in cards], []
    return cards, ["amd-smi list --json (for the PCI addresses metric does not print) %s: no addresses from it"
                   % record["reason"]]


def run_nvidia_tool(module, nvidia_smi, timeout, clock=time.monotonic, tool="auto"):
    """Call ``nvidia-smi -q -x`` once. Returns (info, parsed) with parsed as ``_nvidia_smi.parse_output``."""
    from ansible_collections.gpuops.preflight.plugins.module_utils import _nvidia_smi

    parsed = _no_nvidia_answer()
    path, why_not = (None, None) if tool == "sysfs" else _toolpath.locate(module, nvidia_smi or "nvidia-smi")
    info = _tool_info("nvidia-smi", NVIDIA, path, timeout)
    if tool == "sysfs":
        info["reason"] = "GPU tool disabled (tool=sysfs): facts from sysfs only"
        return info, parsed
    if not path:
        info.update(outcome=MISSING, reason=why_not)
        return info, parsed
    run = _run(module, info, [path] + _nvidia_smi.QUERY_ARGS, timeout, clock)
    if run is None:
        return info, parsed
    parsed = _nvidia_smi.parse_output(run.stdout, run.stderr, run.rc)
    system = parsed["system"]
    answered = parsed["outcome"] == _nvidia_smi.ANSWERED
    info.update(outcome=parsed["outcome"], reason=parsed["reason"], answered=answered, listed=answered,
                format=parsed["format"], driver_version=system.get("driver_version"),
                cuda_version=system.get("cuda_version"), schema=system.get("schema"))
    return info, parsed


def _excerpt(text, lines=5):
    kept = [line.strip() for line in clean_text(text).splitlines() if line.strip()]
    return "\n".join(kept[:lines])


def resolve_index_order(requested, tool_name, doc, tool_path):
    """'bdf' or 'drm': how the AMD tool numbers GPUs (see the module docstring)."""
    if requested in ("bdf", "drm"):
        return requested
    if tool_name == "amd-smi":
        return "bdf"
    if doc is not None:
        order = _rocm_smi.index_order(doc)
        if order:
            return order
    return _rocm_smi.index_order_from_rocm_version(_sysfs.rocm_version(tool_path)) or "bdf"


# --------------------------------------------------------------------------------------------
# joining tool and sysfs

def positions(sysfs_gpus, order):
    """{bdf: index} rocm-smi gives GPUs it enumerates: those bound to a DRM card. None of it where sysfs shows a
    GPU split into compute partitions (or cannot tell): the tools number each partition, so ranks are no index."""
    if any(_sysfs.partition_mode(g) for g in sysfs_gpus):
        return {}
    bound = [g for g in sysfs_gpus if g.get("drm_card") is not None]
    key = (lambda g: g["drm_card"]) if order == "drm" else (lambda g: g["bdf"])
    return dict((g["bdf"], i) for i, g in enumerate(sorted(bound, key=key)))


def _blank(index, bdf, vendor=AMD):
    gpu = {"index": index, "bdf": bdf, "vendor": vendor, "drm_card": None, "model": None, "device_id": None,
           "gfx_version": None, "vram_total_bytes": None, "vram_used_bytes": None, "busy_percent": None,
           "temperature_edge_c": None, "power_w": None, "perf_level": None, "runtime_status": None,
           "health": UNKNOWN, "problems": [], "warnings": [], "sources": [], "in_tool_output": None,
           "responding": None,
           "implausible_readings": []}  # readings outside _values.PLAUSIBLE, not used: {field, value, unit, source}
    if vendor == NVIDIA:
        gpu.update(uuid=None, mig_mode=None, persistence_mode=None, xid_errors=[], ecc=None, retired_pages=None,
                   remapped_rows=None, clocks_event_reasons=None, performance_state=None, vram_free_bytes=None,
                   hidden_from_tool=None)
    return gpu


def _sort_key(gpu):
    return (gpu["index"] is None, gpu["index"] if gpu["index"] is not None else 0, gpu["bdf"] or "")


def _add_sysfs(gpu, sysgpu):
    gpu["drm_card"] = sysgpu.get("drm_card")
    gpu["runtime_status"] = sysgpu.get("runtime_status")
    for field in ("device_id", "vram_total_bytes", "vram_used_bytes", "perf_level"):
        if gpu.get(field) is None and sysgpu.get(field) is not None:
            gpu[field] = sysgpu[field]
    gpu["implausible_readings"].extend(sysgpu.get("implausible") or ())  # amdgpu's VRAM counters, held
    gpu["sources"].append("sysfs")


_CARD_FIELDS = ("model", "device_id", "gfx_version", "vram_total_bytes", "vram_used_bytes", "busy_percent",
                "temperature_edge_c", "power_w", "perf_level")


def place_cards(cards, sysfs_gpus, place, tool_name):
    """Which GPU each of the tool's cards describes: ([(bdf, card)], unplaced cards, why they are unplaced).

    A card is placed at the PCI address the tool printed for it; by its index (``place``: ``positions``) only
    where that is provably the same GPU: no card has an address, no GPU sysfs shows is split into partitions,
    and the tool numbers exactly the GPUs sysfs shows (as many, 0 to n-1). Otherwise a card without an address
    is placed nowhere: a guess could give it a neighbour's address. With no GPU in sysfs there is nothing to
    mistake it for: each card stands alone (bdf None).
    """
    if any(card.get("bdf") for card in cards):
        bare = [card for card in cards if not card.get("bdf")]
        why = "%s printed no PCI address for its GPU %s, only for the others" % (tool_name, _indices(bare))
        return [(card["bdf"], card) for card in cards if card.get("bdf")], bare, why if bare else None
    if not cards or not sysfs_gpus:
        return [(None, card) for card in cards], [], None
    bdf_at = dict((i, bdf) for bdf, i in place.items())
    indices = sorted(card["index"] for card in cards if card.get("index") is not None)
    if place and len(indices) == len(cards) and indices == sorted(bdf_at):
        return [(bdf_at[card["index"]], card) for card in cards], [], None
    split = ["%s (%s)" % (g["bdf"], _sysfs.partition_mode(g)) for g in sysfs_gpus if _sysfs.partition_mode(g)]
    if split:
        why = ("%s printed no PCI addresses and numbers each compute partition as a GPU; sysfs shows split (or "
               "cannot tell): %s" % (tool_name, ", ".join(split)))
    else:
        why = "%s printed no PCI addresses and numbers %d GPU(s) (%s) where sysfs shows %d with a DRM card" % (
            tool_name, len(cards), _indices(cards), len(place))
    return [], list(cards), why


def _indices(cards):
    return ", ".join(str(card.get("index")) for card in cards)


def join(cards, sysfs_gpus, order, tool_name, tool_listed):
    """AMD GPU entries from the tool's cards and the sysfs scan, joined on the PCI address (``place_cards``).

    Several cards at one address are partitions of one device: one GPU, each field from the first card that
    has it. A GPU sysfs shows that no card was placed at is missing from the tool's list, unless some card
    could not be placed: it may be that one, so its health is unknown, never another GPU's verdict.
    """
    place = positions(sysfs_gpus, order)
    by_bdf = dict((g["bdf"], g) for g in sysfs_gpus)
    placed, unplaced, why = place_cards(cards, sysfs_gpus, place, tool_name)
    shortfall = None
    gpus, notes, taken, shared = {}, [], set(), {}
    if why:
        notes.append(why + ": that data is given to no GPU")
    for bdf, card in placed:
        key = bdf or "index:%s" % card.get("index")
        gpu = gpus.get(key)
        if gpu is None:
            gpu = gpus[key] = _blank(card.get("index"), bdf)
            gpu["sources"].append(tool_name)
        else:
            shared.setdefault(key, [gpu["index"]]).append(card.get("index"))
        mine = dict((field, card.get(field)) for field in _CARD_FIELDS)
        if mine["temperature_edge_c"] is None:
            # no edge sensor (MI300X): its junction (amd-smi's hotspot) is the temperature it reports
            mine["temperature_edge_c"] = card.get("temperature_junction_c")
        for field, value in mine.items():
            if gpu[field] is None and value is not None:
                gpu[field] = value
        gpu["implausible_readings"].extend(card.get("implausible") or ())
        gpu["in_tool_output"] = True
        taken.add(card.get("index"))
    for key, indices in sorted(shared.items()):
        notes.append("%s lists GPUs %s at one PCI address, %s: partitions of one device, one GPU here"
                     % (tool_name, ", ".join(str(i) for i in indices), key))
    for bdf, sysgpu in by_bdf.items():
        gpu = gpus.get(bdf)
        if gpu is None:
            index = place.get(bdf)
            if index in taken:
                notes.append("cannot place GPU %s in %s's numbering (index %s is another GPU's)" % (bdf, tool_name, index))
                index = None
            gpu = gpus[bdf] = _blank(index, bdf)
            gpu["in_tool_output"] = False if tool_listed else None
            if unplaced:
                gpu["in_tool_output"] = None
                gpu["_unattributed"] = "which %s entry describes it cannot be told: %s" % (tool_name, why)
        _add_sysfs(gpu, sysgpu)
    listed_count = len(set(card.get("index") for card in cards))
    if unplaced and place and listed_count < len(place):
        # no GPU split (place is empty then): the tool numbers one entry per GPU, so this many are gone from it
        shortfall = {"shown": len(place), "listed": listed_count, "missing": len(place) - listed_count,
                     "gpus": sorted(bdf for bdf, g in gpus.items() if g.get("_unattributed")), "why": why}
    return sorted(gpus.values(), key=_sort_key), notes, shortfall


_NVIDIA_CARD_FIELDS = ("model", "uuid", "vram_total_bytes", "vram_used_bytes", "vram_free_bytes", "busy_percent",
                       "temperature_edge_c", "power_w", "persistence_mode", "mig_mode", "performance_state",
                       "clocks_event_reasons")


def join_nvidia(parsed, sysfs_gpus, tool_listed, confined=None, driver_gpus=()):
    """NVIDIA GPU entries from nvidia-smi's answer (cards and per-GPU errors) and sysfs, on the PCI address.

    nvidia-smi numbers the GPUs the nvidia driver holds in PCI-address order; a GPU it cannot open
    keeps its place. The XML prints no index, so it is that rank; the table and CSV print their own.
    ``confined``: why this process may see only some of the host's GPUs (``confinement``), or None. nvidia-smi
    then numbers only the GPUs given to it, and a GPU of the host it does not list (sysfs, or ``driver_gpus``:
    /proc/driver/nvidia/gpus) is hidden from it, its ``hidden_from_tool`` saying why.
    """
    from ansible_collections.gpuops.preflight.plugins.module_utils._nvidia_smi import judge_card

    cards, errors = parsed["cards"], parsed["errors"]
    held = [g["bdf"] for g in sysfs_gpus if g.get("driver") == "nvidia"] if not confined else []
    known = set(held) | set(c["bdf"] for c in cards if c["bdf"]) | set(e["bdf"] for e in errors)
    rank = dict((bdf, i) for i, bdf in enumerate(sorted(known)))
    held_at = dict((i, bdf) for i, bdf in enumerate(sorted(held)))
    gpus, notes = {}, []
    for card in cards:
        index = card["index"] if card["index"] is not None else rank.get(card["bdf"])
        if index is None:
            index = card["position"]
        bdf = card["bdf"] or held_at.get(index)  # a CSV without pci.bus_id: its order is PCI order
        gpu = gpus.setdefault(bdf or "index:%s" % index, _blank(index, bdf, NVIDIA))
        for field in _NVIDIA_CARD_FIELDS:
            gpu[field] = card[field]
        gpu["implausible_readings"] = list(card["implausible"])
        gpu["ecc"] = dict(card["ecc"])
        gpu["retired_pages"] = dict(card["retired_pages"])
        gpu["remapped_rows"] = dict(card["remapped_rows"])
        gpu["sources"].append("nvidia-smi")
        gpu["in_tool_output"] = True
        gpu["_tool_verdict"] = judge_card(card)
    for error in errors:
        gpu = gpus.get(error["bdf"])
        if gpu is None:
            gpu = gpus[error["bdf"]] = _blank(rank.get(error["bdf"]), error["bdf"], NVIDIA)
            gpu["in_tool_output"] = False
            gpu["sources"].append("nvidia-smi")
        health, problems, warnings = gpu.pop("_tool_verdict", (OK, [], []))
        gpu["_tool_verdict"] = (worst(health, error["health"]), problems + [error["message"]], warnings)
    for sysgpu in sysfs_gpus:
        gpu = gpus.get(sysgpu["bdf"])
        if gpu is None:
            index = rank.get(sysgpu["bdf"]) if sysgpu.get("driver") == "nvidia" else None
            if index is not None and any(g["index"] == index for g in gpus.values()):
                notes.append("cannot place GPU %s in nvidia-smi's numbering (index %s is another GPU's)"
                             % (sysgpu["bdf"], index))
                index = None
            gpu = gpus[sysgpu["bdf"]] = _blank(index, sysgpu["bdf"], NVIDIA)
            gpu["in_tool_output"] = False if tool_listed else None
            if tool_listed and confined:
                gpu["hidden_from_tool"] = confined
        _add_sysfs(gpu, sysgpu)
        gpu["perf_level"] = None  # an amdgpu file; NVIDIA's is performance_state
    for bdf in driver_gpus if tool_listed and confined else ():
        if bdf not in gpus:  # the driver's own list names a GPU sysfs does not show (sysfs masked)
            gpu = gpus[bdf] = _blank(None, bdf, NVIDIA)
            gpu.update(in_tool_output=False, hidden_from_tool=confined, sources=["/proc/driver/nvidia"])
    return sorted(gpus.values(), key=_sort_key), notes


def host_root(sysfs_root):
    """The root of the host the probe looks at: '/' for the real /sys, else the folder a simulated sysfs is in (the
    tree of a simulated host, or a support bundle: this process's own environment is not that host's)."""
    real = os.path.realpath(sysfs_root or "/sys") == "/sys"
    return "/" if real else os.path.dirname(os.path.normpath(sysfs_root)), real


def confinement(environ, root="/"):
    """Why this process may see only some of the host's GPUs ('SLURM_JOB_ID=4242: a Slurm job'), or None.

    ``environ``: the process environment; ``root``: the host's root (its ``.dockerenv``, ``proc/self/cgroup``).
    """
    for name, what in CONFINED_BY_ENV:
        value = (environ or {}).get(name)
        if value:
            return "%s=%s: %s" % (name, clean_text(value)[:64], what)
    for name, what in CONFINED_BY_FILE:
        if os.path.lexists(os.path.join(root, name)):
            return "/%s exists: %s" % (name, what)
    try:
        text = _files.read_regular(os.path.join(root, "proc", "self", "cgroup"), 64 * 1024).decode("utf-8", "replace")
    except (OSError, _files.FileProblem):
        return None
    for line in text.splitlines():
        for word, what in CONFINED_BY_CGROUP:
            if word in line.split(":", 2)[-1]:
                return "cgroup %s: %s" % (clean_text(line.strip())[:160], what)
    return None


def nvidia_driver_gpus(root="/"):
    """The GPUs the nvidia driver lists in /proc/driver/nvidia/gpus (their PCI addresses), [] when it cannot be read."""
    try:
        names = os.listdir(os.path.join(root, "proc", "driver", "nvidia", "gpus"))
    except OSError:
        return []
    return sorted(set(b for b in (normalize_bdf(n) for n in names) if b))


def nvidia_device_nodes(root="/"):
    """How many /dev/nvidia<N> nodes the host's /dev has (one per GPU the driver holds), or None when unreadable."""
    try:
        return sum(1 for name in os.listdir(os.path.join(root, "dev")) if _DEVICE_NODE.match(name))
    except OSError:
        return None


# --------------------------------------------------------------------------------------------
# health

def health_level(finding):
    """The health a kernel-log finding gives its GPU (lost, degraded), or None: the one rule for every caller."""
    level = finding.get("gpu_health")
    if level in (LOST, DEGRADED):
        return level
    if finding.get("vendor") == NVIDIA and finding.get("severity") == _HARD and not finding.get("recovered"):
        return DEGRADED
    return None


def assess(gpu, sysgpu, tool_info, kernel_findings, metrics_ok):
    """Set gpu['health'], gpu['problems'], gpu['warnings'] and gpu['responding'] from all the evidence."""
    problems = []
    health = OK
    vendor_id = _sysfs.VENDOR_IDS.get(vendor_of(gpu), _sysfs.AMD_VENDOR)
    driver = _sysfs.DRIVERS[vendor_id]
    if sysgpu is not None:
        if sysgpu.get("lost"):
            health = LOST
            problems.append("PCI config space reads all-ones: the GPU is lost from the bus")
        elif sysgpu.get("driver") != driver:
            health = DEGRADED
            problems.append("no %s driver bound to it (driver: %s)" % (driver, sysgpu.get("driver") or "none"))
        if sysgpu.get("runtime_status") in RUNTIME_STATUS_HEALTH:
            level, text = RUNTIME_STATUS_HEALTH[sysgpu["runtime_status"]]
            health = worst(health, level)
            problems.append(text)
    seen = {}  # the same failure worded several ways is one problem, with the counts added up
    for finding in kernel_findings:
        level = health_level(finding)
        if level is None:
            continue
        health = worst(health, level)
        text = finding.get("summary") or finding["category"]
        seen[text] = seen.get(text, 0) + finding.get("count", 1)
    if seen:
        problems.append("kernel log: " + ", ".join(
            "%s%s" % (text, " (x%d)" % count if count > 1 else "") for text, count in seen.items()))
    verdict = gpu.pop("_tool_verdict", None)
    if verdict is not None:
        tool_health, tool_problems, tool_warnings = verdict
        health = worst(health, tool_health)
        problems.extend(tool_problems)
        gpu["warnings"] = list(gpu.get("warnings") or []) + list(tool_warnings)
    unattributed = gpu.pop("_unattributed", None)  # the tool answered, but may have spoken of it without its address
    unread = gpu.pop("_metrics_unread", None)  # why no busy %, temperature or power came from sysfs
    hidden = gpu.get("hidden_from_tool")
    if listed(tool_info) and not unattributed:
        gpu["responding"] = bool(gpu["in_tool_output"]) and health != LOST
        if not gpu["in_tool_output"] and health == OK and hidden:
            gpu["responding"] = None  # not asked: the tool may not see it here
            health = UNKNOWN
            problems.append("%s does not list it: this process runs confined (%s), which shows %s only the GPUs "
                            "given to it" % (tool_info["name"], hidden, tool_info["name"]))
        elif not gpu["in_tool_output"] and health == OK:
            health = DEGRADED
            problems.append("%s no longer reports it while it is still on the PCI bus" % tool_info["name"])
        silent = gpu.pop("_sensors_silent", None)
        if silent and gpu["in_tool_output"]:
            health = worst(health, DEGRADED)
            problems.append("%s lists it but its sensors do not answer (no temperature or power from it, sysfs hwmon "
                            "reads failed: %s): its SMU may be hung" % (tool_info["name"], silent))
    elif tool_info["outcome"] in (MISSING, NOT_USED) and metrics_ok:
        gpu["responding"] = health != LOST  # no tool installed: sysfs metric reads are the GPU answering
    else:
        gpu["responding"] = False if health == LOST else None
        if health == OK:
            health = UNKNOWN
            why = unattributed or "%s; sysfs shows it on the bus" % (tool_info["reason"] or "GPU tool gave no answer")
            if unread and tool_info["outcome"] in (MISSING, NOT_USED):
                why += "; its sysfs metric reads gave nothing (%s)" % unread
            problems.append(why)
    garbage = all_sensors_implausible(gpu)
    if garbage:
        # the tool answered, but with no reading the GPU gave: nothing verified, nothing proven broken either
        problems.append(implausible_sensors_text(garbage))
        if health == OK:
            health = UNKNOWN
        if gpu.get("responding"):
            gpu["responding"] = None
    hung = (sysgpu or {}).get("hung")
    if hung:
        problems.append("sysfs read of %s timed out after %ss" % (hung["file"], hung["timeout_s"]))
        if health == OK:
            health = UNKNOWN
    if gpu.get("runtime_status") == "suspended" and not problems:
        problems.append("runtime-suspended (idle): metrics not read, to avoid waking it")
    gpu["health"] = health
    gpu["problems"] = problems
    gpu.setdefault("warnings", [])
    return gpu


def implausible_sensors_text(records):
    """The problem of a GPU whose every sensor reading is implausible (``_values.all_sensors_implausible``)."""
    return ("every sensor reading it gave is implausible, none a measurement (%s): what a GPU whose SMU or firmware "
            "stopped answering reads; its state cannot be verified" % "; ".join(implausible_text(r) for r in records))


# --------------------------------------------------------------------------------------------
# the probe

def _vendors_to_probe(module, vendor, found, tool, nvidia_smi, rocm_smi="rocm-smi", amd_smi="amd-smi"):
    """The vendors to probe: asked for, or (auto) those sysfs shows. With none in sysfs (a container that
    hides it), the vendors whose tool is installed; AMD when none is (its missing tool is then reported)."""
    if vendor in VENDORS:
        return [vendor]
    if vendor not in (None, "auto"):
        raise ValueError("vendor must be auto, amd or nvidia, not %r" % (vendor,))
    present = [v for v in VENDORS if any(g[3] == _sysfs.VENDOR_IDS[v] for g in found)]
    if present or tool == "sysfs":
        return present or [AMD]
    installed = []
    if choose_tool(module, tool, rocm_smi, amd_smi)[1]:
        installed.append(AMD)
    if _toolpath.locate(module, nvidia_smi or "nvidia-smi")[0]:
        installed.append(NVIDIA)
    return installed or [AMD]


def collect(module, tool="auto", rocm_smi="rocm-smi", amd_smi="amd-smi", sysfs_root="/sys", timeout=15,
            metrics_timeout=5, index_order="auto", proc_root="/proc", clock=time.monotonic, vendor="auto",
            nvidia_smi="nvidia-smi", sysfs_timeout=SYSFS_TIMEOUT, environ=None):
    """Everything the GPU tools and sysfs say about the host's GPUs, before any health verdict.

    ``environ``: the environment that tells whether this process runs in a job or a container (``confinement``);
    None: this process's own for the real /sys, none for a simulated sysfs tree (``host_root``).
    """
    start = clock()
    # the bus is listed once per probe: the GPU discovery and the topology read share the listing
    bus = _sysfs.list_pci_bus(sysfs_root)
    found, sysfs_unread = _sysfs.enumerate_gpus_read(sysfs_root, [_sysfs.AMD_VENDOR, _sysfs.NVIDIA_VENDOR], bus)
    vendors = _vendors_to_probe(module, vendor, found, tool, nvidia_smi, rocm_smi, amd_smi)
    wanted_ids = [_sysfs.VENDOR_IDS[v] for v in vendors]

    # The tools and every GPU's sysfs identity reads run side by side, each under its own deadline.
    jobs = {"sysfs": (lambda: _sysfs.scan_gpus(sysfs_root, wanted_ids, timeout=sysfs_timeout, found=found),
                      sysfs_timeout + 3),
            # which ports each GPU sits behind, for the PCIe ports' kernel-log lines (join_findings)
            "topology": (lambda: _sysfs.pci_topology(sysfs_root, bus), sysfs_timeout + 3)}
    tool_deadline = timeout + _KILL_AFTER + 3
    if AMD in vendors:
        jobs[AMD] = (lambda: run_gpu_tool(module, tool, rocm_smi, amd_smi, timeout, clock), tool_deadline)
    if NVIDIA in vendors:
        jobs[NVIDIA] = (lambda: run_nvidia_tool(module, nvidia_smi, timeout, clock, tool), tool_deadline)
    done = _deadline.run_all(jobs)
    sysfs_gpus = done["sysfs"].value if done["sysfs"].ok else []
    notes = [] if done["sysfs"].ok else ["sysfs scan %s" % done["sysfs"].describe_failure()]
    if sysfs_unread:
        notes.append("sysfs: " + sysfs_unread)

    gpus, tools, processes, order = [], {}, [], "bdf"
    kfd_available = os.path.isdir(os.path.join(sysfs_root, "class", "kfd", "kfd"))
    process_lists = {}  # per vendor: whether its list of processes holding GPU memory could be read
    for name in vendors:
        mine = [g for g in sysfs_gpus if g.get("vendor_name") == name]
        if not mine and not sysfs_unread:
            notes.append("sysfs: no %s GPU found under %s" % (name.upper() if name == AMD else "NVIDIA", sysfs_root))
        outcome = done[name]
        if name == AMD:
            if outcome.ok:
                info, cards, system, doc = outcome.value
            else:
                info, cards, system, doc = _failed_job(module, name, outcome, timeout), [], {}, None
            bound = sum(1 for g in mine if g.get("driver") == "amdgpu")
            if info["outcome"] == _rocm_smi.NO_DRIVER and bound:
                # the tools look for amdgpu in /proc/modules: a built-in driver is "not found" though it runs
                info["reason"] = ("%s says amdgpu is not loaded (\"amdgpu not found in modules\"), but sysfs shows "
                                  "%d GPU(s) bound to amdgpu: the driver is built into the kernel, which this %s "
                                  "does not recognise" % (info["name"], bound, info["name"]))
            order = resolve_index_order(index_order, info["name"], doc, info["path"])
            info["index_order"] = order
            info["driver_version"] = system.get("driver_version")
            if info["name"] == "amd-smi" and info["listed"] and cards:
                cards, list_notes = place_by_list(module, info, cards, mine, order, timeout - (clock() - start), clock)
                notes.extend(list_notes)
            joined, join_notes, info["shortfall"] = join(cards, mine, order, info["name"] or "tool", info["listed"])
            process_lists[name] = kfd_available
        else:
            if outcome.ok:
                info, parsed = outcome.value
            else:
                info, parsed = _failed_job(module, name, outcome, timeout), _no_nvidia_answer()
            root, real = host_root(sysfs_root)
            confined = confinement(os.environ if environ is None and real else environ, root) if info["listed"] else None
            joined, join_notes = join_nvidia(parsed, mine, info["listed"], confined,
                                             nvidia_driver_gpus(root) if confined else ())
            nodes = nvidia_device_nodes(root) if confined else None
            shown = sum(1 for g in joined if g["in_tool_output"])
            if nodes is not None and nodes > shown:
                join_notes.append("the host has %d NVIDIA device node(s) (/dev/nvidia0 ...) where nvidia-smi lists %d "
                                  "GPU(s): the others are hidden from this process (%s)" % (nodes, shown, confined))
            processes.extend(_nvidia_processes(parsed["processes"]))
            unlisted = ["%s (%s)" % (c["bdf"] or "GPU %s" % c["index"], c["processes_unknown"])
                        for c in parsed["cards"] if c.get("processes_unknown")]
            if unlisted:
                info["process_list"] = "nvidia-smi gives no process list for %s" % ", ".join(unlisted)
            process_lists[name] = bool(info["answered"] and info.get("format") in ("xml", "text", "table")
                                       and not unlisted)
        tools[name] = info
        gpus.extend(joined)
        notes.extend(join_notes)

    by_bdf = dict((g["bdf"], g) for g in sysfs_gpus)
    if AMD in vendors:
        _amd_extras(gpus, by_bdf, sysfs_root, proc_root, metrics_timeout, processes)
    for gpu in gpus:
        gpu.setdefault("_metrics_ok", False)
    primary = _primary(vendors, gpus)
    tools[primary]["probe_elapsed_s"] = round(clock() - start, 3)
    return {"gpus": gpus, "tool": tools[primary], "tools": tools, "processes": processes, "index_order": order,
            "notes": notes, "kfd_available": kfd_available, "processes_available": all(process_lists.values()),
            "process_lists": process_lists, "vendors": vendors, "sysfs_unread": sysfs_unread, "_sysfs": by_bdf,
            "pci_topology": done["topology"].value if done["topology"].ok else None}


def _failed_job(module, vendor, outcome, timeout):
    """The tool info of a tool call whose thread did not come back (it never should: the tool is killed)."""
    info = _tool_info("nvidia-smi" if vendor == NVIDIA else "rocm-smi", vendor, None, timeout)
    info.update(outcome=TIMEOUT if outcome.timed_out else ERROR, timed_out=outcome.timed_out,
                reason="GPU tool call %s" % outcome.describe_failure())
    return info


def _primary(vendors, gpus):
    """The vendor whose tool ``tool`` describes: the one with most GPUs (AMD on a tie)."""
    return max(vendors, key=lambda v: (sum(1 for g in gpus if g["vendor"] == v), v == AMD))


def _amd_extras(gpus, by_bdf, sysfs_root, proc_root, metrics_timeout, processes):
    """AMD only: sysfs metrics where the tool gave none, gfx versions and VRAM holders from KFD."""
    amd = [g for g in gpus if g["vendor"] == AMD]
    # Metrics from sysfs only where the tool gave none, or no temperature and no power (its sensor reads
    # failed): each sysfs metric read costs SMU traffic.
    need = [by_bdf[g["bdf"]] for g in amd
            if g["bdf"] in by_bdf and not by_bdf[g["bdf"]].get("lost") and not by_bdf[g["bdf"]].get("hung")
            and (all(g[k] is None for k in METRIC_KEYS) or _no_sensors(g))]
    metrics = _sysfs.read_metrics_all(need, metrics_timeout) if need else {}
    kfd = _sysfs.kfd_nodes(sysfs_root)
    gfx_by_bdf = dict((node["bdf"], _rocm_smi.gfx_from_target_version(node["gfx_target_version"]))
                      for node in kfd.values())
    for gpu in amd:
        got = metrics.get(gpu["bdf"]) or {}
        if got.get("runtime_status") == "suspended":
            gpu["runtime_status"] = "suspended"  # asleep since the scan: not read, not judged
        for key in METRIC_KEYS:
            if gpu[key] is None:
                gpu[key] = got.get(key)
        gpu.setdefault("implausible_readings", []).extend(got.get("implausible") or ())
        gpu["_metrics_ok"] = any(got.get(k) is not None for k in METRIC_KEYS)
        errors = got.get("read_errors") or {}
        if errors and not gpu["_metrics_ok"]:  # why sysfs gave none of them, for a GPU judged without its tool
            gpu["_metrics_unread"] = errors.get("all") or ", ".join(sorted("%s %s" % item for item in errors.items()))
        # a read the driver refused (EPERM: not runtime-active, in reset) is no sensor failing to answer
        failed = sorted("%s %s" % (name, why) for name, why in (got.get("read_errors") or {}).items()
                        if name in _SENSOR_FILES and why not in _sysfs.REFUSED)
        if gpu["in_tool_output"] and _no_sensors(gpu) and failed and gpu.get("runtime_status") != "suspended":
            gpu["_sensors_silent"] = ", ".join(failed)
        refused = sorted(name for name, why in (got.get("read_errors") or {}).items()
                         if name in _SENSOR_FILES and why in _sysfs.REFUSED)
        if _no_sensors(gpu) and refused and not failed:
            gpu["warnings"].append("amdgpu refused its sensor reads (%s: %s): it is in a reset or not runtime-active; "
                                   "its temperature and power are unknown" % (", ".join(refused), "/".join(_sysfs.REFUSED)))
        if gpu["gfx_version"] is None:
            gpu["gfx_version"] = gfx_by_bdf.get(gpu["bdf"])
    for proc in _sysfs.kfd_processes(sysfs_root, kfd, proc_root):
        proc["vendor"] = AMD
        processes.append(proc)


# read_metrics' names of the hwmon reads (temperature and power), and "all" when the reads did not return
_SENSOR_FILES = ("temp_input", "power1_input", "power1_average", "all")


def _no_sensors(gpu):
    """Neither temperature nor power: what a GPU whose SMU hangs looks like (the tool omits what it failed to read)."""
    return gpu["temperature_edge_c"] is None and gpu["power_w"] is None


def _nvidia_processes(procs):
    """nvidia-smi's process list in the KFD shape: {pid, name, bdf, index, vram_bytes} plus its own keys."""
    out = []
    for proc in procs:
        out.append({"pid": proc["pid"], "name": proc["name"], "bdf": proc["bdf"], "index": None,
                    "vram_bytes": proc["vram_bytes"], "vendor": NVIDIA, "type": proc.get("type"),
                    "command": proc.get("command"), "gpu_instance_id": proc.get("gpu_instance_id")})
    return out


# What a PCIe port's finding becomes when the devices it is about are known not to be GPUs nor to have one below.
NOT_A_GPU = {
    "severity": _SOFT,
    "gpu_health": None,
    "fix": ("The PCIe error is on a device that is not a GPU and has no GPU below it (a drive, NIC, USB or Thunderbolt "
            "controller): no GPU is affected. Check that device ('lspci -tv' shows where it sits); the GPUs' work can "
            "go on."),
}


def join_findings(findings, gpus, topology=None):
    """Kernel findings that name their device by PCI id only (``pci_id`` '1002:67df', KFD's) get the address of
    the one GPU with that vendor and device id; with none or several (identical cards) the finding stays the
    host's. A PCIe port's finding (``devices``, see ``join_port_findings``) goes to the GPUs at or below the
    devices it names. Returns a new list; changed findings are copies marked ``attributed``."""
    out = []
    for finding in join_port_findings(findings or (), gpus, topology):
        pci_id = finding.get("pci_id")
        if pci_id and not finding.get("bdf"):
            matches = [g["bdf"] for g in gpus if g.get("bdf") and _pci_id(g) == pci_id]
            if len(matches) == 1:
                finding = dict(finding, bdf=matches[0], attributed=True)
        out.append(finding)
    return out


def join_port_findings(findings, gpus, topology=None):
    """A PCIe port's finding names the port, or the device whose error it reports (``devices``), not the GPU.

    Each GPU concerned gets a copy of it (``bdf`` its address): the GPU is a device it names, shares a card with one
    (the GPU's HD-audio function), or sits below one (``topology``: ``_sysfs.pci_topology``, the ports above each
    function); and so does a GPU the log saw enumerated below the port (a device marked ``gpu``) that is no longer
    found (a GPU behind a slot whose link went down is removed: ``apply_health`` keeps it as a lost one).
    With no GPU concerned, when every device it names is known to have no GPU below it (in the topology: a function
    that is no bridge, or a bridge with functions below it, none a GPU's) and every GPU the host knows is placed in
    the topology, it is no GPU's: soft, no GPU health (``NOT_A_GPU``), marked ``not_gpu``. Otherwise (a
    topology not read, a port whose slot is now empty: what sat there is unknown) it stays the host's as it was.
    """
    gpu_bdfs = sorted(set(g["bdf"] for g in gpus if g.get("bdf")))
    # every GPU the host knows sits somewhere known (a GPU without an address, or not in sysfs, may be below any port)
    placed = topology is not None and all(g.get("bdf") for g in gpus) and all(
        _placed(b, topology) for b in gpu_bdfs) and all(_placed(f["bdf"], topology) for f in findings if f.get("bdf"))
    out = []
    for finding in findings:
        addresses = [d.get("bdf") for d in finding.get("devices") or () if d.get("bdf")]
        if finding.get("bdf") or not addresses:
            out.append(finding)
            continue
        hit = [b for b in gpu_bdfs if any(_concerns(a, b, topology) for a in addresses)]
        # a GPU the log saw enumerated below the port, gone from the GPUs found (pciehp removed it): lost there
        hit += sorted(set(d["bdf"] for d in finding["devices"] if d.get("gpu") and d.get("bdf")
                          and d["bdf"] not in gpu_bdfs and not _placed(d["bdf"], topology)))
        if hit:
            out.extend(dict(finding, bdf=b, attributed=True) for b in hit)
        elif placed and all(_has_no_gpu_below(a, topology, finding["devices"]) for a in addresses):
            out.append(dict(finding, not_gpu=True, **NOT_A_GPU))
        else:
            out.append(finding)
    return out


def join_port_findings_by_sysfs(findings, sysfs_root="/sys", listing=None):
    """``join_port_findings`` for a reader of the kernel log without a GPU probe (``gpu_kernel_log_info``): the GPUs
    (AMD and NVIDIA, whatever wording was scanned) and the PCI topology as sysfs shows them under ``sysfs_root``, read
    from one listing of the bus (``listing``: ``_sysfs.list_pci_bus``' answer when the caller has it). sysfs is read
    only when a finding is a PCIe port's. Returns a new list, as ``join_port_findings``."""
    findings = list(findings or ())
    if not any(f.get("devices") and not f.get("bdf") for f in findings):
        return findings
    listing = listing or _sysfs.list_pci_bus(sysfs_root)
    found = _sysfs.enumerate_gpus_read(sysfs_root, [_sysfs.AMD_VENDOR, _sysfs.NVIDIA_VENDOR], listing)[0]
    gpus = [{"bdf": entry[0], "vendor": _sysfs.VENDOR_NAMES.get(entry[3])} for entry in found]
    return join_port_findings(findings, gpus, _sysfs.pci_topology(sysfs_root, listing))


def _entry(bdf, topology):
    """A GPU's topology entry: its own, else (an MI300-style partition) its physical function's."""
    if not topology or not bdf:
        return None
    return topology.get(bdf) or topology.get(_physical(bdf) or "") or (
        topology.get(bdf + ".0") if is_partial(bdf) else None)


def _placed(bdf, topology):
    return _entry(bdf, topology) is not None


def _concerns(address, gpu_bdf, topology):
    """Whether a failure of the device at ``address`` is the GPU's: it is the GPU, a function of the GPU's card,
    or a bridge above it."""
    if address == gpu_bdf:
        return True
    if address[:-1] == gpu_bdf[:-1]:  # the same device: a function of the GPU's card, never a port beside it
        return not (topology or {}).get(address, {}).get("bridge")
    entry = _entry(gpu_bdf, topology)
    return entry is not None and address in entry["upstream"]


def _has_no_gpu_below(address, topology, devices):
    """Whether what sits at ``address`` is known: in the topology, a function, or a bridge with something below it;
    else what the log enumerated (``devices`` marked ``below`` a bridge): a function of no GPU class gone since, or
    a bridge whose slot held such functions. A slot empty with nothing enumerated may have held a GPU that went:
    unknown. Only called when no GPU is at or below it."""
    enumerated = [d for d in devices if d.get("below")]
    entry = topology.get(address)
    if entry is None:
        return any(d["bdf"] == address and not d.get("gpu") for d in enumerated)
    return not entry["bridge"] or any(address in other["upstream"] for other in topology.values()) or any(
        d["below"] == address for d in enumerated)


def _pci_id(gpu):
    vendor = _sysfs.VENDOR_IDS.get(vendor_of(gpu), "")
    device = gpu.get("device_id") or ""
    return "%s:%s" % (vendor[2:], device[2:]) if vendor and device.startswith("0x") else None


def apply_health(collected, kernel_findings=()):
    """Give every GPU its health verdict; returns the public result {gpus, count, tool, processes, ...}."""
    gpus, by_bdf, tool_info, tools = collected["gpus"], collected["_sysfs"], collected["tool"], collected["tools"]
    findings_by_bdf = {}
    for finding in kernel_findings or ():
        bdf = normalize_bdf(finding.get("bdf") or "") or _function_zero(finding)
        if bdf and health_level(finding):
            findings_by_bdf.setdefault(bdf, []).append(finding)
    for bdf in sorted(findings_by_bdf):
        vendor = _ghost_vendor(findings_by_bdf[bdf], tools)
        if vendor and not any(g["bdf"] == bdf for g in gpus):
            ghost = _blank(None, bdf, vendor)
            ghost["in_tool_output"] = False if listed(tools[vendor]) else None
            gpus.append(ghost)  # known only from the kernel log: gone from sysfs and the tool
    xids_by_bdf = xid_errors(kernel_findings)
    for gpu in gpus:
        info = tools.get(gpu["vendor"], tool_info)
        physical = _physical(gpu["bdf"])
        mine = findings_by_bdf.get(gpu["bdf"], []) + findings_by_bdf.get(physical, [])
        assess(gpu, _partition_sysfs(by_bdf.get(gpu["bdf"]), by_bdf.get(physical)), info, mine,
               gpu.pop("_metrics_ok", False))
        if gpu["vendor"] == NVIDIA:
            gpu["xid_errors"] = xids_by_bdf.get(gpu["bdf"], [])
        if (mine or gpu.get("xid_errors")) and "kernel_log" not in gpu["sources"]:
            gpu["sources"].append("kernel_log")
    index_by_bdf = dict((g["bdf"], g["index"]) for g in gpus)
    for proc in collected["processes"]:
        proc["index"] = index_by_bdf.get(proc["bdf"])
    return {"gpus": gpus, "count": len(gpus), "tool": tool_info, "tools": tools, "processes": collected["processes"],
            "index_order": collected["index_order"], "notes": collected["notes"],
            "kfd_available": collected["kfd_available"], "processes_available": collected["processes_available"],
            "process_lists": collected["process_lists"], "vendors": collected["vendors"], "mixed_vendors": mixed_vendors(gpus),
            "sysfs_unread": collected.get("sysfs_unread")}


def _function_zero(finding):
    """The GPU an NVRM line names by device only ('0000:02:00'), when no GPU took it (``resolve_addresses``
    matched none: the GPU is gone from sysfs too, after Xid 79): its function 0, where NVIDIA puts the GPU
    (the card's audio is function 1). None for anything else."""
    partial = finding.get("bdf") or ""
    if finding.get("vendor") == NVIDIA and is_partial(partial):
        return normalize_bdf(partial + ".0")
    return None


def _physical(bdf):
    """The PCI function 0 of a GPU's device, for a GPU at another function: an MI300-style partition
    (0000:01:00.1, .2 ...) is a slice of it, so a kernel finding or a lost status of 0000:01:00.0 is its too.
    (A card's other functions, HD audio or USB-C, are never GPUs.)"""
    return bdf[:-1] + "0" if bdf and not bdf.endswith(".0") else None


def _partition_sysfs(own, physical):
    """A GPU's sysfs entry: its own (its physical device's loss still counts), else its physical device's."""
    if own is None or physical is None:
        return own or physical
    return dict(own, lost=True) if physical.get("lost") and not own.get("lost") else own


XID_KEYS = ("xid", "count", "severity", "category", "summary", "caused_xids", "recovered", "first_seen", "last_seen",
            "last_epoch")


def xid_errors(findings):
    """{bdf: [Xid findings, short]}: what an NVIDIA GPU's ``xid_errors`` holds (the kernel log's, joined by address)."""
    out = {}
    for finding in findings or ():
        bdf = normalize_bdf(finding.get("bdf") or "")
        if bdf and finding.get("xid") is not None:
            out.setdefault(bdf, []).append(dict((k, finding.get(k)) for k in XID_KEYS))
    return out


def _ghost_vendor(findings, tools):
    """The vendor of a GPU known only from the kernel log: the findings' (None when that vendor was not
    probed: no AMD ghost from an NVIDIA line), else AMD when probed, else the one probed."""
    named = set(f.get("vendor") for f in findings if f.get("vendor") in VENDORS)
    if named:
        probed = [v for v in VENDORS if v in named and v in tools]
        return probed[0] if probed else None
    return AMD if AMD in tools else next(iter(tools))


def probe(module, kernel_findings=(), **kwargs):
    """collect + apply_health: the host's GPUs with a health verdict each."""
    return apply_health(collect(module, **kwargs), kernel_findings)
