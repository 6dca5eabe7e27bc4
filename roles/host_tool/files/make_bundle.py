# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the host tool's bundle on the controller: one deterministic tar of what local commands need.

    make_bundle.py --collection ROOT --package DIR --out FILE.tar

The tar holds ``gpuops_preflight/`` (the package, ``*.py`` only) and the collection's
``plugins/module_utils/*.py`` as ``ansible_collections/gpuops/preflight/plugins/module_utils/``
(with empty ``__init__.py`` files, so they import as plain packages), plus ``BUNDLE.json`` (the
collection version and the file list). Same sources, same bytes: names sorted, owner root, mode
0644, one fixed time, so the role's copy of it is idempotent. Prints
{"path", "sha256", "files", "version"} as JSON. Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import sys
import tarfile

MODULE_UTILS = "ansible_collections/gpuops/preflight/plugins/module_utils"
INITS = ("ansible_collections", "ansible_collections/gpuops", "ansible_collections/gpuops/preflight",
         "ansible_collections/gpuops/preflight/plugins", MODULE_UTILS)
FIXED_TIME = 1700000000   # a constant: the tar's bytes depend on the sources only


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


def members(collection, package):
    """{name in the tar: bytes}."""
    utils = os.path.join(collection, "plugins", "module_utils")
    for folder in (utils, package):
        if not os.path.isfile(os.path.join(folder, "__init__.py" if folder == package else "_tool.py")):
            raise SystemExit("make_bundle: %s is not %s" % (
                folder, "the gpuops_preflight package" if folder == package else "the collection's module_utils"))
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
    manifest = {"collection": "gpuops.preflight", "version": version(collection), "files": sorted(data)}
    data["BUNDLE.json"] = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode("utf-8")
    return data, manifest


def build(collection, package, out):
    data, manifest = members(collection, package)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(data):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data[name]), FIXED_TIME, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data[name]))
    blob = buf.getvalue()
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    temp = "%s.%d.tmp" % (out, os.getpid())
    with open(temp, "wb") as handle:
        handle.write(blob)
    os.replace(temp, out)
    return {"path": os.path.abspath(out), "sha256": hashlib.sha256(blob).hexdigest(), "files": len(data),
            "version": manifest["version"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--collection", required=True, help="the collection root (plugins/module_utils under it)")
    parser.add_argument("--package", required=True, help="the gpuops_preflight package folder")
    parser.add_argument("--out", required=True, help="the tar to write")
    args = parser.parse_args(argv)
    print(json.dumps(build(args.collection, args.package, args.out), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
