"""Load the recorded real tool output in tests/fixtures/gpu (see its SOURCES.md).

Everything a simulated rig shows comes from these recordings; this module only reads and
normalises them (``#`` header lines, ``==> path <==`` sysfs dumps, the different kernel-log
prefixes), it never makes numbers up.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import pathlib
import re

FIXTURES = pathlib.Path(os.environ.get("SIMRIG_FIXTURES") or pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "gpu")

DEFAULT_ROCM_SMI = "telegraf_rx6700xt_rocm602.json"
DEFAULT_AMD_SMI_METRIC = "rx6600_gfx1032_metric_proxmox.json"
DEFAULT_AMD_SMI_STATIC = "rx6600_gfx1032_static_proxmox.json"
AMD_SMI_LIST = "rocm6.3.1_list_json_strix_halo_gkm.json"  # the shape of one ``amd-smi list --json`` entry
DEFAULT_SYSFS_DUMP = "rx7800xt_sysfs_dump.txt"
DEFAULT_SMU_DMESG = "smu_0xffffffff_hanged_state_pcie_link_down_lkml-2025-11.txt"
MUTEX_FAILURE = "rocm5.2_stderr_mutex_init_failure_multigpu_rocm_smi_lib-88.txt"
EXPECTED_INTEGER = "rocm5.7.1_concise_w7900_expected_integer_legacy-rocm-build-2681.txt"
NO_JSON_DATA = "rocm6.x_json_showrasinfo_no_json_data_legacy-rocm-build-4374.txt"

# The RX 6600's real VRAM size (amd-smi metric on the RX 6600 host: total_vram 8176 MiB).
RX6600_VRAM_TOTAL = 8573157376

_BDF_RE = re.compile(r"\b([0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])\b")
_TS_RE = re.compile(r"^\[\s*(\d+)\.(\d+)\]\s?")
# The wall-clock prefix of a recorded line: syslog "Feb 25 19:15:17 minty kernel: ", "Jun 09 17:19:35 - kernel: ",
# "kvě 25 19:29:48 bc250 kernel: ", "Feb  2 08:03:20 kernel: " (no host), journalctl -o short-precise
# "maj 29 14:30:45.472809 buttran kernel: "; dmesg -T "[Wed Jun  8 16:34:49 2022] ";
# talosctl dmesg "192.168.2.205: kern:     err: [2023-12-14T11:16:10.461245972Z]: "; svlogd/socklog (Void Linux)
# "2026-09-11T19:39:22.96925 kern.err: ".
_SYSLOG_RE = re.compile(r"^(?:\S+\s+\d+\s+\d\d:\d\d:\d\d(?:\.\d+)?\s+(?:\S+\s+)?kernel:\s?"
                        r"|\[[^\[\]]*\d\d:\d\d:\d\d \d{4}\]\s?"
                        r"|(?:\S+: )?kern:\s+\w+: \[[^\[\]]+\]: "
                        r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)? kern\.\w+: )")
_COUNT_SUFFIX_RE = re.compile(r"\s+\d+\s*$")
# an unstamped kernel line as a patch mail or a bug report quotes it: "<driver> <PCI address>: <message>"
_DEVICE_LINE_RE = re.compile(r"^[\w-]+ [0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]: ")


class FixtureError(LookupError):
    """A recording name that does not resolve to exactly one file."""


def path(kind, name):
    """tests/fixtures/gpu/<kind>/<name>; ``name`` may be a unique prefix (with or without extension)."""
    folder = FIXTURES / kind
    exact = folder / name
    if exact.is_file():
        return exact
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    hits = [n for n in names if n.startswith(name)]
    if len(hits) == 1:
        return folder / hits[0]
    if not hits:
        raise FixtureError("no %s recording named %r (have: %s)" % (kind, name, ", ".join(names)))
    raise FixtureError("%s recording %r is ambiguous: %s" % (kind, name, ", ".join(hits)))


def names(kind):
    return sorted(p.name for p in (FIXTURES / kind).iterdir() if p.is_file())


@functools.lru_cache(maxsize=None)
def _text(kind, name):
    return path(kind, name).read_text(encoding="utf-8")


def text(kind, name):
    return _text(kind, name)


def body_lines(kind, name):
    """The lines of a .txt recording without its ``#`` header line(s) and shell prompts."""
    out = []
    for line in _text(kind, name).splitlines():
        if line.startswith("#") or re.match(r"^\[[^\]]*@[^\]]*\][#$]", line):
            continue
        out.append(line)
    return out


@functools.lru_cache(maxsize=None)
def _json(kind, name):
    return json.loads(_text(kind, name))


def load_json(kind, name):
    """A JSON recording, parsed (a fresh copy each time)."""
    return copy.deepcopy(_json(kind, name))


# ---------------------------------------------------------------- rocm-smi recordings

def rocm_smi_cards(name):
    """[(key, card dict)] of a rocm-smi JSON recording, in the recording's order."""
    doc = _json("rocm-smi", path("rocm-smi", name).name)
    return [(k, copy.deepcopy(v)) for k, v in doc.items() if k.startswith("card")]


def rocm_smi_system(name):
    doc = _json("rocm-smi", path("rocm-smi", name).name)
    return copy.deepcopy(doc.get("system"))


def replicable_rocm_smi():
    """rocm-smi JSON recordings a rig can be built from: every card has a "PCI Bus" key."""
    out = []
    for n in names("rocm-smi"):
        if not n.endswith(".json"):
            continue
        cards = rocm_smi_cards(n)
        if cards and all("PCI Bus" in c for _key, c in cards):
            out.append(n)
    return out


# ---------------------------------------------------------------- sysfs dumps

@functools.lru_cache(maxsize=None)
def _sysfs_dump(name):
    files = {}
    current = None
    lines = []
    for line in _text("sysfs", name).splitlines():
        match = re.match(r"^==> (.+) <==$", line)
        if match:
            if current is not None:
                files[current] = "\n".join(lines) + "\n"
            current, lines = match.group(1), []
        elif current is None:
            continue  # the "# Source: ..." header
        else:
            lines.append(line)
    if current is not None:
        files[current] = "\n".join(lines) + "\n"
    return files


def sysfs_dump(name=DEFAULT_SYSFS_DUMP):
    """{relative path: content} of a recorded /sys/class/drm/cardN/device dump."""
    return dict(_sysfs_dump(path("sysfs", name).name))


# ---------------------------------------------------------------- kernel log recordings

def dmesg_messages(name):
    """[(seconds or None, message)] of a dmesg/journal recording.

    The syslog/journal prefix and the ``[ sec.usec]`` stamp are taken off (the message keeps an
    optional ``[    T140]`` caller id, as dmesg prints it); ``[...]`` elision markers, ``#``
    comments and user-space lines of mixed recordings are dropped. The MI300 counts table
    (``amdgpu: <message>    <count>``) yields its messages without the count column; a recording quoted
    without stamps keeps its ``<driver> <PCI address>: <message>`` lines.
    """
    out = []
    stamped = any(_TS_RE.match(_SYSLOG_RE.sub("", l)) for l in body_lines("dmesg", name))
    for raw in body_lines("dmesg", name):
        line = _SYSLOG_RE.sub("", raw)
        if not line.strip() or line.strip() == "[...]" or line.startswith("AmdGpuErr"):
            continue
        match = _TS_RE.match(line)
        if match:
            out.append((float("%s.%s" % match.groups()), line[match.end():]))
        elif stamped and raw != line:
            out.append((None, line))  # syslog line without a monotonic stamp
        elif not stamped and raw == line and line.startswith("amdgpu"):
            out.append((None, _COUNT_SUFFIX_RE.sub("", line)))  # counts table
        elif not stamped and raw == line and _DEVICE_LINE_RE.match(line):
            out.append((None, line))  # quoted without stamps
        elif not stamped and raw != line:
            out.append((None, line))
    return out


def dmesg_source_bdf(messages):
    """The first amdgpu device address a recording names (the GPU it is about)."""
    for _stamp, msg in messages:
        match = re.search(r"amdgpu (%s)" % _BDF_RE.pattern, msg)
        if match:
            return match.group(1)
    return None


def smu_fixtures():
    return [n for n in names("dmesg") if "smu" in n.lower()]


def resolve_smu_fixture(name):
    """'mi300x', 'rocm5.7_2x7900xtx', 'smu_0xffffffff_hanged' ... -> a dmesg recording with SMU failures."""
    if (FIXTURES / "dmesg" / name).is_file():
        return name
    hits = [n for n in smu_fixtures() if n.startswith(name)]
    if len(hits) == 1:
        return hits[0]
    return path("dmesg", name).name


BDF_RE = _BDF_RE
