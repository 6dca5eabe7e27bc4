from __future__ import annotations

import json
import os
import pwd
import shutil
import tempfile

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _caches as caches

# What make_home creates under the default patterns, and their sizes in bytes.
CACHE_FILES = {
    ".cache/hip_abc/kernels/k1.co": 100,
    ".cache/hip_abc/kernels/k2.co": 20,
    ".cache/hip_single.bin": 50,
    ".cache/comgr_cache/ab/cd.o": 200,
    ".cache/miopen/2.20.0/gfx90a.ukdb": 300,
}
KEPT_FILES = {
    ".config/miopen/gfx90a68.HIP.3_2_0.ufdb.txt": 400,
    ".config/miopen/miopen.udb.lock": 0,
    ".cache/pip/wheel.whl": 70,
    ".cache/hipnot/x": 5,
    ".config/other/settings": 9,
    "work/result.json": 11,
}


def write(base, rel, size):
    path = os.path.join(str(base), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(b"x" * size)
    return path


def make_home(base, files=None):
    home = os.path.join(str(base), "home")
    os.makedirs(home, exist_ok=True)
    for rel, size in (files if files is not None else dict(CACHE_FILES, **KEPT_FILES)).items():
        write(home, rel, size)
    return home


def tree(root):
    """{relative path: content or link target or None (folder)} under root, links not followed."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(str(root)):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, str(root))
            if os.path.islink(path):
                found[rel] = "-> " + os.readlink(path)
            elif os.path.isdir(path):
                found[rel] = None
            else:
                with open(path, "rb") as handle:
                    found[rel] = handle.read()
    return found


def plan(home, include_miopen_user_db=False, extra_paths=()):
    patterns = caches.cache_patterns(include_miopen_user_db, list(extra_paths))
    errors = []
    targets, skipped = caches.find_cache_targets([("tester", home)], patterns,
                                                 keep=caches.keep_paths(include_miopen_user_db), errors=errors)
    assert errors == []
    return targets, skipped


def clean(home, **kwargs):
    targets, skipped = plan(home, **kwargs)
    removed, errors, freed = caches.remove_targets(targets, check_mode=False)
    return targets, skipped, removed, errors, freed


def test_default_patterns_remove_caches_and_keep_the_miopen_user_db(tmp_path):
    home = make_home(tmp_path)
    targets, skipped, removed, errors, freed = clean(home)
    assert errors == []
    assert skipped == []
    assert sorted(r["path"] for r in removed) == sorted(os.path.join(home, p) for p in (
        ".cache/comgr_cache", ".cache/hip_abc", ".cache/hip_single.bin", ".cache/miopen"))
    assert dict((r["path"], r["kind"]) for r in removed)[os.path.join(home, ".cache/hip_single.bin")] == "file"
    assert freed == sum(CACHE_FILES.values()) == 670
    left = tree(home)
    for rel in CACHE_FILES:
        assert rel not in left
    for rel, size in KEPT_FILES.items():
        assert left[rel] == b"x" * size
    assert ".cache/hip_abc" not in left and ".cache" in left


def test_include_miopen_user_db_removes_it(tmp_path):
    home = make_home(tmp_path)
    targets, skipped, removed, errors, freed = clean(home, include_miopen_user_db=True)
    assert errors == []
    assert os.path.join(home, ".config/miopen") in [r["path"] for r in removed]
    assert freed == 670 + 400
    assert not os.path.lexists(os.path.join(home, ".config/miopen"))
    assert os.path.exists(os.path.join(home, ".config/other/settings"))


def test_extra_paths_cannot_reach_the_kept_user_db(tmp_path):
    home = make_home(tmp_path)
    targets, skipped, removed, errors, freed = clean(home, extra_paths=[".config/*"])
    assert os.path.join(home, ".config/other") in [r["path"] for r in removed]
    assert os.path.isfile(os.path.join(home, ".config/miopen/gfx90a68.HIP.3_2_0.ufdb.txt"))
    assert [s["path"] for s in skipped] == [os.path.join(home, ".config/miopen")]
    assert "MIOpen user database" in skipped[0]["reason"]
    targets, skipped = plan(home, extra_paths=[".config"])
    assert targets == []
    assert "holds the MIOpen user database" in skipped[0]["reason"]


def test_user_db_that_is_a_link_into_a_cache_keeps_that_cache(tmp_path):
    home = make_home(tmp_path, {".cache/miopen/userdb/gfx90a.ufdb.txt": 8, ".cache/comgr_cache/a": 1})
    os.makedirs(os.path.join(home, ".config"))
    os.symlink("../.cache/miopen/userdb", os.path.join(home, ".config/miopen"))
    targets, skipped, removed, errors, freed = clean(home)
    assert [r["path"] for r in removed] == [os.path.join(home, ".cache/comgr_cache")]
    assert [s["path"] for s in skipped] == [os.path.join(home, ".cache/miopen")]
    assert "holds the MIOpen user database" in skipped[0]["reason"]
    assert os.path.isfile(os.path.join(home, ".config/miopen/gfx90a.ufdb.txt"))


def test_bad_patterns_are_refused_even_without_homes():
    for pattern in ("../x", "/abs", "", "*/x", "a\x00b"):
        with pytest.raises(ValueError):
            caches.find_cache_targets([], [pattern])


def test_symlink_to_a_folder_outside_the_home_removes_only_the_link(tmp_path):
    outside = tmp_path / "precious"
    write(outside, "model/weights.bin", 1000)
    write(outside, "notes.txt", 3)
    before = tree(outside)
    home = make_home(tmp_path, {".cache/comgr_cache/a.o": 10})
    os.symlink(str(outside), os.path.join(home, ".cache/miopen"))
    os.symlink(str(outside / "model"), os.path.join(home, ".cache/hip_link"))
    # and a link to the outside folder deep inside a real cache folder
    os.symlink(str(outside), os.path.join(home, ".cache/comgr_cache/escape"))
    targets, skipped, removed, errors, freed = clean(home)
    assert errors == []
    kinds = dict((r["path"], r["kind"]) for r in removed)
    assert kinds == {os.path.join(home, ".cache/miopen"): "symlink", os.path.join(home, ".cache/hip_link"): "symlink",
                     os.path.join(home, ".cache/comgr_cache"): "dir"}
    assert not os.path.lexists(os.path.join(home, ".cache/miopen"))
    assert not os.path.lexists(os.path.join(home, ".cache/comgr_cache"))
    assert tree(outside) == before  # target and everything in it untouched, same content
    # sizes are lstat sizes: a link counts its own length, never what it points to
    assert freed == len(str(outside)) + len(str(outside / "model")) + 10 + len(str(outside))


def test_cache_root_that_is_a_symlink_is_skipped(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere, "hip_x/k.co", 10)
    write(elsewhere, "miopen/db", 10)
    before = tree(elsewhere)
    home = make_home(tmp_path, {".config/miopen/db.txt": 4})
    os.symlink(str(elsewhere), os.path.join(home, ".cache"))
    targets, skipped, removed, errors, freed = clean(home, include_miopen_user_db=False)
    assert targets == [] and removed == [] and freed == 0 and errors == []
    assert skipped == [{"path": os.path.join(home, ".cache"),
                        "reason": "cache root is a symlink (to %s): not followed, nothing under it removed"
                                  % elsewhere}]
    assert tree(elsewhere) == before
    assert os.path.islink(os.path.join(home, ".cache"))


def test_config_root_symlink_is_skipped_even_with_include_miopen_user_db(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere, "miopen/db.txt", 4)
    home = make_home(tmp_path, {".cache/miopen/x": 1})
    os.symlink(str(elsewhere), os.path.join(home, ".config"))
    targets, skipped, removed, errors, freed = clean(home, include_miopen_user_db=True)
    assert [r["path"] for r in removed] == [os.path.join(home, ".cache/miopen")]
    assert [s["path"] for s in skipped] == [os.path.join(home, ".config")]
    assert os.path.isfile(str(elsewhere / "miopen/db.txt"))


def test_intermediate_symlink_in_an_extra_path_is_skipped(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere, "cache/big.bin", 10)
    home = make_home(tmp_path, {".triton/cache/a.bin": 7, ".local/x/cache/b": 1})
    os.symlink(str(elsewhere), os.path.join(home, ".local/y"))
    os.symlink(str(elsewhere), os.path.join(home, ".aiter"))
    targets, skipped, removed, errors, freed = clean(home, extra_paths=[".triton/cache", ".local/*/cache",
                                                                        ".aiter/build"])
    assert sorted(r["path"] for r in removed) == [os.path.join(home, ".local/x/cache"),
                                                  os.path.join(home, ".triton/cache")]
    assert freed == 8
    reasons = dict((s["path"], s["reason"]) for s in skipped)
    assert set(reasons) == {os.path.join(home, ".local/y"), os.path.join(home, ".aiter")}
    assert "directory on the way to a cache is a symlink" in reasons[os.path.join(home, ".local/y")]
    assert "cache root is a symlink" in reasons[os.path.join(home, ".aiter")]
    assert os.path.isfile(str(elsewhere / "cache/big.bin"))


def test_single_component_extra_path(tmp_path):
    home = make_home(tmp_path, {".composable_kernel/t/a": 5})
    targets, skipped, removed, errors, freed = clean(home, extra_paths=[".composable_kernel"])
    assert [r["path"] for r in removed] == [os.path.join(home, ".composable_kernel")]
    assert freed == 5 and not os.path.lexists(os.path.join(home, ".composable_kernel"))


def test_wildcards_match_hidden_names_and_nested_matches_count_once(tmp_path):
    home = make_home(tmp_path, {".cache/hip_.hidden/a": 3, ".cache/miopen/x/y": 4})
    targets, skipped = plan(home, extra_paths=[".cache/miopen/*", ".cache/*"])
    paths = sorted(t["path"] for t in targets)
    assert paths == [os.path.join(home, ".cache/hip_.hidden"), os.path.join(home, ".cache/miopen")]
    assert sum(t["bytes"] for t in targets) == 7


def test_bytes_freed_equals_the_sizes_created(tmp_path):
    sizes = {".cache/miopen/%d/f%d" % (i % 3, i): 1000 + i for i in range(30)}
    home = make_home(tmp_path, sizes)
    targets, skipped = plan(home)
    assert [t["bytes"] for t in targets] == [sum(sizes.values())]
    removed, errors, freed = caches.remove_targets(targets, check_mode=False)
    assert freed == sum(sizes.values()) == removed[0]["bytes"]


def test_check_mode_removes_nothing_but_reports(tmp_path):
    home = make_home(tmp_path)
    before = tree(home)
    targets, skipped = plan(home)
    removed, errors, freed = caches.remove_targets(targets, check_mode=True)
    assert tree(home) == before
    assert len(removed) == 4
    assert freed == 670
    assert errors == []


def test_second_run_finds_nothing(tmp_path):
    home = make_home(tmp_path)
    clean(home)
    targets, skipped, removed, errors, freed = clean(home)
    assert (targets, removed, errors, freed) == ([], [], [], 0)


def test_missing_home_and_empty_home(tmp_path):
    targets, skipped = caches.find_cache_targets([("ghost", str(tmp_path / "ghost"))], caches.DEFAULT_PATTERNS)
    assert targets == []
    assert skipped == [{"path": str(tmp_path / "ghost"), "reason": "the home of ghost does not exist"}]
    (tmp_path / "empty").mkdir()
    assert caches.find_cache_targets([("e", str(tmp_path / "empty"))], caches.DEFAULT_PATTERNS) == ([], [])


def test_target_replaced_by_a_symlink_after_planning_is_left_alone(tmp_path):
    outside = tmp_path / "outside"
    write(outside, "data.bin", 5)
    home = make_home(tmp_path, {".cache/miopen/a": 1, ".cache/comgr_cache/b": 2})
    targets, skipped = plan(home)
    shutil.rmtree(os.path.join(home, ".cache/miopen"))
    os.symlink(str(outside), os.path.join(home, ".cache/miopen"))
    removed, errors, freed = caches.remove_targets(targets, check_mode=False)
    assert [r["path"] for r in removed] == [os.path.join(home, ".cache/comgr_cache")]
    assert [e["path"] for e in errors] == [os.path.join(home, ".cache/miopen")]
    assert "replaced since it was planned" in errors[0]["message"]
    assert os.path.islink(os.path.join(home, ".cache/miopen"))
    assert (outside / "data.bin").read_bytes() == b"xxxxx"
    assert freed == 2


def test_cache_root_replaced_by_a_symlink_after_planning_is_not_followed(tmp_path):
    outside = tmp_path / "outside"
    write(outside, "miopen/data.bin", 5)
    home = make_home(tmp_path, {".cache/miopen/a": 1})
    targets, skipped = plan(home)
    os.rename(os.path.join(home, ".cache"), os.path.join(home, ".cache.old"))
    os.symlink(str(outside), os.path.join(home, ".cache"))
    removed, errors, freed = caches.remove_targets(targets, check_mode=False)
    assert removed == [] and freed == 0
    assert "a directory on the way is now a symlink" in errors[0]["message"]
    assert (outside / "miopen/data.bin").read_bytes() == b"xxxxx"


@pytest.mark.parametrize("path", ["/etc", "{home}/../victim", "{home}", "{home}/.cache/../.ssh"])
def test_targets_outside_a_cache_root_are_never_touched(tmp_path, path):
    victim = write(tmp_path, "victim/keep", 3)
    home = make_home(tmp_path, {".cache/miopen/a": 1, ".ssh/id": 1})
    bad = {"home": home, "root": os.path.join(home, ".cache"), "path": path.format(home=home), "kind": "dir",
           "bytes": 0}
    removed, errors, freed = caches.remove_targets([bad], check_mode=False)
    assert removed == [] and freed == 0
    assert "refused to remove" in errors[0]["message"]
    assert os.path.isfile(victim) and os.path.isfile(os.path.join(home, ".ssh/id"))
    assert os.path.isdir("/etc")


def test_malformed_targets_are_refused_not_raised(tmp_path):
    home = make_home(tmp_path, {".cache/miopen/a": 1})
    good = plan(home)[0][0]
    bad = [None, {}, dict(good, home=None), dict(good, kind="weird"), dict(good, bytes=None),
           dict(good, path=good["path"] + "/../miopen"), dict(good, root=os.path.join(home, ".ssh"))]
    removed, errors, freed = caches.remove_targets(bad, check_mode=False)
    assert removed == [] and freed == 0 and len(errors) == len(bad)
    assert all("refused to remove" in e["message"] for e in errors)
    assert os.path.isfile(os.path.join(home, ".cache/miopen/a"))


def test_a_target_gone_before_removal_is_not_an_error(tmp_path):
    home = make_home(tmp_path, {".cache/miopen/a": 1})
    targets, skipped = plan(home)
    shutil.rmtree(os.path.join(home, ".cache/miopen"))
    assert caches.remove_targets(targets, check_mode=False) == ([], [], 0)


def test_unlink_error_is_collected_not_raised(tmp_path, mocker):
    home = make_home(tmp_path, {".cache/hip_x.bin": 3, ".cache/miopen/a": 1})
    targets, skipped = plan(home)
    mocker.patch.object(caches.os, "unlink", side_effect=PermissionError(13, "Permission denied"))
    removed, errors, freed = caches.remove_targets(targets, check_mode=False)
    # the folder's "Directory not empty" is a consequence of the file inside: only the cause is reported
    assert errors == [{"path": os.path.join(home, ".cache/hip_x.bin"),
                       "message": "cannot remove %s/.cache/hip_x.bin: Permission denied" % home},
                      {"path": os.path.join(home, ".cache/miopen/a"),
                       "message": "cannot remove %s/.cache/miopen/a: Permission denied" % home}]
    assert removed == [] and freed == 0
    assert os.path.isfile(os.path.join(home, ".cache/hip_x.bin"))
    assert os.path.isfile(os.path.join(home, ".cache/miopen/a"))


def run_as_nobody(func):
    """Run func() in a child process as the unprivileged user nobody; returns its JSON-able result."""
    nobody = pwd.getpwnam("nobody")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        status = 0
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            out = json.dumps({"value": func()})
        except BaseException as exc:  # report anything to the parent
            out = json.dumps({"error": repr(exc)})
            status = 1
        try:
            with os.fdopen(write_fd, "w") as handle:
                handle.write(out)
        finally:
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd) as handle:
        data = handle.read()
    os.waitpid(pid, 0)
    answer = json.loads(data)
    assert "error" not in answer, answer.get("error")
    return answer["value"]


@pytest.fixture
def user_home(tmp_path):
    """A home the test can make unreadable for the user who cleans it (nobody when the tests run as root)."""
    if os.geteuid() != 0:
        home_base = str(tmp_path)
        yield home_base, (lambda func: json.loads(json.dumps(func())))
        for dirpath, dirnames, filenames in os.walk(home_base):
            os.chmod(dirpath, 0o700)
        return
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' to run as")
    base = tempfile.mkdtemp(prefix="gpuops-caches-")
    try:
        yield base, run_as_nobody
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert nobody


def chown_tree(path, uid, gid):
    os.chown(path, uid, gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


def test_unreadable_subdir_is_collected_as_an_error(user_home):
    base, run = user_home
    home = make_home(base, {".cache/miopen/ok/a": 10, ".cache/miopen/locked/secret": 20, ".cache/comgr_cache/c": 5})
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        chown_tree(base, nobody.pw_uid, nobody.pw_gid)
    locked = os.path.join(home, ".cache/miopen/locked")
    os.chmod(locked, 0)

    def job():
        targets, skipped = plan(home)
        return caches.remove_targets(targets, check_mode=False)

    removed, errors, freed = run(job)
    assert [r["path"] for r in removed] == [os.path.join(home, ".cache/comgr_cache")]
    assert len(errors) == 1
    assert errors[0]["path"] == locked
    assert errors[0]["message"].startswith("cannot remove %s: Permission denied" % locked)
    assert "partly removed: 10 bytes freed" in errors[0]["message"]
    assert freed == 15
    os.chmod(locked, 0o700)
    assert open(os.path.join(locked, "secret"), "rb").read() == b"x" * 20
    assert not os.path.exists(os.path.join(home, ".cache/miopen/ok"))


def swap_during_removal(monkeypatch, name, swap):
    """Run ``swap()`` right after the removal lstats the directory ``name``, before it opens it: the race a
    user who owns the cache can try against a root cleanup."""
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        result = real_stat(path, *args, **kwargs)
        if path == name and kwargs.get("dir_fd") is not None:
            swap()
        return result
    monkeypatch.setattr(os, "stat", stat)


def test_a_folder_swapped_for_a_link_mid_removal_is_not_followed(tmp_path, monkeypatch):
    home = make_home(tmp_path, {".cache/miopen/2.20.0/sub/k.ukdb": 10})
    outside = write(tmp_path, "precious/sub/data.bin", 33)
    sub = os.path.join(home, ".cache/miopen/2.20.0/sub")
    targets, _skipped = plan(home)

    def swap():
        shutil.rmtree(sub)
        os.symlink(os.path.dirname(outside), sub)
    swap_during_removal(monkeypatch, "sub", swap)
    removed, errors, _freed = caches.remove_targets(targets, check_mode=False)
    assert open(outside, "rb").read() == b"x" * 33   # nothing outside the cache is touched
    assert removed == [] and any(e["path"] == sub for e in errors), errors


def test_a_folder_swapped_for_another_folder_mid_removal_is_left(tmp_path, monkeypatch):
    home = make_home(tmp_path, {".cache/miopen/2.20.0/sub/k.ukdb": 10, ".cache/other/keep.bin": 5})
    sub = os.path.join(home, ".cache/miopen/2.20.0/sub")
    elsewhere = os.path.join(home, ".cache/other")
    targets, _skipped = plan(home)

    def swap():   # a bind mount or a rename puts another folder (another inode) at the name
        os.rename(sub, os.path.join(home, ".cache/was_sub"))
        os.rename(elsewhere, sub)
    swap_during_removal(monkeypatch, "sub", swap)
    removed, errors, _freed = caches.remove_targets(targets, check_mode=False)
    assert os.path.exists(os.path.join(sub, "keep.bin"))
    assert [e["message"] for e in errors if e["path"] == sub] == [
        "cannot remove %s: replaced while being removed: left as it is" % sub]


def test_a_mount_inside_a_cache_is_neither_entered_nor_removed(tmp_path, monkeypatch):
    # a cache shared over NFS, or bind-mounted data: stat tells it by its other device
    home = make_home(tmp_path, {".cache/miopen/a.ukdb": 10, ".cache/miopen/shared/data.bin": 20})
    shared = os.path.join(home, ".cache/miopen/shared")
    real_stat = os.stat

    class Other(object):
        def __init__(self, st):
            self.st_mode, self.st_ino, self.st_size, self.st_dev = st.st_mode, st.st_ino, st.st_size, st.st_dev + 1

    def stat(path, *args, **kwargs):
        result = real_stat(path, *args, **kwargs)
        return Other(result) if path == "shared" and kwargs.get("dir_fd") is not None else result
    targets, _skipped = plan(home)
    monkeypatch.setattr(os, "stat", stat)
    removed, errors, _freed = caches.remove_targets(targets, check_mode=False)
    assert open(os.path.join(shared, "data.bin"), "rb").read() == b"x" * 20
    assert not os.path.exists(os.path.join(home, ".cache/miopen/a.ukdb"))
    assert len(errors) == 1 and errors[0]["message"].startswith(
        "cannot remove %s: a mount point (another file system): left as it is (%s partly removed: 10 bytes freed"
        % (shared, os.path.dirname(shared)))


def test_a_bind_mount_inside_a_cache_is_told_by_the_mount_table_and_left(tmp_path):
    # a bind mount of a folder of the same file system keeps its device number: only the mount table tells it
    home = make_home(tmp_path, {".cache/miopen/a.ukdb": 10, ".cache/miopen/shared/train.bin": 20})
    shared = os.path.join(home, ".cache/miopen/shared")
    table = write(tmp_path, "mountinfo", 0)
    with open(table, "w") as handle:
        handle.write("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
                     "99 22 8:1 /data/sets %s rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
                     % shared.replace(" ", "\\040"))
    targets, _skipped = plan(home)
    removed, errors, _freed = caches.remove_targets(targets, check_mode=False, mountinfo=table)
    assert open(os.path.join(shared, "train.bin"), "rb").read() == b"x" * 20
    assert not os.path.exists(os.path.join(home, ".cache/miopen/a.ukdb"))
    assert len(errors) == 1 and errors[0]["message"].startswith(
        "cannot remove %s: a mount point (another file system): left as it is" % shared)


def test_a_deep_tree_is_removed_without_recursion_and_a_pathological_one_left_with_a_short_message(tmp_path):
    home = make_home(tmp_path, {".cache/comgr_cache/x": 1})
    deep = os.path.join(home, ".cache/miopen")
    os.makedirs(os.path.join(deep, *(["d"] * 200)))
    targets, _skipped = plan(home)
    removed, errors, _freed = caches.remove_targets(targets, check_mode=False)
    assert errors == [] and not os.path.exists(deep)
    os.makedirs(os.path.join(deep, *(["d"] * (caches.MAX_DEPTH + 20))))
    targets, _skipped = plan(home)
    removed, errors, _freed = caches.remove_targets(targets, check_mode=False)
    assert [r["path"] for r in removed] == [] and len(errors) == 1
    assert "more than %d levels deep: left as it is" % caches.MAX_DEPTH in errors[0]["message"]
    assert len(errors[0]["message"]) < 1000


# --------------------------------------------------------------------------------------------
# input


@pytest.mark.parametrize("extra, text", [
    ("/var/cache/x", "is an absolute path"),
    ("../other/.cache", "'..' component"),
    (".triton/../../etc", "'..' component"),
    ("~/.triton/cache", "starts with '~'"),
    ("", "names the home itself"),
    ("./", "names the home itself"),
    ("*/cache", "must be a plain name"),
    (".cach?/x", "must be a plain name"),
    ("a\x00b", "NUL byte"),
])
def test_bad_extra_paths(extra, text):
    with pytest.raises(ValueError) as err:
        caches.cache_patterns(False, [extra])
    assert text in str(err.value)


def test_extra_paths_are_normalised():
    patterns = caches.cache_patterns(False, ["./.triton//cache/", ".triton/cache", ".cache/miopen"])
    assert patterns == [".cache/hip_*", ".cache/comgr_cache", ".cache/miopen", ".triton/cache"]
    assert caches.keep_paths(False) == (".cache/huggingface", ".cache/torch/hub", ".config/miopen")
    assert ".config/miopen" in caches.cache_patterns(True, [])
    assert caches.keep_paths(True) == (".cache/huggingface", ".cache/torch/hub")
    # find_cache_targets keeps downloaded models and the MIOpen user database by default
    assert caches.find_cache_targets.__defaults__[0] == (".cache/huggingface", ".cache/torch/hub", ".config/miopen")


class Entry(object):
    def __init__(self, name, home):
        self.pw_name, self.pw_dir = name, home


def fake_getpwnam(name):
    table = {"prng": Entry("prng", "/home/prng"), "svc": Entry("svc", "/srv/svc/"), "nohome": Entry("nohome", "")}
    return table[name]


def test_resolve_homes():
    homes = caches.resolve_homes(["prng", "svc"], ["/data/train", "/home/prng"], getpwnam=fake_getpwnam)
    assert homes == [("prng", "/home/prng"), ("svc", "/srv/svc"), ("/data/train", "/data/train")]
    default = caches.resolve_homes([], [], getpwuid=lambda uid: Entry("me", "/home/me"), geteuid=lambda: 1000)
    assert default == [("me", "/home/me")]
    real = caches.resolve_homes()
    assert real == [(pwd.getpwuid(os.geteuid()).pw_name, os.path.normpath(pwd.getpwuid(os.geteuid()).pw_dir))]


@pytest.mark.parametrize("users, home_dirs, text", [
    (["ghost"], [], "unknown user 'ghost'"),
    (["nohome"], [], "has no absolute home directory"),
    ([""], [], "is not a user name"),
    ([], ["relative/home"], "home_dirs: relative/home is not an absolute path"),
])
def test_resolve_homes_bad_input(users, home_dirs, text):
    with pytest.raises(ValueError) as err:
        caches.resolve_homes(users, home_dirs, getpwnam=fake_getpwnam)
    assert text in str(err.value)


def test_measure_does_not_follow_links(tmp_path):
    write(tmp_path, "big/file", 5000)
    write(tmp_path, "c/small", 7)
    os.symlink(str(tmp_path / "big"), str(tmp_path / "c" / "link"))
    assert caches.measure(str(tmp_path / "c")) == (7 + len(str(tmp_path / "big")), 3)
    assert caches.measure(str(tmp_path / "nope")) == (0, 0)


def test_folder_that_cannot_be_listed_is_an_error_of_finding(user_home):
    base, run = user_home
    home = make_home(base, {".local/a/cache/x": 1, ".cache/miopen/y": 2})
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        chown_tree(base, nobody.pw_uid, nobody.pw_gid)
    os.chmod(os.path.join(home, ".local"), 0)

    def job():
        patterns = caches.cache_patterns(False, [".local/*/cache"])
        errors = []
        targets, skipped = caches.find_cache_targets([("tester", home)], patterns, errors=errors)
        # without an errors list, the same is reported in skipped: never lost, never raised
        dummy, skipped_only = caches.find_cache_targets([("tester", home)], patterns)
        return targets, skipped, errors, skipped_only

    targets, skipped, errors, skipped_only = run(job)
    assert [t["path"] for t in targets] == [os.path.join(home, ".cache/miopen")]
    assert skipped == []
    message = "cannot list %s/.local: Permission denied" % home
    assert errors == [{"path": os.path.join(home, ".local"), "message": message}]
    assert skipped_only == [{"path": os.path.join(home, ".local"), "reason": message}]
    os.chmod(os.path.join(home, ".local"), 0o700)


# ------------------------------------------------------------------------------ per vendor

CUDA_FILES = {
    ".nv/ComputeCache/1/2/abcdef": 1000,
    ".nv/ComputeCache/index": 24,
    ".cache/torch/kernels/abs_kernel_vectorized4_arch8.6_nvrtc12.1_sass_45424_d1cd": 300,
    ".triton/cache/4f/matmul_kernel.cubin": 500,
}
CUDA_KEPT = {
    ".cache/torch/hub/checkpoints/resnet50.pth": 77,
    ".cache/huggingface/hub/model.safetensors": 88,
    ".nv/nsight-compute/settings": 5,
    ".triton/dump/x.ttir": 6,
}


def clean_vendor(home, vendor, framework_caches=None, check_mode=False):
    patterns = caches.cache_patterns(vendor=vendor, framework_caches=framework_caches)
    targets, skipped = caches.find_cache_targets([("tester", home)], patterns, keep=caches.keep_paths(False))
    removed, errors, freed = caches.remove_targets(targets, check_mode=check_mode)
    return skipped, removed, errors, freed


def test_nvidia_caches_removed_models_kept(tmp_path):
    home = make_home(tmp_path, dict(CUDA_FILES, **CUDA_KEPT))
    skipped, removed, errors, freed = clean_vendor(home, "nvidia")
    assert (skipped, errors) == ([], [])
    assert sorted(r["path"] for r in removed) == sorted(os.path.join(home, p) for p in (
        ".nv/ComputeCache", ".cache/torch/kernels", ".triton/cache"))
    assert freed == sum(CUDA_FILES.values())
    left = tree(home)
    for rel, size in CUDA_KEPT.items():
        assert left[rel] == b"x" * size
    assert not any(rel.startswith(".nv/ComputeCache") for rel in left)


def test_vendor_sets(tmp_path):
    assert caches.cache_patterns() == list(caches.DEFAULT_PATTERNS)  # amd: unchanged, no framework caches
    assert caches.cache_patterns(vendor="nvidia") == [".nv/ComputeCache", ".cache/torch/kernels", ".triton/cache"]
    assert caches.cache_patterns(vendor="nvidia", framework_caches=False) == [".nv/ComputeCache"]
    assert caches.cache_patterns(True, vendor="all") == list(caches.DEFAULT_PATTERNS) + [
        ".nv/ComputeCache", ".cache/torch/kernels", ".triton/cache", ".config/miopen"]
    assert caches.cache_patterns(True, vendor="nvidia") == caches.cache_patterns(vendor="nvidia")
    with pytest.raises(ValueError, match="vendor must be one of amd, nvidia, all, not 'intel'"):
        caches.cache_patterns(vendor="intel")


def test_nvidia_root_symlink_skipped_and_check_mode(tmp_path):
    home = make_home(tmp_path, dict(CUDA_FILES))
    outside = tmp_path / "elsewhere"
    os.makedirs(str(outside / "ComputeCache"))
    shutil.rmtree(os.path.join(home, ".nv"))
    os.symlink(str(outside), os.path.join(home, ".nv"))
    before = tree(home)
    skipped, removed, errors, freed = clean_vendor(home, "nvidia", check_mode=True)
    assert [s["path"] for s in skipped] == [os.path.join(home, ".nv")]
    assert "cache root is a symlink" in skipped[0]["reason"]
    assert sorted(r["path"] for r in removed) == sorted(os.path.join(home, p) for p in (
        ".cache/torch/kernels", ".triton/cache"))
    assert tree(home) == before and os.path.isdir(str(outside / "ComputeCache"))


# ---------------------------------------------------------------- a cache folder that is itself a mount point


def bind_table(tmp_path, mount_point):
    """A mount table where ``mount_point`` is a bind mount of a folder of the same file system."""
    table = write(tmp_path, "mountinfo", 0)
    with open(table, "w") as handle:
        handle.write("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
                     "99 22 8:1 /data/kernels %s rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
                     % mount_point.replace(" ", "\\040"))
    return table


def test_a_cache_folder_that_is_a_mount_point_is_left_when_planned(tmp_path):
    # ~/.cache/miopen bind-mounted from shared storage: emptying it would wipe every rig's kernels
    home = make_home(tmp_path, {".cache/miopen/shared.ukdb": 30, ".cache/hip_x/k.co": 5})
    miopen = os.path.join(home, ".cache/miopen")
    table = bind_table(tmp_path, miopen)
    targets, skipped = caches.find_cache_targets([("tester", home)], caches.cache_patterns(), mountinfo=table)
    assert [t["path"] for t in targets] == [os.path.join(home, ".cache/hip_x")]
    assert skipped == [{"path": miopen, "reason": "a mount point (a file system or bind mount of its own): nothing in "
                                                  "it removed"}]
    removed, errors, _freed = caches.remove_targets(targets, check_mode=False, mountinfo=table)
    assert errors == [] and [r["path"] for r in removed] == [os.path.join(home, ".cache/hip_x")]
    assert open(os.path.join(miopen, "shared.ukdb"), "rb").read() == b"x" * 30


def test_a_cache_folder_on_another_device_is_left_when_planned(tmp_path, monkeypatch):
    home = make_home(tmp_path, {".cache/miopen/shared.ukdb": 30})
    miopen = os.path.join(home, ".cache/miopen")
    real_lstat = os.lstat

    def lstat(path, *args, **kwargs):
        result = real_lstat(path, *args, **kwargs)
        if path == miopen:   # an NFS mount: another device than its parent folder
            return os.stat_result((result.st_mode, result.st_ino, result.st_dev + 1) + tuple(result)[3:])
        return result
    monkeypatch.setattr(os, "lstat", lstat)
    targets, skipped = caches.find_cache_targets([("tester", home)], caches.cache_patterns())
    assert targets == []
    assert [s["path"] for s in skipped] == [miopen]


def test_a_cache_folder_that_became_a_mount_point_after_planning_is_not_emptied(tmp_path):
    home = make_home(tmp_path, {".cache/miopen/shared.ukdb": 30})
    miopen = os.path.join(home, ".cache/miopen")
    targets, _skipped = plan(home)   # the real table: not a mount point then
    assert [t["path"] for t in targets] == [miopen]
    removed, errors, freed = caches.remove_targets(targets, check_mode=False, mountinfo=bind_table(tmp_path, miopen))
    assert open(os.path.join(miopen, "shared.ukdb"), "rb").read() == b"x" * 30
    assert removed == [] and freed == 0
    assert [e["message"] for e in errors] == ["cannot remove %s: a mount point (another file system): left as it is"
                                              % miopen]


# ---------------------------------------------------------------- races: what vanished meanwhile is no error


def test_a_folder_that_vanishes_before_it_is_listed_is_not_an_error(tmp_path, monkeypatch):
    home = make_home(tmp_path, {".cache/hip_x/k.co": 5})
    real_scandir = os.scandir

    def scandir(path):
        if path == os.path.join(home, ".cache"):
            raise FileNotFoundError(2, "No such file or directory", path)
        return real_scandir(path)
    monkeypatch.setattr(os, "scandir", scandir)
    targets, skipped = plan(home)   # asserts no error
    assert targets == [] and skipped == []


def test_a_folder_removed_by_someone_else_mid_removal_is_not_an_error(tmp_path, monkeypatch):
    home = make_home(tmp_path, {".cache/hip_x/kernels/k.co": 5, ".cache/hip_x/a.co": 1})
    kernels = os.path.join(home, ".cache/hip_x/kernels")
    targets, _skipped = plan(home)
    real_open = os.open

    def racing_open(path, flags, *args, **kwargs):
        if path == "kernels" and os.path.isdir(kernels):
            shutil.rmtree(kernels)   # the step's own cleanup got there first
        return real_open(path, flags, *args, **kwargs)
    monkeypatch.setattr(os, "open", racing_open)
    removed, errors, _freed = caches.remove_targets(targets, check_mode=False)
    assert errors == []
    assert [r["path"] for r in removed] == [os.path.join(home, ".cache/hip_x")]
    assert not os.path.exists(os.path.join(home, ".cache/hip_x"))


def test_a_folder_removed_by_someone_else_before_its_rmdir_is_not_an_error(tmp_path, monkeypatch):
    home = make_home(tmp_path, {".cache/hip_x/kernels/k.co": 5})
    targets, _skipped = plan(home)
    real_rmdir = os.rmdir

    def racing_rmdir(path, *args, **kwargs):
        real_rmdir(path, *args, **kwargs)
        if path == "kernels":
            raise FileNotFoundError(2, "No such file or directory", path)   # as if another process won the race
    monkeypatch.setattr(os, "rmdir", racing_rmdir)
    removed, errors, _freed = caches.remove_targets(targets, check_mode=False)
    assert errors == []
    assert [r["path"] for r in removed] == [os.path.join(home, ".cache/hip_x")]


def test_a_cache_written_while_it_is_removed_reports_what_was_really_freed(tmp_path, monkeypatch):
    # a job still compiling kernels writes into the cache while it goes: what was removed is freed and changed the
    # host, even when more has been written than was removed
    home = make_home(tmp_path, {".cache/hip_x/a.co": 10, ".cache/hip_x/b.co": 20})
    cache = os.path.join(home, ".cache/hip_x")
    targets, _skipped = plan(home)
    real_unlink = os.unlink

    def unlink_while_written(path, *args, **kwargs):
        real_unlink(path, *args, **kwargs)
        if path == "a.co":
            write(cache, "new/big.co", 500)   # lands after the folder was listed: it stays
    monkeypatch.setattr(os, "unlink", unlink_while_written)
    removed, errors, freed = caches.remove_targets(targets, check_mode=False)
    assert freed == 30
    assert removed == []
    assert [e["message"] for e in errors] == [
        "cannot remove %s: Directory not empty (%s partly removed: 30 bytes freed, 500 bytes left)" % (cache, cache)]


def test_check_mode_says_what_a_run_does_to_a_cache_holding_a_mount_and_both_settle(tmp_path):
    # a bind mount inside a cache is never removed: check mode must not promise it, and once the rest is gone
    # neither a run nor check mode has anything left to change
    home = make_home(tmp_path, {".cache/miopen/a.ukdb": 10, ".cache/miopen/shared/train.bin": 20})
    shared = os.path.join(home, ".cache/miopen/shared")
    table = bind_table(tmp_path, shared)
    note = "cannot remove %s: a mount point (another file system): left as it is" % shared

    def run(check_mode):
        targets, _skipped = caches.find_cache_targets([("tester", home)], caches.cache_patterns(), mountinfo=table)
        return caches.remove_targets(targets, check_mode=check_mode, mountinfo=table)

    removed, errors, freed = run(True)
    assert (removed, freed) == ([], 10)
    assert [e["message"] for e in errors] == [note]
    removed, errors, freed = run(False)
    assert (removed, freed) == ([], 10)
    assert [e["message"] for e in errors][0].startswith(note)
    for check_mode in (True, False):   # settled: nothing to change, in check mode or not
        removed, errors, freed = run(check_mode)
        assert (removed, freed) == ([], 0)
    assert open(os.path.join(shared, "train.bin"), "rb").read() == b"x" * 20


def test_a_single_component_cache_under_a_symlinked_home_is_no_mount_point(tmp_path, monkeypatch):
    # /home/alice -> /data/alice: the link lives on /home's file system, the home and its caches on /data's
    real_home = make_home(tmp_path, {".triton/cache/k.bin": 7})
    home = str(tmp_path / "alice")
    os.symlink(real_home, home)
    real_lstat = os.lstat

    def lstat(path, *args, **kwargs):
        result = real_lstat(path, *args, **kwargs)
        if path == home:   # the link itself: another device than what it points to
            return os.stat_result((result.st_mode, result.st_ino, result.st_dev + 1) + tuple(result)[3:])
        return result
    monkeypatch.setattr(os, "lstat", lstat)
    targets, skipped = caches.find_cache_targets([("alice", home)], [".triton"])
    assert (skipped, [t["path"] for t in targets]) == ([], [os.path.join(home, ".triton")])


@pytest.mark.parametrize("extra", [".cache", ".cache/*", ".cache/torch", ".cache/huggingface/hub"])
def test_downloaded_models_are_never_removed_whatever_extra_path_reaches_them(tmp_path, extra):
    # an extra path that reaches ~/.cache whole (or a glob over it) must not take the downloaded models with it
    home = make_home(tmp_path, {".cache/huggingface/hub/models--x/blob.safetensors": 40,
                                ".cache/torch/hub/checkpoints/resnet.pth": 30, ".cache/hip_x/k.co": 5})
    patterns = caches.cache_patterns(False, [extra])
    targets, skipped = caches.find_cache_targets([("tester", home)], patterns, keep=caches.keep_paths(False))
    caches.remove_targets(targets, check_mode=False)
    left = tree(home)
    assert left[".cache/huggingface/hub/models--x/blob.safetensors"] == b"x" * 40
    assert left[".cache/torch/hub/checkpoints/resnet.pth"] == b"x" * 30
    assert ".cache/hip_x" not in left
    assert skipped and all("downloaded models (data, not a cache)" in s["reason"] for s in skipped)


def test_a_home_that_cannot_be_looked_at_is_an_error_not_missing(tmp_path, mocker):
    home = str(tmp_path / "alice")
    os.mkdir(home)
    real_stat = os.stat

    def fake_stat(path, *args, **kwargs):   # what a user without search permission on /home gets
        if path == home:
            raise PermissionError(13, "Permission denied", path)
        return real_stat(path, *args, **kwargs)

    mocker.patch.object(caches.os, "stat", side_effect=fake_stat)
    errors = []
    assert caches.find_cache_targets([("alice", home)], caches.DEFAULT_PATTERNS, errors=errors) == ([], [])
    assert errors == [{"path": home, "message": "cannot look at the home of alice, %s: Permission denied" % home}]
    _targets, skipped = caches.find_cache_targets([("alice", home)], caches.DEFAULT_PATTERNS)
    assert skipped == [{"path": home, "reason": "cannot look at the home of alice, %s: Permission denied" % home}]


def test_a_home_that_is_a_file_or_a_link_to_nowhere_is_named_as_such(tmp_path):
    (tmp_path / "file").write_text("x")
    os.symlink(str(tmp_path / "nowhere"), str(tmp_path / "dangling"))
    homes = [("f", str(tmp_path / "file")), ("d", str(tmp_path / "dangling"))]
    assert caches.find_cache_targets(homes, caches.DEFAULT_PATTERNS)[1] == [
        {"path": str(tmp_path / "file"), "reason": "the home of f is not a directory"},
        {"path": str(tmp_path / "dangling"), "reason": "the home of d is a link to nowhere"}]
