# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: every family of checks, by kind, for the controller side.

The plan, the judge and summary, the summary callback, the documentation tables and the Python
bridge read families from here; a host module imports only its own family (a smaller payload).
A new family is one module declaring its ``Family`` and one line in ``MODULES``.
"""

from __future__ import annotations

from importlib import import_module

# kind -> the module declaring its FAMILY. A family is imported when first asked for: the serving
# gate, run before a service starts, does not pay for the training host's checks.
MODULES = (("preflight", "_preflight"), ("cleanup", "_cleanup"), ("training_health", "_training_health"),
           ("serving_gate", "_serving_gate"))
_PACKAGE = __name__.rpartition(".")[0]
_LOADED = {}


def declaration(kind):
    """The module declaring the family of ``kind`` (its ``FAMILY``; ``OPTIONS`` and ``validate`` where the family
    declares its host module's own options there); ValueError listing the known kinds."""
    module = dict(MODULES).get(kind) if isinstance(kind, str) else None
    if module is None:
        raise ValueError("unknown kind %r; known: %s" % (kind, ", ".join(k for k, _module in MODULES)))
    return import_module("%s.%s" % (_PACKAGE, module))


def family(kind):
    """The family of ``kind``; ValueError listing the known kinds."""
    if kind not in _LOADED:
        _LOADED[kind] = declaration(kind).FAMILY
    return _LOADED[kind]


def families():
    """{kind: Family} of every family, in declaration order."""
    return dict((kind, family(kind)) for kind, _module in MODULES)


def kinds():
    return [kind for kind, _module in MODULES]


def code(check):
    """``gpu_count`` -> ``GPU_COUNT_MISMATCH`` (a name no family declares reads as its upper case)."""
    spec = _spec(check)
    return spec.code if spec else str(check).upper()


def label(check):
    """``gpu_health`` -> ``GPU health``."""
    spec = _spec(check)
    return spec.label if spec else str(check).replace("_", " ").capitalize()


def _spec(check):
    for fam in families().values():
        if check in fam.checks:
            return fam.checks[check]
    return None
