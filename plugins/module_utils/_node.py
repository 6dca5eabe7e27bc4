# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: what every host module of a family (node_preflight, node_cleanup, ...) shares.

The options every one of them takes (step, checks, timeouts, and the GPU and kernel-log probe
options, documented once in doc_fragments/node.py), the validation of that input, and the module
run itself: ``run_module(family, own_options, validate)`` builds the module, validates, and hands
the parameters to the one host runner.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpuops.preflight.plugins.module_utils import _host_runner, _steps, _watchdog
from ansible_collections.gpuops.preflight.plugins.module_utils._pci import normalize_bdf, parse_gpu_refs
from ansible_collections.gpuops.preflight.plugins.module_utils._timeparse import parse_time

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
            params["timeouts"][name] = int(seconds)
        except (TypeError, ValueError, OverflowError):
            problems.append("timeouts: %s must be a whole number of seconds, got %r" % (name, seconds))
            continue
        if params["timeouts"][name] < 1:
            problems.append("timeouts: %s must be at least 1 second" % name)
    if params["gpu_tool_timeout"] < 1:
        problems.append("gpu_tool_timeout must be at least 1 second")
    if params["vram_min_mb"] < 0:
        problems.append("vram_min_mb must be 0 or more, got %s" % params["vram_min_mb"])
    try:
        parse_gpu_refs(params["excluded_gpus"], "excluded_gpus")
    except ValueError as exc:
        problems.append(str(exc))
    for index, bdf in params["index_map"].items():
        if not str(index).isdigit() or normalize_bdf(str(bdf)) is None:
            problems.append("index_map: %r: %r is not a GPU index and its PCI address" % (index, bdf))
    try:
        params["kernel_log_since"] = parse_time(params["kernel_log_since"], "kernel_log_since")
    except ValueError as exc:
        problems.append(str(exc))
    return problems


def run_module(family, own_options, validate_own=None):
    """The whole host module: options, validation (every problem at once), the family's checks."""
    module = AnsibleModule(argument_spec=argument_spec(family, **own_options), supports_check_mode=True)
    params = dict(module.params)
    problems = validate(params, family)
    if validate_own is not None:
        problems.extend(validate_own(params))
    if problems:
        module.fail_json(msg="; ".join(problems))
    # The controller may stop waiting (cancel, timeout, a dropped connection): then stop at once.
    _watchdog.start()
    module.exit_json(**_host_runner.run(family, module, params))
