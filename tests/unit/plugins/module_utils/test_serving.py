"""_serving: the serving gate's collectors and pure evaluations (the family itself: test_serving_gate.py).

The HTTP parts run against a REAL HTTP server (tests/simserve, stdlib http.server on 127.0.0.1,
free port) that plays the orchestrator; the store parts against model stores laid out in temp dirs
as Hugging Face writes them (tests/simserve/store.py). Permissions are checked for a service user
by uid/gid/mode (and POSIX ACL), never with os.access (the tests run as root).
"""

from __future__ import annotations

import http.server
import json
import os
import re
import socket
import stat
import struct
import threading

import pytest

import simserve
from simserve import store as st
from simserve.fixtures import open_tmp, orchestrator  # noqa: F401  # pylint: disable=unused-import

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks, _permissions, _serving

SVC = {"name": "svc", "uid": 4242, "gid": 4242, "groups": [4242], "source": "given"}


class FakeClock(object):
    """A clock the fake sleep advances; HTTP calls themselves take no fake time."""

    def __init__(self):
        self.now = 1000.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


# ---------------------------------------------------------------- the model map


def load(open_tmp, doc, name="map.json"):
    path = open_tmp / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return _serving.read_model_map(str(path))


def messages(problems):
    return [p["message"] for p in problems]


def test_valid_map_gives_its_entries(open_tmp):
    loaded = load(open_tmp, {"crawler": {"model": "Qwen/Qwen2.5-7B-Instruct", "path": "qwen7b"},
                             "bus": {"model": "org/small", "path": "small", "files": ["tokenizer.json"]},
                             "mcp": {"model": "Qwen/Qwen2.5-7B-Instruct", "path": "qwen7b"}})
    problems, ok_text, details = _serving.evaluate_model_map(loaded)
    assert problems == []
    assert ok_text.startswith("3 agent(s), 2 model(s)")
    assert [e["agent"] for e in details["entries"]] == ["crawler", "bus", "mcp"]
    assert details["entries"][1]["files"] == ["tokenizer.json"]


@pytest.mark.parametrize("doc, expected", [
    ("{not json", "is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
    ("[]", "must be a JSON object of agent key -> {model, path}, not a list"),
    ("{}", "names no agent"),
    ("   ", "is empty"),
    ('{"crawler": {"model": "a", "path": "a"}, "crawler": {"model": "b", "path": "b"}}',
     "key 'crawler' appears more than once"),
    ({"crawler": "org/a"}, "agent 'crawler': expected an object with model and path, got a string"),
    ({"crawler": {"modle": "org/a", "path": "a"}}, "agent 'crawler': unknown field 'modle' (did you mean 'model'?)"),
    ({"crawler": {"path": "a"}}, "agent 'crawler': 'model' must be a non-empty model id"),
    ({"crawler": {"model": "org/a"}}, "agent 'crawler': 'path' must be the model's folder under the store root"),
    ({"crawler": {"model": "org a", "path": "a"}}, "agent 'crawler': model id \"org a\" has spaces"),
    ({"crawler": {"model": "org/a", "path": "../../etc"}}, "path \"../../etc\" climbs out of the store root"),
    ({"crawler": {"model": "org/a", "path": "a", "files": "x"}}, "'files' must be a list of file names"),
    ({"crawler": {"model": "org/a", "path": "a", "files": ["../x"]}}, "file \"../x\" climbs out"),
    ({"crawler": {"model": "org/a", "path": "a\x00b"}}, "path \"a\\u0000b\" contains control characters"),
    ({"crawler": {"model": "org/a", "path": "a", "files": ["x\ny"]}}, "file \"x\\ny\" contains control characters"),
    ({"bad key": {"model": "org/a", "path": "a"}}, "agent 'bad key': not a valid agent key"),
    ({"a": {"model": "org/m", "path": "m1"}, "b": {"model": "org/m", "path": "m2"}},
     "model 'org/m' has 2 different paths: agent 'a' -> m1; agent 'b' -> m2"),
    ({"a": {"model": "org/m", "path": "m"}, "b": {"model": "org/n", "path": "m"}},
     "path m is mapped to different model ids: agent 'a' -> 'org/m'; agent 'b' -> 'org/n'"),
    ({"a": {"model": "Qwen/Qwen2.5-7B", "path": "m"}, "b": {"model": "qwen/qwen2.5_7b", "path": "n"}},
     "model ids 'Qwen/Qwen2.5-7B' ('a') and 'qwen/qwen2.5_7b' ('b') differ only in case or punctuation: a typo?"),
])
def test_bad_maps_name_the_problem_and_the_key(open_tmp, doc, expected):
    problems, ok_text, details = _serving.evaluate_model_map(load(open_tmp, doc))
    assert ok_text is None and details["entries"] == []
    assert all(p["status"] == _checks.FAIL and p["fix"] for p in problems)
    assert any(expected in m for m in messages(problems)), messages(problems)


def test_unknown_agent_key_is_named_with_a_suggestion(open_tmp):
    loaded = load(open_tmp, {"crawlr": {"model": "org/a", "path": "a"}})
    problems, _ok, _d = _serving.evaluate_model_map(loaded, known_agents=["crawler", "bus"])
    assert messages(problems) == ["model map %s: agent 'crawlr' is not a known agent (did you mean 'crawler'?); "
                                  "known agents: 'crawler', 'bus'" % (open_tmp / "map.json")]


def test_map_that_is_not_a_regular_file_or_too_big_or_not_utf8(open_tmp):
    fifo = open_tmp / "fifo.json"
    os.mkfifo(str(fifo))
    assert "is a fifo, not a regular file" in _serving.read_model_map(str(fifo))["error"]  # and no hang
    assert "is a directory" in _serving.read_model_map(str(open_tmp))["error"]
    assert "cannot be read: No such file" in _serving.read_model_map(str(open_tmp / "nope.json"))["error"]
    big = open_tmp / "big.json"
    big.write_text(json.dumps({"a": {"model": "x" * 100, "path": "p"}}))
    assert "larger than its limit of 50 bytes" in _serving.read_model_map(str(big), limit=50)["error"]
    raw = open_tmp / "latin1.json"
    raw.write_bytes(b'{"caf\xe9": {"model": "a", "path": "a"}}')
    error = _serving.read_model_map(str(raw))["error"]
    assert "not valid UTF-8 (byte 5)" in error
    error.encode("utf-8")
    assert _serving.read_model_map(None)["error"].startswith("no model map given")


# ---------------------------------------------------------------- permissions


def fake_stat(mode, uid=0, gid=0):
    return os.stat_result((mode, 0, 0, 1, uid, gid, 0, 0, 0, 0))


@pytest.mark.parametrize("mode, uid, gid, want, allowed", [
    (0o100640, 4242, 0, _permissions.R_OK, True),        # owner
    (0o100040, 4242, 4242, _permissions.R_OK, False),    # owner bits only, even when the group could
    (0o100640, 0, 4242, _permissions.R_OK, True),        # group
    (0o100600, 0, 4242, _permissions.R_OK, False),
    (0o100604, 0, 0, _permissions.R_OK, True),           # other
    (0o040750, 0, 0, _permissions.X_OK, False),          # a directory others cannot search
    (0o040751, 0, 0, _permissions.X_OK, True),
])
def test_may_access_follows_the_mode_for_the_service_user(mode, uid, gid, want, allowed):
    assert _permissions.may_access(fake_stat(mode, uid, gid), SVC, want) is allowed


def test_root_reads_everything_but_executes_only_with_an_x_bit():
    root = dict(SVC, uid=0, gid=0, groups=[0])
    assert _permissions.may_access(fake_stat(0o100000), root, _permissions.R_OK)
    assert _permissions.may_access(fake_stat(0o040000), root, _permissions.X_OK)
    assert not _permissions.may_access(fake_stat(0o100600), root, _permissions.X_OK)


def test_posix_acl_named_user_and_mask():
    acl = [(0x01, 6, 0), (0x02, 4, 4242), (0x04, 0, 0), (0x10, 4, 0), (0x20, 0, 0)]
    assert _permissions.may_access(fake_stat(0o100640), SVC, _permissions.R_OK, acl)
    masked = [(0x01, 6, 0), (0x02, 6, 4242), (0x04, 0, 0), (0x10, 0, 0), (0x20, 0, 0)]
    assert not _permissions.may_access(fake_stat(0o100600), SVC, _permissions.R_OK, masked)
    group = [(0x01, 6, 0), (0x04, 0, 0), (0x08, 4, 4242), (0x10, 4, 0), (0x20, 0, 0)]
    assert _permissions.may_access(fake_stat(0o100640), SVC, _permissions.R_OK, group)


def set_acl(path, entries):
    os.setxattr(path, "system.posix_acl_access",
                struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, i) for t, p, i in entries))


def test_acl_read_from_the_file_grants_the_service_user(open_tmp):
    path = open_tmp / "f"
    path.write_text("x")
    os.chmod(str(path), 0o600)
    assert not _permissions.may_access(os.stat(str(path)), SVC, _permissions.R_OK, _permissions.read_acl(str(path)))
    set_acl(str(path), [(0x01, 6, 0xFFFFFFFF), (0x02, 4, 4242), (0x04, 0, 0xFFFFFFFF), (0x10, 4, 0xFFFFFFFF),
                        (0x20, 0, 0xFFFFFFFF)])
    assert _permissions.may_access(os.stat(str(path)), SVC, _permissions.R_OK, _permissions.read_acl(str(path)))


def test_service_identity_of_a_named_user_and_under_sudo():
    ident = _permissions.service_identity("root")
    assert (ident["uid"], ident["gid"], ident["source"]) == (0, 0, "given")
    with pytest.raises(ValueError, match="service user 'no-such-user-here' does not exist"):
        _permissions.service_identity("no-such-user-here")
    if os.geteuid() == 0:
        ident = _permissions.service_identity(environ={"SUDO_UID": "65534", "SUDO_GID": "65534"})
        assert ident["uid"] == 65534 and ident["source"] == "sudo"


def test_a_user_database_that_does_not_answer_is_a_clear_error_within_the_bound(monkeypatch):
    import pwd
    import threading

    released = threading.Event()

    def hung(name):  # an LDAP/SSSD lookup that never comes back
        released.wait(30)
        raise KeyError(name)

    monkeypatch.setattr(pwd, "getpwnam", hung)
    try:
        with pytest.raises(ValueError, match="looking up the service user 'svc' took over 0.2s: is the user database"):
            _permissions.service_identity("svc", timeout=0.2)
    finally:
        released.set()


# ---------------------------------------------------------------- the model store


def make_store(open_tmp, **models):
    """models: agent=(model id, relative path, builder or None)."""
    root = open_tmp / "store"
    root.mkdir(exist_ok=True)
    os.chmod(str(open_tmp), 0o755)
    entries = []
    for agent, (model, rel, build) in models.items():
        if build is not None:
            build(str(root / rel))
        entries.append({"agent": agent, "model": model, "path": rel, "files": []})
    return str(root), entries


def inspect(root, entries, ident=None, strict=True, base_dir=None):
    found = _serving.inspect_model_store(entries, root, ident or dict(SVC, uid=0, gid=0, groups=[0]), base_dir)
    return _serving.evaluate_model_store(found, strict=strict)


def test_complete_models_in_every_layout_pass(open_tmp):
    root, entries = make_store(
        open_tmp,
        a=("org/a", "org/a", st.model_dir),
        b=("org/b", "org/b", lambda p: st.model_dir(p, shards=3)),
        c=("org/c", "org/c", lambda p: st.model_dir(p, fmt="bin")),
        d=("org/d", "org/d", lambda p: st.model_dir(p, shards=2, fmt="bin")),
        e=("org/e", "models--org--e", None),
    )
    st.hf_cache_repo(root, "org/e", shards=2)
    st.readable_by_all(root)
    problems, ok_text, details = inspect(root, entries, SVC)
    assert problems == [], messages(problems)
    assert ok_text.startswith("5 of 5 model(s) complete under %s, readable by user 'svc' (uid 4242)" % root)
    layouts = dict((m["model"], m["layout"]) for m in details["models"])
    assert layouts == {"org/a": "model_dir", "org/b": "model_dir", "org/c": "model_dir", "org/d": "model_dir",
                       "org/e": "hf_cache"}
    assert "model-00003-of-00003.safetensors" in details["models"][1]["files"]


def test_a_model_shared_by_agents_is_inspected_once_and_names_every_agent(open_tmp):
    root, entries = make_store(open_tmp, a=("org/m", "m", None), b=("org/m", "m", None))
    problems, _ok, details = inspect(root, entries)
    assert len(problems) == 1 and len(details["models"]) == 1
    assert problems[0]["message"].startswith("agents 'a', 'b' (model 'org/m'): %s/m is not in the store" % root)


def test_missing_model_fails_in_strict_mode_and_warns_otherwise(open_tmp):
    root, entries = make_store(open_tmp, crawler=("org/a", "org/a", None))
    problems, ok_text, _d = inspect(root, entries)
    assert ok_text is None and problems[0]["status"] == _checks.FAIL
    assert problems[0]["message"] == ("agent 'crawler' (model 'org/a'): %s/org/a is not in the store "
                                      "(STRICT_MODEL_STORE=1: nothing may be downloaded at start-up)" % root)
    assert problems[0]["fix"] == _serving.FIXES["model_store"]["missing"]
    problems, ok_text, _d = inspect(root, entries, strict=False)
    assert problems[0]["status"] == _checks.WARN and "would download it" in problems[0]["message"]
    assert ok_text.startswith("0 of 1 model(s) complete")


@pytest.mark.parametrize("damage, cause, expected", [
    (lambda d: st.truncate(os.path.join(d, "model-00002-of-00003.safetensors"), 100), "incomplete",
     "model-00002-of-00003.safetensors is truncated"),
    (lambda d: os.remove(os.path.join(d, "model-00003-of-00003.safetensors")), "incomplete",
     "model-00003-of-00003.safetensors is missing"),
    (lambda d: os.remove(os.path.join(d, "model.safetensors.index.json")) or
     os.remove(os.path.join(d, "model-00002-of-00003.safetensors")), "incomplete",
     "model-00002-of-00003.safetensors is missing (shard 2 of 3)"),
    (lambda d: open(os.path.join(d, "config.json"), "w").close(), "incomplete", "config.json is empty (0 bytes)"),
    (lambda d: open(os.path.join(d, "config.json"), "w").write('{"model_type": "lla'), "incomplete",
     "config.json is not valid JSON (Unterminated string"),
    (lambda d: os.remove(os.path.join(d, "config.json")), "incomplete", "config.json is missing"),
    (lambda d: [os.remove(os.path.join(d, n)) for n in os.listdir(d) if "model" in n], "incomplete",
     "has no weights (*.safetensors, pytorch_model*.bin, or a sharded index)"),
    (lambda d: open(os.path.join(d, "model-00001-of-00003.safetensors"), "ab").write(b"junk"), "incomplete",
     "has 4 bytes after its last tensor"),
    (lambda d: os.remove(os.path.join(d, "model-00001-of-00003.safetensors")) or
     os.symlink("/etc/hostname", os.path.join(d, "model-00001-of-00003.safetensors")), "escapes",
     "model-00001-of-00003.safetensors leads outside the store root"),
])
def test_half_copied_models_are_named_with_what_is_wrong(open_tmp, damage, cause, expected):
    root, entries = make_store(open_tmp, crawler=("org/a", "org/a", lambda p: st.model_dir(p, shards=3)))
    damage(os.path.join(root, "org/a"))
    problems, ok_text, _d = inspect(root, entries)
    assert ok_text is None
    assert any(p["details"]["cause"] == cause and expected in p["message"] for p in problems), messages(problems)
    assert all(p["message"].startswith("agent 'crawler' (model 'org/a'): ") for p in problems)


def rewrite_index(folder, change):
    path = os.path.join(folder, "model.safetensors.index.json")
    with open(path) as handle:
        doc = json.load(handle)
    change(doc["weight_map"])
    with open(path, "w") as handle:
        json.dump(doc, handle)


@pytest.mark.parametrize("change, shown", [
    (lambda wm: wm.update({"layers.9.w0": None}), '"layers.9.w0" null'),
    (lambda wm: wm.update({"layers.9.w0": 3}), '"layers.9.w0" 3'),
    (lambda wm: wm.update({"layers.9.w0": ["model-00001-of-00003.safetensors"]}), '"layers.9.w0" ["model-00001'),
])
def test_an_index_naming_a_tensor_without_a_shard_file_name_is_not_valid(open_tmp, change, shown):
    """transformers joins every weight_map value to the folder: one that is not a file name is a corrupt index,
    even when every shard the other values name is there and whole."""
    root, entries = make_store(open_tmp, crawler=("org/a", "org/a", lambda p: st.model_dir(p, shards=3)))
    rewrite_index(os.path.join(root, "org/a"), change)
    problems, ok_text, _d = inspect(root, entries)
    assert ok_text is None
    assert any("model.safetensors.index.json is not a valid weights index (weight_map gives tensor %s" % shown
               in p["message"] for p in problems), messages(problems)


def test_a_shard_that_lacks_the_tensors_its_index_places_in_it_fails(open_tmp):
    """A shard of another revision (a re-download that replaced some shards only, a copy mixing two versions):
    whole and valid, so the gate passed, but the index places tensors in it that it does not hold; transformers
    then loads the model with those weights missing (freshly initialised), vLLM fails."""
    root, entries = make_store(open_tmp, crawler=("org/a", "org/a", lambda p: st.model_dir(p, shards=3)))
    shard = os.path.join(root, "org/a", "model-00002-of-00003.safetensors")
    st.write(shard, st.safetensors_bytes([("layers.1.w0", 128), ("layers.1.extra", 128)], {"format": "pt"}))
    problems, ok_text, _d = inspect(root, entries)
    assert ok_text is None and messages(problems) == [
        "agent 'crawler' (model 'org/a'): %s does not hold 1 tensor(s) its index places in it (layers.1.w1): a shard "
        "of another revision or model" % shard]
    st.write(shard, st.safetensors_bytes([("x.%d" % i, 4) for i in range(5)], {"format": "pt"}))
    assert "does not hold 2 tensor(s) its index places in it (layers.1.w0, layers.1.w1)" in messages(
        inspect(root, entries)[0])[0]
    # extra tensors in a shard are no harm (the index need not name every one): the set above, with both, passes
    st.write(shard, st.safetensors_bytes([("layers.1.w0", 128), ("layers.1.w1", 128), ("layers.1.extra", 8)]))
    assert inspect(root, entries)[0] == []


def test_a_file_aria2c_has_not_finished_is_not_ready(open_tmp):
    """aria2c (hfd.sh) allocates each file at its full size and writes into it, keeping <file>.aria2 beside it until
    the download completes (aria2/aria2#792: stopped, it leaves the control file). The file's size and even its
    header can look whole while the rest is zeros, so the gate passed; the control file now names it."""
    def build(folder):
        st.model_dir(folder, shards=3)
        st.write(os.path.join(folder, "model-00003-of-00003.safetensors.aria2"), b"\x00\x01" + b"\x00" * 60)
        st.write(os.path.join(folder, "1_Pooling", "config.json.aria2"), b"\x00\x01" + b"\x00" * 60)

    root, entries = make_store(open_tmp, crawler=("org/a", "org/a", build))
    folder = os.path.join(root, "org/a")
    problems, ok_text, _d = inspect(root, entries)
    assert ok_text is None and messages(problems) == [
        "agent 'crawler' (model 'org/a'): %s/model-00003-of-00003.safetensors is not completely downloaded: "
        "%s/model-00003-of-00003.safetensors.aria2 (aria2c's control file) is beside it" % (folder, folder),
        "agent 'crawler' (model 'org/a'): %s/1_Pooling/config.json is not completely downloaded: "
        "%s/1_Pooling/config.json.aria2 (aria2c's control file) is beside it" % (folder, folder)]
    for current, _dirs, names in os.walk(folder):
        for name in names:
            if name.endswith(".aria2"):
                os.remove(os.path.join(current, name))  # what aria2c does when the download completes
    assert inspect(root, entries)[0] == []


def bin_index(folder, shards=2):
    names = ["pytorch_model-%05d-of-%05d.bin" % (i, shards) for i in range(1, shards + 1)]
    st.write(os.path.join(folder, "pytorch_model.bin.index.json"),
             json.dumps({"metadata": {"total_size": 1}, "weight_map": dict(("w%d" % i, n) for i, n in enumerate(names))}))


def test_one_complete_format_is_enough(open_tmp):
    """huggingface-cli download --exclude "*.bin": both index files, only the safetensors shards."""
    root, entries = make_store(open_tmp, a=("org/a", "org/a", lambda p: st.model_dir(p, shards=2)))
    bin_index(os.path.join(root, "org/a"))
    problems, ok_text, details = inspect(root, entries)
    assert problems == [] and ok_text.startswith("1 of 1 model(s) complete"), messages(problems)
    assert "pytorch_model.bin.index.json" not in details["models"][0]["files"]


def test_safetensors_half_there_is_not_saved_by_complete_bins(open_tmp):
    """Loaders pick safetensors when there are any: a missing safetensors shard fails, whatever the .bin files."""
    root, entries = make_store(open_tmp, a=("org/a", "org/a", lambda p: st.model_dir(p, shards=2, fmt="bin")))
    folder = os.path.join(root, "org/a")
    st.model_dir(folder + ".st", shards=2)
    for name in ("model.safetensors.index.json", "model-00001-of-00002.safetensors"):
        os.rename(os.path.join(folder + ".st", name), os.path.join(folder, name))
    problems, ok_text, _d = inspect(root, entries)
    assert ok_text is None and messages(problems) == [
        "agent 'a' (model 'org/a'): %s/model-00002-of-00002.safetensors is missing" % folder]


def test_truncated_torch_zip_weights(open_tmp):
    root, entries = make_store(open_tmp, crawler=("org/a", "org/a", lambda p: st.model_dir(p, fmt="bin")))
    path = os.path.join(root, "org/a", "pytorch_model.bin")
    st.truncate(path, os.path.getsize(path) - 30)
    problems, _ok, _d = inspect(root, entries)
    assert messages(problems) == ["agent 'crawler' (model 'org/a'): %s is truncated: a zip archive (torch.save) "
                                  "without its end record" % path]


def test_hf_cache_missing_snapshot_incomplete_blob_and_dangling_link(open_tmp):
    root, entries = make_store(open_tmp, crawler=("org/e", "models--org--e", None))
    repo = st.hf_cache_repo(root, "org/e")
    with open(os.path.join(repo, "refs", "main"), "w") as handle:
        handle.write("f" * 40)
    problems, _ok, _d = inspect(root, entries)
    assert [p["details"]["cause"] for p in problems] == ["missing_snapshot"]
    assert "snapshot %s named by refs/main is missing from %s/snapshots" % ("f" * 40, repo) in problems[0]["message"]
    assert problems[0]["fix"] == _serving.FIXES["model_store"]["missing_snapshot"]

    with open(os.path.join(repo, "refs", "main"), "w") as handle:
        handle.write(st.COMMIT)
    blobs = os.path.join(repo, "blobs")
    weights = os.path.realpath(os.path.join(repo, "snapshots", st.COMMIT, "model.safetensors"))
    os.rename(weights, weights + ".incomplete")
    problems, _ok, _d = inspect(root, entries)
    found = messages(problems)
    assert any("%s holds 1 unfinished download(s) (*.incomplete)" % blobs in m for m in found), found
    assert any("model.safetensors is a symbolic link to %s, which is missing" % weights in m for m in found), found


def test_hf_cache_without_refs_uses_its_only_snapshot_and_refuses_to_guess_between_two(open_tmp):
    root, entries = make_store(open_tmp, crawler=("org/e", "models--org--e", None))
    repo = st.hf_cache_repo(root, "org/e")
    os.remove(os.path.join(repo, "refs", "main"))
    problems, ok_text, _d = inspect(root, entries)  # complete, with a warning: loading by id offline needs refs/main
    assert ok_text.startswith("1 of 1 model(s) complete") and [(p["status"], p["details"]["cause"]) for p in problems] == [
        (_checks.WARN, "no_ref")]
    os.makedirs(os.path.join(repo, "snapshots", "1" * 40))
    problems, _ok, _d = inspect(root, entries)
    assert "has 2 snapshot(s) and no refs/main to choose one" in problems[0]["message"]


def test_unreadable_file_for_the_service_user(open_tmp):
    root, entries = make_store(open_tmp, crawler=("org/a", "org/a", st.model_dir))
    st.readable_by_all(root)
    weights = os.path.join(root, "org/a", "model.safetensors")
    os.chmod(weights, 0o600)
    problems, _ok, _d = inspect(root, entries, SVC)
    assert messages(problems) == ["agent 'crawler' (model 'org/a'): %s is not readable by user 'svc' (uid 4242): "
                                  "mode 0600 root:root" % weights]
    assert problems[0]["details"]["cause"] == "unreadable"
    assert problems[0]["fix"] == _serving.FIXES["model_store"]["unreadable"]
    assert inspect(root, entries)[0] == []  # root itself may read it: the check is for the service user


def test_parent_directory_without_search_permission(open_tmp):
    root, entries = make_store(open_tmp, crawler=("org/a", "org/a", st.model_dir))
    st.readable_by_all(root)
    os.chmod(os.path.join(root, "org"), 0o750)
    problems, _ok, _d = inspect(root, entries, SVC)
    assert messages(problems) == ["agent 'crawler' (model 'org/a'): parent directory %s/org is not searchable (x) "
                                  "by user 'svc' (uid 4242): mode 0750 root:root" % root]
    assert problems[0]["details"]["cause"] == "no_search"
    os.chmod(os.path.join(root, "org"), 0o755)
    os.chmod(str(open_tmp), 0o700)  # above the store root too
    problems, _ok, _d = inspect(root, entries, SVC)
    assert problems[0]["message"] == ("store root: parent directory %s is not searchable (x) by user 'svc' "
                                      "(uid 4242): mode 0700 root:root" % open_tmp)


def test_group_membership_and_an_acl_grant_access(open_tmp):
    root, entries = make_store(open_tmp, crawler=("org/a", "org/a", st.model_dir))
    st.readable_by_all(root)
    folder = os.path.join(root, "org/a")
    os.chown(folder, 0, 4242)
    os.chmod(folder, 0o750)
    assert inspect(root, entries, SVC)[0] == []
    os.chown(folder, 0, 0)
    problems, _ok, _d = inspect(root, entries, SVC)
    assert "cannot be listed and entered (r-x) by user 'svc'" in problems[0]["message"]
    set_acl(folder, [(0x01, 7, 0xFFFFFFFF), (0x02, 5, 4242), (0x04, 5, 0xFFFFFFFF), (0x10, 5, 0xFFFFFFFF),
                     (0x20, 0, 0xFFFFFFFF)])
    assert inspect(root, entries, SVC)[0] == []


def test_paths_escaping_the_store_root(open_tmp):
    outside = open_tmp / "outside"
    st.model_dir(str(outside))
    root, entries = make_store(open_tmp, crawler=("org/a", "linked", None), bus=("org/b", str(outside), None))
    os.symlink(str(outside), os.path.join(root, "linked"))
    problems, _ok, _d = inspect(root, entries)
    found = messages(problems)
    assert "agent 'crawler' (model 'org/a'): %s/linked leads outside the store root %s (to %s)" % (
        root, root, outside) in found
    assert "agent 'bus' (model 'org/b'): %s is outside the store root %s" % (outside, root) in found
    assert set(p["details"]["cause"] for p in problems) == {"escapes"}


def test_special_files_never_block_and_are_named(open_tmp):
    root, entries = make_store(open_tmp, crawler=("org/a", "org/a", st.model_dir))
    config = os.path.join(root, "org/a", "config.json")
    os.remove(config)
    os.mkfifo(config)
    problems, _ok, _d = inspect(root, entries)
    assert messages(problems) == ["agent 'crawler' (model 'org/a'): %s is a fifo, not a regular file" % config]


def test_store_root_and_base_dir_problems(open_tmp):
    entries = [{"agent": "a", "model": "org/a", "path": "a", "files": []}]
    for root, expected in ((str(open_tmp / "nope"), "store root %s: No such file or directory" % (open_tmp / "nope")),
                           ("relative/root", "MODEL_STORE_ROOT must be an absolute path")):
        problems, _ok, _d = inspect(root, entries)
        assert expected in problems[0]["message"] and problems[0]["status"] == _checks.FAIL
    root, entries = make_store(open_tmp, a=("org/a", "a", st.model_dir))
    problems, _ok, _d = inspect(root, entries, base_dir="/elsewhere")
    assert "BASE_MODEL_DIR /elsewhere is not under MODEL_STORE_ROOT" in problems[0]["message"]
    os.makedirs(os.path.join(root, "base"))
    os.rename(os.path.join(root, "a"), os.path.join(root, "base", "a"))
    assert inspect(root, entries, base_dir="base")[0] == []


LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize 4976698672\n"


@pytest.mark.parametrize("fmt, name", [
    ("safetensors", "model.safetensors"), ("bin", "pytorch_model.bin"), ("safetensors", "tokenizer.json"),
    ("safetensors", "config.json"),
])
def test_a_git_lfs_pointer_is_not_the_file(open_tmp, fmt, name):
    root, entries = make_store(open_tmp, a=("org/a", "a", lambda p: st.model_dir(p, fmt=fmt)))
    entries[0]["files"] = ["tokenizer.json"]
    with open(os.path.join(root, "a", name), "wb") as handle:
        handle.write(LFS)
    problems, ok_text, _d = inspect(root, entries)
    assert ok_text is None and messages(problems) == [
        "agent 'a' (model 'org/a'): %s/a/%s is a git-lfs pointer, not the file: run git lfs pull" % (root, name)]
    assert problems[0]["fix"] == _serving.FIXES["model_store"]["lfs_pointer"]


def test_a_local_dir_download_in_progress_is_not_ready(open_tmp):
    """huggingface-cli download --local-dir keeps its unfinished files under <model>/.cache/huggingface/download."""
    root, entries = make_store(open_tmp, a=("org/a", "a", lambda p: st.model_dir(p, shards=2)))
    downloads = os.path.join(root, "a", ".cache", "huggingface", "download")
    st.write(os.path.join(downloads, "tokenizer.json.metadata"), b"abc\nsha\n1712656091.1\n")
    assert inspect(root, entries)[0] == []  # what a finished download leaves
    st.write(os.path.join(downloads, "sub", "model-00002-of-00002.safetensors.incomplete"), b"x" * 100)
    problems, ok_text, _d = inspect(root, entries)
    assert ok_text is None and messages(problems) == [
        "agent 'a' (model 'org/a'): %s holds 1 unfinished download(s) (*.incomplete)" % downloads]


def test_every_file_of_the_model_folder_must_be_readable(open_tmp):
    root, entries = make_store(open_tmp, a=("org/a", "a", st.model_dir))
    st.readable_by_all(root)
    os.chmod(os.path.join(root, "a", "tokenizer.json"), 0o600)  # not one the map lists
    problems, ok_text, _d = inspect(root, entries, SVC)
    assert ok_text is None and [(p["details"]["cause"], p["message"]) for p in problems] == [
        ("unreadable", "agent 'a' (model 'org/a'): %s/a/tokenizer.json is not readable by user 'svc' (uid 4242): "
                       "mode 0600 root:root" % root)]


def test_extra_files_of_the_map_are_required(open_tmp):
    root, entries = make_store(open_tmp, a=("org/a", "a", st.model_dir))
    entries[0]["files"] = ["tokenizer.json", "generation_config.json"]
    problems, _ok, _d = inspect(root, entries)
    assert messages(problems) == ["agent 'a' (model 'org/a'): %s/a/generation_config.json is missing" % root]


@pytest.mark.parametrize("data, expected", [
    (b"\x01\x00", "too short for a safetensors header"),
    (struct.pack("<Q", 1 << 40) + b"{}", "is not a safetensors file"),
    (struct.pack("<Q", 64) + b"{}", "its header alone needs 72 bytes"),
    (struct.pack("<Q", 4) + b"[1,]", "corrupt safetensors header"),
    (struct.pack("<Q", 30) + b'{"w": {"data_offsets": [0]}}  ', "tensor w without valid data_offsets"),
])
def test_safetensors_headers(open_tmp, data, expected):
    path = open_tmp / "x.safetensors"
    path.write_bytes(data)
    assert expected in _serving.safetensors_problem(str(path), len(data))


def safetensors_with(header, data_bytes):
    """A safetensors file whose header is ``header`` as given (padded like the reference writer)."""
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"\0" * data_bytes


F32_16 = {"dtype": "F32", "shape": [16]}


@pytest.mark.parametrize("data, expected", [
    # header well-formed, the file exactly as long as it says, but the loader refuses it (Metadata::validate)
    (safetensors_with({"a": dict(F32_16, data_offsets=[0, 64]), "b": dict(F32_16, data_offsets=[128, 192])}, 192),
     "tensor b has data_offsets [128, 192] where [64, ...] was expected"),
    (safetensors_with({"a": dict(F32_16, data_offsets=[0, 64]), "b": dict(F32_16, data_offsets=[32, 96])}, 96),
     "tensor b has data_offsets [32, 96] where [64, ...] was expected"),
    (safetensors_with({"a": dict(F32_16, data_offsets=[0, 64]), "b": dict(F32_16, data_offsets=[64, 8])}, 64),
     "tensor b has data_offsets [64, 8]: it ends before it begins"),
    (safetensors_with({"a": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 64]}}, 64),
     "tensor a (F32 [1000]) needs 4000 bytes, its data_offsets give 64"),
    (safetensors_with({"a": {"dtype": "BF16", "shape": [4, 4], "data_offsets": [0, 64]}}, 64),
     "tensor a (BF16 [4, 4]) needs 32 bytes"),
    (safetensors_with({"a": {"dtype": "F32", "data_offsets": [0, 64]}}, 64), "tensor a without a valid shape"),
    (safetensors_with({"a": {"shape": [16], "data_offsets": [0, 64]}}, 64), "tensor a without a dtype"),
    (safetensors_with({"__metadata__": {"format": 1}, "a": dict(F32_16, data_offsets=[0, 64])}, 64),
     "__metadata__ is not a map of texts"),
    (struct.pack("<Q", 8) + b" {}     ", "it does not start with '{'"),
])
def test_safetensors_headers_the_loader_refuses(open_tmp, data, expected):
    path = open_tmp / "x.safetensors"
    path.write_bytes(data)
    why = _serving.safetensors_problem(str(path), len(data))
    assert why is not None and "corrupt safetensors header" in why and expected in why, why


@pytest.mark.parametrize("header, data_bytes", [
    ({"a": dict(F32_16, data_offsets=[64, 128]), "b": dict(F32_16, data_offsets=[0, 64])}, 128),  # any key order
    ({"__metadata__": None, "s": {"dtype": "I64", "shape": [], "data_offsets": [0, 8]}}, 8),  # a scalar
    ({"e": {"dtype": "F16", "shape": [0, 3], "data_offsets": [0, 0]}, "f": dict(F32_16, data_offsets=[0, 64])}, 64),
    ({"n": {"dtype": "F4", "shape": [2, 8], "data_offsets": [0, 8]}}, 8),  # 4-bit floats: 16 of them in 8 bytes
    ({"x": {"dtype": "Q9_NEW", "shape": [3], "data_offsets": [0, 5]}}, 5),  # a dtype newer than the gate
    ({}, 0),
])
def test_safetensors_headers_the_loader_accepts_pass(open_tmp, header, data_bytes):
    data = safetensors_with(header, data_bytes)
    path = open_tmp / "x.safetensors"
    path.write_bytes(data)
    assert _serving.safetensors_problem(str(path), len(data)) is None


def test_a_valid_safetensors_file_passes(open_tmp):
    path = open_tmp / "x.safetensors"
    path.write_bytes(st.safetensors_bytes([("a", 16), ("b", 32)], {"format": "pt"}))
    assert _serving.safetensors_problem(str(path), path.stat().st_size) is None


# ---------------------------------------------------------------- HTTP against a real server


def client(url, seconds=5.0, **kw):
    import time
    return _serving.Client(url, time.monotonic() + seconds, **kw)


def test_client_reads_json_and_names_http_errors(orchestrator):
    sim = orchestrator(models=["m"])
    reply = client(sim.url).get("/gpu/info")
    assert reply.ok and reply.status == 200 and reply.data["mps_enabled"] is True
    missing = client(sim.url).get("/nope")
    assert missing.status == 404 and missing.error == 'GET /nope answered 404 Not Found: {"detail": "Not Found"}'


def redirect(status, location):
    return {"status": status, "body": "", "content_type": None, "headers": {"Location": location}}


@pytest.mark.parametrize("status, location, shown", [
    (302, "https://user:pw@sso.example/login?next=%2F", "a redirect to sso.example (not followed)"),
    (301, "http://10.9.9.9:8014/health", "a redirect to 10.9.9.9:8014 (not followed)"),
    (307, "/login", "a redirect to a path on the same host (not followed)"),
    (304, None, "a redirect without a Location (not followed)"),
])
def test_only_2xx_is_an_answer_and_a_redirect_names_where_it_leads(orchestrator, status, location, shown):
    sim = orchestrator(models=["m"], canned={"/health": redirect(status, location) if location else
                                             {"status": status, "content_type": None}})
    reply = client(sim.url).get("/health", want_json=False)
    assert not reply.ok and reply.status == status
    assert reply.error.startswith("GET /health answered %d " % status) and reply.error.endswith(shown), reply.error
    assert "pw" not in reply.error and "next" not in reply.error
    assert [r[1] for r in sim.requests] == ["/health"]  # not followed
    assert _serving.health_state(reply)[0] == "fail"  # an empty 302 is not a healthy orchestrator
    problems, ok_text, _d = _serving.evaluate_bus(_serving.probe_bus(client(sim.url)))
    assert ok_text is None and problems[0]["status"] == "fail" and problems[0]["message"].endswith(shown)


def test_client_refuses_wrong_content_types_and_malformed_json(orchestrator):
    sim = orchestrator(models=["m"], status_content_type="text/html; charset=utf-8")
    reply = client(sim.url).get("/models/status")
    assert reply.error.startswith("GET /models/status answered with content type 'text/html; charset=utf-8', not JSON")
    sim.behaviour.status_content_type = "application/json"
    sim.behaviour.status_body = '{"all_ready": tru'
    reply = client(sim.url).get("/models/status")
    assert reply.error.startswith("GET /models/status answered malformed JSON: Expecting value")
    sim.behaviour.status_body = b'{"all_ready": "\xff"}'
    assert "not valid UTF-8" in client(sim.url).get("/models/status").error


def test_client_bounds_the_body(orchestrator):
    sim = orchestrator(models=["m%d" % i for i in range(200)])
    reply = client(sim.url, max_bytes=500).get("/models/status")
    assert reply.error.endswith("the answer is larger than 500 bytes") and reply.data is None


def test_refused_connection():
    port = simserve.free_port()
    reply = client("http://127.0.0.1:%d" % port).get("/health")
    assert reply.refused and reply.error == "connection refused: nothing listens on 127.0.0.1:%d" % port


def test_a_server_that_accepts_and_never_answers_cannot_hold_the_call():
    with simserve.HangingServer() as hang:
        reply = client(hang.url, per_call=0.3).get("/health")
    assert reply.timed_out and reply.status is None
    assert reply.error == ("GET /health: no answer within 0.3s (the server accepted the connection but did "
                           "not answer)")


def test_an_empty_path_is_shown_as_the_target():
    assert client("http://127.0.0.1:1", seconds=-1).get("").error == "GET /: not tried, the gate's time is up"
    assert client("http://127.0.0.1:1/bus", seconds=-1).get("").error == "GET /bus: not tried, the gate's time is up"


def test_no_call_once_the_time_is_up():
    reply = client("http://127.0.0.1:1", seconds=-1).get("/health")
    assert reply.timed_out and reply.error == "GET /health: not tried, the gate's time is up"


class OkHealth(http.server.BaseHTTPRequestHandler):
    """A real server's handler that answers every GET with a healthy /health."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def https_server(tmp_path):
    """A real HTTPS server on 127.0.0.1 answering /health with a self-signed certificate: (url, cert path)."""
    import datetime
    import ipaddress
    import ssl
    from http.server import ThreadingHTTPServer

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), OkHealth)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(str(cert_path), str(key_path))
    httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    worker = threading.Thread(target=httpd.serve_forever, daemon=True)
    worker.start()
    yield "https://127.0.0.1:%d" % httpd.server_address[1], str(cert_path)
    httpd.shutdown()
    httpd.server_close()


def test_https_to_a_server_the_host_does_not_trust_is_refused_naming_why(https_server, monkeypatch):
    monkeypatch.setattr(_serving, "_TLS", {})
    url, _cert = https_server
    reply = client(url).get("/health")
    assert reply.status is None and reply.data is None
    assert reply.error.startswith("cannot talk to %s: " % url[len("https://"):]) and "CERTIFICATE_VERIFY_FAILED" in (
        reply.error), reply.error


def test_https_calls_of_a_run_share_one_tls_context(https_server, monkeypatch):
    import ssl
    url, cert = https_server
    monkeypatch.setenv("SSL_CERT_FILE", cert)  # the host trusts this server (ssl's default verify paths)
    monkeypatch.setattr(_serving, "_TLS", {})
    made = []
    real = ssl.create_default_context
    monkeypatch.setattr(ssl, "create_default_context", lambda *a, **kw: made.append(1) or real(*a, **kw))
    for _call in range(2):
        reply = client(url).get("/health", want_json=False)
        assert reply.ok and reply.status == 200 and reply.data == {"status": "ok"}, reply.error
    assert made == [1]  # the CA bundle is read once, however often the gate polls


@pytest.mark.parametrize("url, expected", [
    ("", "url is empty"), ("ftp://x", "is not an http:// or https:// URL"), ("http://", "has no valid host"),
    ("http://u:p@h:1", "user names or passwords"), ("http://h:99999", "port 99999 is out of range"),
    ("http://h:8014/x?y", "a query string or fragment"), ("http://h:8014/#top", "a query string or fragment"),
    # brackets hold an IPv6 address only: these were taken, then every call failed as a name that does not resolve
    ("http://[:::::]:8014", "[:::::] is not an IPv6 address"), ("http://[1.2.3.4]:8014", "[1.2.3.4] is not an IPv6"),
    ("http://[12345::1]:8014", "[12345::1] is not an IPv6 address"),
    # http.client refuses them in every request (InvalidURL, or a request line that is not ASCII): refused here, once
    ("http:// h:8014", "white space, control characters and non-ASCII characters are not allowed in the URL"),
    ("http://h:8014/a b", "'http://h:8014/a b': white space, control characters and non-ASCII"),
    ("http://h:8014/a\x07b", "'http://h:8014/a\\\\x07b': white space, control characters"),
    ("http://h:8014/\u00e9", "white space, control characters and non-ASCII characters"),
])
def test_bad_urls(url, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        _serving.parse_url(url)


@pytest.mark.parametrize("url, shown", [
    ("http://admin:S3cretPass@127.0.0.1:8014", "'http://***@127.0.0.1:8014': user names or passwords"),
    ("http://127.0.0.1:8014/?token=S3cretTok&x=1", "'http://127.0.0.1:8014/?token=***&x=***': a query string"),
    ("ftp://u:S3cretPass@h/?S3cretTok", "'ftp://***@h/?***' is not an http:// or https:// URL"),
    # white space in the credentials or before the query: redacted all the same (the whole text is the URL)
    ("http://admin:S3cret Pass@127.0.0.1:8014", "'http://***@127.0.0.1:8014': user names or passwords"),
    ("http://127.0.0.1:8014/a b?token=S3cretTok", "'http://127.0.0.1:8014/a b?token=***': a query string"),
    ("http://a\tb:S3cretPass@h/a b", "'http://***@h/a b': user names or passwords"),
])
def test_bad_urls_never_echo_their_credentials(url, shown):
    with pytest.raises(ValueError) as exc:
        _serving.parse_url(url, "GPU_ORCHESTRATOR_URL")
    assert str(exc.value).startswith("GPU_ORCHESTRATOR_URL %s" % shown), str(exc.value)
    assert "S3cret" not in str(exc.value)


def test_credentials_in_any_message_are_redacted():
    text = "401 for url: https://hf:hf_S3cret@huggingface.co/org/m/resolve/main/config.json?token=S3cret&x=1 (retry)"
    assert _serving.one_line(text) == ("401 for url: https://***@huggingface.co/org/m/resolve/main/config.json"
                                       "?token=***&x=*** (retry)")
    doc = {"all_ready": False, "in_progress": False, "errors": [{"model": "org/a", "error": text}],
           "summary": {"source": "s3://key:S3cret@bucket/models", "total": 2}}
    assert "S3cret" not in json.dumps(_serving.preload_errors(doc, ENTRIES))
    assert _serving.describe_progress(doc, ENTRIES) == "not ready: source=s3://***@bucket/models, total=2"


def test_urls():
    assert _serving.parse_url("http://127.0.0.1:8014") == ("http", "127.0.0.1", 8014, "")
    assert _serving.parse_url(" http://h:8014/%20x\n") == ("http", "h", 8014, "/%20x")  # around it: stripped
    assert _serving.parse_url("HTTPS://gw.example/api/") == ("https", "gw.example", 443, "/api")
    assert _serving.parse_url("http://[::1]:9") == ("http", "::1", 9, "")
    assert _serving.parse_url("http://[::ffff:127.0.0.1]:8014") == ("http", "::ffff:127.0.0.1", 8014, "")
    assert _serving.parse_url("https://[2001:db8::7]/api") == ("https", "2001:db8::7", 443, "/api")


def test_an_orchestrator_on_an_ipv6_literal_answers():
    """A real server on ::1 (where the host has IPv6): the client connects to the bracketed literal."""
    class V6Server(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6

    reason = None
    try:
        server = V6Server(("::1", 0), OkHealth)
    except OSError as exc:  # no IPv6 here: what the gate does with the literal is still checked below
        server = None
        reason = exc
    if server is None:
        reply = client("http://[::1]:%d" % simserve.free_port()).get("/health", want_json=False)
        assert reply.error and "[::1]" in reply.error, (reason, reply.error)
        return
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        url = "http://[::1]:%d" % server.server_address[1]
        observed = _serving.wait_for_health(client(url))
        assert observed["ok"] and observed["reply"]["url"] == url + "/health", observed
    finally:
        server.shutdown()
        server.server_close()


def test_ipv6_hosts_are_shown_in_brackets():
    port = simserve.free_port()
    reply = client("http://[::1]:%d" % port).get("/health")
    assert reply.url == "http://[::1]:%d/health" % port
    assert "[::1]:%d" % port in reply.error, reply.error  # refused, or no IPv6 on this host


# ---------------------------------------------------------------- orchestrator health


def test_health_ok_and_a_starting_orchestrator_is_waited_for(orchestrator):
    sim = orchestrator(models=["m"])
    observed = _serving.wait_for_health(client(sim.url))
    problems, ok_text, details = _serving.evaluate_orchestrator(observed)
    assert problems == [] and ok_text.startswith("%s answers, /health ok (1 attempt(s), " % sim.url)
    sim.behaviour.health = "starting"
    clock = FakeClock()
    observed = _serving.wait_for_health(_serving.Client(sim.url, clock() + 3, clock=clock), sleep=clock.sleep)
    problems, ok_text, _d = _serving.evaluate_orchestrator(observed)
    assert observed["attempts"] == len(clock.slept) + 1 > 2
    assert problems[0]["message"].endswith("GET %s/health answered 200, but its body says it is not ready: status "
                                           "'starting'" % sim.url)
    assert problems[0]["fix"] == _serving.FIXES["orchestrator"]["unhealthy"]


@pytest.mark.parametrize("body, content_type, verdict, why", [
    ("null", "application/json", "ok", "/health ok"),  # a FastAPI handler that returns None
    ("", "application/json", "ok", "/health ok"),
    ("", None, "ok", "/health ok"),
    ("OK", "text/plain; charset=utf-8", "ok", "/health ok"),
    ("<html>hi</html>", "text/html", "fail", "GET /health answered with content type 'text/html': not the "
                                             "orchestrator's API"),
    ('{"status": "\xe9t\xe9"}', "application/json; charset=latin-1", "fail",
     "GET /health answered malformed JSON, not valid UTF-8 (byte 12): not the orchestrator's API"),
])
def test_health_answers(orchestrator, body, content_type, verdict, why):
    sim = orchestrator(models=["m"], canned={"/health": {"status": 200, "body": body, "content_type": content_type}})
    assert _serving.health_state(client(sim.url).get("/health", want_json=False)) == (verdict, why)


JSON, TEXT = "application/json", "text/plain; charset=utf-8"
with open(os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "serving",
                       "http_error_body_openai_compatible.json"), encoding="utf-8") as _handle:
    OPENAI_ERROR_BODY = _handle.read()  # a real error answer of an OpenAI-compatible server (SOURCES.md)
with open(os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "serving",
                       "health_tyk_json_as_text_plain.json"), encoding="utf-8") as _handle:
    TYK_HEALTH_BODY = _handle.read()  # a real health answer: JSON with a text/plain content type (SOURCES.md)


@pytest.mark.parametrize("body, content_type", [
    ('{"status":"UP"}', JSON),                                       # Spring Boot actuator
    ('{"status":"UP","components":{"db":{"status":"DOWN"}}}', JSON),  # the top level speaks for the whole
    ('{"status":"UNKNOWN"}', JSON),                                  # Spring: no indicator said (200 there too)
    ('{"status": "ok"}', JSON),                                      # llama.cpp server, loaded
    ('{"status": "SERVING"}', JSON),                                 # gRPC health, over HTTP
    ('{"status": "healthy", "ready": true}', JSON),
    ('{"status": "pass"}', "application/health+json"),
    ('{"status": "green"}', JSON),                                   # a word the table does not know: 2xx rules
    ('"ok"', JSON),
    ("Ollama is running", TEXT),                                     # Ollama's GET /
    ("healthy", TEXT),
    ("ready", None),
    ("ok: 12 workers; last error 3 days ago, retried; queue empty; uptime 41 days; no pending jobs on any of them",
     TEXT),                                                          # a report, not a state
    ('{"status": "ok", "error": null, "errors": []}', JSON),        # error keys holding nothing
    ('{"status": 0, "msg": "success"}', JSON),                       # a status code 0: success in many APIs
    ('{"status": "UP", "ok": true, "success": "true"}', JSON),
    (TYK_HEALTH_BODY, TEXT),                                         # JSON as text/plain (Go's content sniffing)
])
def test_health_bodies_that_say_ready_or_nothing_clear_are_ready(orchestrator, body, content_type):
    sim = orchestrator(models=["m"], canned={"/health": {"status": 200, "body": body, "content_type": content_type}})
    assert _serving.health_state(client(sim.url).get("/health", want_json=False)) == ("ok", "/health ok")


@pytest.mark.parametrize("body, content_type, said", [
    ('{"status":"DOWN"}', JSON, "status 'DOWN'"),                     # Spring Boot actuator
    ('{"status":"OUT_OF_SERVICE"}', JSON, "status 'OUT_OF_SERVICE'"),
    ('{"Status": "Unhealthy", "totalDuration": "00:00:00.01"}', JSON, "status 'Unhealthy'"),  # ASP.NET Core
    ('{"status": "unhealthy"}', JSON, "status 'unhealthy'"),
    ('{"status": "starting"}', JSON, "status 'starting'"),
    ('{"status": "loading"}', JSON, "status 'loading'"),
    ('{"status": "loading model"}', JSON, "status 'loading model'"),  # llama.cpp server while it loads
    ('{"status": "NOT_SERVING"}', JSON, "status 'NOT_SERVING'"),      # gRPC health
    ('{"state": "not ready"}', JSON, "state 'not ready'"),
    ('{"status": false}', JSON, "status false"),
    ('{"healthy": false}', JSON, "healthy false"),
    ('{"ready": false}', JSON, "ready false"),
    ('{"status": "ok", "ready": false}', JSON, "ready false"),        # any "not ready" wins
    ('"DOWN"', JSON, "'DOWN'"),
    ("false", JSON, "false"),
    ("DOWN", TEXT, "'DOWN'"),
    ("unhealthy\n", TEXT, "'unhealthy'"),
    ("Service Unavailable", None, "'Service Unavailable'"),
    ("DOWN\x1b[2J\x07", TEXT, "'DOWN\\x1b[2J\\x07'"),                # sanitised: no escape reaches a terminal
    # a 200 whose body reports an error, or a flag sent as text or a number
    ('{"error": "database unreachable"}', JSON, "error 'database unreachable'"),
    ('{"error": {"message": "model not loaded", "code": 503}}', JSON,
     "error '{\"code\": 503, \"message\": \"model not loaded\"}'"),
    ('{"status": "ok", "errors": ["cuda init failed"]}', JSON, "errors '[\"cuda init failed\"]'"),
    (OPENAI_ERROR_BODY, JSON, "object 'error': 'Not the same number of function calls and responses'"),
    ('{"status": 503, "message": "Service Unavailable"}', JSON, "status 503"),
    ('{"status": "false"}', JSON, "status 'false'"),
    ('{"healthy": "false"}', JSON, "healthy 'false'"),
    ('{"ready": "no"}', JSON, "ready 'no'"),
    ('{"ready": 0}', JSON, "ready 0"),
    ('{"success": false, "data": null}', JSON, "success false"),
    # JSON sent as text/plain, as Go's net/http labels it: read as JSON (was: its words only, and not at all past
    # HEALTH_TEXT_MAX characters)
    (TYK_HEALTH_BODY.replace('{"status":"pass"', '{"status":"fail"', 1), TEXT, "status 'fail'"),
    ('{"ready": false}', TEXT, "ready false"),
    ('{"ok": false, "checks": []}', None, "ok false"),
    ("down: https://svc:S3cretPw@db:5432/x?token=T0kenVal", TEXT, "'down: https://***@db:5432/x?token=***'"),
])
def test_health_bodies_that_say_not_ready_are_waited_for_and_named(orchestrator, body, content_type, said):
    sim = orchestrator(models=["m"], canned={"/health": {"status": 200, "body": body, "content_type": content_type}})
    why = "GET %s/health answered 200, but its body says it is not ready: %s" % (sim.url, said)
    assert _serving.health_state(client(sim.url).get("/health", want_json=False)) == ("retry", why)
    clock = FakeClock()
    observed = _serving.wait_for_health(_serving.Client(sim.url, clock() + 2, clock=clock), sleep=clock.sleep)
    problems, ok_text, _d = _serving.evaluate_orchestrator(observed)
    assert ok_text is None and observed["attempts"] > 1
    assert problems[0]["message"] == "orchestrator at %s is not ready after %d attempt(s) in %ss: %s" % (
        sim.url, observed["attempts"], _serving.seconds_text(observed["elapsed_s"]), why)
    assert problems[0]["details"]["cause"] == "unhealthy"


def test_json_nested_deeper_than_the_limit_is_refused_without_recursion():
    """The parser takes thousands of levels; the host result quoting them is walked recursively."""
    def nested(levels):
        return '{"a": ' * (levels - 1) + "[]" + "}" * (levels - 1)

    limit = _serving.JSON_MAX_DEPTH
    assert _serving.decode_json(nested(limit))[1] is None
    assert _serving.decode_json(nested(limit + 1)) == (None, "nested too deeply (more than %d levels)" % limit)
    assert _serving.decode_json("[" * 50000 + "]" * 50000)[1].startswith("nested too deeply")


def test_the_docs_list_the_health_words_and_keys_of_the_rule():
    """docs/SERVING_GATE.md ("What a health answer says") names the rule's words and keys, as declared."""
    docs = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "docs", "SERVING_GATE.md")
    with open(docs, encoding="utf-8") as handle:
        text = handle.read()
    section = text[text.index("### What a health answer says"):text.index("Anything else is ready")]

    def quoted(start, end):
        part = section[section.index(start):section.index(end, section.index(start))]
        return tuple(re.findall(r"`([^`]+)`", part))

    assert quoted("The words, compared", ".\n")[1:] == _serving.NOT_READY_WORDS  # [0]: the `_ - .` ignored
    assert quoted("- a state key", " holds ") == _serving.HEALTH_STATE_KEYS
    assert quoted("- a flag key", " is `false`") == _serving.HEALTH_FLAG_KEYS
    assert "more than %d\ncharacters" % _serving.HEALTH_TEXT_MAX in section


def test_orchestrator_down_is_retried_until_the_deadline():
    clock = FakeClock()
    url = "http://127.0.0.1:%d" % simserve.free_port()
    observed = _serving.wait_for_health(_serving.Client(url, clock() + 4, clock=clock), sleep=clock.sleep)
    problems, _ok, _d = _serving.evaluate_orchestrator(observed)
    assert observed["attempts"] >= 3 and sum(clock.slept) <= 4
    assert problems[0]["message"].startswith("orchestrator at %s is not ready after %d attempt(s)"
                                             % (url, observed["attempts"]))
    assert problems[0]["message"].endswith("connection refused: nothing listens on %s" % url[7:])
    assert problems[0]["details"]["cause"] == "down"


def test_something_else_on_the_port_fails_at_once(orchestrator):
    sim = orchestrator(models=["m"], health_content_type="text/html")
    observed = _serving.wait_for_health(client(sim.url))
    problems, _ok, _d = _serving.evaluate_orchestrator(observed)
    assert observed["attempts"] == 1
    assert "content type 'text/html': not the orchestrator's API" in problems[0]["message"]
    assert problems[0]["fix"] == _serving.FIXES["orchestrator"]["protocol"]


# ---------------------------------------------------------------- preload


ENTRIES = [{"agent": "crawler", "model": "org/a", "path": "a", "files": []},
           {"agent": "mcp", "model": "org/b", "path": "b", "files": []},
           {"agent": "bus", "model": "org/b", "path": "b", "files": []}]


def preload(sim, seconds=10.0, refresh=False, interval=0.05, clock=None):
    """run_preload and evaluate_preload; with ``clock`` (a FakeClock) the budget is spent only by the polls' sleeps,
    so a loaded test machine cannot change the outcome."""
    progress = []
    timed = {} if clock is None else {"sleep": clock.sleep}
    http = client(sim.url, seconds) if clock is None else _serving.Client(sim.url, clock() + seconds, clock=clock)
    observed = _serving.run_preload(http, ENTRIES, refresh=refresh, interval=interval, max_interval=0.1,
                                    on_progress=progress.append, **timed)
    return _serving.evaluate_preload(observed, ENTRIES, timeout=seconds), observed, progress


def test_models_ready_after_a_delay(orchestrator):
    sim = orchestrator(models=["org/a", "org/b"], ready_after=0.3)
    (problems, ok_text, details), observed, progress = preload(sim)
    assert problems == [] and ok_text.startswith("all 2 model(s) ready, preload triggered (")
    assert ("POST", "/models/preload", {"refresh": False}) in sim.requests
    assert progress[0] == "in progress: 0 of 2 model(s) ready (pending: org/a; pending: org/b)"
    assert progress[-1] == "all ready: 2 of 2 model(s) ready"
    assert "in progress: 0 of 2 model(s) ready (loading: org/a; loading: org/b)" in progress


def test_a_ready_orchestrator_is_not_asked_to_preload_unless_refresh(orchestrator):
    sim = orchestrator(models=["org/a", "org/b"], already_ready=True)
    (problems, ok_text, _d), observed, _p = preload(sim)
    assert problems == [] and ok_text.startswith("all 2 model(s) ready (1 poll(s), ")
    assert [r[:2] for r in sim.requests] == [("GET", "/models/status")]
    (problems, _ok, _d), observed, _p = preload(sim, refresh=True)
    assert ("POST", "/models/preload", {"refresh": True}) in sim.requests and observed["triggered"]


def test_preload_503_is_retried_then_accepted(orchestrator):
    sim = orchestrator(models=["org/a", "org/b"], preload_503=2)
    (problems, _ok, details), observed, _p = preload(sim)
    assert problems == []
    assert observed["trigger"]["attempts"] == 3 and observed["trigger"]["status"] == 202
    assert [r[1] for r in sim.requests].count("/models/preload") == 3


def test_preload_503_until_the_deadline():
    with simserve.SimOrchestrator(models=["org/a"], preload_503=10 ** 6) as sim:
        (problems, _ok, _d), observed, _p = preload(sim, seconds=0.6, clock=FakeClock())
    assert observed["timed_out"] and not observed["triggered"]
    assert problems[0]["message"].startswith("POST /models/preload was not accepted within 0.6s: "
                                             "POST /models/preload answered 503 Service Unavailable")


@pytest.mark.parametrize("errors_as", ["objects", "strings"])
def test_a_failing_model_is_named_with_its_agents_and_the_orchestrators_own_text(orchestrator, errors_as):
    text = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 23.69 GiB total capacity)\n\tat load()"
    sim = orchestrator(models=["org/a", "org/b"], fail={"org/b": text}, errors_as=errors_as)
    (problems, ok_text, details), observed, _p = preload(sim)
    assert ok_text is None and len(problems) == 1
    shown = text.replace("\n", "\\n").replace("\t", "\\t")
    prefix = "" if errors_as == "objects" else "org/b: "
    assert problems[0]["message"] == ("agents 'mcp', 'bus' (model 'org/b') failed to load; the orchestrator says: "
                                      "%s%s" % (prefix, shown))
    assert problems[0]["details"]["error"] == prefix + text  # word for word
    assert problems[0]["fix"] == _serving.FIXES["preload"]["failed"]


def test_all_ready_false_for_ever_times_out_with_the_progress():
    # the budget on a fake clock that only the polls' sleeps advance: the outcome, not how long a loaded host took
    clock = FakeClock()
    with simserve.SimOrchestrator(models=["org/a", "org/b"], never_ready=True) as sim:
        observed = _serving.run_preload(_serving.Client(sim.url, clock() + 0.8, clock=clock), ENTRIES, interval=0.05,
                                        max_interval=0.1, sleep=clock.sleep)
    problems, _ok, details = _serving.evaluate_preload(observed, ENTRIES, timeout=0.8)
    assert observed["timed_out"] and observed["polls"] >= 2 and sum(clock.slept) <= 0.8 + 1e-9
    assert problems[0]["message"] == (
        "models not ready within 0.8s: in progress: 0 of 2 model(s) ready (loading: org/a; loading: org/b); "
        "not ready: agent 'crawler' (model 'org/a') (loading), agent 'mcp' (model 'org/b') (loading), "
        "agent 'bus' (model 'org/b') (loading)")
    assert problems[0]["fix"] == _serving.FIXES["preload"]["timeout"]
    assert [d["agent"] for d in details["not_ready"]] == ["crawler", "mcp", "bus"]


def test_counts_only_summary_is_shown_as_is():
    with simserve.SimOrchestrator(models=["org/a"], never_ready=True, summary_shape="counts") as sim:
        (problems, _ok, _d), _obs, progress = preload(sim, seconds=0.4, clock=FakeClock())
    assert progress[-1] == "in progress: failed=0, loading=1, ready=0, total=1"
    assert problems[0]["message"] == "models not ready within 0.4s: in progress: failed=0, loading=1, ready=0, total=1"


@pytest.mark.parametrize("behaviour, expected", [
    ({"status_body": "{oops"}, "cannot read the preload state: GET /models/status answered malformed JSON"),
    ({"status_content_type": "text/plain"}, "cannot read the preload state: GET /models/status answered with "
                                            "content type 'text/plain', not JSON"),
    ({"status_body": {"ready": True}},
     "cannot read the preload state: GET /models/status has no boolean all_ready (got nothing): not the orchestrator's API"),
    ({"preload_status": 400}, "the orchestrator refused POST /models/preload: POST /models/preload answered 400 "
                              "Bad Request: {\"detail\": \"preload refused by the stand-in\"}"),
])
def test_protocol_errors_fail_at_once(orchestrator, behaviour, expected):
    sim = orchestrator(models=["org/a"], **behaviour)
    (problems, _ok, _d), observed, _p = preload(sim, seconds=30)
    assert observed["fatal"] and not observed["timed_out"]
    assert problems[0]["message"].startswith(expected), problems[0]["message"]


@pytest.mark.parametrize("body, said", [
    (None, "object 'error': 'Not the same number of function calls and responses'"),  # OPENAI_ERROR_BODY
    ('{"success": false, "reason": "no GPU free"}', "success false"),
    ('{"status": "error", "message": "model registry unreachable"}', "status 'error'"),
    ('{"error": "preload already failed: CUDA out of memory"}', "error 'preload already failed: CUDA out of memory'"),
])
def test_a_preload_answered_2xx_with_an_error_body_is_refused_at_once(orchestrator, body, said):
    """A 200 whose body reports an error started no preload: waiting for one used the whole budget and ended in
    'models not ready within ...', without the orchestrator's own words."""
    canned = {"status": 200, "body": OPENAI_ERROR_BODY if body is None else body, "content_type": JSON}
    sim = orchestrator(models=["org/a"], canned={"/models/preload": canned})
    (problems, _ok, _d), observed, _p = preload(sim, seconds=30)
    assert observed["fatal"] and not observed["timed_out"] and observed["polls"] == 1
    assert [p["message"] for p in problems] == [
        "the orchestrator refused POST /models/preload: POST /models/preload answered 200, but its body reports an "
        "error: %s" % said]


def test_a_status_answered_200_with_an_error_body_is_waited_for_then_quoted(orchestrator):
    """GET /models/status answering 200 with an error and no all_ready (a dependency down while the orchestrator
    starts) failed at once as 'not the orchestrator's API', without its words; now it is polled until the budget
    is spent, and its error is the reason given."""
    sim = orchestrator(models=["org/a"], status_body=OPENAI_ERROR_BODY)
    (problems, _ok, _d), observed, _p = preload(sim, seconds=0.5, clock=FakeClock())
    assert not observed["fatal"] and observed["polls"] > 1
    assert [p["message"] for p in problems] == [
        "models not ready within 0.5s: GET /models/status answered 200, but its body reports an error: object "
        "'error': 'Not the same number of function calls and responses'"]
    # a body with all_ready is a status: its errors are the orchestrator's errors list, read as before
    sim.behaviour.status_body = {"all_ready": True, "in_progress": False, "errors": [], "error": None}
    (problems, ok_text, _d), _o, _p = preload(sim, seconds=0.5, clock=FakeClock())
    assert problems == [] and ok_text.startswith("all 2 model(s) ready")


def test_a_preload_accepted_with_a_plain_2xx_body_is_waited_for(orchestrator):
    sim = orchestrator(models=["org/a"], canned={"/models/preload": {
        "status": 200, "body": '{"accepted": false, "reason": "a preload is running", "errors": []}',
        "content_type": JSON}})  # not an error: as a 409 would say, one is under way
    (_problems, _ok, _d), observed, _p = preload(sim, seconds=0.5, clock=FakeClock())
    assert observed["triggered"] and not observed["fatal"] and observed["trigger"]["error"] is None
    assert observed["polls"] > 1  # it waited for the models (the stand-in's canned answer starts no load)


@pytest.mark.parametrize("models, shown", [
    ({"org/a": {"loaded": True}, "org/b": {"status": "ready"}}, '{"loaded": true}'),
    ([{"id": "org/a", "loaded": True}, {"id": "org/b", "status": "ready"}], '{"id": "org/a", "loaded": true}'),
    ({"org/a": None, "org/b": "ready"}, "null"),
])
def test_a_model_listed_with_a_state_the_gate_cannot_read_is_named_as_listed(models, shown):
    """summary.models lists the model, in a shape the gate does not read: it is not ready, and was said to be
    'not listed in GET /models/status', which it is; the message now says what the status holds for it."""
    doc = {"all_ready": True, "in_progress": False, "errors": [], "summary": {"models": models}}
    problems, ok_text, _d = _serving.evaluate_preload({"status": doc}, ENTRIES, timeout=5)
    assert ok_text is None and [p["message"] for p in problems] == [
        "agent 'crawler' (model 'org/a') is 'listed with a state the gate cannot read: %s' and the orchestrator "
        "loads nothing more (in_progress: false)" % shown]


def test_errors_items_of_every_shape():
    doc = {"all_ready": False, "in_progress": False, "errors": [
        {"agent": "crawler", "message": "bad weights"},
        {"model_id": "org/b", "detail": "OOM"},
        "loading mcp failed: timeout",
        {"model": "org/zzz", "error": "unknown model"},
        "something else broke",
        {"weird": 1},
    ]}
    found = _serving.preload_errors(doc, ENTRIES)
    assert [(e["agents"], e["model"], e["error"]) for e in found] == [
        (["crawler"], "org/a", "bad weights"),
        (["mcp", "bus"], "org/b", "OOM"),
        (["mcp"], "org/b", "loading mcp failed: timeout"),
        ([], "org/zzz", "unknown model"),
        ([], None, "something else broke"),
        ([], None, '{"weird": 1}'),
    ]
    problems, _ok, _d = _serving.evaluate_preload({"status": doc, "polls": 1}, ENTRIES, timeout=5)
    assert "a model failed to load; the orchestrator says: something else broke" in messages(problems)
    assert "model 'org/zzz' failed to load; the orchestrator says: unknown model" in messages(problems)


def status_doc(models=None, all_ready=True, in_progress=False, errors=()):
    doc = {"all_ready": all_ready, "in_progress": in_progress, "errors": list(errors)}
    if models is not None:
        doc["summary"] = {"models": models}
    return doc


@pytest.mark.parametrize("doc, state", [
    (status_doc(), "ready"),  # no per-model states: all_ready speaks
    (status_doc({"org/a": "ready", "org/b": "loaded"}), "ready"),
    (status_doc({"org/a": "ready", "org/other": "ready"}), "failed"),  # org/b not listed, nothing more will load
    (status_doc({"org/a": "ready", "org/b": "failed"}), "failed"),
    (status_doc({"org/a": "ready", "org/b": "ready"}, in_progress=True), "waiting"),  # a refresh under way
    (status_doc({"org/a": "pending", "org/b": "pending"}, all_ready=False), "waiting"),
    (status_doc({"org/a": "ready", "org/b": "failed"}, all_ready=False), "failed"),
    (dict(status_doc(), summary={"total": 2, "ready": 2}), "ready"),
    (dict(status_doc(all_ready=True), summary={"ready": ["org/a"], "loading": ["org/b"]}), "failed"),
])
def test_preload_state_needs_every_model_of_the_map_listed_ready(doc, state):
    assert _serving.preload_state(doc, ENTRIES) == state


@pytest.mark.parametrize("doc, expected", [
    (status_doc({"org/a": "ready", "org/other": "ready"}),
     [("fail", "agents 'mcp', 'bus' (model 'org/b') is not listed"), ]),
    (status_doc({"org/a": "ready", "org/b": {"status": "failed"}}),
     [("fail", "agents 'mcp', 'bus' (model 'org/b') failed to load; /models/status says 'failed' (no error text)")]),
    (status_doc({"org/a": "ready", "org/b": "failed"}, errors=[{"model": "org/b", "error": "OOM"}]),
     [("fail", "agents 'mcp', 'bus' (model 'org/b') failed to load; the orchestrator says: OOM")]),
    (status_doc({"org/a": "ready", "org/b": "ready"}, in_progress=True),
     [("fail", "models not ready within 5s: in progress: 2 of 2 model(s) ready (all_ready is true, but a preload is "
               "still in progress: the models may be loading again)")]),
])
def test_all_ready_alone_is_not_ready(doc, expected):
    problems, ok_text, _d = _serving.evaluate_preload({"status": doc, "polls": 1}, ENTRIES, timeout=5)
    assert ok_text is None
    got = [(p["status"], p["message"]) for p in problems]
    assert len(got) == len(expected)
    for (status, text), (want_status, want) in zip(got, expected):
        assert status == want_status and text.startswith(want), got


def test_a_model_the_orchestrator_does_not_list_ends_the_wait_naming_it(orchestrator):
    doc = status_doc({"org/a": "ready", "org/other": "ready"})
    sim = orchestrator(models=["org/a"], canned={"/models/status": {
        "status": 200, "content_type": "application/json", "body": json.dumps(doc)}})
    (problems, ok_text, _d), observed, _p = preload(sim, seconds=30)
    assert ok_text is None and observed["triggered"] and not observed["timed_out"]  # no wait for the budget
    assert messages(problems) == [
        "agents 'mcp', 'bus' (model 'org/b') is not listed in GET /models/status (summary.models) and the "
        "orchestrator loads nothing more (in_progress: false, all_ready: true)"]
    assert problems[0]["fix"] == _serving.FIXES["preload"]["unlisted"]


@pytest.mark.parametrize("summary, expected", [
    ({"models": {"org/a": "ready", "org/b": {"state": "Loading"}}}, {"org/a": "ready", "org/b": "loading"}),
    ({"models": [{"id": "org/a", "ready": True}, {"name": "org/b", "status": "failed"}]},
     {"org/a": "ready", "org/b": "failed"}),
    ({"ready": ["org/a"], "loading": ["org/b"], "total": 2}, {"org/a": "ready", "org/b": "loading"}),
    ({"org/a": "ready", "message": "warming up", "total": 2}, {"org/a": "ready"}),
    ({"total": 2, "ready": 1}, {}),
    ("not a mapping", {}),
])
def test_model_states_from_every_summary_shape(summary, expected):
    assert _serving.model_states(summary, {"org/a", "org/b"}) == expected


# ---------------------------------------------------------------- MPS and bus


MPS_OK = {"control_daemon_running": True,
          "pipe_dir": {"path": "/tmp/nvidia-mps", "exists": True, "writable": True, "control_pipe": True},
          "log_dir": {"path": "/var/log/nvidia-mps", "exists": True, "writable": True}, "servers": [{"pid": 7}],
          "daemons_elsewhere": [], "error": None}


@pytest.mark.parametrize("host, gpu_info, expected", [
    (MPS_OK, {"data": {"mps_enabled": True}, "error": None}, []),
    (dict(MPS_OK, control_daemon_running=False), None,
     [("fail", "the MPS control daemon (nvidia-cuda-mps-control -d) is not running")]),
    (dict(MPS_OK, pipe_dir={"path": "/tmp/nvidia-mps", "exists": False, "writable": None}), None,
     [("fail", "the MPS pipe directory /tmp/nvidia-mps does not exist")]),
    (dict(MPS_OK, pipe_dir={"path": "/p", "exists": True, "writable": False, "control_pipe": True}), None,
     [("fail", "the MPS pipe directory /p is not writable by the service user")]),
    (dict(MPS_OK, control_daemon_running=False, daemons_elsewhere=[{"pid": 4242, "pipe_dir": "/var/run/mps"}],
          pipe_dir={"path": "/p", "exists": True, "writable": True, "control_pipe": False}), None,
     [("fail", "the MPS control daemon (nvidia-cuda-mps-control -d) is not running for the pipe directory /p "
               "(pid 4242 serves /var/run/mps)")]),
    (dict(MPS_OK, pipe_dir={"path": "/p", "exists": True, "writable": True, "control_pipe": False}), None,
     [("fail", "the MPS pipe directory /p holds no control socket or FIFO (control): no control daemon serves it "
               "(is the daemon's CUDA_MPS_PIPE_DIRECTORY another folder?)")]),
    (dict(MPS_OK, pipe_dir={"path": "/p", "exists": True, "writable": True, "control_pipe": None}), None,
     [("unknown", "cannot tell whether the MPS pipe directory /p holds the daemon's control entry (it cannot be "
                  "examined)")]),
    (dict(MPS_OK, control_daemon_running=None, error="nvidia-cuda-mps-control not found"), None,
     [("unknown", "cannot tell whether the MPS control daemon runs: nvidia-cuda-mps-control not found")]),
    (None, None, [("unknown", "MPS state could not be read on this host")]),
    (MPS_OK, {"data": {"mps_enabled": False}, "error": None},
     [("fail", "the orchestrator's /gpu/info says mps_enabled: false")]),
    (MPS_OK, {"data": {"gpus": []}, "error": None}, [("fail", "GET /gpu/info does not say mps_enabled")]),
    (MPS_OK, {"data": None, "error": "GET /gpu/info answered 500"},
     [("fail", "cannot read the orchestrator's GPU info: GET /gpu/info answered 500")]),
])
def test_evaluate_mps(host, gpu_info, expected):
    problems, ok_text, _d = _serving.evaluate_mps(host, gpu_info)
    assert [(p["status"], p["message"]) for p in problems] == expected
    assert (ok_text is None) == bool(expected)
    if not expected:
        assert ok_text == "MPS control daemon running, pipe directory /tmp/nvidia-mps, 1 server(s), /gpu/info mps_enabled"


PIPE_UNSEEN = {"path": "/run/mps/pipe", "exists": None, "writable": None, "control_pipe": None,
               "error": "cannot look at /run/mps/pipe: Permission denied"}


@pytest.mark.parametrize("running", [True, False, None])
def test_a_pipe_folder_that_cannot_be_looked_at_is_unknown_naming_it_and_why(running):
    # _mps.directory: exists None with the error (no search permission above it); never silent, never "missing"
    host = dict(MPS_OK, control_daemon_running=running, pipe_dir=PIPE_UNSEEN,
                error=None if running is not None else "cannot read /proc")
    problems, ok_text, _d = _serving.evaluate_mps(host, None)
    pipe = [p for p in problems if "pipe directory" in p["message"]]
    assert ok_text is None and [(p["status"], p["message"]) for p in pipe] == [
        ("unknown", "cannot tell whether the MPS pipe directory /run/mps/pipe exists: cannot look at /run/mps/pipe: "
                    "Permission denied")]


def test_mps_ok_text_never_counts_a_server_list_it_could_not_read():
    host = dict(MPS_OK, servers=[], error="cannot list MPS servers: nvidia-cuda-mps-control not found")
    problems, ok_text, _d = _serving.evaluate_mps(host, {"data": {"mps_enabled": True}, "error": None})
    assert problems == [] and "0 server(s)" not in ok_text
    assert ok_text == ("MPS control daemon running, pipe directory /tmp/nvidia-mps, server list unknown (cannot list "
                       "MPS servers: nvidia-cuda-mps-control not found), /gpu/info mps_enabled")


def test_bus(orchestrator):
    sim = orchestrator(models=[])
    problems, ok_text, _d = _serving.evaluate_bus(_serving.probe_bus(client(sim.url)))
    assert problems == [] and ok_text == "the bus at %s/health answers (200)" % sim.url
    sim.behaviour.health = "OUT_OF_SERVICE"  # the same rule as the orchestrator's /health
    problems, ok_text, _d = _serving.evaluate_bus(_serving.probe_bus(client(sim.url)))
    assert ok_text is None and [(p["status"], p["message"], p["fix"]) for p in problems] == [
        ("fail", "the bus at %s/health is not ready: GET %s/health answered 200, but its body says it is not ready: "
                 "status 'OUT_OF_SERVICE'" % (sim.url, sim.url), _serving.FIXES["bus"]["unhealthy"])]
    sim.behaviour.canned = {"/ready": {"status": 200, "body": "<html>Status: DOWN</html>", "content_type": "text/html"}}
    problems, ok_text, _d = _serving.evaluate_bus(_serving.probe_bus(client(sim.url + "/ready")))
    assert problems == [], problems  # a page, not a state: any 2xx answers
    url = "http://127.0.0.1:%d/ready" % simserve.free_port()
    problems, _ok, _d = _serving.evaluate_bus(_serving.probe_bus(client(url)))
    assert problems[0]["message"].startswith("the bus at %s does not answer: connection refused" % url)
    assert _serving.is_orchestrator_instance("Orchestrator") and not _serving.is_orchestrator_instance("crawler")


# ---------------------------------------------------------------- the gate's summary file


def test_summary_files_are_written_whole_pruned_and_never_replaced(open_tmp):
    folder = str(open_tmp / "gate")
    doc = {"kind": "serving_gate"}
    first = _serving.write_gate_summary(dict(doc), folder, "crawler/../x y", "20260101T000000.000001Z", keep=3)
    assert os.path.basename(first) == "local_gate_crawler_.._x_y_20260101T000000.000001Z.json"
    again = _serving.write_gate_summary(dict(doc), folder, "crawler/../x y", "20260101T000000.000001Z", keep=3)
    assert again.endswith("Z-1.json")
    with open(again) as handle:
        assert json.load(handle)["summary_file"] == again
    for second in range(2, 6):
        _serving.write_gate_summary(dict(doc), folder, "bus", "20260101T00000%d.000000Z" % second, keep=3)
    assert sorted(os.listdir(folder)) == ["local_gate_bus_20260101T000003.000000Z.json",
                                          "local_gate_bus_20260101T000004.000000Z.json",
                                          "local_gate_bus_20260101T000005.000000Z.json"]
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700


def test_the_gate_prunes_only_its_own_files_in_a_folder_shared_with_other_families(open_tmp):
    """A gate pointed at the preflight summary folder once pruned the preflight summaries under its keep."""
    from ansible_collections.gpuops.preflight.plugins.module_utils import _families, _summary

    folder = str(open_tmp / "shared")
    others = {"kind": "preflight", "step": 3, "hosts": {}, "hard_failures": [], "warnings": [], "notes": []}
    for second in range(3):
        _summary.write_summary(dict(others), folder, keep=500, now=1764000000 + second)
    for name in ("summary_step3_20200101T000000.000000Z.json", "summary_crawler_20200101T000000.000000Z.json",
                 "cleanup_step3_20200101T000000.000000Z.json", "serving_gate_20200101T000000.000000Z.json"):
        with open(os.path.join(folder, name), "w") as handle:
            handle.write("{}")
    before = set(os.listdir(folder))
    for second in range(3):
        _serving.write_gate_summary({"kind": "serving_gate"}, folder, "step3", "20300101T00000%d.000000Z" % second,
                                    keep=1)
    after = set(os.listdir(folder))
    assert before <= after and after - before == {"local_gate_step3_20300101T000002.000000Z.json"}
    assert all(_serving.GATE_FILE_PREFIX != _families.family(kind).file_prefix for kind in _families.kinds())


def test_small_parsers():
    assert _serving.parse_bool("Yes", "X") is True and _serving.parse_bool("0", "X") is False
    with pytest.raises(ValueError, match="REQUIRE_MPS must be 1 or 0"):
        _serving.parse_bool("maybe", "REQUIRE_MPS")
    assert _serving.one_line("a\nb\tc\x07") == "a\\nb\\tc\\x07"
    assert _serving.one_line("x" * 30, limit=10) == "xxxxxxxxxx... (20 more characters)"


def test_collectors_are_safe_to_run_concurrently(open_tmp, orchestrator):
    """The gate may run its HTTP calls while another thread walks the store (the host runner does)."""
    sim = orchestrator(models=["org/a"], already_ready=True)
    root, entries = make_store(open_tmp, a=("org/a", "org/a", st.model_dir))
    out = {}
    walker = threading.Thread(target=lambda: out.update(store=inspect(root, entries)))
    walker.start()
    out["http"] = client(sim.url).get("/models/status")
    walker.join(10)
    assert out["store"][0] == [] and out["http"].data["all_ready"] is True


def test_writable_by_the_service_user(open_tmp):
    folder = open_tmp / "pipe"
    folder.mkdir()
    os.chmod(str(folder), 0o755)
    assert _serving.writable_by(str(folder), SVC) is False
    os.chmod(str(folder), 0o1777)
    assert _serving.writable_by(str(folder), SVC) is True
    os.chmod(str(open_tmp), 0o700)
    assert _serving.writable_by(str(folder), SVC) is False  # cannot reach it
    assert _serving.writable_by(str(open_tmp / "nope"), SVC) is None


def test_errors_next_to_all_ready_are_warnings():
    doc = {"all_ready": True, "in_progress": False, "errors": [{"model": "org/a", "error": "old failure"}]}
    problems, ok_text, _d = _serving.evaluate_preload({"status": doc, "polls": 1}, ENTRIES, timeout=5)
    assert [(p["status"], p["message"]) for p in problems] == [
        ("warn", "agent 'crawler' (model 'org/a') failed to load; the orchestrator says: old failure "
                 "(yet all_ready is true)")]
    assert ok_text == "all 2 model(s) ready, with 1 error(s) reported"


def test_errors_from_before_the_preload_are_not_its_outcome(orchestrator):
    """The orchestrator still shows last time's error, not in progress, for two answers after it accepted
    the preload: the gate waits for this preload's outcome."""
    sim = orchestrator(models=["org/a", "org/b"], stale_errors={"org/b": "last week's OOM"}, stale_polls=2)
    (problems, ok_text, _d), observed, progress = preload(sim)
    assert problems == [] and observed["triggered"], progress
    assert progress[0] == "not ready: 0 of 2 model(s) ready (pending: org/a; pending: org/b)"
    assert observed["polls"] >= 4  # the one before the preload, two stale ones, then this preload's answer


def test_errors_that_stay_after_the_preload_are_its_outcome(orchestrator):
    sim = orchestrator(models=["org/a", "org/b"], stale_errors={"org/b": "CUDA out of memory"}, stale_polls=100)
    (problems, _ok, _d), observed, _p = preload(sim)
    assert observed["polls"] == 1 + _serving.STALE_POLLS and not observed["timed_out"]
    assert messages(problems) == ["agents 'mcp', 'bus' (model 'org/b') failed to load; the orchestrator says: "
                                  "CUDA out of memory"]
