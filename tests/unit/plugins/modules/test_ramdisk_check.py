from __future__ import annotations

import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpuops.preflight.plugins.modules import ramdisk_check


def run_module(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        ramdisk_check.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def warning_texts(result):
    """The warnings' texts: ansible-core 2.19+ returns structured warnings ({"event": {"msg": ...}})."""
    return [w.get("event", {}).get("msg", w.get("msg")) if isinstance(w, dict) else w
            for w in result.get("warnings", [])]


def stage(tmp_path, step, files):
    folder = tmp_path / ("step%d" % step)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def snapshot(root):
    """Every path under root with its content (files) or None (folders), and its mtime."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(str(root)):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            content = open(path, "rb").read() if os.path.isfile(path) else None
            found[path] = (content, st.st_mtime_ns, st.st_mode)
    return found


def test_all_good(tmp_path, capsys):
    stage(tmp_path, 2, {"config.json": '{"seed": 7}', "weights.bin": "abc"})
    inp = tmp_path / "seeds.bin"
    inp.write_text("x")
    rc, result = run_module(capsys, {"root": str(tmp_path), "step": 2, "files": ["config.json", "weights.bin"],
                                     "inputs": [str(inp)], "require_tmpfs": False, "min_free_mb": 1})
    assert rc == 0
    assert result["changed"] is False
    assert result["ok"] is True
    assert result["problems"] == []
    assert [f["name"] for f in result["files"]] == ["config.json", "weights.bin"]
    assert result["files"][0]["json_checked"] is True
    assert result["inputs"][0]["size"] == 1
    assert result["space"]["free_bytes"] > 0


def test_every_problem_fails_the_module_and_is_listed(tmp_path, capsys):
    folder = stage(tmp_path, 3, {"bad.json": "{", "empty.bin": ""})
    before = snapshot(tmp_path)
    rc, result = run_module(capsys, {"root": str(tmp_path), "step": 3, "require_tmpfs": False,
                                     "files": ["train_history.json", "bad.json", "empty.bin", "../x"],
                                     "inputs": ["relative.bin"]})
    assert rc == 1
    assert result["failed"] is True
    assert result["changed"] is False
    assert result["ok"] is False
    assert [p["problem"] for p in result["problems"]] == [
        "missing", "invalid_json", "empty", "escapes_root", "not_absolute"]
    assert result["msg"].startswith("5 problems: train_history.json is missing from %s/; " % folder)
    for item in result["problems"]:
        assert item["message"] in result["msg"]
    assert len(result["files"]) == 4
    assert snapshot(tmp_path) == before  # report-only: nothing written, nothing touched


def test_one_problem_message(tmp_path, capsys):
    rc, result = run_module(capsys, {"root": str(tmp_path), "step": 0, "files": ["a.json"], "require_tmpfs": False})
    assert rc == 1
    assert result["msg"] == "1 problem: step folder %s/step0/ is missing (required: a.json)" % tmp_path
    assert result["problems"][0]["files"] == ["a.json"]


def test_missing_root_and_not_tmpfs(tmp_path, capsys):
    rc, result = run_module(capsys, {"root": str(tmp_path / "nope"), "step": 1, "files": []})
    assert rc == 1
    assert [p["problem"] for p in result["problems"]] == ["missing_root", "missing_step_folder"]
    stage(tmp_path, 1, {})
    rc, result = run_module(capsys, {"root": str(tmp_path), "step": 1})
    fstype = result["space"]["fstype"]
    if fstype == "tmpfs":
        assert rc == 0
    else:
        assert rc == 1
        assert [p["problem"] for p in result["problems"]] == ["not_tmpfs"]
        assert "not on a tmpfs ramdisk" in result["msg"]


def test_check_mode_reports_the_same(tmp_path, capsys):
    stage(tmp_path, 4, {"a.json": "{}"})
    args = {"root": str(tmp_path), "step": 4, "files": ["a.json", "b.json"], "require_tmpfs": False}
    rc, normal = run_module(capsys, args)
    rc_check, checked = run_module(capsys, dict(args, _ansible_check_mode=True, _ansible_diff=True))
    assert rc == rc_check == 1
    assert checked["problems"] == normal["problems"]
    assert checked["changed"] is False
    assert "diff" not in checked


def test_low_space_from_min_free_percent(tmp_path, capsys):
    stage(tmp_path, 0, {})
    rc, result = run_module(capsys, {"root": str(tmp_path), "step": 0, "require_tmpfs": False,
                                     "min_free_percent": 100.0, "min_free_mb": 1})
    free = result["space"]["free_percent"]
    if free >= 100.0:
        pytest.skip("the filesystem is entirely free")
    assert rc == 1
    assert [p["problem"] for p in result["problems"]] == ["low_space"]
    assert "below the 100% minimum" in result["msg"]
    assert "MiB minimum" not in result["msg"]


@pytest.mark.parametrize("step, text", [
    ("three", "step must be a step number of 0 or more, whole or decimal (e.g. -e step=3 or -e step=2.5), got 'three'"),
    ("2.5.1", "got '2.5.1'"),
    (-1, "got '-1'"),
])
def test_bad_step_is_a_clear_error(tmp_path, capsys, step, text):
    rc, result = run_module(capsys, {"root": str(tmp_path), "step": step})
    assert rc == 1
    assert text in result["msg"]
    assert "Traceback" not in result["msg"]
    assert "problems" not in result


def test_step_given_as_a_string_of_digits_works(tmp_path, capsys):
    stage(tmp_path, 12, {"a": "x"})
    rc, result = run_module(capsys, {"root": str(tmp_path), "step": "12", "files": ["a"], "require_tmpfs": False})
    assert rc == 0, result
    assert result["files"][0]["path"] == str(tmp_path / "step12" / "a")


@pytest.mark.parametrize("args, text", [
    ({"max_age": -1}, "'max_age' must be >= 0"),
    ({"min_free_mb": -1}, "'min_free_mb' must be >= 0"),
    ({"min_free_percent": 150}, "'min_free_percent' must be <= 100"),
    ({"validate_json": "sometimes"}, "validate_json"),
    # relative to wherever the module happens to run (Ansible's temporary folder): never the ramdisk meant
    ({"root": "prng"}, "root must be an absolute path, not 'prng'"),
    ({"root": "~nosuchuser/prng"}, "root must be an absolute path, not '~nosuchuser/prng'"),
])
def test_bad_options(tmp_path, capsys, args, text):
    rc, result = run_module(capsys, dict({"root": str(tmp_path), "step": 0}, **args))
    assert rc == 1
    assert text in result["msg"]


def test_max_age_applies_to_files_and_inputs(tmp_path, capsys):
    folder = stage(tmp_path, 5, {"a.json": "{}"})
    inp = tmp_path / "in.bin"
    inp.write_text("x")
    for path in (folder / "a.json", inp):
        os.utime(str(path), (1, 1))
    rc, result = run_module(capsys, {"root": str(tmp_path), "step": 5, "files": ["a.json"], "inputs": [str(inp)],
                                     "max_age": 60, "require_tmpfs": False})
    assert rc == 1
    assert [(p["file"], p["problem"]) for p in result["problems"]] == [("a.json", "too_old"), (str(inp), "too_old")]


def refuse_statvfs(mocker):
    """statvfs of the ramdisk fails: its free space cannot be told (an unknown, not low space)."""
    from ansible_collections.gpuops.preflight.plugins.module_utils import _ramdisk
    mocker.patch.object(_ramdisk.os, "statvfs", side_effect=OSError(5, "Input/output error"))


def refuse_below(mocker, blocked):
    """stat of anything below ``blocked`` is refused (EACCES) and the module's user may not search ``blocked``, that
    its owner and group may: whether the pipeline's user may read the step's files cannot be told."""
    from ansible_collections.gpuops.preflight.plugins.module_utils import _ramdisk
    real_stat = os.stat

    def fake_stat(path, *args, **kwargs):
        if str(path).startswith(blocked + "/"):
            raise PermissionError(13, "Permission denied", path)
        return real_stat(path, *args, **kwargs)

    mocker.patch.object(_ramdisk.os, "stat", side_effect=fake_stat)
    mocker.patch.object(_ramdisk, "_searchable", side_effect=lambda folder: folder != blocked)


def test_unknowns_alone_do_not_fail_the_task_and_are_returned_and_warned(tmp_path, capsys, mocker):
    stage(tmp_path, 2, {"config.json": "{}"})
    refuse_statvfs(mocker)
    rc, result = run_module(capsys, {"root": str(tmp_path), "step": 2, "files": ["config.json"],
                                     "require_tmpfs": False, "min_free_mb": 1})
    assert rc == 0, result
    assert not result.get("failed")
    assert result["ok"] is False   # an unknown is never a pass
    assert [(p["problem"], p.get("unknown")) for p in result["problems"]] == [("low_space", True)]
    assert result["problems"][0]["message"] in warning_texts(result)
    assert result["space"]["note"] == "cannot read the free space: Input/output error"


def test_a_step_folder_the_module_cannot_search_is_unknown_not_a_failure(tmp_path, capsys, mocker):
    root = tmp_path / "prng"
    stage(root, 3, {"a.json": "{}"})
    os.chmod(str(root), 0o750)      # its owner and group may search it: the pipeline may be one of them
    refuse_below(mocker, str(root))
    rc, result = run_module(capsys, {"root": str(root), "step": 3, "files": ["a.json"], "require_tmpfs": False})
    assert rc == 0, result
    assert result["ok"] is False
    assert [(p["problem"], p.get("unknown")) for p in result["problems"]] == [("unreadable", True)]
    assert result["problems"][0]["message"] in warning_texts(result)


def test_a_real_problem_fails_the_task_and_unknowns_are_still_returned_and_warned(tmp_path, capsys, mocker):
    folder = stage(tmp_path, 2, {"config.json": "{}"})
    refuse_statvfs(mocker)
    rc, result = run_module(capsys, {"root": str(tmp_path), "step": 2, "files": ["config.json", "weights.bin"],
                                     "require_tmpfs": False, "min_free_mb": 1})
    assert rc == 1
    assert result["failed"] is True
    assert result["ok"] is False
    assert [(p["problem"], p.get("unknown")) for p in result["problems"]] == [("low_space", True), ("missing", None)]
    # the task fails for what is wrong; what could not be told is a warning, not a reason it failed
    assert result["msg"] == "1 problem: weights.bin is missing from %s/" % folder
    assert result["problems"][0]["message"] in warning_texts(result)
