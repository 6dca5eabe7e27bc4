"""Model stores laid out in a temp dir, as Hugging Face writes them, for the serving gate's tests.

- ``model_dir(folder, shards=1, fmt="safetensors")``: a model folder (``save_pretrained`` /
  ``--local-dir`` layout): config.json, tokenizer.json, weights as real safetensors files (8-byte
  header length, JSON header with data_offsets, the data) or torch zip files, with an index when
  sharded (``model-00001-of-00002.safetensors`` + ``model.safetensors.index.json``).
- ``mistral_dir(folder, shards=1, fmt="safetensors")``: a model folder in Mistral's own (consolidated)
  layout, as Mistral's releases ship it and its README downloads it: params.json, the tokenizer
  (``tokenizer.model.v3`` or ``tekken.json``), ``consolidated.safetensors`` (or
  ``consolidated-00001-of-0000N.safetensors`` with ``consolidated.safetensors.index.json``), or the older
  ``consolidated.00.pth``.
- ``hf_cache_repo(root, model_id)``: the hub cache layout (``models--org--name/{refs/main,
  snapshots/<commit>/<file> -> ../../blobs/<sha>, blobs/}``), of a model_dir or another builder's folder.
- ``model_map(path, entries)``: the agent -> model map file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import zipfile

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def safetensors_bytes(tensors=(("weight", 64),), metadata=None):
    """A valid safetensors file: tensors as (name, byte length), float32 zeros."""
    header, offset = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, length in tensors:
        header[name] = {"dtype": "F32", "shape": [length // 4], "data_offsets": [offset, offset + length]}
        offset += length
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # padded to 8 like the reference writer
    return struct.pack("<Q", len(raw)) + raw + b"\0" * offset


def torch_zip_bytes():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("archive/data/0", b"\0" * 256)
    return buf.getvalue()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data if isinstance(data, bytes) else data.encode())
    return path


def model_dir(folder, shards=1, fmt="safetensors", tensors_per_shard=2):
    """A complete model folder; returns its path."""
    write(os.path.join(folder, "config.json"), json.dumps({"model_type": "llama", "hidden_size": 64}))
    write(os.path.join(folder, "tokenizer.json"), json.dumps({"version": "1.0"}))
    ext = ".safetensors" if fmt == "safetensors" else ".bin"
    stem = "model" if fmt == "safetensors" else "pytorch_model"
    if shards == 1:
        names = [stem + ext]
    else:
        names = ["%s-%05d-of-%05d%s" % (stem, i, shards, ext) for i in range(1, shards + 1)]
    weight_map = {}
    for number, name in enumerate(names):
        tensors = [("layers.%d.w%d" % (number, t), 128) for t in range(tensors_per_shard)]
        data = safetensors_bytes(tensors, {"format": "pt"}) if fmt == "safetensors" else torch_zip_bytes()
        write(os.path.join(folder, name), data)
        for tname, _length in tensors:
            weight_map[tname] = name
    if shards > 1:
        index = "%s%s.index.json" % (stem, ext)
        write(os.path.join(folder, index), json.dumps({"metadata": {"total_size": 1}, "weight_map": weight_map}))
    return folder


# Mistral-7B-Instruct-v0.3's params.json (mistralai/Mistral-7B-Instruct-v0.3 on the Hugging Face hub)
MISTRAL_PARAMS = {"dim": 4096, "n_layers": 32, "head_dim": 128, "hidden_dim": 14336, "n_heads": 32, "n_kv_heads": 8,
                  "norm_eps": 1e-05, "vocab_size": 32768, "rope_theta": 1000000.0}


def mistral_dir(folder, shards=1, fmt="safetensors", tokenizer="tokenizer.model.v3", index=True,
                tensors_per_shard=2):
    """A complete model folder in Mistral's consolidated layout (no config.json); returns its path. ``index``:
    a sharded folder has ``consolidated.safetensors.index.json`` (Mistral-Large-Instruct-2407 ships one)."""
    write(os.path.join(folder, "params.json"), json.dumps(MISTRAL_PARAMS, indent=4))
    if tokenizer == "tekken.json":
        write(os.path.join(folder, tokenizer), json.dumps({"config": {"pattern": "x", "num_vocab_tokens": 131072},
                                                           "vocab": [], "version": "v3"}))
    elif tokenizer:
        write(os.path.join(folder, tokenizer), b"\n\x0e\n\x05<unk>\x15\x00\x00\x00\x00\x18\x02" * 8)  # sentencepiece
    if fmt == "pth":
        names = ["consolidated.%02d.pth" % i for i in range(shards)]
    elif shards == 1:
        names = ["consolidated.safetensors"]
    else:
        names = ["consolidated-%05d-of-%05d.safetensors" % (i, shards) for i in range(1, shards + 1)]
    weight_map = {}
    for number, name in enumerate(names):
        tensors = [("layers.%d.attention.w%d.weight" % (number, t), 128) for t in range(tensors_per_shard)]
        write(os.path.join(folder, name), torch_zip_bytes() if fmt == "pth" else safetensors_bytes(tensors))
        for tname, _length in tensors:
            weight_map[tname] = name
    if fmt != "pth" and shards > 1 and index:
        write(os.path.join(folder, "consolidated.safetensors.index.json"),
              json.dumps({"metadata": {"total_size": 1}, "weight_map": weight_map}))
    return folder


def hf_cache_repo(root, model_id, shards=1, build=None):
    """``<root>/models--org--name`` in the hub cache layout (files are links into blobs/); returns it.
    ``build(folder)`` lays out the snapshot's files (default: a model_dir of ``shards`` shards)."""
    repo = os.path.join(root, "models--" + model_id.replace("/", "--"))
    staging = os.path.join(repo, ".staging")
    (build or (lambda f: model_dir(f, shards=shards)))(staging)
    snapshot = os.path.join(repo, "snapshots", COMMIT)
    os.makedirs(snapshot)
    os.makedirs(os.path.join(repo, "blobs"), exist_ok=True)
    for name in sorted(os.listdir(staging)):
        with open(os.path.join(staging, name), "rb") as handle:
            data = handle.read()
        blob = hashlib.sha256(data).hexdigest()
        write(os.path.join(repo, "blobs", blob), data)
        os.symlink(os.path.join("..", "..", "blobs", blob), os.path.join(snapshot, name))
        os.remove(os.path.join(staging, name))
    os.rmdir(staging)
    write(os.path.join(repo, "refs", "main"), COMMIT)
    return repo


def readable_by_all(root):
    """Every folder under ``root`` 0755 and every file 0644 (links left alone): a store any service user may read."""
    for folder, _dirs, files in os.walk(root):
        os.chmod(folder, 0o755)
        for name in files:
            if not os.path.islink(os.path.join(folder, name)):
                os.chmod(os.path.join(folder, name), 0o644)


def model_map(path, entries):
    """entries: {agent: (model, path)} or {agent: {...}} -> the JSON map file; returns its path."""
    doc = {}
    for agent, value in entries.items():
        doc[agent] = {"model": value[0], "path": value[1]} if isinstance(value, tuple) else value
    write(path, json.dumps(doc, indent=2))
    return path


def truncate(path, keep):
    """Cut a file to its first ``keep`` bytes (a copy that did not finish)."""
    with open(path, "r+b") as handle:
        handle.truncate(keep)


# The serving host the tests use most: two models, one a save_pretrained folder (2 shards), one a Hugging
# Face cache folder, and three agents (two of them share a model).
AGENTS = {"crawler": ("org/crawl-7b", "org/crawl-7b"), "mcp": ("org/tools-3b", "models--org--tools-3b"),
          "bus": ("org/crawl-7b", "org/crawl-7b")}
MODELS = ("org/crawl-7b", "org/tools-3b")


def serving_host(folder, agents=None):
    """A complete model store (``folder``/store) and its map (``folder``/agent_models.json), every folder
    searchable by anyone: {"store_root", "model_map"}."""
    root = os.path.join(folder, "store")
    model_dir(os.path.join(root, "org/crawl-7b"), shards=2)
    hf_cache_repo(root, "org/tools-3b")
    path = model_map(os.path.join(folder, "agent_models.json"), agents or AGENTS)
    for current, _dirs, _files in os.walk(folder):
        os.chmod(current, 0o755)
    return {"store_root": root, "model_map": path}
