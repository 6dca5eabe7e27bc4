"""systemd for real: a podman container that boots systemd as PID 1, for tests of units, drop-ins, timers
and systemd's own restart budget (the training watchdog, the serving gate's ExecStartPre).

Needs root, podman and the image ``localhost/gpuops-systemd:bookworm`` (``scripts/install-molecule-deps
&& scripts/build-systemd-image``; shared/docs/CONTAINERS.md). A missing piece fails the test with the
command that provides it: these tests are never skipped.

Fixture ``systemd_container`` (one container per test module, removed with ``podman rm -f`` after it):
a ``SystemdContainer`` with ``exec``/``sh``/``put``/``write``/``read``, ``put_tree`` (a folder, sparse files
kept), ``show`` (systemctl show as a dict), ``journal`` (with ``cursor``: only what came after), ``wait_for``
(polling with a bound, never a timing assertion) and ``playbook`` (ansible-playbook against it through the
containers.podman.podman connection).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
IMAGE = os.environ.get("GPUOPS_SYSTEMD_IMAGE", "localhost/gpuops-systemd:bookworm")
CONTAINERS_CONF = os.path.join(REPO, ".molecule-local", "containers.conf")
PODMAN_COLLECTIONS = os.path.join(REPO, ".molecule-local", "collections")
BOOT_TIMEOUT = 90
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def podman_env():
    env = dict(os.environ)
    if not env.get("CONTAINERS_CONF") and os.path.isfile(CONTAINERS_CONF):
        env["CONTAINERS_CONF"] = CONTAINERS_CONF
    return env


def _podman(*args, check=True, timeout=120, input=None):
    done = subprocess.run(["podman"] + list(args), env=podman_env(), capture_output=True, text=True,
                          timeout=timeout, input=input, check=False)
    if check and done.returncode != 0:
        said = (done.stderr or done.stdout).strip()[-2000:]
        raise AssertionError("podman %s failed (exit %s): %s" % (" ".join(args), done.returncode, said))
    return done


class Playbook(object):
    """The outcome of one ansible-playbook run: rc, output, and the recap's counts for the container."""

    def __init__(self, rc, output, recap):
        self.rc, self.output, self.recap = rc, output, recap

    @property
    def changed(self):
        return self.recap.get("changed")

    def __repr__(self):
        return "Playbook(rc=%s, recap=%s)" % (self.rc, self.recap)


class SystemdContainer(object):
    def __init__(self, name, workdir):
        self.name, self.workdir = name, workdir

    def exec(self, *argv, check=True, timeout=120, input=None):
        flags = ["-i"] if input is not None else []
        done = _podman("exec", *(flags + [self.name] + list(argv)), check=False, timeout=timeout, input=input)
        if check and done.returncode != 0:
            raise AssertionError("%s in %s: exit %s\n%s%s" % (" ".join(argv), self.name, done.returncode,
                                                              done.stdout[-2000:], done.stderr[-2000:]))
        return done

    def sh(self, script, check=True, timeout=120):
        return self.exec("bash", "-c", script, check=check, timeout=timeout)

    def put(self, local, remote):
        _podman("cp", local, "%s:%s" % (self.name, remote))

    def put_tree(self, local, remote, members=(".",)):
        """Replace the folder ``remote`` with ``members`` of the folder ``local``, through a tar stream that keeps
        owners, modes and holes: a checkpoint listing's multi-GB sparse files stay sparse (podman cp writes them
        out in full)."""
        with tempfile.TemporaryFile() as errors:
            tar = subprocess.Popen(["tar", "--sparse", "--numeric-owner", "-C", local, "-cf", "-", "--"]
                                   + list(members), stdout=subprocess.PIPE, stderr=errors)
            try:
                done = subprocess.run(["podman", "exec", "-i", self.name, "sh", "-c",
                                       'rm -rf "$1" && mkdir -p "$1" && tar --numeric-owner -C "$1" -xf -', "-",
                                       remote], stdin=tar.stdout, env=podman_env(), capture_output=True, timeout=120,
                                      check=False)
            finally:
                tar.stdout.close()
                tar.wait()
            errors.seek(0)
            said = errors.read().decode(errors="replace")
        if tar.returncode or done.returncode:
            raise AssertionError("copying %s to %s:%s failed: tar exit %s %s; in the container: exit %s %s" % (
                local, self.name, remote, tar.returncode, said[-1000:], done.returncode,
                done.stderr.decode(errors="replace")[-1000:]))

    def write(self, path, text, mode="0644"):
        self.exec("bash", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod %s "$1"' % mode, "-", path,
                  input=text)

    def read(self, path):
        return self.exec("cat", path).stdout

    def exists(self, path):
        return self.exec("test", "-e", path, check=False).returncode == 0

    def show(self, unit, *props):
        """systemctl show UNIT -p ... as a dict (values as text)."""
        out = self.exec("systemctl", "show", unit, "--property=%s" % ",".join(props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit, lines=200, after=None):
        """The unit's last ``lines`` journal lines; ``after``: only those after a ``cursor()``."""
        since = ["--after-cursor=%s" % after] if after else []
        return self.exec("journalctl", "-u", unit, "-n", str(lines), "--no-pager", "-q", *since, check=False).stdout

    def cursor(self):
        """The journal's position now, for ``journal(unit, after=...)``."""
        out = self.exec("journalctl", "-n", "0", "--show-cursor", "-q").stdout
        return out.strip().split("-- cursor: ", 1)[1]

    def wait_for(self, what, predicate, timeout=60, pause=0.25):
        """Poll ``predicate`` until it returns a true value; fail naming ``what`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError("%s: not seen within %s s" % (what, timeout))
            time.sleep(pause)

    def inventory(self, **hostvars):
        path = os.path.join(self.workdir, "inventory.yml")
        host = {"ansible_connection": "containers.podman.podman", "ansible_host": self.name,
                "ansible_python_interpreter": "/usr/bin/python3"}
        host.update(hostvars)
        with open(path, "w") as handle:
            json.dump({"all": {"hosts": {self.name: host}}}, handle)   # JSON is YAML
        return path

    def playbook(self, playbook, extra_vars=None, check=False, groups=("training_hosts",), timeout=600):
        """ansible-playbook ``playbook`` (a path under the repository) against this container only."""
        inventory = self.inventory()
        with open(inventory) as handle:
            inv = json.load(handle)
        inv["all"]["children"] = dict((g, {"hosts": {self.name: {}}}) for g in groups)
        with open(inventory, "w") as handle:
            json.dump(inv, handle)
        argv = [os.path.join(REPO, ".venv", "bin", "ansible-playbook"), "-i", inventory,
                os.path.join(REPO, playbook), "-e", json.dumps(extra_vars or {})]
        if check:
            argv.append("--check")
        env = podman_env()
        env.update(ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([os.path.join(REPO, ".collections"), PODMAN_COLLECTIONS]),
                   ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0",
                   ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
        done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        output = done.stdout + done.stderr
        recap = {}
        for match in RECAP.finditer(done.stdout):
            if match.group(1) == self.name:
                recap = {"ok": int(match.group(2)), "changed": int(match.group(3)),
                         "unreachable": int(match.group(4)), "failed": int(match.group(5))}
        return Playbook(done.returncode, output, recap)


def _require():
    if os.geteuid() != 0:
        pytest.fail("tests/systemd need root (podman with --systemd=always)")
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: run scripts/install-molecule-deps")
    if _podman("image", "exists", IMAGE, check=False).returncode != 0:
        pytest.fail("image %s is missing: run scripts/build-systemd-image" % IMAGE)
    if not os.path.isdir(os.path.join(PODMAN_COLLECTIONS, "ansible_collections", "containers", "podman")):
        pytest.fail("the containers.podman collection is missing: run scripts/install-molecule-deps")


@pytest.fixture(scope="module")
def systemd_container(tmp_path_factory):
    """A running container with systemd as PID 1 (state running or degraded), removed after the module."""
    _require()
    name = "gpuops-systemd-%s" % uuid.uuid4().hex[:10]
    _podman("run", "-d", "--name", name, "--hostname", name, "--systemd=always", IMAGE, "/sbin/init")
    box = SystemdContainer(name, str(tmp_path_factory.mktemp(name)))
    try:
        box.wait_for("systemd running in %s" % name,
                     lambda: box.exec("systemctl", "is-system-running", check=False).stdout.strip()
                     in ("running", "degraded"), timeout=BOOT_TIMEOUT)
        yield box
    finally:
        _podman("rm", "-f", name, check=False)
