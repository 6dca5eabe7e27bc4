# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: what the host tool's bundle holds, and the one digest of it.

The ``host_tool`` role's ``make_bundle.py`` builds the bundle from ``sources`` and writes
``sources_digest`` into its ``BUNDLE.json``. A node action (``_node_action``) computes the same digest
of the code it would ship: when a host's bundle has it, the host tool runs the very same checks from
its compiled copy, and nothing has to be shipped. Standard library only (``make_bundle.py`` loads this
file by its path, without Ansible).
"""

from __future__ import annotations

import hashlib
import json
import os
import re

MODULE_UTILS = "ansible_collections/gpuops/preflight/plugins/module_utils"
INITS = ("ansible_collections", "ansible_collections/gpuops", "ansible_collections/gpuops/preflight",
         "ansible_collections/gpuops/preflight/plugins", MODULE_UTILS)
# The collection this file belongs to (plugins/plugin_utils/ -> the root): what a node action ships.
COLLECTION = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def python_files(folder, recurse):
    """{relative path: absolute path} of the *.py files under ``folder`` (no __pycache__)."""
    found = {}
    for here, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith(".")) if recurse else []
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(here, name)
                found[os.path.relpath(path, folder).replace(os.sep, "/")] = path
    return found


def version(collection):
    """The collection's version: MANIFEST.json of an installed copy, else galaxy.yml of a clone."""
    try:
        with open(os.path.join(collection, "MANIFEST.json"), encoding="utf-8") as handle:
            return json.load(handle)["collection_info"]["version"]
    except (OSError, ValueError, KeyError):
        pass
    try:
        with open(os.path.join(collection, "galaxy.yml"), encoding="utf-8") as handle:
            match = re.search(r"^version:\s*['\"]?([^'\"\s]+)", handle.read(), re.M)
        return match.group(1) if match else None
    except OSError:
        return None


def sources(collection, package):
    """{name in the bundle: bytes}: the package (``*.py``) and the collection's module_utils, with the empty
    ``__init__.py`` files that make them import as plain packages. ValueError when a folder is not what it
    should be."""
    utils = os.path.join(collection, "plugins", "module_utils")
    for folder, marker, what in ((utils, "_tool.py", "the collection's module_utils"),
                                 (package, "__init__.py", "the gpuops_preflight package")):
        if not os.path.isfile(os.path.join(folder, marker)):
            raise ValueError("%s is not %s" % (folder, what))
    content = {}
    for rel, path in python_files(package, recurse=True).items():
        content["gpuops_preflight/" + rel] = path
    for rel, path in python_files(utils, recurse=False).items():
        content["%s/%s" % (MODULE_UTILS, rel)] = path
    data = {}
    for name, path in sorted(content.items()):
        with open(path, "rb") as handle:
            data[name] = handle.read()
    for folder in INITS:
        data.setdefault(folder + "/__init__.py", b"")
    return data


def digest(data):
    """sha256 of ``{name: bytes}``: every name with its length and bytes, in name order."""
    sha = hashlib.sha256()
    for name in sorted(data):
        blob = data[name]
        sha.update(("%s\0%d\0" % (name, len(blob))).encode("utf-8"))
        sha.update(blob)
    return sha.hexdigest()


def sources_digest(collection=COLLECTION, package=None):
    """The digest of what a bundle built from ``collection`` (and its ``src/gpuops_preflight``) holds; None when
    that cannot be read (an installed collection without its package)."""
    try:
        return digest(sources(collection, package or os.path.join(collection, "src", "gpuops_preflight")))
    except (OSError, ValueError):
        return None
