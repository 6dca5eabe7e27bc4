"""The collection's own code, for the package: one implementation of every check, judge and constant.

The package never re-implements what the collection's ``plugins/module_utils`` does (the check
registries, the judge, the summary and its verdict lines, time formatting, the host checks run
locally by ``--local`` and the gates). ``module_utils("_summary")`` imports
``ansible_collections.gpuops.preflight.plugins.module_utils._summary`` from the collection this
package runs with (``locate``: the clone it lives in, else an installed copy), or from the
package's own bundle (what the ``host_tool`` role lays down on a host: ``use_bundled()``, or the
environment variable ``GPUOPS_PREFLIGHT_BUNDLED=1``, which its ``gpuops-preflight-local`` wrapper sets).

Those modules are standard library only, so importing them needs neither Ansible nor
ansible-runner. ``LocalModule`` is the small part of ``AnsibleModule`` they use (run a command,
find a binary, check mode), for running host checks on this machine without Ansible.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from . import locate

PACKAGE = "ansible_collections.%s.%s.plugins.module_utils" % (locate.NAMESPACE, locate.NAME)
# "1": the collection's module_utils are importable as they are (sys.path holds a bundle of them).
BUNDLED_ENV = "GPUOPS_PREFLIGHT_BUNDLED"
_LOCK = threading.Lock()
_STATE: dict[str, Any] = {"ready": False, "bundled": False}


def use_bundled() -> None:
    """The collection's module_utils are importable as they are (a zipapp bundles them)."""
    _STATE["bundled"] = True


def _holder_of(root: str) -> str:
    """A folder holding ansible_collections/gpuops/preflight -> ``root``: for an installed
    collection its own, for a clone the ``.collections`` link that scripts/setup makes, else a
    link in this user's private run folder."""
    parts = os.path.normpath(root).split(os.sep)
    if parts[-3:-2] == ["ansible_collections"] and parts[-2:] == [locate.NAMESPACE, locate.NAME]:
        return os.sep.join(parts[:-3]) or os.sep
    made = os.path.join(root, ".collections")
    if os.path.realpath(os.path.join(made, "ansible_collections", locate.NAMESPACE, locate.NAME)) == os.path.realpath(root):
        return made
    from . import workdir  # late: only a clone without scripts/setup needs a link of its own

    holder = os.path.join(workdir.base_dir(), "collection-link")
    link = os.path.join(holder, "ansible_collections", locate.NAMESPACE, locate.NAME)
    if os.path.realpath(link) != os.path.realpath(root):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        temp = "%s.%d" % (link, os.getpid())
        os.symlink(root, temp)
        os.replace(temp, link)
        # a finder may have listed the folder before the link was there (the only case that needs it:
        # invalidating costs an import of importlib.metadata on every start)
        importlib.invalidate_caches()
    return holder


def _prepare() -> None:
    with _LOCK:
        if _STATE["ready"]:
            return
        if os.environ.get(BUNDLED_ENV) == "1":
            _STATE["bundled"] = True
        if not _STATE["bundled"]:
            root = locate.collection_root()
            holder = _holder_of(root)
            if holder not in sys.path:
                sys.path.insert(0, holder)
        _STATE["ready"] = True


def module_utils(name: str) -> ModuleType:
    """The collection's ``plugins/module_utils/<name>`` module (e.g. ``"_summary"``)."""
    _prepare()
    try:
        return importlib.import_module("%s.%s" % (PACKAGE, name))
    except ImportError as exc:
        raise locate.IntegrationUnavailable("cannot import the collection's %s: %s" % (name, exc)) from exc


class LocalModule:
    """What the collection's host code needs of ``AnsibleModule``, on this machine, without Ansible."""

    def __init__(self, check_mode: bool = False, params: Mapping[str, Any] | None = None) -> None:
        self.check_mode = check_mode
        self.params = dict(params or {})
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def get_bin_path(self, name: str, required: bool = False, opt_dirs: Sequence[str] | None = None) -> str | None:
        import shutil  # here: the stall check (run every minute) never looks for a tool

        path = os.pathsep.join(list(opt_dirs or []) + [os.environ.get("PATH") or os.defpath, "/usr/sbin", "/sbin"])
        found = shutil.which(name, path=path)
        if found is None and required:
            raise OSError("%s not found" % name)
        return found

    def run_command(self, args: Sequence[str], environ_update: Mapping[str, str] | None = None,
                    errors: str = "surrogate_then_replace", handle_exceptions: bool = True,
                    **_ignored: Any) -> tuple[int, str, str]:
        import subprocess  # here, as shutil above

        env = dict(os.environ)
        env.update(environ_update or {})
        proc = subprocess.run(list(args), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, check=False)
        mode = "replace" if errors == "surrogate_then_replace" else errors
        return proc.returncode, proc.stdout.decode("utf-8", mode), proc.stderr.decode("utf-8", mode)
