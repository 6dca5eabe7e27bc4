from __future__ import annotations

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _cleanup, _families, _gpu_checks, _preflight
from ansible_collections.gpuops.preflight.plugins.module_utils._host_runner import Context

NOW = 1796116800.0  # 2026-12-01 09:20:00 UTC


def gpu(index, bdf, health="ok", excluded=False, watchlisted=False, responding=True, temp=40.0):
    return {"index": index, "bdf": bdf, "health": health, "excluded": excluded, "watchlisted": watchlisted,
            "responding": responding, "temperature_edge_c": temp, "problems": []}


def finding(category, severity, bdf=None, line="amdgpu: something", count=1, last_epoch=None):
    return {"category": category, "severity": severity, "bdf": bdf, "summary": category, "message": line,
            "line": line, "count": count, "fix": "fix it", "last_epoch": last_epoch, "last_seen": None}


def evaluate(family, check, gpus=(), findings=(), unmatched=(), processes=(), kfd=True, log_failure=None,
             watch_hits=None, tool=None, notes=(), log_info=None, now=NOW, probe=None, refused=(), **params):
    """Evaluate one check of ``family`` on a GPU view, as the host runner would (``probe``: keys of the probe to set)."""
    tool = tool or {"answered": True, "outcome": "answered", "reason": None}
    view = {"gpus": list(gpus), "findings": list(findings), "unmatched": list(unmatched), "log_failure": log_failure,
            "probe": dict({"tool": tool, "tools": {"amd": tool}, "processes": list(processes), "kfd_available": kfd,
                           "processes_available": kfd}, **(probe or {})),
            "log_info": log_info or {}, "policy_notes": list(notes), "policy_refused": list(refused),
            "watch_hits": watch_hits or {}}
    params.setdefault("vram_min_mb", 0)
    params.setdefault("gpu_watch_window", 86400)
    ctx = Context(family, None, params, [check], {}, now=now)
    ctx.values["gpu_view"] = view
    spec = family.checks[check]
    return spec.evaluate(ctx, spec)


def test_one_gpu_host_takes_amdgpu_lines_but_never_bridge_or_job_lines():
    gpus = [gpu(0, "0000:0b:00.0")]
    found = _gpu_checks.attribute_host_findings([
        finding("smu_message_failed", "hard", line="kernel: amdgpu: [powerplay] failed send message"),
        finding("bus_lost", "hard", line="pcieport 0000:00:01.1: pciehp: Slot(0): Link Down"),
        finding("page_fault", "soft", line="Memory access fault by GPU node-1 (Agent handle: 0x1)"),
    ], gpus)
    assert [f["bdf"] for f in found] == ["0000:0b:00.0", None, None]
    assert _gpu_checks.attribute_host_findings([finding("smu_message_failed", "hard")], gpus * 2)[0]["bdf"] is None


def test_one_gpu_host_does_not_take_a_line_naming_another_device_id():
    kfd = finding("init_failed", "hard", line="kfd kfd: amdgpu: skipped device 1002:67df, PCI rejects atomics 730<0")
    kfd["pci_id"] = "1002:67df"
    assert _gpu_checks.attribute_host_findings([kfd], [gpu(0, "0000:0b:00.0")])[0]["bdf"] is None


def test_kernel_log_rules():
    gpus = [gpu(0, "0000:03:00.0"), gpu(1, "0000:06:00.0"), gpu(2, "0000:09:00.0", health="degraded")]
    problems, text = evaluate(_preflight.FAMILY, "kernel_log", gpus, [
        finding("gpu_reset_failed", "hard", "0000:03:00.0"),            # hard on a GPU: fail
        finding("ring_timeout", "soft", "0000:03:00.0", last_epoch=NOW - 7200),  # soft on any GPU: warn...
        finding("ring_timeout", "soft", "0000:03:00.0", count=3, line="amdgpu: ring sdma0 timeout",
                last_epoch=NOW - 60),                                  # ...collapsed per GPU and category
        finding("page_fault", "soft", "0000:06:00.0"),
        finding("gpu_hang", "hard", "0000:09:00.0"),                    # on a degraded GPU: under gpu_health
        finding("smu_no_response", "hard", None, line="amdgpu: SMU: response:0xFFFFFFFF"),  # names no GPU: fail
        finding("page_fault", "soft", None),                            # host-level soft: warn too
    ])
    assert [(p["status"], (p.get("gpu") or {}).get("index")) for p in problems] == [
        ("fail", 0), ("fail", None), ("warn", 0), ("warn", 1), ("warn", None)]
    assert problems[2]["message"] == ("GPU 0 (0000:03:00.0): ring_timeout (x4, last seen 2026-12-01 09:19:00 UTC, "
                                      "60 s ago): amdgpu: ring sdma0 timeout")
    assert "a GPU the log line does not name" in problems[1]["message"]
    assert text == "7 finding(s): 5 reported here, 1 under gpu_health"


def test_a_watched_gpu_with_a_recent_finding_blocks_and_an_old_one_warns():
    watched = gpu(7, "0000:0c:00.0", watchlisted=True)
    recent = finding("ring_timeout", "soft", "0000:0c:00.0", count=2, last_epoch=NOW - 3600)
    problems, _text = evaluate(_preflight.FAMILY, "gpu_health", [watched], [recent],
                               watch_hits={"0000:0c:00.0": [recent]})
    [only] = problems
    assert only["status"] == "fail" and only["gpu"]["index"] == 7
    assert only["message"] == ("GPU 7 (0000:0c:00.0) is on gpu_watchlist and the kernel log shows ring_timeout (x2, "
                               "last seen 2026-12-01 08:20:00 UTC, 60 min ago) within the watch window (24 h)")
    # the kernel_log check does not say it twice
    assert evaluate(_preflight.FAMILY, "kernel_log", [watched], [recent], watch_hits={"0000:0c:00.0": [recent]})[0] == []
    # excluded as well: everything on it is a warning (the judge), with a fix that does not say "exclude it"
    excluded = dict(watched, excluded=True)
    assert evaluate(_preflight.FAMILY, "gpu_health", [excluded], [recent],
                    watch_hits={"0000:0c:00.0": [recent]})[0][0]["fix"] == _gpu_checks.EXCLUDED_FIX


@pytest.mark.parametrize("last_epoch,inside", [(NOW - 3600, True), (NOW - 90000, False), (None, True)])
def test_the_watch_window(last_epoch, inside):
    gpus = [gpu(7, "0000:0c:00.0", watchlisted=True), gpu(8, "0000:0d:00.0")]
    found = [finding("page_fault", "soft", "0000:0c:00.0", last_epoch=last_epoch),
             finding("page_fault", "soft", "0000:0d:00.0", last_epoch=NOW - 60)]
    hits = _gpu_checks.watch_hits(gpus, found, 86400, NOW)
    assert list(hits) == (["0000:0c:00.0"] if inside else [])
    assert _gpu_checks.watch_hits(gpus, found, None, NOW) == {}


def test_no_usable_gpu_on_a_rig_that_expects_some_blocks():
    lost = [gpu(0, "0000:03:00.0", health="lost"), gpu(1, "0000:06:00.0", excluded=True)]
    problems, text = evaluate(_preflight.FAMILY, "gpu_available", lost, expected_gpu_count=2)
    assert [(p["status"], p["message"]) for p in problems] == [("fail", "2 GPU(s), none usable: 1 excluded, 1 lost")]
    assert evaluate(_preflight.FAMILY, "gpu_available", [], expected_gpu_count=None)[0][0]["message"].startswith(
        "no GPU found")
    assert evaluate(_preflight.FAMILY, "gpu_available", [], expected_gpu_count=0)[0] == []
    # unknown because the tool failed while sysfs looks fine: still available (gpu_health warns)
    assert evaluate(_preflight.FAMILY, "gpu_available", [gpu(0, "0000:03:00.0", health="unknown")])[0] == []


def test_a_missing_gpu_tool_is_said_and_an_excluded_gpu_is_not_told_to_be_excluded():
    tool = {"answered": False, "outcome": "missing", "reason": "no GPU tool found: rocm-smi not found"}
    sick = gpu(10, "0000:22:00.0", health="degraded", excluded=True)
    problems, _text = evaluate(_preflight.FAMILY, "gpu_health", [sick], tool=tool, gpu_tool="auto")
    assert [(p["status"], p["message"][:40]) for p in problems] == [
        ("fail", "GPU 10 (0000:22:00.0) is degraded: "), ("unknown", "no GPU tool found: rocm-smi not found: G")]
    assert problems[0]["fix"] == _gpu_checks.EXCLUDED_FIX and "excluded_gpus for this host" not in problems[0]["fix"]
    assert evaluate(_preflight.FAMILY, "gpu_health", [], tool=tool, gpu_tool="sysfs")[0] == []


def test_an_unscanned_part_of_the_kernel_log_is_a_warning():
    problems, _text = evaluate(_preflight.FAMILY, "kernel_log", log_info={"unscanned": {
        "description": "/var/log/kern.log: 40 MiB at its start not scanned within 15 s"}})
    assert [(p["status"], p["message"]) for p in problems] == [
        ("unknown", "kernel log not scanned whole: /var/log/kern.log: 40 MiB at its start not scanned within 15 s")]


def test_index_names_when_the_order_is_a_guess():
    gpus = [gpu(0, "0000:03:00.0"), gpu(1, "0000:06:00.0", health="lost"), gpu(2, "0000:09:00.0")]
    excluded = _gpu_checks.parse_policy([1, 2], "excluded_gpus")
    # the tool answered: indices are the tool's own
    unmatched, notes, refused = _gpu_checks.mark_policy([dict(g) for g in gpus], excluded, [])
    assert unmatched == [] and notes == [] and refused == []
    # it did not, and the last run that answered knew index 1 as 0000:09:00.0
    marked = [dict(g) for g in gpus]
    unmatched, notes, _refused = _gpu_checks.mark_policy(marked, excluded, [], {"1": "0000:09:00.0"}, order_known=False)
    assert [g["excluded"] for g in marked] == [False, False, True] and notes == []
    # no map: an index is not applied to a lost GPU (the guess could hide the loss), and that is said
    marked = [dict(g) for g in gpus]
    unmatched, notes, _refused = _gpu_checks.mark_policy(marked, excluded, [], {}, order_known=False)
    assert [g["excluded"] for g in marked] == [False, False, True]
    assert notes == ["excluded_gpus names GPU 1 by index, but the GPU tool did not answer and the index order is a "
                     "guess: not applied to the lost GPU at 0000:06:00.0; name GPUs by PCI address"]
    # two vendors: indices collide, refused (never applied); PCI addresses still apply
    marked = [dict(g, vendor="nvidia" if g["index"] else "amd") for g in gpus]
    marked.append(dict(gpu(0, "0000:41:00.0"), vendor="nvidia"))
    both = _gpu_checks.parse_policy([0, 5, "0000:09:00.0"], "excluded_gpus")
    unmatched, notes, refused = _gpu_checks.mark_policy(marked, both, [], mixed_vendors=True)
    assert [g["excluded"] for g in marked] == [False, False, True, False] and unmatched == [] and notes == []
    assert refused == [
        "excluded_gpus names GPU 0 by index, refused: this host has AMD and NVIDIA GPUs and each vendor's tool "
        "numbers its own from 0 (index 0: amd 0000:03:00.0, nvidia 0000:41:00.0); name it by PCI address",
        "excluded_gpus names GPU 5 by index, refused: this host has AMD and NVIDIA GPUs and each vendor's tool "
        "numbers its own from 0 (no GPU has index 5); name it by PCI address"]


def test_gpu_count_with_excluded_and_unknown_names():
    gpus = [gpu(i, "0000:%02x:00.0" % i) for i in range(11)]
    gpus[10]["excluded"] = True
    gpus[4]["responding"] = False
    gpus[4]["health"] = "lost"
    problems, _text = evaluate(_preflight.FAMILY, "gpu_count", gpus, unmatched=[("excluded", ("index", 15))],
                               expected_gpu_count=12)
    messages = [p["message"] for p in problems]
    assert messages[0] == "excluded_gpus names GPU 15, which this host does not have"
    assert messages[1] == "expected 11 (12 minus 1 excluded) GPUs, found 9; not responding: GPU 4 (0000:04:00.0) lost"
    assert "nvidia-smi" in problems[0]["fix"] and "rocm-smi" in problems[0]["fix"]  # either vendor's numbering


def test_gpu_count_says_why_gpus_are_not_verified():
    gpus = [gpu(i, "0000:%02x:00.0" % i, health="unknown", responding=None) for i in range(2)]
    silent = {"answered": False, "outcome": "failed", "reason": "rocm-smi exited 1"}
    _problems, text = evaluate(_preflight.FAMILY, "gpu_count", gpus, tool=silent, expected_gpu_count=2)
    assert text == "expected 2 GPUs, found 2 (2 not verified: the GPU tool gave no answer)"
    _problems, text = evaluate(_preflight.FAMILY, "gpu_count", gpus, expected_gpu_count=2)   # the tool answered
    assert text == ("expected 2 GPUs, found 2 (2 not verified: the GPU tool's answer could not be matched to them, "
                    "see gpu_health)")


def test_hot_gpu_and_vram_holders():
    gpus = [gpu(0, "0000:03:00.0", temp=91.0), gpu(1, "0000:06:00.0", temp=60.0)]
    problems, text = evaluate(_preflight.FAMILY, "gpu_temperature", gpus, gpu_temp_warn_c=85.0)
    assert [p["message"] for p in problems] == ["GPU 0 (0000:03:00.0) is at 91 C (edge), at or above 85 C before work starts"]
    assert text == "hottest GPU 91 C"
    procs = [{"pid": 7, "name": "python3", "bdf": "0000:06:00.0", "vram_bytes": 3 * 1024 ** 3},
             {"pid": 8, "name": "hipinfo", "bdf": "0000:06:00.0", "vram_bytes": 0}]
    problems, _text = evaluate(_preflight.FAMILY, "vram", gpus, processes=procs)
    assert [p["message"] for p in problems] == ["pid 7 (python3) holds 3.00 GiB of VRAM on GPU 1 (0000:06:00.0)"]
    assert evaluate(_preflight.FAMILY, "vram", gpus, kfd=False)[0][0]["status"] == "unknown"


@pytest.mark.parametrize("family,status,fix", [
    (_preflight.FAMILY, "fail", _preflight.CHECKS["gpu_health"].fix),
    (_cleanup.FAMILY, "warn", _cleanup.CHECKS["gpu_health"].fix),
])
def test_shared_gpu_health_speaks_with_the_family_s_own_spec(family, status, fix):
    problems, _text = evaluate(family, "gpu_health", [gpu(3, "0000:0b:00.0", health="lost")])
    assert [(p["status"], p["fix"]) for p in problems] == [(status, fix)]
    procs = [{"pid": 7, "name": "python3", "bdf": "0000:0b:00.0", "vram_bytes": 1024 ** 3}]
    vram = evaluate(family, "vram", [gpu(3, "0000:0b:00.0")], processes=procs)[0][0]
    assert "kill 7" in vram["fix"] and vram["fix"] == family.checks["vram"].fix.replace("<pid>", "7")


def test_a_kernel_log_that_could_not_be_read_leaves_smu_failures_unchecked():
    problems, _text = evaluate(_preflight.FAMILY, "gpu_health", [gpu(0, "0000:03:00.0")],
                               log_failure="journalctl exited 1: Permission denied")
    assert [(p["status"], p["message"]) for p in problems] == [
        ("unknown", "SMU failures not checked: could not read the kernel log (journalctl exited 1: Permission denied)")]
    nvidia = dict(gpu(0, "0000:81:00.0"), vendor="nvidia")
    problems, _text = evaluate(_preflight.FAMILY, "gpu_health", [nvidia], log_failure="dmesg exited 1")
    assert [p["message"] for p in problems] == ["Xid errors not checked: could not read the kernel log (dmesg exited 1)"]


def test_after_a_step_every_new_finding_warns():
    problems, text = evaluate(_cleanup.FAMILY, "kernel_log", [gpu(0, "0000:03:00.0")], [
        finding("gpu_reset_failed", "hard", "0000:03:00.0", count=2), finding("page_fault", "soft", None)],
        kernel_log_since=1.0)
    assert [(p["status"], p["message"]) for p in problems] == [
        ("warn", "new since the step started on GPU 0 (0000:03:00.0): gpu_reset_failed (x2): amdgpu: something"),
        ("warn", "new since the step started on a GPU the log line does not name: page_fault: amdgpu: something")]
    assert text == "no new GPU failures since the step started"


def test_a_kernel_log_that_cannot_be_read_is_unknown_never_ok(tmp_path):
    from ansible_collections.gpuops.preflight.plugins.module_utils import _host_runner

    params = {"step": "3", "checks": ["kernel_log"], "timeouts": {}, "kernel_log": str(tmp_path / "missing.log"),
              "kernel_log_since": None}
    result = _host_runner.run(_cleanup.FAMILY, None, params)
    check = result["checks"]["kernel_log"]
    assert check["status"] == "unknown"
    assert check["message"] == "reading the kernel log (file): cannot read %s: No such file or directory" % (
        tmp_path / "missing.log")
    assert result["kernel_log"]["read"] is False and result["kernel_log"]["error"].startswith("cannot read")


def two_vendor_host(nvidia_health="ok"):
    """An AMD iGPU beside two NVIDIA cards: each vendor's tool numbers its own GPUs from 0."""
    return [dict(gpu(0, "0000:03:00.0"), vendor="amd"), dict(gpu(0, "0000:41:00.0", health=nvidia_health), vendor="nvidia"),
            dict(gpu(1, "0000:51:00.0", health=nvidia_health), vendor="nvidia")]


def test_on_a_two_vendor_host_a_silent_nvidia_smi_is_one_line_and_amd_vram_holders_are_still_reported():
    rocm = {"name": "rocm-smi", "vendor": "amd", "answered": True, "outcome": "answered", "reason": None}
    nvsmi = {"name": "nvidia-smi", "vendor": "nvidia", "answered": False, "outcome": "timeout",
             "reason": "nvidia-smi timed out after 15s and was killed"}
    probe = {"tools": {"amd": rocm, "nvidia": nvsmi}, "vendors": ["amd", "nvidia"], "mixed_vendors": True,
             "process_lists": {"amd": True, "nvidia": False}, "processes_available": False}
    gpus = two_vendor_host(nvidia_health="unknown")
    problems, _text = evaluate(_preflight.FAMILY, "gpu_health", gpus, tool=rocm, probe=probe)
    assert [(p["status"], p["message"]) for p in problems] == [
        ("unknown", "GPU state unknown: nvidia-smi timed out after 15s and was killed; sysfs shows 2 GPU(s) on the bus "
                    "and none lost")]
    assert problems[0]["fix"] == _gpu_checks.SILENT_TOOL_FIX["nvidia"] and "rocm_smi" not in problems[0]["fix"]
    procs = [{"pid": 7, "name": "python3", "bdf": "0000:03:00.0", "vram_bytes": 2 * 1024 ** 3, "vendor": "amd"}]
    problems, text = evaluate(_preflight.FAMILY, "vram", gpus, processes=procs, tool=rocm, probe=probe)
    assert [(p["status"], p["message"]) for p in problems] == [
        ("warn", "pid 7 (python3) holds 2.00 GiB of VRAM on GPU 0 (0000:03:00.0)"),
        ("unknown", "no process list for the NVIDIA GPUs: nvidia-smi timed out after 15s and was killed; cannot tell "
                    "who holds VRAM on them")]
    assert text == "1 process(es) holding VRAM"
    # an NVIDIA-only host: only the NVIDIA reason, never KFD
    problems, text = evaluate(_preflight.FAMILY, "vram", gpus[1:], tool=nvsmi, probe=dict(probe, vendors=["nvidia"]))
    assert [p["message"] for p in problems] == [
        "no process list for the NVIDIA GPUs: nvidia-smi timed out after 15s and was killed; cannot tell who holds "
        "VRAM on them"] and text == "no process list"
    # nvidia-smi answered, but in CSV (no process list there)
    csv = dict(nvsmi, answered=True, outcome="answered", reason=None, format="csv")
    problems, _text = evaluate(_preflight.FAMILY, "vram", gpus[1:], tool=csv, probe=dict(probe, tools={"nvidia": csv}))
    assert "nvidia-smi answered in csv format, which has no process list" in problems[0]["message"]


def test_a_missing_nvidia_smi_is_one_line_with_the_install_fix():
    missing = {"name": "nvidia-smi", "vendor": "nvidia", "answered": False, "outcome": "missing",
               "reason": "nvidia-smi not found on PATH"}
    gpus = [dict(gpu(i, "0000:%02x:00.0" % (0x41 + i), health="unknown"), vendor="nvidia") for i in range(3)]
    problems, _text = evaluate(_preflight.FAMILY, "gpu_health", gpus, tool=missing,
                               probe={"tools": {"nvidia": missing}}, gpu_tool="auto")
    assert [(p["status"], p["message"], p["fix"]) for p in problems] == [
        ("unknown", "GPU state unknown: nvidia-smi not found on PATH; sysfs shows 3 GPU(s) on the bus and none lost",
         "Install the GPU tool on the host (ROCm's rocm-smi or amd-smi, NVIDIA's nvidia-smi) or point preflight_rocm_smi "
         "/ preflight_nvidia_smi at it; set preflight_gpu_tool: sysfs to rely on sysfs on purpose.")]
    # each family names its own variables
    assert "training_health_rocm_smi / training_health_nvidia_smi" in _gpu_checks.missing_tool_fix(
        _families.family("training_health"))


def test_an_index_refused_on_a_two_vendor_host_blocks_the_preflight_and_warns_in_the_cleanup():
    refusal = ("excluded_gpus names GPU 1 by index, refused: this host has AMD and NVIDIA GPUs and each vendor's tool "
               "numbers its own from 0 (index 1: nvidia 0000:51:00.0); name it by PCI address")
    for family, status in ((_preflight.FAMILY, "fail"), (_cleanup.FAMILY, "warn")):
        problems, _text = evaluate(family, "gpu_health", two_vendor_host(), refused=[refusal])
        assert [(p["status"], p["message"], p["fix"]) for p in problems] == [
            (status, refusal, _gpu_checks.MIXED_INDEX_FIX)]


def test_gpus_are_named_by_pci_address_on_a_two_vendor_host():
    from ansible_collections.gpuops.preflight.plugins.module_utils import _pci

    gpus = two_vendor_host()
    assert _pci.mixed_vendors(gpus) is True and _pci.mixed_vendors(gpus[1:]) is False and _pci.mixed_vendors([]) is False
    assert [_pci.gpu_name(g, True) for g in gpus] == ["0000:03:00.0", "0000:41:00.0", "0000:51:00.0"]
    assert [_pci.gpu_name(g) for g in gpus[1:]] == [0, 1]
    assert _pci.gpu_name({"index": None, "bdf": "0000:61:00.0"}) == "0000:61:00.0"   # unbound: no index


# ---------------------------------------------------------------- a GPU gone from amd-smi (SMU hang), through the probe

def probed_view(tmp_path, listing, lost=False):
    """The real probe of three GPUs in sysfs, 06 gone from amd-smi (its two metric entries renumbered 0 and 1)."""
    from ansible_collections.gpuops.preflight.plugins.module_utils import _gpus
    from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils import test_gpus as probing
    from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.sysfs_tree import add_gpu

    root = str(tmp_path / "sys")
    for card, bus in enumerate((3, 6, 9)):
        add_gpu(root, "0000:%02x:00.0" % bus, card=card + 1, lost=lost and bus == 6)
    result = probing.amd_probe(root, probing.amd_metric(0, 1), listing=listing)
    return [dict(g, excluded=False, watchlisted=False) for g in result["gpus"]], result["tool"], _gpus


def run_three(gpus, tool, **params):
    return dict((check, evaluate(_preflight.FAMILY, check, gpus, tool=tool, probe={"tools": {"amd": tool}}, **params))
                for check in ("gpu_health", "gpu_count", "gpu_available"))


def test_gpu_gone_from_amd_smi_placed_by_list_blocks_the_step(tmp_path):
    from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils import test_gpus as probing
    gpus, tool, _gpus = probed_view(tmp_path, probing.amd_list((0, "0000:03:00.0"), (1, "0000:09:00.0")))
    got = run_three(gpus, tool, expected_gpu_count=3)
    [health] = got["gpu_health"][0]
    assert (health["status"], health["gpu"]["bdf"]) == ("fail", "0000:06:00.0")
    [count] = got["gpu_count"][0]
    assert count["status"] == _preflight.FAMILY.checks["gpu_count"].fail_status
    assert count["message"].startswith("expected 3 GPUs, found 2; not responding: GPU 0000:06:00.0 degraded")
    assert got["gpu_available"] == ([], "2 usable GPU(s)")


def test_gpu_gone_from_amd_smi_without_a_list_still_blocks_the_step(tmp_path):
    from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils import test_gpus as probing
    gpus, tool, _gpus = probed_view(tmp_path, probing.LIST_FAILED)
    assert [g["health"] for g in gpus] == ["unknown"] * 3  # which one is gone cannot be told
    got = run_three(gpus, tool, expected_gpu_count=3)
    gone = [p for p in got["gpu_health"][0] if p["status"] == "fail"]
    assert [p["message"] for p in gone] == [
        "amd-smi lists 2 GPU(s) where sysfs shows 3 with a DRM card: 1 no longer answers it, which cannot be told "
        "(amd-smi printed no PCI addresses and numbers 2 GPU(s) (0, 1) where sysfs shows 3 with a DRM card)"]
    assert [p["status"] for p in got["gpu_health"][0] if p not in gone] == ["unknown"] * 3
    [count] = got["gpu_count"][0]
    assert count["status"] == _preflight.FAMILY.checks["gpu_count"].fail_status
    assert count["message"].startswith("expected 3 GPUs, found 2 (amd-smi lists 2 GPU(s)")
    assert got["gpu_available"] == ([], "2 usable GPU(s)")
    assert run_three(gpus, tool)["gpu_count"][1].startswith("2 GPU(s) responding")


def test_a_lost_gpu_explains_the_shortfall(tmp_path):
    """06 fell off the bus: it is the one gone from amd-smi's list as far as anyone can tell, counted once."""
    from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils import test_gpus as probing
    gpus, tool, _gpus = probed_view(tmp_path, probing.LIST_FAILED, lost=True)
    got = run_three(gpus, tool, expected_gpu_count=3)
    assert [p["message"] for p in got["gpu_health"][0] if p["status"] == "fail"] == [
        "GPU 1 (0000:06:00.0) is lost: PCI config space reads all-ones: the GPU is lost from the bus"]
    message = got["gpu_count"][0][0]["message"]
    # amd-smi answered: the two it left unplaced are not "GPUs the tool gave no answer for"
    assert message == ("expected 3 GPUs, found 2 (2 not verified: the GPU tool's answer could not be matched to them, "
                       "see gpu_health); not responding: GPU 1 (0000:06:00.0) lost")


YEAR = 365 * 86400


@pytest.mark.parametrize("offset", [-YEAR, YEAR, 3600])
def test_a_host_clock_off_the_controllers_moves_the_kernel_log_window_and_warns(mocker, offset):
    # the step's start is a controller time; the host dates its log lines by its own clock: a year behind, every
    # line was older than the window ("no new kernel errors", nothing read); a year ahead, every line since boot new
    from ansible_collections.gpuops.preflight.plugins.module_utils import _kernel_log
    seen = {}

    class Read(object):
        source, error, timed_out, lines, elapsed, note, unscanned = "file", None, False, [], 0.0, None, None

    def scan(_module, _source, _path, since, _timeout):
        seen["since"] = since
        return Read(), []
    mocker.patch.object(_kernel_log, "scan_kernel_log", scan)
    controller_now, step_start = NOW, NOW - 1800
    params = {"kernel_log": "/var/log/kern.log", "kernel_log_since": step_start, "controller_time": controller_now}
    ctx = Context(_cleanup.FAMILY, None, params, ["kernel_log"], {}, now=controller_now + offset)
    log = _gpu_checks._collect_kernel_log(ctx, 30)
    assert seen["since"] == step_start + offset and log["info"]["clock_offset_s"] == offset
    view = {"gpus": [], "findings": [], "log_info": log["info"]}
    ctx.values["gpu_view"] = view
    spec = _cleanup.FAMILY.checks["kernel_log"]
    problems, _text = spec.evaluate(ctx, spec)
    assert [p["status"] for p in problems] == ["warn"]
    assert problems[0]["message"].startswith("the host's clock is %s the controller's" % (
        "365 days behind" if offset == -YEAR else "365 days ahead of" if offset > 3600 else "60 min ahead of"))


def test_a_host_clock_within_a_minute_of_the_controllers_leaves_the_window_and_says_nothing():
    assert _gpu_checks.since_on_host(1000.0, 5000.0, 5030.0) == (1000.0, None)
    assert _gpu_checks.since_on_host(None, 5000.0, 9e9) == (None, None)     # from boot: nothing to move
    assert _gpu_checks.since_on_host(1000.0, None, 9e9) == (1000.0, None)   # a controller that did not say


@pytest.mark.parametrize("tool,said", [
    ({"answered": False, "listed": False, "outcome": "failed",
      "reason": "amd-smi exited 255: ERROR:root:Unable to detect any GPU devices"}, True),
    ({"answered": False, "listed": False, "outcome": "timeout", "reason": "rocm-smi timed out after 15s"}, True),
    ({"answered": False, "listed": True, "outcome": "no_data", "reason": "rocm-smi reported no data for any GPU"}, False),
    ({"answered": False, "listed": False, "outcome": "not_used", "reason": None}, False),
])
def test_a_tool_without_an_answer_on_a_host_showing_no_gpu_is_unknown_never_passed(tool, said):
    """sysfs shows no GPU (a container hiding it) and the GPU tool failed: their state is unknown, not '0 GPUs, ok'.
    A tool that listed no GPU (rocm-smi's 'No JSON data to report') is an answer: nothing is unknown then."""
    problems, _text = evaluate(_preflight.FAMILY, "gpu_health", [], tool=tool, gpu_tool="auto")
    if said:
        assert [(p["status"], p["message"]) for p in problems] == [
            ("unknown", "GPU state unknown: %s; sysfs shows none of its GPUs either" % tool["reason"])]
    else:
        assert problems == []


@pytest.mark.parametrize("family", [_preflight.FAMILY, _cleanup.FAMILY])
def test_every_warning_of_a_usable_gpu_is_reported(family):
    nv_warnings = ["nvidia-smi could not read the fan speed (ERR!)",
                   "memory row remapping is pending: reset the GPU (nvidia-smi -r) at the next chance to apply it",
                   "clocks held down: hw_slowdown active"]
    amd_warning = ("amdgpu refused its sensor reads (power1_average, temp_input: EPERM): it is in a reset or not "
                   "runtime-active; its temperature and power are unknown")
    gpus = [dict(gpu(0, "0000:81:00.0"), vendor="nvidia", warnings=nv_warnings),
            dict(gpu(1, "0000:03:00.0"), vendor="amd", warnings=[amd_warning]),
            # an excluded GPU is not used, and a sick one's failure says it all: no warnings of theirs
            dict(gpu(2, "0000:06:00.0", excluded=True), warnings=["clocks held down: hw_slowdown active"]),
            dict(gpu(3, "0000:09:00.0", health="degraded"), warnings=["nvidia-smi could not read the fan speed (ERR!)"])]
    problems, text = evaluate(family, "gpu_health", gpus)
    assert [(p["status"], p["gpu"]["index"], p["message"]) for p in problems] == [
        ("warn", 0, "GPU 0 (0000:81:00.0): " + nv_warnings[0]),
        ("warn", 0, "GPU 0 (0000:81:00.0): " + nv_warnings[1]),
        ("warn", 0, "GPU 0 (0000:81:00.0): " + nv_warnings[2]),
        ("warn", 1, "GPU 1 (0000:03:00.0): " + amd_warning),
        (family.checks["gpu_health"].fail_status, 3, "GPU 3 (0000:09:00.0) is degraded: ")]
    assert all(p["fix"] == _gpu_checks.GPU_WARNING_FIX for p in problems[:4])
    assert text == "4 GPU(s): 3 ok, 1 degraded"  # the verdicts themselves are unchanged


def test_gpus_hidden_in_a_job_are_unknown_and_counted_as_not_verified():
    why = "SLURM_JOB_ID=4242: a Slurm job"
    hidden = dict(gpu(None, "0000:41:00.0", health="unknown", responding=None), vendor="nvidia", hidden_from_tool=why)
    hidden["problems"] = ["nvidia-smi does not list it: this process runs confined (%s), which shows nvidia-smi only "
                          "the GPUs given to it" % why]
    seen = dict(gpu(0, "0000:81:00.0"), vendor="nvidia")
    tool = {"answered": True, "outcome": "answered", "reason": None}
    problems, _text = evaluate(_preflight.FAMILY, "gpu_health", [seen, hidden], tool=tool, probe={"tools": {"nvidia": tool}})
    assert [(p["status"], p["message"], p["fix"]) for p in problems] == [
        ("unknown", "GPU 0000:41:00.0 state unknown: " + hidden["problems"][0], _gpu_checks.HIDDEN_FIX)]
    problems, text = evaluate(_preflight.FAMILY, "gpu_count", [seen, hidden], tool=tool,
                              probe={"tools": {"nvidia": tool}}, expected_gpu_count=2)
    assert problems == [] and text == "expected 2 GPUs, found 2 (1 not verified: hidden from the GPU tool in this job " \
                                      "or container, see gpu_health)"


def test_gpus_hidden_in_a_job_are_not_the_job_s_usable_gpus():
    hidden = [dict(gpu(None, "0000:%02x:00.0" % bus, health="unknown", responding=None), vendor="nvidia",
                   hidden_from_tool="SLURM_JOB_ID=4242: a Slurm job") for bus in (0x41, 0xa1)]
    broken = [dict(gpu(0, "0000:81:00.0", health="degraded"), vendor="nvidia")]
    problems, why = evaluate(_preflight.FAMILY, "gpu_available", broken + hidden, expected_gpu_count=3)
    assert [p["status"] for p in problems] == ["fail"]
    assert why == "3 GPU(s), none usable: 1 degraded, 2 hidden from the GPU tool (unknown)"
    ok = [dict(gpu(0, "0000:81:00.0"), vendor="nvidia")]
    assert evaluate(_preflight.FAMILY, "gpu_available", ok + hidden, expected_gpu_count=3)[1] == "1 usable GPU(s)"
