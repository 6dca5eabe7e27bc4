from __future__ import annotations

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils._timeparse import iso, parse_time


@pytest.mark.parametrize("raw,expected", [
    (None, None), ("", None), (1764082800, 1764082800.0), ("1764082800.5", 1764082800.5),
    ("2025-11-25T15:00:00Z", 1764082800.0), ("2025-11-25T16:00:00+01:00", 1764082800.0),
    ("2025-11-25 15:00:00", 1764082800.0),
])
def test_parse_time(raw, expected):
    assert parse_time(raw) == expected


@pytest.mark.parametrize("raw", ["yesterday", "2025-13-45", True, "15:00"])
def test_bad_time_names_the_option(raw):
    with pytest.raises(ValueError) as err:
        parse_time(raw, "kernel_log_since")
    assert "kernel_log_since" in str(err.value)


def test_iso_round_trip():
    assert parse_time(iso(1764082800.25)) == 1764082800.25
