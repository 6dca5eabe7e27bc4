# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the state of NVIDIA's Multi-Process Service (MPS) on a host.

What NVIDIA's MPS documentation says a working set-up has, read without changing anything:

- the control daemon, ``nvidia-cuda-mps-control -d`` (or ``-f``). It writes its PID to
  ``nvidia-cuda-mps-control.pid`` in the pipe directory; that PID is checked against /proc (the
  process must still be a control daemon), and /proc is searched when there is no PID file. The
  kernel truncates ``comm`` to 15 characters ("nvidia-cuda-mps" for the daemon and the servers
  alike), so processes are told apart by their command line. A daemon found in /proc counts only
  when it serves this pipe directory (the ``CUDA_MPS_PIPE_DIRECTORY`` of its environment, else the
  default): one started for another folder cannot serve clients that look in this one;
- the pipe directory (``CUDA_MPS_PIPE_DIRECTORY``, default /tmp/nvidia-mps) where the daemon's
  ``control`` entry lives (a UNIX socket on current drivers, a FIFO on older ones), and the log
  directory (``CUDA_MPS_LOG_DIRECTORY``, default /var/log/nvidia-mps), both present and writable
  by the user that runs the clients;
- the servers: ``echo get_server_list | nvidia-cuda-mps-control`` prints one server PID a line.
  It is asked only when the daemon runs (the front end would otherwise wait for a daemon), through
  ``_tool.run_tool`` (hard timeout, own process group) with the pipe directory in its environment.
"""

from __future__ import annotations

import errno
import os
import pwd
import re
import stat

from ansible_collections.gpuops.preflight.plugins.module_utils import _files, _tool, _toolpath
from ansible_collections.gpuops.preflight.plugins.module_utils._values import clean_text, first_line

PID_FILE = "nvidia-cuda-mps-control.pid"
DEFAULT_PIPE_DIR = "/tmp/nvidia-mps"  # the daemon's pipe directory when its environment names none
PIPE_DIR_VARIABLE = b"CUDA_MPS_PIPE_DIRECTORY="
CONTROL = "nvidia-cuda-mps-control"
SERVER = "nvidia-cuda-mps-server"
_DAEMON_FLAGS = ("-d", "-f", "-S", "--static-partitioning")
_READ_LIMIT = 64 * 1024
# The front end reads commands from stdin; the pipe directory is passed as an argument, never
# spliced into the script.
_QUERY = 'echo get_server_list | CUDA_MPS_PIPE_DIRECTORY="$1" "$0"'
# ASCII digits, as few as a PID has: str.isdecimal() takes any script's digits, and int() refuses text over
# 4300 digits with its own error
_PID = re.compile(r"^[0-9]{1,10}$")


def _pid(text):
    """The PID ``text`` names, or None."""
    text = text.strip()
    return int(text) if _PID.match(text) else None


def _read_small(path):
    """Text of a small regular file (never a FIFO: the pipe directory holds some), or None."""
    try:
        fd = _files.open_regular(path)
    except (OSError, _files.FileProblem):
        return None
    try:
        return os.read(fd, _READ_LIMIT).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def cmdline(proc_root, pid):
    """argv of a process, or None when it is gone or unreadable."""
    text = _read_small(os.path.join(proc_root, str(pid), "cmdline"))
    if not text:
        return None
    return [arg for arg in text.split("\0") if arg]


def _owner(proc_root, pid):
    """(uid, user name) of a process from /proc/<pid>/status, (None, None) when unreadable."""
    for line in (_read_small(os.path.join(proc_root, str(pid), "status")) or "").splitlines():
        if line.startswith("Uid:"):
            fields = line.split()
            if len(fields) > 1 and fields[1].isdecimal():
                uid = int(fields[1])
                try:
                    return uid, pwd.getpwuid(uid).pw_name
                except KeyError:
                    return uid, None
    return None, None


def _is_daemon(argv):
    return bool(argv) and os.path.basename(argv[0]) == CONTROL and any(a in _DAEMON_FLAGS for a in argv[1:])


def daemon_pipe_dir(proc_root, pid):
    """The pipe directory a daemon serves (its environment's CUDA_MPS_PIPE_DIRECTORY, else the default),
    normalised; None when its environment cannot be read (another user's process, hidepid)."""
    try:
        fd = _files.open_regular(os.path.join(proc_root, str(pid), "environ"))
    except (OSError, _files.FileProblem):
        return None
    try:
        data = _files.read_fd(fd, 1024 * 1024)
    except OSError:
        return None
    finally:
        os.close(fd)
    for item in data.split(b"\0"):
        if item.startswith(PIPE_DIR_VARIABLE) and item[len(PIPE_DIR_VARIABLE):]:
            return os.path.normpath(item[len(PIPE_DIR_VARIABLE):].decode("utf-8", "replace"))
    return DEFAULT_PIPE_DIR


def find_daemon(proc_root, pipe_dir):
    """(pid or None, running: True/False/None, others): the control daemon serving ``pipe_dir``. Its PID
    file there names it; else /proc is searched for a daemon whose pipe directory is ``pipe_dir``.
    ``others``: the daemons found that serve another folder, [{pid, pipe_dir}] (pipe_dir None when it
    cannot be read). running is None when /proc cannot be read."""
    pid = _pid(_read_small(os.path.join(pipe_dir, PID_FILE)) or "")
    if pid is not None and _is_daemon(cmdline(proc_root, pid)):
        return pid, True, []
    try:
        names = os.listdir(proc_root)
    except OSError:
        return None, None, []
    # the same folder however it is reached (/tmp/nvidia-mps may be a link to /run/nvidia-mps)
    ours, others = os.path.realpath(pipe_dir), []
    for name in sorted((n for n in names if _pid(n) is not None), key=int):
        if _is_daemon(cmdline(proc_root, name)):
            served = daemon_pipe_dir(proc_root, name)
            if served is not None and os.path.realpath(served) == ours:
                return int(name), True, others
            others.append({"pid": int(name), "pipe_dir": served})
    return None, False, others


def control_entry(pipe_dir):
    """Whether the daemon's ``control`` entry is in ``pipe_dir``: a UNIX socket (current drivers) or a FIFO
    (older ones). False when it is missing or something else; None when it cannot be examined."""
    try:
        mode = os.lstat(os.path.join(pipe_dir, "control")).st_mode
    except OSError as exc:
        return False if exc.errno in (errno.ENOENT, errno.ENOTDIR) else None
    return stat.S_ISSOCK(mode) or stat.S_ISFIFO(mode)


def directory(path):
    """{path, exists, writable} of a directory (a file or a link to nowhere does not count as existing).
    ``exists`` and ``writable`` are None when it cannot be told (no search permission on a folder above it):
    a folder that could not be looked at is not a missing one; ``error`` then says why."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return {"path": path, "exists": False, "writable": False}
        return {"path": path, "exists": None, "writable": None,
                "error": "cannot look at %s: %s" % (path, exc.strerror or exc)}
    exists = stat.S_ISDIR(st.st_mode)
    return {"path": path, "exists": exists, "writable": bool(exists and os.access(path, os.W_OK | os.X_OK))}


def parse_server_list(stdout):
    """PIDs, one a line; anything else on stdout is ignored."""
    pids = []
    for line in (stdout or "").splitlines():
        pid = _pid(line)
        if pid is not None and pid not in pids:
            pids.append(pid)
    return pids


def status(module, pipe_dir="/tmp/nvidia-mps", log_dir="/var/log/nvidia-mps", control=CONTROL, timeout=5,
           proc_root="/proc", shell="/bin/sh"):
    """The MPS facts: {control_daemon_running, control_daemon_pid, pipe_dir, log_dir, servers, error}.

    ``control_daemon_running``: True / False, None when it cannot be told (/proc unreadable, or a
    daemon whose pipe directory cannot be read while ``pipe_dir`` holds no control entry).
    ``pipe_dir`` and ``log_dir``: {path, exists, writable}; ``pipe_dir`` also says whether the
    daemon's ``control`` socket or FIFO is there (``control_pipe``: True/False, None when it cannot be
    examined). ``daemons_elsewhere``: the daemons that serve another folder, [{pid, pipe_dir}].
    ``servers``: [{pid, uid, user, command}] from ``get_server_list`` (empty when no daemon runs).
    ``error``: one line when something could not be read or asked (the server list then is not
    known), else None.
    """
    result = {"control_daemon_running": None, "control_daemon_pid": None, "pipe_dir": directory(pipe_dir),
              "log_dir": directory(log_dir), "servers": [], "daemons_elsewhere": [], "error": None}
    result["pipe_dir"]["control_pipe"] = control_entry(pipe_dir)
    pid, running, others = find_daemon(proc_root, pipe_dir)
    unread = [o["pid"] for o in others if o["pipe_dir"] is None]
    if running is False and unread:
        # its folder cannot be read: the control entry in ours says whether a daemon serves it
        if result["pipe_dir"]["control_pipe"]:
            pid, running = unread[0], True
        else:
            running = None
            result["error"] = ("an MPS control daemon runs (pid %s) but its pipe directory cannot be read (%s/%s/"
                               "environ)" % (unread[0], proc_root, unread[0]))
    result["control_daemon_running"], result["control_daemon_pid"] = running, pid
    result["daemons_elsewhere"] = [o for o in others if o["pid"] != pid and o["pipe_dir"] is not None]
    if running is None:
        result["error"] = result["error"] or "cannot read %s to look for the MPS control daemon" % proc_root
        return result
    if not running:
        return result
    path, why_not = _toolpath.locate(module, control)
    if not path:
        result["error"] = "cannot list MPS servers: %s" % why_not
        return result
    run = _tool.run_tool(module, [shell, "-c", _QUERY, path, pipe_dir], timeout)
    if run.timed_out:
        detail = "timed out after %ss and was killed" % timeout
    elif not run.ran:
        detail = "could not run: %s" % (run.error or "%s not found" % shell)
    elif run.rc:
        detail = "exited %s: %s" % (run.rc, first_line(run.stderr or run.stdout) or "no output")
    else:
        detail = None
    if detail:
        result["error"] = clean_text("echo get_server_list | %s %s" % (path, detail))
        return result
    for server in parse_server_list(run.stdout):
        uid, user = _owner(proc_root, server)
        argv = cmdline(proc_root, server)
        result["servers"].append({"pid": server, "uid": uid, "user": user,
                                  "command": " ".join(argv) if argv else None})
    return result
