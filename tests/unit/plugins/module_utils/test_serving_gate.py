"""_serving_gate: the serving_gate family run by the one host runner and judged by the one judge.

The orchestrator is a REAL HTTP server (tests/simserve) on 127.0.0.1; the model store and the map are
laid out in temp dirs (tests/simserve/store.py). What the collectors observe and how each evaluation
words it are tested in test_serving.py; here: the declarations, the input, the order the collectors
run in (a bad map stops the run, the preload waits for the orchestrator and the store, the HTTP calls in
sequence under one budget), unknown results that block, and the gate's own output.
"""

from __future__ import annotations

import os
import re

import pytest

import simserve
from simserve import store as st
from simserve.fixtures import open_tmp, orchestrator  # noqa: F401  # pylint: disable=unused-import

from ansible_collections.gpuops.preflight.plugins.module_utils import (
    _checks, _families, _host_runner, _plan, _serving, _serving_gate, _summary)

FAMILY = _serving_gate.FAMILY
MODELS = {"crawler": ("org/crawl-7b", "org/crawl-7b"), "mcp": ("org/tools-3b", "models--org--tools-3b")}


@pytest.fixture
def layout(open_tmp):
    made = st.serving_host(str(open_tmp), MODELS)
    return {"root": made["store_root"], "map": made["model_map"]}


def params(layout, orchestrator_url, **extra):
    out = dict((name, spec.get("default")) for name, spec in _serving_gate.OPTIONS.items())
    out.update(url=orchestrator_url, model_map=layout["map"], store_root=layout["root"], gate_timeout=10, checks=None, timeouts={})
    out.update(extra)
    return out


def run(layout, url, module=None, **extra):
    values = params(layout, url, **extra)
    assert _serving_gate.validate(values) == []
    return _host_runner.run(FAMILY, module, values)


def statuses(result):
    return dict((name, res["status"]) for name, res in result["checks"].items())


def judged(result, host="serve-1"):
    plan = _plan.build_plan("serving_gate", None, hosts=[host], now=1.0)
    return _summary.build_summary(plan, [(host, host, result)], finished=2.0)


# ---------------------------------------------------------------- declarations


def test_the_family_is_declared_once_and_registered():
    assert _families.family("serving_gate") is FAMILY
    assert FAMILY.host_checks == ["orchestrator", "model_map", "model_store", "preload", "mps", "bus"]
    assert (FAMILY.node_module, FAMILY.stats_key, FAMILY.file_prefix, FAMILY.option_prefix) == (
        "node_serving_gate", "gpuops_serving_gate", "serving_gate", "serving_gate")
    assert FAMILY.unknown_blocks and not FAMILY.steps and not FAMILY.never_block
    for name, spec in FAMILY.checks.items():
        assert spec.severity == _checks.HARD and spec.timeout > 0 and spec.code.isupper() and spec.fix, name
    # one check name, one operator code, whatever the family
    assert (FAMILY.checks["ssh"].code, FAMILY.checks["probe"].code) == ("SSH_UNREACHABLE", "PROBE_FAILED")
    assert _families.code("preload") == "MODELS_NOT_READY" and _families.label("model_store") == "Model store"
    # the gate waits for the orchestrator and the models for its whole budget
    assert FAMILY.checks["orchestrator"].timeout == FAMILY.checks["preload"].timeout == _serving.DEFAULT_GATE_TIMEOUT
    assert _serving_gate.OPTIONS["gate_timeout"]["default"] == _serving.DEFAULT_GATE_TIMEOUT


# ---------------------------------------------------------------- input


def test_every_timeout_is_capped_at_the_budget_and_http_checks_get_a_margin():
    values = {"gate_timeout": 20.0, "timeouts": {"model_store": 60, "bus": 3}}
    assert _serving_gate.run_timeouts(values) == {"orchestrator": 21.0, "model_map": 5.0, "model_store": 20.0,
                                                  "preload": 21.0, "mps": 11.0, "bus": 4.0}


@pytest.mark.parametrize("extra, expected", [
    ({"gate_timeout": 0}, "gate_timeout must be a number of seconds above 0"),
    ({"gate_timeout": "soon"}, "gate_timeout must be a number of seconds, got 'soon'"),
    ({"url": "localhost:8014"}, "url 'localhost:8014' is not an http:// or https:// URL"),
    ({"require_bus": True}, "require_bus is on but no bus_url is given"),
    ({"bus_url": "ftp://bus"}, "bus_url 'ftp://bus' is not an http:// or https:// URL"),
    ({"model_map": ""}, "model_map is required"),
    ({"store_root": "relative/store"}, "store_root must be an absolute path, got 'relative/store'"),
    ({"store_root": None}, "strict (STRICT_MODEL_STORE=1) needs store_root"),
    ({"mps_pipe_dir": "tmp/mps"}, "mps_pipe_dir must be an absolute path"),
    ({"instance": "a/b"}, "instance 'a/b' is not a service instance name"),
    ({"service_user": "no-such-svc-user"}, "service user 'no-such-svc-user' does not exist on this host"),
])
def test_bad_input_names_the_option(open_tmp, extra, expected):
    values = params({"map": "/m.json", "root": "/srv/models"}, "http://127.0.0.1:8014", **extra)
    problems = _serving_gate.validate(values)
    assert any(expected in p for p in problems), problems
    assert values["timeouts"] == {}  # nothing normalised for input that is refused


def test_the_roles_variables_are_refused_out_of_range_before_any_host_is_contacted():
    problems = _plan.variable_problems(FAMILY, {
        "serving_gate_timeout": 0, "serving_gate_url": "localhost:8014", "serving_gate_bus_url": "",
        "serving_gate_store_root": "models", "serving_gate_mps_pipe_dir": "/tmp/nvidia-mps",
        "serving_gate_summary_keep": -1})
    assert problems == [
        "serving_gate_store_root must be an absolute path, got 'models'",
        "serving_gate_summary_keep must be a whole number (0 keeps every summary) of 0 or more, got -1",
        "serving_gate_timeout must be a number of seconds above 0 and at most 604800, got 0",
        "serving_gate_url 'localhost:8014' is not an http:// or https:// URL (e.g. http://127.0.0.1:8014)",
    ]
    assert _plan.variable_problems(FAMILY, {"serving_gate_store_root": "", "serving_gate_timeout": 0.5,
                                            "serving_gate_bus_url": "https://bus:9000/health"}) == []
    assert _plan.variable_problems(FAMILY, {"serving_gate_timeout": "soon"}) == [
        "serving_gate_timeout must be a number of seconds, got 'soon'"]


def test_a_url_with_credentials_is_refused_without_echoing_them():
    problems = _plan.variable_problems(FAMILY, {"serving_gate_url": "http://admin:S3cretPass@127.0.0.1:8014",
                                                "serving_gate_bus_url": "http://bus:9000/health?token=S3cretTok"})
    assert problems == [
        "serving_gate_bus_url 'http://bus:9000/health?token=***': a query string or fragment (?... #...) is not "
        "supported: give the service's base URL (the gate adds its own paths)",
        "serving_gate_url 'http://***@127.0.0.1:8014': user names or passwords in the URL are not supported (the "
        "gate sends no credentials)"]


@pytest.mark.parametrize("url", [
    "http://host:99999", "http://host:0", "http://host:", "http://[::1", "http://[::1]x", "http://[1.2.3.4]:8014",
    "ftp://x", "localhost:8014", "http:// host", "http://host/a b", "http://host/a\tb", "http://host/a\x07b",
    "http://host/\u00e9", "http://admin:S3cretPass@host:8014", "http://host:8014/?token=S3cretTok", " ", "",
])
def test_the_plan_the_module_and_the_local_gate_refuse_a_url_in_the_same_words(url):
    """One rule (_serving.url_problem): the role's variables in the plan (serving_gate_url, serving_gate_bus_url),
    the module's options (url, bus_url) and the local gate's flags say the same, each naming its own name."""
    why = _serving.url_problem(url)
    assert why and "S3cret" not in why
    for variable, option in (("serving_gate_url", "url"), ("serving_gate_bus_url", "bus_url")):
        if url == "" and option == "bus_url":
            continue  # an empty bus_url means no bus, everywhere
        assert _plan.variable_problems(FAMILY, {variable: url}) == ["%s %s" % (variable, why)]
        values = dict(params({"map": "/m.json", "root": "/srv/models"}, "http://127.0.0.1:8014"), **{option: url})
        assert ["%s %s" % (option, why)] == [p for p in _serving_gate.validate(values) if p.startswith(option + " ")]
    with pytest.raises(ValueError, match="^--url %s$" % re.escape(why)):
        _serving.parse_url(url, "--url")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8014", "https://[::1]:8014/api/", " http://gw.example/%20x ",
                                 "HTTP://host"])
def test_the_plan_and_the_module_take_the_same_urls(url):
    assert _plan.variable_problems(FAMILY, {"serving_gate_url": url, "serving_gate_bus_url": url}) == []
    values = params({"map": "/m.json", "root": "/srv/models"}, url, bus_url=url)
    assert [p for p in _serving_gate.validate(values) if "url" in p] == []


# ---------------------------------------------------------------- the run


def test_a_ready_orchestrator_passes_with_the_calls_in_order(layout, orchestrator):
    sim = orchestrator(models=["org/crawl-7b", "org/tools-3b"], already_ready=True)
    result = run(layout, sim.url, require_bus=True, bus_url=sim.url)
    assert statuses(result) == {"orchestrator": "ok", "model_map": "ok", "model_store": "ok", "preload": "ok",
                                "mps": "skipped", "bus": "ok"}
    # health first, the preload next, the bus last; MPS not required: /gpu/info never asked
    assert [r[:2] for r in sim.requests] == [("GET", "/health"), ("GET", "/models/status"), ("GET", "/health")]
    assert result["checks"]["mps"]["message"] == "not required (REQUIRE_MPS=0)"
    assert result["serving"]["url"] == sim.url and result["serving"]["user"]["uid"] == os.geteuid()
    summary = judged(result)
    assert summary["passed"] and summary["kind"] == "serving_gate" and summary["step"] is None


def test_an_invalid_map_stops_the_run_and_nothing_is_asked(layout, orchestrator):
    sim = orchestrator(models=["org/crawl-7b"], already_ready=True)
    with open(layout["map"], "w") as handle:
        handle.write('{"crawler": {"modle": "org/crawl-7b", "path": "org/crawl-7b"}}')
    result = run(layout, sim.url, require_mps=True, require_bus=True, bus_url=sim.url)
    assert statuses(result) == {"orchestrator": "unknown", "model_map": "fail", "model_store": "unknown",
                                "preload": "unknown", "mps": "unknown", "bus": "unknown"}
    assert sim.requests == []
    assert result["checks"]["orchestrator"]["message"] == (
        "asking the orchestrator at %s: not run: the model map is invalid" % sim.url)
    assert "unknown field 'modle' (did you mean 'model'?)" in result["checks"]["model_map"]["message"]
    summary = judged(result)
    assert summary["blocked"]
    assert [(i["check"], i["status"]) for i in summary["hard_failures"]] == [
        ("orchestrator", "unknown"), ("model_map", "fail"), ("model_map", "fail"), ("model_store", "unknown"),
        ("preload", "unknown"), ("mps", "unknown"), ("bus", "unknown")]
    # what to do first is said for every check that did not run
    assert all("map" in i["fix"].lower() for i in summary["hard_failures"])


def test_an_unreadable_map_is_named(layout, orchestrator):
    sim = orchestrator(models=["org/crawl-7b"], already_ready=True)
    result = run(layout, sim.url, model_map=layout["map"] + ".missing")
    assert result["checks"]["model_map"]["status"] == "fail"
    assert "model map %s.missing cannot be read: No such file or directory" % layout["map"] in (
        result["checks"]["model_map"]["message"])


def test_the_preload_waits_for_the_orchestrator(layout):
    url = "http://127.0.0.1:%d" % simserve.free_port()
    result = run(layout, url, gate_timeout=0.5)
    assert statuses(result)["orchestrator"] == "fail" and statuses(result)["preload"] == "unknown"
    assert "connection refused" in result["checks"]["orchestrator"]["message"]
    assert result["checks"]["preload"]["message"] == (
        "preloading the models at %s: not run: the orchestrator is not ready" % url)
    fix = result["checks"]["preload"]["problems"][0]["fix"]
    assert fix.startswith("Fix what the preload waits for first")
    summary = judged(result)
    assert [i["check"] for i in summary["hard_failures"]] == ["orchestrator", "preload"]


def test_the_preload_waits_for_the_store_unless_the_store_check_is_skipped(layout, orchestrator):
    sim = orchestrator(models=["org/crawl-7b", "org/tools-3b"], already_ready=True)
    os.remove(os.path.join(layout["root"], "org/crawl-7b/config.json"))
    result = run(layout, sim.url)
    assert statuses(result)["model_store"] == "fail" and statuses(result)["preload"] == "unknown"
    assert "not run: the model store is not ready" in result["checks"]["preload"]["message"]
    assert ("GET", "/models/status", None) not in sim.requests
    result = run(layout, sim.url, checks=["orchestrator", "model_map", "preload"])
    assert statuses(result) == {"orchestrator": "ok", "model_map": "ok", "model_store": "skipped", "preload": "ok",
                                "mps": "skipped", "bus": "skipped"}
    assert result["checks"]["model_store"]["message"] == "skipped by serving_gate_skip"


def test_a_skipped_preload_asks_nothing_of_the_models(layout, orchestrator):
    sim = orchestrator(models=["org/crawl-7b", "org/tools-3b"])
    result = run(layout, sim.url, checks=["orchestrator", "model_map", "model_store"], refresh=True)
    assert statuses(result)["preload"] == "skipped"
    assert [r[:2] for r in sim.requests] == [("GET", "/health")]


def test_without_a_store_root_and_not_strict_the_store_is_not_checked(layout, orchestrator):
    sim = orchestrator(models=["org/crawl-7b", "org/tools-3b"], already_ready=True)
    result = run(layout, sim.url, store_root=None, strict=False)
    assert statuses(result)["model_store"] == "skipped" and statuses(result)["preload"] == "ok"
    assert "STRICT_MODEL_STORE=0: the store is not checked" in result["checks"]["model_store"]["message"]


def test_the_orchestrators_own_instance_does_not_wait_for_the_bus(layout, orchestrator):
    sim = orchestrator(models=["org/crawl-7b", "org/tools-3b"], already_ready=True)
    down = "http://127.0.0.1:%d" % simserve.free_port()
    result = run(layout, sim.url, instance="GPU-Orchestrator", require_bus=True, bus_url=down)
    assert statuses(result)["bus"] == "skipped"
    assert result["checks"]["bus"]["message"] == ("instance GPU-Orchestrator is the orchestrator: it does not wait "
                                                  "for the bus that depends on it")
    result = run(layout, sim.url, instance="crawler", require_bus=True, bus_url=down, gate_timeout=1)
    assert statuses(result)["bus"] == "fail" and "does not answer" in result["checks"]["bus"]["message"]


def test_mps_without_a_ready_orchestrator_is_not_verified(layout, open_tmp):
    pipe = open_tmp / "mps"
    pipe.mkdir()
    url = "http://127.0.0.1:%d" % simserve.free_port()
    result = run(layout, url, gate_timeout=0.5, require_mps=True, mps_pipe_dir=str(pipe), mps_log_dir=str(pipe))
    mps = result["checks"]["mps"]
    assert mps["status"] == "fail"  # the worst of its problems
    assert [(p["status"], p["message"]) for p in mps["problems"]] == [
        ("fail", "the MPS control daemon (nvidia-cuda-mps-control -d) is not running"),
        ("unknown", "the orchestrator's /gpu/info was not asked whether MPS is enabled: the orchestrator is not ready")]


def test_progress_lines_reach_a_module_that_takes_them(layout, orchestrator):
    sim = orchestrator(models=["org/crawl-7b", "org/tools-3b"], ready_after=0.3)

    class Module(object):
        check_mode = False

        def __init__(self):
            self.lines = []

        def progress(self, line):
            self.lines.append(line)

    module = Module()
    result = run(layout, sim.url, module=module)
    assert statuses(result)["preload"] == "ok"
    assert module.lines[0].startswith("in progress: 0 of 2 model(s) ready")
    assert module.lines[-1] == "all ready: 2 of 2 model(s) ready"


def test_a_hung_model_store_is_unknown_and_said_so(layout, orchestrator, monkeypatch):
    """A dead NFS mount under the store: the walk never returns; the gate says the store did not answer."""
    import threading
    release = threading.Event()
    monkeypatch.setattr(_serving, "inspect_model_store", lambda *a, **k: release.wait(30))
    sim = orchestrator(models=["org/crawl-7b", "org/tools-3b"], already_ready=True)
    try:
        result = run(layout, sim.url, timeouts={"model_store": 0.3})
    finally:
        release.set()
    store = result["checks"]["model_store"]
    assert store["status"] == "unknown"
    assert store["message"] == "the model store %s did not answer: timed out after 0.3s" % layout["root"]


def test_the_gate_budget_ends_the_wait_and_says_so(layout, orchestrator):
    sim = orchestrator(models=["org/crawl-7b", "org/tools-3b"], never_ready=True)
    result = run(layout, sim.url, gate_timeout=1)
    assert result["checks"]["preload"]["status"] == "fail" and not result["checks"]["preload"]["timed_out"]
    assert result["checks"]["preload"]["message"].startswith("models not ready within 1s: in progress:")


# ---------------------------------------------------------------- judging and the gate's output


def check_result(name, status):
    if status == "skipped":
        return _checks.skipped(name, "not required")
    if status == "ok":
        return _checks.result(name, [], message="fine")
    return _checks.result(name, [_checks.problem(name, status, "%s is %s" % (name, status), "do X")])


def node_result(**given):
    checks = dict((name, check_result(name, given.get(name, "ok"))) for name in FAMILY.host_checks)
    return {"changed": False, "step": None, "checks": checks, "elapsed_s": 0.1}


def test_an_unknown_of_a_hard_check_blocks_and_a_warning_does_not():
    summary = judged(node_result(mps="unknown", bus="skipped"))
    assert summary["blocked"] and summary["hard_failures"] == [
        {"host": "serve-1", "address": "serve-1", "check": "mps", "status": "unknown",
         "message": "serve-1: mps is unknown", "fix": "do X"}]
    summary = judged(node_result(model_store="warn"))
    assert summary["passed"] and summary["warnings"][0]["check"] == "model_store"
    assert summary["hosts"]["serve-1"]["status"] == "warnings"
    # downgrading is the operator's way out, and says so
    plan = _plan.build_plan("serving_gate", None, downgrade=["mps"], hosts=["h"], now=1.0)
    summary = _summary.build_summary(plan, [("h", "h", node_result(mps="unknown"))], finished=2.0)
    assert summary["passed"]
    assert summary["warnings"][0]["message"] == "h: mps is unknown (downgraded by serving_gate_downgrade)"


def test_an_unreachable_host_blocks():
    plan = _plan.build_plan("serving_gate", None, hosts=["h"], now=1.0)
    summary = _summary.build_summary(plan, [("h", "10.0.0.9", {"unreachable": True, "msg": "ssh: timed out"})],
                                     finished=2.0)
    assert summary["blocked"] and summary["hard_failures"][0]["check"] == "ssh"
    assert summary["hard_failures"][0]["fix"] == FAMILY.checks["ssh"].fix


def test_plan_extras_are_top_level_fields_of_the_summary():
    plan = _plan.build_plan("serving_gate", None, hosts=["h"], now=1.0)
    plan["extra"] = {"instance": "crawler", "serving": {"x": 1}, "kind": "not over a core field"}
    summary = _summary.build_summary(plan, [("h", "h", node_result())], finished=2.0)
    assert (summary["instance"], summary["serving"], summary["kind"]) == ("crawler", {"x": 1}, "serving_gate")


def test_verdict_lines():
    result = node_result(model_store="fail", preload="unknown", mps="skipped", bus="skipped")
    summary = dict(judged(result), summary_file="/c/summary.json")
    assert _serving_gate.verdict_lines(result["checks"], summary, "crawler", 1) == [
        "orchestrator  ok       fine",
        "model_map     ok       fine",
        "model_store   FAIL     model_store is fail",
        "                       fix: do X",
        "preload       UNKNOWN  preload is unknown",
        "                       fix: do X",
        "mps           skipped  not required",
        "bus           skipped  not required",
        "GATE NOT READY: instance crawler must not start (model_store; not verified: preload) (exit 1)",
        "Summary: /c/summary.json",
    ]
    result = node_result(bus="unknown")
    assert _serving_gate.verdict_lines(result["checks"], judged(result), "crawler")[-1] == (
        "GATE NOT READY: instance crawler must not start (not verified: bus)")
    result = node_result(model_store="warn")
    assert _serving_gate.verdict_lines(result["checks"], judged(result), "crawler")[-1] == (
        "GATE READY: instance crawler may start")
