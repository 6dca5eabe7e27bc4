"""Reading the kernel log: commands under a hard timeout, files streamed in chunks within the
check's timeout (what is left out is reported), non-regular files refused, bytes made valid UTF-8."""

from __future__ import annotations

import os
import tracemalloc

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpuops.preflight.plugins.module_utils import _kernel_log as kl

T = 1767225600.0  # 2026-01-01T00:00:00Z
GPU_LINE = "[ %d.0] amdgpu 0000:%s:00.0: amdgpu: SMU is in hanged state, failed to send smu message!\n"
FILLER = "[ 1.0] usb 1-4: new high-speed USB device number 3 using xhci_hcd, nothing to see here at all\n"


@pytest.fixture
def module(mocker):
    with patch_module_args({}):
        mod = AnsibleModule(argument_spec={})
    mocker.patch.object(mod, "get_bin_path", side_effect=lambda name, *a, **k: "/testbin/%s" % name)
    return mod


class FakeClock(object):
    """Monotonic time that moves only when asked (``step`` seconds per reading)."""

    def __init__(self, step=0.0):
        self.now = 100.0
        self.step = step

    def __call__(self):
        self.now += self.step
        return self.now


def commands(module, mocker, outputs):
    """Mock run_command: outputs maps a tool name to (rc, stdout, stderr) or to a callable."""
    seen = []

    def run_command(cmd, **kwargs):
        seen.append(cmd)
        answer = outputs[cmd[4].rsplit("/", 1)[-1]]
        return answer(cmd) if callable(answer) else answer
    mocker.patch.object(module, "run_command", side_effect=run_command)
    return seen


JOURNAL = ("2026-01-01T00:00:05.000000+0000 rig07 kernel: amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!\n"
           "2026-01-01T00:00:06.000000+0000 rig07 kernel: [drm] VRAM is lost due to GPU reset!\n")
DMESG_OUT = "2026-01-01T00:00:05,000000+00:00 amdgpu 0000:0c:00.0: amdgpu: GPU reset begin!\n"


# -- commands ----------------------------------------------------------------------------------

def test_journal_argv_and_lines(module, mocker):
    seen = commands(module, mocker, {"journalctl": (0, JOURNAL + "-- No entries --\n", "")})
    read = kl.read_kernel_log(module, source="journal", since=T + 0.7)
    assert seen == [["/testbin/timeout", "-k", "2", "15", "/testbin/journalctl", "-k", "-b", "0", "-o",
                     "short-iso-precise", "--no-pager", "-q", "--since", "@1767225600"]]
    assert (read.source, read.error, read.timed_out) == ("journal", None, False)
    assert list(read.lines) == JOURNAL.splitlines()  # the journal's "-- No entries --" line is dropped
    assert len(read.lines) == 2 and read.unscanned is None
    assert read.cmd == seen[0][4:]  # the log command itself, without the timeout wrapper


def test_journal_without_since_has_no_since_argument(module, mocker):
    seen = commands(module, mocker, {"journalctl": (0, JOURNAL, "")})
    kl.read_kernel_log(module, source="journal", timeout=7)
    assert seen[0] == ["/testbin/timeout", "-k", "2", "7", "/testbin/journalctl", "-k", "-b", "0", "-o",
                       "short-iso-precise", "--no-pager", "-q"]


def test_journal_timed_out(module, mocker):
    clock = FakeClock()

    def hang(cmd):
        clock.now += 15
        return 124, "", ""
    commands(module, mocker, {"journalctl": hang})
    read = kl.read_kernel_log(module, source="journal", timeout=15, clock=clock)
    assert read.timed_out is True
    assert read.error == "journalctl timed out after 15s and was killed"
    assert len(read.lines) == 0 and read.elapsed == 15


def test_journal_empty_without_since_is_an_error_with_since_a_note(module, mocker):
    commands(module, mocker, {"journalctl": (0, "-- No entries --\n\n", "")})
    read = kl.read_kernel_log(module, source="journal")
    assert "no kernel messages" in read.error and "systemd-journal" in read.error
    read = kl.read_kernel_log(module, source="journal", since=T)
    assert read.error is None and list(read.lines) == [] and "no kernel messages since" in read.note


def test_auto_prefers_the_journal(module, mocker):
    seen = commands(module, mocker, {"journalctl": (0, JOURNAL, "")})
    read = kl.read_kernel_log(module)
    assert read.source == "journal" and len(seen) == 1 and len(list(read.lines)) == 2


def test_auto_empty_journal_falls_back_to_dmesg(module, mocker):
    seen = commands(module, mocker, {"journalctl": (0, "", ""), "dmesg": (0, DMESG_OUT, "")})
    read = kl.read_kernel_log(module, source="auto", timeout=15, clock=FakeClock())
    assert seen[1] == ["/testbin/timeout", "-k", "2", "15", "/testbin/dmesg", "--time-format", "iso"]
    assert (read.source, read.error, list(read.lines)) == ("dmesg", None, DMESG_OUT.splitlines())
    assert "journalctl returned no kernel messages" in read.note
    assert read.cmd == seen[1][4:]


def test_auto_dmesg_gets_the_time_the_journal_left(module, mocker):
    clock = FakeClock()

    def slow_journal(cmd):
        clock.now += 14.6
        return 1, "", "Failed to open journal"
    seen = commands(module, mocker, {"journalctl": slow_journal, "dmesg": (0, DMESG_OUT, "")})
    read = kl.read_kernel_log(module, timeout=15, clock=clock)
    assert seen[1][3] == "1"  # at least one second
    assert read.source == "dmesg" and "journalctl exited 1: Failed to open journal" in read.note
    assert list(read.lines) == DMESG_OUT.splitlines()  # and at least a second to scan it


def test_auto_without_journalctl_uses_dmesg(module, mocker):
    module.get_bin_path.side_effect = lambda name, *a, **k: None if name == "journalctl" else "/testbin/" + name
    seen = commands(module, mocker, {"dmesg": (0, DMESG_OUT, "")})
    read = kl.read_kernel_log(module)
    assert [cmd[4] for cmd in seen] == ["/testbin/dmesg"]
    assert read.source == "dmesg" and "journalctl not found" in read.note


def test_auto_both_fail_reports_both_reasons(module, mocker):
    clock = FakeClock()

    def hang(cmd):
        clock.now += 15
        return 124, "", ""
    commands(module, mocker, {
        "journalctl": hang,
        "dmesg": (1, "", "dmesg: read kernel buffer failed: Operation not permitted\n")})
    mocker.patch.object(kl.os, "geteuid", return_value=1000)
    read = kl.read_kernel_log(module, timeout=15, clock=clock)
    assert read.error.startswith("journal: journalctl timed out after 15s and was killed; dmesg: dmesg exited 1: "
                                 "dmesg: read kernel buffer failed: Operation not permitted")
    assert "CAP_SYSLOG" in read.error and "become" in read.error
    assert read.timed_out is True and len(read.lines) == 0


@pytest.mark.parametrize("euid, words, not_words", [
    (1000, ("dmesg_restrict", "become: true"), ("as root",)),
    # root and still refused (a container without CAP_SYSLOG): become would not help, so it is not suggested
    (0, ("refused even as root", "give kernel_log a file"), ("become",)),
])
def test_dmesg_permission_denied_is_explained(module, mocker, euid, words, not_words):
    commands(module, mocker, {"dmesg": (1, "", "dmesg: read kernel buffer failed: Operation not permitted\n")})
    mocker.patch.object(kl.os, "geteuid", return_value=euid)
    read = kl.read_kernel_log(module, source="dmesg")
    assert read.error.startswith("dmesg exited 1: dmesg: read kernel buffer failed: Operation not permitted")
    assert all(w in read.error for w in words) and not any(w in read.error for w in not_words)
    assert read.timed_out is False


def test_missing_timeout_binary_refuses_to_run(module, mocker):
    module.get_bin_path.side_effect = lambda name, *a, **k: None if name == "timeout" else "/testbin/" + name
    run = mocker.patch.object(module, "run_command")
    read = kl.read_kernel_log(module, source="dmesg")
    assert "coreutils 'timeout' not found" in read.error
    run.assert_not_called()


def test_run_command_exception_is_reported(module, mocker):
    mocker.patch.object(module, "run_command", side_effect=OSError("exec format error"))
    read = kl.read_kernel_log(module, source="dmesg")
    assert read.error == "dmesg could not run: exec format error"


@pytest.mark.parametrize("source", ["syslog", None, 3])
def test_unknown_source(module, source):
    assert "unknown kernel log source %r" % (source,) in kl.read_kernel_log(module, source=source).error


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "15", None, True])
def test_bad_timeout_is_a_clear_error(module, timeout):
    read = kl.read_kernel_log(module, source="dmesg", timeout=timeout)
    assert read.error == "timeout must be a positive number of seconds, got %r" % (timeout,)


def test_undecodable_bytes_in_command_output_become_valid_utf8(module, mocker):
    # run_command decodes with surrogateescape: a raw 0xff byte arrives as the lone surrogate U+DCFF.
    out = "2026-01-01T00:00:05,000000+00:00 amdgpu 0000:0c:00.0: amdgpu: SMU is in hanged state \udcff\udc80!\n"
    commands(module, mocker, {"dmesg": (0, out, "")})
    read, findings = kl.scan_kernel_log(module, source="dmesg")
    assert len(findings) == 1
    for text in (findings[0]["message"], findings[0]["line"]):
        assert "\ufffd" in text
        text.encode("utf-8")
    commands(module, mocker, {"dmesg": (1, "", "dmesg: bad \udcff byte\n")})
    kl.read_kernel_log(module, source="dmesg").error.encode("utf-8")


def test_scan_of_command_output_runs_out_of_time(module, mocker):
    out = "".join(GPU_LINE % (i, "%02x" % (i % 256)) for i in range(1, 40001))
    commands(module, mocker, {"dmesg": (0, out, "")})
    clock = FakeClock(step=5.0)   # every reading of the clock takes 5 s
    read, findings = kl.scan_kernel_log(module, source="dmesg", timeout=15, clock=clock, boot_time=0.0)
    assert read.error is None and read.unscanned is not None
    assert read.unscanned["lines"] + len(read.lines) == 40000
    assert read.unscanned["bytes"] > 0 and "dmesg output" in read.unscanned["description"]
    assert "not scanned" in read.unscanned["description"]


# -- files ---------------------------------------------------------------------------------------

def test_file_source(tmp_path, module):
    log = tmp_path / "kern.log"
    log.write_bytes(b"[ 1.0] amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!\r\n\xff\xfe broken\n\n")
    read = kl.read_kernel_log(module, source="file", path=str(log))
    assert (read.source, read.error, read.cmd, read.note) == ("file", None, None, None)
    assert list(read.lines) == ["[ 1.0] amdgpu 0000:0b:00.0: amdgpu: GPU reset begin!", "\ufffd\ufffd broken"]
    assert len(read.lines) == 2 and read.unscanned is None


def test_a_symlink_to_a_log_file_is_read(tmp_path, module):
    log = tmp_path / "kern.log"
    log.write_text(GPU_LINE % (1, "03"))
    (tmp_path / "link.log").symlink_to(log)
    read, findings = kl.scan_kernel_log(module, source="file", path=str(tmp_path / "link.log"))
    assert read.error is None and len(findings) == 1


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind,expected", [
    ("fifo", "it is a fifo, not a regular file"),
    ("dir", "it is a directory, not a regular file"),
    ("device", "it is a character device, not a regular file"),
    ("missing", "No such file or directory"),
])
def test_only_regular_files_are_read_and_nothing_blocks(tmp_path, module, kind, expected):
    path = {"fifo": str(tmp_path / "fifo"), "dir": str(tmp_path), "device": os.devnull,
            "missing": str(tmp_path / "missing.log")}[kind]
    if kind == "fifo":
        os.mkfifo(path)  # no writer: a blocking open would wait for ever
    read, findings = kl.scan_kernel_log(module, source="file", path=path)
    assert read.error == "cannot read %s: %s" % (path, expected)
    assert findings == [] and len(read.lines) == 0


@pytest.mark.parametrize("path", [None, "", 5])
def test_file_without_path(module, path):
    assert kl.read_kernel_log(module, source="file", path=path).error == "source=file needs a path"


def test_path_with_a_nul_byte_is_an_error_not_a_traceback(module):
    assert kl.read_kernel_log(module, source="file", path="/var/log/kern\0.log").error.startswith("cannot read ")


def test_a_line_without_end_is_cut_and_the_rest_of_the_file_still_read(tmp_path, module, monkeypatch):
    monkeypatch.setattr(kl, "CHUNK_BYTES", 4096)
    log = tmp_path / "kern.log"
    log.write_bytes(b"amdgpu 0000:03:00.0: amdgpu: GPU reset begin! " + b"x" * (3 * kl.MAX_LINE_BYTES) + b"\n" +
                    (GPU_LINE % (2, "83")).encode())
    read, findings = kl.scan_kernel_log(module, source="file", path=str(log))
    assert [f["bdf"] for f in findings] == ["0000:03:00.0", "0000:83:00.0"]
    assert len(findings[0]["line"]) == kl.MAX_LINE_CHARS and read.unscanned is None


def big_log(path, size, planted):
    """A log of about ``size`` bytes of filler with GPU lines at the given fractions of it."""
    count = size // len(FILLER)
    marks = dict((int(count * fraction), bus) for fraction, bus in planted)
    with open(path, "w") as handle:
        block = []
        for i in range(count):
            block.append(GPU_LINE % (i + 10, marks[i]) if i in marks else FILLER)
            if len(block) == 4096:
                handle.write("".join(block))
                block = []
        handle.write("".join(block))
    return count


def test_a_log_over_100_mib_is_scanned_whole(tmp_path, module):
    log = tmp_path / "kern.log"
    count = big_log(str(log), 101 * 1024 * 1024, [(0.0, "01"), (0.5, "02"), (0.999, "03")])
    assert os.path.getsize(str(log)) > 100 * 1024 * 1024
    stats = {}
    read, findings = kl.scan_kernel_log(module, source="file", path=str(log), timeout=600, stats=stats, boot_time=0.0)
    assert read.error is None and read.unscanned is None
    assert stats["lines"] == count == len(read.lines)
    assert [f["bdf"] for f in findings] == ["0000:01:00.0", "0000:02:00.0", "0000:03:00.0"]


def test_memory_stays_bounded_while_a_file_is_scanned(tmp_path, module):
    log = tmp_path / "kern.log"
    big_log(str(log), 24 * 1024 * 1024, [(0.5, "02")])
    tracemalloc.start()
    try:
        read, findings = kl.scan_kernel_log(module, source="file", path=str(log), timeout=600, boot_time=0.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(findings) == 1 and read.unscanned is None
    assert peak < 8 * 1024 * 1024, "peak %d bytes while scanning a 24 MiB file" % peak


def test_when_time_is_short_the_newest_lines_are_scanned_and_the_rest_reported(tmp_path, module, monkeypatch):
    monkeypatch.setattr(kl, "CHUNK_BYTES", 8192)
    log = tmp_path / "kern.log"
    big_log(str(log), 400 * 1024, [(0.01, "01"), (0.5, "02"), (0.999, "03")])
    clock = FakeClock(step=1.0)   # one second per chunk: 50 chunks will not fit in 20 s
    read, findings = kl.scan_kernel_log(module, source="file", path=str(log), timeout=20, clock=clock, boot_time=0.0)
    assert read.error is None
    bdfs = [f["bdf"] for f in findings]
    assert "0000:01:00.0" in bdfs and "0000:03:00.0" in bdfs   # the start, and the newest lines
    assert "0000:02:00.0" not in bdfs                          # skipped, and said so
    assert read.unscanned["bytes"] > 100 * 1024 and read.unscanned["lines"] is None
    assert read.unscanned["description"].startswith("kern.log: ")
    assert "skipped to scan the newest lines in time" in read.unscanned["description"]


def test_when_time_runs_out_what_is_left_is_reported(tmp_path, module, monkeypatch):
    monkeypatch.setattr(kl, "CHUNK_BYTES", 8192)
    log = tmp_path / "kern.log"
    big_log(str(log), 200 * 1024, [(0.01, "01")])
    read, findings = kl.scan_kernel_log(module, source="file", path=str(log), timeout=6,
                                        clock=FakeClock(step=1.0), boot_time=0.0)
    assert [f["bdf"] for f in findings] == ["0000:01:00.0"]   # in the first chunks, scanned in time
    assert "the time ran out" in read.unscanned["description"]
    assert 0 < read.unscanned["bytes"] < os.path.getsize(str(log)) - 8192


def test_max_file_bytes_scans_the_end_and_says_so(tmp_path, module):
    log = tmp_path / "kern.log"
    old = GPU_LINE % (1, "0b") * 100
    new = GPU_LINE % (9, "0c") * 10
    log.write_text(old + new)
    read, findings = kl.scan_kernel_log(module, source="file", path=str(log), max_file_bytes=len(new) + 20)
    assert [f["bdf"] for f in findings] == ["0000:0c:00.0"] and len(read.lines) == 10  # the cut line is dropped
    assert "only its last" in read.unscanned["description"]
    assert read.unscanned["bytes"] == len(old) - 20


def test_scan_kernel_log(tmp_path, module, mocker):
    log = tmp_path / "kern.log"
    log.write_text(GPU_LINE % (1, "03") + GPU_LINE % (2, "83"))
    read, findings = kl.scan_kernel_log(module, source="file", path=str(log))
    assert read.error is None and len(findings) == 2
    read, findings = kl.scan_kernel_log(module, source="file", path=str(tmp_path / "nope"))
    assert read.error and findings == []
    commands(module, mocker, {"journalctl": (0, JOURNAL, "")})
    stats = {}
    read, findings = kl.scan_kernel_log(module, source="journal", since=T, stats=stats, vendors="amd")
    assert [(f["category"], f["bdf"], f["recovered"]) for f in findings] == [
        ("gpu_reset", "0000:0b:00.0", False), ("gpu_reset", None, False)]   # a reset with no success line
    assert stats["lines"] == 2


def test_read_result_as_dict(module, mocker):
    commands(module, mocker, {"journalctl": (0, JOURNAL, "")})
    read = kl.read_kernel_log(module, source="journal", clock=FakeClock())
    list(read.lines)
    assert read.as_dict() == {"source": "journal", "cmd": read.cmd, "error": None, "timed_out": False,
                              "elapsed_s": 0.0, "note": None, "lines": 2, "unscanned": None}
