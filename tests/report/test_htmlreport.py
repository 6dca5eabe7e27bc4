"""The HTML cluster report: self-contained, escaped, and loaded in Debian's headless chromium.

The browser test fails on any console error, uncaught exception, error log entry (a CSP
violation, a failed load) or network request, checks what the page shows through the DOM,
exercises its filters, and saves a screenshot to tests/output/report.png (CI keeps tests/output).
"""

from __future__ import annotations

import copy
import html.parser
import json
import os
import pathlib

import pytest

from gpuops_preflight import cli, history, htmlreport
from report import browser
from report.series import HOUR, SMU_EVERY_FOURTH, fixture, write_series
from report.tools import require_tool

OUTPUT = pathlib.Path(__file__).resolve().parents[1] / "output"
HOSTILE_HOST = 'rig-<script>alert("x")</script>&amp;"\'9'
HOSTILE_MESSAGE = "</script><img src=x onerror=alert(1)> \u00e9 \ud800"


def hostile_demo():
    """The demo run with a host name and messages an attacker could choose."""
    doc = copy.deepcopy(fixture("demo"))
    doc["hosts"][HOSTILE_HOST] = doc["hosts"].pop("rig-6600b")
    for item in doc["warnings"]:
        item["host"] = HOSTILE_HOST
        item["message"] = HOSTILE_MESSAGE
        item["fix"] = "<b>bold?</b>"
    doc["hosts"][HOSTILE_HOST]["gpus"][10]["problems"] = [HOSTILE_MESSAGE]
    doc["hosts"][HOSTILE_HOST]["gpus"][3]["model"] = "<i>model</i>"
    doc["notes"] = ["<marquee>note</marquee>"]
    return doc


def page_for(folder, runs=20, now=None):
    found = history.scan(str(folder))
    doc = history.analyse(found, window=runs, now=now)
    return htmlreport.render(doc, history.latest_summary(found, "preflight"))


class Elements(html.parser.HTMLParser):
    """Every start tag with its attributes, and the text of the page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(page):
    parser = Elements()
    parser.feed(page)
    return parser


@pytest.fixture
def hostile_series(summary_dir):
    write_series(summary_dir, SMU_EVERY_FOURTH[:-1] + [hostile_demo()])
    return summary_dir


def test_the_page_loads_nothing_from_anywhere(hostile_series):
    page = page_for(hostile_series)
    tags = parse(page).tags
    assert [t for t, _a in tags].count("script") == 1
    for tag, attrs in tags:
        assert not {"src", "href", "srcset", "action", "formaction", "data", "poster"} & set(attrs), (tag, attrs)
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
    assert tag not in ("link", "iframe", "object", "embed", "img")
    csp = [a["content"] for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp == [htmlreport.CSP] and "default-src 'none'" in csp[0]
    assert "http:" not in page and "https:" not in page and "url(" not in page and "@import" not in page


def test_untrusted_text_is_escaped_and_reads_back_as_itself(hostile_series):
    page = page_for(hostile_series)
    parsed = parse(page)
    assert "<script>alert" not in page and "<img src=x" not in page and "<marquee>" not in page
    assert "<b>bold?</b>" not in page and "<i>model</i>" not in page
    text = "".join(parsed.text)
    assert HOSTILE_HOST in text and "<b>bold?</b>" in text and "<marquee>note</marquee>" in text
    assert HOSTILE_MESSAGE.replace("\ud800", "\ufffd") in text  # a lone surrogate cannot be UTF-8
    page.encode("utf-8")
    rows = [a for t, a in parsed.tags if t == "tr" and "data-host" in a]
    assert HOSTILE_HOST in [a["data-host"] for a in rows]


def test_the_page_shows_the_last_verdict_the_grid_and_the_strips(smu_series):
    folder, epochs = smu_series
    page = page_for(folder, runs=20, now=epochs[-1] + HOUR)
    parsed = parse(page)
    text = "".join(parsed.text)
    # The newest run is smu_failure: blocked on rig-6600 GPU 4.
    assert "Preflight BLOCKED for step 3" in text
    assert any(t == "div" and a.get("class") == "verdict blocked" for t, a in parsed.tags)
    runs = [a["class"] for t, a in parsed.tags if t == "span" and a.get("class", "").startswith("run ")]
    assert runs == ["run blocked" if n % 4 == 3 else "run warnings" for n in range(20)]
    cells = [a for t, a in parsed.tags if t == "td" and a.get("class", "").startswith("gpu ")]
    assert len(cells) == 24
    assert sorted(a["class"] for a in cells).count("gpu lost") == 2  # rig-6600 GPU 4, rig-6600b GPU 10
    strips = [a["class"] for t, a in parsed.tags if t == "b" and "class" in a]
    assert len(strips) == 12 * 20 + 12 * 15  # rig-6600b was in the 15 demo runs
    assert "SMU not answering (0xFFFFFFFF) " in text and "5/20" in text
    assert "add to excluded_gpus" in text


def test_the_window_limits_the_strips(smu_series):
    folder, _epochs = smu_series
    parsed = parse(page_for(folder, runs=5))
    assert len([1 for t, a in parsed.tags if t == "span" and a.get("class", "").startswith("run ")]) == 5


def test_an_empty_folder_gives_a_page_that_says_so(summary_dir):
    page = page_for(summary_dir)
    assert "No preflight summary in %s yet." % summary_dir in "".join(parse(page).text)


# ---------------------------------------------------------------- in a real browser


GRID_PROBE = """(() => {
  const cells = Array.from(document.querySelectorAll("td.gpu"));
  const rows = Array.from(document.querySelectorAll("tr.host-row"));
  const box = document.getElementById("only-problems");
  box.checked = true;
  box.dispatchEvent(new Event("change"));
  const shownWithFilter = rows.filter(r => !r.hidden).map(r => r.getAttribute("data-host"));
  const filter = document.getElementById("host-filter");
  filter.value = "gone";
  filter.dispatchEvent(new Event("input"));
  const shownByName = rows.filter(r => !r.hidden).map(r => r.getAttribute("data-host"));
  box.checked = false;  // back to the whole grid for the screenshot
  box.dispatchEvent(new Event("change"));
  filter.value = "";
  filter.dispatchEvent(new Event("input"));
  return {cells: cells.length, lost: cells.filter(c => c.classList.contains("lost")).length,
          hosts: rows.map(r => r.querySelector("th").firstChild.textContent),
          verdict: document.getElementById("verdict").textContent,
          shownWithFilter: shownWithFilter, shownByName: shownByName,
          width: document.documentElement.scrollWidth};
})()"""


def test_the_page_in_headless_chromium_has_no_errors_and_works(summary_dir):
    chromium = require_tool("chromium", "chromium-browser")
    # 17 runs of the SMU series, then the demo with hostile names, then an unreachable rig (the newest).
    write_series(summary_dir, SMU_EVERY_FOURTH[:-3] + [hostile_demo(), "unreachable_host"])
    target = summary_dir.parent / "report.html"
    code = cli.main(["report", "--summary-dir", str(summary_dir), "--html", str(target), "--runs", "20"])
    assert code == 0
    shot = OUTPUT / "report.png"
    load = browser.load(chromium, target.as_uri(), screenshot=str(shot), expressions=(GRID_PROBE,))
    assert load.problems == [] and load.requests == [] and load.blocked == []
    probe = load.values[0]
    # Hosts of the newest run first, then the others by name; each has 12 GPUs but rig-6600-gone.
    assert probe["hosts"] == ["rig-6600", "rig-6600-gone", "rig-6600b", HOSTILE_HOST]
    assert probe["cells"] == 36 and probe["lost"] == 2  # GPU 10 of rig-6600b and of the hostile rig
    assert probe["verdict"].startswith("Preflight BLOCKED for step 3: 1 hard failure(s)")
    # Only GPUs with problems: each row has one (GPU 4's history, the unreachable rig, the lost
    # GPU 10s); the name filter then keeps the one whose name matches.
    assert probe["shownWithFilter"] == probe["hosts"]
    assert probe["shownByName"] == ["rig-6600-gone"]
    assert load.screenshot.startswith(b"\x89PNG\r\n\x1a\n") and len(load.screenshot) > 10000
    assert shot.is_file()


def test_the_browser_check_sees_console_errors_exceptions_and_requests(tmp_path):
    """The check above can fail: a page with each fault is caught."""
    chromium = require_tool("chromium", "chromium-browser")
    page = tmp_path / "bad.html"
    # Port 9 (discard) on the loopback: chromium refuses the port, so nothing leaves the machine.
    page.write_text('<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/x.png">'
                    '<script>console.error("boom"); missingFunction();</script></body></html>')
    load = browser.load(chromium, page.as_uri())
    assert load.console_errors == ["boom"]
    assert len(load.exceptions) == 1 and "missingFunction" in load.exceptions[0]
    assert load.requests == ["http://127.0.0.1:9/x.png"] and load.log_errors


def test_the_csp_stops_a_request_the_page_would_make(tmp_path):
    """If a future change let a URL into the page, the policy blocks it and the browser check says so."""
    chromium = require_tool("chromium", "chromium-browser")
    page = tmp_path / "leak.html"
    page.write_text(htmlreport.render(history.analyse(history.scan(str(tmp_path))), None).replace(
        "</body>", '<img src="http://127.0.0.1:9/leak.png"></body>'))
    load = browser.load(chromium, page.as_uri())
    assert load.requests == [] and load.blocked == ["http://127.0.0.1:9/leak.png"]
    assert any("Content Security Policy" in e for e in load.log_errors)


# ---------------------------------------------------------------- the command


def test_the_command_writes_the_page_atomically(smu_series, capsys):
    folder, _epochs = smu_series
    target = folder.parent / "out" / "cluster.html"
    target.parent.mkdir()
    assert cli.main(["report", "--summary-dir", str(folder), "--html", str(target)]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    assert os.listdir(str(target.parent)) == ["cluster.html"]
    assert "Preflight BLOCKED for step 3" in target.read_text(encoding="utf-8")


def test_the_command_on_an_empty_folder_writes_the_page_and_says_so(summary_dir, capsys):
    target = summary_dir.parent / "r.html"
    assert cli.main(["report", "--summary-dir", str(summary_dir), "--html", str(target)]) == 0
    assert "no preflight summary in" in capsys.readouterr().err and target.is_file()


@pytest.mark.parametrize("where, message", [
    ("folder", "is a folder"), ("missing/r.html", "does not exist"), ("file/r.html", "does not exist")])
def test_a_page_path_that_cannot_be_written_exits_2(where, message, summary_dir, capsys):
    (summary_dir.parent / "folder").mkdir()
    (summary_dir.parent / "file").write_text("x")
    code = cli.main(["report", "--summary-dir", str(summary_dir), "--html", str(summary_dir.parent / where)])
    assert code == 2 and message in capsys.readouterr().err


def test_a_missing_summary_folder_exits_2(tmp_path, capsys):
    code = cli.main(["report", "--summary-dir", str(tmp_path / "nope"), "--html", str(tmp_path / "r.html")])
    assert code == 2 and "no such folder" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_html_is_required(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["report"])
    assert exc.value.code == 2 and "--html" in capsys.readouterr().err


def test_the_history_json_and_the_page_agree_on_counts(smu_series):
    folder, _epochs = smu_series
    doc = history.analyse(history.scan(str(folder)))
    json.dumps(doc)  # JSON-ready
    entry = [g for g in doc["gpus"] if g["host"] == "rig-6600" and g["index"] == 4][0]
    assert "SMU not answering (0xFFFFFFFF) <b>5/20</b>" in page_for(folder)
    assert entry["runs"] == 20


# ---------------------------------------------------------------- issue 14's operator-view bugs


def test_the_page_counts_decimal_step_runs(summary_dir, capsys):
    """summary_step2.5_<stamp>.json runs were left out of the page (bug 1)."""
    smu = fixture("smu_failure")
    smu["step"] = 2.5
    write_series(summary_dir, ["decimal_step", "demo", smu])
    target = summary_dir.parent / "r.html"
    assert cli.main(["report", "--summary-dir", str(summary_dir), "--html", str(target)]) == 0
    parsed = parse(target.read_text(encoding="utf-8"))
    assert "Preflight BLOCKED for step 2.5" in "".join(parsed.text)
    runs = [a["title"] for t, a in parsed.tags if t == "span" and a.get("class", "").startswith("run ")]
    assert [title.split(" UTC")[1].split(":")[0] for title in runs] == [" for step 2.5", " for step 3", " for step 2.5"]
    assert "3 preflight run(s)" in "".join(parsed.text)


@pytest.mark.parametrize("kind, hosts, cells", [("training_health", ["train-full", "train-lora"], 2),
                                                ("serving_gate", ["serve-1", "serve-2"], 0)])
def test_the_page_of_a_family_without_steps(kind, hosts, cells, summary_dir, capsys):
    """training_health_<stamp>.json and serving_gate_<stamp>.json were not found: an empty page (bug 2)."""
    write_series(summary_dir, [kind, "demo", kind])
    target = summary_dir.parent / "r.html"
    assert cli.main(["report", "--summary-dir", str(summary_dir), "--kind", kind, "--html", str(target)]) == 0
    assert capsys.readouterr().err == ""
    parsed = parse(target.read_text(encoding="utf-8"))
    text = "".join(parsed.text)
    assert "2 %s run(s)" % kind in text and "step None" not in target.read_text(encoding="utf-8")
    assert any(t == "div" and a.get("class") == "verdict passed" for t, a in parsed.tags)
    assert [a["data-host"] for t, a in parsed.tags if t == "tr" and "data-host" in a] == hosts
    assert len([1 for t, a in parsed.tags if t == "td" and a.get("class", "").startswith("gpu ")]) == cells


def test_an_unknown_kind_exits_2_and_writes_no_page(summary_dir, capsys):
    target = summary_dir.parent / "r.html"
    assert cli.main(["report", "--summary-dir", str(summary_dir), "--kind", "gate", "--html", str(target)]) == 2
    assert "unknown kind 'gate'; known: preflight, cleanup, training_health, serving_gate" in capsys.readouterr().err
    assert not target.exists()
