from __future__ import annotations

import time

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils._timeparse import iso, parse_time

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
