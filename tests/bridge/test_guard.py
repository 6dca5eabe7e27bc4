"""guard_step: the step runs only behind a passed preflight; the cleanup never changes its result."""

from __future__ import annotations

import logging
import threading

import pytest

import gpuops_preflight as gp
from bridge.helpers import run_options


def test_blocked_step_is_never_run_and_the_blocked_result_returned(scenario, tmp_path):
    sc = scenario("missing_ramdisk_file")
    called, reports = [], []
    result = gp.guard_step(sc.step, lambda: called.append(1), inventory=sc.inventory, on_report=reports.append,
                           **run_options(tmp_path))
    assert called == []
    assert [r.kind for r in reports] == ["preflight"]  # no cleanup after a step that did not run
    assert result == reports[0].as_step_result()
    assert result["success"] is False and result["blocked_by"] == "preflight_check"
    assert "RAMDISK_NOT_READY" in result["error"]


def test_failing_cleanup_does_not_change_the_steps_result(scenario, tmp_path, caplog):
    sc = scenario("healthy")
    outcome = {"success": True, "rows": 42}
    called, reports = [], []

    def step():
        called.append(1)
        return outcome

    with caplog.at_level(logging.WARNING, logger="gpuops_preflight"):
        # the cleanup's plan rejects a zero timeout: the cleanup cannot run at all
        result = gp.guard_step(sc.step, step, inventory=sc.inventory, on_report=reports.append,
                               cleanup_extravars={"cleanup_timeouts": {"caches": 0}}, **run_options(tmp_path))
    assert result is outcome and called == [1]
    assert [(r.kind, r.status) for r in reports] == [("preflight", "passed"), ("cleanup", "error")]
    assert "caches" in reports[1].error
    assert any(level == logging.WARNING and msg.startswith("[CLEANUP] Cleanup cannot run")
               for _name, level, msg in caplog.record_tuples), caplog.record_tuples


def test_cleanup_runs_after_a_step_that_raises(scenario, tmp_path):
    sc = scenario("dirty_after_step")
    reports = []

    def step():
        raise RuntimeError("step crashed")

    with pytest.raises(RuntimeError, match="step crashed"):
        gp.guard_step(sc.step, step, inventory=sc.inventory, on_report=reports.append, **run_options(tmp_path))
    assert [(r.kind, r.status) for r in reports] == [("preflight", "passed"), ("cleanup", "passed")]
    assert reports[1].summary["totals"]["bytes_freed"] > 0


def test_no_cleanup_after_a_step_that_is_not_distributed(scenario, tmp_path):
    sc = scenario("healthy")
    reports = []
    result = gp.guard_step(sc.step, lambda: "done", inventory=sc.inventory, cleanup_steps=(1, 2),
                           on_report=reports.append, **run_options(tmp_path))
    assert result == "done"
    assert [r.kind for r in reports] == ["preflight"]


def test_canceled_preflight_blocks_without_running_anything(tmp_path):
    stop = threading.Event()
    stop.set()
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all: {}\n")
    called = []
    result = gp.guard_step(3, lambda: called.append(1), inventory=str(inventory), cancel=stop,
                           **run_options(tmp_path))
    assert called == []
    assert result["success"] is False and result["blocked_by"] == "preflight_canceled"


def test_is_distributed():
    assert gp.guard.is_distributed("3", gp.DEFAULT_CLEANUP_STEPS)
    assert not gp.guard.is_distributed(4, gp.DEFAULT_CLEANUP_STEPS)
    assert not gp.guard.is_distributed("x", gp.DEFAULT_CLEANUP_STEPS)
    assert gp.DEFAULT_CLEANUP_STEPS == ("1", "2", "3")
    assert gp.guard.is_distributed("3.0") and gp.guard.is_distributed(2.5, [1, "2.50"])
    assert not gp.guard.is_distributed(2.5)


def test_a_decimal_step_behind_the_guard(scenario, tmp_path):
    sc = scenario("between_steps")
    sc["rig-6600"].add_caches("trainer")
    reports = []
    result = gp.guard_step(2.5, lambda: "ran 2.5", inventory=sc.inventory, cleanup_steps=("1", "2", "2.5", "3"),
                           on_report=reports.append, **run_options(tmp_path))
    assert result == "ran 2.5"
    assert [(r.kind, r.status, r.step) for r in reports] == [("preflight", "passed", 2.5), ("cleanup", "passed", 2.5)]
    assert reports[1].summary["totals"]["bytes_freed"] > 0
    # not a distributed step by default: no cleanup
    reports.clear()
    assert gp.guard_step("2.5", lambda: "again", inventory=sc.inventory, on_report=reports.append,
                         **run_options(tmp_path)) == "again"
    assert [r.kind for r in reports] == ["preflight"]


@pytest.mark.parametrize("cleanup_steps, said", [
    (3, "cleanup_steps must be a list, got int"),
    ({"3": True}, "cleanup_steps must be a list, got dict"),
    ([1, 2, "three"], "three"),
    ("1, 2, x", "x"),
])
def test_cleanup_steps_that_cannot_be_read_refuse_the_step_without_a_traceback(tmp_path, cleanup_steps, said):
    """Before, an int raised TypeError at WATCHER, and a bad entry made is_distributed answer False: the
    step ran and its cleanup was silently skipped."""
    called, reports = [], []
    result = gp.guard_step(3, lambda: called.append(1), inventory=str(tmp_path), cleanup_steps=cleanup_steps,
                           on_report=reports.append, **run_options(tmp_path))
    assert called == []
    assert result["success"] is False and result["blocked_by"] == "preflight_error"
    assert result["error"].startswith("Preflight could not run: cleanup_steps") and said in result["error"]
    assert [(r.kind, r.status) for r in reports] == [("preflight", "error")]


def test_cleanup_steps_as_text_are_read_as_the_cleanup_reads_them(scenario, tmp_path):
    """'1,2,3' (the form -e cleanup_steps=1,2,3 takes) was split into characters: no cleanup ran."""
    sc = scenario("dirty_after_step")
    reports = []
    result = gp.guard_step(sc.step, lambda: "done", inventory=sc.inventory, cleanup_steps="1,2,3",
                           on_report=reports.append, **run_options(tmp_path))
    assert result == "done"
    assert [(r.kind, r.status) for r in reports] == [("preflight", "passed"), ("cleanup", "passed")]
    assert reports[1].summary["totals"]["bytes_freed"] > 0


@pytest.mark.parametrize("kwargs, said", [
    (dict(cleanup_timeout=float("nan")), "the cleanup's input: timeout must be a number of seconds"),
    (dict(cleanup_timeout="600"), "the cleanup's input: timeout must be a number of seconds"),
    (dict(cleanup_timeout=-1), "the cleanup's input: timeout must be a number of seconds"),
    (dict(cleanup_extravars={"step": 4}), "the cleanup's input: extravars: step is set by the bridge itself"),
    (dict(cleanup_skip=5), "the cleanup's input: skip must be a list, got int"),
])
def test_a_cleanup_that_could_not_run_refuses_the_step_before_it_runs(tmp_path, kwargs, said):
    """Before, the step ran and only then its cleanup was refused (a logged warning): the step's leftovers stayed."""
    called, reports = [], []
    result = gp.guard_step(3, lambda: called.append(1), inventory=str(tmp_path), on_report=reports.append,
                           **kwargs, **run_options(tmp_path))
    assert called == []
    assert result["success"] is False and result["blocked_by"] == "preflight_error"
    assert result["error"].startswith("Preflight could not run: " + said), result["error"]
    assert [(r.kind, r.status) for r in reports] == [("preflight", "error")]


def test_the_cleanups_input_is_not_checked_for_a_step_without_a_cleanup_nor_without_one(tmp_path):
    for kwargs in (dict(cleanup_steps=[1, 2]), dict(cleanup=False)):
        reports = []
        gp.guard_step(3, lambda: "ran", inventory=str(tmp_path / "missing.yml"), cleanup_timeout="600",
                      on_report=reports.append, **kwargs, **run_options(tmp_path))
        assert reports[0].error == "inventory not found: %s" % (tmp_path / "missing.yml")  # the preflight's own


def test_a_run_that_is_not_callable_is_refused_before_the_preflight(tmp_path):
    result = gp.guard_step(3, None, inventory=str(tmp_path), **run_options(tmp_path))
    assert result == {"success": False, "blocked_by": "preflight_error",
                      "error": "Preflight could not run: run must be a callable that runs the step, got None"}


def test_a_misspelt_option_is_refused_naming_it_not_a_type_error(tmp_path):
    called = []
    result = gp.guard_step(3, lambda: called.append(1), inventory=str(tmp_path), summry_dir=str(tmp_path),
                           **run_options(tmp_path))
    assert called == [] and result["blocked_by"] == "preflight_error"
    assert result["error"] == ("Preflight could not run: guard_step: unknown option(s) summry_dir (the options both "
                               "runs take: ansible_cfg, artifacts_dir, envvars, failure_log, keep_artifacts, log, "
                               "summary_dir, verbosity)")
