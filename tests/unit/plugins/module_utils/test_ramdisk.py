from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
import uuid

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _mounts
from ansible_collections.gpuops.preflight.plugins.module_utils import _ramdisk as rd

NOW = 1_800_000_000.0
MIB = 1024 * 1024


def make_step(root, step=3, files=None, mtime=NOW - 60):
    """A step folder with ``files`` ({name: bytes or str}) written, every mtime set to ``mtime``."""
    folder = root / ("step%d" % step)
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in (files or {}).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        os.utime(path, (mtime, mtime))
    return folder


def codes(problems):
    return [(p["file"], p["problem"]) for p in problems]


def by_name(infos):
    return dict((i["name"], i) for i in infos)


# --------------------------------------------------------------------------------------------
# check_step_files


def test_all_good_files_pass_and_are_described(tmp_path):
    folder = make_step(tmp_path, files={"train_history.json": '{"epochs": [1, 2]}', "weights.bin": b"\x00\x01\x02",
                                        "sub/meta.json": "[]"})
    problems, infos = rd.check_step_files(str(tmp_path), 3, ["train_history.json", "weights.bin", "sub/meta.json"],
                                          max_age=3600, now=NOW)
    assert problems == []
    info = by_name(infos)
    assert [i["name"] for i in infos] == ["train_history.json", "weights.bin", "sub/meta.json"]
    assert info["train_history.json"] == {"name": "train_history.json", "path": str(folder / "train_history.json"),
                                          "size": 18, "mtime": NOW - 60, "age_s": 60.0, "json_checked": True,
                                          "note": None}
    assert info["weights.bin"]["json_checked"] is False  # auto: only names ending in .json are parsed
    assert info["sub/meta.json"]["json_checked"] is True


def test_every_problem_is_reported_together(tmp_path):
    folder = make_step(tmp_path, files={"empty.bin": b"", "bad.json": '{"a": 1,\n  "b": }\n', "ok.json": "{}"})
    (folder / "adir").mkdir()
    os.mkfifo(str(folder / "pipe"))
    problems, infos = rd.check_step_files(str(tmp_path), 3, ["train_history.json", "empty.bin", "bad.json", "adir",
                                                             "pipe", "ok.json", "../escape", "/etc/hostname"],
                                          now=NOW)
    assert codes(problems) == [
        ("train_history.json", "missing"),
        ("empty.bin", "empty"),
        ("bad.json", "invalid_json"),
        ("adir", "not_regular"),
        ("pipe", "not_regular"),
        ("../escape", "escapes_root"),
        ("/etc/hostname", "escapes_root"),
    ]
    shown = str(folder) + "/"
    messages = [p["message"] for p in problems]
    assert messages[0] == "train_history.json is missing from %s" % shown
    assert messages[1] == "empty.bin in %s is empty (0 bytes)" % shown
    assert "adir in %s is a directory, not a regular file" % shown == messages[3]
    assert "is a fifo" in messages[4]
    for item in problems:
        assert "\n" not in item["message"]
        assert item["file"] in item["message"]
    assert problems[0]["path"] == str(folder / "train_history.json")
    assert len(infos) == 8


def test_socket_is_not_regular(tmp_path):
    folder = make_step(tmp_path)
    # AF_UNIX paths are limited to ~107 bytes: bind from inside the folder.
    old = os.getcwd()
    sock = socket.socket(socket.AF_UNIX)
    try:
        os.chdir(str(folder))
        sock.bind("sock")
    finally:
        os.chdir(old)
    try:
        problems, dummy = rd.check_step_files(str(tmp_path), 3, ["sock"], now=NOW)
    finally:
        sock.close()
    assert codes(problems) == [("sock", "not_regular")]
    assert "is a socket" in problems[0]["message"]


def test_invalid_json_names_line_and_column(tmp_path):
    make_step(tmp_path, files={"history.json": '{\n  "epochs": [1, 2,\n  "loss": 0.5\n}\n'})
    problems, infos = rd.check_step_files(str(tmp_path), 3, ["history.json"], now=NOW)
    assert codes(problems) == [("history.json", "invalid_json")]
    assert problems[0]["line"] == 3
    assert problems[0]["column"] == 9
    assert "at line 3 column 9" in problems[0]["message"]
    assert infos[0]["json_checked"] is True


def test_non_utf8_json_is_invalid(tmp_path):
    make_step(tmp_path, files={"x.json": b"\xff\xfe\xfa{"})
    problems, dummy = rd.check_step_files(str(tmp_path), 3, ["x.json"], now=NOW)
    assert codes(problems) == [("x.json", "invalid_json")]


def test_validate_json_always_and_never(tmp_path):
    make_step(tmp_path, files={"meta.txt": "not json", "bad.json": "{"})
    always, dummy = rd.check_step_files(str(tmp_path), 3, ["meta.txt", "bad.json"], validate_json="always", now=NOW)
    assert codes(always) == [("meta.txt", "invalid_json"), ("bad.json", "invalid_json")]
    never, infos = rd.check_step_files(str(tmp_path), 3, ["meta.txt", "bad.json"], validate_json="never", now=NOW)
    assert never == []
    assert [i["json_checked"] for i in infos] == [False, False]


def test_json_larger_than_the_limit_is_never_passed_unchecked(tmp_path):
    make_step(tmp_path, files={"big.json": "[" + "1," * 50 + "oops"})
    problems, infos = rd.check_step_files(str(tmp_path), 3, ["big.json"], json_max_bytes=64, now=NOW)
    assert codes(problems) == [("big.json", "too_large")]
    assert problems[0]["message"] == ("big.json in %s/step3/ is 105 bytes, over the 64 bytes limit for JSON validation: "
                                      "it was not checked" % tmp_path)
    assert infos[0]["json_checked"] is False
    problems, dummy = rd.check_step_files(str(tmp_path), 3, ["big.json"], now=NOW)
    assert codes(problems) == [("big.json", "invalid_json")]


@pytest.mark.parametrize("content", ["[" * 200000 + "]" * 200000, "[" * 100000])   # the second one is cut off
def test_json_too_deep_to_parse_is_never_passed_unchecked(tmp_path, content):
    make_step(tmp_path, files={"deep.json": content})
    problems, infos = rd.check_step_files(str(tmp_path), 3, ["deep.json"], now=NOW)
    assert codes(problems) == [("deep.json", "invalid_json")] and infos[0]["json_checked"] is False
    assert problems[0]["message"].endswith("cannot be checked as JSON: it is nested more deeply than the JSON parser "
                                           "takes (no real step file is)")


def test_max_age(tmp_path):
    make_step(tmp_path, files={"old.json": "{}"}, mtime=NOW - 7200)
    make_step(tmp_path, files={"new.json": "{}"}, mtime=NOW - 10)
    problems, infos = rd.check_step_files(str(tmp_path), 3, ["old.json", "new.json"], max_age=3600, now=NOW)
    assert codes(problems) == [("old.json", "too_old")]
    assert problems[0]["age_s"] == 7200.0
    assert "is 2.0 h old, older than max_age (60 min)" in problems[0]["message"]
    assert by_name(infos)["new.json"]["age_s"] == 10.0
    assert rd.check_step_files(str(tmp_path), 3, ["old.json"], now=NOW)[0] == []  # no max_age, no limit


def test_empty_and_too_old_are_both_reported(tmp_path):
    make_step(tmp_path, files={"e.json": b""}, mtime=NOW - 100)
    problems, dummy = rd.check_step_files(str(tmp_path), 3, ["e.json"], max_age=10, now=NOW)
    assert codes(problems) == [("e.json", "empty"), ("e.json", "too_old")]


def test_missing_step_folder_is_one_problem_naming_each_file(tmp_path):
    problems, infos = rd.check_step_files(str(tmp_path), 7, ["a.json", "b.bin", "../x"], now=NOW)
    assert codes(problems) == [(None, "missing_step_folder"), ("../x", "escapes_root")]
    step = problems[0]
    assert step["files"] == ["a.json", "b.bin"]
    assert step["path"] == str(tmp_path / "step7") + "/"
    assert step["message"] == "step folder %s/step7/ is missing (required: a.json, b.bin)" % tmp_path
    assert [i["name"] for i in infos] == ["a.json", "b.bin", "../x"]


def test_step_folder_that_is_a_file(tmp_path):
    (tmp_path / "step2").write_text("x")
    problems, dummy = rd.check_step_files(str(tmp_path), 2, ["a"], now=NOW)
    assert codes(problems) == [(None, "missing_step_folder")]
    assert "is a regular file, not a directory" in problems[0]["message"]


def test_symlink_inside_the_folder_is_followed(tmp_path):
    folder = make_step(tmp_path, files={"real/history.json": '{"ok": true}'})
    os.symlink("real/history.json", str(folder / "history.json"))
    os.symlink("real", str(folder / "linkdir"))
    problems, infos = rd.check_step_files(str(tmp_path), 3, ["history.json", "linkdir/history.json"], now=NOW)
    assert problems == []
    assert all(i["json_checked"] for i in infos)
    assert infos[0]["size"] == len('{"ok": true}')


def test_symlink_leading_out_is_refused_not_read(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text("{not json")
    folder = make_step(tmp_path / "ram", files={"ok.json": "{}"})
    os.symlink(str(outside / "secret.json"), str(folder / "file.json"))
    os.symlink("../../outside", str(folder / "dirlink"))
    os.symlink("/nonexistent/nothing", str(folder / "dangling"))
    problems, infos = rd.check_step_files(str(tmp_path / "ram"), 3, ["file.json", "dirlink/secret.json", "dangling"],
                                          now=NOW)
    assert codes(problems) == [("file.json", "escapes_root"), ("dirlink/secret.json", "escapes_root"),
                               ("dangling", "escapes_root")]
    assert problems[0]["target"] == str(outside / "secret.json")
    assert "leads outside the step folder" in problems[0]["message"]
    assert all(i["json_checked"] is False and i["size"] is None for i in infos)


def test_dangling_link_inside_is_missing(tmp_path):
    folder = make_step(tmp_path)
    os.symlink("not-there.json", str(folder / "h.json"))
    problems, dummy = rd.check_step_files(str(tmp_path), 3, ["h.json"], now=NOW)
    assert codes(problems) == [("h.json", "missing")]


def test_root_and_step_folder_may_be_symlinks(tmp_path):
    real = tmp_path / "real"
    make_step(real, files={"a.json": "{}"})
    os.symlink(str(real), str(tmp_path / "ram"))
    problems, dummy = rd.check_step_files(str(tmp_path / "ram") + "/", 3, ["a.json"], now=NOW)
    assert problems == []


@pytest.mark.parametrize("name, why", [
    ("../step4/a.json", "'..' component"),
    ("sub/../a.json", "'..' component"),
    ("/dev/shm/prng/step3/a.json", "absolute path"),
    ("", "empty file name"),
    ("a\x00.json", "NUL byte"),
])
def test_names_that_escape_are_refused(tmp_path, name, why):
    make_step(tmp_path, files={"a.json": "{}"})
    make_step(tmp_path, step=4, files={"a.json": "{}"})
    problems, dummy = rd.check_step_files(str(tmp_path), 3, [name], now=NOW)
    assert codes(problems) == [(name, "escapes_root")]
    assert why in problems[0]["message"]


def test_unreadable_file(tmp_path, mocker):
    folder = make_step(tmp_path, files={"locked.json": "{}", "open.json": "{}"})
    locked = str(folder / "locked.json")
    os.chmod(locked, 0)
    if os.geteuid() == 0:  # root reads mode-000 files: make the open fail the way it does for a user
        real_open = os.open

        def fake_open(path, *args, **kwargs):
            if path == locked:
                raise PermissionError(13, "Permission denied", path)
            return real_open(path, *args, **kwargs)

        mocker.patch.object(rd.os, "open", side_effect=fake_open)
    problems, infos = rd.check_step_files(str(tmp_path), 3, ["locked.json", "open.json"], now=NOW)
    assert codes(problems) == [("locked.json", "unreadable")]
    # no user but root may read a mode-000 file: the pipeline's user is refused too, a real problem
    assert problems[0]["message"] == ("locked.json in %s/ cannot be read: Permission denied (mode 0000: no user but "
                                      "root may read it)" % folder)
    assert "unknown" not in problems[0]
    assert infos[0]["size"] == 2  # stat still works


def test_duplicate_names_are_checked_once(tmp_path):
    make_step(tmp_path)
    problems, infos = rd.check_step_files(str(tmp_path), 3, ["a", "a"], now=NOW)
    assert codes(problems) == [("a", "missing")]
    assert len(infos) == 1


@pytest.mark.parametrize("kwargs, text", [
    (dict(step=-1), "step must be a step number of 0 or more"),
    (dict(step=True), "step must be a step number"),
    (dict(step="three"), "step must be a step number of 0 or more"),
    (dict(step=[3]), "step must be a step number (e.g. -e step=3 or -e step=2.5), got a list"),
    (dict(folder="../out"), "the step's ramdisk folder must be a name inside the ramdisk root"),
    (dict(folder="/abs"), "the step's ramdisk folder must be a name inside the ramdisk root"),
    (dict(folder="."), "the step's ramdisk folder must be a name inside the ramdisk root"),   # the root itself
    (dict(folder="./"), "the step's ramdisk folder must be a name inside the ramdisk root"),
    (dict(validate_json="yes"), "validate_json must be one of auto, always, never"),
    (dict(max_age=-5), "max_age must be >= 0"),
    (dict(files="a.json"), "files must be a list"),
    (dict(root=""), "root must be a path"),
])
def test_bad_arguments_raise_value_error(tmp_path, kwargs, text):
    args = dict(root=str(tmp_path), step=3, files=["a.json"])
    args.update(kwargs)
    with pytest.raises(ValueError) as err:
        rd.check_step_files(**args)
    assert text in str(err.value)


def test_real_time_is_used_when_now_is_not_given(tmp_path):
    make_step(tmp_path, files={"a.json": "{}"}, mtime=time.time() - 30)
    problems, infos = rd.check_step_files(str(tmp_path), 3, ["a.json"], max_age=3600)
    assert problems == []
    assert 25 < infos[0]["age_s"] < 600


# --------------------------------------------------------------------------------------------
# check_input_files


def test_input_files(tmp_path):
    good = tmp_path / "seeds.bin"
    good.write_bytes(b"1234")
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    bad = tmp_path / "conf.json"
    bad.write_text("{,}")
    for path in (good, empty, bad):
        os.utime(str(path), (NOW - 5, NOW - 5))
    paths = [str(good), "relative/seeds.bin", str(tmp_path / "nope"), str(empty), str(tmp_path), str(bad)]
    problems, infos = rd.check_input_files(paths, now=NOW)
    assert codes(problems) == [("relative/seeds.bin", "not_absolute"), (str(tmp_path / "nope"), "missing"),
                               (str(empty), "empty"), (str(tmp_path), "not_regular")]
    assert problems[1]["message"] == "input file %s is missing" % (tmp_path / "nope")
    assert len(infos) == 6 and infos[0]["size"] == 4
    problems, dummy = rd.check_input_files([str(bad)], validate_json="auto", now=NOW)
    assert codes(problems) == [(str(bad), "invalid_json")]
    problems, dummy = rd.check_input_files([str(good)], max_age=1, now=NOW)
    assert codes(problems) == [(str(good), "too_old")]


def test_input_with_nul_byte_is_a_problem_not_a_crash():
    problems, dummy = rd.check_input_files(["/data/a\x00b"])
    assert codes(problems) == [("/data/a\x00b", "missing")]


# --------------------------------------------------------------------------------------------
# check_space

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
25 22 0:21 / /dev rw,nosuid shared:2 - devtmpfs udev rw,size=4096k
27 25 0:23 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs tmpfs rw
40 22 0:40 / {ram} rw,relatime shared:9 - tmpfs ramfs\\040disk rw,size=1048576k
41 22 0:41 / {ram_sub} rw,relatime master:3 - tmpfs none rw
"""


def write_mountinfo(tmp_path, **mounts):
    path = tmp_path / "mountinfo"
    path.write_text(MOUNTINFO.format(**mounts))
    return str(path)


def test_parse_mountinfo_decodes_escapes_and_optional_fields():
    mounts = _mounts.parse_mountinfo(MOUNTINFO.format(ram="/mnt/my\\040ram\\011x\\134y", ram_sub="/x"))
    assert mounts[0] == {"mount_id": 22, "parent_id": 1, "mount_point": "/", "fstype": "ext4", "source": "/dev/sda1",
                         "read_only": False, "noexec": False}
    assert mounts[3] == {"mount_id": 40, "parent_id": 22, "mount_point": "/mnt/my ram\tx\\y", "fstype": "tmpfs",
                         "source": "ramfs disk", "read_only": False, "noexec": False}
    assert _mounts.find_mount("/dev/shm/prng", mounts)["mount_point"] == "/dev/shm"
    assert _mounts.find_mount("/dev/shmx", mounts)["mount_point"] == "/dev"  # a prefix by component, not by text
    assert _mounts.find_mount("/mnt/my ram\tx\\y/step3", mounts)["fstype"] == "tmpfs"
    assert _mounts.find_mount("/home/x", mounts)["fstype"] == "ext4"


def test_later_mount_on_the_same_point_wins():
    text = ("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n2 1 0:5 / /data rw - ext4 /dev/sdb1 rw\n"
            "3 1 0:6 / /data rw - tmpfs tmpfs rw\n")
    assert _mounts.find_mount("/data/x", _mounts.parse_mountinfo(text))["fstype"] == "tmpfs"


def test_check_space_on_a_tmpfs_mount_with_an_escaped_name(tmp_path):
    ram = tmp_path / "my ram"
    ram.mkdir()
    info_path = write_mountinfo(tmp_path, ram=str(ram).replace(" ", "\\040"), ram_sub="/unused")
    problems, info = rd.check_space(str(ram / "."), mountinfo_path=info_path)
    assert problems == []
    assert info["fstype"] == "tmpfs"
    assert info["mount_point"] == str(ram)
    assert info["source"] == "ramfs disk"
    vfs = os.statvfs(str(ram))
    assert info["total_bytes"] == vfs.f_blocks * vfs.f_frsize
    assert info["free_bytes"] > 0


def test_check_space_not_tmpfs(tmp_path):
    info_path = write_mountinfo(tmp_path, ram="/mnt/ram", ram_sub="/mnt/ram/sub")
    problems, info = rd.check_space(str(tmp_path), mountinfo_path=info_path)
    assert [p["problem"] for p in problems] == ["not_tmpfs"]
    assert problems[0]["message"] == "%s is on ext4 (mounted at /), not on a tmpfs ramdisk" % tmp_path
    assert rd.check_space(str(tmp_path), require_tmpfs=False, mountinfo_path=info_path)[0] == []


def test_check_space_follows_a_symlinked_root_to_its_mount(tmp_path):
    ram = tmp_path / "ram"
    ram.mkdir()
    os.symlink(str(ram), str(tmp_path / "link"))
    info_path = write_mountinfo(tmp_path, ram=str(ram), ram_sub="/unused")
    problems, info = rd.check_space(str(tmp_path / "link"), mountinfo_path=info_path)
    assert problems == []
    assert info["realpath"] == str(ram)


def test_check_space_missing_root_and_unreadable_mountinfo(tmp_path):
    problems, info = rd.check_space(str(tmp_path / "nope"))
    assert [p["problem"] for p in problems] == ["missing_root"]
    assert problems[0]["message"] == "ramdisk root %s does not exist" % (tmp_path / "nope")
    problems, info = rd.check_space(str(tmp_path), mountinfo_path=str(tmp_path / "no-mountinfo"))
    assert [p["problem"] for p in problems] == ["not_tmpfs"]
    assert "cannot tell whether" in problems[0]["message"]
    assert "No such file" in problems[0]["message"]


def test_check_space_low_space(tmp_path, mocker):
    info_path = write_mountinfo(tmp_path, ram=str(tmp_path), ram_sub="/unused")

    class Vfs(object):
        f_frsize = 4096
        f_blocks = 26214400 // 4096 * 1024  # 25 GiB
        f_bavail = 312 * MIB // 4096  # 312 MiB
        f_files = f_favail = 0  # no inode limit

    mocker.patch.object(rd.os, "statvfs", return_value=Vfs())
    problems, info = rd.check_space(str(tmp_path), min_free_bytes=1024 * MIB, mountinfo_path=info_path)
    assert [p["problem"] for p in problems] == ["low_space"]
    assert problems[0]["message"] == "%s has 312 MiB free (1.2%%), below the 1024 MiB minimum" % tmp_path
    assert info["free_bytes"] == 312 * MIB
    problems, dummy = rd.check_space(str(tmp_path), min_free_percent=5, mountinfo_path=info_path)
    assert problems[0]["message"].endswith("below the 5% minimum")
    problems, dummy = rd.check_space(str(tmp_path), min_free_bytes=2048 * MIB, min_free_percent=2.5,
                                     mountinfo_path=info_path)
    assert problems[0]["message"].endswith("below the 2048 MiB minimum and the 2.5% minimum")
    assert rd.check_space(str(tmp_path), min_free_bytes=300 * MIB, min_free_percent=1,
                          mountinfo_path=info_path)[0] == []


@pytest.mark.parametrize("kwargs, text", [
    (dict(min_free_bytes=-1), "min_free_bytes must be >= 0"),
    (dict(min_free_percent=101), "min_free_percent must be <= 100"),
    (dict(min_free_percent="5"), "min_free_percent must be a number"),
])
def test_check_space_bad_thresholds(tmp_path, kwargs, text):
    with pytest.raises(ValueError) as err:
        rd.check_space(str(tmp_path), **kwargs)
    assert text in str(err.value)


@pytest.fixture
def shm_root():
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm on this machine")
    root = tempfile.mkdtemp(prefix="gpuops-test-%s-" % uuid.uuid4().hex[:8], dir="/dev/shm")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_real_dev_shm_is_a_tmpfs_with_real_free_space(shm_root):
    with open("/proc/self/mountinfo") as handle:
        mount = _mounts.find_mount(os.path.realpath(shm_root), _mounts.parse_mountinfo(handle.read()))
    if mount is None or mount["fstype"] != "tmpfs":
        pytest.skip("/dev/shm is not a tmpfs on this machine")
    problems, info = rd.check_space(shm_root, min_free_bytes=1)
    assert problems == []
    assert info["fstype"] == "tmpfs"
    assert info["mount_point"] == "/dev/shm"
    assert 0 < info["free_bytes"] <= info["total_bytes"]
    problems, info = rd.check_space(shm_root, min_free_bytes=info["total_bytes"] + MIB)
    assert [p["problem"] for p in problems] == ["low_space"]


def test_real_ramdisk_step_folder(shm_root):
    folder = os.path.join(shm_root, "step0")
    os.mkdir(folder)
    with open(os.path.join(folder, "config.json"), "w") as handle:
        json.dump({"seed": 1}, handle)
    problems, infos = rd.check_step_files(shm_root, 0, ["config.json", "train_history.json"])
    assert codes(problems) == [("train_history.json", "missing")]
    assert problems[0]["message"] == "train_history.json is missing from %s/step0/" % shm_root
    assert infos[0]["json_checked"] is True


@pytest.mark.parametrize("step,folder,expected", [
    (2.5, None, "step2.5"), ("2.50", None, "step2.5"), ("03", None, "step3"), (3.0, None, "step3"),
    ("2.5", "stage_2_5", "stage_2_5"), (3, "nested/step3/", "nested/step3"),
])
def test_decimal_steps_and_named_folders(tmp_path, step, folder, expected):
    (tmp_path / expected).mkdir(parents=True)
    (tmp_path / expected / "a.json").write_text("{}")
    problems, infos = rd.check_step_files(str(tmp_path), step, ["a.json"], folder=folder, now=NOW)
    assert problems == [] and infos[0]["path"] == str(tmp_path / expected / "a.json")


def test_a_step_folder_that_links_out_of_the_ramdisk_is_refused(tmp_path):
    elsewhere = tmp_path / "disk" / "step3"
    elsewhere.mkdir(parents=True)
    (elsewhere / "a.json").write_text("{}")
    root = tmp_path / "ramdisk"
    root.mkdir()
    os.symlink(str(elsewhere), str(root / "step3"))
    problems, _infos = rd.check_step_files(str(root), 3, ["a.json"], now=NOW)
    assert codes(problems) == [(None, "escapes_root")]
    assert problems[0]["message"] == "step folder %s/step3/ leads outside the ramdisk root %s/ (to %s)" % (
        root, root, elsewhere)
    # a link that stays inside the root is fine
    os.unlink(str(root / "step3"))
    (root / "real3").mkdir()
    (root / "real3" / "a.json").write_text("{}")
    os.symlink("real3", str(root / "step3"))
    assert rd.check_step_files(str(root), 3, ["a.json"], now=NOW)[0] == []


# --------------------------------------------------------------------------------------------
# hostile names, roots another user controls, read problems, inodes


def test_messages_stay_one_printable_line_whatever_the_names_hold(tmp_path):
    folder = make_step(tmp_path, files={"ok\nnewline.json": "{}"})
    with open(os.path.join(str(folder).encode(), b"bad\xffname"), "w") as handle:
        handle.write("")
    os.symlink("/tmp/evil\ntarget\x1b[2J", str(folder / "link"))
    problems, _infos = rd.check_step_files(str(tmp_path), 3, ["ok\nnewline.json", "gone\nname.json",
                                                              "bad\udcffname", "link"], now=NOW)
    assert codes(problems) == [("gone\nname.json", "missing"), ("bad\udcffname", "empty"), ("link", "escapes_root")]
    assert [p["message"] for p in problems] == [
        "gone\\nname.json is missing from %s/" % folder,
        "bad\\xffname in %s/ is empty (0 bytes)" % folder,
        "link in %s/ leads outside the step folder (to /tmp/evil\\ntarget\\x1b[2J)" % folder]
    assert problems[0]["file"] == "gone\nname.json"   # the name itself, as given, stays in its own field


def test_a_step_folder_that_cannot_be_read_is_a_read_problem_not_missing(tmp_path, mocker):
    make_step(tmp_path, files={"a.json": "{}"})
    step_dir = str(tmp_path / "step3")
    real_stat = os.stat

    def fake_stat(path, *args, **kwargs):   # what a user without search permission on the root gets
        if path == step_dir:
            raise PermissionError(13, "Permission denied", path)
        return real_stat(path, *args, **kwargs)

    mocker.patch.object(rd.os, "stat", side_effect=fake_stat)
    problems, _infos = rd.check_step_files(str(tmp_path), 3, ["a.json"], now=NOW)
    assert codes(problems) == [(None, "unreadable")]
    # every folder above is searchable here: the preflight cannot tell whether the pipeline's user is refused too
    assert problems[0]["message"] == ("cannot tell whether step folder %s/ can be read: the preflight's user root (uid "
                                      "0) is refused (Permission denied); the pipeline's user may not be (required: "
                                      "a.json)" % step_dir)
    assert problems[0]["unknown"] is True


def test_a_root_that_cannot_be_read_is_not_reported_missing(tmp_path, mocker):
    root = str(tmp_path / "prng")
    os.mkdir(root)
    real_stat = os.stat

    def fake_stat(path, *args, **kwargs):
        if path == root:   # a link another user planted in sticky /dev/shm: protected_symlinks refuses it
            raise PermissionError(13, "Permission denied", path)
        return real_stat(path, *args, **kwargs)

    mocker.patch.object(rd.os, "stat", side_effect=fake_stat)
    problems, _info = rd.check_space(root, min_free_bytes=MIB)
    assert [(p["problem"], p["message"], p["unknown"]) for p in problems] == [
        ("unreadable", "cannot tell whether ramdisk root %s can be read: the preflight's user root (uid 0) is refused "
                       "(Permission denied); the pipeline's user may not be" % root, True)]


def test_a_root_that_is_a_file_is_named_as_one(tmp_path):
    (tmp_path / "prng").write_text("x")
    problems, _info = rd.check_space(str(tmp_path / "prng"), min_free_bytes=MIB)
    assert [(p["problem"], p["message"]) for p in problems] == [
        ("missing_root", "ramdisk root %s is a regular file, not a directory" % (tmp_path / "prng"))]


def test_a_root_anyone_can_write_without_sticky_bit_is_unsafe(tmp_path):
    root = tmp_path / "prng"
    root.mkdir()
    os.chmod(str(root), 0o777)
    problems, _info = rd.check_space(str(root), require_tmpfs=False)
    assert [(p["problem"], p["message"]) for p in problems] == [
        ("unsafe_root", "ramdisk root %s is writable by every user (mode 0777, no sticky bit): anyone on the host "
         "can plant or replace step data" % root)]
    os.chmod(str(root), 0o1777)   # /dev/shm's own mode: others cannot touch what is not theirs
    assert rd.check_space(str(root), require_tmpfs=False)[0] == []


def test_a_folder_above_the_root_anyone_can_write_is_unsafe(tmp_path):
    shared = tmp_path / "shared"
    (shared / "prng").mkdir(parents=True)
    os.chmod(str(shared), 0o777)
    problems, _info = rd.check_space(str(shared / "prng"), require_tmpfs=False)
    assert [p["problem"] for p in problems] == ["unsafe_root"]
    assert problems[0]["message"].startswith("%s, above the ramdisk root %s, is writable by every user (mode 0777"
                                             % (shared, shared / "prng"))


def test_a_root_of_another_user_is_not_judged_by_its_owner(tmp_path):
    # the preflight may connect as another user than the pipeline's: an owner rule would warn on every run
    root = tmp_path / "prng"
    root.mkdir(mode=0o755)
    os.chmod(str(root), 0o755)
    if os.geteuid() == 0:
        os.chown(str(root), 4242, 4242)
    assert rd.unsafe_root(str(root), os.stat(str(root))) is None


class _Vfs(object):
    f_frsize = 4096
    f_blocks = 1024 * MIB // 4096     # 1 GiB, all free
    f_bavail = 1024 * MIB // 4096

    def __init__(self, files, favail):
        self.f_files, self.f_favail = files, favail


@pytest.mark.parametrize("files, favail, message", [
    (8, 0, "{root} has no inode free (all 8 used): the step cannot create its files there, although 1024 MiB is free"),
    (100000, 900, "{root} has only 900 of 100000 inodes free: the step cannot create its files there, although "
                  "1024 MiB is free"),
    (100000, 1000, None),    # 1 % left: enough
    (0, 0, None),            # tmpfs nr_inodes=0: no limit
])
def test_inodes_exhausted_with_bytes_free(tmp_path, mocker, files, favail, message):
    mocker.patch.object(rd.os, "statvfs", return_value=_Vfs(files, favail))
    problems, info = rd.check_space(str(tmp_path), min_free_bytes=512 * MIB, require_tmpfs=False)
    if message is None:
        assert problems == []
    else:
        assert [(p["problem"], p["message"]) for p in problems] == [("low_inodes", message.format(root=tmp_path))]
    assert info["inodes_free"] == (favail if files else None)
    # no threshold asked: nothing is judged, inodes no more than bytes
    assert rd.check_space(str(tmp_path), require_tmpfs=False)[0] == []


def test_real_dev_shm_reports_its_inodes(shm_root):
    # /dev/shm has inodes to spare: the count is the kernel's
    problems, info = rd.check_space(shm_root, min_free_bytes=0)
    assert "low_inodes" not in [p["problem"] for p in problems]
    vfs = os.statvfs(shm_root)
    assert info["inodes_total"] == (vfs.f_files or None)


def test_a_missing_name_with_wildcards_says_they_are_not_expanded(tmp_path):
    make_step(tmp_path, files={"train_1.json": "{}"})
    problems, dummy = rd.check_step_files(str(tmp_path), 3, ["train_*.json", "plain.json"], now=NOW)
    assert codes(problems) == [("train_*.json", "missing"), ("plain.json", "missing")]
    assert problems[0]["message"].endswith("(names are taken as written: wildcards are not expanded)")
    assert "wildcards" not in problems[1]["message"]


# --------------------------------------------------------------------------------------------
# what statvfs or the mount table cannot tell is unknown, never "0 bytes free" nor a broken ramdisk


class _SizelessVfs(object):
    f_files = f_favail = f_bsize = 0   # no f_bsize to fall back on either (as GNU df does)

    def __init__(self, frsize, blocks, bavail):
        self.f_frsize, self.f_blocks, self.f_bavail = frsize, blocks, bavail


@pytest.mark.parametrize("frsize, blocks, bavail, why", [
    # a tmpfs without a size limit is judged by the host's memory: unknown only when that cannot be read
    (4096, 0, 0, "it is a tmpfs without a size limit (size=0 or nr_blocks=0), so it takes the host's memory, and cannot "
                 "read {meminfo}: No such file or directory"),
    (0, 262144, 262144, "statvfs {root} gives no usable size (fragment size 0, block size 0, 262144 blocks, 262144 "
                        "available): the filesystem does not say how full it is"),
    # more free than the size is garbage, never over 100 % free
    (4096, 262144, 262145, "statvfs {root} gives no usable size (fragment size 4096, block size 0, 262144 blocks, "
                           "262145 available): the filesystem does not say how full it is"),
])
def test_a_size_statvfs_cannot_tell_is_unknown_not_0_bytes_free(tmp_path, mocker, frsize, blocks, bavail, why):
    info_path = write_mountinfo(tmp_path, ram=str(tmp_path), ram_sub="/unused")
    meminfo = str(tmp_path / "no-meminfo")
    mocker.patch.object(rd.os, "statvfs", return_value=_SizelessVfs(frsize, blocks, bavail))
    problems, info = rd.check_space(str(tmp_path), min_free_bytes=1024 * MIB, mountinfo_path=info_path,
                                    meminfo_path=meminfo)
    message = "cannot tell the free space of %s: %s" % (tmp_path, why.format(meminfo=meminfo,
                                                                             root=os.path.realpath(str(tmp_path))))
    assert [(p["problem"], p["message"], p.get("unknown")) for p in problems] == [("low_space", message, True)]
    assert (info["total_bytes"], info["free_bytes"], info["free_percent"]) == (None, None, None)
    assert info["note"] == message
    # no threshold asked: nothing judged, the figures are still not made up
    problems, info = rd.check_space(str(tmp_path), mountinfo_path=info_path, meminfo_path=meminfo)
    assert problems == [] and info["free_bytes"] is None


def test_an_unreadable_mount_table_is_unknown_not_a_failed_ramdisk(tmp_path):
    problems, dummy = rd.check_space(str(tmp_path), mountinfo_path=str(tmp_path / "no-mountinfo"))
    assert [(p["problem"], p.get("unknown")) for p in problems] == [("not_tmpfs", True)]
    # an ext4 the table does show is a real finding, not an unknown one
    info_path = write_mountinfo(tmp_path, ram="/mnt/ram", ram_sub="/mnt/ram/sub")
    problems, dummy = rd.check_space(str(tmp_path), mountinfo_path=info_path)
    assert [(p["problem"], p.get("unknown")) for p in problems] == [("not_tmpfs", None)]


def test_the_preflight_space_check_says_unknown_for_what_it_could_not_tell(tmp_path, mocker):
    from ansible_collections.gpuops.preflight.plugins.module_utils import _preflight
    from ansible_collections.gpuops.preflight.plugins.module_utils._host_runner import Context
    mocker.patch.object(rd.os, "statvfs", return_value=_SizelessVfs(4096, 0, 0))
    info_path = write_mountinfo(tmp_path, ram=str(tmp_path), ram_sub="/unused")
    ctx = Context(_preflight.FAMILY, None, {}, ["ramdisk_space"], {})
    ctx.values["space"] = rd.check_space(str(tmp_path), min_free_bytes=MIB, mountinfo_path=info_path,
                                         meminfo_path=str(tmp_path / "no-meminfo"))
    spec = _preflight.FAMILY.checks["ramdisk_space"]
    problems, text, dummy = spec.evaluate(ctx, spec)
    assert [p["status"] for p in problems] == ["unknown"]
    assert text == "%s: free space unknown (tmpfs)" % tmp_path


def test_a_read_only_ramdisk_is_a_problem(tmp_path):
    text = ("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
            "2 1 0:5 / %s ro,nosuid,nodev,noexec shared:7 - tmpfs tmpfs rw,size=65536k\n" % tmp_path)
    path = tmp_path / "mountinfo"
    path.write_text(text)
    problems, info = rd.check_space(str(tmp_path), mountinfo_path=str(path))
    assert [(p["problem"], p["message"]) for p in problems] == [
        ("read_only", "%s is on a read-only mount (%s): the step cannot write there" % (tmp_path, tmp_path))]
    assert info["read_only"] is True
    assert _mounts.parse_mountinfo(text)[1]["read_only"] is True
    assert _mounts.parse_mountinfo(text)[0]["read_only"] is False


def test_a_super_block_mounted_read_only_is_read_only_too():
    # the per-mount options say rw, the file system's own (after the source) say ro
    text = "2 1 0:5 / /dev/shm rw,nosuid shared:7 - tmpfs tmpfs ro,size=65536k\n"
    assert _mounts.parse_mountinfo(text)[0]["read_only"] is True


def test_a_mount_point_with_a_character_python_reads_as_a_line_break_is_one_mount():
    # the kernel escapes only space, tab, newline and backslash: a form feed, \x1c or U+2028 in a name stays raw,
    # and str.splitlines() would cut the line there and lose the mount
    for odd in ("\x0c", "\x1c", "\u2028", "\x85"):
        text = ("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
                "2 1 0:5 / /dev/shm rw - tmpfs tmpfs rw\n"
                "3 2 8:2 / /dev/shm/a%sb rw - ext4 /dev/sdb1 rw\n" % odd)
        mounts = _mounts.parse_mountinfo(text)
        assert [m["mount_point"] for m in mounts] == ["/", "/dev/shm", "/dev/shm/a%sb" % odd]
        assert _mounts.find_mount("/dev/shm/a%sb/step3" % odd, mounts)["fstype"] == "ext4"


def test_a_mount_hidden_by_a_later_mount_on_a_folder_above_it_does_not_hold_the_path():
    # /dev/shm/prng was an ext4 mount; then a fresh tmpfs was mounted over /dev/shm (a container runtime, a
    # remount by hand): the path now lies in the new tmpfs, the ext4 below it is out of reach
    text = ("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
            "27 1 0:23 / /dev/shm rw - tmpfs tmpfs rw\n"
            "40 27 8:2 / /dev/shm/prng rw - ext4 /dev/sdb1 rw\n"
            "50 27 0:60 / /dev/shm rw - tmpfs shm rw,size=65536k\n")
    mounts = _mounts.parse_mountinfo(text)
    assert _mounts.find_mount("/dev/shm/prng/step3", mounts)["source"] == "shm"
    # the other way round: a tmpfs stacked on the ext4 at its own point is what holds it
    text = ("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
            "27 1 0:23 / /dev/shm rw - tmpfs tmpfs rw\n"
            "40 27 8:2 / /dev/shm/prng rw - ext4 /dev/sdb1 rw\n"
            "41 40 0:61 / /dev/shm/prng rw - tmpfs ram rw\n"
            "42 41 0:62 / /dev/shm/prng/step3 rw - xfs /dev/sdc1 rw\n")
    mounts = _mounts.parse_mountinfo(text)
    assert _mounts.find_mount("/dev/shm/prng/step2", mounts)["source"] == "ram"
    assert _mounts.find_mount("/dev/shm/prng/step3/x", mounts)["fstype"] == "xfs"
    assert _mounts.find_mount("/dev/shm/other", mounts)["mount_point"] == "/dev/shm"


def test_a_table_listing_mounts_before_the_mount_they_sit_in_still_finds_the_deepest():
    # mountinfo is not in mount order: Fedora's lists /proc and /dev before / (docker's pkg/mount test
    # recordings show it); a later line for a folder above is no hiding mount when the path's mount sits in it
    text = ("17 35 0:5 / /dev rw,nosuid shared:2 - devtmpfs devtmpfs rw,size=8056484k,mode=755\n"
            "20 17 0:16 / /dev/shm rw,nosuid,nodev shared:3 - tmpfs tmpfs rw,seclabel\n"
            "35 1 253:2 / / rw,relatime shared:1 - ext4 /dev/mapper/root rw,seclabel\n")
    mounts = _mounts.parse_mountinfo(text)
    assert _mounts.find_mount("/dev/shm/prng/step3", mounts)["mount_point"] == "/dev/shm"
    assert _mounts.find_mount("/home/x", mounts)["mount_point"] == "/"


# --------------------------------------------------------------------------------------------
# a tmpfs without a size limit takes the host's memory: judged by MemAvailable (real /proc/meminfo recordings)

MEMINFO_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "ramdisk")
AVAILABLE = 8366284 * 1024   # MemAvailable of meminfo_3.14_plus.txt, of MemTotal 16268680 kB


def sizeless_tmpfs(tmp_path, mocker):
    mocker.patch.object(rd.os, "statvfs", return_value=_SizelessVfs(4096, 0, 0))
    return write_mountinfo(tmp_path, ram=str(tmp_path), ram_sub="/unused")


def test_a_tmpfs_without_a_size_limit_is_judged_by_the_memory_the_host_has_available(tmp_path, mocker):
    info_path = sizeless_tmpfs(tmp_path, mocker)
    meminfo = os.path.join(MEMINFO_DIR, "meminfo_3.14_plus.txt")
    problems, info = rd.check_space(str(tmp_path), min_free_bytes=1024 * MIB, mountinfo_path=info_path,
                                    meminfo_path=meminfo)
    assert problems == []
    assert (info["total_bytes"], info["free_bytes"], info["free_percent"]) == (None, AVAILABLE, 51.42)
    assert info["note"] == ("%s is a tmpfs without a size limit (size=0 or nr_blocks=0): its free space is the memory "
                            "the host has available (MemAvailable in %s)" % (tmp_path, meminfo))
    problems, _info = rd.check_space(str(tmp_path), min_free_bytes=10000 * MIB, min_free_percent=60,
                                     mountinfo_path=info_path, meminfo_path=meminfo)
    assert [(p["problem"], p.get("unknown"), p["message"]) for p in problems] == [
        ("low_space", None, "%s has no size limit, and the host has 8170.1 MiB of memory available (51.4%% of its "
                            "memory), below the 10000 MiB minimum and the 60%% minimum" % tmp_path)]


def test_a_tmpfs_without_a_size_limit_on_a_kernel_without_memavailable_is_unknown(tmp_path, mocker):
    info_path = sizeless_tmpfs(tmp_path, mocker)
    meminfo = os.path.join(MEMINFO_DIR, "meminfo_before_3.14.txt")
    problems, info = rd.check_space(str(tmp_path), min_free_bytes=MIB, mountinfo_path=info_path, meminfo_path=meminfo)
    # MemFree + Cached would count the tmpfs's own pages as free: no guess
    assert [(p["problem"], p.get("unknown"), p["message"]) for p in problems] == [
        ("low_space", True, "cannot tell the free space of %s: it is a tmpfs without a size limit (size=0 or "
                            "nr_blocks=0), so it takes the host's memory, and %s has no MemAvailable line"
                            % (tmp_path, meminfo))]
    assert info["free_bytes"] is None


def test_the_preflight_space_check_passes_a_sizeless_tmpfs_with_memory_to_spare(tmp_path, mocker):
    from ansible_collections.gpuops.preflight.plugins.module_utils import _preflight
    from ansible_collections.gpuops.preflight.plugins.module_utils._host_runner import Context
    info_path = sizeless_tmpfs(tmp_path, mocker)
    ctx = Context(_preflight.FAMILY, None, {}, ["ramdisk_space"], {})
    ctx.values["space"] = rd.check_space(str(tmp_path), min_free_bytes=MIB, mountinfo_path=info_path,
                                         meminfo_path=os.path.join(MEMINFO_DIR, "meminfo_3.14_plus.txt"))
    spec = _preflight.FAMILY.checks["ramdisk_space"]
    problems, text, _details = spec.evaluate(ctx, spec)
    assert problems == [] and text == "%s: 8.0 GiB free (tmpfs)" % tmp_path


def test_noexec_is_reported_not_judged(tmp_path):
    # Docker mounts /dev/shm noexec by default; the step reads its data there and runs nothing from it
    path = tmp_path / "mountinfo"
    path.write_text("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
                    "2 1 0:5 / %s rw,nosuid,nodev,noexec,relatime - tmpfs shm rw,size=65536k\n" % tmp_path)
    problems, info = rd.check_space(str(tmp_path), mountinfo_path=str(path))
    assert problems == [] and info["noexec"] is True
    assert [m["noexec"] for m in _mounts.parse_mountinfo(path.read_text())] == [False, True]


def test_more_free_inodes_than_inodes_is_unknown_not_plenty(tmp_path, mocker):
    mocker.patch.object(rd.os, "statvfs", return_value=_Vfs(1000, 5000))
    problems, info = rd.check_space(str(tmp_path), min_free_bytes=MIB, require_tmpfs=False)
    assert [(p["problem"], p.get("unknown"), p["message"]) for p in problems] == [
        ("low_inodes", True, "cannot tell the free inodes of %s: statvfs gives more free inodes (f_favail 5000) than "
                             "the file system has (f_files 1000)" % tmp_path)]
    assert (info["inodes_total"], info["inodes_free"]) == (None, None)


def test_a_ramfs_root_is_judged_by_the_memory_the_host_has_available_too(tmp_path, mocker):
    # a ramfs never has a size (statvfs f_blocks 0): like a size-less tmpfs, it takes the host's memory
    mocker.patch.object(rd.os, "statvfs", return_value=_SizelessVfs(4096, 0, 0))
    path = tmp_path / "mountinfo"
    path.write_text("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n2 1 0:50 / %s rw,relatime - ramfs ramfs rw\n" % tmp_path)
    meminfo = os.path.join(MEMINFO_DIR, "meminfo_3.14_plus.txt")
    problems, info = rd.check_space(str(tmp_path), min_free_bytes=10000 * MIB, require_tmpfs=False,
                                    mountinfo_path=str(path), meminfo_path=meminfo)
    assert [(p["problem"], p.get("unknown"), p["message"]) for p in problems] == [
        ("low_space", None, "%s has no size limit, and the host has 8170.1 MiB of memory available (51.4%% of its "
                            "memory), below the 10000 MiB minimum" % tmp_path)]
    assert info["note"] == ("%s is on a ramfs, which has no size limit: its free space is the memory the host has "
                            "available (MemAvailable in %s)" % (tmp_path, meminfo))
    assert info["free_bytes"] == AVAILABLE
