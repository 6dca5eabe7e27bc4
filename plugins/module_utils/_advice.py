# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: run advice for step 1 (Optuna trials against seeds) from the run history.

The run history is a JSON-lines file, one finished (or running) step-1 run a line, with the keys
``time`` (ISO 8601), ``step``, ``trials``, ``completed_trials``, ``max_seeds``, ``survivors``,
``duration_s``, ``study`` and ``outcome`` (docs/RUN_ADVICE.md). WATCHER appends a line after each
run (``append_record``: the whole file is rewritten to a temporary file and renamed over the old
one under a lock, so a reader never sees half a line); anything may read it (``read_history``:
bounded, never blocks on a FIFO, corrupt lines are skipped and counted, never fatal).

The advice (``suggest``) rests on the newest *finished* run whose outcome says something: 0
survivors after enough completed trials means the seeds were brute force, so more trials and
the seeds back to a low count; a few survivors means more seeds; enough survivors means keep what
worked. ``validate_proposal`` holds a proposal (from WATCHER's decision layer, which emits JSON
constrained by ``parameter_schema``) to the bounds and flags one that repeats a run that found
nothing. ``run_budget_problems`` is the evaluation of the preflight's soft ``run_budget`` check.
Everything here is pure except the two file functions.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import time

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks, _files, _timeparse, _values

CHECK = "run_budget"
KEYS = ("time", "step", "trials", "completed_trials", "max_seeds", "survivors", "duration_s", "study", "outcome")
PARAMS = ("trials", "max_seeds")
ALIASES = {"seed_count": "max_seeds"}
RUNNING = "running"  # the outcome of a run still in progress: no survivor count yet, the advice passes over it

DEFAULT_BOUNDS = {"trials": (10, 500), "max_seeds": (10000, 10000000)}
DEFAULT_THRESHOLDS = {
    "default_trials": 50,            # no usable history: the proven configuration
    "default_max_seeds": 100000,
    "min_completed_trials": 30,      # 0 survivors count as "found nothing" only after this many completed trials
    "retry_trials": 100,             # after a run that found nothing: at least this many trials ...
    "retry_max_seeds": 100000,       # ... and the seeds back to this, whatever the failed run used
    "enough_survivors": 50000,       # this many survivors or more: keep what worked
    "seed_factor": 2,                # fewer survivors: the last run's seeds times this
    "trial_factor": 2,               # nothing found by a run that already had retry_trials: its trials times this
}
MAX_HISTORY_BYTES = 16 * 1024 * 1024   # read at most the newest 16 MiB of a history
MAX_APPEND_BYTES = 64 * 1024 * 1024    # refuse to rewrite a history larger than this (rotate it)
LOCK_TIMEOUT = 10.0


class HistoryError(ValueError):
    """The run history cannot be read or written; the message names the file and the problem."""


# ---------------------------------------------------------------- values

def _count(value, name, minimum=0, allow_none=False):
    """A whole number >= minimum (an integral float such as 1e5 is accepted); ValueError naming ``name``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("%s must be a whole number, got %s" % (name, _shown(value)))
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value) or value != int(value)):
        raise ValueError("%s must be a whole number, got %r" % (name, value))
    if value < minimum:
        raise ValueError("%s must be at least %s, got %s" % (name, _num(minimum), _num(int(value))))
    return int(value)


def _seconds(value):
    """A duration: a finite number >= 0, or None (unknown); ValueError otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError("duration_s must be a number of seconds >= 0, got %s" % _shown(value))
    return value


def _shown(value):
    """How a message shows a value: ``text 'abc'``, ``int 5``, ``bool True``, else its type as
    ``_values.type_name`` names it (``list`` for Ansible's ``_AnsibleTaggedList`` of an inventory value)."""
    if isinstance(value, str):
        return "text %r" % value[:40]
    for word, types in (("bool", bool), ("int", int), ("float", float)):
        if isinstance(value, types):
            return "%s %r" % (word, value)
    return _values.type_name(value)


def _num(value):
    """100000 -> '100,000' (how every message writes counts)."""
    return format(value, ",") if isinstance(value, int) else str(value)


def _entries(mapping, what, known, example):
    """The items of an options mapping; ValueError for another type or an unknown key."""
    if not isinstance(mapping, dict):
        raise ValueError("%s must be a mapping like %s, got %s" % (what, example, _shown(mapping)))
    for name in mapping:
        if name not in known:
            raise ValueError("%s: unknown key %r (known: %s)" % (what, name, ", ".join(known)))
    return mapping.items()


def settings(bounds=None, thresholds=None):
    """Bounds and thresholds with the defaults filled in, checked; ValueError naming the bad one."""
    cfg = {"bounds": dict(DEFAULT_BOUNDS), "thresholds": dict(DEFAULT_THRESHOLDS)}
    for name, pair in _entries({} if bounds is None else bounds, "bounds", PARAMS, "{'trials': [10, 500]}"):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError("bounds.%s must be [lowest, highest], got %s" % (name, _shown(pair)))
        low, high = _count(pair[0], "bounds.%s lowest" % name, 1), _count(pair[1], "bounds.%s highest" % name, 1)
        if low > high:
            raise ValueError("bounds.%s: lowest %s is above highest %s" % (name, _num(low), _num(high)))
        cfg["bounds"][name] = (low, high)
    for name, value in _entries({} if thresholds is None else thresholds, "thresholds", tuple(DEFAULT_THRESHOLDS), "{'enough_survivors': 50000}"):
        cfg["thresholds"][name] = _count(value, "thresholds.%s" % name, 2 if name.endswith("_factor") else 1)
    return cfg


# ---------------------------------------------------------------- records

def normalize(record):
    """A history record with checked values (a copy), or raise ValueError saying what is wrong.

    ``trials`` and ``max_seeds`` are required; ``completed_trials`` and ``survivors`` may be null
    (unknown; a run still in progress has no survivors yet), ``duration_s`` is a number >= 0 or null
    (a NaN duration is not a run's). Other keys are kept as they are, their
    texts made valid UTF-8 (``_values.clean_text``: a JSON ``\\udcff`` escape reads back as a lone
    surrogate, which no UTF-8 output can carry).
    """
    if not isinstance(record, dict):
        raise ValueError("a run record must be a JSON object, got %s" % _shown(record))
    out = _values.clean_text(record)
    out["trials"] = _count(record.get("trials"), "trials", 1)
    out["max_seeds"] = _count(record.get("max_seeds"), "max_seeds", 1)
    out["completed_trials"] = _count(record.get("completed_trials"), "completed_trials", 0, allow_none=True)
    out["survivors"] = _count(record.get("survivors"), "survivors", 0, allow_none=True)
    _seconds(record.get("duration_s"))
    return out


def make_record(trials, completed_trials, max_seeds, survivors, duration_s=None, study=None, outcome="completed",
                step=1, when=None):
    """The history line for one run, every value checked (ValueError names the bad one)."""
    duration_s = _seconds(duration_s)
    for name, value in (("study", study), ("outcome", outcome)):
        if value is not None and (not isinstance(value, str) or not value.strip() or len(value) > 256):
            raise ValueError("%s must be a non-empty text of at most 256 characters, got %s" % (name, _shown(value)))
    if outcome is None:
        raise ValueError("outcome must be given (e.g. 'completed', 'timeout', 'error', %r)" % RUNNING)
    if survivors is None and outcome != RUNNING:
        raise ValueError("survivors must be a whole number >= 0 for a finished run (null only with outcome %r)"
                         % RUNNING)
    epoch = time.time() if when is None else _timeparse.parse_time(when, "time")
    if epoch is None:
        raise ValueError("time must be epoch seconds or an ISO 8601 time, got %s" % _shown(when))
    record = {
        "time": _timeparse.iso(epoch),
        "step": _count(step, "step", 0),
        "trials": trials, "completed_trials": completed_trials, "max_seeds": max_seeds, "survivors": survivors,
        "duration_s": None if duration_s is None else round(float(duration_s), 3),
        "study": study, "outcome": outcome,
    }
    return normalize(record)


def _label(rec):
    """'2026-01-01T00:00:00+00:00 (50 trials x 10,000,000 seeds, 50 completed, 0 survivors)'."""
    done = rec.get("completed_trials")
    surv = rec.get("survivors")
    return "%s (%s trials x %s seeds, %s completed, %s survivors)" % (
        rec.get("time") or "undated run", _num(rec["trials"]), _num(rec["max_seeds"]),
        "?" if done is None else _num(done), "?" if surv is None else _num(surv))


# ---------------------------------------------------------------- the history file

def _empty(path, exists):
    return {"path": path, "exists": exists, "records": [], "corrupt": 0, "corrupt_lines": [], "truncated": False}


def _open(path):
    """A descriptor of the history, None when it does not exist; HistoryError when it is not a readable file."""
    try:
        return _files.open_regular(path)
    except _files.FileProblem as exc:
        raise HistoryError("run history %s" % exc)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise HistoryError("run history %s cannot be opened: %s" % (path, exc.strerror or exc))


def read_history(path, max_bytes=MAX_HISTORY_BYTES):
    """Read a JSON-lines run history: ``{path, exists, records, corrupt, corrupt_lines, truncated}``.

    A missing file is an empty history (``exists`` false: no run recorded yet). A file larger than
    ``max_bytes`` is read from its end (the newest runs; ``truncated`` true, line numbers count from
    there). Lines that are not a valid record are skipped and counted (``corrupt_lines``: their
    numbers). Raises HistoryError for anything that is not a readable regular file.
    """
    path = os.fspath(path)
    fd = _open(path)
    if fd is None:
        return _empty(path, False)
    try:
        start = max(0, os.fstat(fd).st_size - max_bytes)
        if start:
            os.lseek(fd, start, os.SEEK_SET)
        data = _files.read_fd(fd, max_bytes)
    except OSError as exc:
        raise HistoryError("run history %s cannot be read: %s" % (path, exc.strerror or exc))
    finally:
        os.close(fd)
    out = _empty(path, True)
    if start:
        out["truncated"] = True
        if b"\n" not in data:  # one line longer than max_bytes (a runaway writer): not a run, and said so
            out["corrupt"], out["corrupt_lines"] = 1, [1]
        data = data[data.find(b"\n") + 1:] if b"\n" in data else b""
    for number, raw in enumerate(data.split(b"\n"), 1):
        line = raw.decode("utf-8", "replace").strip()
        if not line:
            continue
        try:
            out["records"].append(normalize(json.loads(line, parse_constant=_not_json, parse_float=_finite)))
        except (ValueError, RecursionError):  # json's own errors are ValueErrors; a line nested too deep recurses
            out["corrupt"] += 1
            out["corrupt_lines"].append(number)
    return out


def _not_json(word):
    """NaN, Infinity, -Infinity: Python's json reads them, JSON has no such values (and no writer of the
    history writes them: append_record refuses them), so the line is corrupt."""
    raise ValueError("%s is not a JSON value" % word)


def _finite(text):
    """A JSON number too large for a float (1e999) would read as infinity: the line is corrupt."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("%s is out of range" % text)
    return value


def records_of(history, max_bytes=MAX_HISTORY_BYTES):
    """``history`` as ``read_history`` returns it: a path is read, a list of records is checked the same way
    (invalid records are skipped and counted, as corrupt lines are)."""
    if isinstance(history, (str, bytes)) or hasattr(history, "__fspath__"):
        return read_history(history, max_bytes)
    if isinstance(history, dict) and "records" in history and "corrupt" in history:
        return history  # already read
    if not isinstance(history, (list, tuple)):
        raise ValueError("history must be a list of run records or the path of a run history file, got %s"
                         % _shown(history))
    out = _empty(None, True)
    for number, item in enumerate(history, 1):
        try:
            out["records"].append(normalize(item))
        except ValueError:
            out["corrupt"] += 1
            out["corrupt_lines"].append(number)
    return out


def _lock(directory, base, timeout):
    """An exclusive flock on ``.<base>.lock`` beside the history (the history itself is replaced on every write)."""
    try:
        return _files.lock_beside(os.path.join(directory, base), timeout)
    except TimeoutError:
        raise HistoryError("run history %s/%s: another writer holds its lock for more than %s s"
                           % (directory, base, timeout))
    except OSError as exc:
        raise HistoryError("run history %s/%s: cannot lock: %s" % (directory, base, exc.strerror))


def append_record(path, record, timeout=LOCK_TIMEOUT, max_bytes=MAX_APPEND_BYTES):
    """Append one record (a dict, checked with ``normalize``) to the history at ``path``, atomically.

    The old content, byte for byte, and the new line after it are written to a temporary file
    beside the history, which is then renamed over it: a reader sees the old or the new file, never
    half a line, and a crash loses nothing. Writers queue on a lock file (at most ``timeout``
    seconds). The parent folder is made when missing; a symlink is followed (its target is
    rewritten); the file's permissions are kept (0644 for a new one).
    """
    normalize(record)
    line = (json.dumps(record, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")
    path = os.path.realpath(os.fspath(path))
    directory, base = os.path.split(path)
    try:
        os.makedirs(directory, exist_ok=True)
        lock = _lock(directory, base, timeout)
    except OSError as exc:
        raise HistoryError("run history %s: cannot prepare its folder: %s" % (path, exc.strerror or exc))
    try:
        old, mode = _current(path, max_bytes)
        if old and not old.endswith(b"\n"):  # a line cut short by some other writer: kept, on a line of its own
            old += b"\n"
        _files.write_atomic(path, old + line, mode)
    except OSError as exc:
        raise HistoryError("run history %s cannot be written: %s" % (path, exc.strerror or exc))
    finally:
        os.close(lock)
    return record


def _current(path, max_bytes):
    """The history's bytes and permissions; (b"", 0o644) when there is none yet."""
    fd = _open(path)
    if fd is None:
        return b"", 0o644
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        data = _files.read_fd(fd, max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise HistoryError("run history %s is more than the %s byte limit: move it aside (rotate it) and start a new "
                           "one" % (path, _num(max_bytes)))
    return data, mode


# ---------------------------------------------------------------- advice

def _finished(rec):
    return rec.get("outcome") != RUNNING and rec.get("survivors") is not None


def found_nothing(rec, cfg):
    """A finished run that found 0 survivors after enough completed trials to say so."""
    done = rec.get("completed_trials")
    return (_finished(rec) and rec["survivors"] == 0 and done is not None
            and done >= cfg["thresholds"]["min_completed_trials"])


def _passed_over(rec, cfg):
    """Why a record says nothing about the parameters (None when it does)."""
    if not _finished(rec):
        return "run %s is still in progress (no survivor count yet)" % _label(rec)
    if rec["survivors"] == 0 and not found_nothing(rec, cfg):
        return ("run %s found 0 survivors after fewer than %s completed trials: inconclusive"
                % (_label(rec), _num(cfg["thresholds"]["min_completed_trials"])))
    return None


def _after_nothing(rec, cfg):
    th = cfg["thresholds"]
    trials = th["retry_trials"] if rec["trials"] < th["retry_trials"] else rec["trials"] * th["trial_factor"]
    return trials, th["retry_max_seeds"], ("found 0 survivors: more trials, fewer seeds (seeds back to %s whatever "
                                           "the failed run used)" % _num(th["retry_max_seeds"]))


def _after_few(rec, cfg):
    factor = cfg["thresholds"]["seed_factor"]
    return rec["trials"], rec["max_seeds"] * factor, ("found %s survivors, fewer than %s: the last run's seeds "
                                                      "times %d, trials kept"
                                                      % (_num(rec["survivors"]),
                                                         _num(cfg["thresholds"]["enough_survivors"]), factor))


def _after_enough(rec, cfg):
    return rec["trials"], rec["max_seeds"], ("found %s survivors, at least %s: keep what worked"
                                             % (_num(rec["survivors"]), _num(cfg["thresholds"]["enough_survivors"])))


# (rule, applies to the newest conclusive run, what it proposes): the first that applies decides.
RULES = (
    ("no_survivors", lambda rec, cfg: rec["survivors"] == 0, _after_nothing),
    ("few_survivors", lambda rec, cfg: rec["survivors"] < cfg["thresholds"]["enough_survivors"], _after_few),
    ("enough_survivors", lambda rec, cfg: True, _after_enough),
)


def _clamp(name, value, cfg):
    low, high = cfg["bounds"][name]
    return min(max(value, low), high)


def suggest(history, bounds=None, thresholds=None):
    """The parameters for the next step-1 run: ``{trials, max_seeds, reason, based_on, rule, corrupt}``.

    ``history``: a list of run records (newest last) or the path of a run history file. ``based_on``:
    the records the advice rests on (the newest conclusive run and the newer ones passed over), oldest
    first. ``rule``: ``default``, ``no_survivors``, ``few_survivors`` or ``enough_survivors``.
    """
    cfg = settings(bounds, thresholds)
    hist = records_of(history)
    th = cfg["thresholds"]
    considered, notes = [], []
    decided = None
    for rec in reversed(hist["records"]):
        considered.append(rec)
        why = _passed_over(rec, cfg)
        if why:
            notes.append(why)
            continue
        for name, applies, propose in RULES:
            if applies(rec, cfg):
                trials, seeds, why = propose(rec, cfg)
                decided = (name, trials, seeds, "the last finished run, %s, %s" % (_label(rec), why))
                break
        break
    if decided is None:
        what = "no finished run in the history" if not hist["records"] else "no conclusive run in the history"
        decided = ("default", th["default_trials"], th["default_max_seeds"],
                   "%s: the proven configuration" % what)
    rule, trials, seeds, reason = decided
    final = {"trials": _clamp("trials", trials, cfg), "max_seeds": _clamp("max_seeds", seeds, cfg)}
    clamped = ["%s %s is outside %s-%s, so %s" % (name, _num(raw), _num(cfg["bounds"][name][0]),
                                                  _num(cfg["bounds"][name][1]), _num(final[name]))
               for name, raw in (("trials", trials), ("max_seeds", seeds)) if raw != final[name]]
    reason = "%s trials x %s seeds: %s" % (_num(final["trials"]), _num(final["max_seeds"]), reason)
    if clamped:
        reason += " (%s)" % "; ".join(clamped)
    if notes:
        reason += "; passed over: %s" % "; ".join(notes)
    if hist["corrupt"]:
        reason += "; %d corrupt history line(s) skipped" % hist["corrupt"]
    return {"trials": final["trials"], "max_seeds": final["max_seeds"], "reason": reason,
            "based_on": list(reversed(considered)) if rule != "default" else [], "rule": rule,
            "corrupt": hist["corrupt"]}


# ---------------------------------------------------------------- the decision layer

def parameter_schema(bounds=None, thresholds=None):
    """JSON Schema (draft 2020-12) of the adjustable parameters, for grammar-constrained output."""
    cfg = settings(bounds, thresholds)
    th = cfg["thresholds"]
    (t_low, t_high), (s_low, s_high) = cfg["bounds"]["trials"], cfg["bounds"]["max_seeds"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "gpuops.preflight/run-parameters",
        "title": "Step 1 run parameters",
        "description": "Optuna trials and seeds per trial for the next step-1 run. More trials explore; more seeds "
                       "only brute-force: a run that found nothing needs more trials, not more seeds.",
        "type": "object",
        "properties": {
            "trials": {"type": "integer", "minimum": t_low, "maximum": t_high, "default": th["default_trials"],
                       "description": "Optuna trials to run (%s-%s)." % (_num(t_low), _num(t_high))},
            "max_seeds": {"type": "integer", "minimum": s_low, "maximum": s_high, "default": th["default_max_seeds"],
                          "description": "Seeds tried per trial (%s-%s); 'seed_count' is accepted as its alias."
                                         % (_num(s_low), _num(s_high))},
        },
        "required": list(PARAMS),
        "additionalProperties": False,
    }


def _repeats_failure(values, records, cfg):
    """Runs that found nothing with no more trials and no fewer seeds than ``values`` plans: newest first."""
    return [rec for rec in reversed(records) if found_nothing(rec, cfg)
            and values["trials"] <= rec["trials"] and values["max_seeds"] >= rec["max_seeds"]]


def validate_proposal(proposal, history, bounds=None, thresholds=None):
    """Check a proposal ``{trials, max_seeds}`` (``seed_count`` = ``max_seeds``) against the bounds and the history.

    Returns ``{valid, clamped, reasons, warnings, suggestion}``: ``valid`` false with ``reasons`` when a
    value is missing, not a whole number or out of bounds, or a key is unknown; ``clamped`` the values
    that would run (out-of-bounds values moved to the bound, unusable ones replaced by the
    suggestion's); ``warnings`` when history says the proposal fails (no more trials and no fewer
    seeds than a run that found nothing).
    """
    cfg = settings(bounds, thresholds)
    hist = records_of(history)
    suggestion = suggest(hist, bounds, thresholds)
    reasons, warnings = [], []
    given = {}
    if not isinstance(proposal, dict):
        reasons.append("the proposal must be a JSON object with %s, got %s" % (" and ".join(PARAMS), _shown(proposal)))
        proposal = {}
    for key, value in proposal.items():
        name = ALIASES.get(key, key)
        if name not in PARAMS:
            reasons.append("unknown parameter %r (adjustable: %s; %s)" % (
                key, ", ".join(PARAMS), ", ".join("%s = %s" % pair for pair in ALIASES.items())))
        elif name in given and given[name] != value:
            reasons.append("%s and its alias disagree: %s and %s" % (name, _shown(given[name]), _shown(value)))
        else:
            given[name] = value
    clamped = {}
    for name in PARAMS:
        low, high = cfg["bounds"][name]
        if name not in given:
            reasons.append("%s is missing (%s-%s)" % (name, _num(low), _num(high)))
            clamped[name] = suggestion[name]
            continue
        try:
            value = _count(given[name], name, 0)
        except ValueError as exc:
            reasons.append(str(exc))
            clamped[name] = suggestion[name]
            continue
        if value < low:
            reasons.append("%s %s is below the lowest allowed %s" % (name, _num(value), _num(low)))
        elif value > high:
            reasons.append("%s %s is above the highest allowed %s" % (name, _num(value), _num(high)))
        clamped[name] = _clamp(name, value, cfg)
    failed = _repeats_failure(clamped, hist["records"], cfg)
    if failed:
        more = " (and %d earlier such run(s))" % (len(failed) - 1) if len(failed) > 1 else ""
        warnings.append("%s trials x %s seeds repeats a failed pattern: no more trials and no fewer seeds than run %s, "
                        "which found nothing%s; suggested: %s trials x %s seeds"
                        % (_num(clamped["trials"]), _num(clamped["max_seeds"]), _label(failed[0]), more,
                           _num(suggestion["trials"]), _num(suggestion["max_seeds"])))
    return {"valid": not reasons, "clamped": clamped, "reasons": reasons, "warnings": warnings,
            "suggestion": suggestion}


# ---------------------------------------------------------------- the run_budget check

def evaluate_run_budget(inputs, spec):
    """The preflight's ``run_budget`` check, from the plan's inputs (run_budget_params, run_history_file)."""
    return run_budget_problems(inputs["run_budget_params"], inputs["run_history_file"], spec.fix)


def run_budget_problems(params, history, fix, bounds=None, thresholds=None):
    """Evaluate the soft ``run_budget`` check: ``(problems, ok_text, details)``; it never blocks.

    ``params``: the planned ``run_budget_params`` ({trials, max_seeds}); ``history``: ``run_history_file``
    (a path) or a list of records; ``fix``: the check's default fix, to which the suggestion is added.
    A plan out of bounds, or repeating a run that found nothing, is a ``warn``; a history that cannot
    be read is ``unknown``; a history file that does not exist yet is no history.
    """
    try:
        hist = records_of(history)
    except ValueError as exc:  # HistoryError included
        return ([_checks.problem(CHECK, _checks.UNKNOWN, "run_history_file: %s" % exc,
                                 "point run_history_file at the JSON-lines run history WATCHER writes "
                                 "(a regular file), or leave it unset to skip this check")], "", {})
    try:
        verdict = validate_proposal(params, hist, bounds, thresholds)
    except ValueError as exc:  # bad bounds / thresholds
        return [_checks.problem(CHECK, _checks.UNKNOWN, "run_budget: %s" % exc, fix)], "", {}
    suggestion = verdict["suggestion"]
    advice = "plan %s trials x %s seeds in run_budget_params (rule %s)" % (
        _num(suggestion["trials"]), _num(suggestion["max_seeds"]), suggestion["rule"])
    # one sentence: the check's fix ends with a full stop of its own ("... knowingly."), the advice follows it
    full_fix = "%s; %s" % (fix.rstrip().rstrip("."), advice) if fix and fix.strip() else advice
    problems = [_checks.problem(CHECK, _checks.WARN, "run_budget_params: %s" % text, full_fix)
                for text in verdict["reasons"]]
    problems += [_checks.problem(CHECK, _checks.WARN, "run_budget_params: %s" % text, full_fix)
                 for text in verdict["warnings"]]
    where = "no run history yet" if not hist["exists"] else (
        "%d run(s) in %s" % (len(hist["records"]), hist["path"] or "the history"))
    ok_text = "%s trials x %s seeds repeat no failed run (%s)" % (
        _num(verdict["clamped"]["trials"]), _num(verdict["clamped"]["max_seeds"]), where)
    if hist["corrupt"]:
        ok_text += "; %d corrupt history line(s) skipped" % hist["corrupt"]
    details = {"suggestion": {k: suggestion[k] for k in ("trials", "max_seeds", "reason", "rule")},
               "runs": len(hist["records"]), "corrupt_lines": hist["corrupt"]}
    return problems, ok_text, details
