# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the one host-check runner every family of checks plugs into.

A family (``_checks.Family``) declares its checks (``CheckSpec``: name, severity, timeout, the
collectors it needs, its ``evaluate``) and its collectors (``Collector``: how to gather one piece
of evidence). ``run(family, module, params)`` does the rest, the same way for every family:

1. the enabled checks (``params['checks']``) and every host check's timeout (defaults from the
   registry, overridden by ``params['timeouts']``);
2. the collectors those checks need, concurrently, each under its own deadline (the longest
   timeout of the enabled checks that need it), in waves: a collector starts once those it comes
   ``after`` are done (the cleanup probes the GPUs after resetting their clocks; the GPU view is
   derived from the probe and the kernel log, which is read once for every check);
3. every enabled check evaluated from what was collected: a check whose collector failed or ran
   out of time is ``unknown`` and says which and why; a check that does not apply is ``skipped``
   with the reason; a check not enabled is ``skipped`` by the family's skip option;
4. the module result: ``checks``, what each collector publishes (GPUs, kernel log, caches...),
   ``changed`` when a collector changed something, ``elapsed_s``. Every text is valid UTF-8, and went
   through the family's ``redact`` when it declares one.

Nothing here knows a check or a collector by name.
"""

from __future__ import annotations

import time

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks, _deadline
from ansible_collections.gpuops.preflight.plugins.module_utils._values import clean_text, type_name


class Collector(object):
    """How one piece of evidence is gathered on the host.

    ``collect(ctx, deadline)`` returns the value (or raises: the checks that need it are then
    ``unknown``); ``what(params)`` names it in that message ("GPU probe"); ``after``: collectors
    that must be done first (only those that run); ``wanted(params)``: False when there is
    nothing to gather (the checks are still evaluated, with the value None); ``inline``: a quick
    pure derivation run in the runner's thread, without a deadline of its own; ``publish(ctx)``:
    the keys this collector adds to the module result (called whether or not it ran);
    ``changed(value)``: whether it changed the host; ``timeout_check``: the check whose timeout
    bounds it when no enabled check needs it directly; ``hung(params)``: what a timeout means, in
    operators' words ("the model store /srv/models did not answer"), instead of ``what``.
    """

    __slots__ = ("name", "collect", "what", "after", "wanted", "inline", "publish", "changed", "timeout_check",
                 "hint", "hung")

    def __init__(self, name, collect, what, after=(), wanted=None, inline=False, publish=None, changed=None,
                 timeout_check=None, hint=None, hung=None):
        self.name = name
        self.collect = collect
        self.what = what
        self.after = tuple(after)
        self.wanted = wanted
        self.inline = inline
        self.publish = publish
        self.changed = changed
        self.timeout_check = timeout_check
        self.hint = hint  # the suggested fix when it could not run; default: re-run, then look by hand
        self.hung = hung


class Context(object):
    """What the checks of one run see: the module, its parameters, every collector's outcome."""

    def __init__(self, family, module, params, enabled, timeouts, now=None):
        self.family = family
        self.now = time.time() if now is None else now  # wall clock, for "seen within the last 24 h"
        self.module = module
        self.params = params
        self.enabled = enabled
        self.timeouts = timeouts
        self.outcomes = {}   # collector name -> _deadline.Outcome
        self.values = {}     # collector name -> value, for collectors that ran and succeeded

    @property
    def check_mode(self):
        return bool(getattr(self.module, "check_mode", False))

    def value(self, name, default=None):
        return self.values.get(name, default)

    def failure(self, name):
        """Why collector ``name`` gave nothing ('timed out after 30s', 'failed: ...'), or None."""
        outcome = self.outcomes.get(name)
        if outcome is None or outcome.ok:
            return None
        return outcome.describe_failure()


def enabled_and_timeouts(family, params):
    """The checks to run (in registry order) and every host check's timeout, defaults overridden."""
    host_checks = family.host_checks
    wanted = params.get("checks")
    enabled = [name for name in host_checks if wanted is None or name in wanted]
    timeouts = dict((name, family.checks[name].timeout) for name in host_checks)
    timeouts.update(params.get("timeouts") or {})
    return enabled, timeouts


def _not_applying(spec, params):
    """The reason a check does not run here (e.g. the kernel log is switched off), or None. One whose
    ``applies`` raised applies (its evaluation then says what went wrong: ``_evaluate``)."""
    try:
        return spec.applies(params) if spec.applies is not None else None
    except Exception:  # a bug in one check must not cost the others their results
        return None


def _bug(name, doing, exc, elapsed=None):
    """The result of a check whose own code failed: unknown, naming the exception; never a pass, never a traceback."""
    return _checks.could_not_run(name, "%s failed: %s: %s" % (doing, type(exc).__name__, exc),
                                 "Report this as a bug of gpuops.preflight, with the module result (-vvv).",
                                 elapsed=elapsed)


def _needed(family, enabled, params):
    """Collectors the enabled checks that apply need, with those they come after, minus the unwanted ones.
    A check that does not apply needs nothing: the clocks are not touched when no reset was asked."""
    needed, todo = [], [c for name in enabled if not _not_applying(family.checks[name], params)
                        for c in family.checks[name].needs]
    while todo:
        name = todo.pop(0)
        if name in needed:
            continue
        collector = family.collectors[name]
        if collector.wanted is not None and not _guarded(collector.wanted, params, True):
            continue
        needed.append(name)
        todo.extend(collector.after)
    return [name for name in family.collectors if name in needed]


def _deadline_of(family, name, enabled, timeouts):
    """The longest timeout of the enabled checks that need the collector; for one that only others
    come after (the kernel log behind the GPU view), its own check's timeout."""
    users = [timeouts[check] for check in enabled if name in family.checks[check].needs]
    if users:
        return max(users)
    own = family.collectors[name].timeout_check
    return timeouts[own] if own in timeouts else max([timeouts[check] for check in enabled] or [10])


def _collect(ctx, needed, clock):
    family, done = ctx.family, set()
    while len(done) < len(needed):
        wave = [n for n in needed if n not in done
                and all(dep in done or dep not in needed for dep in family.collectors[n].after)]
        if not wave:
            raise ValueError("collectors wait for each other: %s" % ", ".join(n for n in needed if n not in done))
        jobs = {}
        for name in wave:
            collector = family.collectors[name]
            deadline = _deadline_of(family, name, ctx.enabled, ctx.timeouts)
            if collector.inline:
                outcome = _deadline.Outcome(name, deadline)
                start = clock()
                try:
                    outcome.value = collector.collect(ctx, deadline)
                except Exception as exc:  # a collector reports, it never crashes the module
                    outcome.error = exc
                outcome.elapsed = clock() - start
                ctx.outcomes[name] = outcome
            else:
                jobs[name] = ((lambda c=collector, d=deadline: c.collect(ctx, d)), deadline)
        ctx.outcomes.update(_deadline.run_all(jobs, clock=clock))
        for name in wave:
            if ctx.outcomes[name].ok:
                ctx.values[name] = ctx.outcomes[name].value
        done.update(wave)


def _guarded(func, arg, fallback):
    """``func(arg)``, or ``fallback`` when it raised (a collector's own small functions: wanted, what, hung)."""
    try:
        return func(arg)
    except Exception:  # the collector's evidence, not its wording, decides the checks
        return fallback


def _evaluate(ctx, name):
    spec = ctx.family.checks[name]
    try:
        reason = spec.applies(ctx.params) if spec.applies is not None else None
    except Exception as exc:
        return _bug(name, "deciding whether %s applies" % name, exc)
    if reason:
        return _checks.skipped(name, reason)
    needed = [n for n in spec.needs if n in ctx.outcomes]
    elapsed = max([ctx.outcomes[n].elapsed or 0.0 for n in needed] or [0.0])
    for collector_name in needed:
        outcome = ctx.outcomes[collector_name]
        if not outcome.ok:
            collector = ctx.family.collectors[collector_name]
            said = collector.hung if outcome.timed_out and collector.hung is not None else collector.what
            return _checks.could_not_run(
                name, "%s: %s" % (_guarded(said, ctx.params, "the %s collector" % collector_name), _why(outcome)),
                collector.hint or "Re-run the %s; if it keeps failing, look at the host by hand."
                % ctx.family.word.lower(),
                elapsed=elapsed, timed_out=outcome.timed_out or bool(getattr(outcome.error, "timed_out", False)))
    try:
        # a bug in one evaluation (it raised, or returned something that is not its problems and text) must not
        # hide the other checks, nor pass
        evaluated = spec.evaluate(ctx, spec)
        if not isinstance(evaluated, (tuple, list)) or len(evaluated) not in (2, 3):
            raise TypeError("it returned %s, not (problems, text) or (problems, text, details)" % type_name(evaluated))
        problems, ok_text = evaluated[0], evaluated[1]
        details = evaluated[2] if len(evaluated) > 2 else None
        res = _checks.result(name, problems, elapsed=elapsed, details=details, message=None if problems else ok_text)
        read = _checks.read_results({name: res})[name]  # as the judge will read it
        if read is not res:
            raise TypeError("it returned a malformed result (%s)" % read["problems"][0]["message"])
    except Exception as exc:
        return _bug(name, "evaluating %s" % name, exc, elapsed)
    return res


def _why(outcome):
    """An outcome's failure in words: a collector's own exception text is already worded for operators."""
    if outcome.timed_out or not isinstance(outcome.error, CollectorError):
        return outcome.describe_failure()
    return str(outcome.error)


class CollectorError(Exception):
    """A collector that could not gather its evidence, with the reason in operators' words."""

    def __init__(self, message, timed_out=False, info=None):
        Exception.__init__(self, message)
        self.timed_out = timed_out
        self.info = info or {}


def run(family, module, params, clock=time.monotonic, now=None):
    """Run the family's enabled host checks; returns the module result."""
    start = clock()
    enabled, timeouts = enabled_and_timeouts(family, params)
    ctx = Context(family, module, params, enabled, timeouts, now)
    _collect(ctx, _needed(family, enabled, params), clock)
    checks = {}
    for name in family.host_checks:
        if name in enabled:
            checks[name] = _evaluate(ctx, name)
        else:
            checks[name] = _checks.skipped(name, "skipped by %s_skip" % family.option_prefix)
    result = {"changed": False, "step": params.get("step"), "checks": checks}
    for name, collector in family.collectors.items():
        if collector.publish is not None:
            try:
                result.update(collector.publish(ctx))
            except Exception as exc:  # its facts are missing: the checks that read them are not verified
                for check in enabled:
                    if name in family.checks[check].needs and checks[check]["status"] != _checks.SKIPPED:
                        checks[check] = _bug(check, "publishing what the %s collector gathered" % name, exc)
        # a collector that cannot say whether it changed the host may have: changed
        if collector.changed is not None and name in ctx.values and _guarded(collector.changed, ctx.values[name], True):
            result["changed"] = True
    result["elapsed_s"] = round(clock() - start, 3)
    return clean_text(family.redact(result) if family.redact is not None else result)
