"""The stand-in daemon is a real process that behaves as the issue describes the training daemon."""

from __future__ import annotations

import json
import os
import time


def status(host):
    with open(host.path("status", "training_status.json")) as handle:
        return json.load(handle)


def wait_for(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_it_writes_its_pid_and_a_moving_status_as_the_service_user(hosts):
    host = hosts()
    pid = host.start_daemon(start_step=100, interval=0.05)
    with open(host.path(".daemon.pid")) as handle:
        assert int(handle.read()) == pid
    first = status(host)
    assert set(first) == {"current_step", "total_steps", "phase", "updated_at"} and first["phase"] == "train"
    assert first["current_step"] >= 100 and "+" not in first["updated_at"] and "T" in first["updated_at"]
    assert wait_for(lambda: status(host)["current_step"] > first["current_step"])
    st = os.stat("/proc/%d" % pid)
    assert (st.st_uid, st.st_gid) == host.owner
    assert os.stat(host.path("status", "training_status.json")).st_uid == host.owner[0]


def test_sigterm_removes_the_pid_file_and_sigkill_leaves_it_stale(hosts):
    host = hosts()
    host.start_daemon()
    host.stop_daemon()
    assert not os.path.exists(host.path(".daemon.pid"))
    pid = host.start_daemon()
    host.kill_daemon()
    assert os.path.exists(host.path(".daemon.pid")) and not os.path.exists("/proc/%d" % pid)


def test_hang_writes_once_and_never_again(hosts):
    host = hosts()
    host.start_daemon(start_step=0, hang=True, interval=0.01)
    first = status(host)
    time.sleep(0.2)
    assert status(host) == first and first["current_step"] == 0


def test_the_command_line_builds_a_running_host_and_destroys_it(parent, capsys):
    from simtrain.__main__ import main
    out = os.path.join(parent, "cli")
    assert main(["build", "--scenario", "crash_oom", "--out", out]) == 0
    base = capsys.readouterr().out.strip()
    with open(os.path.join(base, ".daemon.pid")) as handle:
        pid = int(handle.read())
    assert os.path.exists("/proc/%d" % pid)
    assert main(["destroy", out]) == 0
    assert not os.path.exists(out) and wait_for(lambda: not os.path.exists("/proc/%d" % pid) or
                                                open("/proc/%d/stat" % pid).read().split(")")[-1].split()[0] == "Z")
