"""A GPU whose every sensor reading is implausible (all-ones: 65535, 4294967295, ...) is not verified healthy: its state
is unknown, it is in unverified_gpus and never in usable_gpus, and gpu_health names the readings. One rule for both
vendors and every tool format (_values.all_sensors_implausible). The tool answers are the recorded ones
(tests/fixtures/gpu, tests/fixtures/training) with their numbers edited to all-ones values."""

from __future__ import annotations

import copy
import json
import os

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _gpu_checks, _preflight, _values
from ansible_collections.gpuops.preflight.plugins.module_utils import _gpus as gpus
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.fixtures import recording, training
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.sysfs_tree import add_gpu, add_nvidia_gpu
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.test_gpu_checks import evaluate
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.test_gpus import FakeModule
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.test_gpus_vendors import (
    FakeModule as NvidiaModule)

UINT16_MAX, UINT32_MAX, UINT64_MAX = 2 ** 16 - 1, 2 ** 32 - 1, 2 ** 64 - 1
RX6700 = "telegraf_rx6700xt_rocm602.json"
RX6600_METRIC = "rx6600_gfx1032_metric_proxmox.json"
RTX3090 = "telegraf_1x_rtx3090_525.147.05_q-x.xml"   # its GPU at 00000000:00:10.0
P100_CSV = "netdata_1x_tesla-p100_510.47.03_query-gpu.csv"
H100_TEXT = "gpud_8x_h100-80gb_535.183.01_q_text_first_gpu.txt"
H100_TABLE = "nvidia_gpu_exporter_1x_h100-80gb_590.48.01_table_under_load.txt"


def edited(text, *changes):
    """``text`` with each (old, new) replaced once; the old text must be there."""
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


# ---------------------------------------------------------------- the rule


def reading(field, value, source="rocm-smi"):
    return {"field": field, "value": value, "unit": _values.PLAUSIBLE[field][2], "source": source}


def entry(**values):
    gpu = {"busy_percent": None, "temperature_edge_c": None, "power_w": None, "vram_total_bytes": None,
           "vram_used_bytes": None, "implausible_readings": []}
    gpu.update(values)
    return gpu


def test_the_sensor_readings_are_rows_of_the_one_table():
    assert set(_values.SENSOR_READINGS) <= set(_values.PLAUSIBLE)
    assert "vram_total_bytes" not in _values.SENSOR_READINGS


def test_every_sensor_reading_implausible_is_named():
    garbage = [reading("busy_percent", "65535"), reading("temperature_edge_c", "65535.0"), reading("power_w", "65535.0")]
    assert _values.all_sensors_implausible(entry(implausible_readings=garbage)) == garbage


def test_vram_counters_neither_vouch_for_the_sensors_nor_count_as_sensors():
    garbage = [reading("temperature_edge_c", "4294967295", "nvidia-smi")]
    vram = reading("vram_used_bytes", str(UINT64_MAX))
    # the driver's VRAM bookkeeping reads fine from a GPU whose firmware stopped answering
    assert _values.all_sensors_implausible(entry(vram_total_bytes=8 << 30, implausible_readings=garbage)) == garbage
    # garbage VRAM alone is the vram check's (unknown there), not a GPU whose sensors do not answer
    assert _values.all_sensors_implausible(entry(implausible_readings=[vram])) == []


@pytest.mark.parametrize("values", [{"power_w": 6.0}, {"busy_percent": 0}, {"temperature_edge_c": 36.0}])
def test_one_plausible_sensor_reading_keeps_the_gpu_as_it_was(values):
    garbage = [reading("temperature_edge_c", "65535.0"), reading("busy_percent", "65535")]
    assert _values.all_sensors_implausible(entry(implausible_readings=garbage, **values)) == []


def test_no_reading_at_all_is_not_an_implausible_one():
    # N/A, Not Supported, a key the tool left out: no reading, no record; that is another rule's (sensors silent)
    assert _values.all_sensors_implausible(entry()) == []


# ---------------------------------------------------------------- AMD: rocm-smi, amd-smi, sysfs


def all_ones_rocm_card(bus, ones):
    card = json.loads(recording("rocm-smi", RX6700))["card0"]
    for key in list(card):
        if key.startswith("Temperature (Sensor") or key in ("GPU use (%)", "Average Graphics Package Power (W)"):
            card[key] = ones
    card["PCI Bus"] = "0000:%02X:00.0" % bus
    return card


def hwmon_all_ones(dev, busy, temp_mc, power_uw):
    """The same all-ones values in the sysfs files rocm-smi reads them from."""
    folder = os.path.join(dev, "hwmon", os.listdir(os.path.join(dev, "hwmon"))[0])
    for path, text in ((os.path.join(dev, "gpu_busy_percent"), busy), (os.path.join(folder, "temp1_input"), temp_mc),
                       (os.path.join(folder, "power1_average"), power_uw)):
        with open(path, "w") as handle:
            handle.write(text + "\n")


@pytest.mark.parametrize("ones,sysfs", [
    ("65535", ("65535", "65535000", str(UINT32_MAX))),
    ("65535.0", ("65535", str(UINT32_MAX), str(UINT32_MAX))),
    (str(UINT32_MAX), (str(UINT32_MAX), str(UINT32_MAX), str(UINT64_MAX))),
], ids=["0xffff", "0xffff.0", "0xffffffff"])
def test_rocm_smi_every_sensor_all_ones_is_unknown_not_ok(tmp_path, ones, sysfs):
    root = str(tmp_path / "sys")
    hwmon_all_ones(add_gpu(root, "0000:03:00.0", card=1), *sysfs)
    add_gpu(root, "0000:06:00.0", card=2, busy=0, temp_mc=41000, power_uw=9000000)
    doc = {"card0": all_ones_rocm_card(3, ones), "card1": json.loads(recording("rocm-smi", RX6700))["card0"]}
    doc["card1"]["PCI Bus"] = "0000:06:00.0"
    result = gpus.probe(FakeModule(answer=(0, json.dumps(doc), "")), sysfs_root=root)
    dead, good = result["gpus"]
    assert (dead["health"], dead["responding"], dead["in_tool_output"]) == ("unknown", None, True)
    assert (dead["busy_percent"], dead["temperature_edge_c"], dead["power_w"]) == (None, None, None)
    assert set(r["source"] for r in dead["implausible_readings"]) == {"rocm-smi", "sysfs"}
    assert len(dead["problems"]) == 1
    problem = dead["problems"][0]
    assert "every sensor reading" in problem and "rocm-smi reported temperature_edge_c" in problem
    assert "sysfs reported power_w" in problem and "SMU or firmware" in problem
    assert (good["health"], good["problems"]) == ("ok", [])


def test_rocm_smi_all_ones_but_sysfs_hwmon_answering_keeps_the_gpu_ok(tmp_path):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:03:00.0", card=1, busy=3, temp_mc=41000, power_uw=9000000)
    doc = {"card0": all_ones_rocm_card(3, "65535.0")}
    gpu = gpus.probe(FakeModule(answer=(0, json.dumps(doc), "")), sysfs_root=root)["gpus"][0]
    assert (gpu["health"], gpu["temperature_edge_c"], gpu["problems"]) == ("ok", 41.0, [])
    assert [r["source"] for r in gpu["implausible_readings"]] == ["rocm-smi"] * 4


def test_rocm_smi_one_sensor_all_ones_keeps_the_gpu_ok(tmp_path):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:07:00.0", card=1)
    card = json.loads(recording("rocm-smi", RX6700))["card0"]
    card["Temperature (Sensor edge) (C)"] = "65535.0"
    gpu = gpus.probe(FakeModule(answer=(0, json.dumps({"card0": card}), "")), sysfs_root=root)["gpus"][0]
    assert (gpu["health"], gpu["temperature_edge_c"], gpu["problems"]) == ("ok", 47.0, [])


@pytest.mark.parametrize("ones", [UINT16_MAX, UINT32_MAX, "4294967295"])
def test_amd_smi_every_sensor_all_ones_is_unknown_not_ok(tmp_path, ones):
    root = str(tmp_path / "sys")
    hwmon_all_ones(add_gpu(root, "0000:0b:00.0", card=1), "65535", "65535000", str(UINT32_MAX))
    metric = copy.deepcopy(json.loads(recording("amd-smi", RX6600_METRIC))[0])
    metric["usage"]["gfx_activity"] = {"value": ones, "unit": "%"}
    metric["power"]["socket_power"] = {"value": ones, "unit": "W"}
    for sensor in ("edge", "hotspot", "mem"):
        metric["temperature"][sensor] = {"value": ones, "unit": "C"}
    module = FakeModule(tools=("amd-smi", "timeout"), answer=(0, json.dumps([metric]), ""))
    gpu = gpus.probe(module, sysfs_root=root)["gpus"][0]
    assert gpu["vram_total_bytes"] == 8176 * 1048576  # a plausible VRAM size does not vouch for the sensors
    assert (gpu["health"], gpu["responding"]) == ("unknown", None)
    assert "amd-smi reported busy_percent" in gpu["problems"][0] and "amd-smi reported power_w" in gpu["problems"][0]


def test_sysfs_only_every_sensor_all_ones_names_the_readings(tmp_path):
    root = str(tmp_path / "sys")
    hwmon_all_ones(add_gpu(root, "0000:03:00.0", card=1), "65535", "65535000", str(UINT32_MAX))
    gpu = gpus.probe(FakeModule(tools=("timeout",)), sysfs_root=root)["gpus"][0]
    assert gpu["health"] == "unknown"
    assert any("every sensor reading" in p and "sysfs reported temperature_edge_c" in p for p in gpu["problems"])


# ---------------------------------------------------------------- NVIDIA: every format


NVIDIA_ALL_ONES = [
    (RTX3090, [("<gpu_temp>37 C</gpu_temp>", "<gpu_temp>4294967295 C</gpu_temp>"),
               ("<power_draw>27.23 W</power_draw>", "<power_draw>4294967.295 W</power_draw>"),
               ("<gpu_util>0 %</gpu_util>", "<gpu_util>4294967295 %</gpu_util>")]),
    (P100_CSV, [("0, 0, 37, 28.16,", "4294967295, 0, 4294967295, 4294967.295,")]),
    (H100_TEXT, [("GPU Current Temp                  : 36 C", "GPU Current Temp                  : 4294967295 C"),
                 ("Power Draw                        : 71.97 W", "Power Draw                        : 4294967.295 W"),
                 ("Gpu                               : 0 %", "Gpu                               : 4294967295 %")]),
    (H100_TABLE, [("| N/A   59C    P0            629W /  700W |   19818MiB /  81559MiB |    100%",
                   "| N/A   65535C P0          65535W /  700W |   19818MiB /  81559MiB |  65535%")]),
]


@pytest.mark.parametrize("name,changes", NVIDIA_ALL_ONES, ids=["xml", "csv", "q-text", "table"])
def test_nvidia_smi_every_sensor_all_ones_is_unknown_not_ok(tmp_path, name, changes):
    text = edited(training("nvidia-smi", name), *changes)
    result = gpus.probe(NvidiaModule({"nvidia-smi": (0, text, "")}), sysfs_root=str(tmp_path / "sys"), vendor="nvidia")
    gpu = result["gpus"][0]
    assert gpu["implausible_readings"] and all(r["source"] == "nvidia-smi" for r in gpu["implausible_readings"])
    assert (gpu["busy_percent"], gpu["temperature_edge_c"], gpu["power_w"]) == (None, None, None)
    assert gpu["health"] == "unknown"
    assert "nvidia-smi reported temperature_edge_c" in "; ".join(gpu["problems"])


@pytest.mark.parametrize("name,changes", NVIDIA_ALL_ONES, ids=["xml", "csv", "q-text", "table"])
def test_nvidia_smi_recordings_as_printed_stay_ok(tmp_path, name, changes):
    result = gpus.probe(NvidiaModule({"nvidia-smi": (0, training("nvidia-smi", name), "")}),
                        sysfs_root=str(tmp_path / "sys"), vendor="nvidia")
    assert [g["health"] for g in result["gpus"]] == ["ok"]


def test_nvidia_smi_n_a_sensors_beside_an_all_ones_one_are_no_readings(tmp_path):
    # N/A power and utilisation: readings this GPU does not give; its one temperature reading is all-ones
    text = edited(training("nvidia-smi", RTX3090), ("<gpu_temp>37 C</gpu_temp>", "<gpu_temp>4294967295 C</gpu_temp>"),
                  ("<power_draw>27.23 W</power_draw>", "<power_draw>N/A</power_draw>"),
                  ("<gpu_util>0 %</gpu_util>", "<gpu_util>N/A</gpu_util>"))
    gpu = gpus.probe(NvidiaModule({"nvidia-smi": (0, text, "")}), sysfs_root=str(tmp_path / "sys"),
                     vendor="nvidia")["gpus"][0]
    assert [r["field"] for r in gpu["implausible_readings"]] == ["temperature_edge_c"]
    assert gpu["health"] == "unknown"


def test_nvidia_smi_with_sysfs_joined_all_ones_is_unknown(tmp_path):
    root = str(tmp_path / "sys")
    add_nvidia_gpu(root, "0000:00:10.0")
    text = edited(training("nvidia-smi", RTX3090), *NVIDIA_ALL_ONES[0][1])
    gpu = gpus.probe(NvidiaModule({"nvidia-smi": (0, text, "")}), sysfs_root=root)["gpus"][0]
    assert (gpu["bdf"], gpu["health"], gpu["in_tool_output"], gpu["responding"]) == ("0000:00:10.0", "unknown", True, None)


# ---------------------------------------------------------------- the checks and the published lists


def dead_gpu(index=0, vendor="amd", health="unknown", source="rocm-smi"):
    return {"index": index, "bdf": "0000:%02x:00.0" % (3 + index), "vendor": vendor, "health": health,
            "excluded": False, "responding": None, "in_tool_output": True, "temperature_edge_c": None,
            "busy_percent": None, "power_w": None, "vram_total_bytes": 8 << 30, "vram_used_bytes": 1 << 20,
            "problems": ["every sensor reading ... is implausible"], "warnings": [],
            "implausible_readings": [reading("temperature_edge_c", "65535.0", source),
                                     reading("power_w", "65535.0", source)]}


def good_gpu(index=1):
    return {"index": index, "bdf": "0000:%02x:00.0" % (3 + index), "vendor": "amd", "health": "ok", "excluded": False,
            "responding": True, "in_tool_output": True, "temperature_edge_c": 41.0, "busy_percent": 0, "power_w": 9.0,
            "problems": [], "warnings": [], "implausible_readings": []}


@pytest.mark.parametrize("vendor,source,words", [("amd", "rocm-smi", ("SMU", "journalctl -k", "--gpureset")),
                                                 ("nvidia", "nvidia-smi", ("firmware", "journalctl -k", "nvidia-smi -r"))])
def test_gpu_health_is_unknown_with_a_fix_at_the_kernel_log_a_reset_and_the_smu(vendor, source, words):
    tool = {"answered": True, "outcome": "answered", "reason": None}
    problems, text = evaluate(_preflight.FAMILY, "gpu_health", [dead_gpu(vendor=vendor, source=source), good_gpu()],
                              probe={"tools": {"amd": tool, "nvidia": tool}})
    assert [p["status"] for p in problems] == ["unknown"]
    assert "state unknown" in problems[0]["message"] and "implausible" in problems[0]["message"]
    assert all(word in problems[0]["fix"] for word in words), problems[0]["fix"]
    assert text == "2 GPU(s): 1 ok, 1 unknown"


def test_gpu_count_says_why_it_is_not_verified():
    problems, text = evaluate(_preflight.FAMILY, "gpu_count", [dead_gpu(), good_gpu()], expected_gpu_count=2)
    assert problems == []
    assert text == "expected 2 GPUs, found 2 (1 not verified: every sensor reading implausible, see gpu_health)"


class _Ctx(object):
    params = {}

    def __init__(self, view):
        self.view = view

    def value(self, name):
        return self.view if name == "gpu_view" else None


def test_not_in_usable_gpus_but_in_unverified_gpus():
    view = {"gpus": [dict(dead_gpu(), excluded=False), dict(good_gpu(), excluded=False)],
            "probe": {"mixed_vendors": False, "tool": {}, "processes": [], "notes": []}}
    out = _gpu_checks._publish_view(_Ctx(view))
    assert (out["usable_gpus"], out["unverified_gpus"]) == ([1], [0])
