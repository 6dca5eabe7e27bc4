# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Install the host tool's bundle on a host: extract, compile, check, switch over atomically.

    install_bundle.py --bundle ROOT/bundle.tar --root ROOT

Run by the interpreter the host tool will use (the role's ``host_tool_python``). The bundle is
extracted to ``ROOT/versions/<sha256 prefix>/`` (refusing absolute names, ``..`` and anything but
plain files and folders), compiled for this interpreter (so each run of the tool imports bytecode),
and checked (``import gpuops_preflight.cli`` in a fresh interpreter) before ``ROOT/lib`` is switched
to it in one rename of a symlink: a command starting meanwhile sees the old version or the new one,
never half of one. Older versions are then removed. Prints {"changed", "version", "lib"} as JSON;
exit 1 with the reason when the bundle cannot be used here (the old version stays in place).
Standard library only; runs on Python 3.6 and later.
"""

import argparse
import compileall
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile


def fail(message):
    sys.stderr.write("install_bundle: %s\n" % message)
    sys.exit(1)


def digest(path):
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def extract(bundle, target):
    with tarfile.open(bundle) as tar:
        for member in tar.getmembers():
            name = member.name
            parts = name.split("/")
            if name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
                fail("refusing bundle member %r (absolute, '..', or not a plain file)" % name)
            path = os.path.join(target, *parts)
            if member.isdir():
                os.makedirs(path, 0o755, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
            source = tar.extractfile(member)
            with open(path, "wb") as handle:
                shutil.copyfileobj(source, handle)
            os.chmod(path, 0o644)
            os.utime(path, (member.mtime, member.mtime))
    for here, dirs, _names in os.walk(target):
        for name in dirs:
            os.chmod(os.path.join(here, name), 0o755)
    os.chmod(target, 0o755)


def check(target):
    """The bundle imports with this interpreter (a syntax it does not know fails here, not in a unit)."""
    code = ("import sys; sys.path.insert(0, %r); import os; os.environ['GPUOPS_PREFLIGHT_BUNDLED'] = '1'; "
            "import gpuops_preflight.cli; from gpuops_preflight import collection; "
            "collection.module_utils('_checks')" % target)
    done = subprocess.run([sys.executable, "-I", "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        fail("the bundle does not run on %s (Python %s): %s" % (
            sys.executable, sys.version.split()[0], lines[-1] if lines else "exit %d" % done.returncode))


def switch(root, version):
    """Point ROOT/lib at versions/<version> with one rename; True when it changed."""
    lib = os.path.join(root, "lib")
    wanted = os.path.join("versions", version)
    if os.path.islink(lib) and os.readlink(lib) == wanted:
        return False
    temp = os.path.join(root, ".lib.%d" % os.getpid())
    os.symlink(wanted, temp)
    if os.path.isdir(lib) and not os.path.islink(lib):
        shutil.rmtree(lib)   # a folder where the link goes (laid down by hand): replaced
    os.rename(temp, lib)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--root", required=True)
    args = parser.parse_args(argv)
    root = os.path.abspath(args.root)
    version = digest(args.bundle)[:16]   # the role templates the same name into its command (tasks/main.yml)
    versions = os.path.join(root, "versions")
    target = os.path.join(versions, version)
    changed = False
    os.makedirs(versions, 0o755, exist_ok=True)
    if not os.path.isfile(os.path.join(target, ".complete")):
        temp = os.path.join(versions, ".%s.%d" % (version, os.getpid()))
        shutil.rmtree(temp, ignore_errors=True)
        os.makedirs(temp, 0o755)
        try:
            extract(args.bundle, temp)
            if not compileall.compile_dir(temp, quiet=1):
                fail("compiling the bundle with %s failed" % sys.executable)
            check(temp)
            with open(os.path.join(temp, ".complete"), "w") as handle:
                handle.write("%s\n" % sys.version.split()[0])
            shutil.rmtree(target, ignore_errors=True)
            os.rename(temp, target)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
        changed = True
    changed = switch(root, version) or changed
    for name in os.listdir(versions):
        if name != version:
            shutil.rmtree(os.path.join(versions, name), ignore_errors=True)
            changed = True
    print(json.dumps({"changed": changed, "version": version, "lib": os.path.join(root, "lib")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
