from __future__ import annotations

import os

from ansible_collections.gpuops.preflight.plugins.module_utils import _clocks
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.sysfs_tree import add_gpu


class Module(object):
    """rocm-smi --resetclocks stand-in: writes 'auto' back like the real tool does (unless broken)."""

    def __init__(self, devices, works=True):
        self.devices, self.works, self.cmds = devices, works, []

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/bin/%s" % name

    def run_command(self, cmd, **kwargs):
        self.cmds.append(cmd)
        if self.works:
            for dev in self.devices:
                with open(os.path.join(dev, "power_dpm_force_performance_level"), "w") as handle:
                    handle.write("auto\n")
        return 0, "Successfully reset clocks\n", ""


def rig(tmp_path, levels):
    root = str(tmp_path / "sys")
    devices = []
    for n, level in enumerate(levels):
        dev = add_gpu(root, "0000:%02x:00.0" % (3 + 3 * n), card=n)
        with open(os.path.join(dev, "power_dpm_force_performance_level"), "w") as handle:
            handle.write(level + "\n")
        devices.append(dev)
    return root, devices


def test_all_auto_changes_nothing(tmp_path):
    root, devices = rig(tmp_path, ["auto", "auto"])
    module = Module(devices)
    out = _clocks.reset_clocks(module, sysfs_root=root, geteuid=lambda: 0)
    assert out["changed"] is False and out["needed"] == [] and module.cmds == []


def test_reset_and_verify(tmp_path):
    root, devices = rig(tmp_path, ["manual", "auto"])
    module = Module(devices)
    out = _clocks.reset_clocks(module, sysfs_root=root, timeout=20, geteuid=lambda: 0)
    assert out["changed"] and out["needed"] == ["0000:03:00.0"] and out["problems"] == []
    assert module.cmds == [["/usr/bin/timeout", "-k", "2", "20", "/usr/bin/rocm-smi", "--resetclocks"]]
    assert out["gpus"][0] == {"bdf": "0000:03:00.0", "before": "manual", "after": "auto"}


def test_reset_that_did_not_take_is_reported(tmp_path):
    root, devices = rig(tmp_path, ["high"])
    out = _clocks.reset_clocks(Module(devices, works=False), sysfs_root=root, geteuid=lambda: 0)
    assert out["problems"] == ["GPU 0000:03:00.0 is still at performance level 'high' after rocm-smi --resetclocks"]


def test_check_mode_and_non_root_do_not_run_the_tool(tmp_path):
    root, devices = rig(tmp_path, ["manual"])
    module = Module(devices)
    assert _clocks.reset_clocks(module, sysfs_root=root, check_mode=True, geteuid=lambda: 0)["changed"] is True
    out = _clocks.reset_clocks(module, sysfs_root=root, geteuid=lambda: 1000)
    assert out["changed"] is False and "needs root" in out["problems"][0]
    assert module.cmds == []
