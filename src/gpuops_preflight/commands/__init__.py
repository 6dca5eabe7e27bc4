"""Subcommands of ``gpuops-preflight`` that live in modules of their own.

Each module here is one subcommand (or a few related ones): it has ``add_parser(subparsers)``,
which adds its parser(s) and sets ``handler`` (``args -> exit code``) with ``set_defaults``.
Adding a module here adds the command; cli.py does not change. Imports stay light: a command
imports what it needs (Optuna, ansible-runner) when it runs, not when the parser is built.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from types import ModuleType
from typing import Any


def names() -> list[str]:
    """The command modules' names, in name order (so --help lists them stably), without importing them."""
    return sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))


def module_of(word: str) -> str | None:
    """The module that holds the subcommand ``word`` (``training-watch`` -> ``training_watch``), if it is one.
    Looked up as a file, not through ``names()``: pkgutil imports inspect, 5 ms of the stall check's 50."""
    name = word.replace("-", "_")
    if not name.isidentifier() or name.startswith("_"):
        return None
    return name if any(os.path.isfile(os.path.join(folder, name + ".py")) for folder in __path__) else None


def discover(only: str | None = None) -> list[ModuleType]:
    """The command modules (every one, or only ``only``), in name order."""
    found = []
    if only is None:
        wanted = names()
    else:   # one command (the stall check's path): no listing of the others
        wanted = [only] if module_of(only) == only else []
    for name in wanted:
        module = importlib.import_module("%s.%s" % (__name__, name))
        if hasattr(module, "add_parser"):
            found.append(module)
    return found


def say(*lines: object, stream: Any = None) -> None:
    """Print lines for an operator (on stdout, else ``stream``), each ``printable``: they quote log lines,
    tool output and answers from services, whose escape sequences and control characters must not reach
    the terminal."""
    import sys

    from ..collection import module_utils

    stream = stream or sys.stdout
    printable = module_utils("_values").printable
    text = "\n".join(printable(line) for line in lines)
    try:
        print(text, file=stream, flush=True)
    except UnicodeEncodeError:
        # stdout is ascii or latin-1 (systemd with LANG unset, PYTHONIOENCODING=ascii): what it cannot hold
        # is written as an escape, never a traceback in place of the verdict
        encoding = getattr(stream, "encoding", None) or "ascii"
        print(text.encode(encoding, "backslashreplace").decode(encoding), file=stream, flush=True)


def json_text(value: Any) -> str:
    """``value`` as strict JSON for ``--json`` (indented, keys sorted): JSON has no NaN or infinity, which
    Python's json writes as bare NaN/Infinity that jq and most parsers refuse, so such a number (a trial
    value of -inf from an old objective) is written as the text Python gives it ("-inf")."""
    import json
    import math

    def safe(item: Any) -> Any:
        if isinstance(item, float) and not math.isfinite(item):
            return str(item)
        if isinstance(item, dict):
            return {key: safe(val) for key, val in item.items()}
        if isinstance(item, (list, tuple)):
            return [safe(val) for val in item]
        return item

    return json.dumps(safe(value), indent=2, sort_keys=True, default=str, allow_nan=False)
