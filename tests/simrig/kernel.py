"""Kernel log lines in dmesg's monotonic form, stamped against THIS machine's boot time.

``[ 1234.567890] message`` is seconds since boot (``dmesg`` without ``-T``). A line meant to have
happened at wall-clock epoch ``E`` gets ``E - boot_epoch()``, where ``boot_epoch()`` is
the product's own boot time (``btime`` of /proc/stat, else ``time.time() - /proc/uptime``), so the product
converting back (or ``journalctl --since``) finds it at ``E`` to well within a second.
"""

from __future__ import annotations

import os
import re
import sys
import time

from . import fixtures

_TS_RE = re.compile(r"^\[\s*(\d+)\.(\d{1,9})\]")


def uptime():
    try:
        with open("/proc/uptime") as handle:
            return float(handle.read().split()[0])
    except (OSError, ValueError, IndexError):  # not Linux: pretend we booted a day ago
        return 86400.0


def boot_epoch():
    """Wall-clock time of boot, as the kernel's monotonic stamps count from it: the product's own reading (btime of
    /proc/stat, else /proc/uptime), so that a line converts back to exactly its time."""
    collections = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                               ".collections")
    if collections not in sys.path:   # run as `python -m simrig` (the demo), not under pytest's conftest
        sys.path.append(collections)
    from ansible_collections.gpuops.preflight.plugins.module_utils import _kernel_time
    boot = _kernel_time.read_boot_time()
    return boot if boot is not None else time.time() - uptime()


def format_line(seconds, message):
    """dmesg's own format: ``[%5lu.%06lu] message``."""
    seconds = max(0.0, seconds)
    whole = int(seconds)
    micro = int(round((seconds - whole) * 1e6))
    if micro >= 1000000:
        whole, micro = whole + 1, micro - 1000000
    return "[%5d.%06d] %s" % (whole, micro, message)


def line_seconds(line):
    """Seconds since boot of a dmesg line, or None."""
    match = _TS_RE.match(line)
    return float("%s.%s" % match.groups()) if match else None


def line_epoch(line, boot=None):
    seconds = line_seconds(line)
    if seconds is None:
        return None
    return (boot_epoch() if boot is None else boot) + seconds


def stamp(messages, at_epoch=None, age_s=0.0, span_s=1.0):
    """Stamp messages ([(recorded seconds or None, text)] or [text]) as a block of dmesg lines.

    The block starts at ``at_epoch`` (default: now - ``age_s``); the recording's own spacing is
    kept but squeezed into ``span_s`` seconds, and stamps never go backwards. A start before
    this machine booted is moved to 1 s after boot (dmesg cannot show earlier lines).
    """
    items = [(None, m) if isinstance(m, str) else m for m in messages]
    boot = boot_epoch()
    start = (time.time() - age_s if at_epoch is None else at_epoch) - boot
    if start < 1.0:
        # Older than this machine's boot: the line can only be "just after boot" (still long
        # before any step started); its epoch is then later than asked for.
        start = 1.0
    recorded = [s for s, _msg in items if s is not None]
    first = min(recorded) if recorded else 0.0
    width = (max(recorded) - first) if recorded else 0.0
    scale = (span_s / width) if width > span_s and width > 0 else 1.0
    out, last, step = [], start, 0.000007
    for n, (sec, msg) in enumerate(items):
        t = start + (sec - first) * scale if sec is not None else start + n * step
        t = max(t, last)
        last = t
        out.append(format_line(t, msg))
    return out


def merge_into(path, lines):
    """Append lines to a kernel log file, keeping it ordered by stamp (stable)."""
    existing = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            existing = handle.read().splitlines()
    combined = existing + list(lines)
    keyed = [(line_seconds(l), i, l) for i, l in enumerate(combined)]
    # Lines without a stamp stay behind the stamped line they followed.
    last = 0.0
    ordered = []
    for sec, i, line in keyed:
        if sec is None:
            sec = last
        last = sec
        ordered.append((sec, i, line))
    ordered.sort()
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for _sec, _pos, line in ordered))
    os.replace(tmp, path)


def rewrite_bdf(messages, source, target):
    """Rewrite one GPU address of a recording to another (both spellings rocm/kernel use)."""
    if not source:
        return list(messages)
    pattern = re.compile(re.escape(source), re.IGNORECASE)
    return [(s, pattern.sub(target, m)) for s, m in messages]


def select_gpu_lines(messages, source):
    """Only the lines a recording attributes to the GPU at ``source``."""
    return [(s, m) for s, m in messages if source and source.lower() in m.lower()]


def recording_for_gpu(name, bdf, only_gpu_lines=True):
    """A dmesg recording's lines about its (first) GPU, re-addressed to ``bdf``.

    A recording that names no device (the MI300 counts table) gets the kernel's own device
    prefix ``amdgpu <bdf>: `` on each message.
    """
    messages = fixtures.dmesg_messages(name)
    source = fixtures.dmesg_source_bdf(messages)
    if source is None:
        return [(s, "amdgpu %s: %s" % (bdf, m)) for s, m in messages]
    if only_gpu_lines:
        messages = select_gpu_lines(messages, source)
    return rewrite_bdf(messages, source, bdf)


CHIP_NAMES = {
    # device id -> the name amdgpu prints in "initializing kernel modesetting (<CHIP> ...)"
    "0x73ff": "DIMGREY_CAVEFISH", "0x73df": "NAVY_FLOUNDER", "0x73bf": "SIENNA_CICHLID",
    "0x738c": "ARCTURUS", "0x740c": "ALDEBARAN", "0x7408": "ALDEBARAN", "0x6861": "VEGA10",
    "0x66a1": "VEGA20", "0x744c": "GC 11.0.0",
}


def healthy_boot(gpus, driver_version="3.57.0"):
    """A healthy amdgpu boot, per GPU, in the kernel's own wording (no failures in it)."""
    out = [(None, "[drm] amdgpu kernel modesetting enabled."),
           (None, "amdgpu: Virtual CRAT table created for CPU"),
           (None, "amdgpu: Topology: Add CPU node")]
    for gpu in gpus:
        chip = CHIP_NAMES.get(gpu.device_id, "IP DISCOVERY")
        out += [
            (None, "[drm] initializing kernel modesetting (%s 0x1002:0x%s 0x%s:0x%s 0x%s)."
             % (chip, gpu.device_id[2:].upper(), gpu.subsystem_vendor[2:].upper(),
                gpu.subsystem_device[2:].upper(), gpu.revision[2:].upper())),
            (None, "amdgpu %s: amdgpu: Fetched VBIOS from VFCT" % gpu.bdf),
            (None, "amdgpu %s: amdgpu: VRAM: %dM 0x0000008000000000 - 0x%016X (%dM used)"
             % (gpu.bdf, gpu.vram_total // 1048576, 0x8000000000 + gpu.vram_total - 1, gpu.vram_total // 1048576)),
            (None, "amdgpu %s: amdgpu: SMU is initialized successfully!" % gpu.bdf),
            (None, "kfd kfd: amdgpu: added device 1002:%s" % gpu.device_id[2:]),
            (None, "[drm] Initialized amdgpu %s 20150101 for %s on minor %d" % (driver_version, gpu.bdf, gpu.card)),
        ]
    return out
