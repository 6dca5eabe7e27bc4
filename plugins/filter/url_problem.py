# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: url_problem
short_description: Why the serving gate would refuse a URL, in the gate's own words
version_added: 3.0.0
description:
  - Judges a URL by the serving gate's one rule for its URLs (C(GPU_ORCHESTRATOR_URL), C(BUS_URL); the module
    M(gpuops.preflight.node_serving_gate), the local gate and the controller's plan use the same rule) and returns
    why the gate would refuse it, or an empty text when the gate takes it.
  - The gate takes an C(http://) or C(https://) URL with a host name or address (an IPv6 address in brackets), an
    optional port from 1 to 65535 and an optional path prefix; it refuses a user name or password, a query string
    or fragment, and white space, control or non-ASCII characters (percent-encode them). White space around the URL
    is ignored, as the gate ignores it.
  - The refused URL is quoted with its user name, password and query values shown as C(***).
  - An empty or null value is refused (C(is empty)); a value that is not a text is judged as the text the gate
    would read (C(8014) as C('8014')).
positional: _input, name
options:
  _input:
    description: The URL.
    type: raw
    required: true
  name:
    description:
      - The name of the variable or option the URL comes from. Given, the text starts with it and a space, as the
        gate's own messages start with the option's name.
    type: str
author:
  - gpuops maintainers (@gpuops)
"""

EXAMPLES = r"""
- name: Refuse an orchestrator URL the gate would refuse at every start of the unit
  ansible.builtin.assert:
    that: serving_gate_unit_orchestrator_url | gpuops.preflight.url_problem == ''
    fail_msg: "{{ serving_gate_unit_orchestrator_url | gpuops.preflight.url_problem('serving_gate_unit_orchestrator_url') }}"

- name: The gate's words
  ansible.builtin.debug:
    msg: "{{ 'http://gpu-1:99999' | gpuops.preflight.url_problem('GPU_ORCHESTRATOR_URL') }}"
  # => GPU_ORCHESTRATOR_URL 'http://gpu-1:99999': port 99999 is out of range
"""

RETURN = r"""
_value:
  description:
    - Why the gate would refuse the URL (after O(name) and a space when O(name) is given), or an empty text when the
      gate takes it.
  type: str
"""

from ansible_collections.gpuops.preflight.plugins.module_utils import _serving


def url_problem(url, name=None):
    """The gate's words for ``url`` (``_serving.url_problem``), after ``name`` when given; '' when it is fine."""
    if url is not None and not isinstance(url, str):
        url = str(url)  # the drop-in's Environment= line and the module's str option hand the gate a text
    why = _serving.url_problem(url)
    if not why:
        return ""
    return "%s %s" % (name, why) if name else why


class FilterModule(object):
    """The serving gate's URL rule as a filter."""

    def filters(self):
        return {"url_problem": url_problem}
