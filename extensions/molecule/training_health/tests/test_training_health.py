"""Verify of the training_health scenario (pytest-testinfra, podman backend: ``host`` is one container).

After converge and idempotence (gpuops.preflight.training_health with fix mode on, twice) against
training-healthy and training-warn: two summaries on the controller, both passed, the only warning the crash on
training-warn; fix mode created that host's missing queue/ folder (owner the service user, mode 0750) and
nothing else; the crash was recorded once; the daemon, its checkpoints, config and logs are as prepare left them
(only the daemon's own status file moves, and the nvidia-smi stand-in logs one call per run).
"""

from __future__ import annotations

import glob
import json
import os

import pytest
import rigcheck

CHECKS = ("daemon", "progress", "disk_space", "memory", "gpu", "config", "permissions", "layout", "checkpoint",
          "crash_log", "config_lock", "checkpoint_resume")


def hosts_doc():
    with open(rigcheck.ephemeral("hosts", "hosts.json"), encoding="utf-8") as handle:
        return json.load(handle)


HOSTS = hosts_doc()
BASE, RIG = HOSTS["base"], HOSTS["rig"]


def prepared(name):
    with open(rigcheck.ephemeral("hosts", name + ".prepared.json"), encoding="utf-8") as handle:
        return json.load(handle)


def new_in_container(name):
    with open(rigcheck.ephemeral("hosts", name + ".prepared-diff.json"), encoding="utf-8") as handle:
        before = json.load(handle)
    after = rigcheck.podman_diff(name)
    return {k: sorted(set(after[k]) - set(before.get(k) or [])) for k in after}


@pytest.fixture(scope="module")
def summaries():
    docs = []
    for path in sorted(glob.glob(rigcheck.ephemeral("summaries", "training_health_*.json"))):
        with open(path, encoding="utf-8") as handle:
            docs.append(json.load(handle))
    assert len(docs) == 2, "expected two training_health summaries (converge, idempotence), found %d" % len(docs)
    return docs


def test_both_runs_passed_with_the_crash_as_the_only_warning(summaries):
    for summary in summaries:
        assert (summary["schema"], summary["kind"], summary["step"]) == ("gpuops.preflight.summary",
                                                                         "training_health", None)
        assert summary["passed"] is True and summary["hard_failures"] == []
        assert [(w["host"], w["check"]) for w in summary["warnings"]] == [("training-warn", "crash_log")]
        assert "cuda_oom in %s/logs/crash.log" % BASE in summary["warnings"][0]["message"]
        assert sorted(summary["hosts"]) == sorted(HOSTS["hosts"])
        assert summary["totals"]["usable_gpus"] == 2


def test_host_verdict(host, summaries):
    name = rigcheck.name_of(host)
    setup = HOSTS["hosts"][name]["setup"]
    for summary in summaries:
        entry = summary["hosts"][name]
        assert entry["status"] == setup["expect"] and entry["usable_gpus"] == [0]
        assert entry["gpu_tool"]["path"] == RIG + "/bin/nvidia-smi"
        statuses = dict((check, result["status"]) for check, result in entry["checks"].items())
        assert statuses == dict((check, setup["statuses"].get(check, "ok")) for check in CHECKS)
        # the daemon runs in the container, as the service user, and resumed from the LoRA checkpoint
        assert "is running" in entry["checks"]["daemon"]["message"]
        assert "(lora, step 1000) is resumable" in entry["checks"]["checkpoint_resume"]["message"]


def test_fix_mode_created_exactly_the_missing_folder(host):
    name = rigcheck.name_of(host)
    created = HOSTS["hosts"][name]["setup"]["created"]
    for folder in created:
        item = host.file("%s/%s" % (BASE, folder))
        assert item.is_directory and item.uid == HOSTS["owner"] and item.mode == 0o750
    before = {BASE: prepared(name)[BASE]}
    now = rigcheck.manifest(host, BASE)
    diff = rigcheck.compare(before, now)
    moving = ("status",)   # the daemon's own status file (and its temporary files) move every second
    added = [os.path.relpath(p, BASE) for p in diff["added"] if not os.path.relpath(p, BASE).startswith(moving)]
    # the crash history and the lock file its writers queue on
    recorded = [".crash_history.json", ".crash_history.json.lock"] if HOSTS["hosts"][name]["setup"].get("crash_log") \
        else []
    assert sorted(added) == sorted(created + recorded)
    assert [p for p in diff["removed"] if not os.path.relpath(p, BASE).startswith(moving)] == []
    changed = [os.path.relpath(p, BASE) for p in diff["changed"] if not os.path.relpath(p, BASE).startswith(moving)]
    # the base folder's own mtime changes when something is created in it; nothing else changed
    assert set(changed) <= {"."}, changed
    if not added:
        assert changed == []


def test_the_crash_was_recorded_once(host):
    name = rigcheck.name_of(host)
    setup = HOSTS["hosts"][name]["setup"]
    history = host.file(BASE + "/.crash_history.json")
    if not setup.get("crash_log"):
        assert not history.exists
        return
    doc = json.loads(history.content_string)
    assert doc["kind"] == "gpuops.preflight.crash_history"
    fingerprints = [c["fingerprint"] for c in doc["crashes"]]
    assert fingerprints and len(set(fingerprints)) == len(fingerprints)   # the second run recorded nothing again
    assert set(c["category"] for c in doc["crashes"]) == {setup["category"]}


def test_the_gpu_rig_unchanged_but_one_tool_call_per_run(host):
    name = rigcheck.name_of(host)
    diff = rigcheck.compare({RIG: prepared(name)[RIG]}, rigcheck.manifest(host, RIG))
    calls_log = RIG + "/nvidia-smi.d/calls.log"
    assert diff["added"] == [] and diff["removed"] == [] and set(diff["changed"]) <= {calls_log}, diff
    assert len(host.file(calls_log).content_string.splitlines()) == 2   # converge, idempotence


def test_the_daemon_still_runs(host):
    pid = host.file(BASE + "/.daemon.pid").content_string.split()[0]
    assert b"training_daemon.py" in host.file("/proc/%s/cmdline" % pid).content


def test_nothing_else_changed_in_the_container(host):
    new = new_in_container(rigcheck.name_of(host))

    def outside(paths):
        return [p for p in paths if not rigcheck.under(p, BASE) and not rigcheck.under(p, RIG)]
    assert outside(new["deleted"]) == []
    assert set(outside(new["added"])) <= rigcheck.ANSIBLE_TRACES, new["added"]
    assert set(outside(new["changed"])) <= rigcheck.ANSIBLE_TRACES, new["changed"]
