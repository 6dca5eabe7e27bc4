# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the mount table (``/proc/self/mountinfo``), read and looked up.

``read_mounts(path)`` returns ``(mounts, error)``: the mounts in file order, each {mount_point, fstype, source,
read_only, noexec} (escapes such as ``\\040`` decoded), or [] and why the table could not be read. ``find_mount`` tells which
mount holds a path; ``mount_points`` the set of paths something is mounted on (a bind mount of a folder of
the same file system has the same device number, so only the table tells it).
"""

from __future__ import annotations

import re

from ansible_collections.gpuops.preflight.plugins.module_utils import _files
from ansible_collections.gpuops.preflight.plugins.module_utils._values import is_within

MOUNTINFO = "/proc/self/mountinfo"
MOUNTINFO_LIMIT = 8 * 1024 * 1024   # a host with thousands of container mounts stays far below

_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field):
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text):
    """Mounts from /proc/<pid>/mountinfo text, in file order: [{mount_point, fstype, source, read_only, noexec}]."""
    mounts = []
    # only "\n" ends a line: the kernel leaves a form feed, \x1c or U+2028 in a mount point raw, and
    # str.splitlines() would cut the line there and lose the mount
    for line in text.split("\n"):
        fields = line.split(" ")
        if len(fields) < 7 or "-" not in fields[6:]:
            continue
        sep = fields.index("-", 6)
        if len(fields) < sep + 2:
            continue
        mounts.append({
            "mount_id": _number(fields[0]),
            "parent_id": _number(fields[1]),
            "mount_point": _unescape(fields[4]),
            "fstype": fields[sep + 1],
            "source": _unescape(fields[sep + 2]) if len(fields) > sep + 2 else None,
            # read-only by this mount's own options, or by the file system's (the super options after the source)
            "read_only": "ro" in fields[5].split(",") or (len(fields) > sep + 3 and "ro" in fields[sep + 3].split(",")),
            "noexec": "noexec" in fields[5].split(","),   # a per-mount option, never a super option
        })
    return mounts


def read_mounts(path=MOUNTINFO):
    """(mounts, error): the mount table, or [] and why it could not be read."""
    try:
        data = _files.read_regular(path, MOUNTINFO_LIMIT)
    except (OSError, _files.FileProblem) as exc:
        return [], "cannot read %s: %s" % (path, getattr(exc, "strerror", None) or exc)
    return parse_mountinfo(data.decode("utf-8", "surrogateescape")), None


def _number(field):
    return int(field) if field.isdigit() else None


def _mounted_on(mount, other, by_id):
    """True when ``mount`` was mounted inside ``other`` (``other`` is in its chain of parents)."""
    seen = set()
    parent = mount.get("parent_id")
    while parent is not None and parent not in seen:
        if parent == other.get("mount_id"):
            return True
        seen.add(parent)
        parent = by_id.get(parent, {}).get("parent_id")
    return False


def find_mount(path, mounts):
    """The mount that holds ``path`` (absolute, resolved): of the mounts on it or on a folder above it, the deepest
    one still in reach, the last of equals. A later mount on the same point or on a folder above, that was not
    mounted inside it, hides it (a fresh tmpfs over /dev/shm hides what was mounted under the old one)."""
    holding = [mount for mount in mounts if is_within(path, mount["mount_point"])]
    by_id = dict((mount["mount_id"], mount) for mount in mounts if mount.get("mount_id") is not None)
    best = None
    for index, mount in enumerate(holding):
        hidden = any(is_within(mount["mount_point"], later["mount_point"]) and not _mounted_on(later, mount, by_id)
                     and not _mounted_on(mount, later, by_id) for later in holding[index + 1:])
        if not hidden and (best is None or len(mount["mount_point"]) >= len(best["mount_point"])):
            best = mount
    return best


def mount_points(mounts):
    """The paths something is mounted on."""
    return frozenset(mount["mount_point"] for mount in mounts)
