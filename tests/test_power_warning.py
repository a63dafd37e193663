"""Before a run starts, sinkbench says which hypotheses cannot pass with so few windows."""
import pytest
import subprocess
import sys
from pathlib import Path

from sinkbench.stats.inference import min_windows, smallest_p

ROOT = Path(__file__).resolve().parent.parent


def collect(n_seqs: int) -> str:
    cmd = [sys.executable, "-m", "pytest", "hypotheses", "--co", "-q", "-p", "no:cacheprovider", "--model", "tiny-bb-bos",
           "--layers", "0", "--seq-len", "64", "--n-seqs", str(n_seqs)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300).stdout


def test_min_windows_is_where_the_best_p_value_survives_holm():
    for family in (1, 4, 9, 12, 72):
        n = min_windows(0.05, family)
        assert family * smallest_p(n) < 0.05 <= family * smallest_p(n - 1)


@pytest.mark.slow
def test_too_few_windows_are_named_before_the_run():
    out = collect(3)
    assert "with --n-seqs 3 no H1 verdict on tiny-bb-bos can pass: its Holm family of 6 tests needs >= 5 windows" in out
    assert "no H5 verdict" in out
    assert "[sinkbench] warning" not in collect(16)


def test_a_family_that_grows_with_the_layers_is_sized_from_the_models_grid():
    """H7's family grows with the grid (3 + one per grid layer and the ladder's early layer +
    the ladder's 8 rung x layer tests): over its five cases 42 p-values on a thirty-layer grid
    (the warning sizes it from the model's grid)."""
    from types import SimpleNamespace

    from sinkbench.run.plugin import underpowered
    from sinkbench.registry import units

    (test,) = units()["H7"].tests
    items = [SimpleNamespace(function=SimpleNamespace(sinkbench_test=(units()["H7"], test)),
                             callspec=SimpleNamespace(params={"model_name": "m"})) for _ in range(5)]
    assert underpowered(items, 16, 0.05, n_layers=lambda model: 1) == []
    n = min_windows(0.05, 42) - 1
    (line,) = underpowered(items, n, 0.05, n_layers=lambda model: 30)
    assert f"its Holm family of 42 tests needs >= {n + 1} windows" in line
