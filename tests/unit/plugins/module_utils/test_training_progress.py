"""_training_progress: the stall verdict on real-shaped status files (time injected), the bounded
readers, and stopping real child processes (SIGTERM, SIGKILL, groups, VRAM held in a simulated KFD tree)."""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _training_progress as tp
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.sysfs_tree import add_gpu, add_kfd

NOW = 1_800_000_000.0   # 2027-01-15T08:00:00Z
BDF = "0000:0b:00.0"


def iso_utc_naive(epoch):
    """What datetime.utcnow().isoformat() writes: UTC, no offset, microseconds."""
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).replace(tzinfo=None).isoformat()


def write_status(folder, doc, mtime=None):
    """A status file as the daemon writes it (json.dump), with the file's mtime set."""
    path = os.path.join(str(folder), "training_status.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, indent=2)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def daemon_status(step=1200, updated=NOW - 30, phase="train", total=10000, **more):
    doc = {"current_step": step, "total_steps": total, "phase": phase, "updated_at": iso_utc_naive(updated),
           "loss": 0.4539, "epoch": 0.46, "learning_rate": 1.2e-05}
    doc.update(more)
    return doc


def alive(started=NOW - 3600, pid=4242):
    return {"pid": pid, "alive": True, "pgid": pid, "started_at": started, "message": None}


# ---------------------------------------------------------------------------------------------
# parse_stamp

@pytest.mark.parametrize("value, expected", [
    ("2027-01-15T08:00:00", NOW),                       # datetime.utcnow().isoformat(): no offset = UTC
    ("2027-01-15T08:00:00.250000", NOW + 0.25),
    ("2027-01-15T08:00:00Z", NOW),
    ("2027-01-15T09:00:00+01:00", NOW),
    ("2027-01-15 03:00:00-05:00", NOW),
    (NOW, NOW),
    (int(NOW), NOW),
    ("1800000000", NOW),
    ("1800000000.5", NOW + 0.5),
    (NOW * 1000, NOW),                                  # JavaScript's Date.now(): milliseconds
    (int(NOW) * 1_000_000_000, NOW),                    # time.time_ns()
])
def test_parse_stamp_accepts_iso_and_epoch(value, expected):
    assert tp.parse_stamp(value) == pytest.approx(expected)


@pytest.mark.parametrize("value", ["yesterday", "", "2027-02-30T00:00:00", True, None, -5, float("nan"), [1], {}])
def test_parse_stamp_refuses_what_is_not_a_time(value):
    with pytest.raises(ValueError):
        tp.parse_stamp(value)


# ---------------------------------------------------------------------------------------------
# read_status

def test_read_status_returns_the_document_with_its_mtime(tmp_path):
    path = write_status(tmp_path, daemon_status(), mtime=NOW - 30)
    doc = tp.read_status(path)
    assert isinstance(doc, dict) and doc["current_step"] == 1200
    assert doc.path == path and doc.mtime == NOW - 30


@pytest.mark.parametrize("content, reason, words", [
    (None, tp.STATUS_MISSING, "does not exist"),
    (b"", tp.STATUS_CORRUPT, "is empty"),
    (b'{"current_step": 12, "updated_at": "2027-01-', tp.STATUS_CORRUPT, "not valid JSON"),
    (b'[{"current_step": 12}]', tp.STATUS_CORRUPT, "holds a JSON list, not an object"),
    (b'{"current_step": 1\xff}', tp.STATUS_CORRUPT, "not UTF-8 text (byte 0xff at offset 18)"),
])
def test_read_status_errors_name_the_problem(tmp_path, content, reason, words):
    path = str(tmp_path / "training_status.json")
    if content is not None:
        with open(path, "wb") as handle:
            handle.write(content)
    err = tp.read_status(path)
    assert isinstance(err, tp.StatusError) and err.reason == reason and not err.unreadable
    assert words in err.message and path in err.message


def test_read_status_never_blocks_on_a_fifo_nor_reads_a_directory_or_a_huge_file(tmp_path):
    fifo = str(tmp_path / "fifo.json")
    os.mkfifo(fifo)
    err = tp.read_status(fifo)   # opening a FIFO without a writer would block for ever without O_NONBLOCK
    assert err.reason == tp.STATUS_CORRUPT and err.unreadable
    assert err.message == "status file %s is a fifo, not a regular file" % fifo
    err = tp.read_status(str(tmp_path))
    assert err.unreadable and err.message == "status file %s is a directory, not a regular file" % tmp_path
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as handle:
        handle.truncate(50 * 1024 * 1024)   # sparse: 50 MB of nothing
    err = tp.read_status(str(huge), limit=1024)
    assert err.unreadable and err.message.startswith("status file %s is " % huge)
    assert "larger than its limit of 1.0 KiB" in err.message


@pytest.mark.parametrize("content, words", [
    (b"\0" * 4096, "is zero-filled (4096 NUL bytes: probably cut off by a crash"),
    (b'{"current_step": 12}' + b"\0" * 100, "it holds NUL bytes: probably cut off by a crash"),
    (b'{"a": ' + b"[" * 100000 + b"]" * 100000 + b"}", "its JSON is nested too deeply to read"),
])
def test_read_status_names_a_crash_cut_or_a_too_deep_file(tmp_path, content, words):
    path = str(tmp_path / "training_status.json")
    with open(path, "wb") as handle:
        handle.write(content)
    err = tp.read_status(path)
    assert isinstance(err, tp.StatusError) and err.reason == tp.STATUS_CORRUPT and not err.unreadable
    assert words in err.message and path in err.message


def test_read_status_accepts_a_byte_order_mark(tmp_path):
    path = str(tmp_path / "training_status.json")
    with open(path, "wb") as handle:
        handle.write(b"\xef\xbb\xbf" + json.dumps(daemon_status()).encode())
    doc = tp.read_status(path)
    assert isinstance(doc, tp.StatusDoc) and doc["current_step"] == 1200


def test_a_pid_file_that_is_no_regular_file_is_named(tmp_path):
    os.mkdir(tmp_path / ".daemon.pid")
    info = tp.daemon_info(str(tmp_path / ".daemon.pid"))
    assert info["message"] == "PID file %s is a directory, not a regular file" % (tmp_path / ".daemon.pid")


# ---------------------------------------------------------------------------------------------
# assess: the verdict

def assess_file(tmp_path, doc, mtime=None, **kw):
    """The verdict on ``doc`` written to a file last written at ``mtime`` (default: when its updated_at says,
    as a daemon writing its status does; NOW when that is no time)."""
    if mtime is None:
        try:
            mtime = min(tp.parse_stamp(doc.get("updated_at")), NOW)
        except ValueError:
            mtime = NOW
    return tp.assess(tp.read_status(write_status(tmp_path, doc, mtime)), NOW, **kw)


def test_fresh_status_is_ok(tmp_path):
    res = assess_file(tmp_path, daemon_status(updated=NOW - 42), pid_info=alive())
    assert (res["stalled"], res["reason"], res["status"]) == (False, "ok", "ok")
    assert res["seconds_since_update"] == pytest.approx(42)
    assert res["message"] == "progressing, step 1200: last update 42 s ago (limit 15 min)"
    assert res["measured_from"] == "updated_at" and res["updated_at"].startswith("2027-01-15T07:59:18")


def test_stale_status_is_a_step_stall_naming_how_long(tmp_path):
    res = assess_file(tmp_path, daemon_status(updated=NOW - 960), pid_info=alive())
    assert (res["stalled"], res["reason"], res["status"]) == (True, "step_stall", "fail")
    assert res["seconds_since_update"] == pytest.approx(960)
    assert res["message"] == ("training stalled: updated_at in %s has not changed for 16 min at step 1200 "
                              "(limit 15 min)" % (tmp_path / "training_status.json"))
    assert res["fix"] and "\n" not in res["message"]


def test_thresholds_are_seconds_and_configurable(tmp_path):
    doc = daemon_status(updated=NOW - 120)
    assert assess_file(tmp_path, doc, stall_timeout=180)["reason"] == "ok"
    assert assess_file(tmp_path, doc, stall_timeout=60)["reason"] == "step_stall"


def test_eval_phase_has_its_own_longer_timeout(tmp_path):
    evaluating = daemon_status(updated=NOW - 1200, phase="eval")
    res = assess_file(tmp_path, evaluating)
    assert res["reason"] == "ok" and res["timeout_s"] == 1800 and res["message"].startswith("evaluating")
    res = assess_file(tmp_path, daemon_status(updated=NOW - 2000, phase="Evaluating"))
    assert (res["stalled"], res["reason"]) == (True, "eval_stall")
    assert "evaluation stalled" in res["message"] and "(limit 30 min)" in res["message"]
    assert assess_file(tmp_path, daemon_status(updated=NOW - 1200, phase="train"))["reason"] == "step_stall"


def test_future_stamp_is_clock_skew_not_a_stall(tmp_path):
    res = assess_file(tmp_path, daemon_status(updated=NOW + 7620), mtime=NOW - 5)   # not a whole zone ahead
    assert (res["stalled"], res["reason"], res["status"]) == (False, "clock_skew", "warn")
    assert "2 h 07 min in the future: clock skew between the daemon and this host" in res["message"]
    assert res["seconds_since_update"] == pytest.approx(-7620)
    # no file time to compare with (a document, not a file): the same
    res = tp.assess(daemon_status(updated=NOW + 7620), NOW)
    assert (res["stalled"], res["reason"]) == (False, "clock_skew") and "clock skew between" in res["message"]
    # a few seconds ahead (sub-second stamps, a slewing clock) is simply fresh
    assert assess_file(tmp_path, daemon_status(updated=NOW + 5))["reason"] == "ok"


def test_local_time_written_without_offset_is_named_as_such(tmp_path):
    # A daemon in UTC-5 writing datetime.now().isoformat(): the stamp reads 5 h old, the file was just written.
    res = assess_file(tmp_path, daemon_status(updated=NOW - 5 * 3600 - 20), mtime=NOW - 20)
    assert (res["stalled"], res["reason"]) == (False, "clock_skew")
    assert "writes local time (UTC-05:00) without an offset" in res["message"]
    # UTC+02:00: the stamp is in the future by the zone's offset
    res = assess_file(tmp_path, daemon_status(updated=NOW + 2 * 3600 - 20), mtime=NOW - 20)
    assert res["reason"] == "clock_skew" and "writes local time (UTC+02:00)" in res["message"]
    # the same stale stamp in a file last written long ago is a real stall
    assert assess_file(tmp_path, daemon_status(updated=NOW - 5 * 3600 - 20), mtime=NOW - 5 * 3600)["stalled"]


def test_epoch_updated_at(tmp_path):
    assert assess_file(tmp_path, daemon_status(updated_at=NOW - 10))["reason"] == "ok"
    assert assess_file(tmp_path, daemon_status(updated_at=str(NOW - 1000)))["reason"] == "step_stall"


def test_missing_status_is_a_warning_until_the_daemon_has_run_long_enough(tmp_path):
    missing = tp.read_status(str(tmp_path / "nope.json"))
    res = tp.assess(missing, NOW, pid_info=alive(started=NOW - 60))
    assert (res["stalled"], res["reason"], res["status"]) == (False, "status_missing", "warn")
    res = tp.assess(missing, NOW, pid_info=alive(started=NOW - 1000))
    assert (res["stalled"], res["reason"], res["status"]) == (True, "status_missing", "fail")
    assert "does not exist for 16 min while the daemon (PID 4242) runs" in res["message"]
    assert tp.assess(missing, NOW)["stalled"] is False   # no daemon information: nothing to act on


def test_corrupt_status_is_a_stall_only_when_it_stays_corrupt(tmp_path):
    path = str(tmp_path / "training_status.json")
    with open(path, "w") as handle:
        handle.write('{"current_step": 12, "updated_')   # a torn write
    os.utime(path, (NOW - 2, NOW - 2))
    res = tp.assess(tp.read_status(path), NOW, pid_info=alive())
    assert (res["stalled"], res["reason"], res["status"]) == (False, "status_corrupt", "warn")
    os.utime(path, (NOW - 3000, NOW - 3000))
    res = tp.assess(tp.read_status(path), NOW, pid_info=alive())
    assert (res["stalled"], res["reason"]) == (True, "status_corrupt")


def test_unreadable_status_is_unknown(tmp_path):
    res = tp.assess(tp.read_status(str(tmp_path)), NOW, pid_info=alive(started=NOW - 5000))
    assert (res["stalled"], res["reason"], res["status"]) == (False, "status_corrupt", "unknown")


@pytest.mark.parametrize("doc, words", [
    ({"current_step": "twelve", "updated_at": iso_utc_naive(NOW)}, "current_step 'twelve'"),
    ({"current_step": 12, "updated_at": "last tuesday"}, "updated_at 'last tuesday'"),
    ({"phase": "train", "loss": 0.3}, "neither updated_at nor current_step"),
])
def test_status_fields_that_make_no_sense_are_corrupt(tmp_path, doc, words):
    res = assess_file(tmp_path, doc)
    assert (res["reason"], res["status"]) == ("status_corrupt", "warn") and words in res["message"]


def test_dead_daemon(tmp_path):
    dead = {"pid": 4242, "alive": False, "message": "the daemon (PID 4242, from /srv/t/.daemon.pid) is gone"}
    res = assess_file(tmp_path, daemon_status(updated=NOW - 5000), pid_info=dead)
    assert (res["stalled"], res["reason"], res["status"]) == (False, "daemon_dead", "fail")
    assert res["message"] == dead["message"]


def test_a_restarted_daemon_is_measured_from_its_own_start(tmp_path):
    old = daemon_status(updated=NOW - 5000)   # left behind by the daemon the watchdog stopped
    res = assess_file(tmp_path, old, pid_info=alive(started=NOW - 100))
    assert (res["reason"], res["measured_from"]) == ("ok", "daemon_start")
    assert res["seconds_since_update"] == pytest.approx(100)
    res = assess_file(tmp_path, old, pid_info=alive(started=NOW - 1000))
    assert res["reason"] == "step_stall" and "since the daemon started" in res["message"]


def test_idle_or_finished_daemon_is_not_stalled(tmp_path):
    assert assess_file(tmp_path, daemon_status(updated=NOW - 90000, phase="idle"))["reason"] == "ok"
    res = assess_file(tmp_path, daemon_status(step=10000, total=10000, updated=NOW - 90000))
    assert res["reason"] == "ok" and res["message"] == "training finished: step 10000 of 10000"


@pytest.mark.parametrize("total", [-1, 0, "-1"])
def test_a_total_of_zero_or_less_is_no_total(tmp_path, total):
    # Hugging Face's max_steps is -1 when training by epochs: a hung daemon there is not "finished"
    res = assess_file(tmp_path, daemon_status(step=500, total=total, updated=NOW - 5000), pid_info=alive())
    assert (res["stalled"], res["reason"]) == (True, "step_stall")
    assert assess_file(tmp_path, daemon_status(step=500, total=total, updated=NOW - 30))["reason"] == "ok"


@pytest.mark.parametrize("word", ["error", "failed", "crashed", "Error", "aborted"])
def test_a_daemon_reporting_a_failure_is_a_warning_not_no_progress_expected(tmp_path, word):
    res = assess_file(tmp_path, daemon_status(updated=NOW - 90000, phase=word), pid_info=alive())
    assert (res["stalled"], res["reason"], res["status"]) == (False, "daemon_error", "warn")
    assert "the daemon reports phase %r" % word.lower() in res["message"] and res["fix"]
    # the same word under "status" (no phase key)
    doc = daemon_status(updated=NOW - 30, phase=None, status=word)
    del doc["phase"]
    assert assess_file(tmp_path, doc)["reason"] == "daemon_error"


def phases(meaning):
    return frozenset(word for word, said in tp.PHASES.items() if said == meaning)


def test_the_phase_table_gives_every_word_one_meaning():
    assert set(tp.PHASES.values()) == {tp.EVALUATING, tp.SETTLED, tp.FAILING}
    assert not (phases(tp.SETTLED) & phases(tp.FAILING)) and not (phases(tp.EVALUATING) & phases(tp.FAILING))
    for word in ("error", "failed", "crashed", "exited"):
        assert tp.PHASES[word] == tp.FAILING, word
    for word in ("idle", "finished", "done", "completed"):
        assert tp.PHASES[word] == tp.SETTLED, word


IST = 5 * 3600 + 1800   # a host in India writing datetime.now().isoformat(): local time, no offset


def test_local_time_east_of_utc_does_not_hide_a_stall(tmp_path):
    # hung 20 min ago: its last stamp reads 5 h 10 min in the future, the file was last written 20 min ago
    res = assess_file(tmp_path, daemon_status(updated=NOW - 1200 + IST), mtime=NOW - 1200, pid_info=alive())
    assert (res["stalled"], res["reason"], res["measured_from"]) == (True, "step_stall", "file_mtime")
    assert res["seconds_since_update"] == pytest.approx(1200)
    assert "the status file (%s) has not been written for 20 min" % (tmp_path / "training_status.json") \
        in res["message"]
    assert "looks like local time (UTC+05:30) written without an offset" in res["message"]
    # hung 7 h ago: the stamp is in the past, but only by 1 h 30 min
    res = assess_file(tmp_path, daemon_status(updated=NOW - 7 * 3600 + IST), mtime=NOW - 7 * 3600,
                      pid_info=alive(started=NOW - 9 * 3600))
    assert res["stalled"] and res["seconds_since_update"] == pytest.approx(7 * 3600)
    # the same stamp in a file written just now is the daemon's clock, not a stall
    res = assess_file(tmp_path, daemon_status(updated=NOW - 30 + IST), mtime=NOW - 30, pid_info=alive())
    assert (res["stalled"], res["reason"]) == (False, "clock_skew") and "UTC+05:30" in res["message"]


def test_local_time_west_of_utc_measures_a_stall_without_the_zone_offset(tmp_path):
    west = -5 * 3600
    res = assess_file(tmp_path, daemon_status(updated=NOW - 3600 + west), mtime=NOW - 3600, pid_info=alive())
    assert (res["stalled"], res["measured_from"]) == (True, "file_mtime")
    assert res["seconds_since_update"] == pytest.approx(3600) and "for 1 h " not in res["message"]
    assert "looks like local time (UTC-05:00)" in res["message"]


def test_a_stamp_in_the_future_in_a_file_not_written_for_long_is_a_stall(tmp_path):
    res = assess_file(tmp_path, daemon_status(updated=NOW + 7620), mtime=NOW - 2000, pid_info=alive())
    assert (res["stalled"], res["measured_from"]) == (True, "file_mtime")
    assert res["seconds_since_update"] == pytest.approx(2000) and "is 2 h 07 min in the future" in res["message"]


@pytest.mark.parametrize("stamp", ["Wed, 02 Dec 2026 06:35:36 +0000", "2026-12-02 06:35:36 UTC",
                                   "Wed Dec  2 06:35:36 2026"])
def test_an_updated_at_that_is_no_time_falls_back_to_the_files_last_write(tmp_path, stamp):
    res = assess_file(tmp_path, daemon_status(updated_at=stamp), mtime=NOW - 30, pid_info=alive())
    assert (res["stalled"], res["reason"], res["status"]) == (False, "status_corrupt", "warn")
    assert "updated_at %r in the status file" % stamp in res["message"] and "is not a time" in res["message"]
    res = assess_file(tmp_path, daemon_status(updated_at=stamp), mtime=NOW - 2000, pid_info=alive())
    assert (res["stalled"], res["reason"], res["measured_from"]) == (True, "step_stall", "file_mtime")
    assert res["seconds_since_update"] == pytest.approx(2000) and "is not a time" in res["message"]


@pytest.mark.parametrize("stamp", [3600.0, "12.5", 946684799])
def test_an_updated_at_that_is_no_wall_clock_time_is_corrupt_not_a_stall(tmp_path, stamp):
    # time.monotonic() written by mistake, in a file the daemon keeps writing: it is healthy
    res = assess_file(tmp_path, daemon_status(updated_at=stamp), mtime=NOW - 10, pid_info=alive(started=NOW - 2000))
    assert (res["stalled"], res["reason"], res["status"]) == (False, "status_corrupt", "warn")
    assert "no wall-clock time" in res["message"] and "since the daemon started" not in res["message"]
    res = assess_file(tmp_path, daemon_status(updated_at=stamp), mtime=NOW - 2000, pid_info=alive(started=NOW - 5000))
    assert (res["stalled"], res["measured_from"]) == (True, "file_mtime")
    assert res["seconds_since_update"] == pytest.approx(2000)


def test_without_updated_at_the_step_must_move(tmp_path):
    doc = {"current_step": 300, "phase": "train"}
    status = tp.read_status(write_status(tmp_path, doc, mtime=NOW - 100))
    since, state = tp.track_step(status, None, NOW)
    assert since == NOW - 100 and state["step"] == 300      # first seen: counts from the file's last write
    # The daemon rewrites the file (a heartbeat) but the step stays: the kept state wins over the mtime.
    status = tp.read_status(write_status(tmp_path, doc, mtime=NOW + 950))
    since, kept = tp.track_step(status, state, NOW + 1000)
    assert since == NOW - 100 and kept is state
    res = tp.assess(status, NOW + 1000, step_since=since)
    assert (res["reason"], res["measured_from"]) == ("step_stall", "current_step")
    assert "has not moved for 18 min at step 300" in res["message"]
    # the step moves: the clock starts again
    status = tp.read_status(write_status(tmp_path, dict(doc, current_step=301), mtime=NOW + 1010))
    since, state = tp.track_step(status, kept, NOW + 1020)
    assert since == NOW + 1010 and state["step"] == 301
    assert tp.assess(status, NOW + 1020, step_since=since)["reason"] == "ok"


@pytest.mark.parametrize("bad", [0, -5, "900", True, float("inf"), None])
def test_thresholds_must_be_positive_numbers(bad):
    with pytest.raises(ValueError, match="stall_timeout must be a positive number of seconds"):
        tp.assess({"current_step": 1}, NOW, stall_timeout=bad)


def test_every_reason_has_a_status_and_a_fix():
    assert set(tp.VERDICTS) == set(tp.REASONS)
    for reason, (status, fix) in tp.VERDICTS.items():
        assert status in ("ok", "warn", "fail") and (fix is None) == (reason == "ok")


def test_evaluate_gives_check_model_problems(tmp_path):
    stalled = assess_file(tmp_path, daemon_status(updated=NOW - 5000))
    problems, _text, details = tp.evaluate(stalled, "progress", fail_status="warn")   # a soft check
    assert [(p["check"], p["status"], p["details"]["reason"]) for p in problems] == [("progress", "warn", "step_stall")]
    assert problems[0]["fix"] == tp.VERDICTS["step_stall"][1] and details["stalled"] is True
    problems, text, _details = tp.evaluate(assess_file(tmp_path, daemon_status()), "progress")
    assert problems == [] and text.startswith("progressing")


# ---------------------------------------------------------------------------------------------
# processes

def spawn(code, new_session=True):
    """A real child running ``code``; it prints 'ready' once its signal handlers are in place."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=new_session)
    assert proc.stdout.readline().strip() == b"ready"
    return proc


SLEEPER = "import time; print('ready', flush=True); time.sleep(600)"
STUBBORN = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
            "time.sleep(600)")
FAMILY = ("import os, signal, subprocess, sys, time\n"
          "child = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
          "signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(600)'], stdout=subprocess.PIPE)\n"
          "child.stdout.readline()\n"
          "print('ready', flush=True); print(child.pid, flush=True); time.sleep(600)\n")


@pytest.fixture
def children():
    made = []
    yield made
    for proc in made:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait(5)


def test_process_info_of_a_live_a_zombie_and_a_gone_process(children):
    proc = spawn(SLEEPER)
    children.append(proc)
    info = tp.process_info(proc.pid)
    assert info["alive"] and info["pgid"] == proc.pid and info["ppid"] == os.getpid()
    assert abs(info["started_at"] - time.time()) < 30
    os.kill(proc.pid, signal.SIGKILL)
    for _attempt in range(200):
        if tp.process_info(proc.pid)["state"] == "Z":
            break
        time.sleep(0.01)
    assert tp.process_info(proc.pid)["alive"] is False        # a zombie is gone
    proc.wait()
    assert tp.process_info(proc.pid) == {"pid": proc.pid, "alive": False, "state": None, "ppid": None,
                                         "pgid": None, "started_at": None, "kthread": False, "error": None}


def test_daemon_info_from_the_pid_file(tmp_path, children):
    proc = spawn(SLEEPER)
    children.append(proc)
    pid_file = tmp_path / ".daemon.pid"
    pid_file.write_text("%d\n" % proc.pid)
    info = tp.daemon_info(str(pid_file))
    assert info["alive"] and info["pid"] == proc.pid and info["message"] is None
    assert tp.daemon_info(str(pid_file), match="python")["alive"]
    info = tp.daemon_info(str(pid_file), match="training_daemon.py")
    assert not info["alive"] and "not the daemon (no 'training_daemon.py' in its command line)" in info["message"]
    # The PID file was written long before this process started: its number was reused.
    os.utime(pid_file, (time.time() - 3600, time.time() - 3600))
    info = tp.daemon_info(str(pid_file))
    assert not info["alive"] and "is another process, started" in info["message"]


@pytest.mark.parametrize("content, words", [
    (None, "no PID file at"), ("", "does not hold a PID"), ("daemon\n", "does not hold a PID"),
    ("0\n", "does not hold a PID"), ("4194303\n", "is gone"),
    ("999999999\n", "'999999999' is no process ID (PIDs run from 1 to 4194304)"),   # beyond any kernel's pid_max
    ("99999999999999999999\n", "is no process ID"),
    ("\u00b2\n", "does not hold a PID"),   # a digit to str.isdigit, none to int()
])
def test_daemon_info_bad_pid_files(tmp_path, content, words):
    pid_file = tmp_path / ".daemon.pid"
    if content is not None:
        pid_file.write_text(content)
    info = tp.daemon_info(str(pid_file))
    assert info["alive"] is False and words in info["message"]


def test_daemon_info_does_not_hang_on_a_fifo(tmp_path):
    os.mkfifo(tmp_path / ".daemon.pid")
    info = tp.daemon_info(str(tmp_path / ".daemon.pid"))
    assert not info["alive"] and "is a fifo" in info["message"]


def pid_file_for(tmp_path, pid, mtime=None):
    path = tmp_path / ".daemon.pid"
    path.write_text("%d\n" % pid)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return str(path)


def test_a_command_line_longer_than_4_kib_is_read(tmp_path, children):
    # torchrun / deepspeed launches with many arguments: the match may sit past the first 4 KiB
    args = ["--dataset_path=/data/shard-%05d.parquet" % i for i in range(150)] + ["--role=training_daemon"]
    proc = subprocess.Popen([sys.executable, "-c", SLEEPER] + args, stdout=subprocess.PIPE, start_new_session=True)
    children.append(proc)
    assert proc.stdout.readline().strip() == b"ready"
    with open("/proc/%d/cmdline" % proc.pid, "rb") as handle:
        assert len(handle.read()) > 4096
    info = tp.daemon_info(pid_file_for(tmp_path, proc.pid), match="training_daemon")
    assert info["alive"] and info["message"] is None


def test_a_command_line_that_cannot_be_read_is_unknown_not_another_process(tmp_path, children, monkeypatch):
    proc = spawn(SLEEPER)
    children.append(proc)
    real_open = tp._files.open_regular

    def refuse(path, *args):
        if path.endswith("/cmdline"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args)
    monkeypatch.setattr(tp._files, "open_regular", refuse)
    info = tp.daemon_info(pid_file_for(tmp_path, proc.pid), match="training_daemon")
    assert (info["alive"], info["unknown"]) == (False, True)
    assert info["message"] == ("cannot tell whether PID %d is the daemon: its command line cannot be read: "
                               "Permission denied" % proc.pid)
    assert "''" not in info["message"]


def test_a_stat_that_cannot_be_read_is_unknown(tmp_path, children, monkeypatch):
    proc = spawn(SLEEPER)
    children.append(proc)
    real_read = tp.read_text

    def refuse(path, *args):
        if path.endswith("/%d/stat" % proc.pid):
            raise PermissionError(13, "Permission denied", path)
        return real_read(path, *args)
    monkeypatch.setattr(tp, "read_text", refuse)
    info = tp.daemon_info(pid_file_for(tmp_path, proc.pid))
    assert (info["alive"], info["unknown"]) == (False, True) and "its stat cannot be read: Permission denied" \
        in info["message"]


def test_a_process_hidden_by_hidepid_is_unknown_not_gone(tmp_path, monkeypatch):
    hidden = 4194303   # no /proc entry; the kernel answers EPERM: it exists, another user's (hidepid=2)
    real_kill = os.kill

    def kill(pid, sig):
        if pid == hidden and sig == 0:
            raise PermissionError(1, "Operation not permitted")
        return real_kill(pid, sig)
    monkeypatch.setattr(tp.os, "kill", kill)
    info = tp.daemon_info(pid_file_for(tmp_path, hidden), match="training_daemon")
    assert (info["alive"], info["unknown"]) == (False, True)
    assert "cannot tell whether PID %d is the daemon: it exists, but /proc hides it" % hidden in info["message"]
    monkeypatch.setattr(tp.os, "kill", real_kill)
    info = tp.daemon_info(pid_file_for(tmp_path, hidden), match="training_daemon")
    assert (info["alive"], info["unknown"]) == (False, False) and "is gone" in info["message"]


def test_a_kernel_thread_is_never_the_daemon(tmp_path):
    for match in (None, ""):   # also without daemon_match
        info = tp.daemon_info(pid_file_for(tmp_path, 2), match=match)
        assert not info["alive"] and "PID 2 from %s is a kernel thread, not the daemon" % (tmp_path / ".daemon.pid") \
            in info["message"]


def test_a_pid_file_written_before_its_process_started_is_reuse_only_without_a_matching_command_line(
        tmp_path, children):
    proc = spawn(SLEEPER)
    children.append(proc)
    # the PID file's time is 30 s before the process started (a clock stepped at boot, an NFS server's clock)
    early = pid_file_for(tmp_path, proc.pid, mtime=tp.process_info(proc.pid)["started_at"] - 30)
    assert tp.daemon_info(early, match="time.sleep")["alive"]
    info = tp.daemon_info(early)   # no daemon_match: the start time alone decides
    assert not info["alive"] and "is another process, started 30 s after the PID file was written" in info["message"]
    info = tp.daemon_info(early, match="training_daemon")   # another program under a reused number
    assert not info["alive"] and "not the daemon (no 'training_daemon' in its command line)" in info["message"]


def test_only_a_process_proven_to_be_the_daemon_is_stopped(tmp_path, children):
    proc = spawn(SLEEPER)
    children.append(proc)
    info = tp.daemon_info(pid_file_for(tmp_path, proc.pid))
    assert info["alive"]
    assert "no daemon_match is set, so nothing proves that PID %d is the daemon" % proc.pid \
        in tp.stop_refusal(info, None)
    assert tp.stop_refusal(info, "") and tp.stop_refusal(info, "time.sleep") is None
    unknown = {"pid": proc.pid, "alive": False, "unknown": True, "message": "cannot tell whether PID 7 is the daemon"}
    assert tp.stop_refusal(unknown, "time.sleep") == unknown["message"]


def test_an_unknown_daemon_leaves_a_stall_unknown_and_unstopped(tmp_path):
    unknown = {"pid": 4242, "alive": False, "unknown": True, "started_at": None,
               "message": "cannot tell whether PID 4242 is the daemon: its command line cannot be read: Permission denied"}
    res = assess_file(tmp_path, daemon_status(updated=NOW - 5000), pid_info=unknown)
    assert (res["stalled"], res["reason"], res["status"]) == (False, "step_stall", "unknown")
    assert res["message"].endswith("; " + unknown["message"])
    assert assess_file(tmp_path, daemon_status(updated=NOW - 30), pid_info=unknown)["status"] == "ok"


def test_stop_group_terminates_with_sigterm(children):
    proc = spawn(SLEEPER)
    children.append(proc)
    out = tp.stop_group(proc.pid, term_wait=5)
    assert (out["terminated"], out["killed"], out["gone"], out["already_gone"]) == (True, False, True, False)
    assert out["signalled"] == "group" and out["pgid"] == proc.pid
    assert proc.wait(5) == -signal.SIGTERM


def test_stop_group_kills_what_ignores_sigterm_after_the_wait(children):
    proc = spawn(STUBBORN)
    children.append(proc)
    out = tp.stop_group(proc.pid, term_wait=0.3)
    assert (out["terminated"], out["killed"], out["gone"]) == (False, True, True)
    assert proc.wait(5) == -signal.SIGKILL


def test_stop_group_stops_the_whole_group(children):
    proc = spawn(FAMILY)
    children.append(proc)
    grandchild = int(proc.stdout.readline())
    out = tp.stop_group(proc.pid, term_wait=0.3)
    assert out["killed"] and out["gone"] and grandchild in out["pids"]   # the grandchild ignored SIGTERM
    assert not tp.process_info(grandchild)["alive"]


def test_stop_group_of_a_gone_process_and_twice(children):
    proc = spawn(SLEEPER)
    children.append(proc)
    first = tp.stop_group(proc.pid, term_wait=5)
    proc.wait(5)
    second = tp.stop_group(proc.pid, term_wait=5)
    assert first["terminated"] and second["already_gone"] and not second["signalled"] and second["gone"]


def test_stop_group_never_signals_the_callers_own_group(children):
    proc = spawn(SLEEPER, new_session=False)   # in this test's own process group
    children.append(proc)
    out = tp.stop_group(proc.pid, term_wait=5)
    assert out["signalled"] == "processes" and out["terminated"]
    assert proc.wait(5) == -signal.SIGTERM   # and this process is still here to see it


# Named, not numbered: parallel test workers must collect the same test ids (their PIDs differ).
@pytest.mark.parametrize("which", ["init", "self", "parent", "zero", "negative", "bool"])
def test_stop_group_refuses_init_itself_and_its_parents(which):
    pid = {"init": 1, "self": os.getpid(), "parent": os.getppid(), "zero": 0, "negative": -3, "bool": True}[which]
    with pytest.raises(ValueError, match="refusing to stop PID"):
        tp.stop_group(pid, term_wait=1)


def test_a_daemon_running_as_pid_1_is_alive_but_never_stopped(tmp_path):
    # in a container, checked with --local, the daemon is init: only stopping it is refused
    (tmp_path / ".daemon.pid").write_text("1\n")
    with open("/proc/1/cmdline", "rb") as handle:
        word = os.path.basename(handle.read().split(b"\0")[0].decode())
    info = tp.daemon_info(str(tmp_path / ".daemon.pid"), match=word)
    assert info["alive"] and info["message"] is None and not info["unknown"]
    assert "refusing to stop PID 1" in tp.stop_refusal(info, word)


def test_stop_group_leaves_a_reused_number_alone(children):
    proc = spawn(SLEEPER)
    children.append(proc)
    out = tp.stop_group(proc.pid, term_wait=5, leader_gone=True)   # "my job ended; this PID is someone else's"
    assert out["already_gone"] and not out["signalled"] and proc.poll() is None


# ---------------------------------------------------------------------------------------------
# GPU memory

class LocalProbeModule(object):
    """What _gpus.probe needs of a module when no GPU tool runs (tool=sysfs)."""
    check_mode = False

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return None

    def warn(self, message):
        pass


def kfd_rig(root, procs):
    add_gpu(root, BDF, card=0)
    add_kfd(root, [(41840, BDF, 110000)], procs)
    return {"tool": "sysfs", "sysfs_root": root}


def test_vram_orphans_are_the_given_pids_holding_memory():
    listed = [{"pid": 1, "bdf": BDF, "index": 0, "vram_bytes": 2 << 30, "name": "python3"},
              {"pid": 2, "bdf": BDF, "index": 0, "vram_bytes": 0, "name": "python3"},
              {"pid": 3, "bdf": BDF, "index": None, "vram_bytes": 1 << 20, "name": "other"}]
    assert tp.vram_orphans(listed, [1, 2]) == [{"pid": 1, "gpu": 0, "bdf": BDF, "vram_bytes": 2 << 30, "name": "python3"}]
    assert tp.vram_orphans(listed, [3])[0]["gpu"] == BDF
    assert tp.vram_orphans(listed, [9]) == []


def test_verify_vram_through_the_probe(tmp_path):
    opts = kfd_rig(str(tmp_path), [(4242, 41840, 2 << 30), (77, 41840, 1 << 20)])
    out = tp.verify_vram(LocalProbeModule(), [4242], 1.0, opts)
    assert out["vram_released"] is False and [o["pid"] for o in out["orphans"]] == [4242]
    assert tp.verify_vram(LocalProbeModule(), [5555], 1.0, opts)["vram_released"] is True
    out = tp.verify_vram(LocalProbeModule(), [4242], 1.0, {"tool": "sysfs", "sysfs_root": str(tmp_path / "none")})
    assert out["vram_released"] is None and "cannot list GPU processes" in out["error"]


def test_stop_and_verify_reports_memory_left_by_a_killed_process(tmp_path, children):
    proc = spawn(STUBBORN)
    children.append(proc)
    opts = kfd_rig(str(tmp_path), [(proc.pid, 41840, 3 << 30)])   # its record stays: "memory not released"
    out = tp.stop_and_verify(LocalProbeModule(), proc.pid, term_wait=0.2, kill_wait=2, verify_timeout=0.6,
                             probe_options=opts)
    assert out["killed"] and out["gone"] and out["vram_released"] is False
    assert [(o["pid"], o["gpu"], o["bdf"], o["vram_bytes"]) for o in out["orphans"]] == [(proc.pid, 0, BDF, 3 << 30)]


# ---------------------------------------------------------------------------------------------
# systemd's view and the log

SHOW_FAILED = ("LoadState=loaded\nActiveState=failed\nSubState=failed\nResult=start-limit-hit\nNRestarts=4\n"
               "MainPID=0\nExecMainStatus=1\n")


def test_unit_verdicts():
    props = tp.parse_unit_show(SHOW_FAILED)
    assert props["NRestarts"] == 4 and props["MainPID"] == 0
    status, severity, text = tp.unit_verdict(props)
    assert (status, severity) == ("fail", "hard") and "start limit was hit" in text and "NRestarts=4" in text
    restarting = tp.parse_unit_show("ActiveState=activating\nSubState=auto-restart\nNRestarts=1\n")
    assert tp.unit_verdict(restarting)[:2] == ("warn", "soft")
    assert tp.unit_verdict(tp.parse_unit_show("ActiveState=inactive\nSubState=dead\nResult=success\n")) is None
    assert tp.unit_verdict({"LoadState": "not-found"})[0] == "unknown"


def test_append_event_writes_json_lines_and_rotates(tmp_path):
    log = str(tmp_path / "logs" / "watchdog.log")
    tp.append_event(log, {"event": "stopped", "pid": 1, "message": "caf\udcc3"})   # a stray byte: made valid UTF-8
    tp.append_event(log, {"event": "stopped", "pid": 2})
    with open(log, encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle]
    assert [r["pid"] for r in lines] == [1, 2]
    tp.append_event(log, {"event": "stopped", "pid": 3, "pad": "x" * 200}, max_bytes=200)
    assert [json.loads(line)["pid"] for line in open(log + ".1")] == [1, 2]
    assert [json.loads(line)["pid"] for line in open(log)] == [3]


def test_append_event_refuses_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "watchdog.log")
    with pytest.raises(ValueError, match="is a fifo"):
        tp.append_event(str(tmp_path / "watchdog.log"), {"event": "stopped"})


def test_paths_stay_inside_the_base_dir(tmp_path):
    files = tp.paths(str(tmp_path))
    assert files["status_file"] == str(tmp_path / "status" / "training_status.json")
    assert files["log_file"] == str(tmp_path / "logs" / "watchdog.log")
    assert tp.paths(str(tmp_path), pid_file="none")["pid_file"] is None
    with pytest.raises(ValueError, match="leaves the training base dir"):
        tp.paths(str(tmp_path), status_file="../../etc/shadow")
    with pytest.raises(ValueError, match="must be an absolute path"):
        tp.paths("relative/dir")


# ---------------------------------------------------------------------------------------------
# docs/TRAINING.md ("Watchdog and job control") is held to the tables here

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "docs", "TRAINING.md")


def test_the_docs_list_every_reason_with_its_status_and_every_phase_word():
    with open(DOC, encoding="utf-8") as handle:
        text = handle.read()
    table = text.split("#### The verdicts", 1)[1].split("\n### ", 1)[0]
    rows = dict((m.group(1), m.group(2)) for m in re.finditer(r"^\| `(\w+)` \| (\w+) \|", table, re.M))
    assert rows == dict((reason, status) for reason, (status, _fix) in tp.VERDICTS.items())
    for word in phases(tp.EVALUATING) | phases(tp.SETTLED):
        assert "`%s`" % word in text, word
    assert "more than %d s in the future" % tp.SKEW_TOLERANCE in text


def test_the_watchdog_matches_the_daemon_as_training_health_does():
    # the watchdog stops only a process proven to be the daemon: it needs a daemon_match by default
    import yaml
    root = os.path.join(os.path.dirname(DOC), "..")

    def load(*parts):
        with open(os.path.join(root, *parts), encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    watchdog = load("roles", "training_watchdog", "defaults", "main.yml")["training_watchdog_daemon_match"]
    assert watchdog and watchdog == load("roles", "training_health", "defaults", "main.yml")["training_health_daemon_match"]
    spec = load("roles", "training_watchdog", "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert spec["training_watchdog_daemon_match"]["default"] == watchdog
    with open(DOC, encoding="utf-8") as handle:
        assert "| `training_watchdog_daemon_match` | `%s` |" % watchdog in handle.read()


class FailingSystemctl(LocalProbeModule):
    """systemctl that exits 1 with ``stderr``."""

    def __init__(self, stderr):
        self.stderr = stderr

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return "/testbin/%s" % name

    def run_command(self, cmd, **_kw):
        return 1, "", self.stderr


def test_a_failing_systemctl_is_named_by_the_first_line_it_printed_bounded():
    out = tp.unit_state(FailingSystemctl("\n  Failed to connect to bus:\t No such file  \nsecond\n"), "t.service")
    assert out["error"] == "systemctl show t.service: Failed to connect to bus: No such file"
    out = tp.unit_state(FailingSystemctl("x" * 100000 + "\n"), "t.service")
    assert out["error"] == "systemctl show t.service: " + "x" * 200
    assert tp.unit_state(FailingSystemctl(" \n"), "t.service")["error"] == "systemctl show t.service: exit 1"


def test_digits_int_refuses_are_no_step_and_no_unit_number(tmp_path):
    path = str(tmp_path / "status.json")
    with open(path, "w") as handle:
        json.dump({"current_step": "\u00b2"}, handle)
    verdict = tp.assess(tp.read_status(path), NOW)
    assert verdict["reason"] == tp.STATUS_CORRUPT and "current_step '\u00b2'" in verdict["message"]
    assert tp.track_step(tp.read_status(path), None, NOW) == (None, None)
    assert tp.parse_unit_show("NRestarts=\u00b2\nMainPID=12\n") == {"NRestarts": "\u00b2", "MainPID": 12}
