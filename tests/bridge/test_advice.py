"""gpuops_preflight.advice and ``gpuops-preflight advise``: the public interface of the run advice."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from bridge.helpers import BIN
from gpuops_preflight import advice, cli

PROVEN = dict(trials=100, completed_trials=100, max_seeds=100000, survivors=98172, duration_s=1260,
              study="window_opt_1768039200", time="2026-01-10T10:00:00Z")
BRUTE = dict(trials=50, completed_trials=50, max_seeds=10000000, survivors=0, duration_s=7200,
             study="window_opt_1768125600", time="2026-01-11T10:00:00Z")


@pytest.fixture
def history(tmp_path):
    path = str(tmp_path / "runs" / "step1.jsonl")
    advice.record_run(path=path, **PROVEN)
    advice.record_run(path=path, **BRUTE)
    return path


def test_it_is_the_collections_implementation():
    assert advice._advice.__name__ == "ansible_collections.gpuops.preflight.plugins.module_utils._advice"
    assert advice.HistoryError is advice._advice.HistoryError


def test_recorded_runs_read_back_with_every_documented_key(history):
    got = advice.read_history(history)
    assert got["exists"] and got["corrupt"] == 0
    assert [r["study"] for r in got["records"]] == [PROVEN["study"], BRUTE["study"]]
    assert sorted(got["records"][0]) == sorted(advice.KEYS)
    assert got["records"][1]["time"] == "2026-01-11T10:00:00+00:00" and got["records"][1]["outcome"] == "completed"
    with open(history, encoding="utf-8") as handle:
        assert [json.loads(line)["survivors"] for line in handle] == [98172, 0]


def test_suggestion_from_the_file_and_from_a_list_agree(history):
    from_file = advice.suggest_parameters(history)
    from_list = advice.suggest_parameters(advice.read_history(history)["records"])
    assert (from_file["trials"], from_file["max_seeds"], from_file["rule"]) == (100, 100000, "no_survivors")
    assert from_file == from_list
    assert from_file["based_on"][0]["study"] == BRUTE["study"]


def test_the_history_comes_from_the_environment_when_not_given(history, monkeypatch):
    monkeypatch.setenv(advice.RUN_HISTORY_ENV, history)
    assert advice.suggest_parameters()["rule"] == "no_survivors"
    advice.record_run(**{**PROVEN, "time": "2026-01-12T10:00:00Z"})
    assert advice.suggest_parameters()["rule"] == "enough_survivors"
    assert len(advice.read_history()["records"]) == 3


def test_no_history_anywhere_is_a_clear_error(monkeypatch):
    monkeypatch.delenv(advice.RUN_HISTORY_ENV, raising=False)
    with pytest.raises(ValueError, match="no run history file: pass one .* or set \\$GPUOPS_PREFLIGHT_RUN_HISTORY"):
        advice.suggest_parameters()


def test_a_run_in_progress_and_its_final_line(tmp_path):
    path = str(tmp_path / "h.jsonl")
    advice.record_run(path=path, **BRUTE)
    advice.record_run(path=path, trials=100, completed_trials=20, max_seeds=100000, survivors=None, outcome="running")
    got = advice.suggest_parameters(path)
    assert got["rule"] == "no_survivors" and "still in progress" in got["reason"]
    with pytest.raises(ValueError, match="survivors must be a whole number >= 0 for a finished run"):
        advice.record_run(path=path, trials=100, completed_trials=20, max_seeds=100000, survivors=None)


def test_schema_and_proposal_for_the_decision_layer(history):
    schema = advice.parameter_schema(bounds={"trials": (20, 300)})
    assert schema["properties"]["trials"]["maximum"] == 300
    bad = advice.validate_proposal({"trials": 50, "seed_count": 10000000}, history)
    assert bad["valid"] and "repeats a failed pattern" in bad["warnings"][0]
    out = advice.validate_proposal({"trials": 700, "max_seeds": 100000}, history, bounds={"trials": (20, 300)})
    assert not out["valid"] and out["clamped"] == {"trials": 300, "max_seeds": 100000}
    assert out["reasons"] == ["trials 700 is above the highest allowed 300"]


def test_mappings_that_are_not_dicts_are_accepted(history):
    from types import MappingProxyType
    got = advice.validate_proposal(MappingProxyType({"trials": 100, "max_seeds": 100000}), history,
                                   bounds=MappingProxyType({"trials": (10, 500)}))
    assert got["valid"] and got["warnings"] == []


# ---------------------------------------------------------------- the CLI

def test_advise_prints_the_suggestion_and_what_it_rests_on(history, capsys):
    assert cli.main(["advise", "--history", history]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "suggested: 100 trials x 100,000 seeds (rule no_survivors)"
    assert out[1].startswith("reason: 100 trials x 100,000 seeds: the last finished run")
    assert out[2] == "based on:"
    assert out[3] == ("  2026-01-11T10:00:00+00:00 window_opt_1768125600: 50 trials x 10,000,000 seeds, 50 completed, "
                      "0 survivors (completed)")
    assert out[4] == "history: %s (2 run(s))" % history


def test_advise_json(history, capsys):
    with open(history, "a", encoding="utf-8") as handle:
        handle.write("{broken\n")
    assert cli.main(["advise", "--history", history, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert (got["trials"], got["max_seeds"], got["rule"]) == (100, 100000, "no_survivors")
    assert got["history"] == {"path": history, "exists": True, "runs": 2, "corrupt": 1, "corrupt_lines": [3],
                              "truncated": False}


def test_advise_without_any_history_yet_gives_the_default(tmp_path, capsys):
    assert cli.main(["advise", "--history", str(tmp_path / "none.jsonl")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("suggested: 50 trials x 100,000 seeds (rule default)")
    assert "(no runs recorded yet)" in out


def test_advise_schema(capsys):
    assert cli.main(["advise", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["required"] == ["trials", "max_seeds"]


@pytest.mark.parametrize("make,words", [
    (str, "is a directory, not a regular file"),
    (lambda p: (os.mkfifo(str(p / "fifo")), str(p / "fifo"))[1], "is a fifo, not a regular file"),
])
def test_advise_bad_history_exits_2_with_a_message(tmp_path, capsys, make, words):
    assert cli.main(["advise", "--history", make(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpuops-preflight advise: run history ") and words in err and "Traceback" not in err


def test_advise_from_a_shell_without_a_history_exits_2(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    done = subprocess.run([os.path.join(BIN, "gpuops-preflight"), "advise"], env=env, capture_output=True, text=True,
                          timeout=120, check=False, cwd=str(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no run history file" in done.stderr and "GPUOPS_PREFLIGHT_RUN_HISTORY" in done.stderr
    env["GPUOPS_PREFLIGHT_RUN_HISTORY"] = str(tmp_path / "h.jsonl")
    done = subprocess.run([os.path.join(BIN, "gpuops-preflight"), "advise"], env=env, capture_output=True, text=True,
                          timeout=120, check=False, cwd=str(tmp_path))
    assert done.returncode == 0 and done.stdout.startswith("suggested: 50 trials x 100,000 seeds"), done.stderr


def test_advise_says_when_the_history_was_only_partly_read(tmp_path, capsys):
    """A history larger than the read limit whose newest part holds no whole line (a runaway writer's line
    of 1 GB without a newline): the output says so, and memory stays bounded (the file is sparse)."""
    path = tmp_path / "h.jsonl"
    with open(path, "wb") as handle:
        handle.truncate(advice.MAX_HISTORY_BYTES + 4096)
    assert cli.main(["advise", "--history", str(path)]) == 0
    out = capsys.readouterr().out
    assert "suggested: 50 trials x 100,000 seeds (rule default)" in out
    assert "history: %s (0 run(s), only its newest 16,777,216 bytes read, 1 corrupt line(s) skipped (lines 1))" % path in out
