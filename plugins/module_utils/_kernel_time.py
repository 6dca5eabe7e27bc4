# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the stamps in front of kernel log lines, and what time they mean.

``split_line(line)`` -> ``(stamp text or None, epoch or None, message body)``. The stamp and the
host/facility prefixes never stay in the body, even when the time cannot be read. Formats:

* ISO 8601: ``journalctl -o short-iso[-precise]`` (``2026-11-25T15:00:00.123456+0000 host kernel:``),
  ``dmesg --time-format iso`` (``2026-11-25T15:00:00,123456+00:00``), also after the
  ``kern  :err   :`` prefix of ``dmesg --decode``. No zone means local time.
* RFC 5424 syslog (rsyslog ``RSYSLOG_SyslogProtocol23Format``, syslog-ng ``syslog()``):
  ``<4>1 2026-11-25T15:00:00.123456+00:00 host kernel - - - <message>``: version 1, ISO stamp, then
  host, app, procid, msgid and structured data (``-`` or ``[...]``), all dropped.
* ``talosctl dmesg``: ``[<node>: ]<facility>: <priority>: [<RFC 3339 time>]: <message>`` (Talos
  machined formats each message as ``%s: %7s: [%s]: %s``).
* ``journalctl -o short-full``: ``Mon 2026-11-25 15:00:00 CET host kernel:`` (local time unless
  the zone is UTC/GMT or an offset).
* syslog / ``journalctl -o short[-precise]``: ``Feb 25 19:15:17[.123456] host kernel:``. The month
  name is the locale's (strftime ``%b``): English, German, French, Spanish, Italian, Portuguese,
  Dutch, Swedish, Czech, Polish, Russian names and the CJK ``5月``/``5월`` forms are dated; the
  year is the current one, or the one before when that would put the line more than two days in
  the future. An unknown month name is stripped but not dated. With the year in front
  (``2026 Nov 25 15:00:00 host kernel:``, syslog-ng ``$YEAR $DATE``) that year is used.
* ``dmesg -T``: ``[Mon Feb 25 19:15:17 2026]`` (strftime ``%a %b %e %H:%M:%S %Y`` in the locale,
  so ``[po úno 25 ...]`` or ``[水  2月 25 ...]``), local time.
* ``dmesg -e`` / ``--reltime``: ``[Feb25 19:15]``, ``[  +0.000012]``; ``dmesg --time-format delta``:
  ``[<    0.000012>]``: stripped, not dated. ``dmesg -d`` adds ``<    0.000012>`` (the time since the
  message before) to a monotonic or ``-T`` stamp: dropped.
* ``journalctl -o short-unix``: ``1764687600.123456 host kernel:``: epoch seconds.
* svlogd with socklog (Void Linux): ``2026-09-11T19:39:22.96925 kern.err: [13485.421102]``: the ISO stamp
  dates the line; the ``facility.priority:`` tag and the monotonic stamp after it are dropped.
* ``/dev/kmsg`` records as read (``cat /dev/kmsg``, tools that save them): ``6,1234,5678901,-;<message>``
  (priority, sequence, microseconds since the boot, flags): monotonic, like dmesg's.
* dmesg monotonic ``[ 1234.567890]`` (also ``[ 1234.5 <  0.000123>]`` of ``dmesg -d``): seconds
  since the boot, epoch = ``boot_time`` + value. A value larger than this boot's uptime cannot be
  from this boot and is not dated.
* ``<3>`` priority prefixes (``dmesg -r``) and printk caller ids (``[    T140]``, after any stamp
  or none) are dropped.
"""

from __future__ import annotations

import os
import re
import time

from ansible_collections.gpuops.preflight.plugins.module_utils._timeparse import local_epoch, parse_btime, utc_epoch, zone_offset

MAX_LINE_CHARS = 4096

_FACILITY = r"(?:kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|local[0-7])"
_PRIORITY = r"(?:emerg|alert|crit|err|warning|warn|notice|info|debug)"
# dmesg --decode ("kern  :err   : ") and Talos ("172.20.0.2: kern:    info: ").
_DECODE_PREFIX = re.compile(r"^(?:\S+:\s+)?" + _FACILITY + r"\s*:\s*" + _PRIORITY + r"\s*:\s*")
_PRIORITY_PREFIX = re.compile(r"^<\d{1,3}>")
# socklog's "facility.priority:" tag, after svlogd's ISO stamp (Void Linux: "2026-09-11T19:39:22.96925 kern.err: [...")
_FACILITY_TAG = re.compile(r"^" + _FACILITY + r"\." + _PRIORITY + r":\s*")
_ISO_TEXT = r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?(Z|[+-]\d\d(?::?\d\d)?)?"
_ISO = re.compile(r"^" + _ISO_TEXT + r"(?=\s|$)")
_BRACKET_ISO = re.compile(r"^\[" + _ISO_TEXT + r"\]:?(?=\s|$)")
_RFC5424_VERSION = re.compile(r"^1 (?=\d{4}-\d\d-\d\dT)")
# HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA, then the message (maybe behind a UTF-8 BOM).
_RFC5424_HEADER = re.compile(r"^\S+ \S+ \S+ \S+ (?:-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: \ufeff?|$)")
_FULL = re.compile(r"^[^\W\d_]{2,4}\.?,? (\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.\d{1,9})? "
                   r"([A-Za-z]{1,6}|[+-]\d{4}) +(\S+) +")
_DELTA = r"(?:\s*<\s*\d+\.\d+>)"   # dmesg -d: the time since the message before, after the stamp
_CTIME = re.compile(r"^\[([^\[\]]{1,40}?)\s+(\d{1,2}) (\d\d):(\d\d):(\d\d) (\d{4})" + _DELTA + r"?\]")
_SYSLOG = re.compile(r"^\s*(?:(\d{4}) +)?([^\W\d_]{2,9}\.?|\d{1,2}\s?[\u6708\uc6d4]) +(\d{1,2}) (\d\d):(\d\d):(\d\d)"
                     r"(?:\.\d{1,9})? +(\S+) +")
_UNIX = re.compile(r"^(\d{9,11}\.\d{1,9})(?=\s)")               # journalctl -o short-unix
_KMSG = re.compile(r"^\d{1,4},\d+,(\d{1,16}),[^;\s]*;")         # /dev/kmsg: prio,seq,usec,flags;
_RELTIME = re.compile(r"^\[(?:[^\W\d_]{2,9}\.?\d{1,2} \d\d:\d\d|\s*[+-]\d+\.\d+|" + _DELTA + r")\]")
_MONOTONIC = re.compile(r"^\[\s*(\d{1,10}\.\d{1,9})" + _DELTA + r"?\]")
_CALLER = re.compile(r"^\[\s*[TC]\d+\]\s*")            # printk caller id: [    T140]
_HOST_KERNEL = re.compile(r"^(?:\S+\s+)?kernel(?:\[\d+\])?:\s*")
_BARE_KERNEL = re.compile(r"^kernel(?:\[\d+\])?:\s+")        # a journal line pasted without its stamp
_CJK_MONTH = re.compile(r"(\d{1,2})\s?[\u6708\uc6d4]")    # 5月 (zh, ja), 5월 (ko)

# strftime %b in the locales rigs are run in (abbreviations, and the full names some use).
_MONTH_NAMES = (
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),        # en
    ("jan", "feb", "m\u00e4r", "apr", "mai", "jun", "jul", "aug", "sep", "okt", "nov", "dez"),    # de
    ("j\u00e4n", "", "mrz", "", "", "", "", "", "", "", "", ""),                                    # de-AT, old de
    ("janv", "f\u00e9vr", "mars", "avr", "mai", "juin", "juil", "ao\u00fbt", "sept", "oct", "nov", "d\u00e9c"),  # fr
    ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic"),         # es
    ("gen", "feb", "mar", "apr", "mag", "giu", "lug", "ago", "set", "ott", "nov", "dic"),         # it
    ("jan", "fev", "mar", "abr", "mai", "jun", "jul", "ago", "set", "out", "nov", "dez"),         # pt
    ("jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec"),         # nl
    ("jan", "feb", "mar", "apr", "maj", "jun", "jul", "aug", "sep", "okt", "nov", "dec"),         # sv, da
    ("led", "\u00fano", "b\u0159e", "dub", "kv\u011b", "\u010dvn", "\u010dvc", "srp", "z\u00e1\u0159",
     "\u0159\u00edj", "lis", "pro"),                                                               # cs
    ("sty", "lut", "mar", "kwi", "maj", "cze", "lip", "sie", "wrz", "pa\u017a", "lis", "gru"),    # pl
    ("\u044f\u043d\u0432", "\u0444\u0435\u0432", "\u043c\u0430\u0440", "\u0430\u043f\u0440",
     "\u043c\u0430\u044f", "\u0438\u044e\u043d", "\u0438\u044e\u043b", "\u0430\u0432\u0433",
     "\u0441\u0435\u043d", "\u043e\u043a\u0442", "\u043d\u043e\u044f", "\u0434\u0435\u043a"),      # ru
    ("", "", "", "", "\u043c\u0430\u0439", "", "", "", "", "", "", ""),                            # ru nominative
)
MONTHS = {}
for _names in _MONTH_NAMES:
    for _number, _name in enumerate(_names):
        if _name:
            MONTHS[_name] = _number + 1


def month_number(token):
    """1-12 for a month name of a known locale ('Feb', 'févr.', 'kvě', '5月'), else None."""
    found = _CJK_MONTH.search(token)
    if found:
        number = int(found.group(1))
        return number if 1 <= number <= 12 else None
    name = token.strip().rstrip(".,").lower()
    for candidate in (name, name[:4], name[:3]):
        if candidate in MONTHS:
            return MONTHS[candidate]
    return None


def to_text(raw):
    """Any line as a str without its line end, cut at MAX_LINE_CHARS (bytes decoded, errors replaced)."""
    if isinstance(raw, str):
        if len(raw) <= MAX_LINE_CHARS and not raw.endswith(("\n", "\r")):
            return raw  # the common case, kept cheap
    elif isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw).decode("utf-8", "replace")
    else:
        raw = "" if raw is None else str(raw)
    raw = raw.rstrip("\r\n")
    if len(raw) > MAX_LINE_CHARS:
        raw = raw[:MAX_LINE_CHARS]
    return raw


_ISO_CACHE = {}


def _iso_epoch(match):
    # Lines of one second share the conversion (a flood has thousands per second).
    key = match.string[match.start(1):match.end(6)] + (match.group(8) or "")
    base = _ISO_CACHE.get(key)
    if base is None:
        base = _iso_base(match)
        if base is None:
            return None
        if len(_ISO_CACHE) >= 4096:
            _ISO_CACHE.clear()
        _ISO_CACHE[key] = base
    return base + (float("0." + match.group(7)) if match.group(7) else 0.0)


def _iso_base(match):
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    zone = match.group(8)
    if zone is None:
        return local_epoch(year, month, day, hour, minute, second)
    return utc_epoch(year, month, day, hour, minute, second, zone_offset(zone))


def yearless_epoch(month, day, hour, minute, second, now):
    """Epoch of a local stamp without a year (syslog, glog): this year, or last year when that would put it
    more than 2 days ahead of ``now``; None for an unknown month or an impossible date."""
    if month is None:
        return None
    year = time.localtime(now).tm_year
    epoch = local_epoch(year, month, day, hour, minute, second)
    # syslog has no year: a December line read in January belongs to last year, and so does a
    # February 29 that this year does not have.
    if epoch is None or epoch > now + 2 * 86400:
        epoch = local_epoch(year - 1, month, day, hour, minute, second)
    return epoch


def _full_epoch(match):
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    zone = match.group(7)
    if zone.upper() in ("UTC", "GMT", "Z"):
        return utc_epoch(year, month, day, hour, minute, second)
    if zone[0] in "+-":
        return utc_epoch(year, month, day, hour, minute, second, zone_offset(zone))
    return local_epoch(year, month, day, hour, minute, second)


def _ctime_epoch(match):
    # "%a %b": the month is the last name (a weekday can look like a month: French "mar." is Tuesday).
    names = match.group(1)
    month = month_number(names) if _CJK_MONTH.search(names) else None
    for token in reversed(names.split()):
        if month:
            break
        month = month_number(token)
    if month is None:
        return None
    return local_epoch(int(match.group(6)), month, int(match.group(2)), int(match.group(3)),
                       int(match.group(4)), int(match.group(5)))


def split_line(line, boot_time=None, now=None):
    """Split a raw log line into (stamp text or None, epoch or None, message body).

    ``boot_time`` is a number, None (monotonic stamps then give no epoch), or a callable that
    returns one (asked only when a monotonic stamp is met). ``now`` (epoch, default the clock)
    dates syslog stamps, which have no year, and bounds monotonic ones.
    """
    # Leading blanks (a log pasted into an indented block) do not hide the stamp after them.
    text = to_text(line).lstrip()
    body = _PRIORITY_PREFIX.sub("", _DECODE_PREFIX.sub("", text, count=1), count=1)
    stamp, epoch = None, None
    rfc5424 = _RFC5424_VERSION.match(body)
    if rfc5424:
        body = body[rfc5424.end():]
    match = _ISO.match(body) or _BRACKET_ISO.match(body)
    if match:
        stamp, epoch = match.group(0).strip("[]:"), _iso_epoch(match)
        body = body[match.end():].lstrip()
        header = _RFC5424_HEADER.match(body) if rfc5424 else None
        body = body[header.end():] if header else _HOST_KERNEL.sub("", _FACILITY_TAG.sub("", body, count=1), count=1)
    elif body[:1] == "[":
        match = _CTIME.match(body)
        if match:
            stamp, epoch = body[1:match.end(6)], _ctime_epoch(match)
            body = body[match.end():].lstrip()
        else:
            match = _RELTIME.match(body)
            if match:
                stamp = match.group(0)[1:-1].strip()
                body = body[match.end():].lstrip()
    else:
        match = _FULL.match(body)
        if match:
            stamp, epoch = body[:match.end(7)], _full_epoch(match)
            body = _HOST_KERNEL.sub("", body[match.end():], count=1)
        else:
            match = _SYSLOG.match(body)
            if match:
                stamp = " ".join(part for part in (match.group(1), "%s %s %s:%s:%s" % match.group(2, 3, 4, 5, 6)) if part)
                epoch = _syslog_epoch(match, time.time() if now is None else now)
                body = _HOST_KERNEL.sub("", body[match.end():], count=1)
            else:
                match = _UNIX.match(body) or _KMSG.match(body)
                if match is None:
                    body = _BARE_KERNEL.sub("", body, count=1)
                elif match.re is _UNIX:
                    stamp, epoch = match.group(1), float(match.group(1))
                    body = _HOST_KERNEL.sub("", body[match.end():].lstrip(), count=1)
                else:
                    stamp = match.group(1)
                    epoch = _monotonic_epoch(int(match.group(1)) / 1e6, boot_time, now)
                    body = body[match.end():]
    # A monotonic stamp: on its own (dmesg) or inside a syslog line (then the wall clock wins).
    match = _MONOTONIC.match(body)
    if match:
        if stamp is None:
            stamp = match.group(1)
            epoch = _monotonic_epoch(float(match.group(1)), boot_time, now)
        body = body[match.end():].lstrip()
        body = _HOST_KERNEL.sub("", _CALLER.sub("", body, count=1), count=1)
    else:
        body = _CALLER.sub("", body.lstrip(), count=1)  # dmesg -T, --time-format iso: the caller after the stamp
    return stamp, epoch, body.strip()


def _syslog_epoch(match, now):
    month, numbers = month_number(match.group(2)), [int(match.group(i)) for i in range(3, 7)]
    if match.group(1) is None:
        return yearless_epoch(month, *numbers, now=now)
    return None if month is None else local_epoch(int(match.group(1)), month, *numbers)


def _monotonic_epoch(seconds, boot_time, now):
    base = boot_time() if callable(boot_time) else boot_time
    if base is None:
        return None
    epoch = base + seconds
    # Later than now: the line is from an earlier, longer boot (a saved file), not from this one.
    if epoch > (time.time() if now is None else now) + 60:
        return None
    return epoch


def read_boot_time(uptime_path="/proc/uptime", now=None, stat_path=None):
    """Epoch seconds of this boot, or None: ``btime`` of /proc/stat (``stat_path``, default: the ``stat`` beside
    ``uptime_path``), else now minus the first field of /proc/uptime. btime first: in a container LXCFS gives
    /proc/uptime the container's age, while the kernel's stamps (and process start times) count from the host's
    boot."""
    now = time.time() if now is None else now
    stat_path = stat_path or os.path.join(os.path.dirname(uptime_path), "stat")
    try:
        with open(stat_path, "rb") as handle:   # procfs: no FIFO to block on; its intr line can be long
            boot = parse_btime(handle.read(4 * 1024 * 1024).decode("utf-8", "replace"))
    except (IOError, OSError):
        boot = None
    if boot is not None and boot <= now:
        return boot
    try:
        with open(uptime_path) as handle:
            uptime = float(handle.read(64).split()[0])
    except (IOError, OSError, ValueError, IndexError):
        return None
    return now - uptime
