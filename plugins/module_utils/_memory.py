# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: what memory a host has left, read from /proc/meminfo and the cgroup limits.

``parse_meminfo(text)``: MemAvailable and MemTotal, or a ValueError naming why the file cannot be believed.
``cgroup_memory(proc_root, cgroup_root, pids)``: the tightest cgroup memory limit over a process's cgroup and
those above it. Used by the training host's ``memory`` check and by the ramdisk check (a tmpfs without a size
limit takes the host's memory); small on purpose, so that the preflight ships no training code for it.
"""

from __future__ import annotations

import errno
import os
import re

from ansible_collections.gpuops.preflight.plugins.module_utils import _files


def _read(path, limit):
    """The text of a small /proc or cgroup file (OSError, _files.FileProblem)."""
    return _files.read_regular(path, limit).decode("utf-8", "replace")


# The /proc/meminfo lines the memory check reads; each, when present, is a whole number of kB no larger than MemTotal.
MEMINFO_KEYS = ("MemTotal", "MemAvailable", "MemFree", "Buffers", "Cached")
_KB_VALUE = re.compile(r"^\s*([0-9]+)(?:\s+kB)?\s*$")   # [0-9]: \d would take other scripts' digits


MEMINFO_LIMIT = 64 * 1024   # /proc/meminfo is under 2 KB; anything larger is not it


def read_meminfo(path):
    """``parse_meminfo`` of the file ``path``: the one read of /proc/meminfo (the training memory check, the ramdisk
    of a tmpfs without a size limit). OSError or ``_files.FileProblem`` when it cannot be read; ValueError
    '<path> cannot be believed: ...' when what it holds cannot be true."""
    text = _read(path, MEMINFO_LIMIT)
    try:
        return parse_meminfo(text)
    except ValueError as exc:
        raise ValueError("%s cannot be believed: %s" % (path, exc))


def parse_meminfo(text):
    """/proc/meminfo -> {available_bytes, total_bytes, estimated}: MemAvailable, else MemFree + Buffers + Cached.

    ValueError naming the problem for a file that cannot be believed (a value that is no number, negative, larger
    than MemTotal, a line twice, MemTotal or both MemAvailable and MemFree missing): never a figure made of it."""
    values = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        key = key.strip()
        if not sep or key not in MEMINFO_KEYS:
            continue
        if key in values:
            raise ValueError("%s appears twice" % key)
        match = _KB_VALUE.match(rest)
        if not match:
            raise ValueError("%s is not a number of kB: %r" % (key, rest.strip()[:40]))
        values[key] = int(match.group(1)) * 1024
    total = values.get("MemTotal")
    if not total:
        raise ValueError("it has no MemTotal line" if total is None else "MemTotal is 0")
    for key in MEMINFO_KEYS[1:]:
        if values.get(key, 0) > total:
            raise ValueError("%s (%d kB) is more than MemTotal (%d kB): impossible" % (
                key, values[key] // 1024, total // 1024))
    if "MemAvailable" in values:
        return {"available_bytes": values["MemAvailable"], "total_bytes": total, "estimated": False}
    if "MemFree" not in values:
        raise ValueError("it has neither a MemAvailable nor a MemFree line")
    estimate = sum(values.get(k, 0) for k in ("MemFree", "Buffers", "Cached"))
    return {"available_bytes": min(estimate, total), "total_bytes": total, "estimated": True}


# The memory limits of a cgroup, per version: (version, the controller's name in /proc/<pid>/cgroup ('' for v2's
# single hierarchy), its folder under cgroup_root, the limit file, the usage file, the memory.stat key of the page
# cache the kernel reclaims before it hits the limit). "max" (v2) or a v1 value beyond the memory is no limit.
CGROUP_MEMORY = (
    ("v2", "", "", "memory.max", "memory.current", "inactive_file"),
    ("v1", "memory", "memory", "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
)


def _cgroup_paths(text):
    """/proc/<pid>/cgroup text -> {controller: cgroup path} ('' for the v2 hierarchy)."""
    paths = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in (parts[1].split(",") if parts[1] else [""]):
            paths.setdefault(controller, parts[2].strip())
    return paths


def _cgroup_number(path):
    """The whole number in a cgroup file; None for 'max' or a missing file; ValueError naming other text."""
    try:
        text = _read(path, 4096).strip()
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise ValueError("cannot read %s: %s" % (path, exc.strerror or exc))
    except _files.FileProblem as exc:
        raise ValueError(str(exc))
    if text == "max":
        return None
    if not re.match(r"^[0-9]+$", text):
        raise ValueError("%s holds %r, not a number of bytes" % (path, text[:40]))
    return int(text)


def _reclaimable(path, key):
    try:
        text = _read(path, 65536)
    except (OSError, _files.FileProblem):
        return 0
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == key and words[1].isdigit() and words[1].isascii():
            return int(words[1])
    return 0


def cgroup_memory(proc_root, cgroup_root, pids=("self",)):
    """The tightest memory limit over the cgroup of the first of ``pids`` whose /proc/<pid>/cgroup can be read (the
    daemon's, else this process's) and the cgroups above it: {headroom_bytes, limit_bytes, usage_bytes, path, version,
    pid}, or None without a limit (or without cgroups). headroom = limit - (usage - reclaimable page cache).
    ValueError naming a limit or usage file that holds garbage."""
    if not cgroup_root:
        return None
    paths = pid = None
    for pid in pids:
        try:
            paths = _cgroup_paths(_read(os.path.join(proc_root, str(pid), "cgroup"), 65536))
            break
        except (OSError, _files.FileProblem):
            continue
    if paths is None:
        return None
    tightest = None
    for version, controller, folder, limit_file, usage_file, cache_key in CGROUP_MEMORY:
        if controller not in paths:
            continue
        top = os.path.join(cgroup_root, folder) if folder else cgroup_root
        if not os.path.isdir(top):
            continue
        # in a container with its own cgroup namespace (or a bind mount of its subtree) the path is not below
        # cgroup_root: the mount itself is the container's cgroup
        here = os.path.normpath(os.path.join(top, paths[controller].lstrip("/")))
        if not os.path.isdir(here) or not (here + os.sep).startswith(top.rstrip(os.sep) + os.sep):
            here = top
        while True:
            limit = _cgroup_number(os.path.join(here, limit_file))
            if limit is not None:
                usage = _cgroup_number(os.path.join(here, usage_file)) or 0
                used = max(usage - _reclaimable(os.path.join(here, "memory.stat"), cache_key), 0)
                headroom = max(limit - used, 0)
                if tightest is None or headroom < tightest["headroom_bytes"]:
                    tightest = {"headroom_bytes": headroom, "limit_bytes": limit, "usage_bytes": usage,
                                "path": os.path.join(here, limit_file), "version": version, "pid": pid}
            if os.path.normpath(here) == os.path.normpath(top):
                break
            here = os.path.dirname(here)
    return tightest
