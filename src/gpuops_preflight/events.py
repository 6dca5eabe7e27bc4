"""Read a run's ansible-runner event stream into what the report is built from.

The playbooks publish their summary with ``set_stats`` (per_host false): it arrives in the
``playbook_on_stats`` event's ``event_data['artifact_data']`` (not in ``Runner.stats``,
ansible-runner #949). The per-task events give what a summary cannot when the run stops early:
each host's node result (live progress), unreachable hosts, failed tasks, the plan.

Live progress: each host's "started at" is the ``runner_on_start`` of its node task (Ansible sends it when
a worker takes the host, so with fewer forks than hosts the later ones start later). A progress object
that has a ``run_progress`` method also gets a ``RunProgress`` after every event that changes where the
run stands (progress.py draws the CLI's live line from it); a plain callable gets only each ``HostResult``.

Unreachable hosts: the roles run the node task with ``ignore_unreachable: true`` (the verdict is
taken once, for every host), so the play recap counts such a host as ``ignored``, not ``dark``;
ansible-runner still sends a ``runner_on_unreachable`` event for it. Both are read.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import failures
from .collection import module_utils

LOG = logging.getLogger("gpuops_preflight.events")

PLAN_ACTION, REPORT_ACTION = "preflight_plan", "preflight_report"
STAT_KEYS = ("ok", "changed", "failures", "dark", "ignored", "skipped", "rescued", "processed")
MAX_LINES = 200
# Error text kept from the event stream: each line, and all of them together (a 50 MB line is cut, not kept).
MAX_LINE_CHARS = 4096
MAX_ERROR_CHARS = 64 * 1024


@dataclass
class HostResult:
    """One host's result as it arrives: what a progress callback receives.

    ``checks`` are the host's check results ({name: {status, message, problems, ...}}) as the judge reads
    them (a malformed one ``unknown``, saying what was wrong), not yet judged: the verdict (excluded GPUs,
    downgraded checks) is the report's.
    """

    kind: str
    host: str
    status: str  # "checked", "failed" (the module did not report, or reported nothing readable), "unreachable"
    checks: dict[str, dict] = field(default_factory=dict)
    message: str | None = None
    usable_gpus: list | None = None
    elapsed_s: float | None = None


# RunProgress.stage, in order: before the plan's result; hosts being checked; the verdict task; the recap.
PLAN, CHECKS, VERDICT, DONE = "plan", "host checks", "verdict", "done"
_STAGES = (PLAN, CHECKS, VERDICT, DONE)


@dataclass(frozen=True)
class RunProgress:
    """Where a run stands, for a live display; times are the collector's clock (``time.monotonic``).

    ``total``: the hosts of the play, from the plan when it lists them (``plan["hosts"]``), else the hosts
    whose node task started so far (0 before the first; exact from the verdict stage on, when every host
    has run its node task, and before it whenever there are at least as many forks as hosts).
    ``slowest``: the host running longest (its node task started first among those still running).
    ``finished``: the host whose result came with this update, ``finished_after_s`` the seconds from its
    node task's start to its result.
    """

    kind: str
    word: str
    stage: str
    total: int
    done: int
    running: int
    slowest: str | None
    slowest_started: float | None
    at: float
    finished: HostResult | None = None
    finished_after_s: float | None = None


_INVENTORY_ERROR = re.compile(r"Failed to parse inventory with '(?:[\w.]*\.)?(\w+)' plugin: (.+)")


# Lines that say why a run failed, whatever event carries them: Ansible's error prefixes, an inventory that did
# not parse, ansible-runner's own word for a binary it could not start (rc 127, no event of Ansible at all).
_ERROR_LINES = (re.compile(r"^(\[ERROR\]|ERROR!)"), _INVENTORY_ERROR,
                re.compile(r"^The command was not found or was not executable: "))


def _clean(line: str) -> str:
    """``[WARNING]: Failed to parse inventory with 'ansible_collections....watcher_config' plugin: X``
    -> ``cannot parse the inventory (watcher_config): X``; display prefixes dropped."""
    match = _INVENTORY_ERROR.search(line)
    if match:
        return "cannot parse the inventory (%s): %s" % match.groups()
    return re.sub(r"^(\[(ERROR|WARNING)\]:?|ERROR!)\s*", "", line)


def _action(data: Mapping[str, Any]) -> str:
    """``gpuops.preflight.node_preflight`` -> ``node_preflight``."""
    return str(data.get("resolved_action") or data.get("task_action") or "").rsplit(".", 1)[-1]


_SURROGATE = re.compile("[\ud800-\udfff]")


def _encodable(value: Any) -> Any:
    """``value`` with every text that holds a lone surrogate made encodable (each one U+FFFD), the rest as it
    is. Ansible reads a tool's bytes that are not UTF-8 as surrogate escapes, and they reach the events;
    such text breaks every UTF-8 sink downstream (WATCHER's log handler, a print, a file), so it is mended
    once, here, as it arrives. Containers are copied only when something in them changed."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value
    if isinstance(value, Mapping):
        items = [(_encodable(k), _encodable(v)) for k, v in value.items()]
        if all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(items, value.items())):
            return value
        return dict(items)
    if isinstance(value, list):
        mended = [_encodable(item) for item in value]
        return value if all(a is b for a, b in zip(mended, value)) else mended
    return value


# A task's result as a mapping (failures.task_result: the failure record reads it the same way).
_res = failures.task_result


def _checks_of(res: Mapping[str, Any]) -> tuple[dict[str, dict], str | None]:
    """A node result's checks as the judge reads them (a malformed one unknown, saying why), and, as the
    judge's probe failure does, why there are none: no ``checks`` (the module failed), or none it can read."""
    if "checks" not in res:
        return {}, str(res.get("msg") or "the module returned no check results")
    model = module_utils("_checks")
    unreadable = model.unreadable_results(res["checks"])
    if unreadable is not None:
        return {}, "the module's result cannot be read: %s" % unreadable
    return model.read_results(res["checks"]), None


class Collector:
    """Event handler for ansible-runner; state is read by the report once the run ends."""

    def __init__(self, kind: str, run_id: str, step: object,
                 progress: Callable[[HostResult], object] | None = None, failure_log: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.kind, self.run_id, self.step = kind, run_id, step
        family = module_utils("_families").family(kind)
        self.node_action, self.stats_key, self.word = family.node_module, family.stats_key, family.word
        self.progress = progress
        watch = getattr(progress, "run_progress", None)
        self._watch: Callable[[RunProgress], object] | None = watch if callable(watch) else None
        self.clock = clock
        self.stage = PLAN
        # host -> when its node task started (clock), in the order they started
        self.started_at: dict[str, float] = {}
        self.running: dict[str, float] = {}     # the same, for hosts without a result yet, oldest first
        self.done: set[str] = set()             # hosts whose node result arrived (or that were unreachable)
        self.failure_log = failure_log
        self.play_hosts: list[str] = []
        self.node_results: dict[str, dict] = {}
        self.unreachable: dict[str, dict] = {}
        self.plan: dict | None = None
        self.plan_error: str | None = None
        self.report_result: dict | None = None
        self.summary: dict | None = None
        self.stats: dict | None = None
        self.failed_tasks: list[dict] = []
        self.fatal: list[str] = []  # messages of failed tasks that were not ignored
        self.error_lines: list[str] = []
        self._error_chars = 0
        self.lost_events: list[str] = []  # events whose data could not be read: "<file>: <why>"
        self.lost_count = 0

    # ---- the handler

    def __call__(self, event: Mapping[str, Any]) -> None:
        if not isinstance(event, Mapping):
            return
        event = _encodable(event)
        name = event.get("event")
        if name is None and "uuid" in event:
            # ansible-runner found no data file for it (a debug message only): the event came as its id alone
            self.lost(event, "its data file is missing")
            return
        data = event.get("event_data")
        data = data if isinstance(data, Mapping) else {}
        host = data.get("host") if isinstance(data.get("host"), str) else None
        action = _action(data)
        if name == "runner_on_start" and data.get("role"):
            self._add(self.play_hosts, host)
            if action == self.node_action:
                self._on_node_start(host)
            elif action == REPORT_ACTION:
                self.running.clear()  # the verdict task comes after every host's node task
                self._notify(VERDICT)
            elif action == PLAN_ACTION:
                self._notify(PLAN)
        elif name == "runner_on_ok":
            self._on_ok(host, action, _res(data))
        elif name == "runner_on_skipped" and action == self.node_action:
            self._on_node_skipped(host)  # a cleanup with nothing to do: the host is done, with no result
        elif name == "runner_on_failed":
            self._on_failed(event, host, action, data)
        elif name == "runner_on_unreachable":
            self._on_unreachable(event, host, _res(data))
        elif name == "playbook_on_stats":
            # The summary first, and each count only when it is one: a malformed stat never costs the verdict.
            artifacts = data.get("artifact_data")
            summary = artifacts.get(self.stats_key) if isinstance(artifacts, Mapping) else None
            if isinstance(summary, dict):
                self.summary = summary
            self.stats = {k: dict(data[k]) if isinstance(data.get(k), Mapping) else {} for k in STAT_KEYS}
            self._notify(DONE)
        elif name in ("error", "warning", "verbose"):
            self._on_text(name, event.get("stdout"))

    @staticmethod
    def _add(items: list[str], host: str | None) -> None:
        if host and host not in items:
            items.append(host)

    def _on_node_start(self, host: str | None) -> None:
        if host and host not in self.started_at:
            now = self.clock()
            self.started_at[host] = now
            if host not in self.done:
                self.running[host] = now
        self._notify(CHECKS)

    def _on_node_skipped(self, host: str | None) -> None:
        if host:
            self.done.add(host)
            self.running.pop(host, None)
        self._notify(CHECKS)

    def _on_ok(self, host: str, action: str, res: dict) -> None:
        if action == PLAN_ACTION and isinstance(res.get("plan"), dict):
            self.plan = res["plan"]
            self._notify(CHECKS)
        elif action == REPORT_ACTION:
            self.report_result = res
            if self.summary is None and isinstance(res.get("summary"), dict):
                self.summary = res["summary"]  # set_stats may never come (a cancel right after)
        elif action == self.node_action and host:  # a result naming no host is no host's result
            self.node_results[host] = res
            failures.GPU_STATES.remember(host, res, self.run_id)
            checks, unreadable = _checks_of(res)
            self._emit(HostResult(self.kind, host, "failed" if unreadable else "checked", checks, message=unreadable,
                                  usable_gpus=res.get("usable_gpus"), elapsed_s=res.get("elapsed_s")))

    def _on_failed(self, event: Mapping[str, Any], host: str, action: str, data: Mapping[str, Any]) -> None:
        res = _res(data)
        verdict = bool(self.report_result and res.get("msg")
                       and res.get("msg") == self.report_result.get("blocked_message"))
        if verdict and self.summary:
            gpu = {h["host"]: self._gpu_of(h["host"]) for h in self.summary.get("hard_failures", [])}
        else:
            gpu = self._gpu_of(host, res)
        rec = failures.record(event, run_id=self.run_id, kind=self.kind, step=self.step, gpu=gpu, verdict=verdict)
        self._capture(rec)
        if action == PLAN_ACTION:
            self.plan_error = res.get("msg") or "the plan failed"
        elif action == self.node_action and host:
            self.node_results[host] = res
            checks, unreadable = _checks_of(res)
            self._emit(HostResult(self.kind, host, "failed", checks, message=res.get("msg") or unreadable))
        if not data.get("ignore_errors") and not verdict:
            self.fatal.append(str(res.get("msg") or "task %s failed on %s" % (data.get("task"), host)))

    def _on_unreachable(self, event: Mapping[str, Any], host: str | None, res: dict) -> None:
        self._capture(failures.record(event, run_id=self.run_id, kind=self.kind, step=self.step,
                                      gpu=self._gpu_of(host) if host else None))
        if not host:
            return  # recorded; no host to judge unreachable
        self.unreachable[host] = res
        self._emit(HostResult(self.kind, host, "unreachable", message=res.get("msg")))

    def _on_text(self, name: str, text: object) -> None:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if not isinstance(text, str):
            return
        for line in text.splitlines():
            if len(self.error_lines) >= MAX_LINES or self._error_chars >= MAX_ERROR_CHARS:
                return
            line = line.strip()
            if len(line) > MAX_LINE_CHARS:
                line = "%s... (%d characters)" % (line[:MAX_LINE_CHARS], len(line))
            if line and (name == "error" or any(p.search(line) for p in _ERROR_LINES)):
                self.error_lines.append(_clean(line))
                self._error_chars += len(self.error_lines[-1])

    def lost(self, event: Mapping[str, Any], exc: object) -> None:
        """An event ansible-runner could not read (its data file cut short or missing): left out, and said."""
        name = "%s-partial.json" % event.get("uuid") if isinstance(event, Mapping) else "an event"
        self.lost_count += 1
        if len(self.lost_events) < MAX_LINES:
            self.lost_events.append(("%s: %s" % (name, exc))[:MAX_LINE_CHARS])
        LOG.warning("event %s of run %s could not be read, left out: %s", name, self.run_id, exc)

    def lost_text(self) -> str | None:
        if not self.lost_count:
            return None
        return "%d event(s) of the run could not be read (their data files cut short or missing), the first: %s" % (
            self.lost_count, self.lost_events[0])

    # ---- helpers

    def _gpu_of(self, host: str, res: Mapping[str, Any] | None = None) -> dict | None:
        state = failures.gpu_state(res) if res else None
        if state is None and host in self.node_results:
            state = failures.gpu_state(self.node_results[host])
        if state is not None:
            return dict(state, source="this run")
        return failures.GPU_STATES.get(host)

    def _capture(self, rec: dict) -> None:
        self.failed_tasks.append(rec)
        failures.log_record(rec)
        if self.failure_log:
            try:
                failures.append(self.failure_log, [rec])
            except OSError as exc:
                LOG.warning("cannot append to the failure log %s: %s", self.failure_log, exc)

    def _emit(self, result: HostResult) -> None:
        """A host's result: to the progress callback, then (with where the run now stands) to its watcher."""
        self.done.add(result.host)
        started = self.running.pop(result.host, None)
        if self.progress is not None:
            try:
                self.progress(result)
            except Exception:  # a broken callback must not stop the run or hide its result
                LOG.exception("progress callback failed for %s", result.host)
        self._notify(self.stage, result, started)

    def _notify(self, stage: str, finished: HostResult | None = None, started: float | None = None) -> None:
        """Move to ``stage`` (never back) and, when a watcher wants it, say where the run stands: O(1)."""
        if _STAGES.index(stage) > _STAGES.index(self.stage):
            self.stage = stage
        if self._watch is None:
            return
        now = self.clock()
        slowest = next(iter(self.running.items()), (None, None))
        hosts = (self.plan or {}).get("hosts")
        total = max(len(hosts) if isinstance(hosts, list) else 0, len(self.started_at), len(self.done))
        state = RunProgress(self.kind, self.word, self.stage, total, len(self.done), len(self.running),
                            slowest[0], slowest[1], now, finished,
                            None if started is None else max(0.0, now - started))
        try:
            self._watch(state)
        except Exception:  # as for the callback: the run goes on
            LOG.exception("progress display failed at the %s", self.stage)

    # ---- what the report asks

    def dark_hosts(self) -> dict[str, dict]:
        """Unreachable hosts: runner_on_unreachable events, and the recap's ``dark`` count."""
        hosts = dict(self.unreachable)
        for host in (self.stats or {}).get("dark", {}):
            hosts.setdefault(host, {"msg": "unreachable (play recap)"})
        return hosts

    def pending(self) -> dict:
        """Where the run was, and which hosts and checks had not reported."""
        done = set(self.node_results) | set(self.unreachable)
        listed = (self.plan or {}).get("host_checks")
        # only check names: the report's reason joins them (text would be its letters, a number a TypeError)
        checks = [c for c in listed if isinstance(c, str)] if isinstance(listed, list) else []
        if self.plan is None:
            stage = "plan"
        elif len(done) < len(self.play_hosts) or not self.play_hosts:
            stage = "host checks"
        elif self.summary is None:
            stage = "verdict"
        else:
            stage = "done"
        hosts = [h for h in self.play_hosts if h not in done] if stage in ("plan", "host checks") else []
        return {"stage": stage, "hosts": hosts,
                "checks": {h: checks for h in hosts if checks},
                "started": [h for h in self.started_at if h not in done]}
