# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the host tool's bundle on the controller: one deterministic tar of what local commands need.

    make_bundle.py --collection ROOT --package DIR --out FILE.tar

The tar holds ``gpuops_preflight/`` (the package, ``*.py`` only) and the collection's
``plugins/module_utils/*.py`` as ``ansible_collections/gpuops/preflight/plugins/module_utils/``
(with empty ``__init__.py`` files, so they import as plain packages), plus ``BUNDLE.json`` (the
collection version, the file list and ``sources_digest``, which node actions compare). Same sources,
same bytes: names sorted, owner root, mode 0644, one fixed time, so the role's copy of it is idempotent. Prints
{"path", "sha256", "files", "version"} as JSON. Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile

# The file list and its digest live with the collection's controller code: a node action computes the same digest
# of what it would ship, to run from a bundle only when it holds that very code (plugins/plugin_utils/_host_bundle.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "plugins", "plugin_utils"))
import _host_bundle  # noqa: E402  pylint: disable=wrong-import-position

FIXED_TIME = 1700000000   # a constant: the tar's bytes depend on the sources only


def members(collection, package):
    """{name in the tar: bytes}, BUNDLE.json (the version, the file list, the sources' digest) included."""
    try:
        data = _host_bundle.sources(collection, package)
    except ValueError as exc:
        raise SystemExit("make_bundle: %s" % exc) from None
    manifest = {"collection": "gpuops.preflight", "version": _host_bundle.version(collection), "files": sorted(data),
                "sources_digest": _host_bundle.digest(data)}
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
