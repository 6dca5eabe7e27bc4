#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: training_config_lock
short_description: Validate the training config, lock it at training start, and report dangerous changes
version_added: 2.0.0
description:
  - Validates the training host's C(config.json) - required keys (C(base_model), C(output_dir), at least one
    dataset path), the types and ranges of the hyper-parameters it knows, and that the paths it names
    exist (relative paths are relative to O(training_base_dir)). Every problem is named, one by one. The
    rules are listed in docs/TRAINING.md.
  - With O(state=locked) (at training start) it writes the lock file (the config, its SHA-256 and the time)
    atomically. Locking the same config again changes nothing.
  - Afterwards (O(state=present)) it compares the config with the lock and reports every change - a
    C(base_model) change while checkpoints exist fails, naming both values; so do a change of the
    fine-tuning type or of the LoRA rank or target modules while checkpoints exist. Changes of
    C(output_dir), the datasets, C(learning_rate) or the sequence length are warnings; other changes are listed.
  - A lock file that exists but is not one this collection wrote (another tool's format, broken JSON) is
    reported and never overwritten, also not with O(state=locked).
  - C(config.json) itself is never written.
options:
  training_base_dir:
    description: >-
      The training host's base folder; relative paths in the config and the defaults below are relative to it.
    type: path
    required: true
  config_file:
    description: The config, default C(<training_base_dir>/config.json).
    type: path
  lock_file:
    description: The lock, default C(<training_base_dir>/.config_lock.json).
    type: path
  checkpoint_dir:
    description: >-
      Where the checkpoints are (whether any exist decides whether a change fails),
      default C(<training_base_dir>/current_model).
    type: path
  state:
    description:
      - V(present) validates the config and compares it with the lock, changing nothing.
      - V(locked) also writes the lock, unless the config is invalid or a change would fail.
    type: str
    choices: [present, locked]
    default: present
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: In check mode the lock is not written; C(changed) says whether it would be.
  diff_mode:
    support: full
    details: With O(state=locked), the diff shows the locked config before and after.
  platform:
    platforms: posix
author: [gpuops maintainers (@gpuops)]
"""

EXAMPLES = r"""
- name: Lock the config when a training run starts
  gpuops.preflight.training_config_lock:
    training_base_dir: /srv/training
    state: locked

- name: Before a restart, check that nothing dangerous changed
  gpuops.preflight.training_config_lock:
    training_base_dir: /srv/training
  register: config_lock
"""

RETURN = r"""
valid:
  description: Whether the config passed every rule.
  returned: always
  type: bool
problems:
  description: Every problem of the config, one per key.
  returned: always
  type: list
  elements: dict
  contains:
    key:
      description: The key of config.json, or null for the whole file.
      type: str
      returned: always
    code:
      description: >-
        V(missing_key), V(wrong_type), V(out_of_range), V(bad_choice), V(bad_value), V(missing_path),
        V(conflict) or V(not_an_object).
      type: str
      returned: always
    message:
      description: One line that names the key, the value and the rule.
      type: str
      returned: always
  sample:
    - key: learning_rate
      code: out_of_range
      message: "config.json: learning_rate is -0.1, must be > 0 and <= 1"
changes:
  description: Every difference between the lock and the config.
  returned: always
  type: list
  elements: dict
  contains:
    key:
      description: The key that changed.
      type: str
      returned: always
    before:
      description: The locked value (null when the key was absent).
      type: raw
      returned: always
    after:
      description: The current value (null when the key is absent).
      type: raw
      returned: always
    severity:
      description: V(fail) (fails the module), V(warn) (a warning) or V(info).
      type: str
      returned: always
    message:
      description: One line that names the key and both values.
      type: str
      returned: always
lock:
  description: The lock file.
  returned: always
  type: dict
  contains:
    path:
      description: The lock file.
      type: str
      returned: always
    state:
      description: >-
        V(ok), V(missing), V(unparseable) (not ours, left as it is), V(not_regular), V(too_large) or V(unreadable).
      type: str
      returned: always
    sha256:
      description: The locked config's SHA-256, or null.
      type: str
      returned: always
    locked_at:
      description: When it was locked (ISO 8601, UTC), or null.
      type: str
      returned: always
    error:
      description: The problem with the lock file, or null.
      type: str
      returned: always
sha256:
  description: The SHA-256 of the current config (canonical JSON), or null when it could not be read.
  returned: always
  type: str
training_mode:
  description: What the config trains - V(full), V(lora), or null when it does not say.
  returned: always
  type: str
checkpoints_exist:
  description: Whether any checkpoint exists in O(checkpoint_dir).
  returned: always
  type: bool
diff:
  description: The locked config before and after (pretty JSON), when O(state=locked) writes a new lock.
  returned: in diff mode, when the lock changes
  type: dict
  contains:
    before:
      description: The config of the old lock, or empty when there was none.
      type: str
      returned: always
    after:
      description: The config locked now.
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

from ansible_collections.gpuops.preflight.plugins.module_utils import _checkpoints
from ansible_collections.gpuops.preflight.plugins.module_utils import _training_config as _config
from ansible_collections.gpuops.preflight.plugins.module_utils._values import clean_text


def _path(value, base, default):
    if value is None:
        return os.path.join(base, default)
    return value if os.path.isabs(value) else os.path.join(base, value)


def run(params, check_mode, now=None):
    """(result dict, failure message or None, warnings). Raises ValueError for bad options."""
    base = params["training_base_dir"]
    if not base or "\0" in base:
        raise ValueError("training_base_dir must be a path")
    config_file = _path(params["config_file"], base, "config.json")
    lock_file = _path(params["lock_file"], base, ".config_lock.json")
    checkpoint_dir = _path(params["checkpoint_dir"], base, "current_model")
    now = time.time() if now is None else now
    loaded = _config.load_and_validate(config_file, base)
    lock = _config.read_lock(lock_file)
    checkpoints = _checkpoints.find(checkpoint_dir)
    exist = bool(checkpoints["checkpoints"])
    config = loaded["config"]
    doc = lock["lock"]
    result = dict(changed=False, valid=loaded["error"] is None and not loaded["problems"],
                  problems=loaded["problems"], changes=[], checkpoints_exist=exist,
                  sha256=_config.config_hash(config) if loaded["error"] is None else None,
                  training_mode=_config.training_mode(config)[0] if isinstance(config, dict) else None,
                  lock={"path": lock_file, "state": lock["state"], "error": lock["error"],
                        "sha256": doc["sha256"] if doc else None, "locked_at": doc.get("locked_at") if doc else None})
    if loaded["error"]:
        return result, loaded["error"], []
    warnings = [lock["error"]] if lock["error"] else []
    if doc is not None and isinstance(config, dict) and doc["sha256"] != result["sha256"]:
        result["changes"] = _config.compare(doc["config"], config, exist, _checkpoints.describe(checkpoints))
    failures = [p["message"] for p in loaded["problems"]]
    failures += [c["message"] for c in result["changes"] if c["severity"] == _config.FAIL]
    warnings += [c["message"] for c in result["changes"] if c["severity"] == _config.WARN]
    if failures:
        count = "1 problem" if len(failures) == 1 else "%d problems" % len(failures)
        what = " (the lock is not written)" if params["state"] == "locked" else ""
        return result, "%s%s: %s" % (count, what, "; ".join(failures)), warnings
    if params["state"] == "locked":
        if lock["state"] not in ("ok", _config.MISSING):
            return result, "%s: the lock is not written" % lock["error"], warnings
        if doc is None or doc["sha256"] != result["sha256"]:
            new = _config.lock_document(config, config_file, now)
            result["changed"] = True
            result["diff"] = {"before": json.dumps(doc["config"], indent=2, sort_keys=True) + "\n" if doc else "",
                              "after": json.dumps(config, indent=2, sort_keys=True) + "\n",
                              "before_header": "%s (locked config)" % lock_file,
                              "after_header": "%s (locked config)" % lock_file}
            if not check_mode:
                try:
                    _config.write_json_atomic(lock_file, new)
                except (_config.JsonFileError, OSError) as exc:
                    return result, "%s could not be written: %s" % (
                        lock_file, getattr(exc, "message", None) or getattr(exc, "strerror", None) or exc), warnings
                result["lock"].update(state="ok", sha256=new["sha256"], locked_at=new["locked_at"], error=None)
    return result, None, warnings


def main():
    module = AnsibleModule(
        argument_spec=dict(
            training_base_dir=dict(type="path", required=True),
            config_file=dict(type="path"),
            lock_file=dict(type="path"),
            checkpoint_dir=dict(type="path"),
            state=dict(type="str", choices=["present", "locked"], default="present"),
        ),
        supports_check_mode=True,
    )
    try:
        result, failure, warnings = run(module.params, module.check_mode)
    except ValueError as exc:
        module.fail_json(msg=str(exc), changed=False)
    for text in warnings:
        module.warn(text)
    if not module._diff:
        result.pop("diff", None)
    if failure:
        module.fail_json(msg=failure, **clean_text(result))
    module.exit_json(**clean_text(result))


if __name__ == "__main__":
    main()
