"""Benchmark: ``history.scan`` + ``history.analyse`` (what ``gpuops-preflight history`` does) on N summary files.

Writes N summary files (default 10,000) into a temporary folder, copies of real summaries from
tests/report/fixtures/summaries (two 12-GPU rigs, one lost GPU on an excluded slot; every 7th run
an SMU failure; every 50th file corrupt), then measures, each REPEATS times:

* cold: the first scan, no index (every file read and parsed), then the analysis;
* warm: a second scan with the index (only stat() of each file), then the analysis;
* one new file: the index plus the one file written since.

    .venv/bin/python benchmarks/history_bench.py                   # 10,000 files, 3 repeats
    .venv/bin/python benchmarks/history_bench.py --files 2000 --json results/history.json

Prints a table and the machine; --json writes every measurement. Timings are wall-clock
(time.perf_counter); the page cache is warm after the folder is written, as it is on a controller
that wrote its own summaries.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path[:0] = [os.path.join(ROOT, "src"), os.path.join(ROOT, "tests")]

from _machine import machine  # noqa: E402
from gpuops_preflight import history  # noqa: E402
from report.series import fixture, write_run  # noqa: E402


def build(folder: str, count: int) -> int:
    """``count`` summary files an hour apart; returns their total size in bytes."""
    demo, smu = fixture("demo"), fixture("smu_failure")
    smu["hosts"]["rig-6600b"] = demo["hosts"]["rig-6600b"]  # both rigs in every run
    start = time.time() - count * 3600.0
    path = pathlib.Path(folder)
    for number in range(count):
        if number % 50 == 49:
            (path / ("summary_step3_19700101T000000.%06dZ.json" % number)).write_text('{"schema": "gpuops.pre')
            continue
        write_run(path, smu if number % 7 == 6 else demo, start + number * 3600.0)
    return sum(entry.stat().st_size for entry in os.scandir(folder))


def timed(function):
    begin = time.perf_counter()
    value = function()
    return time.perf_counter() - begin, value


def one_round(folder: str, cache: str) -> dict:
    if os.path.exists(cache):
        os.remove(cache)
    cold_scan, found = timed(lambda: history.scan(folder, cache_path=cache))
    cold_analyse, doc = timed(lambda: history.analyse(found))
    warm_scan, again = timed(lambda: history.scan(folder, cache_path=cache))
    warm_analyse = timed(lambda: history.analyse(again))[0]
    assert again.read == 0 and again.cached == found.read, (again.read, again.cached)
    newest = max((r for r in found.records), key=lambda r: r["finished"])
    write_run(pathlib.Path(folder), fixture("smu_failure"), newest["finished"] + 3600.0)
    new_scan, third = timed(lambda: history.scan(folder, cache_path=cache))
    assert third.read == 1
    os.remove(os.path.join(folder, sorted(os.listdir(folder))[-1]))  # back to the same folder
    return {"cold_scan_s": cold_scan, "cold_analyse_s": cold_analyse, "warm_scan_s": warm_scan,
            "warm_analyse_s": warm_analyse, "one_new_file_scan_s": new_scan, "runs": doc["runs"],
            "skipped": doc["files"]["skipped"], "index_bytes": os.path.getsize(cache),
            "suggestions": len(doc["suggestions"])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write every measurement here")
    args = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="gpuops-history-bench-")
    try:
        folder = os.path.join(work, "summaries")
        os.mkdir(folder)
        build_s, size = timed(lambda: build(folder, args.files))
        rounds = [one_round(folder, os.path.join(work, "index.json")) for _round in range(args.repeats)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"files": args.files, "bytes": size, "build_s": build_s, "rounds": rounds, "machine": machine()}
    print("%d summary files, %.1f MiB (written in %.1f s); %d runs, %d skipped, index %.1f MiB"
          % (args.files, size / 1048576.0, build_s, rounds[0]["runs"], rounds[0]["skipped"],
             rounds[0]["index_bytes"] / 1048576.0))
    print("%-34s %10s %10s" % ("median of %d (s)" % args.repeats, "scan", "analyse"))
    for label, scan_key, analyse_key in (("cold (no index: every file parsed)", "cold_scan_s", "cold_analyse_s"),
                                         ("warm (index: stat only)", "warm_scan_s", "warm_analyse_s"),
                                         ("index + one new file", "one_new_file_scan_s", None)):
        scan_s = statistics.median(r[scan_key] for r in rounds)
        analyse_s = statistics.median(r[analyse_key] for r in rounds) if analyse_key else float("nan")
        print("%-34s %10.3f %10.3f" % (label, scan_s, analyse_s))
    print("machine: %(cpus)s x %(cpu)s, Python %(python)s, %(system)s, load %(load_average)s" % result["machine"])
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
