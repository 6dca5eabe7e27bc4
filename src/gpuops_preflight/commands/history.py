"""``gpuops-preflight history``: how often each GPU finding came back over the summary files.

Exit codes: 0 (the history was read, whatever it says), 2 bad input (an unreadable summary
folder, an unknown --kind, a bad --since, --gpu, --runs or threshold).
"""

from __future__ import annotations

import argparse
import json
import sys

from . import say

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def positive(value: str) -> int:
    """A whole number of runs, at least 1 (argparse exits 2 with this wording otherwise)."""
    if not value.strip().isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError("must be a whole number of runs, at least 1, got %r" % value)
    return int(value)


def add_summary_options(parser: argparse.ArgumentParser) -> None:
    """The options every reader of the summary files shares (history, report)."""
    from ..history import DEFAULT_SUMMARY_DIR

    parser.add_argument("--summary-dir", default=DEFAULT_SUMMARY_DIR,
                        help="the folder of summary files (default: %(default)s, the preflight's)")
    parser.add_argument("--kind", default="preflight",
                        help="which family's runs: preflight (default), cleanup, training_health or serving_gate")
    parser.add_argument("--no-cache", action="store_true",
                        help="read every file again, without the history index cache")
    parser.add_argument("--cache-file", help="the history index cache (default: under $XDG_CACHE_HOME)")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ..history import DEFAULT_EXCLUDE_AFTER, DEFAULT_WATCHLIST_AFTER, DEFAULT_WINDOW

    parser = subparsers.add_parser(
        "history", help="per GPU, how often each finding came back in the last runs (summary files)",
        description="Reads the summary files and tells, per GPU, how often each finding came back in the "
                    "last runs that checked its host, with suggestions for gpu_watchlist and excluded_gpus.")
    add_summary_options(parser)
    parser.add_argument("--host", help="only this host (a shell pattern such as 'rig-66*' matches several)")
    parser.add_argument("--gpu", help="only this GPU: its index (3) or PCI address (0000:22:00.0)")
    parser.add_argument("--since", help="only runs since: epoch seconds, ISO 8601, or a span ago (30m, 24h, 7d)")
    parser.add_argument("--runs", type=positive, default=DEFAULT_WINDOW,
                        help="how many of each host's last runs to count (default %(default)s)")
    parser.add_argument("--watchlist-after", type=positive, default=DEFAULT_WATCHLIST_AFTER, metavar="N",
                        help="suggest gpu_watchlist for a GPU with findings in N runs (default %(default)s)")
    parser.add_argument("--exclude-after", type=positive, default=DEFAULT_EXCLUDE_AFTER, metavar="N",
                        help="suggest excluded_gpus for a GPU with hard findings in N runs (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the history document (JSON)")
    parser.set_defaults(handler=run)


def fail(message: str) -> int:
    print("gpuops-preflight: %s" % message, file=sys.stderr)
    return EXIT_BAD_INPUT


def run(args: argparse.Namespace, now: float | None = None) -> int:
    import time

    from .. import history

    now = time.time() if now is None else now
    try:
        history.family(args.kind)  # an unknown kind is refused before the folder is read
        since = history.parse_since(args.since, now)
        gpu = history.parse_gpu(args.gpu)
        found = history.scan(args.summary_dir, cache_path=args.cache_file, use_cache=not args.no_cache, now=now)
        doc = history.analyse(found, kind=args.kind, host=args.host, gpu=gpu, since=since, window=args.runs,
                              watch_after=args.watchlist_after, exclude_after=args.exclude_after, now=now)
    except (OSError, ValueError) as exc:
        return fail(str(exc))
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        say(*history.render_lines(doc))
    return EXIT_OK
