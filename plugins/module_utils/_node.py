# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the module run every family's host module (node_preflight, node_cleanup, ...) is.

``run_module(family, own_options, validate)`` builds the module from the shared options
(``_options``) and the family's own, validates every input at once, starts the watchdog and hands
the parameters to the one host runner.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpuops.preflight.plugins.module_utils import _host_runner, _options, _watchdog


def run_module(family, own_options, validate_own=None):
    """The whole host module: options, validation (every problem at once), the family's checks."""
    module = AnsibleModule(argument_spec=_options.argument_spec(family, **own_options), supports_check_mode=True)
    params = dict(module.params)
    problems = _options.validate(params, family)
    if validate_own is not None:
        problems.extend(validate_own(params))
    if problems:
        module.fail_json(msg="; ".join(problems))
    # The controller may stop waiting (cancel, timeout, a dropped connection): then stop at once.
    _watchdog.start()
    module.exit_json(**_host_runner.run(family, module, params))
