"""playbooks/serving_gate.yml end to end: the operators' full validation of the serving hosts, over the local
connection, against the real stand-in orchestrator (tests/simserve, an HTTP server on 127.0.0.1) and model
stores laid out in temp dirs (tests/simserve/store.py).

Ready hosts pass; a host whose store lacks a model and a host whose orchestrator fails a model block in one run,
judged once, every check of every host printed with the fixes; an invalid variable or check name is refused before
any host is contacted; an empty group is refused; check mode runs the same checks.
"""

from __future__ import annotations

import os
import sys

import pytest
import yaml

from e2e.runner import run_family_playbook
from simserve import store as st
from simserve.fixtures import open_tmp, orchestrator  # noqa: F401  # pylint: disable=unused-import

PLAYBOOK = os.path.join("playbooks", "serving_gate.yml")
MODELS = {"crawler": ("org/crawl-7b", "org/crawl-7b"), "mcp": ("org/tools-3b", "models--org--tools-3b")}
ALL_MODELS = list(st.MODELS)


def serving_host(base, name, url, **extra):
    """A serving host's files (a complete store and the map) and its inventory variables."""
    made = st.serving_host(os.path.join(str(base), name), MODELS)
    variables = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "serving_gate_url": url, "serving_gate_store_root": made["store_root"], "serving_gate_timeout": 15,
                 "serving_gate_model_map": made["model_map"]}
    variables.update(extra)
    return variables


def inventory(base, hosts, group="serving_hosts"):
    path = os.path.join(str(base), "inventory.yml")
    with open(path, "w") as handle:
        yaml.safe_dump({"all": {"children": {group: {"hosts": hosts}}}}, handle, sort_keys=False)
    return path


def play(base, inventory_path, *extra, flags=()):
    """ansible-playbook playbooks/serving_gate.yml; returns a Run with the one summary it wrote."""
    return run_family_playbook("serving_gate", inventory_path, base, *extra, flags=flags)


def test_ready_hosts_pass(open_tmp, orchestrator):
    sim = orchestrator(models=ALL_MODELS, ready_after=0.3)
    hosts = {"serve-1": serving_host(open_tmp, "serve-1", sim.url),
             "serve-2": serving_host(open_tmp, "serve-2", sim.url, serving_gate_bus_url=sim.url)}
    run = play(open_tmp, inventory(open_tmp, hosts), {"serving_gate_instance": "crawler"})
    assert run.rc == 0, run.output
    summary = run.summary
    assert (summary["kind"], summary["step"], summary["passed"], summary["instance"]) == (
        "serving_gate", None, True, "crawler")
    assert summary["hard_failures"] == [] and summary["warnings"] == []
    assert dict((n, c["status"]) for n, c in summary["hosts"]["serve-2"]["checks"].items()) == {
        "orchestrator": "ok", "model_map": "ok", "model_store": "ok", "preload": "ok", "mps": "skipped", "bus": "ok"}
    assert summary["hosts"]["serve-1"]["checks"]["bus"]["status"] == "skipped"
    assert summary["serving"]["hosts"]["serve-1"]["url"] == sim.url and summary["serving"]["gate_timeout"] == 15
    assert "Serving gate PASSED" in run.output
    # every check of every host is shown
    assert "preload  OK  all 2 model(s) ready, preload triggered" in run.output


def test_hosts_that_are_not_ready_block_in_one_run_with_the_fixes(open_tmp, orchestrator):
    ready = orchestrator(models=ALL_MODELS, already_ready=True)
    failing = orchestrator(models=ALL_MODELS, fail={"org/tools-3b": "CUDA out of memory. Tried to allocate 2.00 GiB"})
    hosts = {"serve-ok": serving_host(open_tmp, "serve-ok", ready.url),
             "serve-store": serving_host(open_tmp, "serve-store", ready.url),
             "serve-oom": serving_host(open_tmp, "serve-oom", failing.url)}
    store = hosts["serve-store"]["serving_gate_store_root"]
    os.rename(os.path.join(store, "org"), os.path.join(store, "elsewhere"))
    run = play(open_tmp, inventory(open_tmp, hosts))
    assert run.rc != 0
    summary = run.summary
    assert summary["blocked"] and summary["hosts"]["serve-ok"]["status"] == "passed"
    assert [(h, c) for h, c, _m in run.items("hard_failures")] == [
        ("serve-store", "model_store"), ("serve-store", "preload"), ("serve-oom", "preload")]
    by_host = dict((h, m) for h, c, m in run.items("hard_failures") if c in ("model_store",) or h == "serve-oom")
    assert by_host["serve-store"] == ("serve-store: agent 'crawler' (model 'org/crawl-7b'): %s/org/crawl-7b is not "
                                      "in the store (STRICT_MODEL_STORE=1: nothing may be downloaded at start-up)"
                                      % store)
    assert by_host["serve-oom"] == ("serve-oom: agent 'mcp' (model 'org/tools-3b') failed to load; the orchestrator "
                                    "says: CUDA out of memory. Tried to allocate 2.00 GiB")
    # the verdict block, with the runbook's fixes, and the play fails naming what blocked
    assert "Serving gate BLOCKED: 3 hard failure(s)" in run.output
    assert "fix: Copy the model into the store before starting the agent" in run.output
    assert "model_store on serve-store; preload on serve-store; preload on serve-oom" in run.output
    assert "preload  UNKNOWN  preloading the models at %s: not run: the model store is not ready" % ready.url in (
        run.output)


def test_check_mode_runs_the_same_checks(open_tmp, orchestrator):
    sim = orchestrator(models=ALL_MODELS, already_ready=True)
    run = play(open_tmp, inventory(open_tmp, {"serve-1": serving_host(open_tmp, "serve-1", sim.url)}),
               flags=("--check",))
    assert run.rc == 0, run.output
    assert run.summary["hosts"]["serve-1"]["checks"]["preload"]["status"] == "ok"
    assert [r for r in sim.requests if r[0] == "POST"] == []  # check mode asks the orchestrator for nothing


@pytest.mark.parametrize("extra, expected", [
    ({"serving_gate_skip": ["preload", "nope"]},
     "serving_gate_skip: unknown check 'nope'; valid checks are: ssh, probe, orchestrator, model_map, model_store, "
     "preload, mps, bus"),
    ({"serving_gate_timeouts": {"preload": -5}}, "serving_gate_timeouts.preload must be 0 or more"),
    ({"serving_gate_summary_keep": -1}, "serving_gate_summary_keep must be a whole number (0 keeps every summary)"),
    ({"serving_gate_timeout": 0}, "serving_gate_timeout must be a number of seconds above 0"),
])
def test_bad_variables_are_refused_before_any_host_is_contacted(open_tmp, orchestrator, extra, expected):
    sim = orchestrator(models=ALL_MODELS, already_ready=True)
    run = play(open_tmp, inventory(open_tmp, {"serve-1": serving_host(open_tmp, "serve-1", sim.url)}), extra)
    assert run.rc != 0 and run.summary is None
    assert expected in run.output, run.output
    assert sim.requests == []


@pytest.mark.parametrize("variable, url, words", [
    ("serving_gate_url", "http://127.0.0.1:99999", "'http://127.0.0.1:99999': port 99999 is out of range"),
    ("serving_gate_url", "http://[::1", "'http://[::1' has no valid host[:port]"),
    ("serving_gate_url", "ftp://127.0.0.1", "'ftp://127.0.0.1' is not an http:// or https:// URL"),
    ("serving_gate_url", "http:// 127.0.0.1", "'http:// 127.0.0.1': white space, control characters and non-ASCII characters are not allowed"),
    ("serving_gate_url", "http://127.0.0.1/a b", "'http://127.0.0.1/a b': white space, control characters and non-ASCII characters are not allowed"),
    ("serving_gate_bus_url", "http://admin:S3cretPass@127.0.0.1:9000",
     "'http://***@127.0.0.1:9000': user names or passwords in the URL are not supported"),
])
def test_each_hosts_own_url_is_refused_before_any_host_is_contacted(open_tmp, orchestrator, variable, url, words):
    """A host's own URL (a host variable) is judged by the gate's rule (_serving.url_problem) in the plan, like the
    run-once host's: the gate would refuse it on that host, so the run stops before any host is contacted, naming
    the host and the variable, in the gate's words (credentials redacted)."""
    sim = orchestrator(models=ALL_MODELS, already_ready=True)
    hosts = {"serve-1": serving_host(open_tmp, "serve-1", sim.url),
             "serve-2": serving_host(open_tmp, "serve-2", sim.url, **{variable: url})}
    run = play(open_tmp, inventory(open_tmp, hosts))
    assert run.rc != 0 and run.summary is None, run.output
    assert "role gpuops.preflight.serving_gate: serve-2: %s %s" % (variable, words) in run.output, run.output
    assert "S3cretPass" not in run.output
    assert sim.requests == []


def test_a_hosts_own_variable_that_does_not_render_is_refused_naming_the_host(open_tmp, orchestrator):
    sim = orchestrator(models=ALL_MODELS, already_ready=True)
    hosts = {"serve-1": serving_host(open_tmp, "serve-1", sim.url),
             "serve-2": serving_host(open_tmp, "serve-2", "{{ no_such_orchestrator_url }}")}
    run = play(open_tmp, inventory(open_tmp, hosts))
    assert run.rc != 0 and run.summary is None, run.output
    assert "role gpuops.preflight.serving_gate: serve-2: serving_gate_url: " in run.output, run.output
    assert "no_such_orchestrator_url" in run.output and sim.requests == []


def test_the_map_is_required(open_tmp, orchestrator):
    sim = orchestrator(models=ALL_MODELS, already_ready=True)
    host = serving_host(open_tmp, "serve-1", sim.url)
    del host["serving_gate_model_map"]
    run = play(open_tmp, inventory(open_tmp, {"serve-1": host}))
    assert run.rc != 0 and run.summary is None and sim.requests == []
    assert "serving_gate_model_map" in run.output


def test_an_empty_group_is_refused(open_tmp):
    run = play(open_tmp, inventory(open_tmp, {"other": {"ansible_connection": "local"}}, group="rigs"))
    assert run.rc != 0 and run.summary is None
    assert "The inventory has no hosts in group 'serving_hosts': nothing to check." in run.output


def test_metrics_for_node_exporter_when_asked(open_tmp, orchestrator):
    """serving_gate_textfile_dir (issue 14): gpuops_serving_gate.prom, the hosts' checks; no GPU series."""
    from prometheus_client.parser import text_string_to_metric_families

    sim = orchestrator(models=ALL_MODELS, already_ready=True)
    path = inventory(open_tmp, {"serve-1": serving_host(open_tmp, "serve-1", sim.url)})
    folder = os.path.join(str(open_tmp), "textfiles")
    os.mkdir(folder)
    run = play(open_tmp, path, "serving_gate_textfile_dir=%s" % folder)
    assert run.rc == 0, run.output
    assert os.listdir(folder) == ["gpuops_serving_gate.prom"]
    with open(os.path.join(folder, "gpuops_serving_gate.prom"), encoding="utf-8") as handle:
        families = dict((f.name, f) for f in text_string_to_metric_families(handle.read()))
    assert set(s.labels["kind"] for f in families.values() for s in f.samples) == {"serving_gate"}
    assert [s.value for s in families["gpuops_run_passed"].samples] == [1]
    current = dict((s.labels["check"], s.labels["status"]) for s in families["gpuops_check_status"].samples
                   if s.labels["host"] == "serve-1" and s.value == 1)
    # every host check, and the controller's own (ssh, probe)
    assert current == dict([(c, r["status"]) for c, r in run.summary["hosts"]["serve-1"]["checks"].items()]
                           + [("ssh", "ok"), ("probe", "ok")])
    assert current["preload"] == "ok" and not [n for n in families if n.startswith("gpuops_gpu_")]
    # a folder that is not there is a note, never a failed gate
    missing = play(open_tmp, path, "serving_gate_textfile_dir=%s" % os.path.join(str(open_tmp), "missing"))
    assert missing.rc == 0 and any(n.startswith("metrics not written to") for n in missing.summary["notes"])
