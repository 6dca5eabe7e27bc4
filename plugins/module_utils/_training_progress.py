# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: is the training daemon making progress, and stopping it when it is not.

Pure part (inputs in, a verdict out; no clock, no files):

* ``assess(status, now, stall_timeout, eval_timeout, pid_info)``: the stall verdict from the status
  document (``status/training_status.json``) or the error reading it. The daemon is stalled when
  ``updated_at`` (without it: ``current_step``) has not moved for ``stall_timeout`` seconds, or for
  ``eval_timeout`` while the status says it is evaluating. ``updated_at`` is ISO 8601 (no offset =
  UTC, as ``datetime.utcnow()`` writes it) or epoch seconds (milli-, micro- and nanoseconds are
  recognised by their size); a stamp in the future is clock skew, not a stall. A daemon restarted
  after the last update is measured from its own start.
* ``evaluate(assessment, check, fail_status)``: the same verdict as check-model problems.

Reading (bounded, never blocking): ``read_status``, ``daemon_info``, ``process_info``.

Acting: ``stop_and_verify`` (SIGTERM to the process group, wait, SIGKILL, check that every process
is gone and that none of them still holds GPU memory, through the GPU probe), ``append_event``
(``logs/watchdog.log``, JSON lines), ``unit_state`` (systemd's view of the daemon's unit). ``watch``
is one whole check as the ``training_progress`` module and ``gpuops-preflight training-watch`` run it.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import stat
import time

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks, _deadline, _files
from ansible_collections.gpuops.preflight.plugins.module_utils import _timeparse, _tool
from ansible_collections.gpuops.preflight.plugins.module_utils._values import (
    clean_text, duration, first_line, human_bytes, type_name)

OK = "ok"
STEP_STALL = "step_stall"
EVAL_STALL = "eval_stall"
STATUS_MISSING = "status_missing"
STATUS_CORRUPT = "status_corrupt"
DAEMON_DEAD = "daemon_dead"
CLOCK_SKEW = "clock_skew"
DAEMON_ERROR = "daemon_error"
DAEMON_STOPPED = "daemon_stopped"
REASONS = (OK, STEP_STALL, EVAL_STALL, STATUS_MISSING, STATUS_CORRUPT, DAEMON_DEAD, CLOCK_SKEW, DAEMON_ERROR,
           DAEMON_STOPPED)

DEFAULT_STALL_TIMEOUT = 900
DEFAULT_EVAL_TIMEOUT = 1800
DEFAULT_KILL_TIMEOUT = 30
STATUS_LIMIT = 1024 * 1024          # bytes of the status file read at most
REREAD_PAUSE = 0.25                 # seconds before a status file that reads as corrupt is read once more
SMALL_LIMIT = 4096                  # a PID file, /proc/<pid>/stat, /proc/uptime
STAT_LIMIT = 4 * 1024 * 1024        # /proc/stat: its intr line runs long on a host with many CPUs and interrupts
CMDLINE_LIMIT = 128 * 1024          # bytes of /proc/<pid>/cmdline read: torchrun and deepspeed launches run past 4 KiB
PF_KTHREAD = 0x00200000             # /proc/<pid>/stat flags: a kernel thread
SKEW_TOLERANCE = 60                 # seconds a stamp may lie in the future before it is clock skew
MIN_WALL_CLOCK = 946684800.0        # 2000-01-01 UTC: an updated_at before it is no wall-clock time (a monotonic clock)
PID_REUSE_SLACK = 5                 # seconds a process may start after its PID file was written (see _reused)
_NUMBER = re.compile(r"^[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?$")   # epoch seconds as text, ASCII only
PID_MAX = 4194304                   # PID_MAX_LIMIT of a 64-bit kernel (2^22): no PID is larger
STOPPED_STATES = ("T", "t")         # /proc/<pid>/stat: stopped by a signal (SIGSTOP, Ctrl-Z), stopped by a tracer
LOG_MAX_BYTES = 10 * 1024 * 1024    # watchdog.log is rotated to watchdog.log.1 beyond this

# Relative to the training base dir (issue 10's layout).
STATUS_FILE = os.path.join("status", "training_status.json")
PID_FILE = ".daemon.pid"
LOG_FILE = os.path.join("logs", "watchdog.log")
STATE_FILE = os.path.join("logs", ".watchdog_state.json")

# What the status says the daemon is doing (``phase``, else ``state`` or ``status`` when it is text), and
# what each word means for the stall check: one table. A word not listed (train, running, ...) is TRAINING.
TRAINING = "training"       # judged against stall_timeout
EVALUATING = "evaluating"   # judged against eval_timeout
SETTLED = "settled"         # idle or done: no progress expected, never a stall
FAILING = "failing"         # the daemon says it failed: a warning, never "no progress expected", never stopped
PHASE_KEYS = ("phase", "state", "status")
PHASES = dict([(word, EVALUATING) for word in ("eval", "evaluate", "evaluating", "evaluation", "validate",
                                               "validating", "validation")]
              + [(word, SETTLED) for word in ("idle", "waiting", "queued", "paused", "stopped", "completed",
                                              "complete", "finished", "done", "cancelled", "canceled")]
              + [(word, FAILING) for word in ("error", "errored", "failed", "failure", "crashed", "aborted",
                                              "killed", "exited", "dead", "oom")])

# The check-model status and the suggested fix of each reason (one table; the docs list it).
VERDICTS = {
    OK: (_checks.OK, None),
    STEP_STALL: (_checks.FAIL, "Read the daemon's last log lines (logs/*.log, journalctl -u <unit>) for what hangs "
                               "(a CUDA or NCCL deadlock, a stuck read); the watchdog stops it (act) and systemd "
                               "restarts it."),
    EVAL_STALL: (_checks.FAIL, "Read the daemon's last log lines for what hangs in the evaluation (dataset, metric); "
                               "the watchdog stops it (act) and systemd restarts it."),
    STATUS_MISSING: (_checks.WARN, "Check that the daemon writes its status file there (training_base_dir, "
                                   "status_file), as a JSON object with updated_at and current_step."),
    STATUS_CORRUPT: (_checks.WARN, "Make the daemon write its status file atomically (a temporary file, then a "
                                   "rename) as a JSON object with updated_at (ISO 8601 UTC or epoch seconds) and "
                                   "current_step."),
    DAEMON_DEAD: (_checks.FAIL, "Start the training daemon (systemctl start <unit>) and read why it stopped "
                                "(journalctl -u <unit>, logs/*.log)."),
    CLOCK_SKEW: (_checks.WARN, "Synchronise the clocks (timedatectl, chrony); updated_at must be UTC or carry its "
                               "offset (datetime.now(timezone.utc).isoformat())."),
    # stopped on purpose as often as not (a scheduler suspends a job with SIGSTOP, a debugger): never stopped here
    DAEMON_STOPPED: (_checks.WARN, "Resume it (kill -CONT <pid>) unless it was stopped on purpose (a suspended job, "
                                   "a debugger); nothing stops a stopped daemon."),
    DAEMON_ERROR: (_checks.WARN, "Read the daemon's log (logs/*.log, journalctl -u <unit>) for the error it reports; "
                                 "restart it (systemctl restart <unit>) once the cause is fixed."),
}


class StatusDoc(dict):
    """The status document (a JSON object) with where it came from: ``path`` and ``mtime`` (epoch)."""

    def __init__(self, data, path=None, mtime=None):
        dict.__init__(self, data)
        self.path = path
        self.mtime = mtime


class StatusError(object):
    """Why there is no status document: ``reason`` is status_missing or status_corrupt; ``unreadable``
    when the file could not be read at all (permission, not a regular file, too large, timed out), so
    that nothing can be said about the daemon's progress."""

    __slots__ = ("reason", "message", "path", "mtime", "unreadable")

    def __init__(self, reason, message, path=None, mtime=None, unreadable=False):
        self.reason = reason
        self.message = message
        self.path = path
        self.mtime = mtime
        self.unreadable = unreadable

    def __repr__(self):
        return "StatusError(%s, %r)" % (self.reason, self.message)


# ---------------------------------------------------------------------------------------------
# Reading (bounded: never more than ``limit`` bytes, never blocking on a FIFO or a device)

def _read_file(path, limit):
    """(bytes, mtime) of a regular file of at most ``limit`` bytes; OSError / _files.FileProblem otherwise."""
    data, st = _files.read_regular(path, limit, with_stat=True)
    return data, st.st_mtime


def _mtime(path):
    try:
        return os.stat(path).st_mtime
    except (OSError, ValueError):
        return None


def read_status(path, limit=STATUS_LIMIT, pause=REREAD_PAUSE, sleep=time.sleep):
    """The status document (``StatusDoc``), or a ``StatusError`` saying why there is none. Never raises
    for what is on disk; never reads more than ``limit`` bytes; a FIFO or a directory is an error.

    A daemon that rewrites its status file in place leaves it empty or cut short for a moment: a file that reads
    as corrupt is read once more after ``pause`` seconds before it is judged corrupt."""
    first = _read_status_once(path, limit)
    if not isinstance(first, StatusError) or first.reason != STATUS_CORRUPT or first.unreadable or not pause:
        return first
    sleep(pause)
    second = _read_status_once(path, limit)
    if isinstance(second, StatusError) and second.reason == STATUS_CORRUPT and not second.unreadable:
        second.message += " (read twice, %g s apart)" % pause
    return second


def _read_status_once(path, limit):
    try:
        data, mtime = _read_file(path, limit)
    except _files.FileProblem as exc:
        return StatusError(STATUS_CORRUPT, "status file %s %s" % (path, _strip_path(str(exc), path)), path,
                           unreadable=True)
    except OSError as exc:
        if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
            return StatusError(STATUS_MISSING, "status file %s does not exist" % path, path)
        return StatusError(STATUS_CORRUPT, "status file %s could not be read: %s" % (path, exc.strerror or exc),
                           path, unreadable=True)
    if not data.strip():
        return StatusError(STATUS_CORRUPT, "status file %s is empty (written in place, not atomically?)" % path,
                           path, mtime)
    if not data.strip(b"\0 \t\r\n"):
        return StatusError(STATUS_CORRUPT, "status file %s is zero-filled (%d NUL bytes: probably cut off by a "
                                           "crash while it was written in place)" % (path, len(data)), path, mtime)
    try:
        text = data.decode("utf-8-sig")   # a byte-order mark (Windows tools, PowerShell) is not content
    except UnicodeDecodeError as exc:
        return StatusError(STATUS_CORRUPT, "status file %s is not UTF-8 text (byte 0x%02x at offset %d)"
                           % (path, data[exc.start], exc.start), path, mtime)
    try:
        doc = json.loads(text)
    except ValueError as exc:
        cut = "; it holds NUL bytes: probably cut off by a crash" if "\0" in text else ""
        return StatusError(STATUS_CORRUPT, "status file %s is not valid JSON (%s)%s" % (path, exc, cut), path, mtime)
    except RecursionError:
        return StatusError(STATUS_CORRUPT, "status file %s is not a status document: its JSON is nested too deeply "
                                           "to read" % path, path, mtime)
    if not isinstance(doc, dict):
        return StatusError(STATUS_CORRUPT, "status file %s holds a JSON %s, not an object" % (path, type_name(doc)),
                           path, mtime)
    return StatusDoc(doc, path, mtime)


def _strip_path(message, path):
    """'<path> is a fifo, ...' -> 'is a fifo, ...' (the caller names the path itself)."""
    return message[len(path) + 1:] if message.startswith(path + " ") else message


def read_text(path, limit=SMALL_LIMIT):
    """A small file's text (procfs, a PID file): bounded, not blocking; OSError / FileProblem as _files raises."""
    data, _mtime_unused = _read_file(path, limit)
    return data.decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------
# Processes (procfs)

def _read_stat(pid, proc_root):
    """(the fields of /proc/<pid>/stat after the command name, state first; None when it is gone or
    cannot be read, the reason it cannot be read: the text of an error other than "gone")."""
    try:
        text = read_text(os.path.join(proc_root, str(pid), "stat"))
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None, None
    except (OSError, ValueError) as exc:
        return None, getattr(exc, "strerror", None) or str(exc)
    head, sep, tail = text.rpartition(")")
    return (tail.split() if sep else None), None


def _stat_fields(pid, proc_root):
    """The fields of /proc/<pid>/stat after the command name (state first), or None when it is gone."""
    return _read_stat(pid, proc_root)[0]


def _uptime(proc_root):
    try:
        value = float(read_text(os.path.join(proc_root, "uptime")).split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return value if value >= 0 and not math.isinf(value) else None   # nan fails >= 0


def boot_time(proc_root="/proc"):
    """Epoch seconds of the host's boot, ``btime`` of /proc/stat, or None. Process start times count from it: in a
    container LXCFS gives /proc/uptime the container's age, but neither btime nor the start times."""
    try:
        return _timeparse.parse_btime(read_text(os.path.join(proc_root, "stat"), STAT_LIMIT))
    except (OSError, ValueError):
        return None


def process_info(pid, proc_root="/proc", now=None, uptime=None):
    """{pid, alive, state, ppid, pgid, started_at, kthread, error}: ``alive`` is False for a process
    that is gone or a zombie, or whose stat cannot be read (``error`` then says why); ``started_at``
    is epoch seconds (from its start time in clock ticks since boot); ``kthread``: a kernel thread."""
    info = {"pid": pid, "alive": False, "state": None, "ppid": None, "pgid": None, "started_at": None,
            "kthread": False, "error": None}
    fields, info["error"] = _read_stat(pid, proc_root)
    if not fields or len(fields) < 20:
        return info
    info["state"] = fields[0]
    info["alive"] = fields[0] not in ("Z", "X", "x")
    try:
        info["ppid"], info["pgid"] = int(fields[1]), int(fields[2])
        info["kthread"] = bool(int(fields[6]) & PF_KTHREAD)
        ticks = int(fields[19])
    except ValueError:
        return info
    hertz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    since_boot = float(ticks) / hertz
    now = time.time() if now is None else now
    boot = boot_time(proc_root) if uptime is None else None
    if boot is not None and boot + since_boot <= now + SKEW_TOLERANCE:
        info["started_at"] = boot + since_boot
        return info
    # no btime (or one that puts the start in the future): the uptime, unless it is shorter than the time since
    # boot the process started at (LXCFS's container uptime): then the start time is not known, never "now"
    uptime = _uptime(proc_root) if uptime is None else uptime
    if uptime is not None and uptime >= since_boot:
        info["started_at"] = now - (uptime - since_boot)
    return info


def _cmdline(pid, proc_root):
    """(the command line, its words joined by spaces; cut at CMDLINE_LIMIT; the reason it cannot be
    read, or "gone")."""
    try:
        fd = _files.open_regular(os.path.join(proc_root, str(pid), "cmdline"))
        try:
            data = _files.read_fd(fd, CMDLINE_LIMIT + 1)
        finally:
            os.close(fd)
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return "", False, "gone"
    except (OSError, ValueError) as exc:
        return "", False, getattr(exc, "strerror", None) or str(exc)
    cut = len(data) > CMDLINE_LIMIT
    return data[:CMDLINE_LIMIT].decode("utf-8", "replace").replace("\0", " ").strip(), cut, None


def _exists(pid):
    """Whether ``pid`` exists, by the kernel's word (signal 0 sends nothing): True, False, or None."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True   # it exists, it is another user's
    except (OverflowError, ValueError):
        return False  # beyond what a PID can be
    except OSError:
        return None
    return True


def processes(proc_root="/proc"):
    """{pid: (ppid, pgid, alive)} of every process."""
    found = {}
    try:
        names = os.listdir(proc_root)
    except OSError:
        return found
    for name in names:
        if not name.isdigit():
            continue
        fields = _stat_fields(name, proc_root)
        if not fields or len(fields) < 3:
            continue
        try:
            found[int(name)] = (int(fields[1]), int(fields[2]), fields[0] not in ("Z", "X", "x"))
        except ValueError:
            continue
    return found


# Who the PID file's process is. Each rule looks at the facts ({pid, pid_file, written, proc, cmdline,
# cut, cmdline_error, match, real_proc}) and says (False, why: not the daemon) or (None, why: cannot
# tell), or nothing; the first that speaks decides, and a process no rule speaks against is the daemon.
# "Cannot tell" is never "gone" nor "not the daemon": the check is unknown and nothing is stopped.

def _own_process(f):
    if f["pid"] == os.getpid():
        return False, "PID file %s names PID %d, this check's own process, not the daemon" % (f["pid_file"], f["pid"])
    return None


def _stat_unreadable(f):
    if f["proc"]["error"]:
        return None, "cannot tell whether PID %d is the daemon: its stat cannot be read: %s" % (
            f["pid"], f["proc"]["error"])
    return None


def _gone(f):
    proc = f["proc"]
    if proc["alive"] and f["cmdline_error"] != "gone":
        return None
    if proc["state"] is None and f["real_proc"] and _exists(f["pid"]):
        return None, ("cannot tell whether PID %d is the daemon: it exists, but /proc hides it (mounted with "
                      "hidepid?)" % f["pid"])
    return False, "the daemon (PID %d, from %s) is gone%s" % (
        f["pid"], f["pid_file"], " (a zombie)" if proc["state"] == "Z" else "")


def _kernel_thread(f):
    if f["proc"]["kthread"]:
        return False, "PID %d from %s is a kernel thread, not the daemon" % (f["pid"], f["pid_file"])
    return None


def _not_matching(f):
    if not f["match"] or f["match"] in f["cmdline"]:
        return None
    if f["cmdline_error"]:
        return None, "cannot tell whether PID %d is the daemon: its command line cannot be read: %s" % (
            f["pid"], f["cmdline_error"])
    if f["cut"]:
        return None, ("cannot tell whether PID %d is the daemon: the first %s of its command line do not "
                      "contain %r" % (f["pid"], human_bytes(CMDLINE_LIMIT), f["match"]))
    if not f["cmdline"]:
        return False, "PID %d from %s has an empty command line, not the daemon (no %r in it)" % (
            f["pid"], f["pid_file"], f["match"])
    return False, "PID %d from %s is %r, not the daemon (no %r in its command line)" % (
        f["pid"], f["pid_file"], f["cmdline"][:80], f["match"])


def _reused(f):
    # PID reuse: a process that started clearly after its PID file was written did not write it;
    # unless the file's time is off (a clock stepped at boot, an NFS server's clock). Then daemon_match
    # decides: a process whose command line contains it is the daemon (one that does not was refused
    # above), and only without daemon_match does the start time alone say "reused". A reused PID is
    # caught either way: by another program's command line, or by its start time.
    started = f["proc"]["started_at"]
    if f["match"] or started is None or started <= f["written"] + PID_REUSE_SLACK:
        return None
    return False, "PID %d from %s is another process, started %s after the PID file was written: the daemon " \
                  "is gone (set daemon_match to accept a PID file written before its process started)" % (
                      f["pid"], f["pid_file"], duration(started - f["written"]))


IDENTITY_RULES = (_own_process, _stat_unreadable, _gone, _kernel_thread, _not_matching, _reused)


def daemon_info(pid_file, proc_root="/proc", now=None, match=None):
    """What the PID file says about the daemon: {pid, alive, unknown, pgid, started_at, message, pid_file, state,
    stopped, namespace_pid}.

    ``alive`` is True only for a process proven to be the daemon (``IDENTITY_RULES``); False when the
    PID file is missing or unreadable, names a process that is gone, a kernel thread, a process started
    after the file was written (its PID was reused), or, with ``match``, a process whose command line
    does not contain ``match``. ``unknown`` when it cannot be told (/proc hides the process, its command
    line cannot be read). ``message`` says which. PID 1 may be the daemon (in a container): only
    stopping it is refused (``refuse_to_stop``). A PID file written inside a container (another PID namespace)
    names the daemon by its PID there: with ``match``, the one process whose innermost PID it is and whose command
    line matches is the daemon (``pid`` is then its PID here, ``namespace_pid`` the file's). ``stopped``: alive but
    stopped (state T or t), ``message`` then says so."""
    now = time.time() if now is None else now
    info = {"pid": None, "alive": False, "unknown": False, "pgid": None, "started_at": None, "message": None,
            "pid_file": pid_file, "state": None, "stopped": False, "namespace_pid": None}
    try:
        data, written = _read_file(pid_file, SMALL_LIMIT)
    except (FileNotFoundError, NotADirectoryError):
        info["message"] = "no PID file at %s (the daemon is not running)" % pid_file
        return info
    except _files.FileProblem as exc:
        info["message"] = "PID file %s %s" % (pid_file, _strip_path(str(exc), pid_file))
        return info
    except OSError as exc:
        info.update(unknown=True, message="PID file %s could not be read: %s" % (pid_file, exc.strerror or exc))
        return info
    pid, why = parse_pid(data)
    if pid is None:
        info["message"] = "PID file %s does not hold a PID: %s" % (pid_file, why)
        return info
    info["pid"] = pid
    verdict, proc = _identify(pid, pid_file, written, proc_root, now, match)
    if verdict and verdict[0] is False and match:
        # a daemon in a container writes its PID as its own PID namespace numbers it: look for the process
        # whose innermost PID (NSpid in /proc/<pid>/status) is the file's, and whose command line is the daemon's
        inner = [p for p in _namespaced(pid, proc_root)
                 if not _identify(p, pid_file, written, proc_root, now, match)[0]]
        if len(inner) == 1:
            info["namespace_pid"] = pid
            pid = info["pid"] = inner[0]
            verdict, proc = _identify(pid, pid_file, written, proc_root, now, match)
    info.update(pgid=proc["pgid"], started_at=proc["started_at"], state=proc["state"])
    if verdict:
        info.update(unknown=verdict[0] is None, message=verdict[1])
        return info
    info["alive"] = True
    if proc["state"] in STOPPED_STATES:
        info["stopped"] = True
        info["message"] = "the daemon (PID %d, from %s) is stopped (state %s: %s): it makes no progress until it " \
                          "gets SIGCONT" % (pid, pid_file, proc["state"], "by a signal such as SIGSTOP or Ctrl-Z"
                                            if proc["state"] == "T" else "by a debugger or tracer")
    return info


def parse_pid(data):
    """(PID, None) from a PID file's bytes, or (None, why not: the text named). A byte-order mark, NUL padding (a
    file cut by a crash) and the line end are no part of it; anything else is: '12abc' is no PID."""
    text = data.decode("utf-8", "replace").lstrip("\ufeff").replace("\0", " ")
    words = text.split()
    if not words:
        return None, "it is empty"
    shown = repr(text.strip()[:40])
    if not re.match(r"^[0-9]+$", words[0]):   # ASCII digits only: '١٢' is no PID
        return None, "%s is not a whole number" % shown
    pid = int(words[0])
    if not 1 <= pid <= PID_MAX:
        return None, "%s is no process ID (PIDs run from 1 to %d)" % (shown, PID_MAX)
    return pid, None


def _identify(pid, pid_file, written, proc_root, now, match):
    """(the first IDENTITY_RULES verdict on ``pid``, or None: it is the daemon; its process_info)."""
    proc = process_info(pid, proc_root, now)
    cmdline, cut, cmdline_error = _cmdline(pid, proc_root) if proc["alive"] else ("", False, None)
    facts = {"pid": pid, "pid_file": pid_file, "written": written, "proc": proc, "cmdline": cmdline, "cut": cut,
             "cmdline_error": cmdline_error, "match": match,
             "real_proc": os.path.realpath(proc_root) == os.path.realpath("/proc")}
    for rule in IDENTITY_RULES:
        verdict = rule(facts)
        if verdict:
            return verdict, proc
    return None, proc


def _namespaced(inner_pid, proc_root):
    """PIDs (as ``proc_root`` numbers them) of the processes of nested PID namespaces whose innermost PID is
    ``inner_pid`` (the last field of NSpid in /proc/<pid>/status)."""
    found = []
    try:
        names = os.listdir(proc_root)
    except OSError:
        return found
    for name in names:
        if not name.isdigit() or not name.isascii() or int(name) == inner_pid:
            continue
        try:
            text = read_text(os.path.join(proc_root, name, "status"))
        except (OSError, ValueError):
            continue
        for line in text.splitlines():
            if line.startswith("NSpid:"):
                ids = line.split()[1:]
                if len(ids) > 1 and ids[-1] == str(inner_pid):
                    found.append(int(name))
                break
    return sorted(found)


# ---------------------------------------------------------------------------------------------
# The verdict (pure)

def parse_stamp(value):
    """``updated_at`` as epoch seconds: ISO 8601 (no offset = UTC) or epoch seconds (a number or
    numeric text; milli-, micro- and nanoseconds are scaled by their size). ValueError when it is
    neither."""
    if isinstance(value, bool) or value is None:
        raise ValueError("not a time")
    if isinstance(value, str):
        text = value.strip()
        try:
            if not _NUMBER.match(text):   # float() also takes '1_000', 'inf' and other scripts' digits
                raise ValueError(text)
            value = float(text)
        except ValueError:
            # no offset: UTC, as datetime.utcnow().isoformat() writes it
            parsed = _timeparse.parse_time(text, "updated_at", naive_utc=True)
            if parsed is None:
                raise ValueError("not a time")
            return parsed
    if not isinstance(value, (int, float)) or math.isnan(value) or math.isinf(value) or value < 0:
        raise ValueError("not a time")
    value = float(value)
    while value > 1e11:  # 1e11 s is the year 5138: this is ms, us or ns
        value /= 1000.0
    return value


def step_number(value):
    """An int-like step count (int, integral float or ASCII digits), else None. It may be negative (a total_steps
    of -1 means "by epochs"); a current_step may not (``assess``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.match(r"^[0-9]+$", value.strip()):   # not '\u0661\u0662': no daemon writes it
        return int(value.strip())
    return None


def _phase(doc):
    for key in PHASE_KEYS:
        value = doc.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().lower()
    return None


def _zone_offset(stamp, mtime):
    """When ``updated_at`` and the file's last write differ by a whole time-zone offset (30 min to 14 h,
    in quarters of an hour, give or take 2 min), the daemon wrote local time without an offset: that
    offset in seconds, else None."""
    if mtime is None:
        return None
    offset = stamp - mtime
    quarters = round(offset / 900.0)
    if abs(quarters) < 2 or abs(quarters) > 56 or abs(offset - quarters * 900) > 120:
        return None
    return quarters * 900


def _stamp(value, where):
    """(``updated_at`` as epoch seconds, None) or (None, why it cannot be used)."""
    try:
        stamp = parse_stamp(value)
    except ValueError:
        return None, "updated_at %r in the status file%s is not a time (ISO 8601 or epoch seconds)" % (value, where)
    if stamp < MIN_WALL_CLOCK:
        return None, ("updated_at %r in the status file%s is no wall-clock time (before 2000: a monotonic clock?)"
                      % (value, where))
    return stamp, None


def _check_thresholds(stall_timeout, eval_timeout):
    for name, value in (("stall_timeout", stall_timeout), ("eval_timeout", eval_timeout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
            raise ValueError("%s must be a positive number of seconds, got %r" % (name, value))


def _verdict(reason, message, stalled=False, seconds=None, **extra):
    status, fix = VERDICTS[reason]
    out = {"stalled": bool(stalled), "reason": reason, "message": message, "seconds_since_update": seconds,
           "status": status, "fix": fix, "current_step": None, "phase": None, "updated_at": None,
           "timeout_s": None, "measured_from": None}
    out.update(extra)
    return out


def assess(status, now, stall_timeout=DEFAULT_STALL_TIMEOUT, eval_timeout=DEFAULT_EVAL_TIMEOUT, pid_info=None,
           step_since=None, skew_tolerance=SKEW_TOLERANCE):
    """The stall verdict. ``status``: the status document (a dict; a ``StatusDoc`` also carries the
    file's mtime) or a ``StatusError``. ``now``: epoch seconds. ``pid_info``: ``daemon_info``'s dict
    (at least ``alive`` and ``started_at``), or None when the daemon is not looked at.
    With ``unknown`` in ``pid_info`` (cannot tell whether its PID is the daemon) the status is judged
    alone and a failure is unknown. ``step_since``: since when ``current_step`` has had its value
    (``track_step``), for a status without ``updated_at``.

    Returns {stalled, reason, message, seconds_since_update, status, fix, current_step, phase,
    updated_at, timeout_s, measured_from}; ``reason`` is one of REASONS, ``status`` the check-model
    status (ok, warn, fail, unknown), ``stalled`` whether stopping the daemon is the remedy.
    Raises ValueError for thresholds that are not positive numbers."""
    _check_thresholds(stall_timeout, eval_timeout)
    if pid_info is not None and pid_info.get("unknown"):
        # Cannot tell whether the PID file's process is the daemon: the status is judged alone, and what
        # would be a failure is unknown (the daemon may be dead or hung; nothing proves which, nothing is stopped).
        result = assess(status, now, stall_timeout, eval_timeout, None, step_since, skew_tolerance)
        if result["status"] == _checks.FAIL:
            result.update(status=_checks.UNKNOWN, stalled=False,
                          message="%s; %s" % (result["message"], pid_info.get("message")))
        return result
    path = getattr(status, "path", None)
    where = " (%s)" % path if path else ""
    started = (pid_info or {}).get("started_at")
    if pid_info is not None and not pid_info.get("alive"):
        return _verdict(DAEMON_DEAD, pid_info.get("message") or "the training daemon is not running")
    if pid_info is not None and pid_info.get("stopped"):
        return _verdict(DAEMON_STOPPED, pid_info.get("message") or "the training daemon is stopped")
    alive_for = now - started if pid_info is not None and started is not None else None

    if isinstance(status, StatusError):
        result = _verdict(status.reason, status.message)
        if status.unreadable:
            result["status"] = _checks.UNKNOWN
            return result
        # Missing or corrupt for longer than stall_timeout while the daemon runs: it is not writing.
        quiet = alive_for
        if status.reason == STATUS_CORRUPT and status.mtime is not None and alive_for is not None:
            quiet = min(alive_for, now - status.mtime)
        if quiet is not None and quiet > stall_timeout:
            result.update(stalled=True, status=_checks.FAIL, seconds_since_update=round(quiet, 3),
                          timeout_s=stall_timeout, measured_from="daemon_start",
                          message="%s for %s while the daemon (PID %s) runs (limit %s)" % (
                              status.message, duration(quiet), pid_info.get("pid"), duration(stall_timeout)))
        return result
    if not isinstance(status, dict):
        raise ValueError("status must be the status document (a dict) or a StatusError, not %s" % type_name(status))

    step_value = status.get("current_step")
    step = step_number(step_value)
    total = step_number(status.get("total_steps"))
    phase = _phase(status)
    facts = {"current_step": step if step is not None else step_value, "phase": phase}
    if step_value is not None and step is None:
        return _verdict(STATUS_CORRUPT, "current_step %r in the status file%s is not a step number"
                        % (step_value, where), **facts)
    if step is not None and step < 0:
        return _verdict(STATUS_CORRUPT, "current_step %r in the status file%s is negative: no step number"
                        % (step_value, where), **facts)
    stamp_value = status.get("updated_at")
    stamp = stamp_problem = None
    if stamp_value is not None:
        stamp, stamp_problem = _stamp(stamp_value, where)
        if stamp is not None:
            facts["updated_at"] = _timeparse.iso(stamp)
    elif step is None:
        return _verdict(STATUS_CORRUPT, "the status file%s has neither updated_at nor current_step" % where, **facts)
    mtime = getattr(status, "mtime", None)
    if stamp_problem and mtime is None:
        return _verdict(STATUS_CORRUPT, stamp_problem, **facts)

    meaning = PHASES.get(phase, TRAINING)
    if meaning == FAILING:
        return _verdict(DAEMON_ERROR, "the daemon reports phase %r in the status file%s" % (phase, where), **facts)
    # total_steps 0 or less is no total (Hugging Face's max_steps is -1 when it trains by epochs)
    finished = step is not None and total is not None and total > 0 and step >= total
    if meaning == SETTLED or finished:
        if stamp_problem:
            return _verdict(STATUS_CORRUPT, stamp_problem, **facts)
        return _verdict(OK, "the daemon is %s: no progress expected" % phase if meaning == SETTLED
                        else "training finished: step %d of %d" % (step, total), **facts)
    evaluating = meaning == EVALUATING
    timeout = eval_timeout if evaluating else stall_timeout
    facts["timeout_s"] = timeout

    # Since when nothing moved. The file's last write stands in for an updated_at that cannot be used
    # (not a time, no wall-clock time) or misleads: local time written without an offset (it differs
    # from the last write by a whole zone offset), or a stamp in the future.
    note = stamp_problem
    if stamp is not None:
        since, measured = stamp, "updated_at"
        ahead = stamp > now + skew_tolerance
        offset = _zone_offset(stamp, mtime) if ahead or now - stamp > timeout else None
        if offset is not None or (ahead and mtime is not None):
            if now - mtime <= timeout:   # written recently: the stamp is wrong, the daemon is not stalled
                return _verdict(CLOCK_SKEW, _skew_message(stamp, mtime, now, offset, facts, where),
                                seconds=round(now - stamp, 3), measured_from="updated_at", **facts)
            since, measured = mtime, "file_mtime"
            note = "updated_at %s %s" % (facts["updated_at"], "looks like local time (UTC%s) written without an offset"
                                         % _zone(offset) if offset is not None
                                         else "is %s in the future" % duration(stamp - now))
        elif ahead:
            return _verdict(CLOCK_SKEW, _skew_message(stamp, mtime, now, None, facts, where),
                            seconds=round(now - stamp, 3), measured_from="updated_at", **facts)
    elif stamp_problem:
        since, measured = mtime, "file_mtime"
    else:
        since, measured = (step_since if step_since is not None else (mtime if mtime is not None else now),
                           "current_step")
    if started is not None and started > since:
        since, measured = started, "daemon_start"   # restarted since: give the new daemon its full time
    age = max(now - since, 0.0)
    facts["measured_from"] = measured
    if age <= timeout:
        if stamp_problem:
            return _verdict(STATUS_CORRUPT, stamp_problem, seconds=round(age, 3), **facts)
        what = "evaluating" if evaluating else "progressing"
        step_text = ", step %d" % step if step is not None else ""
        text = ("daemon restarted %s ago" % duration(age) if measured == "daemon_start"
                else "last update %s ago" % duration(age))
        return _verdict(OK, "%s%s: %s (limit %s)" % (what, step_text, text, duration(timeout)),
                        seconds=round(age, 3), **facts)
    reason = EVAL_STALL if evaluating else STEP_STALL
    inside_file = " in %s" % path if path else ""
    moved = {"updated_at": "updated_at%s has not changed" % inside_file,
             "current_step": "current_step%s has not moved" % inside_file,
             "file_mtime": "the status file%s has not been written" % where,
             "daemon_start": "nothing was written%s since the daemon started" % (" to %s" % path if path else "")}
    step_text = " at step %d" % step if step is not None else ""
    return _verdict(reason, "%s: %s for %s%s (limit %s)%s" % (
        "evaluation stalled" if evaluating else "training stalled", moved[measured], duration(age), step_text,
        duration(timeout), "; " + note if note else ""), stalled=True, seconds=round(age, 3), **facts)


def _skew_message(stamp, mtime, now, offset, facts, where):
    if stamp > now:
        return "updated_at %s in the status file%s is %s in the future: %s, not a stall" % (
            facts["updated_at"], where, duration(stamp - now), _skew_cause(offset))
    return "updated_at %s in the status file%s lags the file's last write by exactly %s: %s, not a stall" % (
        facts["updated_at"], where, duration(mtime - stamp), _skew_cause(offset))


def _skew_cause(offset):
    if offset is None:
        return "clock skew between the daemon and this host"
    return "the daemon writes local time (UTC%s) without an offset" % _zone(offset)


def _zone(offset):
    sign = "+" if offset >= 0 else "-"
    offset = abs(int(offset))
    return "%s%02d:%02d" % (sign, offset // 3600, (offset % 3600) // 60)


def track_step(status, previous, now):
    """For a status without ``updated_at``: since when ``current_step`` has had its value.

    ``previous`` is the state kept from the last check ({path, step, since}) or None. Returns
    (step_since, state): the state to keep (unchanged when the step has not moved). A step seen for
    the first time counts from the file's last write (it cannot have moved later than that)."""
    if not isinstance(status, dict) or status.get("updated_at") is not None:
        return None, previous
    step = step_number(status.get("current_step"))
    if step is None:
        return None, previous
    path = getattr(status, "path", None)
    if isinstance(previous, dict) and previous.get("step") == step and previous.get("path") == path \
            and isinstance(previous.get("since"), (int, float)) and not isinstance(previous.get("since"), bool):
        return previous["since"], previous
    mtime = getattr(status, "mtime", None)
    since = min(mtime, now) if mtime is not None else now
    return since, {"path": path, "step": step, "since": since}


def evaluate(assessment, check="progress", fail_status=_checks.FAIL):
    """``assess``'s verdict as check-model output: (problems, ok_text, details). ``fail_status`` is
    what a failure is for the check (``warn`` for a soft one)."""
    details = dict((k, assessment.get(k)) for k in ("reason", "stalled", "seconds_since_update", "current_step",
                                                    "phase", "updated_at", "timeout_s", "measured_from"))
    status = assessment["status"]
    if status == _checks.OK:
        return [], assessment["message"], details
    if status == _checks.FAIL:
        status = fail_status
    return [_checks.problem(check, status, assessment["message"], assessment["fix"],
                            reason=assessment["reason"])], assessment["message"], details


# ---------------------------------------------------------------------------------------------
# Stopping a process group and checking that its GPU memory is released

def _signal_group(pgid, pids, sig, by_group):
    if by_group:
        try:
            os.killpg(pgid, sig)
        except OSError:
            pass
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def _members(pid, pgid, by_group, proc_root):
    """The live processes to stop: the whole group, or (when the group is the caller's own) the
    process and its descendants."""
    table = processes(proc_root)
    if by_group:
        return sorted(p for p, (_ppid, group, alive) in table.items() if group == pgid and alive)
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        if parent in found:
            continue
        if parent in table and table[parent][2]:
            found.add(parent)
        todo.extend(p for p, (ppid, _g, alive) in table.items() if ppid == parent and alive)
    return sorted(found)


def _wait_gone(pid, pgid, by_group, deadline, proc_root, clock, sleep):
    """The members still alive when they are all gone or the deadline has passed."""
    pause = 0.01
    while True:
        left = _members(pid, pgid, by_group, proc_root)
        if not left or clock() >= deadline:
            return left
        sleep(min(pause, max(deadline - clock(), 0.0)))
        pause = min(pause * 2, 0.1)


def refuse_to_stop(pid, proc_root="/proc"):
    """Why ``pid`` must never be stopped (init, this process, one of its ancestors), else None."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid < 2:
        return "refusing to stop PID %r: not a process that can be stopped" % (pid,)
    table = processes(proc_root)
    mine, hops = os.getpid(), 0
    while mine and hops < 4096:
        if mine == pid:
            return "refusing to stop PID %d: it is this process or one of its parents" % pid
        mine = table.get(mine, (0,))[0]
        hops += 1
    return None


def stop_refusal(daemon, daemon_match, proc_root="/proc"):
    """Why the PID file's process is not stopped although the daemon stalled, else None. Only a
    process proven to be the daemon is stopped: alive by ``daemon_info`` AND matching ``daemon_match``
    (without it a PID from another PID namespace, or a reused one written just before, would pass),
    and never PID 1, this process or its parents."""
    if not daemon.get("alive"):
        return daemon.get("message") or "PID %s is not known to be the daemon" % daemon.get("pid")
    if not daemon_match:
        return ("no daemon_match is set, so nothing proves that PID %d is the daemon: set daemon_match "
                "(--daemon-match, training_watchdog_daemon_match) to a text of its command line" % daemon["pid"])
    return refuse_to_stop(daemon["pid"], proc_root)


def stop_group(pid, term_wait, kill_wait=5.0, leader_gone=False, proc_root="/proc", clock=time.monotonic,
               sleep=time.sleep):
    """Stop ``pid`` and its process group: SIGTERM, wait ``term_wait`` seconds, SIGKILL, wait at most
    ``kill_wait`` seconds for the processes to be gone.

    The caller's own process group is never signalled (then ``pid`` and its descendants are).
    ``leader_gone``: the caller knows ``pid`` has exited (a reaped ``Popen``): only what is left of
    its group is stopped, and nothing at all when the number now belongs to another process.
    Returns {pid, pgid, already_gone, terminated, killed, gone, pids, remaining, signalled}."""
    out = {"pid": pid, "pgid": None, "already_gone": False, "terminated": False, "killed": False, "gone": True,
           "pids": [], "remaining": [], "signalled": None}
    why = refuse_to_stop(pid, proc_root)
    if why:
        raise ValueError(why)
    leader = process_info(pid, proc_root)
    if leader_gone and leader["alive"]:
        out["already_gone"] = True   # the number was reused: whatever runs under it is not ours
        return out
    if leader["alive"]:
        pgid = leader["pgid"]
    else:
        out["already_gone"] = True
        # A group's number stays taken while any process is in it: members with pgid == pid are the
        # leftovers of the gone leader's group (when it led one).
        pgid = pid
    out["pgid"] = pgid
    by_group = bool(pgid) and pgid > 1 and pgid != os.getpgrp()
    members = _members(pid, pgid, by_group, proc_root)
    seen = set(members) | {pid}
    if not members:
        out["pids"] = sorted(seen)
        return out
    out["signalled"] = "group" if by_group else "processes"
    start = clock()
    _signal_group(pgid, members, signal.SIGTERM, by_group)
    left = _wait_gone(pid, pgid, by_group, start + term_wait, proc_root, clock, sleep)
    if not left:
        out["terminated"] = True
    else:
        seen.update(left)
        out["killed"] = True
        _signal_group(pgid, left, signal.SIGKILL, by_group)
        left = _wait_gone(pid, pgid, by_group, clock() + kill_wait, proc_root, clock, sleep)
    seen.update(left)
    out.update(gone=not left, remaining=left, pids=sorted(seen))
    return out


def vram_orphans(gpu_processes, pids):
    """The entries of the GPU probe's process list that belong to ``pids`` and hold VRAM:
    [{pid, gpu, bdf, vram_bytes, name}] (``gpu`` is the GPU's index, else its PCI address)."""
    pids = set(pids)
    orphans = []
    for proc in gpu_processes or ():
        if proc.get("pid") in pids and (proc.get("vram_bytes") or 0) > 0:
            gpu = proc.get("index") if proc.get("index") is not None else proc.get("bdf")
            orphans.append({"pid": proc["pid"], "gpu": gpu, "bdf": proc.get("bdf"),
                            "vram_bytes": proc["vram_bytes"], "name": proc.get("name")})
    return orphans


def _process_list_known(probed):
    """Whether the probe's process list is complete: every vendor probed lists its GPU processes (AMD:
    the KFD process list; NVIDIA: nvidia-smi answered), and at least one vendor was probed."""
    if "processes_available" in probed:
        return bool(probed["processes_available"]) and bool(probed.get("vendors") or probed.get("kfd_available"))
    return bool(probed.get("kfd_available"))


def verify_vram(module, pids, timeout, probe_options=None, proc_root="/proc", clock=time.monotonic,
                sleep=time.sleep, release_wait=3.0):
    """Whether the GPU memory ``pids`` held is released, through the GPU probe, within ``timeout``
    seconds. The driver frees a dead process's memory shortly after it exits, so the probe is
    repeated for up to ``release_wait`` seconds while an orphan's process is gone.
    Returns {vram_released: True / False / None (unknown), orphans, error}."""
    # Imported here: the GPU probe is needed only after a stop, and the check runs every minute.
    from ansible_collections.gpuops.preflight.plugins.module_utils import _gpus

    deadline = clock() + timeout
    settle = None
    out = {"vram_released": None, "orphans": [], "error": None}
    options = dict(probe_options or {})
    while True:
        left = deadline - clock()
        if left <= 0:
            out["error"] = out["error"] or "no time left for the GPU probe"
            return out
        if "timeout" not in (probe_options or {}):
            options["timeout"] = max(int(left), 1)
        outcome = _deadline.run_all({"probe": (lambda: _gpus.probe(module, **options), left)}, clock=clock)["probe"]
        if not outcome.ok:
            out["error"] = "GPU probe %s" % outcome.describe_failure()
            return out
        probed = outcome.value
        if not _process_list_known(probed):
            out.update(vram_released=None, orphans=[], error="the GPU probe cannot list GPU processes here "
                                                             "(no KFD process list, no answer from nvidia-smi)")
            return out
        orphans = vram_orphans(probed.get("processes"), pids)
        out.update(vram_released=not orphans, orphans=orphans, error=None)
        lingering = [o for o in orphans if process_info(o["pid"], proc_root)["alive"]]
        settle = clock() + release_wait if settle is None else settle
        if not orphans or lingering or min(deadline, settle) - clock() < 0.3:
            return out
        sleep(0.25)


def stop_and_verify(module, pid, term_wait, kill_wait=5.0, verify_timeout=15.0, probe_options=None,
                    leader_gone=False, proc_root="/proc", clock=time.monotonic, sleep=time.sleep):
    """``stop_group`` then ``verify_vram`` for every process it saw: one dict with both results."""
    stopped = stop_group(pid, term_wait, kill_wait, leader_gone, proc_root, clock, sleep)
    checked = verify_vram(module, stopped["pids"], verify_timeout, probe_options, proc_root, clock, sleep)
    stopped.update(checked)
    return stopped


# ---------------------------------------------------------------------------------------------
# systemd's view of the daemon's unit, and the event log

UNIT_PROPERTIES = ("LoadState", "ActiveState", "SubState", "Result", "NRestarts", "MainPID", "ExecMainStatus")


def parse_unit_show(text):
    """``systemctl show -p ...`` output -> {property: value} (NRestarts, MainPID and ExecMainStatus as ints)."""
    props = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            value = value.strip()
            if key in ("NRestarts", "MainPID", "ExecMainStatus") and value.lstrip("-").isdecimal():
                value = int(value)
            props[key.strip()] = value
    return props


def unit_state(module, unit, timeout=5, log_lines=0):
    """{unit, properties, error, log}: systemctl show for ``unit``, and its last ``log_lines`` journal lines."""
    out = {"unit": unit, "properties": {}, "error": None, "log": []}
    systemctl = module.get_bin_path("systemctl")
    if not systemctl:
        out["error"] = "systemctl not found"
        return out
    run = _tool.run_tool(module, [systemctl, "show", unit, "--no-pager",
                                  "--property=%s" % ",".join(UNIT_PROPERTIES)], timeout)
    if not run.ran or run.rc != 0:
        out["error"] = "systemctl show %s: %s" % (unit, run.describe() if not run.ran else (
            first_line(run.stderr) or "exit %s" % run.rc))
        return out
    out["properties"] = parse_unit_show(run.stdout)
    journalctl = module.get_bin_path("journalctl") if log_lines else None
    if journalctl:
        logged = _tool.run_tool(module, [journalctl, "-u", unit, "-n", str(log_lines), "--no-pager", "-q",
                                         "-o", "short-iso"], timeout)
        if logged.ran:
            out["log"] = [line for line in logged.stdout.splitlines() if line.strip()][-log_lines:]
    return out


def unit_verdict(props):
    """What the unit's state adds to a dead daemon: (status, severity, text), or None when nothing.
    A unit systemd gave up on (failed: its start limit hit, or a failure it does not restart) is a
    hard failure; a unit being restarted is a warning."""
    active, sub, result = props.get("ActiveState"), props.get("SubState"), props.get("Result")
    restarts = props.get("NRestarts")
    if props.get("LoadState") == "not-found":
        return _checks.UNKNOWN, "soft", "the unit is not installed"
    if active == "failed":
        why = "its start limit was hit" if result == "start-limit-hit" else "Result=%s" % result
        return _checks.FAIL, "hard", "the unit failed and systemd gave up restarting it (%s, NRestarts=%s)" % (
            why, restarts)
    if active in ("activating", "reloading") or sub == "auto-restart":
        return _checks.WARN, "soft", "systemd is restarting it (%s/%s, NRestarts=%s)" % (active, sub, restarts)
    if active == "active" and props.get("MainPID"):
        return _checks.WARN, "soft", "the unit runs MainPID %s: the PID file is stale" % props["MainPID"]
    return None  # inactive (stopped by an operator, or exited cleanly): the daemon is simply not running


def append_event(path, record, max_bytes=LOG_MAX_BYTES):
    """Append ``record`` as one JSON line to ``path`` (created 0640, its folder 0750 when missing);
    beyond ``max_bytes`` the log is first renamed to ``<path>.1``. Raises OSError / FileProblem."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        os.makedirs(folder, 0o750)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise _files.FileProblem("%s is %s, not a regular file" % (path, _files.kind(mode)))
    line = (json.dumps(clean_text(record), sort_keys=True, default=str) + "\n").encode("utf-8")
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) \
        | getattr(os, "O_NOCTTY", 0)
    for _attempt in (1, 2):
        fd = os.open(path, flags, 0o640)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _files.FileProblem("%s is %s, not a regular file" % (path, _files.kind(st.st_mode)))
            if st.st_size + len(line) <= max_bytes or st.st_size == 0:
                os.write(fd, line)
                return path
        finally:
            os.close(fd)
        os.rename(path, path + ".1")
    return path


def read_state(path):
    """The kept step state (a dict), or None when there is none or it does not parse."""
    try:
        data, _mtime_unused = _read_file(path, SMALL_LIMIT)
        state = json.loads(data.decode("utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


# ---------------------------------------------------------------------------------------------
# One whole check: observe, judge, act

def inside(base_dir, path, default):
    """``path`` (default ``default``) relative to ``base_dir`` unless absolute; ValueError when a
    relative path leaves ``base_dir``."""
    path = path or default
    if os.path.isabs(path):
        return os.path.normpath(path)
    full = os.path.normpath(os.path.join(base_dir, path))
    if os.path.relpath(full, base_dir).split(os.sep, 1)[0] == os.pardir:
        raise ValueError("%r leaves the training base dir %s" % (path, base_dir))
    return full


def paths(base_dir, status_file=None, pid_file=None, log_file=None, state_file=None):
    """The files a check uses, defaults relative to ``base_dir`` (an absolute path)."""
    if not base_dir or not os.path.isabs(base_dir):
        raise ValueError("base_dir must be an absolute path, got %r" % (base_dir,))
    return {"status_file": inside(base_dir, status_file, STATUS_FILE),
            "pid_file": None if pid_file == "none" else inside(base_dir, pid_file, PID_FILE),
            "log_file": None if log_file == "none" else inside(base_dir, log_file, LOG_FILE),
            "state_file": None if state_file == "none" else inside(base_dir, state_file, STATE_FILE)}


def base_problem(base_dir):
    """Why ``base_dir`` cannot be a training host's base folder (missing, not a folder), else None; a
    folder that cannot be looked at is left to the reads below it to report."""
    try:
        mode = os.stat(base_dir).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "training base folder %s is missing" % base_dir
    except OSError:
        return None
    if not stat.S_ISDIR(mode):
        return "training base folder %s is %s, not a folder" % (base_dir, _files.kind(mode))
    return None


def watch(module, base_dir, status_file=None, pid_file=None, log_file=None, state_file=None,
          stall_timeout=DEFAULT_STALL_TIMEOUT, eval_timeout=DEFAULT_EVAL_TIMEOUT, act=False,
          kill_timeout=DEFAULT_KILL_TIMEOUT, unit=None, daemon_match=None, read_timeout=5, probe_options=None,
          gpu_timeout=15, log_lines=10, now=None, proc_root="/proc", clock=time.monotonic, sleep=time.sleep):
    """One check of the training daemon, acting on a stall when ``act`` (not in check mode).

    Returns the ``assess`` dict plus: severity (hard when systemd gave up on the unit, or the daemon
    could not be stopped), files, daemon, unit (systemd's view, looked up only when the daemon is
    dead or stalled), action (what stopping it did; {refused, pid} when it was not stopped:
    ``stop_refusal``), changed, elapsed_s. Raises ValueError for bad input (thresholds, paths, a base folder that is missing or not one)."""
    start = clock()
    _check_thresholds(stall_timeout, eval_timeout)
    if isinstance(kill_timeout, bool) or not isinstance(kill_timeout, (int, float)) or kill_timeout < 0:
        raise ValueError("kill_timeout must be a number of seconds (0 or more), got %r" % (kill_timeout,))
    files = paths(base_dir, status_file, pid_file, log_file, state_file)
    now = time.time() if now is None else now
    jobs = {"base": (lambda: base_problem(base_dir), read_timeout),
            "status": (lambda: read_status(files["status_file"]), read_timeout)}
    if files["pid_file"]:
        jobs["daemon"] = (lambda: daemon_info(files["pid_file"], proc_root, now, daemon_match), read_timeout)
    seen = _deadline.run_all(jobs, clock=clock)
    if seen["base"].ok and seen["base"].value:   # a wrong path or an unmounted volume, not a dead daemon
        raise ValueError("%s: nothing to watch (check the base dir given)" % seen["base"].value)
    if seen["status"].ok:
        status = seen["status"].value
    else:
        why = "status file %s could not be read: %s" % (files["status_file"], seen["status"].describe_failure())
        status = StatusError(STATUS_CORRUPT, why, files["status_file"], unreadable=True)
    daemon = None
    if "daemon" in seen:
        daemon = seen["daemon"].value if seen["daemon"].ok else {
            "pid": None, "alive": False, "unknown": True, "pgid": None, "started_at": None,
            "pid_file": files["pid_file"],
            "message": "PID file %s could not be read: %s" % (files["pid_file"], seen["daemon"].describe_failure())}

    step_since, state = None, None
    if files["state_file"] and isinstance(status, dict) and status.get("updated_at") is None:
        previous = read_state(files["state_file"])
        step_since, state = track_step(status, previous, now)
        if state is not None and state != previous and not module.check_mode:
            try:
                _files.write_atomic(files["state_file"], json.dumps(state, sort_keys=True), 0o640)
            except OSError as exc:
                module.warn("could not keep the step state in %s: %s" % (files["state_file"], exc))
    result = assess(status, now, stall_timeout, eval_timeout, daemon, step_since)
    result.update(severity="soft", files=files, daemon=daemon, unit=None, action=None, changed=False)

    if unit and result["reason"] == DAEMON_DEAD:
        info = unit_state(module, unit, timeout=min(read_timeout, 5), log_lines=log_lines)
        result["unit"] = info
        verdict = unit_verdict(info["properties"]) if not info["error"] else None
        if verdict is not None:
            result["status"], result["severity"], text = verdict
            result["message"] = "%s; unit %s: %s" % (result["message"], unit, text)
            if verdict[1] == "hard" and info["log"]:
                result["message"] += "; last log line: %s" % info["log"][-1][:200]
        elif info["error"]:
            result["message"] += "; unit %s: %s" % (unit, info["error"])

    refused = stop_refusal(daemon, daemon_match, proc_root) if act and result["stalled"] and daemon else None
    if refused:
        result["action"] = {"refused": refused, "pid": daemon.get("pid")}
        result["message"] += "; not stopped: %s" % refused
        module.warn("the stalled daemon was not stopped: %s" % refused)
    elif act and result["stalled"] and daemon is not None and daemon.get("pid"):
        result["changed"] = True
        if module.check_mode:
            result["action"] = {"would_stop": daemon["pid"], "pgid": daemon.get("pgid")}
            result["message"] += "; would stop PID %s (check mode)" % daemon["pid"]
        else:
            result["action"] = action = stop_and_verify(
                module, daemon["pid"], kill_timeout, kill_wait=5.0, verify_timeout=gpu_timeout + 5,
                probe_options=probe_options, proc_root=proc_root, clock=clock, sleep=sleep)
            result["message"] += "; " + describe_stop(action, kill_timeout)
            if not action["gone"]:
                result["severity"] = "hard"
            if files["log_file"]:
                record = event_record(result, action, unit)
                try:
                    append_event(files["log_file"], record)
                except (OSError, ValueError) as exc:
                    module.warn("could not record the event in %s: %s" % (files["log_file"], exc))
                    result["action"]["log_error"] = str(exc)
    result["elapsed_s"] = round(clock() - start, 3)
    return clean_text(result)


def describe_stop(action, kill_timeout):
    """One line: what stopping the daemon did."""
    if action["already_gone"] and not action["signalled"]:
        text = "PID %s was already gone" % action["pid"]
    elif not action["gone"]:
        text = "PID %s is still there after SIGKILL (stuck in the kernel?): %s" % (
            action["pid"], ", ".join(str(p) for p in action["remaining"]))
    elif action["killed"]:
        text = "stopped PID %s with SIGKILL (it ignored SIGTERM for %s)" % (action["pid"], duration(kill_timeout))
    else:
        text = "stopped PID %s with SIGTERM" % action["pid"]
    if action["vram_released"] is False:
        text += "; GPU memory still held by %s" % ", ".join(
            "PID %s on GPU %s (%d MiB)" % (o["pid"], o["gpu"], o["vram_bytes"] // 1048576) for o in action["orphans"])
    elif action["vram_released"] is None:
        text += "; GPU memory release not verified (%s)" % (action.get("error") or "unknown")
    else:
        text += "; its GPU memory is released"
    return text


def event_record(result, action, unit):
    """The JSON line watchdog.log gets for one stop."""
    return {
        "time": _timeparse.iso(time.time()),
        "host": os.uname().nodename,   # gethostname's value, without importing socket for the stall check
        "event": "stopped" if action["gone"] else "stop_failed",
        "reason": result["reason"],
        "message": result["message"],
        "unit": unit,
        "pid": action["pid"],
        "pgid": action["pgid"],
        "signal": "SIGKILL" if action["killed"] else ("SIGTERM" if action["signalled"] else None),
        "terminated": action["terminated"],
        "killed": action["killed"],
        "already_gone": action["already_gone"],
        "gone": action["gone"],
        "remaining": action["remaining"],
        "vram_released": action["vram_released"],
        "orphans": action["orphans"],
        "current_step": result.get("current_step"),
        "phase": result.get("phase"),
        "updated_at": result.get("updated_at"),
        "seconds_since_update": result.get("seconds_since_update"),
        "timeout_s": result.get("timeout_s"),
    }
