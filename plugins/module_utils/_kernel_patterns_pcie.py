# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the PCIe kernel-log pattern table (data only), for every vendor.

A PCIe bridge (pcieport, pciehp, AER) reports the link to a GPU going down. Its lines name the
bridge (or the device whose error it reports), not the GPU, so their findings carry no GPU address
(``bdf`` None) and no vendor; they name the PCI devices they are about in ``devices``, which the GPU
probe joins to the GPUs at or below them (``_gpus.join_findings``, with the PCI topology from sysfs).
Same row format as ``_kernel_patterns_amdgpu``, plus the row option ``devices``: which of the
``DEVICES`` forms say what device the line is about, and ``record`` (the devices the lines before it
named in ``RECORD`` wording are about it too).
The wording is the kernel's own (drivers/pci/hotplug/pciehp_ctrl.c, drivers/pci/pcie/aer.c,
drivers/pci/pcie/dpc.c, drivers/pci/pcie/err.c, drivers/pci/pci.c).
"""

from __future__ import annotations

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks

VENDOR = None
NEEDS = None

_BDF = r"[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]"

ADDRESSES = []

# The device a row's line is about, per the row's ``devices`` option: the first form that matches (group 1 the
# driver or None, group 2 the address). "port": the device the line is printed for ("pcieport <bdf>:", "pci <bdf>:",
# older "pciehp <bdf>:pcie004:"): a link event there is about everything below it. "source": the device an AER
# header names as the error's source ("error received: <bdf>", 6.x "error message received from <bdf>"), else the
# port (older kernels name it "id=00e5"). A source of 0000:00:00.0 is requester ID 0, which the port writes when
# it cannot tell the source (the kernel then searches the bus for it): the port, not the host bridge at that address.
_PORT = r"^\s*([\w.-]+) (" + _BDF + r")[:\s]"
DEVICES = {
    "port": [_PORT],
    "source": [r"\b()received(?: from|:) (?![0-9a-f]{4}:00:00\.0\b)(" + _BDF + r")\b", _PORT],
}

# Lines that name a device the AER recovery under way could not recover (err.c, for each device below the port whose
# driver has no error handler: "ahci 0000:01:00.0: AER: can't recover (no error_detected callback)"; 4.x "device
# has no AER-aware driver"), printed before the port's "device recovery failed": a row with ``record`` is about them.
# (key, regex searched in the whole line: group 1 the driver, group 2 the address.)
RECORD = [
    ("can't recover", r"(?<![\w.-])([\w.-]+) (" + _BDF + r"): (?:AER: )?can't recover\b"),
    ("device has no", r"(?<![\w.-])([\w.-]+) (" + _BDF + r"): (?:AER: )?device has no (?:AER-aware )?driver\b"),
]

FIXES = {}

# A link that went down takes the GPU behind it off the bus (when a finding is joined to a GPU).
# The PCI enumeration lines (drivers/pci/probe.c, setup-bus.c), at boot and at a hot-add: what sat below each port,
# for a port whose slot is now empty (pciehp removes what was below a link that went down, so sysfs no longer shows
# the GPU that was there). (key, regex searched in the message body):
# "function": "pci 0000:01:00.0: [1002:73bf] type 00 class 0x030000" (6.x adds "PCIe Legacy Endpoint" after):
#   groups address, vendor id, device id, class;
# "bridge": "pci 0000:00:01.1: PCI bridge to [bus 01-03]" ("[bus 01]" for one bus; also "pcieport"): groups address,
#   first and last bus.
ENUMERATION = {
    "function": ("type 00 class", r"^\s*pci (" + _BDF + r"): \[([0-9a-f]{4}):([0-9a-f]{4})\] type 00 class (0x[0-9a-f]{6})\b"),
    "bridge": ("pci bridge to", r"^\s*pci(?:eport)? (" + _BDF + r"): PCI bridge to \[bus ([0-9a-f]{2})(?:-([0-9a-f]{2}))?\]"),
}

_LOST = {"gpu": "lost", "devices": "port"}
# Every line here is about the device it is printed for (the port), unless the row says otherwise.
_PORT_ROW = {"devices": "port"}

ROWS = [
    ("bus_lost", "pciehp", r"\bpciehp\b.*\bLink Down\b", "PCIe slot link down", _LOST),
    # Printed for any hot-plug slot whose card goes (an NVMe drive pulled): the line names the bridge,
    # never the GPU, so alone it cannot say a GPU was lost. Soft; a GPU that fell off has its own lines.
    ("bus_lost", "pciehp", r"\bpciehp\b.*\bCard not present\b", "PCIe slot reports its card removed (any device)",
     {"severity": _checks.SOFT, "devices": "port", "fix": (
         "A PCIe hot-plug slot reports its card gone. Find what sat behind this bridge with 'lspci -tv': "
         "a drive or another card needs no GPU action; a GPU there is lost (power-cycle the rig and check "
         "its riser, cable and PCIe power).")}),
    ("bus_lost", "inaccessible", r"(?:^|\s)pcieport " + _BDF + r":.*\bdevice inaccessible", "PCIe bridge inaccessible", _LOST),
    ("bus_lost", "surprise down", r"\bSurprise Down Error\b", "PCIe link went down (AER Surprise Down)", _LOST),
    # The AER recovery of an uncorrectable error failed (err.c pcie_do_recovery: "device recovery failed", "Device
    # recovery failed" before 5.x): what is behind the port stays disconnected until a reboot.
    # The devices it is about: the port's, and those the record's "can't recover" lines named (RECORD).
    ("bus_lost", "recovery failed", r"\bAER: [Dd]evice recovery failed\b", "PCIe error recovery failed (devices behind the port lost)",
     dict(_LOST, record=True)),
    # "Uncorrected" until kernel 6.x, "Uncorrectable" since ("... error message received from <bdf>").
    # An AER header is about the error's source device, which it names (else the port).
    ("pcie_error", "uncorrect", r"\bAER: (?:Multiple )?Uncorrect(?:ed|able) \(Fatal\) error", "fatal uncorrected PCIe error (AER)",
     {"devices": "source"}),
    ("pcie_error", "uncorrect", r"\bAER: (?:Multiple )?Uncorrect(?:ed|able) \(Non-Fatal\) error",
     "non-fatal uncorrected PCIe error (AER)", {"severity": _checks.SOFT, "devices": "source"}),
    # A corrected error (the link retried and recovered; "Corrected error received: <bdf>" until kernel 6.x,
    # "Correctable error message received from <bdf>" since): nothing was lost, but a link that keeps retrying
    # is marginal (riser, cable, slot), so it warns. Only the port's header line: the "PCIe Bus Error:
    # severity=Corrected" and status lines after it describe the same event.
    ("pcie_error", "correct", r"\bAER: (?:Multiple )?Correct(?:ed|able) error (?:message )?received\b",
     "corrected PCIe error (AER)", {"severity": _checks.SOFT, "devices": "source", "fix": (
         "Corrected PCIe errors: the link retried and recovered, no work was lost. Many of them, or on the link "
         "to a GPU (find what is behind this port with 'lspci -tv'), point to a marginal riser, cable or slot: "
         "reseat or replace it, or lower the slot's PCIe generation in the BIOS.")}),
    # Downstream Port Containment (dpc.c): the port disabled its link on an uncorrectable error, so the devices
    # behind it lost their work (the port prints no "AER: ... error received" line then). One line per event:
    # "DPC: containment event, status:... source:..." (4.x "DPC containment event"; 6.x adds the trigger reason).
    ("pcie_error", "containment event", r"\bDPC:? containment event\b", "PCIe port contained an uncorrectable error (DPC)",
     _PORT_ROW),
]

BENIGN = [
    # pciehp ignores the link going down and up that a DPC containment (or a reset) caused: the devices stay
    # (6.x pciehp_hpc.c: "Slot(21): Link Down/Up ignored", "... (recovered by DPC)"); the containment is a finding.
    r"\bpciehp\b.*\bLink Down/Up ignored\b",
]
