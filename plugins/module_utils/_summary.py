# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the one judge, and the summary document it writes.

``build_summary`` judges each host's results once for the whole cluster (``_checks.judge``) and
produces the versioned summary document (docs/SUMMARY_SCHEMA.md); ``write_summary`` writes it
atomically; ``render_lines`` makes the verdict block. The ``preflight_report`` action plugin, the
summary callback and the Python bridge (for a run that ended without a summary) all use it, so
there is one verdict and one wording. Families come from ``_families``.
"""

from __future__ import annotations

import json
import os
import re
import time

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks, _families, _files, _pci, _plan, _steps
from ansible_collections.gpuops.preflight.plugins.module_utils._timeparse import file_stamp, iso
from ansible_collections.gpuops.preflight.plugins.module_utils._values import human_bytes, is_number, printable, type_name

SCHEMA = _plan.SUMMARY_SCHEMA
SCHEMA_VERSION = 1
# The "host" of a problem of the run itself (a controller check such as run_budget).
RUN_HOST = "controller"


def is_run_item(item, summary):
    """Whether an item is a problem of the run itself (one of its ``run_checks``), not of a host: a host
    may be named "controller" too."""
    return item.get("host") == RUN_HOST and item.get("check") in (summary.get("run_checks") or {})


def _list(value):
    return isinstance(value, list)


def _mapping(value):
    return isinstance(value, dict)


def _mappings(value):
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _whole(value):
    return isinstance(value, int) and not isinstance(value, bool)


# Host facts a node result gives the summary, when it has them, each with the shape the judge, the report and
# the history read it in. The result comes from a host module that may not be this one (another version, a host
# changed by hand): a fact of another shape is left out and said in the host's ``unreadable_facts``, never a
# traceback that costs the verdict.
HOST_FACTS = {
    "gpus": _mappings, "gpu_count": _whole, "expected_gpu_count": _whole, "usable_gpus": _list,
    "unverified_gpus": _list, "gpu_tool": _mapping, "processes": _mappings, "kernel_log": _mapping,
    "elapsed_s": is_number, "caches": _mapping, "clocks": _mapping, "bytes_freed": _whole, "fix": _mapping,
}


# ---------------------------------------------------------------- judging


# The fields of a failed or unreachable host's result that the judge quotes.
_SAID = ("msg", "module_stderr", "module_stdout")


def _text(value):
    """A field the judge quotes, as text whatever it holds (None stays None: said nothing)."""
    return value if value is None or isinstance(value, str) else str(value)


def _one_line(text):
    """Text from ssh or a host (CR LF, banners, tracebacks) as one line: a problem's message is one line."""
    return " ".join((text or "").split())


def _last_line(text):
    lines = [line.strip() for line in (text or "").replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _short_ssh_error(message):
    text = _last_line(message) or "no answer"
    text = re.sub(r"^(Task failed:\s*)?(Failed to connect to the host via ssh:\s*)?(ssh:\s*)?", "", text)
    if text.endswith(":"):
        # e.g. 'Data could not be sent to remote host "x". Make sure that this host can be reached over ssh:'
        # with nothing after it: ssh died mid-run without a word.
        text += " the SSH connection was lost during the run"
    return text[:240]


# SSH failures where the host answered and the remedy is not "is it up, is its address right", first match first:
# (what ssh printed, the reason, the fix). The reason is filled from the match's named groups and ``where`` (the
# old key's file and line, when ssh names them); the fix from ``address``.
SSH_CAUSES = (
    (r"REMOTE HOST IDENTIFICATION HAS CHANGED|has changed and you have requested strict checking",
     "Host key verification failed: its SSH host key is not the one known_hosts holds%(where)s",
     "If the host was reinstalled or its key replaced, compare the new key's fingerprint with the host's console, "
     "then replace the old entry (ssh-keygen -R %(address)s -f <known_hosts>); otherwise treat it as a possible "
     "man-in-the-middle and do not run the step there. Host key checking stays on."),
    (r"Host key verification failed",
     "Host key verification failed: known_hosts holds no key for it",
     "Add the host's key to the known_hosts file ssh uses (ssh-keyscan %(address)s, its fingerprint compared with the "
     "host's console). Host key checking stays on."),
    (r"(?P<login>\S+@\S+?): Permission denied \((?P<methods>[^)]*)\)",
     "SSH login refused (%(login)s: Permission denied (%(methods)s))",
     "The host answers but refuses the login: check ansible_user and ansible_ssh_private_key_file in the inventory, "
     "and that the key's public half is in that user's authorized_keys on the host."),
)
_OFFENDING_KEY = re.compile(r"Offending \S+ key in (\S+?):(\d+)")


def _ssh_cause(message, address):
    """(reason, fix) of the first SSH_CAUSES entry ssh's ``message`` matches, else None."""
    text = message or ""
    for pattern, reason, fix in SSH_CAUSES:
        found = re.search(pattern, text)
        if found:
            offending = _OFFENDING_KEY.search(text)
            values = dict(found.groupdict(), address=address,
                          where=" (the old key: %s line %s)" % offending.groups() if offending else "")
            return reason % values, fix % values
    return None


# The AnsiballZ wrapper writes the module's payload into the host's temp folder before the module can start
# (with pipelining: $TMPDIR, else /tmp, /var/tmp, the home folder; without it: ~/.ansible/tmp first).
TEMP_FIX = ("Free space in the host's temp folder ($TMPDIR, else /tmp; ~/.ansible/tmp when pipelining is off), or make "
            "one writable: Ansible unpacks every module there before it runs.")
LOGIN_FIX = ("Check that `ssh <user>@%s true` (the inventory's user) returns at once: if it hangs, the user's shell rc "
             "file (~/.bashrc, ~/.profile) or an sshd ForceCommand waits, and every command waits with it; fix it "
             "there. If it returns, a read on the host is stuck (a hung GPU driver): run with -vvv.")


def _wrapper_failed(stderr):
    """Whether a traceback ends in the AnsiballZ wrapper itself (or the tempfile calls it makes), before the
    module ran: a module that raised has frames of its own below ``_ansiballz_main``."""
    frames = re.findall(r'File "([^"]+)", line \d+, in (\S+)', stderr or "")
    starts = [i for i, (_path, function) in enumerate(frames) if function == "_ansiballz_main"]
    return bool(starts) and all(os.path.basename(path) == "tempfile.py" for path, _function in frames[starts[-1] + 1:])


def _host_problem(kind, host, address, res, plan):
    """(check, message, fix) when the host gave no check results, else None; fix None: the check's own."""
    where = host if not address or address == host else "%s (%s)" % (host, address)
    if res is None:
        return _checks.PROBE, "%s: no result from the host (it did not run the %s)" % (where, kind), None
    if not isinstance(res, dict):
        return _checks.PROBE, "%s: the %s module's result cannot be read: it is %s (%s), not a mapping" % (
            where, kind, type_name(res), printable(repr(res), 60)), None
    # What Ansible and ssh said is text; a result from elsewhere (a module of another version) may hold anything.
    res = dict(res, **dict((key, _text(res[key])) for key in _SAID if key in res))
    if res.get("unreachable"):
        cause = _ssh_cause(res.get("msg"), address or host)
        if cause:
            return _checks.SSH, "%s unreachable: %s" % (where, cause[0]), cause[1]
        return _checks.SSH, "%s unreachable: %s" % (where, _short_ssh_error(res.get("msg"))), None
    if "checks" in res and not res.get("failed"):
        unreadable = _checks.unreadable_results(res["checks"])
        if unreadable is None:
            return None
        return _checks.PROBE, "%s: the %s module's result cannot be read: %s" % (where, kind, unreadable), None
    msg = _one_line(res.get("msg"))
    if res.get("timedout") or "timed out" in msg:
        # The task backstop: nothing came back, and a login that never starts the module looks the same.
        return _checks.PROBE, ("%s: the %s module did not finish within %ss; no check result came back (the login may "
                               "hang before it starts)" % (where, kind, plan.get("host_timeout"))), \
            LOGIN_FIX % (address or host)
    stderr = _last_line(res.get("module_stderr"))
    stdout = (res.get("module_stdout") or "").strip()
    if stderr and _wrapper_failed(res.get("module_stderr")):
        # The wrapper failed before the module started: it could not write the payload.
        return _checks.PROBE, "%s: the %s module could not start: Ansible could not unpack it into the host's temp " \
            "folder: %s" % (where, kind, stderr[:300]), TEMP_FIX
    # Without pipelining the module is copied to ~/.ansible/tmp first.
    fix = TEMP_FIX if "failed to transfer file" in msg and "No space left on device" in msg else None
    detail = msg or "module failure"
    if stdout and not stdout.startswith("{"):
        # No JSON: what the host printed instead (a login shell such as nologin: "This account is currently not available.")
        detail += ": the host printed: %s" % _last_line(stdout)
    if stderr:
        detail += ": " + stderr
    return _checks.PROBE, "%s: the %s module failed: %s" % (where, kind, _one_line(detail)[:400]), fix


def build_summary(plan, host_results, finished=None, pending=()):
    """The summary document. host_results: [(host, address, registered result or None)] in inventory order.

    ``pending``: hosts still running when the run stopped (the bridge builds a summary from the events
    of a run that timed out): listed as pending, judged for nothing.
    """
    family = _families.family(plan["kind"])
    registry = family.checks
    hard, warnings, hosts = [], [], {}
    for host, address, res in host_results:
        entry = {"address": address, "reachable": True, "status": "passed", "checks": {}, "gpus": [],
                 "gpu_count": None, "expected_gpu_count": None, "usable_gpus": [], "unverified_gpus": [],
                 "excluded_gpus": [], "gpu_tool": None, "processes": [], "kernel_log": None, "elapsed_s": None}
        problems = []
        failure = None if host in pending else _host_problem(family.kind, host, address, res, plan)
        if host in pending:
            entry.update(reachable=None, status="pending")
        elif failure:
            check, message, fix = failure
            fix = fix or registry[check].fix
            entry["reachable"] = check != _checks.SSH
            entry["status"] = "unreachable" if check == _checks.SSH else "failed"
            entry["error"] = message
            if check not in plan["skip"]:
                problems.append(_checks.problem(check, _checks.FAIL, message, fix))
            else:
                # Skipping the check does not make the host's silence a pass: none of its checks ran.
                problems.append(_checks.problem(check, _checks.UNKNOWN, "%s; none of its checks ran (%s is in %s_skip)"
                                                % (message, check, family.option_prefix), fix))
        else:
            for name, result in _checks.read_results(res["checks"], plan.get("host_checks") or ()).items():
                entry["checks"][name] = dict((k, result.get(k)) for k in ("status", "message", "elapsed_s", "timed_out"))
                for item in result.get("problems", []):
                    problems.append(dict(item, message="%s: %s" % (host, item["message"])))
            for key, shaped in HOST_FACTS.items():
                if key not in res:
                    continue
                if res[key] is None:  # not known: a list keeps its empty default
                    entry.setdefault(key, None)
                elif shaped(res[key]):
                    entry[key] = res[key]
                else:
                    entry.setdefault("unreadable_facts", []).append(key)
            gpus = entry["gpus"] or []
            mixed = _pci.mixed_vendors(gpus)
            entry["excluded_gpus"] = [_pci.gpu_name(g, mixed) for g in gpus if g.get("excluded")]
        for item in problems:
            verdict, message = _checks.judge(item, family, plan["downgrade"])
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

    # Checks of the run itself (run_budget), judged like the hosts' problems; their host is the controller.
    for result in (plan.get("run_checks") or {}).values():
        for item in result.get("problems", []):
            verdict, message = _checks.judge(item, family, plan["downgrade"])
            (hard if verdict == _checks.BLOCK else warnings).append(
                {"host": RUN_HOST, "address": None, "check": item["check"], "status": item["status"], "message": message,
                 "fix": item.get("fix")})

    finished = time.time() if finished is None else finished
    gpus_total = sum(len(h["gpus"]) for h in hosts.values())
    summary = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "kind": family.kind,
        "step": _steps.step_value(plan["step"]) if plan.get("step") is not None else None,
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
        "run_checks": dict((name, dict((k, r.get(k)) for k in ("status", "message", "elapsed_s", "timed_out", "details")))
                           for name, r in (plan.get("run_checks") or {}).items()),
        "summary_file": None,
        "notes": [],
    }
    # A family's own top-level fields (the serving gate's instance), from its plan; never a core field.
    for key, value in (plan.get("extra") or {}).items():
        summary.setdefault(key, value)
    if family.unknown_blocks:
        # A readiness gate answers one question: may the service start (the local gate also says no to bad input).
        summary["ready"] = summary["passed"]
    if "since_source" in plan and family.never_block:
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


def write_summary(summary, summary_dir, keep=500, now=None):
    """Write the summary as <dir>/<prefix>_step<N>_<UTC timestamp>.json (one new file per run).

    Returns the path. The file is written under a temporary name and renamed: a full disk leaves no
    truncated summary behind. The oldest files of this kind beyond ``keep`` (all steps together, by
    the time in their names) are removed; ``keep`` 0 keeps them all. Raises OSError, ValueError for a
    negative ``keep``.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise ValueError("keep must be a whole number of 0 or more (0 keeps every summary), got %r" % (keep,))
    folder = os.path.expanduser(summary_dir)
    os.makedirs(folder, exist_ok=True)
    family_prefix = _families.family(summary["kind"]).file_prefix
    prefix = family_prefix
    if summary.get("step") is not None:
        prefix = "%s_step%s" % (prefix, _steps.parse_step(summary["step"]))
    stamp = file_stamp(time.time() if now is None else now)
    base = os.path.join(folder, "%s_%s" % (prefix, stamp))
    # The content is complete on disk before it gets its name (a full disk leaves no truncated
    # summary, a reader never sees half of one); link() takes a name no other run has.
    temp = os.path.join(folder, ".%s.tmp-%d" % (prefix, os.getpid()))
    path, attempt = base + ".json", 0
    try:
        while True:
            _files.write_atomic(temp, json.dumps(dict(summary, summary_file=path), indent=2, sort_keys=True) + "\n")
            try:
                os.link(temp, path)
                break
            except FileExistsError:
                attempt += 1
                path = "%s-%d.json" % (base, attempt)
    finally:
        if os.path.lexists(temp):
            os.remove(temp)
    summary["summary_file"] = path
    # Oldest first by the time in the name, then the -N of a name taken twice in one microsecond.
    _files.prune(folder, _plan.summary_name_pattern(family_prefix), keep,
                 key=lambda match: (match.group(2), int(match.group(3) or 0)))
    return path


# ---------------------------------------------------------------- the verdict block


def headline(summary):
    family = _families.family(summary["kind"])
    word, totals = family.word, summary["totals"]
    step = " for step %s" % summary["step"] if summary.get("step") is not None else ""
    if family.never_block:
        if not summary["applies"]:
            return "%s: nothing to do%s (not a distributed step)" % (word, step)
        cleaned = len([h for h in summary["hosts"].values() if h["reachable"] and h["status"] != "failed"])
        # check mode (--check) removes nothing: say what a real run would free
        dry = any((h.get("caches") or {}).get("check_mode") for h in summary["hosts"].values())
        text = "%s%s complete: %d of %d node(s) cleaned, %s %s" % (
            word, step, cleaned, totals["hosts"], human_bytes(totals.get("bytes_freed", 0)),
            "would be freed (check mode: nothing removed)" if dry else "freed")
        return text + (", %d warning(s)" % len(summary["warnings"]) if summary["warnings"] else "")
    scope = "%d host(s)" % totals["hosts"]
    if family.probes_gpus:
        scope += ", %d usable GPU(s)" % totals["usable_gpus"]
        if totals.get("unverified_gpus"):
            scope += ", %d unverified" % totals["unverified_gpus"]
    if summary["blocked"]:
        return "%s BLOCKED%s: %d hard failure(s), %d warning(s) (%s)" % (
            word, step, len(summary["hard_failures"]), len(summary["warnings"]), scope)
    if summary["warnings"]:
        return "%s PASSED%s with %d warning(s) (%s)" % (word, step, len(summary["warnings"]), scope)
    return "%s PASSED%s (%s)" % (word, step, scope)


def render_lines(summary):
    """The short block that ends the output: every hard failure and warning with its fix, one line each.

    Messages quote log lines and tool output: each line is ``printable`` (no escape sequence or control
    character reaches the operator's terminal, a newline does not break the block).
    """
    word = _families.family(summary["kind"]).word
    lines = [headline(summary)]
    for label, items in (("BLOCKED", summary["hard_failures"]), ("WARNING", summary["warnings"])):
        for item in items:
            lines.append("%s %s: %s: %s" % (word, label, item["check"], item["message"]))
            if item.get("fix"):
                lines.append("    fix: %s" % item["fix"])
    lines.extend("%s note: %s" % (word, note) for note in summary.get("notes", []))
    if summary.get("summary_file"):
        lines.append("Summary: %s" % summary["summary_file"])
    return [printable(line) for line in lines]


def blocked_message(summary):
    """One line for the failing task: what blocked, where."""
    where = "; ".join("%s on %s" % (item["check"], item["host"]) for item in summary["hard_failures"])
    return printable("%s: %s" % (headline(summary), where))
