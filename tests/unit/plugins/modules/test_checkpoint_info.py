from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpuops.preflight.plugins.modules import checkpoint_info
from simtrain import fixtures, temporary_host


def run_module(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        checkpoint_info.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture
def full():
    with temporary_host(mode="full") as host:
        yield host


@pytest.fixture
def lora():
    with temporary_host(mode="lora") as host:
        yield host


def test_healthy_full_host(full, capsys):
    host = full
    with open(host.path("status", "training_status.json"), "w") as handle:
        json.dump({"current_step": 5100, "updated_at": "2026-01-01T00:00:00"}, handle)
    rc, result = run_module(capsys, {"training_base_dir": host.base})
    assert rc == 0 and result["changed"] is False and result["problems"] == []
    latest = result["latest"]
    assert (latest["name"], latest["step"], latest["layout"], latest["resumable"]) == ("checkpoint-5000", 5000, "full", True)
    assert result["checkpoints"] == [latest]
    assert result["message"].startswith("newest checkpoint checkpoint-5000 (full, step 5000) is resumable")


def test_lora_checkpoint_under_a_full_config_fails(full, capsys):
    host = full
    host.add_checkpoint(fixtures.LORA_LISTING, fixtures.LORA_STATE, step=6000, global_step=6000)
    rc, result = run_module(capsys, {"training_base_dir": host.base})
    assert rc == 1 and "holds a LoRA adapter, but config.json trains the full model" in result["msg"]
    assert [c["step"] for c in result["checkpoints"]] == [6000, 5000]


def test_status_step_zero_would_start_from_scratch(lora, capsys):
    host = lora
    with open(host.path("status", "training_status.json"), "w") as handle:
        json.dump({"current_step": 0, "updated_at": "2026-01-01T00:00:00"}, handle)
    rc, result = run_module(capsys, {"training_base_dir": host.base})
    assert rc == 1 and "would start from scratch" in result["msg"]
    assert result["problems"][0]["status"] == "fail" and result["problems"][0]["fix"]


def test_one_folder_named_directly_with_expect_layout_and_no_config(lora, capsys):
    folder = lora.path("current_model", "checkpoint-1000")
    rc, result = run_module(capsys, {"path": folder, "expect_layout": "lora"})
    assert rc == 0 and result["latest"]["path"] == folder and result["latest"]["resumable"] is True
    rc, result = run_module(capsys, {"path": folder, "expect_layout": "full"})
    assert rc == 1 and "expect_layout asks for the full model" in result["msg"]
    assert result["latest"]["missing"] == ["model.safetensors"]


def test_final_export_warns_and_a_missing_path_is_no_failure(capsys, tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    for name in ("model.safetensors", "config.json"):
        (export / name).write_bytes(b"x")
    rc, result = run_module(capsys, {"path": str(export)})
    assert rc == 0 and result["latest"]["resumable"] is False
    assert result["problems"][0]["status"] == "warn" and "not resumable" in result["problems"][0]["message"]
    rc, result = run_module(capsys, {"path": str(tmp_path / "none")})
    assert rc == 0 and result["checkpoints"] == [] and result["latest"] is None


@pytest.mark.parametrize("args, text", [
    ({}, "path is required when training_base_dir is not set"),
    ({"path": "/x", "status_file": "rel.json"}, "a relative status_file needs training_base_dir"),
    ({"path": "/x", "expect_layout": "adapter"}, "value of expect_layout must be one of"),
])
def test_bad_options(capsys, args, text):
    rc, result = run_module(capsys, args)
    assert rc == 1 and text in result["msg"]


def test_a_file_as_path_fails(capsys, tmp_path):
    (tmp_path / "f").write_text("x")
    rc, result = run_module(capsys, {"path": str(tmp_path / "f")})
    assert rc == 1 and result["msg"].endswith("%s is a regular file, not a folder" % (tmp_path / "f"))


def test_a_recorded_checkpoint_without_rng_state_warns_under_resume_from_checkpoint_true(full, capsys):
    # bart-large-cnn-samsum checkpoint-500 (transformers < 4.6: no rng_state.pth) as the newest checkpoint of a full
    # fine-tune whose config.json sets resume_from_checkpoint true: not resumable, yet the Trainer resumes from it,
    # so a warning and no failure
    host = full
    host.add_checkpoint("bart-large-cnn-samsum_full_ft_sagemaker_2021_checkpoint-500_listing.txt",
                        "bart-large-cnn-samsum_full_ft_sagemaker_2021_checkpoint-500_trainer_state.json",
                        step=6000, global_step=6000)
    with open(host.path("status", "training_status.json"), "w") as handle:
        json.dump({"current_step": 6000, "updated_at": "2026-01-01T00:00:00"}, handle)
    rc, result = run_module(capsys, {"training_base_dir": host.base})
    assert rc == 0 and [p["status"] for p in result["problems"]] == ["warn"], result.get("msg")
    latest = result["latest"]
    assert (latest["step"], latest["resumable"], latest["missing"], latest["trainer_resumes"]) == (
        6000, False, ["rng_state.pth"], True)
