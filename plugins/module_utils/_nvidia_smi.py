# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: pure parser of what nvidia-smi prints, whatever it was asked.

The preflight calls ``nvidia-smi -q -x`` once; this module reads whatever came back:

- the XML of every schema (``nvsmi_device_v10.dtd`` to ``v13`` and later): v10 counts ECC errors
  by bit width (``single_bit``/``double_bit``), v11/v12 by location (``sram_uncorrectable``,
  ``dram_uncorrectable``), v13 splits SRAM into ``_parity``/``_secded``; the throttle block
  ``clocks_throttle_reasons`` became ``clocks_event_reasons``; ``power_readings/power_draw``
  became ``gpu_power_readings/{power_draw,average_power_draw,instant_power_draw}``. Elements are
  looked up by several names and ECC counts summed over whatever leaves the schema has;
- the ``nvidia-smi -q`` (``-a``) text: its indented "Name : value" lines built into the XML's tree
  (the names that differ declared in QTEXT_RENAMES), then read as the XML is;
- the CSV of ``--query-gpu=... --format=csv[,noheader][,nounits]`` (units from the header);
- the default table (best effort: identity, memory, utilisation, ERR! fields, processes), also an excerpt of
  its GPU rows without the banner and the column titles (as pasted in issue reports);
- the list of ``-L`` (index, name, UUID, MIG devices: a count, nothing about health);
- the error texts nvidia-smi prints instead of any of these: the driver not answering ("couldn't
  communicate with the NVIDIA driver", "Failed to initialize NVML"), one GPU it cannot open
  ("Unable to determine the device handle for GPU <bdf>: GPU is lost / Unknown Error", newer
  drivers "for GPU<index>: <bdf>: ..."), wrapped over lines or behind a Windows prompt.

Values: ``N/A``, ``[N/A]``, ``[Not Supported]``, ``Requested functionality has been deprecated``
and ``Insufficient Permissions`` are unknown (None, never 0). ``ERR!`` and ``Unknown Error`` are
failed reads: unknown too, and counted per field: one is a warning naming the field, most of a
GPU's fields failing means the GPU stopped answering (degraded). Under MIG, N/A utilisation is
normal and says nothing. The readings in HELD_READINGS are held to ``_values.PLAUSIBLE``, the table
AMD's readings are held to: a sentinel, or no value where one belongs, is recorded in the card's
``implausible``. The XML comes from a local tool, but it is still parsed defensively: its size is
bounded, and a document that declares entities is refused.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from ansible_collections.gpuops.preflight.plugins.module_utils._pci import normalize_bdf
from ansible_collections.gpuops.preflight.plugins.module_utils._values import (
    PLAUSIBLE, clean_text, finite, first_line, plausible_reading, printable, scaled, to_number)

# The one call the probe makes.
QUERY_ARGS = ["-q", "-x"]

# Outcomes, in rocm-smi's vocabulary where the meaning is the same.
ANSWERED = "answered"        # at least one GPU described
GPU_ERRORS = "gpu_errors"    # only per-GPU "Unable to determine the device handle" lines
NO_DRIVER = "no_driver"      # the driver does not answer (not loaded, version mismatch, NVML init failed)
NO_DATA = "no_data"          # "No devices were found" (-L: "No devices found.")
UNPARSEABLE = "unparseable"  # none of the formats, exit 0
FAILED = "failed"            # none of the formats, non-zero exit

OK = "ok"
DEGRADED = "degraded"
LOST = "lost"
UNKNOWN = "unknown"

MAX_OUTPUT_CHARS = 32 * 1024 * 1024  # 64 GPUs of -q -x with every supported clock are ~6 MiB
_MIB = 1024 * 1024
_UNIT_BYTES = {"b": 1, "kib": 1024, "kb": 1024, "mib": _MIB, "mb": _MIB, "gib": 1024 * _MIB, "gb": 1024 * _MIB}

# What a field can say instead of a value (compared lower case, without brackets).
_UNKNOWN = ("n/a", "not supported", "not available", "requested functionality has been deprecated",
            "insufficient permissions", "unknown", "not found", "")
_FAILED = ("err!", "unknown error")
_LOST = ("gpu is lost",)
_RESET = ("gpu requires reset",)
# nvidia-smi writes NVML's error string (nvmlErrorString) where a field's read fails; NVIDIA's own nvidia-smi test
# harness (DCGM testing, NvidiaSmiApp.forbidden_strings) lists the ones it must never print: "Timeout", "Driver Not
# Loaded", "Corrupted infoROM" ... Those that say the GPU did not answer are failed reads, as ERR! is; those about who
# asks, the library or the driver are unknown. Never a value: "Timeout" is no performance state, recovery action or
# fabric state. (words, state) rows; GPU is lost / requires reset as above (pynvml words it "requires restart").
NVML_ERROR_STATES = (
    ("timeout", "failed"), ("interrupt request issue", "failed"), ("insufficient external power", "failed"),
    ("corrupted inforom", "failed"), ("gpu requires restart", "reset"),
    ("uninitialized", "unknown"), ("invalid argument", "unknown"), ("already initialized", "unknown"),
    ("insufficient size", "unknown"), ("driver not loaded", "unknown"), ("nvml shared library not found", "unknown"),
    ("function not found", "unknown"), ("gpu access blocked by the operating system", "unknown"),
    ("the operating system has blocked the request", "unknown"), ("driver/library version mismatch", "unknown"),
    ("in use by another client", "unknown"), ("insufficient memory", "unknown"), ("insufficient resources", "unknown"),
    ("no data", "unknown"), ("argument version mismatch", "unknown"), ("not ready", "unknown"),
)
_NVML_ERRORS = dict(NVML_ERROR_STATES)

# Facts whose reads count towards "most fields failed" (the key fields of every format).
FIELD_NAMES = {
    "model": "name", "persistence_mode": "persistence mode", "fan_percent": "fan speed",
    "performance_state": "performance state", "vram_total": "memory total", "vram_used": "memory used",
    "busy_percent": "GPU utilisation", "memory_busy_percent": "memory utilisation", "temperature": "temperature",
    "power": "power draw", "power_limit": "power limit", "ecc_mode": "ECC mode",
    "volatile_ecc": "volatile uncorrected ECC", "compute_mode": "compute mode", "mig_mode": "MIG mode",
    "display_active": "display active",
}
KEY_FIELDS = tuple(FIELD_NAMES)

# Clock event reasons worth a warning (the others - idle, power cap, sync boost - are normal).
SLOWDOWN_REASONS = ("hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown", "sw_thermal_slowdown")
USER_DEFINED_CLOCKS = "applications_clocks_setting"  # NVML's "user defined clocks": -ac, -lgc, -lmc

# Yes/No conditions, each declared once for every format: Yes degrades the GPU; No, N/A and
# "Requested functionality has been deprecated" say nothing.
# name -> (XML paths, --query-gpu CSV fields, problem). nvidia-smi --help-query-gpu: reset_required
# and drain_and_reset_recommended are Yes after an unrecoverable error. The v13 repairs (HBM channel,
# TPC) take effect at the next reset; past the SRAM threshold NVIDIA asks for the GPU to be serviced.
CONDITIONS = {
    "reset_required": (("gpu_reset_status/reset_required",), ("reset_status.reset_required",),
                       "nvidia-smi says the GPU needs a reset: an unrecoverable error happened"),
    "drain_and_reset_recommended": (
        ("gpu_reset_status/drain_and_reset_recommended",), ("reset_status.drain_and_reset_recommended",),
        "nvidia-smi recommends draining and resetting the GPU: an unrecoverable error happened"),
    "channel_repair_pending": (("ecc_errors/channel_repair_pending",), (),
                               "a memory channel repair is pending: reset the GPU (or reboot) to apply it"),
    "tpc_repair_pending": (("ecc_errors/tpc_repair_pending",), (),
                           "a TPC repair is pending: reset the GPU (or reboot) to apply it"),
    "unrepairable_memory": (("ecc_errors/unrepairable_memory",), (),
                            "nvidia-smi reports unrepairable memory: the GPU needs service"),
    "sram_threshold_exceeded": (("ecc_errors/aggregate/sram_threshold_exceeded",),
                                ("ecc.errors.uncorrected.aggregate.sram.thresholdExceeded",),
                                "uncorrectable SRAM errors are over NVIDIA's threshold: the GPU needs service"),
}

# Fabric (NVSwitch/NVLink systems): until the fabric manager has registered the GPU (state
# Completed, status Success), CUDA fails on it with error 802 "system not yet initialized".
# State N/A (or Not Supported) means the GPU has no fabric: nothing to say.
FABRIC_READY = ("completed", "success")

# A vGPU guest's licence (-q "vGPU Software Licensed Product / License Status", XML
# vgpu_software_licensed_product/license_status; NVML's states as DCGM names them). Unlicensed, a vGPU runs at full
# speed for a 20-minute grace period ("Unlicensed (Unrestricted)"), then its compute drops to an idle level
# ("Unlicensed (Restricted)") until a licence is acquired (NVIDIA AI Enterprise licensing guide). "Licensed (Expiry:
# ...)" and the host's "N/A" say nothing. (status prefix, health, text): the first prefix the status starts with
# wins; a health of OK makes the text a warning.
VGPU_LICENSE_STATES = (
    ("unlicensed (restricted)", DEGRADED, "the vGPU is unlicensed and restricted (%s): NVIDIA holds its compute at an "
                                          "idle level until a licence is acquired"),
    ("unlicensed", OK, "the vGPU is unlicensed (%s): NVIDIA restricts it after a 20-minute grace period"),
)

# Memory repair states (page retirement before Ampere, row remapping since), NVIDIA's "GPU Memory Error Management"
# guide (docs.nvidia.com/deploy/a100-gpu-mem-error-mgmt, "Error Recovery and Response Flags": with the row-remapping
# pending flag set "unaffected applications can continue running ... and new workloads can be launched"): a
# retirement or remap that is pending takes effect at the next GPU reset (or reboot), so the GPU may take work: a
# warning to reset it at the next chance. A remapping failure (no spare rows left) needs service. A page retired for a double-bit
# (uncorrectable) error and still pending is that error's: the GPU must be reset before new work, as after Xid 48.
# (group, test on (remapped_rows, retired_pages), health: DEGRADED blocks, OK is a warning, text): the first match
# of each group counts.
MEMORY_REPAIRS = (
    ("rows", lambda rows, pages: rows["failure"], DEGRADED,
     "memory row remapping failed: the GPU has no spare rows left"),
    ("rows", lambda rows, pages: rows["pending"], OK,
     "memory row remapping is pending: reset the GPU (nvidia-smi -r) at the next chance to apply it"),
    ("pages", lambda rows, pages: pages["pending"] and pages["double_bit"], DEGRADED,
     "a page retirement for a double-bit ECC error is pending: reset the GPU (or reboot) before new work"),
    ("pages", lambda rows, pages: pages["pending"], OK,
     "retired memory pages are pending: reset the GPU (or reboot) at the next chance to retire them"),
)

# Compute modes that let no work run on the GPU (the others only limit how many processes share it).
CLOSED_COMPUTE_MODES = {"prohibited": "compute mode is Prohibited: no CUDA context is allowed on the GPU"}

# A reading: a decimal number (an exponent too: garbage such as 1e999 is read, then judged) and its unit.
_NUMBER = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*([A-Za-z%/]*)\s*$")
_BDF_TEXT = r"([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])"
# "for GPU 0000:01:00.0: <reason>" (older drivers), "for GPU0: 0000:01:00.0: <reason>" (newer: index first).
# nvidia-smi.exe in a Hyper-V GPU-PV guest was reported saying "Unable to detect the device handle" (Easy-GPU-PV #276).
# What ends the reason of a handle error (wrapped lines are joined before): the next error, or the start of
# what nvidia-smi prints next (the table's timestamp line, a banner, a warning).
_REASON_ENDS = (
    r"Unable to (?:determine|detect) the device handle", r"NVIDIA-SMI ", r"No devices (?:were )?found",
    r"Failed to initialize NVML", r"WARNING: ", r"=+\s*NVSMI LOG",
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2} \d\d:\d\d:\d\d \d{4}",
)
_HANDLE_ERROR = re.compile(r"Unable to (?:determine|detect) the device handle for (?:GPU|gpu)\s*(?:\d{1,3}\s*:\s*)?" + _BDF_TEXT
                           + r"\s*:\s*(.*?)(?=" + "|".join(_REASON_ENDS) + r"|$)")
# What the reason of a handle error says about the GPU: the first entry it contains; else degraded.
# NVML's "Insufficient Permissions" (the device node denied: a container, NVreg_DeviceFileMode) and
# "Driver Not Loaded" are about who asks and the driver, not the hardware: unknown, never broken.
# Then every NVML error NVML_ERROR_STATES calls unknown (about the caller, the library or the operating system:
# "GPU access blocked by the operating system" in a WSL or Hyper-V guest) is unknown here too.
_HANDLE_REASONS = (
    ("insufficient permissions", UNKNOWN), ("driver not loaded", UNKNOWN),
    ("lost", LOST), ("fallen off the bus", LOST), ("unknown error", LOST),
) + tuple((words, UNKNOWN) for words, state in NVML_ERROR_STATES if state == "unknown")
# How bad a GPU's handle error is, least first: of two for one GPU the worse is kept (gpu_errors).
_ERROR_ORDER = (UNKNOWN, DEGRADED, LOST)
_FELL_OFF = re.compile(r"(?:GPU|gpu)\s*" + _BDF_TEXT + r"\s*(?::\s*(?:GPU\s+)?)?(?:has fallen off the bus|is lost)")
# A line saying nvidia-smi got no answer from the driver, and what it means: (marker, reason's start), the first
# marker a line contains wins. NVML's "Insufficient Permissions" at init ("Failed to initialize NVML: Insufficient
# Permissions": /dev/nvidia* not open to the user, a container without its GPUs) is about who asks, not the driver.
_DRIVER_SILENT = "nvidia-smi cannot talk to the NVIDIA driver"
_DRIVER_DOWN = (
    ("insufficient permissions", "nvidia-smi may not open the GPUs' device files (/dev/nvidia*)"),
    ("blocked by the operating system", "the operating system blocks nvidia-smi's access to the GPUs"),
    ("operating system has blocked", "the operating system blocks nvidia-smi's access to the GPUs"),
    ("couldn't communicate with the nvidia driver", _DRIVER_SILENT),
    ("failed to initialize nvml", _DRIVER_SILENT),
    ("couldn't find libnvidia-ml", _DRIVER_SILENT),
    ("driver/library version mismatch", _DRIVER_SILENT),
    ("nvml library version mismatch", _DRIVER_SILENT),
    ("unable to load the nvidia", _DRIVER_SILENT),
)
# The query's "No devices were found", and -L's "No devices found." (a Slurm job or a pod given no GPU).
_NO_DEVICES = re.compile(r"\bno devices (?:were )?found\b", re.IGNORECASE)
# Warnings nvidia-smi prints about one GPU before its answer: (regex naming the address, warning).
_GPU_NOTICES = (
    (re.compile(r"infoROM is corrupted at gpu\s*" + _BDF_TEXT, re.IGNORECASE),
     "nvidia-smi warns the infoROM is corrupted: the GPU runs, but the ECC and retirement records it keeps "
     "there may be lost (have it serviced)"),
)
_SCHEMA = re.compile(r"nvsmi_device_(v\d+)\.dtd")


# --------------------------------------------------------------------------------------------
# values

def reading(text):
    """(value text or None, state): state is 'ok', 'unknown', 'failed', 'lost', 'reset' or 'absent'."""
    if text is None:
        return None, "absent"
    value = " ".join(text.split())
    key = value.strip("[]").strip().rstrip(".").lower()
    if key in _UNKNOWN:
        return None, "unknown"
    if key in _FAILED:
        return None, "failed"
    if key in _LOST:
        return None, "lost"
    if key in _RESET:
        return None, "reset"
    if key in _NVML_ERRORS:
        return None, _NVML_ERRORS[key]
    return value, "ok"


def _measure(text):
    """(number text, unit) of a reading like '24576 MiB', None when it is unknown or not a number."""
    value, state = reading(text)
    match = _NUMBER.match(value) if state == "ok" else None
    return (match.group(1), match.group(2)) if match else None


def _raw_number(text, _unit=None):
    """The number a reading holds, as ``_values.to_number`` reads it (inf, a 5000-digit int): never raises. (A
    unit, as for memory, is taken and not needed: every HELD_READINGS reader has one shape.)"""
    got = _measure(text)
    return None if got is None else to_number(got[0])


def number(text):
    """'24576 MiB' -> 24576, '27.23 W' -> 27.23, '37 C' -> 37; None when not a number or not one a float holds
    (1e999, a 5000-digit number: garbage, never a count)."""
    got = _raw_number(text)
    return got if finite(got) is not None else None


def _raw_mem_bytes(text, unit=None):
    """A memory reading in bytes as read (a float inf where none can hold it), None when it is no number."""
    got = _measure(text)
    scale = _UNIT_BYTES.get((got[1] or unit or "MiB").lower()) if got else None
    if scale is None:
        return None
    value = to_number(got[0])
    if isinstance(value, int) and finite(value) is not None and abs(value) < 2 ** 53:
        return value * scale  # exact bytes
    return scaled(value, scale)


def mem_bytes(text, unit=None):
    """A memory reading in bytes: '22437 MiB', or a bare number in ``unit`` (CSV nounits); None when no number a
    float holds."""
    got = finite(_raw_mem_bytes(text, unit))
    return None if got is None else int(got)


# Card keys held to the one plausible-range table (_values.PLAUSIBLE: the same rows as AMD's readings), and how each
# is read. A reading outside its row, not finite, or no reading where the field is present (N/A, ERR!, Unknown Error,
# GPU requires reset, text that is no number) is not used: it goes to the card's ``implausible`` ({field, value, unit,
# source}), the value as written, and a check that needs it is unknown.
HELD_READINGS = {
    "temperature_edge_c": _raw_number, "power_w": _raw_number, "busy_percent": _raw_number,
    "vram_total_bytes": _raw_mem_bytes, "vram_used_bytes": _raw_mem_bytes,
}
SOURCE = "nvidia-smi"


def held_reading(field, text, unit=None):
    """(value, record) of a HELD_READINGS field read from ``text``: (value, None) for a plausible reading (a float for
    temperature and power, exact bytes for VRAM); (None, record) for one that is not a measurement (a sentinel, ERR!,
    [GPU requires reset], text that is no number); (None, None) for no text at all, or N/A / Not Supported: a reading
    this GPU does not give (a Jetson's power, a MIG GPU's utilization) is no reading, not a garbage one."""
    state = reading(text)[1]
    if state in ("absent", "unknown"):
        return None, None
    got = HELD_READINGS[field](text, unit)
    if state == "ok" and got is not None:
        return plausible_reading(field, got, SOURCE)
    return None, {"field": field, "value": printable(" ".join(text.split()), 60), "unit": PLAUSIBLE[field][2],
                  "source": SOURCE}


def process_vram(text, pid, card):
    """A process's memory in bytes, held to the vram_used_bytes row (it is VRAM use on its GPU): a number outside
    it is None and recorded on ``card`` (the GPU's, when known), source 'nvidia-smi process <pid>'. N/A (Windows,
    another user's process) is unknown, no record: a process list often lacks it."""
    got = _raw_mem_bytes(text) if reading(text)[1] == "ok" else None
    if got is None:
        return None
    value, record = plausible_reading("vram_used_bytes", got, "%s process %s" % (SOURCE, pid))
    if record and card is not None:
        card["implausible"].append(record)
    return value


def _hold(card, field, text, unit=None):
    """Set ``card[field]`` from ``text`` (held_reading), its record, if any, added to the card's ``implausible``."""
    value, record = held_reading(field, text, unit)
    card[field] = value
    if record:
        card["implausible"].append(record)


def flag(text):
    """'Enabled'/'Yes'/'Active' -> True, 'Disabled'/'No'/'Not Active' -> False, else None."""
    value, state = reading(text)
    if state != "ok":
        return None
    key = value.lower()
    if key in ("enabled", "yes", "active", "on"):
        return True
    if key in ("disabled", "no", "not active", "off"):
        return False
    return None


def _mode(text):
    got = flag(text)
    return None if got is None else ("enabled" if got else "disabled")


# --------------------------------------------------------------------------------------------
# one GPU, whatever the format

def blank_card(position):
    return {
        "index": None, "position": position, "bdf": None, "model": None, "uuid": None,
        "vram_total_bytes": None, "vram_used_bytes": None, "vram_free_bytes": None, "busy_percent": None,
        "memory_busy_percent": None, "temperature_edge_c": None, "power_w": None, "power_limit_w": None,
        "performance_state": None, "fan_percent": None, "persistence_mode": None, "mig_mode": None,
        "mig_devices": 0, "compute_mode": None,
        "ecc": {"mode": None, "volatile_uncorrected": None, "aggregate_uncorrected": None, "volatile_corrected": None,
                "aggregate_corrected": None},
        "retired_pages": {"single_bit": None, "double_bit": None, "pending": None},
        "remapped_rows": {"corrected": None, "uncorrected": None, "pending": None, "failure": None},
        "clocks_event_reasons": None, "recovery_action": None, "minor_number": None, "vgpu_license": None,
        "conditions": dict.fromkeys(CONDITIONS), "fabric": {"state": None, "status": None},
        "failed_fields": [], "fields_read": 0, "markers": [], "notices": [],
        "processes_unknown": None,  # what nvidia-smi wrote instead of the GPU's process list ("Not Supported"), if it did
        "implausible": [],  # HELD_READINGS that are no measurement: {field, value, unit, source}
    }


class _Reads(object):
    """Book-keeping of the key fields' states, for the ERR! rules."""

    def __init__(self, card):
        self.card = card

    def note(self, field, state):
        if state == "absent" or field not in KEY_FIELDS:
            return
        self.card["fields_read"] += 1
        if state == "failed" and field not in self.card["failed_fields"]:
            self.card["failed_fields"].append(field)
        if state in ("lost", "reset") and state not in self.card["markers"]:
            self.card["markers"].append(state)


def judge_card(card):
    """(health, problems, warnings) from what the tool said about one GPU (sysfs and the kernel log aside)."""
    health, problems, warnings = OK, [], []

    def worse(level, text):
        problems.append(text)
        return LOST if LOST in (health, level) else DEGRADED

    if "lost" in card["markers"]:
        health = worse(LOST, "nvidia-smi reports the GPU is lost")
    if "reset" in card["markers"]:
        health = worse(DEGRADED, "nvidia-smi says the GPU requires a reset")
    failed, read = [FIELD_NAMES.get(f, f) for f in card["failed_fields"]], card["fields_read"]
    if failed and len(failed) * 2 > read:
        health = worse(DEGRADED, "nvidia-smi answers ERR! for %d of %d fields (%s): the GPU stopped answering"
                       % (len(failed), read, ", ".join(failed)))
    else:
        warnings.extend("nvidia-smi could not read the %s (ERR!)" % field for field in failed)
    ecc = card["ecc"]
    if ecc["volatile_uncorrected"]:
        health = worse(DEGRADED, "%d uncorrectable ECC error(s) since the driver loaded" % ecc["volatile_uncorrected"])
    elif ecc["aggregate_uncorrected"]:
        warnings.append("%d uncorrectable ECC error(s) in the GPU's lifetime (none since the driver loaded)"
                        % ecc["aggregate_uncorrected"])
    matched = set()
    for group, test, level, text in MEMORY_REPAIRS:
        if group not in matched and test(card["remapped_rows"], card["retired_pages"]):
            matched.add(group)
            if level == OK:
                warnings.append(text)
            else:
                health = worse(level, text)
    action = card["recovery_action"]
    if action and action.lower() not in ("none", "gpu_recovery_action_none"):
        health = worse(DEGRADED, "the driver asks for recovery action %r" % action)
    for name, (_paths, _fields, problem) in CONDITIONS.items():
        if card["conditions"].get(name):
            health = worse(DEGRADED, problem)
    fabric = _fabric_problem(card["fabric"])
    if fabric:
        health = worse(DEGRADED, fabric)
    closed = CLOSED_COMPUTE_MODES.get((card["compute_mode"] or "").lower())
    if closed:
        health = worse(DEGRADED, closed)
    license_status = card.get("vgpu_license") or ""
    for prefix, level, text in VGPU_LICENSE_STATES:
        if license_status.lower().startswith(prefix):
            if level == OK:
                warnings.append(text % license_status)
            else:
                health = worse(level, text % license_status)
            break
    warnings.extend(card["notices"])
    for reason in card["clocks_event_reasons"] or ():
        if reason in SLOWDOWN_REASONS:
            warnings.append("clocks held down: %s active" % reason)
    return health, problems, warnings


def _fabric_problem(fabric):
    state, status = fabric["state"], fabric["status"]
    if state is None:
        return None
    if state.lower() != FABRIC_READY[0]:
        return "fabric manager not ready (fabric state %s): CUDA fails with error 802" % state
    # The status is NVML's return code as text: "Not Ready", "Insufficient Resources" here are the registration's
    # outcome, not a failed read; only the words for no value say nothing.
    if status and status.lower() != FABRIC_READY[1] and status.strip("[]").strip().lower() not in _UNKNOWN:
        return "GPU fabric registration failed (status %s): CUDA fails with error 802" % status
    return None


# --------------------------------------------------------------------------------------------
# XML (nvidia-smi -q -x)

def _safe_xml(stdout):
    """(text from the XML declaration or root on, None) or (None, reason)."""
    start = stdout.find("<?xml")
    if start < 0:
        start = stdout.find("<nvidia_smi_log")
    if start < 0:
        return None, None
    text = stdout[start:]
    if "<!entity" in text.lower():
        return None, "nvidia-smi XML declares entities: refused (it is never written that way)"
    end = text.rfind("</nvidia_smi_log>")
    if end >= 0:
        text = text[:end + len("</nvidia_smi_log>")]
    return _without_doctype(text)


def _without_doctype(text):
    """(text without its DOCTYPE, None), or (None, reason) for a DOCTYPE that does not end. The DOCTYPE line, or with
    --dtd the whole DTD inside it (element declarations; one that declares an entity is refused before), is found by
    plain searches: a pattern would try each of many '<!DOCTYPE [' from every one of them (minutes of garbage)."""
    start = text.lower().find("<!doctype")
    if start < 0:
        return text, None
    head = len("<!doctype")
    close, bracket = text.find(">", start + head), text.find("[", start + head)
    if 0 <= bracket < close or (close < 0 <= bracket):
        subset_end = text.find("]", bracket)
        close = -1 if subset_end < 0 else text.find(">", subset_end)
        if close >= 0 and text[subset_end + 1:close].strip():
            close = -1
    if close < 0:
        return None, "nvidia-smi XML has a DOCTYPE that does not end: refused"
    return text[:start] + text[close + 1:], None


# nvidia-smi writes a leaf's text unescaped, one leaf a line: a process name holding "&", "<" or control
# bytes (arbitrary bytes when nvidia-smi runs concurrently, cwltool PR 1910) makes the document ill-formed.
_XML_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_XML_LEAF_LINE = re.compile(r"^(\s*<([A-Za-z_][\w.-]*)>)(.*)(</\2>\s*)$")
_XML_STRAY_AMP = re.compile(r"&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9A-Fa-f]+);)")


def _repair_xml(text):
    """The document with control characters dropped and every leaf's text escaped (tried once it fails to parse)."""
    lines = []
    for line in _XML_BAD_CHARS.sub("", text).splitlines():
        match = _XML_LEAF_LINE.match(line)
        if match:
            inner = _XML_STRAY_AMP.sub("&amp;", match.group(3)).replace("<", "&lt;").replace(">", "&gt;")
            line = match.group(1) + inner + match.group(4)
        lines.append(line)
    return "\n".join(lines)


def parse_xml(stdout):
    """(cards, processes, system, error) from ``nvidia-smi -q -x`` output; cards in document order."""
    text, refused = _safe_xml(stdout)
    if text is None:
        return [], [], {}, refused
    try:
        root = ET.fromstring(text)
    except (ET.ParseError, ValueError, RecursionError) as exc:
        try:
            root = ET.fromstring(_repair_xml(text))
        except (ET.ParseError, ValueError, RecursionError):
            return [], [], {}, "nvidia-smi XML does not parse: %s" % exc
    if root.tag != "nvidia_smi_log":
        return [], [], {}, "not nvidia-smi XML (root element <%s>)" % root.tag
    schema = _SCHEMA.search(stdout[:4096])
    cards, processes, system = _from_tree(root, schema.group(1) if schema else None)
    return cards, processes, system, None


def _from_tree(root, schema):
    """(cards, processes, system) from an <nvidia_smi_log> tree: the XML's, or the one built from the -q text."""
    system = {
        # 610+: "KMD Version" / "CUDA UMD Version" beside the deprecated names ("610.43.02 [Deprecated; ...]")
        "driver_version": _version(root, "kmd_version", "driver_version"),
        "cuda_version": _version(root, "cuda_umd_version", "cuda_version"),
        "attached_gpus": number(root.findtext("attached_gpus")),
        "schema": schema,
    }
    cards, processes = [], []
    for position, gpu in enumerate(root.findall("gpu")):
        card = _xml_card(gpu, position)
        cards.append(card)
        section = gpu.find("processes")
        if section is None:
            section = gpu.find("compute_processes")
        card["processes_unknown"] = _no_process_list(section.text if section is not None and not len(section) else None)
        # Schemas up to v6 (drivers to 340) list them under compute_processes.
        for proc in gpu.findall("processes/process_info") + gpu.findall("compute_processes/process_info"):
            processes.append(_xml_process(proc, card))
    return cards, processes, system


def _no_process_list(text):
    """What a process section says instead of a list ("N/A", "Not Supported", an error), else None: empty and "None"
    are a list of no process. Old GeForce drivers and some guests cannot list processes: who holds memory is unknown."""
    text = " ".join((text or "").split())
    if not text or text.lower().startswith("no running processes"):
        return None
    value, state = reading(re.sub(r"^ERROR:\s*", "", text))
    return None if state == "ok" else text


def _version(root, *names):
    for name in names:
        value = reading(_QTEXT_DEPRECATED.sub("", root.findtext(name) or ""))[0]
        if value:
            return value
    return None


def _first(gpu, reads, field, *paths):
    """The text of the first of ``paths`` that holds a value, else of the first present (N/A, ERR!); its state
    is noted under ``field``. Blackwell boards print ``power_draw`` N/A beside a known ``instant_power_draw``."""
    present = [text for text in map(gpu.findtext, paths) if text is not None]
    chosen = next((text for text in present if reading(text)[1] == "ok"), present[0] if present else None)
    if chosen is not None:
        reads.note(field, reading(chosen)[1])
    return chosen


def _xml_card(gpu, position):
    card = blank_card(position)
    reads = _Reads(card)
    card["bdf"] = normalize_bdf(gpu.findtext("pci/pci_bus_id") or gpu.get("id") or "")
    card["model"] = reading(_first(gpu, reads, "model", "product_name"))[0]
    card["uuid"] = reading(gpu.findtext("uuid"))[0]
    card["minor_number"] = number(gpu.findtext("minor_number"))
    card["persistence_mode"] = flag(_first(gpu, reads, "persistence_mode", "persistence_mode"))
    _first(gpu, reads, "display_active", "display_active")
    card["mig_mode"] = _mode(_first(gpu, reads, "mig_mode", "mig_mode/current_mig"))
    card["mig_devices"] = len(gpu.findall("mig_devices/mig_device"))
    card["fan_percent"] = number(_first(gpu, reads, "fan_percent", "fan_speed"))
    card["performance_state"] = reading(_first(gpu, reads, "performance_state", "performance_state"))[0]
    card["compute_mode"] = reading(_first(gpu, reads, "compute_mode", "compute_mode"))[0]
    _hold(card, "vram_total_bytes", _first(gpu, reads, "vram_total", "fb_memory_usage/total"))
    _hold(card, "vram_used_bytes", _first(gpu, reads, "vram_used", "fb_memory_usage/used"))
    card["vram_free_bytes"] = mem_bytes(gpu.findtext("fb_memory_usage/free"))
    _hold(card, "busy_percent", _first(gpu, reads, "busy_percent", "utilization/gpu_util"))
    card["memory_busy_percent"] = number(_first(gpu, reads, "memory_busy_percent", "utilization/memory_util"))
    _hold(card, "temperature_edge_c", _first(gpu, reads, "temperature", "temperature/gpu_temp"))
    _hold(card, "power_w", _first(
        gpu, reads, "power", "gpu_power_readings/power_draw", "gpu_power_readings/average_power_draw",
        "gpu_power_readings/instant_power_draw", "power_readings/power_draw", "power_readings/average_power_draw",
        "power_readings/instant_power_draw"))
    card["power_limit_w"] = _float(number(_first(
        gpu, reads, "power_limit", "gpu_power_readings/current_power_limit", "gpu_power_readings/power_limit",
        "power_readings/power_limit", "power_readings/enforced_power_limit")))
    card["ecc"] = {
        "mode": _mode(_first(gpu, reads, "ecc_mode", "ecc_mode/current_ecc")),
        "volatile_uncorrected": _ecc_count(gpu.find("ecc_errors/volatile"), "uncorrectable"),
        "aggregate_uncorrected": _ecc_count(gpu.find("ecc_errors/aggregate"), "uncorrectable"),
        "volatile_corrected": _ecc_count(gpu.find("ecc_errors/volatile"), "correctable"),
        "aggregate_corrected": _ecc_count(gpu.find("ecc_errors/aggregate"), "correctable"),
    }
    pending = [flag(gpu.findtext(p)) for p in ("retired_pages/pending_retirement", "retired_pages/pending_blacklist")]
    card["retired_pages"] = {
        "single_bit": number(gpu.findtext("retired_pages/multiple_single_bit_retirement/retired_count")),
        "double_bit": number(gpu.findtext("retired_pages/double_bit_retirement/retired_count")),
        "pending": True if True in pending else (False if False in pending else None),
    }
    card["remapped_rows"] = {
        "corrected": number(gpu.findtext("remapped_rows/remapped_row_corr")),
        "uncorrected": number(gpu.findtext("remapped_rows/remapped_row_unc")),
        "pending": flag(gpu.findtext("remapped_rows/remapped_row_pending")),
        "failure": flag(gpu.findtext("remapped_rows/remapped_row_failure")),
    }
    card["clocks_event_reasons"] = _xml_reasons(gpu)
    card["recovery_action"] = reading(gpu.findtext("gpu_recovery_action"))[0]
    card["vgpu_license"] = reading(gpu.findtext("vgpu_software_licensed_product/license_status"))[0]
    for name, (paths, _fields, _problem) in CONDITIONS.items():
        card["conditions"][name] = flag(next((t for t in map(gpu.findtext, paths) if t is not None), None))
    # The status is kept as written: "Unknown Error" is a failed registration here, not a failed read.
    status = gpu.findtext("fabric/status")
    card["fabric"] = {"state": reading(gpu.findtext("fabric/state"))[0],
                      "status": " ".join(status.split()) if status else None}
    return card


def _float(num):
    return None if num is None else float(num)


def _ecc_count(section, kind):
    """Uncorrectable (or correctable) ECC errors in a volatile/aggregate section, whatever its schema.

    v10: single_bit/double_bit blocks with a ``total``; v11+: leaves named ``*_uncorrectable*`` and
    ``*_correctable``. None when nothing is known (N/A everywhere, ECC off, the section absent).
    """
    if section is None:
        return None
    counts = []
    bit_block = "double_bit" if kind == "uncorrectable" else "single_bit"
    block = section.find(bit_block)
    if block is not None:
        total = number(block.findtext("total"))
        if total is None:
            counts = [number(child.text) for child in block]
        else:
            counts = [total]
    for child in section:
        tag = child.tag
        if "threshold" in tag or len(child):
            continue
        is_unc = "uncorrectable" in tag
        if (kind == "uncorrectable" and is_unc) or (kind == "correctable" and "correctable" in tag and not is_unc):
            counts.append(number(child.text))
    known = [c for c in counts if c is not None]
    total = finite(sum(known)) if known else None  # counts that overflow a float together are no count
    return None if total is None else int(total)


def _xml_reasons(gpu):
    for block_name, prefix in (("clocks_event_reasons", "clocks_event_reason_"),
                               ("clocks_throttle_reasons", "clocks_throttle_reason_")):
        block = gpu.find(block_name)
        if block is None:
            continue
        active, known = [], False
        for child in block:
            state = flag(child.text)
            if state is None:
                continue
            known = True
            if state:
                active.append(child.tag[len(prefix):] if child.tag.startswith(prefix) else child.tag)
        return active if known else None
    return None


def _xml_process(proc, card):
    pid = number(proc.findtext("pid"))
    command = reading(proc.findtext("process_name"))[0]
    return {
        "pid": pid if isinstance(pid, int) else None,
        "name": process_name(command),
        "command": command,
        "type": reading(proc.findtext("type"))[0],
        "bdf": card["bdf"],
        "gpu_position": card["position"],
        "vram_bytes": process_vram(proc.findtext("used_memory"), pid, card),
        "gpu_instance_id": number(proc.findtext("gpu_instance_id")),
    }


def process_name(command):
    """'/root/src/llama.cpp/build/bin/llama-server --port 1' -> 'llama-server' (as comm names it).

    A Windows path is a path without arguments, blanks and all: '...IA App\\CEF\\NVIDIA Overlay.exe' ->
    'NVIDIA Overlay.exe'.
    """
    if not command:
        return None
    if "\\" in command:
        return command.strip().rsplit("\\", 1)[-1] or command
    first = command.split()[0] if command.split() else command
    return first.rsplit("/", 1)[-1] or command


# --------------------------------------------------------------------------------------------
# the -q text (nvidia-smi -q, -a): the XML's tree written as indented "Name : value" lines

_QTEXT_BANNER = re.compile(r"^([ \t]*)=+\s*NVSMI LOG\s*=+\s*$", re.M)
# Without its banner (a paste that lost it): the header lines, then a GPU block.
_QTEXT_HEAD = re.compile(r"^([ \t]*)(?:Timestamp|Driver Version|Attached GPUs)[ \t]+:", re.M)
_QTEXT_GPU_ANYWHERE = re.compile(r"^[ \t]*GPU[ \t]+" + _BDF_TEXT + r"[ \t]*$", re.M)
_QTEXT_GPU = re.compile(r"^GPU\s+" + _BDF_TEXT + r"\s*$")
# "    Name    : value" (the colon followed by a blank or the end; the longest names touch it), or "    Section".
_QTEXT_LINE = re.compile(r"^( *)(\S.*?)\s*:(?:\s+(.*?))?\s*$")
# At the margin only "Name   : value" with blanks before the colon ("GPU 0000:01:00.0: Unknown Error" is an error).
_QTEXT_KV = re.compile(r"^\S.*?\s+:(\s|$)")
_QTEXT_DEPRECATED = re.compile(r"\s*\[Deprecated[^\]]*\]$")
# Where a name of the text is not the XML's element: (section, name as text) -> path under the section.
# Every other name is the XML's once lower-cased with "_" for what is not a letter or digit.
QTEXT_RENAMES = {
    ("gpu", "gpu_uuid"): "uuid",
    ("gpu", "mig_device"): "mig_devices/mig_device",  # 610: each MIG device straight under the GPU
    ("mig_mode", "current"): "current_mig",
    ("ecc_mode", "current"): "current_ecc",
    ("pci", "bus_id"): "pci_bus_id",
    ("utilization", "gpu"): "gpu_util",
    ("utilization", "memory"): "memory_util",
    ("temperature", "gpu_current_temp"): "gpu_temp",
    ("gpu_power_readings", "instantaneous_power_draw"): "instant_power_draw",
    ("gpu_power_readings", "gpu_ceiling_power_limit"): "",  # 610: the limits one level down; "" = no level
    ("retired_pages", "single_bit_ecc"): "multiple_single_bit_retirement/retired_count",
    ("retired_pages", "double_bit_ecc"): "double_bit_retirement/retired_count",
    ("retired_pages", "pending_page_blacklist"): "pending_blacklist",
    ("retired_pages", "pending_page_retirement"): "pending_retirement",
    ("retired_pages", "pending"): "pending_retirement",
    ("remapped_rows", "correctable_error"): "remapped_row_corr",
    ("remapped_rows", "uncorrectable_error"): "remapped_row_unc",
    ("remapped_rows", "pending"): "remapped_row_pending",
    ("remapped_rows", "remapping_failure_occurred"): "remapped_row_failure",
    ("clocks_event_reasons", "idle"): "gpu_idle",
    ("clocks_throttle_reasons", "idle"): "gpu_idle",
    ("process_info", "process_id"): "pid",
    ("process_info", "name"): "process_name",
    ("process_info", "used_gpu_memory"): "used_memory",
}
# Sections whose lines are records, one element each: a name seen twice starts the next record.
_QTEXT_RECORDS = {"processes": "process_info"}


def _qtext_tag(name):
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "_"


def _qtext_put(parent, name, value):
    """The element for ``name`` under ``parent`` (renamed per QTEXT_RENAMES; a record started where needed)."""
    record = _QTEXT_RECORDS.get(parent.tag)
    tag = _qtext_tag(name)
    if record:
        last = parent[-1] if len(parent) and parent[-1].tag == record else None
        renamed = QTEXT_RENAMES.get((record, tag), tag)
        if last is None or last.find(renamed) is not None:
            last = ET.SubElement(parent, record)
        parent, tag = last, renamed
    renamed = QTEXT_RENAMES.get((parent.tag, tag), tag)
    if not renamed:
        return parent
    path = renamed.split("/")
    for step in path[:-1]:
        found = parent.find(step)
        parent = found if found is not None else ET.SubElement(parent, step)
    element = ET.SubElement(parent, path[-1])
    if value is not None:
        element.text = _QTEXT_DEPRECATED.sub("", value)
    return element


def qtext_start(text):
    """(offset, margin) where the -q text's lines begin (after its banner, else at its first header line), or None."""
    match = _QTEXT_BANNER.search(text)
    if match:
        return match.end(), match.group(1)
    gpu = _QTEXT_GPU_ANYWHERE.search(text)
    match = _QTEXT_HEAD.search(text, 0, gpu.start()) if gpu else None
    return (match.start(), match.group(1)) if match else None


def qtext_tree(stdout):
    """The <nvidia_smi_log> tree of the ``-q`` text, None when there is no such text.

    A line indented under a "Name : value" line (HW Thermal Slowdown under HW Slowdown, a process's
    Type and Name under its Process ID) belongs to the section above, as in the XML. A line at the
    margin that is neither "Name : value" nor "GPU <address>" (an error nvidia-smi printed between
    GPUs) ends the GPU: what is indented under it is not read.
    """
    start = qtext_start(stdout)
    if start is None:
        return None
    root = ET.Element("nvidia_smi_log")
    stack = [(-1, root)]
    begin, margin = start  # a text shifted as a whole (quoted, or behind a prompt's indent) is read from its margin
    for line in stdout[begin:].splitlines():
        line = line.rstrip()
        if not line.strip():
            continue
        if margin and line.startswith(margin):
            line = line[len(margin):]
        gpu = _QTEXT_GPU.match(line)
        if gpu:
            stack = [(-1, root), (0, ET.SubElement(root, "gpu", id=gpu.group(1)))]
            continue
        line = line.replace("\t", "    ")
        parsed = _QTEXT_LINE.match(line)
        indent = len(line) - len(line.lstrip())
        colon = bool(parsed) and (indent > 0 or bool(_QTEXT_KV.match(line)))
        name, value = (parsed.group(2), parsed.group(3)) if colon else (line.strip(), None)
        if indent == 0:
            stack = [(-1, root)] if colon else [(-1, None)]
            if colon:
                _qtext_put(root, name, value or "")
            continue
        while len(stack) > 1 and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        if parent is None:
            continue
        if colon:
            _qtext_put(parent, name, value or "")
        else:
            stack.append((indent, _qtext_put(parent, name, None)))
    return root


def parse_qtext(stdout):
    """(cards, processes, system, error) from ``nvidia-smi -q`` text, read as its XML would be."""
    root = qtext_tree(stdout)
    if root is None:
        return [], [], {}, None
    cards, processes, system = _from_tree(root, None)
    return cards, processes, system, None if cards else "nvidia-smi -q text without any GPU"


# --------------------------------------------------------------------------------------------
# CSV (--query-gpu=... --format=csv[,noheader][,nounits])

# query field -> (card key, converter). Memory converters take the header's unit.
_CSV_FIELDS = {
    "index": ("index", "int"), "name": ("model", "text"), "gpu_name": ("model", "text"),
    "uuid": ("uuid", "text"), "gpu_uuid": ("uuid", "text"), "pci.bus_id": ("bdf", "bdf"), "gpu_bus_id": ("bdf", "bdf"),
    "memory.total": ("vram_total_bytes", "mem"), "memory.used": ("vram_used_bytes", "mem"),
    "memory.free": ("vram_free_bytes", "mem"), "utilization.gpu": ("busy_percent", "num"),
    "utilization.memory": ("memory_busy_percent", "num"), "temperature.gpu": ("temperature_edge_c", "float"),
    "power.draw": ("power_w", "float"), "power.draw.average": ("power_w", "float"),
    "power.draw.instant": ("power_w", "float"), "power.limit": ("power_limit_w", "float"),
    "pstate": ("performance_state", "text"), "fan.speed": ("fan_percent", "num"),
    "persistence_mode": ("persistence_mode", "flag"), "mig.mode.current": ("mig_mode", "mode"),
    "compute_mode": ("compute_mode", "text"), "ecc.mode.current": ("ecc.mode", "mode"),
    "ecc.errors.uncorrected.volatile.total": ("ecc.volatile_uncorrected", "int"),
    "ecc.errors.uncorrected.aggregate.total": ("ecc.aggregate_uncorrected", "int"),
    "ecc.errors.corrected.volatile.total": ("ecc.volatile_corrected", "int"),
    "ecc.errors.corrected.aggregate.total": ("ecc.aggregate_corrected", "int"),
    "retired_pages.pending": ("retired_pages.pending", "flag"),
    "retired_pages.sbe": ("retired_pages.single_bit", "int"), "retired_pages.dbe": ("retired_pages.double_bit", "int"),
    # the header names a field by its long name whatever alias the query used (sbe, dbe)
    "retired_pages.single_bit_ecc.count": ("retired_pages.single_bit", "int"),
    "retired_pages.double_bit.count": ("retired_pages.double_bit", "int"),
    "fabric.state": ("fabric.state", "text"), "fabric.status": ("fabric.status", "raw"),
    "gpu_recovery_action": ("recovery_action", "text"),
    "remapped_rows.pending": ("remapped_rows.pending", "flag"), "remapped_rows.failure": ("remapped_rows.failure", "flag"),
    "remapped_rows.correctable": ("remapped_rows.corrected", "int"),
    "remapped_rows.uncorrectable": ("remapped_rows.uncorrected", "int"),
}
# Only a parse table: the probe asks for -q -x, never for these names, so a driver that does not know
# one (nvidia-smi refuses the whole query: "Field ... is not a valid field to query") breaks nothing.
_CSV_FIELDS.update((field, ("conditions." + name, "flag"))
                   for name, (_paths, fields, _problem) in CONDITIONS.items() for field in fields)
_CSV_KEY_FIELD = {"model": "model", "vram_total_bytes": "vram_total", "vram_used_bytes": "vram_used",
                  "busy_percent": "busy_percent", "memory_busy_percent": "memory_busy_percent",
                  "temperature_edge_c": "temperature", "power_w": "power", "performance_state": "performance_state",
                  "fan_percent": "fan_percent", "persistence_mode": "persistence_mode", "compute_mode": "compute_mode",
                  "mig_mode": "mig_mode", "ecc.mode": "ecc_mode", "power_limit_w": "power_limit"}
_REASON_PREFIXES = ("clocks_event_reasons.", "clocks_throttle_reasons.", "clocks_throttle_reason.")
# Field names are lower case but for a few in camelCase (pci.baseClass, fabric.cliqueId, encoder.stats.sessionCount).
_HEADER_CELL = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*)(?:\s*\[([^\]]*)\])?$")


def _csv_header(cells):
    """[(field, unit)] when ``cells`` is a --format=csv header line, else None."""
    parsed = []
    for cell in cells:
        match = _HEADER_CELL.match(cell.strip())
        if not match:
            return None
        parsed.append((match.group(1), match.group(2)))
    known = sum(1 for field, _unit in parsed if field in _CSV_FIELDS or field.startswith(_REASON_PREFIXES))
    return parsed if known else None


def parse_csv(stdout, fields=None):
    """(cards, error) from --query-gpu CSV. ``fields``: the query's field names when there is no header."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip() and "," in line]
    lines = [line for line in lines if not _HANDLE_ERROR.search(line)]
    if not lines:
        return [], None
    header = _csv_header(lines[0].split(","))
    if header is not None:
        lines = lines[1:]
    elif fields:
        header = [(f.strip(), None) for f in fields]
    else:
        return [], "CSV without a header line and without the query's field names"
    cards = []
    for position, line in enumerate(lines):
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(header):
            continue  # a wrapped or foreign line
        card = blank_card(position)
        reads = _Reads(card)
        reasons, seen, known, held = [], set(), set(), {}
        for (field, unit), cell in zip(header, cells):
            if field.startswith(_REASON_PREFIXES):
                if flag(cell):
                    reasons.append(field.split(".", 1)[1])
                card["clocks_event_reasons"] = reasons
                continue
            spec = _CSV_FIELDS.get(field)
            if spec is None:
                continue
            key, kind = spec
            if key in known:
                continue  # power.draw, .average, .instant: the first column that knows the value
            if key in HELD_READINGS:
                value = held_reading(key, cell, unit)[0]
                held.setdefault(key, (cell, unit))  # judged once every column is read (MIG mode, a later column)
            else:
                value = _convert(cell, kind, unit)
            _put(card, key, value)
            if key not in seen:
                seen.add(key)
                reads.note(_CSV_KEY_FIELD.get(key, key), reading(cell)[1])
            if value is not None:
                known.add(key)
        for key, (cell, unit) in held.items():
            if key not in known:
                _hold(card, key, cell, unit)
        cards.append(card)
    return cards, None


def _convert(cell, kind, unit):
    if kind == "mem":
        return mem_bytes(cell, unit)
    if kind == "int":
        got = number(cell)
        return int(got) if got is not None else None
    if kind == "num":
        return number(cell)
    if kind == "float":
        return _float(number(cell))
    if kind == "flag":
        return flag(cell)
    if kind == "mode":
        return _mode(cell)
    if kind == "bdf":
        return normalize_bdf(reading(cell)[0] or "")
    if kind == "raw":  # kept as written, as the XML's fabric status: "Unknown Error" there is no failed read
        return " ".join(cell.strip("[]").split()) or None
    return reading(cell)[0]


def _put(card, key, value):
    if "." in key:
        group, name = key.split(".", 1)
        card[group][name] = value
    else:
        card[key] = value


# --------------------------------------------------------------------------------------------
# the list (nvidia-smi -L): index, name and UUID of each GPU it can open, its MIG devices under it

# Indices and PIDs: at most 9 and 10 digits (a longer run is garbage, and int() refuses 4300 digits or more).
# [ \t], not \s: searched over the whole output, "^\s*" would rescan every run of blank lines from each of its lines.
_LIST_GPU = re.compile(r"^[ \t]*GPU[ \t]+(\d{1,9}):[ \t]*(.*?)[ \t]*\(UUID:[ \t]*(GPU-[^)\s]+)\)[ \t]*$", re.M)
_LIST_MIG = re.compile(r"^\s+MIG\s+.*?Device\s+\d+:\s*\(UUID:\s*MIG-[^)\s]+\)\s*$")


def parse_list(stdout):
    """Cards from ``nvidia-smi -L``: index, model, uuid and the number of MIG devices; nothing else is known."""
    cards = []
    for line in stdout.splitlines():
        match = _LIST_GPU.match(line)
        if match:
            card = blank_card(len(cards))
            card.update(index=int(match.group(1)), model=reading(match.group(2))[0], uuid=match.group(3))
            _Reads(card).note("model", reading(match.group(2))[1])
            cards.append(card)
        elif cards and _LIST_MIG.match(line):
            cards[-1]["mig_devices"] += 1
    return cards


# --------------------------------------------------------------------------------------------
# the default table (plain nvidia-smi): best effort

# The first row's last column: persistence mode (Linux), or the driver model (Windows, "Driver-Model").
_DRIVER_MODELS = ("WDDM", "TCC", "MCDM")
_TABLE_ROW1 = re.compile(r"^\s*(\d{1,9})\s+(.*?)\s+(On|Off|ERR!|N/A|" + "|".join(_DRIVER_MODELS) + r")\s*$")
# The banner: "Driver Version:" / "CUDA Version:", since 610 "KMD Version:" / "CUDA UMD Version:".
_TABLE_VERSIONS = (("driver_version", re.compile(r"(?:Driver|KMD) Version:\s*(\S+)")),
                   ("cuda_version", re.compile(r"CUDA (?:UMD )?Version:\s*(\S+)")))
# A GPU's first framed row: "|  13  <name>  On  |   00000000:C9:00.0 Off |  Off |" (the address N/A on an integrated
# GPU). It makes a table of a paste that lost the banner and the column titles (an excerpt of the GPUs in question).
_TABLE_GPU_LINE = re.compile(r"^[ \t]*\|[ \t]*\d+[ \t]+[^|\n]*\|[ \t]*(?:" + _BDF_TEXT + r"|N/A)[ \t]+\S+[ \t]*\|[^|\n]*\|[ \t]*$",
                             re.M)
# "629W /  700W", "N/A /  N/A": the slash between two cells, never the one inside N/A.
_TABLE_PAIR = re.compile(r"(?<!N)/(?!A)")
# A process row that holds no process: "0   Not Supported" (GeForce on drivers to the 340s): the list is unknown.
_TABLE_PROC_GAP = re.compile(r"^\s*(\d{1,9})\s+(\S.*?)\s*$")
# GPU [GI CI] PID Type Process-name Memory: the GI and CI columns came with MIG (450); older tables have none.
_TABLE_PROC = re.compile(r"^\s*(\d{1,9})\s+(?:(\S+)\s+(\S+)\s+)?(\d{1,10})\s+(\S+)\s+(.*?)\s+(\d+MiB|N/A)\s*$")


def parse_table(stdout):
    """(cards, processes) from the default table; cards carry the table's own GPU index."""
    lines = stdout.splitlines()
    cards, processes, section, gaps = [], [], None, {}
    block = []
    for line in lines:
        stripped = line.strip()
        if "GPU  Name" in line:
            section = "gpus"
            continue
        if section is None and _TABLE_GPU_LINE.match(line):
            section = "gpus"  # no column titles above it: an excerpt of the table
        if "processes:" in line.lower():  # "Compute processes:" in tables to the 340s
            section = "processes"
            continue
        if section is None or not stripped.startswith("|"):
            if stripped.startswith("+") and block:
                _table_card(block, cards)
                block = []
            continue
        cells = stripped.strip("|").split("|")
        if set(stripped) <= set("|=+- "):
            block = []  # the ==== line under the column titles: GPU rows start after it
            continue
        if section == "gpus" and len(cells) >= 3:
            block.append(cells)
        elif section == "processes":
            match = _TABLE_PROC.match(stripped.strip("|"))
            gap = None if match else _TABLE_PROC_GAP.match(stripped.strip("|"))
            if gap and _no_process_list(gap.group(2)):
                gaps[int(gap.group(1))] = " ".join(gap.group(2).split())
            if match:
                processes.append({"table_index": int(match.group(1)), "pid": int(match.group(4)),
                                  "type": match.group(5), "command": match.group(6),
                                  "name": process_name(match.group(6)), "vram_bytes": match.group(7),
                                  "gpu_instance_id": number(match.group(2))})  # the GI column (MIG), N/A else
    if block:
        _table_card(block, cards)
    by_index = dict((c["index"], c) for c in cards)
    for index, text in gaps.items():
        if index in by_index:
            by_index[index]["processes_unknown"] = text
    for proc in processes:
        card = by_index.get(proc.pop("table_index"))
        proc["vram_bytes"] = process_vram(proc["vram_bytes"], proc["pid"], card)
        proc["bdf"] = card["bdf"] if card else None
        proc["gpu_position"] = card["position"] if card else None
    return cards, processes


def _table_card(block, cards):
    """One GPU from its three table rows (index/name/persistence | bus-id/disp | ECC ; fan ... ; MIG)."""
    first = block[0]
    match = _TABLE_ROW1.match(first[0])
    if not match or len(block) < 2:
        return
    card = blank_card(len(cards))
    reads = _Reads(card)
    card["index"] = int(match.group(1))

    def cell(field, text):
        reads.note(field, reading(text)[1])
        return text

    card["model"] = reading(cell("model", match.group(2)))[0]
    if match.group(3) not in _DRIVER_MODELS:
        card["persistence_mode"] = flag(cell("persistence_mode", match.group(3)))
    bus = first[1].split()
    card["bdf"] = normalize_bdf(bus[0]) if bus else None
    if len(bus) > 1:
        cell("display_active", bus[1])
    ecc = first[2].strip()
    cell("volatile_ecc", ecc)
    card["ecc"]["volatile_uncorrected"] = number(ecc)
    second = block[1]
    parts = second[0].split()
    if len(parts) >= 4:
        card["fan_percent"] = number(cell("fan_percent", parts[0]).rstrip("%"))
        _hold(card, "temperature_edge_c", cell("temperature", parts[1]).rstrip("C"))
        card["performance_state"] = reading(cell("performance_state", parts[2]))[0]
        watts = _TABLE_PAIR.split(" ".join(parts[3:]))
        _hold(card, "power_w", cell("power", watts[0].strip()).rstrip("W"))
        if len(watts) > 1:
            card["power_limit_w"] = _float(number(cell("power_limit", watts[1].strip()).rstrip("W")))
    memory = _TABLE_PAIR.split(second[1])
    if len(memory) == 2:
        _hold(card, "vram_used_bytes", cell("vram_used", memory[0].strip()))
        _hold(card, "vram_total_bytes", cell("vram_total", memory[1].strip()))
        if card["vram_used_bytes"] is not None and card["vram_total_bytes"] is not None:
            card["vram_free_bytes"] = card["vram_total_bytes"] - card["vram_used_bytes"]
    util = second[2].split()
    mig = block[2][-1].strip() if len(block) > 2 else None
    card["mig_mode"] = _mode(mig)  # before the utilisation: its N/A is normal under MIG
    if util:
        _hold(card, "busy_percent", cell("busy_percent", util[0]).rstrip("%"))
    if len(util) > 1:
        card["compute_mode"] = reading(cell("compute_mode", util[1]))[0]
    if mig is not None:
        cell("mig_mode", mig)
    cards.append(card)


# --------------------------------------------------------------------------------------------
# error texts, and the whole output

def _is_prose(line):
    # Not the table's framed lines, nor CSV rows (a reason wrapped over lines has no comma in it).
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith(("|", "+")) and (
        "," not in stripped or "device handle" in stripped)


def gpu_errors(text):
    """Per-GPU failures nvidia-smi printed: [{bdf, health, message}] (wrapped lines joined); health is
    lost, degraded, or unknown where the reason is not the GPU's (see _HANDLE_REASONS).

    Only the prose counts: the XML document (not a line printed between its elements, as when stderr is merged into
    it), the table's framed lines and CSV rows are left out.
    """
    text = text or ""
    start = text.find("<?xml")
    if start < 0:
        start = text.find("<nvidia_smi_log")
    if start >= 0:  # the XML's own lines, but an error line printed between its elements (stderr merged into it)
        end = text.find("</nvidia_smi_log>", start)
        end = end + len("</nvidia_smi_log>") if end >= 0 else len(text)
        between = [line for line in text[start:end].splitlines()
                   if not line.strip().startswith("<") and (_HANDLE_ERROR.search(line) or _FELL_OFF.search(line))]
        text = text[:start] + "\n" + "\n".join(between) + "\n" + text[end:]
    start = qtext_start(text)
    if start:  # the -q text's own lines: indented, "Name : value", "GPU <address>"
        begin, margin = start
        document = [line for line in text[begin:].splitlines()
                    if not (line[len(margin):len(margin) + 1].isspace() or _QTEXT_GPU.match(line[len(margin):])
                            or _QTEXT_KV.match(line[len(margin):]))]
        text = text[:begin] + "\n" + "\n".join(document)
    prose = " ".join(line.strip() for line in text.splitlines() if _is_prose(line))
    found, ranks = {}, {}

    def add(bdf, reason, message):
        # Several errors for one GPU: the worst health wins, then the _HANDLE_REASONS entry listed first ("GPU is
        # lost" over "Unknown Error"), then the first printed; never simply the last.
        lowered = reason.lower()
        index = next((i for i, (words, _level) in enumerate(_HANDLE_REASONS) if words in lowered), len(_HANDLE_REASONS))
        health = _HANDLE_REASONS[index][1] if index < len(_HANDLE_REASONS) else DEGRADED
        rank = (_ERROR_ORDER.index(health), -index)
        if bdf not in ranks or rank > ranks[bdf]:
            ranks[bdf] = rank
            found[bdf] = {"bdf": bdf, "health": health, "message": message}

    for match in _HANDLE_ERROR.finditer(prose):
        reason = " ".join(match.group(2).split())[:200].rstrip(" .") or "no reason given"
        add(normalize_bdf(match.group(1)), reason, "nvidia-smi cannot open the GPU: %s" % reason)
    for match in _FELL_OFF.finditer(prose):
        words = " ".join(match.group(0).split())
        add(normalize_bdf(match.group(1)), words, "nvidia-smi: %s" % words)
    return [found[bdf] for bdf in sorted(found)]


def _add_notices(cards, text):
    """Each _GPU_NOTICES warning onto the card of the GPU it names (a GPU without a card has a worse verdict)."""
    by_bdf = dict((card["bdf"], card) for card in cards if card["bdf"])
    for regex, warning in _GPU_NOTICES:
        for match in regex.finditer(text):
            card = by_bdf.get(normalize_bdf(match.group(1)))
            if card is not None and warning not in card["notices"]:
                card["notices"].append(warning)


def _driver_down(text):
    """The reason of the first line saying the driver did not answer (_DRIVER_DOWN), the line quoted; or None."""
    for line in (text or "").splitlines():
        lowered = line.lower()
        for marker, meaning in _DRIVER_DOWN:
            if marker in lowered:
                return "%s: %s" % (meaning, " ".join(line.split())[:300])
    return None


_LINE_ENDS = re.compile(r"\r\n?")


def parse_output(stdout, stderr="", rc=0, csv_fields=None):
    """Everything nvidia-smi said, whatever it was asked.

    Returns {outcome, format, cards, processes, errors, system, reason}: ``format`` is 'xml', 'text',
    'csv', 'table', 'list' (``-L``) or None; ``errors`` the per-GPU failures (see ``gpu_errors``); ``reason`` one line when
    the outcome is not ``answered``.
    """
    # nvidia-smi.exe writes CRLF (a Windows console's text mode); a bare CR ends a line too. One line end for every
    # reader below, whose patterns end a line at "$".
    stdout, stderr = (_LINE_ENDS.sub("\n", clean_text(text or "")) for text in (stdout, stderr))
    result = {"outcome": None, "format": None, "cards": [], "processes": [], "errors": [], "system": {},
              "reason": None}
    if len(stdout) + len(stderr) > MAX_OUTPUT_CHARS:
        result.update(outcome=UNPARSEABLE, reason="nvidia-smi printed %d characters, over the %d limit: not parsed"
                      % (len(stdout) + len(stderr), MAX_OUTPUT_CHARS))
        return result
    combined = stdout + "\n" + stderr
    result["errors"] = gpu_errors(combined)
    parse_error = None
    if "<nvidia_smi_log" in stdout:
        cards, processes, system, parse_error = parse_xml(stdout)
        result.update(format="xml", cards=cards, processes=processes, system=system)
    elif qtext_start(stdout):
        cards, processes, system, parse_error = parse_qtext(stdout)
        result.update(format="text", cards=cards, processes=processes, system=system)
    elif ("NVIDIA-SMI" in stdout and "|" in stdout) or _TABLE_GPU_LINE.search(stdout):
        cards, processes = parse_table(stdout)
        result.update(format="table", cards=cards, processes=processes)
        found = [(key, regex.search(stdout)) for key, regex in _TABLE_VERSIONS]
        result["system"] = dict((key, match.group(1) if match else None) for key, match in found)
    elif _LIST_GPU.search(stdout):
        result.update(format="list", cards=parse_list(stdout))
    else:
        cards, parse_error = parse_csv(stdout, csv_fields)
        if cards:
            result.update(format="csv", cards=cards)
    if result["cards"]:
        _add_notices(result["cards"], combined)
        result["outcome"] = ANSWERED
        return result
    driver = _driver_down(combined)
    if result["errors"]:
        result.update(outcome=GPU_ERRORS, reason="; ".join(
            "%s: %s" % (e["bdf"], e["message"]) for e in result["errors"]))
    elif driver:
        result.update(outcome=NO_DRIVER, reason=driver)
    elif _NO_DEVICES.search(combined):
        result.update(outcome=NO_DATA, reason="nvidia-smi found no GPU (%s)" % _NO_DEVICES.search(combined).group(0))
    elif rc:
        result.update(outcome=FAILED, reason="nvidia-smi exited %s: %s" % (
            rc, parse_error or first_line(stderr) or first_line(stdout) or "no output"))
    else:
        result.update(outcome=UNPARSEABLE, reason="nvidia-smi printed nothing readable: %s" % (
            parse_error or first_line(stdout) or first_line(stderr) or "no output"))
    return result
