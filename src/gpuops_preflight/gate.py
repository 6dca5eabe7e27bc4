"""The model-serving readiness gate, run on the serving host itself (docs/SERVING_GATE.md).

systemd runs it before each agent service (``ExecStartPre=``): it checks what the instance needs,
locally and fast (no SSH, no playbook, no Ansible), prints one verdict line per check and exits
0 ready / 1 not ready / 2 bad input or the gate cannot run. The checks, their evaluation and their
wording are the collection's (``plugins/module_utils/_serving.py``), imported through
``collection.module_utils``; this module only reads the settings, runs the checks in order under
one wall-clock budget and writes the summary.

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
    return _serving().parse_seconds(value, option)


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


class _Run:
    """One gate run's shared state: the settings, the deadline, what each check found."""

    def __init__(self, settings: Settings, clock: Callable[[], float], sleep: Callable[[float], None],
                 progress: Callable[[str], None] | None) -> None:
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self.progress = progress
        self.start = clock()
        self.deadline = self.start + settings.timeout
        self.s = _serving()
        self.checks = collection.module_utils("_checks")
        self.results: dict[str, dict[str, Any]] = {}
        self.details: dict[str, Any] = {}
        self.entries: list[dict[str, Any]] = []
        self.ident: dict[str, Any] | None = None

    def left(self) -> float:
        return self.deadline - self.clock()

    def client(self, url: str, option: str) -> Any:
        return self.s.Client(url, self.deadline, clock=self.clock, option=option)

    def status(self, name: str) -> str | None:
        res = self.results.get(name)
        return res["status"] if res else None

    def record(self, name: str, evaluated: tuple, started: float, timed_out: bool = False) -> None:
        problems, ok_text, details = evaluated
        self.details[name] = details
        self.results[name] = self.checks.result(name, problems, message=None if problems else ok_text,
                                                elapsed=self.clock() - started, timed_out=timed_out)

    def skip(self, name: str, reason: str) -> None:
        self.results[name] = self.checks.skipped(name, reason)

    def bounded(self, name: str, func: Callable[[], Any], limit: float) -> Any:
        """``func()`` under its own deadline (a hung NFS stat must not hold the gate): (value, why-not)."""
        deadline = collection.module_utils("_deadline")
        outcome = deadline.run_all({name: (func, max(0.0, min(limit, self.left())))}, clock=self.clock)[name]
        if outcome.ok:
            return outcome.value, None
        return None, outcome.describe_failure()


def _model_map(run: _Run) -> None:
    started = run.clock()
    loaded = run.s.read_model_map(run.settings.model_map)
    evaluated = run.s.evaluate_model_map(loaded)
    run.entries = evaluated[2]["entries"]
    run.record("model_map", evaluated, started)


def _model_store(run: _Run) -> None:
    if not run.settings.store_root:
        run.skip("model_store", "no MODEL_STORE_ROOT and STRICT_MODEL_STORE=0: the store is not checked")
        return
    started = run.clock()
    spec = run.s.SERVING_GATE_CHECKS["model_store"]
    store, why = run.bounded("model_store", lambda: run.s.inspect_model_store(
        run.entries, run.settings.store_root, run.ident, run.settings.base_model_dir), spec.timeout)
    if store is None:
        run.results["model_store"] = run.checks.could_not_run(
            "model_store", "the model store %s could not be examined: %s" % (run.settings.store_root, why),
            spec.fix, elapsed=run.clock() - started, timed_out="timed out" in (why or ""))
        return
    run.record("model_store", run.s.evaluate_model_store(store, strict=run.settings.strict), started)


def _orchestrator(run: _Run) -> None:
    started = run.clock()
    observed = run.s.wait_for_health(run.client(run.settings.url, "GPU_ORCHESTRATOR_URL"), sleep=run.sleep)
    run.record("orchestrator", run.s.evaluate_orchestrator(observed), started)


def _preload(run: _Run) -> None:
    if run.status("orchestrator") != "ok":
        run.skip("preload", "not run: the orchestrator is not ready")
        return
    if run.status("model_store") == "fail":
        run.skip("preload", "not run: the model store is not ready (loading would fail or download)")
        return
    started = run.clock()
    observed = run.s.run_preload(run.client(run.settings.url, "GPU_ORCHESTRATOR_URL"), run.entries,
                                 refresh=run.settings.refresh, sleep=run.sleep, on_progress=run.progress)
    run.record("preload", run.s.evaluate_preload(observed, run.entries, timeout=run.settings.timeout), started)


def _mps(run: _Run) -> None:
    if not run.settings.require_mps:
        run.skip("mps", "not required (REQUIRE_MPS=0)")
        return
    started = run.clock()
    spec = run.s.SERVING_GATE_CHECKS["mps"]
    try:
        mps = collection.module_utils("_mps")
    except Exception as exc:  # the host facts' module is not installed with this copy
        host = None
        why = str(exc)
    else:
        host, why = run.bounded("mps", lambda: mps.status(
            collection.LocalModule(), pipe_dir=run.settings.mps_pipe_dir, log_dir=run.settings.mps_log_dir,
            control=run.settings.mps_control, timeout=max(0.5, min(spec.timeout / 2.0, run.left()))), spec.timeout)
    if isinstance(host, dict) and isinstance(host.get("pipe_dir"), dict) and host["pipe_dir"].get("exists"):
        # The clients (the service) write to the pipe folder: judge it for the service user, not for us.
        host["pipe_dir"]["writable"] = run.s.writable_by(host["pipe_dir"]["path"], run.ident)
    gpu_info = None
    if run.status("orchestrator") == "ok":
        gpu_info = run.s.get_gpu_info(run.client(run.settings.url, "GPU_ORCHESTRATOR_URL"))
    problems, ok_text, details = run.s.evaluate_mps(host, gpu_info)
    if host is None and why:
        details["error"] = why
        problems = [dict(p, message="%s: %s" % (p["message"], why)) if p["status"] == "unknown" else p
                    for p in problems]
    run.record("mps", (problems, ok_text, details), started)


def _bus(run: _Run) -> None:
    instances = [i.strip() for i in (run.settings.orchestrator_instances or "").split(",") if i.strip()]
    if not run.settings.require_bus:
        run.skip("bus", "not required (REQUIRE_BUS=0)")
        return
    if run.s.is_orchestrator_instance(run.settings.instance, instances):
        run.skip("bus", "instance %s is the orchestrator: it does not wait for the bus that depends on it"
                 % run.settings.instance)
        return
    started = run.clock()
    reply = run.s.probe_bus(run.client(run.settings.bus_url, "BUS_URL"))
    run.record("bus", run.s.evaluate_bus(reply), started)


# In this order: the local checks first (fast, and a bad map stops the run), then the network.
STEPS: tuple[tuple[str, Callable[[_Run], None]], ...] = (
    ("model_map", _model_map),
    ("model_store", _model_store),
    ("orchestrator", _orchestrator),
    ("preload", _preload),
    ("mps", _mps),
    ("bus", _bus),
)


def run_gate(settings: Settings, clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep, now: Callable[[], float] = time.time,
             progress: Callable[[str], None] | None = None, keep: int = DEFAULT_KEEP,
             write: bool = True) -> Outcome:
    """Run the gate for ``settings.instance``; never raises for what it finds (GateInputError for a
    service user that does not exist)."""
    started_epoch = now()
    run = _Run(settings, clock, sleep, progress)
    try:
        run.ident = run.s.service_identity(settings.service_user)
    except ValueError as exc:
        raise GateInputError(str(exc)) from None
    bad_input = False
    for name, step in STEPS:
        if bad_input:
            run.skip(name, "not run: the model map is invalid")
            continue
        step(run)
        bad_input = name == "model_map" and run.status(name) != "ok"
    finished = now()
    # Names read from the disk may hold bytes that are not UTF-8: every text that leaves is made valid first.
    clean = collection.module_utils("_values").clean_text
    run.results = clean(run.results)
    serving = {"settings": settings.as_dict(), "sources": settings.sources, "user": run.ident,
               "details": clean(run.details)}
    summary = run.s.gate_summary(run.results, socket.gethostname(), settings.instance, started_epoch, finished,
                                 serving=serving)
    exit_code = EXIT_BAD_INPUT if bad_input else (EXIT_READY if summary["ready"] else EXIT_NOT_READY)
    serving["exit_code"] = exit_code
    if write:
        try:
            run.s.write_gate_summary(summary, settings.cache_dir, settings.instance, run.s.file_stamp(finished),
                                     keep=keep)
        except OSError as exc:
            summary["summary_file"] = None
            summary["notes"].append("summary not written to %s: %s" % (settings.cache_dir, exc.strerror or exc))
    lines = run.s.verdict_lines(run.results, settings.instance, summary["ready"] and not bad_input, exit_code,
                                summary.get("summary_file"))
    lines.extend("note: %s" % note for note in summary["notes"])
    return Outcome(exit_code, lines, summary)
