# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to gpuops.preflight: put GPU clocks back to their defaults, and prove it.

AMD: ``rocm-smi --resetclocks`` sets overdrive to 0 and the performance level to auto. It prints
text only (no JSON, exit 0 either way) and re-runs itself through ``sudo`` when not root, which
prompts or hangs without passwordless sudo; so it runs only as root (Ansible ``become``) and
success is read back from ``power_dpm_force_performance_level``. GPUs already at ``auto`` are
left alone, which keeps the cleanup idempotent.

NVIDIA: clocks locked with ``nvidia-smi -lgc``/``-lmc`` (or application clocks set with ``-ac``)
show as the clock event reason ``applications_clocks_setting`` being active: NVML's "user defined
clocks" reason (``nvmlClocksEventReasonUserDefinedClocks`` is the same bit). Only when a GPU has it
are ``nvidia-smi -rgc`` and ``-rmc`` run (both need root; ``-rmc`` is "not supported" before
Ampere, which is no failure), and the reasons are read back through ``nvidia-smi -q -x -d
PERFORMANCE``: a GPU that still has it is reported (application clocks need ``-rac``).

Both: only what is read back counts as reset (``changed``); a GPU whose clocks could not be read,
before or after, is ``unverified`` (the check's ``unknown``), never taken for one at its default.
"""

from __future__ import annotations

import os

from ansible_collections.gpuops.preflight.plugins.module_utils import _deadline, _nvidia_smi, _sysfs, _tool, _toolpath
from ansible_collections.gpuops.preflight.plugins.module_utils._values import clean_text, first_line

NVIDIA_QUERY = ["-q", "-x", "-d", "PERFORMANCE"]
NVIDIA_RESETS = ("-rgc", "-rmc")
USER_DEFINED = "user_defined"
DEFAULT = "default"


def reset_clocks(module, rocm_smi="rocm-smi", sysfs_root="/sys", timeout=30, check_mode=False, geteuid=os.geteuid,
                 vendor="amd", nvidia_smi="nvidia-smi"):
    """Reset clocks where a GPU is not at its default. Returns {changed, needed, reset, gpus, problems,
    unverified, unsupported, tool} (see ``_outcome``); ``changed`` only for a reset read back, or one to do in
    check mode.

    ``vendor``: 'amd', 'nvidia' or 'auto' (the vendors whose GPUs sysfs shows; both on a mixed
    host, their answers merged, with ``vendors`` listing them). ``gpus``: [{bdf, before, after}]
    (AMD: performance levels; NVIDIA: 'user_defined' or 'default', None when unreadable).
    """
    if vendor == "amd":
        return reset_amd_clocks(module, rocm_smi, sysfs_root, timeout, check_mode, geteuid)
    if vendor == "nvidia":
        return reset_nvidia_clocks(module, nvidia_smi, timeout, check_mode, geteuid)
    if vendor != "auto":
        raise ValueError("vendor must be auto, amd or nvidia, not %r" % (vendor,))
    present = set(v for _b, _d, _c, v in _sysfs.enumerate_gpus(sysfs_root, ["amd", "nvidia"]))
    vendors = [name for name in ("amd", "nvidia") if _sysfs.VENDOR_IDS[name] in present] or ["amd"]
    merged = _outcome(vendors=vendors)
    for name in vendors:
        got = reset_clocks(module, rocm_smi, sysfs_root, timeout, check_mode, geteuid, name, nvidia_smi)
        merged["changed"] = merged["changed"] or got["changed"]
        for key in ("needed", "reset", "gpus", "problems", "unverified", "unsupported"):
            merged[key].extend(got[key])
        merged["tool"] = merged["tool"] or got["tool"]
    return merged


def reset_amd_clocks(module, rocm_smi="rocm-smi", sysfs_root="/sys", timeout=30, check_mode=False, geteuid=os.geteuid):
    """``rocm-smi --resetclocks`` where an AMD GPU is not at 'auto', verified through sysfs.

    Every GPU is read under the probe's per-GPU deadline, before and after: a read stuck in a hung driver
    leaves that GPU out or unverified (its state is the GPU probe's to report), never the module hanging.
    A level the driver refused to give (EPERM while runtime-suspended or in reset) is ``unverified``, never
    taken for 'auto'; a GPU without the file (an SR-IOV VF) is ``unsupported``: it has no level to reset."""
    found, unread = _sysfs.enumerate_gpus_read(sysfs_root, [_sysfs.AMD_VENDOR])
    gpus = [g for g in _sysfs.scan_gpus(sysfs_root, timeout=_sysfs.GPU_READ_TIMEOUT, found=found)
            if g.get("driver") == "amdgpu" and not g.get("lost") and not g.get("hung")]
    outcome = _outcome()
    if unread:  # no GPU seen on a bus that could not be listed is no GPU at its defaults
        outcome["unverified"].append("sysfs %s: the clocks of GPUs not seen through a DRM card were not checked" % unread)
    for gpu in gpus:
        level = gpu.get("perf_level") or None  # an empty answer is no level (older kernels on a VF)
        error = gpu["read_errors"].get(_sysfs.PERF_LEVEL_FILE)
        outcome["gpus"].append({"bdf": gpu["bdf"], "before": level, "after": level})
        if level is None and error:
            outcome["unverified"].append("could not read the performance level of GPU %s (%s): its clocks were not "
                                         "checked" % (gpu["bdf"], error))
        elif level is None:
            outcome["unsupported"].append(gpu["bdf"])
        elif level != "auto":
            outcome["needed"].append(gpu["bdf"])
    if not _may_reset(outcome, check_mode, geteuid, "resetting clocks needs root (rocm-smi re-runs itself through "
                                                    "sudo otherwise): run the cleanup with become"):
        return outcome
    path, why_not = _toolpath.locate(module, rocm_smi or "rocm-smi", _tool.ROCM_BIN_DIRS)
    if not path:
        outcome["changed"] = False
        outcome["problems"].append("cannot reset clocks: %s" % why_not)
        return outcome
    run = _tool.run_tool(module, [path, "--resetclocks"], timeout)
    outcome["tool"] = run.as_dict()
    if not run.ran:
        outcome["problems"].append("rocm-smi --resetclocks: %s" % run.describe())
    # rocm-smi exits 0 whatever it managed: only the levels read back say what was reset
    readback = _deadline.run_all(dict((g["bdf"], (lambda g=g: _sysfs.read_perf_level(g), _sysfs.GPU_READ_TIMEOUT))
                                      for g in gpus))
    for item in outcome["gpus"]:
        got = readback[item["bdf"]]
        level, error = got.value if got.ok else (None, got.describe_failure())
        item["after"] = level or None
        if item["bdf"] not in outcome["needed"]:
            continue
        if item["after"] == "auto":
            outcome["reset"].append(item["bdf"])
        elif item["after"] is None:
            outcome["unverified"].append(
                "could not read the performance level of GPU %s back after rocm-smi --resetclocks (%s)%s"
                % (item["bdf"], error or "empty", ": the GPU may have left the bus" if error == "ENOENT" else ""))
        else:
            outcome["problems"].append("GPU %s is still at performance level %r after rocm-smi --resetclocks"
                                       % (item["bdf"], item["after"]))
    outcome["changed"] = bool(outcome["reset"])
    return outcome


def _outcome(**more):
    """A clock reset's report. ``needed``: GPUs off their defaults; ``reset``: those read back at their defaults;
    ``unverified``: why a GPU's clocks could not be read (before or after); ``unsupported``: GPUs with no clock
    control to read or reset."""
    outcome = {"changed": False, "needed": [], "reset": [], "gpus": [], "problems": [], "unverified": [],
               "unsupported": [], "tool": None}
    outcome.update(more)
    return outcome


def _may_reset(outcome, check_mode, geteuid, needs_root):
    """Whether to run the reset now: something needs it, not check mode (which still says changed), and root."""
    if not outcome["needed"]:
        return False
    outcome["changed"] = True
    if check_mode:
        return False
    if geteuid() != 0:
        outcome["changed"] = False
        outcome["problems"].append(needs_root)
        return False
    return True


def nvidia_clock_states(module, path, timeout):
    """({bdf: 'user_defined' | 'default' | None}, error line or None) through ``nvidia-smi -q -x -d PERFORMANCE``."""
    run = _tool.run_tool(module, [path] + NVIDIA_QUERY, timeout)
    if not run.ran:
        return {}, "nvidia-smi %s: %s" % (" ".join(NVIDIA_QUERY), run.describe())
    parsed = _nvidia_smi.parse_output(run.stdout, run.stderr, run.rc)
    if parsed["outcome"] != _nvidia_smi.ANSWERED:
        return {}, "cannot read the clocks: %s" % parsed["reason"]
    states = {}
    for card in parsed["cards"]:
        reasons = card["clocks_event_reasons"]
        if card["bdf"]:
            states[card["bdf"]] = None if reasons is None else (
                USER_DEFINED if _nvidia_smi.USER_DEFINED_CLOCKS in reasons else DEFAULT)
    return states, None


def reset_nvidia_clocks(module, nvidia_smi="nvidia-smi", timeout=30, check_mode=False, geteuid=os.geteuid):
    """``nvidia-smi -rgc`` and ``-rmc`` where an NVIDIA GPU runs user-defined clocks, verified through nvidia-smi.

    At most four calls (read, -rgc, -rmc, read back), each under a quarter of ``timeout``.
    ``tool`` is the -rgc run; ``runs`` every reset run. A GPU whose clock event reasons read N/A is
    ``unsupported``; one missing from the answer read back is ``unverified``, never reset.
    """
    outcome = _outcome(runs=[])
    path, why_not = _toolpath.locate(module, nvidia_smi or "nvidia-smi")
    if not path:
        outcome["problems"].append("cannot check NVIDIA clocks: %s" % why_not)
        return outcome
    each = max(timeout / 4.0, 1)
    before, error = nvidia_clock_states(module, path, each)
    if error:
        outcome["problems"].append(error)
        return outcome
    outcome["gpus"] = [{"bdf": bdf, "before": state, "after": state} for bdf, state in sorted(before.items())]
    outcome["needed"] = [bdf for bdf, state in sorted(before.items()) if state == USER_DEFINED]
    outcome["unsupported"] = [bdf for bdf, state in sorted(before.items()) if state is None]
    if not _may_reset(outcome, check_mode, geteuid, "resetting NVIDIA clocks needs root (nvidia-smi -rgc/-rmc): "
                                                    "run the cleanup with become"):
        return outcome
    for flag in NVIDIA_RESETS:
        run = _tool.run_tool(module, [path, flag], each)
        outcome["runs"].append(run.as_dict())
        said = clean_text("%s\n%s" % (run.stdout, run.stderr))
        if not run.ran:
            outcome["problems"].append("nvidia-smi %s: %s" % (flag, run.describe()))
        elif run.rc and "not supported" not in said.lower():
            outcome["problems"].append("nvidia-smi %s exited %s: %s" % (
                flag, run.rc, first_line(said) or "no output"))
    outcome["tool"] = outcome["runs"][0]
    after, error = nvidia_clock_states(module, path, each)
    if error:
        outcome["unverified"].append("could not verify the clock reset: %s" % error)
    for item in outcome["gpus"]:
        item["after"] = after.get(item["bdf"])
        if item["bdf"] not in outcome["needed"] or error:
            continue
        if item["after"] == DEFAULT:
            outcome["reset"].append(item["bdf"])
        elif item["after"] is None:
            outcome["unverified"].append("could not read the clocks of GPU %s back after nvidia-smi -rgc/-rmc (%s)" % (
                item["bdf"], "not in nvidia-smi's answer" if item["bdf"] not in after else "clock event reasons N/A"))
        else:
            outcome["problems"].append(
                "GPU %s still runs user-defined clocks after nvidia-smi -rgc/-rmc (application clocks set with -ac "
                "need nvidia-smi -rac)" % item["bdf"])
    # unverifiable: -rgc's own word that it ran is all there is
    outcome["changed"] = bool(outcome["reset"]) or bool(error and outcome["runs"][0]["rc"] == 0
                                                        and not outcome["runs"][0]["timed_out"])
    return outcome
