"""Summary folders for the history and HTML report tests, built from real summary documents.

tests/report/fixtures/summaries/*.json were written by the real playbooks on simulated rigs
(SOURCES.md there); a series is made of copies of them with their times moved, so every run
in a test folder is a document the collection really produces.
"""

from __future__ import annotations

import copy
import datetime
import json
import pathlib

from gpuops_preflight import collection

SUMMARIES = pathlib.Path(__file__).resolve().parent / "fixtures" / "summaries"
# 2026-11-30T00:00:00Z: the first run of every series; runs are an hour apart.
START = 1795996800.0
HOUR = 3600.0


def fixture(name: str) -> dict:
    with open(SUMMARIES / ("%s.json" % name)) as handle:
        return json.load(handle)


def iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat()


def write_run(folder: pathlib.Path, document: dict, epoch: float) -> pathlib.Path:
    """One summary file, finished at ``epoch``, written by the collection's own writer (_summary.write_summary:
    the family's file name, <prefix>[_step<N>]_<stamp>.json, and its format); nothing is pruned."""
    document = copy.deepcopy(document)
    document["started_at"] = iso(epoch - document.get("duration_s", 1.0))
    document["finished_at"] = iso(epoch)
    return pathlib.Path(collection.module_utils("_summary").write_summary(document, str(folder), keep=0, now=epoch))


def write_series(folder: pathlib.Path, names: list, start: float = START, step: float = HOUR) -> list:
    """Runs ``names[i]`` (a fixture name or a document) at start + i * step; returns their epochs."""
    folder.mkdir(parents=True, exist_ok=True)
    epochs = []
    for number, name in enumerate(names):
        document = fixture(name) if isinstance(name, str) else name
        epoch = start + number * step
        write_run(folder, document, epoch)
        epochs.append(epoch)
    return epochs


# Every 4th run of 20 (3, 7, 11, 15, 19) finds GPU 4 of rig-6600 lost with SMU failures; the other
# runs are the demo: rig-6600 healthy, rig-6600b with GPU 10 lost but excluded, GPU 7 watchlisted.
SMU_EVERY_FOURTH = ["smu_failure" if n % 4 == 3 else "demo" for n in range(20)]
