"""The simulated sysfs tree is laid out as ARCHITECTURE.md says, with relative links."""

from __future__ import annotations

import json
import os
import subprocess

from simrig import Rig, fixtures, location_id


def read(rig, *parts):
    with open(rig.sys_path(*parts)) as handle:
        return handle.read().strip()


def test_drm_cards_resolve_to_their_pci_device(rig12):
    for gpu in rig12.gpus:
        link = rig12.sys_path("class", "drm", "card%d" % gpu.card)
        target = os.readlink(link)
        assert not os.path.isabs(target)
        device = os.path.realpath(os.path.join(link, "device"))
        assert device.endswith("/" + gpu.bdf)
        assert os.path.realpath(rig12.sys_path("bus", "pci", "devices", gpu.bdf)) == device
        assert os.path.realpath(os.path.join(device, "driver")).endswith("/bus/pci/drivers/amdgpu")
        render = rig12.sys_path("class", "drm", "renderD%d" % gpu.render_minor, "device")
        assert os.path.realpath(render) == device


def test_every_link_in_the_tree_is_relative_and_resolves(rig12):
    for dirpath, dirnames, filenames in os.walk(rig12.sys_root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                assert not os.path.isabs(os.readlink(full)), full
                assert os.path.exists(full), "dangling: %s" % full


def test_identity_files_match_the_recording(rig12):
    card = fixtures.rocm_smi_cards(fixtures.DEFAULT_ROCM_SMI)[0][1]
    for gpu in rig12.gpus:
        dev = gpu.dev
        assert read(rig12, dev, "vendor") == "0x1002"
        assert read(rig12, dev, "device") == card["Device ID"] == "0x73df"
        assert read(rig12, dev, "class") == "0x030000"
        assert read(rig12, dev, "revision") == card["Device Rev"]
        uevent = read(rig12, dev, "uevent").splitlines()
        assert "DRIVER=amdgpu" in uevent and "PCI_ID=1002:73DF" in uevent
        assert "PCI_SLOT_NAME=%s" % gpu.bdf in uevent
        assert read(rig12, dev, "mem_info_vram_total") == card["VRAM Total Memory (B)"]
        assert read(rig12, dev, "mem_info_vram_used") == card["VRAM Total Used Memory (B)"]
        assert read(rig12, dev, "power/runtime_status") == "active"
        assert read(rig12, dev, "power/control") == "auto"
        assert read(rig12, dev, "power_dpm_force_performance_level") == "auto"
        hwmon = "hwmon/hwmon%d" % gpu.hwmon
        assert read(rig12, dev, hwmon, "name") == "amdgpu"
        assert int(read(rig12, dev, hwmon, "temp1_input")) == 45000  # "Temperature (Sensor edge) (C)": "45.0"
        assert read(rig12, dev, hwmon, "temp1_label") == "edge"
        with open(rig12.sys_path(dev, "config"), "rb") as handle:
            config = handle.read()
        assert len(config) == 64 and config[:4] == bytes.fromhex("0210df73")
        assert config[0x2C:0x30] == bytes.fromhex("02100166")


def test_rx6600_recording_gives_an_rx6600(work):
    rig = Rig.build(str(work), "r", gpus=2, fixture="rocm6.x_rx6600_gfx1032_showallinfo_proxmox.json")
    gpu = rig.gpu(0)
    with open(rig.sys_path(gpu.dev, "config"), "rb") as handle:
        assert handle.read()[:4] == bytes.fromhex("0210ff73")
    assert read(rig, gpu.dev, "mem_info_vram_total") == "8573157376"
    doc = rig.rocm_smi_document()
    assert not any("Temperature" in k or "Power" in k or "VRAM Total" in k for k in doc["card0"])
    # The same host's amd-smi recording supplies what sysfs shows (edge 36 C).
    assert read(rig, gpu.dev, "hwmon/hwmon%d/temp1_input" % gpu.hwmon) == "36000"
    assert "gfx_target_version 100302" in read(rig, "class/kfd/kfd/topology/nodes/1/properties")


def test_lost_gpu_config_reads_all_ones_and_leaves_the_tool(rig):
    gpu = rig.lose_gpu(2)
    with open(rig.sys_path(gpu.dev, "config"), "rb") as handle:
        assert handle.read() == b"\xff" * 64
    doc = json.loads(subprocess.run([rig.rocm_smi, "--json"], capture_output=True, check=False).stdout)
    assert "card2" not in doc and {"card0", "card1", "card3"} <= set(doc)
    assert gpu.bdf.upper() not in json.dumps(doc)
    rig.heal_gpu(2)
    with open(rig.sys_path(gpu.dev, "config"), "rb") as handle:
        assert handle.read()[:2] == b"\x02\x10"


def test_vanished_gpu_is_only_gone_from_the_tool(rig):
    gpu = rig.vanish_from_tool(1)
    assert "card1" not in rig.rocm_smi_document()
    with open(rig.sys_path(gpu.dev, "config"), "rb") as handle:
        assert handle.read()[:2] == b"\x02\x10"


def test_kfd_nodes_decode_back_to_the_gpus(rig12):
    nodes = rig12.sys_path("class", "kfd", "kfd", "topology", "nodes")
    assert read(rig12, nodes, "0", "gpu_id") == "0"
    found = {}
    for node in os.listdir(nodes):
        gpu_id = int(read(rig12, nodes, node, "gpu_id"))
        if gpu_id == 0:
            continue
        props = dict(l.split() for l in read(rig12, nodes, node, "properties").splitlines())
        lid, domain = int(props["location_id"]), int(props["domain"])
        bdf = "%04x:%02x:%02x.%d" % (domain, lid >> 8, (lid >> 3) & 0x1F, lid & 7)
        found[bdf] = (gpu_id, int(props["drm_render_minor"]), int(props["gfx_target_version"]))
    assert set(found) == {g.bdf for g in rig12.gpus}
    assert len({v[0] for v in found.values()}) == 12
    for gpu in rig12.gpus:
        assert found[gpu.bdf] == (gpu.gpu_id, 128 + gpu.card, 100301)
        assert location_id(gpu.bdf) == (int(gpu.bdf[5:7], 16) << 8)


def test_noise_connectors_render_nodes_and_a_bmc(rig12):
    entries = os.listdir(rig12.sys_path("class", "drm"))
    assert "card0" in entries and "card0-VGA-1" in entries and "version" in entries
    bmc = os.path.realpath(rig12.sys_path("class", "drm", "card0", "device"))
    with open(os.path.join(bmc, "vendor")) as handle:
        assert handle.read().strip() == "0x1a03"
    assert os.path.realpath(os.path.join(bmc, "driver")).endswith("/drivers/ast")
    amd = [g.card for g in rig12.gpus]
    assert sorted(amd) == list(range(1, 13))
    for gpu in rig12.gpus:
        assert "card%d-DP-1" % gpu.card in entries and "renderD%d" % gpu.render_minor in entries


def test_index_order_follows_the_rocm_version(work):
    # ROCm >= 6.0 ("Device ID"): PCI order. ROCm <= 5.7 ("GPU ID"): DRM card order.
    new = Rig.build(str(work), "new", gpus=4, drm_order="reverse")
    old = Rig.build(str(work), "old", gpus=4, drm_order="reverse", fixture="telegraf_rx6700xt_rocm571.json")
    assert [g.bdf for g in new.gpus] == sorted(g.bdf for g in new.gpus)
    assert [g.card for g in old.gpus] == sorted(g.card for g in old.gpus)
    assert [g.bdf for g in old.gpus] == sorted((g.bdf for g in old.gpus), reverse=True)
    for rig in (new, old):
        doc = rig.rocm_smi_document()
        for gpu in rig.gpus:
            assert doc["card%d" % gpu.index]["PCI Bus"] == gpu.bdf.upper()


def test_suspended_gpu_hides_pm_files_and_metrics(rig):
    gpu = rig.suspend_gpu(3)
    hw = rig.sys_path(gpu.dev, "hwmon", "hwmon%d" % gpu.hwmon)
    assert read(rig, gpu.dev, "power/runtime_status") == "suspended"
    assert not os.path.exists(os.path.join(hw, "temp1_input"))
    assert not os.path.exists(rig.sys_path(gpu.dev, "gpu_busy_percent"))
    assert os.path.exists(os.path.join(hw, "temp1_label"))
    out = subprocess.run([rig.rocm_smi, "--json"], capture_output=True, check=False)
    card = json.loads(out.stdout)["card3"]
    assert "Temperature (Sensor edge) (C)" not in card and card["PCI Bus"] == gpu.bdf.upper()
    assert b'Expected integer value from monitor, but got ""' in out.stderr
    rig.resume_gpu(3)
    assert read(rig, gpu.dev, "hwmon/hwmon%d/temp1_input" % gpu.hwmon) == "45000"
    assert read(rig, gpu.dev, "gpu_busy_percent") == "0"


def test_metrics_a_scenario_sets_reach_tool_and_sysfs(rig):
    gpu = rig.set_temperature(1, 91.5)
    rig.set_busy(1, 100)
    card = rig.rocm_smi_document()["card1"]
    assert card["Temperature (Sensor edge) (C)"] == "91.5" and card["GPU use (%)"] == "100"
    assert read(rig, gpu.dev, "hwmon/hwmon%d/temp1_input" % gpu.hwmon) == "91500"
    assert read(rig, gpu.dev, "gpu_busy_percent") == "100"
    # only what was set differs from the recording
    recorded = fixtures.rocm_smi_cards(fixtures.DEFAULT_ROCM_SMI)[0][1]
    changed = {k for k in card if card[k] != recorded[k]}
    assert changed == {"PCI Bus", "Temperature (Sensor edge) (C)", "Temperature (Sensor junction) (C)", "GPU use (%)"}


def test_vram_holder_in_kfd_proc_and_used_memory(rig):
    gpu = rig.gpu(2)
    before = rig.vram_used(2)
    path = rig.add_vram_holder(4242, 2, 3 * 1024 ** 3)
    assert path.endswith("/proc/4242/vram_%d" % gpu.gpu_id)
    with open(rig.sys_path("class/kfd/kfd/proc/4242/vram_%d" % gpu.gpu_id)) as handle:
        assert int(handle.read()) == 3 * 1024 ** 3
    others = [g for g in rig.gpus if g.index != 2]
    for other in others:
        with open(rig.sys_path("class/kfd/kfd/proc/4242/vram_%d" % other.gpu_id)) as handle:
            assert int(handle.read()) == 0
    assert int(read(rig, gpu.dev, "mem_info_vram_used")) == before + 3 * 1024 ** 3
    assert rig.rocm_smi_document()["card2"]["VRAM Total Used Memory (B)"] == str(before + 3 * 1024 ** 3)
    rig.remove_vram_holder(4242)
    assert not os.path.exists(rig.sys_path("class/kfd/kfd/proc/4242"))
    assert int(read(rig, gpu.dev, "mem_info_vram_used")) == before


def test_rig_state_reloads(rig):
    rig.lose_gpu(1)
    again = Rig.load(rig.path)
    assert again.gpu(1).lost and again.rocm_smi_document() == rig.rocm_smi_document()
    assert again.gpu(rig.gpu(3).bdf.upper()).index == 3
