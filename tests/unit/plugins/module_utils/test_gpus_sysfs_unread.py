"""An unreadable /sys/bus/pci/devices (permission denied; missing in a container) is not "no GPUs": the probe says
why (``sysfs_unread``), and gpu_available / gpu_count are unknown rather than failing."""

from __future__ import annotations

import errno
import os

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _gpus as gpus
from ansible_collections.gpuops.preflight.plugins.module_utils import _preflight, _sysfs
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.sysfs_tree import add_gpu
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.test_gpu_checks import evaluate
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.test_gpus import FakeModule


@pytest.fixture
def bus_denied(tmp_path, monkeypatch):
    """A sysfs whose bus/pci/devices the probe may not list (a container, a hardened host): EACCES."""
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:03:00.0", card=1)
    denied = os.path.join(root, "bus", "pci", "devices")
    real = os.listdir

    def listdir(path="."):
        if os.fspath(path) == denied:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(os, "listdir", listdir)
    return root


def test_an_unreadable_pci_bus_is_said_not_taken_for_no_gpu(bus_denied):
    found, unread = _sysfs.enumerate_gpus_read(bus_denied)
    assert "cannot list" in unread and "EACCES" in unread
    assert [bdf for bdf, _dir, _card, _vendor in found] == ["0000:03:00.0"]  # still seen through its DRM card
    result = gpus.probe(FakeModule(tools=("timeout",)), sysfs_root=bus_denied)
    assert "EACCES" in result["sysfs_unread"]
    assert any("EACCES" in note for note in result["notes"])


def test_missing_pci_bus_names_the_reason(tmp_path):
    assert "ENOENT" in _sysfs.enumerate_gpus_read(str(tmp_path / "nowhere"))[1]


@pytest.mark.parametrize("check,params", [("gpu_available", {}), ("gpu_count", {"expected_gpu_count": 8})])
def test_gpu_checks_are_unknown_when_the_bus_could_not_be_read(check, params):
    unread = "cannot list /sys/bus/pci/devices: EACCES, permission denied"
    tool = {"answered": False, "outcome": "missing", "reason": "no GPU tool found", "name": "rocm-smi"}
    problems, text = evaluate(_preflight.FAMILY, check, [], tool=tool, probe={"sysfs_unread": unread}, **params)
    assert [p["status"] for p in problems] == ["unknown"]
    assert unread in problems[0]["message"] and unread in text


def test_gpu_count_with_an_unreadable_bus_still_counts_what_the_tool_lists():
    listed = [{"index": i, "bdf": "0000:0%d:00.0" % i, "health": "ok", "excluded": False, "responding": True,
               "problems": []} for i in range(2)]
    unread = {"sysfs_unread": "cannot list /sys/bus/pci/devices: EACCES"}
    assert evaluate(_preflight.FAMILY, "gpu_count", listed, probe=unread, expected_gpu_count=2)[0] == []
    assert evaluate(_preflight.FAMILY, "gpu_available", listed, probe=unread)[0] == []


def test_gpu_health_names_the_unread_bus_when_the_tool_is_silent_too():
    unread = "cannot list /sys/bus/pci/devices: EACCES, permission denied"
    tool = {"answered": False, "listed": False, "outcome": "failed", "reason": "rocm-smi exited 1: boom", "name": "rocm-smi"}
    problems, _text = evaluate(_preflight.FAMILY, "gpu_health", [], tool=tool, probe={"sysfs_unread": unread})
    assert [p["status"] for p in problems] == ["unknown"]
    assert problems[0]["message"] == "GPU state unknown: rocm-smi exited 1: boom; sysfs could not be read (%s)" % unread
