"""simtrain: simulated training hosts built from recorded real material (tests and demo only).

Nothing here is part of the product. See ``host`` (the layout, the stand-in daemon), ``scenarios``
(one healthy host changed in one way each, with what every check must say), ``runner`` (the
training-health family run through the product's host runner) and ``fixtures`` (tests/fixtures/training).
"""

from __future__ import annotations

from .host import DELETE, HostSet, TrainHost, host_set, scratch_dir, temporary_host
from .runner import run_checks, statuses
from .scenarios import SCENARIOS, Scenario, build_scenario, names, write_inventory

__all__ = ["DELETE", "HostSet", "SCENARIOS", "Scenario", "TrainHost", "build_scenario", "host_set", "names",
           "run_checks", "scratch_dir", "statuses", "temporary_host", "write_inventory"]
