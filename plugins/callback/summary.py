# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: summary
type: aggregate
short_description: Print the preflight or cleanup verdict block after the play recap
version_added: 1.0.0
description:
  - Reads the summary the C(preflight) and C(cleanup) roles publish with C(set_stats) (keys C(gpuops_preflight) and
    C(gpuops_cleanup)) and prints its verdict block as the very last output, after the play recap.
  - Each hard failure and warning is one line with its host, check and message, followed by the suggested fix.
requirements:
  - Enable it in C(ansible.cfg) (C(callbacks_enabled = gpuops.preflight.summary)); the repository's ansible.cfg does.
author:
  - gpuops maintainers (@gpuops)
"""

import atexit
import gc

from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import filter_loader

from ansible_collections.gpuops.preflight.plugins.module_utils import _families, _summary

# The tasks whose family the main process imports when they start (see v2_playbook_on_task_start).
PLAN_ACTIONS = ("gpuops.preflight.preflight_plan", "preflight_plan")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "gpuops.preflight.summary"
    CALLBACK_NEEDS_ENABLED = True

    _freezes_at_exit = False

    def v2_playbook_on_start(self, playbook):
        # Load Ansible's built-in Jinja filters once, here in the main process: every worker whose task templates
        # a filter (the roles' "| default(...)") is forked from this process and would otherwise load them again
        # (about 10 ms each: the plan, the host task and the judge of every family, and the localhost checks).
        filter_loader.get("default")

    def v2_playbook_on_task_start(self, task, is_conditional):
        # Import the run's family once, here in the main process, when its plan starts: the workers of the
        # plan and the judge are forked from this process and find it imported instead of each compiling it
        # again (Ansible's collection loader keeps no bytecode cache), and the verdict below reuses it.
        if task.action in PLAN_ACTIONS:
            kind = (task.args or {}).get("kind", "preflight")
            if isinstance(kind, str) and kind in _families.kinds():
                _families.family(kind)

    def v2_playbook_on_stats(self, stats):
        self._freeze_at_exit()
        custom = (getattr(stats, "custom", None) or {}).get("_run", {})
        # Any published summary document: only its own family is imported (render_lines asks for it).
        for summary in custom.values():
            if not isinstance(summary, dict) or summary.get("schema") != _summary.SCHEMA:
                continue
            blocked = summary.get("blocked")
            color = "bright red" if blocked else ("bright purple" if summary.get("warnings") else "bright green")
            self._display.display("")
            for number, line in enumerate(_summary.render_lines(summary)):
                self._display.display(line, color=color if number == 0 else None)

    def _freeze_at_exit(self):
        # The run is over: at exit, move every object the run built into the collector's permanent generation first.
        # The interpreter's last collections then skip them (about 55 of the 75 ms this process took to finalize after
        # a training health check); memory is returned with the process as always. Nothing is lost by it: the
        # files and streams written are flushed explicitly (by the callbacks, logging's and multiprocessing's own
        # exit handlers, and the interpreter for stdout and stderr), not by the collector.
        if not self._freezes_at_exit:
            self._freezes_at_exit = True
            atexit.register(gc.freeze)
