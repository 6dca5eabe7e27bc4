"""simrig: simulated AMD ROCm and NVIDIA rigs built from recorded real tool output (tests and demo only).

Nothing here is part of the product: the collection never fakes a result, a test points a host
at a rig through inventory variables (``Rig.host_vars()``). See the module docstrings:
``rig`` (layout, faults), ``nvidia`` (NVIDIA GPUs, the nvidia-smi stand-in, MPS), ``standin`` (the rocm-smi/amd-smi stand-ins), ``sysfs``, ``kernel``
(dmesg stamps), ``cluster`` (inventory, unreachable hosts), ``scenarios`` (the catalogue).
"""

from __future__ import annotations

from .cluster import Cluster, build_cluster, free_port, inventory_document, unreachable_host, write_inventory
from .fixtures import FIXTURES, FixtureError
from .kernel import boot_epoch, format_line, line_epoch, line_seconds
from .nvidia import NvidiaGpus, add_nvidia, build_nvidia_rig
from .rig import DEFAULT_STEPS, MODES, Gpu, Rig, collect_orphans, on_tmpfs, scratch_dir
from .scenarios import Scenario, build_scenario
from .scenarios import names as scenario_names
from .sysfs import location_id

__all__ = [
    "Cluster", "DEFAULT_STEPS", "collect_orphans", "on_tmpfs", "FIXTURES", "FixtureError", "Gpu", "MODES", "Rig", "Scenario",
    "NvidiaGpus", "add_nvidia", "build_nvidia_rig",
    "boot_epoch", "build_cluster", "build_scenario", "format_line", "free_port", "inventory_document",
    "line_epoch", "line_seconds", "location_id", "scenario_names", "scratch_dir", "unreachable_host",
    "write_inventory",
]
