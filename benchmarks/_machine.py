"""Benchmark aid: the machine a measurement ran on, written beside every result (one description for all)."""

from __future__ import annotations

import os
import platform
import subprocess


def _first(path, prefix):
    """The value of the first ``prefix: value`` line of ``path`` (``/proc/cpuinfo``), or None."""
    try:
        with open(path, encoding="utf-8") as handle:
            return next((line.split(":", 1)[1].strip() for line in handle if line.startswith(prefix)), None)
    except OSError:
        return None


def _os_name():
    try:
        with open("/etc/os-release", encoding="utf-8") as handle:
            fields = dict(line.rstrip("\n").split("=", 1) for line in handle if "=" in line)
        return fields.get("PRETTY_NAME", "").strip('"') or None
    except OSError:
        return None


def command_output(argv, stream="stdout"):
    """What ``argv`` printed (stripped), or None when it cannot run: a tool's version for the record."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return getattr(done, stream).strip()


def machine(**extra):
    """CPU model and count, memory, kernel, OS, this Python and the load average now; ``extra`` adds or replaces."""
    try:
        memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)
    except (ValueError, OSError):
        memory_gb = None
    found = {"cpu": _first("/proc/cpuinfo", "model name") or platform.processor() or platform.machine(),
             "cpus": os.cpu_count(), "memory_gb": memory_gb, "kernel": platform.release(), "os": _os_name(),
             "python": platform.python_version(), "load_average": [round(v, 2) for v in os.getloadavg()]}
    found.update(extra)
    return found
