"""scripts/changelog-lint: the fragments are valid, a bad one is refused, a trial release builds."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "changelog-lint"
ENV = dict(os.environ, GPUOPS_VENV=str(pathlib.Path(sys.executable).parents[1]))


def lint(*args):
    proc = subprocess.run([str(SCRIPT)] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=600, check=False, universal_newlines=True, env=ENV)
    return proc.returncode, proc.stdout


def tree_state():
    """What a trial release must not touch: the changelog files of this clone."""
    names = sorted(p for p in (ROOT / "changelogs").rglob("*") if p.is_file())
    return [(str(p), p.read_bytes()) for p in names], (ROOT / "CHANGELOG.rst").exists()


def test_every_fragment_and_changelog_yaml_are_valid_and_a_trial_release_builds():
    before = tree_state()
    code, out = lint("--trial-release")
    assert code == 0, out
    assert "changelog-lint: trial release" in out
    assert tree_state() == before


def test_a_bad_fragment_is_refused_with_the_problem_named(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text('minor_changes:\n  - "unclosed ``literal"\nnot_a_section:\n  - x\n')
    code, out = lint(bad)
    assert code == 1
    assert "invalid section: not_a_section" in out and "Inline literal start-string without end-string" in out
    good = tmp_path / "good.yml"
    good.write_text("bugfixes:\n  - history - a fixed thing (https://example.invalid/1).\n")
    assert lint(good)[0] == 0


def test_an_unknown_option_exits_2():
    code, out = lint("--frobnicate")
    assert code == 2 and "unknown option --frobnicate" in out
