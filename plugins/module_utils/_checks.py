# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the one check model every check of the collection shares.

A *check* has a stable name, a severity (hard: its failure blocks the step; soft: it only warns)
and a default timeout. Running a check gives a *result* (ok / warn / fail / unknown / skipped)
made of *problems*; each problem carries a one-line message and a suggested fix, and names the
GPU it is about when there is one. The controller judges problems once, at the end
(see ``judge``): only a ``fail`` of a hard check blocks, and never for an excluded GPU or a
downgraded check. ``unknown`` means the check could not run (tool missing, timed out): it is never
a pass and never a hardware verdict.

Results and problems are plain dicts so that they cross the module/controller boundary as JSON.
"""

from __future__ import annotations

import importlib
import reprlib

from ansible_collections.gpuops.preflight.plugins.module_utils._values import printable, type_name

HARD = "hard"
SOFT = "soft"

OK = "ok"
WARN = "warn"
FAIL = "fail"
UNKNOWN = "unknown"
SKIPPED = "skipped"
_RANK = {SKIPPED: 0, OK: 1, WARN: 2, UNKNOWN: 3, FAIL: 4}

# Where a check runs: on the controller (it judges the connection or the module run itself),
# or on the host, inside the one module run per host.
CONTROLLER = "controller"
HOST = "host"

# The two checks every family declares (where=CONTROLLER) and the judge decides from what came back of a
# host: it answered over SSH, and its module ran and reported.
SSH = "ssh"
PROBE = "probe"
CONNECTION_CHECKS = (SSH, PROBE)


class CheckSpec(object):
    """One check, declared once: the part that is an interface, and for a host check how it runs.

    ``code`` and ``label`` are how operators read it (``GPU_COUNT_MISMATCH`` in WATCHER's log,
    ``GPU count`` in a per-host line). A controller check with an ``evaluate`` (``run_budget``) is
    evaluated once per run by the plan, from the run's inputs: ``evaluate(inputs, spec)``; the
    others (``ssh``, ``probe``) are judged from the connection. A host check (``where=HOST``) names the collectors it
    ``needs`` (their values are read from the run's context; one that could not run makes the
    check ``unknown``) and its ``evaluate(ctx, spec)``, which returns ``(problems, ok_text)`` or
    ``(problems, ok_text, details)``. ``applies(params)`` may return a reason not to run it
    (the check is then ``skipped`` with that reason). Everything else (enabled checks,
    timeouts, deadlines, unknown and skipped results) is the host runner's job (``_host_runner``).
    """

    __slots__ = ("name", "severity", "timeout", "summary", "fix", "code", "label", "where", "needs",
                 "evaluate", "applies")

    def __init__(self, name, severity, timeout, summary, fix, code, label, where=HOST, needs=(), evaluate=None,
                 applies=None):
        self.name = name
        self.severity = severity
        self.timeout = timeout
        self.summary = summary
        self.fix = fix
        self.code = code
        self.label = label
        self.where = where
        self.needs = tuple(needs)
        self.evaluate = evaluate
        self.applies = applies

    @property
    def fail_status(self):
        """What a broken condition is for this check: ``fail`` for a hard check, ``warn`` for a soft one."""
        return FAIL if self.severity == HARD else WARN

    def __repr__(self):
        return "CheckSpec(%s, %s)" % (self.name, self.severity)


def registry(*specs):
    """{name: spec} in declaration order; a duplicate name, or a host check without its evaluation, is a bug."""
    names = [s.name for s in specs]
    if len(names) != len(set(names)):
        raise ValueError("duplicate check name in %s" % names)
    for spec in specs:
        if spec.where == HOST and (spec.evaluate is None or not spec.needs):
            raise ValueError("host check %s needs its collectors and an evaluate function" % spec.name)
        if spec.where not in (HOST, CONTROLLER):
            raise ValueError("check %s: where must be %s or %s" % (spec.name, HOST, CONTROLLER))
    return dict((s.name, s) for s in specs)


def controller_evaluation(spec):
    """A controller check's evaluate function. It may be declared as ``"_module.function"``: a host module
    imports its family's declarations, and a string keeps controller-only code out of its payload."""
    if not isinstance(spec.evaluate, str):
        return spec.evaluate
    module, _sep, function = spec.evaluate.partition(".")
    return getattr(importlib.import_module("ansible_collections.gpuops.preflight.plugins.module_utils." + module),
                   function)


def host_checks(checks):
    """The names of a registry's host checks, in registry order."""
    return [name for name, spec in checks.items() if spec.where == HOST]


class Family(object):
    """A family of checks run together: the preflight, the cleanup, later the training-host health check
    and the serving gate. Everything that differs between families is declared here once; the plan,
    the host runner, the judge, the summary, the callback and the Python bridge read it."""

    __slots__ = ("kind", "word", "checks", "collectors", "node_module", "stats_key", "file_prefix", "option_prefix",
                 "never_block", "steps", "unknown_blocks", "variable_rules", "backstop_margin", "defined_steps_only",
                 "listed_steps", "since_from", "redact")

    def __init__(self, kind, word, checks, collectors, node_module, stats_key, file_prefix, option_prefix,
                 never_block=False, steps=True, unknown_blocks=False, variable_rules=None, backstop_margin=None,
                 defined_steps_only=False, listed_steps=False, since_from=None, redact=None):
        self.kind = kind
        self.word = word                  # "Preflight": how the verdict block names a run
        self.checks = checks              # registry(...)
        self.collectors = collectors      # {name: _host_runner.Collector}
        self.node_module = node_module    # the one module run per host
        self.stats_key = stats_key        # set_stats key of the summary
        self.file_prefix = file_prefix    # <prefix>_step<N>_<stamp>.json
        self.option_prefix = option_prefix  # <prefix>_skip, <prefix>_downgrade, <prefix>_timeouts
        self.never_block = never_block    # every problem is a warning (the cleanup)
        self.steps = steps                # runs are for a pipeline step (the training-host check is not)
        self.unknown_blocks = unknown_blocks  # a hard check that could not run blocks too (a readiness gate)
        # {variable name after the prefix: rule}: ranges of the family's own role variables (_plan checks them)
        self.variable_rules = variable_rules or {}
        # seconds the host module's task may run past its checks' time (None: the plan's default)
        self.backstop_margin = backstop_margin
        # the step must be in the run's step table (preflight_steps) when one is given
        self.defined_steps_only = defined_steps_only
        # the family runs only for the steps the plan is given (cleanup_steps); for others it does nothing
        self.listed_steps = listed_steps
        # kind whose newest summary of the same step gives the run's since time when none is given (the
        # cleanup looks at what happened since the step's preflight)
        self.since_from = since_from
        # redact(value) -> value: what the host result goes through before it leaves the host (the serving gate
        # quotes services' answers, whose URLs may carry credentials); None: as it is
        self.redact = redact

    @property
    def host_checks(self):
        return host_checks(self.checks)

    @property
    def probes_gpus(self):
        """Whether the family's hosts run the shared GPU probe (and so take its options and count GPUs)."""
        return "gpus" in self.collectors


def worst(statuses, default=OK):
    """The most severe of the given statuses (fail > unknown > warn > ok > skipped)."""
    statuses = list(statuses)
    if not statuses:
        return default
    return max(statuses, key=lambda s: _RANK[s])


def problem(check, status, message, fix=None, gpu=None, **details):
    """One problem found by a check. ``gpu`` is a dict with at least ``index`` and ``bdf``."""
    if status not in (WARN, FAIL, UNKNOWN):
        raise ValueError("a problem is warn, fail or unknown, not %r" % (status,))
    item = {"check": check, "status": status, "message": message, "fix": fix}
    if gpu is not None:
        item["gpu"] = gpu
    if details:
        item["details"] = details
    return item


def result(name, problems=(), message=None, elapsed=None, timed_out=False, details=None):
    """A check's result: its status is the worst of its problems, ok when it has none."""
    problems = list(problems)
    status = worst([p["status"] for p in problems])
    if message is None:
        message = "; ".join(p["message"] for p in problems) if problems else "ok"
    return {
        "name": name,
        "status": status,
        "message": message,
        "problems": problems,
        "elapsed_s": None if elapsed is None else round(elapsed, 3),
        "timed_out": bool(timed_out),
        "details": details or {},
    }


def skipped(name, reason):
    res = result(name, message=reason)
    res["status"] = SKIPPED
    return res


def could_not_run(name, why, fix, elapsed=None, timed_out=False, details=None):
    """A check that could not run: status unknown, never a pass and never a hardware verdict."""
    return result(name, [problem(name, UNKNOWN, why, fix)], elapsed=elapsed, timed_out=timed_out, details=details)


# A host's results cross the wire as JSON from a module that may not be this one (another version, a host
# that was tampered with): the judge reads each result on its own, and what it cannot read is bounded text.
MAX_UNREADABLE_CHARS = 300
UNREADABLE_FIX = ("Run it again; a result that stays unreadable comes from a host module that is not this "
                  "collection's (another version, or changed on the host): look at the host, or report it as a bug.")
_PROBLEM_STATUSES = (WARN, FAIL, UNKNOWN)


def unreadable_results(checks):
    """Why a module's ``checks`` cannot be read at all (not a mapping of check names to results), else None."""
    if isinstance(checks, dict):
        return None
    return "its checks are %s (%s), not a mapping of check names to results" % (
        type_name(checks), _shown(checks))


def read_results(checks, expected=()):
    """A host's ``checks`` (a mapping: ``unreadable_results``), each result read on its own.

    A well-formed result is kept as it is. A malformed one (not a mapping, no status or one outside
    ok/warn/fail/unknown/skipped, a status its problems do not give, problems that are not a list of
    problems, a field of the wrong type) becomes an ``unknown`` result saying what was wrong: never a
    pass, and a ``fail`` when the row itself says fail (what it failed on cannot be read, but that it
    failed is never weakened to a warning). Its well-formed problems stay with it, so a failure it did
    report still counts. A check of ``expected`` (the run's enabled host checks) the host gave no result for
    (a result cut short, a module of another version) is ``unknown``: what was not reported never passes.
    """
    out = {}
    for key, raw in checks.items():
        name = key if isinstance(key, str) else str(key)
        faults, kept = _faults(name, raw)
        if not faults:
            out[name] = raw
            continue
        why = printable("the host's %s result cannot be read: %s" % (name, "; ".join(faults)), MAX_UNREADABLE_CHARS)
        claimed = FAIL if isinstance(raw, dict) and raw.get("status") == FAIL else UNKNOWN
        out[name] = result(name, [problem(name, claimed, why, UNREADABLE_FIX)] + kept)
    for name in expected:
        if name not in out:
            out[name] = result(name, [problem(name, UNKNOWN, "the host gave no %s result (its module's result was "
                                              "cut short, or that module does not know the check)" % name,
                                              UNREADABLE_FIX)])
    return out


def _shown(value):
    """A value as a message quotes it: short whatever its size (reprlib cuts long texts and lists)."""
    return printable(reprlib.repr(value), 40)


def _faults(name, raw):
    """(what is wrong with one check result, its well-formed problems)."""
    if not isinstance(raw, dict):
        return ["it is %s (%s), not a mapping" % (type_name(raw), _shown(raw))], []
    faults, kept = [], []
    status = raw.get("status")
    if status is None:
        faults.append("it has no status")
    elif not isinstance(status, str) or status not in _RANK:
        faults.append("its status %s is not one of %s" % (_shown(status), ", ".join(sorted(_RANK))))
    problems = raw.get("problems", [])
    if not isinstance(problems, list):
        faults.append("its problems are %s, not a list" % type_name(problems))
        problems = []
    for number, item in enumerate(problems, 1):
        fault = _problem_fault(item)
        if fault:
            faults.append("problem %d %s" % (number, fault))
        else:
            kept.append(item)
    if not faults:
        given = worst([p["status"] for p in problems], default=None)
        if given is not None and status != given:
            faults.append("its status %s is not that of its problems (%s)" % (status, given))
        elif given is None and status not in (OK, SKIPPED):
            faults.append("its status is %s but no problem says why" % status)
    if raw.get("name", name) != name:
        faults.append("it is named %s" % _shown(raw.get("name")))
    for field, types, word in (("message", str, "text"), ("elapsed_s", (int, float), "a number"),
                               ("timed_out", bool, "true or false")):
        value = raw.get(field)
        if value is not None and (not isinstance(value, types) or (field == "elapsed_s" and isinstance(value, bool))):
            faults.append("its %s is %s, not %s" % (field, type_name(value), word))
    return faults, kept


def _problem_fault(item):
    """What is wrong with one problem of a result, else None."""
    if not isinstance(item, dict):
        return "is %s, not a mapping" % type_name(item)
    for field, required in (("check", True), ("message", True), ("fix", False)):
        value = item.get(field)
        if value is None and required:
            return "has no %s" % field
        if value is not None and not isinstance(value, str):
            return "has a %s that is %s, not text" % (field, type_name(value))
    if not isinstance(item.get("status"), str) or item["status"] not in _PROBLEM_STATUSES:
        return "has the status %s, not warn, fail or unknown" % _shown(item.get("status"))
    if item.get("gpu") is not None and not isinstance(item["gpu"], dict):
        return "has a gpu that is %s, not a mapping" % type_name(item["gpu"])
    return None


def validate_names(names, registry, option):
    """Reject names that are not checks of ``registry``, listing the valid ones."""
    if names is None:
        return []
    if isinstance(names, str):
        names = [n for n in names.replace(",", " ").split() if n]
    if not isinstance(names, (list, tuple)):
        raise ValueError("%s must be a list of check names, not %s" % (option, type(names).__name__))
    clean = []
    for name in names:
        key = str(name).strip().lower()
        if key not in registry:
            raise ValueError("%s: unknown check %r; valid checks are: %s"
                             % (option, str(name), ", ".join(registry)))
        if key not in clean:
            clean.append(key)
    return clean


BLOCK = "hard_failure"
WARNING = "warning"


def judge(item, family, downgrade=()):
    """Decide what a problem means for the run: (BLOCK or WARNING, message).

    Only a ``fail`` of a hard check blocks (and, in a family that must never pass on what it could
    not verify, such as the serving gate, an ``unknown`` of a hard check too). A problem about an
    excluded GPU, or of a check named in ``downgrade``, becomes a warning that says why; it is never
    hidden. A family that never blocks (the cleanup) only warns.
    """
    message = item["message"]
    spec = family.checks.get(item["check"])
    blocking = (FAIL, UNKNOWN) if family.unknown_blocks else (FAIL,)
    if spec is None and not family.never_block and item["status"] in blocking:
        # a host module of another version: its check's severity is not known here, so it cannot block; say so
        return WARNING, "%s (%s is not a check of this controller's gpuops.preflight: judged as a warning)" % (
            message, item["check"])
    if family.never_block or item["status"] not in blocking or spec is None or spec.severity != HARD:
        return WARNING, message
    gpu = item.get("gpu") or {}
    if gpu.get("excluded"):
        return WARNING, "%s (GPU %s is in excluded_gpus)" % (message, gpu_label(gpu))
    if item["check"] in downgrade:
        return WARNING, "%s (downgraded by %s_downgrade)" % (message, family.option_prefix)
    return BLOCK, message


def gpu_label(gpu):
    """How messages name a GPU: its rocm-smi index and its PCI address, e.g. '3 (0000:0b:00.0)'."""
    index, bdf = gpu.get("index"), gpu.get("bdf")
    if index is None:
        return bdf or "?"
    return "%s (%s)" % (index, bdf) if bdf else str(index)
