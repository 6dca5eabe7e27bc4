"""training_progress as Ansible runs it (patch_module_args, SystemExit), on a real training base dir with a
real stand-in daemon process, its status file and PID file, and a simulated KFD tree for its GPU memory."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpuops.preflight.plugins.modules import training_progress
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.sysfs_tree import add_gpu, add_kfd

BDF = "0000:0b:00.0"
GPU_ID = 41840

# A stand-in daemon holding "VRAM": a record in the simulated KFD process list. Like the driver freeing a
# dead process's memory, it drops the record when it exits on SIGTERM; with "ignore" it ignores SIGTERM,
# and the record of the process SIGKILL ends stays behind (memory not released).
DAEMON = r"""
import os, signal, sys, time
folder = os.path.join(sys.argv[1], str(os.getpid()))
os.makedirs(folder)
record = os.path.join(folder, "vram_" + sys.argv[2])
with open(record, "w") as handle:
    handle.write("2147483648\n")
def bye(*_):
    os.unlink(record)
    os._exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if sys.argv[3] == "ignore" else bye)
print("ready", flush=True)
time.sleep(600)
"""


def run_module(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        training_progress.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def utc_naive(seconds_ago):
    stamp = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds_ago)
    return stamp.replace(tzinfo=None).isoformat()   # what datetime.utcnow().isoformat() writes


class Host(object):
    """A training base dir, a simulated sysfs with one GPU, and the daemon process once started."""

    def __init__(self, root):
        self.base = os.path.join(root, "training")
        self.sysfs = os.path.join(root, "sys")
        for sub in ("status", "logs"):
            os.makedirs(os.path.join(self.base, sub))
        add_gpu(self.sysfs, BDF, card=0)
        add_kfd(self.sysfs, [(GPU_ID, BDF, 110000)])
        self.proc = None

    def start_daemon(self, ignore_term=False):
        kfd_procs = os.path.join(self.sysfs, "class", "kfd", "kfd", "proc")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", DAEMON, kfd_procs, str(GPU_ID), "ignore" if ignore_term else "term"],
            stdout=subprocess.PIPE, start_new_session=True)
        assert self.proc.stdout.readline().strip() == b"ready"
        with open(os.path.join(self.base, ".daemon.pid"), "w") as handle:
            handle.write("%d\n" % self.proc.pid)
        return self.proc

    def older_than(self, seconds):
        """Wait until the daemon has run ``seconds`` (the module measures a fresh daemon from its own start);
        thresholds are scaled down to 1 s, so this is about a second."""
        born = time.time()
        time.sleep(max(seconds + 0.2 - (time.time() - born), 0))

    def status(self, **doc):
        with open(os.path.join(self.base, "status", "training_status.json"), "w") as handle:
            json.dump(doc, handle)

    def log(self):
        path = os.path.join(self.base, "logs", "watchdog.log")
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle]

    def args(self, **more):
        # daemon_match: the stand-in's command line (python -c DAEMON) holds DAEMON's code
        args = {"base_dir": self.base, "sysfs_root": self.sysfs, "gpu_tool": "sysfs", "gpu_tool_timeout": 2,
                "daemon_match": "vram_"}
        args.update(more)
        return args

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(5)


@pytest.fixture
def host(tmp_path):
    made = Host(str(tmp_path))
    yield made
    made.stop()


def test_a_daemon_making_progress_is_ok(capsys, host):
    host.start_daemon()
    host.status(current_step=1200, total_steps=10000, phase="train", updated_at=utc_naive(20))
    rc, result = run_module(capsys, host.args(act=True))
    assert rc == 0 and result["changed"] is False
    assert (result["stalled"], result["reason"], result["status"]) == (False, "ok", "ok")
    assert result["daemon"]["pid"] == host.proc.pid and result["daemon"]["alive"] is True
    assert result["action"] is None and result["unit"] is None and host.proc.poll() is None and host.log() == []


def test_act_stops_a_stalled_daemon_verifies_its_memory_and_records_it(capsys, host):
    host.start_daemon()
    host.status(current_step=1200, phase="train", updated_at=utc_naive(4000))
    rc, result = run_module(capsys, host.args(act=True, stall_timeout=900))
    # the daemon was started just now: it gets its own full time, measured from its start
    assert rc == 0 and result["reason"] == "ok" and result["measured_from"] == "daemon_start"
    host.older_than(1)
    rc, result = run_module(capsys, host.args(act=True, stall_timeout=1, kill_timeout=5))   # scaled down
    assert rc == 0 and result["changed"] is True
    assert (result["stalled"], result["reason"], result["status"]) == (True, "step_stall", "fail")
    action = result["action"]
    assert (action["terminated"], action["killed"], action["gone"]) == (True, False, True)
    assert action["vram_released"] is True and action["orphans"] == []
    assert host.proc.wait(5) == 0   # its SIGTERM handler ran
    assert "stopped PID %d with SIGTERM; its GPU memory is released" % host.proc.pid in result["message"]
    [event] = host.log()
    assert (event["event"], event["reason"], event["pid"], event["signal"]) == (
        "stopped", "step_stall", host.proc.pid, "SIGTERM")
    assert event["vram_released"] is True and event["current_step"] == 1200


def test_a_daemon_ignoring_sigterm_is_killed_and_its_held_memory_reported(capsys, host):
    host.start_daemon(ignore_term=True)
    host.status(current_step=7, updated_at=utc_naive(4000))
    host.older_than(1)
    rc, result = run_module(capsys, host.args(act=True, stall_timeout=1, kill_timeout=1, gpu_tool_timeout=1))
    action = result["action"]
    assert rc == 0 and (action["terminated"], action["killed"], action["gone"]) == (False, True, True)
    assert host.proc.wait(5) == -signal.SIGKILL
    assert action["vram_released"] is False
    assert [(o["pid"], o["gpu"], o["vram_bytes"]) for o in action["orphans"]] == [(host.proc.pid, 0, 2147483648)]
    assert "with SIGKILL (it ignored SIGTERM for 1 s)" in result["message"]
    assert "GPU memory still held by PID %d on GPU 0 (2048 MiB)" % host.proc.pid in result["message"]
    assert host.log()[0]["signal"] == "SIGKILL" and host.log()[0]["vram_released"] is False


def test_check_mode_stops_nothing_and_writes_nothing(capsys, host):
    host.start_daemon()
    host.status(current_step=3, updated_at=utc_naive(4000))
    host.older_than(1)
    rc, result = run_module(capsys, host.args(act=True, stall_timeout=1, _ansible_check_mode=True))
    assert rc == 0 and result["changed"] is True and result["stalled"] is True
    assert result["action"] == {"would_stop": host.proc.pid, "pgid": host.proc.pid}
    assert "would stop PID %d (check mode)" % host.proc.pid in result["message"]
    assert host.proc.poll() is None and host.log() == []


def test_act_without_daemon_match_stops_nothing_and_says_to_set_it(capsys, host):
    host.start_daemon()
    host.status(current_step=3, updated_at=utc_naive(4000))
    host.older_than(1)
    rc, result = run_module(capsys, host.args(act=True, stall_timeout=1, daemon_match=None))
    assert rc == 0 and result["stalled"] is True and result["changed"] is False
    assert result["action"]["refused"].startswith("no daemon_match is set, so nothing proves that PID %d is the "
                                                  "daemon" % host.proc.pid)
    assert "; not stopped: no daemon_match is set" in result["message"]
    assert "set daemon_match" in json.dumps(result["warnings"])
    assert host.proc.poll() is None and host.log() == []


def test_without_act_a_stall_is_only_reported(capsys, host):
    host.start_daemon()
    host.status(current_step=3, updated_at=utc_naive(4000))
    host.older_than(1)
    rc, result = run_module(capsys, host.args(stall_timeout=1))
    assert rc == 0 and result["stalled"] is True and result["changed"] is False and result["action"] is None
    assert host.proc.poll() is None


SHOW = {
    "failed": "LoadState=loaded\nActiveState=failed\nSubState=failed\nResult=start-limit-hit\nNRestarts=4\n"
              "MainPID=0\nExecMainStatus=1\n",
    "restarting": "LoadState=loaded\nActiveState=activating\nSubState=auto-restart\nResult=exit-code\n"
                  "NRestarts=2\nMainPID=0\nExecMainStatus=1\n",
}
JOURNAL = ("2027-01-15T08:00:01+0000 host python3[811]: RuntimeError: CUDA error: an illegal memory access\n"
           "2027-01-15T08:00:02+0000 host systemd[1]: training-daemon.service: Start request repeated too quickly.\n")


def fake_systemd(mocker, state):
    mocker.patch("ansible.module_utils.basic.AnsibleModule.get_bin_path",
                 side_effect=lambda name, *a, **k: "/testbin/%s" % name)

    def answer(cmd, **_kw):
        if cmd[4].endswith("systemctl"):
            return 0, SHOW[state], ""
        return 0, JOURNAL, ""
    return mocker.patch("ansible.module_utils.basic.AnsibleModule.run_command", side_effect=answer)


def test_a_unit_systemd_gave_up_on_is_a_hard_failure(mocker, capsys, host):
    host.status(current_step=3, updated_at=utc_naive(4000))
    with open(os.path.join(host.base, ".daemon.pid"), "w") as handle:
        handle.write("999999999\n")   # stale
    run = fake_systemd(mocker, "failed")
    rc, result = run_module(capsys, host.args(act=True, unit="training-daemon.service"))
    assert rc == 1 and result["failed"] is True
    assert (result["reason"], result["status"], result["severity"]) == ("daemon_dead", "fail", "hard")
    assert "unit training-daemon.service: the unit failed and systemd gave up restarting it " \
           "(its start limit was hit, NRestarts=4)" in result["msg"]
    assert "last log line: " in result["msg"] and "Start request repeated too quickly" in result["msg"]
    assert result["unit"]["properties"]["NRestarts"] == 4 and len(result["unit"]["log"]) == 2
    show = run.call_args_list[0][0][0]
    assert show[:4] == ["/testbin/timeout", "-k", "2", "5"]
    assert show[4:7] == ["/testbin/systemctl", "show", "training-daemon.service"]


def test_a_unit_being_restarted_is_a_warning(mocker, capsys, host):
    host.status(current_step=3, updated_at=utc_naive(4000))
    fake_systemd(mocker, "restarting")   # no PID file at all
    rc, result = run_module(capsys, host.args(unit="training-daemon.service"))
    assert rc == 0 and (result["reason"], result["status"], result["severity"]) == ("daemon_dead", "warn", "soft")
    assert "no PID file at" in result["message"] and "systemd is restarting it" in result["message"]


@pytest.mark.parametrize("args, words", [
    ({"stall_timeout": 0}, "stall_timeout must be at least 1 second, got 0"),
    ({"kill_timeout": -1}, "kill_timeout must be 0 or more, got -1"),
    ({"gpu_tool_timeout": 0}, "gpu_tool_timeout must be at least 1 second, got 0"),
    ({"status_file": "../../etc/shadow"}, "'../../etc/shadow' leaves the training base dir"),
    ({"base_dir": "relative/dir"}, "base_dir must be an absolute path"),
])
def test_bad_input_gets_a_clear_error(capsys, host, args, words):
    rc, result = run_module(capsys, host.args(**args))
    assert rc == 1 and words in result["msg"]


def test_the_old_name_gpu_timeout_still_sets_gpu_tool_timeout(capsys, host):
    args = host.args(gpu_timeout=0)
    del args["gpu_tool_timeout"]
    rc, result = run_module(capsys, args)
    assert rc == 1 and "gpu_tool_timeout must be at least 1 second, got 0" in result["msg"]


def test_a_status_file_of_garbage_bytes_gives_valid_utf8_output(capsys, host):
    with open(os.path.join(host.base, "status", "training_status.json"), "wb") as handle:
        handle.write(b'{"current_step": 5, "updated_at": "\xff\xfe"}')
    rc, result = run_module(capsys, host.args(pid_file="none"))
    assert rc == 0 and result["reason"] == "status_corrupt" and "not UTF-8 text (byte 0xff" in result["message"]
