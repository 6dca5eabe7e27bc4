"""Both playbooks end to end on NVIDIA rigs and on a mixed two-vendor cluster (issue 9).

The rigs are tests/simrig's: a stand-in nvidia-smi replaying real recordings (whatever the
arguments), a sysfs tree of 0x10de functions, the recorded NVRM lines in the kernel log. Each test
runs the real ansible-playbook and reads the one summary it writes.
"""

from __future__ import annotations

import os

import pytest

from e2e.runner import run_playbook
from simrig import NvidiaGpus

NV, AMD, MIX = "rig-nv", "rig-amd", "rig-mix"
NV_RIG = {"gpus": 0, "nvidia_gpus": 4}      # an NVIDIA rig: four RTX A5000 (the recorded -q -x, schema v13)
MIX_HOST = {"gpus": 1, "nvidia_gpus": 2}    # an AMD GPU beside two NVIDIA cards on one host
AMD_RIG = {"gpus": 4}

XID43 = "akash-support-244_multi_gpu_535.183.01_dmesg-T_xid43_xid31_xid94.txt"   # first GPU: Xid 43 twice
XID48 = "gpu-operator-1146_syslog_xid48_dbe_xid64_rminitadapter_failed.txt"      # Xid 48 (DBE) + 64
XID149 = "open-gpu-kernel-modules-1150_590.48.01_journal_xid45_after_nvlink_xid149_xid145.txt"
PREFLIGHT_CHECKS = {"ramdisk", "inputs", "gpu_health", "gpu_available", "gpu_count", "kernel_log", "vram",
                    "gpu_temperature", "ramdisk_space"}


def nvidia(made, name=NV):
    return NvidiaGpus(made[name])


def checks_of(run, host):
    return dict((name, result["status"]) for name, result in run.host(host)["checks"].items())


def only(items, check):
    found = [(h, m) for h, c, m in items if c == check]
    assert len(found) == 1, items
    return found[0]


# ---------------------------------------------------------------- preflight on an NVIDIA rig


def test_healthy_nvidia_rig_passes_with_one_tool_call(cluster, preflight):
    made = cluster({NV: NV_RIG})
    nv = nvidia(made)
    run = preflight(made.write_inventory())
    assert run.rc == 0, run.output
    assert run.summary["passed"] is True and run.summary["hard_failures"] == [] and run.summary["warnings"] == []
    host = run.host(NV)
    assert set(checks_of(run, NV).items()) == set((name, "ok") for name in PREFLIGHT_CHECKS)
    assert host["usable_gpus"] == [0, 1, 2, 3]
    assert [(g["vendor"], g["index"], g["bdf"], g["health"]) for g in host["gpus"]] == [
        ("nvidia", n, g["bdf"], "ok") for n, g in enumerate(nv.gpus)]
    assert set(g["model"] for g in host["gpus"]) == {"NVIDIA RTX A5000"}
    assert all(g["sources"] == ["nvidia-smi", "sysfs"] and g["uuid"].startswith("GPU-") for g in host["gpus"])
    assert (host["gpu_tool"]["name"], host["gpu_tool"]["outcome"], host["gpu_tool"]["format"]) == (
        "nvidia-smi", "answered", "xml")
    assert nv.tool_calls() == ["-q -x"]                       # one nvidia-smi call per host
    assert made[NV].tool_calls("rocm-smi") == []              # no AMD GPU in sysfs: rocm-smi is not asked
    assert run.output.rstrip().splitlines()[-2].startswith("Preflight PASSED for step 3 (1 host(s), 4 usable GPU(s))")


@pytest.mark.parametrize("with_xid", [True, False], ids=["fallen-off-the-bus", "config-space-all-ones"])
def test_lost_nvidia_gpu_blocks(cluster, preflight, with_xid):
    made = cluster({NV: NV_RIG})
    lost = nvidia(made).lose_gpu(1, xid=with_xid)
    run = preflight(made.write_inventory())
    assert run.rc != 0 and run.summary["passed"] is False
    host, message = only(run.items("hard_failures"), "gpu_health")
    assert host == NV
    assert message.startswith("%s: GPU 1 (%s) is lost: PCI config space reads all-ones" % (NV, lost["bdf"]))
    assert "nvidia-smi cannot open the GPU: Unknown Error" in message
    assert ("Xid 79: GPU has fallen off the bus" in message) is with_xid
    assert run.host(NV)["usable_gpus"] == [0, 2, 3]
    assert "expected 4 GPUs, found 3" in only(run.items("warnings"), "gpu_count")[1]
    assert "Preflight BLOCKED: gpu_health: %s: GPU 1 (%s) is lost" % (NV, lost["bdf"]) in run.output


@pytest.mark.parametrize("fault, text", [
    ("ecc_error", "is degraded: 1 uncorrectable ECC error(s) since the driver loaded"),
    ("remap_failure", "is degraded: memory row remapping failed: the GPU has no spare rows left"),
    ("answer_err", "is degraded: nvidia-smi answers ERR! for 12 of 15 fields (name, persistence mode,"),
])
def test_degraded_nvidia_gpu_blocks(cluster, preflight, fault, text):
    made = cluster({NV: NV_RIG})
    gpu = getattr(nvidia(made), fault)(2)
    run = preflight(made.write_inventory())
    assert run.rc != 0
    host, message = only(run.items("hard_failures"), "gpu_health")
    assert message.startswith("%s: GPU 2 (%s) %s" % (NV, gpu["bdf"], text)), message
    assert [g["health"] for g in run.host(NV)["gpus"]] == ["ok", "ok", "degraded", "ok"]
    assert run.host(NV)["usable_gpus"] == [0, 1, 3]


@pytest.mark.parametrize("xid, lines", [
    (13, ["NVRM: Xid (PCI:{nvrm}): 13, pid=48213, name=python3, Graphics SM Warp Exception on (GPC 0, TPC 1, SM 0): "
          "Out Of Range Address"] * 3),
    (31, {"recording": XID43, "source": "0000:00:07"}),
    (43, {"recording": XID43}),
    (45, ["NVRM: Xid (PCI:{nvrm}): 45, pid=48213, name=python3, Ch 00000010"] * 2),
])
def test_application_xid_warns_with_its_count(cluster, preflight, xid, lines):
    made = cluster({NV: NV_RIG})
    nv = nvidia(made)
    gpu = nv.gpu(1)
    if isinstance(lines, dict):
        nv.xid(1, lines["recording"], source=lines.get("source"))
    else:
        made[NV].kernel_lines([line.replace("{nvrm}", gpu["bdf"][:-2]) for line in lines], age_s=120)
    count = {13: 3, 31: 1, 43: 2, 45: 2}[xid]
    run = preflight(made.write_inventory())
    assert run.rc == 0, run.output
    assert run.summary["hard_failures"] == []
    host, message = only(run.items("warnings"), "kernel_log")
    assert message.startswith("%s: GPU 1 (%s): Xid %d: " % (NV, gpu["bdf"], xid)), message
    assert (("(x%d, last seen " % count) in message) is (count > 1), message
    assert "NVRM: Xid (PCI:%s): %d, " % (gpu["bdf"][:-2], xid) in message
    [finding] = run.host(NV)["kernel_log"]["findings"]
    assert (finding["xid"], finding["severity"], finding["count"], finding["bdf"]) == (xid, "soft", count, gpu["bdf"])
    facts = run.host(NV)["gpus"]
    assert [(x["xid"], x["count"], x["severity"]) for x in facts[1]["xid_errors"]] == [(xid, count, "soft")]
    assert [g["xid_errors"] for g in facts if g["bdf"] != gpu["bdf"]] == [[], [], []]
    assert [g["health"] for g in run.host(NV)["gpus"]] == ["ok"] * 4   # the GPU stays usable
    assert run.host(NV)["usable_gpus"] == [0, 1, 2, 3]


@pytest.mark.parametrize("recording, text", [
    (XID48, "is degraded: kernel log: Xid 48: double-bit ECC error, Xid 64: memory row remap / page retirement failed"),
    (XID149, "is degraded: kernel log: Xid 149: NVLink NETIR error (x2)"),   # the Xid 45s it caused are folded in
])
def test_hardware_xid_blocks(cluster, preflight, recording, text):
    made = cluster({NV: NV_RIG})
    nv = nvidia(made)
    nv.xid(3, recording)
    run = preflight(made.write_inventory())
    assert run.rc != 0
    host, message = only(run.items("hard_failures"), "gpu_health")
    assert message == "%s: GPU 3 (%s) %s" % (NV, nv.gpu(3)["bdf"], text)
    assert run.host(NV)["usable_gpus"] == [0, 1, 2]
    assert not [m for _h, c, m in run.items("warnings") if c == "kernel_log"]  # one line for the sick GPU


def _hang(nv):
    nv.set_mode("hang")
    return "GPU state unknown: nvidia-smi timed out after 3s and was killed; sysfs shows 4 GPU(s) on the bus"


def _driver_down(nv):
    nv.driver_down()
    return "GPU state unknown: nvidia-smi cannot talk to the NVIDIA driver: NVIDIA-SMI has failed because it " \
           "couldn't communicate with the NVIDIA driver."


def _missing(nv):
    os.remove(nv.nvidia_smi)
    return "GPU state unknown: %s not found; sysfs shows 4 GPU(s) on the bus and none lost" % nv.nvidia_smi


@pytest.mark.parametrize("fault", [_hang, _driver_down, _missing], ids=["hung", "driver-down", "missing"])
def test_nvidia_smi_that_cannot_answer_is_unknown_never_a_pass_nor_broken_hardware(cluster, preflight, fault):
    made = cluster({NV: NV_RIG})
    reason = fault(nvidia(made))
    run = preflight(made.write_inventory(), 3, "preflight_gpu_tool_timeout=3")
    assert run.rc == 0, run.output            # a warning, not a block
    assert run.summary["hard_failures"] == []
    host = run.host(NV)
    assert checks_of(run, NV)["gpu_health"] == "unknown"
    assert [g["health"] for g in host["gpus"]] == ["unknown"] * 4    # never ok, never lost/degraded
    assert host["usable_gpus"] == [] and host["unverified_gpus"] == [0, 1, 2, 3]
    assert "sysfs" in host["gpus"][0]["sources"] and "nvidia-smi" not in host["gpus"][0]["sources"]
    # one line for the tool, not one per GPU
    _host, message = only(run.items("warnings"), "gpu_health")
    assert reason in message, message
    fix = [w["fix"] for w in run.summary["warnings"] if w["check"] == "gpu_health"][0]
    assert "nvidia-smi" in fix and "/dev/shm/rocm_smi" not in fix, fix   # no AMD-only advice
    # no process list either: vram is unknown, and says why in NVIDIA's terms
    _host, vram = only(run.items("warnings"), "vram")
    assert checks_of(run, NV)["vram"] == "unknown"
    assert "nvidia-smi" in vram and "KFD" not in vram, vram
    assert "0 usable GPU(s), 4 unverified" in run.output


def test_vram_lists_a_process_holding_gpu_memory(cluster, preflight):
    made = cluster({NV: NV_RIG})
    nv = nvidia(made)
    nv.add_process(2, 48213, "/usr/bin/python3", mib=20000)
    nv.add_process(3, 48214, "/opt/venv/bin/torchrun", mib=4)     # under preflight_vram_min_mb: not reported
    run = preflight(made.write_inventory(), 3, "preflight_vram_min_mb=64")
    assert run.rc == 0, run.output
    _host, message = only(run.items("warnings"), "vram")
    assert message == "%s: pid 48213 (python3) holds 19.53 GiB of VRAM on GPU 2 (%s)" % (NV, nv.gpu(2)["bdf"])
    procs = dict((p["pid"], p) for p in run.host(NV)["processes"])
    assert (procs[48213]["index"], procs[48213]["vendor"], procs[48213]["vram_bytes"]) == (2, "nvidia", 20000 * 2 ** 20)
    assert procs[48214]["vram_bytes"] == 4 * 2 ** 20


# ---------------------------------------------------------------- excluded and watchlisted NVIDIA GPUs


def test_excluded_nvidia_gpu_only_warns_by_index_or_pci_address(cluster, preflight):
    made = cluster({NV: dict(NV_RIG, excluded_gpus=[1]), "rig-nv2": NV_RIG})
    nvidia(made).lose_gpu(1)
    other = nvidia(made, "rig-nv2")
    other.ecc_error(3)
    made["rig-nv2"].set_inventory(excluded_gpus=["00000000:%s" % other.gpu(3)["bdf"][5:].upper()])  # nvidia-smi's spelling
    run = preflight(made.write_inventory())
    assert run.rc == 0, run.output
    assert run.summary["passed"] is True
    health = [(h, m) for h, c, m in run.items("warnings") if c == "gpu_health"]
    assert [h for h, _m in health] == [NV, "rig-nv2"]
    assert health[0][1].endswith("(GPU 1 (%s) is in excluded_gpus)" % nvidia(made).gpu(1)["bdf"])
    assert health[1][1].endswith("(GPU 3 (%s) is in excluded_gpus)" % other.gpu(3)["bdf"])
    assert run.host(NV)["excluded_gpus"] == [1] and run.host("rig-nv2")["excluded_gpus"] == [3]
    assert run.host(NV)["usable_gpus"] == [0, 2, 3] and run.host("rig-nv2")["usable_gpus"] == [0, 1, 2]


def test_watchlisted_nvidia_gpu_with_an_application_xid_blocks(cluster, preflight):
    made = cluster({NV: dict(NV_RIG, gpu_watchlist=[2])})
    nv = nvidia(made)
    nv.xid(2, XID43)
    nv.xid(0, XID43)        # the same on a GPU nobody watches: a warning
    run = preflight(made.write_inventory())
    assert run.rc != 0, run.output
    _host, message = only(run.items("hard_failures"), "gpu_health")
    assert message.startswith("%s: GPU 2 (%s) is on gpu_watchlist and the kernel log shows Xid 43: GPU stopped "
                              "processing (application fault) (x2, last seen " % (NV, nv.gpu(2)["bdf"])), message
    _host, warning = only(run.items("warnings"), "kernel_log")
    assert warning.startswith("%s: GPU 0 (%s): Xid 43" % (NV, nv.gpu(0)["bdf"]))


# ---------------------------------------------------------------- a mixed two-vendor cluster


def test_mixed_cluster_healthy_passes_with_one_summary(cluster, preflight):
    made = cluster({AMD: AMD_RIG, NV: NV_RIG, MIX: MIX_HOST})
    run = preflight(made.write_inventory())
    assert run.rc == 0, run.output
    assert run.summary["passed"] is True and run.summary["warnings"] == []
    assert sorted(run.summary["hosts"]) == [AMD, MIX, NV]
    assert run.summary["totals"] == {"hosts": 3, "reachable": 3, "gpus": 11, "usable_gpus": 11, "unverified_gpus": 0}
    assert run.host(AMD)["usable_gpus"] == [0, 1, 2, 3] and run.host(NV)["usable_gpus"] == [0, 1, 2, 3]
    assert set(g["vendor"] for g in run.host(AMD)["gpus"]) == {"amd"}
    # on the two-vendor host, indices collide (rocm-smi's 0 and nvidia-smi's 0): GPUs are named by PCI address
    mixed = run.host(MIX)
    amd_gpu, nv_gpu = made[MIX].gpu(0).bdf, NvidiaGpus(made[MIX]).gpus
    assert [(g["vendor"], g["index"], g["bdf"]) for g in mixed["gpus"]] == [
        ("amd", 0, amd_gpu), ("nvidia", 0, nv_gpu[0]["bdf"]), ("nvidia", 1, nv_gpu[1]["bdf"])]
    assert mixed["usable_gpus"] == [amd_gpu, nv_gpu[0]["bdf"], nv_gpu[1]["bdf"]]
    assert len(made[MIX].tool_calls("rocm-smi")) == 1 and NvidiaGpus(made[MIX]).tool_calls() == ["-q -x"]
    assert len(made[AMD].tool_calls("rocm-smi")) == 1 and nvidia(made).tool_calls() == ["-q -x"]
    assert "Preflight PASSED for step 3 (3 host(s), 11 usable GPU(s))" in run.output


def test_mixed_cluster_blocks_a_lost_nvidia_gpu_and_an_amd_smu_failure_in_one_summary(cluster, preflight):
    made = cluster({AMD: AMD_RIG, NV: NV_RIG, MIX: MIX_HOST})
    made[AMD].smu_failure(2, fixture="mi300x")
    lost = NvidiaGpus(made[MIX]).lose_gpu(1)
    run = preflight(made.write_inventory())
    assert run.rc != 0
    blocked = sorted((h, c) for h, c, _m in run.items("hard_failures"))
    assert blocked == [(AMD, "gpu_health"), (MIX, "gpu_health")]
    message = [m for h, c, m in run.items("hard_failures") if h == MIX][0]
    assert message.startswith("%s: GPU 1 (%s) is lost: PCI config space reads all-ones" % (MIX, lost["bdf"]))
    assert run.host(MIX)["usable_gpus"] == [made[MIX].gpu(0).bdf, NvidiaGpus(made[MIX]).gpu(0)["bdf"]]
    assert run.host(NV)["status"] == "passed"


def test_mixed_host_refuses_an_index_in_excluded_gpus_and_takes_a_pci_address(cluster, preflight):
    made = cluster({MIX: dict(MIX_HOST, excluded_gpus=[1])})
    side = NvidiaGpus(made[MIX])
    run = preflight(made.write_inventory())
    assert run.rc != 0, run.output
    _host, message = only(run.items("hard_failures"), "gpu_health")
    assert message == ("%s: excluded_gpus names GPU 1 by index, refused: this host has AMD and NVIDIA GPUs and each "
                       "vendor's tool numbers its own from 0 (index 1: nvidia %s); name it by PCI address"
                       % (MIX, side.gpu(1)["bdf"]))
    assert run.host(MIX)["excluded_gpus"] == []

    made[MIX].set_inventory(excluded_gpus=[side.gpu(1)["bdf"]])
    side.lose_gpu(1)
    run = preflight(made.write_inventory())
    assert run.rc == 0, run.output
    assert run.host(MIX)["excluded_gpus"] == [side.gpu(1)["bdf"]]
    assert run.host(MIX)["usable_gpus"] == [made[MIX].gpu(0).bdf, side.gpu(0)["bdf"]]
    _host, warning = only(run.items("warnings"), "gpu_health")
    assert warning.endswith("(GPU 1 (%s) is in excluded_gpus)" % side.gpu(1)["bdf"])


# ---------------------------------------------------------------- the cleanup


def _files_under(home, rel):
    found = []
    for folder, _dirs, files in os.walk(os.path.join(home, rel)):
        found.extend(os.path.join(folder, name) for name in files)
    return found


def test_cleanup_removes_cuda_caches_keeps_models_and_symlink_targets_and_is_idempotent(cluster, cleanup):
    made = cluster({NV: NV_RIG, MIX: MIX_HOST})
    laid = nvidia(made).add_cuda_caches("trainer")
    made[MIX].add_caches("trainer")                      # both vendors' caches on the two-vendor host
    NvidiaGpus(made[MIX]).add_cuda_caches("trainer")
    run = cleanup(made.write_inventory())
    assert run.rc == 0, run.output
    assert run.summary["warnings"] == [], run.summary["warnings"]
    home = laid["home"]
    removed = sorted((os.path.relpath(r["path"], home), r["kind"]) for r in run.host(NV)["caches"]["removed"])
    assert removed == [(".cache/torch/kernels", "dir"), (".nv/ComputeCache", "dir"), (".triton/cache", "dir")]
    for cache in laid["caches"]:
        assert not os.path.lexists(cache), cache
    assert all(os.path.isfile(path) for path in laid["keep"])      # downloaded models and settings stay
    assert made[NV].precious_intact("trainer")                      # what the trap links pointed at is untouched
    mixed = sorted(os.path.relpath(r["path"], made[MIX].home("trainer")) for r in run.host(MIX)["caches"]["removed"])
    assert mixed == [".cache/comgr_cache", ".cache/hip_1234", ".cache/hip_5678", ".cache/miopen",
                     ".cache/torch/kernels", ".nv/ComputeCache", ".triton/cache"]
    assert os.path.isdir(os.path.join(made[MIX].home("trainer"), ".config", "miopen"))
    assert made[MIX].precious_intact("trainer")
    assert run.summary["totals"]["bytes_freed"] == sum(run.host(h)["caches"]["bytes_freed"] for h in (NV, MIX)) > 0
    assert "changed=1" in run.output

    again = cleanup(made.write_inventory())
    assert again.rc == 0 and "changed=1" not in again.output
    assert again.host(NV)["caches"]["removed"] == [] and again.host(MIX)["caches"]["removed"] == []


def test_cleanup_leaves_a_symlinked_cache_root_alone_and_says_so(cluster, cleanup):
    made = cluster({NV: NV_RIG})
    laid = nvidia(made).add_cuda_caches("trainer")
    home = laid["home"]
    precious = os.path.join(made[NV].path, "precious", "trainer")
    triton = os.path.join(home, ".triton")
    os.rename(triton, triton + ".real")
    os.symlink(precious, triton)                     # ~/.triton -> somewhere else: never followed
    run = cleanup(made.write_inventory())
    assert run.rc == 0, run.output
    _host, message = only(run.items("warnings"), "caches")
    assert message == "%s: left %s alone: cache root is a symlink (to %s): not followed, nothing under it removed" % (
        NV, triton, precious)
    assert made[NV].precious_intact("trainer") and os.path.islink(triton)
    assert not os.path.lexists(os.path.join(home, ".nv", "ComputeCache"))


def test_cleanup_check_mode_removes_nothing_and_resets_no_clock(cluster, workdir):
    made = cluster({NV: NV_RIG})
    nv = nvidia(made)
    laid = nv.add_cuda_caches("trainer")
    nv.lock_clocks(1)
    before = sorted(_files_under(laid["home"], "."))
    run = run_playbook("cleanup.yml", made.write_inventory(), 3, os.path.join(workdir, "summaries"),
                       "cleanup_reset_clocks=true", flags=("--check",))
    assert run.rc == 0, run.output
    assert sorted(_files_under(laid["home"], ".")) == before
    assert len(run.host(NV)["caches"]["removed"]) == 3 and run.host(NV)["caches"]["check_mode"] is True
    assert "would be freed (check mode: nothing removed)" in run.output
    assert "cache folder(s) would be removed" in run.host(NV)["checks"]["caches"]["message"]
    clocks = run.host(NV)["clocks"]
    assert clocks["needed"] == [nv.gpu(1)["bdf"]] and clocks["changed"] is True
    assert [c for c in nv.tool_calls() if c in ("-rgc", "-rmc")] == []      # only read, never reset
    assert nv.gpu(1)["locked"] is True and NvidiaGpus(made[NV]).gpu(1)["locked"] is True


def test_cleanup_resets_locked_clocks_verified_through_nvidia_smi(cluster, cleanup):
    made = cluster({NV: NV_RIG})
    nv = nvidia(made)
    nv.lock_clocks(1)
    nv.lock_clocks(3)
    nv.rmc_unsupported()                    # -rmc "not supported" (before Ampere): no failure
    run = cleanup(made.write_inventory(), 3, "cleanup_reset_clocks=true")
    assert run.rc == 0, run.output
    assert run.summary["warnings"] == []
    clocks = run.host(NV)["clocks"]
    assert clocks["needed"] == [nv.gpu(1)["bdf"], nv.gpu(3)["bdf"]] and clocks["problems"] == []
    assert [(g["before"], g["after"]) for g in clocks["gpus"]] == [
        ("default", "default"), ("user_defined", "default"), ("default", "default"), ("user_defined", "default")]
    assert nv.tool_calls()[:4] == ["-q -x -d PERFORMANCE", "-rgc", "-rmc", "-q -x -d PERFORMANCE"]
    assert checks_of(run, NV)["clocks"] == "ok"
    assert not any(g["locked"] for g in NvidiaGpus(made[NV]).gpus)

    again = cleanup(made.write_inventory(), 3, "cleanup_reset_clocks=true")
    assert again.host(NV)["clocks"]["needed"] == [] and "changed=1" not in again.output


def test_cleanup_reports_a_clock_reset_that_did_not_take(cluster, cleanup):
    made = cluster({NV: NV_RIG})
    nv = nvidia(made)
    nv.lock_clocks(2)
    nv.break_clock_reset()                  # -rgc says "All done." but the clocks stay locked
    run = cleanup(made.write_inventory(), 3, "cleanup_reset_clocks=true")
    assert run.rc == 0, run.output
    _host, message = only(run.items("warnings"), "clocks")
    assert message == ("%s: GPU %s still runs user-defined clocks after nvidia-smi -rgc/-rmc (application clocks set "
                       "with -ac need nvidia-smi -rac)" % (NV, nv.gpu(2)["bdf"]))
    fix = [w["fix"] for w in run.summary["warnings"] if w["check"] == "clocks"][0]
    assert "nvidia-smi" in fix and "rocm-smi" not in fix, fix


def test_cleanup_reports_orphaned_vram_and_a_new_xid_never_blocking(cluster, preflight, cleanup):
    made = cluster({NV: NV_RIG, AMD: AMD_RIG})
    nv = nvidia(made)
    first = preflight(made.write_inventory())
    assert first.rc == 0, first.output
    nv.add_process(0, 51234, "/usr/bin/python3", mib=8192)
    nv.xid(2, XID48, age_s=0)
    run = cleanup(made.write_inventory())
    assert run.rc == 0, run.output
    assert run.summary["hard_failures"] == []
    _host, vram = only(run.items("warnings"), "vram")
    assert vram == "%s: pid 51234 (python3) holds 8.00 GiB of VRAM on GPU 0 (%s)" % (NV, nv.gpu(0)["bdf"])
    fix = [w["fix"] for w in run.summary["warnings"] if w["check"] == "vram"][0]
    assert "kill 51234" in fix
    logged = [m for h, c, m in run.items("warnings") if c == "kernel_log"]
    assert logged and all(m.startswith("%s: new since the step started on GPU 2 (%s): Xid " % (NV, nv.gpu(2)["bdf"]))
                          for m in logged), logged
    _host, health = only(run.items("warnings"), "gpu_health")
    assert "GPU 2 (%s) is degraded: kernel log: Xid 48: double-bit ECC error" % nv.gpu(2)["bdf"] in health
    assert run.host(AMD)["status"] == "passed"


# ---------------------------------------------------------------- the demo's mixed cluster


def test_the_mixed_vendors_scenario_as_the_demo_runs_it(workdir, preflight):
    import subprocess
    import sys

    from simrig import build_scenario

    scenario = build_scenario("mixed_vendors", os.path.join(workdir, "mixed"))
    try:
        run = preflight(scenario.inventory)
        assert run.rc == 0, run.output
        for host, expect in scenario.expect.items():
            entry = run.host(host)
            assert entry["status"] in expect["status"], (host, entry["status"])
            for check, allowed in expect.items():
                if check != "status":
                    assert entry["checks"][check]["status"] in allowed, (host, check, entry["checks"][check])
        assert run.host("rig-mixed")["excluded_gpus"] == [scenario.focus["rig-mixed"]["excluded"]]
        # the demo's next step, through the simrig command line: an uncorrectable ECC error blocks
        subprocess.run([sys.executable, "-m", "simrig", "fault", scenario["rig-a5000"].path, "nvidia.ecc_error", "2"],
                       env=dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..")), check=True)
        blocked = preflight(scenario.inventory)
        assert blocked.rc != 0
        assert [(h, c) for h, c, _m in blocked.items("hard_failures")] == [("rig-a5000", "gpu_health")]
    finally:
        scenario.cluster.destroy()
