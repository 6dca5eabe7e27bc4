"""A stand-in training daemon for the systemd tests: it behaves like the team's training daemon as far as
the watchdog can see, and can be told to misbehave.

    stand_in_daemon.py --base-dir D [--hang] [--crash-after S] [--ignore-sigterm] [--step-interval S]

* writes its PID to D/.daemon.pid and, every --step-interval seconds, D/status/training_status.json
  (current_step, total_steps, phase, updated_at as datetime.utcnow().isoformat() writes it), atomically;
* appends "<pid> <epoch>" to D/starts.log at each start (the tests count starts);
* --hang: writes its status once, then never again (a stuck CUDA call, a deadlock);
* --crash-after S: exits 1 after S seconds;
* --ignore-sigterm: ignores SIGTERM (only SIGKILL ends it);
* SIGUSR1: hang from now on (a hang that starts mid-run).

The same flags can come from D/standin.json ({"hang": true, "crash_after": 0.5, "ignore_sigterm": true}),
read at each start, so that a test changes how the next start behaves without editing the unit.
Standard library only (it runs inside the test container).
"""

import argparse
import datetime
import json
import os
import signal
import sys
import time


def write_atomic(path, text):
    temp = "%s.%d.tmp" % (path, os.getpid())
    with open(temp, "w") as handle:
        handle.write(text)
    os.rename(temp, path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-dir", required=True)
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--crash-after", type=float)
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--step-interval", type=float, default=0.5)
    args = parser.parse_args()
    try:
        with open(os.path.join(args.base_dir, "standin.json")) as handle:
            flags = json.load(handle)
    except (OSError, ValueError):
        flags = {}
    hang = {"now": args.hang or bool(flags.get("hang"))}
    crash_after = args.crash_after if args.crash_after is not None else flags.get("crash_after")
    if args.ignore_sigterm or flags.get("ignore_sigterm"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, lambda *_: hang.update(now=True))

    started = time.time()
    with open(os.path.join(args.base_dir, "starts.log"), "a") as handle:
        handle.write("%d %.3f\n" % (os.getpid(), started))
    write_atomic(os.path.join(args.base_dir, ".daemon.pid"), "%d\n" % os.getpid())
    status = os.path.join(args.base_dir, "status", "training_status.json")
    step = 0
    wrote_once = False
    while True:
        if crash_after is not None and time.time() - started >= crash_after:
            sys.stderr.write("stand-in daemon: RuntimeError: CUDA error: an illegal memory access was encountered\n")
            return 1
        if not hang["now"] or not wrote_once:
            step += 1
            doc = {"current_step": step, "total_steps": 100000, "phase": "train",
                   # what datetime.utcnow().isoformat() writes: UTC without an offset
                   "updated_at": datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None).isoformat(),
                   "loss": 1.0 / step}
            write_atomic(status, json.dumps(doc))
            wrote_once = True
        time.sleep(args.step_interval)


if __name__ == "__main__":
    sys.exit(main())
