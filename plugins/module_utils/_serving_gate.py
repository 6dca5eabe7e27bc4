# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the serving_gate family, declared (docs/SERVING_GATE.md).

Before an agent service starts, every model of the agent -> model map must be materialised in
the model store, readable by the service user, and loaded by the orchestrator. Every check of
that readiness gate is one ``CheckSpec`` below; the collectors wrap ``_serving``'s (which only
observe) and the evaluations adapt ``_serving``'s pure ``evaluate_*`` functions. The host runner
(``_host_runner``) runs them: in the node module ``node_serving_gate`` (the playbook
``serving_gate.yml``) and, without Ansible, in ``gpuops-preflight gate`` on the serving host
(``collection.LocalModule``). The family blocks on a hard check that could not be verified
(``unknown_blocks``): a readiness gate never passes on what it did not see.

The collectors run in this order, each wave once the one before is done:

1. ``budget`` (the gate's one wall-clock budget, ``gate_timeout``, starts), ``identity`` (the
   service user), ``model_map`` (the bounded read of the map);
2. ``agents``: the map validated (its valid entries). An invalid map stops the run: nothing else
   is asked, every other check is ``unknown`` ("not run: the model map is invalid");
3. ``model_store`` (the stat walk), concurrently with ``orchestrator`` (GET /health until ok or the
   budget is spent) and ``mps_host`` (the MPS daemon and pipe folder on the host);
4. then the HTTP calls in sequence, as the gate needs them: ``preload`` (POST /models/preload,
   poll /models/status; not run when the orchestrator or the store is not ready), ``gpu_info``
   (GET /gpu/info, for MPS), ``bus``.

Every HTTP call waits at most the smaller of what is left of the budget and 5 s. Each check's
timeout caps its own collector; ``validate`` turns them into what the runner uses (each capped at
the budget, the HTTP ones with a second of margin so that the call's own deadline comes first).

Check names are part of the interface (``serving_gate_skip``, summaries, the gate's output): add
new ones, never rename.
"""

from __future__ import annotations

import time

from ansible_collections.gpuops.preflight.plugins.module_utils import _permissions, _serving
from ansible_collections.gpuops.preflight.plugins.module_utils._checks import (
    CONTROLLER, FAIL, HARD, UNKNOWN, CheckSpec, Family, problem, registry)
from ansible_collections.gpuops.preflight.plugins.module_utils._host_runner import Collector, CollectorError
from ansible_collections.gpuops.preflight.plugins.module_utils._values import absolute_path, parse_seconds, seconds_problem

# The clock of the gate's budget and of every HTTP deadline (monotonic: a clock step cannot stretch it).
CLOCK = time.monotonic
# Seconds between an HTTP collector's own deadline and the runner's backstop for it.
HTTP_MARGIN = 1.0
HTTP_CHECKS = ("orchestrator", "preload", "mps", "bus")
# Seconds the role's node task may run beyond the budget (the local reads before and beside the HTTP calls).
BACKSTOP_MARGIN = 60

# The options of the node module and of the local gate (the same names; gate.py maps its flags and
# environment variables onto them). The node module's DOCUMENTATION documents each.
OPTIONS = dict(
    instance=dict(type="str"),
    url=dict(type="str", default=_serving.DEFAULT_URL),
    model_map=dict(type="str", required=True),
    known_agents=dict(type="list", elements="str", default=[]),
    store_root=dict(type="str"),
    base_model_dir=dict(type="str"),
    strict=dict(type="bool", default=True),
    gate_timeout=dict(type="float", default=float(_serving.DEFAULT_GATE_TIMEOUT)),
    refresh=dict(type="bool", default=False),
    require_mps=dict(type="bool", default=False),
    mps_pipe_dir=dict(type="str", default=_serving.DEFAULT_MPS_PIPE_DIR),
    mps_log_dir=dict(type="str", default=_serving.DEFAULT_MPS_LOG_DIR),
    mps_control=dict(type="str", default="nvidia-cuda-mps-control"),
    require_bus=dict(type="bool", default=False),
    bus_url=dict(type="str"),
    orchestrator_instances=dict(type="list", elements="str", default=list(_serving.ORCHESTRATOR_INSTANCES)),
    service_user=dict(type="str"),
)


def _enabled(params, name):
    checks = params.get("checks")
    return checks is None or name in checks


# ---------------------------------------------------------------- input


def _has_control(text):
    return any(ord(ch) < 32 for ch in text)


def validate(params):
    """Problems with the family's own options, each naming it; normalises ``params['timeouts']`` into
    what the runner uses (``run_timeouts``) and adds the service user (``params['identity']``). The shared
    options are checked by ``_options.validate``."""
    problems = []
    budget = params.get("gate_timeout")
    try:
        params["gate_timeout"] = parse_seconds(budget, "gate_timeout")
    except ValueError as exc:
        problems.append(str(exc))
    for option in ("url", "bus_url"):
        # the plan's rules (VARIABLE_RULES): an empty bus_url means no bus; an empty url is refused (null comes as "")
        if params.get(option) is not None and (option == "url" or params[option] != ""):
            why = _serving.url_problem(params[option])
            if why:
                problems.append("%s %s" % (option, why))
    if params.get("require_bus") and not params.get("bus_url"):
        problems.append("require_bus is on but no bus_url is given")
    if not params.get("model_map") or not str(params["model_map"]).strip():
        problems.append("model_map is required: the path of the agent -> model map (JSON)")
    for option in ("store_root", "mps_pipe_dir", "mps_log_dir"):
        value = params.get(option)
        if value not in (None, "") and (not str(value).startswith("/") or _has_control(str(value))):
            problems.append("%s must be an absolute path, got %r" % (option, value))
    if params.get("strict") and not params.get("store_root"):
        problems.append("strict (STRICT_MODEL_STORE=1) needs store_root, the model store's root folder")
    instance = params.get("instance")
    if instance not in (None, "") and (len(instance) > 200 or "/" in instance or _has_control(instance)):
        problems.append("instance %r is not a service instance name" % (instance,))
    try:
        # Looked up once per run, here (it may wait on LDAP or SSSD); the identity collector reads it.
        params["identity"] = _permissions.service_identity(params.get("service_user"))
    except ValueError as exc:
        problems.append(str(exc))
    if not problems:
        params["timeouts"] = run_timeouts(params)
    return problems


def run_timeouts(params):
    """{check: seconds} the runner gives each host check's collectors: its timeout (the default, or
    ``params['timeouts']``) capped at the gate's budget; an HTTP check gets ``HTTP_MARGIN`` more, so
    that its calls' own deadline (``_client``) ends it first and its result says what happened."""
    budget = float(params["gate_timeout"])
    given = params.get("timeouts") or {}
    out = {}
    for name in FAMILY.host_checks:
        seconds = min(float(given.get(name, CHECKS[name].timeout)), budget)
        out[name] = seconds + HTTP_MARGIN if name in HTTP_CHECKS else seconds
    return out


def _limit(ctx, name):
    """Seconds a check's HTTP calls may take in all (its timeout within the budget)."""
    return ctx.timeouts[name] - HTTP_MARGIN


# ---------------------------------------------------------------- collectors


def _collect_budget(ctx, _deadline):
    return CLOCK() + float(ctx.params["gate_timeout"])


def _collect_identity(ctx, _deadline):
    """The service user as ``validate`` found it."""
    return ctx.params["identity"]


def _collect_model_map(ctx, _deadline):
    return _serving.read_model_map(ctx.params["model_map"])


def _collect_agents(ctx, _deadline):
    """The map validated (a pure derivation): its problems and, when it is valid, its entries."""
    loaded = ctx.value("model_map")
    if loaded is None:
        raise CollectorError("the model map could not be read (%s)" % ctx.failure("model_map"))
    problems, ok_text, details = _serving.evaluate_model_map(loaded, ctx.params.get("known_agents") or None)
    return {"problems": problems, "ok_text": ok_text, "details": details, "entries": details["entries"]}


def _valid_entries(ctx):
    """The map's entries; CollectorError when the map is invalid or unread (a bad map stops the run)."""
    agents = ctx.value("agents")
    if agents is None:
        raise CollectorError("not run: the model map could not be read")
    if agents["problems"]:
        raise CollectorError("not run: the model map is invalid")
    return agents["entries"]


def _collect_model_store(ctx, _deadline):
    entries = _valid_entries(ctx)
    ident = ctx.value("identity")
    if ident is None:
        raise CollectorError("not run: the service user is not known")
    return _serving.inspect_model_store(entries, ctx.params["store_root"], ident, ctx.params.get("base_model_dir"))


def _client(ctx, deadline, option):
    """An HTTP client whose calls end by the budget's end, and before the runner's backstop."""
    own = CLOCK() + max(deadline - HTTP_MARGIN, deadline / 2.0)
    return _serving.Client(ctx.params[option], min(ctx.value("budget"), own), clock=CLOCK, option=option)


def _orchestrator_ready(ctx):
    health = ctx.value("orchestrator")
    return bool(health and health.get("ok"))


def _store_blocks(ctx):
    """Whether the model store check found what makes loading fail or download (then no preload)."""
    store = ctx.value("model_store")
    if store is None or not _enabled(ctx.params, "model_store"):
        return False
    problems = _serving.evaluate_model_store(store, strict=ctx.params["strict"])[0]
    return any(p["status"] == FAIL for p in problems)


def _collect_orchestrator(ctx, deadline):
    _valid_entries(ctx)
    return _serving.wait_for_health(_client(ctx, deadline, "url"))


def _collect_preload(ctx, deadline):
    entries = _valid_entries(ctx)
    if not _orchestrator_ready(ctx):
        raise CollectorError("not run: the orchestrator is not ready")
    if _store_blocks(ctx):
        raise CollectorError("not run: the model store is not ready (loading would fail or download)")
    # A caller without Ansible (the local gate) may hand progress lines on: module.progress(line).
    # Check mode reads the status and asks nothing: loading models is a change on the orchestrator.
    return _serving.run_preload(_client(ctx, deadline, "url"), entries, refresh=ctx.params["refresh"],
                                on_progress=getattr(ctx.module, "progress", None), send=not ctx.check_mode)


def _collect_mps_host(ctx, deadline):
    from ansible_collections.gpuops.preflight.plugins.module_utils import _mps  # only where MPS is required

    _valid_entries(ctx)
    params = ctx.params
    host = _mps.status(ctx.module, pipe_dir=params["mps_pipe_dir"], log_dir=params["mps_log_dir"],
                       control=params["mps_control"], timeout=max(0.5, deadline / 2.0))
    ident = ctx.value("identity")
    if isinstance(host.get("pipe_dir"), dict) and host["pipe_dir"].get("exists") and ident is not None:
        # The clients (the service) write to the pipe folder: judge it for the service user, not for us.
        host["pipe_dir"]["writable"] = _serving.writable_by(host["pipe_dir"]["path"], ident)
    return host


def _collect_gpu_info(ctx, deadline):
    """/gpu/info as a reply dict; None when the orchestrator is not ready (not asked)."""
    if not _orchestrator_ready(ctx):
        return None
    return _serving.get_gpu_info(_client(ctx, deadline, "url"))


def _collect_bus(ctx, deadline):
    _valid_entries(ctx)
    return _serving.probe_bus(_client(ctx, deadline, "bus_url"))


def _publish(ctx):
    return {"serving": {"instance": ctx.params.get("instance"), "url": ctx.params.get("url"),
                        "user": ctx.value("identity")}}


_AFTER_MAP = "Correct the model map first (AGENT_MODEL_MAP): while it is invalid the gate asks nothing else."


def _or_map(fix):
    """The suggested fix of a collector that also stops when the map is invalid."""
    return "%s When it says the model map is invalid: correct the map first (the gate asks nothing else until then)." \
        % fix


COLLECTORS = {
    "budget": Collector("budget", _collect_budget, lambda params: "starting the gate's clock", inline=True,
                        publish=_publish),
    "identity": Collector("identity", _collect_identity, lambda params: "finding the service user", inline=True,
                          hint="Give the service user that exists on this host (service_user / --service-user)."),
    "model_map": Collector("model_map", _collect_model_map,
                           lambda params: "reading the model map %s" % params.get("model_map"),
                           hung=lambda params: "the model map %s did not answer" % params.get("model_map"),
                           hint="Check the file system that holds the model map (a hung NFS mount?), then run the "
                                "gate again."),
    "agents": Collector("agents", _collect_agents, lambda params: "validating the model map", after=("model_map",),
                        inline=True, timeout_check="model_map", hint=_AFTER_MAP),
    "model_store": Collector("model_store", _collect_model_store,
                             lambda params: "examining the model store %s" % params.get("store_root"),
                             hung=lambda params: "the model store %s did not answer" % params.get("store_root"),
                             after=("agents", "identity"),
                             wanted=lambda params: bool(params.get("store_root")) and _enabled(params, "model_store"),
                             hint=_or_map("Check the store's file system (a hung NFS mount?), then run the gate "
                                          "again.")),
    "orchestrator": Collector("orchestrator", _collect_orchestrator,
                              lambda params: "asking the orchestrator at %s" % params.get("url"),
                              after=("budget", "agents"), hint=_AFTER_MAP),
    "mps_host": Collector("mps_host", _collect_mps_host, lambda params: "reading the MPS state on this host",
                          after=("agents", "identity"), wanted=lambda params: bool(params.get("require_mps")),
                          hint=_or_map(_serving.FIXES["mps"]["unknown"])),
    "preload": Collector("preload", _collect_preload,
                         lambda params: "preloading the models at %s" % params.get("url"),
                         after=("budget", "agents", "orchestrator", "model_store"),
                         wanted=lambda params: _enabled(params, "preload"),
                         hint="Fix what the preload waits for first (the model map, the orchestrator, the model "
                              "store: see their lines), then run the gate again."),
    "gpu_info": Collector("gpu_info", _collect_gpu_info, lambda params: "asking the orchestrator's /gpu/info",
                          after=("budget", "orchestrator", "preload"),
                          wanted=lambda params: bool(params.get("require_mps")), timeout_check="mps",
                          hint=_serving.FIXES["orchestrator"]["down"]),
    "bus": Collector("bus", _collect_bus, lambda params: "asking the bus at %s" % params.get("bus_url"),
                     after=("budget", "agents", "preload", "gpu_info"), hint=_or_map(_serving.FIXES["bus"]["down"])),
}


# ---------------------------------------------------------------- evaluations (adapting _serving's)


def evaluate_orchestrator(ctx, _spec):
    return _serving.evaluate_orchestrator(ctx.value("orchestrator"))


def evaluate_model_map(ctx, _spec):
    agents = ctx.value("agents")
    return agents["problems"], agents["ok_text"], agents["details"]


def evaluate_model_store(ctx, _spec):
    return _serving.evaluate_model_store(ctx.value("model_store"), strict=ctx.params["strict"])


def evaluate_preload(ctx, _spec):
    return _serving.evaluate_preload(ctx.value("preload"), ctx.value("agents")["entries"],
                                     timeout=_limit(ctx, "preload"))


def evaluate_mps(ctx, _spec):
    gpu_info = ctx.value("gpu_info")
    problems, ok_text, details = _serving.evaluate_mps(ctx.value("mps_host"), gpu_info)
    if gpu_info is None:
        problems.append(problem("mps", UNKNOWN, "the orchestrator's /gpu/info was not asked whether MPS is enabled: "
                                "the orchestrator is not ready", _serving.FIXES["orchestrator"]["down"]))
    return problems, ok_text, details


def evaluate_bus(ctx, _spec):
    return _serving.evaluate_bus(ctx.value("bus"))


def _store_applies(params):
    if params.get("store_root"):
        return None
    return "no model store root (MODEL_STORE_ROOT) and STRICT_MODEL_STORE=0: the store is not checked"


def _mps_applies(params):
    return None if params.get("require_mps") else "not required (REQUIRE_MPS=0)"


def _bus_applies(params):
    if not params.get("require_bus"):
        return "not required (REQUIRE_BUS=0)"
    instance = params.get("instance")
    if _serving.is_orchestrator_instance(instance, params.get("orchestrator_instances")
                                         or _serving.ORCHESTRATOR_INSTANCES):
        return "instance %s is the orchestrator: it does not wait for the bus that depends on it" % instance
    return None


# ---------------------------------------------------------------- the family

_GATE = _serving.DEFAULT_GATE_TIMEOUT
_FIX = _serving.FIXES

CHECKS = registry(
    CheckSpec("ssh", HARD, 10, "The serving host answers over SSH.",
              "Check that the host is up and sshd runs, and that its address in the inventory is right.",
              "SSH_UNREACHABLE", "SSH", where=CONTROLLER),
    CheckSpec("probe", HARD, _GATE + BACKSTOP_MARGIN,
              "The host-side serving gate module ran and reported (within serving_gate_timeout + 60 s).",
              "Run the playbook with -vvv to see the module error; check that python3 works on the host.",
              "PROBE_FAILED", "Probe", where=CONTROLLER),
    CheckSpec("orchestrator", HARD, _GATE,
              "The orchestrator answers on its port and /health (2xx) does not say it is not ready; retried until "
              "the gate's time is up (each try within 5 s).",
              _FIX["orchestrator"]["down"], "ORCHESTRATOR_DOWN", "Orchestrator",
              needs=("orchestrator",), evaluate=evaluate_orchestrator),
    CheckSpec("model_map", HARD, 5,
              "The agent -> model map is valid JSON, every agent key known, no duplicate or misspelt ids.",
              _FIX["model_map"]["invalid"], "MODEL_MAP_INVALID", "Model map",
              needs=("model_map", "agents"), evaluate=evaluate_model_map),
    CheckSpec("model_store", HARD, 30,
              "Every model of the map is complete under the store root, readable by the service user (search "
              "permission on every parent included); nothing would be downloaded.",
              _FIX["model_store"]["missing"], "MODEL_STORE_INCOMPLETE", "Model store",
              needs=("identity", "model_store"), evaluate=evaluate_model_store, applies=_store_applies),
    CheckSpec("preload", HARD, _GATE,
              "The orchestrator loaded every model (POST /models/preload, /models/status all_ready).",
              _FIX["preload"]["failed"], "MODELS_NOT_READY", "Preload",
              needs=("preload",), evaluate=evaluate_preload),
    CheckSpec("mps", HARD, 10,
              "NVIDIA MPS works: control daemon running, pipe directory present, /gpu/info mps_enabled.",
              _FIX["mps"]["daemon"], "MPS_NOT_OPERATIONAL", "MPS",
              needs=("identity", "mps_host", "gpu_info"), evaluate=evaluate_mps, applies=_mps_applies),
    CheckSpec("bus", HARD, 5,
              "The upstream bus answers (2xx) and does not say it is not ready (not for the orchestrator's own "
              "instance).",
              _FIX["bus"]["down"], "BUS_DOWN", "Bus", needs=("bus",), evaluate=evaluate_bus, applies=_bus_applies),
)


def _url_rule(value):
    return _serving.url_problem(value)  # its own words, the URL's credentials redacted


def _or_empty(rule):
    """The rule for a variable whose empty value means "not set"."""
    return lambda value: None if value == "" else rule(value)


# The ranges of the role's own variables (serving_gate_<name>), refused by the plan before any host is contacted.
VARIABLE_RULES = {
    "timeout": seconds_problem,
    "url": _url_rule,
    "bus_url": _or_empty(_url_rule),
    "store_root": _or_empty(absolute_path),
    "mps_pipe_dir": absolute_path,
    "mps_log_dir": absolute_path,
}

FAMILY = Family("serving_gate", "Serving gate", CHECKS, COLLECTORS, node_module="node_serving_gate",
                stats_key="gpuops_serving_gate", file_prefix="serving_gate", option_prefix="serving_gate",
                steps=False, unknown_blocks=True, variable_rules=VARIABLE_RULES, backstop_margin=BACKSTOP_MARGIN,
                redact=_serving.redact)


# ---------------------------------------------------------------- the gate's own output

_LABEL = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "unknown": "UNKNOWN", "skipped": "skipped"}


def verdict_lines(checks, summary, instance, exit_code=None):
    """The local gate's output: one line per check (in registry order) with each problem and its fix,
    then the verdict the judge took (``summary``, from ``_summary.build_summary``): what blocked,
    the checks that failed first, then those that could not be verified."""
    names = [n for n in FAMILY.host_checks if n in checks]
    width = max(len(n) for n in FAMILY.host_checks)
    lines = []
    for name in names:
        res = checks[name]
        if not res["problems"]:
            lines.append("%-*s  %-7s  %s" % (width, name, _LABEL.get(res["status"], res["status"]), res["message"]))
            continue
        for number, item in enumerate(res["problems"]):
            lines.append("%-*s  %-7s  %s" % (width, name if number == 0 else "", _LABEL[item["status"]],
                                             item["message"]))
            if item.get("fix"):
                lines.append("%-*s           fix: %s" % (width, "", item["fix"]))
    if not summary["blocked"]:
        lines.append("GATE READY: instance %s may start" % instance)
    else:
        blocking = [(i["check"], i["status"]) for i in summary["hard_failures"]]
        failed = [n for n in FAMILY.checks if (n, FAIL) in blocking]
        unverified = [n for n in FAMILY.checks if (n, UNKNOWN) in blocking and n not in failed]
        why = ", ".join(failed)
        if unverified:
            why += "%snot verified: %s" % ("; " if why else "", ", ".join(unverified))
        lines.append("GATE NOT READY: instance %s must not start (%s)%s" % (
            instance, why, " (exit %d)" % exit_code if exit_code is not None else ""))
    if summary.get("summary_file"):
        lines.append("Summary: %s" % summary["summary_file"])
    return lines
