from __future__ import annotations

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks as checks
from ansible_collections.gpuops.preflight.plugins.module_utils import _pci as pci
from ansible_collections.gpuops.preflight.plugins.module_utils import _cleanup, _preflight


def test_result_status_is_worst_problem():
    res = checks.result("gpu_health", [
        checks.problem("gpu_health", checks.WARN, "warm"),
        checks.problem("gpu_health", checks.FAIL, "lost"),
    ])
    assert res["status"] == checks.FAIL
    assert res["message"] == "warm; lost"
    assert checks.result("vram")["status"] == checks.OK


def test_problem_rejects_ok_status():
    with pytest.raises(ValueError):
        checks.problem("vram", checks.OK, "fine")


def test_validate_names_rejects_unknown_and_lists_valid():
    with pytest.raises(ValueError) as err:
        checks.validate_names(["gpu_health", "gpu_helth"], _preflight.CHECKS, "preflight_skip")
    assert "gpu_helth" in str(err.value)
    assert "gpu_health, gpu_count" in str(err.value) or "gpu_health" in str(err.value).split("valid checks are:")[1]
    assert checks.validate_names("kernel_log, VRAM", _preflight.CHECKS, "x") == ["kernel_log", "vram"]


@pytest.mark.parametrize("item,downgrade,expected", [
    ({"check": "gpu_health", "status": "fail", "message": "m"}, (), checks.BLOCK),
    ({"check": "gpu_health", "status": "fail", "message": "m"}, ("gpu_health",), checks.WARNING),
    ({"check": "gpu_health", "status": "unknown", "message": "m"}, (), checks.WARNING),
    ({"check": "gpu_count", "status": "fail", "message": "m"}, (), checks.WARNING),
    ({"check": "gpu_health", "status": "fail", "message": "m",
      "gpu": {"index": 10, "bdf": "0000:22:00.0", "excluded": True}}, (), checks.WARNING),
])
def test_judge(item, downgrade, expected):
    verdict, message = checks.judge(item, _preflight.FAMILY, downgrade)
    assert verdict == expected
    if item.get("gpu"):
        assert "10 (0000:22:00.0) is in excluded_gpus" in message
    if downgrade:
        assert "downgraded" in message


def test_cleanup_never_blocks():
    item = {"check": "gpu_health", "status": "fail", "message": "m"}
    assert checks.judge(item, _cleanup.FAMILY)[0] == checks.WARNING


def test_a_gate_family_blocks_on_what_a_hard_check_could_not_verify():
    base = _preflight.FAMILY
    gate = checks.Family("gate", "Gate", base.checks, {}, "node_gate", "gpuops_gate", "gate", "gate",
                         unknown_blocks=True)
    unknown = {"check": "gpu_health", "status": "unknown", "message": "m"}
    assert checks.judge(unknown, base)[0] == checks.WARNING
    assert checks.judge(unknown, gate)[0] == checks.BLOCK
    assert checks.judge(unknown, gate, ("gpu_health",)) == (checks.WARNING, "m (downgraded by gate_downgrade)")
    assert checks.judge({"check": "gpu_count", "status": "unknown", "message": "m"}, gate)[0] == checks.WARNING


@pytest.mark.parametrize("raw,expected", [
    ("0000:0B:00.0", "0000:0b:00.0"), ("0b:00.0", "0000:0b:00.0"), ("0:b:0.0", "0000:0b:00.0"),
    ("card0", None), ("", None), (None, None), ("0000:0b:00.8", None),
])
def test_normalize_bdf(raw, expected):
    assert pci.normalize_bdf(raw) == expected


def test_location_id():
    assert pci.bdf_from_location_id(0x0B00) == "0000:0b:00.0"
    assert pci.bdf_from_location_id((0x22 << 8) | (1 << 3) | 1, domain=1) == "0001:22:01.1"


@pytest.mark.parametrize("raw,expected", [
    (3, ("index", 3)), ("10", ("index", 10)), ("0000:22:00.0", ("bdf", "0000:22:00.0")),
    ({"gpu": 10, "reason": "SMU"}, ("index", 10)),
])
def test_parse_gpu_refs(raw, expected):
    assert pci.parse_gpu_refs([raw], "excluded_gpus") == [expected]


@pytest.mark.parametrize("raw", [-1, "gpu3", True, 3.5, {"reason": "x"}])
def test_parse_gpu_refs_names_bad_entry(raw):
    with pytest.raises(ValueError) as err:
        pci.parse_gpu_refs([raw], "excluded_gpus")
    assert "excluded_gpus" in str(err.value)
