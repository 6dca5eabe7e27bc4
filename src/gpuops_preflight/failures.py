"""Failed tasks, captured the moment their event arrives (before WATCHER retries anything).

Each failed or unreachable task becomes a record: the full error (message, stdout, stderr, rc,
module arguments, exception) and the host's GPU state (from this run's result, else the last one
this process saw). Records are logged, and appended to a JSON-lines file when one is configured
(``failure_log=`` or ``$GPUOPS_PREFLIGHT_FAILURE_LOG``); ``query`` reads them back.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from .collection import module_utils
from .names import FAILURE_LOG_ENV

LOG = logging.getLogger("gpuops_preflight.failures")
MAX_TEXT = 64 * 1024
# Seconds an append waits for another writer's lock on the log (a writer holds it for one write).
APPEND_LOCK_TIMEOUT = 10
TOOL_KEYS = ("name", "outcome", "rc", "timed_out", "reason", "driver_version")
GPU_KEYS = ("index", "bdf", "model", "health", "problems", "excluded", "responding", "vram_used_bytes",
            "busy_percent", "temperature_edge_c", "perf_level", "runtime_status")


def _text(value: object) -> str | None:
    if value in (None, ""):
        return None
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "\n[... %d more characters]" % (len(text) - MAX_TEXT)


# The address after ssh's words: "[2001:db8::1]" bracketed, else up to a space or a ": " (an IPv6 address
# holds colons, so a colon alone does not end it).
_SSH_ADDRESS = re.compile(r"(?:connect to host|resolve hostname|connection to) "
                          r"(?:\[([^\]\s]+)\]|(\S+?)(?=:\s|:?$|\s))")


def ssh_address(message: object) -> str | None:
    """The address in an SSH connection error ("connect to host 10.0.0.5 port 22: ..."), if any; None for a
    message that is not text (a connection plugin's structured result)."""
    match = _SSH_ADDRESS.search(message) if isinstance(message, str) else None
    return (match.group(1) or match.group(2)) if match else None


def _args(value: object) -> object:
    """Module arguments as they are, or their JSON cut to MAX_TEXT when longer (a 5 MB argument once
    made a 5 MB line in the log)."""
    if not value:
        return None
    text = json.dumps(value, default=str, sort_keys=True)
    return value if len(text) <= MAX_TEXT else _text(text)


def gpu_state(result: Mapping[str, Any]) -> dict | None:
    """The GPU part of a node_preflight / node_cleanup result, small enough to log."""
    if not isinstance(result, Mapping) or "gpus" not in result:
        return None
    shapes = module_utils("_summary").HOST_FACTS

    def fact(key: str) -> Any:  # of the shape the judge reads it in, else None (a module that is not ours)
        value = result.get(key)
        return value if value is not None and shapes[key](value) else None

    return {
        "gpu_count": fact("gpu_count"),
        "expected_gpu_count": fact("expected_gpu_count"),
        "usable_gpus": fact("usable_gpus"),
        "unverified_gpus": fact("unverified_gpus"),
        "gpu_tool": {k: v for k, v in (fact("gpu_tool") or {}).items() if k in TOOL_KEYS} or None,
        "processes": fact("processes"),
        "gpus": [{k: g.get(k) for k in GPU_KEYS if k in g} for g in fact("gpus") or []],
    }


class GpuStates:
    """The last GPU state seen per host in this process, for failures of runs that got none."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, dict] = {}

    def remember(self, host: str, result: Mapping[str, Any], run_id: str) -> None:
        state = gpu_state(result)
        if state is not None:
            with self._lock:
                self._states[host] = dict(state, as_of=module_utils("_timeparse").iso(time.time()), run_id=run_id)

    def get(self, host: str) -> dict | None:
        with self._lock:
            state = self._states.get(host)
        return dict(state, source="earlier run") if state else None


GPU_STATES = GpuStates()


def task_result(data: Mapping[str, Any]) -> dict:
    """A task event's result as a mapping: a malformed one (text, a list) becomes its text as the message, so
    its failure is still recorded and judged."""
    res = data.get("res")
    if isinstance(res, dict):
        return res
    return dict(res) if isinstance(res, Mapping) else ({} if res is None else {"msg": _text(str(res))})


def record(event: Mapping[str, Any], *, run_id: str, kind: str, step: object,
           gpu: dict | None, verdict: bool = False) -> dict:
    """One failure record from a runner_on_failed / runner_on_unreachable event."""
    data = event.get("event_data")
    data = data if isinstance(data, Mapping) else {}
    res = task_result(data)
    unreachable = event.get("event") == "runner_on_unreachable"
    message = res.get("msg")
    invocation = res.get("invocation")
    invocation = invocation if isinstance(invocation, Mapping) else {}
    exception = res.get("exception")
    now = time.time()
    return {
        "time": module_utils("_timeparse").iso(now),
        "epoch": round(now, 3),
        "run_id": run_id,
        "kind": kind,
        "step": step,
        "event": event.get("event"),
        "host": data.get("host"),
        "address": ssh_address(message) if unreachable else None,
        "task": data.get("task"),
        "action": data.get("resolved_action") or data.get("task_action"),
        "ignored": bool(data.get("ignore_errors")) or unreachable,
        "unreachable": unreachable,
        "verdict": verdict,
        "message": _text(message),
        "rc": res.get("rc"),
        "stdout": _text(res.get("stdout") or res.get("module_stdout")),
        "stderr": _text(res.get("stderr") or res.get("module_stderr")),
        "module_args": _args(invocation.get("module_args") or data.get("task_args")),
        "exception": _text(exception) if exception and "traceback unavailable" not in str(exception) else None,
        "timedout": res.get("timedout"),
        "duration_s": data.get("duration"),
        "gpu_state": gpu,
    }


def log_record(rec: Mapping[str, Any]) -> None:
    """The verdict task's failure is the verdict (already logged as such): debug only.

    The CLI logs to the operator's terminal: host, task and message (tool output) are ``printable``,
    one line with no escape sequence; the JSON after them escapes every control character itself.
    """
    level = logging.DEBUG if rec["verdict"] else logging.WARNING if rec["ignored"] else logging.ERROR
    what = "unreachable" if rec["unreachable"] else "failed"
    printable = module_utils("_values").printable
    LOG.log(level, "Task %s on %s: %s: %s | %s", what, printable(rec["host"]), printable(rec["task"]),
            printable(rec["message"]), json.dumps(rec, default=str, sort_keys=True))


def append(path: str, records: Iterable[Mapping[str, Any]]) -> None:
    """Append records as JSON lines; an exclusive lock keeps concurrent runs' lines whole."""
    lines = "".join(json.dumps(r, default=str, sort_keys=True) + "\n" for r in records)
    if not lines:
        return
    path = os.path.expanduser(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    files = module_utils("_files")
    # Never block on open (a FIFO named like the log would hang the run), only ever append to a regular
    # file, and never wait for ever on another process's lock: each is an OSError the run logs and goes on.
    try:
        fd = files.open_regular(path, append=True)
    except files.FileProblem as exc:
        raise OSError(str(exc)) from None
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        files.flock_within(fd, APPEND_LOCK_TIMEOUT, path)
        if not _ends_a_line(files, path, fd):
            # A writer that died mid-line (killed, disk full): end its line, or the first record written
            # now would be glued to it and lost with it (query skips lines that are not JSON).
            lines = "\n" + lines
        handle.write(lines)
        handle.flush()


def _ends_a_line(files: Any, path: str, fd: int) -> bool:
    """Whether the log open on ``fd`` (write-only) is empty or ends with a newline; read through a second,
    read-only descriptor of the same file (by its inode: never another file's last byte)."""
    size = os.fstat(fd).st_size
    if size == 0:
        return True
    try:
        reader = files.open_regular(path)
    except (OSError, files.FileProblem):
        return True  # a log we may append to but not read: as before, append
    try:
        if os.fstat(reader).st_ino != os.fstat(fd).st_ino:
            return True  # replaced meanwhile (rotated): the new file is not ours to judge
        return os.pread(reader, 1, size - 1) == b"\n"
    finally:
        os.close(reader)


def _epoch(value: object, option: str = "since") -> float:
    """Epoch seconds or ISO 8601, read by the collection's one time parser."""
    try:
        epoch = module_utils("_timeparse").parse_time(value, option)
    except OverflowError:  # an int beyond any float
        raise ValueError("%s: invalid time: a number too large to be a time" % option) from None
    if epoch is None:
        raise ValueError("%s: a time is required" % option)
    return epoch


def log_path(path: str | None = None) -> str:
    """The failure log: ``path``, else ``$GPUOPS_PREFLIGHT_FAILURE_LOG``, ``~`` expanded; "" when neither is set."""
    return os.path.expanduser(path or os.environ.get(FAILURE_LOG_ENV) or "")


def query(path: str | None = None, *, host: str | None = None, step: object = None, kind: str | None = None,
          run_id: str | None = None, task: str | None = None, since: object = None,
          include_verdicts: bool = True, limit: int | None = None) -> list[dict]:
    """Records of the JSON-lines log matching every given filter, oldest first (``limit``: newest N).

    ``since``: epoch seconds or ISO 8601. ``task``: a substring of the task name. Lines that are
    not JSON (a crash mid-write) are skipped.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError("limit must be a whole number of 1 or more, got %r" % (limit,))
    for name, value in (("host", host), ("kind", kind), ("run_id", run_id), ("task", task)):
        if value is not None and not isinstance(value, str):
            raise ValueError("%s must be text, got %r" % (name, value))
    if not isinstance(include_verdicts, bool):
        raise ValueError("include_verdicts must be True or False, got %r" % (include_verdicts,))
    if path is not None and not (isinstance(path, (str, os.PathLike)) and isinstance(os.fspath(path), str)):
        raise ValueError("path must be the failure log's path, got %r" % (path,))
    if path is not None and "\0" in os.fspath(path):
        raise ValueError("path: a path cannot hold a NUL byte, got %r" % (path,))
    path = log_path(os.fspath(path) if path is not None else None)
    if not path or not os.path.exists(path):
        return []
    floor = _epoch(since) if since is not None else None
    steps = module_utils("_steps")
    wanted_step = steps.parse_step(step) if step is not None else None
    out = []
    # Only a regular file, opened without blocking (a FIFO named like the log must not hang the query);
    # a line that is not UTF-8 or not JSON (a crash mid-write) is skipped.
    with os.fdopen(module_utils("_files").open_regular(path), "rb") as handle:
        for raw in handle:
            try:
                rec = json.loads(raw.decode("utf-8"))
            except ValueError:
                continue
            if not isinstance(rec, dict):
                continue
            if host is not None and rec.get("host") != host:
                continue
            if wanted_step is not None and not _same_step(steps, rec.get("step"), wanted_step):
                continue
            if kind is not None and rec.get("kind") != kind:
                continue
            if run_id is not None and rec.get("run_id") != run_id:
                continue
            if task is not None and task.lower() not in str(rec.get("task") or "").lower():
                continue
            if floor is not None and _number(rec.get("epoch")) < floor:
                continue
            if not include_verdicts and rec.get("verdict"):
                continue
            out.append(rec)
    return out[-limit:] if limit else out


def _same_step(steps: Any, value: object, wanted: str) -> bool:
    try:
        return steps.parse_step(value) == wanted
    except ValueError:
        return False


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
