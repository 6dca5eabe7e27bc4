"""A minimal sysfs tree for unit tests (the full simulated rig lives in tests/simrig)."""

from __future__ import annotations

import os
import struct


def _write(path, text, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as handle:
        handle.write(text)


def add_gpu(root, bdf, card, device="0x73ff", lost=False, driver="amdgpu", runtime_status="active",
            busy=None, temp_mc=None, power_uw=None, vram=(8573157376, 15728640), vendor="0x1002", partition=None,
            parent=None):
    dev = add_pci_function(root, bdf, vendor, device, "0x030000", driver=driver, lost=lost,
                           runtime_status=runtime_status, parent=parent)
    if partition is not None:  # amdgpu's compute partition mode of an MI300-style GPU: SPX, DPX, ... CPX
        _write(os.path.join(dev, "current_compute_partition"), partition + "\n")
    _write(os.path.join(dev, "power_dpm_force_performance_level"), "auto\n")
    _write(os.path.join(dev, "mem_info_vram_total"), "%d\n" % vram[0])
    _write(os.path.join(dev, "mem_info_vram_used"), "%d\n" % vram[1])
    if busy is not None:
        _write(os.path.join(dev, "gpu_busy_percent"), "%d\n" % busy)
    hwmon = os.path.join(dev, "hwmon", "hwmon%d" % (card or 0))
    os.makedirs(hwmon, exist_ok=True)
    _write(os.path.join(hwmon, "temp1_label"), "edge\n")
    if temp_mc is not None:
        _write(os.path.join(hwmon, "temp1_input"), "%d\n" % temp_mc)
    if power_uw is not None:
        _write(os.path.join(hwmon, "power1_average"), "%d\n" % power_uw)
    if card is not None and driver:
        card_dir = os.path.join(dev, "drm", "card%d" % card)
        os.makedirs(card_dir, exist_ok=True)
        os.symlink("../..", os.path.join(card_dir, "device"))
        drm = os.path.join(root, "class", "drm")
        os.makedirs(drm, exist_ok=True)
        os.symlink(os.path.relpath(card_dir, drm), os.path.join(drm, "card%d" % card))
        os.makedirs(os.path.join(drm, "card%d-DP-1" % card), exist_ok=True)  # a connector: must be ignored
    return dev


def add_kfd(root, nodes, procs=()):
    """nodes: [(gpu_id, bdf, gfx_target_version)], procs: [(pid, gpu_id, vram_bytes)]."""
    base = os.path.join(root, "class", "kfd", "kfd")
    _write(os.path.join(base, "topology", "nodes", "0", "gpu_id"), "0\n")
    for n, (gpu_id, bdf, gfx) in enumerate(nodes, start=1):
        bus, dev_fn = int(bdf[5:7], 16), bdf[8:]
        location = (bus << 8) | (int(dev_fn[:2], 16) << 3) | int(dev_fn[3])
        _write(os.path.join(base, "topology", "nodes", str(n), "gpu_id"), "%d\n" % gpu_id)
        _write(os.path.join(base, "topology", "nodes", str(n), "properties"),
               "location_id %d\ndomain 0\ngfx_target_version %d\n" % (location, gfx))
    for pid, gpu_id, vram in procs:
        _write(os.path.join(base, "proc", str(pid), "vram_%d" % gpu_id), "%d\n" % vram)


def add_pci_function(root, bdf, vendor, device, pci_class, driver=None, lost=False, runtime_status="active",
                     parent=None):
    """Any PCI function (a GPU, its HD-audio or USB-C controller, a NIC): vendor, device, class, config, driver.
    ``parent``: the folder of the bridge it sits behind (``add_port``'s answer); else on the root bus."""
    dev = os.path.join(parent or os.path.join(root, "devices", "pci0000:00"), bdf)
    os.makedirs(dev, exist_ok=True)
    _write(os.path.join(dev, "vendor"), vendor + "\n")
    _write(os.path.join(dev, "device"), device + "\n")
    _write(os.path.join(dev, "class"), pci_class + "\n")
    _write(os.path.join(dev, "power", "runtime_status"), runtime_status + "\n")
    config = b"\xff" * 64 if lost else struct.pack("<HH", int(vendor, 16), int(device, 16)) + b"\x07\x04" + b"\0" * 58
    _write(os.path.join(dev, "config"), config, "wb")
    if driver:
        drv = os.path.join(root, "bus", "pci", "drivers", driver)
        os.makedirs(drv, exist_ok=True)
        os.symlink(os.path.relpath(drv, dev), os.path.join(dev, "driver"))
    pci = os.path.join(root, "bus", "pci", "devices")
    os.makedirs(pci, exist_ok=True)
    os.symlink(os.path.relpath(dev, pci), os.path.join(pci, bdf))
    return dev


def add_nvidia_gpu(root, bdf, device="0x2231", pci_class="0x030000", driver="nvidia", lost=False, audio=True,
                   parent=None):
    """An NVIDIA GPU as the nvidia driver shows it in sysfs (no hwmon, no amdgpu files), with its HD-audio function."""
    dev = add_pci_function(root, bdf, "0x10de", device, pci_class, driver=driver, lost=lost, parent=parent)
    if audio:
        add_pci_function(root, bdf[:-1] + "1", "0x10de", "0x1aef", "0x040300", driver="snd_hda_intel", parent=parent)
    return dev


def add_port(root, bdf, parent=None, vendor="0x1022", device="0x1483"):
    """A PCIe root or downstream port (a PCI-to-PCI bridge, bound to pcieport); returns its folder, the ``parent`` of
    what sits behind it."""
    return add_pci_function(root, bdf, vendor, device, "0x060400", driver="pcieport", parent=parent)
