"""Hash a simulated host's tree, to tell that a run changed nothing, or exactly what (tests only).

``tree_hash(root, skip)`` -> {path: (type, mode, uid, gid, content)}: a regular file's content is its size and
the SHA-256 of its DATA regions with their offsets (SEEK_DATA/SEEK_HOLE), so the sparse multi-GB weights of a
checkpoint listing are never read; a link's content is its target. ``changed(before, after)`` lists the paths
that differ. Standard library only.
"""

from __future__ import annotations

import hashlib
import os
import stat


def data_digest(path):
    """SHA-256 of a file's data regions and their offsets: the holes of a sparse file are never read."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        pos = 0
        while True:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after pos
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            digest.update(b"%d:" % start)
            digest.update(os.pread(fd, end - start, start))
            pos = end
    finally:
        os.close(fd)
    return digest.hexdigest()


def tree_hash(root, skip=()):
    """{path: (type, mode, uid, gid, sha256 of content or link target)} of everything under root but ``skip``."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [""] + dirnames + filenames:
            path = os.path.normpath(os.path.join(dirpath, name))
            if any(path == s or path.startswith(s + os.sep) for s in skip):
                continue
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                content = (st.st_size, data_digest(path))
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            else:
                content = None
            found[path] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, content)
    return found


def changed(before, after, root=None):
    """The paths (relative to ``root`` when given) that were added, removed or changed, sorted."""
    paths = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    return [os.path.relpath(p, root) for p in paths] if root else paths
