"""Job timeout and graceful cancel, for the training server's job monitor and cancel endpoint.

* ``watch_progress(progress_file, timeout=600, now=None)``: checks a job's progress file once and
  returns at once: ``stalled`` when its ``updated_at`` has not changed for ``timeout`` seconds
  ("no progress for 11 minutes"), with ``reason`` (text) and ``seconds_since_update``.
* ``cancel(target, timeout=10)``: stops a job (a ``subprocess.Popen`` or a PID) and its process
  group (SIGTERM, wait, SIGKILL), then verifies through the collection's GPU probe that the GPU
  memory its processes held is released, and lists any process still holding some (``orphans``).
  A job that is already gone is not an error.

Both never block the caller longer than their timeout, are safe to call twice (and from several
threads), and need neither Ansible nor ansible-runner: the logic is the collection's own
``plugins/module_utils/_training_progress.py``, the same code the ``training_progress`` module and
``gpuops-preflight training-watch`` run. Results are dataclasses that also read as mappings
(``result.stalled`` or ``result["stalled"]``).
"""

from __future__ import annotations

import math
import subprocess
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterator, Union

from . import collection

Target = Union["subprocess.Popen[Any]", int]
READ_TIMEOUT = 5.0     # the most a read of the progress file may take (a hung filesystem)
KILL_WAIT = 2.0        # the most cancel waits for processes to vanish after SIGKILL
RELEASE_WAIT = 3.0     # the most cancel waits for the driver to free a dead process's GPU memory


class _Mapping:
    """Read a result as a mapping too: ``result["stalled"]``, ``dict(result)``, ``result.as_dict()``."""

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def keys(self) -> list[str]:
        return [f.name for f in fields(self)]  # type: ignore[arg-type]

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default) if key in self.keys() else default

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class ProgressResult(_Mapping):
    stalled: bool
    reason: str                          # text: "no progress for 11 minutes (...)", or what else was found
    seconds_since_update: float | None
    code: str                            # a reason of _training_progress (ok, step_stall, clock_skew, ...)
    status: str                          # the check model's ok / warn / fail / unknown
    updated_at: str | None = None        # ISO 8601 UTC
    current_step: Any = None
    progress_file: str = ""


@dataclass(frozen=True)
class CancelResult(_Mapping):
    terminated: bool                     # everything was gone after SIGTERM
    killed: bool                         # SIGKILL was needed
    already_gone: bool                   # the job's process had ended before the call
    vram_released: bool | None           # None: unknown (no GPU process list here, or no time left)
    orphans: list[dict[str, Any]] = field(default_factory=list)   # [{pid, gpu, vram_bytes, bdf, name}]
    pid: int = 0
    pgid: int | None = None
    gone: bool = True                    # no process of the job is left
    remaining: list[int] = field(default_factory=list)
    message: str = ""
    error: str | None = None             # why vram_released is None
    elapsed_s: float = 0.0


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
        raise ValueError("%s must be a positive number of seconds, got %r" % (name, value))
    return float(value)


def _no_progress(seconds: float) -> str:
    if seconds >= 120:
        return "no progress for %d minutes" % (seconds // 60)
    return "no progress for %d seconds" % seconds


def watch_progress(progress_file: str, timeout: float = 600, now: float | None = None, *,
                   eval_timeout: float | None = None, started_at: float | None = None) -> ProgressResult:
    """Check ``progress_file`` once. ``stalled`` when ``updated_at`` (without it, ``current_step``,
    measured from the file's last write) has not changed for ``timeout`` seconds (``eval_timeout``,
    default the same, while the file says it is evaluating). ``now``: epoch seconds (default the
    clock). A missing file is not a stall unless ``started_at`` (when the job started, epoch
    seconds) is more than ``timeout`` ago. Raises ValueError for a timeout that is not a positive
    number; never blocks longer than ``timeout`` (a hung filesystem is cut off after 5 s)."""
    timeout = _seconds("timeout", timeout)
    eval_timeout = timeout if eval_timeout is None else _seconds("eval_timeout", eval_timeout)
    path = str(progress_file)
    tp = collection.module_utils("_training_progress")
    deadline = collection.module_utils("_deadline")
    read = deadline.run_all({"read": (lambda: tp.read_status(path), min(READ_TIMEOUT, timeout))})["read"]
    now = time.time() if now is None else now
    if read.ok:
        status = read.value
    else:
        status = tp.StatusError(tp.STATUS_CORRUPT, "progress file %s could not be read: %s"
                                % (path, read.describe_failure()), path, unreadable=True)
    job = None if started_at is None else {"pid": None, "alive": True, "started_at": float(started_at)}
    verdict = tp.assess(status, now, timeout, eval_timeout, job)
    reason = verdict["message"]
    if verdict["stalled"]:
        reason = "%s: %s" % (_no_progress(verdict["seconds_since_update"] or 0), verdict["message"])
    return ProgressResult(stalled=verdict["stalled"], reason=reason,
                          seconds_since_update=verdict["seconds_since_update"], code=verdict["reason"],
                          status=verdict["status"], updated_at=verdict["updated_at"],
                          current_step=verdict["current_step"], progress_file=path)


def _target(target: Any) -> tuple[int, bool, subprocess.Popen[Any] | None]:
    """(pid, known to be gone, the Popen) of a cancel target."""
    if isinstance(target, subprocess.Popen):
        return target.pid, target.poll() is not None, target
    if isinstance(target, bool) or not isinstance(target, int) or target < 1:
        raise ValueError("cancel: target must be a subprocess.Popen or a PID (a whole number > 0), got %r" % (target,))
    return target, False, None


def cancel(target: Target, timeout: float = 10, *, grace: float | None = None, **probe_options: Any) -> CancelResult:
    """Stop the job ``target`` (a ``subprocess.Popen`` or a PID) and its process group, and verify
    that the GPU memory it held is released.

    SIGTERM goes to the job's process group (never to the caller's own: a job sharing it gets
    SIGTERM to its process and its descendants), SIGKILL after ``grace`` seconds (default half of
    ``timeout``); what is left of ``timeout`` goes to the GPU probe. ``probe_options`` are passed
    to the collection's ``_gpus.probe`` (``sysfs_root``, ``tool``, ``rocm_smi``, ...), e.g. to
    point it at a simulated KFD tree. A ``Popen`` is reaped. Returns a ``CancelResult``; raises
    ValueError for a bad target or timeout (and for PID 1, this process or one of its parents)."""
    timeout = _seconds("timeout", timeout)
    grace = timeout / 2 if grace is None else float(grace)
    if not 0 <= grace <= timeout:
        raise ValueError("grace must be between 0 and timeout (%s), got %r" % (timeout, grace))
    pid, leader_gone, popen = _target(target)
    tp = collection.module_utils("_training_progress")
    start = time.monotonic()
    kill_wait = min(KILL_WAIT, max((timeout - grace) / 3, 0.05))
    stopped = tp.stop_group(pid, grace, kill_wait, leader_gone=leader_gone)
    if popen is not None:
        try:
            popen.wait(max(min(0.5, start + timeout - time.monotonic()), 0.01))
        except subprocess.TimeoutExpired:
            pass
    left = start + timeout - time.monotonic()
    if left > 0.05:
        checked = tp.verify_vram(collection.LocalModule(), stopped["pids"], left, probe_options,
                                 release_wait=min(RELEASE_WAIT, left))
    else:
        checked = {"vram_released": None, "orphans": [], "error": "no time left to verify the GPU memory"}
    result = CancelResult(
        terminated=stopped["terminated"], killed=stopped["killed"], already_gone=stopped["already_gone"],
        vram_released=checked["vram_released"], orphans=checked["orphans"], pid=pid, pgid=stopped["pgid"],
        gone=stopped["gone"], remaining=stopped["remaining"], error=checked["error"],
        message=tp.describe_stop(dict(stopped, **checked), grace),
        elapsed_s=round(time.monotonic() - start, 3))
    return result
