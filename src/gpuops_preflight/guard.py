"""guard_step: what WATCHER's run_step() needs in one call.

Preflight; the step only if the preflight passed; then, for a distributed step, the cleanup.
The step's result is never changed by the cleanup: its problems are logged as warnings. When the
integration is unavailable (ansible-runner or the collection missing), the step runs with a
warning, as WATCHER treats its other optional modules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from typing import Any, TypeVar

from .collection import module_utils
from .locate import IntegrationUnavailable
from .report import UNAVAILABLE, Report
from .runner import Cancel, InputError, Progress, RunOptions, check_input, refused, run_cleanup, run_preflight

LOG = logging.getLogger("gpuops_preflight")
T = TypeVar("T")
# The **options guard_step passes to both runs: the run options it does not take by name, and summary_dir.
OPTIONS = frozenset({f.name for f in fields(RunOptions)} - {"extravars", "timeout", "cancel", "progress"}
                    | {"summary_dir"})


def __getattr__(name: str) -> Any:
    # The collection's own default (_plan.DEFAULT_CLEANUP_STEPS), read when asked, not at import.
    if name == "DEFAULT_CLEANUP_STEPS":
        return tuple(module_utils("_plan").DEFAULT_CLEANUP_STEPS)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def is_distributed(step: Any, cleanup_steps: Iterable[Any] | None = None) -> bool:
    """Whether ``step`` needs a cleanup: one of ``cleanup_steps`` (default 1, 2, 3), compared as numbers."""
    steps = module_utils("_steps")
    wanted = module_utils("_plan").DEFAULT_CLEANUP_STEPS if cleanup_steps is None else cleanup_steps
    try:
        return steps.parse_step(step) in steps.parse_steps(list(wanted), "cleanup_steps")
    except ValueError:
        return False


def guard_step(step: Any, run: Callable[[], T], *, inventory: Any = None, extravars: Mapping[str, Any] | None = None,
               timeout: float | None = None, cancel: Cancel = None, progress: Progress = None,
               skip: Iterable[str] | None = None, downgrade: Iterable[str] | None = None,
               cleanup: bool = True, cleanup_steps: Iterable[Any] | None = None,
               cleanup_timeout: float | None = None, cleanup_extravars: Mapping[str, Any] | None = None,
               cleanup_skip: Iterable[str] | None = None,
               on_report: Callable[[Report], object] | None = None, **options: Any) -> T | dict:
    """Run ``run()`` for ``step`` behind the preflight; returns run()'s result or the blocked result.

    ``options`` go to both runs (summary_dir, failure_log, keep_artifacts, artifacts_dir,
    ansible_cfg, envvars, verbosity). ``on_report`` receives each report (preflight, then cleanup).
    Input that would only fail later (an unknown option, cleanup_steps or the cleanup's own input that cannot
    be read, a run that is not callable) refuses the step before the preflight: a preflight_error result.
    """
    try:
        unknown = sorted(set(options) - OPTIONS)
        if unknown:  # a misspelt option raised TypeError at WATCHER from inside run_preflight
            raise InputError("guard_step: unknown option(s) %s (the options both runs take: %s)"
                             % (", ".join(unknown), ", ".join(sorted(OPTIONS))))
        cleanup_steps = _cleanup_steps(cleanup_steps)
        if not callable(run):
            raise InputError("run must be a callable that runs the step, got %r" % (run,))
        if cleanup:
            _check_cleanup(step, cleanup_steps, dict(options, extravars=cleanup_extravars if cleanup_extravars
                                                     is not None else extravars, timeout=cleanup_timeout,
                                                     cancel=cancel, progress=progress), cleanup_skip)
    except InputError as exc:  # before the preflight: a step whose cleanup cannot run does not start
        report = refused("preflight", step, str(exc), log=options.get("log", True))
        _hand(on_report, report)
        return report.as_step_result()
    report = run_preflight(step, inventory=inventory, extravars=extravars, timeout=timeout, cancel=cancel,
                           progress=progress, skip=skip, downgrade=downgrade, **options)
    _hand(on_report, report)
    if report.status == UNAVAILABLE:
        LOG.warning("Preflight unavailable (%s): running step %s without it", report.error, step)
        return run()
    if not report.passed:
        return report.as_step_result()
    try:
        return run()
    finally:
        if cleanup and is_distributed(step, cleanup_steps):
            _cleanup(step, inventory, cleanup_extravars if cleanup_extravars is not None else extravars,
                     cleanup_timeout, cancel, progress, cleanup_skip, cleanup_steps, on_report, options)


def _cleanup_steps(value: Any) -> tuple | None:
    """``cleanup_steps`` as the cleanup's plan reads them (a list, or text '1,2,3'; _steps.parse_steps), so
    that a bad entry is refused here rather than silently costing the step its cleanup (is_distributed
    answers False for what it cannot read). Unchecked without the collection: the preflight says why."""
    if value is None:
        return None
    if not isinstance(value, str):
        if isinstance(value, (Mapping, bytes)) or not isinstance(value, Iterable):
            raise InputError("cleanup_steps must be a list, got %s" % type(value).__name__)
        value = list(value)
    try:
        return tuple(module_utils("_steps").parse_steps(value, "cleanup_steps"))
    except IntegrationUnavailable:
        return tuple(value) if isinstance(value, list) else (value,)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _check_cleanup(step: Any, cleanup_steps: tuple | None, values: Mapping[str, Any],
                   skip: Iterable[str] | None) -> None:
    """The cleanup's input, checked as its run will check it (runner.check_input), before the step runs: a
    cleanup_timeout of nan or "600" would otherwise only show, as a logged warning, once the step is over
    and its cleanup never ran. Unchecked without the collection (the preflight says why)."""
    try:
        if not is_distributed(step, cleanup_steps):
            return
        options = RunOptions(**{f.name: values[f.name] for f in fields(RunOptions) if f.name in values})
        check_input("cleanup", step, dict(skip=skip, cleanup_steps=cleanup_steps,
                                          summary_dir=values.get("summary_dir")), options)
    except IntegrationUnavailable:
        return
    except InputError as exc:
        raise InputError("the cleanup's input: %s" % exc) from None


def _cleanup(step: Any, inventory: Any, extravars: Mapping[str, Any] | None, timeout: float | None,
             cancel: Cancel, progress: Progress, skip: Iterable[str] | None, cleanup_steps: tuple | None,
             on_report: Callable[[Report], object] | None, options: dict) -> None:
    try:
        report = run_cleanup(step, inventory=inventory, extravars=extravars, timeout=timeout, cancel=cancel,
                             progress=progress, skip=skip, cleanup_steps=cleanup_steps, **options)
    except Exception as exc:  # never let the cleanup change the step's outcome
        LOG.warning("[CLEANUP] Failed for step %s: %s", step, exc, exc_info=True)
        return
    _hand(on_report, report)


def _hand(on_report: Callable[[Report], object] | None, report: Report) -> None:
    if on_report is None:
        return
    try:
        on_report(report)
    except Exception:
        LOG.exception("on_report callback failed")
