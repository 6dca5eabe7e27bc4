"""Run advice from the run history (_advice): the rules on the two real runs, edge cases, the history file."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import stat

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _advice

# The two real step-1 runs of issue 13.
PROVEN = {"time": "2026-01-10T10:00:00+00:00", "step": 1, "trials": 100, "completed_trials": 100, "max_seeds": 100000,
          "survivors": 98172, "duration_s": 1260.0, "study": "window_opt_1768039200", "outcome": "completed"}
BRUTE = {"time": "2026-01-11T10:00:00+00:00", "step": 1, "trials": 50, "completed_trials": 50, "max_seeds": 10000000,
         "survivors": 0, "duration_s": 7200.0, "study": "window_opt_1768125600", "outcome": "completed"}


def run(**kw):
    rec = dict(PROVEN, time="2026-01-12T10:00:00+00:00", study="window_opt")
    rec.update(kw)
    return rec


# ---------------------------------------------------------------- the rules

def test_no_history_gives_the_proven_default():
    got = _advice.suggest([])
    assert (got["trials"], got["max_seeds"], got["rule"], got["based_on"]) == (50, 100000, "default", [])
    assert got["reason"].startswith("50 trials x 100,000 seeds: no finished run")


def test_the_run_that_found_nothing_gives_more_trials_and_seeds_back_to_100k():
    got = _advice.suggest([PROVEN, BRUTE])
    assert (got["trials"], got["max_seeds"], got["rule"]) == (100, 100000, "no_survivors")
    assert got["based_on"] == [BRUTE]
    assert "found 0 survivors" in got["reason"] and "50 trials x 10,000,000 seeds" in got["reason"]


def test_the_run_that_worked_is_kept():
    for history in ([PROVEN], [BRUTE, PROVEN]):
        got = _advice.suggest(history)
        assert (got["trials"], got["max_seeds"], got["rule"]) == (100, 100000, "enough_survivors")
        assert got["based_on"] == [PROVEN]
        assert "98,172 survivors" in got["reason"] and "keep what worked" in got["reason"]


def test_few_survivors_double_the_last_runs_seeds_and_keep_its_trials():
    got = _advice.suggest([run(trials=120, max_seeds=300000, survivors=1234)])
    assert (got["trials"], got["max_seeds"], got["rule"]) == (120, 600000, "few_survivors")


def test_doubled_seeds_stop_at_10m_and_the_reason_says_so():
    got = _advice.suggest([run(max_seeds=8000000, survivors=10)])
    assert got["max_seeds"] == 10000000
    assert "max_seeds 16,000,000 is outside 10,000-10,000,000, so 10,000,000" in got["reason"]


def test_seeds_go_back_to_100k_whatever_the_failed_run_used():
    for seeds in (10000, 100000, 5000000):
        got = _advice.suggest([run(trials=40, completed_trials=40, max_seeds=seeds, survivors=0)])
        assert (got["trials"], got["max_seeds"]) == (100, 100000)


def test_nothing_found_with_100_trials_already_gives_more_trials_than_that():
    got = _advice.suggest([run(trials=100, completed_trials=100, max_seeds=100000, survivors=0)])
    assert (got["trials"], got["max_seeds"]) == (200, 100000)
    # ... and the suggestion does not repeat the failure it rests on
    assert _advice.validate_proposal(got, [run(trials=100, completed_trials=100, survivors=0)])["warnings"] == []


def test_a_run_still_in_progress_is_passed_over_and_named():
    running = run(time="2026-01-13T08:00:00+00:00", trials=300, completed_trials=12, survivors=None, outcome="running")
    got = _advice.suggest([BRUTE, running])
    assert (got["trials"], got["max_seeds"], got["rule"]) == (100, 100000, "no_survivors")
    assert got["based_on"] == [BRUTE, running]
    assert "still in progress" in got["reason"] and "2026-01-13T08:00:00+00:00" in got["reason"]


def test_running_outcome_wins_over_a_partial_survivor_count():
    got = _advice.suggest([PROVEN, run(survivors=0, completed_trials=60, outcome="running")])
    assert got["rule"] == "enough_survivors"


def test_zero_survivors_after_few_completed_trials_is_inconclusive():
    short = run(trials=50, completed_trials=12, max_seeds=10000000, survivors=0, outcome="timeout")
    got = _advice.suggest([PROVEN, short])
    assert got["rule"] == "enough_survivors" and got["based_on"] == [PROVEN, short]
    assert "fewer than 30 completed trials: inconclusive" in got["reason"]
    alone = _advice.suggest([short])
    assert (alone["rule"], alone["trials"], alone["max_seeds"]) == ("default", 50, 100000)
    assert "no conclusive run" in alone["reason"]


def test_unknown_completed_trials_cannot_prove_a_failure():
    assert _advice.suggest([run(survivors=0, completed_trials=None)])["rule"] == "default"


def test_exactly_30_completed_trials_is_enough_to_call_it_a_failure():
    assert _advice.suggest([run(survivors=0, completed_trials=30)])["rule"] == "no_survivors"
    assert _advice.suggest([run(survivors=0, completed_trials=29)])["rule"] == "default"


def test_exactly_50k_survivors_is_enough():
    assert _advice.suggest([run(survivors=50000)])["rule"] == "enough_survivors"
    assert _advice.suggest([run(survivors=49999)])["rule"] == "few_survivors"


def test_thresholds_and_bounds_are_configurable():
    got = _advice.suggest([PROVEN], thresholds={"enough_survivors": 100000})
    assert (got["rule"], got["max_seeds"]) == ("few_survivors", 200000)
    got = _advice.suggest([BRUTE], bounds={"trials": [10, 80]})
    assert got["trials"] == 80 and "trials 100 is outside 10-80, so 80" in got["reason"]
    got = _advice.suggest([], thresholds={"default_trials": 70, "default_max_seeds": 20000})
    assert (got["trials"], got["max_seeds"]) == (70, 20000)
    got = _advice.suggest([run(survivors=0, completed_trials=12)], thresholds={"min_completed_trials": 10})
    assert got["rule"] == "no_survivors"


def test_a_kept_configuration_outside_the_bounds_is_brought_inside():
    got = _advice.suggest([run(trials=1000, max_seeds=5000)])
    assert (got["trials"], got["max_seeds"]) == (500, 10000)


@pytest.mark.parametrize("bounds,thresholds,words", [
    ({"trials": [500, 10]}, None, "bounds.trials: lowest 500 is above highest 10"),
    ({"seeds": [1, 2]}, None, "bounds: unknown key 'seeds' (known: trials, max_seeds)"),
    ({"trials": 5}, None, "bounds.trials must be [lowest, highest]"),
    ({"trials": [0, 10]}, None, "bounds.trials lowest must be at least 1"),
    ({"trials": ["a", 10]}, None, "bounds.trials lowest must be a whole number, got text 'a'"),
    ([1, 2], None, "bounds must be a mapping like {'trials': [10, 500]}, got list"),
    ({}, [], "thresholds must be a mapping"),
    (None, {"enough": 1}, "thresholds: unknown key 'enough'"),
    (None, {"seed_factor": 1}, "thresholds.seed_factor must be at least 2"),
    (None, {"enough_survivors": True}, "thresholds.enough_survivors must be a whole number, got bool True"),
    (None, "x", "thresholds must be a mapping"),
])
def test_bad_settings_are_named(bounds, thresholds, words):
    with pytest.raises(ValueError) as err:
        _advice.suggest([], bounds=bounds, thresholds=thresholds)
    assert words in str(err.value)


def test_invalid_records_in_a_list_are_skipped_and_counted():
    got = _advice.suggest([BRUTE, {"trials": "many"}, None, PROVEN, {"max_seeds": 10}])
    assert got["rule"] == "enough_survivors" and got["corrupt"] == 3
    assert "3 corrupt history line(s) skipped" in got["reason"]


def test_history_must_be_a_list_or_a_path():
    with pytest.raises(ValueError, match="history must be a list of run records or the path"):
        _advice.suggest(42)


# ---------------------------------------------------------------- records

def test_make_record_writes_every_documented_key():
    rec = _advice.make_record(100, 100, 100000, 98172, duration_s=1260, study="window_opt", when=1768039200)
    assert sorted(rec) == sorted(_advice.KEYS)
    assert rec["time"] == "2026-01-10T10:00:00+00:00" and rec["outcome"] == "completed" and rec["step"] == 1
    assert _advice.make_record(100, 3, 100000, None, outcome="running", when="2026-01-10T11:00:00+01:00")["time"] \
        == "2026-01-10T10:00:00+00:00"


@pytest.mark.parametrize("kw,words", [
    (dict(trials=0), "trials must be at least 1, got 0"),
    (dict(trials=True), "trials must be a whole number, got bool True"),
    (dict(max_seeds=1.5), "max_seeds must be a whole number, got 1.5"),
    (dict(max_seeds=float("nan")), "max_seeds must be a whole number"),
    (dict(survivors=-1), "survivors must be at least 0, got -1"),
    (dict(survivors=None), "survivors must be a whole number >= 0 for a finished run"),
    (dict(completed_trials="7"), "completed_trials must be a whole number, got text '7'"),
    (dict(duration_s=-3), "duration_s must be a number of seconds >= 0"),
    (dict(duration_s=float("inf")), "duration_s must be a number of seconds >= 0"),
    (dict(outcome=""), "outcome must be a non-empty text"),
    (dict(outcome=None), "outcome must be given"),
    (dict(study=["x"]), "study must be a non-empty text"),
    (dict(when="yesterday"), "time: invalid time 'yesterday'"),
    (dict(step=-1), "step must be at least 0"),
])
def test_make_record_refuses_bad_values_by_name(kw, words):
    args = dict(trials=100, completed_trials=100, max_seeds=100000, survivors=5)
    args.update(kw)
    with pytest.raises(ValueError) as err:
        _advice.make_record(**args)
    assert words in str(err.value)


def test_integral_floats_are_whole_numbers():
    assert _advice.normalize(dict(PROVEN, max_seeds=1e5))["max_seeds"] == 100000


# ---------------------------------------------------------------- the history file

def write(path, text):
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def test_corrupt_lines_are_skipped_and_counted_never_fatal(tmp_path):
    lines = [json.dumps(PROVEN), "not json", "", "[1, 2]", json.dumps({"trials": 5}), b'{"trials": \xff}'.decode("latin-1"),
             json.dumps(dict(PROVEN, trials=False)), json.dumps(BRUTE), '{"trials": 50, "max_se']
    path = write(tmp_path / "h.jsonl", "\n".join(lines).encode("latin-1"))
    got = _advice.read_history(path)
    assert got["exists"] and not got["truncated"]
    assert got["records"] == [PROVEN, BRUTE]
    assert got["corrupt"] == 6 and got["corrupt_lines"] == [2, 4, 5, 6, 7, 9]
    advice = _advice.suggest(path)
    assert advice["rule"] == "no_survivors" and "6 corrupt history line(s) skipped" in advice["reason"]


def test_a_line_nested_deeper_than_the_json_parser_recurses_is_a_corrupt_line(tmp_path):
    path = write(tmp_path / "h.jsonl", "\n".join([json.dumps(PROVEN), "[" * 100000, json.dumps(BRUTE)]))
    got = _advice.read_history(path)
    assert got["records"] == [PROVEN, BRUTE] and got["corrupt_lines"] == [2]
    assert _advice.suggest(path)["rule"] == "no_survivors"
    problems, _ok, details = _advice.run_budget_problems({"trials": 100, "max_seeds": 100000}, path, "fix.")
    assert problems == [] and details["corrupt_lines"] == 1


def test_nan_and_infinite_numbers_are_corrupt_lines_not_records(tmp_path):
    """Python's json reads NaN/Infinity (not JSON) and 1e999 (as infinity); a record keeping one made the
    advise --json output invalid JSON, and a NaN or negative duration is no run's."""
    lines = [json.dumps(PROVEN), json.dumps(dict(BRUTE, duration_s=float("nan"))),
             json.dumps(dict(BRUTE, duration_s=float("-inf"))), json.dumps(dict(BRUTE, extra=float("inf"))),
             json.dumps(BRUTE).replace('"duration_s": 7200.0', '"duration_s": 1e999'),
             json.dumps(dict(BRUTE, duration_s=-1)), json.dumps(dict(BRUTE, duration_s="7200"))]
    got = _advice.read_history(write(tmp_path / "h.jsonl", "\n".join(lines) + "\n"))
    assert got["records"] == [PROVEN] and got["corrupt_lines"] == [2, 3, 4, 5, 6, 7]
    json.dumps(_advice.suggest(got), allow_nan=False)
    with pytest.raises(ValueError, match="duration_s must be a number of seconds >= 0, got float nan"):
        _advice.normalize(dict(BRUTE, duration_s=float("nan")))


def test_a_line_longer_than_the_read_limit_is_counted_as_corrupt(tmp_path):
    """A runaway writer's line with no newline in the newest max_bytes: not silently an empty history."""
    path = write(tmp_path / "h.jsonl", json.dumps(PROVEN) + "\n" + "x" * 5000)
    got = _advice.read_history(path, max_bytes=1000)
    assert got["truncated"] and got["records"] == [] and (got["corrupt"], got["corrupt_lines"]) == (1, [1])
    assert "1 corrupt history line(s) skipped" in _advice.suggest(got)["reason"]
    # a cut line followed by whole ones is only the older part of the history: not corrupt
    path = write(tmp_path / "h2.jsonl", "x" * 5000 + "\n" + json.dumps(BRUTE) + "\n")
    got = _advice.read_history(path, max_bytes=1000)
    assert got["truncated"] and got["records"] == [BRUTE] and got["corrupt"] == 0


def test_non_utf8_bytes_inside_a_text_value_keep_the_record(tmp_path):
    raw = json.dumps(dict(PROVEN, study="STUDY")).encode().replace(b"STUDY", b"win\xffdow")
    got = _advice.read_history(write(tmp_path / "h.jsonl", raw + b"\n"))
    assert got["corrupt"] == 0 and got["records"][0]["study"] == "win\ufffddow"


def test_lone_surrogates_from_json_escapes_become_u_fffd(tmp_path):
    """json writes a surrogate-escaped byte as \\udcff; read back it is a lone surrogate no UTF-8 output can carry."""
    line = json.dumps(dict(BRUTE, study="win\udcffdow", time="2026-01-11T10:00:00\udcff"))
    assert "\\udcff" in line
    got = _advice.read_history(write(tmp_path / "h.jsonl", line + "\n"))
    assert got["corrupt"] == 0 and got["records"][0]["study"] == "win\ufffddow"
    advice = _advice.suggest(got)
    assert advice["based_on"][0]["study"] == "win\ufffddow"
    advice["reason"].encode("utf-8")  # the record's time is in the reason
    assert _advice.make_record(50, 50, 100000, 0, study="win\udcffdow")["study"] == "win\ufffddow"


def test_a_missing_history_is_an_empty_one(tmp_path):
    got = _advice.read_history(str(tmp_path / "none.jsonl"))
    assert (got["exists"], got["records"], got["corrupt"]) == (False, [], 0)
    assert _advice.suggest(str(tmp_path / "none.jsonl"))["rule"] == "default"


def test_a_directory_or_a_fifo_is_refused_without_hanging(tmp_path):
    with pytest.raises(_advice.HistoryError, match="is a directory, not a regular file"):
        _advice.read_history(str(tmp_path))
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    with pytest.raises(_advice.HistoryError, match="is a fifo, not a regular file"):
        _advice.read_history(fifo)
    with pytest.raises(_advice.HistoryError, match="is a fifo, not a regular file"):
        _advice.append_record(fifo, PROVEN)


def test_an_unreadable_history_names_the_file(tmp_path):
    if os.geteuid() == 0:
        path = "/proc/self/mem"  # root reads everything else; this open fails for a reason of its own
        with pytest.raises(_advice.HistoryError, match="/proc/self/mem"):
            _advice.read_history(path)
        return
    path = write(tmp_path / "h.jsonl", json.dumps(PROVEN))
    os.chmod(path, 0)
    with pytest.raises(_advice.HistoryError, match="cannot be opened: Permission denied"):
        _advice.read_history(path)


def test_a_large_history_is_read_from_its_end(tmp_path):
    old = json.dumps(PROVEN) + "\n"
    path = write(tmp_path / "h.jsonl", old * 200 + json.dumps(BRUTE) + "\n")
    got = _advice.read_history(path, max_bytes=len(old) * 3 + 10)
    assert got["truncated"] and got["corrupt"] == 0
    assert got["records"][-1] == BRUTE and len(got["records"]) == 3


def test_append_creates_the_folder_and_appends_lines(tmp_path):
    path = str(tmp_path / "deep" / "er" / "history.jsonl")
    _advice.append_record(path, PROVEN)
    _advice.append_record(path, BRUTE)
    assert _advice.read_history(path)["records"] == [PROVEN, BRUTE]
    assert open(path).read().count("\n") == 2
    assert [n for n in os.listdir(os.path.dirname(path)) if n.endswith(".tmp")] == []


def test_append_keeps_a_cut_line_and_starts_on_a_line_of_its_own(tmp_path):
    path = write(tmp_path / "h.jsonl", json.dumps(PROVEN) + "\ngarbage {\n" + '{"trials": 5')
    os.chmod(path, 0o600)
    _advice.append_record(path, BRUTE)
    text = open(path).read()
    assert text.startswith(json.dumps(PROVEN) + "\ngarbage {\n" + '{"trials": 5\n')
    got = _advice.read_history(path)
    assert got["records"] == [PROVEN, BRUTE] and got["corrupt"] == 2
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_append_through_a_symlink_rewrites_its_target(tmp_path):
    target = write(tmp_path / "real.jsonl", json.dumps(PROVEN) + "\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    _advice.append_record(str(link), BRUTE)
    assert link.is_symlink()
    assert _advice.read_history(target)["records"] == [PROVEN, BRUTE]


def test_append_refuses_an_invalid_record_and_writes_nothing(tmp_path):
    path = str(tmp_path / "h.jsonl")
    with pytest.raises(ValueError, match="max_seeds must be at least 1"):
        _advice.append_record(path, dict(PROVEN, max_seeds=0))
    assert not os.path.exists(path)


def test_append_refuses_a_history_too_large_to_rewrite(tmp_path):
    path = write(tmp_path / "h.jsonl", json.dumps(PROVEN) + "\n")
    with pytest.raises(_advice.HistoryError, match="is more than the 10 byte limit: move it aside"):
        _advice.append_record(path, BRUTE, max_bytes=10)
    assert _advice.read_history(path)["records"] == [PROVEN]


def test_append_waits_for_the_lock_at_most_its_timeout(tmp_path):
    path = str(tmp_path / "h.jsonl")
    fd = os.open(str(tmp_path / ".h.jsonl.lock"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(_advice.HistoryError, match="another writer holds its lock for more than 0.1 s"):
            _advice.append_record(path, PROVEN, timeout=0.1)
    finally:
        os.close(fd)
    _advice.append_record(path, PROVEN)
    assert len(_advice.read_history(path)["records"]) == 1


def _append_many(args):
    path, worker = args
    for i in range(25):
        _advice.append_record(path, dict(PROVEN, study="w%d-%d" % (worker, i)))


def test_concurrent_writers_lose_no_line(tmp_path):
    path = str(tmp_path / "h.jsonl")
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.map(_append_many, [(path, w) for w in range(4)])
    got = _advice.read_history(path)
    assert got["corrupt"] == 0
    assert sorted(r["study"] for r in got["records"]) == sorted("w%d-%d" % (w, i) for w in range(4) for i in range(25))


# ---------------------------------------------------------------- the decision layer

def test_schema_carries_the_bounds_and_refuses_other_keys():
    schema = _advice.parameter_schema()
    assert schema["required"] == ["trials", "max_seeds"] and schema["additionalProperties"] is False
    assert (schema["properties"]["trials"]["minimum"], schema["properties"]["trials"]["maximum"]) == (10, 500)
    assert (schema["properties"]["max_seeds"]["minimum"], schema["properties"]["max_seeds"]["maximum"]) \
        == (10000, 10000000)
    assert schema["properties"]["trials"]["type"] == "integer" and "seed_count" in \
        schema["properties"]["max_seeds"]["description"]
    custom = _advice.parameter_schema(bounds={"trials": [20, 40]}, thresholds={"default_trials": 30})
    assert (custom["properties"]["trials"]["minimum"], custom["properties"]["trials"]["maximum"],
            custom["properties"]["trials"]["default"]) == (20, 40, 30)
    json.dumps(schema)  # plain JSON


def test_every_suggestion_fits_the_schema():
    schema = _advice.parameter_schema()
    histories = [[], [PROVEN], [BRUTE], [run(trials=1000, max_seeds=5)],
                 [run(trials=500, completed_trials=500, survivors=0)], [run(max_seeds=9000000, survivors=3)]]
    for history in histories:
        got = _advice.suggest(history)
        for name in ("trials", "max_seeds"):
            prop = schema["properties"][name]
            assert prop["minimum"] <= got[name] <= prop["maximum"]
        assert _advice.validate_proposal({k: got[k] for k in ("trials", "max_seeds")}, history)["valid"]


def test_a_valid_proposal():
    got = _advice.validate_proposal({"trials": 100, "max_seeds": 100000}, [PROVEN, BRUTE])
    assert got["valid"] and got["reasons"] == [] and got["warnings"] == []
    assert got["clamped"] == {"trials": 100, "max_seeds": 100000}
    assert got["suggestion"]["rule"] == "no_survivors"


def test_seed_count_is_an_alias_of_max_seeds():
    got = _advice.validate_proposal({"trials": 100, "seed_count": 200000}, [PROVEN])
    assert got["valid"] and got["clamped"] == {"trials": 100, "max_seeds": 200000}
    same = _advice.validate_proposal({"trials": 100, "seed_count": 200000, "max_seeds": 200000}, [PROVEN])
    assert same["valid"]
    clash = _advice.validate_proposal({"trials": 100, "seed_count": 200000, "max_seeds": 300000}, [PROVEN])
    assert not clash["valid"] and "max_seeds and its alias disagree: int 200000 and int 300000" in clash["reasons"]


def test_out_of_bounds_values_are_rejected_with_a_reason_and_clamped():
    got = _advice.validate_proposal({"trials": 5, "max_seeds": 50000000}, [])
    assert not got["valid"]
    assert got["reasons"] == ["trials 5 is below the lowest allowed 10",
                              "max_seeds 50,000,000 is above the highest allowed 10,000,000"]
    assert got["clamped"] == {"trials": 10, "max_seeds": 10000000}


@pytest.mark.parametrize("proposal,words", [
    ({"trials": "100", "max_seeds": 100000}, "trials must be a whole number, got text '100'"),
    ({"trials": 100.5, "max_seeds": 100000}, "trials must be a whole number, got 100.5"),
    ({"trials": True, "max_seeds": 100000}, "trials must be a whole number, got bool True"),
    ({"trials": -4, "max_seeds": 100000}, "trials must be at least 0, got -4"),
    ({"max_seeds": 100000}, "trials is missing (10-500)"),
    ({"trials": 100, "max_seeds": 100000, "learning_rate": 1}, "unknown parameter 'learning_rate'"),
    ([100, 100000], "the proposal must be a JSON object with trials and max_seeds, got list"),
    (None, "the proposal must be a JSON object"),
])
def test_unusable_proposals_are_rejected_and_the_suggestion_fills_in(proposal, words):
    got = _advice.validate_proposal(proposal, [BRUTE])
    assert not got["valid"] and any(words in r for r in got["reasons"]), got["reasons"]
    assert 10 <= got["clamped"]["trials"] <= 500 and 10000 <= got["clamped"]["max_seeds"] <= 10000000


class _AnsibleTaggedList(list):
    """What an inventory's list reaches the plan as (ansible-core's data tagging)."""


class _AnsibleTaggedInt(int):
    pass


def test_values_from_the_inventory_are_named_by_their_kind_not_ansibles_class():
    got = _advice.validate_proposal(_AnsibleTaggedList([100, 100000]), [])
    assert got["reasons"][0] == "the proposal must be a JSON object with trials and max_seeds, got list"
    clash = _advice.validate_proposal({"max_seeds": _AnsibleTaggedInt(200000), "seed_count": 300000}, [])
    assert "max_seeds and its alias disagree: int 200000 and int 300000" in clash["reasons"]
    assert not [r for r in got["reasons"] + clash["reasons"] if "Tagged" in r]


def test_a_proposal_that_repeats_the_failed_run_is_flagged():
    for proposal in ({"trials": 50, "max_seeds": 10000000}, {"trials": 30, "seed_count": 10000000},
                     {"trials": 50, "max_seeds": 10000000.0}):
        got = _advice.validate_proposal(proposal, [PROVEN, BRUTE])
        assert got["valid"] and len(got["warnings"]) == 1
        assert "repeats a failed pattern" in got["warnings"][0] and "2026-01-11T10:00:00+00:00" in got["warnings"][0]
        assert "suggested: 100 trials x 100,000 seeds" in got["warnings"][0]


def test_more_trials_or_fewer_seeds_than_the_failed_run_is_not_flagged():
    for proposal in ({"trials": 51, "max_seeds": 10000000}, {"trials": 50, "max_seeds": 9999999}):
        assert _advice.validate_proposal(proposal, [BRUTE])["warnings"] == []


def test_an_inconclusive_or_running_run_flags_nothing():
    history = [run(trials=50, completed_trials=10, max_seeds=10000000, survivors=0, outcome="timeout"),
               run(trials=50, completed_trials=40, max_seeds=10000000, survivors=None, outcome="running")]
    assert _advice.validate_proposal({"trials": 50, "max_seeds": 10000000}, history)["warnings"] == []


def test_several_failed_runs_are_counted_in_one_warning():
    older = dict(BRUTE, time="2026-01-01T00:00:00+00:00", trials=60)
    got = _advice.validate_proposal({"trials": 40, "max_seeds": 10000000}, [older, BRUTE])
    assert len(got["warnings"]) == 1 and "(and 1 earlier such run(s))" in got["warnings"][0]
    assert BRUTE["time"] in got["warnings"][0]


# ---------------------------------------------------------------- the run_budget check

FIX = "change run_budget_params before step 1"


def test_run_budget_warns_when_the_plan_repeats_a_failure(tmp_path):
    path = str(tmp_path / "h.jsonl")
    for rec in (PROVEN, BRUTE):
        _advice.append_record(path, rec)
    problems, ok_text, details = _advice.run_budget_problems({"trials": 50, "max_seeds": 10000000}, path, FIX)
    assert [p["status"] for p in problems] == ["warn"] and problems[0]["check"] == "run_budget"
    assert problems[0]["message"].startswith("run_budget_params: 50 trials x 10,000,000 seeds repeats a failed")
    assert problems[0]["fix"].startswith(FIX + "; plan 100 trials x 100,000 seeds in run_budget_params")
    assert details["suggestion"]["trials"] == 100 and details["runs"] == 2
    assert all("\n" not in p["message"] and "\n" not in p["fix"] for p in problems)


def test_run_budget_fix_joins_the_checks_fix_and_the_advice_without_a_stray_full_stop(tmp_path):
    """The check's own fix ends with "knowingly.": the advice follows with "; ", not ".; " (issue 14, bug 5)."""
    from ansible_collections.gpuops.preflight.plugins.module_utils import _families

    spec = _families.family("preflight").checks["run_budget"]
    assert spec.fix.endswith(".")
    path = str(tmp_path / "h.jsonl")
    for rec in (PROVEN, BRUTE):
        _advice.append_record(path, rec)
    problems, _ok_text, details = _advice.evaluate_run_budget(
        {"run_budget_params": {"trials": 50, "max_seeds": 10000000}, "run_history_file": path}, spec)
    assert problems and all(".;" not in p["fix"] for p in problems)
    assert problems[0]["fix"] == spec.fix[:-1] + "; plan 100 trials x 100,000 seeds in run_budget_params (rule %s)" % (
        details["suggestion"]["rule"])
    # A fix without a full stop, or none at all, is joined the same way.
    problems, _ok_text, _details = _advice.run_budget_problems({"trials": 50, "max_seeds": 10000000}, path, "see it. ")
    assert problems[0]["fix"].startswith("see it; plan 100 trials")
    problems, _ok_text, _details = _advice.run_budget_problems({"trials": 50, "max_seeds": 10000000}, path, "")
    assert problems[0]["fix"].startswith("plan 100 trials")


def test_run_budget_is_ok_for_a_plan_history_does_not_refute(tmp_path):
    path = str(tmp_path / "h.jsonl")
    _advice.append_record(path, BRUTE)
    problems, ok_text, _details = _advice.run_budget_problems({"trials": 100, "max_seeds": 100000}, path, FIX)
    assert problems == []
    assert ok_text == "100 trials x 100,000 seeds repeat no failed run (1 run(s) in %s)" % os.path.realpath(path)


def test_run_budget_without_a_history_yet_is_ok_and_says_so(tmp_path):
    problems, ok_text, details = _advice.run_budget_problems({"trials": 50, "max_seeds": 100000},
                                                             str(tmp_path / "none.jsonl"), FIX)
    assert problems == [] and "no run history yet" in ok_text and details["runs"] == 0


def test_run_budget_warns_on_a_plan_out_of_bounds_or_malformed():
    problems, _ok_text, _details = _advice.run_budget_problems({"trials": 5000, "max_seeds": 100000}, [PROVEN], FIX)
    assert [p["message"] for p in problems] == ["run_budget_params: trials 5,000 is above the highest allowed 500"]
    problems, _ok_text, _details = _advice.run_budget_problems("50 trials", [PROVEN], FIX)
    assert problems[0]["status"] == "warn" and "must be a JSON object" in problems[0]["message"]


def test_run_budget_is_unknown_when_the_history_cannot_be_read(tmp_path):
    problems, ok_text, _details = _advice.run_budget_problems({"trials": 50, "max_seeds": 100000}, str(tmp_path), FIX)
    assert [p["status"] for p in problems] == ["unknown"] and ok_text == ""
    assert "run_history_file: run history %s is a directory, not a regular file" % tmp_path == problems[0]["message"]


def test_run_budget_counts_corrupt_lines_in_its_ok_text(tmp_path):
    path = write(tmp_path / "h.jsonl", json.dumps(PROVEN) + "\nxx\n")
    problems, ok_text, details = _advice.run_budget_problems({"trials": 100, "max_seeds": 100000}, path, FIX)
    assert problems == [] and ok_text.endswith("; 1 corrupt history line(s) skipped")
    assert details["corrupt_lines"] == 1
