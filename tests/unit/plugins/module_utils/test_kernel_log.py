"""The kernel-log scan engine and its tables: every row reachable, benign lines, attribution,
recovery in sequence, NVIDIA Xids, times, and garbage."""

from __future__ import annotations

import pathlib
import random
import time

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _kernel_log as kl
from ansible_collections.gpuops.preflight.plugins.module_utils import _kernel_patterns_nvidia as nv_table
from ansible_collections.gpuops.preflight.plugins.module_utils import _timeparse

GPU03, GPU83 = "0000:03:00.0", "0000:83:00.0"
T = 1767225600.0  # 2026-01-01T00:00:00Z
FIELDS = {"category", "severity", "gpu_health", "bdf", "pci_id", "vendor", "xid", "summary", "fix", "message", "line",
          "count",
          "first_seen", "last_seen", "first_epoch", "last_epoch", "recovered", "hung", "caused_xids", "devices"}


def kinds(findings):
    return [(f["category"], f["severity"], f["bdf"]) for f in findings]


# One sample per row at least: every row of every table must be reachable, in its category.
AMD_SAMPLES = [
    ("amdgpu 0000:0b:00.0: amdgpu: SMU: response:0xffffffff for index:9 param:0x00000000 message:GetMetricsTable?", "smu_no_response"),
    ("amdgpu 0000:0b:00.0: SMU: No response msg_reg: 12 resp_reg: 0", "smu_no_response"),
    ("amdgpu 0000:0b:00.0: amdgpu: SMU is in hanged state, failed to send smu message!", "smu_no_response"),
    ("amdgpu 0000:0b:00.0: amdgpu: message: TransferTableSmu2Dram (18) \tparam: 0x00000006 is timeout (no response)", "smu_no_response"),
    ("amdgpu 0000:0b:00.0: amdgpu: SMC is not ready", "smu_no_response"),
    ("amdgpu 0000:0b:00.0: amdgpu: SMC engine is not correctly up!", "smu_no_response"),
    ("amdgpu 0000:0b:00.0: amdgpu: SMU: I'm not done with your previous command: SMN_C2PMSG_66:0x00000012 SMN_C2PMSG_82:0x00000005", "smu_message_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: SMU: I'm very busy for your command: index:9 param:0x00000000 message:GetMetricsTable", "smu_message_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: SMU: valid command, bad prerequisites: index:9 param:0x00000000 message:GetMetricsTable", "smu_message_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: SMU: unknown command: index:9 param:0x00000000 message:GetMetricsTable", "smu_message_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: SMU: I'm debugging!", "smu_message_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: SMU: response:0xFFFFFFFE for index:9 param:0x00000000 message:GetMetricsTable?", "smu_message_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: Failed to export SMU metrics table!", "smu_message_failed"),
    # 0xffffffc2 is -ETIME: the SMU did not answer before the timeout; 0xfffffffb (-EIO) is an answer
    ("amdgpu: [powerplay] failed send message: TransferTableSmu2Dram (18) param: 0x00000006 response 0xffffffc2", "smu_no_response"),
    ("amdgpu: [powerplay] failed send message: SetSoftMinByFreq (66) param: 0x00000001 response 0xfffffffb", "smu_message_failed"),
    (" failed to send message 200 ret is 0", "smu_no_response"),
    (" failed to send message 200 ret is -62", "smu_message_failed"),
    ("amdgpu: [powerplay] failed send message: SetSoftMinGfxclkByFreq (45) param: 0x00000898 response 0", "smu_no_response"),
    ("amdgpu: [powerplay] failed send message: TransferTableSmu2Dram (18) param: 0x00000006 response 0xffffffc2",
     "smu_no_response"),
    ("amdgpu 0000:03:00.0: amdgpu: Failed to send message 0x1d, response 0xffffffc2 param 0x0", "smu_no_response"),
    ("amdgpu: [powerplay] Failed to send message 0x1d, response 0xfffffffb param 0x0", "smu_message_failed"),
    ("amdgpu: [powerplay] Failed to send message 0x1d, response 0x0 param 0x0", "smu_no_response"),
    ("amdgpu: [powerplay] Failed message: 0x2c, input parameter: 0x10, error code: 0x0", "smu_no_response"),
    ("amdgpu: [powerplay] Failed to read message arg 0x1d, response 0xfffffffb param 0x0", "smu_message_failed"),
    ("amdgpu: [powerplay] Failed message: 0x2c, input parameter: 0x10, error code: 0xfe", "smu_message_failed"),
    ("amdgpu: [powerplay] [DisableAllSMUFeatures] Failed to disable all smu features!", "smu_message_failed"),
    ("amdgpu: [powerplay] [PowerOffAsic] Failed to disable DPM!", "smu_message_failed"),
    ("amdgpu: [powerplay] last message was failed ret is 255", "smu_message_failed"),
    ("amdgpu: [powerplay] last message was failed ret is 0", "smu_no_response"),
    ("amdgpu: [powerplay] last message was failed ret is 65535", "smu_no_response"),   # 16-bit field all-ones
    (" failed to send message 261 ret is 65535 ", "smu_no_response"),
    (" failed to send message 261 ret is 655350", "smu_message_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: Msg issuing pre-check failed and SMU may be not in the right state!", "smu_message_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: Failed to disallow df cstate", "smu_message_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: [SetDfCstate] failed!", "smu_message_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: [PrepareMp1] Failed!", "smu_message_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: Failed to disable smu features.", "smu_message_failed"),
    ("[drm:amdgpu_device_ip_suspend_phase2 [amdgpu]] *ERROR* SMC failed to set mp1 state 2, -121", "smu_message_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: Failed to get current clock freq!", "smu_message_failed"),
    ("amdgpu 0000:0b:00.0: Failed to disable gfxoff!", "smu_message_failed"),
    ("amdgpu: failed to write reg:2022", "register_access_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: GCVM_L2_PROTECTION_FAULT_STATUS:0xFFFFFFFF", "register_access_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: device lost from bus!", "bus_lost"),
    ("amdgpu 0000:0b:00.0: Unable to change power state from D3cold to D0, device inaccessible", "bus_lost"),
    # the older kernels' wording (NVIDIA's own recording, system76/firmware-open#259, with the amdgpu driver's name)
    ("amdgpu 0000:0b:00.0: can't change power state from D3cold to D0 (config space inaccessible)", "bus_lost"),
    ("pcieport 0000:00:01.1: pciehp: Slot(0): Card not present", "bus_lost"),
    ("pcieport 0000:00:01.1: pciehp: Slot(0): Link Down", "bus_lost"),
    ("pcieport 0000:00:01.1: Unable to change power state from D0 to D3hot, device inaccessible", "bus_lost"),
    ("pcieport 0000:00:02.0:    [ 5] Surprise Down Error    (First)", "bus_lost"),
    ("pcieport 0000:00:02.0: AER: Uncorrected (Fatal) error received: id=0010", "pcie_error"),
    ("pcieport 0000:00:02.0: AER: Multiple Uncorrected (Non-Fatal) error received: 0000:02:00.0", "pcie_error"),
    ("pcieport 0000:00:01.1: AER: Uncorrectable (Fatal) error message received from 0000:03:00.0", "pcie_error"),
    ("pcieport 0000:00:01.1: AER: Uncorrectable (Non-Fatal) error message received from 0000:03:00.0", "pcie_error"),
    # amdkernel: the port's failed AER recovery and a DPC containment event (err.c, dpc.c; linux-pci mails)
    ("pcieport 0000:00:03.0: AER: device recovery failed", "bus_lost"),
    ("pcieport 0000:00:01.4: DPC: containment event, status:0x1f01 source:0x0000", "pcie_error"),
    ("pcieport 0000:00:01.0: AER: Corrected error message received from 0000:01:00.0", "pcie_error"),
    ("amdgpu 0000:03:00.0: 2 uncorrectable errors detected in UMC block", "ras_uncorrectable"),
    ("amdgpu 0000:03:00.0: amdgpu: asic reset on init failed", "init_failed"),
    ("amdgpu: [powerplay] No response from smu", "smu_no_response"),
    ("amdgpu 0000:00:01.0: amdgpu: gfx8: Failed to load firmware \"amdgpu/carrizo_pfp.bin\"", "init_failed"),
    ("[drm] 3 correctable errors detected in pcie_bif block", "ras_correctable"),
    ("[drm:amdgpu_device_ip_init [amdgpu]] *ERROR* hw_init of IP block <gfx_v10_0> failed -110", "init_failed"),
    ("[drm:amdgpu_device_ip_init [amdgpu]] *ERROR* sw_init of IP block <gfx_v11_0> failed -22", "init_failed"),
    ("amdgpu 0000:03:00.0: amdgpu: early_init of IP block <smu> failed -19", "init_failed"),
    ("amdgpu 0000:05:00.0: amdgpu: Fatal error during GPU init", "init_failed"),
    # hand-made in aer.c's wording (the GPU endpoint's own line), old and 6.x forms
    ("amdgpu 0000:03:00.0: PCIe Bus Error: severity=Uncorrected (Fatal), type=Transaction Layer, (Requester ID)",
     "pcie_error"),
    ("amdgpu 0000:03:00.0: PCIe Bus Error: severity=Uncorrectable (Non-Fatal), type=Transaction Layer, (Requester ID)",
     "pcie_error"),
    ("amdgpu 0000:05:00.0: amdgpu: memory training failed", "init_failed"),
    # hand-made from the driver's format string (amdgpu_pci_slot_reset), old DRM_ERROR and new dev_err forms
    ("[drm:amdgpu_pci_slot_reset [amdgpu]] *ERROR* PCIe error recovery failed, err:-22", "gpu_reset_failed"),
    ("amdgpu 0000:c1:00.0: amdgpu: PCIe error recovery failed, err:-110", "gpu_reset_failed"),
    ("[drm:psp_hw_start [amdgpu]] *ERROR* PSP create ring failed!", "init_failed"),
    ("[drm:psp_hw_init [amdgpu]] *ERROR* PSP firmware loading failed", "init_failed"),
    ("[drm:psp_hw_start [amdgpu]] *ERROR* PSP load tmr failed!", "init_failed"),
    ("amdgpu 0000:03:00.0: amdgpu: PSP load sys drv failed!", "init_failed"),
    ("amdgpu: probe of 0000:05:00.0 failed with error -22", "init_failed"),
    ("amdgpu 0000:05:00.0: probe with driver amdgpu failed with error -22", "init_failed"),
    ("kfd kfd: amdgpu: skipped device 1002:67e3, PCI rejects atomics 730<0", "init_failed"),
    ("kfd kfd: skipped device 1002:67df, PCI rejects atomics", "init_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: GPU reset(2) failed", "gpu_reset_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: GPU mode1 reset failed", "gpu_reset_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: ASIC reset failed with error, -121 for drm dev, 0000:0b:00.0", "gpu_reset_failed"),
    ("[drm:amdgpu_device_gpu_recover [amdgpu]] *ERROR* GPU Recovery Failed: -110", "gpu_reset_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: GPU reset end with ret = -62", "gpu_reset_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: Ring gfx_0.0.0 reset failed", "gpu_reset_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: Ring comp_1.0.0 reset failure", "gpu_reset_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: resume of IP block <smu> failed -5", "gpu_reset_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: amdgpu_device_ip_resume failed (-5).", "gpu_reset_failed"),
    ("[drm:psp_resume [amdgpu]] *ERROR* PSP resume failed", "gpu_reset_failed"),
    ("[drm:amdgpu_device_ip_suspend_phase2 [amdgpu]] *ERROR* suspend of IP block <psp> failed -22", "gpu_reset_failed"),
    ("[drm:mes_v11_0_submit_pkt_and_poll_completion.constprop.0 [amdgpu]] *ERROR* MES failed to response msg=3", "gpu_hang"),
    ("amdgpu: MES might be in unrecoverable state, issue a GPU reset", "gpu_hang"),
    ("amdgpu: failed to remove hardware queue from MES, doorbell=0x1216", "gpu_hang"),
    ("amdgpu 0000:0b:00.0: amdgpu: IP block:gfx_v11_0 is hung!", "gpu_hang"),
    ("amdgpu 0000:0b:00.0: [drm:amdgpu_ring_test_helper [amdgpu]] *ERROR* ring kiq_2.1.0 test failed (-110)", "gpu_hang"),
    ("amdgpu 0000:03:00.0: amdgpu: ring mes_kiq_3.1.0 test failed (-110)", "gpu_hang"),
    ("[drm:amdgpu_ib_ring_tests [amdgpu]] *ERROR* IB test failed on gfx_0.0.0 (-110).", "gpu_hang"),
    ("amdgpu 0000:0b:00.0: amdgpu: wait for kiq fence error: 0.", "gpu_hang"),
    ("amdgpu 0000:0b:00.0: qcm fence wait loop timeout expired", "gpu_hang"),
    ("amdgpu 0000:03:00.0: amdgpu: HIQ MQD's queue_doorbell_id0 is not 0, Queue preemption time out", "gpu_hang"),
    ("amdgpu: cp queue pipe 4 queue 0 preemption failed", "gpu_hang"),
    ("amdgpu 0000:0b:00.0: The cp might be in an unrecoverable state due to an unsuccessful queues preemption", "gpu_hang"),
    ("amdgpu: Failed to evict queue 10", "gpu_hang"),
    ("amdgpu: Failed to suspend process 0x800c", "gpu_hang"),
    ("[drm:gfx_v10_0_hw_fini [amdgpu]] *ERROR* failed to halt cp gfx", "gpu_hang"),
    ("[drm:amdgpu_mes_unmap_legacy_queue [amdgpu]] *ERROR* failed to unmap legacy queue", "gpu_hang"),
    ("[drm:sdma_v6_0_ring_test_ib [amdgpu]] *ERROR* amdgpu: IB test timed out", "gpu_hang"),
    ("HW Exception by GPU node-1 (Agent handle: 0x55d1c3e0a0f0) reason :GPU Hang", "gpu_hang"),
    ("amdgpu 0000:0b:00.0: amdgpu: GPU recovery disabled.", "gpu_hang"),
    ("amdgpu 0000:0b:00.0: amdgpu: 2 uncorrectable hardware errors detected in umc block", "ras_uncorrectable"),
    ("amdgpu 0000:4e:00.0: {1}[Hardware Error]: Accelerator Check Architecture events logged", "ras_uncorrectable"),
    ("amdgpu 0000:8a:00.0: amdgpu: Poison detected in VCN0, sub_block0", "ras_uncorrectable"),
    ("amdgpu 0000:05:00.0: amdgpu: socket: 0, die: 0, 1 new deferred hardware errors detected in umc block",
     "ras_uncorrectable"),
    ("amdgpu 0000:c1:00.0: amdgpu: socket: 4, die: 0 1 correctable hardware errors detected in total in gfx block, "
     "no user action is needed.", "ras_correctable"),
    ("amdgpu 0000:c1:00.0: amdgpu: umc ce count: 3", "ras_correctable"),
    # hand-made from the driver's format strings (amdgpu_ras_eeprom.c), no recorded log found
    ("amdgpu 0000:c1:00.0: amdgpu: RAS records:130 exceed threshold:128, GPU will not be initialized. Replace this GPU "
     "or increase the threshold", "memory_remap_failed"),
    ("amdgpu 0000:c1:00.0: amdgpu: Saved bad pages 129 reaches threshold value 128", "memory_remap_failed"),
    ("amdgpu 0000:0b:00.0: ring gfx_0.0.0 timeout, signaled seq=5671512, emitted seq=5671512", "ring_timeout"),
    ("[drm:amdgpu_dm_atomic_commit_tail [amdgpu]] *ERROR* Waiting for fences timed out!", "ring_timeout"),
    ("amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!", "gpu_reset"),
    ("amdgpu 0000:0b:00.0: amdgpu: GPU reset succeeded, trying to resume", "gpu_reset"),
    ("amdgpu 0000:0b:00.0: amdgpu: GPU reset(3) succeeded!", "gpu_reset"),
    ("amdgpu 0000:0b:00.0: amdgpu: Starting gfx_0.0.0 ring reset", "gpu_reset"),
    ("amdgpu 0000:0b:00.0: amdgpu: Ring sdma0 reset succeeded", "gpu_reset"),
    ("amdgpu 0000:0b:00.0: amdgpu: Ring sdma0 reset success", "gpu_reset"),
    ("amdgpu 0000:0b:00.0: [drm] device wedged, but recovered through reset", "gpu_reset"),
    ("[drm] VRAM is lost due to GPU reset!", "gpu_reset"),
    ("amdgpu 0000:0b:00.0: amdgpu: soft reset failed, will fallback to full reset!", "gpu_reset"),
    ("amdgpu 0000:04:00.0: amdgpu: MODE2 reset", "gpu_reset"),
    ("amdgpu 0000:0b:00.0: amdgpu: [gfxhub0] retry page fault (src_id:0 ring:0 vmid:0 pasid:0, for process pid 0 thread pid 0)", "page_fault"),
    ("amdgpu 0000:01:00.0: GPU fault detected: 146 0x0c88480c for process python pid 1234 thread python pid 1234", "page_fault"),
    ("Memory access fault by GPU node-2 (Agent handle: 0x5561f711dfd0) on address 0x7fb7a0d67000. "
     "Reason: Page not present or supervisor privilege.", "page_fault"),
    # amdkernel: the driver's format strings (amdgpu_job.c, drm_drv.c)
    ("amdgpu 0000:03:00.0: amdgpu: ring gfx_0.0.0 timeout, but soft recovered", "ring_timeout"),
    ("amdgpu 0000:03:00.0: [drm] device wedged, needs recovery", "recovery_required"),
    ("amdgpu 0000:03:00.0: amdgpu: Fail to disable dpm features!", "smu_message_failed"),
    ("[drm] psp gfx command UNKNOWN CMD(0xFFFFFFFF) failed and response status is (0xFFFFFFFF)", "register_access_failed"),
    ("Oops: 0003 [#1] PREEMPT SMP NOPTI", "gpu_reset_failed"),   # a finding only while a GPU reset is under way
    ("INFO: task InputThread:1375 blocked for more than 122 seconds.", "gpu_reset_failed"),   # the same
    ("amdgpu 0000:03:00.0: amdgpu: Failed to setup smc hw!", "smu_message_failed"),
    ("amdgpu 0000:03:00.0: amdgpu: Failed to exit BACO state!", "smu_message_failed"),
    ("amdgpu: [powerplay] Failed to send message 0x10, response 0xffffffff", "smu_no_response"),
    ("amdgpu 0000:0a:00.0: device has no AER-aware driver", "pcie_error"),
    ("amdgpu 0000:0a:00.0: AER: can't recover (no error_detected callback)", "pcie_error"),
    ("amdgpu 0000:c5:00.0: amdgpu: failed to suspend all gangs", "gpu_hang"),
    ("amdgpu 0000:c5:00.0: amdgpu: Failed to detect hung queues", "gpu_hang"),
]

NVIDIA_SAMPLES = [
    ("NVRM: Xid (PCI:0000:01:00): 154, pid='<unknown>', name=<unknown>, GPU recovery action changed from 0x1 "
     "(GPU Reset Required) to 0x0 (None)", "gpu_reset"),
    ("NVRM: Xid (PCI:0000:01:00): 154, GPU recovery action changed from 0x0 (None) to 0x2 (Node Reboot Required)",
     "recovery_required"),
    ("NVRM: Xid (PCI:0000:01:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.", "bus_lost"),
    ("NVRM: GPU at 0000:01:00.0 has fallen off the bus.", "bus_lost"),
    ("NVRM: GPU 0000:0a:00.0: RmInitAdapter failed! (0x24:0x72:1568)", "init_failed"),
    ("NVRM: GPU 0000:0a:00.0: rm_init_adapter failed, device minor number 5", "init_failed"),
    ("NVRM: The NVIDIA probe routine failed for 1 device(s).", "init_failed"),
    ("nvidia: probe of 0000:01:00.0 failed with error -1", "init_failed"),
    ("nvidia 0000:2c:00.0: probe with driver nvidia failed with error -1", "init_failed"),
    ("NVRM: GPU 0000:01:00.0: GPU does not have the necessary power cables connected.", "init_failed"),
    ("NVRM: GPU0 krcWatchdog_IMPL: RC watchdog: GPU is probably locked!  Notify Timeout Seconds: 7", "gpu_hang"),
    ("nvidia 0000:03:00.0: AER: can't recover (no error_detected callback)", "pcie_error"),
    ("nvidia 0000:63:00.0: AER: PCIe Bus Error: severity=Uncorrected (Fatal), type=Transaction Layer, (Receiver ID)",
     "pcie_error"),
    ("nvidia 0000:63:00.0: PCIe Bus Error: severity=Uncorrectable (Non-Fatal), type=Transaction Layer, (Requester ID)",
     "pcie_error"),
    ("NVRM: GPU0 _kgspRpcRecvPoll: GSP RM heartbeat timed out (diff ~8000ms > timeout 5200ms)", "firmware_error"),
    ("NVRM: GPU6 _kgspIsHeartbeatTimedOut: Heartbeat timed out, currentTimeMs 812751949 heartbeat 1899482 "
     "heartbeatWithOffsetMs 812745879 diff 6070 timeout 5200", "firmware_error"),
    ("nvidia-nvswitch2: SXid (PCI:0000:07:00.0): 24007, Fatal, Link 45 LTSSM Fault Up", "nvlink_error"),
    ("nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 19084, Non-fatal, Link 32 AN1 Heartbeat Timeout Error", "nvlink_error"),
    # real, B200 HGX (NVIDIA/TensorRT-LLM#4816): an NVLink 5 Xid the driver calls Nonfatal
    ("NVRM: Xid (PCI:0000:5f:00): 145, RLW_REMAP Nonfatal XC0 i0 Link 02", "nvlink_error"),
    # hand-made from the driver's format (kern_gpu_error_cont_*.c): a contained error the driver wants reset
    ("NVRM: Xid (PCI:0000:00:08): 94, pid='<unknown>', name=<unknown>, Contained: SM (0x1). RST: No, D-RST: Yes",
     "ras_uncorrectable"),
    # nvkernel: real lines without an Xid (test_kernel_log_nvidia_driver_load.py cites each)
    ("NVRM: The NVIDIA probe routine was not called for 3 device(s).", "init_failed"),
    ("NVRM: API mismatch: the client has the version 570.153.02, but", "init_failed"),
    ("NVRM: No NVIDIA graphics adapter found!", "init_failed"),
    ("NVRM: NVIDIA init module failed!", "init_failed"),
    ("nvidia 0000:01:00.0: Unable to change power state from D3cold to D0, device inaccessible", "bus_lost"),
    ("NVRM: nvAssertOkFailedNoLog: Assertion failed: GPU lost from the bus [NV_ERR_GPU_IS_LOST] (0x0000000F) returned "
     "from rmStatus @ kernel_ce_gv100.c:106", "bus_lost"),
    ("NVRM: nvAssertOkFailedNoLog: Assertion failed: Reset required [NV_ERR_RESET_REQUIRED] (0x00000062) returned from "
     "status @ kernel_channel.c:2874", "recovery_required"),
    ("NVRM: nvGpuOpsReportFatalError: uvm encountered global fatal error 0x60, requiring os reboot to recover.",
     "recovery_required"),
    ("NVRM: _issueRpcAndWait: rpcRecvPoll timedout for fn 76 sequence 4129!", "firmware_error"),
    ("NVRM: nvAssertFailedNoLog: Assertion failed: Back to back GSP RPC timeout detected! GPU marked for reset @ "
     "kernel_gsp.c:2387", "firmware_error"),
    ("NVRM: knvlinkDiscoverPostRxDetLinks_GH100: Getting peer0's postRxDetLinkMask failed!", "nvlink_error"),
    ("nvidia-nvswitch: Version mismatch, kernel version 450.80.02 user version 450.51.06", "init_failed"),
]


@pytest.mark.parametrize("line,category", AMD_SAMPLES + NVIDIA_SAMPLES)
def test_sample_line_category(line, category):
    pattern, match = kl.classify(line)
    assert pattern is not None and pattern.rule(match)[0] == category
    assert pattern.key in line.lower()  # the prefilter literal really is in every match


def test_every_row_has_a_sample_and_the_tables_are_well_formed():
    used = set(id(kl.classify(line)[0]) for line, _category in AMD_SAMPLES + NVIDIA_SAMPLES)
    used.add(id(kl.classify("NVRM: Xid (PCI:0000:01:00): 13, Graphics Exception")[0]))
    assert [p for p in kl.PATTERNS if id(p) not in used] == []
    order = [p.category for p in kl.PATTERNS if p.vendor == "amd"]
    assert order.index("smu_no_response") < order.index("smu_message_failed")
    assert order.index("gpu_reset_failed") < order.index("gpu_reset")
    used_categories = set(p.category for p in kl.PATTERNS) | set(e[0] for e in nv_table.XIDS.values())
    assert used_categories == set(kl.CATEGORIES)
    for pattern in kl.PATTERNS:
        assert pattern.severity in (kl.HARD, kl.SOFT) and pattern.summary and pattern.fix
        assert pattern.key == pattern.key.lower()
        assert pattern.role is None or pattern.role in kl.ROLES
    for table in kl.TABLES:
        for category in getattr(table, "FIXES", {}):
            assert category in kl.CATEGORIES
    for table in (nv_table.XIDS, nv_table.NVLINK5_NONFATAL):
        for xid, (category, severity, summary, fix) in table.items():
            assert category in kl.CATEGORIES and severity in (kl.HARD, kl.SOFT)
            assert summary.startswith("Xid %d: " % xid) and (fix is None or isinstance(fix, str))
    for xid, summary in nv_table.INFORMATIONAL.items():
        assert summary.startswith("Xid %d: " % xid) and xid not in nv_table.XIDS


# The Xids issue 9 names, with the severity the table must give them: NVIDIA's Xid catalog's immediate action
# (RESTART_APP / IGNORE: soft; RESET_GPU, RESTART_BM and the ECC/NVLink workflows: hard). 68 and 69 are
# RESTART_APP in the catalog; so is 94, hard here (STRICTER_THAN_CATALOG: its memory is repaired only by a reset).
@pytest.mark.parametrize("xid,category,severity", [
    (13, "app_fault", kl.SOFT), (31, "page_fault", kl.SOFT), (43, "app_fault", kl.SOFT), (45, "app_fault", kl.SOFT),
    (32, "pcie_error", kl.SOFT), (48, "ras_uncorrectable", kl.HARD), (61, "firmware_error", kl.HARD),
    (62, "firmware_error", kl.HARD), (63, "memory_remap", kl.SOFT), (64, "memory_remap_failed", kl.HARD),
    (68, "app_fault", kl.SOFT), (69, "app_fault", kl.SOFT), (74, "nvlink_error", kl.HARD), (79, "bus_lost", kl.HARD),
    (92, "ras_correctable", kl.SOFT), (94, "ras_uncorrectable", kl.HARD), (95, "ras_uncorrectable", kl.HARD),
    (109, "gpu_hang", kl.HARD), (119, "firmware_error", kl.HARD), (120, "firmware_error", kl.HARD),
    (144, "nvlink_error", kl.HARD), (145, "nvlink_error", kl.HARD), (146, "nvlink_error", kl.HARD),
    (147, "nvlink_error", kl.HARD), (148, "nvlink_error", kl.HARD), (149, "nvlink_error", kl.HARD),
    (150, "nvlink_error", kl.HARD), (154, "recovery_required", kl.HARD),
    (999, "gpu_error", kl.HARD),  # not in the table: hard (see _kernel_patterns_nvidia)
])
def test_xid_table(xid, category, severity):
    line = "[ 12.5] NVRM: Xid (PCI:0000:41:00): %d, pid=1234, name=python3, something happened" % xid
    findings = kl.scan([line], boot_time=0.0)
    assert [(f["category"], f["severity"], f["xid"], f["vendor"], f["bdf"]) for f in findings] == [
        (category, severity, xid, "nvidia", "0000:41:00")]
    assert ("not in the Xid table" in findings[0]["summary"]) == (xid == 999)
    entry = nv_table.XIDS.get(xid, nv_table.UNKNOWN_XID)
    assert findings[0]["fix"] == (entry[3] or nv_table.FIXES[category])  # NVIDIA's own wording, not amdgpu's


# Every Xid the table knows, on a line built from the catalog's format (hand-made): its row's verdict, and a fix
# that starts with NVIDIA's immediate action.
@pytest.mark.parametrize("xid", sorted(nv_table.XIDS))
def test_every_known_xid_gives_its_rows_verdict(xid):
    category, severity, summary, fix = nv_table.XIDS[xid]
    findings = kl.scan(["NVRM: Xid (PCI:0000:41:00): %d, pid=77, name=python3, hand-made" % xid], boot_time=0.0)
    assert [(f["category"], f["severity"], f["xid"], f["summary"]) for f in findings] == [
        (category, severity, xid, summary)]
    assert fix is None or (findings[0]["fix"] == fix and fix.startswith("NVIDIA: "))
    # the soft ones are those the catalog lets the GPU keep working through, but those judged stricter (and why)
    actions = [a for a in nv_table._ACTIONS if fix and fix.startswith(nv_table._ACTIONS[a])]
    catalog_soft = actions in (["RESTART_APP"], ["IGNORE"])
    assert (severity == kl.SOFT) == (catalog_soft and xid not in nv_table.STRICTER_THAN_CATALOG), (xid, actions)
    assert xid not in nv_table.STRICTER_THAN_CATALOG or (catalog_soft and severity == kl.HARD)


# Real lines (the source of each named), and the verdict NVIDIA's catalog gives them.
@pytest.mark.parametrize("line,category,severity,xid", [
    # RTX 5090 with unstable clocks, Pop!_OS 580.82.09 (forums.developer.nvidia.com/t/5090-hard-crashes/342157,
    # quoted in a public repository's notes): RESTART_APP
    ("NVRM: Xid (PCI:0000:01:00): 69, pid=3728, name=Xorg, Class Error: channel 0x00000003", "app_fault", kl.SOFT, 69),
    # a GeForce on NixOS 6.1.50, journal pasted in a public GitHub issue: RESTART_APP (a PCIe-quality hint, no reset)
    ("Sep 09 12:24:31 nixos kernel: NVRM: Xid (PCI:0000:01:00): 32, pid=3911, name=X, Channel ID 00000018 intr "
     "00008000", "pcie_error", kl.SOFT, 32),
    # bbs.archlinux.org/viewtopic.php?id=283219 (as pasted, cut after the pid): IGNORE (driver firmware error)
    ("Feb 01 14:25:31 archbox kernel: NVRM: Xid (PCI:0000:01:00): 38, pid=1659,", "firmware_error", kl.SOFT, 38),
    # stas00/ml-engineering compute/accelerator/nvidia/debug.md: IGNORE / IGNORE (applied at the next reset)
    ("NVRM: Xid (PCI:0000:10:1c): 63, pid=1896, Row Remapper: New row marked for remapping, reset gpu to activate.",
     "memory_remap", kl.SOFT, 63),
    # forums.developer.nvidia.com/t/.../292539: WORKFLOW_NVLINK_ERR, "A GPU reset or node reboot is needed"
    ("kernel: NVRM: Xid (PCI:0000:c1:00): 74, pid='<unknown>', name=<unknown>, NVLink: fatal error detected on link 1",
     "nvlink_error", kl.HARD, 74),
    # bbs.archlinux.org/viewtopic.php?id=283219: RESET_GPU
    ("[ 1720.336960] NVRM: Xid (PCI:0000:01:00): 109, pid=2075, name=Stray-Win64-Shi, ...", "gpu_hang", kl.HARD, 109),
    # NVIDIA/open-gpu-kernel-modules#461: RESET_GPU
    ("NVRM: Xid (PCI:0004:01:00): 119, pid=430, name=nv_queue, Timeout waiting for RPC from GSP!", "firmware_error",
     kl.HARD, 119),
    # NVIDIA/TensorRT-LLM#4816 (B200): Nonfatal NVLink 5 -> the decode sheet's IGNORE / XID_154_EVAL
    ("NVRM: Xid (PCI:0000:5f:00): 145, RLW_REMAP Nonfatal XC0 i0 Link 02", "nvlink_error", kl.SOFT, 145),
    # akash-network/support#244 (535.183.01): contained, "RST: No, D-RST: No" -> RESTART_APP, hard here
    # (STRICTER_THAN_CATALOG; the reporter had to reboot the node)
    ("[Fri Aug  9 13:32:56 2024] NVRM: Xid (PCI:0000:00:08): 94, pid='<unknown>', name=<unknown>, Contained: SM "
     "(0x1). RST: No, D-RST: No", "ras_uncorrectable", kl.HARD, 94),
    # the same line, hand-made with the driver asking for a (drain and) reset: hard
    ("NVRM: Xid (PCI:0000:00:08): 94, pid='<unknown>', name=<unknown>, Contained: SM (0x1). RST: Yes, D-RST: No",
     "ras_uncorrectable", kl.HARD, 94),
    ("NVRM: Xid (PCI:0000:00:08): 94, pid='<unknown>', name=<unknown>, Contained: SM (0x1). RST: No, D-RST: Yes",
     "ras_uncorrectable", kl.HARD, 94),
    # leptonai/gpud#1174 (GB200 kmsg lines quoted in the PR): Nonfatal -> soft, Fatal -> RESET_GPU
    ("NVRM: Xid (PCI:0018:01:00): 145, RLW_RXPIPE Nonfatal XC0 i0 Link 13 (0x0409a0c2 0x00000008 0x00000001 "
     "0x00000000 0x00100000 0x00000004)", "nvlink_error", kl.SOFT, 145),
    ("NVRM: Xid (PCI:0019:01:00): 149, NETIR Fatal XC0 i0 Link -1 (0x000fe406 0x00000000 0x00000000 0x00000000 "
     "0x00000000 0x00000000)", "nvlink_error", kl.HARD, 149),
    # test data of leptonai/gpud and NVIDIA/NVSentinel (the driver's V2 format): Fatal -> RESET_GPU
    ("NVRM: Xid (PCI:0009:01:00): 149, NETIR_LINK_EVT  Fatal   XC0 i0 Link 01 (0x021425c6 0x00000000 0x00000000 "
     "0x00000000 0x00000000 0x00000000)", "nvlink_error", kl.HARD, 149),
    ("NVRM: Xid (PCI:0000:04:00): 144, SAW_MVB Nonfatal XC0 i0 Link 00 (0x00000001 0x00000001 0x00000000 0x00000000)",
     "nvlink_error", kl.SOFT, 144),
    ("NVRM: Xid (PCI:0000:04:00): 144, SAW_MVB Fatal XC0 i0 Link 00 (0x00000001 0x00000002 0x00000000 0x00000000)",
     "nvlink_error", kl.HARD, 144),
    # hand-made: pid and name before the unit (as gpud's parser allows), "Non-fatal" spelled as the SXids do
    ("NVRM: Xid (PCI:0000:04:00): 146, pid=7, name=python3, TLW_RX_PIPE1 Non-fatal XC0 i0 Link 03 (0x00000010)",
     "nvlink_error", kl.SOFT, 146),
])
def test_real_xid_lines_get_nvidias_verdict(line, category, severity, xid):
    findings = kl.scan([line], boot_time=0.0)
    assert [(f["category"], f["severity"], f["xid"]) for f in findings] == [(category, severity, xid)]


def test_real_dmesg_application_xids_then_context_switch_timeout():
    # leptonai/gpud#46: dmesg --ctime of an H100 node (the lines as quoted in the PR): three Xid 13 lines of one
    # fault (RESTART_APP: soft, counted), then Xid 109 (RESET_GPU: hard)
    lines = [
        "[Fri Aug 30 11:11:22 2024] nvidia-peermem nv_get_p2p_free_callback:127 ERROR detected invalid context, "
        "skipping further processing",
        "[Fri Aug 30 11:43:09 2024] NVRM: Xid (PCI:0000:cb:00): 13, pid='<unknown>', name=<unknown>, Graphics SM Warp "
        "Exception on (GPC 7, TPC 7, SM 0): Illegal Instruction Parameter",
        "[Fri Aug 30 11:43:09 2024] NVRM: Xid (PCI:0000:cb:00): 13, pid='<unknown>', name=<unknown>, Graphics SM "
        "Global Exception on (GPC 7, TPC 7, SM 0): Multiple Warp Errors",
        "[Fri Aug 30 11:43:09 2024] NVRM: Xid (PCI:0000:cb:00): 13, pid='<unknown>', name=<unknown>, Graphics "
        "Exception: ESR 0x57c730=0xc04000b 0x57c734=0x24 0x57c728=0x1f81fb60 0x57c72c=0x1174",
        "[Fri Aug 30 11:43:14 2024] NVRM: Xid (PCI:0000:cb:00): 109, pid=1797828, name=pt_main_thread, Ch 00000008, "
        "errorString CTX SWITCH TIMEOUT, Info 0x58005",
    ]
    findings = kl.scan(lines, boot_time=0.0)
    assert [(f["category"], f["severity"], f["xid"], f["count"], f["bdf"]) for f in findings] == [
        ("app_fault", kl.SOFT, 13, 3, "0000:cb:00"), ("gpu_hang", kl.HARD, 109, 1, "0000:cb:00")]
    assert findings[1]["fix"].startswith("NVIDIA: reset the GPU")


# Hand-made from the catalog's rows (no public line found): the Xids it added after 150, and its informational ones.
@pytest.mark.parametrize("xid,category,severity", [
    (151, "gpu_error", kl.HARD),            # RESTART_VM
    (155, "nvlink_error", kl.HARD),         # RESET_GPU
    (156, "memory_remap", kl.HARD),         # RESET_GPU: the retirement takes effect at the reset
    (157, "memory_remap_failed", kl.SOFT),  # IGNORE: "You may still run workloads"
    (158, "gpu_hang", kl.HARD),             # RESET_GPU
    (159, "nvlink_error", kl.HARD),         # CHECK_UVM: reset when UVM is in use (CUDA)
    (160, "gpu_error", kl.SOFT), (161, "gpu_error", kl.SOFT),  # IGNORE
    (163, "gpu_error", kl.SOFT), (164, "gpu_error", kl.SOFT), (165, "gpu_error", kl.SOFT),  # power smoothing
    (166, "nvlink_error", kl.HARD), (167, "pcie_error", kl.HARD),
    (168, "ras_uncorrectable", kl.HARD),    # enable ECC or reboot
    (169, "firmware_error", kl.HARD),       # micro-controller halt, as 62
    (170, "nvlink_error", kl.HARD),
    (171, "ras_uncorrectable", kl.HARD), (172, "ras_uncorrectable", kl.HARD),  # details of Xid 48
    (54, "init_failed", kl.HARD),           # CHECK_MECHANICALS: auxiliary power not connected
    (78, "init_failed", kl.HARD),           # UPDATE_SWFW: vGPU cannot start
    (40, "app_fault", kl.SOFT), (83, "app_fault", kl.SOFT), (99, "app_fault", kl.SOFT),  # engine exceptions
    (93, "gpu_error", kl.SOFT),             # IGNORE: InfoROM wear limit
    (173, "gpu_error", kl.HARD),            # not in the catalog: unknown, hard
])
def test_newer_and_engine_xids(xid, category, severity):
    line = "NVRM: Xid (PCI:0000:41:00): %d, pid='<unknown>', name=<unknown>, hand-made" % xid
    assert [(f["category"], f["severity"]) for f in kl.scan([line], boot_time=0.0)] == [(category, severity)]


@pytest.mark.parametrize("xid", [14, 106, 107, 162])
def test_informational_xids_are_no_finding(xid):
    # hand-made: 14 "Fake or injected error from userspace", 106/107 SMBPBI test messages, 162 power smoothing back
    lines = ["NVRM: Xid (PCI:0000:41:00): %d, pid='<unknown>', name=<unknown>, hand-made" % xid,
             "NVRM: Xid (PCI:0000:41:00): 45, pid=9, name=python3, Ch 00000001 caused by previous Xid %d" % xid]
    assert kl.scan(lines, boot_time=0.0) == []
    assert xid not in nv_table.XIDS and xid in nv_table.INFORMATIONAL


def test_a_fatal_nvlink_xid_is_never_counted_into_a_nonfatal_one():
    # hand-made from the driver's format: the same number on one GPU, first Nonfatal then Fatal
    lines = ["[ 1.0] NVRM: Xid (PCI:0000:04:00): 145, RLW_SRC_TRACK Nonfatal XC0 i0 Link 03 (0x00000007 0x00000002)",
             "[ 2.0] NVRM: Xid (PCI:0000:04:00): 145, RLW_SRC_TRACK Fatal XC0 i0 Link 03 (0x00000007 0x00000001)",
             "[ 2.1] NVRM: Xid (PCI:0000:04:00): 45, pid=5, name=python3, Ch 00000002 caused by previous Xid 145"]
    findings = kl.scan(lines, boot_time=0.0)
    assert [(f["severity"], f["xid"], f["count"], f["caused_xids"]) for f in findings] == [
        (kl.SOFT, 145, 1, []), (kl.HARD, 145, 2, [45])]


def test_xid_forms_and_collapse_per_gpu_and_xid():
    lines = [
        "NVRM: Xid (PCI:0000:41:00): 13, pid=1, name=a, Graphics Exception: ESR 0x404490=0x80000001",
        "NVRM: Xid (PCI:0000:41:00): 13, pid=2, name=b, Graphics SM Warp Exception on (GPC 0, TPC 1)",
        "NVRM: Xid (0000:42:00): 13, C 00000005 SC 00000007 M 00001ffc Data ffffffff",      # old drivers
        "NVRM: Xid (PCI:0000:43:00 GPU-I:05): 94, pid=7194, Contained: CE User Channel (0x9). RST: No, D-RST: No",
    ]
    findings = kl.scan(lines)
    assert [(f["bdf"], f["xid"], f["count"]) for f in findings] == [
        ("0000:41:00", 13, 2), ("0000:42:00", 13, 1), ("0000:43:00", 94, 1)]


def test_caused_by_previous_xid_is_folded_into_its_cause():
    lines = [
        "[ 10.0] NVRM: Xid (PCI:0000:dc:00): 149, pid=1, name=python3, NETIR_LINK_DOWN",
        "[ 10.1] NVRM: Xid (PCI:0000:dc:00): 45, pid=1, name=python3, Ch 00000001 caused by previous Xid 149",
        "[ 10.2] NVRM: Xid (PCI:0000:dc:00): 45, pid=2, name=python3, Ch 00000002 caused by previous Xid 149",
        "[ 10.3] NVRM: Xid (PCI:0000:ed:00): 45, pid=3, name=python3, Ch 00000003",   # on its own: application
        "[ 10.4] NVRM: Xid (PCI:0000:ed:00): 45, pid=4, name=python3, caused by previous Xid 48",
    ]
    findings = kl.scan(lines, boot_time=0.0)
    assert [(f["bdf"], f["category"], f["severity"], f["xid"], f["count"], f["caused_xids"]) for f in findings] == [
        ("0000:dc:00", "nvlink_error", kl.HARD, 149, 3, [45]),
        ("0000:ed:00", "app_fault", kl.SOFT, 45, 1, []),
        ("0000:ed:00", "ras_uncorrectable", kl.HARD, 48, 1, [45]),
    ]
    assert findings[0]["message"].startswith("NVRM: Xid (PCI:0000:dc:00): 149")
    assert (findings[0]["first_epoch"], findings[0]["last_epoch"]) == (10.0, 10.2)


def test_xid_154_back_to_none_recovers_what_it_asked_for():
    lines = [
        "[ 20.0] NVRM: Xid (PCI:0000:01:00): 119, pid='N/A', Timeout waiting for RPC from GSP",
        "[ 20.1] NVRM: Xid (PCI:0000:01:00): 154, GPU recovery action changed from 0x0 (None) to 0x1 (GPU Reset Required)",
        "[ 90.0] NVRM: Xid (PCI:0000:01:00): 154, GPU recovery action changed from 0x1 (GPU Reset Required) to 0x0 (None)",
    ]
    findings = kl.scan(lines, boot_time=0.0)
    assert [(f["category"], f["severity"], f["xid"], f["recovered"], f["hung"]) for f in findings] == [
        ("firmware_error", kl.HARD, 119, False, None),   # what broke stays
        ("gpu_reset", kl.SOFT, 154, True, "GPU Reset Required"),
    ]
    assert kinds(kl.scan(lines[:2], boot_time=0.0))[1] == ("recovery_required", kl.HARD, "0000:01:00")


@pytest.mark.parametrize("line,bdf,severity", [
    ("amdgpu 0000:03:00.0: PCIe Bus Error: severity=Uncorrected (Fatal), type=Transaction Layer, (Requester ID)",
     "0000:03:00.0", kl.HARD),
    ("amdgpu 0000:03:00.0: PCIe Bus Error: severity=Uncorrectable (Non-Fatal), type=Transaction Layer, (Requester ID)",
     "0000:03:00.0", kl.SOFT),
    ("nvidia 0000:63:00.0: PCIe Bus Error: severity=Uncorrectable (Fatal), type=Data Link Layer, (Receiver ID)",
     "0000:63:00.0", kl.HARD),
    # the bridge's own line stays host level; a corrected error's detail line is no finding (the port's
    # "AER: Corrected error received" header is the soft one)
    ("pcieport 0000:00:01.1: PCIe Bus Error: severity=Uncorrected (Fatal), type=Transaction Layer, (Requester ID)",
     None, None),
    ("amdgpu 0000:03:00.0: PCIe Bus Error: severity=Corrected, type=Physical Layer, (Receiver ID)", None, None),
])
def test_a_gpus_own_uncorrected_pcie_error_names_it(line, bdf, severity):
    findings = kl.scan(["[ 9.1] " + line], boot_time=0.0)
    assert [(f["category"], f["bdf"], f["severity"]) for f in findings] == ([("pcie_error", bdf, severity)] if severity else [])


@pytest.mark.parametrize("line,severity", [
    ("pciehp 0000:00:1c.5:pcie004: Slot(0-1): Card not present", kl.SOFT),   # an NVMe drive pulled
    ("pcieport 0000:00:01.1: pciehp: Slot(0): Card not present", kl.SOFT),
    ("pcieport 0000:00:01.1: pciehp: Slot(0): Link Down", kl.HARD),
])
def test_pciehp_card_not_present_is_soft_because_any_slot_prints_it(line, severity):
    findings = kl.scan(["[ 7.2] " + line], boot_time=0.0, vendors="nvidia")
    assert [(f["category"], f["severity"], f["bdf"], f["vendor"]) for f in findings] == [
        ("bus_lost", severity, None, None)]


def test_nvswitch_sxids_are_host_level_fatal_hard_non_fatal_soft():
    lines = ["[ 30.0] nvidia-nvswitch2: SXid (PCI:0000:07:00.0): 24007, Fatal, Link 45 LTSSM Fault Up",
             "[ 30.1] nvidia-nvswitch2: SXid (PCI:0000:07:00.0): 24007, Severity 1 Engine instance 45 Sub-engine 0",
             "[ 30.2] nvidia-nvswitch2: SXid (PCI:0000:07:00.0): 20034, Fatal, Link 45 LTSSM Fault Up",
             "[ 31.0] nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 19084, Non-fatal, Link 32 AN1 Heartbeat Timeout Error"]
    findings = kl.scan(lines, vendors="nvidia", boot_time=0.0)
    assert [(f["category"], f["severity"], f["bdf"], f["xid"], f["vendor"], f["count"]) for f in findings] == [
        ("nvlink_error", kl.HARD, None, None, "nvidia", 2), ("nvlink_error", kl.SOFT, None, None, "nvidia", 1)]
    assert findings[0]["summary"] == "NVSwitch fatal SXid (NVLink fabric error)" and "SXid" in findings[0]["fix"]
    assert kl.scan(lines, vendors="amd") == []
    # resolving addresses never turns the switch's address into a GPU's
    assert [f["bdf"] for f in kl.resolve_addresses(findings, ["0000:07:00.0"])] == [None, None]


def test_resolve_addresses_completes_a_partial_address_to_the_one_gpu():
    findings = kl.scan([
        "NVRM: Xid (PCI:0000:01:00): 79, GPU has fallen off the bus.",
        "NVRM: Xid (PCI:0000:02:00): 13, pid=1, name=a, Graphics Exception",
        "NVRM: Xid (PCI:0000:03:00): 48, pid=1, name=a, DBE",
        "NVRM: GPU 0000:04:00.0: RmInitAdapter failed! (0x24:0x72:1568)",
    ])
    gpus = ["0000:01:00.0", "0000:02:00.0", "0000:02:00.1", "0000:04:00.0", "garbage", None]
    resolved = kl.resolve_addresses(findings, gpus)
    # 01:00 -> its one function; 02:00 matches two (left alone); 03:00 matches none (left alone).
    assert [f["bdf"] for f in resolved] == ["0000:01:00.0", "0000:02:00", "0000:03:00", "0000:04:00.0"]
    assert findings[0]["bdf"] == "0000:01:00"  # the input is not changed
    assert kl.resolve_addresses(findings, ["0000:01:00.0".upper()])[0]["bdf"] == "0000:01:00.0"
    assert kl.resolve_addresses([], gpus) == [] and kl.resolve_addresses(findings, None) == findings


def test_display_functions_read_from_sysfs(tmp_path):
    devices = tmp_path / "bus" / "pci" / "devices"
    for name, cls in (("0000:01:00.0", "0x030000"), ("0000:01:00.1", "0x040300"), ("0000:02:00.0", "0x030200"),
                      ("0000:05:00.0", "0x030000")):
        (devices / name).mkdir(parents=True)
        (devices / name / "class").write_text(cls + "\n")
    assert kl.display_functions(str(tmp_path), ["0000:01:00", "0000:02:00", "0000:09:00"]) == [
        "0000:01:00.0", "0000:02:00.0"]
    assert kl.display_functions(str(tmp_path / "missing"), ["0000:01:00"]) == []
    assert kl.display_functions(str(tmp_path), ["0000:01:00.0", None]) == []


@pytest.mark.parametrize("vendors,expected", [
    (None, ["amd", "nvidia", None]), ("auto", ["amd", "nvidia", None]), ("amd", ["amd", None]),
    ("nvidia", ["nvidia", None]), (["amd", "nvidia"], ["amd", "nvidia", None]),
])
def test_vendors_choose_the_tables_bridges_always_count(vendors, expected):
    lines = ["amdgpu 0000:03:00.0: amdgpu: SMU is in hanged state, failed to send smu message!",
             "NVRM: Xid (PCI:0000:01:00): 79, GPU has fallen off the bus.",
             "pcieport 0000:00:01.1: pciehp: Slot(0): Link Down"]
    assert [f["vendor"] for f in kl.scan(lines, vendors=vendors)] == expected


@pytest.mark.parametrize("vendors", ["intel", ["amd", "xe"], []])
def test_unknown_vendor_is_a_clear_error(vendors):
    with pytest.raises(ValueError, match="vendors: .* is not one of auto, amd, nvidia"):
        kl.scan([], vendors=vendors)


@pytest.mark.parametrize("line", [
    # Healthy-boot lines that look alarming.
    "amdgpu 0000:03:00.0: amdgpu: SMU driver if version not matched",
    "amdgpu 0000:03:00.0: amdgpu: SMU is resuming...",
    "amdgpu 0000:03:00.0: amdgpu: SMU is resumed successfully!",
    "amdgpu 0000:03:00.0: amdgpu: RAP: optional rap ta ucode is not available",
    "amdgpu 0000:03:00.0: amdgpu: DF poison setting is inconsistent(1:0:0:0)!",
    "amdgpu 0000:03:00.0: amdgpu: Poison setting is inconsistent in DF/UMC(0:1)!",
    "amdgpu 0000:03:00.0: amdgpu: ring kiq_2.1.0 uses VM inv eng 11 on hub 0",
    "[drm] kiq ring mec 2 pipe 1 q 0",
    "NVRM: loading NVIDIA UNIX x86_64 Kernel Module  535.183.01  Sun May 12 19:39:15 UTC 2024",
    "NVRM: GPU at PCI:0000:00:05: GPU-efbdfde9-5798-a6e7-4c46-12518fa15375",
    "nvidia_uvm: module uses symbols from proprietary module nvidia, inheriting taint.",
    "nvidia 0000:02:00.0: device has no AER-aware driver",
    # other drivers' devices on a bridge with an uncorrectable error (and nvidia-gpu, Turing's USB-C controller)
    "ahci 0000:01:00.0: AER: can't recover (no error_detected callback)",
    "snd_hda_intel 0000:03:00.1: AER: can't recover (no error_detected callback)",
    "nvidia-gpu 0000:01:00.3: AER: can't recover (no error_detected callback)",
    "pcieport 0000:00:01.1: pciehp: Slot #0 AttnBtn- PwrCtrl- MRL- AttnInd- PwrInd- HotPlug+ Surprise+",
    # Real boot warnings of a healthy RX 9070 XT (ROCm/legacy-rocm-build#6073, "The system is functional")
    "amdgpu 0000:03:00.0: [drm] REG_WAIT timeout 1us * 150000 tries - optc401_disable_crtc line:235",
    "amdgpu 0000:03:00.0: amdgpu: [drm] Failed to setup vendor infoframe on connector HDMI-A-1: -22",
    "amdgpu 0000:03:00.0: amdgpu: MES FW version must be >= 0x82 to enable LR compute workaround.",
    # nvidia-modeset and NVRM lines that accompany a lost display or a crash, not failures by themselves
    "nvidia-modeset: WARNING: GPU:0: Lost display notification (0:0x00000000); continuing.",
    "NVRM: A GPU crash dump has been created. If possible, please run",
    "nvidia: module verification failed: signature and/or required key missing - tainting kernel",
    # a GPU bound to vfio-pci being reset by vendor-reset for a VM (gnif/vendor-reset#25): not amdgpu's
    "vfio-pci 0000:0c:00.0: SMU error 0xfd",
    "vfio-pci 0000:0c:00.0: AMD_NAVI14: mode1 reset succeeded",
    "amdgpu 0000:c1:00.0: amdgpu: PCIe error recovery succeeded",
    # amdgpu.debug_mask notices at load (amdgpu_drv.c), not events
    "amdgpu: debug: enable mode2 reset for poison consumption recovery",
    # A reset while the driver initialises (AMD's node-agent excludes "init context").
    "amdgpu 0000:03:00.0: amdgpu: GPU reset succeeded in init context",
    # Zero counts and non-zero responses are not "no response".
    "amdgpu 0000:03:00.0: amdgpu: 0 uncorrectable hardware errors detected in umc block",
    "amdgpu 0000:03:00.0: amdgpu: umc ce count: 0",
    # The same words from other drivers.
    "usb 1-4: reset high-speed USB device number 3 using xhci_hcd",
    "nvme nvme0: I/O 12 QID 3 timeout, reset controller",
    "xe 0000:03:00.0: [drm] device wedged, but recovered through reset",
    "nvme 0000:01:00.0: Unable to change power state from D3cold to D0, device inaccessible",
    "radeon 0000:01:00.0: GPU fault detected: 146 0x0c88480c",
    "applesmc: SMC is not ready",
    "i915 0000:00:02.0: [drm] GPU HANG: ecode 12:1:85dffffb, in Xorg [1234]",
    "postgres: Xid wraparound warning",
    "ipmi_si: Failed to send message 0x12, response 0x0",       # not amdgpu's
    "mlx5_core: failed message, response 0",
    # Page-fault detail lines belong to the header line.
    "amdgpu 0000:03:00.0: amdgpu:   in page starting at address 0x00000002e4cd2000 from client 10",
    "amdgpu 0000:03:00.0: amdgpu: GCVM_L2_PROTECTION_FAULT_STATUS:0x00801031",
    "amdgpu 0000:03:00.0: amdgpu:      Faulty UTCL2 client ID: TCP (0x8)",
    "amdgpu 0000:4e:00.0: {1}[Hardware Error]: aca entry[00].STATUS=0xfaa00000000d080b",
    # Display-only errors: a headless compute GPU has no display to lose (NixOS/nixpkgs#419838, #176915,
    # freedesktop.org bug 109955).
    "amdgpu 0000:03:00.0: [drm] *ERROR* dc_dmub_srv_log_diagnostic_data: DMCUB error - collecting diagnostic data",
    "[drm:dc_dmub_srv_wait_idle [amdgpu]] *ERROR* Error waiting for DMUB idle: status=3",
    "[drm:amdgpu_dm_atomic_check [amdgpu]] *ERROR* [CRTC:47:crtc-0] hw_done or flip_done timed out",
    # The firmware loader's line, which optional files print too; zero RAS counts; a reset's stale jobs.
    "amdgpu 0000:00:01.0: Direct firmware load for amdgpu/carrizo_pfp.bin failed with error -2",
    "amdgpu 0000:03:00.0: amdgpu: socket: 0, die: 0, 0 new uncorrectable hardware errors detected in umc block",
    "[drm] Skip scheduling IBs!",
    # Call trace lines naming reset functions.
    " amdgpu_device_gpu_recover.cold+0x47a/0xb3f [amdgpu]",
    "Workqueue: amdgpu-reset-dev amdgpu_amdkfd_reset_work [amdgpu]",
])
def test_no_finding(line):
    assert kl.scan([line]) == []
    assert kl.scan(["[  12.345678] " + line, "2026-11-25T15:00:00,000000+00:00 " + line]) == []


@pytest.mark.parametrize("line,bdf", [
    ("amdgpu 0000:0B:00.0: amdgpu: GPU reset begin!", "0000:0b:00.0"),
    ("[drm:amdgpu_device_gpu_recover [amdgpu]] *ERROR* ASIC reset failed with error, -121 for drm dev, 0000:83:00.0", GPU83),
    ("[drm:amdgpu_job_timedout [amdgpu]] *ERROR* ring gfx_0.0.0 timeout on 0000:22:00.0", "0000:22:00.0"),
    ("amdgpu: probe of 0000:05:00.0 failed with error -22", "0000:05:00.0"),
    ("[drm:amdgpu_job_timedout [amdgpu]] *ERROR* ring gfx_0.0.0 timeout, signaled seq=1, emitted seq=3", None),
    ("pcieport 0000:00:01.1: pciehp: Slot(0): Link Down", None),
    # A GPU address named by a non-amdgpu device's line is not attributed.
    ("pcieport 0000:00:01.1: Unable to change power state from D0 to D3hot, device inaccessible 0000:03:00.0", None),
    ("pcieport 0000:00:02.0: AER: Uncorrected (Fatal) error received: 0000:02:00.0", None),
    ("NVRM: Xid (PCI:0000:0A:00): 79, GPU has fallen off the bus.", "0000:0a:00"),
    ("NVRM: GPU 0000:2b:00.0: GPU has fallen off the bus.", "0000:2b:00.0"),
    ("NVRM: GPU at PCI:0000:2b:00: GPU has fallen off the bus.", "0000:2b:00"),
    ("NVRM: GPU0 krcWatchdog_IMPL: RC watchdog: GPU is probably locked!", None),
    ("nvidia 0000:63:00.0: AER: can't recover (no error_detected callback)", "0000:63:00.0"),
    ("nvidia 0000:2c:00.0: probe with driver nvidia failed with error -1", "0000:2c:00.0"),
])
def test_bdf_attribution(line, bdf):
    findings = kl.scan([line])
    assert len(findings) == 1 and findings[0]["bdf"] == bdf


# NVRM prints "fallen off the bus" without an Xid as ONE message of three lines (NVIDIA/NVSentinel#155); dmesg
# and the journal indent the lines after the first and give them no stamp; rsyslog writes it on one line with
# "#012" for each newline.
FALLEN = ["NVRM: The NVIDIA GPU %s", "NVRM: (PCI ID: 10de:26b5) installed in this system has",
          "NVRM: fallen off the bus and is not responding to commands."]


def test_a_multi_line_message_names_its_gpu_on_its_first_line():
    dmesg = ["[ 1843.308145] " + FALLEN[0] % "0000:b3:00.0", "               " + FALLEN[1],
             "               " + FALLEN[2]]
    head = "2026-11-25T15:00:00.123456+0000 rig07 kernel: "
    journal = [head + FALLEN[0] % "0000:b3:00.0"] + [" " * len(head) + line for line in FALLEN[1:]]
    rsyslog = ["Nov 25 15:00:00 rig07 kernel: " + "#012".join(FALLEN) % "0000:b3:00.0"]
    for lines in (dmesg, journal, rsyslog):
        findings = kl.scan(lines, boot_time=0.0)
        assert [(f["category"], f["severity"], f["bdf"], f["gpu_health"]) for f in findings] == [
            ("bus_lost", kl.HARD, "0000:b3:00.0", "lost")], lines


def test_a_continuation_takes_the_gpu_of_its_own_message_only():
    two = []
    for seconds, bdf in ((1.0, "0000:b3:00.0"), (2.0, "0000:c4:00.0")):
        two += ["[%12.6f] " % seconds + FALLEN[0] % bdf, "               " + FALLEN[1], "               " + FALLEN[2]]
    assert [(f["bdf"], f["count"]) for f in kl.scan(two, boot_time=0.0)] == [("0000:b3:00.0", 1), ("0000:c4:00.0", 1)]
    # another message between: the continuation's message is that one, which names no GPU
    between = ["[ 1.0] " + FALLEN[0] % "0000:b3:00.0", "[ 1.1] usb 1-4: new high-speed USB device number 3",
               "               " + FALLEN[2]]
    # lines that are not indented are messages of their own, even without stamps
    flat = [FALLEN[0] % "0000:b3:00.0", FALLEN[1], FALLEN[2]]
    # a log pasted indented: a stamped line is the first line of its message, however far it is indented
    indented = ["    [ 1.0] " + FALLEN[0] % "0000:b3:00.0", "    [ 1.1] usb 1-4: new high-speed USB device number 3",
                "                   " + FALLEN[2]]
    for lines in (between, flat, indented):
        assert [f["bdf"] for f in kl.scan(lines, boot_time=0.0)] == [None], lines


# The kernel's syslog interface (rsyslog/klogd files, busybox dmesg, dmesg -S) repeats a multi-line record's
# prefix on every line: the same syslog stamp, host and monotonic stamp. This is the wording and layout of a
# real /var/log/syslog excerpt (an H800 node, driver 525.125.06, published in a public Chinese GPU-operator
# troubleshooting note).
SYSLOG_HEAD = "Jan  3 07:39:45 ubuntu kernel: [17257.355375] "
SYSLOG_FALLEN = [SYSLOG_HEAD + "NVRM: The NVIDIA GPU 0000:5d:00.0",
                 SYSLOG_HEAD + "NVRM: (PCI ID: 10de:2330) installed in this system has",
                 SYSLOG_HEAD + "NVRM: fallen off the bus and is not responding to commands.",
                 "Jan  3 07:39:45 ubuntu kernel: [17257.355551] nvidia: probe of 0000:5d:00.0 failed with error -1"]


def test_a_record_with_its_prefix_on_every_line_names_its_gpu_on_its_first_line():
    findings = kl.scan(SYSLOG_FALLEN, boot_time=0.0, now=1767500000.0)
    assert [(f["category"], f["bdf"], f["gpu_health"]) for f in findings] == [
        ("bus_lost", "0000:5d:00.0", "lost"), ("init_failed", "0000:5d:00.0", None)]
    # busybox dmesg / dmesg -S: the monotonic stamp on every line
    busybox = ["[ 1843.308145] " + line % "0000:b3:00.0" if "%s" in line else "[ 1843.308145] " + line
               for line in FALLEN]
    assert [(f["bdf"], f["gpu_health"]) for f in kl.scan(busybox, boot_time=0.0)] == [("0000:b3:00.0", "lost")]


def test_a_stamped_continuation_takes_no_other_messages_gpu():
    # the line before has another stamp: another record
    other_stamp = ["[ 1.000000] " + FALLEN[0] % "0000:b3:00.0", "[ 1.000000] " + FALLEN[1],
                   "[ 2.000000] " + FALLEN[2]]
    # the line before ends its sentence: a message of its own, though printed in the same second
    finished = ["Jan  3 07:39:45 h kernel: NVRM: GPU 0000:c4:00.0: GPU has fallen off the bus.",
                "Jan  3 07:39:45 h kernel: NVRM: fallen off the bus and is not responding to commands."]
    # another driver's line between
    other_tag = ["[ 1.0] " + FALLEN[0] % "0000:b3:00.0", "[ 1.0] usb 1-4: new high-speed USB device number 3",
                 "[ 1.0] " + FALLEN[2]]
    assert [f["bdf"] for f in kl.scan(other_stamp, boot_time=0.0)] == [None]
    assert [f["bdf"] for f in kl.scan(finished, boot_time=0.0, now=1767500000.0)] == ["0000:c4:00.0", None]
    assert [f["bdf"] for f in kl.scan(other_tag, boot_time=0.0)] == [None]
    # two GPUs' records one after the other, same second: each continuation takes its own record's GPU
    two = [line.replace("0000:5d", "0000:3b") for line in SYSLOG_FALLEN[:3]] + SYSLOG_FALLEN[:3]
    assert [(f["bdf"], f["count"]) for f in kl.scan(two, boot_time=0.0, now=1767500000.0)] == [
        ("0000:3b:00.0", 1), ("0000:5d:00.0", 1)]


def test_same_message_on_two_gpus_stays_two_findings():
    lines = [
        "[1.0] amdgpu 0000:03:00.0: amdgpu: SMU: response:0xFFFFFFFF for index:59 param:0x00000000 message:DFCstateControl?",
        "[2.0] amdgpu 0000:83:00.0: amdgpu: SMU: response:0xFFFFFFFF for index:59 param:0x00000000 message:DFCstateControl?",
        "[3.0] amdgpu 0000:83:00.0: amdgpu: SMU: response:0xFFFFFFFF for index:60 param:0x00000001 message:DFCstateControl?",
    ]
    findings = kl.scan(lines, boot_time=0.0)
    assert [(f["bdf"], f["count"], f["first_epoch"], f["last_epoch"]) for f in findings] == [
        (GPU03, 1, 1.0, 1.0), (GPU83, 2, 2.0, 3.0)]


# -- recovery in sequence -------------------------------------------------------------------------

def amd(bdf, text, seconds):
    return "[%10.6f] amdgpu %s: amdgpu: %s" % (seconds, bdf, text)


HANG = [amd(GPU03, "ring gfx_0.0.0 timeout, signaled seq=1, emitted seq=3", 100.0),
        amd(GPU03, " Process Main pid 65975 thread vkd3d_queue pid 66181", 100.0),
        amd(GPU03, "Starting gfx_0.0.0 ring reset", 100.1),
        amd(GPU03, "Ring gfx_0.0.0 reset failed", 102.3),
        amd(GPU03, "GPU reset begin!", 102.3),
        amd(GPU03, "MES(1) failed to respond to msg=REMOVE_QUEUE", 108.4),
        "[ 108.500000] [drm:gfx_v12_0_hw_fini [amdgpu]] *ERROR* failed to halt cp gfx",
        amd(GPU03, "MODE1 reset", 109.0)]


def test_hang_then_full_reset_that_succeeded_is_one_soft_recovered_reset():
    lines = HANG + [amd(GPU03, "GPU reset succeeded, trying to resume", 110.0),
                    "[ 110.100000] [drm] VRAM is lost due to GPU reset!",
                    amd(GPU03, "GPU reset(1) succeeded!", 111.0),
                    amd(GPU03, "[gfxhub] page fault (src_id:0 ring:24 vmid:8 pasid:32776)", 500.0)]
    stats = {}
    findings = kl.scan(lines, boot_time=1000.0, stats=stats)
    assert [(f["category"], f["severity"], f["bdf"], f["recovered"], f["hung"], f["count"]) for f in findings] == [
        ("gpu_reset", kl.SOFT, GPU03, True, "ring gfx_0.0.0 timeout", 1),
        ("page_fault", kl.SOFT, GPU03, False, None, 1),   # not part of the recovery
    ]
    recovered = findings[0]
    assert (recovered["first_epoch"], recovered["last_epoch"]) == (1100.0, 1111.0)
    assert recovered["message"] == "amdgpu 0000:03:00.0: amdgpu: GPU reset(1) succeeded!"
    assert recovered["summary"] == "GPU recovered by a reset after a hang" and recovered["vendor"] == "amd"
    assert stats["recovered"] == 1


@pytest.mark.parametrize("after,why", [
    ([], "no success line"),
    ([amd(GPU03, "GPU reset(1) failed", 110.0)], "the reset failed"),
    ([amd(GPU03, "GPU reset end with ret = -110", 110.0)], "the reset failed"),
    ([amd(GPU03, "GPU reset succeeded, trying to resume", 110.0),
      amd(GPU03, "resume of IP block <psp> failed -62", 110.5)], "the resume failed"),
    ([amd(GPU03, "GPU reset(1) succeeded!", 110.0),
      "[ 120.0] [drm:amdgpu_device_ip_init [amdgpu]] *ERROR* hw_init of IP block <gfx_v11_0> failed -110"],
     "an init failure after it, naming no GPU"),
    ([amd(GPU03, "GPU mode1 reset failed", 109.5), amd(GPU03, "GPU reset succeeded, trying to resume", 110.0)],
     "a reset step failed and only 'trying to resume' followed"),
])
def test_a_reset_that_did_not_recover_stays_hard(after, why):
    findings = kl.scan(HANG + after, boot_time=0.0)
    assert not [f for f in findings if f["recovered"]], why
    assert ("gpu_reset_failed", kl.HARD, GPU03) in kinds(findings)   # the ring reset that failed
    assert ("gpu_hang", kl.HARD, GPU03) in kinds(findings)


def test_a_failed_step_then_the_final_success_line_recovers():
    lines = HANG + [amd(GPU03, "GPU mode1 reset failed", 109.5), amd(GPU03, "GPU reset(2) succeeded!", 115.0)]
    assert [(f["category"], f["recovered"]) for f in kl.scan(lines, boot_time=0.0)] == [("gpu_reset", True)]


def test_smu_bus_and_ras_findings_stay_hard_whatever_follows():
    lines = [amd(GPU03, "ring gfx_0.0.0 timeout, signaled seq=1, emitted seq=3", 1.0),
             amd(GPU03, "SMU: response:0xFFFFFFFF for index:59 param:0x00000000 message:DFCstateControl?", 2.0),
             amd(GPU03, "2 uncorrectable hardware errors detected in umc block", 3.0),
             "[ 4.0] pcieport 0000:00:01.1: pciehp: Slot(0): Link Down",
             amd(GPU03, "GPU reset(1) succeeded!", 5.0)]
    assert kinds(kl.scan(lines, boot_time=0.0)) == [
        ("gpu_reset", kl.SOFT, GPU03), ("smu_no_response", kl.HARD, GPU03), ("ras_uncorrectable", kl.HARD, GPU03),
        ("bus_lost", kl.HARD, None)]


def test_per_queue_reset_that_succeeded_and_repeats_collapse():
    episode = [amd(GPU03, "ring comp_1.1.0 timeout, signaled seq=125, emitted seq=129", 1.0),
               amd(GPU03, "Starting comp_1.1.0 ring reset", 1.0),
               amd(GPU03, "Ring comp_1.1.0 reset succeeded", 1.1),
               "[ 1.2] amdgpu 0000:03:00.0: [drm] device wedged, but recovered through reset"]
    later = [line.replace("[  ", "[ 9") for line in episode]
    findings = kl.scan(episode + later, boot_time=0.0)
    assert [(f["category"], f["recovered"], f["count"], f["hung"]) for f in findings] == [
        ("gpu_reset", True, 2, "ring comp_1.1.0 timeout")]


def test_recoveries_are_per_gpu():
    lines = [amd(GPU03, "ring gfx_0.0.0 timeout, signaled seq=1, emitted seq=3", 1.0),
             amd(GPU83, "ring sdma0 timeout, signaled seq=1, emitted seq=3", 1.5),
             amd(GPU83, "GPU reset begin!", 2.0),
             amd(GPU03, "GPU reset begin!", 2.0),
             amd(GPU83, "GPU reset(1) failed", 3.0),
             amd(GPU03, "GPU reset(1) succeeded!", 3.0)]
    findings = kl.scan(lines, boot_time=0.0)
    assert [(f["category"], f["bdf"], f["recovered"]) for f in findings] == [
        ("gpu_reset", GPU03, True), ("ring_timeout", GPU83, False), ("gpu_reset", GPU83, False),
        ("gpu_reset_failed", GPU83, False)]


def test_hang_lines_that_name_no_gpu_join_the_gpu_that_resets():
    lines = ["[ 2237.944235] [drm:amdgpu_job_timedout [amdgpu]] *ERROR* ring sdma0 timeout, signaled seq=1, emitted seq=3",
             "[ 2237.944505] [drm:amdgpu_job_timedout [amdgpu]] *ERROR* Process information: process  pid 0 thread  pid 0",
             amd("0000:0a:00.0", "GPU reset begin!", 2237.95),
             "[ 2238.057611] amdgpu: failed to remove hardware queue from MES, doorbell=0x1002",
             "[ 2238.057615] amdgpu: Failed to evict queue 1",
             amd("0000:0a:00.0", "GPU reset(1) succeeded!", 2240.0)]
    findings = kl.scan(lines, boot_time=0.0)
    assert [(f["category"], f["bdf"], f["recovered"], f["hung"]) for f in findings] == [
        ("gpu_reset", "0000:0a:00.0", True, "ring sdma0 timeout")]
    assert findings[0]["first_epoch"] == 2237.944235
    # Too far before the reset, the GPU-less hang line stays on its own.
    far = lines[:1] + ["[ 2237.95] usb 1-4: new device"] * 60 + lines[2:]
    assert kinds(kl.scan(far, boot_time=0.0))[:2] == [("ring_timeout", kl.SOFT, None), ("gpu_reset", kl.SOFT, "0000:0a:00.0")]


def test_what_hung_is_named_by_the_first_hang_line():
    lines = [amd(GPU03, "IP block:gfx_v11_0 is hung!", 1.0), amd(GPU03, "ring mes_kiq_3.1.0 test failed (-110)", 2.0),
             amd(GPU03, "GPU reset(1) succeeded!", 3.0)]
    assert [f["hung"] for f in kl.scan(lines, boot_time=0.0)] == ["IP block:gfx_v11_0 is hung"]
    lines = ["[ 1.0] amdgpu: Failed to evict queue 10", amd(GPU03, "GPU reset begin!", 1.5),
             amd(GPU03, "GPU reset(1) succeeded!", 3.0)]
    assert [(f["hung"], f["first_epoch"]) for f in kl.scan(lines, boot_time=0.0)] == [("queue eviction failed", 1.0)]


def test_a_reset_nothing_hung_before_is_its_own_soft_finding():
    findings = kl.scan([amd(GPU03, "GPU reset(1) succeeded!", 1.0)], boot_time=0.0)
    assert [(f["category"], f["severity"], f["recovered"]) for f in findings] == [("gpu_reset", kl.SOFT, False)]


def test_since_applies_before_the_sequence():
    lines = HANG + [amd(GPU03, "GPU reset(1) succeeded!", 111.0)]
    findings = kl.scan(lines, since=1110.5, boot_time=1000.0)
    assert [(f["category"], f["recovered"]) for f in findings] == [("gpu_reset", False)]


# -- times ----------------------------------------------------------------------------------------

def test_epochs_are_always_computed_and_since_filters():
    lines = [
        "2025-12-31T23:58:20.000000+0000 rig07 kernel: amdgpu 0000:0b:00.0: amdgpu: SMU is in hanged state",
        "2026-01-01T00:00:00.000000+0000 rig07 kernel: amdgpu 0000:0c:00.0: amdgpu: SMU is in hanged state",
        "2026-01-01T01:01:40,000000+01:00 amdgpu 0000:0d:00.0: amdgpu: SMU is in hanged state",
        "kern  :err   : 2025-12-31T19:00:01,000000-05:00 amdgpu 0000:0e:00.0: amdgpu: SMU is in hanged state",
        "172.20.0.2: kern:    err: [2026-01-01T00:00:02.5Z]: amdgpu 0000:0f:00.0: amdgpu: SMU is in hanged state",
    ]
    findings = kl.scan(lines)
    assert [f["first_epoch"] for f in findings] == [T - 100, T, T + 100, T + 1, T + 2.5]
    assert [f["first_seen"] for f in findings][4] == "2026-01-01T00:00:02.5Z"
    stats = {}
    assert [f["bdf"] for f in kl.scan(lines, since=T, stats=stats)] == [
        "0000:0c:00.0", "0000:0d:00.0", "0000:0e:00.0", "0000:0f:00.0"]
    assert stats["too_old"] == 1


def test_rfc5424_and_year_first_syslog_lines_are_dated_and_their_headers_dropped():
    xid = "NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus."
    lines = ["<4>1 2025-12-31T23:58:20.123456+00:00 rig07 kernel - - - " + xid.replace("3b", "3c"),
             "1 2026-01-01T00:00:00Z rig07 kernel - - [origin software=\"rsyslogd\"] " + xid.replace("3b", "3d"),
             "2026 Jan 01 00:00:05 rig07 kernel: " + xid.replace("3b", "3e")]
    findings = kl.scan(lines, since=T - 50)
    assert [(f["bdf"], f["message"]) for f in findings] == [
        ("0000:3d:00", xid.replace("3b", "3d")), ("0000:3e:00", xid.replace("3b", "3e"))]
    assert findings[0]["first_epoch"] == T and findings[0]["first_seen"] == "2026-01-01T00:00:00Z"
    assert findings[1]["first_seen"] == "2026 Jan 01 00:00:05"
    assert findings[1]["first_epoch"] == _timeparse.local_epoch(2026, 1, 1, 0, 0, 5)
    assert kl.scan(lines[:1])[0]["first_epoch"] == T - 100 + 0.123456


def test_journal_short_unix_and_kmsg_records_are_dated():
    lines = [
        "1764082800.250000 rig07 kernel: amdgpu 0000:03:00.0: amdgpu: SMU: No response msg_reg: 12 resp_reg: 0",
        # /dev/kmsg as read: priority, sequence, microseconds since the boot, flags (a caller id among them)
        "4,9921,9370042162,-;NVRM: Xid (PCI:0000:17:00): 119, pid=5678, name=python3, Timeout waiting for RPC from GSP",
        "3,9922,9371000000,-,caller=T140;NVRM: Xid (PCI:0000:17:00): 119, pid=5678, name=python3, Timeout waiting",
        " SUBSYSTEM=pci",
        " DEVICE=+pci:0000:17:00.0",
    ]
    findings = kl.scan(lines, boot_time=1764000000.0, now=1764100000.0)
    assert [(f["category"], f["bdf"], f["count"], f["first_seen"], f["first_epoch"], f["last_epoch"], f["message"][:12])
            for f in findings] == [
        ("smu_no_response", GPU03, 1, "1764082800.250000", 1764082800.25, 1764082800.25, "amdgpu 0000:"),
        ("firmware_error", "0000:17:00", 2, "9370042162", 1764009370.042162, 1764009371.0, "NVRM: Xid (P"),
    ]


@pytest.mark.parametrize("line", [
    "[Thu Jan  1 00:00:00 2026] [ T1234] NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus.",
    "2026-01-01T00:00:00,000000+00:00 [    T140] NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus.",
    "[ 12.000000] [ T1234] NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus.",
])
def test_the_printk_caller_id_never_stays_in_the_message(line):
    finding = kl.scan([line], boot_time=T)[0]
    assert finding["message"] == "NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus."
    assert finding["first_epoch"] is not None


def test_monotonic_stamps_count_from_this_boot_by_default(monkeypatch):
    calls = []

    def fake_boot_time(*args, **kwargs):
        calls.append(1)
        return T - 1000.0
    monkeypatch.setattr(kl, "read_boot_time", fake_boot_time)
    iso = ["2026-01-01T00:00:00.000000+0000 rig07 kernel: amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!"]
    assert len(kl.scan(iso, now=T)) == 1 and calls == []
    mono = ["[  100.0] amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!",
            "[  300.0] amdgpu 0000:0c:00.0: amdgpu: GPU reset begin!",
            "[ 5000.0] amdgpu 0000:0d:00.0: amdgpu: GPU reset begin!"]   # later than now: another boot
    findings = kl.scan(mono, now=T)
    assert [f["first_epoch"] for f in findings] == [T - 900.0, T - 700.0, None]
    assert calls == [1]
    assert [f["bdf"] for f in kl.scan(mono, since=T - 800.0, now=T)] == ["0000:0c:00.0", "0000:0d:00.0"]


def test_without_a_boot_time_monotonic_lines_are_undated_and_kept(monkeypatch):
    monkeypatch.setattr(kl, "read_boot_time", lambda *a, **k: None)
    findings = kl.scan(["[  1.0] amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!"], since=time.time())
    assert len(findings) == 1 and findings[0]["first_epoch"] is None and findings[0]["first_seen"] == "1.0"


def test_continuation_lines_inherit_the_previous_time():
    lines = [
        "2025-12-31T23:00:00.000000+0000 rig07 kernel: amdgpu: [powerplay] ",
        " failed to send message 146 ret is 0 ",          # old by inheritance
        "2026-01-01T00:00:05.000000+0000 rig07 kernel: amdgpu: [powerplay] ",
        " failed to send pre message 16a ret is 0 ",      # new by inheritance
    ]
    findings = kl.scan(lines, since=T)
    assert [f["message"] for f in findings] == ["failed to send pre message 16a ret is 0"]
    assert (findings[0]["first_seen"], findings[0]["first_epoch"]) == ("2026-01-01T00:00:05.000000+0000", T + 5)


def test_inheritance_through_several_unmatched_lines():
    lines = ["2026-01-01T00:00:05.000000+0000 rig07 kernel: usb 1-4: new device"] + \
        ["   continuation %d" % i for i in range(10)] + \
        ["amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!"]
    assert kl.scan(lines, since=T)[0]["first_epoch"] == T + 5
    assert kl.scan(lines, since=T + 10) == []


def test_a_stamp_that_cannot_be_read_is_stripped_and_not_dated():
    lines = [
        "Feb 25 19:29:40 bc250 kernel: amdgpu 0000:01:00.0: ring sdma0 uses VM inv eng 12 on hub 0",
        "Qqq 25 19:29:48 bc250 kernel: amdgpu 0000:01:00.0: ring sdma0 timeout, signaled seq=309, emitted seq=313",
    ]
    findings = kl.scan(lines, since=time.time() + 86400)   # kept: it cannot be shown to be old
    assert [(f["first_seen"], f["first_epoch"], f["message"][:31]) for f in findings] == [
        ("Qqq 25 19:29:48", None, "amdgpu 0000:01:00.0: ring sdma0")]


# -- robustness -------------------------------------------------------------------------------------

def test_garbage_never_raises_and_every_text_is_valid_utf8():
    rng = random.Random(4268)
    fragments = ["amdgpu ", "0000:zz:00.0: ", "0000:03:00.0: ", "[drm", "SMU: response:0x", "[gfxhub", "ring ",
                 " timeout", "[ 12.5]", "2026-99-99T99:99:99Z ", "kv\u011b 25 ", "Feb 30 25:61:61 h kernel: ",
                 "NVRM: Xid (PCI:0000:01:00): ", "caused by previous Xid ", "154", "\x00", "\ufffd", "\u2028",
                 "\x1b[31m", "GPU reset(", "node-", "fail", "reset", "\t", "\udcff", "\ud800"]
    lines = []
    for _line in range(3000):
        parts = [rng.choice(fragments) if rng.random() < 0.5 else
                 "".join(chr(rng.randrange(0, 0x3000)) for _char in range(rng.randrange(0, 40)))
                 for _part in range(rng.randrange(0, 8))]
        lines.append("".join(parts))
    lines += [b"\xff\xfe amdgpu 0000:03:00.0: amdgpu: GPU reset begin! \x80", None, 12345, "", "\n", "\r\n",
              "amdgpu 0000:03:00.0: amdgpu: SMU is in hanged state \udcff\udc80 \ud800", kl.GAP]
    findings = kl.scan(lines, since=0.0, boot_time=0.0)
    assert any(f["bdf"] == GPU03 and f["category"] == "gpu_reset" for f in findings)  # the bytes line
    assert any(f["bdf"] == GPU03 and f["category"] == "smu_no_response" for f in findings)
    for finding in findings:
        assert set(finding) == FIELDS
        for value in finding.values():
            if isinstance(value, str):
                value.encode("utf-8")   # raises on a lone surrogate


def test_extremely_long_lines_are_capped():
    long_line = "amdgpu 0000:03:00.0: " + "amdgpu " * 300000 + "device inaccessible"
    findings = kl.scan([long_line, "x" * 5000000, "[" * 100000 + "amdgpu: GPU reset begin!"])
    assert findings == []  # the interesting part is past the cap
    assert all(len(f["line"]) <= kl.MAX_LINE_CHARS for f in kl.scan(["amdgpu: GPU reset begin!" + "x" * 9000]))


def test_scan_accepts_a_whole_text_and_bytes():
    text = "\n".join(["[1.0] amdgpu 0000:0d:00.0: amdgpu: SMU: I'm not done with your previous command: x",
                      "[2.0] amdgpu 0000:0d:00.0: amdgpu: Failed to export SMU metrics table!"])
    assert len(kl.scan(text)) == 2
    assert len(kl.scan(text.encode())) == 2
    assert kl.scan([]) == [] and kl.scan("") == []


def test_distinct_messages_beyond_the_cap_collapse_per_category_and_gpu():
    lines = ["amdgpu 0000:03:00.0: amdgpu: IP block:block_%s is hung!" % "".join(chr(97 + (i // 26 ** k) % 26) for k in range(3))
             for i in range(kl.MAX_FINDINGS + 50)]
    findings = kl.scan(lines)
    assert len(findings) == kl.MAX_FINDINGS + 1
    assert sum(f["count"] for f in findings) == kl.MAX_FINDINGS + 50


def test_flood_collapses_into_one_finding():
    lines = []
    for i in range(100000):
        if i % 3:
            lines.append("2026-01-01T00:%02d:%02d.%06d+0000 rig07 kernel: amdgpu 0000:0b:00.0: amdgpu: "
                         "ring comp_1.0.0 uses VM inv eng 1 on hub 0" % (i // 3600 % 60, i // 60 % 60, i))
        else:
            lines.append("2026-01-01T00:%02d:%02d.%06d+0000 rig07 kernel: amdgpu: failed to read reg:%x"
                         % (i // 3600 % 60, i // 60 % 60, i, i))
    findings = kl.scan(lines, since=T)
    assert [(f["category"], f["count"]) for f in findings] == [("register_access_failed", 33334)]


# -- docs/KERNEL_LOG.md is held to the tables ----------------------------------------------------------

DOC = (pathlib.Path(__file__).resolve().parents[4] / "docs" / "KERNEL_LOG.md").read_text(encoding="utf-8")


def doc_rows(heading):
    section = DOC.split("\n## " + heading, 1)[1].split("\n## ", 1)[0]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| ---")][1:]


def test_doc_lists_every_category_with_its_severity():
    rows = dict((row[0].strip("`"), row[1]) for row in doc_rows("Categories"))
    assert sorted(rows) == sorted(kl.CATEGORIES)
    for category, (severity, _fix) in kl.CATEGORIES.items():
        assert rows[category].startswith(severity)


def test_doc_lists_every_xid_with_its_category_and_severity():
    documented = {}
    for row in doc_rows("NVIDIA table"):
        if row[0] == "any other":
            documented["other"] = (row[1].strip("`"), row[2])
            continue
        for part in row[0].split(","):
            first, _dash, last = part.strip().partition("-")
            for xid in range(int(first), int(last or first) + 1):
                assert xid not in documented, xid
                documented[xid] = (row[1].strip("`"), row[2])
    informational = sorted(x for x in documented if documented[x] == ("none", "none"))
    assert informational == sorted(nv_table.INFORMATIONAL)
    assert sorted(x for x in documented if x != "other" and x not in informational) == sorted(nv_table.XIDS)
    for xid, (category, severity, _summary, _fix) in nv_table.XIDS.items():
        assert documented[xid] == (category, severity), xid
    assert documented["other"] == nv_table.UNKNOWN_XID[:2]


def test_doc_amdgpu_table_names_every_amdgpu_category():
    assert sorted(row[0].strip("`") for row in doc_rows("amdgpu table")) == sorted(
        set(p.category for p in kl.PATTERNS if p.vendor == "amd"))


# What a finding does to the GPU it names, as its row declares it (None: the kernel_log check's alone).
@pytest.mark.parametrize("line,health", [
    ("amdgpu 0000:0b:00.0: amdgpu: SMU: response:0xffffffff for index:9 param:0x00000000 message:X?", "degraded"),
    ("amdgpu 0000:0b:00.0: amdgpu: device lost from bus!", "lost"),
    ("pcieport 0000:00:01.1: pciehp: Slot(0): Link Down", "lost"),
    ("pcieport 0000:00:01.1: pciehp: Slot(0): Card not present", None),   # any hot-plug slot's card: not a GPU's
    ("NVRM: Xid (PCI:0000:01:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.", "lost"),
    ("NVRM: Xid (PCI:0000:01:00): 48, pid=1, name=python3, DBE", None),  # NVIDIA's own rule in _gpus
    ("amdgpu 0000:0b:00.0: amdgpu: GPU reset(2) failed", "degraded"),
    ("[drm:amdgpu_device_gpu_recover [amdgpu]] *ERROR* GPU Recovery Failed: -110", "degraded"),
    ("amdgpu 0000:0b:00.0: amdgpu: GPU reset end with ret = -62", "degraded"),
    ("amdgpu 0000:0b:00.0: amdgpu: resume of IP block <smu> failed -5", "degraded"),
    ("amdgpu 0000:0b:00.0: amdgpu: Ring gfx_0.0.0 reset failed", None),   # a full reset follows
    ("amdgpu 0000:05:00.0: amdgpu: socket: 0, die: 0, 1 new uncorrectable hardware errors detected in umc block",
     "degraded"),
    ("amdgpu 0000:05:00.0: amdgpu: socket: 0, die: 0, 1 new deferred hardware errors detected in umc block", "degraded"),
    ("amdgpu 0000:05:00.0: amdgpu: socket: 0, die: 0 0 deferred hardware errors detected in total", None),
    ("amdgpu 0000:05:00.0: amdgpu: Fatal error during GPU init", "degraded"),
    ("amdgpu 0000:0b:00.0: amdgpu: MES failed to respond to msg=REMOVE_QUEUE", None),   # a reset may recover it
    ("amdgpu 0000:0b:00.0: ring gfx_0.0.0 timeout, signaled seq=5, emitted seq=7", None),
])
def test_rows_declare_the_health_their_finding_gives(line, health):
    pattern, match = kl.classify(line)
    got = pattern.rule(match)[6] if pattern is not None else None
    assert got == health


HANG_03 = "[ 4000.1] amdgpu 0000:03:00.0: [drm] *ERROR* ring gfx_0.0.0 timeout, signaled seq=1, emitted seq=3"
DISABLED_03 = "[ 4000.2] amdgpu 0000:03:00.0: amdgpu: GPU recovery disabled."


def test_hang_then_recovery_disabled_degrades_the_gpu():
    stats = {}
    findings = kl.scan([HANG_03, DISABLED_03], boot_time=0.0, stats=stats)
    assert [(f["category"], f["severity"], f["bdf"], f["gpu_health"]) for f in findings] == [
        ("ring_timeout", kl.SOFT, GPU03, None), ("gpu_hang", kl.HARD, GPU03, "degraded")]
    assert stats["matched"] == 2


def test_mes_hang_naming_no_gpu_then_recovery_disabled():
    mes = "[  800.0] [drm:mes_v11_0_submit_pkt_and_poll_completion.constprop.0 [amdgpu]] *ERROR* MES failed to response msg=3"
    findings = kl.scan([mes, DISABLED_03.replace("4000.2", "800.1")], boot_time=0.0)
    assert [(f["category"], f["gpu_health"]) for f in findings] == [("gpu_hang", None), ("gpu_hang", "degraded")]


def test_recovery_disabled_alone_is_no_finding():
    """At boot (amdgpu.gpu_recovery=0, or a timeout with no hardware hang) the line alone says nothing."""
    stats = {}
    assert kl.scan([DISABLED_03, DISABLED_03.replace("4000.2", "4100.0")], boot_time=0.0, stats=stats) == []
    assert stats["matched"] == 0


def test_recovery_disabled_after_a_recovered_hang_is_no_finding():
    reset = ["[ 4000.3] amdgpu 0000:03:00.0: amdgpu: GPU reset begin!",
             "[ 4001.0] amdgpu 0000:03:00.0: amdgpu: GPU reset(1) succeeded!"]
    findings = kl.scan([HANG_03] + reset + [DISABLED_03.replace("4000.2", "4002.0")], boot_time=0.0)
    assert [(f["category"], f["recovered"], f["gpu_health"]) for f in findings] == [("gpu_reset", True, None)]


@pytest.mark.parametrize("wording", ["Uncorrected", "Uncorrectable"])
def test_aer_old_and_new_wording_judged_alike(wording):
    fatal = "[ 9.0] pcieport 0000:00:01.1: AER: %s (Fatal) error message received from 0000:03:00.0" % wording
    non_fatal = "[ 9.1] pcieport 0000:00:01.1: AER: %s (Non-Fatal) error message received from 0000:03:00.0" % wording
    assert [(f["category"], f["severity"], f["bdf"]) for f in kl.scan([fatal, non_fatal], boot_time=0.0)] == [
        ("pcie_error", kl.HARD, None), ("pcie_error", kl.SOFT, None)]


APU = "0000:04:00.0"


def test_mode2_reset_at_boot_or_resume_is_no_finding():
    """Renoir/Cezanne/Barcelo print it at every boot and resume."""
    lines = [amd(APU, "MODE2 reset", 3.0), amd(APU, "MODE2 reset", 5000.0), amd(GPU03, "MODE1 reset", 6.0)]
    stats = {}
    assert kl.scan(lines, boot_time=0.0, stats=stats) == []
    assert stats["matched"] == 0


def test_mode2_reset_after_a_hang_is_part_of_its_recovery():
    lines = [amd(APU, "ring gfx_0.0.0 timeout, signaled seq=1, emitted seq=3", 100.0), amd(APU, "MODE2 reset", 100.5)]
    assert [(f["category"], f["bdf"]) for f in kl.scan(lines, boot_time=0.0)] == [
        ("ring_timeout", APU), ("gpu_reset", APU)]
    recovered = lines + [amd(APU, "GPU reset(1) succeeded!", 101.0)]
    assert [(f["category"], f["recovered"]) for f in kl.scan(recovered, boot_time=0.0)] == [("gpu_reset", True)]


def test_mode2_reset_within_a_reported_gpu_reset_is_a_finding():
    lines = [amd(APU, "GPU reset begin!", 100.0), amd(APU, "MODE2 reset", 100.5)]
    assert [(f["category"], f["summary"]) for f in kl.scan(lines, boot_time=0.0)] == [
        ("gpu_reset", "GPU reset"), ("gpu_reset", "GPU mode reset")]


def test_kfd_skipped_device_names_its_pci_id_and_degrades():
    lines = ["[    2.1] kfd kfd: amdgpu: skipped device 1002:67E3, PCI rejects atomics 730<0",
             "[    2.2] kfd kfd: amdgpu: skipped device 1002:73ff, PCI rejects atomics 730<0"]
    findings = kl.scan(lines, boot_time=0.0)
    assert [(f["category"], f["severity"], f["bdf"], f["pci_id"], f["gpu_health"]) for f in findings] == [
        ("init_failed", kl.HARD, None, "1002:67e3", "degraded"), ("init_failed", kl.HARD, None, "1002:73ff", "degraded")]
    assert findings[0]["summary"] == "not usable by ROCm: PCI rejects atomics"
    assert "atomics" in findings[0]["fix"]
