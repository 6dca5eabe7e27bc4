"""Fix mode on a simulated host: check mode changes nothing; fix repairs exactly the safe things, once."""

from __future__ import annotations

import os
import stat

from ansible_collections.gpuops.preflight.plugins.module_utils import _training_checks as tc
from simtrain import run_checks, statuses
from simtrain.trees import tree_hash


def break_host(host):
    """Safe-to-fix problems (missing folders, the daemon's folders not writable) and unsafe ones."""
    os.rmdir(host.path("queue"))
    os.rmdir(host.path("inbox"))
    os.chmod(host.path("logs"), 0o500)
    if os.geteuid() == 0:
        os.chown(host.path("status"), 0, 0)
        os.chmod(host.path("status"), 0o755)
    os.unlink(host.path("core", "train.py"))                 # a file: restored by the deployment, never by fix mode
    host.update_config(learning_rate=-1)                      # config.json is never edited
    os.chmod(host.path("config.json"), 0o600)
    os.chmod(host.path("current_model", "checkpoint-5000"), 0o500)  # checkpoints are never touched
    os.chmod(host.path("current_model", "checkpoint-5000", "optimizer.pt"), 0o400)


def test_check_mode_changes_nothing_and_fix_repairs_only_the_safe_things_once(hosts):
    host = hosts(lock=False)
    break_host(host)
    ctx = host.settings()
    before = tree_hash(host.root)
    planned = tc.fix_host(dict(ctx, check_mode=True))
    assert tree_hash(host.root) == before
    expected = {("mkdir", "inbox"), ("chmod", "logs"), ("mkdir", "queue")}
    if os.geteuid() == 0:
        expected.add(("chown", "status"))
    got = [(c["action"], os.path.basename(c["path"])) for c in planned["changes"]]
    assert sorted(got) == sorted(expected)
    assert planned["errors"] == []

    done = tc.fix_host(ctx)
    assert done["changes"] == planned["changes"] and done["changed"] is True
    after = tree_hash(host.root)
    untouched = [p for p in before if not p.startswith(tuple(host.path(d) for d in ("logs", "status")))]
    for path in untouched:
        assert after[path] == before[path], path   # config.json, checkpoints, code: as they were
    owner = host.owner
    for folder in ("inbox", "queue", "logs", "status"):
        st = os.stat(host.path(folder))
        assert (st.st_uid, st.st_gid) == owner and st.st_mode & 0o700 == 0o700, folder
    assert stat.S_IMODE(os.stat(host.path("queue")).st_mode) == 0o750

    results = run_checks(host, ["layout", "permissions", "config"])
    assert statuses(results) == {"layout": "fail", "permissions": "ok", "config": "fail"}
    assert results["layout"]["message"].endswith("core/train.py is missing")  # only what fix mode must not do

    again = tc.fix_host(ctx)
    assert again["changed"] is False and again["changes"] == [] and again["errors"] == []
    assert tree_hash(host.root) == after


def test_fix_mode_on_a_healthy_host_changes_nothing(hosts):
    host = hosts()
    host.start_daemon()
    ctx = host.settings()
    skip = (host.path("status"), host.path(".daemon.pid"))
    before = tree_hash(host.base, skip)
    assert tc.fix_host(ctx)["changes"] == []
    assert tree_hash(host.base, skip) == before
