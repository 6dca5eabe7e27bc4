"""Benchmark: ``gpuops-preflight gate`` on a ready orchestrator, as systemd runs it before a service.

    .venv/bin/python benchmarks/gate_bench.py                       # 20 process runs, 50 in-process
    .venv/bin/python benchmarks/gate_bench.py --repeat 40 --json benchmarks/results/gate.json

A script, not a test. It starts the stand-in orchestrator (tests/simserve: a real HTTP server on
127.0.0.1, every model already loaded), lays out a model store in a temp dir (three agents, two
models: one sharded safetensors folder of 4 shards, one Hugging Face cache folder), and measures:

* process: the whole command in a fresh interpreter (``python -m gpuops_preflight gate --instance
  crawler``, settings from the environment as a drop-in gives them), from exec to exit, with the
  bytecode caches written (as on an installed host) and, apart, with ``PYTHONDONTWRITEBYTECODE=1``
  and no caches (every module compiled on every start: the worst case);
* floor: ``python -c pass``, the interpreter's own start-up, for comparison;
* in-process: ``run_gate`` alone (settings, the serving_gate family through the host runner, the judge,
  the summary file), and its parts (imports of the package and the collection's module_utils, the
  family, the runner, the plan and the judge with every family they list, measured in a fresh process
  with -X importtime).

Target (issue 12): under 0.5 s for the whole process on a ready orchestrator. Exits 1 when the
median process time is over it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, os.path.join(REPO, "src"))

import simserve  # noqa: E402
from _machine import machine  # noqa: E402
from simserve import store  # noqa: E402

TARGET_S = 0.5


def lay_out(base):
    root = os.path.join(base, "store")
    store.model_dir(os.path.join(root, "org/crawl-7b"), shards=4)
    store.hf_cache_repo(root, "org/tools-3b")
    path = store.model_map(os.path.join(base, "agent_models.json"),
                           {"crawler": ("org/crawl-7b", "org/crawl-7b"), "bus": ("org/crawl-7b", "org/crawl-7b"),
                            "mcp": ("org/tools-3b", "models--org--tools-3b")})
    return root, path


def stats(values):
    values = sorted(values)
    return {"runs": len(values), "median_s": round(statistics.median(values), 4),
            "p90_s": round(values[max(0, int(len(values) * 0.9) - 1)], 4), "min_s": round(values[0], 4),
            "max_s": round(values[-1], 4)}


def clear_bytecode():
    for folder in (os.path.join(REPO, "src"), os.path.join(REPO, "plugins")):
        for path, dirs, _files in os.walk(folder):
            if "__pycache__" in dirs:
                shutil.rmtree(os.path.join(path, "__pycache__"), ignore_errors=True)


def floor_runs(env, repeat):
    """The interpreter alone (python -c pass): what every process start costs before the gate's code."""
    times = []
    for _run in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        times.append(time.perf_counter() - start)
    return stats(times)


def process_runs(env, repeat, cold):
    times = []
    for _run in range(repeat):
        run_env = dict(env)
        if cold:
            clear_bytecode()
            run_env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            run_env.pop("PYTHONDONTWRITEBYTECODE", None)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "gpuops_preflight", "gate", "--instance", "crawler"], env=run_env,
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                              check=False)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit("the gate did not pass (exit %d):\n%s%s" % (proc.returncode, proc.stdout, proc.stderr))
    return stats(times)


def import_times(env):
    """Cumulative import times (s) of the package and the module_utils the gate loads, one fresh process."""
    code = ("from gpuops_preflight import cli, gate, collection; "
            "[collection.module_utils(n) for n in ('_serving_gate', '_host_runner', '_plan', '_summary', '_families')]")
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env, cwd=REPO,
                          stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, universal_newlines=True, check=True)
    out = {}
    for line in proc.stderr.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[1].isdigit():
            name = parts[2].strip()
            if name in ("gpuops_preflight", "gpuops_preflight.cli", "gpuops_preflight.gate",
                        "importlib.metadata") or \
                    name.startswith("ansible_collections.gpuops.preflight.plugins.module_utils._"):
                out[name.replace("ansible_collections.gpuops.preflight.plugins.module_utils.", "")] = \
                    round(int(parts[1]) / 1e6, 4)
    return out


def in_process_runs(env, repeat):
    from gpuops_preflight import gate
    settings = gate.settings_from({"instance": "crawler"}, env)
    times = []
    for _run in range(repeat):
        start = time.perf_counter()
        outcome = gate.run_gate(settings)
        times.append(time.perf_counter() - start)
        assert outcome.exit_code == 0, outcome.lines
    return stats(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="process runs of each kind (default 20)")
    parser.add_argument("--in-process", type=int, default=50, help="in-process runs (default 50)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    base = tempfile.mkdtemp(prefix="gate-bench-")
    os.chmod(base, 0o755)
    try:
        root, model_map = lay_out(base)
        with simserve.SimOrchestrator(models=["org/crawl-7b", "org/tools-3b"], already_ready=True) as sim:
            env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "src"), GPU_ORCHESTRATOR_URL=sim.url,
                       AGENT_MODEL_MAP=model_map, MODEL_STORE_ROOT=root, GATE_TIMEOUT="30",
                       GATE_CACHE_DIR=os.path.join(base, "cache"))
            process_runs(env, 1, cold=False)  # write the bytecode caches once
            results = {
                "interpreter_floor": floor_runs(env, args.repeat),
                "process_compiled": process_runs(env, args.repeat, cold=False),
                "process_no_bytecode": process_runs(env, max(3, args.repeat // 4), cold=True),
            }
            process_runs(env, 1, cold=False)  # the caches back as they were, before what follows
            results.update({
                "in_process_run_gate": in_process_runs(env, args.in_process),
                "imports_s": import_times(env),
                "machine": machine(),
                "target_s": TARGET_S,
            })
    finally:
        shutil.rmtree(base, ignore_errors=True)
    text = json.dumps(results, indent=2, sort_keys=True)
    print(text)
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(text + "\n")
    return 0 if results["process_compiled"]["median_s"] < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
