"""``gpuops-preflight report``: the HTML cluster report (one self-contained page) from the summary files.

Exit codes: 0 the page was written (also when there is no summary yet: the page says so),
2 bad input (an unreadable summary folder, an unknown --kind, a page path that cannot be written, a bad --runs).
"""

from __future__ import annotations

import argparse
import sys

from .history import EXIT_OK, add_summary_options, fail, positive


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="write the HTML cluster report (rigs x GPUs, last verdict, history strips)",
        description="Writes one self-contained HTML page (no network) from the summary files: the last "
                    "verdict, the last runs, and a rigs x GPUs grid coloured by health with each GPU's "
                    "problems and a strip of its health over the last runs.")
    add_summary_options(parser)
    parser.add_argument("--html", required=True, metavar="FILE", help="the page to write")
    parser.add_argument("--runs", type=positive, default=20, help="runs in the history strips (default %(default)s)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, now: float | None = None) -> int:
    import time

    from .. import history, htmlreport

    now = time.time() if now is None else now
    try:
        history.family(args.kind)  # an unknown kind is refused before the folder is read
        found = history.scan(args.summary_dir, cache_path=args.cache_file, use_cache=not args.no_cache, now=now)
        doc = history.analyse(found, kind=args.kind, window=args.runs, now=now)
        latest = history.latest_summary(found, args.kind)
        path = htmlreport.write(args.html, htmlreport.render(doc, latest))
    except (OSError, ValueError) as exc:
        return fail(str(exc))
    if latest is None:
        print("gpuops-preflight: no %s summary in %s yet; the page says so" % (args.kind, found.summary_dir),
              file=sys.stderr)
    print(path)
    return EXIT_OK
