"""gpuops_preflight: WATCHER's bridge to the gpuops.preflight collection, through ansible-runner.

    from gpuops_preflight import INTEGRATION_AVAILABLE, guard_step, run_preflight, run_cleanup, run_training_health

Importing never needs Ansible or ansible-runner: ``INTEGRATION_AVAILABLE`` says whether runs
can happen, ``UNAVAILABLE_REASON`` why not. docs/WATCHER.md documents the API.
"""

from __future__ import annotations

from .events import HostResult
from .failures import query as query_failures
from .guard import guard_step
from .locate import availability
from .report import Item, Report
from .runner import run_cleanup, run_preflight, run_training_health

__version__ = "1.0.0"


def __getattr__(name: str):
    if name == "DEFAULT_CLEANUP_STEPS":  # the collection's own default, read when asked
        from . import guard

        return guard.DEFAULT_CLEANUP_STEPS
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


# Checked once at import (file look-ups only); every run checks again and reports "unavailable".
INTEGRATION_AVAILABLE, UNAVAILABLE_REASON = availability()

__all__ = [
    "HostResult", "INTEGRATION_AVAILABLE", "Item", "Report", "UNAVAILABLE_REASON",
    "availability", "guard_step", "query_failures", "run_cleanup", "run_preflight", "run_training_health",
]
