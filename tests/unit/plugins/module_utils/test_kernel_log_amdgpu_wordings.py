"""amdgpu wordings of the kernel log found in real logs and the driver's sources (amdkernel).

The sample lines are the driver's format strings filled in (hand-made where no recording was found, as
each test says); the recorded logs are in ``tests/fixtures/gpu/dmesg`` (``test_kernel_log_fixtures.py``).
"""

from __future__ import annotations

from ansible_collections.gpuops.preflight.plugins.module_utils import _kernel_log as kl

GPU03, APU = "0000:03:00.0", "0000:04:00.0"


def amd(bdf, text, seconds):
    return "[%10.6f] amdgpu %s: amdgpu: %s" % (seconds, bdf, text)


def shape(findings):
    return [(f["category"], f["severity"], f["bdf"], f["recovered"], f["gpu_health"]) for f in findings]


# amdgpu_job.c: "ring %s timeout, but soft recovered" (DRM_ERROR before 6.x, dev_err since). The driver killed
# the hung waves and the ring went on: no reset follows, the hang is over.
SOFT_RECOVERED_NEW = amd(APU, "ring gfx_0.0.0 timeout, but soft recovered", 100.0)
SOFT_RECOVERED_OLD = "[  100.000000] [drm:amdgpu_job_timedout [amdgpu]] *ERROR* ring gfx timeout, but soft recovered"


def test_a_soft_recovered_ring_timeout_is_soft_and_says_so():
    for line in (SOFT_RECOVERED_NEW, SOFT_RECOVERED_OLD):
        findings = kl.scan([line], boot_time=0.0)
        assert [(f["category"], f["severity"], f["hung"]) for f in findings] == [("ring_timeout", kl.SOFT, None)]
        assert "soft-recovered" in findings[0]["summary"]


def test_a_soft_recovered_ring_timeout_leaves_no_hang_under_way():
    """An APU prints 'MODE2 reset' at every resume: after a soft-recovered timeout it is still no finding
    (it was one, and the resume's reset was read as part of a recovery that never began)."""
    for hang in (SOFT_RECOVERED_NEW, SOFT_RECOVERED_OLD):
        lines = [hang, amd(APU, "MODE2 reset", 130.0)]
        assert [f["category"] for f in kl.scan(lines, boot_time=0.0)] == ["ring_timeout"], hang


def test_a_soft_recovered_timeout_is_not_what_a_later_reset_recovered_from():
    lines = [SOFT_RECOVERED_NEW,
             amd(APU, "ring sdma0 timeout, signaled seq=10, emitted seq=12", 4000.0),
             amd(APU, "GPU reset begin!", 4000.1),
             amd(APU, "GPU reset(1) succeeded!", 4001.0)]
    findings = kl.scan(lines, boot_time=0.0)
    assert [(f["category"], f["recovered"], f["hung"]) for f in findings] == [
        ("ring_timeout", False, None), ("gpu_reset", True, "ring sdma0 timeout")]


# drm_drv.c drm_dev_wedged_event(): "device wedged, needs recovery" when the driver asks for a rebind or a bus
# reset (amdgpu: a DMUB firmware reset that failed); "but recovered through reset" otherwise. Hand-made from the
# format string: no amdgpu recording of it was found (xe's are the same text).
WEDGED = amd(GPU03, "[drm] device wedged, needs recovery", 200.0).replace("amdgpu: [drm]", "[drm]")


def test_device_wedged_needs_recovery_is_hard_and_degrades():
    findings = kl.scan([WEDGED], boot_time=0.0)
    assert shape(findings) == [("recovery_required", kl.HARD, GPU03, False, "degraded")]


def test_device_wedged_needs_recovery_after_a_hang_is_no_recovery():
    lines = [amd(GPU03, "ring gfx_0.0.0 timeout, signaled seq=1, emitted seq=3", 199.0),
             amd(GPU03, "GPU reset begin!", 199.1),
             amd(GPU03, "GPU reset succeeded, trying to resume", 199.5),
             WEDGED]
    findings = kl.scan(lines, boot_time=0.0)
    assert not [f for f in findings if f["recovered"]]
    assert ("recovery_required", kl.HARD, GPU03, False, "degraded") in shape(findings)


def test_other_drivers_wedged_lines_are_not_amdgpus():
    assert kl.scan(["[ 5.0] xe 0000:03:00.0: [drm] device wedged, needs recovery"], boot_time=0.0) == []


def test_mes_failing_to_add_a_queue_is_a_hang():
    # kfd_device_queue_manager.c add_queue_mes(), pr_err before 6.x, dev_err since
    for line in ("[  203.051365] amdgpu: failed to add hardware queue to MES, doorbell=0x1a02",
                 amd(GPU03, "failed to add hardware queue to MES, doorbell=0x1a02", 203.0)):
        findings = kl.scan([line], boot_time=0.0)
        assert [(f["category"], f["severity"]) for f in findings] == [("gpu_hang", kl.HARD)], line


# Real lines (NixOS/nixpkgs#223690: a suspend that failed, the GPU then black): amdgpu_smu.c smu_smc_hw_cleanup()
# says "Fail to disable dpm features!" when the SMU did not answer; the PSP's command buffer reads all-ones (the
# device no longer answers) before the mode1 reset fails.
SUSPEND_FAILED = [
    "[ 3538.036645] amdgpu 0000:03:00.0: amdgpu: Fail to disable dpm features!",
    "[ 3538.036646] [drm:amdgpu_device_ip_suspend_phase2 [amdgpu]] *ERROR* suspend of IP block <smu> failed -62",
    "[ 3540.036736] [drm] psp gfx command UNKNOWN CMD(0xFFFFFFFF) failed and response status is (0xFFFFFFFF)",
]


def test_fail_to_disable_dpm_features_is_an_smu_failure():
    findings = kl.scan(SUSPEND_FAILED[:1], boot_time=0.0)
    assert shape(findings) == [("smu_message_failed", kl.HARD, GPU03, False, "degraded")]


def test_a_psp_command_answered_with_all_ones_is_a_register_read_of_a_gone_device():
    findings = kl.scan(SUSPEND_FAILED[2:], boot_time=0.0)
    assert [(f["category"], f["severity"], f["gpu_health"]) for f in findings] == [
        ("register_access_failed", kl.HARD, "degraded")]


def test_psp_commands_refused_at_a_healthy_boot_are_no_finding():
    """Optional TAs the firmware refuses at boot (status 0x7, 0xFFFF0007) are not a device gone."""
    for line in ("[    5.1] amdgpu 0000:03:00.0: amdgpu: psp gfx command LOAD_TA(0x1) failed and response status is (0x7)",
                 "[    5.2] [drm] psp gfx command LOAD_IP_FW(0x6) failed and response status is (0xFFFF0007)"):
        assert kl.scan([line], boot_time=0.0) == [], line


# Kernels 6.x name the GPU on "VRAM is lost due to GPU reset!", printed while the reset resumes the GPU (after
# "GPU reset succeeded, trying to resume", before "GPU reset(N) succeeded!"). Real lines of pop-os/cosmic-epoch#3764
# (RX 5700 XT, kernel 7.0.11), and the final success line of the same kernel's reset.
RESET_6X = [
    "[  312.522692] amdgpu 0000:28:00.0: ring gfx_0.0.0 timeout, signaled seq=57638, emitted seq=57641",
    "[  312.522700] amdgpu 0000:28:00.0:  Process cosmic-comp pid 2288 thread cosmic-com:cs0 pid 2316",
    "[  312.522706] amdgpu 0000:28:00.0: Starting gfx_0.0.0 ring reset",
    "[  312.774528] amdgpu 0000:28:00.0: Ring gfx_0.0.0 reset failed",
    "[  312.774536] amdgpu 0000:28:00.0: GPU reset begin!. Source:  1",
    "[  312.943480] amdgpu 0000:28:00.0: BACO reset",
    "[  316.082456] amdgpu 0000:28:00.0: GPU reset succeeded, trying to resume",
    "[  316.082650] amdgpu 0000:28:00.0: [drm] PCIE GART of 512M enabled (table at 0x0000008000300000).",
    "[  316.082669] amdgpu 0000:28:00.0: VRAM is lost due to GPU reset!",
]


def test_vram_lost_during_the_resume_is_part_of_the_same_recovery():
    for lines in (RESET_6X, RESET_6X + ["[  316.300000] amdgpu 0000:28:00.0: GPU reset(1) succeeded!"]):
        stats = {}
        findings = kl.scan(lines, boot_time=0.0, stats=stats)
        assert [(f["category"], f["recovered"], f["hung"], f["count"]) for f in findings] == [
            ("gpu_reset", True, "ring gfx_0.0.0 timeout", 1)], lines[-1]
        assert stats["recovered"] == 1


def test_vram_lost_alone_is_its_own_soft_finding():
    findings = kl.scan([RESET_6X[-1]], boot_time=0.0)
    assert [(f["category"], f["severity"], f["recovered"]) for f in findings] == [("gpu_reset", kl.SOFT, False)]


def test_a_new_reset_after_a_recovery_is_a_new_recovery():
    again = [line.replace("[  31", "[  41") for line in RESET_6X]
    findings = kl.scan(RESET_6X + again, boot_time=0.0)
    assert [(f["category"], f["recovered"], f["count"]) for f in findings] == [("gpu_reset", True, 2)]


# The kernel crashed in the reset worker while a GPU reset was under way (ollama/ollama#7723, kernel 6.8, journal):
# no reset result will ever come, the GPU stays hung. Real kernel lines (the journal's user-space lines left out).
RESET_OOPS = [
    "Nov 19 20:00:11 torreTA kernel: [ 2448.344887] [drm:amdgpu_job_timedout [amdgpu]] *ERROR* ring sdma0 timeout, "
    "signaled seq=857, emitted seq=859",
    "Nov 19 20:00:11 torreTA kernel: [ 2448.345217] amdgpu 0000:08:00.0: amdgpu: GPU reset begin!",
    "Nov 19 20:00:11 torreTA kernel: [ 2448.461681] amdgpu 0000:08:00.0: amdgpu: Dumping IP State",
    "Nov 19 20:00:11 torreTA kernel: [ 2448.463844] BUG: unable to handle page fault for address: ffff90cf1c6b1060",
    "Nov 19 20:00:11 torreTA kernel: [ 2448.463848] #PF: supervisor write access in kernel mode",
    "Nov 19 20:00:11 torreTA kernel: [ 2448.463858] Oops: 0003 [#1] PREEMPT SMP NOPTI",
    "Nov 19 20:00:11 torreTA kernel: [ 2448.463861] CPU: 9 PID: 3979 Comm: kworker/u64:1 Tainted: G           OE      "
    "6.8.0-48-generic #48~22.04.1-Ubuntu",
]


def test_a_kernel_oops_during_a_gpu_reset_is_a_failed_reset():
    findings = kl.scan(RESET_OOPS, boot_time=0.0)
    assert [(f["category"], f["severity"]) for f in findings] == [
        ("ring_timeout", kl.SOFT), ("gpu_reset", kl.SOFT), ("gpu_reset_failed", kl.HARD)]
    assert "Oops" in findings[-1]["message"]


def test_a_kernel_oops_with_no_gpu_reset_under_way_is_not_the_gpus():
    oops = [RESET_OOPS[-2].replace("2448.", "9000.")]
    assert kl.scan(oops, boot_time=0.0) == []
    recovered = RESET_OOPS[:2] + ["Nov 19 20:00:12 torreTA kernel: [ 2449.0] amdgpu 0000:08:00.0: amdgpu: GPU reset(1) "
                                  "succeeded!"] + oops
    assert [(f["category"], f["recovered"]) for f in kl.scan(recovered, boot_time=0.0)] == [("gpu_reset", True)]


def test_newer_oops_wordings_during_a_reset():
    for oops in ("Oops: general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP",
                 "Internal error: Oops: 0000000096000004 [#1] PREEMPT SMP"):
        lines = RESET_OOPS[:2] + ["[ 2448.5] " + oops]
        assert kl.scan(lines, boot_time=0.0)[-1]["category"] == "gpu_reset_failed", oops


def test_a_kernel_oops_long_after_an_unresolved_hang_without_a_reset_is_not_the_gpus():
    """A display fence wait that timed out (no reset followed) is no GPU reset under way hours later."""
    lines = ["[  100.0] [drm:amdgpu_dm_commit_planes [amdgpu]] *ERROR* Waiting for fences timed out!",
             "[  101.0] amdgpu 0000:08:00.0: amdgpu: ring gfx_0.0.0 timeout, signaled seq=1, emitted seq=3",
             "[ 9000.0] Oops: 0003 [#1] PREEMPT SMP NOPTI"]
    assert [f["category"] for f in kl.scan(lines, boot_time=0.0)] == ["ring_timeout", "ring_timeout"]


# The hung-task detector while a GPU reset is under way: the reset has run for minutes and is stuck
# (NixOS/nixpkgs#176915: "GPU reset begin!" at 16:35:32, the task report at 16:38:26, dmesg -T; real lines).
RESET_STUCK = [
    "[Wed Jun  8 16:35:32 2022] [drm:amdgpu_job_timedout [amdgpu]] *ERROR* ring gfx_0.0.0 timeout, signaled "
    "seq=22025769, emitted seq=22025769",
    "[Wed Jun  8 16:35:32 2022] [drm:amdgpu_job_timedout [amdgpu]] *ERROR* Process information: process chrome pid 2379 "
    "thread chrome:cs0 pid 2391",
    "[Wed Jun  8 16:35:32 2022] amdgpu 0000:03:00.0: amdgpu: GPU reset begin!",
    "[Wed Jun  8 16:38:26 2022] INFO: task InputThread:1375 blocked for more than 122 seconds.",
    "[Wed Jun  8 16:38:26 2022]       Not tainted 5.15.41 #1-NixOS",
]


def test_a_task_blocked_for_minutes_during_a_gpu_reset_is_a_stuck_reset():
    findings = kl.scan(RESET_STUCK, boot_time=0.0)
    assert [(f["category"], f["severity"]) for f in findings] == [
        ("ring_timeout", kl.SOFT), ("gpu_reset", kl.SOFT), ("gpu_reset_failed", kl.HARD)]


def test_a_blocked_task_with_no_gpu_reset_under_way_is_not_the_gpus():
    assert kl.scan(RESET_STUCK[3:], boot_time=0.0) == []
    hang_only = RESET_STUCK[:2] + RESET_STUCK[3:]          # a timeout, but no reset began
    assert [f["category"] for f in kl.scan(hang_only, boot_time=0.0)] == ["ring_timeout"]


def test_baco_enter_or_exit_failing_is_an_smu_failure():
    """amdgpu_smu.c smu_baco_enter()/smu_baco_exit() (runtime PM of a headless GPU, BACO resets); hand-made from
    the driver's format strings."""
    for text in ("Failed to enter BACO state!", "Failed to exit BACO state!"):
        findings = kl.scan([amd(GPU03, text, 50.0)], boot_time=0.0)
        assert shape(findings) == [("smu_message_failed", kl.HARD, GPU03, False, "degraded")], text


# ROCm/ROCm#858 (2x Radeon VII, kernel 4.15, syslog; real lines): an uncorrectable PCIe error on the root port, the
# GPU behind it has no AER handler in that driver, and the SMU's response register then reads all-ones.
def test_an_smu_response_read_as_all_ones_is_no_response():
    for line in ("[ 3182.429577] amdgpu: [powerplay] Failed to send message 0x10, response 0xffffffff",
                 # the smu_v11 / smu_cmn wording of 5.x (the response register as read), hand-made from the format
                 "[ 10.0] amdgpu 0000:03:00.0: amdgpu: failed send message: TransferTableSmu2Dram (18) \tparam: "
                 "0x00000006 response 0xffffffff"):
        findings = kl.scan([line], boot_time=0.0)
        assert [(f["category"], f["severity"]) for f in findings] == [("smu_no_response", kl.HARD)], line


def test_a_gpu_without_an_aer_handler_is_named_behind_its_port():
    line = "Aug  8 01:33:26 localhost kernel: [ 3181.632294] amdgpu 0000:0a:00.0: device has no AER-aware driver"
    findings = kl.scan([line], boot_time=0.0)
    assert [(f["category"], f["severity"], f["bdf"]) for f in findings] == [("pcie_error", kl.SOFT, "0000:0a:00.0")]
    other = "Aug  8 01:33:26 localhost kernel: [ 3181.632296] snd_hda_intel 0000:0a:00.1: device has no AER-aware driver"
    assert kl.scan([other], boot_time=0.0) == []


def test_mes_wordings_of_newer_kernels_are_hangs():
    """mes_v12_1 (several XCCs) names the XCC and the pipe ("MES(%d, %d) failed to respond to msg=%s (%s)", hand-made
    from the format string); MES not suspending the gangs (amdgpu_mes.c) precedes the reset (lines as recorded)."""
    for text in ("MES(0, 0) failed to respond to msg=REMOVE_QUEUE", "MES(1, 0) failed to respond to msg=MISC (WAIT_REG_MEM)",
                 "MES failed to respond to msg=SUSPEND", "failed to suspend all gangs", "failed to suspend gangs from MES",
                 # amdgpu_mes.c of kernels 6.18+/7.x (the format strings)
                 "MES(0,0) failed to respond to msg=RESET", "Failed to detect hung queues", "Failed to reset hung queues",
                 "failed to resume all gangs", "failed to remove queue from MES, doorbell=0x2a2c"):
        findings = kl.scan([amd("0000:c5:00.0", text, 811.4)], boot_time=0.0)
        assert [(f["category"], f["severity"], f["bdf"]) for f in findings] == [("gpu_hang", kl.HARD, "0000:c5:00.0")], text


# Kernels 5.5-5.9 counted RAS errors without the word "hardware" (amdgpu_ras.c amdgpu_ras_error_query,
# amdgpu_umc.c amdgpu_umc_process_ras_data_cb: dev_info "%ld uncorrectable errors detected in %s block"; nbio_v7_4.c:
# DRM_INFO, "[drm] ..."); the wording changed in the amd-gfx patch "drm/amdgpu: ... hardware errors". Hand-made
# from those format strings (no recording found).
def test_ras_counts_of_kernels_before_the_hardware_wording():
    lines = [("[ 1.0] amdgpu %s: 2 uncorrectable errors detected in UMC block" % GPU03, "ras_uncorrectable", kl.HARD,
              GPU03, "degraded"),
             ("[ 1.0] [drm] 1 uncorrectable errors detected in pcie_bif block", "ras_uncorrectable", kl.HARD, None,
              "degraded"),
             ("[ 1.0] amdgpu %s: 3 correctable errors detected in umc block" % GPU03, "ras_correctable", kl.SOFT, GPU03,
              None)]
    for line, category, severity, bdf, health in lines:
        assert [(f["category"], f["severity"], f["bdf"], f["gpu_health"]) for f in kl.scan([line], boot_time=0.0)] == [
            (category, severity, bdf, health)], line


def test_zero_ras_counts_are_no_error_in_any_wording():
    """Zero counts: 'N new ...' (6.x amdgpu_ras_error_print_error_data), '... in total ...', and the older form."""
    lines = [amd(GPU03, "socket: 0, die: 0, 0 new uncorrectable hardware errors detected in umc block", 1.0),
             amd(GPU03, "socket: 0, die: 0, 0 new deferred hardware errors detected in umc block", 1.0),
             amd(GPU03, "socket: 0, die: 0, 0 new correctable hardware errors detected in umc block", 1.0),
             amd(GPU03, "socket: 0, die: 0, 0 uncorrectable hardware errors detected in total in umc block", 1.0),
             "[ 1.0] amdgpu %s: 0 uncorrectable errors detected in umc block" % GPU03,
             "[ 1.0] [drm] 0 correctable errors detected in pcie_bif block"]
    for line in lines:
        assert kl.scan([line], boot_time=0.0) == [], line
    # ten is not zero
    assert [f["category"] for f in kl.scan([amd(GPU03, "socket: 0, die: 0, 10 new uncorrectable hardware errors "
                                                       "detected in umc block", 1.0)], boot_time=0.0)] == [
        "ras_uncorrectable"]


# amd-gfx mailing list, "Re: amdgpu driver probe error" (2024-09-17, RX 6700S after a hot-plug, kernel 6.10.8):
# Message-ID <CADnq5_NDPJpieW0++z4MzthaUrY=SqEO_tZOQLNMrU2FRmRdgg@mail.gmail.com> (the reporter's lines, as quoted)
PROBE_ERROR = ["amdgpu 0000:03:00.0: amdgpu: SMU: response:0xFFFFFFFF for index:2 param:0x00000000 message:GetSmuVersion?",
               "amdgpu 0000:03:00.0: amdgpu: GPU mode1 reset failed",
               "amdgpu 0000:03:00.0: amdgpu: asic reset on init failed",
               "amdgpu 0000:03:00.0: amdgpu: Fatal error during GPU init"]


def test_a_failed_reset_before_init_is_an_init_failure_of_that_gpu():
    findings = kl.scan(PROBE_ERROR, boot_time=0.0)
    assert [(f["category"], f["severity"], f["bdf"], f["gpu_health"]) for f in findings] == [
        ("smu_no_response", kl.HARD, GPU03, "degraded"),
        ("gpu_reset_failed", kl.HARD, GPU03, "degraded"),
        ("init_failed", kl.HARD, GPU03, "degraded"),
        ("init_failed", kl.HARD, GPU03, "degraded")]
    # a log cut before the "Fatal error" line still names the failed init
    assert [f["category"] for f in kl.scan(PROBE_ERROR[2:3], boot_time=0.0)] == ["init_failed"]


# siderolabs/talos#8072 (talosctl dmesg, Carrizo APU without its gfx firmware; the fixture has the whole excerpt) and
# the same IP blocks' DRM_ERROR forms (gfx_v8_0.c, psp_v11_0.c, amdgpu_device.c amdgpu_device_parse_gpu_info_fw).
def test_a_firmware_file_that_cannot_be_loaded_fails_the_init_and_says_so():
    named = "amdgpu 0000:00:01.0: amdgpu: gfx8: Failed to load firmware \"amdgpu/carrizo_pfp.bin\""
    findings = kl.scan([named], boot_time=0.0)
    assert [(f["category"], f["severity"], f["bdf"], f["gpu_health"]) for f in findings] == [
        ("init_failed", kl.HARD, "0000:00:01.0", "degraded")]
    assert "firmware package" in findings[0]["fix"]
    for line in ("[drm:amdgpu_device_init [amdgpu]] *ERROR* Failed to load gpu_info firmware \"amdgpu/navi10_gpu_info.bin\"",
                 "[drm:psp_sw_init [amdgpu]] *ERROR* Failed to load psp firmware!"):
        assert [f["category"] for f in kl.scan([line], boot_time=0.0)] == ["init_failed"], line


def test_the_firmware_loaders_own_line_and_other_drivers_firmware_are_no_finding():
    """Optional files (TA, DMCU) print the loader's line too; other drivers' firmware is not a GPU's."""
    for line in ("amdgpu 0000:00:01.0: Direct firmware load for amdgpu/carrizo_pfp.bin failed with error -2",
                 "iwlwifi 0000:02:00.0: Failed to load firmware chunk!"):
        assert kl.scan([line], boot_time=0.0) == [], line


# freedesktop.org bug 109955, comment #96 (https://bugs.freedesktop.org/show_bug.cgi?id=109955, RX Vega 64, kernel
# 5.2.11): powerplay's vega10 wait for the SMU's answer timed out; only some of them are followed by "Failed message".
def test_powerplay_no_response_from_smu_is_no_response():
    lines = ["[46993.962192] amdgpu: [powerplay] No response from smu",
             "[46994.277773] amdgpu: [powerplay] No response from smu"]
    assert [(f["category"], f["severity"], f["count"], f["gpu_health"]) for f in kl.scan(lines, boot_time=0.0)] == [
        ("smu_no_response", kl.HARD, 2, "degraded")]
