from __future__ import annotations

import json

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _gpus as gpus
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.sysfs_tree import add_gpu
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.test_gpus import FakeModule


@pytest.fixture
def rig(tmp_path):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:03:00.0", card=1)
    add_gpu(root, "0000:06:00.0", card=2)
    return root


@pytest.mark.parametrize("tools,answer", [
    # rocm-smi in JSON mode reaching no GPU (hand-made from rocm_smi.py; the warning is recorded in ROCm#1742/#6176)
    (("rocm-smi", "timeout"), (0, json.dumps({"system": {"Driver version": "6.8.5"}}) + "\n",
                               "WARNING: No AMD GPUs specified\n")),
    (("rocm-smi", "timeout"), (0, "", "WARNING: No AMD GPUs specified\nWARNING: No JSON data to report\n")),
    # amd-smi's words for it (recorded, ROCm#6176) with an empty list and exit 0 (hand-made)
    (("amd-smi", "timeout"), (0, "[]\n", "ERROR: Unable to detect any GPU devices, check amdgpu version and "
                                         "module status\n")),
])
def test_a_tool_that_reaches_no_gpu_leaves_the_gpus_unknown_not_degraded(rig, tools, answer):
    """In a container without /dev/kfd and /dev/dri (or with every GPU skipped by KFD, or partitions it does not
    enumerate) the tool sees none of the GPUs sysfs shows: it cannot tell, so they are unknown, never gone from it."""
    result = gpus.probe(FakeModule(tools=tools, answer=answer), sysfs_root=rig)
    assert result["tool"]["outcome"] == "none_seen"
    assert not result["tool"]["listed"] and not result["tool"]["answered"]
    for gpu in result["gpus"]:
        assert (gpu["health"], gpu["in_tool_output"], gpu["responding"]) == ("unknown", None, None)
        assert any("reaches no AMD GPU" in problem for problem in gpu["problems"])


def test_a_tool_that_reaches_no_gpu_where_sysfs_shows_none_is_unknown_never_passed(tmp_path):
    """A container that hides the GPUs from sysfs and from rocm-smi alike ('No AMD GPUs specified' on stderr, the driver
    version on stdout, hand-made from rocm_smi.py): gpu_health says their state is unknown, never '0 GPUs, fine'."""
    from ansible_collections.gpuops.preflight.plugins.module_utils import _preflight
    from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.test_gpu_checks import evaluate

    answer = (0, json.dumps({"system": {"Driver version": "6.8.5"}}) + "\n", "WARNING: No AMD GPUs specified\n")
    result = gpus.probe(FakeModule(answer=answer), sysfs_root=str(tmp_path), vendor="amd")
    assert result["gpus"] == [] and result["tool"]["outcome"] == "none_seen"
    problems, _text = evaluate(_preflight.FAMILY, "gpu_health", [], tool=result["tool"], gpu_tool="auto")
    assert [p["status"] for p in problems] == ["unknown"]
    assert "reaches no AMD GPU" in problems[0]["message"]


def test_recorded_amd_smi_that_crashed_leaves_the_gpus_unknown_and_names_the_exception(rig):
    """TheRock #2440 (recorded): the pip 'rocm' package's amd-smi wrapper dies with a Python 3.12 traceback (frames with
    '^^^^' markers) ending in FileNotFoundError; a traceback exits 1. The GPUs are unknown and the reason is the
    exception, not 'Traceback (most recent call last):'."""
    from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.fixtures import recording

    stderr = recording("amd-smi", "rocm7.x_pip_wrapper_traceback_filenotfound_therock-2440.txt")
    result = gpus.probe(FakeModule(tools=("amd-smi", "timeout"), answer=(1, "", stderr)), sysfs_root=rig)
    assert result["tool"]["outcome"] == "failed"
    assert result["tool"]["reason"] == "amd-smi exited 1: FileNotFoundError: [Errno 2] No such file or directory"
    assert set(g["health"] for g in result["gpus"]) == {"unknown"}
