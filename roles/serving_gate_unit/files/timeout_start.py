# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A unit's start timeout in seconds, as systemd will apply it once this role's drop-in is in place.

    timeout_start.py --unit agent@crawler.service --ignore 50-gpuops-serving-gate.conf
    timeout_start.py --span "1min 30s"

Prints one JSON object: {"seconds": float, or null for no timeout, "text": the setting, "source":
where it comes from}; on a problem {"error": "..."} (exit 0 either way: the role words the verdict).

``--unit``: the unit's own TimeoutStartSec= (or TimeoutSec=), read from its fragment and drop-ins in
the order ``systemctl show`` lists them, leaving out this role's own drop-in (whose earlier
TimeoutStartSec= is being replaced), else the manager's DefaultTimeoutStartSec (no timeout for
Type=oneshot). ``systemctl show`` itself would report the old drop-in's value. ``--span``: a time
span as systemd reads it (systemd.time(7): "90", "90s", "1min 30s", "2h", "infinity"), the value the
role's drop-in sets; with ``--unit`` too, a drop-in of the unit that sorts after the role's overrides it
(where systemd cannot be asked, the span alone is the answer).
Standard library only; runs on the managed host's python3.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

UNITS = {
    "us": 1e-6, "usec": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "msec": 1e-3,
    "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0, "w": 604800.0, "week": 604800.0, "weeks": 604800.0,
    "M": 2629800.0, "month": 2629800.0, "months": 2629800.0, "y": 31557600.0, "year": 31557600.0,
    "years": 31557600.0,
}
# Seconds systemctl show may take: a manager that does not answer is an error, never a hung task.
SHOW_TIMEOUT = 30
_PART = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z\u00b5\u03bc]*)")


def span(text):
    """Seconds (float), or None for no timeout ("infinity", or any span of 0: "0", "0s", "0min", as
    systemd's parse_sec_fix_0 reads TimeoutStartSec=); ValueError for anything else."""
    text = str(text).strip()
    if text == "infinity":
        return None
    if not text:
        raise ValueError("not a systemd time span: %r" % text)
    total, pos = 0.0, 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if not match or match.end() == pos or match.group(2) not in UNITS:
            raise ValueError("not a systemd time span: %r" % text)
        total += float(match.group(1)) * UNITS[match.group(2)]
        pos = match.end()
        while pos < len(text) and text[pos] == " ":
            pos += 1
    return total or None


def show(*args):
    try:
        done = subprocess.run(["systemctl", "show"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, check=False, timeout=SHOW_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise OSError("systemctl show %s: no answer within %s s (is systemd answering?)"
                      % (" ".join(args), SHOW_TIMEOUT)) from None
    if done.returncode != 0:
        raise OSError("systemctl show %s: %s" % (" ".join(args), (done.stderr or done.stdout).strip()))
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def assignments(path):
    """(key, value) of the [Service] section of a unit file, in order (continuation lines joined)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    text = re.sub(r"\\\n", " ", text)
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Service" and "=" in line:
            key, value = line.split("=", 1)
            yield key.strip(), value.strip()


def unit_timeout(unit, ignore, own_span=None):
    """``own_span``: the TimeoutStartSec= this role's drop-in will set (None: it sets none). systemd applies the
    drop-ins in the order of their file names, whatever their folder: one that sorts after the role's
    (``override.conf`` from ``systemctl edit``) overrides it, and its value is the one that counts."""
    props = show(unit, "--property=FragmentPath,DropInPaths,Type")
    fragment = props.get("FragmentPath", "")
    own = os.path.join(os.sep, "%s.d" % unit, ignore)
    value, source = None, None
    placed = own_span is None
    for path in [fragment] + props.get("DropInPaths", "").split():
        is_own = bool(path) and path.endswith(own)
        if not placed and path != fragment and (is_own or os.path.basename(path) > ignore):
            value, source, placed = own_span, "serving_gate_unit_timeout_start_sec", True
        if not path or is_own or not os.path.isfile(path):
            continue
        for key, text in assignments(path):
            if key in ("TimeoutStartSec", "TimeoutSec"):
                value, source = (text or None), path   # an empty assignment resets to the default
    if not placed:
        value, source = own_span, "serving_gate_unit_timeout_start_sec"
    if value is None:
        if props.get("Type") == "oneshot":
            return {"seconds": None, "text": "infinity", "source": "Type=oneshot"}
        value = show("--property=DefaultTimeoutStartUSec").get("DefaultTimeoutStartUSec", "90s")
        source = "DefaultTimeoutStartSec"
    return {"seconds": span(value), "text": value, "source": source}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unit")
    parser.add_argument("--ignore", default="")
    parser.add_argument("--span")
    args = parser.parse_args(argv)
    try:
        if args.span is not None:
            out = {"seconds": span(args.span), "text": args.span, "source": "serving_gate_unit_timeout_start_sec"}
            try:  # a drop-in that sorts after the role's may set another value: that one counts
                out = unit_timeout(args.unit, args.ignore, args.span) if args.unit else out
            except OSError:
                pass  # no systemd to ask (a container, a chroot): the role's own drop-in is all there is
        else:
            out = unit_timeout(args.unit, args.ignore)
    except (OSError, ValueError) as exc:
        out = {"error": str(exc)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
