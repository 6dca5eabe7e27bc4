"""The training host's resource and daemon checks on odd hosts: impossible /proc/meminfo, cgroup limits, statvfs
without a fragment size or that never answers, paths that do not exist yet, ACLs, garbage PID files, PID
namespaces, stopped daemons, status files read mid-rewrite, LXCFS uptime. Real /proc samples are in
tests/fixtures/training/proc (sources in tests/fixtures/training/SOURCES.md)."""

from __future__ import annotations

import functools
import os
import pwd
import signal
import struct
import threading
import time

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _memory
from ansible_collections.gpuops.preflight.plugins.module_utils import _training_checks as tc
from ansible_collections.gpuops.preflight.plugins.module_utils import _training_progress as tp
from simserve.fixtures import open_tmp  # noqa: F401  # pylint: disable=unused-import

from .fixtures import TRAINING

NOW = 1767225600.0
FIX = "the check's own suggested fix"
PROC = os.path.join(TRAINING, "proc")
evaluate_memory = functools.partial(tc.evaluate_memory, fix=FIX)


def proc_sample(name):
    with open(os.path.join(PROC, name), encoding="utf-8") as handle:
        return handle.read()


def write(path, text):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), "w", encoding="utf-8") as handle:
        handle.write(text)
    return str(path)


# -- memory: /proc/meminfo that cannot be believed -----------------------------------------------

@pytest.mark.parametrize("name, available_kb, total_kb", [
    ("meminfo_coroot_64g_host.txt", 23826720, 65871236),
    ("meminfo_marlinraker_32g_zswap.txt", 24552156, 32805556),
    ("meminfo_lxcfs-120_container_4g.txt", 2716972, 4194304),   # LXCFS: Active above MemTotal, not read
])
def test_real_meminfo_samples_parse(name, available_kb, total_kb):
    parsed = _memory.parse_meminfo(proc_sample(name))
    assert parsed == {"available_bytes": available_kb * 1024, "total_bytes": total_kb * 1024, "estimated": False}


@pytest.mark.parametrize("text, words", [
    ("MemTotal: 1000 kB\nMemFree: 10 kB\nMemAvailable: 2000 kB\n", "MemAvailable (2000 kB) is more than MemTotal"),
    ("MemTotal: 1000 kB\nMemFree: -5 kB\nMemAvailable: 20 kB\n", "MemFree is not a number of kB: '-5 kB'"),
    ("MemTotal: 1000 kB\nMemAvailable: lots kB\n", "MemAvailable is not a number of kB: 'lots kB'"),
    ("MemTotal: 1000 MB\nMemAvailable: 20 kB\n", "MemTotal is not a number of kB: '1000 MB'"),
    ("MemTotal: \u0661\u0662 kB\nMemAvailable: 2 kB\n", "MemTotal is not a number of kB"),   # Arabic-Indic digits
    ("MemFree: 10 kB\nMemAvailable: 20 kB\n", "no MemTotal line"),
    ("MemTotal: 0 kB\nMemAvailable: 0 kB\n", "MemTotal is 0"),
    ("MemTotal: 1000 kB\nSwapFree: 10 kB\n", "neither a MemAvailable nor a MemFree line"),
    ("MemTotal: 1000 kB\nMemAvailable: 20 kB\nMemAvailable: 30 kB\n", "MemAvailable appears twice"),
    ("garbage\n\x00", "no MemTotal line"),
    ("", "no MemTotal line"),
])
def test_impossible_meminfo_is_refused_naming_the_problem(text, words):
    with pytest.raises(ValueError) as err:
        _memory.parse_meminfo(text)
    assert words in str(err.value)


@pytest.mark.parametrize("text", [
    "MemTotal: 1000 kB\nMemFree: 10 kB\nMemAvailable: 2000 kB\n",
    "MemTotal: 1000 kB\nMemFree: -5 kB\nMemAvailable: 20 kB\n",
    "MemFree: 10 kB\nMemAvailable: 20000000 kB\n",
])
def test_the_memory_check_is_unknown_on_an_impossible_meminfo(tmp_path, text):
    ctx = tc.settings(str(tmp_path), meminfo=write(tmp_path / "meminfo", text), cgroup_root="none")
    problems, ok_text, details = evaluate_memory(tc.collect_memory(ctx), min_available_bytes=0)
    assert [p["status"] for p in problems] == ["unknown"] and ok_text is None
    assert problems[0]["message"].startswith("memory not judged: %s cannot be believed: " % ctx["meminfo"])


def test_an_estimate_never_exceeds_the_total():
    parsed = _memory.parse_meminfo("MemTotal: 1000 kB\nMemFree: 600 kB\nBuffers: 300 kB\nCached: 400 kB\n")
    assert parsed["estimated"] and parsed["available_bytes"] == 1000 * 1024


# -- memory: a cgroup limit below MemAvailable is the figure judged -------------------------------

def _host(tmp_path, cgroup_line, files, meminfo="meminfo_coroot_64g_host.txt"):
    proc = tmp_path / "proc"
    write(proc / "self" / "cgroup", cgroup_line)
    for rel, text in files.items():
        write(tmp_path / "cgroup" / rel, text)
    os.makedirs(str(tmp_path / "cgroup"), exist_ok=True)
    return tc.settings(str(tmp_path), meminfo=os.path.join(PROC, meminfo), proc_root=str(proc),
                       cgroup_root=str(tmp_path / "cgroup"))


GIB = 1024 ** 3


def test_cgroup_v2_limit_in_a_container_namespace(tmp_path):
    # a container with its own cgroup namespace: /proc/self/cgroup says "0::/", the mount is its cgroup
    ctx = _host(tmp_path, "0::/\n", {"memory.max": "%d\n" % (8 * GIB), "memory.current": "%d\n" % (6 * GIB),
                                     "memory.stat": "anon 5368709120\ninactive_file %d\n" % (GIB // 2)})
    memory = tc.collect_memory(ctx)
    assert memory["available_bytes"] == int(2.5 * GIB) and memory["cgroup"]["version"] == "v2"
    problems, _ok, details = evaluate_memory(memory, min_available_bytes=4 * 1000 ** 3)
    assert [p["status"] for p in problems] == ["warn"] and details["cgroup_limit_bytes"] == 8 * GIB
    assert "under the cgroup limit of 8.6 GB (%s" % os.path.join(ctx["cgroup_root"], "memory.max") \
        in problems[0]["message"]


def test_cgroup_v2_limit_of_a_parent_and_a_nested_path(tmp_path):
    ctx = _host(tmp_path, "0::/system.slice/training.service\n", {
        "system.slice/memory.max": "%d\n" % (3 * GIB), "system.slice/memory.current": "%d\n" % GIB,
        "system.slice/training.service/memory.max": "max\n",
        "system.slice/training.service/memory.current": "%d\n" % GIB})
    memory = tc.collect_memory(ctx)
    assert memory["available_bytes"] == 2 * GIB
    assert memory["cgroup"]["path"] == os.path.join(ctx["cgroup_root"], "system.slice", "memory.max")


def test_the_daemons_cgroup_is_judged_not_the_ssh_sessions(tmp_path):
    ctx = _host(tmp_path, "0::/user.slice/user-0.slice/session-1.scope\n", {
        "user.slice/memory.max": "%d\n" % GIB, "user.slice/memory.current": "%d\n" % (GIB // 2),
        "user.slice/user-0.slice/session-1.scope/memory.current": "1\n",
        "system.slice/training.service/memory.max": "%d\n" % (8 * GIB),
        "system.slice/training.service/memory.current": "%d\n" % (2 * GIB)})
    write(tmp_path / "proc" / "4242" / "cgroup", "0::/system.slice/training.service\n")
    memory = tc.collect_memory(dict(ctx, daemon={"alive": True, "pid": 4242}))
    assert memory["available_bytes"] == 6 * GIB and memory["cgroup"]["pid"] == 4242
    assert "the cgroup of the daemon, PID 4242" in evaluate_memory(memory, min_available_bytes=10 ** 12)[0][0]["message"]
    # no daemon (or its cgroup cannot be read): this check's own cgroup
    assert tc.collect_memory(dict(ctx, daemon={"alive": False, "pid": None}))["available_bytes"] == GIB // 2
    assert tc.collect_memory(dict(ctx, daemon={"alive": True, "pid": 999}))["cgroup"]["pid"] == "self"


def test_cgroup_v1_limit(tmp_path):
    ctx = _host(tmp_path, "12:pids:/docker/abc\n4:memory:/docker/abc\n1:name=systemd:/docker/abc\n", {
        "memory/memory.limit_in_bytes": "%d\n" % (2 * GIB), "memory/memory.usage_in_bytes": "%d\n" % GIB,
        "memory/memory.stat": "cache 0\ntotal_inactive_file 0\n"})
    memory = tc.collect_memory(ctx)
    assert memory["available_bytes"] == GIB and memory["cgroup"]["version"] == "v1"


def test_no_cgroup_limit_or_a_higher_one_leaves_meminfo(tmp_path):
    v1_unlimited = "9223372036854771712\n"
    ctx = _host(tmp_path, "4:memory:/\n", {"memory/memory.limit_in_bytes": v1_unlimited,
                                           "memory/memory.usage_in_bytes": "%d\n" % GIB})
    memory = tc.collect_memory(ctx)
    assert memory["available_bytes"] == 23826720 * 1024 and memory["cgroup"] is None
    ctx = _host(tmp_path, "0::/\n", {"memory.max": "max\n", "memory.current": "1\n"})
    assert tc.collect_memory(ctx)["available_bytes"] == 23826720 * 1024


def test_a_cgroup_limit_file_with_garbage_makes_memory_unknown(tmp_path):
    ctx = _host(tmp_path, "0::/\n", {"memory.max": "lots\n", "memory.current": "1\n"})
    problems = evaluate_memory(tc.collect_memory(ctx))[0]
    assert [p["status"] for p in problems] == ["unknown"]
    assert "memory.max holds 'lots', not a number of bytes" in problems[0]["message"]


# -- disk: statvfs without a fragment size, without a size, or that never answers ---------------

def _statvfs(frsize, bsize, blocks, bavail):
    # (f_bsize, f_frsize, f_blocks, f_bfree, f_bavail, f_files, f_ffree, f_favail, f_flag, f_namemax)
    return os.statvfs_result((bsize, frsize, blocks, bavail, bavail, 100, 50, 50, 0, 255))


def test_a_zero_fragment_size_falls_back_to_the_block_size(tmp_path, monkeypatch):
    monkeypatch.setattr(tc.os, "statvfs", lambda path: _statvfs(0, 4096, 25000000, 24000000))
    disk = tc.collect_disk(tc.settings(str(tmp_path)))
    assert disk == {"path": str(tmp_path), "free_bytes": 24000000 * 4096, "total_bytes": 25000000 * 4096,
                    "error": None}
    problems, ok_text, _details = tc.evaluate_disk_space(disk, fix=FIX)
    assert problems == [] and ok_text.startswith("98.3 GB free")


@pytest.mark.parametrize("result", [_statvfs(0, 0, 1000, 10), _statvfs(4096, 4096, 0, 0), _statvfs(512, 512, 10, 20)])
def test_a_filesystem_that_gives_no_usable_size_is_unknown(tmp_path, monkeypatch, result):
    monkeypatch.setattr(tc.os, "statvfs", lambda path: result)
    problems = tc.evaluate_disk_space(tc.collect_disk(tc.settings(str(tmp_path))), fix=FIX)[0]
    assert [p["status"] for p in problems] == ["unknown"]
    assert "gives no usable size" in problems[0]["message"]


def _run(params):
    from gpuops_preflight.collection import LocalModule
    from ansible_collections.gpuops.preflight.plugins.module_utils import _host_runner
    from ansible_collections.gpuops.preflight.plugins.module_utils import _training_health as th
    return _host_runner.run(th.FAMILY, LocalModule(), params, now=NOW)


def _params(base, checks, **extra):
    from ansible_collections.gpuops.preflight.plugins.module_utils import _training_health as th
    params = dict(th.defaults(), training_base_dir=str(base), checks=list(checks), timeouts={}, gpu_tool="sysfs",
                  kernel_log="none", cgroup_root="none")
    params.update(extra)
    return params


@pytest.mark.parametrize("call, check, words", [
    ("statvfs", "disk_space", "statvfs"),
    ("lstat", "layout", "looking at the required folders and files"),
])
def test_a_hung_mount_is_unknown_saying_the_filesystem_did_not_answer(tmp_path, monkeypatch, call, check, words):
    release = threading.Event()
    real = getattr(os, call)

    def hung(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path)):
            release.wait(30)
        return real(path, *args, **kwargs)
    monkeypatch.setattr(tc.os, call, hung)
    try:
        result = _run(_params(tmp_path, [check], timeouts={check: 1}))
    finally:
        release.set()
    found = result["checks"][check]
    assert found["status"] == "unknown"
    assert found["problems"][0]["message"].startswith(
        "the filesystem of %s did not answer %s (a hung mount?): timed out after 1" % (tmp_path, words))
    assert "hung network or FUSE mount" in found["problems"][0]["fix"]


# -- daemon: garbage PID files, PID namespaces, a stopped daemon -----------------------------------


@pytest.mark.parametrize("content, words", [
    ("", "it is empty"),
    ("\n\n", "it is empty"),
    ("12abc\n", "'12abc' is not a whole number"),
    ("-5\n", "'-5' is not a whole number"),
    ("+7\n", "'+7' is not a whole number"),
    ("\u0661\u0662\n", "is not a whole number"),   # Arabic-Indic 12: int() takes it, no kernel writes it
    ("99999999999999999999999\n", "'99999999999999999999999' is no process ID (PIDs run from 1 to 4194304)"),
    ("4194305\n", "is no process ID"),
    ("0\n", "'0' is no process ID"),
])
def test_a_pid_file_with_garbage_fails_naming_the_text(tmp_path, content, words):
    pid_file = write(tmp_path / ".daemon.pid", content)
    info = tp.daemon_info(pid_file, match="training_daemon")
    assert info["alive"] is False and info["unknown"] is False and info["pid"] is None
    assert info["message"].startswith("PID file %s does not hold a PID: " % pid_file) and words in info["message"]
    problems = tc.evaluate_daemon(info, fix=FIX)[0]
    assert [p["status"] for p in problems] == ["fail"] and words in problems[0]["message"]


def _proc(root, pid, comm, state, cmdline, nspid=None, starttime=100):
    # /proc/<pid>/stat: pid (comm) state ppid pgrp session tty_nr tpgid flags ... starttime (field 22)
    fields = [state, "1", str(pid), str(pid), "0", "-1", "4194560"] + ["0"] * 12 + [str(starttime), "0", "0"]
    write(root / str(pid) / "stat", "%d (%s) %s\n" % (pid, comm, " ".join(fields)))
    write(root / str(pid) / "cmdline", "\0".join(cmdline.split()) + "\0")
    write(root / str(pid) / "status", "Name:\t%s\nState:\t%s\nNSpid:\t%s\n" % (
        comm, state, "\t".join(str(n) for n in (nspid or [pid]))))


@pytest.fixture
def fake_proc(tmp_path):
    root = tmp_path / "proc"
    write(root / "uptime", "5000.00 4000.00\n")
    write(root / "stat", "cpu  1 2 3 4\nbtime %d\n" % int(NOW - 5000))
    return root


def test_a_daemon_in_a_container_is_found_by_its_innermost_pid(tmp_path, fake_proc):
    pid_file = write(tmp_path / ".daemon.pid", "7\n")   # written inside the container: its own PID 7
    _proc(fake_proc, 7, "bash", "S", "/bin/bash")       # PID 7 here: someone else's shell
    _proc(fake_proc, 4242, "python", "S", "python core/training_daemon.py", nspid=[4242, 7])
    info = tp.daemon_info(pid_file, str(fake_proc), NOW, match="training_daemon")
    assert (info["alive"], info["pid"], info["namespace_pid"]) == (True, 4242, 7)
    problems, ok_text, _details = tc.evaluate_daemon(info, fix=FIX)
    assert problems == [] and ok_text.startswith("training daemon pid 4242 (PID 7 in its own PID namespace)")


def test_a_container_pid_not_on_this_host_is_looked_up_too(tmp_path, fake_proc):
    pid_file = write(tmp_path / ".daemon.pid", "1\n")   # the daemon is its container's PID 1
    _proc(fake_proc, 1, "systemd", "S", "/sbin/init")
    _proc(fake_proc, 977, "python", "S", "python core/training_daemon.py", nspid=[977, 1])
    info = tp.daemon_info(pid_file, str(fake_proc), NOW, match="training_daemon")
    assert (info["alive"], info["pid"], info["namespace_pid"]) == (True, 977, 1)


def test_two_container_daemons_with_the_same_inner_pid_are_not_guessed(tmp_path, fake_proc):
    pid_file = write(tmp_path / ".daemon.pid", "7\n")
    _proc(fake_proc, 7, "bash", "S", "/bin/bash")
    _proc(fake_proc, 500, "python", "S", "python core/training_daemon.py", nspid=[500, 7])
    _proc(fake_proc, 600, "python", "S", "python core/training_daemon.py", nspid=[600, 7])
    info = tp.daemon_info(pid_file, str(fake_proc), NOW, match="training_daemon")
    assert info["alive"] is False and info["pid"] == 7 and "not the daemon" in info["message"]


@pytest.mark.parametrize("state, words", [("T", "SIGSTOP"), ("t", "debugger")])
def test_a_stopped_daemon_warns(tmp_path, fake_proc, state, words):
    pid_file = write(tmp_path / ".daemon.pid", "4242\n")
    _proc(fake_proc, 4242, "python", state, "python core/training_daemon.py")
    info = tp.daemon_info(pid_file, str(fake_proc), NOW, match="training_daemon")
    assert info["alive"] is True and info["stopped"] is True
    problems = tc.evaluate_daemon(info, fix=FIX)[0]
    assert [p["status"] for p in problems] == ["warn"]
    assert "is stopped (state %s" % state in problems[0]["message"] and words in problems[0]["message"]
    assert "kill -CONT 4242" in problems[0]["fix"]


# -- progress: a current_step that is no step, a status file read mid-rewrite ---------------------

@pytest.mark.parametrize("step, words", [
    (-5, "current_step -5 in the status file is negative"),
    (-3.0, "current_step -3.0 in the status file is negative"),
    ("-5", "current_step '-5' in the status file is not a step number"),
    (12.5, "current_step 12.5 in the status file is not a step number"),
    ("\u0661\u0662", "is not a step number"),
    (float("nan"), "is not a step number"),
    (True, "is not a step number"),
])
def test_a_current_step_that_is_no_step_makes_the_status_corrupt(step, words):
    result = tp.assess({"current_step": step, "updated_at": NOW - 10}, NOW)
    assert result["reason"] == tp.STATUS_CORRUPT and words in result["message"]


def test_a_status_file_read_mid_rewrite_is_read_again(tmp_path):
    path = write(tmp_path / "training_status.json", "")
    pauses = []

    def rewritten(seconds):   # the daemon finishes writing while the reader waits
        pauses.append(seconds)
        write(path, '{"current_step": 120, "updated_at": %d}' % NOW)
    doc = tp.read_status(path, sleep=rewritten)
    assert not isinstance(doc, tp.StatusError) and doc["current_step"] == 120 and pauses == [tp.REREAD_PAUSE]
    write(path, '{"current_step": 12')   # cut short, then complete
    assert tp.read_status(path, sleep=rewritten)["current_step"] == 120


@pytest.mark.parametrize("content, words", [("", "is empty"), ('{"current_step": 12', "is not valid JSON")])
def test_a_status_file_corrupt_on_both_reads_is_corrupt(tmp_path, content, words):
    path = write(tmp_path / "training_status.json", content)
    pauses = []
    result = tp.read_status(path, sleep=pauses.append)
    assert isinstance(result, tp.StatusError) and result.reason == tp.STATUS_CORRUPT
    assert words in result.message and result.message.endswith("(read twice, 0.25 s apart)") and len(pauses) == 1


def test_a_missing_or_good_status_file_is_read_once(tmp_path):
    pauses = []
    assert tp.read_status(str(tmp_path / "none.json"), sleep=pauses.append).reason == tp.STATUS_MISSING
    path = write(tmp_path / "training_status.json", '{"current_step": 1}')
    assert tp.read_status(path, sleep=pauses.append)["current_step"] == 1 and pauses == []


# -- uptime: LXCFS gives /proc/uptime the container's age; start times count from the host's boot ---

HZ = os.sysconf("SC_CLK_TCK")


def _lxcfs_proc(tmp_path, with_btime, running_for=600.0):
    """A container under LXCFS (lxcfs#191's recorded uptimes): the daemon started ``running_for`` s ago."""
    root = tmp_path / "proc"
    write(root / "uptime", proc_sample("uptime_lxcfs-191_container.txt"))   # 629 s: the container's age
    host_uptime = float(proc_sample("uptime_lxcfs-191_host.txt").split()[0])
    stat_text = proc_sample("stat_coroot_host_truncated.txt")
    stat_text = stat_text.replace("btime 1552305792", "btime %d" % int(NOW - host_uptime)) if with_btime else \
        "\n".join(line for line in stat_text.splitlines() if not line.startswith("btime")) + "\n"
    write(root / "stat", stat_text)
    _proc(root, 4242, "python", "S", "python core/training_daemon.py",
          starttime=int((host_uptime - running_for) * HZ))
    return root


def test_real_uptime_and_btime_samples_read():
    assert float(proc_sample("uptime_coroot_host.txt").split()[0]) == 2659150.03
    assert float(proc_sample("uptime_lxcfs-232_container.txt").split()[0]) < \
        float(proc_sample("uptime_lxcfs-232_host.txt").split()[0])


def test_btime_of_a_real_proc_stat(tmp_path):
    write(tmp_path / "stat", proc_sample("stat_coroot_host_truncated.txt"))
    assert tp.boot_time(str(tmp_path)) == 1552305792.0


def test_a_start_time_counts_from_btime_under_lxcfs(tmp_path):
    root = _lxcfs_proc(tmp_path, with_btime=True)
    started = tp.process_info(4242, str(root), NOW)["started_at"]
    assert abs(started - (NOW - 600)) < 1


def test_without_btime_a_container_uptime_gives_no_start_time_never_now(tmp_path):
    root = _lxcfs_proc(tmp_path, with_btime=False)
    assert tp.process_info(4242, str(root), NOW)["started_at"] is None


def test_a_stall_under_lxcfs_is_not_hidden_as_a_fresh_restart(tmp_path):
    root = _lxcfs_proc(tmp_path, with_btime=True, running_for=3 * 86400 / 100)   # started long before the stall
    pid_file = write(tmp_path / ".daemon.pid", "4242\n")
    os.utime(pid_file, (NOW - 4000, NOW - 4000))
    daemon = tp.daemon_info(pid_file, str(root), NOW, match="training_daemon")
    assert daemon["alive"]
    result = tp.assess({"current_step": 50, "updated_at": NOW - 2000}, NOW, stall_timeout=900, pid_info=daemon)
    assert result["reason"] == tp.STEP_STALL and result["measured_from"] == "updated_at"


def test_a_base_folder_that_cannot_be_looked_at_is_unknown_not_missing(tmp_path, monkeypatch):
    ctx = tc.settings(str(tmp_path / "training"))
    real = os.lstat

    def refused(path, *args, **kwargs):
        if str(path).startswith(ctx["base_dir"]):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)
    monkeypatch.setattr(tc.os, "lstat", refused)
    problems, ok_text, _details = tc.evaluate_layout(tc.collect_layout(ctx), fix=FIX)
    assert [p["status"] for p in problems] == ["unknown"] and ok_text is None
    assert problems[0]["message"] == "training base folder %s cannot be looked at: Permission denied" % ctx["base_dir"]


def test_a_config_this_check_may_not_read_is_unknown_not_invalid(tmp_path, monkeypatch):
    ctx = tc.settings(str(tmp_path))
    write(ctx["config_file"], "{}")
    from ansible_collections.gpuops.preflight.plugins.module_utils import _files
    real = _files.open_regular

    def refused(path, *args, **kwargs):
        if str(path) == ctx["config_file"]:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)
    monkeypatch.setattr(_files, "open_regular", refused)
    problems = tc.evaluate_config(tc.collect_config(ctx), fix=FIX)[0]
    assert [p["status"] for p in problems] == ["unknown"]
    assert problems[0]["message"] == "config not checked: %s cannot be read: Permission denied" % ctx["config_file"]


# -- permissions: paths not there yet, ACLs, supplementary groups, folders on the way ---------------


NOBODY = pwd.getpwnam("nobody")


def _tree(root, base_mode=0o755, base_gid=0, outer_mode=0o755):
    outer = root / "outer"
    base = outer / "training"
    os.makedirs(str(base))
    os.chmod(str(outer), outer_mode)
    os.chown(str(base), 0, base_gid)
    os.chmod(str(base), base_mode)
    return tc.settings(str(base), service_user="nobody", config_file="none", status_file="none", required_dirs=[],
                       required_files=[])


def _permissions(ctx):
    return tc.evaluate_permissions(tc.collect_permissions(ctx), fix=FIX)


def test_a_pid_file_not_there_yet_is_judged_by_its_folder(open_tmp):  # noqa: F811
    ctx = _tree(open_tmp, base_mode=0o777)
    problems, ok_text, _details = _permissions(ctx)
    assert problems == [] and ok_text.endswith("(2 checked)")   # the base, and where the PID file will be
    os.chmod(ctx["base_dir"], 0o755)   # root's: nobody cannot create the PID file there
    problems = _permissions(ctx)[0]
    assert [p["status"] for p in problems] == ["warn", "warn"]
    assert problems[1]["message"] == "service user nobody (uid %d) cannot create %s: it cannot write %s " \
        "(drwxr-xr-x, owner 0:0)" % (NOBODY.pw_uid, ctx["pid_file"], ctx["base_dir"])


def _set_acl(path, entries):
    os.setxattr(path, "system.posix_acl_access",
                struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, i) for t, p, i in entries))


def test_an_acl_that_grants_the_service_user_is_honoured(open_tmp):  # noqa: F811
    ctx = _tree(open_tmp, base_mode=0o770)
    problems = _permissions(ctx)[0]   # the base, once: not again as what blocks the PID file
    assert [p["message"] for p in problems] == ["service user nobody (uid %d) cannot read or write or enter %s "
                                                "(drwxrwx---, owner 0:0)" % (NOBODY.pw_uid, ctx["base_dir"])]
    # user::rwx, user:nobody:rwx, group::rwx, mask::rwx, other::---
    _set_acl(ctx["base_dir"], [(0x01, 7, 0xFFFFFFFF), (0x02, 7, NOBODY.pw_uid), (0x04, 7, 0xFFFFFFFF),
                               (0x10, 7, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF)])
    problems, ok_text, _details = _permissions(ctx)
    assert problems == [] and ok_text.startswith("service user nobody can use every path it needs")


def test_an_acl_mask_that_takes_the_grant_away_is_honoured(open_tmp):  # noqa: F811
    ctx = _tree(open_tmp, base_mode=0o777)
    _set_acl(ctx["base_dir"], [(0x01, 7, 0xFFFFFFFF), (0x02, 7, NOBODY.pw_uid), (0x04, 7, 0xFFFFFFFF),
                               (0x10, 5, 0xFFFFFFFF), (0x20, 7, 0xFFFFFFFF)])   # mask r-x: no write
    problems = _permissions(ctx)[0]
    assert problems and "cannot write %s (drwxr-x" % ctx["base_dir"] in problems[0]["message"]
    assert "+, owner 0:0)" in problems[0]["message"]   # the ACL is shown as ls shows it


def test_supplementary_groups_come_from_getgrouplist(open_tmp, monkeypatch):  # noqa: F811
    ctx = _tree(open_tmp, base_mode=0o770, base_gid=54321)
    assert _permissions(ctx)[0]   # nobody is in no group 54321
    calls = []

    def grouplist(name, gid):
        calls.append((name, gid))
        return [gid, 54321]   # what NSS (LDAP, SSSD) gives: /etc/group need not list it
    monkeypatch.setattr(tc.os, "getgrouplist", grouplist)
    assert tc.resolve_user("nobody")["gids"] == sorted([NOBODY.pw_gid, 54321])
    assert _permissions(ctx)[0] == [] and calls[-1] == ("nobody", NOBODY.pw_gid)


def test_a_folder_above_without_x_blocks_every_path_below(open_tmp):  # noqa: F811
    ctx = _tree(open_tmp, base_mode=0o777, outer_mode=0o700)
    problems = _permissions(ctx)[0]
    outer = os.path.dirname(ctx["base_dir"])
    assert [p["status"] for p in problems] == ["warn"]
    assert problems[0]["message"] == "service user nobody (uid %d) cannot enter %s (drwx------, owner 0:0), so it " \
        "cannot reach %s" % (NOBODY.pw_uid, outer, ctx["base_dir"])
    assert "chmod o+x %s" % outer in problems[0]["fix"]


def test_a_path_that_cannot_be_looked_at_is_unknown_never_ok(tmp_path):
    ctx = tc.settings(str(tmp_path), service_user="0", config_file="none", status_file="none", required_dirs=[],
                      required_files=[])
    permissions = tc.collect_permissions(ctx)
    permissions["entries"][1].update(actual="unknown", error="Permission denied", mode=None)
    problems = tc.evaluate_permissions(permissions, fix=FIX)[0]
    assert [p["status"] for p in problems] == ["unknown"]
    assert "cannot tell whether service user root (uid 0) can use %s" % ctx["pid_file"] in problems[0]["message"]


def test_the_kernel_logs_boot_time_is_btime_under_lxcfs(tmp_path):
    from ansible_collections.gpuops.preflight.plugins.module_utils import _kernel_time
    uptime = write(tmp_path / "proc" / "uptime", proc_sample("uptime_lxcfs-232_container.txt"))
    assert _kernel_time.read_boot_time(uptime, now=NOW) == NOW - 12378.0   # no /proc/stat beside it: the uptime
    write(tmp_path / "proc" / "stat", proc_sample("stat_coroot_host_truncated.txt"))
    assert _kernel_time.read_boot_time(uptime, now=NOW) == 1552305792.0
    # a btime after now is no boot time: the uptime again
    assert _kernel_time.read_boot_time(uptime, now=1552305000.0) == 1552305000.0 - 12378.0


# -- times and users written in digits no clock or kernel writes ------------------------------------

@pytest.mark.parametrize("text", ["\u0661\u0667\u0666\u0667\u0662\u0662\u0665\u0666\u0660\u0660",   # Arabic-Indic
                                  "\u0662\u0660\u0662\u0666-01-15T07:59:18Z", "2026-01-15T\u0660\u0667:59:18Z"])
def test_times_in_other_scripts_digits_are_refused(text):
    from ansible_collections.gpuops.preflight.plugins.module_utils import _timeparse
    with pytest.raises(ValueError):
        _timeparse.parse_time(text, "since")
    with pytest.raises(ValueError):
        tp.parse_stamp(text)


@pytest.mark.parametrize("text", ["1_767_225_600", "inf", "nan", "\u0661\u0662"])
def test_an_updated_at_that_float_alone_would_take_is_no_time(text):
    with pytest.raises(ValueError):
        tp.parse_stamp(text)
    result = tp.assess({"current_step": 5, "updated_at": text}, NOW)
    assert result["reason"] == tp.STATUS_CORRUPT


def test_epoch_text_still_reads():
    assert tp.parse_stamp(" 1767225600.5 ") == 1767225600.5 and tp.parse_stamp("1767225600000") == 1767225600.0
    assert tp.parse_stamp("2026-01-01T00:00:00Z") == 1767225600.0


@pytest.mark.parametrize("user", ["\u0661\u0662", "\u00b2"])
def test_a_service_user_in_other_digits_is_a_name_not_a_uid(user):
    from ansible_collections.gpuops.preflight.plugins.module_utils import _permissions
    assert tc.resolve_user(user)["error"] == "service user %r does not exist" % user
    with pytest.raises(ValueError) as err:
        _permissions.service_identity(user, timeout=None)
    assert str(err.value) == "service user %r does not exist on this host" % user


@pytest.mark.parametrize("value", ["sys/fs/cgroup", "", 5])
def test_cgroup_root_must_be_absolute_or_none(value):
    with pytest.raises(ValueError) as err:
        tc.settings("/srv/training", cgroup_root=value)
    assert "cgroup_root must be an absolute path or 'none'" in str(err.value)
    assert tc.settings("/srv/training", cgroup_root="none")["cgroup_root"] is None


def test_a_stopped_daemon_is_no_stall_and_never_stopped(tmp_path, fake_proc):
    pid_file = write(tmp_path / ".daemon.pid", "4242\n")
    _proc(fake_proc, 4242, "python", "T", "python core/training_daemon.py")
    daemon = tp.daemon_info(pid_file, str(fake_proc), NOW, match="training_daemon")
    result = tp.assess({"current_step": 50, "updated_at": NOW - 5000}, NOW, stall_timeout=900, pid_info=daemon)
    assert (result["reason"], result["status"], result["stalled"]) == (tp.DAEMON_STOPPED, "warn", False)
    assert "is stopped (state T" in result["message"] and "kill -CONT" in result["fix"]


def test_a_stopped_daemon_on_a_simulated_host_warns_once():
    from simtrain import host_set, run_checks
    with host_set() as made:
        host = made.make(scenario="healthy")
        pid = host.proc.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            for _wait in range(500):   # the signal is delivered when the process is next scheduled
                if tp.process_info(pid)["state"] == "T":
                    break
                time.sleep(0.02)
            results = run_checks(host, ["daemon", "progress"])
        finally:
            os.kill(pid, signal.SIGCONT)
    assert results["daemon"]["status"] == "warn" and "is stopped (state T" in results["daemon"]["message"]
    assert results["progress"]["status"] == "ok" and "the training daemon is stopped" in results["progress"]["message"]


def test_a_log_folder_that_cannot_be_listed_is_unknown_not_no_log(tmp_path, monkeypatch):
    from ansible_collections.gpuops.preflight.plugins.module_utils import _crash_log
    logs = tmp_path / "logs"
    os.makedirs(str(logs))
    real = os.listdir

    def refused(path="."):
        if str(path) == str(logs):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)
    monkeypatch.setattr(_crash_log.os, "listdir", refused)
    monkeypatch.setattr(_crash_log.glob, "glob", lambda pattern: [])   # what glob gives for a folder it cannot list
    ctx = tc.settings(str(tmp_path), history_file="none")
    problems, ok_text, _details = tc.evaluate_crash_log(tc.collect_crash_log(ctx), fix=FIX)
    assert [p["status"] for p in problems] == ["unknown"] and ok_text is None
    assert problems[0]["message"] == "log not scanned: cannot list %s for its logs: Permission denied" % logs


# -- the ramdisk's space (preflight): the same statvfs rules, one helper (_files.space) -------------

def _ramdisk_host(tmp_path, fstype):
    ram = tmp_path / "ram"
    ram.mkdir()
    mountinfo = write(tmp_path / "mountinfo", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
                      "40 22 0:40 / %s rw,relatime - %s none rw\n" % (ram, fstype))
    return str(ram), mountinfo


def test_the_ramdisk_space_counts_in_f_bsize_when_f_frsize_is_0(tmp_path, monkeypatch):
    from ansible_collections.gpuops.preflight.plugins.module_utils import _ramdisk
    ram, mountinfo = _ramdisk_host(tmp_path, "fuse.sshfs")
    monkeypatch.setattr(_ramdisk.os, "statvfs", lambda path: _statvfs(0, 4096, 262144, 131072))
    problems, info = _ramdisk.check_space(ram, min_free_bytes=256 * 1024 * 1024, require_tmpfs=False,
                                          mountinfo_path=mountinfo)
    assert problems == [] and info["free_bytes"] == 512 * 1024 * 1024 and info["free_percent"] == 50.0


def test_a_ramdisk_filesystem_without_a_size_cannot_tell(tmp_path, monkeypatch):
    from ansible_collections.gpuops.preflight.plugins.module_utils import _ramdisk
    ram, mountinfo = _ramdisk_host(tmp_path, "fuse.x")
    monkeypatch.setattr(_ramdisk.os, "statvfs", lambda path: _statvfs(0, 0, 0, 0))
    problems, _info = _ramdisk.check_space(ram, min_free_bytes=1, require_tmpfs=False, mountinfo_path=mountinfo)
    assert [p["message"] for p in problems] == ["cannot tell the free space of %s: statvfs %s gives no usable size "
                                                "(fragment size 0, block size 0, 0 blocks, 0 available): the "
                                                "filesystem does not say how full it is" % (ram, ram)]
