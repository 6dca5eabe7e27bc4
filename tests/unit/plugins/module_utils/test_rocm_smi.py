from __future__ import annotations

import json

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _rocm_smi as rocm_smi

from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.fixtures import listing, recording

# What each real recording must give: (outcome, cards, index order, card0 expectations).
EXPECTED = {
    "rocm5.4_2x_rx6800_showmemuse_rocm_smi_lib-pr120.json": (rocm_smi.ANSWERED, 2, None, {"bdf": None}),
    "rocm5.x_mi250_showallinfo_oneline_wandb-mock.json": (rocm_smi.ANSWERED, 1, "drm", {
        "bdf": "0000:2f:00.0", "model": "AMD INSTINCT MI250 (MCM) OAM AC MBA", "device_id": "0x740c",
        "temperature_edge_c": 32.0, "power_w": 89.0, "busy_percent": 10}),
    "rocm6.x_mi200_showproductname_rocm_smi_lib-159.json": (rocm_smi.ANSWERED, 1, "bdf", {
        "model": "AMD INSTINCT MI200 (MCM) OAM LC MBA HPE C2", "gfx_version": "gfx90a"}),
    "rocm6.x_mi250_showallinfo_oneline_wandb-mock.json": (rocm_smi.ANSWERED, 1, "bdf", {
        "bdf": "0000:29:00.0", "gfx_version": "gfx90a", "power_w": 91.0, "temperature_edge_c": 43.0}),
    "rocm6.x_rx6600_gfx1032_showallinfo_proxmox.json": (rocm_smi.ANSWERED, 1, "bdf", {
        "bdf": "0000:0b:00.0", "model": "Navi 23 [Radeon RX 6600/6600 XT/6600M]", "device_id": "0x73ff",
        "gfx_version": "gfx1032", "temperature_edge_c": None, "power_w": None, "vram_total_bytes": None,
        "vram_used_percent": 1, "busy_percent": 0, "perf_level": None}),
    "telegraf_mi100_rocm571.json": (rocm_smi.ANSWERED, 6, "drm", {
        "bdf": "0000:1e:00.0", "model": "Arcturus GL-XL [Instinct MI100]", "power_w": 39.0,
        "vram_total_bytes": 34342961152, "vram_used_bytes": 6782976}),
    "telegraf_mi100_rocm602.json": (rocm_smi.ANSWERED, 4, "bdf", {"bdf": "0000:83:00.0", "device_id": "0x738c"}),
    "telegraf_rx6700xt_rocm430.json": (rocm_smi.ANSWERED, 1, "drm", {
        "bdf": "0000:07:00.0", "model": None, "temperature_edge_c": 45.0, "power_w": 6.0}),
    "telegraf_rx6700xt_rocm571.json": (rocm_smi.ANSWERED, 1, "drm", {
        "model": "Navi 22 [Radeon RX 6700/6700 XT / 6800M]", "vram_used_bytes": 1564491776}),
    "telegraf_rx6700xt_rocm602.json": (rocm_smi.ANSWERED, 1, "bdf", {"power_w": None, "device_id": "0x73df"}),
    "telegraf_vega-10-XT.json": (rocm_smi.ANSWERED, 1, "drm", {"model": None, "device_id": "0x6861", "power_w": 15.0}),
    "telegraf_vega-20-WKS-GL-XE.json": (rocm_smi.ANSWERED, 1, "drm", {"model": "Radeon Instinct MI50 32GB"}),
    "telegraf_rx6700xt_rocm612.json": (rocm_smi.ANSWERED, 1, "bdf", {
        "bdf": "0000:07:00.0", "model": "Navi 22 [Radeon RX 6700/6700 XT / 6800M]", "device_id": "0x73df",
        "gfx_version": "gfx1031", "temperature_edge_c": 45.0, "power_w": 6.0, "busy_percent": 0,
        "vram_total_bytes": 12868124672, "vram_used_bytes": 1572745216, "perf_level": "auto"}),
    "rocm6.2.4_showid_meminfo_power_serial_use_temp_productname_rx7800xt_gpustack.json": (rocm_smi.ANSWERED, 1, "bdf", {
        "bdf": None, "model": "Navi 32 [Radeon RX 7700 XT / 7800 XT]", "device_id": "0x747e", "gfx_version": "gfx1101",
        "vram_total_bytes": 17163091968, "vram_used_bytes": 11615076352, "busy_percent": 100,
        "temperature_edge_c": 45.0, "temperature_junction_c": 51.0, "power_w": 53.0,
        "unique_id": "0x5c88007d760374f3"}),
    "rocm6.x_a_json_rx7900xtx_plus_raphael_igpu_arch_rocm-smi-gui.json": (rocm_smi.ANSWERED, 2, "bdf", {
        "bdf": "0000:03:00.0", "model": "Navi 31 [Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M]", "device_id": "0x744c",
        "temperature_edge_c": 49.0, "temperature_junction_c": 52.0, "power_w": 40.0, "busy_percent": 0,
        "vram_used_percent": 8, "perf_level": "auto", "gfx_version": "gfx1100", "vram_total_bytes": None,
        "vram_used_bytes": None}),
    "rocm4.x_4x_mi100_id_uniqueid_productname_bus_reserialized_determined.json": (rocm_smi.ANSWERED, 4, "drm", {
        "bdf": "0000:63:00.0", "model": None, "device_id": "0x738c", "unique_id": "0x7ef570db1b346018",
        "temperature_edge_c": None, "power_w": None}),
    "rocm5.2_stderr_mutex_init_failure_multigpu_rocm_smi_lib-88.txt": (rocm_smi.MUTEX, 0, None, None),
    "rocm6.x_json_showrasinfo_no_json_data_legacy-rocm-build-4374.txt": (rocm_smi.NO_DATA, 0, None, None),
    "rocm2.x_f_t_P_json_lowercase_c_sensor_keys_rainbowminer-749.json": (rocm_smi.ANSWERED, 1, None, {
        "temperature_edge_c": 77.0, "temperature_junction_c": 103.0, "power_w": 222.0}),
    "rocm6.4_concise_no_amd_gpus_specified_mi50_egpu_ROCm-6176.txt": (rocm_smi.NONE_SEEN, 0, None, None),
    "rocm3.0-5.1_concise_no_amd_gpus_specified_12x_rx580_kfd_skipped_ROCm-1742.txt": (rocm_smi.NONE_SEEN, 0, None, None),
    "rocm6.x_7900xt_productname_use_meminfo_vram_json_marimo-9237.json": (rocm_smi.ANSWERED, 1, "bdf", {
        "bdf": None, "model": "Radeon RX 7900 XT", "device_id": None, "gfx_version": "gfx1100", "busy_percent": 0,
        "vram_total_bytes": 21458059264, "vram_used_bytes": 27856896, "temperature_edge_c": None, "power_w": None}),
}
TEXT_ONLY = rocm_smi.UNPARSEABLE  # concise tables, CSV, tracebacks: not JSON, never crash


def test_every_recording_has_an_expectation_or_is_text():
    for name in listing("rocm-smi"):
        assert name in EXPECTED or not name.endswith(".json"), name


@pytest.mark.parametrize("name", listing("rocm-smi"))
def test_recording(name):
    outcome, doc, reason = rocm_smi.classify(recording("rocm-smi", name), "", 0)
    want_outcome, want_cards, want_order, want_card0 = EXPECTED.get(name, (TEXT_ONLY, 0, None, None))
    assert outcome == want_outcome, reason
    if outcome != rocm_smi.ANSWERED:
        assert reason
        return
    cards, _system = rocm_smi.parse(doc)
    assert len(cards) == want_cards
    assert [c["index"] for c in cards] == sorted(c["index"] for c in cards)
    assert rocm_smi.index_order(doc) == want_order
    for key, value in want_card0.items():
        assert cards[0][key] == value, key


def test_mi100_system_section_processes_and_driver():
    _outcome, doc, _reason = rocm_smi.classify(recording("rocm-smi", "telegraf_mi100_rocm571.json"), "", 0)
    cards, system = rocm_smi.parse(doc)
    assert [c["bdf"] for c in cards] == ["0000:1e:00.0", "0000:22:00.0", "0000:3f:00.0", "0000:43:00.0",
                                         "0000:46:00.0", "0000:49:00.0"]
    assert system["driver_version"] == "6.2.4"
    assert system["processes"] == [{"pid": 104225, "name": "mlir-cpu-runner", "gpu_count": 0, "vram_bytes": 0}]


def test_process_keys_with_other_digits_are_not_pids():
    """'\u00b2' is a digit to str.isdigit but not to int(): such a key is no process, never a crash."""
    _outcome, doc, _reason = rocm_smi.classify(json.dumps({
        "card0": {"PCI Bus": "0000:0B:00.0"},
        "system": {"PID\u00b2": "python3, 1, 0, 0, 0", "PID4242": "python3, 1, 2147483648, 0, 0"}}), "", 0)
    _cards, system = rocm_smi.parse(doc)
    assert system["processes"] == [{"pid": 4242, "name": "python3", "gpu_count": 1, "vram_bytes": 2147483648}]


def test_dgpu_plus_igpu_second_card_and_driver():
    """The iGPU has only the socket power key and no junction sensor; the driver is a kernel release."""
    name = "rocm6.x_a_json_rx7900xtx_plus_raphael_igpu_arch_rocm-smi-gui.json"
    _outcome, doc, _reason = rocm_smi.classify(recording("rocm-smi", name), "", 0)
    cards, system = rocm_smi.parse(doc)
    igpu = cards[1]
    assert (igpu["index"], igpu["bdf"], igpu["model"], igpu["device_id"], igpu["gfx_version"]) == (
        1, "0000:13:00.0", "Raphael", "0x164e", "gfx1036")
    assert (igpu["temperature_edge_c"], igpu["temperature_junction_c"], igpu["power_w"]) == (49.0, None, 1.065)
    assert (igpu["busy_percent"], igpu["vram_used_percent"]) == (0, 4)
    assert system["driver_version"] == "6.14.2-arch1-1"


def test_only_the_line_starting_with_brace_is_json():
    doc = {"card0": {"PCI Bus": "0000:0B:00.0", "GPU use (%)": "7"}}
    stdout = "WARNING: Unable to get list of KFD PIDs\n" + json.dumps(doc) + "\n"
    outcome, parsed, _reason = rocm_smi.classify(stdout, "", 0)
    assert outcome == rocm_smi.ANSWERED and parsed == doc


def test_dead_gpu_missing_from_json_leaves_a_gap():
    doc = {"card0": {"PCI Bus": "0000:03:00.0"}, "card2": {"PCI Bus": "0000:09:00.0"}}
    cards, _system = rocm_smi.parse(doc)
    assert [c["index"] for c in cards] == [0, 2]


@pytest.mark.parametrize("stdout,stderr,rc,outcome", [
    ("", "WARNING: No JSON data to report\n", 0, rocm_smi.NO_DATA),
    ("ERROR: Cannot print JSON/CSV output for concise output\n", "", 1, rocm_smi.FAILED),
    ("Driver not initialized (amdgpu not found in modules)\n", "", 0, rocm_smi.NO_DRIVER),
    ("{not json at all\n\x00\x01garbage\n", "", 0, rocm_smi.UNPARSEABLE),
    ("", "", 0, rocm_smi.UNPARSEABLE),
    ('{"system": {"Driver version": "6.3.6"}}\n', "", 0, rocm_smi.NO_DATA),
])
def test_failures_with_exit_zero_are_recognised(stdout, stderr, rc, outcome):
    got, _doc, reason = rocm_smi.classify(stdout, stderr, rc)
    assert got == outcome
    assert reason


@pytest.mark.parametrize("raw,expected", [
    ("gfx1032", "gfx1032"), ("gfx9010", "gfx90a"), ("gfx942", "gfx942"), ("gfx1100", "gfx1100"),
    ("gfx906", "gfx906"), ("N/A", None), (None, None), ("gfx\u00b2\u00b2\u00b2", "gfx\u00b2\u00b2\u00b2"),
])
def test_gfx_normalisation(raw, expected):
    assert rocm_smi.normalize_gfx(raw) == expected


@pytest.mark.parametrize("raw,expected", [(100302, "gfx1032"), (90010, "gfx90a"), (90402, "gfx942"), (0, None)])
def test_gfx_from_kfd_target_version(raw, expected):
    assert rocm_smi.gfx_from_target_version(raw) == expected


@pytest.mark.parametrize("raw,expected", [
    ("45.0", 45.0), ("0", 0), ("N/A", None), ("N/A (Secondary die)", None), ("", None), ("4294967295", 4294967295),
])
def test_number(raw, expected):
    assert rocm_smi.number(raw) == expected


@pytest.mark.parametrize("version,order", [("5.7.1", "drm"), ("6.0.2", "bdf"), ("7.1.0", "bdf"), ("", None)])
def test_order_from_rocm_version(version, order):
    assert rocm_smi.index_order_from_rocm_version(version) == order


def test_deeply_nested_garbage_is_unparseable_not_a_crash():
    outcome, _doc, _reason = rocm_smi.classify("{" + '{"a":' * 5000 + "\n", "", 0)
    assert outcome == rocm_smi.UNPARSEABLE


def test_bare_nan_and_infinity_tokens_are_unreadable_values():
    """Python's json accepts NaN/Infinity; such a value is unreadable, never a traceback."""
    _outcome, doc, _reason = rocm_smi.classify(
        '{"card0": {"VRAM Total Memory (B)": NaN, "GPU use (%)": Infinity, "Temperature (Sensor edge) (C)": -Infinity,'
        ' "PCI Bus": "0000:03:00.0"}}', "", 0)
    card = rocm_smi.parse(doc)[0][0]
    assert (card["vram_total_bytes"], card["busy_percent"], card["temperature_edge_c"]) == (None, None, None)
    assert card["bdf"] == "0000:03:00.0"


@pytest.mark.parametrize("reading,want", [("2112.0", None), ("511.0", None), ("-273.2", None), ("45.0", 45.0)])
def test_a_temperature_no_sensor_reads_is_none(reading, want):
    """rocm-smi prints what the sensor file gave: a torn firmware read (2112 C on MI350X, rocm-systems PR 6931) or a
    hwmon glitch (511 C) is no temperature, never an overheating GPU."""
    card = rocm_smi.parse_card(0, {"Temperature (Sensor edge) (C)": reading, "Temperature (Sensor junction) (C)": reading})
    assert (card["temperature_edge_c"], card["temperature_junction_c"]) == (want, want)


def test_recorded_rsmi_init_failure_is_a_failure_named_by_its_telling_line():
    """ROCm 4.1 rocm-smi whose rsmi_init failed (llvmlite #717): its errors on stderr under a bare 'ERROR:' heading,
    exit with rsmi's status 8. The GPUs are unknown; the reason quotes what went wrong, not the heading."""
    stderr = recording("rocm-smi", "rocm4.1_rsmi_init_failed_kfd_domain_llvmlite-717.txt")
    outcome, doc, reason = rocm_smi.classify("", stderr, 8)
    assert (outcome, doc) == (rocm_smi.FAILED, None)
    assert reason == 'rocm-smi exited 8: Failed to get "domain" properity from properties files for kfd node 1.'


def test_recorded_mi100_cards_keep_their_own_addresses_whatever_the_key_order():
    """4x MI100 on ROCm 4.x (determined-ai): cards listed out of order, DRM order the reverse of PCI order, product keys
    holding the vendor id: each card keeps its own address, and no '0x1002' is taken for a model."""
    doc = rocm_smi.extract_json(recording("rocm-smi", "rocm4.x_4x_mi100_id_uniqueid_productname_bus_reserialized_determined.json"))
    cards, _system = rocm_smi.parse(doc)
    assert [(c["index"], c["bdf"], c["unique_id"]) for c in cards] == [
        (0, "0000:63:00.0", "0x7ef570db1b346018"), (1, "0000:43:00.0", "0x6be2ee3b2b314cfc"),
        (2, "0000:26:00.0", "0xa8a0e90b7ea1c0ad"), (3, "0000:03:00.0", "0x2f94151ef4b53e39")]


def test_recorded_lower_case_sensor_keys_of_the_sysfs_rocm_smi_are_read():
    """rocm-smi of late 2019 (RainbowMiner #749) wrote 'Temperature (Sensor edge) (c)': the same sensor, never a GPU
    without temperature."""
    doc = rocm_smi.extract_json(recording("rocm-smi", "rocm2.x_f_t_P_json_lowercase_c_sensor_keys_rainbowminer-749.json"))
    card = rocm_smi.parse(doc)[0][0]
    assert (card["temperature_edge_c"], card["temperature_junction_c"], card["power_w"]) == (77.0, 103.0, 222.0)


def test_sysfs_rocm_smi_memory_and_unlabelled_sensor_keys_are_read():
    """Hand-made from the sysfs-based rocm_smi.py 1.4.1 (ROCm <= 3.8, ROCm/ROC-smi): its memory types are lower
    case ('%s Total Memory (B)' % 'vram') and a hwmon sensor without a label is 'Temperature (Sensor #1) (C)'
    (amdgpu's temp1 is the edge sensor). Its card keys are the DRM card names."""
    card = rocm_smi.parse_card(1, {
        "GPU ID": "0x687f", "PCI Bus": "0000:03:00.0", "Temperature (Sensor #1) (C)": "25.0",
        "Average Graphics Package Power (W)": "10.0", "GPU use (%)": "0",
        "vram Total Memory (B)": "8573157376", "vram Total Used Memory (B)": "12713984"})
    assert (card["device_id"], card["bdf"], card["temperature_edge_c"], card["power_w"], card["busy_percent"]) == (
        "0x687f", "0000:03:00.0", 25.0, 10.0, 0)
    assert (card["vram_total_bytes"], card["vram_used_bytes"]) == (8573157376, 12713984)


def test_a_labelled_edge_sensor_wins_over_the_unlabelled_one():
    card = rocm_smi.parse_card(0, {"Temperature (Sensor #1) (C)": "30.0", "Temperature (Sensor edge) (C)": "41.0"})
    assert card["temperature_edge_c"] == 41.0


@pytest.mark.parametrize("stdout,stderr", [
    ('{"system": {"Driver version": "6.8.5"}}\n', "WARNING: No AMD GPUs specified\n"),   # --showdriverversion still prints
    ("", "WARNING: No AMD GPUs specified\nWARNING: No JSON data to report\n"),
])
def test_a_rocm_smi_that_reaches_no_gpu_cannot_tell(stdout, stderr):
    """'No AMD GPUs specified' (recorded in ROCm#1742 and #6176, concise form): rocm-smi enumerated no AMD GPU at all,
    in a container without the device files, or where KFD skipped every GPU. In JSON mode (hand-made from
    rocm_smi.py: the warning on stderr, the driver version still printed) that is no list of GPUs: not 'no_data',
    whose GPUs would be judged gone from it."""
    outcome, _doc, reason = rocm_smi.classify(stdout, stderr, 0)
    assert outcome == rocm_smi.NONE_SEEN
    assert reason.startswith('rocm-smi reaches no AMD GPU ("WARNING: No AMD GPUs specified")')


def test_recorded_no_amd_gpus_specified_reason_quotes_the_tool():
    text = recording("rocm-smi", "rocm6.4_concise_no_amd_gpus_specified_mi50_egpu_ROCm-6176.txt")
    outcome, doc, reason = rocm_smi.classify(text, "", 0)
    assert (outcome, doc) == (rocm_smi.NONE_SEEN, None)
    assert '"WARNING: No AMD GPUs specified"' in reason


def test_a_tool_that_crashed_is_named_by_its_exception():
    """A rocm-smi that died of a Python exception (recorded, ROC-smi #15: the table, then the traceback): the failure
    quotes the exception, not 'Traceback (most recent call last):'."""
    text = recording("rocm-smi", "rocm1.7_concise_mining_rig_7gpus_traceback_ROC-smi-15.txt")
    traceback = text[text.index("Traceback"):]
    outcome, _doc, reason = rocm_smi.classify("", traceback, 1)
    assert (outcome, reason) == (rocm_smi.FAILED, "rocm-smi exited 1: ValueError: invalid literal for int() with base 10: ''")


def test_python_warnings_before_the_tools_words_are_not_its_words():
    """amd-smi 6.2.4 under Python 3.12 (ROCm#6176, recorded) prints a SyntaxWarning about its own BDF.py, with the
    source line, before its error: the error is what it said."""
    text = recording("amd-smi", "rocm6.2.4_unable_to_detect_any_gpu_devices_mi50_egpu_ROCm-6176.txt")
    assert rocm_smi.telling_line(text) == "ERROR: Unable to detect any GPU devices, check amdgpu version and module status"
