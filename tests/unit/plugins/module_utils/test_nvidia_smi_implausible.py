"""nvidia-smi readings held to the one plausible-range table (_values.PLAUSIBLE) in every format (XML, -q text, CSV,
table): a sentinel or garbage is not used but recorded in ``implausible``, the checks that need it are unknown. The
answers are the recorded ones (tests/fixtures/training/nvidia-smi, SOURCES.md) with one value changed."""

from __future__ import annotations

import random
import re

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _gpus
from ansible_collections.gpuops.preflight.plugins.module_utils import _nvidia_smi as nv
from ansible_collections.gpuops.preflight.plugins.module_utils import _preflight
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.fixtures import training
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.test_gpu_checks import evaluate

HUGER = "9" * 5000        # more digits than Python's int() converts (ValueError)
RTX3090 = "telegraf_1x_rtx3090_525.147.05_q-x.xml"
P100_CSV = "netdata_1x_tesla-p100_510.47.03_query-gpu.csv"
H100_TEXT = "gpud_8x_h100-80gb_535.183.01_q_text_first_gpu.txt"
H100_TABLE = "nvidia_gpu_exporter_1x_h100-80gb_590.48.01_table_under_load.txt"
A100_MIG = "netdata_1x_a100-sxm4-40gb_mig_510.47.03_q-x.xml"


def recorded(name, old, new, count=1):
    text = training("nvidia-smi", name)
    assert text.count(old) >= count, old
    return text.replace(old, new, count)


def only_card(text):
    parsed = nv.parse_output(text)
    assert parsed["outcome"] == nv.ANSWERED, parsed["reason"]
    return parsed["cards"][0]


def records(card):
    return [(r["field"], r["value"], r["unit"], r["source"]) for r in card["implausible"]]


def test_recorded_readings_are_all_plausible():
    for name in (RTX3090, P100_CSV, H100_TEXT, H100_TABLE, A100_MIG):
        assert only_card(training("nvidia-smi", name))["implausible"] == [], name


# ---------------------------------------------------------------- every format, the same table

GARBAGE_TEMPERATURES = [
    ("4294967295 C", "4294967295"), ("-273 C", "-273"), ("1e999 C", "inf"), (HUGER + " C", "inf"),
    ("[Unknown Error]", "[Unknown Error]"), ("[GPU requires reset]", "[GPU requires reset]"),
    ("ERR!", "ERR!"), ("37 C 37 C", "37 C 37 C"),
]


@pytest.mark.parametrize("text,value", GARBAGE_TEMPERATURES)
def test_xml_temperature_that_is_no_reading_is_recorded_not_used(text, value):
    card = only_card(recorded(RTX3090, "<gpu_temp>37 C</gpu_temp>", "<gpu_temp>%s</gpu_temp>" % text))
    assert card["temperature_edge_c"] is None
    assert records(card) == [("temperature_edge_c", value, "C", "nvidia-smi")]


@pytest.mark.parametrize("text", ["N/A", "[N/A]", "[Not Supported]"])
def test_a_reading_the_gpu_does_not_give_is_no_reading_and_no_record(text):
    # N/A is what a GPU without that sensor prints (a Jetson's power, an old GeForce's utilization): not garbage
    card = only_card(recorded(RTX3090, "<gpu_temp>37 C</gpu_temp>", "<gpu_temp>%s</gpu_temp>" % text))
    assert card["temperature_edge_c"] is None and records(card) == []


@pytest.mark.parametrize("text,value", [("-5.00 W", "-5.0"), ("1e999 W", "inf"), ("4294967.295 W", "4294967.295"),
                                        ("[Unknown Error]", "[Unknown Error]")])
def test_xml_power_that_is_no_reading_is_recorded_not_used(text, value):
    card = only_card(recorded(RTX3090, "<power_draw>27.23 W</power_draw>", "<power_draw>%s</power_draw>" % text))
    assert card["power_w"] is None
    assert records(card) == [("power_w", value, "W", "nvidia-smi")]


def test_xml_vram_and_utilisation_sentinels_are_recorded_not_used():
    text = recorded(RTX3090, "<total>24576 MiB</total>", "<total>18446744073709551615 MiB</total>")
    text = text.replace("<used>1 MiB</used>", "<used>4294967295 MiB</used>", 1)
    text = text.replace("<gpu_util>0 %</gpu_util>", "<gpu_util>4294967295 %</gpu_util>")
    card = only_card(text)
    assert (card["vram_total_bytes"], card["vram_used_bytes"], card["busy_percent"]) == (None, None, None)
    assert sorted(records(card)) == [
        ("busy_percent", "4294967295", "%", "nvidia-smi"),
        ("vram_total_bytes", "1.9342813113834067e+25", "B", "nvidia-smi"),
        ("vram_used_bytes", "4503599626321920", "B", "nvidia-smi")]


def test_q_text_temperature_sentinel_is_recorded_not_used():
    card = only_card(recorded(H100_TEXT, "GPU Current Temp                  : 36 C",
                              "GPU Current Temp                  : 4294967295 C"))
    assert card["temperature_edge_c"] is None
    assert records(card) == [("temperature_edge_c", "4294967295", "C", "nvidia-smi")]


def test_q_text_power_n_a_of_the_module_reading_is_no_record_when_the_gpu_reading_is_known():
    card = only_card(training("nvidia-smi", H100_TEXT))
    assert card["power_w"] == 71.97 and card["implausible"] == []


def test_csv_readings_that_are_no_readings_are_recorded_not_used():
    card = only_card(recorded(P100_CSV, "0, 0, 37, 28.16,", "4294967295, 0, 1e999, -28.16,"))
    assert (card["busy_percent"], card["temperature_edge_c"], card["power_w"]) == (None, None, None)
    assert sorted(records(card)) == [("busy_percent", "4294967295", "%", "nvidia-smi"),
                                     ("power_w", "-28.16", "W", "nvidia-smi"),
                                     ("temperature_edge_c", "inf", "C", "nvidia-smi")]


def test_csv_a_later_power_column_with_a_reading_leaves_no_record():
    text = "name, power.draw [W], power.draw.instant [W], temperature.gpu\nNVIDIA B200, [N/A], 140.15, 31\n"
    card = only_card(text)
    assert card["power_w"] == 140.15 and card["implausible"] == []


def test_csv_vram_sentinel_in_the_header_unit_is_recorded():
    card = only_card("name, memory.total [MiB], memory.used [MiB]\nTesla P100, 16280, 18446744073709551615\n")
    assert (card["vram_total_bytes"], card["vram_used_bytes"]) == (16280 * 1048576, None)
    assert [r["field"] for r in card["implausible"]] == ["vram_used_bytes"]


def test_table_temperature_and_power_garbage_are_recorded_not_used():
    card = only_card(recorded(H100_TABLE, "59C    P0            629W", "65535C    P0           -629W"))
    assert (card["temperature_edge_c"], card["power_w"]) == (None, None)
    assert sorted(records(card)) == [("power_w", "-629", "W", "nvidia-smi"),
                                     ("temperature_edge_c", "65535", "C", "nvidia-smi")]


def test_mig_utilisation_n_a_is_normal_and_no_record():
    card = only_card(training("nvidia-smi", A100_MIG))
    assert card["mig_mode"] == "enabled" and card["busy_percent"] is None and card["implausible"] == []


# ---------------------------------------------------------------- the checks that need them

def nvidia_gpus(text):
    gpus, _notes = _gpus.join_nvidia(nv.parse_output(text), [], True)
    for gpu in gpus:
        gpu.update(health="ok", excluded=False)
    return gpus


def test_nvidia_temperature_sentinel_makes_the_temperature_check_unknown():
    gpus = nvidia_gpus(recorded(RTX3090, "<gpu_temp>37 C</gpu_temp>", "<gpu_temp>4294967295 C</gpu_temp>"))
    assert gpus[0]["implausible_readings"] == [
        {"field": "temperature_edge_c", "value": "4294967295", "unit": "C", "source": "nvidia-smi"}]
    problems, text = evaluate(_preflight.FAMILY, "gpu_temperature", gpus, gpu_temp_warn_c=85.0)
    assert [p["status"] for p in problems] == ["unknown"]
    assert "nvidia-smi reported temperature_edge_c 4294967295 C" in problems[0]["message"]
    assert "nvidia-smi" in problems[0]["fix"]
    assert text == "hottest GPU unknown; 1 GPU(s) with an implausible temperature reading"


def test_nvidia_failed_temperature_read_makes_the_temperature_check_unknown_not_ok():
    gpus = nvidia_gpus(recorded(RTX3090, "<gpu_temp>37 C</gpu_temp>", "<gpu_temp>[Unknown Error]</gpu_temp>"))
    problems, _text = evaluate(_preflight.FAMILY, "gpu_temperature", gpus, gpu_temp_warn_c=85.0)
    assert [p["status"] for p in problems] == ["unknown"]


def test_nvidia_plausible_temperature_still_judged():
    gpus = nvidia_gpus(recorded(RTX3090, "<gpu_temp>37 C</gpu_temp>", "<gpu_temp>91 C</gpu_temp>"))
    problems, _text = evaluate(_preflight.FAMILY, "gpu_temperature", gpus, gpu_temp_warn_c=85.0)
    assert [p["status"] for p in problems] == ["warn"]


def test_vram_sentinel_makes_the_vram_check_unknown_for_that_gpu():
    gpus = nvidia_gpus(recorded(RTX3090, "<used>1 MiB</used>", "<used>4294967295 MiB</used>"))
    probe = {"process_lists": {"nvidia": True}}
    problems, text = evaluate(_preflight.FAMILY, "vram", gpus, probe=probe)
    assert [p["status"] for p in problems] == ["unknown"] and text == "0 process(es) holding VRAM"
    assert "vram_used_bytes" in problems[0]["message"] and problems[0]["gpu"]["bdf"] == "0000:00:10.0"


def test_plausible_vram_leaves_the_vram_check_as_it_was():
    gpus = nvidia_gpus(training("nvidia-smi", RTX3090))
    problems, _text = evaluate(_preflight.FAMILY, "vram", gpus, probe={"process_lists": {"nvidia": True}})
    assert problems == []


# ---------------------------------------------------------------- two errors for one GPU: the worst wins

HANDLE = "Unable to determine the device handle for GPU 0000:09:00.0: %s\n"


@pytest.mark.parametrize("first,second", [("GPU is lost", "Unknown Error"), ("Unknown Error", "GPU is lost")])
def test_gpu_is_lost_beats_unknown_error_in_either_order(first, second):
    errors = nv.gpu_errors(HANDLE % first + HANDLE % second)
    assert [(e["bdf"], e["health"], e["message"]) for e in errors] == [
        ("0000:09:00.0", nv.LOST, "nvidia-smi cannot open the GPU: GPU is lost")]


@pytest.mark.parametrize("first,second", [("Insufficient Permissions", "Unknown Error"),
                                          ("Unknown Error", "Insufficient Permissions")])
def test_a_failing_gpu_beats_a_reason_about_who_asks(first, second):
    errors = nv.gpu_errors(HANDLE % first + HANDLE % second)
    assert [(e["health"], e["message"]) for e in errors] == [(nv.LOST, "nvidia-smi cannot open the GPU: Unknown Error")]


def test_fallen_off_the_bus_beats_an_earlier_unknown_reason():
    errors = nv.gpu_errors(HANDLE % "Insufficient Permissions" + "GPU 0000:09:00.0: GPU has fallen off the bus.\n")
    assert [(e["health"], e["message"]) for e in errors] == [
        (nv.LOST, "nvidia-smi: GPU 0000:09:00.0: GPU has fallen off the bus")]


def test_two_equal_errors_keep_the_first():
    errors = nv.gpu_errors(HANDLE % "Unable to communicate with GPU" + HANDLE % "Something else")
    assert [(e["health"], e["message"]) for e in errors] == [
        (nv.DEGRADED, "nvidia-smi cannot open the GPU: Unable to communicate with GPU")]


# ---------------------------------------------------------------- garbage never crashes nor hangs the parser

OUTCOMES = (nv.ANSWERED, nv.GPU_ERRORS, nv.NO_DRIVER, nv.NO_DATA, nv.UNPARSEABLE, nv.FAILED)
TABLE_3_PROCESSES = "docker-cuda-xmr-stak_3x_gtx1080ti_390.77_table_3_processes.txt"
LIST = "nvidia_gpu_exporter_1x_h200-mig_610.43.02_list.txt"


def parsed_without_crash(text):
    got = nv.parse_output(text)
    assert got["outcome"] in OUTCOMES
    assert got["outcome"] == nv.ANSWERED or got["reason"]
    return got


@pytest.mark.parametrize("name,old", [
    (RTX3090, "<minor_number>0</minor_number>"), (RTX3090, "<fan_speed>0 %</fan_speed>"),
    (RTX3090, "<gpu_util>0 %</gpu_util>"), (RTX3090, "<total>24576 MiB</total>"), (P100_CSV, "16280"),
    (H100_TABLE, "|   0  NVIDIA"), (H100_TABLE, "11327"), (H100_TABLE, "2566MiB"), (TABLE_3_PROCESSES, "|   0  GeForce"),
    (LIST, "GPU 0:"), (H100_TEXT, "81559 MiB"),
])
def test_a_5000_digit_number_anywhere_is_no_crash(name, old):
    digits = "".join(ch if not ch.isdigit() else HUGER for ch in old)
    parsed_without_crash(recorded(name, old, digits))


def test_a_5000_digit_ecc_count_and_counts_overflowing_together_are_unknown():
    text = training("nvidia-smi", RTX3090)
    assert "<sram_uncorrectable>" in text or "<double_bit>" in text or "<dram_uncorrectable>" in text
    text = text.replace("<sram_uncorrectable>0</sram_uncorrectable>", "<sram_uncorrectable>1e308</sram_uncorrectable>")
    text = text.replace("<dram_uncorrectable>0</dram_uncorrectable>", "<dram_uncorrectable>1e308</dram_uncorrectable>")
    card = parsed_without_crash(text)["cards"][0]
    assert card["ecc"]["volatile_uncorrected"] in (None, 0)


@pytest.mark.parametrize("doctype", ["<!DOCTYPE [" * 100000, "<!DOCTYPE nvidia_smi_log [ <!ELEMENT a (#PCDATA)>"])
def test_a_doctype_that_does_not_end_is_refused_naming_it(doctype):
    text = recorded(RTX3090, "<nvidia_smi_log>", doctype + "<nvidia_smi_log>")
    text = text.replace("<!DOCTYPE nvidia_smi_log SYSTEM", "<!-- -->", 1)
    got = parsed_without_crash(text)
    assert got["outcome"] == nv.UNPARSEABLE and "DOCTYPE that does not end" in got["reason"]


def test_the_dtd_nvidia_smi_writes_inside_its_doctype_is_read():
    head = '<!DOCTYPE nvidia_smi_log [\n<!ELEMENT nvidia_smi_log (timestamp, gpu*)>\n<!ELEMENT gpu (#PCDATA)>\n]>\n'
    text = training("nvidia-smi", RTX3090)
    start = text.index("<!DOCTYPE")
    text = text[:start] + head + text[text.index(">", start) + 1:]
    assert parsed_without_crash(text)["cards"][0]["temperature_edge_c"] == 37.0


BILLION_LAUGHS = ('<?xml version="1.0"?>\n<!DOCTYPE nvidia_smi_log [\n <!ENTITY lol "lol">\n'
                  ' <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n'
                  ' <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">\n]>\n'
                  '<nvidia_smi_log><gpu id="00000000:01:00.0"><product_name>&lol3;</product_name></gpu></nvidia_smi_log>\n')


@pytest.mark.parametrize("text", [BILLION_LAUGHS, BILLION_LAUGHS.replace("<!ENTITY", "<!eNtItY\t")])
def test_entities_are_refused_never_expanded(text):
    got = parsed_without_crash(text)
    assert got["outcome"] == nv.UNPARSEABLE and "declares entities" in got["reason"] and got["cards"] == []


@pytest.mark.parametrize("garbage", ["\x00", "\udcff\udcfe", "\ufffe", "&", "<", "]]>", "&#0;"])
def test_nul_bytes_invalid_utf8_and_markup_in_a_value_are_no_crash(garbage):
    parsed_without_crash(recorded(RTX3090, "<gpu_temp>37 C</gpu_temp>", "<gpu_temp>3%s7 C</gpu_temp>" % garbage))
    parsed_without_crash(recorded(P100_CSV, "Tesla P100", "Tesla%s P100" % garbage))
    parsed_without_crash(recorded(H100_TEXT, "81559 MiB", "81%s559 MiB" % garbage))


@pytest.mark.parametrize("name", [RTX3090, H100_TEXT, P100_CSV, H100_TABLE])
def test_truncated_output_at_any_point_is_no_crash(name):
    text = training("nvidia-smi", name)
    for cut in range(0, len(text), max(1, len(text) // 150)):
        parsed_without_crash(text[:cut])


@pytest.mark.parametrize("name", [RTX3090, H100_TEXT, P100_CSV, H100_TABLE, LIST, TABLE_3_PROCESSES])
def test_seeded_random_garbage_in_place_of_numbers_is_no_crash(name):
    garbage = ["1e999", HUGER, "-1e999", "nan", "inf", "\x00", "\udcff", "4294967295", "18446744073709551615", "&",
               "<", "]]>", "<!DOCTYPE x [", "&#xFFFFFFFF;", "-0", "1e-999", "1.2.3", "\n", "\r", ",", "|", ":"]
    text = training("nvidia-smi", name)
    rng = random.Random(name)
    for _round in range(40):
        mutated = re.sub(r"\d+(?:\.\d+)?", lambda m: rng.choice(garbage) if rng.random() < 0.15 else m.group(0), text)
        parsed_without_crash(mutated)


# ---------------------------------------------------------------- a process's memory: the same row as VRAM use

A5000 = "telegraf_2x_rtx-a5000_590.44.01_q-x.xml"


@pytest.mark.parametrize("name,old,new", [
    (A5000, "<used_memory>22430 MiB</used_memory>", "<used_memory>4294967295 MiB</used_memory>"),
    (H100_TABLE, "2566MiB", "4294967295MiB"),
])
def test_a_process_memory_sentinel_is_no_size_and_makes_the_vram_check_unknown(name, old, new):
    parsed = nv.parse_output(recorded(name, old, new))
    bad = [p for p in parsed["processes"] if p["vram_bytes"] is None]
    assert len(bad) == 1
    card = [c for c in parsed["cards"] if c["bdf"] == bad[0]["bdf"]][0]
    assert records(card) == [("vram_used_bytes", "4503599626321920", "B", "nvidia-smi process %d" % bad[0]["pid"])]
    gpus, _notes = _gpus.join_nvidia(parsed, [], True)
    for gpu in gpus:
        gpu.update(health="ok", excluded=False)
    processes = _gpus._nvidia_processes(parsed["processes"])
    problems, _text = evaluate(_preflight.FAMILY, "vram", gpus, processes=processes,
                               probe={"process_lists": {"nvidia": True}}, vram_min_mb=1 << 30)
    assert [(p["status"], p["gpu"]["bdf"]) for p in problems] == [("unknown", bad[0]["bdf"])]
    assert "nvidia-smi process %d reported vram_used_bytes" % bad[0]["pid"] in problems[0]["message"]


def test_table_power_n_a_over_n_a_is_read_as_n_a_not_split_inside_it():
    card = only_card(training("nvidia-smi", "tensorflow-notes_1x_geforce210_340.98_table_processes_not_supported.txt"))
    assert (card["power_w"], card["power_limit_w"], card["vram_used_bytes"]) == (None, None, 2 * 1048576)
    assert records(card) == []   # N/A: a reading this old GeForce does not give, no garbage
    card = only_card(recorded(H100_TABLE, "629W /  700W", "629W /  N/A"))
    assert (card["power_w"], card["power_limit_w"]) == (629.0, None)


# ---------------------------------------------------------------- real recordings (tests/fixtures/training/SOURCES.md)

@pytest.mark.parametrize("name,bdf", [
    ("slurm-ocr-incident_query-gpu_gpu_requires_reset.csv", None),          # temperature [GPU requires reset]
    ("gpu-operator-559_multi_a40_525.125.06_table_gpu0_ERR.txt", "0000:19:00.0"),  # temperature ERR!
])
def test_real_unreadable_temperatures_make_the_temperature_check_unknown_for_that_gpu_only(name, bdf):
    gpus = nvidia_gpus(training("nvidia-smi", name))
    problems, _text = evaluate(_preflight.FAMILY, "gpu_temperature", gpus, gpu_temp_warn_c=85.0)
    assert [(p["status"], p["gpu"]["bdf"]) for p in problems] == [("unknown", bdf)]
    assert "nvidia-smi reported temperature_edge_c" in problems[0]["message"]
