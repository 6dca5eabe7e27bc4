# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: a run's summary as Prometheus metrics, for node_exporter's textfile collector.

``render(summary)`` turns one summary document (docs/SUMMARY_SCHEMA.md) into the Prometheus text
exposition format 0.0.4; ``write_textfile(summary, directory)`` writes it as
``<directory>/gpuops_<kind>.prom`` (``gpuops_preflight.prom``, ``gpuops_cleanup.prom``, ...) through a
temporary file in the same folder and a rename, so a scrape never sees half a file. The whole file
is rewritten by every run: series of a GPU or host that left the cluster vanish with it.

Conventions (https://prometheus.io/docs/practices/naming/): every family starts with ``gpuops_``,
units are in the name (``_seconds``, ``_bytes``), no ``_total`` (nothing here is a counter: each
value describes one run), and every series carries ``kind`` so that the files of the different
families never give the same series twice when node_exporter merges them. The text format has no
state-set type: a state set is a gauge with one series per possible state, 1 for the current one
and 0 for the others (``gpuops_gpu_health``, ``gpuops_host_status``, ``gpuops_check_status``).
No sample carries a timestamp (the textfile collector refuses them); the run's time is
``gpuops_run_finished_timestamp_seconds``.
"""

from __future__ import annotations

import math
import os
import re

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks, _files, _summary
from ansible_collections.gpuops.preflight.plugins.module_utils._gpus import HEALTH_STATES
from ansible_collections.gpuops.preflight.plugins.module_utils._timeparse import parse_time
from ansible_collections.gpuops.preflight.plugins.module_utils._values import clean_text

PREFIX = "gpuops_"
# Host entry statuses (docs/SUMMARY_SCHEMA.md, "Host entries").
HOST_STATES = ("passed", "warnings", "blocked", "unreachable", "failed")
CHECK_STATES = (_checks.OK, _checks.WARN, _checks.FAIL, _checks.UNKNOWN, _checks.SKIPPED)
_KIND = re.compile(r"[a-z][a-z0-9_]*")  # fullmatch: "$" would let "preflight\n" through

# name -> (help, label names). Declared once; HELP never depends on the run, so the files of every
# family agree on it (node_exporter rejects a family whose HELP differs between files).
FAMILIES = {
    "run_passed": ("1 when the run let its step go (no hard failure), else 0; a cleanup never blocks",
                   ("kind",)),
    "run_applies": ("1 when the run applied to its step (a cleanup outside cleanup_steps does nothing: 0)",
                    ("kind",)),
    "run_step": ("The pipeline step the run was for", ("kind",)),
    "run_finished_timestamp_seconds": ("Unix time at which the run's verdict was taken", ("kind",)),
    "run_duration_seconds": ("Seconds from the run's plan to its verdict", ("kind",)),
    "run_hard_failures": ("Problems that block the step (hard failures) in the run", ("kind",)),
    "run_warnings": ("Problems that do not block the step (warnings) in the run", ("kind",)),
    "run_hosts": ("Hosts in the run", ("kind",)),
    "run_hosts_reachable": ("Hosts that answered in the run", ("kind",)),
    "run_gpus": ("GPUs found on all hosts, whatever their health", ("kind",)),
    "run_gpus_usable": ("GPUs healthy and not excluded on all hosts", ("kind",)),
    "run_gpus_unverified": ("GPUs whose state is unknown (the GPU tool gave no answer, or only implausible sensor readings), not excluded", ("kind",)),
    "run_freed_bytes": ("Bytes freed by removing GPU runtime caches (cleanup)", ("kind",)),
    "host_status": ("Host verdict as a state set: 1 for the current status, 0 for the others",
                    ("kind", "host", "status")),
    "host_hard_failures": ("Hard failures about the host", ("kind", "host")),
    "host_warnings": ("Warnings about the host", ("kind", "host")),
    "host_gpus": ("GPUs found on the host, whatever their health", ("kind", "host")),
    "host_gpus_expected": ("GPUs the inventory expects on the host (expected_gpu_count)", ("kind", "host")),
    "host_gpus_usable": ("GPUs on the host that are healthy and not excluded", ("kind", "host")),
    "host_module_duration_seconds": ("Seconds the host-side module ran", ("kind", "host")),
    "check_status": ("Check result per host as a state set: 1 for the current status, 0 for the others",
                     ("kind", "host", "check", "status")),
    "check_duration_seconds": ("Seconds the check took on the host", ("kind", "host", "check")),
    "gpu_health": ("GPU health as a state set: 1 for the current state, 0 for the others",
                   ("kind", "host", "index", "bdf", "model", "state")),
    "gpu_excluded": ("1 when the GPU is in excluded_gpus", ("kind", "host", "index", "bdf", "model")),
    "gpu_watchlisted": ("1 when the GPU is in gpu_watchlist", ("kind", "host", "index", "bdf", "model")),
}


def _text(value):
    """Any value as text that is valid UTF-8 (lone surrogates from JSON become U+FFFD)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = str(value)
    return clean_text(value)


def escape_label_value(value):
    """Label value as the text format wants it: backslash, double quote and line feed escaped."""
    return _text(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text):
    """HELP text: backslash and line feed escaped."""
    return _text(text).replace("\\", "\\\\").replace("\n", "\\n")


def _number(value):
    """A sample value (int, float or bool) as the text format's float; None (or anything else): no sample.

    Every value is a float64 to Prometheus: an int past its range (a 400-digit count) is +Inf / -Inf, as
    printing its digits would make promtool reject the whole file ("expected float") and node_exporter
    drop every series in it.
    """
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        try:
            value = float(value) if abs(value) > 2 ** 53 else value
        except OverflowError:
            return "+Inf" if value > 0 else "-Inf"
        if isinstance(value, int):
            return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return repr(value)
    return None


class _Exposition(object):
    """Samples grouped by family, in declaration order (the format wants a family's lines together)."""

    def __init__(self):
        self.samples = dict((name, []) for name in FAMILIES)
        self.seen = set()

    def add(self, name, value, **labels):
        number = _number(value)
        if number is None:
            return
        names = FAMILIES[name][1]
        key = (name,) + tuple(_text(labels.get(n)) for n in names)
        if key in self.seen:  # the same series twice would make the whole file invalid
            return
        self.seen.add(key)
        self.samples[name].append((tuple(labels.get(n) for n in names), number))

    def state_set(self, name, current, states, **labels):
        """One series per state (and for the current one when it is not a known state)."""
        label = FAMILIES[name][1][-1]
        for state in list(states) + ([current] if current not in states and current is not None else []):
            self.add(name, 1 if state == current else 0, **dict(labels, **{label: state}))

    def render(self):
        lines = []
        for name, (help_text, label_names) in FAMILIES.items():
            samples = self.samples[name]
            if not samples:
                continue
            full = PREFIX + name
            lines.append("# HELP %s %s" % (full, escape_help(help_text)))
            lines.append("# TYPE %s gauge" % full)
            for values, number in samples:
                pairs = ",".join('%s="%s"' % (n, escape_label_value(v)) for n, v in zip(label_names, values))
                lines.append("%s{%s} %s" % (full, pairs, number))
        return "\n".join(lines) + "\n" if lines else ""


def _dict(value):
    return value if isinstance(value, dict) else {}


def _list(value):
    return value if isinstance(value, list) else []


def _epoch(value):
    try:
        return parse_time(value, "finished_at")
    except (TypeError, ValueError):
        return None


def _kind(summary):
    if not isinstance(summary, dict):
        raise ValueError("a summary document (a mapping) is needed, got %s" % type(summary).__name__)
    kind = summary.get("kind")
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise ValueError("the summary's kind must be a lower-case name such as 'preflight' or 'cleanup', got %r"
                         % (kind,))
    return kind


def _controller_check_status(summary, host, entry, items):
    """ssh/probe are items, not host checks: their status from the host's items, else what the host did."""
    out = {}
    skipped = _list(summary.get("skipped_checks"))
    for check in _checks.CONNECTION_CHECKS:
        statuses = [i.get("status") for i in items
                    if i.get("host") == host and i.get("check") == check and i.get("status") in CHECK_STATES]
        if check in skipped:
            out[check] = _checks.SKIPPED
        elif statuses:
            out[check] = _checks.worst(statuses)
        elif check == _checks.SSH and entry.get("reachable") is not False:
            out[check] = _checks.OK
        elif check == _checks.PROBE and entry.get("reachable") is not False and entry.get("status") != "failed":
            out[check] = _checks.OK
    return out


def _add_gpus(out, kind, host, gpus):
    for gpu in gpus:
        if not isinstance(gpu, dict):
            continue
        labels = dict(kind=kind, host=host, index=gpu.get("index"), bdf=gpu.get("bdf"), model=gpu.get("model"))
        health = gpu.get("health")
        out.state_set("gpu_health", health if isinstance(health, str) else _checks.UNKNOWN, HEALTH_STATES, **labels)
        out.add("gpu_excluded", bool(gpu.get("excluded")), **labels)
        out.add("gpu_watchlisted", bool(gpu.get("watchlisted")), **labels)


def _add_host(out, summary, kind, host, entry, items):
    mine = [i for i in items if i.get("host") == host]
    status = entry.get("status")
    out.state_set("host_status", status if isinstance(status, str) else None, HOST_STATES, kind=kind, host=host)
    for family, key in (("host_hard_failures", "hard_failures"), ("host_warnings", "warnings")):
        out.add(family, len([i for i in _list(summary.get(key)) if isinstance(i, dict) and i.get("host") == host
                             and not _summary.is_run_item(i, summary)]), kind=kind, host=host)
    gpus = _list(entry.get("gpus"))
    if entry.get("gpu_count") is not None or gpus:
        out.add("host_gpus", entry.get("gpu_count") if entry.get("gpu_count") is not None else len(gpus),
                kind=kind, host=host)
        out.add("host_gpus_usable", len(_list(entry.get("usable_gpus"))), kind=kind, host=host)
    out.add("host_gpus_expected", entry.get("expected_gpu_count"), kind=kind, host=host)
    out.add("host_module_duration_seconds", entry.get("elapsed_s"), kind=kind, host=host)
    statuses = _controller_check_status(summary, host, entry, mine)
    for check, result in _dict(entry.get("checks")).items():
        result = _dict(result)
        statuses[check] = result.get("status")
        out.add("check_duration_seconds", result.get("elapsed_s"), kind=kind, host=host, check=check)
    for check, check_status in statuses.items():
        out.state_set("check_status", check_status if isinstance(check_status, str) else _checks.UNKNOWN,
                      CHECK_STATES, kind=kind, host=host, check=check)
    _add_gpus(out, kind, host, gpus)


def render(summary):
    """The summary as Prometheus text format 0.0.4 (str, ends with a line feed). ValueError on a non-summary."""
    kind = _kind(summary)
    out = _Exposition()
    hard, warnings = _list(summary.get("hard_failures")), _list(summary.get("warnings"))
    totals = _dict(summary.get("totals"))
    out.add("run_passed", not hard if summary.get("passed") is None else bool(summary.get("passed")), kind=kind)
    out.add("run_applies", summary.get("applies", True) is not False, kind=kind)
    out.add("run_step", summary.get("step"), kind=kind)
    out.add("run_finished_timestamp_seconds", _epoch(summary.get("finished_at")), kind=kind)
    out.add("run_duration_seconds", summary.get("duration_s"), kind=kind)
    out.add("run_hard_failures", len(hard), kind=kind)
    out.add("run_warnings", len(warnings), kind=kind)
    for family, key in (("run_hosts", "hosts"), ("run_hosts_reachable", "reachable"), ("run_gpus", "gpus"),
                        ("run_gpus_usable", "usable_gpus"), ("run_gpus_unverified", "unverified_gpus"),
                        ("run_freed_bytes", "bytes_freed")):
        out.add(family, totals.get(key), kind=kind)
    # the run's own items (run_budget) are about no host, whatever the hosts are named
    items = [i for i in hard + warnings if isinstance(i, dict) and not _summary.is_run_item(i, summary)]
    for host, entry in _dict(summary.get("hosts")).items():
        _add_host(out, summary, kind, host, _dict(entry), items)
    return out.render()


def textfile_name(kind):
    """``preflight`` -> ``gpuops_preflight.prom``."""
    return "%s%s.prom" % (PREFIX, kind)


def write_textfile(summary, directory):
    """Write ``render(summary)`` to ``<directory>/gpuops_<kind>.prom`` atomically; returns the path.

    The folder must exist (node_exporter's --collector.textfile.directory): a missing, unwritable
    or non-folder path raises OSError naming it. The temporary file (``_files.write_atomic``) is
    ``.gpuops_<kind>.prom.*.tmp`` (node_exporter reads only ``*.prom``) and is removed on any
    failure, so no partial file is ever left; the file is readable by all (node_exporter usually
    runs as another user).
    """
    text = render(summary)
    kind = _kind(summary)
    if not isinstance(directory, str) or not directory.strip():
        raise OSError("textfile directory: a folder path is needed, got %r" % (directory,))
    folder = os.path.expanduser(directory)
    if not os.path.isdir(folder):
        reason = "no such folder" if not os.path.lexists(folder) else "not a folder"
        raise OSError("textfile directory %s: %s (create it, or point node_exporter's "
                      "--collector.textfile.directory and this setting at the same folder)" % (folder, reason))
    path = os.path.join(folder, textfile_name(kind))
    try:
        _files.write_atomic(path, text, mode=0o644)
    except OSError as exc:
        raise OSError("cannot write %s: %s" % (path, exc.strerror or exc))
    return path
