"""GPU health history: how often each finding came back, per GPU, over the summary files.

Every run of a family (preflight, cleanup, training health, serving gate) writes one summary document
(docs/SUMMARY_SCHEMA.md), named as the family's ``file_prefix`` says: ``summary_step3_<stamp>.json``,
``summary_step2.5_<stamp>.json``, ``cleanup_step3_<stamp>.json``, ``training_health_<stamp>.json``,
``serving_gate_<stamp>.json`` (and the local serving gate's ``local_gate_<instance>_<stamp>.json``).
``scan(summary_dir)`` reads them in one pass and keeps, per file, a compact extract (per host and GPU:
health, excluded/watchlisted, and the run's findings about that GPU); the extracts are kept in an index cache file keyed by file name, size and mtime, so a
second scan reads only the files that are new or changed. ``analyse(scan, ...)`` then tells per
GPU how often each finding came back in the last N runs that checked its host ("rig-6600 GPU 10:
SMU not answering in 5 of the last 20 preflights, last 2 h ago") and suggests ``gpu_watchlist`` or
``excluded_gpus`` past configurable thresholds.

A finding about a GPU is one of:

* its health when not ``ok`` (``lost``, ``degraded``: hard; ``unknown``: the GPU tool gave no
  answer, never a hardware verdict, so it never leads to a suggestion);
* a kernel-log finding attributed to its PCI address (keyed by the pattern's summary, e.g.
  ``SMU not answering (0xFFFFFFFF)``, with its severity); the same kernel line read again by a
  later run counts as the same event (``distinct_events``);
* a problem of another check about it (``vram``, ``gpu_temperature``, ...): hard when it is a
  ``fail`` (a hard check), soft when a ``warn``;
* ``missing``: a GPU seen on the host before is absent from a run that reported the host's GPUs.

Nothing here fails on a bad file: a corrupt, truncated, non-JSON or non-UTF-8 file, a FIFO, a
folder named like a summary, a file too large, or a JSON document that is not a summary is
skipped and counted by reason.
"""

from __future__ import annotations

import calendar
import errno
import fnmatch
import hashlib
import json
import math
import os
import re
import stat
import time
from collections import Counter
from typing import Any, Iterable

DEFAULT_SUMMARY_DIR = "~/.local/state/gpuops-preflight"
HISTORY_SCHEMA = "gpuops.preflight.history"
HISTORY_SCHEMA_VERSION = 1
# Bump when extract() changes what it keeps: an index of another version is rebuilt from the files.
# 2: decimal steps kept, and whether a host has GPUs of two vendors. 3: the run's identity.
INDEX_VERSION = 3
MAX_SUMMARY_BYTES = 64 * 1024 * 1024  # a summary of 1,000 rigs is a few MiB
DEFAULT_WINDOW = 20
DEFAULT_WATCHLIST_AFTER = 2
DEFAULT_EXCLUDE_AFTER = 3

HARD, SOFT, UNKNOWN = "hard", "soft", "unknown"
HEALTHY = "ok"
HEALTH_SEVERITY = {"lost": HARD, "degraded": HARD, "unknown": UNKNOWN}
# Checks whose evidence about a GPU is read directly (health, kernel-log findings): their items
# would count the same thing twice.
DIRECT_CHECKS = ("gpu_health", "kernel_log")
SEVERITY_ORDER = {HARD: 0, SOFT: 1, UNKNOWN: 2}
ITEM_SEVERITY = {"fail": HARD, "warn": SOFT, "unknown": UNKNOWN}
# Why a file was skipped (counted per reason).
NOT_REGULAR, TOO_LARGE, UNREADABLE, NOT_JSON, NOT_SUMMARY, NEWER_SCHEMA = (
    "not a regular file", "too large", "unreadable", "not JSON", "not a summary document",
    "a newer schema_version")
# Not bad files, left out of a scan: a run that finished more than FUTURE_SKEW_S after now (a controller
# clock set ahead would keep it the "latest" run until that date), and a second file of the same run.
FUTURE_SKEW_S = 24 * 3600
FUTURE, DUPLICATE = "finished more than 24 h from now", "a copy of another file's run"


# ---------------------------------------------------------------- extracting one summary


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def utc_text(value: Any, form: str = "%Y-%m-%d %H:%M UTC", unknown: str = "?") -> str:
    """Epoch seconds as UTC text; ``unknown`` for None or a time gmtime cannot hold (1e300, NaN)."""
    if value is None:
        return unknown
    try:
        return time.strftime(form, time.gmtime(value))
    except (OverflowError, OSError, ValueError, TypeError):
        return unknown


def epoch(value: Any) -> float | None:
    """A summary's ISO 8601 time as epoch seconds; None when it is not one."""
    try:
        return _collection("_timeparse").parse_time(value, "finished_at")
    except (TypeError, ValueError):
        return None


def _collection(name: str) -> Any:
    """One of the collection's module_utils (``_plan``, ``_pci``, ...)."""
    from . import collection

    return collection.module_utils(name)


_NAME_PATTERNS: list = []


def _name_patterns() -> list:
    """(pattern, group of the UTC stamp) of every summary file name: any family's (``_plan.ANY_SUMMARY``:
    ``<prefix>[_step<N>]_<stamp>[-<n>].json``, N whole or decimal, no step for a family without steps; found
    without importing every family to list their prefixes), then the local serving gate's
    ``local_gate_<instance>_<stamp>`` and the ``summary_<instance>_<stamp>`` it wrote before. Which kind a
    file is comes from its document (``extract``)."""
    if not _NAME_PATTERNS:
        serving = _collection("_serving")
        _NAME_PATTERNS[:] = [(_collection("_plan").ANY_SUMMARY, 2), (serving.GATE_SUMMARY_NAME, 1),
                             (serving.LEGACY_GATE_SUMMARY_NAME, 1)]
    return _NAME_PATTERNS


def summary_stamp(name: str) -> str | None:
    """The UTC stamp in a summary file's name (``20261125T150212.000001Z``); None when the name is no summary's."""
    for pattern, group in _name_patterns():
        match = pattern.match(name)
        if match:
            return match.group(group)
    return None


def family(kind: Any) -> Any:
    """The collection's family of ``kind``; ValueError listing the known kinds."""
    return _collection("_families").family(kind)


def runs_word(kind: str) -> str:
    """How texts count a kind's runs: ``preflights``, ``cleanups``, ``training health runs``."""
    word = family(kind).word.lower()
    return word + " runs" if " " in word else word + "s"


def _step(value: Any) -> int | float | None:
    """A summary's step: a number, whole or decimal (3, 2.5); None for a run without one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def _stamp_epoch(name: str) -> float | None:
    """The UTC time in a summary file's name (20261125T150212.000001Z)."""
    text = summary_stamp(name)
    if text is None:
        return None
    try:
        return calendar.timegm(time.strptime(text[:15], "%Y%m%dT%H%M%S")) + int(text[16:22]) / 1e6
    except (ValueError, OverflowError):
        return None


def _gpu_key(gpu: dict) -> str:
    bdf = _str(gpu.get("bdf"))
    if bdf:
        return bdf
    index = gpu.get("index")
    return "index:%s" % index if isinstance(index, int) and not isinstance(index, bool) else ""


def _strip_host(message: str, host: str) -> str:
    prefix = host + ": "
    return message[len(prefix):] if message.startswith(prefix) else message


def _gpu_findings(host: str, entry: dict, gpu: dict, items: list[dict]) -> list[list]:
    """[key, text, severity, event] for each finding about this GPU in this run (event: '' or a digest)."""
    found: dict[str, list] = {}
    health = _str(gpu.get("health"))
    if health and health != HEALTHY:
        # Kernel-log reasons are counted one by one below; the others (all-ones config space, no
        # driver, the tool's silence) say what the state rests on.
        problems = "; ".join(p for p in _list(gpu.get("problems")) if isinstance(p, str)
                             and not p.startswith("kernel log:"))
        found["health:" + health] = ["health:" + health, "%s (%s)" % (health, problems) if problems else health,
                                     HEALTH_SEVERITY.get(health, UNKNOWN), ""]
    bdf = _str(gpu.get("bdf"))
    for finding in _list(_dict(entry.get("kernel_log")).get("findings")):
        finding = _dict(finding)
        if not bdf or finding.get("bdf") != bdf:
            continue
        summary = _str(finding.get("summary")) or _str(finding.get("category")) or "kernel log finding"
        key = "kernel:" + summary
        severity = HARD if finding.get("severity") == HARD else SOFT
        # The same kernel line read again by a later run is the same event: a short digest of it.
        event = hashlib.sha1(("%s|%s" % (finding.get("first_seen"), finding.get("message"))).encode(
            "utf-8", "surrogatepass")).hexdigest()[:12]
        if key not in found:
            found[key] = [key, "", severity, event]  # the text is the key's: kept once
        else:
            found[key][3] = min(found[key][3], event)
    for item in items:
        ref = _dict(item.get("gpu"))
        check = _str(item.get("check"))
        if not check or check in DIRECT_CHECKS or item.get("host") != host:
            continue
        if not ((bdf and ref.get("bdf") == bdf) or (not bdf and ref.get("index") == gpu.get("index"))):
            continue
        key = "check:" + check
        severity = ITEM_SEVERITY.get(_str(item.get("status")) or "", UNKNOWN)
        text = "%s: %s" % (check, _strip_host(_str(item.get("message")) or "", host))
        if key not in found or severity == HARD:
            found[key] = [key, text, severity, ""]
    return list(found.values())


# The fields readers use and their types (docs/SUMMARY_SCHEMA.md): one of another type is read as absent.
_TOP_TYPES = {"hard_failures": list, "warnings": list, "notes": list, "run_checks": dict, "totals": dict,
              "summary_file": str, "passed": bool, "blocked": bool}
_HOST_TYPES = {"gpus": list, "checks": dict, "status": str, "error": str, "address": str}
_GPU_TYPES = {"bdf": str, "model": str, "health": str, "problems": list, "excluded": bool, "watchlisted": bool}
_ITEM_TYPES = {"check": str, "message": str, "fix": str, "host": str, "status": str}


def _drop_mistyped(value: dict, types: dict, where: str, dropped: list) -> None:
    for key, kind in types.items():
        if key in value and value[key] is not None and not isinstance(value[key], kind):
            dropped.append(where + key)
            del value[key]


def typed(document: Any) -> dict:
    """A summary document whose fields all have the types the schema gives, else ValueError(reason).

    Not a summary (another schema, no kind, no hosts) and a newer ``schema_version`` are reasons to skip
    the file; a known field of the wrong type (``gpus: 5``, a list as ``bdf``) is removed (read as absent)
    and named in a note of the document, so one odd field never stops a report. ``document`` is changed.
    """
    if not isinstance(document, dict) or document.get("schema") != _collection("_plan").SUMMARY_SCHEMA:
        raise ValueError(NOT_SUMMARY)
    version = document.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(NOT_SUMMARY)
    if version > _collection("_summary").SCHEMA_VERSION:
        raise ValueError(NEWER_SCHEMA)
    if not _str(document.get("kind")) or not isinstance(document.get("hosts"), dict):
        raise ValueError(NOT_SUMMARY)
    dropped: list[str] = []
    _drop_mistyped(document, _TOP_TYPES, "", dropped)
    for key in ("hard_failures", "warnings"):
        for item in _list(document.get(key)):
            if isinstance(item, dict):
                _drop_mistyped(item, _ITEM_TYPES, key + "[].", dropped)
    for host, entry in list(document["hosts"].items()):
        if not isinstance(entry, dict):
            dropped.append("hosts.%s" % host)
            document["hosts"][host] = entry = {}
        _drop_mistyped(entry, _HOST_TYPES, "hosts.%s." % host, dropped)
        for gpu in _list(entry.get("gpus")):
            if isinstance(gpu, dict):
                _drop_mistyped(gpu, _GPU_TYPES, "hosts.%s.gpus[]." % host, dropped)
    if dropped:
        shown = sorted(set(dropped))
        document.setdefault("notes", []).append("fields of the wrong type read as absent: %s%s" % (
            ", ".join(shown[:10]), " and %d more" % (len(shown) - 10) if len(shown) > 10 else ""))
    return document


def extract(document: Any, name: str, gpusets: "GpuSets") -> dict:
    """The compact record of one summary document (``typed``); ValueError when it is not a summary."""
    document = typed(document)
    kind = document["kind"]
    hosts = document["hosts"]
    finished = epoch(document.get("finished_at"))
    if finished is None:
        finished = _stamp_epoch(name)
    items = [i for i in _list(document.get("hard_failures")) + _list(document.get("warnings")) if isinstance(i, dict)]
    pci = _collection("_pci")
    record_hosts = {}
    for host, entry in hosts.items():
        entry = _dict(entry)
        gpus = [g for g in _list(entry.get("gpus")) if isinstance(g, dict) and _gpu_key(g)]
        observed = bool(gpus) or isinstance(entry.get("gpu_count"), int)
        identity = [[_gpu_key(g), g.get("index") if isinstance(g.get("index"), int) else None,
                     _str(g.get("model"))] for g in gpus]
        findings = {}
        for pos, gpu in enumerate(gpus):
            got = _gpu_findings(host, entry, gpu, items)
            if got:
                findings[str(pos)] = got
        record_hosts[host] = {
            "status": _str(entry.get("status")) or "",
            "observed": observed,
            # GPUs of two vendors: each tool numbers its own from 0, so an index names no GPU there
            "mixed": bool(pci.mixed_vendors(gpus)),
            "set": gpusets.intern(identity),
            "health": [_str(g.get("health")) or UNKNOWN for g in gpus],
            "excluded": [pos for pos, g in enumerate(gpus) if g.get("excluded") is True],
            "watch": [pos for pos, g in enumerate(gpus) if g.get("watchlisted") is True],
            "findings": findings,
        }
    started, finished_at = _str(document.get("started_at")), document.get("finished_at")
    return {
        "file": name,
        "kind": kind,
        # the same run in two files (a copy, a restore): the schema has no run id, and these fields, to the
        # microsecond, are the run's own
        "identity": json.dumps([kind, document.get("step"), started, finished_at, _str(document.get("instance"))],
                               default=str) if started and finished_at else None,
        "step": _step(document.get("step")),
        "finished": finished,
        "passed": document.get("passed") is not False,
        "hard_failures": len(_list(document.get("hard_failures"))),
        "warnings": len(_list(document.get("warnings"))),
        "hosts": record_hosts,
    }


class GpuSets(object):
    """GPU identity lists ([[key, index, model], ...]) stored once: most runs of a host share one."""

    def __init__(self, sets: Iterable[list] = ()):
        self.sets: list[list] = []
        self._ids: dict[str, int] = {}
        for gpus in sets:
            self.intern(gpus)

    def intern(self, gpus: list) -> int:
        key = json.dumps(gpus, separators=(",", ":"))
        if key not in self._ids:
            self._ids[key] = len(self.sets)
            self.sets.append(gpus)
        return self._ids[key]

    def get(self, number: Any) -> list:
        return self.sets[number] if isinstance(number, int) and 0 <= number < len(self.sets) else []


# ---------------------------------------------------------------- reading the folder, with the index


class Scan(object):
    """What one pass over a summary folder found: records (oldest first) and what was skipped."""

    def __init__(self, summary_dir: str):
        self.summary_dir = summary_dir
        self.records: list[dict] = []
        self.gpusets = GpuSets()
        self.skipped: Counter = Counter()
        self.read = 0      # files parsed in this pass
        self.cached = 0    # files taken from the index
        self.notes: list[str] = []
        self.index_path: str | None = None


def default_cache_path(summary_dir: str) -> str:
    """$XDG_CACHE_HOME/gpuops-preflight/history-<hash of the folder>.json (else ~/.cache/...)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    digest = hashlib.sha256(os.path.realpath(summary_dir).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return os.path.join(base, "gpuops-preflight", "history-%s.json" % digest)


def files_module() -> Any:
    """The collection's _files (non-blocking bounded reads, atomic writes)."""
    return _collection("_files")


def _read_bounded(path: str, limit: int) -> bytes:
    """A regular file's bytes, never blocking on a FIFO or device; ValueError(reason) or OSError."""
    files = files_module()
    try:
        return files.read_regular(path, limit)
    except files.NotRegular:
        raise ValueError(NOT_REGULAR) from None
    except files.TooLarge:
        raise ValueError(TOO_LARGE) from None


def _load_index(path: str, summary_dir: str) -> tuple[dict, GpuSets]:
    try:
        raw = _read_bounded(path, 1 << 30)
        index = json.loads(raw)
    except (OSError, ValueError):
        return {}, GpuSets()
    if (not isinstance(index, dict) or index.get("version") != INDEX_VERSION
            or index.get("summary_dir") != os.path.realpath(summary_dir)
            or not isinstance(index.get("files"), dict) or not isinstance(index.get("gpusets"), list)):
        return {}, GpuSets()
    return index["files"], GpuSets(index["gpusets"])


def _write_index(path: str, summary_dir: str, files: dict, gpusets: GpuSets) -> None:
    """Atomically (temp file + rename); only the GPU sets still in use are kept."""
    used: dict[int, int] = {}
    kept = GpuSets()
    out = {}
    for name, (size, mtime, record) in files.items():
        if isinstance(record, dict):
            record = dict(record, hosts=dict(
                (h, dict(e, set=used.setdefault(e["set"], kept.intern(gpusets.get(e["set"])))))
                for h, e in record["hosts"].items()))
        out[name] = [size, mtime, record]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    index = {"version": INDEX_VERSION, "summary_dir": os.path.realpath(summary_dir), "gpusets": kept.sets,
             "files": out}
    files_module().write_atomic(path, json.dumps(index, separators=(",", ":")))


_HOST_FIELDS = (("status", str), ("observed", bool), ("mixed", bool), ("set", int), ("health", list),
                ("excluded", list), ("watch", list), ("findings", dict))


def _valid_record(record: Any, gpusets: GpuSets) -> bool:
    """An index entry as extract() makes it (a skip reason, or a record whose parts analyse() reads)."""
    if isinstance(record, str):
        return record in (NOT_REGULAR, TOO_LARGE, UNREADABLE, NOT_JSON, NOT_SUMMARY, NEWER_SCHEMA)
    if not isinstance(record, dict) or not isinstance(record.get("kind"), str) or not isinstance(
            record.get("file"), str) or not isinstance(record.get("hosts"), dict):
        return False
    if record.get("finished") is not None and not isinstance(record["finished"], (int, float)):
        return False
    if record.get("identity") is not None and not isinstance(record["identity"], str):
        return False
    for entry in record["hosts"].values():
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), t) for k, t in _HOST_FIELDS):
            return False
        if not 0 <= entry["set"] < len(gpusets.sets) or len(entry["health"]) != len(gpusets.sets[entry["set"]]):
            return False
        for findings in entry["findings"].values():
            if not isinstance(findings, list) or not all(isinstance(f, list) and len(f) == 4 for f in findings):
                return False
    return True


def _read_one(path: str, name: str, gpusets: GpuSets) -> dict | str:
    """The record of one file, or the reason it is skipped."""
    try:
        data = _read_bounded(path, MAX_SUMMARY_BYTES)
    except ValueError as exc:
        return str(exc)
    except OSError as exc:
        return NOT_REGULAR if exc.errno in (errno.EISDIR, errno.ENXIO) else UNREADABLE
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):  # bad JSON, truncated, or not UTF-8
        return NOT_JSON
    try:
        return extract(document, name, gpusets)
    except ValueError as exc:
        return NEWER_SCHEMA if str(exc) == NEWER_SCHEMA else NOT_SUMMARY
    except (TypeError, AttributeError, KeyError):
        return NOT_SUMMARY


def scan(summary_dir: str | None = None, cache_path: str | None = None, use_cache: bool = True,
         now: float | None = None) -> Scan:
    """One pass over the summary folder. OSError (naming the folder) when it cannot be listed.

    Files already in the index with the same size and mtime are not read again; the index is
    rewritten when anything changed (a failure to write it is a note, never an error). A run that
    finished more than FUTURE_SKEW_S after ``now`` and a second file of one run are left out, counted
    and (the first) named in a note.
    """
    folder = os.path.expanduser(summary_dir or DEFAULT_SUMMARY_DIR)
    result = Scan(folder)
    if not os.path.isdir(folder):
        reason = "no such folder" if not os.path.lexists(folder) else "not a folder"
        raise OSError("summary folder %s: %s" % (folder, reason))
    index_path = cache_path or default_cache_path(folder)
    result.index_path = index_path if use_cache else None
    old, gpusets = _load_index(index_path, folder) if use_cache else ({}, GpuSets())
    result.gpusets = gpusets
    files: dict[str, list] = {}
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise OSError("summary folder %s: cannot list it: %s" % (folder, exc.strerror or exc))
    for entry in entries:
        if summary_stamp(entry.name) is None:
            continue
        try:
            info = entry.stat()
        except OSError:
            result.skipped[UNREADABLE] += 1
            continue
        if not stat.S_ISREG(info.st_mode):
            result.skipped[NOT_REGULAR] += 1
            continue
        cached = old.get(entry.name)
        if (isinstance(cached, list) and len(cached) == 3 and cached[0] == info.st_size
                and cached[1] == info.st_mtime_ns and _valid_record(cached[2], gpusets)):
            record = cached[2]
            result.cached += 1
        else:
            record = _read_one(entry.path, entry.name, gpusets)
            result.read += 1
        files[entry.name] = [info.st_size, info.st_mtime_ns, record]
        if isinstance(record, dict):
            result.records.append(record)
        else:
            result.skipped[record] += 1
    result.records = _runs_to_keep(result, time.time() if now is None else now)
    result.records.sort(key=lambda r: (r.get("finished") or 0.0, r.get("file")))
    if use_cache and (result.read or set(files) != set(old)):
        try:
            _write_index(index_path, folder, files, gpusets)
        except (OSError, TypeError, ValueError) as exc:
            result.notes.append("history index not written to %s: %s" % (index_path, exc))
    return result


def _runs_to_keep(result: Scan, now: float) -> list[dict]:
    """The records less future-dated runs and copies of a run (the first file by name is kept)."""
    kept, seen, future = [], set(), []
    for record in result.records:
        finished = record.get("finished")
        if finished is not None and finished > now + FUTURE_SKEW_S:
            future.append(record["file"])
            result.skipped[FUTURE] += 1
        elif record.get("identity") is not None and record["identity"] in seen:
            result.skipped[DUPLICATE] += 1
        else:
            seen.add(record.get("identity"))
            kept.append(record)
    if future:
        result.notes.append("%d run(s) finished more than 24 h from now (a controller clock set ahead?), left out"
                            " of the history and the last verdict: %s%s" % (
                                len(future), ", ".join(future[:5]), ", ..." if len(future) > 5 else ""))
    return kept


def latest_summary(result: Scan, kind: str) -> dict | None:
    """The newest summary document of ``kind`` in full (read again, ``typed``), or None when there is none."""
    for record in reversed(result.records):
        if record.get("kind") != kind:
            continue
        try:
            document = typed(json.loads(_read_bounded(os.path.join(result.summary_dir, record["file"]),
                                                      MAX_SUMMARY_BYTES)))
        except (OSError, ValueError, RecursionError):
            continue  # replaced or removed since the scan: the one before it
        if document.get("kind") == kind:
            return document
    return None


# ---------------------------------------------------------------- per-GPU history


def parse_since(value: str | None, now: float) -> float | None:
    """--since: epoch seconds or ISO 8601 (the collection's one time parser), or a span ago: 30m, 24h, 7d, 2w."""
    if value is None or not str(value).strip():
        return None
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", str(value))
    if match:
        return now - float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
    try:
        return _collection("_timeparse").parse_time(value, "--since")
    except ValueError as exc:
        raise ValueError("%s, or a span ago such as 30m, 24h, 7d" % exc) from None


def parse_gpu(value: str | None) -> tuple | None:
    """--gpu: an index (3) or a PCI address, as an inventory names GPUs."""
    if value is None:
        return None
    text = value.strip()
    return _collection("_pci").parse_gpu_ref(int(text) if text.isdigit() else text)


def ago(seconds: float) -> str:
    """A span in words an operator reads at a glance (the collection's one wording)."""
    return _collection("_values").duration(max(0.0, seconds))


def _gpu_matches(ref: tuple | None, key: str, index: int | None) -> bool:
    if ref is None:
        return True
    kind, value = ref
    return index == value if kind == "index" else key == value


def _new_gpu(host: str, key: str, index: int | None, model: str | None) -> dict:
    return {"host": host, "index": index, "bdf": None if key.startswith("index:") else key, "model": model,
            "runs": 0, "health": None, "excluded": False, "watchlisted": False, "timeline": [],
            "findings": {}, "hard_runs": 0, "finding_runs": 0}


def _count(gpu: dict, findings: list, when: float | None) -> None:
    hard = soft = False
    for key, text, severity, event in findings:
        text = text or key.split(":", 1)[-1]
        entry = gpu["findings"].setdefault(key, {"key": key, "text": text, "severity": severity, "runs": 0,
                                                 "first_seen": when, "last_seen": when, "events": set()})
        entry["runs"] += 1
        entry["text"], entry["last_seen"] = text, when
        if severity == HARD:
            entry["severity"] = HARD
        if event:
            entry["events"].add(event)
        hard = hard or severity == HARD
        soft = soft or severity == SOFT
    gpu["hard_runs"] += hard
    gpu["finding_runs"] += hard or soft


def _host_runs(records: list[dict]) -> dict[str, list[tuple[dict, dict]]]:
    """host -> [(record, host entry)] for the runs that reported the host's GPUs, oldest first."""
    runs: dict[str, list] = {}
    for record in records:
        for host, entry in record["hosts"].items():
            if entry.get("observed"):
                runs.setdefault(host, []).append((record, entry))
    return runs


def _gpus_of_host(host: str, runs: list[tuple[dict, dict]], gpusets: GpuSets, ref: tuple | None) -> list[dict]:
    gpus: dict[str, dict] = {}
    for number, (record, entry) in enumerate(runs):
        identity = gpusets.get(entry.get("set"))
        present = set()
        for pos, (key, index, model) in enumerate(identity):
            if not _gpu_matches(ref, key, index):
                continue
            present.add(key)
            gpu = gpus.setdefault(key, _new_gpu(host, key, index, model))
            gpu["timeline"].extend([None] * (number - len(gpu["timeline"])))
            health = entry["health"][pos] if pos < len(entry["health"]) else UNKNOWN
            gpu.update(index=index if index is not None else gpu["index"], model=model or gpu["model"],
                       health=health, excluded=pos in entry["excluded"], watchlisted=pos in entry["watch"])
            gpu["runs"] += 1
            gpu["timeline"].append(health)
            _count(gpu, entry["findings"].get(str(pos), []), record.get("finished"))
        for key, gpu in gpus.items():
            if key not in present:  # seen before, absent now while the host reported its GPUs
                gpu["timeline"].extend([None] * (number - len(gpu["timeline"])))
                gpu["timeline"].append("missing")
                gpu["runs"] += 1
                gpu["health"] = "missing"
                _count(gpu, [["missing", "not found on the host (seen in an earlier run)", HARD, ""]],
                       record.get("finished"))
    for gpu in gpus.values():
        gpu["timeline"].extend([None] * (len(runs) - len(gpu["timeline"])))
    return sorted(gpus.values(), key=lambda g: (g["index"] is None, g["index"] or 0, g["bdf"] or ""))


def _suggest(gpu: dict, window: int, watch_after: int, exclude_after: int, word: str,
             mixed: bool = False) -> dict | None:
    """What to add the GPU to, if anything. It is named as the preflight accepts it (``_pci.gpu_name``): by index,
    or by PCI address where it has no index or its host has GPUs of two vendors (``mixed``: indices collide, and
    the preflight refuses an index there)."""
    if gpu["excluded"]:
        return None
    name = _collection("_pci").gpu_name(gpu, mixed)
    if name is None:
        name = gpu["index"]
    if gpu["hard_runs"] >= exclude_after:
        return {"add_to": "excluded_gpus", "host": gpu["host"], "gpu": name, "threshold": exclude_after,
                "reason": "hard findings in %d of the last %d %s" % (gpu["hard_runs"], window, word)}
    if gpu["finding_runs"] >= watch_after and not gpu["watchlisted"]:
        return {"add_to": "gpu_watchlist", "host": gpu["host"], "gpu": name, "threshold": watch_after,
                "reason": "findings in %d of the last %d %s" % (gpu["finding_runs"], window, word)}
    return None


def analyse(result: Scan, kind: str = "preflight", host: str | None = None, gpu: tuple | None = None,
            since: float | None = None, window: int = DEFAULT_WINDOW, watch_after: int = DEFAULT_WATCHLIST_AFTER,
            exclude_after: int = DEFAULT_EXCLUDE_AFTER, now: float | None = None) -> dict:
    """The history document (JSON-ready): per GPU its findings over the last ``window`` runs of its host.

    ValueError for an unknown ``kind`` (naming the known ones) or a window or threshold below 1."""
    word = runs_word(kind)
    for option, value in (("window", window), ("watchlist threshold", watch_after),
                          ("exclude threshold", exclude_after)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError("%s must be a whole number of runs, at least 1, got %r" % (option, value))
    now = time.time() if now is None else now
    records = [r for r in result.records if r.get("kind") == kind
               and (since is None or (r.get("finished") is not None and r["finished"] >= since))]
    gpus: list[dict] = []
    mixed = set()  # hosts with GPUs of two vendors in a run of the window
    for name, runs in _host_runs(records).items():
        if host is not None and not fnmatch.fnmatchcase(name, host):
            continue
        if any(entry.get("mixed") for _record, entry in runs[-window:]):
            mixed.add(name)
        gpus.extend(_gpus_of_host(name, runs[-window:], result.gpusets, gpu))
    suggestions = []
    for item in gpus:
        seen = item["runs"]
        item["suggestion"] = _suggest(item, seen, watch_after, exclude_after, word, item["host"] in mixed)
        if item["suggestion"]:
            suggestions.append(item["suggestion"])
        findings = sorted(item.pop("findings").values(),
                          key=lambda f: (SEVERITY_ORDER.get(f["severity"], 3), -f["runs"], f["key"]))
        for finding in findings:
            finding["distinct_events"] = len(finding.pop("events")) or None
        item["findings"] = findings
    times = [r["finished"] for r in records if r.get("finished") is not None]
    return {
        "schema": HISTORY_SCHEMA,
        "schema_version": HISTORY_SCHEMA_VERSION,
        "kind": kind,
        "summary_dir": result.summary_dir,
        "generated_at": now,
        "window": window,
        "thresholds": {"gpu_watchlist": watch_after, "excluded_gpus": exclude_after},
        "filters": {"host": host, "gpu": list(gpu) if gpu else None, "since": since},
        "runs": len(records),
        "first_run": min(times) if times else None,
        "last_run": max(times) if times else None,
        "files": {"read": result.read, "from_index": result.cached, "skipped": sum(result.skipped.values()),
                  "skipped_by_reason": dict(sorted(result.skipped.items()))},
        "notes": list(result.notes),
        "recent_runs": [dict((k, r.get(k)) for k in ("file", "step", "finished", "passed", "hard_failures", "warnings"))
                        for r in records[-window:]],
        "gpus": gpus,
        "suggestions": suggestions,
    }


# ---------------------------------------------------------------- text


def gpu_label(gpu: dict) -> str:
    """``rig-6600 GPU 10 (0000:21:00.0)``."""
    name = "GPU %s" % gpu["index"] if gpu["index"] is not None else "GPU"
    return "%s %s (%s)" % (gpu["host"], name, gpu["bdf"]) if gpu["bdf"] else "%s %s" % (gpu["host"], name)


def _utc(epoch: float | None) -> str:
    return utc_text(epoch)


def render_lines(doc: dict) -> list[str]:
    """The history as text: one line per GPU finding, then the suggestions; valid UTF-8 (``_values.clean_text``:
    a summary's JSON may carry a lone surrogate escape in a host name or a message, which no output can print)."""
    word = runs_word(doc["kind"])
    files = doc["files"]
    head = "%s history: %d run(s) in %s" % (family(doc["kind"]).word, doc["runs"], doc["summary_dir"])
    if doc["runs"]:
        head += " from %s to %s" % (_utc(doc["first_run"]), _utc(doc["last_run"]))
    head += " (per host, the last %d)" % doc["window"]
    lines = [head]
    if files["skipped"]:
        lines.append("Skipped %d file(s): %s" % (files["skipped"], ", ".join(
            "%d %s" % (n, reason) for reason, n in files["skipped_by_reason"].items())))
    lines.extend("Note: %s" % note for note in doc["notes"])
    found = False
    for gpu in doc["gpus"]:
        for finding in gpu["findings"]:
            found = True
            events = finding.get("distinct_events")
            extra = " (%d distinct kernel-log event%s)" % (events, "" if events == 1 else "s") \
                if events and events < finding["runs"] else ""
            last = finding["last_seen"]
            lines.append("%s: %s in %d of the last %d %s%s, last %s ago" % (
                gpu_label(gpu), finding["text"], finding["runs"], gpu["runs"], word, extra,
                ago(doc["generated_at"] - last) if last is not None else "?"))
    if not found:
        lines.append("No finding about any GPU%s." % (" in these runs" if doc["runs"] else ": no %s summary found"
                                                      % family(doc["kind"]).word.lower()))
    if doc["suggestions"]:
        lines.append("Suggestions:")
        for item in doc["suggestions"]:
            lines.append("  %s GPU %s: add to %s (%s; threshold %d) -> host_vars/%s: %s: [%s]" % (
                item["host"], item["gpu"], item["add_to"], item["reason"], item["threshold"], item["host"],
                item["add_to"], json.dumps(item["gpu"])))
    return _collection("_values").clean_text(lines)
