# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the plan of a run, built on the controller before any host is contacted.

``build_plan`` validates everything an operator or WATCHER passes in (the step, preflight_steps,
check names, timeouts, every host's GPU naming) and fails with every problem at once
(``PlanError``). The plan it returns is what the host task and the judge read: the step in its
canonical form, the step's requirements, the host checks to run and their timeouts, the task
backstop, when the run started. The ``preflight_plan`` action plugin runs it.
"""

from __future__ import annotations

import json
import math
import os
import re
import time

from ansible_collections.gpuops.preflight.plugins.module_utils import (
    _checks, _deadline, _families, _files, _ramdisk, _steps)
from ansible_collections.gpuops.preflight.plugins.module_utils._pci import normalize_bdf, parse_gpu_refs
from ansible_collections.gpuops.preflight.plugins.module_utils._timeparse import iso, parse_time
from ansible_collections.gpuops.preflight.plugins.module_utils._values import (
    absolute_path, at_least, between, duration, parse_seconds, timeout_problem, type_name)

# What a preflight_steps entry may say about its step.
STEP_KEYS = ("ramdisk", "inputs", "ramdisk_dir")
# The steps that run on the rigs, and so need a cleanup, unless cleanup_steps says otherwise.
DEFAULT_CLEANUP_STEPS = ("1", "2", "3")
# Seconds the task backstop allows beyond the longest check timeout (connection, module start-up).
BACKSTOP_MARGIN = 20
# Seconds a given since time may lie ahead of the controller's clock (a time taken on another machine).
SINCE_AHEAD_TOLERANCE = 60
# A summary file read for the cleanup's start time is never larger than this.
SUMMARY_MAX_BYTES = 16 * 1024 * 1024
# The summary document's schema name (_summary writes it; here because the plan reads earlier summaries).
SUMMARY_SCHEMA = "gpuops.preflight.summary"


def _kernel_log(value):
    if value in ("auto", "journal", "dmesg", "none") or (isinstance(value, str) and value.startswith("/")):
        return None
    return "must be auto, journal, dmesg, none or the absolute path of a file, got %r" % (value,)


# Role variables of every family (their name after the family's prefix) and the ranges their argument
# spec cannot say; a family adds its own (Family.variable_rules). Checked in the plan, before any host is
# contacted: a bad value must never turn a hard check into an "unknown" warning on every host (a negative
# max_age once did), nor lose data (a negative keep).
COMMON_RULES = {
    "max_age": at_least(0, "a whole number of seconds"),
    "ramdisk_root": absolute_path,
    "sysfs_root": absolute_path,
    "kernel_log": _kernel_log,
    "gpu_tool_timeout": lambda value: at_least(1, "a whole number of seconds")(value) or timeout_problem(value),
    "ramdisk_min_free_mb": at_least(0),
    "vram_min_mb": at_least(0),
    "gpu_temp_warn_c": between(0, 200),
    "watch_window": at_least(0, "a whole number of seconds"),
    "summary_keep": at_least(0, "a whole number (0 keeps every summary)"),
    "json_max_mb": at_least(1, "a whole number of MiB"),
    "textfile_dir": absolute_path,
}


def variable_problems(family, values):
    """Problems with a family's role variables (``{full name: value}``, types already checked), each naming it."""
    prefix, rules = family.option_prefix, dict(COMMON_RULES, **(family.variable_rules or {}))
    problems = []
    for name, value in sorted(values.items()):
        rule = rules.get(name[len(prefix) + 1:]) if name.startswith(prefix + "_") else None
        if rule is not None and value is not None:
            why = rule(value)
            if why:
                problems.append("%s %s" % (name, why))
    return problems


class PlanError(ValueError):
    """Bad input: every problem found, in one message."""

    def __init__(self, problems):
        self.problems = list(problems)
        ValueError.__init__(self, "; ".join(self.problems))


def normalize_steps(steps):
    """preflight_steps, keys compared as numbers (YAML ints, JSON strings, '2.5'): {step: {ramdisk, inputs, ramdisk_dir}}."""
    if steps is None or steps == "":
        return {}
    if not isinstance(steps, dict):
        raise ValueError("preflight_steps must be a mapping of step number to {ramdisk: [...], inputs: [...]}, "
                         "got a %s" % type_name(steps))
    problems, clean = [], {}
    for key, spec in steps.items():
        try:
            step = _steps.parse_step(key, "preflight_steps key")
        except ValueError:
            problems.append("preflight_steps: key %r is not a step number (a number of 0 or more, e.g. 3 or 2.5)"
                            % (key,))
            continue
        spec = spec or {}
        if not isinstance(spec, dict):
            problems.append("preflight_steps[%s] must be a mapping with ramdisk and inputs, got a %s"
                            % (step, type_name(spec)))
            continue
        unknown = sorted(str(k) for k in set(spec) - set(STEP_KEYS))
        if unknown:
            problems.append("preflight_steps[%s]: unknown key(s) %s; allowed: %s"
                            % (step, ", ".join(unknown), ", ".join(STEP_KEYS)))
        entry = {"ramdisk_dir": None}
        for field in ("ramdisk", "inputs"):
            items = spec.get(field) or []
            if isinstance(items, str) or not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
                problems.append("preflight_steps[%s].%s must be a list of file names" % (step, field))
                items = []
            entry[field] = list(items)
        for path in entry["inputs"]:
            if not path.startswith("/"):
                problems.append("preflight_steps[%s].inputs: %r is not an absolute path" % (step, path))
        for name in entry["ramdisk"]:
            if _ramdisk.name_refusal(name, _steps.folder_name(step)):   # the host refuses the same names
                problems.append("preflight_steps[%s].ramdisk: %r must be a name inside the step's ramdisk folder"
                                % (step, name))
        folder = spec.get("ramdisk_dir")
        if folder not in (None, ""):
            if _ramdisk.folder_refused(folder):   # the host refuses the same folders ('.' is the root itself)
                problems.append("preflight_steps[%s].ramdisk_dir: %r must be a folder name inside the ramdisk root"
                                % (step, folder))
            else:
                entry["ramdisk_dir"] = folder.strip("/")
        if step in clean:
            problems.append("preflight_steps: step %s is defined twice (keys are compared as numbers)" % step)
        clean[step] = entry
    if problems:
        raise PlanError(problems)
    return clean


def _int_or_none(value, option):
    if value is None or value == "":
        return None
    if isinstance(value, bool) or isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        raise ValueError("%s must be a whole number, got %r" % (option, value))
    try:
        number = int(str(value).strip()) if not isinstance(value, float) else int(value)
    except ValueError:
        raise ValueError("%s must be a whole number, got %r" % (option, value))
    if number < 0:
        raise ValueError("%s must be 0 or more, got %s" % (option, number))
    return number


def validate_host(host, hostvars):
    """Problems with one host's GPU settings, each naming the host and the field."""
    problems = []
    try:
        _int_or_none(hostvars.get("expected_gpu_count"), "expected_gpu_count")
    except ValueError as exc:
        problems.append("%s: %s" % (host, exc))
    for option in ("excluded_gpus", "gpu_watchlist"):
        value = hostvars.get(option)
        if value in (None, ""):
            continue
        if not isinstance(value, list):
            problems.append("%s: %s must be a list of GPU indices or PCI addresses, got %r" % (host, option, value))
            continue
        try:
            parse_gpu_refs(value, option)
        except ValueError as exc:
            problems.append("%s: %s" % (host, exc))
    return problems


def _defined_steps(steps):
    return ", ".join(sorted(steps, key=float)) or "none"


def build_plan(kind, step, steps=None, skip=None, downgrade=None, hosts=(), hostvars=None, timeouts=None,
               cleanup_steps=None, since=None, summary_dir=None, now=None, inputs=None, budget=None):
    """Validate the run's input; returns the plan or raises PlanError listing every problem.

    ``budget``: seconds a family's host run has in all (the serving gate's timeout), when it has one: the
    task backstop (``host_timeout``) is then that budget, not the longest check timeout, plus the margin."""
    family = _families.family(kind)
    registry, prefix = family.checks, family.option_prefix
    problems = []
    # preflight_steps: {} is a definition (no step is known), not the absence of one.
    steps_defined = steps is not None and steps != ""
    try:
        steps = normalize_steps(steps)
    except PlanError as exc:
        problems.extend(exc.problems)
        steps = {}
    except ValueError as exc:
        problems.append(str(exc))
        steps = {}
    step_id = None
    if family.steps:
        try:
            step_id = _steps.parse_step(step)
        except ValueError as exc:
            problems.insert(0, "%s (steps defined: %s)" % (exc, _defined_steps(steps)) if steps else str(exc))
    if family.defined_steps_only and step_id is not None and steps_defined and step_id not in steps:
        problems.append("step %s is not in %s_steps (steps defined: %s)" % (step_id, prefix, _defined_steps(steps)))
    names = {}
    for option, value in (("skip", skip), ("downgrade", downgrade)):
        try:
            names[option] = _checks.validate_names(value, registry, "%s_%s" % (prefix, option))
        except ValueError as exc:
            problems.append(str(exc))
            names[option] = []
    host_checks = family.host_checks
    clean_timeouts = {}
    if not isinstance(timeouts or {}, dict):
        problems.append("%s_timeouts must be a mapping of check name to seconds, got a %s"
                        % (prefix, type_name(timeouts)))
        timeouts = {}
    for name, seconds in (timeouts or {}).items():
        if name not in host_checks:
            problems.append("%s_timeouts: %r is not a host check; valid: %s" % (prefix, name, ", ".join(host_checks)))
            continue
        try:
            clean_timeouts[name] = _int_or_none(seconds, "%s_timeouts.%s" % (prefix, name))
        except ValueError as exc:
            problems.append(str(exc))
            continue
        why = timeout_problem(clean_timeouts[name] or 0)
        if why:
            problems.append("%s_timeouts.%s %s" % (prefix, name, why))
    hostvars = hostvars or {}
    for host in hosts:
        problems.extend(validate_host(host, hostvars.get(host) or {}))
    applies = True
    wanted = list(DEFAULT_CLEANUP_STEPS)
    if family.listed_steps:
        try:
            wanted = _steps.parse_steps(cleanup_steps if cleanup_steps is not None else DEFAULT_CLEANUP_STEPS,
                                        "cleanup_steps")
        except ValueError as exc:
            problems.append(str(exc))
        applies = step_id in wanted
    now = time.time() if now is None else now
    try:
        since_epoch = parse_time(since, "%s_since" % prefix)
    except ValueError as exc:
        problems.append(str(exc))
        since_epoch = None
    if since_epoch is not None and since_epoch > now + SINCE_AHEAD_TOLERANCE:
        # the kernel log would be read for an empty window, and read clean
        problems.append("%s_since %r is in the future (%s from now): nothing can have happened since then "
                        "(epoch milliseconds instead of seconds?)" % (prefix, since, duration(since_epoch - now)))
    if budget is not None:
        try:
            budget = parse_seconds(budget, "budget")
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise PlanError(problems)

    since_source = "given" if since_epoch is not None else None
    if family.since_from and since_epoch is None and summary_dir:
        since_epoch = latest_start(summary_dir, family.since_from, step_id)
        since_source = "%s summary" % family.since_from if since_epoch is not None else "current boot"
    effective = dict((n, registry[n].timeout) for n in host_checks)
    effective.update(clean_timeouts)
    enabled = [n for n in host_checks if n not in names["skip"]]
    requirements = steps.get(step_id, {"ramdisk": [], "inputs": [], "ramdisk_dir": None})
    return {
        "kind": kind,
        "step": step_id,
        "hosts": list(hosts),
        "applies": applies,
        "requirements": requirements,
        "step_defined": step_id in steps,
        "skip": names["skip"],
        "downgrade": names["downgrade"],
        "host_checks": enabled,
        "timeouts": clean_timeouts,
        "host_timeout": int(math.ceil(budget if budget is not None else max([effective[n] for n in enabled] or [10])))
        + (BACKSTOP_MARGIN if family.backstop_margin is None else family.backstop_margin),
        "started_at": iso(now),
        "started_epoch": now,
        "since": since_epoch,
        "since_source": since_source,
        "cleanup_steps": wanted,
        # only a family that probes GPUs numbers them (the serving gate reads no earlier summary)
        "index_maps": index_maps(summary_dir, hosts) if summary_dir and family.probes_gpus else {},
        "run_checks": run_checks(family, inputs, step_id, names["skip"]),
    }


def empty_plan(kind, step, now=None):
    """The plan of a run that stopped before its own plan was made: nothing skipped or downgraded,
    so whatever did arrive is judged as it is (the bridge, for a run cancelled at its start)."""
    try:
        step_id = _steps.parse_step(step)
    except ValueError:
        step_id = None
    now = time.time() if now is None else now
    return {"kind": kind, "step": step_id, "applies": True, "requirements": {}, "step_defined": False, "skip": [],
            "downgrade": [], "host_checks": [], "timeouts": {}, "host_timeout": None, "started_at": iso(now),
            "started_epoch": now, "since": None, "since_source": None, "cleanup_steps": list(DEFAULT_CLEANUP_STEPS)}


def index_maps(summary_dir, hosts, limit=20):
    """{host: {index: bdf}}: each host's GPU numbering from the newest summaries in which its GPU tool
    answered (at most ``limit`` files read, newest first). A run in which the tool does not answer must
    guess the order; this says which GPU an index in excluded_gpus meant."""
    folder = os.path.expanduser(summary_dir or "")
    wanted, maps = set(hosts), {}
    try:
        matches = [ANY_SUMMARY.match(n) for n in os.listdir(folder)]
    except OSError:
        return {}
    # every family's summaries: a GPU numbering is the host's, whichever run saw it (the schema is checked below)
    stamped = sorted(((m.group(2), m.group(0)) for m in matches if m), reverse=True)
    for _stamp, name in stamped[:limit]:
        if not wanted - set(maps):
            break
        document = read_summary(os.path.join(folder, name))
        entries = (document.get("hosts") or {}) if document and document.get("schema") == SUMMARY_SCHEMA else {}
        for host in wanted - set(maps):
            entry = entries.get(host) if isinstance(entries, dict) else None
            tool = entry.get("gpu_tool") if isinstance(entry, dict) else None
            if not isinstance(tool, dict) or not tool.get("answered") or not isinstance(entry.get("gpus"), list):
                continue
            known = dict((str(g["index"]), g["bdf"]) for g in entry["gpus"]
                         if isinstance(g, dict) and isinstance(g.get("index"), int) and not isinstance(g["index"], bool)
                         and isinstance(g.get("bdf"), str) and normalize_bdf(g["bdf"]) and g.get("in_tool_output"))
            if known:
                maps[host] = known
    return maps


def run_checks(family, inputs, step, skip=()):
    """The family's controller checks that have an evaluation, run once for the run from its ``inputs``
    (``{name: value}`` the role passes, e.g. run_budget_params), each under its own timeout:
    {name: result}. A check that does not apply here is left out; one named in ``skip`` is skipped."""
    inputs = dict(inputs or {}, step=step)
    results = {}
    for name, spec in family.checks.items():
        if spec.where != _checks.CONTROLLER or spec.evaluate is None:
            continue
        if name in skip:
            results[name] = _checks.skipped(name, "skipped by %s_skip" % family.option_prefix)
            continue
        if spec.applies is not None and spec.applies(inputs):
            continue
        evaluate = _checks.controller_evaluation(spec)
        outcome = _deadline.run_all({name: (lambda spec=spec, evaluate=evaluate: evaluate(inputs, spec),
                                            spec.timeout)})[name]
        if not outcome.ok:
            results[name] = _checks.could_not_run(name, "%s: %s" % (name, outcome.describe_failure()), spec.fix,
                                                  elapsed=outcome.elapsed, timed_out=outcome.timed_out)
            continue
        problems, ok_text = outcome.value[0], outcome.value[1]
        details = outcome.value[2] if len(outcome.value) > 2 else None
        results[name] = _checks.result(name, problems, elapsed=outcome.elapsed, details=details,
                                       message=None if problems else ok_text)
    return results


# After the prefix: [_step<N>]_<UTC stamp>[-<n>].json; groups: step, stamp, n.
_NAME_TAIL = r"(?:_step(\d+(?:\.\d+)?))?_(\d{8}T\d{6}\.\d{6}Z)(?:-(\d+))?\.json$"
# The summary file of any family (<prefix> is lower case and underscores): no family needs importing to find them.
ANY_SUMMARY = re.compile(r"^[a-z][a-z_]*?" + _NAME_TAIL)


def summary_name_pattern(prefix):
    """File names of one kind's summaries: <prefix>[_step<N>]_<UTC stamp>[-<n>].json (N whole or decimal; no
    step for a family whose runs are not for a pipeline step)."""
    return re.compile("^" + re.escape(prefix) + _NAME_TAIL)


def latest_start(summary_dir, kind, step):
    """When the newest run of family ``kind`` for ``step`` started, from its summary file; None when there is none.

    Only regular files are opened, without blocking (a FIFO named like a summary must not hang the plan).
    """
    folder = os.path.expanduser(summary_dir)
    named = summary_name_pattern(_families.family(kind).file_prefix)
    try:
        found = [(m.group(2), int(m.group(3) or 0), name) for name, m in
                 ((name, named.match(name)) for name in os.listdir(folder)) if m and m.group(1) == step]
    except OSError:
        return None
    for _stamp, _attempt, name in sorted(found, reverse=True):
        document = read_summary(os.path.join(folder, name))
        if document is None:
            continue
        try:
            started = parse_time(document.get("started_at"))
        except (TypeError, ValueError):
            continue
        if started is not None:  # one that says no start time cannot give it: an older one may
            return started
    return None


def read_summary(path):
    """An earlier summary file as a mapping, or None when it cannot be one: unreadable, not a regular file (a FIFO
    must not hang the plan), larger than SUMMARY_MAX_BYTES, not JSON, nested deeper than json can read (a
    RecursionError once stopped every later plan of the folder with a traceback), or not an object."""
    try:
        document = json.loads(_files.read_regular(path, SUMMARY_MAX_BYTES).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None
