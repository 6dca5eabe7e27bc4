"""_nvidia_smi on real outputs pasted in other projects' issues and test data (tests/fixtures/training/SOURCES.md):
the GPUs, their values and the verdict, and what could not be told left unknown."""

from __future__ import annotations

import re
import time

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _nvidia_smi as nv
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.fixtures import training, training_listing

MIB = 1024 * 1024
ADA_EXCERPT = "nvidia_gpu_exporter-393_rtx4000-ada_table_excerpt_fan_ERR.txt"
V100_EXCERPT = "azhpc-diagnostics-77_v100-pcie_table_excerpt_power_ERR.txt"


def test_table_excerpt_without_banner_keeps_the_tables_own_indices_and_names_the_err_field():
    got = nv.parse_output(training("nvidia-smi", ADA_EXCERPT))
    assert (got["outcome"], got["format"], got["system"]) == (
        nv.ANSWERED, "table", {"driver_version": None, "cuda_version": None})
    first, second = got["cards"]
    assert [(c["index"], c["bdf"], c["model"], c["persistence_mode"]) for c in got["cards"]] == [
        (13, "0000:c9:00.0", "NVIDIA RTX 4000 Ada Gene...", True), (14, "0000:cc:00.0", "NVIDIA RTX 4000 Ada Gene...", True)]
    assert (second["fan_percent"], second["temperature_edge_c"], second["power_w"], second["busy_percent"]) == (
        None, 68.0, 99.0, 93)
    assert (second["vram_used_bytes"], second["vram_total_bytes"]) == (1 * MIB, 20475 * MIB)
    assert second["ecc"]["volatile_uncorrected"] is None  # the ECC column says Off: ECC disabled, no count
    assert nv.judge_card(first) == (nv.OK, [], [])
    assert nv.judge_card(second) == (nv.OK, [], ["nvidia-smi could not read the fan speed (ERR!)"])


def test_table_excerpt_of_one_gpu_with_a_hyper_v_domain_and_power_err():
    got = nv.parse_output(training("nvidia-smi", V100_EXCERPT))
    card, = got["cards"]
    assert (card["index"], card["bdf"], card["power_w"], card["power_limit_w"]) == (1, "8ed0:00:00.0", None, 250.0)
    assert (card["ecc"]["volatile_uncorrected"], card["vram_free_bytes"]) == (0, 15567 * MIB)
    assert nv.judge_card(card) == (nv.OK, [], ["nvidia-smi could not read the power draw (ERR!)"])


def test_framed_rows_that_are_no_gpu_row_make_no_table():
    # hand-made: a process row and a MIG row without the rest of the table are not GPUs
    text = ("|    0   N/A  N/A     21198      C   ./gpu_burn                             7484MiB |\n"
            "|  0    2   0   0  |            2296MiB / 19968MiB    | 32      0 |  2   0    1    0    0 |\n")
    assert nv.parse_output(text)["outcome"] == nv.UNPARSEABLE


def test_blank_lines_are_read_in_linear_time():
    # hand-made: the -L pattern once rescanned every run of blank lines from each of its lines (~40 s here)
    started = time.monotonic()
    got = nv.parse_output("\n" * 200000 + "No devices were found\n")
    assert got["outcome"] == nv.NO_DATA
    assert time.monotonic() - started < 5


# ------------------------------------------------------------------------------ vGPU guests: the licence

H100_TEXT = "gpud_8x_h100-80gb_535.183.01_q_text_first_gpu.txt"
RTX3090 = "telegraf_1x_rtx3090_525.147.05_q-x.xml"


def _vgpu_guest_text(status):
    # hand-made: the real H100 -q text as a vGPU guest prints it, with the licence block the guest driver adds (its
    # lines as vGPU guests print them: "vGPU Software Licensed Product / Product Name / License Status")
    text = training("nvidia-smi", H100_TEXT)
    old = "        Virtualization Mode               : Pass-Through\n        Host VGPU Mode                    : N/A\n"
    assert old in text
    return text.replace(old, "        Virtualization Mode               : VGPU\n        Host VGPU Mode                    : N/A\n"
                             "    vGPU Software Licensed Product\n"
                             "        Product Name                      : NVIDIA Virtual Compute Server\n"
                             "        License Status                    : %s\n" % status)


@pytest.mark.parametrize("status,health,problems,warnings", [
    ("Unlicensed (Restricted)", nv.DEGRADED,
     ["the vGPU is unlicensed and restricted (Unlicensed (Restricted)): NVIDIA holds its compute at an idle level until "
      "a licence is acquired"], []),
    ("Unlicensed (Unrestricted)", nv.OK, [],
     ["the vGPU is unlicensed (Unlicensed (Unrestricted)): NVIDIA restricts it after a 20-minute grace period"]),
    ("Unlicensed", nv.OK, [], ["the vGPU is unlicensed (Unlicensed): NVIDIA restricts it after a 20-minute grace period"]),
    ("Licensed (Expiry: 2024-10-19 6:51:17 GMT)", nv.OK, [], []),
    ("N/A (Expiry: N/A)", nv.OK, [], []),
])
def test_vgpu_guest_licence_in_the_q_text(status, health, problems, warnings):
    got = nv.parse_output(_vgpu_guest_text(status))
    card, = got["cards"]
    assert card["vgpu_license"] == status
    assert nv.judge_card(card) == (health, problems, warnings)


def test_vgpu_guest_licence_in_the_xml():
    # hand-made: the real RTX 3090 XML with the licence block of a restricted guest
    text = training("nvidia-smi", RTX3090).replace(
        "</gpu_virtualization_mode>", "</gpu_virtualization_mode>\n<vgpu_software_licensed_product>"
        "<licensed_product_name>NVIDIA RTX Virtual Workstation</licensed_product_name>"
        "<license_status>Unlicensed (Restricted)</license_status></vgpu_software_licensed_product>", 1)
    card, = nv.parse_output(text)["cards"]
    assert nv.judge_card(card)[0] == nv.DEGRADED
    assert nv.parse_output(training("nvidia-smi", RTX3090))["cards"][0]["vgpu_license"] is None  # bare metal: none


# ------------------------------------------------------------------------------ NVML's error strings as values

A5000 = "telegraf_2x_rtx-a5000_590.44.01_q-x.xml"
P100_CSV = "netdata_1x_tesla-p100_510.47.03_query-gpu.csv"


def _a5000(*replace):
    text = training("nvidia-smi", A5000)
    for old, new in replace:
        assert old in text, old
        text = text.replace(old, new, 1)
    return nv.parse_output(text)["cards"][0]


@pytest.mark.parametrize("error", ["Timeout", "Driver Not Loaded", "In use by another client",
                                   "The operating system has blocked the request."])
def test_nvml_error_string_is_no_recovery_action_nor_fabric_state(error):
    # hand-made: the real A5000 XML with NVML's error string where the recovery action and the fabric state are read
    card = _a5000(("<gpu_recovery_action>None</gpu_recovery_action>", "<gpu_recovery_action>%s</gpu_recovery_action>" % error),
                  ("<state>N/A</state>", "<state>%s</state>" % error))
    assert (card["recovery_action"], card["fabric"]["state"]) == (None, None)
    assert nv.judge_card(card) == (nv.OK, [], [])


def test_fabric_registration_failure_is_still_a_problem():
    # hand-made: a registration that completed with NVML's "Insufficient Resources" is a failed registration
    card = _a5000(("<state>N/A</state>", "<state>Completed</state>"),
                  ("<status>N/A</status>", "<status>Insufficient Resources</status>"))
    health, problems, _warnings = nv.judge_card(card)
    assert health == nv.DEGRADED and problems == [
        "GPU fabric registration failed (status Insufficient Resources): CUDA fails with error 802"]


@pytest.mark.parametrize("cell,state", [
    ("[Timeout]", "failed"), ("[Interrupt Request Issue]", "failed"), ("[Insufficient External Power]", "failed"),
    ("[Corrupted infoROM]", "failed"), ("[Driver Not Loaded]", "unknown"), ("[Function Not Found]", "unknown"),
    ("[GPU requires restart]", "reset"),
])
def test_nvml_error_string_in_a_csv_cell_is_no_value(cell, state):
    # hand-made: the real P100 CSV row with one cell failing as nvidia-smi writes it (NVML's error string in brackets)
    text = training("nvidia-smi", P100_CSV).replace(", P0, ", ", %s, " % cell, 1)
    card, = nv.parse_output(text)["cards"]
    assert card["performance_state"] is None and nv.reading(cell) == (None, state)
    health, problems, warnings = nv.judge_card(card)
    expected = {"failed": (nv.OK, [], ["nvidia-smi could not read the performance state (ERR!)"]),
                "unknown": (nv.OK, [], []),
                "reset": (nv.DEGRADED, ["nvidia-smi says the GPU requires a reset"], [])}[state]
    assert (health, problems, warnings) == expected


# ------------------------------------------------------------------------------ --query-gpu CSV

def test_csv_unknown_error_in_a_cell_we_do_not_judge_says_nothing():
    got = nv.parse_output(training("nvidia-smi", "mindminer-627_windows_rtx2080ti_442.19_query-gpu_nounits_unknown_error_cell.csv"))
    card, = got["cards"]
    assert (card["model"], card["busy_percent"], card["memory_busy_percent"], card["temperature_edge_c"]) == (
        "GeForce RTX 2080 Ti", 100, 37, 56.0)
    assert (card["power_w"], card["power_limit_w"], card["fan_percent"], card["failed_fields"]) == (228.82, 210.0, 56, [])
    assert nv.judge_card(card) == (nv.OK, [], [])


def test_csv_gpu_requires_reset_in_its_cells():
    got = nv.parse_output(training("nvidia-smi", "slurm-ocr-incident_query-gpu_gpu_requires_reset.csv"))
    card, = got["cards"]
    assert (card["index"], card["temperature_edge_c"], card["busy_percent"], card["vram_used_bytes"]) == (0, None, None, 0)
    assert nv.judge_card(card) == (nv.DEGRADED, ["nvidia-smi says the GPU requires a reset"], [])


# ------------------------------------------------------------------------------ line ends

def _verdicts(got):
    return (got["outcome"], got["format"], got["errors"], got["processes"],
            [(c["index"], c["bdf"], c["vram_free_bytes"], nv.judge_card(c)) for c in got["cards"]])


@pytest.mark.parametrize("name", training_listing("nvidia-smi"))
def test_windows_line_ends_read_as_the_same_output(name):
    # hand-made from each real recording: nvidia-smi.exe writes CRLF (a console's text mode)
    text = training("nvidia-smi", name)
    assert _verdicts(nv.parse_output(text.replace("\n", "\r\n"))) == _verdicts(nv.parse_output(text))


# ------------------------------------------------------------------------------ a process list nvidia-smi cannot give

GEFORCE_340 = "tensorflow-notes_1x_geforce210_340.98_table_processes_not_supported.txt"


def test_table_of_the_340s_compute_processes_not_supported_is_no_list():
    got = nv.parse_output(training("nvidia-smi", GEFORCE_340))
    card, = got["cards"]
    assert (got["system"]["driver_version"], card["bdf"], card["model"], card["persistence_mode"]) == (
        "340.98", "0000:07:00.0", "GeForce 210", False)
    assert (card["vram_used_bytes"], card["vram_total_bytes"], card["temperature_edge_c"]) == (2 * MIB, 1023 * MIB, 47.0)
    assert got["processes"] == [] and card["processes_unknown"] == "Not Supported"
    assert nv.judge_card(card) == (nv.OK, [], [])


@pytest.mark.parametrize("section,unknown", [
    ("<processes>N/A</processes>", "N/A"),
    ("<processes>Not Supported</processes>", "Not Supported"),
    ("<processes>\n\t\t</processes>", None),
    ("<processes>None</processes>", None),
])
def test_xml_process_section_that_is_no_list(section, unknown):
    # hand-made: the real RTX 3090 XML with what some drivers and guests write instead of the process list
    text = re.sub(r"<processes>.*?</processes>", lambda m: section, training("nvidia-smi", RTX3090), count=1, flags=re.S)
    card, = nv.parse_output(text)["cards"]
    assert card["processes_unknown"] == unknown


def test_q_text_process_section_that_is_no_list():
    # hand-made: the real H100 -q text with "Processes : Not Supported" in place of "Processes : None"
    text = training("nvidia-smi", H100_TEXT)
    assert "    Processes                             : None\n" in text
    card, = nv.parse_output(text.replace("    Processes                             : None\n",
                                         "    Processes                             : Not Supported\n"))["cards"]
    assert card["processes_unknown"] == "Not Supported"
    assert nv.parse_output(text)["cards"][0]["processes_unknown"] is None


@pytest.mark.parametrize("reason,health", [
    ("GPU access blocked by the operating system", nv.UNKNOWN),
    ("Function Not Found", nv.UNKNOWN),
    ("Insufficient Permissions", nv.UNKNOWN),
    ("Timeout", nv.DEGRADED),
    ("Unknown Error", nv.LOST),
])
def test_handle_error_reasons_follow_the_nvml_error_table(reason, health):
    # hand-made: the handle error line of the real syno recording with NVML's other error strings as its reason
    text = "Unable to determine the device handle for GPU0000:07:00.0: %s\n" % reason
    got = nv.parse_output(text, "", 15)
    assert (got["outcome"], [(e["bdf"], e["health"]) for e in got["errors"]]) == (nv.GPU_ERRORS, [("0000:07:00.0", health)])


def test_nvml_refused_by_the_operating_system_is_named_so():
    got = nv.parse_output("Failed to initialize NVML: GPU access blocked by the operating system\n", "", 255)
    assert got["outcome"] == nv.NO_DRIVER
    assert got["reason"].startswith("the operating system blocks nvidia-smi's access to the GPUs: Failed to initialize NVML")


@pytest.mark.parametrize("before", ["<attached_gpus>", '<gpu id="00000000:C1:00.0">', "</nvidia_smi_log>"])
def test_handle_error_printed_inside_the_xml_is_kept(before):
    # hand-made: the real A5000 XML with a handle error where nvidia-smi's stderr lands when merged into stdout (2>&1)
    text = training("nvidia-smi", A5000)
    i = text.index(before)
    got = nv.parse_output(text[:i] + "Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error\n" + text[i:])
    assert (got["outcome"], len(got["cards"])) == (nv.ANSWERED, 2)
    assert [(e["bdf"], e["health"]) for e in got["errors"]] == [("0000:3b:00.0", nv.LOST)]
    assert nv.parse_output(text)["errors"] == []


def test_unified_memory_gb10_table_leaves_memory_unknown():
    got = nv.parse_output(training("nvidia-smi", "dgx-spark-k8s-notes_1x_gb10_580.105.08_table_memory_not_supported.txt"))
    card, = got["cards"]
    assert (card["bdf"], card["model"], card["temperature_edge_c"], card["power_w"], card["power_limit_w"]) == (
        "000f:01:00.0", "NVIDIA GB10", 39.0, 4.0, None)
    assert (card["vram_total_bytes"], card["vram_used_bytes"], card["vram_free_bytes"]) == (None, None, None)
    assert got["processes"] == [] and card["processes_unknown"] is None
    assert nv.judge_card(card) == (nv.OK, [], [])


def test_list_says_no_devices_found_in_its_own_words():
    got = nv.parse_output(training("nvidia-smi", "slurm-lab-notes_list_no_devices_found.txt"), "", 6)
    assert (got["outcome"], got["reason"], got["cards"]) == (nv.NO_DATA, "nvidia-smi found no GPU (No devices found)", [])
    assert nv.parse_output("No devices were found\n", "", 6)["reason"] == "nvidia-smi found no GPU (No devices were found)"
