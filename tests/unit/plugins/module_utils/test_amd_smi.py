from __future__ import annotations

import json

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _amd_smi as amd_smi

from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.fixtures import (
    amd_smi_gpu_choices, listing, recording)

MIB = 1024 * 1024


def test_rx6600_metric_list_form():
    cards, _system = amd_smi.parse(amd_smi.extract_json(recording("amd-smi", "rx6600_gfx1032_metric_proxmox.json")))
    assert cards == [dict(cards[0], index=0, bdf=None, busy_percent=1, power_w=6, temperature_edge_c=36.0,
                          vram_total_bytes=8176 * MIB, vram_used_bytes=202 * MIB, perf_level="auto")]


def test_gpu_data_wrapped_form_gives_the_same_facts():
    listed = json.loads(recording("amd-smi", "rx6600_gfx1032_metric_proxmox.json"))
    wrapped = json.dumps({"gpu_data": listed, "cpu_data": []}, indent=4)
    assert amd_smi.parse(amd_smi.extract_json(wrapped)) == amd_smi.parse(listed)


def test_static_gives_pci_address_model_and_vram():
    cards, _system = amd_smi.parse(amd_smi.extract_json(recording("amd-smi", "rx6600_gfx1032_static_proxmox.json")))
    assert cards[0]["bdf"] == "0000:0b:00.0"
    assert cards[0]["model"] == "Navi 23 [Radeon RX 6600/6600 XT"  # amd-smi truncates it: recorded quirk
    assert cards[0]["device_id"] == "0x73ff"
    assert cards[0]["vram_total_bytes"] == 8176 * MIB


def test_partitions_keep_their_own_addresses_and_numbering():
    """``amd-smi list --json`` prints ``gpu`` and ``bdf`` per GPU; on the recorded MI300X in DPX each partition is
    a GPU at a function-numbered address (amdsmi #132)."""
    recorded = amd_smi_gpu_choices()
    assert recorded[:2] == [(0, "0000:05:00.0"), (1, "0000:05:00.1")]
    doc = [{"gpu": gpu, "bdf": bdf.upper()} for gpu, bdf in reversed(recorded)]
    cards, _system = amd_smi.parse(amd_smi.extract_json(json.dumps(doc, indent=4)))
    assert [(c["index"], c["bdf"]) for c in cards] == recorded


@pytest.mark.parametrize("entry", [
    {"gpu": 0, "bdf": "AMDSMI_STATUS_NOT_SUPPORTED - Feature not supported"},  # a failed read, as amd-smi prints it
    {"gpu": 0, "bus": {"bdf": "N/A"}},
    {"gpu": 0, "bdf": 5},
])
def test_an_address_field_that_holds_no_address_gives_none(entry):
    assert amd_smi.parse([entry])[0][0]["bdf"] is None


def test_rocm61_power_leaf():
    cards, _system = amd_smi.parse(amd_smi.extract_json(recording("amd-smi", "rocm6.1_metric_power_json_changelog.json")))
    assert cards[0]["power_w"] == 10


def test_rocm60_bare_numbers():
    doc = [{"gpu": 0, "usage": {"gfx_usage": 55}, "power": {"current_power": 120},
            "mem_usage": {"total_vram": 8176, "used_vram": 100}}]
    card = amd_smi.parse(doc)[0][0]
    assert (card["busy_percent"], card["power_w"], card["vram_total_bytes"]) == (55, 120, 8176 * MIB)


def test_all_na_sections_give_no_numbers():
    doc = [{"gpu": 0, "usage": "N/A", "power": {"socket_power": "N/A"}, "temperature": {"edge": "N/A"}}]
    card = amd_smi.parse(doc)[0][0]
    assert card["busy_percent"] is None and card["power_w"] is None and card["temperature_edge_c"] is None


# What each JSON recording must give: (cards, card0 expectations). Text recordings give no JSON.
EXPECTED = {
    "rx6600_gfx1032_metric_proxmox.json": (1, {"index": 0, "busy_percent": 1, "power_w": 6}),
    "rx6600_gfx1032_static_proxmox.json": (1, {"index": 0, "bdf": "0000:0b:00.0", "device_id": "0x73ff"}),
    "rx6600_gfx1032_topology_proxmox.json": (1, {"index": 0}),
    "rocm6.3.1_list_json_strix_halo_gkm.json": (1, {"index": 0, "bdf": "0000:c4:00.0"}),
    "rocm6.3.1_static_json_strix_halo_gkm.json": (1, {
        "index": 0, "bdf": "0000:c4:00.0", "device_id": "0x1586", "gfx_version": "gfx1151", "vram_total_bytes": 32768 * MIB,
        "model": "Strix Halo [Radeon Graphics / Radeon 8050S Graphics / Radeon 8060S Graphics]", "power_w": None,
        "temperature_edge_c": None, "vbios_version": "113-STRXLGEN-001"}),
    "rocm6.1_metric_power_json_changelog.json": (1, {"index": 0, "power_w": 10}),
    "rocm6.2_process_json_multi_process_changelog.json": (1, {"index": 0}),
    "rocm6.3_metric_json_list_1gpu_46064MB_jkoudela-amd-smi-exporter.json": (1, {
        "index": 0, "bdf": None, "model": None, "busy_percent": 0, "power_w": 34, "temperature_edge_c": 43.0,
        "temperature_junction_c": 49.0, "vram_total_bytes": 46064 * MIB, "vram_used_bytes": 1758 * MIB,
        "perf_level": "auto"}),
}


def test_every_json_recording_has_an_expectation():
    for name in listing("amd-smi"):
        assert name in EXPECTED or not name.endswith(".json"), name


@pytest.mark.parametrize("name", listing("amd-smi"))
def test_every_recording_parses_or_is_rejected_cleanly(name):
    doc = amd_smi.extract_json(recording("amd-smi", name))
    cards, _system = amd_smi.parse(doc) if doc is not None else ([], {})
    if name in EXPECTED:
        want_cards, want_card0 = EXPECTED[name]
        assert len(cards) == want_cards
        for key, value in want_card0.items():
            assert cards[0][key] == value, key
    else:
        # text output, pprint of the Python API, excerpts cut mid-document: no JSON, no crash
        assert doc is None


def test_garbage_with_many_brackets_is_rejected():
    assert amd_smi.extract_json("[\n" * 2000 + "{oops") is None


def test_bare_nan_and_infinity_tokens_are_unreadable_values():
    doc = amd_smi.extract_json('[{"gpu": 0, "mem_usage": {"total_vram": {"value": NaN, "unit": "MB"}, '
                               '"used_vram": Infinity}, "power": {"socket_power": {"value": -Infinity, "unit": "W"}}}]')
    card = amd_smi.parse(doc)[0][0]
    assert (card["vram_total_bytes"], card["vram_used_bytes"], card["power_w"]) == (None, None, None)


# ---------------------------------------------------------------- amd-smi finding no GPU (amdsmi #172)

NO_GPU_RECORDING = "amdsmi26.1.0_builtin_amdgpu_no_gpu_found_version_line_amdsmi-172.txt"
# What amd-smi 26 prints on stdout with --json when it finds no GPU: its version record as a one-entry list
# (amdsmi_commands: version() then sys.exit(-1); amdsmi_logger prints [output]). Hand-made from the recorded text
# line of amdsmi #172, whose fields it carries.
VERSION_JSON = json.dumps([{"tool": "AMDSMI Tool", "version": "26.1.0+b5522cc8", "amdsmi_library_version": "26.1.0",
                            "rocm_version": "N/A"}], indent=4)
NO_GPU = "ERROR:root:Unable to detect any GPU devices, check amdgpu version and module status (sudo modprobe amdgpu)\n"


def _split_recording(name):
    """The recorded terminal paste: amd-smi's logging lines (stderr) and its version line (stdout)."""
    lines = recording("amd-smi", name).splitlines()
    return "\n".join(l for l in lines if not l.startswith("ERROR:")), "\n".join(l for l in lines if l.startswith("ERROR:"))


def test_recorded_built_in_amdgpu_is_no_driver():
    stdout, stderr = _split_recording(NO_GPU_RECORDING)
    outcome, doc, reason = amd_smi.classify(stdout, stderr, 255)
    assert (outcome, doc, reason) == ("no_driver", None, "the amdgpu driver is not loaded")


@pytest.mark.parametrize("stderr,outcome", [
    ("ERROR:root:Unable to get devices, driver not initialized (amdgpu not found in modules)\n" + NO_GPU, "no_driver"),
    (NO_GPU, "failed"),
])
def test_version_record_printed_on_finding_no_gpu_is_no_gpu_entry(stderr, outcome):
    """Its version record is not a GPU, and exit 255 is a failure, not a list of no GPU."""
    assert amd_smi.gpu_entries(amd_smi.extract_json(VERSION_JSON)) == []
    got, _doc, reason = amd_smi.classify(VERSION_JSON, stderr, 255)
    assert got == outcome
    if outcome == "failed":
        assert reason == "amd-smi exited 255: " + NO_GPU.strip()


@pytest.mark.parametrize("stdout,rc,outcome", [
    (json.dumps({"gpu_data": []}), 0, "no_data"),      # ran and listed none
    ("", 0, "unparseable"),
    ("", 2, "failed"),
    (json.dumps([{"gpu": 0, "usage": "N/A"}]), 255, "answered"),  # GPU entries are an answer whatever the exit
])
def test_classify_outcomes(stdout, rc, outcome):
    assert amd_smi.classify(stdout, "", rc)[0] == outcome


@pytest.mark.parametrize("reading,want", [(2112, None), (511, None), (65535, None), (-300, None), (96, 96.0)])
def test_a_temperature_no_sensor_reads_is_none(reading, want):
    """A torn firmware read gave 2112 C on MI350X (rocm-systems PR 6931: rocm_smi_lib now calls anything above 500 C
    N/A); older builds pass such values through. A glitch is no temperature, never an overheating GPU."""
    doc = [{"gpu": 0, "temperature": {"edge": {"value": reading, "unit": "C"}, "hotspot": {"value": reading, "unit": "C"}}}]
    card = amd_smi.parse(doc)[0][0]
    assert (card["temperature_edge_c"], card["temperature_junction_c"]) == (want, want)


def test_documents_one_after_another_give_every_gpu_entry():
    """amd-smi 25.5.1 printed one JSON array per section (rocm-systems PR 667); a CPU section first hides no GPU.
    Hand-made from the recorded RX 6600 metric entry."""
    entry = json.loads(recording("amd-smi", "rx6600_gfx1032_metric_proxmox.json"))[0]
    second = dict(entry, gpu=1)
    text = "\n".join(json.dumps(doc, indent=4) for doc in ([{"cpu": 0, "power": "N/A"}], [entry], [second]))
    cards, _system = amd_smi.parse(amd_smi.extract_json(text))
    assert [(c["index"], c["busy_percent"]) for c in cards] == [(0, 1), (1, 1)]


@pytest.mark.parametrize("text", [
    '[\n    {"gpu": 0, "usage": "N/A"},\n    {"gpu": 1,',          # cut short: no part of it is taken
    '[\n    {"gpu": 0, "usage": "N/A"}\n]\nTraceback (most recent call last):',
])
def test_a_document_with_anything_after_it_or_cut_short_is_none(text):
    assert amd_smi.extract_json(text) is None


BANNER_RECORDING = "rocm7.1.1_amdsmi26.2.0_4x_mi250x_permission_banner_default_table_amdsmi-184.txt"
GROUPS_RECORDING = "rocm7.0_runtimeerror_missing_groups_amdsmi-184.txt"


def test_permission_banner_before_the_json_is_skipped():
    """amd-smi 26.2 (ROCm 7.1.1) prints its 'Permission needed ...' banner on stdout ahead of its output, exit 0
    (amdsmi #184). The recorded banner ahead of the recorded RX 6600 metric document (hand-made joint)."""
    recorded = recording("amd-smi", BANNER_RECORDING)
    banner = recorded[:recorded.index("+---")]
    outcome, doc, _reason = amd_smi.classify(banner + recording("amd-smi", "rx6600_gfx1032_metric_proxmox.json"), "", 0)
    assert outcome == "answered" and amd_smi.parse(doc)[0][0]["busy_percent"] == 1


@pytest.mark.parametrize("name,rc,outcome", [
    (BANNER_RECORDING, 0, "unparseable"),   # the table without --json: no GPU is judged missing from it
    (GROUPS_RECORDING, 0, "unparseable"),   # ROCm 7.0: the missing-groups check was fatal
    (GROUPS_RECORDING, 1, "failed"),
])
def test_recorded_permission_failures_are_no_list_of_gpus(name, rc, outcome):
    got, doc, reason = amd_smi.classify(recording("amd-smi", name), "", rc)
    assert (got, doc) == (outcome, None)
    assert "Permission needed" in reason or "missing the following required groups" in reason


@pytest.mark.parametrize("unit,want", [("MB", 8176 * MIB), ("GiB", 8176 * 1024 * MIB), ("MiB", 8176 * MIB),
                                       ("TB", None), (None, None), ("pages", None)])
def test_vram_in_a_unit_not_known_is_no_size(unit, want):
    """A unit amd-smi has not been seen to print gives no VRAM size rather than an unscaled, wrong one."""
    leaf = {"value": 8176} if unit is None else {"value": 8176, "unit": unit}
    card = amd_smi.parse([{"gpu": 0, "mem_usage": {"total_vram": leaf}}])[0][0]
    assert card["vram_total_bytes"] == want


def test_first_amd_smi_frame_buffer_section_and_bare_numbers():
    """Hand-made from amdsmi_cli/amdsmi_commands.py of the first amd-smi (ROCm 5.7/6.0, ROCm/amdsmi): ``metric`` printed
    VRAM as ``fb_usage`` {vram_total, vram_used} in MB and bare numbers elsewhere."""
    cards, _system = amd_smi.parse([{
        "gpu": 0, "usage": {"gfx_activity": 3, "umc_activity": 0, "mm_activity": 0},
        "fb_usage": {"vram_total": 16368, "vram_used": 1023},
        "power": {"average_socket_power": 35, "gfx_voltage": 806, "soc_voltage": "AMDSMI_STATUS_NOT_YET_IMPLEMENTED",
                  "mem_voltage": "AMDSMI_STATUS_NOT_YET_IMPLEMENTED", "power_limit": 303},
        "temperature": {"edge": 41, "hotspot": 44, "mem": 52}}])
    card = cards[0]
    assert (card["vram_total_bytes"], card["vram_used_bytes"]) == (16368 * MIB, 1023 * MIB)
    assert (card["busy_percent"], card["power_w"], card["temperature_edge_c"], card["temperature_junction_c"]) == (
        3, 35, 41.0, 44.0)


def test_average_power_where_the_current_reading_is_na():
    """Hand-made from amdsmi_commands.py of ROCm 6.1-era amd-smi: ``current_power`` holds the socket's current power,
    and where that reads N/A (RDNA cards, MI200) ``average_power`` is added with the average."""
    cards, _system = amd_smi.parse([{"gpu": 0, "power": {
        "current_power": "N/A", "average_power": 94, "current_gfx_voltage": 806, "power_limit": 500,
        "power_management": "ENABLED", "throttle_status": "UNTHROTTLED"}}])
    assert cards[0]["power_w"] == 94


def test_a_failed_read_that_prints_error_text_leaves_the_other_paths_to_be_read():
    """amd-smi puts the error text of a failed read where the value goes ("AMDSMI_STATUS_NOT_SUPPORTED - ..."):
    that is no value, and a later path (another release's name for it) is still read. Hand-made."""
    failed = "AMDSMI_STATUS_NOT_SUPPORTED - Feature not supported"
    cards, _system = amd_smi.parse([{"gpu": 0, "bdf": failed, "bus": {"bdf": "0000:03:00.0"},
                                     "power": {"current_power": failed, "average_socket_power": 41}}])
    assert (cards[0]["bdf"], cards[0]["power_w"]) == ("0000:03:00.0", 41)


UNABLE_TO_DETECT = "rocm6.2.4_unable_to_detect_any_gpu_devices_mi50_egpu_ROCm-6176.txt"


@pytest.mark.parametrize("stdout,rc,outcome", [
    ("", 0, "none_seen"),
    ("[]\n", 0, "none_seen"),    # hand-made: an empty list with it is no list of none either
    ("", 1, "failed"),
])
def test_recorded_amd_smi_that_detects_no_gpu_cannot_tell(stdout, rc, outcome):
    """amd-smi 6.2.4 with an MI50 whose BARs did not fit (ROCm#6176): "Unable to detect any GPU devices" after a
    Python SyntaxWarning. It reached no GPU: whatever it exits with, that is never its list of GPUs."""
    got, _doc, reason = amd_smi.classify(stdout, recording("amd-smi", UNABLE_TO_DETECT), rc)
    assert got == outcome
    assert "Unable to detect any GPU devices" in reason
