from __future__ import annotations

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _cleanup, _gpu_checks, _preflight
from ansible_collections.gpuops.preflight.plugins.module_utils._host_runner import Context


def gpu(index, bdf, health="ok", excluded=False, watchlisted=False, responding=True, temp=40.0):
    return {"index": index, "bdf": bdf, "health": health, "excluded": excluded, "watchlisted": watchlisted,
            "responding": responding, "temperature_edge_c": temp, "problems": []}


def finding(category, severity, bdf=None, line="amdgpu: something", count=1):
    return {"category": category, "severity": severity, "bdf": bdf, "summary": category, "message": line,
            "line": line, "count": count, "fix": "fix it"}


def evaluate(family, check, gpus=(), findings=(), unmatched=(), processes=(), kfd=True, log_failure=None, **params):
    """Evaluate one check of ``family`` on a GPU view, as the host runner would."""
    view = {"gpus": list(gpus), "findings": list(findings), "unmatched": list(unmatched), "log_failure": log_failure,
            "probe": {"tool": {"answered": True, "outcome": "answered", "reason": None},
                      "processes": list(processes), "kfd_available": kfd}}
    params.setdefault("vram_min_mb", 0)
    ctx = Context(family, None, params, [check], {})
    ctx.values["gpu_view"] = view
    spec = family.checks[check]
    return spec.evaluate(ctx, spec)


def test_one_gpu_host_takes_amdgpu_lines_but_never_bridge_or_job_lines():
    gpus = [gpu(0, "0000:0b:00.0")]
    found = _gpu_checks.attribute_host_findings([
        finding("smu_message_failed", "hard", line="kernel: amdgpu: [powerplay] failed send message"),
        finding("bus_lost", "hard", line="pcieport 0000:00:01.1: pciehp: Slot(0): Link Down"),
        finding("page_fault", "soft", line="Memory access fault by GPU node-1 (Agent handle: 0x1)"),
    ], gpus)
    assert [f["bdf"] for f in found] == ["0000:0b:00.0", None, None]
    assert _gpu_checks.attribute_host_findings([finding("smu_message_failed", "hard")], gpus * 2)[0]["bdf"] is None


def test_kernel_log_rules():
    gpus = [gpu(0, "0000:03:00.0"), gpu(1, "0000:06:00.0", watchlisted=True), gpu(2, "0000:09:00.0", health="degraded")]
    problems, text = evaluate(_preflight.FAMILY, "kernel_log", gpus, [
        finding("gpu_reset_failed", "hard", "0000:03:00.0"),            # hard on a GPU: fail
        finding("ring_timeout", "soft", "0000:03:00.0"),                # soft, not watchlisted: kept quiet
        finding("ring_timeout", "soft", "0000:06:00.0", count=3),       # soft, watchlisted: warn
        finding("gpu_hang", "hard", "0000:09:00.0"),                    # on a degraded GPU: under gpu_health
        finding("smu_no_response", "hard", None, line="amdgpu: SMU: response:0xFFFFFFFF"),  # names no GPU: fail
        finding("page_fault", "soft", None),                            # host-level soft: kept quiet
    ])
    assert [(p["status"], (p.get("gpu") or {}).get("index")) for p in problems] == [
        ("fail", 0), ("warn", 1), ("fail", None)]
    assert problems[1]["message"].startswith("watchlisted GPU 1 (0000:06:00.0): ring_timeout (x3)")
    assert "a GPU the log line does not name" in problems[2]["message"]
    assert text == "6 finding(s): 3 reported here, 1 under gpu_health, 2 soft on GPUs not watchlisted"


def test_gpu_count_with_excluded_and_unknown_names():
    gpus = [gpu(i, "0000:%02x:00.0" % i) for i in range(11)]
    gpus[10]["excluded"] = True
    gpus[4]["responding"] = False
    gpus[4]["health"] = "lost"
    problems, _text = evaluate(_preflight.FAMILY, "gpu_count", gpus, unmatched=[("excluded", ("index", 15))],
                               expected_gpu_count=12)
    messages = [p["message"] for p in problems]
    assert messages[0] == "excluded_gpus names GPU 15, which this host does not have"
    assert messages[1] == "expected 11 (12 minus 1 excluded) GPUs, found 9; not responding: GPU 4 (0000:04:00.0) lost"


def test_hot_gpu_and_vram_holders():
    gpus = [gpu(0, "0000:03:00.0", temp=91.0), gpu(1, "0000:06:00.0", temp=60.0)]
    problems, text = evaluate(_preflight.FAMILY, "gpu_temperature", gpus, gpu_temp_warn_c=85.0)
    assert [p["message"] for p in problems] == ["GPU 0 (0000:03:00.0) is at 91 C (edge), at or above 85 C before work starts"]
    assert text == "hottest GPU 91 C"
    procs = [{"pid": 7, "name": "python3", "bdf": "0000:06:00.0", "vram_bytes": 3 * 1024 ** 3},
             {"pid": 8, "name": "hipinfo", "bdf": "0000:06:00.0", "vram_bytes": 0}]
    problems, _text = evaluate(_preflight.FAMILY, "vram", gpus, processes=procs)
    assert [p["message"] for p in problems] == ["pid 7 (python3) holds 3.00 GiB of VRAM on GPU 1 (0000:06:00.0)"]
    assert evaluate(_preflight.FAMILY, "vram", gpus, kfd=False)[0][0]["status"] == "unknown"


@pytest.mark.parametrize("family,status,fix", [
    (_preflight.FAMILY, "fail", _preflight.CHECKS["gpu_health"].fix),
    (_cleanup.FAMILY, "warn", _cleanup.CHECKS["gpu_health"].fix),
])
def test_shared_gpu_health_speaks_with_the_family_s_own_spec(family, status, fix):
    problems, _text = evaluate(family, "gpu_health", [gpu(3, "0000:0b:00.0", health="lost")])
    assert [(p["status"], p["fix"]) for p in problems] == [(status, fix)]
    procs = [{"pid": 7, "name": "python3", "bdf": "0000:0b:00.0", "vram_bytes": 1024 ** 3}]
    vram = evaluate(family, "vram", [gpu(3, "0000:0b:00.0")], processes=procs)[0][0]
    assert "kill 7" in vram["fix"] and vram["fix"] == family.checks["vram"].fix.replace("<pid>", "7")


def test_a_kernel_log_that_could_not_be_read_leaves_smu_failures_unchecked():
    problems, _text = evaluate(_preflight.FAMILY, "gpu_health", [gpu(0, "0000:03:00.0")],
                               log_failure="journalctl exited 1: Permission denied")
    assert [(p["status"], p["message"]) for p in problems] == [
        ("unknown", "SMU failures not checked: could not read the kernel log (journalctl exited 1: Permission denied)")]


def test_after_a_step_every_new_finding_warns():
    problems, text = evaluate(_cleanup.FAMILY, "kernel_log", [gpu(0, "0000:03:00.0")], [
        finding("gpu_reset_failed", "hard", "0000:03:00.0", count=2), finding("page_fault", "soft", None)],
        kernel_log_since=1.0)
    assert [(p["status"], p["message"]) for p in problems] == [
        ("warn", "new since the step started on GPU 0 (0000:03:00.0): gpu_reset_failed (x2): amdgpu: something"),
        ("warn", "new since the step started on a GPU the log line does not name: page_fault: amdgpu: something")]
