#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: preflight_plan
short_description: Validate a preflight or cleanup run before any host is contacted
version_added: 1.0.0
description:
  - Runs on the controller only; it contacts no host. Used once per run by the C(preflight) and C(cleanup) roles.
  - Checks the step (a whole number; C(-e step=3) arrives as a string and is accepted), C(preflight_steps) (int or
    string keys, each with C(ramdisk) file names and absolute C(inputs) paths), the check names in O(skip) and
    O(downgrade) (an unknown name is rejected with the list of valid ones), per-check timeouts, and every host's
    C(expected_gpu_count), C(excluded_gpus) and C(gpu_watchlist).
  - Fails with every problem at once, each naming the field and the host.
  - For a cleanup, finds when the step started (O(since), else the newest preflight summary of the step in
    O(summary_dir), else the current boot) so that only new kernel-log lines are read.
options:
  kind:
    description: A preflight or a cleanup run.
    type: str
    choices: [preflight, cleanup]
    default: preflight
  step:
    description: The pipeline step. Required; a whole number.
    type: raw
  steps:
    description: The C(preflight_steps) mapping of step number to a mapping with C(ramdisk) and C(inputs) lists.
    type: raw
  skip:
    description: Check names not to run (a list, or a comma-separated string).
    type: raw
  downgrade:
    description: Check names whose hard failures become warnings (a list, or a comma-separated string).
    type: raw
  timeouts:
    description: Seconds per host check, overriding the defaults.
    type: dict
    default: {}
  hosts:
    description: The hosts of the run, whose GPU settings are validated.
    type: list
    elements: str
    default: []
  cleanup_steps:
    description: Steps after which a cleanup runs (default V([1, 2, 3])); for other steps it has nothing to do.
    type: list
    elements: raw
  since:
    description: For a cleanup, when the step started (epoch seconds or ISO 8601).
    type: raw
  summary_dir:
    description: Where preflight summaries are written, to find when the step's preflight started.
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  become:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
  connection:
    support: none
  delegation:
    support: none
    details: Runs on the controller; it never contacts a host.
  diff_mode:
    support: none
  platform:
    platforms: all
author:
  - gpuops maintainers (@gpuops)
"""

EXAMPLES = r"""
- name: Plan the preflight
  gpuops.preflight.preflight_plan:
    step: "{{ step }}"
    steps: "{{ preflight_steps | default({}) }}"
    skip: [gpu_temperature]
    hosts: "{{ ansible_play_hosts_all }}"
  run_once: true
  register: preflight_plan_result
"""

RETURN = r"""
plan:
  description: The validated run.
  returned: success
  type: dict
  contains:
    step: {description: The step as a number., type: int, returned: success}
    requirements: {description: The step's C(ramdisk) file names and C(inputs) paths., type: dict, returned: success}
    host_checks: {description: The host checks to run (the registry minus O(skip))., type: list, elements: str, returned: success}
    host_timeout: {description: Seconds for the task backstop of the host module., type: int, returned: success}
    applies: {description: False for a cleanup of a step outside O(cleanup_steps)., type: bool, returned: success}
    since:
      description: Epoch seconds from which a cleanup reads the kernel log; null for the current boot.
      type: float
      returned: success
problems:
  description: Every problem found, when the run cannot go ahead.
  returned: failure
  type: list
  elements: str
"""
