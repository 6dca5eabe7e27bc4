# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""NVIDIA driver-load wordings without an Xid: real lines from public issues (each cited), and their verdicts."""

from __future__ import annotations

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _kernel_log as kl

H, S = kl.HARD, kl.SOFT


def shape(findings):
    return [(f["category"], f["severity"], f["bdf"], f["gpu_health"], f["count"]) for f in findings]


@pytest.mark.parametrize("lines, expected", [
    # system76/firmware-open#160 (kernel 5.x): the GPU did not come back from D3cold; RmInitAdapter fails after it.
    (["[  117.004655] nvidia 0000:01:00.0: can't change power state from D3cold to D0 (config space inaccessible)",
      "[  117.005518] NVRM: GPU 0000:01:00.0: RmInitAdapter failed! (0x23:0x56:624)"],
     [("bus_lost", H, "0000:01:00.0", "lost", 1), ("init_failed", H, "0000:01:00.0", None, 1)]),
    # bryansteiner/gpu-passthrough-tutorial#39 (kernel 6.x wording)
    (["[   87.412759] nvidia 0000:01:00.0: Unable to change power state from D3cold to D0, device inaccessible"],
     [("bus_lost", H, "0000:01:00.0", "lost", 1)]),
    # The same words from a function the NVIDIA driver does not hold name no GPU of the host's: no finding.
    # Bumblebee-Project/bbswitch#226 (no driver bound: the PCI core's own line), kata-containers#11708 (vfio-pci),
    # system76/firmware-open#259 (the card's USB and audio functions).
    (["[939156.023420] pci 0000:01:00.0: Unable to change power state from D3cold to D0, device inaccessible",
      "[586739.359281] vfio-pci 0000:01:00.0: Unable to change power state from D3cold to D0, device inaccessible",
      "kernel: xhci_hcd 0000:01:00.2: can't change power state from D3cold to D0 (config space inaccessible)",
      "kernel: snd_hda_intel 0000:01:00.1: can't change power state from D3cold to D0 (config space inaccessible)"],
     []),
    # Frogging-Family/nvidia-all#394 (595.x names the client; the message goes on on indented lines): soft, host level
    # (that client fails; nvidia-smi says so itself when it is the one).
    (["[    9.424670] NVRM: API mismatch: the client 'kwin_wayland' (pid 1005)",
      "               NVRM: has the version 595.84, but this kernel module has",
      "               NVRM: the version 595.80.  Please make sure that this",
      "               NVRM: kernel module and all NVIDIA driver components",
      "               NVRM: have the same version."],
     [("init_failed", S, None, None, 1)]),
    # stackhpc/ansible-slurm-appliance#287: rsyslog's one-line form (#012 for each newline).
    (["Jun 30 11:07:05 gpu-0 kernel: NVRM: API mismatch: the client has the version 535.54.03, but#012NVRM: this "
      "kernel module has the version 530.30.02.  Please#012NVRM: make sure that this kernel module and all NVIDIA "
      "driver#012NVRM: components have the same version."],
     [("init_failed", S, None, None, 1)]),
    # ValveSoftware/SteamOS#209: the NVIDIA module loaded on a host whose GPU is an AMD one: soft, host level.
    (["[  441.170986] NVRM: No NVIDIA graphics adapter found!",
      "[  441.171021] NVRM: NVIDIA init module failed!"],
     [("init_failed", S, None, None, 1), ("init_failed", S, None, None, 1)]),
    # NVIDIA/open-gpu-kernel-modules#489: notices of a working notebook GPU (the chipset notice, i915 waiting on a
    # PRIME fence): no finding.
    (["[    2.870841] NVRM objClInitPcieChipset: *** Chipset Setup Function Error!",
      "[   67.112494] Asynchronous wait on fence NVIDIA:nvidia.prime:0 timed out (hint:submit_notify [i915])"],
     []),
    # CachyOS/CachyOS-PKGBUILDS#1038 ("The system is stable"): the interrupt fallback is no finding.
    (["[    4.302611] NVRM: GPU 0000:01:00.0: Failed to enable MSI; falling back to PCIe virtual-wire interrupts."],
     []),
])
def test_driver_load_wordings(lines, expected):
    assert shape(kl.scan(lines, boot_time=0.0)) == expected


def test_probe_not_called_is_soft_and_names_the_other_driver():
    # mattshma/bigdata#133: nouveau owns the GPUs (the GPU facts make each of them degraded: no nvidia driver bound).
    findings = kl.scan(["[188549.976351] NVRM: The NVIDIA probe routine was not called for 3 device(s)."], boot_time=0.0)
    assert shape(findings) == [("init_failed", S, None, None, 1)]
    assert "nouveau" in findings[0]["fix"] and findings[0]["vendor"] == "nvidia"


def test_api_mismatch_fix_says_reboot_or_reload():
    findings = kl.scan(["NVRM: API mismatch: the client has the version 570.153.02, but"], vendors="nvidia")
    assert findings and "Reboot" in findings[0]["fix"] and "mismatch" in findings[0]["summary"]
    assert findings[0]["severity"] == S
    # an AMD-only scan does not read NVIDIA's rows
    assert kl.scan(["NVRM: API mismatch: the client has the version 570.153.02, but"], vendors="amd") == []


@pytest.mark.parametrize("line, category", [
    # scitix/sichek#51: CUDA "busy or unavailable" on one GPU, no Xid in the excerpt.
    ("[Sun Jan 11 09:52:01 2026] NVRM: nvAssertOkFailedNoLog: Assertion failed: Reset required [NV_ERR_RESET_REQUIRED] "
     "(0x00000062) returned from status @ kernel_channel.c:2874 ", "recovery_required"),
    # NVIDIA/open-gpu-kernel-modules#1342 (RTX 5090, 610.57.04): UVM refuses work until a reboot.
    ("NVRM: nvGpuOpsReportFatalError: uvm encountered global fatal error 0x60, requiring os reboot to recover.",
     "recovery_required"),
])
def test_driver_status_lines_without_an_xid_are_hard_and_host_level(line, category):
    findings = kl.scan([line], boot_time=0.0)
    assert shape(findings) == [(category, H, None, None, 1)]
    assert "reboot" in findings[0]["fix"]


GSP = [
    # NVIDIA/open-gpu-kernel-modules#446 (talosctl dmesg), restamped: no Xid 119, then Xid 154 asks for a reset.
    "[ 10.0] NVRM: nvAssertFailedNoLog: Assertion failed: Back to back GSP RPC timeout detected! GPU marked for reset "
    "@ kernel_gsp.c:2387",
    "[ 10.1] NVRM: _issueRpcAndWait: rpcRecvPoll timedout for fn 76 sequence 4129!",
    "[ 10.2] NVRM: Xid (PCI:0000:0b:00): 154, GPU recovery action changed from 0x0 (None) to 0x1 (GPU Reset Required)",
    "[ 20.0] NVRM: nvAssertOkFailedNoLog: Assertion failed: Reset required [NV_ERR_RESET_REQUIRED] (0x00000062) returned "
    "from pRmApi",
]


def test_gsp_timeouts_stay_hard_until_the_gpu_recovers():
    assert [(f["category"], f["severity"], f["bdf"]) for f in kl.scan(GSP, boot_time=0.0)] == [
        ("firmware_error", H, None), ("firmware_error", H, None), ("recovery_required", H, "0000:0b:00"),
        ("recovery_required", H, None)]
    # hand-made end: the recovery action back to None after the reset: ONE recovered reset of that GPU, soft
    recovered = GSP + ["[ 90.0] NVRM: Xid (PCI:0000:0b:00): 154, GPU recovery action changed from 0x1 (GPU Reset "
                       "Required) to 0x0 (None)"]
    findings = kl.scan(recovered, boot_time=0.0)
    assert [(f["category"], f["severity"], f["bdf"], f["recovered"]) for f in findings] == [
        ("gpu_reset", S, "0000:0b:00", True)]
    assert findings[0]["hung"].startswith("GSP firmware RPC timed out")


def test_nvlink_discovery_failure_at_load_is_hard_and_host_level():
    # leptonai/gpud#1271 (a production journal line; gpud#1272 reports the node unhealthy and recommends a reboot)
    line = "Jul 09 10:42:47 pool0-0082 kernel: NVRM: knvlinkDiscoverPostRxDetLinks_GH100: Getting peer0's postRxDetLinkMask failed!"
    findings = kl.scan([line], boot_time=0.0)
    assert shape(findings) == [("nvlink_error", H, None, None, 1)]
    assert "reboot" in findings[0]["fix"] and findings[0]["message"].startswith("NVRM: knvlinkDiscoverPostRxDetLinks_GH100")
    # the same function's healthy notices give nothing
    assert kl.scan(["NVRM: knvlinkDiscoverPostRxDetLinks_GH100: peer0 postRxDetLinkMask 0x3ffff"], boot_time=0.0) == []


def test_nvswitch_version_mismatch_is_a_soft_host_warning():
    # NVIDIA/gpu-operator#121 (its title quotes the kernel line): the fabric manager of another driver version
    line = "[  123.456789] nvidia-nvswitch: Version mismatch, kernel version 450.80.02 user version 450.51.06"
    findings = kl.scan([line], boot_time=0.0)
    assert shape(findings) == [("init_failed", S, None, None, 1)]
    assert "fabric manager" in findings[0]["fix"]


def test_gsp_heartbeat_timeout_then_reset_and_recovery_is_one_recovered_reset():
    # Hand-made after the sequence of NVIDIA/open-gpu-kernel-modules#1353 (GSP heartbeat timeout, Xid 154 asking for a
    # reset), ending with the recovery action back to None. Without that end the heartbeat stays hard.
    lines = ["[ 10.0] NVRM: GPU0 _kgspRpcRecvPoll: GSP RM heartbeat timed out (diff ~8000ms > timeout 5200ms)",
             "[ 10.1] NVRM: Xid (PCI:0000:01:00): 154, GPU recovery action changed from 0x0 (None) to 0x1 (GPU Reset "
             "Required)"]
    assert [(f["category"], f["severity"]) for f in kl.scan(lines, boot_time=0.0)] == [
        ("firmware_error", H), ("recovery_required", H)]
    lines.append("[ 60.0] NVRM: Xid (PCI:0000:01:00): 154, GPU recovery action changed from 0x1 (GPU Reset Required) "
                 "to 0x0 (None)")
    findings = kl.scan(lines, boot_time=0.0)
    assert [(f["category"], f["severity"], f["bdf"], f["recovered"]) for f in findings] == [
        ("gpu_reset", S, "0000:01:00", True)]
