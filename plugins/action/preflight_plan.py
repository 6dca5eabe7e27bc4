# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Validate a preflight or cleanup run before any host is contacted (documented in modules/preflight_plan.py)."""

from __future__ import annotations

import os
import re

from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.gpuops.preflight.plugins.module_utils import _families, _plan

HOST_SETTINGS = ("expected_gpu_count", "excluded_gpus", "gpu_watchlist")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    ARGUMENT_SPEC = dict(
        kind=dict(type="str", choices=_families.kinds(), default="preflight"),
        step=dict(type="raw"),
        steps=dict(type="raw"),
        skip=dict(type="raw"),
        downgrade=dict(type="raw"),
        timeouts=dict(type="dict", default={}),
        hosts=dict(type="list", elements="str", default=[]),
        cleanup_steps=dict(type="list", elements="raw"),
        since=dict(type="raw"),
        summary_dir=dict(type="path"),
        inputs=dict(type="dict", default={}),
        budget=dict(type="raw"),
    )

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC)
        hostvars = (task_vars or {}).get("hostvars", {})
        # each host's variables, built once (Ansible builds a host's whole variable set on every hostvars[host])
        known = dict((host, hostvars[host] if host in hostvars else {}) for host in args["hosts"])
        role_problems = self.role_variable_problems(task_vars or {}, _families.family(args["kind"]), known)
        settings = dict((host, dict((key, known[host].get(key)) for key in HOST_SETTINGS)) for host in args["hosts"])
        try:
            plan = _plan.build_plan(
                args["kind"], args["step"], steps=args["steps"], skip=args["skip"], downgrade=args["downgrade"],
                hosts=args["hosts"], hostvars=settings, timeouts=args["timeouts"],
                cleanup_steps=args["cleanup_steps"], since=args["since"], summary_dir=args["summary_dir"],
                inputs=args["inputs"],
                # a budget from a role variable its rules refused is said once, by them
                budget=None if role_problems else args["budget"])
        except _plan.PlanError as exc:
            role_problems = role_problems + exc.problems
        if role_problems:
            word = _families.family(args["kind"]).word
            result.update(failed=True, problems=role_problems,
                          msg="%s cannot run: %s" % (word, "; ".join(role_problems)))
            return result
        result.update(changed=False, plan=plan)
        return result

    def role_variable_problems(self, task_vars, family, known=None):
        """Validate the calling role's variables against its meta/argument_specs.yml, once per run.

        The playbooks import the roles with rolespec_validate: false because Ansible would otherwise
        run that validation as a task on every host (it grows linearly with the cluster). The ranges a
        spec cannot say (a negative max_age, an empty path) are checked too (``_plan.variable_problems``).
        A host's own values (host or group variables of the other hosts in ``known``: {host: its variables})
        that differ from this host's are checked the same way, naming the host: the host task would refuse
        them (the serving gate's URLs, by the gate's own rule), after the other hosts were contacted.
        """
        role = getattr(self._task, "_role", None)
        if role is None:
            return []
        options = ((self.role_argspecs(role) or {}).get("main") or {}).get("options") or {}
        values = self._templar.template(dict((name, task_vars[name]) for name in options if name in task_vars))
        problems = self._variable_problems(family, options, values, "role %s: " % role.get_name())
        this_host = task_vars.get("inventory_hostname")
        for host, theirs in (known or {}).items():
            if host == this_host or not theirs:
                continue
            prefix, own = "role %s: %s: " % (role.get_name(), host), {}
            for name in options:
                try:
                    if name in theirs and (name not in values or theirs[name] != values[name]):
                        own[name] = theirs[name]
                except AnsibleError as exc:  # a template of that host's that does not render: its task would fail
                    problems.append("%s%s: %s" % (prefix, name, exc.message))
            if own:
                problems.extend(self._variable_problems(family, dict((name, options[name]) for name in own), own, prefix))
        return problems

    @staticmethod
    def _variable_problems(family, options, values, prefix):
        validation = ArgumentSpecValidator(options).validate(values, validate_role_argument_spec=True)
        # Ansible's conversion errors end with the internal class of the value: noise for an operator.
        internal_class = re.compile(r": <class '[^']*'> cannot be converted to an? \w+$")
        problems = [prefix + internal_class.sub("", message) for message in validation.error_messages]
        checked = dict((name, validation.validated_parameters.get(name)) for name in values)
        return problems + [prefix + p for p in _plan.variable_problems(family, checked)]

    def role_argspecs(self, role):
        """The role's argument specs, as ``Role._get_role_argspecs`` reads them, without its deep copy.

        The loader hands out a deep copy of what it parsed, so that no caller can change its cache; this worker
        only reads the specs and ends with this task, and the copy cost about as much as the parse (~8 ms).
        """
        base = os.path.join(role._role_path, "meta", "argument_specs")
        path = base + ".yml"
        if self._loader.path_exists(base) or not self._loader.path_exists(path):
            return role._get_role_argspecs()  # the other places Ansible accepts, and their precedence
        specs = self._loader.load_from_file(path, unsafe=True, trusted_as_template=True)
        try:
            return specs.get("argument_specs") or {}
        except AttributeError:
            return {}
