"""Progress reaches the terminal while the work runs, outside pytest's output capture."""
import pytest
import subprocess
import sys
import time
from pathlib import Path

from sinkbench.measure import progress

ROOT = Path(__file__).resolve().parent.parent


def test_progress_counts_passes_and_estimates_the_time_left(monkeypatch):
    lines = []
    clock = iter(range(0, 1000, 10))  # each reading 10 s later than the one before
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    with progress.tracking("H1 on m", 4, lines.append, every=5.0):
        for _ in range(2):
            progress.tick()
    progress.tick()  # outside any tracking: nothing happens
    assert lines == ["H1 on m: 1/4 passes, 10s elapsed, about 30s left", "H1 on m: 2/4 passes, 20s elapsed, about 20s left"]


@pytest.mark.slow
def test_progress_lines_are_not_captured(tmp_path):
    cmd = [sys.executable, "-m", "pytest", "hypotheses/test_dark_tail_necessary.py", "-p", "no:cacheprovider",
           "--model", "tiny-bb-bos", "--layers", "0", "--seq-len", "32", "--n-seqs", "8", "--batch-size", "2",
           "--results", str(tmp_path)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600).stdout  # a pipe, not a terminal
    assert "[sinkbench] H1 on tiny-bb-bos: measuring the grid" in out
    assert "[sinkbench] H1 on tiny-bb-bos: done in" in out
    # H1 fails on this model, so pytest prints a FAILURES section with anything it captured:
    # the progress lines come before it and are not among the captured output
    first = out.index("[sinkbench] H1 on tiny-bb-bos")
    assert "FAILURES" in out and first < out.index("FAILURES")
    assert "[sinkbench]" not in out[out.index("FAILURES"):].split("sinkbench: hypotheses x models")[0]
    quiet = subprocess.run(cmd + ["-q"], cwd=ROOT, capture_output=True, text=True, timeout=600).stdout
    assert "[sinkbench] H1" not in quiet
