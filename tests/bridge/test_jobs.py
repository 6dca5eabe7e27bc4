"""gpuops_preflight.jobs against real child processes: a job holding "VRAM" in a simulated KFD process list,
one ignoring SIGTERM, one already dead; and a small reference job runner (a queue, one job running) that
starts the next job after one timed out or was cancelled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.sysfs_tree import add_gpu, add_kfd
from gpuops_preflight import jobs

BDF = "0000:0b:00.0"
GPU_ID = 41840
VRAM = 2 << 30

# A training job: writes its progress file like the training server's jobs do, optionally holds "VRAM" (a
# record in the simulated KFD process list that, like the driver, it drops when it exits on SIGTERM),
# optionally ignores SIGTERM, optionally starts a child in its process group that holds VRAM and ignores
# SIGTERM, optionally exits at once (leaving that child behind).
JOB = r"""
import datetime, json, os, signal, subprocess, sys, time
opts = json.loads(sys.argv[1])
def hold(kfd):
    folder = os.path.join(kfd, str(os.getpid()))
    os.makedirs(folder)
    record = os.path.join(folder, "vram_%d" % opts["gpu_id"])
    with open(record, "w") as handle:
        handle.write("%d\n" % opts["vram"])
    return record
record = hold(opts["kfd"]) if opts.get("kfd") else None
def bye(*_):
    if record:
        os.unlink(record)
    os._exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if opts.get("ignore_term") else bye)
if opts.get("child"):
    held = dict(opts, child=False, ignore_term=True, progress=None, exit=False, kfd=opts["child_kfd"])
    child = subprocess.Popen([sys.executable, "-c", sys.argv[2], json.dumps(held), sys.argv[2]], stdout=subprocess.PIPE)
    child.stdout.readline()
    print(child.pid, flush=True)
if opts.get("progress"):
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None).isoformat()
    tmp = opts["progress"] + ".tmp"
    with open(tmp, "w") as handle:
        json.dump({"current_step": 1, "updated_at": now, "phase": "train"}, handle)
    os.rename(tmp, opts["progress"])
print("ready", flush=True)
if opts.get("exit"):
    os._exit(0)
time.sleep(600)
"""


class Rig(object):
    """A simulated sysfs with one GPU and a KFD process list; starts jobs and cleans them up."""

    def __init__(self, root):
        self.root = str(root)
        self.sysfs = os.path.join(self.root, "sys")
        add_gpu(self.sysfs, BDF, card=0)
        add_kfd(self.sysfs, [(GPU_ID, BDF, 110000)])
        self.kfd = os.path.join(self.sysfs, "class", "kfd", "kfd", "proc")
        self.started = []

    def start(self, vram=True, **opts):
        opts.update(kfd=self.kfd if vram else None, child_kfd=self.kfd, gpu_id=GPU_ID, vram=VRAM)
        proc = subprocess.Popen([sys.executable, "-c", JOB, json.dumps(opts), JOB], stdout=subprocess.PIPE,
                                start_new_session=True)
        proc.child_pid = int(proc.stdout.readline()) if opts.get("child") else None
        assert proc.stdout.readline().strip() == b"ready"
        self.started.append(proc)
        return proc

    def probe(self):
        return {"tool": "sysfs", "sysfs_root": self.sysfs}

    def record(self, pid):
        return os.path.join(self.kfd, str(pid), "vram_%d" % GPU_ID)

    def cleanup(self):
        for proc in self.started:
            for pid in (proc.pid, proc.child_pid):
                if pid:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            proc.wait(5)


@pytest.fixture
def rig(tmp_path):
    made = Rig(tmp_path)
    yield made
    made.cleanup()


def utc_naive(seconds_ago=0.0):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - seconds_ago))


def write_progress(path, **doc):
    with open(path, "w") as handle:
        json.dump(doc, handle)
    return str(path)


# ---------------------------------------------------------------------------------------------
# watch_progress

def test_watch_progress_fresh_and_stale(tmp_path):
    path = write_progress(tmp_path / "progress.json", current_step=40, updated_at=utc_naive(30))
    fresh = jobs.watch_progress(path, timeout=600)
    assert fresh.stalled is False and fresh["stalled"] is False and fresh.code == "ok"
    assert 25 < fresh.seconds_since_update < 300 and fresh["reason"].startswith("progressing, step 40")
    stale = jobs.watch_progress(path, timeout=600, now=time.time() + 640)   # time injected: 11 minutes later
    assert (stale.stalled, stale.code, stale.status) == (True, "step_stall", "fail")
    assert stale.reason.startswith("no progress for 11 minutes: training stalled")
    assert dict(stale)["seconds_since_update"] == stale.seconds_since_update > 660
    assert set(stale.keys()) >= {"stalled", "reason", "seconds_since_update"}
    again = jobs.watch_progress(path, timeout=600, now=time.time() + 640)   # checks once, safe to repeat
    assert (again.stalled, again.code) == (True, "step_stall")


def test_watch_progress_epoch_stamps_and_short_timeouts(tmp_path):
    path = write_progress(tmp_path / "p.json", current_step=3, updated_at=time.time() - 45)
    res = jobs.watch_progress(path, timeout=30)
    assert res.stalled and res.reason.startswith("no progress for 45 seconds")


def test_watch_progress_missing_file(tmp_path):
    path = str(tmp_path / "none.json")
    res = jobs.watch_progress(path, timeout=600)
    assert (res.stalled, res.code, res.status) == (False, "status_missing", "warn") and path in res.reason
    res = jobs.watch_progress(path, timeout=600, started_at=time.time() - 900)
    assert res.stalled and res.reason.startswith("no progress for 15 minutes")


def test_watch_progress_never_hangs_on_a_fifo_and_reports_garbage(tmp_path):
    fifo = tmp_path / "progress.json"
    os.mkfifo(fifo)
    res = jobs.watch_progress(str(fifo), timeout=600)
    assert (res.stalled, res.code, res.status) == (False, "status_corrupt", "unknown") and "is a fifo" in res.reason
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\x00\x01 not json")
    assert jobs.watch_progress(str(bad), timeout=600).code == "status_corrupt"


@pytest.mark.parametrize("timeout", [0, -1, "600", None, True])
def test_watch_progress_rejects_a_bad_timeout(tmp_path, timeout):
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
        jobs.watch_progress(str(tmp_path / "p.json"), timeout=timeout)


# ---------------------------------------------------------------------------------------------
# cancel

def test_cancel_a_job_holding_gpu_memory(rig):
    job = rig.start()
    assert os.path.exists(rig.record(job.pid))
    res = jobs.cancel(job, timeout=10, **rig.probe())
    assert (res.terminated, res.killed, res.already_gone, res.gone) == (True, False, False, True)
    assert res.vram_released is True and res["orphans"] == [] and res.pgid == job.pid
    assert job.returncode == 0   # reaped; its SIGTERM handler ran (and the "driver" freed its memory)
    assert "stopped PID %d with SIGTERM; its GPU memory is released" % job.pid == res.message


def test_cancel_kills_a_job_ignoring_sigterm_and_reports_its_memory(rig):
    job = rig.start(ignore_term=True)
    res = jobs.cancel(job, timeout=3, **rig.probe())
    assert (res.terminated, res.killed, res.gone) == (False, True, True) and job.returncode == -signal.SIGKILL
    assert res.vram_released is False
    assert [(o["pid"], o["gpu"], o["vram_bytes"]) for o in res.orphans] == [(job.pid, 0, VRAM)]


def test_cancel_a_job_already_gone_is_not_an_error_and_twice_is_safe(rig):
    job = rig.start(vram=False, exit=True)
    job.wait(5)
    res = jobs.cancel(job, timeout=5, **rig.probe())
    assert (res.already_gone, res.terminated, res.killed, res.vram_released) == (True, False, False, True)
    live = rig.start()
    first = jobs.cancel(live.pid, timeout=5, **rig.probe())   # by PID
    second = jobs.cancel(live.pid, timeout=5, **rig.probe())
    assert first.terminated and not first.already_gone
    assert second.already_gone and not second.terminated and second.vram_released is True


def test_cancel_stops_the_leftovers_of_a_job_whose_leader_is_gone(rig):
    job = rig.start(vram=False, child=True, exit=True)   # the leader exits, its child keeps GPU memory
    job.wait(5)
    # the SIGKILLed child must be gone within what is left after the grace: room for a loaded machine (a 0.5 s
    # wait once failed with the whole e2e suite and three more running on 2 cores)
    res = jobs.cancel(job, timeout=10, grace=1.5, **rig.probe())
    assert res.already_gone and res.killed and res.gone
    assert [o["pid"] for o in res.orphans] == [job.child_pid] and res.vram_released is False


def test_cancel_without_a_gpu_process_list_says_unknown(rig, tmp_path):
    job = rig.start(vram=False)
    res = jobs.cancel(job, timeout=5, tool="sysfs", sysfs_root=str(tmp_path / "empty"))
    assert res.terminated and res.vram_released is None and "cannot list GPU processes" in res.error


def stand_in_tool(folder, script):
    path = folder / "rocm-smi"
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.timeout(60)   # a guard against a hang, not a timing assertion
def test_cancel_is_bounded_when_the_gpu_tool_hangs(rig, tmp_path):
    # A hung tool is killed at the time left; the KFD process list still answers.
    job = rig.start()
    res = jobs.cancel(job, timeout=3, tool="rocm-smi", rocm_smi=stand_in_tool(tmp_path, "sleep 600"),
                      sysfs_root=rig.sysfs)
    assert res.terminated and res.vram_released is True
    # A tool that ignores SIGTERM outlives the time left: the probe is abandoned, the answer is "unknown".
    job = rig.start()
    res = jobs.cancel(job, timeout=3, tool="rocm-smi", rocm_smi=stand_in_tool(tmp_path, "trap '' TERM; sleep 600"),
                      sysfs_root=rig.sysfs)
    assert res.terminated and res.vram_released is None and "timed out" in res.error


@pytest.mark.parametrize("target", [0, -4, "1234", None, 3.5, True])
def test_cancel_rejects_what_is_not_a_job(target):
    with pytest.raises(ValueError, match="target must be a subprocess.Popen or a PID"):
        jobs.cancel(target)


def test_cancel_refuses_init_and_the_caller():
    for pid in (1, os.getpid()):
        with pytest.raises(ValueError, match="refusing to stop PID"):
            jobs.cancel(pid, timeout=1)


# ---------------------------------------------------------------------------------------------
# A reference job runner: a queue, one job running, a monitor tick and a cancel endpoint

class JobRunner(object):
    """What a training server does with the API: run one job at a time; on each monitor tick, a job
    without progress for ``timeout`` seconds is cancelled and failed; cancel() is the endpoint."""

    def __init__(self, rig, timeout=600):
        self.rig, self.timeout = rig, timeout
        self.queue, self.running, self.done = [], None, []

    def submit(self, name, **opts):
        self.queue.append((name, opts))
        self._next()

    def _next(self):
        if self.running is None and self.queue:
            name, opts = self.queue.pop(0)
            progress = os.path.join(self.rig.root, "%s.progress.json" % name)
            self.running = (name, self.rig.start(progress=progress, **opts), progress)

    def _finish(self, state, detail):
        name, proc, _progress = self.running
        self.done.append((name, state, detail))
        self.running = None
        self._next()

    def tick(self, now=None):
        if self.running is None:
            return
        name, proc, progress = self.running
        if proc.poll() is not None:
            self._finish("succeeded" if proc.returncode == 0 else "failed", "exit %s" % proc.returncode)
            return
        watched = jobs.watch_progress(progress, self.timeout, now=now)
        if watched.stalled:
            stopped = jobs.cancel(proc, timeout=5, **self.rig.probe())
            self._finish("failed", "%s; %s" % (watched.reason.split(":")[0], stopped.message))

    def cancel(self, name):
        if self.running is not None and self.running[0] == name:
            stopped = jobs.cancel(self.running[1], timeout=5, **self.rig.probe())
            self._finish("cancelled", stopped.message)


def test_the_next_job_starts_after_a_timed_out_and_after_a_cancelled_one(rig):
    runner = JobRunner(rig, timeout=600)
    for name in ("a", "b", "c"):
        runner.submit(name)
    assert runner.running[0] == "a" and [q[0] for q in runner.queue] == ["b", "c"]
    runner.tick()                                  # a writes progress: nothing to do
    assert runner.running[0] == "a" and runner.done == []
    a_proc = runner.running[1]
    runner.tick(now=time.time() + 700)             # 11+ minutes later, still step 1: timed out
    assert runner.done[0][:2] == ("a", "failed")
    assert runner.done[0][2].startswith("no progress for 11 minutes; stopped PID %d" % a_proc.pid)
    assert a_proc.returncode is not None and runner.running[0] == "b"
    b_proc = runner.running[1]
    runner.cancel("b")                             # the cancel endpoint
    assert runner.done[1][:2] == ("b", "cancelled") and "its GPU memory is released" in runner.done[1][2]
    assert b_proc.returncode == 0 and not os.path.exists(rig.record(b_proc.pid))
    assert runner.running[0] == "c" and runner.queue == []


# ---------------------------------------------------------------------------------------------
# NVIDIA: the same verification through nvidia-smi's process list (the training host's RTX 3090)

RTX3090 = os.path.join(os.path.dirname(__file__), "..", "fixtures", "training", "nvidia-smi",
                       "telegraf_1x_rtx3090_525.147.05_q-x.xml")
NVIDIA_SMI = r"""#!%(python)s
# Stand-in nvidia-smi -q -x: a recorded RTX 3090 answer with the processes of holders.json, each listed while
# it lives (the driver frees a dead process's memory) or always when "sticky" (memory not released).
import json, os
held = json.load(open(%(holders)r))
rows = ""
for pid, sticky in held:
    try:
        state = open("/proc/%%d/stat" %% pid).read().rsplit(")", 1)[1].split()[0]
    except OSError:
        state = None
    if sticky or state not in (None, "Z"):
        rows += ("<process_info><gpu_instance_id>N/A</gpu_instance_id><compute_instance_id>N/A</compute_instance_id>"
                 "<pid>%%d</pid><type>C</type><process_name>python3</process_name>"
                 "<used_memory>2048 MiB</used_memory></process_info>" %% pid)
text = open(%(xml)r).read()
print(text.replace("<processes>\n                </processes>", "<processes>" + rows + "</processes>", 1))
"""


def nvidia(tmp_path, holders):
    (tmp_path / "holders.json").write_text(json.dumps(holders))
    tool = tmp_path / "nvidia-smi"
    tool.write_text(NVIDIA_SMI % {"python": sys.executable, "holders": str(tmp_path / "holders.json"),
                                  "xml": os.path.abspath(RTX3090)})
    tool.chmod(0o755)
    return {"vendor": "nvidia", "nvidia_smi": str(tool), "sysfs_root": str(tmp_path / "no-sysfs")}


def test_cancel_verifies_gpu_memory_through_nvidia_smi(rig, tmp_path):
    job = rig.start(vram=False)
    res = jobs.cancel(job, timeout=5, **nvidia(tmp_path, [[job.pid, False]]))
    assert res.terminated and res.vram_released is True and res.orphans == []
    stuck = rig.start(vram=False, ignore_term=True)
    res = jobs.cancel(stuck, timeout=3, **nvidia(tmp_path, [[stuck.pid, True]]))
    assert res.killed and res.vram_released is False
    assert [(o["pid"], o["gpu"], o["bdf"], o["vram_bytes"]) for o in res.orphans] == [
        (stuck.pid, 0, "0000:00:10.0", 2048 << 20)]
