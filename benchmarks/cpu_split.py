"""Benchmark aid: where the controller's CPU goes, per process, for the preflight against ``ansible -m ping``.

    .venv/bin/python benchmarks/cpu_split.py                 # 1 and 8 hosts, 3 runs each
    .venv/bin/python benchmarks/cpu_split.py --hosts 32 --repeat 5 --json out.json

A script, not a test (root: it brings up SSH test hosts as preflight_bench.py does, and runs
``perf record``). Each run is sampled with ``perf record -F 2000`` over the whole process tree on the
controller: the ansible/ansible-playbook process itself, the worker processes it forks for each task
and host, and the ssh clients. Samples are counted per process and each process is put in a bucket:

* main: the ansible-playbook (or ansible) process: parsing, plugin loading, results, callbacks;
* one bucket per task for the workers, by start time against the task start times the bench_timer
  callback records (benchmarks/callback_plugins): the plan, the node module (one worker per host),
  the report, the rest;
* ssh: the ssh clients (the connection's encryption and the module payload going out).

The hosts' own CPU (their sshd and Python) is not in this split: preflight_bench.py measures it.
Medians over ``--repeat`` runs, in milliseconds of CPU.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

from cluster import SshCluster  # noqa: E402
from cluster.playbook import bin_dir  # noqa: E402

RATE = 2000  # samples per second: one sample is 0.5 ms of CPU
SAMPLE = re.compile(r"^(\S.*?)\s+(\d+)\s+(\d+\.\d+):\s+\d+\s+cpu-clock")


def per_process(perf_data):
    """{pid: [comm, first time, samples]} from ``perf script``."""
    text = subprocess.run(["perf", "script", "-i", perf_data, "-F", "comm,pid,time,period,event"],
                          capture_output=True, text=True, check=False).stdout
    procs = {}
    for line in text.splitlines():
        match = SAMPLE.match(line.strip())
        if not match:
            continue
        comm, pid, when = match.group(1), int(match.group(2)), float(match.group(3))
        entry = procs.setdefault(pid, [comm, when, 0])
        entry[2] += 1
    return procs


def bucket_of(start, tasks):
    """The task a worker that started at ``start`` (perf clock, seconds) belongs to."""
    name = "module" if not tasks else "before the first task"
    for task_name, task_start in tasks:
        if start >= task_start:
            name = task_name
    return name


def split(perf_data, timer, offset):
    procs = per_process(perf_data)
    main_pid = min(procs, key=lambda pid: procs[pid][1])
    tasks = [(t["name"].split(" : ")[-1].split(" (")[0], t["start"] + offset) for t in timer["tasks"]]
    buckets = collections.Counter()
    for pid, (comm, first, samples) in procs.items():
        if pid == main_pid:
            buckets["main"] += samples
        elif comm == "ssh":
            buckets["ssh"] += samples
        else:
            buckets["workers: " + bucket_of(first, tasks)] += samples
    return dict((name, samples * 1000.0 / RATE) for name, samples in buckets.items())


def run(cluster, argv, work, name):
    cluster.close_connections()
    time.sleep(0.3)
    timer = os.path.join(work, name + ".timer.json")
    open(timer, "w").close()  # the timer callback writes only to a file that exists
    data = os.path.join(work, name + ".perf")
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="bench_timer,gpuops.preflight.summary", GPUOPS_BENCH_TIMER_OUT=timer)
    # perf's clock and time.time() differ by a constant: bracket the run to find it
    wall0, mono0 = time.time(), time.clock_gettime(time.CLOCK_MONOTONIC)
    proc = subprocess.run(["perf", "record", "-q", "-k", "CLOCK_MONOTONIC", "-F", str(RATE), "-o", data, "--"] + argv, cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit("%s failed (rc %s):\n%s" % (name, proc.returncode, (proc.stdout + proc.stderr)[-3000:]))
    try:
        with open(timer) as handle:
            doc = json.load(handle)
    except ValueError:  # ad-hoc ansible runs no playbook callbacks: its one task is the module
        doc = {"tasks": []}
    return split(data, doc, mono0 - wall0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="1,8")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if not shutil.which("perf"):
        raise SystemExit("perf is not installed (Debian: apt-get install linux-perf)")
    counts = [int(n) for n in args.hosts.split(",")]
    work = tempfile.mkdtemp(prefix="cpu-split-")
    cluster = SshCluster.up(max(counts), gpus=12)
    results = {}
    try:
        for n in counts:
            inventory = cluster.write_inventory(path=os.path.join(cluster.root, "inventory-%d.yml" % n),
                                                hosts=[h.name for h in cluster.hosts[:n]])
            runs = {"ping": [], "preflight": []}
            for _attempt in range(args.repeat + 1):  # the first run of each warms the AnsiballZ cache: dropped
                runs["ping"].append(run(cluster, [os.path.join(bin_dir(), "ansible"), "rigs", "-i", inventory,
                                                  "-m", "ping"], work, "ping"))
                summaries = tempfile.mkdtemp(dir=work)
                runs["preflight"].append(run(cluster, [os.path.join(bin_dir(), "ansible-playbook"), "-i", inventory,
                                                       os.path.join(REPO, "playbooks", "preflight.yml"), "-e", "step=3",
                                                       "-e", "preflight_summary_dir=" + summaries], work, "preflight"))
            results[n] = {}
            for kind, samples in runs.items():
                names = sorted(set(name for one in samples[1:] for name in one))
                results[n][kind] = dict((name, round(statistics.median(one.get(name, 0.0) for one in samples[1:])))
                                        for name in names)
            for kind in ("ping", "preflight"):
                print("%d host(s), %s: total %d ms of controller CPU" % (n, kind, sum(results[n][kind].values())))
                for name, ms in sorted(results[n][kind].items(), key=lambda item: -item[1]):
                    print("    %6d ms  %s" % (ms, name))
    finally:
        cluster.down()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"hosts": results, "loadavg": os.getloadavg()}, handle, indent=1)


if __name__ == "__main__":
    main()
