"""A simulated ROCm rig on disk, built from recorded real tool output, and the faults to inject.

One folder per rig::

    <rig>/bin/rocm-smi, <rig>/bin/amd-smi   stand-ins (standin.py) replaying <rig>/<tool>.d/
    <rig>/sys/...                            sysfs tree (sysfs.py; ARCHITECTURE.md layout)
    <rig>/ramdisk/step<N>/<name>             ramdisk root, step folders as the product reads them (on a
                                             tmpfs; else the root is a /dev/shm/simrig-<rig>-* folder)
    <rig>/inputs/                            step input files (absolute paths in preflight_steps;
                                             a cluster shares <root>/inputs/)
    <rig>/kernel.log                         kernel log, dmesg monotonic stamps of THIS machine's boot
    <rig>/home/<user>/                       home folders (caches added by add_caches)
    <rig>/precious/<user>/                   files outside the homes that a cache symlink points at
    <rig>/simrig.json                        the rig's state (Rig.load reads it back)

GPUs are addressed as the product names them: by rocm-smi index (an int) or by PCI address.
Every fault method rewrites all the files it affects (tool recording, sysfs, KFD, kernel log)
and saves the state, so the rig stays consistent and another process can ``Rig.load`` it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import sys
import tempfile
import zlib
from decimal import Decimal

from . import fixtures, kernel, models, standin, sysfs

DEFAULT_STEPS = {
    1: {"ramdisk": ["run_config.json"], "inputs": ["train.parquet", "holdout.parquet"]},
    2: {"ramdisk": ["run_config.json", "features.npy"], "inputs": ["train.parquet"]},
    3: {"ramdisk": ["train_history.json", "holdout_history.json"], "inputs": []},
}
DEFAULT_USERS = ("trainer",)
TOOLS = ("rocm-smi", "amd-smi")
MODES = ("replay", "hang", "slow", "fail", "garbage", "empty")
STATE_FILE = "simrig.json"
OWNER_FILE = ".simrig-owner"  # in a /dev/shm ramdisk root: the rig folder it belongs to

# rocm-smi keys whose reads go through the power-management code (EPERM while runtime-suspended,
# so rocm_smi_lib reports "not supported" and the key is left out of the JSON).
_PM_KEY_PARTS = ("Temperature", "Graphics Package Power", "clock", "GPU use (%)", "Fan ", "Voltage (mV)",
                 "Performance Level", "GFX Activity")


def step_number(step):
    """A step as the inventory writes it: 3 for '3' or 3.0, 2.5 for '2.5' (steps between whole numbers exist)."""
    number = Decimal(str(step)).normalize()
    return int(number) if number == number.to_integral_value() else float(number)


def step_folder(step, spec=None):
    """The step's ramdisk folder: step<N> in its shortest form (step3, step2.5), unless the step names one."""
    return (spec or {}).get("ramdisk_dir") or "step%s" % step_number(step)


def _steps_key(steps):
    return {step_number(k): v for k, v in (steps or {}).items()}


class Gpu(object):
    """One GPU of a rig. ``index`` is rocm-smi's index, ``position`` the PCI-address order."""

    FIELDS = ("position", "index", "bdf", "card", "render_minor", "node", "gpu_id", "hwmon", "template",
              "device_id", "revision", "subsystem_vendor", "subsystem_device", "gfx_target_version",
              "compute_units", "name", "unique_id", "vram_total", "vram_used", "temp_edge", "temp_junction",
              "temp_mem", "power_w", "busy", "perf_level", "lost", "vanished", "suspended", "drop_metrics",
              "overrides")

    def __init__(self, **kw):
        for field in self.FIELDS:
            setattr(self, field, kw.get(field))
        self.overrides = list(self.overrides or [])

    def as_dict(self):
        return {f: getattr(self, f) for f in self.FIELDS}

    @property
    def dev(self):
        """The device folder relative to the sysfs root."""
        return sysfs.dev_rel(self.bdf)

    @property
    def in_tool(self):
        return not (self.lost or self.vanished)

    def __repr__(self):
        return "Gpu(index=%s, bdf=%s, card%s, gpu_id=%s%s%s)" % (
            self.index, self.bdf, self.card, self.gpu_id, ", lost" if self.lost else "",
            ", vanished" if self.vanished else "")


class Rig(object):
    """A simulated rig. Build with ``Rig.build(root, name, ...)``, reopen with ``Rig.load(path)``."""

    def __init__(self, path, state):
        self.path = os.path.abspath(path)
        self.state = state
        self.gpus_by_position = [Gpu(**g) for g in state["gpus"]]

    # ------------------------------------------------------------------ construction

    @classmethod
    def build(cls, root, name, gpus=12, fixture=fixtures.DEFAULT_ROCM_SMI, card=None, amd_smi=False,
              sysfs_dump=fixtures.DEFAULT_SYSFS_DUMP, drm_order="bdf", index_order=None, bmc=False,
              ramdisk=None, users=DEFAULT_USERS, excluded_gpus=(), gpu_watchlist=(), expected_gpu_count=None,
              steps=None, ramdisk_layout="per_step", step_files=True, boot_log=True, bus_start=0x03, bus_step=0x03,
              inputs_root=None, overwrite=True):
        """Lay out a rig of ``gpus`` GPUs under ``root/name`` and return it.

        fixture      rocm-smi JSON recording to replicate (a unique prefix will do)
        card         recorded card key to copy ("card0"); None cycles through the recording's cards
        amd_smi      False | True/"list" (amd-smi metric --json list form) | "wrapped" ({"gpu_data": [...]})
        drm_order    "bdf" (DRM cards in PCI order) | "reverse" | a list: PCI position -> DRM rank
        index_order  None (from the recording: "GPU ID" = ROCm <= 5.7 = "drm", else "bdf") | "bdf" | "drm"
        bmc          add an ASPEED BMC display (vendor 0x1a03, driver ast) as card0
        ramdisk      None: <rig>/ramdisk when the rig is on a tmpfs, else "shm" | "shm" (a fresh
                     /dev/shm/simrig-<name>-* folder, removed by destroy()) | "rig" (<rig>/ramdisk) | a path
        ramdisk_layout "per_step" (<ramdisk>/step<N>/<name>, what the product reads) | "flat" (<ramdisk>/<name>)
        steps        preflight_steps; relative "inputs" are files under ``inputs_root``
        inputs_root  where input files live (default <rig>/inputs; build_cluster shares <root>/inputs)
        step_files   write every step's ramdisk and input files (a healthy rig)
        """
        path = os.path.join(os.path.abspath(root), name)
        if os.path.lexists(path):
            if not overwrite:
                raise FileExistsError(path)
            if os.path.exists(os.path.join(path, STATE_FILE)):
                cls.load(path).destroy()
            shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        cards = fixtures.rocm_smi_cards(fixture)
        if not cards:
            raise ValueError("recording %s has no cards" % fixture)
        fixture = fixtures.path("rocm-smi", fixture).name
        if card is not None:
            cards = [c for c in cards if c[0] == card]
            if not cards:
                raise ValueError("recording %s has no %s" % (fixture, card))
        if index_order is None:
            index_order = "drm" if "GPU ID" in cards[0][1] else "bdf"
        if ramdisk is None:
            ramdisk = "rig" if on_tmpfs(path) else "shm"
        if ramdisk == "shm":
            collect_orphans()
            shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
            ramdisk_root = tempfile.mkdtemp(prefix="simrig-%s-" % name, dir=shm)
            _put_file(os.path.join(ramdisk_root, OWNER_FILE), path + "\n")
            owns_ramdisk = True
        elif ramdisk != "rig":
            ramdisk_root = os.path.abspath(ramdisk)
            os.makedirs(ramdisk_root, exist_ok=True)
            owns_ramdisk = False
        else:
            ramdisk_root = os.path.join(path, "ramdisk")
            os.makedirs(ramdisk_root)
            owns_ramdisk = False
        amd_form = {False: None, None: None, True: "list", "list": "list", "wrapped": "wrapped"}[amd_smi]

        gpu_objs = cls._make_gpus(name, gpus, cards, drm_order, index_order, bmc, bus_start, bus_step)
        state = {
            "name": name, "fixture": fixture, "sysfs_dump": fixtures.path("sysfs", sysfs_dump).name,
            "amd_smi": amd_form, "index_order": index_order, "bmc": bool(bmc),
            "driver_version": (fixtures.rocm_smi_system(fixture) or {}).get("Driver version"),
            "ramdisk_root": ramdisk_root, "owns_ramdisk": owns_ramdisk, "ramdisk_layout": ramdisk_layout,
            "inputs_root": os.path.abspath(inputs_root or os.path.join(path, "inputs")),
            "users": list(users), "excluded_gpus": list(excluded_gpus), "gpu_watchlist": list(gpu_watchlist),
            "expected_gpu_count": gpus if expected_gpu_count is None else expected_gpu_count,
            "steps": {str(k): v for k, v in _steps_key(steps or DEFAULT_STEPS).items()},
            "holders": {}, "tool": {t: {"override": None, "mode": "replay"} for t in TOOLS},
            "resetclocks_broken": False, "caches": {},
            "gpus": [g.as_dict() for g in gpu_objs],
        }
        rig = cls(path, state)
        rig._layout(boot_log=boot_log, step_files=step_files)
        return rig

    @staticmethod
    def _make_gpus(name, count, cards, drm_order, index_order, bmc, bus_start, bus_step):
        if count < 0:
            raise ValueError("a rig cannot have a negative number of GPUs")
        buses = [bus_start + i * bus_step for i in range(count)]
        if buses and buses[-1] > 0xFF:
            raise ValueError("too many GPUs for bus_start/bus_step")
        if drm_order == "bdf":
            ranks = list(range(count))
        elif drm_order == "reverse":
            ranks = list(reversed(range(count)))
        else:
            ranks = list(drm_order)
            if sorted(ranks) != list(range(count)):
                raise ValueError("drm_order must be a permutation of 0..%d" % (count - 1))
        base_card = 1 if bmc else 0
        out, used_ids = [], set()
        for pos in range(count):
            key, rec = cards[pos % len(cards)]
            ident = models.identity(rec)
            bdf = "0000:%02x:00.0" % buses[pos]
            rank = ranks[pos]
            card_no = base_card + rank
            # KFD gpu_ids are 16-bit hashes (rocm-smi 6.2+ prints them as "GUID"); GPU 0 keeps the recorded one.
            gpu_id = int(rec["GUID"]) if pos == 0 and str(rec.get("GUID", "")).isdigit() else None
            salt = 0
            while gpu_id is None or gpu_id in used_ids:
                gpu_id = 1024 + zlib.crc32(("%s/%s/%d" % (name, bdf, salt)).encode()) % 64000
                salt += 1
            used_ids.add(gpu_id)
            unique = rec.get("Unique ID")
            if unique and unique.startswith("0x"):
                unique = hex(int(unique, 16) ^ (pos * 0x10001))  # per-GPU, as real ones differ
            else:
                unique = None
            vram_total, vram_used = _vram(rec, ident)
            temps = _temps(rec, ident)
            out.append(Gpu(
                position=pos, index=None, bdf=bdf, card=card_no, render_minor=128 + card_no, node=rank + 1,
                gpu_id=gpu_id, hwmon=2 + pos, template=[key, pos % len(cards)], device_id=ident["device_id"],
                revision=ident["revision"], subsystem_vendor=ident["subsystem_vendor"],
                subsystem_device=ident["subsystem_device"], gfx_target_version=ident["gfx_target_version"],
                compute_units=ident["compute_units"], name=ident["name"], unique_id=unique,
                vram_total=vram_total, vram_used=vram_used, temp_edge=temps[0], temp_junction=temps[1],
                temp_mem=temps[2], power_w=_power(rec, ident), busy=_int(rec.get("GPU use (%)")),
                perf_level=_perf(rec), lost=False, vanished=False, suspended=False, drop_metrics=False,
                overrides=[]))
        order = sorted(out, key=(lambda g: g.bdf) if index_order == "bdf" else (lambda g: g.card))
        for idx, gpu in enumerate(order):
            gpu.index = idx
        return out

    @classmethod
    def load(cls, path):
        """Reopen a rig another process (or the CLI) built."""
        with open(os.path.join(path, STATE_FILE), encoding="utf-8") as handle:
            return cls(path, json.load(handle))

    def _save(self):
        self.state["gpus"] = [g.as_dict() for g in self.gpus_by_position]
        tmp = os.path.join(self.path, STATE_FILE + ".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(self.state, handle, indent=1, sort_keys=True)
        os.replace(tmp, os.path.join(self.path, STATE_FILE))

    def _layout(self, boot_log, step_files):
        for tool in self.tools:
            standin.install(self.bin_dir, tool)
            os.makedirs(self.tool_dir(tool), exist_ok=True)
            _put(self.tool_dir(tool), "mode", "replay\n")
            _put(self.tool_dir(tool), "calls.log", "")
            mutex = fixtures.body_lines("rocm-smi", fixtures.MUTEX_FAILURE)
            _put(self.tool_dir(tool), "fail_stderr", "\n".join(mutex) + "\n")
            _put(self.tool_dir(tool), "fail_rc", "1\n")
        self._write_sysfs()
        self._write_tools()
        for user in self.state["users"]:
            os.makedirs(self.home(user), exist_ok=True)
        os.makedirs(self.inputs_root, exist_ok=True)
        if step_files:
            for step in sorted(self.steps):
                self.write_ramdisk(step)
        open(self.kernel_log, "a").close()
        if boot_log:
            lines = kernel.stamp(kernel.healthy_boot(self.gpus), at_epoch=kernel.boot_epoch() + 3.5, span_s=2.0)
            kernel.merge_into(self.kernel_log, lines)
        self._save()

    # ------------------------------------------------------------------ where things are

    @property
    def name(self):
        return self.state["name"]

    @property
    def tools(self):
        return ("rocm-smi", "amd-smi") if self.state["amd_smi"] else ("rocm-smi",)

    @property
    def bin_dir(self):
        return os.path.join(self.path, "bin")

    @property
    def rocm_smi(self):
        return os.path.join(self.bin_dir, "rocm-smi")

    @property
    def amd_smi(self):
        return os.path.join(self.bin_dir, "amd-smi") if self.state["amd_smi"] else None

    @property
    def sys_root(self):
        return os.path.join(self.path, "sys")

    @property
    def ramdisk_root(self):
        return self.state["ramdisk_root"]

    @property
    def inputs_root(self):
        return self.state["inputs_root"]

    def input_path(self, name):
        """Absolute path of an input file (relative names live under ``inputs_root``)."""
        return name if os.path.isabs(name) else os.path.join(self.inputs_root, name)

    @property
    def kernel_log(self):
        return os.path.join(self.path, "kernel.log")

    @property
    def steps(self):
        """preflight_steps as the inventory gets them: int keys, input files as absolute paths."""
        out = {}
        for step, spec in _steps_key(self.state["steps"]).items():
            out[step] = {"ramdisk": list(spec.get("ramdisk", [])),
                         "inputs": [self.input_path(n) for n in spec.get("inputs", [])]}
            if spec.get("ramdisk_dir"):
                out[step]["ramdisk_dir"] = spec["ramdisk_dir"]
        return out

    def tool_dir(self, tool="rocm-smi"):
        return os.path.join(self.path, tool + ".d")

    def home(self, user):
        return os.path.join(self.path, "home", user)

    @property
    def home_dirs(self):
        return [self.home(u) for u in self.state["users"]]

    @property
    def gpus(self):
        """GPUs in rocm-smi index order."""
        return sorted(self.gpus_by_position, key=lambda g: g.index)

    def gpu(self, ref):
        """A GPU by rocm-smi index (int) or PCI address (any case)."""
        if isinstance(ref, Gpu):
            return ref
        if isinstance(ref, int):
            for gpu in self.gpus_by_position:
                if gpu.index == ref:
                    return gpu
            raise IndexError("%s has no GPU index %d" % (self.name, ref))
        wanted = str(ref).lower()
        if len(wanted) == 7:
            wanted = "0000:" + wanted
        for gpu in self.gpus_by_position:
            if gpu.bdf == wanted:
                return gpu
        raise KeyError("%s has no GPU at %s" % (self.name, ref))

    def sys_path(self, *parts):
        return os.path.join(self.sys_root, *parts)

    # ------------------------------------------------------------------ inventory

    def host_vars(self, python=None, **overrides):
        """The inventory variables that point a host at this rig (``overrides`` win)."""
        out = {
            "ansible_connection": "local",
            "ansible_python_interpreter": python or sys.executable,
            "preflight_rocm_smi": self.rocm_smi,
            "preflight_sysfs_root": self.sys_root,
            "preflight_ramdisk_root": self.ramdisk_root,
            "preflight_kernel_log": self.kernel_log,
            "expected_gpu_count": self.state["expected_gpu_count"],
            "excluded_gpus": list(self.state["excluded_gpus"]),
            "gpu_watchlist": list(self.state["gpu_watchlist"]),
            "cleanup_home_dirs": self.home_dirs,
        }
        if self.amd_smi:
            out["preflight_amd_smi"] = self.amd_smi
        if self.state.get("nvidia"):
            from .nvidia import NvidiaGpus  # NVIDIA GPUs beside (or instead of) the AMD ones
            out.update(NvidiaGpus(self).host_vars())
        out.update(overrides)
        return out

    def set_inventory(self, excluded_gpus=None, gpu_watchlist=None, expected_gpu_count=None):
        if excluded_gpus is not None:
            self.state["excluded_gpus"] = list(excluded_gpus)
        if gpu_watchlist is not None:
            self.state["gpu_watchlist"] = list(gpu_watchlist)
        if expected_gpu_count is not None:
            self.state["expected_gpu_count"] = expected_gpu_count
        self._save()

    # ------------------------------------------------------------------ tool recordings

    def _template(self, gpu):
        cards = fixtures.rocm_smi_cards(self.state["fixture"])
        key, pos = gpu.template
        for k, card in cards:
            if k == key:
                return card
        return cards[pos]

    def rocm_smi_document(self):
        """The JSON document the rocm-smi stand-in prints (None: it prints nothing)."""
        doc = {}
        for gpu in self.gpus:
            if not gpu.in_tool:
                continue  # rocm-smi pops a card whose reads all fail: a gap in the numbering
            card = self._template(gpu)
            card["PCI Bus"] = gpu.bdf.upper()
            if "GUID" in card:
                card["GUID"] = str(gpu.gpu_id)
            if "Node ID" in card:
                card["Node ID"] = str(gpu.node)
            if gpu.unique_id and "Unique ID" in card:
                card["Unique ID"] = gpu.unique_id
            if "temp" in gpu.overrides and "Temperature (Sensor edge) (C)" in card and gpu.temp_edge is not None:
                card["Temperature (Sensor edge) (C)"] = "%.1f" % gpu.temp_edge
            if "temp" in gpu.overrides and "Temperature (Sensor junction) (C)" in card and gpu.temp_junction is not None:
                card["Temperature (Sensor junction) (C)"] = "%.1f" % gpu.temp_junction
            if "busy" in gpu.overrides and "GPU use (%)" in card:
                card["GPU use (%)"] = "%d" % gpu.busy
            if "perf" in gpu.overrides and "Performance Level" in card:
                card["Performance Level"] = gpu.perf_level
            if "vram" in gpu.overrides or self._held(gpu):
                used = self.vram_used(gpu)
                if "VRAM Total Used Memory (B)" in card:
                    card["VRAM Total Used Memory (B)"] = str(used)
                if "GPU Memory Allocated (VRAM%)" in card:
                    card["GPU Memory Allocated (VRAM%)"] = str(used * 100 // gpu.vram_total)
            if gpu.suspended or gpu.drop_metrics:
                card = {k: v for k, v in card.items() if not any(p in k for p in _PM_KEY_PARTS)}
            doc["card%d" % gpu.index] = card
        system = fixtures.rocm_smi_system(self.state["fixture"])
        if system and "Driver version" in system:
            doc["system"] = {"Driver version": system["Driver version"]}
        if not any(k.startswith("card") for k in doc):
            return None
        return doc

    def rocm_smi_stdout(self):
        doc = self.rocm_smi_document()
        return "" if doc is None else json.dumps(doc) + "\n"

    def _rocm_smi_stderr(self):
        lines = []
        recorded = fixtures.body_lines("rocm-smi", fixtures.EXPECTED_INTEGER)
        expected = [l for l in recorded if l.startswith("Expected integer")][:2]
        for gpu in self.gpus:
            if gpu.in_tool and (gpu.suspended or gpu.drop_metrics):
                lines += expected
                lines.append("GPU[%d]\t\t: get_power_avg, Unexpected data received" % gpu.index)
        if self.rocm_smi_document() is None:
            lines.append("WARNING: No JSON data to report")
        return "".join(l + "\n" for l in lines)

    def amd_smi_document(self, subcommand="metric"):
        """amd-smi ``metric --json`` (or ``static``) for the rig's GPUs, list or wrapped form."""
        name = fixtures.DEFAULT_AMD_SMI_STATIC if subcommand == "static" else fixtures.DEFAULT_AMD_SMI_METRIC
        template = fixtures.load_json("amd-smi", name)[0]
        items = []
        seen = [g for g in sorted(self.gpus_by_position, key=lambda g: g.bdf) if g.in_tool]  # amd-smi >= 6.0: BDF order
        for number, gpu in enumerate(seen):
            entry = copy.deepcopy(template)
            entry["gpu"] = number  # amd-smi numbers the GPUs it sees from 0: no gap for a lost one
            if subcommand == "static":
                entry["asic"].update(device_id=gpu.device_id, rev_id=gpu.revision, subvendor_id=gpu.subsystem_vendor)
                if gpu.device_id != "0x73ff":
                    entry["asic"]["market_name"] = gpu.name  # the recording is an RX 6600's
                vbios = self._template(gpu).get("VBIOS version")
                if vbios and gpu.device_id != "0x73ff":
                    entry["vbios"]["part_number"] = vbios
                entry["bus"]["bdf"] = gpu.bdf
                entry["vram"]["size"]["value"] = gpu.vram_total // 1048576
                if self.state.get("driver_version"):
                    entry["driver"]["version"] = self.state["driver_version"]
            else:
                temp = entry["temperature"]
                for key, value in (("edge", gpu.temp_edge), ("hotspot", gpu.temp_junction), ("mem", gpu.temp_mem)):
                    if value is not None and isinstance(temp.get(key), dict):
                        temp[key]["value"] = int(round(value))
                if gpu.busy is not None:
                    entry["usage"]["gfx_activity"]["value"] = gpu.busy
                if gpu.power_w is not None:
                    entry["power"]["socket_power"]["value"] = int(round(gpu.power_w))
                mem = entry["mem_usage"]
                total, used = gpu.vram_total // 1048576, self.vram_used(gpu) // 1048576
                mem["total_vram"]["value"], mem["used_vram"]["value"], mem["free_vram"]["value"] = total, used, total - used
                if gpu.suspended or gpu.drop_metrics:
                    for key in ("edge", "hotspot", "mem"):
                        temp[key] = "N/A"
                    entry["usage"]["gfx_activity"] = "N/A"
                    entry["power"]["socket_power"] = "N/A"
            items.append(entry)
        if self.state["amd_smi"] == "wrapped":
            return {"gpu_data": items}
        return items

    def amd_smi_list(self):
        """``amd-smi list --json``: the recorded entry (tests/fixtures/gpu SOURCES.md) per GPU amd-smi sees, numbered
        as ``metric`` numbers them, each with its address, KFD ids and uuid."""
        template = fixtures.load_json("amd-smi", fixtures.AMD_SMI_LIST)[0]
        seen = [g for g in sorted(self.gpus_by_position, key=lambda g: g.bdf) if g.in_tool]
        return [dict(template, gpu=number, bdf=gpu.bdf, kfd_id=gpu.gpu_id, node_id=gpu.node,
                     uuid="%02xff%s-0000-1000-8000-%012x" % (number, gpu.device_id[2:], gpu.gpu_id))
                for number, gpu in enumerate(seen)]

    def _write_tools(self):
        self._write_tool("rocm-smi", self.rocm_smi_stdout(), self._rocm_smi_stderr(), 0)
        gpus_lines = "".join("%d %s %s\n" % (g.index, g.dev, "lost" if g.lost else "vanished" if g.vanished else "ok")
                             for g in self.gpus)
        _put(self.tool_dir("rocm-smi"), "gpus", gpus_lines)
        _put(self.tool_dir("rocm-smi"), "garbage_stdout", self._garbage())
        if self.state["amd_smi"]:
            self._write_tool("amd-smi", json.dumps(self.amd_smi_document(), indent=4) + "\n", "", 0)
            static = os.path.join(self.tool_dir("amd-smi"), "static")
            os.makedirs(static, exist_ok=True)
            _put(static, "stdout", json.dumps(self.amd_smi_document("static"), indent=4) + "\n")
            _put(static, "rc", "0\n")
            listing = os.path.join(self.tool_dir("amd-smi"), "list")
            os.makedirs(listing, exist_ok=True)
            _put(listing, "stdout", json.dumps(self.amd_smi_list(), indent=4) + "\n")
            _put(listing, "rc", "0\n")
            _put(self.tool_dir("amd-smi"), "gpus", gpus_lines)
            _put(self.tool_dir("amd-smi"), "garbage_stdout", self._garbage())

    def _write_tool(self, tool, stdout, stderr, rc):
        override = self.state["tool"][tool]["override"] or {}
        d = self.tool_dir(tool)
        out = override.get("stdout", stdout)
        _put(d, "stdout", out.encode("utf-8") if isinstance(out, str) else out)
        _put(d, "stderr", override.get("stderr", stderr))
        _put(d, "rc", "%d\n" % override.get("rc", rc))

    def _garbage(self):
        """Real pieces, broken: a rocm-smi JSON line cut in half between concise-table text lines."""
        doc = self.rocm_smi_stdout().strip() or (json.dumps({"card0": self._template(self.gpus[0])}) if self.gpus else "{")
        table = [l for l in fixtures.body_lines("rocm-smi", fixtures.EXPECTED_INTEGER) if l.startswith(("=", "GPU "))]
        return "\n".join(table[:2] + [doc[: len(doc) // 2]] + table[2:]) + "\n"

    def set_tool_mode(self, mode, tool="rocm-smi", rc=None, delay=None, stderr=None, subcommand=None):
        """replay | hang | slow (``delay`` s, then replay) | fail (``stderr``/``rc``) | garbage | empty; with
        ``subcommand`` (amd-smi ``list``, ``static``) only for that one."""
        if mode not in MODES:
            raise ValueError("mode must be one of %s" % ", ".join(MODES))
        if tool not in self.tools:
            raise ValueError("%s has no %s" % (self.name, tool))
        d = self.tool_dir(tool)
        if subcommand:
            d = os.path.join(d, subcommand)
            _put(d, "mode", mode + "\n")
            if mode == "fail":
                _put(d, "fail_rc", "%d\n" % (1 if rc is None else rc))
                _put(d, "fail_stderr", stderr or "")
            return
        _put(d, "mode", mode + "\n")
        if mode == "slow":
            _put(d, "delay", "%s\n" % (2 if delay is None else delay))
        if mode == "fail":
            _put(d, "fail_rc", "%d\n" % (1 if rc is None else rc))
            if stderr is not None:
                _put(d, "fail_stderr", stderr)
        elif rc is not None:
            self.set_tool_output(tool, rc=rc)
        self.state["tool"][tool]["mode"] = mode
        self._save()

    def set_tool_output(self, tool="rocm-smi", stdout=None, stderr=None, rc=None, fixture=None):
        """Replace what ``replay`` prints; ``fixture`` replays a JSON recording byte for byte."""
        override = dict(self.state["tool"][tool]["override"] or {})
        if fixture is not None:
            kind = "amd-smi" if tool == "amd-smi" else "rocm-smi"
            override["stdout"] = fixtures.text(kind, fixtures.path(kind, fixture).name)
        if stdout is not None:
            override["stdout"] = stdout
        if stderr is not None:
            override["stderr"] = stderr
        if rc is not None:
            override["rc"] = rc
        self.state["tool"][tool]["override"] = override
        self._write_tools()
        self._save()

    def reset_tool(self, tool="rocm-smi"):
        """Back to replaying the rig's own recording, mode replay."""
        self.state["tool"][tool]["override"] = None
        for sub in ("list", "static"):
            if os.path.exists(os.path.join(self.tool_dir(tool), sub, "mode")):
                os.unlink(os.path.join(self.tool_dir(tool), sub, "mode"))
        self.set_tool_mode("replay", tool)
        self._write_tools()
        self._save()

    def break_resetclocks(self, broken=True):
        """``rocm-smi --resetclocks`` still says "Successfully reset clocks" but writes nothing."""
        marker = os.path.join(self.tool_dir("rocm-smi"), "resetclocks_broken")
        if broken:
            _put(self.tool_dir("rocm-smi"), "resetclocks_broken", "")
        elif os.path.exists(marker):
            os.unlink(marker)
        self.state["resetclocks_broken"] = bool(broken)
        self._save()

    def tool_calls(self, tool="rocm-smi"):
        """The argument lists the stand-in was called with (one string per call)."""
        with open(os.path.join(self.tool_dir(tool), "calls.log"), encoding="utf-8") as handle:
            return handle.read().splitlines()

    def clear_calls(self, tool=None):
        for name in ([tool] if tool else self.tools):
            _put(self.tool_dir(name), "calls.log", "")

    # ------------------------------------------------------------------ sysfs

    def _write_sysfs(self):
        root = self.sys_root
        os.makedirs(root, exist_ok=True)
        sysfs.write(root, "class/drm/version", "drm 1.1.0 20060810\n")
        sysfs.symlink(root, "class/kfd/kfd", "../../%s" % sysfs.KFD_DIR)
        sysfs.write(root, sysfs.KFD_DIR + "/topology/generation_id", "1\n")
        sysfs.write(root, sysfs.KFD_DIR + "/topology/system_properties", "platform_oem 0\nplatform_id 0\nplatform_rev 0\n")
        sysfs.write(root, sysfs.KFD_DIR + "/topology/nodes/0/gpu_id", "0\n")
        sysfs.write(root, sysfs.KFD_DIR + "/topology/nodes/0/properties", sysfs.kfd_properties())
        os.makedirs(os.path.join(root, sysfs.KFD_DIR, "proc"), exist_ok=True)
        os.makedirs(os.path.join(root, "bus/pci/drivers/amdgpu"), exist_ok=True)
        if self.state["bmc"]:
            self._write_bmc()
        for gpu in self.gpus_by_position:
            self._write_gpu(gpu)

    def _write_bmc(self):
        root, bdf = self.sys_root, "0000:02:00.0"
        dev = sysfs.dev_rel(bdf)
        ids = dict(vendor=0x1A03, device=0x2000, subsystem_vendor=0x1A03, subsystem_device=0x2000)
        sysfs.write(root, dev + "/vendor", "0x1a03\n")
        sysfs.write(root, dev + "/device", "0x2000\n")
        sysfs.write(root, dev + "/class", "0x030000\n")
        sysfs.write(root, dev + "/revision", "0x41\n")
        sysfs.write(root, dev + "/subsystem_vendor", "0x1a03\n")
        sysfs.write(root, dev + "/subsystem_device", "0x2000\n")
        sysfs.write(root, dev + "/boot_vga", "1\n")
        sysfs.write(root, dev + "/uevent", sysfs.uevent("ast", bdf=bdf, **ids))
        sysfs.write(root, dev + "/config", sysfs.config_space(revision=0x41, class_code=0x030000, bus=2, **ids))
        sysfs.write(root, dev + "/power/runtime_status", "unsupported\n")
        sysfs.write(root, dev + "/power/control", "auto\n")
        sysfs.symlink(root, dev + "/driver", "../../../bus/pci/drivers/ast")
        sysfs.symlink(root, "bus/pci/drivers/ast/" + bdf, "../../../../" + dev)
        sysfs.symlink(root, "bus/pci/devices/" + bdf, "../../../" + dev)
        sysfs.write(root, dev + "/drm/card0/dev", "226:0\n")
        sysfs.write(root, dev + "/drm/card0/uevent", "MAJOR=226\nMINOR=0\nDEVNAME=dri/card0\nDEVTYPE=drm_minor\n")
        sysfs.symlink(root, dev + "/drm/card0/device", "../..")
        sysfs.symlink(root, "class/drm/card0", "../../%s/drm/card0" % dev)
        sysfs.write(root, dev + "/drm/card0/card0-VGA-1/status", "connected\n")
        sysfs.write(root, dev + "/drm/card0/card0-VGA-1/enabled", "enabled\n")
        sysfs.symlink(root, "class/drm/card0-VGA-1", "../../%s/drm/card0/card0-VGA-1" % dev)

    def _write_gpu(self, gpu):
        root, dev = self.sys_root, gpu.dev
        dump = fixtures.sysfs_dump(self.state["sysfs_dump"])
        power_input = "Current Socket Graphics Package Power (W)" in self._template(gpu)
        for rel, content in dump.items():
            rel = sysfs.rename_hwmon(rel, gpu.hwmon)
            if power_input and rel.endswith("/power1_average"):
                rel = rel[: -len("average")] + "input"
            sysfs.write(root, dev + "/" + rel, content)
        vendor, device = 0x1002, int(gpu.device_id, 16)
        sv, sd, rev = int(gpu.subsystem_vendor, 16), int(gpu.subsystem_device, 16), int(gpu.revision, 16)
        ident = {
            "vendor": "0x1002\n", "device": "%s\n" % gpu.device_id, "class": "0x030000\n",
            "revision": "%s\n" % gpu.revision, "subsystem_vendor": "%s\n" % gpu.subsystem_vendor,
            "subsystem_device": "%s\n" % gpu.subsystem_device, "boot_vga": "0\n", "numa_node": "-1\n",
            "uevent": sysfs.uevent("amdgpu", vendor, device, sv, sd, gpu.bdf),
            "mem_info_vram_total": "%d\n" % gpu.vram_total,
            "power_dpm_force_performance_level": "%s\n" % gpu.perf_level,
            "power/control": "auto\n",
            "vbios_version": "%s\n" % (self._template(gpu).get("VBIOS version") or dump.get("vbios_version", "").strip()),
            "hwmon/hwmon%d/name" % gpu.hwmon: "amdgpu\n",
        }
        if "modalias" in dump:
            ident["modalias"] = sysfs.uevent("amdgpu", vendor, device, sv, sd, gpu.bdf).splitlines()[-1].split("=", 1)[1] + "\n"
        if gpu.unique_id:
            ident["unique_id"] = "%016x\n" % int(gpu.unique_id, 16)
        for rel, content in ident.items():
            sysfs.write(root, dev + "/" + rel, content)
        self._write_config(gpu)
        self._write_metrics(gpu)
        sysfs.symlink(root, dev + "/hwmon/hwmon%d/device" % gpu.hwmon, "../..")
        sysfs.symlink(root, "class/hwmon/hwmon%d" % gpu.hwmon, "../../%s/hwmon/hwmon%d" % (dev, gpu.hwmon))
        sysfs.symlink(root, dev + "/driver", "../../../bus/pci/drivers/amdgpu")
        sysfs.symlink(root, "bus/pci/drivers/amdgpu/" + gpu.bdf, "../../../../" + dev)
        sysfs.symlink(root, "bus/pci/devices/" + gpu.bdf, "../../../" + dev)
        card, render = "card%d" % gpu.card, "renderD%d" % gpu.render_minor
        for minor_name, minor in ((card, gpu.card), (render, gpu.render_minor)):
            sysfs.write(root, "%s/drm/%s/dev" % (dev, minor_name), "226:%d\n" % minor)
            sysfs.write(root, "%s/drm/%s/uevent" % (dev, minor_name),
                        "MAJOR=226\nMINOR=%d\nDEVNAME=dri/%s\nDEVTYPE=drm_minor\n" % (minor, minor_name))
            sysfs.symlink(root, "%s/drm/%s/device" % (dev, minor_name), "../..")
            sysfs.symlink(root, "class/drm/" + minor_name, "../../%s/drm/%s" % (dev, minor_name))
        connector = "%s-DP-1" % card
        sysfs.write(root, "%s/drm/%s/%s/status" % (dev, card, connector), "disconnected\n")
        sysfs.write(root, "%s/drm/%s/%s/enabled" % (dev, card, connector), "disabled\n")
        sysfs.symlink(root, "class/drm/" + connector, "../../%s/drm/%s/%s" % (dev, card, connector))
        node = "%s/topology/nodes/%d" % (sysfs.KFD_DIR, gpu.node)
        sysfs.write(root, node + "/gpu_id", "%d\n" % gpu.gpu_id)
        sysfs.write(root, node + "/properties", sysfs.kfd_properties(gpu))

    def _write_config(self, gpu):
        cfg = sysfs.config_space(0x1002, int(gpu.device_id, 16), int(gpu.revision, 16), 0x030000,
                                 int(gpu.subsystem_vendor, 16), int(gpu.subsystem_device, 16),
                                 int(gpu.bdf[5:7], 16), lost=gpu.lost)
        sysfs.write(self.sys_root, gpu.dev + "/config", cfg, mode=0o644)

    def _write_metrics(self, gpu):
        root, dev = self.sys_root, gpu.dev
        dump = fixtures.sysfs_dump(self.state["sysfs_dump"])
        sysfs.write(root, dev + "/mem_info_vram_used", "%d\n" % self.vram_used(gpu))
        sysfs.write(root, dev + "/power/runtime_status", "suspended\n" if gpu.suspended else "active\n")
        hw = "hwmon/hwmon%d/" % gpu.hwmon
        socket_power = "Current Socket Graphics Package Power (W)" in self._template(gpu)
        power_file = hw + ("power1_input" if socket_power else "power1_average")
        values = {"gpu_busy_percent": gpu.busy, hw + "temp1_input": _milli(gpu.temp_edge),
                  hw + "temp2_input": _milli(gpu.temp_junction), hw + "temp3_input": _milli(gpu.temp_mem),
                  power_file: None if gpu.power_w is None else int(round(gpu.power_w * 1e6))}
        for rel, content in dump.items():  # restore what a suspend removed
            rel = sysfs.rename_hwmon(rel, gpu.hwmon)
            if sysfs.SUSPENDED_UNREADABLE.match(rel):
                if rel.endswith("power1_average") and power_file.endswith("power1_input"):
                    rel = power_file
                values.setdefault(rel, None)
                if values[rel] is None:
                    values[rel] = content.strip()
        for rel, value in values.items():
            if value is None:
                continue
            if gpu.suspended:
                sysfs.remove(root, dev + "/" + rel)
            else:
                sysfs.write(root, dev + "/" + rel, "%s\n" % value)

    # ------------------------------------------------------------------ VRAM holders (KFD)

    def _held(self, gpu):
        return sum(per.get(str(gpu.gpu_id), 0) for per in self.state["holders"].values())

    def vram_used(self, gpu):
        gpu = self.gpu(gpu)
        return gpu.vram_used + self._held(gpu)

    def add_vram_holder(self, pid, gpu, nbytes):
        """A process holding ``nbytes`` of VRAM on a GPU: kfd/proc/<pid>/vram_<gpu_id> (0 on the others)."""
        gpu = self.gpu(gpu)
        per = self.state["holders"].setdefault(str(pid), {})
        per[str(gpu.gpu_id)] = per.get(str(gpu.gpu_id), 0) + int(nbytes)
        self._write_holders()
        self._write_metrics(gpu)
        self._write_tools()
        self._save()
        return os.path.join(self.sys_root, sysfs.KFD_DIR, "proc", str(pid), "vram_%d" % gpu.gpu_id)

    def remove_vram_holder(self, pid):
        self.state["holders"].pop(str(pid), None)
        shutil.rmtree(os.path.join(self.sys_root, sysfs.KFD_DIR, "proc", str(pid)), ignore_errors=True)
        for gpu in self.gpus_by_position:
            self._write_metrics(gpu)
        self._write_tools()
        self._save()

    def _write_holders(self):
        for pid, per in self.state["holders"].items():
            base = "%s/proc/%s/" % (sysfs.KFD_DIR, pid)
            sysfs.write(self.sys_root, base + "pasid", "%d\n" % (32768 + int(pid) % 1000))
            for gpu in self.gpus_by_position:
                sysfs.write(self.sys_root, base + "vram_%d" % gpu.gpu_id, "%d\n" % per.get(str(gpu.gpu_id), 0))
                sysfs.write(self.sys_root, base + "sdma_%d" % gpu.gpu_id, "0\n")

    # ------------------------------------------------------------------ faults

    def lose_gpu(self, gpu):
        """The GPU fell off the bus: config space reads all-ones and the tool drops the card."""
        gpu = self.gpu(gpu)
        gpu.lost = True
        self._write_config(gpu)
        self._write_tools()
        self._save()
        return gpu

    def vanish_from_tool(self, gpu):
        """The tool no longer reports the GPU (its reads fail); sysfs still looks fine."""
        gpu = self.gpu(gpu)
        gpu.vanished = True
        self._write_tools()
        self._save()
        return gpu

    def heal_gpu(self, gpu):
        """Undo lose_gpu / vanish_from_tool / suspend_gpu / drop_metrics."""
        gpu = self.gpu(gpu)
        gpu.lost = gpu.vanished = gpu.suspended = gpu.drop_metrics = False
        self._write_config(gpu)
        self._write_metrics(gpu)
        self._write_tools()
        self._save()
        return gpu

    def smu_failure(self, gpu, fixture=fixtures.DEFAULT_SMU_DMESG, age_s=0.0, span_s=1.0,
                    only_gpu_lines=True, drop_metrics=False):
        """Append a recording's real SMU-failure lines, re-addressed to this GPU, stamped now - age_s.

        ``fixture``: "smu_0xffffffff_hanged" (default, Navi 2x), "rocm5.7_2x7900xtx", "mi300x",
        or any dmesg recording. ``drop_metrics`` also makes the tool drop the SMU-backed keys for
        it (what rocm-smi does while the SMU hangs).
        """
        gpu = self.gpu(gpu)
        name = fixtures.resolve_smu_fixture(fixture)
        messages = kernel.recording_for_gpu(name, gpu.bdf, only_gpu_lines=only_gpu_lines)
        lines = kernel.stamp(messages, age_s=age_s, span_s=span_s)
        kernel.merge_into(self.kernel_log, lines)
        if drop_metrics:
            gpu.drop_metrics = True
            self._write_tools()
            self._save()
        return lines

    def kernel_lines(self, lines, gpu=None, bdf=None, age_s=0.0, span_s=1.0, only_gpu_lines=True):
        """Append kernel lines stamped now - ``age_s``: a dmesg recording's name or a list of messages.

        A recording is re-addressed to ``gpu``/``bdf`` when given; in plain messages ``{bdf}`` is
        replaced by the GPU's address.
        """
        target = self.gpu(gpu).bdf if gpu is not None else bdf
        if isinstance(lines, str):
            name = fixtures.path("dmesg", lines).name
            if target:
                messages = kernel.recording_for_gpu(name, target, only_gpu_lines=only_gpu_lines)
            else:
                messages = fixtures.dmesg_messages(name)
        else:
            messages = [(None, m.replace("{bdf}", target or "")) for m in lines]
        stamped = kernel.stamp(messages, age_s=age_s, span_s=span_s)
        kernel.merge_into(self.kernel_log, stamped)
        return stamped

    def set_temperature(self, gpu, celsius, junction=None, mem=None):
        gpu = self.gpu(gpu)
        gpu.temp_edge = float(celsius)
        gpu.temp_junction = float(junction) if junction is not None else max(gpu.temp_junction or 0, float(celsius) + 2)
        if mem is not None:
            gpu.temp_mem = float(mem)
        return self._metric_changed(gpu, "temp")

    def set_busy(self, gpu, percent):
        gpu = self.gpu(gpu)
        gpu.busy = int(percent)
        return self._metric_changed(gpu, "busy")

    def set_vram_used(self, gpu, nbytes):
        gpu = self.gpu(gpu)
        gpu.vram_used = int(nbytes)
        return self._metric_changed(gpu, "vram")

    def set_perf_level(self, gpu, level):
        """sysfs power_dpm_force_performance_level (and the tool's "Performance Level")."""
        gpu = self.gpu(gpu)
        gpu.perf_level = level
        sysfs.write(self.sys_root, gpu.dev + "/power_dpm_force_performance_level", level + "\n")
        return self._metric_changed(gpu, "perf")

    def perf_level(self, gpu):
        with open(self.sys_path(self.gpu(gpu).dev, "power_dpm_force_performance_level")) as handle:
            return handle.read().strip()

    def _metric_changed(self, gpu, what):
        if what not in gpu.overrides:
            gpu.overrides.append(what)
        self._write_metrics(gpu)
        self._write_tools()
        self._save()
        return gpu

    def suspend_gpu(self, gpu):
        """Runtime-suspended (BACO/D3): power/runtime_status "suspended".

        A real kernel answers hwmon and gpu_busy_percent reads with EPERM then; here those files
        are REMOVED while suspended (reads fail with ENOENT even as root, where permissions would
        not stop a read). The tool drops the card's power-managed keys and prints the recorded
        ``Expected integer value from monitor`` lines on stderr.
        """
        gpu = self.gpu(gpu)
        gpu.suspended = True
        self._write_metrics(gpu)
        self._write_tools()
        self._save()
        return gpu

    def resume_gpu(self, gpu):
        gpu = self.gpu(gpu)
        gpu.suspended = False
        self._write_metrics(gpu)
        self._write_tools()
        self._save()
        return gpu

    # ------------------------------------------------------------------ ramdisk and inputs

    def ramdisk_path(self, step, name):
        if self.state["ramdisk_layout"] == "per_step":
            return os.path.join(self.ramdisk_root, step_folder(step, self.steps.get(step_number(step))), name)
        return os.path.join(self.ramdisk_root, name)

    def write_ramdisk(self, step, files=None):
        """Write step files to the ramdisk; ``files`` None = every file the step lists (its ramdisk
        files, and its input files that live under ``inputs_root``)."""
        written = []
        if files is None:
            spec = self.steps.get(step_number(step), {})
            for path in spec.get("inputs", []):
                if _inside(path, self.inputs_root):
                    written.append(_put_file(path, _default_content(path)))
            files = {name: _default_content(name) for name in spec.get("ramdisk", [])}
        for name, content in files.items():
            written.append(_put_file(self.ramdisk_path(step, name), content))
        return written

    def remove_ramdisk_file(self, step, name):
        path = self.ramdisk_path(step, name)
        if os.path.lexists(path):
            os.unlink(path)
        return path

    def remove_input(self, name):
        path = self.input_path(name)
        if os.path.lexists(path):
            os.unlink(path)
        return path

    def corrupt_json(self, step, name):
        """Truncate a JSON step file mid-document (as a writer killed half-way leaves it)."""
        path = self.ramdisk_path(step, name)
        text = open(path, encoding="utf-8").read() if os.path.exists(path) else json.dumps(_history())
        _put_file(path, text[: max(1, len(text) // 2)])
        return path

    def symlink_out(self, step, name, target=None):
        """Replace a step file with a symlink leaving the ramdisk (default: a file in <rig>/outside/)."""
        path = self.ramdisk_path(step, name)
        if target is None:
            target = os.path.join(self.path, "outside", name)
            _put_file(target, _default_content(name))
        if os.path.lexists(path):
            os.unlink(path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(target, path)
        return path

    # ------------------------------------------------------------------ caches

    def add_caches(self, user=DEFAULT_USERS[0], with_symlink_trap=True):
        """GPU runtime caches in ``home/<user>`` and, with the trap, symlinks out to precious files.

        Returns {"home", "caches": [dirs], "files": [paths], "traps": [links], "precious": {path: sha256}}.
        """
        home = self.home(user)
        if user not in self.state["users"]:
            self.state["users"].append(user)
        files = {
            ".cache/hip_1234/kernel_gfx1032_0.hsaco": 3072,
            ".cache/hip_1234/kernel_gfx1032_1.hsaco": 2048,
            ".cache/comgr_cache/5f3a9c1e7b2d4a60.co": 4096,
            ".cache/comgr_cache/9c1e7b2d4a605f3a.co": 1024,
            ".cache/miopen/2.19.0/gfx1032_14.ukdb": 8192,
            ".cache/miopen/2.19.0/gfx1032_14.ukdb-shm": 512,
            ".config/miopen/gfx1032_14.HIP.3_2_0_.ufdb.txt": 1536,
            ".config/miopen/gfx1032_14.HIP.3_2_0_.udb.txt": 768,
            ".config/miopen/miopen.udb.lock": 0,
        }
        paths = []
        for rel, size in files.items():
            data = hashlib.sha256(rel.encode()).digest() * (size // 32 + 1)
            paths.append(_put_file(os.path.join(home, rel), data[:size]))
        # Not a cache: must survive any cleanup.
        keep = _put_file(os.path.join(home, ".cache/pip/keep-me.txt"), "not a GPU cache\n")
        out = {"home": home, "files": paths, "keep": [keep], "traps": [], "precious": {},
               "caches": [os.path.join(home, p)
                          for p in (".cache/hip_1234", ".cache/comgr_cache", ".cache/miopen", ".config/miopen")]}
        if with_symlink_trap:
            out["precious_dir"], out["precious"], out["traps"] = self.symlink_traps(
                user, (".cache/hip_5678", ".cache/miopen/2.19.0/shared_db"),
                (("dataset.parquet", b"PAR1" + b"\x00" * 2044), ("model.ckpt", os.urandom(4096)),
                 ("sub/notes.txt", b"do not delete\n")))
        self.state["caches"][user] = out
        self._save()
        return out

    def symlink_traps(self, user, links, files):
        """Precious ``files`` [(name, bytes)] under <rig>/precious/<user> and symlinks at ``links`` (relative to the
        user's home) pointing at that folder: what a cleanup that followed links would destroy.
        Returns (precious folder, {precious file: sha256}, [link paths])."""
        home, precious, digests, traps = self.home(user), os.path.join(self.path, "precious", user), {}, []
        for rel, content in files:
            digests[_put_file(os.path.join(precious, rel), content)] = hashlib.sha256(content).hexdigest()
        for link in links:
            full = os.path.join(home, link)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            if os.path.lexists(full):
                os.unlink(full)
            os.symlink(os.path.relpath(precious, os.path.dirname(full)), full)
            traps.append(full)
        return precious, digests, traps

    def precious_intact(self, user=DEFAULT_USERS[0]):
        """Every file the cache symlinks point at is still there, unchanged."""
        info = self.state["caches"].get(user) or {}
        for full, digest in info.get("precious", {}).items():
            if os.path.islink(full) or not os.path.isfile(full):
                return False
            with open(full, "rb") as handle:
                if hashlib.sha256(handle.read()).hexdigest() != digest:
                    return False
        return True

    # ------------------------------------------------------------------ teardown

    def destroy(self):
        """Remove the rig folder and a /dev/shm ramdisk it created."""
        if self.state.get("owns_ramdisk"):
            shutil.rmtree(self.ramdisk_root, ignore_errors=True)
        shutil.rmtree(self.path, ignore_errors=True)

    def __repr__(self):
        return "Rig(%r, %d GPUs, %s)" % (self.name, len(self.gpus_by_position), self.path)


# ---------------------------------------------------------------------- helpers

def scratch_dir(prefix="simrig-", min_free=256 * 1024 * 1024):
    """A fresh folder for rigs: on /dev/shm when it has room (a 12-GPU rig is ~1100 small files,
    an order of magnitude faster to lay out on tmpfs), else in the system temp folder."""
    try:
        st = os.statvfs("/dev/shm")
        if os.access("/dev/shm", os.W_OK) and st.f_bavail * st.f_frsize >= min_free:
            return tempfile.mkdtemp(prefix=prefix, dir="/dev/shm")
    except OSError:
        pass
    return tempfile.mkdtemp(prefix=prefix)


def collect_orphans(shm="/dev/shm"):
    """Remove /dev/shm ramdisks of rigs whose folder is gone (a rig removed without destroy()).

    Returns the folders removed. Only folders named simrig-* holding an owner file are touched.
    """
    removed = []
    try:
        names = os.listdir(shm)
    except OSError:
        return removed
    for entry in names:
        folder = os.path.join(shm, entry)
        if not entry.startswith("simrig-") or os.path.islink(folder):
            continue
        try:
            with open(os.path.join(folder, OWNER_FILE), encoding="utf-8") as handle:
                owner = handle.read().strip()
        except OSError:
            continue
        if owner and not os.path.exists(os.path.join(owner, STATE_FILE)) and not os.path.isdir(owner):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def on_tmpfs(path, mountinfo="/proc/self/mountinfo"):
    """Whether ``path`` (or the nearest existing folder above it) is on a tmpfs."""
    real = os.path.realpath(path)
    best, fstype = "", None
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                fields = line.split(" ")
                if "-" not in fields[6:]:
                    continue
                point = fields[4].replace("\\040", " ")
                sep = fields.index("-", 6)
                if _inside(real, point) and len(point) >= len(best):
                    best, fstype = point, fields[sep + 1]
    except OSError:
        return False
    return fstype == "tmpfs"


def _inside(path, base):
    base = base.rstrip("/") or "/"
    return path == base or path.startswith(base + "/") or base == "/"


def _put(folder, name, content):
    return _put_file(os.path.join(folder, name), content)


def _put_file(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.islink(path):
        os.unlink(path)
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(path, mode) as handle:
        handle.write(content)
    return path


def _float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value):
    number = _float(value)
    return None if number is None else int(number)


def _milli(celsius):
    return None if celsius is None else int(round(celsius * 1000))


def _same_host_amd_smi(ident):
    """The RX 6600 host recorded both rocm-smi (no metrics) and amd-smi (metrics): use the latter."""
    if ident["device_id"] != "0x73ff":
        return None
    return fixtures.load_json("amd-smi", fixtures.DEFAULT_AMD_SMI_METRIC)[0]


def _vram(card, ident):
    total = _int(card.get("VRAM Total Memory (B)"))
    used = _int(card.get("VRAM Total Used Memory (B)"))
    amd = _same_host_amd_smi(ident)
    if total is None:
        total = fixtures.RX6600_VRAM_TOTAL
    if used is None and amd:
        used = amd["mem_usage"]["used_vram"]["value"] * 1048576
    if used is None and _int(card.get("GPU Memory Allocated (VRAM%)")) is not None:
        used = total * _int(card["GPU Memory Allocated (VRAM%)"]) // 100
    return total, used or 0


def _temps(card, ident):
    temps = [_float(card.get("Temperature (Sensor %s) (C)" % s)) for s in ("edge", "junction", "memory")]
    amd = _same_host_amd_smi(ident)
    if amd:
        for i, key in enumerate(("edge", "hotspot", "mem")):
            if temps[i] is None and isinstance(amd["temperature"].get(key), dict):
                temps[i] = float(amd["temperature"][key]["value"])
    return temps


def _power(card, ident):
    for key in ("Current Socket Graphics Package Power (W)", "Average Graphics Package Power (W)"):
        value = _float(card.get(key))
        if value is not None:
            return value
    amd = _same_host_amd_smi(ident)
    if amd and isinstance(amd["power"].get("socket_power"), dict):
        return float(amd["power"]["socket_power"]["value"])
    return None


def _perf(card):
    level = card.get("Performance Level")
    return level if level in ("auto", "manual", "low", "high", "profile_standard", "profile_min_sclk",
                              "profile_min_mclk", "profile_peak", "perf_determinism") else "auto"


def _history():
    return {"epoch": [1, 2, 3], "loss": [0.912, 0.604, 0.511], "val_loss": [0.95, 0.71, 0.66]}


def _default_content(name):
    if name.endswith("_history.json"):
        return json.dumps(_history(), indent=2) + "\n"
    if name.endswith(".json"):
        return json.dumps({"run": "simrig", "seed": 7, "batch_size": 64}, indent=2) + "\n"
    if name.endswith(".parquet"):
        return b"PAR1" + bytes(range(256)) * 8 + b"PAR1"
    if name.endswith(".npy"):
        header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (64,), }"
        return b"\x93NUMPY\x01\x00v\x00" + header + b" " * (117 - len(header)) + b"\n" + b"\x00" * 256
    return "simrig step file %s\n" % name
