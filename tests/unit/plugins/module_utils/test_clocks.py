from __future__ import annotations

import os
import shutil
import threading

from ansible_collections.gpuops.preflight.plugins.module_utils import _clocks, _sysfs
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.fixtures import training
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.sysfs_tree import add_gpu, add_nvidia_gpu


class Module(object):
    """rocm-smi --resetclocks stand-in: writes 'auto' back like the real tool does (unless broken)."""

    def __init__(self, devices, works=True, refuse=(), vanish=None):
        self.devices, self.works, self.refuse, self.vanish, self.cmds = devices, works, refuse, vanish, []
        self.said = "Successfully reset clocks\n"

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/bin/%s" % name

    def run_command(self, cmd, **kwargs):
        self.cmds.append(cmd)
        if self.vanish:
            shutil.rmtree(self.vanish)
        if self.works:
            for dev in self.devices:
                if dev not in self.refuse and dev != self.vanish:
                    with open(os.path.join(dev, "power_dpm_force_performance_level"), "w") as handle:
                        handle.write("auto\n")
        return 0, self.said, ""


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


def test_reset_that_did_not_take_is_reported_and_not_changed(tmp_path):
    """rocm-smi exits 0 and says 'Unable to reset clocks' per GPU: nothing changed, so changed is false."""
    root, devices = rig(tmp_path, ["high"])
    module = Module(devices, works=False)
    module.said = "GPU[0]\t\t: Unable to reset clocks\n"
    out = _clocks.reset_clocks(module, sysfs_root=root, geteuid=lambda: 0)
    assert out["problems"] == ["GPU 0000:03:00.0 is still at performance level 'high' after rocm-smi --resetclocks"]
    assert (out["changed"], out["reset"]) == (False, [])


def test_twelve_gpus_one_refuses_the_others_reset_and_reported_then_idempotent(tmp_path):
    root, devices = rig(tmp_path, ["manual"] * 12)
    module = Module(devices, refuse=(devices[5],))
    out = _clocks.reset_clocks(module, sysfs_root=root, geteuid=lambda: 0)
    bdfs = ["0000:%02x:00.0" % (3 + 3 * n) for n in range(12)]
    assert out["changed"] is True and out["needed"] == bdfs
    assert out["reset"] == bdfs[:5] + bdfs[6:]
    assert out["problems"] == ["GPU %s is still at performance level 'manual' after rocm-smi --resetclocks" % bdfs[5]]
    with open(os.path.join(devices[5], "power_dpm_force_performance_level"), "w") as handle:
        handle.write("auto\n")
    again = _clocks.reset_clocks(module, sysfs_root=root, geteuid=lambda: 0)
    assert (again["changed"], again["needed"], len(module.cmds)) == (False, [], 1)


def test_a_level_the_driver_refuses_is_unverified_never_auto(tmp_path, monkeypatch):
    """amdgpu answers a read of power_dpm_force_performance_level with EPERM while the GPU is runtime-suspended
    (pm_runtime_get_if_active) or in reset: its level is unknown, not 'auto', and nothing says it was reset."""
    root, devices = rig(tmp_path, ["manual", "auto"])
    real = _sysfs._read_bytes

    def read(path, limit):
        if "0000:03:00.0" in path and path.endswith("power_dpm_force_performance_level"):
            return None, "EPERM"
        return real(path, limit)
    monkeypatch.setattr(_sysfs, "_read_bytes", read)
    module = Module(devices)
    out = _clocks.reset_clocks(module, sysfs_root=root, geteuid=lambda: 0)
    assert (out["changed"], out["needed"], out["problems"], module.cmds) == (False, [], [], [])
    assert out["unverified"] == ["could not read the performance level of GPU 0000:03:00.0 (EPERM): its clocks were "
                                 "not checked"]


def test_a_gpu_without_a_performance_level_is_unsupported_not_a_failure(tmp_path):
    """An SR-IOV VF has no power_dpm_force_performance_level (older kernels gave an empty answer instead)."""
    root, devices = rig(tmp_path, ["auto", ""])
    os.remove(os.path.join(devices[0], "power_dpm_force_performance_level"))
    module = Module(devices)
    out = _clocks.reset_clocks(module, sysfs_root=root, geteuid=lambda: 0)
    assert (out["changed"], out["problems"], out["unverified"], module.cmds) == (False, [], [], [])
    assert out["unsupported"] == ["0000:03:00.0", "0000:06:00.0"]


def test_a_gpu_gone_between_the_check_and_the_read_back_is_unverified(tmp_path):
    root, devices = rig(tmp_path, ["manual", "high"])
    module = Module(devices, vanish=devices[1])
    out = _clocks.reset_clocks(module, sysfs_root=root, geteuid=lambda: 0)
    assert (out["changed"], out["reset"], out["problems"]) == (True, ["0000:03:00.0"], [])
    assert out["unverified"] == ["could not read the performance level of GPU 0000:06:00.0 back after rocm-smi "
                                 "--resetclocks (ENOENT): the GPU may have left the bus"]


def test_check_mode_and_non_root_do_not_run_the_tool(tmp_path):
    root, devices = rig(tmp_path, ["manual"])
    module = Module(devices)
    assert _clocks.reset_clocks(module, sysfs_root=root, check_mode=True, geteuid=lambda: 0)["changed"] is True
    out = _clocks.reset_clocks(module, sysfs_root=root, geteuid=lambda: 1000)
    assert out["changed"] is False and "needs root" in out["problems"][0]
    assert module.cmds == []


# ------------------------------------------------------------------------------ NVIDIA

NOT_ACTIVE = "<clocks_event_reason_applications_clocks_setting>Not Active</clocks_event_reason_applications_clocks_setting>"
ACTIVE = "<clocks_event_reason_applications_clocks_setting>Active</clocks_event_reason_applications_clocks_setting>"


class NvidiaModule(object):
    """nvidia-smi stand-in: GPUs with user-defined clocks show the reason active until -rgc works."""

    def __init__(self, locked=(0,), works=True, rmc=(0, "All done.\n", ""), rgc=(0, "All done.\n", "")):
        self.locked, self.works, self.rmc, self.rgc, self.cmds = set(locked), works, rmc, rgc, []

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/bin/%s" % name

    def xml(self):
        text = training("nvidia-smi", "telegraf_2x_rtx-a5000_590.44.01_q-x.xml")
        parts = text.split("<gpu id=")
        for n in self.locked:
            parts[n + 1] = parts[n + 1].replace(NOT_ACTIVE, ACTIVE)
        return "<gpu id=".join(parts)

    def run_command(self, cmd, **kwargs):
        self.cmds.append(cmd[4:])
        if cmd[5] == "-rgc":
            if self.works:
                self.locked.clear()
            return self.rgc
        if cmd[5] == "-rmc":
            return self.rmc
        return 0, self.xml(), ""


def test_nvidia_locked_clocks_reset_and_verified():
    module = NvidiaModule(locked=(1,))
    out = _clocks.reset_clocks(module, vendor="nvidia", timeout=20, geteuid=lambda: 0)
    assert (out["changed"], out["needed"], out["problems"]) == (True, ["0000:c1:00.0"], [])
    assert out["gpus"] == [{"bdf": "0000:81:00.0", "before": "default", "after": "default"},
                           {"bdf": "0000:c1:00.0", "before": "user_defined", "after": "default"}]
    assert module.cmds == [["/usr/bin/nvidia-smi", "-q", "-x", "-d", "PERFORMANCE"], ["/usr/bin/nvidia-smi", "-rgc"],
                           ["/usr/bin/nvidia-smi", "-rmc"], ["/usr/bin/nvidia-smi", "-q", "-x", "-d", "PERFORMANCE"]]


def test_nvidia_reset_refused_by_the_driver_is_named_and_not_changed():
    """Root in a container without CAP_SYS_ADMIN (or WSL2): -rgc and -rmc are refused with exit 4."""
    said = training("nvidia-smi-clocks", "wsl2_rtx4050_610.88_rgc_permission_denied.txt")
    module = NvidiaModule(locked=(0,), works=False, rgc=(4, said, ""), rmc=(4, said, ""))
    out = _clocks.reset_clocks(module, vendor="nvidia", geteuid=lambda: 0)
    refused = "exited 4: The current user does not have permission to change clocks for GPU 00000000:01:00.0."
    assert out["problems"] == [
        "nvidia-smi -rgc " + refused, "nvidia-smi -rmc " + refused,
        "GPU 0000:81:00.0 still runs user-defined clocks after nvidia-smi -rgc/-rmc (application clocks set with -ac "
        "need nvidia-smi -rac)"]
    assert (out["changed"], out["reset"]) == (False, [])


def test_nvidia_gpu_missing_from_the_read_back_is_unverified_not_still_locked():
    module = NvidiaModule(locked=(0, 1))
    queries = []

    def xml():
        queries.append(1)
        text = NvidiaModule.xml(module)
        if len(queries) == 1:
            return text
        parts = text.split("<gpu id=")   # the second GPU fell off the bus during the reset
        return "<gpu id=".join(parts[:2]) + "</nvidia_smi_log>\n"
    module.xml = xml
    out = _clocks.reset_clocks(module, vendor="nvidia", geteuid=lambda: 0)
    assert (out["changed"], out["reset"], out["problems"]) == (True, ["0000:81:00.0"], [])
    assert out["unverified"] == ["could not read the clocks of GPU 0000:c1:00.0 back after nvidia-smi -rgc/-rmc "
                                 "(not in nvidia-smi's answer)"]


def test_nvidia_default_clocks_change_nothing():
    module = NvidiaModule(locked=())
    out = _clocks.reset_clocks(module, vendor="nvidia", geteuid=lambda: 0)
    assert (out["changed"], out["needed"], len(module.cmds)) == (False, [], 1)


def test_nvidia_reset_that_did_not_take_and_rmc_not_supported():
    module = NvidiaModule(locked=(0,), works=False,
                          rmc=(3, "Setting locked memory clocks is not supported for GPU 00000000:81:00.0.\n", ""))
    out = _clocks.reset_clocks(module, vendor="nvidia", geteuid=lambda: 0)
    assert out["problems"] == ["GPU 0000:81:00.0 still runs user-defined clocks after nvidia-smi -rgc/-rmc "
                               "(application clocks set with -ac need nvidia-smi -rac)"]


def test_nvidia_check_mode_non_root_and_driver_down():
    module = NvidiaModule(locked=(0,))
    assert _clocks.reset_clocks(module, vendor="nvidia", check_mode=True, geteuid=lambda: 0)["changed"] is True
    out = _clocks.reset_clocks(module, vendor="nvidia", geteuid=lambda: 1000)
    assert out["changed"] is False and "needs root" in out["problems"][0]
    assert [c[1] for c in module.cmds] == ["-q", "-q"]
    down = NvidiaModule()
    down.xml = lambda: "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"
    out = _clocks.reset_clocks(down, vendor="nvidia", geteuid=lambda: 0)
    assert out["changed"] is False and out["problems"][0].startswith("cannot read the clocks: nvidia-smi cannot talk")


def test_auto_takes_the_vendors_sysfs_shows(tmp_path):
    root = str(tmp_path / "sys")
    add_nvidia_gpu(root, "0000:81:00.0")
    out = _clocks.reset_clocks(NvidiaModule(locked=()), sysfs_root=root, vendor="auto", geteuid=lambda: 0)
    assert out["vendors"] == ["nvidia"] and out["changed"] is False


def test_a_gpu_whose_sysfs_read_hangs_is_left_out_not_waited_for(tmp_path, monkeypatch):
    """hip_cache_cleanup with reset_clocks runs this outside any collector deadline: a read stuck in a hung driver
    must cost the per-GPU deadline, not the module."""
    root, devices = rig(tmp_path, ["manual", "manual"])
    release, real = threading.Event(), _sysfs._read_bytes

    def read(path, limit):   # the driver-served file; PCI ids (vendor, class) come from the kernel's own copy
        if "0000:06:00.0" in path and path.endswith("power_dpm_force_performance_level"):
            release.wait(30)
        return real(path, limit)
    monkeypatch.setattr(_sysfs, "_read_bytes", read)
    monkeypatch.setattr(_sysfs, "GPU_READ_TIMEOUT", 0.3)
    try:
        out = _clocks.reset_clocks(Module(devices[:1]), sysfs_root=root, timeout=20, geteuid=lambda: 0)
    finally:
        release.set()
    assert out["needed"] == ["0000:03:00.0"] and [g["bdf"] for g in out["gpus"]] == ["0000:03:00.0"]
    assert out["gpus"][0]["after"] == "auto" and out["problems"] == []


def test_a_read_back_stuck_in_a_hung_driver_is_bounded_and_unverified(tmp_path, monkeypatch):
    root, devices = rig(tmp_path, ["manual", "manual"])
    module = Module(devices)
    release, real = threading.Event(), _sysfs._read_bytes

    def read(path, limit):   # the GPU hangs once rocm-smi has touched it
        if module.cmds and "0000:06:00.0" in path and path.endswith("power_dpm_force_performance_level"):
            release.wait(30)
        return real(path, limit)
    monkeypatch.setattr(_sysfs, "_read_bytes", read)
    monkeypatch.setattr(_sysfs, "GPU_READ_TIMEOUT", 0.3)
    try:
        out = _clocks.reset_clocks(module, sysfs_root=root, timeout=20, geteuid=lambda: 0)
    finally:
        release.set()
    assert (out["reset"], out["problems"]) == (["0000:03:00.0"], [])
    assert out["unverified"] == ["could not read the performance level of GPU 0000:06:00.0 back after rocm-smi "
                                 "--resetclocks (timed out after 0.3s)"]


def test_a_bus_that_cannot_be_listed_leaves_the_clocks_unverified(tmp_path):
    """An unreadable /sys/bus/pci/devices (a container without the host's /sys) showed no GPU: 'nothing to reset'."""
    out = _clocks.reset_clocks(Module([]), sysfs_root=str(tmp_path / "nowhere"), geteuid=lambda: 0, vendor="auto")
    assert out["changed"] is False and out["needed"] == []
    assert len(out["unverified"]) == 1 and "cannot list" in out["unverified"][0] and "ENOENT" in out["unverified"][0]
