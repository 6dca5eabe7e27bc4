"""AMD GPU readings that are garbage or impossible: one plausible-range table (_values.PLAUSIBLE) for rocm-smi, amd-smi
and sysfs, numbers that would crash a parser, amd-smi's power units. The tool answers are the recorded ones
(tests/fixtures/gpu) with one value changed."""

from __future__ import annotations

import copy
import json
import os

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _amd_smi as amd_smi
from ansible_collections.gpuops.preflight.plugins.module_utils import _gpus as gpus
from ansible_collections.gpuops.preflight.plugins.module_utils import _preflight
from ansible_collections.gpuops.preflight.plugins.module_utils import _rocm_smi as rocm_smi
from ansible_collections.gpuops.preflight.plugins.module_utils import _sysfs, _values
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.fixtures import recording
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.sysfs_tree import add_gpu
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.test_gpu_checks import evaluate
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.test_gpus import FakeModule, rocm_doc

HUGE = "9" * 400          # a 400-digit integer: too big for a float
HUGER = "9" * 5000        # more digits than Python's int() converts (ValueError)


def rocm_card(**changes):
    """The recorded RX 6700 XT card (ROCm 6.0.2, telegraf) with some of its values replaced."""
    card = json.loads(recording("rocm-smi", "telegraf_rx6700xt_rocm602.json"))["card0"]
    card.update(changes)
    return card


def amd_entry(**sections):
    """The recorded RX 6600 amd-smi metric entry with some leaves replaced: {"power": {"socket_power": leaf}}."""
    entry = copy.deepcopy(json.loads(recording("amd-smi", "rx6600_gfx1032_metric_proxmox.json"))[0])
    for section, leaves in sections.items():
        entry[section].update(leaves)
    return entry


# ---------------------------------------------------------------- the table and the numbers


@pytest.mark.parametrize("text,want", [
    ("45", 45), ("45.0", 45.0), (" 6.5 ", 6.5), ("1e3", 1000.0), ("-5", -5), ("N/A", None), ("", None), ("1_000", None),
    ("0x1002", None), ("N/A (Secondary die)", None), (None, None), (True, None),
])
def test_to_number_reads_numbers_and_nothing_else(text, want):
    assert _values.to_number(text) == want


@pytest.mark.parametrize("text", ["1e999", "inf", "-Infinity", "nan", HUGER],
                         ids=["1e999", "inf", "-Infinity", "nan", "5000-digits"])
def test_to_number_never_raises_on_overflow(text):
    got = _values.to_number(text)
    assert isinstance(got, float) and not _values.finite(got)


def test_is_number_of_a_400_digit_integer_does_not_raise():
    assert _values.is_number(int(HUGE)) is True
    assert _values.finite(int(HUGE)) is None
    assert _values.is_number(float("nan")) is False


@pytest.mark.parametrize("field,value,text", [
    ("temperature_edge_c", 65535.0, "65535.0"), ("temperature_edge_c", -41, "-41"),
    ("busy_percent", 6553.5, "6553.5"), ("busy_percent", -1, "-1"),
    ("power_w", -5.0, "-5.0"), ("power_w", 4001, "4001"),
    ("power_w", float("inf"), "inf"), ("power_w", float("nan"), "nan"),
    pytest.param("temperature_edge_c", int(HUGE), "a 400-digit number", id="400-digits"),
])
def test_a_reading_outside_its_range_is_not_used_but_recorded(field, value, text):
    got, record = _values.plausible_reading(field, value, "rocm-smi")
    assert got is None
    assert record == {"field": field, "value": text, "unit": _values.PLAUSIBLE[field][2], "source": "rocm-smi"}


@pytest.mark.parametrize("field,value", [("temperature_edge_c", -40), ("temperature_edge_c", 500), ("busy_percent", 0),
                                         ("busy_percent", 100), ("power_w", 0), ("power_w", 1400.5)])
def test_a_reading_in_range_is_used(field, value):
    assert _values.plausible_reading(field, value, "sysfs") == (value, None)


# ---------------------------------------------------------------- rocm-smi


def test_rocm_smi_sentinels_are_no_readings():
    card = rocm_smi.parse_card(0, rocm_card(**{"Temperature (Sensor edge) (C)": "65535.0", "GPU use (%)": "6553.5",
                                               "Average Graphics Package Power (W)": "-5.0"}))
    assert (card["temperature_edge_c"], card["busy_percent"], card["power_w"]) == (None, None, None)
    assert [(r["field"], r["value"]) for r in card["implausible"]] == [
        ("busy_percent", "6553.5"), ("temperature_edge_c", "65535.0"), ("power_w", "-5.0")]


@pytest.mark.parametrize("reading", [HUGE, HUGER, "1e999", "inf", "nan", HUGE + ".5"],
                         ids=["400-digits", "5000-digits", "1e999", "inf", "nan", "400-digits.5"])
def test_rocm_smi_overflowing_numbers_do_not_crash_the_parser(reading):
    card = rocm_smi.parse_card(0, rocm_card(**{"Temperature (Sensor edge) (C)": reading, "GPU use (%)": reading,
                                               "Average Graphics Package Power (W)": reading,
                                               "VRAM Total Memory (B)": reading}))
    assert (card["temperature_edge_c"], card["busy_percent"], card["power_w"], card["vram_total_bytes"]) == (
        None, None, None, None)
    assert sorted(r["field"] for r in card["implausible"]) == ["busy_percent", "power_w", "temperature_edge_c",
                                                               "vram_total_bytes"]
    json.dumps(card, allow_nan=False)  # what a module returns must be JSON


def test_rocm_smi_document_with_an_integer_too_long_for_int_is_read():
    doc = '{"card0": {"PCI Bus": "0000:03:00.0", "GPU use (%%)": %s, "Temperature (Sensor edge) (C)": "45.0"}}' % HUGER
    cards, _system = rocm_smi.parse(rocm_smi.extract_json(doc))
    assert (cards[0]["busy_percent"], cards[0]["temperature_edge_c"]) == (None, 45.0)


# ---------------------------------------------------------------- amd-smi


@pytest.mark.parametrize("leaf,want", [
    ({"value": 150000, "unit": "mW"}, 150.0), ({"value": 150000000, "unit": "uW"}, 150.0),
    ({"value": 150000000, "unit": "\u00b5W"}, 150.0), ({"value": 150000000, "unit": "\u03bcW"}, 150.0),
    ({"value": 150, "unit": "W"}, 150.0), ({"value": "150.5", "unit": "W"}, 150.5), (150, 150.0),
    ({"value": 150, "unit": "kJ"}, None),   # not a power unit: no reading, never 150 W
])
def test_amd_smi_power_in_milli_and_micro_watts(leaf, want):
    card = amd_smi.parse_entry(amd_entry(power={"socket_power": leaf}))
    assert card["power_w"] == want and card["implausible"] == []


def test_amd_smi_readings_outside_their_range_are_recorded():
    entry = amd_entry(temperature={"edge": {"value": 65535, "unit": "C"}, "hotspot": {"value": "1e999", "unit": "C"}},
                      usage={"gfx_activity": {"value": 6553.5, "unit": "%"}},
                      power={"socket_power": {"value": -5000, "unit": "mW"}})
    card = amd_smi.parse_entry(entry)
    assert (card["temperature_edge_c"], card["temperature_junction_c"], card["busy_percent"], card["power_w"]) == (
        None, None, None, None)
    assert [(r["field"], r["value"], r["unit"], r["source"]) for r in card["implausible"]] == [
        ("busy_percent", "6553.5", "%", "amd-smi"), ("temperature_edge_c", "65535", "C", "amd-smi"),
        ("temperature_junction_c", "inf", "C", "amd-smi"), ("power_w", "-5.0", "W", "amd-smi")]


def test_amd_smi_a_later_path_with_a_real_reading_wins_over_garbage():
    entry = amd_entry(power={"socket_power": {"value": 65535, "unit": "W"}, "average_power": {"value": 6, "unit": "W"}})
    card = amd_smi.parse_entry(entry)
    assert card["power_w"] == 6.0 and [r["value"] for r in card["implausible"]] == ["65535"]


def test_amd_smi_document_with_an_integer_too_long_for_int_is_read():
    text = json.dumps([amd_entry()], indent=4).replace('"gpu": 0', '"gpu": 0, "firmware_timestamp": %s' % HUGER)
    cards, _system = amd_smi.parse(amd_smi.extract_json(text))
    assert (cards[0]["index"], cards[0]["busy_percent"]) == (0, 1)


# ---------------------------------------------------------------- VRAM

UINT64_MAX = str(2 ** 64 - 1)  # what an unread 64-bit counter holds


def test_rocm_smi_vram_sentinels_are_no_sizes():
    card = rocm_smi.parse_card(0, rocm_card(**{"VRAM Total Used Memory (B)": UINT64_MAX, "VRAM Total Memory (B)": "-1",
                                               "GPU Memory Allocated (VRAM%)": "655"}))
    assert (card["vram_total_bytes"], card["vram_used_bytes"], card["vram_used_percent"]) == (None, None, None)
    assert [(r["field"], r["value"], r["unit"]) for r in card["implausible"]] == [
        ("vram_total_bytes", "-1", "B"), ("vram_used_bytes", UINT64_MAX, "B"), ("vram_used_percent", "655", "%")]


@pytest.mark.parametrize("leaf", [1e308, "1e308", {"value": 1e308, "unit": "GB"}, {"value": -5, "unit": "MB"},
                                  {"value": UINT64_MAX, "unit": "B"}])
def test_amd_smi_vram_that_is_no_size_does_not_crash_and_is_recorded(leaf):
    """A bare number is in MB (ROCm 6.0): 1e308 MB overflowed a float and crashed int() with OverflowError."""
    card = amd_smi.parse_entry(amd_entry(mem_usage={"used_vram": leaf}))
    assert card["vram_used_bytes"] is None
    assert [r["field"] for r in card["implausible"]] == ["vram_used_bytes"]


def test_amd_smi_vram_stays_exact_bytes():
    card = amd_smi.parse_entry(amd_entry(mem_usage={"total_vram": {"value": 46064, "unit": "MB"}}))
    assert card["vram_total_bytes"] == 46064 * 1024 * 1024 and isinstance(card["vram_total_bytes"], int)


def test_sysfs_vram_counter_sentinel_is_recorded(tmp_path):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:03:00.0", card=1, vram=(8573157376, 2 ** 64 - 1))
    gpu = _sysfs.scan_gpus(root)[0]
    assert (gpu["vram_total_bytes"], gpu["vram_used_bytes"]) == (8573157376, None)
    result = gpus.probe(FakeModule(tools=("timeout",)), sysfs_root=root)["gpus"][0]
    assert result["vram_used_bytes"] is None
    assert result["implausible_readings"] == [
        {"field": "vram_used_bytes", "value": UINT64_MAX, "unit": "B", "source": "sysfs"}]


# ---------------------------------------------------------------- sysfs


def _hwmon_file(dev, name, text):
    with open(os.path.join(dev, "hwmon", "hwmon1", name), "w") as handle:
        handle.write(text + "\n")


@pytest.mark.parametrize("busy,temp,power,records", [
    ("6553", "65535000", "-5000000", [("busy_percent", "6553"), ("temperature_edge_c", "65535.0"), ("power_w", "-5.0")]),
    pytest.param("50", HUGE, HUGE, [("temperature_edge_c", "inf"), ("power_w", "inf")], id="400-digits"),
])
def test_sysfs_garbage_readings_are_recorded_not_used(tmp_path, busy, temp, power, records):
    root = str(tmp_path / "sys")
    dev = add_gpu(root, "0000:03:00.0", card=1)
    with open(os.path.join(dev, "gpu_busy_percent"), "w") as handle:
        handle.write(busy + "\n")
    _hwmon_file(dev, "temp1_input", temp)
    _hwmon_file(dev, "power1_average", power)
    got = _sysfs.read_metrics(_sysfs.scan_gpus(root)[0])
    assert (got["temperature_edge_c"], got["power_w"]) == (None, None)
    assert [(r["field"], r["value"]) for r in got["implausible"]] == records
    assert all(r["source"] == "sysfs" for r in got["implausible"])


def test_sysfs_garbage_power1_input_falls_back_to_power1_average(tmp_path):
    root = str(tmp_path / "sys")
    dev = add_gpu(root, "0000:03:00.0", card=1, busy=0, temp_mc=41000, power_uw=35000000)
    _hwmon_file(dev, "power1_input", "-1")
    got = _sysfs.read_metrics(_sysfs.scan_gpus(root)[0])
    assert got["power_w"] == 35.0 and [r["field"] for r in got["implausible"]] == ["power_w"]


# ---------------------------------------------------------------- the probe and the checks


def test_rocm_smi_65535_c_makes_the_temperature_check_unknown(tmp_path):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:03:00.0", card=1)
    doc = json.loads(rocm_doc((0, 3)))
    doc["card0"]["Temperature (Sensor edge) (C)"] = "65535.0"
    doc["card0"].pop("Temperature (Sensor junction) (C)", None)
    result = gpus.probe(FakeModule(answer=(0, json.dumps(doc), "")), sysfs_root=root)
    gpu = result["gpus"][0]
    assert gpu["temperature_edge_c"] is None and gpu["health"] == "ok"
    assert gpu["implausible_readings"] == [
        {"field": "temperature_edge_c", "value": "65535.0", "unit": "C", "source": "rocm-smi"}]
    problems, text = evaluate(_preflight.FAMILY, "gpu_temperature", result["gpus"], gpu_temp_warn_c=85.0)
    assert [p["status"] for p in problems] == ["unknown"]
    assert "65535.0 C" in problems[0]["message"] and "rocm-smi" in problems[0]["message"]
    assert text == "hottest GPU unknown; 1 GPU(s) with an implausible temperature reading"


def test_a_gpu_without_any_temperature_reading_stays_as_it_was():
    gpu = {"index": 0, "bdf": "0000:03:00.0", "health": "ok", "excluded": False, "temperature_edge_c": None,
           "implausible_readings": [{"field": "power_w", "value": "-5.0", "unit": "W", "source": "rocm-smi"}]}
    assert evaluate(_preflight.FAMILY, "gpu_temperature", [gpu], gpu_temp_warn_c=85.0) == ([], "hottest GPU unknown")


@pytest.mark.parametrize("doc", [
    {"card" + HUGER: rocm_card(), "card0": rocm_card()},
    {"card0": rocm_card(), "system": {"PID" + HUGER: "python3, 1, 2147483648, 0, 0", "PID42": "python3, 1, 1024, 0, 0"}},
], ids=["card-key", "pid-key"])
def test_rocm_smi_keys_with_more_digits_than_int_converts_are_garbage_not_a_crash(doc):
    outcome, parsed, _reason = rocm_smi.classify(json.dumps(doc), "", 0)
    cards, system = rocm_smi.parse(parsed)
    assert outcome == "answered" and [c["index"] for c in cards] == [0]
    assert [p["pid"] for p in system["processes"]] == ([42] if "system" in doc else [])
