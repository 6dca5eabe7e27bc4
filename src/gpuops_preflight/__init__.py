"""gpuops_preflight: WATCHER's bridge to the gpuops.preflight collection, through ansible-runner.

    from gpuops_preflight import INTEGRATION_AVAILABLE, guard_step, run_preflight, run_cleanup

Importing never needs Ansible or ansible-runner: ``INTEGRATION_AVAILABLE`` says whether runs
can happen, ``UNAVAILABLE_REASON`` why not. docs/WATCHER.md documents the API.

The names below are imported when first used, not with the package: a command that runs on a
host every minute (the training watchdog's stall check, a systemd start gate) pays only for
what it uses.
"""

from __future__ import annotations

import importlib

__version__ = "2.0.0"

# Public name -> (module, attribute in it).
_EXPORTS = {
    "HostResult": ("events", "HostResult"),
    "query_failures": ("failures", "query"),
    "guard_step": ("guard", "guard_step"),
    "DEFAULT_CLEANUP_STEPS": ("guard", "DEFAULT_CLEANUP_STEPS"),
    "availability": ("locate", "availability"),
    "Item": ("report", "Item"),
    "Report": ("report", "Report"),
    "run_cleanup": ("runner", "run_cleanup"),
    "run_preflight": ("runner", "run_preflight"),
    "run_training_health": ("runner", "run_training_health"),
    "run_serving_gate": ("runner", "run_serving_gate"),
}


def __getattr__(name: str):
    if name in ("INTEGRATION_AVAILABLE", "UNAVAILABLE_REASON"):
        # Checked when first asked (file look-ups only); every run checks again and reports "unavailable".
        from .locate import availability

        available, reason = availability()
        globals().update(INTEGRATION_AVAILABLE=available, UNAVAILABLE_REASON=reason)
        return globals()[name]
    if name in _EXPORTS:
        module, attribute = _EXPORTS[name]
        value = getattr(importlib.import_module("%s.%s" % (__name__, module)), attribute)
        if name != "DEFAULT_CLEANUP_STEPS":  # read from the collection each time
            globals()[name] = value
        return value
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | {"INTEGRATION_AVAILABLE", "UNAVAILABLE_REASON"})
