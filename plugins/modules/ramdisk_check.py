#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: ramdisk_check
short_description: Check that a step's files are staged in the ramdisk
version_added: 1.0.0
description:
  - Checks the required files of one pipeline step in the ramdisk folder C(<root>/step<step>/), the
    step's input files, and that the ramdisk root is a tmpfs with enough free space.
  - A required file must be named inside the step folder (no absolute name, no C(..) component, no
    symlink that leads out of the folder), present, a regular file, readable, non-empty, valid JSON
    where O(validate_json) asks for it, and younger than O(max_age) when that is set. Symlinks that
    stay inside the step folder are followed.
  - Every problem is reported, not only the first. When there is any that is not unknown (see
    RV(problems[].unknown)), the module fails with a message that lists those, and still returns RV(problems),
    RV(files), RV(inputs) and RV(space).
  - A problem that could not be told (RV(problems[].unknown)) is never a pass and never a fault. Each is given as a
    warning and returned in RV(problems), with RV(ok) false; when there are only such problems the task does not fail.
  - The module only reads; it never writes anything and always returns C(changed=false).
options:
  root:
    description: The ramdisk folder that holds the step folders, an absolute path (a relative one is refused).
    type: path
    default: /dev/shm/prng
  step:
    description:
      - The pipeline step, a number of 0 or more, whole or decimal (V(3), V(2.5)); its folder is C(<root>/step<step>/)
        with the step in its shortest form (C(step3), C(step2.5)), unless O(folder) names it.
    type: str
    required: true
  folder:
    description: The step's folder under O(root) when the pipeline names it otherwise than C(step<step>).
    type: str
    version_added: 2.0.0
  files:
    description:
      - Names of the step's required files, relative to the step folder (C(sub/name.json) is allowed).
      - A missing step folder is reported as one problem that names each of these files.
    type: list
    elements: str
    default: []
  inputs:
    description:
      - Absolute paths of the step's input files. They must exist and be readable, regular, non-empty
        files, younger than O(max_age) when that is set. They are not parsed as JSON.
    type: list
    elements: path
    default: []
  validate_json:
    description:
      - Which required files are parsed as JSON. V(auto) parses names that end in C(.json).
      - Files larger than 64 MiB are not parsed; RV(files) says so.
    type: str
    choices: [auto, always, never]
    default: auto
  max_age:
    description: When set, required files and inputs last modified more than this many seconds ago are a problem.
    type: int
  require_tmpfs:
    description: Report a problem when the ramdisk root is not on a tmpfs filesystem.
    type: bool
    default: true
  min_free_mb:
    description:
      - When set, less free space than this many MiB (1024 x 1024 bytes) in the ramdisk root is a problem.
      - When this or O(min_free_percent) is set, a filesystem with under 1% of its inodes free is a problem too
        (V(low_inodes)), whatever bytes are free.
    type: int
  min_free_percent:
    description: When set, less free space than this percentage of the ramdisk's size is a problem.
    type: float
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads, so check mode changes nothing about what it does.
  diff_mode:
    support: N/A
    details: This action does not modify state.
  platform:
    platforms: posix
notes:
  - Free space is what an unprivileged process may use (C(f_bavail)), in C(f_frsize) units (C(f_bsize) where a FUSE
    or overlay filesystem leaves C(f_frsize) 0). A tmpfs mounted with C(size=0) has no byte limit to judge; a
    filesystem that gives no usable size is reported as such, never as 0 free.
author: [gpuops maintainers (@gpuops)]
"""

EXAMPLES = r"""
- name: Check the files of step 3 before it starts
  gpuops.preflight.ramdisk_check:
    step: 3
    files:
      - train_history.json
      - weights.bin
    inputs:
      - /data/prng/seeds.bin
    max_age: 86400
    min_free_mb: 1024

- name: Check a ramdisk somewhere else, without the tmpfs requirement, and keep going on problems
  gpuops.preflight.ramdisk_check:
    root: /mnt/scratch/prng
    step: 0
    files: [config.json]
    require_tmpfs: false
  register: ramdisk
  failed_when: false
"""

RETURN = r"""
ok:
  description:
    - Whether no problem was found.
    - V(false) also when the only problems are unknown (RV(problems[].unknown)), although the task then does not fail.
  returned: always
  type: bool
  sample: false
problems:
  description: Every problem found.
  returned: always
  type: list
  elements: dict
  contains:
    file:
      description: The required file's name or the input's path as given; null for problems of the folder or the ramdisk.
      type: str
      returned: always
    path:
      description: The full path the problem is about.
      type: str
      returned: always
    problem:
      description: >-
        What is wrong: V(missing_step_folder), V(escapes_root), V(not_absolute), V(missing), V(not_regular),
        V(unreadable) (also a step folder or ramdisk root that cannot be read), V(empty), V(invalid_json),
        V(too_large), V(too_old), V(missing_root) (also a root that is not a directory), V(not_tmpfs),
        V(low_space), V(low_inodes), V(unsafe_root) (the root, or a folder above it, is writable by every user
        without the sticky bit), or V(read_only) (the root is on a read-only mount).
      type: str
      returned: always
    unknown:
      description:
        - V(true) when the problem is that something could not be told (the mount table could not be read, statvfs
          gives no size or more free than the size, a tmpfs mounted with C(size=0) on a host whose C(/proc/meminfo)
          has no C(MemAvailable)), not that the ramdisk is wrong.
        - Also for a path the module is refused (EACCES, EPERM) while the pipeline's user may not be (a folder above
          it that the module's user cannot search, which the message names, or a file its owner or group may read). A
          file no user may read, or behind a folder no user may search, is a problem without it.
        - Such a problem does not fail the task; it is given as a warning too.
      type: bool
      returned: when true
    message:
      description: One line that names the file and its full path.
      type: str
      returned: always
  sample:
    - file: train_history.json
      path: /dev/shm/prng/step3/train_history.json
      problem: missing
      message: train_history.json is missing from /dev/shm/prng/step3/
files:
  description: One entry per required file.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The name as given.
      type: str
      returned: always
    path:
      description: The full path, or null for a name that cannot be a path.
      type: str
      returned: always
    size:
      description: Size in bytes, null when unknown.
      type: int
      returned: always
    mtime:
      description: Last modification time (seconds since the epoch), null when unknown.
      type: float
      returned: always
    age_s:
      description: Seconds since the last modification, null when unknown.
      type: float
      returned: always
    json_checked:
      description: Whether the file was parsed as JSON.
      type: bool
      returned: always
    note:
      description: Why a file that should have been parsed was not (too large), or null.
      type: str
      returned: always
inputs:
  description: One entry per input file, with the keys of RV(files).
  returned: always
  type: list
  elements: dict
space:
  description: The ramdisk root's filesystem.
  returned: always
  type: dict
  contains:
    root:
      description: The root as given.
      type: str
      returned: always
    realpath:
      description: The root with symlinks resolved; null when it does not exist.
      type: str
      returned: always
    mount_point:
      description: The mount point that holds the root.
      type: str
      returned: always
    fstype:
      description: The filesystem type, V(tmpfs) for a ramdisk.
      type: str
      returned: always
    source:
      description: The mount's source.
      type: str
      returned: always
    read_only:
      description: Whether the mount (or its file system) is read-only; null when no mount was found.
      type: bool
      returned: always
    noexec:
      description:
        - Whether the mount is C(noexec); null when no mount was found. Reported, not judged (the step's data is
          read, never run).
      type: bool
      returned: always
    total_bytes:
      description: The filesystem's size; null when statvfs gives none (a tmpfs without a size limit).
      type: int
      returned: always
    free_bytes:
      description:
        - Free bytes available to unprivileged users; null when the size is unknown.
        - For a tmpfs without a size limit, the memory the host has available (C(MemAvailable)).
      type: int
      returned: always
    free_percent:
      description:
        - Free space as a percentage of the size; null when the size is unknown.
        - For a tmpfs without a size limit, C(MemAvailable) as a percentage of C(MemTotal).
      type: float
      returned: always
    inodes_total:
      description: The filesystem's inodes; null when it has no inode limit.
      type: int
      returned: always
    inodes_free:
      description: Inodes available to unprivileged users; null when the filesystem has no inode limit.
      type: int
      returned: always
    note:
      description: Why some of the above is unknown, or null.
      type: str
      returned: always
  sample:
    root: /dev/shm/prng
    realpath: /dev/shm/prng
    mount_point: /dev/shm
    fstype: tmpfs
    source: tmpfs
    read_only: false
    noexec: false
    total_bytes: 33554432000
    free_bytes: 327155712
    free_percent: 0.97
    inodes_total: 4096000
    inodes_free: 4095712
    note: null
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpuops.preflight.plugins.module_utils import _ramdisk, _steps


def run_checks(params):
    """All the checks for the module's parameters: (problems, files, inputs, space). Raises ValueError on bad input."""
    step = _steps.parse_step(params["step"])
    for name in ("max_age", "min_free_mb", "min_free_percent"):
        if params[name] is not None and params[name] < 0:
            raise ValueError("'%s' must be >= 0, not %s" % (name, params[name]))
    if params["min_free_percent"] is not None and params["min_free_percent"] > 100:
        raise ValueError("'min_free_percent' must be <= 100, not %s" % params["min_free_percent"])
    min_free = None if params["min_free_mb"] is None else params["min_free_mb"] * _ramdisk.MIB
    file_problems, files = _ramdisk.check_step_files(params["root"], step, params["files"],
                                                     validate_json=params["validate_json"],
                                                     max_age=params["max_age"], folder=params["folder"])
    input_problems, inputs = _ramdisk.check_input_files(params["inputs"], max_age=params["max_age"])
    space_problems, space = _ramdisk.check_space(params["root"], min_free_bytes=min_free,
                                                 min_free_percent=params["min_free_percent"],
                                                 require_tmpfs=params["require_tmpfs"])
    return space_problems + file_problems + input_problems, files, inputs, space


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", default=_ramdisk.DEFAULT_ROOT),
            step=dict(type="str", required=True),
            folder=dict(type="str"),
            files=dict(type="list", elements="str", default=[]),
            inputs=dict(type="list", elements="path", default=[]),
            validate_json=dict(type="str", choices=list(_ramdisk.VALIDATE_JSON_CHOICES), default="auto"),
            max_age=dict(type="int"),
            require_tmpfs=dict(type="bool", default=True),
            min_free_mb=dict(type="int"),
            min_free_percent=dict(type="float"),
        ),
        supports_check_mode=True,
    )
    try:
        problems, files, inputs, space = run_checks(module.params)
    except ValueError as exc:
        module.fail_json(msg=str(exc), changed=False)
    result = dict(changed=False, ok=not problems, problems=problems, files=files, inputs=inputs, space=space)
    # What could not be told (unknown) is never a pass and never a fault: a warning; only what is wrong fails the task.
    for problem in problems:
        if problem.get("unknown"):
            module.warn(problem["message"])
    wrong = [problem for problem in problems if not problem.get("unknown")]
    if wrong:
        count = "1 problem" if len(wrong) == 1 else "%d problems" % len(wrong)
        module.fail_json(msg="%s: %s" % (count, "; ".join(p["message"] for p in wrong)), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
