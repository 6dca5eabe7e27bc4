"""Live progress of a run on the command line, and the hosts x GPUs table after it.

``Display`` is a progress object for ``runner.execute`` (and ``run_preflight`` / ``run_cleanup``): the
collector (events.py) sends it a ``RunProgress`` after every event that changes where the run stands.

- On a terminal (``stream.isatty()``, ``TERM`` not ``dumb``): one live line, redrawn in place (``\\r`` then
  erase to the end of the line) at most every ``interval`` seconds, plus once at each change of stage;
  a ticker thread keeps the running time of the slowest host current while no event arrives. The line is
  cut to the terminal's width (a wrapped line could not be redrawn in place) and erased when the run ends.
  Log lines and per-host lines (``checks``) are written above it.
- Elsewhere (a pipe, a file, a log): one plain line per host as its result arrives.

``table_lines(hosts)`` renders a report's hosts (the summary's ``hosts``) as a compact table: one row per
host (its verdict, usable GPUs) and one column per GPU name, each GPU's health in a short form with the
excluded and watchlisted ones marked. A GPU is named as the collection names it (``_pci.gpu_name``): by
index, or by PCI address where it has no index or where its host has GPUs of two vendors (each vendor's
tool numbers its own from 0, so an index there would put two GPUs in one cell). Both are pure text:
nothing here runs a playbook.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from .collection import module_utils
from .events import DONE, PLAN, VERDICT, HostResult, RunProgress

# Seconds between two redraws of the live line (a change of stage is drawn at once).
REDRAW_S = 0.25
ERASE = "\r\x1b[K"
DEFAULT_WIDTH = 80
# A host's message (an unreachable host's SSH error) is cut to this many characters on its line,
# a host name on the live line to this many.
MESSAGE_MAX = 200
HOST_MAX = 40


# ---------------------------------------------------------------- text


def printable(value: Any, limit: int | None = None) -> str:
    """Text safe to put on a terminal (``_values.printable``: no escape sequence, no control character)."""
    return module_utils("_values").printable(value, limit)


def seconds(value: float | None) -> str:
    """``0.4 s``, ``12 s``, ``2m05s``."""
    if value is None:
        return "?"
    if value < 10:
        return "%.1f s" % value
    if value < 60:
        return "%d s" % value
    return "%dm%02ds" % divmod(int(value), 60)


def _slowest(state: RunProgress, now: float) -> str:
    if state.slowest is None or state.slowest_started is None:
        return ""
    return "%s (%s)" % (printable(state.slowest, HOST_MAX), seconds(max(0.0, now - state.slowest_started)))


def live_text(state: RunProgress, now: float, started: float) -> str:
    """The live line: ``Preflight 0:12  3/7 hosts done, 4 running, slowest rig-2 (11 s)``."""
    minutes, secs = divmod(int(max(0.0, now - started)), 60)
    head = "%s %d:%02d  " % (printable(state.word), minutes, secs)
    if not state.total:
        return head + ("planning" if state.stage == PLAN else "starting the host checks")
    text = head + "%d/%d hosts done" % (state.done, state.total)
    if state.running:
        text += ", %d running, slowest %s" % (state.running, _slowest(state, now))
    if state.stage == VERDICT:
        text += ", taking the verdict"
    elif state.stage == DONE:
        text += ", verdict taken"
    return text


def host_line(state: RunProgress, checks: bool = False, now: float | None = None) -> str:
    """One finished host: ``[3/7] rig-2: checked after 1.2 s; slowest still running: rig-5 (3.0 s)``.

    ``checks``: the host's checks too (``SSH OK, Ramdisk OK, GPU health FAIL``), as ``--progress`` asks.
    """
    result = state.finished
    if result is None:
        return ""
    text = "[%d/%d] %s: %s" % (state.done, state.total, printable(result.host), printable(result.status))
    if state.finished_after_s is not None:
        text += " after %s" % seconds(state.finished_after_s)
    if result.status != "checked":
        message = (result.message or "").strip().splitlines()
        text += ": %s" % printable(message[0] if message else "no message", MESSAGE_MAX)
    elif checks:
        text += ": %s" % printable(check_line(result))
    if state.running:
        text += "; slowest still running: %s" % _slowest(state, state.at if now is None else now)
    return text


def check_line(result: HostResult) -> str:
    """``SSH OK, Ramdisk OK, GPU health FAIL``: what ``--progress`` always printed for a host."""
    from . import oplog  # the collection's check labels: imported when a line asks for them

    return oplog.check_line({"reachable": result.status != "unreachable", "checks": result.checks})


# ---------------------------------------------------------------- terminal


def is_terminal(stream: Any) -> bool:
    """A terminal that understands ``\\r`` and erase-to-end-of-line (not ``TERM=dumb``)."""
    try:
        return bool(stream.isatty()) and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def width(stream: Any, default: int = DEFAULT_WIDTH) -> int:
    """Columns of the stream's terminal (read at each draw: a resized window is followed)."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return default
    return columns if columns > 0 else default


class Display:
    """A progress object for a run: ``Display(sys.stderr)``, passed as ``progress=``, closed after the run.

    ``live``: draw the live line (default: the stream is a terminal); otherwise one plain line per host.
    ``checks``: each host's checks on its line (``--progress``); on a terminal these lines go above the
    live line. ``clock`` must be the collector's (``time.monotonic``). ``ticker``: a thread that redraws
    while no event comes (off in tests, which call ``tick()`` themselves).
    """

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None, checks: bool = False,
                 clock: Callable[[], float] = time.monotonic, interval: float = REDRAW_S,
                 ticker: bool = True) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.live = is_terminal(self.stream) if live is None else bool(live)
        self.checks = checks
        self.clock = clock
        self.interval = interval
        self.started = clock()
        self._ticker = ticker
        self._lock = threading.RLock()
        self._state: RunProgress | None = None
        self._drawn: str | None = None      # the live line on screen, None when there is none
        self._drawn_at: float | None = None
        self._closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- what the collector calls

    def __call__(self, result: HostResult) -> None:
        """The plain progress callback: nothing to do, each host's line comes with its ``RunProgress``."""
        return None

    def run_progress(self, state: RunProgress) -> None:
        with self._lock:
            if self._closed:
                return
            previous, self._state = self._state, state
            if state.finished is not None and (self.checks or not self.live):
                self._write_line(host_line(state, self.checks))
            if not self.live:
                return
            now = self.clock()
            if previous is None or previous.stage != state.stage or self._due(now):
                self._draw(now)
            self._start_ticker()

    # ---- drawing

    def tick(self) -> bool:
        """Redraw the live line if it is due (the ticker calls this; the running time moves on).
        False once there is nothing more to tick for: the display is closed or the run is over."""
        with self._lock:
            if not self.live or self._closed:
                return False
            now = self.clock()
            if self._state is not None and self._due(now):
                self._draw(now)
            return self._state is None or self._state.stage != DONE

    def write_above(self, text: str) -> None:
        """Write whole lines (a log record) above the live line; the line comes back at the next draw."""
        with self._lock:
            try:
                if self._drawn is not None:
                    self.stream.write(ERASE)
                    self._drawn = None
                    self._drawn_at = None  # drawn again at the next tick
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):
                self._give_up()

    def close(self) -> None:
        """Stop the ticker and erase the live line: what follows starts on a clean line."""
        with self._lock:
            self._closed = True
            self._stop.set()
            if self._drawn is not None:
                try:
                    self.stream.write(ERASE)
                    self.stream.flush()
                except (OSError, ValueError):
                    pass
                self._drawn = None
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2 * self.interval + 1)

    def __enter__(self) -> Display:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _due(self, now: float) -> bool:
        return self._drawn_at is None or now - self._drawn_at >= self.interval

    def _draw(self, now: float) -> None:
        assert self._state is not None
        text = live_text(self._state, now, self.started)[:max(1, width(self.stream) - 1)]
        self._drawn_at = now
        if text == self._drawn:
            return
        try:
            self.stream.write(ERASE + text)
            self.stream.flush()
        except (OSError, ValueError):  # the terminal went away: the run goes on without a display
            self._give_up()
            return
        self._drawn = text

    def _write_line(self, line: str) -> None:
        if self.live:
            self.write_above(line + "\n")
            return
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            self._give_up()

    def _give_up(self) -> None:
        self._closed = True
        self._stop.set()
        self._drawn = None

    def _start_ticker(self) -> None:
        """A ticker while a run goes on (one at a time; a display may serve a preflight, then a cleanup)."""
        if self._ticker and self._state is not None and self._state.stage != DONE and (
                self._thread is None or not self._thread.is_alive()):
            self._thread = threading.Thread(target=self._tick_loop, name="gpuops-progress", daemon=True)
            self._thread.start()

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.tick():
                    return
            except Exception:  # never let a drawing problem surface in the run
                self._give_up()
                return


class AboveLine:
    """A stream for a logging handler while a live line is shown: each record goes above the line."""

    def __init__(self, display: Display) -> None:
        self.display = display

    def write(self, text: str) -> int:
        self.display.write_above(text)
        return len(text)

    def flush(self) -> None:
        return None


# ---------------------------------------------------------------- the table

# Each GPU's health, short (docs/SUMMARY_SCHEMA.md "GPU facts"); an unexpected value is shown cut short.
HEALTH = {"ok": "ok", "degraded": "DEG", "lost": "LOST", "unknown": "?"}
NO_GPU = "-"
LEGEND = ("GPU health by index: ok, DEG degraded, LOST lost, ? unknown, - no such GPU; "
          "(...) excluded, * on the watchlist")


def gpu_cell(gpu: Mapping[str, Any]) -> str:
    """``ok``, ``DEG``, ``(LOST)`` (excluded), ``ok*`` (watchlisted)."""
    health = gpu.get("health")
    cell = HEALTH.get(health) if isinstance(health, str) else None
    if cell is None:
        cell = printable(health, 6) if health not in (None, "") else "?"
    if gpu.get("excluded") is True:
        cell = "(%s)" % cell
    if gpu.get("watchlisted") is True:
        cell += "*"
    return cell


def _index(gpu: Mapping[str, Any]) -> int | None:
    index = gpu.get("index")
    return index if isinstance(index, int) and not isinstance(index, bool) and index >= 0 else None


def _text(gpu: Mapping[str, Any], key: str) -> str | None:
    value = gpu.get(key)
    return value if isinstance(value, str) and value else None


def gpu_columns(gpus: list[Mapping[str, Any]]) -> list[int | str | None]:
    """Each GPU's column in the table, as ``_pci.gpu_name`` names it: its index; its PCI address where it has
    no index, or where its host has GPUs of two vendors (or two GPUs share an index all the same); None for
    a GPU with neither (a ``?`` column)."""
    from . import collection  # the collection's one naming rule: imported when a table is drawn

    pci = collection.module_utils("_pci")
    named = [{"index": _index(g), "bdf": _text(g, "bdf"), "vendor": _text(g, "vendor")} for g in gpus]
    indexes = [g["index"] for g in named if g["index"] is not None]
    mixed = pci.mixed_vendors(named) or len(set(indexes)) < len(indexes)
    columns: list[int | str | None] = []
    for gpu in named:
        name = pci.gpu_name(gpu, mixed)
        name = gpu["index"] if name is None else name
        columns.append(None if name in columns else name)  # never two GPUs in one cell
    return columns


def _gpus(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    gpus = entry.get("gpus")
    return [g for g in gpus if isinstance(g, Mapping)] if isinstance(gpus, list) else []


def _usable(entry: Mapping[str, Any], gpus: list) -> str:
    usable = entry.get("usable_gpus")
    if not gpus:
        return NO_GPU
    return "%d/%d" % (len(usable) if isinstance(usable, list) else 0, len(gpus))


def _verdict(entry: Mapping[str, Any]) -> str:
    """The host's status (``passed``, ``warnings``, ``blocked``, ...), and why when no result came back."""
    status = printable(entry.get("status") or "?", 12)
    if entry.get("reachable") is False and status != "unreachable":
        return status + " (unreachable)"
    if entry.get("error") and not entry.get("checks") and status not in ("failed", "unreachable"):
        return status + " (no result)"
    return status


def table_lines(hosts: Any) -> list[str]:
    """The hosts x GPUs table of a report's ``hosts`` (host -> summary host entry); ``[]`` for no host.

    One column per GPU name (``gpu_columns``): indices in order, then PCI addresses (GPUs without an index,
    and every GPU of a host with GPUs of two vendors), then ``?`` columns for GPUs with neither. A host that
    gave no GPU facts (unreachable, failed, still pending) has empty cells: its verdict says why
    (``blocked (unreachable)``, ``blocked (no result)``, ``pending``).
    """
    if not isinstance(hosts, Mapping) or not hosts:
        return []
    entries = []
    for host, entry in hosts.items():
        entry = entry if isinstance(entry, Mapping) else {}
        gpus = _gpus(entry)
        entries.append((printable(host), entry, gpus, gpu_columns(gpus)))
    named = {c for _h, _e, _g, columns in entries for c in columns if c is not None}
    order = sorted(c for c in named if isinstance(c, int)) + sorted(c for c in named if isinstance(c, str))
    extra = max([columns.count(None) for _h, _e, _g, columns in entries] or [0])
    rows = [["host", "verdict", "usable"] + [printable(c) for c in order] + ["?"] * extra]
    for host, entry, gpus, columns in entries:
        by_name = {c: gpu_cell(g) for g, c in zip(gpus, columns) if c is not None}
        unnamed = [gpu_cell(g) for g, c in zip(gpus, columns) if c is None]
        filler = NO_GPU if gpus else ""
        cells = [by_name.get(c, filler) for c in order] + unnamed + [filler] * (extra - len(unnamed))
        rows.append([host, _verdict(entry), _usable(entry, gpus)] + cells)
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return lines + [LEGEND]


# ---------------------------------------------------------------- for a command


def for_command(*, json_output: bool, quiet: bool, checks: bool, stream: TextIO | None = None) -> Display | None:
    """The display a run command shows on stderr (docs/WATCHER.md, "Command line").

    ``--json`` or ``-q``: nothing, except the per-host lines ``--progress`` (``checks``) asks for, plain.
    Otherwise the live line on a terminal, one plain line per host elsewhere, with checks on request.
    """
    if json_output or quiet:
        return Display(stream, live=False, checks=True) if checks else None
    return Display(stream, checks=checks)


def table_wanted(option: bool | None, json_output: bool, stream: TextIO | None = None) -> bool:
    """``--table`` / ``--no-table``; by default the table is shown when stdout is a terminal, never with --json."""
    if json_output:
        return False
    if option is not None:
        return option
    try:
        return bool((sys.stdout if stream is None else stream).isatty())
    except (AttributeError, ValueError, OSError):
        return False


__all__ = ["AboveLine", "Display", "for_command", "gpu_cell", "gpu_columns", "host_line", "is_terminal", "live_text",
           "table_lines", "table_wanted", "width"]
