"""Paths the preflight is refused (EACCES, EPERM): a problem only when the pipeline's user is refused too.

The tests run as root, who passes every permission check: the refusals are what a user gets, made with
a stat/open that raises and with the preflight's own search test answering no for the blocking folder.
"""
from __future__ import annotations

import os

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _ramdisk as rd

NOW = 1_800_000_000.0


def make_step(root, files):
    folder = root / "step3"
    folder.mkdir(parents=True)
    for name, content in files.items():
        (folder / name).write_text(content)
        os.utime(folder / name, (NOW - 60, NOW - 60))
    return folder


def refuse(mocker, blocked, errno_=13):
    """stat of anything below ``blocked`` is refused, and the preflight may not search ``blocked``."""
    real_stat = os.stat

    def fake_stat(path, *args, **kwargs):
        if str(path).startswith(blocked + "/"):
            raise OSError(errno_, os.strerror(errno_), path)
        return real_stat(path, *args, **kwargs)

    mocker.patch.object(rd.os, "stat", side_effect=fake_stat)
    mocker.patch.object(rd, "_searchable", side_effect=lambda folder: folder != blocked)


def found(problems):
    return [(p["file"], p["problem"], p.get("unknown"), p["message"]) for p in problems]


@pytest.mark.parametrize("errno_", [13, 1])   # EACCES, EPERM
def test_a_root_the_preflight_cannot_search_leaves_the_step_folder_unknown_naming_the_root(tmp_path, mocker, errno_):
    root = tmp_path / "prng"
    folder = make_step(root, {"a.json": "{}"})
    os.chmod(root, 0o750)           # its owner and group may search it: the pipeline may be one of them
    refuse(mocker, str(root), errno_)
    problems, _infos = rd.check_step_files(str(root), 3, ["a.json"], now=NOW)
    assert found(problems) == [(None, "unreadable", True,
                                "cannot tell whether step folder %s/ can be read: the folder %s above it is not "
                                "searchable by the preflight's user root (uid 0) (mode 0750, owner root (uid 0)); the "
                                "pipeline's user may be allowed (required: a.json)" % (folder, root))]


def test_a_root_no_user_may_search_is_a_real_problem(tmp_path, mocker):
    root = tmp_path / "prng"
    folder = make_step(root, {"a.json": "{}"})
    os.chmod(root, 0o600)           # no x bit: nobody but root gets through, the pipeline's user neither
    refuse(mocker, str(root))
    problems, _infos = rd.check_step_files(str(root), 3, ["a.json"], now=NOW)
    assert found(problems) == [(None, "unreadable", None,
                                "step folder %s/ cannot be reached: the folder %s above it is searchable by no user "
                                "(mode 0600, owner root (uid 0)) (required: a.json)" % (folder, root))]


def test_a_file_in_a_step_folder_the_preflight_cannot_search_is_unknown_naming_the_folder(tmp_path, mocker):
    folder = make_step(tmp_path, {"a.json": "{}", "b.bin": "x"})
    os.chmod(folder, 0o700)
    refuse(mocker, str(folder))
    problems, infos = rd.check_step_files(str(tmp_path), 3, ["a.json", "b.bin"], now=NOW)
    assert [(p["file"], p["problem"], p.get("unknown")) for p in problems] == [
        ("a.json", "unreadable", True), ("b.bin", "unreadable", True)]
    assert problems[0]["message"] == (
        "cannot tell whether a.json in %s/ can be read: the folder %s above it is not searchable by the preflight's "
        "user root (uid 0) (mode 0700, owner root (uid 0)); the pipeline's user may be allowed" % (folder, folder))
    assert infos[0]["size"] is None     # nothing made up


def refuse_open(mocker, path):
    real_open = os.open

    def fake_open(name, *args, **kwargs):
        if name == path:
            raise PermissionError(13, "Permission denied", name)
        return real_open(name, *args, **kwargs)

    mocker.patch.object(rd.os, "open", side_effect=fake_open)


def test_a_file_its_owner_may_read_but_the_preflight_not_is_unknown(tmp_path, mocker):
    folder = make_step(tmp_path, {"a.json": "{}"})
    os.chmod(folder / "a.json", 0o640)
    refuse_open(mocker, str(folder / "a.json"))
    problems, _infos = rd.check_step_files(str(tmp_path), 3, ["a.json"], now=NOW)
    gid = os.stat(folder / "a.json").st_gid
    assert found(problems) == [("a.json", "unreadable", True,
                                "cannot tell whether a.json in %s/ can be read by the pipeline's user: the preflight's "
                                "user root (uid 0) is refused (mode 0640, owner root (uid 0), group %d)" % (folder, gid))]


def test_a_file_no_user_may_read_is_a_real_problem(tmp_path, mocker):
    folder = make_step(tmp_path, {"a.json": "{}"})
    os.chmod(folder / "a.json", 0o200)
    refuse_open(mocker, str(folder / "a.json"))
    problems, _infos = rd.check_step_files(str(tmp_path), 3, ["a.json"], now=NOW)
    assert found(problems) == [("a.json", "unreadable", None, "a.json in %s/ cannot be read: Permission denied "
                                "(mode 0200: no user but root may read it)" % folder)]


def test_an_input_behind_a_folder_the_preflight_cannot_search_is_unknown(tmp_path, mocker):
    data = tmp_path / "data"
    data.mkdir(mode=0o750)
    (data / "seeds.bin").write_text("x")
    refuse(mocker, str(data))
    problems, _infos = rd.check_input_files([str(data / "seeds.bin")], now=NOW)
    assert [(p["problem"], p.get("unknown")) for p in problems] == [("unreadable", True)]
    assert "the folder %s above it is not searchable" % data in problems[0]["message"]


def test_a_refusal_with_every_folder_searchable_is_unknown(tmp_path, mocker):
    # a link another user owns in sticky /dev/shm (protected_symlinks), a security module: the pipeline may pass
    root = tmp_path / "prng"
    root.mkdir()
    real_stat = os.stat

    def fake_stat(path, *args, **kwargs):
        if path == str(root):
            raise PermissionError(13, "Permission denied", path)
        return real_stat(path, *args, **kwargs)

    mocker.patch.object(rd.os, "stat", side_effect=fake_stat)
    problems, _info = rd.check_space(str(root), min_free_bytes=1024)
    assert found(problems) == [(None, "unreadable", True,
                                "cannot tell whether ramdisk root %s can be read: the preflight's user root (uid 0) is "
                                "refused (Permission denied); the pipeline's user may not be" % root)]


def test_the_preflight_ramdisk_check_is_unknown_not_failed_when_it_could_not_look(tmp_path, mocker):
    from ansible_collections.gpuops.preflight.plugins.module_utils import _preflight
    from ansible_collections.gpuops.preflight.plugins.module_utils._host_runner import Context
    root = tmp_path / "prng"
    make_step(root, {"a.json": "{}", "gone.json": "{}"})
    os.remove(root / "step3" / "gone.json")
    os.chmod(root / "step3" / "a.json", 0o640)
    refuse_open(mocker, str(root / "step3" / "a.json"))
    ctx = Context(_preflight.FAMILY, None, {"step": "3", "ramdisk_files": ["a.json", "gone.json"]}, ["ramdisk"], {})
    ctx.values["ramdisk"] = rd.check_step_files(str(root), 3, ["a.json", "gone.json"], now=NOW)
    spec = _preflight.FAMILY.checks["ramdisk"]
    problems, _text, _details = spec.evaluate(ctx, spec)
    assert [(p["status"], p["details"]["file"]) for p in problems] == [("unknown", "a.json"), ("fail", "gone.json")]
    # the fix of what could not be told is how to tell it, not a permission change the pipeline may not need
    assert problems[0]["fix"] == _preflight.UNKNOWN_FIXES["unreadable"]
    assert problems[1]["fix"] == _preflight.FILE_FIXES.get("missing", spec.fix)
