"""gpuops-preflight training-health: the training host's health check (docs/TRAINING.md).

Two ways to run it:

* on the training hosts of an inventory (group ``training_hosts``), through ansible-runner and the
  playbook ``gpuops.preflight.training_health`` (``run_training_health`` of the Python API):
      gpuops-preflight training-health -i inventory.yml [--fix] [--json]
* ``--local``: on THIS host, with neither SSH nor a playbook nor Ansible: the same checks of the
  collection (``_training_health``, run by the one host runner) and the same judge, from the
  standard library only. It is what a training daemon's systemd unit runs as ``ExecStartPre=``
  (the start gate of the ``training_watchdog`` role, through the host tool's
  ``gpuops-preflight-local``): the daemon then never starts on a changed base_model while
  checkpoints exist, or from scratch while a resumable checkpoint exists. The daemon is not
  running yet when its unit starts: such a gate passes ``--skip daemon``.
      gpuops-preflight training-health --local [--base-dir DIR] [--fix [--check]] [--json]

``--fix`` also fixes what is safe and reversible (missing daemon folders, owner and mode of the
daemon's own folders); it never deletes, never edits config.json, never touches checkpoints.

Exit codes: 0 passed (warnings included); 1 blocked by a hard failure; 2 could not run (bad input,
no inventory, the collection or ansible-runner missing, a timeout).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
from typing import Any

from . import say

EXIT_PASSED, EXIT_BLOCKED, EXIT_NOT_RUN = 0, 1, 2
BASE_DIR_ENV = "TRAINING_BASE_DIR"
PROG = "gpuops-preflight training-health"

# --local flags that set an option of node_training_health (dest -> option); -o NAME=VALUE sets any other.
LOCAL_FLAGS = ("service_user", "daemon_match", "expect_layout", "min_free_gb", "min_memory_gb", "stall_timeout",
               "eval_timeout", "expected_gpu_count")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "training-health", help="check the training hosts (or, with --local, this host); --fix repairs what is safe",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--local", action="store_true",
                        help="check this host, without SSH, a playbook or Ansible (a unit's ExecStartPre)")
    parser.add_argument("--fix", action="store_true",
                        help="also fix what is safe: create missing daemon folders, repair their owner and mode")
    parser.add_argument("--json", action="store_true", help="print the summary document (JSON) instead of the verdict")
    parser.add_argument("--skip", action="append", metavar="CHECK", help="checks not to run (repeatable, or a,b)")
    parser.add_argument("--downgrade", action="append", metavar="CHECK",
                        help="checks whose hard failures become warnings (repeatable, or a,b)")
    parser.add_argument("--summary-dir", help="where the summary file is written (default: the role's; --local: "
                                              "none unless given)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log INFO (-v) or DEBUG (-vv) to stderr")
    parser.add_argument("-q", "--quiet", action="store_true", help="no log lines on stderr")
    from ..cli import add_run_flags  # cli builds this parser: it is loaded already

    add_run_flags(parser.add_argument_group("on the inventory's training hosts (without --local)"))
    local = parser.add_argument_group("on this host (--local)")
    local.add_argument("--base-dir", default=os.environ.get(BASE_DIR_ENV),
                       help="the training base folder (default $%s)" % BASE_DIR_ENV)
    local.add_argument("--check", action="store_true",
                       help="change nothing (no folder made, no crash recorded); with --fix, say what it would change")
    local.add_argument("--service-user", help="the daemon's user (default: the owner of the base folder)")
    local.add_argument("--daemon-match", metavar="TEXT", help="text the daemon's command line contains")
    local.add_argument("--expect-layout", choices=("auto", "full", "lora"), help="checkpoint layout to expect")
    local.add_argument("--min-free-gb", type=float, metavar="GB", help="free space the base folder needs (50)")
    local.add_argument("--min-memory-gb", type=float, metavar="GB", help="available memory needed (4)")
    local.add_argument("--stall-timeout", type=int, metavar="S", help="seconds without progress (900)")
    local.add_argument("--eval-timeout", type=int, metavar="S", help="the same while evaluating (1800)")
    local.add_argument("--expected-gpu-count", type=int, metavar="N", help="GPUs the host should have")
    local.add_argument("-o", "--option", action="append", default=[], metavar="NAME=VALUE",
                       help="any other option of node_training_health (ansible-doc gpuops.preflight."
                            "node_training_health), e.g. -o logs=logs/*.log,/var/log/train.log -o lock_file=none")
    local.add_argument("--gpu-vendor", choices=("auto", "amd", "nvidia"), default="auto")
    local.add_argument("--gpu-tool", choices=("auto", "rocm-smi", "amd-smi", "sysfs"), default="auto")
    local.add_argument("--rocm-smi", default="rocm-smi")
    local.add_argument("--amd-smi", default="amd-smi")
    local.add_argument("--nvidia-smi", default="nvidia-smi")
    local.add_argument("--gpu-tool-timeout", type=int, default=15, metavar="S")
    local.add_argument("--sysfs-root", default="/sys")
    local.add_argument("--kernel-log", default="auto", help="auto, journal, dmesg, none, or the path of a file")
    parser.set_defaults(handler=run)


def _names(values: list[str] | None) -> list[str] | None:
    from ..cli import _names as names  # --skip a --skip b,c -> [a, b, c], as the other commands read it

    return names(values)


def run(args: argparse.Namespace) -> int:
    if args.local:
        return run_local(args)
    if args.check or args.option or any(getattr(args, dest) is not None for dest in LOCAL_FLAGS):
        print("%s: --check, -o and the host's thresholds are --local options; on the inventory's hosts set "
              "training_health_<option> with -e" % PROG, file=sys.stderr)
        return EXIT_NOT_RUN
    return run_cluster(args)


# ---------------------------------------------------------------- the inventory's training hosts


def run_cluster(args: argparse.Namespace) -> int:
    """Through the bridge, as every command that runs a family's playbook (``cli.run_command``)."""
    from .. import cli

    return cli.run_command(args, _execute)


def _execute(args: argparse.Namespace, extravars: dict, stop: threading.Event, display: Any) -> Any:
    from ..runner import run_training_health

    return run_training_health(
        inventory=args.inventory, extravars=extravars, timeout=args.timeout, cancel=stop, progress=display,
        fix=args.fix or None, skip=_names(args.skip), downgrade=_names(args.downgrade), summary_dir=args.summary_dir,
        failure_log=args.failure_log, keep_artifacts=args.keep_artifacts, artifacts_dir=args.artifacts_dir)


# ---------------------------------------------------------------- this host


def _value(spec: dict, name: str, text: str) -> Any:
    """-o NAME=VALUE: VALUE in the option's type (node_training_health's argument spec)."""
    kind = spec.get("type", "str")
    if kind == "bool":
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError("-o %s: %r is not true or false" % (name, text))
    if kind in ("int", "float"):
        try:
            return int(text) if kind == "int" else float(text)
        except ValueError:
            raise ValueError("-o %s: %r is not a%s number" % (name, text, " whole" if kind == "int" else "")) from None
    if kind == "list":
        return [item.strip() for item in text.split(",") if item.strip()]
    if kind == "path":
        return os.path.expanduser(text)
    return text


def local_params(args: argparse.Namespace, health: Any) -> dict:
    """node_training_health's options for this host: the module's defaults (its own, the GPU probe's, checks and
    timeouts), the flags, -o."""
    from .. import collection

    options = collection.module_utils("_options")
    params = options.defaults(options.argument_spec(health.FAMILY, **health.OPTIONS))
    params.update(gpu_vendor=args.gpu_vendor, gpu_tool=args.gpu_tool, rocm_smi=args.rocm_smi, amd_smi=args.amd_smi,
                  nvidia_smi=args.nvidia_smi, gpu_tool_timeout=args.gpu_tool_timeout, sysfs_root=args.sysfs_root,
                  kernel_log=args.kernel_log, fix=args.fix)
    for dest in LOCAL_FLAGS:
        if getattr(args, dest) is not None:
            params[dest] = getattr(args, dest)
    for item in args.option:
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in health.OPTIONS or name in ("training_base_dir", "fix"):
            raise ValueError("-o %r: expected NAME=VALUE with NAME one of node_training_health's own options "
                             "(--base-dir, --fix and the GPU flags set the others); valid: %s"
                             % (item, ", ".join(sorted(set(health.OPTIONS) - {"training_base_dir", "fix"}))))
        params[name] = _value(health.OPTIONS[name], name, text)
    if not args.base_dir:
        raise ValueError("--base-dir (or $%s) is required with --local" % BASE_DIR_ENV)
    params["training_base_dir"] = os.path.abspath(os.path.expanduser(args.base_dir))
    return params


def fix_lines(result: dict) -> list[str]:
    """What fix mode changed (or would change), and what it could not."""
    fix = result.get("fix") or {}
    lines = ["fix: %s %s: %s -> %s" % (c["action"], c["path"], c["before"] or "absent", c["after"])
             for c in fix.get("changes") or []]
    lines += ["fix: could not %s %s: %s" % (e["action"], e["path"], e["error"]) for e in fix.get("errors") or []]
    return lines


def run_local(args: argparse.Namespace) -> int:
    from .. import collection, locate  # late: building the parser imports nothing of the collection

    try:
        health = collection.module_utils("_training_health")
        host_runner, options, plan_mod, summary_mod = (collection.module_utils(name)
                                                       for name in ("_host_runner", "_options", "_plan", "_summary"))
    except locate.IntegrationUnavailable as exc:
        print("%s: %s" % (PROG, exc), file=sys.stderr)
        return EXIT_NOT_RUN
    host = socket.gethostname()
    try:
        params = local_params(args, health)
        # every input at once, as the module checks it (_node.run_module): the shared options, then its own
        problems = options.all_problems(params, health.FAMILY, health.validate)
        if problems:
            raise ValueError("; ".join(problems))
        plan = plan_mod.build_plan("training_health", None, skip=_names(args.skip), downgrade=_names(args.downgrade),
                                   hosts=[host], hostvars={host: {"expected_gpu_count": params["expected_gpu_count"]}})
    except ValueError as exc:
        print("%s: %s" % (PROG, exc), file=sys.stderr)
        return EXIT_NOT_RUN
    params["checks"], params["timeouts"] = plan["host_checks"], plan["timeouts"]
    module = collection.LocalModule(check_mode=args.check)
    try:
        result = host_runner.run(health.FAMILY, module, params)
    except Exception as exc:  # a bug must still exit 2 with a message, never a traceback in the unit's journal
        print("%s: the checks could not run: %s: %s" % (PROG, type(exc).__name__, exc), file=sys.stderr)
        return EXIT_NOT_RUN
    summary = summary_mod.build_summary(plan, [(host, "local", result)])
    if args.summary_dir:
        try:
            summary_mod.write_summary(summary, args.summary_dir)
        except (OSError, ValueError) as exc:
            summary["notes"].append("summary not written to %s: %s" % (args.summary_dir,
                                                                       getattr(exc, "strerror", None) or exc))
    for warning in module.warnings:
        print("%s: warning: %s" % (PROG, warning), file=sys.stderr)
    if args.json:
        print(json.dumps(dict(summary, fix=result.get("fix")), indent=2, sort_keys=True, default=str))
    else:
        say(*(fix_lines(result) + summary_mod.render_lines(summary)))
    return EXIT_BLOCKED if summary["blocked"] else EXIT_PASSED
