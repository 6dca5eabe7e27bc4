# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the options every family's host run takes, and their validation.

The step, the checks and their timeouts, and the GPU and kernel-log probe options (documented once,
in doc_fragments/node.py). Standard library only: the node modules (``_node.run_module``) and the
runs without Ansible (``--local``, the serving gate) read the same specs and defaults.
"""

from __future__ import annotations

from ansible_collections.gpuops.preflight.plugins.module_utils import _steps
from ansible_collections.gpuops.preflight.plugins.module_utils._pci import normalize_bdf, parse_gpu_refs
from ansible_collections.gpuops.preflight.plugins.module_utils._timeparse import parse_time
from ansible_collections.gpuops.preflight.plugins.module_utils._values import timeout_problem

PROBE_OPTIONS = dict(
    gpu_vendor=dict(type="str", choices=["auto", "amd", "nvidia"], default="auto"),
    gpu_tool=dict(type="str", choices=["auto", "rocm-smi", "amd-smi", "sysfs"], default="auto"),
    rocm_smi=dict(type="str", default="rocm-smi"),
    amd_smi=dict(type="str", default="amd-smi"),
    nvidia_smi=dict(type="str", default="nvidia-smi"),
    gpu_tool_timeout=dict(type="int", default=15),
    sysfs_root=dict(type="path", default="/sys"),
    kernel_log=dict(type="str", default="auto"),
    kernel_log_since=dict(type="str"),
    controller_time=dict(type="str"),
    excluded_gpus=dict(type="list", elements="raw", default=[]),
    index_map=dict(type="dict", default={}),
    vram_min_mb=dict(type="int", default=0),
)


def argument_spec(family, **own):
    """The full argument spec of a family's host module: step, checks, timeouts, the probe options and its own."""
    host_checks = family.host_checks
    spec = dict(
        step=dict(type="str", required=family.steps),
        checks=dict(type="list", elements="str", choices=host_checks, default=host_checks),
        timeouts=dict(type="dict", default={}),
    )
    if family.probes_gpus:
        spec.update(PROBE_OPTIONS)
    spec.update(own)
    return spec


def validate(params, family):
    """Problems with the shared input, each naming the option; normalises step, timeouts and the since time."""
    problems = []
    if family.steps or params.get("step") is not None:
        try:
            params["step"] = _steps.parse_step(params["step"])
        except ValueError as exc:
            problems.append(str(exc))
    host_checks = family.host_checks
    for name, seconds in list(params["timeouts"].items()):
        if name not in host_checks:
            problems.append("timeouts: unknown check %r; valid checks are: %s" % (name, ", ".join(host_checks)))
            continue
        try:
            params["timeouts"][name] = seconds if isinstance(seconds, bool) else int(seconds)
        except (TypeError, ValueError, OverflowError):
            problems.append("timeouts: %s must be a whole number of seconds, got %r" % (name, seconds))
            continue
        why = timeout_problem(params["timeouts"][name])
        if why:
            problems.append("timeouts: %s %s" % (name, why))
    if family.probes_gpus:
        problems.extend(_probe_problems(params))
    return problems


def all_problems(params, family, validate_own=None):
    """Every problem with a host run's input at once: the shared options, then the family's own (``validate_own``)."""
    problems = validate(params, family)
    if validate_own is not None:
        problems.extend(validate_own(params))
    return problems


def _probe_problems(params):
    """Problems with the GPU and kernel-log probe options; normalises the since time."""
    problems = []
    why = timeout_problem(params["gpu_tool_timeout"])
    if why:
        problems.append("gpu_tool_timeout %s" % why)
    if params["vram_min_mb"] < 0:
        problems.append("vram_min_mb must be 0 or more, got %s" % params["vram_min_mb"])
    try:
        parse_gpu_refs(params["excluded_gpus"], "excluded_gpus")
    except ValueError as exc:
        problems.append(str(exc))
    for index, bdf in params["index_map"].items():
        if not str(index).isdigit() or normalize_bdf(str(bdf)) is None:
            problems.append("index_map: %r: %r is not a GPU index and its PCI address" % (index, bdf))
    for name in ("kernel_log_since", "controller_time"):
        try:
            params[name] = parse_time(params.get(name), name)
        except ValueError as exc:
            problems.append(str(exc))
    return problems


def defaults(spec):
    """Every option of an argument spec at its default (a run without Ansible starts from these)."""
    return dict((name, option.get("default")) for name, option in spec.items())
