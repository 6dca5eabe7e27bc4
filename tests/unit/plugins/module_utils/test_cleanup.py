from __future__ import annotations

from ansible_collections.gpuops.preflight.plugins.module_utils import _cleanup, _plan


def test_cache_errors_are_grouped_per_folder():
    targets = [{"path": "/h/.cache/miopen"}, {"path": "/h/.cache/comgr_cache"}]
    errors = [{"path": "/h/.cache/miopen/2.19.0/a.ukdb", "message": "cannot remove /h/.cache/miopen/2.19.0/a.ukdb: Read-only file system"},
              {"path": "/h/.cache/miopen/2.19.0/b.ukdb", "message": "cannot remove /h/.cache/miopen/2.19.0/b.ukdb: Read-only file system"},
              {"path": "/h/.cache/comgr_cache", "message": "cannot remove /h/.cache/comgr_cache: Permission denied"},
              {"path": None, "message": "refused to remove 'x': not a planned cache target"}]
    assert _cleanup.group_errors(errors, targets) == [
        "could not remove 2 paths in /h/.cache/miopen, e.g. cannot remove /h/.cache/miopen/2.19.0/a.ukdb: Read-only file system",
        "cannot remove /h/.cache/comgr_cache: Permission denied",
        "refused to remove 'x': not a planned cache target",
    ]


def test_a_clock_reset_problem_gets_its_vendor_s_fix():
    from ansible_collections.gpuops.preflight.plugins.module_utils._host_runner import Context

    def clocks(report, gpu_vendor="auto"):
        ctx = Context(_cleanup.FAMILY, None, {"gpu_vendor": gpu_vendor}, ["clocks"], {})
        ctx.values["clocks"] = report
        spec = _cleanup.CHECKS["clocks"]
        return spec.evaluate(ctx, spec)

    still = "GPU 0000:51:00.0 still runs user-defined clocks after nvidia-smi -rgc/-rmc"
    problems, text = clocks({"needed": ["0000:51:00.0"], "problems": [still], "vendors": ["nvidia"]})
    assert [(p["status"], p["message"], p["fix"]) for p in problems] == [("warn", still, _cleanup.CLOCK_FIXES["nvidia"])]
    assert text == "reset 1 GPU(s) to their default clocks"
    problems, text = clocks({"needed": [], "problems": ["x"]}, gpu_vendor="amd")
    assert problems[0]["fix"] == "Run 'rocm-smi --resetclocks' as root on the host."
    assert text == "every GPU already at its default clocks"
    both = clocks({"needed": [], "problems": ["x"], "vendors": ["amd", "nvidia"]})[0][0]["fix"]
    assert "rocm-smi --resetclocks" in both and "nvidia-smi -rgc" in both


def test_bad_cache_paths_are_refused_by_the_plan_before_any_host():
    problems = _plan.variable_problems(_cleanup.FAMILY, {"cleanup_extra_paths": ["../x"], "cleanup_home_dirs": ["rel/home"]})
    assert problems == [
        "cleanup_extra_paths is refused: extra_paths: ../x has a '..' component; it must stay inside the home",
        "cleanup_home_dirs is refused: home_dirs: rel/home is not an absolute path",
    ]
    fine = {"cleanup_extra_paths": [".triton/cache"], "cleanup_home_dirs": [], "cleanup_users": ["nobody-here"]}
    assert _plan.variable_problems(_cleanup.FAMILY, fine) == []


def test_clock_report_says_what_was_not_done():
    """Check mode resets nothing and says so; a level that could not be read is unknown, never a pass; a GPU
    without clock control is named, not a problem."""
    from ansible_collections.gpuops.preflight.plugins.module_utils._host_runner import Context

    class CheckMode(object):
        check_mode = True

    def clocks(report, module=None):
        ctx = Context(_cleanup.FAMILY, module, {"gpu_vendor": "amd"}, ["clocks"], {})
        ctx.values["clocks"] = report
        spec = _cleanup.CHECKS["clocks"]
        return spec.evaluate(ctx, spec)

    base = {"needed": ["0000:03:00.0"], "problems": [], "unverified": [], "unsupported": []}
    assert clocks(base, CheckMode()) == ([], "would reset 1 GPU(s) to their default clocks")
    assert clocks(base) == ([], "reset 1 GPU(s) to their default clocks")
    unread = "could not read the performance level of GPU 0000:06:00.0 (EPERM): its clocks were not checked"
    problems, _text = clocks(dict(base, needed=[], unverified=[unread]))
    assert [(p["status"], p["message"]) for p in problems] == [("unknown", unread)]
    assert clocks(dict(base, needed=[], unsupported=["0000:09:00.0"])) == (
        [], "every GPU with clock control already at its default clocks; 1 GPU(s) without clock control (not "
            "supported): 0000:09:00.0")
