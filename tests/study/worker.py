"""One worker process of the study tests: open the study (and run trials) when told to go.

argv[1] is a JSON object: ``url``, ``name``, ``out`` (where the result is written), and optionally
``trials`` (how many to run), ``warm_start`` (default true), ``timeout``. It prints ``ready`` once
Optuna is imported and waits for a line on stdin before opening the study, so several workers open
it at the same moment.
"""

from __future__ import annotations

import json
import os
import sys

import optuna

from gpuops_preflight import studies


def objective(trial):
    x = trial.suggest_float("x", -10.0, 10.0)
    k = trial.suggest_int("k", 1, 5)
    EVALUATED.append({"number": trial.number, "params": {"x": x, "k": k}})
    return (x - 2.0) ** 2 + k


EVALUATED: list[dict] = []


def main() -> int:
    spec = json.loads(sys.argv[1])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print("ready", flush=True)
    sys.stdin.readline()
    study = studies.open_study(spec["name"], storage=spec["url"], warm_start=spec.get("warm_start", True),
                               timeout=spec.get("timeout", 60))
    if spec.get("trials"):
        study.optimize(objective, n_trials=spec["trials"])
    with open(spec["out"], "w", encoding="utf-8") as handle:
        json.dump({"pid": os.getpid(), "evaluated": EVALUATED}, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
