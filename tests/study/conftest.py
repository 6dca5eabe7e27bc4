"""Fixtures for the Optuna study tests: a real PostgreSQL cluster, worker processes, a silent server.

The cluster is Debian's PostgreSQL (scripts/install-study-deps), started once per test session with
initdb/pg_ctl as the postgres user on a temporary folder, listening only on a unix socket in that
folder, and stopped after. Each test gets a database of its own.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "worker.py")


def _pg_bin() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        pytest.fail("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run scripts/install-study-deps")
    return os.path.dirname(found[-1])


def _as_postgres(argv: list[str]) -> list[str]:
    """initdb refuses root: run the server tools as the postgres user when we are root."""
    return ["runuser", "-u", "postgres", "--"] + argv if os.geteuid() == 0 else argv


class Cluster:
    def __init__(self, folder: str, bindir: str) -> None:
        self.folder = folder
        self.data = os.path.join(folder, "data")
        self.bindir = bindir
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def run(self, *argv: str) -> None:
        done = subprocess.run(_as_postgres([os.path.join(self.bindir, argv[0])] + list(argv[1:])), capture_output=True,
                              text=True, timeout=120, check=False)
        if done.returncode != 0:
            pytest.fail("%s failed (rc %d): %s %s" % (argv[0], done.returncode, done.stdout[-2000:],
                                                      done.stderr[-2000:]))

    def start(self) -> None:
        self.run("initdb", "-D", self.data, "-A", "trust", "-U", self.user, "--no-sync", "-E", "UTF8")
        options = "-k %s -c listen_addresses='' -c fsync=off -c max_connections=100" % self.folder
        self.run("pg_ctl", "-D", self.data, "-o", options, "-l", os.path.join(self.folder, "server.log"), "-w",
                 "-t", "60", "start")

    def stop(self) -> None:
        subprocess.run(_as_postgres([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", "fast", "-w",
                                     "stop"]), capture_output=True, timeout=120, check=False)

    def connect(self, dbname: str = "postgres"):
        import psycopg
        return psycopg.connect(host=self.folder, user=self.user, dbname=dbname, autocommit=True, connect_timeout=10)

    def url(self, dbname: str) -> str:
        return "postgresql+psycopg://%s@/%s?host=%s" % (self.user, dbname, self.folder)

    @staticmethod
    def dbname(url: str) -> str:
        return url.split("@/", 1)[1].split("?", 1)[0]

    def new_database(self) -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        with self.connect() as conn:
            conn.execute("CREATE DATABASE %s" % name)
        return self.url(name)


@pytest.fixture(scope="session")
def postgres():
    """A running throwaway PostgreSQL cluster (stopped and removed after the session)."""
    bindir = _pg_bin()
    folder = tempfile.mkdtemp(prefix="pg-")  # short: a unix socket path must stay under 108 bytes
    if os.geteuid() == 0:
        os.chown(folder, pwd.getpwnam("postgres").pw_uid, -1)
    os.chmod(folder, 0o755)
    cluster = Cluster(folder, bindir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_url(postgres):
    """The storage URL of a fresh database of the session's cluster."""
    return postgres.new_database()


@pytest.fixture
def sqlite_url(tmp_path):
    return "sqlite:///%s" % (tmp_path / "optuna.db")


class Workers:
    """Worker processes (tests/study/worker.py) started together: each imports Optuna, says ready, and
    waits for 'go' on its stdin, so the interesting part starts in all of them at once."""

    def __init__(self, tmp_path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen] = []

    def start(self, count: int, **job) -> list[dict]:
        outs = [str(self.tmp_path / ("worker-%d-%s.json" % (i, uuid.uuid4().hex[:6]))) for i in range(count)]
        for out in outs:
            spec = dict(job, out=out)
            self.procs.append(subprocess.Popen([sys.executable, WORKER, json.dumps(spec)], stdin=subprocess.PIPE,
                                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        started = self.procs[-count:]
        for proc in started:
            line = proc.stdout.readline()
            assert line.strip() == "ready", "worker did not start: %s %s" % (line, proc.stderr.read())
        for proc in started:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc, out in zip(started, outs):
            _ready_and_output, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, "worker failed (rc %s): %s" % (proc.returncode, err[-3000:])
            with open(out, encoding="utf-8") as handle:
                results.append(json.load(handle))
        return results

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)


@pytest.fixture
def workers(tmp_path):
    pool = Workers(tmp_path)
    yield pool
    pool.stop()


@pytest.fixture
def silent_server():
    """host, port of a TCP server on 127.0.0.1 that accepts connections and never answers
    (a database server that hangs: only a timeout gets a client out)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _client_address = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()
    stop.set()
    thread.join(timeout=10)
    for conn in held:
        conn.close()
    server.close()
