"""Named training-host scenarios: how to build each one and what every check must say about it.

Each scenario starts from a healthy host (daemon running, full fine-tuning or LoRA, a resumable
checkpoint that fits the config, a matching config lock, a healthy log) and changes ONE thing, so
that exactly the checks in ``expect`` are not ``ok``. ``settings`` are the options of the family
(``node_training_health``) the scenario needs (thresholds, as an inventory would set them, without
the ``training_health_`` prefix). ``gpus``: how many GPUs the host has (an RTX 3090 each).
"""

from __future__ import annotations

import json
import os
import sys
import time

from . import fixtures
from .host import TrainHost

GB = 1000 ** 3


class Scenario(object):
    __slots__ = ("name", "mode", "daemon", "prepare", "expect", "settings", "about", "messages", "gpus")

    def __init__(self, name, about, expect=None, mode="full", daemon=True, prepare=None, settings=None,
                 messages=None, gpus=1):
        self.name = name
        self.about = about
        self.mode = mode
        self.daemon = daemon            # True, False, or a dict of start_daemon() options
        self.prepare = prepare          # callable(host) run before the daemon starts
        self.expect = expect or {}      # {check: status}; every other check must be ok
        self.settings = settings or {}
        self.messages = messages or {}  # {check: text that must appear in its message}
        self.gpus = gpus

    def replace(self, **changes):
        """A copy with some fields changed (``python -m simtrain build --no-daemon``)."""
        fields = dict((name, getattr(self, name)) for name in self.__slots__)
        fields.update(changes)
        return Scenario(**fields)

    def build(self, parent):
        host = TrainHost.build(parent, self.name, mode=self.mode, gpus=self.gpus)
        if self.prepare:
            self.prepare(host)
            host.give_to_owner()
        if self.daemon:
            host.start_daemon(**(self.daemon if isinstance(self.daemon, dict) else {}))
        return host


def _stale_pid(host):
    """A crashed daemon: started, SIGKILLed, its PID file left behind."""
    host.start_daemon()
    host.kill_daemon()


def _reused_pid(host):
    """The PID file names a live process that is not the daemon (its PID was reused by a sleep)."""
    pid = host.start_other(["sleep", "600"])
    with open(host.path(".daemon.pid"), "w") as handle:
        handle.write("%d\n" % pid)


def _age_checkpoint(host, hours=30):
    folder = host.path("current_model", "checkpoint-5000")
    old = time.time() - hours * 3600
    for name in os.listdir(folder) + [""]:
        os.utime(os.path.join(folder, name) if name else folder, (old, old))


def _copy_log(name, target="crash.log"):
    def prepare(host):
        with open(str(fixtures.crash_log_path(name)), "rb") as src, open(host.path("logs", target), "wb") as dst:
            dst.write(src.read())
    return prepare


def _no_lock(host):
    os.unlink(host.path(".config_lock.json"))


def _invalid_config(host):
    _no_lock(host)  # the lock check would (rightly) also see the change; this scenario is about the config alone
    host.update_config(learning_rate=-0.1, dataset_path="data/missing.jsonl", per_device_train_batch_size="8")


def _base_model_changed(host):
    host.update_config(base_model="meta-llama/Llama-2-7b-hf")


def _layout_missing(host):
    os.rmdir(host.path("queue"))
    os.unlink(host.path("core", "train.py"))


def _permissions(host):
    if os.geteuid() == 0:
        os.chown(host.path("logs"), 0, 0)
    os.chmod(host.path("logs"), 0o755)
    os.chmod(host.path("inbox"), 0o500)


def _resume_off(host):
    host.update_config(resume_from_checkpoint=False)
    host.lock_config()


def _lora_checkpoint_full_config(host):
    """A LoRA-era checkpoint left in current_model, newer than the full-model one, under a full-FT config."""
    host.add_checkpoint(fixtures.LORA_LISTING, fixtures.LORA_STATE, step=6000, global_step=6000)


def _full_checkpoint_lora_config(host):
    host.add_checkpoint(fixtures.FULL_LISTING, fixtures.FULL_STATE, step=5000)


def _huge_log(host):
    """A 1 GB sparse log whose last line is a CUDA OOM: read from its end, never whole."""
    path = host.path("logs", "huge.log")
    with open(path, "wb") as handle:
        handle.truncate(1024 ** 3)
        handle.seek(0, 2)
        handle.write(b"\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n")


def _truncated_trainer_state(host):
    path = host.path("current_model", "checkpoint-5000", "trainer_state.json")
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])


def _huge_trainer_state(host):
    path = host.path("current_model", "checkpoint-5000", "trainer_state.json")
    with open(path, "wb") as handle:
        handle.truncate(1024 ** 3)


def _corrupt_config(host):
    _no_lock(host)
    with open(host.path("config.json"), "rb") as handle:
        data = handle.read()
    with open(host.path("config.json"), "wb") as handle:
        handle.write(data[: len(data) // 2])


def _foreign_lock(host):
    with open(host.path(".config_lock.json"), "w") as handle:
        handle.write("base_model=openai/whisper-large-v2\nlocked=2024-01-01\n")


def _foreign_history(host):
    with open(host.path(".crash_history.json"), "w") as handle:
        handle.write('[{"time": "2024-01-01", "error": "OOM"}]\n')
    _copy_log(fixtures.OOM_LOG)(host)


def _lose_gpu(index):
    def prepare(host):
        host.gpu.lose_gpu(index)  # config space all-ones, nvidia-smi's recorded error, the recorded Xid 79 lines
    return prepare


def _low_memory(host):
    host.set_meminfo("MemTotal:       65796908 kB\nMemFree:          200000 kB\nMemAvailable:    1000000 kB\n")


SCENARIOS = dict((s.name, s) for s in (
    Scenario("healthy", "a healthy full fine-tuning host: every check ok"),
    Scenario("healthy_lora", "a healthy LoRA host: every check ok", mode="lora"),
    Scenario("daemon_dead", "the daemon crashed: its PID file names a dead process", daemon=False,
             prepare=_stale_pid, expect={"daemon": "fail"}, messages={"daemon": "is gone"}),
    Scenario("daemon_pid_reused", "the PID file names a live process that is not the daemon", daemon=False,
             prepare=_reused_pid, expect={"daemon": "fail"}, messages={"daemon": "not the daemon"}),
    Scenario("disk_low", "less free space than training_min_free_gb", settings={"min_free_gb": 10 ** 9},
             expect={"disk_space": "warn"}, messages={"disk_space": "free on the filesystem"}),
    Scenario("memory_low", "1 GB of memory available", prepare=_low_memory, expect={"memory": "warn"},
             messages={"memory": "only 1.0 GB of memory available"}),
    Scenario("config_invalid", "a negative learning rate, a missing dataset, a batch size given as text",
             prepare=_invalid_config, expect={"config": "fail"}, messages={"config": "learning_rate is -0.1"}),
    Scenario("config_corrupt", "config.json cut in half", prepare=_corrupt_config,
             expect={"config": "fail", "checkpoint_resume": "ok"}, messages={"config": "is not valid JSON"}),
    Scenario("permissions", "logs owned by root, inbox not writable", prepare=_permissions,
             expect={"permissions": "warn"}, messages={"permissions": "cannot write"}),
    Scenario("layout_missing", "queue/ and core/train.py are gone", prepare=_layout_missing,
             expect={"layout": "fail"}, messages={"layout": "queue is missing"}),
    Scenario("checkpoint_stale", "the newest checkpoint is 30 h old while the daemon runs", prepare=_age_checkpoint,
             expect={"checkpoint": "warn"}, messages={"checkpoint": "30.0 h old"}),
    Scenario("crash_oom", "a CUDA OOM traceback in the logs", prepare=_copy_log(fixtures.OOM_LOG),
             expect={"crash_log": "fail"}, messages={"crash_log": "cuda_oom in"}),
    Scenario("base_model_changed", "base_model changed since the lock while checkpoints exist",
             prepare=_base_model_changed, expect={"config_lock": "fail"},
             messages={"config_lock": '"openai/whisper-large-v2" to "meta-llama/Llama-2-7b-hf"'}),
    Scenario("lock_foreign", "an old tool's .config_lock.json (not JSON): reported, left as it is",
             prepare=_foreign_lock, expect={"config_lock": "unknown"}, messages={"config_lock": "left as it is"}),
    Scenario("resume_off", "resume_from_checkpoint false while a resumable checkpoint exists", prepare=_resume_off,
             expect={"checkpoint_resume": "fail"}, messages={"checkpoint_resume": "would start from scratch"}),
    Scenario("status_step_zero", "the status says step 0 while a resumable checkpoint exists",
             daemon={"start_step": 0, "hang": True}, expect={"checkpoint_resume": "fail"},
             messages={"checkpoint_resume": "says current_step 0"}),
    Scenario("lora_checkpoint_full_config", "a LoRA-era checkpoint (newest) under a full fine-tuning config",
             prepare=_lora_checkpoint_full_config, daemon={"start_step": 6010}, expect={"checkpoint_resume": "fail"},
             messages={"checkpoint_resume": "holds a LoRA adapter, but config.json trains the full model"}),
    Scenario("full_checkpoint_lora_config", "a full-model checkpoint (newest) under a LoRA config", mode="lora",
             prepare=_full_checkpoint_lora_config, daemon={"start_step": 5010}, expect={"checkpoint_resume": "fail"},
             messages={"checkpoint_resume": "holds full-model weights, but config.json trains a LoRA adapter"}),
    Scenario("huge_log", "a 1 GB sparse log ending in a CUDA OOM", prepare=_huge_log,
             expect={"crash_log": "fail"}, messages={"crash_log": "huge.log"}),
    # resume_from_checkpoint true takes the newest checkpoint as it is: the daemon would fail on it
    Scenario("trainer_state_truncated", "the newest checkpoint's trainer_state.json cut in half",
             prepare=_truncated_trainer_state, expect={"checkpoint_resume": "fail"},
             messages={"checkpoint_resume": "is not valid JSON"}),
    Scenario("trainer_state_huge", "the newest checkpoint's trainer_state.json is 1 GB", prepare=_huge_trainer_state,
             expect={"checkpoint_resume": "fail"}, messages={"checkpoint_resume": "larger than its limit of 16.0 MiB"}),
    # 4000 s: not a whole time-zone offset, which the stall check would (rightly) take for a local-time stamp
    Scenario("stalled", "the daemon hangs: its status stopped moving 4000 s ago (stall_timeout scaled down to 1 s, "
                        "the daemon older than that)", daemon={"hang": True, "stale_s": 4000, "warmup_s": 1.2},
             settings={"stall_timeout": 1}, expect={"progress": "warn"}, messages={"progress": "training stalled: "}),
    Scenario("gpu_lost", "the only GPU fell off the bus: no GPU is usable", prepare=_lose_gpu(0),
             expect={"gpu": "fail"}, messages={"gpu": "none usable: 1 lost"}),
    Scenario("gpu_one_of_two_lost", "one of two GPUs fell off the bus: a warning, the other one is usable", gpus=2,
             prepare=_lose_gpu(1), expect={"gpu": "warn"}, messages={"gpu": "GPU 1 (0000:51:00.0) is lost"}),
    Scenario("history_foreign", "an old tool's .crash_history.json and an OOM in the logs",
             prepare=_foreign_history, expect={"crash_log": "fail"}, messages={"crash_log": "left as it is"}),
))


def names():
    return sorted(SCENARIOS)


def build_scenario(name, parent):
    return SCENARIOS[name].build(parent)


def write_inventory(path, hosts, python=None, **group_vars):
    """An inventory (JSON, which is YAML) for playbooks/training_health.yml: each of ``hosts`` ({name: TrainHost})
    in group training_hosts, on the local connection, pointed at its simulated host; a host named after a scenario
    gets that scenario's settings as ``training_health_<option>``. Returns ``path``."""
    entries = {}
    for name, host in hosts.items():
        entry = dict(host.host_vars(), ansible_connection="local", ansible_python_interpreter=python or sys.executable)
        for key, value in (SCENARIOS[name].settings if name in SCENARIOS else {}).items():
            entry["training_health_" + key] = value
        entries[name] = entry
    doc = {"all": {"children": {"training_hosts": {"hosts": entries, "vars": dict(group_vars)}}}}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, indent=1)
        handle.write("\n")
    return path
