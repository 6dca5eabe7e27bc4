"""Checkpoints: the recorded real listings laid out as sparse files, layouts, resumability, numeric order."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _checkpoints as ck
from simtrain import fixtures
from simtrain.host import sparse

RESUME = ["optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"]


def lay_out(root, listing, name=None, state=None, global_step=None, drop=()):
    """A recorded listing as sparse files under root/<name>; the real trainer_state.json when given."""
    rows = fixtures.listing(listing)
    folder = os.path.join(str(root), name or rows[0][0].split("/", 1)[0])
    for rel, size in rows:
        fname = rel.split("/", 1)[1]
        if fname in drop:
            continue
        target = os.path.join(folder, fname)
        if fname == "trainer_state.json" and state:
            os.makedirs(folder, exist_ok=True)
            doc = json.loads(fixtures.trainer_state_path(state).read_text())
            if global_step is not None:
                doc["global_step"] = global_step
            with open(target, "w") as handle:
                json.dump(doc, handle)
        else:
            sparse(target, size)
    return folder


def files(folder, names, size=10):
    for name in names:
        sparse(os.path.join(str(folder), name), size)
    return str(folder)


def state(folder, step):
    with open(os.path.join(str(folder), "trainer_state.json"), "w") as handle:
        json.dump({"global_step": step, "max_steps": 9000}, handle)


def test_recorded_full_checkpoint_with_its_real_state_is_resumable(tmp_path):
    folder = lay_out(tmp_path, fixtures.FULL_LISTING, "checkpoint-5000", fixtures.FULL_STATE)
    entry = ck.inspect(folder)
    assert (entry["layout"], entry["step"], entry["global_step"], entry["max_steps"]) == ("full", 5000, 5000, 5000)
    assert entry["resumable"] is True and entry["missing"] == [] and entry["problems"] == []


def test_recorded_lora_checkpoint_is_lora_and_resumable(tmp_path):
    folder = lay_out(tmp_path, fixtures.LORA_LISTING, state=fixtures.LORA_STATE)
    entry = ck.inspect(folder)
    assert (entry["layout"], entry["step"], entry["global_step"]) == ("lora", 1000, 1000)
    assert entry["resumable"] is True


def test_recorded_lora_checkpoint_with_a_2025_trainer_state_and_fp16_scaler_is_resumable(tmp_path):
    # transformers' newer state keys (best_global_step, stateful_callbacks) and the fp16 scaler.pt change nothing
    listing = "gemma3-1b_lora_kaggle_checkpoint-1200_listing.txt"
    folder = lay_out(tmp_path, listing, state="gemma3-1b_lora_kaggle_checkpoint-1200_trainer_state.json")
    entry = ck.inspect(folder)
    assert (entry["layout"], entry["step"], entry["global_step"], entry["max_steps"]) == ("lora", 1200, 1200, 3765)
    assert entry["resumable"] is True and entry["missing"] == [] and entry["problems"] == []
    # the same LoRA-era checkpoint under a full fine-tuning config: the full weights are what is missing
    entry = ck.inspect(folder, expect_layout=ck.FULL)
    assert entry["resumable"] is False and entry["missing"] == ["model.safetensors"]


def test_a_trainer_state_that_logged_nan_is_still_read(tmp_path):
    # transformers writes trainer_state.json with json.dumps, which writes a NaN loss as a bare NaN (hand-made, in the
    # shape of a real log_history: {"loss": 0.0, "grad_norm": NaN}, {"eval_loss": NaN})
    folder = files(tmp_path / "checkpoint-50", ["model.safetensors"] + RESUME[:3])
    with open(os.path.join(folder, "trainer_state.json"), "w") as handle:
        handle.write('{\n  "global_step": 50,\n  "log_history": [\n    {"grad_norm": NaN, "loss": 0.0, "step": 50},\n'
                     '    {"eval_loss": NaN, "step": 50}\n  ],\n  "best_metric": Infinity,\n  "max_steps": 56\n}\n')
    entry = ck.inspect(folder)
    assert (entry["global_step"], entry["max_steps"], entry["resumable"]) == (50, 56, True), entry["problems"]


def test_recorded_safetensors_listing_without_its_state_is_full_but_not_resumable(tmp_path):
    # The spam-classifier listing's trainer_state.json was not recorded: laid out sparse (zeros), it does not parse.
    folder = lay_out(tmp_path, fixtures.FULL_SAFETENSORS_LISTING)
    entry = ck.inspect(folder)
    assert entry["layout"] == "full" and entry["step"] == 500 and entry["resumable"] is False
    assert "is not valid JSON" in entry["problems"][0]


def test_a_folder_named_directly_is_the_only_entry_and_its_step_comes_from_the_state(tmp_path):
    folder = lay_out(tmp_path, fixtures.FULL_LISTING, state=fixtures.FULL_STATE)  # "last-checkpoint"
    report = ck.find(folder)
    assert report["single"] is True and report["error"] is None
    assert [(e["name"], e["step"], e["resumable"]) for e in report["checkpoints"]] == [("last-checkpoint", 5000, True)]
    assert report["latest"] is report["checkpoints"][0]


def test_newest_is_by_step_number_not_by_name(tmp_path):
    for step in (50, 999, 1000, 200):
        folder = files(tmp_path / ("checkpoint-%d" % step),
                       ["model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"])
        state(folder, step)
    os.makedirs(str(tmp_path / "runs"))
    os.makedirs(str(tmp_path / "tmp-checkpoint-1100"))
    files(tmp_path, ["checkpoint-2000"])  # a file, not a folder: not a checkpoint
    report = ck.find(str(tmp_path))
    assert [e["step"] for e in report["checkpoints"]] == [1000, 999, 200, 50]
    assert report["latest"]["name"] == "checkpoint-1000" and report["single"] is False
    assert ck.describe(report) == "4 checkpoints in %s, newest checkpoint-1000" % tmp_path


def test_final_export_is_not_resumable_and_names_what_is_missing(tmp_path):
    export = files(tmp_path / "final", ["model.safetensors", "config.json", "generation_config.json"])
    entry = ck.find(export)["latest"]
    assert entry["layout"] == "full" and entry["resumable"] is False
    assert entry["missing"] == ["optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"]
    assert entry["step"] is None and entry["trainer_resumes"] is False


def test_expect_layout_follows_the_config_and_lists_the_missing_weights(tmp_path):
    folder = lay_out(tmp_path, fixtures.LORA_LISTING, state=fixtures.LORA_STATE)
    as_full = ck.inspect(folder, "full")
    assert as_full["layout"] == "lora" and as_full["missing"] == ["model.safetensors"] and not as_full["resumable"]
    assert ck.inspect(folder, "lora")["resumable"] is True
    full = lay_out(tmp_path, fixtures.FULL_LISTING, "checkpoint-5000", fixtures.FULL_STATE)
    as_lora = ck.inspect(full, "lora")
    assert as_lora["missing"] == ["adapter_model.safetensors", "adapter_config.json"]


def test_adapter_without_its_config_is_incomplete(tmp_path):
    folder = lay_out(tmp_path, fixtures.LORA_LISTING, state=fixtures.LORA_STATE, drop=("adapter_config.json",))
    entry = ck.inspect(folder)
    assert entry["layout"] == "lora" and entry["missing"] == ["adapter_config.json"] and not entry["resumable"]


def test_sharded_weights_index_and_missing_shards(tmp_path):
    folder = tmp_path / "checkpoint-300"
    files(folder, ["model-00001-of-00003.safetensors", "model-00003-of-00003.safetensors"] + RESUME[:3])
    state(folder, 300)
    with open(str(folder / "model.safetensors.index.json"), "w") as handle:
        json.dump({"metadata": {"total_size": 3}, "weight_map": {
            "a": "model-00001-of-00003.safetensors", "b": "model-00002-of-00003.safetensors",
            "c": "model-00003-of-00003.safetensors"}}, handle)
    entry = ck.inspect(str(folder))
    assert entry["layout"] == "full" and entry["missing"] == ["model-00002-of-00003.safetensors"]
    assert not entry["resumable"]
    files(folder, ["model-00002-of-00003.safetensors"])
    assert ck.inspect(str(folder))["resumable"] is True
    os.unlink(str(folder / "model.safetensors.index.json"))
    assert ck.inspect(str(folder))["missing"] == ["model.safetensors.index.json"]
    legacy = tmp_path / "checkpoint-301"
    files(legacy, ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin",
                   "pytorch_model.bin.index.json"] + RESUME[:3])
    state(legacy, 301)
    entry = ck.inspect(str(legacy))
    assert entry["layout"] == "full" and entry["resumable"] is True  # an index that is not JSON: the names decide


def deepspeed(folder, step, model_states=("mp_rank_00_model_states.pt",), ranks=2, latest=True):
    """A checkpoint as transformers writes it under DeepSpeed: its own global_step<N>/ folder, named by ``latest``;
    no scheduler.pt (DeepSpeed keeps the scheduler it wraps)."""
    tag = "global_step%d" % step
    files(os.path.join(str(folder), tag), list(model_states)
          + ["bf16_zero_pp_rank_%d_mp_rank_00_optim_states.pt" % r for r in range(ranks)])
    files(folder, ["zero_to_fp32.py", "training_args.bin"] + ["rng_state_%d.pth" % r for r in range(ranks)])
    if latest:
        with open(os.path.join(str(folder), "latest"), "w") as handle:
            handle.write(tag)
    state(folder, step)
    return str(folder)


def test_the_trainer_with_accelerate_s_optimizer_bin_and_per_process_rng_is_resumable(tmp_path):
    folder = files(tmp_path / "checkpoint-10",
                   ["model.safetensors", "optimizer.bin", "scheduler.pt", "rng_state_0.pth", "rng_state_1.pth"])
    state(folder, 10)
    entry = ck.inspect(folder)
    assert (entry["engine"], entry["resumable"], entry["missing"]) == ("trainer", True, [])


def test_a_deepspeed_checkpoint_needs_no_scheduler_pt(tmp_path):
    # as a real 2-GPU ZeRO run writes it (transformers writes scheduler.pt only for a scheduler DeepSpeed does not wrap)
    folder = deepspeed(tmp_path / "checkpoint-1000", 1000)
    files(folder, ["model.safetensors"])
    entry = ck.inspect(folder)
    assert (entry["engine"], entry["layout"], entry["resumable"], entry["missing"]) == ("deepspeed", "full", True, [])


def test_a_deepspeed_checkpoint_cut_off_while_saving_is_not_resumable(tmp_path):
    folder = str(tmp_path / "checkpoint-1000")
    os.makedirs(os.path.join(folder, "global_step1000"))       # killed before DeepSpeed wrote into it
    files(folder, ["model.safetensors", "rng_state_0.pth"])
    state(folder, 1000)
    entry = ck.inspect(folder)
    assert entry["resumable"] is False
    assert entry["missing"] == ["latest", "global_step<N>/*optim_states.pt", "global_step<N>/*model_states.pt"]


def test_deepspeed_s_latest_must_name_a_folder_that_holds_the_optimizer_states(tmp_path):
    folder = deepspeed(tmp_path / "checkpoint-1000", 1000)
    files(folder, ["model.safetensors"])
    with open(os.path.join(folder, "latest"), "w") as handle:
        handle.write("global_step999")                          # a tag that is not there
    assert ck.inspect(folder)["missing"] == ["latest", "global_step<N>/*optim_states.pt",
                                             "global_step<N>/*model_states.pt"]


def test_zero3_weights_kept_by_deepspeed_alone_count_as_weights_of_an_untold_layout(tmp_path):
    # ZeRO-3 without stage3_gather_16bit_weights_on_model_save: transformers removes its dummy model.safetensors
    folder = deepspeed(tmp_path / "checkpoint-40", 40, model_states=["zero_pp_rank_0_mp_rank_00_model_states.pt",
                                                                     "zero_pp_rank_1_mp_rank_00_model_states.pt"])
    for expect in ("auto", "full", "lora"):
        entry = ck.inspect(folder, expect)
        assert (entry["layout"], entry["engine_weights"], entry["resumable"], entry["missing"]) == (
            None, True, True, []), expect


def test_an_fsdp_sharded_checkpoint_is_resumable_and_its_layout_untold(tmp_path):
    # accelerate's SHARDED_STATE_DICT: weights and optimizer in folders, no model file at the top
    folder = files(tmp_path / "checkpoint-5060", ["pytorch_model_fsdp_0/.metadata", "pytorch_model_fsdp_0/__0_0.distcp",
                                                  "optimizer_0/.metadata", "optimizer_0/__0_0.distcp", "scheduler.pt",
                                                  "rng_state_0.pth", "rng_state_1.pth"])
    state(folder, 5060)
    entry = ck.inspect(folder)
    assert (entry["engine"], entry["layout"], entry["engine_weights"], entry["resumable"]) == ("fsdp", None, True, True)
    os.remove(os.path.join(folder, "scheduler.pt"))   # FSDP, unlike DeepSpeed, leaves the scheduler to the Trainer
    assert ck.inspect(folder)["missing"] == ["scheduler.pt"]


@pytest.mark.parametrize("empty", ["rng_state_1.pth", "global_step20/bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt",
                                   "global_step20/mp_rank_00_model_states.pt"])
def test_any_empty_file_resuming_needs_makes_it_not_resumable(tmp_path, empty):
    # a power loss leaves files of 0 bytes; torch.load would fail on any of them
    folder = deepspeed(tmp_path / "checkpoint-20", 20)
    files(folder, [empty], size=0)
    entry = ck.inspect(folder)
    assert entry["empty"] == [empty] and entry["resumable"] is False


def test_a_large_trainer_state_written_by_transformers_is_read_from_its_ends(tmp_path):
    folder = files(tmp_path / "checkpoint-150000", ["model.safetensors"] + RESUME[:3])
    path = os.path.join(folder, "trainer_state.json")
    history = [{"epoch": i / 1000.0, "grad_norm": 0.5, "learning_rate": 2e-05, "loss": 1.25, "step": i}
               for i in range(1, 150001)]   # logging_steps=1 over a long run: about 20 MiB
    with open(path, "w") as handle:
        json.dump({"epoch": 3.0, "global_step": 150000, "log_history": history, "logging_steps": 1,
                   "max_steps": 150000, "trial_name": None}, handle, indent=2, sort_keys=True)
    assert os.path.getsize(path) > ck.STATE_LIMIT
    entry = ck.inspect(folder)
    assert (entry["global_step"], entry["max_steps"], entry["resumable"]) == (150000, 150000, True), entry["problems"]
    with open(path, "r+") as handle:   # cut off while being written
        handle.truncate(ck.STATE_LIMIT + 10)
    entry = ck.inspect(folder)
    assert entry["resumable"] is False and "cut off while being written" in entry["problems"][0]


def test_last_checkpoint_beside_a_final_export_is_the_checkpoint(tmp_path):
    # a clone of a hub_strategy="checkpoint" repository: the final weights at the top, the resumable copy below
    root = files(tmp_path / "model", ["model.safetensors", "config.json"])
    files(os.path.join(root, "last-checkpoint"), ["model.safetensors"] + RESUME[:3])
    state(os.path.join(root, "last-checkpoint"), 900)
    report = ck.find(root)
    assert [(e["name"], e["step"], e["resumable"]) for e in report["checkpoints"]] == [("last-checkpoint", 900, True)]


def test_empty_files_and_step_mismatch(tmp_path):
    folder = files(tmp_path / "checkpoint-700", ["model.safetensors", "scheduler.pt", "rng_state.pth"])
    files(folder, ["optimizer.pt"], size=0)
    state(folder, 650)
    entry = ck.inspect(folder)
    assert entry["empty"] == ["optimizer.pt"] and entry["resumable"] is False
    assert entry["step"] == 700 and entry["global_step"] == 650
    assert any("global_step 650, the folder name says 700" in p for p in entry["problems"])


@pytest.mark.parametrize("content, message", [
    (None, "larger than its limit of 16.0 MiB"),
    (b'{"global_step": 1', "is not valid JSON"),
    (b'{"global_step": "1000"}', "not a whole number"),
    (b"[1, 2]", "holds no JSON object"),
    (b"\xff\xfe\x00garbage", "not valid JSON"),
])
def test_a_bad_trainer_state_is_named_and_makes_it_not_resumable(tmp_path, content, message):
    folder = files(tmp_path / "checkpoint-9", ["model.safetensors"] + RESUME[:3])
    path = os.path.join(folder, "trainer_state.json")
    if content is None:
        sparse(path, 1024 ** 3)  # 1 GB: refused with the limit named, never read
    else:
        with open(path, "wb") as handle:
            handle.write(content)
    entry = ck.inspect(folder)
    assert entry["resumable"] is False and entry["global_step"] is None
    assert any(message in p for p in entry["problems"]), entry["problems"]


def test_a_fifo_in_place_of_trainer_state_does_not_block(tmp_path):
    folder = files(tmp_path / "checkpoint-9", ["model.safetensors"] + RESUME[:3])
    os.mkfifo(os.path.join(folder, "trainer_state.json"))
    entry = ck.inspect(folder)
    assert entry["resumable"] is False and entry["global_step"] is None
    assert any("is a fifo, not a regular file" in p for p in entry["problems"]), entry["problems"]


def test_bad_paths(tmp_path):
    assert ck.find(str(tmp_path / "nothing"))["error"].endswith("does not exist")
    files(tmp_path, ["a-file"])
    assert "not a folder" in ck.find(str(tmp_path / "a-file"))["error"]
    empty = ck.find(str(tmp_path))
    assert empty["checkpoints"] == [] and empty["latest"] is None and empty["error"] is None
    assert ck.describe(empty) == "no checkpoint in %s" % tmp_path
    with pytest.raises(ValueError):
        ck.find(str(tmp_path), "adapter")


def test_an_unreadable_checkpoint_folder_is_reported(tmp_path):
    folder = tmp_path / "checkpoint-5"
    folder.mkdir()
    shutil.rmtree(str(folder))
    entry = ck.inspect(str(folder))
    assert entry["resumable"] is False and "cannot be listed" in entry["problems"][0]


OLD_LISTING = "bart-large-cnn-samsum_full_ft_sagemaker_2021_checkpoint-500_listing.txt"
OLD_STATE = "bart-large-cnn-samsum_full_ft_sagemaker_2021_checkpoint-500_trainer_state.json"


def test_recorded_checkpoint_of_a_transformers_without_rng_state_is_not_resumable_yet_the_trainer_resumes(tmp_path):
    # transformers before 4.6 wrote no rng_state.pth (nor scaler.pt): without its RNG state a checkpoint is not
    # resumable (issue 10), yet today's _load_rng_state logs "Didn't find an RNG file" and goes on: the run resumes,
    # only its random draws (dropout) are not reproduced
    folder = lay_out(tmp_path, OLD_LISTING, state=OLD_STATE)
    entry = ck.inspect(folder)
    assert (entry["layout"], entry["step"], entry["global_step"], entry["max_steps"]) == ("full", 500, 500, 693)
    assert entry["resumable"] is False and entry["missing"] == ["rng_state.pth"] and entry["problems"] == []
    assert entry["trainer_resumes"] is True
    report = ck.find(str(tmp_path))
    assert [(e["name"], e["resumable"]) for e in report["checkpoints"]] == [("checkpoint-500", False)]


def test_an_empty_rng_state_stops_the_resume(tmp_path):
    # absent, the Trainer does without the RNG state; present but empty (a power loss), torch.load fails on it
    # (hand-made)
    folder = lay_out(tmp_path, OLD_LISTING, state=OLD_STATE)
    files(folder, ["rng_state.pth"], size=0)
    entry = ck.inspect(folder)
    assert entry["empty"] == ["rng_state.pth"] and entry["resumable"] is False and entry["trainer_resumes"] is False


def test_a_recorded_checkpoint_with_its_rng_state_is_resumable(tmp_path):
    folder = lay_out(tmp_path, fixtures.FULL_LISTING, "checkpoint-5000", fixtures.FULL_STATE)
    entry = ck.inspect(folder)
    assert entry["resumable"] is True and entry["trainer_resumes"] is True
    multi = files(tmp_path / "checkpoint-10", ["model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state_1.pth"])
    state(multi, 10)
    assert ck.inspect(multi)["resumable"] is True


def test_many_large_trainer_states_are_parsed_whole_only_for_the_newest_checkpoints(tmp_path, monkeypatch):
    # A long run that logs every step and keeps every checkpoint (no save_total_limit): 300 checkpoints whose
    # trainer_state.json grow to 16 MiB took 31 s to parse whole, past checkpoint_resume's 30 s. One look parses
    # WHOLE_BUDGET bytes whole, newest first; older transformers-written states are read at their ends (hand-made).
    history = []
    for step in range(100, 1001, 100):
        history.extend({"epoch": i / 1000.0, "loss": 1.25, "step": i} for i in range(step - 99, step + 1))
        folder = files(tmp_path / ("checkpoint-%d" % step), ["model.safetensors"] + RESUME[:3])
        with open(os.path.join(folder, "trainer_state.json"), "w") as handle:
            json.dump({"global_step": step, "log_history": history, "logging_steps": 1, "max_steps": 1000}, handle,
                      indent=2, sort_keys=True)
    sizes = dict((s, os.path.getsize(str(tmp_path / ("checkpoint-%d" % s) / "trainer_state.json")))
                 for s in range(100, 1001, 100))
    monkeypatch.setattr(ck, "EDGE_BYTES", 2048)   # the files scaled down: 7 to 80 kB
    assert sizes[100] > 2 * ck.EDGE_BYTES
    monkeypatch.setattr(ck, "WHOLE_BUDGET", sizes[1000] + sizes[900])
    whole = []
    read_json = ck._config.read_json
    monkeypatch.setattr(ck._config, "read_json", lambda path, limit: whole.append(path) or read_json(path, limit))
    report = ck.find(str(tmp_path))
    assert [(e["step"], e["global_step"], e["max_steps"], e["resumable"]) for e in report["checkpoints"]] == [
        (s, s, 1000, True) for s in range(1000, 0, -100)]
    assert sorted(os.path.basename(os.path.dirname(p)) for p in whole) == ["checkpoint-1000", "checkpoint-900"]
    # an older state that is not in transformers' layout (its ends do not tell) is still parsed whole
    with open(str(tmp_path / "checkpoint-500" / "trainer_state.json"), "w") as handle:
        json.dump({"global_step": 500, "log_history": history}, handle)
    del whole[:]
    entry = [e for e in ck.find(str(tmp_path))["checkpoints"] if e["step"] == 500][0]
    assert (entry["global_step"], entry["resumable"]) == (500, True)
    assert any(p.endswith("checkpoint-500/trainer_state.json") for p in whole)
    # and one cut off while being written is still found out from its ends
    with open(str(tmp_path / "checkpoint-300" / "trainer_state.json"), "r+") as handle:
        handle.truncate(sizes[300] // 2)
    entry = [e for e in ck.find(str(tmp_path))["checkpoints"] if e["step"] == 300][0]
    assert entry["resumable"] is False and "not valid JSON" in entry["problems"][0]


def test_recorded_fsdp_sharded_checkpoint_ls_is_resumable_with_its_layout_untold(tmp_path):
    # accelerate issue 2603: `ls` of a Trainer checkpoint under FSDP SHARDED_STATE_DICT; the two names without an
    # extension are the folders accelerate writes with torch.distributed.checkpoint (.metadata and one
    # __<rank>_0.distcp per process inside, as accelerate's docs list them)
    names = (fixtures.CHECKPOINTS / "accelerate-2603_gemma-2b_fsdp_sharded_checkpoint_ls.txt").read_text().split()
    folder = tmp_path / "checkpoint-500"
    for name in names:
        if name in ("optimizer_0", "pytorch_model_fsdp_0"):
            files(folder / name, [".metadata", "__0_0.distcp", "__1_0.distcp"])
        elif name == "trainer_state.json":
            state(folder, 500)
        else:
            files(folder, [name])
    for expect in ("auto", "full", "lora"):
        entry = ck.inspect(str(folder), expect)
        assert (entry["engine"], entry["layout"], entry["engine_weights"], entry["resumable"], entry["missing"]) == (
            "fsdp", None, True, True, []), expect


def test_deepspeed_needs_its_model_states_beside_a_lora_adapter(tmp_path):
    # LLaMA-Factory issue 206: a LoRA run under DeepSpeed, whose global_step<N>/mp_rank_00_model_states.pt is 50 GB;
    # its maintainer answers that it is not used and may be deleted. Deleted, resuming fails: DeepSpeed's
    # load_checkpoint asserts that it found model states (hand-made from that layout)
    folder = deepspeed(tmp_path / "checkpoint-400", 400)
    files(folder, ["adapter_model.safetensors", "adapter_config.json"])
    assert ck.inspect(folder)["resumable"] is True
    os.remove(os.path.join(folder, "global_step400", "mp_rank_00_model_states.pt"))
    entry = ck.inspect(folder)
    assert (entry["engine"], entry["layout"], entry["resumable"]) == ("deepspeed", "lora", False)
    assert entry["missing"] == ["global_step<N>/*model_states.pt"]


def test_a_deepspeed_checkpoint_whose_global_step_folder_was_deleted_names_deepspeed_s_parts(tmp_path):
    # deleting global_step<N>/ to save space (LLaMA-Factory issue 1126: "only by hand") leaves latest and zero_to_fp32.py:
    # transformers then finds no DeepSpeed checkpoint to resume from; what is missing is DeepSpeed's, not optimizer.pt
    folder = deepspeed(tmp_path / "checkpoint-600", 600)
    files(folder, ["model.safetensors"])
    shutil.rmtree(os.path.join(folder, "global_step600"))
    entry = ck.inspect(folder)
    assert (entry["engine"], entry["resumable"]) == ("deepspeed", False)
    assert entry["missing"] == ["latest", "global_step<N>/*optim_states.pt", "global_step<N>/*model_states.pt"]


def test_adapters_peft_saved_in_folders_of_their_names_are_a_resumable_lora_checkpoint(tmp_path):
    # PEFT's save_pretrained writes every adapter but "default" into a folder of its name (TRL's DPO with
    # model_adapter_name="train", ref_adapter_name="reference"); transformers' _load_from_checkpoint loads each
    # of these adapter_subdirs. Hand-made in that layout.
    folder = files(tmp_path / "checkpoint-300", ["train/adapter_model.safetensors", "train/adapter_config.json",
                                                 "reference/adapter_model.safetensors", "reference/adapter_config.json",
                                                 "runs/events.out.tfevents"] + RESUME[:3])
    state(folder, 300)
    entry = ck.inspect(folder)
    assert (entry["layout"], entry["resumable"], entry["missing"]) == ("lora", True, [])
    assert ck.inspect(folder, "full")["missing"] == ["model.safetensors"]
    os.remove(os.path.join(folder, "reference", "adapter_config.json"))   # PEFT's load_adapter needs it
    entry = ck.inspect(folder)
    assert (entry["layout"], entry["resumable"], entry["missing"]) == ("lora", False, ["reference/adapter_config.json"])
    files(folder, ["train/adapter_model.safetensors"], size=0)             # cut off: empty
    assert ck.inspect(folder)["empty"] == ["train/adapter_model.safetensors"]


def test_git_lfs_pointers_in_place_of_the_files_make_it_not_resumable(tmp_path):
    # a clone of a repository of checkpoints without git-lfs leaves the pointers git stores (135 bytes, real ones
    # here): torch.load fails on them with "UnpicklingError: invalid load key, 'v'"
    folder = lay_out(tmp_path, OLD_LISTING, state=OLD_STATE)
    files(folder, ["rng_state.pth"], size=14583)
    assert ck.inspect(folder)["resumable"] is True
    for name in ("pytorch_model.bin", "optimizer.pt"):
        pointer = fixtures.CHECKPOINTS / ("bart-large-cnn-samsum_checkpoint-500_%s_git-lfs_pointer.txt" % name)
        shutil.copyfile(str(pointer), os.path.join(folder, name))
    entry = ck.inspect(folder)
    assert (entry["layout"], entry["resumable"], entry["missing"], entry["empty"]) == ("full", False, [], [])
    assert entry["lfs_pointers"] == ["pytorch_model.bin", "optimizer.pt"]
    assert entry["problems"] == ["%s/pytorch_model.bin is a Git LFS pointer (135 bytes), not the file itself" % folder,
                                 "%s/optimizer.pt is a Git LFS pointer (135 bytes), not the file itself" % folder]
    # a small file that is no pointer (a real scheduler.pt is about 600 bytes) is no problem
    files(folder, ["scheduler.pt"], size=600)
    assert ck.inspect(folder)["lfs_pointers"] == ["pytorch_model.bin", "optimizer.pt"]


def test_a_link_to_nothing_is_a_missing_file_not_a_present_one(tmp_path):
    # files linked in from elsewhere (a scratch disk, the hub cache's blobs) whose target was removed: os.scandir
    # still lists the link, torch.load fails on it (hand-made)
    folder = files(tmp_path / "checkpoint-50", ["model.safetensors", "scheduler.pt", "rng_state.pth"])
    state(folder, 50)
    os.symlink(str(tmp_path / "scratch" / "optimizer.pt"), os.path.join(folder, "optimizer.pt"))
    entry = ck.inspect(folder)
    assert (entry["resumable"], entry["missing"]) == (False, ["optimizer.pt"])
    os.makedirs(str(tmp_path / "scratch"))
    files(tmp_path / "scratch", ["optimizer.pt"])
    assert ck.inspect(folder)["resumable"] is True          # the same link, its target back


# -- DeepSpeed without ZeRO, an adapter saved under the model's name, accelerate's save_state --------------------------

def test_a_deepspeed_stage_0_checkpoint_keeps_its_optimizer_in_the_model_states_and_is_resumable(tmp_path):
    # ZeRO stage 0 (fp16/fp32): DeepSpeed writes no *optim_states.pt (the optimizer goes into mp_rank_00_model_states.pt)
    # and copies no zero_to_fp32.py; switching such a run to stage 1 fails on the missing zero_pp_rank_*_optim_states.pt
    # (https://github.com/hiyouga/LlamaFactory/issues/1253: "stage: 0", then stage 1)
    folder = str(tmp_path / "checkpoint-300")
    files(os.path.join(folder, "global_step300"), ["mp_rank_00_model_states.pt"])
    files(folder, ["model.safetensors", "training_args.bin", "rng_state_0.pth", "rng_state_1.pth"])
    with open(os.path.join(folder, "latest"), "w") as handle:
        handle.write("global_step300")
    state(folder, 300)
    entry = ck.inspect(folder)
    assert (entry["engine"], entry["layout"], entry["resumable"], entry["missing"]) == ("deepspeed", "full", True, [])
    # ... but a ZeRO checkpoint (zero_to_fp32.py beside it) without its optimizer states is not
    files(folder, ["zero_to_fp32.py"])
    entry = ck.inspect(folder)
    assert (entry["resumable"], entry["missing"]) == (False, ["global_step<N>/*optim_states.pt"])
    # and without its model states neither is one without ZeRO
    os.remove(os.path.join(folder, "zero_to_fp32.py"))
    os.remove(os.path.join(folder, "global_step300", "mp_rank_00_model_states.pt"))
    assert ck.inspect(folder)["missing"] == ["global_step<N>/*optim_states.pt", "global_step<N>/*model_states.pt"]


def torch_zip(path, keys, tensor_bytes=2 * 1024 * 1024):
    """A file laid out as torch.save writes one: a stored zip whose first record, archive/data.pkl, pickles the state
    dict's keys, then the tensors' bytes (here zeros, 2 MiB: an adapter of a 7B model is 16 MB or more)."""
    import pickle
    import zipfile
    with zipfile.ZipFile(str(path), "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(dict((key, None) for key in keys), protocol=2))
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/data/0", b"\0" * tensor_bytes)
    return str(path)


# PEFT's names of an adapter's tensors, as in https://github.com/tloen/alpaca-lora/issues/334 (q_proj/v_proj, r=8)
LORA_KEYS = ["base_model.model.model.layers.%d.self_attn.%s_proj.lora_%s.weight" % (layer, proj, ab)
             for layer in range(32) for proj in ("q", "v") for ab in ("A", "B")]
FULL_KEYS = ["model.layers.%d.self_attn.%s_proj.weight" % (layer, proj) for layer in range(32) for proj in "qkvo"]


def alpaca_lora_output(root):
    """The output folder of github.com/Kimiko-AI/LoRa-traingcode lora-alpaca/ (names as recorded), an adapter's tensors in
    checkpoint-600/pytorch_model.bin."""
    lines = (fixtures.CHECKPOINTS / "alpaca-lora_Kimiko-AI_lora-alpaca_output_dir_names.txt").read_text().splitlines()
    top, inside = lines[0].split(), lines[2].split()
    output = str(root / "lora-alpaca")
    files(output, [n for n in top if not n.startswith(("checkpoint-", "runs"))])
    folder = os.path.join(output, "checkpoint-600")
    files(folder, [n for n in inside if n not in ("pytorch_model.bin", "trainer_state.json")])
    torch_zip(os.path.join(folder, "pytorch_model.bin"), LORA_KEYS)
    state(folder, 600)
    return output, folder


def test_an_alpaca_lora_checkpoint_whose_pytorch_model_bin_is_the_adapter_is_lora(tmp_path):
    output, folder = alpaca_lora_output(tmp_path)
    entry = ck.inspect(folder)
    assert (entry["layout"], entry["engine"], entry["resumable"], entry["missing"]) == ("lora", "trainer", True, [])
    assert ck.inspect(folder, "lora")["resumable"] is True
    full = ck.inspect(folder, "full")
    assert (full["resumable"], full["missing"]) == (False, ["model.safetensors"])
    assert ck.find(output)["latest"]["layout"] == "lora"


def test_a_full_model_pytorch_model_bin_stays_full(tmp_path):
    # its tensors are the model's own; with a config.json beside it (save_pretrained) its content is not looked at
    folder = files(tmp_path / "checkpoint-10", RESUME[:-1])
    state(folder, 10)
    torch_zip(os.path.join(folder, "pytorch_model.bin"), FULL_KEYS)
    assert ck.inspect(folder)["layout"] == "full"
    torch_zip(os.path.join(folder, "pytorch_model.bin"), LORA_KEYS)
    files(folder, ["config.json"])
    assert ck.inspect(folder)["layout"] == "full"
    # an adapter_model.bin is the adapter, as before
    other = files(tmp_path / "checkpoint-20", RESUME[:-1] + ["adapter_model.bin", "adapter_config.json"])
    state(other, 20)
    assert (ck.inspect(other)["layout"], ck.inspect(other)["resumable"]) == ("lora", True)


def test_an_accelerate_save_state_folder_is_recognised_and_resumable_without_a_trainer_state(tmp_path):
    # Accelerator.save_state: accelerate's own names (src/accelerate/utils/constants.py: MODEL_NAME "pytorch_model",
    # SAFE_MODEL_NAME "model", OPTIMIZER_NAME "optimizer", SCHEDULER_NAME "scheduler", RNG_STATE_NAME "random_states"
    # with the process index, SCALER_NAME "scaler.pt"); no trainer_state.json, no rng_state.pth
    folder = files(tmp_path / "step_500", ["model.safetensors", "optimizer.bin", "scheduler.bin", "scaler.pt",
                                           "random_states_0.pkl", "random_states_1.pkl"])
    report = ck.find(folder)
    entry = report["latest"]
    assert report["single"] is True
    assert (entry["engine"], entry["layout"], entry["resumable"], entry["missing"], entry["step"]) == (
        "accelerate", "full", True, [], None)
    os.remove(os.path.join(folder, "scheduler.bin"))     # a run without a scheduler saves none
    assert ck.inspect(folder)["resumable"] is True
    os.remove(os.path.join(folder, "optimizer.bin"))
    entry = ck.inspect(folder)
    assert (entry["resumable"], entry["missing"]) == (False, ["optimizer.bin"])


def test_an_accelerate_fsdp_full_state_save_is_resumable_with_its_layout_untold(tmp_path):
    # accelerate's save_state under FSDP FULL_STATE_DICT, 8 processes (an InstructLab phase-1 run's
    # checkpoints/full_state/epoch_0: optimizer.bin, pytorch_model_fsdp.bin, random_states_0..7.pkl, scheduler.bin,
    # training_metadata.json)
    folder = files(tmp_path / "epoch_0", ["optimizer.bin", "pytorch_model_fsdp.bin", "scheduler.bin",
                                          "training_metadata.json"] + ["random_states_%d.pkl" % r for r in range(8)])
    entry = ck.inspect(folder)
    assert (entry["engine"], entry["layout"], entry["engine_weights"]) == ("accelerate", None, True)
    assert (entry["resumable"], entry["missing"]) == (True, [])
    # a Trainer checkpoint (trainer_state.json) is still judged as the Trainer's, whatever accelerate wrote into it
    state(folder, 158)
    assert ck.inspect(folder)["engine"] == "fsdp"


def test_an_accelerate_save_state_under_deepspeed_is_accelerate_s_and_resumable(tmp_path):
    # accelerate's save_state under DeepSpeed: DeepSpeedEngine.save_checkpoint(output_dir, "pytorch_model") writes the
    # tag folder pytorch_model/, latest and (with ZeRO) zero_to_fp32.py; accelerate adds its random states, no Trainer file
    folder = str(tmp_path / "checkpoint_3")
    files(os.path.join(folder, "pytorch_model"), ["mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt",
                                                  "zero_pp_rank_1_mp_rank_00_optim_states.pt"])
    files(folder, ["zero_to_fp32.py", "random_states_0.pkl", "random_states_1.pkl"])
    with open(os.path.join(folder, "latest"), "w") as handle:
        handle.write("pytorch_model")
    entry = ck.inspect(folder)
    assert (entry["engine"], entry["engine_weights"], entry["resumable"], entry["missing"]) == ("accelerate", True, True,
                                                                                                [])
    for name in ("zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"):
        os.remove(os.path.join(folder, "pytorch_model", name))
    entry = ck.inspect(folder)
    assert (entry["resumable"], entry["missing"]) == (False, ["optimizer.bin"])


def test_accelerate_s_automatically_named_checkpoints_are_found_newest_by_their_index(tmp_path):
    # ProjectConfiguration(automatic_checkpoint_naming=True): save_state() writes checkpoints/checkpoint_<n>, n counting
    # the saves from 0 (a save index, not a step: no step is told)
    root = tmp_path / "checkpoints"
    for index in (0, 1, 2, 10):
        files(root / ("checkpoint_%d" % index), ["model.safetensors", "optimizer.bin", "random_states_0.pkl"])
    os.utime(str(root / "checkpoint_2"), None)          # touched last: the index, not the time, tells the newest
    report = ck.find(str(root))
    assert [e["name"] for e in report["checkpoints"]] == ["checkpoint_10", "checkpoint_2", "checkpoint_1", "checkpoint_0"]
    assert (report["latest"]["step"], report["latest"]["engine"], report["latest"]["resumable"]) == (None, "accelerate",
                                                                                                     True)
