"""A simulated training host on disk (tests and demo only), built from tests/fixtures/training.

``TrainHost.build(parent, name, mode="full")`` lays out ``<parent>/<name>/base`` as the product
expects a training host (docs/TRAINING.md), and keeps what only the simulation needs under
``<parent>/<name>/sim`` (a simulated ``/proc/meminfo``, the daemon's output):

```
base/config.json                 full fine-tuning of openai/whisper-large-v2, or LoRA of Mistral-7B
base/data/train.jsonl            the dataset the config names
base/core/train.py               a stub; core/training_daemon.py is the stand-in daemon (standin_daemon.py)
base/inbox queue logs status     the daemon's folders
base/logs/train.log              a recorded HEALTHY trainer log (crash logs are added by faults)
base/current_model/checkpoint-N  a recorded checkpoint listing laid out as SPARSE files of the listed
                                 sizes, with the real trainer_state.json that belongs to the run
base/.config_lock.json           the config locked (as training_config_lock state=locked writes it)
sim/gpu/                         the host's GPU: a simrig NVIDIA rig with one RTX 3090 (recorded nvidia-smi -q -x,
                                 sysfs tree, kernel log); ``host.gpu`` faults it (``lose_gpu``, ...)
```

``host.params(**options)`` are the options of the node module (``node_training_health``) that point
the checks at this host; ``host.host_vars()`` the same as inventory variables for the playbook.

Checkpoints: full = the Whisper large-v2 listing (recorded as ``last-checkpoint``; laid out as
``checkpoint-5000``, the name the Trainer gave it: its trainer_state.json says global_step 5000).
LoRA = the LLaMA-Factory ``checkpoint-1000`` listing with the trainer_state.json of another
LLaMA-Factory LoRA run at the same step (Mistral-7B; the listing's own state was not recorded).
Both files are real; ``add_checkpoint(..., global_step=N)`` writes a DERIVED state (the real one
with global_step/max_steps changed) for extra checkpoints, and says so in its name.

When the tests run as root, the tree belongs to ``nobody`` (the service user) and the daemon runs
as ``nobody``, as on a real host where the daemon does not run as root.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from . import fixtures

PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standin_daemon.py")

FULL_CONFIG = {
    "base_model": "openai/whisper-large-v2",
    "output_dir": "current_model",
    "dataset_path": "data/train.jsonl",
    "finetuning_type": "full",
    "learning_rate": 1e-05,
    "num_train_epochs": 39,
    "per_device_train_batch_size": 16,
    "gradient_accumulation_steps": 1,
    "save_steps": 1000,
    "seed": 42,
    "fp16": True,
    "resume_from_checkpoint": True,
}
LORA_CONFIG = {
    "base_model": "mistralai/Mistral-7B-Instruct-v0.2",
    "output_dir": "current_model",
    "dataset_path": "data/train.jsonl",
    "finetuning_type": "lora",
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "learning_rate": 5e-05,
    "num_train_epochs": 4,
    "per_device_train_batch_size": 1,
    "save_steps": 500,
    "cutoff_len": 1024,
    "bf16": True,
    "resume_from_checkpoint": True,
}
CHECKPOINT_SETS = {
    "full": (fixtures.FULL_LISTING, fixtures.FULL_STATE, 5000),
    "lora": (fixtures.LORA_LISTING, fixtures.LORA_STATE, 1000),
}
# /proc/meminfo of a healthy host with ~30 GB available (simulated; the format of the kernel's file).
MEMINFO = ("MemTotal:       65796908 kB\nMemFree:         2043100 kB\nMemAvailable:   29296356 kB\n"
           "Buffers:          801320 kB\nCached:         25893308 kB\nSwapCached:            0 kB\n")
NOBODY = 65534
# The training host's GPU: the recorded nvidia-smi -q -x of one RTX 3090 (tests/fixtures/training/nvidia-smi).
RTX3090 = "telegraf_1x_rtx3090_525.147.05_q-x.xml"
# Free space the simulated host asks for: its scratch folder's filesystem (often /dev/shm) has less than 50 GB.
MIN_FREE_GB = 0.001


def scratch_dir(prefix="simtrain-"):
    """A fresh folder others can enter (the daemon may run as nobody): on /dev/shm when possible."""
    parent = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    os.chmod(path, 0o755)
    return path


class HostSet(object):
    """Hosts built in one scratch folder, all destroyed (daemons stopped, files removed) by ``destroy``."""

    def __init__(self, prefix="simtrain-"):
        self.parent = scratch_dir(prefix)
        self.made = []

    def make(self, name="host", mode="full", scenario=None, start=False, daemon=True, **kw):
        """A scenario's host (``daemon=False``: without the daemon it runs, the tree as a unit's start gate sees
        it), or a healthy one (its daemon started with ``start``)."""
        from .scenarios import SCENARIOS
        if scenario:
            spec = SCENARIOS[scenario] if daemon else SCENARIOS[scenario].replace(daemon=False)
            host = spec.build(self.parent)
        else:
            host = TrainHost.build(self.parent, name, mode=mode, **kw)
        self.made.append(host)
        if start and not scenario:
            host.start_daemon()
        return host

    def named(self, *names):
        """{name: host}: a scenario's host for a scenario's name, else a healthy running one ('name:lora' for LoRA)."""
        from .scenarios import SCENARIOS
        hosts = {}
        for name in names:
            label, _sep, mode = name.partition(":")
            hosts[label] = (self.make(scenario=label) if label in SCENARIOS
                            else self.make(label, mode=mode or "full", start=True))
        return hosts

    def destroy(self):
        for host in self.made:
            host.destroy()
        shutil.rmtree(self.parent, ignore_errors=True)


@contextlib.contextmanager
def host_set(prefix="simtrain-"):
    """A HostSet for the duration of the block (pytest fixtures yield its ``make`` or ``named``)."""
    hosts = HostSet(prefix)
    try:
        yield hosts
    finally:
        hosts.destroy()


@contextlib.contextmanager
def temporary_host(name="host", mode="full", **kw):
    """A TrainHost in a fresh scratch folder, destroyed (daemon stopped, files removed) afterwards."""
    parent = scratch_dir()
    host = None
    try:
        host = TrainHost.build(parent, name, mode=mode, **kw)
        yield host
    finally:
        if host is not None:
            host.destroy()
        shutil.rmtree(parent, ignore_errors=True)


def write_json(path, doc):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, indent=2)
        handle.write("\n")


def sparse(path, size):
    """A file of ``size`` bytes that takes no space (a hole), as the listings give sizes only."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(size)


class TrainHost(object):
    """One simulated training host: ``base`` (training_base_dir) and ``sim`` (simulation state)."""

    def __init__(self, root):
        self.root = root
        self.base = os.path.join(root, "base")
        self.sim = os.path.join(root, "sim")
        self.proc = None
        self.others = []
        self.mode = "full"
        self.rig = None
        self.gpu = None
        self.owner = (NOBODY, NOBODY) if os.geteuid() == 0 else (os.geteuid(), os.getegid())

    # -- building ------------------------------------------------------------------------

    @classmethod
    def build(cls, parent, name="train-host", mode="full", checkpoints=True, lock=True, log=fixtures.HEALTHY_LOG,
              gpus=1):
        host = cls(os.path.join(parent, name))
        host.mode = mode
        if os.path.exists(host.root):
            raise FileExistsError(host.root)
        os.makedirs(host.sim)
        os.makedirs(host.base)
        for folder in ("inbox", "logs", "status", "queue", "current_model", "core", "data"):
            os.makedirs(os.path.join(host.base, folder))
        with open(os.path.join(host.base, "core", "train.py"), "w") as handle:
            handle.write("# simtrain stub of the training entry point (never run by the tests)\n")
        shutil.copyfile(STANDIN, os.path.join(host.base, "core", "training_daemon.py"))
        with open(os.path.join(host.base, "data", "train.jsonl"), "w") as handle:
            handle.write('{"text": "simtrain sample"}\n')
        host.write_config(dict(FULL_CONFIG if mode == "full" else LORA_CONFIG))
        if log:
            shutil.copyfile(str(fixtures.crash_log_path(log)), os.path.join(host.base, "logs", "train.log"))
        if checkpoints:
            listing, state, step = CHECKPOINT_SETS[mode]
            host.add_checkpoint(listing, state, step=step)
        host.set_meminfo(MEMINFO)
        if gpus:
            host.add_gpus(gpus)
        if lock:
            host.lock_config()
        host.give_to_owner()
        return host

    def give_to_owner(self):
        """chown the base tree to the service user (root runs only); symlinks are not followed."""
        if os.geteuid() != 0:
            return
        for dirpath, dirnames, filenames in os.walk(self.base):
            for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
                os.lchown(name, *self.owner)

    def path(self, *parts):
        return os.path.join(self.base, *parts)

    def config(self):
        with open(self.path("config.json"), encoding="utf-8") as handle:
            return json.load(handle)

    def write_config(self, doc):
        write_json(self.path("config.json"), doc)

    def update_config(self, **changes):
        doc = self.config()
        for key, value in changes.items():
            if value is _DELETE:
                doc.pop(key, None)
            else:
                doc[key] = value
        self.write_config(doc)

    def lock_config(self, config=None, now=None):
        """Write .config_lock.json for ``config`` (default: the current one) as the product writes it."""
        from ansible_collections.gpuops.preflight.plugins.module_utils import _training_config
        doc = _training_config.lock_document(config if config is not None else self.config(), self.path("config.json"),
                                             time.time() if now is None else now)
        write_json(self.path(".config_lock.json"), doc)

    def add_checkpoint(self, listing, state=None, step=None, global_step=None, drop=()):
        """Lay a recorded listing out as ``current_model/checkpoint-<step>`` (sparse files).

        ``state``: the real trainer_state.json to put in; ``global_step``: write a DERIVED state
        with that global_step instead. ``drop``: file names of the listing left out.
        """
        rows = fixtures.listing(listing)
        recorded = rows[0][0].split("/", 1)[0]
        folder = self.path("current_model", "checkpoint-%d" % step if step is not None else recorded)
        for rel, size in rows:
            name = rel.split("/", 1)[1]
            if name in drop:
                continue
            target = os.path.join(folder, name)
            if name == "trainer_state.json" and state is not None:
                doc = json.loads(fixtures.trainer_state_path(state).read_text(encoding="utf-8"))
                if global_step is not None:
                    doc["global_step"] = global_step
                    doc["simtrain_derived"] = "global_step changed from the recorded state %s" % state
                    write_json(target, doc)
                else:
                    os.makedirs(folder, exist_ok=True)
                    shutil.copyfile(str(fixtures.trainer_state_path(state)), target)
            else:
                sparse(target, size)
        self.give_to_owner()
        return folder

    def add_gpus(self, count=1, fixture=RTX3090):
        """The host's GPUs: a simrig NVIDIA rig under sim/gpu (no AMD GPU, no ramdisk on /dev/shm)."""
        from simrig import build_nvidia_rig
        rig, self.gpu = build_nvidia_rig(self.sim, "gpu", gpus=count, fixture=fixture, ramdisk="rig", users=())
        self.rig = rig
        return self.gpu

    def set_meminfo(self, text):
        with open(os.path.join(self.sim, "meminfo"), "w") as handle:
            handle.write(text)

    # -- the daemon ----------------------------------------------------------------------

    def start_daemon(self, start_step=None, hang=False, interval=0.2, wait=10.0, stale_s=0, warmup_s=0):
        """Start core/training_daemon.py as a real child (as nobody under root); wait for its PID and status files.
        ``hang``: it writes its status once (``stale_s`` seconds old) and never again; ``warmup_s``: it runs that
        long before writing anything (so that it is older than a 1 s stall_timeout when it hangs)."""
        if start_step is None:
            start_step = CHECKPOINT_SETS[self.mode][2] + 10
        argv = [PYTHON, self.path("core", "training_daemon.py"), "--base", self.base, "--start-step", str(start_step),
                "--interval", str(interval), "--warmup-s", str(warmup_s)] + (
                    ["--hang", "--stale-s", str(stale_s)] if hang else [])
        for stale in (self.path(".daemon.pid"), self.path("status", "training_status.json")):
            if os.path.lexists(stale):
                os.unlink(stale)
        kwargs = {}
        if os.geteuid() == 0:
            kwargs.update(user=self.owner[0], group=self.owner[1], extra_groups=[])
        log = open(os.path.join(self.sim, "daemon.out"), "ab")
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True, **kwargs)
        finally:
            log.close()
        end = time.monotonic() + wait
        while time.monotonic() < end:
            if os.path.exists(self.path(".daemon.pid")) and os.path.exists(self.path("status", "training_status.json")):
                return self.proc.pid
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        hint = (" (it runs as uid %d: every folder above %s must let it in, as scratch_dir() does)"
                % (self.owner[0], self.base) if os.geteuid() == 0 else "")
        raise RuntimeError("the stand-in daemon did not start%s: %s" % (hint, self.daemon_output()))

    def daemon_output(self):
        try:
            with open(os.path.join(self.sim, "daemon.out"), encoding="utf-8", errors="replace") as handle:
                return handle.read()[-2000:]
        except OSError:
            return ""

    def kill_daemon(self):
        """SIGKILL the daemon and reap it: its PID file stays behind, stale (a crashed daemon)."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop_daemon(self):
        """SIGTERM (the daemon removes its PID file), then SIGKILL if needed; always reaped."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            self.proc.wait()

    def start_other(self, argv):
        """Start a process that is not the daemon (stopped by destroy()); returns its pid."""
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        self.others.append(proc)
        return proc.pid

    def settings(self, **overrides):
        """The health-check settings of this host (_training_checks.settings) with the simulation's inputs."""
        from ansible_collections.gpuops.preflight.plugins.module_utils import _training_checks
        values = {"meminfo": os.path.join(self.sim, "meminfo"), "min_free_bytes": 1024 * 1024,
                  "cgroup_root": os.path.join(self.sim, "cgroup")}
        values.update(overrides)
        return _training_checks.settings(self.base, **values)

    def params(self, **options):
        """The options of node_training_health (every one: the module's defaults, with the shared GPU-probe
        options) that point the checks at this host; ``options`` win."""
        from ansible_collections.gpuops.preflight.plugins.module_utils import _options, _training_health
        spec = _options.argument_spec(_training_health.FAMILY, **_training_health.OPTIONS)
        out = dict((name, value.get("default")) for name, value in spec.items())
        out["checks"] = list(_training_health.FAMILY.host_checks)
        out["timeouts"] = {}
        for key, value in self.host_vars(prefix="").items():
            out[key] = value
        out.update(options)
        return out

    def host_vars(self, prefix="training_health_"):
        """Inventory variables that point the training-health checks at this host (``training_base_dir`` and
        ``<prefix><option>``); the GPU options only when the host has a GPU rig."""
        out = {"training_base_dir": self.base}
        # the cgroups of the machine running the tests are no part of the simulated host
        own = {"meminfo": os.path.join(self.sim, "meminfo"), "min_free_gb": MIN_FREE_GB,
               "cgroup_root": os.path.join(self.sim, "cgroup")}
        if self.rig is not None:
            own.update(nvidia_smi=self.gpu.nvidia_smi, sysfs_root=self.rig.sys_root, kernel_log=self.rig.kernel_log)
        else:
            own.update(gpu_tool="sysfs", kernel_log="none")
        for key, value in own.items():
            out[prefix + key] = value
        return out

    def moving(self):
        """What changes by itself while the host runs, not by any check: the daemon's status and PID files and
        output, the GPU stand-in's call log. Left out when a test hashes the tree."""
        return (self.path("status"), self.path(".daemon.pid"), os.path.join(self.sim, "daemon.out"),
                os.path.join(self.sim, "gpu", "nvidia-smi.d"))

    def destroy(self):
        self.stop_daemon()
        for proc in self.others:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


class _Delete(object):
    def __repr__(self):
        return "DELETE"


_DELETE = _Delete()
DELETE = _DELETE
