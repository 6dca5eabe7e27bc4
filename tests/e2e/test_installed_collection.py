"""The collection as a user gets it: ansible-galaxy build, install, run by FQCN, outside the clone."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import tarfile

from e2e.runner import BIN, REPO

RIG = "rig-6600"


def sh(cmd, cwd, env=None):
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=300, check=False)
    return proc.returncode, proc.stdout


def test_build_install_and_run_by_fqcn(tmp_path, cluster):
    build = tmp_path / "build"
    rc, out = sh([os.path.join(BIN, "ansible-galaxy"), "collection", "build", REPO, "--output-path", str(build)],
                 cwd=str(tmp_path))
    assert rc == 0, out
    [tarball] = glob.glob(str(build / "gpuops-preflight-*.tar.gz"))
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "playbooks/preflight.yml" in names and "roles/preflight/tasks/main.yml" in names
    local_state = (".venv", ".collections", ".ansible", ".git", "work", "tests/output")
    assert not [n for n in names if n.split("/")[0] in local_state or n.startswith("tests/output")]
    # the Python package ships (the host tool role lays it down on hosts), its build leftovers do not
    assert "src/gpuops_preflight/collection.py" in names
    assert not [n for n in names if "__pycache__" in n or ".egg-info" in n]

    collections = tmp_path / "collections"
    rc, out = sh([os.path.join(BIN, "ansible-galaxy"), "collection", "install", tarball, "-p", str(collections)],
                 cwd=str(tmp_path))
    assert rc == 0, out

    made = cluster({RIG: {}})
    inventory = made.write_inventory()
    summaries = tmp_path / "summaries"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_CONFIG", None)
    outside = tmp_path / "elsewhere"  # no ansible.cfg here: the installed collection alone
    outside.mkdir()
    rc, out = sh([os.path.join(BIN, "ansible-playbook"), "gpuops.preflight.preflight", "-i", inventory,
                  "-e", "step=3", "-e", "preflight_summary_dir=%s" % summaries], cwd=str(outside), env=env)
    assert rc == 0, out
    [summary_file] = glob.glob(str(summaries / "summary_step3_*.json"))
    with open(summary_file) as handle:
        summary = json.load(handle)
    assert summary["passed"] is True and summary["hosts"][RIG]["usable_gpus"] == list(range(12))
    # without the summary callback enabled, the verdict still shows (debug task)
    assert "Preflight PASSED for step 3" in out
