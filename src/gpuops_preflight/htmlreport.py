"""The HTML cluster report: one self-contained page from the summary files.

``render(history_doc, latest)`` makes the page from the history document (``history.analyse``,
whose window is the number of runs the strips show) and the newest summary document of the
kind: the last verdict with every hard failure and warning, the recent runs, and a rigs x GPUs
grid coloured by health where each cell lists the GPU's problems and findings and carries a
strip of its health over the last runs.

The page loads nothing: inline CSS and a few lines of inline JS (filters), a Content-Security-Policy
that forbids every network load, no font, no image file. Every text from a summary (host names,
models, messages, fixes) is untrusted and escaped.
"""

from __future__ import annotations

import html
import json
import os
from typing import Any

from . import history
from .collection import module_utils

# health -> (CSS class, words in the legend)
HEALTH_CLASSES = {
    "ok": ("ok", "healthy"),
    "degraded": ("degraded", "degraded (SMU failures, or the GPU tool lost it)"),
    "lost": ("lost", "lost from the bus"),
    "unknown": ("unknown", "unknown (the GPU tool gave no answer)"),
    "missing": ("missing", "missing (seen before, not found now)"),
}
NOT_SEEN = ("none", "not checked in that run")

CSS = """
:root{--ok:#2e7d32;--degraded:#f9a825;--lost:#c62828;--unknown:#607d8b;--missing:#6a1b9a;--none:#e0e0e0}
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px;color:#212121;background:#fafafa}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:20px 0 8px}
.meta{color:#616161;font-size:12px}
.verdict{padding:10px 14px;border-radius:6px;color:#fff;font-weight:600;margin:12px 0}
.verdict.passed{background:var(--ok)}.verdict.warnings{background:#ef6c00}.verdict.blocked{background:var(--lost)}
.verdict.none{background:var(--unknown)}
ul.items{margin:4px 0 0;padding-left:18px}ul.items li{margin:2px 0}
.items .fix{color:#616161;font-size:12px}
.tag{display:inline-block;font-size:11px;padding:0 5px;border-radius:3px;margin-right:4px;color:#fff}
.tag.BLOCKED{background:var(--lost)}.tag.WARNING{background:#ef6c00}
.runs{display:flex;gap:2px;flex-wrap:wrap}
.run{width:14px;height:14px;border-radius:2px}
.run.passed{background:var(--ok)}.run.warnings{background:#ef6c00}.run.blocked{background:var(--lost)}
.legend span{display:inline-flex;align-items:center;margin-right:12px;font-size:12px}
.legend i{width:12px;height:12px;border-radius:2px;margin-right:4px;display:inline-block}
.controls{margin:8px 0}.controls label{margin-right:14px;font-size:13px}
table.grid{border-collapse:separate;border-spacing:4px}
table.grid th{text-align:left;vertical-align:top;font-weight:600;padding:4px 6px;white-space:nowrap}
th.host .status{display:block;font-weight:400;font-size:11px;color:#616161}
th.host .error{display:block;font-weight:400;font-size:11px;color:var(--lost);max-width:260px;white-space:normal}
td.gpu{vertical-align:top;width:150px;min-width:150px;padding:5px 6px;border-radius:5px;border:2px solid var(--none);
 background:#fff;font-size:11px}
td.gpu.ok{border-color:var(--ok)}td.gpu.degraded{border-color:var(--degraded);background:#fff8e1}
td.gpu.lost{border-color:var(--lost);background:#ffebee}td.gpu.unknown{border-color:var(--unknown);background:#eceff1}
td.gpu.missing{border-color:var(--missing);background:#f3e5f5}td.empty{border:0;background:transparent}
.gpu .name{font-weight:600;font-size:12px}.gpu .bdf,.gpu .model{color:#616161;overflow-wrap:anywhere}
.gpu ul{margin:3px 0;padding-left:14px}.gpu li{margin:1px 0;overflow-wrap:anywhere}
.badge{display:inline-block;font-size:10px;padding:0 4px;border-radius:3px;background:#455a64;color:#fff;margin-left:3px}
.strip{display:flex;gap:1px;margin-top:4px}
.strip b{flex:1;height:8px;min-width:2px;max-width:10px;border-radius:1px}
b.ok,i.ok{background:var(--ok)}b.degraded,i.degraded{background:var(--degraded)}b.lost,i.lost{background:var(--lost)}
b.unknown,i.unknown{background:var(--unknown)}b.missing,i.missing{background:var(--missing)}b.none,i.none{background:var(--none)}
.suggest{font-size:13px}.empty-state{color:#616161;font-style:italic}
""".strip()

# Filters: only GPUs with findings, and a host-name filter. No network, no eval, no innerHTML.
JS = """
(function () {
  "use strict";
  var onlyBad = document.getElementById("only-problems");
  var hostFilter = document.getElementById("host-filter");
  function apply() {
    var text = hostFilter.value.toLowerCase();
    var rows = document.querySelectorAll("tr.host-row");
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      var hostMatch = row.getAttribute("data-host").toLowerCase().indexOf(text) !== -1;
      var bad = row.getAttribute("data-problems") === "1";
      row.hidden = !hostMatch || (onlyBad.checked && !bad);
      var cells = row.querySelectorAll("td.gpu");
      for (var j = 0; j < cells.length; j++) {
        cells[j].style.opacity = (onlyBad.checked && cells[j].getAttribute("data-problems") !== "1") ? "0.35" : "";
      }
    }
  }
  onlyBad.addEventListener("change", apply);
  hostFilter.addEventListener("input", apply);
  apply();
}());
""".strip()

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def e(value: Any) -> str:
    """Escaped text for an element or a quoted attribute (untrusted input)."""
    text = "" if value is None else value if isinstance(value, str) else str(value)
    return html.escape(text, quote=True)


def _utc(epoch: float | None) -> str:
    return history.utc_text(epoch, "%Y-%m-%d %H:%M:%S UTC", "unknown time")


def _headline(summary: dict) -> str:
    """The verdict line the collection writes (its _summary.headline), or a plain one if it cannot."""
    try:
        from . import collection

        return collection.module_utils("_summary").headline(summary)
    except Exception:  # noqa: BLE001 - an odd document still gets a page
        word = str(summary.get("kind") or "run").capitalize()
        verdict = "BLOCKED" if summary.get("blocked") else "PASSED"
        return "%s %s%s" % (word, verdict, _for_step(summary.get("step")))


def _for_step(step: Any) -> str:
    """`` for step 2.5``; nothing for a run without a step (training health, serving gate)."""
    return "" if step is None else " for step %s" % step


def _verdict_class(passed: Any, warnings: Any) -> str:
    if passed is False:
        return "blocked"
    return "warnings" if warnings else "passed"


def _items_html(summary: dict) -> str:
    rows = []
    for label, key in (("BLOCKED", "hard_failures"), ("WARNING", "warnings")):
        for item in summary.get(key) or []:
            if not isinstance(item, dict):
                continue
            fix = '<div class="fix">fix: %s</div>' % e(item.get("fix")) if item.get("fix") else ""
            rows.append('<li><span class="tag %s">%s</span><b>%s</b>: %s%s</li>'
                        % (label, label, e(item.get("check")), e(item.get("message")), fix))
    notes = ['<li>note: %s</li>' % e(n) for n in summary.get("notes") or [] if isinstance(n, str)]
    return '<ul class="items">%s</ul>' % "".join(rows + notes) if rows or notes else ""


def _verdict_html(latest: dict | None, doc: dict) -> str:
    if latest is None:
        return ('<div class="verdict none">No %s summary in %s yet.</div>'
                % (e(doc["kind"]), e(doc["summary_dir"])))
    klass = _verdict_class(latest.get("passed"), latest.get("warnings"))
    when = history.epoch(latest.get("finished_at"))
    return ('<div class="verdict %s" id="verdict">%s</div><div class="meta">%s, %s</div>%s'
            % (klass, e(_headline(latest)), e(_utc(when)), e(latest.get("summary_file") or ""), _items_html(latest)))


def _runs_html(doc: dict) -> str:
    cells = []
    for run in doc.get("recent_runs", []):
        klass = _verdict_class(run.get("passed"), run.get("warnings"))
        title = "%s%s: %s, %s hard failure(s), %s warning(s)" % (
            _utc(run.get("finished")), _for_step(run.get("step")), klass, run.get("hard_failures"), run.get("warnings"))
        cells.append('<span class="run %s" title="%s"></span>' % (klass, e(title)))
    return '<div class="runs" id="runs">%s</div>' % "".join(cells)


def _legend_html() -> str:
    parts = ['<span><i class="%s"></i>%s</span>' % (klass, e(words)) for klass, words in HEALTH_CLASSES.values()]
    parts.append('<span><i class="%s"></i>%s</span>' % NOT_SEEN)
    return '<div class="legend">%s</div>' % "".join(parts)


def _strip_html(timeline: list) -> str:
    marks = []
    for number, health in enumerate(timeline):
        klass = HEALTH_CLASSES.get(health, NOT_SEEN)[0] if health else NOT_SEEN[0]
        marks.append('<b class="%s" title="%s"></b>' % (klass, e("run %d: %s" % (number + 1, health or "not checked"))))
    return '<div class="strip">%s</div>' % "".join(marks)


def _has_problems(gpu: dict) -> bool:
    """What the "only GPUs with problems" filter keeps: a finding in the window, or a state other than ok."""
    return bool(gpu.get("findings")) or (gpu.get("health") or "unknown") != "ok"


def _cell_html(gpu: dict, current: dict | None) -> str:
    health = gpu.get("health") or "unknown"
    klass = HEALTH_CLASSES.get(health, HEALTH_CLASSES["unknown"])[0]
    lines = []
    for text in (current or {}).get("problems") or []:
        if isinstance(text, str):
            lines.append("<li>%s</li>" % e(text))
    for finding in gpu.get("findings", []):
        lines.append('<li title="%s">%s <b>%d/%d</b></li>' % (
            e("%s finding, last %s" % (finding["severity"], _utc(finding.get("last_seen")))),
            e(finding["text"]), finding["runs"], gpu["runs"]))
    badges = "".join('<span class="badge">%s</span>' % word for word, on in
                     (("excluded", gpu.get("excluded")), ("watchlist", gpu.get("watchlisted"))) if on)
    suggestion = gpu.get("suggestion")
    if suggestion:
        lines.append('<li class="suggest">suggested: %s</li>' % e("add to %s" % suggestion["add_to"]))
    name = "GPU %s" % gpu["index"] if gpu.get("index") is not None else "GPU"
    bad = "1" if _has_problems(gpu) else "0"
    return ('<td class="gpu %s" data-problems="%s" title="%s"><div class="name">%s%s</div>'
            '<div class="bdf">%s</div><div class="model">%s</div>%s%s</td>'
            % (klass, bad, e("%s: %s" % (name, health)), e(name), badges, e(gpu.get("bdf") or ""),
               e(gpu.get("model") or ""), "<ul>%s</ul>" % "".join(lines) if lines else "",
               _strip_html(gpu.get("timeline", []))))


def _grid_html(doc: dict, latest: dict | None) -> str:
    hosts_latest = latest.get("hosts") if isinstance(latest, dict) and isinstance(latest.get("hosts"), dict) else {}
    by_host: dict[str, list] = {}
    for gpu in doc["gpus"]:
        by_host.setdefault(gpu["host"], []).append(gpu)
    order = list(hosts_latest) + sorted(h for h in by_host if h not in hosts_latest)
    width = max([len(g) for g in by_host.values()] or [0])
    rows = []
    for host in order:
        entry = hosts_latest.get(host) if isinstance(hosts_latest.get(host), dict) else {}
        current = dict((g.get("bdf"), g) for g in entry.get("gpus") or [] if isinstance(g, dict))
        gpus = by_host.get(host, [])
        cells = [_cell_html(g, current.get(g.get("bdf"))) for g in gpus]
        cells += ['<td class="empty"></td>'] * (width - len(gpus))
        status = entry.get("status") or "not in the last run"
        error = '<span class="error">%s</span>' % e(entry.get("error")) if entry.get("error") else ""
        bad = "1" if status != "passed" or any(_has_problems(g) for g in gpus) else "0"
        rows.append('<tr class="host-row" data-host="%s" data-problems="%s"><th class="host" scope="row">%s'
                    '<span class="status">%s</span>%s</th>%s</tr>'
                    % (e(host), bad, e(host), e(status), error, "".join(cells)))
    if not rows:
        return '<p class="empty-state">No host in these runs.</p>'
    return '<table class="grid" id="grid"><tbody>%s</tbody></table>' % "".join(rows)


def _suggestions_html(doc: dict) -> str:
    if not doc["suggestions"]:
        return ""
    items = "".join("<li>%s</li>" % e("%s GPU %s: add to %s (%s) -> host_vars/%s: %s: [%s]" % (
        s["host"], s["gpu"], s["add_to"], s["reason"], s["host"], s["add_to"], json.dumps(s["gpu"])))
        for s in doc["suggestions"])
    return "<h2>Suggestions</h2><ul class=\"items\" id=\"suggestions\">%s</ul>" % items


def render(doc: dict, latest: dict | None) -> str:
    """The page (str). ``doc``: history.analyse(...); ``latest``: the newest summary document, or None."""
    word = doc["kind"]
    skipped = doc["files"]["skipped"]
    meta = "%d %s run(s) in %s; generated %s%s" % (
        doc["runs"], word, doc["summary_dir"], _utc(doc["generated_at"]),
        "; %d file(s) skipped (%s)" % (skipped, ", ".join("%d %s" % (n, r) for r, n in
                                                          doc["files"]["skipped_by_reason"].items()))
        if skipped else "") + "".join("; note: %s" % note for note in doc.get("notes", []))
    page = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gpuops.preflight: {word} report</title>
<style>{css}</style>
</head>
<body>
<h1>gpuops.preflight: {word} report</h1>
<div class="meta">{meta}</div>
<h2>Last verdict</h2>
{verdict}
<h2>Last {window} run(s), oldest first</h2>
{runs}
<h2>Rigs and GPUs</h2>
{legend}
<div class="controls"><label><input type="checkbox" id="only-problems"> only GPUs with problems</label>
<label>host <input type="search" id="host-filter" placeholder="filter"></label></div>
{grid}
{suggestions}
<script>{js}</script>
</body>
</html>
""".format(csp=e(CSP), word=e(word), css=CSS, meta=e(meta), verdict=_verdict_html(latest, doc),
           window=len(doc.get("recent_runs", [])), runs=_runs_html(doc), legend=_legend_html(), grid=_grid_html(doc, latest),
           suggestions=_suggestions_html(doc), js=JS)
    # once for the whole page: a lone surrogate from a summary's JSON cannot be UTF-8 (it becomes U+FFFD)
    return module_utils("_values").clean_text(page)


def write(path: str, text: str) -> str:
    """Write the page atomically (temp file in the same folder + rename); OSError naming the path."""
    target = os.path.abspath(os.path.expanduser(path))
    folder = os.path.dirname(target)
    if os.path.isdir(target):
        raise OSError("%s: is a folder; give the page's file name (e.g. %s)" % (target, os.path.join(target, "report.html")))
    if not os.path.isdir(folder):
        raise OSError("%s: the folder %s does not exist" % (target, folder))
    try:
        history.files_module().write_atomic(target, text, mode=0o644)
    except OSError as exc:
        raise OSError("%s: cannot write it: %s" % (target, exc.strerror or exc)) from None
    return target
