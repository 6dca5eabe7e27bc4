"""``gpuops-preflight gate`` as systemd runs it: a separate process, settings from the environment
(or flags), one verdict line per check, and the exit code as the contract (0 / 1 / 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import simserve

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def gate(args, env, timeout=60):
    full = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src"))
    for name in ("GPU_ORCHESTRATOR_URL", "AGENT_MODEL_MAP", "MODEL_STORE_ROOT", "STRICT_MODEL_STORE", "GATE_TIMEOUT",
                 "REQUIRE_MPS", "REQUIRE_BUS", "BUS_URL", "PRELOAD_REFRESH", "GATE_CACHE_DIR"):
        full.pop(name, None)
    full.update(env)
    return subprocess.run([sys.executable, "-m", "gpuops_preflight", "gate"] + list(args), env=full, cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout,
                          check=False)


def test_ready_from_the_environment_alone(host, orchestrator):
    sim = orchestrator(models=host.models, ready_after=0.2)
    proc = gate(["--instance", "crawler"], host.env(sim.url))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines[:6]] == ["orchestrator", "model_map", "model_store", "preload", "mps", "bus"]
    assert lines[-2] == "GATE READY: instance crawler may start"
    assert "gate: preload: in progress: 0 of 2 model(s) ready" in proc.stderr
    assert len(host.summaries()) == 1


def test_not_ready_exits_1_with_the_reason(host, orchestrator):
    sim = orchestrator(models=host.models, fail={"org/crawl-7b": "safetensors_rust.SafetensorError: incomplete metadata"})
    proc = gate(["--instance", "mcp"], host.env(sim.url))
    assert proc.returncode == 1
    assert ("preload       FAIL     agents 'crawler', 'bus' (model 'org/crawl-7b') failed to load; the orchestrator "
            "says: safetensors_rust.SafetensorError: incomplete metadata") in proc.stdout
    assert "GATE NOT READY: instance mcp must not start (preload) (exit 1)" in proc.stdout


def test_an_ascii_stdout_gets_escapes_not_a_traceback(host, orchestrator):
    """systemd with LANG unset (or PYTHONIOENCODING=ascii): the orchestrator's text may hold any character."""
    sim = orchestrator(models=host.models, fail={"org/crawl-7b": "CUDA out of memory \u2014 tried \u00e9"})
    proc = gate(["--instance", "mcp"], dict(host.env(sim.url), PYTHONIOENCODING="ascii"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "the orchestrator says: CUDA out of memory \\u2014 tried \\xe9" in proc.stdout
    assert "GATE NOT READY: instance mcp must not start (preload) (exit 1)" in proc.stdout


def test_orchestrator_down_exits_1_within_the_timeout(host):
    proc = gate(["--instance", "crawler", "--timeout", "0.5"],
                host.env("http://127.0.0.1:%d" % simserve.free_port()))
    assert proc.returncode == 1 and "connection refused" in proc.stdout


def test_a_flag_wins_over_the_environment(host, orchestrator):
    sim = orchestrator(models=host.models, already_ready=True)
    env = host.env("http://127.0.0.1:%d" % simserve.free_port(), GATE_TIMEOUT="0.5")
    proc = gate(["--instance", "crawler", "--url", sim.url, "--timeout", "10"], env)
    assert proc.returncode == 0, proc.stdout


def test_json_prints_the_summary_document(host, orchestrator):
    sim = orchestrator(models=host.models, already_ready=True)
    proc = gate(["--instance", "crawler", "--json"], host.env(sim.url))
    assert proc.returncode == 0
    doc = json.loads(proc.stdout)
    assert (doc["schema"], doc["kind"], doc["instance"], doc["ready"]) == ("gpuops.preflight.summary",
                                                                           "serving_gate", "crawler", True)
    assert doc["summary_file"] == os.path.join(host.cache, host.summaries()[0])


def test_bad_input_exits_2(host, orchestrator):
    sim = orchestrator(models=host.models, already_ready=True)
    proc = gate(["--instance", "crawler"], host.env(sim.url, GATE_TIMEOUT="soon"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == "gpuops-preflight gate: GATE_TIMEOUT must be a number of seconds, got 'soon'"
    assert proc.stdout == ""
    proc = gate(["--instance", "crawler", "--strict-model-store", "maybe"], host.env(sim.url))
    assert proc.returncode == 2 and "--strict-model-store must be 1 or 0" in proc.stderr
    proc = gate(["--instance", "crawler", "--no-such-flag"], host.env(sim.url))
    assert proc.returncode == 2 and "unrecognized arguments: --no-such-flag" in proc.stderr
    proc = gate([], host.env(sim.url))
    assert proc.returncode == 2 and "the following arguments are required: --instance" in proc.stderr
    with open(host.map, "wb") as handle:
        handle.write(b'{"crawler": {"model": "org/a", "path": "\xff"}}')
    proc = gate(["--instance", "crawler"], host.env(sim.url))
    assert proc.returncode == 2 and "not valid UTF-8" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    assert sim.requests == []


def test_missing_map_exits_2(host, orchestrator):
    sim = orchestrator(models=host.models, already_ready=True)
    proc = gate(["--instance", "crawler", "--model-map", host.map + ".missing"], host.env(sim.url))
    assert proc.returncode == 2
    assert "model map %s.missing cannot be read: No such file or directory" % host.map in proc.stdout


def test_the_progress_line_passes_no_control_character(monkeypatch, capsys):
    """A model name from the orchestrator with a C1 CSI / OSC or a bidi override must not reach the terminal."""
    from gpuops_preflight import cli
    from gpuops_preflight import gate as gate_module

    def run_gate(settings, progress, show):
        progress("in progress: org/m\x9b2J\x9d0;pwned\x9c\u202eevil\x1b[31m\nforged")
        raise ValueError("bad \x1b]0;title\x07input")

    monkeypatch.setattr(gate_module, "settings_from", lambda flags, env: None)
    monkeypatch.setattr(gate_module, "run_gate", run_gate)
    assert cli.main(["gate", "--instance", "crawler"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gate: preload: in progress: org/m") and err.count("\n") == 2
    assert all(line.isprintable() for line in err.splitlines()), ascii(err)


def test_sigterm_from_systemd_is_said_in_the_journal_and_never_ready(host, orchestrator):
    """systemd ends an ExecStartPre= that outlives TimeoutStartSec= (or a stopped unit's) with SIGTERM: the gate
    died without a word, so the journal did not say why the unit did not start."""
    sim = orchestrator(models=host.models, never_ready=True)
    full = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src"))
    full.update(host.env(sim.url), GATE_TIMEOUT="120")
    proc = subprocess.Popen([sys.executable, "-m", "gpuops_preflight", "gate", "--instance", "crawler"], env=full,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    try:
        first = proc.stderr.readline()  # the preload's first progress line: the gate is well under way
        assert first.startswith("gate: preload: "), first
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, (proc.returncode, err)
    assert ("gpuops-preflight gate: stopped by SIGTERM before its verdict (systemd's TimeoutStartSec= reached, or the "
            "unit was stopped): instance crawler must not start (exit 1)") in err, err
    assert "Traceback" not in err and "GATE READY" not in out
