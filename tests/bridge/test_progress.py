"""Live progress in the CLI: the collector's RunProgress, the live line on a pseudo-terminal, plain lines
elsewhere, nothing extra with --json, and the hosts x GPUs table, on simulated clusters.

No timing assertions: the unit parts run on an injected clock; the CLI runs assert what must hold in
any order of the hosts' results.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import pathlib
import pty
import re
import struct
import subprocess
import termios
import threading

import pytest

from bridge.test_cli import CLI, bare_env, cli, opts

from gpuops_preflight import progress
from gpuops_preflight.events import CHECKS, DONE, PLAN, VERDICT, Collector, HostResult, RunProgress

ERASE = "\r\x1b[K"
REPORT_FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "report" / "fixtures" / "summaries"
ESC = "\x1b"


class Clock:
    """An injected clock: time moves only when the test says so."""

    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now


# ---------------------------------------------------------------- the collector's RunProgress


def event(name, host=None, action=None, res=None, role="preflight"):
    data = {"host": host, "role": role, "task": action}
    if action:
        data["resolved_action"] = "gpuops.preflight.%s" % action
    if res is not None:
        data["res"] = res
    return {"event": name, "event_data": data}


class Watcher:
    """A progress object as the CLI's Display is: a callable that also wants RunProgress."""

    def __init__(self):
        self.results, self.states = [], []

    def __call__(self, result):
        self.results.append(result)

    def run_progress(self, state):
        self.states.append(state)


def node_ok(host):
    return event("runner_on_ok", host, "node_preflight", {"checks": {"ramdisk": {"status": "ok"}},
                                                          "usable_gpus": [0, 1], "elapsed_s": 0.5})


def test_collector_says_where_the_run_stands_hosts_done_total_and_the_slowest():
    clock, watcher = Clock(), Watcher()
    events = Collector("preflight", "run-1", 3, progress=watcher, clock=clock)
    events(event("runner_on_start", "a", "preflight_plan"))
    assert watcher.states[-1].stage == PLAN and watcher.states[-1].total == 0
    events(event("runner_on_ok", "a", "preflight_plan", {"plan": {"host_checks": ["ramdisk"]}}))
    for host in ("a", "b", "c"):
        events(event("runner_on_start", host, "node_preflight"))
        clock.now += 1.0
    state = watcher.states[-1]
    assert (state.stage, state.total, state.done, state.running) == (CHECKS, 3, 0, 3)
    assert (state.slowest, state.slowest_started) == ("a", 100.0)  # started first, still running
    events(node_ok("a"))                                             # the slowest ends: b is next
    state = watcher.states[-1]
    assert state.finished.host == "a" and state.finished_after_s == pytest.approx(3.0)
    assert (state.done, state.running, state.slowest, state.slowest_started) == (1, 2, "b", 101.0)
    events(event("runner_on_unreachable", "c", "node_preflight", {"unreachable": True, "msg": "ssh: no route"}))
    state = watcher.states[-1]
    assert state.finished.status == "unreachable" and (state.done, state.slowest) == (2, "b")
    events(event("runner_on_failed", "b", "node_preflight", {"msg": "MODULE FAILURE"}))
    state = watcher.states[-1]
    assert state.finished.status == "failed" and (state.done, state.running, state.slowest) == (3, 0, None)
    events(event("runner_on_start", "a", "preflight_report"))
    assert (watcher.states[-1].stage, watcher.states[-1].total) == (VERDICT, 3)
    events({"event": "playbook_on_stats", "event_data": {}})
    assert watcher.states[-1].stage == DONE and watcher.states[-1].word == "Preflight"
    # the plain callback got the three results, once each, as before
    assert [(r.host, r.status) for r in watcher.results] == [("a", "checked"), ("c", "unreachable"),
                                                             ("b", "failed")]


def test_the_plans_host_list_gives_the_total_before_every_host_started():
    watcher = Watcher()
    events = Collector("cleanup", "run-2", 3, progress=watcher, clock=Clock())
    events(event("runner_on_ok", "a", "preflight_plan", {"plan": {"hosts": ["a", "b", "c", "d"]}}, role="cleanup"))
    events(event("runner_on_start", "a", "node_cleanup", role="cleanup"))
    assert (watcher.states[-1].total, watcher.states[-1].running, watcher.states[-1].word) == (4, 1, "Cleanup")


def test_skipped_hosts_are_done_and_none_runs_once_the_verdict_is_taken():
    watcher = Watcher()
    events = Collector("cleanup", "run-5", 5, progress=watcher, clock=Clock())
    for host in ("a", "b", "c"):
        events(event("runner_on_start", host, "node_cleanup", role="cleanup"))
    events(event("runner_on_skipped", "a", "node_cleanup", role="cleanup"))  # the step needs no cleanup
    assert (watcher.states[-1].done, watcher.states[-1].running, watcher.states[-1].slowest) == (1, 2, "b")
    events(event("runner_on_start", "a", "preflight_report", role="cleanup"))  # b and c sent nothing more
    assert (watcher.states[-1].stage, watcher.states[-1].running, watcher.states[-1].slowest) == (VERDICT, 0, None)
    assert watcher.results == []  # no HostResult without a result


def test_a_plain_callable_gets_only_host_results_and_a_broken_display_does_not_stop_the_run(caplog):
    got = []
    events = Collector("preflight", "run-3", 3, progress=got.append)
    events(event("runner_on_start", "a", "node_preflight"))
    events(node_ok("a"))
    assert [type(r) for r in got] == [HostResult]

    class Broken(Watcher):
        def run_progress(self, state):
            raise RuntimeError("terminal gone")

    broken = Broken()
    events = Collector("preflight", "run-4", 3, progress=broken)
    with caplog.at_level(logging.ERROR, logger="gpuops_preflight.events"):
        events(event("runner_on_start", "a", "node_preflight"))
        events(node_ok("a"))
    assert events.node_results["a"]["usable_gpus"] == [0, 1] and len(broken.results) == 1
    assert "progress display failed" in caplog.text


# ---------------------------------------------------------------- the live line on a pseudo-terminal


def state(stage=CHECKS, total=3, done=0, running=3, slowest="rig-a", started=100.0, at=100.0, finished=None,
          after=None, word="Preflight"):
    return RunProgress("preflight", word, stage, total, done, running, slowest, started, at, finished, after)


class Terminal:
    """A pseudo-terminal of ``columns`` columns: the display writes to its slave, the test reads its master."""

    def __init__(self, columns=120):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.OPOST  # bytes as written: no \n -> \r\n
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self.stream = os.fdopen(slave, "w", encoding="utf-8")
        os.set_blocking(self.master, False)

    def read(self):
        chunks = []
        while True:
            try:
                data = os.read(self.master, 65536)
            except BlockingIOError:
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks).decode()

    def close(self):
        self.stream.close()
        os.close(self.master)


@pytest.fixture
def terminal():
    term = Terminal()
    yield term
    term.close()


def test_a_terminal_is_detected_with_its_width_and_a_dumb_one_or_a_pipe_is_not(terminal, monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    assert progress.is_terminal(terminal.stream) and progress.width(terminal.stream) == 120
    assert not progress.is_terminal(io.StringIO()) and progress.width(io.StringIO()) == progress.DEFAULT_WIDTH
    monkeypatch.setenv("TERM", "dumb")
    assert not progress.is_terminal(terminal.stream)
    assert not progress.Display(terminal.stream, ticker=False).live


def test_the_live_line_is_redrawn_in_place_at_most_every_interval(terminal, monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    clock = Clock()
    display = progress.Display(terminal.stream, clock=clock, interval=0.25, ticker=False)
    assert display.live
    display.run_progress(state(stage=PLAN, total=0, running=0, slowest=None, started=None))
    assert terminal.read() == ERASE + "Preflight 0:00  planning"
    display.run_progress(state())  # a new stage: drawn at once
    assert terminal.read() == ERASE + "Preflight 0:00  0/3 hosts done, 3 running, slowest rig-a (0.0 s)"
    clock.now += 0.1
    display.run_progress(state(running=2, done=1))
    display.tick()
    assert terminal.read() == ""  # within the interval: not drawn again
    clock.now += 0.2
    display.tick()                 # the ticker's turn: the newest state, with the time moved on
    assert terminal.read() == ERASE + "Preflight 0:00  1/3 hosts done, 2 running, slowest rig-a (0.3 s)"
    clock.now += 12
    display.tick()
    assert terminal.read() == ERASE + "Preflight 0:12  1/3 hosts done, 2 running, slowest rig-a (12 s)"
    display.run_progress(state(stage=VERDICT, done=3, running=0, slowest=None, started=None))
    assert terminal.read() == ERASE + "Preflight 0:12  3/3 hosts done, taking the verdict"
    assert display.tick()  # the ticker goes on until the run is over
    display.run_progress(state(stage=DONE, done=3, running=0, slowest=None, started=None))
    assert terminal.read() == ERASE + "Preflight 0:12  3/3 hosts done, verdict taken"
    assert not display.tick()  # nothing moves any more: the ticker stops
    display.close()
    assert terminal.read() == ERASE  # erased: what follows starts on a clean line
    display.run_progress(state(stage=CHECKS))
    assert not display.tick() and terminal.read() == ""


def test_the_live_line_fits_the_terminal_and_hostile_host_names_cannot_drive_it(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    # a window-title sequence is removed, a stray BEL is a '?'
    hostile = "rig-\x1b]0;owned\x07\x07" + "x" * 80
    for columns, line in ((120, "Preflight 0:00  0/3 hosts done, 3 running, slowest rig-?" + "x" * 32
                                + "... (0.0 s)"),
                          (60, "Preflight 0:00  0/3 hosts done, 3 running, slowest rig-?xxx")):
        terminal = Terminal(columns)
        progress.Display(terminal.stream, clock=Clock(), ticker=False).run_progress(state(slowest=hostile))
        out = terminal.read()
        terminal.close()
        assert out == ERASE + line and len(line) <= columns - 1  # never wraps, so it can be redrawn in place


def test_host_lines_and_log_records_go_above_the_live_line(terminal, monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    clock = Clock()
    display = progress.Display(terminal.stream, checks=True, clock=clock, ticker=False)
    display.run_progress(state())
    terminal.read()
    result = HostResult("preflight", "rig-a", "checked", {"ramdisk": {"status": "ok"}, "gpu_health": {"status": "fail"}})
    clock.now += 0.01
    display.run_progress(state(done=1, running=2, slowest="rig-b", started=100.0, at=102.0, finished=result,
                               after=2.0))
    out = terminal.read()
    assert out == (ERASE + "[1/3] rig-a: checked after 2.0 s: SSH OK, Ramdisk OK, GPU health FAIL; "
                   "slowest still running: rig-b (2.0 s)\n"
                   + ERASE + "Preflight 0:00  1/3 hosts done, 2 running, slowest rig-b (0.0 s)")
    handler = logging.StreamHandler(progress.AboveLine(display))
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    handler.emit(logging.LogRecord("x", logging.WARNING, __file__, 1, "rig-b is slow", None, None))
    assert terminal.read() == ERASE + "[WARNING] rig-b is slow\n"
    clock.now += 1
    display.tick()
    assert terminal.read().startswith(ERASE + "Preflight 0:01  1/3")  # back below the record


# ---------------------------------------------------------------- plain lines


def test_plain_lines_one_per_finished_host_without_any_terminal_control():
    out = io.StringIO()
    display = progress.Display(out, clock=Clock(), ticker=False)
    assert not display.live
    display.run_progress(state(stage=PLAN, total=0, running=0))
    display.run_progress(state())
    ok = HostResult("preflight", "rig-a", "checked", {"ramdisk": {"status": "ok"}})
    gone = HostResult("preflight", "rig-c", "unreachable",
                      message="Failed to connect to the host via ssh: Connection refused\nsecond line")
    display.run_progress(state(done=1, running=2, slowest="rig-b", at=101.5, finished=ok, after=1.5))
    display.run_progress(state(done=2, running=1, slowest="rig-b", at=103.0, finished=gone, after=3.0))
    display.run_progress(state(stage=VERDICT, done=3, running=0, slowest=None))
    display.close()
    assert out.getvalue().splitlines() == [
        "[1/3] rig-a: checked after 1.5 s; slowest still running: rig-b (1.5 s)",
        "[2/3] rig-c: unreachable after 3.0 s: Failed to connect to the host via ssh: Connection refused; "
        "slowest still running: rig-b (3.0 s)",
    ]


def test_what_a_command_shows_for_its_options():
    assert progress.for_command(json_output=True, quiet=False, checks=False) is None
    assert progress.for_command(json_output=False, quiet=True, checks=False) is None
    shown = progress.for_command(json_output=True, quiet=False, checks=True, stream=io.StringIO())
    assert not shown.live and shown.checks
    assert not progress.for_command(json_output=False, quiet=False, checks=False, stream=io.StringIO()).live
    assert progress.table_wanted(None, False, io.StringIO()) is False       # stdout not a terminal
    assert progress.table_wanted(True, False, io.StringIO()) is True        # --table
    assert progress.table_wanted(True, True, io.StringIO()) is False        # never with --json


# ---------------------------------------------------------------- the table


def gpu(index, health="ok", **marks):
    return dict({"index": index, "bdf": "0000:%02x:00.0" % (index or 0), "health": health}, **marks)


def test_the_table_of_hosts_and_gpus():
    hosts = {
        "rig-1": {"status": "warnings", "reachable": True, "usable_gpus": [0, 1],
                  "gpus": [gpu(0), gpu(1, watchlisted=True), gpu(2, "degraded", excluded=True), gpu(3, "lost")]},
        "rig-2": {"status": "blocked", "usable_gpus": [], "gpus": [gpu(0, "unknown"), gpu(None, "ok"),
                                                                   {"index": None, "bdf": None, "health": "lost"}]},
        "rig-gone": {"status": "blocked", "reachable": False, "error": "rig-gone unreachable", "checks": {}, "gpus": []},
        "rig-broke": {"status": "blocked", "reachable": True, "error": "rig-broke: module failure", "checks": {}},
        "rig-late": {"status": "pending", "reachable": None, "checks": {}, "gpus": []},
    }
    assert progress.table_lines(hosts) == [
        "host       verdict                usable  0   1    2      3     0000:00:00.0  ?",
        "rig-1      warnings               2/4     ok  ok*  (DEG)  LOST  -             -",
        "rig-2      blocked                0/3     ?   -    -      -     ok            LOST",
        "rig-gone   blocked (unreachable)  -",
        "rig-broke  blocked (no result)    -",
        "rig-late   pending                -",
        progress.LEGEND,
    ]


def test_the_table_survives_what_a_summary_should_not_hold():
    hosts = {"rig\x1b[2J": {"status": "passed", "gpus": [gpu(True), "x", gpu(1, 7), gpu(2, "weird-state-x")],
                            "usable_gpus": "all"},
             "rig-b": None, "rig-c": {"gpus": {"0": {}}}}
    lines = progress.table_lines(hosts)
    # gpu(True) is no index: named by its PCI address
    assert lines[0].split() == ["host", "verdict", "usable", "1", "2", "0000:01:00.0"]
    assert lines[1].split() == ["rig", "passed", "0/3", "7", "wei...", "ok"]
    odd = {"rig": {"gpus": [{"index": 0, "bdf": ["x"], "vendor": ["amd"], "health": "ok"},
                            {"index": 0, "bdf": 7, "vendor": {}, "health": "lost"}]}}
    assert progress.table_lines(odd)[:2] == ["host  verdict  usable  0   ?", "rig   ?        0/2     ok  LOST"]
    assert lines[2].split() == ["rig-b", "?", "-"] and lines[3].split() == ["rig-c", "?", "-"]
    assert progress.table_lines({}) == [] and progress.table_lines(None) == []


def test_a_host_with_gpus_of_two_vendors_shows_every_gpu_by_pci_address():
    """Both vendors' tools number from 0: keyed by index, NVIDIA GPU 0 hid AMD GPU 0 (issue 14, bug 4)."""
    hosts = {
        "rig-6600": {"status": "passed", "usable_gpus": [0, 1],
                     "gpus": [dict(gpu(0), vendor="amd"), dict(gpu(1), vendor="amd")]},
        "rig-mixed": {"status": "warnings", "usable_gpus": ["0000:03:00.0", "0000:41:00.0"], "gpus": [
            {"index": 0, "bdf": "0000:03:00.0", "vendor": "amd", "health": "ok"},
            {"index": 0, "bdf": "0000:41:00.0", "vendor": "nvidia", "health": "degraded"},
            {"index": 1, "bdf": "0000:51:00.0", "vendor": "nvidia", "health": "lost", "excluded": True}]},
    }
    assert progress.table_lines(hosts) == [
        "host       verdict   usable  0   1   0000:03:00.0  0000:41:00.0  0000:51:00.0",
        "rig-6600   passed    2/2     ok  ok  -             -             -",
        "rig-mixed  warnings  2/3     -   -   ok            DEG           (LOST)",
        progress.LEGEND,
    ]
    # The same column names as the collection's lists of GPUs (usable_gpus, excluded_gpus) on such a host.
    assert progress.gpu_columns(hosts["rig-mixed"]["gpus"]) == ["0000:03:00.0", "0000:41:00.0", "0000:51:00.0"]


def test_a_real_two_vendor_summary_has_a_cell_for_every_gpu():
    summary = json.loads((REPORT_FIXTURES / "mixed_vendors.json").read_text())
    lines = progress.table_lines(summary["hosts"])
    mixed = [line for line in lines if line.startswith("rig-mixed ")]
    assert len(mixed) == 1 and mixed[0].split()[-3:] == ["ok", "ok", "(LOST)"]
    header = lines[0].split()
    assert header[-3:] == ["0000:03:00.0", "0000:41:00.0", "0000:51:00.0"]
    for host, entry in summary["hosts"].items():
        row = [line for line in lines if line.split()[0] == host][0].split()
        assert len([cell for cell in row[3:] if cell != "-"]) == len(entry["gpus"])


# ---------------------------------------------------------------- the CLI on simulated clusters


def in_terminal(args, cwd, columns=200, stdout_too=True):
    """Run the CLI with stderr (and stdout) on a pseudo-terminal: (exit code, terminal text, stdout)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen([CLI] + list(args), cwd=str(cwd), env=bare_env(TERM="xterm"),
                            stdin=subprocess.DEVNULL, stdout=slave if stdout_too else subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks = []

    def drain():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer is gone
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    stdout, _stderr_on_the_pty = proc.communicate(timeout=300)
    reader.join(timeout=60)
    os.close(master)
    text = b"".join(chunks).decode().replace("\r\n", "\n")
    return proc.returncode, text, (stdout or b"").decode()


def live_lines(text, word="Preflight"):
    """The live line's successive texts (what follows an erase and is not a line of its own)."""
    return [part for part in text.split(ERASE)[1:] if part.startswith(word + " ") and "\n" not in part]


def test_an_operator_sees_the_live_line_then_the_table_then_the_verdict(scenario, tmp_path):
    sc = scenario("demo")
    code, text, _stdout = in_terminal(["preflight", "--step", "3", "-i", sc.inventory] + opts(tmp_path), tmp_path)
    assert code == 0, text
    # every change of stage is drawn, whatever the timing; in between, the hosts' progress
    stages = [re.sub(r"^Preflight \d+:\d\d  ", "", line) for line in live_lines(text)]
    # between them the hosts' progress, and, when the ticker fires after the last host and before the verdict
    # starts (under load), "2/2 hosts done"; a stage's line may be redrawn while it lasts
    stages = [s for s in stages if not re.match(r"[012]/[12] hosts done, [12] running, slowest rig-6600b? \(", s)
              and s != "2/2 hosts done"]
    assert [s for n, s in enumerate(stages) if n == 0 or s != stages[n - 1]] == [
        "planning", "0/2 hosts done", "2/2 hosts done, taking the verdict", "2/2 hosts done, verdict taken"]
    assert not re.search(r"^\[\d/2\]", text, re.M)  # on a terminal, no plain lines
    before, _erase, after = text.rpartition(ERASE)  # the line is erased, then only whole lines follow
    assert "Preflight 0:" in before and ESC not in after and "Preflight 0:" not in after
    lines = after.splitlines()
    assert lines[0].startswith("[WARNING] Preflight warnings: ['GPU_UNHEALTHY: rig-6600b: GPU 10")  # the log
    lines = lines[1:]
    assert lines[0].split() == ["host", "verdict", "usable"] + [str(i) for i in range(12)]
    assert lines[1].split() == ["rig-6600", "passed", "12/12"] + ["ok"] * 12
    assert lines[2].split() == ["rig-6600b", "warnings", "11/12"] + ["ok"] * 7 + ["ok*", "ok", "ok", "(LOST)", "ok"]
    assert lines[3] == progress.LEGEND and lines[4] == ""
    assert lines[5].startswith("Preflight PASSED for step 3 with 1 warning(s)")


def test_plain_lines_when_stderr_is_not_a_terminal_and_the_table_on_request(scenario, tmp_path):
    sc = scenario("unreachable_host")
    sc.cluster["rig-6600"].set_tool_mode("slow", delay=2)  # the reachable rig may still run when the other fails
    done = cli(["preflight", "--step", "3", "-i", sc.inventory, "--table"] + opts(tmp_path), tmp_path)
    assert done.returncode == 1, done.stderr + done.stdout
    assert ESC not in done.stderr and "\r" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("[")]
    host_lines = [line for line in lines if re.match(r"\[\d/2\] ", line)]
    assert sorted(line[:6] for line in host_lines) == ["[1/2] ", "[2/2] "]
    by_host = {line.split(":")[0][6:]: line for line in host_lines}
    assert re.match(r"\[\d/2\] rig-6600: checked after [\d.]+ s(;|$)", by_host["rig-6600"])
    assert re.match(r"\[\d/2\] rig-6600-gone: unreachable after [\d.]+ s: .*(Connection refused|timed out)",
                    by_host["rig-6600-gone"]), by_host
    for line in host_lines:  # a host named as still running is one whose line had not come yet
        running = re.search(r"slowest still running: (\S+) \(", line)
        if running:
            assert line.startswith("[1/2]") and running.group(1) != line.split(":")[0][6:]
    out = done.stdout.splitlines()
    assert out[0].split() == ["host", "verdict", "usable"] + [str(i) for i in range(12)]
    assert out[1].split() == ["rig-6600", "passed", "12/12"] + ["ok"] * 12
    assert out[2].split() == ["rig-6600-gone", "blocked", "(unreachable)", "-"]
    assert out[4] == "" and out[5].startswith("Preflight BLOCKED for step 3")


def test_nothing_extra_with_json_even_on_a_terminal(scenario, tmp_path):
    sc = scenario("healthy")
    code, text, stdout = in_terminal(["preflight", "--step", "3", "-i", sc.inventory, "--json"] + opts(tmp_path),
                                     tmp_path, stdout_too=False)
    assert code == 0, text + stdout
    assert json.loads(stdout)["hosts"]["rig-6600"]["usable_gpus"] == list(range(12))  # stdout: the document only
    assert stdout.lstrip().startswith("{") and stdout.rstrip().endswith("}")
    assert text == ""  # no live line, no host lines, no table
    # --progress still prints each host's checks (plain, on stderr); stdout stays the document
    done = cli(["preflight", "--step", "3", "-i", sc.inventory, "--json", "--progress"] + opts(tmp_path), tmp_path)
    assert done.returncode == 0 and json.loads(done.stdout)["passed"] is True
    assert re.search(r"^\[1/1\] rig-6600: checked after [\d.]+ s: SSH OK, Ramdisk OK, .*GPU health OK",
                     done.stderr, re.M), done.stderr


def test_the_cleanup_shows_its_own_word_and_logs_above_the_line_and_q_shows_nothing(scenario, tmp_path):
    sc = scenario("dirty_after_step")
    code, text, _stdout = in_terminal(["cleanup", "--step", "3", "-i", sc.inventory, "-v"] + opts(tmp_path), tmp_path)
    assert code == 0, text
    assert any("1/1 hosts done" in line for line in live_lines(text, "Cleanup"))
    assert re.search(r"(\n|\r\x1b\[K)\[INFO\] \[CLEANUP\] Complete: 1 nodes cleaned\n", text)  # a line of its own
    assert re.search(r"^rig-6600\s+passed\s+12/12\s+ok", text, re.M)
    done = cli(["cleanup", "--step", "3", "-i", sc.inventory, "-q"] + opts(tmp_path), tmp_path)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("Cleanup for step 3 complete: 1 of 1 node(s) cleaned")


def test_the_ticker_thread_ends_with_the_display(terminal, monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    display = progress.Display(terminal.stream)
    display.run_progress(state())
    ticker = display._thread
    assert ticker is not None and ticker.is_alive() and ticker.daemon
    display.close()
    assert not ticker.is_alive()
    assert terminal.read().endswith(ERASE)


# ---------------------------------------------------------------- run_command, without a playbook


def fake_report(**hosts):
    from gpuops_preflight.report import Report

    return Report(kind="preflight", step=3, status="passed", run_id="r", started_at=None, finished_at=None,
                  duration_s=0.0, hosts=hosts, summary={"passed": True, "hosts": hosts},
                  lines=["Preflight PASSED for step 3", "Summary: /x.json"])


@pytest.mark.parametrize("flags, table, shown", [
    ([], False, "plain"),                      # stdout and stderr are not terminals here
    (["--table"], True, "plain"),
    (["--progress", "--no-table"], False, "plain+checks"),
    (["-q"], False, None),
    (["--json"], False, None),
    (["--json", "--progress", "--table"], False, "plain+checks"),
])
def test_run_command_puts_the_display_and_the_table_where_the_options_say(flags, table, shown, capsys):
    from gpuops_preflight import cli

    args = cli._parser().parse_args(["preflight", "--step", "3"] + flags)
    seen = []

    def execute(got_args, extravars, stop, display):
        seen.append(display)
        return fake_report(**{"rig-1": {"status": "passed", "usable_gpus": [0], "gpus": [gpu(0)]}})

    assert cli.run_command(args, execute) == 0
    display = seen[0]
    assert (None if display is None else "plain+checks" if display.checks else "plain") == shown
    assert display is None or not display.live
    out = capsys.readouterr().out
    if "--json" in flags:
        assert json.loads(out) == {"passed": True, "hosts": {"rig-1": {"status": "passed", "usable_gpus": [0],
                                                                       "gpus": [gpu(0)]}}}
    elif table:
        assert out.splitlines() == ["host   verdict  usable  0", "rig-1  passed   1/1     ok", progress.LEGEND, "",
                                    "Preflight PASSED for step 3", "Summary: /x.json"]
    else:
        assert out.splitlines() == ["Preflight PASSED for step 3", "Summary: /x.json"]
