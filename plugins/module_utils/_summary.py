# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the controller side of a preflight or cleanup run.

``build_plan`` validates everything an operator or WATCHER passes in (the step, preflight_steps,
check names, every host's GPU naming) before any host is contacted, and fails with every problem
at once. ``build_summary`` judges each host's results once for the whole cluster and produces the
versioned summary document (docs/SUMMARY_SCHEMA.md); ``render_lines`` makes the verdict block.
This runs on the controller only (action plugins and the summary callback import it).
"""

from __future__ import annotations

import json
import os
import re
import time

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks
from ansible_collections.gpuops.preflight.plugins.module_utils._pci import parse_gpu_refs
from ansible_collections.gpuops.preflight.plugins.module_utils._timeparse import iso, parse_time

SCHEMA = "gpuops.preflight.summary"
SCHEMA_VERSION = 1
STATS_KEY = {"preflight": "gpuops_preflight", "cleanup": "gpuops_cleanup"}
FILE_PREFIX = {"preflight": "summary", "cleanup": "cleanup"}
STEP_KEYS = ("ramdisk", "inputs")
# Seconds the task backstop allows beyond the longest check timeout (connection, module start-up).
BACKSTOP_MARGIN = 20


class PlanError(ValueError):
    """Bad input: every problem found, in one message."""

    def __init__(self, problems):
        self.problems = list(problems)
        ValueError.__init__(self, "; ".join(self.problems))


def parse_step(value):
    """-e step=3 arrives as a string, YAML gives an int: both are fine, nothing else is."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("step is required: run it for a pipeline step, e.g. "
                         "ansible-playbook playbooks/preflight.yml -e step=3")
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("step must be a whole number (the pipeline step, e.g. -e step=3), got %r" % (value,))
    text = str(value).strip()
    if not re.match(r"^\d+$", text):
        raise ValueError("step must be a whole number (the pipeline step, e.g. -e step=3), got %r" % (value,))
    return int(text)


def normalize_steps(steps):
    """preflight_steps with int keys (YAML) or string keys (JSON, extra vars): {int: {ramdisk, inputs}}."""
    if steps is None or steps == "":
        return {}
    if not isinstance(steps, dict):
        raise ValueError("preflight_steps must be a mapping of step number to {ramdisk: [...], inputs: [...]}, "
                         "got %s" % type(steps).__name__)
    problems, clean = [], {}
    for key, spec in steps.items():
        try:
            number = parse_step(key)
        except ValueError:
            problems.append("preflight_steps: key %r is not a step number" % (key,))
            continue
        spec = spec or {}
        if not isinstance(spec, dict):
            problems.append("preflight_steps[%s] must be a mapping with ramdisk and inputs, got %s"
                            % (number, type(spec).__name__))
            continue
        unknown = sorted(set(spec) - set(STEP_KEYS))
        if unknown:
            problems.append("preflight_steps[%s]: unknown key(s) %s; allowed: %s"
                            % (number, ", ".join(map(str, unknown)), ", ".join(STEP_KEYS)))
        entry = {}
        for field in STEP_KEYS:
            items = spec.get(field) or []
            if isinstance(items, str) or not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
                problems.append("preflight_steps[%s].%s must be a list of file names" % (number, field))
                items = []
            entry[field] = list(items)
        for path in entry["inputs"]:
            if not path.startswith("/"):
                problems.append("preflight_steps[%s].inputs: %r is not an absolute path" % (number, path))
        for name in entry["ramdisk"]:
            if name.startswith("/") or ".." in name.split("/"):
                problems.append("preflight_steps[%s].ramdisk: %r must be a name inside the step's ramdisk folder"
                                % (number, name))
        if number in clean:
            problems.append("preflight_steps: step %s is defined twice" % number)
        clean[number] = entry
    if problems:
        raise PlanError(problems)
    return clean


def _int_or_none(value, option):
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("%s must be a whole number, got %r" % (option, value))
    try:
        number = int(str(value).strip())
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


def build_plan(kind, step, steps=None, skip=None, downgrade=None, hosts=(), hostvars=None, timeouts=None,
               cleanup_steps=None, since=None, summary_dir=None, now=None):
    """Validate the run's input; returns the plan or raises PlanError listing every problem."""
    registry = _checks.REGISTRIES[kind]
    prefix = "preflight" if kind == "preflight" else "cleanup"
    problems = []
    step_number = None
    try:
        step_number = parse_step(step)
    except ValueError as exc:
        problems.append(str(exc))
    try:
        steps = normalize_steps(steps)
    except PlanError as exc:
        problems.extend(exc.problems)
        steps = {}
    except ValueError as exc:
        problems.append(str(exc))
        steps = {}
    if kind == "preflight" and step_number is not None and steps and step_number not in steps:
        problems.append("step %s is not in preflight_steps (steps defined: %s)"
                        % (step_number, ", ".join(str(s) for s in sorted(steps))))
    names = {}
    for option, value in (("skip", skip), ("downgrade", downgrade)):
        try:
            names[option] = _checks.validate_names(value, registry, "%s_%s" % (prefix, option))
        except ValueError as exc:
            problems.append(str(exc))
            names[option] = []
    clean_timeouts = {}
    for name, seconds in (timeouts or {}).items():
        if name not in registry or registry[name].where != _checks.HOST:
            problems.append("%s_timeouts: %r is not a host check; valid: %s"
                            % (prefix, name, ", ".join(n for n, s in registry.items() if s.where == _checks.HOST)))
            continue
        try:
            clean_timeouts[name] = _int_or_none(seconds, "%s_timeouts.%s" % (prefix, name))
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if not clean_timeouts[name]:
            problems.append("%s_timeouts.%s must be at least 1 second" % (prefix, name))
    hostvars = hostvars or {}
    for host in hosts:
        problems.extend(validate_host(host, hostvars.get(host) or {}))
    applies = True
    if kind == "cleanup":
        try:
            wanted = [parse_step(s) for s in (cleanup_steps if cleanup_steps is not None else [1, 2, 3])]
        except ValueError:
            problems.append("cleanup_steps must be a list of step numbers, got %r" % (cleanup_steps,))
            wanted = []
        applies = step_number in wanted
    try:
        since_epoch = parse_time(since, "%s_since" % prefix)
    except ValueError as exc:
        problems.append(str(exc))
        since_epoch = None
    if problems:
        raise PlanError(problems)

    now = time.time() if now is None else now
    since_source = "given" if since_epoch is not None else None
    if kind == "cleanup" and since_epoch is None and summary_dir:
        since_epoch = latest_preflight_start(summary_dir, step_number)
        since_source = "preflight summary" if since_epoch is not None else "current boot"
    effective = dict((n, s.timeout) for n, s in registry.items() if s.where == _checks.HOST)
    effective.update(clean_timeouts)
    host_checks = [n for n, s in registry.items() if s.where == _checks.HOST and n not in names["skip"]]
    requirements = steps.get(step_number, {"ramdisk": [], "inputs": []})
    return {
        "kind": kind,
        "step": step_number,
        "applies": applies,
        "requirements": requirements,
        "step_defined": step_number in steps,
        "skip": names["skip"],
        "downgrade": names["downgrade"],
        "host_checks": host_checks,
        "timeouts": clean_timeouts,
        "host_timeout": max([effective[n] for n in host_checks] or [10]) + BACKSTOP_MARGIN,
        "started_at": iso(now),
        "started_epoch": now,
        "since": since_epoch,
        "since_source": since_source,
        "cleanup_steps": list(cleanup_steps) if cleanup_steps is not None else [1, 2, 3],
    }


def latest_preflight_start(summary_dir, step):
    """When the newest preflight of ``step`` started, from its summary file; None when there is none."""
    try:
        names = sorted(n for n in os.listdir(os.path.expanduser(summary_dir))
                       if n.startswith("summary_step%d_" % step) and n.endswith(".json"))
    except OSError:
        return None
    for name in reversed(names):
        try:
            with open(os.path.join(os.path.expanduser(summary_dir), name)) as handle:
                return parse_time(json.load(handle).get("started_at"))
        except (OSError, ValueError, AttributeError):
            continue
    return None


# ---------------------------------------------------------------- judging


def _short_ssh_error(message):
    text = (message or "").strip().splitlines()
    text = text[-1] if text else "no answer"
    text = re.sub(r"^(Task failed:\s*)?(Failed to connect to the host via ssh:\s*)?(ssh:\s*)?", "", text)
    if text.endswith(":"):
        # e.g. 'Data could not be sent to remote host "x". Make sure that this host can be reached over ssh:'
        # with nothing after it: ssh died mid-run without a word.
        text += " the SSH connection was lost during the run"
    return text[:240]


def _host_problem(kind, host, address, res, plan):
    """(check, message) when the host gave no check results, else None."""
    where = host if not address or address == host else "%s (%s)" % (host, address)
    if res is None:
        return "probe", "%s: no result from the host (it did not run the %s)" % (where, kind)
    if res.get("unreachable"):
        return "ssh", "%s unreachable: %s" % (where, _short_ssh_error(res.get("msg")))
    if "checks" in res and not res.get("failed"):
        return None
    msg = (res.get("msg") or "").strip()
    if res.get("timedout") or "timed out" in msg:
        return "probe", "%s: the %s module did not finish within %ss; no check result came back" % (
            where, kind, plan.get("host_timeout"))
    detail = msg or "module failure"
    stderr = (res.get("module_stderr") or "").strip().splitlines()
    if stderr:
        detail += ": " + stderr[-1]
    return "probe", "%s: the %s module failed: %s" % (where, kind, detail[:400])


def build_summary(plan, host_results, finished=None):
    """The summary document. host_results: [(host, address, registered result or None)] in inventory order."""
    kind = plan["kind"]
    registry = _checks.REGISTRIES[kind]
    never_block = kind == "cleanup"
    hard, warnings, hosts = [], [], {}
    for host, address, res in host_results:
        entry = {"address": address, "reachable": True, "status": "passed", "checks": {}, "gpus": [],
                 "gpu_count": None, "expected_gpu_count": None, "usable_gpus": [], "unverified_gpus": [],
                 "excluded_gpus": [], "gpu_tool": None, "processes": [], "kernel_log": None, "elapsed_s": None}
        problems = []
        failure = _host_problem(kind, host, address, res, plan)
        if failure:
            check, message = failure
            entry["reachable"] = check != "ssh"
            entry["status"] = "unreachable" if check == "ssh" else "failed"
            entry["error"] = message
            if check not in plan["skip"]:
                problems.append(_checks.problem(check, _checks.FAIL, message, registry[check].fix))
        else:
            for name, result in res["checks"].items():
                entry["checks"][name] = dict((k, result.get(k)) for k in ("status", "message", "elapsed_s", "timed_out"))
                for item in result.get("problems", []):
                    problems.append(dict(item, message="%s: %s" % (host, item["message"])))
            for key in ("gpus", "gpu_count", "expected_gpu_count", "usable_gpus", "unverified_gpus", "gpu_tool",
                        "processes", "kernel_log", "elapsed_s", "caches", "clocks", "bytes_freed"):
                if key in res:
                    entry[key] = res[key]
            entry["excluded_gpus"] = [g.get("index") if g.get("index") is not None else g.get("bdf")
                                      for g in res.get("gpus", []) if g.get("excluded")]
        for item in problems:
            verdict, message = _checks.judge(item, registry, plan["downgrade"], never_block=never_block)
            record = {"host": host, "address": address, "check": item["check"], "status": item["status"],
                      "message": message, "fix": item.get("fix")}
            if item.get("gpu"):
                record["gpu"] = item["gpu"]
            (hard if verdict == _checks.BLOCK else warnings).append(record)
        if any(r["host"] == host for r in hard):
            entry["status"] = "blocked"
        elif entry["status"] == "passed" and any(r["host"] == host for r in warnings):
            entry["status"] = "warnings"
        hosts[host] = entry

    finished = time.time() if finished is None else finished
    gpus_total = sum(len(h["gpus"]) for h in hosts.values())
    summary = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "step": plan["step"],
        "passed": not hard,
        "blocked": bool(hard),
        "applies": plan["applies"],
        "started_at": plan["started_at"],
        "finished_at": iso(finished),
        "duration_s": round(finished - plan["started_epoch"], 3),
        "hard_failures": hard,
        "warnings": warnings,
        "skipped_checks": plan["skip"],
        "downgraded_checks": plan["downgrade"],
        "requirements": plan["requirements"],
        "totals": {
            "hosts": len(hosts),
            "reachable": len([h for h in hosts.values() if h["reachable"]]),
            "gpus": gpus_total,
            "usable_gpus": sum(len(h["usable_gpus"]) for h in hosts.values()),
            "unverified_gpus": sum(len(h["unverified_gpus"]) for h in hosts.values()),
        },
        "hosts": hosts,
        "summary_file": None,
        "notes": [],
    }
    if kind == "cleanup":
        summary["since"] = iso(plan["since"]) if plan.get("since") else None
        summary["since_source"] = plan.get("since_source")
        summary["totals"]["bytes_freed"] = sum(h.get("bytes_freed") or 0 for h in hosts.values())
    return summary


def not_applicable_summary(plan, finished=None):
    """A cleanup for a step outside cleanup_steps: nothing was done, and the summary says so."""
    summary = build_summary(plan, [], finished)
    summary["notes"].append("nothing to do: step %s is not a distributed step (cleanup_steps: %s)"
                            % (plan["step"], ", ".join(str(s) for s in plan["cleanup_steps"])))
    return summary


def file_stamp(epoch):
    """UTC time for file names, sortable as text: 20261125T150212.000001Z (one clock reading)."""
    seconds, micros = divmod(int(round(epoch * 1000000)), 1000000)
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds)) + ".%06dZ" % micros


def write_summary(summary, summary_dir, keep=500, now=None):
    """Write the summary as <dir>/<prefix>_step<N>_<UTC timestamp>.json (one new file per run).

    Returns the path. The oldest files of this kind beyond ``keep`` (all steps together, by the
    time in their names) are removed. Raises OSError.
    """
    folder = os.path.expanduser(summary_dir)
    os.makedirs(folder, exist_ok=True)
    prefix = FILE_PREFIX[summary["kind"]]
    stamp = file_stamp(time.time() if now is None else now)
    base = os.path.join(folder, "%s_step%s_%s" % (prefix, summary["step"], stamp))
    path, attempt = base + ".json", 0
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileExistsError:
            attempt += 1
            path = "%s-%d.json" % (base, attempt)
    summary["summary_file"] = path
    with os.fdopen(fd, "w") as handle:
        json.dump(summary, handle, indent=2, sort_keys=True)
        handle.write("\n")
    if keep:
        named = re.compile(r"^%s_step\d+_(\d{8}T\d{6}\.\d{6}Z)(?:-(\d+))?\.json$" % prefix)
        ours = []
        for name in os.listdir(folder):
            match = named.match(name)
            if match:
                ours.append((match.group(1), int(match.group(2) or 0), name))
        for _stamp, _attempt, name in sorted(ours)[:-keep]:
            try:
                os.remove(os.path.join(folder, name))
            except OSError:
                pass
    return path


# ---------------------------------------------------------------- the verdict block


def human_bytes(num):
    """1536 -> '1.5 KiB': sizes in the verdict block."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if num < 1024 or unit == "GiB":
            return "%d bytes" % num if unit == "bytes" else "%.1f %s" % (num, unit)
        num /= 1024.0


def headline(summary):
    kind, step = summary["kind"], summary["step"]
    totals = summary["totals"]
    if kind == "cleanup":
        if not summary["applies"]:
            return "Cleanup: nothing to do for step %s (not a distributed step)" % step
        cleaned = len([h for h in summary["hosts"].values() if h["reachable"] and h["status"] != "failed"])
        text = "Cleanup for step %s complete: %d of %d node(s) cleaned, %s freed" % (
            step, cleaned, totals["hosts"], human_bytes(totals.get("bytes_freed", 0)))
        return text + (", %d warning(s)" % len(summary["warnings"]) if summary["warnings"] else "")
    scope = "%d host(s), %d usable GPU(s)" % (totals["hosts"], totals["usable_gpus"])
    if totals.get("unverified_gpus"):
        scope += ", %d unverified" % totals["unverified_gpus"]
    if summary["blocked"]:
        return "Preflight BLOCKED for step %s: %d hard failure(s), %d warning(s) (%s)" % (
            step, len(summary["hard_failures"]), len(summary["warnings"]), scope)
    if summary["warnings"]:
        return "Preflight PASSED for step %s with %d warning(s) (%s)" % (step, len(summary["warnings"]), scope)
    return "Preflight PASSED for step %s (%s)" % (step, scope)


def render_lines(summary):
    """The short block that ends the output: every hard failure and warning with its fix."""
    word = "Preflight" if summary["kind"] == "preflight" else "Cleanup"
    lines = [headline(summary)]
    for label, items in (("BLOCKED", summary["hard_failures"]), ("WARNING", summary["warnings"])):
        for item in items:
            lines.append("%s %s: %s: %s" % (word, label, item["check"], item["message"]))
            if item.get("fix"):
                lines.append("    fix: %s" % item["fix"])
    lines.extend("%s note: %s" % (word, note) for note in summary.get("notes", []))
    if summary.get("summary_file"):
        lines.append("Summary: %s" % summary["summary_file"])
    return lines


def blocked_message(summary):
    """One line for the failing task: what blocked, where."""
    where = "; ".join("%s on %s" % (item["check"], item["host"]) for item in summary["hard_failures"])
    return "%s: %s" % (headline(summary), where)
