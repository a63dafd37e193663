"""sinkbench.measure.budget: pass sizes from settings and (on CUDA) free memory."""
import pytest

from sinkbench.measure import budget
from sinkbench.measure.config import make_settings
from sinkbench.errors import SinkbenchError


def test_counts_are_auto_or_positive_integers():
    assert budget.parse_count("auto", "--batch-size") == "auto"
    assert budget.parse_count("8", "--batch-size") == 8
    for bad in ("0", "-2", "many", None):
        with pytest.raises(SinkbenchError, match="--batch-size: expected 'auto' or a positive integer"):
            budget.parse_count(bad, "--batch-size")


def test_settings_refuse_a_bad_pass_size():
    with pytest.raises(SinkbenchError, match="--filters-per-pass"):
        make_settings(filters_per_pass="zero")
    assert make_settings(batch_size=4).batch_size == "4"


def test_cpu_defaults(llama_subject):
    s = make_settings()
    assert s.windows_per_pass(llama_subject) == 16 and s.filters_per_pass_for(llama_subject) == 1
    assert make_settings(n_seqs=5).windows_per_pass(llama_subject) == 5
    assert make_settings(batch_size=3, filters_per_pass=4).filters_per_pass_for(llama_subject) == 4


def test_fit_leaves_headroom_and_stays_in_range():
    per_window = 10 * 2**20
    free = 4 * 2**30  # 4 GiB: half is 2 GiB, less two 128 MiB NLL chunks = 1792 MiB -> 179 windows
    assert budget.fit(free, per_window, 1000) == 179
    assert budget.fit(free, per_window, 16) == 16
    assert budget.fit(2**20, per_window, 16) == 1  # never zero


def test_window_bytes_grows_with_length_and_width(llama_subject):
    short, long = budget.window_bytes(llama_subject, 64), budget.window_bytes(llama_subject, 128)
    assert long > 2 * short  # the attention map term is quadratic in length
