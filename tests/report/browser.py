"""Load a page in Debian's headless chromium and report what a person would see go wrong.

Talks the DevTools protocol over ``--remote-debugging-pipe`` (fd 3: commands in, fd 4: replies
and events out, each JSON message ended by a NUL byte), so no port is opened and no package is
needed. ``load(url)`` returns a ``PageLoad``: console errors (console.error/assert), uncaught
exceptions, log entries of level error (CSP violations, failed loads), every network request the
page made (and apart, those the browser blocked before sending), the results of the expressions given, and a PNG screenshot.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import subprocess
import tempfile
import time

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--remote-debugging-pipe",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio")


class BrowserError(RuntimeError):
    pass


class PageLoad(object):
    def __init__(self):
        self.console_errors: list[str] = []
        self.exceptions: list[str] = []
        self.log_errors: list[str] = []
        self.requests: list[str] = []  # requests that went out (or tried to)
        self.blocked: list[str] = []   # requests the browser stopped before sending (CSP)
        self.values: list = []
        self.screenshot: bytes = b""

    @property
    def problems(self) -> list[str]:
        return self.console_errors + self.exceptions + self.log_errors


class _Pipe(object):
    def __init__(self, write_fd: int, read_fd: int, deadline: float):
        self.write_fd, self.read_fd, self.deadline = write_fd, read_fd, deadline
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode("utf-8") + b"\0")
        while True:
            reply = self.receive()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise BrowserError("%s: %s" % (method, reply["error"]))
                return reply.get("result", {})
            self.events.append(reply)

    def receive(self) -> dict:
        while b"\0" not in self.buffer:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("chromium did not answer in time")
            ready = select.select([self.read_fd], [], [], left)[0]
            if ready:
                chunk = os.read(self.read_fd, 1 << 20)
                if not chunk:
                    raise BrowserError("chromium closed its DevTools pipe")
                self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def wait_for(self, method: str) -> dict:
        for number, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(number)
        while True:
            event = self.receive()
            if event.get("method") == method:
                return event
            self.events.append(event)


def _high(fd: int) -> int:
    """The same pipe end on a descriptor >= 10, so placing it on 3 or 4 in the child cannot clobber the other."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


def _spawn(binary: str, profile: str) -> tuple[subprocess.Popen, int, int]:
    to_child_r, to_child_w = (_high(fd) for fd in os.pipe())
    from_child_r, from_child_w = (_high(fd) for fd in os.pipe())
    # bash (dash cannot name fds above 9) puts the pipe ends on fd 3 (commands in) and fd 4 (replies out), then becomes chromium.
    script = 'exec "$0" "$@" 3<&%d 4>&%d %d<&- %d>&-' % (to_child_r, from_child_w, to_child_r, from_child_w)
    argv = ["bash", "-c", script, binary] + list(FLAGS) + ["--user-data-dir=%s" % profile, "about:blank"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            pass_fds=(to_child_r, from_child_w), start_new_session=True)
    os.close(to_child_r)
    os.close(from_child_w)
    return proc, to_child_w, from_child_r


def _collect(load: PageLoad, events: list[dict], page_url: str) -> None:
    sent: dict[str, str] = {}
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            load.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            load.exceptions.append(details.get("exception", {}).get("description") or details.get("text", ""))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            load.log_errors.append(params["entry"].get("text", ""))
        elif method == "Network.requestWillBeSent":
            url = params.get("request", {}).get("url", "")
            if url != page_url:
                sent[params.get("requestId", url)] = url
        elif method == "Network.loadingFailed" and params.get("blockedReason") and params.get("requestId") in sent:
            # Stopped inside the browser (e.g. by the page's Content-Security-Policy): it never left.
            load.blocked.append(sent.pop(params["requestId"]))
    load.requests.extend(sent.values())


def load(binary: str, url: str, screenshot: str | None = None, expressions: tuple = (), width: int = 1400,
         height: int = 900, timeout: float = 60.0) -> PageLoad:
    """Open ``url``, wait for its load event, evaluate ``expressions`` in order, take a screenshot."""
    result = PageLoad()
    with tempfile.TemporaryDirectory(prefix="gpuops-chromium-") as profile:
        proc, write_fd, read_fd = _spawn(binary, profile)
        pipe = _Pipe(write_fd, read_fd, time.monotonic() + timeout)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Runtime", "Log", "Network", "Page"):
                pipe.send(domain + ".enable", session=session)
            pipe.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
            pipe.send("Page.navigate", {"url": url}, session=session)
            pipe.wait_for("Page.loadEventFired")
            for expression in expressions:
                reply = pipe.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                       "awaitPromise": True}, session=session)
                if "exceptionDetails" in reply:
                    raise BrowserError("%s: %s" % (expression, reply["exceptionDetails"]))
                result.values.append(reply.get("result", {}).get("value"))
            shot = pipe.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                             session=session)
            result.screenshot = base64.b64decode(shot["data"])
            _collect(result, pipe.events, url)
            try:
                pipe.send("Browser.close")
            except BrowserError:
                pass
        finally:
            os.close(write_fd)
            os.close(read_fd)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
    if screenshot:
        os.makedirs(os.path.dirname(screenshot), exist_ok=True)
        with open(screenshot, "wb") as handle:
            handle.write(result.screenshot)
    return result
