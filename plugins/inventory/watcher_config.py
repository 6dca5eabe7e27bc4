# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: watcher_config
short_description: Inventory of the GPU rigs from WATCHER's distributed_config.json
version_added: 1.0.0
description:
  - Reads the cluster description WATCHER (the pipeline orchestrator) already keeps in C(distributed_config.json),
    so that the cluster is described once.
  - Every node becomes a host of group O(group) (default C(rigs)), named by its C(name) (else by its address), with
    C(ansible_host) set to its address (the key under C(nodes)), C(ansible_user) from C(user) or C(ssh_user),
    C(ansible_port) from C(port) or C(ssh_port), C(expected_gpu_count) from C(gpus), C(excluded_gpus) as a list of
    C({gpu, reason}) mappings (the node's C(reason) applies to entries without their own), C(gpu_watchlist), and
    any extra variables given in the node's C(vars).
  - A top-level C(preflight_steps) becomes a variable of group O(group); a top-level C(vars) mapping adds more group
    variables. Other top-level keys (WATCHER's own settings) are ignored.
  - The source is either a file named C(distributed_config.json) given directly as the inventory, or a YAML
    configuration file ending in C(.watcher.yml) or C(.watcher.yaml) with C(plugin) and O(path).
  - A node address is a host name or an IP address; one starting with C(-), or holding spaces, control or shell
    characters, is refused. C([2001:db8::1]:2222) gives C(ansible_host=2001:db8::1) and C(ansible_port=2222).
  - The file is read only if it is a regular file of at most 16 MiB; a node listed twice is refused, and so are
    YAML aliases in a C(.watcher.yml) configuration.
  - A malformed file fails with every problem at once, each naming the field, for example
    C(nodes.192.168.3.120.gpus must be a whole number, got "twelve").
  - The accepted schema is documented in docs/WATCHER.md of the collection.
options:
  plugin:
    description: The name of this plugin; required in a C(*.watcher.yml) configuration file.
    type: str
    choices: [gpuops.preflight.watcher_config]
  path:
    description:
      - The C(distributed_config.json) to read. A relative path is relative to the configuration file's folder.
      - Required in a C(*.watcher.yml) configuration file; not used when the JSON file is the inventory source.
    type: str
  group:
    description: The group the nodes are put in; the preflight and cleanup playbooks run on C(rigs).
    type: str
    default: rigs
author:
  - gpuops maintainers (@gpuops)
"""

EXAMPLES = r"""
# rigs.watcher.yml, used as: ansible-playbook gpuops.preflight.preflight -i rigs.watcher.yml -e step=3
plugin: gpuops.preflight.watcher_config
path: /etc/watcher/distributed_config.json

# Or the JSON file directly: ansible-playbook gpuops.preflight.preflight -i /etc/watcher/distributed_config.json -e step=3
# {
#   "nodes": {
#     "192.168.3.120": {"name": "rig-6600", "gpus": 12, "user": "watcher"},
#     "192.168.3.121": {"name": "rig-6600b", "gpus": 12, "excluded_gpus": [10], "reason": "SMU 0xFFFFFFFF errors",
#                       "gpu_watchlist": ["0000:22:00.0"]}
#   },
#   "preflight_steps": {"3": {"ramdisk": ["train_history.json", "holdout_history.json"], "inputs": []}}
# }
"""

import ipaddress
import json
import os
import re
from collections.abc import Mapping

import yaml
from ansible.errors import AnsibleParserError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin

from ansible_collections.gpuops.preflight.plugins.module_utils._files import FileProblem, read_regular
from ansible_collections.gpuops.preflight.plugins.module_utils._inventory_sources import CONFIG_SUFFIXES, is_watcher_source
from ansible_collections.gpuops.preflight.plugins.module_utils._pci import parse_gpu_ref
from ansible_collections.gpuops.preflight.plugins.module_utils._values import pairs_noting_repeats

# Per-node keys and what they become; anything else in a node is WATCHER's and is ignored.
USER_KEYS = ("user", "ssh_user")
PORT_KEYS = ("port", "ssh_port")
_HOST_NAME = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+$")
# A node's address: a host name, an IPv4 or IPv6 address (with a %zone); nothing ssh or a shell would read
# as more than an address. "[v6]" and "[v6]:port" are taken apart below.
_ADDRESS = re.compile(r"^[A-Za-z0-9_.:%\-]+$")
_BRACKETED = re.compile(r"^\[([^\]]+)\](?::([0-9]+))?$")
# Names Ansible keeps for its own groups; a host of that name would shadow them.
RESERVED_NAMES = ("all", "ungrouped")
# Far above any real config (a few KiB per node): a FIFO, a device or a runaway file is refused, not read.
MAX_CONFIG_BYTES = 16 * 1024 * 1024
# The largest whole number a count or a port may be written with: anything longer is not a count.
MAX_DIGITS = 9
# How much of a bad value an error quotes.
SHOW_CHARS = 80


class ConfigError(ValueError):
    """Every problem of a config, each naming its field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        ValueError.__init__(self, "; ".join(self.problems))


def _show(value: object) -> str:
    """How an error quotes a bad value: as it reads in the JSON file."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        # object.__repr__ for what cannot show itself (an int past Python's digit limit, a self-nested list)
        text = repr(value) if not isinstance(value, (int, list, dict)) else object.__repr__(value)
    return text if len(text) <= SHOW_CHARS else text[:SHOW_CHARS] + "... (%d characters)" % len(text)


def _whole(value: object) -> int | None:
    """A JSON integer, or a string of digits; None for anything else (bools are not numbers here)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) < 10 ** MAX_DIGITS else None
    # ASCII digits only: str.isdigit() is also true for "²", which int() refuses.
    text = value.strip() if isinstance(value, str) else ""
    if text and len(text) <= MAX_DIGITS and text.isascii() and text.isdigit():
        return int(text)
    return None


def _address(key: str) -> tuple[str, int | None]:
    """A node key -> (ansible_host, port or None); ValueError saying what is wrong with it.

    An IPv6 address goes to ssh without brackets, its port (``[v6]:port``) as ansible_port."""
    if key.startswith("-"):
        raise ValueError("must not start with '-' (ssh would read it as an option)")
    match = _BRACKETED.match(key)
    if match:
        try:
            ipaddress.IPv6Address(match.group(1).split("%", 1)[0])
        except ValueError:
            raise ValueError("brackets hold an IPv6 address, got %s" % _show(match.group(1))) from None
        port = _whole(match.group(2)) if match.group(2) else None
        if match.group(2) and (port is None or not 0 < port < 65536):
            raise ValueError("the port must be a TCP port number (1-65535)")
        return match.group(1), port
    if not _ADDRESS.match(key):
        raise ValueError("must be a host name or IP address (letters, digits, '.', ':', '-', '_'; "
                         "no spaces, control characters or shell characters)")
    return key, None


def _gpu_list(value: object, field: str, problems: list[str], reason: str | None = None) -> list:
    """A list of GPU names (index, PCI address or {gpu, reason}); reasons are kept, entries checked."""
    if not isinstance(value, list):
        problems.append("%s must be a list of GPU indices or PCI addresses, got %s" % (field, _show(value)))
        return []
    out = []
    for position, entry in enumerate(value):
        where = "%s[%d]" % (field, position)
        own_reason = None
        gpu = entry
        if isinstance(entry, Mapping):
            unknown = sorted(set(entry) - {"gpu", "reason"})
            if "gpu" not in entry:
                problems.append("%s has no 'gpu' key (expected {\"gpu\": 10, \"reason\": \"...\"})" % where)
                continue
            if unknown:
                problems.append("%s: unknown key(s) %s; allowed: gpu, reason" % (where, ", ".join(unknown)))
            gpu, own_reason = entry["gpu"], entry.get("reason")
            if own_reason is not None and not isinstance(own_reason, str):
                problems.append("%s.reason must be text, got %s" % (where, _show(own_reason)))
                own_reason = None
        try:
            kind, parsed = parse_gpu_ref(gpu)
        except ValueError:
            problems.append("%s must be a GPU index (e.g. 10) or PCI address (e.g. \"0000:22:00.0\"), got %s"
                            % (where, _show(gpu)))
            continue
        item = {"gpu": parsed}
        if own_reason or reason:
            item["reason"] = own_reason or reason
        out.append(item)
    return out


def _one_of(node: Mapping, keys: tuple[str, ...], field: str, problems: list[str]) -> object:
    """The value of whichever of ``keys`` is set; two different values is a problem."""
    given = [(k, node[k]) for k in keys if node.get(k) not in (None, "")]
    if len(set(_show(v) for _k, v in given)) > 1:
        values = ", ".join("%s=%s" % (k, _show(v)) for k, v in given)
        problems.append("%s: %s disagree (%s)" % (field, " and ".join(k for k, _v in given), values))
    return given[0][1] if given else None


def read_config(data: object, group: str = "rigs") -> tuple[dict[str, dict], dict[str, object]]:
    """Validate a distributed_config document for ``group``; returns ({host name: host vars}, group vars).

    Raises ConfigError listing every problem, each naming its field (``nodes.<address>.<key>``).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(["the file must hold a JSON object with a \"nodes\" object, got %s" % type(data).__name__])
    problems: list[str] = []
    nodes = data.get("nodes")
    if not isinstance(nodes, Mapping):
        problems.append("nodes must be an object of node address to node settings, got %s"
                        % ("nothing" if nodes is None else _show(nodes)))
        nodes = {}
    hosts: dict[str, dict] = {}
    named_by: dict[str, str] = {}
    for address, node in nodes.items():
        field = "nodes.%s" % address
        if not isinstance(address, str) or not address.strip():
            problems.append("%s: the key must be the node's address (a host name or IP address)" % field)
            continue
        try:
            host, key_port = _address(address)
        except ValueError as exc:
            problems.append("nodes.%s: the node's address %s" % (_show(address), exc))
            continue
        if not isinstance(node, Mapping):
            problems.append("%s must be an object (name, gpus, ...), got %s" % (field, _show(node)))
            continue
        name = node.get("name", address)
        if not isinstance(name, str) or not _HOST_NAME.match(name) or name.startswith("-"):
            problems.append("%s.name must be a host name (letters, digits, '.', '-', '_'), got %s"
                            % (field, _show(name)))
            continue
        if name in RESERVED_NAMES + (group,):
            problems.append("%s.name %s is the name of a group: a host cannot have it" % (field, _show(name)))
            continue
        if name in named_by:
            problems.append("%s.name %s is also the name of %s" % (field, _show(name), named_by[name]))
            continue
        named_by[name] = field
        hostvars: dict[str, object] = {"ansible_host": host}
        user = _one_of(node, USER_KEYS, field, problems)
        if user is not None:
            if isinstance(user, str) and user.strip():
                hostvars["ansible_user"] = user
            else:
                problems.append("%s.user must be a user name, got %s" % (field, _show(user)))
        port = _one_of(node, PORT_KEYS, field, problems)
        if key_port is not None:
            if port is not None and _whole(port) != key_port:
                problems.append("%s: the address's port %d and port %s disagree" % (field, key_port, _show(port)))
            port = key_port
        if port is not None:
            number = _whole(port)
            if number is None or not 0 < number < 65536:
                problems.append("%s.port must be a TCP port number (1-65535), got %s" % (field, _show(port)))
            else:
                hostvars["ansible_port"] = number
        if "gpus" in node:
            count = _whole(node["gpus"])
            if count is None or count < 0:
                problems.append("%s.gpus must be a whole number, got %s" % (field, _show(node["gpus"])))
            else:
                hostvars["expected_gpu_count"] = count
        reason = node.get("reason")
        if reason is not None and not isinstance(reason, str):
            problems.append("%s.reason must be text, got %s" % (field, _show(reason)))
            reason = None
        hostvars["excluded_gpus"] = _gpu_list(node.get("excluded_gpus", []), field + ".excluded_gpus",
                                              problems, reason)
        watch = _gpu_list(node.get("gpu_watchlist", []), field + ".gpu_watchlist", problems)
        hostvars["gpu_watchlist"] = [item["gpu"] for item in watch]
        extra = node.get("vars", {})
        if not isinstance(extra, Mapping):
            problems.append("%s.vars must be an object of inventory variables, got %s" % (field, _show(extra)))
        else:
            hostvars.update(extra)
        hosts[name] = hostvars
    group_vars: dict[str, object] = {}
    extra = data.get("vars", {})
    if not isinstance(extra, Mapping):
        problems.append("vars must be an object of group variables, got %s" % _show(extra))
    else:
        group_vars.update(extra)
    if "preflight_steps" in data:
        steps = data["preflight_steps"]
        if not isinstance(steps, Mapping):
            problems.append("preflight_steps must be an object of step number to {\"ramdisk\": [...], "
                            "\"inputs\": [...]}, got %s" % _show(steps))
        else:
            group_vars["preflight_steps"] = dict(steps)
    if problems:
        raise ConfigError(problems)
    return hosts, group_vars


def _read(path: str) -> bytes:
    """The file's bytes, read without blocking (a FIFO, a device) and up to MAX_CONFIG_BYTES."""
    try:
        return read_regular(path, MAX_CONFIG_BYTES)
    except FileProblem as exc:
        raise AnsibleParserError("%s: cannot read it: %s" % (path, to_native(exc)))
    except OSError as exc:
        raise AnsibleParserError("%s: cannot read it: %s" % (path, to_native(exc.strerror or exc)))


def _check_yaml(path: str) -> None:
    """A plugin config holds a few plain settings: YAML aliases there could only blow it up (billion laughs)."""
    try:
        for event in yaml.parse(_read(path), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if isinstance(event, yaml.AliasEvent):
                raise AnsibleParserError("%s: YAML aliases (*name) are not accepted in a plugin config" % path)
    except yaml.YAMLError as exc:
        raise AnsibleParserError("%s: not valid YAML: %s" % (path, to_native(exc)))


class _Digits(str):
    """A JSON integer too long for int() (Python's 4300-digit limit): kept as its text, so that the field
    holding it gets the field-by-field error instead of the whole file a ValueError."""


def _json_int(text: str) -> object:
    return int(text) if len(text) <= 4000 else _Digits(text)


def _load_json(path: str) -> object:
    """The config's JSON; a key twice in one object is refused (json would keep the last, dropping a node)."""
    twice: list[str] = []
    try:
        data = json.loads(_read(path), object_pairs_hook=pairs_noting_repeats(twice), parse_int=_json_int)
    except RecursionError:
        raise AnsibleParserError("%s: not valid JSON: nested too deeply" % path)
    except ValueError as exc:
        raise AnsibleParserError("%s: not valid JSON: %s" % (path, to_native(exc)))
    if twice:
        raise AnsibleParserError("%s: %s" % (path, "; ".join("%s appears twice in one object (node or key given twice)"
                                                             % _show(key) for key in dict.fromkeys(twice))))
    return data


class InventoryModule(BaseInventoryPlugin):
    NAME = "gpuops.preflight.watcher_config"

    def verify_file(self, path: str) -> bool:
        # By name only, the rule the bridge decides a run's plugins by (_inventory_sources): any other .json file
        # is an ordinary inventory for the yaml plugin, never this plugin's.
        return bool(super().verify_file(path)) and is_watcher_source(path)

    def parse(self, inventory, loader, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        if path.endswith(CONFIG_SUFFIXES):
            _check_yaml(path)
            self._read_config_data(path)
            source = self.get_option("path")
            if not source:
                raise AnsibleParserError("%s: 'path' is required (the distributed_config.json to read)" % path)
            # Relative to the configuration file, not to wherever ansible runs from.
            source = os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(source))
        else:
            self.set_options()
            source = path
        group = self.get_option("group") or "rigs"
        if not isinstance(group, str) or not _HOST_NAME.match(group) or group in RESERVED_NAMES:
            raise AnsibleParserError("%s: group must be a group name (letters, digits, '_'), not all or "
                                     "ungrouped, got %s" % (path, _show(group)))
        data = _load_json(source)
        try:
            hosts, group_vars = read_config(data, group)
        except ConfigError as exc:
            raise AnsibleParserError("%s: %s" % (source, exc))
        self.inventory.add_group(group)
        for name, hostvars in hosts.items():
            self.inventory.add_host(name, group=group)
            for key, value in hostvars.items():
                self.inventory.set_variable(name, key, value)
        for key, value in group_vars.items():
            self.inventory.set_variable(group, key, value)
