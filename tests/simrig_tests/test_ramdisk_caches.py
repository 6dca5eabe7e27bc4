"""Ramdisk step files and their faults; GPU runtime caches with a symlink trap."""

from __future__ import annotations

import json
import os

import pytest

from simrig import DEFAULT_STEPS, Rig
from simrig.rig import on_tmpfs


def test_every_step_file_is_written_where_the_product_looks(rig):
    for step, spec in DEFAULT_STEPS.items():
        for name in spec["ramdisk"]:
            assert os.path.isfile(os.path.join(rig.ramdisk_root, "step%d" % step, name))
        for path in rig.steps[step]["inputs"]:
            assert os.path.isabs(path) and os.path.isfile(path)
            assert path.startswith(rig.inputs_root + os.sep)
    with open(rig.ramdisk_path(3, "train_history.json")) as handle:
        assert "loss" in json.load(handle)
    assert rig.steps[3] == {"ramdisk": ["train_history.json", "holdout_history.json"], "inputs": []}


def test_ramdisk_is_on_a_tmpfs(rig):
    assert on_tmpfs(rig.ramdisk_root)


def test_ramdisk_faults(rig):
    missing = rig.remove_ramdisk_file(3, "holdout_history.json")
    assert not os.path.exists(missing)
    bad = rig.corrupt_json(3, "train_history.json")
    with open(bad) as handle, pytest.raises(ValueError):
        json.load(handle)
    link = rig.symlink_out(1, "run_config.json")
    assert os.path.islink(link)
    target = os.path.realpath(link)
    assert not target.startswith(os.path.realpath(rig.ramdisk_root) + os.sep) and os.path.isfile(target)
    rig.write_ramdisk(3, {"holdout_history.json": "{}"})
    assert os.path.isfile(missing)


def test_flat_layout_and_shm_ramdisk(work):
    rig = Rig.build(str(work), "shm", gpus=1, ramdisk="shm", ramdisk_layout="flat")
    try:
        assert rig.ramdisk_root.startswith("/dev/shm/simrig-shm-") and on_tmpfs(rig.ramdisk_root)
        assert rig.ramdisk_path(3, "x.json") == os.path.join(rig.ramdisk_root, "x.json")
        assert os.path.isfile(os.path.join(rig.ramdisk_root, "train_history.json"))
        assert rig.host_vars()["preflight_ramdisk_root"] == rig.ramdisk_root
    finally:
        rig.destroy()
    assert not os.path.exists(rig.ramdisk_root) and not os.path.exists(rig.path)


def test_input_faults(rig):
    path = rig.remove_input("train.parquet")
    assert path == os.path.join(rig.inputs_root, "train.parquet") and not os.path.exists(path)


def test_cluster_rigs_share_the_inputs(work):
    from simrig import build_cluster
    cluster = build_cluster(str(work), {"a": {"gpus": 1}, "b": {"gpus": 1}})
    assert cluster["a"].steps == cluster["b"].steps
    assert cluster["a"].steps[1]["inputs"][0] == str(work / "inputs" / "train.parquet")


def test_caches_and_symlink_trap(rig):
    info = rig.add_caches("trainer")
    home = rig.home("trainer")
    for rel in (".cache/hip_1234", ".cache/comgr_cache", ".cache/miopen/2.19.0", ".config/miopen"):
        assert os.path.isdir(os.path.join(home, rel)) and os.listdir(os.path.join(home, rel))
    assert sum(os.path.getsize(p) for p in info["files"]) > 16 * 1024
    assert info["traps"]
    for trap in info["traps"]:
        assert os.path.islink(trap) and os.path.realpath(trap) == os.path.realpath(info["precious_dir"])
        assert not os.path.realpath(trap).startswith(os.path.realpath(home) + os.sep)
    assert rig.precious_intact("trainer")
    os.unlink(next(iter(info["precious"])))
    assert not rig.precious_intact("trainer")
    assert rig.host_vars()["cleanup_home_dirs"] == [home]


def test_no_trap_when_not_asked(rig):
    info = rig.add_caches("other", with_symlink_trap=False)
    assert info["traps"] == [] and info["precious"] == {}
    assert rig.home("other") in rig.host_vars()["cleanup_home_dirs"]


def test_rig_off_tmpfs_gets_a_shm_ramdisk_and_cleans_it():
    import shutil
    import tempfile
    base = tempfile.mkdtemp(prefix="simrig-disk-")
    try:
        rig = Rig.build(base, "disk", gpus=1)
        assert on_tmpfs(rig.ramdisk_root)
        if not on_tmpfs(base):
            assert rig.ramdisk_root.startswith("/dev/shm/simrig-disk-")
        again = Rig.build(base, "disk", gpus=1)  # rebuilding removes the old shm folder
        assert not os.path.exists(rig.ramdisk_root) or rig.ramdisk_root == again.ramdisk_root
        again.destroy()
        assert not os.path.exists(again.ramdisk_root)
    finally:
        shutil.rmtree(base, ignore_errors=True)
