# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: run work concurrently, each piece under its own deadline.

A read of a hung GPU's sysfs file, or of a dead NFS mount, can block for seconds or for ever (a
reader stuck in the kernel cannot be interrupted). Each piece of work therefore runs in a daemon
thread; the caller waits for it until its own deadline and then reports it as timed out and moves
on. An abandoned thread keeps running but never delays the result; external commands are killed
separately by their own hard timeout (see ``_tool``).
"""

from __future__ import annotations

import threading
import time

from ansible_collections.gpuops.preflight.plugins.module_utils._values import seconds_text


class Outcome(object):
    """What became of one piece of work."""

    __slots__ = ("name", "value", "error", "timed_out", "elapsed", "timeout")

    def __init__(self, name, timeout):
        self.name = name
        self.timeout = timeout
        self.value = None
        self.error = None
        self.timed_out = False
        self.elapsed = None

    @property
    def ok(self):
        return not self.timed_out and self.error is None

    def describe_failure(self):
        if self.timed_out:
            return "timed out after %ss" % seconds_text(self.timeout)
        if self.error is not None:
            return "failed: %s" % _describe(self.error)
        return ""


def _describe(exc):
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, (OSError, ValueError)) else "%s: %s" % (type(exc).__name__, text)


def run_all(jobs, clock=time.monotonic):
    """Run ``jobs`` ({name: (callable, timeout_seconds)}) concurrently; return {name: Outcome}.

    Every job starts at once; the call returns when each job has finished or passed its own
    deadline, so it takes at most the largest timeout.
    """
    start = clock()
    outcomes, threads, done = {}, {}, {}
    for name, (func, timeout) in jobs.items():
        outcome = outcomes[name] = Outcome(name, timeout)
        finished = done[name] = threading.Event()

        def work(func=func, outcome=outcome, finished=finished):
            try:
                outcome.value = func()
            except Exception as exc:  # a check must report, never crash the module
                outcome.error = exc
            finally:
                outcome.elapsed = clock() - start
                finished.set()

        thread = threads[name] = threading.Thread(target=work, name="gpuops-%s" % name)
        thread.daemon = True
        thread.start()
    for name, outcome in outcomes.items():
        # A thread cannot wait longer than threading.TIMEOUT_MAX (OverflowError): a longer deadline is that long.
        remaining = min(start + outcome.timeout - clock(), threading.TIMEOUT_MAX)
        if not done[name].wait(max(remaining, 0)):
            outcome.timed_out = True
            outcome.elapsed = clock() - start
    return outcomes
