"""The serving gate under systemd for real (PID 1 in a podman container).

The host tool and the role serving_gate_unit are applied with ansible-playbook to a container where
the stand-in orchestrator (tests/simserve, a real HTTP server) runs as a unit and a stand-in agent is a
template unit (agent@.service, User=agent). Then: a unit whose gate fails does not start and its
journal shows the gate's reason; a unit whose gate is waiting starts once the orchestrator reports
all ready; the role reads the unit's own TimeoutStartSec and refuses a GATE_TIMEOUT that is not below
it; the sudoers drop-in is checked by the real visudo and the gate runs through sudo for the service
user; the role's second run changes nothing; removing it removes the drop-ins. In order, one container.
"""

from __future__ import annotations

import json
import os
import shutil
import socket

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PLAYBOOK = "tests/systemd/serving_gate_unit.yml"
HOST_TOOL = "tests/systemd/host_tool.yml"
STATE = "/etc/sim/state.json"
READY = "/run/sim-ready"
MODELS = ["org/crawl-7b", "org/tools-3b"]
DROPIN = "50-gpuops-serving-gate.conf"
AGENT_UNIT = """[Unit]
Description=stand-in agent %i (tests/systemd)

[Service]
User=agent
ExecStart=/bin/sleep infinity
"""
SIM_UNIT = """[Unit]
Description=stand-in GPU orchestrator (tests/simserve)

[Service]
ExecStart=/usr/bin/python3 /opt/sim/simserve/__init__.py --port {port} --state {state}
"""
LAYOUT = """
from simserve import store
store.model_dir("/srv/models/org/crawl-7b", shards=2)
store.hf_cache_repo("/srv/models", "org/tools-3b")
store.model_map("/etc/gpuops/agent_models.json", {"crawler": ("org/crawl-7b", "org/crawl-7b"),
                                                  "mcp": ("org/tools-3b", "models--org--tools-3b")})
"""


def free_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The sources the host tool bundles, frozen for this module (the working tree changes meanwhile)."""
    root = tmp_path_factory.mktemp("collection")
    for part in (("plugins", "module_utils"), ("src", "gpuops_preflight")):
        shutil.copytree(os.path.join(REPO, *part), os.path.join(str(root), *part),
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(REPO, "galaxy.yml"), str(root / "galaxy.yml"))
    return {"host_tool_collection_dir": str(root), "host_tool_package_dir": str(root / "src" / "gpuops_preflight")}


@pytest.fixture(scope="module")
def box(systemd_container, sources):
    box = systemd_container
    port = free_port()
    box.url = "http://127.0.0.1:%d" % port
    box.sh("mkdir -p /opt/sim/simserve /etc/sim /etc/gpuops /srv/models && "
           "useradd --system --create-home --home-dir /var/lib/agent agent")
    for name in ("__init__.py", "store.py"):
        box.put(os.path.join(REPO, "tests", "simserve", name), "/opt/sim/simserve/%s" % name)
    box.exec("env", "PYTHONPATH=/opt/sim", "python3", "-c", LAYOUT)
    box.sh("chmod -R a+rX /srv/models /etc/gpuops")
    set_state(box)
    box.write("/etc/systemd/system/sim-orchestrator.service", SIM_UNIT.format(port=port, state=STATE))
    box.write("/etc/systemd/system/agent@.service", AGENT_UNIT)
    box.exec("systemctl", "daemon-reload")
    box.exec("systemctl", "start", "sim-orchestrator.service")
    probe = "import urllib.request; urllib.request.urlopen('%s/health', timeout=2)" % box.url
    box.wait_for("the stand-in orchestrator answering",
                 lambda: box.exec("python3", "-c", probe, check=False).returncode == 0, timeout=30)
    tool = box.playbook(HOST_TOOL, sources)
    assert tool.rc == 0, tool.output[-3000:]
    return box


def set_state(box, **behaviour):
    """The stand-in orchestrator's behaviour (read again on every request)."""
    doc = {"models": MODELS, "ready_file": READY}
    doc.update(behaviour)
    box.write(STATE, json.dumps(doc))


def role(box, **extra):
    base = {"serving_gate_unit_template": "agent@.service", "serving_gate_unit_instances": ["crawler", "mcp"],
            "serving_gate_unit_orchestrator_url": box.url, "serving_gate_unit_model_map": "/etc/gpuops/agent_models.json",
            "serving_gate_unit_store_root": "/srv/models", "serving_gate_unit_timeout": 20,
            "serving_gate_unit_timeout_start_sec": 40}
    base.update(extra)
    return box.playbook(PLAYBOOK, base, groups=("serving_hosts",))


def active(box, unit):
    return box.exec("systemctl", "is-active", unit, check=False).stdout.strip()


def test_role_installs_the_drop_ins_and_a_second_run_changes_nothing(box):
    first = role(box)
    assert first.rc == 0 and first.changed > 0, first.output[-3000:]
    unit = box.exec("systemctl", "cat", "agent@crawler.service").stdout
    assert "ExecStartPre=/usr/local/bin/gpuops-preflight-local gate --instance crawler" in unit
    assert 'Environment="GPU_ORCHESTRATOR_URL=%s"' % box.url in unit
    dropins = box.show("agent@crawler.service", "DropInPaths")["DropInPaths"]
    assert "/etc/systemd/system/agent@crawler.service.d/%s" % DROPIN in dropins
    assert box.show("agent@crawler.service", "TimeoutStartUSec")["TimeoutStartUSec"] == "40s"
    second = role(box)
    assert second.rc == 0 and second.changed == 0, second.output[-3000:]


def test_a_unit_whose_gate_fails_does_not_start_and_the_journal_says_why(box):
    set_state(box, fail={"org/tools-3b": "CUDA out of memory (stand-in): tried to allocate 2.00 GiB"})
    start = box.exec("systemctl", "start", "agent@crawler.service", check=False, timeout=120)
    assert start.returncode != 0
    assert active(box, "agent@crawler.service") == "failed"
    journal = box.journal("agent@crawler.service")
    assert ("agent 'mcp' (model 'org/tools-3b') failed to load; the orchestrator says: CUDA out of memory "
            "(stand-in): tried to allocate 2.00 GiB") in journal
    assert "GATE NOT READY: instance crawler must not start (preload) (exit 1)" in journal
    assert "readable by user 'agent'" in journal  # the store was judged for the unit's User=


def test_a_waiting_unit_starts_once_the_orchestrator_reports_all_ready(box):
    set_state(box)
    box.exec("systemctl", "reset-failed", "agent@crawler.service", check=False)
    box.exec("systemctl", "start", "--no-block", "agent@crawler.service")
    box.wait_for("the gate waiting for the models",
                 lambda: "gate: preload: in progress" in box.journal("agent@crawler.service"), timeout=20)
    assert active(box, "agent@crawler.service") == "activating"
    box.exec("touch", READY)
    box.wait_for("agent@crawler active", lambda: active(box, "agent@crawler.service") == "active", timeout=30)
    assert "GATE READY: instance crawler may start" in box.journal("agent@crawler.service")


def test_the_units_own_timeout_start_sec_is_read_and_checked(box):
    box.write("/etc/systemd/system/agent@.service.d/10-timeout.conf", "[Service]\nTimeoutStartSec=15\n")
    box.exec("systemctl", "daemon-reload")
    refused = role(box, serving_gate_unit_timeout_start_sec=None)
    assert refused.rc != 0
    assert ("GATE_TIMEOUT (20 s) is not below the TimeoutStartSec of agent@crawler.service (15, from "
            "/etc/systemd/system/agent@.service.d/10-timeout.conf)" in " ".join(refused.output.split())), \
        refused.output[-3000:]
    assert "TimeoutStartSec=40" in box.read("/etc/systemd/system/agent@crawler.service.d/%s" % DROPIN)  # unchanged
    box.write("/etc/systemd/system/agent@.service.d/10-timeout.conf", "[Service]\nTimeoutStartSec=1min 30s\n")
    box.exec("systemctl", "daemon-reload")
    accepted = role(box, serving_gate_unit_timeout_start_sec=None)
    assert accepted.rc == 0, accepted.output[-3000:]
    assert "TimeoutStartSec" not in box.read("/etc/systemd/system/agent@crawler.service.d/%s" % DROPIN)
    assert box.show("agent@crawler.service", "TimeoutStartUSec")["TimeoutStartUSec"] == "1min 30s"
    box.exec("rm", "-r", "/etc/systemd/system/agent@.service.d")


def test_sudoers_drop_in_checked_by_visudo_and_the_gate_run_through_sudo(box):
    run = role(box, serving_gate_unit_sudoers=True, serving_gate_unit_service_user="agent")
    assert run.rc == 0, run.output[-3000:]
    path = "/etc/sudoers.d/gpuops-serving-gate-agent"
    assert box.exec("stat", "-c", "%a %U", path).stdout.split() == ["440", "root"]
    assert box.exec("visudo", "-cf", path).returncode == 0
    allowed = box.exec("sudo", "-l", "-U", "agent").stdout
    assert "/usr/local/bin/gpuops-preflight-local gate --instance mcp --url" in allowed
    box.exec("systemctl", "restart", "agent@mcp.service", timeout=120)
    assert active(box, "agent@mcp.service") == "active"
    journal = box.journal("agent@mcp.service")
    assert "GATE READY: instance mcp may start" in journal
    assert "readable by user 'agent'" in journal  # under sudo, still judged for the user who ran it
    # Anything else through sudo is refused to the service user.
    other = box.exec("runuser", "-u", "agent", "--", "sudo", "-n", "/usr/local/bin/gpuops-preflight-local", "gate",
                     "--instance", "mcp", check=False)
    assert other.returncode != 0


def test_removing_the_role_removes_the_drop_ins(box):
    gone = role(box, serving_gate_unit_state="absent")
    assert gone.rc == 0 and gone.changed > 0, gone.output[-3000:]
    assert not box.exists("/etc/systemd/system/agent@crawler.service.d")
    assert not box.exists("/etc/systemd/system/agent@mcp.service.d")
    assert not box.exists("/etc/sudoers.d/gpuops-serving-gate-agent")
    assert "gpuops-preflight-local" not in box.exec("systemctl", "cat", "agent@crawler.service").stdout
    box.exec("rm", "-f", READY)  # not ready: without the gate the unit starts anyway
    box.exec("systemctl", "restart", "agent@crawler.service", timeout=60)
    assert active(box, "agent@crawler.service") == "active"
    again = role(box, serving_gate_unit_state="absent")
    assert again.rc == 0 and again.changed == 0
