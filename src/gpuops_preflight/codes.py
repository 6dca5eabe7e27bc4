"""Operator codes and labels for check names: the one mapping the log lines use.

Check names are the collection's interface (plugins/module_utils/_checks.py); operators read
codes such as ``GPU_COUNT_MISMATCH`` in WATCHER's log. Add a code here when a check is added
(tests/bridge/test_codes.py fails for a check without one).
"""

from __future__ import annotations

# check name -> (code in warning/blocked lines, label in the "Preflight check:" debug line)
CHECKS: dict[str, tuple[str, str]] = {
    "ssh": ("SSH_UNREACHABLE", "SSH"),
    "probe": ("PROBE_FAILED", "Probe"),
    "ramdisk": ("RAMDISK_NOT_READY", "Ramdisk"),
    "inputs": ("INPUT_MISSING", "Inputs"),
    "gpu_health": ("GPU_UNHEALTHY", "GPU health"),
    "gpu_count": ("GPU_COUNT_MISMATCH", "GPU count"),
    "kernel_log": ("KERNEL_LOG_ERRORS", "Kernel log"),
    "vram": ("VRAM_IN_USE", "VRAM"),
    "gpu_temperature": ("GPU_TOO_HOT", "GPU temperature"),
    "ramdisk_space": ("RAMDISK_LOW_SPACE", "Ramdisk space"),
    "caches": ("CACHES_NOT_CLEARED", "Caches"),
    "clocks": ("CLOCKS_NOT_RESET", "Clocks"),
}


def code(check: str) -> str:
    """``gpu_count`` -> ``GPU_COUNT_MISMATCH``; a check added later without a code reads as its name."""
    return CHECKS.get(check, (check.upper(), ""))[0]


def label(check: str) -> str:
    """``gpu_health`` -> ``GPU health``."""
    return CHECKS.get(check, ("", check.replace("_", " ").capitalize()))[1]
