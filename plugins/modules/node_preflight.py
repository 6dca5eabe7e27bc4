#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: node_preflight
short_description: Run every host-side preflight check of a pipeline step in one module run
version_added: 1.0.0
description:
  - The host side of the C(gpuops.preflight.preflight) role. One run per host checks the step's ramdisk files and
    input files, the ramdisk's space, the GPUs' health and count, the kernel log, VRAM holders and temperatures,
    so the preflight costs about what C(ansible -m ping) costs.
  - The checks' collectors run concurrently, each under the timeout of the checks that need it. A check that could
    not run (timed out, tool missing) is V(unknown) and says why; it is never reported as passed.
  - It decides nothing about blocking. It returns each check's result (V(ok), V(warn), V(fail), V(unknown),
    V(skipped)) with its problems, and the controller (M(gpuops.preflight.preflight_report)) judges them once for
    the whole cluster. Problems about GPUs in O(excluded_gpus) carry C(excluded=true).
  - The GPU tool is called once, under a hard timeout in its own process group (see M(gpuops.preflight.rocm_gpu_facts)).
options:
  step:
    description:
      - The pipeline step the preflight is for, a number of 0 or more, whole or decimal (V(3), V(2.5)).
      - Its files are under O(ramdisk_root)/step<step>/, the step in its shortest form (C(step3), C(step2.5)),
        unless O(ramdisk_dir) names the folder.
    type: str
    required: true
  checks:
    description: The host checks to run; the others are reported V(skipped).
    type: list
    elements: str
    choices: [ramdisk, inputs, gpu_health, gpu_count, kernel_log, vram, gpu_temperature, ramdisk_space]
    default: [ramdisk, inputs, gpu_health, gpu_count, kernel_log, vram, gpu_temperature, ramdisk_space]
  timeouts:
    description:
      - Seconds per check, overriding the defaults (C(ramdisk) 10, C(inputs) 10, C(gpu_health) 30, C(gpu_count) 30,
        C(kernel_log) 15, C(vram) 30, C(gpu_temperature) 30, C(ramdisk_space) 10). Checks that share a collector
        (the GPU checks) share the longest of their timeouts.
    type: dict
    default: {}
  ramdisk_root:
    description: The ramdisk root; the step's folder is C(step<step>) below it.
    type: path
    default: /dev/shm/prng
  ramdisk_dir:
    description: The step's folder under O(ramdisk_root) when the pipeline names it otherwise than C(step<step>).
    type: str
    version_added: 2.0.0
  ramdisk_files:
    description: File names required in the step's ramdisk folder (relative; names that escape the folder are refused).
    type: list
    elements: str
    default: []
  input_files:
    description: Absolute paths of input files the step needs.
    type: list
    elements: str
    default: []
  validate_json:
    description: Parse required files as JSON; V(auto) parses names ending in C(.json).
    type: str
    choices: [auto, always, never]
    default: auto
  max_age:
    description: Seconds; required ramdisk files older than this are reported.
    type: int
  require_tmpfs:
    description: Warn when the ramdisk root is not on a tmpfs.
    type: bool
    default: true
  ramdisk_min_free_mb:
    description: Warn when the ramdisk has less free space than this (MiB).
    type: int
    default: 512
  expected_gpu_count:
    description: GPUs the host should have, excluded ones included. Not set, the count is reported but not compared.
    type: int
  gpu_watchlist:
    description: GPUs to watch (named as in O(excluded_gpus)); any kernel-log finding on them is a warning.
    type: list
    elements: raw
    default: []
  gpu_temp_warn_c:
    description: Warn about a GPU whose edge temperature is at or above this (degrees C).
    type: float
    default: 85.0
seealso:
  - module: gpuops.preflight.rocm_gpu_facts
  - module: gpuops.preflight.amdgpu_kernel_log_info
  - module: gpuops.preflight.ramdisk_check
  - module: gpuops.preflight.preflight_report
extends_documentation_fragment:
  - gpuops.preflight.node
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: It only reads; check mode changes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
author:
  - gpuops maintainers (@gpuops)
"""

EXAMPLES = r"""
- name: Check this host for step 3
  gpuops.preflight.node_preflight:
    step: 3
    ramdisk_dir:
    description: The step's folder under O(ramdisk_root) when the pipeline names it otherwise than C(step<step>).
    type: str
    version_added: 2.0.0
  ramdisk_files: [train_history.json, holdout_history.json]
    expected_gpu_count: 12
    excluded_gpus:
      - {gpu: 10, reason: "SMU 0xFFFFFFFF errors"}
  register: node

- name: Show the GPUs a scheduler may use
  ansible.builtin.debug:
    var: node.usable_gpus
"""

RETURN = r"""
checks:
  description: One result per host check, keyed by check name.
  returned: always
  type: dict
  sample:
    gpu_health:
      name: gpu_health
      status: fail
      message: "GPU 3 (0000:0b:00.0) is lost: PCI config space reads all-ones: the GPU is lost from the bus"
      problems:
        - check: gpu_health
          status: fail
          message: "GPU 3 (0000:0b:00.0) is lost: PCI config space reads all-ones: the GPU is lost from the bus"
          fix: "Reboot the rig (a GPU in this state rarely recovers without a power cycle), or add the GPU to excluded_gpus."
          gpu: {index: 3, bdf: "0000:0b:00.0", excluded: false}
      elapsed_s: 0.41
      timed_out: false
      details: {}
gpus:
  description: The GPUs, as M(gpuops.preflight.rocm_gpu_facts) reports them, plus C(excluded) and C(watchlisted).
  returned: always
  type: list
  elements: dict
gpu_count:
  description: GPUs found, whatever their health.
  returned: always
  type: int
expected_gpu_count:
  description: O(expected_gpu_count), echoed.
  returned: always
  type: int
usable_gpus:
  description: Indices of GPUs that are healthy and not excluded.
  returned: always
  type: list
  elements: int
unverified_gpus:
  description: Indices of GPUs whose state is unknown (the GPU tool gave no answer), not excluded.
  returned: always
  type: list
  elements: int
gpu_tool:
  description: How the GPU tool behaved (see M(gpuops.preflight.rocm_gpu_facts)); null when the GPU probe did not finish.
  returned: always
  type: dict
processes:
  description: Processes known to KFD with the VRAM they hold.
  returned: always
  type: list
  elements: dict
kernel_log:
  description: What was read from the kernel log, and the findings.
  returned: always
  type: dict
notes:
  description: Remarks about the GPU probe (for example a GPU that cannot be placed in the tool's numbering).
  returned: always
  type: list
  elements: str
elapsed_s:
  description: Seconds the module ran.
  returned: always
  type: float
step:
  description: O(step), echoed in its shortest form (V(3), V(2.5)).
  returned: always
  type: str
"""

from ansible_collections.gpuops.preflight.plugins.module_utils import _node, _preflight
from ansible_collections.gpuops.preflight.plugins.module_utils._pci import parse_gpu_refs

OPTIONS = dict(
    ramdisk_root=dict(type="path", default="/dev/shm/prng"),
    ramdisk_dir=dict(type="str"),
    ramdisk_files=dict(type="list", elements="str", default=[]),
    input_files=dict(type="list", elements="str", default=[]),
    validate_json=dict(type="str", choices=["auto", "always", "never"], default="auto"),
    max_age=dict(type="int"),
    require_tmpfs=dict(type="bool", default=True),
    ramdisk_min_free_mb=dict(type="int", default=512),
    expected_gpu_count=dict(type="int"),
    gpu_watchlist=dict(type="list", elements="raw", default=[]),
    gpu_temp_warn_c=dict(type="float", default=85.0),
)


def validate(params):
    problems = []
    for name in ("expected_gpu_count", "max_age", "ramdisk_min_free_mb"):
        if params[name] is not None and params[name] < 0:
            problems.append("%s must be 0 or more, got %s" % (name, params[name]))
    try:
        parse_gpu_refs(params["gpu_watchlist"], "gpu_watchlist")
    except ValueError as exc:
        problems.append(str(exc))
    return problems


def main():
    _node.run_module(_preflight.FAMILY, OPTIONS, validate)


if __name__ == "__main__":
    main()
