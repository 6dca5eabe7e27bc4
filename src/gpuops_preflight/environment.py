"""The environment of one ansible-playbook run.

ansible-runner starts ansible-playbook with the caller's environment plus these. They make the
run independent of the caller's current folder and shell: the collection's ansible.cfg (its
settings: forks, timeout, gathering, SSH multiplexing, the summary callback, enabled inventory
plugins), the collection path, Ansible's temp files inside the run's private folder, the run's
own temp folder as TMPDIR (``workdir.temp_dir``: what a killed process leaves there goes with the
run), and the run's process marker. ansible-runner would otherwise switch host key checking off; the
ansible.cfg's setting is kept.

``inventory_plugins`` is the one place that decides which inventory plugin reads a ``.json`` source
(the rule itself: the collection's ``_inventory_sources``, which the watcher_config plugin's verify_file
follows too).
"""

from __future__ import annotations

import configparser
import json
import os
from collections.abc import Mapping, Sequence

from .collection import module_utils
from .locate import DEFAULT_COLLECTIONS_PATHS
from .procs import MARKER

WATCHER_PLUGIN = "gpuops.preflight.watcher_config"
# The yaml inventory plugin's own variable for its file extensions (it wins over ANSIBLE_YAML_FILENAME_EXT and
# the ansible.cfg's yaml_valid_extensions, and changes nothing else: vars files keep theirs).
YAML_EXTENSIONS_ENV = "ANSIBLE_INVENTORY_PLUGIN_EXTS"
YAML_WITH_JSON = ".yaml,.yml,.json"
# Far above any real inventory: a .json source is read whole to know which plugin it is for.
MAX_JSON_INVENTORY_BYTES = 64 * 1024 * 1024
# Files named so in an inventory folder are not inventory sources (Ansible's own rule, IGNORED_ALWAYS).
_FOLDER_SKIPS = ("host_vars", "group_vars", "vars_plugins")
# What build sets (some only for some runs): a caller's envvars may not override it (the marker is how a
# stop finds the run's processes). TMPDIR is not here: a caller may move the run's temp files (WATCHER.md).
RESERVED = frozenset({MARKER, "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_LOCAL_TEMP", "ANSIBLE_NOCOLOR",
                      "ANSIBLE_FORCE_COLOR", "ANSIBLE_RETRY_FILES_ENABLED", "ANSIBLE_DISPLAY_ARGS_TO_STDOUT",
                      "ANSIBLE_INVENTORY_UNPARSED_FAILED", "ANSIBLE_HOST_KEY_CHECKING", "ANSIBLE_CONFIG",
                      "ANSIBLE_INVENTORY_ENABLED", YAML_EXTENSIONS_ENV})


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
    return bool(module_utils("_inventory_sources").is_watcher_source(source))


def _json_files(sources: Sequence[str]) -> list[str]:
    """The .json files among the sources and inside source folders, as Ansible walks a folder (hidden names,
    host_vars, group_vars and vars_plugins skipped; a folder reached twice through links walked once)."""
    found: list[str] = []
    seen: set[str] = set()
    for source in sources:
        if not os.path.isdir(source):
            found.extend([source] if source.endswith(".json") else [])
            continue
        for root, folders, files in os.walk(source, followlinks=True):
            real = os.path.realpath(root)
            if real in seen:
                folders[:] = []
                continue
            seen.add(real)
            folders[:] = sorted(f for f in folders if not f.startswith(".") and f not in _FOLDER_SKIPS)
            found.extend(os.path.join(root, f) for f in sorted(files) if f.endswith(".json") and not f.startswith("."))
    return found


def _json_problem(path: str) -> str | None:
    """Why the .json file ``path`` is not an Ansible inventory (None when it is one)."""
    files, sources = module_utils("_files"), module_utils("_inventory_sources")
    try:
        data = json.loads(files.read_regular(path, MAX_JSON_INVENTORY_BYTES))
    except (files.FileProblem, OSError) as exc:
        return "it cannot be read: %s" % (getattr(exc, "strerror", None) or exc)
    except RecursionError:
        return "it is not valid JSON: nested too deeply"
    except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
        return "it is not valid JSON: %s" % exc
    return sources.json_inventory_problem(data)


def inventory_plugins(inventory: object) -> dict[str, str]:
    """The environment that decides which inventory plugins read the run's sources; ValueError naming a .json
    file that is neither WATCHER's config nor an Ansible inventory (before anything runs).

    Only WATCHER configs: only watcher_config (Ansible's yaml plugin would "parse" a malformed
    distributed_config.json as an empty inventory and hide its field-by-field error). A .json Ansible
    inventory (given, or in a given folder): the yaml plugin also reads .json, as ansible-playbook does by
    default (the collection's ansible.cfg leaves .json to watcher_config, and the ini plugin would take it).
    Else the ansible.cfg's settings."""
    if isinstance(inventory, Mapping) or not inventory:
        return {}  # a dict inventory is written as a .yml file of the run
    sources = [inventory] if isinstance(inventory, (str, os.PathLike)) else list(inventory)
    if not sources or not all(isinstance(s, (str, os.PathLike)) for s in sources):
        return {}
    sources = [os.fspath(s) for s in sources]
    if all(is_watcher_source(s) for s in sources):
        return {"ANSIBLE_INVENTORY_ENABLED": WATCHER_PLUGIN}
    inventories, configs = [], []
    for path in _json_files(sources):
        if is_watcher_source(path):
            configs.append(path)
            continue
        problem = _json_problem(path)
        if problem:
            raise ValueError("inventory %s: a .json inventory must be %s; %s"
                             % (path, module_utils("_inventory_sources").EXPECTED, problem))
        inventories.append(path)
    if not inventories:
        return {}
    if configs:
        # The yaml plugin, once it reads .json, would take a malformed distributed_config.json for an empty inventory.
        raise ValueError("inventory %s is an Ansible inventory in JSON and %s is WATCHER's config: the two cannot be "
                         "read in one run; give WATCHER's config through a *.watcher.yml config (path: %s), or "
                         "the inventory as a .yml file" % (inventories[0], configs[0], configs[0]))
    return {YAML_EXTENSIONS_ENV: YAML_WITH_JSON}


def build(*, collections_dir: str, private_dir: str, temp_dir: str, token: str, ansible_cfg: str | None,
          plugins: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The run's environment; ``plugins``: what ``inventory_plugins`` decided for its inventory."""
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
    env.update(plugins or {})
    env.update({str(k): str(v) for k, v in (extra or {}).items()})
    return env
