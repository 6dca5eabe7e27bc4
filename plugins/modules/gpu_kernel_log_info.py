#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_kernel_log_info
short_description: Scan the kernel log for AMD (amdgpu) and NVIDIA (NVRM Xid) GPU failures
version_added: 2.0.0
description:
  - Reads the kernel log of the current boot (systemd journal, C(dmesg), or a file) and reports
    GPU failures as findings, one per distinct message and GPU (one per Xid and GPU for NVIDIA),
    with repeats counted.
  - Each finding has a category (for example C(smu_no_response), C(gpu_reset_failed), C(bus_lost),
    C(ras_uncorrectable), C(app_fault)), a severity (C(hard) or C(soft)), the GPU's PCI address when
    the driver printed one, the vendor, the NVIDIA Xid, a summary, a suggested fix, and the times of
    its first and last line.
  - A hang (ring timeout, a per-queue ring reset that failed) that a GPU reset then recovered from,
    with no resume or init failure after it, is one soft C(gpu_reset) finding with C(recovered=true)
    that names what hung. A reset that did not succeed stays a hard finding.
  - An NVIDIA Xid is judged by the immediate action of NVIDIA's Xid catalog, which its fix names first.
    The application's faults (13, 31, 43, 45 ...) and corrected errors are soft; Xids that need a GPU
    reset, a reboot or support (the GPU, its memory, firmware, NVLink or the bus) are hard, and so is a
    contained ECC error (94), whose memory only a reset repairs; NVLink 5 Xids are soft when the driver says C(Nonfatal); informational Xids (test
    messages) give no finding; an Xid the table does not know is hard. A follow-up Xid logged as
    "caused by previous Xid N" counts as Xid N.
  - "Lines that look alarming but appear on healthy boots (for example C(SMU driver if version not
    matched), C(SMU is resuming...), C(RAP: optional rap ta ucode is not available)) never give a
    finding."
  - The log is scanned whole, as a stream, within O(timeout); when the time is too short the scan
    skips ahead so that the newest lines are scanned, and the part left out is reported in
    RV(unscanned), with a warning.
  - Report only; it changes nothing on the host.
  - External commands run under coreutils C(timeout) in their own process group, so a hung
    C(journalctl) cannot hang the task.
  - This module was called C(gpuops.preflight.amdgpu_kernel_log_info) before 2.0.0; that name
    still works (it is redirected here).
options:
  source:
    description:
      - Where to read the kernel log from.
      - C(journal) runs C(journalctl -k -b 0 -o short-iso-precise --no-pager -q), adding
        C(--since @<epoch>) when O(since) is set.
      - C(dmesg) runs C(dmesg --time-format iso). With C(kernel.dmesg_restrict=1) this needs root
        or CAP_SYSLOG (use C(become)).
      - C(file) reads O(path), which must be a regular file (a FIFO, directory or device is refused,
        never waited on).
      - C(auto) uses the journal when C(journalctl) exists and returns at least one line, else
        C(dmesg); when O(path) is given, C(auto) reads that file.
    type: str
    default: auto
    choices: [auto, journal, dmesg, file]
  path:
    description:
      - The log file to read. Required when O(source=file); giving O(path) with the default
        O(source=auto) also reads the file.
      - Understood stamps are ISO 8601 (journal, C(dmesg --time-format iso)), RFC 5424 syslog,
        C(talosctl dmesg), syslog and C(journalctl -o short) in English and other locales (also
        with the year in front, as syslog-ng can write it), C(dmesg -T) (also with C(-d)) in any of
        those locales, C(journalctl -o short-unix), and dmesg monotonic stamps (C([ 1234.567890]))
        and C(/dev/kmsg) records (C(6,1234,5678901,-;)), which are taken as time since the current
        boot. Stamps that cannot be read are removed from the messages.
    type: path
  since:
    description:
      - Only report lines logged at or after this time.
      - Epoch seconds (C(1767225600), C(1767225600.5)) or ISO 8601 (C(2026-01-01T00:00:00Z),
        C(2026-01-01T01:00:00+01:00); without a zone it is the host's local time).
      - Lines without a stamp take the time of the line before them; lines whose time cannot be
        read are kept, since they cannot be shown to be older.
    type: str
  timeout:
    description:
      - Seconds for reading and scanning the log (at least 1). A log command is killed when it
        runs longer. With O(source=auto), C(dmesg) gets the time the journal left, and at least
        1 second.
    type: int
    default: 15
  severity:
    description:
      - Only return findings of these severities. The counts in RV(hard_count) and
        RV(soft_count) are always of all findings.
    type: list
    elements: str
    choices: [hard, soft]
  vendor:
    description:
      - Which drivers' wording to look for. C(auto) reads both C(amdgpu) and NVIDIA (C(NVRM))
        lines; PCIe bridge lines (link down, fatal AER errors) are read for every choice.
    type: str
    default: auto
    choices: [auto, amd, nvidia]
  sysfs_root:
    description:
      - Where sysfs is mounted. NVIDIA names a GPU by domain, bus and device only
        (C(PCI:0000:01:00)); the module completes such an address from the display-class PCI
        functions under C(<sysfs_root>/bus/pci/devices) when exactly one matches.
      - The PCI topology is read from there too (the ports in each C(<sysfs_root>/bus/pci/devices)
        link's path, listed once with the address completion). A PCIe port's finding goes to the
        AMD and NVIDIA GPUs at or below the devices it names, as the GPU health verdict of
        M(gpuops.preflight.node_preflight) and the GPU facts modules joins it. Read only when the
        log has such a finding.
      - For a log file saved on another host, point it at a copy of that host's sysfs, or at a path
        that does not exist (the port findings then stay the host's).
    type: path
    default: /sys
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads; it runs normally in check mode.
  diff_mode:
    support: none
    details: Nothing changes, so there is no diff.
  platform:
    platforms: posix
notes:
  - Categories and their default severities. C(hard) - C(smu_no_response), C(smu_message_failed),
    C(register_access_failed), C(bus_lost), C(pcie_error), C(gpu_hang), C(gpu_reset_failed),
    C(ras_uncorrectable), C(memory_remap_failed), C(nvlink_error), C(firmware_error), C(gpu_error),
    C(recovery_required), C(init_failed). C(soft) - C(ring_timeout), C(gpu_reset), C(page_fault),
    C(app_fault), C(ras_correctable), C(memory_remap). The tables are in the collection's
    C(docs/KERNEL_LOG.md).
  - A C(pcieport)/C(pciehp)/AER line names a PCIe bridge, not a GPU. Its finding is given to the GPUs
    at or below the devices it names (the PCI topology under O(sysfs_root)), one copy per GPU with
    C(bdf) that GPU's and C(attributed=true); when the topology shows that none of them is or has a
    GPU below it, it is soft with no C(gpu_health) and C(not_gpu=true); otherwise (a slot now empty,
    a bus that cannot be listed) it stays the host's, with no C(bdf). An NVSwitch C(SXid) line names
    a switch, so its finding has no C(bdf). C(pciehp ... Card not present) is soft (any hot-plug slot
    prints it), so are a corrected and a non-fatal AER error (C(pcie_error), a warning); a C(Fatal)
    SXid is a hard C(nvlink_error), a C(Non-fatal) one soft.
seealso:
  - module: gpuops.preflight.rocm_gpu_facts
author: [gpuops maintainers (@gpuops)]
"""

EXAMPLES = r"""
- name: Scan this boot's kernel log for GPU failures
  gpuops.preflight.gpu_kernel_log_info:
  become: true
  register: klog

- name: Stop when the kernel log shows a hard failure
  ansible.builtin.assert:
    that: klog.hard_count == 0
    fail_msg: "{{ klog.findings | selectattr('severity', '==', 'hard') | map(attribute='message') | list }}"
    quiet: true

- name: Only NVIDIA Xids since the step started (epoch seconds)
  gpuops.preflight.gpu_kernel_log_info:
    vendor: nvidia
    since: "{{ step_started_epoch }}"
    severity: [hard]
  become: true

- name: Scan a saved log file
  gpuops.preflight.gpu_kernel_log_info:
    path: /var/log/kern.log
    since: "2026-01-01T00:00:00Z"
"""

RETURN = r"""
findings:
  description:
    - One entry per distinct failure, in the order of its first line. Repeats of the same message
      for the same GPU (numbers, addresses and pids aside; for NVIDIA, of the same Xid) are collapsed
      into one entry.
  returned: success
  type: list
  elements: dict
  contains:
    category:
      description: Stable category name, for example C(smu_no_response).
      type: str
      sample: smu_no_response
    severity:
      description: C(hard) (the GPU should not get work) or C(soft) (a warning).
      type: str
      sample: hard
    gpu_health:
      description:
        - What the finding makes the GPU it names in the GPU health verdict, C(degraded) or C(lost), as its
          pattern declares; null when it is only a kernel-log finding.
        - C(degraded) - SMU and register-access failures, a GPU reset or resume that failed, uncorrectable or
          deferred RAS errors, a failed GPU init, KFD skipping the GPU (C(PCI rejects atomics)), a hang the
          driver will not reset (C(GPU recovery disabled.)).
          C(lost) - off the bus.
      type: str
      sample: degraded
    bdf:
      description:
        - The GPU's PCI address (lower case), or null when the line names no GPU.
        - For a PCIe port's finding, the address of the GPU at or below the devices it names
          (C(attributed)); null when it is no GPU's or what sits below the port is unknown.
        - NVIDIA's partial address (C(0000:01:00)) when no single display function under
          O(sysfs_root) completes it.
      type: str
      sample: "0000:03:00.0"
    pci_id:
      description:
        - The device's PCI vendor and device id (C(1002:67df)) when the line names it that way only (KFD's
          C(skipped device 1002:67df, PCI rejects atomics)); else null. The GPU health verdict joins such a
          finding to the one GPU with that id; with several (identical cards) it stays the host's.
      type: str
      sample: "1002:67df"
    vendor:
      description: C(amd), C(nvidia), or null for a PCIe bridge's line.
      type: str
      sample: amd
    xid:
      description: The NVIDIA Xid (for a folded chain, the cause's), or null.
      type: int
      sample: 79
    summary:
      description: Short description of the failure.
      type: str
      sample: SMU not answering (0xFFFFFFFF)
    fix:
      description: Suggested fix.
      type: str
    message:
      description: The first matching line without its timestamp and host prefix.
      type: str
      sample: "amdgpu 0000:03:00.0: amdgpu: SMU: response:0xFFFFFFFF for index:59 param:0x00000000 message:DFCstateControl?"
    line:
      description: The first matching line as read.
      type: str
    count:
      description: How many lines gave this finding (for a recovered reset, how many recoveries).
      type: int
      sample: 3
    first_seen:
      description: Timestamp of the first line as written in the log (dmesg monotonic stamps are seconds since boot), or null.
      type: str
      sample: "2026-11-25T15:00:00.123456+0000"
    last_seen:
      description: Timestamp of the last line as written in the log, or null.
      type: str
    first_epoch:
      description: Wall-clock time of the first line in epoch seconds, or null when it cannot be dated.
      type: float
      sample: 1795618800.123456
    last_epoch:
      description: Wall-clock time of the last line in epoch seconds, or null when it cannot be dated.
      type: float
    recovered:
      description: True for a hang the GPU recovered from by a reset (category C(gpu_reset), soft).
      type: bool
      sample: false
    hung:
      description: For a recovered reset, what hung (for example C(ring gfx_0.0.0 timeout)); else null.
      type: str
    caused_xids:
      description: NVIDIA Xids logged as "caused by previous Xid" this one, folded into this finding.
      type: list
      elements: int
      sample: [45]
    devices:
      description:
        - The PCI devices a PCIe port's finding is about (its line names the port, not the GPU), each with the
          driver the log names it by (null when only its address is named) - the port itself for its link going
          down or its DPC event, the source device an AER error message names, and for C(device recovery failed)
          also the devices the recovery's earlier lines named as it gave up on them (C(can't recover)).
        - The finding is given to every GPU at or below these devices (the PCI topology under O(sysfs_root)), as
          the GPU health verdict gives it; when none is a GPU and none has a GPU below it, the finding is a soft one
          of the host (C(not_gpu)).
        - The functions the log's PCI enumeration lines showed below the port (C(pci 0000:01:00.0 [1002:73bf] type 00
          class 0x030000)) are named too, with C(below) the port and C(gpu) the vendor of a GPU (C(amd) or C(nvidia);
          else null), so that a GPU removed from sysfs after its slot's link went down is still judged lost, and a
          slot that held no GPU (an NVMe drive pulled) is no GPU's.
        - Empty for a finding of a GPU driver's line.
      type: list
      elements: dict
      sample: [{"bdf": "0000:00:01.1", "driver": "pcieport"}]
    attributed:
      description:
        - True on a PCIe port's finding given to a GPU at or below the devices it names (its C(bdf) that GPU's,
          one copy per GPU). Present only then.
      type: bool
      returned: when a port's finding was given to a GPU
      sample: true
    not_gpu:
      description:
        - True on a PCIe port's finding whose devices the PCI topology shows are no GPU and have no GPU below them
          (a SATA, NVMe, NIC, USB or Thunderbolt controller); it is then soft, with C(gpu_health) null. Present only
          then.
      type: bool
      returned: when the port's devices hold no GPU
      sample: true
hard_count:
  description: Number of hard findings (collapsed entries, before the O(severity) filter).
  returned: success
  type: int
  sample: 2
soft_count:
  description: Number of soft findings (collapsed entries, before the O(severity) filter).
  returned: success
  type: int
  sample: 1
source:
  description: What was read, C(journal), C(dmesg) or C(file).
  returned: always
  type: str
  sample: journal
cmd:
  description: The command that read the log, or null for a file.
  returned: always
  type: list
  elements: str
note:
  description: Remarks about the read, for example why C(auto) fell back to C(dmesg); null when none.
  returned: always
  type: str
unscanned:
  description:
    - What could not be scanned within O(timeout) (the module also warns), or null when the whole
      log was scanned.
  returned: success
  type: dict
  contains:
    description:
      description: One line saying how much was left out and why.
      type: str
    bytes:
      description: Bytes not scanned.
      type: int
    lines:
      description: Lines not scanned, or null when they were not counted (a file's skipped part is not read).
      type: int
lines_scanned:
  description: Number of log lines examined. For C(dmesg) and files this includes lines older than O(since).
  returned: success
  type: int
  sample: 1532
since:
  description: O(since) as epoch seconds, or null.
  returned: always
  type: float
  sample: 1767225600.0
elapsed_s:
  description: Seconds spent reading and scanning.
  returned: always
  type: float
  sample: 0.084
timed_out:
  description: Whether a log command ran out of time (then the module fails).
  returned: failure
  type: bool
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpuops.preflight.plugins.module_utils import _gpus, _kernel_log, _sysfs
from ansible_collections.gpuops.preflight.plugins.module_utils._pci import is_partial
from ansible_collections.gpuops.preflight.plugins.module_utils._timeparse import parse_time


def main():
    module = AnsibleModule(
        argument_spec=dict(
            source=dict(type="str", default="auto", choices=["auto", "journal", "dmesg", "file"]),
            path=dict(type="path"),
            since=dict(type="str"),
            timeout=dict(type="int", default=15),
            severity=dict(type="list", elements="str", choices=["hard", "soft"]),
            vendor=dict(type="str", default="auto", choices=["auto", "amd", "nvidia"]),
            sysfs_root=dict(type="path", default="/sys"),
        ),
        required_if=[("source", "file", ("path",))],
        supports_check_mode=True,
    )
    params = module.params
    source, path = params["source"], params["path"]
    if path and source == "auto":
        source = "file"
    elif path and source != "file":
        module.fail_json(msg="path is only read with source=file (or source=auto), not source=%s" % source)
    if params["timeout"] < 1:
        module.fail_json(msg="timeout must be at least 1 second, got %d" % params["timeout"])
    try:
        since = parse_time(params["since"], "since")
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    start = time.monotonic()
    stats = {}
    read, findings = _kernel_log.scan_kernel_log(
        module, source=source, path=path, since=since, timeout=params["timeout"], stats=stats,
        vendors=params["vendor"])
    sysfs_root, listing = params["sysfs_root"], None
    partial = [f["bdf"] for f in findings if is_partial(f["bdf"])]
    if partial:
        listing = _sysfs.list_pci_bus(sysfs_root)  # listed once: the port join below reads the same listing
        findings = _kernel_log.resolve_addresses(
            findings, _kernel_log.display_functions(sysfs_root, partial, listing[0] or []))
    # a PCIe port's finding to the GPUs at or below the port, as the GPU probe's verdict joins it
    findings = _gpus.join_port_findings_by_sysfs(findings, sysfs_root, listing)
    elapsed = round(time.monotonic() - start, 3)
    if read.error is not None:
        module.fail_json(msg="could not read the kernel log: %s" % read.error, source=read.source,
                         cmd=read.cmd, note=read.note, timed_out=read.timed_out, since=since, elapsed_s=elapsed)
    if read.unscanned:
        module.warn(read.unscanned["description"])
    counts = _kernel_log.severity_counts(findings)
    if params["severity"]:
        findings = [f for f in findings if f["severity"] in params["severity"]]
    module.exit_json(
        changed=False,
        findings=findings,
        hard_count=counts[_kernel_log.HARD],
        soft_count=counts[_kernel_log.SOFT],
        source=read.source,
        cmd=read.cmd,
        note=read.note,
        unscanned=read.unscanned,
        lines_scanned=stats.get("lines", len(read.lines)),
        since=since,
        elapsed_s=elapsed,
    )


if __name__ == "__main__":
    main()
