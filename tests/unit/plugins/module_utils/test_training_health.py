"""The training-health family (_training_health): its declarations, its options, and every check on simulated
training hosts (tests/simtrain) through the one host runner, as node_training_health runs it.

Each scenario of tests/simtrain changes one thing on a healthy host (an RTX 3090 from recorded nvidia-smi output, a
real stand-in daemon, recorded checkpoints and logs): exactly the checks it names are not ok, with the right message.
"""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks, _families, _plan, _summary
from ansible_collections.gpuops.preflight.plugins.module_utils import _training_checks as tc
from ansible_collections.gpuops.preflight.plugins.module_utils import _training_health as th
from ansible_collections.gpuops.preflight.plugins.module_utils._values import clean_text
from simtrain import SCENARIOS, host_set, names, run_checks, statuses
from simtrain.runner import run_family
from simtrain.trees import tree_hash

# The severities issue 10 gives each check. `gpu` is soft "but hard when no GPU is usable": it is declared hard
# (only a hard check's fail blocks) and fails for that alone; an unhealthy GPU beside a usable one warns.
ISSUE_SEVERITY = {"daemon": "hard", "progress": "soft", "disk_space": "soft", "memory": "soft", "gpu": "hard",
                  "config": "hard", "permissions": "soft", "layout": "hard", "checkpoint": "soft",
                  "crash_log": "soft", "config_lock": "hard", "checkpoint_resume": "hard"}


@pytest.fixture
def hosts():
    """make(name=..., mode=..., scenario=..., gpus=...) -> a TrainHost; every daemon stopped and folder removed after."""
    with host_set() as made:
        yield made.make


# -- declarations ----------------------------------------------------------------------------------


def test_the_family_declares_every_check_of_the_issue_once():
    family = th.FAMILY
    assert _families.family("training_health") is family
    assert dict((n, family.checks[n].severity) for n in family.host_checks) == ISSUE_SEVERITY
    assert [n for n, s in family.checks.items() if s.where == _checks.CONTROLLER] == ["ssh", "probe"]
    codes = [family.checks[n].code for n in family.host_checks]
    assert len(set(codes)) == len(codes) and all(c.startswith("TRAINING_") for c in codes)
    for spec in family.checks.values():
        assert spec.timeout > 0 and spec.summary.endswith(".") and spec.fix and spec.label
    assert (family.node_module, family.stats_key, family.file_prefix, family.option_prefix, family.steps) == (
        "node_training_health", "gpuops_training_health", "training_health", "training_health", False)


def test_every_check_needs_real_collectors_and_nothing_reads_before_fix_mode():
    for name in th.FAMILY.host_checks:
        assert set(th.CHECKS[name].needs) <= set(th.COLLECTORS), name
    for name, collector in th.COLLECTORS.items():
        assert set(collector.after) <= set(th.COLLECTORS), name
        if name not in ("settings", "fix", "gpu_view"):
            assert "fix" in collector.after, name   # fix mode runs first; the checks see the repaired host


def test_options_default_to_the_hosts_documented_defaults():
    defaults = th.defaults()
    settings = th.host_settings(dict(defaults, training_base_dir="/srv/training"))
    assert settings["min_free_bytes"] == 50 * 1000 ** 3 and settings["min_available_bytes"] == 4 * 1000 ** 3
    assert settings["dir_mode"] == 0o750 and settings["config_file"] == "/srv/training/config.json"
    for key in ("pid_file", "status_file", "checkpoint_dir", "lock_file", "history_file"):
        assert settings[key] == os.path.join("/srv/training", tc.DEFAULTS[key]), key
    assert defaults["fix"] is False and defaults["stall_timeout"] == 900 and defaults["eval_timeout"] == 1800


@pytest.mark.parametrize("changes, text", [
    ({"training_base_dir": "relative/dir"}, "training_base_dir must be an absolute path"),
    ({"stall_timeout": 0}, "stall_timeout must be a whole number of seconds of 1 or more, got 0"),
    ({"min_free_gb": -1.0}, "min_free_gb must be a number of 0 or more, got -1.0"),
    ({"min_memory_gb": float("nan")}, "min_memory_gb must be a number of 0 or more, got nan"),
    ({"checkpoint_max_age": -5}, "checkpoint_max_age must be a whole number of seconds of 0 or more, got -5"),
    ({"crash_log_lines": 0}, "crash_log_lines must be a whole number of lines from 1 to 100000, got 0"),
    ({"expected_gpu_count": -1}, "expected_gpu_count must be 0 or more"),
    ({"dir_mode": "0500"}, "dir_mode must let the owner read, write and enter"),
    ({"dir_mode": "rwxr-x---"}, "dir_mode must be an octal mode such as '0750'"),
    ({"required_dirs": ["../etc"]}, "inside training_base_dir (relative, without '..', not the base folder"),
])
def test_bad_options_are_named(changes, text):
    params = dict(th.defaults(), training_base_dir="/srv/training")
    params.update(changes)
    assert any(text in p for p in th.validate(params)), th.validate(params)


def test_modes_are_octal_text():
    assert th.parse_mode("0750") == th.parse_mode("750") == th.parse_mode("0o750") == 0o750
    with pytest.raises(ValueError):
        th.parse_mode("488")   # an unquoted YAML 0750 arrives as 488: refused, not taken as another mode


# -- every check on simulated hosts ----------------------------------------------------------------


@pytest.mark.parametrize("name", names())
def test_scenario(hosts, name):
    scenario = SCENARIOS[name]
    host = hosts(scenario=name)
    results = run_checks(host, **scenario.settings)
    want = dict((check, "ok") for check in th.FAMILY.host_checks)
    want.update(scenario.expect)
    assert statuses(results) == want, dict((k, v["message"]) for k, v in results.items() if v["status"] != "ok")
    for check, text in scenario.messages.items():
        assert text in results[check]["message"], results[check]["message"]
    for result in results.values():
        for problem in result["problems"]:
            assert problem["fix"] and "\n" not in problem["message"]
    assert clean_text(results) == results and json.dumps(results)  # plain, valid UTF-8 JSON


def test_the_catalogue_makes_every_check_fail_on_its_own():
    covered = set()
    for scenario in SCENARIOS.values():
        covered.update(c for c, status in scenario.expect.items() if status != "ok")
    assert covered == set(th.FAMILY.host_checks)
    assert SCENARIOS["healthy"].expect == {} and SCENARIOS["healthy_lora"].expect == {}


def judge(results):
    """The controller's verdict on one host's module result: (blocked checks, warned checks)."""
    plan = _plan.build_plan("training_health", None, hosts=["train"])
    summary = _summary.build_summary(plan, [("train", "train", results)])
    return (sorted(i["check"] for i in summary["hard_failures"]), sorted(i["check"] for i in summary["warnings"]))


@pytest.mark.parametrize("name, blocked, warned", [
    ("healthy", [], []),
    ("gpu_lost", ["gpu"], ["gpu"]),                  # the lost GPU warns, "none usable" blocks
    ("gpu_one_of_two_lost", [], ["gpu"]),
    ("crash_oom", [], ["crash_log"]),                # a soft check: its findings warn
    ("base_model_changed", ["config_lock"], []),
    ("stalled", [], ["progress"]),
])
def test_the_judge_blocks_only_on_hard_checks(hosts, name, blocked, warned):
    host = hosts(scenario=name)
    assert judge(run_family(host, **SCENARIOS[name].settings)) == (blocked, warned)


def test_a_lora_and_a_full_host_both_pass_with_their_own_layout(hosts):
    for mode, layout in (("full", "full"), ("lora", "lora")):
        host = hosts(name="h-" + mode, mode=mode)
        host.start_daemon()
        results = run_checks(host, ["checkpoint_resume", "checkpoint"])
        assert statuses(results) == {"checkpoint_resume": "ok", "checkpoint": "ok"}
        assert "(%s, step" % layout in results["checkpoint_resume"]["message"]


def test_base_model_change_blocks_only_while_checkpoints_exist(hosts):
    host = hosts(scenario="base_model_changed")
    assert run_checks(host, ["config_lock"])["config_lock"]["status"] == "fail"
    shutil.rmtree(host.path("current_model", "checkpoint-5000"))
    result = run_checks(host, ["config_lock"])["config_lock"]
    assert result["status"] == "warn" and "base_model changed" in result["message"]
    assert os.path.isdir(host.path("current_model"))


def test_a_host_without_any_gpu_is_blocked(hosts, tmp_path):
    host = hosts(gpus=0)
    host.start_daemon()
    (tmp_path / "bus" / "pci" / "devices").mkdir(parents=True)  # a PCI bus without a GPU (none at all is unknown)
    result = run_checks(host, ["gpu"], gpu_tool="sysfs", sysfs_root=str(tmp_path))["gpu"]
    assert result["status"] == "fail" and "no GPU found" in result["message"]


def test_without_a_pid_file_the_daemon_is_skipped_and_progress_still_measured(hosts):
    host = hosts(scenario="stalled")
    results = run_checks(host, pid_file="none", stall_timeout=1)
    assert results["daemon"]["status"] == "skipped" and "pid_file: none" in results["daemon"]["message"]
    assert results["progress"]["status"] == "warn" and "training stalled" in results["progress"]["message"]


def test_the_status_file_is_read_once_a_run_for_every_check_that_reads_it(hosts, monkeypatch):
    host = hosts(scenario="stalled")
    read = []
    real = tc._progress.read_status
    monkeypatch.setattr(tc._progress, "read_status", lambda path, *a: read.append(path) or real(path, *a))
    results = run_checks(host, ["progress", "checkpoint", "checkpoint_resume"], stall_timeout=1)
    assert read == [host.path("status", "training_status.json")]
    assert results["progress"]["status"] == "warn" and "training stalled" in results["progress"]["message"]


def test_progress_is_unknown_for_the_status_readers_reason(hosts, monkeypatch):
    host = hosts(scenario="healthy")
    monkeypatch.setattr(tc._progress, "read_status", lambda path, *a: 1 / 0)
    result = run_checks(host, ["progress"])["progress"]
    assert result["status"] == "unknown" and result["message"].startswith("reading the status file: failed: ")


def test_a_dead_daemon_is_the_daemon_checks_alone(hosts):
    host = hosts(scenario="daemon_dead")
    results = run_checks(host, ["daemon", "progress"])
    assert statuses(results) == {"daemon": "fail", "progress": "ok"}
    assert "daemon is not running (see the daemon check)" in results["progress"]["message"]


def test_the_result_publishes_the_gpu_probe(hosts):
    host = hosts(scenario="healthy")
    result = run_family(host)
    assert result["changed"] is False and result["fix"] is None and result["step"] is None
    assert result["gpu_count"] == 1 and result["usable_gpus"] == [0]
    assert result["gpus"][0]["bdf"] == host.gpu.gpus[0]["bdf"] and result["gpu_tool"]
    assert host.gpu.tool_calls()   # the recorded nvidia-smi answered, once per run
    assert len(host.gpu.tool_calls()) == 1


# -- fix mode and check mode ---------------------------------------------------------------------------


def break_safely(host):
    """What fix mode may repair: a missing daemon folder, one the service user cannot write."""
    os.rmdir(host.path("queue"))
    os.chmod(host.path("logs"), 0o500)


def test_fix_runs_first_and_the_checks_see_the_repaired_host(hosts):
    host = hosts()
    host.start_daemon()
    break_safely(host)
    broken = run_checks(host, ["layout", "permissions"])
    assert statuses(broken) == {"layout": "fail", "permissions": "warn"}
    fixed = run_family(host, ["layout", "permissions"], fix=True)
    assert fixed["changed"] is True
    assert sorted((c["action"], os.path.basename(c["path"])) for c in fixed["fix"]["changes"]) == [
        ("chmod", "logs"), ("mkdir", "queue")]
    assert statuses(dict((n, fixed["checks"][n]) for n in ("layout", "permissions"))) == {
        "layout": "ok", "permissions": "ok"}
    assert "mkdir %s: absent" % host.path("queue") in fixed["diff"]["before"]
    assert stat.S_IMODE(os.stat(host.path("queue")).st_mode) == 0o750
    again = run_family(host, fix=True)
    assert again["changed"] is False and again["fix"] == {"changes": [], "errors": []} and "diff" not in again


def test_check_mode_changes_nothing_and_says_what_fix_would_do(hosts):
    host = hosts(scenario="crash_oom")
    break_safely(host)
    before = tree_hash(host.root, host.moving())
    result = run_family(host, fix=True, check_mode=True)
    assert tree_hash(host.root, host.moving()) == before   # no folder, no mode, no crash history written
    assert result["changed"] is True
    assert sorted(os.path.basename(c["path"]) for c in result["fix"]["changes"]) == ["logs", "queue"]
    assert result["checks"]["layout"]["status"] == "fail"   # nothing was created
    assert not os.path.exists(host.path(".crash_history.json"))


def test_new_crashes_are_recorded_once(hosts):
    host = hosts(scenario="crash_oom")
    first = run_family(host, ["crash_log"])
    assert first["changed"] is True and os.path.isfile(host.path(".crash_history.json"))
    again = run_family(host, ["crash_log"])
    assert again["changed"] is False and again["checks"]["crash_log"]["status"] == "fail"
    untouched = run_family(host, ["crash_log"], record_crashes=False)
    assert untouched["changed"] is False


def test_what_fix_mode_may_not_do_is_reported_under_its_check(hosts, monkeypatch):
    host = hosts()
    host.start_daemon()
    denied = {"changed": False, "changes": [], "diff": {}, "errors": [
        {"action": "mkdir", "path": host.path("queue"), "before": None, "after": "0o750 1:1",
         "error": "only root can create it for uid 1"},
        {"action": "chown", "path": host.path("logs"), "before": "0:0", "after": "1:1",
         "error": "only root can change the owner"}]}
    monkeypatch.setattr(tc, "fix_host", lambda settings: denied)
    results = run_family(host, ["layout", "permissions"], fix=True)["checks"]
    assert results["layout"]["status"] == "warn" and "fix mode could not mkdir" in results["layout"]["message"]
    assert "fix mode could not chown %s: only root" % host.path("logs") in results["permissions"]["message"]

    def broken(settings):
        raise OSError("boom")
    monkeypatch.setattr(tc, "fix_host", broken)
    results = run_family(host, ["layout"], fix=True)["checks"]
    assert results["layout"]["status"] == "unknown" and "fix mode: failed" in results["layout"]["message"]


# -- the role and the docs are held to the family -------------------------------------------------------

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")


def _yaml(*parts):
    import yaml
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_the_role_passes_every_option_and_documents_every_variable():
    spec = _yaml("roles", "training_health", "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    defaults = _yaml("roles", "training_health", "defaults", "main.yml")
    assert sorted(spec) == sorted(defaults)
    for name, option in spec.items():
        if "{{" not in str(defaults[name]):
            assert option.get("default") == defaults[name], name
    task = [t for t in _yaml("roles", "training_health", "tasks", "main.yml")
            if "gpuops.preflight.node_training_health" in t][0]["gpuops.preflight.node_training_health"]
    for option in th.OPTIONS:
        assert option in task, option   # every path and threshold is a role variable
        if option not in ("training_base_dir", "expected_gpu_count"):
            assert "training_health_%s" % option in spec, option
    with open(os.path.join(ROOT, "docs", "TRAINING.md"), encoding="utf-8") as handle:
        doc = handle.read()
    for name in spec:
        suffix = name[len("training_health"):]
        assert "`%s`" % name in doc or "`%s`" % suffix in doc or "%s`" % suffix in doc, name


def test_the_cli_flags_of_local_are_options_of_the_module():
    from gpuops_preflight.commands import training_health as command
    assert set(command.LOCAL_FLAGS) <= set(th.OPTIONS)
