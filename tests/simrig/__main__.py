"""``PYTHONPATH=tests python -m simrig ...``: build simulated rigs from the command line.

  build --scenario demo --out DIR        build a catalogue scenario; prints the inventory path
  build --rig NAME --out DIR [options]   one rig (--gpus, --fixture, --amd-smi, --bmc, --drm-order)
        (--fixture, --amd-smi, --bmc, --drm-order, --ramdisk shm also apply to a scenario's rigs)
  list                                   the scenario catalogue
  fault RIG_DIR METHOD [ARG ...] [K=V]   call a Rig fault method on a built rig, e.g.
                                         fault DIR/rig-6600b smu_failure 4 age_s=60
                                         (nvidia.METHOD: on its NVIDIA GPUs, e.g. nvidia.ecc_error 2)
  show RIG_DIR                           the rig's GPUs (index, bdf, card, gpu_id, state) as JSON
  destroy DIR                            remove the rigs under DIR (or DIR itself, a rig) and their
                                         /dev/shm ramdisks; then any orphaned simrig ramdisk
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

from . import scenarios
from .cluster import build_cluster
from .rig import STATE_FILE, Rig, collect_orphans

FAULTS = ("lose_gpu", "vanish_from_tool", "heal_gpu", "smu_failure", "kernel_lines", "set_tool_mode",
          "set_temperature", "set_busy", "set_vram_used", "set_perf_level", "add_vram_holder",
          "remove_vram_holder", "suspend_gpu", "resume_gpu", "write_ramdisk", "remove_ramdisk_file",
          "corrupt_json", "symlink_out", "add_caches", "break_resetclocks", "reset_tool", "clear_calls",
          "set_inventory")
# NvidiaGpus methods (simrig.nvidia), as nvidia.<method>
NVIDIA_FAULTS = ("lose_gpu", "vanish_gpu", "answer_err", "ecc_error", "remap_pending", "remap_failure", "lock_clocks", "unbind",
                 "heal_gpu", "add_process", "remove_process", "driver_down", "set_mode", "reset_tool", "xid",
                 "add_cuda_caches", "break_clock_reset")


def _value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m simrig", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build a scenario or a single rig")
    what = build.add_mutually_exclusive_group(required=True)
    what.add_argument("--scenario", choices=scenarios.names())
    what.add_argument("--rig", metavar="NAME")
    build.add_argument("--out", required=True)
    build.add_argument("--gpus", type=int, default=12)
    build.add_argument("--fixture")
    build.add_argument("--amd-smi", choices=("list", "wrapped"))
    build.add_argument("--bmc", action="store_true")
    build.add_argument("--drm-order", default="bdf", choices=("bdf", "reverse"))
    build.add_argument("--ramdisk", help='"shm" for a /dev/shm folder, or a path')
    build.add_argument("--json", action="store_true", help="print the scenario as JSON instead of the path")
    sub.add_parser("list", help="the scenario catalogue")
    fault = sub.add_parser("fault", help="inject a fault into a built rig")
    fault.add_argument("rig_dir")
    fault.add_argument("method", choices=FAULTS + tuple("nvidia." + name for name in NVIDIA_FAULTS))
    fault.add_argument("args", nargs="*", help="positional values (JSON or text), then key=value")
    show = sub.add_parser("show", help="describe a built rig")
    show.add_argument("rig_dir")
    destroy = sub.add_parser("destroy", help="remove built rigs and their /dev/shm ramdisks")
    destroy.add_argument("dir")
    args = parser.parse_args(argv)

    if args.command == "destroy":
        folders = [args.dir] + [os.path.join(args.dir, n) for n in sorted(os.listdir(args.dir))] \
            if os.path.isdir(args.dir) else []
        for folder in folders:
            if os.path.isfile(os.path.join(folder, STATE_FILE)):
                Rig.load(folder).destroy()
                print("removed %s" % folder)
        shutil.rmtree(args.dir, ignore_errors=True)
        for folder in collect_orphans():
            print("removed orphaned ramdisk %s" % folder)
        return 0

    if args.command == "list":
        for name in scenarios.names():
            print("%-26s %s" % (name, scenarios.describe(name)))
        return 0
    if args.command == "build":
        kw = {"fixture": args.fixture, "amd_smi": args.amd_smi, "ramdisk": args.ramdisk,
              "bmc": args.bmc or None, "drm_order": None if args.drm_order == "bdf" else args.drm_order}
        kw = {k: v for k, v in kw.items() if v}
        if args.scenario:
            result = scenarios.build_scenario(args.scenario, args.out, **kw)
            print(json.dumps(result.as_dict(), indent=2) if args.json else result.inventory)
            return 0
        kw["gpus"] = args.gpus
        cluster = build_cluster(args.out, {args.rig: kw})
        print(cluster.write_inventory())
        return 0
    rig = Rig.load(args.rig_dir)
    if args.command == "show":
        keys = ("index", "bdf", "card", "node", "gpu_id", "lost", "vanished", "suspended", "temp_edge")
        gpus = [dict((k, g.as_dict()[k]) for k in keys) for g in rig.gpus]
        print(json.dumps({"name": rig.name, "path": rig.path, "host_vars": rig.host_vars(), "gpus": gpus}, indent=2))
        return 0
    positional, keywords = [], {}
    for item in args.args:
        key, sep, value = item.partition("=")
        if sep and key.isidentifier():
            keywords[key] = _value(value)
        else:
            positional.append(_value(item))
    if args.method.startswith("nvidia."):
        from .nvidia import NvidiaGpus
        result = getattr(NvidiaGpus(rig), args.method[len("nvidia."):])(*positional, **keywords)
        result = result if isinstance(result, (list, str)) else None
    else:
        result = getattr(rig, args.method)(*positional, **keywords)
    if isinstance(result, (list, str)):
        print(json.dumps(result, indent=2) if isinstance(result, list) else result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
