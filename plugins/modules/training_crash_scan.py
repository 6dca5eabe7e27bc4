#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: training_crash_scan
short_description: Classify the crashes in the last lines of training logs, and keep a crash history
version_added: 2.0.0
description:
  - Reads the last O(lines) lines of each training log, from the end of the file (a huge log is never
    read whole), and classifies each line with a pattern table into one category, the most specific
    one - V(cuda_oom) (the CUDA/HIP allocator's out-of-memory), V(gpu_error) (illegal memory access,
    device-side assert, ECC error, launch failure), V(nccl_timeout) (collective watchdog timeouts,
    NCCL/RCCL errors), V(process_killed) (SIGKILL, exit code -9/137, C(Killed), the kernel's or a cgroup's
    OOM killer; a DataLoader worker found gone, a process that died of SIGSEGV and one that aborted (SIGABRT,
    exit code -6/134, an uncaught C++ exception), each with its own fix; an abort after a failure of another category,
    such as the NCCL watchdog or a CUDA error, keeps that category),
    V(timeout), V(import_error), V(nan_loss) (loss or gradient norm NaN/inf, or a training
    loss of exactly 0 three log lines in a row) and V(disk_full) (ENOSPC, failed checkpoint writes, a full
    C(/dev/shm), the open-files limit, each with its own fix).
  - Harmless lines give nothing - warnings (NeMo's C([NeMo W ...]) too), the source lines a traceback prints,
    CUDA calls made after the driver shut down at exit, metrics such as C(eval_loss) or C(error_rate) with
    finite values. A job stopped from outside (SIGTERM, SIGINT, SIGHUP, as torchrun's C(SignalException) reports them) is no
    crash and gives nothing.
  - New crashes are appended to O(history_file) once each (a crash already recorded is not recorded
    again), with an atomic write, and each crash says how often its category occurred in the last
    24 hours (V(3rd cuda_oom in 24 h)). A history file that exists but is not one this collection
    wrote (another tool's format, broken JSON) is reported and never overwritten.
  - The categories, patterns and fixes are listed in docs/TRAINING.md.
options:
  training_base_dir:
    description:
      - The training host's base folder. Needed only for the defaults of O(logs) and O(history_file).
    type: path
  logs:
    description:
      - Log files to scan, as paths or globs (C(*), C(?), C([...])). A glob that matches nothing is no error;
        a plain path that does not exist is reported in RV(files).
      - Default C(<training_base_dir>/logs/*.log).
    type: list
    elements: str
  lines:
    description: How many lines to read from the end of each log, 1 to 100000.
    type: int
    default: 1000
  history_file:
    description:
      - The crash history (JSON). V(none) records nothing.
      - Default C(<training_base_dir>/.crash_history.json); without O(training_base_dir), nothing is recorded.
    type: str
  timeout:
    description: Seconds the whole scan may take; reads stop there and what was read so far is reported.
    type: int
    default: 30
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: In check mode the history is not written; RV(history.would_record) says how many crashes would be.
  diff_mode:
    support: full
    details: The diff lists the crashes appended to the history (in check mode, those that would be).
  platform:
    platforms: posix
author: [gpuops maintainers (@gpuops)]
"""

EXAMPLES = r"""
- name: Scan the training logs after a crash
  gpuops.preflight.training_crash_scan:
    training_base_dir: /srv/training
  register: crash_scan

- name: Stop when the GPU ran out of memory
  ansible.builtin.assert:
    that: "'cuda_oom' not in crash_scan.categories"
    fail_msg: "{{ crash_scan.crashes | map(attribute='line') | join('; ') }}"

- name: Scan other logs, the last 5000 lines, without recording anything
  gpuops.preflight.training_crash_scan:
    logs:
      - /var/log/trainer/*.log
      - /srv/training/nohup.out
    lines: 5000
    history_file: none
"""

RETURN = r"""
crashes:
  description: One entry per log file and category found, in the order first met.
  returned: always
  type: list
  elements: dict
  contains:
    category:
      description: >-
        V(cuda_oom), V(gpu_error), V(nccl_timeout), V(process_killed), V(timeout), V(import_error),
        V(nan_loss) or V(disk_full).
      type: str
      returned: always
    severity:
      description: V(hard) (the run cannot go on without action) or V(soft) (may be transient).
      type: str
      returned: always
    file:
      description: The log file.
      type: str
      returned: always
    line:
      description: The newest line of this category in the file (at most 400 characters).
      type: str
      returned: always
    count:
      description: How many of the lines read are of this category.
      type: int
      returned: always
    first_seen:
      description: >-
        The time of the first such line (ISO 8601, UTC), from the log's own stamps; null when the log has none.
      type: str
      returned: always
    last_seen:
      description: The time of the last such line, or null.
      type: str
      returned: always
    fix:
      description: The suggested fix.
      type: str
      returned: always
    summary:
      description: What the pattern that matched first means, in a few words.
      type: str
      returned: always
    recurrence:
      description: How many crashes of this category the history holds for the last 24 hours, this one included.
      type: int
      returned: always
    recurrence_text:
      description: The same in words (V(3rd cuda_oom in 24 h)), or null.
      type: str
      returned: always
  sample:
    - category: cuda_oom
      severity: hard
      file: /srv/training/logs/train.log
      line: "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 30.00 MiB ..."
      count: 1
      first_seen: "2026-03-01T10:15:02Z"
      last_seen: "2026-03-01T10:15:02Z"
      fix: The GPU ran out of memory (CUDA/HIP allocator). Lower the batch size ...
      summary: PyTorch OutOfMemoryError
      recurrence: 3
      recurrence_text: 3rd cuda_oom in 24 h
categories:
  description: The distinct categories found, in the order first met; an empty list for a clean log.
  returned: always
  type: list
  elements: str
  sample: [cuda_oom]
files:
  description: One entry per log file scanned.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The file.
      type: str
      returned: always
    lines:
      description: Lines read.
      type: int
      returned: always
    size:
      description: The file's size in bytes, or null when it could not be opened.
      type: int
      returned: always
    bytes_read:
      description: Bytes read from its end.
      type: int
      returned: always
    complete:
      description: Whether all the lines asked for (or the whole file) were read.
      type: bool
      returned: always
    note:
      description: Why the read is short (byte limit, timeout), or null.
      type: str
      returned: always
    timed_out:
      description: >-
        Whether O(timeout) stopped the read before the lines asked for were read: the file's last lines were not all
        scanned (a warning says so).
      type: bool
      returned: always
    error:
      description: Why the file was not scanned (missing, not a regular file, permission), or null.
      type: str
      returned: always
history:
  description: What became of the crash history.
  returned: always
  type: dict
  contains:
    path:
      description: The history file, or null when nothing is recorded.
      type: str
      returned: always
    state:
      description: >-
        V(ok), V(missing) (a new file is started), V(disabled), V(unparseable) (not ours, left as it is),
        V(not_regular), V(too_large), V(unreadable) or V(error) (the write failed).
      type: str
      returned: always
    recorded:
      description: How many crashes were appended.
      type: int
      returned: always
    would_record:
      description: In check mode, how many would have been appended.
      type: int
      returned: always
    pruned:
      description: >-
        How many of the oldest events were dropped when the history was written: it keeps the newest 5000.
      type: int
      returned: always
    error:
      description: The problem with the history file, or null.
      type: str
      returned: always
note:
  description: A note about the logs scanned (too many files matched), or null.
  returned: always
  type: str
diff:
  description: The crashes appended to the history (in check mode, that would be), one JSON object a line.
  returned: in diff mode
  type: dict
  contains:
    before:
      description: Empty (the history only grows).
      type: str
      returned: always
    after:
      description: The new crashes, one JSON object a line.
      type: str
      returned: always
    before_header:
      description: The header of the diff's before side.
      type: str
      returned: always
    after_header:
      description: The header of the diff's after side.
      type: str
      returned: always
"""

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpuops.preflight.plugins.module_utils import _crash_log, _deadline
from ansible_collections.gpuops.preflight.plugins.module_utils._training_config import option_path
from ansible_collections.gpuops.preflight.plugins.module_utils._values import clean_text


def resolve_options(params):
    """(log patterns, history file or None). Raises ValueError naming the option."""
    base = params["training_base_dir"]
    lines = params["lines"]
    if not 1 <= lines <= _crash_log.MAX_LINES:
        raise ValueError("lines must be between 1 and %d, not %d" % (_crash_log.MAX_LINES, lines))
    if params["timeout"] < 1:
        raise ValueError("timeout must be at least 1 second, not %d" % params["timeout"])
    logs = params["logs"]
    if logs is None:
        if not base:
            raise ValueError("logs is required when training_base_dir is not set")
        logs = [os.path.join(base, "logs", "*.log")]
    if not logs or any(not isinstance(p, str) or not p.strip() or "\0" in p for p in logs):
        raise ValueError("logs must be a non-empty list of paths or globs")
    logs = [p if os.path.isabs(p) or not base else os.path.join(base, p) for p in logs]
    return logs, option_path(params["history_file"], base, ".crash_history.json", "history_file")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            training_base_dir=dict(type="path"),
            logs=dict(type="list", elements="str"),
            lines=dict(type="int", default=_crash_log.DEFAULT_LINES),
            history_file=dict(type="str"),
            timeout=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    try:
        logs, history = resolve_options(module.params)
    except ValueError as exc:
        module.fail_json(msg=str(exc), changed=False)
    timeout = module.params["timeout"]
    deadline = time.monotonic() + timeout
    outcome = _deadline.run_all({"scan": (lambda: _crash_log.scan(
        logs, lines=module.params["lines"], history_file=history, record=history is not None,
        check_mode=module.check_mode, deadline=deadline), timeout + 5)})["scan"]
    if not outcome.ok:
        module.fail_json(msg="the crash-log scan %s" % outcome.describe_failure(), changed=False)
    report = outcome.value
    for item in report["files"]:
        if item["error"]:
            module.warn(item["error"])
        elif item["timed_out"]:
            module.warn("%s not fully scanned: %s" % (item["path"], item["note"]))
    if report["history"]["error"]:
        module.warn(report["history"]["error"])
    result = dict(changed=report["history"]["recorded"] > 0 or report["history"]["would_record"] > 0,
                  crashes=report["crashes"], categories=report["categories"], files=report["files"],
                  history=report["history"], note=report["note"])
    if module._diff:
        lines = "".join(json.dumps(dict((k, r[k]) for k in ("category", "file", "line", "last_seen")),
                                   sort_keys=True, ensure_ascii=False) + "\n" for r in report["new_events"])
        result["diff"] = {"before": "", "after": lines if result["changed"] else "",
                          "before_header": "%s (new crashes)" % history, "after_header": "%s (new crashes)" % history}
    module.exit_json(**clean_text(result))


if __name__ == "__main__":
    main()
