"""Tests of the gpu_kernel_log_info module (formerly amdgpu_kernel_log_info): run main() and read its JSON result."""

from __future__ import annotations

import json
import os
import pathlib
import time

import yaml

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpuops.preflight.plugins.module_utils import _gpu_facts, _kernel_log
from ansible_collections.gpuops.preflight.plugins.modules import gpu_kernel_log_info
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.sysfs_tree import (
    add_gpu, add_nvidia_gpu, add_pci_function, add_port)
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.test_gpus import FakeModule, rocm_doc

ROOT = pathlib.Path(__file__).resolve().parents[4]
FIXTURES = ROOT / "tests" / "fixtures"
DMESG = FIXTURES / "gpu" / "dmesg"
NVIDIA = FIXTURES / "training" / "kernel-nvidia"
T = 1767225600.0  # 2026-01-01T00:00:00Z


# The module joins a PCIe port's finding to the GPUs below the port from the PCI topology under sysfs_root: the tests
# read a simulated tree (sysfs_tree), never the test machine's /sys, unless they give one.
NO_SYSFS = "/nonexistent/gpuops-test-sysfs"


def run_module(capsys, args):
    args = dict({"sysfs_root": NO_SYSFS}, **args)
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        gpu_kernel_log_info.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def log_file(tmp_path, name, folder=DMESG):
    """A recorded log as it would be on disk: without the recorder's '# ' header."""
    text = (folder / name).read_text(encoding="utf-8")
    path = tmp_path / "kern.log"
    path.write_text("\n".join(line for line in text.split("\n") if not line.startswith("# ")), encoding="utf-8")
    return str(path)


@pytest.fixture
def tools(mocker):
    mocker.patch("ansible.module_utils.basic.AnsibleModule.get_bin_path",
                 side_effect=lambda name, *a, **k: "/testbin/%s" % name)
    return mocker.patch("ansible.module_utils.basic.AnsibleModule.run_command")


def test_file_source_on_a_recorded_log(capsys, tmp_path):
    path = log_file(tmp_path, "smu_0xffffffff_hanged_state_pcie_link_down_lkml-2025-11.txt")
    rc, result = run_module(capsys, {"source": "file", "path": path})
    assert rc == 0 and result["changed"] is False
    assert (result["hard_count"], result["soft_count"]) == (12, 1)  # pciehp 'Card not present' is soft
    assert result["source"] == "file" and result["cmd"] is None and result["note"] is None
    assert result["lines_scanned"] == 20 and result["since"] is None
    assert isinstance(result["elapsed_s"], float)
    first = result["findings"][0]
    assert first == {
        "category": "bus_lost", "severity": "hard", "gpu_health": "lost", "bdf": None, "pci_id": None, "vendor": None,
        "xid": None,
        "summary": "PCIe slot link down",
        "fix": first["fix"], "message": "pcieport 0000:00:01.1: pciehp: Slot(0): Link Down",
        "line": "[13600.900669] [    T140] pcieport 0000:00:01.1: pciehp: Slot(0): Link Down",
        "count": 1, "first_seen": "13600.900669", "last_seen": "13600.900669",
        "first_epoch": first["first_epoch"], "last_epoch": first["first_epoch"],
        "recovered": False, "hung": None, "caused_xids": [],
        "devices": [{"bdf": "0000:00:01.1", "driver": "pcieport"}]}  # the port the line is about
    assert result["unscanned"] is None
    hanged = [f for f in result["findings"] if "SMU is in hanged state" in f["message"]]
    assert [(f["category"], f["bdf"]) for f in hanged] == [("smu_no_response", "0000:03:00.0")]


def test_path_alone_reads_the_file_and_severity_filters(capsys, tmp_path):
    path = log_file(tmp_path, "ring_gfx_timeout_kiq_test_failed_rx6800_rocm5.2_rocm-arch-829.txt")
    rc, result = run_module(capsys, {"path": path, "severity": ["hard"]})
    assert rc == 0 and result["source"] == "file"
    assert (result["hard_count"], result["soft_count"]) == (3, 3)  # counts are before the filter
    assert {f["severity"] for f in result["findings"]} == {"hard"} and len(result["findings"]) == 3


def test_since_iso_filters_a_file(capsys, tmp_path):
    path = tmp_path / "journal.log"
    path.write_text(
        "2025-12-31T23:00:00.000000+0000 rig07 kernel: amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!\n"
        "2026-01-01T00:00:01.000000+0000 rig07 kernel: amdgpu 0000:0c:00.0: amdgpu: SMU is in hanged state, failed to send smu message!\n")
    rc, result = run_module(capsys, {"path": str(path), "since": "2026-01-01T00:00:00Z"})
    assert rc == 0 and result["since"] == T
    assert [(f["category"], f["bdf"]) for f in result["findings"]] == [("smu_no_response", "0000:0c:00.0")]
    assert (result["hard_count"], result["soft_count"]) == (1, 0)
    rc, result = run_module(capsys, {"path": str(path), "since": "1767225600"})
    assert result["since"] == T and len(result["findings"]) == 1


def test_bad_since_fails_naming_the_value(capsys, tmp_path):
    rc, result = run_module(capsys, {"path": str(tmp_path / "x"), "since": "yesterday"})
    assert rc == 1 and result["failed"] is True
    assert result["msg"].startswith("since: invalid time 'yesterday'")
    assert "ISO 8601" in result["msg"]


def test_file_source_without_path_fails(capsys):
    rc, result = run_module(capsys, {"source": "file"})
    assert rc == 1 and "path" in result["msg"]


def test_path_with_another_source_fails(capsys, tmp_path):
    rc, result = run_module(capsys, {"source": "journal", "path": str(tmp_path / "x")})
    assert rc == 1 and result["msg"] == "path is only read with source=file (or source=auto), not source=journal"


def test_timeout_must_be_positive(capsys):
    rc, result = run_module(capsys, {"timeout": 0})
    assert rc == 1 and result["msg"] == "timeout must be at least 1 second, got 0"


def test_bad_choice_fails(capsys):
    rc, result = run_module(capsys, {"source": "syslog"})
    assert rc == 1 and "syslog" in result["msg"]


def test_unreadable_file_fails_with_the_reason(capsys, tmp_path):
    missing = tmp_path / "missing.log"
    rc, result = run_module(capsys, {"path": str(missing)})
    assert rc == 1
    assert result["msg"] == "could not read the kernel log: cannot read %s: No such file or directory" % missing
    assert result["timed_out"] is False and result["source"] == "file"


def test_journal_source(capsys, tools):
    tools.return_value = (0, "2026-01-01T00:00:05.000000+0000 rig07 kernel: amdgpu 0000:0b:00.0: amdgpu: "
                             "SMU: response:0xFFFFFFFF for index:9 param:0x00000000 message:GetMetricsTable?\n", "")
    rc, result = run_module(capsys, {"source": "journal", "since": "1767225600", "timeout": 9})
    assert rc == 0
    cmd = tools.call_args[0][0]
    assert cmd == ["/testbin/timeout", "-k", "2", "9", "/testbin/journalctl", "-k", "-b", "0", "-o",
                   "short-iso-precise", "--no-pager", "-q", "--since", "@1767225600"]
    assert result["cmd"] == cmd[4:] and result["source"] == "journal"
    assert [(f["category"], f["bdf"], f["first_seen"]) for f in result["findings"]] == [
        ("smu_no_response", "0000:0b:00.0", "2026-01-01T00:00:05.000000+0000")]


def test_auto_falls_back_to_dmesg(capsys, tools):
    tools.side_effect = [(0, "", ""), (0, "2026-01-01T00:00:05,000000+00:00 amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!\n", "")]
    rc, result = run_module(capsys, {})
    assert rc == 0 and result["source"] == "dmesg"
    assert [c[0][0][4] for c in tools.call_args_list] == ["/testbin/journalctl", "/testbin/dmesg"]
    assert (result["hard_count"], result["soft_count"]) == (0, 1)
    assert "journalctl returned no kernel messages" in result["note"]


def test_log_command_timed_out_fails(capsys, tools):
    def hang(cmd, **kwargs):
        time.sleep(0.95)
        return 124, "", ""
    tools.side_effect = hang
    rc, result = run_module(capsys, {"source": "dmesg", "timeout": 1})
    assert rc == 1 and result["timed_out"] is True
    assert result["msg"] == "could not read the kernel log: dmesg timed out after 1s and was killed"


def test_check_mode_runs(capsys, tmp_path):
    path = log_file(tmp_path, "vm_l2_protection_fault_mmhub_ROCm-amdgpu-150.txt")
    rc, result = run_module(capsys, {"path": path, "_ansible_check_mode": True})
    assert rc == 0 and result["changed"] is False
    assert [(f["category"], f["count"]) for f in result["findings"]] == [("page_fault", 2)]


def test_nvidia_log_with_partial_addresses_completed_from_sysfs(capsys, tmp_path):
    path = log_file(tmp_path, "akash-support-244_multi_gpu_535.183.01_dmesg-T_xid43_xid31_xid94.txt", NVIDIA)
    devices = tmp_path / "sys" / "bus" / "pci" / "devices"
    for name, cls in (("0000:00:05.0", "0x030200"), ("0000:00:07.0", "0x030200"), ("0000:00:07.1", "0x040300")):
        (devices / name).mkdir(parents=True)
        (devices / name / "class").write_text(cls + "\n")
    rc, result = run_module(capsys, {"path": path, "sysfs_root": str(tmp_path / "sys")})
    assert rc == 0 and (result["hard_count"], result["soft_count"]) == (1, 2)
    assert [(f["xid"], f["bdf"], f["severity"], f["count"]) for f in result["findings"]] == [
        (43, "0000:00:05.0", "soft", 2),      # completed: one display function
        (31, "0000:00:07.0", "soft", 1),      # the audio function 07:00.1 is not a GPU
        (94, "0000:00:08", "hard", 1),        # not in sysfs: left as logged; contained ECC: repaired only by a reset
    ]
    assert all(f["vendor"] == "nvidia" and f["first_epoch"] for f in result["findings"])


def test_xid_less_fallen_off_the_bus_names_the_gpu_from_its_message(capsys, tmp_path):
    # NVIDIA/NVSentinel#155: one NVRM message over three dmesg lines; the GPU is on the first, the words on the third
    path = log_file(tmp_path, "NVSentinel-155_570.158.01_dmesg_fallen_off_bus_multiline_no_xid.txt", NVIDIA)
    rc, result = run_module(capsys, {"path": path})
    assert rc == 0 and (result["hard_count"], result["soft_count"]) == (2, 0)
    assert [(f["category"], f["bdf"], f["gpu_health"], f["vendor"]) for f in result["findings"]] == [
        ("bus_lost", "0000:b3:00.0", "lost", "nvidia"), ("init_failed", None, None, "nvidia")]
    assert result["findings"][0]["message"] == "NVRM: fallen off the bus and is not responding to commands."


@pytest.mark.parametrize("vendor,expected", [("auto", 4), ("nvidia", 4), ("amd", 0)])
def test_vendor_option(capsys, tmp_path, vendor, expected):
    path = log_file(tmp_path, "open-gpu-kernel-modules-1150_590.48.01_journal_xid45_after_nvlink_xid149_xid145.txt", NVIDIA)
    rc, result = run_module(capsys, {"path": path, "vendor": vendor})
    assert rc == 0 and len(result["findings"]) == expected
    if expected:
        assert {(f["category"], f["xid"]) for f in result["findings"]} == {("nvlink_error", 149), ("nvlink_error", 145)}
        assert all(f["caused_xids"] == [45] for f in result["findings"])


def test_recovered_reset_is_one_soft_finding(capsys, tmp_path):
    path = log_file(tmp_path, "ring_comp_timeout_ring_reset_device_wedged_rocm7.2_legacy-rocm-build-5997.txt")
    rc, result = run_module(capsys, {"path": path, "severity": ["soft"]})
    recovered = [f for f in result["findings"] if f["recovered"]]
    assert [(f["category"], f["bdf"], f["hung"]) for f in recovered] == [
        ("gpu_reset", "0000:03:00.0", "ring comp_1.1.0 timeout")]
    assert result["hard_count"] == 0


@pytest.mark.timeout(30)
def test_fifo_path_fails_at_once(capsys, tmp_path):
    fifo = tmp_path / "kern.log"
    os.mkfifo(str(fifo))
    rc, result = run_module(capsys, {"path": str(fifo)})
    assert rc == 1
    assert result["msg"] == "could not read the kernel log: cannot read %s: it is a fifo, not a regular file" % fifo


def test_non_utf8_bytes_never_reach_the_result(capsys, tmp_path):
    path = tmp_path / "kern.log"
    path.write_bytes(b"[ 1.0] amdgpu 0000:03:00.0: amdgpu: SMU is in hanged state \xff\xfe\x80!\n")
    rc, result = run_module(capsys, {"path": str(path)})
    assert rc == 0 and "\ufffd" in result["findings"][0]["message"]


def test_unscanned_part_is_returned_and_warned(capsys, tmp_path, mocker):
    path = tmp_path / "kern.log"
    path.write_text("[ 1.0] usb 1-4: new device\n" * 1000)
    readings = iter(range(0, 100000, 10))   # every reading of the monotonic clock: 10 s later
    real = _kernel_log.scan_kernel_log
    mocker.patch.object(_kernel_log, "scan_kernel_log",
                        side_effect=lambda *a, **k: real(*a, clock=lambda: float(next(readings)), **k))
    rc, result = run_module(capsys, {"path": str(path), "timeout": 5})
    assert rc == 0 and "not scanned" in result["unscanned"]["description"]
    assert result["unscanned"]["bytes"] == path.stat().st_size
    assert result["unscanned"]["description"] == "kern.log: 26.4 KiB of 26.4 KiB not scanned (the time ran out)"
    assert result["unscanned"]["description"] in json.dumps(result["warnings"])


def test_old_name_is_redirected_here():
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    route = runtime["plugin_routing"]["modules"]["amdgpu_kernel_log_info"]
    assert route["redirect"] == "gpuops.preflight.gpu_kernel_log_info"
    assert route["deprecation"]["removal_version"] == "3.0.0"  # deprecated first, removed in the next major


def test_documentation_matches_the_argument_spec():
    doc = yaml.safe_load(gpu_kernel_log_info.DOCUMENTATION)
    assert doc["module"] == "gpu_kernel_log_info" and doc["version_added"] == "2.0.0"
    assert set(doc["options"]) == {"source", "path", "since", "timeout", "severity", "vendor", "sysfs_root"}
    returned = yaml.safe_load(gpu_kernel_log_info.RETURN)
    assert set(returned["findings"]["contains"]) == {
        "category", "severity", "gpu_health", "bdf", "pci_id", "vendor", "xid", "summary", "fix", "message", "line", "count",
        "first_seen", "last_seen", "first_epoch", "last_epoch", "recovered", "hung", "caused_xids", "devices",
        "attributed", "not_gpu"}


# A PCIe port's line names the port, not the GPU: the module joins it to the GPU below the port as the GPU probe of
# node_preflight and the GPU facts modules does (_gpus.join_findings, with the PCI topology under sysfs_root).
# The log is LKML's Navi 2x laptop (tests/fixtures/gpu/SOURCES.md): root port 00:01.1, the card's own switch
# (upstream 01:00.0, downstream 02:00.0), the GPU at 03:00.0.
LKML = "smu_0xffffffff_hanged_state_pcie_link_down_lkml-2025-11.txt"
LKML_GPU = "0000:03:00.0"


def laptop_sysfs(tmp_path):
    root = str(tmp_path / "sys")
    switch_up = add_port(root, "0000:01:00.0", parent=add_port(root, "0000:00:01.1"), vendor="0x1002", device="0x1478")
    switch_down = add_port(root, "0000:02:00.0", parent=switch_up, vendor="0x1002", device="0x1479")
    add_gpu(root, LKML_GPU, card=1, device="0x73df", parent=switch_down)
    return root


def port_findings(result):
    return [(f["category"], f["severity"], f["bdf"], f.get("attributed"), f.get("not_gpu"))
            for f in result["findings"] if f["vendor"] is None]


def test_a_ports_link_down_comes_out_on_the_gpu_below_the_port(capsys, tmp_path):
    path = log_file(tmp_path, LKML)
    rc, result = run_module(capsys, {"path": path, "sysfs_root": laptop_sysfs(tmp_path)})
    assert rc == 0
    assert port_findings(result) == [
        ("bus_lost", "hard", LKML_GPU, True, None),   # pcieport 0000:00:01.1: pciehp: Slot(0): Link Down
        ("bus_lost", "soft", LKML_GPU, True, None),   # ... Card not present
        ("bus_lost", "hard", LKML_GPU, True, None),   # pcieport 0000:02:00.0: ... device inaccessible (the switch)
        ("bus_lost", "hard", LKML_GPU, True, None),   # pcieport 0000:01:00.0: ... device inaccessible
    ]
    link_down = result["findings"][0]
    assert link_down["message"] == "pcieport 0000:00:01.1: pciehp: Slot(0): Link Down"
    assert (link_down["gpu_health"], link_down["devices"]) == ("lost", [{"bdf": "0000:00:01.1", "driver": "pcieport"}])
    assert (result["hard_count"], result["soft_count"]) == (12, 1)
    # the one line left the host's names no GPU: [drm:amdgpu_device_ip_suspend_phase2 [amdgpu]] *ERROR* SMC failed ...
    assert [f["category"] for f in result["findings"] if f["bdf"] is None] == ["smu_message_failed"]


def test_the_module_and_the_gpu_probe_agree_on_the_same_log(capsys, tmp_path):
    """The same log and tree: the module's findings are the ones the GPU probe judges the GPU by."""
    path, root = log_file(tmp_path, LKML), laptop_sysfs(tmp_path)
    rc, result = run_module(capsys, {"path": path, "sysfs_root": root})
    findings = _kernel_log.scan_kernel_log(FakeModule(), "file", path, None, 15)[1]
    probe = _gpu_facts.probe(FakeModule(answer=(0, rocm_doc((0, 3)), "")), findings, sysfs_root=root)
    [gpu] = probe["gpus"]
    assert gpu["health"] == "lost" and gpu["bdf"] == LKML_GPU
    assert "PCIe slot link down" in gpu["problems"][-1] and "PCIe bridge inaccessible (x2)" in gpu["problems"][-1]
    assert {f["bdf"] for f in result["findings"] if f["vendor"] is None} == {gpu["bdf"]}


def test_a_ports_finding_with_no_gpu_below_it_stays_the_hosts(capsys, tmp_path):
    """The GPU sits behind another root port; 00:01.1's slot is empty now (what sat there is unknown): the host's."""
    path = log_file(tmp_path, LKML)
    root = str(tmp_path / "sys")
    add_port(root, "0000:00:01.1")
    add_gpu(root, LKML_GPU, card=1, parent=add_port(root, "0000:00:08.1"))
    rc, result = run_module(capsys, {"path": path, "sysfs_root": root})
    assert rc == 0
    assert port_findings(result)[:2] == [("bus_lost", "hard", None, None, None), ("bus_lost", "soft", None, None, None)]
    assert result["hard_count"] == 12


def test_a_ports_finding_about_a_drive_is_a_soft_host_warning(capsys, tmp_path):
    """The port above an NVMe drive, the GPU behind another port: the Link Down is no GPU's (soft, not_gpu)."""
    path = tmp_path / "kern.log"
    path.write_text("[ 9.0] pcieport 0000:00:01.1: pciehp: Slot(0): Link Down\n")
    root = str(tmp_path / "sys")
    add_pci_function(root, "0000:05:00.0", "0x144d", "0xa808", "0x010802", driver="nvme",
                     parent=add_port(root, "0000:00:01.1"))
    add_gpu(root, LKML_GPU, card=1, parent=add_port(root, "0000:00:08.1"))
    rc, result = run_module(capsys, {"path": str(path), "sysfs_root": root})
    assert port_findings(result) == [("bus_lost", "soft", None, None, True)]
    assert result["findings"][0]["gpu_health"] is None
    assert (result["hard_count"], result["soft_count"]) == (0, 1)


def test_without_a_readable_bus_a_ports_finding_stays_the_hosts(capsys, tmp_path):
    path = log_file(tmp_path, LKML)
    rc, result = run_module(capsys, {"path": path, "sysfs_root": str(tmp_path / "nowhere")})
    assert port_findings(result)[0] == ("bus_lost", "hard", None, None, None)


def test_the_module_lists_the_pci_bus_once(capsys, tmp_path, monkeypatch):
    """An NVIDIA partial address to complete and a port's finding to join: one listing of the bus for both."""
    path = tmp_path / "kern.log"
    path.write_text("[ 9.0] NVRM: Xid (PCI:0000:03:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.\n"
                    "[ 9.1] pcieport 0000:00:01.1: pciehp: Slot(0): Link Down\n")
    root = str(tmp_path / "sys")
    add_nvidia_gpu(root, LKML_GPU, parent=add_port(root, "0000:00:01.1"))
    bus = os.path.join(root, "bus", "pci", "devices")
    calls = []
    real = os.listdir

    def counting(folder="."):
        if os.fspath(folder) == bus:
            calls.append(folder)
        return real(folder)
    monkeypatch.setattr(os, "listdir", counting)
    rc, result = run_module(capsys, {"path": str(path), "sysfs_root": root})
    assert rc == 0 and [(f["category"], f["bdf"]) for f in result["findings"]] == [
        ("bus_lost", LKML_GPU), ("bus_lost", LKML_GPU)]
    assert len(calls) == 1
