# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Judge every host's results once and write the summary (documented in modules/preflight_report.py)."""

from __future__ import annotations

from ansible import constants as C
from ansible.plugins.action import ActionBase

from ansible_collections.gpuops.preflight.plugins.module_utils import _families, _summary

CALLBACK = "gpuops.preflight.summary"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    ARGUMENT_SPEC = dict(
        plan=dict(type="dict", required=True),
        result_var=dict(type="str", required=True),
        hosts=dict(type="list", elements="str", required=True),
        summary_dir=dict(type="path"),
        keep=dict(type="int", default=500),
        textfile_dir=dict(type="path"),
    )

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC)
        plan = args["plan"]
        hostvars = (task_vars or {}).get("hostvars", {})
        stats_key = _families.family(plan.get("kind")).stats_key
        if not plan.get("applies"):
            summary = _summary.not_applicable_summary(plan)
        else:
            results = []
            for host in args["hosts"]:
                known = hostvars[host] if host in hostvars else {}
                address = known.get("ansible_host") or host
                results.append((host, str(address), known.get(args["result_var"])))
            summary = _summary.build_summary(plan, results)
        if args["textfile_dir"]:
            # imported only when metrics are on: a run without them pays nothing for them
            from ansible_collections.gpuops.preflight.plugins.module_utils import _metrics

            try:
                _metrics.write_textfile(summary, args["textfile_dir"])
            except (OSError, ValueError) as exc:
                summary["notes"].append("metrics not written to %s: %s" % (args["textfile_dir"], exc))
        if args["summary_dir"]:
            try:
                _summary.write_summary(summary, args["summary_dir"], args["keep"])
            except (OSError, ValueError) as exc:
                why = getattr(exc, "strerror", None) or exc
                summary["notes"].append("summary not written to %s: %s" % (args["summary_dir"], why))
        enabled = C.config.get_config_value("CALLBACKS_ENABLED") or []
        result.update(
            changed=False,
            summary=summary,
            lines=_summary.render_lines(summary),
            headline=_summary.headline(summary),
            blocked_message=_summary.blocked_message(summary) if summary["blocked"] else None,
            callback_active=CALLBACK in enabled,
            stats_key=stats_key,
            # Published as set_stats publishes (per_host false): for ansible-runner's artifact_data and the
            # summary callback. A separate set_stats task would template the whole summary once more.
            ansible_stats={"data": {stats_key: summary}, "per_host": False, "aggregate": False},
        )
        return result
