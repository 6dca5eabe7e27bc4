"""Run the real playbooks against simulated rigs (tests/simrig) over the local connection."""

from __future__ import annotations

import os

import pytest

import simrig
from e2e.runner import run_playbook


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
