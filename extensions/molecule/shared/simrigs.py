"""Simulated rigs for the molecule scenarios, built on the controller with tests/simrig.

    python simrigs.py build LAYOUT OUT     build LAYOUT's rigs under OUT, write OUT/rigs.json

Each rig is built with ``tests/simrig`` (recorded real GPU tool output, sysfs tree, ramdisk,
kernel log, homes with GPU caches) and then copied INTO its container by the scenario's prepare
(``shared/prepare_rigs.yml``). Inside every container the layout is the same:

    /opt/simrig/rig/    the rig folder (bin/rocm-smi, bin/nvidia-smi on an NVIDIA rig, sys/, kernel.log,
                        home/<user>/, precious/<user>/)
    /dev/shm/prng/      the rig's ramdisk (step<N>/<file>): a real tmpfs, the product's default root

``rigs.json`` gives, per host (= container = rig name): the controller-side rig and ramdisk
folders (the reference copy the verify compares with), ``host_vars`` (``Rig.host_vars()`` with
every path moved to where it lies inside the container; the scenario's static inventory must say
the same, which prepare asserts), and what the scenario set up (caches, perf levels), also with
in-container paths.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests"))

from simrig import NvidiaGpus, Rig, add_nvidia  # noqa: E402  (tests/ is not a package on the path by default)

RIG_DIR = "/opt/simrig/rig"      # where the rig folder lies inside its container
RAMDISK_DIR = "/dev/shm/prng"    # where its ramdisk lies inside its container (tmpfs)
# Controller-only keys of Rig.host_vars(): the containers are reached with the podman connection
# and run the image's /usr/bin/python3 (both set in the scenario inventory).
CONTROLLER_ONLY = ("ansible_connection", "ansible_python_interpreter")


def _translate(value, rig):
    """``value`` with the controller paths of ``rig`` replaced by their in-container paths."""
    if isinstance(value, dict):
        return {_translate(k, rig): _translate(v, rig) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_translate(v, rig) for v in value]
    if isinstance(value, str):
        for base, inside in ((rig.ramdisk_root, RAMDISK_DIR), (rig.path, RIG_DIR)):
            if value == base or value.startswith(base + "/"):
                return inside + value[len(base):]
    return value


def _build(out, name, **kw):
    # ramdisk="rig": the ramdisk is laid out in <rig>/ramdisk on the controller; prepare puts it on
    # the container's /dev/shm (tmpfs), so no /dev/shm folder of the controller is used.
    return Rig.build(out, name, ramdisk="rig", **kw)


# The recorded NVRM lines of an application fault: Xid 43 twice on one GPU (docs/KERNEL_LOG.md).
XID43 = "akash-support-244_multi_gpu_535.183.01_dmesg-T_xid43_xid31_xid94.txt"


def layout_preflight(out):
    """Two AMD rigs of 12 GPUs: one healthy; one whose GPU 10 (excluded in the inventory) logs real SMU
    0xFFFFFFFF failures, with GPU 7 on the watchlist: warnings only, the preflight passes. And an NVIDIA
    rig of 4 GPUs (the stand-in nvidia-smi replaying the recorded -q -x of RTX A5000s) whose GPU 1 logs
    the recorded application Xid 43 twice: a kernel_log warning with its count, the GPU stays usable."""
    healthy = _build(out, "preflight-healthy")
    warn = _build(out, "preflight-warn", excluded_gpus=[10], gpu_watchlist=[7])
    warn.smu_failure(10)
    nv_rig = _build(out, "preflight-nvidia", gpus=0)
    nvidia = add_nvidia(nv_rig, gpus=4)
    nvidia.xid(1, XID43)
    return {
        healthy: {"expect": "passed", "tool": "rocm-smi"},
        warn: {"expect": "warnings", "tool": "rocm-smi", "excluded_gpu": 10, "excluded_bdf": warn.gpu(10).bdf,
               "watch_gpu": 7},
        nv_rig: {"expect": "warnings", "tool": "nvidia-smi", "xid": 43, "xid_count": 2, "xid_gpu": 1,
                 "xid_bdf": nvidia.gpu(1)["bdf"]},
    }


def layout_cleanup(out):
    """Two rigs after a step: GPU caches (hip_*, comgr_cache, miopen, .config/miopen) in every home,
    with symlinks in .cache that point OUT of the home at precious files; cleanup-a has two users,
    cleanup-b has GPUs 0 and 5 left at perf level 'manual' and resets clocks."""
    a = _build(out, "cleanup-a", users=("trainer", "analyst"))
    b = _build(out, "cleanup-b", users=("trainer",))
    out_a = {"caches": {user: a.add_caches(user) for user in ("trainer", "analyst")}, "reset_clocks": False,
             "manual_perf": []}
    out_b = {"caches": {"trainer": b.add_caches("trainer")}, "reset_clocks": True, "manual_perf": []}
    for index in (0, 5):
        b.set_perf_level(index, "manual")
        out_b["manual_perf"].append(os.path.join(b.sys_root, b.gpu(index).dev, "power_dpm_force_performance_level"))
    return {a: out_a, b: out_b}


LAYOUTS = {"preflight": layout_preflight, "cleanup": layout_cleanup}


def build(layout, out):
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    rigs = LAYOUTS[layout](out)
    doc = {"layout": layout, "rig_dir": RIG_DIR, "ramdisk_dir": RAMDISK_DIR, "hosts": {}}
    for rig, extra in rigs.items():
        host_vars = {k: v for k, v in rig.host_vars().items() if k not in CONTROLLER_ONLY}
        doc["hosts"][rig.name] = {
            "rig": rig.path,
            "ramdisk": rig.ramdisk_root,
            "host_vars": _translate(host_vars, rig),
            "preflight_steps": _translate({str(k): v for k, v in rig.steps.items()}, rig),
            "gpus": len(rig.gpus) + (len(NvidiaGpus(rig).gpus) if rig.state.get("nvidia") else 0),
            "setup": _translate(extra, rig),
        }
    path = os.path.join(out, "rigs.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, indent=1, sort_keys=True)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("layout", choices=sorted(LAYOUTS))
    b.add_argument("out")
    args = parser.parse_args(argv)
    print(build(args.layout, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
