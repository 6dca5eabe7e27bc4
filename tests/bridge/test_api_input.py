"""Bad input to the Python API and hostile paths: a clear error in the report, never a TypeError or a hang."""

from __future__ import annotations

import os
import tempfile
import threading

import pytest
import yaml

import gpuops_preflight as gp
from bridge.helpers import run_options


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(skip=5), "skip must be a list, got int"),
    (dict(skip=["gpu_health", 3]), "skip: check names must be text"),
    (dict(summary_dir=3), "summary_dir must be a path, got 3"),
    (dict(timeout=float("nan")), "timeout must be a number of seconds"),
    (dict(timeout=-1), "timeout must be a number of seconds"),
    (dict(extravars=["step=3"]), "extravars must be a mapping"),
    (dict(inventory=7), "inventory must be a list, got int"),
    (dict(keep_artifacts=-1), "keep_artifacts must be a whole number of 0 or more"),
    (dict(cancel="soon"), "cancel must be a threading.Event or a callable"),
    (dict(verbosity="loud"), "verbosity must be a whole number"),
])
def test_wrong_argument_types_are_bad_input_in_the_report(tmp_path, kwargs, fragment):
    kwargs.setdefault("inventory", str(tmp_path))
    report = gp.run_preflight(3, log=False, **kwargs)
    assert report.status == "error" and fragment in report.error, report.error
    assert report.as_step_result()["success"] is False


def test_cleanup_steps_of_the_wrong_type(tmp_path):
    report = gp.run_cleanup(3, inventory=str(tmp_path), cleanup_steps=3, log=False)
    assert report.status == "error" and report.error == "cleanup_steps must be a list, got int"


def test_an_inventory_given_as_a_dict_is_used(scenario, tmp_path):
    sc = scenario("healthy")
    with open(sc.inventory) as handle:
        document = yaml.safe_load(handle)
    report = gp.run_preflight(sc.step, inventory=document, **run_options(tmp_path))
    assert report.status == "passed", report.reason()
    assert report.hosts["rig-6600"]["usable_gpus"] == list(range(12))


def test_a_dict_inventory_that_cannot_be_written_is_bad_input_before_anything_is_made(tmp_path):
    looped = {"all": {"vars": {}}}
    looped["all"]["vars"]["self"] = looped
    for inventory, fragment in (({"all": {"hosts": {"rig-6600": {"gpus": object()}}}}, "is not JSON serializable"),
                                (looped, "Circular reference detected")):
        report = gp.run_preflight(3, inventory=inventory, log=False, **run_options(tmp_path))
        assert report.status == "error" and report.error.startswith(
            "inventory: a mapping that cannot be written as YAML: ") and fragment in report.error, report.error
    assert not os.path.exists(str(tmp_path / "runs")) or os.listdir(str(tmp_path / "runs")) == []


def test_an_artifacts_dir_that_cannot_hold_a_run_folder_is_a_clear_error(tmp_path, caplog):
    afile = tmp_path / "afile"
    afile.write_text("")
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all: {}\n")
    for where, said in ((afile, "%s: File exists" % afile), (afile / "sub", "%s: Not a directory" % (afile / "sub"))):
        report = gp.run_preflight(3, inventory=str(inventory), artifacts_dir=str(where))
        assert report.status == "error" and report.error == "the run's folders cannot be made: " + said, report.error
    assert "Traceback" not in caplog.text


def test_a_fifo_where_the_failure_log_should_be_never_hangs_the_run(scenario, tmp_path):
    sc = scenario("missing_ramdisk_file")
    fifo = str(tmp_path / "failures.jsonl")
    os.mkfifo(fifo)
    done = {}
    worker = threading.Thread(target=lambda: done.update(report=gp.run_preflight(
        sc.step, inventory=sc.inventory, failure_log=fifo, timeout=120, **run_options(tmp_path))))
    worker.start()
    worker.join(150)
    assert not worker.is_alive(), "the run hung on the FIFO"
    assert done["report"].status == "blocked"
    with pytest.raises(ValueError, match="not a regular file"):
        gp.query_failures(fifo)


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(extravars={"preflight_step": "1"}), "extravars: preflight_step is set by the bridge itself"),
    (dict(extravars={"step": 5}), "extravars: step is set by the bridge itself"),
    (dict(extravars={"ansible_control_path_dir": "/tmp"}), "extravars: ansible_control_path_dir is set by"),
    (dict(extravars={"preflight_skip": ["a"]}, skip=["b"]), "extravars: preflight_skip is also set by a keyword"),
])
def test_extravars_cannot_set_the_bridges_own_variables(tmp_path, kwargs, fragment):
    report = gp.run_preflight(3, inventory=str(tmp_path), log=False, **run_options(tmp_path, **kwargs))
    assert report.status == "error" and fragment in report.error, report.error
    assert not os.path.exists(tmp_path / "runs")  # refused before any folder is made


def test_cleanup_step_cannot_come_from_extravars(tmp_path):
    report = gp.run_cleanup(3, inventory=str(tmp_path), extravars={"cleanup_step": "1"}, log=False)
    assert report.status == "error" and "cleanup_step is set by the bridge itself" in report.error


@pytest.mark.parametrize("envvars,fragment", [
    ({"GPUOPS_PREFLIGHT_RUN": "mine"}, "envvars: GPUOPS_PREFLIGHT_RUN is set by the bridge itself"),
    ({"ANSIBLE_COLLECTIONS_PATH": "/elsewhere"}, "envvars: ANSIBLE_COLLECTIONS_PATH is set by the bridge itself"),
    ({"ANSIBLE_CONFIG": "/x.cfg"}, "envvars: ANSIBLE_CONFIG is set by the bridge itself"),
    ({"HTTP_PROXY": "a\x00b"}, "envvars: 'HTTP_PROXY' cannot be passed to a process"),
    ({"A=B": "c"}, "envvars: 'A=B' cannot be passed to a process"),
    # str() made these "None", "True", "['a']": a proxy named None
    ({"HTTP_PROXY": None}, "envvars: HTTP_PROXY must be text or a number, got None"),
    ({"NO_PROXY": ["a", "b"]}, "envvars: NO_PROXY must be text or a number, got ['a', 'b']"),
    ({"DEBUG": True}, "envvars: DEBUG must be text or a number, got True"),
])
def test_envvars_cannot_override_the_runs_own_environment(tmp_path, envvars, fragment):
    report = gp.run_preflight(3, inventory=str(tmp_path), envvars=envvars, log=False, **run_options(tmp_path))
    assert report.status == "error" and fragment in report.error, report.error
    assert not os.path.exists(tmp_path / "runs")


class _NumpyLikeInt:
    def __index__(self):
        return 3


LOOP = {}
LOOP["me"] = LOOP   # a mapping that holds itself: no JSON


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(step="3; rm -rf /"), "step must be a step number of 0 or more"),
    (dict(step="a/b"), "step must be a step number of 0 or more"),
    (dict(step="../../x"), "step must be a step number of 0 or more"),
    (dict(step=[3]), "step must be a step number"),
    (dict(extravars={"x": {1, 2}}), "extravars: values must be JSON"),
    (dict(extravars=LOOP), "extravars: values must be JSON"),
    (dict(extravars={'z":0,"preflight_step":"9","w': 1}), "is not a variable name"),
    (dict(timeout=10 ** 400), "timeout must be a number of seconds up to"),
    (dict(artifacts_dir="/tmp/a\x00b"), "artifacts_dir: a path cannot hold a NUL byte"),
    (dict(ansible_cfg="/nonexistent/ansible.cfg"), "ansible_cfg not found: /nonexistent/ansible.cfg"),
])
def test_bad_input_is_refused_before_any_folder_is_made(tmp_path, kwargs, fragment):
    step = kwargs.pop("step", 3)
    options = run_options(tmp_path, **kwargs)
    report = gp.run_preflight(step, inventory=str(tmp_path), log=False, **options)
    assert report.status == "error" and fragment in report.error, report.error
    assert not os.path.exists(tmp_path / "runs") or not os.listdir(tmp_path / "runs")


@pytest.mark.parametrize("step", [3, "3", 2.5, " 2.5 ", _NumpyLikeInt()])
def test_steps_the_plan_accepts_pass_the_input_check(step):
    from gpuops_preflight import runner

    assert runner._step(step) in (3, "3", 2.5, " 2.5 ")


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("kwargs,said", [
    (dict(extravars={"limits": {"x": NAN}}), "extravars['limits']['x'] is not a finite number (nan)"),
    (dict(extravars={"preflight_gpu_temp_warn_c": INF}), "extravars['preflight_gpu_temp_warn_c'] is not a finite number (inf)"),
    (dict(extravars={"limits": [1.5, {"y": [0, -INF]}]}), "extravars['limits'][1]['y'][1] is not a finite number (-inf)"),
    (dict(extravars={"limits": ({"ok": 1.0}, NAN)}), "extravars['limits'][1] is not a finite number (nan)"),
    (dict(extravars={"limits": {NAN: 1}}), "extravars['limits'] has a key that is not a finite number (nan)"),
    (dict(extravars={"me": LOOP, "x": [NAN]}), "extravars['x'][0] is not a finite number (nan)"),
])
def test_nan_and_infinity_are_refused_naming_the_key_before_any_folder_is_made(tmp_path, monkeypatch, kwargs, said):
    """json.dumps would write NaN/Infinity, which are not JSON, into the -e argument Ansible reads."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where the run's SSH and temp folders go
    report = gp.run_preflight(3, inventory=str(tmp_path), log=False, **run_options(tmp_path, **kwargs))
    assert report.status == "error" and report.error == said + ": JSON has no NaN or Infinity", report.error
    assert not os.path.exists(tmp_path / "runs") and not os.path.exists(tmp_path / "tmp")


def test_a_keyword_argument_that_is_not_a_finite_number_is_refused_by_its_variable(tmp_path):
    report = gp.run_cleanup(3, inventory=str(tmp_path), cleanup_steps=[3, NAN], log=False, **run_options(tmp_path))
    assert report.status == "error" and report.error.startswith("cleanup_steps[1] is not a finite number (nan)")
    assert not os.path.exists(tmp_path / "runs")


def runner_argument(folder, variables):
    """The -e argument ansible-runner itself builds for ``variables`` (the reference the size check must match)."""
    from ansible_runner.config.runner import RunnerConfig

    config = RunnerConfig(private_data_dir=str(folder), binary="/bin/true", cmdline="gpuops.preflight.preflight",
                          extravars=variables, suppress_env_files=True)
    command = config.generate_ansible_command()
    return command[command.index("-e") + 1]


def test_the_size_check_measures_the_argument_ansible_runner_passes(tmp_path):
    from gpuops_preflight import runner

    variables = {"text": 'caf\u00e9 "quoted" \\ \u2603', "n": [1, 2.5, -0.0, 10 ** 30, None, True],
                 "nested": {"a": {"b": ["c"]}, "1": {}}, "step": 3, "ansible_control_path_dir": "/tmp/ssh-x"}
    assert runner._extravars_argument(variables) == runner_argument(tmp_path / "reference", variables)


def test_extravars_over_the_limit_by_one_byte_are_refused_the_runs_own_variable_counted(tmp_path, monkeypatch):
    """The limit holds for the -e argument the run passes: the caller's variables, the keyword arguments',
    the step and the run's SSH control folder, written as ansible-runner writes them; nothing is left."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    options = run_options(tmp_path)
    base = tmp_path / "tmp" / ("gpuops-preflight-%d" % os.getuid())
    # the control folder's name as the run will make it: <tmp>/gpuops-preflight-<uid>/ssh-<8 characters>
    rest = runner_argument(tmp_path / "reference", {
        "blob": "", "preflight_summary_dir": options["summary_dir"], "step": 3,
        "ansible_control_path_dir": str(base / "ssh-abcdefgh")})
    blob = "x" * (98304 + 1 - len(rest))
    report = gp.run_preflight(3, inventory=str(tmp_path), extravars={"blob": blob}, log=False, **options)
    assert report.status == "error" and report.error == (
        "extravars: 98305 bytes as JSON, more than the 98304 a command line argument may hold"), report.error
    assert os.listdir(tmp_path / "runs") == [] and os.listdir(base) == []


def test_an_ansible_playbook_that_cannot_be_started_is_named(tmp_path, monkeypatch):
    """ansible-playbook vanished (or lost its execute bit) after the integration was found: ansible-runner
    says so in a line of its own, which the report's error now quotes instead of 'ended without a summary'."""
    from gpuops_preflight import locate

    found = locate.find_integration()
    monkeypatch.setattr(locate, "find_integration",
                        lambda: found._replace(playbook_bin=str(tmp_path / "gone" / "ansible-playbook")))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("rigs: {hosts: {rig-1: {}}}\n")
    report = gp.run_preflight(3, inventory=str(inventory), log=False, **run_options(tmp_path))
    assert report.status == "error" and (report.runner_status, report.rc) == ("failed", 127)
    assert report.error == "The command was not found or was not executable: %s." % (
        tmp_path / "gone" / "ansible-playbook")
    assert report.as_step_result()["blocked_by"] == "preflight_error"
