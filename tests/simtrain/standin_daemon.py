"""simtrain stand-in training daemon (tests only, never installed by the product).

Copied to ``<host>/core/training_daemon.py`` and started as a real child process. It writes its PID
to ``<base>/.daemon.pid`` (atomically) and then, every ``--interval`` seconds, the status file
``<base>/status/training_status.json`` (atomically): ``current_step`` (counting up from
``--start-step``), ``updated_at`` (UTC, ISO 8601 without an offset, as ``datetime.utcnow()`` writes
it), ``phase`` and ``total_steps``. ``--hang`` writes the status once and then never again (a stuck
daemon); with ``--stale-s N`` that one status is stamped N seconds in the past (a daemon that hung that
long ago). ``--warmup-s N`` waits N seconds (loading a model) before it writes anything. SIGTERM ends
it cleanly and removes the PID file, as a well-behaved daemon does.
"""

import argparse
import datetime
import json
import os
import signal
import sys
import time


def write_atomic(path, text):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--start-step", type=int, default=0)
    parser.add_argument("--total-steps", type=int, default=100000)
    parser.add_argument("--phase", default="train")
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--stale-s", type=float, default=0.0)
    parser.add_argument("--warmup-s", type=float, default=0.0)
    args = parser.parse_args()
    pid_file = os.path.join(args.base, ".daemon.pid")
    status_file = os.path.join(args.base, "status", "training_status.json")

    def stop(signum, frame):
        try:
            os.unlink(pid_file)
        except OSError:
            pass
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    time.sleep(args.warmup_s)
    write_atomic(pid_file, "%d\n" % os.getpid())
    step = args.start_step
    while True:
        status = {"current_step": step, "total_steps": args.total_steps, "phase": args.phase,
                  "updated_at": (datetime.datetime.utcnow()
                                 - datetime.timedelta(seconds=args.stale_s if args.hang else 0)).isoformat()}
        write_atomic(status_file, json.dumps(status) + "\n")
        if args.hang:
            while True:
                time.sleep(3600)
        time.sleep(args.interval)
        step += 1


if __name__ == "__main__":
    main()
