"""The crash-log scanner: every recorded real crash log, the pattern table's precedence, tail reads, the history."""

from __future__ import annotations

import json
import os
import time

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _crash_log as crash
from ansible_collections.gpuops.preflight.plugins.module_utils import _files
from simtrain import fixtures

NOW = time.mktime((2026, 3, 21, 12, 0, 0, 0, 0, -1))


def write(path, text):
    with open(str(path), "w", encoding="utf-8") as handle:
        handle.write(text)
    return str(path)


# -- the recorded real logs --------------------------------------------------------------------

def test_every_recorded_crash_log_has_a_written_expectation():
    expected = fixtures.crash_expectations()
    assert sorted(expected) == fixtures.crash_logs(), "a crash log without an expectation in SOURCES.md"


@pytest.mark.parametrize("name", fixtures.crash_logs())
def test_recorded_crash_log_is_classified_as_written(name):
    want = fixtures.crash_expectations()[name]
    report = crash.scan([str(fixtures.crash_log_path(name))], record=False, now=NOW)
    assert report["categories"] == ([] if want == "none" else [want])
    assert report["files"][0]["error"] is None and report["files"][0]["complete"] is True
    for item in report["crashes"]:
        # the category's fix, or the own fix of one of its rows (a port in use, cuDNN's handle, a run of zero losses)
        rows = crash.PATTERNS + [streak.pattern for streak in crash.STREAKS]
        assert item["fix"] in set(p.fix for p in rows if p.category == want)
        assert item["line"] and "\n" not in item["line"]


def test_recorded_logs_keep_their_evidence_and_times():
    report = crash.scan([str(fixtures.crash_log_path("LlamaFactory-7396_multi_rank_nccl_allreduce_watchdog_timeout.txt"))],
                        record=False, now=NOW)
    (item,) = report["crashes"]
    assert item["count"] == 4  # two watchdog lines and two "detected by watchdog" lines
    assert item["first_seen"] == crash._iso(time.mktime((2026, 3, 21, 2, 7, 8, 0, 0, -1)))
    report = crash.scan([str(fixtures.crash_log_path("gemma_pytorch-24_hf_trainer_loss_nan_grad_norm_nan.txt"))],
                        record=False, now=NOW)
    # six "'loss': nan" lines; "'grad_norm': nan" beside a finite loss is a step mixed precision skips
    assert report["crashes"][0]["count"] == 6
    report = crash.scan([str(fixtures.crash_log_path("autotrain-advanced-737_rocm_20gb_hip_oom.txt"))], record=False,
                        now=NOW)
    assert report["crashes"][0]["count"] == 2  # the amdsmi UserWarning and its warnings.warn line give nothing
    assert report["crashes"][0]["last_seen"] == crash._iso(time.mktime((2024, 8, 21, 22, 56, 4, 0, 0, -1)))


# -- the pattern table -------------------------------------------------------------------------

CASES = [
    # the GPU allocator's OOM, in its wordings (PyTorch 1.x/2.x CUDA and HIP, NCCL's CUDA failure, libraries)
    ("RuntimeError: CUDA out of memory. Tried to allocate 36.00 MiB (GPU 0; 7.93 GiB total capacity)", "cuda_oom"),
    ("RuntimeError: HIP out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.98 GiB total capacity)", "cuda_oom"),
    ("RuntimeError: CUDA error: out of memory", "cuda_oom"),
    ("Export failed: HIP error: out of memory", "cuda_oom"),
    ("host:123:456 [0] NCCL WARN Cuda failure 'out of memory'", "cuda_oom"),
    ("RuntimeError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`", "cuda_oom"),
    ("jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1.2GiB.",
     "cuda_oom"),
    # bitsandbytes' CUDA check on an allocation (its paged optimizer, its kernels): https://github.com/InternLM/xtuner/
    # issues/319, https://github.com/jllllll/bitsandbytes-windows-webui/issues/14
    ("Error out of memory at line 380 in file /mmfs1/gscratch/zlab/timdettmers/git/bitsandbytes/csrc/pythonInterface.c",
     "cuda_oom"),
    ("Error out of memory at line 88 in file D:\\a\\bitsandbytes-windows-webui\\bitsandbytes-windows-webui\\csrc\\ops.cu",
     "cuda_oom"),
    # PyTorch < 1.5: https://github.com/espnet/espnet/issues/219, https://github.com/Ybowei/P-CNN/issues/6
    ("THCudaCheck FAIL file=/pytorch/torch/lib/THC/generic/THCStorage.cu line=58 error=2 : out of memory", "cuda_oom"),
    ("Exception in main training loop: cuda runtime error (2) : out of memory at "
     "/pytorch/torch/lib/THC/generic/THCStorage.cu:58", "cuda_oom"),
    # https://github.com/huggingface/accelerate/issues/1934 (auto_find_batch_size halved the batch to zero on OOMs)
    ("RuntimeError: No executable batch size found, reached zero.", "cuda_oom"),
    # the kernel's or a cgroup's OOM killer, SIGKILL: process_killed, never cuda_oom
    ("[12345.678] Out of memory: Killed process 4242 (python3) total-vm:81234567kB, anon-rss:60123456kB", "process_killed"),
    ("Memory cgroup out of memory: Killed process 4242 (python) total-vm:1kB", "process_killed"),
    ("[ 99.1] python3 invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0", "process_killed"),
    ("training.service: Failed with result 'oom-kill'.", "process_killed"),
    ("RuntimeError: DataLoader worker (pid 1234) is killed by signal: Killed.", "process_killed"),
    ("torch.distributed.elastic.multiprocessing.api:failed (exitcode: -9) local_rank: 0 (pid: 77)", "process_killed"),
    ("subprocess.CalledProcessError: Command '['python', 'train.py']' returned non-zero exit status -9.", "process_killed"),
    ("./run.sh: line 3: 12345 Killed                  python train.py", "process_killed"),
    ("Container exited with exit code 137", "process_killed"),
    # https://github.com/deepspeedai/DeepSpeed/issues/3232 (the DeepSpeed launcher)
    ("[2023-04-14 13:11:27,885] [ERROR] [launch.py:434:sigkill_handler] ['/usr/bin/python3', '-u', 'main.py', "
     "'--local_rank=0', '--zero_stage', '2', '--deepspeed'] exits with return code = -9", "process_killed"),
    # https://github.com/ArjunaCluster/ArjunaUsers/issues/52 (Slurm: the batch script's shell, the step's cgroup)
    ("/var/spool/slurmd/job00191/slurm_script: line 28:  8156 Killed                  python3 main.py --prop hform "
     "--epochs 400", "process_killed"),
    ("slurmstepd: error: Detected 1 oom-kill event(s) in StepId=191.batch cgroup. Some of your processes may have "
     "been killed by the cgroup out-of-memory handler.", "process_killed"),
    # https://github.com/nextflow-io/nextflow/issues/5932
    ("slurmstepd: error: Detected 1 oom_kill event in StepId=11300781.0. Some of the step tasks have been OOM Killed.",
     "process_killed"),
    ("srun: error: sdumont6156: task 0: Out Of Memory", "process_killed"),
    ("train-1 exited with code 137", "process_killed"),  # docker compose
    ("      Reason:       OOMKilled", "process_killed"),  # kubectl describe pod
    # systemd-oomd (memory pressure), https://github.com/systemd/systemd/issues/23606
    ("Dec 18 19:34:56 user-desktop systemd-oomd[840]: Killed /user.slice/user-1001.slice/user@1001.service/app.slice/"
     "app-org.gnome.Terminal.slice/vte-spawn-dbb4a75e-031f-480d-924b-5de5af7579d2.scope due to memory pressure for "
     "/user.slice/user-1001.slice/user@1001.service being 51.07% > 50.00% for > 20s with reclaim activity",
     "process_killed"),
    ("Dec 18 19:34:56 user-desktop systemd[1837]: vte-spawn-dbb4a75e-031f-480d-924b-5de5af7579d2.scope: systemd-oomd "
     "killed 12 process(es) in this unit.", "process_killed"),
    # Ray's memory monitor kills a worker on host memory: https://github.com/real-stanford/flingbot/issues/11,
    # https://github.com/WM-PO/WMPO/issues/3, https://github.com/primihub/primihub-platform/issues/122
    ("ray.exceptions.OutOfMemoryError: Task was killed due to the node running low on memory.", "process_killed"),
    ("(raylet) [2025-12-07 09:57:19,206 E 393463 393463] (raylet) node_manager.cc:3277: 2 Workers (tasks / actors) "
     "killed due to memory pressure (OOM), 0 Workers crashed due to other reasons at ", "process_killed"),
    ("2023-05-22T03:06:53.935285161Z The actor is dead because its worker process has died. Worker exit type: "
     "NODE_OUT_OF_MEMORY Worker exit detail: Task was killed due to the node running low on memory.", "process_killed"),
    # GPU kernel failures
    ("RuntimeError: CUDA error: device-side assert triggered", "gpu_error"),
    ("RuntimeError: CUDA error: an illegal instruction was encountered", "gpu_error"),
    ("RuntimeError: CUDA error: unspecified launch failure", "gpu_error"),
    ("RuntimeError: CUDA error: uncorrectable ECC error encountered", "gpu_error"),
    ("RuntimeError: CUDA error: the launch timed out and was terminated", "gpu_error"),
    ("RuntimeError: HIP error: hipErrorLaunchFailure", "gpu_error"),
    ("Memory access fault by GPU node-1 (Agent handle: 0x55e0) on address 0x7f00. Reason: Page not present", "gpu_error"),
    # ROCm's GPU hang, https://github.com/pytorch/ao/issues/2890 (after a test id on the same line)
    ("test/dtypes/test_uintx.py::test_uintx_weight_only_model_quant[cuda-128-dtype6] HW Exception by GPU node-3 "
     "(Agent handle: 0x19a5a420) reason :GPU Hang", "gpu_error"),
    # torch's hint after a CUDA error, joined to it on one line: the error decides,
    # https://github.com/OpenMOSS/MOSS/issues/367, https://github.com/deepbeepmeep/Wan2GP/issues/731
    ("RuntimeError: CUDA error: no kernel image is available for execution on the device CUDA kernel errors might be "
     "asynchronously reported at some other API call, so the stacktrace below might be incorrect. For debugging "
     "consider passing CUDA_LAUNCH_BLOCKING=1. Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.",
     "gpu_error"),
    ("CUDA error: out of memory CUDA kernel errors might be asynchronously reported at some other API call, so the "
     "stacktrace below might be incorrect. For debugging consider passing CUDA_LAUNCH_BLOCKING=1 Compile with "
     "`TORCH_USE_CUDA_DSA` to enable device-side assertions.", "cuda_oom"),
    ("[rank0]: NCCL watchdog thread terminated with exception: CUDA error: an illegal memory access was encountered",
     "gpu_error"),
    # GPU libraries: https://github.com/ROCm/rocBLAS/issues/1339, https://github.com/brknsoul/ROCmLibs/issues/4
    ("rocBLAS error: Cannot read /opt/rocm-5.4.0/lib/rocblas/library/TensileLibrary.dat: Illegal seek", "gpu_error"),
    ("rocBLAS error: Cannot read C:\\Program Files\\AMD\\ROCm\\6.1\\bin\\/rocblas/library/TensileLibrary.dat: No such "
     "file or directory for GPU arch : gfx1103", "gpu_error"),
    # https://github.com/open-mmlab/mmaction2/issues/493, https://github.com/pytorch/pytorch/issues/11065
    ("RuntimeError: cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if you passed in a non-contiguous "
     "input.", "gpu_error"),
    ("RuntimeError: CuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if you passed in a non-contiguous "
     "input.", "gpu_error"),
    ("RuntimeError: CUDA error: CUBLAS_STATUS_NOT_SUPPORTED when calling `cublasGemmStridedBatchedExFix`", "gpu_error"),
    ("Cuda failure 802 'system not yet initialized'", "gpu_error"),  # NCCL, https://github.com/NVIDIA/nccl/issues/1231
    # bitsandbytes' CUDA_CHECK_RETURN ("Error %s at line %d in file %s")
    ("Error invalid device function at line 1290 in file /mmfs1/gscratch/zlab/timdettmers/git/bitsandbytes/csrc/ops.cu",
     "gpu_error"),
    ("Error no kernel image is available for execution on the device at line 167 in file "
     "D:\\ai\\tool\\bitsandbytes\\csrc\\ops.cu", "gpu_error"),
    ("RuntimeError: Unexpected error from cudaGetDeviceCount(). Did you run some cuda functions before calling "
     "NumCudaDevices() that might have already set an error? Error 804: forward compatibility was attempted on non "
     "supported HW", "gpu_error"),
    # collectives
    ("torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1970, unhandled cuda error", "nccl_timeout"),
    ("RuntimeError: NCCL communicator was aborted on rank 1. Original reason: timeout", "nccl_timeout"),
    ("torch.distributed.DistStoreError: Timed out after 901 seconds waiting for clients. 1/2 clients joined.",
     "nccl_timeout"),
    ("RuntimeError: [../third_party/gloo/gloo/transport/tcp/pair.cc:598] Timed out waiting 1800000ms for recv",
     "nccl_timeout"),
    ("[E ProcessGroupNCCL.cpp:828] [Rank 1] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1, "
     "OpType=ALLREDUCE, Timeout(ms)=1800000) ran for 1800117 milliseconds before timing out.", "nccl_timeout"),
    ("[E ProcessGroupNCCL.cpp:489] Some NCCL operations have failed or timed out.", "nccl_timeout"),
    # the c10d store and rendezvous: a rank that cannot reach the store is a collective failure, not a plain timeout
    # https://github.com/pytorch/pytorch/issues/107021
    ("[E socket.cpp:860] [c10d] The client socket has timed out after 60s while trying to connect to 192.0.0.1:1234",
     "nccl_timeout"),
    ("torch.distributed.elastic.rendezvous.api.RendezvousConnectionError: The connection to the C10d store has failed. "
     "See inner exception for details.", "nccl_timeout"),
    # https://github.com/lllyasviel/ControlNet/issues/382
    ("TimeoutError: The client socket has timed out after 1800s while trying to connect to (127.0.0.1, 48391).",
     "nccl_timeout"),
    # https://github.com/pytorch/pytorch/issues/105782
    ("[E108 20:04:34.467642512 socket.cpp:957] [c10d] The client socket has timed out after 900s while trying to "
     "connect to (33.145.124.128, 29500).", "nccl_timeout"),
    # https://github.com/lzhxmu/CPPO/issues/6
    ("[E521 15:43:02.707888867 TCPStore.cpp:318] [c10d] TCP client failed to connect/validate to host "
     "172.18.21.4:37907 - timed out (try=1, timeout=600000ms): The client socket has timed out after 600000ms while "
     "trying to connect to (172.18.21.4, 37907).", "nccl_timeout"),
    # https://github.com/ofsoundof/GRL-Image-Restoration/issues/27
    ("trainer/0 [1]:[E socket.cpp:610] [c10d] The client socket has failed to connect to any network address of "
     "(05, 40323).", "nccl_timeout"),
    ("RuntimeError: Timed out initializing process group in store based barrier on rank: 0, for key: "
     "store_based_barrier_key:1 (world_size=2, worker_count=1, timeout=0:30:00)", "nccl_timeout"),  # torch < 2.0
    ("RuntimeError: The server socket has failed to listen on any local network address. The server socket has "
     "failed to bind to [::]:29500 (errno: 98 - Address already in use).", "nccl_timeout"),
    ("RuntimeError: Gloo connectFullMesh failed with [../third_party/gloo/gloo/transport/tcp/pair.cc:144] no error",
     "nccl_timeout"),
    ("RuntimeError: [1] is setting up NCCL communicator and retrieving ncclUniqueId from [0] via c10d key-value store "
     "by key '0', but store->get('0') got error: Connection reset by peer", "nccl_timeout"),  # torch 2.0/2.1
    # gloo lost a peer: https://github.com/hkust-nlp/simpleRL-reason/issues/17,
    # https://github.com/RVC-Project/Retrieval-based-Voice-Conversion-WebUI/issues/1882
    ("RuntimeError: [../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:38032",
     "nccl_timeout"),
    ("RuntimeError: [../third_party/gloo/gloo/transport/tcp/pair.cc:589] Read error [192.168.70.92]:25266: Connection "
     "reset by peer", "nccl_timeout"),
    # NCCL's network failures (NCCL WARN), https://github.com/NVIDIA/nccl/issues/1814
    ("hostname-test:984:1357 [4] ib_plugin.c:1615 NCCL WARN NET/IB : Got completion from peer 172.36.143.59<44206> "
     "with status=12 opcode=129 len=65536 vendor err 129 (Recv) localGid ::ffff:29.87.88.182 "
     "remoteGids::ffff:29.87.4.221", "nccl_timeout"),
    # https://github.com/NVIDIA/nccl/issues/928
    ("H100-2:19989:20082 [1] transport/net_ib.cc:1295 NCCL WARN NET/IB : Got completion from peer "
     "fe80::966d:ae03:8b:df78%ib0<53249> with error 4, opcode 32564, len 32564, vendor err 81 (Send)", "nccl_timeout"),
    # https://github.com/NVIDIA/nccl/pull/1618
    ("[03/16][2025-02-25 15:46:48,389] [misc/socket.cc:602] [s11gn1268:pid=3987720] NCCL WARN socketPollConnect "
     "poll() failed, ret 1, error Connection timed out, revents 8, connect to 172.16.30.229:39953", "nccl_timeout"),
    ("RuntimeError: HIP error: hipErrorNoBinaryForGpu: Unable to find code object for all current devices!",
     "gpu_error"),
    ("RuntimeError: cuDNN error: CUDNN_STATUS_INTERNAL_ERROR", "gpu_error"),
    ("[ 812.3] Out of memory: Kill process 3101 (python) score 912 or sacrifice child", "process_killed"),
    # disk
    ("OSError: [Errno 28] No space left on device: '/srv/training/current_model/checkpoint-500'", "disk_full"),
    ("OSError: [Errno 122] Disk quota exceeded", "disk_full"),
    # datasets' own check before it writes its cache: https://github.com/huggingface/datasets/issues/2972,
    # https://github.com/hiyouga/LlamaFactory/issues/3869
    ("OSError: Not enough disk space. Needed: 134.92 GiB (download: 41.97 GiB, generated: 92.95 GiB, post-processed: "
     "Unknown size)", "disk_full"),
    ("OSError: Not enough disk space. Needed: Unknown size (download: Unknown size, generated: Unknown size, "
     "post-processed: Unknown size)", "disk_full"),
    ("RuntimeError: [enforce fail at inline_container.cc:595] . unexpected pos 1471349952 vs 1471349840", "disk_full"),
    ("RuntimeError: PytorchStreamWriter failed writing file data/12: file write failed", "disk_full"),
    ("safetensors_rust.SafetensorError: Error while serializing: IoError(Os { code: 28, kind: StorageFull })",
     "disk_full"),
    # NaN / inf
    ("Steps:  12%|#2 | 300/2500 [01:00<07:20, 5.00it/s, loss=nan, lr=1e-5]", "nan_loss"),
    ('{"loss": NaN, "learning_rate": 1e-05, "epoch": 0.5}', "nan_loss"),
    ("{'train_loss': inf, 'epoch': 1.0}", "nan_loss"),
    ("{'eval_loss': nan, 'eval_runtime': 12.3}", "nan_loss"),
    ("{'loss': tensor(nan, device='cuda:0'), 'learning_rate': 2e-05, 'epoch': 0.1}", "nan_loss"),
    # https://github.com/deepinsight/insightface/issues/2262
    ("Training: 2023-03-14 09:08:43,293-Speed 2178.40 samples/sec   Loss nan   LearningRate 0.001000   ", "nan_loss"),
    # https://github.com/hiyouga/LlamaFactory/issues/251 (fp16 loss scaling gave up)
    ("Exception: Current loss scale already at minimum - cannot decrease scale anymore. Exiting run.", "nan_loss"),
    # https://github.com/huggingface/trl/issues/1199: DPO diverged (its metrics, then sampling)
    ("{'loss': 0.0, 'learning_rate': 6.666666666666667e-05, 'rewards/chosen': nan, 'rewards/rejected': nan, "
     "'rewards/accuracies': 0.0, 'rewards/margins': nan, 'logps/rejected': nan, 'logps/chosen': nan, 'epoch': 0.01}",
     "nan_loss"),
    ("RuntimeError: probability tensor contains either `inf`, `nan` or element < 0", "nan_loss"),
    # a loss metric with a suffix: https://github.com/christianpayer/MedicalDataAugmentationTool-VerSe/issues/31
    ("02:31:56: train iter: 100 loss_net: nan loss_scale: 785.4200 norm: nan norm_average: 0.8729 seconds: 122.871",
     "nan_loss"),
    ("Epoch 1:  10%|#         | 100/1000 [00:10<01:30, 10.0it/s, v_num=0, train_loss_step=nan]", "nan_loss"),  # hand-made
    # https://github.com/kohya-ss/sd-scripts/issues/2137
    ("steps:   1%|\u258b                                                        | 41/3280 [00:50<1:06:54,  1.24s/it, "
     "avr_loss=nan]", "nan_loss"),
    # Megatron-LM's checks stop the run: https://github.com/alibaba/Pai-Megatron-Patch/issues/366,
    # https://github.com/NVIDIA-NeMo/Speech/issues/14348
    ("AssertionError: Rank 11: found NaN in local grad norm in backward pass before data-parallel communication "
     "collective. Device: 3", "nan_loss"),
    ("i.pretrain/0 [default2]:[rank2]: RuntimeError: Rank 2, node dcfai-xe9680-01, device 2, iteration -1: Unexpected "
     "result nan (message='found NaN in local grad norm for bucket #0 in backward pass before data-parallel "
     "communication collective')", "nan_loss"),
    ("ValueError: Loss is nan, stopping training", "nan_loss"),
    ("RuntimeError: Function 'MulBackward0' returned nan values in its 0th output.", "nan_loss"),
    ("RuntimeError: The total norm of order 2.0 for gradients from `parameters` is non-finite, so it cannot be clipped.",
     "nan_loss"),
    # imports
    ("ImportError: cannot import name 'is_torch_xla_available' from 'transformers.utils'", "import_error"),
    ("OSError: libcudart.so.12: cannot open shared object file: No such file or directory", "import_error"),
    # https://github.com/bitsandbytes-foundation/bitsandbytes/issues/828 and /305
    ("CUDA Setup failed despite GPU being available. Please run the following command to get more information:",
     "import_error"),
    ("RuntimeError: CUDA Setup failed despite GPU being available. Inspect the CUDA SETUP outputs above to fix your "
     "environment!", "import_error"),
    # https://github.com/bitsandbytes-foundation/bitsandbytes/issues/459
    ("AttributeError: /opt/conda/lib/python3.10/site-packages/bitsandbytes/libbitsandbytes_cpu.so: undefined symbol: "
     "cget_col_row_stats", "import_error"),
    ("importlib.metadata.PackageNotFoundError: No package metadata was found for bitsandbytes", "import_error"),
    # plain timeouts, after everything more specific
    ("requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='huggingface.co', port=443): Read timed out.", "timeout"),
    ("socket.timeout: timed out", "timeout"),
    ("subprocess.TimeoutExpired: Command '['git', 'lfs', 'pull']' timed out after 300 seconds", "timeout"),
    # the Hub out of reach: https://github.com/PromtEngineer/localGPT/issues/822
    ("OSError: We couldn't connect to 'https://huggingface.co' to load this file, couldn't find it in the cached files "
     "and it looks like meta-llama/Meta-Llama-3-8B-Instruct is not the path to a directory containing a file named "
     "config.json.", "timeout"),
    # https://github.com/yxKryptonite/OpenFMNav/issues/4
    ("=====> [ERROR]: We couldn't connect to 'https://huggingface.co' to load this file, couldn't find it in the "
     "cached files and it looks like bert-base-uncased is not the path to a directory containing a file named "
     "config.json.", "timeout"),
    ("huggingface_hub.errors.HfHubHTTPError: 504 Server Error: Gateway Time-out for url: "
     "https://huggingface.co/api/models/meta-llama/Llama-2-7b-hf", "timeout"),
    # huggingface_hub's LocalEntryNotFoundError, before and after 0.17: https://github.com/caoyunkang/Segment-Any-Anomaly/
    # issues/18, https://github.com/mattyamonaca/layerdivider/issues/53
    ("huggingface_hub.utils._errors.LocalEntryNotFoundError: Connection error, and we cannot find the requested files in "
     "the disk cache. Please try again or make sure your Internet connection is on.", "timeout"),
    ("huggingface_hub.errors.LocalEntryNotFoundError: An error happened while trying to locate the file on the Hub and "
     "we cannot find the requested files in the local cache. Please check your connection and try again or make sure "
     "your Internet connection is on.", "timeout"),
    # a request that gave up, no timeout in its words: https://github.com/tomaarsen/SpanMarkerNER/issues/52
    ("MaxRetryError: HTTPSConnectionPool(host='huggingface.co', port=443): Max retries exceeded with url: "
     "/bert-base-uncased/resolve/main/config.json (Caused by NewConnectionError('<urllib3.connection.HTTPSConnection "
     "object at 0x783edf828070>: Failed to establish a new connection: [Errno -3] Temporary failure in name "
     "resolution'))", "timeout"),
    # any exception class named ...TimeoutError (datasets streaming through fsspec/aiohttp)
    ("aiohttp.client_exceptions.ServerTimeoutError: Timeout on reading data from socket", "timeout"),
    ("fsspec.exceptions.FSTimeoutError", "timeout"),
]


@pytest.mark.parametrize("line, category", CASES)
def test_pattern_table_gives_the_most_specific_category(line, category):
    pattern = crash.classify(line)
    assert pattern is not None, line
    assert pattern.category == category


# A row whose category's fix would point the wrong way carries its own.
@pytest.mark.parametrize("line, category, fix_names", [
    # /dev/shm, not the output folder: https://github.com/logicalclocks/hopsworks/issues/1557
    ("RuntimeError: unable to write to file </torch_739_144252761_4>: No space left on device (28)", "disk_full",
     "/dev/shm"),
    ("RuntimeError: DataLoader worker (pid 729) is killed by signal: Bus error. It is possible that dataloader's "
     "workers are out of shared memory. Please try to raise your shared memory limit.", "disk_full", "/dev/shm"),
    # https://github.com/pangeo-data/pangeo-docker-images/issues/258
    ("ERROR: Unexpected bus error encountered in worker. This might be caused by insufficient shared memory (shm).",
     "disk_full", "/dev/shm"),
    ("host:12:34 [0] NCCL WARN Call to posix_fallocate failed : No space left on device", "disk_full", "/dev/shm"),
    # NCCL >= 2.12 growing its segment, without and with the errno: https://github.com/NVIDIA/nccl-tests/issues/166,
    # https://github.com/kserve/kserve/issues/3791, https://github.com/pytorch/ci-infra/pull/490
    ("ubuntu:9621:9691 [6] misc/shmutils.cc:71 NCCL WARN Error: failed to extend /dev/shm/nccl-fjwOOB to 5967876 bytes",
     "disk_full", "/dev/shm"),
    ("hugging-model-1-predictor-00001-deployment-5c86c57756-p7ghj:1:1 [0] misc/shmutils.cc:72 NCCL WARN Error: failed "
     "to extend /dev/shm/nccl-H1dBqY to 9637892 bytes", "disk_full", "/dev/shm"),
    ("[2026-04-22 21:34:20] mt-l-x86iavx512-45-172-t4-4-csmpw-runner-g4sfw-workflow:202016:202235 [0] misc/shmutils.cc:88 "
     "NCCL WARN Error: failed to extend /dev/shm/nccl-WU88OE to 9637892 bytes, error: No space left on device (28)",
     "disk_full", "/dev/shm"),
    # no usable GPU: https://github.com/princeton-nlp/SimCSE/issues/244, https://github.com/Grace9994/CoMoSVC/issues/6
    ("RuntimeError: Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU and installed a "
     "driver from http://www.nvidia.com/Download/index.aspx", "gpu_error", "CUDA_VISIBLE_DEVICES"),
    ("RuntimeError: No CUDA GPUs are available", "gpu_error", "CUDA_VISIBLE_DEVICES"),
    ("RuntimeError: CUDA error: no CUDA-capable device is detected", "gpu_error", "CUDA_VISIBLE_DEVICES"),
    # a JIT op build that failed (DeepSpeed's cpu_adam), https://github.com/deepspeedai/DeepSpeed/issues/2682,
    # https://github.com/NExT-GPT/NExT-GPT/issues/65
    ("RuntimeError: Error building extension 'cpu_adam'", "import_error", "CUDA_HOME"),
    ("RuntimeError: Error building extension 'fused_adam'", "import_error", "CUDA_HOME"),
    # the job's own time limit, not the network
    ("slurmstepd: error: *** JOB 1234567 ON gpu042 CANCELLED AT 2024-05-01T03:00:12 DUE TO TIME LIMIT ***", "timeout",
     "--time"),
    # host memory, not a kill: https://github.com/JingyunLiang/VRT/issues/49
    ("RuntimeError: [enforce fail at alloc_cpu.cpp:73] . DefaultCPUAllocator: can't allocate memory: you tried to "
     "allocate 116813856768 bytes. Error code 12 (Cannot allocate memory)", "process_killed", "DefaultCPUAllocator"),
])
def test_a_pattern_can_carry_its_own_fix(line, category, fix_names):
    pattern = crash.classify(line)
    assert (pattern.category, pattern.severity) == (category, crash.CATEGORIES[category][0])
    assert fix_names in pattern.fix and pattern.fix != crash.CATEGORIES[category][1]
    (item,) = crash.collapse(crash.scan_lines([(0, line)], "train.log", now=NOW))[0]
    assert item["fix"] == pattern.fix
    assert crash.classify("OSError: [Errno 28] No space left on device").fix == crash.CATEGORIES["disk_full"][1]


HARMLESS = [
    "{'eval_loss': 0.9336, 'eval_error_rate': 0.12, 'error_rate': 0.1, 'epoch': 0.34}",
    "{'loss': 0.0923, 'grad_norm': 14.958441912749135, 'learning_rate': 9.6e-05, 'epoch': 0.38}",
    "/venv/lib/python3.11/site-packages/torch/cuda/__init__.py:641: UserWarning: Can't initialize amdsmi - Error code: 34",
    '  warnings.warn(f"Can\'t initialize amdsmi - Error code: {e.err_code}")',
    "[W socket.cpp:663] [c10d] The client socket has timed out after 600s while trying to connect to (127.0.0.1, 29500).",
    "[rank0]:[W321 02:07:08.408 ProcessGroupNCCL.cpp:1168] Warning: WorkNCCL timeout detected, dumping debug info",
    "2024-03-01 10:00:00 - WARNING - transformers.trainer - No module named 'wandb'; logging to wandb disabled",
    "FutureWarning: `resume_download` is deprecated and will be removed; ImportError is raised in 5.0",
    "Gradient overflow.  Skipping step, loss scaler 0 reducing loss scale to 32768.0",
    "ddp_timeout=1800, save_steps=500, logging_nan_inf_filter=True",
    "Saving model checkpoint to /srv/training/current_model/checkpoint-500",
    "[W ProcessGroupNCCL.cpp:1250] Warning: 0NCCL_AVOID_RECORD_STREAMS=1 has no effect for point-to-point collectives.",
    "[rank1]:[W1121 10:00:00.000 ProcessGroupNCCL.cpp:4115] [PG ID 0 PG GUID 0 Rank 1] using GPU 1; a timeout may follow",
    # NCCL INFO is NCCL's debug level: a missing optional plugin, a connect it retries
    # https://github.com/NVIDIA/nccl/issues/1059
    "MLVM2: MLVM2:10792:10792 [0] NCCL INFO NET/Plugin : Plugin load (libnccl-net.so) returned 2 : libnccl-net.so: "
    "cannot open shared object file: No such file or directory",
    # https://github.com/sgl-project/sglang/issues/4289
    "node17-2:36748:36748 [0] NCCL INFO NET/Plugin: Plugin load returned 2 : libnccl-net.so: cannot open shared object "
    "file: No such file or directory : when loading libnccl-net.so",
    # https://github.com/NVIDIA/nccl/issues/1231 (the maintainer: harmless)
    "VM-0-14-tencentos:162637:162637 [6] NCCL INFO NET/Plugin : dlerror=libnccl-net.so: cannot open shared object file: "
    "No such file or directory No plugin found (libnccl-net.so), using internal implementation",
    # https://github.com/NVIDIA/nccl/pull/1618
    "[03/16][2025-02-25 15:46:48,390] [misc/socket.cc:551] [s11gn1268:pid=3987720] NCCL INFO socketPollConnect: connect "
    "returned Connection timed out, retrying (1/34) after sleep for 100 msec",
    # TensorFlow/absl level letters (W and I; E and F can be failures), https://github.com/gnobitab/RectifiedFlow/issues/29
    "2024-12-02 14:46:38.268417: W tensorflow/compiler/xla/stream_executor/platform/default/dso_loader.cc:64] Could not "
    "load dynamic library 'libcudart.so.11.0'; dlerror: libcudart.so.11.0: cannot open shared object file: No such "
    "file or directory; LD_LIBRARY_PATH: =/opt/OpenBLAS/lib",
    "2024-12-02 14:46:38.731561: W tensorflow/compiler/xla/stream_executor/platform/default/dso_loader.cc:64] Could not "
    "load dynamic library 'libnvinfer.so.7'; dlerror: libnvinfer.so.7: cannot open shared object file: No such file or "
    "directory",
    "2024-12-02 14:46:38.268417: I tensorflow/core/util/port.cc:113] oneDNN custom operations are on. You may see "
    "slightly different numerical results due to floating-point round-off errors from different computation orders.",
    # xformers without triton: a notice, https://github.com/bmaltais/kohya_ss/issues/2203 (maintainer: just warnings)
    "Error caught was: No module named 'triton'",
    # rich's traceback box prints source lines (as "File ..., line N" frames do), not the error
    "\u2502   1510 \u2502   \u2502   except ImportError as e:                                                  \u2502",
    # https://github.com/bitsandbytes-foundation/bitsandbytes/issues/492
    "\u2502   21 \u2502   \u2502   CUDA Setup failed despite GPU being available. Please run the f \u2502",
    "\u2502 \u2771 1512 \u2502   \u2502   raise RuntimeError(                                        \u2502",
    "wandb: Network error (ReadTimeout), entering retry loop.",  # wandb retries on its own
    # torch warns when CUDA cannot start; the failure, if any, comes later
    "/usr/lib/python3/dist-packages/torch/cuda/__init__.py:138: UserWarning: CUDA initialization: Unexpected error from "
    "cudaGetDeviceCount(). Did you run some cuda functions before calling NumCudaDevices() that might have already "
    "set an error? Error 804: forward compatibility was attempted on non supported HW",
    # a c10d connect it retries, https://github.com/ofsoundof/GRL-Image-Restoration/issues/27
    "trainer/0 [1]:[W socket.cpp:558] [c10d] The client socket has failed to connect to 0.0.0.5:40323 (errno: 110 - "
    "Connection timed out).",
    # a NaN/inf grad_norm beside a finite loss: a step mixed precision skips (a real divergence shows in the loss)
    "{'loss': 2.1, 'grad_norm': inf, 'learning_rate': 0.0002}",
    "{'loss': 0.0, 'grad_norm': tensor(nan, device='cuda:0'), 'learning_rate': 2e-05, 'epoch': 0.1}",
    # https://github.com/JiaquanYe/TableMASTER-mmocr/issues/32 (the maintainer: normal with mixed precision)
    "Epoch [1][100/62598]\tlr: 1.000e-03, eta: 6 days, 15:22:46, time: 0.539, data_time: 0.051, memory: 7239, "
    "loss_ce: 1.2757, horizon_bbox_loss: 0.2828, vertical_bbox_loss: 0.3507, loss: 1.9091, grad_norm: nan",
    # https://github.com/InternLM/xtuner/issues/187
    "10/30 22:19:57 - mmengine - INFO - Epoch(train) [1][240/735]  lr: 1.9813e-04  eta: 2:44:49  time: 2.8874  "
    "data_time: 0.0042  memory: 10762  loss: 2.5128  grad_norm: nan",
    # https://github.com/StarsfieldAI/R1-V/issues/69 (GRPO's first steps; the failure came later, as sampling's error)
    "{'loss': 0.0, 'grad_norm': nan, 'learning_rate': 9.997509960159361e-07, 'completion_length': 303.75, "
    "'rewards/accuracy_reward': 0.0, 'reward': 0.25, 'reward_std': nan, 'kl': 0.00072479248046875, 'epoch': 0.0}",
    "NaN or Inf found in input tensor.",  # tensorboard's note on a NaN scalar it was asked to log
    # detectron2's loss line, https://github.com/facebookresearch/detectron2/issues/817
    "[02/05 23:05:59 d2.utils.events]: eta: 9:07:04  iter: 3659  total_loss: 1.117  loss_cls: 0.345  loss_box_reg: 0.285  "
    "loss_mask: 0.343  loss_rpn_cls: 0.077  loss_rpn_loc: 0.105  time: 0.3771  data_time: 0.0084  lr: 0.010000  "
    "max_mem: 3402M",
    # a THC check of another error while training went on: https://github.com/pytorch/pytorch/issues/20133
    "THCudaCheck FAIL file=/pytorch/aten/src/THC/THCGeneral.cpp",
    # finite loss metrics with a suffix, https://github.com/christianpayer/MedicalDataAugmentationTool-VerSe/issues/31
    "02:29:53: train iter: 0 loss_net: 0.9443 loss_scale: 32768.0000 norm: 21.8862 norm_average: 1.0100 seconds: 445.463",
    "ddp_timeout=1800, logging_nan_inf_filter=True, loss_type=None, average_tokens_across_devices=False",
    # torch's hint after any CUDA error (an out-of-memory one too) names no assert that fired,
    # https://github.com/dhcode-cpp/X-R1/issues/37
    "[rank0]: Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.",
    # huggingface_hub's warning on a request it retries (https://github.com/ostris/ai-toolkit/issues/468), with and
    # without the logging prefix; a request that fails for good raises after it
    "'(MaxRetryError('HTTPSConnectionPool(host=\\'huggingface.co\\', port=443): Max retries exceeded with url: "
    "/Qwen/Qwen-Image/resolve/main/transformer/config.json (Caused by NameResolutionError(\"<urllib3.connection."
    "HTTPSConnection object at 0x000001AD4959C880>: Failed to resolve \\'huggingface.co\\' ([Errno 11001] getaddrinfo "
    "failed)\"))'), '(Request ID: fbd62a1e-cec5-4e02-9bde-ba194eb4dc58)')' thrown while requesting HEAD "
    "https://huggingface.co/Qwen/Qwen-Image/resolve/main/transformer/config.json",
    "WARNING:huggingface_hub.utils._http:Retrying in 1s [Retry 1/5].",
    # gRPC's notice at process exit, https://github.com/grpc/grpc/issues/38490 (as public READMEs quote it, "ignore")
    "E0000 00:00:1738205048.894250    2795 init.cc:232] grpc_wait_for_shutdown_with_timeout() timed out.",
]


@pytest.mark.parametrize("line", HARMLESS)
def test_harmless_lines_give_nothing(line):
    assert crash.classify(line) is None


@pytest.mark.parametrize("line, category", [
    # a failure at an error level, or after one, is not made harmless by a level letter or NCCL INFO after it
    # (the driver's status names no GPU: TensorFlow goes on without one, the more specific verdict)
    ("2024-12-02 14:46:38.268417: E tensorflow/compiler/xla/stream_executor/cuda/cuda_driver.cc:266] failed call to "
     "cuInit: CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected; ImportError: libcuda.so.1", "gpu_error"),
    ("RuntimeError: NCCL error: unhandled system error, NCCL version 2.18.1; last: NCCL INFO Bootstrap", "nccl_timeout"),
    ("host:123:456 [0] NCCL WARN Cuda failure 'out of memory'", "cuda_oom"),
])
def test_quiet_markers_do_not_hide_failures(line, category):
    assert crash.classify(line).category == category


def test_source_line_of_a_traceback_frame_is_not_a_crash():
    frame = '  File "/venv/lib/python3.10/site-packages/transformers/utils/import_utils.py", line 1510, in _get_module'
    assert crash.classify("    except ImportError as e:", frame) is None
    assert crash.classify("ModuleNotFoundError: No module named 'flash_attn'", frame).category == "import_error"
    assert crash.classify("    except ImportError as e:", "an ordinary line").category == "import_error"
    prefixed = "2023-04-29 06:01:12.977 [pid 28936] [09c5]   File \"/opt/x.py\", line 379, in save"
    assert crash.classify("2023-04-29 06:01:12.977 [pid 28936] [09c5]     raise ImportError(msg)", prefixed) is None
    assert crash.classify("2023-04-29 06:01:12.977 [pid 28936] [09c5] OSError: [Errno 28] No space left on device",
                          prefixed).category == "disk_full"


def test_long_runs_that_once_backtracked_give_nothing():
    # the lines that made \w*loss\w* quadratic and ".cu ... Assertion ... failed" cubic (75 ms and 700 ms a line):
    # the patterns' repeats are bounded now; what each line costs is measured by benchmarks/, not asserted here
    assert crash.classify("loss" * 1024) is None
    assert crash.classify("xloss_" * 680) is None
    assert crash.classify("a.cu:1 Assertion " * 240) is None  # ".cu ... Assertion ... failed" with no "failed"


def test_very_long_and_odd_lines_are_bounded():
    # the first 4096 characters and the last 1024 count, not the middle
    assert crash.classify("x" * 1000000 + " CUDA out of memory").category == "cuda_oom"
    assert crash.classify("x" * 5000 + " CUDA out of memory " + "x" * 2000) is None
    assert crash.classify("UserWarning: " + "x" * 6000 + " CUDA out of memory") is None  # its start decides: a warning
    assert crash.classify("\x00\x01\ufffd garbage \udcff") is None


# -- what a terminal shows: colors and progress bars --------------------------------------------

BAR = " 12%%|\u2588\u258f        | %d/1000 [02:03<15:01,  1.02s/it]"


@pytest.mark.parametrize("line, category, text", [
    # the error written over tqdm's bar: reported without the bar
    ("".join("\r" + BAR % n for n in range(115, 121)) + "\rtorch.OutOfMemoryError: CUDA out of memory. Tried to "
     "allocate 2.00 GiB", "cuda_oom", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"),
    # colored logging: the escape sequences are not part of the text, and do not hide an anchored pattern
    ("\x1b[31m[rank0]: RuntimeError: CUDA error: an illegal memory access was encountered\x1b[0m", "gpu_error",
     "[rank0]: RuntimeError: CUDA error: an illegal memory access was encountered"),
    ("\x1b[1mKilled\x1b[0m", "process_killed", "Killed"),
    # one category for one line, the most specific, whatever part of the line says it
    ("\rKilled\rtorch.OutOfMemoryError: CUDA out of memory.", "cuda_oom", "torch.OutOfMemoryError: CUDA out of memory."),
])
def test_a_line_is_classified_as_a_terminal_shows_it(line, category, text):
    found = crash.scan_lines([(0, line)], "train.log", now=NOW)
    assert [(m["category"], m["text"]) for m in found] == [(category, text)]


@pytest.mark.parametrize("line", [
    "\x1b[33mWARNING\x1b[0m: torch.distributed: store timed out, retrying",   # a colored warning stays harmless
    "".join("\r" + BAR % n for n in range(1, 500)),                          # a progress bar alone
    "\x1b[2K\x1b[1G{'loss': 0.4123, 'grad_norm': 1.03, 'eval_loss': 0.51}",
])
def test_colored_warnings_and_progress_bars_give_nothing(line):
    assert crash.scan_lines([(0, line)], "train.log", now=NOW) == []


def test_a_huge_redrawn_line_is_read_at_its_start_and_its_last_part(tmp_path):
    # a whole epoch of progress on one line (hundreds of KiB), the crash written over the bar at its end
    line = "".join("\r" + BAR % (n % 1000) for n in range(6000)) + "\rRuntimeError: CUDA error: out of memory\n"
    path = write(tmp_path / "train.log", "step 1\n" + line)
    assert os.path.getsize(path) > 10 * crash.MAX_LINE_BYTES
    report = crash.scan([path], history_file=None, now=NOW)
    assert [(c["category"], c["line"]) for c in report["crashes"]] == [
        ("cuda_oom", "RuntimeError: CUDA error: out of memory")]


@pytest.mark.parametrize("line, category", [
    # the verdict at the end of a long argv (the DeepSpeed launcher, subprocess)
    ("[2023-04-14 13:11:27,885] [ERROR] [launch.py:434:sigkill_handler] ['/usr/bin/python3', '-u', 'main.py', " +
     ", ".join("'--arg%d'" % i for i in range(600)) + "] exits with return code = -9", "process_killed"),
    ("subprocess.CalledProcessError: Command '[" + ", ".join("'--arg%d', 'value%d'" % (i, i) for i in range(3000)) +
     "]' died with <Signals.SIGKILL: 9>.", "process_killed"),
])
def test_a_long_line_is_read_at_its_start_and_its_end(tmp_path, line, category):
    path = write(tmp_path / "train.log", "step 1\n" + line + "\n")
    report = crash.scan([path], history_file=None, now=NOW)
    assert report["categories"] == [category]
    shown = report["crashes"][0]["line"]
    assert shown.startswith(line[:100]) and shown.endswith(line[-100:]) and len(shown) <= crash.MAX_MESSAGE_CHARS + 5
    tail = crash.read_tail(path)
    assert len(tail.lines[-1][1]) <= crash.MAX_LINE_BYTES + crash.MAX_END_BYTES + 5  # memory stays bounded


# -- line times --------------------------------------------------------------------------------

@pytest.mark.parametrize("line, parts", [
    ("2023-04-29 06:01:12.977 [177/train/578 (pid 28936)] ERROR main failed", (2023, 4, 29, 6, 1, 12)),
    ("[INFO|trainer.py:3067] 2024-03-15 16:13:12,728 >> Saving model checkpoint", (2024, 3, 15, 16, 13, 12)),
    ("  time      : 2024-09-09_09:36:56", (2024, 9, 9, 9, 36, 56)),
    ("[rank0]:[E321 02:07:08.408271257 ProcessGroupNCCL.cpp:607] [Rank 0] Watchdog", (2026, 3, 21, 2, 7, 8)),
    ("E1130 23:59:01.000 pg.cpp:1] x", (2025, 11, 30, 23, 59, 1)),  # glog: no year, in the future -> last year
    ("Mar 21 02:07:08 host kernel: Out of memory: Killed process 1", (2026, 3, 21, 2, 7, 8)),
    ("[Thu Mar 21 02:07:08 2024] python3 invoked oom-killer", (2024, 3, 21, 2, 7, 8)),
])
def test_line_times(line, parts):
    assert int(crash.line_time(line, NOW)) == time.mktime(parts + (0, 0, -1))


def test_iso_time_with_zone_and_no_time():
    assert crash.line_time("2026-01-01T00:00:00Z job failed", NOW) == 1767225600
    assert crash.line_time("2026-01-01T01:00:00+01:00 job failed", NOW) == 1767225600
    assert crash.line_time("{'loss': nan, 'epoch': 0.09}", NOW) is None
    assert crash.line_time("2026-13-45 99:99:99 not a time", NOW) is None


def test_a_line_without_a_stamp_takes_the_time_of_the_line_before():
    lines = ["2024-08-21 22:56:04 | starting", "torch.OutOfMemoryError: CUDA out of memory."]
    (match,) = crash.scan_lines(lines, "x.log", NOW)
    assert match["epoch"] == time.mktime((2024, 8, 21, 22, 56, 4, 0, 0, -1))


# -- reading the end of a file -----------------------------------------------------------------

def test_read_tail_returns_the_last_lines_with_their_offsets(tmp_path):
    path = write(tmp_path / "a.log", "".join("line %d\n" % i for i in range(5000)))
    tail = crash.read_tail(path, 3)
    assert [t for _offset, t in tail.lines] == ["line 4997", "line 4998", "line 4999"]
    with open(path, "rb") as handle:
        data = handle.read()
    for offset, text in tail.lines:
        assert data[offset:offset + len(text)].decode() == text
    assert tail.complete and tail.bytes_read < 70000  # one block from the end, not the file


def test_read_tail_small_file_partial_last_line_crlf_and_bad_bytes(tmp_path):
    path = tmp_path / "b.log"
    path.write_bytes(b"first\r\nsecond \xff\xfe\nunterminated")
    tail = crash.read_tail(str(path), 10)
    assert [t for _offset, t in tail.lines] == ["first", "second \ufffd\ufffd", "unterminated"]
    assert tail.lines[0][0] == 0 and tail.complete


def test_read_tail_drops_the_partial_first_line(tmp_path):
    path = write(tmp_path / "c.log", "a" * 100 + "\nkeep\n")
    tail = crash.read_tail(path, 5, max_bytes=20)
    assert [t for _offset, t in tail.lines] == ["keep"]
    assert tail.complete is False and "limit" in tail.note


def test_read_tail_of_a_huge_sparse_file_reads_only_its_budget(tmp_path):
    path = str(tmp_path / "huge.log")
    with open(path, "wb") as handle:
        handle.truncate(1024 ** 3)
        handle.seek(0, 2)
        handle.write(b"\nRuntimeError: CUDA error: an illegal memory access was encountered\n")
    tail = crash.read_tail(path, 1000)
    assert tail.bytes_read <= 1000 * crash.BYTES_PER_LINE
    assert tail.size > 1024 ** 3
    assert tail.lines[-1][1].startswith("RuntimeError: CUDA error")
    no_newlines = str(tmp_path / "zeros.log")
    with open(no_newlines, "wb") as handle:
        handle.truncate(1024 ** 3)
    tail = crash.read_tail(no_newlines, 1000)
    assert tail.lines == [] and tail.bytes_read == 1000 * crash.BYTES_PER_LINE and "limit" in tail.note


def test_read_tail_stops_at_the_deadline(tmp_path):
    path = write(tmp_path / "d.log", "x\n" * 200000)
    ticks = iter([0.0, 0.0, 5.0, 5.0, 5.0])
    tail = crash.read_tail(path, 100000, deadline=1.0, clock=lambda: next(ticks))
    assert "timeout" in tail.note and tail.complete is False
    assert 0 < len(tail.lines) < 100000


def test_a_scan_past_its_deadline_marks_each_log_timed_out(tmp_path):
    path = write(tmp_path / "e.log", "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB\n")
    report = crash.scan([path], record=False, now=NOW, deadline=1.0, clock=lambda: 5.0)
    assert report["crashes"] == [] and report["files"][0]["timed_out"] is True
    assert report["files"][0]["note"] == "read stopped by the timeout after 0 bytes"
    report = crash.scan([path], record=False, now=NOW, deadline=10.0, clock=lambda: 5.0)
    assert report["categories"] == ["cuda_oom"] and report["files"][0]["timed_out"] is False


def test_read_tail_refuses_what_is_not_a_regular_file(tmp_path):
    fifo = str(tmp_path / "fifo.log")
    os.mkfifo(fifo)
    assert "fifo" in crash.read_tail(fifo).error  # and it did not block
    assert "directory" in crash.read_tail(str(tmp_path)).error
    assert crash.read_tail(str(tmp_path / "gone.log")).error.endswith("is missing")


def test_expand_logs_globs_plain_paths_and_the_file_limit(tmp_path, monkeypatch):
    for name in ("b.log", "a.log", "c.txt"):
        write(tmp_path / name, "")
    paths, note = crash.expand_logs([str(tmp_path / "*.log"), str(tmp_path / "a.log"), str(tmp_path / "none.log")])
    assert paths == [str(tmp_path / "a.log"), str(tmp_path / "b.log"), str(tmp_path / "none.log")] and note is None
    monkeypatch.setattr(crash, "MAX_FILES", 1)
    paths, note = crash.expand_logs([str(tmp_path / "*.log")])
    assert paths == [str(tmp_path / "b.log")] and "2 log files match" in note


# -- events and the history --------------------------------------------------------------------

OOM = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"


def test_history_records_each_crash_once_and_counts_recurrence(tmp_path):
    log = write(tmp_path / "train.log", "2026-03-21 10:00:00 step 1\n" + OOM)
    history = str(tmp_path / ".crash_history.json")
    first = crash.scan([log], history_file=history, now=NOW)
    assert first["history"]["recorded"] == 1 and first["history"]["state"] == "missing"
    assert first["crashes"][0]["recurrence_text"] == "1st cuda_oom in 24 h"
    again = crash.scan([log], history_file=history, now=NOW + 60)
    assert again["history"]["recorded"] == 0  # already recorded: never twice
    assert again["crashes"][0]["recurrence"] == 1
    with open(log, "a") as handle:
        handle.write("2026-03-21 11:00:00 restarted\n" + "step\n" * 300 + OOM)
    third = crash.scan([log], history_file=history, now=NOW + 120)
    assert third["history"]["recorded"] == 1
    assert third["crashes"][0]["count"] == 2 and third["crashes"][0]["recurrence_text"] == "2nd cuda_oom in 24 h"
    with open(history) as handle:
        doc = json.load(handle)
    assert doc["kind"] == crash.HISTORY_KIND and len(doc["crashes"]) == 2
    assert [r["last_seen"] for r in doc["crashes"]] == [crash._iso(time.mktime((2026, 3, 21, hour, 0, 0, 0, 0, -1)))
                                                        for hour in (10, 11)]
    # no temp file left; the lock file concurrent scans queue on stays
    assert sorted(os.listdir(str(tmp_path))) == [".crash_history.json", ".crash_history.json.lock", "train.log"]


def test_a_scan_records_under_the_lock_what_another_scan_wrote_meanwhile(tmp_path, monkeypatch):
    # two scans (two logs) read the history, then both write it: the one that wrote last dropped the other's event
    first_log = write(tmp_path / "a.log", "2026-03-21 10:00:00 step 1\n" + OOM)
    other_log = write(tmp_path / "b.log", "2026-03-21 10:30:00 step 1\n" + OOM)
    history = str(tmp_path / ".crash_history.json")
    real_lock = _files.lock_exclusive
    meanwhile = []

    def lock_after_the_other_scan(path, timeout):
        if not meanwhile:   # the other scan wrote between this scan's first read and its lock
            meanwhile.append(None)
            meanwhile[0] = crash.scan([other_log], history_file=history, now=NOW)
        return real_lock(path, timeout)
    monkeypatch.setattr(_files, "lock_exclusive", lock_after_the_other_scan)
    result = crash.scan([first_log], history_file=history, now=NOW)
    assert meanwhile[0]["history"]["recorded"] == 1 and result["history"]["recorded"] == 1
    with open(history) as handle:
        assert sorted(r["file"] for r in json.load(handle)["crashes"]) == [first_log, other_log]


def test_a_lock_named_by_a_symlink_is_never_followed(tmp_path):
    # the service user owns the folder: a link in the lock's name must not make root create a file elsewhere
    log = write(tmp_path / "train.log", "2026-03-21 10:00:00 step 1\n" + OOM)
    target = tmp_path / "outside" / "created-by-root"
    target.parent.mkdir()
    os.symlink(str(target), str(tmp_path / ".crash_history.json.lock"))
    result = crash.scan([log], history_file=str(tmp_path / ".crash_history.json"), now=NOW)
    assert result["history"]["state"] == "error" and "could not be locked" in result["history"]["error"]
    assert not target.exists() and not (tmp_path / ".crash_history.json").exists()
    assert result["crashes"][0]["category"] == "cuda_oom"   # the scan itself still reports


def test_a_history_of_a_newer_format_version_is_left_as_it_is(tmp_path):
    log = write(tmp_path / "train.log", "2026-03-21 10:00:00 step 1\n" + OOM)
    history = tmp_path / ".crash_history.json"
    text = json.dumps({"kind": crash.HISTORY_KIND, "version": 2, "crashes": [], "retention": "30d"})
    history.write_text(text)
    result = crash.scan([log], history_file=str(history), now=NOW)
    assert result["history"]["state"] == "unparseable" and result["history"]["recorded"] == 0
    assert "of another format version (2; this release reads 1): left as it is" in result["history"]["error"]
    assert history.read_text() == text


def test_the_history_keeps_the_newest_events_and_never_records_one_twice(tmp_path, monkeypatch):
    monkeypatch.setattr(crash, "HISTORY_MAX_RECORDS", 3)
    history = str(tmp_path / ".crash_history.json")
    old = [{"category": "cuda_oom", "fingerprint": "old%d" % n, "recorded_at": "2026-03-01T00:00:00Z"} for n in range(3)]
    with open(history, "w") as handle:
        json.dump({"kind": crash.HISTORY_KIND, "version": 1, "crashes": old}, handle)
    log = write(tmp_path / "train.log", "2026-03-21 10:00:00 step 1\n" + OOM + "step\n" * 300 +
                "2026-03-21 11:00:00 again\n" + OOM)
    first = crash.scan([log], history_file=history, now=NOW)
    assert (first["history"]["recorded"], first["history"]["pruned"]) == (2, 2)
    with open(history) as handle:
        kept = json.load(handle)["crashes"]
    assert [r["fingerprint"] for r in kept][:1] == ["old2"] and len(kept) == 3  # the oldest went first
    again = crash.scan([log], history_file=history, now=NOW + 60)
    assert (again["history"]["recorded"], again["history"]["pruned"]) == (0, 0)  # what is kept is not recorded again


def test_recurrence_window_is_24_hours(tmp_path):
    history = str(tmp_path / "h.json")
    old = {"fingerprint": "x", "category": "cuda_oom", "last_seen": crash._iso(NOW - 2 * 86400)}
    recent = {"fingerprint": "y", "category": "cuda_oom", "last_seen": None, "recorded_at": crash._iso(NOW - 3600)}
    other = {"fingerprint": "z", "category": "nan_loss", "last_seen": crash._iso(NOW - 60)}
    with open(history, "w") as handle:
        json.dump({"kind": crash.HISTORY_KIND, "version": 1, "crashes": [old, recent, other]}, handle)
    log = write(tmp_path / "t.log", OOM)
    report = crash.scan([log], history_file=history, now=NOW)
    assert report["crashes"][0]["recurrence_text"] == "2nd cuda_oom in 24 h"


def test_ordinals():
    assert [crash.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "101st", "111th"]


def test_check_mode_writes_nothing(tmp_path):
    log = write(tmp_path / "t.log", OOM)
    history = str(tmp_path / "h.json")
    report = crash.scan([log], history_file=history, check_mode=True, now=NOW)
    assert report["history"]["would_record"] == 1 and report["history"]["recorded"] == 0
    assert not os.path.exists(history)


@pytest.mark.parametrize("content", [
    b'[{"time": "2024-01-01", "error": "OOM"}]\n',   # an old tool's format: valid JSON, not ours
    b'{"crashes": [1, 2]}',                            # not ours either
    b'{"kind": "gpuops.preflight.crash_history", "crashes": [',  # cut in half
    b"\xff\xfe not text",
])
def test_a_history_that_is_not_ours_is_reported_and_never_overwritten(tmp_path, content):
    history = tmp_path / "h.json"
    history.write_bytes(content)
    log = write(tmp_path / "t.log", OOM)
    report = crash.scan([log], history_file=str(history), now=NOW)
    assert report["history"]["state"] == "unparseable" and "left as it is" in report["history"]["error"]
    assert report["history"]["recorded"] == 0
    assert history.read_bytes() == content
    assert report["crashes"][0]["recurrence"] == 1  # counted from this scan alone


def test_a_history_path_that_is_a_folder_or_a_fifo_is_left_alone(tmp_path):
    log = write(tmp_path / "t.log", OOM)
    folder = tmp_path / "hist"
    folder.mkdir()
    report = crash.scan([log], history_file=str(folder), now=NOW)
    assert report["history"]["state"] == "not_regular" and folder.is_dir()
    fifo = str(tmp_path / "fifo.json")
    os.mkfifo(fifo)
    report = crash.scan([log], history_file=fifo, now=NOW)
    assert report["history"]["state"] == "not_regular"


def test_events_split_on_distance_and_collapse_per_file_and_category(tmp_path):
    text = OOM + "ok\n" * (crash.EVENT_GAP_LINES + 1) + OOM + OOM + "{'loss': nan}\n"
    matches = crash.scan_lines(list(enumerate(text.splitlines())), "t.log", NOW)
    crashes, events = crash.collapse(matches)
    assert [(c["category"], c["count"]) for c in crashes] == [("cuda_oom", 3), ("nan_loss", 1)]
    assert [(e["category"], e["count"]) for e in events] == [("cuda_oom", 1), ("cuda_oom", 2), ("nan_loss", 1)]
    assert len(set(e["fingerprint"] for e in events)) == 3


def test_scan_reports_unreadable_logs_and_records_nothing_when_disabled(tmp_path):
    report = crash.scan([str(tmp_path / "missing.log"), str(tmp_path / "*.nothing")], history_file=None, now=NOW)
    assert report["categories"] == [] and report["history"]["state"] == "disabled"
    assert [f["error"] for f in report["files"]] == ["%s is missing" % (tmp_path / "missing.log")]


# -- driver-API names, cuDNN's handle, GPU architectures, the rendezvous port --------------------------

@pytest.mark.parametrize("line, category", [
    # TensorFlow's allocator names the driver API's status only:
    # https://github.com/tkuanlun350/3DUnet-Tensorflow-Brats18/issues/25
    ("2019-04-29 11:34:02.983765: E tensorflow/stream_executor/cuda/cuda_driver.cc:936] failed to allocate 128.00M "
     "(134217728 bytes) from device: CUDA_ERROR_OUT_OF_MEMORY", "cuda_oom"),
    # https://github.com/philip-huang/PIXOR/issues/31 (its title)
    ("failed to allocate 17.79G (19104890880 bytes) from device: CUDA_ERROR_OUT_OF_MEMORY: out of memory", "cuda_oom"),
    # a driver-API status with its words: https://github.com/jax-ml/jax/issues/3017
    ("> Program hit CUDA_ERROR_ILLEGAL_ADDRESS (error 700) due to \"an illegal memory access was encountered\" on CUDA "
     "API call to cuMemcpyDtoHAsync_v2", "gpu_error"),
    # MIOpen's status: https://github.com/ROCm/MIOpen/issues/3943
    ("RuntimeError: miopenStatusUnknownError", "gpu_error"),
])
def test_driver_api_and_rocm_library_statuses_are_classified(line, category):
    assert crash.classify(line).category == category


@pytest.mark.parametrize("line, category, fix_names", [
    # cuDNN could not create its handle: mostly GPU memory full when it started (the maintainers and reporters:
    # https://github.com/seanie12/Info-HCVAE/issues/7, https://github.com/flexflow/flexflow-train/issues/51), but not
    # the allocator's out-of-memory: gpu_error, its fix naming the memory
    ("RuntimeError: cuDNN error: CUDNN_STATUS_NOT_INITIALIZED", "gpu_error", "TF_FORCE_GPU_ALLOW_GROWTH"),
    # https://github.com/stephen-v/tensorflow_alexnet_classify/issues/4
    ("2019-01-23 21:21:11.073710: E tensorflow/stream_executor/cuda/cuda_dnn.cc:455] could not create cudnn handle: "
     "CUDNN_STATUS_NOT_INITIALIZED", "gpu_error", "TF_FORCE_GPU_ALLOW_GROWTH"),
    # no GPU code for this GPU (ROCm on an unlisted card, a wrong HSA_OVERRIDE_GFX_VERSION, a CUDA build without the
    # arch): https://github.com/ROCm/legacy-rocm-build/issues/2536, https://github.com/ggml-org/llama.cpp/issues/19949,
    # https://github.com/likelovewant/ROCmLibs-for-gfx1103-AMD780M-APU/issues/37
    ("RuntimeError: HIP error: invalid device function", "gpu_error", "HSA_OVERRIDE_GFX_VERSION"),
    (":1:hip_fatbin.cpp           :687 : 114369963532 us:  No compatible code objects found for: gfx1152, value of "
     "HIP_FORCE_SPIRV_CODEOBJECT: 0", "gpu_error", "HSA_OVERRIDE_GFX_VERSION"),
    (":0:rocdevice.cpp            :3018: 128688649210d us:  Callback: Queue 0x7f7f4d000000 aborting with error : "
     "HSA_STATUS_ERROR_INVALID_ISA: The instruction set architecture is invalid. code: 0x100f", "gpu_error",
     "HSA_OVERRIDE_GFX_VERSION"),
    ("RuntimeError: HIP error: hipErrorNoBinaryForGpu: Unable to find code object for all current devices!",
     "gpu_error", "HSA_OVERRIDE_GFX_VERSION"),
    # torch's lazy CUDA init on a host whose driver does not start: https://github.com/Kai-46/ARF-svox2/issues/9
    ("RuntimeError: CUDA driver initialization failed, you might not have a CUDA gpu.", "gpu_error",
     "CUDA_VISIBLE_DEVICES"),
    # TensorFlow found no GPU and goes on without one: https://github.com/rail-berkeley/softlearning/issues/150
    ("(pid=152519) 2020-09-14 16:54:07.442265: E tensorflow/stream_executor/cuda/cuda_driver.cc:313] failed call to "
     "cuInit: CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected", "gpu_error", "CUDA_VISIBLE_DEVICES"),
    # the rendezvous port taken: https://github.com/NVIDIA/tacotron2/issues/181, https://github.com/NVIDIA/Megatron-LM/
    # issues/343 (torch < 1.11's TCPStore), torch >= 1.11's socket
    ("RuntimeError: Address already in use", "nccl_timeout", "MASTER_PORT"),
    ("RuntimeError: The server socket has failed to listen on any local network address. The server socket has "
     "failed to bind to [::]:29500 (errno: 98 - Address already in use).", "nccl_timeout", "MASTER_PORT"),
])
def test_rows_with_their_own_fix_for_gpu_start_and_port_failures(line, category, fix_names):
    pattern = crash.classify(line)
    assert pattern.category == category
    assert fix_names in pattern.fix and pattern.fix != crash.CATEGORIES[category][1]


def test_cudnn_failures_other_than_its_handle_stay_gpu_errors():
    # https://github.com/seanie12/Info-HCVAE/issues/7 (the reporter's second error), the existing CUDNN_STATUS rows
    assert crash.classify("RuntimeError: cuDNN error: CUDNN_STATUS_EXECUTION_FAILED").category == "gpu_error"
    assert crash.classify("RuntimeError: cuDNN error: CUDNN_STATUS_INTERNAL_ERROR").fix == crash.CATEGORIES["gpu_error"][1]


def test_a_status_query_that_is_not_ready_is_no_error():
    # Hand-made, in the form of the HIP runtime's AMD_LOG_LEVEL=3 trace (https://github.com/ROCm/clr/issues/126): a query
    # on work still running answers hipErrorNotReady / cudaErrorNotReady (HIP's and CUDA's documented "not yet"), which
    # a healthy run traced at that level prints again and again.
    assert crash.classify(":3:hip_event.cpp            :323 : 14902600514 us: [pid:32899 tid:0x71038c239180] "
                          "hipEventQuery: Returned hipErrorNotReady : ") is None
    assert crash.classify("cudaEventQuery returned cudaErrorNotReady") is None
    assert crash.classify(":3:hip_module.cpp           :669 : 14629861952 us: [pid:31113 tid:0x7fa5a37fe700] "
                          "hipLaunchKernel: Returned hipErrorInvalidDeviceFunction : ").category == "gpu_error"


def test_an_optional_package_notice_is_not_an_import_error():
    # Phi-3's remote code logs it at WARNING without a level in the output:
    # github.com/ChintanShahDS/MultiModal_FineTuning README.md at f966be422f36 (the whole log is a fixture)
    assert crash.classify("`flash-attention` package not found, consider installing for better performance: No module "
                          "named 'flash_attn'.") is None
    assert crash.classify("ModuleNotFoundError: No module named 'flash_attn'").category == "import_error"


def test_wandb_retrying_its_own_requests_is_no_timeout():
    # https://github.com/wandb/wandb/issues/11162 (the issue #5372's lines are a fixture)
    assert crash.classify('wandb:   ERROR retrying: Post "https://api.wandb.ai/graphql": context deadline exceeded '
                          '(Client.Timeout exceeded while awaiting headers)') is None
    # wandb that gave up (wandb.init raises after it, the run stops) is a timeout still, as wandb's public
    # troubleshooting notes quote it
    assert crash.classify("wandb: ERROR Run initialization has timed out after 90.0 sec.").category == "timeout"


# The lines of https://github.com/derrian-distro/LoRA_Easy_Training_Scripts/issues/287 (rich's logging; the maintainer:
# "normal and won't affect training"): xformers' notice, then the traceback of the import it caught.
XFORMERS_NOTICE = [
    "WARNING  A matching Triton is not available, some optimizations will not be enabled   __init__.py:61",
    "Traceback (most recent call last):",
    '  File "D:\\AI\\Packages\\Training\\Kohya_ss\\LoRA_Easy_Training_Scripts\\backend\\sd_scripts\\venv\\Lib\\site-packages'
    '\\xformers\\__init__.py", line 57, in _is_triton_available',
    "    import triton  # noqa",
    "    ^^^^^^^^^^^^^",
    "ModuleNotFoundError: No module named 'triton'",
]


def test_the_traceback_a_notice_prints_under_itself_is_the_notice():
    assert crash.scan_lines(XFORMERS_NOTICE, "train.log", now=NOW) == []
    # the traceback ends at its exception line: a failure after it gives its category
    after = XFORMERS_NOTICE + ["ModuleNotFoundError: No module named 'accelerate'"]
    (match,) = crash.scan_lines(after, "train.log", now=NOW)
    assert (match["category"], match["index"]) == ("import_error", 6)
    # the same traceback without the notice right above it is a failure
    (match,) = crash.scan_lines(XFORMERS_NOTICE[1:], "train.log", now=NOW)
    assert (match["category"], match["index"]) == ("import_error", 4)
    # a notice followed by anything but a traceback: the next line is classified as usual
    lines = [XFORMERS_NOTICE[0], "RuntimeError: CUDA error: out of memory"]
    assert [m["category"] for m in crash.scan_lines(lines, "train.log", now=NOW)] == ["cuda_oom"]


@pytest.mark.parametrize("line", [
    # detectron2's anomaly check: https://github.com/facebookresearch/detectron2/issues/838 (the fixture of
    # gist-ailab/uoais#16 has it at the end of a traceback)
    "FloatingPointError: Loss became infinite or NaN at iteration=2137!",
    # fairseq's fp16 loss scaler gave up: https://github.com/facebookresearch/fairseq/issues/3185, its older
    # "Exception: Minimum loss scale reached" (https://github.com/facebookresearch/fairseq/issues/282)
    "FloatingPointError: Minimum loss scale reached (0.0001). Your loss is probably exploding. Try lowering the "
    "learning rate, using gradient clipping or increasing the batch size.",
    # a policy's distribution with NaN parameters (the Real() constraint fails on NaN only):
    # https://github.com/BayraktarLab/cell2location/issues/384 (its title), https://github.com/JinmiaoChenLab/scTM/issues/6
    "ValueError: Expected parameter loc (Parameter of shape (23, 1)) of distribution Normal(loc: torch.Size([23, 1]), "
    "scale: torch.Size([23, 1])) to satisfy the constraint Real(), but found invalid values:",
    "tensor([nan], device='cuda:0', requires_grad=True), scale: tensor([nan], device='cuda:0', "
    "grad_fn=<AddBackward0>)) to satisfy the constraint Real(), but found invalid values:",
])
def test_framework_checks_that_stop_a_diverged_run_are_nan_loss(line):
    assert crash.classify(line).category == "nan_loss"


def test_fp16_overflow_notes_of_a_run_still_going_give_nothing():
    # fairseq lowers its loss scale on an overflow and goes on (https://github.com/facebookresearch/fairseq/issues/512,
    # /1895); its epoch summary names loss_scale and best_loss
    for line in ["| WARNING: overflow detected, setting loss scale to: 0.0001220703125",
                 "2020-03-23 11:41:18 | INFO | fairseq.trainer | NOTE: overflow detected, setting loss scale to: "
                 "0.00048828125",
                 "| epoch 028 | valid on 'valid' subset | loss 9.329 | nll_loss 8.088 | ppl 272.04 | num_updates 9165 | "
                 "best_loss 9.11817"]:
        assert crash.classify(line) is None, line


@pytest.mark.parametrize("line", [
    # rocBLAS/hipBLASLt shipped without kernels for the GPU's architecture: https://github.com/ROCm/TheRock/issues/754
    # (RX 7800 XT, gfx1101), https://github.com/pytorch/pytorch/issues/179865 (a Vega 56, gfx900, left out of a nightly),
    # https://github.com/brknsoul/ROCmLibs/issues/4 (gfx1103)
    'rocblaslt error: Cannot read "TensileLibrary_lazy_gfx1101.dat": No error',
    'rocblaslt error: Could not load "TensileLibrary_lazy_gfx1101.dat"',
    "rocBLAS error: Cannot read /media/HDD/programs/AI/ComfyUI/venv-linux/lib/python3.12/site-packages/torch/lib/rocblas/"
    "library/TensileLibrary.dat: Illegal seek for GPU arch : gfx900",
    "rocBLAS error: Cannot read C:\\Program Files\\AMD\\ROCm\\6.1\\bin\\/rocblas/library/TensileLibrary.dat: No such "
    "file or directory for GPU arch : gfx1103",
])
def test_a_gpu_library_without_kernels_for_the_gpu_names_the_architecture(line):
    pattern = crash.classify(line)
    assert pattern.category == "gpu_error" and pattern.fix == crash.GPU_ARCH_FIX


@pytest.mark.parametrize("line", [
    # datasets' ConnectionError after its own retries: https://github.com/huggingface/datasets/issues/5988, /759 (pasted
    # with a typographic apostrophe)
    "ConnectionError: Couldn't reach https://huggingface.co/datasets/codeparrot/codeparrot-clean-train/resolve/main/"
    "dataset_infos.json (ConnectionError(ProtocolError('Connection aborted.', ConnectionResetError(104, 'Connection "
    "reset by peer'))))",
    "ConnectionError: Couldn\u2019t reach https://raw.githubusercontent.com/huggingface/datasets/1.1.2/datasets/"
    "cnn_dailymail/cnn_dailymail.py",
])
def test_datasets_that_could_not_reach_the_hub_is_a_timeout(line):
    assert crash.classify(line).category == "timeout"


@pytest.mark.parametrize("line", [
    # https://github.com/vllm-project/vllm/issues/10439 (vLLM 0.6 in docker compose)
    "vllm-1  | ERROR 11-18 18:07:28 engine.py:366] ValueError: No available memory for the cache blocks. Try increasing "
    "`gpu_memory_utilization` when initializing the engine.",
    # https://github.com/pytorch/pytorch/issues/175666 (vLLM v1's check at start)
    "[2026-02-24T20:21:58Z] (EngineCore_DP0 pid=6940) ValueError: Free memory on device cuda:1 (19.77/22.05 GiB) on "
    "startup is less than desired GPU memory utilization (0.9, 19.84 GiB). Decrease GPU memory utilization or reduce GPU "
    "memory used by other processes.",
    # https://github.com/basalam/product-catalog-generator/issues/10
    "ValueError: The model's max seq len (4096) is larger than the maximum number of tokens that can be stored in KV "
    "cache (3664). Try increasing gpu_memory_utilization or decreasing max_model_len when initializing the engine.",
])
def test_an_inference_engine_without_gpu_memory_for_its_kv_cache_is_cuda_oom(line):
    pattern = crash.classify(line)
    assert pattern.category == "cuda_oom" and pattern.fix == crash.ENGINE_MEMORY_FIX


def test_an_inference_engine_that_started_gives_nothing():
    # the "20k - OK" block of https://github.com/vllm-project/vllm/issues/10517 (its failing block is a fixture)
    lines = ["Loading model weights took 14.9888 GB",
             "Memory profiling results: total_gpu_memory=23.58GiB initial_memory_usage=15.34GiB peak_torch_memory=17.06GiB "
             "memory_usage_post_profile=15.35GiB non_torch_memory=0.35GiB kv_cache_size=3.81GiB gpu_memory_utilization=0.90",
             "GPU blocks: 1952, # CPU blocks: 2048",
             "Maximum concurrency for 20000 tokens per request: 1.56x"]
    assert crash.scan_lines(lines, "rollout.log", now=NOW) == []
    # its source line under a frame (https://github.com/vllm-project/vllm/issues/10439) gives nothing either
    frame = ('vllm-1  | ERROR 11-18 18:07:28 engine.py:366]   File "/usr/local/lib/python3.12/dist-packages/vllm/worker/'
             'worker.py", line 493, in raise_if_cache_size_invalid')
    assert crash.classify('vllm-1  | ERROR 11-18 18:07:28 engine.py:366]     raise ValueError("No available memory for '
                          'the cache blocks. "', frame) is None


@pytest.mark.parametrize("line", [
    # https://github.com/open-mmlab/mmhuman3d/issues/331 (training), https://github.com/MIC-DKFZ/nnUNet/issues/2675
    # (numpy 2's module name), https://github.com/NRauschmayr/Anomaly_Detection/issues/2 (a bare MemoryError)
    "numpy.core._exceptions.MemoryError: Unable to allocate 7.91 GiB for an array with shape (1396913, 190, 4) and data "
    "type float64",
    "numpy._core._exceptions._ArrayMemoryError: Unable to allocate 1.37 GiB for an array with shape (1, 546, 820, 820) "
    "and data type float32",
    "MemoryError",
])
def test_host_memory_that_python_could_not_allocate_is_host_memory(line):
    pattern = crash.classify(line)
    assert pattern.category == "process_killed" and pattern.fix == crash.HOST_MEMORY_FIX


def test_gpu_out_of_memory_errors_named_like_memory_errors_stay_cuda_oom():
    assert crash.classify("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 132.00 MiB.").category == "cuda_oom"
    assert crash.classify("torch.cuda.OutOfMemoryError: HIP out of memory.").category == "cuda_oom"


def test_the_start_value_of_a_running_minimum_loss_is_no_divergence():
    # A healthy first epoch of kh-kim/simple-ntc (its ignite trainer prints the best loss before updating it), as a
    # public blog post in a GitHub repository quotes it (the index does not name the repository); the plain trainer of
    # kh-kim/simple-ntc at 008adf37987b prints 'epoch: %d/%d\tmin_valid_loss=%.4e' with its start value, inf (hand-made
    # line of that format below).
    assert crash.classify("Validation - loss=9.4383e-01 accuracy=0.6521 best_loss=inf") is None
    assert crash.classify("epoch: 1/10\tmin_valid_loss=inf") is None
    # a best or lowest loss that is NaN, and any other loss that is inf, are still a divergence
    assert crash.classify("Validation - loss=nan accuracy=0.6521 best_loss=inf").category == "nan_loss"
    assert crash.classify("Validation - loss=9.4383e-01 accuracy=0.6521 best_loss=nan").category == "nan_loss"
    assert crash.classify("{'train_loss': inf, 'epoch': 1.0}").category == "nan_loss"


def test_bitsandbytes_rocm_check_names_its_hip_source():
    # ROCm's bitsandbytes fork checks its HIP calls as the CUDA one does: https://github.com/ROCm/bitsandbytes/issues/29
    # (its title; HSA_OVERRIDE_GFX_VERSION=11.0.0 fixed it), and the same check on an error of no other row (hand-made
    # from that line's form)
    pattern = crash.classify("Error invalid device function at line 679 in file /bitsandbytes/csrc/ops.hip")
    assert pattern.category == "gpu_error" and pattern.fix == crash.GPU_ARCH_FIX
    assert crash.classify("Error operation not supported at line 679 in file /bitsandbytes/csrc/ops.hip").category == "gpu_error"


def test_rocblas_falling_back_from_hipblaslt_is_no_gpu_error():
    # the block a healthy ROCm run prints once (rocBLAS' hipblaslt_host.cpp / tensile_host.cpp at bd1fc7ba9b22), as a
    # gfx1151 benchmark log in a public repository quotes it with its results after it (the index does not name the
    # repository); with ROCBLAS_VERBOSE_HIPBLASLT_ERROR=1 it repeats ("spams a lot of these: 'hipBLASLt error: algo not
    # supported.'", https://github.com/ROCm/legacy-rocm-build/issues/5040)
    block = ["rocBLAS error: No hipBLASLt solution found",
             "This message will be only be displayed once, unless the ROCBLAS_VERBOSE_HIPBLASLT_ERROR environment variable "
             "is set.",
             "",
             "rocBLAS warning: hipBlasLT failed, falling back to tensile.",
             "This message will be only be displayed once, unless the ROCBLAS_VERBOSE_TENSILE_ERROR environment variable is "
             "set.",
             "hipBLASLt error: algo not supported."]
    assert crash.scan_lines(block, "train.log", now=NOW) == []
    # rocBLAS without any kernel for a GEMM has nothing to fall back to:
    # https://github.com/advanced-lvl-up/Rx470-Vega10-Rx580-gfx803-gfx900-fix-AMD-GPU/issues/4
    assert crash.classify('rocBLAS error: No Tensile solution found for { a_type: "f16_r", b_type: "f16_r", c_type: '
                          '"f16_r", d_type: "f16_r", compute_type: "f32_r", transA: \'N\', transB: \'N\', M: 1, N: 8192, '
                          'K: 512 }').category == "gpu_error"


@pytest.mark.parametrize("line", [
    # bash's report glued to a progress bar without a newline (the fixture of marcochen11/EECS545_Final_Proj has another);
    # hand-made from the Loading-checkpoint line a public repository's notes quote (its bar shortened here; the index
    # does not name the repository)
    "Loading checkpoint shards:  63%|\u2588\u2588\u2588\u2588\u2588\u258f   | 19/30 [15:42<09:19, 50.86s/it]Killed",
])
def test_killed_written_after_a_progress_bar_is_process_killed(line):
    assert crash.classify(line).category == "process_killed"


def test_killed_inside_a_sentence_is_no_kill():
    # the bar-end form needs the report at the end of the line (hand-made near misses)
    assert crash.classify("[rank0] stage [setup]Killed processes: 0, restarted: 0") is None
    assert crash.classify("Epoch 3 [train] loss=0.12 [Killed=0]") is None


def test_grpo_without_a_reference_model_logs_kl_nan_and_trains_on():
    # TRL's GRPO with beta=0 has no reference model and logs its KL as nan while the run goes on
    # (https://github.com/huggingface/open-r1/issues/704); the line as a public repository's GRPO log has it (the index
    # does not name the repository)
    assert crash.classify("{'loss': -0.0, 'grad_norm': 0.05871136859059334, 'learning_rate': 9.550000000000002e-06, "
                          "'rewards/reward_fn': 0.46000000089406967, 'reward': 0.46000000089406967, 'reward_std': "
                          "0.34648232338950036, 'completion_length': 244.1, 'kl': nan, 'epoch': 0.06}") is None


@pytest.mark.parametrize("line", [
    # https://github.com/serend1p1ty/SeqNet/issues/36 (torch >= 1.8 wording; the fixture of ai4d-iasc/trixie#9 has the
    # older one), https://github.com/pytorch/pytorch/issues/65461
    "RuntimeError: The NVIDIA driver on your system is too old (found version 11040). Please update your GPU driver by "
    "downloading and installing a new version from the URL: http://www.nvidia.com/Download/index.aspx Alternatively, go "
    "to: https://pytorch.org to install a PyTorch version that has been compiled with your version of the CUDA driver.",
    "RuntimeError: CUDA unknown error - this may be due to an incorrectly set up environment, e.g. changing env variable "
    "CUDA_VISIBLE_DEVICES after program start. Setting the available devices to be zero.",
    # https://github.com/nicolai256/Stable-textual-inversion_win/issues/26 (an RTX 3080 Ti host, training)
    "RuntimeError: Attempting to deserialize object on a CUDA device but torch.cuda.is_available() is False. If you are "
    "running on a CPU-only machine, please use torch.load with map_location=torch.device('cpu') to map your storages to "
    "the CPU.",
    # a CPU-only torch: https://github.com/karpathy/nanoGPT/issues/281 (train.py), EagleW/Describing_a_Knowledge_Base#8
    "AssertionError: Torch not compiled with CUDA enabled",
])
def test_torch_that_cannot_start_cuda_names_no_usable_gpu(line):
    pattern = crash.classify(line)
    assert pattern.category == "gpu_error" and pattern.fix == crash.NO_GPU_FIX


def test_torch_cuda_initialization_warnings_stay_warnings():
    # https://github.com/IEIT-Yuan/Yuan-2.0/issues/65, https://github.com/zhanghang1989/PyTorch-Encoding/issues/368
    for line in ["/usr/local/lib/python3.10/dist-packages/torch/cuda/__init__.py:124: UserWarning: CUDA initialization: The "
                 "NVIDIA driver on your system is too old (found version 11000). Please update your GPU driver by "
                 "downloading and installing a new version from the URL: http://www.nvidia.com/Download/index.aspx "
                 "Alternatively, go to: https://pytorch.org to install a PyTorch version that has been compiled with your "
                 "version of the CUDA driver. (Triggered internally at /opt/pytorch/pytorch/c10/cuda/CUDAFunctions.cpp:108.)",
                 "/home/mona/venv/torchenc/lib/python3.8/site-packages/torch/cuda/__init__.py:52: UserWarning: CUDA "
                 "initialization: CUDA unknown error - this may be due to an incorrectly set up environment, e.g. changing "
                 "env variable CUDA_VISIBLE_DEVICES after program start. Setting the available devices to be zero. "
                 "(Triggered internally at  /pytorch/c10/cuda/CUDAFunctions.cpp:100.)"]:
        assert crash.classify(line) is None


def test_stable_baselines_table_rows():
    # the table of https://github.com/hill-a/stable-baselines/issues/178 (a healthy run: no episode ended yet, so its
    # episode means are nan); a loss row at nan is hand-made in that table's form (the issues with one show it as a
    # screenshot, https://github.com/hill-a/stable-baselines/issues/634)
    table = ["--------------------------------------",
             "| approxkl           | 6.6147855e-05 |",
             "| clipfrac           | 0.0           |",
             "| ep_rewmean         | nan           |",
             "| eplenmean          | nan           |",
             "| explained_variance | 0.126         |",
             "| policy_loss        | 0.0006248371  |",
             "| value_loss         | 63.725853     |",
             "--------------------------------------"]
    assert crash.scan_lines(table, "train.log", now=NOW) == []
    assert crash.classify("| policy_loss        | nan           |").category == "nan_loss"


def test_the_source_line_that_raises_the_cpu_only_assertion_is_no_verdict():
    # the frame and its source line before the exception line: https://github.com/EagleW/Describing_a_Knowledge_Base/issues/8
    frame = '  File "C:\\Users\\Anaconda3\\lib\\site-packages\\torch\\cuda\\__init__.py", line 210, in _lazy_init'
    assert crash.classify('    raise AssertionError("Torch not compiled with CUDA enabled")', frame) is None


# -- shared memory, teardown, NeMo levels, runs of zero losses, and more real error kinds ----------------------------

@pytest.mark.parametrize("line", [
    # NCCL creating its segment in /dev/shm: https://github.com/pytorch/ci-infra/pull/490 (the whole block is a fixture),
    # https://github.com/NVIDIA/nccl-tests/issues/166, https://github.com/NVIDIA/nccl/issues/525
    "[2026-04-22 21:34:20] mt-l-x86iavx512-45-172-t4-4-csmpw-runner-g4sfw-workflow:202016:202235 [0] misc/shmutils.cc:132 "
    "NCCL WARN Error while creating shared memory segment /dev/shm/nccl-WU88OE (size 9637888), error: No space left on "
    "device (28)",
    "ubuntu:9621:9691 [6] misc/shmutils.cc:112 NCCL WARN Error while creating shared memory segment /dev/shm/nccl-fjwOOB "
    "(size 5967872)",
    "[3] include/shm.h:48 NCCL WARN Error while creating shared memory segment nccl-shm-recv-1462445a6f01cbfc-1-2-3 "
    "(size 9637888)",
    # Python's ENOSPC naming a file in /dev/shm after the message (the form of dolly#139's fixture, on /dev/shm)
    "OSError: [Errno 28] No space left on device: '/dev/shm/torch_18692_1954506624'",
    # a DataLoader worker's SIGBUS in torch's older wording, without the shm hint: https://github.com/pytorch/pytorch/issues/5040
    "RuntimeError: DataLoader worker (pid 13) is killed by signal: Bus error.",
    # ... and the current one: https://github.com/hkchengrex/STCN/issues/132
    "RuntimeError: DataLoader worker (pid 46794) is killed by signal: Bus error. It is possible that dataloader's workers "
    "are out of shared memory. Please try to raise your shared memory limit.",
])
def test_shared_memory_full_names_dev_shm(line):
    pattern = crash.classify(line)
    assert pattern.category == "disk_full" and pattern.fix == crash.SHM_FIX and "shm-size" in pattern.fix


def test_a_shared_memory_log_reports_the_dev_shm_fix_and_a_disk_full_one_does_not():
    report = crash.scan([str(fixtures.crash_log_path("pytorch-ci-infra-pr490_nccl_failed_to_extend_dev_shm_no_space.txt"))],
                        record=False, now=NOW)
    (item,) = report["crashes"]
    assert (item["category"], item["count"], item["fix"]) == ("disk_full", 2, crash.SHM_FIX)
    assert "Error while creating shared memory segment" in item["line"]
    # a full disk is still the disk (dolly#139's torch.save), and NCCL attaching to a segment that is gone is no shm space
    assert crash.classify("OSError: [Errno 28] No space left on device").fix == crash.CATEGORIES["disk_full"][1]
    assert crash.classify("g148:14937:69361 [0] misc/shmutils.cc:129 NCCL WARN Error while attaching to shared memory "
                          "segment /dev/shm/nccl-glnlGK (size 14156128), error: No such file or directory (2)") is None


@pytest.mark.parametrize("line", [
    # https://github.com/tensorflow/tensorflow/issues/8483 (after step 9990 of 10000; the block is a fixture)
    "E tensorflow/stream_executor/cuda/cuda_event.cc:49] Error polling for event status: failed to query event: "
    "CUDA_ERROR_DEINITIALIZED",
    # https://github.com/AlexeyAB/darknet/issues/1829, https://github.com/MrNeRF/LichtFeld-Studio/pull/864,
    # https://github.com/NVIDIA/DIGITS/issues/1145 (the model had trained)
    "cudaStreamDestroy() failed. Reason: driver shutting down",
    "pinned_memory_allocator.cpp:270  CUDA error at C:\\Users\\miriam\\OneDrive\\Desktop\\LichtFeld-Studio\\src\\core\\tensor\\"
    "pinned_memory_allocator.cpp:270 - cudaErrorCudartUnloading: driver shutting down",
    "ERROR: Check failed: error == cudaSuccess (29 vs. 0) driver shutting down",
])
def test_the_driver_shutting_down_at_exit_is_no_gpu_error(line):
    assert crash.classify(line) is None


def test_a_finished_run_that_met_the_driver_torn_down_gives_nothing_but_a_real_gpu_error_stays():
    report = crash.scan([str(fixtures.crash_log_path("tensorflow-8483_finished_run_cuda_error_deinitialized_at_exit.txt"))],
                        record=False, now=NOW)
    assert report["crashes"] == []
    assert crash.classify("RuntimeError: CUDA error: an illegal memory access was encountered").category == "gpu_error"
    assert crash.classify("jax._src.traceback_util.UnfilteredStackTrace: XlaRuntimeError: INTERNAL: CUDA_ERROR_ILLEGAL_ADDRESS"
                          ).category == "gpu_error"


@pytest.mark.parametrize("line", [
    # NeMo's format "[NeMo <level letter> <date> <time> <module>:<line>]" (real lines: https://github.com/NVIDIA-NeMo/Speech/
    # issues/7647, /13234, https://github.com/chainguard-images/images/issues/2578); the messages that name an error are
    # written in that form to show that the level decides, as it does for logging's WARNING
    "[NeMo W 2023-10-05 22:24:59 nemo_logging:393] megatron-core was not found. Please see the NeMo README for installation "
    "instructions: https://github.com/NVIDIA/NeMo#megatron-gpt.",
    "[NeMo W 2024-04-25 14:47:17 nemo_logging:393] Transformer Engine was not found. transformer_engine: No module named "
    "'transformer_engine'",
    "[NeMo W 2024-04-25 14:47:17 nemo_logging:393] Could not import the fused kernels; ImportError: cannot import name "
    "'fused_layer_norm_cuda'",
    "[NeMo D 2024-03-20 12:38:16 logging_utils:18 rank:0] ******** bnmo_debug ******** ModuleNotFoundError: No module named 'x'",
    "[NeMo D 2025-09-27 10:45:08] Successfully dequantized model.layers.23.mlp.experts.gate_up_proj",
    "[NeMo I 2024-11-28 09:58:12 megatron_parallel:524]  > number of parameters on (tensor, pipeline) model parallel rank "
    "(0, 0): 26313472",
])
def test_nemo_warning_debug_and_info_lines_are_no_errors(line):
    assert crash.classify(line) is None


def test_nemo_error_lines_still_give_their_category():
    assert crash.classify("[NeMo E 2022-11-02 09:07:07 common:506] ImportError: No module named 'apex'").category == \
        "import_error"
    # a glog/NCCL warning marker later in a NeMo error line does not hide it
    assert crash.classify("[NeMo E 2024-01-01 00:00:00 train:1] CUDA out of memory. Tried to allocate 2.00 GiB "
                          "(WARNING: fragmentation)").category == "cuda_oom"


ZERO = "{'loss': 0.0, 'learning_rate': 8.000000000000001e-06, 'epoch': 0.03}"   # https://github.com/wwxu21/CUT/issues/2
LOSS = "{'loss': 1.6736, 'learning_rate': 4.000000000000001e-06, 'epoch': 0.02}"


def _categories(lines):
    return [(m["index"], m["category"]) for m in crash.scan_lines(lines, "train.log", now=NOW)]


def test_three_losses_of_exactly_zero_in_a_row_are_nan_loss():
    report = crash.scan([str(fixtures.crash_log_path("CUT-2_hf_trainer_loss_exactly_zero_from_the_second_log.txt"))],
                        record=False, now=NOW)
    (item,) = report["crashes"]
    assert (item["category"], item["count"], item["fix"]) == ("nan_loss", 9, crash.ZERO_LOSS_FIX)
    # from the third zero on; lines without a loss (a progress bar, an eval dict) neither break nor make the run
    assert _categories([LOSS, ZERO, ZERO, ZERO]) == [(3, "nan_loss")]
    assert _categories([ZERO, "  5%|5         | 140/2724 [5:10:48<95:22:59, 132.89s/it]", "{'eval_loss': 0.0}", ZERO,
                        ZERO]) == [(4, "nan_loss")]
    # Megatron's and a plain logger's forms
    assert _categories([" iteration       10/ 1000 | lm loss: 0.000000E+00 | loss scale: 1.0 |"] * 3)[-1][1] == "nan_loss"
    assert _categories(["step 3 loss=0"] * 3) == [(2, "nan_loss")]


def test_a_run_that_logs_zero_once_or_twice_or_only_evaluates_to_zero_is_not_flagged():
    assert _categories([LOSS, ZERO, LOSS, ZERO, ZERO, LOSS, ZERO]) == []
    assert _categories(["{'eval_loss': 0.0, 'eval_runtime': 1.2, 'epoch': 1.0}"] * 5) == []
    assert _categories(["{'loss': 0.0001, 'learning_rate': 1e-05, 'epoch': 0.5}"] * 5) == []
    # tqdm redrawing one bar with loss=0.000 many times is one line, not a run
    tqdm_bar = "\r".join(["100%|##########| 5/5 [00:01<00:00, 4.1it/s, loss=0.000]"] * 5)
    assert _categories([tqdm_bar]) == []
    # a warning that mentions a loss of 0 is a warning
    assert _categories(["UserWarning: loss: 0.0 (the batch was empty)"] * 3) == []
    # TRL's GRPO logs a loss of -0.0 / 0.0 while it trains (its gradient is not 0): the line of
    # test_grpo_without_a_reference_model_logs_kl_nan_and_trains_on, three times, and with its KL finite
    grpo = ("{'loss': -0.0, 'grad_norm': 0.05871136859059334, 'learning_rate': 9.550000000000002e-06, 'rewards/reward_fn': "
            "0.46000000089406967, 'reward': 0.46000000089406967, 'reward_std': 0.34648232338950036, 'completion_length': "
            "244.1, 'kl': nan, 'epoch': 0.06}")
    assert _categories([grpo] * 3) == []
    assert _categories([ZERO, ZERO, grpo, ZERO, ZERO]) == []
    # ... while a zero loss with a zero gradient is still a run
    assert _categories(["{'loss': 0.0, 'grad_norm': 0.0, 'learning_rate': 2e-05, 'epoch': 0.5}"] * 3) == [(2, "nan_loss")]


def test_a_more_specific_row_wins_over_a_run_of_zero_losses():
    nan = "{'loss': nan, 'grad_norm': nan, 'learning_rate': 1e-05, 'epoch': 0.2}"
    matches = crash.scan_lines([ZERO, ZERO, ZERO, nan], "train.log", now=NOW)
    assert [(m["index"], m["pattern"].fix) for m in matches] == [(2, crash.ZERO_LOSS_FIX),
                                                                 (3, crash.CATEGORIES["nan_loss"][1])]


@pytest.mark.parametrize("line,category", [
    # Triton kernels asking for more on-chip shared memory than the GPU has: https://github.com/Yuliang-Liu/MonkeyOCR/issues/86,
    # https://github.com/state-spaces/mamba/issues/387, https://github.com/Knowledgator/TurboT5/issues/8
    ("triton.runtime.errors.OutOfResources: out of resource: shared memory, Required: 126978, Hardware limit: 101376. "
     "Reducing block sizes or `num_stages` may help.", "gpu_error"),
    ("triton.runtime.autotuner.OutOfResources: out of resource: shared memory, Required: 663808, Hardware limit: 101376. "
     "Reducing block sizes or `num_stages` may help.", "gpu_error"),
    ("OutOfResources: out of resource: shared memory, Required: 114688, Hardware limit: 101376. Reducing block sizes or "
     "`num_stages` may help.", "gpu_error"),
    # torch.distributed.monitored_barrier (ProcessGroupGloo.cpp's message; PyTorch's docs and tests)
    ("RuntimeError: [Rank 0]: Rank 1 failed to pass monitoredBarrier in 30000 ms", "nccl_timeout"),
    ("RuntimeError: Rank 1 failed to pass monitoredBarrier in 2000 ms", "nccl_timeout"),
    ("[Rank 0]: Ranks 2 failed to pass monitoredBarrier in 1800000 ms", "nccl_timeout"),
    # Megatron's checks and its count of NaN iterations (https://github.com/alibaba/Pai-Megatron-Patch/issues/366,
    # /60, https://github.com/modelscope/ms-swift/issues/9791; the log line: https://github.com/NVIDIA/Megatron-LM/issues/1880
    # with its count set above 0)
    ("AssertionError: Rank 11: found NaN in local grad norm in backward pass before data-parallel communication "
     "collective. Device: 3", "nan_loss"),
    ("AssertionError: Rank 3: found NaN in local grad norm in backwards pass. Device: 3, node: set-zw04-kubernetes-pc133.mt",
     "nan_loss"),
    ("found NaN in local grad norm for bucket #0 in backward pass before data-parallel communication collective", "nan_loss"),
    (" | learning rate: 5.333333E-06 | global batch size:     4 | lm loss: 1.420515E+00 | loss scale: 1.0 | grad norm: "
     "13.636 | number of skipped iterations:   0 | number of nan iterations:   2 |", "nan_loss"),
    # DeepSpeed's fp16 loss scaler giving up: https://github.com/ymcui/Chinese-LLaMA-Alpaca/issues/534
    ("Exception: Current loss scale already at minimum - cannot decrease scale anymore. Exiting run.", "nan_loss"),
    # a child of mp.spawn killed (the OOM killer): https://github.com/lyu-yx/ACUMEN/issues/4, https://github.com/jeffffffli/
    # HybrIK/issues/198; torchrun's: https://github.com/hpcaitech/ColossalAI/issues/3514
    ("torch.multiprocessing.spawn.ProcessExitedException: process 0 terminated with signal SIGKILL", "process_killed"),
    ("Exception: process 3 terminated with signal SIGKILL", "process_killed"),
    ("ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: -9) local_rank: 3 (pid: 812917) of binary: "
     "/data/chenhao/anaconda3/envs/ColossalAI-Chat/bin/python", "process_killed"),
    # NCCL over InfiniBand: https://github.com/NVIDIA/nccl/issues/1814, /1664, /928, /1129, /562
    ("hostname-test:984:1357 [4] ib_plugin.c:1615 NCCL WARN NET/IB : Got completion from peer 172.36.143.59<44206> with "
     "status=12 opcode=129 len=65536 vendor err 129 (Recv) localGid ::ffff:29.87.88.182 remoteGids::ffff:29.87.4.221",
     "nccl_timeout"),
    ("NET/IBP:Got completion from peer 7.6.13.83<36315> with status=12 opcode=32698 len=32696 vendor err 129 (Send)",
     "nccl_timeout"),
    ("H100-2:19989:20082 [1] transport/net_ib.cc:1295 NCCL WARN NET/IB : Got completion from peer "
     "fe80::966d:ae03:8b:df78%ib0<53249> with error 4, opcode 32564, len 32564, vendor err 81 (Send)", "nccl_timeout"),
    ("node08:6561:6600 [0] misc/ibvwrap.cc:280 NCCL WARN Call to ibv_create_qp failed", "nccl_timeout"),
    ("hai-a100-3:3778851:3779883 [4] ibvwrap.c:130 NCCL WARN Call to ibv_create_qp failed", "nccl_timeout"),
])
def test_more_real_error_kinds(line, category):
    assert crash.classify(line).category == category


def test_the_rows_of_the_new_kinds_say_what_to_do():
    triton = crash.classify("triton.runtime.errors.OutOfResources: out of resource: shared memory, Required: 126978, "
                            "Hardware limit: 101376. Reducing block sizes or `num_stages` may help.")
    assert triton.fix == crash.TRITON_RESOURCES_FIX and "num_stages" in triton.fix and "/dev/shm" in triton.fix
    # Megatron's healthy interval line (no NaN iteration) and NCCL's IB notices give nothing
    assert crash.classify(" | learning rate: 5.333333E-06 | global batch size:     4 | lm loss: 1.420515E+00 | loss scale: "
                          "1.0 | grad norm: 13.636 | number of skipped iterations:   0 | number of nan iterations:   0 |") is None
    assert crash.classify("node08:6561:6561 [0] NCCL INFO NET/IB : Using [0]mlx5_0:1/IB ; OOB ibs3:10.252.0.211<0>") is None
    # a child that ended on a signal from outside is no kill (SIGABRT is a crash: see the abort tests below)
    assert crash.classify("torch.multiprocessing.spawn.ProcessExitedException: process 1 terminated with signal SIGTERM") \
        is None


@pytest.mark.parametrize("line", [
    # torchrun's summary of a child that died of SIGBUS (the form of its -9 one, ml-recurrent-drafter#5's fixture)
    "  exitcode  : -7 (pid: 10)",
    "  traceback : Signal 7 (SIGBUS) received by PID 10",
    # UCX's handler under NCCL in a container with docker's 64 MiB /dev/shm: https://github.com/msr-fiddle/pipedream/issues/76
    "[8d6bf97c3bf4:3039 :0:3095] Caught signal 7 (Bus error: nonexistent physical address)",
    "torch.multiprocessing.spawn.ProcessExitedException: process 0 terminated with signal SIGBUS",
    # the shell's report (https://github.com/google/fuzzbench/pull/1450 raised --shm-size for it)
    "Bus error (core dumped)",
])
def test_a_process_that_died_of_sigbus_names_shared_memory(line):
    pattern = crash.classify(line)
    assert (pattern.category, pattern.fix) == ("disk_full", crash.SIGBUS_FIX) and "/dev/shm" in pattern.fix
    # a -9 stays a kill, and "bus error" inside a sentence is no crash
    assert crash.classify("  exitcode  : -9 (pid: 3309)").category == "process_killed"
    assert crash.classify("INFO: retrying after a bus error on the PCIe link was corrected") is None


def test_nccl_ib_async_events_that_are_errors_count_and_the_others_do_not():
    # net_ib.cc logs every async event of the HCA as "NCCL WARN NET/IB : <dev>:<port> Got async event : <ibv_event_type_str>"
    # (NVIDIA/nccl src/transport/net_ib.cc); a triage list of real logs counts "local catastrophic error" as an IB error
    # and keeps "client reregistration" / "port active" out
    prefix = "node1:100:200 [0] NCCL WARN NET/IB : mlx5_0:1 Got async event : "
    for event in ("port error", "local catastrophic error", "local work queue catastrophic error", "CQ error"):
        assert crash.classify(prefix + event).category == "nccl_timeout", event
    for event in ("port active", "client reregistration", "GID table change", "LID change"):
        assert crash.classify(prefix + event) is None, event


@pytest.mark.parametrize("line", [
    # a DataLoader worker that crashed in native code: https://github.com/MhLiao/DB/issues/94
    "RuntimeError: DataLoader worker (pid 25902) is killed by signal: Segmentation fault",
    "ERROR: Unexpected segmentation fault encountered in worker.",
    # torchrun's summary and its agent's line: https://github.com/NVIDIA/Megatron-LM/issues/1880 (the fixture),
    # https://github.com/tusen-ai/Anchor3DLane/issues/8, https://github.com/fudan-generative-vision/hallo2/issues/56
    "  exitcode  : -11 (pid: 6421)",
    "  traceback : Signal 11 (SIGSEGV) received by PID 6421",
    "ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: -11) local_rank: 0 (pid: 1416) of binary: "
    "/workspace/miniconda3/envs/lane3d/bin/python",
    "[2024-11-26 02:04:31,514] torch.distributed.elastic.multiprocessing.api: [ERROR] failed (exitcode: -11) local_rank: 1 "
    "(pid: 750662) of binary: /home/jinlin_li/anaconda3/envs/hallo/bin/python",
    # DeepSpeed's launcher (https://github.com/deepspeedai/DeepSpeedExamples/issues/626)
    "[2023-07-10 04:26:35,999] [ERROR] [launch.py:324:sigkill_handler] ['/global/D1/homes/sushant/sushanta/venv/bin/python3.10', "
    "'-u', 'trainCLM.py', '--local_rank=1', '--deepspeed', '/home/sushant/D1/sushanta/try/nepaligpt/clm/config/"
    "deepspeed_config.json'] exits with return code = -11",
    # torch.distributed.launch's (https://github.com/pytorch/pytorch/issues/29889), an IDE's
    # (https://github.com/pytorch/pytorch/issues/13123), the shell's
    "subprocess.CalledProcessError: Command XXXXX (my script params) died with <Signals.SIGSEGV: 11>.",
    "Process finished with exit code 139 (interrupted by signal 11: SIGSEGV)",
    "Segmentation fault (core dumped)",
])
def test_a_process_that_died_of_sigsegv_is_a_native_crash_not_the_oom_killer(line):
    pattern = crash.classify(line)
    assert (pattern.category, pattern.fix) == ("process_killed", crash.SEGFAULT_FIX)
    assert "num_workers=0" in pattern.fix and "PYTHONFAULTHANDLER" in pattern.fix


def test_a_dataloader_worker_that_exited_unexpectedly_was_killed():
    # https://github.com/michuanhaohao/reid-strong-baseline/issues/29, https://github.com/patrickloeber/pytorchTutorial/issues/3
    for line in ("RuntimeError: DataLoader worker (pid(s) 15927) exited unexpectedly",
                 "RuntimeError: DataLoader worker (pid(s) 1448, 8988) exited unexpectedly"):
        pattern = crash.classify(line)
        assert (pattern.category, pattern.fix) == ("process_killed", crash.DATALOADER_WORKER_FIX), line
    # the worker's own verdict keeps its row: SIGKILL (https://github.com/hezhangsprinter/DCPDN/issues/12), SIGBUS /dev/shm
    assert crash.classify("RuntimeError: DataLoader worker (pid 19597) is killed by signal: Killed.").fix == \
        crash.CATEGORIES["process_killed"][1]
    assert crash.classify("RuntimeError: DataLoader worker (pid 13) is killed by signal: Bus error.").fix == crash.SHM_FIX
    # a worker that ended on a Python error in it is no kill
    assert crash.classify("RuntimeError: DataLoader worker (pid 4028) exited unexpectedly with exit code 1. Details are lost "
                          "due to multiprocessing. Rerunning with num_workers=0 may give better error information.") is None


@pytest.mark.parametrize("line", [
    # https://github.com/facebookresearch/maskrcnn-benchmark/issues/158 (the fixture), torch's newer wording with the errno
    # (https://github.com/open-mmlab/mmpose/issues/2595, https://github.com/pytorch/pytorch/issues/13246)
    "RuntimeError: unable to open shared memory object </torch_30997_2076642173> in read-write mode",
    "RuntimeError: unable to open shared memory object </torch_7065_1741927742_3060> in read-write mode: Too many open files (24)",
    "OSError: [Errno 24] Too many open files",
    # torch/utils/data/dataloader.py's own check (github.com/mit-han-lab/calo-cluster README)
    "RuntimeError: Too many open files. Communication with the workers is no longer possible. Please increase the limit using "
    "`ulimit -n` in the shell or change the sharing strategy by calling `torch.multiprocessing.set_sharing_strategy("
    "'file_system')` at the beginning of your code",
])
def test_too_many_open_files_names_the_open_files_limit(line):
    pattern = crash.classify(line)
    assert (pattern.category, pattern.fix) == ("disk_full", crash.OPEN_FILES_FIX)
    assert "ulimit -n" in pattern.fix and "file_system" in pattern.fix and "no disk is full" in pattern.fix


@pytest.mark.parametrize("line", [
    # a job stopped from outside (a cancel, a closed terminal, Ctrl-C) is no crash of the host or its GPU:
    # https://github.com/NVIDIA/nvidia-resiliency-ext/issues/18, https://github.com/zai-org/ChatGLM2-6B/issues/238,
    # https://github.com/pytorch/pytorch/issues/150916, https://github.com/MCG-NJU/RTD-Action/issues/31,
    # https://github.com/pytorch/pytorch/issues/4507
    "torch.distributed.elastic.multiprocessing.api.SignalException: Process 293812 got signal: 15",
    "torch.distributed.elastic.multiprocessing.api.SignalException: Process 8665 got signal: 1",
    "torch.distributed.elastic.multiprocessing.api.SignalException: Process 4797 got signal: 2",
    "W0409 07:28:49.530000 1359 torch/distributed/elastic/agent/server/api.py:719] Received 15 death signal, shutting down workers",
    "WARNING:torch.distributed.elastic.multiprocessing.api:Sending process 4797 closing signal SIGINT",
    "RuntimeError: DataLoader worker (pid 23616) is killed by signal: Terminated.",
    "  exitcode  : -15 (pid: 165)",
    "  traceback : Signal 15 (SIGTERM) received by PID 165",
    "    raise SignalException(f\"Process {os.getpid()} got signal: {sigval}\", sigval=sigval)",
    # healthy lines whose words only look alarming
    "Signal handler installed",
    "with model.no_sync():",
    "{'eval_loss': 0.2, 'eval_mean_squared_error': 0.12, 'eval_error_rate': 0.03, 'epoch': 1.0}",
    "100/100 [==============================] - 1s 6ms/step - loss: 0.0213 - mean_squared_error: 0.0213 - val_loss: 0.0251 - "
    "val_mean_squared_error: 0.0251",
    " 45%|####5     | 45/100 [00:10<nan, 4.50it/s]",
    # an ETA not known yet, in the progress lines of detectron2, Keras and mmengine (their formats)
    "[12/03 08:00:00 d2.utils.events]:  eta: nan  iter: 19  total_loss: 1.234  time: 0.5  data_time: 0.01  lr: 0.0001",
    "  1/100 [..............................] - ETA: nan - loss: 0.6931",
    "Epoch(train) [1][ 50/500]  lr: 1.0000e-03  eta: nan  time: 0.2  data_time: 0.01  memory: 1200  loss: 0.9",
    # ROCm notices: MIOpen's missing kernel database, rocBLAS falling back
    "MIOpen(HIP): Warning [SQLiteBase] Missing system database file: gfx1030_30.kdb Performance may degrade. Please follow "
    "instructions to install: https://github.com/ROCmSoftwarePlatform/MIOpen#installing-miopen-kernels-package",
    "rocBLAS warning: hipBlasLT failed, falling back to tensile.",
])
def test_a_job_stopped_from_outside_and_healthy_lines_give_nothing(line):
    assert crash.classify(line) is None


@pytest.mark.parametrize("line, category", [
    # ROCm/HIP failures keep their categories: https://github.com/huggingface/autotrain-advanced/issues/737 (HIP OOM),
    # https://github.com/ROCm/legacy-rocm-build/issues/4554, /1339 (memory access faults),
    # https://github.com/AUTOMATIC1111/stable-diffusion-webui/issues/9283 (aperture violation)
    ("torch.OutOfMemoryError: HIP out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of 19.94 GiB",
     "cuda_oom"),
    ("RuntimeError: HIP error: hipErrorOutOfMemory", "cuda_oom"),
    ("Memory access fault by GPU node-1 (Agent handle: 0x1f829860) on address 0x7a8a4be00000. Reason: Page not present or "
     "supervisor privilege.", "gpu_error"),
    ("Memory access fault by GPU node-4 (Agent handle: 0x152e220) on address (nil). Reason: Page not present or supervisor "
     "privilege.", "gpu_error"),
    (":0:rocdevice.cpp            :2673: 1263352162 us: 21870: [tid:0x7f64e3eff640] Device::callbackQueue aborting with "
     "error : HSA_STATUS_ERROR_MEMORY_APERTURE_VIOLATION: The agent attempted to access memory beyond the largest legal "
     "address. code: 0x29", "gpu_error"),
])
def test_rocm_failures_keep_their_categories(line, category):
    assert crash.classify(line).category == category


# torch's chain when a DataLoader worker dies of a signal: the worker's verdict, then (its direct cause) "exited unexpectedly"
# (https://github.com/pytorch/pytorch/issues/8976, comment of 2024-07-22: "is killed by signal: Killed." then "The above
# exception was the direct cause of the following exception:" and the main process's traceback)
def _worker_chain(verdict):
    return [verdict, "", "The above exception was the direct cause of the following exception:", "",
            "Traceback (most recent call last):",
            '  File "train_meta.py", line 131, in <module>',
            "    val_loader=[x for x in val_loader]",
            '  File "/public/home/wl_ligexian/anaconda3/envs/py38/lib/python3.8/site-packages/torch/utils/data/dataloader.py", '
            'line 1146, in _try_get_data',
            "    raise RuntimeError(f'DataLoader worker (pid(s) {pids_str}) exited unexpectedly') from e",
            "RuntimeError: DataLoader worker (pid(s) 1817) exited unexpectedly"]


@pytest.mark.parametrize("verdict, categories, fix", [
    ("RuntimeError: DataLoader worker (pid 1817) is killed by signal: Bus error. It is possible that dataloader's workers "
     "are out of shared memory. Please try to raise your shared memory limit.", ["disk_full"], crash.SHM_FIX),
    ("RuntimeError: DataLoader worker (pid 1817) is killed by signal: Killed. ", ["process_killed"],
     crash.CATEGORIES["process_killed"][1]),
    ("RuntimeError: DataLoader worker (pid 1817) is killed by signal: Segmentation fault", ["process_killed"],
     crash.SEGFAULT_FIX),
    ("RuntimeError: DataLoader worker (pid 1817) is killed by signal: Terminated.", [], None),
])
def test_a_worker_found_gone_after_its_own_verdict_adds_nothing(verdict, categories, fix):
    path = "train.log"
    crashes, _events = crash.collapse(crash.scan_lines(_worker_chain(verdict), path, now=NOW))
    assert [c["category"] for c in crashes] == categories
    assert [c["fix"] for c in crashes] == ([fix] if fix else [])
    # far from any verdict, the line gives its own row
    far = ["{'loss': 0.5}"] * (crash.CAUSE_WINDOW_LINES + 1)
    crashes, _events = crash.collapse(crash.scan_lines([verdict] + far + _worker_chain("")[-1:], path, now=NOW))
    assert crashes[-1]["fix"] == crash.DATALOADER_WORKER_FIX


def test_rocm_memory_critical_error_is_a_gpu_fault():
    # the ROCm runtime's (https://github.com/ROCm/amdgpu/issues/188), beside its memory access fault
    line = ("Memory critical error by agent node-1 (Agent handle: 0x2aecc9cfe0) on address 0x3f8b182000. Reason: Memory in "
            "use.")
    assert crash.classify(line).category == "gpu_error"


@pytest.mark.parametrize("line", [
    # MIOpen's own warnings while a run goes on: a missing kernel/performance database (https://github.com/ROCm/MIOpen/
    # issues/1204, https://github.com/pytorch/pytorch/issues/18041, /60477), a CK library not built for the GPU (it falls
    # back; https://github.com/ROCm/TheRock/issues/4681, with its CI time stamps), the compiler's xnack notice
    "MIOpen(HIP): Warning [SQLiteBase] Unable to read system database file:/opt/rocm/miopen/share/miopen/db/gfx900_64.kdb "
    "Performance may degrade",
    "MIOpen(HIP): Warning [FindRecordUnsafe] File is unreadable: /opt/rocm/miopen/share/miopen/db/gfx803_32.cd.pdb.txt",
    "MIOpen(HIP): Warning [FindWinogradSolutions] /MIOpen/src/sqlite_db.cpp:109: open memvfs: unable to open database file",
    "2026-04-20T08:34:38.7581372Z MIOpen(HIP): Warning [OpenRuntimeLibraryForDevice] CK grouped conv library not found for "
    "device gfx1103: libMIOpenCKGroupedConv_gfx1103.so: cannot open shared object file: No such file or directory",
    "2026-04-20T08:34:38.8395164Z warning: xnack 'Off' was requested for a processor that does not support it!",
])
def test_miopen_warnings_give_nothing(line):
    assert crash.classify(line) is None


@pytest.mark.parametrize("line", [
    # Python's faulthandler (faulthandler.enable(), PYTHONFAULTHANDLER=1), alone (https://github.com/ziyanx02/Genesis-backflip/
    # issues/2) and written straight after a progress bar (https://github.com/threestudio-project/threestudio/issues/369,
    # https://github.com/open-mmlab/mmpretrain/issues/699)
    "Fatal Python error: Segmentation fault",
    "Epoch 0: |                                     | 4540/? [07:57<00:00,  9.51it/s]Fatal Python error: Segmentation fault"
    "                                          ",
    "  0%|                                                                                                         | "
    "6/1281167 [00:00<11:48:39, 30.13it/s]Fatal Python error: Segmentation fault",
])
def test_faulthandlers_segmentation_fault_is_a_native_crash(line):
    assert crash.classify(line).fix == crash.SEGFAULT_FIX


def test_the_same_reports_of_other_signals_keep_their_rows():
    # faulthandler names SIGBUS "Bus error" (CPython Modules/faulthandler.c); bash's job report pads the PID as for Killed
    assert crash.classify("Fatal Python error: Bus error").fix == crash.SIGBUS_FIX
    assert crash.classify("./train.sh: line 12: 31337 Segmentation fault      (core dumped) python train.py").fix == \
        crash.SEGFAULT_FIX
    # faulthandler names SIGABRT "Aborted": an abort, with its own fix (the failure printed before it wins: see below)
    assert crash.classify("Fatal Python error: Aborted").fix == crash.ABORT_FIX


# -- SIGABRT: a process that aborted ----------------------------------------------------------------

@pytest.mark.parametrize("line", [
    # torchrun's ChildFailedError block and its agent's line (https://github.com/open-mmlab/mmsegmentation/issues/3106,
    # https://github.com/open-compass/VLMEvalKit/issues/1131)
    "  exitcode  : -6 (pid: 2385923)",
    "  traceback : Signal 6 (SIGABRT) received by PID 2385923",
    "ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: -6) local_rank: 0 (pid: 2380846) of binary: "
    "/home/deshpand/anaconda3/envs/openmmlab/bin/python",
    # mp.spawn's (https://github.com/rshaojimmy/MultiModal-DeepFake/issues/24), torch.distributed.launch's, DeepSpeed's,
    # an IDE's: the forms of their SIGSEGV lines with signal 6
    "torch.multiprocessing.spawn.ProcessExitedException: process 1 terminated with signal SIGABRT",
    "subprocess.CalledProcessError: Command '['/usr/bin/python', '-u', 'train.py', '--local_rank=0']' died with "
    "<Signals.SIGABRT: 6>.",
    "[2023-07-10 04:26:35,999] [ERROR] [launch.py:324:sigkill_handler] ['/usr/bin/python3', '-u', 'train.py', "
    "'--local_rank=1'] exits with return code = -6",
    "Process finished with exit code 134 (interrupted by signal 6: SIGABRT)",
    # a DataLoader worker (https://github.com/pytorch/pytorch/issues/80594)
    "RuntimeError: DataLoader worker (pid 22822) is killed by signal: Aborted.",
    # the shell's report and its job report (https://github.com/hku-mars/GS-SDF/issues/1), faulthandler's
    "Aborted (core dumped)",
    "Aborted",
    "./train.sh: line 12: 31337 Aborted                 (core dumped) python train.py",
    "Fatal Python error: Aborted",
    # libstdc++'s terminate handler, when no exception was in flight or it was called again
    "terminate called without an active exception",
    "terminate called recursively",
])
def test_a_process_that_aborted_is_killed_with_its_own_fix(line):
    pattern = crash.classify(line)
    assert (pattern.category, pattern.fix) == ("process_killed", crash.ABORT_FIX), line
    assert "ulimit -c" in pattern.fix and "what():" in pattern.fix and pattern.fix != crash.SEGFAULT_FIX
    crashes, _events = crash.collapse(crash.scan_lines(["{'loss': 0.52, 'epoch': 1.0}", line], "train.log", now=NOW))
    assert [(c["category"], c["fix"]) for c in crashes] == [("process_killed", crash.ABORT_FIX)]


def _abort_crashes(lines):
    crashes, _events = crash.collapse(crash.scan_lines(lines, "train.log", now=NOW))
    return [(c["category"], c["fix"]) for c in crashes]


# libstdc++'s terminate handler: the exception's type, then "  what():  " and its message (the CompVis/latent-diffusion#17
# and arrival-ltd/catalyst-rl-tutorial#3 forms), its frames, then the shell's report
def _terminate(kind, what):
    return [" 45%|####5     | 45/100 [00:10<00:12, 4.50it/s]",
            "terminate called after throwing an instance of '%s'" % kind,
            "  what():  %s" % what,
            "Exception raised from c10_cuda_check_implementation at ../c10/cuda/CUDAException.cpp:44 (most recent call first):",
            "frame #0: c10::Error::Error(c10::SourceLocation, std::string) + 0x57 (0x7f3b2b6b9617 in "
            "/usr/lib/python3/dist-packages/torch/lib/libc10.so)",
            "frame #1: c10::detail::torchCheckFail(char const*, char const*, unsigned int, std::string const&) + 0x64 "
            "(0x7f3b2b67498d in /usr/lib/python3/dist-packages/torch/lib/libc10.so)",
            "",
            "Aborted (core dumped)"]


def test_an_uncaught_cpp_exception_is_reported_by_its_what_line():
    lines = _terminate("c10::Error", "The size of tensor a (3) must match the size of tensor b (4) at non-singleton dimension 1")
    crashes, _events = crash.collapse(crash.scan_lines(lines, "train.log", now=NOW))
    assert [(c["category"], c["fix"], c["count"]) for c in crashes] == [("process_killed", crash.ABORT_FIX, 1)]
    assert crashes[0]["line"].startswith("what():")  # the exception's own text; the abort after it adds nothing
    # the terminate line alone names only the type: the what() under it is the report
    assert crash.classify("terminate called after throwing an instance of 'std::runtime_error'") is None
    assert crash.classify("[rank3]:   what():  basic_string::_M_construct null not valid").fix == crash.ABORT_FIX


@pytest.mark.parametrize("kind, what, category", [
    # a CUDA error thrown where nothing catches it keeps gpu_error (CompVis/latent-diffusion#17, catalyst-rl-tutorial#3)
    ("c10::Error", "CUDA error: initialization error", "gpu_error"),
    ("c10::CUDAError", "CUDA error: device-side assert triggered", "gpu_error"),
    ("c10::Error", "CUDA error: an illegal memory access was encountered", "gpu_error"),
    ("c10::OutOfMemoryError", "CUDA out of memory. Tried to allocate 20.00 MiB", "cuda_oom"),
    # a checkpoint write that failed in the stream writer keeps disk_full
    ("c10::Error", "[enforce fail at inline_container.cc:595] . unexpected pos 1634457600 vs 1634457488", "disk_full"),
    # ProcessGroupNCCL's watchdog takes the process down: nccl_timeout, not an abort
    ("c10::DistBackendError", "[PG 0 Rank 1] Process group watchdog thread terminated with exception: [Rank 1] Watchdog "
     "caught collective operation timeout: WorkNCCL(SeqNum=3251, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=600000) "
     "ran for 600016 milliseconds before timing out.", "nccl_timeout"),
    ("std::runtime_error", "[Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1, OpType=BROADCAST, "
     "Timeout(ms)=1800000) ran for 1800497 milliseconds before timing out.", "nccl_timeout"),
])
def test_an_abort_after_a_reported_cause_keeps_the_cause(kind, what, category):
    lines = _terminate(kind, what)
    # ... and torchrun's summary of the rank that aborted, after its own traceback
    lines += ["Traceback (most recent call last):", '  File "/usr/bin/torchrun", line 8, in <module>', "    sys.exit(main())",
              "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ", "=" * 56, "train.py FAILED",
              "-" * 56, "Failures:", "  <NO_OTHER_FAILURES>", "-" * 56, "Root Cause (first observed failure):", "[0]:",
              "  time      : 2024-06-14_22:36:10", "  host      : node1", "  rank      : 1 (local_rank: 1)",
              "  exitcode  : -6 (pid: 2385923)", "  error_file: <N/A>",
              "  traceback : Signal 6 (SIGABRT) received by PID 2385923", "=" * 56]
    assert [c for c, _fix in _abort_crashes(lines)] == [category]


def test_the_nccl_watchdog_abort_stays_nccl_timeout():
    # ProcessGroupNCCL's own lines before the terminate (the rank's log under torchrun's "[rank1]:" prefix), then faulthandler
    lines = [
        "[rank1]:[E ProcessGroupNCCL.cpp:563] [Rank 1] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=3251, "
        "OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=600000) ran for 600016 milliseconds before timing out.",
        "[rank1]:[E ProcessGroupNCCL.cpp:583] [Rank 1] To avoid data inconsistency, we are taking the entire process down.",
        "[rank1]:terminate called after throwing an instance of 'c10::DistBackendError'",
        "[rank1]:  what():  [PG 0 Rank 1] Process group watchdog thread terminated with exception: [Rank 1] Watchdog caught "
        "collective operation timeout: WorkNCCL(SeqNum=3251, OpType=ALLREDUCE) ran for 600016 milliseconds before timing out.",
        "Fatal Python error: Aborted",
        "",
        "Thread 0x00007f2b4effd640 (most recent call first):",
        '  File "/usr/lib/python3.10/threading.py", line 324 in wait',
    ] + ['  File "/opt/train.py", line %d in step' % n for n in range(60)] + [
        "E0614 22:36:10.513000 139 torch/distributed/elastic/multiprocessing/api.py:826] failed (exitcode: -6) local_rank: 1 "
        "(pid: 2385923) of binary: /usr/bin/python",
        "Traceback (most recent call last):",
    ] + ['  File "/usr/lib/python3/dist-packages/torch/distributed/run.py", line %d, in run' % n for n in range(50)] + [
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ",
        # more than CAUSE_WINDOW_LINES after the watchdog, but within them after the agent's abort line, itself a consequence
        "  exitcode  : -6 (pid: 2385923)",
        "  traceback : Signal 6 (SIGABRT) received by PID 2385923",
    ]
    assert len(lines) > crash.CAUSE_WINDOW_LINES + 5
    assert _abort_crashes(lines) == [("nccl_timeout", crash.CATEGORIES["nccl_timeout"][1])]
    # far from any cause, the abort gives its own row
    far = ["{'loss': 0.5}"] * (crash.CAUSE_WINDOW_LINES + 1)
    assert _abort_crashes(lines[:1] + far + lines[-2:]) == [("nccl_timeout", crash.CATEGORIES["nccl_timeout"][1]),
                                                            ("process_killed", crash.ABORT_FIX)]


def test_an_abort_after_a_soft_timeout_is_still_reported():
    # a timed-out Hub request the run survived does not hide the abort that ended it later
    lines = ["requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='huggingface.co', port=443): Read timed out.",
             "{'loss': 0.52, 'epoch': 1.0}", "Aborted (core dumped)"]
    assert [c for c, _fix in _abort_crashes(lines)] == ["timeout", "process_killed"]


@pytest.mark.parametrize("line", [
    # "aborted" as a status word is no crash: a run stopped on purpose (early stopping, the operator) ended without a fault
    "Training aborted by user",
    "early stopping: run aborted",
    "INFO:root:Run aborted after 3 epochs without improvement",
    "[2024-06-14 22:36:10] checkpoint upload aborted, retrying",
    "NCCL INFO comm 0x55d5c8c0 rank 0 nranks 8 cudaDev 0 busId 1000 - Abort COMPLETE",
    # metrics and numbers that only look like the abort's
    "{'eval_loss': 0.2, 'eval_aborted_ratio': 0.0, 'eval_exit_code_rate': 0.134, 'epoch': 1.0}",
    "step 134, loss = 0.72 (242.4 examples/sec; 0.264 sec/batch)",
    "exit_code: -6",
    "  exitcode  : -60 (pid: 2385923)",
    # libstdc++'s terminate line names the type only (the what() under it is classified)
    "terminate called after throwing an instance of 'std::runtime_error'",
    "    e.what():  not a terminate report",
])
def test_aborted_in_another_sense_gives_nothing(line):
    assert crash.classify(line) is None


def test_an_abort_after_the_driver_was_torn_down_at_exit_gives_nothing():
    # the recorded TensorFlow log (tensorflow/tensorflow#8483): a finished run polled an event after the driver was gone
    lines = ["2017-03-17 00:24:34.693612: step 9990, loss = 0.79 (208.4 examples/sec; 0.307 sec/batch)",
             "E tensorflow/stream_executor/cuda/cuda_event.cc:49] Error polling for event status: failed to query event: "
             "CUDA_ERROR_DEINITIALIZED",
             "F tensorflow/core/common_runtime/gpu/gpu_event_mgr.cc:198] Unexpected Event status: 1",
             "Aborted (core dumped)"]
    assert _abort_crashes(lines) == []
