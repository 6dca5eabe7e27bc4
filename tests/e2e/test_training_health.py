"""playbooks/training_health.yml end to end on simulated training hosts (tests/simtrain): a real stand-in daemon,
recorded checkpoints, logs and nvidia-smi output, the real playbook over the local connection.

Healthy hosts pass; every scenario's check fails on its own with the right message, judged once; check mode
changes nothing (the whole tree hashed before and after); fix mode repairs exactly the safe things and a second
run changes nothing; a base_model change with checkpoints blocks; a LoRA checkpoint under a full fine-tuning config
blocks, and the reverse.
"""

from __future__ import annotations

import os
import shutil
import stat

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils._training_health import FAMILY
from e2e.runner import collection_copy, install_host_tool, run_family_playbook
from simtrain import SCENARIOS, fixtures, host_set, write_inventory
from simtrain.trees import changed, tree_hash

PLAYBOOK = os.path.join("playbooks", "training_health.yml")


@pytest.fixture
def training():
    """training(*names) -> {host name: TrainHost}: scenario hosts, or healthy running ones ('name:lora' for LoRA);
    every daemon stopped and folder removed after the test."""
    with host_set("e2e-train-") as made:
        yield made.named


def installed_host_tool(folder, collection=None):
    """The host tool installed by its role into ``folder`` (e2e.runner.install_host_tool); its command's path."""
    install_host_tool(folder, collection=collection)
    return os.path.join(str(folder), "bin", "gpuops-preflight-local")


@pytest.fixture(scope="module")
def host_tool(tmp_path_factory):
    """The host tool, installed once for this file's tests: its command's path."""
    return installed_host_tool(tmp_path_factory.mktemp("host-tool"))


# How the checks reach the host: the module shipped for the run, or the host tool's installed bundle of the same
# code (plugins/plugin_utils/_node_action.py). Both must give the same verdicts.
VIA = ("module", "host_tool")


def inventory(folder, hosts, tool="", **group_vars):
    """The hosts in group training_hosts, each pointed at its simulated host (simtrain.write_inventory); ``tool``: the
    host tool's command (default none: the module is shipped, whatever this machine has installed)."""
    return write_inventory(os.path.join(str(folder), "inventory.yml"), hosts, training_health_host_tool=tool,
                           **group_vars)


def play(folder, inventory_path, *extra, flags=(), via=None):
    """ansible-playbook playbooks/training_health.yml; returns a Run with the one summary it wrote. ``via``: how the
    checks must have reached every host (the task results, shown with -v, say it)."""
    run = run_family_playbook("training_health", inventory_path, folder, *extra,
                              flags=tuple(flags) + (("-v",) if via else ()))
    if via is not None:
        ran = set(part.split('"')[0] for part in run.output.split('"ran_from": "')[1:])
        assert ran == {via}, (ran, run.output[-3000:])
    return run


def tool_for(via, request):
    return request.getfixturevalue("host_tool") if via == "host_tool" else ""


@pytest.mark.parametrize("via", VIA)
def test_healthy_hosts_pass(tmp_path, training, via, request):
    hosts = training("train-full:full", "train-lora:lora")
    run = play(tmp_path, inventory(tmp_path, hosts, tool_for(via, request)), via=via)
    assert run.rc == 0, run.output
    assert "Training health PASSED (2 host(s), 2 usable GPU(s))" in run.output
    summary = run.summary
    assert (summary["kind"], summary["step"], summary["passed"]) == ("training_health", None, True)
    assert summary["hard_failures"] == [] and summary["warnings"] == []
    for name in hosts:
        entry = run.host(name)
        assert entry["status"] == "passed" and entry["usable_gpus"] == [0]
        assert sorted(entry["checks"]) == sorted(FAMILY.host_checks)
        assert set(r["status"] for r in entry["checks"].values()) == {"ok"}
    assert "(lora, step 1000)" in run.host("train-lora")["checks"]["checkpoint_resume"]["message"]
    assert "changed=0" in run.output


# Every scenario that breaks something, all in ONE run (the verdict is taken once, for every host).
BROKEN = sorted(name for name, scenario in SCENARIOS.items() if scenario.expect)


@pytest.mark.parametrize("via", VIA)
def test_each_check_fails_on_its_own_with_the_right_message(tmp_path, training, via, request):
    hosts = training(*BROKEN)
    run = play(tmp_path, inventory(tmp_path, hosts, tool_for(via, request)), via=via)
    assert run.rc != 0 and run.summary["blocked"] is True, run.output
    for name in BROKEN:
        scenario = SCENARIOS[name]
        entry = run.host(name)
        statuses = dict((check, result["status"]) for check, result in entry["checks"].items())
        want = dict((check, "ok") for check in statuses)
        want.update(scenario.expect)
        assert statuses == want, (name, dict((c, r["message"]) for c, r in entry["checks"].items()
                                             if r["status"] != "ok"))
        for check, text in scenario.messages.items():
            assert text in entry["checks"][check]["message"], (name, entry["checks"][check]["message"])
        blocked = sorted(set(c for h, c, _m in run.items("hard_failures") if h == name))
        hard = sorted(c for c, s in scenario.expect.items() if s == "fail" and FAMILY.checks[c].severity == "hard")
        assert blocked == hard, (name, blocked)
        assert entry["status"] == ("blocked" if hard else "warnings"), name
    for check in ("daemon", "config", "layout", "config_lock", "checkpoint_resume", "gpu"):
        assert "Training health BLOCKED" in run.output and ": %s:" % check in run.output


def test_base_model_change_with_checkpoints_blocks(tmp_path, training):
    hosts = training("base_model_changed")
    run = play(tmp_path, inventory(tmp_path, hosts))
    assert run.rc != 0
    [(host, check, message)] = run.items("hard_failures")
    assert (host, check) == ("base_model_changed", "config_lock")
    assert '"openai/whisper-large-v2" to "meta-llama/Llama-2-7b-hf"' in message and "checkpoint-5000" in message


@pytest.mark.parametrize("name, words", [
    ("lora_checkpoint_full_config", "holds a LoRA adapter, but config.json trains the full model"),
    ("full_checkpoint_lora_config", "holds full-model weights, but config.json trains a LoRA adapter"),
])
def test_lora_and_full_mismatch_blocks_both_ways(tmp_path, training, name, words):
    run = play(tmp_path, inventory(tmp_path, training(name)))
    assert run.rc != 0
    assert [(h, c) for h, c, _m in run.items("hard_failures")] == [(name, "checkpoint_resume")]
    assert words in run.items("hard_failures")[0][2]


def break_host(host):
    """Safe to fix: a missing daemon folder, one the service user cannot write, one owned by root (as root).
    Not safe: a missing code file, a config edit, a checkpoint's modes. Plus a crash in the logs (recorded)."""
    os.rmdir(host.path("queue"))
    os.chmod(host.path("logs"), 0o500)
    if os.geteuid() == 0:
        os.chown(host.path("inbox"), 0, 0)
    os.unlink(host.path("core", "train.py"))
    os.chmod(host.path("current_model", "checkpoint-5000"), 0o500)
    shutil.copyfile(str(fixtures.crash_log_path(fixtures.OOM_LOG)), host.path("logs", "crash.log"))


@pytest.mark.parametrize("via", VIA)
def test_check_mode_changes_nothing(tmp_path, training, via, request):
    hosts = training("train-1:full")
    host = hosts["train-1"]
    break_host(host)
    before = tree_hash(host.root, host.moving())
    run = play(tmp_path, inventory(tmp_path, hosts, tool_for(via, request), training_health_become=False),
               "training_health_fix=true", flags=("--check", "--diff"), via=via)
    assert tree_hash(host.root, host.moving()) == before   # no folder made, no mode changed, no crash recorded
    assert "mkdir %s: absent" % host.path("queue") in run.output   # the diff of what fix mode would do
    assert "changed=1" in run.output
    assert run.host("train-1")["checks"]["layout"]["status"] == "fail"


@pytest.mark.parametrize("via", VIA)
def test_fix_mode_repairs_exactly_the_safe_things_and_is_idempotent(tmp_path, training, via, request):
    hosts = training("train-1:full")
    host = hosts["train-1"]
    break_host(host)
    before = tree_hash(host.root, host.moving())
    path = inventory(tmp_path, hosts, tool_for(via, request), training_health_become=False)
    run = play(tmp_path, path, "training_health_fix=true", via=via)
    assert "changed=1" in run.output, run.output
    after = tree_hash(host.root, host.moving())
    expected = ["logs", "queue"] + (["inbox"] if os.geteuid() == 0 else [])
    # ... and the crash history the scan appends to (recorded once, not a repair), with the lock file beside it
    assert changed(before, after, host.base) == sorted(expected + [".crash_history.json", ".crash_history.json.lock"])
    assert stat.S_IMODE(os.stat(host.path("queue")).st_mode) == 0o750
    assert (os.stat(host.path("queue")).st_uid, os.stat(host.path("inbox")).st_uid) == (host.owner[0], host.owner[0])
    checks = run.host("train-1")["checks"]
    assert checks["permissions"]["status"] == "ok"
    assert checks["layout"]["status"] == "fail" and checks["layout"]["message"].endswith("core/train.py is missing")
    again = play(tmp_path, path, "training_health_fix=true", via=via)
    assert "changed=0" in again.output, again.output
    assert tree_hash(host.root, host.moving()) == after


def test_an_inventory_without_training_hosts_fails_clearly(tmp_path):
    path = os.path.join(str(tmp_path), "empty.yml")
    with open(path, "w") as handle:
        handle.write("all:\n  hosts:\n    somewhere: {ansible_connection: local}\n")
    run = play(tmp_path, path)
    assert run.rc != 0 and "no hosts in group 'training_hosts'" in run.output and run.summary is None


def test_metrics_for_node_exporter_when_asked(tmp_path, training):
    """training_health_textfile_dir (issue 14): gpuops_training_health.prom beside the other families' files."""
    from prometheus_client.parser import text_string_to_metric_families

    hosts = training("train-full:full", "train-lora:lora")
    path = inventory(tmp_path, hosts)
    folder = tmp_path / "textfiles"
    folder.mkdir()
    (folder / "gpuops_preflight.prom").write_text("# another family's file: left alone\n")
    run = play(tmp_path, path, "training_health_textfile_dir=%s" % folder)
    assert run.rc == 0, run.output
    assert sorted(os.listdir(str(folder))) == ["gpuops_preflight.prom", "gpuops_training_health.prom"]
    assert (folder / "gpuops_preflight.prom").read_text() == "# another family's file: left alone\n"
    families = dict((f.name, f) for f in text_string_to_metric_families(
        (folder / "gpuops_training_health.prom").read_text(encoding="utf-8")))
    health = [(s.labels["host"], s.labels["bdf"]) for s in families["gpuops_gpu_health"].samples
              if s.labels["state"] == "ok" and s.value == 1]
    assert sorted(health) == [("train-full", "0000:41:00.0"), ("train-lora", "0000:41:00.0")]
    assert [s.value for s in families["gpuops_run_passed"].samples] == [1]
    assert set(s.labels["kind"] for f in families.values() for s in f.samples) == {"training_health"}
    # off by default: no file written
    (folder / "gpuops_training_health.prom").unlink()
    assert play(tmp_path, path).rc == 0
    assert os.listdir(str(folder)) == ["gpuops_preflight.prom"]
    # a relative path is refused before any host is contacted
    refused = play(tmp_path, path, "training_health_textfile_dir=rel/dir")
    assert refused.rc != 0 and refused.summary is None
    assert "training_health_textfile_dir must be an absolute path, got 'rel/dir'" in refused.output


# ---------------------------------------------------------------- the host tool that cannot be used: the module is shipped


def test_a_host_tool_of_other_code_is_not_used_and_says_so(tmp_path, training):
    """Another version on the host (a bundle of this collection with one file changed): its checks may differ, so
    the module is shipped, with a warning that says why and what to do."""
    copy = collection_copy(tmp_path)
    with open(copy / "plugins" / "module_utils" / "_training_checks.py", "a", encoding="utf-8") as handle:
        handle.write("\n# another version\n")
    tool = installed_host_tool(tmp_path / "tool", collection=copy)
    run = play(tmp_path, inventory(tmp_path, training("train-full:full"), tool), via="module")
    assert run.rc == 0 and run.summary["passed"] is True, run.output
    assert "the host tool %s did not run the checks: the bundle holds other code" % tool in run.output
    assert "the module was shipped instead (update the host tool: the gpuops.preflight.host_tool role)" in run.output


def test_a_broken_host_tool_is_not_used_and_says_so(tmp_path, training):
    tool = installed_host_tool(tmp_path / "tool")
    os.unlink(tmp_path / "tool" / "opt" / "lib" / ".complete")   # an install that never finished
    run = play(tmp_path, inventory(tmp_path, training("train-full:full"), tool), via="module")
    assert run.rc == 0 and run.summary["passed"] is True, run.output
    assert ("the host tool %s cannot run the checks (exit 2: gpuops-preflight-local: cannot run: no installed bundle"
            % tool) in run.output


def test_no_host_tool_ships_the_module_and_says_nothing(tmp_path, training):
    run = play(tmp_path, inventory(tmp_path, training("train-full:full"), str(tmp_path / "not-installed")),
               via="module")
    assert run.rc == 0 and run.summary["passed"] is True, run.output
    assert "host tool" not in run.output


def test_a_host_tool_that_ends_without_an_answer_is_no_verdict(tmp_path, training):
    """It started and gave no answer (killed, or garbage): in fix mode it may have changed the host, so the module
    is not run behind it; the host has no check results and the run says why."""
    tool = tmp_path / "garbage-tool"
    tool.write_text("#!/bin/sh\ncat >/dev/null\necho 'Segmentation fault'\nexit 139\n", encoding="utf-8")
    tool.chmod(0o755)
    run = play(tmp_path, inventory(tmp_path, training("train-full:full"), str(tool)))
    assert run.rc != 0 and run.summary["blocked"] is True
    entry = run.host("train-full")
    assert entry["checks"] == {} and "ended without an answer (exit 139): Segmentation fault" in entry["error"]
