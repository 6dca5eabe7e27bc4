"""The rocm-smi / amd-smi stand-ins replay recordings faithfully and fail the way real tools do."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import time

import pytest

from simrig import fixtures


def call(argv, timeout=10):
    return subprocess.run(argv, capture_output=True, timeout=timeout, check=False)


def test_replay_is_byte_for_byte_and_one_json_line(rig):
    out = call([rig.rocm_smi, "--showuse", "--showtemp", "--showbus", "--json"])
    with open(os.path.join(rig.tool_dir(), "stdout"), "rb") as handle:
        assert out.stdout == handle.read()
    assert out.returncode == 0 and out.stderr == b""
    lines = out.stdout.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("{")
    assert json.loads(lines[0]) == rig.rocm_smi_document()
    assert out.stdout.decode() == json.dumps(rig.rocm_smi_document()) + "\n"  # no indent, as rocm-smi


def test_flags_are_ignored_the_recording_answers(rig):
    a = call([rig.rocm_smi, "-a", "--json"]).stdout
    b = call([rig.rocm_smi, "--showmeminfo", "vram", "--json"]).stdout
    assert a == b


def test_rc_and_stderr_are_honoured(rig):
    rig.set_tool_output(stderr="ERROR: 2 GPU[0]: % memory use: RSMI_STATUS_NOT_SUPPORTED\n", rc=3)
    out = call([rig.rocm_smi, "--json"])
    assert out.returncode == 3
    assert out.stderr == b"ERROR: 2 GPU[0]: % memory use: RSMI_STATUS_NOT_SUPPORTED\n"
    assert json.loads(out.stdout) == rig.rocm_smi_document()
    rig.reset_tool()
    assert call([rig.rocm_smi, "--json"]).returncode == 0


def test_calls_log_records_each_invocation(rig):
    rig.clear_calls()
    call([rig.rocm_smi, "--showuse", "--json"])
    call([rig.rocm_smi, "--resetclocks"])
    assert rig.tool_calls() == ["--showuse --json", "--resetclocks"]


def test_hang_ignores_sigterm_and_only_dies_with_sigkill_of_its_group(rig, spawn):
    rig.set_tool_mode("hang")
    proc = spawn([rig.rocm_smi, "--json"])
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGTERM)
    time.sleep(0.3)
    assert proc.poll() is None, "SIGTERM must not end a hung tool"
    # Killing only the shell leaves its child sleep holding stdout: a reader sees no EOF.
    proc.kill()
    proc.wait(timeout=5)
    readable = select.select([proc.stdout], [], [], 0.3)[0]
    assert not readable, "stdout closed although the child still runs"
    os.killpg(proc.pid, signal.SIGKILL)
    readable = select.select([proc.stdout], [], [], 5)[0]
    assert readable and proc.stdout.read() == b""


def test_hang_under_coreutils_timeout_like_the_product(rig):
    rig.set_tool_mode("hang")
    timeout = shutil.which("timeout")
    # (subprocess's own timeout=10 fails the test if the hung stand-in outlives coreutils' kill)
    out = subprocess.run([timeout, "-k", "0.5", "0.3", rig.rocm_smi, "--json"], capture_output=True, timeout=10, check=False)
    # timeout SIGKILLs its whole group, itself included: a parent that is not a shell sees -9,
    # a shell sees 137. Either way: killed, nothing on stdout.
    assert out.returncode in (-9, 137) and out.stdout == b""


def test_slow_sleeps_then_replays(rig):
    rig.set_tool_mode("slow", delay=0.4)
    start = time.monotonic()
    out = call([rig.rocm_smi, "--json"])
    assert time.monotonic() - start >= 0.4
    assert json.loads(out.stdout) == rig.rocm_smi_document()


def test_fail_prints_the_recorded_mutex_failure(rig):
    rig.set_tool_mode("fail", rc=8)
    out = call([rig.rocm_smi, "--json"])
    assert out.returncode == 8 and out.stdout == b""
    assert b"Failed to initialize RSMI device mutex after 5 seconds." in out.stderr
    recorded = "\n".join(fixtures.body_lines("rocm-smi", fixtures.MUTEX_FAILURE))
    assert out.stderr.decode().strip() == recorded.strip()


def test_garbage_is_not_json_but_has_a_brace_line(rig):
    rig.set_tool_mode("garbage")
    out = call([rig.rocm_smi, "--json"])
    assert out.returncode == 0
    text = out.stdout.decode()
    with pytest.raises(ValueError):
        json.loads(text)
    brace = [l for l in text.splitlines() if l.startswith("{")]
    assert brace
    for line in brace:
        with pytest.raises(ValueError):
            json.loads(line)


def test_empty_is_rocm_smis_no_json_data(rig):
    rig.set_tool_mode("empty")
    out = call([rig.rocm_smi, "--json"])
    assert out.returncode == 0 and out.stdout == b""
    assert out.stderr == b"WARNING: No JSON data to report\n"


def test_every_gpu_gone_gives_no_json_data(rig):
    for gpu in rig.gpus:
        rig.vanish_from_tool(gpu.index)
    out = call([rig.rocm_smi, "--json"])
    assert out.returncode == 0 and out.stdout == b""
    assert b"WARNING: No JSON data to report" in out.stderr


def test_resetclocks_writes_auto_back(rig):
    for gpu in rig.gpus:
        rig.set_perf_level(gpu.index, "manual")
    out = call([rig.rocm_smi, "--resetclocks"])
    assert out.returncode == 0
    assert out.stdout.decode().count("Successfully reset clocks") == len(rig.gpus)
    assert all(rig.perf_level(g.index) == "auto" for g in rig.gpus)


def test_resetclocks_in_any_position(rig):
    rig.set_perf_level(0, "high")
    call([rig.rocm_smi, "-d", "0", "--resetclocks", "--json"])
    assert rig.perf_level(0) == "auto"


def test_resetclocks_broken_claims_success_but_writes_nothing(rig):
    rig.set_perf_level(1, "manual")
    rig.break_resetclocks()
    out = call([rig.rocm_smi, "--resetclocks"])
    assert b"Successfully reset clocks" in out.stdout and out.returncode == 0
    assert rig.perf_level(1) == "manual"
    rig.break_resetclocks(False)
    call([rig.rocm_smi, "--resetclocks"])
    assert rig.perf_level(1) == "auto"


def test_resetclocks_skips_a_lost_gpu(rig):
    rig.set_perf_level(2, "manual")
    rig.lose_gpu(2)
    out = call([rig.rocm_smi, "--resetclocks"]).stdout.decode()
    assert "GPU[2]\t\t: Unable to reset clocks" in out
    assert rig.perf_level(2) == "manual"


def test_standin_finds_its_rig_through_symlinks_and_after_a_move(rig, work):
    link = work / "onpath" / "rocm-smi"
    link.parent.mkdir()
    os.symlink(rig.rocm_smi, link)
    expected = call([rig.rocm_smi, "--json"]).stdout
    assert call([str(link), "--json"]).stdout == expected
    moved = work / "moved"
    shutil.move(rig.path, moved)
    assert call([str(moved / "bin" / "rocm-smi"), "--json"]).stdout == expected
    with open(moved / "rocm-smi.d" / "calls.log") as handle:
        assert len(handle.read().splitlines()) == 3


def test_standin_is_posix_sh_and_fast(rig):
    with open(rig.rocm_smi) as handle:
        assert handle.readline() == "#!/bin/sh\n"
    dash = shutil.which("dash")
    if dash:
        assert subprocess.run([dash, "-n", rig.rocm_smi], check=False).returncode == 0
    start = time.monotonic()
    for _attempt in range(5):
        call([rig.rocm_smi, "--json"])
    assert (time.monotonic() - start) / 5 < 0.5


@pytest.mark.parametrize("form", ["list", "wrapped"])
def test_amd_smi_metric_and_static(work, form):
    from simrig import Rig
    rig = Rig.build(str(work), "amd", gpus=3, amd_smi=form)
    metric = json.loads(call([rig.amd_smi, "metric", "--json"]).stdout)
    items = metric["gpu_data"] if form == "wrapped" else metric
    assert [i["gpu"] for i in items] == [0, 1, 2]
    recorded = fixtures.load_json("amd-smi", fixtures.DEFAULT_AMD_SMI_METRIC)[0]
    assert set(items[0]) == set(recorded)  # the recording's structure, replicated
    assert items[0]["temperature"]["edge"]["value"] == 45  # the rig's GPU (recorded 6700 XT edge)
    static = json.loads(call([rig.amd_smi, "static", "--json"]).stdout)
    static = static["gpu_data"] if form == "wrapped" else static
    assert [s["bus"]["bdf"] for s in static] == [g.bdf for g in rig.gpus]
    listing = json.loads(call([rig.amd_smi, "list", "--json"]).stdout)
    assert [(i["gpu"], i["bdf"]) for i in listing] == [(n, g.bdf) for n, g in enumerate(rig.gpus)]
    assert set(listing[0]) == set(fixtures.load_json("amd-smi", fixtures.AMD_SMI_LIST)[0])
    rig.lose_gpu(1)
    metric = json.loads(call([rig.amd_smi, "metric", "--json"]).stdout)
    items = metric["gpu_data"] if form == "wrapped" else metric
    assert [i["gpu"] for i in items] == [0, 1]  # amd-smi renumbers the GPUs it sees from 0
    listing = json.loads(call([rig.amd_smi, "list", "--json"]).stdout)
    assert [(i["gpu"], i["bdf"]) for i in listing] == [(0, rig.gpus[0].bdf), (1, rig.gpus[2].bdf)]
    rig.set_tool_mode("fail", tool="amd-smi", subcommand="list", rc=2)
    assert call([rig.amd_smi, "list", "--json"]).returncode == 2
    assert [i["gpu"] for i in json.loads(call([rig.amd_smi, "metric", "--json"]).stdout)[
        "gpu_data" if form == "wrapped" else slice(None)]] == [0, 1]
    rig.reset_tool("amd-smi")
    assert call([rig.amd_smi, "list", "--json"]).returncode == 0
    rig.set_tool_mode("empty", tool="amd-smi")
    assert call([rig.amd_smi, "metric", "--json"]).stdout == b""
