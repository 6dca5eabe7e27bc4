"""_serving: the model store check on REAL Hugging Face cache listings (tests/fixtures/serving/SOURCES.md).

Each listing (``tree`` output) is laid out again under tmp_path by ``build_tree``: its folders, its
symbolic links exactly as listed, and each file with content fit for its name (a blob gets the content
of the file the snapshot links it as: a JSON config, a valid safetensors file, an index naming the
snapshot's shards, ...), so that the gate judges the listing's shape, not made-up bytes. Variants of a
real listing made by hand for a fault are said to be hand-made.
"""

from __future__ import annotations

import json
import os
import re

from simserve import store as st
from simserve.fixtures import open_tmp  # noqa: F401  # pylint: disable=unused-import

from ansible_collections.gpuops.preflight.plugins.module_utils import _serving

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "serving")
SVC = {"name": "svc", "uid": 4242, "gid": 4242, "groups": [4242], "source": "given"}
ROOT_USER = dict(SVC, uid=0, gid=0, groups=[0])

_BRANCH = re.compile(r"^((?:(?:\u2502|\s)\s\s\s)*)(?:\u251c|\u2514)\u2500\u2500 (.*)$")
_CACHE_DIRS = ("blobs", "refs", "snapshots", ".no_exist", ".locks")


def parse_tree(text):
    """``tree`` output -> [(relative path, kind, link target)], kind 'dir', 'file' or 'link'. The root line,
    the summary line and blank lines carry no entry; a line is a folder when the next one is deeper."""
    rows = []
    for line in text.replace("\u00a0", " ").splitlines():
        match = _BRANCH.match(line)
        if match:
            rows.append((len(match.group(1)) // 4, match.group(2)))
    out, stack = [], []
    for number, (depth, name) in enumerate(rows):
        del stack[depth:]
        target = None
        if " -> " in name:
            name, target = name.split(" -> ", 1)
        path = os.path.join(*(stack + [name]))
        deeper = number + 1 < len(rows) and rows[number + 1][0] > depth
        if target is not None:
            out.append((path, "link", target))
        elif deeper or name in _CACHE_DIRS:
            out.append((path, "dir", None))
        else:
            out.append((path, "file", None))
        stack.append(name)
    return out


def _content(name, siblings):
    """Bytes a complete file called ``name`` would hold; ``siblings``: the names beside it."""
    if name.endswith(".incomplete"):
        return b""  # an unfinished download: what huggingface_hub leaves
    if name == "config.json":
        return b'{"model_type": "qwen2"}'
    if name.endswith(".index.json"):
        ext = ".safetensors" if ".safetensors." in name else ".bin"
        shards = sorted(n for n in siblings if n.endswith(ext))
        weight_map = dict(("%s.weight" % n, n) for n in shards)  # the tensor each shard below holds
        return json.dumps({"metadata": {"total_size": 1}, "weight_map": weight_map}).encode()
    if name.endswith(".safetensors"):
        return st.safetensors_bytes([("%s.weight" % name, 64)], {"format": "pt"})
    if name.endswith(".bin"):
        return st.torch_zip_bytes()
    return b"x\n"


def build_tree(text, root):
    """Lay the listing out under ``root``; refs/main gets the name of its repo's only snapshot."""
    entries = parse_tree(text)
    names_in = {}
    for path, _kind, _target in entries:
        names_in.setdefault(os.path.dirname(path), []).append(os.path.basename(path))
    blob_names = {}
    for path, kind, target in entries:
        if kind == "link":
            blob_names[os.path.normpath(os.path.join(os.path.dirname(path), target))] = (
                os.path.basename(path), names_in[os.path.dirname(path)])
    for path, kind, target in entries:
        full = os.path.join(root, path)
        if kind == "dir":
            os.makedirs(full, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(full), exist_ok=True)
        if kind == "link":
            os.symlink(target, full)
        elif path.endswith(os.path.join("refs", "main")):
            repo = os.path.dirname(os.path.dirname(path))
            snaps = names_in.get(os.path.join(repo, "snapshots") if repo else "snapshots", [])
            st.write(full, (snaps[0] if len(snaps) == 1 else "0" * 40).encode())
        else:
            name, siblings = blob_names.get(os.path.normpath(path), (os.path.basename(path), []))
            st.write(full, _content(name, siblings))
    return root


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


def judge(root, models, ident=None):
    """models: {agent: (model id, path)} -> (problems, ok_text, details); judged as root unless told."""
    ident = ROOT_USER if ident is None else ident
    entries = [{"agent": agent, "model": model, "path": path, "files": []} for agent, (model, path) in models.items()]
    found = _serving.inspect_model_store(entries, str(root), ident)
    return _serving.evaluate_model_store(found)


def by_model(problems):
    out = {}
    for problem in problems:
        out.setdefault(problem["details"]["model"], []).append(problem["message"].split("): ", 1)[1])
    return out


def test_parse_tree_reads_folders_links_and_files():
    rows = parse_tree(fixture("hf_cache_interrupted_safetensors.txt"))
    assert ("blobs", "dir", None) in rows and ("refs/main", "file", None) in rows
    assert ("blobs/f47f71177f32bcd101b7573ec9171e6a57f4f4d31148d38e382306f42996874b.incomplete", "file", None) in rows
    assert ("snapshots/c1899de289a04d12100db370d81485cdf75e47ca/config.json", "link",
            "../../blobs/f5c3703b78ae2a478ae15b247e9f855e0ce2107b") in rows
    assert len(parse_tree(fixture("hub_tree_omnisvg_qwen25vl.txt"))) == 26 - 1 + 82  # tree's own count, less the root


def test_a_real_hub_cache_healthy_models_pass_and_checkpoints_without_config_fail(open_tmp):
    """xiaoyao9184/docker-omnisvg: `tree -a` of a hub cache after `hf download`. The Qwen2.5-VL models
    (2 and 5 safetensors shards with their index) and OmniSVG (config.json + pytorch_model.bin) are
    complete; OmniSVG1.1_4B/8B hold a bare pytorch_model.bin without config.json: not a Hugging Face model
    folder a loader can open."""
    root = build_tree(fixture("hub_tree_omnisvg_qwen25vl.txt"), str(open_tmp / "hub"))
    models = dict((name.split("--", 1)[1].replace("--", "/"), name) for name in sorted(os.listdir(root)))
    problems, ok_text, details = judge(root, dict((m.replace("/", "_"), (m, p)) for m, p in models.items()))
    assert by_model(problems) == {
        "OmniSVG/OmniSVG1.1_4B": ["%s/models--OmniSVG--OmniSVG1.1_4B/snapshots/e4d03a89aaa28468520b45dc2541098102264d4e/"
                                  "config.json is missing" % root],
        "OmniSVG/OmniSVG1.1_8B": ["%s/models--OmniSVG--OmniSVG1.1_8B/snapshots/ce0d49d5b92b27590e2d7747a31c17d70e914c8b/"
                                  "config.json is missing" % root],
    }
    complete = dict((m["model"], m["complete"]) for m in details["models"])
    assert complete == {"OmniSVG/OmniSVG": True, "OmniSVG/OmniSVG1.1_4B": False, "OmniSVG/OmniSVG1.1_8B": False,
                        "Qwen/Qwen2.5-VL-3B-Instruct": True, "Qwen/Qwen2.5-VL-7B-Instruct": True}
    qwen7 = [m for m in details["models"] if m["model"] == "Qwen/Qwen2.5-VL-7B-Instruct"][0]
    assert qwen7["layout"] == "hf_cache" and "model-00005-of-00005.safetensors" in qwen7["files"]
    assert ok_text is None


def test_a_snapshot_with_the_tokenizer_only_has_no_model(open_tmp):
    """thesephist/hfm#1: AutoTokenizer alone fetched gpt-j-6B's tokenizer files: no config.json, no weights."""
    root = build_tree(fixture("hub_tree_gptj_tokenizer_only.txt"), str(open_tmp / "hub"))
    snapshot = "%s/models--EleutherAI--gpt-j-6B/snapshots/918ad376364058dee23512629bc385380c98e57d" % root
    problems, ok_text, _d = judge(root, {"crawler": ("EleutherAI/gpt-j-6B", "models--EleutherAI--gpt-j-6B")})
    assert ok_text is None and by_model(problems) == {"EleutherAI/gpt-j-6B": [
        "%s/config.json is missing" % snapshot,
        "%s has no weights (*.safetensors, pytorch_model*.bin, or a sharded index)" % snapshot]}


def test_an_interrupted_download_is_named_as_unfinished_with_no_weights(open_tmp):
    """AinzRimuru/HuggingfaceProxy#1: the weights' blob still *.incomplete, the snapshot without model.safetensors."""
    repo = build_tree(fixture("hf_cache_interrupted_safetensors.txt"), str(open_tmp / "hub" / "models--org--m"))
    snapshot = os.path.join(repo, "snapshots", "c1899de289a04d12100db370d81485cdf75e47ca")
    problems, ok_text, _d = judge(open_tmp / "hub", {"a": ("org/m", "models--org--m")})
    assert ok_text is None and by_model(problems) == {"org/m": [
        "%s/blobs holds 1 unfinished download(s) (*.incomplete)" % repo,
        "%s has no weights (*.safetensors, pytorch_model*.bin, or a sharded index)" % snapshot]}


def test_an_incomplete_blob_left_beside_its_finished_blob_is_not_a_download_in_progress(open_tmp):
    """Hand-made on the real Qwen2.5-VL-3B listing: a retried or concurrent download leaves <blob>.incomplete
    beside the finished <blob> that the snapshot links (jamiepine/voicebox#967 saw it in real caches). The
    model loads: the gate must not fail it. Without the finished blob it is a download in progress."""
    root = build_tree(fixture("hub_tree_omnisvg_qwen25vl.txt"), str(open_tmp / "hub"))
    blobs = os.path.join(root, "models--Qwen--Qwen2.5-VL-3B-Instruct", "blobs")
    shard = "41a8895c164b4d32bae6b302f4603fcbc1797f32dafa45c7e9bcda23c6755df8"
    st.write(os.path.join(blobs, shard + ".incomplete"), b"")
    models = {"a": ("Qwen/Qwen2.5-VL-3B-Instruct", "models--Qwen--Qwen2.5-VL-3B-Instruct")}
    problems, ok_text, _d = judge(root, models)
    assert problems == [] and ok_text.startswith("1 of 1 model(s) complete"), by_model(problems)
    os.remove(os.path.join(blobs, shard))
    problems, ok_text, _d = judge(root, models)
    assert ok_text is None and "%s holds 1 unfinished download(s) (*.incomplete)" % blobs in by_model(problems)[
        "Qwen/Qwen2.5-VL-3B-Instruct"]


def test_a_cache_folder_whose_first_download_never_finished_is_named_so(open_tmp):
    """Hand-made after debpalash/VoiceStudio#622 ("model folder has only refs/"): snapshot_download writes
    refs/main before any file, so a download that failed before its first file leaves no snapshots/.
    The gate named config.json and the weights missing from models--org--m itself, as if it were a plain
    model folder; it names the unfinished download now."""
    repo = os.path.join(str(open_tmp / "hub"), "models--org--m")
    st.write(os.path.join(repo, "refs", "main"), st.COMMIT.encode())
    st.write(os.path.join(repo, "blobs", "a" * 64 + ".incomplete"), b"\0" * 1024)
    problems, ok_text, details = judge(open_tmp / "hub", {"a": ("org/m", "models--org--m")})
    assert ok_text is None and by_model(problems) == {"org/m": [
        "%s/blobs holds 1 unfinished download(s) (*.incomplete)" % repo,
        "snapshot %s named by refs/main is missing from %s/snapshots (there is no snapshots/ folder: no file of "
        "the model was ever downloaded completely)" % (st.COMMIT, repo)]}
    assert details["models"][0]["layout"] == "hf_cache"
    assert [p["details"]["cause"] for p in problems] == ["incomplete", "missing_snapshot"]
    os.remove(os.path.join(repo, "refs", "main"))  # only blobs/: not even refs/main
    problems, _ok, _d = judge(open_tmp / "hub", {"a": ("org/m", "models--org--m")})
    assert by_model(problems)["org/m"][-1] == ("%s has no snapshots/ folder and no refs/main: no file of the model "
                                               "was ever downloaded completely" % repo)


def test_refs_main_unreadable_by_the_service_user_fails(open_tmp):
    """Hand-made on the real Qwen2.5-VL-3B listing: huggingface_hub resolves the revision 'main' by reading
    refs/main; written by root with umask 077 (mode 0600), the service user's loader cannot, although every
    blob is readable."""
    root = build_tree(fixture("hub_tree_omnisvg_qwen25vl.txt"), str(open_tmp / "hub"))
    _open_to_all(open_tmp, root)
    models = {"a": ("Qwen/Qwen2.5-VL-7B-Instruct", "models--Qwen--Qwen2.5-VL-7B-Instruct")}
    assert judge(root, models, SVC)[0] == []
    ref = os.path.join(root, "models--Qwen--Qwen2.5-VL-7B-Instruct", "refs", "main")
    os.chmod(ref, 0o600)
    problems, ok_text, _d = judge(root, models, SVC)
    assert ok_text is None and [(p["details"]["cause"], p["message"].split("): ", 1)[1]) for p in problems] == [
        ("unreadable", "%s is not readable by user 'svc' (uid 4242): mode 0600 root:root" % ref)]
    os.chmod(os.path.dirname(ref), 0o700)
    problems, _ok, _d = judge(root, models, SVC)
    assert [p["details"]["cause"] for p in problems] == ["no_search"]


def test_a_snapshots_folder_the_service_user_cannot_search_fails(open_tmp):
    """Hand-made on the real Qwen2.5-VL-7B listing: the loader opens snapshots/<commit>/config.json, so it
    must pass through snapshots/ (x) as well as blobs/. With snapshots/ at 0700 root every file's blob was
    still readable and the snapshot folder itself r-x, and the gate passed a model the service user cannot open."""
    root = build_tree(fixture("hub_tree_omnisvg_qwen25vl.txt"), str(open_tmp / "hub"))
    _open_to_all(open_tmp, root)
    models = {"a": ("Qwen/Qwen2.5-VL-7B-Instruct", "models--Qwen--Qwen2.5-VL-7B-Instruct")}
    snapshots = os.path.join(root, "models--Qwen--Qwen2.5-VL-7B-Instruct", "snapshots")
    os.chmod(snapshots, 0o700)
    problems, ok_text, _d = judge(root, models, SVC)
    assert ok_text is None and [(p["details"]["cause"], p["message"].split("): ", 1)[1]) for p in problems] == [
        ("no_search", "parent directory %s is not searchable (x) by user 'svc' (uid 4242): mode 0700 root:root"
         % snapshots)]


def test_a_hub_cache_with_a_bare_pytorch_model_bin_passes(open_tmp):
    """huggingface/transformers#33425: ~/.cache/huggingface with hub/version.txt and codet5p-770m (config.json
    and one pytorch_model.bin, links into blobs/): complete."""
    root = build_tree(fixture("hub_tree_codet5p_bin.txt"), str(open_tmp / "hf"))
    problems, ok_text, details = judge(root, {"a": ("Salesforce/codet5p-770m", "hub/models--Salesforce--codet5p-770m")})
    assert problems == [] and ok_text.startswith("1 of 1 model(s) complete"), by_model(problems)
    assert details["models"][0]["files"] == ["config.json", "pytorch_model.bin"]


def test_a_link_that_misses_its_blob_although_the_blob_is_there_is_named_as_a_broken_link(open_tmp):
    """huggingface/huggingface_hub#1388: huggingface_hub 0.13.1 with a relative cache_dir wrote links relative
    to the working directory (config.json -> tmp/xlmrb/models--.../blobs/<blob>), which lead nowhere from the
    snapshot; the blob is in blobs/. The gate said 'a blob not downloaded or not copied': a new download
    would not be needed; it names the broken link and the blob it names now."""
    root = build_tree(fixture("hf_cache_hub013_broken_relative_link.txt"), str(open_tmp / "store"))
    repo = os.path.join(root, "xlmrb", "models--xlm-roberta-base")
    snapshot = os.path.join(repo, "snapshots", "42f548f32366559214515ec137cdd16002968bf6")
    blob = "1960141250d189366dfb76630ba794a9c104ec07"
    problems, ok_text, _d = judge(root, {"a": ("xlm-roberta-base", "xlmrb/models--xlm-roberta-base")})
    assert ok_text is None and by_model(problems) == {"xlm-roberta-base": [
        "%s/config.json is a symbolic link to %s/tmp/xlmrb/models--xlm-roberta-base/blobs/%s, which is missing; "
        "%s/blobs/%s is there: the link is wrong, not the download (re-create the link, or download the model "
        "again)" % (snapshot, snapshot, blob, repo, blob),
        "%s has no weights (*.safetensors, pytorch_model*.bin, or a sharded index)" % snapshot]}


LINK_TEXT_FORMS = [
    # git with core.symlinks=false (git-config(1): "checked out as small plain files that contain the link text")
    (lambda target: target.encode(), "is a text file holding the target of a symbolic link (%s)"),
    # mount.cifs -o mfsymlinks (Minshall+French symlinks: a 1067-byte file, "XSym\n", length, md5, target)
    (lambda target: (b"XSym\n%04d\n" % len(target)) + b"0" * 32 + b"\n" + target.encode() + b"\n" +
     b" " * (1067 - 44 - len(target)), "is an SMB/CIFS symlink file (XSym, mount option mfsymlinks)"),
    # Cygwin without native links: a system file "!<symlink>" followed by the target in UTF-16 with a BOM
    (lambda target: b"!<symlink>\xff\xfe" + target.encode("utf-16-le") + b"\0\0", "is a Cygwin symlink file (!<symlink>)"),
]


def test_a_cache_copied_without_its_symbolic_links_is_named_so(open_tmp):
    """Hand-made on the real Qwen2.5-VL-3B listing: a cache copied by a tool that cannot keep symbolic links
    leaves, in each link's place, a small file holding the link (three documented forms). The gate said
    config.json 'is not valid JSON' and the shards 'not a safetensors file'; it names the copy now."""
    for make, said in LINK_TEXT_FORMS:
        root = build_tree(fixture("hub_tree_omnisvg_qwen25vl.txt"), str(open_tmp / "hub"))
        snapshot = os.path.join(root, "models--Qwen--Qwen2.5-VL-3B-Instruct", "snapshots",
                                "66285546d2b821cf421d4f5eb2576359d3770cd3")
        for name in ("config.json", "model-00002-of-00002.safetensors"):
            path = os.path.join(snapshot, name)
            target = os.readlink(path)
            os.remove(path)
            st.write(path, make(target))
        problems, ok_text, _d = judge(root, {"a": ("Qwen/Qwen2.5-VL-3B-Instruct",
                                                   "models--Qwen--Qwen2.5-VL-3B-Instruct")})
        found = [(p["details"]["cause"], p["message"].split("): ", 1)[1]) for p in problems]
        assert ok_text is None and [c for c, _m in found] == ["links_not_kept", "links_not_kept"], found
        config_said = said % "../../blobs/0ae1866f05ab0153ad293bdc92bb1b842c4d95b1" if "%s" in said else said
        assert found[0][1] == ("%s/config.json %s, not the file: the copy did not keep symbolic links"
                               % (snapshot, config_said)), found
        assert problems[0]["fix"] == _serving.FIXES["model_store"]["links_not_kept"]
        import shutil
        shutil.rmtree(root)


def test_an_empty_snapshot_says_whether_the_links_were_left_out_or_nothing_was_downloaded(open_tmp):
    """Hand-made on the real Qwen2.5-VL-7B listing. rsync -r without -l (or -a) skips every symbolic link
    ("skipping non-regular file"): the copy has all blobs and an empty snapshot folder. huggingface_hub makes
    blobs/ and snapshots/<commit>/ before the first file's download: one that never finished leaves the
    snapshot empty and blobs/ with *.incomplete only. The gate said 'config.json is missing' and 'has no
    weights' for both; it names each now."""
    root = build_tree(fixture("hub_tree_omnisvg_qwen25vl.txt"), str(open_tmp / "hub"))
    repo = os.path.join(root, "models--Qwen--Qwen2.5-VL-7B-Instruct")
    snapshot = os.path.join(repo, "snapshots", "cc594898137f460bfe9f0759e9844b3ce807cfb5")
    for name in os.listdir(snapshot):
        os.remove(os.path.join(snapshot, name))
    models = {"a": ("Qwen/Qwen2.5-VL-7B-Instruct", "models--Qwen--Qwen2.5-VL-7B-Instruct")}
    problems, ok_text, _d = judge(root, models)
    assert ok_text is None and [(p["details"]["cause"], p["message"].split("): ", 1)[1]) for p in problems] == [
        ("links_not_kept", "snapshot folder %s is empty while %s/blobs holds 16 file(s): a copy that left out the "
                           "symbolic links (rsync without -l or -a?)" % (snapshot, repo))]
    for name in os.listdir(os.path.join(repo, "blobs")):
        os.remove(os.path.join(repo, "blobs", name))
    st.write(os.path.join(repo, "blobs", "e" * 64 + ".incomplete"), b"\0" * 10)
    problems, ok_text, _d = judge(root, models)
    assert ok_text is None and [p["message"].split("): ", 1)[1] for p in problems] == [
        "%s/blobs holds 1 unfinished download(s) (*.incomplete)" % repo,
        "snapshot folder %s is empty: no file of the model was ever downloaded completely" % snapshot]


def test_refs_main_with_a_trailing_newline_fails_as_huggingface_hub_reads_it_as_is(open_tmp):
    """Hand-made on the real Qwen2.5-VL-3B listing, after huggingface/huggingface_hub#4133 and
    MiaAI-Lab/Qwen3.8-Flash-Next-Dual-DGX-Sparks#36: a hand-staged cache's refs/main written with
    `echo $SHA > refs/main` ends with a newline; huggingface_hub (1.28 still) reads it without strip(), looks
    for snapshots/<sha>\\n and, offline, fails to load a model whose snapshot is complete. The gate stripped
    the ref and passed."""
    root = build_tree(fixture("hub_tree_omnisvg_qwen25vl.txt"), str(open_tmp / "hub"))
    repo = os.path.join(root, "models--Qwen--Qwen2.5-VL-3B-Instruct")
    ref = os.path.join(repo, "refs", "main")
    models = {"a": ("Qwen/Qwen2.5-VL-3B-Instruct", "models--Qwen--Qwen2.5-VL-3B-Instruct")}
    assert judge(root, models)[0] == []
    with open(ref, "a") as handle:
        handle.write("\n")
    problems, ok_text, details = judge(root, models)
    assert ok_text is None and [(p["details"]["cause"], p["message"].split("): ", 1)[1]) for p in problems] == [
        ("ref_whitespace", "%s holds 66285546d2b821cf421d4f5eb2576359d3770cd3 followed by '\\n': huggingface_hub "
                           "reads the file as it is and finds no snapshot of that name, so loading offline fails" % ref)]
    assert problems[0]["fix"] == _serving.FIXES["model_store"]["ref_whitespace"]
    assert details["models"][0]["snapshot"].endswith("66285546d2b821cf421d4f5eb2576359d3770cd3")  # still checked


def test_a_hand_built_cache_with_a_named_snapshot_passes(open_tmp):
    """Hand-made after openshift/lightspeed-service#2961 (its Containerfile pre-populates the cache so that models
    load by id offline: snapshots/local/ with links to the model's files, refs/main naming "local"):
    huggingface_hub resolves any snapshot name refs/main holds. The gate refused every name but a commit hash;
    that PR's own `echo "local" > refs/main` adds a newline, which fails (as huggingface_hub reads it)."""
    root = str(open_tmp / "store")
    files = os.path.join(root, "embeddings_model", "all-mpnet-base-v2")
    st.model_dir(files)
    repo = os.path.join(root, "hub", "models--sentence-transformers--all-mpnet-base-v2")
    os.makedirs(os.path.join(repo, "snapshots", "local"))
    for name in os.listdir(files):
        os.symlink(os.path.join(files, name), os.path.join(repo, "snapshots", "local", name))
    st.write(os.path.join(repo, "refs", "main"), b"local")
    models = {"a": ("sentence-transformers/all-mpnet-base-v2", os.path.relpath(repo, root))}
    problems, ok_text, details = judge(root, models)
    assert problems == [] and ok_text.startswith("1 of 1 model(s) complete"), by_model(problems)
    assert details["models"][0]["snapshot"] == os.path.join(repo, "snapshots", "local")
    st.write(os.path.join(repo, "refs", "main"), b"local\n")
    problems, _ok, _d = judge(root, models)
    assert [p["details"]["cause"] for p in problems] == ["ref_whitespace"]
    st.write(os.path.join(repo, "refs", "main"), b"../x")
    problems, _ok, _d = judge(root, models)
    assert by_model(problems)["sentence-transformers/all-mpnet-base-v2"] == [
        "%s/refs/main does not hold a snapshot name (a commit hash)" % repo]


def _open_to_all(open_tmp, root):
    os.chmod(str(open_tmp), 0o755)
    st.readable_by_all(root)


def test_a_cache_downloaded_by_root_with_umask_077_is_unreadable_for_the_service_user(open_tmp):
    """Hand-made on the real Qwen2.5-VL-7B listing: `sudo huggingface-cli download` with root's umask 077 makes
    every folder of the repo 0700 and every blob 0600 (the store root itself open): the gate names the first
    thing the service user cannot enter; root may read it all."""
    root = build_tree(fixture("hub_tree_omnisvg_qwen25vl.txt"), str(open_tmp / "hub"))
    _open_to_all(open_tmp, root)
    repo = os.path.join(root, "models--Qwen--Qwen2.5-VL-7B-Instruct")
    for folder, _dirs, files in os.walk(repo):
        os.chmod(folder, 0o700)
        for name in files:
            if not os.path.islink(os.path.join(folder, name)):
                os.chmod(os.path.join(folder, name), 0o600)
    models = {"a": ("Qwen/Qwen2.5-VL-7B-Instruct", "models--Qwen--Qwen2.5-VL-7B-Instruct")}
    problems, ok_text, _d = judge(root, models, SVC)
    assert ok_text is None and [(p["details"]["cause"], p["message"].split("): ", 1)[1]) for p in problems] == [
        ("unreadable", "%s cannot be listed and entered (r-x) by user 'svc' (uid 4242): mode 0700 root:root" % repo)]
    assert judge(root, models)[0] == []
    os.chmod(repo, 0o755)  # the repo folder opened, nothing below it
    problems, _ok, _d = judge(root, models, SVC)
    assert [p["details"]["cause"] for p in problems] == ["no_search"], by_model(problems)


def test_a_cache_without_refs_main_warns_that_loading_by_id_offline_fails(open_tmp):
    """Hand-made on the real Qwen2.5-VL-3B listing, after tenstorrent/tt-metal#43184: a hub cache missing
    refs/main made every from_pretrained("google/gemma-3-4b-it") fail offline, the snapshot complete. The gate
    passed silently; it passes with a warning that names the cause (a loader given the snapshot folder still
    loads it, so it does not block)."""
    root = build_tree(fixture("hub_tree_omnisvg_qwen25vl.txt"), str(open_tmp / "hub"))
    repo = os.path.join(root, "models--Qwen--Qwen2.5-VL-3B-Instruct")
    os.remove(os.path.join(repo, "refs", "main"))
    problems, ok_text, details = judge(root, {"a": ("Qwen/Qwen2.5-VL-3B-Instruct", "models--Qwen--Qwen2.5-VL-3B-Instruct")})
    assert ok_text.startswith("1 of 1 model(s) complete") and details["models"][0]["complete"] is True
    assert [(p["status"], p["details"]["cause"], p["message"].split("): ", 1)[1]) for p in problems] == [
        ("warn", "no_ref", "%s has no refs/main: huggingface_hub resolves the revision 'main' through it, so loading "
                           "the model by its id offline fails (the gate checked the only snapshot, "
                           "66285546d2b821cf421d4f5eb2576359d3770cd3)" % repo)]
    assert problems[0]["fix"] == _serving.FIXES["model_store"]["no_ref"]


def test_a_download_interrupted_between_shards_names_the_missing_shards_and_the_unfinished_blob(open_tmp):
    """Hand-made on the real Qwen2.5-VL-7B listing: the index and shards 1-3 linked, shard 4's blob still
    *.incomplete, shard 5 not started (huggingface_hub links a file only once its blob is complete)."""
    root = build_tree(fixture("hub_tree_omnisvg_qwen25vl.txt"), str(open_tmp / "hub"))
    repo = os.path.join(root, "models--Qwen--Qwen2.5-VL-7B-Instruct")
    snapshot = os.path.join(repo, "snapshots", "cc594898137f460bfe9f0759e9844b3ce807cfb5")
    for number in (4, 5):
        link = os.path.join(snapshot, "model-%05d-of-00005.safetensors" % number)
        blob = os.path.normpath(os.path.join(snapshot, os.readlink(link)))
        os.remove(link)
        if number == 4:
            os.rename(blob, blob + ".incomplete")
        else:
            os.remove(blob)
    problems, ok_text, _d = judge(root, {"a": ("Qwen/Qwen2.5-VL-7B-Instruct", "models--Qwen--Qwen2.5-VL-7B-Instruct")})
    assert ok_text is None and by_model(problems)["Qwen/Qwen2.5-VL-7B-Instruct"] == [
        "%s/blobs holds 1 unfinished download(s) (*.incomplete)" % repo,
        "%s/model-00004-of-00005.safetensors is missing" % snapshot,
        "%s/model-00005-of-00005.safetensors is missing" % snapshot]


def test_absolute_links_into_another_cache_lead_outside_the_store(open_tmp):
    """Hand-made on the real codet5p listing: huggingface_hub 0.13.0 wrote absolute links (huggingface/huggingface_hub
    #1390, reverted in #1399); a cache made by it and copied into the store still points at the old cache."""
    old = build_tree(fixture("hub_tree_codet5p_bin.txt"), str(open_tmp / "home" / ".cache" / "huggingface"))
    root = str(open_tmp / "store")
    import shutil
    shutil.copytree(old, os.path.join(root, "hf"), symlinks=True)
    snapshot = os.path.join(root, "hf", "hub", "models--Salesforce--codet5p-770m", "snapshots",
                            "627d346e49cb68e600895ab8744e0e1efd5c4536")
    for name in os.listdir(snapshot):
        link = os.path.join(snapshot, name)
        target = os.path.normpath(os.path.join(old, "hub", "models--Salesforce--codet5p-770m", "snapshots",
                                               "627d346e49cb68e600895ab8744e0e1efd5c4536", os.readlink(link)))
        os.remove(link)
        os.symlink(target, link)
    problems, ok_text, _d = judge(root, {"a": ("Salesforce/codet5p-770m", "hf/hub/models--Salesforce--codet5p-770m")})
    assert ok_text is None and [p["details"]["cause"] for p in problems] == ["escapes", "escapes"]
    assert by_model(problems)["Salesforce/codet5p-770m"][0].startswith(
        "%s/config.json leads outside the store root %s (to %s/hub/models--Salesforce--codet5p-770m/blobs/"
        % (snapshot, root, old))


def test_no_exist_markers_beside_a_complete_snapshot_pass(open_tmp):
    """Hand-made on the real codet5p listing: huggingface_hub records files a repo lacks as empty files under
    .no_exist/<commit>/ (transformers asks for model.safetensors and its index first); they do not matter."""
    root = build_tree(fixture("hub_tree_codet5p_bin.txt"), str(open_tmp / "hf"))
    repo = os.path.join(root, "hub", "models--Salesforce--codet5p-770m")
    for name in ("model.safetensors", "model.safetensors.index.json", "adapter_config.json"):
        st.write(os.path.join(repo, ".no_exist", "627d346e49cb68e600895ab8744e0e1efd5c4536", name), b"")
    problems, ok_text, _d = judge(root, {"a": ("Salesforce/codet5p-770m", "hub/models--Salesforce--codet5p-770m")})
    assert problems == [] and ok_text.startswith("1 of 1 model(s) complete"), by_model(problems)


def test_a_placeholder_in_place_of_a_file_the_map_does_not_list_fails_too(open_tmp):
    """Hand-made on the real Qwen2.5-VL-3B listing: a clone without git-lfs leaves tokenizer.json (stored in
    LFS by many repos) as a pointer, and a copy without links leaves the link's text; the loader reads the
    tokenizer, but only the map's files were checked for it, so the gate passed."""
    root = build_tree(fixture("hub_tree_omnisvg_qwen25vl.txt"), str(open_tmp / "hub"))
    snapshot = os.path.join(root, "models--Qwen--Qwen2.5-VL-3B-Instruct", "snapshots",
                            "66285546d2b821cf421d4f5eb2576359d3770cd3")
    tokenizer = os.path.join(snapshot, "tokenizer.json")
    os.remove(tokenizer)
    st.write(tokenizer, b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize 7031645\n")
    vocab = os.path.join(snapshot, "vocab.json")
    target = os.readlink(vocab)
    os.remove(vocab)
    st.write(vocab, target.encode())
    problems, ok_text, _d = judge(root, {"a": ("Qwen/Qwen2.5-VL-3B-Instruct", "models--Qwen--Qwen2.5-VL-3B-Instruct")})
    assert ok_text is None and [(p["details"]["cause"], p["message"].split("): ", 1)[1]) for p in problems] == [
        ("lfs_pointer", "%s is a git-lfs pointer, not the file: run git lfs pull" % tokenizer),
        ("links_not_kept", "%s is a text file holding the target of a symbolic link (%s), not the file: the copy did "
                           "not keep symbolic links" % (vocab, target))]


def test_a_truncated_weights_file_beside_a_complete_index_fails(open_tmp):
    """Hand-made on the real Qwen2.5-VL-7B listing: the shards of the index are complete, and a single-file
    model.safetensors beside them stopped early. transformers loads model.safetensors before any index, so
    the model fails to load; only the index's shards were checked, and the gate passed."""
    root = build_tree(fixture("hub_tree_omnisvg_qwen25vl.txt"), str(open_tmp / "hub"))
    snapshot = os.path.join(root, "models--Qwen--Qwen2.5-VL-7B-Instruct", "snapshots",
                            "cc594898137f460bfe9f0759e9844b3ce807cfb5")
    single = os.path.join(snapshot, "model.safetensors")
    st.write(single, st.safetensors_bytes([("weight", 4096)], {"format": "pt"}))
    models = {"a": ("Qwen/Qwen2.5-VL-7B-Instruct", "models--Qwen--Qwen2.5-VL-7B-Instruct")}
    assert judge(root, models)[0] == []
    st.truncate(single, 1000)
    problems, ok_text, _d = judge(root, models)
    assert ok_text is None and [p["message"].split("): ", 1)[1] for p in problems] == [
        "%s is truncated: 1000 of %d bytes (a copy that did not finish)" % (
            single, len(st.safetensors_bytes([("weight", 4096)], {"format": "pt"})))]


def test_a_link_to_a_missing_blob_in_a_snapshot_sub_folder_fails(open_tmp):
    """Hand-made on the real codet5p listing: sentence-transformers repos keep files in sub-folders of the
    snapshot (1_Pooling/config.json -> ../../../blobs/<blob>); a download cut short leaves such a link to a blob
    that never came. Only the snapshot's top level was looked at, so the gate passed; a whole one still passes."""
    root = build_tree(fixture("hub_tree_codet5p_bin.txt"), str(open_tmp / "hf"))
    repo = os.path.join(root, "hub", "models--Salesforce--codet5p-770m")
    snapshot = os.path.join(repo, "snapshots", "627d346e49cb68e600895ab8744e0e1efd5c4536")
    pooling = os.path.join(snapshot, "1_Pooling")
    os.makedirs(pooling)
    st.write(os.path.join(repo, "blobs", "d1514c3162bbe87b343f565fadc62e6c06f04f03"), b'{"word_embedding_dimension": 1024}')
    os.symlink("../../../blobs/d1514c3162bbe87b343f565fadc62e6c06f04f03", os.path.join(pooling, "config.json"))
    models = {"a": ("Salesforce/codet5p-770m", "hub/models--Salesforce--codet5p-770m")}
    problems, ok_text, _d = judge(root, models)
    assert problems == [] and ok_text.startswith("1 of 1 model(s) complete"), by_model(problems)
    os.remove(os.path.join(repo, "blobs", "d1514c3162bbe87b343f565fadc62e6c06f04f03"))
    problems, ok_text, _d = judge(root, models)
    assert ok_text is None and [(p["details"]["cause"], p["message"].split("): ", 1)[1]) for p in problems] == [
        ("incomplete", "%s/config.json is a symbolic link to %s/d1514c3162bbe87b343f565fadc62e6c06f04f03, which is "
                       "missing (a blob not downloaded or not copied)" % (pooling, os.path.join(repo, "blobs")))]


def test_a_map_path_naming_a_snapshot_folder_still_sees_the_cache_downloads_in_progress(open_tmp):
    """AinzRimuru/HuggingfaceProxy#1, with the map naming the snapshot folder itself (as vLLM's or TEI's
    --model /data/models--org--name/snapshots/<commit> does): the weights' blob is still *.incomplete. Judged as
    a plain model folder, the download in progress went unseen (only 'has no weights' said anything, and a
    snapshot whose unfinished blob is not a weight file passed)."""
    repo = build_tree(fixture("hf_cache_interrupted_safetensors.txt"), str(open_tmp / "hub" / "models--org--m"))
    rel = "models--org--m/snapshots/c1899de289a04d12100db370d81485cdf75e47ca"
    problems, ok_text, _d = judge(open_tmp / "hub", {"a": ("org/m", rel)})
    assert ok_text is None and by_model(problems) == {"org/m": [
        "%s/blobs holds 1 unfinished download(s) (*.incomplete)" % repo,
        "%s/%s has no weights (*.safetensors, pytorch_model*.bin, or a sharded index)" % (open_tmp / "hub", rel)]}
    # hand-made: the weights there and whole, the unfinished blob another file's: still not ready
    st.write(os.path.join(repo, "snapshots", "c1899de289a04d12100db370d81485cdf75e47ca", "model.safetensors"),
             st.safetensors_bytes())
    problems, ok_text, _d = judge(open_tmp / "hub", {"a": ("org/m", rel)})
    assert ok_text is None and by_model(problems) == {"org/m": [
        "%s/blobs holds 1 unfinished download(s) (*.incomplete)" % repo]}


def test_a_blobs_folder_the_gate_cannot_list_is_said_not_passed(open_tmp, monkeypatch):
    """Hand-made on the real codet5p listing: blobs/ that the gate's user may search but not list (0711; the
    loader only follows the snapshot's links into it). A download in progress there cannot be seen, and the walk
    that looks for one stopped silently: a complete-looking model passed with that part unchecked. Now a warning
    says so (the files the snapshot links are all checked, so it does not block). Root lists everything, so the
    refusal the kernel would give the service user is made here."""
    root = build_tree(fixture("hub_tree_codet5p_bin.txt"), str(open_tmp / "hf"))
    blobs = os.path.join(root, "hub", "models--Salesforce--codet5p-770m", "blobs")
    real_walk = os.walk

    def walk(top, onerror=None, **kw):
        if top == blobs:
            onerror(PermissionError(13, "Permission denied", top))
            return iter(())
        return real_walk(top, onerror=onerror, **kw)

    monkeypatch.setattr(_serving.os, "walk", walk)
    problems, ok_text, _d = judge(root, {"a": ("Salesforce/codet5p-770m", "hub/models--Salesforce--codet5p-770m")})
    assert ok_text is not None and [(p["status"], p["message"].split("): ", 1)[1]) for p in problems] == [
        ("warn", "%s cannot be listed to look for unfinished downloads (*.incomplete): Permission denied" % blobs)]
    assert problems[0]["fix"] == _serving.FIXES["model_store"]["downloads_unverified"]
