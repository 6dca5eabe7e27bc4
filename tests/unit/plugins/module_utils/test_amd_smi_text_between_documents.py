"""amd-smi's text between and after its JSON documents (one document per section, amd-smi 25.5, rocm-systems PR 667):
a line it logs between them or at exit is skipped; one that may hide a broken document never is. The entries are the
recorded RX 6600 metric entry (tests/fixtures/gpu/amd-smi), the lines of text hand-made."""

from __future__ import annotations

import json

import pytest

from ansible_collections.gpuops.preflight.plugins.module_utils import _amd_smi as amd_smi
from ansible_collections.gpuops.preflight.tests.unit.plugins.module_utils.fixtures import recording


def amd_entry(gpu=0):
    return dict(json.loads(recording("amd-smi", "rx6600_gfx1032_metric_proxmox.json"))[0], gpu=gpu)


WARNING_LINES = ("WARNING:root:amdsmi_get_gpu_metrics_info failed: AMDSMI_STATUS_NOT_SUPPORTED",
                 "2026-12-01 09:20:00,123 - amdsmi - WARNING - could not read ecc counts",
                 "[AMDSMI] metric: partial output")


@pytest.mark.parametrize("between", WARNING_LINES)
def test_amd_smi_text_between_documents_is_skipped(between):
    """amd-smi 25.5 printed one document per section (rocm-systems PR 667); a line it logs between them must not
    make the whole answer unreadable, nor leave only the documents after it."""
    first, second = amd_entry(), amd_entry(1)
    text = "%s\n%s\n%s\n" % (json.dumps([first], indent=4), between, json.dumps([second], indent=4))
    outcome, doc, _reason = amd_smi.classify(text, "", 0)
    assert outcome == "answered"
    assert [c["index"] for c in amd_smi.parse(doc)[0]] == [0, 1]


@pytest.mark.parametrize("text", [
    '[\n    {"gpu": 0}\n]\nWARNING: x\n[\n    {"gpu": 1,\n',                  # the second document cut short
    '[\n    {"gpu": 0}\n] WARNING: x\n[\n    {"gpu": 1}\n]\n',               # text on a document's own line
    '[\n    {"gpu": 0}\n]\nWARNING: x\n[\n    {"gpu": 1}\n]\nTraceback (most recent call last):\n',  # died after
])
def test_amd_smi_text_between_documents_never_hides_a_broken_one(text):
    assert amd_smi.extract_json(text) is None


# Text amd-smi prints after its last document: a warning or notice logged at exit, on lines of its own.
TRAILING_TEXT = WARNING_LINES + (
    "WARNING: amd-smi metric --json is deprecated; use amd-smi metric --json --gpu all\n"
    "         this form will be removed in a later release",
    "amdsmi: shutting down\n\n[AMDSMI] done",
)


@pytest.mark.parametrize("after", TRAILING_TEXT)
@pytest.mark.parametrize("documents", [1, 2])
def test_amd_smi_text_after_the_last_document_is_skipped(after, documents):
    """Lines of text after the last document (a warning at exit) are skipped as lines between documents are: the
    GPUs already printed stay the answer."""
    docs = [json.dumps([amd_entry(gpu)], indent=4) for gpu in range(documents)]
    text = "%s\n%s\n" % ("\nWARNING: x\n".join(docs), after)
    outcome, doc, reason = amd_smi.classify(text, "", 0)
    assert (outcome, reason) == ("answered", None)
    assert [c["index"] for c in amd_smi.parse(doc)[0]] == list(range(documents))


@pytest.mark.parametrize("text", [
    '[\n    {"gpu": 0}\n]\nWARNING: x\n[\n',                                 # a document after the text, cut short
    '[\n    {"gpu": 0}\n]\nWARNING: x\n{"gpu": 1,\n',                        # the same on one line
    '[\n    {"gpu": 0}\n] WARNING: x\n',                                     # text on the last document's own line
    '[\n    {"gpu": 0}\n]\nWARNING: x\nTraceback (most recent call last):\n  File "amd-smi", line 1\nKeyError: 1\n',
    'WARNING: x\n',                                                          # text and no document at all
    '[\n    {"gpu": 0},\n',                                                  # the only document cut short
])
def test_amd_smi_text_after_the_last_document_never_hides_a_broken_one(text):
    assert amd_smi.extract_json(text) is None
