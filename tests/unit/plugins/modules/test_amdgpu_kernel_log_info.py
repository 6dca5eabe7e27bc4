"""Tests of the amdgpu_kernel_log_info module: run main() and read its JSON result."""

from __future__ import annotations

import json
import pathlib
import time

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpuops.preflight.plugins.modules import amdgpu_kernel_log_info

FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "fixtures"
DMESG = FIXTURES / "gpu" / "dmesg"
T = 1767225600.0  # 2026-01-01T00:00:00Z


def run_module(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        amdgpu_kernel_log_info.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def log_file(tmp_path, name):
    """A recorded log as it would be on disk: without the recorder's '# ' header."""
    text = (DMESG / name).read_text(encoding="utf-8")
    path = tmp_path / "kern.log"
    path.write_text("\n".join(line for line in text.split("\n") if not line.startswith("# ")), encoding="utf-8")
    return str(path)


@pytest.fixture
def tools(mocker):
    mocker.patch("ansible.module_utils.basic.AnsibleModule.get_bin_path",
                 side_effect=lambda name, *a, **k: "/testbin/%s" % name)
    return mocker.patch("ansible.module_utils.basic.AnsibleModule.run_command")


def test_file_source_on_a_recorded_log(capsys, tmp_path):
    path = log_file(tmp_path, "smu_0xffffffff_hanged_state_pcie_link_down_lkml-2025-11.txt")
    rc, result = run_module(capsys, {"source": "file", "path": path})
    assert rc == 0 and result["changed"] is False
    assert (result["hard_count"], result["soft_count"]) == (13, 0)
    assert result["source"] == "file" and result["cmd"] is None and result["note"] is None
    assert result["lines_scanned"] == 20 and result["since"] is None
    assert isinstance(result["elapsed_s"], float)
    first = result["findings"][0]
    assert first == {
        "category": "bus_lost", "severity": "hard", "bdf": None, "summary": "PCIe slot link down",
        "fix": first["fix"], "message": "pcieport 0000:00:01.1: pciehp: Slot(0): Link Down",
        "line": "[13600.900669] [    T140] pcieport 0000:00:01.1: pciehp: Slot(0): Link Down",
        "count": 1, "first_seen": "13600.900669", "last_seen": "13600.900669"}
    hanged = [f for f in result["findings"] if "SMU is in hanged state" in f["message"]]
    assert [(f["category"], f["bdf"]) for f in hanged] == [("smu_no_response", "0000:03:00.0")]


def test_path_alone_reads_the_file_and_severity_filters(capsys, tmp_path):
    path = log_file(tmp_path, "ring_gfx_timeout_kiq_test_failed_rx6800_rocm5.2_rocm-arch-829.txt")
    rc, result = run_module(capsys, {"path": path, "severity": ["hard"]})
    assert rc == 0 and result["source"] == "file"
    assert (result["hard_count"], result["soft_count"]) == (3, 3)  # counts are before the filter
    assert {f["severity"] for f in result["findings"]} == {"hard"} and len(result["findings"]) == 3


def test_since_iso_filters_a_file(capsys, tmp_path):
    path = tmp_path / "journal.log"
    path.write_text(
        "2025-12-31T23:00:00.000000+0000 rig07 kernel: amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!\n"
        "2026-01-01T00:00:01.000000+0000 rig07 kernel: amdgpu 0000:0c:00.0: amdgpu: SMU is in hanged state, failed to send smu message!\n")
    rc, result = run_module(capsys, {"path": str(path), "since": "2026-01-01T00:00:00Z"})
    assert rc == 0 and result["since"] == T
    assert [(f["category"], f["bdf"]) for f in result["findings"]] == [("smu_no_response", "0000:0c:00.0")]
    assert (result["hard_count"], result["soft_count"]) == (1, 0)
    rc, result = run_module(capsys, {"path": str(path), "since": "1767225600"})
    assert result["since"] == T and len(result["findings"]) == 1


def test_bad_since_fails_naming_the_value(capsys, tmp_path):
    rc, result = run_module(capsys, {"path": str(tmp_path / "x"), "since": "yesterday"})
    assert rc == 1 and result["failed"] is True
    assert result["msg"].startswith("since: invalid time 'yesterday'")
    assert "ISO 8601" in result["msg"]


def test_file_source_without_path_fails(capsys):
    rc, result = run_module(capsys, {"source": "file"})
    assert rc == 1 and "path" in result["msg"]


def test_path_with_another_source_fails(capsys, tmp_path):
    rc, result = run_module(capsys, {"source": "journal", "path": str(tmp_path / "x")})
    assert rc == 1 and result["msg"] == "path is only read with source=file (or source=auto), not source=journal"


def test_timeout_must_be_positive(capsys):
    rc, result = run_module(capsys, {"timeout": 0})
    assert rc == 1 and result["msg"] == "timeout must be at least 1 second, got 0"


def test_bad_choice_fails(capsys):
    rc, result = run_module(capsys, {"source": "syslog"})
    assert rc == 1 and "syslog" in result["msg"]


def test_unreadable_file_fails_with_the_reason(capsys, tmp_path):
    missing = tmp_path / "missing.log"
    rc, result = run_module(capsys, {"path": str(missing)})
    assert rc == 1
    assert result["msg"] == "could not read the kernel log: cannot read %s: No such file or directory" % missing
    assert result["timed_out"] is False and result["source"] == "file"


def test_journal_source(capsys, tools):
    tools.return_value = (0, "2026-01-01T00:00:05.000000+0000 rig07 kernel: amdgpu 0000:0b:00.0: amdgpu: "
                             "SMU: response:0xFFFFFFFF for index:9 param:0x00000000 message:GetMetricsTable?\n", "")
    rc, result = run_module(capsys, {"source": "journal", "since": "1767225600", "timeout": 9})
    assert rc == 0
    cmd = tools.call_args[0][0]
    assert cmd == ["/testbin/timeout", "-k", "2", "9", "/testbin/journalctl", "-k", "-b", "0", "-o",
                   "short-iso-precise", "--no-pager", "-q", "--since", "@1767225600"]
    assert result["cmd"] == cmd[4:] and result["source"] == "journal"
    assert [(f["category"], f["bdf"], f["first_seen"]) for f in result["findings"]] == [
        ("smu_no_response", "0000:0b:00.0", "2026-01-01T00:00:05.000000+0000")]


def test_auto_falls_back_to_dmesg(capsys, tools):
    tools.side_effect = [(0, "", ""), (0, "2026-01-01T00:00:05,000000+00:00 amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!\n", "")]
    rc, result = run_module(capsys, {})
    assert rc == 0 and result["source"] == "dmesg"
    assert [c[0][0][4] for c in tools.call_args_list] == ["/testbin/journalctl", "/testbin/dmesg"]
    assert (result["hard_count"], result["soft_count"]) == (0, 1)
    assert "journalctl returned no kernel messages" in result["note"]


def test_log_command_timed_out_fails(capsys, tools):
    def hang(cmd, **kwargs):
        time.sleep(0.95)
        return 124, "", ""
    tools.side_effect = hang
    rc, result = run_module(capsys, {"source": "dmesg", "timeout": 1})
    assert rc == 1 and result["timed_out"] is True
    assert result["msg"] == "could not read the kernel log: dmesg timed out after 1s and was killed"


def test_check_mode_runs(capsys, tmp_path):
    path = log_file(tmp_path, "vm_l2_protection_fault_mmhub_ROCm-amdgpu-150.txt")
    rc, result = run_module(capsys, {"path": path, "_ansible_check_mode": True})
    assert rc == 0 and result["changed"] is False
    assert [(f["category"], f["count"]) for f in result["findings"]] == [("page_fault", 2)]
