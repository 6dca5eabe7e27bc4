"""_nvidia_smi: every recording to its written expectation (tests/fixtures/training/SOURCES.md), every
schema, the CSV and the error texts, and the value rules (unknown is never zero, ERR! is counted)."""

from __future__ import annotations

import re

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _nvidia_smi as nv
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.fixtures import training, training_listing

MIB = 1024 * 1024
RTX3090 = "telegraf_1x_rtx3090_525.147.05_q-x.xml"
A5000 = "telegraf_2x_rtx-a5000_590.44.01_q-x.xml"
A100_MIG = "netdata_1x_a100-sxm4-40gb_mig_510.47.03_q-x.xml"
H200_MIG_TABLE = "nvidia_gpu_exporter_1x_h200-mig_610.43.02_table_idle.txt"
H200_MIG_CSV = "nvidia_gpu_exporter_1x_h200-mig_610.43.02_query-gpu_all_fields.csv"
H200_MIG_TEXT = "nvidia_gpu_exporter_1x_h200-mig_610.43.02_q_text_idle.txt"
H100_TEXT = "gpud_8x_h100-80gb_535.183.01_q_text_first_gpu.txt"
RTX4090_TEXT = "gpud_8x_rtx4090_535.154.05_q_text_first_gpu.txt"
OLD_TABLE = "docker-cuda-xmr-stak_3x_gtx1080ti_390.77_table_3_processes.txt"
WINDOWS_610 = "nvidia_gpu_exporter_windows_1x_rtx2080super_610.62_table_idle.txt"
H100_MIG_TABLE = "nvidia_gpu_exporter_1x_h100-mig_590.48.01_table_under_load.txt"
NOHEADER_CSV = "telegraf-7659_v100_440.64_query-gpu_noheader_nounits.csv"
ROWS_PENDING = "memory row remapping is pending: reset the GPU (nvidia-smi -r) at the next chance to apply it"
PAGES_PENDING = "retired memory pages are pending: reset the GPU (or reboot) at the next chance to retire them"
REMAP_PENDING_TEXT = "ml-engineering_a100-sxm4-80gb_510.73.08_q_text_xid63_remap_pending_excerpt.txt"
AZURE_INFOROM = "azhpc-diagnostics_8x_v100_460.32.03_table_inforom_corrupted.txt"

# Per recording: outcome, format, and per GPU (bdf, health, MiB free, processes on it).
# SOURCES.md's "healthy"/"busy" are both health ok here (busy = memory held by processes).
EXPECTED = {
    RTX3090: (nv.ANSWERED, "xml", [("0000:00:10.0", nv.OK, 24258, 0)]),
    A5000: (nv.ANSWERED, "xml", [("0000:81:00.0", nv.OK, 1678, 1), ("0000:c1:00.0", nv.OK, 6862, 1)]),
    A100_MIG: (nv.ANSWERED, "xml", [("0000:00:04.0", nv.OK, 40315, 0)]),
    "netdata_1x_tesla-p100_510.47.03_query-gpu.csv": (nv.ANSWERED, "csv", [(None, nv.OK, 16280, 0)]),
    "nvidia_gpu_exporter_1x_h100-80gb_590.48.01_table_under_load.txt": (
        nv.ANSWERED, "table", [("0000:00:09.0", nv.OK, 61741, 3)]),
    "gpu-operator-559_multi_a40_525.125.06_table_gpu0_ERR.txt": (
        nv.ANSWERED, "table", [("0000:19:00.0", nv.DEGRADED, 46068, 0), ("0000:1a:00.0", nv.OK, 46068, 0)]),
    "nvidia-docker-1553_query_one_gpu_unknown_error.txt": (nv.GPU_ERRORS, None, [("0000:09:00.0", nv.LOST, None, 0)]),
    "darknet-86_windows_gpu_is_lost.txt": (nv.GPU_ERRORS, None, [("0000:03:00.0", nv.LOST, None, 0)]),
    "shine-cluster-50_nvidia-smi_failed_to_communicate_with_driver.txt": (nv.NO_DRIVER, None, []),
    H200_MIG_TABLE: (nv.ANSWERED, "table", [("0000:83:00.0", nv.OK, 143727, 0)]),
    H200_MIG_CSV: (nv.ANSWERED, "csv", [("0000:83:00.0", nv.OK, 143105, 0)]),
    H200_MIG_TEXT: (nv.ANSWERED, "text", [("0000:83:00.0", nv.OK, 143105, 0)]),
    H100_TEXT: (nv.ANSWERED, "text", [("0000:53:00.0", nv.OK, 81007, 0)]),
    RTX4090_TEXT: (nv.ANSWERED, "text", [("0000:01:00.0", nv.OK, 2138, 1)]),
    OLD_TABLE: (nv.ANSWERED, "table", [("0000:04:00.0", nv.OK, 8965, 1), ("0000:05:00.0", nv.OK, 8965, 1),
                                       ("0000:06:00.0", nv.OK, 8965, 1)]),
    WINDOWS_610: (nv.ANSWERED, "table", [("0000:0c:00.0", nv.OK, 7395, 19)]),
    H100_MIG_TABLE: (nv.ANSWERED, "table", [("0000:00:09.0", nv.OK, 70434, 3)]),
    "jetson-containers-1403_agx_orin_540.4.0_table.txt": (nv.ANSWERED, "table", [(None, nv.OK, None, 0)]),
    "syno_nvidia_gpu_driver-22_tesla_p4_unknown_error_no_space.txt": (nv.GPU_ERRORS, None, [("0000:07:00.0", nv.LOST, None, 0)]),
    NOHEADER_CSV: (nv.UNPARSEABLE, None, []),  # no header, no field names: never guessed
    "nvidia_gpu_exporter_1x_h200-mig_610.43.02_list.txt": (nv.ANSWERED, "list", [(None, nv.OK, None, 0)]),
    REMAP_PENDING_TEXT: (nv.ANSWERED, "text", [("0000:10:1c.0", nv.OK, None, 0)]),  # pending: a warning
    AZURE_INFOROM: (nv.ANSWERED, "table", [("%04x:00:00.0" % d, nv.OK, 32510, 0) for d in range(1, 9)]),
    "azhpc-diagnostics_8x_a100-sxm4-40gb_460.32.03_q_text_first_gpu.txt": (nv.ANSWERED, "text", [("0001:00:00.0", nv.OK, 40536, 0)]),
    # table excerpts pasted without the banner and the column titles: still the table
    "nvidia_gpu_exporter-393_rtx4000-ada_table_excerpt_fan_ERR.txt": (
        nv.ANSWERED, "table", [("0000:c9:00.0", nv.OK, 20474, 0), ("0000:cc:00.0", nv.OK, 20474, 0)]),
    "azhpc-diagnostics-77_v100-pcie_table_excerpt_power_ERR.txt": (nv.ANSWERED, "table", [("8ed0:00:00.0", nv.OK, 15567, 0)]),
    "mindminer-627_windows_rtx2080ti_442.19_query-gpu_nounits_unknown_error_cell.csv": (nv.ANSWERED, "csv", [(None, nv.OK, None, 0)]),
    "slurm-ocr-incident_query-gpu_gpu_requires_reset.csv": (nv.ANSWERED, "csv", [(None, nv.DEGRADED, None, 0)]),
    "tensorflow-notes_1x_geforce210_340.98_table_processes_not_supported.txt": (
        nv.ANSWERED, "table", [("0000:07:00.0", nv.OK, 1021, 0)]),
    "dgx-spark-k8s-notes_1x_gb10_580.105.08_table_memory_not_supported.txt": (
        nv.ANSWERED, "table", [("000f:01:00.0", nv.OK, None, 0)]),
    "slurm-lab-notes_list_no_devices_found.txt": (nv.NO_DATA, None, []),
}


def test_every_recording_has_an_expectation():
    assert sorted(EXPECTED) == training_listing("nvidia-smi")


@pytest.mark.parametrize("name", training_listing("nvidia-smi"))
def test_recording(name):
    outcome, fmt, gpus = EXPECTED[name]
    got = nv.parse_output(training("nvidia-smi", name))
    assert (got["outcome"], got["format"]) == (outcome, fmt), got["reason"]
    if outcome != nv.ANSWERED:
        assert got["reason"] and "\n" not in got["reason"]
        assert [(e["bdf"], e["health"]) for e in got["errors"]] == [(bdf, health) for bdf, health, _f, _p in gpus]
        assert got["cards"] == []
        return
    assert got["reason"] is None and got["errors"] == []
    seen = []
    for card in got["cards"]:
        health, _problems, _warnings = nv.judge_card(card)
        free = card["vram_free_bytes"] // MIB if card["vram_free_bytes"] is not None else None
        on_it = [p for p in got["processes"] if p["gpu_position"] == card["position"]]
        seen.append((card["bdf"], health, free, len(on_it)))
    assert seen == gpus


def test_driver_down_names_the_driver_and_keeps_one_line():
    got = nv.parse_output(training("nvidia-smi", "shine-cluster-50_nvidia-smi_failed_to_communicate_with_driver.txt"))
    assert got["reason"].startswith("nvidia-smi cannot talk to the NVIDIA driver: NVIDIA-SMI has failed because it "
                                    "couldn't communicate with the NVIDIA driver")


def test_wrapped_windows_error_is_joined():
    got = nv.parse_output(training("nvidia-smi", "darknet-86_windows_gpu_is_lost.txt"))
    assert got["errors"][0]["message"] == ("nvidia-smi cannot open the GPU: GPU is lost. Reboot the system to "
                                           "recover this GPU")


def test_xml_of_610_reads_the_kmd_version_not_the_deprecated_one():
    # hand-made: the -q text of 610.43.02 prints both names; an XML doing the same is read the same way
    text = training("nvidia-smi", A5000).replace(
        "<driver_version>590.44.01</driver_version>",
        "<driver_version>610.43.02 [Deprecated; will be removed in CUDA 14.0. Use KMD Version instead]</driver_version>")
    assert nv.parse_output(text)["system"]["driver_version"] == "610.43.02"
    text = text.replace("<cuda_version>13.1</cuda_version>", "<cuda_version>13.1</cuda_version><kmd_version>610.43.02"
                        "</kmd_version><cuda_umd_version>13.3</cuda_umd_version>")
    assert (nv.parse_output(text)["system"]["driver_version"], nv.parse_output(text)["system"]["cuda_version"]) == (
        "610.43.02", "13.3")


def test_rtx3090_v12_facts():
    card = nv.parse_output(training("nvidia-smi", RTX3090))["cards"][0]
    assert (card["model"], card["uuid"], card["vram_total_bytes"], card["vram_used_bytes"]) == (
        "NVIDIA GeForce RTX 3090", "GPU-12345678-aaaa-bbbb-cccc-0123456789ab", 24576 * MIB, 1 * MIB)
    assert (card["busy_percent"], card["temperature_edge_c"], card["power_w"]) == (0, 37.0, 27.23)
    assert (card["persistence_mode"], card["mig_mode"], card["performance_state"]) == (True, None, "P8")
    # GeForce: ECC N/A everywhere is unknown, never zero
    assert card["ecc"] == {"mode": None, "volatile_uncorrected": None, "aggregate_uncorrected": None,
                           "volatile_corrected": None, "aggregate_corrected": None}
    assert card["remapped_rows"] == {"corrected": None, "uncorrected": None, "pending": None, "failure": None}
    assert card["clocks_event_reasons"] == ["gpu_idle"] and card["minor_number"] == 0


def test_a5000_v13_facts_and_processes():
    got = nv.parse_output(training("nvidia-smi", A5000))
    first, second = got["cards"]
    assert got["system"] == {"driver_version": "590.44.01", "cuda_version": "13.1", "attached_gpus": 2,
                             "schema": "v13"}
    assert (first["minor_number"], second["minor_number"]) == (1, 0)  # minor numbers are not PCI order
    assert (first["power_w"], first["vram_used_bytes"]) == (6.41, 22437 * MIB)  # average_power_draw (v13)
    assert first["remapped_rows"] == {"corrected": 0, "uncorrected": 0, "pending": False, "failure": False}
    assert first["ecc"]["mode"] == "disabled" and first["ecc"]["volatile_uncorrected"] is None
    assert [(p["pid"], p["name"], p["bdf"], p["vram_bytes"]) for p in got["processes"]] == [
        (100477, "llama-server", "0000:81:00.0", 22430 * MIB), (100477, "llama-server", "0000:c1:00.0", 17246 * MIB)]


def test_a100_mig_na_utilisation_is_normal():
    card = nv.parse_output(training("nvidia-smi", A100_MIG))["cards"][0]
    assert (card["mig_mode"], card["mig_devices"], card["busy_percent"]) == ("enabled", 2, None)
    assert card["ecc"]["aggregate_uncorrected"] == 0 and card["ecc"]["volatile_uncorrected"] is None
    assert card["clocks_event_reasons"] == []  # the v11 throttle block, every reason "Not Active"
    assert nv.judge_card(card) == (nv.OK, [], [])


def test_table_err_gpu_names_the_failed_fields():
    got = nv.parse_output(training("nvidia-smi", "gpu-operator-559_multi_a40_525.125.06_table_gpu0_ERR.txt"))
    bad = got["cards"][0]
    assert bad["index"] == 0 and bad["model"] is None and bad["temperature_edge_c"] is None
    health, problems, warnings = nv.judge_card(bad)
    assert health == nv.DEGRADED and warnings == []
    assert problems == ["nvidia-smi answers ERR! for 9 of 14 fields (name, volatile uncorrected ECC, fan speed, "
                        "temperature, performance state, power draw, power limit, GPU utilisation, MIG mode): "
                        "the GPU stopped answering"]


# ------------------------------------------------------------------------------ other schemas

def _v12(replace=(), gpu_extra=""):
    text = training("nvidia-smi", RTX3090)
    for old, new in replace:
        assert old in text, old
        text = text.replace(old, new)
    if gpu_extra:
        text = text.replace("</gpu>", gpu_extra + "</gpu>", 1)
    return text


V10_ECC = """<ecc_errors><volatile>
  <single_bit><device_memory>4</device_memory><register_file>0</register_file><total>4</total></single_bit>
  <double_bit><device_memory>2</device_memory><register_file>N/A</register_file><total>2</total></double_bit>
</volatile><aggregate>
  <single_bit><device_memory>9</device_memory><total>9</total></single_bit>
  <double_bit><device_memory>3</device_memory><l2_cache>1</l2_cache><total>N/A</total></double_bit>
</aggregate></ecc_errors>"""


def _ecc_block(text):
    return re.search(r"<ecc_errors>.*?</ecc_errors>", text, re.S).group(0)


def test_v10_ecc_by_bit_width_and_old_names():
    base = training("nvidia-smi", RTX3090)
    text = _v12(replace=[(_ecc_block(base), V10_ECC), ("nvsmi_device_v12.dtd", "nvsmi_device_v10.dtd")])
    got = nv.parse_output(text)
    card = got["cards"][0]
    assert got["system"]["schema"] == "v10"
    assert card["ecc"]["volatile_uncorrected"] == 2 and card["ecc"]["volatile_corrected"] == 4
    assert card["ecc"]["aggregate_uncorrected"] == 4  # no total: the leaves are summed
    health, problems, _warnings = nv.judge_card(card)
    assert health == nv.DEGRADED and problems == ["2 uncorrectable ECC error(s) since the driver loaded"]


def test_v13_sram_parity_and_secded_are_summed():
    block = ("<ecc_errors><volatile><sram_correctable>5</sram_correctable><sram_uncorrectable_parity>1"
             "</sram_uncorrectable_parity><sram_uncorrectable_secded>2</sram_uncorrectable_secded><dram_correctable>0"
             "</dram_correctable><dram_uncorrectable>0</dram_uncorrectable></volatile><aggregate>"
             "<sram_threshold_exceeded>No</sram_threshold_exceeded><dram_uncorrectable>7</dram_uncorrectable>"
             "</aggregate></ecc_errors>")
    base = training("nvidia-smi", RTX3090)
    card = nv.parse_output(_v12(replace=[(_ecc_block(base), block)]))["cards"][0]
    assert (card["ecc"]["volatile_uncorrected"], card["ecc"]["volatile_corrected"],
            card["ecc"]["aggregate_uncorrected"]) == (3, 5, 7)


def test_v6_compute_processes():
    # the v6 block as a 2014 -q -x shows it (pid, process_name, used_memory in MB), in place of <processes>
    block = ("<compute_processes>\n\t\t\t<process_info>\n\t\t\t\t<pid>26931</pid>\n"
             "\t\t\t\t<process_name>/usr/bin/python</process_name>\n\t\t\t\t<used_memory>2577 MB</used_memory>\n"
             "\t\t\t</process_info>\n\t\t</compute_processes>")
    text = re.sub(r"<processes>.*?</processes>", block, training("nvidia-smi", RTX3090), count=1, flags=re.S)
    got = nv.parse_output(text)
    assert [(p["pid"], p["name"], p["vram_bytes"], p["type"]) for p in got["processes"]] == [(26931, "python", 2577 * MIB, None)]


def test_power_readings_of_every_schema():
    old = "<power_readings>"
    for element, value in (("power_draw", 11.5), ("average_power_draw", 12.5), ("instant_power_draw", 13.5)):
        text = _v12(replace=[("<power_draw>27.23 W</power_draw>", "<%s>%s W</%s>" % (element, value, element)),
                             (old, "<gpu_power_readings>"), ("</power_readings>", "</gpu_power_readings>")])
        assert nv.parse_output(text)["cards"][0]["power_w"] == value


def test_power_from_the_first_reading_that_knows_it():
    # hand-made after netdata's RTX PRO 6000 Blackwell (580) test data: power_draw and average N/A, instant known
    readings = ("<gpu_power_readings><power_draw> N/A </power_draw><average_power_draw> N/A </average_power_draw>"
                "<instant_power_draw> 66.84 W </instant_power_draw></gpu_power_readings>")
    text = re.sub(r"<power_readings>.*?</power_readings>", readings, training("nvidia-smi", RTX3090), count=1, flags=re.S)
    card = nv.parse_output(text)["cards"][0]
    assert card["power_w"] == 66.84 and nv.judge_card(card) == (nv.OK, [], [])
    text = re.sub(r"<power_readings>.*?</power_readings>", readings.replace("66.84 W", "ERR!"),
                  training("nvidia-smi", RTX3090), count=1, flags=re.S)
    card = nv.parse_output(text)["cards"][0]
    assert card["power_w"] is None and nv.judge_card(card)[2] == []  # N/A first: unknown, not a failed read


# NVIDIA's "GPU Memory Error Management": a pending remap or retirement is applied at the next reset, the failing
# memory kept out of new allocations meanwhile: a warning. A remap failure, or a double-bit error's retirement still
# pending (Xid 48's reset), blocks.
@pytest.mark.parametrize("extra,verdict", [
    ("<remapped_rows><remapped_row_pending>Yes</remapped_row_pending></remapped_rows>",
     (nv.OK, [], [ROWS_PENDING])),
    ("<remapped_rows><remapped_row_unc>2</remapped_row_unc><remapped_row_pending>Yes</remapped_row_pending>"
     "</remapped_rows>", (nv.OK, [], [ROWS_PENDING])),
    ("<remapped_rows><remapped_row_failure>Yes</remapped_row_failure></remapped_rows>",
     (nv.DEGRADED, ["memory row remapping failed: the GPU has no spare rows left"], [])),
    ("<remapped_rows><remapped_row_pending>Yes</remapped_row_pending><remapped_row_failure>Yes</remapped_row_failure>"
     "</remapped_rows>", (nv.DEGRADED, ["memory row remapping failed: the GPU has no spare rows left"], [])),
    ("<retired_pages><pending_retirement>Yes</pending_retirement></retired_pages>", (nv.OK, [], [PAGES_PENDING])),
    ("<retired_pages><multiple_single_bit_retirement><retired_count>3</retired_count></multiple_single_bit_retirement>"
     "<double_bit_retirement><retired_count>0</retired_count></double_bit_retirement>"
     "<pending_retirement>Yes</pending_retirement></retired_pages>", (nv.OK, [], [PAGES_PENDING])),
    ("<retired_pages><double_bit_retirement><retired_count>1</retired_count></double_bit_retirement>"
     "<pending_retirement>Yes</pending_retirement></retired_pages>",
     (nv.DEGRADED, ["a page retirement for a double-bit ECC error is pending: reset the GPU (or reboot) before new "
                    "work"], [])),
    ("<retired_pages><double_bit_retirement><retired_count>1</retired_count></double_bit_retirement>"
     "<pending_retirement>No</pending_retirement></retired_pages>", (nv.OK, [], [])),  # retired long ago: done
    ("<gpu_recovery_action>Node Reboot</gpu_recovery_action>",
     (nv.DEGRADED, ["the driver asks for recovery action 'Node Reboot'"], [])),
])
def test_pending_memory_repairs_warn_and_failed_ones_degrade(extra, verdict):
    base = training("nvidia-smi", RTX3090)
    base = base.replace("<remapped_rows>N/A</remapped_rows>", "")
    base = re.sub(r"<retired_pages>.*?</retired_pages>", "", base, flags=re.S)
    card = nv.parse_output(base.replace("</gpu>", extra + "</gpu>", 1))["cards"][0]
    assert nv.judge_card(card) == verdict


def test_one_err_field_is_a_warning_most_fields_degraded():
    one = _v12(replace=[("<gpu_temp>37 C</gpu_temp>", "<gpu_temp>ERR!</gpu_temp>")])
    card = nv.parse_output(one)["cards"][0]
    assert card["temperature_edge_c"] is None  # unknown, never 0
    assert nv.judge_card(card) == (nv.OK, [], ["nvidia-smi could not read the temperature (ERR!)"])
    text = training("nvidia-smi", RTX3090)
    for tag in ("product_name", "fan_speed", "performance_state", "gpu_temp", "power_draw", "gpu_util",
                "memory_util", "total", "used", "compute_mode"):
        text = re.sub(r"<%s>[^<]*</%s>" % (tag, tag), "<%s>Unknown Error</%s>" % (tag, tag), text, count=1)
    health, problems, _warnings = nv.judge_card(nv.parse_output(text)["cards"][0])
    assert health == nv.DEGRADED and "the GPU stopped answering" in problems[0]


@pytest.mark.parametrize("raw,expected", [
    ("N/A", None), ("[N/A]", None), ("[Not Supported]", None), ("Unknown Error", None), ("ERR!", None),
    ("[Unknown Error]", None), ("Requested functionality has been deprecated", None), ("0 MiB", 0),
    ("24576 MiB", 24576), ("27.23 W", 27.23), ("37 C", 37), ("0 %", 0), (None, None), ("", None),
])
def test_unknown_values_are_never_zero(raw, expected):
    assert nv.number(raw) == expected


def test_aggregate_only_ecc_and_slowdown_are_warnings():
    base = training("nvidia-smi", RTX3090)
    block = ("<ecc_errors><volatile><dram_uncorrectable>0</dram_uncorrectable></volatile><aggregate>"
             "<dram_uncorrectable>2</dram_uncorrectable></aggregate></ecc_errors>")
    text = _v12(replace=[(_ecc_block(base), block), (
        "<clocks_throttle_reason_hw_thermal_slowdown>Not Active</clocks_throttle_reason_hw_thermal_slowdown>",
        "<clocks_throttle_reason_hw_thermal_slowdown>Active</clocks_throttle_reason_hw_thermal_slowdown>")])
    card = nv.parse_output(text)["cards"][0]
    assert card["clocks_event_reasons"] == ["gpu_idle", "hw_thermal_slowdown"]
    assert nv.judge_card(card) == (nv.OK, [], [
        "2 uncorrectable ECC error(s) in the GPU's lifetime (none since the driver loaded)",
        "clocks held down: hw_thermal_slowdown active"])


def test_gpu_is_lost_and_requires_reset_inside_the_xml():
    lost = nv.parse_output(_v12(replace=[("<gpu_temp>37 C</gpu_temp>", "<gpu_temp>GPU is lost</gpu_temp>")]))
    assert nv.judge_card(lost["cards"][0])[0] == nv.LOST
    reset = nv.parse_output(_v12(replace=[("<gpu_util>0 %</gpu_util>", "<gpu_util>[GPU requires reset]</gpu_util>")]))
    assert nv.judge_card(reset["cards"][0])[:2] == (nv.DEGRADED, ["nvidia-smi says the GPU requires a reset"])


# The block of the 535-5xx schemas (as in a recorded A100 -q -x of 535.54.03), absent from the fixtures.
RESET_STATUS = ("<gpu_reset_status><reset_required>%s</reset_required>"
                "<drain_and_reset_recommended>%s</drain_and_reset_recommended></gpu_reset_status>")
H100_TABLE = "nvidia_gpu_exporter_1x_h100-80gb_590.48.01_table_under_load.txt"


def _a5000(old, new):
    text = training("nvidia-smi", A5000)
    assert old in text, old
    return text.replace(old, new, 1)  # the first GPU only


@pytest.mark.parametrize("text,problem", [
    (_v12(gpu_extra=RESET_STATUS % ("Yes", "No")),
     "nvidia-smi says the GPU needs a reset: an unrecoverable error happened"),
    (_v12(gpu_extra=RESET_STATUS % ("No", "Yes")),
     "nvidia-smi recommends draining and resetting the GPU: an unrecoverable error happened"),
    (_a5000("<channel_repair_pending>No", "<channel_repair_pending>Yes"),
     "a memory channel repair is pending: reset the GPU (or reboot) to apply it"),
    (_a5000("<tpc_repair_pending>No", "<tpc_repair_pending>Yes"), "a TPC repair is pending: reset the GPU (or reboot) to apply it"),
    (_a5000("<sram_threshold_exceeded>N/A", "<sram_threshold_exceeded>Yes"),
     "uncorrectable SRAM errors are over NVIDIA's threshold: the GPU needs service"),
    (_v12(replace=[("<state>N/A</state>", "<state>In Progress</state>")]),
     "fabric manager not ready (fabric state In Progress): CUDA fails with error 802"),
    (_v12(replace=[("<state>N/A</state>", "<state>Not Started</state>")]),
     "fabric manager not ready (fabric state Not Started): CUDA fails with error 802"),
    (_v12(replace=[("<state>N/A</state>", "<state>Completed</state>"), ("<status>N/A</status>", "<status>Failure</status>")]),
     "GPU fabric registration failed (status Failure): CUDA fails with error 802"),
    (_v12(replace=[("<state>N/A</state>", "<state>Completed</state>"),
                   ("<status>N/A</status>", "<status>Unknown Error</status>")]),
     "GPU fabric registration failed (status Unknown Error): CUDA fails with error 802"),
    (_v12(replace=[("<compute_mode>Default</compute_mode>", "<compute_mode>Prohibited</compute_mode>")]),
     "compute mode is Prohibited: no CUDA context is allowed on the GPU"),
])
def test_xml_health_conditions_degrade_the_gpu(text, problem):
    card = nv.parse_output(text)["cards"][0]
    assert nv.judge_card(card) == (nv.DEGRADED, [problem], [])


@pytest.mark.parametrize("text", [
    _v12(gpu_extra=RESET_STATUS % ("No", "No")),
    _v12(gpu_extra=RESET_STATUS % ("N/A", "N/A")),
    _v12(gpu_extra=RESET_STATUS % (("Requested functionality has been deprecated",) * 2)),
    _v12(replace=[("<state>N/A</state>", "<state>Completed</state>"), ("<status>N/A</status>", "<status>Success</status>")]),
    _v12(replace=[("<state>N/A</state>", "<state>Completed</state>")]),  # status unknown: not a failure
    _v12(replace=[("<compute_mode>Default</compute_mode>", "<compute_mode>Exclusive_Process</compute_mode>")]),
])
def test_conditions_that_say_nothing(text):
    assert nv.judge_card(nv.parse_output(text)["cards"][0])[:2] == (nv.OK, [])


def test_csv_reset_status_fields():
    text = ("index, pci.bus_id, reset_status.reset_required, reset_status.drain_and_reset_recommended\n"
            "0, 00000000:3B:00.0, No, No\n1, 00000000:86:00.0, Yes, No\n"
            "2, 00000000:87:00.0, [Requested functionality has been deprecated], Yes\n")
    got = nv.parse_output(text)
    assert [nv.judge_card(card)[:2] for card in got["cards"]] == [
        (nv.OK, []), (nv.DEGRADED, ["nvidia-smi says the GPU needs a reset: an unrecoverable error happened"]),
        (nv.DEGRADED, ["nvidia-smi recommends draining and resetting the GPU: an unrecoverable error happened"])]


def test_prohibited_compute_mode_in_the_csv_and_the_table():
    csv = nv.parse_output("index, compute_mode\n0, Prohibited\n1, Default\n")
    assert [nv.judge_card(card)[0] for card in csv["cards"]] == [nv.DEGRADED, nv.OK]
    table = training("nvidia-smi", H100_TABLE).replace("Default |", "Prohibited |")
    assert nv.judge_card(nv.parse_output(table)["cards"][0])[1] == [
        "compute mode is Prohibited: no CUDA context is allowed on the GPU"]


def test_corrupted_inforom_after_a_table_of_hyper_v_domains():
    got = nv.parse_output(training("nvidia-smi", AZURE_INFOROM))
    warned = [(c["index"], c["bdf"]) for c in got["cards"] if nv.judge_card(c)[2]]
    assert warned == [(7, "0008:00:00.0")]  # "0008:00:00.0" in the warning is "00000008:00:00.0" in the table


def test_corrupted_inforom_is_a_warning_on_the_gpu_it_names():
    warning = ("nvidia-smi warns the infoROM is corrupted: the GPU runs, but the ECC and retirement records it keeps "
               "there may be lost (have it serviced)")
    got = nv.parse_output("WARNING: infoROM is corrupted at gpu 0000:C1:00.0\n" + training("nvidia-smi", A5000))
    assert [nv.judge_card(card) for card in got["cards"]] == [(nv.OK, [], []), (nv.OK, [], [warning])]
    table = nv.parse_output(training("nvidia-smi", H100_TABLE), "WARNING: infoROM is corrupted at gpu 0000:00:09.0\n")
    assert nv.judge_card(table["cards"][0]) == (nv.OK, [], [warning])
    elsewhere = nv.parse_output("WARNING: infoROM is corrupted at gpu 0000:05:00.0\n" + training("nvidia-smi", A5000))
    assert all(nv.judge_card(card) == (nv.OK, [], []) for card in elsewhere["cards"]) and elsewhere["errors"] == []


# ------------------------------------------------------------------------------ the table

# nvidia-smi 617.14 on Windows, as pasted in a public report: the 610+ banner and the Driver-Model column.
WINDOWS_TABLE = """\
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 617.14                 KMD Version: 617.14        CUDA UMD Version: 13.4     |
+-----------------------------------------+------------------------+----------------------+
| GPU  Name                  Driver-Model | Bus-Id          Disp.A | Volatile Uncorr. ECC |
| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |
|                                         |                        |               MIG M. |
|=========================================+========================+======================|
|   0  NVIDIA GeForce RTX 3050 ...  WDDM  |   00000000:01:00.0  On |                  N/A |
| N/A   40C    P8              1W /   65W |    1070MiB /   4094MiB |     27%      Default |
+-----------------------------------------+------------------------+----------------------+
"""


def test_table_610_banner_gives_the_driver_and_cuda_versions():
    table = training("nvidia-smi", H100_TABLE).replace(
        "| NVIDIA-SMI 590.48.01              Driver Version: 590.48.01      CUDA Version: 13.1     |",
        "| NVIDIA-SMI 610.43.02              KMD Version: 610.43.02     CUDA UMD Version: 13.3     |")
    assert nv.parse_output(table)["system"] == {"driver_version": "610.43.02", "cuda_version": "13.3"}
    assert nv.parse_output(training("nvidia-smi", H100_TABLE))["system"] == {
        "driver_version": "590.48.01", "cuda_version": "13.1"}


def test_windows_table_rows_with_the_driver_model_column():
    got = nv.parse_output(WINDOWS_TABLE)
    assert (got["outcome"], got["format"], got["system"]["driver_version"]) == (nv.ANSWERED, "table", "617.14")
    card = got["cards"][0]
    assert (card["index"], card["bdf"], card["model"], card["persistence_mode"]) == (
        0, "0000:01:00.0", "NVIDIA GeForce RTX 3050 ...", None)  # WDDM is a driver model, not persistence
    assert (card["vram_used_bytes"], card["vram_total_bytes"], card["busy_percent"]) == (1070 * MIB, 4094 * MIB, 27)
    assert nv.judge_card(card) == (nv.OK, [], [])
    tcc = nv.parse_output(WINDOWS_TABLE.replace("  WDDM  |", "   TCC  |"))["cards"][0]
    assert (tcc["bdf"], tcc["persistence_mode"]) == ("0000:01:00.0", None)


def test_pre_450_table_process_rows_without_instance_columns():
    got = nv.parse_output(training("nvidia-smi", OLD_TABLE))
    assert got["system"] == {"driver_version": "390.77", "cuda_version": None}
    assert [(p["pid"], p["name"], p["type"], p["bdf"], p["vram_bytes"], p["gpu_instance_id"]) for p in got["processes"]] == [
        (4910, "xmr-stak", "C", "0000:%s:00.0" % bus, 2203 * MIB, None) for bus in ("04", "05", "06")]
    assert [(c["index"], c["persistence_mode"], c["busy_percent"], c["mig_mode"]) for c in got["cards"]] == [
        (0, True, 100, None), (1, True, 100, None), (2, True, 100, None)]


def test_mig_table_processes_keep_their_gpu_instance():
    got = nv.parse_output(training("nvidia-smi", H100_MIG_TABLE))
    assert [(p["pid"], p["name"], p["gpu_instance_id"], p["vram_bytes"]) for p in got["processes"]] == [
        (21180, "memhog", 2, 2296 * MIB), (21181, "memhog", 2, 1272 * MIB), (21198, "gpu_burn", 2, 7484 * MIB)]
    card = got["cards"][0]
    assert (card["mig_mode"], card["busy_percent"], card["ecc"]["volatile_uncorrected"]) == ("enabled", None, None)
    assert [p["gpu_instance_id"] for p in nv.parse_output(training("nvidia-smi", H100_TABLE))["processes"]] == [None] * 3


def test_windows_610_table_processes_and_their_names():
    got = nv.parse_output(training("nvidia-smi", WINDOWS_610))
    assert got["system"] == {"driver_version": "610.62", "cuda_version": "13.3"}
    assert got["cards"][0]["persistence_mode"] is None
    procs = dict((p["pid"], p) for p in got["processes"])
    assert (procs[2140]["name"], procs[2140]["type"], procs[2140]["vram_bytes"]) == ("dwm.exe", "C+G", None)  # WDDM: N/A
    assert [procs[pid]["name"] for pid in (15964, 23988, 17840)] == [
        "NVIDIA Overlay.exe", "msedge.exe", "msedgewebview2.exe"]  # a Windows path is not split at its blanks
    assert nv.process_name("/usr/bin/python3 train.py --lr 1e-4") == "python3"


# ------------------------------------------------------------------------------ CSV

def test_csv_noheader_nounits_with_the_query_fields():
    text = "0, 00000000:3B:00.0, NVIDIA A100-SXM4-80GB, 81920, 1024, 7, 45, 88.5, Enabled, 0, No\n" \
           "1, 00000000:86:00.0, NVIDIA A100-SXM4-80GB, 81920, [N/A], ERR!, 44, [N/A], Enabled, 3, Yes\n"
    fields = ["index", "pci.bus_id", "name", "memory.total", "memory.used", "utilization.gpu", "temperature.gpu",
              "power.draw", "persistence_mode", "ecc.errors.uncorrected.volatile.total", "remapped_rows.pending"]
    got = nv.parse_output(text)
    assert got["outcome"] == nv.UNPARSEABLE  # no header, no field names: not guessed
    cards, error = nv.parse_csv(text, fields)
    assert error is None
    first, second = cards
    assert (first["index"], first["bdf"], first["vram_total_bytes"], first["vram_used_bytes"], first["power_w"]) == (
        0, "0000:3b:00.0", 81920 * MIB, 1024 * MIB, 88.5)
    assert (second["vram_used_bytes"], second["busy_percent"], second["power_w"]) == (None, None, None)
    health, problems, warnings = nv.judge_card(second)
    assert health == nv.DEGRADED and warnings == ["nvidia-smi could not read the GPU utilisation (ERR!)", ROWS_PENDING]
    assert problems == ["3 uncorrectable ECC error(s) since the driver loaded"]


def test_list_of_gpus_and_its_errors():
    card = nv.parse_output(training("nvidia-smi", "nvidia_gpu_exporter_1x_h200-mig_610.43.02_list.txt"))["cards"][0]
    assert (card["index"], card["model"], card["uuid"], card["mig_devices"]) == (
        0, "NVIDIA H200", "GPU-00000000-0000-0000-0000-000000000000", 1)
    # hand-made: a second GPU nvidia-smi -L cannot open
    got = nv.parse_output("GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-6b7298f4-721f-9e24-a277-9ec909ba76f0)\n"
                          "Unable to determine the device handle for GPU1: 0000:47:00.0: Unknown Error\n")
    assert ([c["index"] for c in got["cards"]], [(e["bdf"], e["health"]) for e in got["errors"]]) == (
        [0], [("0000:47:00.0", nv.LOST)])


def test_real_noheader_nounits_csv_with_its_query_fields():
    fields = ("fan.speed,memory.total,memory.used,memory.free,pstate,temperature.gpu,name,uuid,utilization.gpu,"
              "utilization.memory,index").split(",")
    got = nv.parse_output(training("nvidia-smi", NOHEADER_CSV), csv_fields=fields)
    card = got["cards"][0]
    assert (got["outcome"], card["index"], card["model"], card["vram_free_bytes"]) == (
        nv.ANSWERED, 3, "Tesla V100-SXM2-32GB", 32510 * MIB)
    assert (card["fan_percent"], card["temperature_edge_c"], card["busy_percent"]) == (None, 35.0, 0)
    assert nv.judge_card(card) == (nv.OK, [], [])


def test_csv_header_with_units_and_reasons():
    text = ("index, pci.bus_id, memory.total [MiB], memory.used [MiB], clocks_event_reasons.hw_slowdown, "
            "clocks_event_reasons.applications_clocks_setting\r\n"
            "0, 00000000:01:00.0, 24564 MiB, 10 MiB, Active, Not Active\r\n")
    got = nv.parse_output(text)
    card = got["cards"][0]
    assert (got["outcome"], card["vram_total_bytes"], card["clocks_event_reasons"]) == (
        nv.ANSWERED, 24564 * MIB, ["hw_slowdown"])


def test_csv_of_every_field_camel_case_header_cells_and_the_first_power_reading():
    # 610.43.02 with all 241 fields: pci.baseClass, fabric.cliqueId ... in the header (it was refused whole)
    got = nv.parse_output(training("nvidia-smi", H200_MIG_CSV))
    card = got["cards"][0]
    assert (got["outcome"], card["model"], card["mig_mode"], card["persistence_mode"]) == (
        nv.ANSWERED, "NVIDIA H200", "enabled", True)
    assert (card["vram_total_bytes"], card["vram_used_bytes"]) == (143771 * MIB, 44 * MIB)
    assert (card["power_w"], card["power_limit_w"], card["temperature_edge_c"]) == (130.44, 700.0, 40.0)  # power.draw
    assert card["ecc"] == {"mode": "enabled", "volatile_uncorrected": 0, "aggregate_uncorrected": 0,
                           "volatile_corrected": 0, "aggregate_corrected": 0}
    assert card["remapped_rows"]["pending"] is None  # [N/A] under MIG: unknown, not "No"
    assert card["conditions"]["sram_threshold_exceeded"] is False
    assert card["fabric"] == {"state": "Completed", "status": "Success"} and card["recovery_action"] == "None"
    assert card["clocks_event_reasons"] == [] and nv.judge_card(card) == (nv.OK, [], [])


@pytest.mark.parametrize("row,health,problem", [
    ("0, 1, 0, Yes, Completed, Success, None", nv.DEGRADED,
     "uncorrectable SRAM errors are over NVIDIA's threshold: the GPU needs service"),
    ("0, 0, 0, No, In Progress, N/A, None", nv.DEGRADED,
     "fabric manager not ready (fabric state In Progress): CUDA fails with error 802"),
    ("0, 0, 0, No, Completed, Unknown Error, None", nv.DEGRADED,
     "GPU fabric registration failed (status Unknown Error): CUDA fails with error 802"),
    ("0, 0, 0, No, [N/A], [N/A], Reset", nv.DEGRADED, "the driver asks for recovery action 'Reset'"),
    ("0, [N/A], [N/A], [N/A], [N/A], [N/A], [N/A]", nv.OK, None),
])
def test_csv_long_field_names_from_the_header(row, health, problem):
    # hand-made rows under a real header's long names (nvidia-smi prints those whatever alias was asked)
    header = ("index, retired_pages.single_bit_ecc.count, retired_pages.double_bit.count, "
              "ecc.errors.uncorrected.aggregate.sram.thresholdExceeded, fabric.state, fabric.status, gpu_recovery_action\n")
    card = nv.parse_output(header + row + "\n")["cards"][0]
    assert nv.judge_card(card)[:2] == (health, [problem] if problem else [])
    assert card["retired_pages"]["double_bit"] == (None if row.startswith("0, [N/A]") else 0)


# ------------------------------------------------------------------------------ the -q text

def test_q_text_reads_as_the_xml_does():
    got = nv.parse_output(training("nvidia-smi", H100_TEXT))
    card = got["cards"][0]
    assert got["system"] == {"driver_version": "535.183.01", "cuda_version": "12.2", "attached_gpus": 8, "schema": None}
    assert (card["model"], card["uuid"], card["minor_number"], card["persistence_mode"], card["mig_mode"]) == (
        "NVIDIA H100 80GB HBM3", "GPU-566e6f65-c38e-b12f-4824-6944218668b9", 0, True, "disabled")
    assert (card["vram_total_bytes"], card["vram_used_bytes"], card["busy_percent"]) == (81559 * MIB, 0, 0)
    assert (card["temperature_edge_c"], card["power_w"], card["power_limit_w"]) == (36.0, 71.97, 700.0)
    assert card["ecc"] == {"mode": "enabled", "volatile_uncorrected": 0, "aggregate_uncorrected": 0,
                           "volatile_corrected": 0, "aggregate_corrected": 0}  # the SRAM sources are not counted twice
    assert card["remapped_rows"] == {"corrected": 0, "uncorrected": 0, "pending": False, "failure": False}
    assert (card["conditions"]["reset_required"], card["conditions"]["sram_threshold_exceeded"]) == (False, False)
    assert card["fabric"] == {"state": "Completed", "status": "Success"} and card["clocks_event_reasons"] == ["gpu_idle"]
    rtx = nv.parse_output(training("nvidia-smi", RTX4090_TEXT))
    assert [(p["pid"], p["name"], p["type"], p["vram_bytes"]) for p in rtx["processes"]] == [
        (2180559, "python", "C", 22072 * MIB)]
    assert rtx["cards"][0]["ecc"]["volatile_uncorrected"] is None  # GeForce: N/A, never 0


def test_q_text_of_460_wording():
    card = nv.parse_output(training("nvidia-smi", "azhpc-diagnostics_8x_a100-sxm4-40gb_460.32.03_q_text_first_gpu.txt"))["cards"][0]
    assert (card["ecc"]["mode"], card["power_w"], card["power_limit_w"], card["temperature_edge_c"]) == (
        "enabled", 55.63, 400.0, 41.0)  # "Ecc Mode", "Power Readings"/"Power Limit"
    assert card["clocks_event_reasons"] == ["gpu_idle"] and card["conditions"]["reset_required"] is None


def test_q_text_of_610_mig_deprecated_banner_and_nested_power_limit():
    card = nv.parse_output(training("nvidia-smi", H200_MIG_TEXT))["cards"][0]
    got = nv.parse_output(training("nvidia-smi", H200_MIG_TEXT))
    assert (got["system"]["driver_version"], got["system"]["cuda_version"]) == ("610.43.02", "13.3")
    assert (card["mig_mode"], card["mig_devices"], card["busy_percent"]) == ("enabled", 1, None)
    assert (card["power_w"], card["power_limit_w"]) == (130.28, 700.0)  # the limit under "GPU Ceiling Power Limit"
    assert card["conditions"]["unrepairable_memory"] is False and card["recovery_action"] == "None"


def _h100_text(old, new):
    text = training("nvidia-smi", H100_TEXT)
    assert old in text, old
    return text.replace(old, new, 1)


# Hand-made faults on the real H100 text (the Remapped Rows one as pasted in leptonai/gpud PR #80).
@pytest.mark.parametrize("text,health,problem", [
    (_h100_text("Remapping Failure Occurred        : No", "Remapping Failure Occurred        : Yes"),
     nv.DEGRADED, "memory row remapping failed: the GPU has no spare rows left"),
    (_h100_text("Reset Required                    : No", "Reset Required                    : Yes"),
     nv.DEGRADED, "nvidia-smi says the GPU needs a reset: an unrecoverable error happened"),
    (_h100_text("            DRAM Uncorrectable            : 0", "            DRAM Uncorrectable            : 2"),
     nv.DEGRADED, "2 uncorrectable ECC error(s) since the driver loaded"),
    (_h100_text("SRAM Threshold Exceeded       : No", "SRAM Threshold Exceeded       : Yes"),
     nv.DEGRADED, "uncorrectable SRAM errors are over NVIDIA's threshold: the GPU needs service"),
    (_h100_text("State                             : Completed", "State                             : In Progress"),
     nv.DEGRADED, "fabric manager not ready (fabric state In Progress): CUDA fails with error 802"),
    (_h100_text("GPU Current Temp                  : 36 C", "GPU Current Temp                  : GPU is lost"),
     nv.LOST, "nvidia-smi reports the GPU is lost"),
])
def test_q_text_faults(text, health, problem):
    got = nv.parse_output(text)
    assert got["format"] == "text" and nv.judge_card(got["cards"][0])[:2] == (health, [problem])


def test_q_text_pending_memory_repairs_are_warnings():
    rows = _h100_text("        Uncorrectable Error               : 0\n        Pending                           : No",
                      "        Uncorrectable Error               : 4\n        Pending                           : Yes")
    pages = _h100_text("Pending Page Blacklist            : N/A", "Pending Page Blacklist            : Yes")
    for text, warning in ((rows, ROWS_PENDING), (pages, PAGES_PENDING)):
        assert nv.judge_card(nv.parse_output(text)["cards"][0]) == (nv.OK, [], [warning])


def test_q_text_nested_slowdown_is_read_and_unknown_error_everywhere_degrades():
    text = _h100_text("            HW Thermal Slowdown           : Not Active", "            HW Thermal Slowdown           : Active")
    assert nv.judge_card(nv.parse_output(text)["cards"][0]) == (nv.OK, [], ["clocks held down: hw_thermal_slowdown active"])
    text = training("nvidia-smi", H100_TEXT)
    for name in ("Product Name", "Persistence Mode", "Performance State", "Total", "Used", "Gpu", "Memory",
                 "GPU Current Temp", "Power Draw", "Current Power Limit", "Compute Mode"):
        text = re.sub(r"(\n +%s +: )[^\n]*" % re.escape(name), r"\1Unknown Error", text, count=1)
    health, problems, _warnings = nv.judge_card(nv.parse_output(text)["cards"][0])
    assert health == nv.DEGRADED and "the GPU stopped answering" in problems[0]


def test_q_text_of_older_drivers_processes_and_ecc_by_bit_width():
    # hand-made from the real 4090 text: the pre-450 process list (no instance ids) and the v10 ECC blocks
    text = training("nvidia-smi", RTX4090_TEXT).replace(
        "        GPU instance ID                   : N/A\n        Compute instance ID               : N/A\n", "")
    text += ("        Process ID                        : 12\n            Type                          : G\n"
             "            Name                          : /usr/lib/xorg/Xorg\n"
             "            Used GPU Memory                 : 4 MiB\n")
    text = re.sub(r"    ECC Errors\n.*?(?=    Retired Pages)", (
        "    ECC Errors\n        Volatile\n            Single Bit\n                Device Memory     : 3\n"
        "                Total             : 3\n            Double Bit\n                Device Memory     : 1\n"
        "                Total             : 1\n        Aggregate\n            Single Bit\n"
        "                Total             : 9\n            Double Bit\n                Total             : 1\n"),
        text, flags=re.S)
    got = nv.parse_output(text)
    assert [(p["pid"], p["name"], p["vram_bytes"]) for p in got["processes"]] == [
        (2180559, "python", 22072 * MIB), (12, "Xorg", 4 * MIB)]
    ecc = got["cards"][0]["ecc"]
    assert (ecc["volatile_uncorrected"], ecc["volatile_corrected"], ecc["aggregate_corrected"]) == (1, 3, 9)


def test_q_text_error_between_gpus_is_an_error_and_takes_nothing_of_the_text():
    text = training("nvidia-smi", RTX4090_TEXT)
    text = text.replace("GPU 00000000:01:00.0\n", "Unable to determine the device handle for GPU 0000:02:00.0: Unknown Error\n"
                        "GPU 00000000:01:00.0\n")
    got = nv.parse_output(text + "Unable to determine the device handle for GPU0: 0000:03:00.0: Insufficient Permissions\n"
                          "        Process ID                        : 99\n")
    assert got["outcome"] == nv.ANSWERED and [c["bdf"] for c in got["cards"]] == ["0000:01:00.0"]
    assert got["errors"] == [
        {"bdf": "0000:02:00.0", "health": nv.LOST, "message": "nvidia-smi cannot open the GPU: Unknown Error"},
        {"bdf": "0000:03:00.0", "health": nv.UNKNOWN, "message": "nvidia-smi cannot open the GPU: Insufficient Permissions"}]
    assert [p["pid"] for p in got["processes"]] == [2180559]  # nothing read under the error line


# The Processes block of a 590.48.01 H100 MIG -q text under load (nvidia_gpu_exporter capture, commit c58c3331e071),
# put in place of the H200 text's "Processes : None": three processes in GPU instance 2.
MIG_PROCESSES = """    Processes
        GPU instance ID                   : 2
        Compute instance ID               : 0
        Process ID                        : 21180
            Type                          : C
            Name                          : /root/tools/memhog
            Used GPU Memory               : 2296 MiB
        GPU instance ID                   : 2
        Compute instance ID               : 0
        Process ID                        : 21181
            Type                          : C
            Name                          : /root/tools/memhog
            Used GPU Memory               : 1272 MiB
        GPU instance ID                   : 2
        Compute instance ID               : 0
        Process ID                        : 21198
            Type                          : C
            Name                          : ./gpu_burn
            Used GPU Memory               : 7484 MiB
"""


def test_q_text_shifted_as_a_whole_is_read_from_its_margin():
    text = training("nvidia-smi", RTX4090_TEXT)
    shifted = "".join("    " + line if line.strip() else line for line in text.splitlines(True))
    assert nv.parse_output(shifted)["cards"] == nv.parse_output(text)["cards"]


def test_q_text_of_a_real_remap_pending_a100():
    card = nv.parse_output(training("nvidia-smi", REMAP_PENDING_TEXT))["cards"][0]
    assert card["remapped_rows"] == {"corrected": 1, "uncorrected": 0, "pending": True, "failure": False}
    assert (card["ecc"]["volatile_corrected"], card["ecc"]["volatile_uncorrected"]) == (177, 0)
    assert nv.judge_card(card) == (nv.OK, [], [ROWS_PENDING])


# -q -d PAGE_RETIREMENT as Azure's health checks test it (Azure/azurehpc-health-checks test/data/bad_nvsmi8_output.txt
# at 758a9406f2aa: counts edited by hand into a "bad" node; the layout is nvidia-smi's), first four GPUs.
PAGE_RETIREMENT = """
==============NVSMI LOG==============

Timestamp                                 : Thu Mar 14 20:46:07 2024
Driver Version                            : 535.86.10
CUDA Version                              : 12.2

Attached GPUs                             : 8
GPU 00000001:00:00.0
    Retired Pages
        Single Bit ECC                    : 60
        Double Bit ECC                    : 5
        Pending Page Blacklist            : No

GPU 00000002:00:00.0
    Retired Pages
        Single Bit ECC                    : 2
        Double Bit ECC                    : 61
        Pending Page Blacklist            : Yes

GPU 00000003:00:00.0
    Retired Pages
        Single Bit ECC                    : 0
        Double Bit ECC                    : 0
        Pending Page Blacklist            : No

GPU 00000004:00:00.0
    Retired Pages
        Single Bit ECC                    : 6
        Double Bit ECC                    : 0
        Pending Page Blacklist            : Yes

"""


def test_q_text_of_one_display_section_page_retirement():
    got = nv.parse_output(PAGE_RETIREMENT)
    assert [(c["bdf"], c["retired_pages"]["single_bit"], c["retired_pages"]["double_bit"], nv.judge_card(c)[0])
            for c in got["cards"]] == [("0001:00:00.0", 60, 5, nv.OK), ("0002:00:00.0", 2, 61, nv.DEGRADED),
                                       ("0003:00:00.0", 0, 0, nv.OK), ("0004:00:00.0", 6, 0, nv.OK)]
    # GPU 2: double-bit errors with their retirement pending blocks; GPU 4: single-bit retirements pending warn
    assert nv.judge_card(got["cards"][3])[2] == [
        PAGES_PENDING]


def test_q_text_without_its_banner():
    # as pasted in NVIDIA/nvidia-docker#1724 (`nvidia-smi -a` starting at "Timestamp"): the banner lost
    text = training("nvidia-smi", RTX4090_TEXT).replace("==============NVSMI LOG==============\n\n", "")
    got = nv.parse_output(text)
    assert (got["format"], [c["bdf"] for c in got["cards"]], len(got["processes"])) == ("text", ["0000:01:00.0"], 1)
    assert nv.parse_output("Timestamp : now\nno GPU block here\n")["outcome"] == nv.UNPARSEABLE


def test_q_text_mig_processes_one_record_each():
    text = training("nvidia-smi", H200_MIG_TEXT)
    text = re.sub(r"    Processes +: None\n", MIG_PROCESSES, text)
    got = nv.parse_output(text)
    assert [(p["pid"], p["name"], p["type"], p["gpu_instance_id"], p["vram_bytes"]) for p in got["processes"]] == [
        (21180, "memhog", "C", 2, 2296 * MIB), (21181, "memhog", "C", 2, 1272 * MIB), (21198, "gpu_burn", "C", 2, 7484 * MIB)]


@pytest.mark.parametrize("text", [
    "\n==============NVSMI LOG==============\n\nTimestamp : x\n",
    "==============NVSMI LOG==============\nGPU 00000000:01:00.0\n    : \n  :\n\t\tx\n    Processes\n        : 1\n",
    "==============NVSMI LOG==============\n" + "    " * 400 + "deep\n",
])
def test_q_text_odd_shapes_never_crash(text):
    got = nv.parse_output(text, "", 0)
    assert got["outcome"] in (nv.ANSWERED, nv.UNPARSEABLE)


# ------------------------------------------------------------------------------ error texts and bad input

@pytest.mark.parametrize("text,bdf,health", [
    ("Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error\r\n", "0000:3b:00.0", nv.LOST),
    ("Unable to determine the device handle for gpu 0000:01:00.0: Unable to communicate with GPU because it is "
     "insufficiently powered.\nThis may be because not all required external power cables are\nattached.\n",
     "0000:01:00.0", nv.DEGRADED),
    ("Unable to determine the device handle for GPU 00000000:02:00.0: GPU is lost.  Reboot\n"
     "         the system to recover this GPU\n", "0000:02:00.0", nv.LOST),
    ("GPU 0000:04:00.0: GPU has fallen off the bus.\n", "0000:04:00.0", nv.LOST),
    # nvidia-smi.exe in a GPU-PV guest, as quoted in jamesstringer90/Easy-GPU-PV#276
    ("Unable to detect the device handle for GPU0000:B1:00.0: Unknown Error\n", "0000:b1:00.0", nv.LOST),
])
def test_handle_errors_whatever_the_wrapping(text, bdf, health):
    got = nv.parse_output("", text, 15)
    assert got["outcome"] == nv.GPU_ERRORS
    assert [(e["bdf"], e["health"]) for e in got["errors"]] == [(bdf, health)]


# Newer drivers put the index before the address (595.71.05, recorded in a warranty report after an Xid 79).
NEW_HANDLE = "Unable to determine the device handle for GPU0: 0000:01:00.0: Unknown Error\n"
NEW_LOST = ("Unable to determine the device handle for GPU0: 0000:03:00.0: GPU is lost.  Reboot the system to "
            "recover this GPU\n")


@pytest.mark.parametrize("stdout,stderr,bdf,health,reason", [
    ("", NEW_LOST, "0000:03:00.0", nv.LOST, "GPU is lost. Reboot the system to recover this GPU"),
    (NEW_HANDLE + "No devices were found\n", "", "0000:01:00.0", nv.LOST, "Unknown Error"),
    ("", "Unable to determine the device handle for GPU1: 00000000:34:00.0: Unknown\n   Error\n", "0000:34:00.0",
     nv.LOST, "Unknown Error"),
])
def test_handle_error_with_the_index_before_the_address(stdout, stderr, bdf, health, reason):
    got = nv.parse_output(stdout, stderr, 6)
    assert got["outcome"] == nv.GPU_ERRORS and got["cards"] == []
    assert got["errors"] == [{"bdf": bdf, "health": health, "message": "nvidia-smi cannot open the GPU: " + reason}]
    assert got["reason"] == "%s: nvidia-smi cannot open the GPU: %s" % (bdf, reason)


def test_handle_error_before_csv_rows_keeps_only_its_own_reason():
    # nvidia-smi on Windows/WSL: the lost GPU's line, then the query's row for the GPU that answered.
    stdout = ("Unable to determine the device handle for GPU0: 0000:24:00.0: GPU is lost.  Reboot the system to "
              "recover this GPU\n1, NVIDIA GeForce RTX 5070 Ti, 300.00 W, 34.61 W\n")
    got = nv.parse_output(stdout, "", 15, csv_fields=["index", "name", "power.limit", "power.draw"])
    assert got["errors"] == [{"bdf": "0000:24:00.0", "health": nv.LOST, "message": (
        "nvidia-smi cannot open the GPU: GPU is lost. Reboot the system to recover this GPU")}]
    assert [(c["index"], c["model"], c["power_w"]) for c in got["cards"]] == [(1, "NVIDIA GeForce RTX 5070 Ti", 34.61)]


@pytest.mark.parametrize("reason", ["Insufficient Permissions", "Driver Not Loaded"])
def test_handle_error_that_is_not_the_gpus_fault_is_unknown(reason):
    for line in ("Unable to determine the device handle for GPU0: 0000:01:00.0: %s\n" % reason,
                 "Unable to determine the device handle for GPU 0000:01:00.0: %s\n" % reason):
        got = nv.parse_output("", line, 15)
        assert got["outcome"] == nv.GPU_ERRORS
        assert got["errors"] == [{"bdf": "0000:01:00.0", "health": nv.UNKNOWN,
                                  "message": "nvidia-smi cannot open the GPU: " + reason}]


def test_new_handle_error_beside_the_xml_and_the_table_of_the_others():
    got = nv.parse_output(NEW_HANDLE.replace("0000:01:00.0", "0000:21:00.0") + training("nvidia-smi", A5000))
    assert got["outcome"] == nv.ANSWERED and [c["bdf"] for c in got["cards"]] == ["0000:81:00.0", "0000:c1:00.0"]
    assert got["errors"] == [{"bdf": "0000:21:00.0", "health": nv.LOST,
                              "message": "nvidia-smi cannot open the GPU: Unknown Error"}]
    table = training("nvidia-smi", "nvidia_gpu_exporter_1x_h100-80gb_590.48.01_table_under_load.txt")
    got = nv.parse_output(NEW_HANDLE + table)
    assert got["format"] == "table" and [e["bdf"] for e in got["errors"]] == ["0000:01:00.0"]


@pytest.mark.parametrize("after", [
    training("nvidia-smi", "nvidia_gpu_exporter_1x_h100-80gb_590.48.01_table_under_load.txt"),  # its timestamp line
    "WARNING: infoROM is corrupted at gpu 0000:05:00.0\n", "Failed to initialize NVML: Unknown Error\n",
    "\n==============NVSMI LOG==============\n",
])
def test_handle_error_reason_ends_where_the_next_output_begins(after):
    got = nv.parse_output("Unable to determine the device handle for GPU0000:A1:00.0: Insufficient Permissions\n" + after)
    assert got["errors"] == [{"bdf": "0000:a1:00.0", "health": nv.UNKNOWN,
                              "message": "nvidia-smi cannot open the GPU: Insufficient Permissions"}]


def test_one_gpu_error_beside_the_xml_of_the_others():
    text = "Unable to determine the device handle for GPU 0000:07:00.0: GPU is lost.\n" + training("nvidia-smi", A5000)
    got = nv.parse_output(text)
    assert got["outcome"] == nv.ANSWERED and len(got["cards"]) == 2
    assert got["errors"] == [{"bdf": "0000:07:00.0", "health": nv.LOST,
                              "message": "nvidia-smi cannot open the GPU: GPU is lost"}]


@pytest.mark.parametrize("stdout,stderr,rc,outcome", [
    ("", "Failed to initialize NVML: Driver/library version mismatch\n", 18, nv.NO_DRIVER),
    ("NVIDIA-SMI couldn't find libnvidia-ml.so library in your system.\n", "", 12, nv.NO_DRIVER),
    ("No devices were found\n", "", 6, nv.NO_DATA),
    ("", "", 0, nv.UNPARSEABLE),
    ("\x00\x01 garbage { < >\n", "", 0, nv.UNPARSEABLE),
    ("", "Segmentation fault\n", 139, nv.FAILED),
    ("<nvidia_smi_log><gpu id='0'>", "", 0, nv.UNPARSEABLE),
])
def test_failures_are_named_never_crash(stdout, stderr, rc, outcome):
    got = nv.parse_output(stdout, stderr, rc)
    assert got["outcome"] == outcome and got["reason"] and got["cards"] == []


@pytest.mark.parametrize("name,expected", [
    ("\ufffd\ufffd\x01\x1b[0m\ufffd", "\ufffd\ufffd[0m\ufffd"),  # the bytes of a concurrent run (cwltool PR 1910)
    ("/opt/run.sh a&b", "run.sh"),
    ("/opt/x<y>z --flag", "x<y>z"),
    ("/usr/bin/python3 &amp; fine", "python3"),
])
def test_process_name_that_breaks_the_xml_loses_no_gpu(name, expected):
    # hand-made: the real A5000 XML with one process name nvidia-smi did not escape
    text = re.sub(r"<process_name>[^<]*</process_name>", lambda m: "<process_name>%s</process_name>" % name,
                  training("nvidia-smi", A5000), count=1)
    got = nv.parse_output(text)
    assert (got["outcome"], len(got["cards"]), len(got["processes"])) == (nv.ANSWERED, 2, 2)
    assert got["processes"][0]["name"] == expected and got["processes"][0]["pid"] == 100477


def test_entity_declarations_are_refused_without_expansion():
    bomb = ('<?xml version="1.0"?>\n<!DOCTYPE nvidia_smi_log [<!ENTITY a "aaaaaaaaaa">'
            + "".join('<!ENTITY a%d "&a%s;&a%s;&a%s;&a%s;&a%s;&a%s;&a%s;&a%s;&a%s;&a%s;">' % ((i,) + (i - 1 if i > 1 else "",) * 10)
                      for i in range(1, 10))
            + ']>\n<nvidia_smi_log><driver_version>&a9;</driver_version><gpu id="00000000:01:00.0"/></nvidia_smi_log>')
    got = nv.parse_output(bomb)
    assert got["outcome"] == nv.UNPARSEABLE and "declares entities" in got["reason"]


def test_xml_with_its_dtd_embedded_parses():
    # nvidia-smi -q -x --dtd puts the DTD inside the DOCTYPE (first lines as printed by a 5xx nvidia-smi --dtd)
    dtd = ('<!DOCTYPE nvidia_smi_log [\n<!-- nvsmi_device_v12.dtd -->\n'
           '<!ELEMENT nvidia_smi_log        (timestamp, driver_version, cuda_version, vgpu_driver_capability*,\n'
           '                                 attached_gpus, error_string?, gpu*)>\n\n'
           '<!ELEMENT timestamp             (#PCDATA)>\n<!ELEMENT gpu (product_name)>\n<!ATTLIST gpu id CDATA #REQUIRED>\n]>')
    text = training("nvidia-smi", A5000).replace('<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v13.dtd">', dtd)
    got = nv.parse_output(text)
    assert (got["outcome"], got["system"]["schema"], len(got["cards"])) == (nv.ANSWERED, "v12", 2)


def test_output_over_the_limit_is_not_parsed(monkeypatch):
    monkeypatch.setattr(nv, "MAX_OUTPUT_CHARS", 1000)
    got = nv.parse_output(training("nvidia-smi", RTX3090))
    assert got["outcome"] == nv.UNPARSEABLE and "over the 1000 limit" in got["reason"]


def test_undecodable_bytes_become_valid_text():
    got = nv.parse_output("", "Unable to determine the device handle for GPU 0000:05:00.0: Unknown \udcff Error\n", 1)
    message = got["errors"][0]["message"]
    message.encode("utf-8")  # no lone surrogate left: the module result stays deliverable
    assert "\ufffd" in message


def test_nvml_refusing_the_user_is_named_as_access_not_as_the_driver():
    # the text nvidia-smi prints when NVML may not open /dev/nvidia* (e.g. NVIDIA/nvidia-docker issues); hand-made line
    got = nv.parse_output("Failed to initialize NVML: Insufficient Permissions\n", rc=4)
    assert got["outcome"] == nv.NO_DRIVER
    assert got["reason"] == ("nvidia-smi may not open the GPUs' device files (/dev/nvidia*): Failed to initialize NVML: "
                             "Insufficient Permissions")
    # an init failure of another kind still says the driver did not answer
    other = nv.parse_output("Failed to initialize NVML: Driver/library version mismatch\n", rc=18)
    assert other["reason"].startswith("nvidia-smi cannot talk to the NVIDIA driver: Failed to initialize NVML")
