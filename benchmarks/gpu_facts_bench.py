"""Module time of the GPU facts modules on simulated rigs (benchmarks/README.md, "gpu_facts_bench").

``rocm_gpu_facts`` on a 12-GPU rig built from the default rocm-smi recording, and
``nvidia_gpu_facts`` on an 8-GPU rig built from the 2x RTX A5000 ``nvidia-smi -q -x`` recording
(an 8-GPU document of 370 KB). The stand-in tools run for real, under coreutils ``timeout``, as
on a host. Two measurements per module:

- warm: ``main()`` in this process (imports done), median and max of ``--repeat`` runs: the time
  the module itself spends (tool call, parsing, sysfs, JSON out);
- cold: a fresh interpreter per run, as AnsiballZ runs a module on a host: the import of the
  module and its module_utils plus the first ``main()`` (the module time), and apart from it what
  is not the module's (importing ``ansible.module_utils.basic``, the interpreter start).

The target (issue 9): under 0.3 s of module time for each (cold, the stricter; exit 1 when over).

    .venv/bin/python benchmarks/gpu_facts_bench.py [--repeat 20] [--json results/gpu-facts.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for extra in (os.path.join(REPO, ".collections"), os.path.join(REPO, "tests")):
    if extra not in sys.path:
        sys.path.insert(0, extra)

from ansible.module_utils.testing import patch_module_args  # noqa: E402

from _machine import machine  # noqa: E402
from simrig import Rig, build_nvidia_rig, scratch_dir  # noqa: E402

MODULES = "ansible_collections.gpuops.preflight.plugins.modules"

CHILD = r"""
import json, sys, time, io, contextlib
t0 = time.perf_counter()
sys.path[:0] = %(paths)r
from ansible.module_utils.testing import patch_module_args
import ansible.module_utils.basic
t1 = time.perf_counter()
import importlib
module = importlib.import_module(%(module)r)
out = io.StringIO()
with patch_module_args(json.loads(%(args)r)), contextlib.redirect_stdout(out):
    try:
        module.main()
    except SystemExit:
        pass
t2 = time.perf_counter()
sys.stderr.write("%%.6f %%.6f\n" %% (t1 - t0, t2 - t1))
"""


def run_warm(module_name, args):
    module = __import__("%s.%s" % (MODULES, module_name), fromlist=["main"])
    out = io.StringIO()
    start = time.perf_counter()
    with patch_module_args(args), contextlib.redirect_stdout(out):
        try:
            module.main()
        except SystemExit:
            pass
    elapsed = time.perf_counter() - start
    return elapsed, json.loads(out.getvalue())


def run_cold(module_name, args):
    code = CHILD % {"paths": [os.path.join(REPO, ".collections")], "module": "%s.%s" % (MODULES, module_name),
                    "args": json.dumps(args)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    ansible_import, module_time = (float(v) for v in done.stderr.strip().splitlines()[-1].split())
    return ansible_import, module_time, wall


def stats(values):
    return {"median_s": round(statistics.median(values), 4), "max_s": round(max(values), 4),
            "min_s": round(min(values), 4), "runs": len(values)}


def measure(name, module_name, args, facts_key, repeat):
    run_warm(module_name, args)  # imports, first-run caches
    warm, result = [], None
    for _n in range(repeat):
        elapsed, result = run_warm(module_name, args)
        warm.append(elapsed)
    cold_ansible, cold_module, cold_wall = [], [], []
    for _n in range(max(3, repeat // 4)):
        ansible_import, module_time, wall = run_cold(module_name, args)
        cold_ansible.append(ansible_import)
        cold_module.append(module_time)
        cold_wall.append(wall)
    gpus = result["ansible_facts"][facts_key]
    return {"case": name, "module": module_name, "gpus": len(gpus),
            "health": sorted(set(g["health"] for g in gpus)),
            "warm_main": stats(warm), "cold_module": stats(cold_module),
            "cold_ansible_import": stats(cold_ansible), "cold_process_wall": stats(cold_wall)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", help="write the measurements here")
    opts = parser.parse_args(argv)
    if opts.repeat < 1:
        parser.error("--repeat must be at least 1")
    work = scratch_dir("gpu-facts-bench-")
    try:
        amd = Rig.build(work, "rig-amd12", gpus=12, step_files=False)
        _nvrig, nv = build_nvidia_rig(work, "rig-nv8", gpus=8, step_files=False)
        cases = [
            measure("rocm_gpu_facts, 12-GPU rig (%s)" % amd.state["fixture"], "rocm_gpu_facts",
                    {"rocm_smi": amd.rocm_smi, "sysfs_root": amd.sys_root}, "rocm_gpus", opts.repeat),
            measure("nvidia_gpu_facts, 8-GPU rig (%s)" % nv.state["fixture"], "nvidia_gpu_facts",
                    nv.facts_args(), "nvidia_gpus", opts.repeat),
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {"machine": machine(), "target_s": 0.3, "cases": cases}
    for case in cases:
        print("%s: %d GPUs (%s)\n  module time, warm main(): median %.3f s, max %.3f s\n"
              "  module time, cold (import of the module and its module_utils + first main()): median %.3f s, "
              "max %.3f s\n  not module time: importing ansible.module_utils.basic %.3f s, whole process %.3f s"
              % (case["case"], case["gpus"], "/".join(case["health"]), case["warm_main"]["median_s"],
                 case["warm_main"]["max_s"], case["cold_module"]["median_s"], case["cold_module"]["max_s"],
                 case["cold_ansible_import"]["median_s"], case["cold_process_wall"]["median_s"]))
    print("machine: %(cpus)s CPUs, %(cpu)s, Python %(python)s, Linux %(kernel)s, load average %(loadavg)s"
          % report["machine"])
    if opts.json:
        with open(opts.json, "w") as handle:
            json.dump(report, handle, indent=1)
    over = [c["case"] for c in cases if c["cold_module"]["median_s"] >= report["target_s"]]
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
