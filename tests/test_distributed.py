"""H3 measurements on hand-made attention and position tables, with cases where each claim must fail."""
from collections import Counter

import numpy as np
import torch

from sinkbench.claims import h3_raw, h3_verdicts
from sinkbench.distributed import PositionTable, frequent_token_ids, is_punct_or_space, uniform_received
from sinkbench.metrics import received_moments


def test_received_moments_and_uniform_expectation():
    t = 6
    uniform = torch.tril(torch.ones(t, t)) / torch.arange(1, t + 1)[:, None]
    m = received_moments(uniform[None, None])[0]
    assert np.allclose(m[0].numpy()[:-1] / (t - 1 - np.arange(t - 1)), uniform_received(t)[:-1])
    bar = torch.tril(torch.ones(t, t)) * 0.01
    bar[2:, 2] = 1.0  # every query after 2 puts (almost) everything on key 2
    m = received_moments(bar[None, None])[0]
    assert m[0, 2] == 3.0 and m[1, 2] == 3.0  # sum and sum of squares over queries 3, 4, 5


def table(n=20, p=40, sink_on_frequent=True, dark_sinks=True, seed=0, n_sinks=2, position0_sink=True):
    rng = np.random.default_rng(seed)
    frequent = rng.random((n, p)) < 0.2
    sink = np.zeros((n, p), bool)
    for i in range(n):
        pool = np.flatnonzero(frequent[i] if sink_on_frequent else ~frequent[i])
        sink[i, rng.choice(pool, n_sinks, replace=False)] = True
    bar = np.where(sink, 8.0, 1.0) + rng.random((n, p))
    dark = rng.random((n, p)) + (3.0 * sink if dark_sinks else 0)
    cos = rng.random((n, p)) * 0.5 + (0.5 * sink if dark_sinks else 0)
    return PositionTable(bar, np.full((n, p), 0.5), sink, dark, cos, frequent, np.zeros((n, p), int),
                         np.ones(n), np.ones(n), np.ones(n), [1], np.full(n, position0_sink))


def h3(t):
    return h3_verdicts({"x": h3_raw(t)}, alpha=0.05, n_boot=200)


def test_h3_claims_hold_on_a_constructed_distributed_sink():
    out = h3(table())
    assert all(out["x", c][0] for c in "1234")
    assert out["x", "1"][1]["n_windows"] == 20 and len(out["x", "2"][1]["per_window"]) == 20


def test_h3_claims_fail_where_they_should():
    out = h3(table(sink_on_frequent=False, dark_sinks=False))
    assert not out["x", "1"][0]  # sinks on rare tokens
    assert not out["x", "3"][0]  # sink profiles no closer to position 0's
    none = table(n_sinks=1, position0_sink=False)
    none.sink_like[:] = False
    out = h3(none)
    assert not out["x", "4"][0] and not out["x", "1"][0] and not out["x", "3"][0]
    assert out["x", "1"][1]["n_windows"] == 0
    flat = table()
    flat.dark_ratio = np.random.default_rng(3).random(flat.dark_ratio.shape)
    flat.bar_ratio = np.random.default_rng(4).random(flat.bar_ratio.shape)
    assert not h3(flat)["x", "2"][0]


def test_h3_claims_do_not_pool_positions():
    """One window with many sink-like frequent positions and 15 windows with none: pooled over
    (window, position) cells this looks overwhelming; over windows it is one observation."""
    t = table(n=16, n_sinks=1)
    t.sink_like[:] = False
    t.sink_like[0] = t.frequent[0]
    t.sink_like[0, :3] = True
    assert t.sink_like.sum() >= 3
    out = h3(t)
    assert out["x", "1"][1]["n_windows"] == 1 and not out["x", "1"][0]


def claim4(counts_extra, position0_sink=True, n=16):
    t = table(n=n, n_sinks=1, position0_sink=position0_sink)
    t.sink_like[:] = False
    for i, c in enumerate(counts_extra):
        t.sink_like[i, :c] = True
    return h3(t)["x", "4"]


def test_h3_claim4_needs_a_typical_window_with_two_sinks():
    # 8 of 16 windows with one sink besides position 0 (the old Wilcoxon of counts passed this)
    passed, m = claim4([1] * 8 + [0] * 8)
    assert not passed and m["share_windows_with_min_sinks"] == 0.5
    # 14 of 16 windows with two or more sinks (position 0 and one more)
    passed, m = claim4([1] * 14 + [0] * 2)
    assert passed and m["windows_with_min_sinks"] == 14 and m["p_value_raw"] < 0.003
    lo, hi = m["share_windows_with_min_sinks_ci"]
    assert lo < 14 / 16 < hi
    # position 0 counts only when it meets the rule; windows with no sink at all still count
    passed, m = claim4([1] * 14 + [0] * 2, position0_sink=False)
    assert not passed and m["per_window_counts"] == [1] * 14 + [0] * 2 and m["n_windows"] == 16


def test_frequency_and_punctuation():
    assert frequent_token_ids(Counter({1: 50, 2: 10, **{i: 1 for i in range(3, 300)}}), 0.01) == {1, 2, 3}
    assert is_punct_or_space("Ċ") and is_punct_or_space("Ġ.") and is_punct_or_space("),") and not is_punct_or_space("Ġthe")


def test_measure_positions_runs_on_a_model(llama_subject, tmp_path, monkeypatch):
    from sinkbench.distributed import choose_active_layers, measure_positions
    from sinkbench.spectrum import spectrum_for

    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    windows = torch.randint(3, 259, (4, 24), generator=torch.Generator().manual_seed(0))
    active = choose_active_layers(llama_subject, windows[:2], 2)
    assert active and 0 not in active
    table = measure_positions(llama_subject, windows, spectrum_for(llama_subject, 8), Counter(windows.flatten().tolist()), 2,
                              active_layers=active)
    p = 24 - 1 - 8
    assert table.bar_ratio.shape == (4, p) and table.sink_like.shape == (4, p) and table.active_layers == active
    assert np.all(np.isfinite(table.dark_ratio)) and np.all(table.profile_cos <= 1 + 1e-6)
