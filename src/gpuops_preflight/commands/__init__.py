"""Subcommands of ``gpuops-preflight`` that live in modules of their own.

Each module here is one subcommand (or a few related ones): it has ``add_parser(subparsers)``,
which adds its parser(s) and sets ``handler`` (``args -> exit code``) with ``set_defaults``.
Adding a module here adds the command; cli.py does not change. Imports stay light: a command
imports what it needs (Optuna, ansible-runner) when it runs, not when the parser is built.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def discover() -> list[ModuleType]:
    """The command modules, in name order (so --help lists them stably)."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module("%s.%s" % (__name__, info.name))
        if hasattr(module, "add_parser"):
            found.append(module)
    return found
