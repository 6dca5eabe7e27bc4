"""SSH test hosts for gpuops.preflight: simulated rigs (tests/simrig) behind real sshd's, one Linux
network namespace each, on link-local addresses only this machine can reach.

Library (``from cluster import SshCluster``; tests/ must be on sys.path, as tests/conftest.py does):

    cl = SshCluster.up(8, gpus=12)        # hosts rig01..rig08, inventory at cl.inventory
    cl["rig03"].rig.set_tool_mode("hang")  # fault injection through simrig
    cl["rig05"].kill_sshd()                # the host drops off (sshd and every session die)
    cl.heal()                              # undo every fault, sshd back, masters closed
    cl.down()                              # nothing left: processes, namespaces, veths, folders

    from cluster import playbook
    run = playbook.playbook(cl.inventory, "preflight", step=3)   # run.rc, run.summary, run.elapsed
    ping = playbook.adhoc(cl.inventory, "ping")

Command line: ``scripts/testcluster up N [--dir D]``, ``down [--dir D] [--all]``, ``status``.
Fixtures for pytest: tests/cluster/conftest.py (``ssh_cluster``, module scoped, healed per test).
"""

from __future__ import annotations

from . import netns, playbook
from .hosts import (DEFAULT_CLI_DIR, REMOTE_PYTHON, ClusterError, ExitGuard, SshCluster, SshHost, collect_stale,
                    default_root, environment_problem, teardown_dir)
from .netns import PREFIX, REGISTRY_DIR

__all__ = [
    "ClusterError", "DEFAULT_CLI_DIR", "ExitGuard", "PREFIX", "REGISTRY_DIR", "REMOTE_PYTHON", "SshCluster",
    "SshHost", "collect_stale", "default_root", "environment_problem", "netns", "playbook", "teardown_dir",
]
