"""Simulated NVIDIA rigs: the nvidia-smi stand-in replays the recordings whatever the arguments, the
faults look as on real hosts, and the product (nvidia_gpu_facts, the probe, the clock reset) reads
them right, running the stand-ins for real under coreutils timeout."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from ansible.module_utils.testing import patch_module_args

from simrig import nvidia
from simrig.nvidia import NvidiaGpus, build_nvidia_rig
from simrig.rig import Rig

from ansible_collections.gpuops.preflight.plugins.module_utils import _clocks, _gpus, _nvidia_smi
from ansible_collections.gpuops.preflight.plugins.modules import nvidia_gpu_facts


def facts(capsys, side, **args):
    with patch_module_args(dict(side.facts_args(), **args)), pytest.raises(SystemExit) as exc:
        nvidia_gpu_facts.main()
    result = json.loads(capsys.readouterr().out)
    assert exc.value.code == 0, result
    return result


def by_bdf(result):
    return dict((g["bdf"], g) for g in result["ansible_facts"]["nvidia_gpus"])


@pytest.fixture
def nv8(work):
    rig, side = build_nvidia_rig(str(work), "nv8", gpus=8)
    return side


def test_eight_gpu_rig_reads_healthy(capsys, nv8):
    result = facts(capsys, nv8)
    gpus = result["ansible_facts"]["nvidia_gpus"]
    assert [(g["index"], g["bdf"], g["health"]) for g in gpus] == [
        (n, "0000:%02x:00.0" % (0x41 + 0x10 * n), "ok") for n in range(8)]
    assert set(g["model"] for g in gpus) == {"NVIDIA RTX A5000"}
    assert len(set(g["uuid"] for g in gpus)) == 8
    assert result["ansible_facts"]["nvidia_gpu_processes"] == []
    assert nv8.tool_calls() == ["-q -x"]


def test_stand_in_replays_every_recording_whatever_the_arguments(nv8):
    for name in nvidia.recordings():
        nv8.set_output(fixture=name)
        want = open(os.path.join(nvidia.NVIDIA_SMI_DIR, name), "rb").read()
        for argv in (["-q", "-x"], ["--query-gpu=name,memory.used", "--format=csv"], []):
            assert subprocess.run([nv8.nvidia_smi] + argv, capture_output=True, check=False).stdout == want


@pytest.mark.parametrize("name", nvidia.recordings())
def test_product_reads_each_recording_on_a_rig(capsys, work, name):
    _rig, side = build_nvidia_rig(str(work), "r", gpus=2, fixture=name)
    result = facts(capsys, side)
    expected = _nvidia_smi.parse_output(nvidia.recording(name))
    assert result["ansible_facts"]["nvidia_gpu_tool"]["outcome"] == expected["outcome"]
    if expected["format"] == "xml":  # the rig renders its own two GPUs from the recording's blocks
        assert [g["health"] for g in result["ansible_facts"]["nvidia_gpus"]] == ["ok", "ok"]


def test_lost_gpu_with_its_xid_and_handle_error(capsys, nv8):
    nv8.lose_gpu(3)
    out = subprocess.run([nv8.nvidia_smi, "-q", "-x"], capture_output=True, text=True, check=False)
    assert out.returncode == 15 and out.stderr == "Unable to determine the device handle for GPU 0000:71:00.0: Unknown Error\n"
    assert "<attached_gpus>7</attached_gpus>" in out.stdout
    with open(nv8.rig.kernel_log) as handle:
        assert "NVRM: Xid (PCI:0000:71:00): 79, GPU has fallen off the bus." in handle.read()
    gpus = by_bdf(facts(capsys, nv8, kernel_log=nv8.rig.kernel_log))
    lost = gpus["0000:71:00.0"]
    assert (lost["index"], lost["health"], lost["responding"]) == (3, "lost", False)
    assert "kernel_log" in lost["sources"] and "PCI config space reads all-ones: the GPU is lost from the bus" in lost["problems"]
    assert [g["health"] for b, g in sorted(gpus.items()) if b != "0000:71:00.0"] == ["ok"] * 7


@pytest.mark.parametrize("fault,text", [
    ("vanish_gpu", "nvidia-smi no longer reports it while it is still on the PCI bus"),
    ("answer_err", "the GPU stopped answering"),
    ("ecc_error", "1 uncorrectable ECC error(s) since the driver loaded"),
    ("remap_failure", "memory row remapping failed: the GPU has no spare rows left"),
])
def test_degraded_faults(capsys, nv8, fault, text):
    getattr(nv8, fault)(5)
    gpus = by_bdf(facts(capsys, nv8))
    sick = gpus["0000:91:00.0"]
    assert sick["health"] == "degraded" and any(text in p for p in sick["problems"]), sick["problems"]
    assert sum(1 for g in gpus.values() if g["health"] == "ok") == 7


def test_pending_remap_is_a_warning_on_a_usable_gpu(capsys, nv8):
    nv8.remap_pending(5)
    gpu = by_bdf(facts(capsys, nv8))["0000:91:00.0"]
    assert (gpu["health"], gpu["problems"]) == ("ok", [])
    assert gpu["warnings"] == ["memory row remapping is pending: reset the GPU (nvidia-smi -r) at the next chance to "
                               "apply it"]


def test_unbound_gpu_loses_its_index(capsys, nv8):
    nv8.unbind(0)
    gpus = facts(capsys, nv8)["ansible_facts"]["nvidia_gpus"]
    assert (gpus[-1]["bdf"], gpus[-1]["index"], gpus[-1]["health"]) == ("0000:41:00.0", None, "degraded")
    assert gpus[-1]["problems"] == ["no nvidia driver bound to it (driver: vfio-pci)"]
    assert [g["index"] for g in gpus[:-1]] == list(range(7)) and gpus[0]["bdf"] == "0000:51:00.0"


def test_processes_and_reload(capsys, nv8):
    nv8.add_process(2, 4242, "/opt/venv/bin/python3 train.py", mib=20000)
    again = NvidiaGpus(Rig.load(nv8.rig.path))  # another process reopens the rig
    assert again.gpu(2)["processes"] == [{"pid": 4242, "name": "/opt/venv/bin/python3 train.py", "mib": 20000}]
    result = facts(capsys, again)
    assert [(p["pid"], p["name"], p["index"], p["vram_bytes"]) for p in result["ansible_facts"]["nvidia_gpu_processes"]] == [
        (4242, "python3", 2, 20000 * 1048576)]
    assert by_bdf(result)["0000:61:00.0"]["vram_used_bytes"] == (20000 + 7) * 1048576


def test_driver_down_and_fail_mode_are_unknown(capsys, nv8):
    nv8.driver_down()
    result = facts(capsys, nv8)
    assert result["ansible_facts"]["nvidia_gpu_tool"]["outcome"] == "no_driver"
    assert set(g["health"] for g in result["ansible_facts"]["nvidia_gpus"]) == {"unknown"}
    nv8.reset_tool()
    nv8.set_mode("fail")
    assert facts(capsys, nv8)["ansible_facts"]["nvidia_gpu_tool"]["outcome"] == "no_driver"


def test_hung_nvidia_smi_is_killed_and_unknown(capsys, nv8):
    nv8.set_mode("hang")
    result = facts(capsys, nv8, timeout=1)
    tool = result["ansible_facts"]["nvidia_gpu_tool"]
    assert (tool["outcome"], tool["timed_out"]) == ("timeout", True)
    assert set(g["health"] for g in result["ansible_facts"]["nvidia_gpus"]) == {"unknown"}
    left = subprocess.run(["pgrep", "-f", nv8.tool_dir], capture_output=True, text=True, check=False).stdout
    assert left == ""


def test_clock_reset_verified_through_the_stand_in(nv8):
    nv8.lock_clocks(1)
    nv8.rmc_unsupported()

    class Module(object):
        def get_bin_path(self, name, required=False, opt_dirs=None):
            return "/usr/bin/timeout" if name == "timeout" else None

        def run_command(self, cmd, **kwargs):
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            return done.returncode, done.stdout, done.stderr

    out = _clocks.reset_clocks(Module(), vendor="nvidia", nvidia_smi=nv8.nvidia_smi, geteuid=lambda: 0)
    assert (out["changed"], out["needed"], out["problems"]) == (True, ["0000:51:00.0"], [])
    assert nv8.tool_calls()[-3:] == ["-rgc", "-rmc", "-q -x -d PERFORMANCE"]
    again = _clocks.reset_clocks(Module(), vendor="nvidia", nvidia_smi=nv8.nvidia_smi, geteuid=lambda: 0)
    assert again["changed"] is False  # idempotent
    nv8.lock_clocks(2)
    assert nv8.gpu(1)["locked"] is False  # the rig read the stand-in's reset back
    nv8.break_clock_reset()
    out = _clocks.reset_clocks(Module(), vendor="nvidia", nvidia_smi=nv8.nvidia_smi, geteuid=lambda: 0)
    assert out["problems"] == ["GPU 0000:61:00.0 still runs user-defined clocks after nvidia-smi -rgc/-rmc "
                               "(application clocks set with -ac need nvidia-smi -rac)"]


def test_mps_facts_from_the_rig(capsys, nv8):
    nv8.add_mps(servers=((7001, 1000), (7002, 1001)))
    mps = facts(capsys, nv8, mps=True)["ansible_facts"]["nvidia_mps"]
    assert (mps["control_daemon_running"], mps["control_daemon_pid"], mps["error"]) == (True, 6001, None)
    assert [(s["pid"], s["uid"]) for s in mps["servers"]] == [(7001, 1000), (7002, 1001)]
    assert mps["pipe_dir"]["control_pipe"] is True and mps["log_dir"]["writable"] is True
    nv8.add_mps(daemon=False)
    mps = facts(capsys, nv8, mps=True)["ansible_facts"]["nvidia_mps"]
    assert (mps["control_daemon_running"], mps["servers"], mps["pipe_dir"]["control_pipe"]) == (False, [], False)


def test_two_vendor_rig(work):
    rig, side = build_nvidia_rig(str(work), "mixed", gpus=2, amd_gpus=1)

    class Module(object):
        def get_bin_path(self, name, required=False, opt_dirs=None):
            return {"timeout": "/usr/bin/timeout", "rocm-smi": rig.rocm_smi, "nvidia-smi": side.nvidia_smi}.get(name)

        def run_command(self, cmd, **kwargs):
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            return done.returncode, done.stdout, done.stderr

    result = _gpus.probe(Module(), sysfs_root=rig.sys_root)
    assert [(g["vendor"], g["index"], g["bdf"], g["health"]) for g in result["gpus"]] == [
        ("amd", 0, "0000:03:00.0", "ok"), ("nvidia", 0, "0000:41:00.0", "ok"), ("nvidia", 1, "0000:51:00.0", "ok")]
    assert result["mixed_vendors"] is True
    assert rig.host_vars()["preflight_nvidia_smi"] == side.nvidia_smi and rig.host_vars()["expected_gpu_count"] == 3
