"""Run advice for step 1: how many Optuna trials and seeds, from the run history (docs/RUN_ADVICE.md).

WATCHER calls ``record_run`` after each step-1 run (it knows the survivor count), asks
``suggest_parameters`` before the next one, gives its decision layer ``parameter_schema`` (JSON
Schema for grammar-constrained output) and checks what it proposes with ``validate_proposal``.
The logic is the collection's own ``plugins/module_utils/_advice.py`` (the preflight's ``run_budget``
check uses the same code); this module is its Python interface. Standard library only.

The history file is ``path=`` / ``history=`` when given, else ``$GPUOPS_PREFLIGHT_RUN_HISTORY``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Union

from . import collection

_advice = collection.module_utils("_advice")

RUN_HISTORY_ENV = "GPUOPS_PREFLIGHT_RUN_HISTORY"
HistoryError = _advice.HistoryError
KEYS = _advice.KEYS
DEFAULT_BOUNDS = dict(_advice.DEFAULT_BOUNDS)
DEFAULT_THRESHOLDS = dict(_advice.DEFAULT_THRESHOLDS)
MAX_HISTORY_BYTES = _advice.MAX_HISTORY_BYTES

PathLike = Union[str, "os.PathLike[str]"]
History = Union[PathLike, Sequence[Mapping[str, Any]], None]


def history_path(path: PathLike | None = None) -> str:
    """``path``, else ``$GPUOPS_PREFLIGHT_RUN_HISTORY``; ValueError when there is neither."""
    chosen = os.fspath(path) if path is not None else os.environ.get(RUN_HISTORY_ENV, "")
    if not str(chosen).strip():
        raise ValueError("no run history file: pass one (path=/history=, --history) or set $%s" % RUN_HISTORY_ENV)
    return os.path.expanduser(chosen)


def _history(history: History) -> Any:
    return history_path(None) if history is None else history


def record_run(*, trials: int, completed_trials: int | None, max_seeds: int, survivors: int | None,
               duration_s: float | None = None, study: str | None = None, outcome: str = "completed",
               step: int = 1, time: float | str | None = None, path: PathLike | None = None) -> dict:
    """Append one run to the history, atomically; returns the record written.

    ``outcome``: how the run ended (``completed``, ``timeout``, ``error``, ...) or ``running`` for a
    run still in progress (``survivors`` may then be None). ``time``: epoch seconds or ISO 8601,
    default now. Raises ValueError naming a bad value, HistoryError when the file cannot be written.
    """
    record = _advice.make_record(trials, completed_trials, max_seeds, survivors, duration_s=duration_s,
                                 study=study, outcome=outcome, step=step, when=time)
    return _advice.append_record(history_path(path), record)


def read_history(path: PathLike | None = None) -> dict:
    """``{path, exists, records, corrupt, corrupt_lines, truncated}``: the records oldest first; corrupt
    lines skipped and counted; a missing file is an empty history. HistoryError for a FIFO, a folder..."""
    return _advice.read_history(history_path(path))


def suggest_parameters(history: History = None, bounds: Mapping[str, Sequence[int]] | None = None,
                       thresholds: Mapping[str, int] | None = None) -> dict:
    """``{trials, max_seeds, reason, based_on, rule, corrupt}`` for the next step-1 run.

    ``history``: a list of run records (newest last) or the history file's path. ``bounds``:
    ``{"trials": (10, 500), "max_seeds": (10_000, 10_000_000)}`` by default; ``thresholds``: see
    ``DEFAULT_THRESHOLDS``.
    """
    return _advice.suggest(_history(history), _plain(bounds), _plain(thresholds))


def parameter_schema(bounds: Mapping[str, Sequence[int]] | None = None,
                     thresholds: Mapping[str, int] | None = None) -> dict:
    """JSON Schema of the adjustable parameters (``trials``, ``max_seeds``) with their bounds."""
    return _advice.parameter_schema(_plain(bounds), _plain(thresholds))


def validate_proposal(proposal: Mapping[str, Any], history: History = None,
                      bounds: Mapping[str, Sequence[int]] | None = None,
                      thresholds: Mapping[str, int] | None = None) -> dict:
    """``{valid, clamped, reasons, warnings, suggestion}`` for a proposal ``{trials, max_seeds}``
    (``seed_count`` is accepted for ``max_seeds``): out of bounds -> not valid, with reasons;
    repeating a run that found nothing -> a warning with the suggestion."""
    return _advice.validate_proposal(_plain(proposal), _history(history), _plain(bounds), _plain(thresholds))


def _plain(value: Any) -> Any:
    """A Mapping that is not a dict (a MappingProxy, a config object) as the dict the logic checks for."""
    return dict(value) if isinstance(value, Mapping) and not isinstance(value, dict) else value
