from __future__ import annotations

import copy
import json
import os
import shutil

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _gpus as gpus
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.fixtures import amd_smi_gpu_choices, recording
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.sysfs_tree import add_gpu, add_kfd


class FakeModule(object):
    """Stands in for AnsibleModule: tools on a fake PATH, run_command replaying a recorded answer."""

    def __init__(self, tools=("rocm-smi", "timeout"), answer=(0, "", "")):
        self.tools = set(tools)
        self.answer = answer
        self.calls = []

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/bin/%s" % name if name in self.tools else None

    def run_command(self, cmd, **kwargs):
        self.calls.append(cmd)
        if isinstance(self.answer, dict):  # per subcommand (amd-smi metric, list), after timeout's 4 words
            return self.answer[cmd[5]]
        return self.answer


def rocm_doc(*buses, template="telegraf_rx6700xt_rocm602.json"):
    """A rocm-smi answer for GPUs at the given PCI buses, from a real recorded card."""
    card = json.loads(recording("rocm-smi", template))["card0"]
    doc = {}
    for index, bus in buses:
        doc["card%d" % index] = dict(card, **{"PCI Bus": "0000:%02X:00.0" % bus})
    doc["system"] = {"Driver version": "6.3.6"}
    return json.dumps(doc)


@pytest.fixture
def rig(tmp_path):
    """Three GPUs; DRM card numbers deliberately not in PCI order."""
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:03:00.0", card=2)
    add_gpu(root, "0000:06:00.0", card=1)
    add_gpu(root, "0000:09:00.0", card=3)
    return root


def by_bdf(result):
    return dict((g["bdf"], g) for g in result["gpus"])


def test_all_answer_ok_one_tool_call(rig):
    module = FakeModule(answer=(0, rocm_doc((0, 3), (1, 6), (2, 9)), ""))
    result = gpus.probe(module, sysfs_root=rig)
    assert [(g["index"], g["bdf"], g["health"]) for g in result["gpus"]] == [
        (0, "0000:03:00.0", "ok"), (1, "0000:06:00.0", "ok"), (2, "0000:09:00.0", "ok")]
    assert len(module.calls) == 1
    assert module.calls[0][:4] == ["/usr/bin/timeout", "-k", "2", "15"]
    assert module.calls[0][4:6] == ["/usr/bin/rocm-smi", "--showuse"]
    gpu = result["gpus"][0]
    assert (gpu["temperature_edge_c"], gpu["drm_card"], gpu["model"]) == (45.0, 2, "Navi 22 [Radeon RX 6700/6700 XT / 6800M]")
    assert result["tool"]["answered"] and result["index_order"] == "bdf"


def test_vanished_gpu_keeps_its_pci_order_place_and_is_degraded(rig):
    module = FakeModule(answer=(0, rocm_doc((0, 3), (2, 9)), ""))
    result = by_bdf(gpus.probe(module, sysfs_root=rig))
    gone = result["0000:06:00.0"]
    assert (gone["index"], gone["health"], gone["responding"]) == (1, "degraded", False)
    assert "no longer reports it" in gone["problems"][0]


def test_vanished_gpu_in_drm_order_for_old_rocm(rig):
    # ROCm <= 5.7 numbers GPUs by DRM card: card1 (06:00.0) is index 0, card2 (03:00.0) index 1.
    module = FakeModule(answer=(0, rocm_doc((1, 3), (2, 9), template="telegraf_rx6700xt_rocm571.json"), ""))
    result = gpus.probe(module, sysfs_root=rig)
    assert result["index_order"] == "drm"
    assert by_bdf(result)["0000:06:00.0"]["index"] == 0


def test_lost_gpu_from_config_space(tmp_path):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:03:00.0", card=1)
    add_gpu(root, "0000:06:00.0", card=2, lost=True)
    module = FakeModule(answer=(0, rocm_doc((0, 3)), ""))
    lost = by_bdf(gpus.probe(module, sysfs_root=root))["0000:06:00.0"]
    assert lost["health"] == "lost" and lost["index"] == 1 and lost["responding"] is False
    assert "all-ones" in lost["problems"][0]


def test_tool_timeout_gives_unknown_with_sysfs_facts(rig):
    ticks = iter(range(0, 10000, 16))  # every clock reading 16 s later: the tool ran past its 15 s
    module = FakeModule(answer=(124, "", ""))
    result = gpus.probe(module, sysfs_root=rig, clock=lambda: float(next(ticks)))
    assert result["tool"]["outcome"] == gpus.TIMEOUT and result["tool"]["timed_out"]
    assert "timed out after 15s" in result["gpus"][0]["problems"][0]
    for gpu in result["gpus"]:
        assert gpu["health"] == "unknown" and gpu["responding"] is None
        assert gpu["vram_total_bytes"] == 8573157376  # sysfs facts are still there


def test_quick_exit_124_is_a_failure_not_a_timeout(rig):
    result = gpus.probe(FakeModule(answer=(124, "", "")), sysfs_root=rig)
    assert result["tool"]["outcome"] == "failed" and not result["tool"]["timed_out"]


@pytest.mark.parametrize("answer", [
    (0, "", "WARNING: No JSON data to report\n"),                    # older rocm-smi: nothing on stdout
    (0, json.dumps({"system": {"Driver version": "6.8.0"}}), ""),    # --showdriverversion keeps "system"
])
def test_tool_that_lists_no_gpu_makes_every_sysfs_gpu_vanished(rig, answer):
    """rocm-smi ran and listed no GPU: each GPU sysfs shows is judged as a single vanished one is."""
    alone = by_bdf(gpus.probe(FakeModule(answer=(0, rocm_doc((0, 3), (2, 9)), "")), sysfs_root=rig))["0000:06:00.0"]
    result = gpus.probe(FakeModule(answer=answer), sysfs_root=rig)
    assert result["tool"]["outcome"] == "no_data"
    assert result["tool"]["listed"] and not result["tool"]["answered"]  # its numbering stays a guess
    for gpu in result["gpus"]:
        assert (gpu["health"], gpu["responding"], gpu["in_tool_output"]) == ("degraded", False, False)
        assert gpu["problems"] == alone["problems"]


def test_amd_smi_listing_no_gpu_is_the_same(rig):
    module = FakeModule(tools=("amd-smi", "timeout"), answer=(0, json.dumps({"gpu_data": []}), ""))
    result = gpus.probe(module, sysfs_root=rig)
    assert result["tool"]["outcome"] == "no_data"
    assert set(g["health"] for g in result["gpus"]) == {"degraded"}


def test_tool_listing_no_gpu_on_a_host_without_amdgpu_gpus(tmp_path):
    """Nothing in sysfs: nothing is judged missing (the tool listing none is then no news)."""
    result = gpus.probe(FakeModule(answer=(0, "", "WARNING: No JSON data to report\n")), sysfs_root=str(tmp_path))
    assert result["gpus"] == []


def test_driver_not_loaded_stays_unknown(rig):
    module = FakeModule(answer=(0, "Driver not initialized (amdgpu not found in modules)\n", ""))
    result = gpus.probe(module, sysfs_root=rig)
    assert result["tool"]["outcome"] == "no_driver" and not result["tool"]["listed"]
    assert set(g["health"] for g in result["gpus"]) == {"unknown"}


def test_no_tool_installed_uses_sysfs_metrics(tmp_path):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:03:00.0", card=1, busy=12, temp_mc=48000, power_uw=35000000)
    add_gpu(root, "0000:06:00.0", card=2, runtime_status="suspended", busy=0, temp_mc=30000)
    result = by_bdf(gpus.probe(FakeModule(tools=("timeout",)), sysfs_root=root))
    awake, asleep = result["0000:03:00.0"], result["0000:06:00.0"]
    assert (awake["busy_percent"], awake["temperature_edge_c"], awake["power_w"]) == (12, 48.0, 35.0)
    assert awake["health"] == "ok" and awake["responding"] is True
    assert asleep["temperature_edge_c"] is None  # never woken to read it
    assert asleep["health"] == "unknown"


def test_sysfs_temperature_of_a_gpu_without_edge_sensor_is_its_junction(tmp_path):
    """MI300A (SMU 13.0.6): hwmon has no temp1 (edge), only temp2 'junction' and temp3 'mem' (values recorded in
    nvtop #514); with no tool installed its temperature is the junction's, as a tool's answer is read."""
    root = str(tmp_path / "sys")
    dev = add_gpu(root, "0000:03:00.0", card=1, busy=0)
    hwmon = os.path.join(dev, "hwmon", "hwmon1")
    os.remove(os.path.join(hwmon, "temp1_label"))
    for name, text in (("temp2_label", "junction"), ("temp2_input", "43000"), ("temp3_label", "mem"),
                       ("temp3_input", "37000"), ("power1_input", "120000000")):
        with open(os.path.join(hwmon, name), "w") as handle:
            handle.write(text + "\n")
    gpu = gpus.probe(FakeModule(tools=("timeout",)), sysfs_root=root)["gpus"][0]
    assert (gpu["temperature_edge_c"], gpu["power_w"], gpu["health"]) == (43.0, 120.0, "ok")


def test_sysfs_temperature_glitch_is_no_temperature(tmp_path):
    """hwmon reading 511 C (a glitch, lm-sensors #289) on a GPU read from sysfs: no temperature, never 511 C."""
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:03:00.0", card=1, busy=0, temp_mc=511000, power_uw=30000000)
    gpu = gpus.probe(FakeModule(tools=("timeout",)), sysfs_root=root)["gpus"][0]
    assert (gpu["temperature_edge_c"], gpu["power_w"], gpu["health"]) == (None, 30.0, "ok")


def test_smu_and_bus_findings_from_kernel_log(rig):
    findings = [
        {"category": "smu_no_response", "bdf": "0000:06:00.0", "summary": "SMU not answering (0xFFFFFFFF)", "count": 3,
         "gpu_health": "degraded"},
        {"category": "smu_message_failed", "bdf": "0000:06:00.0", "summary": "SMU metrics export failed", "count": 1,
         "gpu_health": "degraded"},
        {"category": "smu_no_response", "bdf": "0000:06:00.0", "summary": "SMU not answering (0xFFFFFFFF)", "count": 2,
         "gpu_health": "degraded"},
        {"category": "bus_lost", "bdf": "0000:0C:00.0", "summary": "device lost from bus", "count": 1, "gpu_health": "lost"},
        {"category": "ring_timeout", "bdf": "0000:03:00.0", "summary": "ring timeout", "count": 1, "gpu_health": None},
    ]
    module = FakeModule(answer=(0, rocm_doc((0, 3), (1, 6), (2, 9)), ""))
    result = by_bdf(gpus.probe(module, sysfs_root=rig, kernel_findings=findings))
    assert result["0000:06:00.0"]["health"] == "degraded"
    assert result["0000:06:00.0"]["problems"] == [
        "kernel log: SMU not answering (0xFFFFFFFF) (x5), SMU metrics export failed"]
    assert result["0000:03:00.0"]["health"] == "ok"  # a ring timeout is the kernel_log check's business
    ghost = result["0000:0c:00.0"]  # gone from sysfs and the tool, known only from the kernel log
    assert ghost["health"] == "lost" and ghost["sources"] == ["kernel_log"]


def test_non_amd_display_and_unbound_gpu(tmp_path):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:02:00.0", card=0, vendor="0x1a03", device="0x2000", driver="ast")  # BMC
    add_gpu(root, "0000:03:00.0", card=1)
    add_gpu(root, "0000:06:00.0", card=None, driver=None)  # on the bus, amdgpu let go of it
    module = FakeModule(answer=(0, rocm_doc((0, 3)), ""))
    result = by_bdf(gpus.probe(module, sysfs_root=root))
    assert "0000:02:00.0" not in result
    unbound = result["0000:06:00.0"]
    assert unbound["health"] == "degraded" and unbound["index"] is None


def test_kfd_vram_holders_and_gfx(rig):
    add_kfd(rig, [(41840, "0000:03:00.0", 100302), (5122, "0000:06:00.0", 100302)],
            procs=[(4242, 5122, 2147483648), (4243, 41840, 0)])
    module = FakeModule(answer=(0, rocm_doc((0, 3), (1, 6), (2, 9)), ""))
    result = gpus.probe(module, sysfs_root=rig)
    holders = [(p["pid"], p["bdf"], p["index"], p["vram_bytes"]) for p in result["processes"]]
    assert holders == [(4242, "0000:06:00.0", 1, 2147483648), (4243, "0000:03:00.0", 0, 0)]
    assert by_bdf(result)["0000:03:00.0"]["gfx_version"] == "gfx1032"


def test_kfd_entries_with_other_digits_are_skipped(rig):
    """'\u00b2' is a digit to str.isdigit but not to int(): such a KFD entry is skipped, never a traceback."""
    add_kfd(rig, [(41840, "0000:03:00.0", 100302)], procs=[(4242, 41840, 1024)])
    kfd = os.path.join(rig, "class", "kfd", "kfd")
    os.makedirs(os.path.join(kfd, "proc", "\u00b2"))
    with open(os.path.join(kfd, "proc", "4242", "vram_\u00b2"), "w") as handle:
        handle.write("5\n")
    os.makedirs(os.path.join(kfd, "topology", "nodes", "9"))
    for name, text in (("gpu_id", "7\n"), ("properties", "location_id \u00b2\ndomain 0\n")):
        with open(os.path.join(kfd, "topology", "nodes", "9", name), "w") as handle:
            handle.write(text)
    result = gpus.probe(FakeModule(answer=(0, rocm_doc((0, 3), (1, 6), (2, 9)), "")), sysfs_root=rig)
    holders = [(p["pid"], p["gpu_id"], p["bdf"], p["vram_bytes"]) for p in result["processes"]]
    assert holders == [(4242, 41840, "0000:03:00.0", 1024), (4242, "\u00b2", None, 5)]


def test_amd_smi_without_addresses_matched_by_pci_order(rig):
    listed = json.loads(recording("amd-smi", "rx6600_gfx1032_metric_proxmox.json"))
    doc = [dict(listed[0], gpu=i) for i in range(3)]
    module = FakeModule(tools=("amd-smi", "timeout"), answer=(0, json.dumps(doc, indent=4), ""))
    result = gpus.probe(module, sysfs_root=rig)
    assert result["tool"]["name"] == "amd-smi"
    assert [(g["index"], g["bdf"], g["temperature_edge_c"]) for g in result["gpus"]] == [
        (0, "0000:03:00.0", 36.0), (1, "0000:06:00.0", 36.0), (2, "0000:09:00.0", 36.0)]


def test_no_sysfs_at_all_keeps_tool_facts(tmp_path):
    module = FakeModule(answer=(0, rocm_doc((0, 3), (1, 6)), ""))
    result = gpus.probe(module, sysfs_root=str(tmp_path / "nowhere"))
    assert [g["health"] for g in result["gpus"]] == ["ok", "ok"]
    # no sysfs is no "no GPU": the notes say it could not be read
    assert result["notes"] == ["sysfs: cannot list %s: ENOENT, missing (a container without the host's /sys, or sysfs not "
                               "mounted): which GPUs are on the PCI bus is unknown, not none"
                               % (tmp_path / "nowhere" / "bus" / "pci" / "devices")]
    assert result["sysfs_unread"] == result["notes"][0][len("sysfs: "):]


B03 = "0000:03:00.0"


@pytest.mark.parametrize("lines,health", [
    # a hang the driver will not reset: hung until reboot
    (["[ 4000.1] amdgpu %s: [drm] *ERROR* ring gfx_0.0.0 timeout, signaled seq=1, emitted seq=3" % B03,
      "[ 4000.2] amdgpu %s: amdgpu: GPU recovery disabled." % B03], "degraded"),
    (["[ 4000.1] amdgpu %s: [drm] *ERROR* ring gfx_0.0.0 timeout, signaled seq=1, emitted seq=3" % B03,
      "[ 4000.3] amdgpu %s: amdgpu: GPU reset begin!" % B03,
      "[ 4003.0] amdgpu %s: amdgpu: GPU reset(1) failed" % B03], "degraded"),
    (["[  900.1] amdgpu %s: amdgpu: socket: 0, die: 0, 1 new uncorrectable hardware errors detected in umc block" % B03],
     "degraded"),
    (["[  900.1] amdgpu %s: amdgpu: socket: 0, die: 0, 1 new deferred hardware errors detected in umc block" % B03],
     "degraded"),
    (["[    5.1] amdgpu %s: amdgpu: Fatal error during GPU init" % B03], "degraded"),
    # a hang that a reset recovered, a hang alone, and the recovery line alone (at boot) leave the GPU ok
    (["[ 4000.1] amdgpu %s: [drm] *ERROR* ring gfx_0.0.0 timeout, signaled seq=1, emitted seq=3" % B03,
      "[ 4000.3] amdgpu %s: amdgpu: GPU reset begin!" % B03,
      "[ 4001.0] amdgpu %s: amdgpu: GPU reset(1) succeeded!" % B03], "ok"),
    (["[  800.0] amdgpu %s: amdgpu: MES failed to respond to msg=REMOVE_QUEUE" % B03], "ok"),
    (["[    5.0] amdgpu %s: amdgpu: GPU recovery disabled." % B03], "ok"),
])
def test_hard_amdgpu_findings_make_their_gpu_unhealthy(tmp_path, lines, health):
    from ansible_collections.gpuops.preflight.plugins.module_utils import _kernel_log

    root = str(tmp_path / "sys")
    add_gpu(root, B03, card=1)
    findings = _kernel_log.scan(lines, boot_time=1.7e9, now=1.8e9)
    result = gpus.probe(FakeModule(answer=(0, rocm_doc((0, 3)), "")), sysfs_root=root, kernel_findings=findings)
    assert result["gpus"][0]["health"] == health


KFD_ATOMICS = "[    2.101433] kfd kfd: amdgpu: skipped device 1002:67df, PCI rejects atomics 730<0"


def rocm_doc_ids(*gpus_at):
    """rocm_doc for (index, bus, device id) triples: each card with its own device id, as sysfs has it."""
    doc = json.loads(rocm_doc(*[(index, bus) for index, bus, _id in gpus_at]))
    for index, _bus, device_id in gpus_at:
        doc["card%d" % index]["Device ID"] = device_id
    return json.dumps(doc)


def test_kfd_skipped_gpu_is_degraded_when_its_device_id_is_unambiguous(tmp_path):
    from ansible_collections.gpuops.preflight.plugins.module_utils import _kernel_log

    root = str(tmp_path / "sys")
    add_gpu(root, "0000:01:00.0", card=1, device="0x73ff")
    add_gpu(root, "0000:02:00.0", card=2, device="0x67df")   # behind a riser without PCIe atomics
    answer = rocm_doc_ids((0, 1, "0x73ff"), (1, 2, "0x67df"))
    collected = gpus.collect(FakeModule(answer=(0, answer, "")), sysfs_root=root)
    findings = gpus.join_findings(_kernel_log.scan([KFD_ATOMICS], boot_time=1.7e9, now=1.8e9), collected["gpus"])
    assert [(f["bdf"], f["attributed"]) for f in findings] == [("0000:02:00.0", True)]
    result = by_bdf(gpus.apply_health(collected, findings))
    assert result["0000:01:00.0"]["health"] == "ok"
    skipped = result["0000:02:00.0"]
    assert skipped["health"] == "degraded"
    assert skipped["problems"] == ["kernel log: not usable by ROCm: PCI rejects atomics"]


def test_kfd_skipped_device_id_shared_by_several_gpus_stays_the_hosts(tmp_path):
    from ansible_collections.gpuops.preflight.plugins.module_utils import _kernel_log

    root = str(tmp_path / "sys")
    add_gpu(root, "0000:01:00.0", card=1, device="0x67df")
    add_gpu(root, "0000:02:00.0", card=2, device="0x67df")
    answer = rocm_doc_ids((0, 1, "0x67df"), (1, 2, "0x67df"))
    collected = gpus.collect(FakeModule(answer=(0, answer, "")), sysfs_root=root)
    findings = gpus.join_findings(_kernel_log.scan([KFD_ATOMICS], boot_time=1.7e9, now=1.8e9), collected["gpus"])
    assert findings[0]["bdf"] is None and "attributed" not in findings[0]
    assert set(g["health"] for g in gpus.apply_health(collected, findings)["gpus"]) == {"ok"}


@pytest.mark.parametrize("tools,answer", [
    # rocm-smi on an MI300X: no edge sensor, the junction is its temperature
    (("rocm-smi", "timeout"), {"card0": {"Temperature (Sensor junction) (C)": "96.0",
                                         "Temperature (Sensor memory) (C)": "85.0", "GPU use (%)": "100",
                                         "Current Socket Graphics Package Power (W)": "700.0",
                                         "PCI Bus": "0000:05:00.0", "Device ID": "0x74a1"}}),
    # amd-smi: edge N/A, hotspot
    (("amd-smi", "timeout"), [{"gpu": 0, "temperature": {"edge": "N/A", "hotspot": {"value": 96, "unit": "C"}},
                               "power": {"socket_power": {"value": 700, "unit": "W"}}}]),
])
def test_junction_is_the_temperature_of_a_gpu_without_edge_sensor(tmp_path, tools, answer):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:05:00.0", card=1, device="0x74a1")
    result = gpus.probe(FakeModule(tools=tools, answer=(0, json.dumps(answer), "")), sysfs_root=root)
    assert result["gpus"][0]["temperature_edge_c"] == 96.0


def test_edge_sensor_wins_over_junction(rig):
    result = gpus.probe(FakeModule(answer=(0, rocm_doc((0, 3), (1, 6), (2, 9)), "")), sysfs_root=rig)
    assert result["gpus"][0]["temperature_edge_c"] == 45.0   # the recorded card's junction is higher


HUNG_SMU_STDERR = ('Expected integer value from monitor, but got ""\n'
                   "ERROR: 15 GPU[1]: power: Data (usually from reading a file) was not of the type that was expected\n")


def silent_sensors(root, bdf):
    """hwmon files that read empty, as amdgpu's do when the SMU does not answer (rocm_smi_lib #85)."""
    hwmon = os.path.join(root, "devices", "pci0000:00", bdf, "hwmon")
    folder = os.path.join(hwmon, os.listdir(hwmon)[0])
    for name in ("temp1_input", "power1_average"):
        with open(os.path.join(folder, name), "w"):
            pass


def listed_without_sensors(*buses):
    """rocm-smi's answer with the cards at ``buses`` still listed but without temperature and power keys."""
    doc = json.loads(rocm_doc((0, 3), (1, 6), (2, 9)))
    for key, card in doc.items():
        if key.startswith("card") and int(card["PCI Bus"][5:7], 16) in buses:
            for name in [k for k in card if k.startswith("Temperature") or "Power (W)" in k]:
                del card[name]
    return json.dumps(doc)


def test_listed_gpu_whose_sensors_do_not_answer_is_degraded(rig):
    silent_sensors(rig, "0000:06:00.0")
    result = by_bdf(gpus.probe(FakeModule(answer=(0, listed_without_sensors(6), HUNG_SMU_STDERR)), sysfs_root=rig))
    hung = result["0000:06:00.0"]
    assert (hung["health"], hung["responding"]) == ("degraded", True)
    assert len(hung["problems"]) == 1 and "sensors do not answer" in hung["problems"][0]
    assert "SMU may be hung" in hung["problems"][0] and "temp_input empty" in hung["problems"][0]
    assert result["0000:03:00.0"]["health"] == "ok"


def test_sensors_of_a_runtime_suspended_gpu_are_not_judged(tmp_path):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:03:00.0", card=1)
    add_gpu(root, "0000:06:00.0", card=2, runtime_status="suspended")
    add_gpu(root, "0000:09:00.0", card=3)
    silent_sensors(root, "0000:06:00.0")
    result = by_bdf(gpus.probe(FakeModule(answer=(0, listed_without_sensors(6), "")), sysfs_root=root))
    assert result["0000:06:00.0"]["health"] == "ok"


def test_tool_without_sensor_keys_but_sysfs_answering_is_ok(tmp_path):
    """The RX 6600 Proxmox recording: rocm-smi gave no temperature or power keys, amd-smi and sysfs read them."""
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:0b:00.0", card=1, temp_mc=41000, power_uw=9000000)
    answer = recording("rocm-smi", "rocm6.x_rx6600_gfx1032_showallinfo_proxmox.json")
    gpu = gpus.probe(FakeModule(answer=(0, answer, "")), sysfs_root=root)["gpus"][0]
    assert (gpu["health"], gpu["temperature_edge_c"], gpu["power_w"], gpu["problems"]) == ("ok", 41.0, 9.0, [])


def test_amd_smi_entry_with_every_metric_na_and_silent_sensors_is_degraded(rig):
    silent_sensors(rig, "0000:06:00.0")
    na = {"gpu": 1, "usage": "N/A", "power": {"socket_power": "N/A"}, "temperature": {"edge": "N/A", "hotspot": "N/A"},
          "mem_usage": {"total_vram": "N/A", "used_vram": "N/A"}}
    good = [{"gpu": i, "usage": {"gfx_activity": {"value": 0, "unit": "%"}},
             "temperature": {"edge": {"value": 40, "unit": "C"}}} for i in (0, 2)]
    module = FakeModule(tools=("amd-smi", "timeout"), answer=(0, json.dumps([good[0], na, good[1]]), ""))
    result = by_bdf(gpus.probe(module, sysfs_root=rig))
    assert result["0000:06:00.0"]["health"] == "degraded"
    assert "amd-smi lists it but its sensors do not answer" in result["0000:06:00.0"]["problems"][0]
    assert result["0000:03:00.0"]["health"] == result["0000:09:00.0"]["health"] == "ok"


def mi300_tpx():
    """rocm-smi on an MI300X in TPX mode (legacy-rocm-build #4261): partitions 0000:01:00.0/.1/.2; sysfs has .0."""
    doc = {}
    for i in range(3):
        doc["card%d" % i] = {"Device Name": "AMD Instinct MI300X", "Device ID": "0x74a1", "GPU use (%)": "0",
                             "Temperature (Sensor junction) (C)": "41.0", "PCI Bus": "0000:01:00.%d" % i,
                             "Current Socket Graphics Package Power (W)": "142.0" if i == 0 else "N/A"}
    return json.dumps(doc)


SMU_01 = {"category": "smu_no_response", "severity": "hard", "bdf": "0000:01:00.0", "vendor": "amd",
          "summary": "SMU not answering (0xFFFFFFFF)", "count": 3, "gpu_health": "degraded"}


def test_kernel_finding_on_the_physical_gpu_is_every_partitions(tmp_path):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:01:00.0", card=1, device="0x74a1")
    result = gpus.probe(FakeModule(answer=(0, mi300_tpx(), "")), sysfs_root=root, kernel_findings=[SMU_01])
    assert [(g["bdf"], g["health"]) for g in result["gpus"]] == [
        ("0000:01:00.0", "degraded"), ("0000:01:00.1", "degraded"), ("0000:01:00.2", "degraded")]
    assert result["gpus"][2]["problems"] == ["kernel log: SMU not answering (0xFFFFFFFF) (x3)"]


def test_a_partitions_own_finding_stays_its_own(tmp_path):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:01:00.0", card=1, device="0x74a1")
    finding = dict(SMU_01, bdf="0000:01:00.2")
    result = gpus.probe(FakeModule(answer=(0, mi300_tpx(), "")), sysfs_root=root, kernel_findings=[finding])
    assert [g["health"] for g in result["gpus"]] == ["ok", "ok", "degraded"]


def test_lost_physical_gpu_takes_its_partitions(tmp_path):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:01:00.0", card=1, device="0x74a1", lost=True)
    result = gpus.probe(FakeModule(answer=(0, mi300_tpx(), "")), sysfs_root=root)
    assert [g["health"] for g in result["gpus"]] == ["lost", "lost", "lost"]


@pytest.mark.parametrize("tools,answer", [
    (("rocm-smi", "timeout"), (0, "", "ERROR:root:Driver not initialized (amdgpu not found in modules)\n")),
    (("amd-smi", "timeout"), (255, "", "ERROR:root:Unable to get devices, driver not initialized (amdgpu not found in "
                                       "modules)\nERROR:root:Unable to detect any GPU devices\n")),
])
def test_built_in_amdgpu_is_not_called_unloaded(rig, tools, answer):
    """Both tools look for amdgpu in /proc/modules; sysfs shows the GPUs bound to it: the driver is built in."""
    result = gpus.probe(FakeModule(tools=tools, answer=answer), sysfs_root=rig)
    assert result["tool"]["outcome"] == "no_driver"
    assert "built into the kernel" in result["tool"]["reason"] and "3 GPU(s) bound to amdgpu" in result["tool"]["reason"]
    assert set(g["health"] for g in result["gpus"]) == {"unknown"}


AMD_SMI_VERSION_JSON = json.dumps([{"tool": "AMDSMI Tool", "version": "26.1.0+b5522cc8",
                                    "amdsmi_library_version": "26.1.0", "rocm_version": "N/A"}], indent=4)
AMD_SMI_NO_GPU = "ERROR:root:Unable to detect any GPU devices, check amdgpu version and module status (sudo modprobe amdgpu)\n"


@pytest.mark.parametrize("sysfs", [True, False])
def test_amd_smi_finding_no_gpu_is_a_failure_and_its_version_record_no_gpu(tmp_path, sysfs):
    """amd-smi 26 finding no GPU (no access to the devices, a container) prints its version record as JSON and
    exits 255 (amdsmi #172, hand-made JSON form): the GPUs are unknown, and without sysfs no phantom GPU appears."""
    root = str(tmp_path / "sys")
    if sysfs:
        add_gpu(root, "0000:03:00.0", card=1)
        add_gpu(root, "0000:43:00.0", card=2)
    module = FakeModule(tools=("amd-smi", "timeout"), answer=(255, AMD_SMI_VERSION_JSON, AMD_SMI_NO_GPU))
    result = gpus.probe(module, sysfs_root=root)
    assert (result["tool"]["outcome"], result["tool"]["answered"], result["tool"]["listed"]) == ("failed", False, False)
    assert result["tool"]["reason"] == "amd-smi exited 255: " + AMD_SMI_NO_GPU.strip()
    assert [(g["bdf"], g["health"]) for g in result["gpus"]] == (
        [("0000:03:00.0", "unknown"), ("0000:43:00.0", "unknown")] if sysfs else [])


def test_amd_smi_built_in_driver_with_version_json_is_not_called_unloaded(rig):
    stderr = "ERROR:root:Unable to get devices, driver not initialized (amdgpu not found in modules)\n" + AMD_SMI_NO_GPU
    result = gpus.probe(FakeModule(tools=("amd-smi", "timeout"), answer=(255, AMD_SMI_VERSION_JSON, stderr)),
                        sysfs_root=rig)
    assert result["tool"]["outcome"] == "no_driver" and "built into the kernel" in result["tool"]["reason"]
    assert set(g["health"] for g in result["gpus"]) == {"unknown"}


def test_driver_not_loaded_without_amdgpu_gpus_says_so(tmp_path):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:03:00.0", card=None, driver=None)
    result = gpus.probe(FakeModule(answer=(0, "Driver not initialized (amdgpu not found in modules)\n", "")),
                        sysfs_root=root)
    assert result["tool"]["reason"] == "the amdgpu driver is not loaded"


# --------------------------------------------------------------------------------------------
# amd-smi entries and sysfs GPUs: joined by the address amd-smi prints, by index only where provably safe

def amd_metric(*indices, bdfs=None):
    """``amd-smi metric --json``: the recorded RX 6600 entry (no address, as metric prints) for each index;
    with ``bdfs``, the address each entry names (as ``list``/``static`` print it)."""
    entry = json.loads(recording("amd-smi", "rx6600_gfx1032_metric_proxmox.json"))[0]
    doc = [dict(copy.deepcopy(entry), gpu=i) for i in indices]
    for item, bdf in zip(doc, bdfs or ()):
        item["bdf"] = bdf
    return doc


LIST_FAILED = (1, "", "")
LIST_FAILED_NOTE = "amd-smi list --json (for the PCI addresses metric does not print) exited 1, no output: no addresses from it"


def amd_probe(root, doc, listing=LIST_FAILED, **kwargs):
    """amd-smi answering ``metric`` with ``doc`` and ``list`` with ``listing`` (rc, stdout, stderr): by default the
    list call fails, so only what metric printed can place its entries."""
    module = FakeModule(tools=("amd-smi", "timeout"), answer={"metric": (0, json.dumps(doc, indent=4), ""),
                                                              "list": listing})
    return gpus.probe(module, sysfs_root=root, **kwargs)


@pytest.fixture
def rig_lost_middle(tmp_path):
    """03 and 09 healthy, 06 fallen off the bus: amd-smi sees two GPUs and numbers them 0 and 1."""
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:03:00.0", card=1)
    add_gpu(root, "0000:06:00.0", card=2, lost=True)
    add_gpu(root, "0000:09:00.0", card=3)
    return root


@pytest.mark.parametrize("indices", [(0, 1), (0, 2)])
def test_amd_smi_listing_fewer_gpus_without_addresses_gives_no_gpu_another_ones_verdict(rig_lost_middle, indices):
    """By index, entry 1 would be the lost GPU's and the healthy 09 "no longer reported": neither is known."""
    result = amd_probe(rig_lost_middle, amd_metric(*indices))
    got = by_bdf(result)
    assert result["count"] == 3 and set(got) == {"0000:03:00.0", "0000:06:00.0", "0000:09:00.0"}
    assert got["0000:06:00.0"]["health"] == "lost"
    why = "amd-smi printed no PCI addresses and numbers 2 GPU(s) (%d, %d) where sysfs shows 3 with a DRM card" % indices
    for bdf in ("0000:03:00.0", "0000:09:00.0"):
        gpu = got[bdf]
        assert (gpu["health"], gpu["in_tool_output"], gpu["responding"]) == ("unknown", None, None)
        assert gpu["temperature_edge_c"] is None and gpu["sources"] == ["sysfs"]  # none of amd-smi's data
        assert gpu["problems"] == ["which amd-smi entry describes it cannot be told: " + why]
    assert result["notes"] == [LIST_FAILED_NOTE, why + ": that data is given to no GPU"]


def test_amd_smi_listing_fewer_gpus_with_addresses_is_joined_by_address(rig_lost_middle):
    doc = amd_metric(0, 1, bdfs=["0000:03:00.0", "0000:09:00.0"])
    got = by_bdf(amd_probe(rig_lost_middle, doc))
    assert [(got[b]["index"], got[b]["health"]) for b in sorted(got)] == [(0, "ok"), (None, "lost"), (1, "ok")]
    assert got["0000:09:00.0"]["temperature_edge_c"] == 36.0


def test_amd_smi_with_same_count_and_no_addresses_is_joined_by_pci_order_of_unsplit_gpus(tmp_path):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:03:00.0", card=2, partition="SPX")  # an MI300 in SPX is one GPU
    add_gpu(root, "0000:06:00.0", card=1)
    result = amd_probe(root, amd_metric(0, 1))
    assert [(g["index"], g["bdf"], g["health"]) for g in result["gpus"]] == [
        (0, "0000:03:00.0", "ok"), (1, "0000:06:00.0", "ok")]
    assert result["notes"] == []


@pytest.mark.parametrize("indices", [(0, 1, 2, 3), (0, 1)])
def test_amd_smi_numbering_partitions_without_addresses_is_not_matched_by_index(tmp_path, indices):
    """MI300X in DPX: amd-smi numbers two GPUs per device (amdsmi #132) and ``metric`` prints no address. Even
    two entries for two devices (the second device unseen) are partitions 0 and 1 of the first, not both devices."""
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:05:00.0", card=0, device="0x74a1", partition="DPX")
    add_gpu(root, "0000:26:00.0", card=8, device="0x74a1", partition="DPX")
    result = amd_probe(root, amd_metric(*indices))
    assert [(g["bdf"], g["health"], g["in_tool_output"]) for g in result["gpus"]] == [
        ("0000:05:00.0", "unknown", None), ("0000:26:00.0", "unknown", None)]
    assert result["notes"] == [LIST_FAILED_NOTE,
                               "amd-smi printed no PCI addresses and numbers each compute partition as a GPU; sysfs "
                               "shows split (or cannot tell): 0000:05:00.0 (DPX), 0000:26:00.0 (DPX): that data is "
                               "given to no GPU"]
    assert [g["index"] for g in result["gpus"]] == [None, None]  # PCI ranks are not amd-smi's numbers of partitions


def test_unreadable_partition_mode_is_no_proof_for_a_join_by_index(tmp_path):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:03:00.0", card=1)
    dev = add_gpu(root, "0000:06:00.0", card=2)
    os.makedirs(os.path.join(dev, "current_compute_partition"))  # a read that fails: not a regular file
    result = amd_probe(root, amd_metric(0, 1))
    assert set(g["health"] for g in result["gpus"]) == {"unknown"}
    assert "0000:06:00.0 (unknown)" in result["notes"][1]


def dpx_doc():
    """amd-smi's entries on the recorded MI300X in DPX (amdsmi #132), each with its address: partition 1 reads no
    temperature and no power, and half the memory, as recorded."""
    doc = amd_metric(*[gpu for gpu, _bdf in amd_smi_gpu_choices()], bdfs=[bdf for _gpu, bdf in amd_smi_gpu_choices()])
    for item in doc:
        if item["bdf"].endswith(".1"):
            item["temperature"] = {"edge": "N/A", "hotspot": "N/A", "mem": "N/A"}
            item["power"]["socket_power"] = "N/A"
            item["mem_usage"]["total_vram"]["value"] = 98296
        else:
            item["mem_usage"]["total_vram"]["value"] = 196592
    return doc


SMU_05 = dict(SMU_01, bdf="0000:05:00.0")


def test_amd_smi_partitions_with_addresses_share_their_devices_loss_and_findings(tmp_path):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:05:00.0", card=0, device="0x74a1", partition="DPX")
    add_gpu(root, "0000:26:00.0", card=8, device="0x74a1", partition="DPX", lost=True)
    result = amd_probe(root, dpx_doc(), kernel_findings=[SMU_05])
    assert [(g["index"], g["bdf"], g["health"]) for g in result["gpus"]] == [
        (0, "0000:05:00.0", "degraded"), (1, "0000:05:00.1", "degraded"),
        (2, "0000:26:00.0", "lost"), (3, "0000:26:00.1", "lost")]
    assert result["gpus"][1]["problems"] == ["kernel log: SMU not answering (0xFFFFFFFF) (x3)"]
    assert result["notes"] == []


def test_amd_smi_entries_sharing_one_address_are_one_gpu_with_the_first_ones_facts(tmp_path):
    """A build that prints the device's address for each of its partitions: one GPU, not partition 1's facts."""
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:05:00.0", card=0, device="0x74a1", partition="DPX")
    doc = dpx_doc()[:2]
    doc[1]["bdf"] = "0000:05:00.0"
    result = amd_probe(root, doc)
    assert result["count"] == 1
    gpu = result["gpus"][0]
    assert (gpu["index"], gpu["health"], gpu["temperature_edge_c"]) == (0, "ok", 36.0)
    assert gpu["vram_total_bytes"] == 196592 * 1024 * 1024 and gpu["sources"] == ["amd-smi", "sysfs"]
    assert result["notes"] == ["amd-smi lists GPUs 0, 1 at one PCI address, 0000:05:00.0: partitions of one device, "
                               "one GPU here"]


def test_an_entry_without_address_among_addressed_ones_is_given_to_no_gpu(rig):
    doc = amd_metric(0, 1, 2, bdfs=["0000:03:00.0", "AMDSMI_STATUS_NOT_SUPPORTED - Feature not supported",
                                    "0000:09:00.0"])
    result = amd_probe(rig, doc)
    got = by_bdf(result)
    assert [got[b]["health"] for b in sorted(got)] == ["ok", "unknown", "ok"]
    assert got["0000:06:00.0"]["in_tool_output"] is None
    assert result["notes"][1] == "amd-smi printed no PCI address for its GPU 1, only for the others: that data is given to no GPU"


def test_a_rocm_smi_card_without_its_pci_bus_is_given_to_no_gpu(rig):
    """The same rule for rocm-smi: its card without "PCI Bus" is not placed by its index."""
    doc = json.loads(rocm_doc((0, 3), (1, 6), (2, 9)))
    del doc["card1"]["PCI Bus"]
    got = by_bdf(gpus.probe(FakeModule(answer=(0, json.dumps(doc), "")), sysfs_root=rig))
    assert [got[b]["health"] for b in sorted(got)] == ["ok", "unknown", "ok"]
    assert got["0000:06:00.0"]["problems"] == ["which rocm-smi entry describes it cannot be told: rocm-smi printed no "
                                               "PCI address for its GPU 1, only for the others"]


# ---------------------------------------------------------------- amd-smi list: addresses for metric's entries

def amd_list(*pairs, wrapped=False):
    """``amd-smi list --json`` answer: the recorded entry (Strix Halo, ROCm 6.3.1) per (index, bdf)."""
    entry = json.loads(recording("amd-smi", "rocm6.3.1_list_json_strix_halo_gkm.json"))[0]
    items = [dict(entry, gpu=index, bdf=bdf) for index, bdf in pairs]
    return (0, json.dumps({"gpu_data": items} if wrapped else items, indent=4), "")


def test_recorded_list_maps_amd_smi_index_to_address():
    from ansible_collections.gpuops.preflight.plugins.module_utils import _amd_smi
    doc = _amd_smi.extract_json(recording("amd-smi", "rocm6.3.1_list_json_strix_halo_gkm.json"))
    assert _amd_smi.address_map(doc) == ({0: "0000:c4:00.0"}, 1)


def test_healthy_amd_smi_host_is_one_call(rig):
    module = FakeModule(tools=("amd-smi", "timeout"), answer={"metric": (0, json.dumps(amd_metric(0, 1, 2)), "")})
    result = gpus.probe(module, sysfs_root=rig)
    assert [g["health"] for g in result["gpus"]] == ["ok", "ok", "ok"]
    assert [c[5] for c in module.calls] == ["metric"] and result["tool"]["list"] is None


@pytest.mark.parametrize("wrapped", [False, True])
def test_gpu_gone_from_amd_smi_is_found_by_list_and_degraded(rig, wrapped):
    """SMU hang: 06 stays in sysfs, amd-smi renumbers the two it sees 0 and 1; list names their addresses."""
    result = amd_probe(rig, amd_metric(0, 1), listing=amd_list((0, "0000:03:00.0"), (1, "0000:09:00.0"), wrapped=wrapped))
    got = by_bdf(result)
    assert [(got[b]["index"], got[b]["health"], got[b]["responding"]) for b in sorted(got)] == [
        (0, "ok", True), (None, "degraded", False), (1, "ok", True)]  # amd-smi renumbered: 1 is 09's
    assert got["0000:06:00.0"]["problems"] == ["amd-smi no longer reports it while it is still on the PCI bus"]
    assert got["0000:09:00.0"]["temperature_edge_c"] == 36.0
    assert result["tool"]["list"]["outcome"] == "answered" and result["tool"]["list"]["cmd"] == [
        "/usr/bin/amd-smi", "list", "--json"]
    assert result["tool"]["shortfall"] is None
    assert result["notes"] == ["cannot place GPU 0000:06:00.0 in amd-smi's numbering (index 1 is another GPU's)"]


def test_partitions_are_placed_by_list(tmp_path):
    """MI300X in DPX (amdsmi #132): metric numbers partitions 0..3 without addresses; the second device's are gone."""
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:05:00.0", card=0, device="0x74a1", partition="DPX")
    add_gpu(root, "0000:26:00.0", card=8, device="0x74a1", partition="DPX")
    result = amd_probe(root, amd_metric(0, 1), listing=amd_list(*amd_smi_gpu_choices()[:2]))
    assert [(g["index"], g["bdf"], g["health"]) for g in result["gpus"]] == [
        (0, "0000:05:00.0", "ok"), (1, "0000:05:00.1", "ok"), (None, "0000:26:00.0", "degraded")]
    assert result["tool"]["shortfall"] is None  # split GPUs: no count of them could be told


@pytest.mark.parametrize("listing, reason", [
    (LIST_FAILED, "exited 1, no output"),
    ((2, "", "AMDSMI_STATUS_DRM_ERROR - DRM error\n"), "exited 2, AMDSMI_STATUS_DRM_ERROR - DRM error"),
    ((0, "garbage {not json\n", ""), "printed no GPU entries: garbage {not json"),
    ((0, "[]", ""), "printed no GPU entries: []"),
    ((0, '{"error": "x"}', ""), "printed no GPU entries: {\"error\": \"x\"}"),
    (amd_list((0, "0000:03:00.0"), (1, "0000:06:00.0"), (2, "0000:09:00.0")),
     "numbers 3 GPU(s), 3 with a PCI address (0, 1, 2), where metric numbered 2 (0, 1)"),
    (amd_list((0, "0000:03:00.0"), (1, "AMDSMI_STATUS_NOT_SUPPORTED - Feature not supported")),
     "numbers 2 GPU(s), 1 with a PCI address (0), where metric numbered 2 (0, 1)"),
])
def test_no_usable_list_leaves_the_gpus_unknown_and_counts_the_shortfall(rig, listing, reason):
    result = amd_probe(rig, amd_metric(0, 1), listing=listing)
    assert [g["health"] for g in result["gpus"]] == ["unknown"] * 3
    assert result["tool"]["list"]["reason"] == reason
    assert result["notes"][0] == ("amd-smi list --json (for the PCI addresses metric does not print) %s: no addresses "
                                  "from it" % reason)
    short = result["tool"]["shortfall"]
    assert (short["shown"], short["listed"], short["missing"], short["gpus"]) == (
        3, 2, 1, ["0000:03:00.0", "0000:06:00.0", "0000:09:00.0"])


def test_list_call_gets_only_what_is_left_of_the_probe_time(rig):
    ticks = iter([0.0, 0.0, 14.5] + [14.5] * 50)  # metric took 14.5 of the 15 s
    module = FakeModule(tools=("amd-smi", "timeout"), answer={"metric": (0, json.dumps(amd_metric(0, 1)), "")})
    result = gpus.probe(module, sysfs_root=rig, clock=lambda: next(ticks))
    assert [c[5] for c in module.calls] == ["metric"]
    assert result["tool"]["list"]["reason"] == "no time left in the probe's 15s for amd-smi list"
    assert result["tool"]["shortfall"]["missing"] == 1


# ---------------------------------------------------------------- real amdgpu sysfs files (tests/fixtures/gpu/sysfs)

def _sysfs_dump(name):
    """{relative path: content} of a recorded ``==> file <==`` dump of /sys/class/drm/cardN/device."""
    files, current = {}, None
    for line in recording("sysfs", name).splitlines():
        if line.startswith("==> ") and line.endswith(" <=="):
            current = line[4:-4]
            files[current] = ""
        elif current is not None:
            files[current] += line + "\n"
    return files


# dump: (busy %, temperature C, power W, VRAM total, VRAM used, performance level) as the files say
SYSFS_DUMPS = {
    "rx580_sysfs_dump.txt": (11, 44.0, 41.045, 4294967296, 536870912, "auto"),
    "rx7800xt_sysfs_dump.txt": (0, 37.0, 10.0, None, None, None),
    "rx9070xt_sysfs_dump.txt": (9, 39.0, 19.0, None, None, "auto"),
}


@pytest.mark.parametrize("name", sorted(SYSFS_DUMPS))
def test_recorded_amdgpu_sysfs_files_read_without_a_tool(tmp_path, name):
    """The recorded device files of real cards under a GPU's sysfs entry, no GPU tool: its facts are the files'."""
    root = str(tmp_path / "sys")
    dev = add_gpu(root, "0000:03:00.0", card=1)
    for made in ("hwmon", "mem_info_vram_total", "mem_info_vram_used", "power_dpm_force_performance_level"):
        path = os.path.join(dev, made)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    for rel, text in _sysfs_dump(name).items():
        if rel in ("vendor", "device", "class"):
            continue  # the PCI identity add_gpu made (an AMD display controller) stands
        os.makedirs(os.path.dirname(os.path.join(dev, rel)), exist_ok=True)
        with open(os.path.join(dev, rel), "w") as handle:
            handle.write(text)
    gpu = gpus.probe(FakeModule(tools=("timeout",)), sysfs_root=root)["gpus"][0]
    got = (gpu["busy_percent"], gpu["temperature_edge_c"], gpu["power_w"], gpu["vram_total_bytes"], gpu["vram_used_bytes"],
           gpu["perf_level"])
    assert got == SYSFS_DUMPS[name]
    assert (gpu["health"], gpu["responding"]) == ("ok", True)


def test_recorded_mi100_rig_in_drm_order_with_one_gpu_gone(tmp_path):
    """The recorded 4x MI100 (ROCm 4.x, DRM order the reverse of PCI order, determined-ai) with card2 taken out
    (hand-made: a GPU that vanished from rocm-smi): the others are ok at their own addresses, 0000:26:00.0 is degraded
    and keeps its DRM-order index 2."""
    root = str(tmp_path / "sys")
    for card, bus in ((0, 0x63), (1, 0x43), (2, 0x26), (3, 0x03)):
        add_gpu(root, "0000:%02x:00.0" % bus, card=card, device="0x738c")
    doc = json.loads(recording("rocm-smi", "rocm4.x_4x_mi100_id_uniqueid_productname_bus_reserialized_determined.json"))
    del doc["card2"]
    result = gpus.probe(FakeModule(answer=(0, json.dumps(doc), "")), sysfs_root=root)
    assert result["index_order"] == "drm"
    assert [(g["index"], g["bdf"], g["health"]) for g in result["gpus"]] == [
        (0, "0000:63:00.0", "ok"), (1, "0000:43:00.0", "ok"), (2, "0000:26:00.0", "degraded"), (3, "0000:03:00.0", "ok")]
    assert result["gpus"][2]["problems"] == ["rocm-smi no longer reports it while it is still on the PCI bus"]
