# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: AMD GPUs as sysfs shows them, without any GPU tool.

Two kinds of reads, kept apart on purpose:
- identity and liveness (``scan_gpus``): PCI ids, config space, driver, VRAM counters, runtime-PM
  state. These do not talk to the SMU, so they are cheap and safe on a sick GPU. A first
  config-space dword of all-ones is the kernel's own "device lost from bus" test.
- metrics (``read_metrics``): busy %, temperature, power. These go through the SMU (about 2 s per
  read when it does not answer), may return EPERM while the GPU resets or sleeps, and a read of
  gpu_busy_percent wakes a runtime-suspended GPU. They are read only when the GPU tool did not
  give them, never from a suspended GPU, and each GPU under its own deadline.

Cards are matched by the PCI address their ``device`` link resolves to, never by ``cardN``.
"""

from __future__ import annotations

import errno
import os
import re

from ansible_collections.gpuops.preflight.plugins.module_utils import _deadline
from ansible_collections.gpuops.preflight.plugins.module_utils._pci import bdf_from_location_id, normalize_bdf

AMD_VENDOR = "0x1002"
_CARD = re.compile(r"^card(\d+)$")
# PCI classes of GPUs: 0x03xxxx display controllers, 0x12xxxx processing accelerators (Instinct).
_GPU_CLASSES = ("0x03", "0x12")


def _read(path, limit=4096):
    """(text, error): the stripped content of a small sysfs file, or the errno name it failed with."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit)
    except OSError as exc:
        return None, errno.errorcode.get(exc.errno, str(exc)) if exc.errno else str(exc)
    return data.decode("utf-8", "replace").strip(), None


def _read_text(path):
    return _read(path)[0]


def _read_int(path):
    text, err = _read(path)
    if text is None:
        return None, err
    try:
        return int(text.split()[0]), None
    except (ValueError, IndexError):
        return None, "EINVAL"


def _link_name(path):
    try:
        return os.path.basename(os.path.realpath(path)) if os.path.lexists(path) else None
    except OSError:
        return None


def config_space_lost(device_dir):
    """True when PCI config space reads all-ones (GPU lost from the bus), False when sane, None when unreadable."""
    try:
        with open(os.path.join(device_dir, "config"), "rb") as handle:
            head = handle.read(8)
    except OSError:
        return None
    if len(head) < 4:
        return None
    return head[:4] == b"\xff\xff\xff\xff"


def _drm_cards(sysfs_root):
    """{bdf: drm card number} of every DRM card whose device link names a PCI address."""
    base = os.path.join(sysfs_root, "class", "drm")
    cards = {}
    try:
        names = os.listdir(base)
    except OSError:
        return cards
    for name in names:
        match = _CARD.match(name)
        if not match:
            continue  # connectors (card0-DP-1), renderD nodes, version
        bdf = normalize_bdf(_link_name(os.path.join(base, name, "device")) or "")
        if bdf and (bdf not in cards or int(match.group(1)) < cards[bdf]):
            cards[bdf] = int(match.group(1))
    return cards


def _pci_gpus(sysfs_root):
    """{bdf: device dir} of AMD GPUs on the PCI bus, bound to a driver or not."""
    base = os.path.join(sysfs_root, "bus", "pci", "devices")
    found = {}
    try:
        names = os.listdir(base)
    except OSError:
        return found
    for name in names:
        bdf = normalize_bdf(name)
        if not bdf:
            continue
        device_dir = os.path.join(base, name)
        vendor = (_read_text(os.path.join(device_dir, "vendor")) or "").lower()
        pci_class = (_read_text(os.path.join(device_dir, "class")) or "").lower()
        if vendor == AMD_VENDOR and pci_class.startswith(_GPU_CLASSES):
            found[bdf] = device_dir
    return found


def scan_gpus(sysfs_root="/sys"):
    """AMD GPUs from sysfs, identity and liveness only (no SMU traffic). Sorted by PCI address.

    Each entry: bdf, drm_card, device_dir, driver, vendor, device_id, revision, lost (config space
    all-ones; None when unreadable), runtime_status, perf_level, vram_total_bytes, vram_used_bytes,
    unique_id, vbios_version, hwmon (folder or None), read_errors ({file: errno name}).
    """
    cards = _drm_cards(sysfs_root)
    devices = _pci_gpus(sysfs_root)
    for bdf in cards:
        if bdf not in devices:
            devices[bdf] = os.path.join(sysfs_root, "class", "drm", "card%d" % cards[bdf], "device")
    gpus = []
    for bdf in sorted(devices):
        gpu = _identity(bdf, devices[bdf], cards.get(bdf))
        if gpu["vendor"] == AMD_VENDOR or gpu["driver"] == "amdgpu":
            gpus.append(gpu)  # a BMC's ASPEED card or another vendor's GPU is not ours
    return gpus


def _identity(bdf, device_dir, drm_card):
    errors = {}

    def text(name):
        value, err = _read(os.path.join(device_dir, name))
        if err and err != "ENOENT":
            errors[name] = err
        return value

    def integer(name):
        value, err = _read_int(os.path.join(device_dir, name))
        if err and err != "ENOENT":
            errors[name] = err
        return value

    vendor = (text("vendor") or "").lower() or None
    device_id = (text("device") or "").lower() or None
    return {
        "bdf": bdf,
        "drm_card": drm_card,
        "device_dir": device_dir,
        "driver": _link_name(os.path.join(device_dir, "driver")),
        "vendor": vendor,
        "device_id": device_id,
        "revision": text("revision"),
        "lost": config_space_lost(device_dir),
        "runtime_status": text(os.path.join("power", "runtime_status")),
        "perf_level": text("power_dpm_force_performance_level"),
        "vram_total_bytes": integer("mem_info_vram_total"),
        "vram_used_bytes": integer("mem_info_vram_used"),
        "unique_id": text("unique_id") or None,
        "vbios_version": text("vbios_version") or None,
        "hwmon": _hwmon_dir(device_dir),
        "read_errors": errors,
    }


def _hwmon_dir(device_dir):
    base = os.path.join(device_dir, "hwmon")
    try:
        names = sorted(n for n in os.listdir(base) if n.startswith("hwmon"))
    except OSError:
        return None
    return os.path.join(base, names[0]) if names else None


def _edge_temp_file(hwmon):
    """The edge sensor: the tempN_input whose label is 'edge' (temp1 on every amdgpu part seen)."""
    for n in range(1, 6):
        if _read_text(os.path.join(hwmon, "temp%d_label" % n)) == "edge":
            return os.path.join(hwmon, "temp%d_input" % n)
    return os.path.join(hwmon, "temp1_input")


def read_metrics(gpu):
    """Busy %, edge temperature and power of one GPU from sysfs: SMU-touching reads, may block.

    Returns {busy_percent, temperature_edge_c, power_w, read_errors}. Never reads a GPU that is
    runtime-suspended (a read would wake it, and can re-crash a flaky card).
    """
    found = {"busy_percent": None, "temperature_edge_c": None, "power_w": None, "read_errors": {}}
    if gpu.get("runtime_status") == "suspended":
        found["read_errors"]["all"] = "runtime-suspended: not woken"
        return found
    device_dir = gpu["device_dir"]
    busy, err = _read_int(os.path.join(device_dir, "gpu_busy_percent"))
    if err and err != "ENOENT":
        found["read_errors"]["gpu_busy_percent"] = err
    found["busy_percent"] = busy
    hwmon = gpu.get("hwmon")
    if hwmon:
        temp, err = _read_int(_edge_temp_file(hwmon))
        if temp is not None:
            found["temperature_edge_c"] = temp / 1000.0
        elif err != "ENOENT":
            found["read_errors"]["temp_input"] = err
        for name in ("power1_input", "power1_average"):
            micro, err = _read_int(os.path.join(hwmon, name))
            if micro is not None:
                found["power_w"] = round(micro / 1e6, 3)
                break
            if err != "ENOENT":
                found["read_errors"][name] = err
    return found


def read_metrics_all(gpus, timeout):
    """read_metrics for several GPUs in parallel, each under ``timeout``: {bdf: metrics or None}."""
    outcomes = _deadline.run_all(dict(
        (gpu["bdf"], (lambda gpu=gpu: read_metrics(gpu), timeout)) for gpu in gpus))
    results = {}
    for bdf, outcome in outcomes.items():
        if outcome.ok:
            results[bdf] = outcome.value
        else:
            results[bdf] = {"busy_percent": None, "temperature_edge_c": None, "power_w": None,
                            "read_errors": {"all": outcome.describe_failure()}}
    return results


def kfd_nodes(sysfs_root="/sys"):
    """{gpu_id: {bdf, gfx_target_version}} from KFD topology (nodes with gpu_id 0 are CPUs)."""
    base = os.path.join(sysfs_root, "class", "kfd", "kfd", "topology", "nodes")
    nodes = {}
    try:
        names = os.listdir(base)
    except OSError:
        return nodes
    for name in names:
        gpu_id, _err = _read_int(os.path.join(base, name, "gpu_id"))
        if not gpu_id:
            continue
        props = {}
        for line in (_read_text(os.path.join(base, name, "properties")) or "").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                props[parts[0]] = int(parts[1])
        if "location_id" in props:
            nodes[gpu_id] = {
                "bdf": bdf_from_location_id(props["location_id"], props.get("domain", 0)),
                "gfx_target_version": props.get("gfx_target_version"),
            }
    return nodes


def kfd_processes(sysfs_root="/sys", nodes=None, proc_root="/proc"):
    """Processes known to KFD with the VRAM they hold per GPU: [{pid, name, bdf, vram_bytes}].

    A process that merely opened /dev/kfd appears with 0 bytes; it is listed, holding nothing.
    """
    nodes = kfd_nodes(sysfs_root) if nodes is None else nodes
    base = os.path.join(sysfs_root, "class", "kfd", "kfd", "proc")
    procs = []
    try:
        pids = sorted(int(p) for p in os.listdir(base) if p.isdigit())
    except OSError:
        return procs
    for pid in pids:
        name = _read_text(os.path.join(proc_root, str(pid), "comm"))
        try:
            entries = os.listdir(os.path.join(base, str(pid)))
        except OSError:
            continue  # the process ended while we looked
        for entry in sorted(entries):
            if not entry.startswith("vram_"):
                continue
            gpu_id = entry[len("vram_"):]
            vram, _err = _read_int(os.path.join(base, str(pid), entry))
            node = nodes.get(int(gpu_id)) if gpu_id.isdigit() else None
            procs.append({
                "pid": pid,
                "name": name,
                "bdf": node["bdf"] if node else None,
                "gpu_id": int(gpu_id) if gpu_id.isdigit() else gpu_id,
                "vram_bytes": vram,
            })
    return procs


def read_perf_level(gpu):
    return _read_text(os.path.join(gpu["device_dir"], "power_dpm_force_performance_level"))


def rocm_version(tool_path):
    """The ROCm release a rocm-smi belongs to, from <rocm>/.info/version, or None."""
    if not tool_path:
        return None
    real = os.path.realpath(tool_path)
    for up in (2, 3, 4):
        root = real
        for _i in range(up):
            root = os.path.dirname(root)
        version = _read_text(os.path.join(root, ".info", "version"))
        if version:
            return version.split("-")[0]
    return None
