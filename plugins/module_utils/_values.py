# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: small helpers for values that cross a boundary (input checks, results).

* ``type_name``: how a message names a value's type. Ansible hands variables over as its own tagged
  containers (``_AnsibleTaggedList``); an operator reads "list".
* ``clean_text``: every text a module returns must be valid UTF-8, or Ansible refuses the whole
  result ("Refusing to deserialize an invalid UTF8 string") and a healthy host looks broken. Tool
  output decoded with surrogate escapes, or a kernel-log line with a stray byte, is replaced here.
* ``without_escapes`` and ``printable``: log lines and tool output carry terminal escape sequences
  (colored logging, progress bars) and control characters. Patterns match the text without the
  sequences; whatever is printed for an operator has no control character left to move the cursor,
  recolor the terminal or hide the start of its line (a carriage return).
"""

from __future__ import annotations

import math
import re
import reprlib

_NAMES = (("bool", (bool,)), ("list", (list, tuple, set)), ("mapping", (dict,)), ("text", (str,)),
          ("number", (int, float)))


def type_name(value):
    """'list', 'mapping', 'text', 'number', 'bool', 'null', else the class name without a leading '_'."""
    if value is None:
        return "null"
    for name, types in _NAMES:
        if isinstance(value, types):
            return name
    return type(value).__name__.lstrip("_")


def pairs_noting_repeats(repeated):
    """A ``json.loads`` object_pairs_hook: the object as json builds it (the last value of a key wins), and each
    key given again in one object appended to ``repeated`` (JSON allows it; a config or a map must not)."""
    def pairs(items):
        seen = {}
        for key, value in items:
            if key in seen:
                repeated.append(key)
            seen[key] = value
        return seen
    return pairs


def human_bytes(num):
    """1536 -> '1.5 KiB', 512 -> '512 bytes': sizes in messages."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if num < 1024 or unit == "TiB":
            return "%d bytes" % num if unit == "bytes" else "%.1f %s" % (num, unit)
        num /= 1024.0
    return None  # not reached


# ECMA-48 escape sequences: CSI (colors, cursor moves: ESC [ ... final byte, or its 8-bit form U+009B),
# OSC (window titles, links: ESC ] ... ended by BEL or ESC \\), and the two-byte ESC sequences.
_ESCAPE = re.compile("(?:\x1b\\[|\x9b)[0-?]*[ -/]*[@-~]"
                     "|(?:\x1b\\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\\\|\x9c)?"
                     "|\x1b[ -/]*[0-~]")


def without_escapes(text):
    """``text`` without terminal escape sequences (colors, cursor moves, titles): what a terminal shows."""
    return _ESCAPE.sub("", text) if ("\x1b" in text or "\x9b" in text or "\x9d" in text) else text


def printable(value, limit=None):
    """``value`` as text safe to print on one line of an operator's terminal, at most ``limit`` characters.

    Escape sequences are removed; a tab, newline or carriage return becomes a space and every other
    character that is not printable (BEL, a stray ESC, a format character) a ``?``.
    """
    text = without_escapes(str(value))
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else (" " if ch.isspace() else "?") for ch in text)
    if limit is not None and len(text) > limit:
        text = text[:max(0, limit - 3)] + "..."
    return text


def escaped(text):
    """``text`` on one printable line, every character that is not printable written as its escape: a newline
    as ``\\n``, ESC as ``\\x1b``, a byte that is not UTF-8 (decoded with surrogate escapes) as ``\\xff``.

    How a message names a path or a file name that holds such characters: unlike ``printable`` it keeps
    them apart (``a\\nb.json`` is not ``a b.json``), and nothing reaches a terminal or breaks a log line.
    """
    text = str(text)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        elif "\udc80" <= ch <= "\udcff":   # an undecodable byte, kept by surrogateescape
            out.append("\\x%02x" % (ord(ch) - 0xdc00))
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


# Lone surrogates that are not surrogate-escaped bytes (those are U+DC80..U+DCFF).
_LONE_SURROGATE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def clean_text(value):
    """``value`` with every str made valid UTF-8, recursively; other values (None included) as they are.

    Bytes a tool printed that were decoded with surrogate escapes are decoded again (an invalid
    byte becomes U+FFFD); every other lone surrogate (a JSON ``\\ud800`` escape) becomes U+FFFD.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            pass
        text = _LONE_SURROGATE.sub("\ufffd", value)
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(value, dict):
        return dict((clean_text(k), clean_text(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [clean_text(v) for v in value]
    return value


def first_line(text, limit=200):
    """The first non-blank line of a tool's output, whitespace runs collapsed, valid UTF-8, at most ``limit``
    characters ('' when there is none): how messages quote what a tool said."""
    for line in (text or "").splitlines():
        if line.strip():
            return clean_text(" ".join(line.split())[:limit])
    return ""


def seconds_text(seconds):
    """'2', '0.5', '0': seconds as messages and commands write them (one decimal at most, no trailing zero)."""
    return ("%.1f" % seconds).rstrip("0").rstrip(".") or "0"


def is_within(path, base):
    """True when ``path`` is ``base`` or lies under it (both absolute and normalised)."""
    return path == base or path.startswith(base.rstrip("/") + "/")


def duration(seconds):
    """A span in words an operator reads at a glance: 42 s, 16 min, 2 h, 2 h 05 min, 3 days."""
    seconds = abs(float(seconds))
    if seconds < 120:
        return "%d s" % round(seconds)
    if seconds < 7200:
        return "%d min" % (seconds // 60)
    if seconds < 2 * 86400:
        hours, minutes = int(seconds // 3600), int((seconds % 3600) // 60)
        return "%d h" % hours if not minutes else "%d h %02d min" % (hours, minutes)
    return "%d days" % (seconds // 86400)


# The longest budget taken (the serving gate's GATE_TIMEOUT and serving_gate_timeout, a family's run budget).
MAX_SECONDS = 7 * 86400


def seconds_problem(value, minimum=0.001, maximum=MAX_SECONDS):
    """What is wrong with ``value`` as a positive number of seconds (a number or its text), or None: also the
    range rule of a role variable that takes seconds."""
    if isinstance(value, bool):
        return "must be a number of seconds, got %r" % (value,)
    try:
        number = float(str(value).strip())
    except ValueError:
        return "must be a number of seconds, got %r" % (value,)
    if math.isnan(number) or number < minimum or number > maximum:
        return "must be a number of seconds above 0 and at most %d, got %r" % (maximum, value)
    return None


def timeout_problem(value):
    """What is wrong with ``value`` as a timeout in whole seconds (a check's, a GPU tool's), or None: from 1 to
    MAX_SECONDS. A longer one cannot be waited for (a thread's wait and coreutils timeout have limits of their
    own) and is never meant; the rule of every timeout the host module and the plan take."""
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be a whole number of seconds, got %s" % reprlib.repr(value)
    if value < 1:
        return "must be at least 1 second, got %d" % value
    if value > MAX_SECONDS:
        return "must be at most %d seconds (7 days), got %s" % (MAX_SECONDS, reprlib.repr(value))
    return None


def parse_seconds(value, option, minimum=0.001, maximum=MAX_SECONDS):
    """A positive number of seconds, given as a number or its text; ValueError naming the option otherwise."""
    problem = seconds_problem(value, minimum, maximum)
    if problem:
        raise ValueError("%s %s" % (option, problem))
    return float(str(value).strip())


# The highest temperature an AMD GPU sensor really reports, in C: rocm_smi_lib's own limit (a gpu_metrics temperature
# above it is N/A since a torn firmware read gave 2112 C on MI350X, rocm-systems PR 6931); hwmon glitches read 511 C.
MAX_GPU_TEMPERATURE_C = 500

# What a GPU reading can really be, per fact: (lowest, highest, unit, type it is given as: None for as it came). Every
# parser (rocm-smi, amd-smi, sysfs, nvidia-smi) holds its readings to this one table. Outside it is a sentinel or
# garbage, never a measurement: 65535 C (0xFFFF, a failed sensor read), 6553.5 % (0xFFFF tenths), nvidia-smi's
# 4294967295 (0xFFFFFFFF), negative watts, VRAM of 18446744073709551615 bytes (UINT64_MAX); no GPU sensor reads below
# -40 C (its rated storage minimum), no board draws 4 kW (an MI355X OAM module is rated 1.4 kW), and none holds 1 PiB
# of VRAM (an MI355X has 288 GB).
PLAUSIBLE = {
    "busy_percent": (0, 100, "%", None),
    "temperature_edge_c": (-40, MAX_GPU_TEMPERATURE_C, "C", float),
    "temperature_junction_c": (-40, MAX_GPU_TEMPERATURE_C, "C", float),
    "power_w": (0, 4000, "W", float),
    "vram_total_bytes": (0, 2 ** 50, "B", int),
    "vram_used_bytes": (0, 2 ** 50, "B", int),
    "vram_used_percent": (0, 100, "%", int),
}

# A number as tools write one: decimal, optional fraction and exponent; or inf/infinity/nan (Python's and C's printf
# spellings). Nothing else (no '1_000', no hex): text that is no number stays text.
_NUMBER_TEXT = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$|^[-+]?(?:inf|infinity|nan)$", re.IGNORECASE)


def to_number(value):
    """An int or float from a tool's number or its text ('45', '45.0', '1e999', 'inf', a 5000-digit integer), or None
    when it is no number (None, a bool, 'N/A', ''). Never raises: a number too big for a float is inf, and
    ``plausible_reading`` judges it; an integer too long for Python's int() limit is read as a float (inf)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not _NUMBER_TEXT.match(text):
        return None
    if text.lstrip("+-").isdigit():
        try:
            return int(text)
        except ValueError:  # more digits than int() converts (sys.int_info.str_digits_check_threshold)
            return float(text)
    return float(text)


def finite(value):
    """``value`` as a float when it is a finite number a float holds, else None (inf, NaN, a 400-digit integer)."""
    if not is_number(value):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def scaled(value, factor=1, divisor=1):
    """``value`` * ``factor`` / ``divisor`` as a float (unit conversions of untrusted numbers: millidegrees are
    divided by 1000, as exactly as a float can): inf, with its sign, where a float cannot hold it (a 400-digit
    integer); NaN stays NaN; None for no number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value) * factor / divisor
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def reading_text(value):
    """A reading as a record names it: '65535', '-5.0', 'inf', 'nan', or 'a 400-digit number' (never the digits)."""
    if isinstance(value, float):
        return repr(value)
    try:
        text = str(value)
    except ValueError:  # more digits than str() converts
        return "a number of about %d digits" % int(abs(value).bit_length() * math.log10(2))
    digits = len(text.lstrip("-"))
    return "a %d-digit number" % digits if digits > 24 else text


def plausible_reading(field, value, source):
    """(value, record): a reading of ``field`` held to PLAUSIBLE. (``value``, None) when it is in range (as the type
    the table gives, else as it came); (None, ``{field, value, unit, source}``) when it is a number outside it or not
    finite (inf, NaN, too big for a float), the reading as text; (None, None) when there is no reading (None, not a
    number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, None
    low, high, unit, kind = PLAUSIBLE[field]
    number = finite(value)
    if number is None or not low <= number <= high:
        return None, {"field": field, "value": reading_text(value), "unit": unit, "source": source}
    if kind is None or isinstance(value, kind):
        return value, None
    return kind(value), None


def implausible_text(record):
    """'rocm-smi reported temperature_edge_c 65535 C': how a message names an implausible reading."""
    low, high = PLAUSIBLE[record["field"]][:2] if record.get("field") in PLAUSIBLE else (None, None)
    where = " (outside %s..%s %s)" % (low, high, record["unit"]) if low is not None else ""
    return "%s reported %s %s %s%s" % (record["source"], record["field"], record["value"], record["unit"], where)


# The rows of PLAUSIBLE a GPU's own sensors answer (its SMU or firmware): busy %, temperatures, power. Not the VRAM
# counters: they are the driver's bookkeeping (amdgpu's mem_info_vram_*, the size read at load) and read fine from a
# GPU whose SMU or firmware stopped answering, so they can vouch for no sensor.
SENSOR_READINGS = ("busy_percent", "temperature_edge_c", "temperature_junction_c", "power_w")


def all_sensors_implausible(gpu):
    """The implausible sensor readings of ``gpu`` (its ``implausible_readings`` of SENSOR_READINGS) when it has some
    and no sensor of it holds a plausible reading from any source; else []. The one rule, for every vendor and tool
    format, of a GPU whose sensors all read garbage (0xFFFF, 0xFFFFFFFF: an SMU or firmware that stopped answering):
    it is not verified. A reading the GPU does not give (N/A, Not Supported, a key left out) is no reading, neither
    plausible nor implausible."""
    records = [r for r in gpu.get("implausible_readings") or () if r.get("field") in SENSOR_READINGS]
    if records and all(gpu.get(field) is None for field in SENSOR_READINGS):
        return records
    return []


# Range rules for option values (role variables, module options): each returns the problem, or None.


def is_number(value):
    """True for an int or float that is not NaN (a bool is not a number here). Never raises: an int too big for a
    float (a 400-digit integer) is a number, and is no NaN."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or not math.isnan(value)


def at_least(low, what="a number"):
    def rule(value):
        if not is_number(value) or value < low:
            return "must be %s of %s or more, got %r" % (what, low, value)
        return None
    return rule


def from_to(low, high, what="a number"):
    """Rule: ``what`` from ``low`` to ``high``, both included."""
    def rule(value):
        if not is_number(value) or not low <= value <= high:
            return "must be %s from %s to %s, got %r" % (what, low, high, value)
        return None
    return rule


def between(low, high):
    def rule(value):
        if not is_number(value) or not low < value < high:
            return "must be a number between %s and %s, got %r" % (low, high, value)
        return None
    return rule


def absolute_path(value):
    if not isinstance(value, str) or not value.startswith("/"):
        return "must be an absolute path, got %r" % (value,)
    return None
