"""The package itself: importable without Ansible, how it finds things, codes, run folders."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import gpuops_preflight as gp
from gpuops_preflight import collection, environment, locate, workdir
from bridge.helpers import BIN, REPO

BLOCKED_IMPORT = """
import logging, sys
for name in {names!r}:
    sys.modules[name] = None  # "import name" now raises ImportError
logging.basicConfig(level=logging.WARNING, format="[%(levelname)s] %(message)s", stream=sys.stdout)
import gpuops_preflight as gp
print("available", gp.INTEGRATION_AVAILABLE)
print("reason", gp.UNAVAILABLE_REASON)
report = gp.run_preflight(3, inventory="nowhere.yml")
print("status", report.status, report.blocked_by)
calls = []
result = gp.guard_step(3, lambda: calls.append(1) or {{"success": True}}, inventory="nowhere.yml")
print("guard", result, calls)
"""


def run_blocked(*names):
    done = subprocess.run([sys.executable, "-c", BLOCKED_IMPORT.format(names=list(names))], capture_output=True,
                          text=True, timeout=120, check=False, cwd="/")
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_without_ansible_runner_the_guard_runs_the_step_with_a_warning():
    out = run_blocked("ansible_runner")
    assert "available False" in out
    assert "reason ansible-runner is not installed for %s" % sys.executable in out
    assert "status unavailable preflight_unavailable" in out
    assert "guard {'success': True} [1]" in out
    assert "[WARNING] Preflight unavailable (ansible-runner is not installed" in out
    assert "running step 3 without it" in out


def test_the_package_imports_without_ansible_at_all():
    out = run_blocked("ansible", "ansible_runner", "yaml")
    assert "available False" in out and "guard {'success': True} [1]" in out


def test_it_finds_ansible_playbook_beside_its_interpreter_and_this_clone():
    found = locate.find_integration()
    assert found.playbook_bin == os.path.join(BIN, "ansible-playbook")
    assert found.collection_root == REPO and found.from_clone
    assert found.ansible_cfg == os.path.join(REPO, "ansible.cfg")
    assert gp.INTEGRATION_AVAILABLE is True and gp.UNAVAILABLE_REASON is None


def test_the_clone_is_linked_into_a_private_collections_folder(tmp_path):
    holder = locate.link_collection(locate.find_integration(), str(tmp_path))
    link = os.path.join(holder, "ansible_collections", "gpuops", "preflight")
    assert os.path.islink(link) and os.path.realpath(link) == os.path.realpath(REPO)
    workdir.remove(str(tmp_path))
    assert not os.path.exists(str(tmp_path)) and os.path.isfile(os.path.join(REPO, "galaxy.yml"))


def test_codes_and_labels_come_from_the_collection_s_registry():
    families = collection.module_utils("_families")
    code_of = {}
    for family in families.families().values():
        for name, spec in family.checks.items():
            assert spec.code and spec.label, name
            # one check name, one operator code, whatever the family
            assert code_of.setdefault(name, spec.code) == spec.code, name
    assert len(set(code_of.values())) == len(code_of)  # distinct checks have distinct codes
    assert families.code("gpu_count") == "GPU_COUNT_MISMATCH" and families.label("gpu_health") == "GPU health"
    assert families.code("future_check") == "FUTURE_CHECK"
    assert gp.Item(host="h", check="vram", message="m").code == "VRAM_IN_USE"


def test_run_environment():
    env = environment.build(collections_dir="/c", private_dir="/p", temp_dir="/t", token="t",
                            ansible_cfg=os.path.join(REPO, "ansible.cfg"),
                            plugins=environment.inventory_plugins("/x/distributed_config.json"),
                            extra={"HTTPS_PROXY": "http://proxy:3128"})
    assert env["ANSIBLE_CONFIG"] == os.path.join(REPO, "ansible.cfg")
    assert env["ANSIBLE_COLLECTIONS_PATH"].startswith("/c" + os.pathsep)
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "true"  # the ansible.cfg's, not ansible-runner's False
    assert env["ANSIBLE_LOCAL_TEMP"] == "/p/tmp" and env["GPUOPS_PREFLIGHT_RUN"] == "t" and env["TMPDIR"] == "/t"
    assert env["ANSIBLE_INVENTORY_ENABLED"] == "gpuops.preflight.watcher_config"
    assert env["HTTPS_PROXY"] == "http://proxy:3128"
    other = environment.build(collections_dir="/c", private_dir="/p", temp_dir="/t", token="t", ansible_cfg=None,
                              plugins=environment.inventory_plugins(["/x/hosts.yml", "/x/distributed_config.json"]),
                              extra={"TMPDIR": "/mine"})
    assert "ANSIBLE_INVENTORY_ENABLED" not in other and "ANSIBLE_CONFIG" not in other
    assert other["ANSIBLE_HOST_KEY_CHECKING"] == "True" and other["TMPDIR"] == "/mine"  # the caller's envvars win


def test_kept_run_folders_prune_oldest_first(tmp_path):
    made = []
    for _run in range(4):
        path = workdir.create("preflight", 3, str(tmp_path))
        made.append(workdir.finish(path, keep=2))
        time.sleep(0.01)
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in made[-2:])
    in_progress = workdir.create("preflight", 3, str(tmp_path))
    assert workdir.prune(str(tmp_path), 1) == [made[-2]]
    assert os.path.isdir(in_progress)  # a run in progress is never pruned
    assert workdir.finish(in_progress, keep=0) is None and not os.path.exists(in_progress)


def test_an_installed_collection_is_found_on_the_collections_path(scenario, tmp_path, monkeypatch):
    holder = tmp_path / "installed"
    (holder / "ansible_collections" / "gpuops").mkdir(parents=True)
    os.symlink(REPO, str(holder / "ansible_collections" / "gpuops" / "preflight"))
    monkeypatch.setattr(locate, "clone_root", lambda: None)  # as when the package is not run from a clone
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(holder))
    found = locate.find_integration()
    assert found.collections_dir == str(holder) and not found.from_clone
    sc = scenario("healthy")
    report = gp.run_preflight(sc.step, inventory=sc.inventory, summary_dir=str(tmp_path / "s"),
                              artifacts_dir=str(tmp_path / "runs"))
    assert report.status == "passed", report.reason()
    monkeypatch.setattr(locate, "collection_search_path", lambda: [str(tmp_path / "empty")])
    report = gp.run_preflight(sc.step, inventory=sc.inventory, artifacts_dir=str(tmp_path / "runs"))
    assert report.status == "unavailable" and "collection is not installed" in report.error


def test_every_variable_of_the_runs_environment_but_tmpdir_is_reserved():
    env = environment.build(collections_dir="/c", private_dir="/p", temp_dir="/t", token="t",
                            ansible_cfg=os.path.join(REPO, "ansible.cfg"),
                            plugins=environment.inventory_plugins("/x/distributed_config.json"))
    assert set(env) - {"TMPDIR"} <= environment.RESERVED
    assert environment.YAML_EXTENSIONS_ENV in environment.RESERVED  # set for a .json Ansible inventory
    environment.check_extra({"TMPDIR": "/mine", "HTTPS_PROXY": "http://proxy:3128"})  # the caller's may be set


def test_an_ansible_runner_too_old_makes_the_integration_unavailable_naming_its_version(monkeypatch):
    """ansible-runner 2.3 was taken as the integration (INTEGRATION_AVAILABLE True) though the run passes
    options and reads events of 2.4: now unavailable, saying which version was found and which is needed."""
    monkeypatch.setattr(locate, "_runner_version", lambda: "2.3.6")
    available, reason = locate.availability()
    assert available is False
    assert reason == ("ansible-runner 2.3.6 is installed for %s; the bridge needs 2.4 or newer "
                      "(pip install 'ansible-runner>=2.4')" % sys.executable)
    report = gp.run_preflight(3, inventory="nowhere.yml", log=False)
    assert report.status == "unavailable" and report.error == reason and not report.passed
    assert report.reason() == "Preflight unavailable: %s" % reason


def test_ansible_runner_versions():
    for version in ("2.4.0", "2.4.3", "2.10.1", "3.0.0", "2.4.0rc1"):
        assert locate.runner_version_problem(version) is None, version
    for version in ("2.3.6", "1.4.9", "2", "garbage", ""):
        assert "the bridge needs 2.4 or newer" in locate.runner_version_problem(version), version
    assert locate.runner_version_problem(None) is None  # no package metadata: tried, as before
    assert locate.runner_version_problem(locate._runner_version()) is None  # the one installed here
