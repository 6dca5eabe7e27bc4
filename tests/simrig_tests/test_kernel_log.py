"""Kernel log lines carry dmesg stamps that map back to the intended wall-clock time."""

from __future__ import annotations

import re
import time

from simrig import boot_epoch, fixtures, kernel, line_epoch


def lines_of(rig):
    with open(rig.kernel_log) as handle:
        return handle.read().splitlines()


def test_format_is_dmesgs():
    assert kernel.format_line(1234.5678901, "x") == "[ 1234.567890] x"
    assert kernel.format_line(3.0, "y") == "[    3.000000] y"
    assert kernel.line_seconds("[ 1234.567890] x") == 1234.56789


def test_healthy_baseline_at_boot(rig):
    log = lines_of(rig)
    assert all(re.match(r"^\[\s*\d+\.\d{6}\] ", l) for l in log)
    for gpu in rig.gpus:
        assert any("[drm] Initialized amdgpu 3.57.0 20150101 for %s on minor %d" % (gpu.bdf, gpu.card) in l for l in log)
        assert any("amdgpu %s: amdgpu: SMU is initialized successfully!" % gpu.bdf in l for l in log)
    assert all(line_epoch(l) < time.time() - 1 for l in log)
    assert not any("0xFFFFFFFF" in l or "hang" in l for l in log)


def test_new_lines_map_to_now_within_a_second(rig):
    before = time.time()
    added = rig.smu_failure(2)
    after = time.time()
    bdf = rig.gpu(2).bdf
    assert any("SMU: response:0xFFFFFFFF" in l and bdf in l for l in added)
    for line in added:
        assert before - 1 <= line_epoch(line) <= after + 1 + 1  # block spans at most 1 s
    assert added[-1] in lines_of(rig)


def test_age_places_lines_in_the_past(rig):
    age = min(600.0, kernel.uptime() / 2)
    target = time.time() - age
    old = rig.smu_failure(0, age_s=age)
    assert abs(line_epoch(old[0]) - target) < 1.0
    rig.kernel_lines(["amdgpu {bdf}: amdgpu: GPU reset begin!"], gpu=1)
    log = lines_of(rig)
    stamps = [kernel.line_seconds(l) for l in log]
    assert stamps == sorted(stamps), "the log stays in stamp order"
    assert log[-1].endswith("amdgpu %s: amdgpu: GPU reset begin!" % rig.gpu(1).bdf)


def test_before_boot_is_clamped_after_boot(rig):
    lines = rig.kernel_lines(["amdgpu {bdf}: amdgpu: ancient"], gpu=0, age_s=kernel.uptime() + 3600)
    assert kernel.line_seconds(lines[0]) == 1.0


def test_recording_lines_are_real_and_readdressed(rig):
    bdf = rig.gpu(3).bdf
    added = rig.smu_failure(3, fixture="rocm5.7_2x7900xtx")
    recorded = [m for _stamp, m in fixtures.dmesg_messages("rocm5.7_2x7900xtx_pagefault_mes_gpureset_smu_0xffffffff_ROCm-2494.txt")
                if "0000:03:00.0" in m]
    assert [l.split("] ", 1)[1] for l in added] == [m.replace("0000:03:00.0", bdf) for m in recorded]
    assert not any("0000:83:00.0" in l for l in added), "the other GPU of the recording is left out"


def test_counts_table_gets_a_device_prefix(rig):
    added = rig.smu_failure(0, fixture="mi300x")
    bdf = rig.gpu(0).bdf
    assert "amdgpu %s: amdgpu: SMU: response:0xFFFFFFFF for index:9 param:0x00000000 message:GetMetricsTable?" % bdf \
        in [l.split("] ", 1)[1] for l in added]


def test_boot_epoch_is_consistent():
    assert abs(boot_epoch() - (time.time() - kernel.uptime())) < 0.5
