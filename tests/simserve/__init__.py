"""A stand-in GPU orchestrator for the serving gate's tests: a REAL HTTP server (stdlib http.server)
on 127.0.0.1, on a free port, that plays the orchestrator's API as its runbook describes it.

    GET  /health          {"status": "ok"}
    POST /models/preload  {"refresh": bool} -> 202 accepted (or 503 for the first N calls)
    GET  /models/status   {"in_progress": bool, "summary": {...}, "errors": [...], "all_ready": bool}
    GET  /gpu/info        {"mps_enabled": bool, ...}

Behaviour (``Behaviour`` fields, changeable while it runs): models ready a delay after the preload
was accepted; models that fail with an error text (``errors`` as strings or objects); preload
answering 503 first; all_ready false for ever; malformed JSON; wrong content types; a fixed
answer for a path (``canned``: a redirect, an empty or ``null`` body, bytes that are not UTF-8); and
``HangingServer``, which accepts connections and never answers. Standard library only: the
systemd tests copy this file into a container and run it there (``python3 simserve.py --port P
--state FILE``: the behaviour is read again from the JSON FILE on every request).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Behaviour:
    """What the stand-in does. ``models``: the model ids it serves."""

    FIELDS = ("models", "ready_after", "preload_503", "fail", "errors_as", "never_ready", "already_ready",
              "health", "status_body", "status_content_type", "health_content_type", "mps_enabled",
              "summary_shape", "preload_status", "ready_file", "stale_errors", "stale_polls", "canned")

    def __init__(self, **kw):
        self.models = list(kw.pop("models", []))
        self.ready_after = float(kw.pop("ready_after", 0.0))   # seconds after the accepted preload
        self.preload_503 = int(kw.pop("preload_503", 0))       # 503 answers before the 202
        self.fail = dict(kw.pop("fail", {}))                   # model -> error text
        self.errors_as = kw.pop("errors_as", "objects")        # "objects" or "strings"
        self.never_ready = bool(kw.pop("never_ready", False))
        self.already_ready = bool(kw.pop("already_ready", False))
        self.health = kw.pop("health", "ok")                   # "ok" or another status word
        self.status_body = kw.pop("status_body", None)         # raw /models/status body (malformed JSON)
        self.status_content_type = kw.pop("status_content_type", "application/json")
        self.health_content_type = kw.pop("health_content_type", "application/json")
        self.mps_enabled = kw.pop("mps_enabled", True)
        self.summary_shape = kw.pop("summary_shape", "models")  # "models", "counts", "lists"
        self.preload_status = int(kw.pop("preload_status", 202))
        self.ready_file = kw.pop("ready_file", None)           # all_ready only once this file exists
        self.stale_errors = dict(kw.pop("stale_errors", {}))   # model -> error shown until a preload is accepted
        self.stale_polls = int(kw.pop("stale_polls", 0))       # ... and for this many status answers after it
        # path -> {"status", "body", "content_type" (None: no header), "headers"}: a fixed answer for that path
        # (GET or POST)
        self.canned = dict(kw.pop("canned", {}))
        if kw:
            raise TypeError("unknown behaviour: %s" % ", ".join(sorted(kw)))

    def as_dict(self):
        return dict((f, getattr(self, f)) for f in self.FIELDS)


class _State:
    def __init__(self, behaviour, state_file=None):
        self.behaviour = behaviour
        self.state_file = state_file
        self.lock = threading.Lock()
        self.accepted_at = None
        self.status_after_accept = 0
        self.preload_calls = 0
        self.requests = []

    def current(self):
        if self.state_file:
            try:
                with open(self.state_file) as handle:
                    self.behaviour = Behaviour(**json.load(handle))
            except (OSError, ValueError):
                pass
        return self.behaviour

    def states(self, beh, now):
        """{model: "ready"|"loading"|"failed"|"pending"}."""
        out = {}
        for model in beh.models:
            if model in beh.fail:
                out[model] = "failed" if self.accepted_at is not None else "pending"
            elif beh.already_ready:
                out[model] = "ready"
            elif beh.ready_file:
                out[model] = "ready" if os.path.exists(beh.ready_file) else "loading"
            elif self.accepted_at is None:
                out[model] = "pending"
            elif beh.never_ready or now - self.accepted_at < beh.ready_after:
                out[model] = "loading"
            else:
                out[model] = "ready"
        return out

    def status_doc(self, beh, now):
        if self.accepted_at is not None:
            self.status_after_accept += 1
        if beh.stale_errors and (self.accepted_at is None or self.status_after_accept <= beh.stale_polls):
            # what the orchestrator still shows from its last preload: not in progress, with its errors
            errors = [{"model": m, "error": t} for m, t in sorted(beh.stale_errors.items())]
            return {"in_progress": False, "summary": {"models": dict((m, {"status": "pending"}) for m in beh.models)},
                    "errors": errors, "all_ready": False}
        states = self.states(beh, now)
        ready = [m for m, s in states.items() if s == "ready"]
        failed = [m for m in beh.models if states.get(m) == "failed"]
        loading = [m for m, s in states.items() if s == "loading"]
        if beh.summary_shape == "counts":
            summary = {"total": len(states), "ready": len(ready), "loading": len(loading), "failed": len(failed)}
        elif beh.summary_shape == "lists":
            summary = {"ready": ready, "loading": loading, "failed": failed}
        else:
            summary = {"models": dict((m, {"status": s}) for m, s in states.items())}
        if beh.errors_as == "strings":
            errors = ["%s: %s" % (m, beh.fail[m]) for m in failed]
        else:
            errors = [{"model": m, "error": beh.fail[m]} for m in failed]
        all_ready = bool(states) and len(ready) == len(states)
        return {"in_progress": bool(loading) or (self.accepted_at is None and not all_ready and not failed),
                "summary": summary, "errors": errors, "all_ready": all_ready}


class _Handler(BaseHTTPRequestHandler):
    server_version = "sim-orchestrator/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status, body, content_type="application/json", headers=None):
        data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def _send_canned(self, canned):
        body = canned.get("body", "")
        self._send(canned.get("status", 200), body.encode("latin-1") if isinstance(body, str) else body,
                   canned.get("content_type"), canned.get("headers"))

    def do_GET(self):
        state = self.server.state
        beh = state.current()
        state.requests.append(("GET", self.path, None))
        canned = beh.canned.get(self.path)
        if canned is not None:
            self._send_canned(canned)
        elif self.path == "/health":
            self._send(200, {"status": beh.health}, beh.health_content_type)
        elif self.path == "/models/status":
            with state.lock:
                doc = state.status_doc(beh, time.monotonic())
            body = beh.status_body if beh.status_body is not None else doc
            self._send(200, body, beh.status_content_type)
        elif self.path == "/gpu/info":
            self._send(200, {"mps_enabled": beh.mps_enabled, "gpus": [{"index": 0, "name": "sim"}]})
        else:
            self._send(404, {"detail": "Not Found"})

    def do_POST(self):
        state = self.server.state
        beh = state.current()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            body = raw
        state.requests.append(("POST", self.path, body))
        canned = beh.canned.get(self.path)
        if canned is not None:
            self._send_canned(canned)
            return
        if self.path != "/models/preload":
            self._send(404, {"detail": "Not Found"})
            return
        with state.lock:
            state.preload_calls += 1
            if state.preload_calls <= beh.preload_503:
                self._send(503, {"detail": "GPU busy, try again"})
                return
            if beh.preload_status != 202:
                self._send(beh.preload_status, {"detail": "preload refused by the stand-in"})
                return
            if state.accepted_at is None or (isinstance(body, dict) and body.get("refresh")):
                state.accepted_at = time.monotonic()
                state.status_after_accept = 0
        self._send(202, {"accepted": True})


class SimOrchestrator:
    """The stand-in, serving in a thread: ``url``, ``requests`` [(method, path, body)], ``stop()``."""

    def __init__(self, behaviour=None, port=0, state_file=None, **kw):
        self.state = _State(behaviour or Behaviour(**kw), state_file)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = self.state
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.daemon = True

    @property
    def behaviour(self):
        return self.state.behaviour

    @property
    def requests(self):
        return list(self.state.requests)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class HangingServer:
    """Accepts connections on 127.0.0.1 and never answers (nor closes them) until stopped."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.held = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept)
        self.thread.daemon = True

    def _accept(self):
        self.sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _addr = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            self.held.append(conn)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join(2)
        for conn in self.held:
            conn.close()
        self.sock.close()


# A URL with a password and a token, as a service may name one in what it answers (a model's source, a
# database): the gate must never show the secrets, only the URL with them replaced.
CREDENTIALS_URL = "https://hf:S3cretPw@hub.example/org/m?token=T0kenVal"
CREDENTIALS_REDACTED = "https://***@hub.example/org/m?token=***"
SECRETS = ("S3cretPw", "T0kenVal")


def canned_with_credentials(models):
    """``canned`` answers that each name CREDENTIALS_URL: /health, /models/status (all ready, with an old
    error about a model it names by that URL), the preload's 202 and /gpu/info."""
    def answer(doc, status=200):
        return {"status": status, "body": json.dumps(doc), "content_type": "application/json"}

    status = {"all_ready": True, "in_progress": False, "source": CREDENTIALS_URL,
              "summary": {"models": dict((m, {"status": "ready", "from": CREDENTIALS_URL}) for m in models)},
              "errors": [{"model": CREDENTIALS_URL, "error": "old failure fetching " + CREDENTIALS_URL}]}
    return {"/health": answer({"status": "ok", "db": CREDENTIALS_URL}), "/models/status": answer(status),
            "/models/preload": answer({"accepted": True, "from": CREDENTIALS_URL}, 202),
            "/gpu/info": answer({"mps_enabled": True, "endpoint": CREDENTIALS_URL})}


def free_port():
    """A TCP port nothing listens on (bound, then released)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def main(argv=None):
    parser = argparse.ArgumentParser(description="stand-in GPU orchestrator")
    parser.add_argument("--port", type=int, default=8014)
    parser.add_argument("--state", help="JSON file with the Behaviour fields, read again on every request")
    args = parser.parse_args(argv)
    beh = Behaviour()
    if args.state:
        with open(args.state) as handle:
            beh = Behaviour(**json.load(handle))
    server = SimOrchestrator(beh, port=args.port, state_file=args.state)
    print("sim-orchestrator listening on %s" % server.url, flush=True)
    try:
        server.httpd.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
