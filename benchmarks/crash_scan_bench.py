"""Benchmark: the crash-log scanner's classification, on real logs and on lines made to make its patterns backtrack.

    .venv/bin/python benchmarks/crash_scan_bench.py
    .venv/bin/python benchmarks/crash_scan_bench.py --repeat 7 --json benchmarks/results/crash-scan.json

A script, not a test (the test suite asserts outcomes, never durations). It times ``_crash_log.classify``:

* real: every line of the real crash and healthy logs of tests/fixtures/training/crash-logs, repeated to
  1000 lines (what one log's scan reads by default);
* adversarial: 1000 lines of 4 KiB built from what the patterns repeat (runs of spaces after "exit code",
  colons, "NCCL WARN", "Error", "loss" in a run of word characters, ".cu" and "Assertion"), the worst a log
  line can cost.

Prints the median seconds per 1000 lines of each, and the machine. A pattern that backtracks shows as
seconds, not milliseconds, on the adversarial set.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, ".collections"))

from _machine import machine  # noqa: E402
from ansible_collections.gpuops.preflight.plugins.module_utils import _crash_log  # noqa: E402

FIXTURES = os.path.join(REPO, "tests", "fixtures", "training", "crash-logs")
ADVERSARIAL = ["exit code" + " " * 4090, "exit status " + " " * 4080 + "x", ": " * 2048, "loss" + " " * 4090,
               "killed by signal" + " " * 4080, "NCCL WARN " * 409, "Error " * 682, "at line 1 in file " * 227,
               # runs of word characters around "loss", and ".cu ... Assertion" without "failed": 75 ms and 700 ms a
               # line before those patterns' repeats were bounded (test_crash_log asserts these lines give nothing)
               "loss" * 1024, "xloss_" * 680, "a.cu:1 Assertion " * 240]


def real_lines(count=1000):
    lines = []
    for path in sorted(glob.glob(os.path.join(FIXTURES, "*.txt"))):
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines.extend(line.rstrip("\n") for line in handle)
    if not lines:
        raise SystemExit("no crash logs under %s" % FIXTURES)
    return (lines * (count // len(lines) + 1))[:count]


def seconds(lines):
    start = time.perf_counter()
    previous = ""
    for line in lines:
        _crash_log.classify(line, previous)
        previous = line
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", help="write every measurement here")
    args = parser.parse_args()
    sets = {"real": real_lines(), "adversarial": (ADVERSARIAL * 125)[:1000]}
    runs = dict((name, [seconds(lines) for _round in range(args.repeat)]) for name, lines in sets.items())
    result = {"machine": machine(), "repeat": args.repeat,
              "median_s_per_1000_lines": dict((name, round(statistics.median(v), 4)) for name, v in runs.items()),
              "runs": runs}
    for name, value in result["median_s_per_1000_lines"].items():
        print("%-12s %8.4f s per 1000 lines" % (name, value))
    print("machine: %s" % json.dumps(result["machine"]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
