"""One private folder per run: ansible-runner's artifacts, the collection link, Ansible's temp files.

Removed when the run ends; kept only when asked (``keep``), and then only the ``keep`` newest
kept folders survive. The base folder is per user (0700), so runs of several users or several
WATCHER processes do not collide, and a run never touches a folder it did not create.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time

KEPT_MARKER = ".gpuops-preflight-kept"


def base_dir(base: str | None = None) -> str:
    """The folder runs are created in: ``base``, else <tmp>/gpuops-preflight-<uid>."""
    folder = os.path.abspath(os.path.expanduser(base)) if base else os.path.join(
        tempfile.gettempdir(), "gpuops-preflight-%d" % os.getuid())
    os.makedirs(folder, mode=0o700, exist_ok=True)
    st = os.lstat(folder)
    # A shared temp folder: refuse one another user could have planted or can write to.
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise OSError("%s is not a private folder of this user; pass artifacts_dir" % folder)
    return folder


def create(kind: str, step: object, base: str | None = None) -> str:
    """A new private folder named for the run: <kind>[-step<N>]-<time>-<random>."""
    name = kind if step is None else "%s-step%s" % (kind, step)
    return tempfile.mkdtemp(prefix="%s-%s-" % (name, time.strftime("%Y%m%dT%H%M%S")), dir=base_dir(base))


def control_dir() -> str:
    """A short private folder for the run's SSH ControlPath sockets (a socket path must stay under
    108 bytes, so never inside a caller's artifacts folder, which can be long)."""
    return tempfile.mkdtemp(prefix="ssh-", dir=base_dir())


def temp_dir() -> str:
    """A short private folder for the temp files of the run's processes (their TMPDIR): Ansible's own
    sockets, and the folders that modules run on this machine (the local connection) are unpacked into.
    A stopped run's processes are killed before they can remove theirs: the run removes this folder.
    Short for the same reason as ``control_dir``: Ansible puts a socket in it."""
    return tempfile.mkdtemp(prefix="tmp-", dir=base_dir())


def finish(path: str, keep: int = 0) -> str | None:
    """Remove the run's folder, or keep it (returns its path) and prune older kept ones."""
    if keep <= 0:
        remove(path)
        return None
    with open(os.path.join(path, KEPT_MARKER), "w", encoding="utf-8") as handle:
        handle.write("%f\n" % time.time())
    prune(os.path.dirname(path), keep)
    return path


def remove(path: str) -> None:
    # rmtree unlinks symlinks without following them: the collection link never touches the clone.
    shutil.rmtree(path, ignore_errors=True)


def kept(base: str) -> list[str]:
    """Kept run folders under ``base``, oldest first (runs in progress are never listed)."""
    found = []
    for name in os.listdir(base):
        marker = os.path.join(base, name, KEPT_MARKER)
        try:
            found.append((os.stat(marker).st_mtime, os.path.join(base, name)))
        except OSError:
            continue
    return [path for _mtime, path in sorted(found)]


def prune(base: str, keep: int) -> list[str]:
    """Remove the oldest kept folders beyond ``keep``; returns what was removed."""
    old = kept(base)[:-keep] if keep > 0 else kept(base)
    for path in old:
        remove(path)
    return old
