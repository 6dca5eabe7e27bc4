#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: node_cleanup
short_description: Clean up a node after a distributed pipeline step and verify its GPUs, in one module run
version_added: 1.0.0
description:
  - The host side of the C(gpuops.preflight.cleanup) role. Removes the GPU runtime caches of the step's users (as
    M(gpuops.preflight.hip_cache_cleanup) does), optionally resets GPU clocks, then verifies that every GPU still
    responds, that the kernel log shows no new amdgpu failure since the step started, and that no process still
    holds VRAM.
  - Every problem is returned as a warning-level check result; the module does not fail for them, so the cleanup
    never blocks the pipeline. Only bad input (an unknown check name, a malformed time) fails it.
  - Idempotent. Nothing left to remove and clocks already at C(auto) gives C(changed=false). In check mode it
    reports what it would remove or reset, and still verifies (read-only).
options:
  step:
    description: The pipeline step that just ran (for the report).
    type: int
    required: true
  checks:
    description: The cleanup checks to run; the others are reported V(skipped).
    type: list
    elements: str
    choices: [caches, clocks, gpu_health, kernel_log, vram]
    default: [caches, clocks, gpu_health, kernel_log, vram]
  timeouts:
    description: Seconds per check, overriding the defaults (C(caches) 60, C(clocks) 30, C(gpu_health) 30, C(kernel_log) 15, C(vram) 30).
    type: dict
    default: {}
  users:
    description: Users whose caches are removed. With neither O(users) nor O(home_dirs), the user running the module.
    type: list
    elements: str
    default: []
  home_dirs:
    description: Home folders whose caches are removed (service accounts without a passwd entry, tests).
    type: list
    elements: path
    default: []
  include_miopen_user_db:
    description: Also remove C(~/.config/miopen), the tuned-kernel database (slow to rebuild; off by default).
    type: bool
    default: false
  extra_paths:
    description: More cache globs relative to each home, e.g. C(.triton/cache).
    type: list
    elements: str
    default: []
  reset_clocks:
    description:
      - When any GPU is not at C(auto), run C(rocm-smi --resetclocks) (it resets every GPU) and read every level back.
      - Needs root (become). Nothing runs when every GPU is already at C(auto).
    type: bool
    default: false
seealso:
  - module: gpuops.preflight.hip_cache_cleanup
  - module: gpuops.preflight.node_preflight
extends_documentation_fragment:
  - gpuops.preflight.node
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports what would be removed or reset, and still verifies (read-only).
  diff_mode:
    support: none
  platform:
    platforms: posix
author:
  - gpuops maintainers (@gpuops)
"""

EXAMPLES = r"""
- name: Clean up after step 3
  gpuops.preflight.node_cleanup:
    step: 3
    users: [watcher]
    reset_clocks: true
    kernel_log_since: "2026-11-25T15:00:00Z"
  become: true
"""

RETURN = r"""
checks:
  description: One result per cleanup check (C(caches), C(clocks), C(gpu_health), C(kernel_log), C(vram)), as in M(gpuops.preflight.node_preflight).
  returned: always
  type: dict
caches:
  description: What was removed (C(removed), C(bytes_freed), C(skipped), C(errors)); null when the check did not finish.
  returned: always
  type: dict
clocks:
  description: The clock reset (C(needed), C(gpus) with levels before and after, C(problems)); null when not asked.
  returned: always
  type: dict
bytes_freed:
  description: Bytes freed by removing caches (or that would be, in check mode).
  returned: always
  type: int
gpus:
  description: The GPUs after the step, as M(gpuops.preflight.rocm_gpu_facts) reports them.
  returned: always
  type: list
  elements: dict
usable_gpus:
  description: Indices of GPUs healthy and not excluded after the step.
  returned: always
  type: list
  elements: int
kernel_log:
  description: What was read from the kernel log since the step started, and the findings.
  returned: always
  type: dict
"""

from ansible_collections.gpuops.preflight.plugins.module_utils import _cleanup, _node

OPTIONS = dict(
    users=dict(type="list", elements="str", default=[]),
    home_dirs=dict(type="list", elements="path", default=[]),
    include_miopen_user_db=dict(type="bool", default=False),
    extra_paths=dict(type="list", elements="str", default=[]),
    reset_clocks=dict(type="bool", default=False),
)


def main():
    _node.run_module(_cleanup.FAMILY, OPTIONS)


if __name__ == "__main__":
    main()
