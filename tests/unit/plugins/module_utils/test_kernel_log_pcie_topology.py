"""PCIe ports' kernel-log lines judged for the GPU below the port (pcietopo), never for a device that is not a GPU.

A root or downstream port's AER, DPC, "Link Down" and "device recovery failed" lines name the port (or the device
whose error it reports), not the GPU. The GPU probe reads the PCI topology from sysfs once (the ports in the path of
each /sys/bus/pci/devices link) and gives such a finding to every GPU at or below the devices it names; a port whose
devices are known to hold no GPU (a SATA, USB or Thunderbolt controller) gives at most a soft host warning. The log
lines are real ones (tests/fixtures/gpu/SOURCES.md) or the kernel's own wording (drivers/pci/pcie/err.c, aer.c,
dpc.c, drivers/pci/hotplug/pciehp_ctrl.c); the trees are simulated (sysfs_tree).
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _gpu_facts, _gpus, _preflight, _sysfs
from ansible_collections.gpuops.preflight.plugins.module_utils import _kernel_log as kl
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils import test_gpus_vendors as nv
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.fixtures import path as fixture_path
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.sysfs_tree import (
    add_gpu, add_nvidia_gpu, add_pci_function, add_port)
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.test_gpu_checks import evaluate
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.test_gpus import FakeModule, rocm_doc

GPU = "0000:01:00.0"
DMESG = fixture_path("dmesg")


def real_log(name):
    with open(os.path.join(DMESG, name), encoding="utf-8") as handle:
        return handle.read().splitlines()


@pytest.fixture
def amd_rig(tmp_path):
    """An AMD GPU behind root port 00:01.1; a SATA controller behind 00:1c.0; an empty hot-plug slot at 00:1d.0."""
    root = str(tmp_path / "sys")
    add_gpu(root, GPU, card=1, parent=add_port(root, "0000:00:01.1"))
    add_pci_function(root, "0000:03:00.0", "0x1b21", "0x1164", "0x010601", driver="ahci",
                     parent=add_port(root, "0000:00:1c.0"))
    add_port(root, "0000:00:1d.0")
    return root


def amd_probe(root, lines, buses=(1,)):
    findings = kl.scan(lines, boot_time=0.0)
    module = FakeModule(answer=(0, rocm_doc(*enumerate(buses)), ""))
    return _gpu_facts.probe(module, findings, sysfs_root=root)


def test_the_topology_is_the_ports_above_each_function(amd_rig):
    topology = _sysfs.pci_topology(amd_rig)
    assert topology[GPU] == {"upstream": ["0000:00:01.1"], "bridge": False}
    assert topology["0000:00:01.1"] == {"upstream": [], "bridge": True}
    assert topology["0000:03:00.0"] == {"upstream": ["0000:00:1c.0"], "bridge": False}
    assert _sysfs.pci_topology(os.path.join(amd_rig, "missing")) is None


# The port's own lines for its link going down, in each wording: the GPU below is lost.
LINK_DOWN = [
    "[ 9.0] pcieport 0000:00:01.1: pciehp: Slot(0): Link Down",
    "[ 9.0] pciehp 0000:00:01.1:pcie004: Slot(0): Link Down",
    "[ 9.0] pcieport 0000:00:01.1: AER: device recovery failed",
    "[ 9.0] pcieport 0000:00:01.1:    [ 5] Surprise Down Error    (First)",
    "[ 9.0] pcieport 0000:00:01.1: Unable to change power state from D0 to D3hot, device inaccessible",
]


@pytest.mark.parametrize("line", LINK_DOWN)
def test_a_link_lost_on_the_port_above_a_gpu_makes_that_gpu_lost(amd_rig, line):
    result = amd_probe(amd_rig, [line])
    [gpu] = result["gpus"]
    assert gpu["health"] == "lost"
    assert "kernel log" in gpu["problems"][-1]


def test_a_dpc_containment_on_the_port_above_a_gpu_is_that_gpus_hard_finding(amd_rig):
    findings = kl.scan(["[ 9.0] pcieport 0000:00:01.1: DPC: containment event, status:0x1f01 source:0x0000"],
                       boot_time=0.0)
    joined = _gpus.join_findings(findings, [{"bdf": GPU}], _sysfs.pci_topology(amd_rig))
    assert [(f["category"], f["severity"], f["bdf"], f.get("attributed")) for f in joined] == [
        ("pcie_error", kl.HARD, GPU, True)]


def test_an_aer_error_whose_source_is_the_gpu_is_the_gpus_and_not_its_neighbours(amd_rig):
    lines = ["[ 4.9] pcieport 0000:00:01.1: AER: Uncorrected (Fatal) error received: 0000:01:00.0",
             "[ 5.0] pcieport 0000:00:1c.0: AER: Uncorrected (Fatal) error received: 0000:03:00.0"]
    joined = _gpus.join_findings(kl.scan(lines, boot_time=0.0), [{"bdf": GPU}], _sysfs.pci_topology(amd_rig))
    assert [(f["severity"], f["bdf"], bool(f.get("not_gpu"))) for f in joined] == [
        (kl.HARD, GPU, False), (kl.SOFT, None, True)]


def test_a_failed_recovery_for_a_sata_controller_is_a_soft_host_warning_never_a_lost_gpu(tmp_path):
    """geerlingguy/raspberry-pi-pcie-devices#600: the root port 00:00.0 gives up on the ahci controller below it."""
    root = str(tmp_path / "sys")
    add_pci_function(root, "0000:01:00.0", "0x1b21", "0x1064", "0x010601", driver="ahci",
                     parent=add_port(root, "0000:00:00.0", vendor="0x14e4", device="0x2712"))
    add_gpu(root, "0000:05:00.0", card=1, parent=add_port(root, "0000:00:02.0"))
    result = amd_probe(root, real_log("aer_recovery_failed_ahci_sata_not_a_gpu_pi5_raspberry-pi-pcie-devices-600.txt"),
                       buses=(5,))
    assert [g["health"] for g in result["gpus"]] == ["ok"]
    findings = kl.scan(real_log("aer_recovery_failed_ahci_sata_not_a_gpu_pi5_raspberry-pi-pcie-devices-600.txt"),
                       boot_time=0.0)
    assert findings[0]["devices"] == [{"bdf": "0000:00:00.0", "driver": "pcieport"},
                                      {"bdf": "0000:01:00.0", "driver": "ahci"}]
    joined = _gpus.join_findings(findings, result["gpus"], _sysfs.pci_topology(root))
    assert [(f["category"], f["severity"], f["gpu_health"], f["bdf"], f.get("not_gpu")) for f in joined] == [
        ("bus_lost", kl.SOFT, None, None, True), ("pcie_error", kl.SOFT, None, None, True),
        ("pcie_error", kl.SOFT, None, None, True)]
    problems, _text = evaluate(_preflight.FAMILY, "kernel_log", [], joined[:1])
    assert [(p["status"], p["message"].split(":")[0]) for p in problems] == [
        ("warn", "PCI device pcieport 0000")]
    assert "ahci 0000:01:00.0 (no GPU at or below it)" in problems[0]["message"]


@pytest.fixture
def nvidia_rig(tmp_path):
    """The recorded A5000s at 81:00.0 and c1:00.0 behind their root ports; a Thunderbolt controller and a USB
    controller behind root port 80:1b.4 (MS-02 Ultra's), through the Thunderbolt bridges."""
    root = str(tmp_path / "sys")
    add_nvidia_gpu(root, "0000:81:00.0", parent=add_port(root, "0000:80:01.1"))
    add_nvidia_gpu(root, "0000:c1:00.0", parent=add_port(root, "0000:c0:01.1"))
    tb_port = add_port(root, "0000:80:1b.4", vendor="0x8086", device="0x7f44")
    upstream = add_port(root, "0000:83:00.0", parent=tb_port, vendor="0x8086", device="0x5786")
    add_pci_function(root, "0000:84:00.0", "0x8086", "0x5782", "0x0c0340", driver="thunderbolt",
                     parent=add_port(root, "0000:83:01.0", parent=upstream))
    add_pci_function(root, "0000:97:00.0", "0x8086", "0x5787", "0x0c0330", driver="xhci_hcd",
                     parent=add_port(root, "0000:83:02.0", parent=upstream))
    add_port(root, "0000:83:03.0", parent=upstream)  # a Thunderbolt port with nothing plugged in
    return root


def nvidia_probe(root, lines):
    findings = kl.scan(lines, boot_time=0.0)
    return nv.by_bdf(_gpu_facts.probe(nv.FakeModule({"nvidia-smi": nv.xml()}), findings, sysfs_root=root))


def test_nvidia_a_link_down_above_one_gpu_makes_that_one_lost(nvidia_rig):
    result = nvidia_probe(nvidia_rig, ["[ 9.0] pcieport 0000:c0:01.1: pciehp: Slot(2): Link Down"])
    assert (result["0000:81:00.0"]["health"], result["0000:c1:00.0"]["health"]) == ("ok", "lost")


def test_nvidia_a_failed_recovery_for_thunderbolt_and_usb_controllers_is_no_gpus(nvidia_rig):
    """minisforum-docs/MS-02-Ultra#10: the record names the thunderbolt and xhci_hcd devices."""
    lines = real_log("aer_recovery_failed_thunderbolt_xhci_not_a_gpu_journal_MS-02-Ultra-10.txt")
    result = nvidia_probe(nvidia_rig, lines)
    assert [g["health"] for g in result.values()] == ["ok", "ok"]
    findings = kl.scan(lines, boot_time=0.0)
    assert [d["driver"] for d in findings[0]["devices"]] == ["pcieport", "xhci_hcd", "thunderbolt"]
    joined = _gpus.join_findings(findings, list(result.values()), _sysfs.pci_topology(nvidia_rig))
    assert [(f["category"], f["severity"], f["gpu_health"], f["bdf"]) for f in joined][0] == (
        "bus_lost", kl.SOFT, None, None)


def test_a_failed_recovery_whose_record_names_a_gpus_audio_function_is_the_gpus(nvidia_rig):
    """The GPU's card shares the link: its HD-audio function failing is the GPU's too (ROCm#858's wording)."""
    lines = ["[ 3181.632296] snd_hda_intel 0000:81:00.1: device has no AER-aware driver",
             "[ 3182.673404] pcieport 0000:80:01.1: AER: Device recovery failed"]
    result = nvidia_probe(nvidia_rig, lines)
    assert (result["0000:81:00.0"]["health"], result["0000:c1:00.0"]["health"]) == ("lost", "ok")


def test_a_gpu_behind_a_switch_is_below_the_root_port(tmp_path):
    """Radeon VII: root port 00:03.1, the card's own switch (08:00.0, 09:00.0), the GPU at 0a:00.0 (ROCm#858)."""
    root = str(tmp_path / "sys")
    switch = add_port(root, "0000:09:00.0", parent=add_port(root, "0000:08:00.0", parent=add_port(root, "0000:00:03.1")))
    add_gpu(root, "0000:0a:00.0", card=1, parent=switch)
    lines = [line for line in real_log("aer_fatal_radeon_vii_no_aer_driver_smu_all_ones_syslog_ROCm-858.txt")
             if "pcieport" in line]  # the port's lines alone: the GPU is found by the topology
    [gpu] = amd_probe(root, lines, buses=(10,))["gpus"]
    assert gpu["health"] == "lost"


def test_an_empty_slot_or_an_unread_topology_leaves_the_finding_as_it_was(amd_rig):
    """What sat in a slot now empty (pciehp removes what was below) is unknown: it may have been a GPU."""
    findings = kl.scan(["[ 9.0] pcieport 0000:00:1d.0: pciehp: Slot(3): Link Down"], boot_time=0.0)
    for topology in (_sysfs.pci_topology(amd_rig), None):
        [same] = _gpus.join_findings(findings, [{"bdf": GPU}], topology)
        assert (same["severity"], same["gpu_health"], same["bdf"], same.get("not_gpu")) == (kl.HARD, "lost", None, None)


def test_a_gpu_not_placed_in_the_topology_keeps_a_port_finding_hard(amd_rig):
    """A GPU the tool lists but sysfs does not show may sit below any port: nothing is known to hold no GPU."""
    findings = kl.scan(["[ 9.0] pcieport 0000:00:1c.0: AER: device recovery failed"], boot_time=0.0)
    for known in ({"bdf": "0000:41:00.0"}, {"bdf": None, "index": 1}):  # not in sysfs; listed without an address
        [kept] = _gpus.join_findings(findings, [{"bdf": GPU}, known], _sysfs.pci_topology(amd_rig))
        assert (kept["severity"], kept["bdf"], kept.get("not_gpu")) == (kl.HARD, None, None)
    [soft] = _gpus.join_findings(findings, [{"bdf": GPU}], _sysfs.pci_topology(amd_rig))
    assert (soft["severity"], soft["gpu_health"], soft.get("not_gpu")) == (kl.SOFT, None, True)


def test_without_a_topology_a_device_that_is_the_gpu_is_still_the_gpus():
    findings = kl.scan(["[ 4.9] pcieport 0000:00:01.1: AER: Corrected error message received from 0000:01:00.0"],
                       boot_time=0.0)
    [joined] = _gpus.join_findings(findings, [{"bdf": GPU}], None)
    assert (joined["bdf"], joined["severity"]) == (GPU, kl.SOFT)


# The boot's enumeration of a GPU behind root port 00:01.1, then the slot's link going down: pciehp removes the GPU
# from sysfs. The enumeration wording is the kernel's (drivers/pci/probe.c), as real logs print it: "pci 0000:00:03.1:
# [1022:1483] type 01 class 0x060400" (hamadmarri/TT-CPU-Scheduler#23), 6.x "... class 0x060400 PCIe Switch Downstream
# Port" and "pci 0000:06:07.0: PCI bridge to [bus 0e]" (ilya-zlobintsev/LACT#1180).
ENUMERATED_THEN_LINK_DOWN = [
    "[    0.512000] pci 0000:00:01.1: [1022:1483] type 01 class 0x060400 PCIe Root Port",
    "[    0.513000] pci 0000:01:00.0: [1002:73bf] type 00 class 0x030000 PCIe Legacy Endpoint",
    "[    0.513100] pci 0000:01:00.1: [1002:ab28] type 00 class 0x040300 PCIe Legacy Endpoint",
    "[    0.514000] pci 0000:03:00.0: [1b21:1164] type 00 class 0x010601 PCIe Legacy Endpoint",
    "[    0.700000] pci 0000:00:01.1: PCI bridge to [bus 01]",
    "[    0.700001] pci 0000:00:1c.0: PCI bridge to [bus 03-04]",
    "[13600.900669] pcieport 0000:00:01.1: pciehp: Slot(0): Link Down",
]


def test_a_gpu_removed_behind_a_port_whose_link_went_down_is_a_lost_gpu(tmp_path):
    """sysfs no longer shows the GPU (pciehp removed it), the tool no longer lists it: the log's enumeration does."""
    root = str(tmp_path / "sys")
    add_port(root, "0000:00:01.1")  # the slot, empty now
    add_gpu(root, "0000:05:00.0", card=1, parent=add_port(root, "0000:00:02.1"))
    result = amd_probe(root, ENUMERATED_THEN_LINK_DOWN, buses=(5,))
    assert [(g["bdf"], g["health"]) for g in result["gpus"]] == [("0000:05:00.0", "ok"), ("0000:01:00.0", "lost")]


def test_an_enumerated_sata_controller_below_an_emptied_slot_is_no_gpu(amd_rig):
    """Only GPU-class functions of a GPU vendor count: the SATA controller enumerated below 00:1c.0 is not one."""
    lines = ENUMERATED_THEN_LINK_DOWN[:-1] + ["[13600.9] pcieport 0000:00:1c.0: pciehp: Slot(3): Link Down"]
    [finding] = kl.scan(lines, boot_time=0.0)
    assert [(d["bdf"], d.get("gpu")) for d in finding["devices"]] == [("0000:00:1c.0", None), ("0000:03:00.0", None)]
    [joined] = _gpus.join_findings([finding], [{"bdf": GPU}], _sysfs.pci_topology(amd_rig))
    assert (joined["severity"], joined["bdf"], joined.get("not_gpu")) == (kl.SOFT, None, True)


def test_a_link_down_on_a_slot_whose_nvme_drive_was_pulled_is_no_gpus(amd_rig):
    """The slot 00:1d.0 is empty now, but the log enumerated an NVMe drive (class 0x010802) and nothing else below it."""
    lines = ["[    0.600000] pci 0000:05:00.0: [144d:a808] type 00 class 0x010802 PCIe Endpoint",
             "[    0.700000] pci 0000:00:1d.0: PCI bridge to [bus 05]",
             "[ 9.0] pcieport 0000:00:1d.0: pciehp: Slot(3): Link Down",
             "[ 9.0] pcieport 0000:00:1d.0: pciehp: Slot(3): Card not present"]
    joined = _gpus.join_findings(kl.scan(lines, boot_time=0.0), [{"bdf": GPU}], _sysfs.pci_topology(amd_rig))
    assert [(f["severity"], f["gpu_health"], f["bdf"], f.get("not_gpu")) for f in joined] == [
        (kl.SOFT, None, None, True), (kl.SOFT, None, None, True)]
    assert [(d["bdf"], d.get("gpu")) for d in joined[0]["devices"]] == [("0000:00:1d.0", None), ("0000:05:00.0", None)]


def test_a_device_both_named_and_enumerated_keeps_what_each_said(amd_rig):
    """The record names the NVMe drive the recovery gave up on; the enumeration says it sat below 00:1d.0 and was no
    GPU: gone from sysfs since, it is still known to be no GPU's."""
    lines = ["[    0.600000] pci 0000:05:00.0: [144d:a808] type 00 class 0x010802 PCIe Endpoint",
             "[    0.700000] pci 0000:00:1d.0: PCI bridge to [bus 05]",
             "[ 9.0] nvme 0000:05:00.0: AER: can't recover (no error_detected callback)",
             "[ 9.0] pcieport 0000:00:1d.0: AER: device recovery failed"]
    [finding] = kl.scan(lines, boot_time=0.0)
    assert finding["devices"][1] == {"bdf": "0000:05:00.0", "driver": "nvme", "gpu": None, "below": "0000:00:1d.0"}
    [joined] = _gpus.join_findings([finding], [{"bdf": GPU}], _sysfs.pci_topology(amd_rig))
    assert (joined["severity"], joined["gpu_health"], joined.get("not_gpu")) == (kl.SOFT, None, True)


# One probe lists /sys/bus/pci/devices once: the GPU discovery and the topology read share that listing
# ("pci_topology lists bus twice per probe").
@pytest.fixture
def bus_listings(monkeypatch):
    """The folders os.listdir was asked for that end in bus/pci/devices, in order."""
    calls = []
    real = os.listdir

    def counting(path="."):
        if os.fspath(path).rstrip(os.sep).endswith(os.path.join("bus", "pci", "devices")):
            calls.append(os.fspath(path))
        return real(path)
    monkeypatch.setattr(os, "listdir", counting)
    return calls


def test_one_amd_probe_lists_the_pci_bus_once(amd_rig, bus_listings):
    [gpu] = amd_probe(amd_rig, [LINK_DOWN[0]])["gpus"]
    assert gpu["health"] == "lost"  # the topology was read: the port's Link Down is the GPU's
    assert bus_listings == [os.path.join(amd_rig, "bus", "pci", "devices")]


def test_one_nvidia_probe_lists_the_pci_bus_once(nvidia_rig, bus_listings):
    result = nvidia_probe(nvidia_rig, ["[ 9.0] pcieport 0000:c0:01.1: pciehp: Slot(2): Link Down"])
    assert result["0000:c1:00.0"]["health"] == "lost"
    assert len(bus_listings) == 1


def test_a_bus_listed_once_and_unreadable_is_unread_for_both(tmp_path):
    """The listing's failure reaches both readers: no GPU found with its reason, and no topology."""
    listing = _sysfs.list_pci_bus(str(tmp_path / "nowhere"))
    assert listing[0] is None and "ENOENT" in listing[1]
    found, unread = _sysfs.enumerate_gpus_read(str(tmp_path / "nowhere"), listing=listing)
    assert found == [] and unread == listing[1]
    assert _sysfs.pci_topology(str(tmp_path / "nowhere"), listing) is None
