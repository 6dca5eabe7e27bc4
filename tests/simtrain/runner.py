"""Run the training-health family on a simulated host through the product's own host runner (tests only).

``run_family(host, ...)`` is what ``node_training_health`` does on a host, without Ansible: the
family's options as the module would receive them (``host.params``), validated by the family, then
``_host_runner.run`` with the package's ``LocalModule`` (what ``training-health --local`` runs with: check
mode, warnings, commands; the GPU probe calls the rig's nvidia-smi stand-in). ``run_checks`` keeps the check results.
"""

from __future__ import annotations

from gpuops_preflight.collection import LocalModule

from ansible_collections.gpuops.preflight.plugins.module_utils import _host_runner
from ansible_collections.gpuops.preflight.plugins.module_utils import _training_health as th


def run_family(host, checks=None, check_mode=False, now=None, **options):
    """The module result of one training-health run on ``host`` (a TrainHost); ValueError for bad options."""
    params = host.params(**options)
    if checks is not None:
        params["checks"] = list(checks)
    problems = th.validate(params)
    if problems:
        raise ValueError("; ".join(problems))
    return _host_runner.run(th.FAMILY, LocalModule(check_mode=check_mode), params, now=now)


def run_checks(host, names=None, check_mode=False, **options):
    """{check: result} of the checks ``names`` (default: every host check of the family)."""
    result = run_family(host, names, check_mode=check_mode, **options)
    wanted = names or th.FAMILY.host_checks
    return dict((name, result["checks"][name]) for name in wanted)


def statuses(results):
    return dict((name, res["status"]) for name, res in results.items())
