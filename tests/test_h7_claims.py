"""H7's claims on synthetic per-window arrays (sinkbench.hypotheses.h7_streaming.verdicts): (a) and (b) isolate the
first token (issue 28), the sign logic of (b), (c), (d) (issue 30 item 2), the per-layer upper
bounds that leave a layer out of the Holm family, and the ladder's verdict (e): the weakest rung
that works, none, and an inconclusive ladder. Each claim is shown failing on a null."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sinkbench.hypotheses.h7_streaming import verdicts as claims_h7
from sinkbench.hypotheses.h7_streaming.verdicts import h7_verdicts
from sinkbench.hypotheses.h7_streaming.measurement import H7Test

N = 32


def arrays(full=2.0, window=3.0, sink1=2.1, control=2.95, recompute=2.2, sink4=None, seed=0, sd=0.02):
    """Mean NLLs per regime, each with its own window noise (sd) around a window-level draw."""
    rng = np.random.default_rng(seed)
    base = 0.1 * rng.standard_normal(N)
    at = lambda v: v + base + sd * rng.standard_normal(N)  # noqa: E731
    return H7Test(full=at(full), window=at(window), sink1=at(sink1), sink4=at(sink1 if sink4 is None else sink4),
                  control=at(control), recompute=None if recompute is None else at(recompute))


def verdicts(t, **kw):
    return h7_verdicts(t, alpha=0.05, min_gap=0.1, min_recovered=0.5, n_boot=200, **{"min_designated": 0.5, **kw})


def with_rungs(t, shares: dict, layers=(1, 15), late=None, seed=3, sd=0.02):
    """t with each rung at each layer recovering shares[rung] of sink1's recovery; late: layer ->
    the upper bound's share (default 1)."""
    rng = np.random.default_rng(seed)
    natural = t.window - t.sink1
    at = lambda share: t.window - share * natural + sd * rng.standard_normal(N)  # noqa: E731
    designated = {l: at(shares.get("dark_write", 0.0)) for l in layers}
    ladder = {(r, l): at(shares.get(r, 0.0)) for r in claims_h7.RUNG_ORDER[1:5] for l in layers}
    late = {l: at((late or {}).get(l, 1.0)) for l in layers}
    return dataclasses.replace(t, designated=designated, ladder=ladder, late=late)


# --------------------------------------------------------------------------- (a), (b) isolate the sink
def test_a_reads_the_first_token_alone_not_the_context_lost_beyond_the_window():
    """A model whose first token does nothing, with 0.3 nats of context beyond W: window - full
    passes the old (a) by far; window - sink1 is 0, so (a) fails (it would pass a learned-sink
    model otherwise)."""
    t = arrays(full=2.0, window=2.3, sink1=2.3, control=2.3, recompute=2.3)
    passed, m = verdicts(t)["a"]
    assert not passed and m["gap_window_full"] == pytest.approx(0.3, abs=0.02) and abs(m["gap"]) < 0.02


def test_a_passes_when_keeping_the_first_token_takes_back_more_than_the_minimum():
    passed, m = verdicts(arrays())["a"]
    assert passed and m["gap"] == pytest.approx(0.9, abs=0.02)


def test_b_passes_a_sink_that_restores_all_a_window_can_hold_though_the_lost_context_is_large():
    """sink1 = the recompute reference, both far above full (the context beyond W is lost):
    the old share of window - full is 0.3 (it would fail), the new share of the reference's
    recovery is 1."""
    t = arrays(full=2.0, window=3.0, sink1=2.7, control=3.0, recompute=2.7)
    passed, m = verdicts(t)["b"]
    assert passed and m["recovered_share"] == pytest.approx(1.0, abs=0.05)
    assert m["recovered_share_of_full"] == pytest.approx(0.3, abs=0.03) and m["reference"] == "recompute"


def test_b_fails_when_the_first_token_recovers_little_of_the_reference():
    passed, m = verdicts(arrays(window=3.0, sink1=2.85, recompute=2.2))["b"]
    assert not passed and m["recovered_share"] < 0.5


def test_c_fails_when_the_control_token_rescues_as_much():
    passed, m = verdicts(arrays(control=2.2))["c"]
    assert not passed and m["recovered_share"] > 0.5


# --------------------------------------------------------------------------- the sign logic (issue 30 item 2)
def test_b_and_c_fail_when_the_window_beats_the_reference():
    """Issue 30's case: the reference gap is -0.05 and the first token recovers nothing. The
    contrasts' means are positive (0 - 0.5 x -0.05 > 0), so without the gate (b) would pass with a
    recorded share of 0; with it, (b) and (c) fail and say the gap is not established."""
    t = arrays(full=2.0, window=2.0, sink1=2.0, control=2.0, recompute=2.05, sd=0.01)
    out = verdicts(t)
    for k in "bc":
        passed, m = out[k]
        assert not passed and m["gap_established"] is False and m["reference_gap"] < 0
    assert out["b"][1]["p_value"] < 0.05  # the contrast's own test rejects: only the gate stops it


def test_d_fails_when_sink1_recovers_nothing_even_if_its_test_rejects():
    """sink1 worse than the window (recovery -0.2) and a designated token a little worse (-0.05):
    mean(-0.05 - 0.5 x -0.2) > 0 rejects, but there is no positive recovery to take a share of."""
    t = arrays(full=2.0, window=2.5, sink1=2.7, control=2.5, recompute=2.2)
    t = dataclasses.replace(t, designated={3: t.window + 0.05 + 0.005 * np.random.default_rng(9).standard_normal(N)})
    passed, m = verdicts(t)["d"]
    assert m["p_value_by_layer"]["3"] < 0.05 and not passed and m["sink_works"] is False


def test_d_fails_when_b_fails_even_if_a_holds():
    t = arrays(window=3.0, sink1=2.85, recompute=2.2)  # (a) passes (0.15 > 0.1), (b) fails
    t = dataclasses.replace(t, designated={3: t.sink1.copy()})
    out = verdicts(t)
    assert out["a"][0] and not out["b"][0] and not out["d"][0] and out["d"][1]["p_value_by_layer"]["3"] < 0.05


@pytest.mark.parametrize("claim", ["b", "c", "d"])
def test_the_sign_gates_hold_the_false_pass_rate_at_a_negative_gap(claim):
    """Issue 30's null at 16 windows over 200 draws: gap -0.05, the first token and the control
    recover nothing, the designated token as much as sink1; (b), (c), (d) pass in at most alpha
    of the draws (before the gates: 400 of 400)."""
    passes = []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        n = 16
        full = 2.0 + 0.1 * rng.standard_normal(n)
        window = full - 0.05 + 0.05 * rng.standard_normal(n)
        sink1 = window + 0.02 * rng.standard_normal(n)
        t = H7Test(full=full, window=window, sink1=sink1, sink4=sink1, control=window + 0.02 * rng.standard_normal(n),
                   designated={0: sink1 + 0.01 * rng.standard_normal(n)}, recompute=full)
        passes.append(h7_verdicts(t, alpha=0.05, min_gap=0.1, min_recovered=0.5, n_boot=50)[claim][0])
    assert np.mean(passes) <= 0.05


# --------------------------------------------------------------------------- upper bounds and the ladder
def test_a_layer_where_even_the_late_natural_sink_falls_short_leaves_the_family():
    t = with_rungs(arrays(), {"state_copy": 1.0}, layers=(1, 15, 22), late={22: 0.1})
    out = verdicts(t)
    m = out["e"][1]
    assert m["no_write_can_pass"] == [22] and m["upper_bound"]["22"] == pytest.approx(0.1, abs=0.05)
    assert all(r["p_value_by_layer"]["22"] is None for r in m["rungs"].values())
    assert out["d"][1]["p_value_by_layer"]["22"] is None and 22 not in out["d"][1]["tested_layers"]
    # the family: 3 + 5 rungs x 2 layers left in (a blocked layer costs nothing)
    seen = []
    real = claims_h7.holm
    try:
        claims_h7.holm = lambda p: seen.append(len(p)) or real(p)
        verdicts(t)
    finally:
        claims_h7.holm = real
    assert seen == [3 + 5 * 2]


def test_the_cut_is_read_from_the_selection_windows_not_the_test_windows():
    """Which layers leave the Holm family is chosen from data, so from the selection windows'
    upper bound (H7Test.cut_bound) where it was run: a layer the test windows would block stays
    in when the selection windows' bound clears the minimum, and the other way round. Resampling
    the test windows (verdict stability) leaves the cut as it is."""
    from sinkbench.stats.stability import take_windows

    t = with_rungs(arrays(), {"state_copy": 1.0}, layers=(1, 15, 22), late={22: 0.1})
    m = verdicts(dataclasses.replace(t, cut_bound={1: 1.0, 15: 0.2, 22: 0.9}))["e"][1]
    assert m["no_write_can_pass"] == [15] and m["cut_read_from"] == "selection windows"
    assert m["upper_bound"]["22"] == pytest.approx(0.1, abs=0.05) and m["upper_bound_selection"]["15"] == 0.2
    assert m["rungs"]["state_copy"]["p_value_by_layer"]["22"] is not None
    assert m["rungs"]["state_copy"]["p_value_by_layer"]["15"] is None
    resampled = take_windows(dataclasses.replace(t, cut_bound={15: 0.2}), np.zeros(N, dtype=int))
    assert resampled.cut_bound == {15: 0.2}
    assert verdicts(t)["e"][1]["cut_read_from"] == "test windows"  # no selection run: the old cut


def test_the_weakest_rung_that_works_is_named():
    """Rungs 1-3 recover nothing, rungs 4 and 5 as much as the first token: kv_transplant is the
    weakest that works; the positive control passes; (d) (rung 1) fails."""
    t = with_rungs(arrays(), {"kv_transplant": 1.0, "state_copy": 1.0})
    out = verdicts(t)
    passed, m = out["e"]
    assert passed and m["weakest_passing_rung"] == "kv_transplant" and m["conclusive"]
    assert m["positive_control"]["passes"] and m["positive_control"]["layer"] == 1
    assert not m["rungs"]["value_drain"]["passes"] and m["rungs"]["kv_transplant"]["passing_layers"] == [1, 15]
    assert "kv_transplant" in m["answer"] and not out["d"][0]


def test_no_rung_works_but_the_positive_control_is_inconclusive():
    """Nothing recovers, the state copy included: (e) fails and the ladder says it is
    inconclusive (the failing rungs say nothing about the properties they add)."""
    passed, m = verdicts(with_rungs(arrays(), {}))["e"]
    assert not passed and not m["conclusive"] and m["answer"].startswith("inconclusive")
    assert m["weakest_passing_rung"] is None


def test_every_rung_at_its_boundary_rarely_passes():
    """Null: every rung recovers exactly h7_min_designated of sink1's recovery (noise 0.2 nats);
    (e) passes in about alpha of the draws or fewer."""
    passes = []
    for seed in range(40):
        t = with_rungs(arrays(seed=seed), {r: 0.5 for r in claims_h7.RUNG_ORDER}, seed=100 + seed, sd=0.2)
        passes.append(verdicts(t)["e"][0])
    assert np.mean(passes) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 40)


def test_without_a_ladder_the_verdicts_keep_their_old_family():
    t = dataclasses.replace(arrays(recompute=None), designated={0: arrays().sink1})
    out = verdicts(t)
    assert out["a"][1]["reference"] == "full" and out["e"][1]["ladder_layers"] == []


def test_a_learned_sink_alone_that_works_is_the_weakest_working_rung():
    """Rung 6 (learned_sink, at the input: layer -1) recovers as much as the first token, the
    edits 1-5 nothing: it is named, and the ladder's layers stay the edits' (the positive
    control is still rung 5 at layer 1, which fails: a passing rung is a finding either way)."""
    t = with_rungs(arrays(), {})
    natural = t.window - t.sink1
    t.ladder[("learned_sink", -1)] = t.sink1 + 0.02 * np.random.default_rng(4).standard_normal(N)
    passed, m = verdicts(t)["e"]
    assert passed and m["weakest_passing_rung"] == "learned_sink" and m["ladder_layers"] == [1, 15]
    assert m["rungs"]["learned_sink"]["layers"] == [-1] and not m["positive_control"]["passes"]
    assert natural.mean() > 0.5
