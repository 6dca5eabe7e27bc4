"""Unit tests of how preflight_plan reads the calling role's argument specs (without the loader's deep copy).

The action plugin is controller code: importing it flips ``ansible.module_utils._internal.is_controller``
for the whole process (see tests/unit/plugins/callback/test_summary_callback.py), so it is imported
inside a fixture that puts the flag back.
"""

from __future__ import annotations

import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
ROLES = sorted(name for name in os.listdir(os.path.join(REPO, "roles"))
               if os.path.exists(os.path.join(REPO, "roles", name, "meta", "argument_specs.yml")))
ANSIBLES_OWN = {"main": {"options": {"from": {"type": "str"}}}}


class Role(object):
    """What the plan reads of a role: its path, and Ansible's own reader for any other file."""

    def __init__(self, path):
        self._role_path = path
        self.asked = 0

    def _get_role_argspecs(self):
        self.asked += 1
        return ANSIBLES_OWN


class Plan(object):
    """The plugin's state role_argspecs uses: the loader."""

    def __init__(self, loader):
        self._loader = loader


@pytest.fixture
def role_argspecs():
    from ansible.module_utils import _internal

    before = _internal.is_controller
    from ansible.parsing.dataloader import DataLoader
    from ansible_collections.gpuops.preflight.plugins.action import preflight_plan

    def read(role):
        return preflight_plan.ActionModule.role_argspecs(Plan(DataLoader()), role)

    read.loader = DataLoader
    yield read
    _internal.is_controller = before


def test_every_role_with_specs_is_found():
    assert "training_health" in ROLES and "preflight" in ROLES


@pytest.mark.parametrize("name", ROLES)
def test_the_role_specs_are_what_the_file_says(role_argspecs, name):
    role = Role(os.path.join(REPO, "roles", name))
    path = os.path.join(role._role_path, "meta", "argument_specs.yml")
    assert role_argspecs(role) == role_argspecs.loader().load_from_file(path)["argument_specs"]
    assert role.asked == 0


def test_reading_twice_gives_the_same_specs(role_argspecs):
    role = Role(os.path.join(REPO, "roles", "training_health"))
    assert role_argspecs(role) == role_argspecs(role)


def test_a_role_without_the_file_is_left_to_ansible(role_argspecs, tmp_path):
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "argument_specs.yaml").write_text("argument_specs: {}\n")
    role = Role(str(tmp_path))
    assert role_argspecs(role) is ANSIBLES_OWN
    assert role.asked == 1


def test_a_file_without_extension_beside_it_is_left_to_ansible(role_argspecs, tmp_path):
    # Ansible reads meta/argument_specs before meta/argument_specs.yml
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "argument_specs").write_text("argument_specs: {}\n")
    (tmp_path / "meta" / "argument_specs.yml").write_text("argument_specs: {}\n")
    role = Role(str(tmp_path))
    assert role_argspecs(role) is ANSIBLES_OWN


@pytest.mark.parametrize("text", ["", "argument_specs:\n", "- a list\n"], ids=["empty", "null", "not-a-mapping"])
def test_a_file_without_specs_gives_none(role_argspecs, tmp_path, text):
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "argument_specs.yml").write_text(text)
    assert role_argspecs(Role(str(tmp_path))) == {}
