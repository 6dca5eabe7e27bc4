# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the training-health family, declared.

The fine-tuning host (``training_base_dir``, docs/TRAINING.md) checked in one module run
(``node_training_health``), judged once on the controller like the preflight. Every check is one
``CheckSpec`` below: its stable name, hard or soft, default timeout, what it checks, its suggested
fix, its operator code and label, the collectors it needs and its evaluation. The collectors and
the pure evaluations they feed are in ``_training_checks`` (``COLLECTORS``, ``CHECKS``); this
module wraps them for the one host runner and adds what is not pure reading:

* ``settings``: the host's paths and thresholds (``_training_checks.settings``), derived once per
  run from the module's options; every other collector comes after it.
* ``fix`` (only with ``fix: true``): fix mode (``_training_checks.fix_host``), run FIRST so that the
  checks see the repaired host; it reports ``changed`` and a diff, and in check mode what it would
  change. What it may not do (not root) is reported under ``layout`` / ``permissions``.
* ``progress``: the status file as the ``status`` reader read it (once a run) and the watchdog's step
  state (read only), for the stall check of ``_training_progress.assess``.
* the shared GPU probe (``_gpu_checks.collectors``): ``gpu`` is hard only when no GPU is usable; an
  unhealthy GPU beside a usable one is a warning. Either vendor.

Check names are interface (``training_health_skip``, summaries): add new ones, never rename.
"""

from __future__ import annotations

import os
import time

from ansible_collections.gpuops.preflight.plugins.module_utils import _crash_log, _gpu_checks, _options
from ansible_collections.gpuops.preflight.plugins.module_utils import _training_checks as tc
from ansible_collections.gpuops.preflight.plugins.module_utils import _training_progress as _progress
from ansible_collections.gpuops.preflight.plugins.module_utils._checks import (
    CONTROLLER, HARD, SOFT, UNKNOWN, WARN, CheckSpec, Family, problem, registry)
from ansible_collections.gpuops.preflight.plugins.module_utils._gpu_checks import GPU_NEEDS
from ansible_collections.gpuops.preflight.plugins.module_utils._host_runner import Collector, CollectorError
from ansible_collections.gpuops.preflight.plugins.module_utils._values import absolute_path, at_least, from_to

GB = tc.GB
DEFAULTS = tc.DEFAULTS

# ---------------------------------------------------------------- the module's own options

# The options of node_training_health (and of `gpuops-preflight training-health --local`), beside the
# shared step/checks/timeouts and GPU-probe options of every node module. Paths are relative to
# training_base_dir unless absolute; 'none' switches a file off where the help says so.
OPTIONS = dict(
    training_base_dir=dict(type="path", required=True),
    config_file=dict(type="str", default=DEFAULTS["config_file"]),
    pid_file=dict(type="str", default=DEFAULTS["pid_file"]),
    status_file=dict(type="str", default=DEFAULTS["status_file"]),
    state_file=dict(type="str", default=_progress.STATE_FILE),
    logs=dict(type="list", elements="str", default=list(DEFAULTS["logs"])),
    checkpoint_dir=dict(type="str", default=DEFAULTS["checkpoint_dir"]),
    lock_file=dict(type="str", default=DEFAULTS["lock_file"]),
    history_file=dict(type="str", default=DEFAULTS["history_file"]),
    required_dirs=dict(type="list", elements="str", default=list(DEFAULTS["required_dirs"])),
    required_files=dict(type="list", elements="str", default=list(DEFAULTS["required_files"])),
    daemon_match=dict(type="str", default=DEFAULTS["daemon_match"]),
    service_user=dict(type="str"),
    dir_mode=dict(type="str", default="0750"),
    min_free_gb=dict(type="float", default=50.0),
    min_memory_gb=dict(type="float", default=4.0),
    checkpoint_max_age=dict(type="int", default=DEFAULTS["checkpoint_max_age_s"]),
    crash_log_lines=dict(type="int", default=DEFAULTS["crash_log_lines"]),
    record_crashes=dict(type="bool", default=True),
    expect_layout=dict(type="str", choices=["auto", "full", "lora"], default=DEFAULTS["expect_layout"]),
    stall_timeout=dict(type="int", default=_progress.DEFAULT_STALL_TIMEOUT),
    eval_timeout=dict(type="int", default=_progress.DEFAULT_EVAL_TIMEOUT),
    expected_gpu_count=dict(type="int"),
    meminfo=dict(type="path", default=DEFAULTS["meminfo"]),
    proc_root=dict(type="path", default=DEFAULTS["proc_root"]),
    cgroup_root=dict(type="str", default=DEFAULTS["cgroup_root"]),
    fix=dict(type="bool", default=False),
    # read on the controller by the task's action (plugins/plugin_utils/_node_action.py), not here
    host_tool=dict(type="str", default="/usr/local/bin/gpuops-preflight-local"),
)
# options -> _training_checks.settings keys, where the name or the unit differs
_SETTING_NAMES = {"min_free_gb": "min_free_bytes", "min_memory_gb": "min_available_bytes",
                  "checkpoint_max_age": "checkpoint_max_age_s"}
_SAME = ("config_file", "pid_file", "status_file", "logs", "checkpoint_dir", "lock_file", "history_file",
         "required_dirs", "required_files", "daemon_match", "service_user", "crash_log_lines", "record_crashes",
         "expect_layout", "meminfo", "proc_root", "cgroup_root")


def defaults():
    """Every own option at its default (``--local`` starts from these, as the module does)."""
    return _options.defaults(OPTIONS)


def parse_mode(value):
    """'0750', '750' or '0o750' -> 0o750; ValueError naming the option otherwise."""
    text = str(value).strip().lower()
    text = text[2:] if text.startswith("0o") else text
    if not text or len(text) > 5 or any(c not in "01234567" for c in text):
        raise ValueError("dir_mode must be an octal mode such as '0750' (quote it in YAML), got %r" % (value,))
    return int(text, 8)


def _overrides(params):
    """The _training_checks.settings overrides the options give."""
    out = dict((key, params.get(key)) for key in _SAME)
    for option, key in _SETTING_NAMES.items():
        out[key] = params.get(option)
    for key in ("min_free_bytes", "min_available_bytes"):
        if isinstance(out[key], (int, float)) and not isinstance(out[key], bool):
            out[key] = out[key] * GB
    out["dir_mode"] = parse_mode(params.get("dir_mode") or "0750")
    return out


def host_settings(params, now=None, check_mode=False):
    """``_training_checks.settings`` of the host the options describe; ValueError on bad input."""
    return tc.settings(params.get("training_base_dir"), now=now, check_mode=check_mode, **_overrides(params))


def validate(params):
    """Problems with the family's own options (every one at once), each naming the option.

    The ranges are ``VARIABLE_RULES``, stated once: the plan applies them to the role's variables before any
    host is contacted, this to the module's options and to ``--local``'s.
    """
    problems = []
    for name, rule in sorted(VARIABLE_RULES.items()):
        option = _OPTION_OF_RULE.get(name, name)
        why = rule(params.get(option))
        if why:
            problems.append("%s %s" % (option, why))
    count = params.get("expected_gpu_count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        problems.append("expected_gpu_count must be 0 or more, got %r" % (count,))
    state = params.get("state_file")
    if not isinstance(state, str) or not state or "\0" in state:
        problems.append("state_file must be a path or 'none', got %r" % (state,))
    if problems:
        return problems
    try:
        host_settings(params)
    except ValueError as exc:
        problems.append(str(exc))
    return problems


# ---------------------------------------------------------------- collectors


def _settings(ctx, _deadline):
    return host_settings(ctx.params, now=ctx.now, check_mode=ctx.check_mode)


def _reader(name, uses=()):
    """A collector of _training_checks.COLLECTORS run with the run's settings and the values of the collectors it
    ``uses`` (under their names); a long read (the log scan) stops a second before the collector's own deadline."""
    read = tc.COLLECTORS[name]

    def collect(ctx, deadline):
        return read(dict(ctx.value("settings"), deadline=time.monotonic() + max(deadline - 1, 1),
                         **dict((other, ctx.value(other)) for other in uses)))
    return collect


def _fix(ctx, _deadline):
    return tc.fix_host(ctx.value("settings"))


def _publish_fix(ctx):
    outcome = ctx.value("fix")
    if outcome is None:
        return {"fix": None}
    out = {"fix": {"changes": outcome["changes"], "errors": outcome["errors"]}}
    if outcome["changes"]:
        out["diff"] = outcome["diff"]
    return out


def _state_file(params, base):
    value = params.get("state_file")
    if not value or value == "none":
        return None
    return value if os.path.isabs(value) else os.path.join(base, value)


def _progress_seen(ctx, _deadline):
    """The status document (or why there is none) as the status reader read it (the file is read once a
    run), and for a status without updated_at since when its step has stood, from the watchdog's step
    state (read, never written here)."""
    settings = ctx.value("settings")
    read = ctx.value("status")
    if read is None:  # the progress check is unknown for the status reader's own reason (it needs it)
        raise CollectorError("the status file was not read: %s" % (ctx.failure("status") or "no result"))
    status = read["document"]
    since = None
    state_file = _state_file(ctx.params, settings["base_dir"])
    if state_file and isinstance(status, dict) and status.get("updated_at") is None:
        since = _progress.track_step(status, _progress.read_state(state_file), ctx.now)[0]
    return {"status": status, "step_since": since}


def _scan_changed(scan):
    history = scan["history"]
    return bool(history["recorded"] or history["would_record"])


def _hung(what):
    """What a timeout of a small read under the base folder means: its filesystem did not answer."""
    return {"hung": lambda params: "the filesystem of %s did not answer %s (a hung mount?)" % (
        params.get("training_base_dir"), what),
        "hint": "Look for a hung network or FUSE mount under the base folder (df, mount); remount it."}


# Each reader of _training_checks: what it looks at, as an operator reads "<what>: timed out after 10s",
# and what its Collector has beyond the shared part (the reading, its words, coming after AFTER); ``uses``: the
# collectors whose values it reads too (it comes after them).
READERS = {
    "daemon": ("reading the PID file and /proc", {"wanted": lambda params: params.get("pid_file") != "none"}),
    "disk": ("statvfs of the base folder", _hung("statvfs")),
    # the daemon's cgroup limits its memory, not this check's (an SSH session's)
    "memory": ("reading /proc/meminfo", {"uses": ("daemon",)}),
    "config": ("reading config.json", _hung("reading config.json")),
    "lock": ("reading the config lock", _hung("reading the config lock")),
    "checkpoints": ("listing the checkpoints", {}),
    "status": ("reading the status file", _hung("reading the status file")),
    "crash_log": ("scanning the training logs", {"changed": _scan_changed}),
    "layout": ("looking at the required folders and files", _hung("looking at the required folders and files")),
    "permissions": ("looking at owners and modes", _hung("looking at owners and modes")),
}
AFTER = ("settings", "fix")   # every reading waits for the settings and, when asked, for fix mode


def _words(text):
    return lambda params: text


def _collectors():
    found = {
        "settings": Collector("settings", _settings, lambda params: "the training host's settings", inline=True),
        "fix": Collector("fix", _fix, lambda params: "fix mode", after=("settings",),
                         wanted=lambda params: bool(params.get("fix")), publish=_publish_fix,
                         changed=lambda outcome: outcome["changed"], timeout_check="layout"),
        "progress": Collector("progress", _progress_seen, lambda params: "reading the watchdog's step state",
                              after=AFTER + ("status",), wanted=lambda params: params.get("status_file") != "none"),
    }
    for name, (what, extra) in READERS.items():
        extra = dict(extra)
        uses = extra.pop("uses", ())
        found[name] = Collector(name, _reader(name, uses), _words(what), after=AFTER + tuple(uses), **extra)
    # The GPU probe and the kernel log: after fix mode too (it never touches them, but nothing reads before it).
    found.update(_gpu_checks.collectors(after=("fix",)))
    return found


COLLECTORS = _collectors()


# ---------------------------------------------------------------- evaluations


def _pure(name):
    """The evaluation of _training_checks for check ``name``, fed from the run's collectors and settings."""
    def evaluate(ctx, spec):
        return tc.evaluate(name, ctx.values, ctx.value("settings"), spec.fix)
    return evaluate


def _needs(name):
    return ("settings",) + tuple(tc.CHECKS[name][1])


# Fix mode's actions that could not be made, reported under the check whose problem they leave.
_FIX_ACTIONS = {"layout": ("mkdir",), "permissions": ("chown", "chmod")}


def _with_fix_report(name):
    """``_pure(name)`` plus what fix mode could not do (or that it could not run) for this check."""
    pure = _pure(name)

    def evaluate(ctx, spec):
        problems, ok_text, details = pure(ctx, spec)
        problems = list(problems)
        for error in (ctx.value("fix") or {}).get("errors") or []:
            if error["action"] in _FIX_ACTIONS[name]:
                problems.append(problem(name, WARN, "fix mode could not %s %s: %s" % (
                    error["action"], error["path"], error["error"]),
                    "Run the health check with fix mode as root (training_health_become: true), or repair it by "
                    "hand.", path=error["path"]))
        failure = ctx.failure("fix")
        if failure and name == "layout":
            problems.append(problem(name, UNKNOWN, "fix mode: %s" % failure,
                                    "Re-run with fix mode; if it keeps failing, create the folders by hand."))
        return problems, None if problems else ok_text, details
    return evaluate


def evaluate_progress(ctx, spec):
    """The stall check (``_training_progress.assess``) on the status file, against the daemon's PID file."""
    daemon = ctx.value("daemon")
    if daemon is not None and not daemon.get("alive") and not daemon.get("unknown"):
        # The daemon check reports (and blocks on) a dead daemon: no second verdict about the same thing.
        return [], "no progress expected: the training daemon is not running (see the daemon check)", {
            "reason": _progress.DAEMON_DEAD}
    if daemon is not None and daemon.get("stopped"):   # the daemon check warns about it: once is enough
        return [], "no progress expected: the training daemon is stopped (see the daemon check)", {
            "reason": _progress.DAEMON_STOPPED}
    seen = ctx.value("progress")
    assessment = _progress.assess(seen["status"], ctx.now, ctx.params["stall_timeout"], ctx.params["eval_timeout"],
                                  pid_info=daemon, step_since=seen["step_since"])
    return _progress.evaluate(assessment, spec.name, spec.fail_status)


def evaluate_gpu(ctx, spec):
    """The shared GPU evaluations: an unhealthy or missing GPU warns; no usable GPU fails (the check is hard
    for that alone)."""
    soft = CheckSpec(spec.name, SOFT, spec.timeout, spec.summary, spec.fix, spec.code, spec.label,
                     needs=spec.needs, evaluate=evaluate_gpu)
    problems, health_text = _gpu_checks.evaluate_health(ctx, soft)
    counted, _count_text = _gpu_checks.evaluate_count(ctx, soft)
    usable, usable_text = _gpu_checks.evaluate_available(ctx, spec)
    problems = list(problems) + list(counted) + list(usable)
    return problems, "%s; %s" % (health_text, usable_text)


def _daemon_off(params):
    return "no PID file to read (pid_file: none)" if params.get("pid_file") == "none" else None


def _status_off(params):
    return "no status file to read (status_file: none)" if params.get("status_file") == "none" else None


# ---------------------------------------------------------------- the family

FIX_HINT = tc.FIX_HINT

CHECKS = registry(
    CheckSpec("ssh", HARD, 10, "The training host answers over SSH.",
              "Check that the host is up and sshd runs; run the health check on the host itself with "
              "gpuops-preflight training-health --local.", "SSH_UNREACHABLE", "SSH", where=CONTROLLER),
    CheckSpec("probe", HARD, 60, "The host-side training-health module ran and reported.",
              "Run the health check with -vvv to see the module error.", "PROBE_FAILED", "Probe",
              where=CONTROLLER),
    CheckSpec("daemon", HARD, 10, "The PID file names a live process, and that process is the training daemon.",
              "Start the training daemon (systemctl start <unit>); remove a stale .daemon.pid only after checking "
              "that no daemon runs.", "TRAINING_DAEMON_DOWN", "Training daemon",
              needs=_needs("daemon"), evaluate=_pure("daemon"), applies=_daemon_off),
    CheckSpec("progress", SOFT, 10,
              "The status file moves: no step stall (training_health_stall_timeout, 900 s) or eval stall (1800 s).",
              "Look at the daemon's log for a hang; the watchdog (role training_watchdog) stops a stalled daemon and "
              "systemd restarts it.", "TRAINING_STALLED", "Progress",
              needs=("settings", "status", "progress", "daemon"), evaluate=evaluate_progress, applies=_status_off),
    CheckSpec("disk_space", SOFT, 10,
              "The base folder's filesystem has at least training_health_min_free_gb (50 GB) free.",
              "Free space on that filesystem: old checkpoints (save_total_limit), logs, the inbox.",
              "TRAINING_DISK_LOW", "Disk space", needs=_needs("disk_space"), evaluate=_pure("disk_space")),
    CheckSpec("memory", SOFT, 5, "At least training_health_min_memory_gb (4 GB) of memory is available.",
              "Stop what else uses memory on the host, or lower the dataloader workers.", "TRAINING_MEMORY_LOW",
              "Memory", needs=_needs("memory"), evaluate=_pure("memory")),
    CheckSpec("gpu", HARD, 30,
              "The host's GPUs are visible and healthy (shared GPU probe); blocks only when no GPU is usable.",
              "Check the GPU with the vendor tool (nvidia-smi -q, rocm-smi) and the kernel log; reboot a lost GPU.",
              "TRAINING_GPU_UNHEALTHY", "GPU", needs=GPU_NEEDS, evaluate=evaluate_gpu),
    CheckSpec("config", HARD, 10,
              "config.json is present, valid JSON, its keys have the right types and ranges, its paths exist.",
              "Correct config.json (the message names the key); restore it from the deployment when it is missing.",
              "TRAINING_CONFIG_INVALID", "Config", needs=_needs("config"), evaluate=_pure("config")),
    CheckSpec("permissions", SOFT, 10, "The service user can read its code and config and write its own folders.",
              "Repair owner and mode (%s repairs the daemon's own folders), or chown/chmod by hand." % FIX_HINT,
              "TRAINING_PERMISSIONS", "Permissions", needs=_needs("permissions"),
              evaluate=_with_fix_report("permissions")),
    CheckSpec("layout", HARD, 10, "The required folders and files of the training host exist.",
              "Create missing folders (%s); restore missing files from the deployment." % FIX_HINT,
              "TRAINING_LAYOUT_BROKEN", "Layout", needs=_needs("layout"), evaluate=_with_fix_report("layout")),
    CheckSpec("checkpoint", SOFT, 15,
              "While training is active, the newest checkpoint is younger than training_health_checkpoint_max_age "
              "(24 h).",
              "Check save_steps in config.json and the daemon's log for failed checkpoint writes.",
              "TRAINING_CHECKPOINT_STALE", "Checkpoint age", needs=_needs("checkpoint"), evaluate=_pure("checkpoint")),
    CheckSpec("crash_log", SOFT, 30,
              "The last lines of the training logs show no crash (OOM, GPU error, NCCL, killed, NaN, ...).",
              "Read the crash's line in its log; the crash's own fix says what to try.", "TRAINING_CRASH_FOUND",
              "Crash log", needs=_needs("crash_log"), evaluate=_pure("crash_log")),
    CheckSpec("config_lock", HARD, 10, "config.json has no dangerous change since the lock taken at training start.",
              "Restore the locked value, or start a new run (new output_dir) and lock again.",
              "TRAINING_CONFIG_CHANGED", "Config lock", needs=_needs("config_lock"), evaluate=_pure("config_lock")),
    CheckSpec("checkpoint_resume", HARD, 30, "The newest checkpoint fits the config and training would resume from it.",
              "Set resume_from_checkpoint, or move the checkpoints away when a new run is intended.",
              "TRAINING_RESUME_BROKEN", "Checkpoint resume", needs=_needs("checkpoint_resume"),
              evaluate=_pure("checkpoint_resume")),
)

# The ranges of the role's own variables (training_health_<name>), refused by the plan before any host is contacted.
VARIABLE_RULES = {
    "base_dir": absolute_path,
    "stall_timeout": at_least(1, "a whole number of seconds"),
    "eval_timeout": at_least(1, "a whole number of seconds"),
    "min_free_gb": at_least(0),
    "min_memory_gb": at_least(0),
    "checkpoint_max_age": at_least(0, "a whole number of seconds"),
    "crash_log_lines": from_to(1, _crash_log.MAX_LINES, "a whole number of lines"),
}
# rule name (after the role's prefix) -> the module option it checks, where the two differ
_OPTION_OF_RULE = {"base_dir": "training_base_dir"}

FAMILY = Family("training_health", "Training health", CHECKS, COLLECTORS, node_module="node_training_health",
                stats_key="gpuops_training_health", file_prefix="training_health", option_prefix="training_health",
                steps=False, variable_rules=VARIABLE_RULES)
