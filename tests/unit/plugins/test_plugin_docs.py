"""Every module's DOCUMENTATION, EXAMPLES and RETURN is YAML of the right shape, in the unit stage.

ansible-doc and the sanity stage (validate-modules, yamllint) check far more, but minutes later; a
stray ": " in a plain scalar breaks ansible-doc for the module and is caught here in a second.
"""

from __future__ import annotations

import importlib
import os

import pytest
import yaml

MODULES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "plugins", "modules")
NAMES = sorted(name[:-3] for name in os.listdir(MODULES) if name.endswith(".py") and not name.startswith("_"))


@pytest.mark.parametrize("name", NAMES)
def test_module_docs_parse(name):
    module = importlib.import_module("ansible_collections.gpuops.preflight.plugins.modules.%s" % name)
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert isinstance(doc, dict) and doc["module"] == name and doc["short_description"]
    assert isinstance(yaml.safe_load(module.EXAMPLES), list)
    returned = yaml.safe_load(module.RETURN)
    assert returned is None or isinstance(returned, dict)
