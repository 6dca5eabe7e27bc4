"""Run the training-health checks on a simulated host, in order, without deadlines (tests only).

The product's host runner (deadlines, unknown/skipped, GPU marking) is the lead's ``_host_runner``;
this is the smallest glue over ``_training_checks.COLLECTORS`` / ``CHECKS`` that lets the tests
assert what each check says about a simulated host. A collector that raises makes the checks that
need it ``unknown`` (the product's runner does the same), so a bug cannot look like a pass.
"""

from __future__ import annotations

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks
from ansible_collections.gpuops.preflight.plugins.module_utils import _training_checks as tc


def collect(ctx, names):
    """({collector: value}, {collector: exception}) for the collectors the checks ``names`` need."""
    needed = []
    for name in names:
        for collector in tc.CHECKS[name][1]:
            if collector not in needed:
                needed.append(collector)
    values, errors = {}, {}
    for collector in needed:
        try:
            values[collector] = tc.COLLECTORS[collector](ctx)
        except Exception as exc:  # reported as unknown, never hidden
            errors[collector] = exc
    return values, errors


def run_checks(ctx, names=None):
    """{check: _checks.result(...)} for the checks ``names`` (default: every check evaluated here)."""
    names = list(names or tc.CHECKS)
    values, errors = collect(ctx, names)
    results = {}
    for name in names:
        failed = [c for c in tc.CHECKS[name][1] if c in errors]
        if failed:
            results[name] = _checks.could_not_run(name, "collector %s failed: %r" % (failed[0], errors[failed[0]]),
                                                  "a bug: see the test output")
            continue
        problems, ok_text, details = tc.evaluate(name, values, ctx)
        results[name] = _checks.result(name, problems, None if problems else ok_text, details=details)
    return results


def statuses(results):
    return dict((name, res["status"]) for name, res in results.items())
