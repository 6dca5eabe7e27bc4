"""Run the real playbooks from the repository root and read the summary each run writes."""

from __future__ import annotations

import glob
import json
import os
import pathlib
import shutil
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.dirname(sys.executable)


class Run(object):
    def __init__(self, proc, summary, summary_dir):
        self.rc = proc.returncode
        self.output = proc.stdout
        self.summary = summary
        self.summary_dir = summary_dir

    def items(self, kind):
        return [(i["host"], i["check"], i["message"]) for i in self.summary[kind]]

    def host(self, name):
        return self.summary["hosts"][name]


def run_playbook(playbook, inventory, step, summary_dir, *extra, flags=()):
    """ansible-playbook from the repository root (its ansible.cfg applies); returns a Run.

    ``extra``: extra variables (-e each); ``flags``: other ansible-playbook options, e.g. ("--check",)."""
    before = set(glob.glob(os.path.join(summary_dir, "*.json")))
    cmd = [os.path.join(BIN, "ansible-playbook"), "-i", inventory, os.path.join("playbooks", playbook),
           "-e", "step=%s" % step, "-e", "preflight_summary_dir=%s" % summary_dir] + list(flags)
    for item in extra:
        cmd += ["-e", item if isinstance(item, str) else json.dumps(item)]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=300, check=False)
    written = sorted(set(glob.glob(os.path.join(summary_dir, "*.json"))) - before)
    summary = None
    if written:
        assert len(written) == 1, written  # one summary file per run
        with open(written[0]) as handle:
            summary = json.load(handle)
    return Run(proc, summary, summary_dir)


def run_family_playbook(kind, inventory, folder, *extra, flags=()):
    """ansible-playbook playbooks/<kind>.yml for a family without steps (training_health, serving_gate), its
    summaries in <folder>/summaries (the role's <kind>_summary_dir); returns a Run with the one summary it wrote."""
    summaries = os.path.join(str(folder), "summaries")
    before = set(os.listdir(summaries)) if os.path.isdir(summaries) else set()
    cmd = [os.path.join(BIN, "ansible-playbook"), "-i", inventory, os.path.join("playbooks", kind + ".yml"),
           "-e", "%s_summary_dir=%s" % (kind, summaries)] + list(flags)
    for item in extra:
        cmd += ["-e", item if isinstance(item, str) else json.dumps(item)]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=300, check=False)
    written = sorted(set(os.listdir(summaries)) - before) if os.path.isdir(summaries) else []
    summary = None
    if written:
        assert len(written) == 1 and written[0].startswith(kind + "_"), written
        with open(os.path.join(summaries, written[0]), encoding="utf-8") as handle:
            summary = json.load(handle)
    return Run(proc, summary, summaries)


def collection_copy(folder):
    """A frozen copy of what the host tool bundles (plugins/module_utils, src/gpuops_preflight, galaxy.yml) in
    <folder>/collection: a test may change it while the working tree stays as it is. Returns its path."""
    root = pathlib.Path(str(folder)) / "collection"
    for part in (("plugins", "module_utils"), ("src", "gpuops_preflight")):
        shutil.copytree(os.path.join(REPO, *part), root.joinpath(*part), ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(REPO, "galaxy.yml"), root / "galaxy.yml")
    return root


def install_host_tool(folder, *args, collection=None):
    """The gpuops.preflight.host_tool role, run for real (ansible-playbook, local connection) into ``folder``: the
    command at <folder>/bin/gpuops-preflight-local, its bundle under <folder>/opt; built from ``collection`` (a copy
    of the collection with its src/gpuops_preflight) when given, else this one. ``args``: more ansible-playbook
    options ("--check"). Returns the finished process; fails the test when the role failed."""
    folder = str(folder)
    os.makedirs(os.path.join(folder, "bin"), exist_ok=True)
    play = os.path.join(folder, "host-tool.yml")
    with open(play, "w", encoding="utf-8") as handle:
        handle.write("- hosts: localhost\n  connection: local\n  gather_facts: false\n  roles:\n"
                     "    - role: gpuops.preflight.host_tool\n")
    extra = {"host_tool_root": os.path.join(folder, "opt"),
             "host_tool_wrapper": os.path.join(folder, "bin", "gpuops-preflight-local"),
             "host_tool_python": sys.executable, "ansible_python_interpreter": sys.executable}
    if collection is not None:
        extra.update(host_tool_collection_dir=str(collection),
                     host_tool_package_dir=os.path.join(str(collection), "src", "gpuops_preflight"))
    with open(os.path.join(folder, "host-tool-vars.json"), "w", encoding="utf-8") as handle:
        json.dump(extra, handle)
    done = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", play,
                           "-e", "@" + os.path.join(folder, "host-tool-vars.json")] + list(args), cwd=REPO,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done
