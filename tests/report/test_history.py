"""gpuops_preflight.history and ``gpuops-preflight history``: counts, suggestions, filters, bad files, the index."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest

from gpuops_preflight import cli, history
from gpuops_preflight.commands import history as history_command
from report.series import HOUR, START, fixture, write_run, write_series

GPU4 = ("rig-6600", "0000:0f:00.0")
GPU10B = ("rig-6600b", "0000:21:00.0")


def gpu(doc, host, bdf):
    found = [g for g in doc["gpus"] if g["host"] == host and g["bdf"] == bdf]
    assert len(found) == 1, [(g["host"], g["bdf"]) for g in doc["gpus"]]
    return found[0]


def finding(entry, key):
    found = [f for f in entry["findings"] if f["key"] == key]
    assert found, [f["key"] for f in entry["findings"]]
    return found[0]


def analyse(folder, **kwargs):
    return history.analyse(history.scan(str(folder)), **kwargs)


def test_a_finding_that_came_back_is_counted_per_gpu_with_how_long_ago(smu_series):
    folder, epochs = smu_series
    now = epochs[-1] + 2 * HOUR
    doc = analyse(folder, now=now)
    assert doc["runs"] == 20
    smu = gpu(doc, *GPU4)
    assert smu["runs"] == 20 and smu["index"] == 4 and smu["health"] == "lost"
    assert smu["timeline"] == ["lost" if n % 4 == 3 else "ok" for n in range(20)]
    hung = finding(smu, "kernel:SMU not answering (0xFFFFFFFF)")
    assert (hung["runs"], hung["severity"], hung["distinct_events"]) == (5, "hard", 1)
    assert hung["first_seen"] == epochs[3] and hung["last_seen"] == epochs[19]
    assert finding(smu, "health:lost")["runs"] == 5
    lines = history.render_lines(doc)
    assert ("rig-6600 GPU 4 (0000:0f:00.0): SMU not answering (0xFFFFFFFF) in 5 of the last 20 preflights "
            "(1 distinct kernel-log event), last 2 h ago") in lines
    # Healthy GPUs have no finding and no line.
    assert gpu(doc, "rig-6600", "0000:03:00.0")["findings"] == []
    assert not [line for line in lines if line.startswith("rig-6600 GPU 0 ")]


def test_suggestions_follow_the_thresholds_and_the_inventory(smu_series):
    folder, _epochs = smu_series
    doc = analyse(folder)
    assert doc["suggestions"] == [{
        "add_to": "excluded_gpus", "host": "rig-6600", "gpu": 4, "threshold": 3,
        "reason": "hard findings in 5 of the last 20 preflights"}]
    # GPU 10 of rig-6600b is lost in every run, but it is already in excluded_gpus.
    lost = gpu(doc, *GPU10B)
    assert lost["excluded"] and lost["hard_runs"] == 15 and lost["suggestion"] is None
    line = [x for x in history.render_lines(doc) if "add to excluded_gpus" in x]
    assert line == ["  rig-6600 GPU 4: add to excluded_gpus (hard findings in 5 of the last 20 preflights; "
                    "threshold 3) -> host_vars/rig-6600: excluded_gpus: [4]"]
    # A higher exclusion threshold: the watchlist instead.
    doc = analyse(folder, exclude_after=6)
    assert [(s["add_to"], s["gpu"]) for s in doc["suggestions"]] == [("gpu_watchlist", 4)]
    # Higher than both: nothing.
    assert analyse(folder, exclude_after=6, watch_after=6)["suggestions"] == []


def test_a_watchlisted_gpu_is_not_suggested_for_the_watchlist_again(summary_dir):
    hot = fixture("hot_gpu")
    hot["hosts"]["rig-6600"]["gpus"][2]["watchlisted"] = True
    write_series(summary_dir, [hot, hot, "hot_gpu"])
    doc = analyse(summary_dir)
    assert finding(gpu(doc, "rig-6600", "0000:09:00.0"), "check:gpu_temperature")["severity"] == "soft"
    assert [(s["add_to"], s["gpu"]) for s in doc["suggestions"]] == [("gpu_watchlist", 2)]
    write_series(summary_dir, [hot, hot, hot], start=START + 10 * HOUR)
    assert analyse(summary_dir)["suggestions"] == []  # watchlisted in its newest run


def test_unknown_is_listed_but_never_leads_to_a_suggestion(summary_dir):
    write_series(summary_dir, ["empty_tool"] * 6)
    doc = analyse(summary_dir)
    entry = gpu(doc, "rig-6600", "0000:03:00.0")
    assert finding(entry, "health:unknown")["runs"] == 6
    assert finding(entry, "health:unknown")["severity"] == "unknown"
    assert doc["suggestions"] == []


def test_the_window_counts_only_each_hosts_last_runs(smu_series):
    folder, _epochs = smu_series
    doc = analyse(folder, window=4)
    smu = gpu(doc, *GPU4)
    assert smu["runs"] == 4 and finding(smu, "health:lost")["runs"] == 1
    assert len(doc["recent_runs"]) == 4
    assert doc["suggestions"] == []


def test_a_gpu_that_vanished_is_a_missing_finding(summary_dir):
    gone = fixture("demo")
    gone["hosts"]["rig-6600"]["gpus"] = [g for g in gone["hosts"]["rig-6600"]["gpus"] if g["index"] != 5]
    gone["hosts"]["rig-6600"]["gpu_count"] = 11
    write_series(summary_dir, ["demo", "demo", gone, gone, gone])
    entry = gpu(analyse(summary_dir), "rig-6600", "0000:12:00.0")
    assert entry["timeline"] == ["ok", "ok", "missing", "missing", "missing"]
    assert finding(entry, "missing")["runs"] == 3 and entry["health"] == "missing"
    assert entry["suggestion"]["add_to"] == "excluded_gpus"


def test_an_unreachable_host_does_not_count_as_a_run_of_its_gpus(summary_dir):
    gone = fixture("demo")
    gone["hosts"]["rig-6600b"] = copy.deepcopy(fixture("unreachable_host")["hosts"]["rig-6600-gone"])
    write_series(summary_dir, ["demo", gone, "demo"])
    entry = gpu(analyse(summary_dir), *GPU10B)
    assert entry["runs"] == 2 and entry["timeline"] == ["lost", "lost"]


def test_filters_host_gpu_and_since(smu_series):
    folder, epochs = smu_series
    assert {g["host"] for g in analyse(folder, host="rig-6600b")["gpus"]} == {"rig-6600b"}
    assert {g["host"] for g in analyse(folder, host="rig-66*")["gpus"]} == {"rig-6600", "rig-6600b"}
    assert analyse(folder, host="rig-7*")["gpus"] == []
    by_index = analyse(folder, gpu=history.parse_gpu("4"))
    assert {(g["host"], g["index"]) for g in by_index["gpus"]} == {("rig-6600", 4), ("rig-6600b", 4)}
    by_bdf = analyse(folder, gpu=history.parse_gpu("0000:0F:00.0"))
    assert [(g["host"], g["bdf"]) for g in by_bdf["gpus"]] == [("rig-6600", "0000:0f:00.0"), ("rig-6600b", "0000:0f:00.0")]
    recent = analyse(folder, since=epochs[16])
    assert recent["runs"] == 4 and finding(gpu(recent, *GPU4), "health:lost")["runs"] == 1
    assert history.parse_since("5h", epochs[-1]) == epochs[-1] - 5 * HOUR
    assert history.parse_since("2026-11-30T16:00:00Z", 0) == epochs[16]
    with pytest.raises(ValueError, match="span ago"):
        history.parse_since("yesterday", 0)
    with pytest.raises(ValueError, match="GPU index"):
        history.parse_gpu("card3")


def test_runs_of_another_kind_are_not_mixed_in(summary_dir):
    write_series(summary_dir, ["demo", "dirty_after_step", "demo"])
    assert analyse(summary_dir)["runs"] == 2
    cleanup = analyse(summary_dir, kind="cleanup")
    assert cleanup["runs"] == 1 and {g["host"] for g in cleanup["gpus"]} == {"rig-6600"}


def test_bad_files_are_skipped_and_counted_never_fatal(smu_series, monkeypatch):
    folder, _epochs = smu_series
    name = "summary_step3_20261129T%02d0000.000000Z.json"
    (folder / (name % 0)).write_text('{"schema": "gpuops.preflight.summary", "kind": "pre')  # truncated
    (folder / (name % 1)).write_bytes(b"\xff\xfe\x00not json at all")
    (folder / (name % 2)).write_text("[1, 2, 3]")
    (folder / (name % 3)).write_text(json.dumps({"schema": "something.else", "kind": "preflight", "hosts": {}}))
    (folder / (name % 4)).mkdir()
    os.mkfifo(str(folder / (name % 5)))  # reading it would block for ever
    (folder / (name % 6)).write_text(json.dumps(fixture("demo")) + " " * 4096)
    (folder / (name % 7)).write_text("[" * 100000)  # deeper than the JSON parser recurses
    os.symlink(str(folder / "nowhere"), str(folder / (name % 8)))
    (folder / "notes.txt").write_text("not named like a summary: ignored, not counted")
    monkeypatch.setattr(history, "MAX_SUMMARY_BYTES", 4096)
    found = history.scan(str(folder))
    assert dict(found.skipped) == {"not JSON": 2, "not a summary document": 2, "not a regular file": 2,
                                   "too large": 22, "unreadable": 1}
    monkeypatch.setattr(history, "MAX_SUMMARY_BYTES", 64 << 20)
    found = history.scan(str(folder), use_cache=False)
    assert dict(found.skipped) == {"not JSON": 3, "not a summary document": 2, "not a regular file": 2,
                                   "unreadable": 1}
    doc = history.analyse(found)
    assert doc["runs"] == 21 and doc["files"]["skipped"] == 8  # the padded demo is a run again
    assert "Skipped 8 file(s): 3 not JSON, 2 not a regular file, 2 not a summary document, 1 unreadable" \
        in history.render_lines(doc)


def test_a_second_scan_reads_only_new_or_changed_files(smu_series, private_cache):
    folder, epochs = smu_series
    first = history.scan(str(folder))
    assert (first.read, first.cached) == (20, 0)
    assert first.index_path.startswith(str(private_cache)) and os.path.isfile(first.index_path)
    second = history.scan(str(folder))
    assert (second.read, second.cached) == (0, 20)
    assert dict(history.analyse(second, now=0), files=None) == dict(history.analyse(first, now=0), files=None)
    write_run(folder, fixture("smu_failure"), epochs[-1] + HOUR)
    third = history.scan(str(folder))
    assert (third.read, third.cached) == (1, 20)
    newest = sorted(os.listdir(str(folder)))[-1]
    changed = fixture("demo")
    changed["finished_at"] = "2026-12-01T00:00:00+00:00"
    (folder / newest).write_text(json.dumps(changed))  # rewritten in place: size and mtime differ
    fourth = history.scan(str(folder))
    assert (fourth.read, fourth.cached) == (1, 20)
    os.remove(str(folder / newest))
    fifth = history.scan(str(folder))
    assert (fifth.read, fifth.cached, len(fifth.records)) == (0, 20, 20)
    with open(fifth.index_path) as handle:
        assert newest not in json.load(handle)["files"]


def test_a_corrupt_or_foreign_index_is_rebuilt(smu_series, tmp_path):
    folder, _epochs = smu_series
    cache = tmp_path / "index.json"
    cache.write_text("{not json")
    assert history.scan(str(folder), cache_path=str(cache)).read == 20
    assert history.scan(str(folder), cache_path=str(cache)).read == 0
    other = tmp_path / "other"
    write_series(other, ["demo"])
    assert history.scan(str(other), cache_path=str(cache)).read == 1  # the index names another folder
    bad = json.loads(cache.read_text())
    bad["files"] = dict((name, [1, 2, {"kind": "preflight"}]) for name in bad["files"])  # stale keys
    cache.write_text(json.dumps(bad))
    assert history.scan(str(other), cache_path=str(cache)).read == 1
    # Entries with the right keys but a shape analyse() cannot read are read again from the file.
    index = json.loads(cache.read_text())
    for name, (size, mtime, record) in list(index["files"].items()):
        index["files"][name] = [size, mtime, dict(record, hosts={"rig-6600": {"set": 99}})]
    cache.write_text(json.dumps(index))
    again = history.scan(str(other), cache_path=str(cache))
    assert again.read == 1 and history.analyse(again)["runs"] == 1
    index = json.loads(cache.read_text())
    for name, (size, mtime, record) in list(index["files"].items()):
        index["files"][name] = [size, mtime, "a reason nobody gives"]
    cache.write_text(json.dumps(index))
    assert history.scan(str(other), cache_path=str(cache)).read == 1


def test_an_index_that_cannot_be_written_is_a_note_not_an_error(smu_series, tmp_path):
    folder, _epochs = smu_series
    blocker = tmp_path / "file"
    blocker.write_text("x")
    found = history.scan(str(folder), cache_path=str(blocker / "index.json"))
    assert len(found.records) == 20
    assert found.notes and found.notes[0].startswith("history index not written to %s" % (blocker / "index.json"))


def test_a_missing_or_non_folder_summary_dir_is_a_clear_error(tmp_path):
    with pytest.raises(OSError, match="summary folder .*nope: no such folder"):
        history.scan(str(tmp_path / "nope"))
    (tmp_path / "f").write_text("")
    with pytest.raises(OSError, match="not a folder"):
        history.scan(str(tmp_path / "f"))


def test_thresholds_and_window_must_be_at_least_one(smu_series):
    folder, _epochs = smu_series
    for bad in (dict(window=0), dict(watch_after=-1), dict(exclude_after=True), dict(window="3")):
        with pytest.raises(ValueError, match="at least 1"):
            analyse(folder, **bad)


# ---------------------------------------------------------------- the command


def run_cli(argv, capsys, now=None):
    args = cli._parser().parse_args(argv)  # pylint: disable=protected-access
    code = args.handler(args, now=now) if now is not None else cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_prints_the_history_and_exits_0(smu_series, capsys):
    folder, epochs = smu_series
    code, out, err = run_cli(["history", "--summary-dir", str(folder), "--gpu", "4", "--host", "rig-6600"], capsys,
                             now=epochs[-1] + 2 * HOUR)
    assert code == 0 and err == ""
    assert "rig-6600 GPU 4 (0000:0f:00.0): SMU not answering (0xFFFFFFFF) in 5 of the last 20 preflights " \
           "(1 distinct kernel-log event), last 2 h ago" in out.splitlines()
    assert "add to excluded_gpus" in out


def test_the_command_prints_json(smu_series, capsys):
    folder, _epochs = smu_series
    code, out, _err = run_cli(["history", "--summary-dir", str(folder), "--json", "--runs", "8"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["schema"] == "gpuops.preflight.history" and doc["window"] == 8
    # Runs 12 to 19: GPU 4 failed in 2 of them (15, 19): the watchlist, not yet excluded_gpus.
    assert [(s["add_to"], s["gpu"]) for s in doc["suggestions"]] == [("gpu_watchlist", 4)]


def test_the_default_folder_is_the_preflights(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    write_series(tmp_path / ".local" / "state" / "gpuops-preflight", ["demo", "smu_failure"])
    code, out, _err = run_cli(["history"], capsys)
    assert code == 0 and out.startswith("Preflight history: 2 run(s) in %s" % (tmp_path / ".local/state/gpuops-preflight"))


def test_an_empty_folder_says_so(summary_dir, capsys):
    code, out, _err = run_cli(["history", "--summary-dir", str(summary_dir)], capsys)
    assert code == 0 and "No finding about any GPU: no preflight summary found." in out


@pytest.mark.parametrize("argv, message", [
    (["--summary-dir", "/nonexistent/gpuops"], "summary folder /nonexistent/gpuops: no such folder"),
    (["--since", "last tuesday"], "--since: invalid time 'last tuesday'"),
    (["--gpu", "card0"], "'card0' is not a GPU index"),
])
def test_bad_input_exits_2_with_a_clear_message(argv, message, summary_dir, capsys):
    argv = argv if "--summary-dir" in argv else argv + ["--summary-dir", str(summary_dir)]
    code, out, err = run_cli(["history"] + argv, capsys)
    assert code == 2 and out == "" and message in err


@pytest.mark.parametrize("option", ["--runs", "--watchlist-after", "--exclude-after"])
def test_a_count_below_one_is_refused_by_the_parser(option, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["history", option, "0"])
    assert exc.value.code == 2 and "at least 1" in capsys.readouterr().err


def test_the_command_module_is_a_subcommand():
    assert history_command.add_parser and "history" in cli._parser().format_help()  # pylint: disable=protected-access


def test_since_on_a_file_without_a_time_uses_the_name(summary_dir):
    document = fixture("demo")
    path = write_run(summary_dir, document, START)
    broken = json.loads(path.read_text())
    broken["finished_at"] = "garbage"
    path.write_text(json.dumps(broken))
    found = history.scan(str(summary_dir))
    assert found.records[0]["finished"] == START


# ---------------------------------------------------------------- issue 14's operator-view bugs


def decimal(name):
    """A recorded run moved to step 2.5 (decimal_step.json is a real step-2.5 preflight; the others are step 3)."""
    document = fixture(name)
    document["step"] = 2.5
    return document


def test_decimal_step_runs_are_read_with_their_step(summary_dir, capsys):
    """summary_step2.5_<stamp>.json was skipped by the file-name pattern, and its step dropped (bug 1)."""
    write_series(summary_dir, ["decimal_step", "demo", decimal("smu_failure"), decimal("smu_failure"),
                               decimal("smu_failure")])
    assert len([n for n in os.listdir(str(summary_dir)) if n.startswith("summary_step2.5_")]) == 4
    doc = analyse(summary_dir)
    assert doc["runs"] == 5 and [r["step"] for r in doc["recent_runs"]] == [2.5, 3, 2.5, 2.5, 2.5]
    smu = gpu(doc, *GPU4)
    assert smu["runs"] == 5 and finding(smu, "health:lost")["runs"] == 3
    assert [(s["add_to"], s["host"], s["gpu"]) for s in doc["suggestions"]] == [("excluded_gpus", "rig-6600", 4)]
    code, out, _err = run_cli(["history", "--summary-dir", str(summary_dir)], capsys)
    assert code == 0 and out.startswith("Preflight history: 5 run(s)")
    # The index keeps the decimal step: a second scan reads nothing and says the same.
    again = history.scan(str(summary_dir))
    assert again.read == 0 and [r["step"] for r in history.analyse(again)["recent_runs"]] == [2.5, 3, 2.5, 2.5, 2.5]


def test_an_index_of_the_old_version_is_rebuilt(smu_series, tmp_path):
    folder, _epochs = smu_series
    cache = tmp_path / "index.json"
    assert history.scan(str(folder), cache_path=str(cache)).read == 20
    index = json.loads(cache.read_text())
    index["version"] = 1  # kept whole steps only, and no two-vendor flag
    cache.write_text(json.dumps(index))
    assert history.scan(str(folder), cache_path=str(cache)).read == 20


def test_training_health_and_serving_gate_runs_are_found_by_their_familys_file_names(summary_dir, capsys):
    """training_health_<stamp>.json and serving_gate_<stamp>.json have no _step<N>: 0 runs were found (bug 2)."""
    sick = fixture("training_health")
    sick["hosts"]["train-lora"]["gpus"][0]["health"] = "degraded"
    write_series(summary_dir, ["training_health", "serving_gate", sick, "demo", sick, "serving_gate", sick])
    names = sorted(os.listdir(str(summary_dir)))
    assert len([n for n in names if n.startswith("training_health_") and "_step" not in n]) == 4
    assert len([n for n in names if n.startswith("serving_gate_") and "_step" not in n]) == 2
    health = analyse(summary_dir, kind="training_health")
    assert health["runs"] == 4 and [r["step"] for r in health["recent_runs"]] == [None] * 4
    assert {(g["host"], g["index"], g["bdf"]) for g in health["gpus"]} == {
        ("train-full", 0, "0000:41:00.0"), ("train-lora", 0, "0000:41:00.0")}
    lora = gpu(health, "train-lora", "0000:41:00.0")
    assert lora["timeline"] == ["ok", "degraded", "degraded", "degraded"]
    assert health["suggestions"] == [{"add_to": "excluded_gpus", "host": "train-lora", "gpu": 0, "threshold": 3,
                                      "reason": "hard findings in 3 of the last 4 training health runs"}]
    gate = analyse(summary_dir, kind="serving_gate")
    assert gate["runs"] == 2 and gate["gpus"] == [] and gate["suggestions"] == []
    code, out, err = run_cli(["history", "--summary-dir", str(summary_dir), "--kind", "training_health"], capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("Training health history: 4 run(s) in %s" % summary_dir)
    assert "train-lora GPU 0 (0000:41:00.0): degraded in 3 of the last 4 training health runs" in out
    code, out, err = run_cli(["history", "--summary-dir", str(summary_dir), "--kind", "serving_gate"], capsys)
    assert code == 0 and out.startswith("Serving gate history: 2 run(s)")
    assert out.splitlines()[1] == "No finding about any GPU in these runs."


def test_the_local_serving_gates_files_are_read_too(summary_dir):
    """The ExecStartPre gate writes local_gate_<instance>_<stamp>.json in its cache folder (docs/SUMMARY_SCHEMA.md);
    earlier gates wrote summary_<instance>_<stamp>.json, still read."""
    from gpuops_preflight import collection

    serving = collection.module_utils("_serving")
    for number, instance in enumerate(("crawler", "mcp", "step3", "old-gate")):
        doc = dict(fixture("serving_gate"), instance=instance)  # one run per instance, not copies of one
        if instance == "old-gate":
            with open(summary_dir / "summary_old-gate_20261129T000000.000000Z.json", "w") as handle:
                json.dump(doc, handle)
        else:
            serving.write_gate_summary(doc, str(summary_dir), instance, "20261130T0%d0000.000000Z" % number)
    doc = analyse(summary_dir, kind="serving_gate")
    assert doc["runs"] == 4 and analyse(summary_dir)["runs"] == 0  # which kind: the document's


FIND_IN_A_FRESH_PROCESS = """
import json, sys
from gpuops_preflight import history
found = history.scan(sys.argv[1], use_cache=False)
families = ("_preflight", "_cleanup", "_training_health", "_serving_gate")
print(json.dumps([sorted(r["kind"] for r in found.records), dict(found.skipped),
                  sorted(m for m in sys.modules if m.rsplit(".", 1)[-1] in families)]))
"""


def test_every_familys_files_are_found_without_importing_the_families(summary_dir):
    """Names are matched by _plan.ANY_SUMMARY (any lower-case prefix; the kind comes from the document): listing
    each family's file_prefix imported all four families on every history and report command."""
    write_series(summary_dir, ["demo", "dirty_after_step", "training_health", "serving_gate", "decimal_step"])
    (summary_dir / "other_20261201T000000.000000Z.json").write_text("{}")  # named like a summary, none inside
    done = subprocess.run([sys.executable, "-c", FIND_IN_A_FRESH_PROCESS, str(summary_dir)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    kinds, skipped, imported = json.loads(done.stdout)
    assert kinds == ["cleanup", "preflight", "preflight", "serving_gate", "training_health"]
    assert skipped == {"not a summary document": 1} and imported == []


def test_a_lone_surrogate_escape_in_a_summary_prints_as_u_fffd(summary_dir):
    """JSON may carry \\udcff in a host name or a message; the text printed it and died (UnicodeEncodeError)."""
    smu = fixture("smu_failure")
    smu["hosts"]["rig-\udcff"] = smu["hosts"].pop("rig-6600")
    write_series(summary_dir, [smu, smu])
    text = "\n".join(history.render_lines(analyse(summary_dir)))
    text.encode("utf-8")
    assert "rig-\ufffd GPU 4 (0000:0f:00.0): lost in 2 of the last 2 preflights" in text


def test_an_unknown_kind_is_refused_naming_the_known_ones(summary_dir, capsys):
    code, out, err = run_cli(["history", "--summary-dir", str(summary_dir), "--kind", "trainig_health"], capsys)
    assert code == 2 and out == ""
    assert "unknown kind 'trainig_health'; known: preflight, cleanup, training_health, serving_gate" in err


@pytest.mark.parametrize("command", [["history"], ["report", "--html", "page.html"]])
def test_an_unknown_kind_is_refused_before_the_folder_is_read(command, smu_series, private_cache, capsys, tmp_path,
                                                              monkeypatch):
    """A cold scan of thousands of files (and an index written) came before the kind was checked."""
    folder, _epochs = smu_series
    monkeypatch.chdir(str(tmp_path))
    code, out, err = run_cli(command + ["--summary-dir", str(folder), "--kind", "trainig_health"], capsys)
    assert code == 2 and "unknown kind 'trainig_health'" in err
    assert not private_cache.exists()  # no index: no file was read
    assert not (tmp_path / "page.html").exists()


def mixed_not_excluded():
    """rig-mixed (one AMD and two NVIDIA GPUs) before anyone excluded its lost NVIDIA GPU 1 at 0000:51:00.0."""
    document = fixture("mixed_vendors")
    for entry in document["hosts"]["rig-mixed"]["gpus"]:
        entry["excluded"] = False
    return document


def test_on_a_host_with_gpus_of_two_vendors_the_suggestion_names_the_pci_address(summary_dir):
    """Suggesting an index there gave a line the preflight refuses (both vendors number from 0) (bug 3)."""
    write_series(summary_dir, [mixed_not_excluded()] * 3)
    doc = analyse(summary_dir)
    by_host = dict((s["host"], s) for s in doc["suggestions"])
    assert by_host["rig-mixed"]["gpu"] == "0000:51:00.0" and by_host["rig-mixed"]["add_to"] == "excluded_gpus"
    # One vendor on rig-a5000 (NVIDIA GPU 1 with an application Xid): the index is right there.
    assert (by_host["rig-a5000"]["gpu"], by_host["rig-a5000"]["add_to"]) == (1, "gpu_watchlist")
    assert ('  rig-mixed GPU 0000:51:00.0: add to excluded_gpus (hard findings in 3 of the last 3 preflights; '
            'threshold 3) -> host_vars/rig-mixed: excluded_gpus: ["0000:51:00.0"]') in history.render_lines(doc)
    # The suggested name is one the preflight applies on that host; the index it suggested before is refused.
    from gpuops_preflight import collection

    pci, checks = collection.module_utils("_pci"), collection.module_utils("_gpu_checks")
    gpus = copy.deepcopy(mixed_not_excluded()["hosts"]["rig-mixed"]["gpus"])
    for name, refused in ((by_host["rig-mixed"]["gpu"], False), (1, True)):
        for entry in gpus:
            entry["excluded"] = False
        refs = [(ref, None) for ref in pci.parse_gpu_refs([name], "excluded_gpus")]
        _unmatched, _notes, refusals = checks.mark_policy(gpus, refs, [], mixed_vendors=True)
        assert bool(refusals) is refused
        assert [g["bdf"] for g in gpus if g["excluded"]] == ([] if refused else ["0000:51:00.0"])


def test_a_host_that_had_two_vendors_in_the_window_is_named_by_pci_address(summary_dir):
    """The NVIDIA cards missing from the newest run (their driver failed) do not make an index safe again."""
    only_amd = mixed_not_excluded()
    only_amd["hosts"]["rig-mixed"]["gpus"] = [g for g in only_amd["hosts"]["rig-mixed"]["gpus"] if g["vendor"] == "amd"]
    amd_lost = mixed_not_excluded()
    amd_lost["hosts"]["rig-mixed"]["gpus"][0]["health"] = "lost"
    newest = copy.deepcopy(only_amd)
    newest["hosts"]["rig-mixed"]["gpus"][0]["health"] = "lost"
    write_series(summary_dir, [amd_lost, amd_lost, only_amd, newest])
    suggestion = gpu(analyse(summary_dir), "rig-mixed", "0000:03:00.0")["suggestion"]
    assert suggestion["gpu"] == "0000:03:00.0"


ODD_FIELDS = {
    "gpus_int": lambda s: s["hosts"]["rig-6600"].__setitem__("gpus", 5),
    "bdf_list": lambda s: s["hosts"]["rig-6600"]["gpus"][0].__setitem__("bdf", ["0000:03:00.0"]),
    "host_int": lambda s: s["hosts"].__setitem__("rig-6600", 5),
    "hard_failures_int": lambda s: s.__setitem__("hard_failures", 5),
    "notes_int": lambda s: s.__setitem__("notes", 5),
    "finished_1e300": lambda s: s.__setitem__("finished_at", 1e300),
    "finished_1e17": lambda s: s.__setitem__("finished_at", "100000000000000000"),
}


@pytest.mark.parametrize("case", sorted(ODD_FIELDS))
def test_one_odd_field_in_the_newest_summary_never_stops_history_or_the_report(case, summary_dir, tmp_path, capsys):
    write_run(summary_dir, fixture("smu_failure"), START)
    epoch = START + HOUR
    odd = fixture("smu_failure")
    ODD_FIELDS[case](odd)
    (summary_dir / "summary_step3_20261201T214010.260337Z.json").write_text(json.dumps(odd))
    code, out, err = run_cli(["history", "--summary-dir", str(summary_dir), "--no-cache"], capsys, now=epoch)
    assert code == 0 and out.startswith("Preflight history:"), err
    page = tmp_path / "report.html"
    code, out, err = run_cli(["report", "--summary-dir", str(summary_dir), "--no-cache", "--html", str(page)],
                             capsys, now=epoch)
    assert code == 0 and page.exists(), err


def test_a_time_no_clock_can_show_reads_as_unknown():
    assert history.utc_text(1e300) == "?" and history.utc_text(float("nan")) == "?"
    assert history.utc_text(1e17, unknown="unknown time") == "unknown time"
    assert history.utc_text(0) == "1970-01-01 00:00 UTC"


def test_a_mistyped_field_is_read_as_absent_and_said_in_a_note():
    odd = fixture("smu_failure")
    odd["notes"], odd["hosts"]["rig-6600"]["gpus"][0]["bdf"] = 5, ["x"]
    doc = history.typed(odd)
    assert doc["notes"] == ["fields of the wrong type read as absent: hosts.rig-6600.gpus[].bdf, notes"]
    assert "bdf" not in doc["hosts"]["rig-6600"]["gpus"][0]


def test_a_newer_schema_version_is_skipped_and_counted(summary_dir):
    newer = fixture("smu_failure")
    newer["schema_version"] = 2
    (summary_dir / "summary_step3_20261201T214010.260337Z.json").write_text(json.dumps(newer))
    found = history.scan(str(summary_dir), use_cache=False)
    assert found.records == [] and dict(found.skipped) == {history.NEWER_SCHEMA: 1}
    assert history.latest_summary(found, "preflight") is None


def test_a_run_dated_in_the_future_is_left_out_and_said_so(summary_dir, tmp_path, capsys):
    """A controller clock set to 2036 once: that run must not stay the last verdict until 2036."""
    write_run(summary_dir, fixture("lost_gpu"), START)
    ahead = fixture("smu_failure")
    ahead["finished_at"] = "2036-02-07T06:28:16+00:00"
    (summary_dir / "summary_step3_20360207T062816.000000Z.json").write_text(json.dumps(ahead))
    now = START + HOUR
    found = history.scan(str(summary_dir), use_cache=False, now=now)
    assert [r["file"] for r in found.records] == [p.name for p in summary_dir.iterdir() if "2036" not in p.name]
    assert found.skipped == {history.FUTURE: 1}
    assert history.latest_summary(found, "preflight")["finished_at"] != ahead["finished_at"]
    code, out, _err = run_cli(["history", "--summary-dir", str(summary_dir), "--no-cache"], capsys, now=now)
    assert code == 0 and "Note: 1 run(s) finished more than 24 h from now" in out
    assert "summary_step3_20360207T062816.000000Z.json" in out
    # within the stated skew, it counts
    found = history.scan(str(summary_dir), use_cache=False, now=history.epoch(ahead["finished_at"]) - 3600)
    assert len(found.records) == 2


def test_copies_of_one_run_count_once(summary_dir):
    original = write_run(summary_dir, fixture("smu_failure"), START)
    for name in (original.name.replace(".json", "-1.json"), "summary_step3_20990101T000000.000000Z.json"):
        (summary_dir / name).write_bytes(original.read_bytes())
    assert len(list(summary_dir.iterdir())) == 3
    found = history.scan(str(summary_dir), use_cache=False)
    assert len(found.records) == 1 and found.skipped == {history.DUPLICATE: 2}
    doc = history.analyse(found)
    assert doc["runs"] == 1 and all(g["runs"] == 1 for g in doc["gpus"])
    # another run of the same step is another run
    write_run(summary_dir, fixture("smu_failure"), START + HOUR)
    assert history.analyse(history.scan(str(summary_dir), use_cache=False))["runs"] == 2
