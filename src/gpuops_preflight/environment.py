"""The environment of one ansible-playbook run.

ansible-runner starts ansible-playbook with the caller's environment plus these. They make the
run independent of the caller's current folder and shell: the collection's ansible.cfg (its
settings: forks, timeout, gathering, SSH multiplexing, the summary callback, enabled inventory
plugins), the collection path, Ansible's temp files inside the run's private folder, the run's
own temp folder as TMPDIR (``workdir.temp_dir``: what a killed process leaves there goes with the
run), and the run's process marker. ansible-runner would otherwise switch host key checking off; the
ansible.cfg's setting is kept.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping, Sequence

from .locate import DEFAULT_COLLECTIONS_PATHS
from .procs import MARKER

WATCHER_PLUGIN = "gpuops.preflight.watcher_config"
# What build sets (some only for some runs): a caller's envvars may not override it (the marker is how a
# stop finds the run's processes). TMPDIR is not here: a caller may move the run's temp files (WATCHER.md).
RESERVED = frozenset({MARKER, "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_LOCAL_TEMP", "ANSIBLE_NOCOLOR",
                      "ANSIBLE_FORCE_COLOR", "ANSIBLE_RETRY_FILES_ENABLED", "ANSIBLE_DISPLAY_ARGS_TO_STDOUT",
                      "ANSIBLE_INVENTORY_UNPARSED_FAILED", "ANSIBLE_HOST_KEY_CHECKING", "ANSIBLE_CONFIG",
                      "ANSIBLE_INVENTORY_ENABLED"})


def check_extra(extra: Mapping[str, object]) -> None:
    """A caller's envvars: ValueError naming the first that would override the run's own or cannot be passed."""
    for name, value in extra.items():
        if name in RESERVED:
            raise ValueError("envvars: %s is set by the bridge itself and cannot be given" % name)
        if not name or "=" in name or "\0" in name or "\0" in str(value):
            raise ValueError("envvars: %r cannot be passed to a process (empty, '=' or a NUL byte)" % name)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            # str() would pass None as "None" (a proxy named None), a list as its repr
            raise ValueError("envvars: %s must be text or a number, got %r" % (name, value))


def cfg_value(cfg: str | None, section: str, key: str) -> str | None:
    if not cfg:
        return None
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    try:
        parser.read(cfg, encoding="utf-8")
        return parser.get(section, key, fallback=None)
    except configparser.Error:
        return None


def is_watcher_source(source: object) -> bool:
    """A WATCHER config as an inventory: distributed_config.json or a *.watcher.yml plugin config."""
    name = os.path.basename(str(source))
    return name == "distributed_config.json" or name.endswith((".watcher.yml", ".watcher.yaml"))


def build(*, collections_dir: str, private_dir: str, temp_dir: str, token: str, ansible_cfg: str | None,
          inventory: object, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    existing = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.pathsep.join(DEFAULT_COLLECTIONS_PATHS)
    env = {
        MARKER: token,
        "ANSIBLE_COLLECTIONS_PATH": os.pathsep.join([collections_dir, existing]),
        "ANSIBLE_LOCAL_TEMP": os.path.join(private_dir, "tmp"),
        # A module run as another user (become) that cannot write there falls back to /tmp (Python's tempfile).
        "TMPDIR": temp_dir,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        # Task arguments in the events: a failure record's module arguments when the module never ran.
        "ANSIBLE_DISPLAY_ARGS_TO_STDOUT": "True",
        # An inventory that does not parse is an error, not an empty inventory with a warning.
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "ANSIBLE_HOST_KEY_CHECKING": cfg_value(ansible_cfg, "defaults", "host_key_checking") or "True",
    }
    if ansible_cfg:
        env["ANSIBLE_CONFIG"] = ansible_cfg
    sources = inventory if isinstance(inventory, Sequence) and not isinstance(inventory, str) else [inventory]
    if sources and all(isinstance(s, (str, os.PathLike)) and is_watcher_source(s) for s in sources):
        # Ansible's yaml plugin also reads .json files: a malformed distributed_config.json would
        # "parse" as an empty YAML inventory and hide the field-by-field error.
        env["ANSIBLE_INVENTORY_ENABLED"] = WATCHER_PLUGIN
    env.update({str(k): str(v) for k, v in (extra or {}).items()})
    return env
