from __future__ import annotations

from ansible_collections.gpuops.preflight.plugins.module_utils import _preflight as pre


def gpu(index, bdf, health="ok", excluded=False, watchlisted=False, responding=True, temp=40.0):
    return {"index": index, "bdf": bdf, "health": health, "excluded": excluded, "watchlisted": watchlisted,
            "responding": responding, "temperature_edge_c": temp, "problems": []}


def finding(category, severity, bdf=None, line="amdgpu: something", count=1):
    return {"category": category, "severity": severity, "bdf": bdf, "summary": category, "message": line,
            "line": line, "count": count, "fix": "fix it"}


def test_one_gpu_host_takes_amdgpu_lines_but_never_bridge_or_job_lines():
    gpus = [gpu(0, "0000:0b:00.0")]
    found = pre.attribute_host_findings([
        finding("smu_message_failed", "hard", line="kernel: amdgpu: [powerplay] failed send message"),
        finding("bus_lost", "hard", line="pcieport 0000:00:01.1: pciehp: Slot(0): Link Down"),
        finding("page_fault", "soft", line="Memory access fault by GPU node-1 (Agent handle: 0x1)"),
    ], gpus)
    assert [f["bdf"] for f in found] == ["0000:0b:00.0", None, None]
    assert pre.attribute_host_findings([finding("smu_message_failed", "hard")], gpus * 2)[0]["bdf"] is None


def test_kernel_log_rules():
    gpus = [gpu(0, "0000:03:00.0"), gpu(1, "0000:06:00.0", watchlisted=True), gpu(2, "0000:09:00.0", health="degraded")]
    problems, text = pre.check_kernel_log([
        finding("gpu_reset_failed", "hard", "0000:03:00.0"),            # hard on a GPU: fail
        finding("ring_timeout", "soft", "0000:03:00.0"),                # soft, not watchlisted: kept quiet
        finding("ring_timeout", "soft", "0000:06:00.0", count=3),       # soft, watchlisted: warn
        finding("gpu_hang", "hard", "0000:09:00.0"),                    # on a degraded GPU: under gpu_health
        finding("smu_no_response", "hard", None, line="amdgpu: SMU: response:0xFFFFFFFF"),  # names no GPU: fail
        finding("page_fault", "soft", None),                            # host-level soft: kept quiet
    ], gpus)
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
    problems, _text = pre.check_gpu_count(gpus, 12, [("excluded", ("index", 15))])
    messages = [p["message"] for p in problems]
    assert messages[0] == "excluded_gpus names GPU 15, which this host does not have"
    assert messages[1] == "expected 11 (12 minus 1 excluded) GPUs, found 9; not responding: GPU 4 (0000:04:00.0) lost"


def test_hot_gpu_and_vram_holders():
    gpus = [gpu(0, "0000:03:00.0", temp=91.0), gpu(1, "0000:06:00.0", temp=60.0)]
    problems, text = pre.check_temperature(gpus, 85.0)
    assert [p["message"] for p in problems] == ["GPU 0 (0000:03:00.0) is at 91 C (edge), at or above 85 C before work starts"]
    assert text == "hottest GPU 91 C"
    procs = [{"pid": 7, "name": "python3", "bdf": "0000:06:00.0", "vram_bytes": 3 * 1024 ** 3},
             {"pid": 8, "name": "hipinfo", "bdf": "0000:06:00.0", "vram_bytes": 0}]
    problems, _text = pre.check_vram(procs, gpus, 0, True)
    assert [p["message"] for p in problems] == ["pid 7 (python3) holds 3.00 GiB of VRAM on GPU 1 (0000:06:00.0)"]
    assert pre.check_vram([], gpus, 0, False)[0][0]["status"] == "unknown"


def test_kernel_log_outcome_reports_why_the_log_could_not_be_read():
    from ansible_collections.gpuops.preflight.plugins.module_utils import _deadline

    class Read(object):
        def __init__(self, error=None, timed_out=False):
            self.source, self.error, self.timed_out, self.lines, self.elapsed = "file", error, timed_out, ["l"], 0.1

    good = _deadline.run_all({"k": (lambda: (Read(), [finding("gpu_hang", "hard")]), 5)})["k"]
    findings, info, failure = pre.kernel_log_outcome(good, "file", None)
    assert failure is None and len(findings) == 1 and info["read"] is True and info["lines_scanned"] == 1
    bad = _deadline.run_all({"k": (lambda: (Read(error="cannot read /x: No such file or directory"), []), 5)})["k"]
    assert pre.kernel_log_outcome(bad, "file", None)[2] == "cannot read /x: No such file or directory"
    stuck = _deadline.run_all({"k": (lambda: 1 / 0, 5)})["k"]
    assert pre.kernel_log_outcome(stuck, "auto", None)[2].startswith("failed: ZeroDivisionError")
    assert pre.kernel_log_outcome(None, "none", None) == ([], {"source": "none", "read": False, "since": None}, None)
