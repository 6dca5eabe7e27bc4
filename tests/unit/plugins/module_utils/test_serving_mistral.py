"""_serving: model folders in Mistral's own (consolidated) layout.

Mistral's releases (mistralai/Mistral-7B-Instruct-v0.3, Mistral-Nemo, Mixtral, Codestral, Pixtral, ...) ship
``params.json``, ``consolidated.safetensors`` (or ``consolidated-0000x-of-0000y.safetensors`` with
``consolidated.safetensors.index.json``; older ones ``consolidated.00.pth``) and the tokenizer
(``tokenizer.model.v3``, ``tekken.json``), beside or instead of ``config.json`` + ``model*.safetensors``; vLLM
loads them with ``--config-format mistral --load-format mistral``. Mistral's README downloads only that layout
(``snapshot_download(..., allow_patterns=["params.json", "consolidated.safetensors", "tokenizer.model.v3"])``),
and Pixtral-12B-2409's repo holds nothing else. The gate said such a folder had no ``config.json``: it is a
layout of its own now, with the checks the Hugging Face layout gets.
"""

from __future__ import annotations

import json
import os

import pytest

from simserve import fixtures, store as st

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks, _serving

open_tmp = fixtures.open_tmp  # the fixture, by its name

ROOT_USER = {"name": "root", "uid": 0, "gid": 0, "groups": [0], "source": "given"}
SVC = {"name": "svc", "uid": 4242, "gid": 4242, "groups": [4242], "source": "given"}


def store_of(open_tmp, **models):
    """models: agent=(model id, relative path, builder(folder) or None) -> (root, map entries)."""
    root = open_tmp / "store"
    root.mkdir(exist_ok=True)
    os.chmod(str(open_tmp), 0o755)
    entries = []
    for agent, (model, rel, build) in models.items():
        if build is not None:
            build(str(root), rel)
        entries.append({"agent": agent, "model": model, "path": rel, "files": []})
    return str(root), entries


def judge(root, entries, ident=None):
    ident = ROOT_USER if ident is None else ident
    return _serving.evaluate_model_store(_serving.inspect_model_store(entries, root, ident))


def messages(problems):
    return [p["message"] for p in problems]


def folder(**kwargs):
    return lambda root, rel: st.mistral_dir(os.path.join(root, rel), **kwargs)


def cache(model_id, **kwargs):
    return lambda root, rel: st.hf_cache_repo(root, model_id, build=lambda f: st.mistral_dir(f, **kwargs))


def test_complete_mistral_folders_pass_in_every_form(open_tmp):
    """Mistral's README download (7B-Instruct-v0.3), Nemo's tekken.json, a sharded release with its index
    (Mistral-Large-Instruct-2407) and without, the older consolidated.00.pth, and a hub cache of Pixtral-12B-2409
    (only the consolidated layout): all complete, none with a config.json."""
    root, entries = store_of(
        open_tmp,
        a=("mistralai/Mistral-7B-Instruct-v0.3", "mistral-7b-v0.3", folder()),
        b=("mistralai/Mistral-Nemo-Instruct-2407", "nemo", folder(tokenizer="tekken.json")),
        c=("mistralai/Mistral-Large-Instruct-2407", "large", folder(shards=3)),
        d=("mistralai/Codestral-22B-v0.1", "codestral", folder(shards=2, index=False)),
        e=("mistralai/Mistral-7B-v0.1", "mistral-7b-v0.1", folder(fmt="pth", tokenizer="tokenizer.model")),
        f=("mistralai/Pixtral-12B-2409", "models--mistralai--Pixtral-12B-2409",
           cache("mistralai/Pixtral-12B-2409", tokenizer="tekken.json")),
    )
    st.readable_by_all(root)
    assert not os.path.exists(os.path.join(root, "mistral-7b-v0.3", "config.json"))
    problems, ok_text, details = judge(root, entries, SVC)
    assert problems == [], messages(problems)
    assert ok_text.startswith("6 of 6 model(s) complete under %s, readable by user 'svc' (uid 4242)" % root)
    files = dict((m["model"], m["files"]) for m in details["models"])
    assert files["mistralai/Mistral-7B-Instruct-v0.3"] == ["params.json", "consolidated.safetensors"]
    assert files["mistralai/Mistral-Large-Instruct-2407"] == [
        "params.json", "consolidated.safetensors.index.json", "consolidated-00001-of-00003.safetensors",
        "consolidated-00002-of-00003.safetensors", "consolidated-00003-of-00003.safetensors"]
    assert files["mistralai/Mistral-7B-v0.1"] == ["params.json", "consolidated.00.pth"]
    layouts = dict((m["model"], m["layout"]) for m in details["models"])
    assert layouts["mistralai/Pixtral-12B-2409"] == "hf_cache"


def test_a_repo_with_both_layouts_is_still_judged_by_its_hugging_face_files(open_tmp):
    """Mistral-7B-Instruct-v0.3's whole repo holds both layouts: config.json makes it a Hugging Face folder, so a
    missing model-*.safetensors shard still fails though consolidated.safetensors is whole (nothing weakened),
    and consolidated.safetensors, a weight file beside the index, must be whole too (as before)."""
    def both(root, rel):
        path = os.path.join(root, rel)
        st.model_dir(path, shards=3)
        st.mistral_dir(path)
    root, entries = store_of(open_tmp, a=("mistralai/Mistral-7B-Instruct-v0.3", "m", both))
    problems, ok_text, _d = judge(root, entries)
    assert problems == [] and ok_text, messages(problems)
    os.remove(os.path.join(root, "m", "model-00002-of-00003.safetensors"))
    st.truncate(os.path.join(root, "m", "consolidated.safetensors"), 100)
    problems, ok_text, _d = judge(root, entries)
    assert ok_text is None
    text = "\n".join(messages(problems))
    assert "%s/m/model-00002-of-00003.safetensors is missing" % root in text
    assert "%s/m/consolidated.safetensors is truncated" % root in text


@pytest.mark.parametrize("damage, cause, expected", [
    (lambda d: os.remove(os.path.join(d, "consolidated.safetensors")), "incomplete",
     "{d} has no weights (consolidated*.safetensors or consolidated.*.pth, beside params.json)"),
    (lambda d: st.truncate(os.path.join(d, "consolidated.safetensors"), 100), "incomplete",
     "{d}/consolidated.safetensors is truncated"),
    (lambda d: open(os.path.join(d, "consolidated.safetensors"), "ab").write(b"junk"), "incomplete",
     "{d}/consolidated.safetensors has 4 bytes after its last tensor"),
    (lambda d: open(os.path.join(d, "consolidated.safetensors"), "r+b").write(b"\xff" * 8), "incomplete",
     "{d}/consolidated.safetensors is not a safetensors file"),
    (lambda d: open(os.path.join(d, "params.json"), "w").write('{"dim": 40'), "incomplete",
     "{d}/params.json is not valid JSON"),
    (lambda d: open(os.path.join(d, "params.json"), "w").close(), "incomplete", "{d}/params.json is empty (0 bytes)"),
    (lambda d: st.write(os.path.join(d, ".cache", "huggingface", "download", "consolidated.safetensors.incomplete"),
                        b"\0" * 10), "incomplete", "holds 1 unfinished download(s) (*.incomplete)"),
    (lambda d: st.write(os.path.join(d, "consolidated.safetensors.aria2"), b"\0" * 10), "incomplete",
     "{d}/consolidated.safetensors is not completely downloaded: {d}/consolidated.safetensors.aria2"),
    (lambda d: st.write(os.path.join(d, "consolidated.safetensors"),
                        b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 14496078512\n"),
     "lfs_pointer", "{d}/consolidated.safetensors is a git-lfs pointer"),
])
def test_a_damaged_mistral_folder_fails_naming_what_is_wrong(open_tmp, damage, cause, expected):
    root, entries = store_of(open_tmp, a=("mistralai/Mistral-7B-Instruct-v0.3", "m", folder()))
    path = os.path.join(root, "m")
    damage(path)
    problems, ok_text, _d = judge(root, entries)
    assert ok_text is None
    assert any(p["details"]["cause"] == cause and expected.format(d=path) in p["message"]
               and p["status"] == _checks.FAIL for p in problems), messages(problems)


def test_params_json_alone_fails_with_no_weights(open_tmp):
    """A download that fetched only params.json (and the tokenizer): not a model."""
    root, entries = store_of(open_tmp, a=("mistralai/Mistral-7B-Instruct-v0.3", "m", folder()))
    path = os.path.join(root, "m")
    os.remove(os.path.join(path, "consolidated.safetensors"))
    problems, ok_text, _d = judge(root, entries)
    assert ok_text is None
    assert messages(problems) == ["agent 'a' (model 'mistralai/Mistral-7B-Instruct-v0.3'): %s has no weights "
                                  "(consolidated*.safetensors or consolidated.*.pth, beside params.json)" % path]


def test_a_mistral_folder_with_weights_of_the_other_layout_only_has_no_weights(open_tmp):
    """params.json with model-*.safetensors and no config.json: neither loader can open it (vLLM's mistral load
    format reads consolidated*.safetensors only; a Hugging Face loader needs config.json)."""
    def odd(root, rel):
        path = os.path.join(root, rel)
        st.model_dir(path, shards=2)
        os.remove(os.path.join(path, "config.json"))
        st.write(os.path.join(path, "params.json"), json.dumps(st.MISTRAL_PARAMS))
    root, entries = store_of(open_tmp, a=("mistralai/Mistral-7B-Instruct-v0.3", "m", odd))
    problems, ok_text, _d = judge(root, entries)
    assert ok_text is None
    assert any("has no weights (consolidated*.safetensors" in m for m in messages(problems)), messages(problems)


def test_missing_shards_are_named_with_and_without_an_index(open_tmp):
    root, entries = store_of(open_tmp, a=("mistralai/Mistral-Large-Instruct-2407", "large", folder(shards=3)),
                             b=("mistralai/Mixtral-8x22B-v0.1", "mixtral", folder(shards=3, index=False)))
    os.remove(os.path.join(root, "large", "consolidated-00002-of-00003.safetensors"))
    os.remove(os.path.join(root, "mixtral", "consolidated-00003-of-00003.safetensors"))
    problems, ok_text, _d = judge(root, entries)
    assert ok_text is None
    assert messages(problems) == [
        "agent 'a' (model 'mistralai/Mistral-Large-Instruct-2407'): %s/large/consolidated-00002-of-00003.safetensors "
        "is missing" % root,
        "agent 'b' (model 'mistralai/Mixtral-8x22B-v0.1'): %s/mixtral/consolidated-00003-of-00003.safetensors "
        "is missing (shard 3 of 3)" % root]


def test_a_shard_lacking_the_tensors_its_index_places_in_it_fails(open_tmp):
    root, entries = store_of(open_tmp, a=("mistralai/Mistral-Large-Instruct-2407", "large", folder(shards=2)))
    st.write(os.path.join(root, "large", "consolidated-00002-of-00002.safetensors"),
             st.safetensors_bytes((("other.weight", 128),)))
    problems, ok_text, _d = judge(root, entries)
    assert ok_text is None
    assert any("consolidated-00002-of-00002.safetensors does not hold 2 tensor(s) its index places in it" in m
               for m in messages(problems)), messages(problems)


def test_a_corrupt_consolidated_index_is_named(open_tmp):
    root, entries = store_of(open_tmp, a=("mistralai/Mistral-Large-Instruct-2407", "large", folder(shards=2)))
    st.write(os.path.join(root, "large", "consolidated.safetensors.index.json"), '{"weight_map": {}}')
    problems, ok_text, _d = judge(root, entries)
    assert ok_text is None
    assert any("consolidated.safetensors.index.json is not a valid weights index (no weight_map)" in m
               for m in messages(problems)), messages(problems)


def test_a_truncated_consolidated_pth_fails(open_tmp):
    root, entries = store_of(open_tmp, a=("mistralai/Mistral-7B-v0.1", "m", folder(fmt="pth")))
    path = os.path.join(root, "m", "consolidated.00.pth")
    st.truncate(path, os.path.getsize(path) - 30)
    problems, ok_text, _d = judge(root, entries)
    assert ok_text is None
    assert any("%s is truncated: a zip archive (torch.save) without its end record" % path in m
               for m in messages(problems)), messages(problems)


def test_a_mistral_cache_download_in_progress_fails(open_tmp):
    """Pixtral's hub cache while consolidated.safetensors is still downloading: its blob is *.incomplete and the
    snapshot has no link to it yet."""
    root, entries = store_of(open_tmp, a=("mistralai/Pixtral-12B-2409", "models--mistralai--Pixtral-12B-2409",
                                          cache("mistralai/Pixtral-12B-2409", tokenizer="tekken.json")))
    repo = os.path.join(root, "models--mistralai--Pixtral-12B-2409")
    snapshot = os.path.join(repo, "snapshots", st.COMMIT)
    blob = os.path.realpath(os.path.join(snapshot, "consolidated.safetensors"))
    os.remove(os.path.join(snapshot, "consolidated.safetensors"))
    os.rename(blob, blob + ".incomplete")
    problems, ok_text, _d = judge(root, entries)
    assert ok_text is None
    assert messages(problems) == [
        "agent 'a' (model 'mistralai/Pixtral-12B-2409'): %s/blobs holds 1 unfinished download(s) (*.incomplete)"
        % repo,
        "agent 'a' (model 'mistralai/Pixtral-12B-2409'): %s has no weights (consolidated*.safetensors or "
        "consolidated.*.pth, beside params.json)" % snapshot]


def test_an_unreadable_consolidated_file_fails_for_the_service_user(open_tmp):
    root, entries = store_of(open_tmp, a=("mistralai/Mistral-7B-Instruct-v0.3", "m", folder()))
    st.readable_by_all(root)
    os.chmod(os.path.join(root, "m", "consolidated.safetensors"), 0o600)
    os.chmod(os.path.join(root, "m", "tokenizer.model.v3"), 0o600)
    problems, ok_text, _d = judge(root, entries, SVC)
    assert ok_text is None
    causes = sorted((p["details"]["cause"], os.path.basename(p["details"]["path"])) for p in problems)
    assert causes == [("unreadable", "consolidated.safetensors"), ("unreadable", "tokenizer.model.v3")]


def test_a_folder_with_neither_config_still_says_config_json_is_missing(open_tmp):
    """No params.json either: judged as a Hugging Face folder, as before."""
    root, entries = store_of(open_tmp, a=("mistralai/Mistral-7B-Instruct-v0.3", "m", folder()))
    os.remove(os.path.join(root, "m", "params.json"))
    problems, ok_text, _d = judge(root, entries)
    assert ok_text is None
    assert messages(problems)[0] == ("agent 'a' (model 'mistralai/Mistral-7B-Instruct-v0.3'): %s/m/config.json is "
                                     "missing" % root)


def test_the_docs_list_every_layout():
    """docs/SERVING_GATE.md's table of layouts holds one row per entry of MODEL_LAYOUTS, naming its config file."""
    docs = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "docs", "SERVING_GATE.md")
    with open(docs) as handle:
        rows = [line for line in handle if line.startswith("| ") and "| `" in line]
    configs = [layout["config"] for layout in _serving.MODEL_LAYOUTS]
    listed = [c for c in configs if any(row.split("|")[2].strip() == "`%s`" % c for row in rows)]
    assert listed == configs
