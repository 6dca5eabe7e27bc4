"""Simulated training hosts for the training_health molecule scenario, built on the controller with tests/simtrain.

    python hosts.py build OUT      build the hosts under OUT, write OUT/hosts.json

Each host is a ``simtrain.TrainHost`` (LoRA fine-tuning: the recorded LLaMA-Factory checkpoint listing laid out as
sparse files, its real trainer_state.json, a recorded healthy trainer log, config.json and its lock) with its GPU
(a simrig NVIDIA rig: one RTX 3090 from recorded ``nvidia-smi -q -x``). prepare.yml then copies it INTO its
container and starts the stand-in daemon there, as the service user (nobody). Inside every container:

    /srv/training/          the training host (training_base_dir)
    /opt/simrig/rig/        its GPU rig (bin/nvidia-smi stand-in, sys/, kernel.log)
    /opt/simtrain/meminfo   the simulated /proc/meminfo
    /opt/simtrain/cgroup/   an empty cgroup tree (training_health_cgroup_root): no memory limit but meminfo's

``hosts.json`` gives, per host (= container): the controller-side folders, ``host_vars`` (``TrainHost.host_vars()``
with every path moved into the container; the scenario's static inventory must say the same, which prepare
asserts), the daemon's command line and what the host was set up with.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, os.path.join(REPO, ".collections"))

from simtrain import TrainHost, fixtures  # noqa: E402  (tests/ is not a package on the path by default)
from simtrain.host import NOBODY, write_json  # noqa: E402

from ansible_collections.gpuops.preflight.plugins.module_utils import _training_config  # noqa: E402

BASE = "/srv/training"
RIG = "/opt/simrig/rig"
MEMINFO = "/opt/simtrain/meminfo"
CGROUP = "/opt/simtrain/cgroup"   # an empty cgroup tree: no memory limit but the simulated meminfo's
START_STEP = 1010   # the LoRA checkpoint is at step 1000: the daemon resumed from it


def _translate(value, host):
    """``value`` with the controller paths of ``host`` replaced by their in-container paths."""
    if isinstance(value, dict):
        return {k: _translate(v, host) for k, v in value.items()}
    if isinstance(value, str):
        for here, inside in ((host.base, BASE), (host.rig.path, RIG), (os.path.join(host.sim, "meminfo"), MEMINFO),
                             (os.path.join(host.sim, "cgroup"), CGROUP)):
            if value == here or value.startswith(here + "/"):
                return inside + value[len(here):]
    return value


def _build(out, name):
    host = TrainHost.build(out, name, mode="lora")
    # The lock as training_config_lock would write it on the host itself (its config's path in the container).
    write_json(host.path(".config_lock.json"), _training_config.lock_document(
        host.config(), BASE + "/config.json", time.time()))
    host.give_to_owner()
    return host


def build(out):
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    healthy = _build(out, "training-healthy")
    warn = _build(out, "training-warn")
    shutil.copyfile(str(fixtures.crash_log_path(fixtures.OOM_LOG)), warn.path("logs", "crash.log"))
    os.rmdir(warn.path("queue"))
    warn.give_to_owner()
    # statuses: the host checks that are not ok (a CUDA OOM fails crash_log, a soft check: judged a warning)
    setups = {healthy: {"expect": "passed", "statuses": {}, "created": []},
              warn: {"expect": "warnings", "statuses": {"crash_log": "fail"}, "created": ["queue"],
                     "crash_log": "logs/crash.log", "category": "cuda_oom"}}
    doc = {"base": BASE, "rig": RIG, "meminfo": MEMINFO, "cgroup": CGROUP, "owner": NOBODY, "hosts": {}}
    for host, setup in setups.items():
        name = os.path.basename(host.root)
        doc["hosts"][name] = {
            "base": host.base, "rig": host.rig.path, "meminfo": os.path.join(host.sim, "meminfo"),
            "host_vars": _translate(host.host_vars(), host),
            "daemon": ["/usr/bin/python3", BASE + "/core/training_daemon.py", "--base", BASE, "--start-step",
                       str(START_STEP), "--interval", "1"],
            "setup": setup,
        }
    path = os.path.join(out, "hosts.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, indent=1, sort_keys=True)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("out")
    args = parser.parse_args(argv)
    print(build(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
