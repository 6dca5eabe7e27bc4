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
