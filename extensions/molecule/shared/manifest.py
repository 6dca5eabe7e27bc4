"""Print a JSON manifest of every entry under the given folders (runs INSIDE a rig container).

    python3 manifest.py ROOT [ROOT ...]

{root: {relative path: {"type": dir|file|link|other, "mode", "mtime_ns", "size" (files, links),
"sha256" (files), "target" (links)}}} -- links are never followed, so a symlink trap is recorded as a link.
The scenario's prepare records it right after laying out the rig; the verify records it again
and compares. Standard library only (the image has nothing but python3); Python 3.6+.
"""

import hashlib
import json
import os
import stat
import sys


def entry(path):
    st = os.lstat(path)
    item = {"mode": stat.S_IMODE(st.st_mode), "mtime_ns": st.st_mtime_ns}
    if stat.S_ISLNK(st.st_mode):
        item.update(type="link", size=st.st_size, target=os.readlink(path))
    elif stat.S_ISDIR(st.st_mode):
        item["type"] = "dir"
    elif stat.S_ISREG(st.st_mode):
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        item.update(type="file", size=st.st_size, sha256=digest.hexdigest())
    else:
        item["type"] = "other"
    return item


def manifest(root):
    out = {}
    if not os.path.lexists(root):
        return None
    out["."] = entry(root)
    for folder, dirs, files in os.walk(root):  # os.walk does not follow links to folders
        for name in dirs + files:
            full = os.path.join(folder, name)
            out[os.path.relpath(full, root)] = entry(full)
    return out


if __name__ == "__main__":
    json.dump({root: manifest(root) for root in sys.argv[1:]}, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
