"""Verify of the cleanup scenario (pytest-testinfra, podman backend: ``host`` is one container).

After converge + idempotence (gpuops.preflight.cleanup, step 3, run twice) against cleanup-a (two
users) and cleanup-b (one user, GPUs 0 and 5 left at perf level 'manual', cleanup_reset_clocks):
the GPU caches are gone, ~/.config/miopen (the tuned-kernel user db) is kept, the symlinks in
.cache that point out of the home were removed as links and what they point at is intact, nothing
outside the removed caches changed (but the perf levels that were reset and the stand-in rocm-smi's
call log), and both runs wrote their summary on the controller, the second one freeing nothing.
"""

from __future__ import annotations

import hashlib
import os

import pytest
import rigcheck

RIGS = rigcheck.rigs()
RIG_DIR, RAMDISK_DIR = RIGS["rig_dir"], RIGS["ramdisk_dir"]
CALLS_LOG = RIG_DIR + "/rocm-smi.d/calls.log"
MIOPEN_USER_DB = ".config/miopen"


def _targets(name):
    """{home: [cache paths the cleanup must remove]}: simrig's caches but ~/.config/miopen (kept by
    default), and the symlink traps that are not inside one of them (.cache/hip_5678 matches hip_*)."""
    out = {}
    for info in RIGS["hosts"][name]["setup"]["caches"].values():
        caches = [c for c in info["caches"] if c != os.path.join(info["home"], MIOPEN_USER_DB)]
        traps = [t for t in info["traps"] if not any(rigcheck.under(t, c) for c in caches)]
        out[info["home"]] = sorted(caches + traps)
    return out


def _all_targets(name):
    return [t for targets in _targets(name).values() for t in targets]


def _expected_bytes(name):
    """What the cleanup reports freed on a host: lstat sizes of the non-directories under each target."""
    before = rigcheck.flatten(rigcheck.prepared(name))
    return sum(item.get("size", 0) for path, item in before.items()
               if item["type"] != "dir" and any(rigcheck.under(path, t) for t in _all_targets(name)))


@pytest.fixture(scope="module")
def summaries():
    docs = rigcheck.summaries("cleanup")
    assert len(docs) == 2, "expected two cleanup summaries for step 3 (converge, idempotence), found %d" % len(docs)
    return docs


@pytest.fixture
def name(host):
    return rigcheck.name_of(host)


_NOW = {}


@pytest.fixture
def now(host, name):
    """The rig folder and the ramdisk now (prepare recorded the same two); read once per host."""
    if name not in _NOW:
        _NOW[name] = rigcheck.manifest(host, RIG_DIR, RAMDISK_DIR)
    return _NOW[name]


def test_summaries_written_on_the_controller(summaries):
    first, second = summaries
    for doc in summaries:
        assert os.path.dirname(doc["summary_file"]) == rigcheck.ephemeral("summaries")
        assert (doc["schema"], doc["kind"], doc["step"]) == ("gpuops.preflight.summary", "cleanup", 3)
        assert doc["passed"] is True and doc["blocked"] is False
        assert doc["hard_failures"] == [] and doc["warnings"] == []
        assert sorted(doc["hosts"]) == sorted(RIGS["hosts"])
        assert all(entry["status"] == "passed" and entry["reachable"] for entry in doc["hosts"].values())
    assert first["totals"]["bytes_freed"] == sum(_expected_bytes(n) for n in RIGS["hosts"]) > 0
    assert second["totals"]["bytes_freed"] == 0


def test_first_run_removed_exactly_the_caches(summaries, name):
    entry = summaries[0]["hosts"][name]
    caches = entry["caches"]
    assert caches["errors"] == [] and caches["skipped"] == []
    assert sorted(item["path"] for item in caches["removed"]) == sorted(_all_targets(name))
    kinds = {item["path"]: item["kind"] for item in caches["removed"]}
    for info in RIGS["hosts"][name]["setup"]["caches"].values():
        for trap in info["traps"]:
            if trap in kinds:
                assert kinds[trap] == "symlink", trap  # the link, never what it points at
    assert entry["bytes_freed"] == _expected_bytes(name)


def test_second_run_found_nothing_to_do(summaries, name):
    entry = summaries[1]["hosts"][name]
    assert entry["caches"]["removed"] == [] and entry["bytes_freed"] == 0
    if entry.get("clocks"):
        assert entry["clocks"]["changed"] is False


def test_caches_gone(host, name, now):
    paths = rigcheck.flatten(now)
    for home, targets in _targets(name).items():
        for target in targets:
            assert not any(rigcheck.under(p, target) for p in paths), "%s is still there" % target
        assert host.file(home + "/.cache").is_directory
        # Not a GPU cache: kept.
        assert host.file(home + "/.cache/pip/keep-me.txt").content_string == "not a GPU cache\n"


def test_miopen_user_db_kept(host, name, now):
    before, after = rigcheck.flatten(rigcheck.prepared(name)), rigcheck.flatten(now)
    for info in RIGS["hosts"][name]["setup"]["caches"].values():
        db = os.path.join(info["home"], MIOPEN_USER_DB)
        kept = sorted(p for p in before if rigcheck.under(p, db))
        assert len(kept) == 4, kept  # the folder and its three files
        for path in kept:
            assert after.get(path) == before[path], path
        assert host.file(db).is_directory and not host.file(db).is_symlink


def test_symlink_targets_intact(host, name, now):
    before, after = rigcheck.flatten(rigcheck.prepared(name)), rigcheck.flatten(now)
    for info in RIGS["hosts"][name]["setup"]["caches"].values():
        assert not host.file(info["precious_dir"]).is_symlink
        for path, digest in info["precious"].items():
            # What simrig recorded when it made the file, and as prepared (content, size, mtime).
            assert after[path]["type"] == "file" and after[path]["sha256"] == digest, path
            assert after[path] == before[path], path
        # Every trap pointed out of the home into precious_dir.
        for trap in info["traps"]:
            target = os.path.normpath(os.path.join(os.path.dirname(trap), before[trap]["target"]))
            assert target == info["precious_dir"] and not rigcheck.under(target, info["home"])


def test_nothing_outside_the_caches_touched(host, name, now):
    setup = RIGS["hosts"][name]["setup"]
    diff = rigcheck.compare(rigcheck.prepared(name), now)
    removed_ok = [p for p in diff["removed"] if any(rigcheck.under(p, t) for t in _all_targets(name))]
    assert diff["added"] == []
    assert diff["removed"] == removed_ok, "removed outside the caches: %s" % sorted(set(diff["removed"]) - set(removed_ok))
    expected = {CALLS_LOG: ["mtime_ns", "sha256", "size"]}
    for home in _targets(name):
        expected[home + "/.cache"] = ["mtime_ns"]  # entries removed from it
    if setup["reset_clocks"]:
        # `rocm-smi --resetclocks` (no -d) resets EVERY GPU: the stand-in rewrites each perf level
        # file, 'auto' again where it was 'auto' (only the mtime changes) ...
        for path, item in rigcheck.flatten(rigcheck.prepared(name)).items():
            if path.endswith("/power_dpm_force_performance_level"):
                expected[path] = ["mtime_ns"]
        # ... and 'manual' -> 'auto' where it was left at manual.
        for perf in setup["manual_perf"]:
            expected[perf] = ["mtime_ns", "sha256", "size"]
    # Nothing else: not the ramdisk (not the cleanup's business), not sysfs but the reset perf levels,
    # not the homes outside the caches.
    assert diff["changed"] == expected


def test_clocks(host, name):
    setup = RIGS["hosts"][name]["setup"]
    calls = host.file(CALLS_LOG).content_string.splitlines()
    # One GPU-tool query per run (two runs); --resetclocks only where asked and only the first time.
    assert len([c for c in calls if c.endswith("--json")]) == 2, calls
    assert calls.count("--resetclocks") == (1 if setup["reset_clocks"] else 0), calls
    for perf in setup["manual_perf"]:
        assert host.file(perf).content_string == "auto\n"


def test_nothing_else_changed_in_the_container(host, name):
    new = rigcheck.new_in_container(name)
    assert new["deleted"] == []
    assert set(new["added"]) <= rigcheck.ANSIBLE_TRACES, new["added"]
    assert set(new["changed"]) <= rigcheck.ANSIBLE_TRACES, new["changed"]
    assert host.file("/root/.ansible/tmp").listdir() == []


def test_precious_files_are_what_simrig_made(name):
    """The reference digests come from the controller-side rig too (not only from prepare)."""
    rig = RIGS["hosts"][name]["rig"]
    for info in RIGS["hosts"][name]["setup"]["caches"].values():
        for path, digest in info["precious"].items():
            with open(os.path.join(rig, os.path.relpath(path, RIG_DIR)), "rb") as handle:
                assert hashlib.sha256(handle.read()).hexdigest() == digest, path
