"""The sysfs side of the GPU probe on real amdgpu/PCI behaviour: what the kernel's files say, and reads that fail."""

from __future__ import annotations

import os
import struct

from ansible_collections.gpuops.preflight.plugins.module_utils import _gpus as gpus
from ansible_collections.gpuops.preflight.plugins.module_utils import _sysfs
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.sysfs_tree import add_gpu
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.test_gpus import FakeModule


def _write(path, data, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as handle:
        handle.write(data)


def test_sriov_virtual_function_is_not_lost_for_its_all_ones_ids(tmp_path):
    """An SR-IOV virtual function reads all-ones in its vendor/device dword by the standard (its ids are its physical
    function's; pciutils #154), while its command and status registers answer (hand-made config from that rule). The
    kernel's "device lost from bus!" test reads PCI_COMMAND: the VF is on the bus, never lost."""
    root = str(tmp_path / "sys")
    dev = add_gpu(root, "0000:83:02.0", card=1, device="0x74b5", busy=0, temp_mc=40000, power_uw=90000000)
    _write(os.path.join(dev, "config"), b"\xff\xff\xff\xff" + struct.pack("<HH", 0x0406, 0x0010) + b"\0" * 56, "wb")
    assert _sysfs.config_space_lost(dev) is False
    gpu = gpus.probe(FakeModule(tools=("timeout",)), sysfs_root=root)["gpus"][0]
    assert (gpu["health"], gpu["problems"]) == ("ok", [])


def test_all_ones_command_register_is_lost_and_a_short_config_read_tells_nothing(tmp_path):
    root = str(tmp_path / "sys")
    dev = add_gpu(root, "0000:03:00.0", card=1)
    _write(os.path.join(dev, "config"), struct.pack("<HH", 0x1002, 0x73ff) + b"\xff" * 4 + b"\0" * 56, "wb")
    assert _sysfs.config_space_lost(dev) is True
    _write(os.path.join(dev, "config"), b"\xff" * 4, "wb")  # vendor/device only: the command register not read
    assert _sysfs.config_space_lost(dev) is None
