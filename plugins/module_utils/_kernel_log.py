# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the kernel-log scanner, for amdgpu and NVIDIA GPUs.

Four parts:

* The pattern tables are data (``_kernel_patterns_amdgpu``, ``_kernel_patterns_nvidia`` with
  NVIDIA's Xid table, ``_kernel_patterns_pcie`` for PCIe bridges, every vendor); one engine runs
  them all. A new failure wording is a table row, never code here. Each line gives at most one
  finding, from the first row that matches; a line that matches a table's ``BENIGN`` never gives one.
* ``scan(lines, ...)``: pure. Strips stamps and prefixes (``_kernel_time``), dates every line,
  filters by ``since``, collapses repeats into findings, and reads recoveries in sequence (below).
* ``read_kernel_log(module, ...)``: the journal, dmesg or a file, every external command through
  ``_tool.run_tool`` (hard timeout, own process group). A file is opened without blocking, must be
  a regular file, and is read in chunks, never whole; its lines (and a command's) are produced
  lazily while ``scan`` consumes them, within the timeout. What could not be scanned in time is
  described in ``KernelLogRead.unscanned``. Never raises; a failure is in ``error``.
* ``resolve_addresses(findings, gpu_bdfs)``: NVRM names GPUs ``PCI:0000:01:00`` (no function);
  this completes such an address to the one GPU function that matches it.

A message of several lines (dmesg and the journal indent the lines after its first and give them no
stamp) is read as one for its GPU: a continuation line that names no GPU takes the one its message
names on an earlier line (``_record_address``).

Recovery in sequence, per GPU: a hang (ring timeout, a per-queue ring reset that failed, a
firmware or queue hang: rows with role ``hang``) followed by a reset that succeeded (role
``recovered``: "GPU reset(N) succeeded!", "Ring X reset succeeded", "device wedged, but recovered
through reset", NVIDIA's Xid 154 back to None; role ``resumed``, "GPU reset succeeded, trying to
resume", counts only when no reset step failed), with no resume, init or reset failure after it
(role ``failed``), is ONE soft ``gpu_reset`` finding with ``recovered: True`` and ``hung`` naming
what hung, instead of the lines' own findings. A reset that did not succeed, or a failure after
it, leaves every finding as it is (hard ones stay hard). A line of role ``no_recovery`` ("GPU
recovery disabled.": the driver will not reset the GPU) ends a hang under way unrecovered. A line of
role ``resume_step`` ("VRAM is lost due to GPU reset!", printed while a reset resumes the GPU) joins the
GPU's recovery under way, even one "trying to resume" already marked a success; alone it starts one. A row
with ``after_hang`` gives a finding only while a hang or reset of its GPU is under way (or a hang
that named no GPU came within 50 lines): alone, as at boot or resume ("MODE2 reset" on APUs, "GPU
recovery disabled."), it is no finding. A row with ``during_reset`` gives a finding only while a reset of
its GPU (of the one GPU recovering, for a line that names none) has begun and not ended: a kernel Oops or
a task blocked for minutes then means the reset never finishes. Lines without a role (SMU, bus loss, RAS, page faults) are
never folded. A hang line that names no GPU joins the one GPU whose recovery is
under way, or the next GPU that starts one within 50 lines; else it stays on its own. A line of
role ``failed`` that names no GPU cancels every recovery under way; other GPU-less lines of a
recovery (``[drm] VRAM is lost due to GPU reset!``) join it when only one GPU is recovering.

Times: every finding has ``first_seen``/``last_seen`` (the stamps as written) and
``first_epoch``/``last_epoch`` (wall-clock epoch seconds, or None when the line cannot be dated).
A line without a stamp (a continuation) takes the time of the line before it; a line whose own
stamp cannot be read is not dated. Monotonic stamps count from ``boot_time``, by default this
boot's (now minus ``/proc/uptime``). ``since`` drops lines dated before it and KEEPS undated ones:
a preflight that drops evidence it cannot date would pass a broken GPU.
"""

from __future__ import annotations

import collections
import math
import os
import re
import stat
import time

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks
from ansible_collections.gpuops.preflight.plugins.module_utils import _files
from ansible_collections.gpuops.preflight.plugins.module_utils import _kernel_patterns_amdgpu
from ansible_collections.gpuops.preflight.plugins.module_utils import _kernel_patterns_nvidia
from ansible_collections.gpuops.preflight.plugins.module_utils import _kernel_patterns_pcie
from ansible_collections.gpuops.preflight.plugins.module_utils import _kernel_time
from ansible_collections.gpuops.preflight.plugins.module_utils import _pci
from ansible_collections.gpuops.preflight.plugins.module_utils import _sysfs
from ansible_collections.gpuops.preflight.plugins.module_utils import _tool
from ansible_collections.gpuops.preflight.plugins.module_utils import _toolpath
from ansible_collections.gpuops.preflight.plugins.module_utils._values import clean_text, first_line, human_bytes

HARD = _checks.HARD
SOFT = _checks.SOFT

SOURCES = ("auto", "journal", "dmesg", "file")
VENDORS = ("amd", "nvidia")
MAX_LINE_CHARS = _kernel_time.MAX_LINE_CHARS
MAX_MESSAGE_CHARS = 512
# Distinct findings kept; beyond it, new messages collapse per (category, GPU). Bounds memory on
# floods whose messages differ in more than numbers.
MAX_FINDINGS = 1000
# A file is read this many bytes at a time; the deadline is checked between chunks.
CHUNK_BYTES = 1024 * 1024
# A line longer than this (no newline in sight) is cut; the rest of it is skipped.
MAX_LINE_BYTES = 64 * 1024

split_line = _kernel_time.split_line
read_boot_time = _kernel_time.read_boot_time

# How a row's line takes part in a recovery sequence (see the module docstring).
ROLES = ("hang", "reset", "step_failed", "resumed", "recovered", "failed", "no_recovery", "resume_step")

# Category -> (default severity, vendor-neutral fix). Names are part of the interface; a
# table may give its own fix per category (its FIXES) or per row.
CATEGORIES = {
    "smu_no_response": (HARD, "The GPU's power-management firmware stopped answering. Power-cycle the rig and "
                              "check that GPU's riser and PCIe power cables."),
    "smu_message_failed": (HARD, "The GPU's power-management firmware rejected or did not finish a command. "
                                 "Reboot the rig; check the card's power cables if it recurs."),
    "register_access_failed": (HARD, "Register reads return all-ones: the GPU no longer answers on the bus. "
                                     "Power-cycle the rig and reseat that GPU's riser and cables."),
    "bus_lost": (HARD, "A GPU or a PCIe slot went off the bus. Power-cycle the rig and check the riser, its cable "
                       "and the PCIe power. A pcieport/pciehp/AER line names the bridge, not the GPU: find the GPU "
                       "behind it with 'lspci -tv'."),
    "pcie_error": (HARD, "An uncorrected PCIe error on the link to a GPU. Check the riser, cable, slot and PCIe "
                         "power; a pcieport/AER line names the bridge: find the GPU behind it with 'lspci -tv'."),
    "ring_timeout": (SOFT, "A GPU job hung (ring timeout). Check the named process; if it recurs, check clocks, "
                           "undervolt, temperatures and power of that GPU."),
    "gpu_hang": (HARD, "The GPU's command processor or scheduler firmware hung. Reboot the rig (or reset the GPU) "
                       "before new work; a GPU in this state rarely recovers by itself."),
    "gpu_reset": (SOFT, "The driver reset the GPU and killed the work on it. Check what ran (see what hung); "
                        "reboot the rig if resets repeat."),
    "gpu_reset_failed": (HARD, "The GPU did not come back from a reset or resume. Power-cycle the rig."),
    "page_fault": (SOFT, "A GPU program accessed an invalid address: usually an application bug, sometimes "
                         "corrupted memory under unstable clocks. Check the named process."),
    "app_fault": (SOFT, "An application's GPU work failed; the GPU stays usable. Check the named process."),
    "ras_uncorrectable": (HARD, "Uncorrectable hardware (ECC/RAS) error. Take the GPU out of service and check its "
                                "error counts; replace it if it recurs."),
    "ras_correctable": (SOFT, "Correctable hardware (ECC) errors: no action needed now; watch the counts."),
    "memory_remap": (SOFT, "GPU memory was marked for remapping; reset the GPU when idle so it takes effect."),
    "memory_remap_failed": (HARD, "The GPU could not remap or retire failing memory: take it out of service."),
    "nvlink_error": (HARD, "GPU interconnect (NVLink) error: reset the GPU or reboot before new multi-GPU work."),
    "firmware_error": (HARD, "The GPU's firmware halted or timed out: reset the GPU or reboot the node."),
    "gpu_error": (HARD, "The driver reported a GPU error: reset the GPU or reboot before new work."),
    "recovery_required": (HARD, "The driver says the GPU needs a reset or a reboot: do it before new work."),
    "init_failed": (HARD, "The driver failed to initialise a GPU. Read the kernel log around it (firmware, VBIOS, "
                          "PCIe errors), reboot, and reseat the card if it persists."),
}

TABLES = (_kernel_patterns_pcie, _kernel_patterns_amdgpu, _kernel_patterns_nvidia)


class Pattern(object):
    """One compiled row of a pattern table (see ``_kernel_patterns_amdgpu`` for the row format).

    ``key`` is a lower-case literal every match contains: lines without any key are skipped without
    running a regex, which keeps a scan of a long journal fast. ``needs`` is a word the line must
    contain (the driver's name) for wording other drivers print too.
    """

    __slots__ = ("category", "severity", "source", "_regex", "summary", "fix", "fixes", "key", "needs", "vendor",
                 "role", "lookup", "unknown", "ignore", "xid", "addresses", "gpu_health", "after_hang", "during_reset",
                 "device_forms", "record")

    def __init__(self, table, row):
        category, key, regex, summary, options = row
        self.category = category
        self.severity = options.get("severity") or CATEGORIES[category][0]
        self.fixes = getattr(table, "FIXES", {})
        self.fix = options.get("fix") or self.fixes.get(category) or CATEGORIES[category][1]
        self.key = key
        self.source = regex
        self._regex = None
        self.summary = summary
        self.needs = table.NEEDS if options.get("own") else None
        self.vendor = table.VENDOR
        self.role = options.get("role")
        self.gpu_health = options.get("gpu")
        self.after_hang = bool(options.get("after_hang"))
        self.during_reset = bool(options.get("during_reset"))
        self.lookup = options.get("lookup")
        self.unknown = options.get("unknown")
        self.ignore = options.get("ignore") or {}
        self.xid = options.get("xid")
        self.addresses = _ADDRESSES[table.__name__]
        # how the line names the PCI device it is about (a PCIe port's row: its table's DEVICES forms)
        self.device_forms = _DEVICE_FORMS[table.__name__].get(options.get("devices"), ())
        self.record = bool(options.get("record"))

    @property
    def regex(self):
        # Compiled on first use: a host module pays only for the rows whose key a line contains
        # (compiling every row at import cost a host module about 20 ms per run).
        if self._regex is None:
            self._regex = re.compile(self.source, re.IGNORECASE)
        return self._regex

    def __repr__(self):
        return "Pattern(%s, %r)" % (self.category, self.source)

    def rule(self, match):
        """(category, severity, summary, fix, xid, follow-up xid, gpu health) of one match of this row, or None
        for a number the lookup row's ``ignore`` lists (informational: no finding)."""
        if self.lookup is None:
            return self.category, self.severity, self.summary, self.fix, self.xid, None, self.gpu_health
        own = int(match.group("xid"))
        cause = match.group("cause") if "cause" in self.regex.groupindex else None
        xid = int(cause) if cause else own
        if xid in self.ignore:
            return None
        entry = self.lookup.get(xid)
        if entry is None:
            category, severity, summary, fix = self.unknown
            summary = summary % xid
        else:
            category, severity, summary, fix = entry
        fix = fix or self.fixes.get(category) or CATEGORIES[category][1]
        # a lookup row's ``gpu`` maps the categories it looks up to the health they give
        return category, severity, summary, fix, xid, (own if cause else None), (self.gpu_health or {}).get(category)


_ADDRESSES = dict((table.__name__, [re.compile(r) for r in getattr(table, "ADDRESSES", [])]) for table in TABLES)
_DEVICE_FORMS = dict((table.__name__, dict((name, [re.compile(r, re.IGNORECASE) for r in forms])
                                           for name, forms in getattr(table, "DEVICES", {}).items()))
                     for table in TABLES)
# Lines naming a device that a following ``record`` row's line is about: (key, compiled regex), every table's.
_RECORD = [(key, re.compile(regex, re.IGNORECASE)) for table in TABLES for key, regex in getattr(table, "RECORD", [])]
_RECORD_KEYS = tuple(sorted(set(key for key, _regex in _RECORD)))
# Lines a record's devices are kept for: a recovery prints its "can't recover" lines just before its end.
_RECORD_WINDOW = 64
# Functions and bridges kept from the enumeration lines: a large server has a few hundred; a cap bounds memory on garbage.
_ENUMERATED_MAX = 4096
# The PCI enumeration lines (a table's ENUMERATION): {kind: (key, compiled regex)}
_ENUMERATION = dict((kind, (key, re.compile(regex, re.IGNORECASE))) for table in TABLES
                    for kind, (key, regex) in getattr(table, "ENUMERATION", {}).items())
PATTERNS = [Pattern(table, row) for table in TABLES for row in table.ROWS]
BENIGN_SOURCES = [r for table in TABLES for r in getattr(table, "BENIGN", [])]
_BENIGN = []


def benign():
    """The compiled BENIGN patterns (compiled once, when a line first needs them)."""
    if not _BENIGN:
        _BENIGN.extend(re.compile(r, re.IGNORECASE) for r in BENIGN_SOURCES)
    return _BENIGN


# The literal keys, each looked up once per line (see Pattern.key).
_KEYS = tuple(sorted(set(p.key for p in PATTERNS)))

# -- attribution and collapsing ---------------------------------------------------------------

_PROTECTED = re.compile(r"[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}(?:\.[0-7])?|\bnode-\d+", re.IGNORECASE)
# A number: decimal or hex with at least one digit, or any hex word right after ':' or '='
# (register offsets such as "reg:abcd").
_NUMBER = re.compile(r"(?<![0-9A-Za-z])(?:0[xX])?[0-9a-fA-F]*[0-9][0-9a-fA-F]*(?![0-9A-Za-z])"
                     r"|(?<=[:=])[0-9a-fA-F]+(?![0-9A-Za-z])")


def normalize_address(value):
    """A full PCI address normalised ('0000:0b:00.0'), NVRM's partial one ('0000:0b:00'), or None."""
    if not isinstance(value, str):
        return None
    return _pci.normalize_bdf(value) or _pci.normalize_partial(value)


def _devices_of(pattern, body):
    """The PCI devices a line is about, as its row declares (``Pattern.device_forms``): [{bdf, driver}], or []."""
    for regex in pattern.device_forms:
        found = regex.search(body)
        if found:
            return [{"bdf": _pci.normalize_bdf(found.group(2)), "driver": found.group(1) or None}]
    return []


def _add_devices(finding, devices):
    """Add devices to a finding's, each address once, its entries merged (a collapsed finding is about all its lines'
    devices; an address both named and enumerated keeps what each said)."""
    known = dict((d["bdf"], d) for d in finding["devices"])
    for device in devices:
        if device["bdf"] not in known:
            known[device["bdf"]] = dict(device)
            finding["devices"].append(known[device["bdf"]])
        else:
            same = known[device["bdf"]]
            same.update((k, v) for k, v in device.items() if same.get(k) is None)


class _Record(object):
    """The devices the lines of a PCIe error recovery under way named (``RECORD`` wording), for the ``record``
    row that ends it ("device recovery failed"): [(line index, {bdf, driver})], the newest last."""

    def __init__(self):
        self.devices = []

    def note(self, text, lower, index):
        for key, regex in _RECORD:
            if key in lower:
                found = regex.search(text)
                if found:
                    self.devices.append((index, {"bdf": _pci.normalize_bdf(found.group(2)), "driver": found.group(1)}))
                    del self.devices[:-_RECORD_WINDOW]
                    return

    def take(self, index):
        """The devices named within the window before ``index``; the record ends with the line that takes them."""
        taken = [device for seen, device in self.devices if index - seen <= _RECORD_WINDOW]
        self.devices = []
        return taken


class _Enumerated(object):
    """What the log's PCI enumeration lines said: every function ({bdf: vendor name when it is a GPU, else None}) and
    the bridges' bus ranges ({bdf: (first, last)}), to tell what sat below a port whose slot is now empty."""

    def __init__(self):
        self.functions = {}
        self.bridges = {}
        self._below = {}  # addresses -> what below() found, until the next enumeration line (floods repeat a port)

    def note(self, lower, body):
        for kind, (key, regex) in _ENUMERATION.items():
            if key not in lower:
                continue
            found = regex.search(body)
            if not found:
                continue
            bdf = _pci.normalize_bdf(found.group(1))
            self._below = {}
            if kind == "bridge":
                if bdf in self.bridges or len(self.bridges) < _ENUMERATED_MAX:
                    self.bridges[bdf] = (int(found.group(2), 16), int(found.group(3) or found.group(2), 16))
            elif bdf in self.functions or len(self.functions) < _ENUMERATED_MAX:
                vendor = "0x" + found.group(2).lower()
                self.functions[bdf] = _sysfs.VENDOR_NAMES[vendor] if _sysfs.is_gpu(vendor, found.group(4)) else None

    def below(self, devices):
        """The functions enumerated below the bridges among ``devices`` (same domain, a bus in the bridge's range),
        as devices with ``below`` (that bridge) and ``gpu`` (the vendor name of a GPU, else None). The same list
        object for the same addresses until the next enumeration line."""
        addresses = tuple(d["bdf"] for d in devices)
        if addresses not in self._below:
            found = []
            for bridge in addresses:
                span, domain = self.bridges.get(bridge), (bridge or "")[:5]
                if span is not None:
                    found.extend({"bdf": bdf, "driver": None, "gpu": self.functions[bdf], "below": bridge}
                                 for bdf in sorted(self.functions)
                                 if bdf[:5] == domain and span[0] <= int(bdf[5:7], 16) <= span[1])
            if len(self._below) >= _ENUMERATED_MAX:
                self._below = {}
            self._below[addresses] = found
        return self._below[addresses]


def _bdf_of(pattern, body, match):
    """The GPU a line is about: the row's own group, else the table's address forms; never a bridge's."""
    if "bdf" in match.re.groupindex and match.group("bdf"):
        return normalize_address(match.group("bdf"))
    for regex in pattern.addresses:
        found = regex.search(body)
        if found:
            return normalize_address(found.group(1))
    return None


def _normalise(message):
    """The collapsing key of a message: numbers, hex, addresses and pids become '#'.

    PCI addresses and KFD node numbers are kept: they say which GPU it is.
    """
    parts, last = [], 0
    for found in _PROTECTED.finditer(message):
        parts.append(_NUMBER.sub("#", message[last:found.start()]))
        parts.append(found.group(0).lower())
        last = found.end()
    parts.append(_NUMBER.sub("#", message[last:]))
    return "".join(parts)


def _keys_in(lower):
    return [key for key in _KEYS if key in lower]


def vendor_set(vendors):
    """The vendors to scan for: None, 'auto' or 'all' -> every vendor; 'amd', 'nvidia' or a list of them."""
    if vendors is None or vendors in ("auto", "all"):
        return frozenset(VENDORS)
    if isinstance(vendors, str):
        vendors = [vendors]
    chosen = frozenset(vendors)
    unknown = sorted(str(v) for v in chosen - frozenset(VENDORS))
    if unknown or not chosen:
        raise ValueError("vendors: %s is not one of auto, %s" % (", ".join(unknown) or "nothing", ", ".join(VENDORS)))
    return chosen


def classify(body, vendors=None):
    """(pattern, match) for a message body, or (None, None) for benign and unknown lines."""
    chosen = vendor_set(vendors) if not isinstance(vendors, frozenset) else vendors
    lower = body.lower()
    keys = _keys_in(lower)
    if not keys:
        return None, None
    for pattern in benign():
        if pattern.search(body):
            return None, None
    for pattern in PATTERNS:
        if pattern.key not in keys or (pattern.vendor is not None and pattern.vendor not in chosen):
            continue
        match = pattern.regex.search(body)
        if match and (pattern.needs is None or pattern.needs in lower):
            return pattern, match
    return None, None


# -- scanning ---------------------------------------------------------------------------------

# Lines kept back, unparsed, in case a following line must inherit their time. Continuations
# are a few lines long; 64 is plenty and bounds the work.
_PENDING = 64
_CACHE_SIZE = 4096
# Yielded by a line source where it skipped part of the log (see _LineSource): times and
# recoveries do not carry across it.
GAP = object()


class _Clock(object):
    """The time state of a scan: the last stamp and epoch seen, and lines not parsed yet.

    Only lines that may give a finding are parsed; the others wait in ``pending`` and are parsed
    (newest first) only when a finding's line has no stamp of its own and must inherit one.
    """

    def __init__(self, boot_time, now):
        self.boot_time = boot_time
        self.now = now
        self.stamp = None
        self.epoch = None
        self.pending = []
        self.continued = False  # the last parsed line had no stamp of its own

    def skip(self, text):
        self.pending.append(text)
        if len(self.pending) > 2 * _PENDING:
            del self.pending[:-_PENDING]

    def gap(self):
        self.stamp, self.epoch, self.pending = None, None, []

    def parse(self, text):
        """Parse a line; return (stamp, epoch, body), inheriting both when it has no stamp."""
        stamp, epoch, body = split_line(text, self.boot_time, self.now)
        self.continued = stamp is None
        if stamp is None:
            for older in reversed(self.pending[-_PENDING:]):
                older_stamp, older_epoch = split_line(older, self.boot_time, self.now)[:2]
                if older_stamp is not None:
                    self.stamp, self.epoch = older_stamp, older_epoch
                    break
            stamp, epoch = self.stamp, self.epoch
        self.pending = []
        self.stamp, self.epoch = stamp, epoch
        return stamp, epoch, body


def _new_finding(rule, bdf, vendor, message, text, stamp, epoch, recovered=False, hung=None, pci_id=None, devices=()):
    """A finding (see ``scan``) from its first line, ``rule`` as ``Pattern.rule`` gives it; count 0 until
    ``_count_line`` counts the line in."""
    category, severity, summary, fix, xid = rule[:5]
    return {
        "category": category,
        "severity": severity,
        "gpu_health": rule[6] if len(rule) > 6 else None,
        "bdf": bdf,
        "pci_id": pci_id,
        "vendor": vendor,
        "xid": xid,
        "summary": summary,
        "fix": fix,
        "message": message,
        "line": clean_text(text),
        "count": 0,
        "first_seen": clean_text(stamp),
        "last_seen": None,
        "first_epoch": epoch,
        "last_epoch": None,
        "recovered": recovered,
        "hung": hung,
        "caused_xids": [],
        "devices": [dict(d) for d in devices],
    }


def _count_line(finding, stamp, epoch):
    finding["count"] += 1
    finding["last_seen"] = clean_text(stamp)
    finding["last_epoch"] = epoch


class _Findings(object):
    """Findings keyed on (category, GPU, collapsing key), in the order of their first line."""

    # Device lists merged into one finding that are remembered (and not merged again): a flood repeats its line's.
    MERGED_LISTS = 16

    def __init__(self):
        self.by_key = {}
        self.seq = {}
        self.merged = {}  # key -> {id: device list merged into the finding, held so that the id stays its own}

    def add(self, key, known, text, stamp, epoch, index, devices=()):
        """Count one line into its finding; return (key, state of the finding before it). ``devices``: lists of the
        PCI devices the line is about (its own, its record's, those enumerated below it)."""
        pattern, rule, bdf, message = known[:4]
        finding = self.by_key.get(key)
        if finding is None and len(self.by_key) >= MAX_FINDINGS:
            key = (rule[0], bdf, "overflow")
            finding = self.by_key.get(key)
        if finding is None:
            before = None
            finding = self.by_key[key] = _new_finding(rule, bdf, pattern.vendor, message, text, stamp, epoch,
                                                      pci_id=known[6])
            self.seq[key] = index
        else:
            before = (finding["count"], finding["last_seen"], finding["last_epoch"])
        _count_line(finding, stamp, epoch)
        merged = self.merged.setdefault(key, {})
        for listed in devices:
            if listed and id(listed) not in merged:
                _add_devices(finding, listed)
                if len(merged) < self.MERGED_LISTS:
                    merged[id(listed)] = listed
        follow_up = rule[5]
        if follow_up is not None and follow_up not in finding["caused_xids"]:
            finding["caused_xids"] = sorted(finding["caused_xids"] + [follow_up])
        return key, before

    def remove(self, key):
        self.by_key.pop(key, None)
        self.seq.pop(key, None)
        self.merged.pop(key, None)

    def uncount(self, key, lines, before):
        """Take ``lines`` lines back out of a finding (``before``: its state before the first of them)."""
        finding = self.by_key.get(key)
        if finding is None:
            return
        finding["count"] -= lines
        if finding["count"] <= 0:
            self.remove(key)
        elif before is not None:
            finding["last_seen"], finding["last_epoch"] = before[1], before[2]

    def ordered(self):
        return [self.by_key[key] for key in sorted(self.by_key, key=lambda k: self.seq[k])]


class _Episode(object):
    """One GPU's hang-and-reset sequence under way (see the module docstring)."""

    __slots__ = ("bdf", "vendor", "first", "hung", "keys", "needs_strong", "succeeded", "success", "resetting")

    def __init__(self, bdf, vendor, event):
        self.bdf = bdf
        self.vendor = vendor
        self.first = event          # (index, stamp, epoch, ...)
        self.hung = None
        self.keys = {}              # finding key -> [lines joined, state of the finding before the first]
        self.needs_strong = False   # a reset step failed: "trying to resume" is not enough
        self.succeeded = False
        self.success = None
        self.resetting = False      # a reset (or a reset step) of this GPU began

    def join(self, key, before, role, event):
        entry = self.keys.get(key)
        if entry is None:
            self.keys[key] = [1, before]
        else:
            entry[0] += 1
        if role == "hang" and self.hung is None:
            self.hung = event[5]
        if role == "step_failed":
            self.needs_strong = True
        if role in ("reset", "step_failed", "resume_step"):
            self.resetting = True


class _Recovery(object):
    """Reads hang -> reset -> recovered sequences per GPU and folds the recovered ones."""

    WINDOW = 50  # lines: a hang line that names no GPU joins a GPU's recovery starting this close after it

    def __init__(self, findings):
        self.findings = findings
        self.episodes = {}
        self.pending = []
        self.folded = 0

    def under_way(self, bdf, index):
        """Whether a hang or reset of this GPU (bdf None: of the one GPU recovering) is under way, or a hang
        that named no GPU came within WINDOW lines before ``index``."""
        if bdf is None:
            open_ = [e for e in self.episodes.values() if not e.succeeded]
            if len(open_) == 1:
                return True
        else:
            episode = self.episodes.get(bdf)
            if episode is not None and not episode.succeeded:
                return True
        return any(index - event[0] <= self.WINDOW for _key, _before, event in self.pending)

    def resetting(self, bdf):
        """Whether a reset of this GPU (bdf None: of the one GPU recovering) began and has not ended."""
        open_ = [e for e in self.episodes.values() if not e.succeeded]
        if bdf is None:
            return len(open_) == 1 and open_[0].resetting
        return any(e.bdf == bdf and e.resetting for e in open_)

    def line(self, role, bdf, vendor, key, before, event):
        if role == "no_recovery":
            self._no_recovery(bdf)
            return
        if bdf is None:
            self._line_without_gpu(role, key, before, event)
            return
        episode = self.episodes.get(bdf)
        if role == "resume_step" and episode is not None:
            episode.join(key, before, role, event)   # printed while the reset under way resumes the GPU
            return
        if role in ("hang", "reset", "step_failed", "resume_step"):
            if episode is not None and episode.succeeded:
                self._fold(episode)
                episode = None
            if episode is None:
                episode = self.episodes[bdf] = _Episode(bdf, vendor, event)
                self._adopt(episode, event[0])
            episode.join(key, before, role, event)
        elif role in ("resumed", "recovered"):
            if episode is None:
                return  # a reset nothing hung before (or before ``since``): its own soft finding
            episode.join(key, before, role, event)
            if role == "recovered" or not episode.needs_strong:
                episode.succeeded, episode.success = True, event
        elif role == "failed" and episode is not None:
            del self.episodes[bdf]  # the recovery failed: every finding stays as it is

    def _no_recovery(self, bdf):
        """The driver will not reset after a hang: the hang under way stays as it is, unrecovered."""
        if bdf is None:
            hung = [b for b, e in self.episodes.items() if not e.succeeded]
            bdf = hung[0] if len(hung) == 1 else None
        self.episodes.pop(bdf, None)
        self.pending = []

    def _line_without_gpu(self, role, key, before, event):
        if role == "failed":
            self.episodes, self.pending = {}, []
            return
        if len(self.episodes) == 1:
            episode = list(self.episodes.values())[0]
            # A new hang after the recovery is not part of it; the reset's own lines are.
            if role != "hang" or not episode.succeeded:
                episode.join(key, before, role, event)
        elif not self.episodes and role == "hang":
            self.pending.append((key, before, event))
            del self.pending[:-16]

    def _adopt(self, episode, index):
        for key, before, event in self.pending:
            if index - event[0] <= self.WINDOW:
                episode.join(key, before, "hang", event)
                if episode.first[0] > event[0]:
                    episode.first = event
        self.pending = []

    def gap(self):
        self.episodes, self.pending = {}, []

    def finish(self):
        for episode in list(self.episodes.values()):
            if episode.succeeded:
                self._fold(episode)
        self.episodes = {}

    def _fold(self, episode):
        self.episodes.pop(episode.bdf, None)
        by_key = self.findings.by_key
        for key, (joined, before) in episode.keys.items():
            self.findings.uncount(key, joined, before)
        index, stamp, epoch, message, text, _hung, pattern, rule = episode.success
        first = episode.first
        hung = episode.hung
        key = ("gpu_reset", episode.bdf, "recovered", _normalise(hung or ""))
        finding = by_key.get(key)
        if finding is None:
            summary = "GPU recovered by a reset after a hang" if hung else "GPU reset, recovered"
            fix = pattern.fix if pattern.category == "gpu_reset" else CATEGORIES["gpu_reset"][1]
            finding = by_key[key] = _new_finding(("gpu_reset", SOFT, summary, fix, rule[4]), episode.bdf, episode.vendor,
                                                 message, text, first[1], first[2], recovered=True, hung=hung)
            self.findings.seq[key] = first[0]
        _count_line(finding, stamp, epoch)
        self.folded += 1


# Lines kept to find the first line of a multi-line message (a record; see _record_address).
_RECORD_LINES = 16


def _record_address(pattern, recent, unstamped):
    """The GPU address a continuation line's record names on an earlier line, or None.

    One kernel message may span several lines (NVRM's "The NVIDIA GPU <bdf> / (PCI ID: ...) installed in
    this system has / fallen off the bus ..."); only its first line names the GPU. ``recent``: the lines
    read so far, the continuation last. Two ways of writing such a record are known:

    - ``unstamped``: dmesg and the journal print the lines after the first indented and without a stamp;
      the record is the indented lines before it back to and including the first line that has a stamp
      or is not indented.
    - every line with its own copy of the prefix: the kernel's syslog interface (rsyslog/klogd files,
      busybox ``dmesg``, ``dmesg -S``) repeats the record's stamp on each of its lines. The record is the
      lines before it with the very same prefix (host, stamps) and the same driver tag (``NVRM:``), each
      left unfinished (a line that ends a sentence is a message of its own, which keeps a neighbour's
      message in the same second from lending its GPU).
    """
    older = list(recent)[:-1]
    if unstamped:
        for text in reversed(older):
            stamp, _epoch, body = split_line(text)
            found = _address_in(pattern, body)
            if found:
                return found
            if stamp is not None or not text[:1].isspace():
                break
        return None
    prefix, tag = _prefix_and_tag(recent[-1])
    if prefix is None or tag is None:
        return None
    for text in reversed(older):
        if _prefix_and_tag(text) != (prefix, tag):
            return None
        body = split_line(text)[2].rstrip()
        if body.endswith((".", "!")):
            return None
        found = _address_in(pattern, body)
        if found:
            return found
    return None


def _address_in(pattern, body):
    for regex in pattern.addresses:
        found = regex.search(body)
        if found:
            return normalize_address(found.group(1))
    return None


# The driver tag a message line starts with ("NVRM:", "nvidia-nvswitch0:").
_TAG = re.compile(r"^([\w.-]+:)\s")


def _prefix_and_tag(text):
    """(what comes before the message body: stamps and host; the body's driver tag), None where unknown."""
    stamp, _epoch, body = split_line(text)
    if stamp is None or not body or not text.endswith(body):
        return None, None
    tag = _TAG.match(body)
    return text[:len(text) - len(body)].strip(), (tag.group(1) if tag else None)


def _lines_of(lines):
    if isinstance(lines, (bytes, bytearray)):
        lines = bytes(lines).decode("utf-8", "replace")
    if isinstance(lines, str):
        lines = lines.split("\n")
    return lines


def scan(lines, since=None, boot_time=None, stats=None, vendors=None, now=None):
    """Classify kernel log lines into collapsed findings (see the module docstring).

    ``lines``: an iterable of str (bytes are decoded, a single str or bytes is split into lines).
    ``since``: epoch seconds; lines dated before it are dropped. ``boot_time``: epoch of the boot
    that monotonic stamps count from (default: now minus /proc/uptime, read only when needed).
    ``vendors``: None/'auto' (every table), 'amd', 'nvidia' or a list. ``now``: epoch used to date
    syslog stamps (they have no year) and to bound monotonic ones (default: the clock). ``stats``:
    an optional dict that receives the counts ``lines`` (examined), ``matched`` (lines that gave a
    finding), ``too_old`` (matching lines dropped by ``since``) and ``recovered`` (recoveries folded).

    Returns a list of findings (dicts), in the order of their first line. Repeats collapse on
    (category, GPU, message with numbers normalised; for NVIDIA the Xid number). Each finding has:
    ``category``, ``severity`` (``_checks.HARD``/``SOFT``), ``gpu_health`` (what it makes the GPU it
    names, 'degraded' or 'lost', as its row declares; else None), ``bdf`` (the GPU's PCI address, NVRM's
    partial ``0000:01:00`` for NVIDIA until ``resolve_addresses``, or None when the line names no
    GPU), ``pci_id`` ('1002:67df' when the line names its device by PCI id only, KFD's; else None;
    ``_gpus.join_findings`` joins it to the one GPU with that id), ``vendor`` ('amd', 'nvidia', or None
    for a PCIe bridge's line), ``xid`` (int, NVIDIA; else None), ``summary``, ``fix``, ``message`` (the first line without stamp and host, at most
    512 characters), ``line`` (the first line as read), ``count`` (lines; for a recovered reset:
    recoveries), ``first_seen``/``last_seen`` (stamps as written), ``first_epoch``/``last_epoch``
    (epoch seconds or None), ``recovered`` (True for a hang the GPU recovered from by a reset),
    ``hung`` (what hung, for a recovered reset; else None) and ``caused_xids`` (Xids logged as
    "caused by previous Xid" this one, folded into it). Every text is valid UTF-8.
    """
    chosen = vendor_set(vendors)
    now = time.time() if now is None else now
    if boot_time is None:
        cache = []

        def boot_time():
            if not cache:
                cache.append(read_boot_time(now=now))
            return cache[0]
    clock = _Clock(boot_time, now)
    findings = _Findings()
    recovery = _Recovery(findings)
    classified = {}
    counts = {"lines": 0, "matched": 0, "too_old": 0}
    index = 0
    recent = collections.deque(maxlen=_RECORD_LINES)
    record = _Record()
    enumerated = _Enumerated()
    for raw in _lines_of(lines):
        if raw is GAP:
            clock.gap()
            recovery.gap()
            recent.clear()
            record.take(index)
            continue
        index += 1
        counts["lines"] += 1
        try:
            text = _kernel_time.to_text(raw)
            recent.append(text)
            lower = text.lower()
            if any(k in lower for k in _RECORD_KEYS):
                record.note(text, lower, index)
            if "pci" in lower and any(key in lower for key, _regex in _ENUMERATION.values()):
                enumerated.note(lower, split_line(text)[2])
            if not _keys_in(lower):
                clock.skip(text)
                continue
            stamp, epoch, body = clock.parse(text)
            if not body:
                continue
            # Floods repeat the same body thousands of times: classify each body once.
            known = classified.get(body)
            if known is None:
                if len(classified) >= _CACHE_SIZE:
                    classified.clear()
                known = classified[body] = _known(body, chosen)
            if known is None or known[0] is None:
                continue
            if since is not None and epoch is not None and epoch < since:
                counts["too_old"] += 1
                continue
            if known[2] is None and known[0].addresses and (text[:1].isspace() or not clock.continued):
                # a continuation line: its GPU may be named on the first line of its message
                bdf = _record_address(known[0], recent, clock.continued)
                if bdf is not None:
                    known = known[:2] + (bdf, known[3], _key(known[1], bdf, known[6], known[3])) + known[5:]
        except Exception:  # one unreadable line must not hide the others
            continue
        pattern, rule, bdf, message, key, hung = known[:6]
        if pattern.after_hang and not recovery.under_way(bdf, index):
            continue  # alone (at boot or resume) it says nothing
        if pattern.during_reset and not recovery.resetting(bdf):
            continue  # not while a GPU reset is under way: not the GPU's
        counts["matched"] += 1
        # the devices it is about: its own, its record's, and what the log saw enumerated below a port it names
        devices = known[7] + record.take(index) if pattern.record else known[7]
        below = enumerated.below(devices) if devices and enumerated.bridges else []
        key, before = findings.add(key, known, text, stamp, epoch, index, (known[7], devices, below))
        if pattern.role:
            recovery.line(pattern.role, bdf, pattern.vendor, key, before,
                          (index, stamp, epoch, message, text, hung, pattern, rule))
    recovery.finish()
    if stats is not None:
        counts["recovered"] = recovery.folded
        stats.update(counts)
    return findings.ordered()


def _known(body, chosen):
    """What a message body gives: (pattern, rule, bdf, message, key, hung, pci_id, devices), or (None,)."""
    pattern, match = classify(body, chosen)
    if pattern is None:
        return (None,)
    rule = pattern.rule(match)
    if rule is None:
        return (None,)
    message = clean_text(" ".join(body.split())[:MAX_MESSAGE_CHARS])
    bdf = _bdf_of(pattern, body, match)
    # a line that names its device by PCI id only (KFD's "skipped device 1002:67df"): vendor:device, lower case
    pci_id = match.group("pci_id").lower() if "pci_id" in match.re.groupindex and match.group("pci_id") else None
    key = _key(rule, bdf, pci_id, message)
    hung = None
    if pattern.role == "hang":
        hung = match.group("hung") if "hung" in match.re.groupindex and match.group("hung") else rule[2]
        hung = clean_text(" ".join(hung.split()))
    return pattern, rule, bdf, message, key, hung, pci_id, _devices_of(pattern, body)


def _key(rule, bdf, pci_id, message):
    """The collapsing key of a finding: (category, GPU, Xid, severity) for an Xid (a Fatal and a Nonfatal NVLink Xid
    of one number are two findings: the hard one is never counted into a soft one), else (category, GPU, PCI id,
    message with numbers normalised)."""
    if rule[4] is not None:
        return (rule[0], bdf, "xid", rule[4], rule[1])
    return (rule[0], bdf, pci_id, _normalise(message))


def severity_counts(findings):
    """How many findings (collapsed, not occurrences) are hard and soft."""
    return {
        HARD: sum(1 for f in findings if f["severity"] == HARD),
        SOFT: sum(1 for f in findings if f["severity"] == SOFT),
    }


def resolve_addresses(findings, gpu_bdfs):
    """Complete NVRM's partial addresses ('0000:01:00') to the one GPU function that matches.

    ``gpu_bdfs``: the GPUs' PCI addresses (any case). A finding whose partial address matches
    exactly one of them gets that address; one that matches none or several (a card's GPU and
    audio functions, when both are listed) is left alone. Returns a new list; changed findings
    are copies.
    """
    known = sorted(set(b for b in (_pci.normalize_bdf(v) for v in (gpu_bdfs or ())) if b))
    resolved = []
    for finding in findings:
        bdf = finding.get("bdf")
        if _pci.is_partial(bdf):
            matches = [b for b in known if b.startswith(bdf + ".")]
            if len(matches) == 1:
                finding = dict(finding, bdf=matches[0])
        resolved.append(finding)
    return resolved


def display_functions(sysfs_root, partials, names=None):
    """PCI display-class functions (class 0x03xxxx) under ``<sysfs_root>/bus/pci/devices`` whose
    address starts with one of the partial addresses. Unreadable entries are left out. ``names``:
    that folder's listing when the caller has it already (None: it is listed here)."""
    wanted = set(p + "." for p in partials if _pci.is_partial(p))
    if not wanted:
        return []
    base = os.path.join(sysfs_root or "/sys", "bus", "pci", "devices")
    if names is None:
        try:
            names = os.listdir(base)
        except OSError:
            return []
    found = []
    for name in sorted(names):
        bdf = _pci.normalize_bdf(name)
        if not bdf or bdf[:-1] not in wanted:
            continue
        try:
            fd = os.open(os.path.join(base, name, "class"), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            try:
                value = os.read(fd, 64).decode("ascii", "replace").strip().lower()
            finally:
                os.close(fd)
        except OSError:
            continue
        if value.startswith("0x03"):
            found.append(bdf)
    return found


# -- reading ---------------------------------------------------------------------------------

class KernelLogRead(object):
    """What ``read_kernel_log`` got, and (after a scan) how much of it was scanned.

    ``lines``: the log's lines, produced lazily (once) from the file or the command's output while
    they are scanned; ``len(lines)`` is the number produced so far. ``unscanned``: None when the
    whole log was scanned, else a dict: ``description`` (one line for a warning), ``bytes`` (not
    scanned), ``lines`` (not scanned, or None when not counted: a file's skipped part is not read).
    """

    __slots__ = ("lines", "source", "cmd", "error", "timed_out", "elapsed", "note", "unscanned")

    def __init__(self, source):
        self.lines = []
        self.source = source
        self.cmd = None
        self.error = None
        self.timed_out = False
        self.elapsed = 0.0
        self.note = None
        self.unscanned = None

    @property
    def ok(self):
        return self.error is None

    def as_dict(self):
        return {
            "source": self.source,
            "cmd": self.cmd,
            "error": self.error,
            "timed_out": self.timed_out,
            "elapsed_s": round(self.elapsed, 3),
            "note": self.note,
            "lines": len(self.lines),
            "unscanned": self.unscanned,
        }


class _FileChunks(object):
    binary = True

    def __init__(self, handle, size):
        self.handle = handle
        self.size = size

    def read(self, count):
        return self.handle.read(count)

    def seek(self, position):
        self.handle.seek(position)

    def measure(self, start, end):
        return end - start, None

    def close(self):
        self.handle.close()


class _TextChunks(object):
    binary = False

    def __init__(self, text):
        self.text = text
        self.size = len(text)
        self.position = 0

    def read(self, count):
        chunk = self.text[self.position:self.position + count]
        self.position += len(chunk)
        return chunk

    def seek(self, position):
        self.position = position

    def measure(self, start, end):
        """(bytes, lines) of text[start:end], in slices to avoid copying it whole."""
        size = 0
        for offset in range(start, end, CHUNK_BYTES):
            size += len(self.text[offset:min(end, offset + CHUNK_BYTES)].encode("utf-8", "surrogateescape"))
        lines = self.text.count("\n", start, end) + (1 if end > start and not self.text.endswith("\n", start, end) else 0)
        return size, lines

    def close(self):
        self.text = ""


class _LineSource(object):
    """Lines of a log, produced in chunks while a scan consumes them, within a deadline.

    When the rest will not fit in the time left (measured on what was scanned so far), it skips
    ahead so that the newest lines are scanned, and yields ``GAP`` where it did; everything not
    scanned is recorded in ``read.unscanned``.
    """

    def __init__(self, chunks, name, read, deadline, clock, drop=None, keep_last=None):
        self.chunks = chunks
        self.name = name
        self.read = read
        self.deadline = deadline
        self.clock = clock
        self.drop = drop
        self.keep_last = keep_last
        self.count = 0
        self.skipped = []   # [(start, end, why)]

    def __len__(self):
        return self.count

    def __bool__(self):
        return True  # there are lines to read (len() counts only those produced so far)

    __nonzero__ = __bool__

    def __iter__(self):
        try:
            yield from self._lines()
        finally:
            self._report()
            self.chunks.close()

    def _lines(self):
        chunks, newline = self.chunks, (b"\n" if self.chunks.binary else "\n")
        empty = newline[:0]
        position, scanned, start = 0, 0, self.clock()
        buffer, dropping = empty, False
        if self.keep_last is not None and chunks.size > self.keep_last:
            position = chunks.size - self.keep_last
            self.skipped.append((0, position, "only its last %s were to be read" % human_bytes(self.keep_last)))
            chunks.seek(position)
            dropping = True
        while True:
            now = self.clock()
            if now >= self.deadline:
                self.skipped.append((position - len(buffer), max(chunks.size, position), "the time ran out"))
                return
            left = self.deadline - now
            if scanned >= 2 * CHUNK_BYTES and now > start and chunks.size - position > scanned / (now - start) * left * 0.9:
                target = chunks.size - int(scanned / (now - start) * left * 0.6)
                if target > position + CHUNK_BYTES:
                    self.skipped.append((position - len(buffer), target, "skipped to scan the newest lines in time"))
                    chunks.seek(target)
                    position, buffer, dropping = target, empty, True
                    yield GAP
            data = chunks.read(CHUNK_BYTES)
            if not data:
                break
            position += len(data)
            scanned += len(data)
            parts = (buffer + data).split(newline)
            buffer = parts.pop()
            for raw in parts:
                if dropping:
                    dropping = False
                    continue
                line = self._line(raw)
                if line is not None:
                    yield line
            if len(buffer) > MAX_LINE_BYTES:
                if not dropping:
                    line = self._line(buffer[:MAX_LINE_BYTES])
                    if line is not None:
                        yield line
                buffer, dropping = empty, True
        if buffer and not dropping:
            line = self._line(buffer)
            if line is not None:
                yield line

    def _line(self, raw):
        line = _kernel_time.to_text(raw)
        if not line.strip() or (self.drop is not None and self.drop.match(line)):
            return None
        self.count += 1
        return line

    def _report(self):
        if not self.skipped:
            return
        total_bytes, total_lines, whys = 0, 0, []
        for start, end, why in self.skipped:
            size, lines = self.chunks.measure(max(start, 0), max(end, start, 0))
            total_bytes += size
            total_lines = None if lines is None or total_lines is None else total_lines + lines
            if why not in whys:
                whys.append(why)
        if not total_bytes:
            return
        what = "%s" % human_bytes(total_bytes) if total_lines is None else "%s (%d lines)" % (human_bytes(total_bytes), total_lines)
        self.read.unscanned = {
            "description": "%s: %s of %s not scanned (%s)" % (self.name, what, human_bytes(self.chunks.size), "; ".join(whys)),
            "bytes": total_bytes,
            "lines": total_lines,
        }


# Journal meta lines, not kernel messages (-q hides most of them, not all on every version).
_JOURNAL_META = re.compile(r"^-- (?:No entries|Journal begins|Logs begin|Boot |Reboot)")


def _has_lines(text, drop):
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        line = text[start:end]
        if line.strip() and not (drop is not None and drop.match(line)):
            return True
        start = end + 1
    return False


def _run(module, result, name, args, timeout, clock, deadline):
    """Run a tool; fill result.cmd/lines or return the reason it failed (str)."""
    binary, why_not = _toolpath.locate(module, name)
    if not binary:
        return why_not
    run = _tool.run_tool(module, [binary] + list(args), timeout, clock=clock)
    result.cmd = list(run.cmd)
    if run.timed_out:
        result.timed_out = True
    if not run.ran:
        return clean_text(run.describe())
    if run.rc != 0:
        why = "%s exited %s" % (name, run.rc)
        detail = first_line(run.stderr) or first_line(run.stdout)
        if detail:
            why += ": %s" % detail
        if name == "dmesg" and re.search(r"Operation not permitted|EPERM", run.stderr or ""):
            if os.geteuid() == 0:
                # root and still refused: a container without CAP_SYSLOG, or a kernel that hides its log
                why += (" (refused even as root: no CAP_SYSLOG here, e.g. in a container; give kernel_log a"
                        " file the host writes)")
            else:
                why += (" (kernel.dmesg_restrict=1: reading the kernel log needs root or CAP_SYSLOG;"
                        " run the task with become: true)")
        return why
    drop = _JOURNAL_META if name == "journalctl" else None
    if _has_lines(run.stdout, drop):
        result.lines = _LineSource(_TextChunks(run.stdout), "%s output" % name, result,
                                   max(deadline, clock() + 1.0), clock, drop=drop)
    else:
        result.lines = []
    return None


def _journal_args(since):
    args = ["-k", "-b", "0", "-o", "short-iso-precise", "--no-pager", "-q"]
    if since is not None:
        # Whole seconds, rounded down: the journal gives a superset, scan() filters exactly.
        args += ["--since", "@%d" % int(math.floor(since))]
    return args


DMESG_ARGS = ["--time-format", "iso"]


def _open_file(result, path, deadline, clock, keep_last):
    if not path or not isinstance(path, str):
        result.error = "source=file needs a path"
        return
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except (OSError, ValueError) as exc:
        result.error = clean_text("cannot read %s: %s" % (path, getattr(exc, "strerror", None) or exc))
        return
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            result.error = clean_text("cannot read %s: it is %s, not a regular file" % (path, _files.kind(info.st_mode)))
            os.close(fd)
            return
        handle = os.fdopen(fd, "rb", 0)
    except OSError as exc:
        os.close(fd)
        result.error = clean_text("cannot read %s: %s" % (path, exc.strerror or exc))
        return
    result.lines = _LineSource(_FileChunks(handle, info.st_size), os.path.basename(path) or path, result,
                               deadline, clock, keep_last=keep_last)


def read_kernel_log(module, source="auto", path=None, since=None, timeout=15, clock=time.monotonic,
                    max_file_bytes=None):
    """Read the kernel log of this boot. Never raises; see ``KernelLogRead``.

    source ``journal``: ``journalctl -k -b 0 -o short-iso-precise --no-pager -q [--since @<epoch>]``;
    ``dmesg``: ``dmesg --time-format iso``; ``file``: ``path`` (a regular file; opened without
    blocking); ``auto``: the journal when journalctl exists and gives at least one line, else dmesg
    with the time left (at least 1 s), and both reasons when both fail. The lines are produced
    while they are scanned, within ``timeout`` seconds from this call (at least 1 s more after a
    command); ``max_file_bytes`` (optional) scans only that many bytes at the end of a file.
    """
    start = clock()
    result = KernelLogRead(source)
    try:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
            result.error = "timeout must be a positive number of seconds, got %r" % (timeout,)
        elif source == "file":
            _open_file(result, path, start + timeout, clock, max_file_bytes)
        elif source == "journal":
            result.error = _run(module, result, "journalctl", _journal_args(since), timeout, clock, start + timeout)
            if result.error is None and not result.lines:
                if since is None:
                    # A boot always has kernel lines: none means we may not read the journal.
                    result.error = ("journalctl returned no kernel messages for this boot (is the journal "
                                    "readable by this user? run as root or in group systemd-journal)")
                else:
                    result.note = ("journalctl returned no kernel messages since the given time (an "
                                   "unreadable journal looks the same: run as root)")
        elif source == "dmesg":
            result.error = _run(module, result, "dmesg", DMESG_ARGS, timeout, clock, start + timeout)
        elif source == "auto":
            _read_auto(module, result, since, timeout, clock, start + timeout)
        else:
            result.error = "unknown kernel log source %r (use one of %s)" % (source, ", ".join(SOURCES))
    except Exception as exc:  # a check reports, it never crashes the module
        result.error = clean_text("reading the kernel log failed: %s: %s" % (type(exc).__name__, exc))
    result.elapsed = clock() - start
    return result


def _read_auto(module, result, since, timeout, clock, deadline):
    start = clock()
    first_error = None
    if _toolpath.locate(module, "journalctl")[0]:
        result.source = "journal"
        first_error = _run(module, result, "journalctl", _journal_args(since), timeout, clock, deadline)
        if first_error is None and result.lines:
            return
        if first_error is None:
            first_error = "journalctl returned no kernel messages"
    else:
        first_error = "journalctl not found on PATH"
    journal_timed_out = result.timed_out
    result.source, result.lines, result.timed_out = "dmesg", [], False
    left = max(1.0, timeout - (clock() - start))
    second_error = _run(module, result, "dmesg", DMESG_ARGS, left, clock, clock() + left)
    if second_error is None:
        result.note = "journal not used (%s): read dmesg instead" % first_error
        return
    result.timed_out = result.timed_out or journal_timed_out
    result.error = "journal: %s; dmesg: %s" % (first_error, second_error)


def scan_kernel_log(module, source="auto", path=None, since=None, timeout=15, boot_time=None, stats=None,
                    vendors=None, now=None, clock=time.monotonic, max_file_bytes=None):
    """Read and scan in one call: (KernelLogRead, findings). No findings when the read failed.

    The scan runs within ``timeout`` (see ``read_kernel_log``); whatever it could not scan in time
    is described in ``read.unscanned``. ``read.elapsed`` includes the scan. See ``scan`` for the
    findings and the other arguments.
    """
    start = clock()
    read = read_kernel_log(module, source=source, path=path, since=since, timeout=timeout, clock=clock,
                           max_file_bytes=max_file_bytes)
    if read.error is not None:
        return read, []
    findings = scan(read.lines, since=since, boot_time=boot_time, stats=stats, vendors=vendors, now=now)
    read.elapsed = clock() - start
    return read, findings
