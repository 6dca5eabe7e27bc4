"""The scenario catalogue: named clusters used by the integration tests, the demo and molecule.

``build_scenario(name, out)`` builds the rigs under ``out``, writes ``out/inventory.yml`` and
returns a ``Scenario``. ``expect`` is the INTENT of the scenario, {host: {"status": acceptable
host statuses (passed / warnings / blocked), <check>: acceptable check statuses before judging}},
for the checks it is about (others are expected ``ok``). It matched the product on 2026-11-25
(ansible-playbook playbooks/preflight.yml -e step=N); it is a test aid, not a product contract.
Scenarios assume 12-GPU rigs (``gpus`` in the defaults would break the GPU numbers they use).
"""

from __future__ import annotations

import os

from .cluster import build_cluster

RIG = "rig-6600"
RIG_B = "rig-6600b"
GONE = "rig-6600-gone"
STEP = 3

_CATALOGUE = {}


class Scenario(object):
    def __init__(self, name, description, cluster, step=STEP, expect=None, focus=None):
        self.name = name
        self.description = description
        self.cluster = cluster
        self.step = step
        self.expect = expect or {}
        self.focus = focus or {}
        self.inventory = None

    @property
    def rigs(self):
        return self.cluster.rigs

    def __getitem__(self, host):
        return self.cluster.rigs[host]

    def as_dict(self):
        return {"name": self.name, "description": self.description, "step": self.step,
                "inventory": self.inventory, "hosts": sorted(self.cluster.host_vars()),
                "expect": {h: {c: sorted(r) for c, r in v.items()} for h, v in self.expect.items()},
                "focus": self.focus, "rigs": {n: r.path for n, r in self.cluster.rigs.items()}}


def scenario(name, description):
    def register(func):
        _CATALOGUE[name] = (func, description)
        return func
    return register


def names():
    return sorted(_CATALOGUE)


def describe(name):
    return _CATALOGUE[name][1]


def build_scenario(name, out, **rig_defaults):
    """Build a named scenario under ``out``; returns the Scenario (inventory written).

    ``rig_defaults`` go to every ``Rig.build`` (e.g. ramdisk="shm" for a real tmpfs ramdisk,
    fixture=..., amd_smi="list")."""
    if name not in _CATALOGUE:
        raise KeyError("unknown scenario %r (have: %s)" % (name, ", ".join(names())))
    func, description = _CATALOGUE[name]
    os.makedirs(out, exist_ok=True)
    result = func(os.path.abspath(out), rig_defaults)
    result.description = description
    result.inventory = result.cluster.write_inventory(os.path.join(os.path.abspath(out), "inventory.yml"))
    return result


OK = {"ok"}


@scenario("demo", "rig-6600: 12 healthy GPUs; rig-6600b: 12 GPUs, GPU 10 excluded with SMU 0xFFFFFFFF "
                  "lines in its kernel log, GPU 7 on the watchlist")
def _demo(out, defaults):
    cluster = build_cluster(out, {RIG: {}, RIG_B: {"excluded_gpus": [10], "gpu_watchlist": [7]}}, defaults=defaults)
    b = cluster[RIG_B]
    b.smu_failure(10)
    for rig in cluster.rigs.values():
        rig.add_caches("trainer")
    return Scenario("demo", "", cluster, expect={RIG: {"status": {"passed"}, "gpu_health": OK, "kernel_log": OK},
                                                 RIG_B: {"status": {"warnings"}, "gpu_health": {"fail"}}},
                    focus={RIG_B: {"excluded": 10, "watch": 7, "bdf": b.gpu(10).bdf}})


@scenario("healthy", "one rig, 12 healthy GPUs, every step's files in place")
def _healthy(out, defaults):
    cluster = build_cluster(out, {RIG: {}}, defaults=defaults)
    expect = {c: OK for c in ("ramdisk", "inputs", "gpu_health", "gpu_count", "kernel_log", "vram",
                              "gpu_temperature", "ramdisk_space")}
    return Scenario("healthy", "", cluster, expect={RIG: dict(expect, status={"passed"})})


@scenario("missing_ramdisk_file", "step 3 needs holdout_history.json on the ramdisk; it is missing")
def _missing(out, defaults):
    cluster = build_cluster(out, {RIG: {}}, defaults=defaults)
    cluster[RIG].remove_ramdisk_file(3, "holdout_history.json")
    return Scenario("missing_ramdisk_file", "", cluster,
                    expect={RIG: {"status": {"blocked"}, "ramdisk": {"fail"}, "gpu_health": OK}},
                    focus={RIG: {"file": "holdout_history.json"}})


@scenario("missing_input", "step 1 needs train.parquet (an absolute input path); it is missing")
def _missing_input(out, defaults):
    cluster = build_cluster(out, {RIG: {}}, defaults=defaults)
    path = cluster[RIG].remove_input("train.parquet")
    return Scenario("missing_input", "", cluster, step=1, expect={RIG: {"status": {"blocked"}, "inputs": {"fail"}}},
                    focus={RIG: {"file": path}})


@scenario("lost_gpu", "GPU 3 fell off the bus: config space all-ones, gone from rocm-smi's JSON")
def _lost(out, defaults):
    cluster = build_cluster(out, {RIG: {}}, defaults=defaults)
    gpu = cluster[RIG].lose_gpu(3)
    return Scenario("lost_gpu", "", cluster, expect={RIG: {"status": {"blocked"}, "gpu_health": {"fail"},
                                                     "gpu_count": {"warn", "fail"}}},
                    focus={RIG: {"gpu": 3, "bdf": gpu.bdf, "health": "lost"}})


@scenario("smu_failure", "GPU 4's SMU answers 0xFFFFFFFF (real kernel lines, re-addressed) just now")
def _smu(out, defaults):
    cluster = build_cluster(out, {RIG: {}}, defaults=defaults)
    cluster[RIG].smu_failure(4)
    # The recording also says "device inaccessible": the product may call the GPU lost.
    return Scenario("smu_failure", "", cluster, expect={RIG: {"status": {"blocked"}, "gpu_health": {"fail"}}},
                    focus={RIG: {"gpu": 4, "bdf": cluster[RIG].gpu(4).bdf, "health": ["degraded", "lost"]}})


@scenario("smu_failure_on_excluded", "the SMU failure is on GPU 10, which excluded_gpus names: a warning only")
def _smu_excluded(out, defaults):
    cluster = build_cluster(out, {RIG: {"excluded_gpus": [10]}}, defaults=defaults)
    cluster[RIG].smu_failure(10)
    return Scenario("smu_failure_on_excluded", "", cluster,
                    expect={RIG: {"status": {"warnings"}, "gpu_health": {"fail"}}},
                    focus={RIG: {"gpu": 10, "bdf": cluster[RIG].gpu(10).bdf, "excluded": True}})


@scenario("count_mismatch", "the inventory expects 12 GPUs, the rig has 11 (a riser died: not enumerated at all)")
def _count(out, defaults):
    cluster = build_cluster(out, {RIG: {"gpus": 11, "expected_gpu_count": 12}}, defaults=defaults)
    return Scenario("count_mismatch", "", cluster,
                    expect={RIG: {"status": {"warnings"}, "gpu_count": {"warn"}}},
                    focus={RIG: {"expected": 12, "found": 11}})


@scenario("hanging_tool", "rocm-smi hangs for ever and ignores SIGTERM (only a process-group SIGKILL ends it)")
def _hang(out, defaults):
    cluster = build_cluster(out, {RIG: {}}, defaults=defaults)
    cluster[RIG].set_tool_mode("hang")
    return Scenario("hanging_tool", "", cluster, expect={RIG: {"status": {"warnings"}, "gpu_health": {"unknown"}}},
                    focus={RIG: {"tool": "rocm-smi", "mode": "hang"}})


@scenario("unreachable_host", "rig-6600 is healthy; rig-6600-gone does not answer SSH")
def _unreachable(out, defaults):
    cluster = build_cluster(out, {RIG: {}}, unreachable=[GONE], defaults=defaults)
    return Scenario("unreachable_host", "", cluster, expect={RIG: {"status": {"passed"}, "gpu_health": OK},
                                                             GONE: {"status": {"blocked"}}},
                    focus={GONE: {"port": cluster.extra_hosts[GONE]["ansible_port"]}})


# ---- more faults, for the tests that need them

@scenario("empty_tool",
          "rocm-smi lists no GPU (WARNING: No JSON data to report, exit 0) while sysfs shows them all: "
          "every GPU vanished from it, degraded")
def _empty(out, defaults):
    cluster = build_cluster(out, {RIG: {}}, defaults=defaults)
    cluster[RIG].set_tool_mode("empty")
    return Scenario("empty_tool", "", cluster, expect={RIG: {"status": {"blocked"}, "gpu_health": {"fail"}}},
                    focus={RIG: {"tool": "rocm-smi", "mode": "empty"}})


@scenario("garbage_tool", "rocm-smi prints broken JSON between text lines, exit 0")
def _garbage(out, defaults):
    cluster = build_cluster(out, {RIG: {}}, defaults=defaults)
    cluster[RIG].set_tool_mode("garbage")
    return Scenario("garbage_tool", "", cluster, expect={RIG: {"status": {"warnings"}, "gpu_health": {"unknown"}}},
                    focus={RIG: {"tool": "rocm-smi", "mode": "garbage"}})


@scenario("old_smu_failure", "GPU 4 had SMU failures two hours ago (before the step started), none since")
def _old_smu(out, defaults):
    cluster = build_cluster(out, {RIG: {}}, defaults=defaults)
    cluster[RIG].smu_failure(4, age_s=7200)
    return Scenario("old_smu_failure", "", cluster, focus={RIG: {"gpu": 4, "age_s": 7200}})


@scenario("hot_gpu", "GPU 2 runs at 97 C edge")
def _hot(out, defaults):
    cluster = build_cluster(out, {RIG: {}}, defaults=defaults)
    cluster[RIG].set_temperature(2, 97.0, junction=104.0)
    return Scenario("hot_gpu", "", cluster, expect={RIG: {"status": {"warnings"}, "gpu_temperature": {"warn"}}},
                    focus={RIG: {"gpu": 2, "temperature_edge_c": 97.0}})


@scenario("vram_held", "a leftover process holds 6 GiB of VRAM on GPU 5")
def _vram(out, defaults):
    cluster = build_cluster(out, {RIG: {}}, defaults=defaults)
    cluster[RIG].add_vram_holder(48213, 5, 6 * 1024 ** 3)
    return Scenario("vram_held", "", cluster, expect={RIG: {"status": {"warnings"}, "vram": {"warn"}}},
                    focus={RIG: {"gpu": 5, "pid": 48213}})


@scenario("suspended_gpu", "GPU 6 is runtime-suspended (idle BACO): not dead, and not to be woken")
def _suspended(out, defaults):
    cluster = build_cluster(out, {RIG: {}}, defaults=defaults)
    cluster[RIG].suspend_gpu(6)
    return Scenario("suspended_gpu", "", cluster, expect={RIG: {"status": {"passed"}, "gpu_health": OK}},
                    focus={RIG: {"gpu": 6, "runtime_status": "suspended"}})


@scenario("dirty_after_step", "after a step: caches in the home (with a symlink trap), clocks left 'manual'")
def _dirty(out, defaults):
    cluster = build_cluster(out, {RIG: {}}, defaults=defaults)
    rig = cluster[RIG]
    rig.add_caches("trainer")
    for index in (0, 5):
        rig.set_perf_level(index, "manual")
    return Scenario("dirty_after_step", "", cluster, focus={RIG: {"manual": [0, 5], "user": "trainer"}})


# Steps between whole numbers: the proposal stages ramdisk files "for Steps 2.5+".
BETWEEN_STEPS = {1: {"ramdisk": ["run_config.json"], "inputs": ["train.parquet"]},
                 2: {"ramdisk": ["run_config.json"], "inputs": []},
                 2.5: {"ramdisk": ["survivors.json"], "inputs": []},
                 3: {"ramdisk": ["train_history.json"], "inputs": []},
                 3.5: {"ramdisk": ["report.json"], "inputs": [], "ramdisk_dir": "stage_3_5"}}


@scenario("between_steps", "steps 1, 2, 2.5, 3 and 3.5 (3.5's folder is named stage_3_5), all staged")
def _between(out, defaults):
    cluster = build_cluster(out, {RIG: {}}, steps=BETWEEN_STEPS, defaults=defaults)
    return Scenario("between_steps", "", cluster, step=2.5, expect={RIG: {"status": {"passed"}}},
                    focus={RIG: {"folders": ["step2.5", "stage_3_5"]}})


# ---- NVIDIA and two vendors (simrig.nvidia)

XID43 = "akash-support-244_multi_gpu_535.183.01_dmesg-T_xid43_xid31_xid94.txt"  # the recorded Xid 43, twice


@scenario("mixed_vendors", "rig-6600: 12 healthy AMD GPUs; rig-a5000: 4 NVIDIA GPUs, GPU 1 logged an application "
                           "Xid 43 twice; rig-mixed: an AMD GPU beside two NVIDIA cards, the one at 0000:51:00.0 fell "
                           "off the bus and is excluded by PCI address (indices collide there)")
def _mixed(out, defaults):
    from .nvidia import NvidiaGpus
    cluster = build_cluster(out, {RIG: {}, "rig-a5000": {"gpus": 0, "nvidia_gpus": 4},
                                  "rig-mixed": {"gpus": 1, "nvidia_gpus": 2, "excluded_gpus": ["0000:51:00.0"]}},
                            defaults=defaults)
    a5000, mixed = NvidiaGpus(cluster["rig-a5000"]), NvidiaGpus(cluster["rig-mixed"])
    a5000.xid(1, XID43)
    lost = mixed.lose_gpu("0000:51:00.0")
    cluster[RIG].add_caches("trainer")
    a5000.add_cuda_caches("trainer")
    cluster["rig-mixed"].add_caches("trainer")
    mixed.add_cuda_caches("trainer")
    return Scenario("mixed_vendors", "", cluster,
                    expect={RIG: {"status": {"passed"}},
                            "rig-a5000": {"status": {"warnings"}, "kernel_log": {"warn"}, "gpu_health": OK},
                            "rig-mixed": {"status": {"warnings"}, "gpu_health": {"fail"}}},
                    focus={"rig-a5000": {"gpu": 1, "bdf": a5000.gpu(1)["bdf"], "xid": 43, "count": 2},
                           "rig-mixed": {"excluded": lost["bdf"], "health": "lost"}})
