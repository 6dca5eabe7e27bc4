"""NVIDIA GPUs on a simulated rig, from recorded real ``nvidia-smi`` output (tests and demo only).

An NVIDIA rig is a ``Rig`` (ramdisk, inputs, homes, kernel log as ever) with NVIDIA GPUs added:
``build_nvidia_rig(root, name, gpus=8)`` (no AMD GPU), or ``add_nvidia(rig, gpus=2)`` beside a rig's
AMD GPUs (a two-vendor host). Their state lives in ``simrig.json`` under ``"nvidia"``, so
``NvidiaGpus(Rig.load(path))`` reopens them in another process. On disk::

    <rig>/bin/nvidia-smi                  POSIX sh stand-in (below)
    <rig>/nvidia-smi.d/                   stdout stderr rc | stdout.reset | mode delay | fail_stdout fail_stderr
                                          fail_rc | garbage_stdout | reset_broken | rmc_unsupported | calls.log
    <rig>/sys/devices/pci0000:00/<bdf>    vendor 0x10de, class 0x0300xx (0x0302xx for data-centre parts, as the
                                          recording's pci_base_class/pci_sub_class say), config space, driver ->
                                          nvidia, the card's HD-audio function <bdf with .1> (class 0x040300,
                                          snd_hda_intel), class/drm/card<N> from nvidia-drm
    <rig>/bin/nvidia-cuda-mps-control, <rig>/mps/{pipe,log,servers}, <rig>/proc/<pid>/{cmdline,status}
                                          MPS, when ``add_mps`` was called

The stand-in replays ``stdout``/``stderr``/``rc`` WHATEVER the arguments (``-q -x``, ``-q -x -d
PERFORMANCE``, ``--query-gpu=...``), except ``-rgc`` (prints "All done."; unless ``reset_broken``
exists, copies ``stdout.reset`` - the same document without user-defined clocks - over ``stdout``
and leaves a ``clocks_reset`` marker the rig reads back) and ``-rmc`` ("All done.", or NVIDIA's
"not supported" text and exit 3 with ``rmc_unsupported``). Modes as the AMD stand-ins: replay,
hang (ignores SIGTERM, a child holds stdout), slow, fail (the recorded "couldn't communicate with
the NVIDIA driver" text, exit 9), garbage (the XML cut in half), empty.

The XML is the recording's own text, one ``<gpu>`` block per rig GPU (cycling through the
recording's blocks): only the PCI address, UUID, minor number, processes and the fields a fault
sets change, with the recording's formatting kept. A recording that is not XML (the CSV, the
tables, the error texts) is replayed byte for byte, whatever the rig's GPUs.
"""

from __future__ import annotations

import os
import re
import zlib

from . import kernel, standin, sysfs

NVIDIA_SMI_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "training",
                              "nvidia-smi")
KERNEL_DIR = os.path.join(os.path.dirname(NVIDIA_SMI_DIR), "kernel-nvidia")
DEFAULT_XML = "telegraf_2x_rtx-a5000_590.44.01_q-x.xml"
DRIVER_DOWN = "shine-cluster-50_nvidia-smi_failed_to_communicate_with_driver.txt"
HANDLE_ERROR = "nvidia-docker-1553_query_one_gpu_unknown_error.txt"
HEALTHY_BOOT = "ollama-1769_multi_gpu_dmesg_healthy_nvidia_drm_uvm_load.txt"
XID79 = "gpu-burn-1_k40m_390.30_dmesg_aer_surprise_down_xid79.txt"
MODES = ("replay", "hang", "slow", "fail", "garbage", "empty")
TOOL = "nvidia-smi"

# Fields a GPU that stopped answering reads as "Unknown Error" in -q -x (ERR! in the table).
ERR_TAGS = ("product_name", "fan_speed", "performance_state", "gpu_temp", "power_draw", "average_power_draw",
            "instant_power_draw", "gpu_util", "memory_util", "compute_mode", "persistence_mode", "current_ecc",
            "current_mig", "display_active")

SCRIPT = r"""#!/bin/sh
# simrig nvidia-smi stand-in (tests only, never installed by the product): replays a recording of
# real nvidia-smi output from <rig>/nvidia-smi.d/ whatever the arguments. See tests/simrig/nvidia.py.
""" + standin.RIG_FROM_SELF + r"""rig=$(cd "$bindir/.." && pwd -P) || exit 127
d=$rig/nvidia-smi.d
printf '%s\n' "$*" >> "$d/calls.log" 2>/dev/null

mode=replay
[ -f "$d/mode" ] && read -r mode < "$d/mode"
case $mode in
""" + standin.HANG_AND_SLOW + r"""    fail)
        [ -f "$d/fail_stdout" ] && cat "$d/fail_stdout"
        [ -f "$d/fail_stderr" ] && cat "$d/fail_stderr" >&2
        rc=9
        [ -f "$d/fail_rc" ] && read -r rc < "$d/fail_rc"
        exit "$rc"
        ;;
esac

for arg in "$@"; do
    case $arg in
        -rgc|--reset-gpu-clocks)
            if [ ! -f "$d/reset_broken" ] && [ -f "$d/stdout.reset" ]; then
                cp "$d/stdout.reset" "$d/stdout" && : > "$d/clocks_reset"
            fi
            printf 'All done.\n'
            exit 0
            ;;
        -rmc|--reset-memory-clocks)
            if [ -f "$d/rmc_unsupported" ]; then
                cat "$d/rmc_unsupported"
                exit 3
            fi
            printf 'All done.\n'
            exit 0
            ;;
    esac
done

case $mode in
    garbage)
        [ -f "$d/garbage_stdout" ] && cat "$d/garbage_stdout"
        exit 0
        ;;
    empty)
        exit 0
        ;;
esac
[ -f "$d/stdout" ] && cat "$d/stdout"
[ -f "$d/stderr" ] && cat "$d/stderr" >&2
rc=0
[ -f "$d/rc" ] && read -r rc < "$d/rc"
exit "$rc"
"""

MPS_CONTROL = r"""#!/bin/sh
# simrig nvidia-cuda-mps-control front-end stand-in: get_server_list from <rig>/mps/servers.
self=$0
while [ -h "$self" ]; do self=$(readlink "$self"); done
rig=$(cd "${self%/*}/.." && pwd -P) || exit 127
read -r command
printf '%s %s\n' "$command" "${CUDA_MPS_PIPE_DIRECTORY:-}" >> "$rig/mps/commands.log"
[ -f "$rig/mps/daemon" ] || { echo "Cannot find MPS control daemon process" >&2; exit 1; }
case $command in
    get_server_list) cat "$rig/mps/servers" ;;
    *) exit 1 ;;
esac
"""


def recording(name):
    """A recording as nvidia-smi printed it (the training fixtures carry no header line)."""
    with open(os.path.join(NVIDIA_SMI_DIR, name), encoding="utf-8", newline="") as handle:
        return handle.read()


def recordings():
    return sorted(os.listdir(NVIDIA_SMI_DIR))


def split_xml(text):
    """(head, [gpu blocks], tail) of an ``nvidia-smi -q -x`` recording; blocks keep their own text."""
    starts = [m.start() for m in re.finditer(r"[ \t]*<gpu id=", text)]
    if not starts:
        return text, [], ""
    end = text.rfind("</gpu>") + len("</gpu>")
    blocks = []
    for n, start in enumerate(starts):
        stop = starts[n + 1] if n + 1 < len(starts) else end
        block = text[start:stop]
        blocks.append(block[:block.rfind("</gpu>") + len("</gpu>")])
    return text[:starts[0]], blocks, text[end:]


def _text(block, tag):
    match = re.search(r"<%s>([^<]*)</%s>" % (tag, tag), block)
    return match.group(1).strip() if match else None


def _sub(block, tag, value, count=1):
    return re.sub(r"(<%s>)[^<]*(</%s>)" % (tag, tag), lambda m: m.group(1) + value + m.group(2), block, count=count)


def smi_bus_id(bdf):
    """'0000:81:00.0' -> '00000000:81:00.0' (nvidia-smi's spelling)."""
    domain, bus, rest = bdf.split(":")
    return "%08X:%s:%s" % (int(domain, 16), bus.upper(), rest.upper())


def _mib(text):
    match = re.match(r"\s*(\d+)", text or "")
    return int(match.group(1)) if match else None


class NvidiaGpus(object):
    """The NVIDIA side of a rig: its GPUs (``index`` is nvidia-smi's), stand-in and faults."""

    def __init__(self, rig):
        self.rig = rig
        if "nvidia" not in rig.state:
            raise ValueError("%s has no NVIDIA GPUs (add_nvidia first)" % rig.name)
        if os.path.isdir(self.tool_dir):
            self._sync()

    # ------------------------------------------------------------------ state and places

    @property
    def state(self):
        return self.rig.state["nvidia"]

    @property
    def gpus(self):
        """GPUs in PCI order, each a dict (see ``add_nvidia``), with ``index`` as nvidia-smi numbers them."""
        return self.state["gpus"]

    def gpu(self, ref):
        """A GPU by nvidia-smi index (int) or PCI address."""
        for gpu in self.gpus:
            if (isinstance(ref, int) and gpu["index"] == ref) or str(ref).lower() in (gpu["bdf"], gpu["bdf"][5:]):
                return gpu
        raise KeyError("%s has no NVIDIA GPU %s" % (self.rig.name, ref))

    @property
    def tool_dir(self):
        return os.path.join(self.rig.path, "nvidia-smi.d")

    @property
    def nvidia_smi(self):
        return os.path.join(self.rig.bin_dir, TOOL)

    def host_vars(self):
        return {"preflight_nvidia_smi": self.nvidia_smi}

    def facts_args(self):
        """Arguments that point ``nvidia_gpu_facts`` at this rig."""
        out = {"nvidia_smi": self.nvidia_smi, "sysfs_root": self.rig.sys_root}
        if self.state.get("mps"):
            out.update(mps_pipe_dir=self.mps_dir("pipe"), mps_log_dir=self.mps_dir("log"),
                       mps_control=os.path.join(self.rig.bin_dir, "nvidia-cuda-mps-control"),
                       proc_root=os.path.join(self.rig.path, "proc"))
        return out

    def tool_calls(self):
        with open(os.path.join(self.tool_dir, "calls.log"), encoding="utf-8") as handle:
            return handle.read().splitlines()

    def _renumber(self):
        """nvidia-smi numbers, in PCI order, the GPUs the nvidia driver holds; the others have no index."""
        index = 0
        for gpu in sorted(self.gpus, key=lambda g: g["bdf"]):
            if gpu["driver"] == "nvidia":
                gpu["index"], index = index, index + 1
            else:
                gpu["index"] = None

    def _save(self):
        self._renumber()
        self.rig._save()

    # ------------------------------------------------------------------ the tool's answer

    def _template(self, gpu):
        _head, blocks, _tail = split_xml(recording(self.state["fixture"]))
        return blocks[gpu["template"] % len(blocks)]

    def _render_gpu(self, gpu, unlocked=False):
        block = self._template(gpu)
        block = re.sub(r'<gpu id="[^"]*">', '<gpu id="%s">' % smi_bus_id(gpu["bdf"]), block, count=1)
        block = _sub(block, "pci_bus_id", smi_bus_id(gpu["bdf"]))
        block = _sub(block, "pci_bus", gpu["bdf"][5:7].upper())
        block = _sub(block, "uuid", gpu["uuid"])
        block = _sub(block, "minor_number", str(gpu["minor"]))
        block = self._render_memory(block, gpu)
        if gpu["err"]:
            for tag in ERR_TAGS:
                block = _sub(block, tag, "Unknown Error")
        if gpu["ecc_volatile"] or gpu["ecc_aggregate"]:
            block = re.sub(r"<ecc_errors>.*?</ecc_errors>", lambda m: _ecc_block(m.group(0), gpu), block, count=1,
                           flags=re.S)
        if gpu["remap_pending"] or gpu["remap_failure"]:
            rows = "<remapped_rows><remapped_row_corr>0</remapped_row_corr><remapped_row_unc>%d</remapped_row_unc>" \
                   "<remapped_row_pending>%s</remapped_row_pending><remapped_row_failure>%s</remapped_row_failure>" \
                   "</remapped_rows>" % (1 if gpu["remap_pending"] else 0, "Yes" if gpu["remap_pending"] else "No",
                                         "Yes" if gpu["remap_failure"] else "No")
            block = re.sub(r"<remapped_rows>.*?</remapped_rows>|<remapped_rows>N/A</remapped_rows>", lambda m: rows,
                           block, count=1, flags=re.S)
        if gpu["locked"] and not unlocked:
            block = re.sub(r"(<clocks_(?:event|throttle)_reason_applications_clocks_setting>)Not Active",
                           r"\1Active", block, count=1)
        return block

    def _render_memory(self, block, gpu):
        """Processes as the rig holds them; used memory = the recording's own minus its processes, plus the rig's."""
        fb = re.search(r"<fb_memory_usage>.*?</fb_memory_usage>", block, re.S)
        recorded = sum(_mib(m) or 0 for m in re.findall(r"<used_memory>([^<]*)</used_memory>", block))
        if fb:
            total, reserved, used = (_mib(_text(fb.group(0), t)) for t in ("total", "reserved", "used"))
            base = max((used or 0) - recorded, 0)
            held = sum(p["mib"] for p in gpu["processes"])
            if total is not None:
                new_used = min(base + held, total - (reserved or 0))
                memory = _sub(_sub(fb.group(0), "used", "%d MiB" % new_used), "free",
                              "%d MiB" % (total - (reserved or 0) - new_used))
                block = block[:fb.start()] + memory + block[fb.end():]
        indent = re.search(r"\n([ \t]*)<processes>", block)
        pad = indent.group(1) if indent else "\t\t"
        inner = "".join(
            "\n%s\t<process_info>\n%s\t\t<gpu_instance_id>N/A</gpu_instance_id>\n%s\t\t<compute_instance_id>N/A"
            "</compute_instance_id>\n%s\t\t<pid>%d</pid>\n%s\t\t<type>C</type>\n%s\t\t<process_name>%s</process_name>\n"
            "%s\t\t<used_memory>%d MiB</used_memory>\n%s\t</process_info>"
            % (pad, pad, pad, pad, p["pid"], pad, pad, p["name"], pad, p["mib"], pad) for p in gpu["processes"])
        return re.sub(r"<processes>.*?</processes>", lambda m: "<processes>%s\n%s</processes>" % (inner, pad), block,
                      count=1, flags=re.S)

    def document(self, unlocked=False):
        """What ``nvidia-smi -q -x`` prints now (None for a recording that is not XML)."""
        text = recording(self.state["fixture"])
        head, blocks, tail = split_xml(text)
        if not blocks:
            return None
        shown = [g for g in self.gpus if g["driver"] == "nvidia" and not (g["lost"] or g["vanished"])]
        head = _sub(head, "attached_gpus", str(len(shown)))
        sep = re.match(r"[ \t]*", blocks[0]).group(0)
        body = "\n\n".join(sep + self._render_gpu(g, unlocked).lstrip() for g in shown)
        return head + body + tail

    def _stderr(self):
        template = recording(HANDLE_ERROR).strip()
        source = re.search(r"[0-9A-Fa-f]{4}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]", template).group(0)
        return "".join(template.replace(source, g["bdf"]) + "\n" for g in self.gpus if g["lost"])

    def _sync(self):
        """Read back what the stand-in changed by itself: -rgc since the last write unlocked every GPU."""
        marker = os.path.join(self.tool_dir, "clocks_reset")
        if os.path.exists(marker):
            for gpu in self.gpus:
                gpu["locked"] = False
            os.unlink(marker)

    def _write_tool(self):
        d = self.tool_dir
        override = self.state["override"] or {}
        document = self.document()
        stdout = document if document is not None else recording(self.state["fixture"])
        lost = any(g["lost"] for g in self.gpus)
        sysfs.write(d, "stdout", override.get("stdout", stdout))
        sysfs.write(d, "stdout.reset", override.get("stdout", self.document(unlocked=True) or stdout))
        sysfs.write(d, "stderr", override.get("stderr", self._stderr()))
        sysfs.write(d, "rc", "%d\n" % override.get("rc", 15 if lost else 0))
        sysfs.write(d, "garbage_stdout", stdout[: len(stdout) // 2])

    # ------------------------------------------------------------------ sysfs

    def _write_sysfs(self, gpu):
        root, dev = self.rig.sys_root, sysfs.dev_rel(gpu["bdf"])
        ids = dict(vendor=0x10DE, device=int(gpu["device_id"], 16), subsystem_vendor=int(gpu["subsystem_vendor"], 16),
                   subsystem_device=int(gpu["subsystem_device"], 16))
        files = {"vendor": "0x10de\n", "device": "%s\n" % gpu["device_id"], "class": "0x%06x\n" % gpu["pci_class"],
                 "revision": "0xa1\n", "subsystem_vendor": "%s\n" % gpu["subsystem_vendor"],
                 "subsystem_device": "%s\n" % gpu["subsystem_device"], "boot_vga": "0\n", "numa_node": "-1\n",
                 "power/runtime_status": "active\n", "power/control": "on\n",
                 "uevent": sysfs.uevent(gpu["driver"] or "", bdf=gpu["bdf"], class_code=gpu["pci_class"], **ids)}
        for rel, content in files.items():
            sysfs.write(root, dev + "/" + rel, content)
        sysfs.write(root, dev + "/config", sysfs.config_space(revision=0xA1, class_code=gpu["pci_class"],
                                                              bus=int(gpu["bdf"][5:7], 16), lost=gpu["lost"], **ids),
                    mode=0o644)
        sysfs.symlink(root, "bus/pci/devices/" + gpu["bdf"], "../../../" + dev)
        if gpu["driver"]:
            sysfs.symlink(root, dev + "/driver", "../../../bus/pci/drivers/" + gpu["driver"])
            sysfs.symlink(root, "bus/pci/drivers/%s/%s" % (gpu["driver"], gpu["bdf"]), "../../../../" + dev)
        else:
            sysfs.remove(root, dev + "/driver")
        card = "card%d" % gpu["card"]
        if gpu["driver"] == "nvidia":
            sysfs.write(root, "%s/drm/%s/dev" % (dev, card), "226:%d\n" % gpu["card"])
            sysfs.symlink(root, "%s/drm/%s/device" % (dev, card), "../..")
            sysfs.symlink(root, "class/drm/" + card, "../../%s/drm/%s" % (dev, card))
        else:
            sysfs.remove(root, "class/drm/" + card)
        audio = gpu["bdf"][:-1] + "1"
        adev = sysfs.dev_rel(audio)
        aids = {**ids, "device": 0x10F0}
        for rel, content in {"vendor": "0x10de\n", "device": "0x10f0\n", "class": "0x040300\n",
                             "uevent": sysfs.uevent("snd_hda_intel", bdf=audio, class_code=0x040300, **aids)}.items():
            sysfs.write(root, adev + "/" + rel, content)
        sysfs.write(root, adev + "/config", sysfs.config_space(revision=0xA1, class_code=0x040300,
                                                               bus=int(gpu["bdf"][5:7], 16), lost=gpu["lost"], **aids))
        sysfs.symlink(root, adev + "/driver", "../../../bus/pci/drivers/snd_hda_intel")
        sysfs.symlink(root, "bus/pci/devices/" + audio, "../../../" + adev)

    # ------------------------------------------------------------------ faults

    def _change(self, ref, **fields):
        self._sync()
        gpu = self.gpu(ref)
        gpu.update(fields)
        self._write_sysfs(gpu)
        self._save()
        self._write_tool()
        self.rig._save()
        return gpu

    def lose_gpu(self, ref, xid=True, age_s=60.0):
        """The GPU fell off the bus: config space all-ones, nvidia-smi cannot open it (the recorded
        "Unknown Error" line), and, with ``xid``, the recorded Xid 79 in the kernel log."""
        gpu = self._change(ref, lost=True)
        if xid:
            self.xid(gpu["bdf"], XID79, age_s=age_s)
        return gpu

    def vanish_gpu(self, ref):
        """nvidia-smi no longer lists the GPU (no message); sysfs still looks fine."""
        return self._change(ref, vanished=True)

    def answer_err(self, ref):
        """The GPU stopped answering: its key fields read "Unknown Error" (ERR! in the table)."""
        return self._change(ref, err=True)

    def ecc_error(self, ref, volatile=1, aggregate=None):
        """Uncorrectable ECC errors (DRAM): ``volatile`` since the driver loaded, ``aggregate`` in its lifetime."""
        return self._change(ref, ecc_volatile=volatile, ecc_aggregate=volatile if aggregate is None else aggregate)

    def remap_pending(self, ref, failure=False):
        """Row remapping pending (a reset applies it: a warning); ``failure``: it failed instead (see remap_failure)."""
        return self._change(ref, remap_pending=not failure, remap_failure=bool(failure))

    def remap_failure(self, ref):
        """Row remapping failed: no spare rows left (the GPU needs service)."""
        return self.remap_pending(ref, failure=True)

    def lock_clocks(self, ref):
        """Clocks locked with -lgc: the "applications clocks setting" (user-defined clocks) reason is active."""
        return self._change(ref, locked=True)

    def unbind(self, ref, driver="vfio-pci"):
        """Another driver (or none) holds the GPU: nvidia-smi no longer numbers it."""
        return self._change(ref, driver=driver)

    def heal_gpu(self, ref):
        return self._change(ref, lost=False, vanished=False, err=False, ecc_volatile=0, ecc_aggregate=0,
                            remap_pending=False, remap_failure=False, locked=False, driver="nvidia")

    def add_process(self, ref, pid, name="/usr/bin/python3", mib=1024):
        """A process holding ``mib`` MiB on the GPU (nvidia-smi's process list and used memory)."""
        gpu = self.gpu(ref)
        gpu["processes"].append({"pid": int(pid), "name": name, "mib": int(mib)})
        return self._change(ref)

    def remove_process(self, pid):
        self._sync()
        for gpu in self.gpus:
            gpu["processes"] = [p for p in gpu["processes"] if p["pid"] != int(pid)]
        self._save()
        self._write_tool()

    def driver_down(self):
        """nvidia-smi prints the recorded "couldn't communicate with the NVIDIA driver" text, exit 9."""
        self.set_output(stdout=_body(recording(DRIVER_DOWN)), stderr="", rc=9)

    def set_output(self, stdout=None, stderr=None, rc=None, fixture=None):
        """Replace what replay prints; ``fixture`` replays another recording byte for byte."""
        self._sync()
        override = dict(self.state["override"] or {})
        if fixture is not None:
            override["stdout"] = recording(fixture)
        for key, value in (("stdout", stdout), ("stderr", stderr), ("rc", rc)):
            if value is not None:
                override[key] = value
        self.state["override"] = override
        self._write_tool()
        self.rig._save()

    def set_mode(self, mode, delay=None, rc=None):
        if mode not in MODES:
            raise ValueError("mode must be one of %s" % ", ".join(MODES))
        sysfs.write(self.tool_dir, "mode", mode + "\n")
        if delay is not None:
            sysfs.write(self.tool_dir, "delay", "%s\n" % delay)
        if rc is not None:
            sysfs.write(self.tool_dir, "fail_rc", "%d\n" % rc)
        self.state["mode"] = mode
        self.rig._save()

    def reset_tool(self):
        self.state["override"] = None
        self.set_mode("replay")
        self._write_tool()

    def break_clock_reset(self, broken=True):
        """``nvidia-smi -rgc`` still says "All done." but the clocks stay locked."""
        _flag(self.tool_dir, "reset_broken", "" if broken else None)

    def rmc_unsupported(self, unsupported=True):
        """``-rmc`` on a pre-Ampere GPU: NVIDIA's "not supported" text and exit 3."""
        text = "".join("Setting locked memory clocks is not supported for GPU %s.\n" % smi_bus_id(g["bdf"])
                       for g in self.gpus)
        _flag(self.tool_dir, "rmc_unsupported", text if unsupported else None)

    def xid(self, ref, recording_name=XID79, age_s=60.0, source=None):
        """Replay the NVRM lines of a kernel-nvidia recording as if about this GPU (its address rewritten).

        ``source``: which GPU of the recording (``0000:00:07``, as NVRM spells it); default its first."""
        gpu = self.gpu(ref)
        with open(os.path.join(KERNEL_DIR, recording_name), encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        source = source or next(m.group(1) for m in (re.search(r"PCI:([0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2})", l)
                                                     for l in lines) if m)
        # the kernel's message starts at "NVRM:": the recording's stamps and syslog prefixes are dropped
        messages = [(kernel.line_seconds(l), l[l.index("NVRM:"):]) for l in lines
                    if "NVRM:" in l and (source in l or "Serial" in l)]
        uuid = re.compile(r"GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
        messages = [(s, uuid.sub(gpu["uuid"], m.replace(source, gpu["bdf"][:-2]))) for s, m in messages]
        kernel.merge_into(self.rig.kernel_log, kernel.stamp(messages, age_s=age_s))

    # ------------------------------------------------------------------ caches

    def add_cuda_caches(self, user=None, with_symlink_trap=True):
        """CUDA's JIT cache and the PyTorch/Triton kernel caches in ``home/<user>``, downloaded models beside
        them (data: never removed), and, with the trap, symlinks out to precious files (``rig.precious_intact``).

        Returns {"home", "caches": [dirs], "files", "keep": [paths never removed], "traps": [links], "precious"}.
        """
        rig = self.rig
        user = user or rig.state["users"][0]
        home = rig.home(user)
        if user not in rig.state["users"]:
            rig.state["users"].append(user)
        files = {
            ".nv/ComputeCache/index": 4096,
            ".nv/ComputeCache/3/a/5f2c1e9b7d4a6031": 24576,
            ".nv/ComputeCache/c/0/9b7d4a60315f2c1e": 8192,
            ".cache/torch/kernels/1f3b5d7a9c2e4f6081b3d5f7a9c1e3f5": 6144,
            ".triton/cache/6ad3f1c09e/_attn_fwd.cubin": 16384,
            ".triton/cache/6ad3f1c09e/_attn_fwd.json": 512,
        }
        paths = [sysfs.write(home, rel, (rel.encode() * (size // len(rel) + 1))[:size]) for rel, size in files.items()]
        keep = [sysfs.write(home, rel, content) for rel, content in (
            (".cache/torch/hub/checkpoints/resnet50-11ad3fa6.pth", b"PK\x03\x04 model weights"),
            (".cache/huggingface/hub/models--gpt2/refs/main", "607a30d783dfa663caf39e06633721c8d4cfcd7e\n"),
            (".nv/nvidia-application-profile-globals-rc", "# not a cache\n"))]
        out = {"home": home, "files": paths, "keep": keep, "traps": [], "precious": {},
               "caches": [os.path.join(home, p) for p in (".nv/ComputeCache", ".cache/torch/kernels", ".triton/cache")]}
        if with_symlink_trap:
            out["precious_dir"], out["precious"], out["traps"] = rig.symlink_traps(
                user, (".nv/ComputeCache/f/shared", ".cache/torch/kernels/shared"),
                (("dataset.parquet", b"PAR1" + b"\x00" * 2044), ("sub/notes.txt", b"do not delete\n")))
        # beside what add_caches laid out for the same user, so that rig.precious_intact(user) checks both
        info = rig.state["caches"].setdefault(user, {})
        info.setdefault("precious", {}).update(out["precious"])
        info["cuda"] = out
        rig._save()
        return out

    # ------------------------------------------------------------------ MPS

    def mps_dir(self, name):
        return os.path.join(self.rig.path, "mps", name)

    def add_mps(self, daemon=True, servers=((7001, 1000),), pipe_writable=True):
        """The MPS control daemon (PID file, control FIFO, /proc entry) and servers [(pid, uid)]."""
        proc = os.path.join(self.rig.path, "proc")
        for folder in ("pipe", "log"):
            os.makedirs(self.mps_dir(folder), exist_ok=True)
        pipe = self.mps_dir("pipe")
        _flag(os.path.join(self.rig.path, "mps"), "daemon", "" if daemon else None)
        _flag(pipe, "nvidia-cuda-mps-control.pid", "6001\n" if daemon else None)
        control = os.path.join(pipe, "control")
        if daemon and not os.path.exists(control):
            os.mkfifo(control)
        elif not daemon and os.path.exists(control):
            os.unlink(control)
        _process(proc, 6001, ["nvidia-cuda-mps-control", "-d"], 0, present=daemon)
        for pid, uid in servers:
            _process(proc, pid, ["nvidia-cuda-mps-server"], uid, present=daemon)
        sysfs.write(os.path.join(self.rig.path, "mps"), "servers", "".join("%d\n" % pid for pid, _uid in servers) if daemon else "")
        os.chmod(pipe, 0o755 if pipe_writable else 0o555)
        sysfs.write(self.rig.bin_dir, "nvidia-cuda-mps-control", MPS_CONTROL, mode=0o755)
        self.state["mps"] = {"daemon": bool(daemon), "servers": [list(s) for s in servers]}
        self.rig._save()


# ---------------------------------------------------------------------- building

def add_nvidia(rig, gpus=8, fixture=DEFAULT_XML, bus_start=0x41, bus_step=0x10, count_expected=True, boot_log=True):
    """Add ``gpus`` NVIDIA GPUs (from a recording's ``<gpu>`` blocks, cycled) to a rig; returns ``NvidiaGpus``."""
    if gpus < 1:
        raise ValueError("add at least one NVIDIA GPU")
    buses = [bus_start + i * bus_step for i in range(gpus)]
    taken = set(g.bdf for g in rig.gpus_by_position)
    if buses[-1] > 0xFF or any("0000:%02x:00.0" % b in taken for b in buses):
        raise ValueError("bus_start/bus_step give addresses outside 0-ff or taken by the rig's AMD GPUs")
    _head, blocks, _tail = split_xml(recording(fixture))
    base_card = 1 + max([g.card for g in rig.gpus_by_position] + [-1])
    entries = []
    for pos in range(gpus):
        block = blocks[pos % len(blocks)] if blocks else ""
        bdf = "0000:%02x:00.0" % buses[pos]
        device = (_text(block, "pci_device_id") or "223110DE")
        subsystem = (_text(block, "pci_sub_system_id") or "147E10DE")
        device_id = "0x%s" % device[:4].lower() if re.match(r"^[0-9A-Fa-f]{8}$", device) else "0x2231"
        sub_dev, sub_ven = (subsystem[:4].lower(), subsystem[4:].lower()) if re.match(r"^[0-9A-Fa-f]{8}$", subsystem) \
            else ("147e", "10de")
        base, sub = _text(block, "pci_base_class"), _text(block, "pci_sub_class")
        pci_class = (int(base) << 16 | int(sub) << 8) if base and sub and base.isdigit() and sub.isdigit() else 0x030000
        salt = zlib.crc32(("%s/%s" % (rig.name, bdf)).encode())
        entries.append({
            "position": pos, "index": pos, "bdf": bdf, "template": pos, "card": base_card + pos,
            "uuid": "GPU-%08x-%04x-%04x-%04x-%012x" % (salt, pos, salt & 0xFFFF, (salt >> 16) & 0xFFFF, salt * 7 + pos),
            "minor": (gpus - 1 - pos), "device_id": device_id, "subsystem_vendor": "0x" + sub_ven,
            "subsystem_device": "0x" + sub_dev, "pci_class": pci_class, "driver": "nvidia", "lost": False,
            "vanished": False, "err": False, "ecc_volatile": 0, "ecc_aggregate": 0, "remap_pending": False,
            "remap_failure": False, "locked": False, "processes": []})
    rig.state["nvidia"] = {"fixture": os.path.basename(fixture), "gpus": entries, "override": None, "mode": "replay"}
    if count_expected:
        rig.state["expected_gpu_count"] = len(rig.gpus_by_position) + gpus
    side = NvidiaGpus(rig)
    os.makedirs(side.tool_dir, exist_ok=True)
    sysfs.write(rig.bin_dir, TOOL, SCRIPT, mode=0o755)
    sysfs.write(side.tool_dir, "mode", "replay\n")
    sysfs.write(side.tool_dir, "calls.log", "")
    sysfs.write(side.tool_dir, "fail_stdout", _body(recording(DRIVER_DOWN)))
    sysfs.write(side.tool_dir, "fail_rc", "9\n")
    for gpu in entries:
        side._write_sysfs(gpu)
    side._save()
    side._write_tool()
    if boot_log:
        kernel.merge_into(rig.kernel_log, kernel.stamp(healthy_boot(entries), at_epoch=kernel.boot_epoch() + 5.5,
                                                       span_s=2.0))
    rig._save()
    return side


def build_nvidia_rig(root, name, gpus=8, fixture=DEFAULT_XML, amd_gpus=0, **rig_kwargs):
    """A rig with ``gpus`` NVIDIA GPUs (and ``amd_gpus`` AMD ones beside them); returns (rig, NvidiaGpus)."""
    from .rig import Rig
    rig = Rig.build(root, name, gpus=amd_gpus, **rig_kwargs)
    return rig, add_nvidia(rig, gpus=gpus, fixture=fixture)


def healthy_boot(gpus):
    """The recorded healthy nvidia-drm boot lines, once per GPU, re-addressed."""
    with open(os.path.join(KERNEL_DIR, HEALTHY_BOOT), encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    init = next(re.sub(r"^\[\s*\d+\.\d+\]\s?", "", l) for l in lines if "Initialized nvidia-drm" in l)
    source = re.search(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", init).group(0)
    uvm = [re.sub(r"^\[\s*\d+\.\d+\]\s?", "", l) for l in lines if "nvidia-uvm" in l or "nvidia_uvm" in l]
    out = []
    for gpu in gpus:
        out.append((None, re.sub(r"on minor \d+", "on minor %d" % gpu["card"], init.replace(source, gpu["bdf"]))))
    return out + [(None, line) for line in uvm]


def _ecc_block(block, gpu):
    """The recording's ECC block with DRAM uncorrectable counts set (v11+), or double-bit totals (v10)."""
    def section(name, count):
        def one(match):
            text = match.group(0)
            if "<double_bit>" in text:
                return re.sub(r"(<double_bit>.*?<total>)[^<]*(</total>)", lambda m: m.group(1) + str(count) + m.group(2),
                              text, count=1, flags=re.S)
            if "<dram_uncorrectable>" in text:
                return _sub(text, "dram_uncorrectable", str(count))
            return text.replace("</%s>" % name, "<dram_uncorrectable>%d</dram_uncorrectable></%s>" % (count, name))
        return one
    block = re.sub(r"<volatile>.*?</volatile>", section("volatile", gpu["ecc_volatile"]), block, count=1, flags=re.S)
    return re.sub(r"<aggregate>.*?</aggregate>", section("aggregate", gpu["ecc_aggregate"]), block, count=1, flags=re.S)


def _body(text):
    """A recording without the shell prompt line it was pasted with ("$ nvidia-smi")."""
    return "".join(line + "\n" for line in text.splitlines() if not line.startswith("$ "))


def _process(proc, pid, argv, uid, present=True):
    folder = os.path.join(proc, str(pid))
    if not present:
        for name in ("cmdline", "status"):
            if os.path.exists(os.path.join(folder, name)):
                os.unlink(os.path.join(folder, name))
        return
    sysfs.write(folder, "cmdline", b"\0".join(a.encode() for a in argv) + b"\0")
    sysfs.write(folder, "status", "Name:\t%s\nUid:\t%d\t%d\t%d\t%d\n" % (os.path.basename(argv[0])[:15], uid, uid, uid, uid))


def _flag(folder, name, content):
    """``folder/name`` holds ``content``, or is absent when it is None."""
    if content is None:
        sysfs.remove(folder, name)
    else:
        sysfs.write(folder, name, content)
