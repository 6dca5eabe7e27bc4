"""The gpuops.preflight.watcher_config inventory plugin through the real ansible-inventory and a real run."""

from __future__ import annotations

import json
import os
import subprocess

import gpuops_preflight as gp
from bridge.helpers import BIN, REPO, run_options, watcher_config

NODES = {"192.168.3.120": {"name": "rig-6600", "gpus": 12, "excluded_gpus": [10], "reason": "SMU 0xFFFFFFFF errors",
                           "user": "watcher"},
         "192.168.3.121": {"name": "rig-6600b", "gpus": "12", "port": 2222, "gpu_watchlist": ["0000:22:00.0"]}}


def ansible_inventory(source, **env):
    """ansible-inventory --list from the repository root (its ansible.cfg enables the plugin)."""
    done = subprocess.run([os.path.join(BIN, "ansible-inventory"), "-i", str(source), "--list"], cwd=REPO,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1", **env), capture_output=True, text=True,
                          timeout=120, check=False)
    return done


def plain(value):
    """ansible-inventory marks text from an inventory plugin as unsafe: {"__ansible_unsafe": "..."}."""
    if isinstance(value, dict):
        return value["__ansible_unsafe"] if set(value) == {"__ansible_unsafe"} else {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def test_distributed_config_json_and_watcher_yml_give_the_same_inventory(tmp_path):
    path = watcher_config(tmp_path / "distributed_config.json", json.loads(json.dumps(NODES)),
                          preflight_steps={"3": {"ramdisk": ["train_history.json"], "inputs": []}}, other_key=1)
    (tmp_path / "rigs.watcher.yml").write_text("plugin: gpuops.preflight.watcher_config\npath: distributed_config.json\n")
    listed = []
    for source in (path, tmp_path / "rigs.watcher.yml"):
        done = ansible_inventory(source)
        assert done.returncode == 0, done.stderr
        listed.append(plain(json.loads(done.stdout)))
    assert listed[0] == listed[1]
    inventory = listed[0]
    assert inventory["rigs"]["hosts"] == ["rig-6600", "rig-6600b"]
    a, b = inventory["_meta"]["hostvars"]["rig-6600"], inventory["_meta"]["hostvars"]["rig-6600b"]
    assert a["ansible_host"] == "192.168.3.120" and a["ansible_user"] == "watcher" and "ansible_port" not in a
    assert a["expected_gpu_count"] == 12 and a["excluded_gpus"] == [{"gpu": 10, "reason": "SMU 0xFFFFFFFF errors"}]
    assert b["ansible_port"] == 2222 and b["expected_gpu_count"] == 12 and b["gpu_watchlist"] == ["0000:22:00.0"]
    assert b["excluded_gpus"] == [] and "ansible_user" not in b
    assert a["preflight_steps"] == {"3": {"ramdisk": ["train_history.json"], "inputs": []}}


def test_malformed_config_names_the_field_without_a_traceback(tmp_path):
    nodes = {"192.168.3.120": {"name": "rig-6600", "gpus": "twelve", "excluded_gpus": [10, "ten"]}}
    watcher_config(tmp_path / "distributed_config.json", nodes)
    (tmp_path / "rigs.watcher.yml").write_text("plugin: gpuops.preflight.watcher_config\npath: distributed_config.json\n")
    done = ansible_inventory(tmp_path / "rigs.watcher.yml", ANSIBLE_INVENTORY_UNPARSED_FAILED="1")
    assert done.returncode != 0
    assert 'nodes.192.168.3.120.gpus must be a whole number, got "twelve"' in done.stderr
    assert 'nodes.192.168.3.120.excluded_gpus[1] must be a GPU index' in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_preflight_from_watchers_config(scenario, tmp_path):
    sc = scenario("healthy")
    rig = sc["rig-6600"]
    config = watcher_config(tmp_path / "distributed_config.json",
                            {"127.0.0.1": {"name": "rig-6600", "gpus": 12, "excluded_gpus": [10],
                                           "reason": "SMU 0xFFFFFFFF errors"}}, rig=rig)
    report = gp.run_preflight(sc.step, inventory=config, **run_options(tmp_path))
    assert report.status == "passed", report.reason()
    assert report.usable_gpus == {"rig-6600": [i for i in range(12) if i != 10]}
    assert report.hosts["rig-6600"]["excluded_gpus"] == [10] and report.hosts["rig-6600"]["address"] == "127.0.0.1"


def test_preflight_on_a_malformed_config_could_not_run_and_says_why(tmp_path):
    config = watcher_config(tmp_path / "distributed_config.json", {"192.168.3.120": {"name": "rig-6600", "gpus": -1}})
    report = gp.run_preflight(3, inventory=config, **run_options(tmp_path))
    assert report.status == "error" and report.blocked_by == "preflight_error"
    assert 'nodes.192.168.3.120.gpus must be a whole number, got -1' in report.error
