# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the NVIDIA kernel-log pattern table and Xid table (data only).

Same row format as ``_kernel_patterns_amdgpu`` (read by the one engine in ``_kernel_log``), plus
``XIDS``: NVIDIA's Xid catalogue (docs.nvidia.com/deploy/xid-errors, "Analyzing Xid Errors with
the Xid Catalog") as ``xid -> (category, severity, summary, fix or None)``. The ``Xid`` row looks
its number up there (``options["lookup"]``); a number that is not in the table gives
``UNKNOWN_XID``.

Severity: an Xid NVIDIA attributes to the application (13, 31, 43, 45, and 8, 137; immediate
action RESTART_APP/IGNORE, "the GPU remains in a healthy state") is soft, and so are informational
ones (63 row remapped, 92 corrected errors); everything that means the GPU, its memory, its
firmware, its links or its bus is hard. An unknown Xid is hard: the numbers NVIDIA adds are new
hardware, firmware and link error classes, a preflight must not pass evidence it cannot judge,
and ``preflight_downgrade: [kernel_log]`` softens it while the Xid is looked up.

"caused by previous Xid N" (an Xid 45 after an NVLink or ECC error) is folded into its cause: the
finding is the cause's, keyed and judged as Xid N, with the follow-up Xids in ``caused_xids``.

NVRM names a GPU ``PCI:0000:01:00`` (domain, bus, device; no function): such findings carry that
partial address until ``_kernel_log.resolve_addresses`` completes it.

NVSwitch SXids (``nvidia-nvswitchN: SXid (PCI:<switch>): <n>, Fatal|Non-fatal, ...``) name the
switch, not a GPU: their findings are host-level (no address), hard when the driver says Fatal (the
NVLink fabric is broken for every GPU behind the switch), soft when Non-fatal.
"""

from __future__ import annotations

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks

HARD = _checks.HARD
SOFT = _checks.SOFT

VENDOR = "nvidia"
NEEDS = "nvrm"

# Full (0000:01:00.0) or NVRM's partial (0000:01:00) PCI address.
_ADDR = r"[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}(?:\.[0-7])?"
_BDF = r"[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]"
_XID = r"\bXid \((?:PCI:)?(?P<bdf>" + _ADDR + r")[^)]*\):\s*"

ADDRESSES = [
    r"NVRM: GPU (?:at )?(?:PCI:)?(" + _ADDR + r")",
    # "NVRM: The NVIDIA GPU 0000:b3:00.0 / (PCI ID: 10de:26b5) installed in this system has / fallen off the bus"
    r"NVRM: The NVIDIA GPU (?:PCI:)?(" + _ADDR + r")",
    r"(?:^|\s)nvidia (" + _BDF + r"):",
    r"NVRM: Xid \((?:PCI:)?(" + _ADDR + r")",
]

FIXES = {
    "app_fault": (
        "An application's GPU work failed (NVIDIA: restart the application; the GPU itself stays "
        "usable). Check the process named in the message; if it recurs on this GPU only, run a "
        "DCGM diagnostic (dcgmi diag -r 2)."),
    "page_fault": (
        "A GPU program accessed an invalid address (an MMU fault): usually an application bug. Run it "
        "under compute-sanitizer; if it recurs on this GPU only, run dcgmi diag -r 2."),
    "ras_uncorrectable": (
        "Uncorrectable GPU memory (ECC) error: drain the GPU, check nvidia-smi -q -d ECC,ROW_REMAPPER, "
        "and reset it (nvidia-smi -r) or reboot before new work; replace it if it recurs."),
    "ras_correctable": (
        "Correctable ECC errors: no action needed now; watch the counts (nvidia-smi -q -d ECC)."),
    "memory_remap": (
        "GPU memory rows were marked for remapping (or pages retired): reset the GPU "
        "(nvidia-smi -r) when it is idle so the remap takes effect."),
    "memory_remap_failed": (
        "The GPU could not remap or retire failing memory: take it out of service, reset it and check "
        "nvidia-smi -q -d ROW_REMAPPER; replace it if it persists."),
    "nvlink_error": (
        "NVLink error: check nvidia-smi nvlink -s and -e on this GPU and its peers, and reset the GPU "
        "(or reboot the node) before new multi-GPU work; a failing peer can make a healthy GPU report it."),
    "firmware_error": (
        "The GPU's firmware (PMU/GSP) halted or timed out: reset the GPU (nvidia-smi -r) or reboot the "
        "node; update the driver if it recurs."),
    "gpu_error": (
        "The NVIDIA driver reported a GPU error: reset the GPU (nvidia-smi -r) or reboot before new "
        "work, and look the Xid up in NVIDIA's Xid catalogue (docs.nvidia.com/deploy/xid-errors)."),
    "gpu_hang": (
        "The GPU stopped processing: reset it (nvidia-smi -r) or reboot the node before new work."),
    "bus_lost": (
        "The GPU fell off the PCIe bus: power-cycle the node and check its slot or riser, PCIe power "
        "cables and cooling; replace it if it recurs."),
    "init_failed": (
        "The NVIDIA driver could not initialise the GPU: check its PCIe power cables, that the driver "
        "supports it, and the kernel log around the line; reboot, and reseat the card if it persists."),
    "pcie_error": (
        "Corrupted data on the PCIe link to the GPU: check the slot or riser, the link width/speed "
        "(nvidia-smi -q -d PCIE) and PCIe power; reset the GPU before new work."),
    "recovery_required": (
        "The driver says what the GPU needs (in the message): GPU Reset Required -> stop its processes "
        "and run nvidia-smi -r; Node Reboot Required -> reboot; Drain P2P -> stop peer-to-peer work "
        "first. Do it before new work."),
    "gpu_reset": (
        "The GPU recovered (recovery action back to None); no action unless it repeats."),
}

_SXID_FIX = (
    "An NVSwitch reported an NVLink fabric error (SXid, in the message): check nvidia-fabricmanager's log and "
    "nvidia-smi nvlink -s on the GPUs; a fatal SXid needs the GPUs and switches reset (or the node rebooted) "
    "before new multi-GPU work, and look the number up in NVIDIA's NVSwitch SXid catalogue.")

XIDS = {
    8: ("app_fault", SOFT, "Xid 8: GPU stopped processing (application timeout)", None),
    13: ("app_fault", SOFT, "Xid 13: graphics engine exception (application fault)", None),
    31: ("page_fault", SOFT, "Xid 31: GPU memory page fault", None),
    32: ("pcie_error", HARD, "Xid 32: invalid or corrupted push buffer stream (PCIe/DMA)", None),
    43: ("app_fault", SOFT, "Xid 43: GPU stopped processing (application fault)", None),
    45: ("app_fault", SOFT, "Xid 45: preemptive cleanup after earlier errors (job ended)", None),
    46: ("gpu_hang", HARD, "Xid 46: GPU stopped processing", None),
    48: ("ras_uncorrectable", HARD, "Xid 48: double-bit ECC error", None),
    61: ("firmware_error", HARD, "Xid 61: internal micro-controller breakpoint/warning", None),
    62: ("firmware_error", HARD, "Xid 62: internal micro-controller halt", None),
    63: ("memory_remap", SOFT, "Xid 63: memory row remapped / page retired (reset to apply)", None),
    64: ("memory_remap_failed", HARD, "Xid 64: memory row remap / page retirement failed", None),
    68: ("gpu_error", HARD, "Xid 68: video decoder (NVDEC) exception", None),
    69: ("gpu_error", HARD, "Xid 69: graphics engine class error", None),
    74: ("nvlink_error", HARD, "Xid 74: NVLink error", None),
    79: ("bus_lost", HARD, "Xid 79: GPU has fallen off the bus", None),
    92: ("ras_correctable", SOFT, "Xid 92: high single-bit ECC error rate", None),
    94: ("ras_uncorrectable", HARD, "Xid 94: contained ECC error (application killed)", None),
    95: ("ras_uncorrectable", HARD, "Xid 95: uncontained ECC error", None),
    109: ("gpu_hang", HARD, "Xid 109: context switch timeout", None),
    110: ("gpu_error", HARD, "Xid 110: security fault", None),
    119: ("firmware_error", HARD, "Xid 119: GSP RPC timeout", None),
    120: ("firmware_error", HARD, "Xid 120: GSP error", None),
    121: ("ras_correctable", SOFT, "Xid 121: corrected errors on the C2C link", None),
    136: ("nvlink_error", HARD, "Xid 136: link training failed", None),
    137: ("app_fault", SOFT, "Xid 137: NVLink privilege error (illegal peer access)", None),
    140: ("ras_uncorrectable", HARD, "Xid 140: unrecovered ECC error", None),
    143: ("init_failed", HARD, "Xid 143: GPU initialisation error", None),
    144: ("nvlink_error", HARD, "Xid 144: NVLink SAW error", None),
    145: ("nvlink_error", HARD, "Xid 145: NVLink RLW error", None),
    146: ("nvlink_error", HARD, "Xid 146: NVLink TLW error", None),
    147: ("nvlink_error", HARD, "Xid 147: NVLink TREX error", None),
    148: ("nvlink_error", HARD, "Xid 148: NVLink NVLPW_CTRL error", None),
    149: ("nvlink_error", HARD, "Xid 149: NVLink NETIR error", None),
    150: ("nvlink_error", HARD, "Xid 150: NVLink MSE error", None),
    154: ("recovery_required", HARD, "Xid 154: GPU recovery action changed", None),
    155: ("nvlink_error", HARD, "Xid 155: NVLink link down (software defined)", None),
    158: ("gpu_hang", HARD, "Xid 158: GPU fatal timeout", None),
}

# An Xid the table does not know ("%d" is the number).
UNKNOWN_XID = ("gpu_error", HARD, "Xid %d (not in the Xid table)", None)

ROWS = [
    # Xid 154 says what the GPU needs now: back to None means it recovered.
    ("gpu_reset", "xid", _XID + r"154\b.*?\bto 0x0+ \(None\)", "GPU recovered (Xid 154: recovery action None)",
     {"role": "recovered", "xid": 154}),
    ("recovery_required", "xid", _XID + r"154\b.*?\bto 0x[0-9a-f]+ \((?P<hung>[^)]*)\)",
     "Xid 154: GPU needs recovery", {"role": "hang", "xid": 154}),
    # Every other Xid: looked up in XIDS; "caused by previous Xid N" is judged as Xid N.
    ("gpu_error", "xid", _XID + r"(?P<xid>\d{1,4})\b(?:.*?\bcaused by previous Xid (?P<cause>\d{1,4}))?",
     "Xid", {"lookup": XIDS, "unknown": UNKNOWN_XID, "gpu": {"bus_lost": "lost"}}),
    # NVSwitch SXids: the address is the switch's (no bdf group), so the finding stays host-level.
    ("nvlink_error", "sxid", r"\bSXid \([^)]*\):\s*\d+,\s*Fatal\b", "NVSwitch fatal SXid (NVLink fabric error)",
     {"fix": _SXID_FIX}),
    ("nvlink_error", "sxid", r"\bSXid \([^)]*\):\s*\d+,\s*Non-fatal\b", "NVSwitch non-fatal SXid (NVLink fabric)",
     {"severity": SOFT, "fix": _SXID_FIX}),
    # Without an Xid line.
    ("bus_lost", "fallen", r"\bfallen off the bus\b", "GPU has fallen off the bus", {"own": True, "gpu": "lost"}),
    ("init_failed", "rminitadapter", r"\bRmInitAdapter failed\b", "RmInitAdapter failed (GPU not initialised)", {}),
    ("init_failed", "rm_init_adapter", r"\brm_init_adapter failed\b", "rm_init_adapter failed (GPU not initialised)", {}),
    ("init_failed", "probe", r"\bNVIDIA probe routine failed\b", "NVIDIA probe failed", {}),
    ("init_failed", "probe", r"\bnvidia: probe of (?P<bdf>" + _BDF + r") failed", "NVIDIA probe failed", {}),
    # the same on kernels 6.x (drivers/base/dd.c): "nvidia 0000:2c:00.0: probe with driver nvidia failed with error -1"
    ("init_failed", "probe", r"\bprobe with driver nvidia failed", "NVIDIA probe failed", {}),
    ("init_failed", "power cables", r"necessary power cables", "GPU power cables not connected", {"own": True}),
    ("gpu_hang", "locked", r"\bGPU is probably locked\b", "RC watchdog: GPU locked", {"own": True}),
    # The GPU itself reported an uncorrectable PCIe error (its own AER line; see _kernel_patterns_amdgpu).
    ("pcie_error", "pcie bus error", r"(?:^|\s)nvidia " + _BDF + r": (?:AER: )?PCIe Bus Error: severity=Uncorrect(?:ed|able) \(Fatal\)",
     "fatal uncorrected PCIe error reported by the GPU", {}),
    ("pcie_error", "pcie bus error", r"(?:^|\s)nvidia " + _BDF + r": (?:AER: )?PCIe Bus Error: severity=Uncorrect(?:ed|able) \(Non-Fatal\)",
     "non-fatal uncorrected PCIe error reported by the GPU", {"severity": SOFT}),
    # The PCIe core after an uncorrectable error on the GPU's link: the NVIDIA driver has no AER handlers, so
    # the GPU is left as the error left it. Names the GPU that the bridge's own AER lines do not; soft: the
    # bridge's Fatal line is hard by itself, and a non-fatal error often leaves the GPU working.
    ("pcie_error", "can't recover", r"(?:^|\s)nvidia (?P<bdf>" + _BDF + r"): AER: can't recover",
     "uncorrectable PCIe error on the GPU's link (the driver cannot recover it)", {"severity": SOFT}),
    # "GSP RM heartbeat timed out" (_kgspRpcRecvPoll) and "_kgspIsHeartbeatTimedOut: Heartbeat timed out" (595.x);
    # the GPU is named by its index (GPU6), not its address.
    ("firmware_error", "heartbeat", r"\b(?:GSP RM heartbeat|_kgspIsHeartbeatTimedOut: Heartbeat) timed out\b",
     "GSP firmware heartbeat timed out", {"own": True}),
]

BENIGN = []
