"""Run the repository's real playbooks and ansible ad-hoc commands against SSH test hosts.

Always the ansible-playbook/ansible beside the project's interpreter (``.venv/bin``), the
repository's ``ansible.cfg`` (``ANSIBLE_CONFIG``, cwd = repository root), in a process group of
its own that is killed when the run overstays ``timeout`` or the caller is interrupted.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from .hosts import REPO

CONFIG = os.path.join(REPO, "ansible.cfg")


def bin_dir():
    """Where ansible-playbook is: beside this interpreter (the venv), else the repo's .venv."""
    for folder in (os.path.dirname(sys.executable), os.path.join(REPO, ".venv", "bin")):
        if os.access(os.path.join(folder, "ansible-playbook"), os.X_OK):
            return folder
    raise RuntimeError("ansible-playbook not found beside %s nor in %s/.venv/bin: run scripts/setup"
                       % (sys.executable, REPO))


def ansible_env(extra=None):
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": CONFIG,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PYTHONUNBUFFERED": "1",
        "PATH": bin_dir() + os.pathsep + env.get("PATH", ""),
    })
    env.pop("ANSIBLE_INVENTORY", None)
    env.update(extra or {})
    return env


class Run(object):
    """One ansible-playbook / ansible run: rc, output, wall time, and the summary it wrote."""

    def __init__(self, argv, rc, stdout, stderr, elapsed, summary_dir=None, timed_out=False):
        self.argv = argv
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed
        self.summary_dir = summary_dir
        self.timed_out = timed_out

    @property
    def output(self):
        return self.stdout + self.stderr

    def summary_files(self):
        if not self.summary_dir:
            return []
        return sorted(glob.glob(os.path.join(self.summary_dir, "*.json")))

    @property
    def summary(self):
        """The one summary document the run wrote (AssertionError when there is not exactly one)."""
        files = self.summary_files()
        assert len(files) == 1, "expected one summary in %s, found %s\n%s" % (self.summary_dir, files, self.tail())
        with open(files[0]) as handle:
            return json.load(handle)

    def tail(self, chars=6000):
        return ("rc=%s elapsed=%.1fs\n%s" % (self.rc, self.elapsed, self.output))[-chars:]

    def __repr__(self):
        return "Run(rc=%s, %.2fs, %s)" % (self.rc, self.elapsed, " ".join(self.argv[:3]))


def execute(argv, timeout=300, env=None, cwd=REPO):
    """Run ``argv`` in its own process group; kill the whole group on timeout or interruption."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, env=env or ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        out, err = proc.communicate()
    except BaseException:
        _kill_group(proc)
        proc.communicate()
        raise
    return proc, out, err, time.monotonic() - start, timed_out


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def playbook(inventory, name, step, extra_vars=None, summary_dir=None, timeout=300, verbosity=0, env=None,
             args=()):
    """Run ``playbooks/<name>.yml`` (preflight or cleanup) for ``step`` over ``inventory``.

    Each run writes its summary to a folder of its own (``summary_dir``, default a fresh folder
    under the cluster's ``summaries/``), passed as an extra var so that the run's document is the
    only one there."""
    if summary_dir is None:
        # Under the cluster's folder when the inventory is a cluster's (removed with it by down()), else beside
        # the inventory (a test's own folder): never in /tmp, where nothing would remove it.
        folder = os.path.dirname(os.path.abspath(inventory))
        parent = os.path.join(folder, "summaries")
        summary_dir = tempfile.mkdtemp(prefix="run-", dir=parent if os.path.isdir(parent) else folder)
    argv = [os.path.join(bin_dir(), "ansible-playbook"), "-i", inventory,
            os.path.join(REPO, "playbooks", "%s.yml" % name), "-e", "step=%s" % step,
            "-e", json.dumps({"preflight_summary_dir": summary_dir, "cleanup_summary_dir": summary_dir})]
    for key, value in (extra_vars or {}).items():
        argv += ["-e", json.dumps({key: value})]
    if verbosity:
        argv.append("-" + "v" * verbosity)
    argv += list(args)
    proc, out, err, elapsed, timed_out = execute(argv, timeout=timeout, env=env)
    return Run(argv, proc.returncode, out, err, elapsed, summary_dir, timed_out)


def adhoc(inventory, module, pattern="rigs", module_args=None, timeout=300, env=None, args=()):
    """``ansible PATTERN -m MODULE`` over ``inventory`` with the same settings as the playbooks."""
    argv = [os.path.join(bin_dir(), "ansible"), pattern, "-i", inventory, "-m", module]
    if module_args:
        argv += ["-a", module_args if isinstance(module_args, str) else json.dumps(module_args)]
    argv += list(args)
    proc, out, err, elapsed, timed_out = execute(argv, timeout=timeout, env=env)
    return Run(argv, proc.returncode, out, err, elapsed, None, timed_out)
