# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: PCI addresses (BDF) and the ways an operator names a GPU.

The PCI address is the only GPU identity that every source agrees on (rocm-smi prints it upper
case, amd-smi and sysfs lower case; rocm-smi's index, the DRM card number, the KFD node and the
HIP device index all differ). Everything is joined on ``normalize_bdf``.
"""

from __future__ import annotations

import re

_BDF = re.compile(r"^(?:([0-9a-fA-F]{1,8}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$")


def normalize_bdf(value):
    """'0000:0B:00.0', '0b:00.0' or '0:b:0.0' -> '0000:0b:00.0'; None when it is not a PCI address."""
    if not isinstance(value, str):
        return None
    match = _BDF.match(value.strip())
    if not match:
        return None
    domain, bus, dev, fn = match.groups()
    return "%04x:%02x:%02x.%s" % (int(domain or "0", 16), int(bus, 16), int(dev, 16), fn)


# NVRM's address: domain:bus:device, no function ('0000:01:00')
_PARTIAL = re.compile(r"^([0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})$")


def normalize_partial(value):
    """NVRM's partial address lower case ('0000:0b:00'), or None when ``value`` is not one."""
    match = _PARTIAL.match(value.strip()) if isinstance(value, str) else None
    return "%s:%s:%s" % tuple(part.lower() for part in match.groups()) if match else None


def is_partial(address):
    """Whether an address is NVRM's domain:bus:device without the function."""
    return bool(address) and isinstance(address, str) and _PARTIAL.match(address) is not None


def bdf_from_location_id(location_id, domain=0):
    """KFD topology encodes the address as (bus << 8) | (device << 3) | function."""
    location_id = int(location_id)
    return "%04x:%02x:%02x.%d" % (int(domain), (location_id >> 8) & 0xFF, (location_id >> 3) & 0x1F, location_id & 0x7)


def parse_gpu_ref(value):
    """How an inventory names a GPU: ('index', 3) or ('bdf', '0000:22:00.0').

    Raises ValueError with a message naming the value when it is neither.
    """
    if isinstance(value, bool):
        raise ValueError("%r is not a GPU index or PCI address" % (value,))
    if isinstance(value, int):
        if value < 0:
            raise ValueError("GPU index %d is negative" % value)
        return ("index", value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdecimal():
            return ("index", int(text))
        bdf = normalize_bdf(text)
        if bdf:
            return ("bdf", bdf)
    raise ValueError("%r is not a GPU index (e.g. 3) or PCI address (e.g. 0000:22:00.0)" % (value,))


def parse_gpu_refs(values, option):
    """Parse a list of GPU names; the error names the option and the bad entry."""
    if values is None:
        return []
    if not isinstance(values, (list, tuple)):
        values = [values]
    refs = []
    for value in values:
        if isinstance(value, dict):
            # WATCHER style: {gpu: 10, reason: "..."}; the reason is kept for messages.
            if "gpu" not in value:
                raise ValueError("%s: entry %r has no 'gpu' key" % (option, value))
            value = value["gpu"]
        try:
            refs.append(parse_gpu_ref(value))
        except ValueError as exc:
            raise ValueError("%s: %s" % (option, exc))
    return refs


def ref_matches(ref, gpu):
    """Whether a parsed GPU name designates ``gpu`` (a dict with 'index' and 'bdf')."""
    kind, value = ref
    if kind == "index":
        return gpu.get("index") == value
    return gpu.get("bdf") == value


def mixed_vendors(gpus):
    """Whether ``gpus`` (dicts with 'vendor') hold GPUs of two vendors, whose tools each number their own from 0."""
    return len(set(g.get("vendor") for g in gpus if g.get("vendor"))) > 1


def gpu_name(gpu, mixed=False):
    """How lists of GPUs (usable_gpus, excluded_gpus) name one: its index, or its PCI address where it has no
    index or, on a host with GPUs of two vendors (``mixed``), where indices collide."""
    if mixed or gpu.get("index") is None:
        return gpu.get("bdf")
    return gpu["index"]
