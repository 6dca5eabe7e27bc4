"""Helpers for the bridge tests: run options in the test's own folders, processes, WATCHER configs.

Every run gets its own summary and artifacts folders under the test's tmp dir, so the tests run
in parallel (pytest-xdist) without seeing each other's files.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import uuid

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.dirname(sys.executable)
GPU_KEYS = ("expected_gpu_count", "excluded_gpus", "gpu_watchlist")


def run_options(folder, **extra):
    """Options that keep a run's files inside ``folder``."""
    opts = {"summary_dir": os.path.join(str(folder), "summaries"),
            "artifacts_dir": os.path.join(str(folder), "runs")}
    opts.update(extra)
    return opts


def run_dirs(folder):
    """Private run folders left under the options' artifacts_dir."""
    path = os.path.join(str(folder), "runs")
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def new_token():
    """An environment value that marks every process of one run, to look for leftovers."""
    return {"BRIDGE_TEST_TOKEN": uuid.uuid4().hex}


def environ_of(pid):
    """{name: value} of a process's environment; {} when it is gone."""
    try:
        with open("/proc/%d/environ" % pid, "rb") as handle:
            entries = handle.read().split(b"\0")
    except OSError:
        return {}
    return dict(e.decode(errors="replace").partition("=")[::2] for e in entries if b"=" in e)


def processes_with(env):
    """Live (non-zombie) processes whose environment holds every KEY=VALUE of ``env``."""
    needles = {("%s=%s" % kv).encode() for kv in env.items()}
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as handle:
                entries = set(handle.read().split(b"\0"))
            with open("/proc/%s/stat" % name) as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
            with open("/proc/%s/cmdline" % name, "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if needles <= entries and state != "Z":
            found.append((int(name), cmdline))
    return found


def watcher_config(path, nodes, rig=None, **top):
    """Write a distributed_config.json; ``rig`` adds its steps and (as node vars) its host paths."""
    doc = {"nodes": nodes}
    if rig is not None:
        doc["preflight_steps"] = {str(k): v for k, v in rig.steps.items()}
        local = {k: v for k, v in rig.host_vars().items() if k not in GPU_KEYS}
        for node in nodes.values():
            node.setdefault("vars", local)
    doc.update(top)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, indent=1)
    return str(path)


@contextlib.contextmanager
def captured_logs(name="gpuops_preflight"):
    """(logger name, level, message) of everything the package logs inside the block, DEBUG included."""
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append((record.name, record.levelno, record.getMessage()))

    logger, handler = logging.getLogger(name), Keep(logging.DEBUG)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def make_bundle(folder):
    """The host tool as the host_tool role lays it down: its own scripts build the bundle (make_bundle.py, on
    the controller) and install it (install_bundle.py, on the host: extract, compile, check, switch lib)."""
    scripts = os.path.join(REPO, "roles", "host_tool", "files")
    tar = str(folder / "bundle.tar")
    subprocess.run([sys.executable, os.path.join(scripts, "make_bundle.py"), "--collection", REPO,
                    "--package", os.path.join(REPO, "src", "gpuops_preflight"), "--out", tar], check=True,
                   capture_output=True)
    done = subprocess.run([sys.executable, os.path.join(scripts, "install_bundle.py"), "--bundle", tar, "--root",
                           str(folder / "opt")], check=True, capture_output=True, text=True)
    assert json.loads(done.stdout)["changed"] is True
    again = subprocess.run([sys.executable, os.path.join(scripts, "install_bundle.py"), "--bundle", tar, "--root",
                            str(folder / "opt")], check=True, capture_output=True, text=True)
    assert json.loads(again.stdout)["changed"] is False   # idempotent
    return folder / "opt" / "lib"
