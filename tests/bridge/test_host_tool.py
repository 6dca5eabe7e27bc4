"""The host tool's bundle scripts (roles/host_tool/files): the bundle is deterministic, and installing it is
safe: bad members refused, a bundle that does not run here never replaces the one in place, old versions go."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPTS = os.path.join(REPO, "roles", "host_tool", "files")


def sources(folder):
    """A frozen copy of what is bundled (the working tree may change under a test)."""
    root = folder / "collection"
    shutil.copytree(os.path.join(REPO, "plugins", "module_utils"), root / "plugins" / "module_utils",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(os.path.join(REPO, "src", "gpuops_preflight"), root / "src" / "gpuops_preflight",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(REPO, "galaxy.yml"), root / "galaxy.yml")
    return root


def build(root, out):
    done = subprocess.run([sys.executable, os.path.join(SCRIPTS, "make_bundle.py"), "--collection", str(root),
                           "--package", str(root / "src" / "gpuops_preflight"), "--out", str(out)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def install(bundle, root):
    return subprocess.run([sys.executable, os.path.join(SCRIPTS, "install_bundle.py"), "--bundle", str(bundle),
                           "--root", str(root)], capture_output=True, text=True, check=False)


def test_same_sources_same_bundle_and_its_contents(tmp_path):
    root = sources(tmp_path)
    first, second = build(root, tmp_path / "a.tar"), build(root, tmp_path / "b.tar")
    assert first["sha256"] == second["sha256"] and first["version"]
    with tarfile.open(tmp_path / "a.tar") as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("BUNDLE.json"))
    assert "gpuops_preflight/commands/training_watch.py" in names
    assert "ansible_collections/gpuops/preflight/plugins/module_utils/_training_progress.py" in names
    assert "ansible_collections/gpuops/preflight/plugins/__init__.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert manifest["files"] == sorted(n for n in names if n != "BUNDLE.json")
    (root / "src" / "gpuops_preflight" / "collection.py").write_text("# changed\n", encoding="utf-8")
    assert build(root, tmp_path / "c.tar")["sha256"] != first["sha256"]


def test_install_switches_versions_and_removes_the_old_one(tmp_path):
    root = sources(tmp_path)
    build(root, tmp_path / "one.tar")
    opt = tmp_path / "opt"
    done = install(tmp_path / "one.tar", opt)
    first = json.loads(done.stdout)
    assert first["changed"] and os.path.islink(opt / "lib")
    assert (opt / "lib" / "gpuops_preflight" / "__pycache__").is_dir()   # compiled for this interpreter
    (root / "src" / "gpuops_preflight" / "jobs.py").write_text(
        (root / "src" / "gpuops_preflight" / "jobs.py").read_text() + "\n# next version\n")
    build(root, tmp_path / "two.tar")
    second = json.loads(install(tmp_path / "two.tar", opt).stdout)
    assert second["changed"] and second["version"] != first["version"]
    assert os.listdir(opt / "versions") == [second["version"]]


def evil_bundle(path, name, data=b"x"):
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("name", ["../escape.py", "/etc/evil.py", "gpuops_preflight/../../x.py"])
def test_install_refuses_members_leaving_the_folder(tmp_path, name):
    evil_bundle(tmp_path / "evil.tar", name)
    done = install(tmp_path / "evil.tar", tmp_path / "opt")
    assert done.returncode == 1 and "refusing bundle member" in done.stderr
    assert not (tmp_path / "escape.py").exists() and not os.path.lexists(tmp_path / "opt" / "lib")


def test_a_bundle_that_does_not_run_here_never_replaces_the_one_in_place(tmp_path):
    root = sources(tmp_path)
    build(root, tmp_path / "good.tar")
    opt = tmp_path / "opt"
    good = json.loads(install(tmp_path / "good.tar", opt).stdout)
    (root / "src" / "gpuops_preflight" / "cli.py").write_text("def broken(:\n")
    build(root, tmp_path / "bad.tar")
    done = install(tmp_path / "bad.tar", opt)
    assert done.returncode == 1 and "install_bundle:" in done.stderr
    assert os.readlink(opt / "lib") == os.path.join("versions", good["version"])
    assert sorted(os.listdir(opt / "versions")) == [good["version"]]
