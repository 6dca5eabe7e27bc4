"""The run_budget check in the preflight playbook: a step-1 plan that history says fails is a warning."""

from __future__ import annotations

import json

RIG = "rig-6600"
FAILED_RUN = {"time": "2026-11-20T10:00:00Z", "step": 1, "trials": 50, "completed_trials": 50, "max_seeds": 10000000,
              "survivors": 0, "duration_s": 7200, "study": "window_opt_1763632800", "outcome": "completed"}


def test_a_plan_that_repeats_a_failed_run_warns_with_the_suggestion(cluster, preflight, tmp_path):
    made = cluster({RIG: {}})
    history = tmp_path / "runs.jsonl"
    history.write_text(json.dumps(FAILED_RUN) + "\n")
    inventory = made.write_inventory()
    risky = {"run_budget_params": {"trials": 50, "max_seeds": 10000000}, "run_history_file": str(history)}
    run = preflight(inventory, 1, risky)
    assert run.rc == 0, run.output
    [(host, check, message)] = [item for item in run.items("warnings") if item[1] == "run_budget"]
    assert host == "controller" and "run_budget_params" in message
    fix = [w["fix"] for w in run.summary["warnings"] if w["check"] == "run_budget"][0]
    assert "100 trials" in fix
    assert "Preflight WARNING: run_budget: run_budget_params" in run.output
    # the proven configuration passes; without the variables the check does not run
    good = dict(risky, run_budget_params={"trials": 100, "max_seeds": 100000})
    assert [w for w in preflight(inventory, 1, good).summary["warnings"] if w["check"] == "run_budget"] == []
    assert preflight(inventory, 1).summary["run_checks"] == {}
