"""The training-health checks: settings, the pure evaluations and fix mode (the family: test_training_health.py)."""

from __future__ import annotations

import functools
import os
import stat

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks
from ansible_collections.gpuops.preflight.plugins.module_utils import _memory
from ansible_collections.gpuops.preflight.plugins.module_utils import _training_checks as tc
from ansible_collections.gpuops.preflight.plugins.module_utils import _training_health as th

NOW = 1767225600.0
FIX = "the check's own suggested fix (its CheckSpec's)"

# The evaluations with the fix a family passes them (its spec's).
evaluate_daemon = functools.partial(tc.evaluate_daemon, fix=FIX)
evaluate_disk_space = functools.partial(tc.evaluate_disk_space, fix=FIX)
evaluate_memory = functools.partial(tc.evaluate_memory, fix=FIX)
evaluate_config = functools.partial(tc.evaluate_config, fix=FIX)
evaluate_permissions = functools.partial(tc.evaluate_permissions, fix=FIX)
evaluate_layout = functools.partial(tc.evaluate_layout, fix=FIX)
evaluate_checkpoint = functools.partial(tc.evaluate_checkpoint, fix=FIX)
evaluate_crash_log = functools.partial(tc.evaluate_crash_log, fix=FIX)
evaluate_config_lock = functools.partial(tc.evaluate_config_lock, fix=FIX)
evaluate_checkpoint_resume = functools.partial(tc.evaluate_checkpoint_resume, fix=FIX)


def statuses(problems):
    return [p["status"] for p in problems]


# -- declarations --------------------------------------------------------------------------------

def test_every_check_but_progress_and_gpu_has_a_pure_evaluation_here():
    assert sorted(tc.CHECKS) == sorted(set(th.FAMILY.host_checks) - {"progress", "gpu"})


def test_every_check_names_real_collectors_and_settings():
    ctx = tc.settings("/srv/training", now=NOW)
    for name, (func, needs, keywords) in tc.CHECKS.items():
        assert callable(func) and set(needs) <= set(tc.COLLECTORS), name
        assert set(keywords) <= set(ctx), name


# -- settings ------------------------------------------------------------------------------------

def test_settings_make_paths_absolute_and_keep_defaults():
    ctx = tc.settings("/srv/training/", now=NOW, lock_file="none", logs=["logs/*.log", "/var/log/t.log"])
    assert ctx["base_dir"] == "/srv/training" and ctx["config_file"] == "/srv/training/config.json"
    assert ctx["lock_file"] is None and ctx["logs"] == ["/srv/training/logs/*.log", "/var/log/t.log"]
    assert ctx["min_free_bytes"] == 50 * 1000 ** 3 and ctx["min_available_bytes"] == 4 * 1000 ** 3
    assert ctx["now"] == NOW


@pytest.mark.parametrize("overrides, text", [
    ({"min_free_gb": 5}, "unknown training setting(s): min_free_gb"),
    ({"min_free_bytes": -1}, "min_free_bytes must be a number >= 0"),
    ({"min_available_bytes": True}, "min_available_bytes must be a number"),
    ({"crash_log_lines": 0}, "crash_log_lines must be at least 1"),
    ({"dir_mode": 0o500}, "dir_mode must let the owner"),
    ({"expect_layout": "adapter"}, "expect_layout must be one of auto, full, lora"),
    ({"required_dirs": "inbox"}, "required_dirs must be a list"),
    ({"required_files": ["../etc/passwd"]}, "inside training_base_dir (relative, without '..', not the base folder"),
    ({"required_dirs": ["./"]}, "not the base folder itself), not './'"),   # fix mode would chown the base
    ({"daemon_match": ""}, "daemon_match must be a non-empty string"),
])
def test_bad_settings_are_named(overrides, text):
    with pytest.raises(ValueError) as err:
        tc.settings("/srv/training", **overrides)
    assert text in str(err.value)


@pytest.mark.parametrize("base", ["", None, 3, "a\0b"])
def test_bad_base_dir(base):
    with pytest.raises(ValueError):
        tc.settings(base)


# -- pure evaluations ------------------------------------------------------------------------------

def test_daemon():
    alive = {"pid": 42, "alive": True, "pid_file": "/t/.daemon.pid", "message": None}
    problems, text, details = evaluate_daemon(alive)
    assert problems == [] and text == "training daemon pid 42 (from /t/.daemon.pid) is running" and details["pid"] == 42
    gone = {"pid": 42, "alive": False, "pid_file": "/t/.daemon.pid", "message": "the daemon (PID 42) is gone"}
    problems, text, _details = tc.evaluate_daemon(gone, fix="custom fix")  # the family's spec gives another fix
    assert statuses(problems) == ["fail"] and problems[0]["message"] == "the daemon (PID 42) is gone"
    assert problems[0]["fix"] == "custom fix" and problems[0]["check"] == "daemon" and text is None
    assert evaluate_daemon({"alive": False})[0][0]["fix"] == FIX


def test_a_daemon_that_cannot_be_told_is_unknown_never_gone():
    hidden = {"pid": 42, "alive": False, "unknown": True, "pid_file": "/t/.daemon.pid",
              "message": "cannot tell whether PID 42 is the daemon: it exists, but /proc hides it (mounted with hidepid?)"}
    problems, text, _details = evaluate_daemon(hidden)
    assert statuses(problems) == ["unknown"] and problems[0]["message"] == hidden["message"] and text is None
    # nor is training "not active" for the checkpoint age
    problems, _text, _details = evaluate_checkpoint(checkpoint_report(ck(5)), hidden, None, None, now=NOW)
    assert statuses(problems) == ["unknown"] and "checkpoint age not checked: cannot tell" in problems[0]["message"]


def test_disk_space():
    problems, _ok_text, details = evaluate_disk_space({"path": "/t", "free_bytes": 12 * 10 ** 9, "error": None},
                                                      min_free_bytes=50 * 10 ** 9)
    assert statuses(problems) == ["warn"] and problems[0]["message"] == "only 12.0 GB free on the filesystem of /t (needs 50.0 GB)"
    assert evaluate_disk_space({"path": "/t", "free_bytes": 60 * 10 ** 9, "error": None})[1] == (
        "60.0 GB free on the filesystem of /t")
    assert statuses(evaluate_disk_space({"path": "/t", "error": "statvfs /t failed: gone"})[0]) == ["unknown"]


def test_memory_and_meminfo():
    parsed = _memory.parse_meminfo("MemTotal: 8000000 kB\nMemFree: 10 kB\nMemAvailable: 3906250 kB\n")
    assert parsed == {"available_bytes": 4 * 10 ** 9, "total_bytes": 8000000 * 1024, "estimated": False}
    old_kernel = _memory.parse_meminfo("MemTotal: 100 kB\nMemFree: 1 kB\nBuffers: 2 kB\nCached: 3 kB\n")
    assert old_kernel["available_bytes"] == 6 * 1024 and old_kernel["estimated"] is True
    with pytest.raises(ValueError):
        _memory.parse_meminfo("garbage\n\x00")
    problems, _ok_text, _details = evaluate_memory(dict(old_kernel, error=None))
    assert statuses(problems) == ["warn"] and "(estimated: no MemAvailable)" in problems[0]["message"]
    assert evaluate_memory(dict(parsed, error=None))[0] == []


def test_config_evaluation():
    report = {"path": "/t/config.json", "error": None, "config": {"base_model": "m", "output_dir": "o",
                                                                  "finetuning_type": "lora"},
              "problems": []}
    assert evaluate_config(report)[1] == "/t/config.json is valid (base_model m, output_dir o, LoRA)"
    bad = dict(report, problems=[{"key": "seed", "code": "out_of_range", "message": "config.json: seed is -1"}])
    problems, _ok_text, details = evaluate_config(bad)
    assert statuses(problems) == ["fail"] and problems[0]["details"] == {"key": "seed", "code": "out_of_range"}
    assert details["codes"] == ["out_of_range"]
    assert statuses(evaluate_config(dict(report, error="/t/config.json is missing"))[0]) == ["fail"]


def entry(rel, kind, mode, uid=1000, gid=1000, need="rwx", own=True, actual=None):
    return {"rel": rel, "path": "/t/" + rel, "kind": kind, "actual": actual or kind, "is_link": False, "mode": mode,
            "uid": uid, "gid": gid, "need": need, "own": own, "optional": False, "error": None}


USER = {"name": "svc", "uid": 1000, "gid": 1000, "gids": [1000, 50], "error": None}


@pytest.mark.parametrize("item, lacking", [
    (entry("logs", "dir", 0o700), ""),
    (entry("logs", "dir", 0o500), "w"),
    (entry("logs", "dir", 0o070, uid=0, gid=50), ""),        # through a supplementary group
    (entry("logs", "dir", 0o705, uid=0, gid=0), "w"),        # other: r-x
    (entry("config.json", "file", 0o600, need="r"), ""),
    (entry("config.json", "file", 0o640, uid=0, gid=0, need="r"), "r"),
])
def test_access_by_owner_group_other(item, lacking):
    assert tc._access(item, USER) == lacking


def test_root_can_do_everything_but_execute_a_file_without_x():
    root = dict(USER, uid=0)
    assert tc._access(entry("logs", "dir", 0o000, uid=5), root) == ""
    assert tc._access(entry("x", "file", 0o600, need="rx"), root) == "x"


def test_a_service_user_of_digits_int_refuses_is_a_name_that_does_not_exist():
    assert tc.resolve_user("\u00b2")["error"] == "service user '\u00b2' does not exist"


def test_permissions_evaluation():
    queue = dict(entry("queue", "dir", None, actual="missing"), ancestors=["/t"], parent="/t")
    permissions = {"user": USER, "entries": [entry("logs", "dir", 0o755, uid=0, gid=0),
                                             entry("config.json", "file", 0o600, uid=0, gid=0, need="r", own=False),
                                             queue],
                   "folders": {"/t": {"st_mode": stat.S_IFDIR | 0o755, "uid": 0, "gid": 0, "acl": None,
                                      "error": None}}}
    problems, _ok_text, details = evaluate_permissions(permissions)
    assert statuses(problems) == ["warn", "warn", "warn"] and details == {"user": "svc", "uid": 1000}
    assert problems[2]["message"] == ("service user svc (uid 1000) cannot create /t/queue: it cannot write /t "
                                      "(drwxr-xr-x, owner 0:0)")
    assert problems[0]["message"] == "service user svc (uid 1000) cannot write /t/logs (drwxr-xr-x, owner 0:0)"
    assert "training_health_fix: true" in problems[0]["fix"]
    assert problems[1]["message"].startswith("service user svc (uid 1000) cannot read /t/config.json")
    assert "chown/chmod /t/config.json" in problems[1]["fix"]
    unknown = evaluate_permissions({"user": dict(USER, error="service user 'x' does not exist"), "entries": []})
    assert statuses(unknown[0]) == ["unknown"]


def test_layout_evaluation():
    layout = {"entries": [entry("", "dir", 0o755), entry("inbox", "dir", None, actual="missing"),
                          entry("core/train.py", "file", None, actual="missing"),
                          entry("logs", "dir", 0o644, actual="file")]}
    problems, _ok_text, details = evaluate_layout(layout)
    assert [p["message"] for p in problems] == ["required folder /t/inbox is missing",
                                                "required file /t/core/train.py is missing",
                                                "required folder /t/logs is file, not a folder"]
    assert "training_health_fix" in problems[0]["fix"] and "deployment" in problems[1]["fix"]
    assert details["missing"] == ["inbox", "core/train.py"]
    no_base = {"entries": [entry("", "dir", None, actual="missing")]}
    assert evaluate_layout(no_base)[0][0]["message"] == "training base folder /t/ is missing"


def checkpoint_report(*entries, path="/t/current_model", error=None):
    return {"path": path, "single": False, "checkpoints": list(entries), "latest": entries[0] if entries else None,
            "error": error}


def ck(step, layout="full", resumable=True, missing=(), problems=(), mtime=NOW - 3600, name=None):
    return {"path": "/t/current_model/%s" % (name or "checkpoint-%d" % step), "name": name or "checkpoint-%d" % step,
            "step": step, "layout": layout, "resumable": resumable, "missing": list(missing), "empty": [],
            "global_step": step, "max_steps": None, "mtime": mtime, "problems": list(problems)}


ALIVE = {"alive": True, "pid": 7}


def test_checkpoint_age_only_while_training_is_active():
    old = checkpoint_report(ck(500, mtime=NOW - 30 * 3600))
    problems, _ok_text, details = evaluate_checkpoint(old, ALIVE, {"current_step": 900}, None, now=NOW)
    assert statuses(problems) == ["warn"] and "is 30.0 h old (limit 24.0 h)" in problems[0]["message"]
    assert details["age_s"] == 30 * 3600
    assert evaluate_checkpoint(old, {"alive": False}, None, None, now=NOW)[1].startswith("training is not active")
    fresh = checkpoint_report(ck(500, mtime=NOW - 600))
    assert evaluate_checkpoint(fresh, ALIVE, None, None, now=NOW)[1] == "newest checkpoint checkpoint-500 is 10 min old"
    none = checkpoint_report()
    config = {"config": {"save_steps": 500}}
    assert statuses(evaluate_checkpoint(none, ALIVE, {"current_step": 800}, config, now=NOW)[0]) == ["warn"]
    assert evaluate_checkpoint(none, ALIVE, {"current_step": 100}, config, now=NOW)[0] == []
    assert evaluate_checkpoint(none, ALIVE, {"current_step": 800}, {"config": None}, now=NOW)[0] == []


def unlistable_report(tmp_path, monkeypatch):
    """The checkpoints of a folder whose newest checkpoint cannot be listed (EACCES, simulated: tests run as root)."""
    from ansible_collections.gpuops.preflight.plugins.module_utils import _checkpoints
    root = tmp_path / "current_model"
    for step in (500, 900):
        (root / ("checkpoint-%d" % step)).mkdir(parents=True)
    real = _checkpoints._listing

    def listing(path):
        if path.endswith("checkpoint-900"):
            raise PermissionError(13, "Permission denied", path)
        return real(path)
    monkeypatch.setattr(_checkpoints, "_listing", listing)
    return _checkpoints.find(str(root)), str(root / "checkpoint-900")


def test_a_newest_checkpoint_that_cannot_be_listed_is_unknown_not_fresh(tmp_path, monkeypatch):
    report, newest = unlistable_report(tmp_path, monkeypatch)
    assert report["latest"]["path"] == newest and report["latest"]["error"].endswith("Permission denied")
    problems, text, _details = evaluate_checkpoint(report, ALIVE, {"current_step": 950}, None, now=NOW)
    assert statuses(problems) == ["unknown"] and text is None
    assert problems[0]["message"] == "newest checkpoint %s cannot be listed: Permission denied" % newest


def test_checkpoint_resume_of_a_newest_checkpoint_that_cannot_be_listed_is_unknown(tmp_path, monkeypatch):
    report, newest = unlistable_report(tmp_path, monkeypatch)
    problems, text, _details = resume(report)
    assert statuses(problems) == ["unknown"] and text is None
    assert problems[0]["message"] == "newest checkpoint %s cannot be listed: Permission denied" % newest
    assert "no model weights" not in problems[0]["message"]


def scan(crashes=(), files=None, history=None):
    return {"crashes": list(crashes), "categories": [c["category"] for c in crashes],
            "files": files if files is not None else [{"path": "/t/logs/a.log", "error": None}],
            "history": history or {"recorded": 0, "would_record": 0, "error": None}}


def test_crash_log_evaluation():
    oom = {"category": "cuda_oom", "severity": "hard", "file": "/t/logs/a.log", "line": "CUDA out of memory",
           "count": 2, "last_seen": "2026-01-01T00:00:00Z", "recurrence_text": "3rd cuda_oom in 24 h", "fix": "lower bs"}
    timeout = dict(oom, category="timeout", severity="soft", count=1, last_seen=None, recurrence_text=None)
    problems, _ok_text, details = evaluate_crash_log(scan([oom, timeout]))
    assert statuses(problems) == ["fail", "warn"]
    assert problems[0]["message"] == ("cuda_oom in /t/logs/a.log: CUDA out of memory (2 lines, last "
                                      "2026-01-01T00:00:00Z, 3rd cuda_oom in 24 h)")
    assert problems[0]["fix"] == "lower bs" and problems[0]["details"]["category"] == "cuda_oom"
    assert problems[1]["message"].endswith("(1 line)")
    unreadable = scan(files=[{"path": "/t/logs/f.log", "error": "/t/logs/f.log is a fifo, not a regular file"}])
    assert statuses(evaluate_crash_log(unreadable)[0]) == ["unknown"]
    foreign = scan(history={"recorded": 0, "would_record": 0, "error": "h.json is not ours: left as it is"})
    assert statuses(evaluate_crash_log(foreign)[0]) == ["warn"]
    assert evaluate_crash_log(scan(files=[]))[1] == "no log file to scan"
    assert evaluate_crash_log(scan())[1] == "no crash in the last lines of 1 log file"


def test_a_log_the_timeout_cut_short_is_unknown_never_clean():
    cut = scan(files=[{"path": "/t/logs/a.log", "error": None, "timed_out": True,
                       "note": "read stopped by the timeout after 64.0 KiB"}])
    problems, ok_text, _details = evaluate_crash_log(cut)
    assert statuses(problems) == ["unknown"] and ok_text is None
    assert problems[0]["message"] == "log not fully scanned: /t/logs/a.log: read stopped by the timeout after 64.0 KiB"
    oom = {"category": "cuda_oom", "severity": "hard", "file": "/t/logs/a.log", "line": "CUDA out of memory",
           "count": 1, "last_seen": None, "recurrence_text": None, "fix": "lower bs"}
    assert statuses(evaluate_crash_log(dict(cut, crashes=[oom], categories=["cuda_oom"]))[0]) == ["fail", "unknown"]


def lock_report(config, state="ok"):
    from ansible_collections.gpuops.preflight.plugins.module_utils import _training_config
    doc = _training_config.lock_document(config, "/t/config.json", NOW) if config is not None else None
    return {"path": "/t/.config_lock.json", "state": state, "lock": doc, "error": None if state == "ok" else "bad"}


def test_config_lock_evaluation():
    locked = {"base_model": "a/b", "output_dir": "o", "seed": 1}
    config = {"path": "/t/config.json", "config": dict(locked), "error": None}
    ckpts = checkpoint_report(ck(100))
    assert evaluate_config_lock(lock_report(locked), config, ckpts)[1].startswith("config.json matches the lock")
    info_only = dict(config, config=dict(locked, seed=2))
    problems, text, details = evaluate_config_lock(lock_report(locked), info_only, ckpts)
    assert problems == [] and text.endswith("nothing dangerous: seed") and details["changes"][0]["key"] == "seed"
    changed = dict(config, config=dict(locked, base_model="c/d"))
    problems = evaluate_config_lock(lock_report(locked), changed, ckpts)[0]
    assert statuses(problems) == ["fail"] and '"a/b" to "c/d"' in problems[0]["message"]
    assert "checkpoint-100" in problems[0]["message"]
    assert statuses(evaluate_config_lock(lock_report(locked), changed, checkpoint_report())[0]) == ["warn"]
    assert evaluate_config_lock(lock_report(None, "missing"), config, ckpts)[0] == []
    assert statuses(evaluate_config_lock(lock_report(None, "unparseable"), config, ckpts)[0]) == ["unknown"]
    broken = {"path": "/t/config.json", "config": None, "error": "/t/config.json is not valid JSON"}
    assert statuses(evaluate_config_lock(lock_report(locked), broken, ckpts)[0]) == ["unknown"]


FULL = {"path": "/t/config.json", "config": {"finetuning_type": "full", "resume_from_checkpoint": True},
        "error": None}
LORA = {"path": "/t/config.json", "config": {"use_lora": True}, "error": None}
STATUS = {"path": "/t/status/training_status.json", "current_step": 1200}


def resume(checkpoints, config=None, status=None, **kw):
    """evaluate_checkpoint_resume with FULL and STATUS unless the test gives its own."""
    return evaluate_checkpoint_resume(checkpoints, FULL if config is None else config, STATUS if status is None else status,
                                      **kw)


def test_checkpoint_resume_ok_and_nothing_to_resume():
    problems, text, _details = resume(checkpoint_report(ck(1000)))
    assert problems == [] and text == "newest checkpoint checkpoint-1000 (full, step 1000) is resumable; " \
                                      "training status at step 1200"
    assert resume(checkpoint_report())[1].startswith("no checkpoints in /t/current_model")
    missing = checkpoint_report(error="/t/current_model does not exist")
    assert resume(missing)[0] == [] and "no checkpoint folder" in resume(missing)[1]
    assert statuses(resume(checkpoint_report(error="/t/current_model cannot be read: denied"))[0]) == ["unknown"]


def test_layout_must_follow_the_config_both_ways():
    problems = resume(checkpoint_report(ck(1000, layout="lora")))[0]
    assert statuses(problems) == ["fail"]
    assert "holds a LoRA adapter, but config.json trains the full model (finetuning_type: \"full\")" in problems[0]["message"]
    problems = resume(checkpoint_report(ck(1000)), config=LORA)[0]
    assert "holds full-model weights, but config.json trains a LoRA adapter (use_lora: true)" in problems[0]["message"]
    assert resume(checkpoint_report(ck(1000, layout="lora")), config=LORA)[0] == []
    no_mode = {"path": "/t/config.json", "config": {}, "error": None}
    assert resume(checkpoint_report(ck(1000, layout="lora")), config=no_mode)[0] == []  # auto: no false alarm
    asked = resume(checkpoint_report(ck(1000, layout="lora")), config=no_mode, expect_layout="full")[0]
    assert "expect_layout asks for the full model" in asked[0]["message"]


def test_would_start_from_scratch():
    ckpts = checkpoint_report(ck(1000))
    problems = resume(ckpts, status=dict(STATUS, current_step=0))[0]
    assert statuses(problems) == ["fail"] and "says current_step 0 while" in problems[0]["message"]
    for value, shown in ((False, "false"), (None, "null"), ("", '""')):
        config = {"path": "/t/config.json", "config": {"resume_from_checkpoint": value}, "error": None}
        problems = resume(ckpts, config=config)[0]
        assert statuses(problems) == ["fail"]
        assert "sets resume_from_checkpoint to %s while /t/current_model/checkpoint-1000" % shown in problems[0]["message"]
    absent = {"path": "/t/config.json", "config": {}, "error": None}
    assert resume(ckpts, config=absent)[0] == []  # the config does not say: the status decides
    behind = resume(ckpts, status=dict(STATUS, current_step=400))[0]
    assert statuses(behind) == ["warn"] and "may have started over" in behind[0]["message"]
    not_resumable = checkpoint_report(ck(1000, resumable=False, missing=["optimizer.pt"]))
    # nothing to resume: no start from scratch to block, but resume_from_checkpoint true would take the broken one
    assert statuses(resume(not_resumable, config=absent, status=dict(STATUS, current_step=0))[0]) == ["warn"]
    assert statuses(resume(not_resumable, status=dict(STATUS, current_step=0))[0]) == ["fail"]


def test_resume_from_a_named_checkpoint():
    ckpts = checkpoint_report(ck(1000), ck(500))
    named = {"path": "/t/config.json", "config": {"resume_from_checkpoint": "current_model/checkpoint-500"},
             "error": None}
    problems = resume(ckpts, config=named)[0]
    assert statuses(problems) == ["warn"] and "resumes from checkpoint-500 although checkpoint-1000 is newer" in \
        problems[0]["message"]
    elsewhere = dict(named, config={"resume_from_checkpoint": "/elsewhere/checkpoint-9"})
    assert statuses(resume(ckpts, config=elsewhere)[0]) == ["fail"]


def test_newest_not_resumable_names_the_older_one_and_step_mismatch():
    ckpts = checkpoint_report(ck(1000, resumable=False, missing=["optimizer.pt", "scheduler.pt"]), ck(500))
    silent = {"path": "/t/config.json", "config": {"finetuning_type": "full"}, "error": None}
    problems = resume(ckpts, config=silent)[0]
    assert statuses(problems) == ["warn"]
    assert problems[0]["message"] == ("newest checkpoint /t/current_model/checkpoint-1000 is not resumable (missing "
                                      "optimizer.pt, scheduler.pt); a resume that takes the newest checkpoint would "
                                      "use it; the newest resumable one is checkpoint-500 (step 500)")
    mismatch = checkpoint_report(ck(700, problems=["/t/c: trainer_state.json says global_step 650, the folder name "
                                                   "says 700"]))
    assert statuses(resume(mismatch)[0]) == ["warn"]


def test_a_newest_checkpoint_cut_off_while_saving_fails_when_resuming_takes_the_newest():
    # transformers' resume_from_checkpoint=True takes the highest-numbered checkpoint as it is: it would load this one
    # (or fail on it) and start over at step 0, not fall back to checkpoint-500
    ckpts = checkpoint_report(ck(1000, resumable=False, missing=["trainer_state.json"]), ck(500))
    problems = resume(ckpts)[0]
    assert statuses(problems) == ["fail"]
    assert "resume_from_checkpoint true takes the newest: the daemon would fail on it or start over at step 0; " \
        "the newest resumable one is checkpoint-500 (step 500)" in problems[0]["message"]
    assert problems[0]["fix"].startswith("Move checkpoint-1000 out of /t/current_model")
    named = {"path": "/t/config.json", "config": {"resume_from_checkpoint": "current_model/checkpoint-500"},
             "error": None}
    assert statuses(resume(ckpts, config=named)[0]) == ["warn"]   # it names the good one: only the warning stays


def test_weights_sharded_by_deepspeed_or_fsdp_are_no_layout_mismatch():
    sharded = dict(ck(1000, layout=None), engine="fsdp", engine_weights=True)   # the files do not tell the layout
    for config in (FULL, LORA):
        problems, text, _details = resume(checkpoint_report(sharded), config=config)
        assert problems == [] and "checkpoint-1000 (weights in fsdp's shards, step 1000) is resumable" in text
    no_weights = ck(1000, layout=None)
    assert statuses(resume(checkpoint_report(no_weights))[0]) == ["fail"]


def test_resume_from_checkpoint_through_a_symlinked_base_dir_is_the_same_checkpoint(tmp_path):
    real = tmp_path / "data" / "training"
    (real / "current_model" / "checkpoint-500").mkdir(parents=True)
    (tmp_path / "srv").mkdir()
    os.symlink(str(real), str(tmp_path / "srv" / "training"))
    linked = str(tmp_path / "srv" / "training")
    entry = dict(ck(500), path=os.path.join(linked, "current_model", "checkpoint-500"))
    ckpts = {"path": os.path.join(linked, "current_model"), "single": False, "checkpoints": [entry], "latest": entry,
             "error": None}
    config = {"path": os.path.join(linked, "config.json"), "error": None,
              "config": {"resume_from_checkpoint": str(real / "current_model" / "checkpoint-500")}}
    assert resume(ckpts, config=config)[0] == []


def test_results_fit_the_check_model():
    problems, _ok_text, details = resume(checkpoint_report(ck(1000, layout="lora")))
    result = _checks.result("checkpoint_resume", problems, details=details)
    assert result["status"] == "fail" and result["details"]["checkpoints"] == 1


# -- fix mode ------------------------------------------------------------------------------------

@pytest.fixture
def host(tmp_path):
    base = tmp_path / "base"
    for name in ("inbox", "logs", "status", "current_model/checkpoint-100"):
        (base / name).mkdir(parents=True)
    (base / "current_model" / "checkpoint-100" / "optimizer.pt").write_bytes(b"state")
    (base / "config.json").write_text("{}")
    return str(base)


def tree(path):
    found = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [""] + dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            found[full] = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                           open(full, "rb").read() if stat.S_ISREG(st.st_mode) else None)
    return found


def test_fix_creates_missing_folders_repairs_modes_and_is_idempotent(host):
    os.chmod(os.path.join(host, "logs"), 0o500)
    ctx = tc.settings(host, now=NOW, required_dirs=["inbox", "logs", "status", "queue", "current_model", "a/b"])
    before = tree(host)
    planned = tc.fix_host(dict(ctx, check_mode=True))
    assert tree(host) == before  # check mode changes nothing
    assert [(c["action"], os.path.relpath(c["path"], host)) for c in planned["changes"]] == [
        ("chmod", "logs"), ("mkdir", "queue"), ("mkdir", "a"), ("mkdir", "a/b")]
    assert planned["changed"] is True and "mkdir %s/queue: absent" % host in planned["diff"]["before"]
    done = tc.fix_host(ctx)
    assert done["changes"] == planned["changes"] and done["errors"] == []
    assert stat.S_IMODE(os.stat(os.path.join(host, "logs")).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(host, "queue")).st_mode) == 0o750
    assert os.stat(os.path.join(host, "a", "b")).st_uid == os.stat(host).st_uid
    again = tc.fix_host(ctx)
    assert again == {"changed": False, "changes": [], "errors": [], "diff": again["diff"]}
    assert open(os.path.join(host, "current_model", "checkpoint-100", "optimizer.pt"), "rb").read() == b"state"


def test_fix_never_follows_a_symlink_and_never_touches_files(host, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.chmod(str(outside), 0o500)
    os.rmdir(os.path.join(host, "inbox"))
    os.symlink(str(outside), os.path.join(host, "inbox"))
    os.rmdir(os.path.join(host, "status"))
    with open(os.path.join(host, "status"), "w") as handle:
        handle.write("a file where a folder should be")
    ctx = tc.settings(host, now=NOW)
    before = tree(str(tmp_path))
    outcome = tc.fix_host(ctx)
    assert [(c["action"], os.path.basename(c["path"])) for c in outcome["changes"]] == [("mkdir", "queue")]
    queue = os.path.join(host, "queue")
    after = dict((k, v) for k, v in tree(str(tmp_path)).items() if not k.startswith(queue))
    assert after == before


def outside_folder(tmp_path, *names):
    """A root-owned 0500 folder outside the base dir, with ``names`` inside; its (mode, uid) per path."""
    outside = tmp_path / "outside"
    for name in ("",) + names:
        (outside / name).mkdir(parents=True, exist_ok=True)
        os.chmod(str(outside / name), 0o500)
    return outside


def modes_and_owners(folder):
    found = {}
    for dirpath, dirnames, filenames in os.walk(str(folder)):
        for name in [""] + dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            found[os.path.join(dirpath, name)] = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return found


@pytest.mark.parametrize("required", [["logs/sub"], ["logs/sub/new"], ["logs/."], ["logs/"]])
def test_fix_never_works_through_a_symlinked_parent_folder(host, tmp_path, required):
    outside = outside_folder(tmp_path, "sub")
    os.rmdir(os.path.join(host, "logs"))
    os.symlink(str(outside), os.path.join(host, "logs"))
    before = modes_and_owners(outside)
    outcome = tc.fix_host(tc.settings(host, now=NOW, required_dirs=required))
    assert modes_and_owners(outside) == before
    assert [c for c in outcome["changes"] if c["path"].startswith(os.path.join(host, "logs"))] == []


def test_fix_refuses_a_parent_swapped_for_a_symlink_between_plan_and_apply(host, tmp_path, monkeypatch):
    outside = outside_folder(tmp_path, "tb")
    before = modes_and_owners(outside)
    real_mkdir = os.mkdir

    def mkdir_then_swap(name, mode=0o777, *, dir_fd=None):
        real_mkdir(name, mode, dir_fd=dir_fd)
        if name == "tb-parent":   # right after fix mode made it, the service user swaps it for a link
            os.rename(os.path.join(host, "tb-parent"), os.path.join(host, "moved"))
            os.symlink(str(outside), os.path.join(host, "tb-parent"))
    monkeypatch.setattr(os, "mkdir", mkdir_then_swap)
    outcome = tc.fix_host(tc.settings(host, now=NOW, required_dirs=["tb-parent/tb"]))
    assert modes_and_owners(outside) == before
    refused = "a folder on the way is a symbolic link (not followed): left as it is"
    assert [(os.path.relpath(e["path"], host), e["error"].split(": ", 1)[1]) for e in outcome["errors"]] == [
        ("tb-parent", refused), ("tb-parent/tb", refused)]


def test_fix_leaves_a_folder_replaced_between_plan_and_apply(host, tmp_path):
    ctx = tc.settings(host, now=NOW)
    layout, permissions = tc.collect_layout(ctx), tc.collect_permissions(ctx)
    os.chmod(os.path.join(host, "logs"), 0o500)
    layout, permissions = tc.collect_layout(ctx), tc.collect_permissions(ctx)
    actions = [a for a in tc.plan_fixes(layout, permissions) if a["action"] == "chmod"]
    os.rename(os.path.join(host, "logs"), os.path.join(host, "old-logs"))   # another folder takes the name
    os.mkdir(os.path.join(host, "logs"), 0o500)
    outcome = tc.apply_fixes(actions, ctx["base_dir"])
    assert outcome["changes"] == [] and outcome["errors"][0]["error"].endswith(
        "replaced since it was planned: left as it is")
    assert stat.S_IMODE(os.stat(os.path.join(host, "logs")).st_mode) == 0o500


def test_fix_through_a_symlinked_base_folder(host, tmp_path):
    link = str(tmp_path / "training")
    os.symlink(host, link)
    outcome = tc.fix_host(tc.settings(link, now=NOW))
    assert [(c["action"], c["path"]) for c in outcome["changes"]] == [("mkdir", os.path.join(host, "queue"))]
    assert outcome["errors"] == [] and os.path.isdir(os.path.join(host, "queue"))


def test_fix_without_the_right_to_change_reports_instead(host):
    ctx = tc.settings(host, now=NOW)
    layout, permissions = tc.collect_layout(ctx), tc.collect_permissions(ctx)
    for item in permissions["entries"]:
        if item["rel"] == "logs":
            item["uid"] = 4242  # owned by someone else: the service user should own it
    actions = tc.plan_fixes(layout, permissions, euid=permissions["user"]["uid"] + 1)
    kinds = [(a["action"], a["possible"]) for a in actions]
    assert ("chown", False) in kinds and ("mkdir", False) in kinds
    outcome = tc.apply_fixes(actions, ctx["base_dir"])
    assert outcome["changed"] is False and outcome["changes"] == []
    assert [(e["action"], os.path.basename(e["path"])) for e in outcome["errors"]] == [("chown", "logs"),
                                                                                       ("mkdir", "queue")]
    assert "only root can change the owner" in outcome["errors"][0]["error"]


def test_fix_plans_nothing_without_a_base_folder(tmp_path):
    ctx = tc.settings(str(tmp_path / "missing"), now=NOW)
    assert tc.plan_fixes(tc.collect_layout(ctx), tc.collect_permissions(ctx)) == []


# -- collectors on a real tree --------------------------------------------------------------------

def test_collectors_report_instead_of_raising(tmp_path):
    ctx = tc.settings(str(tmp_path / "missing"), now=NOW, meminfo=str(tmp_path / "meminfo"))
    assert tc.collect_disk(ctx)["error"].startswith("statvfs")
    assert tc.collect_memory(ctx)["error"].endswith("is missing")
    assert tc.collect_config(ctx)["state"] == "missing"
    assert tc.collect_lock(ctx)["state"] == "missing"
    assert tc.collect_status(ctx)["state"] == "status_missing"
    assert tc.collect_daemon(ctx)["alive"] is False
    assert tc.collect_checkpoints(ctx)["error"].endswith("does not exist")
    assert tc.collect_crash_log(ctx)["files"] == []
    assert tc.collect_permissions(ctx)["user"]["error"]
    results = dict((name, tc.evaluate(name, dict((c, tc.COLLECTORS[c](ctx)) for c in tc.CHECKS[name][1]), ctx, FIX))
                   for name in tc.CHECKS)
    assert statuses(results["layout"][0]) == ["fail"] and statuses(results["daemon"][0]) == ["fail"]
    assert statuses(results["memory"][0]) == ["unknown"] and statuses(results["permissions"][0]) == ["unknown"]


# -- docs/TRAINING.md is held to the tables ------------------------------------------------------

def test_training_doc_lists_every_check_category_and_rule():
    import re

    from ansible_collections.gpuops.preflight.plugins.module_utils import _crash_log, _training_config
    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "docs", "TRAINING.md")
    with open(path, encoding="utf-8") as handle:
        doc = handle.read()
    rows = dict((m.group(1), m.group(2)) for m in re.finditer(r"^\| `(\w+)` \| (hard|soft)[^|]*\|", doc, re.M))
    for name in th.FAMILY.host_checks:
        spec = th.CHECKS[name]
        assert rows.get(name) == spec.severity, name
        assert spec.code in doc, spec.code
    for category, (severity, _fix) in _crash_log.CATEGORIES.items():
        assert re.search(r"^\| `%s` \| %s \|" % (category, severity), doc, re.M), category
    for rule in _training_config.RULES:
        assert "`%s`" % rule.key in doc, rule.key
    for key, _level, _why in _training_config.LOCK_RULES:
        assert "`%s`" % key in doc, key
    assert "## Watchdog and job control\n" in doc


def test_a_recorded_checkpoint_without_rng_state_warns_and_does_not_block(tmp_path):
    # transformers before 4.6 wrote no rng_state.pth: not resumable as it is, yet resume_from_checkpoint true takes
    # it and today's Trainer goes on without it, so a warning, not "the daemon would fail on it" (a hard failure)
    from ansible_collections.gpuops.preflight.plugins.module_utils import _checkpoints
    from simtrain import fixtures
    from simtrain.host import sparse
    for rel, size in fixtures.listing("bart-large-cnn-samsum_full_ft_sagemaker_2021_checkpoint-500_listing.txt"):
        if not rel.endswith("/trainer_state.json"):
            sparse(str(tmp_path / rel), size)
    state = fixtures.trainer_state_path("bart-large-cnn-samsum_full_ft_sagemaker_2021_checkpoint-500_trainer_state.json")
    (tmp_path / "checkpoint-500" / "trainer_state.json").write_text(state.read_text())
    found = _checkpoints.find(str(tmp_path))
    problems, text, _details = resume(found, status=dict(STATUS, current_step=500))
    assert [(p["status"], p["details"]["missing"]) for p in problems] == [("warn", ["rng_state.pth"])]
    assert text is None
    assert "the Trainer resumes from it all the same" in problems[0]["message"]
    # and it is a checkpoint to resume from: a status at step 0 beside it is a start from scratch
    problems, _text, _details = resume(found, status=dict(STATUS, current_step=0))
    assert "fail" in [p["status"] for p in problems]
    assert any("would start from scratch" in p["message"] for p in problems)


@pytest.mark.parametrize("written, step", [("0", 0), (0.0, 0), ("1200", 1200), (1200.0, 1200), (1200, 1200),
                                           (12.5, None), ("12a", None), (True, None), (-1, None)])
def test_the_resume_check_reads_current_step_as_the_stall_check_does(tmp_path, written, step):
    # the progress check reads "0", 0.0 and 1200.0 as steps; checkpoint_resume read only whole ints, so a status
    # file that says "current_step": "0" beside a resumable checkpoint passed where it must fail (hand-made)
    import json
    base = tmp_path / "t"
    (base / "status").mkdir(parents=True)
    (base / "status" / "training_status.json").write_text(json.dumps({"current_step": written}))
    ctx = tc.settings(str(base), now=NOW)
    assert tc.collect_status(ctx)["current_step"] == step


def test_a_newest_checkpoint_of_git_lfs_pointers_fails_with_the_fetch_named(tmp_path):
    # the real pointers of the bart-large-cnn-samsum checkpoint in place of its weights and optimizer state
    from ansible_collections.gpuops.preflight.plugins.module_utils import _checkpoints
    from simtrain import fixtures
    from simtrain.host import sparse
    for rel, size in fixtures.listing("bart-large-cnn-samsum_full_ft_sagemaker_2021_checkpoint-500_listing.txt"):
        name = rel.split("/", 1)[1]
        pointer = fixtures.CHECKPOINTS / ("bart-large-cnn-samsum_checkpoint-500_%s_git-lfs_pointer.txt" % name)
        if pointer.exists():
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_bytes(pointer.read_bytes())
        elif name != "trainer_state.json":
            sparse(str(tmp_path / rel), size)
    state = fixtures.trainer_state_path("bart-large-cnn-samsum_full_ft_sagemaker_2021_checkpoint-500_trainer_state.json")
    (tmp_path / "checkpoint-500" / "trainer_state.json").write_text(state.read_text())
    problems = resume(_checkpoints.find(str(tmp_path)), status=dict(STATUS, current_step=500))[0]
    assert statuses(problems) == ["fail"]
    assert "pytorch_model.bin is a Git LFS pointer (135 bytes), not the file itself" in problems[0]["message"]
    assert problems[0]["fix"].endswith("Or fetch the files behind its Git LFS pointers (git lfs install; git lfs pull).")
