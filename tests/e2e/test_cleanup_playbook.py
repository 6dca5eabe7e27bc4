"""playbooks/cleanup.yml end to end: caches, idempotence, since-the-step kernel log, never blocking."""

from __future__ import annotations

import os

RIG = "rig-6600"


def test_removes_caches_keeps_symlink_targets_and_is_idempotent(cluster, cleanup):
    made = cluster({RIG: {}})
    rig = made[RIG]
    laid = rig.add_caches("trainer")
    home = rig.home("trainer")
    run = cleanup(made.write_inventory())
    assert run.rc == 0, run.output
    assert "changed=1" in run.output
    caches = run.host(RIG)["caches"]
    removed = sorted(os.path.relpath(r["path"], home) for r in caches["removed"])
    assert ".cache/miopen" in removed and ".cache/comgr_cache" in removed
    assert all(p.startswith(".cache/") for p in removed)
    assert not [p for p in os.listdir(os.path.join(home, ".cache")) if p.startswith(("hip_", "comgr", "miopen"))]
    assert os.path.isdir(os.path.join(home, ".config", "miopen"))  # the tuned-kernel database stays
    assert rig.precious_intact("trainer")  # what the trap links pointed at is untouched
    assert run.summary["totals"]["bytes_freed"] == caches["bytes_freed"] > 0
    assert laid  # the harness laid caches out

    again = cleanup(made.write_inventory())
    assert again.rc == 0 and "changed=0" in again.output
    assert again.host(RIG)["caches"]["removed"] == []


def test_exits_zero_when_everything_fails(cluster, cleanup):
    made = cluster({RIG: {}}, unreachable=["rig-gone"])
    rig = made[RIG]
    rig.add_caches("trainer")
    rig.set_tool_mode("hang")
    rig.set_perf_level(0, "manual")
    rig.break_resetclocks()
    rig.add_vram_holder(48213, 5, 6 * 1024 ** 3)
    os.remove(rig.kernel_log)
    run = cleanup(made.write_inventory(), 3, "cleanup_reset_clocks=true", "preflight_gpu_tool_timeout=3",
                  {"cleanup_timeouts": {"clocks": 8}})
    assert run.rc == 0, run.output
    assert run.summary["passed"] is True and run.summary["hard_failures"] == []
    found = sorted((h, c) for h, c, _m in run.items("warnings"))
    assert ("rig-gone", "ssh") in found
    for check in ("clocks", "gpu_health", "kernel_log"):
        assert (RIG, check) in found, (check, found)
    clocks = " | ".join(m for h, c, m in run.items("warnings") if c == "clocks")
    assert "rocm-smi --resetclocks: rocm-smi timed out after 4s and was killed" in clocks
    assert "still at performance level 'manual' after rocm-smi --resetclocks" in clocks


def test_kernel_log_is_read_only_since_the_step_started(cluster, preflight, cleanup):
    made = cluster({RIG: {}})
    rig = made[RIG]
    rig.smu_failure(3, fixture="mi300x", age_s=3600)  # an hour ago: before this step
    first = preflight(made.write_inventory(), 3, {"preflight_downgrade": ["gpu_health"]})
    assert first.rc == 0
    quiet = cleanup(made.write_inventory())
    assert quiet.summary["since_source"] == "preflight summary"
    assert quiet.host(RIG)["checks"]["kernel_log"]["status"] == "ok"
    rig.kernel_lines("ring_gfx_timeout_kiq_test_failed_rx6800_rocm5.2_rocm-arch-829.txt", gpu=1)
    noisy = cleanup(made.write_inventory())
    messages = [m for _h, c, m in noisy.items("warnings") if c == "kernel_log"]
    assert messages and all("new since the step started on GPU 1" in m for m in messages)


def test_nothing_to_do_after_a_local_step(cluster, cleanup):
    made = cluster({RIG: {}})
    made[RIG].add_caches("trainer")
    run = cleanup(made.write_inventory(), 5)
    assert run.rc == 0
    assert run.summary["applies"] is False
    assert "Cleanup: nothing to do for step 5 (not a distributed step)" in run.output
    assert os.path.isdir(os.path.join(made[RIG].home("trainer"), ".cache", "miopen"))


def test_no_rigs_in_the_inventory_is_an_error(workdir, cleanup):
    # without the check the run "passed" with nothing matched and nothing cleaned (and the bridge said only
    # that the playbook ended without a summary)
    inventory = os.path.join(workdir, "empty.yml")
    with open(inventory, "w") as handle:
        handle.write("all:\n  hosts: {}\n")
    run = cleanup(inventory)
    assert run.rc != 0 and "no hosts in group 'rigs': nothing to clean" in run.output and run.summary is None
