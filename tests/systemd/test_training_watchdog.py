"""The training watchdog under systemd for real (PID 1 in a podman container), thresholds scaled to seconds.

The roles host_tool and training_watchdog are applied with ansible-playbook (playbooks/training_watchdog.yml)
to a container running a stand-in training daemon as a real unit. Then: a hang is detected and the daemon
restarted by systemd; a daemon ignoring SIGTERM is killed after kill_timeout; a 4th failure within the window
leaves the unit failed (exact NRestarts) and the check reports it hard; the role's second run changes nothing;
removing it leaves no unit, timer or drop-in. The start gate is the real one, the role's default command
(gpuops-preflight-local training-health --local --skip daemon from the host tool), on training trees built by
tests/simtrain and laid out in the container: a changed base_model with checkpoints, or a start from scratch
while a resumable checkpoint exists, never starts the daemon (systemd's restarts included) and the journal says
why; a healthy tree starts; the gate's own time, as systemd measured it, stays below TimeoutStartSec.
The tests run in order on one container (each scenario resets the daemon first).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil

import pytest

from simtrain import SCENARIOS, HostSet

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BASE = "/srv/training"
UNIT = "training-daemon.service"
WATCHDOG = "gpuops-training-watchdog"
LOCAL = "/usr/local/bin/gpuops-preflight-local"
PLAYBOOK = "playbooks/training_watchdog.yml"
HOST_TOOL = "tests/systemd/host_tool.yml"
SCALED = {  # seconds instead of minutes; the window and burst as in production
    "training_watchdog_base_dir": BASE, "training_watchdog_unit": UNIT, "training_watchdog_stall_timeout": 3,
    "training_watchdog_eval_timeout": 6, "training_watchdog_kill_timeout": 2, "training_watchdog_interval": 2,
    "training_watchdog_restart_sec": 1, "training_watchdog_start_limit_burst": 4,
    "training_watchdog_start_limit_interval": 300, "training_watchdog_gpu_tool": "sysfs",
    "training_watchdog_daemon_match": "stand_in_daemon.py",
}
DAEMON_UNIT = """[Unit]
Description=stand-in training daemon (tests/systemd)

[Service]
ExecStart=/usr/bin/python3 /usr/local/bin/stand_in_daemon.py --base-dir %s --step-interval 0.3
""" % BASE
# The start gate as the role installs it by default (gpuops-preflight-local training-health --local --skip daemon),
# with TimeoutStartSec scaled down from 300 s (still above the gate's worst case: its checks' longest timeout, 30 s).
GATE_TIMEOUT = 60
GATE = {"training_watchdog_start_gate": True, "training_watchdog_start_gate_timeout": GATE_TIMEOUT}
GATE_DROPIN = "/etc/systemd/system/%s.d/51-gpuops-training-start-gate.conf" % UNIT
# The container's GPU: the simrig nvidia-smi stand-in (a recorded RTX 3090) on PATH, as a container with the NVIDIA
# runtime has nvidia-smi; its /sys shows no GPU (the gate refuses on a host without a usable GPU: docs/TRAINING.md).
GPU_RIG = "/opt/sim/gpu"
# One ExecStartPre= run as systemctl show --timestamp=us+utc prints it.
EXEC_RUN = re.compile(r"start_time=\[\w+ ([^\]]+) UTC\] ; stop_time=\[\w+ ([^\]]+) UTC\] ; pid=\d+ ; "
                      r"code=(\w+) ; status=([^ ]+) \}")


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    """The sources the host tool bundles, frozen for this module: the role's runs compare like with like even
    while the working tree changes (host_tool_collection_dir / host_tool_package_dir point here)."""
    root = tmp_path_factory.mktemp("collection")
    shutil.copytree(os.path.join(REPO, "plugins", "module_utils"), root / "plugins" / "module_utils",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(os.path.join(REPO, "src", "gpuops_preflight"), root / "src" / "gpuops_preflight",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(REPO, "galaxy.yml"), root / "galaxy.yml")
    SCALED.update(host_tool_collection_dir=str(root), host_tool_package_dir=str(root / "src" / "gpuops_preflight"))
    return root


@pytest.fixture(scope="module")
def box(systemd_container, snapshot):
    """The container with the stand-in daemon running as a unit (before any role is applied)."""
    box = systemd_container
    box.put(os.path.join(HERE, "stand_in_daemon.py"), "/usr/local/bin/stand_in_daemon.py")
    box.sh("mkdir -p %s/status %s/logs" % (BASE, BASE))
    box.write("/etc/systemd/system/%s" % UNIT, DAEMON_UNIT)
    box.exec("systemctl", "daemon-reload")
    box.exec("systemctl", "start", UNIT)
    return box


@pytest.fixture(scope="module")
def trees():
    """trees(scenario) -> a simulated training host of tests/simtrain, built here without its daemon (the tree a
    unit's start gate sees before the daemon starts); start_on() lays its base folder out in the container."""
    hosts, built = HostSet("systemd-gate-"), {}

    def tree(scenario):
        if scenario not in built:
            built[scenario] = hosts.make(scenario=scenario, daemon=False)
        return built[scenario]

    try:
        yield tree
    finally:
        hosts.destroy()


@pytest.fixture(scope="module")
def gpu(box, trees):
    """The simrig nvidia-smi stand-in of a healthy host's GPU, as /usr/local/bin/nvidia-smi in the container."""
    rig = trees("healthy").rig.path
    box.put_tree(rig, GPU_RIG, members=("bin/nvidia-smi", "nvidia-smi.d"))
    box.exec("ln", "-sfn", "%s/bin/nvidia-smi" % GPU_RIG, "/usr/local/bin/nvidia-smi")
    yield GPU_RIG
    box.exec("rm", "-rf", "/usr/local/bin/nvidia-smi", GPU_RIG)


def main_pid(box):
    return int(box.show(UNIT, "MainPID")["MainPID"])


def starts(box):
    text = box.exec("cat", "%s/starts.log" % BASE, check=False).stdout
    return [int(line.split()[0]) for line in text.splitlines() if line.strip()]


def events(box):
    text = box.exec("cat", "%s/logs/watchdog.log" % BASE, check=False).stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def fresh_daemon(box, **flags):
    """Stop the daemon, forget its failures and start budget, set how the next starts behave, start it."""
    box.exec("systemctl", "stop", UNIT)
    box.exec("systemctl", "reset-failed", UNIT, check=False)
    box.write("%s/standin.json" % BASE, json.dumps(flags))
    box.exec("systemctl", "start", UNIT)
    return box.wait_for("the daemon's MainPID", lambda: main_pid(box))


def start_on(box, host):
    """Stop the daemon (and a restart systemd has pending), forget its failures, make the simulated host's tree the
    base dir, start the unit: (systemctl start's exit status, the journal's cursor before the start)."""
    box.exec("systemctl", "stop", UNIT)
    box.exec("systemctl", "reset-failed", UNIT, check=False)
    box.put_tree(host.base, BASE)
    cursor = box.cursor()
    return box.exec("systemctl", "start", UNIT, check=False).returncode, cursor


def gate_run(box):
    """The unit's last ExecStartPre= run, as systemd saw it: {code, status, seconds}."""
    text = box.exec("systemctl", "show", "--timestamp=us+utc", UNIT, "--property=ExecStartPre").stdout
    match = EXEC_RUN.search(text)
    assert match, text
    began, ended = (datetime.datetime.strptime(t, "%Y-%m-%d %H:%M:%S.%f") for t in match.group(1, 2))
    return {"code": match.group(3), "status": match.group(4), "seconds": (ended - began).total_seconds()}


def refused(box, trees, scenario, check):
    """The real gate refuses every start on the tree of ``scenario`` (tests/simtrain: ``check`` fails there),
    systemd's restarts included, until systemd gives up; its reason, in the scenario's own words, is in the unit's
    journal."""
    code, cursor = start_on(box, trees(scenario))
    assert code != 0, box.journal(UNIT, after=cursor)
    # A refused start is a failure: the first start and 3 restarts (the restart budget), each refused by the gate,
    # then systemd gives up.
    box.wait_for("the unit failed after 4 refused starts", lambda: box.show(UNIT, "ActiveState", "NRestarts", "Result")
                 == {"ActiveState": "failed", "NRestarts": "4", "Result": "exit-code"}, timeout=60)
    verdict = "Training health BLOCKED: 1 hard failure(s)"

    def four_refusals():
        text = box.journal(UNIT, after=cursor)
        return text if text.count(verdict) >= 4 else None

    journal = box.wait_for("the gate's 4 refusals in the journal", four_refusals, timeout=30)
    assert journal.count(verdict) == 4, journal
    reason = re.compile(r"gpuops-preflight-local\[\d+\]: Training health BLOCKED: %s: [^:]+: .*%s" % (
        check, re.escape(SCENARIOS[scenario].messages[check])))
    assert len(reason.findall(journal)) == 4, journal
    assert "%s: Control process exited, code=exited, status=1/FAILURE" % UNIT in journal, journal
    gate = gate_run(box)
    assert (gate["code"], gate["status"]) == ("exited", "1") and gate["seconds"] < GATE_TIMEOUT, gate
    # The daemon itself never ran: it records every start, and writes its PID file first thing.
    assert not box.exists("%s/starts.log" % BASE) and not box.exists("%s/.daemon.pid" % BASE)
    return journal


def test_role_installs_and_second_run_changes_nothing(box):
    first = box.playbook(PLAYBOOK, SCALED)
    assert first.rc == 0 and first.changed > 0, first.output
    for path in ("/etc/systemd/system/%s.timer" % WATCHDOG, "/etc/systemd/system/%s.service" % WATCHDOG,
                 "/etc/systemd/system/%s.d/50-gpuops-training-watchdog.conf" % UNIT, LOCAL,
                 "/opt/gpuops-preflight/lib/gpuops_preflight/__init__.py",
                 "/opt/gpuops-preflight/lib/ansible_collections/gpuops/preflight/plugins/module_utils/_training_progress.py"):
        assert box.exists(path), path
    assert not box.exists(GATE_DROPIN)   # off by default
    props = box.show(UNIT, "Restart", "RestartUSec", "StartLimitBurst", "StartLimitIntervalUSec", "TimeoutStopUSec",
                     "RestartForceExitStatus")
    assert props == {"Restart": "on-failure", "RestartUSec": "1s", "StartLimitBurst": "4",
                     "StartLimitIntervalUSec": "5min", "TimeoutStopUSec": "2s", "RestartForceExitStatus": "TERM"}
    timer = box.show("%s.timer" % WATCHDOG, "ActiveState", "UnitFileState", "AccuracyUSec")
    assert timer == {"ActiveState": "active", "UnitFileState": "enabled", "AccuracyUSec": "1s"}
    second = box.playbook(PLAYBOOK, SCALED)
    assert second.rc == 0 and second.changed == 0, second.output
    checked = box.playbook(PLAYBOOK, SCALED, check=True)
    assert checked.rc == 0 and checked.changed == 0, checked.output


def test_host_tool_runs_the_check_without_ansible(box):
    assert box.exec("python3", "-c", "import ansible", check=False).returncode != 0   # no Ansible in the container
    done = box.exec(LOCAL, "training-watch", "--once", "--base-dir", BASE, "--stall-timeout", "3", "--json")
    result = json.loads(done.stdout)
    assert result["reason"] == "ok" and result["daemon"]["alive"] is True and result["elapsed_s"] < 5


def test_a_healthy_daemon_is_left_alone(box):
    pid = fresh_daemon(box)
    before = len(events(box))
    seen = set()

    def three_runs():   # each watchdog run has its own invocation ID
        seen.add(box.show("%s.service" % WATCHDOG, "InvocationID")["InvocationID"])
        return len(seen - {""}) >= 4

    box.wait_for("three watchdog runs over a daemon making progress", three_runs, timeout=60)
    assert main_pid(box) == pid and len(events(box)) == before
    journal = box.journal("%s.service" % WATCHDOG, lines=10)
    assert "training-watch: ok ok: progressing, step" in journal, journal


def test_a_hang_is_detected_and_the_daemon_restarted_by_systemd(box):
    pid = fresh_daemon(box)
    before = len(events(box))
    box.exec("kill", "-USR1", str(pid))   # the daemon stops writing progress: a hang
    new = box.wait_for("a new daemon after the hang", lambda: (main_pid(box) not in (0, pid)) and main_pid(box),
                       timeout=60)
    [event] = events(box)[before:]
    assert (event["event"], event["reason"], event["pid"], event["signal"]) == ("stopped", "step_stall", pid, "SIGTERM")
    assert event["terminated"] is True and event["gone"] is True and event["unit"] == UNIT
    assert event["vram_released"] is None   # no GPU process list in the container: said, not guessed
    assert box.show(UNIT, "NRestarts", "ActiveState") == {"NRestarts": "1", "ActiveState": "active"}
    assert starts(box)[-2:] == [pid, new]
    assert "training stalled" in box.journal("%s.service" % WATCHDOG)


def test_a_daemon_ignoring_sigterm_is_killed_after_kill_timeout(box):
    pid = fresh_daemon(box, ignore_sigterm=True)
    before = len(events(box))
    box.exec("kill", "-USR1", str(pid))
    box.wait_for("a new daemon after SIGKILL", lambda: main_pid(box) not in (0, pid), timeout=60)
    [event] = events(box)[before:]
    assert (event["reason"], event["pid"], event["signal"]) == ("step_stall", pid, "SIGKILL")
    assert (event["terminated"], event["killed"], event["gone"]) == (False, True, True)
    assert "ignored SIGTERM for 2 s" in event["message"]
    assert box.show(UNIT, "ActiveState")["ActiveState"] == "active"


def test_a_fourth_failure_in_the_window_leaves_the_unit_failed_and_is_reported_hard(box):
    before = len(starts(box))
    fresh_daemon(box, crash_after=0.5)
    box.wait_for("the unit failed", lambda: box.show(UNIT, "ActiveState")["ActiveState"] == "failed", timeout=90)
    assert box.show(UNIT, "NRestarts")["NRestarts"] == "4"
    assert len(starts(box)) - before == 4   # the first start plus 3 restarts; the 4th restart was refused
    done = box.exec(LOCAL, "training-watch", "--once", "--base-dir", BASE, "--unit", UNIT, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "training-watch: fail (hard) daemon_dead" in done.stdout
    assert "the unit failed and systemd gave up restarting it" in done.stdout and "NRestarts=4" in done.stdout
    assert "last log line:" in done.stdout
    # The timer's own run says the same, in its journal.
    box.wait_for("the watchdog service reporting it hard",
                 lambda: "fail (hard) daemon_dead" in box.journal("%s.service" % WATCHDOG), timeout=30)
    box.exec("rm", "-f", "%s/standin.json" % BASE)


def test_the_start_gate_is_installed_with_its_default_command(box, gpu):
    run = box.playbook(PLAYBOOK, dict(SCALED, **GATE))
    assert run.rc == 0 and run.changed > 0, run.output
    pre = box.show(UNIT, "ExecStartPre")["ExecStartPre"]
    assert "argv[]=%s training-health --local --skip daemon ;" % LOCAL in pre, pre   # the role's default gate
    assert box.show(UNIT, "TimeoutStartUSec", "Environment") == {
        "TimeoutStartUSec": "1min", "Environment": "TRAINING_BASE_DIR=%s" % BASE}   # GATE_TIMEOUT


def test_the_gate_refuses_a_changed_base_model_with_its_reason_in_the_journal(box, gpu, trees):
    refused(box, trees, "base_model_changed", "config_lock")


def test_the_gate_refuses_to_start_from_scratch_while_a_resumable_checkpoint_exists(box, gpu, trees):
    refused(box, trees, "resume_off", "checkpoint_resume")


def test_the_gate_starts_the_daemon_on_a_healthy_tree(box, gpu, trees):
    code, cursor = start_on(box, trees("healthy"))
    assert code == 0, box.journal(UNIT, after=cursor)
    assert box.show(UNIT, "ActiveState", "NRestarts") == {"ActiveState": "active", "NRestarts": "0"}
    gate = gate_run(box)
    assert (gate["code"], gate["status"]) == ("exited", "0") and gate["seconds"] < GATE_TIMEOUT, gate
    pid = box.wait_for("the daemon's MainPID", lambda: main_pid(box))
    assert starts(box) == [pid]   # the daemon itself ran, once
    box.wait_for("the daemon's first status", lambda: box.exists("%s/status/training_status.json" % BASE))
    journal = box.journal(UNIT, after=cursor)
    assert "Training health PASSED" in journal and "BLOCKED" not in journal, journal


def test_the_start_gate_switched_off_removes_its_drop_in(box):
    off = box.playbook(PLAYBOOK, SCALED)
    assert off.rc == 0 and off.changed > 0, off.output
    assert not box.exists(GATE_DROPIN)
    assert box.show(UNIT, "ExecStartPre").get("ExecStartPre", "") == ""   # systemctl show leaves an empty one out
    assert box.show(UNIT, "ActiveState")["ActiveState"] == "active"   # the running daemon is left alone


def test_removal_leaves_no_unit_timer_or_drop_in(box):
    gone = box.playbook(PLAYBOOK, dict(SCALED, training_watchdog_state="absent"))
    assert gone.rc == 0 and gone.changed > 0, gone.output
    for path in ("/etc/systemd/system/%s.timer" % WATCHDOG, "/etc/systemd/system/%s.service" % WATCHDOG,
                 "/etc/systemd/system/%s.d" % UNIT, "/etc/systemd/system/timers.target.wants/%s.timer" % WATCHDOG):
        assert not box.exists(path), path
    assert box.show("%s.timer" % WATCHDOG, "LoadState")["LoadState"] == "not-found"
    assert box.show("%s.service" % WATCHDOG, "LoadState")["LoadState"] == "not-found"
    assert box.show(UNIT, "DropInPaths", "Restart") == {"DropInPaths": "", "Restart": "no"}
    assert box.show(UNIT, "ActiveState")["ActiveState"] == "active"   # the daemon itself is left running
    again = box.playbook(PLAYBOOK, dict(SCALED, training_watchdog_state="absent"))
    assert again.rc == 0 and again.changed == 0, again.output
    assert box.exists(LOCAL)   # the host tool stays (other local commands use it) until its own role removes it


def test_host_tool_removal(box):
    gone = box.playbook(HOST_TOOL, dict(SCALED, host_tool_state="absent"))
    assert gone.rc == 0 and gone.changed > 0, gone.output
    assert not box.exists(LOCAL) and not box.exists("/opt/gpuops-preflight")
    again = box.playbook(HOST_TOOL, dict(SCALED, host_tool_state="absent"))
    assert again.rc == 0 and again.changed == 0, again.output
