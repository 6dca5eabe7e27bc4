"""Stop every process of a run: ansible-playbook, its workers, modules, and the tools they started.

ansible-runner's own timeout/cancel kills ansible-playbook's process group only. The GPU tools
run under coreutils ``timeout`` in process groups of their own (so that a hung rocm-smi can be
killed as a group), and would outlive it, holding a GPU or a ramdisk file. Each run puts a
unique token in its environment (``MARKER``); every descendant inherits it, even one that changed
its process group or lost its parent. Stopping = SIGSTOP each marked process until no new one
appears (a stopped process cannot fork), then SIGKILL them all.
"""

from __future__ import annotations

import os
import signal
import time

MARKER = "GPUOPS_PREFLIGHT_RUN"


def marked(token: str) -> list[int]:
    """Processes (of this user; others' environments are unreadable) carrying ``MARKER=token``."""
    needle = ("%s=%s" % (MARKER, token)).encode()
    found = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as handle:
                if needle in handle.read().split(b"\0"):
                    found.append(int(name))
        except OSError:
            continue
    return found


def ssh_masters(control_dir: str) -> list[int]:
    """The run's SSH ControlPersist masters. ssh rewrites its process title to ``ssh: <socket> [mux]``
    (which also wipes what /proc shows of its environment, so ``marked`` cannot see them); the
    socket is in the run's own control folder."""
    needle = control_dir.encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as handle:
                if needle in handle.read():
                    found.append(int(name))
        except OSError:
            continue
    return found


def close_ssh_masters(control_dir: str, seconds: float = 3.0) -> list[int]:
    """SIGTERM the run's SSH masters (ssh removes its socket and exits), SIGKILL the stubborn ones."""
    pids = ssh_masters(control_dir)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = [pid for pid in ssh_masters(control_dir) if not _zombie(pid)]
        if not alive:
            return pids
        time.sleep(0.05)
    for pid in ssh_masters(control_dir):
        _signal(pid, signal.SIGKILL)
    return pids


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def stop(token: str, rounds: int = 50) -> list[int]:
    """Freeze, then kill every process of the run; returns the pids killed."""
    frozen: set[int] = set()
    for _round in range(rounds):
        new = set(marked(token)) - frozen
        if not new:
            break
        for pid in new:
            _signal(pid, signal.SIGSTOP)
        frozen |= new
    for pid in frozen:
        _signal(pid, signal.SIGKILL)
    return sorted(frozen)


def wait_gone(token: str, seconds: float = 5.0) -> list[int]:
    """Wait until no live (non-zombie) process carries the token; returns those still there."""
    deadline = time.monotonic() + seconds
    while True:
        alive = [pid for pid in marked(token) if not _zombie(pid)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def _zombie(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid, encoding="utf-8", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
