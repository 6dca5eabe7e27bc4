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

_EPOCH = re.compile(r"^@?\d+(?:\.\d+)?$")
_ISO = re.compile(r"^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d{1,9}))?)?)?"
                  r"\s*(Z|[+-]\d\d(?::?\d\d)?)?$", re.IGNORECASE)


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
    try:
        datetime.datetime(year, month, day, hour, minute, second)  # rejects Feb 30, hour 25
    except ValueError:
        return None
    fields = (year, month, day, hour, minute, second, 0, 0, -1)
    zone = match.group(8)
    if zone is None and not naive_utc:
        base = time.mktime(fields)
    else:
        base = calendar.timegm(fields)
        if zone is not None and zone.upper() != "Z":
            digits = zone[1:].replace(":", "")
            offset = int(digits[:2]) * 3600 + int(digits[2:4] or 0) * 60
            base -= offset if zone[0] == "+" else -offset
    return base + (float("0." + match.group(7)) if match.group(7) else 0.0)


def file_stamp(epoch):
    """UTC time for file names, sortable as text: 20261125T150212.000001Z (one clock reading)."""
    seconds, micros = divmod(int(round(epoch * 1000000)), 1000000)
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds)) + ".%06dZ" % micros


def iso(epoch):
    """Epoch seconds -> ISO 8601 in UTC with microseconds, as summaries write it."""
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat()
