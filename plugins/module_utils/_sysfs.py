# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: GPUs (AMD and NVIDIA) as sysfs shows them, without any GPU tool.

A GPU is a PCI function of a known vendor (``0x1002`` AMD, ``0x10de`` NVIDIA) and a GPU class
(AMD: any display controller ``0x03xxxx`` or processing accelerator ``0x12xxxx``; NVIDIA: VGA
``0x0300`` or 3D controller ``0x0302``). A card's HD-audio, USB-C or UCSI functions are not GPUs.

Two kinds of reads, kept apart on purpose:
- identity and liveness (``scan_gpus``): PCI ids, config space, driver, VRAM counters, runtime-PM
  state. These do not talk to the SMU, so they are cheap and safe on a sick GPU. A PCI_COMMAND
  dword (config space bytes 4-7) of all-ones is the kernel's own "device lost from bus" test. With a
  ``timeout``, each GPU is read in a thread of its own under that deadline: a read that blocks
  on one GPU is reported for that GPU (which file, after how long) and hides no other GPU.
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

from ansible_collections.gpuops.preflight.plugins.module_utils import _deadline, _files
from ansible_collections.gpuops.preflight.plugins.module_utils._pci import bdf_from_location_id, normalize_bdf
from ansible_collections.gpuops.preflight.plugins.module_utils._values import plausible_reading, scaled

AMD_VENDOR = "0x1002"
NVIDIA_VENDOR = "0x10de"
VENDOR_NAMES = {AMD_VENDOR: "amd", NVIDIA_VENDOR: "nvidia"}
VENDOR_IDS = dict((name, vid) for vid, name in VENDOR_NAMES.items())
# The kernel driver a healthy GPU of each vendor is bound to.
DRIVERS = {AMD_VENDOR: "amdgpu", NVIDIA_VENDOR: "nvidia"}
_CARD = re.compile(r"^card(\d+)$")
# PCI classes of GPUs, per vendor (class prefixes): AMD 0x03xxxx display controllers and 0x12xxxx
# processing accelerators (Instinct); NVIDIA 0x0300 VGA and 0x0302 3D controllers (Tesla, A100, H100).
# Seconds for one GPU's identity reads (microseconds when healthy; a read stuck in a hung driver never returns).
GPU_READ_TIMEOUT = 2
GPU_CLASSES = {AMD_VENDOR: ("0x03", "0x12"), NVIDIA_VENDOR: ("0x0300", "0x0302")}
# amdgpu's compute partition mode of a partitionable GPU (MI300): SPX (one GPU), DPX, TPX, QPX, CPX
PARTITION_FILE = "current_compute_partition"
# amdgpu's performance level (auto, manual, profile_*): what a clock reset sets back to auto
PERF_LEVEL_FILE = "power_dpm_force_performance_level"


def _read(path, limit=4096):
    """(text, error): the stripped content of a small sysfs file, or the errno name it failed with.

    Opened without blocking, and only read when it is a regular file (sysfs attributes are): a FIFO
    or a device node planted in a tree is refused, never waited on. At most ``limit`` bytes.
    """
    data, err = _read_bytes(path, limit)
    if err:
        return None, err
    return data.decode("utf-8", "replace").strip(), None


def _read_bytes(path, limit):
    try:
        fd = _files.open_regular(path)
    except _files.FileProblem:
        return None, "not a regular file"
    except OSError as exc:
        return None, _errno_name(exc)
    try:
        return os.read(fd, limit), None
    except OSError as exc:
        return None, _errno_name(exc)
    finally:
        os.close(fd)


def _errno_name(exc):
    return errno.errorcode.get(exc.errno, str(exc)) if exc.errno else str(exc)


def _read_text(path):
    return _read(path)[0]


def _read_int(path):
    """(integer, error): the number a file starts with, or why there is none: the errno name its read failed with,
    'empty' (amdgpu's hwmon files can read empty when the SMU does not answer) or 'not a number: <text>'."""
    text, err = _read(path)
    if text is None:
        return None, err
    if not text:
        return None, "empty"
    try:
        return int(text.split()[0]), None
    except ValueError:
        return None, "not a number: %r" % text[:40]


def _link_name(path):
    try:
        return os.path.basename(os.path.realpath(path)) if os.path.lexists(path) else None
    except OSError:
        return None


# The config-space dword the kernel's own "device lost from bus!" test reads (amdgpu_device_health_check:
# PCI_COMMAND, with the status register beside it): all-ones there is a function that no longer answers. Never
# the vendor/device dword at 0: an SR-IOV virtual function reads all-ones there by the standard (its ids are
# the physical function's; pciutils #154), while its command and status registers answer.
PCI_COMMAND_OFFSET = 4


def config_space_lost(device_dir):
    """True when config space reads all-ones (GPU lost from the bus), False when sane, None when unreadable.

    Judged on the PCI_COMMAND dword; a file cut short before it (a copied or hand-made tree) is judged on the
    vendor/device dword it has."""
    head, err = _read_bytes(os.path.join(device_dir, "config"), PCI_COMMAND_OFFSET + 4)
    if err or len(head) < 4:
        return None
    if len(head) < PCI_COMMAND_OFFSET + 4:
        return head[:4] == b"\xff\xff\xff\xff"
    return head[PCI_COMMAND_OFFSET:PCI_COMMAND_OFFSET + 4] == b"\xff\xff\xff\xff"


def _uevent(device_dir):
    """{KEY: value} of a device's ``uevent`` file (DRIVER, PCI_ID, PCI_SLOT_NAME, ...); {} when unreadable."""
    found = {}
    for line in (_read_text(os.path.join(device_dir, "uevent")) or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            found[key.strip()] = value.strip()
    return found


def _device_address(device_dir):
    """The PCI address of a DRM card's ``device``: the folder its link resolves to, else (a copied tree, where
    ``device`` is a plain folder: sosreports, test fixtures) the PCI_SLOT_NAME its ``uevent`` names."""
    return (normalize_bdf(_link_name(device_dir) or "")
            or normalize_bdf(_uevent(device_dir).get("PCI_SLOT_NAME") or ""))


def _driver_name(device_dir):
    """The driver bound to a PCI function: its ``driver`` link, else the DRIVER its ``uevent`` names; None for none."""
    return _link_name(os.path.join(device_dir, "driver")) or _uevent(device_dir).get("DRIVER") or None


def _drm_cards(sysfs_root):
    """{bdf: drm card number} of every DRM card whose device names a PCI address (``_device_address``)."""
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
        bdf = _device_address(os.path.join(base, name, "device"))
        if bdf and (bdf not in cards or int(match.group(1)) < cards[bdf]):
            cards[bdf] = int(match.group(1))
    return cards


def _vendor_ids(vendors):
    """('amd', 'nvidia') or vendor ids -> vendor ids; ValueError for an unknown vendor."""
    ids = []
    for vendor in vendors:
        vid = VENDOR_IDS.get(vendor, vendor)
        if vid not in VENDOR_NAMES:
            raise ValueError("unknown GPU vendor %r (known: %s)" % (vendor, ", ".join(sorted(VENDOR_IDS))))
        ids.append(vid)
    return tuple(ids)


def is_gpu(vendor, pci_class):
    """Whether a PCI function of this vendor and class is a GPU we know."""
    return bool(vendor in GPU_CLASSES and pci_class and pci_class.lower().startswith(GPU_CLASSES[vendor]))


def list_pci_bus(sysfs_root="/sys"):
    """(the names under ``<sysfs_root>/bus/pci/devices``, None), or (None, why it could not be listed:
    ``unread_reason``). The one listing of the bus a probe makes: the GPU discovery (``enumerate_gpus_read``) and the
    topology (``pci_topology``) take it as ``listing``, so that both see the same bus, listed once."""
    base = os.path.join(sysfs_root, "bus", "pci", "devices")
    try:
        return os.listdir(base), None
    except OSError as exc:
        return None, unread_reason(base, exc)


def _pci_gpus(sysfs_root, vendors, listing=None):
    """({bdf: (device dir, vendor id)} of the vendors' GPUs on the PCI bus, bound to a driver or not, why the bus could
    not be listed or None). ``listing``: ``list_pci_bus``' answer when the caller has it already.

    ``vendor`` and ``class`` come from the kernel's copy of the device's header: they never block.
    """
    base = os.path.join(sysfs_root, "bus", "pci", "devices")
    found = {}
    names, unread = listing or list_pci_bus(sysfs_root)
    if names is None:
        return found, unread
    for name in names:
        bdf = normalize_bdf(name)
        if not bdf:
            continue
        device_dir = os.path.join(base, name)
        vendor = (_read_text(os.path.join(device_dir, "vendor")) or "").lower()
        if vendor not in vendors:
            continue
        if is_gpu(vendor, _read_text(os.path.join(device_dir, "class"))):
            found[bdf] = (device_dir, vendor)
    return found, None


# PCI class of a PCI-to-PCI bridge (a root or downstream port, a switch's upstream port, a riser's bridge).
BRIDGE_CLASS = "0x0604"


def pci_topology(sysfs_root="/sys", listing=None):
    """{bdf: {"upstream": [the bridges above it, nearest last], "bridge": bool}} of every PCI function under
    ``<sysfs_root>/bus/pci/devices``, or None when that folder cannot be listed (the topology is then unknown).
    ``listing``: ``list_pci_bus``' answer when the caller has it already (a probe lists the bus once).

    Each entry there is a link into /sys/devices (``../../../devices/pci0000:00/0000:00:01.1/0000:01:00.0``): the PCI
    addresses in the path above a function are the ports it sits behind. A folder that is not a link (a copied tree)
    has no upstream known from it. ``bridge`` is read from ``class`` (never blocks: the kernel's copy of the header).
    """
    base = os.path.join(sysfs_root, "bus", "pci", "devices")
    names = (listing or list_pci_bus(sysfs_root))[0]
    if names is None:
        return None
    topology = {}
    for name in names:
        bdf = normalize_bdf(name)
        if not bdf:
            continue
        path = os.path.join(base, name)
        try:
            parts = os.path.realpath(path).split(os.sep)
        except OSError:
            parts = [name]
        chain = []
        for part in reversed(parts):  # the trailing PCI addresses of the path: the function and its bridges
            address = normalize_bdf(part)
            if not address:
                break
            chain.insert(0, address)
        pci_class = (_read_text(os.path.join(path, "class")) or "").lower()
        topology[bdf] = {"upstream": chain[:-1] if chain and chain[-1] == bdf else [],
                         "bridge": pci_class.startswith(BRIDGE_CLASS)}
    return topology


# Why a folder that lists the PCI bus could not be read, per errno: what it means for the host.
_UNREAD_MEANING = {
    "ENOENT": "missing (a container without the host's /sys, or sysfs not mounted)",
    "EACCES": "permission denied",
    "EPERM": "operation not permitted",
    "ENOTDIR": "not a directory",
}


def unread_reason(path, exc):
    """'cannot list /sys/bus/pci/devices: EACCES, permission denied: the GPUs on the bus are unknown'."""
    name = _errno_name(exc)
    return "cannot list %s: %s%s: which GPUs are on the PCI bus is unknown, not none" % (
        path, name, ", " + _UNREAD_MEANING[name] if name in _UNREAD_MEANING else "")


def enumerate_gpus(sysfs_root="/sys", vendors=(AMD_VENDOR,)):
    """[(bdf, device_dir, drm_card, vendor id)] of the vendors' GPUs, sorted by PCI address. Cheap: no device read.
    Where it matters that the bus could not be listed (none found is then no answer), ``enumerate_gpus_read``."""
    return enumerate_gpus_read(sysfs_root, vendors)[0]


def enumerate_gpus_read(sysfs_root="/sys", vendors=(AMD_VENDOR,), listing=None):
    """(``enumerate_gpus``' list, why ``bus/pci/devices`` could not be listed or None): permission denied, or missing
    in a container, reads as no GPU unless the reason is looked at. ``listing``: ``list_pci_bus``' answer when the
    caller has it already.

    A DRM card whose PCI function is not listed under bus/pci (a partial tree) is kept when its
    vendor is one of ``vendors``, or, vendor unreadable, when its driver is theirs.
    """
    vendors = _vendor_ids(vendors)
    cards = _drm_cards(sysfs_root)
    devices, unread = _pci_gpus(sysfs_root, vendors, listing)
    drivers = dict((DRIVERS[v], v) for v in vendors)
    for bdf in cards:
        if bdf in devices:
            continue
        device_dir = os.path.join(sysfs_root, "class", "drm", "card%d" % cards[bdf], "device")
        vendor = (_read_text(os.path.join(device_dir, "vendor")) or "").lower()
        if vendor not in vendors:
            vendor = drivers.get(_driver_name(device_dir))
        if vendor in vendors:  # a BMC's ASPEED card or another vendor's GPU is not ours
            devices[bdf] = (device_dir, vendor)
    return [(bdf, devices[bdf][0], cards.get(bdf), devices[bdf][1]) for bdf in sorted(devices)], unread


def scan_gpus(sysfs_root="/sys", vendors=(AMD_VENDOR,), timeout=None, found=None):
    """The vendors' GPUs from sysfs, identity and liveness only (no SMU traffic). Sorted by PCI address.

    Each entry: bdf, drm_card, device_dir, driver, vendor, vendor_name ('amd'/'nvidia'), device_id,
    revision, lost (PCI_COMMAND dword all-ones; None when unreadable), runtime_status, perf_level,
    vram_total_bytes, vram_used_bytes, unique_id, vbios_version, hwmon (folder or None),
    read_errors ({file: errno name}), hung (None, or {file, timeout_s}: the read that did not return), implausible
    (VRAM readings outside ``_values.PLAUSIBLE``, not used).
    With ``timeout`` (seconds) every GPU is read in its own thread under that deadline. ``found``:
    the ``enumerate_gpus`` answer when the caller has it already.
    """
    vendors = _vendor_ids(vendors)
    if found is None:
        found = enumerate_gpus(sysfs_root, vendors)
    else:
        found = [entry for entry in found if entry[3] in vendors]
    if not timeout:
        return [_identity(bdf, device_dir, card, vendor) for bdf, device_dir, card, vendor in found]
    progress = dict((bdf, {}) for bdf, _dir, _card, _vendor in found)
    outcomes = _deadline.run_all(dict(
        (bdf, (lambda bdf=bdf, device_dir=device_dir, card=card, vendor=vendor:
               _identity(bdf, device_dir, card, vendor, progress[bdf]), timeout))
        for bdf, device_dir, card, vendor in found))
    gpus = []
    for bdf, device_dir, card, vendor in found:
        outcome = outcomes[bdf]
        if outcome.ok:
            gpus.append(outcome.value)
        else:
            gpus.append(_unread(bdf, device_dir, card, vendor, progress[bdf].get("file") or "identity files",
                                outcome, timeout))
    return gpus


def _base_entry(bdf, device_dir, drm_card, vendor):
    return {
        "bdf": bdf, "drm_card": drm_card, "device_dir": device_dir,
        "driver": _driver_name(device_dir), "vendor": vendor,
        "vendor_name": VENDOR_NAMES.get(vendor), "device_id": None, "revision": None, "lost": None,
        "runtime_status": None, "perf_level": None, "vram_total_bytes": None, "vram_used_bytes": None,
        "unique_id": None, "vbios_version": None, "hwmon": None, "read_errors": {}, "hung": None,
        "compute_partition": None, "implausible": [],
    }


def _unread(bdf, device_dir, drm_card, vendor, name, outcome, timeout):
    """The entry of a GPU whose identity reads did not finish: which file blocked, nothing guessed."""
    gpu = _base_entry(bdf, device_dir, drm_card, vendor)
    gpu["compute_partition"] = "unknown"  # not read: whether the tools list it as several GPUs cannot be told
    if outcome.timed_out:
        gpu["hung"] = {"file": name, "timeout_s": timeout}
        gpu["read_errors"][name] = "timed out after %ss" % timeout
    else:
        gpu["read_errors"][name] = outcome.describe_failure()
    return gpu


def _identity(bdf, device_dir, drm_card, vendor=None, progress=None):
    gpu = _base_entry(bdf, device_dir, drm_card, vendor)
    errors = gpu["read_errors"]
    progress = {} if progress is None else progress

    def text(name):
        progress["file"] = name
        value, err = _read(os.path.join(device_dir, name))
        if err and err != "ENOENT":
            errors[name] = err
        return value

    def integer(name):
        progress["file"] = name
        value, err = _read_int(os.path.join(device_dir, name))
        if err and err != "ENOENT":
            errors[name] = err
        return value

    gpu["vendor"] = (text("vendor") or "").lower() or vendor
    gpu["vendor_name"] = VENDOR_NAMES.get(gpu["vendor"])
    gpu["device_id"] = (text("device") or "").lower() or None
    gpu["revision"] = text("revision")
    progress["file"] = "config"
    gpu["lost"] = config_space_lost(device_dir)
    gpu["runtime_status"] = text(os.path.join("power", "runtime_status"))
    gpu["perf_level"] = text(PERF_LEVEL_FILE)
    for field, name in (("vram_total_bytes", "mem_info_vram_total"), ("vram_used_bytes", "mem_info_vram_used")):
        gpu[field], record = plausible_reading(field, integer(name), "sysfs")
        if record:
            gpu["implausible"].append(record)
    gpu["unique_id"] = text("unique_id") or None
    gpu["vbios_version"] = text("vbios_version") or None
    # MI300-style compute partitioning (SPX, DPX, ... CPX): the tools list one GPU per partition
    gpu["compute_partition"] = text(PARTITION_FILE) or None
    progress["file"] = "hwmon"
    gpu["hwmon"] = _hwmon_dir(device_dir)
    progress["file"] = None
    return gpu


def partition_mode(gpu):
    """The compute partition mode of a GPU sysfs shows split into several ('DPX', 'CPX', ...), 'unknown' when
    that could not be read, or None for one GPU (SPX, or no partition file: a GPU that cannot be split)."""
    mode = gpu.get("compute_partition")
    if PARTITION_FILE in gpu.get("read_errors", {}):
        return "unknown"
    if mode is None or mode.upper() == "SPX":
        return None
    return mode


def _hwmon_dir(device_dir):
    base = os.path.join(device_dir, "hwmon")
    try:
        names = sorted(n for n in os.listdir(base) if n.startswith("hwmon"))
    except OSError:
        return None
    return os.path.join(base, names[0]) if names else None


# The temperature a GPU reports, by hwmon label in order of preference: its edge sensor, else its junction (the
# MI300 family's SMU 13.0.6 has no edge sensor: hwmon shows only temp2 'junction' and temp3 'mem', nvtop #514),
# as the tools' answers are read (_gpus.join).
TEMP_LABELS = ("edge", "junction")


def _temp_file(hwmon):
    """The tempN_input of the first of TEMP_LABELS hwmon labels (edge is temp1 on every part that has one);
    temp1_input when no label is readable."""
    labels = {}
    for n in range(1, 6):
        labels.setdefault(_read_text(os.path.join(hwmon, "temp%d_label" % n)), n)
    for label in TEMP_LABELS:
        if label in labels:
            return os.path.join(hwmon, "temp%d_input" % labels[label])
    return os.path.join(hwmon, "temp1_input")


# errno names amdgpu answers a power-management read with when it does not let the GPU be read now, not because a
# read failed: EPERM while the GPU is not runtime-active (suspended, suspending, resuming), in a reset, or the system
# suspends (amdgpu_pm.c, amdgpu_pm_get_access_if_active). They say nothing against the GPU's sensors.
REFUSED = ("EPERM",)


def read_metrics(gpu):
    """Busy %, temperature (TEMP_LABELS) and power of one GPU from sysfs: SMU-touching reads, may block.

    Returns {busy_percent, temperature_edge_c, power_w, read_errors, runtime_status, implausible}: a reading outside
    ``_values.PLAUSIBLE`` is not used but listed in ``implausible`` ({field, value, unit, source}). Never reads a GPU that is
    runtime-suspended (a read would wake it, and can re-crash a flaky card): neither one the scan saw suspended nor
    one that went to sleep since (an idle GPU suspends seconds after the GPU tool's reads), as ``runtime_status``,
    read again first, says.
    """
    device_dir = gpu["device_dir"]
    now = _read_text(os.path.join(device_dir, "power", "runtime_status"))
    found = {"busy_percent": None, "temperature_edge_c": None, "power_w": None, "read_errors": {},
             "runtime_status": now or gpu.get("runtime_status"), "implausible": []}

    def held(field, reading):
        got, record = plausible_reading(field, reading, "sysfs")
        if record:
            found["implausible"].append(record)
        return got

    if "suspended" in (gpu.get("runtime_status"), now):
        found["runtime_status"] = "suspended"
        found["read_errors"]["all"] = "runtime-suspended: not woken"
        return found
    busy, err = _read_int(os.path.join(device_dir, "gpu_busy_percent"))
    if err and err != "ENOENT":
        found["read_errors"]["gpu_busy_percent"] = err
    found["busy_percent"] = held("busy_percent", busy)
    hwmon = gpu.get("hwmon")
    if hwmon:
        temp, err = _read_int(_temp_file(hwmon))
        if temp is not None:
            found["temperature_edge_c"] = held("temperature_edge_c", scaled(temp, divisor=1000))  # millidegrees
        elif err != "ENOENT":
            found["read_errors"]["temp_input"] = err
        for name in ("power1_input", "power1_average"):
            micro, err = _read_int(os.path.join(hwmon, name))
            if micro is not None:
                watts = held("power_w", scaled(micro, divisor=10 ** 6))  # microwatts
                if watts is not None:
                    found["power_w"] = round(watts, 3)
                    break
                continue  # a garbage reading: power1_average may still hold a real one
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
                            "read_errors": {"all": outcome.describe_failure()}, "implausible": []}
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
            if len(parts) == 2 and parts[1].lstrip("-").isdecimal():
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
        pids = sorted(int(p) for p in os.listdir(base) if p.isdecimal())
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
            node = nodes.get(int(gpu_id)) if gpu_id.isdecimal() else None
            procs.append({
                "pid": pid,
                "name": name,
                "bdf": node["bdf"] if node else None,
                "gpu_id": int(gpu_id) if gpu_id.isdecimal() else gpu_id,
                "vram_bytes": vram,
            })
    return procs


def read_perf_level(gpu):
    """(level, error): ``PERF_LEVEL_FILE`` now, or the errno name it failed with."""
    return _read(os.path.join(gpu["device_dir"], PERF_LEVEL_FILE))


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
