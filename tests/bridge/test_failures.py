"""Failed tasks are captured as they happen: logged, appended to a JSON-lines log, queried afterwards.

(The unreachable host's record, its log line and the CLI query are in test_api.py, on its shared run.)"""

from __future__ import annotations

import fcntl
import os

import pytest

import gpuops_preflight as gp
from gpuops_preflight import failures
from bridge.helpers import run_options


def test_failed_module_record_has_the_full_error(scenario, tmp_path):
    sc = scenario("healthy")
    log = str(tmp_path / "failures.jsonl")
    report = gp.run_preflight(sc.step, inventory=sc.inventory, failure_log=log,
                              extravars={"ansible_python_interpreter": "/nonexistent/python3"}, **run_options(tmp_path))
    assert [(i.host, i.check) for i in report.hard_failures] == [("rig-6600", "probe")]
    [rec] = gp.query_failures(log, include_verdicts=False)
    assert rec["ignored"] and not rec["unreachable"]
    assert rec["rc"] == 127 and "/nonexistent/python3" in rec["stderr"]
    assert rec["message"] and rec["module_args"]
    # no GPU facts from this run: the last state this process saw for the host, marked as such
    assert rec["gpu_state"] is None or rec["gpu_state"]["source"] == "earlier run"


def test_query_filters_and_skips_broken_lines(tmp_path):
    log = tmp_path / "f.jsonl"
    failures.append(str(log), [{"host": "a", "step": 1, "kind": "preflight", "epoch": 100.0, "task": "X one"},
                               {"host": "b", "step": 2, "kind": "cleanup", "epoch": 200.0, "task": "Y two"}])
    with open(log, "a") as handle:
        handle.write('{"host": "c", "cut')
    assert [r["host"] for r in failures.query(str(log))] == ["a", "b"]
    assert [r["host"] for r in failures.query(str(log), since=150)] == ["b"]
    assert [r["host"] for r in failures.query(str(log), since="1970-01-01T00:02:30Z")] == ["b"]
    assert [r["host"] for r in failures.query(str(log), task="one")] == ["a"]
    assert [r["host"] for r in failures.query(str(log), step="2", kind="cleanup")] == ["b"]
    assert [r["host"] for r in failures.query(str(log), limit=1)] == ["b"]
    assert failures.query(str(tmp_path / "none.jsonl")) == []


def test_ssh_address():
    assert failures.ssh_address("ssh: connect to host 10.0.0.5 port 22: No route to host") == "10.0.0.5"
    assert failures.ssh_address("ssh: Could not resolve hostname rig-9: Name or service not known") == "rig-9"
    assert failures.ssh_address("something else") is None
    assert failures.ssh_address("ssh: connect to host 2001:db8::1 port 22: Network is unreachable") == "2001:db8::1"
    assert failures.ssh_address("ssh: connect to host [2001:db8::1] port 22: Connection refused") == "2001:db8::1"
    assert failures.ssh_address("ssh: connect to host [fe80::1%eth0]:2222 refused") == "fe80::1%eth0"


def test_a_logged_failure_passes_no_escape_sequence_and_stays_on_one_line(caplog):
    evil = ("nvidia-smi: \x1b]0;pwned\x07\x1b[2J\x1b[H\r\x1b[1A\u202e\x9b31m"
            "\nPreflight PASSED for step 3 (4 host(s), 48 usable GPU(s))")
    event = {"event": "runner_on_failed",
             "event_data": {"host": "rig\x1b[31m-1", "task": "GPU\nfacts\x07", "res": {"msg": evil}}}
    rec = failures.record(event, run_id="r1", kind="preflight", step=3, gpu=None)
    with caplog.at_level("DEBUG", logger="gpuops_preflight.failures"):
        failures.log_record(rec)
    (line,) = [r.getMessage() for r in caplog.records]
    assert "\n" not in line and "\r" not in line
    assert line.isprintable(), repr(line)
    assert rec["message"] == evil  # the record itself keeps the whole message


def test_huge_module_args_are_cut_to_the_stated_limit():
    event = {"event": "runner_on_failed",
             "event_data": {"host": "a", "task": "t", "res": {"invocation": {"module_args": {"x": "y" * 5_000_000}}}}}
    rec = failures.record(event, run_id="r1", kind="preflight", step=3, gpu=None)
    assert isinstance(rec["module_args"], str)
    assert len(rec["module_args"]) < failures.MAX_TEXT + 100
    small = dict(event, event_data=dict(event["event_data"], res={"invocation": {"module_args": {"x": 1}}}))
    assert failures.record(small, run_id="r1", kind="preflight", step=3, gpu=None)["module_args"] == {"x": 1}


def test_append_never_waits_for_ever_and_never_writes_into_something_else(tmp_path, monkeypatch):
    """A writer that holds the log's lock (a stuck process) costs a bounded wait and an OSError the run logs;
    a FIFO or a folder named like the log is refused, never written into or waited on."""
    log = tmp_path / "f.jsonl"
    failures.append(str(log), [{"host": "a"}])
    monkeypatch.setattr(failures, "APPEND_LOCK_TIMEOUT", 0.2)
    with open(log, "a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with pytest.raises(OSError, match="another process held the lock for more than 0.2 s"):
            failures.append(str(log), [{"host": "b"}])
    assert [r["host"] for r in failures.query(str(log))] == ["a"]
    failures.append(str(log), [{"host": "c"}])   # the lock is free again
    assert [r["host"] for r in failures.query(str(log))] == ["a", "c"]
    os.mkfifo(str(tmp_path / "fifo.jsonl"))
    (tmp_path / "dir.jsonl").mkdir()
    for other, what in (("fifo.jsonl", "a fifo"), ("dir.jsonl", "a directory")):
        with pytest.raises(OSError, match="is %s, not a regular file" % what):
            failures.append(str(tmp_path / other), [{"host": "d"}])


def test_the_query_command_says_when_there_is_no_log_to_read(tmp_path, capsys, monkeypatch):
    from gpuops_preflight import cli

    monkeypatch.delenv("GPUOPS_PREFLIGHT_FAILURE_LOG", raising=False)
    assert cli.main(["failures"]) == 2
    assert "no failure log: give --log or set $GPUOPS_PREFLIGHT_FAILURE_LOG" in capsys.readouterr().err
    missing = tmp_path / "failures.jsonl"
    assert cli.main(["failures", "--log", str(missing)]) == 0
    out = capsys.readouterr()
    assert out.out == "" and "%s does not exist: no failure is recorded there" % missing in out.err


def test_the_gpu_state_of_a_result_keeps_only_facts_of_their_shape():
    # a host module that is not this collection's: one GPU entry that is text raised, and the host's
    # progress result and its failure records were lost
    state = failures.gpu_state({"gpus": [{"index": 0, "health": "ok", "extra": 1}, "GPU 1"], "gpu_count": "2",
                                "gpu_tool": ["rocm-smi"], "usable_gpus": [0], "processes": "none"})
    assert state["gpus"] == [] and state["gpu_count"] is None and state["gpu_tool"] is None
    assert state["usable_gpus"] == [0] and state["processes"] is None
    well_formed = failures.gpu_state({"gpus": [{"index": 0, "health": "ok", "extra": 1}], "gpu_count": 1})
    assert well_formed["gpus"] == [{"index": 0, "health": "ok"}] and well_formed["gpu_count"] == 1


def test_a_line_left_half_written_never_costs_the_next_record(tmp_path):
    """A writer killed mid-line (or a full disk) left a line without its newline: the next record starts a
    line of its own, so it is read back; the earlier whole lines stay as they were."""
    log = tmp_path / "f.jsonl"
    failures.append(str(log), [{"host": "a"}])
    with open(log, "a") as handle:
        handle.write('{"host": "b", "cut')
    failures.append(str(log), [{"host": "c"}])
    failures.append(str(log), [{"host": "d"}])
    assert [r["host"] for r in failures.query(str(log))] == ["a", "c", "d"]
    assert log.read_text().splitlines()[1] == '{"host": "b", "cut'


def test_concurrent_writers_keep_every_long_line_whole(tmp_path):
    """Two WATCHER processes append at once, each record near the size limit: every line is read back whole."""
    import subprocess
    import sys

    log = str(tmp_path / "f.jsonl")
    script = ("import sys\nfrom gpuops_preflight import failures\n"
              "for i in range(20):\n"
              "    failures.append(sys.argv[1], [{'host': '%s%d' % (sys.argv[2], i), 'message': 'm' * 3 * failures.MAX_TEXT}])\n")
    writers = [subprocess.Popen([sys.executable, "-c", script, log, name]) for name in ("p", "q")]
    try:
        assert [proc.wait(120) for proc in writers] == [0, 0]
    finally:
        for proc in writers:
            proc.kill()
            proc.wait()
    records = failures.query(log)
    assert sorted(r["host"] for r in records) == sorted("%s%d" % (n, i) for n in ("p", "q") for i in range(20))
    assert all(len(r["message"]) == 3 * failures.MAX_TEXT for r in records)


@pytest.mark.parametrize("kwargs, said", [
    (dict(path=5), "path must be the failure log's path, got 5"),
    (dict(path="f.jsonl\0x"), "path: a path cannot hold a NUL byte"),
    (dict(task=5), "task must be text, got 5"),
    (dict(host=["a"]), "host must be text, got ['a']"),
    (dict(kind=b"preflight"), "kind must be text, got b'preflight'"),
    (dict(run_id=7), "run_id must be text, got 7"),
    (dict(include_verdicts="no"), "include_verdicts must be True or False, got 'no'"),
    (dict(since=10 ** 400), "since: invalid time: a number too large to be a time"),
])
def test_query_input_of_the_wrong_type_is_a_value_error_naming_it(tmp_path, kwargs, said):
    """WATCHER's query_failures with bad input: a ValueError saying which argument, never TypeError,
    AttributeError or OverflowError from deep inside, and never a silent empty answer (a NUL in the path)."""
    log = str(tmp_path / "f.jsonl")
    failures.append(log, [{"host": "a", "step": 3, "epoch": 5.0, "task": "t", "verdict": True}])
    kwargs.setdefault("path", log)
    with pytest.raises(ValueError) as raised:
        failures.query(**kwargs)
    assert said in str(raised.value)
    assert [r["host"] for r in failures.query(log, include_verdicts=True)] == ["a"]
