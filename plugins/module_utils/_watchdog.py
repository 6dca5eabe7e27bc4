# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: a host module stops as soon as nobody waits for its result.

When the controller stops waiting (a cancelled run, the bridge's overall timeout, a dropped SSH
connection), nothing tells a module on the host: there is no terminal, so no SIGHUP, and it only
writes its result at the end. Left alone it would run on to its own deadlines, its GPU tool with
it, probing a GPU nobody needs probed (up to ``gpu_tool_timeout`` + 2 s).

What the module does see is its standard output: the pipe (or socket) that sshd, or the local
connection's worker, reads its result from. When the reader is gone, the kernel reports an error
or a hang-up on it. A daemon thread waits for exactly that (``poll`` with no event asked: errors and
hang-ups only, no busy loop), then kills the process group of every child of the module (coreutils
``timeout`` leads the group of the tool it runs), removes the folder AnsiballZ unpacked the module into
(ending at once skips AnsiballZ's own clean-up, which would leave it in the host's temp folder), and
ends the module at once.

A standard output that is a terminal or a file (the module run by hand) has nobody to lose: no watch.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import stat
import threading

# The exit status of a module stopped because its caller left (nobody reads it; it shows in a trace).
EXIT_ABANDONED = 75


def watched(fd=1):
    """Whether ``fd`` leads to a reader that can go away (a pipe or a socket)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def children(pid=None, proc_root="/proc"):
    """PIDs whose parent is ``pid`` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    found = []
    for name in os.listdir(proc_root):
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(proc_root, name, "stat"), "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(name))
    return found


def stop_children(pid=None, proc_root="/proc"):
    """SIGKILL every child of ``pid``, with its whole process group when it leads one (``timeout`` does)."""
    for child in children(pid, proc_root):
        try:
            if os.getpgid(child) == child:
                os.killpg(child, signal.SIGKILL)
            else:
                os.kill(child, signal.SIGKILL)
        except OSError:
            pass  # already gone


def payload_dir(path=None):
    """The folder AnsiballZ unpacked this module into (``<temp>/ansible_<module>_payload_<random>``, holding
    ``ansible_<module>_payload.zip`` that ``path`` lies in); None when the module does not run from one."""
    path = __file__ if path is None else path
    archive, inside, _rest = path.partition(".zip" + os.sep)
    if not inside:
        return None
    folder, name = os.path.split(archive)
    if not (os.path.isabs(folder) and name.startswith("ansible_") and name.endswith("_payload")
            and os.path.basename(folder).startswith(name + "_")):
        return None
    return folder


def _watch(fd, on_abandoned):
    poller = select.poll()
    poller.register(fd, 0)  # no event asked for: poll() still reports errors and hang-ups
    while True:
        try:
            events = poller.poll()
        except InterruptedError:
            continue
        if any(flags & (select.POLLERR | select.POLLHUP | select.POLLNVAL) for _fd, flags in events):
            on_abandoned()
            return


def abandon():
    """Stop the module's tools, remove its unpacked payload and end the module now: nobody waits for its result."""
    stop_children()
    folder = payload_dir()
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
    os._exit(EXIT_ABANDONED)


def start(fd=1, on_abandoned=abandon):
    """Watch ``fd`` in a daemon thread; returns the thread, or None when there is nothing to watch."""
    if not watched(fd):
        return None
    thread = threading.Thread(target=_watch, args=(fd, on_abandoned), name="gpuops-watchdog")
    thread.daemon = True
    thread.start()
    return thread
