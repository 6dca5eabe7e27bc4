"""_watchdog: a module whose reader is gone stops its tools and ends at once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import zipfile

from ansible_collections.gpuops.preflight.plugins.module_utils import _watchdog

# The folder that holds ansible_collections/, wherever the tests run (a clone, ansible-test's copy).
HOLDER = os.path.abspath(os.path.join(os.path.dirname(_watchdog.__file__), *[".."] * 5))

# A stand-in module: starts a "tool" in its own process group (as coreutils timeout does), writes
# the tool's PID, then works for a minute; its stdout is a pipe the test closes.
MODULE = textwrap.dedent("""
    import os, subprocess, sys, time
    sys.path.insert(0, %r)
    from ansible_collections.gpuops.preflight.plugins.module_utils import _watchdog
    tool = subprocess.Popen(["sleep", "60"], start_new_session=True)
    _watchdog.start()
    with open(sys.argv[1], "w") as handle:
        handle.write("%%d %%d" %% (os.getpid(), tool.pid))
    time.sleep(60)
""") % HOLDER


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_module(tmp_path, holder=HOLDER):
    """The stand-in module importing the collection from ``holder``, once its tool runs: (process, pid, tool)."""
    pids = tmp_path / "pids"
    code = MODULE.replace("sys.path.insert(0, %r)" % HOLDER, "sys.path.insert(0, %r)" % str(holder))
    proc = subprocess.Popen([sys.executable, "-c", code, str(pids)], stdout=subprocess.PIPE)
    for _wait in range(100):
        if pids.exists() and pids.read_text():
            break
        time.sleep(0.1)
    module, tool = (int(p) for p in pids.read_text().split())
    return proc, module, tool


def test_a_module_whose_reader_goes_away_stops_with_its_tool(tmp_path):
    proc, module, tool = start_module(tmp_path)
    assert alive(module) and alive(tool)
    proc.stdout.close()  # the controller's end of the result pipe: gone
    assert proc.wait(timeout=5) == _watchdog.EXIT_ABANDONED
    for _wait in range(20):
        if not alive(tool):
            break
        time.sleep(0.1)
    assert not alive(tool), "the tool outlived its abandoned module"


def test_nothing_to_watch_on_a_file_or_a_terminal(tmp_path):
    with open(str(tmp_path / "out"), "w") as handle:
        assert _watchdog.start(handle.fileno()) is None
    read, write = os.pipe()
    try:
        assert _watchdog.watched(write) is True
    finally:
        os.close(read)
        os.close(write)


def test_children_are_found_by_their_parent():
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert child.pid in _watchdog.children()
    finally:
        child.kill()
        child.wait()


def test_the_unpacked_payload_is_known_by_its_layout():
    inside = "ansible_collections/gpuops/preflight/plugins/module_utils/_watchdog.py"
    folder = "/tmp/ansible_gpuops.preflight.node_preflight_payload_k2x9"
    assert _watchdog.payload_dir("%s/ansible_gpuops.preflight.node_preflight_payload.zip/%s" % (folder, inside)) \
        == folder
    for path in (HOLDER + "/" + inside,                                    # a clone, the host tool: no payload
                 "/tmp/other_payload_k2x9/ansible_x_payload.zip/" + inside,  # not the folder AnsiballZ made
                 "/tmp/ansible_x_payload_k2x9/ansible_y_payload.zip/" + inside,
                 "/tmp/ansible_x_payload_k2x9/data.zip/" + inside,
                 "ansible_x_payload_k2x9/ansible_x_payload.zip/" + inside):   # not absolute
        assert _watchdog.payload_dir(path) is None, path


def test_an_abandoned_module_removes_its_unpacked_payload(tmp_path):
    # The module's code as AnsiballZ runs it: imported from ansible_<module>_payload.zip in a folder of its own.
    folder = tmp_path / "ansible_gpuops.preflight.node_preflight_payload_k2x9"
    folder.mkdir()
    archive = folder / "ansible_gpuops.preflight.node_preflight_payload.zip"
    with zipfile.ZipFile(str(archive), "w") as zipped:
        for name in ("__init__.py", "gpuops/__init__.py", "gpuops/preflight/__init__.py",
                     "gpuops/preflight/plugins/__init__.py", "gpuops/preflight/plugins/module_utils/__init__.py"):
            zipped.writestr("ansible_collections/" + name, "")
        zipped.write(_watchdog.__file__, "ansible_collections/gpuops/preflight/plugins/module_utils/_watchdog.py")
    proc, _module, _tool = start_module(tmp_path, holder=archive)
    proc.stdout.close()
    assert proc.wait(timeout=5) == _watchdog.EXIT_ABANDONED
    assert not folder.exists()
