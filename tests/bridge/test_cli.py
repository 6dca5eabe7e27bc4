"""gpuops-preflight: output and exit codes, run as WATCHER's host would (a subprocess, no venv activated)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bridge.helpers import BIN, REPO

from gpuops_preflight.cli import EXIT_BLOCKED, EXIT_NOT_RUN, EXIT_PASSED, exit_code
from gpuops_preflight.report import Report

CLI = os.path.join(BIN, "gpuops-preflight")


def bare_env(**extra):
    """No activated venv: the venv's bin is not on PATH, no VIRTUAL_ENV, nothing of Ansible's."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ["HOME"], "LANG": "C.UTF-8",
           # This clone's package, not the one a shared venv's editable install points at (another clone).
           "PYTHONPATH": os.path.join(REPO, "src")}
    env.update(extra)
    return env


def cli(args, cwd, command=(CLI,), **env):
    return subprocess.run(list(command) + list(args), cwd=str(cwd), env=bare_env(**env), capture_output=True,
                          text=True, timeout=300, check=False)


def opts(tmp_path):
    return ["--summary-dir", str(tmp_path / "summaries"), "--artifacts-dir", str(tmp_path / "runs")]


def test_json_summary_and_exit_0_from_any_folder_without_the_venv(scenario, tmp_path):
    sc = scenario("healthy")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # python -m, with the venv's interpreter only: no PATH entry, no activation, not the repo's folder
    done = cli(["preflight", "--step", "3", "-i", sc.inventory, "--json"] + opts(tmp_path), elsewhere,
               command=(sys.executable, "-m", "gpuops_preflight"))
    assert done.returncode == EXIT_PASSED, done.stderr + done.stdout
    summary = json.loads(done.stdout)
    assert summary["schema"] == "gpuops.preflight.summary" and summary["kind"] == "preflight"
    assert summary["passed"] is True and summary["hosts"]["rig-6600"]["usable_gpus"] == list(range(12))
    assert os.listdir(elsewhere) == []  # nothing written where it ran


def test_blocked_readable_report_and_exit_1(scenario, tmp_path):
    sc = scenario("missing_ramdisk_file")
    done = cli(["preflight", "--step", "3", "-i", sc.inventory] + opts(tmp_path), tmp_path)
    assert done.returncode == EXIT_BLOCKED, done.stderr + done.stdout
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Preflight BLOCKED for step 3: 1 hard failure(s)")
    assert any(line.startswith("Preflight BLOCKED: ramdisk: rig-6600: ") and "holdout_history.json" in line
               for line in lines)
    assert any(line.startswith("    fix: ") for line in lines)
    assert "[ERROR] Preflight BLOCKED: RAMDISK_NOT_READY: rig-6600: " in done.stderr


def test_bad_input_exit_2_with_json_report(scenario, tmp_path):
    sc = scenario("healthy")
    done = cli(["preflight", "--step", "9", "-i", sc.inventory, "--json", "-q"] + opts(tmp_path), tmp_path)
    assert done.returncode == EXIT_NOT_RUN
    report = json.loads(done.stdout)
    assert report["summary"] is None and report["status"] == "error" and report["blocked_by"] == "preflight_error"
    assert "step 9 is not in preflight_steps" in report["error"]
    assert done.stderr == ""  # -q


def test_missing_inventory_exit_2(tmp_path):
    done = cli(["preflight", "--step", "3", "-i", str(tmp_path / "missing.yml")] + opts(tmp_path), tmp_path)
    assert done.returncode == EXIT_NOT_RUN
    assert "Preflight could not run: inventory not found: %s" % (tmp_path / "missing.yml") in done.stdout


def test_runner_missing_exit_2(tmp_path):
    code = ("import sys; sys.modules['ansible_runner'] = None\n"
            "from gpuops_preflight.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    done = cli(["preflight", "--step", "3", "-i", str(tmp_path)], tmp_path, command=(sys.executable, "-c", code))
    assert done.returncode == EXIT_NOT_RUN
    assert done.stdout.startswith("Preflight unavailable: ansible-runner is not installed")


def test_cleanup_exit_0_and_nothing_to_do_for_a_local_step(scenario, tmp_path):
    sc = scenario("dirty_after_step")
    done = cli(["cleanup", "--step", "3", "-i", sc.inventory, "-v"] + opts(tmp_path), tmp_path)
    assert done.returncode == EXIT_PASSED, done.stderr + done.stdout
    assert done.stdout.startswith("Cleanup for step 3 complete: 1 of 1 node(s) cleaned")
    assert "[INFO] [CLEANUP] Complete: 1 nodes cleaned" in done.stderr
    done = cli(["cleanup", "--step", "5", "--cleanup-steps", "1,2,3", "-i", sc.inventory] + opts(tmp_path), tmp_path)
    assert done.returncode == EXIT_PASSED, done.stderr + done.stdout
    assert done.stdout.startswith("Cleanup: nothing to do for step 5 (not a distributed step)")


def test_exit_code_of_every_status():
    def code(status):
        return exit_code(Report(kind="preflight", step=3, status=status, run_id="x", started_at="",
                                finished_at="", duration_s=0.0))
    assert [code(s) for s in ("passed", "blocked", "timeout", "canceled", "error", "unavailable")] == [0, 1, 2, 2, 2, 2]


def test_bad_step_is_refused_by_the_cli_itself(capsys):
    from gpuops_preflight import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["preflight", "--step", "three", "-i", "/nonexistent/inventory.yml"])
    assert exc.value.code == EXIT_NOT_RUN == 2
    assert ("--step: must be a step number of 0 or more, whole or decimal (e.g. --step 3 or --step 2.5), got 'three'"
            in capsys.readouterr().err)


def test_an_unknown_option_is_named_by_its_command_with_that_commands_usage(capsys):
    from gpuops_preflight import cli

    # argparse says it at the top level, whose parser lists only the commands built for this call
    with pytest.raises(SystemExit) as exc:
        cli.main(["gate", "--instance", "agent", "--map", "models.json"])
    err = capsys.readouterr().err
    assert exc.value.code == EXIT_NOT_RUN
    assert "gpuops-preflight gate: error: unrecognized arguments: --map models.json" in err
    assert err.startswith("usage: gpuops-preflight gate ")


def test_a_decimal_step_from_the_cli(scenario, tmp_path):
    sc = scenario("between_steps")
    done = cli(["preflight", "--step", "2.50", "-i", sc.inventory, "--json"] + opts(tmp_path), tmp_path)
    assert done.returncode == EXIT_PASSED, done.stderr + done.stdout
    summary = json.loads(done.stdout)
    assert summary["step"] == 2.5 and summary["requirements"]["ramdisk"] == ["survivors.json"]
    done = cli(["preflight", "--step", "2.25", "-i", sc.inventory] + opts(tmp_path), tmp_path)
    assert done.returncode == EXIT_NOT_RUN
    assert "step 2.25 is not in preflight_steps (steps defined: 1, 2, 2.5, 3, 3.5)" in done.stdout


def test_extra_vars_as_ansible_playbook_takes_them(tmp_path):
    from gpuops_preflight.cli import EXTRA_VARS_MAX_BYTES, _extra_vars

    as_json, as_yaml = tmp_path / "vars.json", tmp_path / "vars.yml"
    as_json.write_text('{"preflight_skip": ["vram"], "n": 2}')
    as_yaml.write_text("expected_gpu_count: 12\nexcluded_gpus: [10]\n")
    assert _extra_vars(["a=1 b='two words'", '{"c": [1]}', "@%s" % as_json, "@%s" % as_yaml]) == {
        "a": "1", "b": "two words", "c": [1], "preflight_skip": ["vram"], "n": 2, "expected_gpu_count": 12,
        "excluded_gpus": [10]}
    big, listed, garbled = tmp_path / "big.json", tmp_path / "list.json", tmp_path / "garbled.yml"
    big.write_bytes(b" " * (EXTRA_VARS_MAX_BYTES + 1))
    listed.write_text("[1, 2]")
    garbled.write_text("a: [1, 2\n")
    for item, said in [("@%s" % (tmp_path / "none.yml"), "-e '@%s': cannot be read: No such file or directory"
                        % (tmp_path / "none.yml")),
                       ("@%s" % tmp_path, "-e '@%s': %s is a directory, not a regular file" % (tmp_path, tmp_path)),
                       ("@%s" % big, "-e '@%s': %s is " % (big, big)),
                       ("justaword", "-e 'justaword': expected key=value, a JSON object or @file"),
                       ("a='x", "-e \"a='x\": No closing quotation"),
                       ('{"a": ', "-e '{\"a\": ': not valid JSON: Expecting value"),
                       ("@%s" % listed, "-e '@%s': extra variables must be a mapping" % listed),
                       ("@%s" % garbled, "-e '@%s': neither JSON nor YAML: " % garbled)]:
        with pytest.raises(ValueError) as exc:
            _extra_vars([item])
        assert str(exc.value).startswith(said), (item, str(exc.value))


def test_an_unreadable_extra_vars_file_is_bad_input_exit_2(capsys, tmp_path):
    from gpuops_preflight import cli

    assert cli.main(["preflight", "--step", "3", "-i", "/nonexistent/inventory.yml",
                     "-e", "@%s" % (tmp_path / "none.yml")]) == EXIT_NOT_RUN
    assert "-e '@%s': cannot be read: No such file or directory" % (tmp_path / "none.yml") in capsys.readouterr().err


def test_extra_vars_cannot_override_the_step(scenario, tmp_path):
    sc = scenario("healthy")
    done = cli(["preflight", "--step", "3", "-e", "step=5", "-i", sc.inventory, "--json", "-q"] + opts(tmp_path),
               tmp_path)
    assert done.returncode == EXIT_NOT_RUN, done.stdout + done.stderr
    assert "extravars: step is set by the bridge itself" in json.loads(done.stdout)["error"]
