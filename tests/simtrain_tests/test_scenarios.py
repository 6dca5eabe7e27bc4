"""Every scenario: a healthy host changed in one way; exactly the expected checks are not ok, with the right message."""

from __future__ import annotations

import json

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _training_health as th
from ansible_collections.gpuops.preflight.plugins.module_utils._values import clean_text
from simtrain import SCENARIOS, names, run_checks, statuses


@pytest.mark.parametrize("name", names())
def test_scenario(hosts, name):
    scenario = SCENARIOS[name]
    host = hosts(scenario=name)
    results = run_checks(host, **scenario.settings)
    want = dict((check, "ok") for check in th.FAMILY.host_checks)
    want.update(scenario.expect)
    assert statuses(results) == want, dict((k, v["message"]) for k, v in results.items() if v["status"] != "ok")
    for check, text in scenario.messages.items():
        assert text in results[check]["message"], results[check]["message"]
    for result in results.values():
        for problem in result["problems"]:
            assert problem["fix"] and "\n" not in problem["message"]
    assert clean_text(results) == results and json.dumps(results)  # plain, valid UTF-8 JSON


def test_the_catalogue_makes_every_check_fail_on_its_own():
    covered = set()
    for scenario in SCENARIOS.values():
        covered.update(c for c, status in scenario.expect.items() if status != "ok")
    assert covered == set(th.FAMILY.host_checks)
    assert SCENARIOS["healthy"].expect == {} and SCENARIOS["healthy_lora"].expect == {}


def test_a_lora_and_a_full_host_both_pass_with_their_own_layout(hosts):
    for mode, layout in (("full", "full"), ("lora", "lora")):
        host = hosts(name="h-" + mode, mode=mode)
        host.start_daemon()
        results = run_checks(host, ["checkpoint_resume", "checkpoint"])
        assert statuses(results) == {"checkpoint_resume": "ok", "checkpoint": "ok"}
        assert "(%s, step" % layout in results["checkpoint_resume"]["message"]


def test_base_model_change_blocks_only_while_checkpoints_exist(hosts):
    host = hosts(scenario="base_model_changed")
    assert run_checks(host, ["config_lock"])["config_lock"]["status"] == "fail"
    import os
    import shutil
    shutil.rmtree(host.path("current_model", "checkpoint-5000"))
    result = run_checks(host, ["config_lock"])["config_lock"]
    assert result["status"] == "warn" and "base_model changed" in result["message"]
    assert os.path.isdir(host.path("current_model"))
