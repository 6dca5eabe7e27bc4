from __future__ import annotations

import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpuops.preflight.plugins.modules import training_crash_scan
from simtrain import fixtures


def run_module(capsys, args, check_mode=False, diff=False):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    if diff:
        args = dict(args, _ansible_diff=True)
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        training_crash_scan.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def warning_texts(result):
    return [w.get("event", {}).get("msg", w.get("msg")) if isinstance(w, dict) else w
            for w in result.get("warnings", [])]


@pytest.fixture
def base(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    with open(str(fixtures.crash_log_path(fixtures.OOM_LOG)), "rb") as src:
        (logs / "train.log").write_bytes(src.read())
    with open(str(fixtures.crash_log_path(fixtures.HEALTHY_LOG)), "rb") as src:
        (logs / "eval.log").write_bytes(src.read())
    return tmp_path


def test_default_logs_and_history_under_the_base_dir(base, capsys):
    rc, result = run_module(capsys, {"training_base_dir": str(base)})
    assert rc == 0 and result["changed"] is True
    assert result["categories"] == ["cuda_oom"]
    (item,) = result["crashes"]
    assert item["file"] == str(base / "logs" / "train.log") and item["severity"] == "hard"
    assert item["recurrence_text"] == "1st cuda_oom in 24 h"
    assert [f["path"] for f in result["files"]] == [str(base / "logs" / "eval.log"), str(base / "logs" / "train.log")]
    assert result["history"]["recorded"] == 1
    with open(str(base / ".crash_history.json")) as handle:
        assert len(json.load(handle)["crashes"]) == 1
    rc, again = run_module(capsys, {"training_base_dir": str(base)})
    assert again["changed"] is False and again["history"]["recorded"] == 0  # idempotent: nothing new


def test_check_mode_and_diff_write_nothing(base, capsys):
    rc, result = run_module(capsys, {"training_base_dir": str(base)}, check_mode=True, diff=True)
    assert rc == 0 and result["changed"] is True and result["history"]["would_record"] == 1
    assert not os.path.exists(str(base / ".crash_history.json"))
    after = [json.loads(line) for line in result["diff"]["after"].splitlines()]
    assert [a["category"] for a in after] == ["cuda_oom"] and result["diff"]["before"] == ""


def test_explicit_logs_lines_and_no_history(base, capsys):
    missing = str(base / "logs" / "gone.log")
    rc, result = run_module(capsys, {"logs": [str(base / "logs" / "eval.log"), missing], "lines": 5,
                                     "history_file": "none"})
    assert rc == 0 and result["changed"] is False and result["categories"] == []
    assert result["history"]["state"] == "disabled"
    assert result["files"][0]["lines"] == 5
    assert "%s is missing" % missing in warning_texts(result)


def test_a_foreign_history_is_reported_and_kept(base, capsys):
    history = base / ".crash_history.json"
    history.write_text("crash at 10:00: OOM\n")
    rc, result = run_module(capsys, {"training_base_dir": str(base)})
    assert rc == 0 and result["changed"] is False and result["history"]["state"] == "unparseable"
    assert history.read_text() == "crash at 10:00: OOM\n"
    assert any("left as it is" in w for w in warning_texts(result))


@pytest.mark.parametrize("args, text", [
    ({}, "logs is required when training_base_dir is not set"),
    ({"logs": ["/x.log"], "lines": 0}, "lines must be between 1 and 100000"),
    ({"logs": ["/x.log"], "timeout": 0}, "timeout must be at least 1 second"),
    ({"logs": []}, "logs must be a non-empty list"),
    ({"logs": ["/x.log"], "history_file": "rel.json"}, "a relative history_file needs training_base_dir"),
])
def test_bad_options_fail_clearly(capsys, args, text):
    rc, result = run_module(capsys, args)
    assert rc == 1 and result["failed"] is True and text in result["msg"]


class _LateClock(object):
    """``time`` for the module with monotonic() an hour behind: its deadline has passed before the scan starts."""

    @staticmethod
    def monotonic():
        import time
        return time.monotonic() - 3600


def test_a_log_the_timeout_cut_short_is_said_to_be_not_fully_scanned(base, capsys, monkeypatch):
    monkeypatch.setattr(training_crash_scan, "time", _LateClock)
    rc, result = run_module(capsys, {"training_base_dir": str(base), "history_file": "none"})
    assert rc == 0 and result["categories"] == []   # nothing was read: the OOM in train.log is not seen
    assert [f["timed_out"] for f in result["files"]] == [True, True]
    train = str(base / "logs" / "train.log")
    assert "%s not fully scanned: read stopped by the timeout after 0 bytes" % train in warning_texts(result)
