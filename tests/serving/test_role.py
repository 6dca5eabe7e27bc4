"""Role gpuops.preflight.serving_gate_unit with the real ansible-playbook, into a temp systemd folder:
the drop-ins' content, idempotence, check mode, the timeout rule, the sudoers drop-in's validation
(the real visudo runs in the systemd container test; here a stand-in shows the role calls it and
installs nothing it refused), removal. The units themselves start for real in tests/systemd."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from ansible_collections.gpuops.preflight.roles.serving_gate_unit.files import timeout_start

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.dirname(sys.executable)
DROPIN = "50-gpuops-serving-gate.conf"


class Role(object):
    def __init__(self, base):
        self.base = str(base)
        self.systemd = os.path.join(self.base, "systemd")
        self.sudoers = os.path.join(self.base, "sudoers.d")
        os.makedirs(self.sudoers)
        self.playbook = os.path.join(self.base, "play.yml")
        with open(self.playbook, "w") as handle:
            handle.write("- hosts: localhost\n  connection: local\n  gather_facts: false\n  roles:\n"
                         "    - role: gpuops.preflight.serving_gate_unit\n")

    def vars(self, **extra):
        base = {"serving_gate_unit_template": "agent@.service", "serving_gate_unit_instances": ["crawler", "mcp"],
                "serving_gate_unit_model_map": "/etc/gpuops/agent_models.json",
                "serving_gate_unit_store_root": "/srv/models", "serving_gate_unit_systemd_dir": self.systemd,
                "serving_gate_unit_sudoers_dir": self.sudoers, "serving_gate_unit_daemon_reload": False,
                "serving_gate_unit_timeout_start_sec": 360, "ansible_python_interpreter": sys.executable,
                "serving_gate_unit_python": sys.executable}
        base.update(extra)
        return base

    def run(self, *args, **extra):
        path = os.path.join(self.base, "vars.json")
        with open(path, "w") as handle:
            json.dump(self.vars(**extra), handle)
        proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", self.playbook,
                               "-e", "@" + path] + list(args), cwd=ROOT,
                              env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=300,
                              check=False)
        recap = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", proc.stdout)
        proc.changed = int(recap.group(2)) if recap else None
        proc.failed = int(recap.group(3)) if recap else None
        return proc

    def files(self):
        out = []
        for folder in (self.systemd, self.sudoers):
            for path, _dirs, names in os.walk(folder):
                out.extend(os.path.relpath(os.path.join(path, n), self.base) for n in names)
        return sorted(out)

    def read(self, rel):
        with open(os.path.join(self.base, rel)) as handle:
            return handle.read()


@pytest.fixture
def role(tmp_path):
    return Role(tmp_path)


def test_drop_ins_idempotent_and_removed(role):
    first = role.run()
    assert first.returncode == 0 and first.failed == 0 and first.changed == 2, first.stdout
    assert role.files() == ["systemd/agent@crawler.service.d/%s" % DROPIN, "systemd/agent@mcp.service.d/%s" % DROPIN]
    text = role.read("systemd/agent@crawler.service.d/%s" % DROPIN)
    assert "\n[Service]\n" in text
    assert 'Environment="GPU_ORCHESTRATOR_URL=http://127.0.0.1:8014"\n' in text
    assert 'Environment="AGENT_MODEL_MAP=/etc/gpuops/agent_models.json"\n' in text
    assert 'Environment="MODEL_STORE_ROOT=/srv/models"\n' in text
    assert 'Environment="STRICT_MODEL_STORE=1"\n' in text and 'Environment="GATE_TIMEOUT=300"\n' in text
    assert 'Environment="REQUIRE_MPS=0"\n' in text and 'Environment="REQUIRE_BUS=0"\n' in text
    assert "\nTimeoutStartSec=360\n" in text
    assert text.rstrip().endswith("\nExecStartPre=/usr/local/bin/gpuops-preflight-local gate --instance crawler")
    again = role.run()
    assert again.returncode == 0 and again.changed == 0, again.stdout
    gone = role.run(serving_gate_unit_state="absent")
    assert gone.returncode == 0 and gone.changed > 0
    assert role.files() == [] and os.listdir(role.systemd) == []
    assert role.run(serving_gate_unit_state="absent").changed == 0


def test_check_mode_changes_nothing(role):
    proc = role.run("--check")
    assert proc.returncode == 0 and proc.changed == 2
    assert not os.path.exists(role.systemd)


def test_instances_no_longer_named_lose_the_gate_but_keep_their_other_drop_ins(role):
    assert role.run().returncode == 0
    other = os.path.join(role.systemd, "agent@mcp.service.d", "10-local.conf")
    with open(other, "w") as handle:
        handle.write("[Service]\nNice=5\n")
    proc = role.run(serving_gate_unit_instances=["crawler"])
    assert proc.returncode == 0 and proc.changed == 1
    assert role.files() == ["systemd/agent@crawler.service.d/%s" % DROPIN, "systemd/agent@mcp.service.d/10-local.conf"]
    assert role.run(serving_gate_unit_state="absent").returncode == 0
    assert role.files() == ["systemd/agent@mcp.service.d/10-local.conf"]


def test_values_are_quoted_for_systemd(role):
    proc = role.run(serving_gate_unit_environment={"NOTE": '100% "sure" \\ $HOME'},
                    serving_gate_unit_instances=["crawler"])
    assert proc.returncode == 0, proc.stdout
    text = role.read("systemd/agent@crawler.service.d/%s" % DROPIN)
    assert 'Environment="NOTE=100%% \\"sure\\" \\\\ $HOME"\n' in text


@pytest.mark.parametrize("extra, expected", [
    ({"serving_gate_unit_timeout_start_sec": "5min"},
     "GATE_TIMEOUT (300 s) is not below the TimeoutStartSec of agent@crawler.service (5min, from "
     "serving_gate_unit_timeout_start_sec) by the 5 s the gate needs beyond GATE_TIMEOUT to start and say its "
     "verdict: systemd would kill the gate"),
    # below, but by less than the gate needs to start and print its verdict after GATE_TIMEOUT
    ({"serving_gate_unit_timeout_start_sec": "90", "serving_gate_unit_timeout": 86},
     "GATE_TIMEOUT (86 s) is not below the TimeoutStartSec of agent@crawler.service (90, from "
     "serving_gate_unit_timeout_start_sec) by the 5 s"),
    ({"serving_gate_unit_timeout_start_sec": "soon"},
     "cannot tell the TimeoutStartSec of agent@crawler.service: not a systemd time span: 'soon'"),
    ({"serving_gate_unit_template": "agent.service"}, "serving_gate_unit_template must be a template unit"),
    ({"serving_gate_unit_instances": ["crawler", "bad name"]}, "serving_gate_unit_instances a list of instance names"),
    ({"serving_gate_unit_model_map": "relative.json"}, "serving_gate_unit_model_map (an absolute path)"),
    ({"serving_gate_unit_store_root": ""}, "required while serving_gate_unit_strict_model_store is true"),
    ({"serving_gate_unit_environment": {"X": "a\nb"}}, "no control characters in any setting"),
    # not required, but still passed on as BUS_URL: the gate would refuse it (exit 2) at every start
    ({"serving_gate_unit_bus_url": "http://svc:S3cret@bus:9000/health"},
     "serving_gate_unit_bus_url 'http://***@bus:9000/health': user names or passwords in the URL are not supported"),
    ({"serving_gate_unit_require_bus": True}, "required with serving_gate_unit_require_bus"),
    # GATE_TIMEOUT set here would bypass the rule above: systemd would kill the gate before its verdict
    ({"serving_gate_unit_environment": {"GATE_TIMEOUT": "600", "PRELOAD_REFRESH": "1"}},
     "serving_gate_unit_environment sets GATE_TIMEOUT: give serving_gate_unit_timeout instead"),
    ({"serving_gate_unit_environment": {"BUS_URL": "http://u:p@bus:9000", "GPU_ORCHESTRATOR_URL": "http://o:1"}},
     "serving_gate_unit_environment sets GPU_ORCHESTRATOR_URL, BUS_URL: give serving_gate_unit_orchestrator_url, "
     "serving_gate_unit_bus_url instead"),
    ({"serving_gate_unit_sudoers": True}, "the sudoers drop-in needs serving_gate_unit_service_user"),
])
def test_bad_settings_fail_before_anything_changes(role, extra, expected):
    proc = role.run(**extra)
    assert proc.returncode != 0 and proc.failed == 1
    assert expected in " ".join(proc.stdout.split()), proc.stdout
    assert not os.path.exists(role.systemd)


# The gate's own rule (_serving.url_problem, through the filter gpuops.preflight.url_problem), in its words, naming
# the variable: each of these passed the role's former regex, then the gate refused it at every start of the unit.
@pytest.mark.parametrize("variable", ["serving_gate_unit_orchestrator_url", "serving_gate_unit_bus_url"])
@pytest.mark.parametrize("url, expected", [
    ("http://h:99999", "'http://h:99999': port 99999 is out of range"),
    ("http://[::1", "'http://[::1' has no valid host[:port]"),
    ("http://h:abc", "'http://h:abc' has no valid host[:port]"),
    ("http://[1.2.3.4]:8014", "'http://[1.2.3.4]:8014': [1.2.3.4] is not an IPv6 address"),
    ("http://h/\u00e9", "'http://h/\u00e9': white space, control characters and non-ASCII characters are not allowed"),
])
def test_a_url_the_gate_would_refuse_fails_in_the_gates_words(role, variable, url, expected):
    proc = role.run(**{variable: url})
    assert proc.returncode != 0 and proc.failed == 1, proc.stdout
    assert "serving_gate_unit: %s %s" % (variable, expected) in " ".join(proc.stdout.split()), proc.stdout
    assert not os.path.exists(role.systemd)


def test_an_empty_orchestrator_url_is_refused_and_an_empty_bus_url_means_no_bus(role):
    proc = role.run(serving_gate_unit_orchestrator_url="")
    assert proc.returncode != 0 and "serving_gate_unit_orchestrator_url is empty: expected e.g. " \
        "http://127.0.0.1:8014" in " ".join(proc.stdout.split()), proc.stdout
    for empty in ("", None):
        proc = role.run(serving_gate_unit_bus_url=empty)
        assert proc.returncode == 0, proc.stdout
        assert "BUS_URL" not in role.read("systemd/agent@crawler.service.d/%s" % DROPIN)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8014", "https://[::1]:8443/health", "http://orchestrator.local/ready"])
def test_urls_the_gate_takes_are_taken(role, url):
    proc = role.run(serving_gate_unit_orchestrator_url=url, serving_gate_unit_bus_url=url,
                    serving_gate_unit_require_bus=True)
    assert proc.returncode == 0 and proc.failed == 0, proc.stdout
    text = role.read("systemd/agent@crawler.service.d/%s" % DROPIN)
    assert url in text and "BUS_URL" in text


def test_timeouts_in_systemd_spans_below_the_gate_pass(role):
    proc = role.run(serving_gate_unit_timeout_start_sec="1min 30s", serving_gate_unit_timeout=60)
    assert proc.returncode == 0, proc.stdout
    assert "\nTimeoutStartSec=1min 30s\n" in role.read("systemd/agent@crawler.service.d/%s" % DROPIN)
    assert role.run(serving_gate_unit_timeout_start_sec="infinity").returncode == 0
    assert role.run(serving_gate_unit_timeout_start_sec="90", serving_gate_unit_timeout=85).returncode == 0


def stand_in_visudo(base, verdict):
    """A visudo that records what it was asked to check and answers ``verdict`` (0 or 1)."""
    path = os.path.join(str(base), "visudo")
    with open(path, "w") as handle:
        handle.write("#!/bin/sh\n[ \"$1\" = -cf ] || exit 2\ncp \"$2\" %s/checked\necho \"$2: parsed OK\"\nexit %d\n"
                     % (base, verdict))
    os.chmod(path, 0o755)
    return path


def test_sudoers_drop_in_is_validated_and_the_units_call_the_gate_through_sudo(role):
    visudo = stand_in_visudo(role.base, 0)
    proc = role.run(serving_gate_unit_sudoers=True, serving_gate_unit_service_user="svc",
                    serving_gate_unit_visudo=visudo, serving_gate_unit_bus_url="http://bus:9000/ready",
                    serving_gate_unit_require_bus=True)
    assert proc.returncode == 0, proc.stdout
    sudoers = role.read("sudoers.d/gpuops-serving-gate-agent")
    assert sudoers == role.read("checked")
    assert oct(os.stat(os.path.join(role.sudoers, "gpuops-serving-gate-agent")).st_mode & 0o777) == "0o440"
    flags = ("--url http\\://127.0.0.1\\:8014 --model-map /etc/gpuops/agent_models.json --timeout 300 "
             "--strict-model-store 1 --store-root /srv/models --require-bus http\\://bus\\:9000/ready")
    assert ("Cmnd_Alias GPUOPS_SERVING_GATE_AGENT = \\\n"
            "    /usr/local/bin/gpuops-preflight-local gate --instance crawler %s, \\\n"
            "    /usr/local/bin/gpuops-preflight-local gate --instance mcp %s\n"
            "svc ALL = (root) NOPASSWD: GPUOPS_SERVING_GATE_AGENT\n" % (flags, flags)) in sudoers
    unit = role.read("systemd/agent@mcp.service.d/%s" % DROPIN)
    assert ("\nExecStartPre=/usr/bin/sudo -n -- /usr/local/bin/gpuops-preflight-local gate --instance mcp --url "
            "http://127.0.0.1:8014 --model-map /etc/gpuops/agent_models.json --timeout 300 --strict-model-store 1 "
            "--store-root /srv/models --require-bus http://bus:9000/ready\n") in unit
    assert role.run(serving_gate_unit_sudoers=True, serving_gate_unit_service_user="svc",
                    serving_gate_unit_visudo=visudo, serving_gate_unit_bus_url="http://bus:9000/ready",
                    serving_gate_unit_require_bus=True).changed == 0
    # Not asked any more: the sudoers drop-in goes, the units call the gate directly (two tasks changed).
    assert role.run().changed == 2
    assert role.files() == ["systemd/agent@crawler.service.d/%s" % DROPIN, "systemd/agent@mcp.service.d/%s" % DROPIN]


def test_a_sudoers_drop_in_that_visudo_refuses_is_not_installed(role):
    proc = role.run(serving_gate_unit_sudoers=True, serving_gate_unit_service_user="svc",
                    serving_gate_unit_visudo=stand_in_visudo(role.base, 1))
    assert proc.returncode != 0 and "failed to validate" in proc.stdout
    assert not os.path.exists(os.path.join(role.sudoers, "gpuops-serving-gate-agent"))


@pytest.mark.parametrize("text, seconds", [
    ("90", 90.0), ("90s", 90.0), ("1min 30s", 90.0), ("1min30s", 90.0), ("5m", 300.0), ("500ms", 0.5),
    ("2h", 7200.0), ("1.5min", 90.0), ("infinity", None), ("0", None),
    # systemd reads TimeoutStartSec= with parse_sec_fix_0: a span of 0 in any spelling is no timeout
    ("0s", None), ("0 min", None), ("00", None), ("2\u03bcs", 2e-6), ("2\u00b5s", 2e-6),
])
def test_systemd_time_spans(text, seconds):
    assert timeout_start.span(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-1", "", "5 parsecs", "1min x"])
def test_bad_time_spans(text):
    with pytest.raises(ValueError, match="not a systemd time span"):
        timeout_start.span(text)


def test_a_systemctl_that_never_answers_is_an_error_not_a_hang(tmp_path, monkeypatch, capsys):
    stand_in = tmp_path / "systemctl"
    stand_in.write_text("#!/bin/sh\nexec sleep 60\n")
    stand_in.chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (tmp_path, os.environ["PATH"]))
    monkeypatch.setattr(timeout_start, "SHOW_TIMEOUT", 0.2)
    assert timeout_start.main(["--unit", "agent@crawler.service", "--ignore", DROPIN]) == 0
    assert json.loads(capsys.readouterr().out) == {"error": "systemctl show agent@crawler.service "
                                                            "--property=FragmentPath,DropInPaths,Type: no answer within "
                                                            "0.2 s (is systemd answering?)"}


def test_unit_file_assignments_of_the_service_section(tmp_path):
    path = tmp_path / "agent@.service"
    path.write_text("[Unit]\nTimeoutStartSec=1\n# TimeoutStartSec=2\n[Service]\nExecStart=/bin/a \\\n  --b\n"
                    "; comment\nTimeoutSec=30\nTimeoutStartSec=\n")
    assert list(timeout_start.assignments(str(path))) == [("ExecStart", "/bin/a    --b"), ("TimeoutSec", "30"),
                                                          ("TimeoutStartSec", "")]


def stand_in_unit(tmp_path, monkeypatch, drop_ins):
    """agent@.service and its drop-ins {path under tmp_path: text}, as systemctl show would list them."""
    fragment = tmp_path / "agent@.service"
    fragment.write_text("[Service]\nExecStart=/bin/sleep infinity\nTimeoutStartSec=90\n")
    paths = []
    for rel, text in drop_ins.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        paths.append(str(path))
    paths.sort(key=os.path.basename)  # systemd's order: by file name, whatever the folder

    def show(*args):
        if args[0] == "--property=DefaultTimeoutStartUSec":
            return {"DefaultTimeoutStartUSec": "1min 30s"}
        return {"FragmentPath": str(fragment), "DropInPaths": " ".join(paths), "Type": "simple"}

    monkeypatch.setattr(timeout_start, "show", show)


def test_a_drop_in_sorting_after_the_roles_overrides_the_timeout_it_sets(tmp_path, monkeypatch):
    """systemctl edit writes override.conf, which sorts after 50-gpuops-serving-gate.conf: its TimeoutStartSec=
    is the one systemd applies. With serving_gate_unit_timeout_start_sec the role took its own value alone, and
    accepted a GATE_TIMEOUT above what systemd would allow."""
    override = "agent@crawler.service.d/override.conf"
    stand_in_unit(tmp_path, monkeypatch, {override: "[Service]\nTimeoutStartSec=60\n",
                                          "agent@.service.d/10-env.conf": "[Service]\nTimeoutStartSec=20\n"})
    assert timeout_start.unit_timeout("agent@crawler.service", DROPIN, "360") == {
        "seconds": 60.0, "text": "60", "source": str(tmp_path / override)}


def test_the_roles_timeout_wins_over_drop_ins_that_sort_before_it_and_the_unit(tmp_path, monkeypatch, capsys):
    own = "agent@crawler.service.d/%s" % DROPIN
    stand_in_unit(tmp_path, monkeypatch, {"agent@.service.d/10-env.conf": "[Service]\nTimeoutStartSec=20\n",
                                          own: "[Service]\nTimeoutStartSec=30\n"})  # the role's, being replaced
    assert timeout_start.main(["--unit", "agent@crawler.service", "--ignore", DROPIN, "--span", "6min"]) == 0
    assert json.loads(capsys.readouterr().out) == {"seconds": 360.0, "text": "6min",
                                                   "source": "serving_gate_unit_timeout_start_sec"}
    stand_in_unit(tmp_path, monkeypatch, {})  # the role's drop-in not written yet, nothing else
    assert timeout_start.unit_timeout("agent@crawler.service", DROPIN, "6min")["seconds"] == 360.0
    assert timeout_start.unit_timeout("agent@crawler.service", DROPIN)["seconds"] == 90.0  # the unit's own


def test_without_systemd_to_ask_the_span_alone_is_the_answer(monkeypatch, capsys):
    def show(*args):
        raise OSError("systemctl show: System has not been booted with systemd as init system (PID 1)")

    monkeypatch.setattr(timeout_start, "show", show)
    assert timeout_start.main(["--unit", "agent@crawler.service", "--ignore", DROPIN, "--span", "6min"]) == 0
    assert json.loads(capsys.readouterr().out) == {"seconds": 360.0, "text": "6min",
                                                   "source": "serving_gate_unit_timeout_start_sec"}
