"""--expect end to end, through pytest in a subprocess on a zoo model (one layer, 8 windows
of 64 tokens, H1 and H4; each run takes about 15 s here): the nightly loop of the README."""
import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest

from sinkbench.run.cli import main
from sinkbench.read.compare import case_label, compare_records
from sinkbench.read.results import read_jsonl

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["hypotheses/test_dark_tail_necessary.py", "hypotheses/test_designated_sink.py", "--model", "tiny-bb-bos",
        "--layers", "0", "--n-seqs", "8", "--seq-len", "64", "-p", "no:cacheprovider", "-q", "-rx"]


def run(*args, results):
    cmd = [sys.executable, "-m", "pytest", *ARGS, "--results", str(results), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """The first run (some hypotheses fail on this model: findings) and its expected.toml."""
    d = tmp_path_factory.mktemp("first")
    p = run(results=d / "run")
    assert p.returncode == 1 and "failed" in p.stdout, p.stdout[-3000:] + p.stderr[-3000:]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["expect", str(d / "run")]) == 0
    (d / "expected.toml").write_text(out.getvalue())
    return d


@pytest.mark.slow
def test_a_run_checked_against_its_own_expectations_exits_0_with_findings_as_xfail(first, tmp_path):
    p = run("--expect", str(first / "expected.toml"), results=tmp_path)
    failing = sum(r["verdict"] == "fail" for r in read_jsonl(first / "run" / "results.jsonl"))
    assert p.returncode == 0, p.stdout[-3000:]
    assert f"{failing} xfailed" in p.stdout and " failed" not in p.stdout
    assert "verdict fail as expected: hypothesis=H1 model=tiny-bb-bos layer=0" in p.stdout  # -rx reason
    assert " as expected, 0 flipped, 0 drifted, 0 new, 0 missing" in p.stdout


@pytest.mark.slow
def test_a_changed_threshold_exits_1_and_names_each_flipped_case(first, tmp_path):
    p = run("--expect", str(first / "run"), "--alpha", "0.5", results=tmp_path)  # a results folder as expectations
    flips = compare_records(read_jsonl(first / "run" / "results.jsonl"), read_jsonl(tmp_path / "results.jsonl")).verdict_changes
    assert flips, "alpha 0.5 flipped no verdict on this model: pick another threshold for this test"
    assert p.returncode == 1, p.stdout[-3000:]
    assert f"{len(flips)} flipped" in p.stdout and f"{len(flips)} failed" in p.stdout
    for key, old, new in flips:
        assert f"flipped  {old} -> {new}: {case_label(key)}" in p.stdout
    assert "settings differ: expectation used alpha=0.05, this run alpha=0.5" in p.stdout
    assert "verdict flipped: expected fail, got pass" in p.stdout  # the failure itself, numbers below it


@pytest.fixture(scope="module")
def edited(first, tmp_path_factory):
    """Simulates another checkpoint under the same name: H1's dark_all_delta was 10 nats higher;
    one case lacks an expectation (new) and one expectation matches nothing (missing)."""
    text = (first / "expected.toml").read_text()
    head, *cases = text.split("\n[[case]]\n")
    h1 = next(c for c in cases if 'hypothesis = "H1"' in c)
    line = next(x for x in h1.splitlines() if x.startswith("metrics.dark_all_delta = "))
    value, lo, hi = (float(x) for x in line.split("value = ")[1].replace("ci = [", "").rstrip("] }").split(", "))
    moved = f"metrics.dark_all_delta = {{ value = {value + 10!r}, ci = [{lo + 10!r}, {hi + 10!r}] }}"
    new_case = next(c for c in cases if "H4" in c)
    cases = [c.replace(line, moved) for c in cases if c is not new_case] + [h1.replace("layer = 0", "layer = 99")]
    path = tmp_path_factory.mktemp("edited") / "expected.toml"
    path.write_text("\n[[case]]\n".join([head, *cases]))
    return path


@pytest.mark.slow
def test_drift_new_and_missing_against_an_edited_expected_toml(edited, tmp_path):
    p = run("--expect", str(edited), results=tmp_path)
    assert p.returncode == 1 and "1 failed" in p.stdout, p.stdout[-3000:]  # the drift; new and missing are not red
    assert "0 flipped, 1 drifted, 1 new, 1 missing" in p.stdout
    assert "drifted  dark_all_delta" in p.stdout and "left the expected interval" in p.stdout
    assert "new      " in p.stdout and "missing  fail: hypothesis=H1 model=tiny-bb-bos layer=99" in p.stdout


@pytest.mark.slow
def test_tolerance_absorbs_the_drift_and_strict_fails_on_missing_cases(edited, tmp_path):
    p = run("--expect", str(edited), "--expect-tolerance", "1.0", results=tmp_path / "r1")
    assert p.returncode == 0 and "0 drifted, 1 new, 1 missing" in p.stdout, p.stdout[-3000:]
    p = run("--expect", str(edited), "--expect-strict", "-k", "dark_tail", "--expect-tolerance", "1.0", results=tmp_path / "r2")
    # --expect-strict: the H4 expectations this -k run did not reach are missing, and that fails the run
    assert p.returncode == 1 and "1 xfailed" in p.stdout and "failed" not in p.stdout.replace("xfailed", ""), p.stdout[-3000:]
    assert "missing  fail: hypothesis=H4" in p.stdout


def test_missing_or_bad_baseline_and_expectations_are_usage_errors(tmp_path):
    # (each start costs ~6 s of imports; the other bad inputs are unit-tested in test_expect.py / test_compare.py)
    for args, message in ((["--baseline", str(tmp_path / "typo")], "--baseline"),
                          (["--expect", str(ROOT / "pyproject.toml")], "no [[case]] tables")):
        p = run(*args, results=tmp_path / "r")
        assert p.returncode == 4 and message in p.stderr, p.stdout + p.stderr  # pytest's usage error, before any model loads
        assert len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
