"""The report of one preflight or cleanup run, built from the summary document and the events.

When the playbook produced its summary (docs/SUMMARY_SCHEMA.md), the report is that summary:
its judged hard failures and warnings, its hosts, its verdict lines. When it did not (a timeout,
a cancel, an error), the report is built from the events that did arrive, judged by the SAME
judge the playbook uses (the collection's ``_summary.build_summary``, imported through
``collection``): unreachable hosts are hard ``ssh`` failures naming host and address, hosts
that reported are judged, and what was still pending is listed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from . import locate
from .collection import module_utils
from .events import Collector

# Report.status values; blocked_by names the cause in as_step_result().
PASSED, BLOCKED, TIMEOUT, CANCELED, ERROR, UNAVAILABLE = (
    "passed", "blocked", "timeout", "canceled", "error", "unavailable")
# as_step_result()'s blocked_by: "<kind>_<cause>", e.g. preflight_check, preflight_timeout.
CAUSE = {BLOCKED: "check", TIMEOUT: "timeout", CANCELED: "canceled", ERROR: "error", UNAVAILABLE: "unavailable"}


@dataclass
class Item:
    """A hard failure or a warning: as in the summary document."""

    host: str
    check: str
    message: str
    fix: str | None = None
    address: str | None = None
    status: str = "fail"
    gpu: dict | None = None

    @classmethod
    def from_summary(cls, item: Mapping[str, Any]) -> Item:
        return cls(host=item["host"], check=item["check"], message=item["message"], fix=item.get("fix"),
                   address=item.get("address"), status=item.get("status", "fail"), gpu=item.get("gpu"))

    @property
    def code(self) -> str:
        return module_utils("_families").code(self.check)

    def log_text(self) -> str:
        """How WATCHER's log names it: ``SSH unreachable: 192.168.3.120``, ``GPU_COUNT_MISMATCH: <message>``."""
        if self.check == module_utils("_checks").SSH:
            return "SSH unreachable: %s" % (self.address or self.host)
        return "%s: %s" % (self.code, self.message)


@dataclass
class Report:
    """One preflight or cleanup run, as WATCHER reads it (docs/WATCHER.md, "Report")."""

    kind: str
    step: Any
    status: str
    run_id: str
    started_at: str | None
    finished_at: str | None
    duration_s: float
    hard_failures: list[Item] = field(default_factory=list)
    warnings: list[Item] = field(default_factory=list)
    hosts: dict[str, dict] = field(default_factory=dict)
    summary: dict | None = None
    lines: list[str] = field(default_factory=list)
    error: str | None = None
    pending: dict | None = None
    failures: list[dict] = field(default_factory=list)
    stats: dict | None = None  # the play recap: ok, failures, dark, ignored, ... (host -> count)
    runner_status: str | None = None
    rc: int | None = None
    timeout_s: float | None = None
    private_dir: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    @property
    def blocked(self) -> bool:
        return not self.passed

    @property
    def blocked_by(self) -> str | None:
        cause = CAUSE.get(self.status)
        return "%s_%s" % (self.kind, cause) if cause else None

    @property
    def usable_gpus(self) -> dict[str, list]:
        return {host: list(facts.get("usable_gpus") or []) for host, facts in self.hosts.items()}

    @property
    def word(self) -> str:
        try:
            return module_utils("_families").family(self.kind).word
        except (locate.IntegrationUnavailable, ValueError):  # no collection to ask (the report says why)
            return self.kind.capitalize()

    def warning_texts(self) -> list[str]:
        return [item.log_text() for item in self.warnings]

    def reason(self) -> str:
        """One line: why the step may not run (or, on a pass, the verdict's headline)."""
        return " ".join(self._reason().split())

    def _reason(self) -> str:
        if self.status == PASSED:
            return self.lines[0] if self.lines else "%s passed for step %s" % (self.word, self.step)
        if self.status == BLOCKED:
            return "%s BLOCKED: %s" % (self.word, "; ".join(i.log_text() for i in self.hard_failures))
        if self.status == TIMEOUT:
            text = "%s timed out after %ss" % (self.word, _seconds(self.timeout_s))
            pending = (self.pending or {}).get("hosts")
            if pending:
                checks = self.pending.get("checks") or {}
                text += "; still pending: %s" % ", ".join(
                    "%s (%s)" % (h, ", ".join(checks[h])) if checks.get(h) else h for h in pending)
            elif self.pending:
                text += " (at the %s)" % self.pending["stage"]
        elif self.status == CANCELED:
            text = "%s canceled (at the %s)" % (self.word, (self.pending or {}).get("stage", "start"))
        elif str(self.error).startswith("%s cannot run" % self.word):
            text = str(self.error)  # the plan's own message ("Preflight cannot run: step 9 is not ...")
        else:
            text = "%s %s: %s" % (self.word, "unavailable" if self.status == UNAVAILABLE else "could not run",
                                  self.error)
        # What was already known to block still says so (an unreachable host, a missing file).
        if self.hard_failures:
            text += "; " + "; ".join(i.log_text() for i in self.hard_failures)
        return text

    def as_step_result(self) -> dict:
        """What WATCHER's run_step() returns for a step the preflight stopped, or its warnings on a pass."""
        if self.passed:
            return {"success": True, "warnings": self.warning_texts()}
        return {"success": False, "error": self.reason(), "blocked_by": self.blocked_by}

    def as_dict(self) -> dict:
        out = asdict(self)
        out.update(passed=self.passed, blocked_by=self.blocked_by, usable_gpus=self.usable_gpus,
                   reason=self.reason())
        return out


def _seconds(value: float | None) -> str:
    return "?" if value is None else ("%.1f" % value).rstrip("0").rstrip(".")


# ---------------------------------------------------------------- building


# What the report takes from a summary, with the type it must have: a summary that lacks one, or holds it in
# another type ("blocked": "false", a hard failure naming no host), is no verdict the bridge can pass on.
SUMMARY_FIELDS = (("kind", str), ("blocked", bool), ("passed", bool), ("hard_failures", list), ("warnings", list),
                  ("hosts", dict))
ITEM_FIELDS = (("host", str), ("check", str), ("message", str))


def _type(value: object) -> str:
    return "null" if value is None else type(value).__name__


def summary_problem(summary: Mapping[str, Any], kind: str, step: Any) -> str | None:
    """Why ``summary`` (published by the playbook through set_stats or its verdict task) is no verdict for
    this run: a field missing or of the wrong type, another kind's or another step's summary, a pass that
    lists hard failures. None when it can be read."""
    for name, kind_of in SUMMARY_FIELDS:
        if name not in summary:
            return "it has no %s" % name
        if not isinstance(summary[name], kind_of):
            return "its %s is %s (%s), not %s" % (name, _type(summary[name]), _short(summary[name]), kind_of.__name__)
    for name in ("hard_failures", "warnings"):
        for number, item in enumerate(summary[name], 1):
            if not isinstance(item, Mapping):
                return "%s entry %d is %s, not a mapping" % (name, number, _type(item))
            for key, kind_of in ITEM_FIELDS:
                if not isinstance(item.get(key), kind_of):
                    return "%s entry %d: its %s is %s, not %s" % (
                        name, number, key, _type(item.get(key)), kind_of.__name__)
    for host, facts in summary["hosts"].items():
        problem = _host_problem(facts)
        if problem:
            return "host %s: %s" % (_short(host), problem)
    if summary["kind"] != kind:
        return "it is a %s summary, not a %s one" % (_short(summary["kind"]), kind)
    # The collection's summary: blocked exactly when it lists a hard failure, passed its negation.
    if summary["passed"] == summary["blocked"] or summary["blocked"] != bool(summary["hard_failures"]):
        return "it says passed %s and blocked %s with %d hard failure(s)" % (
            summary["passed"], summary["blocked"], len(summary["hard_failures"]))
    if step is not None and not _same_step(summary.get("step"), step):
        return "it is step %s's summary, not step %s's" % (_short(summary.get("step")), step)
    return None


def _host_problem(facts: object) -> str | None:
    """Why a summary's host entry cannot be read (the report, its log lines and the CLI's table read each
    check's status and the facts the judge keeps, in the collection's shapes, _summary.HOST_FACTS)."""
    if not isinstance(facts, Mapping):
        return "its entry is %s, not a mapping" % _type(facts)
    checks = facts.get("checks")
    if checks is not None:
        if not isinstance(checks, Mapping):
            return "its checks are %s, not a mapping" % _type(checks)
        for name, result in checks.items():
            if not isinstance(result, Mapping):
                return "its %s result is %s, not a mapping" % (_short(name), _type(result))
    for key, shaped in module_utils("_summary").HOST_FACTS.items():
        if facts.get(key) is not None and not shaped(facts[key]):
            return "its %s is %s (%s), not of its shape" % (key, _type(facts[key]), _short(facts[key]))
    return None


def _short(value: object) -> str:
    return repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."


def _same_step(value: object, step: Any) -> bool:
    steps = module_utils("_steps")
    try:
        return steps.parse_step(value) == steps.parse_step(step)
    except ValueError:
        return False


def from_summary(report: Report, summary: dict, lines: list[str] | None) -> None:
    report.summary = summary
    report.step = summary.get("step", report.step)
    report.hard_failures = [Item.from_summary(i) for i in summary.get("hard_failures", [])]
    report.warnings = [Item.from_summary(i) for i in summary.get("warnings", [])]
    report.hosts = dict(summary.get("hosts") or {})
    given = isinstance(lines, list) and lines and all(isinstance(line, str) for line in lines)
    report.lines = list(lines) if given else module_utils("_summary").render_lines(summary)  # type: ignore[arg-type]
    report.status = BLOCKED if summary.get("blocked") else PASSED


def from_events(report: Report, events: Collector, addresses: Mapping[str, str]) -> None:
    """Judge what arrived, with the collection's own judge; hosts still running are listed as pending."""
    summary_mod = module_utils("_summary")
    plan = events.plan or module_utils("_plan").empty_plan(report.kind, report.step)
    dark = events.dark_hosts()
    hosts = list(events.play_hosts) + [h for h in list(dark) + list(events.node_results) if h not in events.play_hosts]
    results = []
    for host in hosts:
        res = dict(dark[host], unreachable=True) if host in dark else events.node_results.get(host)
        results.append((host, addresses.get(host, host), res))
    summary = summary_mod.build_summary(plan, results, pending=[h for h, _a, res in results if res is None])
    report.hard_failures = [Item.from_summary(i) for i in summary["hard_failures"]]
    report.warnings = [Item.from_summary(i) for i in summary["warnings"]]
    report.hosts = summary["hosts"]
    report.lines = summary_mod.render_lines(summary)[1:]  # the report's reason() stands in for the headline


def fallback_lines(report: Report) -> list[str]:
    """Verdict lines for a run without a summary: why it stopped, then what was judged (from_events)."""
    return [report.reason()] + list(report.lines)
