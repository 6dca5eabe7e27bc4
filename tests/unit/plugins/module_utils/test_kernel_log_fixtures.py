"""Every kernel log in the shared fixture folders, with its written expectation.

One entry per file: its findings in order, each as (category, severity, GPU address, NVIDIA Xid,
line count). Healthy boots give no finding. A log added to these folders without an entry here
fails ``test_every_log_has_an_expectation``.
"""

from __future__ import annotations

import pathlib
import re

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _kernel_log as kl
from ansible_collections.gpuops.preflight.plugins.module_utils import _kernel_time

FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "fixtures"
FOLDERS = (FIXTURES / "gpu" / "dmesg", FIXTURES / "kernel_log_healthy", FIXTURES / "training" / "kernel-nvidia")
H, S = kl.HARD, kl.SOFT


def load(path):
    """A fixture's log lines: the recorder's '# ' header comments are not part of the log."""
    return [line for line in path.read_text(encoding="utf-8").split("\n") if not line.startswith("# ")]


def logs():
    return sorted((p for folder in FOLDERS for p in folder.glob("*") if p.is_file() and p.suffix != ".md"),
                  key=lambda p: p.name)


def shape(findings):
    return [(f["category"], f["severity"], f["bdf"], f["xid"], f["count"]) for f in findings]


EXPECTED = {
    # Corrected AER errors (soft, host level: the port's lines) before the GPU fails to initialise.
    'corrected_aer_navi_switch_mes_kiq_test_failed_fatal_init_coreboot-4.txt': [
        ('pcie_error', S, None, None, 1),
        ('pcie_error', S, None, None, 1),
        ('gpu_hang', H, '0000:03:00.0', None, 1),
        ('init_failed', H, None, None, 1),
        ('init_failed', H, '0000:03:00.0', None, 1),
    ],
    # The first six lines are the tail of a fault whose header was cut: not counted again.
    'gcvm_l2_protection_fault_opencl_legacy-rocm-build-2766.txt': [
        ('page_fault', S, '0000:83:00.0', None, 1),
    ],
    'mi300x_aca_uncorrectable_hw_error_legacy-rocm-build-4021.txt': [
        ('ras_uncorrectable', H, '0000:dd:00.0', None, 1),
        ('ras_uncorrectable', H, '0000:4e:00.0', None, 2),
    ],
    # A table of messages with counts: each row is one occurrence (the count column is not parsed).
    'mi300x_smu_0xffffffff_failed_read_reg_counts_ROCm-4268.txt': [
        ('register_access_failed', H, None, None, 3),
        ('smu_message_failed', H, None, None, 1),
        ('register_access_failed', H, None, None, 1),
        ('smu_no_response', H, None, None, 1),
    ],
    'navi33_smu_no_response_msg_reg_ring_timeout_cachyos-1002.txt': [
        ('smu_no_response', H, '0000:03:00.0', None, 1),
        ('smu_message_failed', H, '0000:03:00.0', None, 1),
        ('ring_timeout', S, '0000:03:00.0', None, 1),
    ],
    # 'response 0xffffffc2' is -ETIME: the SMU never answered; the metrics export failing after it is the follow-up.
    'powerplay_failed_send_message_response_0xffffffc2_sysfs_read_oserror_amdgpu-fan-22.txt': [
        ('smu_no_response', H, None, None, 1),
        ('smu_message_failed', H, None, None, 1),
    ],
    # smu7 powerplay: 'ret is 0' means the SMU never answered (response register still 0).
    'powerplay_failed_to_send_pre_message_rx590_freebsd-kms-drm-216.txt': [
        ('smu_no_response', H, None, None, 2),
        ('smu_no_response', H, None, None, 2),
    ],
    # Ring timeout -> ring reset -> 'Ring reset succeeded' -> 'device wedged, but recovered':
    # ONE recovered reset (soft); the page fault that follows is its own finding.
    'ring_comp_timeout_ring_reset_device_wedged_rocm7.2_legacy-rocm-build-5997.txt': [
        ('gpu_reset', S, '0000:03:00.0', None, 1),
        ('page_fault', S, '0000:03:00.0', None, 1),
    ],
    'ring_gfx_timeout_kiq_test_failed_rx6800_rocm5.2_rocm-arch-829.txt': [
        ('ring_timeout', S, None, None, 1),
        ('ring_timeout', S, None, None, 1),
        ('gpu_reset', S, '0000:0c:00.0', None, 1),
        ('gpu_hang', H, None, None, 1),
        ('gpu_hang', H, '0000:0c:00.0', None, 2),
        ('gpu_hang', H, None, None, 1),
    ],
    # Ring reset failed, full reset begun, MES hung: no success line follows, so nothing is folded.
    'ring_gfx_timeout_ring_reset_failed_gpu_reset_mes_bazzite-4464.txt': [
        ('ring_timeout', S, '0000:08:00.0', None, 1),
        ('gpu_reset', S, '0000:08:00.0', None, 1),
        ('gpu_reset_failed', H, '0000:08:00.0', None, 1),
        ('gpu_reset', S, '0000:08:00.0', None, 1),
        ('gpu_hang', H, '0000:08:00.0', None, 1),
        ('gpu_hang', H, '0000:08:00.0', None, 1),
        ('gpu_hang', H, None, None, 1),
    ],
    # Two GPUs hang together; mode1 and ASIC resets fail, 'trying to resume' is not enough after a
    # failed reset step, and the PSP resume fails: nothing is folded, everything stays.
    'rocm5.7_2x7900xtx_pagefault_mes_gpureset_smu_0xffffffff_ROCm-2494.txt': [
        ('page_fault', S, None, None, 1),
        ('page_fault', S, None, None, 1),
        ('page_fault', S, '0000:03:00.0', None, 1),
        ('page_fault', S, '0000:83:00.0', None, 2),
        ('gpu_hang', H, None, None, 3),
        ('gpu_hang', H, None, None, 2),
        ('gpu_hang', H, None, None, 2),
        ('gpu_hang', H, None, None, 2),
        ('gpu_reset', S, '0000:03:00.0', None, 1),
        ('gpu_reset', S, '0000:83:00.0', None, 1),
        ('gpu_hang', H, '0000:83:00.0', None, 1),
        ('gpu_hang', H, '0000:03:00.0', None, 1),
        ('gpu_hang', H, None, None, 2),
        ('gpu_hang', H, '0000:03:00.0', None, 1),
        ('gpu_hang', H, '0000:83:00.0', None, 1),
        ('gpu_reset', S, '0000:83:00.0', None, 1),
        ('gpu_reset', S, '0000:03:00.0', None, 1),
        ('smu_no_response', H, '0000:83:00.0', None, 1),
        ('smu_message_failed', H, '0000:83:00.0', None, 1),
        ('smu_message_failed', H, '0000:83:00.0', None, 1),
        ('smu_no_response', H, '0000:03:00.0', None, 1),
        ('smu_message_failed', H, '0000:03:00.0', None, 1),
        ('smu_message_failed', H, '0000:03:00.0', None, 1),
        ('gpu_hang', H, None, None, 1),
        ('gpu_hang', H, None, None, 2),
        ('gpu_reset_failed', H, None, None, 2),
        ('gpu_reset', S, '0000:83:00.0', None, 1),
        ('gpu_reset', S, '0000:83:00.0', None, 1),
        ('gpu_reset', S, '0000:83:00.0', None, 1),
        ('smu_no_response', H, '0000:83:00.0', None, 1),
        ('gpu_reset_failed', H, '0000:83:00.0', None, 1),
        ('gpu_reset', S, '0000:03:00.0', None, 1),
        ('gpu_reset', S, '0000:03:00.0', None, 1),
        ('gpu_reset', S, '0000:03:00.0', None, 1),
        ('smu_no_response', H, '0000:03:00.0', None, 1),
        ('gpu_reset_failed', H, '0000:03:00.0', None, 1),
        ('gpu_reset_failed', H, '0000:83:00.0', None, 1),
        ('gpu_reset_failed', H, '0000:03:00.0', None, 1),
        ('gpu_reset', S, '0000:83:00.0', None, 1),
        ('gpu_reset', S, None, None, 2),
        ('gpu_reset', S, '0000:03:00.0', None, 1),
        ('init_failed', H, None, None, 2),       # "PSP create ring failed!" at resume
        ('gpu_reset_failed', H, None, None, 2),
        ('gpu_reset_failed', H, None, None, 2),
    ],
    'sdma_timeout_mes_failed_rdna3_rocm5.7_legacy-rocm-build-2533.txt': [
        ('ring_timeout', S, None, None, 1),
        ('gpu_reset', S, '0000:0a:00.0', None, 1),
        ('gpu_hang', H, None, None, 1),
        ('gpu_hang', H, None, None, 1),
        ('gpu_hang', H, None, None, 1),
        ('gpu_hang', H, None, None, 1),
    ],
    'sdma_timeout_qcm_fence_evict_failed_kiq_bc250_legacy-rocm-build-6313.txt': [
        ('ring_timeout', S, '0000:01:00.0', None, 1),
        ('gpu_reset', S, '0000:01:00.0', None, 1),
        ('gpu_hang', H, '0000:01:00.0', None, 2),
        ('gpu_hang', H, '0000:01:00.0', None, 1),
        ('gpu_hang', H, '0000:01:00.0', None, 1),
        ('gpu_hang', H, None, None, 1),
        ('gpu_hang', H, '0000:01:00.0', None, 1),
    ],
    # pciehp Link Down / Card not present and the bridges' 'device inaccessible': host level (no GPU).
    # 'Card not present' alone is soft (any slot prints it); the Link Down before it stays hard.
    'smu_0xffffffff_hanged_state_pcie_link_down_lkml-2025-11.txt': [
        ('bus_lost', H, None, None, 1),
        ('bus_lost', S, None, None, 1),
        ('smu_no_response', H, '0000:03:00.0', None, 1),
        ('smu_message_failed', H, '0000:03:00.0', None, 1),
        ('smu_no_response', H, '0000:03:00.0', None, 1),
        ('smu_message_failed', H, '0000:03:00.0', None, 1),
        ('smu_message_failed', H, None, None, 1),
        ('bus_lost', H, '0000:03:00.0', None, 1),
        ('bus_lost', H, '0000:03:00.0', None, 1),
        ('gpu_reset_failed', H, '0000:03:00.0', None, 1),
        ('gpu_reset_failed', H, '0000:03:00.0', None, 1),
        ('bus_lost', H, None, None, 1),
        ('bus_lost', H, None, None, 1),
    ],
    'smu_not_done_export_metrics_ring_gfx_timeout_legacy-rocm-build-2196.txt': [
        ('smu_message_failed', H, '0000:0d:00.0', None, 3),
        ('smu_message_failed', H, '0000:0d:00.0', None, 3),
        ('smu_message_failed', H, '0000:0d:00.0', None, 1),
        ('ring_timeout', S, None, None, 1),
    ],
    'smu_resume_failed_smc_not_ready_mi100_ROCm-amdgpu-183.txt': [
        ('smu_no_response', H, '0000:03:00.0', None, 1),
        ('smu_no_response', H, '0000:03:00.0', None, 1),
        ('gpu_reset_failed', H, '0000:03:00.0', None, 1),
        ('gpu_reset_failed', H, '0000:03:00.0', None, 1),
        ('smu_no_response', H, '0000:83:00.0', None, 1),
    ],
    'vm_l2_protection_fault_mmhub_ROCm-amdgpu-150.txt': [
        ('page_fault', S, '0000:88:00.0', None, 2),
    ],
    'vm_l2_protection_fault_no_retry_ROCm-amdgpu-172.txt': [
        ('page_fault', S, '0000:c6:00.0', None, 2),
    ],
    # MI50, dmesg -T: an ATHUB RAS interrupt (uncorrectable), the reset begun, the SMU never answering (response 0x0)
    # and powerplay failing to disable its features; "MEM/SRAM ECC is active" is no finding.
    'mi50_athub_ras_uncorrectable_reset_smu_response_0_dmesg-T_legacy-rocm-build-1886.txt': [
        ('ras_uncorrectable', H, '0000:e3:00.0', None, 1),
        ('gpu_reset', S, '0000:e3:00.0', None, 1),
        ('smu_no_response', H, '0000:e3:00.0', None, 2),
        ('smu_message_failed', H, None, None, 1),
        ('smu_message_failed', H, None, None, 1),
        ('smu_message_failed', H, None, None, 1),
    ],
    # KFD's queue preemption times out every 4 s: the HIQ line names the GPU (hard hang); the eviction failures after
    # it name none.
    'kfd_hiq_queue_preemption_timeout_evict_failed_ollama-738.txt': [
        ('gpu_hang', H, '0000:03:00.0', None, 6),
        ('gpu_hang', H, None, None, 3),
    ],
    # Strix Halo (MES 0x83): MES stops answering, queues cannot be evicted, a reset begins (no end in the excerpt);
    # "Freeing queue vital buffer" is no finding.
    'strix_halo_mes_remove_queue_evict_failed_gpu_reset_legacy-rocm-build-5724.txt': [
        ('gpu_hang', H, '0000:c5:00.0', None, 2),
        ('gpu_hang', H, '0000:c5:00.0', None, 1),
        ('gpu_hang', H, '0000:c5:00.0', None, 1),
        ('gpu_hang', H, '0000:c5:00.0', None, 2),
        ('gpu_hang', H, '0000:c5:00.0', None, 1),
        ('gpu_reset', S, '0000:c5:00.0', None, 1),
        ('gpu_hang', H, None, None, 1),
        ('gpu_hang', H, '0000:c5:00.0', None, 1),
    ],
    # amdgpu.gpu_recovery=0: two ring timeouts (no address), each followed by "GPU recovery disabled." on 06:00.0:
    # the hang stays, and the GPU is degraded until a reboot.
    'ring_timeout_gpu_recovery_disabled_syslog_nixpkgs-176915-r9-280x.txt': [
        ('ring_timeout', S, None, None, 1),
        ('gpu_hang', H, '0000:06:00.0', None, 2),
        ('ring_timeout', S, None, None, 1),
    ],
    # Pasted without stamps: sdma0 timeout (no address), reset begun on 33:00.0, MODE2, "GPU reset succeeded, trying
    # to resume" and a clean resume: ONE recovered reset (soft).
    'sdma_timeout_mode2_reset_resumed_no_stamps_yoga-linux-38.txt': [
        ('gpu_reset', S, '0000:33:00.0', None, 1),
    ],
    # Older wording (no "amdgpu:" tag): vce0 timeout, reset, a suspend step failed, MODE1 reset, "trying to resume"
    # (not enough after a failed step), the VCE ring test and resume fail, "GPU reset(1) failed": nothing recovered.
    'vce0_timeout_mode1_reset_resume_failed_libva-utils-291.txt': [
        ('ring_timeout', S, None, None, 1),
        ('gpu_reset', S, '0000:03:00.0', None, 1),
        ('gpu_reset_failed', H, None, None, 1),
        ('gpu_reset', S, '0000:03:00.0', None, 1),
        ('gpu_reset', S, '0000:03:00.0', None, 1),
        ('gpu_hang', H, '0000:03:00.0', None, 1),
        ('gpu_reset_failed', H, None, None, 1),
        ('gpu_reset_failed', H, '0000:03:00.0', None, 1),
        ('gpu_reset_failed', H, '0000:03:00.0', None, 1),
    ],
    # RX 480 mining rig (Linux dmesg): smu7 prints "amdgpu:" and its message on an indented second line, every
    # 2 s: the SMU never answers (ret is 0), hard; the GPU could not be reset.
    'rx480_smu7_multiline_failed_to_send_message_ret_0_acominer-9.txt': [
        ('smu_no_response', H, None, None, 2),
        ('smu_no_response', H, None, None, 2),
    ],
    # Polish journal ("maj 08"): gfx ring timeout, per-queue ring reset succeeded, "device wedged, but recovered":
    # ONE recovered reset (soft); the excerpt ends at the start of a second dump.
    'apu_ring_reset_wedged_recovered_journal_pl_locale_llama.cpp-21724.txt': [
        ('gpu_reset', S, '0000:c2:00.0', None, 1),
    ],
    # Journal, smu7 powerplay on two lines each: "ret is 65535" is the 16-bit response field read as all-ones (the
    # SMU no longer answers), as "ret is 0" is no answer: smu_no_response, hard.
    'smu7_ret_65535_all_ones_after_gfx_timeout_journal_mesa-183.txt': [
        ('ring_timeout', S, None, None, 1),
        ('gpu_reset', S, '0000:1d:00.0', None, 1),
        ('smu_no_response', H, None, None, 4),
        ('smu_no_response', H, None, None, 3),
    ],
    # dmesg -T, kernel 6.16: the per-queue reset fails because MES does not answer RESET, a full reset begins and MES
    # does not answer REMOVE_QUEUE either (the excerpt ends there): hard, nothing recovered yet.
    'navi33_mes_no_reset_ring_reset_failed_gpu_reset_dmesg-T_steamos-2802.txt': [
        ('ring_timeout', S, '0000:03:00.0', None, 1),
        ('gpu_reset', S, '0000:03:00.0', None, 1),
        ('gpu_hang', H, '0000:03:00.0', None, 1),
        ('gpu_reset_failed', H, '0000:03:00.0', None, 1),
        ('gpu_reset', S, '0000:03:00.0', None, 1),
        ('gpu_hang', H, '0000:03:00.0', None, 1),
    ],
    # The PSP did not start at load (no "hw_init of IP block <psp> failed" in the excerpt): the GPU has no firmware.
    'mi210_psp_create_ring_failed_dmesg-T_legacy-rocm-build-2747.txt': [
        ('init_failed', H, None, None, 1),
    ],
    # dmesg -T: reset begun, KIQ dead, the SMU busy: hard, nothing recovered.
    'navi_gpu_reset_kiq_smu_not_done_dmesg-T_nixpkgs-176915.txt': [
        ('gpu_reset', S, '0000:03:00.0', None, 1),
        ('smu_message_failed', H, '0000:03:00.0', None, 1),
        ('gpu_hang', H, '0000:03:00.0', None, 2),
        ('smu_message_failed', H, '0000:03:00.0', None, 1),
        ('smu_message_failed', H, '0000:03:00.0', None, 1),
    ],
    # talosctl dmesg with the kmsg dictionary lines (" SUBSYSTEM=pci", " DEVICE=+pci:...") between the messages.
    # The missing firmware file is named on the GPU's own line (its finding tells to install the firmware).
    'carrizo_gfx_firmware_missing_talosctl_dmesg_talos-8072.txt': [
        ('init_failed', H, '0000:00:01.0', None, 1),
        ('init_failed', H, None, None, 1),
        ('init_failed', H, '0000:00:01.0', None, 1),
    ],
    # syslog without a host name ("Feb  2 08:03:20 kernel: [...]"); the excerpt ends at the MODE1 reset.
    'ring_gfx_timeout_kiq_mode1_syslog_no_host_pop-2132.txt': [
        ('ring_timeout', S, None, None, 1),
        ('ring_timeout', S, None, None, 1),
        ('gpu_reset', S, '0000:03:00.0', None, 1),
        ('gpu_hang', H, '0000:03:00.0', None, 2),
        ('gpu_hang', H, None, None, 1),
        ('gpu_reset', S, '0000:03:00.0', None, 1),
    ],
    # Ring reset failed -> full (BACO) reset -> "GPU reset succeeded, trying to resume": recovered (soft); the
    # excerpt ends on "VRAM is lost", printed while that reset resumes the GPU: part of the same recovery.
    'rx5700xt_ring_reset_failed_baco_reset_resume_cosmic-epoch-3764.txt': [
        ('gpu_reset', S, '0000:28:00.0', None, 1),
    ],
    'rdna_boot_kern_log_syslog.txt': [
    ],
    'rx6600_2gpu_boot_dmesg.txt': [
    ],
    'rx6600_runtime_resume_journal.txt': [
    ],
    # A real runtime resume in plain dmesg, repeated all day on an idle card ("Flood in dmesg").
    'pop-1543_navi_runtime_resume_flood_dmesg.txt': [
    ],
    # A real runtime resume (DPMS off/on), dmesg -T: "SMU driver if version not matched" on every resume.
    'sway-6971_navi2x_dpms_runtime_resume_dmesg-T.txt': [
    ],
    # dmesg -T. Application Xids 43 (x2) and 31 soft; 94 (contained ECC error, "RST: No, D-RST: No") hard: the
    # catalog's RESTART_APP, but its memory is repaired only by a reset (STRICTER_THAN_CATALOG; the reporter
    # rebooted the node). NVRM's partial addresses.
    'akash-support-244_multi_gpu_535.183.01_dmesg-T_xid43_xid31_xid94.txt': [
        ('app_fault', S, '0000:00:05', 43, 2),
        ('page_fault', S, '0000:00:07', 31, 1),
        ('ras_uncorrectable', H, '0000:00:08', 94, 1),
    ],
    # AER fatal error and Surprise Down on the root port (no GPU), then Xid 79 on the GPU behind it.
    'gpu-burn-1_k40m_390.30_dmesg_aer_surprise_down_xid79.txt': [
        ('pcie_error', S, None, None, 1),    # the corrected error a minute before
        ('pcie_error', H, None, None, 1),
        ('bus_lost', H, None, None, 1),
        ('bus_lost', H, '0000:02:00', 79, 1),
    ],
    # syslog: GPU 0a:00.0 never initialises (two wordings); Xid 48 + 64 on 07:00 (memory, RMA class).
    'gpu-operator-1146_syslog_xid48_dbe_xid64_rminitadapter_failed.txt': [
        ('init_failed', H, '0000:0a:00.0', None, 4),
        ('init_failed', H, '0000:0a:00.0', None, 3),
        ('ras_uncorrectable', H, '0000:07:00', 48, 1),
        ('memory_remap_failed', H, '0000:07:00', 64, 1),
    ],
    'ollama-1769_multi_gpu_dmesg_healthy_nvidia_drm_uvm_load.txt': [
    ],
    # No Xid: one three-line NVRM message names the GPU on its first line and says "fallen off the bus" on its
    # third (an indented continuation): the finding is that GPU's, and it is lost.
    'NVSentinel-155_570.158.01_dmesg_fallen_off_bus_multiline_no_xid.txt': [
        ('bus_lost', H, '0000:b3:00.0', None, 1),
        ('init_failed', H, None, None, 1),
    ],
    # dmesg with relative stamps ([  +0.000844]): a Fatal AER error (SDES, CmpltTO) on the root port is hard and
    # host level; "nvidia 0000:03:00.0: AER: can't recover" names the GPU behind it (soft by itself); the port's
    # "AER: device recovery failed" (x2) leaves what is behind it lost (hard, host level).
    'returnn-1500_dmesg-reltime_aer_fatal_sdes_nvidia_cant_recover.txt': [
        ('pcie_error', S, '0000:03:00.0', None, 2),
        ('bus_lost', H, None, None, 2),
        ('pcie_error', H, None, None, 1),
    ],
    # The open module refuses a GPU without GSP (an indented eight-line NVRM message), then the kernel 6.x probe
    # failure ("probe with driver nvidia failed"): the GPU is not initialised.
    'cosmic-epoch-3411_dmesg_open_module_gpu_without_gsp_probe_failed.txt': [
        ('init_failed', H, '0000:2c:00.0', None, 1),
    ],
    # Xid 79 and the Xid-less "GPU has fallen off the bus" on the same GPU (partial and full address); the crash-dump
    # note is an indented three-line message; the GPU's USB-C functions (nvidia-gpu, xhci_hcd) dying with it and a
    # corrected AER error are no findings of their own.
    'nvidia-docker-1553_dmesg_xid79_crash_dump_multiline_usbc_died.txt': [
        ('bus_lost', H, '0000:09:00', 79, 1),
        ('bus_lost', H, '0000:09:00.0', None, 1),
        ('pcie_error', S, None, None, 1),    # a corrected AER error later, on another port
    ],
    # 595.x GSP heartbeat timeout (the GPU named by index, GPU6): firmware error, host level.
    'open-gpu-kernel-modules-1230_595.71.05_dmesg_gsp_heartbeat_timeout.txt': [
        ('firmware_error', H, None, None, 2),
    ],
    # Xid 45 'caused by previous Xid 149/145': folded into the NVLink cause, which is what is judged.
    'open-gpu-kernel-modules-1150_590.48.01_journal_xid45_after_nvlink_xid149_xid145.txt': [
        ('nvlink_error', H, '0000:dc:00', 149, 2),
        ('nvlink_error', H, '0000:ed:00', 145, 2),
        ('nvlink_error', H, '0000:ba:00', 145, 2),
        ('nvlink_error', H, '0000:97:00', 145, 1),
    ],
    # amdkernel. RX 6800 XT (Sienna Cichlid), syslog with dmesg stamps, kernel 5.11: the display's fence waits and
    # the gfx ring time out (older DRM_ERROR lines: no address), a reset of 0000:0c:00.0 begins and the KIQ is dead;
    # the excerpt ends before any success line: the hang lines stay (hard KIQ), nothing folded.
    'rx6800xt_fence_gfx_timeout_kiq_reset_no_end_syslog_yuzu-2559.txt': [
        ('ring_timeout', S, None, None, 2),
        ('ring_timeout', S, None, None, 1),
        ('gpu_reset', S, '0000:0c:00.0', None, 1),
        ('gpu_hang', H, '0000:0c:00.0', None, 2),
    ],
    # Journal: a gfx timeout naming no GPU, "GPU reset begin!" on 0000:0c:00.0, the display's REG_WAIT timeouts
    # (no finding), MODE2 reset, "trying to resume" and a clean PSP/RAS resume: ONE recovered reset (soft).
    'ring_gfx_timeout_mode2_reset_resumed_journal_picom-1390.txt': [
        ('gpu_reset', S, '0000:0c:00.0', None, 1),
    ],
    # Phoenix APU (780M), kernel 6.x: the per-queue reset fails, MES does not answer REMOVE_QUEUE during the full
    # reset, MODE2 reset, "trying to resume" and the SMU resumes: no reset step failed, ONE recovered reset (soft).
    'phoenix_ring_reset_failed_mes_mode2_resumed_legacy-rocm-build-6273.txt': [
        ('gpu_reset', S, '0000:c5:00.0', None, 1),
    ],
    # RX 6800 XT, dmesg -T, kernel 7.1: gfxhub page faults of kwin (TCP client); the first lines are the tail of a
    # fault whose header was cut; the detail lines are no findings of their own.
    'rx6800xt_gfxhub_page_fault_tcp_dmesg-T_cachyos-960.txt': [
        ('page_fault', S, '0000:0d:00.0', None, 2),
    ],
    # RX 6900 XT on Void Linux: svlogd/socklog lines ("<ISO stamp> kern.err: [monotonic] amdgpu ..."): one gfxhub
    # page fault of the SteamVR compositor, on 0000:03:00.0 (soft).
    'rx6900xt_gfxhub_page_fault_void_svlogd_SteamVR-for-Linux-940.txt': [
        ('page_fault', S, '0000:03:00.0', None, 1),
    ],
    # No stamps (pasted message bodies), RDNA3: gfx timeout, MES does not answer RESET, the ring reset fails, MODE1
    # reset, "trying to resume", "VRAM is lost" (of the same reset's resume): ONE recovered reset (soft).
    'navi3x_mes_reset_ring_reset_failed_mode1_resumed_no_stamps_wayvr-650.txt': [
        ('gpu_reset', S, '0000:2d:00.0', None, 1),
    ],
    # RX 7900 XTX journal: MES stops answering (the first line names no GPU), queue removal and eviction fail, a reset
    # begins, gfx_v11_0 is hung and a page fault follows; the excerpt ends there: hard, nothing recovered.
    'rx7900xtx_mes_remove_queue_evict_reset_ip_hung_journal_legacy-rocm-build-3265.txt': [
        ('gpu_hang', H, None, None, 1),
        ('gpu_hang', H, '0000:03:00.0', None, 1),
        ('gpu_hang', H, '0000:03:00.0', None, 1),
        ('gpu_hang', H, '0000:03:00.0', None, 1),
        ('gpu_hang', H, None, None, 1),
        ('gpu_reset', S, '0000:03:00.0', None, 1),
        ('gpu_hang', H, '0000:03:00.0', None, 1),
        ('page_fault', S, '0000:03:00.0', None, 1),
    ],
    # dmesg of a suspend that failed (the screen stayed black after it): the SMU does not answer ("Fail to disable dpm
    # features!", suspend of <smu> -62), the PSP's command buffer reads all-ones, suspend of <psp> fails and the mode1
    # reset fails: hard; the suspend steps name no GPU, the SMU and reset lines name 0000:03:00.0.
    'suspend_smu_psp_all_ones_mode1_failed_dmesg_nixpkgs-223690.txt': [
        ('smu_message_failed', H, '0000:03:00.0', None, 1),
        ('gpu_reset_failed', H, None, None, 1),
        ('register_access_failed', H, None, None, 1),
        ('gpu_reset_failed', H, None, None, 1),
        ('gpu_reset_failed', H, '0000:03:00.0', None, 1),
    ],
    # MI300X that no longer initialises after a reboot: the IP discovery table is invalid, "Fatal error during GPU init"
    # and the probe failure name 0000:05:00.0 (the first line, its "[" lost in the paste, and the discovery lines add
    # nothing): hard, degraded.
    'mi300x_ip_discovery_signature_fatal_init_probe_failed_dmesg_legacy-rocm-build-3856.txt': [
        ('init_failed', H, '0000:05:00.0', None, 1),
        ('init_failed', H, '0000:05:00.0', None, 1),
    ],
    # RX 6700M laptop (Navi 22) journal: the IP discovery binary in VRAM is invalid, the GPU is not initialised.
    'rx6700m_navi22_ip_discovery_vram_fatal_init_journal_legacy-rocm-build-1896.txt': [
        ('init_failed', H, '0000:03:00.0', None, 1),
    ],
    # Journal (kernel and ollama lines): ROCr's "HW Exception ... GPU Hang" (user space, hard, host level), an sdma0
    # timeout, a reset of 0000:08:00.0 begins and the kernel crashes in the reset worker (BUG ... Oops): the reset
    # never finishes: hard, host level (the Oops line names no GPU).
    'sdma_timeout_reset_kernel_oops_journal_ollama-7723.txt': [
        ('gpu_hang', H, None, None, 1),
        ('ring_timeout', S, None, None, 1),
        ('gpu_reset', S, '0000:08:00.0', None, 1),
        ('gpu_reset_failed', H, None, None, 1),
    ],
    # dmesg -T, kernel 5.15: a reset whose SMU resume failed ("Failed to setup smc hw!" names the GPU, the IP block
    # line does not), "GPU reset(2) failed"; then a new gfx timeout and reset that never ends: three minutes later the
    # kernel reports a task blocked behind it (hard, host level).
    'gpu_reset_failed_then_reset_stuck_hung_task_dmesg-T_nixpkgs-176915.txt': [
        ('smu_message_failed', H, '0000:03:00.0', None, 1),
        ('gpu_reset_failed', H, None, None, 1),
        ('gpu_reset_failed', H, '0000:03:00.0', None, 1),
        ('gpu_reset_failed', H, '0000:03:00.0', None, 1),
        ('ring_timeout', S, None, None, 1),
        ('gpu_reset', S, '0000:03:00.0', None, 1),
        ('gpu_reset_failed', H, None, None, 1),
    ],
    # syslog, 2x Radeon VII, kernel 4.15: a Fatal AER error on the root port (hard), the GPU behind it named by "device
    # has no AER-aware driver" (soft), then the SMU's response register reads all-ones (no response, x8: the
    # message numbers collapse), metrics exports fail (x4) and the port's recovery fails (bus_lost): hard.
    # A PCIe root port's AER recovery fails for a SATA controller (Raspberry Pi 5), and for a Thunderbolt and a USB
    # controller (MS-02 Ultra): at scan, host level (the ports' lines name no GPU); the devices they are about are
    # in `devices`, and the GPU probe's topology makes them no GPU's (test_kernel_log_pcie_topology.py).
    'aer_recovery_failed_ahci_sata_not_a_gpu_pi5_raspberry-pi-pcie-devices-600.txt': [
        ('bus_lost', H, None, None, 2),
        ('pcie_error', S, None, None, 1),
        ('pcie_error', S, None, None, 1),
    ],
    'aer_recovery_failed_thunderbolt_xhci_not_a_gpu_journal_MS-02-Ultra-10.txt': [
        ('bus_lost', H, None, None, 2),
        ('pcie_error', S, None, None, 1),
        ('pcie_error', S, None, None, 1),
    ],
    # A DPC containment the port recovered from: the event is hard; pciehp's 'Link Down/Up ignored' is no bus loss.
    'dpc_edr_recovered_pciehp_link_down_up_ignored_linux-pci-2025-09.txt': [
        ('pcie_error', H, None, None, 1),
    ],
    'aer_fatal_radeon_vii_no_aer_driver_smu_all_ones_syslog_ROCm-858.txt': [
        ('pcie_error', H, None, None, 1),
        ('pcie_error', S, '0000:0a:00.0', None, 1),
        ('smu_no_response', H, None, None, 8),
        ('smu_message_failed', H, None, None, 4),
        ('bus_lost', H, None, None, 1),
    ],
    # RX 6600 (Ubuntu 22.04, kernel 5.15), journal -o short-precise in the Polish locale ("maj 29 14:30:45.472809"):
    # DMUB idle waits and the HDMI audio function failing (no findings), the display's fence wait times out (soft, no
    # address); the excerpt ends before the sdma1 timeout (its line cut).
    'rx6600_dmub_idle_fence_timeout_journal_pl_short-precise_pop-2132.txt': [
        ('ring_timeout', S, None, None, 1),
    ],
    # Healthy Navi 21 boots (SMU firmware 58.86 / 58.88, "SMU driver if version not matched", securedisplay TA
    # missing): nothing.
    'rx6900xt_navi21_boot_smu_if_mismatch_dmesg_TT-CPU-Scheduler-23.txt': [
    ],
    'navi21_boot_psp_vcn_smu_journal_precise_Complete-Single-GPU-Passthrough-38.txt': [
    ],
}

# nvkernel: NVIDIA driver loads, healthy and failed (tests/fixtures/kernel_log_healthy/SOURCES.md,
# tests/fixtures/training/SOURCES.md).
EXPECTED.update({
    # Healthy: an 8x B200 VM loading the open module with initcall_debug ("probe of <bdf> returned 0 after ..."), a
    # Spanish-locale journal of a driver load (module taints, nvidia-modeset, nvidia-drm), and a mixed host's good
    # boot (amdgpu iGPU with "Overdrive is enabled", nvidia 0000:08:00.0): nothing.
    'nvrc-159_8x_b200_590.48.01_dmesg_initcall_debug_probe_returned_0.txt': [
    ],
    'bugtracker-2237_530.30.02_journal_es_locale_module_taint_modeset_load.txt': [
    ],
    'bazzite-2612_amdgpu_igpu_nvidia_open_570.133.07_good_boot_journal.txt': [
    ],
    # nouveau holds 3 GPUs: the earlier load found no GPU, the reload says the probe was not called for 3 devices (both
    # soft, host level: the line cannot tell this from a GPU bound to vfio-pci on purpose; the GPU facts judge each
    # GPU by the driver bound to it).
    'bigdata-133_dmesg_probe_routine_not_called_nouveau_owns_3_gpus.txt': [
        ('init_failed', S, None, None, 1),
        ('init_failed', S, None, None, 1),
    ],
    # User space updated without the kernel module: the API mismatch (x3, soft, host level: nvidia-smi fails on its
    # own then), then the GSP firmware of the loaded module's version is missing and 07:00.0 does not initialise (hard).
    'bazzite-2668_570.144_dmesg_api_mismatch_gsp_firmware_missing_rminitadapter.txt': [
        ('init_failed', S, None, None, 3),
        ('init_failed', H, '0000:07:00.0', None, 1),
        ('init_failed', H, '0000:07:00.0', None, 1),
    ],
    # The GPU does not come back from D3cold ("device inaccessible", x4): lost; each open retries RmInitAdapter.
    'gpu-passthrough-tutorial-39_dmesg_d3cold_device_inaccessible_rminitadapter.txt': [
        ('bus_lost', H, '0000:01:00.0', None, 4),
        ('init_failed', H, '0000:01:00.0', None, 3),
        ('init_failed', H, '0000:01:00.0', None, 3),
    ],
    # Older kernels' wording ("config space inaccessible") on the GPU, then Xid 79; the card's USB and audio functions
    # (xhci_hcd, snd_hda_intel, pci) failing with it are no findings of their own.
    'firmware-open-259_journal_d3cold_config_space_inaccessible_xid79.txt': [
        ('bus_lost', H, '0000:01:00.0', None, 1),
        ('bus_lost', H, '0000:01:00', 79, 1),
        ('bus_lost', H, '0000:01:00.0', None, 1),
    ],
    # talosctl dmesg, no Xid 119: "Back to back GSP RPC timeout detected! GPU marked for reset" and "rpcRecvPoll timedout"
    # (hard, host level: they name no GPU), then Xid 154 asks for a reset of 0b:00 (nothing recovered in the excerpt).
    'open-gpu-kernel-modules-446_talosctl_gsp_rpc_timeout_no_xid119_xid154_reset_required.txt': [
        ('firmware_error', H, None, None, 1),
        ('firmware_error', H, None, None, 1),
        ('recovery_required', H, '0000:0b:00', 154, 1),
    ],
    # DGX Station A100 journal: "GPU lost from the bus [NV_ERR_GPU_IS_LOST]" (x3) without an Xid in the excerpt: hard,
    # host level; the RPC send failures after it are no findings of their own.
    'open-gpu-kernel-modules-688_dgx_station_a100_journal_nv_err_gpu_is_lost_no_xid.txt': [
        ('bus_lost', H, None, None, 3),
    ],
    # syslog with dmesg stamps: the slot's link goes down (hard, host level; "Card not present" soft), Xid 79 and the
    # Xid-less line on the GPU behind it; the X server's NVIDIA errors are user space, no findings.
    'pop-3363_syslog_pciehp_link_down_xid79_xorg_lines.txt': [
        ('bus_lost', H, None, None, 1),
        ('bus_lost', S, None, None, 1),
        ('bus_lost', H, '0000:01:00', 79, 1),
        ('bus_lost', H, '0000:01:00.0', None, 1),
    ],
    # NVSwitch probing in a TDX guest (H100 PPCIe), then SXid 22013 "Non-fatal, Link NN Minion Link DLREQ interrupt" on two
    # links: one soft nvlink_error of the host (the address is the switch's), x2; its Severity and Data lines give nothing.
    'nvtrust-124_h100_ppcie_tdx_dmesg_nvswitch_probe_sxid22013_nonfatal.txt': [
        ('nvlink_error', S, None, None, 2),
    ],
})

PATHS = dict((p.name, p) for p in logs())


def test_every_log_has_an_expectation():
    assert sorted(PATHS) == sorted(EXPECTED), "write the expectation of every log in %s" % ", ".join(map(str, FOLDERS))
    assert len(PATHS) == len(logs()), "two fixture logs share a name"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_log_gives_its_expected_findings(name):
    findings = kl.scan(load(PATHS[name]))
    assert shape(findings) == EXPECTED[name]
    for finding in findings:
        severity, fix = kl.CATEGORIES[finding["category"]]
        assert finding["summary"] and finding["fix"] and finding["line"].strip()
        assert finding["vendor"] in ("amd", "nvidia", None)
        assert (finding["xid"] is not None) == bool(re.search(r"\bXid \(", finding["message"]))  # not an SXid
        # The message is the line without its stamp, host and facility prefixes.
        stamp = _kernel_time.split_line(finding["line"])[0]
        assert stamp is None or stamp not in finding["message"]
        assert not re.match(r"^(?:\[\s*\d+\.\d+\]|\d{4}-\d\d-\d\d|[A-Za-z]{3} +\d+ \d\d:|kernel:|kern\.[a-z]+:)", finding["message"])


@pytest.mark.parametrize("name", [n for n in sorted(EXPECTED) if not EXPECTED[n]])
def test_healthy_logs_give_nothing_whatever_the_vendor_or_time(name):
    lines = load(PATHS[name])
    assert len(lines) >= 10
    for vendors in (None, "amd", "nvidia"):
        stats = {}
        assert kl.scan(lines, vendors=vendors, stats=stats) == []
        assert stats["lines"] == len(lines) and stats["matched"] == 0
    assert kl.scan(lines, since=0.0, boot_time=1.0) == []


# The same message bodies under every other stamp format a rig may write: the findings must not
# change, and no stamp may end up in a message.
RESTAMP = {
    "journal": lambda body: "2026-11-25T15:00:00.123456+0000 rig07 kernel: " + body,
    "dmesg_iso": lambda body: "2026-11-25T15:00:00,123456+00:00 " + body,
    "decode": lambda body: "kern  :err   : 2026-11-25T15:00:00,123456+00:00 " + body,
    "talosctl": lambda body: "172.20.0.2: kern:    info: [2026-11-25T15:00:00.123456789Z]: " + body,
    "dmesg_T_cs": lambda body: "[st lis 25 15:00:00 2026] " + body,
    "dmesg_T_ja": lambda body: "[\u6c34 11\u6708 25 15:00:00 2026] " + body,
    "syslog_de": lambda body: "Mai 25 15:00:00 rig07 kernel: [ 1234.567890] " + body,
    "syslog_fr": lambda body: "nov. 25 15:00:00 rig07 kernel: " + body,
    "syslog_unknown_locale": lambda body: "Qqq 25 15:00:00 rig07 kernel: " + body,
    "short_full": lambda body: "Wed 2026-11-25 15:00:00 CET rig07 kernel: " + body,
    "reltime": lambda body: "[  +0.000012] " + body,
    "monotonic_caller": lambda body: "[ 1234.567890] [    T140] " + body,
    "rfc5424": lambda body: "<4>1 2026-11-25T15:00:00.123456+00:00 rig07 kernel - - - " + body,
    "rfc5424_sd": lambda body: '1 2026-11-25T15:00:00Z rig07 kernel - - [meta sequenceId="7"] ' + body,
    "syslog_ng_year": lambda body: "2026 Nov 25 15:00:00 rig07 kernel: " + body,
    "dmesg_T_caller": lambda body: "[Wed Nov 25 15:00:00 2026] [ T1234] " + body,
    "dmesg_iso_caller": lambda body: "2026-11-25T15:00:00,123456+00:00 [    C3] " + body,
    "journal_short_unix": lambda body: "1764082800.123456 rig07 kernel: " + body,
    "kmsg": lambda body: "6,1234,1234567890,-;" + body,
    "indented_dmesg": lambda body: "    [ 1234.567890] " + body,
    "indented_journal": lambda body: "    Nov 25 15:00:00 rig07 kernel: " + body,
    "dmesg_T_delta": lambda body: "[Wed Nov 25 15:00:00 2026 <    0.000012>] " + body,
    "dmesg_monotonic_delta": lambda body: "[ 1234.567890 <    0.000123>] " + body,
    "dmesg_delta_only": lambda body: "[<    0.000012>] " + body,
    "kmsg_caller": lambda body: "4,98765,1234567890,-,caller=T140;" + body,
}


@pytest.mark.parametrize("fmt", sorted(RESTAMP))
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_same_findings_under_every_stamp_format(name, fmt):
    # A continuation line of a multi-line message has no stamp in any format: it stays as it is.
    lines = []
    for line in load(PATHS[name]):
        stamp, _epoch, body = _kernel_time.split_line(line)
        if stamp is None and line[:1].isspace():
            lines.append(line)
        elif body:
            lines.append(RESTAMP[fmt](body))
    findings = kl.scan(lines, boot_time=0.0)
    assert shape(findings) == EXPECTED[name]
    for finding in findings:
        assert finding["message"] == " ".join(bodies_of(finding["line"]).split())[:kl.MAX_MESSAGE_CHARS]
        if fmt not in ("reltime", "syslog_unknown_locale", "dmesg_delta_only"):
            assert finding["first_epoch"] is not None, (fmt, finding["line"])


def bodies_of(line):
    return _kernel_time.split_line(line)[2]
