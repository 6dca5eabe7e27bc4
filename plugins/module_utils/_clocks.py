# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: put GPU clocks back to automatic, and prove it through sysfs.

``rocm-smi --resetclocks`` sets overdrive to 0 and the performance level to auto. It prints text
only (no JSON, exit 0 either way) and re-runs itself through ``sudo`` when not root, which prompts
or hangs without passwordless sudo; so it runs only as root (Ansible ``become``) and success is
read back from ``power_dpm_force_performance_level``. GPUs already at ``auto`` are left alone,
which keeps the cleanup idempotent.
"""

from __future__ import annotations

import os

from ansible_collections.gpuops.preflight.plugins.module_utils import _sysfs, _tool


def reset_clocks(module, rocm_smi="rocm-smi", sysfs_root="/sys", timeout=30, check_mode=False, geteuid=os.geteuid):
    """Reset clocks where a GPU is not at 'auto'. Returns {changed, needed, gpus, problems, tool}."""
    gpus = [g for g in _sysfs.scan_gpus(sysfs_root) if g.get("driver") == "amdgpu" and not g.get("lost")]
    levels = [{"bdf": g["bdf"], "before": g.get("perf_level"), "after": g.get("perf_level")} for g in gpus]
    needed = [item["bdf"] for item in levels if item["before"] not in (None, "auto")]
    outcome = {"changed": False, "needed": needed, "gpus": levels, "problems": [], "tool": None}
    if not needed:
        return outcome
    outcome["changed"] = True
    if check_mode:
        return outcome
    if geteuid() != 0:
        outcome["changed"] = False
        outcome["problems"].append("resetting clocks needs root (rocm-smi re-runs itself through sudo otherwise): "
                                   "run the cleanup with become")
        return outcome
    path = _tool.find_tool(module, rocm_smi or "rocm-smi", _tool.ROCM_BIN_DIRS)
    if not path:
        outcome["changed"] = False
        outcome["problems"].append("cannot reset clocks: %s not found" % (rocm_smi or "rocm-smi"))
        return outcome
    run = _tool.run_tool(module, [path, "--resetclocks"], timeout)
    outcome["tool"] = run.as_dict()
    if not run.ran:
        outcome["problems"].append("rocm-smi --resetclocks: %s" % run.describe())
    after = dict((g["bdf"], _sysfs.read_perf_level(g)) for g in gpus)
    for item in levels:
        item["after"] = after.get(item["bdf"])
        if item["bdf"] in needed and item["after"] != "auto":
            outcome["problems"].append("GPU %s is still at performance level %r after rocm-smi --resetclocks"
                                       % (item["bdf"], item["after"]))
    return outcome
