"""Fixtures for the simulated-rig harness's own tests (tests/simrig)."""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess

import pytest

from simrig import Rig, scratch_dir


@pytest.fixture
def work():
    """A scratch folder (on /dev/shm when it has room: rigs are many small files), removed after."""
    path = scratch_dir("simrig-test-")
    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def module_work():
    path = scratch_dir("simrig-test-")
    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def rig(work):
    """A fresh 4-GPU rig from the default recording (mutable per test)."""
    return Rig.build(str(work), "rig-t", gpus=4)


@pytest.fixture(scope="module")
def rig12(module_work):
    """A 12-GPU rig with a BMC as card0, read-only for the tests that use it."""
    return Rig.build(str(module_work), "rig-6600", gpus=12, bmc=True)


@pytest.fixture
def spawn():
    """Start commands in their own process group; whatever is left is SIGKILLed at the end."""
    started = []

    def start(argv, **kw):
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, **kw)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
