# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the step's files in the ramdisk, input files, tmpfs and free space.

A step's data is staged under ``<root>/step<N>/`` (``/dev/shm/prng/step3/``). Before a step starts
its required files must be there: named inside the step folder (no absolute names, no ``..``, no
symlink that leads out of the folder), present, regular, readable, non-empty, valid JSON where
asked, and recent enough where asked. Every problem is reported, not only the first.

Each problem is a plain dict: ``file`` (the name as given), ``path``, ``problem`` (a code, see
``PROBLEM_CODES``) and ``message`` (one line that names the file and its full path); ``unknown: True``
when the problem is that it could not be told (no mount table, no size from statvfs), not that the
ramdisk is wrong. Nothing here writes anything.
"""

from __future__ import annotations

import errno
import json
import math
import os
import pwd
import stat
import time

from ansible_collections.gpuops.preflight.plugins.module_utils import _files, _memory, _mounts, _steps
from ansible_collections.gpuops.preflight.plugins.module_utils._values import escaped, human_bytes, is_number, is_within

MISSING_STEP_FOLDER = "missing_step_folder"
ESCAPES_ROOT = "escapes_root"
NOT_ABSOLUTE = "not_absolute"
MISSING = "missing"
NOT_REGULAR = "not_regular"
UNREADABLE = "unreadable"
EMPTY = "empty"
INVALID_JSON = "invalid_json"
TOO_OLD = "too_old"
MISSING_ROOT = "missing_root"
NOT_TMPFS = "not_tmpfs"
LOW_SPACE = "low_space"
TOO_LARGE = "too_large"
LOW_INODES = "low_inodes"
UNSAFE_ROOT = "unsafe_root"
READ_ONLY = "read_only"
PROBLEM_CODES = (MISSING_STEP_FOLDER, ESCAPES_ROOT, NOT_ABSOLUTE, MISSING, NOT_REGULAR, UNREADABLE, EMPTY,
                 INVALID_JSON, TOO_LARGE, TOO_OLD, MISSING_ROOT, NOT_TMPFS, LOW_SPACE, LOW_INODES, UNSAFE_ROOT,
                 READ_ONLY)

VALIDATE_JSON_CHOICES = ("auto", "always", "never")
DEFAULT_ROOT = "/dev/shm/prng"
DEFAULT_JSON_MAX_BYTES = 64 * 1024 * 1024
MIB = 1024 * 1024
MEMINFO = "/proc/meminfo"


# --------------------------------------------------------------------------------------------
# input validation (bad input raises ValueError with a message that names the problem)

def folder_refused(folder):
    """True when ``folder`` (``preflight_steps.<N>.ramdisk_dir``) does not name a folder inside the ramdisk
    root: absolute, empty, the root itself (``.``, ``./``), a ``..`` component or a NUL byte. The plan and
    the host refuse the same names."""
    return (not isinstance(folder, str) or not folder.strip("/") or folder.startswith("/") or "\0" in folder
            or ".." in folder.split("/") or os.path.normpath(folder.strip("/")) == ".")


def step_folder(root, step, folder=None):
    """``<root>/<folder>``: the step's own folder, ``step<N>`` (``step3``, ``step2.5``) unless the
    pipeline names it otherwise (``folder``, a name inside the root)."""
    if folder is None:
        folder = _steps.folder_name(_steps.parse_step(step))
    elif folder_refused(folder):
        raise ValueError("the step's ramdisk folder must be a name inside the ramdisk root, not %r" % (folder,))
    return os.path.join(_clean_root(root), folder.strip("/"))


def _clean_root(root):
    if not isinstance(root, str) or not root:
        raise ValueError("root must be a path, not %r" % (root,))
    if "\0" in root:
        raise ValueError("root %r contains a NUL byte" % (root,))
    if not root.startswith("/"):   # relative to wherever the module runs: never the ramdisk meant
        raise ValueError("root must be an absolute path, not %r" % (root,))
    return root.rstrip("/") or "/"


def _check_choice(validate_json):
    if validate_json not in VALIDATE_JSON_CHOICES:
        raise ValueError("validate_json must be one of %s, not %r" % (", ".join(VALIDATE_JSON_CHOICES), validate_json))
    return validate_json


def _check_number(name, value, allow_none=True, maximum=None):
    if value is None and allow_none:
        return None
    if not is_number(value):
        raise ValueError("%s must be a number, not %r" % (name, value))
    if value < 0:
        raise ValueError("%s must be >= 0, not %s" % (name, value))
    if maximum is not None and value > maximum:
        raise ValueError("%s must be <= %s, not %s" % (name, maximum, value))
    return value


def _check_names(option, names):
    if names is None:
        return []
    if isinstance(names, (str, bytes)) or not isinstance(names, (list, tuple)):
        raise ValueError("%s must be a list of file names, not %s" % (option, type(names).__name__))
    clean = []
    for name in names:
        if not isinstance(name, str):
            raise ValueError("%s: every entry must be a string, not %r" % (option, name))
        if name not in clean:
            clean.append(name)
    return clean


def _with_slash(path):
    return path if path.endswith("/") else path + "/"


# --------------------------------------------------------------------------------------------
# refused access (EACCES, EPERM): the pipeline's user, not the preflight's, is what counts

REFUSED = (errno.EACCES, errno.EPERM)


def _user(uid):
    try:
        return "%s (uid %d)" % (pwd.getpwuid(uid).pw_name, uid)
    except KeyError:
        return "uid %d" % uid


def _searchable(folder):
    if os.access in os.supports_effective_ids:   # the preflight may run setuid-less under sudo: judge its euid
        return os.access(folder, os.X_OK, effective_ids=True)
    return os.access(folder, os.X_OK)


def blocking_folder(path):
    """(folder, its os.stat) for the first folder on the way to ``path`` that the preflight's user cannot search,
    or (None, None) when none is (a link another user owns in a sticky folder, a security module)."""
    chain, folder = [], os.path.dirname(path)
    while True:
        chain.append(folder)
        if os.path.dirname(folder) == folder:
            break
        folder = os.path.dirname(folder)
    for folder in reversed(chain):
        try:
            st = os.stat(folder)
        except OSError:
            return None, None
        if not _searchable(folder):
            return folder, st
    return None, None


def refused(subject, path, exc):
    """(message, unknown) for ``path``, that the preflight could not stat (EACCES, EPERM).

    A folder above it that no user may search (no x bit: only root passes) refuses the pipeline's user too: a
    real problem. Otherwise the preflight, that may connect as another user than the pipeline's, cannot tell:
    unknown, naming the folder that stopped it."""
    folder, st = blocking_folder(path)
    if folder is None:
        return ("cannot tell whether %s can be read: the preflight's user %s is refused (%s); the pipeline's user may "
                "not be" % (subject, _user(os.geteuid()), exc.strerror or exc)), True
    if not st.st_mode & 0o111:
        return ("%s cannot be reached: the folder %s above it is searchable by no user (mode %04o, owner %s)"
                % (subject, folder, stat.S_IMODE(st.st_mode), _user(st.st_uid))), False
    return ("cannot tell whether %s can be read: the folder %s above it is not searchable by the preflight's user %s "
            "(mode %04o, owner %s); the pipeline's user may be allowed"
            % (subject, folder, _user(os.geteuid()), stat.S_IMODE(st.st_mode), _user(st.st_uid))), True


def read_refused(subject, st, exc):
    """(message, unknown) for a file the preflight may stat but not open (EACCES, EPERM): a file no user may read
    (no r bit) is a real problem; one that its owner or group may read is unknown (the pipeline may be them)."""
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o444:
        return "%s cannot be read: %s (mode %04o: no user but root may read it)" % (
            subject, exc.strerror or exc, mode), False
    return ("cannot tell whether %s can be read by the pipeline's user: the preflight's user %s is refused (mode %04o, "
            "owner %s, group %d)" % (subject, _user(os.geteuid()), mode, _user(st.st_uid), st.st_gid)), True


# --------------------------------------------------------------------------------------------
# one file

def _problem(name, path, code, message, **extra):
    # One printable line, whatever the names in it hold (a newline, an escape, a byte that is not UTF-8).
    item = {"file": name, "path": path, "problem": code, "message": escaped(message)}
    item.update(extra)
    return item


def _unknown(unknown):
    return {"unknown": True} if unknown else {}


def _info(name, path):
    return {"name": name, "path": path, "size": None, "mtime": None, "age_s": None,
            "json_checked": False, "note": None}


def _fmt_age(seconds):
    if seconds < 10:
        return "%.1f s" % seconds
    seconds = int(round(seconds))
    if seconds < 120:
        return "%d s" % seconds
    if seconds < 7200:
        return "%d min" % (seconds // 60)
    if seconds < 2 * 86400:
        return "%.1f h" % (seconds / 3600.0)
    return "%.1f days" % (seconds / 86400.0)


def _wants_json(validate_json, name):
    return validate_json == "always" or (validate_json == "auto" and name.lower().endswith(".json"))


def _check_one(name, path, subject, missing_message, validate_json, max_age, json_max_bytes, now):
    """Check one file that is allowed to be looked at; returns (problems, info).

    ``subject`` is how messages name the file ("train.json in /dev/shm/prng/step3/").
    """
    problems = []
    info = _info(name, path)
    try:
        st = os.stat(path)  # follows symlinks: the caller has already refused links that lead out
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            if any(c in os.path.basename(path) for c in "*?["):  # a glob was meant: say it is read as a name
                missing_message += " (names are taken as written: wildcards are not expanded)"
            problems.append(_problem(name, path, MISSING, missing_message))
        elif exc.errno in REFUSED:
            message, unknown = refused(subject, path, exc)
            problems.append(_problem(name, path, UNREADABLE, message, **_unknown(unknown)))
        else:
            problems.append(_problem(name, path, UNREADABLE, "%s cannot be read: %s"
                                     % (subject, exc.strerror or exc)))
        return problems, info
    info["size"] = st.st_size
    info["mtime"] = st.st_mtime
    info["age_s"] = round(now - st.st_mtime, 3)
    if not stat.S_ISREG(st.st_mode):
        problems.append(_problem(name, path, NOT_REGULAR, "%s is %s, not a regular file"
                                 % (subject, _files.kind(st.st_mode))))
        return problems, info
    if st.st_size == 0:
        problems.append(_problem(name, path, EMPTY, "%s is empty (0 bytes)" % subject))
    if max_age is not None and now - st.st_mtime > max_age:
        problems.append(_problem(name, path, TOO_OLD, "%s is %s old, older than max_age (%s)"
                                 % (subject, _fmt_age(now - st.st_mtime), _fmt_age(max_age)),
                                 age_s=info["age_s"], max_age=max_age))
    parse = _wants_json(validate_json, name) and st.st_size > 0
    if parse and st.st_size > json_max_bytes:
        # Never pass a file that was not checked: a truncated 1 GB history must not slip through.
        parse = False
        problems.append(_problem(name, path, TOO_LARGE, "%s is %s, over the %s limit for JSON validation: it was not "
                                 "checked" % (subject, human_bytes(st.st_size), human_bytes(json_max_bytes)),
                                 size=st.st_size, limit=json_max_bytes))
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        if exc.errno in REFUSED:
            message, unknown = read_refused(subject, st, exc)
            problems.append(_problem(name, path, UNREADABLE, message, **_unknown(unknown)))
        else:
            problems.append(_problem(name, path, UNREADABLE, "%s cannot be read: %s"
                                     % (subject, exc.strerror or exc)))
        return problems, info
    try:
        try:
            data = _files.read_fd(fd, json_max_bytes + 1 if parse else 1)
        except OSError as exc:
            problems.append(_problem(name, path, UNREADABLE, "%s cannot be read: %s"
                                     % (subject, exc.strerror or exc)))
            return problems, info
    finally:
        os.close(fd)
    if parse:
        if len(data) > json_max_bytes:  # it grew since the stat
            problems.append(_problem(name, path, TOO_LARGE, "%s grew over the %s limit for JSON validation while it "
                                     "was read: it was not checked" % (subject, human_bytes(json_max_bytes)),
                                     limit=json_max_bytes))
        else:
            verdict = _parse_json(data)
            info["json_checked"] = "unchecked" not in verdict
            if verdict.get("unchecked"):
                problems.append(_problem(name, path, INVALID_JSON, "%s cannot be checked as JSON: %s"
                                         % (subject, verdict["unchecked"])))
            if verdict.get("error"):
                problems.append(_problem(name, path, INVALID_JSON, "%s is not valid JSON: %s"
                                         % (subject, verdict["error"]),
                                         line=verdict.get("line"), column=verdict.get("column")))
    return problems, info


def _parse_json(data):
    """{} when ``data`` parses; {error, line, column} when it does not; {unchecked} when it cannot be told."""
    try:
        json.loads(data)
    except RecursionError:   # not checked is never passed: deeper than any real step file, and often a cut-off one
        return {"unchecked": "it is nested more deeply than the JSON parser takes (no real step file is)"}
    except json.JSONDecodeError as exc:
        return {"error": "%s at line %d column %d" % (exc.msg, exc.lineno, exc.colno), "line": exc.lineno,
                "column": exc.colno}
    except ValueError as exc:  # UnicodeDecodeError: bytes that are not text
        return {"error": "not UTF-8, UTF-16 or UTF-32 text (%s)" % exc}
    return {}


# --------------------------------------------------------------------------------------------
# the step folder

def name_refusal(name, step_dir):
    """Why a required file name is refused before touching the filesystem, or None (the plan refuses the same)."""
    if name == "":
        return "an empty file name does not name a file inside %s" % _with_slash(step_dir)
    if "\0" in name:
        return "file name %r contains a NUL byte" % name
    if name.startswith("/"):
        return "%s is an absolute path: required files are named relative to %s" % (name, _with_slash(step_dir))
    if ".." in name.split("/"):
        return "%s has a '..' component: required files must stay inside %s" % (name, _with_slash(step_dir))
    return None


def check_step_files(root, step, files, validate_json="auto", max_age=None, json_max_bytes=DEFAULT_JSON_MAX_BYTES,
                     now=None, folder=None):
    """Check the required ``files`` of the step's folder (``<root>/step<step>/``, or ``<root>/<folder>/``);
    returns (problems, files_info).

    Every problem is reported. A missing step folder is one problem that names each required file.
    Raises ValueError for bad arguments (not for bad file names: those are problems).
    """
    step_dir = step_folder(root, step, folder)
    files = _check_names("files", files)
    _check_choice(validate_json)
    _check_number("max_age", max_age)
    _check_number("json_max_bytes", json_max_bytes, allow_none=False)
    now = time.time() if now is None else now
    shown = _with_slash(step_dir)

    problems, infos, good = [], [], []
    for name in files:
        why = name_refusal(name, step_dir)
        if why is None:
            good.append(name)
            continue
        path = None if (name == "" or "\0" in name) else os.path.normpath(os.path.join(step_dir, name))
        problems.append(_problem(name, path, ESCAPES_ROOT, why))
        infos.append(_info(name, path))

    what, code, extra = None, MISSING_STEP_FOLDER, {}
    try:
        st = os.stat(step_dir)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            what = "step folder %s is missing" % shown
        elif exc.errno in REFUSED:  # no search permission on a folder above, a link another user owns: not missing
            what, unknown = refused("step folder %s" % shown, step_dir, exc)
            code, extra = UNREADABLE, _unknown(unknown)
        else:
            what, code = "step folder %s cannot be read (%s)" % (shown, exc.strerror or exc), UNREADABLE
    else:
        if not stat.S_ISDIR(st.st_mode):
            what = "step folder %s is %s, not a directory" % (shown, _files.kind(st.st_mode))
    if what is not None:
        required = ", ".join(good) if good else "no files listed"
        problems.insert(0, _problem(None, shown, code, "%s (required: %s)" % (what, required), files=list(good),
                                    **extra))
        infos.extend(_info(name, os.path.join(step_dir, name)) for name in good)
        return _in_order(files, problems, "file"), _in_order(files, infos, "name")

    real_dir = os.path.realpath(step_dir)
    real_root = os.path.realpath(_clean_root(root))
    if not is_within(real_dir, real_root):
        # A step folder that is a link out of the ramdisk: its files may be anywhere (a disk, another user's).
        problems.insert(0, _problem(None, shown, ESCAPES_ROOT, "step folder %s leads outside the ramdisk root %s "
                                    "(to %s)" % (shown, _with_slash(real_root), real_dir), target=real_dir,
                                    files=list(good)))
        infos.extend(_info(name, os.path.join(step_dir, name)) for name in good)
        return _in_order(files, problems, "file"), _in_order(files, infos, "name")
    for name in good:
        path = os.path.join(step_dir, name)
        subject = "%s in %s" % (name, shown)
        real = os.path.realpath(path)
        if not is_within(real, real_dir):
            problems.append(_problem(name, path, ESCAPES_ROOT, "%s leads outside the step folder (to %s)"
                                     % (subject, real), target=real))
            infos.append(_info(name, path))
            continue
        found, info = _check_one(name, path, subject, "%s is missing from %s" % (name, shown),
                                 validate_json, max_age, json_max_bytes, now)
        problems.extend(found)
        infos.append(info)
    return _in_order(files, problems, "file"), _in_order(files, infos, "name")


def _in_order(names, items, key):
    """``items`` sorted in the order of ``names`` (stable: a file's own problems keep their order)."""
    rank = dict((name, index) for index, name in enumerate(names))
    return sorted(items, key=lambda item: rank.get(item[key], -1))


def check_input_files(paths, validate_json="never", max_age=None, now=None, json_max_bytes=DEFAULT_JSON_MAX_BYTES):
    """Check input files given by absolute path; returns (problems, files_info)."""
    paths = _check_names("inputs", paths)
    _check_choice(validate_json)
    _check_number("max_age", max_age)
    _check_number("json_max_bytes", json_max_bytes, allow_none=False)
    now = time.time() if now is None else now
    problems, infos = [], []
    for path in paths:
        info = _info(path, path)
        if not path.startswith("/"):
            problems.append(_problem(path, path, NOT_ABSOLUTE, "input file %r is not an absolute path" % path))
        elif "\0" in path:
            info["path"] = None
            problems.append(_problem(path, None, MISSING, "input file %r contains a NUL byte: no such file can exist"
                                     % path))
        else:
            found, info = _check_one(path, path, "input file %s" % path, "input file %s is missing" % path,
                                     validate_json, max_age, json_max_bytes, now)
            problems.extend(found)
        infos.append(info)
    return problems, infos


# --------------------------------------------------------------------------------------------
# tmpfs and free space

def _fmt_mib(nbytes):
    value = math.floor(nbytes * 10.0 / MIB) / 10.0
    return ("%d" % value if value == int(value) else "%.1f" % value) + " MiB"


def _fmt_limit_mib(nbytes):
    if nbytes % MIB == 0:
        return "%d MiB" % (nbytes // MIB)
    return "%d bytes" % nbytes


def _fmt_percent(value):
    value = math.floor(value * 10.0) / 10.0
    return ("%d" % value if value == int(value) else "%.1f" % value) + "%"


def _open_to_others(st):
    """Anyone may create, rename or remove entries: written by others and no sticky bit."""
    return bool(st.st_mode & stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX


def unsafe_root(real, st):
    """Why any user could plant or replace step data under the ramdisk root ``real`` (resolved, its
    ``os.stat`` ``st``), or None: the root or a folder above it is writable by every user without the sticky
    bit. Its owner is not judged: the preflight may connect as another user than the pipeline's, so an owner
    rule would warn on every run of a sound setup."""
    if _open_to_others(st):
        return "ramdisk root %s is writable by every user (mode %04o, no sticky bit): anyone on the host can " \
               "plant or replace step data" % (real, stat.S_IMODE(st.st_mode))
    parent = os.path.dirname(real)
    while parent != real:
        try:
            above = os.stat(parent)
        except OSError:
            break  # not searchable: the root itself could not have been resolved through it either
        if _open_to_others(above):
            return "%s, above the ramdisk root %s, is writable by every user (mode %04o, no sticky bit): anyone " \
                   "on the host can replace the root and its step data" % (parent, real, stat.S_IMODE(above.st_mode))
        real, parent = parent, os.path.dirname(parent)
    return None


def _host_memory(meminfo_path):
    """(MemAvailable, MemTotal, None) in bytes, or (None, None, why) when they cannot be read."""
    try:
        memory = _memory.read_meminfo(meminfo_path)
    except (OSError, _files.FileProblem) as exc:
        return None, None, "cannot read %s: %s" % (meminfo_path, getattr(exc, "strerror", None) or exc)
    except ValueError as exc:
        return None, None, str(exc)
    # MemFree + Cached (kernels before 3.14) counts the tmpfs's own pages as free: no estimate, only the kernel's
    if memory["estimated"]:
        return None, None, "%s has no MemAvailable line" % meminfo_path
    return memory["available_bytes"], memory["total_bytes"] or None, None


# Memory file systems that may have no size of their own (statvfs f_blocks 0): they take pages from the host's
# memory, so what they can still take is the host's MemAvailable. How a message names each.
NO_SIZE_LIMIT = {
    "tmpfs": "is a tmpfs without a size limit (size=0 or nr_blocks=0)",
    "ramfs": "is on a ramfs, which has no size limit",
}


def _no_size_limit(vfs, fstype):
    """How ``fstype`` without a size of its own is named (NO_SIZE_LIMIT), or None."""
    return NO_SIZE_LIMIT.get(fstype) if (vfs.f_frsize or vfs.f_bsize) and not vfs.f_blocks else None


def _inode_problem(root, vfs, free):
    """The file system has (almost) no inode left: no file can be created there, whatever bytes are free."""
    if vfs.f_files and vfs.f_favail > vfs.f_files:   # garbage, not over 100 % free
        return _problem(None, root, LOW_INODES, "cannot tell the free inodes of %s: statvfs gives more free inodes "
                        "(f_favail %d) than the file system has (f_files %d)" % (root, vfs.f_favail, vfs.f_files),
                        unknown=True)
    if not vfs.f_files or vfs.f_favail * 100 >= vfs.f_files:   # no f_files: no inode limit (tmpfs nr_inodes=0)
        return None
    if vfs.f_favail == 0:
        left = "no inode free (all %d used)" % vfs.f_files
    else:
        left = "only %d of %d inodes free" % (vfs.f_favail, vfs.f_files)
    although = "" if free is None else ", although %s is free" % _fmt_mib(free)
    return _problem(None, root, LOW_INODES, "%s has %s: the step cannot create its files there%s"
                    % (root, left, although), inodes_free=vfs.f_favail, inodes_total=vfs.f_files)


def check_space(root, min_free_bytes=None, min_free_percent=None, require_tmpfs=True,
                mountinfo_path="/proc/self/mountinfo", meminfo_path=MEMINFO):
    """Check that ``root`` is on a tmpfs with enough free space (and inodes: under 1 % left is a problem when a
    threshold is given), and that no other user can plant data in it; returns (problems, space_info).

    A tmpfs without a size limit (or a ramfs) is judged by the memory it can take: the host's MemAvailable, and its share
    of MemTotal for ``min_free_percent``. Its ``noexec`` is reported, not judged: the step reads its data
    there, it runs nothing from it."""
    root = _clean_root(root)
    _check_number("min_free_bytes", min_free_bytes)
    _check_number("min_free_percent", min_free_percent, maximum=100)
    info = {"root": root, "realpath": None, "mount_point": None, "fstype": None, "source": None,
            "read_only": None, "noexec": None, "total_bytes": None, "free_bytes": None, "free_percent": None,
            "inodes_total": None, "inodes_free": None, "note": None}
    problems = []
    try:
        root_st = os.stat(root)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            problems.append(_problem(None, root, MISSING_ROOT, "ramdisk root %s does not exist" % root))
        elif exc.errno in REFUSED:  # a read problem is not a missing root: no search permission, a link another user owns
            message, unknown = refused("ramdisk root %s" % root, root, exc)
            problems.append(_problem(None, root, UNREADABLE, message, **_unknown(unknown)))
        else:
            problems.append(_problem(None, root, UNREADABLE, "ramdisk root %s cannot be read: %s"
                                     % (root, exc.strerror or exc)))
        return problems, info
    if not stat.S_ISDIR(root_st.st_mode):
        problems.append(_problem(None, root, MISSING_ROOT, "ramdisk root %s is %s, not a directory"
                                 % (root, _files.kind(root_st.st_mode))))
        return problems, info
    real = os.path.realpath(root)
    info["realpath"] = real
    unsafe = unsafe_root(real, root_st)
    if unsafe:
        problems.append(_problem(None, root, UNSAFE_ROOT, unsafe))

    mounts, info["note"] = _mounts.read_mounts(mountinfo_path)
    mount = _mounts.find_mount(real, mounts)
    if mount is not None:
        info.update(mount_point=mount["mount_point"], fstype=mount["fstype"], source=mount["source"],
                    read_only=mount["read_only"], noexec=mount["noexec"])
    if require_tmpfs and info["fstype"] != "tmpfs":
        if info["fstype"] is None:
            why = info["note"] or "no mount in %s holds it" % mountinfo_path
            problems.append(_problem(None, root, NOT_TMPFS, "cannot tell whether %s is on a tmpfs: %s" % (root, why),
                                     fstype=None, unknown=True))
        else:
            problems.append(_problem(None, root, NOT_TMPFS, "%s is on %s (mounted at %s), not on a tmpfs ramdisk" % (
                root, info["fstype"], info["mount_point"]), fstype=info["fstype"]))
    if info["read_only"]:
        problems.append(_problem(None, root, READ_ONLY, "%s is on a read-only mount (%s): the step cannot write there"
                                 % (root, info["mount_point"])))

    try:
        vfs = os.statvfs(real)
    except OSError as exc:
        info["note"] = "cannot read the free space: %s" % (exc.strerror or exc)
        if min_free_bytes is not None or min_free_percent is not None:
            problems.append(_problem(None, root, LOW_SPACE, "cannot tell the free space of %s: %s"
                                     % (root, exc.strerror or exc), unknown=True))
        return problems, info
    garbage_inodes = bool(vfs.f_files) and vfs.f_favail > vfs.f_files
    info.update(inodes_total=vfs.f_files if vfs.f_files and not garbage_inodes else None,
                inodes_free=vfs.f_favail if vfs.f_files and not garbage_inodes else None)
    asked = min_free_bytes is not None or min_free_percent is not None
    unlimited = _no_size_limit(vfs, info["fstype"])
    if unlimited:
        free, total, why = _host_memory(meminfo_path)
        if why is not None:
            why = "it %s, so it takes the host's memory, and %s" % (unlimited, why)
        else:
            info["note"] = "%s %s: its free space is the memory the host has available (MemAvailable in %s)" % (
                root, unlimited, meminfo_path)
    else:
        free, total = _files.space(vfs)
        why = None if free is not None else _files.space_unknown(real, vfs)
    if why is not None:
        info["note"] = "cannot tell the free space of %s: %s" % (root, why)
        if asked:
            problems.append(_problem(None, root, LOW_SPACE, info["note"], unknown=True))
            inodes = _inode_problem(root, vfs, None)
            if inodes is not None:
                problems.append(inodes)
        return problems, info
    # a tmpfs without a limit: free is MemAvailable, the percentage its share of MemTotal (unknown without one)
    percent = None if not total else free * 100.0 / total
    info.update(total_bytes=None if unlimited else total, free_bytes=free,
                free_percent=None if percent is None else math.floor(percent * 100.0) / 100.0)
    below = []
    if min_free_bytes is not None and free < min_free_bytes:
        below.append("the %s minimum" % _fmt_limit_mib(min_free_bytes))
    if min_free_percent is not None and percent is not None and percent < min_free_percent:
        below.append("the %g%% minimum" % min_free_percent)
    if min_free_percent is not None and percent is None:
        problems.append(_problem(None, root, LOW_SPACE, "cannot tell the free percentage of %s: it is a tmpfs "
                                 "without a size limit and %s gives no MemTotal" % (root, meminfo_path), unknown=True))
    if below:
        where = "%s free (%s)" % (_fmt_mib(free), "?" if percent is None else _fmt_percent(percent))
        if unlimited:
            where = "no size limit, and the host has %s of memory available (%s of its memory)" % (
                _fmt_mib(free), "?" if percent is None else _fmt_percent(percent))
        problems.append(_problem(None, root, LOW_SPACE, "%s has %s, below %s" % (root, where, " and ".join(below)),
                                 free_bytes=free, free_percent=info["free_percent"]))
    if asked:
        inodes = _inode_problem(root, vfs, free)
        if inodes is not None:
            problems.append(inodes)
    return problems, info
