"""A malformed pyproject.toml [tool.sinkbench] is a one-line error with exit 4 (issue 31)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from sinkbench.errors import SinkbenchError
from tests.test_faults import one_line_exit_4


@pytest.mark.parametrize("text,match", [
    (b"[tool]\nsinkbench = 3\n", r"\[tool.sinkbench\] must be a table of settings"),
    (b"[[tool.sinkbench]]\nx = 1\n", r"\[tool.sinkbench\] must be a table of settings"),
    (b'[tool.sinkbench]\nseq_len = = 3\n', r"not valid TOML"),
    (b'[tool.sinkbench]\ndataset = "caf\xe9"\n', r"not UTF-8 \(byte 0xe9"),
])
def test_a_malformed_pyproject_is_one_line(tmp_path, text, match):
    from sinkbench.measure.config import load_pyproject_defaults

    (tmp_path / "pyproject.toml").write_bytes(text)
    with pytest.raises(SinkbenchError, match=match) as e:
        load_pyproject_defaults(tmp_path)
    assert "\n" not in str(e.value)


def test_a_malformed_pyproject_stops_the_run_with_exit_4(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool]\nsinkbench = 3\n")
    cmd = [sys.executable, "-m", "pytest", "--pyargs", "sinkbench.hypotheses", "-p", "no:cacheprovider", "--model", "tiny-bb-bos"]
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    lines = one_line_exit_4(p.returncode, p.stdout + p.stderr)
    assert "[tool.sinkbench] must be a table" in lines[0] and len(lines) == 1, lines


@pytest.mark.parametrize("text,match", [
    (b'[tool.sinkbench]\ndataset = "caf\xe9"\n', "not UTF-8 (byte 0xe9 at offset 31)"),
    (b"tool = 3\n", "[tool.sinkbench] must be a table"),
    (b"[tool]\npytest = 3\n", "[tool.pytest] must be a table"),
    (b"[tool.sinkbench]\nseq_len = = 3\n", "not valid TOML"),
    (b"[tool]\nsinkbench = 3\n", "[tool.sinkbench] must be a table"),
])
def test_sinkbench_run_checks_the_pyproject_before_pytest_reads_it(tmp_path, text, match):
    """pytest parses pyproject.toml before any plugin loads: a Latin-1 byte, or a `tool` or
    `tool.pytest` that is not a table, ended in pytest's own traceback (exit 1) under
    `sinkbench run`. It now reads the file first: one line naming it, exit 4. (A bare `pytest`
    in that folder still fails inside pytest, before sinkbench's plugin exists.)"""
    (tmp_path / "pyproject.toml").write_bytes(text)
    cmd = [sys.executable, "-m", "sinkbench", "run", "-p", "no:cacheprovider", "--model", "tiny-bb-bos", "--collect-only"]
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    lines = one_line_exit_4(p.returncode, p.stdout + p.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"ERROR: {tmp_path / 'pyproject.toml'}: ") and match in lines[0], lines


def test_a_removed_setting_says_it_was_removed_and_why(tmp_path):
    """h3_permutations was read by H3's within-window permutation tests; H3's claims are now
    tested across windows and nothing reads it. A pyproject that still sets it is told so in one
    line (not "unknown key", nor silently ignored), and the bundled pyproject no longer sets it."""
    from pathlib import Path

    from sinkbench.measure.config import FIELDS, load_pyproject_defaults, make_settings

    (tmp_path / "pyproject.toml").write_text("[tool.sinkbench]\nalpha = 0.05\nh3_permutations = 2000\n")
    with pytest.raises(SinkbenchError, match=r"h3_permutations was removed: H3's claims are tested across windows") as e:
        load_pyproject_defaults(tmp_path)
    assert "\n" not in str(e.value) and "delete the line" in str(e.value)
    with pytest.raises(SinkbenchError, match="h3_permutations was removed"):
        make_settings(tmp_path)
    assert "h3_permutations" not in FIELDS
    repo = Path(__file__).resolve().parent.parent
    assert "h3_permutations" not in load_pyproject_defaults(repo)


def test_a_removed_setting_stops_sinkbench_run_in_one_line(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.sinkbench]\nh3_permutations = 2000\n")
    cmd = [sys.executable, "-m", "sinkbench", "run", "-p", "no:cacheprovider", "--model", "tiny-bb-bos", "--collect-only"]
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    lines = one_line_exit_4(p.returncode, p.stdout + p.stderr)
    assert len(lines) == 1 and "h3_permutations was removed: H3's claims are tested across windows" in lines[0], lines
