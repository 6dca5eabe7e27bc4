from __future__ import annotations

import json
import os

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks, _plan, _summary


def plan(**kwargs):
    args = dict(kind="preflight", step="3", steps={3: {"ramdisk": ["train_history.json"], "inputs": []}},
                hosts=["rig-6600"], hostvars={"rig-6600": {}}, now=1000.0)
    args.update(kwargs)
    return expecting_no_checks(_plan.build_plan(**args))


def expecting_no_checks(the_plan):
    """The hand-made node results here give only the checks a test is about: their plan expects none (a check
    the plan runs and a host leaves out is unknown: test_faults_engine.py)."""
    the_plan["host_checks"] = []
    return the_plan


def node_result(*problems, **extra):
    checks = {"gpu_health": _checks.result("gpu_health", list(problems))}
    result = {"checks": checks, "gpus": [], "usable_gpus": [0, 1], "changed": False}
    result.update(extra)
    return result


def test_judging_blocks_only_hard_fails():
    lost = _checks.problem("gpu_health", _checks.FAIL, "GPU 3 (0000:0b:00.0) is lost", "reboot",
                           gpu={"index": 3, "bdf": "0000:0b:00.0", "excluded": False})
    summary = _summary.build_summary(plan(), [
        ("rig-6600", "192.168.3.120", node_result(lost)),
        ("rig-6600b", "192.168.3.121", {"unreachable": True, "msg": "Failed to connect to the host via ssh: ssh: "
                                        "connect to host 192.168.3.121 port 22: No route to host"}),
    ], finished=1004.5)
    assert summary["passed"] is False and summary["blocked"] is True
    assert [(i["host"], i["check"]) for i in summary["hard_failures"]] == [("rig-6600", "gpu_health"), ("rig-6600b", "ssh")]
    assert summary["hard_failures"][1]["message"] == (
        "rig-6600b (192.168.3.121) unreachable: connect to host 192.168.3.121 port 22: No route to host")
    assert summary["hosts"]["rig-6600"]["usable_gpus"] == [0, 1]
    assert summary["hosts"]["rig-6600b"]["reachable"] is False
    assert summary["duration_s"] == 4.5 and summary["schema_version"] == 1
    lines = _summary.render_lines(summary)
    assert lines[0].startswith("Preflight BLOCKED for step 3: 2 hard failure(s), 0 warning(s)")
    assert "Preflight BLOCKED: ssh: rig-6600b (192.168.3.121) unreachable: connect to host" in lines[3]


def test_downgrade_and_excluded_become_warnings_that_say_why():
    bad = _checks.problem("gpu_health", _checks.FAIL, "GPU 10 (0000:22:00.0) is degraded", "x",
                          gpu={"index": 10, "bdf": "0000:22:00.0", "excluded": True})
    summary = _summary.build_summary(plan(downgrade=["ssh"]), [
        ("rig-6600b", "rig-6600b", node_result(bad)),
        ("rig-6600", "10.0.0.1", {"unreachable": True, "msg": "timeout"}),
    ])
    assert summary["passed"] is True and summary["hard_failures"] == []
    messages = [w["message"] for w in summary["warnings"]]
    assert messages[0].endswith("(GPU 10 (0000:22:00.0) is in excluded_gpus)")
    assert messages[1].endswith("(downgraded by preflight_downgrade)")


def test_module_failure_and_timeout_are_probe_failures():
    summary = _summary.build_summary(plan(), [
        ("a", "a", {"failed": True, "msg": "MODULE FAILURE", "module_stderr": "Traceback...\nImportError: boom"}),
        ("b", "b", {"failed": True, "msg": "Task failed: Timed out after 50 second(s).", "timedout": {"period": 50}}),
        ("c", "c", None),
    ])
    assert [i["check"] for i in summary["hard_failures"]] == ["probe", "probe", "probe"]
    assert "ImportError: boom" in summary["hard_failures"][0]["message"]
    assert "did not finish within" in summary["hard_failures"][1]["message"]


def test_a_skipped_ssh_check_never_makes_a_silent_host_pass():
    summary = _summary.build_summary(plan(skip=["ssh", "probe"]), [
        ("a", "10.0.0.5", {"unreachable": True, "msg": "ssh: connect to host 10.0.0.5 port 22: No route to host"}),
        ("b", "b", None)])
    assert summary["passed"] is True and summary["hard_failures"] == []
    assert [(w["host"], w["check"], w["status"]) for w in summary["warnings"]] == [
        ("a", "ssh", "unknown"), ("b", "probe", "unknown")]
    assert summary["warnings"][0]["message"] == ("a (10.0.0.5) unreachable: connect to host 10.0.0.5 port 22: No route "
                                                 "to host; none of its checks ran (ssh is in preflight_skip)")
    assert summary["hosts"]["a"]["status"] == "unreachable"


def test_cleanup_never_blocks():
    bad = _checks.problem("gpu_health", _checks.FAIL, "GPU 1 lost", "x")
    summary = _summary.build_summary(plan(kind="cleanup"), [("a", "a", node_result(bad)), ("b", "b", {"unreachable": True})])
    assert summary["passed"] is True and len(summary["warnings"]) == 2


def test_write_summary_one_file_per_run_and_keep(tmp_path):
    summary = _summary.build_summary(plan(), [])
    folder = tmp_path / "new" / "dir"
    paths = [_summary.write_summary(dict(summary), str(folder), keep=2) for _run in range(3)]
    assert len(set(paths)) == 3
    left = sorted(os.listdir(folder))
    assert len(left) == 2 and all(n.startswith("summary_step3_") for n in left)
    with open(paths[-1]) as handle:
        assert json.load(handle)["summary_file"] == paths[-1]


def test_keep_removes_the_oldest_by_time_across_steps_and_second_boundaries(tmp_path):
    folder = str(tmp_path)
    times = [1795604399.999999, 1795604400.000001, 1795604400.5]  # across a second boundary
    written = []
    for step, when in zip((10, 3, 2), times):  # step numbers that sort against time as text
        summary = _summary.build_summary(plan(step=str(step), steps={step: {}}), [])
        written.append(_summary.write_summary(summary, folder, keep=0, now=when))
    assert [os.path.basename(p) for p in written] == [
        "summary_step10_20261125T105959.999999Z.json", "summary_step3_20261125T110000.000001Z.json",
        "summary_step2_20261125T110000.500000Z.json"]
    last = _summary.build_summary(plan(step="3"), [])
    newest = _summary.write_summary(last, folder, keep=2, now=1795604401.0)
    assert sorted(os.listdir(folder)) == sorted([os.path.basename(written[2]), os.path.basename(newest)])


def test_every_summary_field_is_documented():
    """docs/SUMMARY_SCHEMA.md is the interface: a field the code writes must be in it."""
    doc_path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "docs", "SUMMARY_SCHEMA.md")
    with open(doc_path) as handle:
        documented = handle.read()
    result = node_result(_checks.problem("gpu_health", _checks.FAIL, "x", "y", gpu={"index": 1, "bdf": "b", "excluded": False}))
    result.update(caches={"removed": []}, clocks=None, bytes_freed=0, gpu_count=1, expected_gpu_count=1,
                  unverified_gpus=[], gpu_tool={}, processes=[], kernel_log={}, elapsed_s=1.0)
    for kind in ("preflight", "cleanup"):
        summary = _summary.build_summary(plan(kind=kind), [("a", "a", result)])
        fields = set(summary) | set(summary["totals"]) | set(summary["hosts"]["a"])
        for item in summary["hard_failures"] + summary["warnings"]:
            fields |= set(item)
        missing = sorted(f for f in fields if "`%s`" % f not in documented)
        assert missing == [], "undocumented summary fields (%s): %s" % (kind, missing)


def test_connection_lost_mid_run_says_so():
    msg = ('Task failed: Data could not be sent to remote host "169.254.1.2". Make sure that this host can be '
           'reached over ssh: ')
    summary = _summary.build_summary(plan(), [("rig02", "169.254.1.2", {"unreachable": True, "msg": msg})])
    assert summary["hard_failures"][0]["message"].endswith(
        "can be reached over ssh: the SSH connection was lost during the run")


def test_a_two_vendor_host_lists_excluded_gpus_by_pci_address():
    gpus = [{"index": 0, "bdf": "0000:03:00.0", "vendor": "amd", "excluded": False},
            {"index": 0, "bdf": "0000:41:00.0", "vendor": "nvidia", "excluded": True},
            {"index": 1, "bdf": "0000:51:00.0", "vendor": "nvidia", "excluded": False}]
    summary = _summary.build_summary(plan(), [("rig-6600", "rig-6600", node_result(gpus=gpus))])
    assert summary["hosts"]["rig-6600"]["excluded_gpus"] == ["0000:41:00.0"]
    summary = _summary.build_summary(plan(), [("rig-6600", "rig-6600", node_result(gpus=gpus[1:]))])
    assert summary["hosts"]["rig-6600"]["excluded_gpus"] == [0]


def test_a_cleanup_in_check_mode_says_what_it_would_free():
    cleanup = plan(kind="cleanup", cleanup_steps=[3])
    for dry, said in ((True, "1.0 KiB would be freed (check mode: nothing removed)"), (False, "1.0 KiB freed")):
        result = node_result(caches={"removed": [{"path": "/h/.nv/ComputeCache", "kind": "dir", "bytes": 1024}],
                                     "bytes_freed": 1024, "skipped": [], "errors": [], "homes": ["/h"],
                                     "check_mode": dry}, bytes_freed=1024)
        summary = _summary.build_summary(cleanup, [("rig-6600", "rig-6600", result)])
        assert _summary.headline(summary) == "Cleanup for step 3 complete: 1 of 1 node(s) cleaned, %s" % said


def test_a_gate_without_gpu_checks_says_ready_and_counts_no_gpus():
    gate = expecting_no_checks(_plan.build_plan("serving_gate", None, hosts=["serve-1"], now=1000.0))
    waiting = _checks.problem("orchestrator", _checks.UNKNOWN, "not run: the service bus is not ready", "start it")
    result = {"checks": {"orchestrator": _checks.result("orchestrator", [waiting])}, "changed": False}
    summary = _summary.build_summary(gate, [("serve-1", "serve-1", result)], finished=1001.0)
    # unknown blocks a readiness gate; "ready" says so for the playbook's summary as for the local gate
    assert summary["blocked"] is True and summary["ready"] is False
    assert "GPU" not in _summary.headline(summary)
    assert _summary.headline(summary).endswith("(1 host(s))")
    preflight = _summary.build_summary(plan(), [("rig-6600", "rig-6600", node_result())], finished=1001.0)
    assert "ready" not in preflight and preflight["passed"] is True
    assert _summary.headline(preflight) == "Preflight PASSED for step 3 (1 host(s), 2 usable GPU(s))"


def test_only_families_that_probe_gpus_take_the_probe_options():
    from ansible_collections.gpuops.preflight.plugins.module_utils import _families, _options
    assert "gpu_vendor" in _options.argument_spec(_families.family("preflight"))
    gate = _families.family("serving_gate")
    spec = _options.argument_spec(gate)
    assert "gpu_vendor" not in spec and "excluded_gpus" not in spec
    params = dict(_options.defaults(spec), timeouts={"orchestrator": "5"})
    assert _options.validate(params, gate) == [] and params["timeouts"] == {"orchestrator": 5}


def test_quoted_log_lines_and_tool_output_cannot_drive_the_terminal():
    # a colored crash line, a progress bar's carriage return, a window title in a tool's error text
    colored = _checks.problem("gpu_health", _checks.FAIL, "GPU 3: \x1b[1;31mCUDA error: out of memory\x1b[0m\r 12%|#",
                              "reboot\nnow", gpu={"index": 3, "bdf": "0000:0b:00.0", "excluded": False})
    summary = _summary.build_summary(plan(), [
        ("rig-6600", "rig-6600", node_result(colored)),
        ("rig\x1b]0;owned\x07", "x", {"unreachable": True, "msg": "timeout"})])
    lines = _summary.render_lines(summary)
    assert "Preflight BLOCKED: gpu_health: rig-6600: GPU 3: CUDA error: out of memory  12%|#" in lines
    assert "    fix: reboot now" in lines
    assert all(line.isprintable() for line in lines)
    assert _summary.blocked_message(summary).endswith("gpu_health on rig-6600; ssh on rig")


def test_the_judge_reads_each_check_row_on_its_own_and_a_malformed_one_is_unknown():
    """The playbook's judge (preflight_report) reads what the host module returned: a row it cannot read
    is an unknown result that says why, never a pass, and costs no other row or host."""
    lost = _checks.problem("gpu_health", _checks.FAIL, "GPU 3 is lost", "reboot")
    rows = {"gpu_health": _checks.result("gpu_health", [lost]), "ramdisk": "pass",
            "gpu_count": {"status": "ok", "problems": [{"check": "gpu_count", "status": "ok", "message": "m"}]},
            "vram": _checks.result("vram")}
    summary = _summary.build_summary(plan(hosts=["a", "b"], hostvars={"a": {}, "b": {}}), [
        ("a", "a", {"checks": rows}), ("b", "b", {"checks": "ok"})])
    checks = summary["hosts"]["a"]["checks"]
    assert {n: r["status"] for n, r in checks.items()} == {
        "gpu_health": "fail", "ramdisk": "unknown", "gpu_count": "unknown", "vram": "ok"}
    assert checks["gpu_count"]["message"] == ("the host's gpu_count result cannot be read: problem 1 has the status "
                                              "'ok', not warn, fail or unknown")
    assert [(i["host"], i["check"]) for i in summary["hard_failures"]] == [("a", "gpu_health"), ("b", "probe")]
    assert [(i["check"], i["status"]) for i in summary["warnings"]] == [("ramdisk", "unknown"), ("gpu_count", "unknown")]
    assert summary["hard_failures"][1]["message"] == ("b: the preflight module's result cannot be read: its checks are "
                                                      "text ('ok'), not a mapping of check names to results")
    # a row that says it failed stays a failure when what it failed on cannot be read
    summary = _summary.build_summary(plan(hosts=["a"], hostvars={"a": {}}), [
        ("a", "a", {"checks": {"gpu_health": {"status": "fail", "problems": "GPU 3 is lost"}}})])
    assert [(i["check"], i["status"]) for i in summary["hard_failures"]] == [("gpu_health", "fail")]
    assert summary["hard_failures"][0]["message"] == (
        "a: the host's gpu_health result cannot be read: its problems are text, not a list")
    # a readiness gate never passes on a result it could not read
    gate = expecting_no_checks(_plan.build_plan("serving_gate", None, hosts=["serve-1"], now=1000.0))
    summary = _summary.build_summary(gate, [("serve-1", "serve-1", {"checks": {"orchestrator": {"status": "ok!"}}})])
    assert summary["ready"] is False and summary["hard_failures"][0]["status"] == "unknown"


@pytest.mark.parametrize("fact, value", [
    ("gpus", ["x"]), ("gpus", "x"), ("gpus", None), ("usable_gpus", None), ("unverified_gpus", 3),
    ("processes", "x"), ("gpu_tool", ["x"]), ("gpu_count", "12"), ("elapsed_s", True), ("elapsed_s", float("nan"))])
def test_a_host_fact_of_another_shape_is_left_out_and_said_never_a_traceback(fact, value):
    # a host module that is not this collection's (another version, changed by hand) may send anything
    res = node_result(**{fact: value})
    summary = _summary.build_summary(plan(), [("rig-6600", "rig-6600", res)])
    entry = summary["hosts"]["rig-6600"]
    assert entry["checks"]["gpu_health"]["status"] == "ok" and summary["passed"] is True
    if value is None:
        assert entry[fact] in (None, []) and "unreadable_facts" not in entry
    else:
        assert entry["unreadable_facts"] == [fact] and entry[fact] != value
    assert _summary.render_lines(summary) and json.dumps(summary, allow_nan=False)


# Real results (ansible-core 2.21, OpenSSH 9.2) of hosts that answered but did not run the module.
CHANGED_HOST_KEY = (
    'Task failed: Data could not be sent to remote host "10.0.0.7". Make sure this host can be reached over ssh: '
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!"
    "     @\r\n@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\nIT IS POSSIBLE THAT SOMEONE IS DOING "
    "SOMETHING NASTY!\r\nAdd correct host key in /home/w/.ssh/known_hosts to get rid of this message.\r\nOffending "
    "ED25519 key in /home/w/.ssh/known_hosts:2\r\n  remove with:\r\n  ssh-keygen -f \"/home/w/.ssh/known_hosts\" -R "
    "\"10.0.0.7\"\r\nHost key for 10.0.0.7 has changed and you have requested strict checking.\r\nHost key verification "
    "failed.")
WRAPPER_ENOSPC = ('Traceback (most recent call last):\n  File "<stdin>", line 266, in <module>\n  File "<stdin>", line '
                  '255, in _ansiballz_main\nOSError: [Errno 28] No space left on device\n')
MODULE_RAISED = ('Traceback (most recent call last):\n  File "<stdin>", line 266, in <module>\n  File "<stdin>", line '
                 '258, in _ansiballz_main\n  File "<stdin>", line 101, in invoke_module\n  File "<frozen runpy>", line '
                 '226, in run_module\nOSError: [Errno 28] No space left on device\n')


def test_connection_failures_name_their_cause_and_what_to_do():
    deserialize = "Module result deserialization failed: No start of json char found"
    summary = _summary.build_summary(plan(), [
        ("a", "10.0.0.7", {"unreachable": True, "msg": CHANGED_HOST_KEY}),
        ("b", "10.0.0.8", {"unreachable": True, "msg": 'Data could not be sent to remote host "10.0.0.8". Make sure '
                           "this host can be reached over ssh: root@10.0.0.8: Permission denied (publickey)."}),
        ("c", "10.0.0.9", {"unreachable": True, "msg": "No ED25519 host key is known for 10.0.0.9 and you have "
                           "requested strict checking.\r\nHost key verification failed."}),
        ("d", "10.0.0.10", {"failed": True, "msg": deserialize, "module_stderr": WRAPPER_ENOSPC, "module_stdout": ""}),
        ("e", "e", {"failed": True, "msg": deserialize, "module_stderr": MODULE_RAISED, "module_stdout": ""}),
        ("f", "f", {"failed": True, "msg": deserialize, "module_stdout": "This account is currently not available.\n",
                    "module_stderr": "Could not chdir to home directory /nonexistent: No such file or directory\n"}),
        ("g", "g", {"failed": True, "msg": "Task failed: failed to transfer file to /x /root/.ansible/tmp/a/m.py:\n\ndd: "
                    "error writing '/root/.ansible/tmp/a/m.py': No space left on device\n0 bytes copied"}),
    ])
    got = dict((i["host"], (i["check"], i["message"], i["fix"])) for i in summary["hard_failures"])
    assert got["a"][:2] == ("ssh", "a (10.0.0.7) unreachable: Host key verification failed: its SSH host key is not "
                            "the one known_hosts holds (the old key: /home/w/.ssh/known_hosts line 2)")
    assert "ssh-keygen -R 10.0.0.7" in got["a"][2] and "man-in-the-middle" in got["a"][2]
    assert got["b"][:2] == ("ssh", "b (10.0.0.8) unreachable: SSH login refused (root@10.0.0.8: Permission denied "
                            "(publickey))")
    assert "ansible_user and ansible_ssh_private_key_file" in got["b"][2]
    assert got["c"][:2] == ("ssh", "c (10.0.0.9) unreachable: Host key verification failed: known_hosts holds no key "
                            "for it")
    assert got["d"] == ("probe", "d (10.0.0.10): the preflight module could not start: Ansible could not unpack it into "
                        "the host's temp folder: OSError: [Errno 28] No space left on device", _summary.TEMP_FIX)
    # the module's own traceback is not the wrapper's: the generic probe failure, with the check's own fix
    assert got["e"] == ("probe", "e: the preflight module failed: %s: OSError: [Errno 28] No space left on device"
                        % deserialize, "Run the preflight with -vvv to see the module error; check that python3 works on the host.")
    assert got["f"][1] == ("f: the preflight module failed: %s: the host printed: This account is currently not "
                           "available.: Could not chdir to home directory /nonexistent: No such file or directory"
                           % deserialize)
    assert "\n" not in got["g"][1] and got["g"][2] == _summary.TEMP_FIX
    assert all("\n" not in i["message"] and "\r" not in i["message"] for i in summary["hard_failures"])


def test_a_timed_out_module_says_the_login_may_hang_and_how_to_tell():
    the_plan = plan()
    summary = _summary.build_summary(the_plan, [
        ("a", "10.0.0.5", {"failed": True, "msg": "Task failed: Timed out after 50 second(s).", "timedout": {"period": 50}})])
    item = summary["hard_failures"][0]
    assert item["message"] == ("a (10.0.0.5): the preflight module did not finish within %ss; no check result came back "
                               "(the login may hang before it starts)" % the_plan["host_timeout"])
    assert item["fix"].startswith("Check that `ssh <user>@10.0.0.5 true` (the inventory's user) returns at once")


@pytest.mark.parametrize("ssh_said, reason, fix_part", [
    ("Failed to connect to the host via ssh: @@@@@@@@@@@\r\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n"
     "Offending ECDSA key in /root/.ssh/known_hosts:7\r\nHost key verification failed.",
     "Host key verification failed: its SSH host key is not the one known_hosts holds (the old key: "
     "/root/.ssh/known_hosts line 7)", "ssh-keygen -R 10.0.0.2"),
    ("Failed to connect to the host via ssh: Host key verification failed.",
     "Host key verification failed: known_hosts holds no key for it", "ssh-keyscan 10.0.0.2"),
    ("Failed to connect to the host via ssh: rig@10.0.0.2: Permission denied (publickey,password).",
     "SSH login refused (rig@10.0.0.2: Permission denied (publickey,password))", "authorized_keys"),
])
def test_an_ssh_failure_of_a_host_that_answered_names_its_cause_and_fix(ssh_said, reason, fix_part):
    summary = _summary.build_summary(plan(), [("rig-6600", "10.0.0.2", {"unreachable": True, "msg": ssh_said})])
    [item] = summary["hard_failures"]
    assert item["check"] == "ssh" and item["message"] == "rig-6600 (10.0.0.2) unreachable: " + reason
    assert fix_part in item["fix"]
