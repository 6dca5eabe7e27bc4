"""One study in a real PostgreSQL shared by concurrent workers (Optuna's distributed mode), and its errors."""

from __future__ import annotations

import os
import tempfile

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from gpuops_preflight import studies

optuna.logging.set_verbosity(optuna.logging.WARNING)
DISTS = {"x": FloatDistribution(-10.0, 10.0), "k": IntDistribution(1, 5)}
SEED = [(5.0, 3, 12.0), (2.5, 1, 1.25), (-1.0, 2, 11.0)]


def seeded(url, name="step1"):
    study = optuna.create_study(storage=url, study_name=name)
    for x, k, value in SEED:
        study.add_trial(create_trial(params={"x": x, "k": k}, distributions=DISTS, value=value))
    return study


def test_four_workers_on_one_study_record_every_trial_once(pg_url, workers):
    seeded(pg_url)
    results = workers.start(4, url=pg_url, name="step1", trials=8)
    evaluated = [e["number"] for r in results for e in r["evaluated"]]
    assert len(evaluated) == 32 and len(set(evaluated)) == 32  # no trial ran twice
    study = optuna.load_study(study_name="step1", storage=pg_url)
    trials = study.get_trials(deepcopy=False)
    assert [t.number for t in trials] == list(range(35))  # none lost, none duplicated
    assert len({t._trial_id for t in trials}) == 35
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert sorted(evaluated) == list(range(3, 35))
    # the best parameters waited first; a worker that opened the study later carried in a newer best,
    # never the same best twice
    warm = [t for t in trials if studies.WARM_START_ATTR in t.user_attrs]
    assert warm[0].number == 3 and warm[0].params == {"x": 2.5, "k": 1}
    carried = [t.user_attrs[studies.WARM_START_ATTR] for t in warm]
    assert len(set(carried)) == len(carried)
    for trial, best in zip(warm, carried):
        assert trial.params == trials[best].params and best < trial.number
    for result in results:  # each worker's own values are what the database holds
        for item in result["evaluated"]:
            assert trials[item["number"]].params == item["params"]


def test_eight_workers_opening_at_once_enqueue_the_best_once(pg_url, workers):
    seeded(pg_url)
    workers.start(8, url=pg_url, name="step1")
    study = optuna.load_study(study_name="step1", storage=pg_url)
    (trial,) = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert trial.system_attrs["fixed_params"] == {"x": 2.5, "k": 1}


def test_workers_creating_the_tables_and_the_study_at_once(pg_url, workers):
    results = workers.start(4, url=pg_url, name="fresh", trials=3)
    assert sum(len(r["evaluated"]) for r in results) == 12
    assert len(optuna.load_study(study_name="fresh", storage=pg_url).trials) == 12


def test_legacy_import_on_postgresql(pg_url):
    seeded(pg_url, "window_opt_1767000000")
    report = studies.import_legacy_studies("step1", storage=pg_url)
    assert report["imported"] == {"window_opt_1767000000": 3}
    assert studies.import_legacy_studies("step1", storage=pg_url)["already"] == 3
    info = studies.describe_study("step1", storage=pg_url)
    assert info["legacy_trials"] == 3 and info["best"]["params"] == {"x": 2.5, "k": 1}


def test_a_server_that_is_not_there_is_a_clear_error():
    with tempfile.TemporaryDirectory(prefix="pg-none-") as folder:
        url = "postgresql+psycopg://postgres:secret@/db?host=%s" % folder
        with pytest.raises(studies.StudyError) as err:
            studies.open_study("step1", storage=url, timeout=2)
    text = str(err.value)
    assert text.startswith("optuna storage postgresql+psycopg://postgres:***@/db?host=%s: " % folder)
    assert "cannot connect" in text and "No such file or directory" in text and "secret" not in text


def test_a_server_that_never_answers_fails_within_the_timeout(silent_server):
    host, port = silent_server
    with pytest.raises(studies.StudyError) as err:
        studies.open_study("step1", storage="postgresql+psycopg://u@%s:%d/db" % (host, port), timeout=1)
    assert "cannot connect" in str(err.value) and "timeout 1 s" in str(err.value)


def test_a_held_study_lock_fails_within_the_timeout(pg_url, postgres):
    studies.open_study("step1", storage=pg_url)
    with postgres.connect(postgres.dbname(pg_url)) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (studies.ADVISORY_KEY,))
        with pytest.raises(studies.StudyError, match="another worker held the study lock for more than 0.5 s"):
            studies.open_study("step1", storage=pg_url, timeout=0.5)


def test_a_locked_table_fails_within_the_timeout(pg_url, postgres):
    studies.open_study("step1", storage=pg_url)
    with postgres.connect(postgres.dbname(pg_url)) as conn:
        conn.autocommit = False
        conn.execute("LOCK TABLE studies IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(studies.StudyError) as err:
            studies.open_study("step1", storage=pg_url, timeout=0.5)
        conn.rollback()
    assert "lock timeout" in str(err.value) and "\n" not in str(err.value)
    assert os.path.isdir(postgres.folder)
