"""gpuops-preflight: the preflight and the cleanup from a shell, through the same API WATCHER uses.

Exit codes (docs/WATCHER.md): 0 passed (warnings included) / cleanup done, 1 blocked,
2 could not run (bad input, timeout, canceled, ansible-runner or the collection missing).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from typing import TYPE_CHECKING

from . import commands
from .collection import module_utils
from .names import FAILURE_LOG_ENV, INVENTORY_ENV

if TYPE_CHECKING:  # the bridge is imported by the commands that run it: a host's local check does not pay for it
    import logging
    from .report import Report
    from .runner import Progress

EXIT_PASSED, EXIT_BLOCKED, EXIT_NOT_RUN = 0, 1, 2
# The commands this module defines itself; the others are modules of gpuops_preflight.commands.
CORE_COMMANDS = ("preflight", "cleanup", "failures")
# An extra-variables file larger than this is refused (it is read whole).
EXTRA_VARS_MAX_BYTES = 16 * 1024 * 1024


def exit_code(report: Report) -> int:
    from .report import BLOCKED, PASSED

    if report.status == PASSED:
        return EXIT_PASSED
    return EXIT_BLOCKED if report.status == BLOCKED else EXIT_NOT_RUN


def _extra_vars(items: Sequence[str]) -> dict[str, Any]:
    """-e as ansible-playbook takes it: key=value pairs (text), a JSON object, or @file (JSON/YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        text = item.strip()
        if text.startswith("@"):
            files = module_utils("_files")
            try:
                raw = files.read_regular(text[1:], EXTRA_VARS_MAX_BYTES)
            except files.FileProblem as exc:
                raise ValueError("-e %r: %s" % (item, exc)) from None
            except OSError as exc:
                raise ValueError("-e %r: cannot be read: %s" % (item, exc.strerror or exc)) from None
            content = raw.decode("utf-8", "replace")
            try:
                data = json.loads(content)
            except ValueError:
                data = _yaml(text[1:], content)
        elif text.startswith("{"):
            try:
                data = json.loads(text)
            except ValueError as exc:
                raise ValueError("-e %r: not valid JSON: %s" % (item, exc)) from None
        else:
            data = {}
            try:
                pairs = shlex.split(text)
            except ValueError as exc:  # an unclosed quote
                raise ValueError("-e %r: %s" % (item, exc)) from None
            for pair in pairs:
                key, sep, value = pair.partition("=")
                if not sep or not key:
                    raise ValueError("-e %r: expected key=value, a JSON object or @file" % item)
                data[key] = value
        if not isinstance(data, dict):
            raise ValueError("-e %r: extra variables must be a mapping" % item)
        out.update(data)
    return out


def _yaml(path: str, content: str) -> Any:
    try:
        import yaml  # PyYAML comes with ansible-core; only needed for a YAML file
    except ImportError:
        raise ValueError("-e %r: not JSON, and PyYAML is not installed to read it as YAML" % ("@" + path)) from None
    try:
        return yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise ValueError("-e %r: neither JSON nor YAML: %s" % ("@" + path, " ".join(str(exc).split()))) from None


def _names(values: Sequence[str] | None) -> list[str] | None:
    """--skip a --skip b,c -> [a, b, c]."""
    if not values:
        return None
    return [n.strip() for value in values for n in value.split(",") if n.strip()]


def _step(value: str) -> str:
    """--step: a step number (3, 2.5), checked by the collection's own rule, refused with the CLI's
    wording (argparse exits 2)."""
    try:
        return module_utils("_steps").parse_step(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a step number of 0 or more, whole or decimal "
                                         "(e.g. --step 3 or --step 2.5), got %r" % value) from None


def add_run_flags(parser: Any) -> None:
    """The flags of a run over the inventory's hosts, as ``run_command`` reads them: every command that runs a
    family's playbook has them (a parser or an argument group)."""
    parser.add_argument("-i", "--inventory", action="append",
                        help="inventory (repeatable): a file, folder, distributed_config.json or *.watcher.yml; "
                             "default $%s" % INVENTORY_ENV)
    parser.add_argument("-e", "--extra-vars", action="append", default=[], metavar="VARS",
                        help="extra variables: key=value, a JSON object or @file (repeatable)")
    parser.add_argument("--timeout", type=float, help="overall timeout in seconds (default: none)")
    parser.add_argument("--failure-log", help="append failed tasks to this JSON-lines file "
                                              "(default $%s)" % FAILURE_LOG_ENV)
    parser.add_argument("--keep-artifacts", type=int, default=0, metavar="N",
                        help="keep the run's private folder, and at most N kept ones")
    parser.add_argument("--artifacts-dir", help="where private run folders are made")
    parser.add_argument("--progress", action="store_true",
                        help="each host's checks on its progress line as it finishes (stderr; also with --json, -q)")
    parser.add_argument("--table", action=argparse.BooleanOptionalAction, default=None,
                        help="the hosts x GPUs table before the verdict (default: when stdout is a terminal)")


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line; ``only``: build just that command module's parser with the core ones (a host's
    minute-by-minute check imports no other command)."""
    parser = argparse.ArgumentParser(
        prog="gpuops-preflight", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--step", required=True, type=_step, help="the pipeline step (3, 2.5)")
    common.add_argument("--json", action="store_true", help="print the summary document (JSON) instead of the report")
    common.add_argument("--skip", action="append", metavar="CHECK", help="checks not to run (repeatable, or a,b)")
    common.add_argument("--summary-dir", help="where the summary file is written (default: the role's)")
    common.add_argument("-v", "--verbose", action="count", default=0, help="log INFO (-v) or DEBUG (-vv) to stderr")
    common.add_argument("-q", "--quiet", action="store_true", help="no log lines on stderr")
    add_run_flags(common)
    pre = sub.add_parser("preflight", parents=[common], help="check the rigs before a step")
    pre.add_argument("--downgrade", action="append", metavar="CHECK",
                     help="checks whose hard failures become warnings (repeatable, or a,b)")
    clean = sub.add_parser("cleanup", parents=[common], help="clean up the rigs after a distributed step")
    clean.add_argument("--cleanup-steps", help="steps that need a cleanup, e.g. 1,2,3 (default: the role's)")
    clean.add_argument("--since", help="when the step started (epoch seconds or ISO 8601)")
    query = sub.add_parser("failures", help="query the JSON-lines failure log")
    query.add_argument("--log", help="the failure log (default $%s)" % FAILURE_LOG_ENV)
    query.add_argument("--host")
    query.add_argument("--step")
    query.add_argument("--kind", choices=("preflight", "cleanup"))
    query.add_argument("--task", help="a part of the task name")
    query.add_argument("--run-id")
    query.add_argument("--since", help="epoch seconds or ISO 8601")
    query.add_argument("--no-verdicts", action="store_true", help="leave out the verdict task's failures")
    query.add_argument("--limit", type=int, help="only the newest N")
    query.add_argument("--json", action="store_true", help="JSON lines instead of one summary line each")
    if only not in CORE_COMMANDS:
        for command in commands.discover(only):
            command.add_parser(sub)
    parser.set_defaults(command_parsers=sub.choices)
    return parser


def _setup_logging(verbose: int, quiet: bool) -> logging.StreamHandler:
    import logging  # here: commands without -v/-q (the local checks run every minute) never log

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    logger = logging.getLogger("gpuops_preflight")
    logger.addHandler(handler)
    logger.propagate = False
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    logger.setLevel(logging.CRITICAL + 1 if quiet else level)
    return handler


# A run command's work: (args, extra variables, the stop event, the progress object) -> its report.
Execute = Callable[[argparse.Namespace, dict, threading.Event, "Progress"], "Report"]


def run_command(args: argparse.Namespace, execute: Execute) -> int:
    """Everything a command that runs a family's playbook (``runner.execute``) does around the run: extra
    variables, Ctrl-C, the live progress on stderr, then the hosts x GPUs table and the verdict lines (or
    the JSON document) on stdout, and the exit code. ``args`` has the ``common`` options of ``_parser``
    (those about output default to off when a command's parser leaves them out)."""
    from . import progress
    from .report import BLOCKED, PASSED

    as_json, table = getattr(args, "json", False), getattr(args, "table", None)
    try:
        extravars = _extra_vars(getattr(args, "extra_vars", None) or [])
    except (OSError, ValueError) as exc:
        print("gpuops-preflight: %s" % exc, file=sys.stderr)
        return EXIT_NOT_RUN
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C / SIGTERM: stop the run cleanly (every process of it), then report.
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    display = progress.for_command(json_output=as_json, quiet=getattr(args, "quiet", False),
                                   checks=getattr(args, "progress", False))
    handler, stream = getattr(args, "log_handler", None), None
    if display is not None and display.live and handler is not None:
        stream = handler.setStream(progress.AboveLine(display))  # log lines above the live line
    try:
        report = execute(args, extravars, stop, display)
    finally:
        if display is not None:
            display.close()
        if stream is not None:
            handler.setStream(stream)
        for sig, old in previous.items():
            signal.signal(sig, old)
    if as_json:
        document = report.summary if report.summary is not None else report.as_dict()
        print(json.dumps(document, indent=2, sort_keys=True, default=str))
        return exit_code(report)
    lines = list(report.lines)
    if report.summary is not None and report.status not in (PASSED, BLOCKED):
        lines.insert(0, report.reason())
    rows = progress.table_lines(report.hosts) if progress.table_wanted(table, as_json) else []
    commands.say(*(rows + [""] + lines if rows else lines))
    return exit_code(report)


def _run(args: argparse.Namespace) -> int:
    return run_command(args, _execute)


def _execute(args: argparse.Namespace, extravars: dict[str, Any], stop: threading.Event,
             display: Progress) -> Report:
    from .runner import run_cleanup, run_preflight

    common = dict(inventory=args.inventory, extravars=extravars, timeout=args.timeout, cancel=stop,
                  progress=display, skip=_names(args.skip),
                  summary_dir=args.summary_dir, failure_log=args.failure_log, keep_artifacts=args.keep_artifacts,
                  artifacts_dir=args.artifacts_dir)
    if args.command == "preflight":
        return run_preflight(args.step, downgrade=_names(args.downgrade), **common)
    # Step numbers are validated by the playbook's plan, with the other input.
    steps = [s.strip() for s in args.cleanup_steps.split(",") if s.strip()] if args.cleanup_steps else None
    return run_cleanup(args.step, cleanup_steps=steps, since=args.since, **common)


def _query(args: argparse.Namespace) -> int:
    from . import failures

    path = failures.log_path(args.log)
    if not path:
        print("gpuops-preflight failures: no failure log: give --log or set $%s" % FAILURE_LOG_ENV, file=sys.stderr)
        return EXIT_NOT_RUN
    if not os.path.exists(path):  # nothing recorded there yet, or a mistyped path: say which
        print("gpuops-preflight failures: %s does not exist: no failure is recorded there" % path, file=sys.stderr)
    try:
        records = failures.query(path, host=args.host, step=args.step, kind=args.kind, run_id=args.run_id,
                                 task=args.task, since=args.since, include_verdicts=not args.no_verdicts,
                                 limit=args.limit)
    except (OSError, ValueError) as exc:
        print("gpuops-preflight: %s" % exc, file=sys.stderr)
        return EXIT_NOT_RUN
    for rec in records:
        if args.json:
            print(json.dumps(rec, sort_keys=True, default=str))
        else:
            commands.say("%s %s step %s %s %s: %s: %s" % (rec.get("time"), rec.get("kind"), rec.get("step"),
                                                          "unreachable" if rec.get("unreachable") else "failed",
                                                          rec.get("host"), rec.get("task"), rec.get("message")))
    return EXIT_PASSED


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    word = argv[0] if argv else None
    args, unknown = _parser(word if word in CORE_COMMANDS else commands.module_of(word or "")).parse_known_args(argv)
    if unknown:  # said by the command's own parser: its usage, not the top level's (built with this command only)
        args.command_parsers[args.command].error("unrecognized arguments: %s" % " ".join(unknown))
    if hasattr(args, "verbose") or hasattr(args, "quiet"):
        args.log_handler = _setup_logging(getattr(args, "verbose", 0), getattr(args, "quiet", False))
    if args.command == "failures":
        return _query(args)
    if getattr(args, "handler", None) is not None:
        return args.handler(args)
    return _run(args)
