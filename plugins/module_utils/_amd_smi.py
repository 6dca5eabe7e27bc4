# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: pure parser of amd-smi's JSON, used where rocm-smi is absent.

Two top-level shapes exist: a list of per-GPU objects (up to amd-smi 25.x, and ``list``,
``process``, ``topology`` everywhere) and ``{"gpu_data": [...]}`` (amd-smi 26, ROCm 7). Leaves are
``{"value": N, "unit": "..."}`` or ``"N/A"`` since ROCm 6.1; 6.0 used bare numbers and other key
names. Whole sections can be ``"N/A"``. GPUs are numbered in PCI-address order (since 6.0); on a GPU
split into compute partitions (MI300 DPX ... CPX) each partition is a GPU, at a function-numbered address
(0000:05:00.1) on the builds that print one (amdsmi #132).
"""

from __future__ import annotations

import json

from ansible_collections.gpuops.preflight.plugins.module_utils import _rocm_smi
from ansible_collections.gpuops.preflight.plugins.module_utils._pci import normalize_bdf
from ansible_collections.gpuops.preflight.plugins.module_utils._values import finite, plausible_reading, scaled, to_number

# One call: metrics (usage, power, temperature, VRAM). The builds read print no PCI address with it
# (``list`` and ``static`` do: ``bdf``, ``bus.bdf``, used when present); _gpus.place_cards says when
# amd-smi's own (PCI) order may stand for the address.
METRIC_ARGS = ["metric", "--json"]
# Each GPU's index with its PCI address (``gpu``, ``bdf``; newer builds add ``uuid``, ``kfd_id``, ``partition_id``):
# called only when the metric entries cannot be placed by index (_gpus.place_by_list).
LIST_ARGS = ["list", "--json"]

_MIB = 1024 * 1024


def extract_json(stdout):
    """The amd-smi document (list or dict) in ``stdout``, or None. Watch mode prints a text banner first. Several
    documents one after another (amd-smi 25.5 printed one array per section, rocm-systems PR 667) are one
    ``{"gpu_data": [...]}`` of their GPU entries, in order; lines of text between them (a warning amd-smi logs
    between sections) or after the last (a warning or notice printed at exit) are skipped, but not a traceback after
    the last (``_documents``)."""
    if not stdout:
        return None
    lines = stdout.splitlines()
    starts = [pos for pos, line in enumerate(lines) if line.lstrip()[:1] in ("[", "{")]
    # A few candidates only: garbage full of brackets must not cost quadratic time.
    for pos in starts[:5]:
        docs, whole = _documents("\n".join(lines[pos:]))
        if docs and not whole:
            return None  # a document, then one cut short or broken: never a part of the output taken for the whole
        if len(docs) == 1:
            return docs[0]
        if docs:
            return {"gpu_data": [entry for doc in docs for entry in gpu_entries(doc)]}
    return None


# Integers too long for int() (over 4300 digits) are read as floats (inf), not refused with the whole document.
_DECODER = json.JSONDecoder(parse_int=to_number)


def _documents(text):
    """(documents, whole): the JSON documents (objects, arrays) ``text`` starts with, and whether the rest of it is
    only white space and lines of text between and after them. A line of its own that is no document on that line (a
    warning amd-smi logs between sections or at exit; a log line that starts with a date, which JSON would read as a
    number) is text when a document comes before it. Not whole: a document that fails on a later line or at the end
    of ``text`` (cut short), text on a document's own line, or a traceback after the last document (the tool died,
    maybe before printing the rest)."""
    docs, pos, died = [], 0, False
    while True:
        ended = pos
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return docs, not died
        line_end = text.find("\n", pos)
        line_end = len(text) if line_end < 0 else line_end
        try:
            doc, end = _DECODER.raw_decode(text, pos)
            text_line = not isinstance(doc, (dict, list)) or (end <= line_end and text[end:line_end].strip())
        except RecursionError:  # garbage nested deeply enough hits the recursion limit
            return docs, False
        except ValueError as exc:
            end, text_line = None, getattr(exc, "pos", len(text)) < line_end
        if text_line and docs and "\n" in text[ended:pos]:
            # a line of text after a document: skipped; a traceback no document follows says the tool died
            died = died or text[pos:line_end].strip() == _rocm_smi.TRACEBACK
            pos = line_end
            continue
        if end is None or text_line:
            return docs, False
        docs.append(doc)
        pos, died = end, False


def gpu_entries(doc):
    """The per-GPU objects, whatever the top-level shape: those that name their ``gpu``. Other JSON is no GPU:
    finding none, amd-smi 26 prints its version record (``[{"tool": "AMDSMI Tool", "version": ...}]``) and exits 255."""
    if isinstance(doc, dict):
        doc = doc.get("gpu_data", [doc])
    if not isinstance(doc, list):
        return []
    return [entry for entry in doc if isinstance(entry, dict) and "gpu" in entry]


def classify(stdout, stderr, rc):
    """(outcome, document, reason) for one run that ended by itself, in _rocm_smi's outcomes. GPU entries are an
    answer whatever the exit status; without any, a failed exit is a failure even when JSON was printed (the
    version record above), and only a clean exit with a document is a list of no GPU."""
    doc = extract_json(stdout)
    if gpu_entries(doc):
        return _rocm_smi.ANSWERED, doc, None
    text = "%s\n%s" % (stdout or "", stderr or "")
    said = _rocm_smi.telling_line(stderr) or _rocm_smi.telling_line(stdout)
    rule = _rocm_smi.said_outcome(text, "amd-smi")
    if rule and (rule[0] != _rocm_smi.NONE_SEEN or not rc):  # seeing no GPU and exiting non-zero is a failure
        return rule[0], doc, rule[1]
    if rc:
        return _rocm_smi.FAILED, doc, "amd-smi exited %s: %s" % (rc, said or "no output")
    if doc is not None:
        return _rocm_smi.NO_DATA, doc, "amd-smi reported no GPU: %s" % (said or "exit 0")
    return _rocm_smi.UNPARSEABLE, doc, "amd-smi printed no JSON: %s" % (said or "exit 0")


def value(node, unit_scale=None):
    """A leaf as a number: {"value": 6, "unit": "W"}, a bare number or its text, or None for "N/A". inf and NaN
    (bare tokens, '1e999') and integers of any length stay what they are, for PLAUSIBLE to judge. With
    ``unit_scale`` ({unit: factor}), a leaf's value in a unit it holds is scaled."""
    unit = None
    if isinstance(node, dict):
        unit = node.get("unit")
        node = node.get("value")
    node = to_number(node)
    if node is None or not unit_scale or unit not in unit_scale:
        return node
    factor = unit_scale[unit]
    if isinstance(node, int):
        return node * factor  # bytes stay exact
    return scaled(node, factor)


def _path(entry, *keys):
    node = entry
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


# amd-smi's memory units, in bytes (its MB, GB and KB are binary: integer-divided MiB, GiB, KiB)
_MEM_SCALE = {"MB": _MIB, "MiB": _MIB, "GB": 1024 * _MIB, "GiB": 1024 * _MIB, "KB": 1024, "KiB": 1024, "B": 1}


def _mem_bytes(node):
    """VRAM in bytes from {"value": N, "unit": "MB"}, or a bare MB integer (ROCm 6.0). A unit not in _MEM_SCALE (or
    none in a leaf) gives None: an unscaled number would be a wrong size. A number no float holds once in bytes
    stays inf (NaN), for PLAUSIBLE to judge; never an OverflowError."""
    if isinstance(node, dict) and node.get("unit") not in _MEM_SCALE:
        return None
    got = value(node, _MEM_SCALE)
    if got is not None and not isinstance(node, dict):
        got = got * _MIB if isinstance(got, int) else scaled(got, _MIB)
    if got is None or isinstance(got, int):
        return got
    number = finite(got)
    return got if number is None else int(number)


# The units amd-smi writes each reading in, and how many of them make the unit PLAUSIBLE holds it to: power in W (its
# JSON says "W"; the C library counts some powers in mW (rocm-systems PR 5232) and power caps in uW (amdsmi PR 174),
# and builds that pass them through write the micro as u, a micro sign or a Greek mu), temperature in C, busy in %.
# A bare number (ROCm 6.0), or a leaf without a unit, is in that unit; a leaf in a unit not listed is not read (an
# unscaled number would be a wrong reading).
_UNITS = {
    "power_w": {None: 1, "W": 1, "mW": 10 ** 3, "uW": 10 ** 6, "\u00b5W": 10 ** 6, "\u03bcW": 10 ** 6},
    "temperature_edge_c": {None: 1, "C": 1, "\u00b0C": 1, "mC": 10 ** 3},
    "temperature_junction_c": {None: 1, "C": 1, "\u00b0C": 1, "mC": 10 ** 3},
    "busy_percent": {None: 1, "%": 1},
}


def _in_unit(node, units):
    """A reading leaf as a number in its base unit (``units``: {unit: how many make one}), or None: no number, or a
    unit ``units`` does not list."""
    unit = node.get("unit") if isinstance(node, dict) else None
    if unit not in units:
        return None
    got = value(node)
    return got if got is None or units[unit] == 1 else scaled(got, divisor=units[unit])


# Where each fact is, by amd-smi release; the first path that holds a value wins. ``metric`` of ROCm 6.1+:
# usage.gfx_activity, power.socket_power, mem_usage.*_vram; the first amd-smi (ROCm 5.7/6.0): bare numbers,
# fb_usage.vram_total/vram_used (MB) and power.average_socket_power; its gpuvsmi-compatible names
# usage.gfx_usage and power.current_power; releases between them power.current_power, or
# power.average_power where the current reading is N/A (RDNA, MI200).
_PATHS = {
    "bdf": (("bdf",), ("bus", "bdf")),
    "device_id": (("asic", "device_id"),),
    "model": (("asic", "market_name"),),
    "gfx_version": (("asic", "target_graphics_version"),),
    "vram_total_bytes": (("mem_usage", "total_vram"), ("vram", "size"), ("fb_usage", "vram_total")),
    "vram_used_bytes": (("mem_usage", "used_vram"), ("fb_usage", "vram_used")),
    "busy_percent": (("usage", "gfx_activity"), ("usage", "gfx_usage")),
    "temperature_edge_c": (("temperature", "edge"),),
    "temperature_junction_c": (("temperature", "hotspot"),),
    "power_w": (("power", "socket_power"), ("power", "current_power"), ("power", "average_socket_power"),
                ("power", "average_power")),
    "vbios": (("vbios", "part_number"),),
}


def parse_entry(entry):
    """One GPU's facts from a ``metric`` (or ``static``/``list``) entry."""
    index = entry.get("gpu")
    device_id = _first_of(entry, "device_id", _name)
    implausible = []
    return {
        "index": index if isinstance(index, int) and not isinstance(index, bool) else None,
        "bdf": _first_of(entry, "bdf", normalize_bdf),
        "model": _first_of(entry, "model", _name),
        "device_id": device_id.lower() if device_id else None,
        "gfx_version": _first_of(entry, "gfx_version", _name),
        "vram_total_bytes": _reading(entry, "vram_total_bytes", implausible, _mem_bytes),
        "vram_used_bytes": _reading(entry, "vram_used_bytes", implausible, _mem_bytes),
        "vram_used_percent": None,
        "busy_percent": _reading(entry, "busy_percent", implausible),
        "temperature_edge_c": _reading(entry, "temperature_edge_c", implausible),
        "temperature_junction_c": _reading(entry, "temperature_junction_c", implausible),
        "power_w": _reading(entry, "power_w", implausible),
        "perf_level": _perf_level(entry.get("perf_level")),
        "unique_id": None,
        "vbios_version": _first_of(entry, "vbios", _name),
        "key_count": len(entry),
        "implausible": implausible,
    }


def _first_of(entry, field, convert):
    """The first of ``field``'s paths whose leaf ``convert`` makes something of, or None: a read that failed
    holds "N/A" or amd-smi's error text there, and another release's path may hold the value."""
    for path in _PATHS[field]:
        node = _path(entry, *path)
        got = convert(node) if node is not None else None
        if got is not None:
            return got
    return None


def _name(node):
    return node if isinstance(node, str) and node.strip() and node != "N/A" else None


def _reading(entry, field, implausible, convert=None):
    """The first of ``field``'s paths that holds a plausible reading (``_values.PLAUSIBLE``; ``convert`` makes the leaf
    a number in its unit, by default _UNITS'), or None; each reading outside its range is added to ``implausible``,
    never used."""
    for path in _PATHS[field]:
        node = _path(entry, *path)
        got, record = plausible_reading(field, convert(node) if convert else _in_unit(node, _UNITS[field]), "amd-smi")
        if record:
            implausible.append(record)
        if got is not None:
            return got
    return None


def _perf_level(raw):
    # "AMDSMI_DEV_PERF_LEVEL_AUTO" -> "auto", the sysfs spelling
    if not isinstance(raw, str) or raw == "N/A":
        return None
    return raw.rsplit("PERF_LEVEL_", 1)[-1].lower()


def parse(doc):
    """(cards sorted by index, system info) from an amd-smi document."""
    cards = [parse_entry(entry) for entry in gpu_entries(doc)]
    cards.sort(key=lambda card: (card["index"] is None, card["index"] or 0))
    return cards, {"driver_version": None, "processes": []}


def address_map(doc):
    """({amd-smi GPU index: PCI address}, number of GPU entries) from ``amd-smi list --json`` (list or wrapped
    form). An entry without an index or a real address (amd-smi prints the error text in its place) maps nothing."""
    cards, _system = parse(doc)
    found = dict((card["index"], card["bdf"]) for card in cards if card["index"] is not None and card["bdf"])
    return found, len(cards)
