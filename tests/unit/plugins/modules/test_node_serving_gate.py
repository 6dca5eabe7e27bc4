"""node_serving_gate as Ansible runs it (patch_module_args, SystemExit) against the stand-in orchestrator
(tests/simserve, a real HTTP server) and a model store in a temp dir. The playbook around it:
tests/e2e/test_serving_gate.py."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.common.parameters import PASS_VARS
from ansible.module_utils.testing import patch_module_args

import simserve
from simserve import store as st
from simserve.fixtures import open_tmp, orchestrator  # noqa: F401  # pylint: disable=unused-import

from ansible_collections.gpuops.preflight.plugins.module_utils import _serving_gate
from ansible_collections.gpuops.preflight.plugins.modules import node_serving_gate

MODELS = {"crawler": ("org/crawl-7b", "org/crawl-7b"), "mcp": ("org/tools-3b", "models--org--tools-3b")}


def run(capsys, args, check_mode=False):
    with patch_module_args(dict(args, _ansible_check_mode=check_mode)), pytest.raises(SystemExit) as exc:
        node_serving_gate.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture
def layout(open_tmp):
    return st.serving_host(str(open_tmp), MODELS)


def test_a_ready_host_passes_every_check_in_one_run(capsys, layout, orchestrator):
    sim = orchestrator(models=["org/crawl-7b", "org/tools-3b"], ready_after=0.2)
    rc, result = run(capsys, dict(layout, url=sim.url, gate_timeout=20, instance="crawler"))
    assert rc == 0 and result["changed"] is False and result["step"] is None
    assert dict((n, r["status"]) for n, r in result["checks"].items()) == {
        "orchestrator": "ok", "model_map": "ok", "model_store": "ok", "preload": "ok", "mps": "skipped",
        "bus": "skipped"}
    assert result["checks"]["preload"]["details"]["triggered"] is True
    assert result["serving"]["instance"] == "crawler" and result["serving"]["url"] == sim.url


def test_check_mode_reads_the_models_status_and_asks_nothing(capsys, layout, orchestrator):
    sim = orchestrator(models=["org/crawl-7b", "org/tools-3b"], ready_after=0.2)
    rc, result = run(capsys, dict(layout, url=sim.url, gate_timeout=20, instance="crawler"), check_mode=True)
    preload = result["checks"]["preload"]
    assert rc == 0 and preload["status"] == "unknown" and preload["details"]["not_sent"] is True
    assert "a real run would ask the orchestrator to preload them (POST /models/preload, not sent in check mode)" \
        in preload["message"]
    assert [r for r in sim.requests if r[0] == "POST"] == []
    # models already loaded: check mode says so, still without a request that changes anything
    ready = orchestrator(models=["org/crawl-7b", "org/tools-3b"], already_ready=True)
    rc, result = run(capsys, dict(layout, url=ready.url, gate_timeout=20, instance="crawler", refresh=True),
                     check_mode=True)
    assert result["checks"]["preload"]["status"] == "ok"
    assert "refresh not sent in check mode" in result["checks"]["preload"]["message"]
    assert [r for r in ready.requests if r[0] == "POST"] == []


def test_checks_and_timeouts_from_the_plan(capsys, layout, orchestrator):
    sim = orchestrator(models=["org/crawl-7b", "org/tools-3b"], already_ready=True)
    rc, result = run(capsys, dict(layout, url=sim.url, checks=["model_map", "model_store"],
                                  timeouts={"model_store": 7}))
    assert rc == 0 and sim.requests == []
    assert result["checks"]["orchestrator"]["message"] == "skipped by serving_gate_skip"
    assert result["checks"]["model_store"]["status"] == "ok"


def test_a_failing_model_is_reported_not_raised(capsys, layout, orchestrator):
    sim = orchestrator(models=["org/crawl-7b", "org/tools-3b"], fail={"org/tools-3b": "CUDA out of memory"})
    rc, result = run(capsys, dict(layout, url=sim.url, gate_timeout=20))
    assert rc == 0 and "failed" not in result
    preload = result["checks"]["preload"]
    assert preload["status"] == "fail"
    assert preload["message"] == ("agent 'mcp' (model 'org/tools-3b') failed to load; the orchestrator says: "
                                  "CUDA out of memory")
    assert preload["problems"][0]["fix"] == _serving_gate.CHECKS["preload"].fix


def test_bad_input_is_refused_with_every_problem_named(capsys, layout):
    rc, result = run(capsys, dict(layout, store_root="relative", gate_timeout=-1, bus_url="ftp://x",
                                  timeouts={"preload": 0, "nope": 3}))
    assert rc == 1 and result["failed"]
    for part in ("timeouts: unknown check 'nope'", "timeouts: preload must be at least 1 second",
                 "gate_timeout must be a number of seconds above 0", "bus_url 'ftp://x' is not an http://",
                 "store_root must be an absolute path, got 'relative'"):
        assert part in result["msg"], result["msg"]
    rc, result = run(capsys, {"store_root": layout["store_root"]})
    assert rc == 1 and "missing required arguments: model_map" in result["msg"]


@pytest.mark.parametrize("url, words", [
    ("", "url is empty: expected e.g. http://127.0.0.1:8014"),  # the role's serving_gate_url: null comes as ""
    (None, "url is empty: expected e.g. http://127.0.0.1:8014"),
    ("http://127.0.0.1:8014/a b", "url 'http://127.0.0.1:8014/a b': white space, control characters and non-ASCII"),
])
def test_a_url_the_plan_refuses_is_refused_by_the_module_before_any_check(capsys, layout, url, words):
    rc, result = run(capsys, dict(layout, url=url, gate_timeout=20))
    assert rc == 1 and result["failed"] and words in result["msg"], result["msg"]
    assert not result.get("checks")


def test_credentials_never_reach_the_result_the_summary_or_the_verdict(capsys, layout, orchestrator, open_tmp):
    """What the orchestrator answers names a URL with a password and a token; a configured URL with either is
    refused. Neither secret is in the module result, the summary the controller writes from it, or its lines."""
    from ansible_collections.gpuops.preflight.plugins.module_utils import _plan, _summary

    models = ["org/crawl-7b", "org/tools-3b"]
    sim = orchestrator(models=models, canned=simserve.canned_with_credentials(models))
    rc, result = run(capsys, dict(layout, url=sim.url, gate_timeout=20, refresh=True))
    assert rc == 0 and result["checks"]["preload"]["status"] == "warn"  # the old error, next to all_ready
    assert result["checks"]["preload"]["details"]["trigger"]["answer"]["from"] == simserve.CREDENTIALS_REDACTED
    plan = _plan.build_plan("serving_gate", None, hosts=["serve-1"], now=1.0)
    summary = _summary.build_summary(plan, [("serve-1", "serve-1", result)], finished=2.0)
    path = _summary.write_summary(summary, str(open_tmp / "summaries"))
    with open(path, encoding="utf-8") as handle:
        written = handle.read()
    for text in (json.dumps(result), written, "\n".join(_summary.render_lines(summary))):
        assert not any(secret in text for secret in simserve.SECRETS), text
    assert simserve.CREDENTIALS_REDACTED in "\n".join(_summary.render_lines(summary))
    rc, result = run(capsys, dict(layout, url="http://gate:S3cretPw@127.0.0.1:%d" % sim.port,
                                  bus_url="http://127.0.0.1:9/health?token=T0kenVal"))
    assert rc == 1 and "'http://***@127.0.0.1:%d': user names or passwords" % sim.port in result["msg"]
    assert not any(secret in json.dumps(result) for secret in simserve.SECRETS)


def test_the_invocation_a_result_carries_has_the_credentials_of_its_urls_redacted(capsys, layout, orchestrator):
    """ansible-core adds ``invocation.module_args`` to a module's result: 2.19 and 2.20 always, later ones when
    inject_invocation is on (``_ansible_inject_invocation``, passed here where this ansible-core knows it). A
    URL with a password or a token is refused, and the refusal's invocation must not quote it whole either (nor
    that of a bad argument AnsibleModule itself refuses): it reaches the runner events and the package's
    failure log (``module_args``)."""
    inject = {"_ansible_inject_invocation": True} if "inject_invocation" in PASS_VARS else {}
    sim = orchestrator(models=["org/crawl-7b", "org/tools-3b"])
    url, bus_url = "http://gate:S3cretPw@127.0.0.1:%d" % sim.port, "http://127.0.0.1:9/health?token=T0kenVal"
    rc, result = run(capsys, dict(layout, url=url, bus_url=bus_url, **inject))
    assert rc == 1 and "user names or passwords in the URL are not supported" in result["msg"]
    assert result["invocation"]["module_args"]["url"] == "http://***@127.0.0.1:%d" % sim.port
    assert result["invocation"]["module_args"]["bus_url"] == "http://127.0.0.1:9/health?token=***"
    assert result["invocation"]["module_args"]["store_root"] == layout["store_root"]  # the rest as given
    assert not any(secret in json.dumps(result) for secret in simserve.SECRETS)
    rc, result = run(capsys, dict(layout, url=url, gate_timeout="soon", **inject))  # refused by AnsibleModule
    assert rc == 1 and "gate_timeout" in result["msg"]
    assert not any(secret in json.dumps(result) for secret in simserve.SECRETS), result
    # a run that goes through echoes its (credential-free) arguments as given
    rc, result = run(capsys, dict(layout, url=sim.url, gate_timeout=20, instance="crawler", **inject))
    assert rc == 0 and result["invocation"]["module_args"]["url"] == sim.url
    assert result["invocation"]["module_args"]["instance"] == "crawler"
