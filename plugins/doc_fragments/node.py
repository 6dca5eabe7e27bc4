# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):
    # Options of the host modules (node_preflight, node_cleanup) that probe the GPUs and the kernel log.
    DOCUMENTATION = r"""
options:
  gpu_vendor:
    description:
      - Whose GPUs to probe. V(auto) finds them in sysfs by PCI vendor id (AMD C(0x1002), NVIDIA C(0x10de)) and probes
        each vendor present with its own tool; V(amd) or V(nvidia) probes only that vendor.
    type: str
    choices: [auto, amd, nvidia]
    default: auto
    version_added: 2.0.0
  gpu_tool:
    description: GPU tool to call, as O(gpuops.preflight.rocm_gpu_facts#module:tool); V(sysfs) calls none.
    type: str
    choices: [auto, rocm-smi, amd-smi, sysfs]
    default: auto
  rocm_smi:
    description: The rocm-smi executable (a name on E(PATH) or in C(/opt/rocm/bin), or a path).
    type: str
    default: rocm-smi
  amd_smi:
    description: The amd-smi executable (a name on E(PATH) or in C(/opt/rocm/bin), or a path).
    type: str
    default: amd-smi
  nvidia_smi:
    description: The nvidia-smi executable (a name on E(PATH), or a path).
    type: str
    default: nvidia-smi
    version_added: 2.0.0
  gpu_tool_timeout:
    description: Seconds the GPU tool may run before its process group is killed; kept below the GPU checks' timeout.
    type: int
    default: 15
  sysfs_root:
    description: Where sysfs is mounted.
    type: path
    default: /sys
  kernel_log:
    description:
      - Which kernel log to read. V(auto) reads the journal of the current boot, else C(dmesg); V(journal) and
        V(dmesg) force one; V(none) disables the kernel-log check; any other value is the path of a file to read.
    type: str
    default: auto
  kernel_log_since:
    description: Only read kernel-log lines from this time on (epoch seconds or ISO 8601). Default, the current boot.
    type: str
  controller_time:
    description:
      - The controller's clock when it sent the task (epoch seconds or ISO 8601). O(kernel_log_since) is a controller
        time; on a host whose clock is more than 60 s off this one, the kernel-log window is moved by the difference
        (the host dates its log lines by its own clock) and the kernel-log check warns about the clock. The roles set
        it; unset, O(kernel_log_since) is taken as it is.
    type: str
    version_added: 3.0.0
  excluded_gpus:
    description:
      - GPUs not to be used, by the GPU tool's index (V(10)) or PCI address (V(0000:22:00.0)), or as a mapping with
        keys C(gpu) and C(reason). Their problems carry C(excluded=true), which the controller turns into warnings
        that name them; they are left out of C(usable_gpus).
      - On a host with AMD and NVIDIA GPUs, rocm-smi and nvidia-smi each number their own GPUs from 0, so an index
        is refused there (a C(gpu_health) failure that says so); name GPUs by PCI address.
    type: list
    elements: raw
    default: []
  index_map:
    description:
      - The GPU tool's numbering from the last run in which it answered (a mapping of index to PCI address), as the controller
        knows it from earlier summaries. When the tool does not answer this run, an index in O(excluded_gpus) or
        C(gpu_watchlist) is resolved through it instead of a guessed order.
    type: dict
    default: {}
    version_added: 2.0.0
  vram_min_mb:
    description: A process holding more than this much VRAM (MiB) is reported.
    type: int
    default: 0
"""
