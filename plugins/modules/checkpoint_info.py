#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: checkpoint_info
short_description: Find the newest training checkpoint, tell its layout, and check that training would resume from it
version_added: 2.0.0
description:
  - Lists the Hugging Face Trainer checkpoints (C(checkpoint-<step>) folders, and C(last-checkpoint)) under O(path),
    and accelerate's C(checkpoint_<n>) (newest by n; they tell no step),
    newest first by step number (numeric order, so C(checkpoint-1000) is newer than C(checkpoint-999)).
  - Tells each checkpoint's layout - V(full) (C(model.safetensors), sharded C(model-0000x-of-0000y.safetensors)
    with C(model.safetensors.index.json), or C(pytorch_model.bin)) or V(lora) (C(adapter_model.safetensors)
    or C(adapter_model.bin) with C(adapter_config.json), at the top or in a sub-folder per named adapter; or a
    C(pytorch_model.bin) without C(config.json) whose first bytes name LoRA tensors - an adapter the Trainer saved
    under the model's name, as alpaca-lora's checkpoints hold it) - and
    whether it is resumable - the training state the engine that wrote it needs (the Trainer's C(optimizer.pt)
    and C(scheduler.pt); FSDP's C(optimizer.bin) or C(optimizer_0/) and C(scheduler.pt); DeepSpeed's C(latest)
    and the optimizer and model states in the C(global_step<N>/) it names, the optimizer inside the model states
    without ZeRO; accelerate's own C(save_state) - C(optimizer.bin) and C(random_states_<N>.pkl), no
    C(trainer_state.json) needed), the RNG state (C(rng_state.pth)) and a readable C(trainer_state.json) are there,
    none of them empty or a Git LFS pointer. A final export without
    optimizer state is not resumable. Without its RNG state alone (transformers before 4.6 wrote none) a
    checkpoint is not resumable, yet the Trainer resumes from it (RV(checkpoints[].trainer_resumes)), its random
    draws not reproduced - a warning, not a failure.
  - Weights DeepSpeed ZeRO-3 or FSDP keep in their own shards count as weights of any layout.
  - Compares C(trainer_state.json)'s C(global_step) with the folder name and with the training status file,
    and checks the config - a LoRA checkpoint under a full fine-tuning config, or the reverse, fails.
  - Fails when a resumable checkpoint exists but training would start from scratch - the status file says
    step 0, or the config sets C(resume_from_checkpoint) to false or null - and when the newest checkpoint is
    not resumable while the config sets C(resume_from_checkpoint) to true, which takes the newest as it is.
    Other doubts (the newest checkpoint not resumable, a step that does not match) are warnings.
  - Reads are bounded - a C(trainer_state.json) larger than 16 MiB is read only at its ends, where transformers
    writes C(global_step) and C(max_steps); so are older checkpoints' states once 64 MiB of them, newest first, were
    parsed whole. Nothing is written.
options:
  training_base_dir:
    description: >-
      The training host's base folder. Needed only for the defaults of O(path), O(status_file) and O(config_file).
    type: path
  path:
    description:
      - The checkpoint root (default C(<training_base_dir>/current_model)). When it has no C(checkpoint-<step>)
        folder and holds checkpoint files itself, it is one checkpoint or a final export, the only entry.
    type: path
  expect_layout:
    description:
      - The layout the checkpoints must have. V(auto) tells it from the files, and from the config when there is one
        (C(finetuning_type), C(use_lora), C(use_peft), C(peft_config)).
    type: str
    choices: [auto, full, lora]
    default: auto
  status_file:
    description:
      - The training status file (JSON with C(current_step)); V(none) for none.
      - Default C(<training_base_dir>/status/training_status.json); none without O(training_base_dir).
    type: str
  config_file:
    description:
      - The training config (C(config.json)); V(none) for none.
      - Default C(<training_base_dir>/config.json); none without O(training_base_dir).
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
  platform:
    platforms: posix
author: [gpuops maintainers (@gpuops)]
"""

EXAMPLES = r"""
- name: Check that the training would resume from its newest checkpoint
  gpuops.preflight.checkpoint_info:
    training_base_dir: /srv/training
  register: ckpt

- name: Show the newest checkpoint
  ansible.builtin.debug:
    msg: >-
      {{ ckpt.latest.path }} (step {{ ckpt.latest.step }}, {{ ckpt.latest.layout }},
      resumable {{ ckpt.latest.resumable }})
  when: ckpt.latest is not none

- name: Look at one LoRA checkpoint directly
  gpuops.preflight.checkpoint_info:
    path: /srv/training/current_model/checkpoint-1000
    expect_layout: lora
"""

RETURN = r"""
checkpoints:
  description: Every checkpoint found, newest first.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The checkpoint folder.
      type: str
      returned: always
    name:
      description: The folder's name.
      type: str
      returned: always
    step:
      description: The step from the folder name (C(checkpoint-<step>)), else C(global_step); null when neither says.
      type: int
      returned: always
    layout:
      description: V(full), V(lora), or null when the folder holds no model weights, or only an engine's shards.
      type: str
      returned: always
    engine:
      description: >-
        What wrote its training state, and so what resuming needs - V(accelerate) (its C(save_state), no
        Trainer), V(deepspeed), V(fsdp) or V(trainer).
      type: str
      returned: always
    engine_weights:
      description: The weights are DeepSpeed's or FSDP's own shards (also under accelerate), whose layout the files
        do not tell.
      type: bool
      returned: always
    resumable:
      description: >-
        Whether training can resume from it (weights of the expected layout, optimizer, scheduler, RNG state, a
        readable trainer_state.json).
      type: bool
      returned: always
    missing:
      description: The expected file names that are absent.
      type: list
      elements: str
      returned: always
    trainer_resumes:
      description: >-
        Whether the Hugging Face Trainer would resume from it - it is resumable, or only its RNG state
        (V(rng_state.pth)) is missing, which the Trainer does without, its random draws not reproduced.
      type: bool
      returned: always
    empty:
      description: Expected files that are there but empty (0 bytes).
      type: list
      elements: str
      returned: always
    lfs_pointers:
      description: >-
        Expected files that are Git LFS pointers in place of the files (a clone without git-lfs); they make it
        not resumable.
      type: list
      elements: str
      returned: always
    global_step:
      description: C(global_step) from C(trainer_state.json), or null.
      type: int
      returned: always
    max_steps:
      description: C(max_steps) from C(trainer_state.json), or null.
      type: int
      returned: always
    mtime:
      description: When it was written (epoch seconds; the later of the folder and its C(trainer_state.json)).
      type: float
      returned: always
    problems:
      description: What is wrong with it, one line each.
      type: list
      elements: str
      returned: always
  sample:
    - path: /srv/training/current_model/checkpoint-1000
      name: checkpoint-1000
      step: 1000
      layout: lora
      engine: trainer
      engine_weights: false
      resumable: true
      missing: []
      trainer_resumes: true
      empty: []
      lfs_pointers: []
      global_step: 1000
      max_steps: 8660
      mtime: 1767225600.0
      problems: []
latest:
  description: The newest checkpoint (the first of RV(checkpoints)), or null when there is none.
  returned: always
  type: dict
problems:
  description: >-
    The verdict on resuming, each with its status (V(fail) fails the module, V(warn) is a warning) and a suggested fix.
  returned: always
  type: list
  elements: dict
  contains:
    status:
      description: V(fail), V(warn) or V(unknown).
      type: str
      returned: always
    message:
      description: One line that names the checkpoint and what is wrong.
      type: str
      returned: always
    fix:
      description: The suggested fix.
      type: str
      returned: always
message:
  description: One line - the verdict when nothing is wrong, else the problems joined.
  returned: always
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpuops.preflight.plugins.module_utils import _checkpoints, _training_checks, _training_health
from ansible_collections.gpuops.preflight.plugins.module_utils._training_config import option_path
from ansible_collections.gpuops.preflight.plugins.module_utils._values import clean_text

DEFAULTS = _training_checks.DEFAULTS


def resolve_options(params):
    base = params["training_base_dir"]
    path = params["path"]
    if path is None:
        if not base:
            raise ValueError("path is required when training_base_dir is not set")
        path = os.path.join(base, _training_checks.DEFAULTS["checkpoint_dir"])
    if "\0" in path:
        raise ValueError("path contains a NUL byte")
    return {"checkpoint_dir": path, "base_dir": base or os.path.dirname(os.path.normpath(path)),
            "status_file": option_path(params["status_file"], base, DEFAULTS["status_file"], "status_file"),
            "config_file": option_path(params["config_file"], base, DEFAULTS["config_file"], "config_file"),
            "expect_layout": params["expect_layout"]}


def run(ctx):
    """(checkpoints report, problems, message) for the resolved options."""
    report = _checkpoints.find(ctx["checkpoint_dir"], ctx["expect_layout"])
    config = _training_checks.collect_config(ctx)
    status = _training_checks.collect_status(ctx)
    problems, ok_text, _details = _training_checks.evaluate_checkpoint_resume(
        report, config, status, _training_health.CHECKS["checkpoint_resume"].fix, expect_layout=ctx["expect_layout"])
    return report, problems, ok_text


def main():
    module = AnsibleModule(
        argument_spec=dict(
            training_base_dir=dict(type="path"),
            path=dict(type="path"),
            expect_layout=dict(type="str", choices=list(_checkpoints.EXPECT_CHOICES), default="auto"),
            status_file=dict(type="str"),
            config_file=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    try:
        ctx = resolve_options(module.params)
    except ValueError as exc:
        module.fail_json(msg=str(exc), changed=False)
    report, problems, ok_text = run(ctx)
    shown = [dict((k, p[k]) for k in ("status", "message", "fix")) for p in problems]
    message = ok_text or "; ".join(p["message"] for p in problems)
    result = dict(changed=False, checkpoints=report["checkpoints"], latest=report["latest"], problems=shown,
                  message=message)
    if report["error"] and not report["error"].endswith("does not exist"):
        module.fail_json(msg=report["error"], **clean_text(result))
    failures = [p for p in problems if p["status"] == "fail"]
    for item in problems:
        if item["status"] != "fail":
            module.warn(item["message"])
    if failures:
        module.fail_json(msg="; ".join(p["message"] for p in failures), **clean_text(result))
    module.exit_json(**clean_text(result))


if __name__ == "__main__":
    main()
