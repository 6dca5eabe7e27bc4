"""The sysfs side of the GPU probe on real amdgpu/PCI behaviour: what the kernel's files say, and reads that fail."""

from __future__ import annotations

import os
import struct

from ansible_collections.gpuops.preflight.plugins.module_utils import _gpus as gpus
from ansible_collections.gpuops.preflight.plugins.module_utils import _sysfs
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.fixtures import read
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.sysfs_tree import add_gpu
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.test_gpus import (
    FakeModule, by_bdf, listed_without_sensors, rocm_doc)


def _write(path, data, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as handle:
        handle.write(data)


def test_sriov_virtual_function_is_not_lost_for_its_all_ones_ids(tmp_path):
    """An SR-IOV virtual function reads all-ones in its vendor/device dword by the standard (its ids are its physical
    function's; pciutils #154), while its command and status registers answer (hand-made config from that rule). The
    kernel's "device lost from bus!" test reads PCI_COMMAND: the VF is on the bus, never lost."""
    root = str(tmp_path / "sys")
    dev = add_gpu(root, "0000:83:02.0", card=1, device="0x74b5", busy=0, temp_mc=40000, power_uw=90000000)
    _write(os.path.join(dev, "config"), b"\xff\xff\xff\xff" + struct.pack("<HH", 0x0406, 0x0010) + b"\0" * 56, "wb")
    assert _sysfs.config_space_lost(dev) is False
    gpu = gpus.probe(FakeModule(tools=("timeout",)), sysfs_root=root)["gpus"][0]
    assert (gpu["health"], gpu["problems"]) == ("ok", [])


def test_all_ones_command_register_is_lost_and_a_short_config_read_is_judged_on_what_it_has(tmp_path):
    root = str(tmp_path / "sys")
    dev = add_gpu(root, "0000:03:00.0", card=1)
    _write(os.path.join(dev, "config"), struct.pack("<HH", 0x1002, 0x73ff) + b"\xff" * 4 + b"\0" * 56, "wb")
    assert _sysfs.config_space_lost(dev) is True
    _write(os.path.join(dev, "config"), b"\xff" * 256, "wb")  # a GPU gone from the bus: all-ones everywhere
    assert _sysfs.config_space_lost(dev) is True
    # a file cut short before the command register (a copied or hand-made tree): its vendor/device dword decides
    _write(os.path.join(dev, "config"), b"\xff" * 4, "wb")
    assert _sysfs.config_space_lost(dev) is True
    _write(os.path.join(dev, "config"), struct.pack("<HH", 0x1002, 0x73ff), "wb")
    assert _sysfs.config_space_lost(dev) is False
    _write(os.path.join(dev, "config"), b"\xff\xff", "wb")  # not even one dword: nothing to tell
    assert _sysfs.config_space_lost(dev) is None


def _three(tmp_path):
    root = str(tmp_path / "sys")
    for bus, card in ((3, 1), (6, 2), (9, 3)):
        add_gpu(root, "0000:%02x:00.0" % bus, card=card, busy=0, temp_mc=41000, power_uw=9000000)
    return root


def test_sensor_reads_the_driver_refuses_are_not_a_hung_smu(tmp_path, monkeypatch):
    """amdgpu answers hwmon and gpu_busy_percent reads with EPERM while the GPU is not runtime-active or is in a reset
    (amdgpu_pm_get_access_if_active); rocm-smi then omits its temperature and power. That is no sensor failing to
    answer: the GPU the tool lists is not degraded for it (hand-made EPERM answers)."""
    root = _three(tmp_path)
    real = _sysfs._read_bytes

    def read(path, limit):
        measured = path.endswith(("_input", "_average", "gpu_busy_percent")) and os.path.exists(path)
        if "0000:06:00.0" in path and measured:  # a label is no measurement: amdgpu serves it without the SMU
            return None, "EPERM"
        return real(path, limit)
    monkeypatch.setattr(_sysfs, "_read_bytes", read)
    result = by_bdf(gpus.probe(FakeModule(answer=(0, listed_without_sensors(6), "")), sysfs_root=root))
    refused = result["0000:06:00.0"]
    assert (refused["health"], refused["responding"], refused["problems"]) == ("ok", True, [])
    assert (refused["temperature_edge_c"], refused["power_w"]) == (None, None)
    assert refused["warnings"] == ["amdgpu refused its sensor reads (power1_average, temp_input: EPERM): it is in a "
                                   "reset or not runtime-active; its temperature and power are unknown"]


def test_gpu_that_went_to_sleep_after_the_scan_is_not_read_nor_judged(tmp_path, monkeypatch):
    """An idle GPU runtime-suspends seconds after the last read (amdgpu's autosuspend delay): one the identity scan saw
    active but that sleeps when its metrics are read is not read (a gpu_busy_percent read wakes it on kernels before
    amdgpu_pm_get_access_if_active) and its silent sensors are no verdict."""
    root = _three(tmp_path)
    identity = _sysfs._identity

    def scan_then_sleep(bdf, device_dir, *args, **kwargs):
        gpu = identity(bdf, device_dir, *args, **kwargs)
        if bdf == "0000:06:00.0":
            _write(os.path.join(device_dir, "power", "runtime_status"), "suspended\n")
        return gpu
    monkeypatch.setattr(_sysfs, "_identity", scan_then_sleep)
    result = by_bdf(gpus.probe(FakeModule(answer=(0, listed_without_sensors(6), "")), sysfs_root=root))
    asleep = result["0000:06:00.0"]
    assert (asleep["health"], asleep["runtime_status"], asleep["busy_percent"]) == ("ok", "suspended", 0)
    assert (asleep["temperature_edge_c"], asleep["power_w"]) == (None, None)
    assert asleep["problems"] == ["runtime-suspended (idle): metrics not read, to avoid waking it"]
    # no GPU tool: its busy %, temperature and power are not read from sysfs either
    nothing = gpus.probe(FakeModule(tools=("timeout",)), sysfs_root=_three(tmp_path / "again"))["gpus"][1]
    assert (nothing["bdf"], nothing["runtime_status"], nothing["health"]) == ("0000:06:00.0", "suspended", "unknown")
    assert (nothing["busy_percent"], nothing["temperature_edge_c"], nothing["power_w"]) == (None, None, None)


def test_runtime_pm_error_latched_on_a_gpu_is_degraded(tmp_path):
    """The PM core shows power/runtime_status "error" once a driver's runtime suspend or resume failed (ROCm/amdgpu
    #183: MI100s whose SMU did not resume with runtime PM on); every later wake then fails with EINVAL until the driver
    is rebound (hand-made status file). rocm-smi still lists the GPU: it is degraded, not ok."""
    root = _three(tmp_path)
    _write(os.path.join(root, "devices", "pci0000:00", "0000:06:00.0", "power", "runtime_status"), "error\n")
    result = by_bdf(gpus.probe(FakeModule(answer=(0, rocm_doc((0, 3), (1, 6), (2, 9)), "")), sysfs_root=root))
    latched = result["0000:06:00.0"]
    assert (latched["health"], latched["runtime_status"]) == ("degraded", "error")
    assert latched["problems"] == [gpus.RUNTIME_STATUS_HEALTH["error"][1]]
    assert "power/runtime_status: error" in latched["problems"][0]
    assert [result[b]["health"] for b in ("0000:03:00.0", "0000:09:00.0")] == ["ok", "ok"]
    alone = by_bdf(gpus.probe(FakeModule(tools=("timeout",)), sysfs_root=root))["0000:06:00.0"]
    assert alone["health"] == "degraded"


def _untar(text, root):
    """Write a ttar archive (prometheus/procfs test fixtures: Directory / Path + Lines + Mode / Path + SymlinkTo)."""
    lines, i = text.split("\n"), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("Directory: "):
            os.makedirs(os.path.join(root, line[len("Directory: "):]), exist_ok=True)
        elif line.startswith("Path: ") and lines[i + 1].startswith("SymlinkTo: "):
            path = os.path.join(root, line[len("Path: "):])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.symlink(lines[i + 1][len("SymlinkTo: "):], path)
            i += 1
        elif line.startswith("Path: "):
            count = int(lines[i + 1][len("Lines: "):])
            _write(os.path.join(root, line[len("Path: "):]), "".join(part + "\n" for part in lines[i + 2:i + 2 + count]))
            i += 1 + count
        i += 1


def test_recorded_vega10_class_drm_tree_copied_as_plain_folders(tmp_path):
    """prometheus/procfs's recorded /sys/class/drm/card0 of a Vega 10 (RX Vega 56/64, 0x687f): a copied tree, where
    card0/device is a plain folder and bus/pci is absent; its uevent names the PCI address. One AMD GPU at
    0000:09:00.0 with the files' values, no hwmon (no temperature, no power), performance level manual."""
    root = str(tmp_path / "sys")
    _untar(read("sysfs-trees", "vega10_class_drm_card0_procfs.ttar"), root)
    result = gpus.probe(FakeModule(tools=("timeout",)), sysfs_root=root)
    assert [g["bdf"] for g in result["gpus"]] == ["0000:09:00.0"]
    gpu = result["gpus"][0]
    assert (gpu["drm_card"], gpu["device_id"], gpu["busy_percent"], gpu["vram_total_bytes"], gpu["vram_used_bytes"],
            gpu["perf_level"]) == (0, "0x687f", 4, 8573157376, 1490378752, "manual")
    assert (gpu["temperature_edge_c"], gpu["power_w"], gpu["health"], gpu["responding"]) == (None, None, "ok", True)
    (scanned,) = _sysfs.scan_gpus(root)
    assert (scanned["driver"], scanned["unique_id"], scanned["vbios_version"], scanned["revision"]) == (
        "amdgpu", "0123456789abcdef", "115-D050PIL-100", "0xc1")
    assert (scanned["lost"], scanned["runtime_status"], scanned["hwmon"]) == (None, None, None)


def test_gpu_judged_from_sysfs_alone_says_why_its_metrics_are_missing(tmp_path):
    """No GPU tool (or tool=sysfs) and every metric file reads empty, as amdgpu's do when the SMU does not answer
    (rocm_smi_lib #85; hand-made files): the GPU is unknown, never ok, and the problem says what sysfs answered
    ('empty', not an errno the kernel never gave). A runtime-suspended one says it was not woken."""
    root = str(tmp_path / "sys")
    dev = add_gpu(root, "0000:03:00.0", card=1, busy=0, temp_mc=40000, power_uw=9000000)
    add_gpu(root, "0000:06:00.0", card=2, runtime_status="suspended", busy=0, temp_mc=30000)
    for rel in ("gpu_busy_percent", "hwmon/hwmon1/temp1_input", "hwmon/hwmon1/power1_average"):
        _write(os.path.join(dev, rel), "")
    for module, tool in ((FakeModule(tools=("timeout",)), "auto"), (FakeModule(), "sysfs")):
        result = by_bdf(gpus.probe(module, sysfs_root=root, tool=tool))
        silent, asleep = result["0000:03:00.0"], result["0000:06:00.0"]
        assert (silent["health"], silent["responding"], asleep["health"]) == ("unknown", None, "unknown")
        assert silent["problems"][0].endswith("sysfs shows it on the bus; its sysfs metric reads gave nothing "
                                              "(gpu_busy_percent empty, power1_average empty, temp_input empty)")
        assert asleep["problems"][0].endswith("its sysfs metric reads gave nothing (runtime-suspended: not woken)")
    _write(os.path.join(dev, "gpu_busy_percent"), "N/A\n")
    assert _sysfs._read_int(os.path.join(dev, "gpu_busy_percent")) == (None, "not a number: 'N/A'")


def test_busy_file_the_driver_does_not_support_leaves_the_gpu_ok_and_its_busy_unknown(tmp_path, monkeypatch):
    """AMD BC-250 (Cyan Skillfish, 1002:13fe): `cat gpu_busy_percent` answers "Operation not supported" while hwmon
    temperature and power work (btop #1794); a Raven APU answers EINVAL (MangoHud #464). With no GPU tool the GPU is
    ok from its hwmon reads and its busy % is unknown (None), never 0; the errno is kept (hand-made answers)."""
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:01:00.0", card=1, device="0x13fe", busy=0, temp_mc=49000, power_uw=66000000)
    add_gpu(root, "0000:04:00.0", card=2, device="0x15dd", busy=0, temp_mc=41000, power_uw=3103000)
    real = _sysfs._read_bytes
    answers = {"0000:01:00.0": "EOPNOTSUPP", "0000:04:00.0": "EINVAL"}

    def read(path, limit):
        for bdf, err in answers.items():
            if bdf in path and path.endswith("gpu_busy_percent"):
                return None, err
        return real(path, limit)
    monkeypatch.setattr(_sysfs, "_read_bytes", read)
    result = by_bdf(gpus.probe(FakeModule(tools=("timeout",)), sysfs_root=root))
    got = [(b, g["health"], g["busy_percent"], g["temperature_edge_c"], g["power_w"]) for b, g in sorted(result.items())]
    assert got == [("0000:01:00.0", "ok", None, 49.0, 66.0), ("0000:04:00.0", "ok", None, 41.0, 3.103)]
    gpu = {"bdf": "0000:01:00.0", "device_dir": os.path.join(root, "devices", "pci0000:00", "0000:01:00.0"),
           "runtime_status": "active", "hwmon": None}
    assert _sysfs.read_metrics(gpu)["read_errors"] == {"gpu_busy_percent": "EOPNOTSUPP"}
