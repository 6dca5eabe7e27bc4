"""The serving gate end to end: a stand-in orchestrator (a real HTTP server), a model store and a
model map laid out in a temp dir, and the gate run in-process (run_gate) or as the CLI."""

from __future__ import annotations

import os

import pytest

from simserve import store as st
from simserve.fixtures import open_tmp, orchestrator  # noqa: F401  # pylint: disable=unused-import

MODELS = st.AGENTS


class Host(object):
    """A serving host's files: ``root`` (the model store), ``map`` (the agent -> model map), ``cache``."""

    def __init__(self, base):
        self.base = str(base)
        self.root = os.path.join(self.base, "store")
        self.map = os.path.join(self.base, "agent_models.json")
        self.cache = os.path.join(self.base, "cache")
        made = st.serving_host(self.base, MODELS)
        assert (made["store_root"], made["model_map"]) == (self.root, self.map)

    @property
    def models(self):
        return sorted(set(m for m, _p in MODELS.values()))

    def env(self, url, **extra):
        env = {"GPU_ORCHESTRATOR_URL": url, "AGENT_MODEL_MAP": self.map, "MODEL_STORE_ROOT": self.root,
               "GATE_TIMEOUT": "10", "GATE_CACHE_DIR": self.cache}
        env.update(extra)
        return env

    def summaries(self):
        return sorted(os.listdir(self.cache)) if os.path.isdir(self.cache) else []


@pytest.fixture
def host(open_tmp):
    return Host(open_tmp)
