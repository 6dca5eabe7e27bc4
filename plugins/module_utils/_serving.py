# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the model-serving readiness gate (checks of the ``serving_gate`` family).

A GPU orchestrator serves models to agent services; before an agent starts, the gate makes sure
that every model of the agent -> model map is materialised in the model store (nothing would be
downloaded), readable by the service user, and loaded by the orchestrator. The pieces here are:

- the settings' defaults and the suggested fixes from the runbook's common causes (``FIXES``); the
  checks themselves are declared once, in ``_serving_gate`` (the family, its collectors and the
  adapters of the evaluations below);
- collectors, which only observe: ``read_model_map`` (bounded read of the JSON map),
  ``inspect_model_store`` (stat walk of the store as the service user would see it),
  ``Client`` (HTTP on ``http.client`` with hard per-call deadlines), ``wait_for_health``,
  ``run_preload`` (POST /models/preload, poll /models/status), ``get_gpu_info``, ``probe_bus``;
- pure evaluation functions ``evaluate_<check>(observations...) -> (problems, ok_text,
  details)``, which decide and word the verdict with ``_checks.problem``;
- ``write_gate_summary`` (the local gate's ``local_gate_<instance>_<timestamp>.json``, atomic, pruned).

Standard library only; runs on Python 3.9.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import stat
import struct
import threading
import time

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks, _files
from ansible_collections.gpuops.preflight.plugins.module_utils._permissions import (
    R_OK, W_OK, X_OK, ancestors, may_access, owner_text, read_acl, user_text)
from ansible_collections.gpuops.preflight.plugins.module_utils._values import is_within, pairs_noting_repeats, seconds_text

# ====================================================================================================
# Settings and suggested fixes. The checks themselves (names, severities, timeouts, codes) are
# declared once, in _serving_gate.py (the serving_gate family).
# ====================================================================================================
DEFAULT_URL = "http://127.0.0.1:8014"
DEFAULT_GATE_TIMEOUT = 300
HTTP_CALL_LIMIT = 5.0          # seconds: one HTTP call waits at most min(time left, this)
DEFAULT_MPS_PIPE_DIR = "/tmp/nvidia-mps"     # CUDA_MPS_PIPE_DIRECTORY's default (NVIDIA MPS docs)
DEFAULT_MPS_LOG_DIR = "/var/log/nvidia-mps"  # CUDA_MPS_LOG_DIRECTORY's default
# Instance names that are the orchestrator itself: it must not wait for the bus that depends on it.
ORCHESTRATOR_INSTANCES = ("orchestrator", "gpu-orchestrator")

# Suggested fixes, from the runbook's common causes, by check and cause.
FIXES = {
    "orchestrator": {
        "down": "Start the orchestrator (systemctl start <orchestrator unit>) and read its journal "
                "(journalctl -u <orchestrator unit>); check GPU_ORCHESTRATOR_URL and the port (default 8014).",
        "unhealthy": "Read the orchestrator's journal for why /health is not ok (GPU not visible, CUDA/driver "
                     "error, out of memory); restart it once the cause is fixed.",
        "protocol": "GPU_ORCHESTRATOR_URL points at something that is not the orchestrator's API: correct the "
                    "URL (scheme, host, port 8014, no extra path).",
    },
    "model_map": {
        "invalid": "Correct AGENT_MODEL_MAP: a JSON object of agent key -> {\"model\": \"<model id>\", \"path\": "
                   "\"<model folder under MODEL_STORE_ROOT>\"}, one entry per agent, no duplicate or misspelt ids.",
    },
    "model_store": {
        "missing": "Copy the model into the store before starting the agent (e.g. huggingface-cli download "
                   "<model> --local-dir <store>/<path> on a host with network, then rsync); with "
                   "STRICT_MODEL_STORE=1 nothing is downloaded at start-up.",
        "incomplete": "The model folder is half-copied or truncated: copy it again completely (rsync -a --checksum), "
                      "then re-run the gate.",
        "missing_snapshot": "The Hugging Face cache folder lacks the snapshot its refs point to: download the model "
                            "again into the store, or point the map's path at a complete snapshot folder.",
        "unreadable": "Give the service user read access (chown -R <service user>: <folder>, or chmod -R g+rX "
                      "with the service user in the folder's group).",
        "no_search": "Give the service user search (x) permission on every parent directory of the store "
                     "(chmod o+x or g+x <dir>, or add the user to the directory's group).",
        "escapes": "Keep every model under MODEL_STORE_ROOT: correct the map's path, or replace the symbolic link "
                   "that leads outside the store with the real files.",
        "root": "Set MODEL_STORE_ROOT to the model store's folder (it must exist and be searchable by the service "
                "user).",
        "ref_whitespace": "Write the ref without a newline or spaces (printf '%s' \"$(cat refs/main)\" > refs/main in the "
                          "model's cache folder): huggingface_hub compares it with the snapshot names as it is.",
        "downloads_unverified": "Let the gate list the folder (chmod o+r or g+r, with the gate's user in its group), or "
                                "run it as root (serving_gate_unit_sudoers), so that a download still in progress "
                                "there is seen.",
        "no_ref": "Write the snapshot's commit to refs/main (printf '%s' <commit> > refs/main in the model's cache "
                  "folder), or download the model again with huggingface-cli download --cache-dir <store>, so that "
                  "loading it by its id finds the snapshot offline.",
        "lfs_pointer": "The model was cloned with git without git-lfs: run git lfs pull in the model's folder (or "
                       "download it with huggingface-cli), then run the gate again.",
        "links_not_kept": "The model was copied by a tool that did not keep its symbolic links (rsync without -a or -l, "
                          "a Windows or SMB copy, git with core.symlinks=false): copy the Hugging Face cache again with rsync -a, cp -a or tar "
                          "on Linux, or copy the snapshot with its links followed (cp -rL) into a plain model folder.",
    },
    "preload": {
        "failed": "Read the orchestrator's error for the model (out of GPU memory, missing or corrupt weights, "
                  "wrong model id) and fix its cause, then run the gate again with --refresh (PRELOAD_REFRESH=1) "
                  "so that the orchestrator loads it again.",
        "timeout": "The models were not ready in time: raise GATE_TIMEOUT (keep it below the unit's "
                   "TimeoutStartSec), or read the orchestrator's journal for a model stuck loading.",
        "refused": "The orchestrator refused the preload request: read its answer and its journal; check the "
                   "orchestrator version against the runbook's API.",
        "check_mode": "Run the gate without check mode to load the models, or load them on the orchestrator first.",
        "unlisted": "The orchestrator does not list the model in GET /models/status: check that the map's model id is "
                    "the one the orchestrator serves (its configuration), then run the gate again with --refresh.",
    },
    "mps": {
        "daemon": "Start the MPS control daemon as the GPU's owner (nvidia-cuda-mps-control -d, or its systemd "
                  "unit), with CUDA_MPS_PIPE_DIRECTORY and CUDA_MPS_LOG_DIRECTORY as the services use.",
        "pipe_dir": "Create the MPS pipe directory (CUDA_MPS_PIPE_DIRECTORY, default /tmp/nvidia-mps) by starting "
                    "the control daemon, and let the service user write to it.",
        "disabled": "Start the orchestrator with MPS enabled (its MPS setting), after the MPS control daemon is up.",
        "unknown": "Install nvidia-cuda-mps-control (NVIDIA driver utilities) on the host, or run the gate with "
                   "REQUIRE_MPS=0 where MPS is not used.",
    },
    "bus": {
        "down": "Start the bus service (systemctl start <bus unit>) and check BUS_URL; agents start after it.",
        "unhealthy": "The bus answers but says it is not ready: read its journal for why (a dependency down, still "
                     "starting), fix that, then run the gate again.",
    },
}

# ====================================================================================================

MAP_MAX_BYTES = 1024 * 1024
CONFIG_MAX_BYTES = 4 * 1024 * 1024
INDEX_MAX_BYTES = 32 * 1024 * 1024
SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024   # the safetensors reference implementation's limit
SAFETENSORS_PARSE_LIMIT = 32 * 1024 * 1024   # headers above this are size-checked, not parsed
# Bits per element of each safetensors dtype (safetensors' Dtype::bitsize): a tensor's bytes are its element
# count times these, over 8. A dtype not listed here (a newer one) has its offsets checked, not its size.
SAFETENSORS_DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16,
    "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64, "U64": 64, "C64": 64, "F4": 4,
    "F6_E2M3": 6, "F6_E3M2": 6,
}
BODY_MAX_BYTES = 1024 * 1024
JSON_MAX_DEPTH = 100  # levels of lists and objects in any JSON the gate reads (decode_json)
MAX_DIR_ENTRIES = 100000
ERROR_TEXT_LIMIT = 2000
STALE_POLLS = 3  # polls after a preload before errors shown unchanged since before it count as its outcome
MAP_FIELDS = ("model", "path", "files")
_AGENT_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@\\-]{0,199}$")
_SHARD = re.compile(r"^(?P<prefix>.+)-(?P<num>\d+)-of-(?P<total>\d+)(?P<ext>\.safetensors|\.bin)$")
# What refs/main may name: huggingface_hub writes a commit hash, and resolves any name of a snapshot folder
# (hand-built caches name theirs: refs/main "local", snapshots/local/); one path component, no control characters.
_REF_NAME = re.compile(r"^[^/\\\x00-\x1f\x7f]{1,255}$")
# A file cloned with git but without git-lfs is a small text pointer in place of its content (the
# git-lfs spec: a pointer starts with this line and is under 1024 bytes).
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"
_LINK_NOT_KEPT = ", not the file: the copy did not keep symbolic links"
# Small files that stand in for the real one, each (how it starts, cause, what it is; %(head)s: its first
# line): a clone without git-lfs, and what a copy that cannot keep a symbolic link leaves in its place (a Hugging
# Face cache is links into blobs/): git with core.symlinks=false writes the link's text, an SMB/CIFS share
# mounted with mfsymlinks an "XSym" file (1067 bytes), Cygwin without native links a "!<symlink>" file.
PLACEHOLDER_MAX_BYTES = 2048
PLACEHOLDERS = (
    (re.compile(re.escape(LFS_POINTER)), "lfs_pointer", "is a git-lfs pointer, not the file: run git lfs pull"),
    (re.compile(br"(?:[^\x00\r\n]*/)?blobs/[0-9a-f]{40,64}\s*$"), "links_not_kept",
     "is a text file holding the target of a symbolic link (%(head)s)" + _LINK_NOT_KEPT),
    (re.compile(br"XSym\n"), "links_not_kept", "is an SMB/CIFS symlink file (XSym, mount option mfsymlinks)"
     + _LINK_NOT_KEPT),
    (re.compile(br"!<symlink>"), "links_not_kept", "is a Cygwin symlink file (!<symlink>)" + _LINK_NOT_KEPT),
)
# What a 2xx health answer (the orchestrator's /health, the bus) may say about itself, judged by one rule
# (``not_ready_said``): a phrase of NOT_READY_WORDS, compared word by word (case and the _ - . between words
# ignored: OUT_OF_SERVICE, "loading model", NOT_SERVING), in the text under a HEALTH_STATE_KEYS key, in a short
# plain-text body or a JSON string; false under either kind of key, or a JSON false. Anything else a 2xx says is
# ready: nothing, null, UP, ok, healthy, SERVING, a word not in the table (2xx is the contract).
HEALTH_STATE_KEYS = ("status", "state", "health", "readiness", "phase")
HEALTH_FLAG_KEYS = ("ok", "healthy", "ready", "up", "alive", "live", "available", "success")
NOT_READY_WORDS = (
    "down", "unhealthy", "not healthy", "not ready", "unready", "not ok", "not serving", "out of service",
    "unavailable", "not available", "offline", "starting", "loading", "initializing", "initialising", "warming up",
    "booting", "restarting", "pending", "waiting", "in progress", "fail", "failed", "failing", "failure", "error",
    "errored", "critical", "fatal", "dead", "crashed", "stopping", "stopped", "shutting down", "draining",
    "maintenance")
HEALTH_TEXT_MAX = 100  # characters: a longer text is a page or a report, not a state, and is not read for words
# A 2xx body that reports an error (``error_said``; the health rule above counts it as not ready, and the
# preload's POST as refused): an ERROR_KEYS key holding anything but nothing (null, false, "", [], {}:
# {"error": "db unreachable"}, {"error": {"message": ...}} as OpenAI-style servers send), an ERROR_SHAPES
# key/value ({"object": "error", ...}, vLLM's error answer), a HEALTH_STATE_KEYS key holding an HTTP error
# status (400-599) or a FAILED_STATES word, or an ERROR_FLAG_KEYS flag that reads false.
ERROR_KEYS = ("error", "errors")
ERROR_SHAPES = (("object", "error"),)
# not "accepted": {"accepted": false} may say a preload is already under way, which 409 says too (waited for)
ERROR_FLAG_KEYS = ("ok", "success")
FALSE_TEXTS = ("false", "no", "0", "off")  # a flag sent as text or a number: "false", 0 read as false
READY_STATES = ("ready", "loaded", "ok", "done", "available", "serving", "running")
FAILED_STATES = ("failed", "error", "errored")


# ---------------------------------------------------------------- small helpers


def _took(seconds):
    """'4 ms', '1.2 s': how long something took, for ok texts."""
    seconds = seconds or 0.0
    return "%d ms" % round(seconds * 1000) if seconds < 1 else "%.1f s" % seconds


# A URL inside any text: scheme, user name and password, the rest up to the query, the query.
_URL_IN_TEXT = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s/?#@'\"<>]*@)?([^\s?#'\"<>]*)(\?[^\s#'\"<>]*)?")


def _redact_one(match):
    query = match.group(4)
    if query:
        query = "?" + "&".join(part.split("=", 1)[0] + "=***" if "=" in part else ("***" if part else part)
                               for part in query[1:].split("&"))
    return match.group(1) + ("***@" if match.group(2) else "") + match.group(3) + (query or "")


def redact(value):
    """``value`` with the credentials of every URL in it replaced by ***: the user name and password
    (``http://***@host``) and each query value (``?token=***``); in a dict or list, in every text of it
    (keys too), at any depth; anything else as it is. Every message goes through here (``one_line``), and
    so does the whole host result (the family's ``redact``): the details quote services' answers, and a URL
    a setting, a service or its error text names is never echoed whole."""
    if isinstance(value, str):
        return _URL_IN_TEXT.sub(_redact_one, value)
    if isinstance(value, dict):
        return dict((redact(k), redact(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def one_line(text, limit=ERROR_TEXT_LIMIT):
    """Text on one line, word for word but for URL credentials (``redact``): line breaks, tabs and other
    control characters written as escapes (\\n, \\t, \\x07); bounded to ``limit`` characters, saying
    how many were left out."""
    if not isinstance(text, str):
        text = json.dumps(text, sort_keys=True, default=str)
    out = redact(text).replace("\r\n", "\n").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    out = "".join(ch if ch >= " " and ch != "\x7f" else "\\x%02x" % ord(ch) for ch in out)
    if len(out) > limit:
        out = "%s... (%d more characters)" % (out[:limit], len(out) - limit)
    return out


def _quote_list(names):
    return ", ".join("'%s'" % n for n in names)


def _who(agents, model):
    """"agent 'crawler' (model 'org/m')" / "agents 'a', 'b' (model 'org/m')"."""
    agents = list(agents)
    if not agents:
        return "model '%s'" % model
    word = "agent" if len(agents) == 1 else "agents"
    return "%s %s (model '%s')" % (word, _quote_list(agents), model)


def _suggest(word, candidates):
    import difflib  # only when something is misspelt
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return " (did you mean '%s'?)" % close[0] if close else ""


def parse_bool(value, option):
    """1/0, true/false, yes/no, on/off (any case) -> bool; ValueError naming the option otherwise."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "y"):
        return True
    if text in ("0", "false", "no", "off", "n", ""):
        return False
    raise ValueError("%s must be 1 or 0 (true/false, yes/no, on/off), got %r" % (option, value))


def read_bounded(path, limit, what="file"):
    """(bytes, None) or (None, error naming ``what`` and the path): a regular file of at most ``limit``
    bytes, read without blocking on a FIFO."""
    try:
        return _files.read_regular(path, limit), None
    except _files.FileProblem as exc:
        return None, "%s %s" % (what, exc)
    except OSError as exc:
        return None, "%s %s cannot be read: %s" % (what, path, exc.strerror or exc)


def _json_error(exc):
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, UnicodeDecodeError):
        return "not valid UTF-8 (byte %d)" % exc.start
    msg = getattr(exc, "msg", None)
    if msg and getattr(exc, "lineno", None):
        return "%s at line %d column %d" % (msg, exc.lineno, exc.colno)
    return str(exc)


def _deeper_than(value, limit):
    """Whether lists and objects nest in ``value`` more than ``limit`` levels (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def decode_json(data, duplicates=None):
    """(value, None) or (None, error) for UTF-8 JSON bytes. ``duplicates``: a list collecting
    object keys that appear twice in one object (JSON allows it, a map must not). Lists and objects
    nested more than JSON_MAX_DEPTH levels are refused: the parser takes thousands, but a host result
    that quotes them is walked recursively (``redact``, ``clean_text``) and would end in RecursionError."""
    pairs = pairs_noting_repeats([] if duplicates is None else duplicates)
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        if text.startswith("\ufeff"):
            text = text[1:]
        value = json.loads(text, object_pairs_hook=pairs)
    except (ValueError, RecursionError) as exc:
        return None, _json_error(exc)
    if isinstance(value, (dict, list)) and _deeper_than(value, JSON_MAX_DEPTH):
        return None, "nested too deeply (more than %d levels)" % JSON_MAX_DEPTH
    return value, None


# ---------------------------------------------------------------- the model map


def read_model_map(path, limit=MAP_MAX_BYTES):
    """Collector: ``{"path", "data", "error", "duplicates"}`` for the JSON file at ``path`` (bounded read)."""
    out = {"path": path, "data": None, "error": None, "duplicates": []}
    if not path or not isinstance(path, str):
        out["error"] = "no model map given (AGENT_MODEL_MAP / --model-map)"
        return out
    data, error = read_bounded(path, limit, "model map")
    if error:
        out["error"] = error
        return out
    if not data.strip():
        out["error"] = "model map %s is empty" % path
        return out
    value, error = decode_json(data, out["duplicates"])
    if error:
        out["error"] = "model map %s is not valid JSON: %s" % (path, error)
    else:
        out["data"] = value
    return out


def _model_id_norm(model):
    return re.sub(r"[^a-z0-9]", "", model.lower())


def _path_problem(text):
    """Why a map path or file name cannot be used, or None."""
    if any(ord(ch) < 32 for ch in text):
        return "contains control characters"
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts:
        return "names no folder"
    depth = 0
    for part in parts:
        depth += -1 if part == ".." else 1
        if depth < 0:
            return "climbs out of the store root with '..'"
    return None


def evaluate_model_map(loaded, known_agents=None):
    """Pure: problems of the loaded map (``read_model_map``), each naming its agent key.

    ``known_agents``: the agent keys that exist (e.g. the instances of the template unit); when
    given, every key of the map must be one of them. Returns ``(problems, ok_text, details)``;
    ``details["entries"]`` lists the valid entries ``{"agent", "model", "path", "files"}``.
    """
    fixes = FIXES["model_map"]
    problems = []

    def bad(message):
        problems.append(_checks.problem("model_map", _checks.FAIL, message, fixes["invalid"]))

    details = {"path": loaded.get("path"), "entries": [], "agents": 0, "models": 0}
    if loaded.get("error"):
        bad(loaded["error"])
        return problems, None, details
    data = loaded.get("data")
    where = "model map %s" % loaded.get("path")
    if not isinstance(data, dict):
        bad("%s must be a JSON object of agent key -> {model, path}, not %s" % (where, _json_type(data)))
        return problems, None, details
    if not data:
        bad("%s names no agent" % where)
        return problems, None, details
    for key in sorted(set(loaded.get("duplicates") or [])):
        bad("%s: key '%s' appears more than once in one object (agent keys and fields must be unique)"
            % (where, one_line(key, 200)))
    known = list(known_agents) if known_agents else None
    by_model, by_path = {}, {}
    for agent, entry in data.items():
        label = "%s: agent '%s'" % (where, one_line(agent, 200))
        if not _AGENT_KEY.match(agent):
            bad("%s: not a valid agent key (letters, digits and _ . : @ - only, starting with a letter or digit)"
                % label)
            continue
        if known is not None and agent not in known:
            bad("%s is not a known agent%s; known agents: %s" % (label, _suggest(agent, known), _quote_list(known)))
            continue
        if not isinstance(entry, dict):
            bad("%s: expected an object with model and path, got %s" % (label, _json_type(entry)))
            continue
        entry_ok = True
        for field in entry:
            if field not in MAP_FIELDS:
                bad("%s: unknown field '%s'%s; allowed fields: %s"
                    % (label, one_line(field, 100), _suggest(field, MAP_FIELDS), ", ".join(MAP_FIELDS)))
                entry_ok = False
        model, path, files = entry.get("model"), entry.get("path"), entry.get("files", [])
        if not isinstance(model, str) or not model.strip():
            bad("%s: 'model' must be a non-empty model id (e.g. \"Qwen/Qwen2.5-7B-Instruct\"), got %s"
                % (label, json.dumps(model) if model is not None else "nothing"))
            entry_ok = False
        elif model != model.strip() or any(ch.isspace() or ord(ch) < 32 for ch in model) or len(model) > 256:
            bad("%s: model id %s has spaces or control characters, or is too long" % (label, json.dumps(model)))
            entry_ok = False
        if not isinstance(path, str) or not path.strip():
            bad("%s: 'path' must be the model's folder under the store root, got %s"
                % (label, json.dumps(path) if path is not None else "nothing"))
            entry_ok = False
        else:
            why = _path_problem(path)
            if why:
                bad("%s: path %s %s" % (label, json.dumps(path), why))
                entry_ok = False
        if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
            bad("%s: 'files' must be a list of file names inside the model folder" % label)
            entry_ok = False
        else:
            for name in files:
                why = _path_problem(name) or ("is absolute" if name.startswith("/") else None)
                if why:
                    bad("%s: file %s %s" % (label, json.dumps(name), why))
                    entry_ok = False
        if not entry_ok:
            continue
        norm_path = os.path.normpath(path)
        details["entries"].append({"agent": agent, "model": model, "path": path, "files": list(files)})
        by_model.setdefault(model, []).append((agent, norm_path))
        by_path.setdefault(norm_path, []).append((agent, model))
    for model, uses in sorted(by_model.items()):
        paths = sorted(set(p for _a, p in uses))
        if len(paths) > 1:
            bad("%s: model '%s' has %d different paths: %s" % (
                where, model, len(paths), "; ".join("agent '%s' -> %s" % (a, p) for a, p in uses)))
    for path, uses in sorted(by_path.items()):
        models = sorted(set(m for _a, m in uses))
        if len(models) > 1:
            bad("%s: path %s is mapped to different model ids: %s" % (
                where, path, "; ".join("agent '%s' -> '%s'" % (a, m) for a, m in uses)))
    seen_norm = {}
    for model in sorted(by_model):
        norm = _model_id_norm(model)
        if norm in seen_norm and seen_norm[norm] != model:
            other = seen_norm[norm]
            bad("%s: model ids '%s' (%s) and '%s' (%s) differ only in case or punctuation: a typo?" % (
                where, other, _quote_list(a for a, _p in by_model[other]),
                model, _quote_list(a for a, _p in by_model[model])))
        seen_norm.setdefault(norm, model)
    details["agents"] = len(details["entries"])
    details["models"] = len(by_model)
    if problems:
        details["entries"] = []
        return problems, None, details
    ok_text = "%d agent(s), %d model(s) in %s" % (details["agents"], details["models"], loaded.get("path"))
    return problems, ok_text, details


def _json_type(value):
    for kind, name in ((dict, "an object"), (list, "a list"), (str, "a string"), (bool, "a boolean"),
                       (int, "a number"), (float, "a number")):
        if isinstance(value, kind):
            return name
    return "null"


# ---------------------------------------------------------------- the model store (collector)


class _StoreWalk(object):
    """Stat walk of the model store as the service user sees it; one per gate run (stats and ACLs cached)."""

    def __init__(self, root, ident):
        self.root = root
        self.real_root = os.path.realpath(root)
        self.ident = ident
        self._stats = {}
        self._acls = {}

    def stat(self, path):
        if path not in self._stats:
            try:
                self._stats[path] = (os.stat(path), None)
            except OSError as exc:
                self._stats[path] = (None, exc)
        return self._stats[path]

    def allows(self, path, st, want):
        if path not in self._acls:
            self._acls[path] = read_acl(path)
        return may_access(st, self.ident, want, self._acls[path])

    def search_problem(self, path):
        """(cause, path, text) for the first directory on the way to ``path`` that the user cannot
        search; None when every one can be searched (or one is missing: the caller reports that)."""
        for directory in ancestors(path):
            st, exc = self.stat(directory)
            if st is None:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                    return None
                return ("unreadable", directory, "%s cannot be examined: %s" % (directory, exc.strerror or exc))
            if not self.allows(directory, st, X_OK):
                return ("no_search", directory, "parent directory %s is not searchable (x) by %s: %s"
                        % (directory, user_text(self.ident), owner_text(st)))
        return None

    def resolve(self, path):
        """(real path, (cause, path, text) or None): the path's target must be inside the store root."""
        real = os.path.realpath(path)
        if not is_within(real, self.real_root):
            return real, ("escapes", path, "%s leads outside the store root %s (to %s)" % (path, self.root, real))
        return real, None


def _finding(cause, path, text):
    return {"cause": cause, "path": path, "text": text}


def _check_file(walk, folder, name, findings, checked, content=None):
    """Check one required file of a model folder: present, inside the store, regular, not empty,
    readable by the service user (parents searchable), and its content when asked. Returns the
    real path or None."""
    path = os.path.join(folder, name)
    try:
        lst = os.lstat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            findings.append(_finding("incomplete", path, "%s is missing" % path))
        else:
            findings.append(_finding("unreadable", path, "%s cannot be examined: %s" % (path, exc.strerror or exc)))
        return None
    real, escape = walk.resolve(path)
    if escape:
        findings.append(_finding(*escape))
        return None
    if stat.S_ISLNK(lst.st_mode) and not os.path.exists(real):
        findings.append(_finding("incomplete", path, _dangling_text(walk, path, real)))
        return None
    blocked = walk.search_problem(real)
    if blocked:
        findings.append(_finding(*blocked))
        return None
    st, exc = walk.stat(real)
    if st is None:
        findings.append(_finding("unreadable", path, "%s cannot be examined: %s" % (path, exc.strerror or exc)))
        return None
    if not stat.S_ISREG(st.st_mode):
        findings.append(_finding("incomplete", path, "%s is %s, not a regular file" % (path, _files.kind(st.st_mode))))
        return None
    if st.st_size == 0:
        findings.append(_finding("incomplete", path, "%s is empty (0 bytes)" % path))
        return None
    if not walk.allows(real, st, R_OK):
        findings.append(_finding("unreadable", path, "%s is not readable by %s: %s"
                                 % (path, user_text(walk.ident), owner_text(st))))
        return None
    checked.append({"name": name, "bytes": st.st_size})
    placeholder = _placeholder(real) if st.st_size <= PLACEHOLDER_MAX_BYTES else None
    if placeholder:
        findings.append(_finding(placeholder[0], path, "%s %s" % (path, placeholder[1])))
        return None
    if content is not None:
        why = content(real, st.st_size)
        if why:
            findings.append(_finding("incomplete", path, "%s %s" % (path, why)))
            return None
    return real


def _dangling_text(walk, path, real):
    """Why the link ``path`` leads to nothing (``real``): a blob not downloaded or not copied, unless a
    ``blobs/`` folder of a cache repo above the link (inside the store) holds the blob it names: then the
    link itself is wrong (huggingface_hub 0.13.1 wrote links relative to the working directory)."""
    name = os.path.basename(real)
    folder = os.path.dirname(path)
    while name and (is_within(folder, walk.real_root) or is_within(folder, walk.root)):
        blob = os.path.join(folder, "blobs", name)
        if os.path.isfile(blob):
            return ("%s is a symbolic link to %s, which is missing; %s is there: the link is wrong, not the "
                    "download (re-create the link, or download the model again)" % (path, real, blob))
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return "%s is a symbolic link to %s, which is missing (a blob not downloaded or not copied)" % (path, real)


def _placeholder(path):
    """(cause, text) when the small file ``path`` stands in for the real one (``PLACEHOLDERS``), else None."""
    data, _error = read_bounded(path, PLACEHOLDER_MAX_BYTES)
    for pattern, cause, text in PLACEHOLDERS:
        if data and pattern.match(data):
            head = data.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
            return cause, text % {"head": one_line(head, 200)}
    return None


def _json_object_content(limit):
    def check(path, _size):
        data, error = read_bounded(path, limit)
        if error:
            return "cannot be read: %s" % error
        value, error = decode_json(data)
        if error:
            return "is not valid JSON (%s): truncated or corrupt" % error
        if not isinstance(value, dict):
            return "is not a JSON object"
        return None
    return check


def _open_weights(path):
    """(fd, None) or (None, why) for a weights file, opened without blocking."""
    try:
        return _files.open_regular(path), None
    except _files.FileProblem as exc:
        return None, str(exc)
    except OSError as exc:
        return None, "cannot be opened: %s" % (exc.strerror or exc)


def safetensors_problem(path, size, tensors=None):
    """Why a .safetensors file is truncated or not one, or None. The format: 8 bytes little-endian
    header length N, N bytes of JSON ({tensor: {dtype, shape, data_offsets: [begin, end]}, optional
    __metadata__}), then the data, whose length is the largest ``end``: a complete file is exactly
    8 + N + that long (the reference implementation refuses anything else). ``tensors``: the names a
    sharded index places in this file, each of which its header must hold."""
    fd, why = _open_weights(path)
    if fd is None:
        return why
    try:
        head = _files.read_fd(fd, 8)
        if len(head) < 8:
            return "is %d bytes, too short for a safetensors header" % size
        length = struct.unpack("<Q", head)[0]
        if length < 2 or length > SAFETENSORS_MAX_HEADER:
            return "is not a safetensors file (header length %d)" % length
        if 8 + length > size:
            return "is truncated: its header alone needs %d bytes, the file has %d" % (8 + length, size)
        if length > SAFETENSORS_PARSE_LIMIT:
            return None
        raw = _files.read_fd(fd, length)
    except OSError as exc:
        return "cannot be read: %s" % (exc.strerror or exc)
    finally:
        os.close(fd)
    header, error = decode_json(raw)
    if error or not isinstance(header, dict):
        return "has a corrupt safetensors header (%s)" % (error or "not an object")
    if not raw.startswith(b"{"):  # safetensors >= 0.4 refuses a header that does not open with '{'
        return "has a corrupt safetensors header (it does not start with '{')"
    end, why = _safetensors_data_end(header)
    if why:
        return "has a corrupt safetensors header (%s)" % why
    expected = 8 + length + end
    if expected > size:
        return "is truncated: %d of %d bytes (a copy that did not finish)" % (size, expected)
    if expected < size:
        return "has %d bytes after its last tensor: not a complete safetensors file" % (size - expected)
    lacking = sorted(set(tensors or ()) - set(header) - set(["__metadata__"]))
    if lacking:  # a shard of another revision or model: loaders would miss these weights (or init them at random)
        return "does not hold %d tensor(s) its index places in it (%s%s): a shard of another revision or model" % (
            len(lacking), ", ".join(one_line(n, 80) for n in lacking[:3]), ", ..." if len(lacking) > 3 else "")
    return None


def _safetensors_data_end(header):
    """(end of the data, None) or (None, why) for a parsed safetensors header, checked as the reference
    implementation loads it (Metadata::validate): tensors sorted by offsets must tile the data with no
    gap or overlap, each exactly as long as its dtype and shape say; __metadata__ is a text-to-text map."""
    metadata = header.get("__metadata__")
    if metadata is not None and not (isinstance(metadata, dict)
                                     and all(isinstance(v, str) for v in metadata.values())):
        return None, "__metadata__ is not a map of texts"
    tensors = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        shown = one_line(name, 80)
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)):
            return None, "tensor %s without valid data_offsets" % shown
        shape = info.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            return None, "tensor %s without a valid shape" % shown
        if not isinstance(info.get("dtype"), str):
            return None, "tensor %s without a dtype" % shown
        tensors.append((offsets[0], offsets[1], shown, info["dtype"], shape))
    start = 0
    for begin, end, shown, dtype, shape in sorted(tensors, key=lambda t: (t[0], t[1])):
        if end < begin:
            return None, "tensor %s has data_offsets [%d, %d]: it ends before it begins" % (shown, begin, end)
        if begin != start:
            return None, "tensor %s has data_offsets [%d, %d] where [%d, ...] was expected: its data overlaps " \
                         "another's or leaves a gap" % (shown, begin, end, start)
        start = end
        bits = SAFETENSORS_DTYPE_BITS.get(dtype)
        if bits is not None:
            count = 1
            for dim in shape:
                count *= dim
            if count * bits != (end - begin) * 8:
                return None, "tensor %s (%s %s) needs %s bytes, its data_offsets give %d" % (
                    shown, dtype, json.dumps(shape), "%d" % (count * bits // 8) if count * bits % 8 == 0 else
                    "%.1f" % (count * bits / 8.0), end - begin)
    return start, None


def zip_weights_problem(path, size):
    """A torch.save zip (pytorch_model*.bin since PyTorch 1.6, Mistral's consolidated.00.pth) must end with its
    end-of-central-directory record; a legacy pickle is only checked for being there and not empty."""
    fd, why = _open_weights(path)
    if fd is None:
        return why
    try:
        if _files.read_fd(fd, 4) != b"PK\x03\x04":
            return None
        tail_len = min(size, 65536 + 22)
        os.lseek(fd, size - tail_len, os.SEEK_SET)
        tail = _files.read_fd(fd, tail_len)
    except OSError as exc:
        return "cannot be read: %s" % (exc.strerror or exc)
    finally:
        os.close(fd)
    if b"PK\x05\x06" not in tail:
        return "is truncated: a zip archive (torch.save) without its end record"
    return None


def _weights_content(name, tensors=None):
    if name.endswith(".safetensors"):
        return lambda path, size: safetensors_problem(path, size, tensors)
    if name.endswith((".bin", ".pth")):
        return zip_weights_problem
    return None


def _list_dir(folder, findings):
    names = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                names.append(entry.name)
                if len(names) >= MAX_DIR_ENTRIES:
                    break
    except OSError as exc:
        findings.append(_finding("unreadable", folder, "%s cannot be listed: %s" % (folder, exc.strerror or exc)))
    return sorted(names)


_CONSOLIDATED_PTH = re.compile(r"^consolidated\.\d+\.pth$")

# The model folder layouts the gate knows, each declared once: the config file that marks it (a JSON object),
# its weights' formats in the order its loaders pick them, each (is its index, is a weight file): a folder's
# weights are those of the first format it has any file of, so one complete format is enough; and what its
# weights are called when it has none. A folder is of the first layout whose config file it has (a folder with
# both is judged by its Hugging Face files, as transformers and vLLM's default load it), else of the first
# (whose config file it then lacks). Every layout gets the same checks (_inspect_model, _check_weights).
MODEL_LAYOUTS = (
    # save_pretrained, --local-dir, a hub snapshot: transformers, vLLM's default --load-format
    {"name": "hugging_face", "config": "config.json",
     "weights": ((lambda n: n.endswith(".safetensors.index.json"), lambda n: n.endswith(".safetensors")),
                 (lambda n: n.startswith("pytorch_model") and n.endswith(".bin.index.json"),
                  lambda n: n.startswith("pytorch_model") and n.endswith(".bin"))),
     "weights_text": "*.safetensors, pytorch_model*.bin, or a sharded index"},
    # Mistral's own, "consolidated" (Mistral-7B-Instruct-v0.3, Nemo, Mixtral, Codestral, Pixtral): vLLM's
    # --config-format mistral --load-format mistral reads params.json, consolidated*.safetensors and
    # consolidated.safetensors.index.json; mistral-inference also the older consolidated.00.pth (torch.save)
    {"name": "mistral", "config": "params.json",
     "weights": ((lambda n: n.startswith("consolidated") and n.endswith(".safetensors.index.json"),
                  lambda n: n.startswith("consolidated") and n.endswith(".safetensors")),
                 (lambda n: False, _CONSOLIDATED_PTH.match)),
     "weights_text": "consolidated*.safetensors or consolidated.*.pth, beside params.json"},
)


def _model_layout(folder):
    """The entry of ``MODEL_LAYOUTS`` the model folder ``folder`` is judged by."""
    for layout in MODEL_LAYOUTS:
        if os.path.lexists(os.path.join(folder, layout["config"])):
            return layout
    return MODEL_LAYOUTS[0]


def _check_weights(walk, folder, names, findings, checked, layout):
    """The weights of a model folder of ``layout`` (``MODEL_LAYOUTS``), in the first of its formats it has
    (so a folder with both index files but only the safetensors downloaded is complete): by their index
    (sharded), else the weight files, with every shard of an -NNNNN-of-NNNNN series present."""
    indexes, files = [], []
    for is_index, is_weights in layout["weights"]:
        indexes = [n for n in names if is_index(n)]
        files = [n for n in names if is_weights(n)]
        if indexes or files:
            break
    shards, placed = [], {}  # placed: shard -> the tensors its index says it holds
    for index in indexes:
        real = _check_file(walk, folder, index, findings, checked)
        if real is None:
            continue
        data, error = read_bounded(real, INDEX_MAX_BYTES, "weights index")
        doc, jerror = (None, error) if error else decode_json(data)
        weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
        # the loader joins every value to the folder: one that is not a file name breaks it (a corrupt index)
        odd = sorted(k for k, v in weight_map.items() if not isinstance(v, str)) if isinstance(weight_map, dict) else []
        if jerror or not isinstance(weight_map, dict) or not weight_map or odd:
            why = jerror or ("weight_map gives tensor %s %s, not a shard's file name"
                             % (json.dumps(odd[0]), json.dumps(weight_map[odd[0]])) if odd else "no weight_map")
            findings.append(_finding("incomplete", os.path.join(folder, index), "%s is not a valid weights index (%s)"
                                     % (os.path.join(folder, index), one_line(why, 300))))
            continue
        for tensor, shard in weight_map.items():
            placed.setdefault(shard, set()).add(tensor)
        for shard in sorted(set(v for v in weight_map.values() if isinstance(v, str))):
            why = _path_problem(shard) or ("is absolute" if shard.startswith("/") else None)
            if why:
                findings.append(_finding("escapes", os.path.join(folder, index), "%s names shard %s, which %s"
                                         % (os.path.join(folder, index), json.dumps(shard), why)))
                continue
            shards.append(shard)
    if not indexes:
        shards = files
        series = {}
        for name in shards:
            match = _SHARD.match(name)
            if match:
                key = (match.group("prefix"), match.group("total"), match.group("ext"))
                series.setdefault(key, set()).add(int(match.group("num")))
        for (prefix, total, ext), present in sorted(series.items()):
            width, count = len(total), int(total)
            for number in range(1, count + 1):
                if number not in present:
                    missing = "%s-%0*d-of-%s%s" % (prefix, width, number, total, ext)
                    findings.append(_finding("incomplete", os.path.join(folder, missing),
                                             "%s is missing (shard %d of %d)"
                                             % (os.path.join(folder, missing), number, count)))
    if not shards:
        findings.append(_finding("incomplete", folder, "%s has no weights (%s)" % (folder, layout["weights_text"])))
        return
    for shard in shards:
        _check_file(walk, folder, shard, findings, checked, _weights_content(shard, placed.get(shard)))
    # Other weight files of the format beside an index: loaders differ on which they read (transformers opens a
    # single model.safetensors before any index), so each one there must be whole too.
    for name in files:
        if name not in shards:
            _check_file(walk, folder, name, findings, checked, _weights_content(name))


INCOMPLETE = ".incomplete"


def _unfinished_downloads(folder, findings):
    """A finding when ``folder`` holds downloads huggingface_hub has not finished (``*.incomplete``):
    a cache's ``blobs/``, or a ``--local-dir`` download's ``.cache/huggingface/download/`` (its tree).
    An ``<x>.incomplete`` beside its finished ``<x>`` is the leftover of a retried or concurrent
    download that did finish (the finished file was renamed into place): it is not counted."""
    partial, errors = 0, []
    for _current, _dirs, files in os.walk(folder, onerror=errors.append):  # nothing there: nothing walked
        files = files[:MAX_DIR_ENTRIES]
        finished = set(files)
        partial += sum(1 for n in files if n.endswith(INCOMPLETE) and n[:-len(INCOMPLETE)] not in finished)
    if partial:
        findings.append(_finding("incomplete", folder, "%s holds %d unfinished download(s) (*.incomplete)"
                                 % (folder, partial)))
    unlisted = [e for e in errors if e.errno not in (errno.ENOENT, errno.ENOTDIR)]
    if unlisted:  # a folder the gate cannot list (0711): a download in progress there is not seen, so say so
        findings.append(_finding("downloads_unverified", unlisted[0].filename or folder,
                                 "%s cannot be listed to look for unfinished downloads (*.incomplete): %s"
                                 % (unlisted[0].filename or folder, unlisted[0].strerror or unlisted[0])))


# Downloaders that write into the file itself (allocated at its full size first) and mark it unfinished with a
# file beside it, removed when the download completes: suffix -> who writes it. aria2c leaves <file>.aria2, its
# control file, when stopped (aria2/aria2#792); hfd.sh, a common Hugging Face downloader, runs aria2c.
DOWNLOAD_MARKERS = ((".aria2", "aria2c's control file"),)


def _marked_downloads(folder, findings):
    """A finding for each file of the model folder (its sub-folders too, not hidden ones) that a downloader of
    DOWNLOAD_MARKERS still marks unfinished: its size and even its header may look whole, its data is not."""
    seen = 0
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            seen += 1
            if seen > MAX_DIR_ENTRIES:
                return
            for suffix, what in DOWNLOAD_MARKERS:
                if name.endswith(suffix) and len(name) > len(suffix):
                    target = os.path.join(current, name[:-len(suffix)])
                    findings.append(_finding("incomplete", target, "%s is not completely downloaded: %s (%s) is "
                                             "beside it" % (target, os.path.join(current, name), what)))


# Where huggingface-cli download --local-dir keeps its state inside the model folder.
LOCAL_DIR_DOWNLOADS = os.path.join(".cache", "huggingface", "download")


def _check_readable(walk, folder, name, findings):
    """Any other file of the model folder: inside the store, not a link to nothing, readable by the
    service user (the loader may open it: tokenizer files, generation_config.json). Folders and
    special files are left alone."""
    path = os.path.join(folder, name)
    try:
        lst = os.lstat(path)
    except OSError:
        return
    if stat.S_ISDIR(lst.st_mode):
        return
    real, escape = walk.resolve(path)
    if escape:
        findings.append(_finding(*escape))
        return
    st, _exc = walk.stat(real)
    if st is None:
        if stat.S_ISLNK(lst.st_mode):
            findings.append(_finding("incomplete", path, _dangling_text(walk, path, real)))
        return
    if stat.S_ISREG(st.st_mode) and not walk.allows(real, st, R_OK):
        findings.append(_finding("unreadable", path, "%s is not readable by %s: %s"
                                 % (path, user_text(walk.ident), owner_text(st))))
        return
    placeholder = _placeholder(real) if stat.S_ISREG(st.st_mode) and 0 < st.st_size <= PLACEHOLDER_MAX_BYTES else None
    if placeholder:  # the loader reads the tokenizer files too: a stand-in fails it as surely as one for the weights
        findings.append(_finding(placeholder[0], path, "%s %s" % (path, placeholder[1])))


def _snapshot_subfolder_links(walk, snapshot, findings):
    """Links in a cache snapshot's sub-folders (sentence-transformers' ``1_Pooling/``, diffusers' ``unet/``):
    huggingface_hub links every file of the repo into ``blobs/``, so one that leads to nothing is a download cut
    short or a blob not copied, wherever it lies. The top level is checked file by file (``_check_file``,
    ``_check_readable``); hidden entries are left alone; the walk is bounded (``MAX_DIR_ENTRIES``)."""
    seen = 0
    for current, dirs, files in os.walk(snapshot):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if current == snapshot:
            continue
        for name in sorted(files):
            seen += 1
            if seen > MAX_DIR_ENTRIES:
                return
            path = os.path.join(current, name)
            if name.startswith(".") or not os.path.islink(path):
                continue
            real, escape = walk.resolve(path)
            if escape:
                findings.append(_finding(*escape))
            elif not os.path.exists(real):
                findings.append(_finding("incomplete", path, _dangling_text(walk, path, real)))


# What marks a folder as a Hugging Face cache repo (models--org--name): snapshot_download writes refs/main
# before any file, and a file's download makes blobs/ and snapshots/<commit>/ first: a download that failed
# before its first file leaves refs/ alone (no snapshots/ to tell it by).
HF_CACHE_PARTS = ("snapshots", "refs", "blobs")


def _hf_cache_snapshot(walk, folder, findings):
    """A Hugging Face cache repo folder (models--org--name with refs/, snapshots/, blobs/): the
    snapshot its refs/main names (or its only snapshot); None with a finding when there is none."""
    snapshots = os.path.join(folder, "snapshots")
    ref_file = os.path.join(folder, "refs", "main")
    _unfinished_downloads(os.path.join(folder, "blobs"), findings)
    revision = None
    if os.path.lexists(ref_file):
        data, error = read_bounded(ref_file, 256, "ref")
        if error:
            findings.append(_finding("unreadable", ref_file, error))
            return None
        raw = data.decode("utf-8", "replace")
        revision = raw.strip()
        if not _REF_NAME.match(revision) or revision in (".", ".."):
            findings.append(_finding("missing_snapshot", ref_file, "%s does not hold a snapshot name (a commit hash)"
                                     % ref_file))
            return None
        if raw != revision:  # huggingface_hub reads a ref with f.read(), never stripped
            shown = ("%s followed by '%s'" % (revision, json.dumps(raw[len(revision):])[1:-1])
                     if raw.startswith(revision) else "'%s'" % json.dumps(raw)[1:-1])
            findings.append(_finding("ref_whitespace", ref_file, "%s holds %s: huggingface_hub reads the file as it is "
                                                                 "and finds no snapshot of that name, so loading "
                                                                 "offline fails" % (ref_file, shown)))
        # huggingface_hub reads refs/main to resolve the revision 'main': the service user must read it too
        blocked = walk.search_problem(ref_file)
        st, _exc = walk.stat(ref_file)
        if blocked:
            findings.append(_finding(*blocked))
            return None
        if st is not None and not walk.allows(ref_file, st, R_OK):
            findings.append(_finding("unreadable", ref_file, "%s is not readable by %s: %s"
                                     % (ref_file, user_text(walk.ident), owner_text(st))))
            return None
    elif not os.path.isdir(snapshots):
        findings.append(_finding("missing_snapshot", folder, "%s has no snapshots/ folder and no refs/main: no file "
                                                             "of the model was ever downloaded completely"
                                 % folder))
        return None
    else:
        try:
            found = sorted(n for n in os.listdir(snapshots) if not n.startswith("."))
        except OSError:
            found = []
        if len(found) != 1:
            findings.append(_finding("missing_snapshot", snapshots, "%s has %s snapshot(s) and no refs/main to "
                                                                    "choose one" % (snapshots, len(found) or "no")))
            return None
        revision = found[0]
        findings.append(_finding("no_ref", os.path.dirname(ref_file), "%s has no refs/main: huggingface_hub resolves "
                                 "the revision 'main' through it, so loading the model by its id offline fails (the "
                                 "gate checked the only snapshot, %s)" % (folder, revision)))
    snapshot = os.path.join(snapshots, revision)
    if not os.path.isdir(snapshot):
        findings.append(_finding("missing_snapshot", snapshot, "snapshot %s named by refs/main is missing from %s%s"
                                 % (revision, snapshots, "" if os.path.isdir(snapshots) else
                                    " (there is no snapshots/ folder: no file of the model was ever downloaded "
                                    "completely)")))
        return None
    return snapshot


def _empty_snapshot(snapshot, repo, findings):
    """True, with a finding that says why, when a cache's snapshot folder holds nothing: huggingface_hub makes
    it before the first file's download, so with no finished blob nothing was ever downloaded; with finished
    blobs, a copy left out the snapshot's links (rsync -r without -l skips them as non-regular files)."""
    try:
        if any(not name.startswith(".") for name in os.listdir(snapshot)):
            return False
    except OSError:
        return False  # the checks that follow say why it cannot be listed
    blobs = os.path.join(repo, "blobs")
    try:
        finished = [n for n in os.listdir(blobs)[:MAX_DIR_ENTRIES] if not n.endswith(INCOMPLETE)]
    except OSError:
        finished = []
    if finished:
        findings.append(_finding("links_not_kept", snapshot, "snapshot folder %s is empty while %s holds %d file(s): "
                                                             "a copy that left out the symbolic links (rsync "
                                                             "without -l or -a?)" % (snapshot, blobs, len(finished))))
    else:
        findings.append(_finding("incomplete", snapshot, "snapshot folder %s is empty: no file of the model was ever "
                                                         "downloaded completely" % snapshot))
    return True


def _inspect_model(walk, entry, base):
    """Findings and facts for one model folder of the map."""
    folder = os.path.normpath(os.path.join(base, entry["path"]))
    facts = {"dir": folder, "layout": None, "snapshot": None, "files": [], "bytes": 0}
    findings = []
    if not is_within(folder, os.path.normpath(walk.root)):
        findings.append(_finding("escapes", folder, "%s is outside the store root %s" % (folder, walk.root)))
        return findings, facts
    blocked = walk.search_problem(folder)
    try:
        lst = os.lstat(folder)
    except OSError as exc:
        if blocked:
            findings.append(_finding(*blocked))
        elif exc.errno in (errno.ENOENT, errno.ENOTDIR):
            findings.append(_finding("missing", folder, "%s is not in the store" % folder))
        else:
            findings.append(_finding("unreadable", folder, "%s cannot be examined: %s"
                                     % (folder, exc.strerror or exc)))
        return findings, facts
    real, escape = walk.resolve(folder)
    if escape:
        findings.append(_finding(*escape))
        return findings, facts
    blocked = blocked or walk.search_problem(real)
    if blocked:
        findings.append(_finding(*blocked))
        return findings, facts
    st, exc = walk.stat(real)
    if st is None or not stat.S_ISDIR(st.st_mode):
        why = "cannot be examined: %s" % (exc.strerror or exc) if st is None else "is %s, not a folder" % _files.kind(
            st.st_mode)
        if stat.S_ISLNK(lst.st_mode) and st is None:
            why = "is a symbolic link to %s, which is missing" % real
        findings.append(_finding("missing" if st is None else "incomplete", folder, "%s %s" % (folder, why)))
        return findings, facts
    if not walk.allows(real, st, R_OK | X_OK):
        findings.append(_finding("unreadable", folder, "%s cannot be listed and entered (r-x) by %s: %s"
                                 % (folder, user_text(walk.ident), owner_text(st))))
        return findings, facts
    model_dir = real
    facts["layout"] = "model_dir"
    if (not any(os.path.lexists(os.path.join(real, layout["config"])) for layout in MODEL_LAYOUTS)
            and any(os.path.isdir(os.path.join(real, part)) for part in HF_CACHE_PARTS)):
        facts["layout"] = "hf_cache"
        model_dir = _hf_cache_snapshot(walk, real, findings)
        if model_dir is None:
            return findings, facts
        facts["snapshot"] = model_dir
        blocked = walk.search_problem(model_dir)  # snapshots/ too: the loader opens snapshots/<commit>/<file>
        if blocked:
            findings.append(_finding(*blocked))
            return findings, facts
        sst, _exc = walk.stat(model_dir)
        if sst is None or not walk.allows(model_dir, sst, R_OK | X_OK):
            findings.append(_finding("unreadable", model_dir, "%s cannot be listed and entered (r-x) by %s%s"
                                     % (model_dir, user_text(walk.ident),
                                        ": " + owner_text(sst) if sst is not None else "")))
            return findings, facts
    if facts["layout"] == "hf_cache" and _empty_snapshot(model_dir, real, findings):
        return findings, facts
    if facts["layout"] == "hf_cache":
        _snapshot_subfolder_links(walk, model_dir, findings)
    checked = []
    if facts["layout"] == "model_dir":
        _unfinished_downloads(os.path.join(model_dir, LOCAL_DIR_DOWNLOADS), findings)
        _marked_downloads(model_dir, findings)
        repo = os.path.dirname(os.path.dirname(model_dir))
        if (os.path.basename(os.path.dirname(model_dir)) == "snapshots" and is_within(repo, walk.real_root)
                and os.path.isdir(os.path.join(repo, "blobs"))):
            # a map path naming a cache's snapshot folder itself (vLLM's --model .../snapshots/<commit>): its
            # download may still be running, its files not yet linked in
            _unfinished_downloads(os.path.join(repo, "blobs"), findings)
            _snapshot_subfolder_links(walk, model_dir, findings)
    layout = _model_layout(model_dir)
    _check_file(walk, model_dir, layout["config"], findings, checked, _json_object_content(CONFIG_MAX_BYTES))
    names = _list_dir(model_dir, findings)
    _check_weights(walk, model_dir, names, findings, checked, layout)
    for name in entry.get("files") or []:
        _check_file(walk, model_dir, name, findings, checked)
    seen = set(c["name"] for c in checked) | set(f["path"] for f in findings)  # names checked, paths found
    for name in names:
        if not name.startswith(".") and name not in seen and os.path.join(model_dir, name) not in seen:
            _check_readable(walk, model_dir, name, findings)
    facts["files"] = [c["name"] for c in checked]
    facts["bytes"] = sum(c["bytes"] for c in checked)
    return findings, facts


def inspect_model_store(entries, root, ident, base_dir=None):
    """Collector: what the store holds for each model of the map, as the service user ``ident`` sees it.

    ``entries``: the model map's valid entries (``evaluate_model_map`` details). Paths are relative
    to ``base_dir`` (BASE_MODEL_DIR, itself under ``root``) when given, else to ``root``; an absolute
    path must lie under ``root``. Returns ``{"root", "root_error", "models": [{"model", "agents",
    "path", "dir", "layout", "snapshot", "files", "bytes", "findings": [{"cause", "path", "text"}]}],
    "user"}``. Each model folder is inspected once, however many agents share it.
    """
    out = {"root": root, "root_error": None, "models": [], "user": dict(ident)}
    if not root or not os.path.isabs(root):
        out["root_error"] = ("root", "MODEL_STORE_ROOT must be an absolute path, got %r" % (root,))
        return out
    root = os.path.normpath(root)
    out["root"] = root
    walk = _StoreWalk(root, ident)
    blocked = walk.search_problem(root)
    st, exc = walk.stat(root)
    if blocked:
        out["root_error"] = (blocked[0], "store root: %s" % blocked[2])
        return out
    if st is None or not stat.S_ISDIR(st.st_mode):
        why = (exc.strerror or str(exc)) if st is None else "%s, not a folder" % _files.kind(st.st_mode)
        out["root_error"] = ("root", "store root %s: %s" % (root, why))
        return out
    if not walk.allows(root, st, X_OK):
        out["root_error"] = ("no_search", "store root %s is not searchable (x) by %s: %s"
                             % (root, user_text(ident), owner_text(st)))
        return out
    base = root
    if base_dir:
        base = os.path.normpath(base_dir if os.path.isabs(base_dir) else os.path.join(root, base_dir))
        if not is_within(base, root):
            out["root_error"] = ("escapes", "BASE_MODEL_DIR %s is not under MODEL_STORE_ROOT %s" % (base, root))
            return out
    by_dir = {}
    for entry in entries:
        folder = os.path.normpath(os.path.join(base, entry["path"]))
        key = (folder, entry["model"])
        if key not in by_dir:
            by_dir[key] = {"model": entry["model"], "agents": [], "path": entry["path"], "files": list(entry.get("files") or [])}
            out["models"].append(by_dir[key])
        by_dir[key]["agents"].append(entry["agent"])
        for name in entry.get("files") or []:
            if name not in by_dir[key]["files"]:
                by_dir[key]["files"].append(name)
    for item in out["models"]:
        findings, facts = _inspect_model(walk, {"path": item["path"], "files": item["files"]}, base)
        item.update(facts)
        item["findings"] = findings
    return out


# Findings that warn and do not block: the model is complete, but a loader may not find it the way it is laid out,
# or a folder no loader lists (blobs/) could not be looked through for downloads in progress (said, not passed).
WARN_CAUSES = ("no_ref", "downloads_unverified")


def evaluate_model_store(store, strict=True):
    """Pure: the model_store check from ``inspect_model_store``'s observations.

    STRICT (the default): a model that is not in the store fails (the orchestrator would download
    it); otherwise that is a warning. A half-copied, unreadable or escaping model always fails.
    """
    fixes = FIXES["model_store"]
    problems = []
    details = {"root": store.get("root"), "strict": bool(strict), "user": store.get("user"), "models": []}
    if store.get("root_error"):
        cause, text = store["root_error"]
        problems.append(_checks.problem("model_store", _checks.FAIL, text, fixes.get(cause, fixes["root"])))
        return problems, None, details
    complete = 0
    for item in store.get("models", []):
        who = _who(item["agents"], item["model"])
        details["models"].append(dict((k, item.get(k)) for k in ("model", "agents", "dir", "layout", "snapshot",
                                                                 "files", "bytes")))
        blocking = [f for f in item["findings"] if f["cause"] not in WARN_CAUSES]
        details["models"][-1]["complete"] = not blocking
        if not blocking:
            complete += 1
        for found in item["findings"]:
            status = _checks.WARN if found["cause"] in WARN_CAUSES else _checks.FAIL
            text = found["text"]
            if found["cause"] == "missing":
                if strict:
                    text += " (STRICT_MODEL_STORE=1: nothing may be downloaded at start-up)"
                else:
                    status = _checks.WARN
                    text += " (the orchestrator would download it: STRICT_MODEL_STORE=0)"
            problems.append(_checks.problem("model_store", status, "%s: %s" % (who, text),
                                            fixes.get(found["cause"], fixes["incomplete"]),
                                            agents=item["agents"], model=item["model"], cause=found["cause"],
                                            path=found["path"]))
    total = len(store.get("models", []))
    ok_text = None
    if not any(p["status"] == _checks.FAIL for p in problems):
        user = store.get("user")
        ok_text = "%d of %d model(s) complete under %s, readable by %s" % (
            complete, total, store.get("root"), user_text(user) if user else "the service user")
        if user and user.get("uid") == 0:
            ok_text += (" (root reads everything: name the service user, --service-user or serving_gate_service_user, "
                        "to check its own permissions)")
    return problems, ok_text, details


# ---------------------------------------------------------------- HTTP with hard deadlines


def url_problem(url):
    """Why ``url`` cannot be a service's URL for the gate (words to follow the option's name), or None.
    The URL is quoted with its credentials redacted."""
    return _split_url(url)[1]


def _shown_url(text):
    """A refused URL as its message quotes it: the user name and password, and each query value, as ***. ``redact``
    reads a URL in a text up to the first white space; here the whole text is the URL, white space and all."""
    match = re.match(r"^([^:/?#]*://|)([^/?#]*@)?([^?#]*)(\?[^#]*)?(#.*)?$", text, re.DOTALL)
    return _redact_one(match) + (match.group(5) or "")  # matches any text


def _split_url(url):
    """((scheme, host, port, path prefix), None) or (None, why)."""
    if not isinstance(url, str) or not url.strip():
        return None, "is empty: expected e.g. %s" % DEFAULT_URL
    text = url.strip()
    shown = one_line(_shown_url(text), 300)
    match = re.match(r"^(https?)://([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$", text, re.IGNORECASE)
    if not match:
        return None, "%r is not an http:// or https:// URL (e.g. %s)" % (shown, DEFAULT_URL)
    scheme, netloc, path = match.group(1).lower(), match.group(2), match.group(3)
    if "@" in netloc:
        return None, "%r: user names or passwords in the URL are not supported (the gate sends no credentials)" % shown
    if match.group(4) is not None or match.group(5) is not None:
        return None, ("%r: a query string or fragment (?... #...) is not supported: give the service's base URL "
                      "(the gate adds its own paths)" % shown)
    if re.search(r"[^\x21-\x7e]", text):  # http.client refuses them in every request (InvalidURL, or not ASCII)
        return None, ("%r: white space, control characters and non-ASCII characters are not allowed in the URL "
                      "(percent-encode them: %%20 for a space)" % shown)
    host_match = re.match(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$", netloc)
    if not host_match:
        return None, "%r has no valid host[:port]" % shown
    host = host_match.group(1).strip("[]")
    if host_match.group(1).startswith("["):
        try:  # brackets hold an IPv6 address only (RFC 3986); anything else would fail each call as unresolvable
            socket.inet_pton(socket.AF_INET6, host)
        except (OSError, ValueError):
            return None, "%r: [%s] is not an IPv6 address" % (shown, one_line(host, 100))
    port = int(host_match.group(2)) if host_match.group(2) else (443 if scheme == "https" else 80)
    if not 0 < port < 65536:
        return None, "%r: port %d is out of range" % (shown, port)
    return (scheme, host, port, path.rstrip("/")), None


def parse_url(url, option="url"):
    """(scheme, host, port, path prefix) of an http(s) URL; ValueError naming the option (``url_problem``)."""
    parts, why = _split_url(url)
    if why:
        raise ValueError("%s %s" % (option, why))
    return parts


def netloc(host, port):
    """'host:port', an IPv6 address in brackets ('[::1]:9'), as a URL writes it."""
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def _is_json_type(content_type):
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class Reply(object):
    """One HTTP exchange: ``status`` (None when no answer), ``data`` (parsed JSON), ``text`` (body,
    one line, bounded), ``error`` (one line, None when the answer is usable), ``timed_out``, ``refused``,
    ``json_error`` (why a body that says it is JSON could not be read, when JSON was not required)."""

    __slots__ = ("method", "url", "status", "content_type", "data", "text", "error", "timed_out", "refused",
                 "elapsed", "json_error")

    def __init__(self, method, url):
        self.method, self.url = method, url
        self.status = self.content_type = self.data = self.text = self.error = self.json_error = None
        self.timed_out = self.refused = False
        self.elapsed = 0.0

    @property
    def ok(self):
        return self.error is None

    def as_dict(self):
        return dict((k, getattr(self, k)) for k in self.__slots__)


class _BodyTooLarge(Exception):
    pass


def _redirect_target(location):
    """'to h:p' / 'to a path on the same host' / 'without a Location' for a 3xx answer's Location."""
    if not location or not location.strip():
        return "without a Location"
    match = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)", location.strip())
    if not match:
        return "to a path on the same host"
    netloc = match.group(1).rpartition("@")[2]  # never the user name or password
    return "to %s" % (one_line(netloc, 200) or "no host")


def _exchange(conn, method, target, body, headers, limit):
    conn.request(method, target, body=body, headers=headers)
    resp = conn.getresponse()
    length = resp.getheader("Content-Length")
    if length and length.strip().isdigit() and int(length) > limit:
        raise _BodyTooLarge(int(length))
    data = resp.read(limit + 1)
    if len(data) > limit:
        raise _BodyTooLarge(len(data))
    return resp.status, resp.reason, resp.getheader("Content-Type"), data, resp.getheader("Location")


def _abort(conn):
    sock = getattr(conn, "sock", None)
    try:
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        conn.close()
    except Exception:  # closing a socket another thread uses: nothing more to do
        pass


_TLS = {}


def _tls_context():
    """The one TLS context of every HTTPS call of the run (the system's trusted CAs, host names checked):
    building one reads the CA bundle, some 30 ms, and the gate polls."""
    if "context" not in _TLS:
        import ssl
        _TLS["context"] = ssl.create_default_context()
    return _TLS["context"]


class Client(object):
    """HTTP to one service with hard deadlines: each call waits at most min(time left, ``per_call``).

    The call runs in a daemon thread; when its time is up the socket is shut down and the call is
    reported as timed out, so a server that accepts and never answers (or a name lookup that hangs)
    cannot hold the gate. Bodies are bounded (``max_bytes``); JSON answers must say so in their
    content type. Only a 2xx status is an answer: a redirect is an error naming where it leads, never
    followed. No proxy is used (http.client reads no proxy settings).
    """

    def __init__(self, url, deadline, clock=time.monotonic, per_call=HTTP_CALL_LIMIT, max_bytes=BODY_MAX_BYTES,
                 option="url"):
        self.url = url.strip()
        self.scheme, self.host, self.port, self.prefix = parse_url(url, option)
        self.deadline = deadline
        self.clock = clock
        self.per_call = per_call
        self.max_bytes = max_bytes

    def left(self):
        return self.deadline - self.clock()

    def get(self, path, want_json=True):
        return self.call("GET", path, want_json=want_json)

    def post(self, path, doc, want_json=False):
        return self.call("POST", path, doc=doc, want_json=want_json)

    def _connection(self, timeout):
        import http.client  # the client's own import: the gate's local checks need none of it
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=_tls_context())
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def call(self, method, path, doc=None, want_json=True):
        target = self.prefix + path
        reply = Reply(method, "%s://%s%s" % (self.scheme, netloc(self.host, self.port), target))
        path = path or target or "/"  # as messages name it
        budget = min(self.left(), self.per_call)
        if budget <= 0:
            reply.timed_out = True
            reply.error = "%s %s: not tried, the gate's time is up" % (method, path)
            return reply
        body = None
        headers = {"Accept": "application/json", "Connection": "close", "User-Agent": "gpuops-preflight-gate"}
        if doc is not None:
            body = json.dumps(doc).encode("utf-8")
            headers["Content-Type"] = "application/json"
        conn = self._connection(budget + 1.0)  # the socket's own timeout is a backstop: the deadline below rules
        box = {}
        done = threading.Event()

        def work():
            try:
                box["answer"] = _exchange(conn, method, target, body, headers, self.max_bytes)
            except BaseException as exc:  # reported by the caller, never raised in this thread
                box["error"] = exc
            finally:
                done.set()

        start = self.clock()
        worker = threading.Thread(target=work, name="gpuops-gate-http")
        worker.daemon = True
        worker.start()
        finished = done.wait(budget)
        connected = getattr(conn, "sock", None) is not None
        if finished:
            conn.close()
        else:
            _abort(conn)  # unblocks the worker; it ends on its own
        reply.elapsed = round(self.clock() - start, 3)
        if not finished:
            reply.timed_out = True
            reply.error = "%s %s: no answer within %ss (%s)" % (
                method, path, seconds_text(budget), "the server accepted the connection but did not answer" if connected
                else "no connection to %s" % netloc(self.host, self.port))
            return reply
        if "error" in box:
            self._describe_error(reply, box["error"], budget)
            return reply
        status, reason, content_type, data, location = box["answer"]
        reply.status, reply.content_type = status, content_type
        text = data.decode("utf-8", "replace")
        reply.text = one_line(text.strip(), 500)
        if not 200 <= status < 300:  # only 2xx is an answer; a redirect is not followed (it may lead anywhere)
            detail = ": %s" % reply.text if reply.text else ""
            if 300 <= status < 400:
                detail = ", a redirect %s (not followed)" % _redirect_target(location)
            reply.error = "%s %s answered %d %s%s" % (method, path, status, reason or "", detail)
            if _is_json_type(content_type):
                reply.data = decode_json(data)[0]
            return reply
        if want_json:
            if not data.strip():
                reply.error = "%s %s answered %d with an empty body, expected JSON" % (method, path, status)
            elif not _is_json_type(content_type):
                reply.error = "%s %s answered with content type %r, not JSON: %s" % (
                    method, path, content_type or "(none)", one_line(text.strip(), 120))
            else:
                value, error = decode_json(data)
                if error:
                    reply.error = "%s %s answered malformed JSON: %s" % (method, path, error)
                else:
                    reply.data = value
        elif data.strip() and _is_json_type(content_type):
            reply.data, reply.json_error = decode_json(data)
        elif data.strip()[:1] in (b"{", b"[") and (content_type or "").split(";")[0].strip().lower() in ("text/plain", ""):
            # JSON sent as plain text (Go's net/http sniffs JSON as text/plain): read as JSON when it is, else text
            value, error = decode_json(data)
            if error is None:
                reply.data = value
        return reply

    def _describe_error(self, reply, exc, budget):
        where = netloc(self.host, self.port)
        if isinstance(exc, _BodyTooLarge):
            reply.error = "%s %s: the answer is larger than %d bytes" % (reply.method, reply.url, self.max_bytes)
        elif isinstance(exc, ConnectionRefusedError):
            reply.refused = True
            reply.error = "connection refused: nothing listens on %s" % where
        elif isinstance(exc, socket.timeout) or isinstance(exc, TimeoutError):
            reply.timed_out = True
            reply.error = "%s %s: no answer within %ss" % (reply.method, reply.url, seconds_text(budget))
        elif isinstance(exc, socket.gaierror):
            reply.error = "cannot resolve %s: %s" % (self.host, exc.strerror or exc)
        elif isinstance(exc, OSError):
            reply.error = "cannot talk to %s: %s" % (where, exc.strerror or exc)
        else:
            name = type(exc).__name__
            reply.error = "%s %s: not an HTTP answer (%s%s)" % (
                reply.method, reply.url, name, ": %s" % one_line(str(exc), 200) if str(exc) else "")


# ---------------------------------------------------------------- orchestrator


def _words(text):
    return tuple(re.findall(r"[a-z0-9]+", text.lower()))


_NOT_READY_PHRASES = [_words(phrase) for phrase in NOT_READY_WORDS]


def _says_not_ready(text):
    """Whether a state text (at most HEALTH_TEXT_MAX characters) holds a phrase of NOT_READY_WORDS."""
    if not isinstance(text, str) or len(text) > HEALTH_TEXT_MAX:
        return False
    words = _words(text)
    return any(words[i:i + len(phrase)] == phrase for phrase in _NOT_READY_PHRASES
               for i in range(len(words) - len(phrase) + 1))


def _reads_false(value):
    """Whether a flag's value says no: false, 0, or a text of FALSE_TEXTS (any case)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value == 0
    return isinstance(value, str) and value.strip().lower() in FALSE_TEXTS


def _quoted(key, value):
    """'key false' / 'key 503' / "key 'text'" (one line, bounded) for what a body said under ``key``."""
    if isinstance(value, bool) or value is None:
        return "%s %s" % (key, json.dumps(value))
    if isinstance(value, (int, float)):
        return "%s %s" % (key, value)
    return "%s '%s'" % (key, one_line(value if isinstance(value, str) else value, 200))


def error_said(data):
    """What a 2xx JSON body (parsed) says that reports an error, quoted (``error 'db unreachable'``,
    ``status 503``, ``success false``), or None: see ERROR_KEYS. Only the top level counts."""
    if not isinstance(data, dict):
        return None
    fields = dict((k.lower(), v) for k, v in data.items() if isinstance(k, str))
    for key in ERROR_KEYS:
        if fields.get(key) not in (None, False, "", [], {}):
            return _quoted(key, fields[key])
    for key, value in ERROR_SHAPES:
        if isinstance(fields.get(key), str) and fields[key].strip().lower() == value:
            text = _first_str(fields, ("message", "detail"))
            return _quoted(key, fields[key]) + (": '%s'" % one_line(text, 200) if text else "")
    for key in HEALTH_STATE_KEYS:
        value = fields.get(key)
        if ((isinstance(value, int) and not isinstance(value, bool) and 400 <= value < 600)
                or (isinstance(value, str) and value.strip().lower() in FAILED_STATES)):
            return _quoted(key, value)
    for key in ERROR_FLAG_KEYS:
        if key in fields and _reads_false(fields[key]):
            return _quoted(key, fields[key])
    return None


def not_ready_said(reply):
    """What a 2xx health answer (a Reply dict) says that means not ready, quoted one line and bounded
    (``status 'DOWN'``, ``ready false``, ``error '...'``, ``'unhealthy'`` for a text body), or None: see
    NOT_READY_WORDS and ERROR_KEYS."""
    data = reply.get("data")
    if isinstance(data, dict):
        fields = dict((k.lower(), v) for k, v in data.items() if isinstance(k, str))
        for key in HEALTH_STATE_KEYS:
            value = fields.get(key)
            # false or "false" only: a state of 0 or "0" is a success code in some APIs
            if _says_not_ready(value) or value is False or (isinstance(value, str) and value.strip().lower() == "false"):
                return _quoted(key, value)
        for key in HEALTH_FLAG_KEYS:
            if key in fields and _reads_false(fields[key]):
                return _quoted(key, fields[key])
        return error_said(data)
    if data is False:
        return "false"
    text = data if isinstance(data, str) else None
    media = (reply.get("content_type") or "").split(";")[0].strip().lower()
    if data is None and media in ("text/plain", ""):
        text = reply.get("text")
    return "'%s'" % one_line(text) if _says_not_ready(text) else None


def not_ready_answer(reply):
    """'GET <url> answered 200, but its body says it is not ready: <what>' for a 2xx health answer (a
    Reply dict) that says so (``not_ready_said``), else None."""
    said = not_ready_said(reply)
    if said is None:
        return None
    return "%s %s answered %s, but its body says it is not ready: %s" % (
        reply.get("method"), redact(reply.get("url") or ""), reply.get("status"), said)


def health_state(reply):
    """(verdict, text) for a /health answer: ("ok"|"retry"|"fail", why). A 2xx with no body, a plain-text
    body or JSON is healthy unless it says it is not ready (``not_ready_said``: {"status": "starting"},
    {"ok": false}, a text body DOWN), which is waited for like a server that is starting; ``null`` and an
    empty JSON body are what a FastAPI handler returning None sends. Anything else (HTML, another content
    type, JSON that cannot be read) is not the orchestrator's API: it fails at once."""
    if reply.error:
        if reply.refused or reply.timed_out or reply.status is None or reply.status >= 500:
            return "retry", reply.error
        return "fail", reply.error
    content = (reply.content_type or "").split(";")[0].strip().lower()
    if reply.json_error:
        return "fail", "GET /health answered malformed JSON, %s: not the orchestrator's API" % reply.json_error
    if content not in ("text/plain", "") and not _is_json_type(content):
        return "fail", "GET /health answered with content type %r: not the orchestrator's API" % content
    said = not_ready_answer(reply.as_dict())
    if said:
        return "retry", said
    return "ok", "/health ok"


def wait_for_health(client, interval=0.5, max_interval=2.0, sleep=time.sleep):
    """Collector: GET /health until it is ok, the answer shows it is not the orchestrator, or the
    client's deadline. Returns ``{"url", "ok", "attempts", "reason", "reply", "elapsed_s", "health"}``."""
    start = client.clock()
    attempts, wait = 0, interval
    while True:
        attempts += 1
        reply = client.get("/health", want_json=False)
        verdict, why = health_state(reply)
        if verdict != "retry" or client.left() <= wait:
            break
        sleep(wait)
        wait = min(wait * 1.5, max_interval)
    return {"url": client.url, "ok": verdict == "ok", "verdict": verdict, "attempts": attempts, "reason": why,
            "reply": reply.as_dict(), "health": reply.data if isinstance(reply.data, dict) else None,
            "elapsed_s": round(client.clock() - start, 3)}


def evaluate_orchestrator(observed):
    """Pure: the orchestrator check from ``wait_for_health``."""
    fixes = FIXES["orchestrator"]
    details = dict((k, observed.get(k)) for k in ("url", "attempts", "elapsed_s", "health"))
    if observed.get("ok"):
        return [], "%s answers, /health ok (%d attempt(s), %s)" % (
            observed.get("url"), observed.get("attempts", 1), _took(observed.get("elapsed_s"))), details
    reply = observed.get("reply") or {}
    cause = "protocol" if observed.get("verdict") == "fail" else (
        "down" if reply.get("refused") or reply.get("timed_out") or reply.get("status") is None else "unhealthy")
    text = "orchestrator at %s is not ready after %d attempt(s) in %ss: %s" % (
        observed.get("url"), observed.get("attempts", 1), seconds_text(observed.get("elapsed_s") or 0), observed.get("reason"))
    return [_checks.problem("orchestrator", _checks.FAIL, text, fixes[cause], cause=cause)], None, details


# ---------------------------------------------------------------- preload


def _status_shape_error(doc):
    if not isinstance(doc, dict):
        return "GET /models/status answered %s, not an object" % _json_type(doc)
    if not isinstance(doc.get("all_ready"), bool):
        return "GET /models/status has no boolean all_ready (got %s): not the orchestrator's API" % (
            json.dumps(doc.get("all_ready")) if "all_ready" in doc else "nothing")
    if "errors" in doc and not isinstance(doc["errors"], (list, type(None))):
        return "GET /models/status: errors must be a list, got %s" % _json_type(doc["errors"])
    return None


def unready_models(doc, entries):
    """[(agent, model, state)] for each map entry whose model /models/status does not show ready: its
    listed state, or None when the status lists its models (``summary.models``) and not this one.
    A status without per-model states (counts only) names none: ``all_ready`` alone speaks then."""
    summary = doc.get("summary")
    states = model_states(summary, set(e["model"] for e in entries))
    listed = isinstance(summary, dict) and isinstance(summary.get("models"), (dict, list))
    return [(e["agent"], e["model"], states.get(e["model"])) for e in entries
            if states.get(e["model"]) not in READY_STATES and (listed or e["model"] in states)]


def preload_state(doc, entries=()):
    """"ready": all_ready, no preload in progress, and every model of the map (``entries``) ready where
    the status lists its models; "failed": no longer in progress, with errors, a map model failed, or
    all_ready while a map model is not ready (the orchestrator will load nothing more); else "waiting".
    A refresh under way (in_progress) is waiting even with all_ready: the ready marks may be the old load's."""
    unready = unready_models(doc, entries)
    if doc.get("in_progress") is True:
        return "waiting"
    if doc.get("all_ready") is True and not unready:
        return "ready"
    if doc.get("in_progress") is False and (doc.get("errors") or any(s in FAILED_STATES for _a, _m, s in unready)
                                            or (doc.get("all_ready") is True and unready)):
        return "failed"
    return "waiting"


def _first_str(item, keys):
    for key in keys:
        value = item.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


def preload_errors(doc, entries):
    """The orchestrator's ``errors``, each ``{"agents", "model", "error"}`` with its own text word for
    word. Items are strings or objects with model / agent / error (also model_id / id / name, and
    message / detail / reason for the text); a string names its model or agent somewhere in it."""
    out = []
    models = {}
    for entry in entries:
        models.setdefault(entry["model"], []).append(entry["agent"])
    for item in doc.get("errors") or []:
        if isinstance(item, dict):
            text = _first_str(item, ("error", "message", "detail", "reason"))
            if text is None:
                text = json.dumps(item, sort_keys=True)
            model = _first_str(item, ("model", "model_id", "id", "name"))
            agent = _first_str(item, ("agent", "agent_key", "key", "service"))
            agents = [agent] if agent else list(models.get(model, []))
            if agent and model is None:
                model = next((e["model"] for e in entries if e["agent"] == agent), None)
        else:
            text = item if isinstance(item, str) else json.dumps(item, sort_keys=True)
            model, agents = None, []
            for candidate in sorted(models, key=len, reverse=True):
                if candidate in text:
                    model, agents = candidate, list(models[candidate])
                    break
            if model is None:
                agents = [e["agent"] for e in entries
                          if re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(e["agent"]), text)]
                model = next((e["model"] for e in entries if agents and e["agent"] == agents[0]), None)
        out.append({"agents": agents, "model": model, "error": redact(text)})
    return out


_COUNT_KEYS = ("ready", "loaded", "loading", "pending", "failed", "total", "in_progress")
UNREADABLE_STATE = "listed with a state the gate cannot read:"


def model_states(summary, known=None):
    """{model id: state} from a /models/status summary, whatever its shape: {"models": {id: state or
    {"status"/"state": ...}}}, {"models": [{"model"/"id"/"name", "status"/"state"/"ready"}]},
    {"ready": [ids], "loading": [ids], ...} or {id: state}. Counts (ints) are left out; in the last
    shape only the ``known`` model ids count (other keys may be anything)."""
    states = {}
    if not isinstance(summary, dict):
        return states
    flat = "models" not in summary
    source = summary.get("models", summary)

    def state_of(value):
        if isinstance(value, str):
            return value.strip().lower()
        if isinstance(value, bool):
            return "ready" if value else "not ready"
        if isinstance(value, dict):
            text = _first_str(value, ("status", "state", "phase"))
            if text:
                return text.strip().lower()
            if isinstance(value.get("ready"), bool):
                return "ready" if value["ready"] else "not ready"
        return None

    def unread(value):  # a model listed with a state the gate cannot read: named as listed, never as ready
        return "%s %s" % (UNREADABLE_STATE, one_line(json.dumps(value, sort_keys=True, default=str), 80))

    if isinstance(source, list):
        for item in source:
            if isinstance(item, dict):
                name = _first_str(item, ("model", "model_id", "id", "name"))
                if name:
                    states[name] = state_of(item) or unread(item)
        return states
    if isinstance(source, dict):
        for key, value in source.items():
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                for name in value:
                    states[name] = key.lower()
            elif not isinstance(value, (int, float)) or isinstance(value, bool):
                state = state_of(value)
                if key not in _COUNT_KEYS and (not flat or known is None or key in known):
                    if state:
                        states[key] = state
                    elif not flat:
                        states[key] = unread(value)
    return states


def describe_progress(doc, entries=()):
    """One line: what the orchestrator says while loading, e.g. 'in progress: 1 of 2 model(s) ready
    (loading: org/b)'; its words one line, URL credentials redacted (``one_line``)."""
    return one_line(_progress_text(doc, entries), 1000)


def _progress_text(doc, entries):
    summary = doc.get("summary") if isinstance(doc, dict) else None
    states = model_states(summary, set(e["model"] for e in entries))
    head = "in progress" if doc.get("in_progress") else ("all ready" if doc.get("all_ready") else "not ready")
    if states:
        ready = [m for m, s in states.items() if s in READY_STATES]
        waiting = sorted(m for m, s in states.items() if s not in READY_STATES)
        text = "%s: %d of %d model(s) ready" % (head, len(ready), len(states))
        if waiting:
            text += " (%s)" % "; ".join("%s: %s" % (states[m], m) for m in waiting[:10])
        return text
    if isinstance(summary, dict):
        counts = ["%s=%s" % (k, v) for k, v in sorted(summary.items())
                  if isinstance(v, (int, float, str)) and not isinstance(v, bool)]
        if counts:
            return one_line("%s: %s" % (head, ", ".join(counts[:12])), 300)
    return head


def run_preload(client, entries, refresh=False, interval=0.5, max_interval=2.0, sleep=time.sleep, on_progress=None,
                send=True):
    """Collector: GET /models/status; when not all ready (or ``refresh``), POST /models/preload
    {"refresh": bool} (503 is retried, 202 accepted) and poll /models/status until all_ready, a
    finished preload with errors, or the client's deadline. ``on_progress(text)`` is called with
    each new progress line. ``send=False`` (check mode): the status is read, nothing is asked of the
    orchestrator (``not_sent`` says that a real run would have). Returns the observations
    ``evaluate_preload`` judges."""
    start = client.clock()
    out = {"url": client.url, "refresh": bool(refresh), "triggered": False, "trigger": None, "polls": 0,
           "status": None, "error": None, "fatal": False, "timed_out": False, "progress": [], "elapsed_s": None,
           "not_sent": False}
    last_line = [None]

    def poll():
        reply = client.get("/models/status")
        out["polls"] += 1
        if reply.error:
            out["error"] = reply.error
            if not (reply.refused or reply.timed_out or reply.status is None or reply.status >= 500):
                out["fatal"] = True
            return None
        said = (error_said(reply.data) if isinstance(reply.data, dict) and not isinstance(reply.data.get("all_ready"), bool)
                else None)
        if said:  # an error answer sent with 200 (a dependency down while it starts): retried, and named at the end
            out["error"] = "GET /models/status answered %d, but its body reports an error: %s" % (reply.status, said)
            return None
        shape = _status_shape_error(reply.data)
        if shape:
            out["error"], out["fatal"] = shape, True
            return None
        out["status"], out["error"] = reply.data, None
        line = describe_progress(reply.data, entries)
        if line != last_line[0]:
            last_line[0] = line
            out["progress"] = (out["progress"] + [line])[-20:]
            if on_progress is not None:
                on_progress(line)
        return preload_state(reply.data, entries)

    def finish():
        out["elapsed_s"] = round(client.clock() - start, 3)
        return out

    state = poll()
    if out["fatal"] or (state == "ready" and not refresh):
        return finish()
    if not send:
        out["not_sent"] = True
        return finish()
    wait = interval
    trigger = {"status": None, "attempts": 0, "answer": None, "error": None}
    out["trigger"] = trigger
    while True:
        trigger["attempts"] += 1
        reply = client.post("/models/preload", {"refresh": bool(refresh)})
        trigger["status"], trigger["answer"] = reply.status, reply.data if reply.data is not None else reply.text
        refused = error_said(reply.data) if reply.ok else None
        if refused:  # a 2xx whose body reports an error did not start a preload: waiting for one would be in vain
            trigger["error"] = "POST /models/preload answered %d, but its body reports an error: %s" % (
                reply.status, refused)
            out["fatal"] = True
            return finish()
        if reply.status is not None and (200 <= reply.status < 300 or reply.status == 409):
            trigger["error"] = None
            out["triggered"] = True
            break
        trigger["error"] = reply.error
        retry = reply.status == 503 or reply.refused or reply.timed_out or reply.status is None
        if not retry:
            out["fatal"] = True
            return finish()
        if client.left() <= wait:
            out["timed_out"] = True
            return finish()
        sleep(wait)
        wait = min(wait * 1.5, max_interval)
    # Errors the orchestrator still shows from before this preload are not its verdict on it: a
    # "failed" state counts once it has been loading since, its answer changed, or a few polls passed.
    before = out["status"]
    wait, polls, loading = interval, 0, False
    while True:
        left = client.left()
        if left <= 0:
            out["timed_out"] = True
            break
        sleep(min(wait, left))
        if client.left() <= 0:
            out["timed_out"] = True
            break
        state = poll()
        polls += 1
        loading = loading or bool((out["status"] or {}).get("in_progress"))
        if out["fatal"] or state == "ready":
            break
        if state == "failed" and (loading or out["status"] != before or polls >= STALE_POLLS):
            break
        wait = min(wait * 1.5, max_interval)
    return finish()


def evaluate_preload(observed, entries, timeout=None):
    """Pure: the preload check from ``run_preload``'s observations. A failing model is named with its
    agent key(s) and the orchestrator's own error text, word for word."""
    fixes = FIXES["preload"]
    problems = []
    doc = observed.get("status") or {}
    details = {"url": observed.get("url"), "refresh": observed.get("refresh"), "triggered": observed.get("triggered"),
               "polls": observed.get("polls"), "elapsed_s": observed.get("elapsed_s"), "trigger": observed.get("trigger"),
               "progress": observed.get("progress"), "all_ready": doc.get("all_ready"),
               "in_progress": doc.get("in_progress"), "errors": [], "not_ready": []}

    def fail(text, cause, **extra):
        problems.append(_checks.problem("preload", _checks.FAIL, text, fixes[cause], cause=cause, **extra))

    trigger = observed.get("trigger") or {}
    if observed.get("fatal") and trigger.get("error"):
        fail("the orchestrator refused POST /models/preload: %s" % trigger["error"], "refused")
        return problems, None, details
    if observed.get("fatal") and observed.get("error"):
        fail("cannot read the preload state: %s" % observed["error"], "refused")
        return problems, None, details
    errors = preload_errors(doc, entries)
    details["errors"] = errors
    not_sent = details["not_sent"] = bool(observed.get("not_sent"))
    all_ready = bool(doc) and preload_state(doc, entries) == "ready"
    ready = all_ready and not errors
    if not_sent and not ready:
        # check mode: what the status says now is not what a preload would end in
        now = (observed.get("progress") or ["no status"])[-1]
        problems.append(_checks.problem(
            "preload", _checks.UNKNOWN, "check mode: not every model is ready (%s); a real run would ask the "
            "orchestrator to preload them (POST /models/preload, not sent in check mode)" % now,
            fixes["check_mode"], cause="check_mode"))
        return problems, None, details
    if ready:
        return problems, "all %d model(s) ready%s (%d poll(s), %s)" % (
            len(set(e["model"] for e in entries)), ", preload triggered" if observed.get("triggered")
            else ", refresh not sent in check mode" if not_sent else "",
            observed.get("polls") or 0, _took(observed.get("elapsed_s"))), details
    for item in errors:
        who = _who(item["agents"], item["model"]) if item["model"] or item["agents"] else "a model"
        text = "%s failed to load; the orchestrator says: %s" % (who, one_line(item["error"]))
        if all_ready:  # an old error next to all_ready: shown, but the orchestrator says every model is ready
            problems.append(_checks.problem("preload", _checks.WARN, text + " (yet all_ready is true)",
                                            fixes["failed"], cause="failed", agents=item["agents"],
                                            model=item["model"], error=item["error"]))
        else:
            fail(text, "failed", agents=item["agents"], model=item["model"], error=item["error"])
    if all_ready:
        return problems, "all %d model(s) ready, with %d error(s) reported" % (
            len(set(e["model"] for e in entries)), len(errors)), details
    states = model_states(doc.get("summary"), set(e["model"] for e in entries))
    failed_models = set(i["model"] for i in errors)
    unready = dict(((a, m), s) for a, m, s in unready_models(doc, entries)) if doc else {}
    silent = {}  # failed in the status's own words, with no error text
    for (agent, model), state in unready.items():
        if state in FAILED_STATES and model not in failed_models:
            silent.setdefault(model, []).append(agent)
    for model, agents in sorted(silent.items()):
        fail("%s failed to load; /models/status says '%s' (no error text)"
             % (_who(agents, model), unready[(agents[0], model)]), "failed", agents=agents, model=model, error=None)
    failed_models.update(silent)
    waiting = []
    for entry in entries:
        state = states.get(entry["model"])
        if entry["model"] in failed_models or state in READY_STATES:
            continue
        waiting.append((entry["agent"], entry["model"], state))
    details["not_ready"] = [{"agent": a, "model": m, "state": s} for a, m, s in waiting]
    if doc.get("in_progress") is False and preload_state(doc, entries) == "failed":
        # the orchestrator loads nothing more: its failures say why, else what it left not ready is named
        left = {}
        for agent, model, state in ([] if problems else waiting):
            if (agent, model) in unready:
                left.setdefault((model, state), []).append(agent)
        for (model, state), agents in left.items():
            if state is None:
                fail("%s is not listed in GET /models/status (summary.models) and the orchestrator loads nothing "
                     "more (in_progress: false, all_ready: %s)" % (_who(agents, model), json.dumps(doc.get("all_ready"))),
                     "unlisted", agents=agents, model=model)
            else:
                fail("%s is '%s' and the orchestrator loads nothing more (in_progress: false)"
                     % (_who(agents, model), state), "timeout", agents=agents, model=model)
        if problems:
            return problems, None, details
    progress = describe_progress(doc, entries) if doc else (observed.get("error") or "no answer")
    if trigger.get("error") and not observed.get("triggered"):
        reason = "POST /models/preload was not accepted within %ss: %s" % (seconds_text(timeout or 0), trigger["error"])
    else:
        reason = "models not ready within %ss: %s" % (seconds_text(timeout or observed.get("elapsed_s") or 0), progress)
    if doc.get("in_progress") is True and doc.get("all_ready") is True:
        reason += " (all_ready is true, but a preload is still in progress: the models may be loading again)"
    if observed.get("error") and doc:
        reason += "; last poll: %s" % observed["error"]
    if waiting and states:
        reason += "; not ready: %s" % ", ".join("%s (%s)" % (_who([a], m), s or "not listed") for a, m, s in waiting[:10])
    fail(reason, "timeout")
    return problems, None, details


# ---------------------------------------------------------------- MPS and the bus


def get_gpu_info(client):
    """Collector: GET /gpu/info as a Reply dict."""
    return client.get("/gpu/info").as_dict()


def evaluate_mps(host, gpu_info):
    """Pure: MPS operational from the host's MPS facts (``_mps.status``: ``{control_daemon_running,
    pipe_dir: {path, exists, writable, error}, log_dir, servers, error}``, or None when they could not be
    read) and the orchestrator's /gpu/info (a Reply dict, or None when not asked). A pipe folder that
    could not be looked at (``exists`` None with its ``error``) is unknown; the log folder is not judged."""
    fixes = FIXES["mps"]
    problems = []
    details = {"host": host, "gpu_info": (gpu_info or {}).get("data")}

    def add(status, text, cause):
        problems.append(_checks.problem("mps", status, text, fixes[cause], cause=cause))

    if not isinstance(host, dict):
        add(_checks.UNKNOWN, "MPS state could not be read on this host", "unknown")
    else:
        running = host.get("control_daemon_running")
        pipe = host.get("pipe_dir") or {}
        if running is False:
            elsewhere = "; ".join("pid %s serves %s" % (d.get("pid"), d.get("pipe_dir"))
                                  for d in host.get("daemons_elsewhere") or [])
            add(_checks.FAIL, "the MPS control daemon (nvidia-cuda-mps-control -d) is not running%s" % (
                " for the pipe directory %s (%s)" % (pipe.get("path"), elsewhere) if elsewhere else ""), "daemon")
        elif running is None:
            add(_checks.UNKNOWN, "cannot tell whether the MPS control daemon runs: %s"
                % (host.get("error") or "no answer"), "unknown")
        if pipe.get("exists") is False:
            add(_checks.FAIL, "the MPS pipe directory %s does not exist" % pipe.get("path"), "pipe_dir")
        elif pipe.get("exists") is None and pipe.get("error"):
            # _mps.directory could not look (no search permission above it): not missing, and nothing inside is known
            add(_checks.UNKNOWN, "cannot tell whether the MPS pipe directory %s exists: %s"
                % (pipe.get("path"), pipe["error"]), "pipe_dir")
        else:
            if pipe.get("writable") is False:
                add(_checks.FAIL, "the MPS pipe directory %s is not writable by the service user" % pipe.get("path"),
                    "pipe_dir")
            # the clients reach the daemon through its control entry in their pipe folder, nothing else
            control = pipe.get("control_pipe")
            if control is False and running is not False:
                add(_checks.FAIL, "the MPS pipe directory %s holds no control socket or FIFO (control): no control "
                    "daemon serves it (is the daemon's CUDA_MPS_PIPE_DIRECTORY another folder?)" % pipe.get("path"),
                    "daemon")
            elif control is None and running is not False:
                add(_checks.UNKNOWN, "cannot tell whether the MPS pipe directory %s holds the daemon's control entry "
                    "(it cannot be examined)" % pipe.get("path"), "pipe_dir")
    if gpu_info is not None:
        data = gpu_info.get("data")
        if gpu_info.get("error"):
            add(_checks.FAIL, "cannot read the orchestrator's GPU info: %s" % gpu_info["error"], "disabled")
        elif not isinstance(data, dict) or "mps_enabled" not in data:
            add(_checks.FAIL, "GET /gpu/info does not say mps_enabled", "disabled")
        elif data.get("mps_enabled") is not True:
            add(_checks.FAIL, "the orchestrator's /gpu/info says mps_enabled: %s" % json.dumps(data.get("mps_enabled")),
                "disabled")
    if problems:
        return problems, None, details
    pipe = (host or {}).get("pipe_dir") or {}
    servers = ("%d server(s)" % len(host.get("servers") or []) if not host.get("error")
               else "server list unknown (%s)" % host["error"])
    return problems, "MPS control daemon running, pipe directory %s, %s%s" % (
        pipe.get("path"), servers, ", /gpu/info mps_enabled" if gpu_info else ""), details


def writable_by(path, ident):
    """Can the user ``ident`` create files in the folder ``path`` (w and x on it, x on every parent)?
    None when it cannot be told (the folder cannot be examined)."""
    walk = _StoreWalk(path, ident)
    st, _exc = walk.stat(path)
    if st is None:
        return None
    if not stat.S_ISDIR(st.st_mode) or walk.search_problem(path):
        return False
    return walk.allows(path, st, W_OK | X_OK)


def is_orchestrator_instance(instance, orchestrator_instances=ORCHESTRATOR_INSTANCES):
    return (instance or "").strip().lower() in [i.lower() for i in orchestrator_instances]


def probe_bus(client):
    """Collector: GET <BUS_URL> (its /health when the URL has no path) as a Reply dict; any 2xx answers
    (``Client.call``: anything else, a redirect included, is an error) unless its body says it is not
    ready (``not_ready_said``)."""
    return client.get("" if client.prefix else "/health", want_json=False).as_dict()


def evaluate_bus(reply):
    """Pure: the bus check from ``probe_bus``."""
    fixes = FIXES["bus"]
    details = {"url": reply.get("url"), "status": reply.get("status"), "elapsed_s": reply.get("elapsed")}
    if reply.get("error"):
        text = "the bus at %s does not answer: %s" % (reply.get("url"), reply["error"])
        return [_checks.problem("bus", _checks.FAIL, text, fixes["down"], cause="down")], None, details
    said = not_ready_answer(reply)
    if said:
        text = "the bus at %s is not ready: %s" % (reply.get("url"), said)
        return [_checks.problem("bus", _checks.FAIL, text, fixes["unhealthy"], cause="unhealthy")], None, details
    return [], "the bus at %s answers (%s)" % (reply.get("url"), reply.get("status")), details


# ---------------------------------------------------------------- the gate's summary file


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def file_instance(instance):
    """An instance name as it appears in a file name (anything else than letters, digits . _ - as _)."""
    return _SAFE_NAME.sub("_", instance)[:100] or "_"


# The local gate's one naming rule: <GATE_FILE_PREFIX>_<instance>_<stamp>[-<n>].json. Its prefix is no
# family's file_prefix, so its prune never matches another family's summaries (it was "summary", a
# preflight's: a gate writing into a preflight folder deleted preflight runs). Groups: stamp, n.
GATE_FILE_PREFIX = "local_gate"
GATE_SUMMARY_NAME = re.compile("^" + GATE_FILE_PREFIX + r"_.+_(\d{8}T\d{6}\.\d{6}Z)(?:-(\d+))?\.json$")
# The name earlier gates wrote (summary_<instance>_<stamp>.json): read by history, never pruned (a
# preflight's summary_step3_<stamp>.json has the same shape).
LEGACY_GATE_SUMMARY_NAME = re.compile(r"^summary_.+_(\d{8}T\d{6}\.\d{6}Z)(?:-(\d+))?\.json$")


def write_gate_summary(summary, folder, instance, stamp, keep=500):
    """Write ``local_gate_<instance>_<stamp>.json`` (``stamp``: ``_timeparse.file_stamp``) in ``folder``
    atomically (``_files.write_atomic``), never over another run's file, and prune the oldest of these
    files beyond ``keep`` (all instances together, by the time in their names; 0 keeps all). Returns the
    path; raises OSError."""
    folder = os.path.expanduser(folder)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    base = os.path.join(folder, "%s_%s_%s" % (GATE_FILE_PREFIX, file_instance(instance), stamp))
    path, attempt = base + ".json", 0
    while os.path.lexists(path):  # two runs in one microsecond: never replace the other's file
        attempt += 1
        path = "%s-%d.json" % (base, attempt)
    summary["summary_file"] = path
    try:
        _files.write_atomic(path, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    except OSError:
        summary["summary_file"] = None
        raise
    _files.prune(folder, GATE_SUMMARY_NAME, keep, key=lambda match: (match.group(1), int(match.group(2) or 0)))
    return path
