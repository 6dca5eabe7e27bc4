"""Benchmark: the preflight's wall time over 1, 2, 8 and 32 SSH hosts against the ping floor.

    sudo .venv/bin/python benchmarks/preflight_bench.py                 # 1,2,8,32 hosts, 5 repeats
    .venv/bin/python benchmarks/preflight_bench.py --hosts 8,32 --repeat 3 --json out.json
    .venv/bin/python benchmarks/preflight_bench.py --repo /path/to/scratch/copy   # try a change

A script, not a test: it never fails on a number. It brings up max(--hosts) SSH test hosts
(tests/cluster: one network namespace + sshd + 12-GPU simulated rig each), then for every host
count N, alternating, repeats
  * the floor:     ansible rigs -m ping  over the first N hosts (same inventory, same ansible.cfg)
  * the preflight: ansible-playbook playbooks/preflight.yml -e step=3  over the same N hosts
each from cold SSH connections (every ControlPersist master closed before each run: a preflight
runs once per pipeline step, long after the previous step's masters expired), and reports the
medians and preflight/floor. With --warm it also measures both with the masters left open.
Then ``rocm_gpu_facts`` alone on one 12-GPU rig (ansible -m gpuops.preflight.rocm_gpu_facts, with
its own reported elapsed), against the 1-host ping.

--profile prints, per host count, when each task of the median preflight started and when its
first and last host answered (a small callback in benchmarks/callback_plugins).

Everything runs as Ansible would for a user: ansible/ansible-playbook beside this interpreter,
the repository's ansible.cfg (or that of --repo), run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

from cluster import SshCluster, environment_problem  # noqa: E402
from cluster.playbook import bin_dir  # noqa: E402
import _machine  # noqa: E402
from _machine import command_output  # noqa: E402

STEP = 3


# ---------------------------------------------------------------- running


def run(argv, repo, env_extra=None, timeout=600):
    env = dict(os.environ)
    env.update({"ANSIBLE_CONFIG": os.path.join(repo, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
                "PATH": bin_dir() + os.pathsep + env.get("PATH", ""),
                "ANSIBLE_CALLBACK_PLUGINS": os.path.join(HERE, "callback_plugins"),
                "ANSIBLE_CALLBACKS_ENABLED": "bench_timer,gpuops.preflight.summary"})
    env.pop("ANSIBLE_INVENTORY", None)
    env.update(env_extra or {})
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc.cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, proc


def host_cpu(cluster):
    """CPU seconds used so far by every host's sshd and everything it started and reaped (sessions,
    shells, modules, tools): the listener's own plus its children's times. Exact once the
    ControlPersist sessions are closed (a live session is not reaped yet)."""
    total = 0
    for host in cluster.hosts:
        pid = host.sshd_pid()
        try:
            with open("/proc/%d/stat" % pid) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, TypeError):
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / float(os.sysconf("SC_CLK_TCK"))


COLLECTION_PARTS = ("ansible.cfg", "galaxy.yml", "meta", "playbooks", "plugins", "roles")


def snapshot(repo, dest, patch=None):
    """Copy the collection (what the playbooks run) to ``dest`` and link it as gpuops.preflight there,
    so that edits to the working tree during a run do not mix versions; apply ``patch`` (-p1)."""
    os.makedirs(dest)
    for part in COLLECTION_PARTS:
        src = os.path.join(repo, part)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(dest, part), ignore=shutil.ignore_patterns("__pycache__"))
        elif os.path.exists(src):
            shutil.copy2(src, os.path.join(dest, part))
    link_dir = os.path.join(dest, ".collections", "ansible_collections", "gpuops")
    os.makedirs(link_dir)
    os.symlink("../../..", os.path.join(link_dir, "preflight"))
    if patch:
        proc = subprocess.run(["patch", "-p1", "--forward", "--batch", "-i", os.path.abspath(patch)], cwd=dest,
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit("patch %s does not apply to %s:\n%s%s" % (patch, repo, proc.stdout, proc.stderr))
    return dest


def retried(func, *args):
    """One retry: a run that fails for a passing reason (the machine is shared) is not a result."""
    try:
        return func(*args)
    except RunFailed as exc:
        print("   (run failed, retrying once: %s)" % str(exc).splitlines()[0])
        return func(*args)


class RunFailed(Exception):
    pass


def _timer_path(cluster):
    """A fresh path for the timer callback to write (created empty, so no other run can claim it)."""
    handle, path = tempfile.mkstemp(prefix="timer-", dir=cluster.root)
    os.close(handle)
    return path


def ping(cluster, inventory, repo, count):
    timer = _timer_path(cluster)
    wall, proc = run([os.path.join(bin_dir(), "ansible"), "rigs", "-i", inventory, "-m", "ping"], repo,
                     {"GPUOPS_BENCH_TIMER_OUT": timer})
    ok = proc.returncode == 0 and proc.stdout.count('"ping": "pong"') == count
    if not ok:
        raise RunFailed("ping over %d hosts failed (rc %s):\n%s" % (count, proc.returncode, (proc.stdout + proc.stderr)[-3000:]))
    return wall, _timer(timer), proc.cpu_s


def preflight(cluster, inventory, repo, count):
    timer = _timer_path(cluster)
    summaries = tempfile.mkdtemp(prefix="bench-", dir=cluster.summary_dir)
    wall, proc = run([os.path.join(bin_dir(), "ansible-playbook"), "-i", inventory,
                      os.path.join(repo, "playbooks", "preflight.yml"), "-e", "step=%d" % STEP,
                      "-e", "preflight_summary_dir=%s" % summaries], repo, {"GPUOPS_BENCH_TIMER_OUT": timer})
    files = [f for f in os.listdir(summaries) if f.endswith(".json")]
    summary = json.load(open(os.path.join(summaries, files[0]))) if len(files) == 1 else None
    if proc.returncode != 0 or not summary or not summary["passed"] or summary["totals"]["hosts"] != count:
        raise RunFailed("preflight over %d hosts did not pass (rc %s):\n%s"
                        % (count, proc.returncode, (proc.stdout + proc.stderr)[-3000:]))
    shutil.rmtree(summaries, ignore_errors=True)
    return wall, _timer(timer), proc.cpu_s


def gpu_facts(cluster, repo):
    host = cluster.hosts[0]
    args = json.dumps({"rocm_smi": host.rig.rocm_smi, "sysfs_root": host.rig.sys_root})
    inventory = os.path.join(cluster.root, "inventory-1.yml")
    wall, proc = run([os.path.join(bin_dir(), "ansible"), host.name, "-i", inventory,
                      "-m", "gpuops.preflight.rocm_gpu_facts", "-a", args], repo,
                     {"GPUOPS_BENCH_TIMER_OUT": os.devnull})
    text = proc.stdout
    if proc.returncode != 0 or "=>" not in text:
        raise SystemExit("rocm_gpu_facts failed (rc %s):\n%s" % (proc.returncode, (text + proc.stderr)[-3000:]))
    facts = json.loads(text[text.index("=>") + 2:])["ansible_facts"]
    tool = facts.get("rocm_gpu_tool") or {}
    return wall, {"gpus": facts.get("rocm_gpu_count"), "tool_elapsed_s": tool.get("elapsed_s"),
                  "probe_elapsed_s": tool.get("probe_elapsed_s"), "outcome": tool.get("outcome")}


def _timer(path):
    try:
        with open(path) as handle:
            doc = json.load(handle)
    except (OSError, ValueError):
        return None
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    return doc


# ---------------------------------------------------------------- reporting


def machine():
    core = command_output([os.path.join(bin_dir(), "ansible"), "--version"]) or ""
    return _machine.machine(
        ansible_core=(re.search(r"core ([\d.]+)", core.replace("[", " ")) or [None, None])[1],
        remote_python=command_output(["/usr/bin/python3", "-c", "import platform; print(platform.python_version())"]),
        openssh=command_output(["ssh", "-V"], stream="stderr"))


def settings(repo):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(repo, "ansible.cfg"))
    proc = subprocess.run([os.path.join(bin_dir(), "ansible-config"), "dump", "--only-changed"], cwd=repo, env=env,
                          capture_output=True, text=True, check=False)
    keep = ("DEFAULT_FORKS", "DEFAULT_TIMEOUT", "DEFAULT_GATHERING", "ANSIBLE_PIPELINING", "CALLBACKS_ENABLED",
            "INTERPRETER_PYTHON", "HOST_KEY_CHECKING", "DEFAULT_STRATEGY")
    lines = [l for l in proc.stdout.splitlines() if l.split("(")[0].strip() in keep]
    text = open(os.path.join(repo, "ansible.cfg")).read()
    found = dict((key, re.search(r"^%s\s*=\s*(.*)$" % key, text, re.M)) for key in ("ssh_args", "pipelining"))
    return {"ansible_config": lines, "ssh_args": found["ssh_args"] and found["ssh_args"].group(1),
            "pipelining": found["pipelining"] and found["pipelining"].group(1)}


def breakdown(doc):
    """[(task, start, first answer, last answer, hosts)] relative to the callback's start."""
    if not doc:
        return []
    t0 = doc["start"]
    rows = []
    for task in doc["tasks"]:
        times = [v[0] for v in task["hosts"].values()]
        rows.append((task["name"], task["start"] - t0, (min(times) - t0) if times else None,
                     (max(times) - t0) if times else None, len(times)))
    rows.append(("(end of play)", doc["end"] - t0 if doc.get("end") else None, None, None, 0))
    return rows


def median_doc(pairs):
    """The timer document of the run whose wall time is the median."""
    ordered = sorted(pairs, key=lambda p: p[0])
    return ordered[len(ordered) // 2][1]


def fmt(seconds):
    return "-" if seconds is None else "%.2f" % seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", default="1,2,8,32", help="host counts (default 1,2,8,32)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement; the median is reported")
    parser.add_argument("--gpus", type=int, default=12, help="GPUs per simulated rig (default 12)")
    parser.add_argument("--repo", default=REPO, help="repository (collection root) whose playbooks and ansible.cfg to run")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=PATCH",
                        help="also run the preflight of the collection with PATCH applied (patch -p1; a candidate "
                             "change, e.g. benchmarks/variants/*.patch), interleaved with the unchanged one "
                             "against the same ping floor")
    parser.add_argument("--warm", action="store_true", help="also measure with ControlPersist masters left open")
    parser.add_argument("--profile", action="store_true", help="print the task breakdown of the median preflight")
    parser.add_argument("--json", help="write every measurement here")
    parser.add_argument("--skip-facts", action="store_true", help="do not time rocm_gpu_facts")
    args = parser.parse_args(argv)
    problem = environment_problem()
    if problem:
        raise SystemExit("benchmark needs SSH test hosts: %s (scripts/install-test-deps, run as root)" % problem)
    counts = sorted(set(int(n) for n in args.hosts.split(",")))
    source = os.path.abspath(args.repo)
    patches = dict((v.split("=", 1)[0], os.path.abspath(v.split("=", 1)[1])) for v in args.variant)
    work = tempfile.mkdtemp(prefix="gpct-bench-")
    try:
        return measure(args, counts, source, patches, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(args, counts, source, patches, work):
    repo = snapshot(source, os.path.join(work, "collection"))
    variants = dict((name, snapshot(source, os.path.join(work, name), patch)) for name, patch in patches.items())
    info = {"machine": machine(), "settings": settings(repo), "repo": source, "variants": patches,
            "repeat": args.repeat,
            "gpus_per_host": args.gpus, "loadavg_start": os.getloadavg(), "results": {}}
    print("machine: %s" % json.dumps(info["machine"]))
    print("settings: %s" % json.dumps(info["settings"]))
    started = time.monotonic()
    cluster = SshCluster.up(max(counts), gpus=args.gpus)
    print("%d SSH hosts up in %.1fs (%s)" % (len(cluster), time.monotonic() - started, cluster.root))
    try:
        inventories = {}
        for n in counts:
            inventories[n] = cluster.write_inventory(path=os.path.join(cluster.root, "inventory-%d.yml" % n),
                                                     hosts=[h.name for h in cluster.hosts[:n]])
        if 1 not in inventories:
            inventories[1] = cluster.write_inventory(path=os.path.join(cluster.root, "inventory-1.yml"),
                                                     hosts=[cluster.hosts[0].name])
        # Warm-up: first runs pay for Python's bytecode caches and the AnsiballZ cache.
        cluster.close_connections()
        ping(cluster, inventories[1], repo, 1)
        for where in [repo] + list(variants.values()):
            preflight(cluster, inventories[1], where, 1)
        modes = ["cold"] + (["warm"] if args.warm else [])
        for n in counts:
            for mode in modes:
                pings, flights, host_cpus = [], [], {"ping": [], "preflight": []}
                others = dict((name, []) for name in variants)
                other_cpus = dict((name, []) for name in variants)
                jobs = [("ping", ping, repo, pings, host_cpus["ping"]),
                        ("preflight", preflight, repo, flights, host_cpus["preflight"])]
                if mode == "cold":  # variants are compared on cold connections only
                    jobs += [(name, preflight, path, others[name], other_cpus[name]) for name, path in variants.items()]
                for _repeat in range(args.repeat):
                    for kind, func, where, bucket, cpus in jobs:
                        if mode == "cold":
                            cluster.close_connections()
                            time.sleep(0.3)
                            cpu0 = host_cpu(cluster)
                        bucket.append(retried(func, cluster, inventories[n], where, n))
                        if mode == "cold":
                            cluster.close_connections()
                            time.sleep(0.3)
                            cpus.append(host_cpu(cluster) - cpu0)
                floor = statistics.median(p[0] for p in pings)
                value = statistics.median(f[0] for f in flights)
                row = {"hosts": n, "mode": mode, "ping_s": [round(p[0], 3) for p in pings],
                       "preflight_s": [round(f[0], 3) for f in flights], "ping_median_s": round(floor, 3),
                       "preflight_median_s": round(value, 3), "ratio": round(value / floor, 3),
                       "ping_controller_cpu_s": round(statistics.median(p[2] for p in pings), 3),
                       "preflight_controller_cpu_s": round(statistics.median(f[2] for f in flights), 3),
                       "ping_hosts_cpu_s": round(statistics.median(host_cpus["ping"]), 3) if host_cpus["ping"] else None,
                       "preflight_hosts_cpu_s": (round(statistics.median(host_cpus["preflight"]), 3)
                                                 if host_cpus["preflight"] else None),
                       "preflight_breakdown": breakdown(median_doc(flights)),
                       "ping_breakdown": breakdown(median_doc(pings))}
                info["results"]["%d-%s" % (n, mode)] = row
                for name, runs in others.items():
                    if not runs:
                        continue
                    value_v = statistics.median(r[0] for r in runs)
                    info["results"]["%d-%s-%s" % (n, mode, name)] = {
                        "hosts": n, "mode": "%s, variant %s" % (mode, name), "ping_s": row["ping_s"],
                        "preflight_s": [round(r[0], 3) for r in runs], "ping_median_s": row["ping_median_s"],
                        "preflight_median_s": round(value_v, 3), "ratio": round(value_v / floor, 3),
                        "ping_controller_cpu_s": row["ping_controller_cpu_s"],
                        "preflight_controller_cpu_s": round(statistics.median(r[2] for r in runs), 3),
                        "ping_hosts_cpu_s": row["ping_hosts_cpu_s"],
                        "preflight_hosts_cpu_s": round(statistics.median(other_cpus[name]), 3),
                        "preflight_breakdown": breakdown(median_doc(runs)), "ping_breakdown": []}
                    print("%2d host(s) %s, variant %s: preflight %s s, ratio %.2f (runs %s); controller CPU %s s" % (
                        n, mode, name, fmt(value_v), value_v / floor, [round(r[0], 3) for r in runs],
                        fmt(statistics.median(r[2] for r in runs))))
                    if args.profile:
                        for tname, start, first, last, hosts in breakdown(median_doc(runs)):
                            print("      %6s  first %6s  last %6s  n=%-2d %s" % (
                                fmt(start), fmt(first), fmt(last), hosts, tname[:80]))
                print("%2d host(s) %s: ping %s s, preflight %s s, ratio %.2f   (ping runs %s; preflight runs %s)" % (
                    n, mode, fmt(floor), fmt(value), value / floor, row["ping_s"], row["preflight_s"]))
                print("      CPU s, controller: ping %s, preflight %s; hosts: ping %s, preflight %s" % (
                    fmt(row["ping_controller_cpu_s"]), fmt(row["preflight_controller_cpu_s"]),
                    fmt(row["ping_hosts_cpu_s"]), fmt(row["preflight_hosts_cpu_s"])))
                if args.profile:
                    for name, start, first, last, hosts in row["ping_breakdown"] + row["preflight_breakdown"]:
                        print("      %6s  first %6s  last %6s  n=%-2d %s" % (fmt(start), fmt(first), fmt(last), hosts, name[:80]))
        if not args.skip_facts:
            facts, floor1 = [], []
            for _repeat in range(args.repeat):
                cluster.close_connections()
                time.sleep(0.3)
                floor1.append(retried(ping, cluster, inventories[1], repo, 1)[0])
                cluster.close_connections()
                time.sleep(0.3)
                facts.append(gpu_facts(cluster, repo))
            wall = statistics.median(f[0] for f in facts)
            own = [f[1] for f in facts]
            row = {"wall_s": [round(f[0], 3) for f in facts], "wall_median_s": round(wall, 3),
                   "ping_1_host_median_s": round(statistics.median(floor1), 3),
                   "ratio": round(wall / statistics.median(floor1), 3),
                   "module_probe_elapsed_median_s": statistics.median(o["probe_elapsed_s"] for o in own),
                   "tool_elapsed_median_s": statistics.median(o["tool_elapsed_s"] for o in own),
                   "gpus": own[0]["gpus"], "outcome": own[0]["outcome"]}
            info["results"]["rocm_gpu_facts"] = row
            print("rocm_gpu_facts on one %d-GPU rig: %s s wall (1-host ping %s s, ratio %.2f); module's own probe %s s "
                  "(rocm-smi %s s)" % (row["gpus"], fmt(wall), fmt(row["ping_1_host_median_s"]), row["ratio"],
                                       row["module_probe_elapsed_median_s"], row["tool_elapsed_median_s"]))
    finally:
        cluster.down()
    info["loadavg_end"] = os.getloadavg()
    info["elapsed_s"] = round(time.monotonic() - started, 1)
    print("\n| hosts | mode | ping floor (s) | preflight (s) | preflight / floor | controller CPU s ping / preflight "
          "| hosts' CPU s ping / preflight |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for row in info["results"].values():
        if "hosts" in row:
            print("| %d | %s | %.2f | %.2f | **%.2f** | %s / %s | %s / %s |" % (
                row["hosts"], row["mode"], row["ping_median_s"], row["preflight_median_s"], row["ratio"],
                fmt(row["ping_controller_cpu_s"]), fmt(row["preflight_controller_cpu_s"]),
                fmt(row["ping_hosts_cpu_s"]), fmt(row["preflight_hosts_cpu_s"])))
    print("\nload average: start %s, end %s; total %.0fs" % (
        " ".join("%.2f" % x for x in info["loadavg_start"]), " ".join("%.2f" % x for x in info["loadavg_end"]),
        info["elapsed_s"]))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(info, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
