# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: every family of checks, by kind, for the controller side.

The plan, the judge and summary, the summary callback, the documentation tables and the Python
bridge read families from here; a host module imports only its own family (a smaller payload).
A new family is one module declaring its ``Family`` and one line in ``FAMILIES``.
"""

from __future__ import annotations

from ansible_collections.gpuops.preflight.plugins.module_utils import (
    _cleanup, _preflight, _serving_gate, _training_health)

FAMILIES = dict((family.kind, family) for family in (_preflight.FAMILY, _cleanup.FAMILY, _training_health.FAMILY,
                                                     _serving_gate.FAMILY))
REGISTRIES = dict((kind, family.checks) for kind, family in FAMILIES.items())
STATS_KEYS = dict((family.stats_key, kind) for kind, family in FAMILIES.items())


def family(kind):
    """The family of ``kind``; ValueError listing the known kinds."""
    try:
        return FAMILIES[kind]
    except (KeyError, TypeError):
        raise ValueError("unknown kind %r; known: %s" % (kind, ", ".join(FAMILIES)))


def code(check):
    """``gpu_count`` -> ``GPU_COUNT_MISMATCH`` (a name no family declares reads as its upper case)."""
    spec = _spec(check)
    return spec.code if spec else str(check).upper()


def label(check):
    """``gpu_health`` -> ``GPU health``."""
    spec = _spec(check)
    return spec.label if spec else str(check).replace("_", " ").capitalize()


def _spec(check):
    for fam in FAMILIES.values():
        if check in fam.checks:
            return fam.checks[check]
    return None
