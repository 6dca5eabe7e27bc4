"""run_preflight / run_cleanup through real ansible-runner runs on simulated clusters (local connection)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading

import pytest
from simrig import build_scenario, scratch_dir

import gpuops_preflight as gp
from gpuops_preflight import workdir
from bridge.helpers import BIN, captured_logs, environ_of, new_token, processes_with, run_dirs, run_options

RIG, GONE = "rig-6600", "rig-6600-gone"
HOST_CHECKS = {"ramdisk", "inputs", "gpu_health", "gpu_available", "gpu_count", "kernel_log", "vram", "gpu_temperature",
               "ramdisk_space"}
# A stand-in rocm-smi that hangs, with per-check and tool timeouts far beyond the overall timeout.
HANG_VARS = {"preflight_gpu_tool_timeout": 600,
             "preflight_timeouts": {c: 600 for c in ("gpu_health", "gpu_count", "vram", "gpu_temperature")}}


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    """One healthy rig, one run, shared by the tests that only read its report."""
    folder = tmp_path_factory.mktemp("healthy")
    sc = build_scenario("healthy", scratch_dir("bridge-healthy-"))
    seen = []
    report = gp.run_preflight(sc.step, inventory=sc.inventory, progress=seen.append, **run_options(folder))
    yield sc, report, seen, folder
    sc.cluster.destroy()


@pytest.fixture(scope="module")
def unreachable(tmp_path_factory):
    """rig-6600 healthy, rig-6600-gone on a loopback port where nothing listens; its log records."""
    folder = tmp_path_factory.mktemp("unreachable")
    sc = build_scenario("unreachable_host", scratch_dir("bridge-unreachable-"))
    log = str(folder / "failures.jsonl")
    with captured_logs() as records:
        report = gp.run_preflight(sc.step, inventory=sc.inventory, failure_log=log, **run_options(folder))
    yield report, log, records
    sc.cluster.destroy()


def test_healthy_cluster_passes_with_usable_gpus_and_timing(healthy):
    sc, report, _seen, folder = healthy
    assert report.status == "passed" and report.passed and report.blocked_by is None, report.reason()
    assert report.step == 3 and report.kind == "preflight"
    assert report.hard_failures == [] and report.warnings == []
    assert report.usable_gpus == {RIG: list(range(12))}
    assert report.hosts[RIG]["gpu_count"] == 12 and report.hosts[RIG]["reachable"] is True
    assert report.summary["schema"] == "gpuops.preflight.summary" and report.summary["schema_version"] == 1
    assert report.started_at <= report.finished_at and report.duration_s > 0
    assert report.summary["duration_s"] > 0
    assert report.lines[0].startswith("Preflight PASSED for step 3")
    assert report.as_step_result() == {"success": True, "warnings": []}
    # the summary file the playbook wrote lives in the run's summary_dir
    assert os.path.dirname(report.summary["summary_file"]) == str(folder / "summaries")


def test_progress_receives_each_hosts_check_results(healthy):
    _sc, _report, seen, _folder = healthy
    assert [(r.host, r.status) for r in seen] == [(RIG, "checked")]
    assert set(seen[0].checks) == HOST_CHECKS
    assert {c["status"] for c in seen[0].checks.values()} == {"ok"}
    assert seen[0].usable_gpus == list(range(12))


def test_private_run_folder_is_removed(healthy):
    _sc, report, _seen, folder = healthy
    assert report.private_dir is None
    assert run_dirs(folder) == []


def test_blocking_fault_names_the_item(scenario, tmp_path, caplog):
    sc = scenario("missing_ramdisk_file")
    with caplog.at_level(logging.DEBUG, logger="gpuops_preflight"):
        report = gp.run_preflight(sc.step, inventory=sc.inventory, **run_options(tmp_path))
    assert report.passed is False and report.status == "blocked"
    [item] = report.hard_failures
    assert (item.host, item.check) == (RIG, "ramdisk")
    assert "holdout_history.json" in item.message and item.fix
    result = report.as_step_result()
    assert set(result) == {"success", "error", "blocked_by"}
    assert result["success"] is False and result["blocked_by"] == "preflight_check"
    assert "\n" not in result["error"] and "RAMDISK_NOT_READY" in result["error"]
    assert ("gpuops_preflight", logging.ERROR, result["error"]) in caplog.record_tuples
    assert any(m.startswith("Preflight check: SSH OK, Ramdisk FAIL, Inputs OK") for _n, _l, m in caplog.record_tuples)


def test_warnings_pass_and_are_logged_with_codes(scenario, tmp_path, caplog):
    sc = scenario("count_mismatch")
    with caplog.at_level(logging.INFO, logger="gpuops_preflight"):
        report = gp.run_preflight(sc.step, inventory=sc.inventory, **run_options(tmp_path))
    assert report.passed, report.reason()
    assert [(w.host, w.check) for w in report.warnings] == [(RIG, "gpu_count")]
    texts = report.as_step_result()["warnings"]
    assert len(texts) == 1 and texts[0].startswith("GPU_COUNT_MISMATCH: %s: " % RIG) and "12" in texts[0]
    assert ("gpuops_preflight", logging.WARNING, "Preflight warnings: %s" % texts) in caplog.record_tuples


def test_unreachable_host_is_a_hard_ssh_failure_with_its_address(unreachable):
    report, _log, records = unreachable
    assert report.status == "blocked"
    [item] = report.hard_failures
    assert (item.host, item.check, item.address) == (GONE, "ssh", "127.0.0.1")
    assert GONE in item.message and "127.0.0.1" in item.message
    assert report.as_step_result()["error"] == "Preflight BLOCKED: SSH unreachable: 127.0.0.1"
    assert report.usable_gpus[RIG] == list(range(12))
    # What the event stream says: the node task ignores unreachable hosts, so the recap counts the
    # host as "ignored", not "dark"; the runner_on_unreachable event is what names it.
    assert report.stats["dark"] == {} and report.stats["ignored"] == {GONE: 1}
    [rec] = [r for r in report.failures if r["unreachable"]]
    assert rec["event"] == "runner_on_unreachable" and rec["host"] == GONE
    assert "Connection refused" in rec["message"] and rec["address"] == "127.0.0.1"
    assert ("gpuops_preflight", logging.ERROR, "Preflight BLOCKED: SSH unreachable: 127.0.0.1") in records
    assert ("gpuops_preflight", logging.DEBUG, "Preflight check: SSH FAIL (%s)" % GONE) in records


def test_failed_tasks_are_logged_and_queryable(unreachable):
    report, log, records = unreachable
    entries = gp.query_failures(log)
    assert len(entries) == 2 and {r["run_id"] for r in entries} == {report.run_id}
    [gone] = gp.query_failures(log, host=GONE)
    assert gone["unreachable"] and gone["ignored"] and gone["kind"] == "preflight" and gone["step"] == 3
    assert "Connection refused" in gone["message"] and gone["address"] == "127.0.0.1"
    assert gone["task"].startswith("Check the node") and gone["action"] == "gpuops.preflight.node_preflight"
    # the verdict task's failure is recorded with the GPU state of each blocked host
    [verdict] = gp.query_failures(log, task="Block the step")
    assert verdict["verdict"] and list(verdict["gpu_state"]) == [GONE]
    assert gp.query_failures(log, include_verdicts=False) == [gone]
    assert gp.query_failures(log, step=4) == [] and gp.query_failures(log, kind="cleanup") == []
    # logged as it arrived, with every field of the record
    [line] = [m for name, level, m in records if name.endswith(".failures") and level == logging.WARNING]
    assert line.startswith("Task unreachable on %s: Check the node" % GONE)
    assert json.loads(line.split(" | ", 1)[1]) == gone
    # the command line reads the same log
    done = subprocess.run([os.path.join(BIN, "gpuops-preflight"), "failures", "--log", log, "--host", GONE, "--json"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and [json.loads(x) for x in done.stdout.splitlines()] == [gone]


def test_timeout_reports_pending_hosts_and_leaves_nothing_running(scenario, tmp_path):
    sc = scenario("hanging_tool")
    token = new_token()
    report = gp.run_preflight(sc.step, inventory=sc.inventory, timeout=8, extravars=HANG_VARS, envvars=token,
                              **run_options(tmp_path))
    assert report.status == "timeout" and report.summary is None, report.reason()
    assert report.blocked_by == "preflight_timeout" and report.passed is False
    # wherever the run was when the time ran out (a loaded machine may not reach the host checks), the
    # rig had not reported; at the host checks, each of its checks is named
    assert report.pending["hosts"] == [RIG]
    if report.pending["stage"] == "host checks":
        assert set(report.pending["checks"][RIG]) == HOST_CHECKS
    result = report.as_step_result()
    assert result["blocked_by"] == "preflight_timeout"
    assert result["error"].startswith("Preflight timed out after 8s; still pending: %s" % RIG)
    # nothing of the run is left: ansible-playbook, the module, the hung rocm-smi and its child
    assert processes_with(token) == []
    assert run_dirs(tmp_path) == []


def test_cancel_mid_run_keeps_the_unreachable_host_as_a_hard_ssh_failure(scenario, tmp_path):
    sc = scenario("hanging_tool")
    sc.cluster.add_unreachable(GONE)
    inventory = sc.cluster.write_inventory()
    calls = os.path.join(sc[RIG].tool_dir("rocm-smi"), "calls.log")
    seen, token, temps = [], new_token(), set()

    def cancel():
        # once the hung rocm-smi runs and the unreachable host has been reported: no summary will come
        if os.path.getsize(calls) > 0 and any(r.status == "unreachable" for r in seen):
            temps.update(environ_of(pid).get("TMPDIR") for pid, _cmdline in processes_with(token))
            return True
        return False

    report = gp.run_preflight(sc.step, inventory=inventory, extravars=HANG_VARS, envvars=token, cancel=cancel,
                              progress=seen.append, **run_options(tmp_path))
    assert report.status == "canceled" and report.summary is None, report.reason()
    assert report.blocked_by == "preflight_canceled"
    assert report.pending["stage"] == "host checks" and report.pending["hosts"] == [RIG]
    assert set(report.pending["checks"][RIG]) == HOST_CHECKS
    [item] = report.hard_failures
    assert (item.host, item.check, item.address) == (GONE, "ssh", "127.0.0.1")
    assert "%s (127.0.0.1) unreachable: " % GONE in item.message
    assert report.hosts[GONE]["reachable"] is False and report.hosts[RIG]["status"] == "pending"
    assert report.as_step_result()["error"] == "Preflight canceled (at the host checks); SSH unreachable: 127.0.0.1"
    assert processes_with(token) == []
    assert run_dirs(tmp_path) == []
    # every process of the run, the rig's module (killed before it could remove its unpacked payload) and
    # its hung tool among them, had the run's own temp folder, gone with the run
    [temp] = temps - {None}
    assert os.path.dirname(temp) == workdir.base_dir() and not os.path.exists(temp)


def test_cancel_before_start_runs_nothing(tmp_path):
    stop = threading.Event()
    stop.set()
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all: {}\n")
    report = gp.run_preflight(3, inventory=str(inventory), cancel=stop, **run_options(tmp_path))
    assert report.status == "canceled" and report.runner_status is None
    assert run_dirs(tmp_path) == []


def test_concurrent_runs_do_not_interfere(scenario, tmp_path):
    good, bad = scenario("healthy"), scenario("missing_ramdisk_file")
    reports = {}

    def run(name, sc):
        reports[name] = gp.run_preflight(sc.step, inventory=sc.inventory, **run_options(tmp_path / name))

    threads = [threading.Thread(target=run, args=(n, s)) for n, s in (("good", good), ("bad", bad))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert reports["good"].status == "passed", reports["good"].reason()
    assert reports["bad"].status == "blocked"
    assert [i.check for i in reports["bad"].hard_failures] == ["ramdisk"]
    assert reports["good"].run_id != reports["bad"].run_id
    for name in ("good", "bad"):
        assert run_dirs(tmp_path / name) == []
        assert reports[name].summary["summary_file"].startswith(str(tmp_path / name))


def test_kept_run_folders_are_bounded(healthy, tmp_path):
    sc = healthy[0]
    kept = []
    for _run in range(2):
        # a step the cluster does not define: a quick run that still leaves artifacts
        report = gp.run_preflight(9, inventory=sc.inventory, keep_artifacts=1, **run_options(tmp_path))
        assert report.status == "error" and "step 9 is not in preflight_steps" in report.error
        kept.append(report.private_dir)
    assert run_dirs(tmp_path) == [os.path.basename(kept[-1])]
    artifacts = os.path.join(kept[-1], "artifacts", report.run_id)
    assert os.path.isdir(os.path.join(artifacts, "job_events")) and os.listdir(os.path.join(artifacts, "job_events"))
    # extra variables are never written to the private folder
    assert not os.path.exists(os.path.join(kept[-1], "env", "extravars"))


def test_cleanup_report_and_log_line(scenario, tmp_path, caplog):
    sc = scenario("dirty_after_step")
    with caplog.at_level(logging.INFO, logger="gpuops_preflight"):
        report = gp.run_cleanup(sc.step, inventory=sc.inventory, **run_options(tmp_path))
    assert report.kind == "cleanup" and report.status == "passed", report.reason()
    assert report.summary["totals"]["bytes_freed"] > 0
    assert report.lines[0].startswith("Cleanup for step 3 complete: 1 of 1 node(s) cleaned")
    assert ("gpuops_preflight", logging.INFO, "[CLEANUP] Complete: 1 nodes cleaned") in caplog.record_tuples


def test_missing_inventory_is_an_error_before_anything_runs(tmp_path):
    report = gp.run_preflight(3, inventory=str(tmp_path / "nope.yml"), **run_options(tmp_path))
    assert report.status == "error" and "inventory not found" in report.error
    assert report.as_step_result()["blocked_by"] == "preflight_error"
    assert run_dirs(tmp_path) == []


def test_a_keyboard_interrupt_mid_run_propagates_and_leaves_nothing_running(scenario, tmp_path):
    """Ctrl-C in WATCHER (here: raised from the cancel check) while the hung tool runs: the interrupt reaches
    the caller, and no process of the run (ansible-playbook, the module, the tool) nor its folder is left."""
    sc = scenario("hanging_tool")
    calls = os.path.join(sc[RIG].tool_dir("rocm-smi"), "calls.log")
    token = new_token()

    def interrupt():
        if os.path.getsize(calls) > 0:
            assert processes_with(token)  # the run is there to be stopped
            raise KeyboardInterrupt
        return False

    with pytest.raises(KeyboardInterrupt):
        gp.run_preflight(sc.step, inventory=sc.inventory, extravars=HANG_VARS, envvars=token, cancel=interrupt,
                         timeout=60, **run_options(tmp_path))
    assert processes_with(token) == []
    assert run_dirs(tmp_path) == []


def test_sigterm_to_watcher_mid_run_leaves_no_process_of_the_run_and_still_ends_it(scenario, tmp_path):
    """WATCHER is stopped with SIGTERM (systemd, kill) while the hung tool runs: the process still ends by
    SIGTERM, as it would without the bridge, but only after every process of the run is stopped."""
    import signal
    import sys
    import time

    sc = scenario("hanging_tool")
    calls = os.path.join(sc[RIG].tool_dir("rocm-smi"), "calls.log")
    token = new_token()
    script = ("import json, sys, gpuops_preflight as gp\n"
              "gp.run_preflight(sys.argv[1], inventory=sys.argv[2], extravars=json.loads(sys.argv[3]),"
              " envvars=json.loads(sys.argv[4]), timeout=120, **json.loads(sys.argv[5]))\n")
    watcher = subprocess.Popen([sys.executable, "-c", script, str(sc.step), sc.inventory, json.dumps(HANG_VARS),
                                json.dumps(token), json.dumps(run_options(tmp_path))],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while os.path.getsize(calls) == 0 and watcher.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert os.path.getsize(calls) > 0 and watcher.poll() is None
        watcher.send_signal(signal.SIGTERM)
        assert watcher.wait(30) == -signal.SIGTERM
        assert processes_with(token) == []
        assert run_dirs(tmp_path) == []
    finally:
        watcher.kill()
        watcher.wait()
        for pid, _cmdline in processes_with(token):  # what a failed check left: never outlives the test
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _cut_partial_files(monkeypatch, *wanted, cut_to_half=True):
    """ansible-runner reads each event's data from a ``<uuid>-partial.json`` file the callback wrote: the files
    whose text holds every string of one of ``wanted`` are cut to half their length as it opens them (a
    callback killed mid-write, a full disk), or removed (``cut_to_half=False``). Returns the paths cut."""
    import codecs

    import ansible_runner.runner

    cut = []

    class CutCodecs:
        @staticmethod
        def open(path, mode="r", *args, **kwargs):
            if mode == "r" and str(path).endswith("-partial.json"):
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
                if any(all(w in text for w in group) for group in wanted):
                    with open(path, "w", encoding="utf-8") as handle:
                        handle.write(text[:len(text) // 2] if cut_to_half else "")
                    if not cut_to_half:
                        os.remove(path)
                    cut.append(path)
            return codecs.open(path, mode, *args, **kwargs)

    monkeypatch.setattr(ansible_runner.runner, "codecs", CutCodecs)
    return cut


def test_a_half_written_event_file_costs_its_event_not_the_run(scenario, tmp_path, monkeypatch):
    """The node task's event data is cut short on disk: ansible-runner's json.load raised out of the run, which
    was stopped mid-way and reported as an error (JSONDecodeError). Now the event is left out, said in the
    log, and the playbook's verdict stands."""
    sc = scenario("healthy")
    cut = _cut_partial_files(monkeypatch, ['"runner_on_ok"', "node_preflight"])
    seen = []
    with captured_logs() as logs:
        report = gp.run_preflight(sc.step, inventory=sc.inventory, progress=seen.append, **run_options(tmp_path))
    assert cut, "no event file was cut: the test did not test anything"
    assert report.status == "passed", report.reason()
    assert report.hosts[RIG]["usable_gpus"] == list(range(12))  # from the summary, which was read whole
    assert seen == []  # the host's own result event was the one lost
    said = [m for _n, level, m in logs if level == logging.WARNING and "could not be read" in m]
    assert said and os.path.basename(cut[0]) in said[0], logs


def test_a_run_whose_verdict_event_was_cut_short_is_an_error_naming_it(scenario, tmp_path, monkeypatch):
    """The verdict task's event and the play recap cut short: no summary can be read, and the error says why."""
    sc = scenario("healthy")
    cut = _cut_partial_files(monkeypatch, ['"runner_on_ok"', "preflight_report"], ["playbook_on_stats"])
    report = gp.run_preflight(sc.step, inventory=sc.inventory, **run_options(tmp_path))
    assert len(cut) == 2
    assert report.status == "error" and report.summary is None
    assert report.error.startswith("2 event(s) of the run could not be read (their data files cut short or "
                                   "missing), the first: "), report.error
    assert run_dirs(tmp_path) == []


def test_a_run_whose_verdict_event_files_are_missing_is_an_error_naming_them(scenario, tmp_path, monkeypatch):
    """ansible-runner delivers an event whose data file is gone as its id alone (and says so only at debug
    level): the run ended as 'without a summary'. Now the error says the events were lost."""
    sc = scenario("healthy")
    cut = _cut_partial_files(monkeypatch, ['"runner_on_ok"', "preflight_report"], ["playbook_on_stats"],
                             cut_to_half=False)
    report = gp.run_preflight(sc.step, inventory=sc.inventory, **run_options(tmp_path))
    assert len(cut) == 2
    assert report.status == "error" and report.summary is None
    assert report.error.startswith("2 event(s) of the run could not be read"), report.error
    assert report.error.endswith("-partial.json: its data file is missing"), report.error


def test_a_run_folder_that_cannot_be_kept_never_costs_the_verdict(healthy, tmp_path, monkeypatch):
    """keep_artifacts on a full disk: the kept-folder marker cannot be written. The error raised out of the
    run's clean-up and turned its verdict (here the plan's own error) into 'OSError: ...'; now the verdict
    stands and the unmarked folder, which would never be pruned, is removed."""
    sc = healthy[0]
    monkeypatch.setattr(workdir, "KEPT_MARKER", os.path.join("no-such-folder", "kept"))
    with captured_logs() as logs:
        report = gp.run_preflight(9, inventory=sc.inventory, keep_artifacts=1, **run_options(tmp_path))
    assert report.status == "error" and "step 9 is not in preflight_steps" in report.error, report.error
    assert report.private_dir is None and run_dirs(tmp_path) == []
    assert any(level == logging.WARNING and "could not be kept, removed" in m for _n, level, m in logs)
