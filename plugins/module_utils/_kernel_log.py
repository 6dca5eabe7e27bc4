# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the amdgpu kernel-log scanner.

Three parts:

* ``PATTERNS`` / ``BENIGN``: the pattern table. Each kernel line gives at most one finding, from
  the first pattern that matches (more specific patterns come first); a line that matches
  ``BENIGN`` (alarming-looking but seen on healthy boots) never gives one.
* ``scan(lines, since, boot_time)``: pure. Strips timestamps and prefixes, filters by time, and
  collapses repeats into findings keyed on (category, GPU address, message with numbers
  normalised).
* ``read_kernel_log(module, ...)``: reads the kernel log from the journal, dmesg or a file, every
  external command through ``_tool.run_tool`` (hard timeout, own process group). Never raises;
  a failure is reported in ``error`` so that the caller can turn it into an ``unknown`` check.

Timestamps understood (``since`` filtering and ``first_seen``/``last_seen``):

* ISO 8601: ``journalctl -o short-iso-precise`` (``2026-11-25T15:00:00.123456+0000 host kernel:``)
  and ``dmesg --time-format iso`` (``2026-11-25T15:00:00,123456+00:00``), also after the
  ``kern  :err   :`` prefix of ``dmesg --decode``. No zone means local time.
* syslog: ``Feb 25 19:15:17 host kernel: ...``, English month names, local time, the current
  year (the previous year when that would put the line more than two days in the future).
  Other languages (``kvě 25 19:29:48``) cannot be dated: such lines inherit the time of the
  previous dated line.
* ``dmesg -T``: ``[Mon Feb 25 19:15:17 2026]``, local time.
* dmesg monotonic ``[ 1234.567890]``: seconds since boot, epoch = ``boot_time`` + value, where
  ``boot_time`` defaults to now minus ``/proc/uptime`` (so a file from another boot is dated
  wrongly: pass ``boot_time``).

A line without a time of its own inherits the previous line's time. A line with no time and
nothing to inherit is KEPT by the ``since`` filter: we cannot prove it is old, and a preflight
that drops evidence it cannot date would pass a broken GPU.
"""

from __future__ import annotations

import calendar
import math
import os
import re
import time

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks
from ansible_collections.gpuops.preflight.plugins.module_utils import _pci
from ansible_collections.gpuops.preflight.plugins.module_utils import _tool

HARD = _checks.HARD
SOFT = _checks.SOFT

SOURCES = ("auto", "journal", "dmesg", "file")
# A file larger than this is read from its tail: the newest lines matter most.
MAX_FILE_BYTES = 64 * 1024 * 1024
# printk lines are at most ~1 KiB; anything longer is garbage, and a cap keeps regexes linear.
MAX_LINE_CHARS = 4096
MAX_MESSAGE_CHARS = 512

# Category -> (severity, suggested fix). Names are part of the interface.
CATEGORIES = {
    "smu_no_response": (
        HARD,
        "The GPU's power-management firmware (SMU) stopped answering. Power-cycle the rig (a warm "
        "reboot rarely clears it); if it comes back, check that GPU's riser and PCIe power cables, "
        "or add it to excluded_gpus."),
    "smu_message_failed": (
        HARD,
        "The SMU rejected or did not finish a command. Reboot the rig; if it recurs, reduce SMU "
        "polling (monitoring tools, watch rocm-smi) and check the card's power cables."),
    "register_access_failed": (
        HARD,
        "Register reads return all-ones: the GPU no longer answers on the bus. Power-cycle the rig "
        "and reseat that GPU's riser and cables."),
    "bus_lost": (
        HARD,
        "A GPU or a PCIe slot went off the bus. Power-cycle the rig and check the riser, its cable "
        "and the PCIe power. A pcieport/pciehp line names the bridge, not the GPU: find the GPU "
        "behind it with 'lspci -tv'."),
    "ring_timeout": (
        SOFT,
        "A GPU job hung (ring timeout). Check the named process; if it recurs, check clocks, "
        "undervolt, temperatures and power of that GPU."),
    "gpu_hang": (
        HARD,
        "The GPU's command processor or scheduler firmware (MES/KIQ/CP) hung. Reboot the rig before "
        "new work; a GPU in this state rarely recovers by itself."),
    "gpu_reset": (
        SOFT,
        "The driver reset the GPU and killed the work on it. Check what ran (see the ring timeout "
        "line); reboot the rig if resets repeat."),
    "gpu_reset_failed": (
        HARD,
        "The GPU did not come back from a reset or resume. Power-cycle the rig."),
    "page_fault": (
        SOFT,
        "A GPU program accessed an invalid address: usually an application bug, sometimes corrupted "
        "memory under unstable clocks. Check the named process."),
    "ras_uncorrectable": (
        HARD,
        "Uncorrectable hardware (ECC/RAS) error. Take the GPU out of service, check its error counts "
        "and bad pages (amd-smi metric --ecc, amd-smi bad-pages); replace it if it recurs."),
    "ras_correctable": (
        SOFT,
        "Correctable hardware (ECC) errors: no action needed now; watch the counts "
        "(amd-smi metric --ecc)."),
    "init_failed": (
        HARD,
        "amdgpu failed to initialise a GPU. Read the kernel log around it (firmware files, VBIOS, "
        "PCIe errors), reboot, and reseat the card if it persists."),
}


class Pattern(object):
    """One row of the pattern table.

    ``key`` is a lower-case literal that every match contains: lines without any key are skipped
    without running a regex, which keeps a scan of a long journal fast.
    """

    __slots__ = ("category", "severity", "regex", "summary", "fix", "amdgpu_only", "key")

    def __init__(self, category, key, regex, summary, amdgpu_only=False):
        self.category = category
        self.severity, self.fix = CATEGORIES[category]
        self.key = key
        self.regex = re.compile(regex, re.IGNORECASE)
        self.summary = summary
        # Wording that other drivers could print too only counts on lines that name amdgpu.
        self.amdgpu_only = amdgpu_only

    def __repr__(self):
        return "Pattern(%s, %r)" % (self.category, self.regex.pattern)


_BDF = r"[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]"
_P = Pattern

# Ordered: the first match wins, so more specific wording comes before more general wording
# (0xFFFFFFFF before any SMU response, "reset failed" before "reset").
PATTERNS = [
    # The SMU does not answer at all: all-ones reads, or the driver gave up on it.
    _P("smu_no_response", "smu", r"SMU: response:\s*0xFFFFFFFF\b", "SMU not answering (0xFFFFFFFF)"),
    _P("smu_no_response", "smu", r"SMU: No response msg_reg", "SMU not answering (no response)"),
    _P("smu_no_response", "smu", r"SMU is in hanged state", "SMU marked hung by the driver"),
    _P("smu_no_response", "timeout", r"is timeout \(no response\)", "SMU message timed out (no response)"),
    _P("smu_no_response", "smc", r"\bSMC is not ready", "SMC not ready", amdgpu_only=True),
    _P("smu_no_response", "smc", r"SMC engine is not correctly up", "SMC engine not up"),
    # The SMU answers, but a message failed.
    _P("smu_message_failed", "smu", r"SMU: I'm not done with your previous command", "SMU busy with a previous command"),
    _P("smu_message_failed", "smu", r"SMU: I'm very busy", "SMU too busy for a command"),
    _P("smu_message_failed", "smu", r"SMU: valid command, bad prerequisites", "SMU refused a command (bad prerequisites)"),
    _P("smu_message_failed", "smu", r"SMU: unknown command", "SMU rejected an unknown command"),
    _P("smu_message_failed", "smu", r"SMU: I'm debugging", "SMU in debug state"),
    _P("smu_message_failed", "smu", r"SMU: response:\s*0x[0-9a-f]+", "SMU message failed"),
    _P("smu_message_failed", "fail", r"Failed to export SMU metrics table", "SMU metrics table export failed"),
    _P("smu_message_failed", "fail", r"\[powerplay\]\s*failed send message", "SMU message failed (powerplay)"),
    _P("smu_message_failed", "fail", r"failed to send (?:pre )?message \S+ ret is", "SMU message failed (powerplay)"),
    _P("smu_message_failed", "fail", r"last message was failed", "SMU message failed (powerplay)"),
    _P("smu_message_failed", "fail", r"Msg issuing pre-check failed", "SMU not ready for a message"),
    _P("smu_message_failed", "fail", r"Failed to disallow (?:df cstate|cf state)", "SMU failed to change DF C-state"),
    _P("smu_message_failed", "fail", r"\[SetDfCstate\] failed", "SMU failed to change DF C-state"),
    _P("smu_message_failed", "fail", r"\[PrepareMp1\] Failed", "SMU failed to prepare MP1"),
    _P("smu_message_failed", "fail", r"Failed to disable smu features", "SMU failed to disable features"),
    _P("smu_message_failed", "smc", r"SMC failed to set mp1 state", "SMU failed to set MP1 state"),
    _P("smu_message_failed", "fail", r"Failed to get current clock freq", "SMU clock query failed"),
    _P("smu_message_failed", "fail", r"Failed to disable gfxoff", "SMU failed to disable GFXOFF"),
    # All-ones MMIO reads: the device is gone.
    _P("register_access_failed", "fail", r"failed to (?:read|write) reg\b", "register access failed", amdgpu_only=True),
    _P("register_access_failed", "0xffffffff", r"L2_PROTECTION_FAULT_STATUS:\s*0xFFFFFFFF\b", "fault status reads all-ones"),
    # Off the bus. pcieport/pciehp lines name the bridge: never attributed to a GPU (see _bdf_of).
    _P("bus_lost", "lost", r"device lost from bus", "GPU lost from the PCIe bus", amdgpu_only=True),
    _P("bus_lost", "inaccessible", r"(?:^|\s)(?:amdgpu|pcieport) " + _BDF + r":.*\bdevice inaccessible", "device inaccessible on the PCIe bus"),
    _P("bus_lost", "pciehp", r"\bpciehp\b.*\b(?:Link Down|Card not present)\b", "PCIe slot link down"),
    # Init failures.
    _P("init_failed", "fail", r"\bhw_init of IP block <?[^>\s]+>? failed", "IP block init failed", amdgpu_only=True),
    _P("init_failed", "fatal", r"Fatal error during GPU init", "fatal error during GPU init", amdgpu_only=True),
    _P("init_failed", "fail", r"memory training failed", "memory training failed", amdgpu_only=True),
    _P("init_failed", "fail", r"\bamdgpu: probe of (?P<bdf>" + _BDF + r") failed", "amdgpu probe failed"),
    _P("init_failed", "fail", r"probe with driver amdgpu failed", "amdgpu probe failed"),
    # Failed resets and resumes (before the plain reset lines).
    _P("gpu_reset_failed", "fail", r"GPU reset\(\d+\) failed", "GPU reset failed", amdgpu_only=True),
    _P("gpu_reset_failed", "fail", r"\bmode[12] reset failed", "GPU mode reset failed", amdgpu_only=True),
    _P("gpu_reset_failed", "fail", r"ASIC reset failed with error", "ASIC reset failed", amdgpu_only=True),
    _P("gpu_reset_failed", "fail", r"GPU Recovery Failed", "GPU recovery failed", amdgpu_only=True),
    _P("gpu_reset_failed", "reset", r"GPU reset end with ret = -\d+", "GPU reset failed", amdgpu_only=True),
    _P("gpu_reset_failed", "fail", r"\bRing \S+ reset failed", "ring reset failed", amdgpu_only=True),
    _P("gpu_reset_failed", "fail", r"\bresume of IP block <?[^>\s]+>? failed", "IP block resume failed", amdgpu_only=True),
    _P("gpu_reset_failed", "fail", r"amdgpu_device_ip_resume failed", "device resume failed"),
    _P("gpu_reset_failed", "fail", r"PSP resume failed", "PSP resume failed", amdgpu_only=True),
    _P("gpu_reset_failed", "fail", r"\bsuspend of IP block <?[^>\s]+>? failed", "IP block suspend failed", amdgpu_only=True),
    # Firmware / queue hangs.
    _P("gpu_hang", "fail", r"\bMES(?:\(\d+\))? failed to respon", "MES firmware not responding"),
    _P("gpu_hang", "unrecoverable", r"MES might be in unrecoverable state", "MES in unrecoverable state"),
    _P("gpu_hang", "fail", r"failed to remove hardware queue from MES", "MES could not remove a queue"),
    _P("gpu_hang", "hung", r"IP block:\s*\S+ is hung", "IP block hung"),
    _P("gpu_hang", "fail", r"\bring kiq_\S* test failed", "KIQ ring test failed"),
    _P("gpu_hang", "kiq", r"timeout waiting for kiq fence|wait for kiq fence error", "KIQ fence timeout", amdgpu_only=True),
    _P("gpu_hang", "timeout", r"qcm fence wait loop timeout expired", "queue preemption timed out"),
    _P("gpu_hang", "unrecoverable", r"The cp might be in an unrecoverable state", "CP in unrecoverable state", amdgpu_only=True),
    _P("gpu_hang", "fail", r"Failed to evict (?:process )?queues?\b", "queue eviction failed", amdgpu_only=True),
    _P("gpu_hang", "fail", r"Failed to suspend process", "process suspend failed", amdgpu_only=True),
    _P("gpu_hang", "fail", r"failed to halt cp gfx", "CP halt failed", amdgpu_only=True),
    _P("gpu_hang", "fail", r"failed to unmap legacy queue", "queue unmap failed", amdgpu_only=True),
    _P("gpu_hang", "timed out", r"IB test timed out", "IB test timed out", amdgpu_only=True),
    _P("gpu_hang", "hang", r"HW Exception by GPU node-?\d+.*GPU Hang", "GPU hang reported to the application"),
    # RAS.
    _P("ras_uncorrectable", "hardware error", r"(?<!\b0 )\buncorrectable hardware errors?\b", "uncorrectable hardware error", amdgpu_only=True),
    _P("ras_uncorrectable", "hardware error", r"\[Hardware Error\]:?\s*Accelerator Check Architecture events logged",
       "ACA hardware error logged", amdgpu_only=True),
    _P("ras_uncorrectable", "poison", r"\bpoison", "RAS poison", amdgpu_only=True),
    _P("ras_correctable", "hardware error", r"(?<!\b0 )\bcorrectable hardware errors? detected", "correctable hardware errors",
       amdgpu_only=True),
    _P("ras_correctable", "count", r"\bce[ _]count\b(?![:=\s]*0\b)", "correctable error count", amdgpu_only=True),
    # Timeouts (soft: the driver may recover).
    _P("ring_timeout", "timeout", r"\bring \S+ timeout\b", "ring timeout", amdgpu_only=True),
    _P("ring_timeout", "timed out", r"Waiting for fences timed out", "fence wait timed out", amdgpu_only=True),
    # Resets that did not (yet) fail.
    _P("gpu_reset", "reset", r"GPU reset begin", "GPU reset", amdgpu_only=True),
    _P("gpu_reset", "reset", r"GPU reset succeeded, trying to resume", "GPU reset", amdgpu_only=True),
    _P("gpu_reset", "reset", r"GPU reset\(\d+\) succeeded", "GPU reset", amdgpu_only=True),
    _P("gpu_reset", "reset", r"\bStarting \S+ ring reset", "ring reset", amdgpu_only=True),
    _P("gpu_reset", "reset", r"\bRing \S+ reset succeeded", "ring reset", amdgpu_only=True),
    _P("gpu_reset", "reset", r"device wedged, but recovered through reset", "GPU wedged, recovered by reset", amdgpu_only=True),
    _P("gpu_reset", "reset", r"VRAM is lost due to GPU reset", "VRAM lost in a GPU reset"),
    _P("gpu_reset", "reset", r"soft reset failed, will fallback to full reset", "soft reset failed, full reset",
       amdgpu_only=True),
    _P("gpu_reset", "reset", r"\bmode[12] reset\b", "GPU mode reset", amdgpu_only=True),
    # Page faults: header lines only; the detail lines that follow belong to the same fault.
    _P("page_fault", "fault", r"\[(?:gfx|mm)hub\d*\][^(]{0,40}\bpage fault\b", "GPU page fault"),
    _P("page_fault", "fault", r"\bGPU fault detected:", "GPU page fault", amdgpu_only=True),
    _P("page_fault", "fault", r"Memory access fault by GPU node-?\d+", "GPU memory access fault (application)"),
]

# Alarming-looking lines that healthy boots and resumes print. They never give a finding.
BENIGN = [re.compile(r, re.IGNORECASE) for r in (
    r"SMU driver if version not matched",
    r"SMU is resuming",
    r"SMU is resumed successfully",
    r"\bta ucode is not available",           # RAP/RAS/HDCP/SECUREDISPLAY optional firmware
    r"\binit context\b",                      # reset while the driver initialises (AMD node-agent rule)
    r"poison setting is inconsistent",        # DF/UMC poison setting on consumer boards at boot
    r"\b(?:MEM|SRAM) ECC is not presented",
    r"\bras initialized successfully",
)]

# The literal keys, each looked up once per line (see Pattern.key).
_KEYS = tuple(sorted(set(p.key for p in PATTERNS)))

# -- line prefixes and timestamps -------------------------------------------------------------

_DECODE_PREFIX = re.compile(
    r"^(?:kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|local[0-7])\s*:\s*"
    r"(?:emerg|alert|crit|err|warn|notice|info|debug)\s*:\s*")
_PRIORITY_PREFIX = re.compile(r"^<\d{1,3}>")
_ISO = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?(Z|[+-]\d\d(?::?\d\d)?)?(?=\s|$)")
_CTIME = re.compile(r"^\[(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([A-Za-z]{3}) +(\d{1,2}) (\d\d):(\d\d):(\d\d) (\d{4})\]")
_SYSLOG = re.compile(r"^([^\W\d_]{3,5}\.?) +(\d{1,2}) (\d\d):(\d\d):(\d\d) +(\S+) +")
_MONOTONIC = re.compile(r"^\[\s*(\d{1,10}\.\d{1,9})\]")
_CALLER = re.compile(r"^\[\s*[TC]\d+\]\s*")            # printk caller id: [    T140]
_HOST_KERNEL = re.compile(r"^(?:\S+\s+)?kernel(?:\[\d+\])?:\s*")
_MONTHS = dict((m, i + 1) for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")))

# -- attribution and collapsing ---------------------------------------------------------------

_DEVICE_PREFIX = re.compile(r"(?:^|[\s\]}])amdgpu (" + _BDF + r"):")
_DRM_DEV = re.compile(r"for drm dev,? (" + _BDF + r")")
_DRM_CONTEXT = re.compile(r"\[drm[:\]]")
_ANY_BDF = re.compile(r"(?<![0-9A-Za-z:])(" + _BDF + r")(?![0-9])")
_PROTECTED = re.compile(_BDF + r"|\bnode-\d+", re.IGNORECASE)
# A number: decimal or hex with at least one digit, or any hex word right after ':' or '='
# (register offsets such as "reg:abcd").
_NUMBER = re.compile(r"(?<![0-9A-Za-z])(?:0[xX])?[0-9a-fA-F]*[0-9][0-9a-fA-F]*(?![0-9A-Za-z])"
                     r"|(?<=[:=])[0-9a-fA-F]+(?![0-9A-Za-z])")


def _to_text(raw):
    if isinstance(raw, str):
        if len(raw) <= MAX_LINE_CHARS and not raw.endswith(("\n", "\r")):
            return raw  # the common case, kept cheap
    elif isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    elif not isinstance(raw, str):
        raw = str(raw)
    raw = raw.rstrip("\r\n")
    if len(raw) > MAX_LINE_CHARS:
        raw = raw[:MAX_LINE_CHARS]
    return raw


def _local_epoch(year, month, day, hour, minute, second):
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 60):
        return None
    try:
        return time.mktime((year, month, day, hour, minute, second, 0, 0, -1))
    except (OverflowError, ValueError):
        return None


_ISO_CACHE = {}


def _iso_epoch(match):
    # Lines of one second share the conversion (a flood has thousands per second).
    key = match.string[match.start(1):match.end(6)] + (match.group(8) or "")
    base = _ISO_CACHE.get(key)
    if base is None:
        base = _iso_base(match)
        if base is None:
            return None
        if len(_ISO_CACHE) >= 4096:
            _ISO_CACHE.clear()
        _ISO_CACHE[key] = base
    return base + (float("0." + match.group(7)) if match.group(7) else 0.0)


def _iso_base(match):
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    zone = match.group(8)
    if zone is None:
        return _local_epoch(year, month, day, hour, minute, second)
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 60):
        return None
    try:
        base = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except (OverflowError, ValueError):
        return None
    if zone.upper() != "Z":
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + (int(digits[2:4]) * 60 if len(digits) >= 4 else 0)
        base -= offset if zone[0] == "+" else -offset
    return base


def _syslog_epoch(month_name, day, hour, minute, second, now):
    month = _MONTHS.get(month_name.rstrip(".").lower()[:3])
    if month is None or not month_name.rstrip(".").isascii():
        return None
    year = time.localtime(now).tm_year
    epoch = _local_epoch(year, month, day, hour, minute, second)
    # syslog has no year: a December line read in January belongs to last year.
    if epoch is not None and epoch > now + 2 * 86400:
        epoch = _local_epoch(year - 1, month, day, hour, minute, second)
    return epoch


def split_line(line, boot_time=None, now=None):
    """Split a raw log line into (stamp text or None, epoch or None, message body).

    ``boot_time`` is a number, None (monotonic stamps then give no epoch), or a callable that
    returns one (asked only when a monotonic stamp is met).
    """
    text = _to_text(line)
    body = _PRIORITY_PREFIX.sub("", _DECODE_PREFIX.sub("", text, count=1), count=1)
    stamp, epoch = None, None
    match = _ISO.match(body)
    if match:
        stamp, epoch = match.group(0), _iso_epoch(match)
        body = _HOST_KERNEL.sub("", body[match.end():].lstrip(), count=1)
    else:
        match = _CTIME.match(body)
        if match:
            stamp = match.group(0)[1:-1]
            month = _MONTHS.get(match.group(1).lower())
            if month:
                epoch = _local_epoch(int(match.group(6)), month, int(match.group(2)), int(match.group(3)),
                                     int(match.group(4)), int(match.group(5)))
            body = body[match.end():].lstrip()
        else:
            match = _SYSLOG.match(body)
            if match:
                stamp = "%s %s %s:%s:%s" % match.group(1, 2, 3, 4, 5)
                epoch = _syslog_epoch(match.group(1), int(match.group(2)), int(match.group(3)),
                                      int(match.group(4)), int(match.group(5)),
                                      time.time() if now is None else now)
                body = _HOST_KERNEL.sub("", body[match.end():], count=1)
    # A monotonic stamp: on its own (dmesg) or inside a syslog line (then the wall clock wins).
    match = _MONOTONIC.match(body)
    if match:
        if stamp is None:
            stamp = match.group(1)
            base = boot_time() if callable(boot_time) else boot_time
            if base is not None:
                epoch = base + float(match.group(1))
        body = body[match.end():].lstrip()
        body = _HOST_KERNEL.sub("", _CALLER.sub("", body, count=1), count=1)
    return stamp, epoch, body.strip()


def _bdf_of(body, match):
    """The GPU a line is about: only addresses the amdgpu driver prints, never a bridge's."""
    if "bdf" in match.re.groupindex and match.group("bdf"):
        return _pci.normalize_bdf(match.group("bdf"))
    for regex in (_DEVICE_PREFIX, _DRM_DEV):
        found = regex.search(body)
        if found:
            return _pci.normalize_bdf(found.group(1))
    if _DRM_CONTEXT.search(body):
        found = _ANY_BDF.search(body)
        if found:
            return _pci.normalize_bdf(found.group(1))
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


def classify(body):
    """(pattern, match) for a message body, or (None, None) for benign and unknown lines."""
    lower = body.lower()
    keys = _keys_in(lower)
    if not keys:
        return None, None
    for benign in BENIGN:
        if benign.search(body):
            return None, None
    for pattern in PATTERNS:
        if pattern.key not in keys:
            continue
        match = pattern.regex.search(body)
        if match and (not pattern.amdgpu_only or "amdgpu" in lower):
            return pattern, match
    return None, None


def read_boot_time(uptime_path="/proc/uptime", now=None):
    """Epoch seconds of this boot (now minus the first field of /proc/uptime), or None."""
    try:
        with open(uptime_path) as handle:
            uptime = float(handle.read().split()[0])
    except (IOError, OSError, ValueError, IndexError):
        return None
    return (time.time() if now is None else now) - uptime


# Lines kept back, unparsed, in case a following line must inherit their time. Continuations
# are a few lines long; 64 is plenty and bounds the work.
_PENDING = 64
_CACHE_SIZE = 4096


class _Clock(object):
    """The time state of a scan: the last stamp and epoch seen, and lines not parsed yet.

    Only lines that may give a finding are parsed; the others wait in ``pending`` and are parsed
    (newest first) only when a finding needs a time to inherit.
    """

    def __init__(self, boot_time, now, want_epoch):
        self.boot_time = boot_time
        self.now = now
        self.want_epoch = want_epoch  # only a since filter needs epochs; stamps are always shown
        self.stamp = None
        self.epoch = None
        self.pending = []

    def skip(self, text):
        self.pending.append(text)
        if len(self.pending) > 2 * _PENDING:
            del self.pending[:-_PENDING]

    def parse(self, text):
        """Parse a line; return (stamp, epoch, body) with the stamp and epoch inherited."""
        stamp, epoch, body = split_line(text, self.boot_time, self.now)
        if stamp is None or (epoch is None and self.want_epoch):
            self._resolve(need_stamp=stamp is None)
        if stamp is None:
            stamp = self.stamp
        if epoch is None:
            epoch = self.epoch
        self.pending = []
        self.stamp, self.epoch = stamp, epoch
        return stamp, epoch, body

    def _resolve(self, need_stamp):
        """Take the newest stamp and epoch from the lines skipped since the last parsed one."""
        found_stamp = not need_stamp
        for text in reversed(self.pending[-_PENDING:]):
            stamp, epoch = split_line(text, self.boot_time, self.now)[:2]
            if not found_stamp and stamp is not None:
                self.stamp, found_stamp = stamp, True
            if epoch is not None:
                self.epoch = epoch
                return
            if found_stamp and not self.want_epoch:
                return


def scan(lines, since=None, boot_time=None, stats=None):
    """Classify kernel log lines into collapsed findings (see the module docstring).

    ``lines``: an iterable of str (bytes are decoded, a single str is split into lines).
    ``since``: epoch seconds; findings from lines older than it are dropped. ``boot_time``: epoch
    of the boot that dmesg monotonic stamps count from (default: from /proc/uptime, read only
    when needed). ``stats``: an optional dict that receives the counts ``lines`` (examined),
    ``matched`` (lines that gave a finding) and ``too_old`` (matching lines dropped by ``since``).

    Findings come in the order of their first line. Repeats collapse on (category, bdf, message
    with numbers normalised); ``count`` counts the lines.
    """
    if isinstance(lines, bytes):
        lines = lines.decode("utf-8", "replace")
    if isinstance(lines, str):
        lines = lines.split("\n")
    if boot_time is None and since is not None:
        cache = []

        def boot_time():
            if not cache:
                cache.append(read_boot_time())
            return cache[0]
    clock = _Clock(boot_time if since is not None else None, time.time(), since is not None)
    findings, order, classified = {}, [], {}
    counts = {"lines": 0, "matched": 0, "too_old": 0}
    for raw in lines:
        counts["lines"] += 1
        try:
            text = _to_text(raw)
            lower = text.lower()
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
                pattern, match = classify(body)
                if pattern is None:
                    known = classified[body] = (None,)
                else:
                    message = " ".join(body.split())[:MAX_MESSAGE_CHARS]
                    bdf = _bdf_of(body, match)
                    known = classified[body] = (pattern, bdf, message, (pattern.category, bdf, _normalise(message)))
            if known[0] is None:
                continue
            if since is not None and epoch is not None and epoch < since:
                counts["too_old"] += 1
                continue
        except Exception:  # one unreadable line must not hide the others
            continue
        pattern, bdf, message, key = known
        counts["matched"] += 1
        finding = findings.get(key)
        if finding is None:
            finding = findings[key] = {
                "category": pattern.category,
                "severity": pattern.severity,
                "bdf": bdf,
                "summary": pattern.summary,
                "fix": pattern.fix,
                "message": message,
                "line": text,
                "count": 0,
                "first_seen": stamp,
                "last_seen": stamp,
            }
            order.append(key)
        finding["count"] += 1
        finding["last_seen"] = stamp
    if stats is not None:
        stats.update(counts)
    return [findings[key] for key in order]


def severity_counts(findings):
    """How many findings (collapsed, not occurrences) are hard and soft."""
    return {
        HARD: sum(1 for f in findings if f["severity"] == HARD),
        SOFT: sum(1 for f in findings if f["severity"] == SOFT),
    }


# -- reading ---------------------------------------------------------------------------------

class KernelLogRead(object):
    """What ``read_kernel_log`` got: lines, where from, and why not when it failed."""

    __slots__ = ("lines", "source", "cmd", "error", "timed_out", "elapsed", "note")

    def __init__(self, source):
        self.lines = []
        self.source = source
        self.cmd = None
        self.error = None
        self.timed_out = False
        self.elapsed = 0.0
        self.note = None

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
        }


# Journal meta lines, not kernel messages (-q hides most of them, not all on every version).
_JOURNAL_META = re.compile(r"^-- (?:No entries|Journal begins|Logs begin|Boot |Reboot)")


def _split_output(text):
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


def _first_line(text):
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""


def _run(module, result, name, args, timeout, clock):
    """Run a tool; fill result.cmd/lines or return the reason it failed (str)."""
    binary = _tool.find_tool(module, name)
    if not binary:
        return "%s not found on PATH" % name
    run = _tool.run_tool(module, [binary] + list(args), timeout, clock=clock)
    result.cmd = list(run.cmd)
    if run.timed_out:
        result.timed_out = True
    if not run.ran:
        return run.describe()
    if run.rc != 0:
        why = "%s exited %s" % (name, run.rc)
        detail = _first_line(run.stderr) or _first_line(run.stdout)
        if detail:
            why += ": %s" % detail
        if name == "dmesg" and re.search(r"Operation not permitted|EPERM", run.stderr or ""):
            why += (" (kernel.dmesg_restrict=1: reading the kernel log needs root or CAP_SYSLOG;"
                    " run the task with become: true)")
        return why
    result.lines = _split_output(run.stdout)
    if name == "journalctl":
        result.lines = [line for line in result.lines if not _JOURNAL_META.match(line)]
    return None


def _journal_args(since):
    args = ["-k", "-b", "0", "-o", "short-iso-precise", "--no-pager", "-q"]
    if since is not None:
        # Whole seconds, rounded down: the journal gives a superset, scan() filters exactly.
        args += ["--since", "@%d" % int(math.floor(since))]
    return args


DMESG_ARGS = ["--time-format", "iso"]


def _read_file(result, path, cap):
    if not path:
        result.error = "source=file needs a path"
        return
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > cap:
                handle.seek(size - cap)
                data = handle.read(cap)
                newline = data.find(b"\n")
                data = data[newline + 1:] if newline >= 0 else data
                result.note = ("%s is %d bytes: scanned only its last %d MiB"
                               % (path, size, cap // (1024 * 1024)))
            else:
                data = handle.read(cap)
    except (IOError, OSError) as exc:
        result.error = "cannot read %s: %s" % (path, exc.strerror or exc)
        return
    result.lines = [line.rstrip("\r") for line in data.decode("utf-8", "replace").split("\n") if line.strip()]


def read_kernel_log(module, source="auto", path=None, since=None, timeout=15, clock=time.monotonic,
                    max_file_bytes=MAX_FILE_BYTES):
    """Read the kernel log of this boot. Never raises; see ``KernelLogRead``.

    source ``journal``: ``journalctl -k -b 0 -o short-iso-precise --no-pager -q [--since @<epoch>]``;
    ``dmesg``: ``dmesg --time-format iso``; ``file``: ``path`` (its tail when larger than
    ``max_file_bytes``); ``auto``: the journal when journalctl exists and gives at least one line,
    else dmesg with the time left (at least 1 s), and both reasons when both fail.
    """
    start = clock()
    result = KernelLogRead(source)
    try:
        if source == "file":
            _read_file(result, path, max_file_bytes)
        elif source == "journal":
            result.error = _run(module, result, "journalctl", _journal_args(since), timeout, clock)
            if result.error is None and not result.lines:
                if since is None:
                    # A boot always has kernel lines: none means we may not read the journal.
                    result.error = ("journalctl returned no kernel messages for this boot (is the journal "
                                    "readable by this user? run as root or in group systemd-journal)")
                else:
                    result.note = ("journalctl returned no kernel messages since the given time (an "
                                   "unreadable journal looks the same: run as root)")
        elif source == "dmesg":
            result.error = _run(module, result, "dmesg", DMESG_ARGS, timeout, clock)
        elif source == "auto":
            _read_auto(module, result, since, timeout, clock)
        else:
            result.error = "unknown kernel log source %r (use one of %s)" % (source, ", ".join(SOURCES))
    except Exception as exc:  # a check reports, it never crashes the module
        result.error = "reading the kernel log failed: %s: %s" % (type(exc).__name__, exc)
    result.elapsed = clock() - start
    return result


def _read_auto(module, result, since, timeout, clock):
    start = clock()
    first_error = None
    if _tool.find_tool(module, "journalctl"):
        result.source = "journal"
        first_error = _run(module, result, "journalctl", _journal_args(since), timeout, clock)
        if first_error is None and result.lines:
            return
        if first_error is None:
            first_error = "journalctl returned no kernel messages"
    else:
        first_error = "journalctl not found on PATH"
    journal_timed_out = result.timed_out
    result.source, result.lines, result.timed_out = "dmesg", [], False
    left = max(1.0, timeout - (clock() - start))
    second_error = _run(module, result, "dmesg", DMESG_ARGS, left, clock)
    if second_error is None:
        result.note = "journal not used (%s): read dmesg instead" % first_error
        return
    result.timed_out = result.timed_out or journal_timed_out
    result.error = "journal: %s; dmesg: %s" % (first_error, second_error)


def scan_kernel_log(module, source="auto", path=None, since=None, timeout=15, boot_time=None, stats=None):
    """Read and scan in one call: (KernelLogRead, findings). No findings when the read failed."""
    read = read_kernel_log(module, source=source, path=path, since=since, timeout=timeout)
    if read.error is not None:
        return read, []
    return read, scan(read.lines, since=since, boot_time=boot_time, stats=stats)
