"""Fault injection over real SSH: the repository's playbooks against 3 SSH test hosts.

Every test runs the REAL playbooks (``.venv/bin/ansible-playbook``, the repository's ansible.cfg:
pipelining, ControlPersist 60 s, ServerAliveInterval 5 x 2, ``timeout = 10``) against hosts
rig01..rig03 (12-GPU simulated rigs, each behind its own sshd in its own network namespace), and
asserts the exit code and the summary document. The module's cluster is shared; after each test
it is healed (processes killed, mounts gone with them, rigs rebuilt, sshd back, masters closed).

No test asserts on speed: pytest-timeout only guards against hangs.
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from cluster import netns, playbook

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

CLUSTER_HOSTS = 3
CLUSTER_GPUS = 12
STEP = 3
PREFLIGHT_CHECKS = ["gpu_available", "gpu_count", "gpu_health", "gpu_temperature", "inputs", "kernel_log", "ramdisk",
                    "ramdisk_space", "vram"]
CLEANUP_CHECKS = ["caches", "clocks", "gpu_health", "kernel_log", "vram"]
ALL_GPUS = list(range(CLUSTER_GPUS))


# ---------------------------------------------------------------- helpers


def items(summary, host, kind="hard_failures"):
    return [i for i in summary[kind] if i["host"] == host.name]


def assert_healthy(summary, host):
    """The host's preflight result is complete and correct: every check present and ok, all GPUs usable."""
    entry = summary["hosts"][host.name]
    assert entry["address"] == host.address
    assert entry["reachable"] is True
    assert entry["status"] == "passed", entry
    assert sorted(entry["checks"]) == PREFLIGHT_CHECKS
    assert {c: r["status"] for c, r in entry["checks"].items()} == {c: "ok" for c in PREFLIGHT_CHECKS}
    assert entry["gpu_count"] == CLUSTER_GPUS and len(entry["gpus"]) == CLUSTER_GPUS
    assert entry["usable_gpus"] == ALL_GPUS
    assert entry["unverified_gpus"] == []
    assert items(summary, host) == [] and items(summary, host, "warnings") == []


def assert_only_ssh_failure(summary, host):
    """The host is exactly one hard ``ssh`` failure naming it and its address; returns the item."""
    entry = summary["hosts"][host.name]
    assert entry["status"] == "blocked"  # "unreachable" until judged: a hard failure blocks
    assert entry["reachable"] is False
    assert entry["checks"] == {} and entry["usable_gpus"] == []
    hard = items(summary, host)
    assert len(hard) == 1, hard
    item = hard[0]
    assert item["check"] == "ssh" and item["status"] == "fail" and item["address"] == host.address
    assert item["message"].startswith("%s (%s) unreachable: " % (host.name, host.address)), item["message"]
    assert entry["error"] == item["message"]
    assert items(summary, host, "warnings") == []
    return item


def assert_only_sshd(host):
    """Nothing but sshd (the listener and ControlPersist sessions) runs in the host's namespace."""
    names = [(pid, name) for pid, name, _cmdline in host.processes()]
    assert names and all(name == "sshd" for _pid, name in names), host.processes()


def start_playbook(*args, **kwargs):
    """Run a playbook in a thread; returns (thread, result holder)."""
    holder = {}

    def target():
        try:
            holder["run"] = playbook.playbook(*args, **kwargs)
        except BaseException as exc:  # surface it in the test
            holder["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, holder


def wait_for_tool_call(host, thread, seconds=90):
    """Block until the host's stand-in rocm-smi has been called: the module runs there now."""
    calls = os.path.join(host.rig.tool_dir("rocm-smi"), "calls.log")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and thread.is_alive():
        with open(calls) as handle:
            if handle.read().strip():
                return
        time.sleep(0.05)
    pytest.fail("the preflight never reached rocm-smi on %s" % host.name)


def joined(thread, holder, seconds=180):
    thread.join(seconds)
    assert not thread.is_alive(), "ansible-playbook still running after %ss" % seconds
    if "error" in holder:
        raise holder["error"]
    return holder["run"]


# ---------------------------------------------------------------- SSH faults


def test_sshd_killed_before_preflight(testcluster):
    """sshd (and every session) of rig02 dies before the preflight: rig02 is a hard ``ssh`` failure
    ("Connection refused": the namespace is up, nothing listens); rig01 and rig03 are complete."""
    down = testcluster["rig02"]
    down.kill_sshd()
    assert down.banner(timeout=1) is None

    run = playbook.playbook(testcluster.inventory, "preflight", STEP)

    assert run.rc == 2, run.tail()
    summary = run.summary
    assert summary["blocked"] is True and summary["passed"] is False
    item = assert_only_ssh_failure(summary, down)
    # ssh's own words, unless Ansible lost the race to them: it pipes the module into ssh at once, and when
    # ssh has closed its end but not yet exited, Ansible (connection/ssh.py) says only that the data could
    # not be sent. Either way the rig is a hard ssh failure with its address.
    assert ("ssh: connect to host %s port 22: Connection refused" % down.address in item["message"]
            or "Data could not be sent to remote host '%s'" % down.address in item["message"]), item["message"]
    assert len(summary["hard_failures"]) == 1 and summary["warnings"] == []
    for name in ("rig01", "rig03"):
        assert_healthy(summary, testcluster[name])
    totals = summary["totals"]
    assert (totals["hosts"], totals["reachable"], totals["gpus"], totals["usable_gpus"]) == (3, 2, 24, 24)
    assert "Preflight BLOCKED: ssh: rig02 (%s) unreachable" % down.address in run.stdout


def test_sshd_killed_during_preflight(testcluster):
    """rig02's rocm-smi is slowed (30 s); once the module runs there (the stand-in was called), every
    process of rig02 is killed: sshd, the ControlPersist session, the module, the tool.

    Expected, and why: the kernel closes the dead sshd's socket, so the controller's ssh master sees
    the connection close at once; the multiplexed ssh client exits 255, which Ansible treats as a
    connection failure (UNREACHABLE, "Data could not be sent to remote host"), not as a module
    failure. The role's ``ignore_unreachable`` keeps the host in the play and the report judges it as
    the hard ``ssh`` check, naming host and address. The other hosts are complete."""
    victim = testcluster["rig02"]
    victim.rig.set_tool_mode("slow", delay=30)
    thread, holder = start_playbook(testcluster.inventory, "preflight", STEP)
    wait_for_tool_call(victim, thread)
    killed = victim.kill_sshd()
    assert len(killed) >= 3  # listener, session, module (and the tool)
    run = joined(thread, holder)

    assert run.rc == 2, run.tail()
    summary = run.summary
    item = assert_only_ssh_failure(summary, victim)
    assert 'Data could not be sent to remote host "%s"' % victim.address in item["message"]
    assert len(summary["hard_failures"]) == 1 and summary["warnings"] == []
    for name in ("rig01", "rig03"):
        assert_healthy(summary, testcluster[name])
    assert victim.pids() == []


def test_network_cut_during_preflight(testcluster):
    """rig03's cable is pulled while its module runs (eth0 down in its namespace: no RST, no FIN,
    packets vanish). Expected: ansible.cfg's ServerAliveInterval=5 x ServerAliveCountMax=2 makes
    the ssh master give up ("Data could not be sent", exit 255), so rig03 is a hard ``ssh`` failure
    long before the task backstop (host_timeout, 50 s); rig01 and rig02 are complete. On rig03,
    sshd's ClientAliveInterval 2 x ClientAliveCountMax 2 drops the dead session after 4-6 s, which
    closes the module's result pipe: its watchdog stops it and its rocm-smi (1.0 ran them on to
    their own deadlines, 25 s + 2 s)."""
    victim = testcluster["rig03"]
    victim.rig.set_tool_mode("slow", delay=60)
    thread, holder = start_playbook(testcluster.inventory, "preflight", STEP,
                                    extra_vars={"preflight_gpu_tool_timeout": 25})
    wait_for_tool_call(victim, thread)
    victim.cut_network()
    run = joined(thread, holder)

    assert run.rc == 2, run.tail()
    summary = run.summary
    item = assert_only_ssh_failure(summary, victim)
    assert 'Data could not be sent to remote host "%s"' % victim.address in item["message"]
    assert "timed out" not in item["message"]  # not the task backstop: ServerAlive noticed
    for name in ("rig01", "rig02"):
        assert_healthy(summary, testcluster[name])
    # sshd gave the session up before the controller did; the module went with it (2 s of grace).
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and any(name != "sshd" for _pid, name, _cmdline in victim.processes()):
        time.sleep(0.1)
    assert_only_sshd(victim)
    assert victim.unpacked_payloads() == []


@pytest.mark.timeout(120)
def test_host_accepting_tcp_but_silent_fails_at_connect_timeout(testcluster):
    """rig03 accepts TCP on port 22 and never sends a byte (no banner). ssh's ConnectTimeout (ansible
    ``timeout = 10``) also bounds the banner exchange, so the host is a hard ``ssh`` failure
    ("timed out") instead of a hang; rig01 and rig02 are complete. No timing is asserted: the test
    finishing is the point (pytest-timeout guards it)."""
    silent = testcluster["rig03"]
    silent.start_silent_server()
    assert silent.banner(timeout=1) is None  # TCP accepted, nothing said

    run = playbook.playbook(testcluster.inventory, "preflight", STEP, timeout=100)

    assert not run.timed_out and run.rc == 2, run.tail()
    summary = run.summary
    item = assert_only_ssh_failure(summary, silent)
    assert "Connection to %s port 22 timed out" % silent.address in item["message"]
    for name in ("rig01", "rig02"):
        assert_healthy(summary, testcluster[name])


def test_login_refused_and_changed_host_key_are_named_with_what_to_do(testcluster, tmp_path):
    """rig01 is offered a key it does not authorize (the wrong ansible_ssh_private_key_file); rig02's entry
    in known_hosts holds another key than the one it presents (a reinstalled host, or someone else at its
    address), with StrictHostKeyChecking=yes. Both are hard ``ssh`` failures that say which (login refused,
    host key changed, the old key's file and line) and whose fix is about the key, not about the host
    being down; rig03 is complete."""
    rig01, rig02, rig03 = (testcluster[n] for n in ("rig01", "rig02", "rig03"))
    stranger = str(tmp_path / "stranger")
    netns.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", stranger])
    with open(stranger + ".pub") as handle:
        key_type, key = handle.read().split()[:2]
    known_hosts = str(tmp_path / "known_hosts")
    with open(testcluster.known_hosts) as handle:
        entries = handle.read().splitlines()
    line = [i for i, entry in enumerate(entries) if entry.startswith(rig02.address + " ")][0] + 1
    entries[line - 1] = "%s %s %s" % (rig02.address, key_type, key)
    with open(known_hosts, "w") as handle:
        handle.write("\n".join(entries) + "\n")
    common_args = " ".join(testcluster.ssh_options()).replace(testcluster.known_hosts, known_hosts)
    inventory = testcluster.write_inventory(str(tmp_path / "inventory.yml"), host_overrides={
        "rig01": {"ansible_ssh_private_key_file": stranger}, "rig02": {"ansible_ssh_common_args": common_args}})

    run = playbook.playbook(inventory, "preflight", STEP)

    assert run.rc == 2, run.tail()
    summary = run.summary
    refused = assert_only_ssh_failure(summary, rig01)
    assert refused["message"] == "rig01 (%s) unreachable: SSH login refused (root@%s: Permission denied (publickey))" % (
        rig01.address, rig01.address)
    assert "ansible_user and ansible_ssh_private_key_file" in refused["fix"]
    changed = assert_only_ssh_failure(summary, rig02)
    assert changed["message"] == ("rig02 (%s) unreachable: Host key verification failed: its SSH host key is not the "
                                  "one known_hosts holds (the old key: %s line %d)" % (rig02.address, known_hosts, line))
    assert "ssh-keygen -R %s" % rig02.address in changed["fix"] and "man-in-the-middle" in changed["fix"]
    assert_healthy(summary, rig03)
    assert "Preflight BLOCKED: ssh: rig02 (%s) unreachable: Host key verification failed" % rig02.address in run.stdout


def test_full_remote_temp_folder_is_a_probe_failure_that_names_it(testcluster):
    """With pipelining (the repository's ansible.cfg) AnsiballZ writes each module's payload into the host's
    temp folder ($TMPDIR, here the host's own folder; else /tmp), not ~/.ansible/tmp. rig02's temp folder is
    a 1 MiB tmpfs: filled to the last block, Python's tempfile passes it over (/tmp has room) and rig02 is
    complete; with 100 KiB left the payload does not fit (ENOSPC): rig02 is a hard ``probe`` failure that
    says the module could not start for want of temp space, and what to free, never a hardware verdict.
    The wrapper removes its half-written folder; nothing but sshd is left on rig02."""
    rig02 = testcluster["rig02"]
    temp = rig02.temp_dir
    rig02.mount_tmpfs(temp, size="1m")
    try:
        filler = rig02.fill(temp)
        assert rig02.exec(["df", "--output=avail", temp]).stdout.split()[-1] == "0"
        full = playbook.playbook(testcluster.inventory, "preflight", STEP)
        rig02.exec(["truncate", "-s", "-100K", filler])
        short = playbook.playbook(testcluster.inventory, "preflight", STEP)
        left = rig02.exec(["ls", "-A", temp]).stdout.split()
    finally:
        rig02.umount(temp)
    assert temp not in rig02.mounts()

    assert full.rc == 0, full.tail()
    for host in testcluster.hosts:
        assert_healthy(full.summary, host)

    assert short.rc == 2, short.tail()
    summary = short.summary
    entry = summary["hosts"]["rig02"]
    assert entry["status"] == "blocked" and entry["reachable"] is True and entry["checks"] == {}
    assert [(i["check"], i["status"], i["message"]) for i in items(summary, rig02)] == [
        ("probe", "fail", "rig02 (%s): the preflight module could not start: Ansible could not unpack it into the "
         "host's temp folder: OSError: [Errno 28] No space left on device" % rig02.address)]
    assert items(summary, rig02)[0]["fix"].startswith("Free space in the host's temp folder ($TMPDIR, else /tmp")
    assert entry["gpus"] == [] and entry["usable_gpus"] == []
    for name in ("rig01", "rig03"):
        assert_healthy(summary, testcluster[name])
    assert left == ["filler"]
    assert_only_sshd(rig02)


def test_login_hanging_after_authentication_is_bounded_and_named(testcluster):
    """rig02's login user's ~/.bashrc sleeps: SSH authenticates, the session opens (ServerAlive is answered),
    and the command that would start the module never runs. Through the bridge, as WATCHER runs it: the
    task backstop (``host_timeout`` of the plan: the longest check timeout + 20 s) bounds it, rig02 is a hard
    ``probe`` failure that names the backstop and says the login may hang, with how to tell; rig01 and rig03
    are complete. Nothing of the run is left on the controller (no marked process, no ControlPersist
    master). The sleeping shell on rig02 stays: it never ran anything of ours, and sshd does not signal a
    session without a terminal when its channel closes."""
    import gpuops_preflight
    from gpuops_preflight import procs

    hung = testcluster["rig02"]
    hung.hang_login()
    timeouts = dict((name, 5) for name in PREFLIGHT_CHECKS)
    report = gpuops_preflight.run_preflight(STEP, inventory=testcluster.inventory, summary_dir=testcluster.summary_dir,
                                            extravars={"preflight_timeouts": timeouts, "preflight_gpu_tool_timeout": 3},
                                            log=False)

    assert report.status == "blocked" and report.passed is False, report.as_dict()
    summary = report.summary
    host_timeout = 5 + 20
    assert [(i.host, i.check, i.message) for i in report.hard_failures] == [
        ("rig02", "probe", "rig02 (%s): the preflight module did not finish within %ss; no check result came back "
         "(the login may hang before it starts)" % (hung.address, host_timeout))]
    assert report.hard_failures[0].fix.startswith("Check that `ssh <user>@%s true`" % hung.address)
    assert summary["hosts"]["rig02"]["status"] == "blocked" and summary["hosts"]["rig02"]["checks"] == {}
    assert report.as_step_result()["error"].startswith("Preflight BLOCKED: PROBE_FAILED: rig02 (")
    for name in ("rig01", "rig03"):
        assert_healthy(summary, testcluster[name])
    assert procs.marked(report.run_id) == []
    folders = (testcluster.control_dir, "gpuops-preflight-%d" % os.getuid())
    masters = [p for p in os.listdir("/proc") if p.isdigit() and netns.process_name(int(p)) == "ssh"
               and any(f in (netns.process_cmdline(int(p)) or "") for f in folders)]
    assert masters == [], [netns.process_cmdline(int(p)) for p in masters]


# ---------------------------------------------------------------- GPU tool


def test_hung_rocm_smi_is_unknown_within_check_timeout_and_killed(testcluster):
    """rig01's rocm-smi hangs (ignores SIGTERM, a child holds stdout). With a 3 s tool timeout the
    module kills its process group (TERM, KILL after 2 s) and reports gpu_health ``unknown`` (never
    a pass, never a hardware verdict): a warning, so the preflight passes (rc 0). Every other check
    of rig01 is present and ok; its GPUs are unverified, not usable. No stand-in process is left
    in rig01's namespace."""
    hung = testcluster["rig01"]
    hung.rig.set_tool_mode("hang")

    run = playbook.playbook(testcluster.inventory, "preflight", STEP,
                            extra_vars={"preflight_gpu_tool_timeout": 3})

    assert run.rc == 0, run.tail()
    summary = run.summary
    assert summary["passed"] is True and summary["hard_failures"] == []
    entry = summary["hosts"]["rig01"]
    assert entry["status"] == "warnings"
    assert sorted(entry["checks"]) == PREFLIGHT_CHECKS
    statuses = {c: r["status"] for c, r in entry["checks"].items()}
    assert statuses == dict({c: "ok" for c in PREFLIGHT_CHECKS}, gpu_health="unknown")
    health = entry["checks"]["gpu_health"]
    assert health["elapsed_s"] <= 30  # within the gpu_health check timeout (the product's own clock)
    expected = ("rig01: GPU state unknown: rocm-smi timed out after 3s and was killed; "
                "sysfs shows 12 GPU(s) on the bus and none lost")
    assert [(i["check"], i["status"], i["message"]) for i in items(summary, hung, "warnings")] == [
        ("gpu_health", "unknown", expected)]
    assert entry["gpu_tool"]["timed_out"] is True and entry["gpu_tool"]["outcome"] != "answered"
    assert entry["usable_gpus"] == [] and entry["unverified_gpus"] == ALL_GPUS
    for name in ("rig02", "rig03"):
        assert_healthy(summary, testcluster[name])
    assert_only_sshd(hung)


# ---------------------------------------------------------------- ramdisk


def test_ramdisk_missing_empty_and_corrupted(testcluster):
    """Step 3 needs train_history.json and holdout_history.json. rig01: holdout missing; rig02:
    train empty; rig03: holdout cut mid-document. Each is exactly one hard ``ramdisk`` failure on
    its host, naming file and folder; every other check ok; rc 2."""
    rig01, rig02, rig03 = (testcluster[n] for n in ("rig01", "rig02", "rig03"))
    rig01.rig.remove_ramdisk_file(STEP, "holdout_history.json")
    open(rig02.rig.ramdisk_path(STEP, "train_history.json"), "w").close()
    rig03.rig.corrupt_json(STEP, "holdout_history.json")

    run = playbook.playbook(testcluster.inventory, "preflight", STEP)

    assert run.rc == 2, run.tail()
    summary = run.summary
    assert summary["warnings"] == []
    folder = {h.name: os.path.join(h.rig.ramdisk_root, "step%d" % STEP) + "/" for h in (rig01, rig02, rig03)}
    got = {h.name: [(i["check"], i["status"], i["message"]) for i in items(summary, h)] for h in (rig01, rig02, rig03)}
    assert got["rig01"] == [("ramdisk", "fail", "rig01: holdout_history.json is missing from %s" % folder["rig01"])]
    assert got["rig02"] == [("ramdisk", "fail", "rig02: train_history.json in %s is empty (0 bytes)" % folder["rig02"])]
    assert len(got["rig03"]) == 1 and got["rig03"][0][:2] == ("ramdisk", "fail")
    assert got["rig03"][0][2].startswith("rig03: holdout_history.json in %s is not valid JSON: " % folder["rig03"])
    for host in (rig01, rig02, rig03):
        entry = summary["hosts"][host.name]
        assert entry["status"] == "blocked"
        assert {c: r["status"] for c, r in entry["checks"].items()} == dict(
            {c: "ok" for c in PREFLIGHT_CHECKS}, ramdisk="fail")
        assert entry["usable_gpus"] == ALL_GPUS


def test_ramdisk_symlink_out_of_root_and_full_tmpfs(testcluster):
    """rig01: holdout_history.json is a symlink leaving the step folder -> hard ``ramdisk``
    (escapes the root). rig02: its ramdisk is a 1 MiB tmpfs, filled; the step then wrote
    holdout_history.json into a full disk (ENOSPC: 0 bytes) -> hard ``ramdisk`` (empty) AND soft
    ``ramdisk_space`` (0 MiB free). rig03 is complete."""
    rig01, rig02, rig03 = (testcluster[n] for n in ("rig01", "rig02", "rig03"))
    target = os.path.join(rig01.rig.path, "outside", "holdout_history.json")
    rig01.rig.symlink_out(STEP, "holdout_history.json")

    root = rig02.rig.ramdisk_root
    step_dir = os.path.join(root, "step%d" % STEP)
    rig02.mount_tmpfs(root, size="1m")  # inside rig02 only: the controller still sees the old folder
    try:
        rig02.exec(["mkdir", "-p", step_dir])
        history = json.dumps({"epoch": [1, 2, 3], "loss": [0.9, 0.6, 0.5]})
        rig02.exec(["sh", "-c", "cat > %s/train_history.json" % step_dir], input=history)
        filled = rig02.exec(["dd", "if=/dev/zero", "of=%s/filler" % root, "bs=64k"], check=False)
        assert "No space left on device" in filled.stderr
        wrote = rig02.exec(["sh", "-c", "cat > %s/holdout_history.json" % step_dir], input=history, check=False)
        assert wrote.returncode != 0 and "No space left on device" in wrote.stderr
        assert root in rig02.mounts()

        run = playbook.playbook(testcluster.inventory, "preflight", STEP)
    finally:
        rig02.umount(root)
    assert root not in rig02.mounts()

    assert run.rc == 2, run.tail()
    summary = run.summary
    hard = {h.name: [(i["check"], i["message"]) for i in items(summary, h)] for h in (rig01, rig02, rig03)}
    assert hard["rig01"] == [("ramdisk", "rig01: holdout_history.json in %s/ leads outside the step folder (to %s)"
                              % (os.path.join(rig01.rig.ramdisk_root, "step%d" % STEP), target))]
    assert hard["rig02"] == [("ramdisk", "rig02: holdout_history.json in %s/ is empty (0 bytes)" % step_dir)]
    warn = [(i["check"], i["status"], i["message"]) for i in items(summary, rig02, "warnings")]
    assert warn == [("ramdisk_space", "warn",
                     "rig02: %s has 0 MiB free (0%%), below the 512 MiB minimum" % root)]
    assert items(summary, rig01, "warnings") == []
    statuses = {h.name: {c: r["status"] for c, r in summary["hosts"][h.name]["checks"].items()}
                for h in (rig01, rig02)}
    assert statuses["rig01"] == dict({c: "ok" for c in PREFLIGHT_CHECKS}, ramdisk="fail")
    assert statuses["rig02"] == dict({c: "ok" for c in PREFLIGHT_CHECKS}, ramdisk="fail", ramdisk_space="warn")
    assert_healthy(summary, rig03)


# ---------------------------------------------------------------- cleanup


def test_cleanup_with_every_action_failing_on_every_host(testcluster):
    """Every host: its user's cache folder is read-only (a bind mount inside the host: EROFS), a
    GPU is left at perf level 'manual' and the clock reset is asked for. rig01: rocm-smi hangs,
    kernel log missing. rig02: rocm-smi fails (the recorded shm-mutex error), kernel log is a
    directory. rig03: ``--resetclocks`` claims success and writes nothing, kernel log is a fifo
    nobody writes (the read blocks). The cleanup never blocks: rc 0, no hard failure, and every
    failure is a warning naming its host, in the summary and in the verdict block."""
    hosts = testcluster.hosts
    caches = {}
    for host in hosts:
        caches[host.name] = host.rig.add_caches("trainer")
        host.rig.set_perf_level(0, "manual")
        host.bind_readonly(os.path.join(host.rig.home("trainer"), ".cache"))
    rig01, rig02, rig03 = hosts
    rig01.rig.set_tool_mode("hang")
    os.unlink(rig01.rig.kernel_log)
    rig02.rig.set_tool_mode("fail")
    os.unlink(rig02.rig.kernel_log)
    os.mkdir(rig02.rig.kernel_log)
    rig03.rig.break_resetclocks()
    os.unlink(rig03.rig.kernel_log)
    os.mkfifo(rig03.rig.kernel_log)

    run = playbook.playbook(testcluster.inventory, "cleanup", STEP, extra_vars={
        "cleanup_reset_clocks": True, "cleanup_gpu_tool_timeout": 3,
        "cleanup_timeouts": {"clocks": 6, "gpu_health": 8, "vram": 8, "kernel_log": 5, "caches": 20}})

    assert run.rc == 0, run.tail()
    summary = run.summary
    assert summary["kind"] == "cleanup" and summary["hard_failures"] == [] and summary["blocked"] is False
    gpu0 = rig01.rig.gpu(0).bdf
    still_manual = "GPU %s is still at performance level 'manual' after rocm-smi --resetclocks" % gpu0
    for host in hosts:
        entry = summary["hosts"][host.name]
        assert entry["status"] == "warnings" and entry["reachable"] is True
        assert sorted(entry["checks"]) == CLEANUP_CHECKS
        warnings = items(summary, host, "warnings")
        assert all(w["message"].startswith(host.name + ": ") for w in warnings)
        by_check = {}
        for w in warnings:
            by_check.setdefault(w["check"], []).append((w["status"], w["message"][len(host.name) + 2:]))
        # caches: every entry under the read-only folder could not be removed: each is in the module's
        # errors, and the warnings say so once per cache folder (not once per file)
        errors = entry["caches"]["errors"]
        assert errors and entry["bytes_freed"] == 0 and entry["caches"]["removed"] == []
        assert all(e["message"].endswith(": Read-only file system") for e in errors)
        cache_dirs = [os.path.join(caches[host.name]["home"], ".cache", d) for d in ("hip_1234", "comgr_cache", "miopen")]
        assert len(by_check["caches"]) <= len(cache_dirs) + 1  # + the hip_5678 trap link
        for folder in cache_dirs:
            assert any(folder in text for _status, text in by_check["caches"]), (folder, by_check["caches"])
        assert {os.path.join(caches[host.name]["home"], ".cache", d) for d in ("hip_1234", "comgr_cache", "miopen")} \
            <= {e["path"] for e in errors}
        assert host.rig.precious_intact("trainer")
        # clocks: the reset did not take on any host
        clocks = by_check["clocks"]
        assert clocks[-1] == ("warn", still_manual)
        assert host.rig.perf_level(0) == "manual"
        # the kernel log could not be read anywhere
        assert len(by_check["kernel_log"]) == 1 and by_check["kernel_log"][0][0] == "unknown"
        assert "vram" not in by_check and entry["checks"]["vram"]["status"] == "ok"
        for w in warnings:  # the verdict block lists each one
            assert "Cleanup WARNING: %s: %s" % (w["check"], w["message"]) in run.stdout
        assert_only_sshd(host)  # the hung tool's process group is gone
    klog = {h.name: summary["hosts"][h.name]["checks"]["kernel_log"]["message"] for h in hosts}
    assert klog["rig01"] == ("reading the kernel log (file): cannot read %s: No such file or directory"
                             % rig01.rig.kernel_log)
    assert klog["rig02"] == ("reading the kernel log (file): cannot read %s: it is a directory, not a regular file"
                             % rig02.rig.kernel_log)
    # a FIFO is refused at once (1.0 hung on it until the check's timeout)
    assert klog["rig03"] == ("reading the kernel log (file): cannot read %s: it is a fifo, not a regular "
                             "file" % rig03.rig.kernel_log)
    health = {h.name: summary["hosts"][h.name]["checks"]["gpu_health"] for h in hosts}
    assert health["rig01"]["status"] == "unknown"
    assert "rocm-smi timed out after 3s and was killed" in health["rig01"]["message"]
    assert health["rig02"]["status"] == "unknown"
    assert "shared-memory mutex is stuck" in health["rig02"]["message"]
    # the tool answers there (only its --resetclocks lies), but SMU failures show only in the unreadable log
    assert health["rig03"]["status"] == "unknown"
    assert health["rig03"]["message"].startswith("SMU failures not checked: could not read the kernel log")
    clocks = {h.name: [m for s, m in [(w["status"], w["message"]) for w in items(summary, h, "warnings")
                                      if w["check"] == "clocks"]] for h in hosts}
    assert len(clocks["rig01"]) == 2 and "rocm-smi --resetclocks: rocm-smi timed out after" in clocks["rig01"][0]
    assert clocks["rig02"] == ["rig02: " + still_manual]
    assert clocks["rig03"] == ["rig03: " + still_manual]


# ---------------------------------------------------------------- the Python bridge


def test_bridge_overall_timeout_expires_mid_run(testcluster):
    """gpuops_preflight.run_preflight(step, inventory=..., timeout=10) while rig02's rocm-smi takes
    60 s (tool timeout 20 s): the bridge cancels the run at 10 s. The report says so
    (status timeout, blocked_by preflight_timeout, the reason names rig02 and its pending checks);
    rig01 and rig03 reported before the stop (12 usable GPUs each). Nothing of the run is left on
    the controller (no process carries its marker), and rig02's module, which no signal reaches
    over SSH, sees its result pipe closed and stops with its rocm-smi within 5 s: afterwards only
    sshd runs in rig02's namespace (1.0 left it running until its tool deadline, 22 s), and the folder
    AnsiballZ unpacked it into is gone with it (ending at once skips AnsiballZ's own clean-up)."""
    import gpuops_preflight
    from gpuops_preflight import procs

    slow = testcluster["rig02"]
    slow.rig.set_tool_mode("slow", delay=60)
    # Generous margins: rig01 and rig03 must answer before the stop even on a loaded 2-core machine.
    tool_timeout = 20
    report = gpuops_preflight.run_preflight(STEP, inventory=testcluster.inventory, timeout=10,
                                            extravars={"preflight_gpu_tool_timeout": tool_timeout},
                                            summary_dir=testcluster.summary_dir, log=False)

    assert report.status == "timeout", report.as_dict()
    assert report.passed is False and report.blocked_by == "preflight_timeout"
    result = report.as_step_result()
    assert result["success"] is False and result["blocked_by"] == "preflight_timeout"
    assert result["error"].startswith("Preflight timed out after 10s; still pending: rig02 (")
    assert report.pending["hosts"] == ["rig02"]
    assert sorted(report.pending["checks"]["rig02"]) == PREFLIGHT_CHECKS
    assert report.hosts["rig01"]["usable_gpus"] == ALL_GPUS and report.hosts["rig03"]["usable_gpus"] == ALL_GPUS
    # Controller: nothing of the run is left.
    assert procs.marked(report.run_id) == []
    assert report.private_dir is None or not os.path.exists(report.private_dir)
    # rig02: the module is gone within 5 s of the run's end (its watchdog), long before its tool's deadline.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(name != "sshd" for _pid, name, _cmdline in slow.processes()):
        time.sleep(0.1)
    assert_only_sshd(slow)
    assert slow.unpacked_payloads() == []
    # No SSH ControlPersist master of the run is left either (the bridge gives each run its own
    # control folder and closes the masters in it, whose process title names their socket).
    folders = (testcluster.control_dir, "gpuops-preflight-%d" % os.getuid())
    masters = [p for p in os.listdir("/proc") if p.isdigit() and netns.process_name(int(p)) == "ssh"
               and any(f in (netns.process_cmdline(int(p)) or "") for f in folders)]
    assert masters == [], [netns.process_cmdline(int(p)) for p in masters]
