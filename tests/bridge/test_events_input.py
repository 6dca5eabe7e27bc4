"""Malformed or oversized events from the stream: the summary, the stop's verdict and the pending list survive."""

from __future__ import annotations

import pytest

from gpuops_preflight import events as ev
from gpuops_preflight import oplog, progress, runner
from gpuops_preflight.report import Report

NODE = dict(role="preflight", resolved_action="gpuops.preflight.node_preflight", task="Run the node checks")


def collector():
    return ev.Collector("preflight", "run1", "3")


def test_a_malformed_stat_keeps_the_summary_of_the_same_event():
    c = collector()
    c({"event": "playbook_on_stats", "event_data": {"ok": 5, "dark": ["x"],
                                                    "artifact_data": {c.stats_key: {"blocked": False}}}})
    assert c.summary == {"blocked": False} and c.stats["ok"] == {} and c.stats["dark"] == {}


def test_error_text_is_capped_per_line_and_in_total():
    c = collector()
    c({"event": "error", "stdout": "E" * 5_000_000})
    assert len(c.error_lines) == 1 and len(c.error_lines[0]) < ev.MAX_LINE_CHARS + 40
    c({"event": "error", "stdout": "\n".join(["F" * 3000] * 150)})
    assert sum(map(len, c.error_lines)) < ev.MAX_ERROR_CHARS + ev.MAX_LINE_CHARS + 40
    c({"event": "error", "stdout": b"ERROR! bytes"})  # never raises
    c(["not", "an", "event"])
    c({"event": "runner_on_ok", "event_data": "garbage"})


def test_a_malformed_node_result_never_turns_a_timeout_into_an_error():
    c = collector()
    c({"event": "runner_on_start", "event_data": dict(NODE, host="h1")})
    c({"event": "runner_on_start", "event_data": dict(NODE, host="h2")})
    try:
        c({"event": "runner_on_ok", "event_data": dict(NODE, host="h1", res={"checks": {"ramdisk": "pass"}})})
    except Exception:
        pass  # runner's on_event logs it and goes on
    report = Report(kind="preflight", step="3", status="error", run_id="r", started_at=None, finished_at=None,
                    duration_s=0.0, timeout_s=5)
    runner._build(report, c, "timeout", None, {}, "/nonexistent")
    assert report.status == "timeout" and report.pending["hosts"] == ["h2"]


def _problem(check, status, message):
    return {"check": check, "status": status, "message": message, "fix": "look"}


# One host's check results from the event stream, each row malformed in its own way but two.
MALFORMED_ROWS = {
    "ramdisk": "pass",                                                        # not a mapping
    "inputs": {"status": "passed", "message": "all there"},                   # a status outside the model
    "gpu_count": {"message": "12 GPUs", "problems": []},                      # no status
    "vram": {"status": "ok", "problems": "none"},                             # problems not a list
    "kernel_log": {"status": "warn", "problems": [{"status": "warn", "message": "m"}]},  # a problem naming no check
    "gpu_temperature": {"status": "ok", "message": "x" * 1_000_000, "elapsed_s": "soon"},  # elapsed_s text
    "ramdisk_space": {"status": "unknown", "problems": []},                   # unknown, and nothing says why
    "gpu_health": {"status": "fail", "problems": [_problem("gpu_health", "fail", "GPU 3 is lost"), 7]},
    "gpu_available": {"status": "ok", "message": "12 usable"},               # well-formed
}


def _stream_with_malformed_results():
    """h1 reports well, h2 with malformed rows, h3 with checks that are no mapping, h4 with a text result."""
    seen = []
    c = ev.Collector("preflight", "run1", "3", progress=seen.append)
    for host in ("h1", "h2", "h3", "h4", "h5"):
        c({"event": "runner_on_start", "event_data": dict(NODE, host=host)})
    good = {"ramdisk": {"name": "ramdisk", "status": "ok", "message": "2 file(s) staged", "problems": []},
            "vram": {"status": "warn", "message": "busy", "problems": [_problem("vram", "warn", "VRAM in use")]}}
    for host, res in (("h1", {"checks": good}), ("h2", {"checks": MALFORMED_ROWS}),
                      ("h3", {"checks": ["ramdisk", "ok"]}), ("h4", "all good, trust me")):
        c({"event": "runner_on_ok", "event_data": dict(NODE, host=host, res=res)})
    return c, {r.host: r for r in seen}


def test_malformed_check_rows_are_unknown_and_say_why_and_cost_no_other_row_or_host():
    c, results = _stream_with_malformed_results()
    report = Report(kind="preflight", step="3", status="error", run_id="r", started_at=None, finished_at=None,
                    duration_s=0.0, timeout_s=5)
    runner._build(report, c, "timeout", None, {}, "/nonexistent")
    assert report.status == "timeout" and report.error is None and report.pending["hosts"] == ["h5"]
    hosts = report.hosts
    # the host that reported well keeps every row, as it came
    assert hosts["h1"]["status"] == "warnings"
    assert {n: r["status"] for n, r in hosts["h1"]["checks"].items()} == {"ramdisk": "ok", "vram": "warn"}
    # the malformed rows: unknown, each saying what was wrong, bounded; the well-formed rows as they came
    rows = hosts["h2"]["checks"]
    assert {n: r["status"] for n, r in rows.items()} == {
        "ramdisk": "unknown", "inputs": "unknown", "gpu_count": "unknown", "vram": "unknown", "kernel_log": "unknown",
        "gpu_temperature": "unknown", "ramdisk_space": "unknown", "gpu_health": "fail", "gpu_available": "ok"}
    said = {n: r["message"] for n, r in rows.items()}
    assert said["ramdisk"] == "the host's ramdisk result cannot be read: it is text ('pass'), not a mapping"
    assert "its status 'passed' is not one of fail, ok, skipped, unknown, warn" in said["inputs"]
    assert "it has no status" in said["gpu_count"]
    assert "its problems are text, not a list" in said["vram"]
    assert "problem 1 has no check" in said["kernel_log"]
    assert "its elapsed_s is text, not a number" in said["gpu_temperature"]
    assert "its status is unknown but no problem says why" in said["ramdisk_space"]
    assert "problem 2 is number, not a mapping" in said["gpu_health"] and "GPU 3 is lost" in said["gpu_health"]
    assert said["gpu_available"] == "12 usable"
    assert all(len(m) <= 300 for n, m in said.items() if n != "gpu_available")
    # judged: never a pass; the failure the malformed gpu_health row did report still blocks
    assert hosts["h2"]["status"] == "blocked"
    unknown = sorted(i.check for i in report.warnings if i.host == "h2" and i.status == "unknown")
    assert unknown == sorted(["ramdisk", "inputs", "gpu_count", "vram", "kernel_log", "gpu_temperature",
                              "ramdisk_space"])
    # the gpu_health row said fail: that it failed stays a failure, beside what it could say
    assert [(i.check, i.status, i.message) for i in report.hard_failures if i.host == "h2"] == [
        ("gpu_health", "fail", "h2: the host's gpu_health result cannot be read: problem 2 is number, not a mapping"),
        ("gpu_health", "fail", "h2: GPU 3 is lost")]
    # a host with nothing readable: its module's report failed (probe), said why; the others unaffected
    probe = {i.host: i.message for i in report.hard_failures if i.check == "probe"}
    assert probe == {"h3": "h3: the preflight module's result cannot be read: its checks are list (['ramdisk', "
                           "'ok']), not a mapping of check names to results",
                     "h4": "h4: the preflight module failed: all good, trust me"}
    assert hosts["h3"]["checks"] == hosts["h4"]["checks"] == {} and hosts["h3"]["error"] == probe["h3"]
    # what progress received agrees with the judge
    assert {h: r.status for h, r in results.items()} == {"h1": "checked", "h2": "checked", "h3": "failed",
                                                         "h4": "failed"}
    assert results["h2"].checks["ramdisk"]["status"] == "unknown" and results["h2"].checks["gpu_available"] == {
        "status": "ok", "message": "12 usable"}
    assert results["h3"].message.startswith("the module's result cannot be read: its checks are list")
    assert results["h4"].message == "all good, trust me"


def test_task_results_that_are_text_are_still_recorded_and_judged(tmp_path, monkeypatch):
    """A failed node task or an unreachable host whose result is text, not a mapping: its failure record is
    written and the host is judged (before, the record raised and the host's failure was lost)."""
    log = str(tmp_path / "failures.jsonl")
    c = ev.Collector("preflight", "run1", 3, failure_log=log)
    c({"event": "runner_on_start", "event_data": dict(NODE, host="h1")})
    c({"event": "runner_on_failed", "event_data": dict(NODE, host="h1", ignore_errors=True,
                                                       res="MODULE FAILURE: Killed")})
    c({"event": "runner_on_unreachable", "event_data": dict(NODE, host="h2",
                                                            res="ssh: connect to host 10.0.0.9 port 22: No route")})
    c({"event": "runner_on_unreachable", "event_data": {"res": {"msg": "no host named"}}})
    c({"event": "runner_on_failed", "event_data": "garbage"})
    records = gp_query(log)
    assert [(r["host"], r["event"], r["message"]) for r in records] == [
        ("h1", "runner_on_failed", "MODULE FAILURE: Killed"),
        ("h2", "runner_on_unreachable", "ssh: connect to host 10.0.0.9 port 22: No route"),
        (None, "runner_on_unreachable", "no host named"), (None, "runner_on_failed", None)]
    assert records[1]["address"] == "10.0.0.9"
    report = Report(kind="preflight", step=3, status="error", run_id="r", started_at=None, finished_at=None,
                    duration_s=0.0, timeout_s=5)
    monkeypatch.setattr(runner.addresses, "lookup", lambda *_args: ({}, []))  # no inventory to read here
    runner._build(report, c, "timeout", None, {}, "/nonexistent")
    assert report.status == "timeout" and report.error is None
    assert sorted(report.hosts) == ["h1", "h2"]
    failed = {(i.host, i.check) for i in report.hard_failures}
    assert failed == {("h1", "probe"), ("h2", "ssh")}
    assert [i.address for i in report.hard_failures if i.check == "ssh"] == ["10.0.0.9"]


def gp_query(log):
    from gpuops_preflight import failures

    return failures.query(log)


def _summary(**changes):
    from gpuops_preflight.collection import module_utils

    summary = module_utils("_summary").build_summary(module_utils("_plan").empty_plan("preflight", "3"), [])
    summary.update(changes)
    return summary


def _built(summary, runner_status="successful", rc=0, stopped=None):
    c = collector()
    c({"event": "playbook_on_stats", "event_data": {"artifact_data": {c.stats_key: summary}}})
    report = Report(kind="preflight", step="3", status="error", run_id="r", started_at=None, finished_at=None,
                    duration_s=0.0, timeout_s=5, runner_status=runner_status, rc=rc)
    runner._build(report, c, stopped, None, {}, "/nonexistent")
    return report


HARD = {"host": "h1", "check": "gpu_count", "message": "h1: 11 GPUs, 12 expected", "status": "fail"}


@pytest.mark.parametrize("summary, said", [
    ({"blocked": False}, "it has no kind"),
    (_summary(blocked="false"), "its blocked is str ('false'), not bool"),
    (_summary(passed=None), "its passed is null (None), not bool"),
    (_summary(hosts=[]), "its hosts is list ([]), not dict"),
    (_summary(kind="cleanup"), "it is a 'cleanup' summary, not a preflight one"),
    (_summary(step=2), "it is step 2's summary, not step 3's"),
    (_summary(step=None), "it is step None's summary, not step 3's"),
    (_summary(hard_failures=[HARD]), "it says passed True and blocked False with 1 hard failure(s)"),
    (_summary(passed=False), "it says passed False and blocked False with 0 hard failure(s)"),
    (_summary(passed=False, blocked=True), "it says passed False and blocked True with 0 hard failure(s)"),
    (_summary(passed=False, blocked=True, hard_failures=[{"host": "h1"}]), "hard_failures entry 1: its check is null"),
    (_summary(warnings=["VRAM busy"]), "warnings entry 1 is str, not a mapping"),
    (_summary(totals=None), "it cannot be read as a report (TypeError"),
    # a host entry the report's log lines, usable_gpus and the CLI's table read: a traceback at WATCHER before
    (_summary(hosts={"h1": "passed"}), "host 'h1': its entry is str, not a mapping"),
    (_summary(hosts={"h1": {"checks": ["ramdisk"]}}), "host 'h1': its checks are list, not a mapping"),
    (_summary(hosts={"h1": {"checks": {"ramdisk": "ok"}}}), "host 'h1': its 'ramdisk' result is str, not a mapping"),
    (_summary(hosts={"h1": {"usable_gpus": 12}}), "host 'h1': its usable_gpus is int (12), not of its shape"),
])
def test_a_summary_that_cannot_be_read_is_never_a_pass(summary, said):
    """A set_stats summary that is malformed, another kind's or another step's is no verdict: the run could
    not be read (error, naming what was wrong), never passed, never a traceback."""
    report = _built(summary)
    oplog.log_report(report)
    assert report.usable_gpus == {} and progress.table_lines(report.hosts) == []
    assert report.status == "error" and not report.passed, report.status
    assert report.error.startswith("the playbook's summary cannot be read: ") and said in report.error, report.error
    assert report.summary is None
    assert report.as_step_result()["blocked_by"] == "preflight_error"


def test_a_summary_that_can_be_read_is_the_verdict():
    assert _built(_summary()).status == "passed"
    blocked = _built(_summary(passed=False, blocked=True, hard_failures=[HARD]), "failed", 2)
    assert blocked.status == "blocked" and [i.check for i in blocked.hard_failures] == ["gpu_count"]


@pytest.mark.parametrize("runner_status, rc", [("failed", 0), ("failed", 2), ("successful", 4), ("failed", 4),
                                               ("timeout", 254), ("canceled", -15), ("failed", -9), (None, None)])
def test_a_pass_from_a_run_that_did_not_end_well_is_an_error(runner_status, rc):
    """ansible-runner's status and rc disagree with a passed verdict (a task failed after it, unreachable
    hosts, the playbook killed): the run cannot be read as a pass; what it found is kept."""
    report = _built(_summary(warnings=[dict(HARD, status="warn")]), runner_status, rc)
    assert report.status == "error" and report.blocked_by == "preflight_error"
    assert report.error == ("the playbook's verdict passed but the run ended with ansible-runner status %s, rc %s"
                            % (runner_status, rc))
    assert [i.check for i in report.warnings] == ["gpu_count"]
    assert "could not run" in report.reason() and str(rc) in report.reason()


def test_a_pass_taken_before_a_timeout_stands():
    assert _built(_summary(), "canceled", -15, stopped="timeout").status == "passed"


def test_bytes_that_are_not_utf8_in_the_events_never_break_a_utf8_sink(tmp_path, monkeypatch):
    """Ansible reads a tool's non-UTF-8 bytes as surrogate escapes ('\\udcff'); they reached the report's
    reason and WATCHER's log handler, which failed to encode them (a 'Logging error' traceback, the line
    lost). Each is now U+FFFD, everywhere the event's text goes."""
    import io
    import json
    import logging

    seen = []
    c = ev.Collector("preflight", "run1", 3, progress=seen.append, failure_log=str(tmp_path / "f.jsonl"))
    c({"event": "error", "stdout": "ERROR! inventory line \udcff\udcfe is not UTF-8"})
    c({"event": "runner_on_start", "event_data": dict(NODE, host="h1")})
    c({"event": "runner_on_failed", "event_data": dict(NODE, host="h1", ignore_errors=True,
                                                       res={"msg": "rocm-smi said \udce9t\udce9", "stdout": "\udcff"})})
    report = Report(kind="preflight", step=3, status="error", run_id="r", started_at=None, finished_at=None,
                    duration_s=0.0, timeout_s=5, runner_status="failed", rc=2)
    runner._build(report, c, None, None, {}, "/nonexistent")
    assert report.error == "inventory line \ufffd\ufffd is not UTF-8"
    assert "rocm-smi said \ufffdt\ufffd" in report.reason() and seen[0].message == "rocm-smi said \ufffdt\ufffd"
    sink = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    handler = logging.StreamHandler(sink)
    monkeypatch.setattr(logging, "raiseExceptions", True)
    errors = []
    monkeypatch.setattr(handler, "handleError", errors.append)
    logger = logging.getLogger("gpuops_preflight")
    logger.addHandler(handler)
    try:
        oplog.log_report(report)
    finally:
        logger.removeHandler(handler)
    sink.flush()
    assert errors == [] and "inventory line \ufffd\ufffd is not UTF-8" in sink.buffer.getvalue().decode("utf-8")
    json.dumps(report.as_dict(), ensure_ascii=False).encode("utf-8")
    assert [r["message"] for r in gp_query(str(tmp_path / "f.jsonl"))] == ["rocm-smi said \ufffdt\ufffd"]


def test_text_without_surrogates_is_the_same_object():
    event = {"event": "runner_on_ok", "event_data": {"res": {"gpus": [{"model": "MI300X \U0001F680"}]}}}
    assert ev._encodable(event) is event


def test_a_stop_keeps_its_verdict_when_the_dict_inventory_is_not_of_an_inventorys_shape():
    """A run stopped before the play named its hosts reads them from the inventory: a dict inventory with
    hosts as a list raised AttributeError there, and the timeout became an error."""
    inventory = {"rigs": {"hosts": ["rig-1", "rig-2"], "children": ["more"]},
                 "all": {"children": {"rigs": {"hosts": {"rig-3": {"ansible_host": "10.0.0.3"}}}}}, "ungrouped": "x"}
    report = Report(kind="preflight", step=3, status="error", run_id="r", started_at=None, finished_at=None,
                    duration_s=0.0, timeout_s=5)
    runner._build(report, collector(), "timeout", None, {}, inventory)
    assert report.status == "timeout" and report.error is None
    assert report.pending["stage"] == "plan" and report.pending["hosts"] == ["rig-3"]


PLAN = dict(role="preflight", resolved_action="gpuops.preflight.preflight_plan", task="Plan the preflight")


@pytest.mark.parametrize("host_checks, pending", [
    (["ramdisk", 7, None, "vram"], ["ramdisk", "vram"]),   # a number raised TypeError out of run_preflight
    ("ramdisk", []),                                       # text was listed letter by letter
    ({"ramdisk": True}, []),
])
def test_a_plan_whose_check_list_is_malformed_never_breaks_the_timeouts_reason(host_checks, pending):
    c = collector()
    c({"event": "runner_on_start", "event_data": dict(NODE, host="h1")})
    c({"event": "runner_on_ok", "event_data": dict(PLAN, host="localhost", res={"plan": {"host_checks": host_checks}})})
    report = Report(kind="preflight", step=3, status="error", run_id="r", started_at=None, finished_at=None,
                    duration_s=0.0, timeout_s=5)
    runner._build(report, c, "timeout", None, {}, {"rigs": {"hosts": {"h1": {}}}})
    assert report.status == "timeout" and report.pending["hosts"] == ["h1"]
    assert report.pending["checks"] == ({"h1": pending} if pending else {})
    assert report.reason() == "Preflight timed out after 5s; still pending: h1%s" % (
        " (%s)" % ", ".join(pending) if pending else "")
    assert runner.fallback_lines(report)[0] == report.reason()


def test_an_unreachable_host_whose_message_is_not_text_is_still_recorded_and_judged(tmp_path, monkeypatch):
    """res.msg a list: looking for the SSH address in it raised TypeError, and the host's unreachable event,
    its failure record and its progress were lost."""
    log = str(tmp_path / "failures.jsonl")
    seen = []
    c = ev.Collector("preflight", "run1", 3, progress=seen.append, failure_log=log)
    c({"event": "runner_on_unreachable", "event_data": dict(NODE, host="h1", res={"msg": ["refused", 22]})})
    assert [(r.host, r.status) for r in seen] == [("h1", "unreachable")]
    assert [(r["host"], r["address"]) for r in gp_query(log)] == [("h1", None)]
    report = Report(kind="preflight", step=3, status="error", run_id="r", started_at=None, finished_at=None,
                    duration_s=0.0, timeout_s=5)
    monkeypatch.setattr(runner.addresses, "lookup", lambda *_args: ({}, []))
    runner._build(report, c, "timeout", None, {}, "/nonexistent")
    assert [(i.host, i.check, i.address) for i in report.hard_failures] == [("h1", "ssh", "h1")]


def test_a_stream_cut_short_or_out_of_order_is_never_a_pass_and_never_raises(monkeypatch):
    """Any prefix of any order of a run's events, with no summary among them, under each way a run ends:
    the report is built (no exception) and it never passes."""
    import random

    from gpuops_preflight.collection import module_utils

    monkeypatch.setattr(runner.addresses, "lookup", lambda *_args: ({}, ["h1", "h2", "h3"]))
    report_task = dict(NODE, resolved_action="gpuops.preflight.preflight_report", task="Judge")
    stream = [{"event": "runner_on_ok", "event_data": dict(PLAN, host="localhost", res={
        "plan": module_utils("_plan").empty_plan("preflight", "3")})}]
    stream += [{"event": "runner_on_start", "event_data": dict(NODE, host=h)} for h in ("h1", "h2", "h3")]
    stream += [
        {"event": "runner_on_ok", "event_data": dict(NODE, host="h1", res={
            "checks": {"ramdisk": {"status": "ok", "message": "fine", "problems": []}}, "usable_gpus": [0]})},
        {"event": "runner_on_unreachable", "event_data": dict(NODE, host="h2", res={"msg": "ssh: timed out"})},
        {"event": "runner_on_failed", "event_data": dict(NODE, host="h3", ignore_errors=True, res={"msg": "boom"})},
        {"event": "runner_on_start", "event_data": dict(report_task, host="h1")},
        {"event": "playbook_on_stats", "event_data": {"ok": {"h1": 3}, "ignored": {"h2": 1}}},
    ]
    chance = random.Random(7)
    for dummy in range(150):
        events = chance.sample(stream, chance.randint(0, len(stream)))
        for stopped, status in ((None, "successful"), ("timeout", "canceled"), ("canceled", "canceled")):
            c = collector()
            for event in events:
                c(event)
            report = Report(kind="preflight", step=3, status="error", run_id="r", started_at=None, finished_at=None,
                            duration_s=0.0, timeout_s=5, runner_status=status, rc=0)
            runner._build(report, c, stopped, None, {}, "/nonexistent")
            assert report.status == (stopped or "error") and not report.passed
            assert runner.fallback_lines(report)[0] == report.reason()


def test_a_real_unreachable_result_names_its_address_when_the_inventory_cannot(tmp_path, monkeypatch):
    """A recorded UNREACHABLE result (tests/fixtures/ansible/SOURCES.md): a run stopped before its summary
    reports the host as a hard ssh failure at the address ssh named, in the report and the failure record."""
    import json
    import os

    fixture = os.path.join(os.path.dirname(__file__), "..", "fixtures", "ansible", "unreachable_connection_refused.json")
    with open(fixture, encoding="utf-8") as handle:
        res = json.load(handle)
    log = str(tmp_path / "failures.jsonl")
    c = ev.Collector("preflight", "run1", 3, failure_log=log)
    c({"event": "runner_on_start", "event_data": dict(NODE, host="vm01")})
    c({"event": "runner_on_unreachable", "event_data": dict(NODE, host="vm01", res=res)})
    monkeypatch.setattr(runner.addresses, "lookup", lambda *_args: ({}, ["vm01"]))  # the inventory says nothing
    report = Report(kind="preflight", step=3, status="error", run_id="r", started_at=None, finished_at=None,
                    duration_s=0.0, timeout_s=5)
    runner._build(report, c, "timeout", None, {}, "/nonexistent")
    [item] = report.hard_failures
    assert (item.host, item.check, item.address) == ("vm01", "ssh", "172.22.250.244")
    assert item.log_text() == "SSH unreachable: 172.22.250.244"
    assert [(r["host"], r["address"], r["unreachable"]) for r in gp_query(log)] == [("vm01", "172.22.250.244", True)]
