"""rocm_gpu_facts as Ansible runs it (patch_module_args, SystemExit), on every recorded tool output."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpuops.preflight.plugins.module_utils import _amd_smi, _rocm_smi
from ansible_collections.gpuops.preflight.plugins.modules import rocm_gpu_facts
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.fixtures import listing, recording
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.sysfs_tree import add_gpu, add_nvidia_gpu


def run_module(mocker, capsys, args, answer, tools=("rocm-smi", "amd-smi", "timeout")):
    mocker.patch("ansible.module_utils.basic.AnsibleModule.get_bin_path",
                 side_effect=lambda name, *a, **k: "/testbin/%s" % name if name in tools else None)
    run = mocker.patch("ansible.module_utils.basic.AnsibleModule.run_command", return_value=answer)
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        rocm_gpu_facts.main()
    return exc.value.code, json.loads(capsys.readouterr().out), run


def as_printed(name):
    """stdout/stderr as the tool printed them: the stderr recordings went to stderr."""
    text = recording("rocm-smi", name)
    return ("", text) if "stderr" in name or "no_json_data" in name else (text, "")


@pytest.mark.parametrize("name", listing("rocm-smi"))
def test_every_rocm_smi_recording(mocker, capsys, tmp_path, name):
    stdout, stderr = as_printed(name)
    rc, result, run = run_module(mocker, capsys, {"sysfs_root": str(tmp_path), "tool": "rocm-smi"}, (0, stdout, stderr))
    assert rc == 0 and result["changed"] is False
    run.assert_called_once()
    assert run.call_args[0][0][:4] == ["/testbin/timeout", "-k", "2", "15"]
    facts = result["ansible_facts"]
    outcome, doc, _reason = _rocm_smi.classify(stdout, stderr, 0)
    assert facts["rocm_gpu_tool"]["outcome"] == outcome
    if outcome == _rocm_smi.ANSWERED:
        cards = _rocm_smi.parse(doc)[0]
        assert facts["rocm_gpu_count"] == len(cards)
        assert [g["index"] for g in facts["rocm_gpus"]] == [c["index"] for c in cards]
        assert set(g["health"] for g in facts["rocm_gpus"]) == {"ok"}
    else:
        assert facts["rocm_gpu_count"] == 0 and facts["rocm_gpus"] == []
        assert "GPU tool gave no answer" in json.dumps(result.get("warnings", []))  # 2.19+: structured warnings


@pytest.mark.parametrize("name", listing("amd-smi"))
def test_every_amd_smi_recording_where_rocm_smi_is_absent(mocker, capsys, tmp_path, name):
    text = recording("amd-smi", name)
    rc, result, run = run_module(mocker, capsys, {"sysfs_root": str(tmp_path)}, (0, text, ""),
                                 tools=("amd-smi", "timeout"))
    assert rc == 0
    facts = result["ansible_facts"]
    assert facts["rocm_gpu_tool"]["name"] == "amd-smi"
    assert run.call_args[0][0][4:] == ["/testbin/amd-smi", "metric", "--json"]
    doc = _amd_smi.extract_json(text)
    expected = len(_amd_smi.gpu_entries(doc)) if doc is not None else 0
    assert facts["rocm_gpu_count"] == expected
    assert facts["rocm_gpu_tool"]["answered"] is bool(expected)


def test_joined_with_sysfs_and_lost_gpu(mocker, capsys, tmp_path):
    root = str(tmp_path)
    add_gpu(root, "0000:07:00.0", card=0)
    add_gpu(root, "0000:0a:00.0", card=1, lost=True)
    stdout = recording("rocm-smi", "telegraf_rx6700xt_rocm602.json")  # one card, at 0000:07:00.0
    rc, result, _run = run_module(mocker, capsys, {"sysfs_root": root}, (0, stdout, ""))
    gpus = result["ansible_facts"]["rocm_gpus"]
    assert [(g["index"], g["bdf"], g["health"]) for g in gpus] == [(0, "0000:07:00.0", "ok"), (1, "0000:0a:00.0", "lost")]
    assert gpus[0]["sources"] == ["rocm-smi", "sysfs"]


def test_kernel_log_marks_smu_failures(mocker, capsys, tmp_path):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:07:00.0", card=0)
    log = tmp_path / "kern.log"
    log.write_text("[ 5.000000] amdgpu 0000:07:00.0: amdgpu: SMU: response:0xFFFFFFFF for index:9 "
                   "param:0x00000000 message:GetMetricsTable?\n")
    stdout = recording("rocm-smi", "telegraf_rx6700xt_rocm602.json")
    rc, result, _run = run_module(mocker, capsys, {"sysfs_root": root, "kernel_log": str(log)}, (0, stdout, ""))
    gpu = result["ansible_facts"]["rocm_gpus"][0]
    assert gpu["health"] == "degraded" and "0xFFFFFFFF" in gpu["problems"][0]
    assert result["kernel_log"]["source"] == "file"


def test_tool_missing_falls_back_to_sysfs(mocker, capsys, tmp_path):
    root = str(tmp_path)
    add_gpu(root, "0000:07:00.0", card=0, busy=3, temp_mc=41000)
    rc, result, run = run_module(mocker, capsys, {"sysfs_root": root}, (0, "", ""), tools=("timeout",))
    facts = result["ansible_facts"]
    assert facts["rocm_gpu_tool"]["outcome"] == "missing" and run.call_count == 0
    assert facts["rocm_gpus"][0]["temperature_edge_c"] == 41.0 and facts["rocm_gpus"][0]["health"] == "ok"


def test_check_mode_is_supported_and_bad_timeout_rejected(mocker, capsys, tmp_path):
    stdout = recording("rocm-smi", "telegraf_rx6700xt_rocm602.json")
    rc, result, _run = run_module(mocker, capsys, {"sysfs_root": str(tmp_path), "_ansible_check_mode": True},
                                  (0, stdout, ""))
    assert rc == 0 and result["ansible_facts"]["rocm_gpu_count"] == 1
    rc, result, _run = run_module(mocker, capsys, {"timeout": 0}, (0, "", ""))
    assert rc == 1 and result["msg"] == "timeout must be at least 1 second, got 0"


def test_only_amd_gpus_on_a_two_vendor_host(mocker, capsys, tmp_path):
    root = str(tmp_path)
    add_gpu(root, "0000:07:00.0", card=0)
    add_nvidia_gpu(root, "0000:81:00.0")
    stdout = recording("rocm-smi", "telegraf_rx6700xt_rocm602.json")
    rc, result, run = run_module(mocker, capsys, {"sysfs_root": root}, (0, stdout, ""),
                                 tools=("rocm-smi", "nvidia-smi", "timeout"))
    gpus = result["ansible_facts"]["rocm_gpus"]
    assert [(g["bdf"], g["vendor"], g["health"]) for g in gpus] == [("0000:07:00.0", "amd", "ok")]
    assert run.call_count == 1 and run.call_args[0][0][4] == "/testbin/rocm-smi"


def test_non_executable_rocm_smi_is_named(mocker, capsys, tmp_path):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:07:00.0", card=0)
    plain = tmp_path / "rocm-smi"
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o644)
    rc, result, run = run_module(mocker, capsys, {"sysfs_root": root, "tool": "rocm-smi", "rocm_smi": str(plain)},
                                 (0, "", ""))
    tool = result["ansible_facts"]["rocm_gpu_tool"]
    assert (tool["outcome"], run.call_count) == ("missing", 0)
    assert tool["reason"] == "no GPU tool found: %s is not executable (mode 0o644)" % plain
    assert "is not executable" in json.dumps(result.get("warnings", []))


def test_implausible_readings_and_an_unlisted_bus_come_back_as_json(mocker, capsys, tmp_path):
    """The recorded RX 6700 XT card with a 65535 C sentinel and a 400-digit power reading: neither is used, both are
    named, and the result is valid JSON (no Infinity). sysfs here has no bus/pci/devices: said, not read as none."""
    doc = json.loads(recording("rocm-smi", "telegraf_rx6700xt_rocm602.json"))
    doc["card0"].update({"Temperature (Sensor edge) (C)": "65535.0", "Average Graphics Package Power (W)": "9" * 400})
    doc["card0"].pop("Temperature (Sensor junction) (C)")  # else the junction stands in, as on an MI300X
    rc, result, _run = run_module(mocker, capsys, {"sysfs_root": str(tmp_path)}, (0, json.dumps(doc), ""))
    facts = result["ansible_facts"]
    gpu = facts["rocm_gpus"][0]
    assert rc == 0 and (gpu["temperature_edge_c"], gpu["power_w"]) == (None, None)
    assert [(r["field"], r["value"]) for r in gpu["implausible_readings"]] == [
        ("temperature_edge_c", "65535.0"), ("power_w", "a 400-digit number")]
    assert "ENOENT" in facts["rocm_gpu_sysfs_unread"]
    assert "ENOENT" in json.dumps(result["warnings"])  # ansible-core 2.19+ returns warnings as structured summaries
