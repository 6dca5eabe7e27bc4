"""The node action (plugins/plugin_utils/_node_action.py): when node_training_health runs the checks from the host
tool, and when it ships the module; the request it sends and how it reads the answer.

The action plugin is controller code: importing it flips ``ansible.module_utils._internal.is_controller`` for the
whole process (module tests would then lose their warnings), so it is imported inside a fixture that puts the flag
back (as tests/unit/plugins/action/test_preflight_plan_argspecs.py does).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from ansible_collections.gpuops.preflight.plugins.plugin_utils import _host_bundle

TOOL = "/usr/local/bin/gpuops-preflight-local"
ARGS = {"training_base_dir": "~/train", "host_tool": TOOL, "checks": ["daemon"]}


@pytest.fixture(autouse=True)
def controller():
    """The action's modules, imported with the controller flag put back afterwards."""
    from ansible.module_utils import _internal

    before = _internal.is_controller
    from ansible_collections.gpuops.preflight.plugins.action import node_training_health
    from ansible_collections.gpuops.preflight.plugins.plugin_utils import _node_action

    PLUGINS.update(ActionModule=node_training_health.ActionModule, node_action=_node_action)
    yield
    _internal.is_controller = before


PLUGINS = {}


def action(rc=0, stdout="", stderr="", pipelining=True, become=None, check_mode=False):
    """The action with its connection and the command it runs faked; ``sent``: the requests it sent."""
    action_module = PLUGINS["ActionModule"]
    act = action_module.__new__(action_module)
    act._task = SimpleNamespace(check_mode=check_mode)
    act._connection = SimpleNamespace(has_pipelining=pipelining, become=become)
    act.sent = []

    def low_level(cmd, sudoable=True, in_data=None):
        act.sent.append((cmd, sudoable, json.loads(in_data)))
        return {"rc": rc, "stdout": stdout, "stderr": stderr}

    act._low_level_execute_command = low_level
    return act


def answer(**fields):
    return json.dumps(dict(gpuops_node_run=1, **fields))


def test_a_result_from_the_host_tool_is_the_result():
    act = action(stdout="a line some login script printed\n" + answer(ran=True, result={"checks": {}, "changed": False}))
    assert act.from_host_tool(dict(ARGS)) == ({"checks": {}, "changed": False}, None)
    [(cmd, sudoable, request)] = act.sent
    assert (cmd, sudoable) == ("%s node-run" % TOOL, True)
    assert (request["protocol"], request["kind"], request["check_mode"]) == (1, "training_health", False)
    assert request["sources_digest"] == _host_bundle.sources_digest() and len(request["sources_digest"]) == 64
    params = request["params"]
    assert params["training_base_dir"] == "~/train"   # expanded on the host, with its home
    assert params["min_free_gb"] == 50.0 and params["checks"] == ["daemon"]   # the module's defaults, validated


def test_check_mode_reaches_the_host_tool():
    act = action(stdout=answer(ran=True, result={}), check_mode=True)
    act.from_host_tool(dict(ARGS))
    assert act.sent[0][2]["check_mode"] is True


@pytest.mark.parametrize("args, fake", [
    (dict(ARGS, host_tool=""), {}),                                       # switched off
    (dict(ARGS), {"pipelining": False}),                                  # a connection that cannot feed stdin
    (dict(ARGS), {"become": SimpleNamespace(pipelining=False)}),          # a become method that cannot either
    (dict(ARGS, min_free_gb="lots"), {}),                                 # options the module refuses, in its words
    (dict(ARGS, training_base_dir="/srv/\0train"), {}),                   # text no path can hold: the same
])
def test_the_module_is_shipped_without_asking_the_host(args, fake):
    act = action(**fake)
    assert act.from_host_tool(args) == (None, None)
    assert act.sent == []


@pytest.mark.parametrize("rc, stdout, stderr, why", [
    (127, "", "sh: 1: /usr/local/bin/gpuops-preflight-local: not found", None),     # not installed: nothing to say
    (126, "", "sh: 1: /usr/local/bin/gpuops-preflight-local: Permission denied", None),
    (3, answer(ran=False, why="the bundle holds other code (digest 1, the controller's 2)"), "",
     "the host tool %s did not run the checks: the bundle holds other code (digest 1, the controller's 2)" % TOOL),
    (2, "", "gpuops-preflight-local: cannot run: no installed bundle at /opt/gpuops-preflight/lib (reinstall it)\n",
     "the host tool %s cannot run the checks (exit 2: gpuops-preflight-local: cannot run: no installed bundle at "
     "/opt/gpuops-preflight/lib (reinstall it))" % TOOL),
    (2, "", "usage: gpuops-preflight [-h]\ngpuops-preflight: error: argument command: invalid choice: 'node-run'\n",
     "the host tool %s cannot run the checks (exit 2: gpuops-preflight: error: argument command: invalid choice: "
     "'node-run')" % TOOL),   # a version from before node-run
])
def test_a_host_tool_that_ran_nothing_ships_the_module(rc, stdout, stderr, why):
    assert action(rc=rc, stdout=stdout, stderr=stderr).from_host_tool(dict(ARGS)) == (None, why)


@pytest.mark.parametrize("rc, stdout, stderr, said", [
    (139, "", "Segmentation fault\n", "ended without an answer (exit 139): Segmentation fault"),
    (0, "{not json", "", "ended without an answer (exit 0): {not json"),
    (-9, "", "", "ended without an answer (exit -9): no output"),
    (0, json.dumps({"gpuops_node_run": 1, "ran": True, "result": "not a result"}), "",
     'ended without an answer (exit 0): {"gpuops_node_run": 1, "ran": true, "result": "not a result"}'),
])
def test_a_host_tool_that_started_and_gave_no_answer_is_a_failed_run(rc, stdout, stderr, said):
    result, why = action(rc=rc, stdout=stdout, stderr=stderr).from_host_tool(dict(ARGS))
    assert why is None and result["failed"] is True and said in result["msg"], result


def test_path_options_are_checked_as_text_on_the_controller():
    spec = PLUGINS["node_action"].controller_spec(
        {"a": {"type": "path"}, "b": {"type": "list", "elements": "path"}, "c": {"type": "int"}})
    assert spec == {"a": {"type": "str"}, "b": {"type": "list", "elements": "str"}, "c": {"type": "int"}}
