"""Inventories Ansible can read, unreachable hosts, the scenario catalogue and the CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import yaml

from simrig import Rig, build_cluster, build_scenario, scenario_names, unreachable_host, write_inventory

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_INVENTORY = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")


def test_host_vars_point_at_the_rig(rig):
    hv = rig.host_vars()
    assert hv["preflight_rocm_smi"] == os.path.join(rig.path, "bin", "rocm-smi") and os.access(hv["preflight_rocm_smi"], os.X_OK)
    assert hv["preflight_sysfs_root"] == os.path.join(rig.path, "sys")
    assert hv["preflight_kernel_log"] == os.path.join(rig.path, "kernel.log")
    assert hv["preflight_ramdisk_root"] == rig.ramdisk_root and os.path.isdir(rig.ramdisk_root)
    assert "preflight_inputs_root" not in hv
    assert hv["expected_gpu_count"] == 4 and hv["excluded_gpus"] == [] and hv["gpu_watchlist"] == []
    assert hv["ansible_connection"] == "local" and hv["ansible_python_interpreter"] == sys.executable
    assert rig.host_vars(ansible_connection="ssh", python="/usr/bin/python3")["ansible_python_interpreter"] == "/usr/bin/python3"


def test_unreachable_host_is_a_closed_loopback_port():
    hv = unreachable_host("gone")
    assert hv["ansible_host"] == "127.0.0.1" and hv["ansible_connection"] == "ssh"
    with socket.socket() as sock:
        sock.settimeout(1)
        assert sock.connect_ex(("127.0.0.1", hv["ansible_port"])) != 0
    assert "ConnectTimeout=" in hv["ansible_ssh_common_args"]


@pytest.mark.skipif(not os.path.exists(ANSIBLE_INVENTORY), reason="ansible-inventory not installed")
def test_ansible_inventory_reads_the_written_inventory(work):
    cluster = build_cluster(str(work), {"rig-6600": {"gpus": 2}, "rig-6600b": {"gpus": 2, "excluded_gpus": [1]}},
                            unreachable=["rig-gone"])
    path = cluster.write_inventory(extra_group_vars={"preflight_summary_dir": str(work / "out")})
    out = subprocess.run([ANSIBLE_INVENTORY, "-i", path, "--list"], capture_output=True, text=True, timeout=60,
                         cwd=str(work), env=dict(os.environ, ANSIBLE_NOCOLOR="1"), check=False)
    assert out.returncode == 0, out.stderr
    inv = json.loads(out.stdout)
    assert sorted(inv["rigs"]["hosts"]) == ["rig-6600", "rig-6600b", "rig-gone"]
    hostvars = inv["_meta"]["hostvars"]
    assert hostvars["rig-6600b"]["excluded_gpus"] == [1]
    assert hostvars["rig-6600"]["preflight_rocm_smi"] == cluster["rig-6600"].rocm_smi
    assert hostvars["rig-gone"]["ansible_connection"] == "ssh"
    steps = {int(k): v for k, v in hostvars["rig-6600"]["preflight_steps"].items()}
    assert steps[3] == {"ramdisk": ["train_history.json", "holdout_history.json"], "inputs": []}
    assert steps[1]["inputs"] == [str(work / "inputs" / "train.parquet"), str(work / "inputs" / "holdout.parquet")]
    assert hostvars["rig-6600"]["preflight_summary_dir"] == str(work / "out")


def test_write_inventory_accepts_rigs_and_plain_hosts(work, rig):
    path = write_inventory(str(work / "inv.yml"), [rig], extra_hosts={"x": {"ansible_host": "127.0.0.1"}})
    with open(path) as handle:
        doc = yaml.safe_load(handle)
    hosts = doc["all"]["children"]["rigs"]["hosts"]
    assert set(hosts) == {"rig-t", "x"} and hosts["rig-t"] == rig.host_vars()
    assert doc["all"]["children"]["rigs"]["vars"]["preflight_steps"][3]["inputs"] == []


@pytest.mark.parametrize("name", scenario_names())
def test_every_scenario_builds(work, name):
    result = build_scenario(name, str(work))
    assert os.path.isfile(result.inventory)
    with open(result.inventory) as handle:
        doc = yaml.safe_load(handle)
    assert set(doc["all"]["children"]["rigs"]["hosts"]) == set(result.cluster.host_vars())
    json.dumps(result.as_dict())


def test_demo_scenario(work):
    demo = build_scenario("demo", str(work))
    a, b = demo["rig-6600"], demo["rig-6600b"]
    assert len(a.gpus) == len(b.gpus) == 12
    assert b.host_vars()["excluded_gpus"] == [10] and b.host_vars()["gpu_watchlist"] == [7]
    with open(b.kernel_log) as handle:
        log = handle.read()
    assert "amdgpu %s: amdgpu: SMU: response:0xFFFFFFFF" % b.gpu(10).bdf in log
    with open(a.kernel_log) as handle:
        assert "0xFFFFFFFF" not in handle.read()


def test_fault_scenarios_do_what_they_say(work):
    lost = build_scenario("lost_gpu", str(work / "l"))["rig-6600"]
    assert lost.gpu(3).lost and "card3" not in lost.rocm_smi_document()
    count = build_scenario("count_mismatch", str(work / "c"))["rig-6600"]
    assert len(count.gpus) == 11 and count.host_vars()["expected_gpu_count"] == 12
    missing = build_scenario("missing_ramdisk_file", str(work / "m"))["rig-6600"]
    assert not os.path.exists(missing.ramdisk_path(3, "holdout_history.json"))
    hang = build_scenario("hanging_tool", str(work / "h"))["rig-6600"]
    with open(os.path.join(hang.tool_dir(), "mode")) as handle:
        assert handle.read() == "hang\n"


def test_cli_build_list_fault_show(work):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "tests"))
    out = subprocess.run([sys.executable, "-m", "simrig", "build", "--scenario", "demo", "--out", str(work)],
                         capture_output=True, text=True, env=env, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(work / "inventory.yml") and os.path.isfile(out.stdout.strip())
    listing = subprocess.run([sys.executable, "-m", "simrig", "list"], capture_output=True, text=True, env=env, check=False)
    for name in ("demo", "healthy", "missing_ramdisk_file", "lost_gpu", "smu_failure", "smu_failure_on_excluded",
                 "count_mismatch", "hanging_tool", "unreachable_host"):
        assert name in listing.stdout
    rig_dir = str(work / "rig-6600")
    fault = subprocess.run([sys.executable, "-m", "simrig", "fault", rig_dir, "lose_gpu", "5"],
                           capture_output=True, text=True, env=env, check=False)
    assert fault.returncode == 0, fault.stderr
    assert Rig.load(rig_dir).gpu(5).lost
    subprocess.run([sys.executable, "-m", "simrig", "fault", rig_dir, "set_tool_mode", "slow", "delay=0.1"],
                   check=True, env=env, capture_output=True)
    with open(os.path.join(rig_dir, "rocm-smi.d", "delay")) as handle:
        assert handle.read() == "0.1\n"
    show = json.loads(subprocess.run([sys.executable, "-m", "simrig", "show", rig_dir], capture_output=True,
                                     text=True, env=env, check=True).stdout)
    assert [g["index"] for g in show["gpus"]] == list(range(12)) and show["gpus"][5]["lost"]


def test_destroy_and_orphaned_shm_ramdisks(work):
    import shutil as _shutil
    import tempfile
    from simrig import collect_orphans
    base = tempfile.mkdtemp(prefix="simrig-orphan-")
    try:
        rig = Rig.build(base, "o", gpus=1, ramdisk="shm")
        owner = os.path.join(rig.ramdisk_root, ".simrig-owner")
        assert open(owner).read().strip() == rig.path
        assert rig.ramdisk_root not in collect_orphans()
        _shutil.rmtree(rig.path)  # removed without destroy(): its ramdisk is now an orphan
        assert rig.ramdisk_root in collect_orphans() and not os.path.exists(rig.ramdisk_root)
        again = Rig.build(base, "p", gpus=1, ramdisk="shm")
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "tests"))
        out = subprocess.run([sys.executable, "-m", "simrig", "destroy", base], capture_output=True, text=True, env=env, check=False)
        assert out.returncode == 0, out.stderr
        assert not os.path.exists(again.ramdisk_root) and not os.path.exists(base)
    finally:
        _shutil.rmtree(base, ignore_errors=True)
