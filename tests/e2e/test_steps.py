"""Steps between whole numbers (-e step=2.5) end to end: the playbooks, their folders and summaries."""

from __future__ import annotations

import os

from simrig.scenarios import BETWEEN_STEPS, RIG

CLEANUP_STEPS = {"cleanup_steps": [1, 2, 2.5, 3]}


def test_a_decimal_step_is_checked_in_its_own_folder(cluster, preflight):
    made = cluster({RIG: {}}, steps=BETWEEN_STEPS)
    inventory = made.write_inventory()
    for step in ("2.5", "2.50", "02.5"):
        run = preflight(inventory, step)
        assert run.rc == 0, run.output
        assert run.summary["step"] == 2.5 and run.summary["requirements"]["ramdisk"] == ["survivors.json"]
        assert os.path.basename(run.summary["summary_file"]).startswith("summary_step2.5_")
        assert run.host(RIG)["checks"]["ramdisk"]["message"] == "1 file(s) staged"
    made[RIG].remove_ramdisk_file(2.5, "survivors.json")
    run = preflight(inventory, "2.5")
    assert run.rc != 0
    [(host, check, message)] = run.items("hard_failures")
    assert (host, check) == (RIG, "ramdisk")
    assert "survivors.json is missing from %s/step2.5/" % made[RIG].ramdisk_root in message
    assert "Preflight BLOCKED for step 2.5" in run.output


def test_a_step_may_name_its_own_folder(cluster, preflight):
    made = cluster({RIG: {}}, steps=BETWEEN_STEPS)
    inventory = made.write_inventory()
    assert preflight(inventory, "3.5").rc == 0
    made[RIG].remove_ramdisk_file(3.5, "report.json")
    run = preflight(inventory, "3.50")
    assert run.rc != 0
    assert "report.json is missing from %s/stage_3_5/" % made[RIG].ramdisk_root in run.items("hard_failures")[0][2]


def test_a_step_the_inventory_does_not_define_is_refused_with_the_list(cluster, preflight):
    made = cluster({RIG: {}}, steps=BETWEEN_STEPS)
    run = preflight(made.write_inventory(), "2.25")
    assert run.rc != 0 and run.summary is None
    assert "step 2.25 is not in preflight_steps (steps defined: 1, 2, 2.5, 3, 3.5)" in run.output


def test_the_cleanup_after_a_decimal_step(cluster, cleanup):
    made = cluster({RIG: {}}, steps=BETWEEN_STEPS)
    made[RIG].add_caches("trainer")
    inventory = made.write_inventory()
    run = cleanup(inventory, "2.5")
    assert run.rc == 0 and run.summary["applies"] is False
    assert "Cleanup: nothing to do for step 2.5 (not a distributed step)" in run.output
    run = cleanup(inventory, "2.5", CLEANUP_STEPS)
    assert run.rc == 0 and run.summary["applies"] is True and run.summary["step"] == 2.5
    assert run.summary["totals"]["bytes_freed"] > 0
    assert os.path.basename(run.summary["summary_file"]).startswith("cleanup_step2.5_")
