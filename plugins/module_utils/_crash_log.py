# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: the training crash-log scanner.

Parts:

* ``read_tail(path, lines)``: the last N lines of a log, read backwards from its end in blocks
  (never the whole file), within a byte budget and a deadline. Refuses what is not a regular file
  and never blocks on a FIFO.
* ``PATTERNS`` / ``harmless``: the pattern table. A line gives at most one category, from the first
  pattern that matches (more specific wording first: the CUDA/HIP allocator's out-of-memory before
  the kernel's OOM killer, GPU errors before NCCL errors, NCCL/collective timeouts before plain
  timeouts). Harmless lines give nothing: warnings (Python ``...Warning:``, logging level WARNING,
  glog/absl ``W`` and ``I`` lines), ``NCCL INFO`` lines, known notices (xformers' missing triton and
  the traceback some versions print under it, a model's optional package, wandb's retry loop and its
  retried API calls, huggingface_hub's warning on a request it retries, rocBLAS falling back from
  hipBLASLt, gRPC's exit notice), source lines that a traceback prints under ``File "...", line N`` or
  in rich's box, and metrics whose names only look alarming (``eval_loss``, ``error_rate``, a best loss
  still at its start value inf) with finite values.
  A row may report a consequence (``after``, ``after_categories``): its line gives nothing right after its cause (DataLoader's
  'exited unexpectedly' after the worker's own 'is killed by signal: ...'; an abort after a line of a hard category, a CUDA
  error or the NCCL watchdog thrown where nothing catches it).
* ``STREAKS``: failures that only a run of lines shows, each line harmless alone (a training loss of exactly 0,
  three logged in a row); declared like the patterns, counted by ``scan_lines``.
* ``scan_lines`` / ``collapse``: matches per (file, category) collapsed into one crash
  ``{category, severity, file, line, count, first_seen, last_seen, fix}`` (``line`` is the newest
  matching line), and split into *events* (matches more than ``EVENT_GAP_LINES`` lines or
  ``EVENT_GAP_S`` seconds apart are separate events).
* The history (``.crash_history.json``): each new event is appended once (its fingerprint is the
  byte offset and text of its last line, stable while a log only grows), written atomically; the
  newest ``HISTORY_MAX_RECORDS`` (5000) events are kept.
  Recurrence counts the events of a category in the last 24 hours ("3rd cuda_oom in 24 h"). A
  history file that exists but is not ours is reported and never overwritten.

Line times: ISO 8601-like stamps anywhere in the first 160 characters (``2024-03-15 16:13:12,728``,
``2024-09-09_09:36:56``; no zone = local time, as Python's logging writes), glog / c10 stamps
(``E0321 02:07:08.408``, ``[E321 02:07:08.408271257 ...]``; no year: the current one), syslog
(``Mar 21 02:07:08 host ...``) and ``dmesg -T`` (``[Thu Mar 21 02:07:08 2024]``). A line without a
time of its own takes the time of the line before it.
"""

from __future__ import annotations

import collections
import errno
import glob
import hashlib
import os
import re
import time

from ansible_collections.gpuops.preflight.plugins.module_utils import _checks
from ansible_collections.gpuops.preflight.plugins.module_utils import _timeparse
from ansible_collections.gpuops.preflight.plugins.module_utils import _files
from ansible_collections.gpuops.preflight.plugins.module_utils import _training_config as _config
from ansible_collections.gpuops.preflight.plugins.module_utils._kernel_time import yearless_epoch
from ansible_collections.gpuops.preflight.plugins.module_utils._timeparse import local_epoch
from ansible_collections.gpuops.preflight.plugins.module_utils._values import human_bytes, without_escapes

HARD = _checks.HARD
SOFT = _checks.SOFT

DEFAULT_LINES = 1000
MAX_LINES = 100000
MAX_LINE_CHARS = 4096         # a line (each carriage-return part of it) is matched on its first 4096 characters
MAX_END_CHARS = 1024          # and a longer one on its last 1024 too (a verdict after a long argv or dump)
MAX_LINE_BYTES = MAX_LINE_CHARS * 4  # read of a line: its first bytes and its last ones (see _decode)
MAX_END_BYTES = MAX_END_CHARS * 4
MAX_SEGMENTS = 64             # carriage-return parts of one line looked at: the last ones (segments)
MAX_MESSAGE_CHARS = 400       # the line reported in a crash
_CUT = " ... "                # where the middle of a long line was left out
BLOCK = 64 * 1024
BYTES_PER_LINE = 8192         # the byte budget of a tail read: lines x this, at most MAX_TAIL_BYTES
MAX_TAIL_BYTES = 64 * 1024 * 1024
MAX_FILES = 256
EVENT_GAP_LINES = 200
CAUSE_WINDOW_LINES = 100      # lines (their carriage-return parts) a consequence row looks back for its cause: a traceback between
EVENT_GAP_S = 600
RECURRENCE_WINDOW_S = 86400
HISTORY_LIMIT = 16 * 1024 * 1024
# Events the history keeps, the newest: a daemon crash-looping for weeks must not grow the file to the
# size limit (where recording stops). Far more than a scan can see again (its lines x its files), so an
# event dropped here is never recorded twice.
HISTORY_MAX_RECORDS = 5000
HISTORY_KIND = "gpuops.preflight.crash_history"
HISTORY_VERSION = 1
HISTORY_LOCK_TIMEOUT = 5.0   # seconds a scan waits for another one writing the history

# Category -> (severity, suggested fix). Names are part of the interface.
CATEGORIES = {
    "cuda_oom": (
        HARD,
        "The GPU ran out of memory (CUDA/HIP allocator). Lower the batch size or sequence length, enable "
        "gradient checkpointing, or set PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True when reserved memory "
        "is far above allocated; check that no other process holds VRAM."),
    "gpu_error": (
        HARD,
        "A GPU kernel failed (illegal memory access, device-side assert, ECC error or launch failure). Re-run "
        "with CUDA_LAUNCH_BLOCKING=1 to find the operation; a device-side assert is usually a label or token id "
        "out of range; an ECC error or a GPU that fell off the bus needs the GPU checked (nvidia-smi -q, dmesg)."),
    "nccl_timeout": (
        HARD,
        "A collective (NCCL/RCCL, gloo, the c10d store) failed or timed out: one rank hung, died or could not "
        "connect. Find the rank that stopped first; check the GPUs and the network between ranks; raise the "
        "process-group timeout only when a step really needs longer."),
    "process_killed": (
        HARD,
        "The process was killed (SIGKILL), usually by the kernel's or a cgroup's OOM killer: host memory ran "
        "out. Check 'journalctl -k | grep -i oom', lower the dataloader workers or the data held in memory, "
        "or raise the memory limit."),
    "timeout": (
        SOFT,
        "An operation timed out (network, Hub or storage access). Check connectivity from the host (proxy, "
        "HF_HUB_OFFLINE=1 for a host without internet) and the storage it writes to."),
    "import_error": (
        HARD,
        "A Python module or shared library is missing. Install the training environment's requirements into "
        "the daemon's environment (the same venv it runs in) and check LD_LIBRARY_PATH for CUDA/ROCm libraries."),
    "nan_loss": (
        HARD,
        "The loss became NaN/inf (or fp16 loss scaling gave up, or sampling met NaN probabilities). Lower the "
        "learning rate, use bf16 instead of fp16, clip gradients (max_grad_norm), and check the data for empty or "
        "broken samples; resume from the last checkpoint before the NaN."),
    "disk_full": (
        HARD,
        "The disk is full (ENOSPC or a failed checkpoint write). Free space on the output folder's filesystem "
        "(old checkpoints, save_total_limit) and check the checkpoint written last: it may be incomplete."),
}


# Fixes of single rows, where their category's fix would point the wrong way.
SHM_FIX = (
    "Shared memory (/dev/shm) is full: DataLoader workers and NCCL pass tensors through it, and a container gets "
    "64 MiB by default. Give it more (docker --shm-size=16g; in Kubernetes an emptyDir with medium: Memory mounted "
    "on /dev/shm), lower num_workers, and remove what crashed runs left there (/dev/shm/torch_*, nccl-*).")
SIGBUS_FIX = (
    "A training process died of SIGBUS (bus error): in a container almost always shared memory (/dev/shm) that could not "
    "back a page NCCL, the DataLoader or the inference shards mapped (a container gets 64 MiB by default: docker "
    "--shm-size=16g or --ipc=host; in Kubernetes an emptyDir with medium: Memory on /dev/shm; in Slurm enough --mem). "
    "Else a file mapped in memory shrank while it was read (a dataset or checkpoint rewritten on shared storage).")
HOST_MEMORY_FIX = (
    "Host memory ran out: PyTorch's CPU allocator (DefaultCPUAllocator) could not allocate a tensor, or Python / numpy "
    "an array (MemoryError). Hold less in "
    "host memory (fewer dataloader workers, load the model with low_cpu_mem_usage=True or straight to the GPU) or "
    "raise the memory limit; 'free -g' shows what is left.")
OP_BUILD_FIX = (
    "A compiled op (DeepSpeed's cpu_adam/fused_adam, a torch C++/CUDA extension) could not be built at start: the CUDA "
    "toolkit (nvcc, its headers and libraries such as cusparse) or a C++ compiler is missing, or its version does not "
    "match torch's CUDA. Install the toolkit that matches torch's CUDA and set CUDA_HOME, or pre-build the ops into the "
    "environment (DS_BUILD_OPS=1 pip install deepspeed).")
NO_GPU_FIX = (
    "The training process saw no usable GPU: CUDA_VISIBLE_DEVICES (or HIP_VISIBLE_DEVICES) empty or naming a GPU that "
    "is not there, the driver not loaded, replaced by an update without a reboot or older than the CUDA version the "
    "installed PyTorch needs, a CPU-only PyTorch build in the environment, or a container started without GPUs. Check "
    "nvidia-smi / amd-smi on the host and in the daemon's environment, and dmesg for the driver.")
SEGFAULT_FIX = (
    "A training process or a DataLoader worker died of SIGSEGV (segmentation fault): native code crashed; not host memory "
    "running out (that is SIGKILL) and not the job being stopped. Usually a native library of the data pipeline (an image or "
    "video decoder, OpenCV, a tokenizer) or a compiled extension built for another torch/CUDA version, rarely the driver. "
    "Re-run with num_workers=0 and PYTHONFAULTHANDLER=1 to see where it crashed, and check that compiled extensions match "
    "the installed torch.")
ABORT_FIX = (
    "A training process died of SIGABRT (it aborted): native code gave up on an error it could not handle, most often a C++ "
    "exception nobody caught ('terminate called after throwing an instance of ...'), else a failed check or assertion in a "
    "library, or glibc finding its heap corrupted; not host memory running out (that is SIGKILL) and not the job being "
    "stopped. The lines just above the abort say what failed: the exception's type and its 'what():' text, and the library "
    "that threw it in the frames under it (libc10/libtorch, NCCL, a compiled extension, a data or tokenizer library). When "
    "they are missing (the rank's own output went elsewhere), read the rank's log, re-run with PYTHONFAULTHANDLER=1, and let "
    "it leave a core dump (ulimit -c unlimited in the job, then coredumpctl info / gdb -c core python and 'bt') to see where "
    "it aborted; check that compiled extensions were built for the installed torch.")
DATALOADER_WORKER_FIX = (
    "A DataLoader worker died and the training process found it gone. The lines before say how: 'killed by signal: Killed' is "
    "the OOM killer (host memory: lower num_workers, hold less per worker), 'Bus error' is a full /dev/shm (a container gets "
    "64 MiB by default: docker --shm-size=16g), 'Segmentation fault' a native library that crashed. Without them, check "
    "'journalctl -k | grep -i oom' and 'df -h /dev/shm', and re-run with num_workers=0 for the worker's own error.")
OPEN_FILES_FIX = (
    "The process reached its open-files limit (EMFILE, 'Too many open files'; no disk is full): DataLoader workers pass "
    "every tensor to the training process as a file descriptor (torch's default file_descriptor sharing strategy), so many "
    "workers or large batches of small tensors exhaust a limit of 1024. Raise it for the job (ulimit -n 65536; systemd "
    "LimitNOFILE=, docker --ulimit nofile=65536:65536) or call torch.multiprocessing.set_sharing_strategy('file_system') at "
    "the start of the training script.")
TIME_LIMIT_FIX = (
    "Slurm stopped the job at its time limit. Raise the limit (sbatch --time) or save checkpoints often enough to "
    "resume from the last one in a requeued job.")
CUDNN_HANDLE_FIX = (
    "cuDNN could not create its handle (CUDNN_STATUS_NOT_INITIALIZED, 'Could not create cudnn handle'): almost always the "
    "GPU memory was already taken when cuDNN started, by this process or another one (TensorFlow takes all of it unless "
    "TF_FORCE_GPU_ALLOW_GROWTH=true). Check nvidia-smi for other processes, lower the batch size; if memory is free, the "
    "cuDNN, CUDA and driver versions do not match.")
GPU_ARCH_FIX = (
    "The installed build has no GPU code for this GPU's architecture (hipErrorNoBinaryForGpu, 'invalid device function', "
    "'no kernel image is available'): install a PyTorch/ROCm/CUDA build (or rebuild the extension) for this GPU. On an AMD "
    "card ROCm does not list, HSA_OVERRIDE_GFX_VERSION set to the nearest supported one (10.3.0 for RDNA2, 11.0.0 for "
    "RDNA3) in the daemon's environment makes it load; HSA_STATUS_ERROR_INVALID_ISA means that override is wrong.")
ENGINE_MEMORY_FIX = (
    "The inference engine (vLLM, SGLang: the rollout of RL training) found too little GPU memory for its weights and KV "
    "cache: another process holds GPU memory (or the trainer's own model on the same GPU, not offloaded before the "
    "rollout), or max_model_len is too long for the share it was given. Free the GPU (nvidia-smi), lower max_model_len, "
    "or raise gpu_memory_utilization / --mem-fraction-static (lower it when vLLM says free memory at start is less than "
    "it asks for).")
TRITON_RESOURCES_FIX = (
    "A Triton kernel (torch.compile/inductor, flash/linear attention, fused MoE or fp8 kernels) asked for more on-chip "
    "shared memory (or registers) per block than this GPU has: consumer and older GPUs have far less than an A100/H100 "
    "(101376 bytes on an RTX 3090/4090, 65536 on an RTX 20xx). Not GPU memory (VRAM) and not /dev/shm. Use a kernel "
    "configuration for this GPU (smaller block sizes, fewer num_stages), a library version that has one, or switch the "
    "Triton path off (torch.compile off, the library's non-Triton backend).")
PORT_IN_USE_FIX = (
    "The port the job listens on is held by another process (EADDRINUSE): usually the rendezvous port of "
    "torch.distributed (MASTER_PORT, torchrun --master_port, 29500 by default) taken by a run still alive or a second "
    "job on the same host. Stop the old run ('ss -ltnp' shows who holds the port) or give each job its own port.")


class Pattern(object):
    """One row of the pattern table: a category, the regex (case-insensitive) that gives it, and the fix
    (the category's, unless the row names its own). A row with ``after`` reports a consequence: in a log, its line gives
    nothing when one of the ``CAUSE_WINDOW_LINES`` lines before it matched ``after`` (its cause, already reported in its
    own words, or a stop from outside). A row with ``after_categories`` gives nothing either when one of those lines gave
    one of these categories (whichever row it matched, a consequence or not: a chain of consequences follows its cause)."""

    __slots__ = ("category", "severity", "fix", "summary", "after_categories", "_sources", "_compiled")

    def __init__(self, category, regex, summary, fix=None, after=None, after_categories=()):
        self.category = category
        self.severity, category_fix = CATEGORIES[category]
        self.fix = fix or category_fix
        self.summary = summary
        self.after_categories = frozenset(after_categories)
        self._sources = (regex, after)
        self._compiled = None

    def _regexes(self):
        # Compiled when first matched: the controller imports this table with the training health family (the plan,
        # the judge) and never matches a line; compiling every row at import cost it about 15 ms a run.
        if self._compiled is None:
            regex, after = self._sources
            self._compiled = (re.compile(regex, re.IGNORECASE), re.compile(after, re.IGNORECASE) if after else None)
        return self._compiled

    @property
    def regex(self):
        return self._regexes()[0]

    @property
    def after(self):
        return self._regexes()[1]

    def __repr__(self):
        return "Pattern(%s, %r)" % (self.category, self.regex.pattern)


_P = Pattern
_NONFINITE = r"['\"]?(?:tensor\()?[-+]?(?:nan|inf(?:inity)?)\b"  # nan, 'inf', -Infinity, tensor(nan, ...)

# A CUDA/HIP call made while the process exits, after the driver was torn down (a static object's destructor, an event
# still polled): "CUDA_ERROR_DEINITIALIZED" (4) and cudaErrorCudartUnloading (29), "driver shutting down"
# (https://github.com/tensorflow/tensorflow/issues/8483 after a finished run, https://github.com/AlexeyAB/darknet/
# issues/1829): teardown noise, never the cause; a run that failed says so before it. Harmless, and the abort it can end
# in adds nothing (the recorded TensorFlow log: a finished run, then "Aborted (core dumped)")
_TEARDOWN = r"\b(?:CUDA_ERROR_DEINITIALIZED|cudaErrorCudartUnloading|hipErrorDeinitialized)\b|\bdriver shutting down\b"
# The failures an abort can follow, each reported in its own words before it (a CUDA error or the NCCL watchdog thrown
# where nothing catches it, a failed checkpoint write, an earlier abort or kill): a hard category. A soft one (a timed-out
# request the run survived) hides no abort after it.
_HARD_CAUSES = tuple(name for name in CATEGORIES if CATEGORIES[name][0] == HARD)

# Ordered: the first match wins, so the most specific wording comes first.
PATTERNS = [
    # The GPU allocator's out-of-memory (PyTorch CUDA/HIP, cuBLAS/cuDNN/rocBLAS/MIOpen, XLA on GPU).
    _P("cuda_oom", r"\b(?:CUDA|HIP|cuda|hip)\b.{0,24}?\bout of memory\b", "CUDA/HIP out of memory"),
    _P("cuda_oom", r"\b(?:torch(?:\.cuda)?\.)OutOfMemoryError\b|\bOutOfMemoryError:\s*(?:CUDA|HIP)\b",
       "PyTorch OutOfMemoryError"),
    _P("cuda_oom", r"\b(?:cudaErrorMemoryAllocation|hipErrorOutOfMemory|CUBLAS_STATUS_ALLOC_FAILED|"
                   r"CUDNN_STATUS_ALLOC_FAILED|HIPBLAS_STATUS_ALLOC_FAILED|rocblas_status_memory_error|"
                   r"miopenStatusAllocFailed|HSA_STATUS_ERROR_OUT_OF_RESOURCES|"
                   # the CUDA driver API's name (TensorFlow's "failed to allocate 128.00M (134217728 bytes) from device:
                   # CUDA_ERROR_OUT_OF_MEMORY", https://github.com/tkuanlun350/3DUnet-Tensorflow-Brats18/issues/25)
                   r"CUDA_ERROR_OUT_OF_MEMORY)\b", "GPU library allocation failed"),
    # cuDNN could not create its handle: mostly GPU memory already full when it started (https://github.com/haotian-liu/
    # LLaVA/issues/392, https://github.com/seanie12/Info-HCVAE/issues/7, https://github.com/flexflow/flexflow-train/
    # issues/51), else mismatched cuDNN/CUDA/driver versions. Not the allocator's out-of-memory (cuda_oom is that alone):
    # gpu_error, its fix naming the memory first. Before the generic CUDNN_STATUS_ row, for its fix.
    _P("gpu_error", r"\bCUDNN_STATUS_NOT_INITIALIZED\b|\bcould not create cudnn handle\b", "cuDNN could not start",
       fix=CUDNN_HANDLE_FIX),
    _P("cuda_oom", r"\bcudaMalloc\w*\b.{0,60}\bout of memory\b", "cudaMalloc out of memory"),
    # PyTorch < 1.5's THC check of a CUDA call ("THCudaCheck FAIL file=.../THCStorage.cu line=58 error=2 : out of
    # memory"); a THCudaCheck of another error alone is no verdict (RTX cards printed some while training went on)
    _P("cuda_oom", r"\bTHCudaCheck FAIL\b.{0,300}?\berror=2 : out of memory\b", "CUDA out of memory (THC)"),
    _P("cuda_oom", r"\bRESOURCE_EXHAUSTED:\s*Out of memory while trying to allocate\b", "XLA GPU out of memory"),
    _P("cuda_oom", r"\bOOM when allocating tensor\b.*\bGPU\b", "TensorFlow GPU out of memory"),
    # bitsandbytes' check of a CUDA call that failed to allocate ("Error out of memory at line 380 in file
    # .../csrc/pythonInterface.c": its paged optimizer's managed memory; ".../csrc/ops.cu"), before its other failures
    _P("cuda_oom", r"^\W{0,3}Error out of memory at line \d+ in file\b", "CUDA allocation failed (bitsandbytes)"),
    # an inference engine with too little GPU memory at start (vLLM: https://github.com/vllm-project/vllm/issues/10439,
    # /10517, https://github.com/pytorch/pytorch/issues/175666; SGLang's check of --mem-fraction-static)
    _P("cuda_oom", r"\bNo available memory for the cache blocks\b|"
                   r"\bthan the maximum number of tokens that can be stored in KV cache\b|"
                   r"\bon startup is less than desired GPU memory utilization\b|"
                   r"\bNot enough memory\. Please try to increase --mem-fraction-static\b",
       "inference engine: too little GPU memory for its KV cache", fix=ENGINE_MEMORY_FIX),
    # accelerate's find_executable_batch_size halved the batch on each GPU OOM down to nothing
    _P("cuda_oom", r"\bNo executable batch size found\b", "no batch size fits in GPU memory"),
    # Killed: SIGKILL, the kernel's or a cgroup's OOM killer (before anything that says "out of memory").
    _P("process_killed", r"\bOut of memory: Kill(?:ed)? process\b", "kernel OOM killer"),
    _P("process_killed", r"\bMemory cgroup out of memory\b", "cgroup OOM killer"),
    _P("process_killed", r"\binvoked oom-killer\b|\boom-kill:|\boom_reaper\b|\bkilled by the OOM killer\b|"
                         r"\bresult '?oom-kill'?|\boom[-_]kill event|\bOOM[- ]?Killed\b|\btask \d+: Out Of Memory\b|"
                         r"\bsystemd-oomd\[\d+\]: Killed\b|\bsystemd-oomd killed \d+ process|"
                         # Ray's memory monitor (verl, OpenRLHF): "Task was killed due to the node running low on memory"
                         r"\bkilled due to the node running low on memory\b|\bkilled due to memory pressure \(OOM\)|"
                         r"\bNODE_OUT_OF_MEMORY\b",
       "OOM killer"),  # Slurm's step cgroup ("Detected 1 oom-kill event", srun's "task 0: Out Of Memory"), k8s, systemd-oomd, Ray
    # "[:=]" is optional after its own spaces only: "\s*[:=]?\s*" would backtrack over a run of spaces.
    _P("process_killed", r"\b(?:exit|return) ?(?:code|status)\s*(?:[:=]\s*)?(?:-9|137)\b|"
                         r"\bexited with code\s+(?:-9|137)\b|\breturned non-zero exit status (?:-9|137)\b",
       "exit code -9 / 137 (SIGKILL)"),
    _P("process_killed", r"\bSignal 9 \(SIGKILL\)|\bSignals\.SIGKILL\b|"
                         r"\bkilled by signal:?\s*(?:9\b|SIGKILL\b|Killed\b)|"
                         r"\b(?:received|got|terminated by|terminated with signal|died with)\b.{0,20}\bSIGKILL\b|status=9/KILL\b",
       "SIGKILL"),
    _P("process_killed", r"\bDefaultCPUAllocator: (?:can't allocate|not enough) memory\b|"
                         # numpy's ("numpy.core._exceptions._ArrayMemoryError: Unable to allocate 7.91 GiB for an array",
                         # https://github.com/open-mmlab/mmhuman3d/issues/331) and Python's bare MemoryError
                         # (https://github.com/NRauschmayr/Anomaly_Detection/issues/2)
                         r"\b(?:_Array)?MemoryError: Unable to allocate\b|^\W{0,3}MemoryError\s*$",
       "host memory exhausted", fix=HOST_MEMORY_FIX),
    # a process that died of SIGSEGV (native code crashed): a DataLoader worker ("RuntimeError: DataLoader worker (pid 25902)
    # is killed by signal: Segmentation fault", https://github.com/MhLiao/DB/issues/94, and its handler's "ERROR: Unexpected
    # segmentation fault encountered in worker."), torchrun's summary ("exitcode  : -11 (pid: 6421)", "traceback : Signal 11
    # (SIGSEGV) received by PID 6421", https://github.com/NVIDIA/Megatron-LM/issues/1880; "failed (exitcode: -11) local_rank:
    # 0", https://github.com/tusen-ai/Anchor3DLane/issues/8), torch.distributed.launch's "died with <Signals.SIGSEGV: 11>"
    # (https://github.com/pytorch/pytorch/issues/61839), exit code 139, the shell's report. No category is a crash of native
    # code; process_killed (a process a signal ended) is the nearest, with its own fix
    _P("process_killed", r"\bkilled by signal: Segmentation fault\b|\bUnexpected segmentation fault encountered in worker\b|"
                         r"\bSignal 11 \(SIGSEGV\)|\bSignals\.SIGSEGV\b|\bterminated with signal SIGSEGV\b|"
                         r"\b(?:exit|return) ?(?:code|status)\s*(?:[:=]\s*)?(?:-11|139)\b|\bexited with code\s+(?:-11|139)\b|"
                         r"^\W{0,3}Segmentation fault(?: \(core dumped\))?\s*$|(?:^|:\s+)\d+\s+Segmentation fault\s+\S|"
                         # Python's faulthandler, also glued to a progress bar (https://github.com/threestudio-project/
                         # threestudio/issues/369)
                         r"\bFatal Python error: Segmentation fault\b", "SIGSEGV (segmentation fault)", fix=SEGFAULT_FIX),
    # a process that died of SIGABRT (it aborted): torchrun's summary ("exitcode  : -6 (pid: 2385923)", "traceback : Signal
    # 6 (SIGABRT) received by PID 2385923", https://github.com/open-mmlab/mmsegmentation/issues/3106) and its agent's
    # "failed (exitcode: -6)", mp.spawn's "process 1 terminated with signal SIGABRT" (https://github.com/rshaojimmy/
    # MultiModal-DeepFake/issues/24), "died with <Signals.SIGABRT: 6>", exit code 134, a DataLoader worker "is killed by
    # signal: Aborted." (https://github.com/pytorch/pytorch/issues/80594), the shell's "Aborted (core dumped)" and its job
    # report, faulthandler's "Fatal Python error: Aborted", libstdc++'s terminate handler without an exception to name.
    # Mostly the end of a failure printed before it in its own words (a CUDA error or the NCCL watchdog thrown where nothing
    # catches it: libstdc++'s "terminate called after throwing an instance of 'c10::Error'" and its "what():" line): after a
    # line of a hard category, or the driver torn down at exit, it adds nothing
    _P("process_killed", r"\bkilled by signal: Aborted\b|\bSignal 6 \(SIGABRT\)|\bSignals\.SIGABRT\b|"
                         r"\bterminated with signal SIGABRT\b|"
                         r"\b(?:exit|return) ?(?:code|status)\s*(?:[:=]\s*)?(?:-6|134)\b|\bexited with code\s+(?:-6|134)\b|"
                         r"^\W{0,3}Aborted(?: \(core dumped\))?\s*$|(?:^|:\s+)\d+\s+Aborted\s+\S|"
                         r"\bFatal Python error: Aborted\b|\bterminate called (?:without an active exception|recursively)\b",
       "SIGABRT (aborted)", fix=ABORT_FIX, after=_TEARDOWN, after_categories=_HARD_CAUSES),
    # the training process found a DataLoader worker gone ("RuntimeError: DataLoader worker (pid(s) 15927) exited unexpectedly",
    # https://github.com/michuanhaohao/reid-strong-baseline/issues/29; raised under the worker's own "is killed by signal: ..."
    # when torch saw it): most often the OOM killer. A worker that ended on a Python error ("exited unexpectedly with exit code
    # 1") is no kill
    # ... torch raises it from the worker's own verdict ("is killed by signal: Bus error.", "...: Terminated."): after one, it
    # adds nothing
    _P("process_killed", r"\bDataLoader worker \(pid(?:\(s\))? [\d, ]{1,200}\) exited unexpectedly\b(?! with exit code)",
       "DataLoader worker died", fix=DATALOADER_WORKER_FIX,
       after=r"\bDataLoader worker \(pid(?:\(s\))? [\d, ]{1,200}\) is killed by signal\b|"
             r"\bUnexpected (?:bus error|segmentation fault) encountered in worker\b"),
    # bash's job report pads the PID: "line 28:  8156 Killed    python3 main.py"
    # ... and written straight after a progress bar that had no newline ("3it [05:29, 105.48s/it]Killed",
    # github.com/marcochen11/EECS545_Final_Proj README at fef9a27df92f)
    _P("process_killed", r"^\W{0,3}Killed\s*$|(?:^|:\s+)\d+\s+Killed\s+\S|\]Killed\s*$", "Killed (shell)"),
    # GPU kernel failures.
    _P("gpu_error", r"\billegal memory access\b", "illegal memory access"),
    # the assert itself, not torch's hint after every CUDA/HIP error ("Compile with `TORCH_USE_CUDA_DSA` to enable
    # device-side assertions.", "Device-side assertion tracking was not enabled by user.")
    _P("gpu_error", r"\bdevice-side assert triggered\b|\bdevice-side assertion failures? (?:were|was) found\b",
       "device-side assert"),
    # (bounded gaps: ".*" twice was cubic on a long line of .cu mentions and Assertions without "failed")
    _P("gpu_error", r"\.(?:cu|cuh|hip)[:\]]\d*\b(?:(?!\bAssertion\b).){0,300}\bAssertion\b(?:(?!\bAssertion\b).){0,300}?\bfailed\b",
       "device-side assertion failed"),
    _P("gpu_error", r"\buncorrectable ECC error\b|\bECC error(?:s)? (?:encountered|detected)\b", "ECC error"),
    _P("gpu_error", r"\bunspecified launch failure\b|\blaunch failed\b|\bthe launch timed out and was terminated\b|"
                    r"\bmisaligned address\b", "kernel launch failure"),
    # no GPU at all (torch's lazy CUDA init, the driver's own status): the GPU is not usable, with its own fix
    _P("gpu_error", r"\bNo CUDA GPUs are available\b|\bFound no NVIDIA driver on your system\b|"
                    r"\b(?:CUDA|HIP) error: no (?:CUDA|ROCm)-capable device is detected\b|"
                    # torch's lazy init, https://github.com/Kai-46/ARF-svox2/issues/9 (its UserWarning form is a warning)
                    r"\bCUDA driver initialization failed\b|"
                    # the driver API's status (TensorFlow's "failed call to cuInit: CUDA_ERROR_NO_DEVICE: no CUDA-capable
                    # device is detected", https://github.com/rail-berkeley/softlearning/issues/150: it then trains on the CPU)
                    r"\bCUDA_ERROR_NO_DEVICE\b|"
                    # torch's driver check and its lazy init on a broken driver (https://github.com/ai4d-iasc/trixie/issues/9,
                    # https://github.com/serend1p1ty/SeqNet/issues/36; https://github.com/pytorch/pytorch/issues/65461):
                    # their UserWarning forms ("CUDA initialization: ...") are warnings
                    r"\bThe NVIDIA driver on your system is too old\b|"
                    r"\bCUDA unknown error - this may be due to an incorrectly set up environment\b|"
                    # a CUDA checkpoint loaded where torch sees no GPU (https://github.com/prophesier/diff-svc/issues/38: an
                    # RTX 3090 host resuming its training)
                    r"\bAttempting to deserialize object on a CUDA device but torch\.cuda\.is_available\(\) is False\b|"
                    # a CPU-only PyTorch in the training environment (https://github.com/karpathy/nanoGPT/issues/281,
                    # https://github.com/EagleW/Describing_a_Knowledge_Base/issues/8)
                    r"\bTorch not compiled with CUDA enabled\b",
       "no usable GPU", fix=NO_GPU_FIX),
    # a Triton kernel that needs more on-chip shared memory than this GPU has ("triton.runtime.errors.OutOfResources: out
    # of resource: shared memory, Required: 126978, Hardware limit: 101376. Reducing block sizes or `num_stages` may help.",
    # https://github.com/Yuliang-Liu/MonkeyOCR/issues/86; triton.runtime.autotuner's, https://github.com/state-spaces/mamba/
    # issues/387): the GPU's per-block limit, neither VRAM (cuda_oom) nor /dev/shm (disk_full)
    _P("gpu_error", r"\bOutOfResources: out of resource: (?:shared memory|registers|threads)\b|"
                    r"\bout of resource: shared memory, Required: \d+, Hardware limit: \d+",
       "Triton kernel exceeds the GPU's shared memory per block", fix=TRITON_RESOURCES_FIX),
    # no GPU code for this architecture: ROCm on a card it does not list (https://github.com/ROCm/legacy-rocm-build/issues/
    # 2536, a wrong HSA_OVERRIDE_GFX_VERSION: https://github.com/likelovewant/ROCmLibs-for-gfx1103-AMD780M-APU/issues/37,
    # the HIP runtime's own line: https://github.com/ggml-org/llama.cpp/issues/19949), a CUDA build without the arch
    _P("gpu_error", r"\bhipErrorNoBinaryForGpu\b|\bUnable to find code object for all current devices\b|"
                    r"\bNo compatible code objects found for\b|\bHSA_STATUS_ERROR_INVALID_ISA\b|"
                    r"\binvalid device function\b|\bhipErrorInvalidDeviceFunction\b|"
                    r"\bno kernel image is available for execution\b|"
                    # rocBLAS/hipBLASLt without kernels for the GPU ("rocBLAS error: Cannot read .../TensileLibrary.dat: Illegal
                    # seek for GPU arch : gfx900", https://github.com/pytorch/pytorch/issues/179865; "rocblaslt error: Could
                    # not load "TensileLibrary_lazy_gfx1101.dat"", https://github.com/ROCm/TheRock/issues/754)
                    r"\b(?:rocBLAS|rocblaslt) error: (?:Cannot read|Could not load)\b.{0,300}?\bTensileLibrary",
       "no GPU code for this architecture", fix=GPU_ARCH_FIX),
    _P("gpu_error", r"\b(?:CUDA|HIP) (?:driver )?error:", "CUDA/HIP error"),
    # Any status but success (an allocation failure is cuda_oom, above).
    # (a query on work still running answers cudaErrorNotReady / hipErrorNotReady / CUDA_ERROR_NOT_READY: no error)
    _P("gpu_error", r"\b(?:cudaError(?!MemoryAllocation|NotReady\b)\w+|hipError(?!OutOfMemory|NotReady\b)\w+|"
                    r"CUBLAS_STATUS_(?!SUCCESS\b)\w+|CUDNN_STATUS_(?!SUCCESS\b)\w+|HSA_STATUS_ERROR_\w+|"
                    # MIOpen's and hipBLAS's statuses (https://github.com/ROCm/MIOpen/issues/3943: "RuntimeError:
                    # miopenStatusUnknownError"), the CUDA driver API's (JAX, TensorFlow, CuPy: CUDA_ERROR_ILLEGAL_ADDRESS)
                    r"miopenStatus(?!Success\b|GpuOperationsSkipped\b)\w+|HIPBLAS_STATUS_(?!SUCCESS\b)\w+|"
                    r"CUDA_ERROR_(?!NOT_READY\b)\w+)\b|"
                    r"\b(?:rocBLAS|rocblaslt|hipBLAS(?:Lt)?|MIOpen|cuBLAS(?:Lt)?|cuDNN) error:", "CUDA/HIP library error"),
    # NCCL's and bitsandbytes' checks of a CUDA call, torch's first CUDA call.
    _P("gpu_error", r"\b(?:Cuda|HIP) failure\b|^\W{0,3}Error .{1,200}? at line \d+ in file .{1,300}?\.(?:cu|cuh|hip)\b|"
                    r"\berror from (?:cuda|hip)GetDeviceCount\(\)", "CUDA call failed"),
    # ... and the ROCm runtime's other memory fault of an agent ("Memory critical error by agent node-1 (Agent handle:
    # 0x2aecc9cfe0) on address 0x3f8b182000. Reason: Memory in use.", https://github.com/ROCm/amdgpu/issues/188)
    _P("gpu_error", r"\bMemory access fault by GPU\b|\bMemory critical error by agent node-\d+", "GPU memory access fault"),
    # ROCm's runtime on a GPU hardware exception ("HW Exception by GPU node-9 (Agent handle: 0x..) reason :GPU Hang")
    _P("gpu_error", r"\bHW Exception by GPU\b", "GPU hardware exception (ROCm)"),
    _P("gpu_error", r"\bGPU has fallen off the bus\b|\bNVRM: Xid\b", "GPU fault (Xid / off the bus)"),
    # Collectives: NCCL/RCCL, gloo, the c10d store and rendezvous.
    _P("nccl_timeout", r"\bWatchdog caught collective operation timeout\b|\bcollective operation timeout\b",
       "collective operation timeout (watchdog)"),
    _P("nccl_timeout", r"\bdetected by watchdog\b|\bwatchdog (?:thread terminated|got stuck|timed out)\b|"
                       r"\bHeartbeat monitor timed out\b", "NCCL watchdog"),
    _P("nccl_timeout", r"\bNCCL communicator was aborted\b|\bSome NCCL operations have failed or timed out\b",
       "NCCL communicator aborted"),
    _P("nccl_timeout", r"\b(?:NCCL|RCCL) (?:error|timeout)\b|\b(?:nccl|rccl)(?:SystemError|InternalError|"
                       r"InvalidUsage|UnhandledCudaError|RemoteError|InvalidArgument)\b", "NCCL error"),
    # the rendezvous port taken (torch < 1.11's TCPStore: "RuntimeError: Address already in use",
    # https://github.com/NVIDIA/tacotron2/issues/181; libuv's "address already in use", https://github.com/pytorch/pytorch/
    # issues/191560; "The server socket has failed to bind to [::]:29500 (errno: 98 - Address already in use)")
    _P("nccl_timeout", r"\bAddress already in use\b|\bEADDRINUSE\b", "port already in use", fix=PORT_IN_USE_FIX),
    _P("nccl_timeout", r"\bDistBackendError\b|\bDistStoreError\b|\bDistNetworkError\b|"
                       r"\bRendezvous(?:Timeout|Connection|Closed|State)Error\b", "distributed backend error"),
    # A rank that cannot reach the c10d store or its peers (whatever exception class carries it: TimeoutError,
    # RuntimeError): the job's rendezvous failed, not a plain network timeout.
    _P("nccl_timeout", r"\b(?:client|server) socket has (?:timed out|failed to (?:connect|listen|bind))\b|"
                       r"\bTCP client failed to connect\b|\bTimed out initializing process group\b|"
                       r"\bc10d key-value store\b.{0,200}?\bgot error\b|\bRuntimeError: Socket Timeout\b|"
                       r"\bconnectFullMesh failed\b", "c10d store or peers unreachable"),
    # torch.distributed.monitored_barrier: rank 0 names the ranks that did not reach it in time ("RuntimeError: [Rank 0]:
    # Rank 1 failed to pass monitoredBarrier in 30000 ms", ProcessGroupGloo.cpp), the others say they saw rank 0 fail
    _P("nccl_timeout", r"\bfailed to pass monitoredBarrier\b|\bMonitored Barrier encountered error\b|"
                       r"\breached monitoredBarrier, but received errors\b", "monitored barrier: a rank did not arrive"),
    # NCCL's network failures (its NCCL INFO lines, retries included, are harmless).
    # (the IB plugins' wordings: "NET/IB : Got completion from peer ... vendor err 129", https://github.com/NVIDIA/nccl/
    # issues/1814; "NET/IBP:Got completion ...", /1664; a verbs call that failed: "misc/ibvwrap.cc:280 NCCL WARN Call to
    # ibv_create_qp failed", /1129, "Call to ibv_modify_qp failed with error No such device", /925; an async error event
    # of the HCA: "NET/IB : mlx5_0:1 Got async event : port error", as net_ib.cc logs every event)
    _P("nccl_timeout", r"\bNET/IB\w{0,8}\s*:\s*Got completion from peer\b|"
                       # an async event that is an error (port error, QP fatal, local catastrophic error); not a GID
                       # table change or a port that came up
                       r"\bNET/IB\w{0,8}\s*:.{0,60}?\bGot async event\s*:\s*(?:[\w ]{0,40}?\b(?:error|fatal|catastrophic)\b)|\bNCCL WARN\b.{0,200}?"
                       r"(?:\bpoll\(\) failed\b|\bConnection (?:timed out|refused|reset|closed)\b|"
                       r"\bCall to ibv_\w+ failed\b|\bNET/IB\w{0,8}\s*:.{0,100}?\bibv_\w+ failed\b)",
       "NCCL network failure"),
    _P("nccl_timeout", r"\bProcessGroup(?:NCCL|Gloo)\b.*\b(?:timed out|timeout)\b|\bgloo\b.*\bTimed out\b",
       "collective timeout"),
    # gloo lost a peer in a collective: that rank died or its connection broke
    # ("[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:38032")
    _P("nccl_timeout", r"\bgloo/transport/tcp/pair\.cc:\d+\]\s*(?:Connection closed by peer|Read error|Write error)\b",
       "gloo lost a peer"),
    # Disk full and failed checkpoint writes; first /dev/shm, where DataLoader workers (torch_*) and NCCL
    # (posix_fallocate) share tensors.
    _P("disk_full", r"\bunable to write to file </torch_|\bposix_fallocate failed\b|\bfailed to extend /dev/shm/|"
                    r"\b(?:out of|insufficient) shared memory\b|"
                    # a DataLoader worker's SIGBUS, torch < 1.4's wording without the shm hint ("RuntimeError: DataLoader worker
                    # (pid 13) is killed by signal: Bus error.", https://github.com/pytorch/pytorch/issues/5040): its shared
                    # memory pages could not be backed
                    r"\bDataLoader worker \(pid\(?s?\)? ?[\d, ]+\) is killed by signal: Bus error\b|"
                    # NCCL creating its segment in /dev/shm (misc/shmutils.cc "Error while creating shared memory segment
                    # /dev/shm/nccl-WU88OE (size 9637888), error: No space left on device (28)", https://github.com/pytorch/
                    # ci-infra/pull/490; include/shm.h's "nccl-shm-recv-...", https://github.com/NVIDIA/nccl/issues/525).
                    # Attaching to one that is gone ("No such file or directory") is another failure.
                    r"\bError while creating shared memory segment\b|"
                    r"/dev/shm/\S{0,200}.{0,200}?\bNo space left on device\b|"
                    # Python's wording names the path after it: "OSError: [Errno 28] No space left on device: '/dev/shm/x'"
                    r"\bNo space left on device\b.{0,40}?/dev/shm/",
       "shared memory (/dev/shm) full", fix=SHM_FIX),
    # the open-files limit, where DataLoader workers pass each tensor as a file descriptor: "RuntimeError: unable to open shared
    # memory object </torch_30997_2076642173> in read-write mode" (https://github.com/facebookresearch/maskrcnn-benchmark/issues/
    # 158; newer torch adds ": Too many open files (24)", https://github.com/open-mmlab/mmpose/issues/2595), torch's "RuntimeError:
    # Too many open files. Communication with the workers is no longer possible." (github.com/mit-han-lab/calo-cluster README),
    # "OSError: [Errno 24] Too many open files". No disk is full, but no category is nearer than the host's file resources
    # (the /dev/shm rows): disk_full, with its own fix
    _P("disk_full", r"\bunable to open shared memory object </torch_|\bToo many open files\b|\[Errno 24\]|\bEMFILE\b",
       "too many open files", fix=OPEN_FILES_FIX),
    # a process (not a DataLoader worker, above) that died of SIGBUS: torchrun's summary ("exitcode  : -7 (pid: 10)",
    # "traceback : Signal 7 (SIGBUS) received by PID 10"), UCX's handler under NCCL ("Caught signal 7 (Bus error:
    # nonexistent physical address)", https://github.com/msr-fiddle/pipedream/issues/76: docker's 64 MiB /dev/shm),
    # mp.spawn's, the shell's; text-generation-inference warns of /dev/shm on it (https://github.com/IBM/
    # text-generation-inference/pull/34)
    _P("disk_full", r"\bSignal 7 \(SIGBUS\)|\bCaught signal 7 \(Bus error\b|\bterminated with signal SIGBUS\b|"
                    r"\b(?:exit|return) ?(?:code|status)\s*(?:[:=]\s*)?(?:-7|135)\b|\bexited with code\s+135\b|"
                    r"^\W{0,3}Bus error(?: \(core dumped\))?\s*$|\bFatal Python error: Bus error\b", "SIGBUS (bus error)",
       fix=SIGBUS_FIX),
    _P("disk_full", r"\bNo space left on device\b|\[Errno 28\]|\bENOSPC\b|\bStorageFull\b", "no space left on device"),
    _P("disk_full", r"\bDisk quota exceeded\b|\[Errno 122\]|\bEDQUOT\b", "disk quota exceeded"),
    # datasets' check before it writes its cache ("OSError: Not enough disk space. Needed: 134.92 GiB (download: ...")
    _P("disk_full", r"\bNot enough disk space\. Needed\b", "not enough disk space for the dataset cache"),
    _P("disk_full", r"\bPytorchStreamWriter failed writing\b|\bunexpected pos \d+ vs \d+\b|"
                    r"\bError while serializing: IoError\b", "checkpoint write failed"),
    # NaN/inf loss. A NaN/inf grad_norm beside a finite loss gives nothing: under fp16/AMP it is a step the
    # loss scaler skips (normal); a real divergence shows in the loss, the loss scale at its minimum, or sampling.
    # any metric named for a loss: loss, eval_loss, avr_loss, loss_net, Lightning's train_loss_step
    # (bounded: a long run of word characters must not make the match quadratic)
    # ... but not the running minimum of a loss at its start value, inf, printed before the first validation ("best_loss=inf",
    # "min_valid_loss=inf": kh-kim/simple-ntc's trainer at 008adf37 prints it so on its first epoch)
    _P("nan_loss", r"\b(?!(?:best|lowest|min(?:imum)?)_?\w{0,40}['\"]?\s*[:=]\s*['\"]?\+?inf(?:inity)?\b)"
                   r"\w{0,40}loss\w{0,20}['\"]?\s*[:=]\s*" + _NONFINITE, "loss is NaN/inf"),
    _P("nan_loss", r"\bloss\b.{0,30}\b(?:is|became|was|of)\s+(?:nan|inf)\b|\bnan loss\b|\bnon-finite loss\b|"
                   r"\bloss\s+[-+]?(?:nan|inf)\b|"
                   # a loss in the table stable-baselines prints ("| value_loss         | 63.725853     |",
                   # https://github.com/hill-a/stable-baselines/issues/178; its "ep_rewmean | nan" is no loss)
                   r"\b\w{0,40}loss\w{0,20}\s*\|\s*[-+]?(?:nan|inf)\b", "loss is NaN/inf"),
    _P("nan_loss", r"\b(?:rewards|logps|logits)/(?:chosen|rejected)['\"]?\s*[:=]\s*" + _NONFINITE,
       "DPO rewards/log-probabilities are NaN/inf"),
    # DeepSpeed's, and fairseq's "FloatingPointError: Minimum loss scale reached (0.0001). Your loss is probably exploding."
    # (https://github.com/facebookresearch/fairseq/issues/3185)
    _P("nan_loss", r"\bloss scale already at minimum\b|\bMinimum loss scale reached\b", "fp16 loss scale at its minimum"),
    # Megatron-LM's checks, which stop the run: "found NaN in local grad norm in backward pass before data-parallel
    # communication collective", "found Inf in local forward loss calculation", its rerun machine's "Unexpected result nan"
    # ... and its log line's count of iterations whose gradients held NaN ("| number of nan iterations:   0 |" every interval,
    # https://github.com/NVIDIA/Megatron-LM/issues/1880: only a count above 0 says so)
    _P("nan_loss", r"\bfound (?:NaN|Inf) in local (?:grad norm|forward loss)\b|\bUnexpected result (?:nan|inf)\b|"
                   r"\bnumber of nan iterations:\s*0*[1-9]\d*",
       "Megatron found NaN/inf in the loss or the gradients"),
    # detectron2's check, which stops the run: "FloatingPointError: Loss became infinite or NaN at iteration=2137!"
    # (https://github.com/facebookresearch/detectron2/issues/838, https://github.com/gist-ailab/uoais/issues/16)
    _P("nan_loss", r"\bLoss became infinite or NaN\b", "detectron2 found the loss infinite or NaN"),
    _P("nan_loss", r"\bprobability tensor contains either\b", "sampling from NaN/inf probabilities"),
    # torch.distributions' check of a policy's output (PPO in legged_gym, RLlib, SB3): the Real() constraint fails on NaN
    # only (https://github.com/leggedrobotics/legged_gym/issues/16, https://github.com/JinmiaoChenLab/scTM/issues/6)
    _P("nan_loss", r"\bto satisfy the constraint Real\(\), but found invalid values\b",
       "distribution parameters are NaN"),
    _P("nan_loss", r"\breturned nan values in its \d+\w* output\b|\bis non-finite, so it cannot be clipped\b",
       "NaN in the backward pass"),
    # Missing modules and libraries.
    _P("import_error", r"\bModuleNotFoundError\b|\bImportError\b|\bNo module named\b|\bcannot import name\b|"
                       r"\bPackageNotFoundError\b|\bDistributionNotFound\b", "Python import failed"),
    _P("import_error", r"\bcannot open shared object file\b|\bDLL load failed\b|\.so[\w.]*: undefined symbol\b",
       "shared library missing or mismatched"),
    _P("import_error", r"\bCUDA Setup failed\b", "bitsandbytes found no usable CUDA library"),
    # a JIT-compiled op that could not be built: its shared library is what is missing
    _P("import_error", r"\bError building extension '\w+'|\bCUDA_HOME does not exist\b", "op build failed",
       fix=OP_BUILD_FIX),
    # Plain timeouts (after the collectives and the GPU launch timeout).
    _P("timeout", r"\bDUE TO TIME LIMIT\b", "Slurm time limit", fix=TIME_LIMIT_FIX),
    # Any exception class named ...TimeoutError (aiohttp's ServerTimeoutError, fsspec's FSTimeoutError); the Hub
    # out of reach (transformers' "We couldn't connect to 'https://huggingface.co'", a gateway's 504).
    _P("timeout", r"\b\w*TimeoutError\b|\btimed out\b|\bsocket\.timeout\b|\b(?:Read|Connect|Connection|Pool)"
                  r"Timeout(?:Error)?\b|\bTimeoutExpired\b|\bDeadline ?Exceeded\b|\btimeout (?:expired|exceeded)\b|"
                  r"\bGateway Time-?out\b|\bcould(?:n't| not) connect to\b|"
                  # huggingface_hub's LocalEntryNotFoundError: the Hub out of reach and the file not in its cache
                  r"\bcannot find the requested files in the (?:local|disk) cache\b|"
                  # urllib3 gave up on a request (under requests' ConnectionError): the host could not reach the server
                  r"\bMax retries exceeded with url\b|"
                  # datasets' own ConnectionError ("Couldn't reach https://raw.githubusercontent.com/...", https://github.com/
                  # huggingface/datasets/issues/1764; "Couldn't reach 'org/name' on the Hub (ConnectionError)")
                  r"\bCouldn['\u2019]t reach (?:https?://|'[^']{1,200}' on the Hub\b)", "operation timed out"),
    # The message of a C++ exception nobody caught, under libstdc++'s "terminate called after throwing an instance of
    # '...'" ("  what():  CUDA error: initialization error", https://github.com/CompVis/latent-diffusion/issues/17): the
    # process aborts. Last: a message that any row above matches gives that row (a CUDA error, the NCCL watchdog, a
    # failed checkpoint write); any other is this abort, reported by its own words.
    _P("process_killed", r"(?:^|\]:)\s*what\(\):\s", "uncaught C++ exception (SIGABRT)", fix=ABORT_FIX, after=_TEARDOWN,
       after_categories=_HARD_CAUSES),
]


# -- runs of lines ---------------------------------------------------------------------------

class Streak(object):
    """One row of the streak table: lines whose value alone is no failure, but a run of them is. A line that carries
    the value (the regex's group ``value``) and passes ``holds(value, line)`` continues the run, one that carries
    another value (or whose line says otherwise) ends it; lines without the value leave it as it is. From the
    ``length``-th line of a run on, each line gives the category (a line that matches ``PATTERNS`` gives that instead:
    the more specific)."""

    __slots__ = ("pattern", "holds", "length")

    def __init__(self, category, regex, summary, holds, length, fix=None):
        self.pattern = Pattern(category, regex, summary, fix)
        self.holds = holds
        self.length = length

    def __repr__(self):
        return "Streak(%s, %r, %d)" % (self.pattern.category, self.pattern.regex.pattern, self.length)


_GRAD_NORM = re.compile(r"(?<![\w.])grad_norm['\"]?\s*[:=]\s*['\"]?(?:tensor\()?([-+]?\d{1,20}(?:\.\d{0,20})?(?:[eE][-+]?\d{1,4})?)")


def _zero_loss_not_training(value, line):
    """A loss of exactly 0 (-0.0 too) on a line that shows no gradient: TRL's GRPO logs {'loss': -0.0, 'grad_norm':
    0.0587, ...} while it trains (its loss is the KL term, 0 with beta=0), so a non-zero grad_norm beside it ends the run."""
    try:
        if float(value) != 0.0:
            return False
    except ValueError:
        return False
    grad = _GRAD_NORM.search(line)
    return grad is None or float(grad.group(1)) == 0.0


ZERO_LOSS_FIX = (
    "The training loss is exactly 0 on step after step: it no longer measures anything. Usually every label is masked "
    "(-100: a prompt template or collator that masks the answer too, or sequences cut before the answer), or fp16 loss "
    "scaling collapsed (DeepSpeed's loss scale at its minimum) or the run diverged and logs 0 where it means NaN. Check the "
    "labels of one batch, use bf16 instead of fp16, lower the learning rate, and resume from a checkpoint before the zeros.")

# The training loss as a number: the Trainer's {'loss': 0.0, ...}, "loss=0.000", "train_loss: 0", Megatron's "lm loss:
# 0.000000E+00"; not eval_loss, val_loss (an evaluation can be perfect) or a loss_* component
_TRAIN_LOSS = (r"(?<![\w.])(?:train_)?loss['\"]?\s*[:=]\s*['\"]?(?:tensor\()?"
               r"(?P<value>[-+]?\d{1,20}(?:\.\d{0,20})?(?:[eE][-+]?\d{1,4})?)(?![\w.])")

# Ordered like PATTERNS. A run of 3: one loss of 0.0 (a small loss rounded to 4 places, a batch that was all padding)
# is no failure, nor a zero loss beside a non-zero grad_norm (GRPO); a loss that stays at exactly 0 is
# (https://github.com/wwxu21/CUT/issues/2: "{'loss': 0.0, ...}" from the second log on;
# https://github.com/dwzhu-pku/PoSE/issues/16, loss 0 and then DeepSpeed's loss scale at its minimum).
STREAKS = [
    Streak("nan_loss", _TRAIN_LOSS, "loss exactly 0, step after step", _zero_loss_not_training, 3, fix=ZERO_LOSS_FIX),
]


# -- harmless lines ---------------------------------------------------------------------------

# The first level marker of a line decides: a quiet marker before any error marker makes the line harmless.
# Quiet: a Python warning class, a logging level WARNING/WARN, a glog/absl/c10 W or I line ("W0321 02:07:08",
# "[W socket.cpp:663]", TensorFlow's "...268417: W tensorflow/.../dso_loader.cc:64]"; E and F are errors), and
# NCCL INFO: NCCL's debug output (a missing optional plugin, a connect it retries). "NCCL WARN" reports failures:
# not a warning here.
_LEVEL = re.compile(
    r"(?P<quiet>\b[A-Z]\w*Warning\b:|(?<![\w.])(?<!NCCL )(?:WARNING|WARN|Warning|warning)(?=[\s\]|:>),-]|$)|"
    r"\bNCCL INFO\b|(?:^|[\s\[\]:])[WI](?:\d{3,4} \d\d:\d\d:\d\d| [\w./-]+:\d+\])|"
    # NeMo's and NVIDIA's tools' own format, "[NeMo W 2024-04-25 14:47:17 nemo_logging:393] ..." (its level letter after
    # the logger's name: D, I, W quiet; E, C errors)
    r"\[[A-Za-z][\w.-]{0,30} [DIW] \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\b)"
    r"|(?P<error>\b\w*(?:Error|Exception)\b:|\b(?:ERROR|CRITICAL|FATAL|Traceback)\b|"
    r"\[[A-Za-z][\w.-]{0,30} [EC] \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\b|"
    r"(?:^|[\s\[\]:])[EF](?:\d{3,4} \d\d:\d\d| [\w./-]+:\d+\]))")
# Lines that are notices, whatever words they hold.
_QUIET_LINES = re.compile("|".join((
    r"^\s*warnings\.warn(?:_explicit)?\(",       # the source line a Python warning prints under itself
    r"^\s*\u2502\s*(?:\u2771\s*)?\d+\s*\u2502",     # a source line in rich's traceback box (box-drawing bars)
    r"^Error caught was: ",                        # xformers: an optional dependency (triton) is missing
    # a model's optional package missing, logged without a level (Phi-3's "`flash-attention` package not found, consider
    # installing for better performance: No module named 'flash_attn'.", github.com/ChintanShahDS/MultiModal_FineTuning)
    r"\bconsider installing\b.{0,40}?\bfor better performance\b",
    # rocBLAS found no hipBLASLt kernel for a GEMM and falls back to its Tensile ones (printed once, then "rocBLAS warning:
    # hipBlasLT failed, falling back to tensile."): ROCm/rocBLAS library/src/hipblaslt_host.cpp and tensile_host.cpp at
    # bd1fc7ba9b22; a run that ends in a failure says so in its own words
    r"^\W{0,3}(?:rocBLAS error: No hipBLASLt solution found|hipBLASLt error: (?:Heuristic Fetch Failed|Cannot find "
    r"specified solution index|algo not supported)|hipblaslt: algo not supported)\b",
    r"\bentering retry loop\b",                    # wandb retries a network error on its own
    # wandb's own request to its server failed and is retried (https://github.com/wandb/wandb/issues/5372: "wandb: ERROR
    # Error while calling W&B API: context deadline exceeded (<Response [500]>)", /11162: "wandb:   ERROR retrying: Post
    # ...: context deadline exceeded"): the experiment tracker's trouble, not the training's
    r"\bwandb:\s+ERROR (?:Error while calling W&B API:|retrying:)",
    # huggingface_hub's warning on a failed request, which it retries or answers from its cache; a request that fails
    # for good raises after it (requests' ...Timeout, transformers' "We couldn't connect to 'https://huggingface.co'")
    r"\)'\s*thrown while requesting [A-Z]+ \S+\s*$",
    # gRPC's notice at process exit (wandb, Google Cloud and TensorFlow load it), logged at level E
    r"\bgrpc_wait_for_shutdown_with_timeout\(\) timed out\b",
    _TEARDOWN,  # a CUDA/HIP call made after the driver was torn down at exit (see above)
)))
_TRACEBACK_FRAME = re.compile(r'\bFile "[^"]*", line \d+')
_LEVEL_WINDOW = 200
# Notices that print the traceback of the import they caught right under themselves (an optional dependency missing at
# start): that traceback, its exception line included, belongs to the notice.
_NOTICES_WITH_TRACEBACK = re.compile("|".join((
    # xformers without triton, the versions that print the whole traceback (https://github.com/Nerogar/OneTrainer/issues/
    # 223; https://github.com/derrian-distro/LoRA_Easy_Training_Scripts/issues/287, the maintainer: "won't affect training")
    r"\bA matching Triton is not available, some optimizations will not be enabled\b",
)))
_TRACEBACK_START = re.compile(r"^\W{0,3}Traceback \(most recent call last\):\s*$")


class _NoticeTraceback(object):
    """Follows a log's lines one by one: ``owns(text)`` is True for the lines of a traceback that a notice of
    ``_NOTICES_WITH_TRACEBACK`` printed right under itself (its frames, source lines and exception line)."""

    __slots__ = ("state",)

    def __init__(self):
        self.state = None  # "notice": the line before was one; "traceback": inside the notice's traceback

    def owns(self, text):
        state, self.state = self.state, None
        if state == "traceback":
            if not text.strip() or text[:1] in " \t" or _TRACEBACK_FRAME.search(text):
                self.state = "traceback"  # a frame, its source line, a caret line
            return True  # ... or the exception line, the traceback's last
        if state == "notice" and _TRACEBACK_START.search(text):
            self.state = "traceback"
            return True
        if _NOTICES_WITH_TRACEBACK.search(text):
            self.state = "notice"
        return False


def _source_line(text, previous):
    """A traceback prints a frame ('  File "x.py", line 3, in f') and then, indented deeper, its source line."""
    frame = _TRACEBACK_FRAME.search(previous)
    if not frame or _TRACEBACK_FRAME.search(text):
        return False
    column = frame.start()
    return len(text) > column and text[:column + 1].endswith((" ", "\t"))


def harmless(text, previous=""):
    """True for lines that never give a category: warnings, info-level lines of NCCL and glog, notices, and the
    source lines of a traceback."""
    if _source_line(text, previous) or _QUIET_LINES.search(text):
        return True
    found = _LEVEL.search(text[:_LEVEL_WINDOW])
    return bool(found and found.group("quiet"))


def classify(text, previous=""):
    """The pattern a line matches, or None (harmless lines and lines of no category).

    A line is matched on its first ``MAX_LINE_CHARS`` and, when longer, its last ``MAX_END_CHARS``; its start
    alone says whether it is harmless.
    """
    head = text[:MAX_LINE_CHARS]
    end = text[-MAX_END_CHARS:] if len(text) > MAX_LINE_CHARS else ""
    if harmless(head, previous):
        return None
    for pattern in PATTERNS:
        if pattern.regex.search(head) or (end and pattern.regex.search(end)):
            return pattern
    return None


# -- line times -------------------------------------------------------------------------------

_ISO = re.compile(r"(?<!\d)(\d{4}-\d\d-\d\d)[T _](\d\d:\d\d:\d\d(?:[.,]\d{1,9})?)(Z|[+-]\d\d:?\d\d)?(?!\d)")
_GLOG = re.compile(r"(?:^|[\s\[\]:])[IWEF](\d{3,4}) (\d\d):(\d\d):(\d\d)(?:\.\d+)?\b")
_SYSLOG = re.compile(r"^([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)\b")
_CTIME = re.compile(r"\[(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d) (\d{4})\]")
_MONTHS = dict((m, i + 1) for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")))
_TIME_WINDOW = 160


def _iso_time(match, now):
    try:
        return _timeparse.parse_time("%sT%s%s" % (match.group(1), match.group(2), match.group(3) or ""))
    except ValueError:
        return None


def _glog_time(match, now):
    digits = match.group(1)
    return yearless_epoch(int(digits[:-2]), int(digits[-2:]), int(match.group(2)), int(match.group(3)),
                          int(match.group(4)), now)


def _syslog_time(match, now):
    month = _MONTHS.get(match.group(1))
    return yearless_epoch(month, int(match.group(2)), int(match.group(3)), int(match.group(4)), int(match.group(5)),
                          now)


def _ctime_time(match, now):
    month = _MONTHS.get(match.group(1))
    return None if month is None else local_epoch(int(match.group(6)), month, int(match.group(2)),
                                                  int(match.group(3)), int(match.group(4)), int(match.group(5)))


# (regex, converter): the first stamp found in a line's first characters gives its time.
_STAMPS = ((_ISO, _iso_time), (_CTIME, _ctime_time), (_SYSLOG, _syslog_time), (_GLOG, _glog_time))


def line_time(text, now):
    """Epoch seconds of the stamp in a log line, or None."""
    head = text[:_TIME_WINDOW]
    for regex, convert in _STAMPS:
        match = regex.search(head)
        if match:
            epoch = convert(match, now)
            if epoch is not None:
                return epoch
    return None


# -- reading the end of a file ----------------------------------------------------------------

class Tail(object):
    """The last lines of one file: ``lines`` [(byte offset, text)], and how the read went."""

    __slots__ = ("path", "lines", "size", "bytes_read", "complete", "note", "error", "timed_out")

    def __init__(self, path):
        self.path = path
        self.lines = []
        self.size = None
        self.bytes_read = 0
        self.complete = False   # got the lines asked for, or the whole file
        self.note = None
        self.error = None
        self.timed_out = False  # the deadline stopped the read: the lines asked for were not all looked at

    def as_dict(self):
        return {"path": self.path, "lines": len(self.lines), "size": self.size, "bytes_read": self.bytes_read,
                "complete": self.complete, "note": self.note, "error": self.error, "timed_out": self.timed_out}


def _ends(seq, head, end, cut):
    """``seq`` (text or bytes) whole, or for a longer one its first ``head`` and last ``end`` items joined by ``cut``:
    what the scanner keeps of a long line (classify matches those two ends)."""
    return seq if len(seq) <= head + end else seq[:head] + cut + seq[-end:]


def _decode(raw):
    """One raw line as text: its first ``MAX_LINE_BYTES`` and its last ``MAX_END_BYTES``; for a longer line redrawn
    with carriage returns (a progress bar), its start and its last part (the one a terminal shows, where a crash
    writes over the bar), that part's ends if it is long."""
    kept = _ends(raw, MAX_LINE_BYTES, MAX_END_BYTES, _CUT.encode())
    if len(raw) > MAX_LINE_BYTES:
        last = raw.rfind(b"\r", MAX_LINE_BYTES)
        if last >= 0:
            kept = raw[:MAX_LINE_BYTES] + b"\r" + _ends(raw[last + 1:], MAX_LINE_BYTES, MAX_END_BYTES, _CUT.encode())
    text = kept.decode("utf-8", "replace").replace("\x00", "")
    return text[:-1] if text.endswith("\r") else text


def segments(text):
    """What a terminal shows of one log line, as the parts the scanner classifies one by one.

    Escape sequences (colored logging, cursor moves) are removed; a line redrawn with carriage returns
    (tqdm's progress bar, then the error written over it) is split at them, and only its last
    ``MAX_SEGMENTS`` non-blank parts are kept, each cut to its first ``MAX_LINE_CHARS`` and last ``MAX_END_CHARS``.
    A blank line is one empty part.
    """
    parts = [part for part in without_escapes(text).split("\r") if part.strip()]
    return [_ends(part, MAX_LINE_CHARS, MAX_END_CHARS, _CUT) for part in parts[-MAX_SEGMENTS:]] or [""]


def _shown(text):
    """The line a crash reports: its start, and for a line longer than ``MAX_LINE_CHARS`` (matched at its end
    too) its start and its end."""
    text = text.strip()
    if len(text) <= MAX_LINE_CHARS:
        return text[:MAX_MESSAGE_CHARS]
    half = (MAX_MESSAGE_CHARS - len(_CUT)) // 2
    return text[:half] + _CUT + text[-half:]


def read_tail(path, lines=DEFAULT_LINES, max_bytes=None, deadline=None, clock=time.monotonic):
    """Read the last ``lines`` lines of ``path`` from its end, in blocks; never raises.

    Reads at most ``max_bytes`` (default ``lines`` x 8 KiB, at most 64 MiB) and stops at
    ``deadline`` (a ``clock`` value, then ``timed_out``); either way the lines read so far are kept and
    ``note`` says why the read is short. A partial first line (the read began mid-line) is dropped.
    """
    tail = Tail(path)
    budget = max_bytes if max_bytes is not None else min(lines * BYTES_PER_LINE, MAX_TAIL_BYTES)
    try:
        fd = _files.open_regular(path)
    except _files.FileProblem as exc:
        tail.error = str(exc)
        return tail
    except OSError as exc:
        tail.error = ("%s is missing" % path if exc.errno in (errno.ENOENT, errno.ENOTDIR)
                      else "%s cannot be read: %s" % (path, exc.strerror or exc))
        return tail
    try:
        tail.size = pos = os.fstat(fd).st_size
        chunks, newlines = [], 0
        while pos > 0:
            if tail.bytes_read >= budget:
                tail.note = ("read stopped at the %s limit before %d lines were found (lines longer than %s on "
                             "average)" % (human_bytes(budget), lines, human_bytes(BYTES_PER_LINE)))
                break
            if deadline is not None and clock() >= deadline:
                tail.note = "read stopped by the timeout after %s" % human_bytes(tail.bytes_read)
                tail.timed_out = True
                break
            size = min(BLOCK, pos, budget - tail.bytes_read)
            pos -= size
            chunk = os.pread(fd, size, pos)
            if len(chunk) < size:  # the file shrank under us: start again from its new end next time
                tail.note = "the file shrank while it was read"
                pos += size - len(chunk)
                break
            chunks.append(chunk)
            tail.bytes_read += size
            newlines += chunk.count(b"\n")
            if newlines > lines:
                break
    except OSError as exc:
        tail.error = "%s cannot be read: %s" % (path, exc.strerror or exc)
        return tail
    finally:
        os.close(fd)
    data = b"".join(reversed(chunks))
    start = pos
    pieces = data.split(b"\n")
    if pieces and pieces[-1] == b"":
        pieces.pop()  # the newline that ends the last line
    offsets, cursor = [], start
    for piece in pieces:
        offsets.append(cursor)
        cursor += len(piece) + 1
    first = 1 if start > 0 and pieces else 0   # began mid-line: that piece is partial
    keep = list(zip(offsets, pieces))[first:]
    keep = keep[-lines:]
    tail.lines = [(offset, _decode(raw)) for offset, raw in keep]
    tail.complete = tail.note is None
    return tail


# -- scanning ---------------------------------------------------------------------------------

def _follows_cause(pattern, recent, recent_categories):
    """True when ``pattern`` reports a consequence whose cause is among the parts before: one that matches its ``after``,
    or one that gave a category of its ``after_categories``."""
    if pattern.after is not None and any(pattern.after.search(t) for t in recent):
        return True
    return bool(pattern.after_categories) and any(c in pattern.after_categories for c in recent_categories)


def scan_lines(lines, path, now=None):
    """Matches of the pattern table in ``lines`` ([(offset, text)] or texts).

    Each match: {category, pattern, offset, index, text, epoch, file}.
    """
    now = time.time() if now is None else now
    matches, previous, current_time = [], "", None
    notices = _NoticeTraceback()
    recent = collections.deque(maxlen=CAUSE_WINDOW_LINES)  # the parts before this one, for the rows with ``after``
    recent_categories = collections.deque(maxlen=CAUSE_WINDOW_LINES)  # ... and the category each gave (None: none)
    runs = [0] * len(STREAKS)   # the length of each streak's current run
    for index, item in enumerate(lines):
        offset, line = item if isinstance(item, tuple) else (None, item)
        found = None  # (rank, pattern, text): a line redrawn in parts still gives one category, the most specific
        values = {}   # streak -> (its value, the part) of this line: the last part that shows one (a redrawn bar counts once)
        for text in segments(line):
            stamp = line_time(text, now)
            if stamp is not None:
                current_time = stamp
            owned = notices.owns(text)
            pattern = None if owned else classify(text, previous)
            matched = pattern
            if pattern is not None and _follows_cause(pattern, recent, recent_categories):
                pattern = None
            recent.append(text[:MAX_LINE_CHARS])
            recent_categories.append(matched.category if matched is not None else None)
            for number, streak in enumerate(STREAKS):
                value = None if owned else streak.pattern.regex.search(text[:MAX_LINE_CHARS])
                if value is not None and not harmless(text[:MAX_LINE_CHARS], previous):
                    values[number] = (value.group("value"), text)
            previous = text
            if pattern is not None:
                rank = PATTERNS.index(pattern)  # PATTERNS is ordered from the most specific
                if found is None or rank < found[0]:
                    found = (rank, pattern, text)
        for number, (value, text) in sorted(values.items()):
            streak = STREAKS[number]
            runs[number] = runs[number] + 1 if streak.holds(value, text) else 0
            if found is None and runs[number] >= streak.length:
                found = (len(PATTERNS) + number, streak.pattern, text)
        if found is not None:
            _rank, pattern, text = found
            matches.append({"category": pattern.category, "pattern": pattern, "offset": offset, "index": index,
                            "text": _shown(text), "epoch": current_time, "file": path})
    return matches


def _iso(epoch):
    return None if epoch is None else _config.iso_now(epoch)


def _fingerprint(match):
    key = "%s\0%s\0%s\0%s" % (match["category"], match["file"], match["offset"], match["text"])
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:32]


def _split_events(group):
    """Matches of one file and category (in file order) -> events: runs of nearby matches."""
    events, current = [], []
    for match in group:
        if current:
            last = current[-1]
            far_lines = match["index"] - last["index"] > EVENT_GAP_LINES
            far_time = (match["epoch"] is not None and last["epoch"] is not None
                        and match["epoch"] - last["epoch"] > EVENT_GAP_S)
            if far_lines or far_time:
                events.append(current)
                current = []
        current.append(match)
    if current:
        events.append(current)
    return [{"fingerprint": _fingerprint(ev[-1]), "category": ev[-1]["category"], "file": ev[-1]["file"],
             "line": ev[-1]["text"], "count": len(ev), "first_seen": _iso(ev[0]["epoch"]),
             "last_seen": _iso(ev[-1]["epoch"]), "epoch": ev[-1]["epoch"], "severity": ev[-1]["pattern"].severity}
            for ev in events]


def collapse(matches):
    """Matches -> (crashes, events). One crash per (file, category), in the order first met."""
    groups, order = {}, []
    for match in matches:
        key = (match["file"], match["category"])
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(match)
    crashes, events = [], []
    for key in order:
        group = groups[key]
        first, last = group[0], group[-1]
        times = [m["epoch"] for m in group if m["epoch"] is not None]
        pattern = last["pattern"]
        crashes.append({"category": pattern.category, "severity": pattern.severity, "file": last["file"],
                        "line": last["text"], "count": len(group),
                        "first_seen": _iso(min(times)) if times else None,
                        "last_seen": _iso(max(times)) if times else None,
                        "fix": pattern.fix, "summary": first["pattern"].summary})
        events.extend(_split_events(group))
    return crashes, events


def expand_logs(patterns):
    """Paths and globs -> ([paths], note): globs expanded and sorted, plain paths kept even when missing."""
    found, note = [], None
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
        else:
            matches = [pattern]
        for path in matches:
            if path not in found:
                found.append(path)
    if len(found) > MAX_FILES:
        note = "%d log files match; only the last %d (by name) are scanned" % (len(found), MAX_FILES)
        found = found[-MAX_FILES:]
    return found, note


def unlisted_folders(patterns):
    """[(folder, why)] of the globs whose folder exists but cannot be listed (permission, I/O): a glob matches nothing
    there, which is not "no log"."""
    out = []
    for pattern in patterns:
        if not glob.has_magic(pattern):
            continue
        folder = os.path.dirname(pattern)
        while folder and glob.has_magic(folder):
            folder = os.path.dirname(folder)
        try:
            os.listdir(folder or os.curdir)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR) and folder not in [f for f, _w in out]:
                out.append((folder, exc.strerror or str(exc)))
    return out


# -- the history ------------------------------------------------------------------------------

def load_history(path):
    """{path, state, records, error}.

    state: ok | missing | unparseable | not_regular | too_large | unreadable | disabled.
    """
    report = {"path": path, "state": "ok", "records": [], "error": None}
    if not path:
        report["state"] = "disabled"
        return report
    doc, report["state"], error = _config.read_owned(
        path, HISTORY_KIND, lambda d: isinstance(d.get("crashes"), list) and all(
            isinstance(r, dict) for r in d["crashes"]), "a crash history", HISTORY_LIMIT, version=HISTORY_VERSION)
    report["error"] = "%s, nothing recorded" % error if error else None
    report["records"] = doc["crashes"] if doc else []
    return report


def _unrecorded(history_file, events, stamp):
    """(the history, this scan's events it does not hold yet, as records)."""
    history = load_history(history_file)
    known = set(r.get("fingerprint") for r in history["records"])
    records = [dict((k, v) for k, v in ev.items() if k != "epoch") for ev in events if ev["fingerprint"] not in known]
    for item in records:
        item["recorded_at"] = stamp
    return history, records


def _record(history_file, events, stamp, outcome):
    """Append the events the history does not hold, under a lock beside it: two scans at once (two logs, a timer
    and an operator) each read, merge and replace the file, and the one that wrote last would drop the other's.
    Fills ``outcome``; returns (the history as read under the lock, the records written)."""
    try:
        lock = _files.lock_beside(history_file, HISTORY_LOCK_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        outcome.update(state="error", error="%s could not be locked: %s" % (
            history_file, getattr(exc, "strerror", None) or exc))
        return load_history(None), []
    try:
        history, records = _unrecorded(history_file, events, stamp)
        outcome.update(state=history["state"], error=history["error"])
        if history["state"] not in ("ok", "missing") or not records:
            return history, records if history["state"] in ("ok", "missing") else []
        kept = (history["records"] + records)[-HISTORY_MAX_RECORDS:]
        try:
            _config.write_json_atomic(history_file, {"kind": HISTORY_KIND, "version": HISTORY_VERSION, "crashes": kept})
            outcome.update(recorded=len(records), pruned=len(history["records"]) + len(records) - len(kept))
        except (_config.JsonFileError, OSError) as exc:
            outcome.update(state="error", error="%s could not be written: %s" % (
                history_file, getattr(exc, "message", None) or getattr(exc, "strerror", None) or exc))
        return history, records
    finally:
        os.close(lock)


def _record_time(record):
    for key in ("last_seen", "recorded_at"):
        try:
            epoch = _timeparse.parse_time(record.get(key), key)
        except ValueError:
            epoch = None
        if epoch is not None:
            return epoch
    return None


def ordinal(number):
    """1 -> '1st', 2 -> '2nd', 11 -> '11th', 23 -> '23rd'."""
    if 10 <= number % 100 <= 20:
        return "%dth" % number
    return "%d%s" % (number, {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th"))


def recurrence(records, category, now, window=RECURRENCE_WINDOW_S):
    """How many recorded events of ``category`` fall in the last ``window`` seconds (undated: when recorded)."""
    count = 0
    for record in records:
        if record.get("category") != category:
            continue
        epoch = _record_time(record)
        if epoch is not None and now - window <= epoch <= now + 2 * 86400:
            count += 1
    return count


def scan(patterns, lines=DEFAULT_LINES, history_file=None, record=True, check_mode=False, now=None,
         deadline=None, clock=time.monotonic):
    """Scan the logs, record new events in the history and count recurrences; never raises.

    Returns {crashes, categories, files, history: {path, state, recorded, would_record, error}, new_events, note}.
    Each crash also carries ``recurrence`` (events of its category in 24 h, this scan included) and
    ``recurrence_text`` ('3rd cuda_oom in 24 h').
    """
    now = time.time() if now is None else now
    paths, note = expand_logs(patterns)
    files, matches = [], []
    for folder, why in unlisted_folders(patterns):
        unlisted = Tail(folder)
        unlisted.error = "cannot list %s for its logs: %s" % (folder, why)
        files.append(unlisted.as_dict())
    for path in paths:
        tail = read_tail(path, lines, deadline=deadline, clock=clock)
        files.append(tail.as_dict())
        matches.extend(scan_lines(tail.lines, path, now))
    crashes, events = collapse(matches)
    stamp = _config.iso_now(now)
    history, new_records = _unrecorded(history_file if record else None, events, stamp)
    outcome = {"path": history["path"], "state": history["state"], "recorded": 0, "would_record": 0,
               "pruned": 0, "error": history["error"]}
    writable = history["state"] in ("ok", "missing")
    if writable and new_records and check_mode:
        outcome["would_record"] = len(new_records)
    elif writable and new_records:
        history, new_records = _record(history_file, events, stamp, outcome)
        writable = history["state"] in ("ok", "missing")
    pool = history["records"] + new_records
    if not writable:  # no history to count from: this scan's events only
        pool = [dict(ev, recorded_at=stamp) for ev in events]
    for crash in crashes:
        count = recurrence(pool, crash["category"], now)
        crash["recurrence"] = count
        crash["recurrence_text"] = "%s %s in 24 h" % (ordinal(count), crash["category"]) if count else None
    categories = []
    for crash in crashes:
        if crash["category"] not in categories:
            categories.append(crash["category"])
    return {"crashes": crashes, "categories": categories, "files": files, "history": outcome,
            "new_events": new_records, "note": note}
