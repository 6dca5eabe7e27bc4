"""Corrupt, truncated, huge (1 GB sparse) and odd files: clear messages, within the check's timeout, bounded memory."""

from __future__ import annotations

import json
import os
import tracemalloc

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _deadline
from ansible_collections.gpuops.preflight.plugins.module_utils import _training_checks as tc
from ansible_collections.gpuops.preflight.plugins.module_utils import _training_health as th
from simtrain import run_checks

GIB = 1024 ** 3


def sparse(path, size, tail=b""):
    with open(path, "wb") as handle:
        handle.truncate(size)
        handle.seek(0, 2)
        handle.write(tail)


def within_timeout_and_memory(check, ctx, limit=64 * 1024 * 1024):
    """Run one check's collectors under the check's own timeout (the runner's deadline), tracing memory."""
    needs = tc.CHECKS[check][1]
    tracemalloc.start()
    try:
        outcomes = _deadline.run_all(dict((c, (lambda c=c: tc.COLLECTORS[c](ctx), th.CHECKS[check].timeout))
                                          for c in needs))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    for name, outcome in outcomes.items():
        assert outcome.ok, "%s: %s" % (name, outcome.describe_failure())
    assert peak < limit, "peak %d bytes" % peak
    return tc.evaluate(check, dict((c, o.value) for c, o in outcomes.items()), ctx, th.CHECKS[check].fix)


def test_a_1gb_log_is_read_from_its_end(hosts):
    host = hosts()
    sparse(host.path("logs", "huge.log"), GIB, b"\nRuntimeError: CUDA error: an illegal memory access was encountered\n")
    problems, _ok_text, details = within_timeout_and_memory("crash_log", host.settings())
    assert [p["details"]["category"] for p in problems] == ["gpu_error"] and details["files"] == 2


def test_a_1gb_log_of_zeros_and_a_binary_log_give_no_crash_and_no_error(hosts):
    host = hosts()
    sparse(host.path("logs", "zeros.log"), GIB)
    with open(host.path("logs", "binary.log"), "wb") as handle:
        handle.write(os.urandom(65536).replace(b"\n", b"x"))
    problems, text, _details = within_timeout_and_memory("crash_log", host.settings())
    assert problems == [] and text == "no crash in the last lines of 3 log files"


def test_non_utf8_crash_line_is_reported_as_valid_text(hosts):
    host = hosts()
    with open(host.path("logs", "latin1.log"), "wb") as handle:
        handle.write(b"Fehler: Ger\xe4t: RuntimeError: CUDA out of memory. Tried to allocate 1 GiB\n")
    problems, _ok_text, _details = within_timeout_and_memory("crash_log", host.settings())
    assert "Ger\ufffdt" in problems[0]["message"]
    json.dumps(problems).encode("utf-8")


@pytest.mark.parametrize("writer, text", [
    (lambda p: sparse(p, GIB), "larger than its limit of 16.0 MiB: not read"),
    (lambda p: open(p, "w").write('{"base_model": "openai/whisper'), "is not valid JSON"),
    (lambda p: open(p, "wb").write(b'{"base_model": "Ger\xe4t"}'), "not UTF-8 text"),
    (os.mkfifo, "is a fifo, not a regular file"),
    (os.mkdir, "is a directory, not a regular file"),
])
def test_bad_config_json_gives_a_clear_error(hosts, writer, text):
    host = hosts(lock=False)
    os.unlink(host.path("config.json"))
    writer(host.path("config.json"))
    problems, _ok_text, _details = within_timeout_and_memory("config", host.settings())
    assert [p["status"] for p in problems] == ["fail"] and text in problems[0]["message"]
    resume = run_checks(host, ["checkpoint_resume", "config_lock"])
    assert resume["checkpoint_resume"]["status"] == "ok"  # auto layout: no false alarm without a config


@pytest.mark.parametrize("writer, text", [
    (lambda p: sparse(p, GIB), "larger than its limit of 16.0 MiB"),
    (lambda p: open(p, "w").write('{"global_step": 50'), "is not valid JSON"),
    (os.mkfifo, "is a fifo"),
])
def test_bad_trainer_state_makes_the_checkpoint_not_resumable_with_the_reason(hosts, writer, text):
    host = hosts()
    path = host.path("current_model", "checkpoint-5000", "trainer_state.json")
    os.unlink(path)
    writer(path)
    problems, _ok_text, _details = within_timeout_and_memory("checkpoint_resume", host.settings())
    # the host's config.json resumes with resume_from_checkpoint true, which takes this newest checkpoint as it is
    assert [p["status"] for p in problems] == ["fail"] and text in problems[0]["message"]
    assert "not resumable" in problems[0]["message"] and "would fail on it or start over" in problems[0]["message"]


@pytest.mark.parametrize("writer, text", [
    (lambda p: sparse(p, GIB), "left as it is"),
    (lambda p: open(p, "w").write('{"kind": "gpuops.preflight.config_lock", "config": {'), "left as it is"),
    (os.mkfifo, "is a fifo"),
])
def test_bad_lock_is_unknown_and_left_alone(hosts, writer, text):
    host = hosts()
    os.unlink(host.path(".config_lock.json"))
    writer(host.path(".config_lock.json"))
    before = os.lstat(host.path(".config_lock.json"))
    problems, _ok_text, _details = within_timeout_and_memory("config_lock", host.settings())
    assert [p["status"] for p in problems] == ["unknown"] and text in problems[0]["message"]
    after = os.lstat(host.path(".config_lock.json"))
    assert (before.st_ino, before.st_size, before.st_mtime_ns) == (after.st_ino, after.st_size, after.st_mtime_ns)


def test_bad_status_file_and_pid_file(hosts):
    host = hosts()
    sparse(host.path("status", "training_status.json"), GIB)
    with open(host.path(".daemon.pid"), "w") as handle:
        handle.write("not-a-pid\n")
    results = run_checks(host, ["daemon", "checkpoint_resume"])
    assert results["daemon"]["status"] == "fail" and "does not hold a PID" in results["daemon"]["message"]
    assert results["checkpoint_resume"]["status"] == "ok"  # an unreadable status says nothing about step 0
    os.unlink(host.path(".daemon.pid"))
    os.mkfifo(host.path(".daemon.pid"))
    problems, _ok_text, _details = within_timeout_and_memory("daemon", host.settings())
    assert "fifo" in problems[0]["message"]
