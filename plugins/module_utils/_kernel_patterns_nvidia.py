# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the NVIDIA kernel-log pattern table and Xid table (data only).

Same row format as ``_kernel_patterns_amdgpu`` (read by the one engine in ``_kernel_log``), plus
``XIDS``: NVIDIA's Xid catalog (docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html, "Analyzing
Xid Errors with the Xid Catalog") as ``xid -> (category, severity, summary, fix)``. The ``Xid`` row looks
its number up there (``options["lookup"]``); a number in ``INFORMATIONAL`` (``options["ignore"]``) is
no finding; any other number gives ``UNKNOWN_XID``.

Severity is the catalog's "Resolution Bucket (Immediate Action)" (``_ACTIONS``; each row's fix starts
with it): RESTART_APP and IGNORE leave the GPU able to take work (the application's faults, corrected
errors): soft, but for the few judged stricter, said why in ``STRICTER_THAN_CATALOG`` (a contained ECC
error, Xid 94); RESET_GPU, RESTART_BM, RESTART_VM, UPDATE_SWFW, CHECK_MECHANICALS,
CONTACT_SUPPORT and the Xid 48 / NVLink workflows: hard. NVLink 5 Xids (144-150) the driver prints as
``Nonfatal`` are soft (``NVLINK5_NONFATAL``, the catalog's decode sheet), ``Fatal`` ones hard. An
unknown Xid is hard (see ``UNKNOWN_XID``), and ``preflight_downgrade: [kernel_log]`` softens it while
the Xid is looked up.

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

# Fixes of rows whose wording says more than their category's fix.
_FIXES_BY_WORDING = {
    "probe not called": (
        "Another driver owns NVIDIA GPUs, so the NVIDIA driver cannot use them: check lspci -k. Unless they are bound "
        "to vfio-pci on purpose, blacklist nouveau (and rebuild the initramfs) or unbind that driver, then reload "
        "nvidia or reboot."),
    "api mismatch": (
        "The NVIDIA user-space driver (libraries, nvidia-smi, CUDA) and the loaded kernel module are of different "
        "versions (the message names both): that client's NVML and CUDA calls fail until they match. Reboot after a "
        "driver update, or unload and reload the nvidia modules; a container must use the host's driver libraries."),
    "reset required": (
        "The NVIDIA driver refuses new work on a GPU until it is reset (CUDA: 'busy or unavailable'): find it with "
        "nvidia-smi -q (GPU Recovery Action, 'GPU requires reset'), stop its processes and reset it (nvidia-smi -r) "
        "or reboot the node before new work."),
    "uvm fatal": (
        "nvidia-uvm hit a global fatal error: CUDA fails on every GPU of the node (nvidia-smi may still look fine) until "
        "the node is rebooted. Reboot it before new work; check the Xids before this line for the cause."),
    "fabric mismatch": (
        "nvidia-fabricmanager (or another NVSwitch client) is of another version than the loaded driver (the message "
        "names both): it cannot start, and CUDA on an NVSwitch system fails until it does. Install the fabric manager "
        "of the driver's exact version (or reboot after a driver update) and start it."),
    "nvlink discovery": (
        "The driver could not bring up the NVLinks to a peer GPU when it loaded: check nvidia-smi nvlink -s and "
        "nvidia-smi topo -m, and reboot the node before new multi-GPU work (the links stay down until then); if it "
        "recurs, check the NVLink bridges or baseboard."),
    "no gpu": (
        "The NVIDIA driver loaded but found no GPU it could drive: check lspci for the NVIDIA GPUs, which driver "
        "holds them (lspci -k: vfio-pci, nouveau), and the kernel log before this line."),
}

_SXID_FIX = (
    "An NVSwitch reported an NVLink fabric error (SXid, in the message): check nvidia-fabricmanager's log and "
    "nvidia-smi nvlink -s on the GPUs; a fatal SXid needs the GPUs and switches reset (or the node rebooted) "
    "before new multi-GPU work, and look the number up in NVIDIA's NVSwitch SXid catalogue.")

# What NVIDIA's Xid catalog (docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html, the "Xids" and
# "Guidance Classes" sheets, R565-R575 columns) gives as the "Resolution Bucket (Immediate Action)": the first words
# of every Xid row's fix. RESET_GPU, RESTART_BM, RESTART_VM, UPDATE_SWFW, CHECK_MECHANICALS, CONTACT_SUPPORT and the
# WORKFLOW_XID_48 / WORKFLOW_NVLINK*_ERR workflows mean the GPU must not take work until it is done: hard.
# RESTART_APP ("RESET_GPU or RESTART_BM is not deemed necessary") and IGNORE ("No Action required") mean the GPU
# itself may take work: soft. Xids the catalog marks informational, or test messages, are no finding (INFORMATIONAL).
_ACTIONS = {
    "RESET_GPU": "NVIDIA: reset the GPU (nvidia-smi -r once no process uses it) or reboot the node before new work.",
    "RESTART_BM": "NVIDIA: restart the node (bare metal) before new work.",
    "RESTART_VM": "NVIDIA: restart the VM that owns the GPU (no GPU reset or node reboot needed).",
    "RESTART_APP": "NVIDIA: restart the application; the GPU can keep working.",
    "IGNORE": "NVIDIA: no action needed on the GPU.",
    "UPDATE_SWFW": "NVIDIA: update the driver and firmware before the GPU can be used.",
    "CHECK_MECHANICALS": "NVIDIA: check that the card is seated and all its connections are secure before new work.",
    "CONTACT_SUPPORT": "NVIDIA: contact support; until then keep the GPU out of service.",
}


def _fix(action, detail):
    return _ACTIONS[action] + " " + detail


_APP = ("Check the process named in the message; if it recurs on this GPU only, whatever runs, run a DCGM "
        "diagnostic (dcgmi diag -r 2).")
_ENGINE = "A video/copy engine fault of the application named in the message. " + _APP
_RESET = "Contact support if it recurs after the reset."


def _engines(numbers, what):
    """Engine exceptions NVIDIA attributes to the application (RESTART_APP): soft."""
    return dict((xid, ("app_fault", SOFT, "Xid %d: %s exception" % (xid, name), _fix("RESTART_APP", _ENGINE)))
                for xid, name in zip(numbers, what))


# xid -> (category, severity, summary, fix). Per row: the catalog's immediate action (and, where it says more, its
# "Trigger Conditions" text). Xids the catalog marks "Unused" on Ampere and newer are left to UNKNOWN_XID. Second
# opinions: NVIDIA/k8s-device-plugin internal/rm/health.go keeps a GPU healthy through 13, 31, 43, 45 and 68
# ("Application errors: the GPU should still be healthy"); NVIDIA/NVSentinel's xiderrorsmapping.csv gives the same
# buckets (RESTART_APP/IGNORE NONFATAL, the others FATAL) but for 160 (RESTART_BM there, IGNORE in the catalog) and
# 159 (NONFATAL there; hard here: CUDA always uses UVM).
XIDS = {
    8: ("app_fault", SOFT, "Xid 8: GPU stopped processing (application timeout)", _fix("RESTART_APP", _APP)),
    11: ("app_fault", SOFT, "Xid 11: invalid or corrupted push buffer stream (application)", _fix("RESTART_APP", _APP)),
    # RESTART_APP / WORKFLOW_XID_13: "general user application faults"
    13: ("app_fault", SOFT, "Xid 13: graphics engine exception (application fault)", _fix(
        "RESTART_APP", "Run the program under compute-sanitizer or cuda-gdb; if the same GPC/TPC faults for different "
        "programs on this GPU, run dcgmi diag -r 3.")),
    25: ("app_fault", SOFT, "Xid 25: invalid or illegal push buffer stream (application)", _fix("RESTART_APP", _APP)),
    # RESTART_APP / WORKFLOW_XID_31: "Typically these are application-level bugs"
    31: ("page_fault", SOFT, "Xid 31: GPU memory page fault", _fix(
        "RESTART_APP", "Usually an application bug: run it under compute-sanitizer; if MMU faults repeat on this GPU "
        "for different programs, run dcgmi diag -r 3.")),
    # RESTART_APP / CHECK_APP/CUDA; the trigger text: "primarily ... quality issues on PCI"
    32: ("pcie_error", SOFT, "Xid 32: invalid or corrupted push buffer stream (PBDMA, often PCIe)", _fix(
        "RESTART_APP", "NVIDIA: mostly a PCIe quality issue, not the application: if it recurs, check the slot or "
        "riser, the link (nvidia-smi -q -d PCIE) and the kernel's AER lines.")),
    # IGNORE: "Driver firmware error"
    37: ("firmware_error", SOFT, "Xid 37: driver firmware error (unimplemented firmware method)", _fix(
        "IGNORE", "Report it to NVIDIA if it repeats.")),
    38: ("firmware_error", SOFT, "Xid 38: driver firmware error (FECS watchdog timeout)", _fix(
        "IGNORE", "Report it to NVIDIA if it repeats.")),
    # IGNORE: "a user application hits a software induced fault ... The GPU remains in a healthy state"
    43: ("app_fault", SOFT, "Xid 43: GPU stopped processing (application fault)", _fix("IGNORE", _APP)),
    44: ("app_fault", SOFT, "Xid 44: graphics engine fault during context switch", _fix("IGNORE", _APP)),
    # WORKFLOW_XID_45: "Control-C, GPU resets, sigkill"; after another Xid, follow that one ("caused by previous Xid")
    45: ("app_fault", SOFT, "Xid 45: preemptive cleanup after earlier errors (job ended)", _fix(
        "IGNORE", "The application was stopped (Ctrl-C, kill, or an earlier Xid: act on that one). Alone and "
        "repeated on an NVSwitch system: restart nvidia-fabricmanager.")),
    46: ("gpu_hang", HARD, "Xid 46: GPU stopped processing", _fix("RESET_GPU", _RESET)),
    # WORKFLOW_XID_48: "A GPU reset or node reboot is needed to clear this error"
    48: ("ras_uncorrectable", HARD, "Xid 48: double-bit ECC error", _fix(
        "RESET_GPU", "With Xid 63/64, drain the GPU first. Alone: run the field diagnostic; for an SRAM error check "
        "nvidia-smi -q -d ECC (SRAM threshold exceeded) and replace the GPU if it is set.")),
    54: ("init_failed", HARD, "Xid 54: auxiliary power is not connected to the GPU board", _fix(
        "CHECK_MECHANICALS", "Connect the card's auxiliary (PCIe 8-pin / 12V) power cables.")),
    60: ("app_fault", SOFT, "Xid 60: video processor (SEC2) exception", _fix("RESTART_APP", _APP)),
    # CONTACT_SUPPORT ("Unused" from Ampere on); before it, a PMU breakpoint that precedes 62
    61: ("firmware_error", HARD, "Xid 61: internal micro-controller breakpoint/warning", _fix(
        "CONTACT_SUPPORT", "Reset the GPU (nvidia-smi -r) or reboot; update the driver if it recurs.")),
    62: ("firmware_error", HARD, "Xid 62: internal micro-controller halt", _fix("RESET_GPU", _RESET)),
    # IGNORE / IGNORE: the row is remapped at the next reset
    63: ("memory_remap", SOFT, "Xid 63: memory row remapped / page retired (reset to apply)", _fix(
        "IGNORE", "The remap takes effect at the next GPU reset: reset it (nvidia-smi -r) when it is idle.")),
    64: ("memory_remap_failed", HARD, "Xid 64: memory row remap / page retirement failed", _fix(
        "RESET_GPU", "Check nvidia-smi -q -d ROW_REMAPPER; replace the GPU if it recurs.")),
    # IGNORE: "Illegal access by driver"
    66: ("gpu_error", SOFT, "Xid 66: illegal register access by the driver", _fix(
        "IGNORE", "Report it to NVIDIA if it repeats.")),
    67: ("gpu_error", SOFT, "Xid 67: illegal access by the driver (verification)", _fix(
        "IGNORE", "Report it to NVIDIA if it repeats.")),
    # RESTART_APP / CHECK_APP/CUDA
    69: ("app_fault", SOFT, "Xid 69: graphics engine class error (application)", _fix("RESTART_APP", _APP)),
    # WORKFLOW_NVLINK_ERR: "A GPU reset or node reboot is needed to clear this error"
    74: ("nvlink_error", HARD, "Xid 74: NVLink error", _fix(
        "RESET_GPU", "Check nvidia-smi nvlink -s and -e on this GPU and its peers (a failing peer can make a healthy "
        "GPU report it); contact the hardware vendor if a reset does not clear it.")),
    78: ("init_failed", HARD, "Xid 78: vGPU start error", _fix(
        "UPDATE_SWFW", "The guest driver must match the host's and the vGPU type suit the guest and the GPU.")),
    # RESTART_BM
    79: ("bus_lost", HARD, "Xid 79: GPU has fallen off the bus", _fix(
        "RESTART_BM", "Power-cycle it and check its slot or riser, PCIe power cables and cooling; replace it if it "
        "recurs.")),
    # RESTART_APP / CHECK_APP/CUDA: "Corrupted data sent to GPU"
    80: ("pcie_error", SOFT, "Xid 80: corrupted data sent to the GPU (push buffer CRC mismatch)", _fix(
        "RESTART_APP", "If it recurs, check the host's memory and the PCIe link (nvidia-smi -q -d PCIE).")),
    92: ("ras_correctable", SOFT, "Xid 92: high single-bit ECC error rate", _fix(
        "IGNORE", "Watch the counts (nvidia-smi -q -d ECC).")),
    93: ("gpu_error", SOFT, "Xid 93: InfoROM wear limit exceeded (non-fatal)", _fix(
        "IGNORE", "Clear the InfoROM erase limit (nvflash --elsessionclear); report it to NVIDIA if that fails.")),
    # RESTART_APP: "contained to one application ... All other applications running at the time of the Xid are
    # unaffected. It is recommended to reset the GPU when convenient. Applications can continue to be run".
    # Hard here all the same (STRICTER_THAN_CATALOG): the memory is repaired only by that reset.
    94: ("ras_uncorrectable", HARD, "Xid 94: contained ECC error (one application killed)", _fix(
        "RESTART_APP", "The error was contained to that application, but the faulty memory is repaired (its row "
        "remapped) only when the GPU is reset: reset it (nvidia-smi -r, or reboot the node) before the next long "
        "step, and check nvidia-smi -q -d ECC,ROW_REMAPPER. preflight_downgrade: [kernel_log] lets work start "
        "meanwhile.")),
    # RESET_GPU: "the affected GPU must be reset before applications can restart"
    95: ("ras_uncorrectable", HARD, "Xid 95: uncontained ECC error", _fix(
        "RESET_GPU", "Check nvidia-smi -q -d ECC,ROW_REMAPPER; replace the GPU if it recurs.")),
    # IGNORE / XID_137_FLOW: an illegal NVLink peer access of the application
    108: ("app_fault", SOFT, "Xid 108: NVLink remote translation error (application)", _fix("IGNORE", _APP)),
    109: ("gpu_hang", HARD, "Xid 109: context switch timeout", _fix("RESET_GPU", _RESET)),
    # RESET_GPU: "To recover, revert any recent system hardware modifications and cold reset the system"
    110: ("gpu_error", HARD, "Xid 110: security fault", _fix(
        "RESET_GPU", "NVIDIA: revert recent hardware changes and cold-reset (power off) the node; contact the "
        "hardware vendor if it persists.")),
    # RESET_GPU: "A GPU reset or node power cycle may be needed"
    119: ("firmware_error", HARD, "Xid 119: GSP RPC timeout", _fix(
        "RESET_GPU", "Power-cycle the node if it persists; update the driver if it recurs.")),
    120: ("firmware_error", HARD, "Xid 120: GSP error", _fix(
        "RESET_GPU", "Power-cycle the node if it persists; update the driver if it recurs.")),
    # IGNORE: "corrected by the system and have no operational impact"
    121: ("ras_correctable", SOFT, "Xid 121: corrected errors on the C2C link", _fix(
        "IGNORE", "Reset the GPU at a service window so the link retrains.")),
    136: ("nvlink_error", HARD, "Xid 136: link training failed", _fix("RESET_GPU", _RESET)),
    # IGNORE / XID_137_FLOW: "Typically these are application-level bugs"
    137: ("app_fault", SOFT, "Xid 137: NVLink privilege error (illegal peer access)", _fix("IGNORE", _APP)),
    # RESET_GPU: "Reset the GPU, and if the problem persists, contact your hardware vendor"
    140: ("ras_uncorrectable", HARD, "Xid 140: unrecovered ECC error", _fix(
        "RESET_GPU", "Contact the hardware vendor if it persists.")),
    141: ("app_fault", SOFT, "Xid 141: CUDA fast path error", _fix("IGNORE", _APP)),
    # CONTACT_SUPPORT (the only action the catalog gives)
    142: ("gpu_error", HARD, "Xid 142: NVENC3 error", _fix("CONTACT_SUPPORT", _RESET)),
    143: ("init_failed", HARD, "Xid 143: GPU initialisation error", _fix("RESET_GPU", _RESET)),
    # WORKFLOW_NVLINK5_ERR: the "XID 144-150 Decode" sheet; a Fatal one needs RESET_GPU (a Nonfatal one: NVLINK5_NONFATAL)
    144: ("nvlink_error", HARD, "Xid 144: NVLink SAW error", _fix("RESET_GPU", _RESET)),
    145: ("nvlink_error", HARD, "Xid 145: NVLink RLW error", _fix("RESET_GPU", _RESET)),
    146: ("nvlink_error", HARD, "Xid 146: NVLink TLW error", _fix("RESET_GPU", _RESET)),
    147: ("nvlink_error", HARD, "Xid 147: NVLink TREX error", _fix("RESET_GPU", _RESET)),
    148: ("nvlink_error", HARD, "Xid 148: NVLink NVLPW_CTRL error", _fix("RESET_GPU", _RESET)),
    149: ("nvlink_error", HARD, "Xid 149: NVLink NETIR error", _fix(
        "RESET_GPU", "A link-down may come from the peer at its other end: check it too.")),
    150: ("nvlink_error", HARD, "Xid 150: NVLink MSE error", _fix("RESET_GPU", _RESET)),
    # RESTART_VM (confidential computing)
    151: ("gpu_error", HARD, "Xid 151: key rotation error", _fix("RESTART_VM", _RESET)),
    # IGNORE (DLA: no data-center GPU)
    152: ("app_fault", SOFT, "Xid 152: DLA SMMU error", _fix("IGNORE", _APP)),
    153: ("app_fault", SOFT, "Xid 153: DLA timeout", _fix("IGNORE", _APP)),
    # XID_154: follow the action it names (the rows in ROWS); this entry is for a line they do not read
    154: ("recovery_required", HARD, "Xid 154: GPU recovery action changed", None),
    # RESET_GPU / INVESTIGATE_SW_USER: "Link down events which are flagged as intentional"
    155: ("nvlink_error", HARD, "Xid 155: NVLink link down (software defined)", _fix(
        "RESET_GPU", "Find what took the link down (software or a user) if that was not intended.")),
    # RESET_GPU / IGNORE
    156: ("memory_remap", HARD, "Xid 156: resource retirement event (reset to apply)", _fix(
        "RESET_GPU", "The retirement takes effect at the reset.")),
    # IGNORE / CONTACT_SUPPORT: "You may still run workloads or Apps, but may experience the same Xid again"
    157: ("memory_remap_failed", SOFT, "Xid 157: resource retirement failure (no spare resources)", _fix(
        "IGNORE", "No repair is possible for lack of spare resources; the Xid may repeat: contact support.")),
    158: ("gpu_hang", HARD, "Xid 158: GPU fatal timeout", _fix("RESET_GPU", _RESET)),
    # CHECK_UVM: "If UVM/vGPU is being utilized, RESET_GPU; otherwise IGNORE" (every CUDA program uses UVM)
    159: ("nvlink_error", HARD, "Xid 159: CHI non-data error (C2C link)", _fix(
        "RESET_GPU", "NVIDIA: needed when UVM or vGPU is in use, as CUDA programs do; otherwise no action.")),
    # IGNORE / INVESTIGATE_SW
    160: ("gpu_error", SOFT, "Xid 160: channel retirement event", _fix("IGNORE", _APP)),
    161: ("gpu_error", SOFT, "Xid 161: channel retirement failure", _fix("IGNORE", _APP)),
    # No bucket; trigger text: "No GPU reset required ..." (power smoothing, 163-165)
    163: ("gpu_error", SOFT, "Xid 163: power smoothing circuitry disengaged", _fix(
        "IGNORE", "NVIDIA: no GPU reset required; resolve the thermal events if power smoothing is wanted, or reload "
        "the driver / reset the GPU if it was disabled by a timeout.")),
    164: ("gpu_error", SOFT, "Xid 164: power smoothing circuitry low lifetime", _fix(
        "IGNORE", "NVIDIA: power smoothing will be disabled soon; plan to replace the GPU if power swings are not "
        "acceptable.")),
    165: ("gpu_error", SOFT, "Xid 165: power smoothing circuitry lifetime exhausted", _fix(
        "IGNORE", "NVIDIA: power smoothing is disabled and power swings will occur; replace the GPU if they are not "
        "acceptable.")),
    # No bucket in the catalog (confidential computing): judged like an unknown Xid
    166: ("nvlink_error", HARD, "Xid 166: encrypted NVLink traffic before the link was configured for it", _fix(
        "CONTACT_SUPPORT", "Applies to confidential-computing mode only.")),
    167: ("pcie_error", HARD, "Xid 167: PCIe fatal timeout", _fix(
        "CONTACT_SUPPORT", "Check the slot or riser and the link (nvidia-smi -q -d PCIE); reset the GPU or reboot.")),
    # "Either ECC should be enabled (to enable row-remapping) or boot re-attempted with shifted WPR"
    168: ("ras_uncorrectable", HARD, "Xid 168: reduced GPU memory capacity (errors in the write-protected region)",
          _fix("RESTART_BM", "Enable ECC (nvidia-smi -e 1) so rows can be remapped, or reboot to retry with a "
                             "shifted protected region.")),
    169: ("firmware_error", HARD, "Xid 169: internal micro-controller (SEC2) halt", _fix("RESET_GPU", _RESET)),
    170: ("nvlink_error", HARD, "Xid 170: NVLink interrupt in confidential-computing mode", _fix(
        "CONTACT_SUPPORT", "Applies to confidential-computing mode only.")),
    # "Additional to Xid 48 ... to differentiate DRAM/SRAM": Xid 48's workflow
    171: ("ras_uncorrectable", HARD, "Xid 171: uncorrectable DRAM error (with Xid 48)", _fix(
        "RESET_GPU", "Follow Xid 63/64 (row remapping: nvidia-smi -q -d ROW_REMAPPER).")),
    172: ("ras_uncorrectable", HARD, "Xid 172: uncorrectable SRAM error (with Xid 48)", _fix(
        "RESET_GPU", "Check nvidia-smi -q -d ECC (SRAM threshold exceeded): if set, run the field diagnostic and "
        "replace the GPU.")),
}
XIDS.update(_engines((39, 40, 41, 70, 71, 72, 75, 76, 77, 85), ["copy engine (CE%d)" % n for n in range(10)]))
XIDS.update(_engines(range(126, 136), ["copy engine (CE%d)" % n for n in range(10, 20)]))
XIDS.update(_engines((68, 83, 84, 88, 89, 96, 97, 98), ["video decoder (NVDEC%d)" % n for n in range(8)]))
XIDS.update(_engines((82, 99, 100, 101, 102, 103, 104, 105), ["JPEG engine (NVJPG%d)" % n for n in range(8)]))
XIDS.update(_engines((86, 139), ["optical flow engine (OFA%d)" % n for n in range(2)]))

# Informational: no finding. 14 "Fake or injected error from userspace" (IGNORE), 106/107 SMBPBI test messages
# (IGNORE / IGNORE), 162 power smoothing re-engaged (the end of 163).
INFORMATIONAL = {
    14: "Xid 14: injected (fake) error",
    106: "Xid 106: SMBPBI test message",
    107: "Xid 107: SMBPBI test message (silent)",
    162: "Xid 162: power smoothing circuitry re-engaged",
}

# NVLink 5 Xids the driver prints as Nonfatal ("<Xid>, <subcode> Nonfatal XC0 i0 Link NN (...)"): the catalog's
# "XID 144-150 Decode" gives every Non-fatal row IGNORE, or XID_154_EVAL (an Xid 154 says what to do, else
# RESTART_APP): soft; a Fatal one (or one the driver promotes to Fatal) stays hard (XIDS).
NVLINK5_NONFATAL = dict(
    (xid, ("nvlink_error", SOFT, XIDS[xid][2] + " (non-fatal)", _fix(
        "IGNORE", "Non-fatal: if an Xid 154 follows, do what it says; check nvidia-smi nvlink -e if it repeats.")))
    for xid in range(144, 151))

# Xids judged harder than the catalog's immediate action, and why. A preflight decides whether a GPU takes the next
# multi-hour step, not whether the running application may go on: a contained ECC error leaves a memory row that
# is repaired only by the reset the catalog recommends "when convenient", and the pipeline cannot tell whether its
# next step will land on it (akash-network/support#244: the operator had to reboot the node).
STRICTER_THAN_CATALOG = {
    94: "contained ECC error: the faulty memory stays in use until the GPU is reset",
}

# Xid 94 whose line says the driver wants the GPU reset: its "RST: Yes" / "D-RST: Yes" are bGpuResetReqd and
# bGpuDrainAndResetReqd (open-gpu-kernel-modules src/nvidia/src/kernel/gpu/arch/*/kern_gpu_error_cont_*.c): hard,
# with the driver's own words. ("RST: No, D-RST: No" is the contained case: XIDS, hard too, STRICTER_THAN_CATALOG.)
RESET_ASKED = {
    94: ("ras_uncorrectable", HARD, "Xid 94: contained ECC error, the driver asks for a GPU reset", _fix(
        "RESET_GPU", "The driver printed RST: Yes or D-RST: Yes (drain the GPU, then reset it); check "
        "nvidia-smi -q -d ECC,ROW_REMAPPER.")),
}

# An Xid the table does not know ("%d" is the number). Hard: what the catalog lists and the table leaves out is
# "Unused" from Ampere on (CONTACT_SUPPORT: not expected on a healthy GPU), and the numbers NVIDIA adds are new
# hardware, firmware and link error classes (most of 143-172 were); the informational ones are listed above, so an unknown
# number is never one NVIDIA calls harmless. A preflight must not put work on a GPU in an error state it cannot
# judge; preflight_downgrade: [kernel_log] softens it while the Xid is looked up.
UNKNOWN_XID = ("gpu_error", HARD, "Xid %d (not in the Xid table)", (
    "Look the Xid up in NVIDIA's Xid catalog (docs.nvidia.com/deploy/xid-errors): an Xid it lists as Unused means "
    "contact support. Until it is known, reset the GPU (nvidia-smi -r) or reboot before new work, or downgrade "
    "kernel_log (preflight_downgrade) if the catalog says the GPU may keep working."))

ROWS = [
    # Xid 154 says what the GPU needs now: back to None means it recovered.
    ("gpu_reset", "xid", _XID + r"154\b.*?\bto 0x0+ \(None\)", "GPU recovered (Xid 154: recovery action None)",
     {"role": "recovered", "xid": 154}),
    ("recovery_required", "xid", _XID + r"154\b.*?\bto 0x[0-9a-f]+ \((?P<hung>[^)]*)\)",
     "Xid 154: GPU needs recovery", {"role": "hang", "xid": 154}),
    # Xid 94 that asks for a reset (RST: Yes / D-RST: Yes) says so; one that does not is XIDS's (hard as well).
    ("ras_uncorrectable", "xid", _XID + r"(?P<xid>94),.*?\bRST: Yes\b", "Xid", {"lookup": RESET_ASKED, "unknown": UNKNOWN_XID}),
    # NVLink 5 Xids the driver calls Nonfatal (before the generic row: a Fatal one is XIDS's, hard).
    ("nvlink_error", "xid", _XID + r"(?P<xid>14[4-9]|150),(?:\s*pid=[^,]*,\s*name=[^,]*,)?\s*[A-Z0-9_/]+\s+Non-?fatal\b", "Xid",
     {"lookup": NVLINK5_NONFATAL, "unknown": UNKNOWN_XID}),
    # Every other Xid: looked up in XIDS; "caused by previous Xid N" is judged as Xid N; informational ones are none.
    ("gpu_error", "xid", _XID + r"(?P<xid>\d{1,4})\b(?:.*?\bcaused by previous Xid (?P<cause>\d{1,4}))?",
     "Xid", {"lookup": XIDS, "unknown": UNKNOWN_XID, "ignore": INFORMATIONAL, "gpu": {"bus_lost": "lost"}}),
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
    # Another driver holds NVIDIA GPUs: the NVIDIA driver never saw them ("The NVIDIA probe routine was not called
    # for %d device(s)."). Soft, host level: the line cannot tell nouveau holding every GPU (none usable) from a GPU
    # bound to vfio-pci on purpose; the GPU facts say which GPU has which driver (no nvidia driver bound: degraded).
    ("init_failed", "probe", r"\bNVIDIA probe routine was not called for \d+ device", "NVIDIA GPUs held by another "
     "driver (the NVIDIA probe was not called)", {"own": True, "severity": SOFT, "fix": _FIXES_BY_WORDING["probe not called"]}),
    # A client of another driver version than the kernel module ("NVRM: API mismatch: the client has the version
    # 570.153.02, but / NVRM: this kernel module has the version 570.144", or "the client 'kwin_wayland' (pid 1005)"):
    # that client fails. Soft, host level: after a driver update without a reboot every client fails, and nvidia-smi
    # says so itself ("Driver/library version mismatch"); a container with its own driver libraries fails alone, and
    # the line stays in the log after the modules are reloaded.
    ("init_failed", "api mismatch", r"\bNVRM: API mismatch\b", "NVIDIA driver version mismatch (a user-space client "
     "and the kernel module)", {"severity": SOFT, "fix": _FIXES_BY_WORDING["api mismatch"]}),
    # The same for the NVSwitch / NVLink core drivers and their user-space client, nvidia-fabricmanager
    # ("nvidia-nvswitch: Version mismatch, kernel version 450.80.02 user version 450.51.06"): the fabric manager cannot
    # start, and CUDA on an NVSwitch system then fails with 802 (system not yet initialized), which nvidia-smi reports.
    ("init_failed", "version mismatch, kernel version", r"\bnvidia-nv(?:switch|link): (?:\w+: )?version mismatch, "
     r"kernel version \S+ user version", "NVSwitch driver and nvidia-fabricmanager of different versions",
     {"severity": SOFT, "fix": _FIXES_BY_WORDING["fabric mismatch"]}),
    # The driver loaded with no GPU to drive: soft, host level. A GPU that failed says so on its own (hard) lines
    # before these; with none, there is no NVIDIA GPU for it (or they are bound to vfio-pci on purpose).
    ("init_failed", "no nvidia", r"\bNo NVIDIA (?:GPU found|graphics adapter (?:found|probed)|devices probed)",
     "the NVIDIA driver found no GPU to drive", {"own": True, "severity": SOFT, "fix": _FIXES_BY_WORDING["no gpu"]}),
    ("init_failed", "init module failed", r"\bNVIDIA init module failed\b", "the NVIDIA driver found no GPU to drive",
     {"own": True, "severity": SOFT, "fix": _FIXES_BY_WORDING["no gpu"]}),
    # The PCI core could not bring the GPU back from D3cold (runtime power management, a VM hand-over): its config
    # space reads all-ones and it is gone until the node is power-cycled. Kernels 6.x: "Unable to change power state
    # from D3cold to D0, device inaccessible"; older ones: "can't change power state ... (config space inaccessible)".
    ("bus_lost", "inaccessible", r"(?:^|\s)nvidia " + _BDF + r": .*\b(?:device|config space) inaccessible\b",
     "GPU inaccessible on the PCIe bus (it did not power up)", {"gpu": "lost"}),
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
    # The driver's own status codes in its assertion lines ("NVRM: nvAssertOkFailedNoLog: Assertion failed: GPU lost
    # from the bus [NV_ERR_GPU_IS_LOST] (0x0000000F) returned from ..."), printed with or without an Xid: the GPU is
    # named by its index at most (GPU0), so the findings are the host's.
    ("bus_lost", "nv_err_gpu_is_lost", r"\[NV_ERR_GPU_IS_LOST\]", "the NVIDIA driver reports a GPU lost from the bus "
     "(NV_ERR_GPU_IS_LOST)", {"own": True}),
    ("recovery_required", "nv_err_reset_required", r"\[NV_ERR_RESET_REQUIRED\]", "the NVIDIA driver refuses work "
     "until a GPU is reset (NV_ERR_RESET_REQUIRED)", {"own": True, "role": "hang", "fix": _FIXES_BY_WORDING["reset required"]}),
    # nvidia-uvm's global fatal error (nv_gpu_ops.c nvGpuOpsReportFatalError): UVM refuses work on every GPU until the
    # node reboots; CUDA fails while nvidia-smi may still look healthy.
    ("recovery_required", "uvm encountered global fatal error", r"\buvm encountered global fatal error 0x[0-9a-f]+",
     "nvidia-uvm fatal error: a reboot is required", {"fix": _FIXES_BY_WORDING["uvm fatal"]}),
    # NVLink discovery failed at driver load (knvlinkDiscoverPostRxDetLinks_GH100: "Getting peer0's postRxDetLinkMask
    # failed!", and knvlinkUpdatePostRxDetectLinkMask_*): the links to that peer stay down until a reboot; multi-GPU
    # work falls back to PCIe or fails. No Xid; the line names the peer by index: host level.
    ("nvlink_error", "postrx", r"\bknvlink\w*PostRx\w*:.*\bfailed\b", "NVLink discovery failed at driver load (links "
     "to a peer GPU down)", {"own": True, "fix": _FIXES_BY_WORDING["nvlink discovery"]}),
    # A GSP RPC timeout without Xid 119 (drivers before it, or printed beside it): the GPU's firmware did not answer.
    # These, the heartbeat timeouts below and NV_ERR_RESET_REQUIRED are hangs (role): naming no GPU, they join the one
    # GPU whose Xid 154 asks for a reset, and an Xid 154 back to None after them is a recovery (see _kernel_log).
    ("firmware_error", "rpcrecvpoll timedout", r"\brpcRecvPoll timedout for fn \d+", "GSP firmware RPC timed out",
     {"own": True, "role": "hang"}),
    ("firmware_error", "gsp rpc timeout", r"\bBack to back GSP RPC timeout detected", "GSP firmware RPC timed out "
     "repeatedly (GPU marked for reset)", {"own": True, "role": "hang"}),
    # "GSP RM heartbeat timed out" (_kgspRpcRecvPoll) and "_kgspIsHeartbeatTimedOut: Heartbeat timed out" (595.x);
    # the GPU is named by its index (GPU6), not its address.
    ("firmware_error", "heartbeat", r"\b(?:GSP RM heartbeat|_kgspIsHeartbeatTimedOut: Heartbeat) timed out\b",
     "GSP firmware heartbeat timed out", {"own": True, "role": "hang"}),
]

BENIGN = []
