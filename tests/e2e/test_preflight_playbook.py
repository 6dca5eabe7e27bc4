"""playbooks/preflight.yml end to end: exit codes and summary contents (issue 2's list and more)."""

from __future__ import annotations

import os

RIG, RIG_B = "rig-6600", "rig-6600b"


def test_healthy_cluster_passes(cluster, preflight):
    made = cluster({RIG: {}, RIG_B: {}})
    run = preflight(made.write_inventory())
    assert run.rc == 0, run.output
    assert run.summary["passed"] is True and run.summary["hard_failures"] == [] and run.summary["warnings"] == []
    assert run.summary["schema"] == "gpuops.preflight.summary" and run.summary["schema_version"] == 1
    for name in (RIG, RIG_B):
        host = run.host(name)
        assert host["usable_gpus"] == list(range(12))
        assert set(host["checks"]) == {"ramdisk", "inputs", "gpu_health", "gpu_available", "gpu_count", "kernel_log", "vram",
                                       "gpu_temperature", "ramdisk_space"}
        assert set(c["status"] for c in host["checks"].values()) == {"ok"}
        # the preflight costs one GPU-tool call per host
        assert len(made[name].tool_calls("rocm-smi")) == 1
    assert run.output.rstrip().splitlines()[-2].startswith("Preflight PASSED for step 3")


def test_missing_ramdisk_file_blocks_and_names_it(cluster, preflight):
    made = cluster({RIG: {}, RIG_B: {}})
    made[RIG_B].remove_ramdisk_file(3, "holdout_history.json")
    run = preflight(made.write_inventory())
    assert run.rc != 0
    assert run.summary["passed"] is False
    [(host, check, message)] = run.items("hard_failures")
    assert (host, check) == (RIG_B, "ramdisk")
    assert "holdout_history.json is missing from %s/step3/" % made[RIG_B].ramdisk_root in message
    assert "Preflight BLOCKED: ramdisk: rig-6600b: holdout_history.json is missing" in run.output


def test_lost_gpu_blocks(cluster, preflight):
    made = cluster({RIG: {}})
    made[RIG].lose_gpu(4)
    bdf = made[RIG].gpu(4).bdf
    run = preflight(made.write_inventory())
    assert run.rc != 0
    [(host, check, message)] = run.items("hard_failures")
    assert (host, check) == (RIG, "gpu_health")
    assert "GPU 4 (%s) is lost: PCI config space reads all-ones" % bdf in message
    assert 4 not in run.host(RIG)["usable_gpus"] and len(run.host(RIG)["usable_gpus"]) == 11
    # the count check says it too, as a warning
    assert (RIG, "gpu_count") in [(h, c) for h, c, _m in run.items("warnings")]


def test_smu_failure_on_a_gpu_blocks(cluster, preflight):
    made = cluster({RIG: {}})
    made[RIG].smu_failure(2, fixture="mi300x")
    run = preflight(made.write_inventory())
    assert run.rc != 0
    [(host, check, message)] = run.items("hard_failures")
    assert (host, check) == (RIG, "gpu_health")
    assert message.startswith("rig-6600: GPU 2 (%s) is degraded: kernel log: " % made[RIG].gpu(2).bdf)
    assert "0xFFFFFFFF" in message


def test_smu_failure_on_an_excluded_gpu_only_warns_and_names_it(cluster, preflight):
    made = cluster({RIG: {"excluded_gpus": [2]}})
    made[RIG].smu_failure(2, fixture="mi300x")
    run = preflight(made.write_inventory())
    assert run.rc == 0, run.output
    assert run.summary["passed"] is True
    warning = [w for w in run.summary["warnings"] if w["check"] == "gpu_health"][0]
    assert warning["gpu"] == {"index": 2, "bdf": made[RIG].gpu(2).bdf, "excluded": True}
    assert warning["message"].endswith("(GPU 2 (%s) is in excluded_gpus)" % made[RIG].gpu(2).bdf)
    assert run.host(RIG)["usable_gpus"] == [0, 1] + list(range(3, 12))


def test_excluded_gpu_by_pci_address(cluster, preflight):
    made = cluster({RIG: {}})
    bdf = made[RIG].gpu(5).bdf
    made[RIG].set_inventory(excluded_gpus=[bdf.upper()])  # rocm-smi spells it upper case
    made[RIG].lose_gpu(5)
    run = preflight(made.write_inventory())
    assert run.rc == 0, run.output
    assert run.host(RIG)["excluded_gpus"] == [5]


def test_count_mismatch_only_warns(cluster, preflight):
    made = cluster({RIG: {"gpus": 10, "expected_gpu_count": 12}})
    run = preflight(made.write_inventory())
    assert run.rc == 0, run.output
    assert run.items("warnings") == [(RIG, "gpu_count", "rig-6600: expected 12 GPUs, found 10")]


def test_hanging_rocm_smi_is_unknown_with_sysfs_facts_within_its_timeout(cluster, preflight):
    made = cluster({RIG: {}})
    made[RIG].set_tool_mode("hang")
    run = preflight(made.write_inventory(), 3, "preflight_gpu_tool_timeout=3")
    assert run.rc == 0, run.output   # a tool that could not answer is a warning, not a block
    host = run.host(RIG)
    assert host["gpu_tool"]["timed_out"] is True and host["gpu_tool"]["outcome"] == "timeout"
    assert host["checks"]["gpu_health"]["status"] == "unknown"
    assert [g["health"] for g in host["gpus"]] == ["unknown"] * 12
    assert host["gpus"][0]["vram_total_bytes"] and "sysfs" in host["gpus"][0]["sources"]
    assert host["usable_gpus"] == [] and host["unverified_gpus"] == list(range(12))
    [warning] = run.summary["warnings"]
    assert warning["check"] == "gpu_health" and "rocm-smi timed out after 3s and was killed" in warning["message"]


def test_unreachable_host_blocks_and_names_host_and_address(cluster, preflight):
    made = cluster({RIG: {}}, unreachable=["rig-gone"])
    run = preflight(made.write_inventory())
    assert run.rc != 0
    [(host, check, message)] = run.items("hard_failures")
    assert (host, check) == ("rig-gone", "ssh")
    assert message.startswith("rig-gone (127.0.0.1) unreachable: ")
    assert run.host("rig-gone")["reachable"] is False
    assert run.host(RIG)["usable_gpus"] == list(range(12))  # the others are complete


def test_downgrade_turns_a_block_into_a_warning(cluster, preflight):
    made = cluster({RIG: {}}, unreachable=["rig-gone"])
    run = preflight(made.write_inventory(), 3, "preflight_downgrade=ssh")
    assert run.rc == 0, run.output
    assert run.summary["hard_failures"] == []
    assert run.summary["warnings"][0]["message"].endswith("(downgraded by preflight_downgrade)")
    assert run.summary["downgraded_checks"] == ["ssh"]


def test_skip_does_not_run_the_check(cluster, preflight):
    made = cluster({RIG: {}})
    made[RIG].remove_ramdisk_file(3, "train_history.json")
    run = preflight(made.write_inventory(), 3, {"preflight_skip": ["ramdisk", "kernel_log"]})
    assert run.rc == 0
    assert run.host(RIG)["checks"]["ramdisk"]["status"] == "skipped"
    assert run.host(RIG)["checks"]["kernel_log"]["status"] == "skipped"


def test_recent_findings_on_a_watchlisted_gpu_block_and_other_soft_findings_warn(cluster, preflight):
    made = cluster({RIG: {"gpu_watchlist": [7]}})
    made[RIG].kernel_lines("ring_gfx_timeout_kiq_test_failed_rx6800_rocm5.2_rocm-arch-829.txt", gpu=7)
    made[RIG].kernel_lines(["amdgpu 0000:99:00.0: amdgpu: [gfxhub] page fault (src_id:0 ring:24 vmid:8 pasid:32776)"])
    run = preflight(made.write_inventory())
    assert run.rc != 0
    [(host, check, message)] = run.items("hard_failures")
    assert (host, check) == (RIG, "gpu_health")
    assert message.startswith("rig-6600: GPU 7 (%s) is on gpu_watchlist and the kernel log shows " % made[RIG].gpu(7).bdf)
    assert message.endswith("within the watch window (24 h)")
    assert [(c, m.split(" (")[0]) for _h, c, m in run.items("warnings")] == [
        ("kernel_log", "rig-6600: device 0000:99:00.0: GPU page fault")]


def test_step_is_validated_before_any_host_is_contacted(cluster, preflight):
    made = cluster({RIG: {}})
    inventory = made.write_inventory()
    for step, fragment in (("three", "step must be a step number of 0 or more, whole or decimal (e.g. -e step=3 or "
                                     "-e step=2.5), got 'three' (steps defined: 1, 2, 3)"), ("9", "step 9 is not in preflight_steps"),
                           ("", "step is required")):
        run = preflight(inventory, step)
        assert run.rc != 0 and fragment in run.output, run.output
        assert run.summary is None
    run = preflight(inventory, 3, {"preflight_skip": ["gpu_helth"]})
    assert run.rc != 0
    assert "preflight_skip: unknown check 'gpu_helth'; valid checks are: ssh, probe, run_budget, ramdisk" in run.output
    assert made[RIG].tool_calls("rocm-smi") == []


def test_no_rigs_in_the_inventory_is_an_error(workdir, preflight):
    import os
    inventory = os.path.join(workdir, "empty.yml")
    with open(inventory, "w") as handle:
        handle.write("all:\n  hosts: {}\n")
    run = preflight(inventory)
    assert run.rc != 0 and "no hosts in group 'rigs'" in run.output


def test_role_variables_are_validated_once_before_any_host(cluster, preflight):
    made = cluster({RIG: {}, RIG_B: {}})
    run = preflight(made.write_inventory(), 3, "preflight_gpu_tool=bogus", "preflight_gpu_temp_warn_c=hot")
    assert run.rc != 0 and run.summary is None
    assert "value of preflight_gpu_tool must be one of: auto, rocm-smi, amd-smi, sysfs, got: bogus" in run.output
    assert "argument 'preflight_gpu_temp_warn_c' is of type str and we were unable to convert to float" in run.output
    assert "<class" not in run.output
    # one validation for the run, not a validation task per host
    assert "Validating arguments against arg spec" not in run.output
    assert made[RIG].tool_calls("rocm-smi") == [] and made[RIG_B].tool_calls("rocm-smi") == []


def test_metrics_for_node_exporter_when_asked(cluster, preflight, cleanup, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    made = cluster({RIG: {}})
    made[RIG].lose_gpu(4)
    inventory = made.write_inventory()
    folder = tmp_path / "textfiles"
    folder.mkdir()
    run = preflight(inventory, 3, "preflight_textfile_dir=%s" % folder)
    assert run.rc != 0
    assert sorted(os.listdir(str(folder))) == ["gpuops_preflight.prom"]
    families = {f.name: f for f in text_string_to_metric_families((folder / "gpuops_preflight.prom").read_text())}
    lost = [s for s in families["gpuops_gpu_health"].samples if s.labels["index"] == "4" and s.value == 1]
    assert [s.labels["state"] for s in lost] == ["lost"]
    # the cleanup writes its own file beside it, from the preflight's setting
    assert cleanup(inventory, 3, "preflight_textfile_dir=%s" % folder).rc == 0
    assert sorted(os.listdir(str(folder))) == ["gpuops_cleanup.prom", "gpuops_preflight.prom"]
    # off by default, and a folder that is not there is a note, never a failed run
    run = preflight(inventory, 3, "preflight_textfile_dir=%s" % (tmp_path / "missing"))
    assert any(n.startswith("metrics not written to") for n in run.summary["notes"])


def test_gpu_gone_from_amd_smi_blocks_on_an_amd_smi_only_host(cluster, preflight):
    """The SMU-hang incident with amd-smi as the tool: the GPU stays in sysfs and leaves amd-smi's list, whose
    metric entries carry no address. ``amd-smi list`` names the gone GPU; when it fails too, the shortfall blocks."""
    made = cluster({RIG: {"gpus": 4, "amd_smi": "list"}})
    gone = made[RIG].vanish_from_tool(2).bdf
    run = preflight(made.write_inventory(), 3, "preflight_gpu_tool=amd-smi")
    assert run.rc != 0
    [(host, check, message)] = run.items("hard_failures")
    assert (host, check) == (RIG, "gpu_health")
    assert message == "rig-6600: GPU %s is degraded: amd-smi no longer reports it while it is still on the PCI bus" % gone
    assert made[RIG].tool_calls("amd-smi") == ["metric --json", "list --json"]
    made[RIG].clear_calls("amd-smi")
    made[RIG].set_tool_mode("fail", tool="amd-smi", subcommand="list", rc=2)
    run = preflight(made.write_inventory(), 3, "preflight_gpu_tool=amd-smi")
    assert run.rc != 0
    [(host, check, message)] = run.items("hard_failures")
    assert (host, check) == (RIG, "gpu_health")
    assert "amd-smi lists 3 GPU(s) where sysfs shows 4 with a DRM card: 1 no longer answers it" in message
    assert [g["health"] for g in run.host(RIG)["gpus"]] == ["unknown"] * 4
    assert (RIG, "gpu_count") in [(h, c) for h, c, _m in run.items("warnings")]


def test_a_host_without_rocm_smi_is_probed_with_amd_smi_and_a_gone_gpu_blocks(cluster, preflight):
    # ROCm 7 hosts may have amd-smi only: the tool chosen by default (auto) must still find the gone GPU
    made = cluster({RIG: {"gpus": 4, "amd_smi": "list"}})
    gone = made[RIG].vanish_from_tool(1).bdf
    run = preflight(made.write_inventory(), 3, "preflight_rocm_smi=/nonexistent/rocm-smi")
    assert run.rc != 0 and run.host(RIG)["gpu_tool"]["name"] == "amd-smi"
    [(host, check, message)] = run.items("hard_failures")
    assert (host, check) == (RIG, "gpu_health") and gone in message and "amd-smi no longer reports it" in message
