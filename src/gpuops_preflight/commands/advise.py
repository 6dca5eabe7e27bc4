"""``gpuops-preflight advise``: the trials and seeds the run history suggests for the next step-1 run.

Exit 0 with the suggestion; 2 when the history cannot be read or none is given.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import say

EXIT_OK, EXIT_NOT_RUN = 0, 2


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("advise", help="suggest trials and seeds for step 1 from the run history",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", help="the JSON-lines run history (default $GPUOPS_PREFLIGHT_RUN_HISTORY)")
    parser.add_argument("--json", action="store_true", help="print the suggestion as JSON")
    parser.add_argument("--schema", action="store_true",
                        help="print the JSON Schema of the adjustable parameters instead (no history needed)")
    parser.set_defaults(handler=run)


def _row(rec: dict) -> str:
    done = "?" if rec.get("completed_trials") is None else format(rec["completed_trials"], ",")
    found = "?" if rec.get("survivors") is None else format(rec["survivors"], ",")
    return "  %s %s: %s trials x %s seeds, %s completed, %s survivors (%s)" % (
        rec.get("time") or "undated", rec.get("study") or "-", format(rec["trials"], ","),
        format(rec["max_seeds"], ","), done, found, rec.get("outcome") or "no outcome")


def run(args: argparse.Namespace) -> int:
    from .. import advice
    try:
        if args.schema:
            print(json.dumps(advice.parameter_schema(), indent=2))
            return EXIT_OK
        history = advice.read_history(args.history)
        got = advice.suggest_parameters(history)
    except (OSError, ValueError) as exc:  # HistoryError is a ValueError
        print("gpuops-preflight advise: %s" % exc, file=sys.stderr)
        return EXIT_NOT_RUN
    summary = {k: history[k] for k in ("path", "exists", "corrupt", "corrupt_lines", "truncated")}
    summary["runs"] = len(history["records"])
    if args.json:
        print(json.dumps(dict(got, history=summary), indent=2, sort_keys=True, default=str))
        return EXIT_OK
    lines = ["suggested: %s trials x %s seeds (rule %s)" % (format(got["trials"], ","), format(got["max_seeds"], ","), got["rule"]),
             "reason: %s" % got["reason"]]
    if got["based_on"]:
        lines.append("based on:")
        lines.extend(_row(rec) for rec in got["based_on"])
    state = "%d run(s)" % summary["runs"] if summary["exists"] else "no runs recorded yet"
    if summary["truncated"]:
        state += ", only its newest %s bytes read" % format(advice.MAX_HISTORY_BYTES, ",")
    if summary["corrupt"]:
        state += ", %d corrupt line(s) skipped (lines %s)" % (
            summary["corrupt"], ", ".join(str(n) for n in summary["corrupt_lines"][:10]))
    lines.append("history: %s (%s)" % (summary["path"], state))
    say(*lines)
    return EXIT_OK
