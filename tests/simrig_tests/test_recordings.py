"""Every recording the harness can replay loads, and rigs built from it stay faithful to it."""

from __future__ import annotations

import json
import subprocess

import pytest

from simrig import Rig, fixtures, kernel

PER_GPU_KEYS = {"PCI Bus", "GUID", "Node ID", "Unique ID"}


def test_fixture_folder_is_there():
    for kind in ("rocm-smi", "amd-smi", "sysfs", "dmesg"):
        assert fixtures.names(kind), kind


def test_the_replicable_recordings_are_the_expected_ones():
    names = fixtures.replicable_rocm_smi()
    for expected in ("telegraf_rx6700xt_rocm602.json", "rocm6.x_rx6600_gfx1032_showallinfo_proxmox.json",
                     "telegraf_rx6700xt_rocm430.json", "telegraf_rx6700xt_rocm571.json",
                     "telegraf_mi100_rocm571.json", "rocm6.x_mi250_showallinfo_oneline_wandb-mock.json"):
        assert expected in names


@pytest.mark.parametrize("name", fixtures.replicable_rocm_smi())
def test_rig_from_each_rocm_smi_recording(work, name):
    rig = Rig.build(str(work), "r", gpus=3, fixture=name, boot_log=False, step_files=False)
    out = subprocess.run([rig.rocm_smi, "--json"], capture_output=True, check=False)
    doc = json.loads(out.stdout)
    cards = fixtures.rocm_smi_cards(name)
    assert sorted(k for k in doc if k.startswith("card")) == ["card0", "card1", "card2"]
    for gpu in rig.gpus:
        built = doc["card%d" % gpu.index]
        recorded = dict(cards)[gpu.template[0]]
        assert list(built) == list(recorded), "key order and key set are the recording's"
        assert {k for k in built if built[k] != recorded[k]} <= PER_GPU_KEYS
        assert built["PCI Bus"] == gpu.bdf.upper()
    assert len({doc[k]["PCI Bus"] for k in doc if k.startswith("card")}) == 3
    system = fixtures.rocm_smi_system(name)
    if system and "Driver version" in system:
        assert doc["system"] == {"Driver version": system["Driver version"]}


def test_multi_card_recording_uses_each_real_card(work):
    rig = Rig.build(str(work), "mi100", gpus=6, fixture="telegraf_mi100_rocm571.json")
    doc = rig.rocm_smi_document()
    recorded = fixtures.rocm_smi_cards("telegraf_mi100_rocm571.json")
    assert [doc["card%d" % i]["Voltage (mV)"] for i in range(6)] == [c["Voltage (mV)"] for _key, c in recorded]
    only0 = Rig.build(str(work), "mi100b", gpus=3, fixture="telegraf_mi100_rocm571.json", card="card0")
    assert {g.template[0] for g in only0.gpus} == {"card0"}


@pytest.mark.parametrize("name", [n for n in fixtures.names("rocm-smi") if n.endswith(".json")])
def test_any_json_recording_replays_verbatim(rig, name):
    rig.set_tool_output(fixture=name)
    out = subprocess.run([rig.rocm_smi, "--json"], capture_output=True, check=False).stdout
    assert out == fixtures.path("rocm-smi", name).read_bytes()
    json.loads(out)


@pytest.mark.parametrize("name", [n for n in fixtures.names("amd-smi") if n.endswith(".json")])
def test_amd_smi_json_recordings_load(name):
    doc = fixtures.load_json("amd-smi", name)
    assert isinstance(doc, (list, dict)) and doc


@pytest.mark.parametrize("name", fixtures.names("sysfs"))
def test_sysfs_dumps_parse_and_build(work, name):
    dump = fixtures.sysfs_dump(name)
    assert "vbios_version" in dump and not any(k.startswith("#") for k in dump)
    assert all(v.endswith("\n") for v in dump.values())
    rig = Rig.build(str(work), "s", gpus=2, sysfs_dump=name, boot_log=False, step_files=False)
    gpu = rig.gpu(0)
    with open(rig.sys_path(gpu.dev, "vendor")) as handle:
        assert handle.read() == "0x1002\n"
    with open(rig.sys_path(gpu.dev, "hwmon", "hwmon%d" % gpu.hwmon, "temp1_input")) as handle:
        assert handle.read() == "45000\n"


@pytest.mark.parametrize("name", fixtures.names("dmesg"))
def test_dmesg_recordings_load_and_re_address(name):
    messages = fixtures.dmesg_messages(name)
    assert messages, name
    lines = kernel.recording_for_gpu(name, "0000:42:00.0", only_gpu_lines=False)
    source = fixtures.dmesg_source_bdf(messages)
    if source:
        assert any("0000:42:00.0" in m for _stamp, m in lines)
        assert not any(source in m for _stamp, m in lines)
    else:
        assert all(m.startswith("amdgpu 0000:42:00.0: ") for _stamp, m in lines)


@pytest.mark.parametrize("name", fixtures.smu_fixtures())
def test_smu_recordings_inject(rig, name):
    lines = rig.smu_failure(1, fixture=name)
    assert lines and all(rig.gpu(1).bdf in l for l in lines)
    assert all(kernel.line_seconds(l) is not None for l in lines)


def test_smu_fixture_short_names():
    assert fixtures.resolve_smu_fixture("mi300x").startswith("mi300x_smu_0xffffffff")
    assert fixtures.resolve_smu_fixture("rocm5.7_2x7900xtx").startswith("rocm5.7_2x7900xtx")
    assert fixtures.resolve_smu_fixture("smu_0xffffffff_hanged") == fixtures.DEFAULT_SMU_DMESG


def test_text_recordings_used_by_the_modes_load():
    for name in (fixtures.MUTEX_FAILURE, fixtures.EXPECTED_INTEGER, fixtures.NO_JSON_DATA):
        assert fixtures.body_lines("rocm-smi", name)
    assert "WARNING: No JSON data to report" in fixtures.body_lines("rocm-smi", fixtures.NO_JSON_DATA)
