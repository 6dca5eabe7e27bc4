#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: preflight_report
short_description: Judge every host's preflight or cleanup results once and write the summary
version_added: 1.0.0
description:
  - Runs on the controller only. Reads each host's registered result of M(gpuops.preflight.node_preflight) (or
    M(gpuops.preflight.node_cleanup)), and judges all problems once, for the whole cluster.
  - A host that could not be reached is a hard C(ssh) failure naming the host and its address; a host whose module
    failed or ran out of time is a hard C(probe) failure. Only a C(fail) of a hard check blocks; a problem about an
    excluded GPU, or of a check named in the plan's C(downgrade), becomes a warning that says why. A cleanup never
    blocks.
  - Writes the summary document (schema C(gpuops.preflight.summary), version 1; see C(docs/SUMMARY_SCHEMA.md)) as
    C(summary_step<N>_<timestamp>.json) (cleanup C(cleanup_step<N>_<timestamp>.json)) under O(summary_dir),
    creating the folder, one new file per run; keeps the newest O(keep) files of that kind.
  - Publishes the summary as C(ansible.builtin.set_stats) does (C(per_host=false)), under the key C(gpuops_preflight)
    or C(gpuops_cleanup), for ansible-runner (C(artifact_data) of the C(playbook_on_stats) event) and the summary
    callback.
  - Reports C(changed=false), as it changes nothing on the hosts.
options:
  plan:
    description: The C(plan) returned by M(gpuops.preflight.preflight_plan).
    type: dict
    required: true
  result_var:
    description: Name of the variable each host registered the host module's result in.
    type: str
    required: true
  hosts:
    description: The hosts of the run, in order.
    type: list
    elements: str
    required: true
  summary_dir:
    description: Folder for the summary file; not written when unset.
    type: path
  keep:
    description: How many summary files of this kind to keep in O(summary_dir) (0 keeps all).
    type: int
    default: 500
  textfile_dir:
    description:
      - node_exporter's textfile collector folder. When set, the run's metrics replace C(gpuops_<kind>.prom) there
        atomically (GPU health as a state set, each check's status, the verdict, time and duration, the counts); a
        failure to write is a note in the summary, never a failed run. Unset, nothing is written.
    type: path
    version_added: 2.0.0
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
- name: Decide
  gpuops.preflight.preflight_report:
    plan: "{{ preflight_plan_result.plan }}"
    result_var: preflight_node_result
    hosts: "{{ ansible_play_hosts_all }}"
    summary_dir: ~/.local/state/gpuops-preflight
  run_once: true
  register: preflight_report_result
"""

RETURN = r"""
summary:
  description: The summary document (see C(docs/SUMMARY_SCHEMA.md)).
  returned: always
  type: dict
  contains:
    passed: {description: True unless a hard failure blocks the step; always true for a cleanup., type: bool, returned: always}
    step: {description: The step., type: int, returned: always}
    hard_failures: {description: "Items with C(host), C(address), C(check), C(message), C(fix).", type: list, elements: dict, returned: always}
    warnings: {description: Items as in C(hard_failures)., type: list, elements: dict, returned: always}
    hosts:
      description: Per host, its GPUs, C(usable_gpus) and check results.
      type: dict
      returned: always
    summary_file:
      description: Path of the summary written; null when none was written.
      type: str
      returned: always
lines:
  description: The verdict block, one string per line.
  returned: always
  type: list
  elements: str
headline:
  description: The first line of the block.
  returned: always
  type: str
blocked_message:
  description: One line naming what blocked the step, or null.
  returned: always
  type: str
callback_active:
  description: Whether the C(gpuops.preflight.summary) callback will print the block after the play recap.
  returned: always
  type: bool
stats_key:
  description: The C(set_stats) key the summary is published under (C(gpuops_preflight) or C(gpuops_cleanup)).
  returned: always
  type: str
"""
