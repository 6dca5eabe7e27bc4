"""_gpus on NVIDIA and two-vendor hosts, per-GPU sysfs deadlines, and tools that cannot be used."""

from __future__ import annotations

import json
import os
import threading

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _gpus as gpus
from ansible_collections.gpuops.preflight.plugins.module_utils import _sysfs
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.fixtures import recording, training
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.sysfs_tree import (
    add_gpu, add_kfd, add_nvidia_gpu, add_pci_function)

A5000 = "telegraf_2x_rtx-a5000_590.44.01_q-x.xml"  # GPUs at 81:00.0 and c1:00.0, a llama-server on each


class FakeModule(object):
    """Tools on a fake PATH; run_command answers per tool (by the basename of the command it runs)."""

    def __init__(self, answers, tools=None):
        self.answers = answers
        self.tools = set(tools if tools is not None else list(answers) + ["timeout"])
        self.calls = []
        self.lock = threading.Lock()

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/bin/%s" % name if name in self.tools else None

    def run_command(self, cmd, **kwargs):
        with self.lock:
            self.calls.append(cmd)
        return self.answers[os.path.basename(cmd[4])]


def xml(name=A5000):
    return (0, training("nvidia-smi", name), "")


def rocm_doc(*buses):
    card = json.loads(recording("rocm-smi", "telegraf_rx6700xt_rocm602.json"))["card0"]
    return (0, json.dumps(dict(("card%d" % i, dict(card, **{"PCI Bus": "0000:%02X:00.0" % bus}))
                               for i, bus in enumerate(buses))), "")


def by_bdf(result):
    return dict((g["bdf"], g) for g in result["gpus"])


@pytest.fixture
def nvrig(tmp_path):
    root = str(tmp_path / "sys")
    add_nvidia_gpu(root, "0000:81:00.0")
    add_nvidia_gpu(root, "0000:c1:00.0")
    return root


def test_nvidia_host_one_call_joined_on_the_pci_address(nvrig):
    module = FakeModule({"nvidia-smi": xml()})
    result = gpus.probe(module, sysfs_root=nvrig)
    assert [(g["index"], g["bdf"], g["vendor"], g["health"]) for g in result["gpus"]] == [
        (0, "0000:81:00.0", "nvidia", "ok"), (1, "0000:c1:00.0", "nvidia", "ok")]
    assert module.calls == [["/usr/bin/timeout", "-k", "2", "15", "/usr/bin/nvidia-smi", "-q", "-x"]]
    gpu = result["gpus"][0]
    assert gpu["sources"] == ["nvidia-smi", "sysfs"] and gpu["xid_errors"] == []
    assert (gpu["model"], gpu["uuid"], gpu["persistence_mode"], gpu["mig_mode"]) == (
        "NVIDIA RTX A5000", "GPU-12345678-aaaa-bbbb-cccc-0123456789ab", True, None)
    assert (gpu["vram_total_bytes"], gpu["temperature_edge_c"], gpu["power_w"], gpu["busy_percent"]) == (
        24564 * 1048576, 13.0, 6.41, 0)
    assert gpu["remapped_rows"]["pending"] is False and gpu["ecc"]["mode"] == "disabled"
    assert result["tool"]["name"] == "nvidia-smi" and result["tool"]["schema"] == "v13"
    assert result["vendors"] == ["nvidia"] and result["mixed_vendors"] is False
    assert result["processes_available"] is True
    assert [(p["pid"], p["name"], p["bdf"], p["index"], p["vram_bytes"]) for p in result["processes"]] == [
        (100477, "llama-server", "0000:81:00.0", 0, 22430 * 1048576),
        (100477, "llama-server", "0000:c1:00.0", 1, 17246 * 1048576)]
    assert "0000:81:00.1" not in by_bdf(result)  # the card's HD-audio function is not a GPU


def test_gpu_gone_from_nvidia_smi_keeps_its_pci_place(tmp_path):
    root = str(tmp_path / "sys")
    add_nvidia_gpu(root, "0000:41:00.0")  # before both recorded GPUs in PCI order
    add_nvidia_gpu(root, "0000:81:00.0")
    add_nvidia_gpu(root, "0000:c1:00.0")
    result = by_bdf(gpus.probe(FakeModule({"nvidia-smi": xml()}), sysfs_root=root))
    gone = result["0000:41:00.0"]
    assert (gone["index"], gone["health"], gone["responding"]) == (0, "degraded", False)
    assert gone["problems"] == ["nvidia-smi no longer reports it while it is still on the PCI bus"]
    assert (result["0000:81:00.0"]["index"], result["0000:c1:00.0"]["index"]) == (1, 2)


def test_lost_wrong_driver_and_handle_errors(tmp_path):
    root = str(tmp_path / "sys")
    add_nvidia_gpu(root, "0000:07:00.0")
    add_nvidia_gpu(root, "0000:09:00.0", lost=True)
    add_nvidia_gpu(root, "0000:0b:00.0", driver="vfio-pci")
    add_nvidia_gpu(root, "0000:81:00.0")
    add_nvidia_gpu(root, "0000:c1:00.0")
    stdout = "Unable to determine the device handle for GPU 0000:07:00.0: Unknown Error\n" + training("nvidia-smi", A5000)
    result = by_bdf(gpus.probe(FakeModule({"nvidia-smi": (0, stdout, "")}), sysfs_root=root))
    assert (result["0000:07:00.0"]["health"], result["0000:07:00.0"]["index"]) == ("lost", 0)
    assert result["0000:07:00.0"]["problems"] == ["nvidia-smi cannot open the GPU: Unknown Error"]
    assert (result["0000:09:00.0"]["health"], result["0000:09:00.0"]["index"]) == ("lost", 1)
    assert "all-ones" in result["0000:09:00.0"]["problems"][0]
    vfio = result["0000:0b:00.0"]
    assert (vfio["health"], vfio["index"]) == ("degraded", None)
    assert vfio["problems"][0] == "no nvidia driver bound to it (driver: vfio-pci)"
    assert (result["0000:81:00.0"]["index"], result["0000:c1:00.0"]["index"]) == (2, 3)


def test_new_handle_error_wording_makes_the_gpu_lost_not_unknown(tmp_path):
    # nvidia-smi 595.71.05 after an Xid 79, verbatim from a warranty report: index before the address, exit 6.
    root = str(tmp_path / "sys")
    add_nvidia_gpu(root, "0000:01:00.0")
    answer = (6, "Unable to determine the device handle for GPU0: 0000:01:00.0: Unknown Error\nNo devices were found\n", "")
    result = gpus.probe(FakeModule({"nvidia-smi": answer}), sysfs_root=root)
    assert result["tool"]["outcome"] == "gpu_errors"
    gpu = result["gpus"][0]
    assert (gpu["bdf"], gpu["index"], gpu["health"], gpu["responding"]) == ("0000:01:00.0", 0, "lost", False)
    assert gpu["problems"][0] == "nvidia-smi cannot open the GPU: Unknown Error"


def test_gpu_nvidia_smi_may_not_open_is_unknown_not_broken(tmp_path):
    root = str(tmp_path / "sys")
    for bdf in ("0000:07:00.0", "0000:81:00.0", "0000:c1:00.0"):
        add_nvidia_gpu(root, bdf)
    stdout = ("Unable to determine the device handle for GPU0: 0000:07:00.0: Insufficient Permissions\n"
              + training("nvidia-smi", A5000))
    result = by_bdf(gpus.probe(FakeModule({"nvidia-smi": (0, stdout, "")}), sysfs_root=root))
    denied = result["0000:07:00.0"]
    assert (denied["health"], denied["responding"], denied["index"]) == ("unknown", False, 0)
    assert denied["problems"] == ["nvidia-smi cannot open the GPU: Insufficient Permissions"]
    assert [result[b]["health"] for b in ("0000:81:00.0", "0000:c1:00.0")] == ["ok", "ok"]


@pytest.mark.parametrize("answer,outcome,text", [
    ((0, training("nvidia-smi", "shine-cluster-50_nvidia-smi_failed_to_communicate_with_driver.txt"), ""),
     "no_driver", "nvidia-smi cannot talk to the NVIDIA driver"),
    ((0, "", ""), "unparseable", "nvidia-smi printed nothing readable"),
    ((126, "", "timeout: failed to run command '/usr/bin/nvidia-smi': Permission denied\n"), "missing",
     "/usr/bin/nvidia-smi is not executable"),
])
def test_driver_down_or_tool_broken_is_unknown_not_hardware(nvrig, answer, outcome, text):
    result = gpus.probe(FakeModule({"nvidia-smi": answer}), sysfs_root=nvrig)
    assert result["tool"]["outcome"] == outcome
    for gpu in result["gpus"]:
        assert gpu["health"] == "unknown" and gpu["responding"] is None
        assert text in gpu["problems"][0] and gpu["problems"][0].endswith("sysfs shows it on the bus")


def test_missing_or_non_executable_tool_is_named(nvrig, tmp_path):
    result = gpus.probe(FakeModule({}, tools=["timeout"]), sysfs_root=nvrig, vendor="nvidia")
    assert (result["tool"]["outcome"], result["tool"]["reason"]) == ("missing", "nvidia-smi not found on PATH")
    assert result["gpus"][0]["health"] == "unknown"
    plain = tmp_path / "nvidia-smi"
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o644)
    result = gpus.probe(FakeModule({}), sysfs_root=nvrig, nvidia_smi=str(plain))
    assert result["tool"]["outcome"] == "missing"
    assert result["tool"]["reason"] == "%s is not executable (mode 0o644)" % plain
    result = gpus.probe(FakeModule({}), sysfs_root=nvrig, nvidia_smi=str(tmp_path / "nope"))
    assert result["tool"]["reason"] == "%s not found" % (tmp_path / "nope")


def test_missing_rocm_smi_names_both_tools(tmp_path):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:03:00.0", card=0)
    result = gpus.probe(FakeModule({}, tools=["timeout"]), sysfs_root=root, rocm_smi="/opt/none/rocm-smi")
    assert result["tool"]["outcome"] == "missing"
    assert result["tool"]["reason"] == ("no GPU tool found: /opt/none/rocm-smi not found; amd-smi not found on PATH "
                                        "or in /opt/rocm/bin, /opt/rocm/libexec/rocm_smi")


def test_two_vendors_both_probed_and_marked(tmp_path):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:13:00.0", card=1)  # an AMD iGPU beside the NVIDIA cards
    add_nvidia_gpu(root, "0000:81:00.0")
    add_nvidia_gpu(root, "0000:c1:00.0")
    add_kfd(root, [(41840, "0000:13:00.0", 100302)], procs=[(4242, 41840, 4096)])
    module = FakeModule({"nvidia-smi": xml(), "rocm-smi": rocm_doc(0x13)})
    result = gpus.probe(module, sysfs_root=root)
    assert [(g["index"], g["bdf"], g["vendor"], g["health"]) for g in result["gpus"]] == [
        (0, "0000:13:00.0", "amd", "ok"), (0, "0000:81:00.0", "nvidia", "ok"), (1, "0000:c1:00.0", "nvidia", "ok")]
    assert result["mixed_vendors"] is True and result["vendors"] == ["amd", "nvidia"]
    assert sorted(os.path.basename(c[4]) for c in module.calls) == ["nvidia-smi", "rocm-smi"]
    assert result["tool"]["name"] == "nvidia-smi"  # the vendor with most GPUs
    assert sorted(result["tools"]) == ["amd", "nvidia"]
    assert [(p["vendor"], p["pid"], p["index"]) for p in result["processes"]] == [
        ("nvidia", 100477, 0), ("nvidia", 100477, 1), ("amd", 4242, 0)]
    assert result["kfd_available"] is True and result["processes_available"] is True


def test_vendor_option_limits_the_probe(tmp_path):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:13:00.0", card=1)
    add_nvidia_gpu(root, "0000:81:00.0")
    module = FakeModule({"nvidia-smi": xml(), "rocm-smi": rocm_doc(0x13)})
    result = gpus.probe(module, sysfs_root=root, vendor="amd")
    assert [g["bdf"] for g in result["gpus"]] == ["0000:13:00.0"] and len(module.calls) == 1
    assert result["mixed_vendors"] is False


def test_no_sysfs_probes_nvidia_only_where_nvidia_smi_is_installed(tmp_path):
    nowhere = str(tmp_path / "nowhere")
    result = gpus.probe(FakeModule({"nvidia-smi": xml()}, tools=["nvidia-smi", "timeout"]), sysfs_root=nowhere)
    nvidia = [g for g in result["gpus"] if g["vendor"] == "nvidia"]
    assert [(g["index"], g["bdf"], g["health"]) for g in nvidia] == [(0, "0000:81:00.0", "ok"), (1, "0000:c1:00.0", "ok")]
    # only nvidia-smi is installed: no AMD probe, so no "no GPU tool found: rocm-smi" beside an answering nvidia-smi
    assert result["vendors"] == ["nvidia"] and "ENOENT" in result["sysfs_unread"]
    assert "missing" not in [t["outcome"] for t in result["tools"].values()]


def test_no_sysfs_and_no_tool_reports_the_missing_amd_tool(tmp_path):
    result = gpus.probe(FakeModule({}, tools=["timeout"]), sysfs_root=str(tmp_path / "nowhere"))
    assert result["vendors"] == ["amd"] and result["tool"]["outcome"] == "missing"
    assert result["tool"]["reason"].startswith("no GPU tool found: rocm-smi")


def test_kernel_finding_with_its_own_gpu_health(nvrig):
    findings = [{"category": "xid_79", "bdf": "0000:c1:00.0", "summary": "Xid 79: GPU has fallen off the bus",
                 "gpu_health": "lost", "count": 1},
                {"category": "xid_13", "bdf": "0000:81:00.0", "summary": "Xid 13: graphics engine exception"}]
    result = by_bdf(gpus.probe(FakeModule({"nvidia-smi": xml()}), sysfs_root=nvrig, kernel_findings=findings))
    assert result["0000:c1:00.0"]["health"] == "lost"
    assert result["0000:c1:00.0"]["problems"] == ["kernel log: Xid 79: GPU has fallen off the bus"]
    assert result["0000:81:00.0"]["health"] == "ok"  # an application Xid is the kernel_log check's business


def test_hard_nvidia_xid_degrades_soft_and_recovered_do_not(nvrig):
    findings = [{"category": "ras_uncorrectable", "bdf": "0000:81:00.0", "summary": "Xid 48: double-bit ECC error",
                 "vendor": "nvidia", "severity": "hard", "count": 2},
                {"category": "app_fault", "bdf": "0000:c1:00.0", "summary": "Xid 43", "vendor": "nvidia",
                 "severity": "soft"},
                {"category": "gpu_reset", "bdf": "0000:c1:00.0", "summary": "GPU recovered", "vendor": "nvidia",
                 "severity": "hard", "recovered": True}]
    result = by_bdf(gpus.probe(FakeModule({"nvidia-smi": xml()}), sysfs_root=nvrig, kernel_findings=findings))
    assert result["0000:81:00.0"]["health"] == "degraded"
    assert result["0000:81:00.0"]["problems"] == ["kernel log: Xid 48: double-bit ECC error (x2)"]
    assert result["0000:c1:00.0"]["health"] == "ok"


def test_xid_errors_of_each_nvidia_gpu_come_from_the_kernel_log():
    findings = [
        {"category": "app_fault", "bdf": "0000:c1:00.0", "xid": 43, "count": 2, "severity": "soft", "vendor": "nvidia",
         "summary": "Xid 43: GPU stopped processing (application fault)", "caused_xids": [], "recovered": False,
         "first_seen": "10.5", "last_seen": "12.5", "last_epoch": 1000.0, "message": "NVRM: Xid ...", "line": "[..]"},
        {"category": "nvlink_error", "bdf": "0000:81:00", "xid": 149, "count": 1, "severity": "hard",
         "vendor": "nvidia", "summary": "Xid 149", "caused_xids": [45]},     # NVRM's partial address: not matched here
        {"category": "bus_lost", "bdf": None, "severity": "hard", "summary": "pciehp Link Down"}]   # no Xid
    assert gpus.xid_errors(findings) == {"0000:c1:00.0": [{
        "xid": 43, "count": 2, "severity": "soft", "category": "app_fault",
        "summary": "Xid 43: GPU stopped processing (application fault)", "caused_xids": [], "recovered": False,
        "first_seen": "10.5", "last_seen": "12.5", "last_epoch": 1000.0}]}


def test_xid_errors_joined_on_the_probe(nvrig):
    findings = [{"category": "app_fault", "bdf": "0000:c1:00.0", "xid": 43, "count": 2, "severity": "soft",
                 "vendor": "nvidia", "summary": "Xid 43"}]
    result = by_bdf(gpus.probe(FakeModule({"nvidia-smi": xml()}), sysfs_root=nvrig, kernel_findings=findings))
    assert [(x["xid"], x["count"]) for x in result["0000:c1:00.0"]["xid_errors"]] == [(43, 2)]
    assert "kernel_log" in result["0000:c1:00.0"]["sources"] and result["0000:c1:00.0"]["health"] == "ok"
    assert result["0000:81:00.0"]["xid_errors"] == [] and "kernel_log" not in result["0000:81:00.0"]["sources"]


# ------------------------------------------------------------------------------ per-GPU deadlines

@pytest.fixture
def blocking_read(monkeypatch):
    """Make reads of one file of one GPU block (as a read stuck in a hung driver does) until the test ends."""
    release = threading.Event()
    real = _sysfs._read_bytes

    def install(bdf, name):
        def read(path, limit):
            if bdf in path and path.endswith(name):
                release.wait(30)
            return real(path, limit)
        monkeypatch.setattr(_sysfs, "_read_bytes", read)

    yield install
    release.set()


def test_one_hung_gpu_read_hides_no_other_gpu(tmp_path, blocking_read):
    root = str(tmp_path / "sys")
    add_gpu(root, "0000:03:00.0", card=0)
    add_gpu(root, "0000:06:00.0", card=1)
    add_gpu(root, "0000:09:00.0", card=2, lost=True)
    blocking_read("0000:06:00.0", "mem_info_vram_used")
    module = FakeModule({"rocm-smi": rocm_doc(0x03, 0x06)})
    result = by_bdf(gpus.probe(module, sysfs_root=root, sysfs_timeout=0.5))
    hung = result["0000:06:00.0"]
    assert hung["health"] == "unknown"
    assert hung["problems"] == ["sysfs read of mem_info_vram_used timed out after 0.5s"]
    assert result["0000:09:00.0"]["health"] == "lost"  # judged although its neighbour hangs
    assert result["0000:03:00.0"]["health"] == "ok"


def test_hung_config_read_on_nvidia(nvrig, blocking_read):
    blocking_read("0000:c1:00.0", "config")
    result = by_bdf(gpus.probe(FakeModule({"nvidia-smi": xml()}), sysfs_root=nvrig, sysfs_timeout=0.5))
    assert result["0000:c1:00.0"]["health"] == "unknown"
    assert result["0000:c1:00.0"]["problems"] == ["sysfs read of config timed out after 0.5s"]
    assert result["0000:81:00.0"]["health"] == "ok"


def test_fifo_planted_in_sysfs_is_refused_not_waited_on(tmp_path):
    root = str(tmp_path / "sys")
    dev = add_gpu(root, "0000:03:00.0", card=0)
    os.unlink(os.path.join(dev, "mem_info_vram_used"))
    os.mkfifo(os.path.join(dev, "mem_info_vram_used"))
    gpu = _sysfs.scan_gpus(root)[0]
    assert gpu["read_errors"] == {"mem_info_vram_used": "not a regular file"} and gpu["vram_used_bytes"] is None


def test_gpu_classes_per_vendor(tmp_path):
    root = str(tmp_path / "sys")
    add_nvidia_gpu(root, "0000:01:00.0", pci_class="0x030200", audio=False)   # 3D controller (A100)
    add_pci_function(root, "0000:01:00.2", "0x10de", "0x1ada", "0x0c0330")   # USB-C of a GeForce
    add_pci_function(root, "0000:01:00.3", "0x10de", "0x1adb", "0x0c8000")   # UCSI
    add_pci_function(root, "0000:02:00.0", "0x10de", "0x0000", "0x068000")   # NVSwitch bridge
    add_pci_function(root, "0000:03:00.0", "0x1002", "0x740f", "0x120000", driver="amdgpu")  # Instinct accelerator
    found = [(bdf, vendor) for bdf, _dir, _card, vendor in _sysfs.enumerate_gpus(root, ["amd", "nvidia"])]
    assert found == [("0000:01:00.0", "0x10de"), ("0000:03:00.0", "0x1002")]


def test_a_gpu_gone_from_sysfs_after_xid_79_is_a_lost_ghost_at_function_0(nvrig):
    # NVRM names the device only ('PCI:0000:02:00'); the GPU fell off the bus and left sysfs and nvidia-smi's list
    findings = [{"category": "bus_lost", "bdf": "0000:02:00", "summary": "Xid 79: GPU has fallen off the bus",
                 "vendor": "nvidia", "severity": "hard", "gpu_health": "lost", "count": 1}]
    result = by_bdf(gpus.probe(FakeModule({"nvidia-smi": xml()}), sysfs_root=nvrig, kernel_findings=findings))
    ghost = result["0000:02:00.0"]
    assert (ghost["vendor"], ghost["health"], ghost["sources"]) == ("nvidia", "lost", ["kernel_log"])
    assert result["0000:81:00.0"]["health"] == "ok" and len(result) == 3


def test_nvidia_smi_q_text_answer_lists_gpus_and_processes(tmp_path):
    # a wrapper that prints the -q text (recorded, leptonai/gpud) instead of the XML: GPUs, processes, verdict
    root = str(tmp_path / "sys")
    add_nvidia_gpu(root, "0000:01:00.0")
    module = FakeModule({"nvidia-smi": (0, training("nvidia-smi", "gpud_8x_rtx4090_535.154.05_q_text_first_gpu.txt"), "")})
    result = gpus.probe(module, sysfs_root=root)
    assert [(g["index"], g["bdf"], g["health"], g["model"]) for g in result["gpus"]] == [
        (0, "0000:01:00.0", "ok", "NVIDIA GeForce RTX 4090")]
    assert result["tool"]["format"] == "text" and result["processes_available"] is True
    assert [(p["pid"], p["bdf"]) for p in result["processes"]] == [(2180559, "0000:01:00.0")]


# -- GPUs a job or a container hides from nvidia-smi ------------------------------------------------------------------

def _host(tmp_path, cgroup="0::/user.slice/user-1000.slice/session-3.scope\n", files=(), driver_gpus=(), dev_nodes=4):
    """A simulated host: sysfs with four NVIDIA GPUs (nvidia-smi's A5000 answer lists two of them), /proc, /dev."""
    root = tmp_path / "host"
    sysfs = str(root / "sys")
    for bdf in ("0000:41:00.0", "0000:81:00.0", "0000:a1:00.0", "0000:c1:00.0"):
        add_nvidia_gpu(sysfs, bdf)
    (root / "proc" / "self").mkdir(parents=True)
    (root / "proc" / "self" / "cgroup").write_text(cgroup)
    for bdf in driver_gpus:
        (root / "proc" / "driver" / "nvidia" / "gpus" / bdf).mkdir(parents=True)
    (root / "dev").mkdir()
    for n in range(dev_nodes):
        (root / "dev" / ("nvidia%d" % n)).write_text("")
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    return sysfs


def _probe(sysfs, environ):
    return by_bdf(gpus.probe(FakeModule({"nvidia-smi": xml()}), sysfs_root=sysfs, environ=environ))


@pytest.mark.parametrize("environ,host,why", [
    ({"SLURM_JOB_ID": "4242"}, {}, "SLURM_JOB_ID=4242: a Slurm job"),
    ({"PBS_JOBID": "77.pbs01"}, {}, "PBS_JOBID=77.pbs01: a PBS job"),
    ({"LSB_JOBID": "9"}, {}, "LSB_JOBID=9: an LSF job"),
    ({}, {"files": [".dockerenv"]}, "/.dockerenv exists: a Docker container"),
    ({}, {"cgroup": "0::/kubepods.slice/kubepods-besteffort.slice/cri-containerd-1f2e.scope\n"},
     "cgroup 0::/kubepods.slice/kubepods-besteffort.slice/cri-containerd-1f2e.scope: a Kubernetes pod"),
    ({}, {"cgroup": "4:devices:/slurm/uid_1000/job_4242/step_0\n"}, "cgroup 4:devices:/slurm/uid_1000/job_4242/step_0: a Slurm job"),
])
def test_gpus_a_job_or_container_hides_from_nvidia_smi_are_unknown_not_lost(tmp_path, environ, host, why):
    got = _probe(_host(tmp_path, **host), environ)
    assert [(b, g["index"], g["health"], g["hidden_from_tool"]) for b, g in sorted(got.items())] == [
        ("0000:41:00.0", None, "unknown", why), ("0000:81:00.0", 0, "ok", None),
        ("0000:a1:00.0", None, "unknown", why), ("0000:c1:00.0", 1, "ok", None)]
    hidden = got["0000:41:00.0"]
    assert (hidden["in_tool_output"], hidden["responding"]) == (False, None)
    assert hidden["problems"] == ["nvidia-smi does not list it: this process runs confined (%s), which shows nvidia-smi "
                                  "only the GPUs given to it" % why]


def test_outside_a_job_a_gpu_missing_from_nvidia_smi_is_still_degraded(tmp_path):
    # CUDA_VISIBLE_DEVICES hides GPUs from CUDA programs, not from nvidia-smi: no excuse for a GPU it lost
    got = _probe(_host(tmp_path), {"HOME": "/root", "CUDA_VISIBLE_DEVICES": "1"})
    missing = got["0000:41:00.0"]
    assert (missing["health"], missing["hidden_from_tool"], missing["responding"]) == ("degraded", None, False)
    assert missing["problems"] == ["nvidia-smi no longer reports it while it is still on the PCI bus"]
    # a GPU of the job that nvidia-smi cannot open is judged as ever, confined or not
    assert [g["health"] for b, g in sorted(got.items())] == ["degraded", "ok", "degraded", "ok"]


def test_a_container_hides_host_gpus_that_only_the_driver_lists(tmp_path):
    # /proc/driver/nvidia/gpus names a GPU sysfs does not show (sysfs masked): still one of the host's, hidden
    sysfs = _host(tmp_path, files=[".dockerenv"], driver_gpus=["0000:81:00.0", "0000:e1:00.0"])
    result = gpus.probe(FakeModule({"nvidia-smi": xml()}), sysfs_root=sysfs, environ={})
    extra = by_bdf(result)["0000:e1:00.0"]
    assert (extra["health"], extra["hidden_from_tool"], extra["sources"]) == (
        "unknown", "/.dockerenv exists: a Docker container", ["/proc/driver/nvidia"])
    assert "the host has 4 NVIDIA device node(s) (/dev/nvidia0 ...) where nvidia-smi lists 2 GPU(s)" in " ".join(
        result["notes"])


def test_a_simulated_host_never_takes_this_process_s_own_confinement(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "1")  # this test process in a job: not the simulated host's
    got = by_bdf(gpus.probe(FakeModule({"nvidia-smi": xml()}), sysfs_root=_host(tmp_path)))
    assert got["0000:41:00.0"]["health"] == "degraded"
