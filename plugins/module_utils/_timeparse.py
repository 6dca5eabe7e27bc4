# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: one way to read a point in time given by an operator or a summary.

Accepted: epoch seconds (``1767225600``, ``"1767225600.5"``, ``"@1767225600"``) and ISO 8601
(``2026-01-01T00:00:00Z``, ``2026-01-01T01:00:00+01:00``, ``...,250+0000``, ``2026-01-01 00:00``,
``2026-01-01``). A time without a zone is local time, as journalctl reads ``--since``; summaries
always write the zone. Written without datetime.fromisoformat, which is strict before Python 3.11.
"""

from __future__ import annotations

import calendar
import datetime
import math
import re
import time

# re.ASCII: \d would take the digits of every script ('\u0661\u0662' is 12 to int()), which no clock writes
_EPOCH = re.compile(r"^@?\d+(?:\.\d+)?$", re.ASCII)
_ISO = re.compile(r"^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d{1,9}))?)?)?"
                  r"\s*(Z|[+-]\d\d(?::?\d\d)?)?$", re.IGNORECASE | re.ASCII)


def _bad(option, value):
    return ValueError("%s: invalid time %r: expected epoch seconds (e.g. 1767225600) or an ISO 8601 time "
                      "(e.g. 2026-01-01T00:00:00Z)" % (option, value))


def parse_time(value, option="since", naive_utc=False):
    """Epoch seconds as a float, None for None or ''. Raises ValueError naming the option and the value.

    ``naive_utc``: an ISO time without a zone is UTC (as ``datetime.utcnow().isoformat()`` writes it),
    not local time.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise _bad(option, value)
    if isinstance(value, (int, float)):
        epoch = float(value)
    else:
        text = str(value).strip()
        if _EPOCH.match(text):
            epoch = float(text.lstrip("@"))
        else:
            epoch = _iso_epoch(text, naive_utc)
            if epoch is None:
                raise _bad(option, value)
    if math.isnan(epoch) or math.isinf(epoch) or epoch < 0:
        raise _bad(option, value)
    return epoch


def _iso_epoch(text, naive_utc=False):
    match = _ISO.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(match.group(i) or 0) for i in range(1, 7))
    zone = match.group(8)
    if zone is None and not naive_utc:
        base = local_epoch(year, month, day, hour, minute, second)
    else:
        base = utc_epoch(year, month, day, hour, minute, second, zone_offset(zone) if zone else 0)
    if base is None:
        return None
    return base + (float("0." + match.group(7)) if match.group(7) else 0.0)


# -- calendar fields to epoch seconds: the one place (operators' times, summaries, kernel and training logs)

def _possible(year, month, day, hour, minute, second):
    """A real date and time (no February 30, no hour 25); second 60 is a leap second."""
    try:
        datetime.datetime(year, month, day, hour, minute, min(second, 59))
    except (ValueError, OverflowError, TypeError):
        return False
    return second <= 60


def local_epoch(year, month, day, hour=0, minute=0, second=0):
    """Epoch seconds of a local wall-clock time, or None for an impossible one."""
    if not _possible(year, month, day, hour, minute, second):
        return None
    try:
        return time.mktime((year, month, day, hour, minute, second, 0, 0, -1))
    except (OverflowError, ValueError):
        return None


def utc_epoch(year, month, day, hour=0, minute=0, second=0, offset_s=0):
    """Epoch seconds of a time ``offset_s`` seconds east of UTC, or None for an impossible one."""
    if not _possible(year, month, day, hour, minute, second):
        return None
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - offset_s)


def zone_offset(zone):
    """Seconds east of UTC of 'Z', '+05:30', '-0500', '+02'."""
    if zone.upper() == "Z":
        return 0
    digits = zone[1:].replace(":", "")
    offset = int(digits[:2]) * 3600 + (int(digits[2:4]) * 60 if len(digits) >= 4 else 0)
    return offset if zone[0] == "+" else -offset


def file_stamp(epoch):
    """UTC time for file names, sortable as text: 20261125T150212.000001Z (one clock reading)."""
    seconds, micros = divmod(int(round(epoch * 1000000)), 1000000)
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds)) + ".%06dZ" % micros


def iso(epoch):
    """Epoch seconds -> ISO 8601 in UTC with microseconds, as summaries write it."""
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat()


def parse_btime(text):
    """``btime`` of /proc/stat text: epoch seconds of the host's boot, or None. (Here, not in _kernel_time, which
    the watchdog's stall check would otherwise import for this alone.)"""
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "btime" and re.match(r"^[0-9]+$", words[1]):
            return float(words[1])
    return None
