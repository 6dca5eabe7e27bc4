from __future__ import annotations

import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpuops.preflight.plugins.module_utils import _caches
from ansible_collections.gpuops.preflight.plugins.modules import hip_cache_cleanup

FILES = {
    ".cache/hip_abc/k.co": 100,
    ".cache/comgr_cache/x.o": 200,
    ".cache/miopen/2.20/db.ukdb": 300,
    ".config/miopen/gfx90a.ufdb.txt": 400,
    ".cache/pip/keep": 1,
}


def run_module(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        hip_cache_cleanup.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def warning_text(warning):
    """A warning's text: ansible-core 2.19+ returns structured warnings ({"event": {"msg": ...}})."""
    if isinstance(warning, dict):
        return warning.get("event", {}).get("msg", warning.get("msg"))
    return warning


def make_home(base, name="home", files=None):
    home = os.path.join(str(base), name)
    for rel, size in (FILES if files is None else files).items():
        path = os.path.join(home, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(b"x" * size)
    return home


def listing(root):
    found = []
    for dirpath, dirnames, filenames in os.walk(str(root)):
        found.extend(os.path.join(dirpath, n) for n in dirnames + filenames)
    return sorted(found)


def test_removes_default_caches_then_is_idempotent(tmp_path, capsys):
    home = make_home(tmp_path)
    rc, result = run_module(capsys, {"home_dirs": [home]})
    assert rc == 0
    assert result["changed"] is True
    assert sorted(r["path"] for r in result["removed"]) == [os.path.join(home, p) for p in (
        ".cache/comgr_cache", ".cache/hip_abc", ".cache/miopen")]
    assert all(r["kind"] == "dir" for r in result["removed"])
    assert result["bytes_freed"] == 600
    assert result["errors"] == [] and result["skipped_paths"] == []
    assert "skipped" not in result  # reserved by Ansible: a list there would mark the task skipped
    assert "diff" not in result
    assert os.path.isfile(os.path.join(home, ".config/miopen/gfx90a.ufdb.txt"))
    assert os.path.isfile(os.path.join(home, ".cache/pip/keep"))

    rc, again = run_module(capsys, {"home_dirs": [home]})
    assert rc == 0
    assert again["changed"] is False
    assert again["removed"] == [] and again["bytes_freed"] == 0


def test_check_mode_and_diff(tmp_path, capsys):
    home = make_home(tmp_path)
    before = listing(tmp_path)
    rc, result = run_module(capsys, {"home_dirs": [home], "_ansible_check_mode": True, "_ansible_diff": True})
    assert rc == 0
    assert listing(tmp_path) == before  # nothing removed
    assert result["changed"] is True
    assert result["bytes_freed"] == 600
    planned = sorted(os.path.join(home, p) for p in (".cache/comgr_cache", ".cache/hip_abc", ".cache/miopen"))
    # one path a line: Ansible's callbacks can only show a diff of text (or of a dict)
    assert sorted(result["diff"]["before"].splitlines()) == planned
    assert result["diff"]["before"].endswith("\n")
    assert result["diff"]["after"] == ""

    rc, real = run_module(capsys, {"home_dirs": [home], "_ansible_diff": True})
    assert sorted(real["diff"]["before"].splitlines()) == planned and real["diff"]["after"] == ""
    rc, done = run_module(capsys, {"home_dirs": [home], "_ansible_diff": True, "_ansible_check_mode": True})
    assert done["changed"] is False
    assert (done["diff"]["before"], done["diff"]["after"]) == ("", "")


def test_diff_after_lists_what_could_not_be_removed(tmp_path, capsys, mocker):
    home = make_home(tmp_path, files={".cache/hip_a.bin": 1, ".cache/comgr_cache/x": 2})
    real_unlink = _caches.os.unlink

    def unlink(path, *args, **kwargs):
        if path == "hip_a.bin":
            raise PermissionError(13, "Permission denied")
        return real_unlink(path, *args, **kwargs)

    mocker.patch.object(_caches.os, "unlink", side_effect=unlink)
    rc, result = run_module(capsys, {"home_dirs": [home], "_ansible_diff": True})
    assert rc == 0 and result["changed"] is True
    assert result["diff"]["after"] == os.path.join(home, ".cache/hip_a.bin") + "\n"
    assert len(result["diff"]["before"].splitlines()) == 2


def test_include_miopen_user_db_and_extra_paths(tmp_path, capsys):
    home = make_home(tmp_path, files=dict(FILES, **{".triton/cache/t.bin": 9}))
    rc, result = run_module(capsys, {"home_dirs": [home], "include_miopen_user_db": True,
                                     "extra_paths": [".triton/cache"]})
    assert rc == 0
    assert result["bytes_freed"] == 600 + 400 + 9
    assert not os.path.exists(os.path.join(home, ".config/miopen"))
    assert not os.path.exists(os.path.join(home, ".triton/cache"))
    assert os.path.isdir(os.path.join(home, ".triton"))


def test_symlinked_cache_root_is_skipped_and_reported(tmp_path, capsys):
    elsewhere = make_home(tmp_path, "elsewhere", {"miopen/important": 5})
    home = make_home(tmp_path, files={})
    os.makedirs(home)
    os.symlink(elsewhere, os.path.join(home, ".cache"))
    rc, result = run_module(capsys, {"home_dirs": [home]})
    assert rc == 0
    assert result["changed"] is False
    assert result["skipped_paths"][0]["path"] == os.path.join(home, ".cache")
    assert "cache root is a symlink" in result["skipped_paths"][0]["reason"]
    assert os.path.isfile(os.path.join(elsewhere, "miopen/important"))


def test_users_option_resolves_homes(tmp_path, capsys, mocker):
    home = make_home(tmp_path)

    class Entry(object):
        pw_name, pw_dir = "prng", home

    getpwnam = mocker.patch.object(_caches.pwd, "getpwnam", return_value=Entry())
    rc, result = run_module(capsys, {"users": ["prng"]})
    assert rc == 0
    getpwnam.assert_called_once_with("prng")
    assert result["bytes_freed"] == 600
    assert not os.path.exists(os.path.join(home, ".cache/miopen"))


def test_unknown_user_fails_clearly(capsys):
    rc, result = run_module(capsys, {"users": ["no-such-user-gpuops"]})
    assert rc == 1
    assert result["failed"] is True
    assert result["msg"] == "users: unknown user 'no-such-user-gpuops' (not in the passwd database of this host)"
    assert result["changed"] is False


@pytest.mark.parametrize("args, text", [
    ({"home_dirs": ["relative/home"]}, "home_dirs: relative/home is not an absolute path"),
    ({"extra_paths": ["/var/cache"]}, "is an absolute path"),
    ({"extra_paths": [".triton/../../x"]}, "'..' component"),
])
def test_bad_input_fails_and_removes_nothing(tmp_path, capsys, args, text):
    home = make_home(tmp_path)
    before = listing(tmp_path)
    rc, result = run_module(capsys, dict({"home_dirs": [home]}, **args))
    assert rc == 1
    assert text in result["msg"]
    assert listing(tmp_path) == before


def test_removal_errors_warn_but_do_not_fail(tmp_path, capsys, mocker):
    home = make_home(tmp_path, files={".cache/hip_kernels.bin": 10, ".cache/comgr_cache/a": 3})
    mocker.patch.object(_caches.os, "unlink", side_effect=PermissionError(13, "Permission denied"))
    rc, result = run_module(capsys, {"home_dirs": [home]})
    assert rc == 0
    assert "failed" not in result
    assert result["changed"] is False
    paths = [e["path"] for e in result["errors"]]
    assert paths == [os.path.join(home, ".cache/comgr_cache/a"), os.path.join(home, ".cache/hip_kernels.bin")]
    # ansible-core keeps warnings per process: earlier module runs in this test process may add theirs first
    warnings = [warning_text(w) for w in result["warnings"]]
    assert warnings[-2:] == [e["message"] for e in result["errors"]]
    assert "cannot remove %s/.cache/hip_kernels.bin: Permission denied" % home in warnings


def test_default_home_is_the_running_users(tmp_path, capsys, mocker):
    home = make_home(tmp_path)

    class Entry(object):
        pw_name, pw_dir = "me", home

    getpwuid = mocker.patch.object(_caches.pwd, "getpwuid", return_value=Entry())
    rc, result = run_module(capsys, {"_ansible_check_mode": True})
    assert rc == 0
    getpwuid.assert_called_once_with(os.geteuid())
    assert result["bytes_freed"] == 600
    assert os.path.isdir(os.path.join(home, ".cache/miopen"))


def test_framework_caches_only_when_asked(tmp_path, capsys):
    files = dict(FILES, **{".cache/torch/kernels/abs_kernel": 10, ".triton/cache/ab/k.cubin": 20,
                           ".cache/torch/hub/checkpoints/model.pth": 30})
    home = make_home(tmp_path, files=files)
    rc, result = run_module(capsys, {"home_dirs": [home]})
    assert os.path.isdir(os.path.join(home, ".cache/torch/kernels")) and result["bytes_freed"] == 600
    rc, result = run_module(capsys, {"home_dirs": [home], "framework_caches": True})
    assert rc == 0 and result["bytes_freed"] == 30
    assert sorted(r["path"] for r in result["removed"]) == [os.path.join(home, p) for p in (
        ".cache/torch/kernels", ".triton/cache")]
    assert os.path.isfile(os.path.join(home, ".cache/torch/hub/checkpoints/model.pth"))


def test_reset_clocks_in_check_mode_resets_nothing_and_warns_of_an_unreadable_level(tmp_path, capsys, mocker):
    from ansible_collections.gpuops.preflight.plugins.module_utils import _sysfs
    from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.sysfs_tree import add_gpu
    root = str(tmp_path / "sys")
    manual = add_gpu(root, "0000:03:00.0", card=0)
    with open(os.path.join(manual, "power_dpm_force_performance_level"), "w") as handle:
        handle.write("manual\n")
    add_gpu(root, "0000:06:00.0", card=1)
    real = _sysfs._read_bytes

    def read(path, limit):  # amdgpu's answer for a runtime-suspended GPU
        if "0000:06:00.0" in path and path.endswith("power_dpm_force_performance_level"):
            return None, "EPERM"
        return real(path, limit)
    mocker.patch.object(_sysfs, "_read_bytes", read)
    home = make_home(tmp_path, files={})
    rc, result = run_module(capsys, {"home_dirs": [home], "reset_clocks": True, "sysfs_root": root,
                                     "rocm_smi": str(tmp_path / "no-rocm-smi"), "_ansible_check_mode": True})
    assert rc == 0 and result["changed"] is True
    assert (result["clocks"]["needed"], result["clocks"]["reset"]) == (["0000:03:00.0"], [])
    unread = "could not read the performance level of GPU 0000:06:00.0 (EPERM): its clocks were not checked"
    # (ansible-core keeps earlier tests' warnings in the process: only this module's GPU ones are looked at)
    assert [warning_text(w) for w in result["warnings"] if "GPU" in warning_text(w)] == [unread]
    with open(os.path.join(manual, "power_dpm_force_performance_level")) as handle:
        assert handle.read() == "manual\n"
