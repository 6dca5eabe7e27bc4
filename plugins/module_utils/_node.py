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
from ansible_collections.gpuops.preflight.plugins.module_utils._values import printable


class _Module(AnsibleModule):
    """AnsibleModule whose every result, its own refusals of bad arguments too, echoes the parameters
    (``invocation``) through the family's ``redact``, as the rest of the result. AnsibleModule would add them
    raw when none is given (ansible-core 2.19 and 2.20 always; later ones when ``inject_invocation`` is on,
    and drop it otherwise): a URL's user name, password or token would leave the host in the task result,
    the runner events and the package's failure log."""

    def __init__(self, redact, **kwargs):
        self._redact = redact
        super(_Module, self).__init__(**kwargs)

    def _log_invocation(self):
        # AnsibleModule logs its arguments first: a NUL byte stopped it with "Failed to log to syslog (embedded
        # null character)", naming no option, and text that is not UTF-8 with a traceback. Say which option.
        problems = unusable_text(getattr(self, "params", None) or {})
        if problems:
            self.fail_json(msg="; ".join(problems))
        super(_Module, self)._log_invocation()

    def _invocation(self):
        params = dict(getattr(self, "params", None) or {})
        return {"module_args": self._redact(params) if self._redact is not None else params}

    def exit_json(self, **kwargs):
        kwargs.setdefault("invocation", self._invocation())
        super(_Module, self).exit_json(**kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs.setdefault("invocation", self._invocation())
        super(_Module, self).fail_json(msg, **kwargs)


def unusable_text(params, where=None):
    """Problems with text in the module's arguments that no path, name or log line can hold, each naming the option:
    a NUL byte, or a character that is not UTF-8 (a lone surrogate: a name in another encoding)."""
    problems = []
    items = params.items() if isinstance(params, dict) else enumerate(params if isinstance(params, list) else ())
    for key, value in items:
        name = "%s%s" % (where, "[%r]" % (key,)) if where else str(key)
        if isinstance(value, (dict, list)):
            problems.extend(unusable_text(value, name))
        elif isinstance(value, str) and "\0" in value:
            problems.append("%s: %s holds a NUL byte, which no path or name can" % (name, printable(repr(value), 120)))
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                problems.append("%s: %s is not UTF-8 text (a name in another encoding?)"
                                % (name, printable(ascii(value), 120)))
    return problems


def run_module(family, own_options, validate_own=None):
    """The whole host module: options, validation (every problem at once), the family's checks."""
    module = _Module(family.redact, argument_spec=_options.argument_spec(family, **own_options), supports_check_mode=True)
    params = dict(module.params)
    problems = _options.all_problems(params, family, validate_own)
    if problems:
        module.fail_json(msg="; ".join(problems))
    # The controller may stop waiting (cancel, timeout, a dropped connection): then stop at once.
    _watchdog.start()
    module.exit_json(**_host_runner.run(family, module, params))
