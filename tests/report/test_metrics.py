"""_metrics: summaries as Prometheus text, checked by prometheus_client's parser and by promtool.

The summaries are real documents written by the playbooks on simulated rigs
(tests/report/fixtures/summaries, one per scenario), plus hand-made ones with hostile text.
"""

from __future__ import annotations

import copy
import glob
import json
import os
import pathlib
import re
import stat
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.gpuops.preflight.plugins.module_utils import _metrics
from ansible_collections.gpuops.preflight.plugins.module_utils._timeparse import parse_time
from report.tools import require_tool

SUMMARIES = pathlib.Path(__file__).resolve().parent / "fixtures" / "summaries"
FIXTURES = sorted(glob.glob(str(SUMMARIES / "*.json")))


def load(name):
    with open(SUMMARIES / ("%s.json" % name)) as handle:
        return json.load(handle)


def samples(text):
    """{(name, frozenset(labels)): value} from prometheus_client's parser; also checks the families are gauges."""
    out = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge", family.name
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in out, "series twice: %s" % (key,)
            out[key] = sample.value
    return out


def label(value):
    """How a label value reads back: None is the empty value."""
    return "" if value is None else str(value)


def value(parsed, name, **labels):
    return parsed[(name, frozenset((k, label(v)) for k, v in labels.items()))]


def series(parsed, name, **labels):
    """{labels dict as a frozenset: value} for the series of ``name`` that carry ``labels``."""
    want = set((k, label(v)) for k, v in labels.items())
    return dict((lab, val) for (n, lab), val in parsed.items() if n == name and want <= lab)


@pytest.mark.parametrize("path", FIXTURES, ids=os.path.basename)
def test_every_recorded_summary_parses_and_each_state_set_has_one_current_state(path):
    with open(path) as handle:
        summary = json.load(handle)
    parsed = samples(_metrics.render(summary))
    kind = summary["kind"]
    assert value(parsed, "gpuops_run_passed", kind=kind) == (1 if summary["passed"] else 0)
    if summary["step"] is None:  # training health, serving gate: not for a pipeline step
        assert not series(parsed, "gpuops_run_step")
    else:
        assert value(parsed, "gpuops_run_step", kind=kind) == summary["step"]
    assert value(parsed, "gpuops_run_hard_failures", kind=kind) == len(summary["hard_failures"])
    assert value(parsed, "gpuops_run_warnings", kind=kind) == len(summary["warnings"])
    assert value(parsed, "gpuops_run_duration_seconds", kind=kind) == pytest.approx(summary["duration_s"])
    assert value(parsed, "gpuops_run_finished_timestamp_seconds", kind=kind) == pytest.approx(
        parse_time(summary["finished_at"]))
    assert value(parsed, "gpuops_run_gpus", kind=kind) == summary["totals"]["gpus"]
    for host, entry in summary["hosts"].items():
        states = series(parsed, "gpuops_host_status", kind=kind, host=host)
        assert sorted(states.values()) == [0] * (len(states) - 1) + [1]
        assert value(parsed, "gpuops_host_status", kind=kind, host=host, status=entry["status"]) == 1
        for check, result in entry["checks"].items():
            assert value(parsed, "gpuops_check_status", kind=kind, host=host, check=check, status=result["status"]) == 1
            assert sum(series(parsed, "gpuops_check_status", kind=kind, host=host, check=check).values()) == 1
        for gpu in entry["gpus"]:
            labels = dict(kind=kind, host=host, index=gpu["index"], bdf=gpu["bdf"], model=gpu["model"])
            health = series(parsed, "gpuops_gpu_health", **labels)
            assert len(health) == 4 and sum(health.values()) == 1
            assert value(parsed, "gpuops_gpu_health", state=gpu["health"], **labels) == 1
            assert value(parsed, "gpuops_gpu_excluded", **labels) == (1 if gpu["excluded"] else 0)


def test_a_lost_gpu_on_an_excluded_slot_reads_as_lost_and_excluded():
    parsed = samples(_metrics.render(load("demo")))
    labels = dict(kind="preflight", host="rig-6600b", index=10, bdf="0000:21:00.0",
                  model="Navi 22 [Radeon RX 6700/6700 XT / 6800M]")
    assert value(parsed, "gpuops_gpu_health", state="lost", **labels) == 1
    assert value(parsed, "gpuops_gpu_health", state="ok", **labels) == 0
    assert value(parsed, "gpuops_gpu_excluded", **labels) == 1
    assert value(parsed, "gpuops_check_status", kind="preflight", host="rig-6600b", check="gpu_health",
                 status="fail") == 1
    assert value(parsed, "gpuops_host_status", kind="preflight", host="rig-6600b", status="warnings") == 1
    assert value(parsed, "gpuops_host_warnings", kind="preflight", host="rig-6600b") == 1
    assert value(parsed, "gpuops_host_hard_failures", kind="preflight", host="rig-6600b") == 0
    watch = dict(labels)
    watch.update(index=7, bdf="0000:18:00.0")
    assert value(parsed, "gpuops_gpu_watchlisted", **watch) == 1


def test_an_unreachable_host_has_a_failed_ssh_check_and_no_gpu_series():
    parsed = samples(_metrics.render(load("unreachable_host")))
    assert value(parsed, "gpuops_check_status", kind="preflight", host="rig-6600-gone", check="ssh", status="fail") == 1
    assert value(parsed, "gpuops_check_status", kind="preflight", host="rig-6600", check="ssh", status="ok") == 1
    assert value(parsed, "gpuops_check_status", kind="preflight", host="rig-6600", check="probe", status="ok") == 1
    assert not series(parsed, "gpuops_check_status", host="rig-6600-gone", check="probe")
    assert not series(parsed, "gpuops_gpu_health", host="rig-6600-gone")
    assert not series(parsed, "gpuops_host_gpus", host="rig-6600-gone")
    assert value(parsed, "gpuops_run_passed", kind="preflight") == 0
    assert value(parsed, "gpuops_run_hosts_reachable", kind="preflight") == 1


def test_a_skipped_controller_check_reads_as_skipped():
    summary = load("unreachable_host")
    summary["skipped_checks"] = ["ssh"]
    parsed = samples(_metrics.render(summary))
    assert value(parsed, "gpuops_check_status", kind="preflight", host="rig-6600-gone", check="ssh",
                 status="skipped") == 1


def test_the_cleanup_has_its_own_kind_label_file_name_and_freed_bytes():
    summary = load("dirty_after_step")
    parsed = samples(_metrics.render(summary))
    assert value(parsed, "gpuops_run_freed_bytes", kind="cleanup") == summary["totals"]["bytes_freed"] > 0
    assert value(parsed, "gpuops_check_status", kind="cleanup", host="rig-6600", check="clocks", status="skipped") == 1
    assert all(dict(labels)["kind"] == "cleanup" for _name, labels in parsed)
    assert _metrics.textfile_name("cleanup") == "gpuops_cleanup.prom"


def test_a_decimal_step_is_the_number():
    parsed = samples(_metrics.render(load("decimal_step")))
    assert value(parsed, "gpuops_run_step", kind="preflight") == 2.5


def written(summary, folder):
    """write_textfile's file, read back with prometheus_client's parser: its own name, only its kind's series,
    and no step series for a family without steps (never a made-up 0)."""
    kind = summary["kind"]
    path = _metrics.write_textfile(summary, str(folder))
    assert path == str(folder / ("gpuops_%s.prom" % kind))
    with open(path, encoding="utf-8") as handle:
        parsed = samples(handle.read())
    assert all(dict(labels)["kind"] == kind for _name, labels in parsed)
    assert not series(parsed, "gpuops_run_step")
    return parsed


def test_a_training_health_run_writes_its_own_file_with_its_gpus(tmp_path):
    """Issue 14: the training-health runs write gpuops_training_health.prom (training_health_textfile_dir)."""
    summary = load("training_health")
    parsed = written(summary, tmp_path)
    assert value(parsed, "gpuops_run_passed", kind="training_health") == 1
    assert value(parsed, "gpuops_run_gpus_usable", kind="training_health") == 2
    for host in ("train-full", "train-lora"):
        assert value(parsed, "gpuops_host_status", kind="training_health", host=host, status="passed") == 1
        assert value(parsed, "gpuops_host_gpus", kind="training_health", host=host) == 1
        assert value(parsed, "gpuops_gpu_health", kind="training_health", host=host, index=0, bdf="0000:41:00.0",
                     model=summary["hosts"][host]["gpus"][0]["model"], state="ok") == 1
        for check in summary["hosts"][host]["checks"]:
            assert sum(series(parsed, "gpuops_check_status", kind="training_health", host=host, check=check).values()) == 1
    assert value(parsed, "gpuops_check_status", kind="training_health", host="train-lora", check="checkpoint_resume",
                 status="ok") == 1


def test_a_serving_gate_run_writes_its_own_file_without_gpu_series(tmp_path):
    """Issue 14: the serving gate's runs write gpuops_serving_gate.prom (serving_gate_textfile_dir); no GPUs there."""
    summary = load("serving_gate")
    parsed = written(summary, tmp_path)
    assert not [name for name, _labels in parsed if name.startswith(("gpuops_gpu_", "gpuops_host_gpus"))]
    assert value(parsed, "gpuops_run_passed", kind="serving_gate") == 1
    assert value(parsed, "gpuops_run_gpus", kind="serving_gate") == 0
    assert value(parsed, "gpuops_check_status", kind="serving_gate", host="serve-2", check="bus", status="ok") == 1
    assert value(parsed, "gpuops_check_status", kind="serving_gate", host="serve-1", check="bus", status="skipped") == 1
    assert value(parsed, "gpuops_check_status", kind="serving_gate", host="serve-1", check="preload", status="ok") == 1
    # A blocked gate reads as blocked; an unknown result of a hard check (which blocks a gate) is 'unknown'.
    blocked = copy.deepcopy(summary)
    blocked["passed"], blocked["blocked"] = False, True
    blocked["hosts"]["serve-1"]["status"] = "blocked"
    blocked["hosts"]["serve-1"]["checks"]["preload"]["status"] = "unknown"
    parsed = samples(_metrics.render(blocked))
    assert value(parsed, "gpuops_run_passed", kind="serving_gate") == 0
    assert value(parsed, "gpuops_host_status", kind="serving_gate", host="serve-1", status="blocked") == 1
    assert value(parsed, "gpuops_check_status", kind="serving_gate", host="serve-1", check="preload",
                 status="unknown") == 1


def test_the_four_families_files_sit_side_by_side(tmp_path):
    for name in ("demo", "dirty_after_step", "training_health", "serving_gate"):
        _metrics.write_textfile(load(name), str(tmp_path))
    assert sorted(os.listdir(str(tmp_path))) == ["gpuops_cleanup.prom", "gpuops_preflight.prom",
                                                 "gpuops_serving_gate.prom", "gpuops_training_health.prom"]
    # node_exporter merges them: no series twice, and the same HELP for a family in every file
    texts = [path.read_text(encoding="utf-8") for path in sorted(tmp_path.iterdir())]
    keys = [set(samples(text)) for text in texts]
    assert sum(len(k) for k in keys) == len(set().union(*keys))
    helps = {}
    for line in "".join(texts).splitlines():
        if line.startswith("# HELP"):
            assert helps.setdefault(line.split()[2], line) == line


def test_help_and_type_lines_do_not_depend_on_the_run():
    """node_exporter merges every *.prom file: a family must have the same HELP in all of them."""
    def headers(text):
        return dict((line.split()[2], line) for line in text.splitlines() if line.startswith("# HELP"))

    first, second = headers(_metrics.render(load("demo"))), headers(_metrics.render(load("dirty_after_step")))
    common = set(first) & set(second)
    assert "gpuops_gpu_health" in common and "gpuops_check_status" in common
    assert all(first[name] == second[name] for name in common)


def test_names_follow_the_prometheus_conventions():
    for name in _metrics.FAMILIES:
        full = _metrics.PREFIX + name
        assert re.match(r"^gpuops_[a-z][a-z0-9_]*$", full), full
        assert not full.endswith("_total"), "%s: _total is for counters; these are gauges" % full
        if "duration" in name or "timestamp" in name:
            assert full.endswith("_seconds"), full
        if "bytes" in name:
            assert full.endswith("_bytes"), full
        labels = _metrics.FAMILIES[name][1]
        assert labels[0] == "kind" and all(re.match(r"^[a-z][a-z_]*$", label) for label in labels)


HOSTILE = 'rig "7"\\back\nslash é \ud800 </script>'


def hostile_summary():
    summary = copy.deepcopy(load("demo"))
    entry = summary["hosts"].pop("rig-6600b")
    entry["gpus"][10]["model"] = 'Navi "22"\\ {x="y"} \n next line'
    summary["hosts"][HOSTILE] = entry
    for item in summary["warnings"]:
        item["host"] = HOSTILE
    entry["checks"]['odd"check\n'] = {"status": "ok", "message": "", "elapsed_s": 0.5, "timed_out": False}
    return summary


def test_hostile_label_values_are_escaped_and_read_back_exactly():
    text = _metrics.render(hostile_summary())
    text.encode("utf-8")  # the lone surrogate became U+FFFD: valid UTF-8
    parsed = samples(text)
    host = HOSTILE.replace("\ud800", "\ufffd")
    assert value(parsed, "gpuops_host_status", kind="preflight", host=host, status="warnings") == 1
    assert value(parsed, "gpuops_host_warnings", kind="preflight", host=host) == 1
    assert value(parsed, "gpuops_gpu_health", kind="preflight", host=host, index=10, bdf="0000:21:00.0",
                 model='Navi "22"\\ {x="y"} \n next line', state="lost") == 1
    assert value(parsed, "gpuops_check_status", kind="preflight", host=host, check='odd"check\n', status="ok") == 1
    assert all(line.startswith(("#", "gpuops_")) for line in text.splitlines())


def test_odd_documents_give_valid_output_not_a_traceback():
    summary = {
        "kind": "preflight", "step": "3", "passed": None, "finished_at": "not a time", "duration_s": float("inf"),
        "hard_failures": [None, {"host": "a", "check": "ssh", "status": "bogus"}], "warnings": "nope",
        "totals": [], "hosts": {
            "a": {"status": 7, "checks": {"vram": {"status": None, "elapsed_s": "x"}, "caches": "odd"},
                  "gpus": [None, {"index": None, "bdf": None, "model": None, "health": None},
                           {"index": 1, "bdf": "0000:0b:00.0", "health": "on fire"},
                           {"index": 1, "bdf": "0000:0b:00.0", "health": "ok"}]},
            "b": None,
        },
    }
    parsed = samples(_metrics.render(summary))
    assert value(parsed, "gpuops_run_passed", kind="preflight") == 0  # a hard failure is listed
    assert not series(parsed, "gpuops_run_step")  # "3" is not a number of the document's type
    assert not series(parsed, "gpuops_run_finished_timestamp_seconds")
    assert value(parsed, "gpuops_run_duration_seconds", kind="preflight") == float("inf")
    # A health outside the known states is still one current state, never a silent 'ok'.
    gpu = dict(kind="preflight", host="a", index=1, bdf="0000:0b:00.0", model="")
    assert value(parsed, "gpuops_gpu_health", state="on fire", **gpu) == 1
    assert value(parsed, "gpuops_gpu_health", state="ok", **gpu) == 0
    assert value(parsed, "gpuops_gpu_health", kind="preflight", host="a", index="", bdf="", model="",
                 state="unknown") == 1
    assert value(parsed, "gpuops_check_status", kind="preflight", host="a", check="vram", status="unknown") == 1
    assert value(parsed, "gpuops_check_status", kind="preflight", host="a", check="caches", status="unknown") == 1


@pytest.mark.parametrize("bad", [None, [], "summary", {"kind": None}, {"kind": "../../etc/x"}, {"kind": "Pre flight"}])
def test_a_non_summary_is_refused_with_a_clear_error(bad):
    with pytest.raises(ValueError, match="summary"):
        _metrics.render(bad)


def test_write_textfile_replaces_the_whole_file_so_stale_series_vanish(tmp_path):
    summary = load("demo")
    path = _metrics.write_textfile(summary, str(tmp_path))
    assert path == str(tmp_path / "gpuops_preflight.prom")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    with open(path, encoding="utf-8") as handle:
        assert handle.read() == _metrics.render(summary)
    assert series(samples(open(path).read()), "gpuops_gpu_health", host="rig-6600b")
    gone = copy.deepcopy(summary)
    del gone["hosts"]["rig-6600b"]
    gone["warnings"] = []
    _metrics.write_textfile(gone, str(tmp_path))
    assert not series(samples(open(path).read()), "gpuops_gpu_health", host="rig-6600b")
    assert os.listdir(str(tmp_path)) == ["gpuops_preflight.prom"]  # no temporary file left


def test_each_family_writes_its_own_file(tmp_path):
    _metrics.write_textfile(load("demo"), str(tmp_path))
    _metrics.write_textfile(load("dirty_after_step"), str(tmp_path))
    assert sorted(os.listdir(str(tmp_path))) == ["gpuops_cleanup.prom", "gpuops_preflight.prom"]


def test_a_missing_folder_or_a_file_in_its_place_is_a_clear_error(tmp_path):
    with pytest.raises(OSError, match="no such folder"):
        _metrics.write_textfile(load("demo"), str(tmp_path / "nope"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match="not a folder"):
        _metrics.write_textfile(load("demo"), str(tmp_path / "file"))
    with pytest.raises(OSError, match="folder path is needed"):
        _metrics.write_textfile(load("demo"), "")


def test_a_failed_write_leaves_neither_a_partial_file_nor_a_temporary_one(tmp_path):
    (tmp_path / "gpuops_preflight.prom").mkdir()  # the rename cannot replace a folder
    with pytest.raises(OSError, match="cannot write .*gpuops_preflight.prom"):
        _metrics.write_textfile(load("demo"), str(tmp_path))
    assert os.listdir(str(tmp_path)) == ["gpuops_preflight.prom"]
    assert os.listdir(str(tmp_path / "gpuops_preflight.prom")) == []


@pytest.mark.parametrize("name", [os.path.basename(p)[:-5] for p in FIXTURES] + ["hostile"])
def test_promtool_check_metrics_accepts_the_output(name, tmp_path):
    promtool = require_tool("promtool")
    summary = hostile_summary() if name == "hostile" else load(name)
    text = _metrics.render(summary)
    proc = subprocess.run([promtool, "check", "metrics"], input=text.encode("utf-8"), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout.decode("utf-8", "replace")


def test_promtool_rejects_a_broken_exposition():
    """The promtool check above can fail: a duplicate TYPE line and a bad label are refused."""
    promtool = require_tool("promtool")
    text = _metrics.render(load("demo"))
    broken = text + "# TYPE gpuops_run_passed gauge\ngpuops_run_passed{kind=preflight} 1\n"
    proc = subprocess.run([promtool, "check", "metrics"], input=broken.encode("utf-8"), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=60, check=False)
    assert proc.returncode != 0


def test_a_count_past_the_float_range_is_inf_and_every_value_a_float_promtool_reads(tmp_path):
    """A 400-digit int printed as digits made promtool refuse the whole file (node_exporter drops it all)."""
    summary = load("demo")
    summary["totals"]["gpus"] = 10 ** 400
    summary["totals"]["usable_gpus"] = -(10 ** 400)
    summary["duration_s"] = 2 ** 60
    text = _metrics.render(summary)
    lines = dict(line.split("} ") for line in text.splitlines() if line.startswith("gpuops_run_"))
    assert lines['gpuops_run_gpus{kind="preflight"'] == "+Inf"
    assert lines['gpuops_run_gpus_usable{kind="preflight"'] == "-Inf"
    assert float(lines['gpuops_run_duration_seconds{kind="preflight"']) == 2.0 ** 60
    assert all(len(line.rsplit(" ", 1)[1]) < 30 for line in text.splitlines() if not line.startswith("#"))
    promtool = require_tool("promtool")
    proc = subprocess.run([promtool, "check", "metrics"], input=text.encode("utf-8"), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout.decode("utf-8", "replace")


@pytest.mark.parametrize("kind", ["preflight\n", "preflight\n\n"])
def test_a_kind_with_a_trailing_newline_is_refused(kind):
    with pytest.raises(ValueError, match="summary"):
        _metrics.render({"kind": kind, "hosts": {}})


def test_a_host_named_controller_does_not_get_the_runs_own_items():
    summary = load("demo")
    host = next(iter(summary["hosts"]))
    summary["hosts"]["controller"] = summary["hosts"].pop(host)
    summary["run_checks"] = {"run_budget": {"status": "fail", "message": "over budget"}}
    summary["hard_failures"] = [dict(i, host="controller") if i.get("host") == host else i
                                for i in summary["hard_failures"]]
    own = len([i for i in summary["hard_failures"] if i.get("host") == "controller"])
    summary["hard_failures"].append({"host": "controller", "address": None, "check": "run_budget", "status": "fail",
                                     "message": "the step's budget is spent", "fix": "x"})
    parsed = samples(_metrics.render(summary))
    assert value(parsed, "gpuops_host_hard_failures", kind="preflight", host="controller") == own
