#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: hip_cache_cleanup
short_description: Remove the GPU runtime caches that ROCm steps leave in users' homes
version_added: 1.0.0
description:
  - Removes, in each selected home, the ROCm/HIP runtime caches C(.cache/hip_*), C(.cache/comgr_cache)
    (Comgr/hipRTC code objects) and C(.cache/miopen) (MIOpen compiled kernels), plus O(extra_paths).
  - The MIOpen user database C(.config/miopen) (tuned kernels) is kept unless O(include_miopen_user_db=true);
    a path that is, holds or lies in it is never removed otherwise.
  - Links are never followed. When a cache root (C(.cache), C(.config), or the first component of an
    extra path) or any directory between the root and a cache is a symlink, nothing under it is removed
    and it is reported in RV(skipped_paths). A cache that is itself a symlink is removed as a link; what it
    points to is left alone. Trees are removed one folder at a time relative to an open parent folder,
    after checking that the path is still what was planned; a folder on another file system or in the
    mount table (a cache shared over NFS, a bind mount) is never entered nor removed.
  - A cache folder that is itself a mount point is left as it is and reported in RV(skipped_paths).
    What vanishes while it is removed (another cleanup got there first) is no error.
  - A path that cannot be looked at or removed (permissions, a file in use) is reported in RV(errors) with a
    warning; it does not make the task fail, so the cleanup never blocks. Only bad input (an unknown user,
    a relative home, an extra path that leaves the home) fails the task.
  - Running it again once everything is gone changes nothing.
options:
  users:
    description:
      - Users whose homes are cleaned; each home comes from the passwd database. An unknown user is an error.
      - When both O(users) and O(home_dirs) are empty, the home of the user running the module is cleaned
        (C(/root) under C(become)).
    type: list
    elements: str
    default: []
  home_dirs:
    description: Absolute paths of further homes to clean, for service accounts without a passwd entry.
    type: list
    elements: path
    default: []
  include_miopen_user_db:
    description: Also remove the MIOpen user database C(.config/miopen) (tuned kernels; slow to rebuild).
    type: bool
    default: false
  framework_caches:
    description:
      - Also remove the kernel caches that GPU frameworks keep per user on ROCm and CUDA alike, PyTorch's
        jitted kernels C(.cache/torch/kernels) and Triton's compiled kernels C(.triton/cache).
      - Downloaded models (C(.cache/torch/hub), C(.cache/huggingface)) are never removed, nor is a folder that holds
        them, whatever O(extra_paths) reaches them (C(.cache), C(.cache/*)); they are reported in RV(skipped_paths).
    type: bool
    default: false
    version_added: 2.0.0
  extra_paths:
    description:
      - Further caches to remove, as globs relative to each home (for example C(.triton/cache)).
      - Absolute paths, C(~), and C(..) components are refused; the first component must be a plain name (the cache root).
    type: list
    elements: str
    default: []
  reset_clocks:
    description:
      - Also reset the GPU clocks after the caches are removed, when any GPU is not at C(auto), by running
        C(rocm-smi --resetclocks) (it resets every GPU), and verify through sysfs that every GPU's
        C(power_dpm_force_performance_level) reads C(auto). Nothing runs when all are at C(auto).
      - This needs root; use C(become). In check mode the clocks are not reset.
      - A GPU whose level cannot be read (amdgpu refuses the read while the GPU is runtime-suspended or in reset)
        is warned about and never counted as reset; a GPU without the file (an SR-IOV VF) has no level to reset.
    type: bool
    default: false
  rocm_smi:
    description: The rocm-smi command used when O(reset_clocks=true) (a name looked up in PATH and C(/opt/rocm/bin), or a path).
    type: str
    default: rocm-smi
  sysfs_root:
    description: Root of the sysfs tree read to verify the clocks when O(reset_clocks=true).
    type: path
    default: /sys
  timeout:
    description: Seconds before C(rocm-smi) is killed when O(reset_clocks=true).
    type: int
    default: 30
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: In check mode nothing is removed; RV(removed) and RV(bytes_freed) say what would be.
  platform:
    platforms: posix
  diff_mode:
    support: full
    details: The diff lists the cache paths present before and those left after.
author: [gpuops maintainers (@gpuops)]
"""

EXAMPLES = r"""
- name: Remove the GPU caches of the pipeline's users after a step
  gpuops.preflight.hip_cache_cleanup:
    users: [prng, svc-train]
  become: true

- name: Also remove the PyTorch and Triton kernel caches and the MIOpen user database, and reset the clocks
  gpuops.preflight.hip_cache_cleanup:
    users: [prng]
    framework_caches: true
    include_miopen_user_db: true
    reset_clocks: true
  become: true

- name: See what would be removed from a service account's home
  gpuops.preflight.hip_cache_cleanup:
    home_dirs: [/srv/prng]
  check_mode: true
  diff: true
"""

RETURN = r"""
removed:
  description: The cache paths removed (in check mode, those that would be).
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The removed path.
      type: str
      returned: always
    bytes:
      description: Bytes under it (lstat sizes of files and links; links not followed).
      type: int
      returned: always
    kind:
      description: "V(dir), V(file) or V(symlink) (only the link was removed)."
      type: str
      returned: always
  sample:
    - path: /home/prng/.cache/miopen
      bytes: 73400320
      kind: dir
bytes_freed:
  description: Bytes freed (in check mode, that would be freed), including what was freed from a tree that could only be partly removed.
  returned: always
  type: int
  sample: 73400320
skipped_paths:
  description:
    - Paths left alone on purpose, with the reason (a symlinked cache root, the kept MIOpen user database, a missing home).
    - Not called C(skipped), a result key that Ansible reserves to mark a task skipped.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The path left alone.
      type: str
      returned: always
    reason:
      description: Why.
      type: str
      returned: always
errors:
  description: Paths that could not be looked at or removed (permissions, files in use); each also gives a warning.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The path that could not be removed.
      type: str
      returned: always
    message:
      description: One line that names the path and the reason.
      type: str
      returned: always
clocks:
  description:
    - What the clock reset did (C(needed), C(reset) (those read back at C(auto)), C(gpus) with levels before and
      after, C(problems), C(unverified) (levels that could not be read, also given as warnings), C(unsupported)).
  returned: when O(reset_clocks=true)
  type: dict
diff:
  description: The cache paths present before and left after (in check mode, that would be left), one path a line.
  returned: in diff mode
  type: dict
  contains:
    before:
      description: Cache paths present, each followed by a newline.
      type: str
      returned: always
    after:
      description: Cache paths remaining, each followed by a newline.
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

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpuops.preflight.plugins.module_utils import _caches, _clocks


def main():
    module = AnsibleModule(
        argument_spec=dict(
            users=dict(type="list", elements="str", default=[]),
            home_dirs=dict(type="list", elements="path", default=[]),
            include_miopen_user_db=dict(type="bool", default=False),
            framework_caches=dict(type="bool", default=False),
            extra_paths=dict(type="list", elements="str", default=[]),
            reset_clocks=dict(type="bool", default=False),
            rocm_smi=dict(type="str", default="rocm-smi"),
            sysfs_root=dict(type="path", default="/sys"),
            timeout=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        if params["reset_clocks"] and params["timeout"] <= 0:
            raise ValueError("timeout must be a positive number of seconds, not %s" % params["timeout"])
        patterns = _caches.cache_patterns(params["include_miopen_user_db"], params["extra_paths"],
                                          framework_caches=params["framework_caches"])
        keep = _caches.keep_paths(params["include_miopen_user_db"])
        homes = _caches.resolve_homes(params["users"], params["home_dirs"])
        find_errors = []
        targets, skipped = _caches.find_cache_targets(homes, patterns, keep=keep, errors=find_errors)
    except ValueError as exc:
        module.fail_json(msg=str(exc), changed=False)

    removed, remove_errors, bytes_freed = _caches.remove_targets(targets, module.check_mode)
    errors = find_errors + remove_errors
    for error in errors:
        module.warn(error["message"])
    # "skipped" is a reserved result key (Ansible turns it into a bool and marks the task skipped).
    result = dict(changed=bool(removed) or bytes_freed > 0, removed=removed, bytes_freed=bytes_freed,
                  skipped_paths=skipped, errors=errors)
    if module._diff:
        before = [t["path"] for t in targets]
        if module.check_mode:
            gone = set(r["path"] for r in removed)
            after = [p for p in before if p not in gone]
        else:
            after = [p for p in before if os.path.lexists(p)]
        # One path a line: the callbacks can only show a diff of text (or of a dict), not of a list.
        result["diff"] = {"before": "".join(p + "\n" for p in before), "after": "".join(p + "\n" for p in after),
                          "before_header": "GPU cache paths", "after_header": "GPU cache paths"}

    if params["reset_clocks"]:
        clocks = _clocks.reset_clocks(module, rocm_smi=params["rocm_smi"], sysfs_root=params["sysfs_root"],
                                      timeout=params["timeout"], check_mode=module.check_mode)
        result["clocks"] = clocks
        result["changed"] = result["changed"] or clocks["changed"]
        for text in clocks["problems"] + clocks["unverified"]:
            module.warn(text)

    module.exit_json(**result)


if __name__ == "__main__":
    main()
