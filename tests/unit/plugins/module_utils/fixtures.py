"""Locate the recorded real tool output shipped in tests/fixtures (see its SOURCES.md)."""

from __future__ import annotations

import os
import re

FIXTURES = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "gpu"))


def path(*parts):
    return os.path.join(FIXTURES, *parts)


def read(*parts):
    with open(path(*parts), encoding="utf-8") as handle:
        return handle.read()


def recording(*parts):
    """A recording without the recorder's own '# Source: ...' header lines (never part of real output)."""
    return "\n".join(line for line in read(*parts).splitlines() if not line.startswith("# ")) + "\n"


def listing(folder):
    return sorted(os.listdir(path(folder)))


TRAINING = os.path.normpath(os.path.join(FIXTURES, "..", "training"))


def training(*parts):
    """A training-host recording as the tool printed it (those files carry no header line; see SOURCES.md)."""
    with open(os.path.join(TRAINING, *parts), encoding="utf-8", newline="") as handle:
        return handle.read()


def training_listing(folder):
    return sorted(os.listdir(os.path.join(TRAINING, folder)))


DPX_CHOICES = "rocm7.0.2_mi300x_dpx_default_table_and_gpu_choices_amdsmi-132.txt"


def amd_smi_gpu_choices(name=DPX_CHOICES):
    """[(amd-smi GPU ID, BDF)] as ``amd-smi set --help`` lists its ``-g`` choices in an amd-smi recording."""
    return [(int(gpu), bdf) for gpu, bdf in re.findall(r"ID: (\d+)\s+\| BDF: (\S+)", read("amd-smi", name))]
