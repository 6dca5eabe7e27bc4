"""_mps: the control daemon from its PID file or /proc, the pipe and log folders, the server list."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _mps

CONTROL = """#!/bin/sh
# nvidia-cuda-mps-control front end stand-in: answers get_server_list from $CUDA_MPS_PIPE_DIRECTORY/servers
read -r command
echo "$command" >> "$CUDA_MPS_PIPE_DIRECTORY/commands.log"
[ "$command" = get_server_list ] || exit 1
cat "$CUDA_MPS_PIPE_DIRECTORY/servers"
"""


class RealModule(object):
    """Runs commands for real (the stand-in control program and coreutils timeout)."""

    def __init__(self, path_dirs):
        self.path_dirs = path_dirs

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return shutil.which(name, path=os.pathsep.join(self.path_dirs + ["/usr/bin", "/bin"]))

    def run_command(self, cmd, environ_update=None, errors=None, handle_exceptions=True):
        env = dict(os.environ, **(environ_update or {}))
        done = subprocess.run(cmd, capture_output=True, env=env, check=False)
        return done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")


def add_process(proc, pid, argv, uid=0, pipe_dir=None):
    """A /proc entry; ``pipe_dir``: the CUDA_MPS_PIPE_DIRECTORY of its environment (None: no environ file,
    as for another user's process)."""
    folder = proc / str(pid)
    folder.mkdir(parents=True)
    (folder / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    if pipe_dir is not None:
        env = ["PATH=/usr/bin"] + (["CUDA_MPS_PIPE_DIRECTORY=%s" % pipe_dir] if pipe_dir else [])
        (folder / "environ").write_bytes("\0".join(env).encode() + b"\0")
    (folder / "status").write_text("Name:\t%s\nUid:\t%d\t%d\t%d\t%d\n" % (os.path.basename(argv[0])[:15], uid, uid, uid, uid))


@pytest.fixture
def host(tmp_path):
    bin_dir, proc, pipe, logs = tmp_path / "bin", tmp_path / "proc", tmp_path / "pipe", tmp_path / "log"
    for folder in (bin_dir, proc, pipe, logs):
        folder.mkdir()
    control = bin_dir / "nvidia-cuda-mps-control"
    control.write_text(CONTROL)
    control.chmod(0o755)
    return {"module": RealModule([str(bin_dir)]), "proc": proc, "pipe": pipe, "logs": logs, "control": control}


def status(host, **kwargs):
    return _mps.status(host["module"], pipe_dir=str(host["pipe"]), log_dir=str(host["logs"]), proc_root=str(host["proc"]),
                       **kwargs)


def test_daemon_from_its_pid_file_and_servers_listed(host):
    add_process(host["proc"], 900, ["nvidia-cuda-mps-control", "-d"])
    add_process(host["proc"], 1201, ["nvidia-cuda-mps-server"], uid=os.getuid())
    (host["pipe"] / _mps.PID_FILE).write_text("900\n")
    os.mkfifo(str(host["pipe"] / "control"))
    (host["pipe"] / "servers").write_text("1201\n")
    got = status(host)
    assert (got["control_daemon_running"], got["control_daemon_pid"], got["error"]) == (True, 900, None)
    assert got["pipe_dir"] == {"path": str(host["pipe"]), "exists": True, "writable": True, "control_pipe": True}
    assert got["log_dir"] == {"path": str(host["logs"]), "exists": True, "writable": True}
    assert [(s["pid"], s["uid"], s["command"]) for s in got["servers"]] == [(1201, os.getuid(), "nvidia-cuda-mps-server")]
    assert (host["pipe"] / "commands.log").read_text() == "get_server_list\n"


def test_stale_pid_file_falls_back_to_proc(host):
    (host["pipe"] / _mps.PID_FILE).write_text("4242\n")  # a PID now used by something else
    add_process(host["proc"], 4242, ["/usr/bin/python3", "train.py"])
    add_process(host["proc"], 77, ["/usr/bin/nvidia-cuda-mps-control", "-f"], pipe_dir=host["pipe"])
    add_process(host["proc"], 78, ["nvidia-cuda-mps-control"])  # a front end, not the daemon
    (host["pipe"] / "servers").write_text("")
    got = status(host)
    assert (got["control_daemon_running"], got["control_daemon_pid"], got["servers"]) == (True, 77, [])


def test_no_daemon_no_query(host, tmp_path):
    add_process(host["proc"], 78, ["nvidia-cuda-mps-control"])
    got = status(host, control=str(tmp_path / "missing"))
    assert (got["control_daemon_running"], got["servers"], got["error"]) == (False, [], None)
    assert not (host["pipe"] / "commands.log").exists()


def test_missing_folders_and_unreadable_proc(host, tmp_path):
    got = _mps.status(host["module"], pipe_dir=str(tmp_path / "none"), log_dir=str(host["control"]),
                      proc_root=str(tmp_path / "noproc"))
    assert got["pipe_dir"] == {"path": str(tmp_path / "none"), "exists": False, "writable": False, "control_pipe": False}
    assert got["log_dir"]["exists"] is False  # a file is not a log folder
    assert got["control_daemon_running"] is None and "cannot read" in got["error"]


def test_control_program_missing_or_failing_is_an_error_line(host, tmp_path):
    add_process(host["proc"], 900, ["nvidia-cuda-mps-control", "-d"], pipe_dir=host["pipe"])
    got = status(host, control=str(tmp_path / "nope"))
    assert got["control_daemon_running"] is True
    assert got["error"] == "cannot list MPS servers: %s not found" % (tmp_path / "nope")
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\necho 'Cannot find MPS control daemon process' >&2\nexit 1\n")
    broken.chmod(0o755)
    got = status(host, control=str(broken))
    assert got["error"] == "echo get_server_list | %s exited 1: Cannot find MPS control daemon process" % broken


def test_hanging_control_program_is_killed(host, tmp_path):
    add_process(host["proc"], 900, ["nvidia-cuda-mps-control", "-d"], pipe_dir=host["pipe"])
    hang = tmp_path / "hang"
    hang.write_text("#!/bin/sh\nexec sleep 60\n")
    hang.chmod(0o755)
    got = status(host, control=str(hang), timeout=1)
    assert got["error"] == "echo get_server_list | %s timed out after 1s and was killed" % hang


def control_socket(folder):
    import socket
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(folder / "control"))
    return sock


def test_a_daemon_for_another_pipe_directory_does_not_serve_this_one(host, tmp_path):
    add_process(host["proc"], 4242, ["/usr/bin/nvidia-cuda-mps-control", "-d"], pipe_dir=tmp_path / "elsewhere")
    add_process(host["proc"], 4243, ["/usr/bin/nvidia-cuda-mps-control", "-d"], pipe_dir="")  # the default folder
    got = status(host)
    assert (got["control_daemon_running"], got["control_daemon_pid"], got["pipe_dir"]["control_pipe"]) == (
        False, None, False)
    assert got["daemons_elsewhere"] == [{"pid": 4242, "pipe_dir": str(tmp_path / "elsewhere")},
                                        {"pid": 4243, "pipe_dir": "/tmp/nvidia-mps"}]


def test_the_control_entry_is_a_socket_or_a_fifo(host):
    add_process(host["proc"], 900, ["nvidia-cuda-mps-control", "-d"], pipe_dir=host["pipe"])
    (host["pipe"] / "servers").write_text("")
    sock = control_socket(host["pipe"])  # current drivers
    try:
        assert status(host)["pipe_dir"]["control_pipe"] is True
    finally:
        sock.close()
    os.remove(str(host["pipe"] / "control"))
    os.mkfifo(str(host["pipe"] / "control"))  # older ones
    assert status(host)["pipe_dir"]["control_pipe"] is True
    os.remove(str(host["pipe"] / "control"))
    (host["pipe"] / "control").write_text("")
    assert status(host)["pipe_dir"]["control_pipe"] is False


def test_a_daemon_whose_folder_cannot_be_read_counts_only_with_the_control_entry_here(host):
    add_process(host["proc"], 900, ["nvidia-cuda-mps-control", "-d"])  # no environ: another user's process
    (host["pipe"] / "servers").write_text("")
    got = status(host)
    assert got["control_daemon_running"] is None and got["error"] == (
        "an MPS control daemon runs (pid 900) but its pipe directory cannot be read (%s/900/environ)" % host["proc"])
    sock = control_socket(host["pipe"])
    try:
        got = status(host)
    finally:
        sock.close()
    assert (got["control_daemon_running"], got["control_daemon_pid"], got["error"]) == (True, 900, None)


def test_server_list_ignores_noise():
    assert _mps.parse_server_list("1201\n\n 1305 \nNo server\n1201\n") == [1201, 1305]


def test_other_digits_in_the_pid_file_proc_and_server_list_are_no_pids(host):
    """'\u00b2' is a digit to str.isdigit but not to int(): a PID file, a /proc entry or a server-list line
    holding one is no PID, never a traceback."""
    (host["pipe"] / _mps.PID_FILE).write_text("\u00b2\n")
    (host["proc"] / "\u00b2").mkdir()
    add_process(host["proc"], 77, ["nvidia-cuda-mps-control", "-d"], pipe_dir=host["pipe"])
    (host["pipe"] / "servers").write_text("1201\n\u00b2\n")
    got = status(host)
    assert (got["control_daemon_running"], got["control_daemon_pid"], got["error"]) == (True, 77, None)
    assert [s["pid"] for s in got["servers"]] == [1201]


def test_a_pid_file_or_server_line_of_thousands_of_digits_is_no_pid_not_a_traceback(host):
    # int() refuses text over 4300 digits with its own ValueError: a garbled PID file must not end the probe
    (host["pipe"] / _mps.PID_FILE).write_text("9" * 5000 + "\n")
    add_process(host["proc"], 77, ["nvidia-cuda-mps-control", "-d"], pipe_dir=host["pipe"])
    (host["pipe"] / "servers").write_text("1201\n%s\n\u0661\u0662\n" % ("8" * 5000))
    got = status(host)
    assert (got["control_daemon_running"], got["control_daemon_pid"], got["error"]) == (True, 77, None)
    assert [s["pid"] for s in got["servers"]] == [1201]   # Arabic-Indic digits are no PID either


def test_a_daemon_serving_the_pipe_directory_through_a_symlink_serves_this_one(host, tmp_path):
    # the pipe directory is reached as /tmp/nvidia-mps -> /run/nvidia-mps; the daemon's environment names the other
    link = tmp_path / "pipe-link"
    link.symlink_to(host["pipe"])
    add_process(host["proc"], 77, ["nvidia-cuda-mps-control", "-d"], pipe_dir=host["pipe"])
    (host["pipe"] / "servers").write_text("")
    got = _mps.status(host["module"], pipe_dir=str(link), log_dir=str(host["logs"]), proc_root=str(host["proc"]))
    assert (got["control_daemon_running"], got["control_daemon_pid"], got["daemons_elsewhere"]) == (True, 77, [])


@pytest.mark.parametrize("errno_", [13, 1])   # EACCES, EPERM: a folder above it is not searchable
def test_a_folder_that_cannot_be_looked_at_is_unknown_not_missing(tmp_path, mocker, errno_):
    pipe = tmp_path / "nvidia-mps"
    pipe.mkdir()
    real_stat = os.stat

    def fake_stat(path, *args, **kwargs):
        if path == str(pipe):
            raise OSError(errno_, os.strerror(errno_), path)
        return real_stat(path, *args, **kwargs)

    mocker.patch.object(_mps.os, "stat", side_effect=fake_stat)
    assert _mps.directory(str(pipe)) == {"path": str(pipe), "exists": None, "writable": None,
                                         "error": "cannot look at %s: %s" % (pipe, os.strerror(errno_))}


def test_a_missing_folder_a_file_and_a_dangling_link_do_not_exist(tmp_path):
    (tmp_path / "file").write_text("x")
    os.symlink(str(tmp_path / "nowhere"), str(tmp_path / "link"))
    for name in ("missing", "file", "link", "file/below"):
        assert _mps.directory(str(tmp_path / name)) == {"path": str(tmp_path / name), "exists": False,
                                                        "writable": False}
    assert _mps.directory(str(tmp_path)) == {"path": str(tmp_path), "exists": True, "writable": True}


def test_a_pipe_folder_behind_a_folder_the_module_cannot_search_makes_the_mps_check_unknown_not_failed(host, mocker):
    from ansible_collections.gpuops.preflight.plugins.module_utils import _serving
    add_process(host["proc"], 900, ["nvidia-cuda-mps-control", "-d"])
    pipe = str(host["pipe"])
    real_stat, real_lstat = os.stat, os.lstat

    def refused(real):
        def fake(path, *args, **kwargs):   # what a user without search permission on the folder above gets
            if str(path) == pipe or str(path).startswith(pipe + "/"):
                raise PermissionError(13, "Permission denied", path)
            return real(path, *args, **kwargs)
        return fake

    mocker.patch.object(_mps.os, "stat", side_effect=refused(real_stat))
    mocker.patch.object(_mps.os, "lstat", side_effect=refused(real_lstat))
    got = status(host)
    assert got["pipe_dir"] == {"path": pipe, "exists": None, "writable": None, "control_pipe": None,
                               "error": "cannot look at %s: Permission denied" % pipe}
    problems, _text, _details = _serving.evaluate_mps(got, None)
    assert problems and set(p["status"] for p in problems) == {"unknown"}   # never "does not exist"
    assert not [p for p in problems if "does not exist" in p["message"]]
