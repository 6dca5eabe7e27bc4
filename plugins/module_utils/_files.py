# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: reading and writing files that an operator, a tool or a job controls.

Every such file may be something else than it claims: a FIFO (opening it blocks for ever), a
directory, a device, a huge file, half-written. So:

* ``read_regular(path, limit)``: opens without blocking (``O_NONBLOCK``), refuses anything but a
  regular file (``NotRegular``) and anything larger than ``limit`` (``TooLarge``) with a message that
  names the path and what it is; both are ``FileProblem`` (a ValueError), OSError for the rest
  (missing, permission).
* ``write_atomic(path, data)``: a temporary file in the same folder, flushed, then renamed over
  the target, so a reader (or a full disk) never sees half a file; the temporary file is removed
  when anything fails. Its mode and owner are set on its descriptor, never by path: in a folder
  another user can write (a training base dir owned by the service user, written by root), the
  temporary name may be swapped for a symlink, and a chmod/chown by path would land on its target.
* ``lock_exclusive(path, timeout)``: an exclusive ``flock`` on a lock file, waited for at most
  ``timeout`` seconds; ``lock_beside(path, timeout)`` takes it on ``.<name>.lock`` beside a file that
  writers replace by rename (they queue on the lock, since the file itself changes inode).
* ``open_below(dir_fd, parts)``: a folder below an open one, walked without following a link.
* ``kind(mode)``: "a fifo", "a directory", ... for messages.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import tempfile
import time

from ansible_collections.gpuops.preflight.plugins.module_utils._values import human_bytes

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a fifo"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISREG, "a regular file"),
)
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
# Appending: created when missing, never blocking on open (a FIFO named like the file would hang).
_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
CHUNK = 1024 * 1024


class FileProblem(ValueError):
    """The path is not a regular file, or is larger than allowed: the message says which."""


class NotRegular(FileProblem):
    """The path is a FIFO, a folder, a device...: not a regular file."""


class TooLarge(FileProblem):
    """The file is larger than the reader's limit: it was not read."""


O_DIR_NOFOLLOW = (os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
                  | getattr(os, "O_CLOEXEC", 0))


def open_below(dir_fd, parts):
    """A descriptor of the folder ``parts`` (names) below the open folder ``dir_fd``, walked one component at a
    time without following a link: a link on the way, or one swapped in while walking, is refused (ELOOP or
    ENOTDIR). The caller closes it; ``dir_fd`` stays open."""
    fd = os.dup(dir_fd)
    try:
        for part in parts:
            child = os.open(part, O_DIR_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def kind(mode):
    for test, label in _KINDS:
        if test(mode):
            return label
    return "an unknown kind of file"


def space(vfs):
    """(free_bytes, total_bytes) of an ``os.statvfs`` result: what an unprivileged process may use, counted in
    f_frsize units (in f_bsize units where a FUSE or overlay filesystem leaves f_frsize 0); (None, None) when it gives
    no usable size: no unit, no blocks (a tmpfs mounted with size=0 has no limit; some FUSE filesystems report
    nothing), or more available than its size."""
    unit = vfs.f_frsize or vfs.f_bsize
    if not unit or not vfs.f_blocks or vfs.f_bavail > vfs.f_blocks:
        return None, None
    return vfs.f_bavail * unit, vfs.f_blocks * unit


def space_unknown(path, vfs):
    """Why ``space(vfs)`` gave nothing, naming ``path`` and the figures."""
    return ("statvfs %s gives no usable size (fragment size %d, block size %d, %d blocks, %d available): the "
            "filesystem does not say how full it is" % (path, vfs.f_frsize, vfs.f_bsize, vfs.f_blocks, vfs.f_bavail))


def open_regular(path, append=False):
    """A file descriptor of ``path``, opened without blocking; FileProblem unless it is a regular file.
    ``append``: opened to append to, created (0644) when missing."""
    try:
        fd = os.open(path, _APPEND_FLAGS, 0o644) if append else os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno not in (errno.ENXIO, errno.EISDIR):
            raise
        # opened for writing without blocking, a FIFO nobody reads (or a device) is ENXIO, a folder
        # EISDIR: say what it is
        raise NotRegular("%s is %s, not a regular file" % (path, kind(os.stat(path).st_mode)))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular("%s is %s, not a regular file" % (path, kind(st.st_mode)))
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_fd(fd, limit):
    """At most ``limit`` bytes from ``fd``."""
    chunks, total = [], 0
    while total < limit:
        chunk = os.read(fd, min(limit - total, CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def read_regular(path, limit, with_stat=False):
    """The bytes of a regular file of at most ``limit`` bytes (with ``with_stat``: ``(bytes, os.stat_result)``).

    ``NotRegular`` for a FIFO, a folder or a device (never blocking on it), ``TooLarge`` naming the size and
    the limit for a larger file (not read), OSError for the rest. Every bounded read of a file an operator,
    a tool or a job controls goes through here.
    """
    fd = open_regular(path)
    try:
        st = os.fstat(fd)
        if st.st_size > limit:
            raise TooLarge("%s is %s, larger than its limit of %s: not read"
                           % (path, human_bytes(st.st_size), human_bytes(limit)))
        data = read_fd(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew since the stat, or its size is not what it holds (procfs)
        raise TooLarge("%s is larger than its limit of %s: not read" % (path, human_bytes(limit)))
    return (data, st) if with_stat else data


def prune(folder, pattern, keep, key):
    """Remove the oldest of ``folder``'s files whose names match ``pattern`` (a compiled regex), ordered
    by ``key(match)``, beyond the ``keep`` newest; 0 keeps all. Errors on single files are ignored:
    pruning never fails the run that has just written a new file."""
    if not keep:
        return []
    ours = []
    for name in os.listdir(folder):
        match = pattern.match(name)
        if match:
            ours.append((key(match), name))
    removed = []
    for _key, name in sorted(ours)[:-keep]:
        try:
            os.remove(os.path.join(folder, name))
            removed.append(name)
        except OSError:
            pass
    return removed


class Replaced(OSError):
    """The file written was replaced by something else before it took its name (another user's swap)."""


def write_atomic(path, data, mode=0o644, owner=None):
    """Write ``data`` (bytes or text) to ``path`` through a temporary file and a rename. ``owner``: (uid, gid)
    the file gets (root writing another user's file). Raises OSError; ``Replaced`` when what took the name
    is not the file written (its data and mode never reach anything else)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    folder = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=folder)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, owner[0], owner[1])
        os.rename(temp, path)
        written, named = os.fstat(fd), os.lstat(path)
        if (written.st_dev, written.st_ino) != (named.st_dev, named.st_ino):
            raise Replaced(errno.EEXIST, "%s was replaced by another file while it was written" % path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    finally:
        os.close(fd)
    return path


def lock_exclusive(path, timeout, poll=0.02):
    """An exclusive ``flock`` on ``path`` (created 0644 when missing): the open fd, whose closing releases it.

    Waits at most ``timeout`` seconds for another holder: then TimeoutError. OSError when the lock file
    cannot be opened or locked."""
    # no-follow: in a folder another user can write, a link named like the lock must not make root create or
    # open a file elsewhere
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        flock_within(fd, timeout, path, poll)
    except BaseException:
        os.close(fd)
        raise
    return fd


def lock_beside(path, timeout):
    """``lock_exclusive`` on ``.<name>.lock`` in ``path``'s folder (``.history.json`` -> ``.history.json.lock``):
    the one naming rule for the lock of a file replaced by rename."""
    folder, name = os.path.split(os.path.abspath(path))
    return lock_exclusive(os.path.join(folder, ".%s.lock" % name.lstrip(".")), timeout)


def flock_within(fd, timeout, name, poll=0.02):
    """An exclusive ``flock`` on the open ``fd``, waited for at most ``timeout`` seconds: TimeoutError
    (naming ``name``) when another process holds it longer, OSError when it cannot be locked."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            if time.monotonic() >= deadline:
                raise TimeoutError("%s: another process held the lock for more than %s s" % (name, timeout))
        time.sleep(poll)
