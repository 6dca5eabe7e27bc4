"""gpuops-preflight training-health: --local on this host (exit codes, output, fix mode, and from the host tool's
bundle with neither Ansible nor ansible-runner), and on an inventory's training hosts through run_training_health
(real ansible-runner runs of playbooks/training_health.yml on simulated training hosts, tests/simtrain)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import gpuops_preflight as gp
from bridge.helpers import make_bundle, run_dirs, run_options
from gpuops_preflight import cli
from simtrain import host_set, write_inventory


@pytest.fixture
def training():
    """training(*names) -> {name: TrainHost}: scenario hosts, or healthy running ones for other names."""
    with host_set("bridge-train-") as made:
        yield made.named


def local_args(host, *extra):
    """--local pointed at a simulated host: its base folder, its GPU rig, its simulated meminfo."""
    own = host.host_vars(prefix="")
    return ["training-health", "--local", "--base-dir", host.base, "--nvidia-smi", own["nvidia_smi"],
            "--sysfs-root", own["sysfs_root"], "--kernel-log", own["kernel_log"], "--min-free-gb",
            str(own["min_free_gb"]), "-o", "meminfo=%s" % own["meminfo"]] + list(extra)


def run_cli(capsys, *args):
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


# -- --local ---------------------------------------------------------------------------------------


def test_local_healthy_host_exits_0(capsys, training):
    host = training("train-1")["train-1"]
    code, out, err = run_cli(capsys, *local_args(host))
    assert code == 0, err
    assert out.startswith("Training health PASSED (1 host(s), 1 usable GPU(s))")


def test_local_blocks_with_the_reason_and_its_fix(capsys, training):
    host = training("base_model_changed")["base_model_changed"]
    code, out, _err = run_cli(capsys, *local_args(host))
    assert code == 1
    assert out.startswith("Training health BLOCKED: 1 hard failure(s)")
    assert 'config_lock: ' in out and '"openai/whisper-large-v2" to "meta-llama/Llama-2-7b-hf"' in out
    assert "    fix: Restore the locked value" in out


def test_local_as_a_start_gate_skips_the_daemon_that_is_not_running_yet(capsys, training):
    host = training("daemon_dead")["daemon_dead"]
    assert run_cli(capsys, *local_args(host))[0] == 1          # as a check: a dead daemon blocks
    code, out, _err = run_cli(capsys, *local_args(host, "--skip", "daemon"))
    assert code == 0, out                                      # before the unit starts it: nothing else is wrong


def test_local_as_a_start_gate_refuses_a_host_without_a_gpu_unless_told_it_has_none(capsys, tmp_path):
    """The gate's decision on a host without GPUs (docs/TRAINING.md, "The start gate"): the daemon is not started
    (it would crash, or train on the CPU for days); a host that trains without GPUs on purpose says so."""
    with host_set("bridge-train-") as made:
        host = made.make("gpuless", gpus=0)
        (tmp_path / "sys" / "bus" / "pci" / "devices").mkdir(parents=True)   # sysfs with no GPU, and no GPU tool
        gate = ["training-health", "--local", "--skip", "daemon", "--base-dir", host.base, "--sysfs-root",
                str(tmp_path / "sys"), "--kernel-log", "none", "--min-free-gb", "0.001", "-o",
                "meminfo=%s" % host.host_vars(prefix="")["meminfo"]] + [
                    "--%s=%s" % (tool, tmp_path / "missing" / tool) for tool in ("nvidia-smi", "rocm-smi", "amd-smi")]
        code, out, _err = run_cli(capsys, *gate)
        assert code == 1 and out.startswith("Training health BLOCKED: 1 hard failure(s)"), out
        assert "gpu: " in out and "no GPU found (sysfs shows none, and the GPU tool reports none)" in out
        code, out, _err = run_cli(capsys, *(gate + ["--expected-gpu-count", "0", "--gpu-tool", "sysfs"]))
        assert code == 0 and out.startswith("Training health PASSED (1 host(s), 0 usable GPU(s))"), out


def test_local_warnings_exit_0_and_json_is_the_summary(capsys, training):
    host = training("crash_oom")["crash_oom"]
    code, out, _err = run_cli(capsys, *local_args(host, "--json", "--check"))
    assert code == 0
    summary = json.loads(out)
    assert (summary["kind"], summary["step"], summary["passed"]) == ("training_health", None, True)
    assert [w["check"] for w in summary["warnings"]] == ["crash_log"] and summary["fix"] is None
    assert not os.path.exists(host.path(".crash_history.json"))   # --check: nothing recorded


def test_local_fix_check_then_fix_then_nothing_left(capsys, training):
    host = training("train-1")["train-1"]
    os.rmdir(host.path("queue"))
    code, out, _err = run_cli(capsys, *local_args(host, "--fix", "--check"))
    assert code == 1 and "fix: mkdir %s: absent -> 0o750" % host.path("queue") in out
    assert not os.path.exists(host.path("queue"))
    code, out, _err = run_cli(capsys, *local_args(host, "--fix"))
    assert code == 0 and out.startswith("fix: mkdir %s" % host.path("queue")) and os.path.isdir(host.path("queue"))
    code, out, _err = run_cli(capsys, *local_args(host, "--fix"))
    assert code == 0 and out.startswith("Training health PASSED")


@pytest.mark.parametrize("extra, text", [
    (["-o", "bogus=1"], "-o 'bogus=1': expected NAME=VALUE"),
    (["-o", "record_crashes=maybe"], "-o record_crashes: 'maybe' is not true or false"),
    (["-o", "crash_log_lines=many"], "-o crash_log_lines: 'many' is not a whole number"),
    (["--skip", "gpu_health"], "training_health_skip: unknown check 'gpu_health'"),
    (["--stall-timeout", "0"], "stall_timeout must be a whole number of seconds of 1 or more"),
    (["--gpu-tool-timeout", "0"], "gpu_tool_timeout must be at least 1 second"),
])
def test_local_bad_input_exits_2(capsys, training, extra, text):
    host = training("train-1")["train-1"]
    code, _out, err = run_cli(capsys, *local_args(host, *extra))
    assert code == 2 and text in err, err


def test_local_needs_a_base_dir_and_local_flags_need_local(capsys, monkeypatch):
    monkeypatch.delenv("TRAINING_BASE_DIR", raising=False)
    code, _out, err = run_cli(capsys, "training-health", "--local")
    assert code == 2 and "--base-dir (or $TRAINING_BASE_DIR) is required with --local" in err
    code, _out, err = run_cli(capsys, "training-health", "-i", "x.yml", "--min-free-gb", "3")
    assert code == 2 and "are --local options" in err


def test_local_runs_from_the_host_tool_bundle_without_ansible(tmp_path, training):
    host = training("base_model_changed")["base_model_changed"]
    lib = make_bundle(tmp_path)
    isolated = [sys.executable, "-I", "-S", "-c",
                "import sys, runpy; sys.path.insert(0, %r); sys.argv[0] = 'gpuops-preflight-local'; "
                "runpy.run_module('gpuops_preflight', run_name='__main__', alter_sys=True)" % str(lib)]
    assert subprocess.run([sys.executable, "-I", "-S", "-c", "import ansible"], capture_output=True, check=False).returncode != 0
    env = dict(os.environ, GPUOPS_PREFLIGHT_BUNDLED="1", TRAINING_BASE_DIR=host.base)
    args = [a for a in local_args(host) if a not in ("--base-dir", host.base)]   # the base folder from the env
    done = subprocess.run(isolated + args, env=env, capture_output=True, text=True, cwd=str(tmp_path), timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    assert "config_lock" in done.stdout and "base_model changed" in done.stdout


# -- run_training_health / the CLI on an inventory ---------------------------------------------------


def test_run_training_health_judges_every_host_once(tmp_path, training):
    hosts = training("train-ok", "full_checkpoint_lora_config", "crash_oom")
    inventory = write_inventory(str(tmp_path / "inventory.yml"), hosts)
    seen = []
    report = gp.run_training_health(inventory=inventory, progress=seen.append, **run_options(tmp_path))
    assert report.kind == "training_health" and report.step is None
    assert report.status == "blocked" and report.blocked_by == "training_health_check", report.reason()
    assert [(i.host, i.check) for i in report.hard_failures] == [("full_checkpoint_lora_config", "checkpoint_resume")]
    assert [(i.host, i.check) for i in report.warnings] == [("crash_oom", "crash_log")]
    assert report.hosts["train-ok"]["status"] == "passed"
    assert report.lines[0].startswith("Training health BLOCKED: 1 hard failure(s), 1 warning(s) (3 host(s)")
    assert sorted(r.host for r in seen) == sorted(hosts) and all(r.kind == "training_health" for r in seen)
    assert os.path.basename(report.summary["summary_file"]).startswith("training_health_")
    assert run_dirs(tmp_path) == []   # nothing of the run is kept


def test_run_training_health_fix_and_bad_input(tmp_path, training):
    hosts = training("train-1")
    os.rmdir(hosts["train-1"].path("queue"))
    inventory = write_inventory(str(tmp_path / "inventory.yml"), hosts, training_health_become=False)
    report = gp.run_training_health(inventory=inventory, fix=True, **run_options(tmp_path))
    assert report.status == "passed", report.reason()
    assert os.path.isdir(hosts["train-1"].path("queue"))
    bad = gp.run_training_health(inventory=inventory, fix="yes", **run_options(tmp_path))
    assert bad.status == "error" and "fix must be True or False" in bad.reason()


def test_the_cli_on_an_inventory(capsys, tmp_path, training):
    hosts = training("train-1", "layout_missing")
    inventory = write_inventory(str(tmp_path / "inventory.yml"), hosts)
    code, out, _err = run_cli(capsys, "training-health", "-i", inventory, "--summary-dir", str(tmp_path / "s"),
                              "--artifacts-dir", str(tmp_path / "runs"), "-q")
    assert code == 1 and out.startswith("Training health BLOCKED: 2 hard failure(s)")   # queue/, core/train.py
    assert "layout: layout_missing: required folder %s is missing" % hosts["layout_missing"].path("queue") in out
    code, out, _err = run_cli(capsys, "training-health", "-i", inventory, "--json", "--skip", "layout",
                              "--summary-dir", str(tmp_path / "s"), "--artifacts-dir", str(tmp_path / "runs"), "-q")
    assert code == 0 and json.loads(out)["skipped_checks"] == ["layout"]


def test_the_cli_on_an_inventory_runs_as_the_preflight_does(capsys, tmp_path, training):
    """Without --local the command is the bridge's one run command: the reason of a run that could not start is
    said once, the progress is on stderr (one plain line per host here: stderr is not a terminal), the table on
    request, before the verdict."""
    code, out, _err = run_cli(capsys, "training-health", "-i", str(tmp_path / "missing.yml"), "-q")
    assert code == 2 and out.splitlines() == ["Training health could not run: inventory not found: %s"
                                              % (tmp_path / "missing.yml")]
    inventory = write_inventory(str(tmp_path / "inventory.yml"), training("train-1"))
    code, out, err = run_cli(capsys, "training-health", "-i", inventory, "--table", "--summary-dir",
                             str(tmp_path / "s"), "--artifacts-dir", str(tmp_path / "runs"))
    assert code == 0 and "train-1" in err
    lines = out.splitlines()
    verdict = next(i for i, line in enumerate(lines) if line.startswith("Training health PASSED"))
    assert verdict > 0 and any("train-1" in line for line in lines[:verdict])   # the table comes first
