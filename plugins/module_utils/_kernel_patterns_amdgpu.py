# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the amdgpu kernel-log pattern table (data only).

Read by the one scan engine in ``_kernel_log``. Every row is
``(category, key, regex, summary, options)``:

* ``category``: a name of ``_kernel_log.CATEGORIES`` (it gives the default severity and fix);
* ``key``: a lower-case literal every match contains (lines without any key are skipped unparsed);
* ``regex``: searched case-insensitively in the message body (stamp and host prefix removed). A
  named group ``bdf`` names the GPU; a group ``hung`` names what hung (see roles);
* ``summary``: short text of the finding;
* ``options``: ``own`` (the line must contain ``NEEDS``: wording other drivers print too),
  ``role`` (how the line takes part in a recovery sequence, see ``_kernel_log.ROLES``),
  ``severity`` / ``fix`` (override the category's), ``gpu`` (the health the finding gives the GPU
  it names, ``degraded`` or ``lost``; without it the finding is the kernel_log check's alone; a
  lookup row maps the categories it looks up instead), ``after_hang`` (a finding only while a hang
  or reset of its GPU is under way: wording healthy boots and resumes print too), ``during_reset`` (a
  finding only while a reset of its GPU has begun and not ended: a kernel crash or a task blocked behind
  a stuck reset); a lookup row (NVIDIA's Xids) has ``lookup`` (number -> (category, severity, summary,
  fix)), ``unknown`` (the entry for a number it lacks) and ``ignore`` (numbers that are no finding).

Rows are ordered: the first row that matches wins, so specific wording comes before general.
The wording is the driver's own (drivers/gpu/drm/amd: amdgpu_device.c, amdgpu_job.c,
amdgpu_ring.c, pm/powerplay smu7/smu9/vega*, pm/swsmu smu_v11_0/smu_v12_0/smu_cmn.c, mes_v1x).
"""

from __future__ import annotations

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks

VENDOR = "amd"
NEEDS = "amdgpu"

_BDF = r"[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]"

# Where an amdgpu line names its GPU when the row itself does not: dev_*() prefixes, "for drm
# dev, <bdf>", and a PCI address inside a [drm...] line. A PCIe bridge's address is never used.
ADDRESSES = [
    r"(?:^|[\s\]}])amdgpu (" + _BDF + r"):",
    r"for drm dev,? (" + _BDF + r")",
    r"\[drm[:\]].*?(?<![0-9A-Za-z:])(" + _BDF + r")(?![0-9])",
]

# Fix texts for this vendor (the categories' own are vendor-neutral).
FIXES = {
    "smu_no_response": (
        "The GPU's power-management firmware (SMU) stopped answering. Power-cycle the rig (a warm "
        "reboot rarely clears it); if it comes back, check that GPU's riser and PCIe power cables, "
        "or add it to excluded_gpus."),
    "smu_message_failed": (
        "The SMU rejected or did not finish a command. Reboot the rig; if it recurs, reduce SMU "
        "polling (monitoring tools, watch rocm-smi) and check the card's power cables."),
    "gpu_hang": (
        "The GPU's command processor or scheduler firmware (MES/KIQ/CP) hung. Reboot the rig before "
        "new work; a GPU in this state rarely recovers by itself."),
    "ras_uncorrectable": (
        "Uncorrectable hardware (ECC/RAS) error. Take the GPU out of service, check its error counts "
        "and bad pages (amd-smi metric --ecc, amd-smi bad-pages); replace it if it recurs."),
    "ras_correctable": (
        "Correctable hardware (ECC) errors: no action needed now; watch the counts "
        "(amd-smi metric --ecc)."),
    "init_failed": (
        "amdgpu failed to initialise a GPU. Read the kernel log around it (firmware files, VBIOS, "
        "PCIe errors), reboot, and reseat the card if it persists."),
}

_HANG = {"role": "hang"}
# What a finding does to the GPU it names (see ``gpu`` above).
DEGRADED = "degraded"
LOST = "lost"
_DEGRADES = {"gpu": DEGRADED}
_OWN_DEGRADES = {"own": True, "gpu": DEGRADED}
_FAILED_DEGRADES = {"own": True, "role": "failed", "gpu": DEGRADED}
_STEP_FAILED_DEGRADES = {"own": True, "role": "step_failed", "gpu": DEGRADED}

ROWS = [
    # The SMU does not answer at all: all-ones reads, no response, or a message whose response
    # register still reads 0 when the driver gives up (smu7 "ret is 0", smu_v11/v12 "response 0x0").
    ("smu_no_response", "smu", r"SMU: response:\s*0xFFFFFFFF\b", "SMU not answering (0xFFFFFFFF)", _DEGRADES),
    ("smu_no_response", "smu", r"SMU: No response msg_reg", "SMU not answering (no response)", _DEGRADES),
    ("smu_no_response", "smu", r"SMU is in hanged state", "SMU marked hung by the driver", _DEGRADES),
    # powerplay smu9/vega10/vega12/vega20 (*_wait_for_response): the response register stayed 0 until the timeout.
    # Its "Failed message: ..., error code: 0x0" may follow (below), or not (a message sent without waiting).
    ("smu_no_response", "no response from smu", r"\bNo response from smu\b", "SMU not answering (no response)",
     _OWN_DEGRADES),
    ("smu_no_response", "timeout", r"is timeout \(no response\)", "SMU message timed out (no response)", _DEGRADES),
    # smu7 (its continuation lines, split from "amdgpu: [powerplay]", name no driver): its response field is 16
    # bits, so 65535 is the all-ones read of a register that no longer answers ...
    ("smu_no_response", "fail",
     r"(?:\bfailed to send (?:pre )?message \S+|\blast message was failed) ret is\s+(?:0+|65535)(?![0-9a-fx])",
     "SMU never answered a message (response 0 or all-ones)", _DEGRADES),
    # ... smu9/vega, smu_v11, smu_v12.
    ("smu_no_response", "fail",
     r"(?:\bfailed send message:.*?\bresponse|\bFailed to send message 0x[0-9a-f]+, response"
     r"|\bFailed message: 0x[0-9a-f]+, input parameter: 0x[0-9a-f]+, error code:)\s+(?:0x)?0+(?![0-9a-fx])",
     "SMU never answered a message (response 0)", _OWN_DEGRADES),
    # ... and the same messages whose response register read all-ones (the device no longer answers; ROCm#858).
    ("smu_no_response", "fail",
     r"(?:\bfailed send message:.*?\bresponse|\bFailed to send message 0x[0-9a-f]+, response)\s+0xffffffff\b",
     "SMU not answering (response reads all-ones)", _OWN_DEGRADES),
    # ... and swsmu's of kernels 5.3-5.9, which print the wait's error code as the "response": 0xffffffc2 is -ETIME
    # (smu_v11_0/smu_v12_0 wait_for_response: no answer before the timeout); 0xfffffffb (-EIO) is an answer.
    ("smu_no_response", "fail",
     r"(?:\bfailed send message:.*?\bresponse|\bFailed to send message 0x[0-9a-f]+, response)\s+0xffffffc2\b",
     "SMU never answered a message (timed out)", _OWN_DEGRADES),
    ("smu_no_response", "smc", r"\bSMC is not ready", "SMC not ready", _OWN_DEGRADES),
    ("smu_no_response", "smc", r"SMC engine is not correctly up", "SMC engine not up", _DEGRADES),
    # The SMU answers, but a message failed (smu_cmn.c wording, then older powerplay/swsmu).
    ("smu_message_failed", "smu", r"SMU: I'm not done with your (?:previous )?command", "SMU busy with a previous command", _DEGRADES),
    ("smu_message_failed", "smu", r"SMU: I'm very busy", "SMU too busy for a command", _DEGRADES),
    ("smu_message_failed", "smu", r"SMU: valid command, bad prerequisites", "SMU refused a command (bad prerequisites)", _DEGRADES),
    ("smu_message_failed", "smu", r"SMU: unknown command", "SMU rejected an unknown command", _DEGRADES),
    ("smu_message_failed", "smu", r"SMU: I'm debugging", "SMU in debug state", _DEGRADES),
    ("smu_message_failed", "smu", r"SMU: response:\s*0x[0-9a-f]+", "SMU message failed", _DEGRADES),
    ("smu_message_failed", "fail", r"Failed to export SMU metrics table", "SMU metrics table export failed", _DEGRADES),
    ("smu_message_failed", "fail", r"\bfailed send message\b", "SMU message failed (powerplay)", _DEGRADES),
    ("smu_message_failed", "fail", r"failed to send (?:pre )?message \S+ ret is", "SMU message failed (powerplay)", _DEGRADES),
    ("smu_message_failed", "fail", r"\bFailed to send message\b.*\bresponse\b", "SMU message failed (swsmu)", _OWN_DEGRADES),
    ("smu_message_failed", "fail", r"\bFailed to read message arg\b", "SMU message answer unreadable", _OWN_DEGRADES),
    ("smu_message_failed", "fail", r"\bFailed message: 0x[0-9a-f]+, input parameter", "SMU message failed (powerplay)",
     _OWN_DEGRADES),
    ("smu_message_failed", "fail", r"last message was failed", "SMU message failed (powerplay)", _DEGRADES),
    ("smu_message_failed", "fail", r"Msg issuing pre-check failed", "SMU not ready for a message", _DEGRADES),
    ("smu_message_failed", "fail", r"Failed to disallow (?:df cstate|cf state)", "SMU failed to change DF C-state", _DEGRADES),
    ("smu_message_failed", "fail", r"\[SetDfCstate\] failed", "SMU failed to change DF C-state", _DEGRADES),
    ("smu_message_failed", "fail", r"\[PrepareMp1\] Failed", "SMU failed to prepare MP1", _DEGRADES),
    ("smu_message_failed", "fail", r"Failed to disable (?:all )?smu features", "SMU failed to disable features", _DEGRADES),
    ("smu_message_failed", "fail", r"Failed to disable DPM\b", "SMU failed to disable DPM", _OWN_DEGRADES),
    # amdgpu_smu.c smu_hw_init()/smu_resume(): the SMU could not be set up (at load, resume or after a reset); the
    # IP block failure that follows often names no GPU, this line does.
    ("smu_message_failed", "fail", r"\bFailed to setup smc hw\b", "SMU setup failed", _OWN_DEGRADES),
    # amdgpu_smu.c smu_baco_enter()/smu_baco_exit(): the SMU failed the BACO (bus active, chip off) sequence of a
    # runtime suspend/resume or a BACO reset; a GPU that cannot leave BACO is unusable.
    ("smu_message_failed", "baco", r"\bFailed to (?:enter|exit) BACO state", "SMU failed a BACO enter/exit", _OWN_DEGRADES),
    # amdgpu_smu.c smu_smc_hw_cleanup() (suspend, unload, reset): "Fail to disable dpm features!"
    ("smu_message_failed", "fail", r"\bFail to disable dpm features", "SMU failed to disable DPM features", _OWN_DEGRADES),
    ("smu_message_failed", "smc", r"SMC failed to set mp1 state", "SMU failed to set MP1 state", _DEGRADES),
    ("smu_message_failed", "fail", r"Failed to get current clock freq", "SMU clock query failed", _DEGRADES),
    ("smu_message_failed", "fail", r"Failed to disable gfxoff", "SMU failed to disable GFXOFF", _DEGRADES),
    # All-ones MMIO reads: the device is gone.
    ("register_access_failed", "fail", r"failed to (?:read|write) reg\b", "register access failed", _OWN_DEGRADES),
    ("register_access_failed", "0xffffffff", r"L2_PROTECTION_FAULT_STATUS:\s*0xFFFFFFFF\b", "fault status reads all-ones", _DEGRADES),
    # The PSP's command buffer reads all-ones (amdgpu_psp.c psp_cmd_submit_buf: "psp gfx command %s(0x%X) failed and
    # response status is (0x%X)"): the device no longer answers. Other statuses (0x7, 0xFFFF0007: an optional TA the
    # firmware refuses at boot) are no finding.
    ("register_access_failed", "0xffffffff", r"\bpsp gfx command .{0,40}failed and response status is \(0xFFFFFFFF\)",
     "PSP command answered with all-ones", _DEGRADES),
    # Off the bus (a bridge's own lines are in the PCIe table).
    ("bus_lost", "lost", r"device lost from bus", "GPU lost from the PCIe bus", {"own": True, "gpu": LOST}),
    # "Unable to change power state from D3cold to D0, device inaccessible"; kernels before 5.x: "can't change power
    # state from D3cold to D0 (config space inaccessible)"
    ("bus_lost", "inaccessible", r"(?:^|\s)amdgpu " + _BDF + r":.*\b(?:device|config space) inaccessible\b",
     "device inaccessible on the PCIe bus", {"gpu": LOST}),
    # The GPU itself reported an uncorrectable PCIe error (its own AER line, after the bridge's "AER: ... received
    # from <bdf>"): names the GPU the bridge's line does not. Kernels 6.x say "Uncorrectable", older "Uncorrected".
    ("pcie_error", "pcie bus error", r"(?:^|\s)amdgpu " + _BDF + r": (?:AER: )?PCIe Bus Error: severity=Uncorrect(?:ed|able) \(Fatal\)",
     "fatal uncorrected PCIe error reported by the GPU", {}),
    ("pcie_error", "pcie bus error", r"(?:^|\s)amdgpu " + _BDF + r": (?:AER: )?PCIe Bus Error: severity=Uncorrect(?:ed|able) \(Non-Fatal\)",
     "non-fatal uncorrected PCIe error reported by the GPU", {"severity": _checks.SOFT}),
    # The PCIe core found no AER handler in the driver (kernels before amdgpu had them: "device has no AER-aware
    # driver"; later "AER: can't recover (no error_detected callback)"): names the GPU behind a port's uncorrectable
    # error (the port's own line names only the port). Soft alone, as NVIDIA's; the port's Fatal line is hard.
    ("pcie_error", "aer", r"(?:^|\s)amdgpu " + _BDF + r": (?:device has no AER-aware driver"
     r"|AER: can't recover \(no error_detected callback\))", "uncorrected PCIe error on the GPU's link (no AER recovery)",
     {"severity": _checks.SOFT}),
    # Init failures (any init phase of an IP block: early_init, sw_init, hw_init, late_init).
    ("init_failed", "init of ip block", r"\b(?:early_init|sw_init|hw_init|late_init) of IP block <?[^>\s]+>? failed",
     "IP block init failed", {"own": True, "role": "failed", "gpu": DEGRADED}),
    ("init_failed", "fatal", r"Fatal error during GPU init", "fatal error during GPU init",
     {"own": True, "role": "failed", "gpu": DEGRADED}),
    # A firmware file the driver needs is missing or unreadable (gfx8: Failed to load firmware "amdgpu/x.bin", Failed to
    # load gfx/psp/gpu_info firmware): the IP block and the whole init fail after it. The firmware loader's own "Direct
    # firmware load for amdgpu/... failed with error -2" is no finding: it is printed for optional files too.
    ("init_failed", "firmware", r"\bFailed to load (?:\w+ )?firmware\b", "GPU firmware file could not be loaded",
     {"own": True, "role": "failed", "gpu": DEGRADED,
      "fix": "amdgpu could not load a firmware file it needs (its name is in the message). Install or update the "
             "firmware package for this kernel (linux-firmware, or the amdgpu-dkms firmware of the ROCm release), "
             "rebuild the initramfs if amdgpu loads from it, and reboot."}),
    ("init_failed", "fail", r"memory training failed", "memory training failed", _OWN_DEGRADES),
    # amdgpu_device_init(): the reset a GPU needs before its init (left dirty by a previous driver, a VM, a
    # hot-plug) failed; "Fatal error during GPU init" follows, unless the log was cut.
    ("init_failed", "fail", r"\basic reset on init failed", "reset before GPU init failed", _FAILED_DEGRADES),
    # The PSP (the security processor that loads every other firmware) did not start: psp_hw_start and
    # psp_hw_init, at load and at resume (then "PSP resume failed" follows); the GPU has no firmware and cannot run.
    ("init_failed", "fail",
     r"\bPSP (?:create ring|firmware loading|tmr init|load (?:kdb|spl|sys drv|soc drv|intf drv|dbg drv|ras drv"
     r"|ipkeymgr drv|sos|tmr|toc)) failed", "PSP firmware processor did not start",
     _FAILED_DEGRADES),
    ("init_failed", "fail", r"\bamdgpu: probe of (?P<bdf>" + _BDF + r") failed", "amdgpu probe failed", _DEGRADES),
    ("init_failed", "fail", r"probe with driver amdgpu failed", "amdgpu probe failed", _DEGRADES),
    # KFD (ROCm's compute side) leaves out a GPU whose PCIe path has no atomics (common behind risers and
    # chipset slots); graphics still work. The line names the device by PCI id only.
    ("init_failed", "rejects atomics", r"\bskipped device (?P<pci_id>[0-9a-f]{4}:[0-9a-f]{4}),? PCI rejects atomics",
     "not usable by ROCm: PCI rejects atomics",
     {"gpu": DEGRADED, "fix": "KFD skipped this GPU: the PCIe path to it does not support atomic operations, so ROCm "
                              "cannot use it. Move it to a slot or riser with PCIe atomics (a CPU-attached slot), "
                              "or add it to excluded_gpus."}),
    # DRM's wedged event when the driver asks for more than a reset (a rebind or a bus reset: amdgpu after a DMUB
    # firmware reset that failed): the GPU takes no work until then (drm_drv.c drm_dev_wedged_event). Its
    # "but recovered through reset" counterpart is a recovery (below).
    ("recovery_required", "wedged", r"\bdevice wedged, needs recovery", "GPU wedged: the driver asks for a rebind or bus reset",
     {"own": True, "role": "failed", "gpu": DEGRADED,
      "fix": "amdgpu declared the GPU wedged and asks for a recovery a reset cannot give (a driver rebind or a PCIe "
             "bus reset). Reboot the rig (power-cycle if it comes back) before new work."}),
    # Failed resets and resumes (before the plain reset lines). A reset or resume that failed degrades its
    # GPU (a reset that succeeded after a failed step folds the step away); a failed per-ring reset (a full
    # reset follows) or suspend step does not by itself.
    ("gpu_reset_failed", "fail", r"GPU reset\(\d+\) failed", "GPU reset failed", _FAILED_DEGRADES),
    ("gpu_reset_failed", "fail", r"\bmode[12] reset failed", "GPU mode reset failed", _STEP_FAILED_DEGRADES),
    ("gpu_reset_failed", "fail", r"ASIC reset failed with error", "ASIC reset failed", _STEP_FAILED_DEGRADES),
    ("gpu_reset_failed", "fail", r"GPU Recovery Failed", "GPU recovery failed", _FAILED_DEGRADES),
    ("gpu_reset_failed", "reset", r"GPU reset end with ret = -\d+", "GPU reset failed", _FAILED_DEGRADES),
    ("gpu_reset_failed", "fail", r"\b(?P<hung>Ring \S+ reset) (?:failed|failure)\b", "ring reset failed",
     {"own": True, "role": "hang"}),
    ("gpu_reset_failed", "fail", r"\bresume of IP block <?[^>\s]+>? failed", "IP block resume failed", _FAILED_DEGRADES),
    ("gpu_reset_failed", "fail", r"amdgpu_device_ip_resume failed", "device resume failed",
     {"role": "failed", "gpu": DEGRADED}),
    ("gpu_reset_failed", "fail", r"PSP resume failed", "PSP resume failed", _FAILED_DEGRADES),
    # amdgpu's own recovery after an uncorrectable PCIe (AER) error failed: the PCI core disconnects the GPU
    # (amdgpu_pci_slot_reset, "PCIe error recovery failed, err:%d").
    ("gpu_reset_failed", "recovery failed", r"\bPCIe error recovery failed", "recovery from a PCIe error failed",
     _FAILED_DEGRADES),
    # The kernel crashed (x86 "Oops: 0003 [#1] ...", 6.x "Oops: general protection fault ...", arm64 "Internal
    # error: Oops: ...") while a GPU reset was under way: the reset worker died, no result will come and the GPU
    # stays hung (ollama#7723). Any other driver's crash, with no GPU reset under way, is not this table's.
    ("gpu_reset_failed", "oops", r"(?:^|Internal error: )Oops: ", "kernel crashed during a GPU reset (Oops)",
     {"role": "failed", "during_reset": True, "gpu": DEGRADED,
      "fix": "The kernel crashed (Oops) while the GPU was being reset: the reset never finished and the GPU stays "
             "hung. Reboot the rig before new work; read the crash trace around it."}),
    # The hung-task detector ("INFO: task <comm>:<pid> blocked for more than 122 seconds.") while a GPU reset is
    # under way: the reset has run for minutes, it is stuck (nixpkgs#176915, #223690: the reset worker itself).
    ("gpu_reset_failed", "blocked for more than", r"\bINFO: task \S+ blocked for more than \d+ seconds",
     "GPU reset stuck (a task blocked for minutes while it ran)",
     {"role": "failed", "during_reset": True, "gpu": DEGRADED,
      "fix": "A GPU reset began and has not finished for minutes (the kernel reports tasks blocked behind it): the "
             "GPU is hung. Reboot the rig (power-cycle if it comes back) before new work."}),
    ("gpu_reset_failed", "fail", r"\bsuspend of IP block <?[^>\s]+>? failed", "IP block suspend failed",
     {"own": True, "role": "step_failed"}),
    # Firmware / queue hangs (MES, KIQ and MES-era mes_kiq rings, CP, SDMA).
    # "MES failed to response msg=3" (6.x), "MES(1) failed to respond to msg=..." (per pipe), "MES(0, 1) ..." (per XCC
    # and pipe, mes_v12_1).
    ("gpu_hang", "fail", r"\bMES(?:\(\d+(?:,\s*\d+)?\))? failed to respon", "MES firmware not responding", _HANG),
    ("gpu_hang", "fail", r"\bfailed to (?:suspend|resume) (?:all )?gangs\b", "MES could not suspend or resume the queues",
     {"own": True, "role": "hang"}),
    ("gpu_hang", "unrecoverable", r"MES might be in unrecoverable state", "MES in unrecoverable state", _HANG),
    ("gpu_hang", "fail", r"failed to (?:remove|add) (?:hardware )?queue (?:from|to) MES", "MES could not remove or add a queue",
     _HANG),
    # amdgpu_mes.c amdgpu_mes_detect_and_reset_hung_queues(): MES could not even find the hung queues.
    ("gpu_hang", "fail", r"\bFailed to (?:detect|reset) hung queues\b", "MES could not detect or reset the hung queues",
     {"own": True, "role": "hang"}),
    ("gpu_hang", "hung", r"(?P<hung>IP block:\s*\S+ is hung)", "IP block hung", _HANG),
    ("gpu_hang", "fail", r"\b(?P<hung>ring \S+ test failed)", "ring test failed", _HANG),
    ("gpu_hang", "fail", r"\b(?P<hung>IB test failed on \S+)", "IB test failed", {"own": True, "role": "hang"}),
    ("gpu_hang", "kiq", r"timeout waiting for kiq fence|wait for kiq fence error", "KIQ fence timeout",
     {"own": True, "role": "hang"}),
    ("gpu_hang", "timeout", r"qcm fence wait loop timeout expired", "queue preemption timed out", _HANG),
    # KFD's hardware scheduler did not preempt the queues (kfd_device_queue_manager.c): the only line of such a
    # hang that names the GPU ("Failed to evict process queues" after it names none).
    ("gpu_hang", "preemption time", r"\bQueue preemption time ?out\b", "queue preemption timed out (HIQ)",
     {"own": True, "role": "hang"}),
    # The same from the queue manager's own preemption of one hardware queue (amdgpu_amdkfd_gfx_v*.c hqd_destroy).
    ("gpu_hang", "preemption failed", r"\bcp queue pipe \d+ queue \d+ preemption failed", "queue preemption failed",
     {"own": True, "role": "hang"}),
    ("gpu_hang", "unrecoverable", r"The cp might be in an unrecoverable state", "CP in unrecoverable state",
     {"own": True, "role": "hang"}),
    ("gpu_hang", "fail", r"Failed to evict (?:process )?queues?\b", "queue eviction failed", {"own": True, "role": "hang"}),
    ("gpu_hang", "fail", r"Failed to suspend process", "process suspend failed", {"own": True, "role": "hang"}),
    ("gpu_hang", "fail", r"failed to halt cp gfx", "CP halt failed", {"own": True, "role": "hang"}),
    ("gpu_hang", "fail", r"failed to unmap legacy queue", "queue unmap failed", {"own": True, "role": "hang"}),
    ("gpu_hang", "timed out", r"IB test timed out", "IB test timed out", {"own": True, "role": "hang"}),
    ("gpu_hang", "hang", r"HW Exception by GPU node-?\d+.*GPU Hang", "GPU hang reported to the application", _HANG),
    # After a hang: no reset will come, the GPU stays hung until a reboot (alone, at boot, it says nothing).
    ("gpu_hang", "recovery disabled", r"\bGPU recovery disabled\b", "GPU hang not recovered (GPU recovery disabled)",
     {"own": True, "role": "no_recovery", "after_hang": True, "gpu": DEGRADED,
      "fix": "The GPU hung and the driver will not reset it (GPU recovery is disabled, amdgpu.gpu_recovery=0): it "
             "stays hung until the rig reboots. Reboot before new work."}),
    # RAS. A zero count ("0 uncorrectable ...", "0 new ...", "... in total" lines of a block without errors) is no
    # error.
    ("ras_uncorrectable", "hardware error", r"(?<!\b0 )(?<!\b0 new )\buncorrectable hardware errors?\b",
     "uncorrectable hardware error", _OWN_DEGRADES),
    # Kernels 5.5-5.9 (amdgpu_ras.c, amdgpu_umc.c, nbio_v7_4.c before "hardware" was added): "%ld uncorrectable
    # errors detected in %s block"; nbio's DRM_INFO form ("[drm] ...") names no driver.
    ("ras_uncorrectable", "errors detected in", r"(?<!\b0 )\buncorrectable errors detected in \S+ block",
     "uncorrectable hardware error", _DEGRADES),
    # Deferred errors: uncorrectable data the hardware marked poisoned instead of halting on it.
    ("ras_uncorrectable", "hardware error", r"(?<!\b0 )(?<!\b0 new )\bdeferred hardware errors?\b",
     "deferred (uncorrectable) hardware error", _OWN_DEGRADES),
    ("ras_uncorrectable", "hardware error", r"\[Hardware Error\]:?\s*Accelerator Check Architecture events logged",
     "ACA hardware error logged", _OWN_DEGRADES),
    ("ras_uncorrectable", "poison", r"\bpoison", "RAS poison", _OWN_DEGRADES),
    # The GPU retired more bad pages than the RAS threshold allows: AMD's RMA criterion (amdgpu_ras_eeprom.c,
    # "RAS records:%d exceed threshold:%d[, GPU will not be initialized. Replace this GPU ...]"; older
    # kernels "Saved bad pages %d reaches threshold value %d").
    ("memory_remap_failed", "threshold", r"\b(?:RAS records:\s*\d+ exceed threshold|Saved bad pages \d+ reaches threshold)",
     "retired memory pages over the RAS threshold (replace the GPU)",
     {"own": True, "gpu": DEGRADED,
      "fix": "The GPU has retired more bad memory pages than its RAS threshold allows (AMD's replacement criterion): "
             "take it out of service, check 'amd-smi bad-pages', and replace it."}),
    ("ras_correctable", "hardware error", r"(?<!\b0 )(?<!\b0 new )\bcorrectable hardware errors? detected",
     "correctable hardware errors", {"own": True}),
    ("ras_correctable", "errors detected in", r"(?<!\b0 )\bcorrectable errors detected in \S+ block", "correctable hardware errors",
     {}),
    ("ras_correctable", "count", r"\bce[ _]count\b(?![:=\s]*0\b)", "correctable error count", {"own": True}),
    # Job and queue hangs the driver may recover from (soft unless nothing recovers them). A timeout the driver
    # "soft recovered" (amdgpu_job.c: it killed the hung waves, no reset follows) is over: no hang under way.
    ("ring_timeout", "soft recovered", r"\bring \S+ timeout, but soft recovered", "ring timeout, soft-recovered (no reset)",
     {"own": True}),
    ("ring_timeout", "timeout", r"\b(?P<hung>ring \S+ timeout)\b", "ring timeout", {"own": True, "role": "hang"}),
    ("ring_timeout", "timed out", r"Waiting for fences timed out", "fence wait timed out", {"own": True, "role": "hang"}),
    # Resets: in progress, and how they ended.
    ("gpu_reset", "reset", r"GPU reset begin", "GPU reset", {"own": True, "role": "reset"}),
    ("gpu_reset", "reset", r"GPU reset succeeded, trying to resume", "GPU reset", {"own": True, "role": "resumed"}),
    ("gpu_reset", "reset", r"GPU reset\(\d+\) succeeded", "GPU reset", {"own": True, "role": "recovered"}),
    ("gpu_reset", "reset", r"\bStarting \S+ ring reset", "ring reset", {"own": True, "role": "reset"}),
    ("gpu_reset", "reset", r"\bRing \S+ reset (?:succeeded|success)\b", "ring reset", {"own": True, "role": "recovered"}),
    ("gpu_reset", "reset", r"device wedged, but recovered through reset", "GPU wedged, recovered by reset",
     {"own": True, "role": "recovered"}),
    # Printed while a reset resumes the GPU (after "trying to resume"): part of that reset, never a new one.
    ("gpu_reset", "reset", r"VRAM is lost due to GPU reset", "VRAM lost in a GPU reset", {"role": "resume_step"}),
    ("gpu_reset", "reset", r"soft reset failed, will fallback to full reset", "soft reset failed, full reset",
     {"own": True, "role": "reset"}),
    # Printed at every boot and resume on APUs (MODE2) and some dGPUs (MODE1): a finding only within a recovery.
    ("gpu_reset", "reset", r"\bmode[12] reset\b", "GPU mode reset", {"own": True, "role": "reset", "after_hang": True}),
    # Page faults: header lines only; the detail lines that follow belong to the same fault.
    ("page_fault", "fault", r"\[(?:gfx|mm)hub\d*\][^(]{0,40}\bpage fault\b", "GPU page fault", {}),
    ("page_fault", "fault", r"\bGPU fault detected:", "GPU page fault", {"own": True}),
    ("page_fault", "fault", r"Memory access fault by GPU node-?\d+", "GPU memory access fault (application)", {}),
]

# Alarming-looking lines that healthy boots and resumes print. They never give a finding.
BENIGN = [
    r"SMU driver if version not matched",
    r"SMU is resuming",
    r"SMU is resumed successfully",
    r"\bta ucode is not available",           # RAP/RAS/HDCP/SECUREDISPLAY optional firmware
    r"\binit context\b",                      # reset while the driver initialises (AMD node-agent rule)
    r"poison setting is inconsistent",        # DF/UMC poison setting on consumer boards at boot
    r"\b(?:MEM|SRAM) ECC is not presented",
    r"\bras initialized successfully",
    r"\bamdgpu: debug: ",                      # what the amdgpu.debug_mask option turns on, printed at load
]
