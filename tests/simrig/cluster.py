"""Several rigs, an Ansible inventory pointing at them, and hosts nobody answers."""

from __future__ import annotations

import os
import shutil
import socket

import yaml

from .nvidia import add_nvidia
from .rig import DEFAULT_STEPS, Rig, _steps_key

GROUP = "rigs"


def free_port(host="127.0.0.1"):
    """A TCP port nothing listens on right now (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def unreachable_host(name=None, connect_timeout=2):
    """Host vars for a host nobody answers: SSH to a closed loopback port (traffic stays local)."""
    return {
        "ansible_host": "127.0.0.1",
        "ansible_port": free_port(),
        "ansible_connection": "ssh",
        "ansible_user": "simrig",
        "ansible_ssh_timeout": connect_timeout,
        "ansible_ssh_common_args": "-o ConnectTimeout=%d -o ConnectionAttempts=1 -o BatchMode=yes "
                                   "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null" % connect_timeout,
        "ansible_ssh_retries": 0,
    }


def _host_entries(rigs):
    if isinstance(rigs, dict):
        items = rigs.items()
    else:
        items = ((r.name, r) for r in rigs)
    out = {}
    for name, value in items:
        out[name] = value.host_vars() if isinstance(value, Rig) else dict(value)
    return out


def inventory_document(rigs, extra_group_vars=None, extra_hosts=None, steps=None, group=GROUP):
    hosts = _host_entries(rigs)
    hosts.update(_host_entries(extra_hosts or {}))
    if steps is None:
        first = next((r for r in (rigs.values() if isinstance(rigs, dict) else rigs) if isinstance(r, Rig)), None)
        steps = first.steps if first else DEFAULT_STEPS
    group_vars = {"preflight_steps": _steps_key(steps)}
    group_vars.update(extra_group_vars or {})
    return {"all": {"children": {group: {"hosts": hosts, "vars": group_vars}}}}


def write_inventory(path, rigs, extra_group_vars=None, extra_hosts=None, steps=None, group=GROUP):
    """Write a YAML inventory: group ``rigs`` with one host per rig (+ ``extra_hosts``) and
    ``preflight_steps`` (+ ``extra_group_vars``) as group vars. Returns the path."""
    doc = inventory_document(rigs, extra_group_vars, extra_hosts, steps, group)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("# simulated rigs (tests/simrig): recorded real tool output, not real hardware\n")
        yaml.safe_dump(doc, handle, sort_keys=False, default_flow_style=False)
    return path


class Cluster(object):
    """Rigs built under one root, plus extra (e.g. unreachable) hosts."""

    def __init__(self, root, rigs, extra_hosts=None, steps=None):
        self.root = os.path.abspath(root)
        self.rigs = dict(rigs)
        self.extra_hosts = dict(extra_hosts or {})
        self.steps = _steps_key(steps or DEFAULT_STEPS)
        self.inventory = None

    def __getitem__(self, name):
        return self.rigs[name]

    def add_unreachable(self, name, **kw):
        self.extra_hosts[name] = unreachable_host(name, **kw)
        return self.extra_hosts[name]

    def host_vars(self):
        out = _host_entries(self.rigs)
        out.update(self.extra_hosts)
        return out

    def write_inventory(self, path=None, extra_group_vars=None):
        path = path or os.path.join(self.root, "inventory.yml")
        steps = None if self.rigs else self.steps  # a rig's steps carry absolute input paths
        self.inventory = write_inventory(path, self.rigs, extra_group_vars, self.extra_hosts, steps)
        return self.inventory

    def destroy(self):
        for rig in self.rigs.values():
            rig.destroy()
        shutil.rmtree(self.root, ignore_errors=True)


def build_cluster(root, spec, steps=None, unreachable=(), defaults=None):
    """Build rigs under ``root``: ``spec`` is {name: Rig.build keyword arguments or None} or a list
    of names (12 GPUs each). ``defaults`` are keyword arguments for every rig (a rig's own win),
    e.g. {"ramdisk": "shm"}. ``unreachable`` names hosts nobody answers.

    NVIDIA GPUs (``simrig.nvidia``): ``nvidia_gpus`` N adds N of them beside the rig's ``gpus`` AMD
    ones (``{"gpus": 0, "nvidia_gpus": 8}`` is an NVIDIA rig, ``{"gpus": 1, "nvidia_gpus": 2}`` a
    two-vendor host), ``nvidia_fixture`` names their recording; ``expected_gpu_count`` counts both
    unless given."""
    if not isinstance(spec, dict):
        spec = {name: None for name in spec}
    os.makedirs(root, exist_ok=True)
    rigs = {}
    for name, kwargs in spec.items():
        kwargs = dict(defaults or {}, **(kwargs or {}))
        kwargs.setdefault("inputs_root", os.path.join(root, "inputs"))  # shared, like a dataset mount
        kwargs.setdefault("steps", steps)
        nvidia_gpus, nvidia_fixture = kwargs.pop("nvidia_gpus", 0), kwargs.pop("nvidia_fixture", None)
        rigs[name] = Rig.build(root, name, **kwargs)
        if nvidia_gpus:
            add_nvidia(rigs[name], gpus=nvidia_gpus, count_expected="expected_gpu_count" not in kwargs,
                       **({"fixture": nvidia_fixture} if nvidia_fixture else {}))
    cluster = Cluster(root, rigs, steps=steps)
    for name in unreachable:
        cluster.add_unreachable(name)
    return cluster
