"""Unit tests of the watcher_config inventory plugin.

The plugin is controller code: importing it imports ``ansible._internal``, which flips
``ansible.module_utils._internal.is_controller`` for the whole process, and module tests collected
in the same process would then send their warnings to the display instead of their result. So the
plugin is imported inside the ``wc`` fixture, and the flag is put back after each test.
"""

from __future__ import annotations

import json

import pytest
import yaml

EXAMPLE = {"nodes": {"192.168.3.120": {"name": "rig-6600", "gpus": 12, "excluded_gpus": [10],
                                       "reason": "SMU 0xFFFFFFFF errors"}}}


@pytest.fixture
def wc():
    from ansible.module_utils import _internal

    before = _internal.is_controller
    from ansible_collections.gpuops.preflight.plugins.inventory import watcher_config

    yield watcher_config
    _internal.is_controller = before


@pytest.fixture
def plugin(wc):
    """The plugin, with option handling (the plugin loader's part) reduced to the config file's values.

    The real loader path (ansible-inventory with the repository's ansible.cfg) is tested in
    tests/bridge/test_watcher_inventory.py; installing Ansible's collection loader here would
    change how every other unit test imports the collection.
    """

    class Plugin(wc.InventoryModule):
        def __init__(self):
            super().__init__()
            self.values = {"group": "rigs"}

        def set_options(self, task_keys=None, var_options=None, direct=None):
            pass

        def _read_config_data(self, path):
            with open(path) as handle:
                self.values.update(yaml.safe_load(handle))

        def get_option(self, option, hostvars=None):
            return self.values.get(option)

    return Plugin()


def parse(plugin, path):
    from ansible.inventory.data import InventoryData
    from ansible.parsing.dataloader import DataLoader

    inventory = InventoryData()
    plugin.parse(inventory, DataLoader(), str(path))
    return inventory


def test_the_issue_example(wc):
    hosts, group_vars = wc.read_config(EXAMPLE)
    assert hosts == {"rig-6600": {"ansible_host": "192.168.3.120", "expected_gpu_count": 12,
                                  "excluded_gpus": [{"gpu": 10, "reason": "SMU 0xFFFFFFFF errors"}],
                                  "gpu_watchlist": []}}
    assert group_vars == {}


def test_every_optional_field(wc):
    hosts, group_vars = wc.read_config({
        "nodes": {
            "10.0.0.1": {"ssh_user": "watcher", "ssh_port": "2222", "gpus": "8",
                         "excluded_gpus": ["0000:22:00.0", {"gpu": 3, "reason": "fan"}, {"gpu": 4}],
                         "reason": "node-wide", "gpu_watchlist": [7, "0000:0B:00.0"],
                         "vars": {"ansible_python_interpreter": "/usr/bin/python3"}, "watcher_only": True},
        },
        "preflight_steps": {"3": {"ramdisk": ["a.json"], "inputs": []}},
        "vars": {"preflight_ramdisk_root": "/dev/shm/prng"},
        "scheduler": {"anything": "WATCHER keeps"},
    })
    assert hosts == {"10.0.0.1": {
        "ansible_host": "10.0.0.1", "ansible_user": "watcher", "ansible_port": 2222, "expected_gpu_count": 8,
        "excluded_gpus": [{"gpu": "0000:22:00.0", "reason": "node-wide"}, {"gpu": 3, "reason": "fan"},
                          {"gpu": 4, "reason": "node-wide"}],
        "gpu_watchlist": [7, "0000:0b:00.0"], "ansible_python_interpreter": "/usr/bin/python3"}}
    assert group_vars == {"preflight_ramdisk_root": "/dev/shm/prng",
                          "preflight_steps": {"3": {"ramdisk": ["a.json"], "inputs": []}}}


@pytest.mark.parametrize("doc, problem", [
    ({"nodes": {"192.168.3.120": {"gpus": "twelve"}}}, 'nodes.192.168.3.120.gpus must be a whole number, got "twelve"'),
    ({"nodes": {"192.168.3.120": {"gpus": True}}}, "nodes.192.168.3.120.gpus must be a whole number, got true"),
    ({"nodes": {"192.168.3.120": {"gpus": -2}}}, "nodes.192.168.3.120.gpus must be a whole number, got -2"),
    ({"nodes": {"h": {"excluded_gpus": 10}}}, "nodes.h.excluded_gpus must be a list of GPU indices or PCI addresses"),
    ({"nodes": {"h": {"excluded_gpus": ["ten"]}}}, 'nodes.h.excluded_gpus[0] must be a GPU index (e.g. 10) or PCI address'),
    ({"nodes": {"h": {"excluded_gpus": [{"reason": "x"}]}}}, "nodes.h.excluded_gpus[0] has no 'gpu' key"),
    ({"nodes": {"h": {"excluded_gpus": [{"gpu": 1, "why": "x"}]}}}, "nodes.h.excluded_gpus[0]: unknown key(s) why"),
    ({"nodes": {"h": {"gpu_watchlist": [-1]}}}, "nodes.h.gpu_watchlist[0] must be a GPU index"),
    ({"nodes": {"h": {"port": 70000}}}, "nodes.h.port must be a TCP port number (1-65535), got 70000"),
    ({"nodes": {"h": {"user": "a", "ssh_user": "b"}}}, 'nodes.h: user and ssh_user disagree (user="a", ssh_user="b")'),
    ({"nodes": {"h": {"name": "has space"}}}, 'nodes.h.name must be a host name'),
    ({"nodes": {"a": {"name": "rig"}, "b": {"name": "rig"}}}, 'nodes.b.name "rig" is also the name of nodes.a'),
    ({"nodes": {"h": 5}}, "nodes.h must be an object (name, gpus, ...), got 5"),
    ({"nodes": {"h": {"vars": []}}}, "nodes.h.vars must be an object of inventory variables"),
    ({"nodes": []}, "nodes must be an object of node address to node settings, got []"),
    ({}, "nodes must be an object of node address to node settings, got nothing"),
    ({"nodes": {}, "preflight_steps": [3]}, "preflight_steps must be an object of step number"),
    ([1], 'the file must hold a JSON object with a "nodes" object, got list'),
])
def test_each_problem_names_its_field(wc, doc, problem):
    with pytest.raises(wc.ConfigError) as info:
        wc.read_config(doc)
    assert problem in str(info.value)


def test_every_problem_at_once(wc):
    with pytest.raises(wc.ConfigError) as info:
        wc.read_config({"nodes": {"a": {"gpus": "x"}, "b": {"port": "y"}}})
    assert len(info.value.problems) == 2


def test_plugin_reads_json_directly(plugin, tmp_path):
    path = tmp_path / "distributed_config.json"
    path.write_text(json.dumps(dict(EXAMPLE, preflight_steps={"3": {"ramdisk": ["a.json"]}})))
    assert plugin.verify_file(str(path))
    inventory = parse(plugin, path)
    host = inventory.get_host("rig-6600")
    assert [g.name for g in host.get_groups() if g.name != "all"] == ["rigs"]
    assert host.vars["ansible_host"] == "192.168.3.120" and host.vars["expected_gpu_count"] == 12
    assert inventory.groups["rigs"].vars == {"preflight_steps": {"3": {"ramdisk": ["a.json"]}}}


def test_plugin_reads_a_watcher_yml_config_relative_to_itself(plugin, tmp_path):
    (tmp_path / "cluster.json").write_text(json.dumps(EXAMPLE))
    config = tmp_path / "rigs.watcher.yml"
    config.write_text("plugin: gpuops.preflight.watcher_config\npath: cluster.json\ngroup: gpu_rigs\n")
    assert plugin.verify_file(str(config))
    inventory = parse(plugin, config)
    assert [h.name for h in inventory.groups["gpu_rigs"].get_hosts()] == ["rig-6600"]


def test_verify_file_declines_other_files(plugin, tmp_path):
    for name in ("hosts.yml", "config.json", "watcher.yml", "distributed_config.json.bak", "my-distributed_config.json"):
        (tmp_path / name).write_text("{}")
        assert not plugin.verify_file(str(tmp_path / name))
    assert not plugin.verify_file(str(tmp_path / "distributed_config.json"))  # missing
    # A .json file under another name is left to the yaml plugin, even when it holds WATCHER's schema: the bridge
    # names such a file before the run (environment.inventory_plugins, the same rule).
    (tmp_path / "rigs.json").write_text(json.dumps(EXAMPLE))
    assert not plugin.verify_file(str(tmp_path / "rigs.json"))
    for name in ("distributed_config.json", "a.watcher.yml", "a.watcher.yaml"):
        (tmp_path / name).write_text("{}")
        assert plugin.verify_file(str(tmp_path / name)), name


@pytest.mark.parametrize("content, message", [
    ('{"nodes": {"192.168.3.120": {"gpus": "twelve"}}}', 'nodes.192.168.3.120.gpus must be a whole number, got "twelve"'),
    ('{"nodes": ', "not valid JSON"),
])
def test_plugin_errors_are_parser_errors_naming_the_file(plugin, tmp_path, content, message):
    from ansible.errors import AnsibleParserError

    path = tmp_path / "distributed_config.json"
    path.write_text(content)
    with pytest.raises(AnsibleParserError) as info:
        parse(plugin, path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_watcher_yml_needs_path_and_an_existing_file(plugin, tmp_path):
    from ansible.errors import AnsibleParserError

    config = tmp_path / "rigs.watcher.yml"
    config.write_text("plugin: gpuops.preflight.watcher_config\n")
    with pytest.raises(AnsibleParserError, match="'path' is required"):
        parse(plugin, config)
    config.write_text("plugin: gpuops.preflight.watcher_config\npath: nowhere.json\n")
    with pytest.raises(AnsibleParserError, match="cannot read it"):
        parse(plugin, config)


@pytest.mark.parametrize("node, problem", [
    ({"gpus": "²"}, 'nodes.h.gpus must be a whole number, got "\\u00b2"'),
    ({"port": "²"}, 'nodes.h.port must be a TCP port number (1-65535), got "\\u00b2"'),
    ({"gpus": 10 ** 5000}, "nodes.h.gpus must be a whole number, got "),
    ({"gpus": "9" * 5000}, "(5002 characters)"),
    ({"name": "-oProxyCommand=x"}, "nodes.h.name must be a host name"),
    ({"name": "all"}, 'nodes.h.name "all" is the name of a group'),
    ({"name": "rigs"}, 'nodes.h.name "rigs" is the name of a group'),
])
def test_bad_numbers_and_names_name_their_field(wc, node, problem):
    with pytest.raises(wc.ConfigError) as info:
        wc.read_config({"nodes": {"h": node}})
    assert problem in str(info.value) and len(str(info.value)) < 300


@pytest.mark.parametrize("address", ["-oProxyCommand=touch /tmp/x", "-p2222", "a;b", "$(id)", "`id`", "a b",
                                     "a\x00b", "a\nb", "[not-v6]", "[::1]:99999"])
def test_addresses_ssh_or_a_shell_would_read_as_more_are_refused(wc, address):
    with pytest.raises(wc.ConfigError) as info:
        wc.read_config({"nodes": {address: {"name": "rig"}}})
    assert "the node's address" in str(info.value)


def test_bracketed_ipv6_goes_to_ssh_without_brackets(wc):
    nodes = {"[2001:db8::1]:2222": {"name": "a"}, "[2001:db8::2]": {"name": "b"}, "2001:db8::3": {"name": "c"}}
    hosts, _groups = wc.read_config({"nodes": nodes})
    assert (hosts["a"]["ansible_host"], hosts["a"]["ansible_port"]) == ("2001:db8::1", 2222)
    assert hosts["b"]["ansible_host"] == "2001:db8::2" and "ansible_port" not in hosts["b"]
    assert hosts["c"]["ansible_host"] == "2001:db8::3"
    with pytest.raises(wc.ConfigError, match="the address's port 2222 and port 22 disagree"):
        wc.read_config({"nodes": {"[2001:db8::1]:2222": {"port": 22}}})


@pytest.mark.parametrize("text, problem", [
    ('{"nodes": {"192.0.2.1": {"gpus": 8}, "192.0.2.1": {"gpus": 4}}}', '"192.0.2.1" appears twice'),
    ('{"nodes": {"h": {"gpus": %s}}}' % ("7" * 5000), "nodes.h.gpus must be a whole number"),
    ("[" * 100000 + "]" * 100000, "not valid JSON: nested too deeply"),
])
def test_plugin_refuses_what_json_would_mangle(plugin, tmp_path, text, problem):
    from ansible.errors import AnsibleParserError

    path = tmp_path / "distributed_config.json"
    path.write_text(text)
    with pytest.raises(AnsibleParserError) as info:
        parse(plugin, path)
    assert problem in str(info.value)


def test_plugin_never_blocks_on_a_fifo_nor_reads_a_device(plugin, tmp_path):
    import os

    from ansible.errors import AnsibleParserError

    fifo = tmp_path / "distributed_config.json"
    os.mkfifo(fifo)
    with pytest.raises(AnsibleParserError, match="not a regular file|FIFO"):
        parse(plugin, fifo)
    config = tmp_path / "rigs.watcher.yml"
    config.write_text("plugin: gpuops.preflight.watcher_config\npath: /dev/zero\n")
    with pytest.raises(AnsibleParserError, match="/dev/zero: cannot read it"):
        parse(plugin, config)


def test_plugin_refuses_yaml_aliases_in_its_config(plugin, tmp_path):
    from ansible.errors import AnsibleParserError

    (tmp_path / "cluster.json").write_text(json.dumps(EXAMPLE))
    config = tmp_path / "rigs.watcher.yml"
    config.write_text("plugin: gpuops.preflight.watcher_config\npath: cluster.json\n"
                      'a: &a ["lol", "lol"]\nb: &b [*a, *a]\ngroup: *b\n')
    with pytest.raises(AnsibleParserError, match="YAML aliases"):
        parse(plugin, config)
