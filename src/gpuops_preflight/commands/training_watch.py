"""gpuops-preflight training-watch --once [--act]: one stall check of the training daemon, on this host.

The check is the collection's own (``plugins/module_utils/_training_progress.py``, the same code as
the ``training_progress`` module), run here without Ansible or ansible-runner: the
``gpuops.preflight.training_watchdog`` role runs it every minute from a systemd timer through the
host tool (``gpuops-preflight-local``). There is deliberately no loop: the timer is the loop, and
systemd, not this command, restarts the daemon it stops.

Exit codes: 0 the daemon makes progress (warnings included: clock skew, a missing status file,
systemd restarting the daemon); 1 it has stalled (stopped with ``--act``), is dead, or systemd gave
up on its unit (a hard failure); 2 the check could not run (bad input, unreadable files).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from . import say

EXIT_OK, EXIT_PROBLEM, EXIT_NOT_RUN = 0, 1, 2
BASE_DIR_ENV = "TRAINING_BASE_DIR"
EXIT_BY_STATUS = {"ok": EXIT_OK, "warn": EXIT_OK, "fail": EXIT_PROBLEM, "unknown": EXIT_NOT_RUN}


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of seconds, got %r" % value)
    return int(number) if number.is_integer() else number


def _seconds_or_zero(value: str) -> float:
    return 0 if value.strip() in ("0", "0.0") else _seconds(value)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "training-watch", help="one stall check of the training daemon on this host (--act stops a stalled one)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--once", action="store_true", required=True,
                        help="check once and exit (required: a systemd timer, not this command, repeats it)")
    parser.add_argument("--act", action="store_true",
                        help="stop a stalled daemon: SIGTERM to its process group, SIGKILL after --kill-timeout")
    parser.add_argument("--check", action="store_true", help="with --act: say what would be stopped, stop nothing")
    parser.add_argument("--base-dir", default=os.environ.get(BASE_DIR_ENV),
                        help="the training base dir (default $%s)" % BASE_DIR_ENV)
    parser.add_argument("--status-file", help="default <base-dir>/status/training_status.json")
    parser.add_argument("--pid-file", help="default <base-dir>/.daemon.pid; 'none' to not look at the daemon")
    parser.add_argument("--log-file", help="where stops are recorded (JSON lines); default <base-dir>/logs/watchdog.log")
    parser.add_argument("--state-file", help="the step last seen, for a status without updated_at; "
                                             "default <base-dir>/logs/.watchdog_state.json")
    parser.add_argument("--stall-timeout", type=_seconds, default=900, metavar="S",
                        help="seconds without progress before the daemon is stalled (default 900)")
    parser.add_argument("--eval-timeout", type=_seconds, default=1800, metavar="S",
                        help="the same while it evaluates (default 1800)")
    parser.add_argument("--kill-timeout", type=_seconds_or_zero, default=30, metavar="S",
                        help="seconds between SIGTERM and SIGKILL (default 30; the unit's TimeoutStopSec)")
    parser.add_argument("--unit", help="the daemon's systemd unit, asked about when the daemon is dead")
    parser.add_argument("--daemon-match", metavar="TEXT", help="a text the daemon's command line must contain")
    parser.add_argument("--gpu-tool", choices=("auto", "rocm-smi", "amd-smi", "sysfs"), default="auto",
                        help="the GPU tool the probe calls when verifying GPU memory after a stop")
    parser.add_argument("--rocm-smi", default="rocm-smi")
    parser.add_argument("--amd-smi", default="amd-smi")
    parser.add_argument("--nvidia-smi", default="nvidia-smi")
    parser.add_argument("--sysfs-root", default="/sys")
    parser.add_argument("--gpu-tool-timeout", "--gpu-timeout", dest="gpu_tool_timeout", type=_seconds, default=15,
                        metavar="S", help="seconds the GPU probe may take (default 15; --gpu-timeout is its old name)")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from .. import collection  # late: building the parser imports nothing of the collection

    if not args.base_dir:
        print("gpuops-preflight training-watch: --base-dir (or $%s) is required" % BASE_DIR_ENV, file=sys.stderr)
        return EXIT_NOT_RUN
    module = collection.LocalModule(check_mode=args.check)
    try:
        progress = collection.module_utils("_training_progress")
        result = progress.watch(
            module, os.path.abspath(args.base_dir), status_file=args.status_file, pid_file=args.pid_file,
            log_file=args.log_file, state_file=args.state_file, stall_timeout=args.stall_timeout,
            eval_timeout=args.eval_timeout, act=args.act, kill_timeout=args.kill_timeout, unit=args.unit,
            daemon_match=args.daemon_match, gpu_timeout=int(args.gpu_tool_timeout),
            probe_options={"tool": args.gpu_tool, "rocm_smi": args.rocm_smi, "amd_smi": args.amd_smi,
                           "nvidia_smi": args.nvidia_smi, "sysfs_root": args.sysfs_root,
                           "timeout": int(args.gpu_tool_timeout)})
    except (ValueError, OSError, RuntimeError) as exc:
        print("gpuops-preflight training-watch: %s" % exc, file=sys.stderr)
        return EXIT_NOT_RUN
    for warning in module.warnings:
        print("gpuops-preflight training-watch: warning: %s" % warning, file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    else:
        hard = " (hard)" if result["severity"] == "hard" and result["status"] == "fail" else ""
        lines = ["training-watch: %s%s %s: %s" % (result["status"], hard, result["reason"], result["message"])]
        if result["status"] != "ok" and result.get("fix"):
            lines.append("  fix: %s" % result["fix"])
        lines.extend("  | %s" % line for line in (result.get("unit") or {}).get("log") or [])
        say(*lines)
    return EXIT_BY_STATUS.get(result["status"], EXIT_NOT_RUN)
