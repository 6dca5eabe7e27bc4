"""pytest fixtures shared by the serving gate's tests (import them into a test module or conftest)."""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

import pytest

from simserve import SimOrchestrator


@pytest.fixture
def open_tmp():
    """A temp dir the service user can reach: pytest's own tmp_path lies below a 0700 folder, which
    the gate rightly reports as not searchable by anyone but root."""
    path = tempfile.mkdtemp(prefix="gpuops-serving-")
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    for folder, _dirs, _files in os.walk(path):
        os.chmod(folder, 0o755)
    shutil.rmtree(path)


@pytest.fixture
def orchestrator():
    """orchestrator(**Behaviour fields) -> a started SimOrchestrator, stopped after the test."""
    servers = []

    def start(**behaviour):
        server = SimOrchestrator(**behaviour).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
