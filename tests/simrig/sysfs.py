"""Write the simulated sysfs tree (docs/ARCHITECTURE.md, "Simulated sysfs layout").

Every link is relative, as in the real /sys, so ``os.path.realpath`` of
``class/drm/card<N>/device`` ends in the GPU's PCI address and a rig folder can be moved.
"""

from __future__ import annotations

import os
import re
import stat
import struct

PCI_ROOT = "devices/pci0000:00"
KFD_DIR = "devices/virtual/kfd/kfd"

_HWMON_RE = re.compile(r"^hwmon/hwmon\d+/")
# Files a runtime-suspended GPU answers with -EPERM on a real kernel (amdgpu_pm.c
# pm_runtime_get_if_active): the simulation removes them while the GPU is suspended.
SUSPENDED_UNREADABLE = re.compile(r"^(gpu_busy_percent|mem_busy_percent|hwmon/hwmon\d+/(\w+_input|power1_average))$")


def write(root, rel, content, mode=None):
    """``root/rel`` holds ``content`` (text as UTF-8): a link or a FIFO there is replaced, never written through."""
    full = os.path.join(root, rel)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    if os.path.islink(full) or (os.path.exists(full) and not stat.S_ISREG(os.stat(full).st_mode)):
        os.unlink(full)
    with open(full, "wb") as handle:
        handle.write(content)
    if mode is not None:
        os.chmod(full, mode)
    return full


def symlink(root, rel, target):
    """``root/rel`` -> ``target`` (a relative target, as sysfs has)."""
    full = os.path.join(root, rel)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    if os.path.lexists(full):
        os.unlink(full)
    os.symlink(target, full)
    return full


def remove(root, rel):
    full = os.path.join(root, rel)
    if os.path.lexists(full):
        os.unlink(full)


def dev_rel(bdf):
    return "%s/%s" % (PCI_ROOT, bdf)


def config_space(vendor, device, revision, class_code, subsystem_vendor, subsystem_device, bus, lost=False):
    """The 64 bytes of PCI config space an unprivileged read of ``config`` returns.

    A GPU that fell off the bus reads all-ones (the kernel's own "device lost from bus!" test).
    """
    if lost:
        return b"\xff" * 64
    cfg = bytearray(64)
    struct.pack_into("<HHHH", cfg, 0x00, vendor, device, 0x0407, 0x0010)  # command: IO|MEM|MASTER|INTx off; status: caps
    cfg[0x08] = revision
    cfg[0x09:0x0C] = bytes(((class_code) & 0xFF, (class_code >> 8) & 0xFF, (class_code >> 16) & 0xFF))
    cfg[0x0C] = 0x10      # cache line size
    cfg[0x0E] = 0x80      # header type 0, multi-function (GPU + HDMI audio)
    base_hi = 0x78 + bus  # 64-bit prefetchable BARs above 4G, one window per bus
    struct.pack_into("<IIIIII", cfg, 0x10, 0x0000000C, base_hi, 0x0000000C, base_hi + 0x1000,
                     0x0000E001 - (bus << 8), 0xFC000000 - (bus << 20))
    struct.pack_into("<HH", cfg, 0x2C, subsystem_vendor, subsystem_device)
    struct.pack_into("<I", cfg, 0x30, 0xFC0E0000 - (bus << 20))  # expansion ROM (disabled)
    cfg[0x34] = 0x48      # capabilities pointer
    cfg[0x3C] = 0xFF      # interrupt line (MSI in use)
    cfg[0x3D] = 0x01      # interrupt pin INTA
    return bytes(cfg)


def uevent(driver, vendor, device, subsystem_vendor, subsystem_device, bdf, class_code=0x030000):
    return ("DRIVER=%s\nPCI_CLASS=%X\nPCI_ID=%04X:%04X\nPCI_SUBSYS_ID=%04X:%04X\nPCI_SLOT_NAME=%s\n"
            "MODALIAS=pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X\n"
            % (driver, class_code, vendor, device, subsystem_vendor, subsystem_device, bdf,
               vendor, device, subsystem_vendor, subsystem_device,
               class_code >> 16, (class_code >> 8) & 0xFF, class_code & 0xFF))


def location_id(bdf):
    """KFD's encoding of a PCI address: (bus << 8) | (device << 3) | function."""
    _domain, bus, rest = bdf.split(":")
    dev, fn = rest.split(".")
    return (int(bus, 16) << 8) | (int(dev, 16) << 3) | int(fn)


def kfd_properties(gpu=None, cpu_cores=16):
    """A KFD topology node's ``properties`` file, in the kernel's field order (kfd_topology.c)."""
    if gpu is None:
        fields = [("cpu_cores_count", cpu_cores), ("simd_count", 0), ("mem_banks_count", 1), ("caches_count", 0),
                  ("io_links_count", 0), ("p2p_links_count", 0), ("cpu_core_id_base", 0), ("simd_id_base", 0),
                  ("max_waves_per_simd", 0), ("lds_size_in_kb", 0), ("gds_size_in_kb", 0), ("num_gws", 0),
                  ("wave_front_size", 0), ("array_count", 0), ("simd_arrays_per_engine", 0),
                  ("cu_per_simd_array", 0), ("simd_per_cu", 0), ("max_slots_scratch_cu", 0),
                  ("gfx_target_version", 0), ("vendor_id", 0), ("device_id", 0), ("location_id", 0),
                  ("domain", 0), ("drm_render_minor", 0), ("hive_id", 0), ("num_sdma_engines", 0),
                  ("num_sdma_xgmi_engines", 0), ("num_sdma_queues_per_engine", 0), ("num_cp_queues", 0),
                  ("max_engine_clk_ccompute", 3400)]
    else:
        cus = gpu.compute_units
        fields = [("cpu_cores_count", 0), ("simd_count", cus * 2), ("mem_banks_count", 1), ("caches_count", 4),
                  ("io_links_count", 1), ("p2p_links_count", 0), ("cpu_core_id_base", 0),
                  ("simd_id_base", 2147487744 + 16 * gpu.node), ("max_waves_per_simd", 16),
                  ("lds_size_in_kb", 64), ("gds_size_in_kb", 0), ("num_gws", 64),
                  ("wave_front_size", 32 if gpu.gfx_target_version >= 100000 else 64),
                  ("array_count", 2), ("simd_arrays_per_engine", 2), ("cu_per_simd_array", max(1, cus // 4)),
                  ("simd_per_cu", 2), ("max_slots_scratch_cu", 32), ("gfx_target_version", gpu.gfx_target_version),
                  ("vendor_id", 0x1002), ("device_id", int(gpu.device_id, 16)), ("location_id", location_id(gpu.bdf)),
                  ("domain", int(gpu.bdf.split(":")[0], 16)), ("drm_render_minor", gpu.render_minor), ("hive_id", 0),
                  ("num_sdma_engines", 2), ("num_sdma_xgmi_engines", 0), ("num_sdma_queues_per_engine", 8),
                  ("num_cp_queues", 8), ("max_engine_clk_fcompute", 2750), ("local_mem_size", 0),
                  ("fw_version", 109), ("capability", 671588992), ("debug_prop", 1495), ("sdma_fw_version", 76),
                  ("unique_id", 0), ("num_xcc", 1), ("max_engine_clk_ccompute", 3400)]
    return "".join("%s %d\n" % kv for kv in fields)


def rename_hwmon(rel, number):
    return _HWMON_RE.sub("hwmon/hwmon%d/" % number, rel)
