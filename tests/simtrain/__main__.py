"""python -m simtrain list | build --scenario NAME [--scenario NAME ...] --out DIR [--no-daemon] [--inventory FILE]
[--python PATH] | destroy DIR (tests and demo only)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys

from .scenarios import SCENARIOS, names, write_inventory


def _destroy(root):
    """Stop the daemon of every host under ``root`` (by its PID file) and remove the folder."""
    for dirpath, dirnames, filenames in os.walk(root):
        if ".daemon.pid" in filenames:
            try:
                with open(os.path.join(dirpath, ".daemon.pid")) as handle:
                    pid = int(handle.read().split()[0])
                with open("/proc/%d/cmdline" % pid, "rb") as handle:
                    if b"training_daemon.py" in handle.read():
                        os.killpg(pid, signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                pass
    shutil.rmtree(root, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m simtrain")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list")
    build = sub.add_parser("build")
    build.add_argument("--scenario", required=True, choices=names(), action="append")
    build.add_argument("--out", required=True)
    build.add_argument("--no-daemon", action="store_true")
    build.add_argument("--inventory", help="also write an inventory of the hosts (group training_hosts) here")
    build.add_argument("--python", help="the hosts' ansible_python_interpreter (default: this Python)")
    destroy = sub.add_parser("destroy")
    destroy.add_argument("folder")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name in names():
            print("%-30s %s" % (name, SCENARIOS[name].about))
    elif args.command == "build":
        os.makedirs(args.out, exist_ok=True)
        os.chmod(args.out, 0o755)
        hosts = {}
        for name in args.scenario:
            scenario = SCENARIOS[name]
            if args.no_daemon:
                scenario = scenario.replace(daemon=False)
            hosts[name] = scenario.build(args.out)
            print(hosts[name].base)  # the daemon keeps running: 'destroy' stops it
        if args.inventory:
            write_inventory(args.inventory, hosts, python=args.python)
    else:
        _destroy(args.folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
