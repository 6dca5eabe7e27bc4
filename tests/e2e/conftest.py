"""Run the real playbooks against simulated rigs (tests/simrig) over the local connection."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import pytest

import simrig

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.dirname(sys.executable)


class Run(object):
    def __init__(self, proc, summary, summary_dir):
        self.rc = proc.returncode
        self.output = proc.stdout
        self.summary = summary
        self.summary_dir = summary_dir

    def items(self, kind):
        return [(i["host"], i["check"], i["message"]) for i in self.summary[kind]]

    def host(self, name):
        return self.summary["hosts"][name]


def run_playbook(playbook, inventory, step, summary_dir, *extra):
    """ansible-playbook from the repository root (its ansible.cfg applies); returns a Run."""
    before = set(glob.glob(os.path.join(summary_dir, "*.json")))
    cmd = [os.path.join(BIN, "ansible-playbook"), "-i", inventory, os.path.join("playbooks", playbook),
           "-e", "step=%s" % step, "-e", "preflight_summary_dir=%s" % summary_dir]
    for item in extra:
        cmd += ["-e", item if isinstance(item, str) else json.dumps(item)]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=300, check=False)
    written = sorted(set(glob.glob(os.path.join(summary_dir, "*.json"))) - before)
    summary = None
    if written:
        assert len(written) == 1, written  # one summary file per run
        with open(written[0]) as handle:
            summary = json.load(handle)
    return Run(proc, summary, summary_dir)


@pytest.fixture
def workdir(tmp_path):
    return str(tmp_path)


@pytest.fixture
def cluster(workdir):
    """Build a cluster from {name: Rig.build kwargs}; destroyed after the test (tmpfs ramdisks too)."""
    built = []

    def make(spec, **kwargs):
        made = simrig.build_cluster(os.path.join(workdir, "cluster%d" % len(built)), spec, **kwargs)
        built.append(made)
        return made

    yield make
    for made in built:
        made.destroy()


@pytest.fixture
def preflight(workdir):
    def run(inventory, step=3, *extra):
        return run_playbook("preflight.yml", inventory, step, os.path.join(workdir, "summaries"), *extra)
    return run


@pytest.fixture
def cleanup(workdir):
    def run(inventory, step=3, *extra):
        return run_playbook("cleanup.yml", inventory, step, os.path.join(workdir, "summaries"), *extra)
    return run
