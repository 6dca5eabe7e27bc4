# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the training host's config.json, its lock, and bounded JSON files.

Three parts:

* JSON files (shared by the training modules), on ``_files``: ``read_json`` refuses what is not a
  regular file, never blocks on a FIFO, reads at most ``limit`` bytes and raises ``JsonFileError``
  (with a ``state``) and a one-line message that names the file; ``write_json_atomic`` writes a
  temp file and renames it over the target, keeping the old file's mode and owner, and refuses to
  replace anything that is not a regular file.
* ``validate(config, base_dir)``: the rules of ``RULES`` (required keys, types, ranges, choices) and
  the referenced paths (relative paths are relative to the training base folder). Every problem is
  reported, each naming its key.
* The lock (``.config_lock.json``): ``lock_document`` / ``read_lock`` / ``compare``. The lock holds the
  config as it was at training start, its SHA-256 and the time; ``compare`` names every change and
  how dangerous it is (``LOCK_RULES``): a ``base_model`` change while checkpoints exist is a failure
  that names both values. A lock file that exists but is not ours (not JSON, another shape) is
  reported and never overwritten.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import json
import math
import os
import re
import stat

from ansible_collections.gpuops.preflight.plugins.module_utils import _files
from ansible_collections.gpuops.preflight.plugins.module_utils._values import type_name

# -- bounded JSON files -----------------------------------------------------------------------

DEFAULT_JSON_LIMIT = 16 * 1024 * 1024

MISSING = "missing"
NOT_REGULAR = "not_regular"
TOO_LARGE = "too_large"
UNREADABLE = "unreadable"
INVALID = "invalid"


class JsonFileError(Exception):
    """A JSON file that could not be used: its ``state`` and a ``message`` naming the file.

    state: missing, not_regular, too_large, unreadable or invalid.
    """

    def __init__(self, state, message):
        Exception.__init__(self, message)
        self.state = state
        self.message = message


def read_error(path, exc):
    """The JsonFileError for an OSError reading ``path``: missing, or unreadable naming the reason."""
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return JsonFileError(MISSING, "%s is missing" % path)
    return JsonFileError(UNREADABLE, "%s cannot be read: %s" % (path, exc.strerror or exc))


def read_bounded(path, limit):
    """The bytes of the regular file ``path``; raises JsonFileError. Never blocks on a FIFO, never reads past ``limit``."""
    try:
        return _files.read_regular(path, limit)
    except _files.NotRegular as exc:
        raise JsonFileError(NOT_REGULAR, str(exc))
    except _files.TooLarge as exc:
        raise JsonFileError(TOO_LARGE, str(exc))
    except OSError as exc:
        raise read_error(path, exc)


def parse_json_bytes(data, path):
    """The JSON document in ``data``; raises JsonFileError(INVALID) naming ``path`` and where it breaks."""
    if not data.strip():
        raise JsonFileError(INVALID, "%s is empty, not JSON" % path)
    try:
        return json.loads(data)
    except RecursionError:
        raise JsonFileError(INVALID, "%s is nested too deeply to be read as JSON" % path)
    except json.JSONDecodeError as exc:
        raise JsonFileError(INVALID, "%s is not valid JSON: %s (line %d column %d)"
                            % (path, exc.msg, exc.lineno, exc.colno))
    except UnicodeDecodeError:
        raise JsonFileError(INVALID, "%s is not valid JSON: not UTF-8 text" % path)
    except ValueError as exc:  # a number too long for Python to convert, and the like
        raise JsonFileError(INVALID, "%s cannot be read as JSON: %s" % (path, exc))


def read_json(path, limit=DEFAULT_JSON_LIMIT):
    """The JSON document in ``path`` (any JSON value); raises JsonFileError."""
    return parse_json_bytes(read_bounded(path, limit), path)


def write_json_atomic(path, document):
    """Write ``document`` as JSON to ``path`` through a temp file and a rename (``_files.write_atomic``).

    An existing target keeps its mode and (when root writes it) its owner; a target that is a
    symlink, a folder or anything but a regular file is refused (JsonFileError) and left as it is.
    """
    old = None
    try:
        old = os.lstat(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
    if old is not None and not stat.S_ISREG(old.st_mode):
        raise JsonFileError(NOT_REGULAR, "%s is %s, not a regular file: left as it is"
                            % (path, _files.kind(old.st_mode)))
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    keep_owner = old is not None and os.geteuid() == 0 and (old.st_uid, old.st_gid) != (0, 0)
    _files.write_atomic(path, text.encode("utf-8", "replace"), stat.S_IMODE(old.st_mode) if old is not None else 0o644,
                        owner=(old.st_uid, old.st_gid) if keep_owner else None)


UNPARSEABLE = "unparseable"


def read_owned(path, kind, accept, what, limit=DEFAULT_JSON_LIMIT, version=None):
    """(document or None, state, error): a JSON file this collection writes, tagged ``"kind": kind``.

    state: ok | missing | unparseable | not_regular | too_large | unreadable. A file that exists but
    is not ours (not JSON, another tool's format, ``accept(doc)`` false) is ``unparseable``; its
    error says it is left as it is: such a file is reported and never overwritten.
    """
    try:
        doc = read_json(path, limit)
    except JsonFileError as exc:
        state = UNPARSEABLE if exc.state == INVALID else exc.state
        return None, state, None if exc.state == MISSING else "%s: left as it is" % exc.message
    if not (isinstance(doc, dict) and doc.get("kind") == kind and accept(doc)):
        return None, UNPARSEABLE, ("%s is not %s written by gpuops.preflight (another tool's format?): left as it is"
                                   % (path, what))
    if version is not None and doc.get("version") != version:
        # a newer release's format: rewriting it as ours would drop what this release does not know
        return None, UNPARSEABLE, ("%s is %s of another format version (%r; this release reads %d): left as it is"
                                   % (path, what, doc.get("version"), version))
    return doc, "ok", None


def iso_now(now):
    """Epoch seconds -> ISO 8601 in UTC, second precision ('2026-01-01T00:00:00Z')."""
    return datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- config rules -----------------------------------------------------------------------------

# Problem codes (interface: tests and the summary name them).
MISSING_KEY = "missing_key"
WRONG_TYPE = "wrong_type"
OUT_OF_RANGE = "out_of_range"
BAD_CHOICE = "bad_choice"
BAD_VALUE = "bad_value"
MISSING_PATH = "missing_path"
CONFLICT = "conflict"
NOT_AN_OBJECT = "not_an_object"

# Keys that name the training data. At least one of them is required; each path must exist.
DATASET_KEYS = ("dataset_path", "dataset_paths", "dataset_dir", "data_path", "train_file", "validation_file",
                "eval_file", "test_file", "train_data_path", "eval_data_path")

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(?:/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")


class Rule(object):
    """One key of config.json: its kind (see ``_KIND_CHECKS``), the allowed range or choices, whether it is required.

    ``low``/``high`` are bounds; ``low_open``/``high_open`` make them exclusive. ``nullable``
    allows JSON null.
    """

    __slots__ = ("key", "kind", "required", "low", "high", "low_open", "high_open", "choices", "nullable", "special")

    def __init__(self, key, kind, required=False, low=None, high=None, low_open=False, high_open=False,
                 choices=None, nullable=False, special=None):
        self.key = key
        self.kind = kind
        self.required = required
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open
        self.choices = choices
        self.nullable = nullable
        self.special = special  # a value outside the range that is still allowed (max_steps: -1)

    def range_text(self):
        parts = []
        if self.low is not None:
            parts.append("%s %s" % (">" if self.low_open else ">=", self.low))
        if self.high is not None:
            parts.append("%s %s" % ("<" if self.high_open else "<=", self.high))
        text = " and ".join(parts)
        if self.special is not None:
            text = "%s (or %s)" % (text, self.special)
        return text


FINETUNING_TYPES = ("full", "freeze", "lora", "oft")

# The rules config.json is held to. Keys not listed here are not checked (the daemon may have more).
RULES = (
    Rule("base_model", "model", required=True),
    Rule("output_dir", "output_dir", required=True),
    Rule("learning_rate", "number", low=0, high=1, low_open=True),
    Rule("num_train_epochs", "number", low=0, low_open=True),
    Rule("max_steps", "int", low=1, special=-1),
    Rule("per_device_train_batch_size", "int", low=1),
    Rule("per_device_eval_batch_size", "int", low=1),
    Rule("batch_size", "int", low=1),
    Rule("gradient_accumulation_steps", "int", low=1),
    Rule("warmup_steps", "int", low=0),
    Rule("warmup_ratio", "number", low=0, high=1, high_open=True),
    Rule("weight_decay", "number", low=0),
    Rule("max_grad_norm", "number", low=0, low_open=True),
    Rule("save_steps", "number", low=0, low_open=True),
    Rule("logging_steps", "number", low=0, low_open=True),
    Rule("eval_steps", "number", low=0, low_open=True, nullable=True),
    Rule("save_total_limit", "int", low=0, nullable=True),   # 0 keeps every checkpoint, as null does
    Rule("seed", "int", low=0),
    Rule("max_seq_length", "int", low=1),
    Rule("cutoff_len", "int", low=1),
    Rule("lora_r", "int", low=1),
    Rule("lora_rank", "int", low=1),
    Rule("lora_alpha", "number", low=0, low_open=True),
    Rule("lora_dropout", "number", low=0, high=1, high_open=True),
    Rule("finetuning_type", "choice", choices=FINETUNING_TYPES),
    Rule("use_lora", "bool"),
    Rule("use_peft", "bool"),
    Rule("fp16", "bool"),
    Rule("bf16", "bool"),
    Rule("gradient_checkpointing", "bool"),
    Rule("resume_from_checkpoint", "resume", nullable=True),
) + tuple(Rule(key, "paths") for key in DATASET_KEYS)

RULES_BY_KEY = dict((rule.key, rule) for rule in RULES)


def _problem(key, code, message, **extra):
    item = {"key": key, "code": code, "message": message}
    item.update(extra)
    return item


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and not (isinstance(value, float) and (math.isnan(value) or math.isinf(value))))


def _show(value):
    text = json.dumps(value, ensure_ascii=False, sort_keys=True) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def resolve(base_dir, value):
    """A path from config.json: absolute as is, ``~`` expanded, anything else relative to ``base_dir``."""
    if value.startswith("~"):
        return os.path.expanduser(value)
    if os.path.isabs(value) or not base_dir:
        return value
    return os.path.join(base_dir, value)


def option_path(value, base_dir, default, option):
    """A module's path option: unset -> ``default`` under ``base_dir`` (None without one), ``none`` -> None,
    relative -> under ``base_dir``. ValueError naming ``option`` for an empty value, a NUL byte, or a
    relative path without ``base_dir``."""
    if value is None:
        return os.path.join(base_dir, default) if base_dir else None
    if value.strip().lower() == "none":
        return None
    if "\0" in value or not value.strip():
        raise ValueError("%s must be a path or 'none'" % option)
    if not os.path.isabs(value):
        if not base_dir:
            raise ValueError("a relative %s needs training_base_dir" % option)
        return os.path.join(base_dir, value)
    return value


def _path_state(path):
    """None when ``path`` exists; otherwise why not, in words."""
    if "\0" in path:
        return "contains a NUL byte"
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "does not exist"
        return "cannot be checked: %s" % (exc.strerror or exc)
    except ValueError:   # text the file system cannot take (a lone surrogate from JSON's \ud800)
        return "is not a path this system can look up"
    return None


def _check_range(rule, value):
    if rule.special is not None and value == rule.special:
        return []
    low_bad = rule.low is not None and (value <= rule.low if rule.low_open else value < rule.low)
    high_bad = rule.high is not None and (value >= rule.high if rule.high_open else value > rule.high)
    if low_bad or high_bad:
        return [_problem(rule.key, OUT_OF_RANGE, "config.json: %s is %s, must be %s"
                         % (rule.key, _show(value), rule.range_text()), value=value)]
    return []


def _wrong_type(rule, value, expected):
    return [_problem(rule.key, WRONG_TYPE, "config.json: %s must be %s, not %s"
                     % (rule.key, expected, _show(value)), value=value)]


def _kind_int(rule, value, base_dir):
    if not _is_int(value):
        return _wrong_type(rule, value, "a whole number")
    return _check_range(rule, value)


def _kind_number(rule, value, base_dir):
    if not _is_number(value):
        return _wrong_type(rule, value, "a finite number")
    return _check_range(rule, value)


def _kind_bool(rule, value, base_dir):
    return [] if isinstance(value, bool) else _wrong_type(rule, value, "true or false")


def _kind_choice(rule, value, base_dir):
    if not isinstance(value, str):
        return _wrong_type(rule, value, "one of %s" % ", ".join(rule.choices))
    if value.strip().lower() not in rule.choices:
        return [_problem(rule.key, BAD_CHOICE, "config.json: %s is %s, must be one of %s"
                         % (rule.key, _show(value), ", ".join(rule.choices)), value=value)]
    return []


def _missing_path(rule, value, path, why):
    shown = value if path == value else "%s (%s)" % (value, path)
    return _problem(rule.key, MISSING_PATH, "config.json: %s names %s, which %s" % (rule.key, shown, why),
                    value=value, path=path)


def _kind_paths(rule, value, base_dir):
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v.strip() for v in values):
        return _wrong_type(rule, value, "a path or a list of paths")
    problems = []
    for item in values:
        path = resolve(base_dir, item)
        why = _path_state(path)
        if why:
            problems.append(_missing_path(rule, item, path, why))
    return problems


def _kind_model(rule, value, base_dir):
    if not isinstance(value, str) or not value.strip():
        return _wrong_type(rule, value, "a model name (org/name) or a local path")
    local = value.startswith(("/", "./", "../", "~")) or os.path.exists(resolve(base_dir, value))
    if local:
        path = resolve(base_dir, value)
        why = _path_state(path)
        return [_missing_path(rule, value, path, why)] if why else []
    if not _HUB_ID.match(value) or ".." in value or "--" in value:
        return [_problem(rule.key, BAD_VALUE, "config.json: base_model %s is neither an existing local path nor a "
                         "model name like org/name" % _show(value), value=value)]
    return []


def _kind_output_dir(rule, value, base_dir):
    if not isinstance(value, str) or not value.strip():
        return _wrong_type(rule, value, "a path")
    path = resolve(base_dir, value)
    why = _path_state(path)
    if why and why != "does not exist":
        return [_missing_path(rule, value, path, why)]
    try:
        st = os.stat(path)
    except OSError:
        parent = os.path.dirname(os.path.normpath(path)) or "."
        why = _path_state(parent)
        if why:
            return [_missing_path(rule, value, path, "does not exist, nor does its parent folder")]
        return []  # the trainer creates it
    if not stat.S_ISDIR(st.st_mode):
        return [_problem(rule.key, BAD_VALUE, "config.json: output_dir %s is %s, not a folder"
                         % (path, _files.kind(st.st_mode)), value=value, path=path)]
    return []


def _kind_resume(rule, value, base_dir):
    if isinstance(value, bool):
        return []
    if isinstance(value, str) and value.strip():
        path = resolve(base_dir, value)
        why = _path_state(path)
        return [_missing_path(rule, value, path, why)] if why else []
    return _wrong_type(rule, value, "true, false, null or the path of a checkpoint")


# kind -> check(rule, value, base_dir) -> problems. A new kind is a new entry, never a new branch.
_KIND_CHECKS = {
    "int": _kind_int,
    "number": _kind_number,
    "bool": _kind_bool,
    "choice": _kind_choice,
    "paths": _kind_paths,
    "model": _kind_model,
    "output_dir": _kind_output_dir,
    "resume": _kind_resume,
}

# How config.json says whether it trains the full model or a LoRA/PEFT adapter. Key -> value -> mode.
_MODE_SIGNALS = (
    ("finetuning_type", lambda v: {"lora": "lora", "oft": "lora", "full": "full", "freeze": "full"}.get(
        v.strip().lower()) if isinstance(v, str) else None),
    ("use_lora", lambda v: ("lora" if v else "full") if isinstance(v, bool) else None),
    ("use_peft", lambda v: ("lora" if v else "full") if isinstance(v, bool) else None),
    ("peft_config", lambda v: "lora" if isinstance(v, dict) and v else None),
    ("lora_config", lambda v: "lora" if isinstance(v, dict) and v else None),
)


def mode_signals(config):
    """[(key, value, mode)] for every key of config.json that tells full fine-tuning from LoRA."""
    found = []
    if not isinstance(config, dict):
        return found
    for key, read in _MODE_SIGNALS:
        if key in config:
            mode = read(config[key])
            if mode is not None:
                found.append((key, config[key], mode))
    return found


def training_mode(config):
    """('full' | 'lora' | None, reason): what config.json trains; None when it does not say."""
    signals = mode_signals(config)
    if not signals:
        return None, "config.json does not say (no finetuning_type, use_lora, use_peft or peft_config)"
    key, value, mode = signals[0]
    return mode, "%s: %s" % (key, _show(value))


def validate(config, base_dir):
    """Every problem of config.json: [{key, code, message, ...}] (empty when it is valid)."""
    if not isinstance(config, dict):
        return [_problem(None, NOT_AN_OBJECT, "config.json must hold a JSON object, not a %s" % type_name(config))]
    problems = []
    for rule in RULES:
        if rule.key not in config:
            if rule.required:
                problems.append(_problem(rule.key, MISSING_KEY, "config.json: required key %s is missing" % rule.key))
            continue
        value = config[rule.key]
        if value is None and rule.nullable:
            continue
        problems.extend(_KIND_CHECKS[rule.kind](rule, value, base_dir))
    if not any(key in config for key in DATASET_KEYS):
        problems.append(_problem("dataset_path", MISSING_KEY, "config.json names no training data: set one of %s"
                                 % ", ".join(DATASET_KEYS)))
    signals = mode_signals(config)
    if len(set(signal[2] for signal in signals)) > 1:
        problems.append(_problem("finetuning_type", CONFLICT, "config.json says both full fine-tuning and LoRA: %s"
                                 % ", ".join("%s: %s" % (key, _show(value)) for key, value, mode in signals)))
    if config.get("fp16") is True and config.get("bf16") is True:
        problems.append(_problem("bf16", CONFLICT, "config.json: fp16 and bf16 are both true; choose one"))
    return problems


def load_and_validate(path, base_dir, limit=DEFAULT_JSON_LIMIT):
    """{path, config, error, state, problems}: config.json read (bounded) and validated."""
    report = {"path": path, "config": None, "error": None, "state": "ok", "problems": []}
    try:
        report["config"] = read_json(path, limit)
    except JsonFileError as exc:
        report["error"], report["state"] = exc.message, exc.state
        return report
    report["problems"] = validate(report["config"], base_dir)
    return report


# -- the lock ---------------------------------------------------------------------------------

LOCK_VERSION = 1
LOCK_KIND = "gpuops.preflight.config_lock"

FAIL = "fail"
WARN = "warn"
INFO = "info"
BLOCK_WITH_CHECKPOINTS = "block_with_checkpoints"

# What a change of each key means once training has started. Keys not listed are INFO (listed,
# never a problem). BLOCK_WITH_CHECKPOINTS: a failure while checkpoints exist, else a warning.
LOCK_RULES = (
    ("base_model", BLOCK_WITH_CHECKPOINTS, "the checkpoints were trained from the locked base model"),
    ("finetuning_type", BLOCK_WITH_CHECKPOINTS, "the checkpoints have the locked layout (full model or adapter)"),
    ("use_lora", BLOCK_WITH_CHECKPOINTS, "the checkpoints have the locked layout (full model or adapter)"),
    ("use_peft", BLOCK_WITH_CHECKPOINTS, "the checkpoints have the locked layout (full model or adapter)"),
    ("lora_r", BLOCK_WITH_CHECKPOINTS, "the adapter weights in the checkpoints have the locked rank"),
    ("lora_rank", BLOCK_WITH_CHECKPOINTS, "the adapter weights in the checkpoints have the locked rank"),
    ("lora_target", BLOCK_WITH_CHECKPOINTS, "the checkpoints hold adapters for the locked target modules"),
    ("target_modules", BLOCK_WITH_CHECKPOINTS, "the checkpoints hold adapters for the locked target modules"),
    ("output_dir", WARN, "checkpoints are written to, and resumed from, another folder"),
    ("max_seq_length", WARN, "the run continues with another sequence length"),
    ("cutoff_len", WARN, "the run continues with another sequence length"),
    ("lora_alpha", WARN, "the adapter's scaling changes mid-run"),
    ("learning_rate", WARN, "the optimizer and scheduler state in the checkpoints assume the locked value"),
) + tuple((key, WARN, "the run continues on other data") for key in DATASET_KEYS)

LOCK_RULES_BY_KEY = dict((key, (level, why)) for key, level, why in LOCK_RULES)


def config_hash(config):
    """SHA-256 of the config's canonical JSON (sorted keys, no spaces): the same config always hashes the same."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def lock_document(config, config_path, now):
    return {"kind": LOCK_KIND, "version": LOCK_VERSION, "config_file": config_path, "locked_at": iso_now(now),
            "locked_at_epoch": now, "sha256": config_hash(config), "config": config}


def read_lock(path, limit=DEFAULT_JSON_LIMIT):
    """{path, state, lock, error}: state ok | missing | unparseable | not_regular | too_large | unreadable.

    A file that is JSON but not a lock this collection wrote (an old tool's format) is
    ``unparseable``: reported, never overwritten.
    """
    doc, state, error = read_owned(
        path, LOCK_KIND, lambda d: isinstance(d.get("config"), dict) and isinstance(d.get("sha256"), str),
        "a config lock", limit, version=LOCK_VERSION)
    return {"path": path, "state": state, "lock": doc, "error": error}


def compare(locked, current, checkpoints_exist, checkpoint_note=""):
    """Every difference between the locked config and the current one: [{key, before, after, severity, message}].

    ``severity`` is fail, warn or info (see ``LOCK_RULES``). ``checkpoint_note`` names the
    checkpoints in a failure's message ('2 checkpoints in /srv/train/current_model, newest checkpoint-1000').
    """
    changes = []
    if not isinstance(locked, dict) or not isinstance(current, dict):
        return changes
    for key in sorted(set(locked) | set(current)):
        before, after = locked.get(key), current.get(key)
        if key in locked and key in current and before == after:
            continue
        level, why = LOCK_RULES_BY_KEY.get(key, (INFO, None))
        if level == BLOCK_WITH_CHECKPOINTS:
            level = FAIL if checkpoints_exist else WARN
        what = "%s changed from %s to %s since the lock" % (
            key, _show(before) if key in locked else "(absent)", _show(after) if key in current else "(absent)")
        if level == FAIL:
            message = "%s while checkpoints exist (%s): %s" % (what, checkpoint_note or "checkpoints", why)
        elif why:
            message = "%s: %s" % (what, why)
        else:
            message = what
        changes.append({"key": key, "before": before, "after": after, "severity": level, "message": message})
    return changes
