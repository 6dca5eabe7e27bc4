"""Fault injection into the engine every family runs on (host runner, deadlines, options) and into the judge.

Every input here is hand-made: a host result cut short or from another module, a timeout no thread can wait
for, a YAML ``.inf``. The promises: a check that was not reported or could not run is ``unknown`` (never a
pass), bad input is an error that names the option, never a traceback.
"""

from __future__ import annotations

import json
import threading

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import (
    _checks, _deadline, _families, _gpu_facts, _host_runner, _options, _plan, _summary)

KINDS = ("preflight", "cleanup", "training_health", "serving_gate")


def a_plan(kind):
    family = _families.family(kind)
    return _plan.build_plan(kind, "3" if family.steps else None, hosts=["h1"], hostvars={"h1": {}}, now=1000.0)


# ---------------------------------------------------------------- the judge: a host result cut short


@pytest.mark.parametrize("kind", KINDS)
def test_a_host_result_without_any_check_never_passes(kind):
    # {"checks": {}}: a result cut short, or a module that knows none of the run's checks
    the_plan = a_plan(kind)
    summary = _summary.build_summary(the_plan, [("h1", "10.0.0.1", {"checks": {}, "changed": False})])
    entry = summary["hosts"]["h1"]
    assert entry["status"] != "passed"
    assert sorted(entry["checks"]) == sorted(the_plan["host_checks"])
    assert set(c["status"] for c in entry["checks"].values()) == {"unknown"}
    said = [i for i in summary["hard_failures"] + summary["warnings"] if i["check"] == the_plan["host_checks"][0]]
    assert said and "the host gave no %s result" % the_plan["host_checks"][0] in said[0]["message"]
    assert said[0]["status"] == "unknown"
    if _families.family(kind).unknown_blocks:
        assert summary["ready"] is False


def test_a_check_the_host_left_out_is_unknown_and_the_others_are_kept():
    the_plan = a_plan("preflight")
    first, rest = the_plan["host_checks"][0], the_plan["host_checks"][1:]
    checks = dict((name, _checks.result(name)) for name in rest)
    summary = _summary.build_summary(the_plan, [("h1", "h1", {"checks": checks})])
    statuses = dict((n, c["status"]) for n, c in summary["hosts"]["h1"]["checks"].items())
    assert statuses[first] == "unknown" and set(statuses[n] for n in rest) == {"ok"}
    assert summary["hosts"]["h1"]["status"] == "warnings" and summary["passed"] is True  # unknown is not broken


def test_a_check_skipped_by_the_run_is_not_expected_from_the_host():
    family = _families.family("preflight")
    skip = family.host_checks[0]
    the_plan = _plan.build_plan("preflight", "3", skip=[skip], hosts=["h1"], hostvars={"h1": {}}, now=1000.0)
    checks = dict((name, _checks.result(name)) for name in the_plan["host_checks"])
    summary = _summary.build_summary(the_plan, [("h1", "h1", {"checks": checks})])
    assert summary["hosts"]["h1"]["status"] == "passed" and skip not in summary["hosts"]["h1"]["checks"]


@pytest.mark.parametrize("res", [
    "module output", [], 42,
    {"failed": True, "msg": None, "module_stderr": 5, "module_stdout": 7},
    {"failed": True, "msg": ["a", "list"]},
    {"unreachable": True, "msg": 42},
    {"unreachable": True, "msg": {"text": "Permission denied"}},
])
@pytest.mark.parametrize("kind", KINDS)
def test_a_malformed_host_result_is_a_probe_failure_never_a_traceback(kind, res):
    summary = _summary.build_summary(a_plan(kind), [("h1", "10.0.0.1", res)])
    entry = summary["hosts"]["h1"]
    assert entry["status"] not in ("passed", "warnings") or _families.family(kind).never_block
    assert entry["error"].startswith("h1 (10.0.0.1")
    items = summary["hard_failures"] + summary["warnings"]
    assert [i["check"] for i in items] in (["probe"], ["ssh"])
    if not isinstance(res, dict):
        assert "result cannot be read: it is" in entry["error"] and "not a mapping" in entry["error"]
    assert _summary.render_lines(summary) and json.dumps(summary, allow_nan=False)


# ---------------------------------------------------------------- timeouts no wait can take


def test_a_deadline_longer_than_a_thread_can_wait_is_waited_for_not_a_traceback():
    # threading's wait raises OverflowError past threading.TIMEOUT_MAX: the module died with a traceback
    outcomes = _deadline.run_all({"slow": (lambda: threading.Event().wait(0.2) or 7, 10 ** 20),
                                  "endless": (lambda: 8, float("inf"))})
    assert outcomes["slow"].ok and outcomes["slow"].value == 7
    assert outcomes["endless"].ok and outcomes["endless"].value == 8


def params_for(kind, **changes):
    family = _families.family(kind)
    params = _options.defaults(_options.argument_spec(family))
    params.update(step="3" if family.steps else None, timeouts={})
    params.update(changes)
    return family, params


@pytest.mark.parametrize("seconds, said", [
    (10 ** 20, "must be at most 604800 seconds (7 days)"),
    (1e300, "must be at most 604800 seconds (7 days)"),
    (float("inf"), "must be a whole number of seconds"),
    (0, "must be at least 1 second, got 0"),
    (True, "must be a whole number of seconds, got True"),
])
@pytest.mark.parametrize("kind", KINDS)
def test_a_host_module_timeout_out_of_range_is_refused_by_name(kind, seconds, said):
    family, params = params_for(kind)
    check = family.host_checks[0]
    params["timeouts"] = {check: seconds}
    problems = _options.validate(params, family)
    assert len(problems) == 1 and problems[0].startswith("timeouts: %s " % check) and said in problems[0]
    assert len(problems[0]) < 200  # a huge number is shortened, not printed whole


@pytest.mark.parametrize("seconds", [10 ** 9, 604801])
def test_a_gpu_tool_timeout_out_of_range_is_refused_by_name(seconds):
    family, params = params_for("preflight", gpu_tool_timeout=seconds)
    assert _options.validate(params, family) == [
        "gpu_tool_timeout must be at most 604800 seconds (7 days), got %d" % seconds]
    problems = _plan.variable_problems(family, {"preflight_gpu_tool_timeout": seconds})
    assert problems == ["preflight_gpu_tool_timeout must be at most 604800 seconds (7 days), got %d" % seconds]


def test_a_week_is_the_longest_timeout_taken():
    family, params = params_for("preflight", gpu_tool_timeout=604800)
    params["timeouts"] = {family.host_checks[0]: 604800}
    assert _options.validate(params, family) == []


class FactsModule(object):
    def __init__(self, **params):
        self.params = params

    def fail_json(self, msg):
        raise SystemExit(msg)


def test_a_facts_module_timeout_out_of_range_is_refused_by_name():
    with pytest.raises(SystemExit, match=r"^timeout must be at most 604800 seconds \(7 days\), got 100000"):
        _gpu_facts.check_timeouts(FactsModule(timeout=10 ** 20), ["timeout"])
    with pytest.raises(SystemExit, match=r"^timeout must be at least 1 second, got 0$"):
        _gpu_facts.check_timeouts(FactsModule(timeout=0), ["timeout"])
    _gpu_facts.check_timeouts(FactsModule(timeout=15), ["timeout"])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seconds, said", [
    (float("inf"), "must be a whole number, got inf"),
    (float("-inf"), "must be a whole number, got -inf"),
    (10 ** 20, "must be at most 604800 seconds (7 days)"),
])
def test_a_plan_timeout_out_of_range_is_refused_by_name(kind, seconds, said):
    # YAML's .inf reached int() and the plan action died with OverflowError
    family = _families.family(kind)
    check = family.host_checks[0]
    with pytest.raises(_plan.PlanError) as caught:
        _plan.build_plan(kind, "3" if family.steps else None, timeouts={check: seconds}, now=1000.0)
    assert "%s_timeouts.%s %s" % (family.option_prefix, check, said) in str(caught.value)


def test_an_infinite_expected_gpu_count_is_refused_by_name():
    assert _plan.validate_host("rig", {"expected_gpu_count": float("inf")}) == [
        "rig: expected_gpu_count must be a whole number, got inf"]


# ---------------------------------------------------------------- the host runner: a check's own code fails

def _boom(*_args):
    raise RuntimeError("kaboom")


def throwaway_family(check=None, collector=None):
    """A family of two hand-made checks: ``check`` (declared by the test) and ``good``, which must keep its result."""
    good = _checks.CheckSpec("good", _checks.HARD, 5, "s", "f", "GOOD", "Good", needs=("other",),
                             evaluate=lambda ctx, spec: ([], "fine"))
    collectors = {"value": collector or _host_runner.Collector("value", lambda ctx, deadline: 1, lambda p: "the value"),
                  "other": _host_runner.Collector("other", lambda ctx, deadline: 2, lambda p: "the other value")}
    return _checks.Family("throwaway", "Throwaway", _checks.registry(check, good), collectors, "node_throwaway",
                          "gpuops_throwaway", "throwaway", "throwaway", steps=False)


def a_check(evaluate=lambda ctx, spec: ([], "fine"), applies=None):
    return _checks.CheckSpec("broken", _checks.HARD, 5, "s", "f", "BROKEN", "Broken", needs=("value",),
                             evaluate=evaluate, applies=applies)


@pytest.mark.parametrize("evaluate, said", [
    (_boom, "evaluating broken failed: RuntimeError: kaboom"),
    (lambda ctx, spec: None, "evaluating broken failed: TypeError: it returned null, not (problems, text)"),
    (lambda ctx, spec: "all good", "evaluating broken failed: TypeError: it returned text"),
    (lambda ctx, spec: ([],), "evaluating broken failed: TypeError: it returned list"),
    (lambda ctx, spec: ([{"status": "fail"}], "x"), "evaluating broken failed: KeyError: 'message'"),
    (lambda ctx, spec: ("oops", "x"), "evaluating broken failed: TypeError"),
    # a problem that says "ok": the result would claim a pass with a problem in it
    (lambda ctx, spec: ([{"check": "broken", "status": "ok", "message": "m"}], "x"),
     "evaluating broken failed: TypeError: it returned a malformed result (the host's broken result cannot be read"),
])
def test_a_check_whose_evaluation_breaks_is_unknown_naming_it_and_the_others_keep_their_results(evaluate, said):
    result = _host_runner.run(throwaway_family(a_check(evaluate)), None, {"timeouts": {}})
    broken = result["checks"]["broken"]
    assert broken["status"] == "unknown" and broken["message"].startswith(said)
    assert "bug of gpuops.preflight" in broken["problems"][0]["fix"]
    assert result["checks"]["good"]["status"] == "ok"
    json.dumps(result)


def test_a_check_whose_applies_raises_is_unknown_not_a_traceback():
    result = _host_runner.run(throwaway_family(a_check(applies=_boom)), None, {"timeouts": {}})
    assert result["checks"]["broken"]["status"] == "unknown"
    assert result["checks"]["broken"]["message"] == "deciding whether broken applies failed: RuntimeError: kaboom"
    assert result["checks"]["good"]["status"] == "ok"


def test_a_collector_whose_wording_raises_still_makes_its_checks_unknown():
    collector = _host_runner.Collector("value", _boom, _boom)  # it fails, and naming it fails too
    result = _host_runner.run(throwaway_family(a_check(), collector), None, {"timeouts": {}})
    broken = result["checks"]["broken"]
    assert broken["status"] == "unknown" and broken["message"] == "the value collector: failed: RuntimeError: kaboom"
    assert result["checks"]["good"]["status"] == "ok"


def test_a_collector_whose_wanted_raises_is_collected():
    seen = []
    collector = _host_runner.Collector("value", lambda ctx, deadline: seen.append(1) or 1, lambda p: "the value",
                                       wanted=_boom)
    result = _host_runner.run(throwaway_family(a_check(), collector), None, {"timeouts": {}})
    assert seen == [1] and result["checks"]["broken"]["status"] == "ok"


def test_a_collector_whose_publish_raises_leaves_its_checks_unknown_not_a_traceback():
    collector = _host_runner.Collector("value", lambda ctx, deadline: 1, lambda p: "the value", publish=_boom)
    result = _host_runner.run(throwaway_family(a_check(), collector), None, {"timeouts": {}})
    broken = result["checks"]["broken"]
    assert broken["status"] == "unknown"
    assert broken["message"] == "publishing what the value collector gathered failed: RuntimeError: kaboom"
    assert result["checks"]["good"]["status"] == "ok"


def test_a_collector_that_cannot_say_whether_it_changed_the_host_says_changed():
    collector = _host_runner.Collector("value", lambda ctx, deadline: 1, lambda p: "the value", changed=_boom)
    result = _host_runner.run(throwaway_family(a_check(), collector), None, {"timeouts": {}})
    assert result["changed"] is True and result["checks"]["broken"]["status"] == "ok"


@pytest.mark.parametrize("kind", ("preflight", "training_health", "serving_gate"))
def test_a_failure_of_a_check_the_controller_does_not_know_is_a_warning_that_says_why(kind):
    the_plan = a_plan(kind)
    checks = dict((name, _checks.result(name)) for name in the_plan["host_checks"])
    failed = _checks.problem("from_the_future", _checks.FAIL, "it failed", "fix it")
    checks["from_the_future"] = _checks.result("from_the_future", [failed])
    summary = _summary.build_summary(the_plan, [("h1", "h1", {"checks": checks})])
    assert [(w["check"], w["message"]) for w in summary["warnings"]] == [(
        "from_the_future", "h1: it failed (from_the_future is not a check of this controller's gpuops.preflight: "
                           "judged as a warning)")]
    assert summary["hosts"]["h1"]["checks"]["from_the_future"]["status"] == "fail"


# ---------------------------------------------------------------- no GPU found: what the tool really said

def no_gpu_view(**tool):
    info = dict({"answered": False, "outcome": "timeout", "reason": "nvidia-smi timed out after 15s and was killed"},
                **tool)
    return {"gpus": [], "findings": [], "unmatched": [], "log_failure": None, "log_info": {}, "policy_notes": [],
            "policy_refused": [], "watch_hits": {},
            "probe": {"tool": info, "tools": {"nvidia": info}, "processes": [], "kfd_available": False,
                      "processes_available": False}}


@pytest.mark.parametrize("tool, said", [
    # a hung, killed or babbling tool reported nothing: "reports none" was false
    ({}, "no GPU found (sysfs shows none, and the GPU tool gave no answer: NVIDIA: nvidia-smi timed out after 15s "
         "and was killed)"),
    ({"outcome": "failed", "reason": "nvidia-smi exited -11: no output"},
     "no GPU found (sysfs shows none, and the GPU tool gave no answer: NVIDIA: nvidia-smi exited -11: no output)"),
    ({"answered": True, "outcome": "answered", "reason": None},
     "no GPU found (sysfs shows none, and the GPU tool reports none)"),
])
def test_no_gpu_found_says_what_the_gpu_tool_really_said(tool, said):
    family = _families.family("preflight")
    ctx = _host_runner.Context(family, None, {"expected_gpu_count": None}, ["gpu_available"], {})
    ctx.values["gpu_view"] = no_gpu_view(**tool)
    spec = family.checks["gpu_available"]
    problems, _text = spec.evaluate(ctx, spec)
    assert [(p["status"], p["message"]) for p in problems] == [("fail", said)]


# ---------------------------------------------------------------- the plan reads earlier summaries

SCHEMA = "gpuops.preflight.summary"


def earlier_summary(folder, text, stamp="20261201T000000.000000Z"):
    name = "%s_step3_%s.json" % (_families.family("preflight").file_prefix, stamp)
    (folder / name).write_text(text)


@pytest.mark.parametrize("text", [
    "[" * 100000 + "]" * 100000,   # deeper than json can read: RecursionError, not a ValueError
    json.dumps([{"schema": SCHEMA}]),
    json.dumps({"schema": SCHEMA, "started_at": ["x"], "hosts": {"rig": {"gpu_tool": ["answered"], "gpus": []}}}),
    json.dumps({"schema": SCHEMA, "hosts": {"rig": {"gpu_tool": "answered", "gpus": "0000:03:00.0"}}}),
])
@pytest.mark.parametrize("kind", ("preflight", "cleanup"))
def test_a_broken_earlier_summary_is_passed_over_never_a_traceback(tmp_path, kind, text):
    # the newest summary is broken: the cleanup takes its start time from the older one
    earlier_summary(tmp_path, json.dumps({"schema": SCHEMA, "started_at": "2026-11-30T00:00:00Z", "hosts": {
        "rig": {"gpu_tool": {"answered": True}, "gpus": [{"index": 0, "bdf": "0000:03:00.0", "in_tool_output": True}]}}}),
        stamp="20261130T000000.000000Z")
    earlier_summary(tmp_path, text)
    the_plan = _plan.build_plan(kind, "3", summary_dir=str(tmp_path), hosts=["rig"], hostvars={"rig": {}}, now=1e9 * 1.8)
    assert the_plan["index_maps"] == {"rig": {"0": "0000:03:00.0"}}
    if kind == "cleanup":
        assert the_plan["since"] == 1796083200.0 - 86400 and the_plan["since_source"] == "preflight summary"


def test_an_earlier_summary_gpu_without_a_pci_address_gives_no_index(tmp_path):
    earlier_summary(tmp_path, json.dumps({"schema": SCHEMA, "hosts": {"rig": {"gpu_tool": {"answered": True}, "gpus": [
        {"index": 0, "bdf": ["0000:03:00.0"], "in_tool_output": True}, {"index": True, "bdf": "0000:04:00.0",
                                                                        "in_tool_output": True},
        {"index": 2, "bdf": "not an address", "in_tool_output": True},
        {"index": 3, "bdf": "0000:06:00.0", "in_tool_output": True}]}}}))
    assert _plan.index_maps(str(tmp_path), ["rig"]) == {"rig": {"3": "0000:06:00.0"}}


# ---------------------------------------------------------------- a since time no log line can follow

class NoTools(object):
    check_mode = False

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/bin/timeout" if name == "timeout" else None

    def run_command(self, cmd, **kwargs):
        return 127, "", ""


HOST_NOW = 1796120000.0  # 2026-12-01 10:13:20 UTC


@pytest.mark.parametrize("since", ["1796112000000", 10 ** 30, "2999-01-01T00:00:00Z"])
def test_a_kernel_log_since_in_the_future_is_unknown_never_a_clean_log(tmp_path, since):
    # hand-made log: a GPU reset 13 minutes before the check. A since in milliseconds (or a typo year) read it
    # for an empty window: kernel_log "ok, 0 findings", the reset hidden
    log = tmp_path / "kern.log"
    log.write_text("2026-12-01T10:00:00+0000 rig kernel: amdgpu 0000:03:00.0: amdgpu: GPU reset begin!\n")
    family, params = params_for("preflight", checks=["kernel_log"], kernel_log=str(log), kernel_log_since=since,
                                gpu_tool="sysfs", sysfs_root=str(tmp_path / "sys"))
    assert _options.validate(params, family) == []
    result = _host_runner.run(family, NoTools(), params, now=HOST_NOW)
    check = result["checks"]["kernel_log"]
    assert check["status"] == "unknown"
    assert "in the future of this host's clock: no kernel log line can be that new" in check["message"]
    assert "kernel_log_since" in check["message"]


def test_a_kernel_log_since_a_little_ahead_is_a_clock_difference_and_read(tmp_path):
    log = tmp_path / "kern.log"
    log.write_text("2026-12-01T10:13:30+0000 rig kernel: amdgpu 0000:03:00.0: amdgpu: GPU reset begin!\n")
    family, params = params_for("preflight", checks=["kernel_log"], kernel_log=str(log),
                                kernel_log_since=str(HOST_NOW + 30), gpu_tool="sysfs", sysfs_root=str(tmp_path / "sys"))
    assert _options.validate(params, family) == []
    check = _host_runner.run(family, NoTools(), params, now=HOST_NOW)["checks"]["kernel_log"]
    assert check["status"] != "unknown"


@pytest.mark.parametrize("since, said", [
    ("1796112000000", "cleanup_since '1796112000000' is in the future (20767544 days from now)"),
    ("2999-01-01T00:00:00Z", "cleanup_since '2999-01-01T00:00:00Z' is in the future (355046 days from now)"),
])
def test_a_cleanup_since_in_the_future_is_refused_by_name(since, said):
    with pytest.raises(_plan.PlanError) as caught:
        _plan.build_plan("cleanup", "3", since=since, now=HOST_NOW)
    assert said in str(caught.value) and "epoch milliseconds instead of seconds?" in str(caught.value)
    assert _plan.build_plan("cleanup", "3", since=str(HOST_NOW + 30), now=HOST_NOW)["since"] == HOST_NOW + 30
