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


class _Module(AnsibleModule):
    """AnsibleModule whose every result, its own refusals of bad arguments too, echoes the parameters
    (``invocation``) through the family's ``redact``, as the rest of the result. AnsibleModule would add them
    raw when none is given (ansible-core 2.19 and 2.20 always; later ones when ``inject_invocation`` is on,
    and drop it otherwise): a URL's user name, password or token would leave the host in the task result,
    the runner events and the package's failure log."""

    def __init__(self, redact, **kwargs):
        self._redact = redact
        super(_Module, self).__init__(**kwargs)

    def _invocation(self):
        params = dict(getattr(self, "params", None) or {})
        return {"module_args": self._redact(params) if self._redact is not None else params}

    def exit_json(self, **kwargs):
        kwargs.setdefault("invocation", self._invocation())
        super(_Module, self).exit_json(**kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs.setdefault("invocation", self._invocation())
        super(_Module, self).fail_json(msg, **kwargs)


def run_module(family, own_options, validate_own=None):
    """The whole host module: options, validation (every problem at once), the family's checks."""
    module = _Module(family.redact, argument_spec=_options.argument_spec(family, **own_options), supports_check_mode=True)
    params = dict(module.params)
    problems = _options.validate(params, family)
    if validate_own is not None:
        problems.extend(validate_own(params))
    if problems:
        module.fail_json(msg="; ".join(problems))
    # The controller may stop waiting (cancel, timeout, a dropped connection): then stop at once.
    _watchdog.start()
    module.exit_json(**_host_runner.run(family, module, params))
