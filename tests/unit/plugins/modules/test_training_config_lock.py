from __future__ import annotations

import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpuops.preflight.plugins.modules import training_config_lock
from simtrain import temporary_host


def run_module(capsys, args, check_mode=False, diff=False):
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        training_config_lock.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture
def host():
    with temporary_host(lock=False) as made:
        yield made


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def test_lock_is_written_once_atomically_and_idempotent(host, capsys):
    lock = host.path(".config_lock.json")
    rc, result = run_module(capsys, {"training_base_dir": host.base, "state": "locked"}, check_mode=True, diff=True)
    assert rc == 0 and result["changed"] is True and not os.path.exists(lock)
    assert json.loads(result["diff"]["after"]) == host.config() and result["diff"]["before"] == ""
    rc, result = run_module(capsys, {"training_base_dir": host.base, "state": "locked"})
    assert rc == 0 and result["changed"] is True and "diff" not in result
    doc = json.loads(read(lock))
    assert doc["config"] == host.config() and doc["sha256"] == result["sha256"] == result["lock"]["sha256"]
    assert sorted(os.listdir(host.base)).count(".config_lock.json") == 1
    assert not [n for n in os.listdir(host.base) if n.endswith(".tmp")]
    rc, again = run_module(capsys, {"training_base_dir": host.base, "state": "locked"})
    assert rc == 0 and again["changed"] is False and again["changes"] == []


def test_base_model_change_with_checkpoints_fails_naming_both_values(host, capsys):
    run_module(capsys, {"training_base_dir": host.base, "state": "locked"})
    before = read(host.path(".config_lock.json"))
    host.update_config(base_model="meta-llama/Llama-2-7b-hf", seed=7)
    for state in ("present", "locked"):
        rc, result = run_module(capsys, {"training_base_dir": host.base, "state": state})
        assert rc == 1 and result["checkpoints_exist"] is True
        assert 'base_model changed from "openai/whisper-large-v2" to "meta-llama/Llama-2-7b-hf"' in result["msg"]
        assert dict((c["key"], c["severity"]) for c in result["changes"]) == {"base_model": "fail", "seed": "info"}
    assert read(host.path(".config_lock.json")) == before  # never replaced by a refused lock


def test_without_checkpoints_a_base_model_change_is_a_warning(host, capsys):
    run_module(capsys, {"training_base_dir": host.base, "state": "locked"})
    host.update_config(base_model="meta-llama/Llama-2-7b-hf")
    os.rename(host.path("current_model"), host.path("old_model"))
    rc, result = run_module(capsys, {"training_base_dir": host.base})
    assert rc == 0 and result["checkpoints_exist"] is False
    assert result["changes"][0]["severity"] == "warn"


def test_invalid_values_and_missing_paths_are_named_one_by_one(host, capsys):
    host.update_config(learning_rate=5, dataset_path="data/none.jsonl", seed=-1)
    rc, result = run_module(capsys, {"training_base_dir": host.base, "state": "locked"})
    assert rc == 1 and result["valid"] is False and not os.path.exists(host.path(".config_lock.json"))
    assert result["msg"].startswith("3 problems (the lock is not written): ")
    assert sorted(p["key"] for p in result["problems"]) == ["dataset_path", "learning_rate", "seed"]


def test_a_foreign_lock_is_never_overwritten(host, capsys):
    lock = host.path(".config_lock.json")
    with open(lock, "w") as handle:
        handle.write("locked by the old script\n")
    rc, result = run_module(capsys, {"training_base_dir": host.base, "state": "locked"})
    assert rc == 1 and "left as it is" in result["msg"] and result["lock"]["state"] == "unparseable"
    assert read(lock) == b"locked by the old script\n"
    rc, result = run_module(capsys, {"training_base_dir": host.base})
    assert rc == 0 and result["lock"]["state"] == "unparseable"


def test_missing_or_broken_config(host, capsys, tmp_path):
    with open(host.path("config.json"), "w") as handle:
        handle.write('{"base_model": ')
    rc, result = run_module(capsys, {"training_base_dir": host.base})
    assert rc == 1 and "is not valid JSON" in result["msg"] and result["sha256"] is None
    rc, result = run_module(capsys, {"training_base_dir": str(tmp_path)})
    assert rc == 1 and result["msg"].endswith("config.json is missing")
