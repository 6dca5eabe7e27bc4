# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: Hugging Face Trainer checkpoints: layout, resumability, the newest one.

A checkpoint is a folder ``checkpoint-<global step>`` under the training's output folder, as the
Hugging Face Trainer writes it (``PREFIX_CHECKPOINT_DIR``), ``last-checkpoint`` (``hub_strategy="checkpoint"``),
or a folder named directly (a final export). What is in it (names as transformers, PEFT, accelerate and
DeepSpeed write them):

* weights, full model: ``model.safetensors`` or ``pytorch_model.bin``, or shards
  ``model-00001-of-00003.safetensors`` / ``pytorch_model-00001-of-00003.bin`` with their index
  ``model.safetensors.index.json`` / ``pytorch_model.bin.index.json``;
* weights, LoRA/PEFT: ``adapter_model.safetensors`` or ``adapter_model.bin`` plus ``adapter_config.json``, at
  the top or, for adapters PEFT saves under their names (all but ``default``), in a sub-folder per adapter; or
  an adapter the Trainer saved under the full model's name (``pytorch_model.bin`` without ``config.json``, whose
  first bytes name LoRA tensors: alpaca-lora's checkpoints);
* weights kept by the training engine itself, whose layout the files do not tell: DeepSpeed ZeRO-3's
  ``global_step<N>/*model_states.pt``, FSDP's ``pytorch_model_fsdp_0/`` or ``pytorch_model_fsdp.bin``;
* training state, needed to resume, by the engine that wrote it (``ENGINES``): the Trainer's ``optimizer.pt``
  and ``scheduler.pt``; FSDP's ``optimizer.bin`` or ``optimizer_0/`` and ``scheduler.pt``; DeepSpeed's
  ``latest`` and the optimizer and model states in the ``global_step<N>/`` it names (DeepSpeed keeps the scheduler
  there too; without ZeRO it writes no optimizer states, the optimizer is in the model states); accelerate's own
  ``save_state`` (no Trainer): ``optimizer.bin`` and ``random_states_<process>.pkl``, no trainer_state.json;
  else always the RNG state (``rng_state.pth``, or ``rng_state_<rank>.pth`` per process) and
  ``trainer_state.json`` (present, readable, its ``global_step`` a whole number). A final export has weights
  only: not resumable. Without its RNG state alone a checkpoint is not resumable, yet the Trainer resumes from it
  (``trainer_resumes``: transformers before 4.6 wrote none), its random draws not reproduced.

Nothing here writes. Files are not checked beyond "not empty" and "not a Git LFS pointer" (the first bytes of
files up to 1 KiB; weights are not opened, but for the first 64 KiB of a pytorch_model.bin / model.safetensors
without config.json beside it), so a checkpoint is judged by its listing; ``trainer_state.json`` and
shard indexes are read bounded, and one look parses at most ``WHOLE_BUDGET`` of the states whole (newest first;
older ones are read at their ends).
"""

from __future__ import annotations

import errno
import os
import re
import stat

from ansible_collections.gpuops.preflight.plugins.module_utils import _files
from ansible_collections.gpuops.preflight.plugins.module_utils import _training_config as _config
from ansible_collections.gpuops.preflight.plugins.module_utils._values import human_bytes

FULL = "full"
LORA = "lora"
AUTO = "auto"
EXPECT_CHOICES = (AUTO, FULL, LORA)

CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
LAST_CHECKPOINT = "last-checkpoint"   # the Trainer's hub_strategy="checkpoint" copy of the newest checkpoint
# accelerate's automatic_checkpoint_naming (ProjectConfiguration): checkpoints/checkpoint_<n>, n the save's index from 0,
# not a step
ACCELERATE_DIR = re.compile(r"^checkpoint_(\d+)$")
_SHARD = re.compile(r"^(model|pytorch_model)-(\d+)-of-(\d+)\.(safetensors|bin)$")
MAX_ENTRIES = 20000          # folder entries looked at in the checkpoint root
STATE_LIMIT = 16 * 1024 * 1024   # trainer_state.json and shard indexes, parsed whole
EDGE_BYTES = 64 * 1024           # read at each end of a larger trainer_state.json
WHOLE_BUDGET = 64 * 1024 * 1024  # trainer_state.json bytes one find() parses whole, newest checkpoints first
LFS_POINTER_MAX = 1024           # a Git LFS pointer file is about 130 bytes
_LFS_POINTER = b"version https://git-lfs.github.com/spec/"

FULL_SINGLE = ("model.safetensors", "pytorch_model.bin")
FULL_INDEXES = (("model.safetensors.index.json", "model", "safetensors"),
                ("pytorch_model.bin.index.json", "pytorch_model", "bin"))
LORA_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
LORA_CONFIG = "adapter_config.json"
TRAINER_STATE = "trainer_state.json"
DEEPSPEED_LATEST = "latest"
_RNG = re.compile(r"^rng_state(?:_\d+)?\.pth$")
_DEEPSPEED_TAG = re.compile(r"^global_step(\d+)$")
_DEEPSPEED_FILES = frozenset((DEEPSPEED_LATEST, "zero_to_fp32.py"))   # written beside the global_step<N>/ folder
_FSDP_WEIGHTS = re.compile(r"^pytorch_model_fsdp(?:_\d+|_rank\d+)?(?:\.bin)?$")   # accelerate's save_fsdp_model
_FSDP_OPTIMIZER = re.compile(r"^optimizer_\d+$")                                   # a folder: sharded state dict
# accelerate's save_state (Accelerator.save_state, no Trainer): random_states_<process>.pkl, optimizer.bin (optimizer_1.bin
# for a second one), scheduler.bin when a scheduler was prepared, model.safetensors / model_1.safetensors, scaler.pt
_ACCELERATE_RNG = re.compile(r"^random_states_\d+\.pkl$")
_ACCELERATE_OPTIMIZER = re.compile(r"^optimizer(?:_\d+)?\.bin$")
# A LoRA adapter's tensors, as PEFT names them ("...q_proj.lora_A.weight"): what the first bytes of a torch file (its
# pickle, written first) or a safetensors file (its JSON header) name when the file holds an adapter
_LORA_TENSOR = re.compile(rb"\.lora_(?:A|B|embedding_A|embedding_B|magnitude_vector)\b")
ADAPTER_PEEK_BYTES = 64 * 1024
MODEL_CONFIG = "config.json"   # save_pretrained writes it beside a full model's weights


def _named(names, test):
    """The regular files of a listing ({name: is_dir}) whose name passes ``test``."""
    return sorted(n for n, is_dir in names.items() if not is_dir and test(n))


def _deepspeed_tag(folder, names):
    """The DeepSpeed checkpoint folder (global_step<N>) that ``latest`` names, or None."""
    if names.get(DEEPSPEED_LATEST) is not False:
        return None
    try:
        tag = _files.read_regular(os.path.join(folder, DEEPSPEED_LATEST), 4096).decode("utf-8", "replace").strip()
    except (OSError, _files.FileProblem):
        return None
    return tag if names.get(tag) is True else None


def _deepspeed_optimizer(folder, names):
    """The files that hold DeepSpeed's optimizer state in the folder ``latest`` names: ZeRO's (and bf16's)
    ``*optim_states.pt``. Without ZeRO (stage 0, fp16 or fp32) DeepSpeed writes none: the optimizer is in the model
    states (``mp_rank_00_model_states.pt``), and it copies no ``zero_to_fp32.py`` beside ``latest`` (it does so with
    each ZeRO checkpoint)."""
    zero = _in_tag(folder, names, "optim_states.pt")
    if zero or names.get("zero_to_fp32.py") is False:
        return zero
    return _in_tag(folder, names, "model_states.pt")


def _in_tag(folder, names, suffix):
    """The files ending in ``suffix`` in the DeepSpeed folder ``latest`` names ('global_step500/x'), or []."""
    tag = _deepspeed_tag(folder, names)
    if tag is None:
        return []
    try:
        inside = _listing(os.path.join(folder, tag))
    except OSError:
        return []
    return ["%s/%s" % (tag, n) for n in _named(inside, lambda n: n.endswith(suffix))]


def _fsdp_weights(folder, names):
    return sorted(n for n in names if _FSDP_WEIGHTS.match(n))


def _accelerate_optimizer(folder, names):
    """accelerate's save_state optimizer: optimizer.bin (optimizer_1.bin ...), FSDP's sharded optimizer_<N>/, or under
    DeepSpeed the optimizer states in the folder ``latest`` names."""
    own = sorted(n for n, d in names.items() if (not d and _ACCELERATE_OPTIMIZER.match(n)) or (d and _FSDP_OPTIMIZER.match(n)))
    return own + _deepspeed_optimizer(folder, names)


class Engine(object):
    """How one training engine keeps a checkpoint's training state (and maybe its weights)."""

    __slots__ = ("name", "marker", "weights", "parts")

    def __init__(self, name, marker, weights, parts):
        self.name = name
        self.marker = marker      # (names) -> True when the folder is this engine's
        self.weights = weights    # (folder, names) -> the engine's own weight files, [] when it keeps none
        self.parts = parts        # ((the name reported as missing, (folder, names) -> the files that hold it), ...)


_RNG_PART = ("rng_state.pth", lambda folder, names: _named(names, _RNG.match))
# Parts a checkpoint is not resumable without, that the Trainer still resumes from when they alone are absent:
# transformers' _load_rng_state logs "Didn't find an RNG file" and goes on, its random draws (dropout) then not
# reproduced; transformers before 4.6 wrote none. Present, they must not be empty.
TRAINER_DOES_WITHOUT = frozenset((_RNG_PART[0],))
_STATE_PART = (TRAINER_STATE, lambda folder, names: _named(names, lambda n: n == TRAINER_STATE))
_SCHEDULER_PART = ("scheduler.pt", lambda folder, names: _named(names, lambda n: n == "scheduler.pt"))

# The first engine whose marker is in the folder says what resuming needs besides the weights (names as
# transformers' Trainer, accelerate and DeepSpeed write them); the Trainer alone is the last, and always applies.
# accelerate's save_state comes first: under DeepSpeed it leaves DeepSpeed's ``latest`` too, but none of the Trainer's
# files.
ENGINES = (
    # accelerate's own save_state (a script with Accelerator, no Trainer): no trainer_state.json, no rng_state.pth; its
    # optimizer and random states beside the weights (FSDP's shards, or DeepSpeed's folder that ``latest`` names, when
    # it ran under those), the scheduler only when one was prepared
    Engine("accelerate", lambda names: any(not d and _ACCELERATE_RNG.match(n) for n, d in names.items())
           and names.get(TRAINER_STATE) is not False,
           lambda folder, names: _fsdp_weights(folder, names) or _in_tag(folder, names, "model_states.pt"),
           (("optimizer.bin", _accelerate_optimizer),
            ("random_states_0.pkl", lambda folder, names: _named(names, _ACCELERATE_RNG.match)))),
    # DeepSpeed restores optimizer and scheduler from its own folder (transformers writes scheduler.pt only for
    # a scheduler DeepSpeed does not wrap) and finds that folder through ``latest``; its load_checkpoint needs the
    # model states there whatever the weights beside them (it asserts that it found some). Told by that folder, or,
    # when the folder was deleted, by what DeepSpeed leaves beside it.
    Engine("deepspeed", lambda names: any((d and _DEEPSPEED_TAG.match(n)) or (not d and n in _DEEPSPEED_FILES)
                                          for n, d in names.items()),
           lambda folder, names: _in_tag(folder, names, "model_states.pt"),
           ((DEEPSPEED_LATEST, lambda folder, names: [DEEPSPEED_LATEST] if _deepspeed_tag(folder, names) else []),
            ("global_step<N>/*optim_states.pt", _deepspeed_optimizer),
            ("global_step<N>/*model_states.pt", lambda folder, names: _in_tag(folder, names, "model_states.pt")),
            _RNG_PART, _STATE_PART)),
    Engine("fsdp", lambda names: any(_FSDP_WEIGHTS.match(n) or (d and _FSDP_OPTIMIZER.match(n))
                                     for n, d in names.items()),
           _fsdp_weights,
           (("optimizer.bin", lambda folder, names: sorted(
               n for n, d in names.items() if (n == "optimizer.bin" and not d) or (d and _FSDP_OPTIMIZER.match(n)))),
            _SCHEDULER_PART, _RNG_PART, _STATE_PART)),
    Engine("trainer", lambda names: True, lambda folder, names: [],
           (("optimizer.pt", lambda folder, names: _named(names, lambda n: n in ("optimizer.pt", "optimizer.bin"))),
            _SCHEDULER_PART, _RNG_PART, _STATE_PART)),
)

# Any of these names makes a folder a checkpoint (or an export) by itself.
_CHECKPOINT_MARKERS = frozenset(FULL_SINGLE + LORA_WEIGHTS + (TRAINER_STATE, "optimizer.pt", "optimizer.bin", LORA_CONFIG)
                                + tuple(row[0] for row in FULL_INDEXES))


def _listing(path):
    """{name: is_dir} for a folder (symlinks followed for the type; a link to nothing is left out: there is no
    file to load), or raises OSError."""
    names = {}
    with os.scandir(path) as entries:
        for count, entry in enumerate(entries):
            if count >= MAX_ENTRIES:
                break
            try:
                is_dir = entry.is_dir()
                if not is_dir and entry.is_symlink() and not os.path.exists(entry.path):
                    continue
                names[entry.name] = is_dir
            except OSError:
                names[entry.name] = False
    return names


def _size(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _sharded(folder, names):
    """(found, missing) for sharded full-model weights: the index and every shard it or the names announce."""
    found, missing = [], []
    for index, prefix, ext in FULL_INDEXES:
        shards = [n for n in names if _SHARD.match(n) and n.startswith(prefix + "-") and n.endswith("." + ext)]
        if index not in names and not shards:
            continue
        wanted = set()
        if index in names:
            found.append(index)
            try:
                doc = _config.read_json(os.path.join(folder, index), STATE_LIMIT)
                weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
                if isinstance(weight_map, dict):
                    wanted.update(v for v in weight_map.values() if isinstance(v, str))
            except _config.JsonFileError:
                pass  # fall back to what the shard names announce
        else:
            missing.append(index)
        for name in shards:
            match = _SHARD.match(name)
            total, width = int(match.group(3)), len(match.group(2))
            if total <= 10000:
                wanted.update("%s-%0*d-of-%s.%s" % (prefix, width, i, match.group(3), ext) for i in range(1, total + 1))
        found.extend(sorted(n for n in wanted if n in names))
        missing.extend(sorted(n for n in wanted if n not in names))
    return found, missing


def _adapters_named_as_model(folder, names):
    """The files of ``FULL_SINGLE`` that hold a LoRA adapter: a PeftModel that the Trainer could not save_pretrained
    (transformers before PEFT support, alpaca-lora's finetune.py that swaps model.state_dict for the adapter's) has its
    adapter written as pytorch_model.bin, with no config.json and no adapter_config.json. Looked at only without a
    config.json (a full model's save_pretrained writes one): the first ``ADAPTER_PEEK_BYTES`` name its tensors."""
    if names.get(MODEL_CONFIG) is False:
        return []
    held = []
    for name in FULL_SINGLE:
        if names.get(name) is not False:
            continue
        try:
            fd = _files.open_regular(os.path.join(folder, name))
            try:
                head = _files.read_fd(fd, ADAPTER_PEEK_BYTES)   # the start of a file of any size (an adapter is MBs)
            finally:
                os.close(fd)
        except (OSError, _files.FileProblem):
            continue
        if _LORA_TENSOR.search(head):
            held.append(name)
    return held


def _full_weights(folder, names):
    adapters = _adapters_named_as_model(folder, names)
    found = [n for n in FULL_SINGLE if names.get(n) is False and n not in adapters]
    shard_found, shard_missing = _sharded(folder, names)
    found.extend(shard_found)
    if found:
        return found, shard_missing
    return [], ["model.safetensors"]


def _is_file(path):
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _adapter_folders(folder, names):
    """{sub-folder: {adapter file name: False}} of the sub-folders that hold adapter weights: PEFT saves every
    adapter but "default" in a folder of its name, and transformers' _load_from_checkpoint loads each."""
    held = {}
    for sub in sorted(n for n, is_dir in names.items() if is_dir):
        inside = dict((n, False) for n in LORA_WEIGHTS + (LORA_CONFIG,) if _is_file(os.path.join(folder, sub, n)))
        if any(n in inside for n in LORA_WEIGHTS):
            held[sub] = inside
    return held


def _one_adapter(names, prefix=""):
    """(found, missing) of one adapter: its weights and its adapter_config.json, names under ``prefix``."""
    found = [prefix + n for n in LORA_WEIGHTS if names.get(n) is False]
    if not found:
        return [], [prefix + "adapter_model.safetensors"] + ([] if names.get(LORA_CONFIG) is False
                                                             else [prefix + LORA_CONFIG])
    if names.get(LORA_CONFIG) is not False:
        return found, [prefix + LORA_CONFIG]
    return found + [prefix + LORA_CONFIG], []


def _lora_weights(folder, names):
    found, missing = _one_adapter(names)
    if found:
        return found, missing
    named_as_model = _adapters_named_as_model(folder, names)
    if named_as_model:   # no adapter_config.json there: the script that wrote it builds the adapter and loads it
        return named_as_model, []
    subs = _adapter_folders(folder, names)
    if not subs:
        return found, missing
    found, missing = [], []
    for sub, inside in sorted(subs.items()):
        sub_found, sub_missing = _one_adapter(inside, sub + "/")
        found.extend(sub_found)
        missing.extend(sub_missing)
    return found, missing


# layout -> weights(folder, names) -> (files found, expected files missing)
LAYOUTS = {FULL: _full_weights, LORA: _lora_weights}


def detect_layout(weights):
    """full, lora or None from ``{layout: (found, missing)}``: full when full-model weights are there, lora
    when only an adapter is."""
    if weights[FULL][0]:
        return FULL
    if weights[LORA][0]:
        return LORA
    return None


def _state_fields(doc, path):
    """(global_step, max_steps, error) of a parsed trainer_state.json."""
    if not isinstance(doc, dict):
        return None, None, "%s holds no JSON object" % path
    step = doc.get("global_step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return None, None, "%s: global_step is %r, not a whole number >= 0" % (path, step)
    max_steps = doc.get("max_steps")
    return step, max_steps if isinstance(max_steps, int) and not isinstance(max_steps, bool) else None, None


def _top_level_int(text, key):
    # transformers writes trainer_state.json with indent=2: a top-level key is the only one indented by 2 spaces
    match = re.search(r'^  "%s": (-?\d{1,18}),?\r?$' % key, text, re.M)
    return int(match.group(1)) if match else None


def _large_state(path):
    """(global_step, max_steps, error) of a trainer_state.json over STATE_LIMIT, from its ends only.

    A long run that logs every step makes the file large, its ``log_history`` above all. transformers writes it
    with sorted keys, so ``global_step`` comes before ``log_history`` and ``max_steps`` after it; the file must
    end its object (not cut off while being written)."""
    try:
        fd = _files.open_regular(path)
        try:
            size = os.fstat(fd).st_size
            head = _files.read_fd(fd, EDGE_BYTES)
            os.lseek(fd, max(0, size - EDGE_BYTES), os.SEEK_SET)
            tail = _files.read_fd(fd, EDGE_BYTES)
        finally:
            os.close(fd)
    except (OSError, _files.FileProblem) as exc:
        return None, None, "%s cannot be read: %s" % (path, getattr(exc, "strerror", None) or exc)
    head, tail = head.decode("utf-8", "replace"), tail.decode("utf-8", "replace")
    if not head.lstrip("\ufeff \t\r\n").startswith("{") or not tail.rstrip().endswith("}"):
        return None, None, "%s is %s, larger than its limit of %s, and its ends are not those of one JSON object " \
            "(cut off while being written?)" % (path, human_bytes(size), human_bytes(STATE_LIMIT))
    step = _top_level_int(head, "global_step")
    if step is None:
        return None, None, "%s is %s, larger than its limit of %s, and global_step is not near its start, where " \
            "transformers writes it" % (path, human_bytes(size), human_bytes(STATE_LIMIT))
    return step, _top_level_int(tail, "max_steps"), None


def _trainer_state(folder, budget=None):
    """(global_step or None, max_steps or None, error or None) from trainer_state.json.

    ``budget``: [bytes still to parse whole] shared by the checkpoints of one look, newest first; a file past it
    that transformers wrote is read at its ends (``_large_state``), one whose ends do not tell is parsed whole."""
    path = os.path.join(folder, TRAINER_STATE)
    size = _size(path)
    if budget is not None and size is not None and 2 * EDGE_BYTES < size <= STATE_LIMIT and size > budget[0]:
        step, max_steps, error = _large_state(path)
        if error is None:
            return step, max_steps, None
    try:
        doc = _config.read_json(path, STATE_LIMIT)
    except _config.JsonFileError as exc:
        if exc.state == _config.TOO_LARGE:
            return _large_state(path)
        return None, None, None if exc.state == _config.MISSING else exc.message
    if budget is not None and size is not None:
        budget[0] -= size
    return _state_fields(doc, path)


def _lfs_pointers(folder, names):
    """The regular files among ``names`` that are Git LFS pointers (a clone without git-lfs): small files that begin
    as the pointer format does; torch.load fails on them ("invalid load key, 'v'")."""
    pointers = []
    for name in names:
        path = os.path.join(folder, name)
        try:
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode) or not 0 < st.st_size <= LFS_POINTER_MAX or name in pointers:
                continue
            if _files.read_regular(path, LFS_POINTER_MAX).startswith(_LFS_POINTER):
                pointers.append(name)
        except (OSError, _files.FileProblem):
            continue
    return pointers


def _empty_files(folder, names):
    """The regular files among ``names`` (relative to ``folder``) that are empty."""
    empty = []
    for name in names:
        try:
            st = os.stat(os.path.join(folder, name))
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_size == 0 and name not in empty:
            empty.append(name)
    return empty


def inspect(folder, expect_layout=AUTO, budget=None):
    """One checkpoint folder (``budget``: see ``_trainer_state``; None parses trainer_state.json whole up to its limit).

    Returns {path, name, step, layout, engine, engine_weights, resumable, trainer_resumes, missing, empty,
    lfs_pointers, global_step, max_steps, mtime, problems, error}.

    ``error``: why the folder could not be looked at (it cannot be listed), else None; nothing is known
    of it then but its name (``step`` from ``checkpoint-<N>``).

    ``missing`` lists the expected file names that are absent: the weights of ``expect_layout``
    (of the detected layout for ``auto``) and the training state its engine (``ENGINES``) needs;
    ``trainer_resumes``: the Trainer would resume from it - it is resumable, or only what the Trainer does without
    (``TRAINER_DOES_WITHOUT``: the RNG state) is missing.
    ``engine_weights``: the weights are the engine's own shards (DeepSpeed, FSDP), whose layout is not told.
    """
    folder = os.path.normpath(folder)
    name = os.path.basename(folder)
    entry = {"path": folder, "name": name, "step": None, "layout": None, "engine": None, "engine_weights": False,
             "resumable": False, "trainer_resumes": False, "missing": [], "empty": [], "lfs_pointers": [],
             "global_step": None, "max_steps": None, "mtime": None, "problems": [], "error": None}
    match = CHECKPOINT_DIR.match(name)
    folder_step = int(match.group(1)) if match else None
    try:
        names = _listing(folder)
        st = os.stat(folder)
    except OSError as exc:
        entry["error"] = "%s cannot be listed: %s" % (folder, exc.strerror or exc)
        entry["problems"].append(entry["error"])
        entry["missing"] = ["model.safetensors", TRAINER_STATE]
        entry["step"] = folder_step   # still the newest by its name, as the trainer picks it
        return entry
    entry["mtime"] = st.st_mtime
    engine = next(e for e in ENGINES if e.marker(names))
    entry["engine"] = engine.name
    # each layout's weights looked at once (a shard index is read and parsed for the layout and its files)
    weights = dict((layout, look(folder, names)) for layout, look in LAYOUTS.items())
    entry["layout"] = detect_layout(weights)
    expected = entry["layout"] if expect_layout == AUTO else expect_layout
    own = engine.weights(folder, names) if entry["layout"] is None else []
    if own:
        found, missing = list(own), []
        entry["engine_weights"] = True
    elif expected is None:
        found, missing = [], ["model.safetensors or adapter_model.safetensors"]
    else:
        found, missing = list(weights[expected][0]), list(weights[expected][1])
    for label, held in engine.parts:
        files = held(folder, names)
        found.extend(files)
        if not files:
            missing.append(label)
    entry["missing"] = missing
    entry["empty"] = _empty_files(folder, found)
    entry["problems"].extend("%s/%s is empty (0 bytes)" % (folder, n) for n in entry["empty"])
    entry["lfs_pointers"] = _lfs_pointers(folder, found)
    entry["problems"].extend("%s/%s is a Git LFS pointer (%s bytes), not the file itself" % (
        folder, n, _size(os.path.join(folder, n))) for n in entry["lfs_pointers"])
    if names.get(TRAINER_STATE) is False:
        try:
            entry["mtime"] = max(entry["mtime"], os.stat(os.path.join(folder, TRAINER_STATE)).st_mtime)
        except OSError:
            pass
    step, max_steps, error = _trainer_state(folder, budget)
    entry["global_step"], entry["max_steps"] = step, max_steps
    if error:
        entry["problems"].append(error)
    entry["step"] = folder_step if folder_step is not None else step
    if folder_step is not None and step is not None and step != folder_step:
        entry["problems"].append("%s: trainer_state.json says global_step %d, the folder name says %d"
                                 % (folder, step, folder_step))
    needs_step = any(label == TRAINER_STATE for label, _held in engine.parts)   # accelerate's save_state keeps none
    loads = not entry["empty"] and not entry["lfs_pointers"] and error is None and (step is not None or not needs_step)
    entry["resumable"] = loads and not missing
    entry["trainer_resumes"] = loads and set(missing) <= TRAINER_DOES_WITHOUT
    return entry


def _is_checkpoint(path, names):
    return bool(CHECKPOINT_DIR.match(os.path.basename(os.path.normpath(path)))) or bool(_CHECKPOINT_MARKERS & set(
        n for n, is_dir in names.items() if not is_dir))


def _save_index(name):
    """The index of accelerate's checkpoint_<n>, or -1."""
    match = ACCELERATE_DIR.match(name)
    return int(match.group(1)) if match else -1


def _order(entry):
    return (entry["step"] is not None, entry["step"] or 0, _save_index(entry["name"]), entry["mtime"] or 0)


def _name_order(name):
    """Newest first by the folder name alone: last-checkpoint (the newest, pushed), accelerate's checkpoint_<n> by n, then
    checkpoint-<N> by N."""
    match = CHECKPOINT_DIR.match(name)
    return (match is not None, _save_index(name) >= 0, -int(match.group(1)) if match else -_save_index(name))


def find(path, expect_layout=AUTO):
    """{path, single, checkpoints (newest first), latest, error}.

    ``path`` is the checkpoint root (its ``checkpoint-<N>`` folders, ``last-checkpoint`` and accelerate's
    ``checkpoint_<n>`` are the checkpoints; the latter have no step, the highest n is their newest) or, when it
    has no such folder and holds checkpoint files itself, one checkpoint or a final export (the
    only entry). The newest checkpoint is the one with the highest step number (numeric order).
    """
    if expect_layout not in EXPECT_CHOICES:
        raise ValueError("expect_layout must be one of %s, not %r" % (", ".join(EXPECT_CHOICES), expect_layout))
    report = {"path": path, "single": False, "checkpoints": [], "latest": None, "error": None}
    try:
        st = os.stat(path)
    except OSError as exc:
        report["error"] = ("%s does not exist" % path if exc.errno in (errno.ENOENT, errno.ENOTDIR)
                           else "%s cannot be read: %s" % (path, exc.strerror or exc))
        return report
    if not stat.S_ISDIR(st.st_mode):
        report["error"] = "%s is %s, not a folder" % (path, _files.kind(st.st_mode))
        return report
    try:
        names = _listing(path)
    except OSError as exc:
        report["error"] = "%s cannot be listed: %s" % (path, exc.strerror or exc)
        return report
    children = [n for n, is_dir in names.items()
                if is_dir and (CHECKPOINT_DIR.match(n) or n == LAST_CHECKPOINT or ACCELERATE_DIR.match(n))]
    if not children and _is_checkpoint(path, names):
        report["single"] = True
        entries = [inspect(path, expect_layout)]
    else:
        budget = [WHOLE_BUDGET]   # the newest checkpoints' states parsed whole, older ones read at their ends
        entries = [inspect(os.path.join(path, n), expect_layout, budget) for n in sorted(children, key=_name_order)]
    entries.sort(key=_order, reverse=True)
    report["checkpoints"] = entries
    report["latest"] = entries[0] if entries else None
    return report


def describe(report):
    """How messages name the checkpoints found: '2 checkpoints in /x/current_model, newest checkpoint-1000'."""
    entries = report.get("checkpoints") or []
    if not entries:
        return "no checkpoint in %s" % report.get("path")
    latest = entries[0]
    if report.get("single"):
        return latest["path"]
    return "%d checkpoint%s in %s, newest %s" % (len(entries), "" if len(entries) == 1 else "s", report["path"],
                                                 latest["name"])
