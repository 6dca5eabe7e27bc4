"""Helpers for the scenarios' pytest-testinfra tests (tests/conftest.py puts this folder on sys.path).

The tests run on the controller; ``host`` (testinfra, podman backend) reaches into a container.
What prepare left in ``$MOLECULE_EPHEMERAL_DIRECTORY/rigs/`` is the reference:

    rigs.json                   shared/simrigs.py's description of the rigs (in-container paths)
    <host>.prepared.json        shared/manifest.py's manifest of the rig and ramdisk, right after prepare
    <host>/                     the controller-side rig as simrig built it
"""

from __future__ import annotations

import glob
import json
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
MANIFEST_SCRIPT = os.path.join(HERE, "manifest.py")
SUMMARY_PREFIX = {"preflight": "summary", "cleanup": "cleanup"}
# What a converge may leave in a container outside the rig (podman diff against the image):
# Ansible's remote temporary folder (emptied after each task) and the folders above it.
ANSIBLE_TRACES = {"/root", "/root/.ansible", "/root/.ansible/tmp", "/tmp"}


def ephemeral(*parts):
    return os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], *parts)


def rigs():
    with open(ephemeral("rigs", "rigs.json"), encoding="utf-8") as handle:
        return json.load(handle)


def name_of(host):
    """The inventory host name of a testinfra host: the container's name."""
    return host.backend.name


def prepared(name):
    with open(ephemeral("rigs", name + ".prepared.json"), encoding="utf-8") as handle:
        return json.load(handle)


def prepared_diff(name):
    with open(ephemeral("rigs", name + ".prepared-diff.json"), encoding="utf-8") as handle:
        return json.load(handle)


def manifest(host, *roots):
    """The manifest of ``roots`` inside the container now (same script as prepare)."""
    with open(MANIFEST_SCRIPT, encoding="utf-8") as handle:
        script = handle.read()
    out = host.check_output("python3 -c %s" + " %s" * len(roots), script, *roots)
    return json.loads(out)


def flatten(doc):
    """{absolute path: entry} from a manifest {root: {relative path: entry}}."""
    out = {}
    for root, entries in doc.items():
        assert entries is not None, "%s is missing" % root
        for rel, item in entries.items():
            out[os.path.normpath(os.path.join(root, rel))] = item
    return out


def compare(before, after):
    """What changed between two manifests: {"added": [...], "removed": [...], "changed": {path: [fields]}}."""
    old, new = flatten(before), flatten(after)
    changed = {}
    for path in sorted(set(old) & set(new)):
        fields = sorted(k for k in set(old[path]) | set(new[path]) if old[path].get(k) != new[path].get(k))
        if fields:
            changed[path] = fields
    return {"added": sorted(set(new) - set(old)), "removed": sorted(set(old) - set(new)), "changed": changed}


def summaries(kind, step=3):
    """The summary documents of ``kind`` written on the controller, oldest first."""
    pattern = ephemeral("summaries", "%s_step%d_*.json" % (SUMMARY_PREFIX[kind], step))
    docs = []
    for path in sorted(glob.glob(pattern)):
        with open(path, encoding="utf-8") as handle:
            docs.append(json.load(handle))
    return docs


def podman_diff(name):
    """``podman diff`` of the container against its image: {"added"|"changed"|"deleted": [paths]}."""
    out = subprocess.run(["podman", "diff", "--format", "json", name], check=True, capture_output=True,
                         text=True).stdout
    doc = json.loads(out or "{}")
    return {k: sorted(doc.get(k) or []) for k in ("added", "changed", "deleted")}


def new_in_container(name):
    """Paths the converge added, changed or deleted in the container outside what prepare did."""
    before, after = prepared_diff(name), podman_diff(name)
    return {k: sorted(set(after[k]) - set(before.get(k) or [])) for k in after}


def under(path, base):
    return path == base or path.startswith(base.rstrip("/") + "/")
