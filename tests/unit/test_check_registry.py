"""A check is its declaration, its evaluation and its words: nothing else needs to know it.

Everything that lists checks either reads the registry at run time (the node modules' argument
spec, the plan, the judge, the operator codes) or is generated from it by scripts/sync-checks
(module DOCUMENTATION, role argument specs, the tables in docs/CHECKS.md), which this test holds
to the registry.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shutil

import pytest
import yaml

from ansible_collections.gpuops.preflight.plugins.module_utils import (
    _checks, _families, _host_runner, _options, _plan, _preflight, _summary)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def load_sync():
    loader = importlib.machinery.SourceFileLoader("sync_checks", os.path.join(ROOT, "scripts", "sync_checks.py"))
    spec = importlib.util.spec_from_loader("sync_checks", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


SYNC = load_sync()


def test_every_generated_block_matches_the_registry():
    stale = SYNC.sync(ROOT, _families.families(), check=True)
    assert stale == [], "out of date with the check registry: %s; run scripts/sync-checks" % ", ".join(stale)


def copy_targets(tmp_path, families):
    for path in set(target[0] for target in SYNC.targets(families)):
        os.makedirs(str(tmp_path / os.path.dirname(path)), exist_ok=True)
        shutil.copy(os.path.join(ROOT, path), str(tmp_path / path))


def documentation(path):
    text = open(path).read()
    return yaml.safe_load(text.split('DOCUMENTATION = r"""', 1)[1].split('"""', 1)[0])


def dummy_evaluate(ctx, spec):
    value = ctx.value("dummy")
    return [_checks.problem(spec.name, spec.fail_status, "dummy saw %s" % value, spec.fix)], "never"


@pytest.fixture
def throwaway(monkeypatch):
    """The preflight family plus one dummy check, declared in one place, registered in _families."""
    dummy = _checks.CheckSpec("dummy_check", _checks.SOFT, 7, "A throwaway check nothing else knows.",
                              "Nothing to fix: it is a test.", "DUMMY_CHECKED", "Dummy",
                              needs=("dummy",), evaluate=dummy_evaluate)
    base = _preflight.FAMILY
    dummy_collector = _host_runner.Collector("dummy", lambda ctx, deadline: 42, lambda params: "the dummy collector")
    collectors = dict(base.collectors, dummy=dummy_collector)
    family = _checks.Family(base.kind, base.word, _checks.registry(*(list(base.checks.values()) + [dummy])),
                            collectors, base.node_module, base.stats_key, base.file_prefix, base.option_prefix)
    monkeypatch.setitem(_families._LOADED, base.kind, family)
    return family


def test_a_new_check_reaches_every_list_from_its_declaration_alone(tmp_path, throwaway):
    copy_targets(tmp_path, _families.families())
    assert sorted(SYNC.sync(str(tmp_path), _families.families())) == sorted(
        ["docs/CHECKS.md", "plugins/modules/node_preflight.py", "roles/preflight/meta/argument_specs.yml"])
    # the node module's DOCUMENTATION
    options = documentation(str(tmp_path / "plugins/modules/node_preflight.py"))["options"]
    assert "dummy_check" in options["checks"]["choices"] and "dummy_check" in options["checks"]["default"]
    assert "C(dummy_check) 7" in " ".join(options["timeouts"]["description"])
    # the role's argument specs
    specs = yaml.safe_load(open(str(tmp_path / "roles/preflight/meta/argument_specs.yml")))
    role_options = specs["argument_specs"]["main"]["options"]
    assert "dummy_check" in " ".join(role_options["preflight_skip"]["description"])
    assert "dummy_check 7" in " ".join(role_options["preflight_timeouts"]["description"])
    # the docs' check table
    assert ("| `dummy_check` | soft | 7 s | `DUMMY_CHECKED` | A throwaway check nothing else knows. |"
            in open(str(tmp_path / "docs/CHECKS.md")).read())
    # the CLI's operator codes and labels
    assert _families.code("dummy_check") == "DUMMY_CHECKED" and _families.label("dummy_check") == "Dummy"
    # the node module's argument spec, the plan and the judge
    assert "dummy_check" in _options.argument_spec(throwaway)["checks"]["choices"]
    plan = _plan.build_plan("preflight", "2.5", skip=["kernel_log"], timeouts={"dummy_check": 9}, now=1.0)
    assert "dummy_check" in plan["host_checks"] and plan["timeouts"] == {"dummy_check": 9}
    result = _host_runner.run(throwaway, None, {"step": "2.5", "checks": ["dummy_check"], "timeouts": {}})
    assert result["checks"]["dummy_check"]["problems"][0]["message"] == "dummy saw 42"
    assert result["checks"]["ramdisk"]["status"] == "skipped"
    summary = _summary.build_summary(plan, [("rig", "rig", result)], finished=2.0)
    assert [(w["check"], w["message"]) for w in summary["warnings"]] == [("dummy_check", "rig: dummy saw 42")]
    assert summary["step"] == 2.5 and not summary["blocked"]


def test_a_new_family_is_told_the_one_place_still_to_edit(tmp_path, monkeypatch):
    base = _preflight.FAMILY
    family = _checks.Family("throwaway", "Throwaway", base.checks, base.collectors, base.node_module,
                            "gpuops_throwaway", "throwaway", base.option_prefix)
    families = dict(_families.families(), throwaway=family)
    copy_targets(tmp_path, families)
    with pytest.raises(ValueError) as err:
        SYNC.sync(str(tmp_path), families)
    assert str(err.value).startswith("docs/CHECKS.md: no generated block 'checks of throwaway'")
    assert "<!-- BEGIN generated by scripts/sync-checks from the check registry: checks of throwaway -->" in str(err.value)
