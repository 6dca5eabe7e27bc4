"""config.json rules, bounded JSON files, and the config lock."""

from __future__ import annotations

import json
import math
import os

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _training_config as tc
from simtrain.host import FULL_CONFIG, LORA_CONFIG, sparse


@pytest.fixture
def base(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("{}\n")
    (tmp_path / "current_model").mkdir()
    return str(tmp_path)


def codes(problems):
    return sorted((p["key"], p["code"]) for p in problems)


def test_the_simulated_host_configs_are_valid(base):
    assert tc.validate(dict(FULL_CONFIG), base) == []
    assert tc.validate(dict(LORA_CONFIG), base) == []


def test_required_keys_are_named_one_by_one(base):
    problems = tc.validate({"learning_rate": 1e-5}, base)
    assert codes(problems) == [("base_model", "missing_key"), ("dataset_path", "missing_key"),
                               ("output_dir", "missing_key")]
    assert "required key base_model is missing" in problems[0]["message"]
    assert "names no training data" in [p for p in problems if p["key"] == "dataset_path"][0]["message"]


@pytest.mark.parametrize("key, value, code, text", [
    ("learning_rate", -0.1, "out_of_range", "learning_rate is -0.1, must be > 0 and <= 1"),
    ("learning_rate", 0, "out_of_range", "must be > 0"),
    ("learning_rate", "2e-5", "wrong_type", 'must be a finite number, not "2e-5"'),
    ("learning_rate", float("nan"), "wrong_type", "finite number"),
    ("learning_rate", True, "wrong_type", "not true"),
    ("num_train_epochs", 0, "out_of_range", "> 0"),
    ("max_steps", 0, "out_of_range", "(or -1)"),
    ("per_device_train_batch_size", 8.5, "wrong_type", "whole number"),
    ("per_device_train_batch_size", True, "wrong_type", "whole number"),
    ("gradient_accumulation_steps", 0, "out_of_range", ">= 1"),
    ("warmup_ratio", 1, "out_of_range", "< 1"),
    ("lora_dropout", -0.5, "out_of_range", ">= 0"),
    ("save_total_limit", -1, "out_of_range", ">= 0"),   # 0 keeps every checkpoint (transformers), as null does
    ("finetuning_type", "qlora-ish", "bad_choice", "full, freeze, lora, oft"),
    ("fp16", "yes", "wrong_type", "true or false"),
    ("resume_from_checkpoint", 3, "wrong_type", "the path of a checkpoint"),
    ("resume_from_checkpoint", "current_model/checkpoint-9", "missing_path", "does not exist"),
    ("dataset_path", "data/missing.jsonl", "missing_path", "data/missing.jsonl"),
    ("dataset_paths", ["data/train.jsonl", "data/gone.jsonl"], "missing_path", "gone.jsonl"),
    ("dataset_paths", [], "wrong_type", "a path or a list of paths"),
    ("base_model", "", "wrong_type", "a model name"),
    ("base_model", "not a model name!", "bad_value", "neither an existing local path"),
    ("base_model", "/models/llama-missing", "missing_path", "does not exist"),
    ("output_dir", "nowhere/deeper/out", "missing_path", "nor does its parent"),
    ("output_dir", "data/train.jsonl", "bad_value", "not a folder"),
    ("output_dir", "out\u0000", "missing_path", "contains a NUL byte"),
    ("output_dir", "out\ud800", "missing_path", "is not a path this system can look up"),   # legal JSON: "\ud800"
    ("resume_from_checkpoint", "ckpt\ud800", "missing_path", "is not a path this system can look up"),
])
def test_each_rule_names_the_key_and_the_value(base, key, value, code, text):
    config = dict(FULL_CONFIG)
    config[key] = value
    problems = tc.validate(config, base)
    assert [(p["key"], p["code"]) for p in problems] == [(key, code)], problems
    assert text in problems[0]["message"]
    assert problems[0]["message"].startswith("config.json")


def test_nullable_keys_paths_and_local_models(base):
    config = dict(FULL_CONFIG, save_total_limit=None, eval_steps=None, resume_from_checkpoint=None,
                  base_model="data", output_dir="new_run", max_steps=-1)
    assert tc.validate(config, base) == []  # base_model "data" exists locally; output_dir's parent exists


def test_conflicts(base):
    config = dict(FULL_CONFIG, use_lora=True, fp16=True, bf16=True)
    assert codes(tc.validate(config, base)) == [("bf16", "conflict"), ("finetuning_type", "conflict")]


def test_not_an_object(base):
    assert tc.validate([1, 2], base)[0]["message"] == "config.json must hold a JSON object, not a list"


def test_training_mode():
    assert tc.training_mode(FULL_CONFIG)[0] == "full"
    assert tc.training_mode(LORA_CONFIG) == ("lora", 'finetuning_type: "lora"')
    assert tc.training_mode({"use_peft": True})[0] == "lora"
    assert tc.training_mode({"peft_config": {"r": 8}})[0] == "lora"
    assert tc.training_mode({"finetuning_type": "freeze"})[0] == "full"
    assert tc.training_mode({"base_model": "x"})[0] is None
    assert tc.training_mode(None)[0] is None


# -- bounded JSON files --------------------------------------------------------------------------

def test_read_json_refuses_huge_fifo_folder_and_names_the_problem(tmp_path):
    huge = str(tmp_path / "huge.json")
    sparse(huge, 1024 ** 3)
    with pytest.raises(tc.JsonFileError) as err:
        tc.read_json(huge)
    assert err.value.state == tc.TOO_LARGE and "1.0 GiB, larger than its limit of 16.0 MiB" in err.value.message
    fifo = str(tmp_path / "fifo.json")
    os.mkfifo(fifo)
    with pytest.raises(tc.JsonFileError) as err:
        tc.read_json(fifo)
    assert err.value.state == tc.NOT_REGULAR and "fifo" in err.value.message
    with pytest.raises(tc.JsonFileError) as err:
        tc.read_json(str(tmp_path))
    assert err.value.state == tc.NOT_REGULAR
    with pytest.raises(tc.JsonFileError) as err:
        tc.read_json(str(tmp_path / "missing.json"))
    assert err.value.state == tc.MISSING


@pytest.mark.parametrize("data, text", [
    (b"", "is empty"),
    (b'{"a": ', "not valid JSON"),
    (b"\xff\xfe\xfa", "not UTF-8"),
    (b"[" * 100000, "nested too deeply"),
    (b'{"global_step": ' + b"1" * 5000 + b"}", "cannot be read as JSON: Exceeds the limit"),   # Python's digit limit
])
def test_read_json_invalid(tmp_path, data, text):
    path = tmp_path / "x.json"
    path.write_bytes(data)
    with pytest.raises(tc.JsonFileError) as err:
        tc.read_json(str(path))
    assert err.value.state == tc.INVALID and text in err.value.message


def test_write_json_atomic_keeps_the_mode_and_refuses_what_is_not_a_file(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text("{}")
    os.chmod(str(path), 0o600)
    tc.write_json_atomic(str(path), {"a": "é"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": "é"}
    assert os.stat(str(path)).st_mode & 0o777 == 0o600
    assert os.listdir(str(tmp_path)) == ["doc.json"]
    link = tmp_path / "link.json"
    link.symlink_to(path)
    with pytest.raises(tc.JsonFileError):
        tc.write_json_atomic(str(link), {})
    assert link.is_symlink() and json.loads(path.read_text()) == {"a": "é"}


def test_a_temp_file_swapped_for_a_symlink_gives_nothing_of_root_s_to_its_target(tmp_path, monkeypatch):
    # the service user owns the base dir root writes the lock into: it can swap the temp file for a link to a
    # root file (as /etc/shadow) between the write and the rename; mode and owner went by path onto the target
    victim = tmp_path / "outside" / "victim"
    victim.parent.mkdir()
    victim.write_text("secret")
    os.chmod(str(victim), 0o600)
    path = tmp_path / "base" / ".config_lock.json"
    path.parent.mkdir()
    path.write_text("{}")
    os.chmod(str(path), 0o666)
    if os.geteuid() == 0:   # root keeps the owner of the file it rewrites: the service user's here
        os.chown(str(path), 65534, 65534)
    real_fsync = os.fsync

    def fsync_then_swap(fd):
        real_fsync(fd)
        for name in os.listdir(str(path.parent)):
            if name.endswith(".tmp"):
                os.unlink(str(path.parent / name))
                os.symlink(str(victim), str(path.parent / name))
    monkeypatch.setattr(os, "fsync", fsync_then_swap)
    with pytest.raises(OSError, match="was replaced by another file while it was written"):
        tc.write_json_atomic(str(path), {"kind": "x"})
    st = os.stat(str(victim))
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o600, os.geteuid(), os.getegid())
    assert victim.read_text() == "secret"


def test_load_and_validate_reports_the_file_problem(base):
    report = tc.load_and_validate(os.path.join(base, "config.json"), base)
    assert report["state"] == tc.MISSING and report["error"].endswith("config.json is missing")


# -- the lock --------------------------------------------------------------------------------------

def test_hash_does_not_depend_on_key_order():
    a = {"base_model": "x", "learning_rate": 1e-5}
    b = {"learning_rate": 1e-5, "base_model": "x"}
    assert tc.config_hash(a) == tc.config_hash(b) != tc.config_hash(dict(a, base_model="y"))


def test_lock_document_and_read_lock(tmp_path):
    doc = tc.lock_document(dict(FULL_CONFIG), "/srv/t/config.json", 1767225600)
    assert doc["locked_at"] == "2026-01-01T00:00:00Z" and doc["sha256"] == tc.config_hash(FULL_CONFIG)
    path = str(tmp_path / ".config_lock.json")
    tc.write_json_atomic(path, doc)
    report = tc.read_lock(path)
    assert report["state"] == "ok" and report["lock"]["config"] == FULL_CONFIG
    assert tc.read_lock(str(tmp_path / "none.json"))["state"] == tc.MISSING


@pytest.mark.parametrize("content", [
    b"base_model=x\nlocked=yes\n",                 # an old tool's own format
    b'{"config": {"base_model": "x"}, "hash": "abc"}',  # JSON, but not ours
    b"",
])
def test_a_foreign_lock_is_unparseable(tmp_path, content):
    path = tmp_path / "lock.json"
    path.write_bytes(content)
    report = tc.read_lock(str(path))
    assert report["state"] == "unparseable" and "left as it is" in report["error"]


def test_compare_names_both_values_and_grades_each_change():
    locked = dict(FULL_CONFIG)
    current = dict(FULL_CONFIG, base_model="meta-llama/Llama-2-7b-hf", learning_rate=2e-05, seed=7,
                   dataset_path="data/other.jsonl")
    del current["fp16"]
    changes = dict((c["key"], c) for c in tc.compare(locked, current, True, "1 checkpoint in /x, newest checkpoint-5"))
    assert sorted(changes) == ["base_model", "dataset_path", "fp16", "learning_rate", "seed"]
    assert changes["base_model"]["severity"] == "fail"
    assert changes["base_model"]["message"] == (
        'base_model changed from "openai/whisper-large-v2" to "meta-llama/Llama-2-7b-hf" since the lock while '
        "checkpoints exist (1 checkpoint in /x, newest checkpoint-5): the checkpoints were trained from the locked "
        "base model")
    assert changes["learning_rate"]["severity"] == "warn" and changes["dataset_path"]["severity"] == "warn"
    assert changes["seed"]["severity"] == "info" and changes["fp16"]["after"] is None
    assert "(absent)" in changes["fp16"]["message"]
    without = dict((c["key"], c["severity"]) for c in tc.compare(locked, current, False))
    assert without["base_model"] == "warn"


def test_compare_lora_shape_changes_block_with_checkpoints():
    changes = tc.compare(dict(LORA_CONFIG), dict(LORA_CONFIG, lora_r=16, lora_alpha=32), True)
    assert dict((c["key"], c["severity"]) for c in changes) == {"lora_r": "fail", "lora_alpha": "warn"}


def test_nan_in_a_config_is_hashable_and_compared():
    config = dict(FULL_CONFIG, learning_rate=float("nan"))
    assert len(tc.config_hash(config)) == 64
    assert math.isnan(tc.compare(FULL_CONFIG, config, False)[0]["after"])


def test_a_path_option_defaults_under_the_base_folder_and_none_switches_it_off():
    assert tc.option_path(None, "/t", "status/s.json", "status_file") == "/t/status/s.json"
    assert tc.option_path(None, None, "status/s.json", "status_file") is None
    assert tc.option_path(" None ", "/t", "status/s.json", "status_file") is None
    assert tc.option_path("x.json", "/t", "status/s.json", "status_file") == "/t/x.json"
    assert tc.option_path("/abs/x.json", None, "status/s.json", "status_file") == "/abs/x.json"
    for value, base, text in (("", "/t", "status_file must be a path or 'none'"),
                              ("a\0b", "/t", "status_file must be a path or 'none'"),
                              ("x.json", None, "a relative status_file needs training_base_dir")):
        with pytest.raises(ValueError) as err:
            tc.option_path(value, base, "status/s.json", "status_file")
        assert str(err.value) == text
