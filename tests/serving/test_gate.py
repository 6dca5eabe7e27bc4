"""The gate run in-process (gpuops_preflight.gate.run_gate) against the stand-in orchestrator."""

from __future__ import annotations

import json
import os
import socket

import pytest

import simserve

from gpuops_preflight import gate


def settings(host, env_url, **flags):
    env = host.env(env_url)
    env.update(flags.pop("env", {}))
    flags.setdefault("instance", "crawler")
    return gate.settings_from(flags, env)


def run(host, env_url, **flags):
    progress = []
    outcome = gate.run_gate(settings(host, env_url, **flags), progress=progress.append)
    outcome.progress = progress
    return outcome


def statuses(outcome):
    return dict((n, c["status"]) for n, c in list(outcome.summary["hosts"].values())[0]["checks"].items())


def test_ready_orchestrator(host, orchestrator):
    sim = orchestrator(models=host.models, already_ready=True)
    outcome = run(host, sim.url)
    assert outcome.exit_code == gate.EXIT_READY
    assert statuses(outcome) == {"orchestrator": "ok", "model_map": "ok", "model_store": "ok", "preload": "ok",
                                 "mps": "skipped", "bus": "skipped"}
    assert outcome.lines[-2] == "GATE READY: instance crawler may start"
    assert [r[:2] for r in sim.requests] == [("GET", "/health"), ("GET", "/models/status")]
    summary = outcome.summary
    assert summary["kind"] == "serving_gate" and summary["instance"] == "crawler" and summary["ready"]
    assert summary["serving"]["exit_code"] == 0 and summary["serving"]["settings"]["url"] == sim.url
    assert summary["serving"]["sources"]["url"] == "environment"
    (name,) = host.summaries()
    assert name.startswith("local_gate_crawler_") and outcome.lines[-1] == "Summary: %s" % os.path.join(host.cache, name)
    with open(os.path.join(host.cache, name)) as handle:
        assert json.load(handle) == summary


def test_models_ready_after_a_delay_with_progress(host, orchestrator):
    sim = orchestrator(models=host.models, ready_after=0.4)
    outcome = run(host, sim.url)
    assert outcome.exit_code == 0, outcome.lines
    assert outcome.progress[0].startswith("in progress: 0 of 2 model(s) ready")
    assert outcome.progress[-1] == "all ready: 2 of 2 model(s) ready"
    assert ("POST", "/models/preload", {"refresh": False}) in sim.requests


def test_refresh_from_the_environment(host, orchestrator):
    sim = orchestrator(models=host.models, already_ready=True)
    assert run(host, sim.url, env={"PRELOAD_REFRESH": "1"}).exit_code == 0
    assert ("POST", "/models/preload", {"refresh": True}) in sim.requests


def test_a_failing_model_blocks_with_its_agent_and_error_text(host, orchestrator):
    text = "RuntimeError: CUDA error: out of memory (while loading shard 2/2)"
    sim = orchestrator(models=host.models, fail={"org/tools-3b": text}, errors_as="strings")
    outcome = run(host, sim.url)
    assert outcome.exit_code == gate.EXIT_NOT_READY
    assert ("preload       FAIL     agent 'mcp' (model 'org/tools-3b') failed to load; the orchestrator says: "
            "org/tools-3b: %s" % text) in outcome.lines
    assert outcome.lines[-2] == "GATE NOT READY: instance crawler must not start (preload) (exit 1)"
    item = outcome.summary["hard_failures"][0]
    assert item["check"] == "preload" and text in item["message"]
    assert outcome.summary["serving"]["details"]["preload"]["errors"][0]["error"] == "org/tools-3b: " + text


def test_never_ready_within_the_timeout(host, orchestrator):
    sim = orchestrator(models=host.models, never_ready=True)
    outcome = run(host, sim.url, timeout="1")
    assert outcome.exit_code == 1
    assert statuses(outcome)["preload"] == "fail"
    assert any(line.startswith("preload       FAIL     models not ready within 1s: in progress:") for line in
               outcome.lines), outcome.lines


def test_orchestrator_not_answering(host):
    url = "http://127.0.0.1:%d" % simserve.free_port()
    outcome = run(host, url, timeout="0.5")
    assert outcome.exit_code == 1
    # the preload could not be verified: never a pass, and it says why
    assert statuses(outcome)["orchestrator"] == "fail" and statuses(outcome)["preload"] == "unknown"
    assert outcome.summary["hosts"][list(outcome.summary["hosts"])[0]]["checks"]["preload"]["message"] == (
        "preloading the models at %s: not run: the orchestrator is not ready" % url)
    assert outcome.lines[-2] == ("GATE NOT READY: instance crawler must not start (orchestrator; not verified: "
                                 "preload) (exit 1)")
    assert [i["check"] for i in outcome.summary["hard_failures"]] == ["orchestrator", "preload"]


def test_a_server_that_accepts_and_never_answers(host):
    with simserve.HangingServer() as hang:
        outcome = run(host, hang.url, timeout="1")
    assert outcome.exit_code == 1
    line = [x for x in outcome.lines if x.startswith("orchestrator")][0]
    assert "no answer within" in line and "the server accepted the connection but did not answer" in line


def test_a_model_missing_from_the_store(host, orchestrator):
    sim = orchestrator(models=host.models, already_ready=True)
    os.rename(os.path.join(host.root, "org"), os.path.join(host.root, "elsewhere"))
    outcome = run(host, sim.url)
    assert outcome.exit_code == 1
    assert statuses(outcome)["model_store"] == "fail" and statuses(outcome)["preload"] == "unknown"
    assert ("preload       UNKNOWN  preloading the models at %s: not run: the model store is not ready (loading "
            "would fail or download)" % sim.url) in outcome.lines
    assert ("GET", "/models/status", None) not in sim.requests
    assert ("model_store   FAIL     agents 'crawler', 'bus' (model 'org/crawl-7b'): %s/org/crawl-7b is not in the "
            "store (STRICT_MODEL_STORE=1: nothing may be downloaded at start-up)" % host.root) in outcome.lines
    outcome = run(host, sim.url, env={"STRICT_MODEL_STORE": "0"})
    assert outcome.exit_code == 0 and statuses(outcome)["model_store"] == "warn"


def test_the_store_as_the_service_user(host, orchestrator):
    sim = orchestrator(models=host.models, already_ready=True)
    os.chmod(os.path.join(host.root, "org"), 0o700)
    assert run(host, sim.url).exit_code == 0  # root
    outcome = run(host, sim.url, service_user="nobody")
    assert outcome.exit_code == 1
    assert "parent directory %s/org is not searchable (x) by user 'nobody'" % host.root in "\n".join(outcome.lines)


@pytest.mark.parametrize("doc", ["{broken", json.dumps({"crawler": {"modle": "x", "path": "x"}})])
def test_an_invalid_map_is_bad_input(host, orchestrator, doc):
    sim = orchestrator(models=host.models, already_ready=True)
    with open(host.map, "w") as handle:
        handle.write(doc)
    outcome = run(host, sim.url)
    assert outcome.exit_code == gate.EXIT_BAD_INPUT
    # nothing else runs: the checks that need the map are not verified, those not required are skipped
    assert statuses(outcome) == {"orchestrator": "unknown", "model_map": "fail", "model_store": "unknown",
                                 "preload": "unknown", "mps": "skipped", "bus": "skipped"}
    assert sim.requests == []  # the orchestrator was not asked anything
    assert outcome.lines[-2] == ("GATE NOT READY: instance crawler must not start (model_map; not verified: "
                                 "orchestrator, model_store, preload) (exit 2)")
    assert "orchestrator  UNKNOWN  asking the orchestrator at %s: not run: the model map is invalid" % sim.url in (
        outcome.lines)


def test_the_bus(host, orchestrator):
    sim = orchestrator(models=host.models, already_ready=True)
    down = "http://127.0.0.1:%d" % simserve.free_port()
    outcome = run(host, sim.url, env={"REQUIRE_BUS": "1", "BUS_URL": down}, timeout="2")
    assert outcome.exit_code == 1 and statuses(outcome)["bus"] == "fail"
    outcome = run(host, sim.url, bus_url=sim.url)
    assert outcome.exit_code == 0 and statuses(outcome)["bus"] == "ok"
    outcome = run(host, sim.url, instance="orchestrator", env={"REQUIRE_BUS": "1", "BUS_URL": down})
    assert outcome.exit_code == 0 and statuses(outcome)["bus"] == "skipped"
    assert "instance orchestrator is the orchestrator" in outcome.summary["hosts"][
        list(outcome.summary["hosts"])[0]]["checks"]["bus"]["message"]


def test_a_hung_summary_write_is_a_note_after_the_verdict_is_out(host, orchestrator, monkeypatch):
    """A dead NFS home: writing the summary never returns. The verdict is shown first; the write waits
    only what is left of the budget, then the gate goes on (its thread is abandoned)."""
    import threading
    from ansible_collections.gpuops.preflight.plugins.module_utils import _serving
    sim = orchestrator(models=host.models, already_ready=True)
    release, events = threading.Event(), []

    def hung(*_args, **_kw):
        events.append("write")
        release.wait(30)  # without the bound, the gate would wait as long as this

    monkeypatch.setattr(_serving, "write_gate_summary", hung)
    try:
        outcome = gate.run_gate(settings(host, sim.url, timeout="1"), show=events.append)
    finally:
        release.set()
    assert outcome.exit_code == 0 and outcome.summary["summary_file"] is None
    assert events[0][-1] == "GATE READY: instance crawler may start" and events[1] == "write"
    (note,) = events[2]
    assert note.startswith("note: summary not written to %s: the file system did not answer within " % host.cache)
    assert note.endswith("s (a hung mount?)")
    assert outcome.lines == events[0] + events[2]


def test_summary_that_cannot_be_written_is_a_note_not_a_failure(host, orchestrator):
    sim = orchestrator(models=host.models, already_ready=True)
    with open(host.cache, "w") as handle:
        handle.write("a file where the folder should be")
    outcome = run(host, sim.url)
    assert outcome.exit_code == 0 and outcome.summary["summary_file"] is None
    assert outcome.summary["notes"][0].startswith("summary not written to %s:" % host.cache)
    assert outcome.lines[-1] == "note: %s" % outcome.summary["notes"][0]


# ---------------------------------------------------------------- settings


def test_a_flag_wins_over_the_environment(host):
    got = settings(host, "http://env:1", url="http://flag:2", timeout="7", env={"GATE_TIMEOUT": "9"})
    assert (got.url, got.timeout, got.sources["url"], got.sources["timeout"]) == ("http://flag:2", 7.0, "flag", "flag")
    got = settings(host, "http://env:1", env={"GATE_TIMEOUT": "9", "REQUIRE_MPS": "yes"})
    assert (got.url, got.timeout, got.require_mps, got.strict) == ("http://env:1", 9.0, True, True)
    got = gate.settings_from({"instance": "x", "model_map": "/m", "strict": "0"}, {})
    assert (got.url, got.timeout, got.strict, got.store_root) == ("http://127.0.0.1:8014", 300.0, False, None)
    assert got.cache_dir == gate.DEFAULT_CACHE_DIR
    got = gate.settings_from({"instance": "x", "model_map": "/m", "strict": "0"}, {"XDG_CACHE_HOME": "/xdg"})
    assert got.cache_dir == "/xdg/gpuops-preflight/gate"


def test_the_defaults_are_the_familys():
    """The gate's settings are the family's options (gate.params_of): their defaults are held equal here."""
    from gpuops_preflight import collection
    options = collection.module_utils("_serving_gate").OPTIONS
    got = gate.params_of(gate.settings_from({"instance": "x", "model_map": "/m", "strict": "1",
                                             "store_root": "/s"}, {}))
    assert set(got) - {"checks", "timeouts"} == set(options)
    for name, spec in options.items():
        if name not in ("model_map", "store_root", "instance"):
            assert got[name] == spec.get("default"), name


@pytest.mark.parametrize("flags, env, expected", [
    ({}, {"GATE_TIMEOUT": "soon"}, "GATE_TIMEOUT must be a number of seconds, got 'soon'"),
    ({"timeout": "-3"}, {}, "--timeout must be a number of seconds above 0 and at most 604800, got '-3'"),
    ({}, {"REQUIRE_MPS": "perhaps"}, "REQUIRE_MPS must be 1 or 0"),
    ({}, {"GPU_ORCHESTRATOR_URL": "localhost:8014"}, "GPU_ORCHESTRATOR_URL 'localhost:8014' is not an http://"),
    ({}, {"REQUIRE_BUS": "1"}, "REQUIRE_BUS is on but no BUS_URL is set"),
    ({}, {"REQUIRE_BUS": "1", "BUS_URL": "http://svc:hunter2@127.0.0.1:9/bus"},
     "BUS_URL 'http://***@127.0.0.1:9/bus': user names or passwords in the URL are not supported"),
    ({"url": "http://127.0.0.1:8014/?token=hunter2"}, {},
     "--url 'http://127.0.0.1:8014/?token=***': a query string or fragment (?... #...) is not supported"),
    ({}, {"AGENT_MODEL_MAP": ""}, "no model map: give --model-map or set AGENT_MODEL_MAP"),
    ({}, {"MODEL_STORE_ROOT": ""}, "STRICT_MODEL_STORE=1 needs the store root"),
    ({"store_root": "relative"}, {}, "--store-root must be an absolute path"),
    ({"instance": ""}, {}, "--instance is required"),
    ({"instance": "a/b"}, {}, "--instance 'a/b' is not a service instance name"),
])
def test_bad_settings_name_the_flag_or_variable(host, flags, env, expected):
    base = host.env("http://127.0.0.1:8014")
    base.update(env)
    flags.setdefault("instance", "crawler")
    with pytest.raises(gate.GateInputError) as exc:
        gate.settings_from(flags, base)
    assert expected in str(exc.value) and "hunter2" not in str(exc.value)


def test_unknown_service_user_is_bad_input(host, orchestrator):
    sim = orchestrator(models=host.models, already_ready=True)
    with pytest.raises(gate.GateInputError, match="service user 'no-such-svc' does not exist"):
        run(host, sim.url, service_user="no-such-svc")


# ---------------------------------------------------------------- MPS, through a stand-in control binary


STAND_IN_CONTROL = """#!/bin/sh
# Stand-in for nvidia-cuda-mps-control: the front end answers get_server_list with one server PID.
read command
[ "$command" = get_server_list ] && echo 4242
"""


@pytest.fixture
def mps(open_tmp, monkeypatch):
    """A stand-in MPS set-up: the control binary on PATH, a pipe folder, and (``start()``) a process
    that looks like the control daemon (argv ``nvidia-cuda-mps-control -d``) with its PID file."""
    import subprocess
    bindir = open_tmp / "bin"
    bindir.mkdir()
    control = bindir / "nvidia-cuda-mps-control"
    control.write_text(STAND_IN_CONTROL)
    control.chmod(0o755)
    pipe = open_tmp / "mps-pipe"
    pipe.mkdir()
    pipe.chmod(0o777)
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ["PATH"]))
    procs = []

    class Mps(object):
        pipe_dir = str(pipe)

        def start(self):
            # /bin/sh named nvidia-cuda-mps-control with -d in its arguments (": " keeps it from exec'ing sleep)
            proc = subprocess.Popen(["bash", "-c", 'exec -a nvidia-cuda-mps-control /bin/sh -c "sleep 600; :" -d'],
                                    start_new_session=True)
            procs.append(proc)
            for _attempt in range(200):  # until exec has replaced bash's command line
                try:
                    with open("/proc/%d/cmdline" % proc.pid, "rb") as handle:
                        if handle.read().startswith(b"nvidia-cuda-mps-control\0"):
                            break
                except OSError:
                    pass
                import time
                time.sleep(0.01)
            (pipe / "nvidia-cuda-mps-control.pid").write_text("%d\n" % proc.pid)
            # the daemon's control entry, a UNIX socket as current drivers make it
            control_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            control_sock.bind(str(pipe / "control"))
            sockets.append(control_sock)
            return proc

    sockets = []
    yield Mps()
    for proc in procs:
        os.killpg(proc.pid, 9)
        proc.wait()
    for control_sock in sockets:
        control_sock.close()


def mps_env(mps, **extra):
    env = {"REQUIRE_MPS": "1", "CUDA_MPS_PIPE_DIRECTORY": mps.pipe_dir, "CUDA_MPS_LOG_DIRECTORY": mps.pipe_dir}
    env.update(extra)
    return env


def mps_line(outcome):
    return [line for line in outcome.lines if line.startswith("mps ")]


def test_mps_operational(host, orchestrator, mps):
    sim = orchestrator(models=host.models, already_ready=True)
    mps.start()
    outcome = run(host, sim.url, env=mps_env(mps))
    assert outcome.exit_code == 0, outcome.lines
    assert mps_line(outcome) == ["mps           ok       MPS control daemon running, pipe directory %s, 1 server(s), "
                                 "/gpu/info mps_enabled" % mps.pipe_dir]
    assert ("GET", "/gpu/info", None) in sim.requests


def test_mps_daemon_not_running(host, orchestrator, mps):
    sim = orchestrator(models=host.models, already_ready=True)
    outcome = run(host, sim.url, env=mps_env(mps))
    assert outcome.exit_code == 1
    assert mps_line(outcome) == ["mps           FAIL     the MPS control daemon (nvidia-cuda-mps-control -d) is not running"]


def test_mps_disabled_in_the_orchestrator_and_pipe_folder_problems(host, orchestrator, mps):
    sim = orchestrator(models=host.models, already_ready=True, mps_enabled=False)
    mps.start()
    outcome = run(host, sim.url, env=mps_env(mps))
    assert outcome.exit_code == 1
    assert mps_line(outcome) == ["mps           FAIL     the orchestrator's /gpu/info says mps_enabled: false"]
    sim.behaviour.mps_enabled = True
    os.chmod(mps.pipe_dir, 0o755)
    assert run(host, sim.url, env=mps_env(mps)).exit_code == 0  # root may write there
    outcome = run(host, sim.url, env=mps_env(mps), service_user="nobody")
    assert outcome.exit_code == 1
    assert mps_line(outcome) == ["mps           FAIL     the MPS pipe directory %s is not writable by the service "
                                 "user" % mps.pipe_dir]
    outcome = run(host, sim.url, env=mps_env(mps, CUDA_MPS_PIPE_DIRECTORY=mps.pipe_dir + "-missing"))
    assert "the MPS pipe directory %s-missing does not exist" % mps.pipe_dir in "\n".join(outcome.lines)


def test_a_pipe_directory_without_the_daemons_control_entry_is_not_served(host, orchestrator, mps):
    sim = orchestrator(models=host.models, already_ready=True)
    mps.start()
    os.remove(os.path.join(mps.pipe_dir, "control"))  # the daemon serves another folder, or it is gone
    outcome = run(host, sim.url, env=mps_env(mps))
    assert outcome.exit_code == 1
    assert mps_line(outcome) == ["mps           FAIL     the MPS pipe directory %s holds no control socket or FIFO "
                                 "(control): no control daemon serves it (is the daemon's CUDA_MPS_PIPE_DIRECTORY "
                                 "another folder?)" % mps.pipe_dir]


def test_mps_not_required_is_skipped(host, orchestrator):
    sim = orchestrator(models=host.models, already_ready=True)
    outcome = run(host, sim.url)
    assert mps_line(outcome) == ["mps           skipped  not required (REQUIRE_MPS=0)"]
    assert ("GET", "/gpu/info", None) not in sim.requests


def test_names_that_are_not_utf8_leave_as_valid_utf8(host, orchestrator):
    sim = orchestrator(models=host.models, already_ready=True)
    folder = os.path.join(host.root, "org", "crawl-7b").encode()
    os.remove(os.path.join(folder, b"model.safetensors.index.json"))
    os.rename(os.path.join(folder, b"model-00002-of-00002.safetensors"),
              os.path.join(folder, b"model-\xff-00002-of-00002.safetensors"))
    outcome = run(host, sim.url)
    assert outcome.exit_code == 1
    text = "\n".join(outcome.lines)
    text.encode("utf-8")
    assert "model-00002-of-00002.safetensors is missing (shard 2 of 2)" in text
    assert "model-\ufffd-00001-of-00002.safetensors is missing (shard 1 of 2)" in text
    json.dumps(outcome.summary).encode("utf-8")
    with open(outcome.summary["summary_file"], encoding="utf-8") as handle:
        assert json.load(handle)["ready"] is False


def test_an_answer_nested_too_deeply_fails_the_check_not_the_gate(host, orchestrator):
    """600 levels of JSON objects parse; quoted in the result, they ended the gate in a RecursionError."""
    deep = '{"status": "ok", "x": ' + '{"a": ' * 600 + "1" + "}" * 601
    sim = orchestrator(models=host.models, already_ready=True,
                       canned={"/health": {"status": 200, "body": deep, "content_type": "application/json"}})
    outcome = run(host, sim.url)
    assert outcome.exit_code == gate.EXIT_NOT_READY and statuses(outcome)["orchestrator"] == "fail"
    assert outcome.lines[0].endswith("GET /health answered malformed JSON, nested too deeply (more than 100 levels): "
                                     "not the orchestrator's API"), outcome.lines[0]


# ---------------------------------------------------------------- credentials in what the services answer


def test_credentials_in_the_answers_never_reach_the_lines_the_summary_or_its_file(host, orchestrator, mps):
    sim = orchestrator(models=host.models, canned=simserve.canned_with_credentials(host.models))
    mps.start()
    outcome = run(host, sim.url, env=mps_env(mps, PRELOAD_REFRESH="1"))
    assert statuses(outcome) == {"orchestrator": "ok", "model_map": "ok", "model_store": "ok", "preload": "warn",
                                 "mps": "ok", "bus": "skipped"}, outcome.lines  # warn: the old error
    assert ("POST", "/models/preload", {"refresh": True}) in sim.requests  # the preload's answer was read
    with open(outcome.summary["summary_file"], encoding="utf-8") as handle:
        written = handle.read()
    details = outcome.summary["serving"]["details"]
    # what the answers said is kept, with the credentials replaced
    assert details["orchestrator"]["health"]["db"] == details["mps"]["gpu_info"]["endpoint"] == \
        simserve.CREDENTIALS_REDACTED
    for text in ("\n".join(outcome.lines + outcome.progress), json.dumps(outcome.summary), written):
        assert not any(secret in text for secret in simserve.SECRETS)
        assert simserve.CREDENTIALS_REDACTED in text
