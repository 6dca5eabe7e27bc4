# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark aid (not part of the collection): when each task started and each host finished it.

Enabled by benchmarks/preflight_bench.py through ANSIBLE_CALLBACK_PLUGINS/ANSIBLE_CALLBACKS_ENABLED;
writes JSON to $GPUOPS_BENCH_TIMER_OUT: {"start": t0, "tasks": [{"name", "start", "hosts": {host: [t, status]}}],
"end": t}. Times are time.time() on the controller.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: bench_timer
type: aggregate
short_description: Task and per-host result times for benchmarks/preflight_bench.py
description: Writes the times as JSON to the file named by the GPUOPS_BENCH_TIMER_OUT environment variable.
requirements: []
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.doc = {"start": time.time(), "tasks": [], "end": None}

    def _task(self, task):
        self.doc["tasks"].append({"name": task.get_name(), "start": time.time(), "hosts": {}})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._task(task)

    def _done(self, result, status):
        if self.doc["tasks"]:
            self.doc["tasks"][-1]["hosts"][result.host.get_name()] = [time.time(), status]

    def v2_runner_on_ok(self, result, **kwargs):
        self._done(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._done(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._done(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._done(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        self.doc["end"] = time.time()
        path = os.environ.get("GPUOPS_BENCH_TIMER_OUT")
        if path:
            with open(path, "w") as handle:
                json.dump(self.doc, handle)
