"""The suite end to end on a zoo model, through pytest itself: results files, --resume
after a killed run, --baseline comparisons and --models-file."""
import pytest
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--seq-len", "64", "--n-seqs", "16", "-p", "no:cacheprovider", "-q"]


def run(*args, results):
    cmd = [sys.executable, "-m", "pytest", "hypotheses/test_dark_tail_necessary.py", "hypotheses/test_middle_dispensable.py",
           *ARGS, "--results", str(results), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def lines(d):
    return [json.loads(x) for x in (Path(d) / "results.jsonl").read_text().splitlines()]


def strip(rec):
    return {k: v for k, v in rec.items() if k != "time"}


@pytest.mark.slow
def test_resume_after_a_killed_run_equals_an_uninterrupted_run(tmp_path):
    full = tmp_path / "full"
    p = run("--model", "tiny-bb-bos", results=full)
    assert "H1" in p.stdout and "results appended" in p.stdout, p.stdout + p.stderr
    # simulate a run killed after its first case: keep only the first line
    part = tmp_path / "part"
    part.mkdir()
    first = (full / "results.jsonl").read_text().splitlines()[0]
    (part / "results.jsonl").write_text(first + "\n")
    p = run("--model", "tiny-bb-bos", "--resume", results=part)
    assert "1 skipped" in p.stdout, p.stdout
    assert sorted(map(json.dumps, map(strip, lines(part)))) == sorted(map(json.dumps, map(strip, lines(full))))


@pytest.mark.slow
def test_baseline_identical_runs_are_clean_and_changed_settings_fail(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    run("--model", "tiny-bb-bos", results=a)
    p = run("--model", "tiny-bb-bos", "--baseline", str(a), results=b)
    assert "no differences" in p.stdout, p.stdout
    p = run("--model", "tiny-bb-bos", "--baseline", str(a), "--alpha", "0.5", results=c)
    # the differing setting is named once, not as "every case changed"
    assert p.returncode != 0 and "settings differ: baseline used alpha=0.05, this run alpha=0.5" in p.stdout, p.stdout
    assert "\nonly in " not in p.stdout and "\nverdict " not in p.stdout


@pytest.mark.slow
def test_models_file(tmp_path):
    f = tmp_path / "models.toml"
    f.write_text('[[model]]\nname = "tiny-bb-nobos"\nfamily = "zoo"\n')
    p = run("--models-file", str(f), "-k", "dark_tail", results=tmp_path / "r")
    recs = lines(tmp_path / "r")
    assert recs and all(r["model"] == "tiny-bb-nobos" and r["family"] == "zoo" for r in recs), p.stdout
    f.write_text('[[model]]\nfamily = "zoo"\n')
    p = run("--models-file", str(f), results=tmp_path / "s")
    assert p.returncode != 0 and "needs name" in p.stderr + p.stdout


@pytest.mark.slow
def test_xdist_one_model_per_worker_keeps_results_intact(tmp_path):
    cmd = [sys.executable, "-m", "pytest", "hypotheses/test_dark_tail_necessary.py", "hypotheses/test_middle_dispensable.py",
           *ARGS, "-n", "2", "--dist", "loadgroup", "--model", "tiny-bb-bos", "--model", "tiny-bb-nobos", "--results", str(tmp_path)]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    recs = lines(tmp_path)  # every line parses
    assert len(recs) == 10 and {r["model"] for r in recs} == {"tiny-bb-bos", "tiny-bb-nobos"}, p.stdout[-2000:]
