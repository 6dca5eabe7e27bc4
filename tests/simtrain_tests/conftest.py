"""Fixtures for the simulated training hosts (tests/simtrain): a scratch folder, hosts destroyed (daemons stopped) after."""

from __future__ import annotations

import shutil

import pytest

from simtrain import host_set, scratch_dir


@pytest.fixture
def parent():
    path = scratch_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def hosts():
    """make(name=..., mode=..., scenario=...) -> a TrainHost; every daemon is stopped at the end."""
    with host_set() as made:
        yield made.make
