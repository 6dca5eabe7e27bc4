# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: which inventory plugin a file is for, by its name and (a .json file) its content.

One rule for the ``watcher_config`` inventory plugin (what its ``verify_file`` claims) and for the bridge
(which plugins it enables for a run, docs/WATCHER.md "Inventory files"):

- WATCHER's config: a file named ``distributed_config.json``, or a plugin config ending in ``.watcher.yml`` or
  ``.watcher.yaml``. Only ``watcher_config`` reads them.
- Any other ``.json`` file is an Ansible inventory in the YAML format written as JSON
  (``{"all": {"hosts": {...}}}``), read by Ansible's ``yaml`` plugin as ``ansible-playbook`` reads it by default;
  ``json_inventory_problem`` says why one is not (a plugin config, WATCHER's config under another name, a list).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

JSON_NAME = "distributed_config.json"
CONFIG_SUFFIXES = (".watcher.yml", ".watcher.yaml")
# The keys of a group in Ansible's YAML (and JSON) inventory format.
GROUP_KEYS = ("hosts", "children", "vars")
EXPECTED = ('an Ansible inventory in the YAML format written as JSON ({"all": {"hosts": {...}}}), '
            "or WATCHER's config in a file named %s" % JSON_NAME)
# How much of a name an explanation quotes.
SHOW_CHARS = 60


def is_watcher_source(path):
    """WATCHER's config by its name: distributed_config.json or a *.watcher.yml / *.watcher.yaml plugin config."""
    name = os.path.basename(str(path))
    return name == JSON_NAME or name.endswith(CONFIG_SUFFIXES)


def _name(value):
    text = repr(value)
    return text if len(text) <= SHOW_CHARS else text[:SHOW_CHARS] + "..."


def json_inventory_problem(data):
    """None when ``data`` (a JSON document) is an Ansible inventory of the YAML format: an object of groups,
    each null or an object of hosts, children and vars. Else what it is instead, in a few words."""
    if not isinstance(data, Mapping):
        return "it holds a JSON %s, not an object of groups" % {list: "array", str: "string"}.get(type(data), "value")
    if not data:
        return "it holds an empty object: no group, no host"
    if "plugin" in data:
        return ("it is an inventory plugin configuration (plugin: %s): Ansible reads those only from .yml or .yaml "
                "files" % _name(data["plugin"]))
    if "nodes" in data and isinstance(data["nodes"], Mapping) and not set(data["nodes"]) & set(GROUP_KEYS):
        return ("it looks like WATCHER's config (a \"nodes\" object): name it %s, or give a *.watcher.yml "
                "config whose path is this file" % JSON_NAME)
    for group, value in data.items():
        if value is None:
            continue
        if not isinstance(value, Mapping):
            return "group %s is not an object of hosts, children and vars" % _name(group)
        others = [key for key in value if key not in GROUP_KEYS]
        if others:
            return ("group %s has the key %s: a group holds only hosts, children and vars"
                    % (_name(group), _name(others[0])))
    return None
