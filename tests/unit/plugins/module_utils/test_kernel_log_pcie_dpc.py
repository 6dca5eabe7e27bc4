"""PCIe bridge lines the PCIe table missed (amdkernel): Downstream Port Containment and a failed AER recovery.

The lines are as the kernel prints them, quoted in linux-pci mails and commit messages (drivers/pci/pcie/dpc.c,
drivers/pci/pcie/err.c): with DPC the port prints no "AER: ... error received" line, only its containment event.
"""

from __future__ import annotations

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _kernel_log as kl

DPC_LINES = [
    # kernels 5.x-6.x
    "[  216.640438] pcieport 0000:a9:10.0: DPC: containment event, status:0x2009 source:0x0000",
    # 6.x, the trigger reason on the same line
    "[    9.100000] pci 0000:00:01.0: DPC: containment event, status:0x000d, ERR_FATAL received from 0000:02:00.0",
    # 4.x, before the "DPC: " prefix
    "[  370.080532] pcieport 0000:00:1c.0: DPC containment event, status:0x1f05 source:0x0200",
]


@pytest.mark.parametrize("line", DPC_LINES)
def test_a_dpc_containment_event_is_a_hard_pcie_error_of_the_port(line):
    findings = kl.scan([line], boot_time=0.0)
    assert [(f["category"], f["severity"], f["bdf"], f["vendor"]) for f in findings] == [
        ("pcie_error", kl.HARD, None, None)]


def test_one_dpc_event_is_one_finding():
    """The lines after the containment event describe the same event (and the port's own PCIe Bus Error line)."""
    lines = ["[  10.0] pcieport 0000:00:01.4: DPC: containment event, status:0x1f01 source:0x0000",
             "[  10.0] pcieport 0000:00:01.4: DPC: unmasked uncorrectable error detected",
             "[  10.0] pcieport 0000:00:01.4: PCIe Bus Error: severity=Uncorrected (Fatal), type=Transaction Layer, "
             "(Receiver ID)",
             "[  10.0] pcieport 0000:00:01.4:   device [1022:14ab] error status/mask=00000020/04004000",
             "[  10.0] pcieport 0000:00:01.4:    [ 5] SDES (First)"]
    assert [(f["category"], f["count"]) for f in kl.scan(lines, boot_time=0.0)] == [("pcie_error", 1)]


@pytest.mark.parametrize("line", ["[ 1.0] pcieport 0000:00:03.0: AER: device recovery failed",
                                  "[ 1.0] pcieport 0000:00:03.0: AER: Device recovery failed"])
def test_a_failed_aer_recovery_leaves_what_is_behind_the_port_lost(line):
    findings = kl.scan([line], boot_time=0.0)
    assert [(f["category"], f["severity"], f["bdf"], f["gpu_health"]) for f in findings] == [
        ("bus_lost", kl.HARD, None, "lost")]


def test_a_successful_aer_recovery_is_no_finding():
    assert kl.scan(["[ 1.0] pcieport 0000:00:03.0: AER: device recovery successful"], boot_time=0.0) == []


# Corrected AER errors, as ports print them (the link retried and recovered): kernels before 6.x
# (GSConnect/gnome-shell-extension-gsconnect#1052, endlessm/linux#131, geerlingguy/raspberry-pi-pcie-devices#64)
# and since (pop-os/pop#3363, qualcomm-linux/kernel#1118).
CORRECTED_LINES = [
    "фев 12 00:48:02 kernel: pcieport 0000:00:1c.5: AER: Corrected error received: 0000:00:1c.5",
    "pcieport 0000:00:1c.5: AER: Corrected error received: id=00e5",
    "[    3.499148] pcieport 0000:00:1d.0: AER: Multiple Corrected error received: id=00e8",
    "Sep 19 16:18:02 bubz kernel: [68183.615790] pcieport 0000:00:03.1: AER: Correctable error message received from "
    "0000:00:00.0",
    "[   36.772366][  T291] pcieport 0000:00:00.0: AER: Multiple Correctable error message received from 0000:00:00.0",
]


@pytest.mark.parametrize("line", CORRECTED_LINES)
def test_a_corrected_aer_error_warns_on_the_port(line):
    findings = kl.scan([line], boot_time=0.0)
    assert [(f["category"], f["severity"], f["bdf"], f["vendor"], f["gpu_health"]) for f in findings] == [
        ("pcie_error", kl.SOFT, None, None, None)]


def test_one_corrected_event_is_one_finding_and_an_uncorrected_one_stays_hard():
    """The detail lines after a corrected header are the same event; a fatal error on the port is still hard."""
    lines = ["[ 4.9] pcieport 0000:00:01.0: AER: Corrected error message received from 0000:01:00.0",
             "[ 4.9] pcieport 0000:01:00.0: PCIe Bus Error: severity=Corrected, type=Data Link Layer, (Receiver ID)",
             "[ 4.9] pcieport 0000:01:00.0:   device [1002:1478] error status/mask=00000040/00002000",
             "[ 4.9] pcieport 0000:01:00.0:    [ 6] BadTLP                ",
             "[ 9.0] pcieport 0000:00:01.0: AER: Uncorrected (Fatal) error received: 0000:01:00.0"]
    assert [(f["category"], f["severity"], f["count"]) for f in kl.scan(lines, boot_time=0.0)] == [
        ("pcie_error", kl.SOFT, 1), ("pcie_error", kl.HARD, 1)]


@pytest.mark.parametrize("line, devices", [
    ("[ 9.0] pcieport 0000:00:01.1: pciehp: Slot(0): Link Down", [("0000:00:01.1", "pcieport")]),
    ("[ 9.0] pciehp 0000:00:1c.0:pcie004: Slot(0): Link Down", [("0000:00:1c.0", "pciehp")]),
    # 4.x, dmesg -T in a pt_BR locale (lnls-dig/bpm-gw#73)
    ("[Ter Set 19 06:01:41 2017] pciehp 0000:02:05.0:pcie24: slot(6): Link Down event", [("0000:02:05.0", "pciehp")]),
    ("[ 9.0] pci 0000:00:01.0: DPC: containment event, status:0x000d, ERR_FATAL received from 0000:02:00.0",
     [("0000:00:01.0", "pci")]),
    ("[ 4.9] pcieport 0000:00:01.0: AER: Corrected error message received from 0000:01:00.0", [("0000:01:00.0", None)]),
    ("[ 4.9] pcieport 0000:00:03.1: AER: Multiple Uncorrected (Fatal) error received: id=0000", [("0000:00:03.1", "pcieport")]),
    # requester ID 0: the port could not tell the source (a Pi 5's root port is 00:00.0 itself,
    # geerlingguy/raspberry-pi-pcie-devices#600; on x86 that address is the host bridge, never a source)
    ("[ 5.0] pcieport 0000:00:01.1: AER: Uncorrectable (Fatal) error message received from 0000:00:00.0",
     [("0000:00:01.1", "pcieport")]),
    ("[57.0] pcieport 0000:00:00.0: AER: Uncorrected (Non-Fatal) error received: 0000:00:00.0", [("0000:00:00.0", "pcieport")]),
])
def test_a_port_finding_names_the_device_it_is_about(line, devices):
    """The port for a link event, the source an AER header names (else the port): for the GPU probe's topology."""
    [finding] = kl.scan([line], boot_time=0.0)
    assert [(d["bdf"], d["driver"]) for d in finding["devices"]] == devices


def test_a_failed_recovery_is_about_the_devices_its_record_gave_up_on():
    """minisforum-docs/MS-02-Ultra#10: the devices named before 'device recovery failed' are what failed; a line
    of another recovery's record, more than 64 lines before, is not."""
    lines = ["pcieport 0000:80:1b.4: AER: Uncorrectable (Non-Fatal) error message received from 0000:80:1b.4",
             "thunderbolt 0000:84:00.0: AER: can't recover (no error_detected callback)",
             "xhci_hcd 0000:97:00.0: AER: can't recover (no error_detected callback)",
             "pcieport 0000:80:1b.4: AER: device recovery failed",
             "nvme 0000:05:00.0: AER: can't recover (no error_detected callback)"]
    lines += ["noise"] * 70 + ["pcieport 0000:80:1b.4: AER: device recovery failed"]
    failed = [f for f in kl.scan(lines, boot_time=0.0) if f["category"] == "bus_lost"]
    assert [(f["count"], [(d["driver"], d["bdf"]) for d in f["devices"]]) for f in failed] == [
        (2, [("pcieport", "0000:80:1b.4"), ("thunderbolt", "0000:84:00.0"), ("xhci_hcd", "0000:97:00.0")])]
    assert [f["devices"] for f in kl.scan(["[ 1.0] amdgpu 0000:03:00.0: SMU: response:0xFFFFFFFF for index:9"],
                                          boot_time=0.0)] == [[]]


@pytest.mark.parametrize("line", [
    # linux-pci, Shuai Xue's AER patch of 2025-09-17 (tests/fixtures/gpu/SOURCES.md)
    "pcieport 0015:00:00.0: pciehp: Slot(21): Link Down/Up ignored",
    # pciehp_hpc.c since 6.x, the DPC-recovered form
    "[ 217.0] pcieport 0000:a9:10.0: pciehp: Slot(3): Link Down/Up ignored (recovered by DPC)",
])
def test_a_link_flap_pciehp_ignores_is_no_bus_loss(line):
    assert kl.scan([line], boot_time=0.0) == []
