"""run_serving_gate: real ansible-runner runs of playbooks/serving_gate.yml on serving hosts over the local
connection, against the stand-in orchestrator (tests/simserve, a real HTTP server) and model stores in temp dirs.
The local gate (gpuops-preflight gate, exit codes 0/1/2) is tested in tests/serving."""

from __future__ import annotations

import os
import sys

import yaml

import gpuops_preflight as gp
from bridge.helpers import run_dirs, run_options
from simserve import store as st
from simserve.fixtures import open_tmp, orchestrator  # noqa: F401  # pylint: disable=unused-import

AGENTS = {"crawler": ("org/crawl-7b", "org/crawl-7b"), "mcp": ("org/tools-3b", "models--org--tools-3b")}


def inventory(base, hosts):
    """{name: (orchestrator URL, extra variables)} -> an inventory of serving hosts, each with a complete store."""
    entries = {}
    for name, (url, extra) in hosts.items():
        made = st.serving_host(os.path.join(str(base), name), AGENTS)
        entries[name] = dict({"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                              "serving_gate_url": url, "serving_gate_store_root": made["store_root"],
                              "serving_gate_model_map": made["model_map"], "serving_gate_timeout": 15}, **extra)
    path = os.path.join(str(base), "inventory.yml")
    with open(path, "w") as handle:
        yaml.safe_dump({"all": {"children": {"serving_hosts": {"hosts": entries}}}}, handle, sort_keys=False)
    return path


def test_run_serving_gate_judges_every_host_once(open_tmp, orchestrator):
    ready = orchestrator(models=list(st.MODELS), already_ready=True)
    failing = orchestrator(models=list(st.MODELS), fail={"org/crawl-7b": "safetensors_rust.SafetensorError: "
                                                                         "incomplete metadata"})
    path = inventory(open_tmp, {"serve-ok": (ready.url, {}), "serve-bad": (failing.url, {})})
    seen = []
    report = gp.run_serving_gate(inventory=path, progress=seen.append, instance="crawler",
                                 **run_options(open_tmp))
    assert report.kind == "serving_gate" and report.step is None
    assert report.status == "blocked" and report.blocked_by == "serving_gate_check", report.reason()
    assert [(i.host, i.check, i.code) for i in report.hard_failures] == [("serve-bad", "preload", "MODELS_NOT_READY")]
    assert report.hard_failures[0].message == (
        "serve-bad: agent 'crawler' (model 'org/crawl-7b') failed to load; the orchestrator says: "
        "safetensors_rust.SafetensorError: incomplete metadata")
    assert report.hosts["serve-ok"]["status"] == "passed"
    assert report.lines[0].startswith("Serving gate BLOCKED: 1 hard failure(s), 0 warning(s) (2 host(s)")
    assert sorted(r.host for r in seen) == ["serve-bad", "serve-ok"] and all(r.kind == "serving_gate" for r in seen)
    assert report.summary["instance"] == "crawler" and report.summary["serving"]["gate_timeout"] == 15
    assert os.path.basename(report.summary["summary_file"]).startswith("serving_gate_")
    assert run_dirs(open_tmp) == []   # nothing of the run is kept


def test_keyword_arguments_are_the_roles_variables(open_tmp, orchestrator):
    sim = orchestrator(models=list(st.MODELS), ready_after=0.2)
    path = inventory(open_tmp, {"serve-1": (sim.url, {"serving_gate_model_map": "/nowhere/agent_models.json"})})
    own_map = st.model_map(os.path.join(str(open_tmp), "own_map.json"), AGENTS)
    report = gp.run_serving_gate(inventory=path, model_map=own_map, gate_timeout=20, refresh=True,
                                 skip=["bus"], **run_options(open_tmp))
    assert report.status == "passed", report.reason()
    assert report.summary["skipped_checks"] == ["bus"] and report.summary["serving"]["gate_timeout"] == 20
    assert ("POST", "/models/preload", {"refresh": True}) in sim.requests
    bad = gp.run_serving_gate(inventory=path, gate_timeout="soon", **run_options(open_tmp))
    assert bad.status == "error" and "serving_gate_timeout" in bad.reason()
    bad = gp.run_serving_gate(inventory=path, skip=["nope"], **run_options(open_tmp))
    assert bad.status == "error" and "serving_gate_skip: unknown check 'nope'" in bad.reason()
