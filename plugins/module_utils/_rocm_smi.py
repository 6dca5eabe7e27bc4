# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: pure parser of rocm-smi's JSON, ROCm 2.x to 7.x.

What the output really looks like (docs/gpu-formats.md in the project notes): one line of
``json.dumps`` on stdout, every value a string, keys renamed across versions (GPU ID -> Device ID
at 6.0, Card series -> Card Series at 6.2, power key per hardware), failed metrics OMITTED (not
N/A), a card with no readable key removed entirely, and exit status 0 even on failure. Stray text
can precede the JSON, so only a line that starts with ``{`` is taken as JSON.
"""

from __future__ import annotations

import json
import re

from ansible_collections.gpuops.preflight.plugins.module_utils._pci import normalize_bdf
from ansible_collections.gpuops.preflight.plugins.module_utils._values import finite, first_line, plausible_reading, to_number

# The one call the preflight makes: a concise set of facts. -a is slower, noisier and prints
# text on stdout (the KFD PID warning); VRAM holders are read from KFD sysfs instead of --showpids.
SHOW_ARGS = [
    "--showuse", "--showmeminfo", "vram", "--showtemp", "--showpower", "--showbus",
    "--showproductname", "--showid", "--showdriverversion", "--json",
]

# Outcome of a rocm-smi run, as far as its output tells.
ANSWERED = "answered"          # JSON with at least one card
NO_DATA = "no_data"            # 'No JSON data to report': no card had a readable value
NO_DRIVER = "no_driver"        # amdgpu is not loaded
NONE_SEEN = "none_seen"        # 'No AMD GPUs specified': the tool reaches no AMD GPU at all (it cannot tell)
MUTEX = "mutex"                # the shared-memory mutex of rocm_smi_lib is stuck
UNPARSEABLE = "unparseable"    # stdout is not rocm-smi JSON
FAILED = "failed"              # non-zero exit without JSON

# rocm-smi's card index and a process id are small numbers: a key with more digits than int() converts (4300) is
# garbage, not a card or a process (and would raise ValueError)
_CARD_KEY = re.compile(r"^card([0-9]{1,9})$")
_PID_KEY = re.compile(r"^PID([0-9]{1,10})$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")

# Each fact's keys, the first that holds a value wins. They are matched without regard to case: the sysfs-based
# rocm-smi of ROCm <= 3.8 wrote 'vram Total Memory (B)' (its memory types lower case) and builds of it wrote
# 'Temperature (Sensor edge) (c)'; 'Card series' became 'Card Series' at 6.2. A sensor without a hwmon label was
# 'Temperature (Sensor #N) (C)' there; amdgpu's temp1 is the edge (GPU) sensor.
_KEYS = {
    "model": ("Device Name", "Card Series"),
    "device_id": ("Device ID", "GPU ID"),
    "bdf": ("PCI Bus",),
    "gfx_version": ("GFX Version",),
    "vram_total_bytes": ("VRAM Total Memory (B)",),
    "vram_used_bytes": ("VRAM Total Used Memory (B)",),
    "vram_used_percent": ("GPU Memory Allocated (VRAM%)",),
    "busy_percent": ("GPU use (%)",),
    "temperature_edge_c": ("Temperature (Sensor edge) (C)", "Temperature (Sensor #1) (C)"),
    "temperature_junction_c": ("Temperature (Sensor junction) (C)",),
    "power_w": ("Current Socket Graphics Package Power (W)", "Average Graphics Package Power (W)"),
    "perf_level": ("Performance Level",),
    "unique_id": ("Unique ID",),
    "vbios_version": ("VBIOS version",),
}


def extract_json(stdout):
    """The rocm-smi document in ``stdout``, or None.

    rocm-smi prints one JSON line; anything else on stdout (warnings, the KFD PID notice) is
    noise. Recordings re-indented by other tools are accepted too.
    """
    if not stdout:
        return None
    lines = stdout.splitlines()
    for line in lines:
        if line.lstrip().startswith("{"):
            doc = _loads_dict(line)
            if doc is not None:
                return doc
    # A pretty-printed document: from a line that opens an object to the end. A few candidates
    # only: garbage full of braces must not cost quadratic time.
    starts = [pos for pos, line in enumerate(lines) if line.startswith("{")]
    for pos in starts[:5]:
        doc = _loads_dict("\n".join(lines[pos:]))
        if doc is not None:
            return doc
    return None


def _loads_dict(text):
    try:
        doc = json.loads(text, parse_int=to_number)  # an integer too long for int() is inf, not the whole output lost
    except (ValueError, RecursionError):  # garbage nested deeply enough hits the recursion limit
        return None
    return doc if isinstance(doc, dict) else None


def classify(stdout, stderr, rc):
    """(outcome, document, reason) for one run that ended by itself."""
    doc = extract_json(stdout)
    if doc is not None and any(_CARD_KEY.match(k) for k in doc):
        return ANSWERED, doc, None
    text = "%s\n%s" % (stdout or "", stderr or "")
    said = said_outcome(text, "rocm-smi")
    if said:
        return said[0], doc, said[1]
    if "No JSON data to report" in text or (doc is not None and not rc):
        return NO_DATA, doc, "rocm-smi reported no data for any GPU"
    if rc:
        return FAILED, doc, "rocm-smi exited %s: %s" % (rc, telling_line(stderr) or telling_line(stdout) or "no output")
    return UNPARSEABLE, doc, "rocm-smi printed no JSON: %s" % (telling_line(stdout) or telling_line(stderr) or "no output")


_BARE_LABEL = re.compile(r"^\W*[A-Za-z]+\W*:\W*$")
# Python's own words before the tool's: a warning ('/opt/rocm-6.2.4/libexec/amdsmi_cli/BDF.py:126: SyntaxWarning:
# invalid escape sequence', then the source line, indented) and a traceback, whose telling line is its last (the
# exception), after the indented frames.
_PY_WARNING = re.compile(r"^\S+:\d+: \w*Warning: ")
TRACEBACK = "Traceback (most recent call last):"


def telling_line(text):
    """The first line of a tool's output that says something, as ``first_line`` quotes it: a bare 'ERROR:' heading
    (rsmi_init's failure, llvmlite #717) is skipped for the line after it, a Python warning with its source line
    for what follows; of a traceback, the exception it ends with."""
    lines = (text or "").splitlines()
    pos = 0
    while pos < len(lines):
        line = lines[pos]
        pos += 1
        if _PY_WARNING.match(line):
            while pos < len(lines) and lines[pos][:1] in (" ", "\t"):
                pos += 1
        elif line.strip() == TRACEBACK:
            while pos < len(lines) and (lines[pos][:1] in (" ", "\t") or not lines[pos].strip()):
                pos += 1
            return first_line(lines[pos]) if pos < len(lines) else first_line(line)
        elif line.strip() and not _BARE_LABEL.match(line):
            return first_line(line)
    return first_line(text)


NO_DRIVER_REASON = "the amdgpu driver is not loaded"

# What a tool's words say about its run, whatever else it printed (rocm-smi and amd-smi alike): the first row one of
# whose phrases (lower case) is in its output gives the outcome and the reason (``%(tool)s``: the tool's name).
TEXT_OUTCOMES = (
    (MUTEX, ("rsmi device mutex", "rocm_smi* shared memory"),
     "rocm_smi_lib's shared-memory mutex is stuck (a previous rocm-smi did not exit cleanly): stop all rocm-smi "
     "users and delete /dev/shm/rocm_smi*"),
    # both tools look for the module in /proc/modules, so a built-in amdgpu reads the same
    (NO_DRIVER, ("driver not initialized", "amdgpu not found in modules"), NO_DRIVER_REASON),
    # rocm-smi enumerates no AMD GPU (amd-smi: "Unable to detect any GPU devices"): in a container without the device
    # files (jrcichra/rocm-pytorch-gfx803#1), GPUs KFD skipped (ROCm#1742: PCI atomics), partitions it does not
    # enumerate (DRA/CPX), an eGPU whose BARs did not fit (ROCm#6176). It says nothing about the GPUs.
    (NONE_SEEN, ("no amd gpus specified", "unable to detect any gpu devices"),
     "%(tool)s reaches no AMD GPU (\"%(said)s\"): it cannot see them here (no /dev/kfd or /dev/dri in a container, "
     "GPUs KFD skipped or did not enumerate), so it cannot tell how they are"),
)


def said_outcome(text, tool, rows=TEXT_OUTCOMES):
    """(outcome, reason) of the first of ``rows`` whose phrase a line of ``text`` holds (any case), or None."""
    lines = (text or "").splitlines()
    for outcome, phrases, reason in rows:
        for line in lines:
            if any(phrase in line.lower() for phrase in phrases):
                return outcome, reason % {"tool": tool, "said": first_line(line)} if "%(" in reason else reason
    return None


def says_no_driver(text):
    """Whether rocm-smi's or amd-smi's output says amdgpu is not loaded: 'Driver not initialized (amdgpu not found
    in modules)'."""
    return said_outcome(text, "", [row for row in TEXT_OUTCOMES if row[0] == NO_DRIVER]) is not None


def number(value):
    """rocm-smi values are strings: '45.0', '0', 'N/A', 'N/A (Secondary die)'. The number (``_values.to_number``: inf
    or NaN, as '1e999', 'nan' or a bare NaN/Infinity token, and integers of any length included; PLAUSIBLE judges
    them), or None when it is no number."""
    return to_number(value)


def _int(value):
    num = finite(number(value))
    return None if num is None else int(num)


def _text(value):
    """A meaningful string: not empty, not N/A, not a placeholder."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or value.upper().startswith("N/A") or value.lower() in ("unknown", "unsupported", "none"):
        return None
    return value


def normalize_gfx(value):
    """rocm-smi prints 'gfx' + major, minor and stepping in decimal: gfx90a appears as 'gfx9010'."""
    text = _text(value)
    if not text or not text.lower().startswith("gfx"):
        return text
    digits = text[3:]
    if not digits.isdecimal() or len(digits) < 3:
        return text.lower()
    major_len = 2 if digits[0] == "1" and len(digits) >= 4 else 1
    major, minor, step = int(digits[:major_len]), int(digits[major_len]), int(digits[major_len + 1:])
    return "gfx%d%d%x" % (major, minor, step)


def gfx_from_target_version(value):
    """KFD's gfx_target_version (major*10000 + minor*100 + stepping) -> 'gfx1032', 'gfx90a'."""
    try:
        value = int(value)
    except (TypeError, ValueError):
        return None
    if value <= 0:
        return None
    return "gfx%d%d%x" % (value // 10000, (value // 100) % 100, value % 100)


def _first(folded, field, convert):
    """The first of ``field``'s values (``_KEYS`` order) in a card whose keys are lower-cased (``folded``) that
    ``convert`` makes something of, or None."""
    for key in _KEYS[field]:
        got = convert(folded[key.lower()]) if key.lower() in folded else None
        if got is not None:
            return got
    return None


def _reading(folded, field, implausible):
    """The first of ``field``'s keys that holds a plausible reading (``_values.PLAUSIBLE``), or None; each reading
    outside its range is added to ``implausible``, never used."""
    for key in _KEYS[field]:
        got, record = plausible_reading(field, number(folded.get(key.lower())), "rocm-smi")
        if record:
            implausible.append(record)
        if got is not None:
            return got
    return None


def _model_name(value):
    # ROCm 4.3 on RDNA2 filled the product keys with the vendor id "0x1002".
    text = _text(value)
    return text if text and not _HEX.match(text) else None


def parse_card(index, card):
    """One GPU's facts from its rocm-smi entry; absent keys stay None (absent = the read failed)."""
    folded = dict((key.lower(), value) for key, value in card.items() if isinstance(key, str))
    device_id = _first(folded, "device_id", _text)
    implausible = []
    busy = _reading(folded, "busy_percent", implausible)
    return {
        "index": index,
        "bdf": _first(folded, "bdf", normalize_bdf),
        "model": _first(folded, "model", _model_name),
        "device_id": device_id.lower() if device_id else None,
        "gfx_version": _first(folded, "gfx_version", normalize_gfx),
        "vram_total_bytes": _reading(folded, "vram_total_bytes", implausible),
        "vram_used_bytes": _reading(folded, "vram_used_bytes", implausible),
        "vram_used_percent": _reading(folded, "vram_used_percent", implausible),
        "busy_percent": None if busy is None else int(busy),
        "temperature_edge_c": _reading(folded, "temperature_edge_c", implausible),
        "temperature_junction_c": _reading(folded, "temperature_junction_c", implausible),
        "power_w": _reading(folded, "power_w", implausible),
        "perf_level": _first(folded, "perf_level", _text),
        "unique_id": _first(folded, "unique_id", _text),
        "vbios_version": _first(folded, "vbios_version", _text),
        "key_count": len(card),
        "implausible": implausible,
    }


def parse(doc):
    """(cards sorted by index, system info) from a rocm-smi document."""
    cards = []
    for key, value in doc.items():
        match = _CARD_KEY.match(key)
        if match and isinstance(value, dict):
            cards.append(parse_card(int(match.group(1)), value))
    cards.sort(key=lambda card: card["index"])
    system = doc.get("system") if isinstance(doc.get("system"), dict) else {}
    return cards, {
        "driver_version": _text(system.get("Driver version")),
        "processes": _processes(system),
    }


def _processes(system):
    """--showpids (or -a) entries: "PID<pid>": "<name>, <gpu count>, <vram bytes>, <sdma>, <cu%>"."""
    procs = []
    for key, value in system.items():
        match = _PID_KEY.match(key) if isinstance(key, str) else None
        if not match or not isinstance(value, str):
            continue
        fields = [f.strip() for f in value.split(",")]
        procs.append({
            "pid": int(match.group(1)),
            "name": fields[0] if fields else None,
            "gpu_count": _int(fields[1]) if len(fields) > 1 else None,
            "vram_bytes": _int(fields[2]) if len(fields) > 2 else None,
        })
    return procs


def index_order(doc):
    """How this rocm-smi numbers GPUs, told by its id keys: 'bdf' (ROCm >= 6.0), 'drm' (<= 5.7), or None."""
    seen = set()
    for key, value in doc.items():
        if _CARD_KEY.match(key) and isinstance(value, dict):
            seen.update(value)
    if "Device ID" in seen or "Device Name" in seen or "Card Series" in seen:
        return "bdf"
    if "GPU ID" in seen or "Card series" in seen:
        return "drm"
    return None


def index_order_from_rocm_version(version):
    """'5.7.1' -> 'drm', '6.0.2' -> 'bdf' (rocm_smi_main.cc sorts by BDF since 6.0)."""
    match = re.match(r"^\s*(\d+)\.", version or "")
    if not match:
        return None
    return "bdf" if int(match.group(1)) >= 6 else "drm"
