"""``scripts/testcluster`` (``PYTHONPATH=tests python -m cluster``): SSH test hosts from the shell.

  up N [--dir D] [--gpus G]   bring up N simulated rigs as SSH hosts; prints the inventory path
                              (default D: /dev/shm/gpuops-testcluster). The hosts stay up until
                              `down`; an interrupted or failed `up` removes what it built.
  down [--dir D] [--all]      tear down the cluster in D, then anything stale: clusters whose
                              owning process died or whose folder is gone, and namespaces/veths
                              named gpct* that no live cluster claims (a crashed run's leftovers).
                              --all: every cluster on the machine, live or not.
  status [--dir D] [--json]   every cluster on the machine (or the one in D): hosts, addresses,
                              sshd, processes; and leftovers with our prefix.

Needs root, iproute2 and openssh-server (scripts/install-test-deps). Traffic stays on the
169.254.x.y/30 veth pairs this creates.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import hosts, netns


def _up(args):
    problem = hosts.environment_problem()
    if problem:
        print("testcluster: %s" % problem, file=sys.stderr)
        return 2
    root = os.path.abspath(args.dir)
    if os.path.exists(os.path.join(root, hosts.STATE_FILE)):
        print("testcluster: %s already holds a cluster; run: scripts/testcluster down --dir %s" % (root, root),
              file=sys.stderr)
        return 1
    guard = hosts.ExitGuard()
    guard.cluster_root = root
    try:
        cluster = hosts.SshCluster.up(args.count, root=root, gpus=args.gpus, persistent=True,
                                      mask_shell_rc=not args.keep_shell_rc)
    except hosts.ClusterError as exc:
        print("testcluster: up failed (nothing left behind): %s" % exc, file=sys.stderr)
        guard.disarm()
        return 1
    guard.disarm()
    if args.json:
        print(json.dumps({"dir": cluster.root, "inventory": cluster.inventory,
                          "hosts": [h.as_dict() for h in cluster.hosts]}, indent=2))
    else:
        for host in cluster.hosts:
            print("# %-8s %-16s ns %s" % (host.name, host.address, host.ns), file=sys.stderr)
        print(cluster.inventory)
    return 0


def _down(args):
    problems = []
    root = os.path.abspath(args.dir)
    try:
        if hosts.teardown_dir(root):
            print("removed cluster in %s" % root)
    except hosts.ClusterError as exc:
        problems.append(str(exc))
    removed = hosts.collect_stale(all_clusters=args.all)
    for cid in removed["clusters"]:
        print("removed stale cluster %s" % cid)
    for name in removed["namespaces"]:
        print("removed namespace %s" % name)
    for name in removed["links"]:
        print("removed link %s" % name)
    left_ns = [n for n in netns.netns_list() if netns.ours(n)]
    if args.all and left_ns:
        problems.append("namespaces still present: %s" % left_ns)
    for problem in problems:
        print("testcluster: %s" % problem, file=sys.stderr)
    return 1 if problems else 0


def _status(args):
    entries = netns.registry_entries()
    report = {"clusters": {}, "orphans": {}}
    claimed_ns, claimed_links = set(), set()
    for cid, entry in sorted(entries.items()):
        if args.dir and os.path.abspath(entry.get("dir") or "") != os.path.abspath(args.dir):
            continue
        claimed_ns.update(entry.get("namespaces") or [])
        claimed_links.update(entry.get("links") or [])
        info = {"dir": entry.get("dir"), "live": netns.entry_is_live(entry),
                "owner_pid": entry.get("owner_pid"), "hosts": {}}
        state = os.path.join(entry.get("dir") or "", hosts.STATE_FILE)
        if os.path.exists(state):
            cluster = hosts.SshCluster.load(entry["dir"])
            info["inventory"] = cluster.inventory
            info["hosts"] = cluster.status()
        report["clusters"][cid] = info
    if not args.dir:
        report["orphans"] = {
            "namespaces": [n for n in netns.netns_list() if netns.ours(n) and n not in claimed_ns],
            "links": [n for n in netns.link_names() if netns.ours(n) and n not in claimed_links],
        }
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    if not report["clusters"]:
        print("no test clusters")
    for cid, info in report["clusters"].items():
        print("cluster %s  %s  %s%s" % (cid, info["dir"], "live" if info["live"] else "STALE",
                                        "  inventory %s" % info["inventory"] if info.get("inventory") else ""))
        for name, host in sorted(info["hosts"].items()):
            print("  %-8s %-16s %-14s sshd %-7s %d process(es)  %s" % (
                name, host["address"], host["ns"], host["sshd_pid"] or "DOWN", host["processes"],
                "" if host["ns_exists"] else "NAMESPACE MISSING"))
    for kind, names in sorted(report.get("orphans", {}).items()):
        if names:
            print("orphan %s (scripts/testcluster down removes them): %s" % (kind, " ".join(names)))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="testcluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="bring up N SSH test hosts")
    up.add_argument("count", type=int, metavar="N")
    up.add_argument("--dir", default=hosts.DEFAULT_CLI_DIR)
    up.add_argument("--gpus", type=int, default=12, help="GPUs per simulated rig (default 12)")
    up.add_argument("--keep-shell-rc", action="store_true",
                    help="do not mask the login user's ~/.bashrc on the hosts")
    up.add_argument("--json", action="store_true")
    down = sub.add_parser("down", help="tear down (and remove stale leftovers)")
    down.add_argument("--dir", default=hosts.DEFAULT_CLI_DIR)
    down.add_argument("--all", action="store_true", help="every test cluster on this machine")
    status = sub.add_parser("status", help="what is up")
    status.add_argument("--dir")
    status.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 and args.command != "status":
        print("testcluster: needs root", file=sys.stderr)
        return 2
    return {"up": _up, "down": _down, "status": _status}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
