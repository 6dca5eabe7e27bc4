"""``gpuops-preflight gate --instance NAME``: the model-serving readiness gate (systemd ExecStartPre).

Runs, on this host, the checks the instance needs: the agent -> model map, the model store, the
orchestrator, the preload of every model, MPS and the bus when required. One verdict line per
check; the summary document with --json. Every setting is a flag or, as systemd drop-ins prefer,
an environment variable; a flag wins over the environment. docs/SERVING_GATE.md.

Exit codes: 0 ready; 1 not ready (a model failed or is not ready within the timeout, the
orchestrator does not answer, a model is missing from the store); 2 bad input (an unreadable or
invalid map, a bad flag or variable) or the gate cannot run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from . import say

EXIT_NOT_READY, EXIT_BAD_INPUT = 1, 2


class _Stopped(BaseException):
    """SIGTERM while the gate runs: systemd's TimeoutStartSec= reached, or the unit stopped (a BaseException:
    no ``except Exception`` of the checks may take it for their own failure)."""


def _stop(signum: int, _frame: object) -> None:
    raise _Stopped(signal.Signals(signum).name)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("gate", help="readiness gate for a model-serving agent (systemd ExecStartPre)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instance", required=True, help="the service instance being gated (e.g. crawler)")
    parser.add_argument("--url", help="the orchestrator (env GPU_ORCHESTRATOR_URL, default http://127.0.0.1:8014)")
    parser.add_argument("--model-map", help="the agent -> model map, a JSON file (env AGENT_MODEL_MAP)")
    parser.add_argument("--store-root", help="the model store's root folder (env MODEL_STORE_ROOT)")
    parser.add_argument("--base-model-dir",
                        help="relative map paths start here, under the store root (env BASE_MODEL_DIR; default the store root)")
    parser.add_argument("--strict-model-store", metavar="0|1", dest="strict",
                        help="1: every model must already be in the store (env STRICT_MODEL_STORE, default 1)")
    parser.add_argument("--timeout", metavar="S",
                        help="the gate's whole wall-clock budget in seconds (env GATE_TIMEOUT, default 300)")
    parser.add_argument("--require-mps", action="store_const", const=True,
                        help="MPS must work (env REQUIRE_MPS, default 0)")
    parser.add_argument("--require-bus", metavar="URL", dest="bus_url",
                        help="the bus at URL must answer (env REQUIRE_BUS=1 with BUS_URL)")
    parser.add_argument("--refresh", action="store_const", const=True,
                        help="preload with refresh: the orchestrator reloads every model (env PRELOAD_REFRESH)")
    parser.add_argument("--service-user", help="whose permissions the store is checked with (default: this "
                                               "process's user; under sudo, the user who ran sudo)")
    parser.add_argument("--cache-dir", help="where summaries are kept (env GATE_CACHE_DIR, default "
                                            "~/.cache/gpuops-preflight/gate)")
    parser.add_argument("--json", action="store_true", help="print the summary document (JSON) instead")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from .. import gate

    flags = {name: getattr(args, name, None) for name in gate.KNOBS}
    flags["instance"] = args.instance

    def progress(line: str) -> None:
        say("gate: preload: %s" % line, stream=sys.stderr)  # the orchestrator's text: printable

    said = []  # the verdict lines, once out

    def show(lines: list[str]) -> None:
        say(*lines)
        said.extend(lines)

    # systemd ends a gate that outlives TimeoutStartSec= with SIGTERM: say so in the journal, rather than nothing
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        settings = gate.settings_from(flags, os.environ)
        # the verdict is printed before the summary is written (a hung file system must not keep it unsaid)
        outcome = gate.run_gate(settings, progress=progress, show=None if args.json else show)
    except _Stopped as exc:
        when = "while writing its summary, after its verdict" if said else "before its verdict"
        say("gpuops-preflight gate: stopped by %s %s (systemd's TimeoutStartSec= reached, or the unit was stopped): "
            "instance %s must not start (exit %d)" % (exc, when, args.instance, EXIT_NOT_READY), stream=sys.stderr)
        return EXIT_NOT_READY
    except (gate.GateInputError, ValueError) as exc:
        say("gpuops-preflight gate: %s" % exc, stream=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # the gate could not run: say so in one line, never a traceback
        say("gpuops-preflight gate: the gate could not run: %s: %s" % (type(exc).__name__, exc), stream=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.json:
        print(json.dumps(outcome.summary, indent=2, sort_keys=True, default=str))
    return outcome.exit_code
