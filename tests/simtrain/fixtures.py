"""Load the recorded real training-host material in tests/fixtures/training (see its SOURCES.md).

Everything a simulated training host holds comes from these files: crash logs copied as they are,
checkpoint listings (``path<TAB>size``) laid out as sparse files of the listed sizes, and the real
``trainer_state.json`` files. This module only reads them and the written expectations.
"""

from __future__ import annotations

import os
import pathlib
import re

FIXTURES = pathlib.Path(os.environ.get("SIMTRAIN_FIXTURES")
                        or pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "training")
CRASH_LOGS = FIXTURES / "crash-logs"
CHECKPOINTS = FIXTURES / "checkpoints"

# The listings and trainer states the scenarios use (SOURCES.md, section checkpoints/).
FULL_LISTING = "whisper-large-v2-ja_full_ft_last-checkpoint_listing.txt"       # last-checkpoint, step 5000
FULL_STATE = "whisper-large-v2-ja_full_ft_last-checkpoint_trainer_state.json"  # global_step 5000
FULL_SAFETENSORS_LISTING = "spam-classifier_full_ft_checkpoint-500_listing.txt"  # model.safetensors, step 500
LORA_LISTING = "llamafactory_lora_checkpoint-1000_listing.txt"                 # adapter, step 1000
LORA_STATE = "mistral7b_lora_llamafactory_checkpoint-1000_trainer_state.json"  # LLaMA-Factory LoRA, global_step 1000

HEALTHY_LOG = "sentence-transformers-pr2449_healthy_hf_trainer_with_eval_loss.txt"
OOM_LOG = "sd_dreambooth_extension-657_8gb_gpu_cuda_oom_backward.txt"

_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|(.*)\|\s*$")
_CATEGORY = re.compile(r"`(cuda_oom|gpu_error|nccl_timeout|process_killed|timeout|import_error|nan_loss|disk_full|none)`")


def crash_logs():
    """The names of every recorded crash log."""
    return sorted(p.name for p in CRASH_LOGS.iterdir() if p.is_file())


def crash_log_path(name):
    return CRASH_LOGS / name


def crash_expectations():
    """{file name: expected category or 'none'} from the crash-logs table of SOURCES.md."""
    text = (FIXTURES / "SOURCES.md").read_text(encoding="utf-8")
    section = text.split("## crash-logs/", 1)[1].split("\n## ", 1)[0]
    expected = {}
    for line in section.splitlines():
        match = _ROW.match(line)
        if not match or match.group(1) == "file":
            continue
        last_cell = match.group(2).rsplit("|", 1)[-1]
        found = _CATEGORY.search(last_cell)
        if found:
            expected[match.group(1)] = found.group(1)
    return expected


def listing(name):
    """[(path inside the listing, size in bytes)] of a checkpoint listing."""
    rows = []
    for line in (CHECKPOINTS / name).read_text(encoding="utf-8").splitlines():
        if line.strip():
            path, size = line.rsplit("\t", 1)
            rows.append((path, int(size)))
    return rows


def trainer_state_path(name):
    return CHECKPOINTS / name
