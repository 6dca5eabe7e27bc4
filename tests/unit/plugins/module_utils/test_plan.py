from __future__ import annotations

import json
import os

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _families, _plan, _serving_gate


def plan(**kwargs):
    args = dict(kind="preflight", step="3", steps={3: {"ramdisk": ["train_history.json"], "inputs": []}},
                hosts=["rig-6600"], hostvars={"rig-6600": {}}, now=1000.0)
    args.update(kwargs)
    return _plan.build_plan(**args)


@pytest.mark.parametrize("step", ["3", 3, " 3 ", "03", 3.0, "3.0", "3.00"])
def test_step_as_string_or_number(step):
    assert plan(step=step)["step"] == "3"


@pytest.mark.parametrize("step,canonical", [(2.5, "2.5"), ("2.5", "2.5"), ("2.50", "2.5"), ("02.5", "2.5")])
def test_decimal_steps_mean_what_they_say(step, canonical):
    got = plan(step=step, steps={"2.5": {"ramdisk": ["a.json"], "ramdisk_dir": "step2_5"}, 3: {}})
    assert got["step"] == canonical
    assert got["requirements"] == {"ramdisk": ["a.json"], "inputs": [], "ramdisk_dir": "step2_5"}


@pytest.mark.parametrize("step,fragment", [
    (None, "step is required"), ("", "step is required"), ("three", "step number"), ("1e3", "step number"),
    (-1, "step number"), (True, "step number"), (float("nan"), "step number"), ("2.5.1", "step number"),
    ([3], "step number"), ("7", "step 7 is not in preflight_steps (steps defined: 3)"),
    ("2.5", "step 2.5 is not in preflight_steps (steps defined: 3)"),
])
def test_bad_step_fails_with_a_clear_message(step, fragment):
    with pytest.raises(_plan.PlanError) as err:
        plan(step=step)
    assert fragment in str(err.value)


def test_string_and_int_step_keys_both_work():
    assert plan(steps={"3": {"ramdisk": ["a.json"]}})["requirements"] == {"ramdisk": ["a.json"], "inputs": [],
                                                                          "ramdisk_dir": None}
    assert plan(steps={3: {"ramdisk": ["a.json"]}})["requirements"]["ramdisk"] == ["a.json"]
    assert plan(steps={"3.0": {"ramdisk": ["b.json"]}})["requirements"]["ramdisk"] == ["b.json"]


def test_step_keys_are_compared_as_numbers():
    with pytest.raises(_plan.PlanError) as err:
        plan(steps={3: {}, "3.0": {}})
    assert "preflight_steps: step 3 is defined twice (keys are compared as numbers)" in str(err.value)
    with pytest.raises(_plan.PlanError) as err:
        plan(steps={3: {"ramdisk_dir": "../elsewhere"}})
    assert "preflight_steps[3].ramdisk_dir: '../elsewhere' must be a folder name inside the ramdisk root" in str(err.value)


@pytest.mark.parametrize("entry, text", [
    ({"ramdisk_dir": "."}, "preflight_steps[3].ramdisk_dir: '.' must be a folder name inside the ramdisk root"),
    ({"ramdisk_dir": "./"}, "preflight_steps[3].ramdisk_dir: './' must be a folder name inside the ramdisk root"),
    ({"ramdisk_dir": "a\x00b"}, "preflight_steps[3].ramdisk_dir: 'a\\x00b' must be a folder name inside"),
    ({"ramdisk": ["a\x00.json"]}, "preflight_steps[3].ramdisk: 'a\\x00.json' must be a name inside the step's"),
])
def test_step_entries_the_host_would_refuse_are_refused_before_contact(entry, text):
    # The host refuses them too: accepted here, the hard ramdisk check became "unknown" (a warning) on every host.
    with pytest.raises(_plan.PlanError) as err:
        plan(steps={3: entry})
    assert text in str(err.value)


def test_every_problem_reported_at_once_naming_host_and_field():
    with pytest.raises(_plan.PlanError) as err:
        plan(steps={3: {"ramdisk": ["../escape.json"], "inputs": ["relative.txt"], "extra": 1}},
             skip=["gpu_helth"], hosts=["rig-6600", "rig-6600b"],
             hostvars={"rig-6600": {"expected_gpu_count": "twelve"}, "rig-6600b": {"excluded_gpus": ["ten"]}})
    text = str(err.value)
    for fragment in ("unknown key(s) extra", "'../escape.json' must be a name inside", "'relative.txt' is not an absolute path",
                     "preflight_skip: unknown check 'gpu_helth'; valid checks are: ssh, probe",
                     "rig-6600: expected_gpu_count must be a whole number", "rig-6600b: excluded_gpus: 'ten' is not"):
        assert fragment in text


def test_skip_removes_host_checks_and_sets_backstop():
    got = plan(skip="kernel_log,gpu_temperature", timeouts={"gpu_health": 60})
    assert "kernel_log" not in got["host_checks"] and "gpu_temperature" not in got["host_checks"]
    assert got["host_timeout"] == 60 + _plan.BACKSTOP_MARGIN


def test_cleanup_applies_only_to_distributed_steps(tmp_path):
    assert plan(kind="cleanup", step=5, cleanup_steps=[1, 2, 3])["applies"] is False
    assert plan(kind="cleanup", step=2)["applies"] is True
    assert plan(kind="cleanup", step=2.5)["applies"] is False
    assert plan(kind="cleanup", step="2.5", cleanup_steps=["1", 2.5, "3.0"])["applies"] is True
    assert plan(kind="cleanup", step=3, cleanup_steps="1, 2.5, 3.0")["cleanup_steps"] == ["1", "2.5", "3"]
    with pytest.raises(_plan.PlanError) as err:
        plan(kind="cleanup", step=3, cleanup_steps=[1, "two"])
    assert "cleanup_steps must be a step number" in str(err.value)


def test_cleanup_since_comes_from_the_newest_preflight_summary(tmp_path):
    for stamp, started in (("20261125T100000.000000Z", "2026-11-25T10:00:00+00:00"),
                           ("20261125T110000.000000Z", "2026-11-25T11:00:00+00:00")):
        (tmp_path / ("summary_step3_%s.json" % stamp)).write_text(json.dumps({"started_at": started}))
    got = plan(kind="cleanup", summary_dir=str(tmp_path))
    assert got["since"] == 1795604400.0 and got["since_source"] == "preflight summary"
    # a given since is a time of the past (test_faults_engine.py: one in the future is refused)
    assert plan(kind="cleanup", since="2026-11-25T12:00:00Z", summary_dir=str(tmp_path),
                now=1795608000.0 + 3600)["since"] == 1795608000.0


def test_an_empty_preflight_steps_defines_no_step_instead_of_every_step():
    with pytest.raises(_plan.PlanError) as err:
        plan(steps={})
    assert "step 3 is not in preflight_steps (steps defined: none)" in str(err.value)
    assert plan(steps=None)["requirements"]["ramdisk"] == []  # not defined at all: any step, nothing required


@pytest.mark.parametrize("name,value,fragment", [
    ("preflight_max_age", -1, "preflight_max_age must be a whole number of seconds of 0 or more, got -1"),
    ("preflight_ramdisk_root", "", "preflight_ramdisk_root must be an absolute path, got ''"),
    ("preflight_ramdisk_root", "shm/prng", "must be an absolute path"),
    ("preflight_gpu_tool_timeout", 0, "preflight_gpu_tool_timeout must be a whole number of seconds of 1 or more"),
    ("preflight_gpu_temp_warn_c", float("nan"), "preflight_gpu_temp_warn_c must be a number between 0 and 200"),
    ("preflight_summary_keep", -3, "preflight_summary_keep must be a whole number (0 keeps every summary) of 0"),
    ("preflight_kernel_log", "kern.log", "must be auto, journal, dmesg, none or the absolute path of a file"),
    ("cleanup_vram_min_mb", -5, "cleanup_vram_min_mb must be a number of 0 or more, got -5"),
])
def test_role_variables_out_of_range_are_refused_by_name(name, value, fragment):
    prefix = name.split("_", 1)[0]
    family = _families.family(prefix)
    problems = _plan.variable_problems(family, {name: value, prefix + "_watch_window": None, "unrelated": -1})
    assert len(problems) == 1 and fragment in problems[0]


def test_the_cleanup_plan_never_opens_a_fifo_named_like_a_summary(tmp_path):
    (tmp_path / "summary_step3_20261125T100000.000000Z.json").write_text('{"started_at": "2026-11-25T10:00:00Z"}')
    os.mkfifo(str(tmp_path / "summary_step3_20261125T110000.000000Z.json"))  # newer, and a trap
    os.mkdir(str(tmp_path / "summary_step3_20261125T120000.000000Z.json"))
    got = plan(kind="cleanup", summary_dir=str(tmp_path))
    assert got["since"] == 1795600800.0 and got["since_source"] == "preflight summary"


def test_index_maps_come_from_the_newest_summary_in_which_the_tool_answered(tmp_path):
    def summary(stamp, answered, gpus, prefix="summary_step3", schema=_plan.SUMMARY_SCHEMA):
        doc = {"schema": schema, "hosts": {"rig": {"gpu_tool": {"answered": answered}, "gpus": gpus}}}
        (tmp_path / ("%s_%s.json" % (prefix, stamp))).write_text(json.dumps(doc))

    answered = [{"index": 0, "bdf": "0000:03:00.0", "in_tool_output": True},
                {"index": 1, "bdf": "0000:06:00.0", "in_tool_output": True}]
    summary("20261125T100000.000000Z", True, answered)
    summary("20261125T110000.000000Z", False, [{"index": 0, "bdf": "0000:06:00.0", "in_tool_output": None}])
    os.mkfifo(str(tmp_path / "cleanup_step3_20261125T120000.000000Z.json"))
    assert _plan.index_maps(str(tmp_path), ["rig", "other"]) == {"rig": {"0": "0000:03:00.0", "1": "0000:06:00.0"}}
    assert plan(summary_dir=str(tmp_path), hosts=["rig"], hostvars={})["index_maps"]["rig"]["1"] == "0000:06:00.0"
    # any family's summary counts (a training-health run saw the same host); a file of another schema does not
    summary("20261125T130000.000000Z", True, [{"index": 0, "bdf": "0000:0a:00.0", "in_tool_output": True}],
            prefix="training_health")
    summary("20261125T140000.000000Z", True, [{"index": 0, "bdf": "0000:0b:00.0", "in_tool_output": True}],
            prefix="notes", schema="someone.else")
    assert _plan.index_maps(str(tmp_path), ["rig"]) == {"rig": {"0": "0000:0a:00.0"}}
    # a family that probes no GPU reads no earlier summary for them
    gate = _plan.build_plan("serving_gate", None, hosts=["rig"], summary_dir=str(tmp_path))
    assert gate["index_maps"] == {}


FAILED_RUN = {"time": "2026-11-20T10:00:00Z", "step": 1, "trials": 50, "completed_trials": 50, "max_seeds": 10000000,
              "survivors": 0, "duration_s": 7200, "study": "window_opt_1763632800", "outcome": "completed"}


def test_run_budget_warns_on_a_plan_that_repeats_a_failed_run_and_never_blocks(tmp_path):
    history = tmp_path / "runs.jsonl"
    history.write_text(json.dumps(FAILED_RUN) + "\n")
    inputs = {"run_budget_params": {"trials": 50, "max_seeds": 10000000}, "run_history_file": str(history)}
    got = plan(step=1, steps={1: {}}, inputs=inputs)
    result = got["run_checks"]["run_budget"]
    assert result["status"] == "warn" and "run_budget_params" in result["message"]
    from ansible_collections.gpuops.preflight.plugins.module_utils import _summary

    summary = _summary.build_summary(got, [], finished=1001.0)
    assert summary["passed"] is True
    assert [(w["host"], w["check"]) for w in summary["warnings"]] == [("controller", "run_budget")]
    assert summary["run_checks"]["run_budget"]["status"] == "warn"
    # another step, or a variable missing: the check does not run at all
    assert plan(step=3, inputs=inputs)["run_checks"] == {}
    assert plan(step=1, steps={1: {}}, inputs={"run_history_file": str(history)})["run_checks"] == {}
    # and it can be skipped by name like any other check
    assert plan(step=1, steps={1: {}}, inputs=inputs, skip=["run_budget"])["run_checks"]["run_budget"]["status"] == \
        "skipped"


def test_a_family_checks_the_ranges_of_its_own_role_variables():
    health = _families.family("training_health")
    problems = _plan.variable_problems(health, {"training_health_stall_timeout": 0, "training_health_base_dir": "rel",
                                                "training_health_min_free_gb": 10, "preflight_max_age": -1,
                                                "training_health_crash_log_lines": 10 ** 6})
    assert problems == ["training_health_base_dir must be an absolute path, got 'rel'",
                        "training_health_crash_log_lines must be a whole number of lines from 1 to 100000, got 1000000",
                        "training_health_stall_timeout must be a whole number of seconds of 1 or more, got 0"]


def test_a_family_with_one_budget_has_it_as_its_backstop():
    # the serving gate: every check ends within serving_gate_timeout; the task may take its margin more
    gate = _plan.build_plan("serving_gate", None, hosts=["serve-1"], budget="15")
    assert gate["host_timeout"] == 15 + _serving_gate.BACKSTOP_MARGIN
    assert _plan.build_plan("serving_gate", None, hosts=["serve-1"], budget=0.5)["host_timeout"] == 1 + 60
    without = _plan.build_plan("serving_gate", None, hosts=["serve-1"])
    assert without["host_timeout"] == max(c.timeout for c in _serving_gate.CHECKS.values()
                                          if c.where == "host") + _serving_gate.BACKSTOP_MARGIN
    for bad in (0, -1, float("nan"), 8 * 86400):
        with pytest.raises(_plan.PlanError, match="budget must be a number of seconds above 0 and at most 604800, got"):
            _plan.build_plan("serving_gate", None, hosts=["serve-1"], budget=bad)
    for bad in ("abc", True):
        with pytest.raises(_plan.PlanError, match="budget must be a number of seconds, got"):
            _plan.build_plan("serving_gate", None, hosts=["serve-1"], budget=bad)
