"""Malformed or oversized events from the stream: the summary, the stop's verdict and the pending list survive."""

from __future__ import annotations

from gpuops_preflight import events as ev
from gpuops_preflight import runner
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
