# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: GPU runtime caches of users, found and removed without following links.

A cache *pattern* is a glob relative to a user's home (``.cache/hip_*``); its first component is the
cache *root* (``.cache``, ``.config``, ``.triton``), which must be a plain name. Matching is done one
component at a time with ``os.lstat``/``os.scandir`` (hidden names match wildcards), and:

* a root, or any directory between the root and a match, that is a symlink is never descended: it is
  reported as skipped and nothing under it is removed;
* a match that is itself a symlink is a target of kind ``symlink``: the link is removed, never what it
  points to;
* sizes are the sum of ``lstat`` sizes of the non-directory entries under a target (links not followed).

``remove_targets`` opens the home and then every directory down to the target's parent with
``O_NOFOLLOW``, checks with ``lstat`` that the target is still the file it planned (same kind, same
inode), and only then unlinks it or removes its tree (``_remove_tree``): one directory fd at a time, on
every Python, without recursion; a link in it is removed, never followed; a directory on another file
system (a mount inside the cache, such as a shared cache over NFS) is never entered nor removed; a tree
deeper than ``MAX_DEPTH`` is left. A target that is not below a cache root of its home is never touched,
nor is a match that is itself a mount point (skipped when planned, refused when removed).
Errors are collected per path, never raised.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import pwd
import stat

from ansible_collections.gpuops.preflight.plugins.module_utils import _files, _mounts

DEFAULT_PATTERNS = (".cache/hip_*", ".cache/comgr_cache", ".cache/miopen")
MIOPEN_USER_DB = ".config/miopen"
# Per vendor: the runtime's own per-user caches. NVIDIA: CUDA's JIT ComputeCache (CUDA_CACHE_PATH,
# default ~/.nv/ComputeCache). Framework caches serve both vendors: PyTorch's jitted-kernel cache
# (PYTORCH_KERNEL_CACHE_PATH, default ~/.cache/torch/kernels; NVRTC on CUDA, hipRTC on ROCm) and
# Triton's compiled kernels (TRITON_CACHE_DIR, default ~/.triton/cache). Downloaded models
# (~/.cache/torch/hub, ~/.cache/huggingface) are data, never caches to remove.
VENDOR_PATTERNS = {"amd": DEFAULT_PATTERNS, "nvidia": (".nv/ComputeCache",)}
# Downloaded models: kept like the MIOpen user database, so that an extra path reaching them (.cache, .cache/*)
# never takes them along; a folder that holds them is left whole.
DATA_PATHS = (".cache/huggingface", ".cache/torch/hub")
FRAMEWORK_PATTERNS = (".cache/torch/kernels", ".triton/cache")
VENDOR_CHOICES = ("amd", "nvidia", "all")
_GLOB_CHARS = ("*", "?", "[")

DIR = "dir"
FILE = "file"
SYMLINK = "symlink"

MAX_DEPTH = 256      # levels below a cache folder removed (one open fd each); no real cache comes near
_SHOWN_PATH = 240    # characters of a path a message shows (a pathological tree has paths of megabytes)
_MOUNT_WHY = "a mount point (another file system): left as it is"
_MOUNT_LEFT = "cannot remove %s: " + _MOUNT_WHY


# --------------------------------------------------------------------------------------------
# input: patterns and homes (bad input raises ValueError with a message that names it)

def _split(pattern):
    """A relative pattern's components, without empty and '.' components."""
    return [part for part in pattern.split("/") if part not in ("", ".")]


def _is_glob(part):
    return any(char in part for char in _GLOB_CHARS)


def validate_extra_paths(extra_paths):
    """Normalised extra patterns; ValueError for one that could leave the home or has no plain root."""
    if extra_paths is None:
        return []
    if isinstance(extra_paths, (str, bytes)) or not isinstance(extra_paths, (list, tuple)):
        raise ValueError("extra_paths must be a list of paths relative to the home, not %s"
                         % type(extra_paths).__name__)
    clean = []
    for raw in extra_paths:
        if not isinstance(raw, str):
            raise ValueError("extra_paths: %r is not a string" % (raw,))
        if "\0" in raw:
            raise ValueError("extra_paths: %r contains a NUL byte" % raw)
        if raw.startswith("/"):
            raise ValueError("extra_paths: %s is an absolute path; give it relative to the home (e.g. .triton/cache)"
                             % raw)
        if raw.startswith("~"):
            raise ValueError("extra_paths: %s starts with '~'; give it relative to the home without '~/'" % raw)
        parts = _split(raw)
        if ".." in parts:
            raise ValueError("extra_paths: %s has a '..' component; it must stay inside the home" % raw)
        if not parts:
            raise ValueError("extra_paths: %r names the home itself, not a cache inside it" % raw)
        if _is_glob(parts[0]):
            raise ValueError("extra_paths: the first component of %s must be a plain name (it is the cache root), "
                             "not a pattern" % raw)
        pattern = "/".join(parts)
        if pattern not in clean:
            clean.append(pattern)
    return clean


def cache_patterns(include_miopen_user_db=False, extra_paths=(), vendor="amd", framework_caches=None):
    """The patterns to clean, relative to each home (ValueError for a bad extra path or vendor).

    ``vendor``: 'amd' (ROCm/HIP caches), 'nvidia' (CUDA's) or 'all'. ``framework_caches``: also the
    PyTorch and Triton kernel caches; None means yes for 'nvidia' and 'all', no for 'amd' (which
    keeps what the AMD cleanup always removed).
    """
    if vendor not in VENDOR_CHOICES:
        raise ValueError("vendor must be one of %s, not %r" % (", ".join(VENDOR_CHOICES), vendor))
    if framework_caches is None:
        framework_caches = vendor != "amd"
    patterns = []
    for name in ("amd", "nvidia"):
        if vendor in (name, "all"):
            patterns.extend(VENDOR_PATTERNS[name])
    if framework_caches:
        patterns.extend(FRAMEWORK_PATTERNS)
    if include_miopen_user_db and vendor != "nvidia":
        patterns.append(MIOPEN_USER_DB)
    for pattern in validate_extra_paths(extra_paths):
        if pattern not in patterns:
            patterns.append(pattern)
    return patterns


def keep_paths(include_miopen_user_db=False):
    """The paths never removed, relative to each home: downloaded models, and the MIOpen user database unless it
    is included."""
    return DATA_PATHS + (() if include_miopen_user_db else (MIOPEN_USER_DB,))


def resolve_homes(users=(), home_dirs=(), getpwnam=None, getpwuid=None, geteuid=None):
    """[(label, home)] for the named users and home folders; the running user's home when both are empty."""
    getpwnam = getpwnam or pwd.getpwnam
    homes = []
    for user in users or ():
        if not isinstance(user, str) or not user or "\0" in user:
            raise ValueError("users: %r is not a user name" % (user,))
        try:
            entry = getpwnam(user)
        except KeyError:
            raise ValueError("users: unknown user %r (not in the passwd database of this host)" % user)
        if not entry.pw_dir or not entry.pw_dir.startswith("/"):
            raise ValueError("users: user %r has no absolute home directory (%r)" % (user, entry.pw_dir))
        homes.append((user, entry.pw_dir))
    for home in home_dirs or ():
        if not isinstance(home, str) or not home or "\0" in home:
            raise ValueError("home_dirs: %r is not a path" % (home,))
        if not home.startswith("/"):
            raise ValueError("home_dirs: %s is not an absolute path" % home)
        homes.append((home, home))
    if not homes:
        entry = (getpwuid or pwd.getpwuid)((geteuid or os.geteuid)())
        homes.append((entry.pw_name, entry.pw_dir))
    unique, seen = [], set()
    for label, home in homes:
        key = os.path.normpath(home)
        if key not in seen:
            seen.add(key)
            unique.append((label, key))
    return unique


# --------------------------------------------------------------------------------------------
# finding

def _kind(mode):
    if stat.S_ISLNK(mode):
        return SYMLINK
    if stat.S_ISDIR(mode):
        return DIR
    return FILE


def measure(path, mounted=frozenset(), mounts=None):
    """(bytes, entries) under ``path`` without following links nor entering a mount (another file system, or a
    path of ``mounted``: a bind mount keeps its device number): lstat sizes of every non-directory. The mount
    points met are appended to ``mounts`` when a list is given: removal leaves them, and what is in them."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0, 0
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size, 1
    total, count = 0, 1
    # no link is followed, so a folder's real path is its parent's plus its name
    stack = [(path, os.path.realpath(path) if mounted else path)]
    while stack:
        current, real = stack.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    count += 1
                    try:
                        entry_st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if not stat.S_ISDIR(entry_st.st_mode):
                        total += entry_st.st_size
                    elif entry_st.st_dev != st.st_dev or os.path.join(real, entry.name) in mounted:
                        if mounts is not None:
                            mounts.append(entry.path)
                    else:
                        stack.append((entry.path, os.path.join(real, entry.name)))
        except OSError:
            continue
    return total, count


def _inside(path, base):
    return path == base or path.startswith(base.rstrip("/") + "/")


def _protected(path, home, keep):
    """The kept path that ``path`` is, holds or lies in, or None.

    Compared both as written and with links resolved, so that a kept folder which is a symlink into
    a cache (``.config/miopen -> ../.cache/miopen/db``) keeps that cache too. The last component of
    ``path`` is not resolved: a target that is a link is removed as a link, which keeps its target.
    """
    real_path = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    for rel in keep:
        kept = os.path.join(home, rel)
        real_kept = os.path.realpath(kept)
        for one, other in ((path, kept), (real_path, real_kept)):
            if _inside(one, other) or _inside(other, one):
                return kept
    return None


def _kept_reason(path, kept, home):
    how = ""
    if kept == os.path.join(home, MIOPEN_USER_DB):
        what, how = "the MIOpen user database", " (set include_miopen_user_db to remove it)"
    elif any(kept == os.path.join(home, rel) for rel in DATA_PATHS):
        what = "downloaded models (data, not a cache)"
    else:
        what = "a kept path"
    if path == kept:
        return "%s is %s%s" % (path, what, how)
    if _inside(path, kept):
        return "%s lies in %s %s%s" % (path, what, kept, how)
    return "%s holds %s %s%s" % (path, what, kept, how)


def _matches(directory, part):
    """Names in ``directory`` that match the pattern component ``part`` (hidden names included)."""
    if not _is_glob(part):
        return [part]
    with os.scandir(directory) as entries:
        return sorted(entry.name for entry in entries if fnmatch.fnmatchcase(entry.name, part))


def _mount_point(path, st, mounted):
    """True when the folder or file ``path`` (its ``lstat`` ``st``) is something mounted: on another device than
    its parent folder, or in the mount table ``mounted`` (a bind mount keeps its device number)."""
    try:
        # followed: the parent is a folder checked not to be a link, or the home, which may be one (/home/u -> /data/u)
        parent = os.stat(os.path.dirname(path))
    except OSError:
        parent = None
    return (parent is not None and parent.st_dev != st.st_dev) or os.path.realpath(path) in mounted


def find_cache_targets(homes, patterns, keep=DATA_PATHS + (MIOPEN_USER_DB,), errors=None, mountinfo=_mounts.MOUNTINFO):
    """Cache paths to remove under each home: (targets, skipped).

    ``homes``: [(label, home_path)]; ``patterns``: globs relative to each home whose first component
    is a plain name (the cache root); ``keep``: paths relative to each home that are never targets
    (by default downloaded models and the MIOpen user database), nor is anything that holds them. A match that is a mount point (a
    cache shared over NFS, a bind mount) is never a target: emptying it would empty what it shows.
    targets: [{home, label, root, path, kind, bytes, entries, dev, ino, mounts}], nested matches folded into the
    outer one (``mounts``: the mount points inside a folder target, which removal leaves);
    skipped: [{path, reason}], left alone on purpose.
    A path that cannot be looked at (permissions) is appended to ``errors`` as {path, message} when a
    list is given, else reported in skipped with the reason; it is never raised.
    """
    patterns = list(patterns)
    for pattern in patterns:
        parts = _split(pattern) if isinstance(pattern, str) else []
        if not parts or ".." in parts or pattern.startswith("/") or "\0" in pattern or _is_glob(parts[0]):
            raise ValueError("cache pattern %r must be relative, stay in the home and start with a plain name"
                             % (pattern,))
    targets, skipped, seen = [], [], set()
    mounted = _mounts.mount_points(_mounts.read_mounts(mountinfo)[0])

    def skip(path, reason):
        if path not in seen:
            seen.add(path)
            skipped.append({"path": path, "reason": reason})

    def fail(path, exc, what):
        if path not in seen:
            seen.add(path)
            message = "cannot %s %s: %s" % (what, path, _message(exc))
            if errors is None:
                skipped.append({"path": path, "reason": message})
            else:
                errors.append({"path": path, "message": message})

    for label, home in homes:
        home = os.path.normpath(home)
        try:
            home_st = os.stat(home)   # followed: a home may be a link (/home/u -> /data/u)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                fail(home, exc, "look at the home of %s," % label)   # no permission is not "does not exist"
            elif os.path.lexists(home):
                skip(home, "the home of %s is a link to nowhere" % label)
            else:
                skip(home, "the home of %s does not exist" % label)
            continue
        if not stat.S_ISDIR(home_st.st_mode):
            skip(home, "the home of %s is not a directory" % label)
            continue
        found = {}
        for pattern in patterns:
            _match_pattern(home, _split(pattern), found, skip, fail)
        for path in sorted(found):
            st = found[path]
            kept = _protected(path, home, keep)
            if kept is not None:
                skip(path, _kept_reason(path, kept, home))
                continue
            if any(_inside(path, t["path"]) for t in targets if t["home"] == home):
                continue  # inside a target already planned
            if not stat.S_ISLNK(st.st_mode) and _mount_point(path, st, mounted):
                skip(path, "a mount point (a file system or bind mount of its own): nothing in it removed")
                continue
            inside = []
            nbytes, entries = measure(path, mounted, inside) if stat.S_ISDIR(st.st_mode) else (st.st_size, 1)
            targets.append({"home": home, "label": label, "root": os.path.join(home, _split(
                os.path.relpath(path, home))[0]), "path": path, "kind": _kind(st.st_mode), "bytes": nbytes,
                "entries": entries, "dev": st.st_dev, "ino": st.st_ino, "mounts": sorted(inside)})
    return targets, skipped


def _lstat(path, fail):
    """lstat, or None: a path that is not there is no error, any other failure is reported."""
    try:
        return os.lstat(path)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            fail(path, exc, "look at")
        return None


def _match_pattern(home, parts, found, skip, fail):
    root = os.path.join(home, parts[0])
    st = _lstat(root, fail)
    if st is None:
        return
    if stat.S_ISLNK(st.st_mode):
        skip(root, "cache root is a symlink (to %s): not followed, nothing under it removed" % _readlink(root))
        return
    if len(parts) == 1:
        found[root] = st
        return
    if not stat.S_ISDIR(st.st_mode):
        return
    level = [root]
    for index, part in enumerate(parts[1:], start=1):
        last = index == len(parts) - 1
        following = []
        for directory in level:
            try:
                names = _matches(directory, part)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR):   # gone meanwhile: nothing to clean there
                    fail(directory, exc, "list")
                continue
            for name in names:
                path = os.path.join(directory, name)
                st = _lstat(path, fail)
                if st is None:
                    continue
                if last:
                    found[path] = st
                elif stat.S_ISLNK(st.st_mode):
                    skip(path, "directory on the way to a cache is a symlink (to %s): not followed" % _readlink(path))
                elif stat.S_ISDIR(st.st_mode):
                    following.append(path)
        level = following


def _readlink(path):
    try:
        return os.readlink(path)
    except OSError:
        return "?"


# --------------------------------------------------------------------------------------------
# removing

def _relative_parts(target):
    """The target's path components below its home, checked to lie below the target's cache root."""
    home, path = target.get("home"), target.get("path")
    if not isinstance(home, str) or not isinstance(path, str) or "\0" in home or "\0" in path:
        return None
    if target.get("kind") not in (DIR, FILE, SYMLINK) or not isinstance(target.get("bytes"), int):
        return None
    home = os.path.normpath(home)
    if not home.startswith("/") or os.path.normpath(path) != path:
        return None
    if not _inside(path, home) or path == home:
        return None
    parts = os.path.relpath(path, home).split("/")
    if ".." in parts or "." in parts or "" in parts:
        return None
    root = target.get("root")
    if root is not None and (root != os.path.join(home, parts[0]) or not _inside(path, root)):
        return None
    return parts


def _open_parent(home, parts):
    """An fd of the target's parent, opened from the home one directory at a time without following links."""
    home_fd = os.open(home, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        return _files.open_below(home_fd, parts[:-1])
    finally:
        os.close(home_fd)


def _message(exc):
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _shown(path):
    """``path`` for a message: its start and its end when it is very long."""
    path = str(path)
    if len(path) <= _SHOWN_PATH:
        return path
    half = _SHOWN_PATH // 2
    return "%s...(%d characters)...%s" % (path[:half], len(path) - 2 * half, path[-half:])


def remove_targets(targets, check_mode, mountinfo=_mounts.MOUNTINFO):
    """Remove planned targets; returns (removed, errors, bytes_freed).

    removed: [{path, bytes, kind}] (in check mode: what would be removed); errors: [{path, message}].
    Nothing is raised for a path that cannot be removed, and a target that moved out of its cache
    root, changed kind or was replaced since it was planned is left alone and reported as an error.
    """
    removed, errors, freed = [], [], 0
    mounted = None if check_mode else _mounts.mount_points(_mounts.read_mounts(mountinfo)[0])
    for target in targets:
        if not isinstance(target, dict):
            errors.append({"path": None, "message": "refused to remove %r: not a planned cache target" % (target,)})
            continue
        path = target.get("path")
        parts = _relative_parts(target)
        if parts is None:
            errors.append({"path": path, "message": "refused to remove %s: not inside a cache root of %s"
                           % (path, target.get("home"))})
            continue
        if check_mode:
            # what a run would do: a mount inside the cache stays (and so does the cache folder), the rest goes
            left = target.get("mounts") or []
            errors.extend({"path": mount, "message": _MOUNT_LEFT % mount} for mount in left)
            if not left:
                removed.append({"path": path, "bytes": target["bytes"], "kind": target["kind"]})
            freed += target["bytes"]
            continue
        try:
            done, target_errors, nbytes = _remove_one(target, parts, mounted)
        except Exception as exc:  # one target's surprise must not stop the others, nor end the module
            done, target_errors, nbytes = False, [{"path": path, "message": "cannot remove %s: %s: %s" % (
                _shown(path), type(exc).__name__, _message(exc))}], 0
        errors.extend(target_errors)
        freed += nbytes
        if done:
            removed.append({"path": path, "bytes": target["bytes"], "kind": target["kind"]})
    return removed, errors, freed


def _remove_one(target, parts, mounted=frozenset()):
    """(gone, errors, bytes_freed) for one target."""
    path, home, name = target["path"], os.path.normpath(target["home"]), parts[-1]
    parent = os.path.dirname(path)
    try:
        fd = _open_parent(home, parts)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False, [], 0  # gone already: nothing to do
        why = "a directory on the way is now a symlink" if exc.errno in (errno.ELOOP, errno.ENOTDIR) else _message(exc)
        return False, [{"path": path, "message": "cannot remove %s: %s" % (path, why)}], 0
    try:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return False, [], 0
            return False, [{"path": path, "message": "cannot remove %s: %s" % (path, _message(exc))}], 0
        if _kind(st.st_mode) != target["kind"] or (target.get("ino") is not None and (
                st.st_ino != target["ino"] or st.st_dev != target.get("dev"))):
            return False, [{"path": path, "message": "left %s alone: it was replaced since it was planned (now a %s)"
                            % (path, _kind(st.st_mode))}], 0
        if target["kind"] != SYMLINK and (os.fstat(fd).st_dev != st.st_dev or (
                mounted and os.path.join(_real_path(fd, parent), name) in mounted)):
            return False, [{"path": path, "message": _MOUNT_LEFT % path}], 0
        if target["kind"] != DIR:
            try:
                os.unlink(name, dir_fd=fd)
            except OSError as exc:
                return False, [{"path": path, "message": "cannot remove %s: %s" % (path, _message(exc))}], 0
            return True, [], st.st_size   # its size now: a file still being written may have grown
        failures = []
        freed, gone_entries = _remove_tree(fd, name, path, failures, mounted)
        try:
            after = os.stat(name, dir_fd=fd, follow_symlinks=False)
            gone = False
        except OSError:
            gone = True
    finally:
        os.close(fd)
    # what is left is measured only where the target still is (not through a link swapped in since)
    left_bytes = 0 if gone or (after.st_dev, after.st_ino) != (st.st_dev, st.st_ino) \
        else measure(path, mounted or frozenset())[0]
    errors = _root_causes(failures)
    if not gone:
        if not errors:
            errors.append({"path": path, "message": "%s is still there after removal" % _shown(path)})
        if gone_entries:
            errors[0]["message"] += " (%s partly removed: %d bytes freed, %d bytes left)" % (
                _shown(path), freed, left_bytes)
    return gone, errors, freed


def _root_causes(failures):
    """Errors worth reporting: a folder that could not be removed because something in it could not
    ("Directory not empty") is a consequence, not a cause, when that something is reported too."""
    errors = []
    for failed, exc in failures:
        consequence = getattr(exc, "errno", None) in (errno.ENOTEMPTY, errno.EEXIST) and any(
            other != failed and _inside(other, failed) for other, dummy in failures)
        if not consequence:
            errors.append({"path": failed, "message": "cannot remove %s: %s" % (_shown(failed), _message(exc))})
    return errors


def _left(path, why, code=errno.EPERM):
    return path, OSError(code, why)


def _real_path(fd, path):
    """Where the open directory ``fd`` really is (its path as the kernel knows it), else ``path``."""
    try:
        return os.readlink("/proc/self/fd/%d" % fd)
    except OSError:
        return path


def _remove_tree(parent_fd, name, path, failures, mounted=frozenset()):
    """Remove the folder ``name`` of the directory ``parent_fd`` (the folder ``path``) and everything in it.

    One directory fd per level, no recursion: a link is unlinked, never followed; a directory something is
    mounted on (another device, or a path of ``mounted``: a bind mount keeps its device number), one deeper
    than MAX_DEPTH, or one replaced between its lstat and its open, is left as it is.
    failures: [(path, OSError)] for everything that could not be removed. Returns (bytes, entries) removed: the
    lstat sizes of the files and links unlinked, counted as they go (a cache still being written may end up
    larger than it was planned, and still have had files removed)."""
    freed, entries = 0, 0
    try:
        top = os.open(name, _files.O_DIR_NOFOLLOW, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno != errno.ENOENT:   # gone meanwhile (another cleanup): what was wanted
            failures.append((path, exc))
        return freed, entries
    try:
        device = os.fstat(top).st_dev
        names = iter(sorted(os.listdir(top)))
    except OSError as exc:
        os.close(top)
        failures.append((path, exc))
        return freed, entries
    stack = [(top, path, names)]
    try:
        while stack:
            fd, folder, names = stack[-1]
            child = next(names, None)
            if child is None:   # the folder is empty now (or holds what could not go): remove it from its parent
                stack.pop()
                os.close(fd)
                try:
                    os.rmdir(os.path.basename(folder), dir_fd=stack[-1][0] if stack else parent_fd)
                    entries += 1
                except OSError as exc:
                    if exc.errno != errno.ENOENT:
                        failures.append((folder, exc))
                continue
            child_path = os.path.join(folder, child)
            try:
                st = os.stat(child, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    os.unlink(child, dir_fd=fd)
                    freed, entries = freed + st.st_size, entries + 1
                    continue
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    failures.append((child_path, exc))
                continue
            if st.st_dev != device:
                failures.append(_left(child_path, _MOUNT_WHY, errno.EXDEV))
                continue
            if len(stack) >= MAX_DEPTH:
                failures.append(_left(child_path, "more than %d levels deep: left as it is" % MAX_DEPTH))
                continue
            try:
                child_fd = os.open(child, _files.O_DIR_NOFOLLOW, dir_fd=fd)
            except OSError as exc:   # ELOOP/ENOTDIR: swapped for a link or a file since its lstat
                if exc.errno != errno.ENOENT:
                    failures.append((child_path, exc))
                continue
            opened = os.fstat(child_fd)
            if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
                os.close(child_fd)
                failures.append(_left(child_path, "replaced while being removed: left as it is"))
                continue
            if mounted and _real_path(child_fd, child_path) in mounted:
                os.close(child_fd)
                failures.append(_left(child_path, _MOUNT_WHY, errno.EXDEV))
                continue
            try:
                names_in = iter(sorted(os.listdir(child_fd)))
            except OSError as exc:
                os.close(child_fd)
                failures.append((child_path, exc))
                continue
            stack.append((child_fd, child_path, names_in))
    finally:
        for fd, _folder, _names in stack:
            os.close(fd)
    return freed, entries
