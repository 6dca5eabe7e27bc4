"""Verify of the preflight scenario (pytest-testinfra, podman backend: ``host`` is one container).

After converge (gpuops.preflight.preflight, step 3) against preflight-healthy, preflight-warn (AMD)
and preflight-nvidia (NVIDIA): one summary is written on the controller with the verdict the rigs
call for, and the preflight changed nothing on the rigs: the ramdisk files, the rig folder and the
rest of the container are as prepare left them (only the stand-in GPU tool's own call log grew by
the one call: rocm-smi on the AMD rigs, nvidia-smi on the NVIDIA one).
"""

from __future__ import annotations

import hashlib
import os

import pytest
import rigcheck

RIGS = rigcheck.rigs()
RIG_DIR, RAMDISK_DIR = RIGS["rig_dir"], RIGS["ramdisk_dir"]
CHECKS = ("ramdisk", "inputs", "gpu_health", "gpu_available", "gpu_count", "kernel_log", "vram", "gpu_temperature",
          "ramdisk_space")


@pytest.fixture(scope="module")
def summary():
    docs = rigcheck.summaries("preflight")
    assert len(docs) == 1, "expected one preflight summary for step 3 (one converge), found %d" % len(docs)
    return docs[0]


def test_summary_written_on_the_controller(summary):
    assert os.path.dirname(summary["summary_file"]) == rigcheck.ephemeral("summaries")
    assert os.path.isfile(summary["summary_file"])
    assert (summary["schema"], summary["schema_version"], summary["kind"], summary["step"]) == \
        ("gpuops.preflight.summary", 1, "preflight", 3)
    assert summary["passed"] is True and summary["blocked"] is False
    assert summary["hard_failures"] == []
    assert summary["requirements"] == {"ramdisk": ["train_history.json", "holdout_history.json"], "inputs": [],
                                       "ramdisk_dir": None}
    totals = {k: summary["totals"].get(k) for k in ("hosts", "reachable", "gpus", "usable_gpus")}
    assert totals == {"hosts": 3, "reachable": 3, "gpus": 28, "usable_gpus": 27}
    assert sorted(summary["hosts"]) == sorted(RIGS["hosts"])


def test_only_warnings_are_the_excluded_gpu_and_the_application_xid(summary):
    warn = RIGS["hosts"]["preflight-warn"]["setup"]
    nvidia = RIGS["hosts"]["preflight-nvidia"]["setup"]
    amd = [item for item in summary["warnings"] if item["host"] == "preflight-warn"]
    assert amd, "the SMU failures on the excluded GPU must be reported, as a warning"
    for item in amd:
        assert item["gpu"] == {"index": warn["excluded_gpu"], "bdf": warn["excluded_bdf"], "excluded": True}, item
        assert "is in excluded_gpus" in item["message"], item
    [xid] = [item for item in summary["warnings"] if item["host"] == "preflight-nvidia"]
    assert (xid["check"], xid["status"]) == ("kernel_log", "warn")
    assert xid["gpu"] == {"index": nvidia["xid_gpu"], "bdf": nvidia["xid_bdf"], "excluded": False}
    assert xid["message"].startswith("preflight-nvidia: GPU %d (%s): Xid %d: GPU stopped processing (application "
                                     "fault) (x%d, last seen " % (nvidia["xid_gpu"], nvidia["xid_bdf"], nvidia["xid"],
                                                                  nvidia["xid_count"])), xid["message"]
    assert len(summary["warnings"]) == len(amd) + 1


def test_host_verdict(host, summary):
    name = rigcheck.name_of(host)
    setup = RIGS["hosts"][name]["setup"]
    entry = summary["hosts"][name]
    assert entry["reachable"] is True
    assert entry["status"] == setup["expect"]
    gpus = RIGS["hosts"][name]["gpus"]
    assert entry["gpu_count"] == gpus and entry["expected_gpu_count"] == gpus
    # The tool that answered is the stand-in inside this container.
    assert entry["gpu_tool"]["path"] == RIG_DIR + "/bin/" + setup["tool"]
    assert entry["gpu_tool"]["outcome"] == "answered"
    statuses = {check: result["status"] for check, result in entry["checks"].items()}
    assert set(statuses) == set(CHECKS)
    if setup["expect"] == "passed":
        assert statuses == {check: "ok" for check in CHECKS}
        assert entry["excluded_gpus"] == [] and len(entry["usable_gpus"]) == 12
    elif setup["tool"] == "nvidia-smi":
        # An application Xid warns (kernel_log) and leaves every GPU usable.
        assert statuses == dict({check: "ok" for check in CHECKS}, kernel_log="warn")
        assert [(g["vendor"], g["health"]) for g in entry["gpus"]] == [("nvidia", "ok")] * gpus
        assert entry["usable_gpus"] == list(range(gpus)) and entry["excluded_gpus"] == []
        xids = entry["gpus"][setup["xid_gpu"]]["xid_errors"]
        assert [(x["xid"], x["count"], x["severity"]) for x in xids] == [(setup["xid"], setup["xid_count"], "soft")]
    else:
        # The host check fails for the GPU (lost, from the kernel log); judged a warning: it is excluded.
        assert statuses == dict({check: "ok" for check in CHECKS}, gpu_health="fail")
        assert entry["excluded_gpus"] == [setup["excluded_gpu"]]
        assert len(entry["usable_gpus"]) == 11
    # The ramdisk is the container's tmpfs, with room.
    assert "(tmpfs)" in entry["checks"]["ramdisk_space"]["message"]


def test_ramdisk_on_tmpfs(host):
    assert host.mount_point("/dev/shm").filesystem == "tmpfs"
    assert host.file(RAMDISK_DIR).is_directory


def test_ramdisk_untouched(host):
    name = rigcheck.name_of(host)
    before = {RAMDISK_DIR: rigcheck.prepared(name)[RAMDISK_DIR]}
    now = rigcheck.manifest(host, RAMDISK_DIR)
    # Same entries, same content, size, mode and mtime as prepared.
    assert rigcheck.compare(before, now) == {"added": [], "removed": [], "changed": {}}
    # And that content is what simrig wrote on the controller.
    reference = RIGS["hosts"][name]["ramdisk"]
    files = {rel: item for rel, item in now[RAMDISK_DIR].items() if item["type"] == "file"}
    assert sorted(files) == ["step1/run_config.json", "step2/features.npy", "step2/run_config.json",
                             "step3/holdout_history.json", "step3/train_history.json"]
    for rel, item in files.items():
        with open(os.path.join(reference, rel), "rb") as handle:
            assert item["sha256"] == hashlib.sha256(handle.read()).hexdigest(), rel


def test_rig_unchanged_but_the_tool_call_log(host):
    name = rigcheck.name_of(host)
    tool = RIGS["hosts"][name]["setup"]["tool"]
    before = {RIG_DIR: rigcheck.prepared(name)[RIG_DIR]}
    now = rigcheck.manifest(host, RIG_DIR)
    calls_log = RIG_DIR + "/%s.d/calls.log" % tool
    diff = rigcheck.compare(before, now)
    assert diff["added"] == [] and diff["removed"] == []
    assert set(diff["changed"]) == {calls_log}, diff["changed"]
    # One preflight, one GPU-tool call (docs/ARCHITECTURE.md: the tool is called once per run).
    calls = host.file(calls_log).content_string.splitlines()
    assert len(calls) == 1 and calls[0].endswith("--json" if tool == "rocm-smi" else "-q -x"), calls


def test_nothing_else_changed_in_the_container(host):
    new = rigcheck.new_in_container(rigcheck.name_of(host))
    assert new["deleted"] == []
    assert set(new["added"]) <= rigcheck.ANSIBLE_TRACES, new["added"]
    assert set(new["changed"]) <= rigcheck.ANSIBLE_TRACES, new["changed"]
    assert host.file("/root/.ansible/tmp").listdir() == []
