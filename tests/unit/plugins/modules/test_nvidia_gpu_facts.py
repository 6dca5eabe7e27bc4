"""nvidia_gpu_facts as Ansible runs it (patch_module_args, SystemExit), on every recorded nvidia-smi output."""

from __future__ import annotations

import json
import os
import re

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpuops.preflight.plugins.module_utils import _nvidia_smi
from ansible_collections.gpuops.preflight.plugins.modules import nvidia_gpu_facts
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.fixtures import training, training_listing
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.sysfs_tree import add_gpu, add_nvidia_gpu

A5000 = "telegraf_2x_rtx-a5000_590.44.01_q-x.xml"


def run_module(mocker, capsys, args, answer, tools=("nvidia-smi", "timeout")):
    mocker.patch("ansible.module_utils.basic.AnsibleModule.get_bin_path",
                 side_effect=lambda name, *a, **k: "/testbin/%s" % name if name in tools else None)
    run = mocker.patch("ansible.module_utils.basic.AnsibleModule.run_command", return_value=answer)
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        nvidia_gpu_facts.main()
    return exc.value.code, json.loads(capsys.readouterr().out), run


def warnings(result):
    return json.dumps(result.get("warnings", []))  # 2.19+: structured warnings


@pytest.mark.parametrize("name", training_listing("nvidia-smi"))
def test_every_nvidia_smi_recording(mocker, capsys, tmp_path, name):
    text = training("nvidia-smi", name)
    rc, result, run = run_module(mocker, capsys, {"sysfs_root": str(tmp_path)}, (0, text, ""))
    assert rc == 0 and result["changed"] is False
    run.assert_called_once()
    assert run.call_args[0][0] == ["/testbin/timeout", "-k", "2", "15", "/testbin/nvidia-smi", "-q", "-x"]
    facts = result["ansible_facts"]
    parsed = _nvidia_smi.parse_output(text)
    assert facts["nvidia_gpu_tool"]["outcome"] == parsed["outcome"]
    named = len(parsed["cards"]) + len([e for e in parsed["errors"]
                                        if e["bdf"] not in [c["bdf"] for c in parsed["cards"]]])
    assert facts["nvidia_gpu_count"] == named
    for gpu in facts["nvidia_gpus"]:
        assert gpu["vendor"] == "nvidia" and gpu["xid_errors"] == []
        assert gpu["health"] in ("ok", "degraded", "lost")
    if parsed["outcome"] != _nvidia_smi.ANSWERED:
        assert "nvidia-smi gave no answer" in warnings(result)


def test_joined_with_sysfs_lost_and_vanished(mocker, capsys, tmp_path):
    root = str(tmp_path)
    add_nvidia_gpu(root, "0000:41:00.0", lost=True)
    add_nvidia_gpu(root, "0000:81:00.0")
    add_nvidia_gpu(root, "0000:c1:00.0")
    add_nvidia_gpu(root, "0000:e1:00.0")
    add_gpu(root, "0000:03:00.0", card=0)  # an AMD GPU on the same host: not nvidia_gpu_facts' business
    rc, result, _run = run_module(mocker, capsys, {"sysfs_root": root}, (0, training("nvidia-smi", A5000), ""))
    facts = result["ansible_facts"]
    assert [(g["index"], g["bdf"], g["health"]) for g in facts["nvidia_gpus"]] == [
        (0, "0000:41:00.0", "lost"), (1, "0000:81:00.0", "ok"), (2, "0000:c1:00.0", "ok"), (3, "0000:e1:00.0", "degraded")]
    assert facts["nvidia_gpus"][3]["problems"] == ["nvidia-smi no longer reports it while it is still on the PCI bus"]
    assert [(p["pid"], p["index"]) for p in facts["nvidia_gpu_processes"]] == [(100477, 1), (100477, 2)]
    assert facts["nvidia_gpu_processes_available"] is True
    assert facts["nvidia_gpu_tool"]["schema"] == "v13" and facts["nvidia_gpu_tool"]["format"] == "xml"


def test_kernel_log_xid_79_on_an_nvrm_address(mocker, capsys, tmp_path):
    root = str(tmp_path / "sys")
    add_nvidia_gpu(root, "0000:81:00.0")
    add_nvidia_gpu(root, "0000:c1:00.0")
    log = tmp_path / "kern.log"
    log.write_text("[ 5.000000] NVRM: Xid (PCI:0000:c1:00): 79, pid=0, GPU has fallen off the bus.\n")
    rc, result, _run = run_module(mocker, capsys, {"sysfs_root": root, "kernel_log": str(log)},
                                  (0, training("nvidia-smi", A5000), ""))
    gpus = dict((g["bdf"], g) for g in result["ansible_facts"]["nvidia_gpus"])
    assert gpus["0000:c1:00.0"]["health"] == "lost" and "kernel_log" in gpus["0000:c1:00.0"]["sources"]
    assert [(x["xid"], x["category"], x["count"]) for x in gpus["0000:c1:00.0"]["xid_errors"]] == [(79, "bus_lost", 1)]
    assert gpus["0000:81:00.0"]["health"] == "ok" and gpus["0000:81:00.0"]["xid_errors"] == []
    assert result["kernel_log"]["source"] == "file"


def test_tool_missing_is_named_and_warned(mocker, capsys, tmp_path):
    root = str(tmp_path)
    add_nvidia_gpu(root, "0000:81:00.0")
    rc, result, run = run_module(mocker, capsys, {"sysfs_root": root}, (0, "", ""), tools=("timeout",))
    tool = result["ansible_facts"]["nvidia_gpu_tool"]
    assert (tool["outcome"], tool["reason"], run.call_count) == ("missing", "nvidia-smi not found on PATH", 0)
    assert result["ansible_facts"]["nvidia_gpus"][0]["health"] == "unknown"
    assert "nvidia-smi not found on PATH" in warnings(result)


def test_mps_facts_only_when_asked(mocker, capsys, tmp_path):
    proc, pipe = tmp_path / "proc", tmp_path / "pipe"
    os.makedirs(str(proc / "55"))
    (proc / "55" / "cmdline").write_bytes(b"nvidia-cuda-mps-control\0-d\0")
    (proc / "55" / "environ").write_bytes(b"CUDA_MPS_PIPE_DIRECTORY=%s\0" % str(pipe).encode())  # it serves pipe
    os.makedirs(str(pipe))
    args = {"sysfs_root": str(tmp_path / "sys"), "proc_root": str(proc), "mps_pipe_dir": str(pipe),
            "mps_log_dir": str(tmp_path / "nolog")}
    rc, result, _run = run_module(mocker, capsys, args, (0, training("nvidia-smi", A5000), ""))
    assert "nvidia_mps" not in result["ansible_facts"]
    rc, result, run = run_module(mocker, capsys, dict(args, mps=True), (0, "1201\n", ""),
                                 tools=("nvidia-smi", "timeout", "nvidia-cuda-mps-control"))
    mps = result["ansible_facts"]["nvidia_mps"]
    assert (mps["control_daemon_running"], mps["control_daemon_pid"]) == (True, 55)
    assert [s["pid"] for s in mps["servers"]] == [1201]
    assert mps["pipe_dir"]["exists"] is True and mps["log_dir"]["exists"] is False
    assert run.call_args_list[-1][0][0][4:] == ["/bin/sh", "-c", 'echo get_server_list | CUDA_MPS_PIPE_DIRECTORY="$1" "$0"',
                                                "/testbin/nvidia-cuda-mps-control", str(pipe)]


def test_check_mode_and_bad_timeouts(mocker, capsys, tmp_path):
    rc, result, _run = run_module(mocker, capsys, {"sysfs_root": str(tmp_path), "_ansible_check_mode": True},
                                  (0, training("nvidia-smi", A5000), ""))
    assert rc == 0 and result["ansible_facts"]["nvidia_gpu_count"] == 2
    for option in ("timeout", "kernel_log_timeout", "mps_timeout"):
        rc, result, _run = run_module(mocker, capsys, {option: 0}, (0, "", ""))
        assert rc == 1 and result["msg"] == "%s must be at least 1 second, got 0" % option


def test_a_pci_bus_that_cannot_be_listed_is_said(mocker, capsys, tmp_path):
    """A container without the host's /sys: no GPU in sysfs is not "no GPU", and the facts say why."""
    rc, result, _run = run_module(mocker, capsys, {"sysfs_root": str(tmp_path / "nowhere")}, (0, "", ""), tools=("timeout",))
    assert rc == 0 and "ENOENT" in result["ansible_facts"]["nvidia_gpu_sysfs_unread"]
    assert "cannot list" in warnings(result)


def test_a_temperature_sentinel_is_an_implausible_reading_not_a_temperature(mocker, capsys, tmp_path):
    text = re.sub("<gpu_temp>[^<]*</gpu_temp>", "<gpu_temp>4294967295 C</gpu_temp>", training("nvidia-smi", A5000), count=1)
    rc, result, _run = run_module(mocker, capsys, {"sysfs_root": str(tmp_path)}, (0, text, ""))
    gpu = result["ansible_facts"]["nvidia_gpus"][0]
    assert rc == 0 and gpu["temperature_edge_c"] is None
    assert gpu["implausible_readings"] == [
        {"field": "temperature_edge_c", "value": "4294967295", "unit": "C", "source": "nvidia-smi"}]
    assert result["ansible_facts"]["nvidia_gpus"][1]["implausible_readings"] == []
