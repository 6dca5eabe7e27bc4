# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the training-health checks: collectors, pure evaluations, fix mode.

The training host (``training_base_dir``) is described in docs/TRAINING.md. The checks themselves
(name, severity, timeout, summary, fix, code, label) are declared once, in ``_training_health``
(the family); this module holds what they run:

1. ``DEFAULTS`` / ``settings()``: the paths and thresholds of a host, every one overridable.
2. Collectors (``COLLECTORS``): read the host (PID file and /proc, statvfs, /proc/meminfo,
   config.json, the lock, the checkpoints, the status file, the logs, the layout and its modes).
   Each takes the settings and returns a plain dict; none raises for a problem of the host.
3. Evaluations (``evaluate_<check>``): PURE functions ``(collected inputs..., fix, **thresholds)
   -> (problems, ok_text, details)``; ``fix`` is the check's own suggested fix (its ``CheckSpec``). ``CHECKS`` maps each check to its evaluation, the collectors
   whose results it takes (in order) and the settings it takes as keywords.
4. Fix mode (``plan_fixes`` / ``apply_fixes``): create missing daemon folders with the service
   user's owner and mode, and repair owner/mode of the daemon's own folders. Never deletes,
   never edits config.json, never touches checkpoints, never follows a symlink; idempotent; in
   check mode nothing is changed and the changes that would be made are returned.

``progress`` and ``gpu`` are evaluated by the family itself (the stall check of
``_training_progress`` and the shared GPU probe of ``_gpu_checks``).
"""

from __future__ import annotations

import errno
import os
import stat
import time

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks
from ansible_collections.gpuops.preflight.plugins.module_utils import _checkpoints
from ansible_collections.gpuops.preflight.plugins.module_utils import _crash_log
from ansible_collections.gpuops.preflight.plugins.module_utils import _files
from ansible_collections.gpuops.preflight.plugins.module_utils import _memory
from ansible_collections.gpuops.preflight.plugins.module_utils import _permissions
from ansible_collections.gpuops.preflight.plugins.module_utils import _training_config as _config
from ansible_collections.gpuops.preflight.plugins.module_utils import _training_progress as _progress

HARD = _checks.HARD
OK, WARN, FAIL, UNKNOWN = _checks.OK, _checks.WARN, _checks.FAIL, _checks.UNKNOWN

# What the evaluations tell an operator to run to repair the daemon's own folders (fix mode).
FIX_HINT = "run the health check with training_health_fix: true"

# ============================================================================================
# Paths and thresholds of a host (relative paths are under training_base_dir)
# ============================================================================================
GB = 1000 ** 3
DEFAULTS = {
    "config_file": "config.json",
    "pid_file": ".daemon.pid",
    "status_file": "status/training_status.json",
    "logs": ["logs/*.log"],
    "checkpoint_dir": "current_model",
    "lock_file": ".config_lock.json",
    "history_file": ".crash_history.json",
    "required_dirs": ["inbox", "logs", "status", "queue", "current_model"],
    "required_files": ["config.json", "core/train.py", "core/training_daemon.py"],
    "daemon_match": "training_daemon",
    "service_user": None,           # default: the owner of training_base_dir
    "dir_mode": 0o750,
    "min_free_bytes": 50 * GB,
    "min_available_bytes": 4 * GB,
    "checkpoint_max_age_s": 86400,
    "crash_log_lines": _crash_log.DEFAULT_LINES,
    "record_crashes": True,
    "expect_layout": _checkpoints.AUTO,
    "proc_root": "/proc",
    "meminfo": "/proc/meminfo",
    "cgroup_root": "/sys/fs/cgroup",   # 'none': no cgroup limit looked at
    "check_mode": False,            # fix mode and the crash history change nothing in check mode
    "deadline": None,               # a time.monotonic() value: long reads (the logs) stop there
}
_PATH_KEYS = ("config_file", "pid_file", "status_file", "checkpoint_dir", "lock_file", "history_file")


def settings(base_dir, now=None, **overrides):
    """The settings of one host: DEFAULTS with ``overrides``, paths made absolute. Raises ValueError on bad input."""
    if not isinstance(base_dir, str) or not base_dir or "\0" in base_dir:
        raise ValueError("training_base_dir must be a path, not %r" % (base_dir,))
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise ValueError("unknown training setting(s): %s; valid: %s"
                         % (", ".join(unknown), ", ".join(sorted(DEFAULTS))))
    ctx = dict(DEFAULTS)
    ctx.update(dict((k, v) for k, v in overrides.items() if v is not None))
    for key in ("min_free_bytes", "min_available_bytes", "checkpoint_max_age_s", "crash_log_lines"):
        value = ctx[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError("%s must be a number >= 0, not %r" % (key, value))
    if ctx["crash_log_lines"] < 1:
        raise ValueError("crash_log_lines must be at least 1")
    mode = ctx["dir_mode"]
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o7777 or mode & 0o700 != 0o700:
        raise ValueError("dir_mode must let the owner read, write and enter (0o700 set), not %r" % (mode,))
    if ctx["expect_layout"] not in _checkpoints.EXPECT_CHOICES:
        raise ValueError("expect_layout must be one of %s" % ", ".join(_checkpoints.EXPECT_CHOICES))
    if not isinstance(ctx["daemon_match"], str) or not ctx["daemon_match"]:
        raise ValueError("daemon_match must be a non-empty string, not %r" % (ctx["daemon_match"],))
    for key in ("logs", "required_dirs", "required_files"):
        if isinstance(ctx[key], str) or not all(isinstance(v, str) and v for v in ctx[key]):
            raise ValueError("%s must be a list of non-empty strings, not %r" % (key, ctx[key]))
    for rel in list(ctx["required_dirs"]) + list(ctx["required_files"]):
        if os.path.isabs(rel) or ".." in rel.split("/") or os.path.normpath(rel) == ".":
            raise ValueError("required folders and files are inside training_base_dir (relative, without '..', not "
                             "the base folder itself), not %r" % rel)
    # one spelling of each ('logs/', 'logs/.' and 'logs' are one folder)
    for key in ("required_dirs", "required_files"):
        ctx[key] = [os.path.normpath(rel) for rel in ctx[key]]
    base = os.path.normpath(base_dir)
    ctx["base_dir"] = base
    for key in _PATH_KEYS:
        if ctx[key] and ctx[key] != "none":
            ctx[key] = ctx[key] if os.path.isabs(ctx[key]) else os.path.join(base, ctx[key])
        else:
            ctx[key] = None
    ctx["logs"] = [p if os.path.isabs(p) else os.path.join(base, p) for p in ctx["logs"]]
    if ctx["cgroup_root"] == "none":
        ctx["cgroup_root"] = None
    elif not isinstance(ctx["cgroup_root"], str) or not os.path.isabs(ctx["cgroup_root"]) or "\0" in ctx["cgroup_root"]:
        raise ValueError("cgroup_root must be an absolute path or 'none', not %r" % (ctx["cgroup_root"],))
    ctx["now"] = time.time() if now is None else now
    return ctx


# ============================================================================================
# Collectors: read the host; a problem of the host is data, never an exception
# ============================================================================================

def collect_daemon(ctx):
    """_training_progress.daemon_info: {pid, alive, pgid, started_at, message, pid_file}."""
    return _progress.daemon_info(ctx["pid_file"], ctx["proc_root"], ctx["now"], ctx["daemon_match"])


def collect_disk(ctx):
    """{path, free_bytes, total_bytes, error} of the base folder's filesystem (space an unprivileged user may use)."""
    report = {"path": ctx["base_dir"], "free_bytes": None, "total_bytes": None, "error": None}
    try:
        st = os.statvfs(ctx["base_dir"])
    except OSError as exc:
        report["error"] = "statvfs %s failed: %s" % (ctx["base_dir"], exc.strerror or exc)
        return report
    report["free_bytes"], report["total_bytes"] = _files.space(st)
    if report["free_bytes"] is None:
        report["error"] = _files.space_unknown(ctx["base_dir"], st)
    return report


def collect_memory(ctx):
    """{available_bytes, total_bytes, estimated, cgroup, error, source}: what the host's memory leaves, and where
    a cgroup limit leaves less (a container, a systemd unit's MemoryMax), what the limit leaves. The cgroup is the
    running daemon's (``ctx['daemon']``, when the daemon collector found it), else this check's own (a container's
    is both; on a host, an SSH session's limits are not the daemon's)."""
    report = {"available_bytes": None, "total_bytes": None, "estimated": None, "cgroup": None, "error": None,
              "source": ctx["meminfo"]}
    try:
        report.update(_memory.read_meminfo(ctx["meminfo"]))
    except OSError as exc:
        report["error"] = _config.read_error(ctx["meminfo"], exc).message
        return report
    except ValueError as exc:   # a FIFO, a huge file (_files.FileProblem, named), or figures that cannot be true
        report["error"] = str(exc)
        return report
    try:
        daemon = ctx.get("daemon") or {}
        pids = ((daemon["pid"],) if daemon.get("alive") and daemon.get("pid") else ()) + ("self",)
        limit = _memory.cgroup_memory(ctx["proc_root"], ctx["cgroup_root"], pids)
    except ValueError as exc:
        report.update(available_bytes=None, error="the cgroup memory limit cannot be read: %s" % exc)
        return report
    if limit is not None and limit["headroom_bytes"] < report["available_bytes"]:
        report["cgroup"] = limit
        report["available_bytes"] = limit["headroom_bytes"]
    return report


def collect_config(ctx):
    if not ctx["config_file"]:
        return {"path": None, "config": None, "error": None, "state": "disabled", "problems": []}
    return _config.load_and_validate(ctx["config_file"], ctx["base_dir"])


def collect_lock(ctx):
    if not ctx["lock_file"]:
        return {"path": None, "state": "disabled", "lock": None, "error": None}
    return _config.read_lock(ctx["lock_file"])


def collect_checkpoints(ctx):
    return _checkpoints.find(ctx["checkpoint_dir"], ctx["expect_layout"])


def collect_status(ctx):
    """{path, state, current_step, phase, error, document}: the daemon's status file; ``document`` is what
    ``_training_progress.read_status`` gave (the stall check judges it), None when it is switched off."""
    report = {"path": ctx["status_file"], "state": "ok", "current_step": None, "phase": None, "error": None,
              "document": None}
    if not ctx["status_file"]:
        report["state"] = "disabled"
        return report
    doc = report["document"] = _progress.read_status(ctx["status_file"])
    if isinstance(doc, _progress.StatusError):
        report["state"], report["error"] = doc.reason, doc.message
        return report
    step = _progress.step_number(doc.get("current_step"))   # read as the stall check reads it ("0", 1200.0)
    if step is not None and step >= 0:
        report["current_step"] = step
    if isinstance(doc.get("phase"), str):
        report["phase"] = doc["phase"]
    return report


def collect_crash_log(ctx):
    return _crash_log.scan(ctx["logs"], lines=int(ctx["crash_log_lines"]),
                           history_file=ctx["history_file"], record=bool(ctx["record_crashes"]),
                           check_mode=bool(ctx["check_mode"]), now=ctx["now"], deadline=ctx["deadline"])


def _lstat(path):
    try:
        return os.lstat(path), None
    except OSError as exc:
        return None, None if exc.errno in (errno.ENOENT, errno.ENOTDIR) else (exc.strerror or str(exc))


def _entry(base, rel, kind):
    path = os.path.join(base, rel) if rel else base
    entry = {"rel": rel or ".", "path": path, "kind": kind, "actual": "missing", "is_link": False, "mode": None,
             "uid": None, "gid": None, "dev": None, "ino": None, "error": None}
    lst, error = _lstat(path)
    if error:
        entry["actual"], entry["error"] = "unknown", error
        return entry
    if lst is None:
        return entry
    entry["is_link"] = stat.S_ISLNK(lst.st_mode)
    try:
        st = os.stat(path)
    except OSError:
        entry["actual"] = "broken link"
        return entry
    entry["actual"] = "dir" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else _files.kind(
        st.st_mode)
    entry["mode"], entry["uid"], entry["gid"] = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
    entry["dev"], entry["ino"] = st.st_dev, st.st_ino
    return entry


def collect_layout(ctx):
    """{base, entries}: the base folder, each required folder and file, with type, mode and owner."""
    base = ctx["base_dir"]
    entries = [_entry(base, "", "dir")]
    entries += [_entry(base, rel, "dir") for rel in ctx["required_dirs"]]
    entries += [_entry(base, rel, "file") for rel in ctx["required_files"]]
    return {"base": base, "entries": entries}


def resolve_user(user, base_entry=None):
    """{name, uid, gid, gids, error}: a user name or uid; None = the owner of the base folder."""
    import pwd
    info = {"name": None, "uid": None, "gid": None, "gids": [], "error": None}
    try:
        if user is None:
            if not base_entry or base_entry.get("uid") is None:
                info["error"] = "the service user is unknown: the base folder cannot be looked at"
                return info
            try:
                record = pwd.getpwuid(base_entry["uid"])
            except KeyError:
                info.update(name=str(base_entry["uid"]), uid=base_entry["uid"], gid=base_entry["gid"],
                            gids=[base_entry["gid"]])
                return info
        elif isinstance(user, int) or (isinstance(user, str) and user.isdecimal() and user.isascii()):
            try:
                record = pwd.getpwuid(int(user))
            except KeyError:
                info.update(name=str(user), uid=int(user), gid=None, gids=[])
                return info
        else:
            record = pwd.getpwnam(user)
    except KeyError:
        info["error"] = "service user %r does not exist" % (user,)
        return info
    # the groups the kernel gives the user's processes: NSS (LDAP, SSSD) included, as initgroups() does
    try:
        gids = set(os.getgrouplist(record.pw_name, record.pw_gid))
    except OSError:
        gids = set([record.pw_gid])
    info.update(name=record.pw_name, uid=record.pw_uid, gid=record.pw_gid, gids=sorted(gids | set([record.pw_gid])))
    return info


# What the service user needs: (path relative to the base folder, kind, access, optional).
PERMISSION_NEEDS = (
    ("", "dir", "rwx", False),
    ("config_file", "file", "r", False),
    ("pid_file", "file", "rw", True),
    ("status_file", "file", "rw", True),
)


def _folder_facts(path, cache):
    """{mode, uid, gid, acl, error} of a folder one passes through (os.stat follows links, as the kernel does)."""
    if path not in cache:
        try:
            st = os.stat(path)
            cache[path] = {"st_mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid, "acl": _permissions.read_acl(path),
                           "error": None}
        except OSError as exc:
            cache[path] = {"st_mode": None, "uid": None, "gid": None, "acl": None,
                           "error": None if exc.errno in (errno.ENOENT, errno.ENOTDIR) else (exc.strerror or str(exc))}
    return cache[path]


def _reach(entry, folders):
    """Add what the user passes through to reach ``entry``: ``ancestors`` (the real folders from / down), and for
    a path that does not exist yet, ``parent``: the nearest existing folder it would be created in."""
    real = os.path.realpath(entry["path"])
    entry["acl"] = _permissions.read_acl(real) if entry["mode"] is not None else None
    entry["ancestors"] = []
    for folder in _permissions.ancestors(real):
        facts = _folder_facts(folder, folders)
        if facts["st_mode"] is None and facts["error"] is None:
            break   # a missing folder: the deepest existing one above is where it would be created
        entry["ancestors"].append(folder)
    entry["parent"] = entry["ancestors"][-1] if entry["actual"] == "missing" and entry["ancestors"] else None
    return entry


def collect_permissions(ctx):
    """{user, entries, folders}: every path the service user needs, with what it needs, its mode, owner and ACL, the
    folders on the way to it; ``folders``: {path: {st_mode, uid, gid, acl, error}} of those folders."""
    base = ctx["base_dir"]
    base_entry = _entry(base, "", "dir")
    user = resolve_user(ctx["service_user"], base_entry)
    entries = []
    for key, kind, need, optional in PERMISSION_NEEDS:
        path = ctx[key] if key else base
        if not path:
            continue
        entry = _entry(os.path.dirname(path), os.path.basename(path), kind) if key else base_entry
        entry.update(need=need, optional=optional, own=False)
        entries.append(entry)
    for rel in ctx["required_files"]:
        entry = _entry(base, rel, "file")
        entry.update(need="r", optional=False, own=False)
        if entry["path"] not in [e["path"] for e in entries]:
            entries.append(entry)
    for rel in ctx["required_dirs"]:
        entry = _entry(base, rel, "dir")
        entry.update(need="rwx", optional=False, own=True)  # the daemon's own folders: fix mode repairs them
        entries.append(entry)
    folders = {}
    for entry in entries:
        _reach(entry, folders)
    return {"user": user, "entries": entries, "folders": folders}


# collector name -> function(ctx). The runner calls each collector a check needs once per host.
COLLECTORS = {
    "daemon": collect_daemon,
    "disk": collect_disk,
    "memory": collect_memory,
    "config": collect_config,
    "lock": collect_lock,
    "checkpoints": collect_checkpoints,
    "status": collect_status,
    "crash_log": collect_crash_log,
    "layout": collect_layout,
    "permissions": collect_permissions,
}


# ============================================================================================
# Evaluations: pure (inputs in, (problems, ok_text, details) out)
# ============================================================================================

_p = _checks.problem


def _gb(count):
    return "%.1f GB" % (count / float(GB))


def _age(seconds):
    if seconds < 120:
        return "%d s" % seconds
    if seconds < 7200:
        return "%d min" % (seconds // 60)
    return "%.1f h" % (seconds / 3600.0)


def evaluate_daemon(daemon, fix):
    """The PID file names a live process, started before the file was written, whose command line is the daemon's."""
    details = {"pid": daemon.get("pid"), "pid_file": daemon.get("pid_file")}
    if daemon.get("unknown"):   # /proc hides it, its command line cannot be read: never "gone"
        return [_p("daemon", UNKNOWN, daemon.get("message") or "cannot tell whether the daemon runs",
                   "Run the check as root or as the daemon's user (/proc mounted with hidepid hides other users' "
                   "processes).")], None, details
    if not daemon.get("alive"):
        return [_p("daemon", FAIL, daemon.get("message") or "the training daemon is not running", fix)], None, details
    if daemon.get("stopped"):
        return [_p("daemon", WARN, daemon["message"], "Resume it (kill -CONT %d) unless someone stopped it on purpose "
                   "(a debugger, a paused job)." % daemon["pid"])], None, details
    inner = (" (PID %d in its own PID namespace)" % daemon["namespace_pid"]) if daemon.get("namespace_pid") else ""
    return [], "training daemon pid %d%s (from %s) is running" % (daemon["pid"], inner, daemon["pid_file"]), details


def evaluate_disk_space(disk, fix, min_free_bytes=DEFAULTS["min_free_bytes"]):
    name = "disk_space"
    details = {"free_bytes": disk.get("free_bytes"), "min_free_bytes": min_free_bytes, "path": disk.get("path")}
    if disk.get("error"):
        return [_p(name, UNKNOWN, disk["error"], "Check that the base folder exists and is readable, and that its "
                   "filesystem (df %s) reports its size." % disk.get("path"))], None, details
    if disk["free_bytes"] < min_free_bytes:
        return [_p(name, WARN, "only %s free on the filesystem of %s (needs %s)" % (
            _gb(disk["free_bytes"]), disk["path"], _gb(min_free_bytes)), fix)], None, details
    return [], "%s free on the filesystem of %s" % (_gb(disk["free_bytes"]), disk["path"]), details


def evaluate_memory(memory, fix, min_available_bytes=DEFAULTS["min_available_bytes"]):
    name = "memory"
    cgroup = memory.get("cgroup")
    details = {"available_bytes": memory.get("available_bytes"), "min_available_bytes": min_available_bytes,
               "estimated": memory.get("estimated"), "cgroup_limit_bytes": (cgroup or {}).get("limit_bytes")}
    if memory.get("error"):
        return [_p(name, UNKNOWN, "memory not judged: %s" % memory["error"],
                   "Check that /proc is mounted, and in a container that LXCFS (or what provides /proc/meminfo) "
                   "runs.")], None, details
    how = " (estimated: no MemAvailable)" if memory.get("estimated") else ""
    if cgroup:
        how += " under the cgroup limit of %s (%s, %s in use; the cgroup of %s)" % (
            _gb(cgroup["limit_bytes"]), cgroup["path"], _gb(cgroup["usage_bytes"]),
            "this check" if cgroup.get("pid") == "self" else "the daemon, PID %s" % cgroup.get("pid"))
    if memory["available_bytes"] < min_available_bytes:
        return [_p(name, WARN, "only %s of memory available%s (needs %s)" % (
            _gb(memory["available_bytes"]), how, _gb(min_available_bytes)), fix)], None, details
    return [], "%s of memory available%s" % (_gb(memory["available_bytes"]), how), details


def evaluate_config(config, fix):
    name = "config"
    details = {"path": config["path"], "codes": [p["code"] for p in config.get("problems") or []]}
    if config.get("state") == "disabled":
        return [], "no config file configured", details
    if config.get("state") == _config.UNREADABLE:   # this check may not read it: the daemon's user may
        return [_p(name, UNKNOWN, "config not checked: %s" % config["error"],
                   "Run the health check as root or as the service user (training_health_become).")], None, details
    if config.get("error"):
        return [_p(name, FAIL, config["error"], fix)], None, details
    problems = [_p(name, FAIL, item["message"], fix, key=item["key"], code=item["code"])
                for item in config["problems"]]
    if problems:
        return problems, None, details
    cfg = config["config"]
    mode = _config.training_mode(cfg)[0]
    return [], "%s is valid (base_model %s, output_dir %s, %s)" % (
        config["path"], cfg.get("base_model"), cfg.get("output_dir"),
        "LoRA" if mode == "lora" else "full fine-tuning" if mode == "full" else "mode not stated"), details


class _Stat(object):
    """What ``_permissions.may_access`` reads of a stat result, from collected facts."""

    def __init__(self, st_mode, uid, gid):
        self.st_mode, self.st_uid, self.st_gid = st_mode, uid, gid


_LETTERS = (("r", _permissions.R_OK), ("w", _permissions.W_OK), ("x", _permissions.X_OK))


def _lacking(st, ident, need, acl):
    """The letters of ``need`` the user lacks on ``st`` (owner, groups, mode and POSIX ACL: ``_permissions.may_access``)."""
    return "".join(letter for letter, bit in _LETTERS if letter in need and not _permissions.may_access(st, ident, bit, acl))


def _entry_stat(entry):
    kind = stat.S_IFDIR if entry["actual"] == "dir" else stat.S_IFREG
    return _Stat(kind | entry["mode"], entry["uid"], entry["gid"])


def _access(entry, user):
    """The letters of entry['need'] the user lacks ('' when it has them all)."""
    return _lacking(_entry_stat(entry), _ident(user), entry["need"], entry.get("acl"))


def _ident(user):
    return {"uid": user["uid"], "gid": user["gid"] if user["gid"] is not None else -1, "groups": user["gids"]}


_VERBS = {"r": "read", "w": "write", "x": "enter"}


def _mode_text(st_mode, uid, gid, acl=None):
    return "%s%s, owner %s:%s" % (stat.filemode(st_mode), "+" if acl else "", uid, gid)


def _owner(entry):
    kind = stat.S_IFDIR if entry["actual"] == "dir" else stat.S_IFREG
    return _mode_text(kind | entry["mode"], entry["uid"], entry["gid"], entry.get("acl"))


def _blocked(entry, folders, ident):
    """(folder, facts, error) of the first folder on the way to ``entry`` the user may not enter, or that cannot
    be looked at; None when every one lets it through."""
    for folder in entry.get("ancestors") or []:
        facts = folders[folder]
        if facts["error"]:
            return folder, facts, facts["error"]
        if not _permissions.may_access(_Stat(facts["st_mode"], facts["uid"], facts["gid"]), ident,
                                       _permissions.X_OK, facts["acl"]):
            return folder, facts, None
    return None


def evaluate_permissions(permissions, fix):
    name = "permissions"
    user = permissions["user"]
    details = {"user": user.get("name"), "uid": user.get("uid")}
    if user.get("error"):
        return [_p(name, UNKNOWN, user["error"], "Set training_health_service_user (--service-user with --local) to the daemon's user.")], None, details
    ident = _ident(user)
    folders = permissions.get("folders") or {}
    who = "service user %s (uid %s)" % (user["name"], user["uid"])
    problems, checked = [], 0
    # a folder that is itself a needed path the user may not enter is reported once, as that path
    blocked_seen = set(os.path.realpath(e["path"]) for e in permissions["entries"]
                       if e["actual"] == "dir" and e["mode"] is not None and "x" in _access(dict(e, need="x"), user))
    for entry in permissions["entries"]:
        if entry["actual"] == "unknown":
            problems.append(_p(name, UNKNOWN, "cannot tell whether %s can use %s: it cannot be looked at: %s" % (
                who, entry["path"], entry["error"]), "Run the health check as root (training_health_become).",
                path=entry["path"]))
            continue
        if entry["actual"] == "missing" and "w" not in entry["need"]:
            continue  # it is read, not created: the layout check names what is missing
        if entry["mode"] is None and entry["actual"] != "missing":
            continue  # a broken link: the layout check names it
        blocked = _blocked(entry, folders, ident)
        if blocked:
            folder, facts, error = blocked
            if folder in blocked_seen:
                continue
            blocked_seen.add(folder)
            if error:
                problems.append(_p(name, UNKNOWN, "cannot tell whether %s can reach %s: %s cannot be looked at: %s"
                                   % (who, entry["path"], folder, error),
                                   "Run the health check as root (training_health_become).", path=folder))
            else:
                problems.append(_p(name, WARN, "%s cannot enter %s (%s), so it cannot reach %s" % (
                    who, folder, _mode_text(facts["st_mode"], facts["uid"], facts["gid"], facts["acl"]),
                    entry["path"]), "chmod o+x %s (or give the service user's group, or an ACL, x on it)." % folder,
                    path=folder, lacking="x"))
            continue
        checked += 1
        if entry["actual"] == "missing":
            parent = entry.get("parent")
            facts = folders.get(parent) if parent else None
            if not facts:
                problems.append(_p(name, UNKNOWN, "cannot tell whether %s can create %s: no folder above it can be "
                                   "looked at" % (who, entry["path"]), "Check training_base_dir.", path=entry["path"]))
                continue
            lacking = _lacking(_Stat(facts["st_mode"], facts["uid"], facts["gid"]), ident, "wx", facts["acl"])
            if lacking:
                problems.append(_p(name, WARN, "%s cannot create %s: it cannot %s %s (%s)" % (
                    who, entry["path"], " or ".join(_VERBS[c] for c in lacking), parent,
                    _mode_text(facts["st_mode"], facts["uid"], facts["gid"], facts["acl"])),
                    ("It is one of the daemon's own folders: %s creates it." % FIX_HINT if entry["own"]
                     else "chown/chmod %s so that %s can write in it." % (parent, user["name"])),
                    path=entry["path"], lacking=lacking))
            continue
        lacking = _access(entry, user)
        if lacking:
            verbs = " or ".join(_VERBS[c] if entry["actual"] == "dir" or c != "x" else "execute" for c in lacking)
            how = ("It is one of the daemon's own folders: %s repairs owner and mode." % FIX_HINT if entry["own"]
                   else "chown/chmod %s so that %s can %s it." % (entry["path"], user["name"], verbs))
            problems.append(_checks.problem(name, WARN, "%s cannot %s %s (%s)" % (
                who, verbs, entry["path"], _owner(entry)), how, path=entry["path"], lacking=lacking))
    if problems:
        return problems, None, details
    return [], "service user %s can use every path it needs (%d checked)" % (user["name"], checked), details


def evaluate_layout(layout, fix):
    name = "layout"
    entries = layout["entries"]
    base = entries[0]
    details = {"missing": [e["rel"] for e in entries if e["actual"] == "missing"]}
    if base["actual"] == "unknown":   # it may well be there: this check cannot see it (a parent it may not enter)
        return [_p(name, UNKNOWN, "training base folder %s cannot be looked at: %s" % (base["path"], base["error"]),
                   "Run the health check as root or as the service user (training_health_become), or let it "
                   "enter the folders above the base folder.")], None, details
    if base["actual"] != "dir":
        what = "is missing" if base["actual"] == "missing" else "is %s, not a folder" % base["actual"]
        return [_p(name, FAIL, "training base folder %s %s" % (base["path"], what),
                   "Check training_base_dir in the inventory; deploy the training host.")], None, details
    problems = []
    for entry in entries[1:]:
        if entry["actual"] == entry["kind"]:
            continue
        kind = "folder" if entry["kind"] == "dir" else "file"
        if entry["actual"] == "missing":
            how = ("Create it: %s." % FIX_HINT if entry["kind"] == "dir"
                   else "Restore it from the deployment of the training host.")
            problems.append(_p(name, FAIL, "required %s %s is missing" % (kind, entry["path"]), how,
                               path=entry["path"]))
        elif entry["actual"] == "unknown":
            problems.append(_p(name, UNKNOWN, "required %s %s cannot be looked at: %s"
                               % (kind, entry["path"], entry["error"]),
                               "Check the permissions of the base folder.", path=entry["path"]))
        else:
            problems.append(_p(name, FAIL, "required %s %s is %s, not a %s" % (
                kind, entry["path"], entry["actual"], kind),
                "Move it away and restore the %s (nothing is removed automatically)." % kind, path=entry["path"]))
    if problems:
        return problems, None, details
    return [], "all %d required folders and files are present under %s" % (len(entries) - 1, base["path"]), details


def _active(daemon):
    return bool(daemon and daemon.get("alive"))


def evaluate_checkpoint(checkpoints, daemon, status, config, fix, now=None,
                        checkpoint_max_age_s=DEFAULTS["checkpoint_max_age_s"]):
    """While the daemon runs, the newest checkpoint is younger than ``checkpoint_max_age_s``."""
    name = "checkpoint"
    now = time.time() if now is None else now
    latest = checkpoints.get("latest")
    details = {"latest": latest["path"] if latest else None, "active": _active(daemon)}
    if daemon and daemon.get("unknown"):
        return [_p(name, UNKNOWN, "checkpoint age not checked: %s" % daemon.get("message"),
                   "See the daemon check.")], None, details
    if not _active(daemon):
        return [], "training is not active: checkpoint age not checked", details
    if checkpoints.get("error") and not checkpoints["error"].endswith("does not exist"):
        return [_p(name, UNKNOWN, checkpoints["error"], "Check the checkpoint folder's permissions.")], None, details
    step = (status or {}).get("current_step")
    cfg = (config or {}).get("config") if isinstance((config or {}).get("config"), dict) else {}
    save_steps = cfg.get("save_steps")
    if latest is None:
        saves = isinstance(save_steps, int) and not isinstance(save_steps, bool) and save_steps > 0
        if step is not None and saves and save_steps <= step:
            return [_p(name, WARN, "training is at step %d with save_steps %d, but there is no checkpoint in %s" % (
                step, save_steps, checkpoints["path"]), fix)], None, details
        return [], "no checkpoint yet in %s (training at step %s)" % (checkpoints["path"], step), details
    if latest.get("error") or latest["mtime"] is None:   # its age is not known: never "0 s old"
        why = latest.get("error") or "%s has no modification time" % latest["path"]
        return [_p(name, UNKNOWN, "newest checkpoint %s" % why, "Check the checkpoint folder's permissions.")
                ], None, details
    age = now - latest["mtime"]
    details["age_s"] = round(age, 1)
    if age > checkpoint_max_age_s:
        return [_p(name, WARN, "newest checkpoint %s is %s old (limit %s) while training is active" % (
            latest["path"], _age(age), _age(checkpoint_max_age_s)), fix, age_s=round(age, 1))], None, details
    return [], "newest checkpoint %s is %s old" % (latest["name"], _age(max(age, 0))), details


def evaluate_crash_log(scan, fix):
    name = "crash_log"
    details = {"categories": scan["categories"], "files": len(scan["files"]),
               "recorded": scan["history"]["recorded"], "would_record": scan["history"]["would_record"]}
    problems = []
    for crash in scan["crashes"]:
        extra = ["%d line%s" % (crash["count"], "" if crash["count"] == 1 else "s")]
        if crash["last_seen"]:
            extra.append("last %s" % crash["last_seen"])
        if crash.get("recurrence_text"):
            extra.append(crash["recurrence_text"])
        problems.append(_checks.problem(name, FAIL if crash["severity"] == HARD else WARN, "%s in %s: %s (%s)" % (
            crash["category"], crash["file"], crash["line"][:200], ", ".join(extra)), crash["fix"],
            category=crash["category"], file=crash["file"], count=crash["count"]))
    for item in scan["files"]:
        if item["error"]:
            problems.append(_p(name, UNKNOWN, "log not scanned: %s" % item["error"],
                               "Check the path in training_logs and the file's type and permissions."))
        elif item.get("timed_out"):  # its last lines were not all looked at: never a clean log
            problems.append(_p(name, UNKNOWN, "log not fully scanned: %s: %s" % (item["path"], item["note"]),
                               "Raise the check's timeout (training_health_timeouts: {crash_log: 60}) or lower "
                               "training_health_crash_log_lines; look for a slow or hung filesystem under the logs."))
    history = scan["history"]
    if history.get("error"):
        problems.append(_p(name, WARN, "crash history: %s" % history["error"],
                           "Move the old history file away (it is never overwritten); a new one is started then."))
    if problems:
        return problems, None, details
    if not scan["files"]:
        return [], "no log file to scan", details
    count = len(scan["files"])
    return [], "no crash in the last lines of %d log file%s" % (count, "" if count == 1 else "s"), details


def evaluate_config_lock(lock, config, checkpoints, fix):
    name = "config_lock"
    details = {"lock": lock.get("path"), "state": lock.get("state"), "changes": []}
    if lock["state"] in ("disabled", _config.MISSING):
        return [], "no config lock (%s): nothing to compare" % (lock.get("path") or "disabled"), details
    if lock["state"] != "ok":
        return [_p(name, UNKNOWN, "config lock not compared: %s" % lock["error"],
                   "Move the old lock file away (it is never overwritten) and lock again at the next training start.")
                ], None, details
    if config.get("error") or not isinstance(config.get("config"), dict):
        why = config.get("error") or "config.json holds no object"
        return [_p(name, UNKNOWN, "config lock not compared: %s" % why,
                   "Correct config.json first (see the config check).")], None, details
    doc = lock["lock"]
    if _config.config_hash(config["config"]) == doc["sha256"]:
        return [], "config.json matches the lock of %s" % doc.get("locked_at"), details
    exist = bool(checkpoints.get("checkpoints"))
    changes = _config.compare(doc["config"], config["config"], exist, _checkpoints.describe(checkpoints))
    details["changes"] = [dict(c, message=c["message"]) for c in changes]
    problems = [_p(name, FAIL if c["severity"] == _config.FAIL else WARN, c["message"], fix, key=c["key"])
                for c in changes if c["severity"] in (_config.FAIL, _config.WARN)]
    if problems:
        return problems, None, details
    return [], "config.json changed since the lock of %s, nothing dangerous: %s" % (
        doc.get("locked_at"), ", ".join(c["key"] for c in changes) or "formatting only"), details


_LAYOUT_WORDS = {"full": "full-model weights", "lora": "a LoRA adapter", None: "no model weights"}


def _same_path(one, other):
    """Both name the same folder, through symlinks too (a base dir is often reached through a link)."""
    try:
        return os.path.realpath(one) == os.path.realpath(other)
    except ValueError:   # a NUL byte, or text the file system cannot encode
        return os.path.normpath(one) == os.path.normpath(other)


def evaluate_checkpoint_resume(checkpoints, config, status, fix, expect_layout=_checkpoints.AUTO):
    """The newest checkpoint fits the config (full vs LoRA), is resumable, and training would resume from it."""
    name = "checkpoint_resume"
    entries = checkpoints.get("checkpoints") or []
    latest = checkpoints.get("latest")
    details = {"latest": latest["path"] if latest else None, "checkpoints": len(entries)}
    if checkpoints.get("error"):
        if checkpoints["error"].endswith("does not exist"):
            return [], "no checkpoint folder (%s): a new run starts from step 0" % checkpoints["path"], details
        return [_p(name, UNKNOWN, checkpoints["error"], "Check the checkpoint folder's type and permissions.")
                ], None, details
    if not entries:
        return [], "no checkpoints in %s: a new run starts from step 0" % checkpoints["path"], details
    if latest.get("error"):   # nothing is known of it: not "holds no model weights"
        return [_p(name, UNKNOWN, "newest checkpoint %s" % latest["error"],
                   "Check the checkpoint folder's permissions.")], None, details
    cfg = config.get("config") if isinstance(config.get("config"), dict) else None
    mode, why = _config.training_mode(cfg) if cfg is not None else (None, "config.json unreadable")
    expected = expect_layout if expect_layout != _checkpoints.AUTO else mode
    problems = []
    # weights an engine keeps in its own shards (DeepSpeed ZeRO-3, FSDP) do not tell their layout: no mismatch to see
    if expected is not None and latest["layout"] != expected and not latest.get("engine_weights"):
        wanted = "a LoRA adapter" if expected == _checkpoints.LORA else "the full model"
        source = ("config.json trains %s (%s)" % (wanted, why) if expect_layout == _checkpoints.AUTO
                  else "expect_layout asks for %s" % wanted)
        problems.append(_p(name, FAIL, "newest checkpoint %s holds %s, but %s: resuming would not load it" % (
            latest["path"], _LAYOUT_WORDS[latest["layout"]], source),
            "Point output_dir/current_model at the checkpoints of this config, or correct finetuning_type; "
            "a LoRA checkpoint cannot resume a full fine-tune nor the reverse.", layout=latest["layout"],
            expected=expected))
    # what the Trainer resumes from: a resumable checkpoint, or one without its RNG state alone
    resumable = [e for e in entries if e["resumable"] or e.get("trainer_resumes")]
    resume = cfg.get("resume_from_checkpoint") if cfg is not None else None
    if not latest["resumable"] and latest.get("trainer_resumes"):
        problems.append(_p(name, WARN, "newest checkpoint %s is not resumable as it is: missing %s; the Trainer "
                           "resumes from it all the same (it logs \"Didn't find an RNG file\"), its random draws "
                           "(dropout, data order) not reproduced" % (latest["path"], ", ".join(latest["missing"])),
                           "Nothing to do for a checkpoint of transformers before 4.6, which wrote no RNG state; "
                           "otherwise check that the save was not cut off.", missing=latest["missing"]))
    elif not latest["resumable"]:
        reasons = (["missing %s" % ", ".join(latest["missing"])] if latest["missing"] else []) + latest["problems"]
        older = ("the newest resumable one is %s (step %s)" % (resumable[0]["name"], resumable[0]["step"])
                 if resumable else "no checkpoint is resumable")
        fetch = (" Or fetch the files behind its Git LFS pointers (git lfs install; git lfs pull)."
                 if latest.get("lfs_pointers") else "")
        if resume is True and not checkpoints.get("single"):
            # resume_from_checkpoint=True takes the highest-numbered checkpoint as it is (transformers'
            # get_last_checkpoint): it would fail on this one, or load it and start over at step 0
            problems.append(_p(name, FAIL, "newest checkpoint %s is not resumable (%s), and config.json's "
                               "resume_from_checkpoint true takes the newest: the daemon would fail on it or start "
                               "over at step 0; %s" % (latest["path"], "; ".join(reasons), older),
                               "Move %s out of %s (nothing here deletes it), or set resume_from_checkpoint to the "
                               "path of a resumable checkpoint.%s" % (latest["name"], checkpoints["path"], fetch),
                               missing=latest["missing"]))
        else:
            problems.append(_p(name, WARN, "newest checkpoint %s is not resumable (%s); a resume that takes the "
                               "newest checkpoint would use it; %s" % (latest["path"], "; ".join(reasons), older),
                               "A final export (weights only) cannot resume training; keep the optimizer, scheduler "
                               "and RNG state (do not set save_only_model), and move a checkpoint cut off while "
                               "saving out of the checkpoint folder." + fetch, missing=latest["missing"]))
    for text in latest["problems"]:
        if "global_step" in text and "folder name" in text:
            problems.append(_p(name, WARN, text, "Check that the folder was not renamed or copied from another run."))
    step = (status or {}).get("current_step")
    if resumable:
        target = resumable[0]
        where = "%s (step %s, resumable)" % (target["path"], target["step"])
        if step == 0:
            problems.append(_p(name, FAIL, "%s says current_step 0 while %s exists: the daemon would start from "
                               "scratch" % (status["path"], where), fix))
        elif step is not None and target["step"] is not None and step < target["step"]:
            problems.append(_p(name, WARN, "%s says current_step %d, behind %s: the daemon may have started over"
                               % (status["path"], step, where), fix))
        if cfg is not None and "resume_from_checkpoint" in cfg:
            value = resume
            if value is None or value is False or (isinstance(value, str) and not value.strip()):
                problems.append(_p(name, FAIL, "config.json sets resume_from_checkpoint to %s while %s exists: the "
                                   "daemon would start from scratch" % (
                                       "null" if value is None else "false" if value is False else '""', where), fix))
            elif isinstance(value, str):
                named = _config.resolve(os.path.dirname(config["path"]), value)
                match = [e for e in entries if _same_path(e["path"], named)]
                if not match:
                    problems.append(_p(name, FAIL, "config.json: resume_from_checkpoint names %s, which is none of the "
                                       "checkpoints in %s" % (named, checkpoints["path"]), fix))
                elif match[0] is not target:
                    problems.append(_p(name, WARN, "config.json resumes from %s although %s is newer" % (
                        match[0]["name"], target["name"]), fix))
    if problems:
        return problems, None, details
    return [], "newest checkpoint %s (%s, step %s) is resumable%s" % (
        latest["name"], latest["layout"] or "weights in %s's shards" % latest.get("engine"), latest["step"],
        "; training status at step %s" % step if step is not None else ""), details


# check -> (evaluate, collectors whose results it takes in order, settings it takes as keywords)
CHECKS = {
    "daemon": (evaluate_daemon, ("daemon",), ()),
    "disk_space": (evaluate_disk_space, ("disk",), ("min_free_bytes",)),
    "memory": (evaluate_memory, ("memory",), ("min_available_bytes",)),
    "config": (evaluate_config, ("config",), ()),
    "permissions": (evaluate_permissions, ("permissions",), ()),
    "layout": (evaluate_layout, ("layout",), ()),
    "checkpoint": (evaluate_checkpoint, ("checkpoints", "daemon", "status", "config"),
                   ("now", "checkpoint_max_age_s")),
    "crash_log": (evaluate_crash_log, ("crash_log",), ()),
    "config_lock": (evaluate_config_lock, ("lock", "config", "checkpoints"), ()),
    "checkpoint_resume": (evaluate_checkpoint_resume, ("checkpoints", "config", "status"), ("expect_layout",)),
}


def evaluate(name, collected, ctx, fix):
    """Run one check's evaluation on collected inputs ({collector: value}; one that gave nothing, such as the
    daemon without a PID file, is None) and the settings ``ctx``: (problems, ok_text, details)."""
    func, needs, keywords = CHECKS[name]
    return func(*[collected.get(c) for c in needs], fix=fix, **dict((k, ctx[k]) for k in keywords))


# ============================================================================================
# Fix mode: create missing daemon folders, repair the daemon's own folders. Never deletes.
# ============================================================================================

def plan_fixes(layout, permissions, dir_mode=DEFAULTS["dir_mode"], euid=None):
    """The changes fix mode would make: [{action, path, before, after, possible, reason}].

    ``mkdir``: a required folder that is missing (its parent must exist or be planned).
    ``chown`` / ``chmod``: a required folder (never a symlink) not owned by the service user or
    without u+rwx. Nothing is planned for files, the base folder, or anything under the folders.
    """
    euid = os.geteuid() if euid is None else euid
    user = permissions["user"]
    base = layout["entries"][0]
    if base["actual"] != "dir" or user.get("error") or user.get("uid") is None:
        return []
    actions = []
    planned = set([base["path"]])
    for entry in [e for e in permissions["entries"] if e.get("own")]:
        path = entry["path"]
        if _link_on_the_way(base["path"], path):
            continue  # below a symlink: not the daemon's own folder to repair (the layout check reports it)
        if entry["actual"] == "missing":
            chain, cursor = [], path
            while cursor not in planned and not os.path.lexists(cursor):
                chain.append(cursor)
                cursor = os.path.dirname(cursor)
            if cursor not in planned and not os.path.isdir(cursor):
                continue
            for folder in reversed(chain):
                possible = euid == 0 or euid == user["uid"]
                actions.append({"action": "mkdir", "path": folder, "before": None,
                                "after": "%s %s:%s" % (oct(dir_mode), user["uid"], user["gid"]),
                                "mode": dir_mode, "uid": user["uid"], "gid": user["gid"], "possible": possible,
                                "reason": None if possible else "only root can create it for uid %s" % user["uid"]})
                planned.add(folder)
            continue
        if entry["actual"] != "dir" or entry["is_link"]:
            continue  # not ours to repair: the layout check reports it
        if entry["uid"] != user["uid"]:
            gid = user["gid"] if user["gid"] is not None else entry["gid"]
            actions.append({"action": "chown", "path": path, "dev": entry["dev"], "ino": entry["ino"],
                            "before": "%s:%s" % (entry["uid"], entry["gid"]),
                            "after": "%s:%s" % (user["uid"], gid), "uid": user["uid"], "gid": gid,
                            "possible": euid == 0, "reason": None if euid == 0 else "only root can change the owner"})
        if entry["mode"] & 0o700 != 0o700:
            mode = entry["mode"] | 0o700
            possible = euid == 0 or euid == entry["uid"]
            actions.append({"action": "chmod", "path": path, "dev": entry["dev"], "ino": entry["ino"],
                            "before": oct(entry["mode"]), "after": oct(mode),
                            "mode": mode, "possible": possible,
                            "reason": None if possible else "only root or the folder's owner can change its mode"})
    return actions


def _link_on_the_way(base, path):
    """Whether a folder between ``base`` and ``path`` (both excluded) is a symbolic link."""
    parts = os.path.relpath(path, base).split(os.sep)[:-1]
    for depth in range(1, len(parts) + 1):
        if os.path.islink(os.path.join(base, *parts[:depth])):
            return True
    return False


def _apply_one(action, base, base_fd):
    """Apply one action below the base folder, through descriptors walked from it (``_files.open_below``): nothing
    outside the base is reached, through a link on the way or one swapped in between planning and applying."""
    parts = os.path.relpath(action["path"], base).split(os.sep)
    if parts[0] in (os.curdir, os.pardir, ""):
        raise OSError(errno.EPERM, "not below the training base folder: left as it is")
    parent_fd = _files.open_below(base_fd, parts[:-1])
    try:
        if action["action"] == "mkdir":
            os.mkdir(parts[-1], 0o700, dir_fd=parent_fd)
        fd = os.open(parts[-1], _files.O_DIR_NOFOLLOW, dir_fd=parent_fd)
    finally:
        os.close(parent_fd)
    try:
        _set_owner_and_mode(action, fd)
    except OSError as exc:
        if action["action"] == "mkdir":   # the folder is there now: say so, not only that it failed
            raise OSError(exc.errno, "created, but its owner and mode could not be set: %s" % (exc.strerror or exc))
        raise
    finally:
        os.close(fd)


def _set_owner_and_mode(action, fd):
    st = os.fstat(fd)
    # still what was planned: the folder this run made (its own, empty), or the one it looked at
    if action["action"] == "mkdir":
        replaced = st.st_uid != os.geteuid() or os.listdir(fd)
    else:
        replaced = action.get("ino") is not None and (st.st_dev, st.st_ino) != (action["dev"], action["ino"])
    if replaced:
        raise OSError(errno.EEXIST, "replaced since it was planned: left as it is")
    if action["action"] in ("mkdir", "chown") and action.get("uid") is not None and os.geteuid() == 0:
        gid = action["gid"] if action.get("gid") is not None else st.st_gid
        if (st.st_uid, st.st_gid) != (action["uid"], gid):
            os.fchown(fd, action["uid"], gid)
    if action["action"] in ("mkdir", "chmod"):
        os.fchmod(fd, action["mode"])


def apply_fixes(actions, base, check_mode=False):
    """{changed, changes, errors}: every possible action applied below ``base`` (none in check mode), each
    reported."""
    base_fd, unopened = None, None
    if actions and not check_mode:
        try:   # held: a base swapped for a link after planning is not followed
            base_fd = os.open(base, _files.O_DIR_NOFOLLOW)
        except OSError as exc:
            unopened = "%s: %s" % (base, exc.strerror or exc)
    changes, errors = [], []
    try:
        for action in actions:
            shown = dict((k, action[k]) for k in ("action", "path", "before", "after"))
            refused = unopened or (None if action["possible"] else action["reason"])
            if refused:
                errors.append(dict(shown, error=refused))
                continue
            if not check_mode:
                try:
                    _apply_one(action, base, base_fd)
                except OSError as exc:
                    why = exc.strerror or str(exc)
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        why = "a folder on the way is a symbolic link (not followed): left as it is"
                    errors.append(dict(shown, error="%s: %s" % (action["path"], why)))
                    continue
            changes.append(shown)
    finally:
        if base_fd is not None:
            os.close(base_fd)
    return {"changed": bool(changes), "changes": changes, "errors": errors}


def fix_host(ctx):
    """Plan and apply the safe fixes on one host (none in ``ctx['check_mode']``): {changed, changes, errors, diff}.

    The base folder is the operator's choice and may be a symlink: it is resolved once; below it no
    symlink is followed.
    """
    ctx = dict(ctx, base_dir=os.path.realpath(ctx["base_dir"]))
    actions = plan_fixes(collect_layout(ctx), collect_permissions(ctx), ctx["dir_mode"])
    outcome = apply_fixes(actions, ctx["base_dir"], bool(ctx["check_mode"]))
    outcome["diff"] = {
        "before": "".join("%s %s: %s\n" % (c["action"], c["path"], c["before"] or "absent")
                          for c in outcome["changes"]),
        "after": "".join("%s %s: %s\n" % (c["action"], c["path"], c["after"]) for c in outcome["changes"]),
        "before_header": "training folders", "after_header": "training folders"}
    return outcome
