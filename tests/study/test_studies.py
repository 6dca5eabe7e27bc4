"""gpuops_preflight.studies on SQLite: persistence across processes, warm start, legacy import, errors."""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import subprocess
import sys

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from gpuops_preflight import studies

optuna.logging.set_verbosity(optuna.logging.WARNING)
DISTS = {"x": FloatDistribution(-10.0, 10.0), "k": IntDistribution(1, 5)}


def add(study, *rows, state=TrialState.COMPLETE):
    """rows: (x, k, value)."""
    for x, k, value in rows:
        study.add_trial(create_trial(state=state, params={"x": x, "k": k}, distributions=DISTS,
                                     value=value if state == TrialState.COMPLETE else None))


def waiting(study):
    return study.get_trials(deepcopy=False, states=(TrialState.WAITING,))


def raw_study(url, name, direction="minimize"):
    return optuna.create_study(storage=url, study_name=name, direction=direction)


# ---------------------------------------------------------------- persistence and warm start

def test_a_study_persists_across_processes_and_the_next_run_starts_from_the_best(sqlite_url, workers):
    first, = workers.start(1, url=sqlite_url, name="step1", trials=6)
    assert [e["number"] for e in first["evaluated"]] == list(range(6))
    best = min(first["evaluated"], key=lambda e: (e["params"]["x"] - 2) ** 2 + e["params"]["k"])
    second, = workers.start(1, url=sqlite_url, name="step1", trials=4)
    assert second["evaluated"][0] == {"number": 6, "params": best["params"]}  # the warm-start trial ran first
    study = optuna.load_study(study_name="step1", storage=sqlite_url)
    assert [t.number for t in study.get_trials(states=(TrialState.COMPLETE,))] == list(range(10))
    assert study.trials[6].user_attrs[studies.WARM_START_ATTR] == best["number"]


def test_warm_start_enqueues_the_best_parameters_as_a_waiting_trial(sqlite_url):
    add(raw_study(sqlite_url, "step1"), (5.0, 3, 12.0), (2.5, 1, 1.25), (-1.0, 2, 11.0))
    study = studies.open_study("step1", storage=sqlite_url)
    (trial,) = waiting(study)
    assert trial.system_attrs["fixed_params"] == {"x": 2.5, "k": 1}
    assert trial.user_attrs == {studies.WARM_START_ATTR: 1}
    # opening again (another run, another worker) does not enqueue it twice
    assert len(waiting(studies.open_study("step1", storage=sqlite_url))) == 1


def test_the_next_trial_asked_for_is_the_warm_start(sqlite_url):
    add(raw_study(sqlite_url, "step1"), (5.0, 3, 12.0), (2.5, 1, 1.25))
    study = studies.open_study("step1", storage=sqlite_url)
    trial = study.ask()
    assert (trial.suggest_float("x", -10, 10), trial.suggest_int("k", 1, 5)) == (2.5, 1)


def test_a_running_trial_with_the_best_parameters_counts_as_enqueued(sqlite_url):
    add(raw_study(sqlite_url, "step1"), (2.5, 1, 1.25))
    study = studies.open_study("step1", storage=sqlite_url)
    study.ask()  # the warm-start trial is now running in some worker
    assert waiting(studies.open_study("step1", storage=sqlite_url)) == []


def test_a_new_best_is_enqueued_next_time(sqlite_url):
    add(raw_study(sqlite_url, "step1"), (5.0, 3, 12.0))
    study = studies.open_study("step1", storage=sqlite_url)
    add(study, (2.0, 1, 1.0))
    params = sorted(tuple(sorted(t.system_attrs["fixed_params"].items()))
                    for t in waiting(studies.open_study("step1", storage=sqlite_url)))
    assert params == [(("k", 1), ("x", 2.0)), (("k", 3), ("x", 5.0))]


def test_no_warm_start_when_asked_or_when_nothing_completed(sqlite_url):
    assert waiting(studies.open_study("fresh", storage=sqlite_url)) == []
    add(raw_study(sqlite_url, "failed-only"), (1.0, 1, None), state=TrialState.FAIL)
    assert waiting(studies.open_study("failed-only", storage=sqlite_url)) == []
    add(raw_study(sqlite_url, "step1"), (2.5, 1, 1.25))
    assert waiting(studies.open_study("step1", storage=sqlite_url, warm_start=False)) == []


def test_concurrent_opens_enqueue_the_best_once(sqlite_url, workers):
    add(raw_study(sqlite_url, "step1"), (5.0, 3, 12.0), (2.5, 1, 1.25))
    workers.start(4, url=sqlite_url, name="step1")
    (trial,) = waiting(optuna.load_study(study_name="step1", storage=sqlite_url))
    assert trial.system_attrs["fixed_params"] == {"x": 2.5, "k": 1}


def test_an_existing_study_keeps_its_direction(sqlite_url):
    studies.open_study("step1", storage=sqlite_url, direction="maximize")
    assert studies.open_study("step1", storage=sqlite_url).direction == optuna.study.StudyDirection.MAXIMIZE
    assert studies.open_study("other", storage=sqlite_url).direction == optuna.study.StudyDirection.MINIMIZE


def test_the_default_storage_is_a_sqlite_file_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(studies.STUDY_DB_ENV, str(tmp_path / "sub" / "studies.db"))
    assert studies.default_storage() == "sqlite:///%s" % (tmp_path / "sub" / "studies.db")
    studies.open_study("step1")
    assert (tmp_path / "sub" / "studies.db").is_file()
    monkeypatch.delenv(studies.STUDY_DB_ENV)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert studies.default_storage() == "sqlite:///%s" % (tmp_path / "data" / "gpuops-preflight" / "optuna.db")


# ---------------------------------------------------------------- legacy import

def legacy_studies(url):
    """Three old timestamped studies, one maximising, one with another search space, and an unrelated one."""
    a = raw_study(url, "window_opt_1767000000")
    add(a, (1.0, 2, 3.0), (3.0, 1, 2.0))
    add(a, (4.0, 4, None), state=TrialState.FAIL)
    add(a, (5.0, 5, None), state=TrialState.PRUNED)
    a.enqueue_trial({"x": 0.0, "k": 1})  # never ran: not copied
    b = raw_study(url, "window_opt_1768000000")
    add(b, (2.1, 1, 1.01))
    add(raw_study(url, "window_opt_1769000000", "maximize"), (0.0, 1, 5.0))
    c = raw_study(url, "window_opt_1766000000")
    c.add_trial(create_trial(params={"x": "a"}, distributions={"x": CategoricalDistribution(["a", "b"])}, value=9.0))
    add(raw_study(url, "window_opt_test"), (0.0, 1, 0.5))  # not a timestamped study
    add(raw_study(url, "unrelated"), (0.0, 1, 0.1))


def test_legacy_studies_are_imported_once(sqlite_url):
    legacy_studies(sqlite_url)
    report = studies.import_legacy_studies("step1", storage=sqlite_url)
    assert report["imported"] == {"window_opt_1766000000": 0, "window_opt_1767000000": 4,
                                  "window_opt_1768000000": 1}
    assert (report["already"], report["unfinished"], report["incompatible"]) == (0, 1, 1)
    assert report["skipped"] == {"window_opt_1769000000": "its direction (maximize) is not the study's (minimize)"}
    study = optuna.load_study(study_name="step1", storage=sqlite_url)
    assert sorted(t.user_attrs[studies.LEGACY_ATTR] for t in study.trials) == [
        "window_opt_1767000000#0", "window_opt_1767000000#1", "window_opt_1767000000#2", "window_opt_1767000000#3",
        "window_opt_1768000000#0"]
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL", "PRUNED"]
    assert study.best_params == {"x": 2.1, "k": 1} and study.best_value == 1.01
    again = studies.import_legacy_studies("step1", storage=sqlite_url)
    assert sum(again["imported"].values()) == 0 and again["already"] == 5
    assert len(optuna.load_study(study_name="step1", storage=sqlite_url).trials) == 5
    # past runs count: the next open warm-starts from the best legacy trial
    (trial,) = waiting(studies.open_study("step1", storage=sqlite_url))
    assert trial.system_attrs["fixed_params"] == {"x": 2.1, "k": 1}


def test_legacy_studies_from_another_storage(tmp_path, sqlite_url):
    old = "sqlite:///%s" % (tmp_path / "old.db")
    legacy_studies(old)
    report = studies.import_legacy_studies("step1", storage=sqlite_url, source_storage=old)
    assert sum(report["imported"].values()) == 5
    assert optuna.get_all_study_names(sqlite_url) == ["step1"]


# ---------------------------------------------------------------- errors

def test_a_locked_sqlite_database_is_a_clear_error_within_the_timeout(sqlite_url, tmp_path):
    studies.open_study("step1", storage=sqlite_url)
    holder = sqlite3.connect(str(tmp_path / "optuna.db"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(studies.StudyError) as err:
            studies.open_study("step1", storage=sqlite_url, timeout=0.5)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "database is locked" in str(err.value) and "timeout 0.5 s" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_held_study_lock_is_a_clear_error_within_the_timeout(sqlite_url, tmp_path):
    fd = os.open(str(tmp_path / "optuna.db") + ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(studies.StudyError, match="another process held the study lock .* for more than 0.3 s"):
            studies.open_study("step1", storage=sqlite_url, timeout=0.3)
    finally:
        os.close(fd)


@pytest.mark.parametrize("kwargs,words", [
    (dict(name=""), "the study name must be a non-empty text"),
    (dict(name="a\nb"), "is not usable"),
    (dict(name="s", direction="down"), "direction must be 'minimize' or 'maximize', got 'down'"),
    (dict(name="s", storage="/tmp/x.db"), "storage must be an Optuna storage URL such as sqlite:///"),
    (dict(name="s", storage="mysql://u:secret@h/db"), "storage mysql://u:***@h/db: only sqlite and postgresql"),
    (dict(name="s", timeout=0), "timeout must be a number of seconds > 0"),
    (dict(name="s", storage="sqlite:////proc/no/such/dir/x.db"), "cannot create"),
])
def test_bad_input_is_a_clear_error(kwargs, words):
    with pytest.raises(studies.StudyError) as err:
        studies.open_study(**kwargs)
    assert words in str(err.value)
    assert "secret" not in str(err.value)


def test_describe_a_missing_study_lists_the_ones_there(sqlite_url, tmp_path):
    studies.open_study("step1", storage=sqlite_url)
    with pytest.raises(studies.StudyError, match="no study named 'step2' \\(studies there: step1\\)"):
        studies.describe_study("step2", storage=sqlite_url)
    with pytest.raises(studies.StudyError, match="no such database file"):
        studies.describe_study("step1", storage="sqlite:///%s" % (tmp_path / "none.db"))
    assert not (tmp_path / "none.db").exists()


def test_show_never_writes_into_a_database_without_optuna_tables(tmp_path):
    """Optuna creates its tables in any database it opens: show (a reader) must leave another program's
    database, or an empty file, byte for byte as it was."""
    other = tmp_path / "other.db"
    conn = sqlite3.connect(str(other))
    conn.execute("CREATE TABLE mine (x)")
    conn.commit()
    conn.close()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    for path in (other, empty):
        before = path.read_bytes()
        with pytest.raises(studies.StudyError, match="not an Optuna storage .*left as it was"):
            studies.describe_study("step1", storage="sqlite:///%s" % path)
        assert path.read_bytes() == before


@pytest.mark.parametrize("make,kind", [
    (lambda p: (p.mkdir(), p)[1], "a directory"),
    (lambda p: (os.mkfifo(str(p)), p)[1], "a fifo"),
])
@pytest.mark.parametrize("call", [studies.open_study, studies.describe_study, studies.import_legacy_studies])
def test_a_database_path_that_is_not_a_file_is_named(tmp_path, make, kind, call):
    """SQLite's own words are "unable to open database file" (a folder) and "disk I/O error" (a FIFO)."""
    path = make(tmp_path / "optuna.db")
    with pytest.raises(studies.StudyError) as err:
        call("step1", storage="sqlite:///%s" % path)
    assert str(err.value) == "optuna storage sqlite:///%s: %s is %s, not a database file" % (path, path, kind)


@pytest.mark.parametrize("url,secret", [
    ("postgresql+psycopg://u:SeC/r3t@127.0.0.1:1/db", "SeC/r3t"),
    ("postgresql+psycopg://u:SeC@r3t@127.0.0.1:1/db", "SeC@r3t"),
    ("postgresql+psycopg://u@/db?host=/nonexistent&password=SeCrEt", "SeCrEt"),
    ("postgresql+psycopg://u@/db?host=/nonexistent&sslpassword=SeCrEt", "SeCrEt"),
    ("postgresql:/u:SeCrEt@host/db", "SeCrEt"),
])
@pytest.mark.parametrize("action", ["show", "import"])
def test_passwords_are_never_shown_whatever_they_hold(capsys, url, secret, action):
    """A password holding "/" or "@" (written without percent-encoding), or given as libpq's password
    query parameter, was shown whole or in part."""
    from gpuops_preflight import cli
    assert cli.main(["study", action, "step1", "--storage", url, "--timeout", "2", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("gpuops-preflight study: ") and "***" in captured.err
    for part in [secret] + re.split("[/@]", secret):  # a part of it neither
        assert part not in captured.err + captured.out


@pytest.mark.parametrize("url", ["sqlite://u:SeCrEt@/optuna.db", "sqlite://host/optuna.db"])
def test_a_sqlite_url_with_a_user_or_host_part_is_refused_and_makes_no_folder(capsys, tmp_path, monkeypatch, url):
    # it was read as a relative path: a folder named "u:SeCrEt@" in the current folder, the password in its name
    from gpuops_preflight import cli
    monkeypatch.chdir(tmp_path)
    for action in ("show", "import"):
        assert cli.main(["study", action, "step1", "--storage", url]) == 2
        err = capsys.readouterr().err
        assert "a SQLite URL has no host or user part" in err and "SeCrEt" not in err
    assert os.listdir(str(tmp_path)) == []


def test_a_password_the_driver_repeats_is_hidden():
    url = "postgresql+psycopg://u:p%40ss/x@h/db?password=q"
    assert studies.scrubbed('bad password "p@ss/x" or p%40ss/x or q for "u"', url) == \
        'bad password "***" or *** or *** for "u"'


@pytest.mark.parametrize("name", ["bad\udcffname", "x\u202ey", "a\u2028b", "a\x85b", "a\u200bb", " step1", "step1 "])
def test_study_names_that_cannot_be_stored_or_shown_are_refused(sqlite_url, capsys, name):
    """An undecodable byte in argv (a surrogate: SQLite cannot store it), a bidi override, a line
    separator, C1 controls, zero-width or surrounding spaces: refused by name, nothing written."""
    from gpuops_preflight import cli
    assert cli.main(["study", "import", name, "--storage", sqlite_url]) == 2
    assert "is not usable: at most 512 printable characters, no spaces at either end" in capsys.readouterr().err
    with pytest.raises(studies.StudyError, match="is not usable"):
        studies.open_study(name, storage=sqlite_url)
    assert optuna.get_all_study_names(sqlite_url) == []


def test_the_names_listed_for_a_missing_study_are_printable_and_short(sqlite_url, capsys):
    from gpuops_preflight import cli
    raw_study(sqlite_url, "evil\x1b]0;title\x07\nname")  # made with Optuna itself, not through us
    raw_study(sqlite_url, "l" * 500)
    assert cli.main(["study", "show", "step1", "--storage", sqlite_url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "evil name" in err and "l" * 77 + "..." in err
    assert "l" * 78 not in err


def test_without_optuna_the_error_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['optuna'] = None\n"
            "from gpuops_preflight import studies\n"
            "try:\n    studies.open_study('s', storage='sqlite:///%s/x.db')\n"
            "except studies.StudyError as exc:\n    print(exc)\n" % tmp_path)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "Optuna is not installed" in done.stdout and "pip install 'gpuops-preflight[study]'" in done.stdout


# ---------------------------------------------------------------- the CLI

def test_cli_study_import_then_show(sqlite_url, capsys):
    from gpuops_preflight import cli
    legacy_studies(sqlite_url)
    assert cli.main(["study", "import", "step1", "--storage", sqlite_url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "imported into step1: window_opt_1766000000 0, window_opt_1767000000 4, window_opt_1768000000 1"
    assert out[1] == "already imported: 0; never finished (not copied): 1; other search space (not copied): 1"
    assert out[2] == "skipped window_opt_1769000000: its direction (maximize) is not the study's (minimize)"
    studies.open_study("step1", storage=sqlite_url)  # warm start
    assert cli.main(["study", "show", "step1", "--storage", sqlite_url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["study step1 in %s: minimize, 6 trial(s) (complete 3, fail 1, pruned 1, waiting 1)" % sqlite_url,
                   "best: trial 4, value 1.01: k=1, x=2.1",
                   "waiting: trial 5 (warm start: the best of trial 4): k=1, x=2.1",
                   "imported from old studies: 5 trial(s)"]
    assert cli.main(["study", "show", "step1", "--storage", sqlite_url, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["trials"] == {"complete": 3, "fail": 1, "pruned": 1, "waiting": 1} and info["best"]["number"] == 4


def test_cli_json_is_strict_json_with_infinite_values(sqlite_url, capsys):
    """A legacy objective that returned -inf: Python's json wrote a bare -Infinity, which jq refuses."""
    from gpuops_preflight import cli
    old = raw_study(sqlite_url, "window_opt_1767000000")
    add(old, (1.0, 2, 3.0), (2.0, 2, float("-inf")), (3.0, 2, float("inf")))
    assert cli.main(["study", "import", "step1", "--storage", sqlite_url, "--json"]) == 0
    capsys.readouterr()
    assert cli.main(["study", "show", "step1", "--storage", sqlite_url, "--json"]) == 0

    def refuse(word):
        raise ValueError(word)
    info = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert info["best"] == {"number": 1, "value": "-inf", "params": {"x": 2.0, "k": 2}}


@pytest.mark.parametrize("argv,words", [
    (["study", "show", "nope"], "no study named 'nope' (studies there: step1)"),
    (["study", "show", "step1", "--storage", "postgresql+psycopg://u:pw@/db?host=/nonexistent"], "cannot"),
    (["study", "import", "step1", "--storage", "sqlite.db"], "storage must be an Optuna storage URL"),
    (["study", "show", "step1", "--timeout", "-1"], "timeout must be a number of seconds > 0"),
])
def test_cli_study_errors_exit_2_without_a_traceback(sqlite_url, capsys, argv, words):
    from gpuops_preflight import cli
    studies.open_study("step1", storage=sqlite_url)
    if "--storage" not in argv:
        argv = argv + ["--storage", sqlite_url]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpuops-preflight study: ") and words in err and "Traceback" not in err and "pw@" not in err
