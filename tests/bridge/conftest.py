"""Fixtures for the bridge tests: simulated clusters built for one test and destroyed after it."""

from __future__ import annotations

import pytest
from simrig import build_scenario, scratch_dir


@pytest.fixture
def scenario():
    """scenario(name, **rig_defaults) -> a built simrig Scenario, destroyed after the test."""
    built = []

    def make(name, **kw):
        sc = build_scenario(name, scratch_dir("bridge-%s-" % name), **kw)
        built.append(sc)
        return sc

    yield make
    for sc in built:
        sc.cluster.destroy()


def pytest_collection_modifyitems(items):
    # ansible-runner starts ansible-playbook with pexpect (forkpty); Python 3.12 warns about forkpty in a
    # process with threads (pytest-xdist's, or the concurrency test's). The child execs at once.
    for item in items:
        item.add_marker(pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of forkpty"))
