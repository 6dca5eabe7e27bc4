"""The model-serving readiness gate, run on the serving host itself (docs/SERVING_GATE.md).

systemd runs it before each agent service (``ExecStartPre=``): it checks what the instance needs,
locally and fast (no SSH, no playbook, no Ansible), prints one verdict line per check and exits
0 ready / 1 not ready / 2 bad input or the gate cannot run. The checks are the collection's
``serving_gate`` family (``plugins/module_utils/_serving_gate.py``), run by the collection's one host
runner through ``collection.LocalModule`` and judged by its one judge (``_plan.build_plan`` +
``_summary.build_summary``), imported through ``collection.module_utils``; this module only reads the
settings (flag, else environment, else default), hands them to the family as its options, and
writes the summary as ``local_gate_<instance>_<timestamp>.json`` under the cache folder.

    from gpuops_preflight.gate import settings_from, run_gate
    outcome = run_gate(settings_from({"instance": "crawler"}, os.environ))
    outcome.exit_code, outcome.lines, outcome.summary
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from . import collection

EXIT_READY, EXIT_NOT_READY, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_CACHE_DIR = "~/.cache/gpuops-preflight/gate"
DEFAULT_KEEP = 500
# Seconds the summary write may take at least, even when the checks used the whole budget: it is
# bounded (a dead NFS home must not hold the unit's start), but a verdict deserves its record.
SUMMARY_WRITE_MIN = 0.5


class GateInputError(ValueError):
    """A setting the gate cannot use: the message names it (exit 2)."""


def _serving() -> Any:
    return collection.module_utils("_serving")


# ---------------------------------------------------------------- settings: flag, else environment, else default


def _text(value: Any, option: str) -> str | None:
    text = str(value).strip()
    if any(ord(ch) < 32 for ch in text):
        raise GateInputError("%s has control characters: %r" % (option, value))
    return text or None


def _url(value: Any, option: str) -> str:
    _serving().parse_url(str(value), option)
    return str(value).strip()


def _abs_path(value: Any, option: str) -> str | None:
    text = _text(value, option)
    if text is not None and not os.path.isabs(text):
        raise GateInputError("%s must be an absolute path, got %r" % (option, value))
    return text


def _bool(value: Any, option: str) -> bool:
    return _serving().parse_bool(value, option)


def _seconds(value: Any, option: str) -> float:
    return collection.module_utils("_values").parse_seconds(value, option)


# setting -> (environment variable or None, default, parser). The flag of the same name wins.
KNOBS: dict[str, tuple[str | None, Any, Callable[[Any, str], Any]]] = {
    "url": ("GPU_ORCHESTRATOR_URL", "http://127.0.0.1:8014", _url),
    "model_map": ("AGENT_MODEL_MAP", None, _text),
    "store_root": ("MODEL_STORE_ROOT", None, _abs_path),
    "base_model_dir": ("BASE_MODEL_DIR", None, _text),
    "strict": ("STRICT_MODEL_STORE", True, _bool),
    "timeout": ("GATE_TIMEOUT", 300.0, _seconds),
    "require_mps": ("REQUIRE_MPS", False, _bool),
    "require_bus": ("REQUIRE_BUS", False, _bool),
    "bus_url": ("BUS_URL", None, _url),
    "refresh": ("PRELOAD_REFRESH", False, _bool),
    "service_user": (None, None, _text),
    "cache_dir": ("GATE_CACHE_DIR", None, _text),
    "mps_pipe_dir": ("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nvidia-mps", _abs_path),
    "mps_log_dir": ("CUDA_MPS_LOG_DIRECTORY", "/var/log/nvidia-mps", _abs_path),
    "mps_control": (None, "nvidia-cuda-mps-control", _text),
    "orchestrator_instances": ("ORCHESTRATOR_INSTANCE", "orchestrator,gpu-orchestrator", _text),
}
# Flags not named --<setting with dashes>.
FLAG_NAMES = {"bus_url": "--require-bus", "strict": "--strict-model-store"}


class Settings:
    """What one gate run uses; built by ``settings_from``."""

    def __init__(self, instance: str, values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
        self.instance = instance
        self.values = dict(values)
        self.sources = dict(sources)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values, instance=self.instance)


def settings_from(flags: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
    """The gate's settings: each from its flag (``flags[name]`` not None), else its environment
    variable (set and not empty), else the default. GateInputError names the flag or variable."""
    instance = flags.get("instance")
    if instance is None or not str(instance).strip():
        raise GateInputError("--instance is required: the name of the service instance being gated")
    instance = str(instance).strip()
    if len(instance) > 200 or any(ord(ch) < 32 or ch in "/" for ch in instance):
        raise GateInputError("--instance %r is not a service instance name" % instance)
    values, sources = {}, {}
    for name, (env, default, parse) in KNOBS.items():
        if flags.get(name) is not None:
            raw, option, source = flags[name], FLAG_NAMES.get(name, "--" + name.replace("_", "-")), "flag"
        elif env and str(environ.get(env, "")).strip():
            raw, option, source = environ[env], env, "environment"
        else:
            values[name], sources[name] = default, "default"
            continue
        try:
            values[name] = parse(raw, option)
        except ValueError as exc:
            raise GateInputError(str(exc)) from None
        sources[name] = source
    if flags.get("bus_url") is not None:
        values["require_bus"], sources["require_bus"] = True, "flag"
    if not values["model_map"]:
        raise GateInputError("no model map: give --model-map or set AGENT_MODEL_MAP")
    if values["require_bus"] and not values["bus_url"]:
        raise GateInputError("REQUIRE_BUS is on but no BUS_URL is set (or give --require-bus URL)")
    if values["strict"] and not values["store_root"]:
        raise GateInputError("STRICT_MODEL_STORE=1 needs the store root: give --store-root or set MODEL_STORE_ROOT")
    if values["cache_dir"] is None:
        xdg = str(environ.get("XDG_CACHE_HOME", "")).strip()
        values["cache_dir"] = os.path.join(xdg, "gpuops-preflight", "gate") if os.path.isabs(xdg) else DEFAULT_CACHE_DIR
    return Settings(instance, values, sources)


# ---------------------------------------------------------------- the run


class Outcome:
    """A gate run: ``exit_code``, ``lines`` (one per check, then the verdict), ``summary``."""

    def __init__(self, exit_code: int, lines: list[str], summary: dict[str, Any]) -> None:
        self.exit_code = exit_code
        self.lines = lines
        self.summary = summary


def params_of(settings: Settings) -> dict[str, Any]:
    """The family's host-check parameters (the node module's options) from the gate's settings."""
    instances = [i.strip() for i in (settings.orchestrator_instances or "").split(",") if i.strip()]
    return {
        "instance": settings.instance, "url": settings.url, "model_map": settings.model_map, "known_agents": [],
        "store_root": settings.store_root, "base_model_dir": settings.base_model_dir, "strict": settings.strict,
        "gate_timeout": settings.timeout, "refresh": settings.refresh, "require_mps": settings.require_mps,
        "mps_pipe_dir": settings.mps_pipe_dir, "mps_log_dir": settings.mps_log_dir,
        "mps_control": settings.mps_control, "require_bus": settings.require_bus, "bus_url": settings.bus_url,
        "orchestrator_instances": instances, "service_user": settings.service_user, "checks": None, "timeouts": {},
    }


def run_gate(settings: Settings, now: Callable[[], float] = time.time, progress: Callable[[str], None] | None = None,
             keep: int = DEFAULT_KEEP, write: bool = True, show: Callable[[list[str]], None] | None = None,
             clock: Callable[[], float] = time.monotonic) -> Outcome:
    """Run the gate for ``settings.instance``: the serving_gate family's host checks on this machine
    (the collection's one host runner), judged by the collection's one judge. Never raises for what it
    finds; GateInputError for settings the family refuses (a service user that does not exist).

    ``show(lines)``: called with the verdict lines before the summary is written, then with the rest
    (the summary's path, the notes), so that the verdict is out even if the write never ends. The
    write waits at most what is left of the budget (at least ``SUMMARY_WRITE_MIN``); one that does not
    end by then is a note."""
    start = clock()
    family = collection.module_utils("_serving_gate")
    params = params_of(settings)
    problems = family.validate(params)
    if problems:
        raise GateInputError("; ".join(problems))
    module = collection.LocalModule()
    module.progress = progress  # the preload's progress lines (the host runner hands the module on)
    started = now()
    result = collection.module_utils("_host_runner").run(family.FAMILY, module, params)
    host = socket.gethostname()
    checks = result["checks"]
    # A map that is not valid is bad input (exit 2): the gate asked nothing else.
    bad_input = checks["model_map"]["status"] != "ok"
    clean = collection.module_utils("_values").clean_text
    serving = clean({"settings": settings.as_dict(), "sources": settings.sources,
                     "user": (result.get("serving") or {}).get("user"),
                     "details": dict((name, res.get("details") or {}) for name, res in checks.items())})
    plan = collection.module_utils("_plan").build_plan(family.FAMILY.kind, None, hosts=[host], now=started)
    plan["extra"] = {"instance": settings.instance, "serving": serving}
    finished = now()
    summary = collection.module_utils("_summary").build_summary(plan, [(host, host, result)], finished=finished)
    summary["ready"] = not summary["blocked"] and not bad_input
    exit_code = EXIT_BAD_INPUT if bad_input else (EXIT_READY if summary["ready"] else EXIT_NOT_READY)
    serving["exit_code"] = exit_code
    lines = family.verdict_lines(checks, summary, settings.instance, exit_code)
    if show is not None:
        show(lines)
    if write:
        _write_summary(summary, settings, finished, keep, max(settings.timeout - (clock() - start), SUMMARY_WRITE_MIN))
    tail = ["Summary: %s" % summary["summary_file"]] if summary.get("summary_file") else []
    tail.extend("note: %s" % note for note in summary["notes"])
    if show is not None and tail:
        show(tail)
    return Outcome(exit_code, lines + tail, summary)


def _write_summary(summary: dict[str, Any], settings: Settings, finished: float, keep: int, seconds: float) -> None:
    """Write the summary file within ``seconds`` (a daemon thread: a hung file system holds only it);
    ``summary["summary_file"]`` is its path, else None with a note saying why."""
    stamp = collection.module_utils("_timeparse").file_stamp(finished)
    copy = dict(summary, notes=list(summary["notes"]))  # the thread's own: it may outlive this call
    outcome = collection.module_utils("_deadline").run_all({"summary": (
        lambda: _serving().write_gate_summary(copy, settings.cache_dir, settings.instance, stamp, keep=keep),
        seconds)})["summary"]
    summary["summary_file"] = outcome.value if outcome.ok else None
    if outcome.timed_out:
        summary["notes"].append("summary not written to %s: the file system did not answer within %ss (a hung "
                                "mount?)" % (settings.cache_dir, collection.module_utils("_values").seconds_text(seconds)))
    elif outcome.error is not None:
        exc = outcome.error
        summary["notes"].append("summary not written to %s: %s" % (
            settings.cache_dir, getattr(exc, "strerror", None) or exc))
