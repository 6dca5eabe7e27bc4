"""node_training_health: one module run on a simulated training host (tests/simtrain), check mode and diff, and
bad input refused with a message naming it. The playbook around it: tests/e2e/test_training_health.py."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpuops.preflight.plugins.module_utils import _training_health
from ansible_collections.gpuops.preflight.plugins.modules import node_training_health
from simtrain import TrainHost, scratch_dir


def run(capsys, args, check_mode=False, diff=False):
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        node_training_health.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture
def host():
    parent = scratch_dir()
    made = TrainHost.build(parent, "train-1")
    made.start_daemon()
    yield made
    made.destroy()
    shutil.rmtree(parent, ignore_errors=True)


def options(host, **extra):
    """The module's options as the role passes them for this host (its inventory variables, no prefix)."""
    args = dict((k, v) for k, v in host.host_vars(prefix="").items())
    args.update(extra)
    return args


def test_a_healthy_host_passes_every_check_in_one_run(capsys, host):
    rc, result = run(capsys, options(host))
    assert rc == 0 and result["changed"] is False
    assert dict((n, r["status"]) for n, r in result["checks"].items()) == dict(
        (n, "ok") for n in _training_health.FAMILY.host_checks)
    assert result["usable_gpus"] == [0] and result["fix"] is None and "diff" not in result


def test_fix_in_check_mode_changes_nothing_and_shows_the_diff(capsys, host):
    os.rmdir(host.path("queue"))
    rc, result = run(capsys, options(host, fix=True), check_mode=True, diff=True)
    assert rc == 0 and result["changed"] is True and not os.path.exists(host.path("queue"))
    assert result["fix"]["changes"][0]["action"] == "mkdir" and result["checks"]["layout"]["status"] == "fail"
    assert result["diff"]["after"].startswith("mkdir %s: 0o750" % host.path("queue"))
    rc, result = run(capsys, options(host, fix=True))
    assert rc == 0 and result["changed"] is True and os.path.isdir(host.path("queue"))
    assert result["checks"]["layout"]["status"] == "ok"
    rc, result = run(capsys, options(host, fix=True))
    assert result["changed"] is False and result["fix"]["changes"] == []


@pytest.mark.parametrize("extra, fragment", [
    ({"training_base_dir": "relative"}, "training_base_dir must be an absolute path"),
    ({"stall_timeout": 0}, "stall_timeout must be a whole number of seconds of 1 or more, got 0"),
    ({"dir_mode": "0400"}, "dir_mode must let the owner read, write and enter"),
    ({"timeouts": {"gpu_health": 5}}, "timeouts: unknown check 'gpu_health'; valid checks are: daemon"),
    ({"crash_log_lines": 10 ** 6}, "crash_log_lines must be a whole number of lines from 1 to 100000, got 1000000"),
    ({"excluded_gpus": ["ten"]}, "excluded_gpus: 'ten' is not a GPU index"),
])
def test_bad_input_is_refused_with_every_problem_named(capsys, tmp_path, extra, fragment):
    args = {"training_base_dir": str(tmp_path)}
    args.update(extra)
    rc, result = run(capsys, args)
    assert rc == 1 and fragment in result["msg"], result["msg"]


def test_unknown_check_names_are_refused(capsys, tmp_path):
    rc, result = run(capsys, {"training_base_dir": str(tmp_path), "checks": ["gpu_health"]})
    assert rc == 1 and "gpu_health" in result["msg"]
