"""gpuops-preflight training-watch --once [--act]: exit codes, output, and running from the host tool's
bundle (the package and the collection's module_utils in one folder) with neither Ansible nor ansible-runner."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
import types

import pytest

from bridge.helpers import make_bundle
from gpuops_preflight import cli

SLEEPER = "import time; print('ready', flush=True); time.sleep(600)"


def utc_naive(seconds_ago):
    stamp = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds_ago)
    return stamp.replace(tzinfo=None).isoformat()


@pytest.fixture
def base(tmp_path):
    """A training base dir with a running stand-in daemon (its PID file) and a fresh status file."""
    folder = tmp_path / "training"
    (folder / "status").mkdir(parents=True)
    (folder / "logs").mkdir()
    proc = subprocess.Popen([sys.executable, "-c", SLEEPER], stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout.readline().strip() == b"ready"
    (folder / ".daemon.pid").write_text("%d\n" % proc.pid)
    write_status(folder, current_step=10, updated_at=utc_naive(5))
    yield types.SimpleNamespace(dir=folder, proc=proc)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(5)


def write_status(folder, **doc):
    (folder / "status" / "training_status.json").write_text(json.dumps(doc))


def run_cli(capsys, *args):
    code = cli.main(["training-watch"] + list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_progressing_daemon_exits_0(capsys, base):
    code, out, _err = run_cli(capsys, "--once", "--base-dir", str(base.dir))
    assert code == 0 and out.startswith("training-watch: ok ok: progressing, step 10")


def test_a_stall_exits_1_and_is_stopped_only_with_act(capsys, base):
    write_status(base.dir, current_step=10, updated_at=utc_naive(3600))
    time.sleep(1.2)   # the daemon must have run longer than the (scaled down) stall timeout
    code, out, _err = run_cli(capsys, "--once", "--base-dir", str(base.dir), "--stall-timeout", "1")
    assert code == 1 and "fail step_stall: training stalled" in out and "fix: " in out
    assert base.proc.poll() is None
    code, out, _err = run_cli(capsys, "--once", "--act", "--check", "--base-dir", str(base.dir), "--stall-timeout", "1",
                              "--daemon-match", "time.sleep")
    assert code == 1 and "would stop PID %d (check mode)" % base.proc.pid in out and base.proc.poll() is None
    code, out, _err = run_cli(capsys, "--once", "--act", "--base-dir", str(base.dir), "--stall-timeout", "1",
                              "--daemon-match", "time.sleep", "--kill-timeout", "5", "--gpu-tool", "sysfs",
                              "--sysfs-root", str(base.dir / "nosys"),
                              "--json")
    result = json.loads(out)
    assert code == 1 and result["action"]["terminated"] is True and base.proc.wait(5) == -signal.SIGTERM
    assert result["action"]["vram_released"] is None   # no GPU process list in this test's sysfs
    logged = [json.loads(line) for line in (base.dir / "logs" / "watchdog.log").read_text().splitlines()]
    assert [(e["event"], e["pid"], e["reason"]) for e in logged] == [("stopped", base.proc.pid, "step_stall")]


def proc_status(pid):
    """/proc/<pid>/status as {field: value}."""
    with open("/proc/%d/status" % pid, encoding="utf-8") as handle:
        return dict(line.rstrip("\n").split(":\t", 1) for line in handle if ":\t" in line)


def test_a_daemon_stopped_with_sigstop_is_never_signalled_by_act(capsys, base):
    # a scheduler suspending the job (SIGSTOP): its status goes stale, but stopping it would kill a paused run
    write_status(base.dir, current_step=10, updated_at=utc_naive(3600))
    os.kill(base.proc.pid, signal.SIGSTOP)
    try:
        for _wait in range(500):   # SIGSTOP is delivered when the process is next scheduled
            if proc_status(base.proc.pid)["State"].startswith("T"):
                break
            time.sleep(0.02)
        time.sleep(1.2)   # the daemon has run longer than the (scaled down) stall timeout
        code, out, _err = run_cli(capsys, "--once", "--act", "--base-dir", str(base.dir), "--stall-timeout", "1",
                                  "--daemon-match", "time.sleep", "--kill-timeout", "1", "--gpu-tool", "sysfs",
                                  "--sysfs-root", str(base.dir / "nosys"), "--json")
        result = json.loads(out)
        after = proc_status(base.proc.pid)
    finally:
        os.kill(base.proc.pid, signal.SIGCONT)
    assert code == 0 and (result["reason"], result["status"], result["stalled"]) == ("daemon_stopped", "warn", False)
    assert result["action"] is None and result["changed"] is False
    assert after["State"].startswith("T")   # still the paused process, and no signal waits for it
    assert int(after["SigPnd"], 16) == 0 and int(after["ShdPnd"], 16) == 0, after
    assert base.proc.poll() is None and not (base.dir / "logs" / "watchdog.log").exists()


def test_a_dead_daemon_exits_1(capsys, base):
    os.killpg(base.proc.pid, signal.SIGKILL)
    base.proc.wait(5)
    code, out, _err = run_cli(capsys, "--once", "--base-dir", str(base.dir))
    assert code == 1 and "fail daemon_dead: the daemon (PID %d" % base.proc.pid in out


def test_an_unreadable_status_exits_2(capsys, base):
    (base.dir / "status" / "training_status.json").unlink()
    os.mkfifo(base.dir / "status" / "training_status.json")
    code, out, _err = run_cli(capsys, "--once", "--base-dir", str(base.dir))
    assert code == 2 and "unknown status_corrupt" in out and "is a fifo" in out


def test_bad_input_exits_2(capsys, base, monkeypatch):
    monkeypatch.delenv("TRAINING_BASE_DIR", raising=False)
    code, _out, err = run_cli(capsys, "--once")
    assert code == 2 and "--base-dir (or $TRAINING_BASE_DIR) is required" in err
    code, _out, err = run_cli(capsys, "--once", "--base-dir", str(base.dir), "--status-file", "../../etc/shadow")
    assert code == 2 and "leaves the training base dir" in err
    for args in (["--base-dir", str(base.dir)], ["--once", "--stall-timeout", "0"], ["--once", "--kill-timeout", "x"],
                 ["--once", "--gpu-tool-timeout", "0"], ["--once", "--gpu-timeout", "0"]):   # and its old name
        with pytest.raises(SystemExit) as exc:   # argparse: no --once (no loop mode), bad numbers
            cli.main(["training-watch"] + args)
        assert exc.value.code == 2
    assert "must be a positive number of seconds, got '0'" in capsys.readouterr().err


def test_runs_from_the_bundle_without_ansible_or_ansible_runner(tmp_path, base):
    lib = make_bundle(tmp_path)
    # -I: no PYTHONPATH, no user site, no current folder; -S: no site-packages (no Ansible, no ansible-runner).
    isolated = [sys.executable, "-I", "-S", "-c",
                "import sys, runpy; sys.path.insert(0, %r); sys.argv[0] = 'gpuops-preflight-local'; "
                "runpy.run_module('gpuops_preflight', run_name='__main__', alter_sys=True)" % str(lib)]
    probe = subprocess.run([sys.executable, "-I", "-S", "-c", "import ansible"], capture_output=True, check=False)
    assert probe.returncode != 0   # the interpreter below really has no Ansible
    env = dict(os.environ, GPUOPS_PREFLIGHT_BUNDLED="1")
    done = subprocess.run(isolated + ["training-watch", "--once", "--base-dir", str(base.dir)], env=env,
                          capture_output=True, text=True, cwd=str(tmp_path), timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("training-watch: ok ok: progressing, step 10")
    write_status(base.dir, current_step=10, updated_at=utc_naive(3600))
    time.sleep(1.2)
    done = subprocess.run(isolated + ["training-watch", "--once", "--act", "--base-dir", str(base.dir),
                                      "--stall-timeout", "1", "--gpu-tool", "sysfs", "--daemon-match", "time.sleep"],
                          env=env, capture_output=True, text=True, cwd=str(tmp_path), timeout=60, check=False)
    assert done.returncode == 1 and "stopped PID %d with SIGTERM" % base.proc.pid in done.stdout, done.stderr


def test_a_missing_base_folder_exits_2_not_a_dead_daemon(capsys, tmp_path):
    # a typo in --base-dir or an unmounted volume: it said "fail daemon_dead: no PID file" every minute
    code, out, err = run_cli(capsys, "--once", "--base-dir", str(tmp_path / "nowhere"))
    assert code == 2 and not out
    assert "training base folder %s is missing: nothing to watch" % (tmp_path / "nowhere") in err
    (tmp_path / "a-file").write_text("")
    code, out, err = run_cli(capsys, "--once", "--act", "--base-dir", str(tmp_path / "a-file"))
    assert code == 2 and "is a regular file, not a folder" in err
