"""The url_problem filter: the serving gate's own URL rule (_serving.url_problem) for templates and roles.

The role serving_gate_unit checks its URL variables with it, so a URL the gate would refuse at every start of
the unit is refused when the role runs, in the gate's words, naming the variable.
"""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.gpuops.preflight.plugins.filter import url_problem as plugin
from ansible_collections.gpuops.preflight.plugins.module_utils import _serving

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")
PRESENT = os.path.join(ROOT, "roles", "serving_gate_unit", "tasks", "present.yml")

# taken by the role's former regex (^https?://[^/?#@ ]+(/[^?# ]*)?$), refused by the gate at every unit start
LET_THROUGH = ["http://h:99999", "http://h:0", "http://h:", "http://[::1", "http://h:abc", "http://[1.2.3.4]:8014",
               "http://[::1]x", "http://host/\u00e9", "http://host/a\tb"]
GOOD = ["http://127.0.0.1:8014", "https://[::1]:8443/health", "http://orchestrator.local/ready", "HTTP://host",
        "http://gw.example/%20x"]


def url_problem(*args):
    return plugin.FilterModule().filters()["url_problem"](*args)


@pytest.mark.parametrize("url", LET_THROUGH + ["ftp://x", "http://admin:S3cretPass@h:8014", "http://h/?token=S3cret",
                                               "", " ", None])
def test_a_url_the_gate_refuses_gets_the_gates_own_words(url):
    why = _serving.url_problem(url)
    assert why and url_problem(url) == why
    assert url_problem(url, "serving_gate_unit_bus_url") == "serving_gate_unit_bus_url " + why
    assert "S3cret" not in url_problem(url, "x")


@pytest.mark.parametrize("url", GOOD)
def test_a_url_the_gate_takes_is_no_problem(url):
    assert url_problem(url) == "" and url_problem(url, "serving_gate_unit_orchestrator_url") == ""


def test_a_value_that_is_not_text_is_judged_as_the_text_the_gate_would_read():
    """The drop-in's Environment= line and the module's str option hand the gate a text."""
    assert url_problem(8014) == _serving.url_problem("8014")
    assert "'8014' is not an http:// or https:// URL" in url_problem(8014)


def test_the_plugin_is_documented():
    doc = yaml.safe_load(plugin.DOCUMENTATION)
    assert doc["name"] == "url_problem" and doc["short_description"] and doc["version_added"]
    assert set(doc["options"]) == {"_input", "name"}
    assert isinstance(yaml.safe_load(plugin.EXAMPLES), list)
    assert set(yaml.safe_load(plugin.RETURN)) == {"_value"}


def test_the_unit_role_checks_both_urls_with_it():
    with open(PRESENT) as handle:
        text = handle.read()
    assert "serving_gate_unit_orchestrator_url | gpuops.preflight.url_problem('serving_gate_unit_orchestrator_url')" \
        in text
    assert "serving_gate_unit_bus_url | gpuops.preflight.url_problem('serving_gate_unit_bus_url')" in text
    assert "https?://" not in text  # no rule of its own beside the gate's
