# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: pipeline step identifiers.

A step is a non-negative number, whole or decimal: the pipeline has steps between whole numbers
(files staged "for Steps 2.5+"). It may be given as a number or as text: ``2.5``, ``"2.5"``,
``3``, ``"03"`` and ``3.0`` all work and mean what they say, and steps are compared as numbers
(``3`` and ``"3.0"`` are one step). Everywhere a step is shown or names something (messages,
the ramdisk folder ``step<N>``, summary file names) it is in its shortest form: ``3``, ``2.5``.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

from ansible_collections.gpuops.preflight.plugins.module_utils._values import type_name

# ASCII digits only (\d takes any script's digits); at most MAX_DIGITS on each side of the point, so the step
# stays exact in Decimal's default precision (28 digits; longer ones were rounded to another step)
_STEP = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")
MAX_DIGITS = 9
EXAMPLE = "e.g. -e step=3 or -e step=2.5"
_SHOWN = 40   # characters of a refused step a message shows (a pasted blob must not fill the screen)


def _shown(text):
    return text if len(text) <= _SHOWN else "%s... (%d characters)" % (text[:_SHOWN], len(text))


def parse_step(value, option="step"):
    """The step's canonical text ('3', '2.5'); ValueError naming ``option`` for anything else."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("%s is required: the pipeline step to run it for (%s)" % (option, EXAMPLE))
    if isinstance(value, bool):
        raise ValueError("%s must be a step number (%s), got %r" % (option, EXAMPLE, value))
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError("%s must be a step number (%s), got %r" % (option, EXAMPLE, value))
        text = repr(value)
    elif isinstance(value, int):
        if abs(value) >= 10 ** (4 * MAX_DIGITS):   # str() of a huge int is slow, and refused past 4300 digits
            raise ValueError("%s must be a step number of at most %d digits on a side of the point (%s), got a number "
                             "of %d digits" % (option, MAX_DIGITS, EXAMPLE, int(math.log10(abs(value))) + 1))
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ValueError("%s must be a step number (%s), got a %s" % (option, EXAMPLE, type_name(value)))
    if not _STEP.match(text):
        raise ValueError("%s must be a step number of 0 or more, whole or decimal (%s), got %s"
                         % (option, EXAMPLE, _shown(repr(value if not isinstance(value, str) else text))))
    if any(len(side) > MAX_DIGITS for side in text.split(".")):
        raise ValueError("%s %s has more than %d digits on a side of the point: not a pipeline step (%s)"
                         % (option, _shown(text), MAX_DIGITS, EXAMPLE))
    return canonical(Decimal(text))


def canonical(number):
    """Decimal -> its shortest text: 3.0 -> '3', 2.50 -> '2.5', 03 -> '3' (never '1E+2')."""
    return format(number.normalize(), "f")


def step_value(text):
    """The step as a JSON number for documents: 3 for '3', 2.5 for '2.5'."""
    number = Decimal(text)
    return int(number) if number == number.to_integral_value() else float(text)


def parse_steps(values, option):
    """A list of steps (a list, or text '1,2,3'); ValueError naming ``option`` and the bad entry."""
    if isinstance(values, str):
        values = [v for v in values.replace(",", " ").split() if v]
    if not isinstance(values, (list, tuple)):
        raise ValueError("%s must be a list of step numbers, got a %s" % (option, type_name(values)))
    out = []
    for value in values:
        step = parse_step(value, option)
        if step not in out:
            out.append(step)
    return out


def folder_name(step):
    """The step's ramdisk folder under the ramdisk root: step3, step2.5."""
    return "step%s" % step
