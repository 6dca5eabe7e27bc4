"""Find what a run needs, without relying on the caller's environment or current folder.

- ``ansible-playbook`` (and ``ansible-inventory``) beside this interpreter: a venv's Python runs
  the venv's Ansible even when the venv is not activated.
- The collection: this clone when the package runs from it (editable install; every run links
  it into a private collections folder), else an installed ``gpuops.preflight`` on the
  standard collection paths, ``ANSIBLE_COLLECTIONS_PATH`` or ``sys.path``.
- ansible-runner, importable by this interpreter.

Nothing here imports Ansible or ansible-runner, so the package imports without them.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import sysconfig
from typing import NamedTuple

NAMESPACE, NAME = "gpuops", "preflight"
DEFAULT_COLLECTIONS_PATHS = ("~/.ansible/collections", "/usr/share/ansible/collections")
# The oldest ansible-runner the bridge runs with (pyproject.toml's dependency): the run passes options of 2.4.
MIN_RUNNER = (2, 4)


class IntegrationUnavailable(RuntimeError):
    """ansible-runner, ansible-playbook or the collection is missing; the message says which."""


class Integration(NamedTuple):
    """What a bridge run needs (a tuple, not a dataclass: the local commands that import this module on a
    host start faster without dataclasses)."""
    python: str
    playbook_bin: str
    inventory_bin: str
    collection_root: str
    # The folder holding ansible_collections/gpuops/preflight; None for a clone (linked per run).
    collections_dir: str | None
    ansible_cfg: str | None

    @property
    def from_clone(self) -> bool:
        return self.collections_dir is None


def _is_collection(root: str) -> bool:
    """A gpuops.preflight collection: a clone (galaxy.yml) or an installed copy (MANIFEST.json)."""
    if not os.path.isfile(os.path.join(root, "playbooks", "preflight.yml")):
        return False
    if os.path.isfile(os.path.join(root, "MANIFEST.json")):
        return True
    try:
        with open(os.path.join(root, "galaxy.yml"), encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return False
    return bool(re.search(r"^namespace:\s*['\"]?%s\b" % NAMESPACE, text, re.M)
                and re.search(r"^name:\s*['\"]?%s\b" % NAME, text, re.M))


def clone_root() -> str | None:
    """The repository root when this package runs from a clone (src/gpuops_preflight/ inside it)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return root if _is_collection(root) else None


def collection_search_path() -> list[str]:
    """Where an installed collection may be: ANSIBLE_COLLECTIONS_PATH, the defaults, sys.path."""
    paths: list[str] = []
    for var in ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS"):
        paths.extend(p for p in os.environ.get(var, "").split(os.pathsep) if p)
    paths.extend(DEFAULT_COLLECTIONS_PATHS)
    paths.extend(p for p in sys.path if p)
    return [os.path.expanduser(p) for p in paths]


def installed_collection() -> tuple[str, str] | None:
    """(collection root, folder holding ansible_collections) of an installed gpuops.preflight."""
    for base in collection_search_path():
        # Ansible accepts both the folder above ansible_collections/ and that folder itself.
        holder = os.path.dirname(base) if os.path.basename(base.rstrip("/")) == "ansible_collections" else base
        root = os.path.join(holder, "ansible_collections", NAMESPACE, NAME)
        if _is_collection(root):
            return root, holder
    return None


def collection_root() -> str:
    """The collection this package runs with: the clone it lives in, else an installed copy."""
    return clone_root() or _installed()[0]


def _installed() -> tuple[str, str]:
    found = installed_collection()
    if found is None:
        raise IntegrationUnavailable(
            "the gpuops.preflight collection is not installed (ansible-galaxy collection install "
            "gpuops.preflight, or set ANSIBLE_COLLECTIONS_PATH); searched: %s"
            % ", ".join(collection_search_path()[:6]))
    return found


def _beside_interpreter(name: str) -> str | None:
    """An executable next to sys.executable (not resolved: a venv's bin/python is a link), else in
    this interpreter's scripts folder (user installs)."""
    for folder in (os.path.dirname(sys.executable), sysconfig.get_path("scripts")):
        path = os.path.join(folder or "", name)
        if folder and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def runner_version_problem(version: str | None) -> str | None:
    """Why ansible-runner ``version`` cannot run the bridge (it passes options 2.4 added, and reads its events
    as 2.4 sends them); None when it can, or when no version is installed with it (a copy without package
    metadata: as before, it is tried). A version given but not readable is not assumed to be new enough."""
    if version is None:
        return None
    numbers = re.match(r"(\d+)\.(\d+)", version)
    if numbers and tuple(int(n) for n in numbers.groups()) >= MIN_RUNNER:
        return None
    return ("ansible-runner %s is installed for %s; the bridge needs %s or newer (pip install 'ansible-runner>=%s')"
            % (version, sys.executable, _dotted(MIN_RUNNER), _dotted(MIN_RUNNER)))


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(n) for n in version)


def _runner_version() -> str | None:
    # imported here: importlib.metadata costs ~20 ms, and the watchdog's stall check never asks
    import importlib.metadata
    try:
        return importlib.metadata.version("ansible-runner")
    except importlib.metadata.PackageNotFoundError:
        return None


def find_integration() -> Integration:
    """Everything a run needs, or IntegrationUnavailable saying what is missing."""
    if importlib.util.find_spec("ansible_runner") is None:
        raise IntegrationUnavailable("ansible-runner is not installed for %s (pip install ansible-runner)"
                                     % sys.executable)
    problem = runner_version_problem(_runner_version())
    if problem:
        raise IntegrationUnavailable(problem)
    playbook = _beside_interpreter("ansible-playbook")
    inventory = _beside_interpreter("ansible-inventory")
    if not playbook or not inventory:
        raise IntegrationUnavailable("ansible-playbook is not installed beside %s (pip install ansible-core)"
                                     % sys.executable)
    root, holder = clone_root(), None
    if root is None:
        root, holder = _installed()
    cfg = os.path.join(root, "ansible.cfg")
    return Integration(python=sys.executable, playbook_bin=playbook, inventory_bin=inventory,
                       collection_root=root, collections_dir=holder,
                       ansible_cfg=cfg if os.path.isfile(cfg) else None)


def availability() -> tuple[bool, str | None]:
    """(available, reason when not)."""
    try:
        find_integration()
    except IntegrationUnavailable as exc:
        return False, str(exc)
    return True, None


def link_collection(integration: Integration, private_dir: str) -> str:
    """The collections folder for one run: the installed one, or for a clone a private folder with
    ansible_collections/gpuops/preflight -> the clone (removed with the run's folder)."""
    if integration.collections_dir is not None:
        return integration.collections_dir
    holder = os.path.join(private_dir, "collections")
    parent = os.path.join(holder, "ansible_collections", NAMESPACE)
    os.makedirs(parent, exist_ok=True)
    os.symlink(integration.collection_root, os.path.join(parent, NAME))
    return holder
