"""``gpuops-preflight study show|import NAME``: the persistent Optuna study of step 1 (docs/OPTUNA.md).

show    the study's direction, trials by state, best trial and waiting trials
import  copy the trials of the old window_opt_<unix time> studies into it (once)

Exit 0 when done; 2 when Optuna is missing, the storage is down or locked, or there is no such study.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import json_text, say

EXIT_OK, EXIT_NOT_RUN = 0, 2


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("study", help="show the persistent Optuna study, or import old studies into it",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("show", "import"))
    parser.add_argument("name", help="the study's name")
    parser.add_argument("--storage", help="Optuna storage URL (default: the SQLite file, $GPUOPS_PREFLIGHT_STUDY_DB)")
    parser.add_argument("--from-storage", help="import: where the old studies are (default: --storage)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds any wait on the storage may take")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run)


def _params(params: dict) -> str:
    return ", ".join("%s=%s" % (k, params[k]) for k in sorted(params)) or "no parameters"


def _show_lines(info: dict) -> list[str]:
    states = ", ".join("%s %d" % (state, n) for state, n in sorted(info["trials"].items()))
    lines = ["study %s in %s: %s, %d trial(s)%s" % (info["study"], info["storage"], info["direction"], info["total"],
                                                    " (%s)" % states if states else "")]
    best = info["best"]
    lines.append("best: trial %d, value %s: %s" % (best["number"], best["value"], _params(best["params"]))
                 if best else "best: none yet (no completed trial)")
    for trial in info["waiting"]:
        origin = " (warm start: the best of trial %s)" % trial["warm_start"] if trial["warm_start"] is not None else ""
        lines.append("waiting: trial %d%s: %s" % (trial["number"], origin, _params(trial["params"])))
    if info["legacy_trials"]:
        lines.append("imported from old studies: %d trial(s)" % info["legacy_trials"])
    return lines


def _import_lines(report: dict) -> list[str]:
    done = ", ".join("%s %d" % (old, n) for old, n in report["imported"].items()) or "no old study found"
    lines = ["imported into %s: %s" % (report["study"], done),
             "already imported: %d; never finished (not copied): %d; other search space (not copied): %d"
             % (report["already"], report["unfinished"], report["incompatible"])]
    lines.extend("skipped %s: %s" % item for item in sorted(report["skipped"].items()))
    return lines


def run(args: argparse.Namespace) -> int:
    from .. import studies
    try:
        _quiet_optuna()
        if args.action == "show":
            result: Any = studies.describe_study(args.name, storage=args.storage, timeout=args.timeout)
            lines = _show_lines(result)
        else:
            result = studies.import_legacy_studies(args.name, storage=args.storage, source_storage=args.from_storage,
                                                   timeout=args.timeout)
            lines = _import_lines(result)
    except studies.StudyError as exc:
        say("gpuops-preflight study: %s" % exc, stream=sys.stderr)
        return EXIT_NOT_RUN
    # names, parameters and attributes come from the database: said (printable), or strict JSON
    if args.json:
        print(json_text(result))
    else:
        say(*lines)
    return EXIT_OK


def _quiet_optuna() -> None:
    """Optuna logs every study it creates or loads at INFO on stderr: only its warnings here."""
    try:
        import optuna
    except ImportError:
        return  # studies says so, with the way to install it
    optuna.logging.set_verbosity(optuna.logging.WARNING)
