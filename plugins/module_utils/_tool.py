# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: run an external tool (rocm-smi, amd-smi, journalctl) under a hard timeout.

A rig with a dead SMU makes rocm-smi take minutes or hang for ever, so every call goes through
coreutils ``timeout``: it puts the tool in a process group of its own, sends SIGTERM to the whole
group when the time is up and SIGKILL ``kill_after`` seconds later. ``run_command`` itself has no
timeout; a tool stuck in an uninterruptible kernel read is caught by the task's ``timeout:``.
"""

from __future__ import annotations

import os
import time

from ansible_collections.gpuops.preflight.plugins.module_utils._values import seconds_text

ROCM_BIN_DIRS = ["/opt/rocm/bin", "/opt/rocm/libexec/rocm_smi"]


# coreutils timeout's own exit codes when it could not start the tool (it runs every tool, see run_tool)
_LAUNCH_FAILURES = {
    126: "%s is not executable (timeout could not run it, exit 126)",
    127: "%s not found (timeout could not run it, exit 127)",
}


class ToolRun(object):
    """The outcome of one tool call: what ran, how it ended and what it printed."""

    __slots__ = ("cmd", "rc", "stdout", "stderr", "elapsed", "timed_out", "error", "timeout", "launch_failure")

    def __init__(self, cmd, timeout):
        self.cmd = cmd
        self.timeout = timeout
        self.rc = None
        self.stdout = ""
        self.stderr = ""
        self.elapsed = 0.0
        self.timed_out = False
        self.error = None
        self.launch_failure = None  # why timeout could not start the tool (exit 126 or 127)

    @property
    def not_found(self):
        """timeout could not find the tool (exit 127)."""
        return self.launch_failure is not None and self.rc == 127

    @property
    def ran(self):
        """The tool started and ended by itself (whatever it printed or returned)."""
        return not (self.timed_out or self.error or self.launch_failure)

    def describe(self):
        name = os.path.basename(self.cmd[0]) if self.cmd else "tool"
        if self.launch_failure:
            return self.launch_failure
        if self.timed_out:
            return "%s timed out after %ss and was killed" % (name, seconds_text(self.timeout))
        if self.error:
            return "%s could not run: %s" % (name, self.error)
        return "%s exited %s" % (name, self.rc)

    def as_dict(self):
        return {
            "cmd": self.cmd,
            "rc": self.rc,
            "elapsed_s": round(self.elapsed, 3),
            "timed_out": self.timed_out,
            "not_found": self.not_found,
            "error": self.error,
            "timeout_s": self.timeout,
        }


def run_tool(module, argv, timeout, kill_after=2, clock=time.monotonic):
    """Run ``argv`` (argv[0] already resolved) under a hard timeout. Never raises."""
    run = ToolRun(list(argv), timeout)
    timeout_bin = module.get_bin_path("timeout")
    if not timeout_bin:
        run.error = "coreutils 'timeout' not found: refusing to run %s without a hard timeout" % argv[0]
        return run
    cmd = [timeout_bin, "-k", seconds_text(kill_after), seconds_text(timeout)] + list(argv)
    start = clock()
    try:
        rc, out, err = module.run_command(cmd, environ_update={"LC_ALL": "C", "LANG": "C"},
                                          errors="surrogate_then_replace", handle_exceptions=False)
    except (OSError, ValueError) as exc:
        run.error = str(exc)
        return run
    finally:
        run.elapsed = clock() - start
    run.rc, run.stdout, run.stderr = rc, out or "", err or ""
    # 124: timeout sent SIGTERM and the tool ended; 137: it had to be killed. When SIGKILL goes to
    # the whole process group, timeout itself dies with it and run_command sees -9. Only a run that
    # lasted the whole timeout counts (the OOM killer also kills, but early).
    if (rc in (124, 137) or (rc is not None and rc < 0)) and run.elapsed >= timeout * 0.9:
        run.timed_out = True
    elif rc in _LAUNCH_FAILURES:
        run.launch_failure = _LAUNCH_FAILURES[rc] % argv[0]
    return run
