"""Run the preflight, cleanup or training-health playbook through ansible-runner and build its report.

Each run: its own private folder (artifacts, collection link, Ansible temp files; removed after,
kept only on request), its own environment (environment.py), extra variables on the command line
only (``suppress_env_files``), ``ansible-playbook`` beside this interpreter (``binary=``), and a
cancel callback that enforces the overall timeout and the caller's cancel by stopping every
process of the run (procs.py). Runs share nothing, so threads may run them concurrently.
"""

from __future__ import annotations

import json
import logging
import math
import operator
import os
import re
import reprlib
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Union

from . import addresses, environment, failures, locate, oplog, procs, workdir
from .events import Collector, HostResult
from .collection import module_utils
from .names import INVENTORY_ENV
from .report import (CANCELED, ERROR, TIMEOUT, UNAVAILABLE, Report, fallback_lines, from_events, from_summary,
                     summary_problem)

LOG = logging.getLogger("gpuops_preflight.runner")
# How often (seconds) ansible-runner checks the cancel callback while the playbook is quiet.
POLL_S = 0.2

# Extra variables the bridge sets itself (the step, the playbooks' copies of it, the run's SSH control
# folder): a caller's extravars naming one would silently change what runs, so they are refused.
RESERVED_VARS = frozenset({"step", "preflight_step", "cleanup_step", "ansible_control_path_dir"})

# The extra variables travel as one -e argument, and Linux refuses any argument over 128 KiB
# (MAX_ARG_STRLEN: "Argument list too long" when ansible-playbook starts): a named limit well below it.
MAX_EXTRAVARS_BYTES = 96 * 1024
# A longer timeout is no timeout a caller meant (and 10**400 s overflows the clock): a year.
MAX_TIMEOUT_S = 366 * 24 * 3600
# ansible-runner writes each key into the -e JSON unquoted: only plain variable names.
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Cancel = Union[Callable[[], bool], threading.Event, None]
Progress = Union[Callable[[HostResult], object], None]


class InputError(ValueError):
    """Bad input found before anything runs."""


@dataclass(frozen=True)
class RunOptions:
    """How to run (the same for a preflight and a cleanup); see run_preflight."""

    extravars: Mapping[str, Any] | None = None
    timeout: float | None = None
    cancel: Cancel = None
    progress: Progress = None
    failure_log: str | None = None
    keep_artifacts: int = 0
    artifacts_dir: str | None = None
    ansible_cfg: str | None = None
    envvars: Mapping[str, str] | None = None
    verbosity: int = 0
    log: bool = True


class _Stopper:
    """ansible-runner's cancel_callback: the overall deadline, then the caller's cancel."""

    def __init__(self, token: str, timeout: float | None, cancel: Cancel,
                 terminated: threading.Event | None = None) -> None:
        self.token = token
        self.deadline = time.monotonic() + timeout if timeout else None
        self.cancel = cancel.is_set if isinstance(cancel, threading.Event) else cancel
        self.terminated = terminated  # SIGTERM to this process (_Termination)
        self.reason: str | None = None

    def requested(self) -> bool:
        if self.terminated is not None and self.terminated.is_set():
            self.reason = CANCELED
        elif self.deadline is not None and time.monotonic() >= self.deadline:
            self.reason = TIMEOUT
        elif self.cancel is not None:
            try:
                if self.cancel():
                    self.reason = CANCELED
            except Exception:  # a cancel check that breaks stops the run rather than the caller
                LOG.exception("cancel callback failed; stopping the run")
                self.reason = CANCELED
        return self.reason is not None

    def __call__(self) -> bool:
        if self.reason is None and not self.requested():
            return False
        # Before ansible-runner kills ansible-playbook's group: the tools live in groups of their own.
        procs.stop(self.token)
        return True


def _inventory(inventory: Any) -> Any:
    """The inventory for ansible-runner: a dict as is, paths made absolute and checked."""
    if inventory is None:
        inventory = os.environ.get(INVENTORY_ENV) or None
    if inventory is None:
        raise InputError("no inventory: pass inventory= (a path, a list of paths or a dict) or set %s"
                         % INVENTORY_ENV)
    if isinstance(inventory, Mapping):
        inventory = dict(inventory)  # written into the run's folder by _inventory_file: checked here, first
        try:
            json.dumps(inventory)
        except (TypeError, ValueError, RecursionError) as exc:
            raise InputError("inventory: a mapping that cannot be written as YAML: %s" % exc) from None
        return inventory
    sources = [inventory] if isinstance(inventory, (str, os.PathLike)) else _listed("inventory", inventory)
    if not sources:
        raise InputError("no inventory: the list of inventory sources is empty")
    paths = []
    for source in sources:
        path = _path("inventory", source)
        if not os.path.exists(path):
            raise InputError("inventory not found: %s" % path)
        paths.append(path)
    return paths[0] if len(paths) == 1 else paths


def _iso(epoch: float) -> str | None:
    """The collection's time format; None when the collection itself cannot be found (the report says why)."""
    try:
        return module_utils("_timeparse").iso(epoch)
    except locate.IntegrationUnavailable:
        return None


def execute(kind: str, step: Any, inventory: Any, own_values: Mapping[str, Any], options: RunOptions) -> Report:
    """Run one playbook and return its report; problems of the run are in the report, not raised.

    ``own_values``: the API's keyword arguments that are role variables (``skip`` for ``<kind>_skip``).
    """
    started, clock = time.time(), time.monotonic()
    report = Report(kind=kind, step=step, status=ERROR, run_id=uuid.uuid4().hex, started_at=_iso(started),
                    finished_at=None, duration_s=0.0, timeout_s=options.timeout)
    termination = _Termination()
    try:
        try:
            report.step, own_vars = check_input(kind, step, own_values, options)
            _execute(report, inventory, own_vars, options, termination.requested)
        except locate.IntegrationUnavailable as exc:
            report.status, report.error = UNAVAILABLE, str(exc)
        except InputError as exc:
            report.status, report.error = ERROR, str(exc)
        except Exception as exc:  # the bridge must hand WATCHER a report, whatever broke
            LOG.exception("%s run failed", kind)
            report.status, report.error = ERROR, "%s: %s" % (type(exc).__name__, exc)
        report.finished_at, report.duration_s = _iso(time.time()), round(time.monotonic() - clock, 3)
        if report.summary is None:
            report.lines = fallback_lines(report)
        if options.log:
            oplog.log_report(report)
    finally:
        termination.close()  # a SIGTERM that came during the run ends the process now, the run stopped
    return report


def check_input(kind: str, step: Any, own_values: Mapping[str, Any], options: RunOptions) -> tuple[Any, dict]:
    """The run's input checked as the run checks it before anything is made (InputError naming the problem):
    the step as the run takes it and the keyword arguments' role variables. guard_step checks the cleanup's
    input with it before the step runs."""
    step = _step(step)
    _check_options(options)
    own_vars = _own_vars(kind, own_values)
    _variables(step, own_vars, options.extravars)
    return step, own_vars


class _Termination:
    """SIGTERM during a run stops the run first (as a cancel: every process of it, its folders), then ends
    the process by SIGTERM as it would have at once: its default action would leave ansible-playbook's
    tools (in process groups of their own) running. Only where the default action is in place and in the
    main thread (only it may set a handler): a caller's own handler is never replaced."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._installed = (threading.current_thread() is threading.main_thread()
                           and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
        if self._installed:
            signal.signal(signal.SIGTERM, lambda _signum, _frame: self.requested.set())

    def close(self) -> None:
        if not self._installed:
            return
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        self._installed = False
        if self.requested.is_set():
            LOG.warning("SIGTERM during the run: the run is stopped, ending as asked")
            os.kill(os.getpid(), signal.SIGTERM)


def refused(kind: str, step: Any, error: str, log: bool = True) -> Report:
    """The report of a run refused before it started (bad input found by a caller such as guard_step):
    ``error``, never a pass; logged as execute logs its reports."""
    now = time.time()
    report = Report(kind=kind, step=step, status=ERROR, run_id=uuid.uuid4().hex, started_at=_iso(now),
                    finished_at=_iso(now), duration_s=0.0, timeout_s=None, error=error)
    report.lines = fallback_lines(report)
    if log:
        oplog.log_report(report)
    return report


def _execute(report: Report, inventory: Any, own_vars: Mapping[str, Any], options: RunOptions,
             terminated: threading.Event | None = None) -> None:
    integration = locate.find_integration()
    try:
        import ansible_runner
    except ImportError as exc:
        raise locate.IntegrationUnavailable("ansible-runner cannot be imported: %s" % exc)
    inventory = _inventory(inventory)
    try:
        plugins = environment.inventory_plugins(inventory)  # which plugin reads which file: before anything is made
    except ValueError as exc:
        raise InputError(str(exc)) from None
    stopper = _Stopper(report.run_id, options.timeout, options.cancel, terminated)
    if stopper.requested() and stopper.reason == CANCELED:
        report.status, report.pending = CANCELED, {"stage": "start", "hosts": [], "checks": {}, "started": []}
        return
    variables = _variables(report.step, own_vars, options.extravars)
    keep = max(0, int(options.keep_artifacts or 0))
    failure_log = failures.log_path(options.failure_log) or None
    private, control, temp = _run_folders(report, options.artifacts_dir)
    # The run's own SSH ControlPersist sockets (an extra variable: it wins over any inventory's
    # ansible_control_path_dir), so that its masters can be found and closed when the run ends.
    variables["ansible_control_path_dir"] = control
    try:
        _check_size(variables)  # with the folder's name in: what the run would pass
    except InputError:
        for path in (private, control, temp):
            workdir.remove(path)
        raise
    try:
        inventory = _inventory_file(inventory, private)
        collections = locate.link_collection(integration, private)
        env = environment.build(collections_dir=collections, private_dir=private, temp_dir=temp,
                                token=report.run_id, ansible_cfg=options.ansible_cfg or integration.ansible_cfg,
                                plugins=plugins, extra=options.envvars)
        events = Collector(report.kind, report.run_id, report.step, options.progress, failure_log)
        _write_settings(private)

        def on_event(event: dict) -> bool:
            try:
                events(event)
            except Exception:  # an exception here would abort ansible-runner mid-run
                LOG.exception("could not read event %s of run %s", event.get("event"), report.run_id)
            return bool(keep)  # events are written to the private folder only when it is kept

        try:
            # ansible_runner.run is init_runner + Runner.run: the Runner is made first to read its events
            # through _tolerant_events.
            result = ansible_runner.interface.init_runner(
                private_data_dir=private, ident=report.run_id, binary=integration.playbook_bin,
                cmdline="%s.%s.%s" % (locate.NAMESPACE, locate.NAME, report.kind), inventory=inventory, extravars=variables, envvars=env,
                quiet=True, suppress_env_files=True,
                event_handler=on_event, cancel_callback=stopper, verbosity=options.verbosity or None)
            _tolerant_events(result, events)
            result.run()
            report.runner_status, report.rc = result.status, result.rc
        except BaseException:
            stopper.reason = stopper.reason or CANCELED  # e.g. KeyboardInterrupt: leave nothing running
            raise
        finally:
            if stopper.reason:
                procs.stop(report.run_id)  # anything started between the stop and the kill
                left = procs.wait_gone(report.run_id)
                if left:
                    LOG.warning("processes of run %s still alive after the stop: %s", report.run_id, left)
        _build(report, events, stopper.reason, integration, env, inventory)
    finally:
        # Nothing of the run outlives it: not even idle SSH masters waiting out ControlPersist.
        procs.close_ssh_masters(control)
        workdir.remove(control)
        workdir.remove(temp)
        try:
            report.private_dir = workdir.finish(private, keep)
        except OSError as exc:  # a full disk: the verdict stands; a folder never marked would never be pruned
            LOG.warning("run %s: its folder %s could not be kept, removed: %s", report.run_id, private, exc)
            workdir.remove(private)


def _tolerant_events(runner: Any, events: Collector) -> None:
    """ansible-runner reads each event's data from the ``<uuid>-partial.json`` file the callback wrote, and a
    file cut short (the callback killed mid-write, a full disk) raised its JSONDecodeError out of the run,
    which then stopped mid-way. Such an event is left out and named (Collector.lost); the run goes on, and a
    run that ends without its summary says why."""
    read = runner.event_callback

    def event_callback(event_data: dict) -> None:
        try:
            read(event_data)
        except ValueError as exc:
            events.lost(event_data, exc)

    runner.event_callback = event_callback


def _run_folders(report: Report, artifacts_dir: str | None) -> tuple[str, str, str]:
    """The run's private folder, SSH control folder and temp folder; InputError naming the folder and the
    problem (a file where the folder should be, no permission, a full disk) when one cannot be made."""
    made: list[str] = []
    try:
        for make in (lambda: workdir.create(report.kind, report.step, artifacts_dir), workdir.control_dir,
                     workdir.temp_dir):
            made.append(make())
    except OSError as exc:
        for path in made:
            workdir.remove(path)
        problem = "%s: %s" % (exc.filename, exc.strerror) if exc.strerror and exc.filename else str(exc)
        raise InputError("the run's folders cannot be made: %s" % problem) from None
    return made[0], made[1], made[2]


def _inventory_file(inventory: Any, private: str) -> Any:
    """A dict inventory as a file of the run: ansible-runner would write it as hosts.json, which the
    collection's ansible.cfg leaves to the watcher_config plugin (the yaml plugin reads .yml only), and which
    environment.inventory_plugins never sees (it decides before the run's folder is made)."""
    if not isinstance(inventory, dict):
        return inventory
    path = os.path.join(private, "inventory.yml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(inventory))  # JSON is YAML; _inventory checked that it can be written
    return path


def _write_settings(private: str) -> None:
    """ansible-runner 2.4 drops a ``settings=`` argument when env/settings does not exist (it
    replaces it with the file's content), so the poll interval goes in the file. No secrets here."""
    folder = os.path.join(private, "env")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    with open(os.path.join(folder, "settings"), "w", encoding="utf-8") as handle:
        json.dump({"pexpect_timeout": POLL_S}, handle)


def _build(report: Report, events: Collector, stopped: str | None, integration: locate.Integration,
           env: Mapping[str, str], inventory: Any) -> None:
    report.failures = events.failed_tasks
    report.stats = events.stats
    unreadable = _unreadable_summary(report, events)
    if events.summary is not None and unreadable is None:
        # The verdict was taken before the stop: it stands (a cancel still cancels).
        from_summary(report, events.summary, (events.report_result or {}).get("lines"))
        if stopped == CANCELED:
            report.status, report.pending = CANCELED, events.pending()
        elif report.passed and not stopped and (report.runner_status, report.rc) != ("successful", 0):
            # A pass followed by a playbook that did not end well (killed, a task failed after the
            # verdict, unreachable hosts): the run cannot be read as a pass; what it found stays listed.
            report.status = ERROR
            report.error = ("the playbook's verdict passed but the run ended with ansible-runner status %s, rc %s"
                            % (report.runner_status, report.rc))
        return
    dark = events.dark_hosts()
    known: dict[str, str] = {}
    if dark or (stopped and not events.play_hosts):
        known, rigs = addresses.lookup(integration, env, inventory)
        if not events.play_hosts:
            events.play_hosts = rigs  # stopped before the play named its hosts: all are pending
    for host, res in dark.items():
        known.setdefault(host, failures.ssh_address(res.get("msg")) or host)
    try:
        from_events(report, events, known)
    except Exception:  # a malformed event may not cost a stop its verdict (timeout, canceled) nor the pending list
        LOG.exception("could not build the report of run %s from its events", report.run_id)
        report.error = "the run's events could not be read (see the log of run %s)" % report.run_id
    report.pending = events.pending()
    if stopped:
        report.status = stopped
    else:
        report.status = ERROR
        report.error = (unreadable or events.plan_error or events.lost_text() or _first(events.fatal) or _first(events.error_lines)
                        or "the playbook ended without a summary (ansible-runner status %s, rc %s)"
                        % (report.runner_status, report.rc))


def _unreadable_summary(report: Report, events: Collector) -> str | None:
    """Why the summary the playbook published cannot be the run's verdict (report.summary_problem), in
    words for the report's error; None when there is none or it can be read. The run is then judged
    from its events, as a run without a summary is."""
    if events.summary is None:
        return None
    problem = summary_problem(events.summary, report.kind, report.step)
    if problem is None:
        try:  # read as the report will read it (on a copy): its items, its verdict lines
            from_summary(replace(report), events.summary, (events.report_result or {}).get("lines"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problem = "it cannot be read as a report (%s: %s)" % (type(exc).__name__, exc)
    if problem is None:
        return None
    LOG.warning("the %s summary of run %s cannot be read: %s", report.kind, report.run_id, problem)
    events.summary = None
    return "the playbook's summary cannot be read: %s" % problem


def _first(items: Sequence[str]) -> str | None:
    return items[0] if items else None


# ---------------------------------------------------------------- the API


def _names(option: str, value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    names = [value] if isinstance(value, str) else _listed(option, value)
    if not all(isinstance(n, str) for n in names):
        raise InputError("%s: check names must be text, got %r" % (option, value))
    return names


def _listed(option: str, value: Any) -> list:
    if isinstance(value, (Mapping, bytes)) or not isinstance(value, Iterable):
        raise InputError("%s must be a list, got %s" % (option, type(value).__name__))
    return list(value)


def _path(option: str, value: Any) -> str:
    if not isinstance(value, (str, os.PathLike)) or not isinstance(os.fspath(value), str) or not os.fspath(value):
        raise InputError("%s must be a path, got %r" % (option, value))
    if "\0" in os.fspath(value):
        raise InputError("%s: a path cannot hold a NUL byte, got %r" % (option, value))
    return os.path.abspath(os.path.expanduser(os.fspath(value)))


def _own_vars(prefix: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The role variables set by keyword arguments (``skip`` -> ``preflight_skip``), only those given."""
    out = {}
    for name, value in values.items():
        if value is None:
            continue
        if name in ("skip", "downgrade"):
            value = _names(name, value)
        elif name == "summary_dir":
            value = _path(name, value)
        elif name == "cleanup_steps":
            value = _listed(name, value)  # each entry is checked by the plan, as -e would be
        elif name == "fix" and not isinstance(value, bool):
            raise InputError("fix must be True or False, got %r" % (value,))
        out[name if name.startswith(prefix) else "%s_%s" % (prefix, name)] = value
    return out


def _variables(step: Any, own_vars: Mapping[str, Any], extravars: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run's extra variables: the caller's, the keyword arguments' and the step; the caller's may not
    name one the bridge sets (RESERVED_VARS, a keyword argument given). Every value must be JSON, every
    number finite; the size is checked once the run's own variable is in (``_check_size``)."""
    variables = dict(extravars or {})
    for name in variables:
        if not _VAR_NAME.match(name):
            raise InputError("extravars: %r is not a variable name (letters, digits, '_')" % name)
        if name in RESERVED_VARS:
            raise InputError("extravars: %s is set by the bridge itself and cannot be given" % name)
        if name in own_vars:
            raise InputError("extravars: %s is also set by a keyword argument: give it once" % name)
    variables.update(own_vars)
    variables["step"] = step
    for name, value in variables.items():
        bad = _not_finite(value, "extravars[%r]" % name if name in (extravars or {}) else name)
        if bad:
            raise InputError("%s: JSON has no NaN or Infinity" % bad)
    try:
        _extravars_argument(variables)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InputError("extravars: values must be JSON (text, numbers, lists, mappings): %s" % exc) from None
    return variables


def _not_finite(value: Any, path: str) -> str | None:
    """Where ``value`` holds a float JSON cannot (NaN, Infinity, -Infinity), in words naming its key path
    (``extravars['limits']['x'] is not a finite number (nan)``), else None. json.dumps would write the
    non-JSON tokens NaN/Infinity, Ansible would read them back, and a NaN limit compares false with everything."""
    # A stack of (value, trail), trail = (key, parent trail): nesting of any depth costs no recursion and no
    # copied path text; a container seen before (a self-reference) is json.dumps's to name.
    todo: list[tuple[Any, Any]] = [(value, None)]
    seen: set[int] = set()
    while todo:
        value, trail = todo.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return "%s is not a finite number (%r)" % (_key_path(path, trail), value)
        if not isinstance(value, (dict, list, tuple)) or id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, dict):
            for key in value:
                if isinstance(key, float) and not math.isfinite(key):
                    return "%s has a key that is not a finite number (%r)" % (_key_path(path, trail), key)
            todo.extend(reversed([(item, (key, trail)) for key, item in value.items()]))
        else:
            todo.extend(reversed([(item, (index, trail)) for index, item in enumerate(value)]))
    return None


def _key_path(root: str, trail: Any, shown: int = 16) -> str:
    """``extravars['limits'][2]``: each key short (reprlib), the middle of a very deep path left out."""
    keys = []
    while trail is not None:
        key, trail = trail
        keys.append("[%s]" % reprlib.repr(key))
    keys.reverse()
    if len(keys) > 2 * shown:
        keys[shown:-shown] = ["[...]"]
    return root + "".join(keys)


def _extravars_argument(variables: Mapping[str, Any]) -> str:
    """The -e argument exactly as ansible-runner 2.4 writes it from a dict (config/runner.py,
    generate_ansible_command: each name quoted as it is, its value json.dumps'd, joined by ','): the size
    check measures what the run passes. allow_nan=False: what _not_finite refuses by name can never pass."""
    return "{%s}" % ",".join('"%s":%s' % (name, json.dumps(value, allow_nan=False)) for name, value in variables.items())


def _check_size(variables: Mapping[str, Any]) -> None:
    """The run's -e argument, its own variables in, within MAX_EXTRAVARS_BYTES."""
    size = len(_extravars_argument(variables).encode("utf-8"))
    if size > MAX_EXTRAVARS_BYTES:
        raise InputError("extravars: %d bytes as JSON, more than the %d a command line argument may hold"
                         % (size, MAX_EXTRAVARS_BYTES))


def _step(step: Any) -> Any:
    """The step as the collection's plan takes it (_steps.parse_step), checked before anything is made:
    its text names the run's folder. An int-like (numpy's) becomes an int; None stays None (no step)."""
    if step is None or isinstance(step, (bool, int, float, str)):
        value = step
    else:
        try:
            value = operator.index(step)
        except TypeError:
            value = step  # parse_step names its type
    if value is not None:
        try:
            module_utils("_steps").parse_step(value)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    return value


def _check_options(options: RunOptions) -> None:
    """Wrong types in the Python API are bad input with a message, never a TypeError deep in a run."""
    if options.extravars is not None and not (isinstance(options.extravars, Mapping)
                                              and all(isinstance(k, str) for k in options.extravars)):
        raise InputError("extravars must be a mapping of variable names to values, got %r" % (options.extravars,))
    if options.timeout is not None and (isinstance(options.timeout, bool) or not isinstance(options.timeout, (int, float))
                                        or not 0 <= options.timeout <= MAX_TIMEOUT_S):
        raise InputError("timeout must be a number of seconds up to %d (0 or None: no timeout), got %r"
                         % (MAX_TIMEOUT_S, options.timeout))
    if options.cancel is not None and not (isinstance(options.cancel, threading.Event) or callable(options.cancel)):
        raise InputError("cancel must be a threading.Event or a callable, got %r" % (options.cancel,))
    if options.progress is not None and not callable(options.progress):
        raise InputError("progress must be a callable, got %r" % (options.progress,))
    for name in ("failure_log", "artifacts_dir", "ansible_cfg"):
        if getattr(options, name) is not None:
            _path(name, getattr(options, name))
    if options.ansible_cfg is not None and not os.path.isfile(_path("ansible_cfg", options.ansible_cfg)):
        raise InputError("ansible_cfg not found: %s" % _path("ansible_cfg", options.ansible_cfg))
    if isinstance(options.keep_artifacts, bool) or not isinstance(options.keep_artifacts, int) or options.keep_artifacts < 0:
        raise InputError("keep_artifacts must be a whole number of 0 or more, got %r" % (options.keep_artifacts,))
    if isinstance(options.verbosity, bool) or not isinstance(options.verbosity, int) or not 0 <= options.verbosity <= 6:
        raise InputError("verbosity must be a whole number from 0 to 6, got %r" % (options.verbosity,))
    if options.envvars is not None and not (isinstance(options.envvars, Mapping)
                                            and all(isinstance(k, str) for k in options.envvars)):
        raise InputError("envvars must be a mapping of names to values, got %r" % (options.envvars,))
    try:
        environment.check_extra(options.envvars or {})
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _run_options(arguments: Mapping[str, Any]) -> RunOptions:
    """The run options from a public run_* function's arguments (its locals()): every kind takes the same ones."""
    return RunOptions(**{field.name: arguments[field.name] for field in fields(RunOptions)})


def run_preflight(step: Any, inventory: Any = None, extravars: Mapping[str, Any] | None = None,
                  timeout: float | None = None, cancel: Cancel = None, progress: Progress = None, *,
                  skip: Iterable[str] | None = None, downgrade: Iterable[str] | None = None,
                  summary_dir: str | None = None, failure_log: str | None = None, keep_artifacts: int = 0,
                  artifacts_dir: str | None = None, ansible_cfg: str | None = None,
                  envvars: Mapping[str, str] | None = None, verbosity: int = 0, log: bool = True) -> Report:
    """Run the preflight for ``step``; see docs/WATCHER.md. Never raises for problems of the run."""
    options = _run_options(locals())
    return execute("preflight", step, inventory, dict(skip=skip, downgrade=downgrade, summary_dir=summary_dir), options)


def run_cleanup(step: Any, inventory: Any = None, extravars: Mapping[str, Any] | None = None,
                timeout: float | None = None, cancel: Cancel = None, progress: Progress = None, *,
                skip: Iterable[str] | None = None, cleanup_steps: Iterable[Any] | None = None,
                since: Any = None, summary_dir: str | None = None, failure_log: str | None = None,
                keep_artifacts: int = 0, artifacts_dir: str | None = None, ansible_cfg: str | None = None,
                envvars: Mapping[str, str] | None = None, verbosity: int = 0, log: bool = True) -> Report:
    """Run the cleanup after ``step``; never raises for cleanup problems (they are in the report)."""
    options = _run_options(locals())
    return execute("cleanup", step, inventory,
                   dict(skip=skip, cleanup_steps=cleanup_steps, since=since, summary_dir=summary_dir), options)


def run_training_health(inventory: Any = None, extravars: Mapping[str, Any] | None = None,
                        timeout: float | None = None, cancel: Cancel = None, progress: Progress = None, *,
                        fix: bool | None = None, skip: Iterable[str] | None = None,
                        downgrade: Iterable[str] | None = None,
                        summary_dir: str | None = None, failure_log: str | None = None, keep_artifacts: int = 0,
                        artifacts_dir: str | None = None, ansible_cfg: str | None = None,
                        envvars: Mapping[str, str] | None = None, verbosity: int = 0, log: bool = True) -> Report:
    """Check the inventory's training hosts (group training_hosts; playbooks/training_health.yml, docs/TRAINING.md).

    ``fix``: True also fixes what is safe, False only reports (training_health_fix; None: as the inventory says).
    Not for a pipeline step: the report's step is None.
    Never raises for problems of the run (they are in the report)."""
    options = _run_options(locals())
    return execute("training_health", None, inventory,
                   dict(fix=fix, skip=skip, downgrade=downgrade, summary_dir=summary_dir), options)


def run_serving_gate(inventory: Any = None, extravars: Mapping[str, Any] | None = None,
                     timeout: float | None = None, cancel: Cancel = None, progress: Progress = None, *,
                     model_map: str | None = None, instance: str | None = None, gate_timeout: float | None = None,
                     refresh: bool | None = None, skip: Iterable[str] | None = None,
                     downgrade: Iterable[str] | None = None, summary_dir: str | None = None,
                     failure_log: str | None = None, keep_artifacts: int = 0, artifacts_dir: str | None = None,
                     ansible_cfg: str | None = None, envvars: Mapping[str, str] | None = None, verbosity: int = 0,
                     log: bool = True) -> Report:
    """Validate the inventory's serving hosts with the serving gate's checks (group serving_hosts;
    playbooks/serving_gate.yml, docs/SERVING_GATE.md): the orchestrator, the model map and store, every model
    loaded, MPS and the bus when required. Not for a pipeline step: the report's step is None.

    ``model_map``, ``instance``, ``gate_timeout`` (each host's whole budget, seconds), ``refresh``: the role's
    serving_gate_model_map, _instance, _timeout, _refresh, only when given (the inventory's otherwise); the
    rest through ``extravars``. Never raises for problems of the run (they are in the report)."""
    options = _run_options(locals())
    return execute("serving_gate", None, inventory,
                   dict(model_map=model_map, instance=instance, serving_gate_timeout=gate_timeout, refresh=refresh,
                        skip=skip, downgrade=downgrade, summary_dir=summary_dir), options)
