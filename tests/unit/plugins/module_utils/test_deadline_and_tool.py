from __future__ import annotations

import threading

from ansible_collections.gpuops.preflight.plugins.module_utils import _deadline, _tool


def test_each_job_has_its_own_deadline():
    release = threading.Event()
    outcomes = _deadline.run_all({
        "stuck": (lambda: release.wait(30), 0.2),   # a read that never returns in time
        "quick": (lambda: 42, 5),
        "broken": (lambda: 1 / 0, 5),
    })
    release.set()
    assert outcomes["stuck"].timed_out and not outcomes["stuck"].ok
    assert outcomes["stuck"].describe_failure() == "timed out after 0.2s"
    assert outcomes["quick"].ok and outcomes["quick"].value == 42
    assert not outcomes["broken"].ok and "ZeroDivisionError" in outcomes["broken"].describe_failure()


class Module(object):
    def __init__(self, rc=0, out="", err="", has_timeout=True, raises=None):
        self.answer, self.has_timeout, self.raises, self.cmds = (rc, out, err), has_timeout, raises, []

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/bin/timeout" if name == "timeout" and self.has_timeout else None

    def run_command(self, cmd, **kwargs):
        self.cmds.append((cmd, kwargs))
        if self.raises:
            raise self.raises
        return self.answer


def fake_clock(step):
    ticks = iter(range(0, 10000, step))
    return lambda: float(next(ticks))


def test_runs_under_coreutils_timeout_in_c_locale():
    module = Module(out="x")
    run = _tool.run_tool(module, ["/opt/rocm/bin/rocm-smi", "--json"], 15)
    cmd, kwargs = module.cmds[0]
    assert cmd == ["/usr/bin/timeout", "-k", "2", "15", "/opt/rocm/bin/rocm-smi", "--json"]
    assert kwargs["environ_update"]["LC_ALL"] == "C"
    assert run.ran and run.stdout == "x"


def test_refuses_to_run_without_a_hard_timeout():
    module = Module(has_timeout=False)
    run = _tool.run_tool(module, ["rocm-smi"], 15)
    assert not run.ran and "refusing to run" in run.error and module.cmds == []


def test_timeout_exit_codes_after_the_full_time():
    for rc in (124, 137, -9):  # -9: SIGKILL to the group killed timeout itself too
        run = _tool.run_tool(Module(rc=rc), ["rocm-smi"], 15, clock=fake_clock(20))
        assert run.timed_out and run.describe() == "rocm-smi timed out after 15s and was killed"


def test_oom_kill_early_is_not_a_timeout():
    run = _tool.run_tool(Module(rc=137), ["rocm-smi"], 15, clock=fake_clock(1))
    assert not run.timed_out and run.ran and run.describe() == "rocm-smi exited 137"


def test_not_found_and_os_errors():
    missing = _tool.run_tool(Module(rc=127), ["/usr/bin/dmesg"], 5)
    assert missing.not_found and not missing.ran
    assert missing.describe() == "/usr/bin/dmesg not found (timeout could not run it, exit 127)"
    # 126: there, but not executable; every caller of run_tool reads it the same way (not a tool that failed)
    denied = _tool.run_tool(Module(rc=126), ["/usr/bin/dmesg"], 5)
    assert not denied.ran and not denied.not_found
    assert denied.describe() == "/usr/bin/dmesg is not executable (timeout could not run it, exit 126)"
    run = _tool.run_tool(Module(raises=OSError("Permission denied")), ["x"], 5)
    assert run.error == "Permission denied" and not run.ran
