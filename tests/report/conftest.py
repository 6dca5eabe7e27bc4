"""Fixtures of the history and HTML report tests (summary folders: series.py)."""

from __future__ import annotations

import pytest

from report.series import SMU_EVERY_FOURTH, write_series


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """The history index goes to the test's own folder, never to the user's ~/.cache."""
    cache = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


@pytest.fixture
def summary_dir(tmp_path):
    folder = tmp_path / "summaries"
    folder.mkdir()
    return folder


@pytest.fixture
def smu_series(summary_dir):
    epochs = write_series(summary_dir, SMU_EVERY_FOURTH)
    return summary_dir, epochs
