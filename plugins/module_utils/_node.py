# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: what the two host modules (node_preflight, node_cleanup) share.

The options that probe the GPUs and the kernel log (documented once, in doc_fragments/node.py)
and the validation of the input they have in common.
"""

from __future__ import annotations

from ansible_collections.gpuops.preflight.plugins.module_utils._pci import parse_gpu_refs
from ansible_collections.gpuops.preflight.plugins.module_utils._timeparse import parse_time


def argument_spec(host_checks, **own):
    """The full argument spec of a host module: step, checks, timeouts, the probe options and its own."""
    spec = dict(
        step=dict(type="int", required=True),
        checks=dict(type="list", elements="str", choices=host_checks, default=host_checks),
        timeouts=dict(type="dict", default={}),
    )
    spec.update(probe_argument_spec())
    spec.update(own)
    return spec


def enabled_and_timeouts(registry, host_checks, params):
    """The checks to run (in registry order) and every host check's timeout, defaults overridden."""
    enabled = [name for name in host_checks if name in params["checks"]]
    timeouts = dict((name, registry[name].timeout) for name in host_checks)
    timeouts.update(params.get("timeouts") or {})
    return enabled, timeouts


def probe_argument_spec():
    return dict(
        gpu_tool=dict(type="str", choices=["auto", "rocm-smi", "amd-smi", "sysfs"], default="auto"),
        rocm_smi=dict(type="str", default="rocm-smi"),
        amd_smi=dict(type="str", default="amd-smi"),
        gpu_tool_timeout=dict(type="int", default=15),
        sysfs_root=dict(type="path", default="/sys"),
        kernel_log=dict(type="str", default="auto"),
        kernel_log_since=dict(type="str"),
        excluded_gpus=dict(type="list", elements="raw", default=[]),
        vram_min_mb=dict(type="int", default=0),
    )


def validate(params, host_checks):
    """Problems with the shared input, each naming the option; normalises timeouts and the since time."""
    problems = []
    for name, seconds in list(params["timeouts"].items()):
        if name not in host_checks:
            problems.append("timeouts: unknown check %r; valid checks are: %s" % (name, ", ".join(host_checks)))
            continue
        try:
            params["timeouts"][name] = int(seconds)
        except (TypeError, ValueError):
            problems.append("timeouts: %s must be a whole number of seconds, got %r" % (name, seconds))
            continue
        if params["timeouts"][name] < 1:
            problems.append("timeouts: %s must be at least 1 second" % name)
    if params["gpu_tool_timeout"] < 1:
        problems.append("gpu_tool_timeout must be at least 1 second")
    try:
        parse_gpu_refs(params["excluded_gpus"], "excluded_gpus")
    except ValueError as exc:
        problems.append(str(exc))
    try:
        params["kernel_log_since"] = parse_time(params["kernel_log_since"], "kernel_log_since")
    except ValueError as exc:
        problems.append(str(exc))
    return problems
