"""Unit tests of the summary callback's hooks: the run's family imported once, in the main process; the end of the run.

The callback is controller code: importing it flips ``ansible.module_utils._internal.is_controller``
for the whole process (see tests/unit/plugins/inventory/test_watcher_config.py), so it is imported
inside a fixture that puts the flag back.
"""

from __future__ import annotations

import pytest


class Task(object):
    """What the hook reads of a task: its action as written and its raw arguments."""

    def __init__(self, action, args):
        self.action = action
        self.args = args


@pytest.fixture
def callback():
    from ansible.module_utils import _internal

    before = _internal.is_controller
    from ansible_collections.gpuops.preflight.plugins.callback import summary

    yield summary.CallbackModule()
    _internal.is_controller = before


@pytest.fixture
def loaded(monkeypatch):
    """The families the process has loaded, starting from none."""
    from ansible_collections.gpuops.preflight.plugins.module_utils import _families

    monkeypatch.setattr(_families, "_LOADED", {})
    return _families._LOADED


@pytest.mark.parametrize("action", ["gpuops.preflight.preflight_plan", "preflight_plan"])
def test_the_plan_starting_imports_its_family(callback, loaded, action):
    callback.v2_playbook_on_task_start(Task(action, {"kind": "training_health", "skip": "{{ x }}"}), False)
    assert list(loaded) == ["training_health"]


@pytest.mark.parametrize("args", [{"step": 3}, None])
def test_a_plan_without_kind_is_the_preflight(callback, loaded, args):
    callback.v2_playbook_on_task_start(Task("gpuops.preflight.preflight_plan", args), False)
    assert list(loaded) == ["preflight"]


@pytest.mark.parametrize("task", [
    Task("ansible.builtin.debug", {"msg": "hello", "kind": "training_health"}),
    Task("gpuops.preflight.preflight_report", {"plan": "{{ plan }}"}),
    # a kind only known once templated, or not a kind at all: the plan itself reports it
    Task("gpuops.preflight.preflight_plan", {"kind": "{{ family_kind }}"}),
    Task("gpuops.preflight.preflight_plan", {"kind": ["training_health"]}),
    Task("gpuops.preflight.preflight_plan", {"kind": "no_such_family"}),
], ids=["other-module", "judge", "templated", "not-a-string", "unknown"])
def test_other_tasks_and_unknown_kinds_import_nothing(callback, loaded, task):
    callback.v2_playbook_on_task_start(task, False)
    assert loaded == {}


def test_the_end_of_the_run_freezes_the_collector_once_at_exit(callback, monkeypatch):
    import gc

    from ansible_collections.gpuops.preflight.plugins.callback import summary

    registered = []
    monkeypatch.setattr(summary.atexit, "register", registered.append)
    stats = type("Stats", (), {"custom": {}})()
    callback.v2_playbook_on_stats(stats)
    callback.v2_playbook_on_stats(stats)
    assert registered == [gc.freeze]


def test_the_playbook_start_loads_the_builtin_filters_without_error(callback):
    from ansible.plugins.loader import filter_loader

    callback.v2_playbook_on_start(None)
    assert filter_loader.get("default") is not None
