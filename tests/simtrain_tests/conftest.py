"""Fixtures for the simulated training hosts (tests/simtrain): a scratch folder, hosts destroyed (daemons stopped) after."""

from __future__ import annotations

import shutil

import pytest

from simtrain import TrainHost, build_scenario, scratch_dir


@pytest.fixture
def parent():
    path = scratch_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def hosts(parent):
    """make(name=..., mode=..., scenario=...) -> a TrainHost; every daemon is stopped at the end."""
    made = []

    def make(name="host", mode="full", scenario=None, **kw):
        host = build_scenario(scenario, parent) if scenario else TrainHost.build(parent, name, mode=mode, **kw)
        made.append(host)
        return host

    yield make
    for host in made:
        host.destroy()
