"""The host tool's bundle scripts (roles/host_tool/files): the bundle is deterministic, and installing it is
safe: bad members refused, a bundle that does not run here never replaces the one in place, old versions go."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest

from e2e.runner import collection_copy, install_host_tool

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPTS = os.path.join(REPO, "roles", "host_tool", "files")
MODULE_UTILS = os.path.join("ansible_collections", "gpuops", "preflight", "plugins", "module_utils")


def sources(folder):
    """A frozen copy of what is bundled (the working tree may change under a test)."""
    return collection_copy(folder)


def build(root, out):
    done = subprocess.run([sys.executable, os.path.join(SCRIPTS, "make_bundle.py"), "--collection", str(root),
                           "--package", str(root / "src" / "gpuops_preflight"), "--out", str(out)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def install(bundle, root):
    return subprocess.run([sys.executable, os.path.join(SCRIPTS, "install_bundle.py"), "--bundle", str(bundle),
                           "--root", str(root)], capture_output=True, text=True, check=False)


def test_same_sources_same_bundle_and_its_contents(tmp_path):
    root = sources(tmp_path)
    first, second = build(root, tmp_path / "a.tar"), build(root, tmp_path / "b.tar")
    assert first["sha256"] == second["sha256"] and first["version"]
    with tarfile.open(tmp_path / "a.tar") as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("BUNDLE.json"))
    assert "gpuops_preflight/commands/training_watch.py" in names
    assert "ansible_collections/gpuops/preflight/plugins/module_utils/_training_progress.py" in names
    assert "ansible_collections/gpuops/preflight/plugins/__init__.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert manifest["files"] == sorted(n for n in names if n != "BUNDLE.json")
    (root / "src" / "gpuops_preflight" / "collection.py").write_text("# changed\n", encoding="utf-8")
    assert build(root, tmp_path / "c.tar")["sha256"] != first["sha256"]


def test_install_switches_versions_and_removes_the_old_one(tmp_path):
    root = sources(tmp_path)
    build(root, tmp_path / "one.tar")
    opt = tmp_path / "opt"
    done = install(tmp_path / "one.tar", opt)
    first = json.loads(done.stdout)
    assert first["changed"] and os.path.islink(opt / "lib")
    assert (opt / "lib" / "gpuops_preflight" / "__pycache__").is_dir()   # compiled for this interpreter
    (root / "src" / "gpuops_preflight" / "jobs.py").write_text(
        (root / "src" / "gpuops_preflight" / "jobs.py").read_text() + "\n# next version\n")
    build(root, tmp_path / "two.tar")
    second = json.loads(install(tmp_path / "two.tar", opt).stdout)
    assert second["changed"] and second["version"] != first["version"]
    assert os.listdir(opt / "versions") == [second["version"]]


def evil_bundle(path, name, data=b"x"):
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("name", ["../escape.py", "/etc/evil.py", "gpuops_preflight/../../x.py"])
def test_install_refuses_members_leaving_the_folder(tmp_path, name):
    evil_bundle(tmp_path / "evil.tar", name)
    done = install(tmp_path / "evil.tar", tmp_path / "opt")
    assert done.returncode == 1 and "refusing bundle member" in done.stderr
    assert not (tmp_path / "escape.py").exists() and not os.path.lexists(tmp_path / "opt" / "lib")


def test_a_bundle_that_does_not_run_here_never_replaces_the_one_in_place(tmp_path):
    root = sources(tmp_path)
    build(root, tmp_path / "good.tar")
    opt = tmp_path / "opt"
    good = json.loads(install(tmp_path / "good.tar", opt).stdout)
    (root / "src" / "gpuops_preflight" / "cli.py").write_text("def broken(:\n")
    build(root, tmp_path / "bad.tar")
    done = install(tmp_path / "bad.tar", opt)
    assert done.returncode == 1 and "install_bundle:" in done.stderr
    assert os.readlink(opt / "lib") == os.path.join("versions", good["version"])
    assert sorted(os.listdir(opt / "versions")) == [good["version"]]


# -- the command the role installs (templates/gpuops-preflight-local.j2): a tool that cannot run exits 2 -------

def host_tool_role(folder, *args):
    """The host_tool role, run for real into ``folder`` (its command in folder/bin)."""
    return install_host_tool(folder, *args)


def test_the_command_names_its_bundle_and_check_mode_changes_nothing(installed):
    folder = installed.parent.parent
    text = installed.read_text(encoding="utf-8")
    assert 'BUNDLE = "%s"' % os.path.basename(os.path.realpath(folder / "opt" / "lib")) in text
    again = host_tool_role(folder, "--check")
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0\s", again.stdout), again.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("host-tool")
    host_tool_role(folder)
    return folder / "bin" / "gpuops-preflight-local"


@pytest.fixture
def wrapper(installed, tmp_path):
    """A copy of the installed host tool (command and bundle) that a test may break."""
    shutil.copytree(installed.parent.parent / "opt", tmp_path / "opt", symlinks=True)
    text = installed.read_text(encoding="utf-8").replace(str(installed.parent.parent / "opt"), str(tmp_path / "opt"))
    path = tmp_path / "gpuops-preflight-local"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    return path


def local(path, *args):
    return subprocess.run([str(path)] + list(args), capture_output=True, text=True, timeout=120, check=False,
                          cwd=str(path.parent))


def installed_version(wrapper):
    return os.path.realpath(wrapper.parent / "opt" / "lib")


def could_not_run(done, *words, said_by="gpuops-preflight-local: cannot run: "):
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(said_by), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_the_installed_command_runs_its_bundle(wrapper, tmp_path):
    done = local(wrapper, "training-watch", "--once", "--base-dir", str(tmp_path / "nowhere"))
    assert done.returncode == 2 and "nothing to watch" in done.stderr + done.stdout   # the tool's own answer
    assert "cannot run" not in done.stderr


def test_a_bundle_missing_a_module_exits_2_naming_it(wrapper):
    cli = os.path.join(installed_version(wrapper), "gpuops_preflight", "cli.py")
    os.remove(cli)
    shutil.rmtree(os.path.join(os.path.dirname(cli), "__pycache__"))
    could_not_run(local(wrapper, "gate", "--instance", "crawler"), "ModuleNotFoundError", "gpuops_preflight.cli")


def test_a_bundle_whose_checks_do_not_import_exits_2_naming_them(wrapper):
    # the stall check's own code, imported when the command runs (not at the package's import)
    code = os.path.join(installed_version(wrapper), MODULE_UTILS, "_training_progress.py")
    with open(code, "a", encoding="utf-8") as handle:
        handle.write("\nimport gpuops_no_such_module\n")
    could_not_run(local(wrapper, "training-watch", "--once", "--base-dir", "/"), "gpuops_no_such_module",
                  "_training_progress", said_by="gpuops-preflight training-watch: cannot import")


def test_a_bundle_with_a_syntax_error_exits_2(wrapper):
    cli = os.path.join(installed_version(wrapper), "gpuops_preflight", "cli.py")
    with open(cli, "w", encoding="utf-8") as handle:
        handle.write("def broken(:\n")
    could_not_run(local(wrapper, "gate", "--instance", "crawler"), "SyntaxError", "cli.py")


def test_a_failure_while_the_tool_runs_is_one_line_too(wrapper):
    main = os.path.join(installed_version(wrapper), "gpuops_preflight", "__main__.py")
    with open(main, "w", encoding="utf-8") as handle:
        handle.write("raise RuntimeError('first line\\nsecond line')\n")
    could_not_run(local(wrapper, "gate", "--instance", "crawler"), "RuntimeError: first line second line",
                  "__main__.py:1")


def test_a_bundle_of_another_version_exits_2_naming_both(wrapper):
    lib = wrapper.parent / "opt" / "lib"
    mine = os.path.basename(os.path.realpath(lib))
    other = wrapper.parent / "opt" / "versions" / "0123456789abcdef"
    shutil.copytree(os.path.realpath(lib), other)
    os.remove(lib)
    os.symlink(os.path.join("versions", "0123456789abcdef"), lib)
    could_not_run(local(wrapper, "gate", "--instance", "crawler"), "0123456789abcdef", mine)


def test_no_bundle_installed_exits_2(wrapper):
    os.remove(wrapper.parent / "opt" / "lib")
    could_not_run(local(wrapper, "gate", "--instance", "crawler"), "no installed bundle at %s" % (wrapper.parent / "opt" / "lib"))


# -- tasks/start_budget.yml: one rule (and margin) for every gate run as ExecStartPre= ------------------------

def playbook(folder, tasks, extra):
    play = folder / "play.yml"
    play.write_text("- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n" + tasks,
                    encoding="utf-8")
    (folder / "vars.json").write_text(json.dumps(dict(extra, ansible_python_interpreter=sys.executable)),
                                      encoding="utf-8")
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
                           str(play), "-e", "@%s" % (folder / "vars.json")], cwd=REPO,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1"), capture_output=True, text=True, timeout=300,
                          check=False)


BUDGET = ("    - ansible.builtin.include_role:\n        name: gpuops.preflight.host_tool\n"
          "        tasks_from: start_budget\n")


@pytest.mark.parametrize("start, fits", [(35, True), (34.5, False), (31, False), (None, True)])
def test_a_gate_needs_its_budget_plus_the_start_margin(tmp_path, start, fits):
    done = playbook(tmp_path, BUDGET, {"host_tool_gate_role": "some_role", "host_tool_gate_budget": 30,
                                       "host_tool_gate_budget_name": "BUDGET", "host_tool_gate_timeout_start": start,
                                       "host_tool_gate_unit": "x.service (here)", "host_tool_gate_fix": "Fix it."})
    assert (done.returncode == 0) == fits, done.stdout
    if not fits:
        assert ("some_role: BUDGET (30 s) is not below the TimeoutStartSec of x.service (here) by the 5 s the gate "
                "needs beyond BUDGET to start and say its verdict: systemd would kill the gate before it can say why "
                "the unit may not start. Fix it.") in done.stdout


def test_the_training_start_gate_needs_its_checks_time_plus_the_margin(tmp_path):
    done = playbook(tmp_path, "    - ansible.builtin.include_role:\n        name: gpuops.preflight.training_watchdog\n",
                    {"training_watchdog_base_dir": str(tmp_path), "training_watchdog_unit": "train.service",
                     "training_watchdog_start_gate": True, "training_watchdog_start_gate_timeout": 34,
                     "training_watchdog_systemd_dir": str(tmp_path / "systemd"), "host_tool_root": str(tmp_path / "opt"),
                     "host_tool_wrapper": str(tmp_path / "gpuops-preflight-local")})
    assert done.returncode != 0 and ("training_watchdog: the start gate's longest check timeout (30 s) is not below "
                                     "the TimeoutStartSec of train.service (training_watchdog_start_gate_timeout) by "
                                     "the 5 s") in done.stdout, done.stdout
    assert not [name for name in ("systemd", "opt", "gpuops-preflight-local") if (tmp_path / name).exists()]   # before any change


def test_the_training_start_gate_budget_is_its_longest_check_timeout():
    from ansible_collections.gpuops.preflight.plugins.module_utils import _training_health
    import yaml
    with open(os.path.join(REPO, "roles", "training_watchdog", "vars", "main.yml"), encoding="utf-8") as handle:
        declared = yaml.safe_load(handle)["training_watchdog__start_gate_budget"]
    family = _training_health.FAMILY
    assert declared == max(family.checks[name].timeout for name in family.host_checks)


# -- node-run: what a node task runs on a host with the host tool (plugins/plugin_utils/_node_action.py) --------

def test_the_bundle_names_the_digest_the_controller_computes(tmp_path):
    """make_bundle writes into BUNDLE.json the digest a node action computes of the code it would ship: equal for the
    same sources, different when one file differs, so a host runs the checks from its bundle only at this code."""
    sys.path.insert(0, os.path.join(REPO, ".collections"))
    from ansible_collections.gpuops.preflight.plugins.plugin_utils import _host_bundle

    root = sources(tmp_path)
    build(root, tmp_path / "a.tar")
    with tarfile.open(tmp_path / "a.tar") as tar:
        manifest = json.load(tar.extractfile("BUNDLE.json"))
    assert manifest["sources_digest"] == _host_bundle.sources_digest(str(root))
    assert _host_bundle.sources_digest(REPO) == _host_bundle.sources_digest(str(root))   # the copy is this tree
    (root / "plugins" / "module_utils" / "_training_checks.py").write_text("# changed\n", encoding="utf-8")
    assert _host_bundle.sources_digest(str(root)) != manifest["sources_digest"]
    assert _host_bundle.sources_digest(str(tmp_path / "nothing-here")) is None


def node_run(wrapper, request):
    done = subprocess.run([str(wrapper), "node-run"], input=request if isinstance(request, bytes) else
                          json.dumps(request).encode(), capture_output=True, timeout=120, check=False)
    return done.returncode, json.loads(done.stdout.decode().strip().splitlines()[-1]), done.stderr.decode()


def bundle_digest(wrapper):
    with open(os.path.join(installed_version(wrapper), "BUNDLE.json"), encoding="utf-8") as handle:
        return json.load(handle)["sources_digest"]


@pytest.mark.parametrize("request_body, why", [
    (b"not json", "the request is not JSON"),
    ({"protocol": 2}, "not a node-run request of protocol 1"),
    ({"protocol": 1, "sources_digest": "0" * 64, "kind": "training_health", "params": {}},
     "the bundle holds other code"),
    (b" " * (1 << 20) + b"{}", "the request is over 1048576 bytes"),
])
def test_node_run_runs_nothing_it_is_not_sure_of(wrapper, request_body, why):
    rc, answer, stderr = node_run(wrapper, request_body)
    assert (rc, answer["gpuops_node_run"], answer["ran"]) == (3, 1, False), (answer, stderr)
    assert answer["why"].startswith(why), answer


def test_node_run_refuses_an_unknown_family_and_reports_bad_options_as_the_module_would(wrapper, tmp_path):
    digest = bundle_digest(wrapper)
    rc, answer, _err = node_run(wrapper, {"protocol": 1, "sources_digest": digest, "kind": "nope", "params": {}})
    assert rc == 3 and "unknown kind 'nope'" in answer["why"]
    # options the controller validated for type, but wrong for the family: the module's own refusal, every problem
    sys.path.insert(0, os.path.join(REPO, ".collections"))
    from ansible_collections.gpuops.preflight.plugins.module_utils import _options, _training_health

    params = _options.defaults(_options.argument_spec(_training_health.FAMILY, **_training_health.OPTIONS))
    params.update(training_base_dir="~/train", gpu_tool_timeout=0, timeouts={"no_such_check": 5})
    rc, answer, _err = node_run(wrapper, {"protocol": 1, "sources_digest": digest, "kind": "training_health",
                                          "params": params})
    assert (rc, answer["ran"], answer["result"]["failed"]) == (0, True, True)
    assert "timeouts: unknown check 'no_such_check'" in answer["result"]["msg"]
    assert "gpu_tool_timeout" in answer["result"]["msg"]
    # a path option is expanded on the host, with its home, as AnsibleModule expands type=path
    assert answer["result"]["invocation"]["module_args"]["training_base_dir"] == os.path.expanduser("~/train")
