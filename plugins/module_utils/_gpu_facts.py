# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: what the standalone GPU facts modules (rocm_gpu_facts, nvidia_gpu_facts) share.

Their kernel-log option (read the log, keep the findings that speak about GPU health) and the
check of their timeout options. The probe itself is ``_gpus.probe``.
"""

from __future__ import annotations

from ansible_collections.gpuops.preflight.plugins.module_utils import _gpus, _kernel_log
from ansible_collections.gpuops.preflight.plugins.module_utils._values import timeout_problem


def check_timeouts(module, names):
    """Fail the module when a timeout option is out of range (``timeout_problem``), naming it."""
    for name in names:
        why = timeout_problem(module.params[name])
        if why:
            module.fail_json(msg="%s %s" % (name, why))


def kernel_findings(module, vendors=None):
    """Findings for the health verdict from the kernel_log option: (findings, info or None).

    ``kernel_log``: 'none' reads nothing; 'auto', 'journal' and 'dmesg' read the current boot's log;
    anything else is the path of a file. A log that cannot be read is a warning, never a failure.
    """
    source = module.params["kernel_log"]
    if source == "none":
        return [], None
    path = None
    if source not in ("auto", "journal", "dmesg"):
        source, path = "file", source
    read, findings = _kernel_log.scan_kernel_log(module, source, path, None, module.params["kernel_log_timeout"],
                                                 vendors=vendors)
    info = {"source": read.source, "error": read.error, "timed_out": read.timed_out, "findings": findings}
    if read.error or read.timed_out:
        module.warn("could not read the kernel log: %s" % (read.error or "timed out"))
    return findings, info


def probe(module, findings, **kwargs):
    """``_gpus.probe`` with the kernel findings' NVRM partial addresses ('0000:01:00') completed to the GPUs found,
    and findings that name a device by PCI id, or a PCIe port above a GPU, joined to that GPU."""
    collected = _gpus.collect(module, **kwargs)
    findings = _kernel_log.resolve_addresses(findings, [g["bdf"] for g in collected["gpus"] if g["bdf"]])
    return _gpus.apply_health(collected, _gpus.join_findings(findings, collected["gpus"], collected.get("pci_topology")))
