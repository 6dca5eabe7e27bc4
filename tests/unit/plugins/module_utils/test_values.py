"""_values: the shared small helpers of every family (valid UTF-8 text, sizes, durations, rules)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils._values import (
    clean_text, escaped, is_within, parse_seconds, printable, seconds_text, without_escapes)


@pytest.mark.parametrize("text, clean", [
    ("plain é", "plain é"),
    # bytes a tool printed, decoded with surrogate escapes: decoded again, an invalid byte is U+FFFD
    (b"caf\xc3\xa9 \xff".decode("utf-8", "surrogateescape"), "café \ufffd"),
    # a lone surrogate from a JSON escape is U+FFFD, and so is an escaped byte beside it (not '?')
    ("\ud800 é " + b"\xff".decode("utf-8", "surrogateescape") + " \udfff", "\ufffd é \ufffd \ufffd"),
])
def test_every_text_becomes_valid_utf8(text, clean):
    assert clean_text(text) == clean
    assert clean_text({"k" + text: [text, None, 3]}) == {"k" + clean: [clean, None, 3]}
    json.dumps(clean_text(text)).encode("utf-8")


def test_seconds_as_messages_and_commands_write_them():
    assert [seconds_text(s) for s in (2, 2.0, 0.5, 0.25, 15.04, 0, 0.01)] == ["2", "2", "0.5", "0.2", "15", "0", "0"]


def test_within_is_the_folder_or_under_it_never_a_sibling_with_the_same_start():
    assert is_within("/dev/shm/prng", "/dev/shm/prng") and is_within("/dev/shm/prng/step3", "/dev/shm/prng/")
    assert not is_within("/dev/shm/prng2/x", "/dev/shm/prng") and not is_within("/dev", "/dev/shm")
    assert is_within("/etc", "/")


@pytest.mark.parametrize("text, shown", [
    ("\x1b[1;31mERROR\x1b[0m CUDA out of memory", "ERROR CUDA out of memory"),   # SGR colors
    ("\x1b[2K\x1b[1G 45%|####", " 45%|####"),                                    # cursor moves of a progress bar
    ("\x1b]0;title\x07after", "after"),                                          # a window title (OSC, BEL)
    ("\x1b]8;;http://x/\x1b\\link\x1b]8;;\x1b\\", "link"),                      # a hyperlink (OSC, ST)
    ("\x1b(B\x1b[m plain", " plain"),                                            # charset selection, reset
    ("\x9b31mC1 form", "C1 form"),                                               # the 8-bit CSI
    ("no escapes at all", "no escapes at all"),
])
def test_escape_sequences_are_removed_as_a_terminal_would_not_show_them(text, shown):
    assert without_escapes(text) == shown


@pytest.mark.parametrize("value, limit, shown", [
    ("a\tb\nc\rd", None, "a b c d"),
    ("bell\x07 stray\x1b", None, "bell? stray?"),
    ("\x1b[31mred\x1b[0m", None, "red"),
    ("zero\u200bwidth \ufffd kept", None, "zero?width \ufffd kept"),
    ("x" * 20, 10, "xxxxxxx..."),
    (3, None, "3"),
])
def test_printable_text_has_no_control_character_left(value, limit, shown):
    assert printable(value, limit) == shown


def test_seconds_are_a_positive_number_or_its_text_within_a_week():
    assert parse_seconds("2.5", "GATE_TIMEOUT") == 2.5 and parse_seconds(7 * 86400, "budget") == 7 * 86400
    for bad in ("abc", "0", "-1", "nan", True, None):
        with pytest.raises(ValueError, match="GATE_TIMEOUT must be a number of seconds"):
            parse_seconds(bad, "GATE_TIMEOUT")
    with pytest.raises(ValueError, match="budget must be a number of seconds above 0 and at most 604800, got 604801"):
        parse_seconds(604801, "budget")


@pytest.mark.parametrize("text, shown", [
    ("train.json", "train.json"),
    ("a\nb.json", "a\\nb.json"),                      # one line, and not mistaken for "a b.json"
    ("bad\udcffname", "bad\\xffname"),                # a byte that is not UTF-8, as surrogateescape keeps it
    ("x\x1b[31mred\r", "x\\x1b[31mred\\r"),          # no escape sequence reaches a terminal
    ("lone\ud800", "lone\\ud800"),
    ("caf\u00e9 data", "caf\u00e9 data"),
])
def test_escaped_names_stay_on_one_printable_line(text, shown):
    assert escaped(text) == shown
    assert escaped(text).isprintable()
