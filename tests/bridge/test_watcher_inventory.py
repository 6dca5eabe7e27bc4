"""The gpuops.preflight.watcher_config inventory plugin through the real ansible-inventory and a real run."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

import gpuops_preflight as gp
from bridge.helpers import BIN, REPO, run_dirs, run_options, watcher_config
from gpuops_preflight import environment

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


def json_inventory(path, sc):
    """The scenario's YAML inventory written as JSON (YAML's inventory format reads JSON too)."""
    with open(sc.inventory, encoding="utf-8") as handle:
        doc = yaml.safe_load(handle)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, indent=1)
    return str(path)


def test_preflight_from_an_ansible_inventory_written_as_json(scenario, tmp_path):
    # A .json file that is not distributed_config.json is an ordinary inventory, as ansible-playbook reads it.
    sc = scenario("healthy")
    report = gp.run_preflight(sc.step, inventory=json_inventory(tmp_path / "hosts.json", sc), **run_options(tmp_path))
    assert report.status == "passed", report.reason()
    assert list(report.hosts) == ["rig-6600"] and report.usable_gpus["rig-6600"] == list(range(12))


NOT_AN_INVENTORY = [
    ('{"plugin": "ansible.builtin.constructed", "strict": true}',
     "it is an inventory plugin configuration (plugin: 'ansible.builtin.constructed'): Ansible reads those only "
     "from .yml or .yaml files"),
    ('{"nodes": {"192.168.3.120": {"name": "rig-6600", "gpus": 12}}}',
     "it looks like WATCHER's config (a \"nodes\" object): name it distributed_config.json"),
    ('[{"host": "rig-6600"}]', "it holds a JSON array, not an object of groups"),
    ('{}', "it holds an empty object: no group, no host"),
    ('{"all": {"hosts": {"rig-6600": null}, "host": "x"}}', "group 'all' has the key 'host'"),
    ('{"all": {"hosts": ', "it is not valid JSON: Expecting"),
]


@pytest.mark.parametrize("content, why", NOT_AN_INVENTORY)
def test_a_json_file_that_is_neither_is_an_error_naming_it_before_anything_runs(tmp_path, content, why):
    path = tmp_path / "cluster.json"
    path.write_text(content)
    report = gp.run_preflight(3, inventory=str(path), **run_options(tmp_path))
    assert report.status == "error" and report.blocked_by == "preflight_error"
    assert report.error.startswith("inventory %s: a .json inventory must be an Ansible inventory in the YAML format "
                                   "written as JSON" % path), report.error
    assert why in report.error and "ini" not in report.error
    assert run_dirs(tmp_path) == []  # refused before the run's folder was made


def test_the_cli_says_which_json_file_is_neither_without_a_traceback(tmp_path):
    path = tmp_path / "rigs.json"
    path.write_text('{"nodes": {"192.168.3.120": {"name": "rig-6600"}}}')
    for family in (["preflight", "--step", "3"], ["cleanup", "--step", "3"], ["training-health"]):
        done = subprocess.run([os.path.join(BIN, "gpuops-preflight")] + family + ["-i", str(path), "--artifacts-dir",
                                                                                  str(tmp_path / "runs")],
                              cwd=str(tmp_path), capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "inventory %s: a .json inventory must be" % path in done.stdout + done.stderr, family
        assert "it looks like WATCHER's config" in done.stdout + done.stderr
        assert "Traceback" not in done.stdout + done.stderr


def test_which_plugins_read_a_runs_json_sources(tmp_path):
    """environment.inventory_plugins is the one decision: WATCHER's configs alone get only watcher_config; an
    Ansible inventory in a .json file (given, or inside a given folder) gets the yaml plugin's .json back."""
    watcher = watcher_config(tmp_path / "distributed_config.json", json.loads(json.dumps(NODES)))
    (tmp_path / "rigs.watcher.yml").write_text("plugin: gpuops.preflight.watcher_config\npath: distributed_config.json\n")
    folder = tmp_path / "inv"
    (folder / "group_vars").mkdir(parents=True)
    (folder / "group_vars" / "all.json").write_text('{"x": 1}')  # a vars file, not an inventory source
    (folder / ".hidden.json").write_text("[]")
    (folder / "hosts.yml").write_text("all: {hosts: {a: null}}\n")
    assert environment.inventory_plugins(watcher) == {"ANSIBLE_INVENTORY_ENABLED": "gpuops.preflight.watcher_config"}
    assert environment.inventory_plugins([watcher, str(tmp_path / "rigs.watcher.yml")]) == {
        "ANSIBLE_INVENTORY_ENABLED": "gpuops.preflight.watcher_config"}
    assert environment.inventory_plugins(str(folder)) == {}
    assert environment.inventory_plugins({"all": {"hosts": {"a": None}}}) == {}  # written as a .yml of the run
    (folder / "more.json").write_text('{"all": {"children": {"rigs": {"hosts": {"b": {"ansible_host": "10.0.0.2"}}}}}}')
    assert environment.inventory_plugins(str(folder)) == {"ANSIBLE_INVENTORY_PLUGIN_EXTS": ".yaml,.yml,.json"}
    assert environment.inventory_plugins(str(folder / "more.json")) == {"ANSIBLE_INVENTORY_PLUGIN_EXTS": ".yaml,.yml,.json"}
    with pytest.raises(ValueError, match="is WATCHER's config: the two cannot be read in one run"):
        environment.inventory_plugins([str(folder / "more.json"), watcher])
    (folder / "bad.json").write_text('{"plugin": "x"}')
    with pytest.raises(ValueError, match="inventory %s: a .json inventory must be" % (folder / "bad.json")):
        environment.inventory_plugins(str(folder))


def test_ansible_inventory_lists_a_json_inventory_with_the_runs_environment(tmp_path):
    path = tmp_path / "hosts.json"
    path.write_text('{"all": {"children": {"rigs": {"hosts": {"rig-a": {"ansible_host": "10.0.0.1"}}}}}}')
    done = ansible_inventory(path, **environment.inventory_plugins(str(path)))
    assert done.returncode == 0, done.stderr
    listed = plain(json.loads(done.stdout))
    assert listed["rigs"]["hosts"] == ["rig-a"] and listed["_meta"]["hostvars"]["rig-a"]["ansible_host"] == "10.0.0.1"
