# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: a node task that runs its family's checks from the host tool when it can.

A node module ships the collection's code to the host on every run: Ansible builds the payload (it parses
every file it sends), the host compiles it from a zip, twice (CPython gh-141276). For the training health
check that is most of the run (docs/PERFORMANCE.md). A host that has the host tool (``gpuops.preflight.
host_tool``, which the training watchdog installs) holds the same code, compiled. When its bundle holds
*exactly* the code this controller would ship (``_host_bundle.sources_digest``), the task runs
``<host_tool> node-run`` there instead, with the options the module would get, validated here against the
module's own argument spec, and returns what the module would have returned. Otherwise, and whenever the
host tool did not run the checks (not installed, another version, broken), it runs the module as always.

What ran is in the result, ``ran_from``: ``host_tool`` or ``module``. A host tool that is there but could
not be used gives a warning that says why (update it with the host_tool role); one that is absent, none.
"""

from __future__ import annotations

import json
import shlex

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.gpuops.preflight.plugins.module_utils import _families, _node, _options
from ansible_collections.gpuops.preflight.plugins.plugin_utils import _host_bundle

display = Display()
PROTOCOL = 1  # src/gpuops_preflight/commands/node_run.py speaks it
# The shell's "not found" and "not executable": no host tool here (nothing to say about it).
ABSENT = (126, 127)
# The host tool's own "cannot run" (its wrapper: no bundle, a broken one), or its parser refusing node-run (a
# version before it): nothing ran.
TOOL_REFUSED = 2


def controller_spec(spec):
    """The module's argument spec with ``path`` checked as ``str``: AnsibleModule expands ``~`` and ``$VAR`` on
    the host, with the host's environment, and node-run does the same there."""
    def as_str(option):
        option = dict(option)
        if option.get("type") == "path":
            option["type"] = "str"
        if option.get("elements") == "path":
            option["elements"] = "str"
        return option

    return dict((name, as_str(option)) for name, option in spec.items())


def last_json_line(text):
    """The last line of ``text`` that is a JSON object, or None."""
    for line in reversed((text or "").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                found = json.loads(line)
            except ValueError:
                continue
            if isinstance(found, dict):
                return found
    return None


def last_line(text):
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


class NodeAction(ActionBase):
    """Subclassed once per node module that may run from the host tool, declaring its family's ``KIND``."""

    KIND = None
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(NodeAction, self).run(tmp, task_vars)
        args = dict(self._task.args)
        answer, why = self.from_host_tool(args)
        if answer is None:
            if why:
                display.warning("%s; the module was shipped instead (update the host tool: the gpuops.preflight.host_tool "
                                "role)" % why)
            answer = self._execute_module(module_args=args, task_vars=task_vars)
            answer["ran_from"] = "module"
            self._remove_tmp_path(self._connection._shell.tmpdir)
        else:
            # the module's own warnings, as a module's reach the task result (Ansible 2.19+ collects them from Display)
            for warning in answer.pop("warnings", None) or []:
                display.warning(str(warning))
            answer["ran_from"] = "host_tool"
        result.update(answer)
        return result

    def from_host_tool(self, args):
        """(the module's result as the host tool gave it, None) or (None, why the module must be shipped: None when
        there is nothing to say)."""
        tool = args.get("host_tool")
        if not tool:
            return None, None
        connection = self._connection
        if not connection.has_pipelining or (connection.become and not connection.become.pipelining):
            return None, None   # the request goes on the command's stdin, which this connection (or become) cannot feed
        declared = _families.declaration(self.KIND)
        spec = _options.argument_spec(declared.FAMILY, **declared.OPTIONS)
        validation = ArgumentSpecValidator(controller_spec(spec)).validate(args)
        if validation.error_messages or _node.unusable_text(args):
            return None, None   # the module refuses them, in its own words
        digest = _host_bundle.sources_digest()
        if digest is None:
            return None, None   # this controller cannot tell what it ships (no package beside the collection)
        request = dict(protocol=PROTOCOL, kind=self.KIND, sources_digest=digest, check_mode=bool(self._task.check_mode),
                       params=validation.validated_parameters)
        try:
            data = json.dumps(request, sort_keys=True).encode("utf-8")
        except (TypeError, ValueError):
            return None, None
        done = self._low_level_execute_command("%s node-run" % shlex.quote(tool), sudoable=True, in_data=data)
        rc = done.get("rc")
        answer = last_json_line(done.get("stdout"))
        if answer is not None and answer.get("gpuops_node_run") == PROTOCOL:
            if not answer.get("ran"):
                return None, "the host tool %s did not run the checks: %s" % (tool, answer.get("why") or "no reason given")
            if isinstance(answer.get("result"), dict):
                return answer["result"], None
        elif rc in ABSENT:
            return None, None
        elif rc == TOOL_REFUSED:
            return None, "the host tool %s cannot run the checks (exit 2: %s)" % (
                tool, last_line(done.get("stderr")) or "no message")
        # It started and ended without an answer (killed, or output that is not one): it may have changed the
        # host in fix mode, so the module is not run again behind it. The judge says the host was not checked (probe).
        return dict(failed=True, msg="the host tool %s ended without an answer (exit %s): %s" % (
            tool, rc, last_line(done.get("stderr")) or last_line(done.get("stdout")) or "no output")), None
