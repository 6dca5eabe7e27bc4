"""Hosts and their addresses (``ansible_host``) from the run's inventory, when the run cannot say.

Runner events name a host by its inventory name only (``remote_addr`` is that name too), and the
playbook's summary, which has the address, may never come (a timeout, a cancel); a run stopped
early may not even have named its hosts. Then the inventory itself is read: a dict directly,
files with ``ansible-inventory --list`` (the run's environment, so WATCHER configs parse as in
the run). Only on those paths: a normal run never pays for it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from .locate import Integration

LOG = logging.getLogger("gpuops_preflight.addresses")


def _plain(value: Any) -> Any:
    """ansible-inventory marks untrusted text as {"__ansible_unsafe": "..."}."""
    if isinstance(value, Mapping) and "__ansible_unsafe" in value:
        return value["__ansible_unsafe"]
    return value


GROUP = "rigs"


def from_dict(inventory: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """({host: ansible_host}, hosts of group rigs) from a YAML/JSON-style inventory document."""
    found: dict[str, str] = {}
    rigs: list[str] = []

    def walk(name: str, group: Any, in_rigs: bool) -> None:
        if not isinstance(group, Mapping):
            return
        in_rigs = in_rigs or name == GROUP
        # What is not of an inventory's shape is left out (the run itself says what is wrong with it): the
        # addresses are asked for when a run stopped, whose timeout or cancel must not become an error here.
        hosts, children = group.get("hosts"), group.get("children")
        for host, hostvars in (hosts.items() if isinstance(hosts, Mapping) else ()):
            if isinstance(hostvars, Mapping) and hostvars.get("ansible_host"):
                found[host] = str(hostvars["ansible_host"])
            if in_rigs and host not in rigs:
                rigs.append(host)
        for child, data in (children.items() if isinstance(children, Mapping) else ()):
            walk(child, data, in_rigs)

    for name, group in inventory.items():
        walk(name, group, False)
    return found, rigs


def from_files(integration: Integration, env: Mapping[str, str], sources: Sequence[str],
               timeout: float = 10.0) -> tuple[dict[str, str], list[str]]:
    cmd = [integration.inventory_bin, "--list"]
    for source in sources:
        cmd += ["-i", source]
    try:
        done = subprocess.run(cmd, env=dict(os.environ, **env), capture_output=True, text=True,
                              timeout=timeout, check=False)
        listed = json.loads(done.stdout)
        hostvars = listed.get("_meta", {}).get("hostvars", {})
    except (OSError, subprocess.SubprocessError, ValueError, AttributeError) as exc:
        LOG.debug("ansible-inventory could not list %s: %s", sources, exc)
        return {}, []
    found = {host: str(_plain(v["ansible_host"])) for host, v in hostvars.items()
             if isinstance(v, Mapping) and v.get("ansible_host")}
    return found, _group_hosts(listed, GROUP)


def _group_hosts(listed: Mapping[str, Any], name: str) -> list[str]:
    """Hosts of a group in ``ansible-inventory --list`` output, its children's included."""
    group = listed.get(name)
    if not isinstance(group, Mapping):
        return []
    hosts = list(group.get("hosts") or [])
    for child in group.get("children") or []:
        hosts.extend(h for h in _group_hosts(listed, child) if h not in hosts)
    return hosts


def lookup(integration: Integration, env: Mapping[str, str], inventory: Any) -> tuple[dict[str, str], list[str]]:
    """({host: address}, hosts of group rigs); empty when the inventory cannot be read."""
    if isinstance(inventory, Mapping):
        return from_dict(inventory)
    sources = [inventory] if isinstance(inventory, str) else list(inventory)
    return from_files(integration, env, sources)
