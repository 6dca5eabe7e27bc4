from __future__ import annotations

import time

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils._kernel_time import yearless_epoch
from ansible_collections.gpuops.preflight.plugins.module_utils._timeparse import (
    iso, local_epoch, parse_time, utc_epoch, zone_offset)

T = 1767225600.0  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize("value,expected", [
    (None, None), ("", None), (T, T), (int(T), T), ("1767225600", T), ("1767225600.5", T + 0.5),
    ("@1767225600", T), ("2026-01-01T00:00:00Z", T), ("2026-01-01T01:00:00+01:00", T),
    ("2026-01-01T00:00:00.250+0000", T + 0.25), ("2026-01-01T00:00:00,5Z", T + 0.5), ("2026-01-01T00:00Z", T),
    ("2025-12-31T19:00:00-05:00", T),
    ("2026-01-01", time.mktime((2026, 1, 1, 0, 0, 0, 0, 0, -1))),          # no zone: local time
    ("2026-01-01 00:00:00", time.mktime((2026, 1, 1, 0, 0, 0, 0, 0, -1))),
])
def test_parse_time(value, expected):
    assert parse_time(value) == expected


@pytest.mark.parametrize("value", ["yesterday", "2026-01-01T00:00:00 garbage", "-5", "1e9", "nan", True, -1,
                                   float("nan"), "2026-02-30T25:00:00Z", "2026-13-45", "15:00"])
def test_bad_time_names_the_option_and_value(value):
    with pytest.raises(ValueError) as err:
        parse_time(value, "kernel_log_since")
    assert "kernel_log_since" in str(err.value) and repr(value) in str(err.value)


def test_iso_round_trip():
    assert parse_time(iso(1764082800.25)) == 1764082800.25


def test_calendar_fields_to_epoch_is_one_rule_for_every_reader():
    assert utc_epoch(2026, 1, 1) == T and utc_epoch(2026, 1, 1, 1, 0, 0, zone_offset("+01:00")) == T
    assert zone_offset("Z") == 0 and zone_offset("-0500") == -18000 and zone_offset("+02") == 7200
    assert local_epoch(2026, 1, 1) == time.mktime((2026, 1, 1, 0, 0, 0, 0, 0, -1))
    assert utc_epoch(2026, 12, 31, 23, 59, 60) == T + 365 * 86400  # a leap second is the next second
    for impossible in ((2026, 2, 29), (2026, 2, 30), (2026, 4, 31), (2026, 13, 1), (2026, 1, 1, 25)):
        assert local_epoch(*impossible) is None and utc_epoch(*impossible) is None


def test_a_stamp_without_a_year_is_this_year_or_the_last():
    now = time.mktime((2025, 1, 10, 12, 0, 0, 0, 0, -1))
    assert yearless_epoch(1, 9, 8, 0, 0, now) == time.mktime((2025, 1, 9, 8, 0, 0, 0, 0, -1))
    assert yearless_epoch(12, 31, 23, 0, 0, now) == time.mktime((2024, 12, 31, 23, 0, 0, 0, 0, -1))
    # 2025 has no February 29: a syslog line of that day is from 2024
    assert yearless_epoch(2, 29, 6, 0, 0, now) == time.mktime((2024, 2, 29, 6, 0, 0, 0, 0, -1))
    assert yearless_epoch(2, 30, 6, 0, 0, now) is None and yearless_epoch(None, 1, 0, 0, 0, now) is None
