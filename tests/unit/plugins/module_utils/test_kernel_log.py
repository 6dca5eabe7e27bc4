"""Tests of the amdgpu kernel-log scanner against real recorded logs and composed healthy boots."""

from __future__ import annotations

import collections
import pathlib
import random
import time

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpuops.preflight.plugins.module_utils import _kernel_log as kl

FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "fixtures"
DMESG = FIXTURES / "gpu" / "dmesg"
HEALTHY = FIXTURES / "kernel_log_healthy"


def load(path):
    """A fixture's log lines: the recorder's '# ' header comments are not part of the log."""
    return [line for line in path.read_text(encoding="utf-8").split("\n") if not line.startswith("# ")]


def kinds(findings):
    """(category, bdf) -> number of distinct findings."""
    return collections.Counter((f["category"], f["bdf"]) for f in findings)


def one(findings, category, bdf, text):
    """The single finding of that category/GPU whose message contains ``text``."""
    found = [f for f in findings if f["category"] == category and f["bdf"] == bdf and text in f["message"]]
    assert len(found) == 1, (category, bdf, text, [f["message"] for f in findings])
    return found[0]


GPU03, GPU83 = "0000:03:00.0", "0000:83:00.0"

# Every recorded log and what it must give: distinct findings per (category, bdf), the hard/soft
# split of the findings, and the line count of chosen findings (category, bdf, message part).
EXPECTED = {
    "gcvm_l2_protection_fault_opencl_legacy-rocm-build-2766.txt": dict(
        # The first six lines are the tail of a fault whose header was cut: not counted again.
        kinds={("page_fault", GPU83): 1},
        hard=0, soft=1,
        counts={("page_fault", GPU83, "[gfxhub] page fault"): 1}),
    "mi300x_aca_uncorrectable_hw_error_legacy-rocm-build-4021.txt": dict(
        kinds={("ras_uncorrectable", "0000:dd:00.0"): 1, ("ras_uncorrectable", "0000:4e:00.0"): 1},
        hard=2, soft=0,
        # Two ACA headers; the aca entry[..] lines under them are not findings.
        counts={("ras_uncorrectable", "0000:4e:00.0", "Accelerator Check Architecture events logged"): 2,
                ("ras_uncorrectable", "0000:dd:00.0", "uncorrectable hardware error"): 1}),
    "mi300x_smu_0xffffffff_failed_read_reg_counts_ROCm-4268.txt": dict(
        # A table of messages with counts: each row is one occurrence (the count column is not parsed).
        kinds={("register_access_failed", None): 2, ("smu_message_failed", None): 1, ("smu_no_response", None): 1},
        hard=4, soft=0,
        counts={("register_access_failed", None, "failed to read reg"): 3,
                ("register_access_failed", None, "failed to write reg"): 1,
                ("smu_no_response", None, "SMU: response:0xFFFFFFFF"): 1}),
    "navi33_smu_no_response_msg_reg_ring_timeout_cachyos-1002.txt": dict(
        kinds={("smu_no_response", GPU03): 1, ("smu_message_failed", GPU03): 1, ("ring_timeout", GPU03): 1},
        hard=2, soft=1,
        counts={("smu_no_response", GPU03, "SMU: No response msg_reg: 12"): 1,
                ("smu_message_failed", GPU03, "Failed to disable gfxoff"): 1,
                ("ring_timeout", GPU03, "ring gfx_0.0.0 timeout"): 1}),
    "powerplay_failed_send_message_response_0xffffffc2_sysfs_read_oserror_amdgpu-fan-22.txt": dict(
        # The amdgpu-fan traceback lines mention amdgpu but are not kernel failures.
        kinds={("smu_message_failed", None): 2},
        hard=2, soft=0,
        counts={("smu_message_failed", None, "[powerplay] failed send message: TransferTableSmu2Dram"): 1,
                ("smu_message_failed", None, "Failed to export SMU metrics table"): 1}),
    "powerplay_failed_to_send_pre_message_rx590_freebsd-kms-drm-216.txt": dict(
        kinds={("smu_message_failed", None): 2},
        hard=2, soft=0,
        counts={("smu_message_failed", None, "failed to send pre message"): 2,
                ("smu_message_failed", None, "failed to send message"): 2}),
    "ring_comp_timeout_ring_reset_device_wedged_rocm7.2_legacy-rocm-build-5997.txt": dict(
        kinds={("ring_timeout", GPU03): 1, ("gpu_reset", GPU03): 3, ("page_fault", GPU03): 1},
        hard=0, soft=5,
        counts={("gpu_reset", GPU03, "Starting comp_1.1.0 ring reset"): 1,
                ("gpu_reset", GPU03, "Ring comp_1.1.0 reset succeeded"): 1,
                ("gpu_reset", GPU03, "device wedged, but recovered through reset"): 1,
                ("page_fault", GPU03, "[gfxhub] page fault"): 1}),
    "ring_gfx_timeout_kiq_test_failed_rx6800_rocm5.2_rocm-arch-829.txt": dict(
        kinds={("ring_timeout", None): 2, ("gpu_reset", "0000:0c:00.0"): 1, ("gpu_hang", None): 2,
               ("gpu_hang", "0000:0c:00.0"): 1},
        hard=3, soft=3,
        counts={("gpu_hang", "0000:0c:00.0", "ring kiq_2.1.0 test failed"): 2,
                ("ring_timeout", None, "Waiting for fences timed out"): 1,
                ("gpu_hang", None, "Failed to suspend process"): 1,
                ("gpu_hang", None, "failed to halt cp gfx"): 1}),
    "ring_gfx_timeout_ring_reset_failed_gpu_reset_mes_bazzite-4464.txt": dict(
        kinds={("ring_timeout", "0000:08:00.0"): 1, ("gpu_reset", "0000:08:00.0"): 2,
               ("gpu_reset_failed", "0000:08:00.0"): 1, ("gpu_hang", "0000:08:00.0"): 2, ("gpu_hang", None): 1},
        hard=4, soft=3,
        counts={("gpu_reset_failed", "0000:08:00.0", "Ring gfx_0.0.0 reset failed"): 1,
                ("gpu_hang", "0000:08:00.0", "MES(1) failed to respond to msg=REMOVE_QUEUE"): 1}),
    "rocm5.7_2x7900xtx_pagefault_mes_gpureset_smu_0xffffffff_ROCm-2494.txt": dict(
        kinds={
            # KFD user-space faults (node-1, node-2: two GPUs) and the kernel's, one per GPU.
            ("page_fault", None): 2, ("page_fault", GPU03): 1, ("page_fault", GPU83): 1,
            # MES failed x3, remove queue, unrecoverable, evict, IB test, unmap, halt cp gfx.
            ("gpu_hang", None): 7, ("gpu_hang", GPU03): 2, ("gpu_hang", GPU83): 2,
            # begin, soft reset failed, MODE1, GPU mode1, GPU smu mode1, reset succeeded; VRAM lost.
            ("gpu_reset", GPU03): 6, ("gpu_reset", GPU83): 6, ("gpu_reset", None): 1,
            # DFCstateControl and Mode1Reset answered 0xFFFFFFFF on both GPUs.
            ("smu_no_response", GPU03): 2, ("smu_no_response", GPU83): 2,
            ("smu_message_failed", GPU03): 2, ("smu_message_failed", GPU83): 2,
            # mode1 reset failed + ASIC reset failed per GPU; suspend/resume of <psp>, PSP resume.
            ("gpu_reset_failed", GPU03): 2, ("gpu_reset_failed", GPU83): 2, ("gpu_reset_failed", None): 3,
        },
        hard=26, soft=17,
        counts={("page_fault", GPU83, "[gfxhub] page fault"): 2,
                ("page_fault", GPU03, "[gfxhub] page fault"): 1,
                ("gpu_hang", None, "MES failed to response msg=3"): 3,
                ("smu_no_response", GPU03, "message:DFCstateControl?"): 1,
                ("smu_no_response", GPU83, "message:Mode1Reset?"): 1,
                ("gpu_reset_failed", GPU03, "GPU mode1 reset failed"): 1,
                ("gpu_reset_failed", GPU83, "ASIC reset failed with error, -121"): 1,
                ("gpu_reset_failed", None, "resume of IP block <psp> failed"): 2,
                ("gpu_reset", None, "VRAM is lost due to GPU reset"): 2}),
    "sdma_timeout_mes_failed_rdna3_rocm5.7_legacy-rocm-build-2533.txt": dict(
        kinds={("ring_timeout", None): 1, ("gpu_reset", "0000:0a:00.0"): 1, ("gpu_hang", None): 4},
        hard=4, soft=2,
        counts={("ring_timeout", None, "ring sdma0 timeout"): 1}),
    "sdma_timeout_qcm_fence_evict_failed_kiq_bc250_legacy-rocm-build-6313.txt": dict(
        kinds={("ring_timeout", "0000:01:00.0"): 1, ("gpu_reset", "0000:01:00.0"): 1,
               ("gpu_hang", "0000:01:00.0"): 4, ("gpu_hang", None): 1},
        hard=5, soft=2,
        counts={("gpu_hang", "0000:01:00.0", "qcm fence wait loop timeout expired"): 2,
                ("gpu_hang", "0000:01:00.0", "timeout waiting for kiq fence"): 1,
                ("gpu_hang", "0000:01:00.0", "Failed to evict process queues"): 1}),
    "smu_0xffffffff_hanged_state_pcie_link_down_lkml-2025-11.txt": dict(
        kinds={
            # pciehp Link Down + Card not present, two bridges inaccessible: host level, no GPU.
            ("bus_lost", None): 4, ("bus_lost", GPU03): 2,
            ("smu_no_response", GPU03): 2, ("smu_message_failed", GPU03): 2, ("smu_message_failed", None): 1,
            ("gpu_reset_failed", GPU03): 2,
        },
        hard=13, soft=0,
        counts={("smu_no_response", GPU03, "SMU is in hanged state"): 1,
                ("bus_lost", None, "pciehp: Slot(0): Link Down"): 1,
                ("bus_lost", GPU03, "D3cold to D0, device inaccessible"): 1,
                ("gpu_reset_failed", GPU03, "resume of IP block <gfx_v10_0> failed -110"): 1}),
    "smu_not_done_export_metrics_ring_gfx_timeout_legacy-rocm-build-2196.txt": dict(
        kinds={("smu_message_failed", "0000:0d:00.0"): 3, ("ring_timeout", None): 1},
        hard=3, soft=1,
        counts={("smu_message_failed", "0000:0d:00.0", "I'm not done with your previous command"): 3,
                ("smu_message_failed", "0000:0d:00.0", "Failed to export SMU metrics table"): 3,
                ("smu_message_failed", "0000:0d:00.0", "Failed to get current clock freq"): 1}),
    "smu_resume_failed_smc_not_ready_mi100_ROCm-amdgpu-183.txt": dict(
        kinds={("smu_no_response", GPU03): 2, ("smu_no_response", GPU83): 1, ("gpu_reset_failed", GPU03): 2},
        hard=5, soft=0,
        counts={("smu_no_response", GPU83, "SMC is not ready"): 1,
                ("gpu_reset_failed", GPU03, "resume of IP block <smu> failed -5"): 1}),
    "vm_l2_protection_fault_mmhub_ROCm-amdgpu-150.txt": dict(
        kinds={("page_fault", "0000:88:00.0"): 1},
        hard=0, soft=1,
        counts={("page_fault", "0000:88:00.0", "[mmhub0] no-retry page fault"): 2}),
    "vm_l2_protection_fault_no_retry_ROCm-amdgpu-172.txt": dict(
        kinds={("page_fault", "0000:c6:00.0"): 1},
        hard=0, soft=1,
        counts={("page_fault", "0000:c6:00.0", "[gfxhub0] no-retry page fault"): 2}),
}


def test_every_recorded_log_has_an_expectation():
    names = sorted(p.name for p in DMESG.glob("*.txt"))
    assert names == sorted(EXPECTED), "add the new recording to EXPECTED"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_log_classified(name):
    expected = EXPECTED[name]
    findings = kl.scan(load(DMESG / name))
    assert dict(kinds(findings)) == expected["kinds"]
    counts = kl.severity_counts(findings)
    assert (counts["hard"], counts["soft"]) == (expected["hard"], expected["soft"])
    for (category, bdf, text), count in expected["counts"].items():
        assert one(findings, category, bdf, text)["count"] == count
    for finding in findings:
        spec_severity, spec_fix = kl.CATEGORIES[finding["category"]]
        assert finding["severity"] == spec_severity and finding["fix"] == spec_fix
        assert finding["summary"] and finding["line"].strip()
        # The message is the line without its stamp: it never starts with one.
        assert not finding["message"].startswith("[") or finding["message"].startswith(("[drm", "[Hardware"))


def test_7900xtx_call_trace_and_bridges_give_nothing():
    lines = load(DMESG / "rocm5.7_2x7900xtx_pagefault_mes_gpureset_smu_0xffffffff_ROCm-2494.txt")
    trace = lines[next(i for i, line in enumerate(lines) if "blocked for more than" in line):]
    assert len(trace) > 20 and kl.scan(trace) == []
    # Hung-task report and call trace lines name amdgpu reset functions but are not findings.
    assert not [f for f in kl.scan(lines) if f["line"] in trace]


def test_bridge_addresses_are_never_a_gpu():
    findings = kl.scan(load(DMESG / "smu_0xffffffff_hanged_state_pcie_link_down_lkml-2025-11.txt"))
    bridges = {"0000:00:01.1", "0000:02:00.0", "0000:01:00.0"}
    assert not bridges & {f["bdf"] for f in findings}
    assert {f["message"].split(":")[0] for f in findings if f["category"] == "bus_lost" and f["bdf"] is None} \
        == {"pcieport 0000"}
    # Benign resume lines in the same log give nothing.
    assert not [f for f in findings if "resum" in f["message"] and "failed" not in f["message"]]


def test_repeats_collapse_with_count_and_first_last_seen():
    findings = kl.scan(load(DMESG / "smu_not_done_export_metrics_ring_gfx_timeout_legacy-rocm-build-2196.txt"))
    busy = one(findings, "smu_message_failed", "0000:0d:00.0", "I'm not done")
    assert busy["count"] == 3
    assert (busy["first_seen"], busy["last_seen"]) == ("31317.644104", "31326.191767")
    assert busy["summary"] == "SMU busy with a previous command"
    assert busy["line"].startswith("[31317.644104] amdgpu 0000:0d:00.0")
    assert busy["message"].startswith("amdgpu 0000:0d:00.0: amdgpu: SMU: I'm not done")


def test_same_message_on_two_gpus_stays_two_findings():
    lines = [
        "[1.0] amdgpu 0000:03:00.0: amdgpu: SMU: response:0xFFFFFFFF for index:59 param:0x00000000 message:DFCstateControl?",
        "[2.0] amdgpu 0000:83:00.0: amdgpu: SMU: response:0xFFFFFFFF for index:59 param:0x00000000 message:DFCstateControl?",
        "[3.0] amdgpu 0000:83:00.0: amdgpu: SMU: response:0xFFFFFFFF for index:60 param:0x00000001 message:DFCstateControl?",
    ]
    findings = kl.scan(lines)
    assert [(f["bdf"], f["count"], f["summary"]) for f in findings] == [
        (GPU03, 1, "SMU not answering (0xFFFFFFFF)"), (GPU83, 2, "SMU not answering (0xFFFFFFFF)")]


# One sample per pattern at least: every row of the table must be reachable, in its category.
SAMPLES = [
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
    ("amdgpu: [powerplay] failed send message: TransferTableSmu2Dram (18) param: 0x00000006 response 0xffffffc2", "smu_message_failed"),
    (" failed to send message 200 ret is 0", "smu_message_failed"),
    ("amdgpu: [powerplay] last message was failed ret is 0", "smu_message_failed"),
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
    ("pcieport 0000:00:01.1: pciehp: Slot(0): Card not present", "bus_lost"),
    ("[drm:amdgpu_device_ip_init [amdgpu]] *ERROR* hw_init of IP block <gfx_v10_0> failed -110", "init_failed"),
    ("amdgpu 0000:05:00.0: amdgpu: Fatal error during GPU init", "init_failed"),
    ("amdgpu 0000:05:00.0: amdgpu: memory training failed", "init_failed"),
    ("amdgpu: probe of 0000:05:00.0 failed with error -22", "init_failed"),
    ("amdgpu 0000:05:00.0: probe with driver amdgpu failed with error -22", "init_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: GPU reset(2) failed", "gpu_reset_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: GPU mode1 reset failed", "gpu_reset_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: ASIC reset failed with error, -121 for drm dev, 0000:0b:00.0", "gpu_reset_failed"),
    ("[drm:amdgpu_device_gpu_recover [amdgpu]] *ERROR* GPU Recovery Failed: -110", "gpu_reset_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: GPU reset end with ret = -62", "gpu_reset_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: Ring gfx_0.0.0 reset failed", "gpu_reset_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: resume of IP block <smu> failed -5", "gpu_reset_failed"),
    ("amdgpu 0000:0b:00.0: amdgpu: amdgpu_device_ip_resume failed (-5).", "gpu_reset_failed"),
    ("[drm:psp_resume [amdgpu]] *ERROR* PSP resume failed", "gpu_reset_failed"),
    ("[drm:amdgpu_device_ip_suspend_phase2 [amdgpu]] *ERROR* suspend of IP block <psp> failed -22", "gpu_reset_failed"),
    ("[drm:mes_v11_0_submit_pkt_and_poll_completion.constprop.0 [amdgpu]] *ERROR* MES failed to response msg=3", "gpu_hang"),
    ("amdgpu: MES might be in unrecoverable state, issue a GPU reset", "gpu_hang"),
    ("amdgpu: failed to remove hardware queue from MES, doorbell=0x1216", "gpu_hang"),
    ("amdgpu 0000:0b:00.0: amdgpu: IP block:gfx_v11_0 is hung!", "gpu_hang"),
    ("amdgpu 0000:0b:00.0: [drm:amdgpu_ring_test_helper [amdgpu]] *ERROR* ring kiq_2.1.0 test failed (-110)", "gpu_hang"),
    ("amdgpu 0000:0b:00.0: amdgpu: wait for kiq fence error: 0.", "gpu_hang"),
    ("amdgpu 0000:0b:00.0: qcm fence wait loop timeout expired", "gpu_hang"),
    ("amdgpu 0000:0b:00.0: The cp might be in an unrecoverable state due to an unsuccessful queues preemption", "gpu_hang"),
    ("amdgpu: Failed to evict queue 10", "gpu_hang"),
    ("amdgpu: Failed to suspend process 0x800c", "gpu_hang"),
    ("[drm:gfx_v10_0_hw_fini [amdgpu]] *ERROR* failed to halt cp gfx", "gpu_hang"),
    ("[drm:amdgpu_mes_unmap_legacy_queue [amdgpu]] *ERROR* failed to unmap legacy queue", "gpu_hang"),
    ("[drm:sdma_v6_0_ring_test_ib [amdgpu]] *ERROR* amdgpu: IB test timed out", "gpu_hang"),
    ("HW Exception by GPU node-1 (Agent handle: 0x55d1c3e0a0f0) reason :GPU Hang", "gpu_hang"),
    ("amdgpu 0000:0b:00.0: amdgpu: 2 uncorrectable hardware errors detected in umc block", "ras_uncorrectable"),
    ("amdgpu 0000:4e:00.0: {1}[Hardware Error]: Accelerator Check Architecture events logged", "ras_uncorrectable"),
    ("amdgpu 0000:8a:00.0: amdgpu: Poison detected in VCN0, sub_block0", "ras_uncorrectable"),
    ("amdgpu 0000:c1:00.0: amdgpu: socket: 4, die: 0 1 correctable hardware errors detected in total in gfx block, "
     "no user action is needed.", "ras_correctable"),
    ("amdgpu 0000:c1:00.0: amdgpu: umc ce count: 3", "ras_correctable"),
    ("amdgpu 0000:0b:00.0: ring gfx_0.0.0 timeout, signaled seq=5671512, emitted seq=5671512", "ring_timeout"),
    ("[drm:amdgpu_dm_atomic_commit_tail [amdgpu]] *ERROR* Waiting for fences timed out!", "ring_timeout"),
    ("amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!", "gpu_reset"),
    ("amdgpu 0000:0b:00.0: amdgpu: GPU reset succeeded, trying to resume", "gpu_reset"),
    ("amdgpu 0000:0b:00.0: amdgpu: GPU reset(3) succeeded!", "gpu_reset"),
    ("amdgpu 0000:0b:00.0: amdgpu: Starting gfx_0.0.0 ring reset", "gpu_reset"),
    ("amdgpu 0000:0b:00.0: amdgpu: Ring sdma0 reset succeeded", "gpu_reset"),
    ("amdgpu 0000:0b:00.0: [drm] device wedged, but recovered through reset", "gpu_reset"),
    ("[drm] VRAM is lost due to GPU reset!", "gpu_reset"),
    ("amdgpu 0000:0b:00.0: amdgpu: soft reset failed, will fallback to full reset!", "gpu_reset"),
    ("amdgpu 0000:04:00.0: amdgpu: MODE2 reset", "gpu_reset"),
    ("amdgpu 0000:0b:00.0: amdgpu: [gfxhub0] retry page fault (src_id:0 ring:0 vmid:0 pasid:0, for process pid 0 thread pid 0)", "page_fault"),
    ("amdgpu 0000:01:00.0: GPU fault detected: 146 0x0c88480c for process python pid 1234 thread python pid 1234", "page_fault"),
    ("Memory access fault by GPU node-2 (Agent handle: 0x5561f711dfd0) on address 0x7fb7a0d67000. "
     "Reason: Page not present or supervisor privilege.", "page_fault"),
]


@pytest.mark.parametrize("line,category", SAMPLES)
def test_sample_line_category(line, category):
    pattern, match = kl.classify(line)
    assert pattern is not None and pattern.category == category
    assert pattern.key in line.lower()  # the prefilter literal really is in every match


def test_every_pattern_has_a_sample_and_order_is_specific_first():
    used = set()
    for line, _category in SAMPLES:
        used.add(id(kl.classify(line)[0]))
    unused = [p for p in kl.PATTERNS if id(p) not in used]
    assert unused == []
    order = [p.category for p in kl.PATTERNS]
    assert order.index("smu_no_response") < order.index("smu_message_failed")
    assert order.index("gpu_reset_failed") < order.index("gpu_reset")
    assert set(order) == set(kl.CATEGORIES)
    for pattern in kl.PATTERNS:
        assert pattern.severity in (kl.HARD, kl.SOFT) and pattern.summary and pattern.fix
        assert pattern.key == pattern.key.lower()


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
    # A reset while the driver initialises (AMD's node-agent excludes "init context").
    "amdgpu 0000:03:00.0: amdgpu: GPU reset succeeded in init context",
    # Zero counts are not errors.
    "amdgpu 0000:03:00.0: amdgpu: 0 uncorrectable hardware errors detected in umc block",
    "amdgpu 0000:03:00.0: amdgpu: umc ce count: 0",
    # The same words from other drivers.
    "usb 1-4: reset high-speed USB device number 3 using xhci_hcd",
    "nvme nvme0: I/O 12 QID 3 timeout, reset controller",
    "xe 0000:03:00.0: [drm] device wedged, but recovered through reset",
    "nvme 0000:01:00.0: Unable to change power state from D3cold to D0, device inaccessible",
    "radeon 0000:01:00.0: GPU fault detected: 146 0x0c88480c",
    "applesmc: SMC is not ready",
    # Page-fault detail lines belong to the header line.
    "amdgpu 0000:03:00.0: amdgpu:   in page starting at address 0x00000002e4cd2000 from client 10",
    "amdgpu 0000:03:00.0: amdgpu: GCVM_L2_PROTECTION_FAULT_STATUS:0x00801031",
    "amdgpu 0000:03:00.0: amdgpu:      Faulty UTCL2 client ID: TCP (0x8)",
    "amdgpu 0000:03:00.0: amdgpu:      WALKER_ERROR: 0x0",
    "amdgpu 0000:4e:00.0: {1}[Hardware Error]: aca entry[00].STATUS=0xfaa00000000d080b",
    # Call trace lines naming reset functions.
    " amdgpu_device_gpu_recover.cold+0x47a/0xb3f [amdgpu]",
    "Workqueue: amdgpu-reset-dev amdgpu_amdkfd_reset_work [amdgpu]",
])
def test_no_finding(line):
    assert kl.scan([line]) == []
    assert kl.scan(["[  12.345678] " + line, "2026-11-25T15:00:00,000000+00:00 " + line]) == []


@pytest.mark.parametrize("path", sorted(HEALTHY.glob("*.txt")), ids=lambda p: p.name)
def test_healthy_logs_give_no_findings(path):
    lines = load(path)
    assert len(lines) > 20
    stats = {}
    assert kl.scan(lines, stats=stats) == []
    assert stats["lines"] == len(lines) and stats["matched"] == 0
    assert kl.scan(lines, since=0.0, boot_time=1.0) == []


def test_healthy_fixtures_exist():
    assert len(list(HEALTHY.glob("*.txt"))) >= 2


@pytest.mark.parametrize("line,bdf", [
    ("amdgpu 0000:0B:00.0: amdgpu: GPU reset begin!", "0000:0b:00.0"),
    ("[drm:amdgpu_device_gpu_recover [amdgpu]] *ERROR* ASIC reset failed with error, -121 for drm dev, 0000:83:00.0", GPU83),
    ("[drm:amdgpu_job_timedout [amdgpu]] *ERROR* ring gfx_0.0.0 timeout on 0000:22:00.0", "0000:22:00.0"),
    ("amdgpu: probe of 0000:05:00.0 failed with error -22", "0000:05:00.0"),
    ("[drm:amdgpu_job_timedout [amdgpu]] *ERROR* ring gfx_0.0.0 timeout, signaled seq=1, emitted seq=3", None),
    ("pcieport 0000:00:01.1: pciehp: Slot(0): Link Down", None),
    # A GPU address named by a non-amdgpu device's line is not attributed.
    ("pcieport 0000:00:01.1: Unable to change power state from D0 to D3hot, device inaccessible 0000:03:00.0", None),
])
def test_bdf_attribution(line, bdf):
    findings = kl.scan([line])
    assert len(findings) == 1 and findings[0]["bdf"] == bdf


# -- timestamps and since -----------------------------------------------------------------------

T = 1767225600.0  # 2026-01-01T00:00:00Z


def test_since_iso_journal_and_dmesg_formats():
    lines = [
        "2025-12-31T23:58:20.000000+0000 rig07 kernel: amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!",
        "2026-01-01T00:00:00.000000+0000 rig07 kernel: amdgpu 0000:0c:00.0: amdgpu: GPU reset begin!",
        "2026-01-01T01:01:40,000000+01:00 amdgpu 0000:0d:00.0: amdgpu: GPU reset begin!",
        "kern  :err   : 2025-12-31T19:00:01,000000-05:00 amdgpu 0000:0e:00.0: amdgpu: GPU reset begin!",
    ]
    stats = {}
    findings = kl.scan(lines, since=T, stats=stats)
    assert [f["bdf"] for f in findings] == ["0000:0c:00.0", "0000:0d:00.0", "0000:0e:00.0"]
    assert stats["too_old"] == 1
    assert findings[0]["first_seen"] == "2026-01-01T00:00:00.000000+0000"
    assert findings[1]["first_seen"] == "2026-01-01T01:01:40,000000+01:00"
    assert findings[0]["message"] == "amdgpu 0000:0c:00.0: amdgpu: GPU reset begin!"
    assert findings[2]["message"] == "amdgpu 0000:0e:00.0: amdgpu: GPU reset begin!"
    assert len(kl.scan(lines)) == 4


def _syslog_stamp(epoch):
    return time.strftime("%b %d %H:%M:%S", time.localtime(epoch))


def test_since_syslog_local_time_current_year():
    now = time.time()
    old, new = int(now - 7200), int(now - 60)
    lines = [
        "%s rig07 kernel: amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!" % _syslog_stamp(old),
        "%s rig07 kernel: amdgpu 0000:0c:00.0: amdgpu: GPU reset begin!" % _syslog_stamp(new),
    ]
    findings = kl.scan(lines, since=now - 3600)
    assert [f["bdf"] for f in findings] == ["0000:0c:00.0"]
    assert findings[0]["first_seen"] == " ".join(_syslog_stamp(new).split())
    assert findings[0]["message"] == "amdgpu 0000:0c:00.0: amdgpu: GPU reset begin!"


def test_syslog_in_the_future_is_last_year():
    now = time.mktime((2026, 1, 1, 0, 30, 0, 0, 0, -1))
    stamp, epoch, body = kl.split_line("Dec 31 23:59:00 rig07 kernel: amdgpu: x", now=now)
    assert stamp == "Dec 31 23:59:00" and body == "amdgpu: x"
    assert epoch == time.mktime((2025, 12, 31, 23, 59, 0, 0, 0, -1))


def test_since_monotonic_with_injected_boot_time():
    lines = [
        "[  100.000000] amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!",
        "[  200.500000] amdgpu 0000:0c:00.0: amdgpu: GPU reset begin!",
    ]
    findings = kl.scan(lines, since=1000150.0, boot_time=1000000.0)
    assert [(f["bdf"], f["first_seen"]) for f in findings] == [("0000:0c:00.0", "200.500000")]


def test_monotonic_boot_time_defaults_to_proc_uptime_read_once(monkeypatch):
    calls = []

    def fake_boot_time():
        calls.append(1)
        return 1000000.0
    monkeypatch.setattr(kl, "read_boot_time", fake_boot_time)
    iso = ["2026-01-01T00:00:00.000000+0000 rig07 kernel: amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!"]
    assert len(kl.scan(iso, since=0.0)) == 1 and calls == []
    mono = ["[  100.0] amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!",
            "[  300.0] amdgpu 0000:0c:00.0: amdgpu: GPU reset begin!"]
    assert [f["bdf"] for f in kl.scan(mono, since=1000200.0)] == ["0000:0c:00.0"]
    assert calls == [1]


def test_read_boot_time(tmp_path):
    uptime = tmp_path / "uptime"
    uptime.write_text("12345.67 890123.45\n")
    assert kl.read_boot_time(str(uptime), now=100000.0) == pytest.approx(100000.0 - 12345.67)
    assert kl.read_boot_time(str(tmp_path / "missing")) is None
    uptime.write_text("garbage\n")
    assert kl.read_boot_time(str(uptime)) is None


def test_monotonic_without_boot_time_keeps_lines(monkeypatch):
    monkeypatch.setattr(kl, "read_boot_time", lambda: None)
    findings = kl.scan(["[  1.0] amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!"], since=time.time())
    assert len(findings) == 1  # cannot be dated, so cannot be proven old


def test_continuation_lines_inherit_the_previous_time():
    lines = [
        "2025-12-31T23:00:00.000000+0000 rig07 kernel: amdgpu: [powerplay] ",
        " failed to send message 146 ret is 0 ",          # old by inheritance
        "2026-01-01T00:00:05.000000+0000 rig07 kernel: amdgpu: [powerplay] ",
        " failed to send pre message 16a ret is 0 ",      # new by inheritance
    ]
    findings = kl.scan(lines, since=T)
    assert [f["message"] for f in findings] == ["failed to send pre message 16a ret is 0"]
    assert findings[0]["first_seen"] == "2026-01-01T00:00:05.000000+0000"


def test_inheritance_through_several_unmatched_lines():
    lines = ["2026-01-01T00:00:05.000000+0000 rig07 kernel: usb 1-4: new device"] + \
        ["   continuation %d" % i for i in range(10)] + \
        ["amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!"]
    assert len(kl.scan(lines, since=T)) == 1
    assert kl.scan(lines, since=T + 10) == []


def test_unparseable_stamp_inherits_epoch_but_keeps_its_text():
    lines = [
        "Feb 25 19:29:40 bc250 kernel: amdgpu 0000:01:00.0: ring sdma0 uses VM inv eng 12 on hub 0",
        "kvě 25 19:29:48 bc250 kernel: amdgpu 0000:01:00.0: ring sdma0 timeout, signaled seq=309, emitted seq=313",
    ]
    stamp, epoch, body = kl.split_line(lines[1])
    assert (stamp, epoch) == ("kvě 25 19:29:48", None)
    assert body.startswith("amdgpu 0000:01:00.0: ring sdma0 timeout")
    feb25 = kl.split_line(lines[0])[1]
    assert kl.scan(lines, since=feb25 + 1) == []  # inherited the old February time
    findings = kl.scan(lines, since=feb25)
    assert findings[0]["first_seen"] == "kvě 25 19:29:48"


def test_undated_lines_are_kept():
    lines = load(DMESG / "sdma_timeout_qcm_fence_evict_failed_kiq_bc250_legacy-rocm-build-6313.txt")
    assert len(kl.scan(lines, since=time.time() + 86400)) == len(kl.scan(lines)) == 7
    bare = ["amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!"]
    assert len(kl.scan(bare, since=time.time())) == 1


@pytest.mark.parametrize("line,stamp,body", [
    ("[13600.971642] [  T53331] amdgpu 0000:03:00.0: amdgpu: x", "13600.971642", "amdgpu 0000:03:00.0: amdgpu: x"),
    ("Oct  7 12:58:23 Ubuntu-Desktop kernel: [ 2237.944235] [drm:amdgpu_job_timedout [amdgpu]] x", "Oct 7 12:58:23",
     "[drm:amdgpu_job_timedout [amdgpu]] x"),
    ("[ 1234.567890] rig07 kernel: amdgpu: x", "1234.567890", "amdgpu: x"),
    ("[Mon Feb 25 19:15:17 2026] amdgpu: x", "Mon Feb 25 19:15:17 2026", "amdgpu: x"),
    ("<3>[    5.1] amdgpu: x", "5.1", "amdgpu: x"),
    ("plain text", None, "plain text"),
])
def test_split_line_formats(line, stamp, body):
    got = kl.split_line(line)
    assert (got[0], got[2]) == (stamp, body)


def test_ctime_and_iso_epochs():
    assert kl.split_line("2026-01-01T00:00:00Z amdgpu: x")[1] == T
    assert kl.split_line("2026-01-01T05:30:00.5+05:30 amdgpu: x")[1] == T + 0.5
    assert kl.split_line("[Thu Jan  1 00:00:00 2026] amdgpu: x")[1] == time.mktime((2026, 1, 1, 0, 0, 0, 0, 0, -1))
    assert kl.split_line("2026-13-01T00:00:00Z amdgpu: x")[1] is None  # month 13: no epoch, no crash


# -- robustness ---------------------------------------------------------------------------------

def test_garbage_never_raises():
    rng = random.Random(4268)
    fragments = ["amdgpu ", "0000:zz:00.0: ", "0000:03:00.0: ", "[drm", "SMU: response:0x", "[gfxhub", "ring ",
                 " timeout", "[ 12.5]", "2026-99-99T99:99:99Z ", "kvě 25 ", "Feb 30 25:61:61 h kernel: ",
                 "\x00", "\ufffd", "\u2028", "\x1b[31m", "GPU reset(", "node-", "fail", "reset", "\t"]
    lines = []
    for _line in range(3000):
        parts = [rng.choice(fragments) if rng.random() < 0.5 else
                 "".join(chr(rng.randrange(0, 0x3000)) for _char in range(rng.randrange(0, 40)))
                 for _part in range(rng.randrange(0, 8))]
        lines.append("".join(parts))
    lines += [b"\xff\xfe amdgpu 0000:03:00.0: amdgpu: GPU reset begin! \x80", None, 12345, "", "\n", "\r\n"]
    findings = kl.scan(lines, since=0.0, boot_time=0.0)
    assert isinstance(findings, list)
    assert any(f["bdf"] == GPU03 and f["category"] == "gpu_reset" for f in findings)  # the bytes line
    for finding in findings:
        assert set(finding) == {"category", "severity", "bdf", "summary", "fix", "message", "line", "count",
                                "first_seen", "last_seen"}


def test_extremely_long_lines_are_capped_and_fast():
    long_line = "amdgpu 0000:03:00.0: " + "amdgpu " * 300000 + "device inaccessible"
    start = time.monotonic()
    findings = kl.scan([long_line, "x" * 5000000, "[" * 100000 + "amdgpu: GPU reset begin!"])
    assert time.monotonic() - start < 5
    assert findings == []  # the interesting part is past the cap
    assert all(len(f["line"]) <= kl.MAX_LINE_CHARS for f in kl.scan(["amdgpu: GPU reset begin!" + "x" * 9000]))


def test_scan_accepts_a_whole_text_and_bytes():
    text = "\n".join(load(DMESG / "smu_not_done_export_metrics_ring_gfx_timeout_legacy-rocm-build-2196.txt"))
    assert len(kl.scan(text)) == 4
    assert len(kl.scan(text.encode())) == 4
    assert kl.scan([]) == [] and kl.scan("") == []


def test_flood_is_scanned_quickly():
    lines = []
    for i in range(100000):
        if i % 3:
            lines.append("2026-01-01T00:%02d:%02d.%06d+0000 rig07 kernel: amdgpu 0000:0b:00.0: amdgpu: "
                         "ring comp_1.0.0 uses VM inv eng 1 on hub 0" % (i // 3600 % 60, i // 60 % 60, i))
        else:
            lines.append("2026-01-01T00:%02d:%02d.%06d+0000 rig07 kernel: amdgpu: failed to read reg:%x"
                         % (i // 3600 % 60, i // 60 % 60, i, i))
    start = time.monotonic()
    findings = kl.scan(lines, since=T)
    assert time.monotonic() - start < 20  # ~1 s on a laptop; guards against quadratic behaviour
    assert [(f["category"], f["count"]) for f in findings] == [("register_access_failed", 33334)]


# -- reading ------------------------------------------------------------------------------------

@pytest.fixture
def module(mocker):
    with patch_module_args({}):
        mod = AnsibleModule(argument_spec={})
    mocker.patch.object(mod, "get_bin_path", side_effect=lambda name, *a, **k: "/testbin/%s" % name)
    return mod


class FakeClock(object):
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def commands(module, mocker, outputs, clock=None):
    """Mock run_command: outputs maps a tool name to (rc, stdout, stderr) or to a callable."""
    seen = []

    def run_command(cmd, **kwargs):
        seen.append(cmd)
        answer = outputs[cmd[4].rsplit("/", 1)[-1]]
        return answer(cmd) if callable(answer) else answer
    mocker.patch.object(module, "run_command", side_effect=run_command)
    return seen


JOURNAL = ("2026-01-01T00:00:05.000000+0000 rig07 kernel: amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!\n"
           "2026-01-01T00:00:06.000000+0000 rig07 kernel: [drm] VRAM is lost due to GPU reset!\n")
DMESG_OUT = "2026-01-01T00:00:05,000000+00:00 amdgpu 0000:0c:00.0: amdgpu: GPU reset begin!\n"


def test_journal_argv_and_lines(module, mocker):
    seen = commands(module, mocker, {"journalctl": (0, JOURNAL + "-- No entries --\n", "")})
    read = kl.read_kernel_log(module, source="journal", since=T + 0.7)
    assert seen == [["/testbin/timeout", "-k", "2", "15", "/testbin/journalctl", "-k", "-b", "0", "-o",
                     "short-iso-precise", "--no-pager", "-q", "--since", "@1767225600"]]
    assert (read.source, read.error, read.timed_out) == ("journal", None, False)
    assert read.lines == JOURNAL.splitlines()  # the journal's "-- No entries --" line is dropped
    assert read.cmd == seen[0][4:]  # the log command itself, without the timeout wrapper


def test_journal_without_since_has_no_since_argument(module, mocker):
    seen = commands(module, mocker, {"journalctl": (0, JOURNAL, "")})
    kl.read_kernel_log(module, source="journal", timeout=7)
    assert seen[0] == ["/testbin/timeout", "-k", "2", "7", "/testbin/journalctl", "-k", "-b", "0", "-o",
                       "short-iso-precise", "--no-pager", "-q"]


def test_journal_timed_out(module, mocker):
    clock = FakeClock()

    def hang(cmd):
        clock.now += 15
        return 124, "", ""
    commands(module, mocker, {"journalctl": hang})
    read = kl.read_kernel_log(module, source="journal", timeout=15, clock=clock)
    assert read.timed_out is True
    assert read.error == "journalctl timed out after 15s and was killed"
    assert read.lines == [] and read.elapsed == 15


def test_journal_empty_without_since_is_an_error_with_since_a_note(module, mocker):
    commands(module, mocker, {"journalctl": (0, "", "")})
    read = kl.read_kernel_log(module, source="journal")
    assert "no kernel messages" in read.error and "systemd-journal" in read.error
    read = kl.read_kernel_log(module, source="journal", since=T)
    assert read.error is None and read.lines == [] and "no kernel messages since" in read.note


def test_auto_prefers_the_journal(module, mocker):
    seen = commands(module, mocker, {"journalctl": (0, JOURNAL, "")})
    read = kl.read_kernel_log(module)
    assert read.source == "journal" and len(seen) == 1 and len(read.lines) == 2


def test_auto_empty_journal_falls_back_to_dmesg(module, mocker):
    seen = commands(module, mocker, {"journalctl": (0, "", ""), "dmesg": (0, DMESG_OUT, "")})
    read = kl.read_kernel_log(module, source="auto", timeout=15, clock=FakeClock())
    assert seen[1] == ["/testbin/timeout", "-k", "2", "15", "/testbin/dmesg", "--time-format", "iso"]
    assert (read.source, read.error, read.lines) == ("dmesg", None, DMESG_OUT.splitlines())
    assert "journalctl returned no kernel messages" in read.note
    assert read.cmd == seen[1][4:]


def test_auto_dmesg_gets_the_time_the_journal_left(module, mocker):
    clock = FakeClock()

    def slow_journal(cmd):
        clock.now += 14.6
        return 1, "", "Failed to open journal"
    seen = commands(module, mocker, {"journalctl": slow_journal, "dmesg": (0, DMESG_OUT, "")})
    read = kl.read_kernel_log(module, timeout=15, clock=clock)
    assert seen[1][3] == "1"  # at least one second
    assert read.source == "dmesg" and "journalctl exited 1: Failed to open journal" in read.note


def test_auto_without_journalctl_uses_dmesg(module, mocker):
    module.get_bin_path.side_effect = lambda name, *a, **k: None if name == "journalctl" else "/testbin/" + name
    seen = commands(module, mocker, {"dmesg": (0, DMESG_OUT, "")})
    read = kl.read_kernel_log(module)
    assert [cmd[4] for cmd in seen] == ["/testbin/dmesg"]
    assert read.source == "dmesg" and "journalctl not found" in read.note


def test_auto_both_fail_reports_both_reasons(module, mocker):
    clock = FakeClock()

    def hang(cmd):
        clock.now += 15
        return 124, "", ""
    commands(module, mocker, {
        "journalctl": hang,
        "dmesg": (1, "", "dmesg: read kernel buffer failed: Operation not permitted\n")})
    read = kl.read_kernel_log(module, timeout=15, clock=clock)
    assert read.error.startswith("journal: journalctl timed out after 15s and was killed; dmesg: dmesg exited 1: "
                                 "dmesg: read kernel buffer failed: Operation not permitted")
    assert "CAP_SYSLOG" in read.error and "become" in read.error
    assert read.timed_out is True and read.lines == []


def test_dmesg_permission_denied_is_explained(module, mocker):
    commands(module, mocker, {"dmesg": (1, "", "dmesg: read kernel buffer failed: Operation not permitted\n")})
    read = kl.read_kernel_log(module, source="dmesg")
    assert read.error.startswith("dmesg exited 1: dmesg: read kernel buffer failed: Operation not permitted")
    assert "dmesg_restrict" in read.error and read.timed_out is False


def test_missing_timeout_binary_refuses_to_run(module, mocker):
    module.get_bin_path.side_effect = lambda name, *a, **k: None if name == "timeout" else "/testbin/" + name
    run = mocker.patch.object(module, "run_command")
    read = kl.read_kernel_log(module, source="dmesg")
    assert "coreutils 'timeout' not found" in read.error
    run.assert_not_called()


def test_run_command_exception_is_reported(module, mocker):
    mocker.patch.object(module, "run_command", side_effect=OSError("exec format error"))
    read = kl.read_kernel_log(module, source="dmesg")
    assert read.error == "dmesg could not run: exec format error"


def test_unknown_source(module):
    read = kl.read_kernel_log(module, source="syslog")
    assert "unknown kernel log source 'syslog'" in read.error


def test_file_source(tmp_path, module):
    log = tmp_path / "kern.log"
    log.write_bytes(b"[ 1.0] amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!\r\n\xff\xfe broken\n\n")
    read = kl.read_kernel_log(module, source="file", path=str(log))
    assert (read.source, read.error, read.cmd, read.note) == ("file", None, None, None)
    assert read.lines == ["[ 1.0] amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!", "\ufffd\ufffd broken"]


@pytest.mark.parametrize("name", ["missing.log", "."])
def test_file_errors_are_reported_not_raised(tmp_path, module, name):
    read = kl.read_kernel_log(module, source="file", path=str(tmp_path / name))
    assert read.error.startswith("cannot read %s: " % (tmp_path / name))
    assert read.lines == []


def test_file_without_path(module):
    assert kl.read_kernel_log(module, source="file").error == "source=file needs a path"


def test_big_file_reads_the_tail(tmp_path, module):
    log = tmp_path / "kern.log"
    old = "[ 1.0] amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!\n" * 100
    new = "[ 9.0] amdgpu 0000:0c:00.0: amdgpu: GPU reset begin!\n" * 10
    log.write_text(old + new)
    read = kl.read_kernel_log(module, source="file", path=str(log), max_file_bytes=len(new) + 20)
    assert read.lines == new.splitlines()  # the cut first line is dropped
    assert "scanned only its last" in read.note
    assert kl.read_kernel_log(module, source="file", path=str(log)).note is None


def test_scan_kernel_log(tmp_path, module, mocker):
    log = tmp_path / "kern.log"
    log.write_text("\n".join(load(DMESG / "smu_resume_failed_smc_not_ready_mi100_ROCm-amdgpu-183.txt")))
    read, findings = kl.scan_kernel_log(module, source="file", path=str(log))
    assert read.error is None and len(findings) == 5
    read, findings = kl.scan_kernel_log(module, source="file", path=str(tmp_path / "nope"))
    assert read.error and findings == []
    commands(module, mocker, {"journalctl": (0, JOURNAL, "")})
    stats = {}
    read, findings = kl.scan_kernel_log(module, source="journal", since=T, stats=stats)
    assert [(f["category"], f["bdf"]) for f in findings] == [("gpu_reset", "0000:0b:00.0"), ("gpu_reset", None)]
    assert stats["lines"] == 2


def test_read_result_as_dict(module, mocker):
    commands(module, mocker, {"journalctl": (0, JOURNAL, "")})
    info = kl.read_kernel_log(module, source="journal", clock=FakeClock()).as_dict()
    assert info == {"source": "journal", "cmd": info["cmd"], "error": None, "timed_out": False,
                    "elapsed_s": 0.0, "note": None, "lines": 2}
