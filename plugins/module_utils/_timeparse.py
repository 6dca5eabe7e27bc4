# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: one way to read a point in time from an operator or a summary."""

from __future__ import annotations

import datetime
import re

_NUMBER = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")


def parse_time(value, option="since"):
    """Epoch seconds (number or digits) or ISO 8601 -> epoch float; None stays None.

    An ISO time without a zone is taken as UTC (summaries are written in UTC). Raises ValueError
    naming the option and the value otherwise.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("%s must be epoch seconds or an ISO 8601 time, got %r" % (option, value))
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if _NUMBER.match(text):
        return float(text)
    iso = text.replace("Z", "+00:00").replace("z", "+00:00")
    if " " in iso and "T" not in iso:
        iso = iso.replace(" ", "T", 1)
    try:
        moment = datetime.datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError("%s must be epoch seconds or an ISO 8601 time (e.g. 2026-11-25T15:00:00Z), got %r"
                         % (option, value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def iso(epoch):
    """Epoch seconds -> ISO 8601 in UTC with microseconds, as summaries write it."""
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat()
