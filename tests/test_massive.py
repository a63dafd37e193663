"""H6 (massive activations are dark): detection on synthetic hidden states with known
massive coordinates, a null with none, the dark-share test against random coordinate sets
(its false-pass rate and its power, measured here and quoted in docs/calibration.md),
claim (b)'s verdicts on synthetic per-window arrays, and the whole grid on a tiny model
whose BOS embedding carries a massive coordinate."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sinkbench.hypotheses.h6_massive import verdicts as claims_h6
from sinkbench.hypotheses.h6_massive.verdicts import H6Test, dark_share_test, h6_verdicts, per_coordinate_test
from sinkbench.measure.config import Settings
from sinkbench.hypotheses.h6_massive.measurement import (Detection, carrier_mask, carrier_positions, coordinate_dark_shares, detect,
                                                         edited_positions, magnitudes, rank_pvalue, random_set_shares,
                                                         set_carriers, set_share, threshold)
from sinkbench.measure.spectrum import Spectrum, folded_unembedding, right_singular_basis

W, L, T, D = 8, 5, 16, 64


def hidden_states(seed: int = 0, coords=(3, 7), value: float = 5000.0, onset: int = 2, positions=(0,),
                  jitter: float = 0.05) -> dict:
    """layer -> [W, T, D] Gaussian states (median |h| about 0.67); coords at `positions` set to
    +-value from layer `onset` on, times 1 + jitter x N(0, 1) per window (jitter 0: the same
    state in every window, as a BOS sink)."""
    g = torch.Generator().manual_seed(seed)
    scale = 1 + jitter * torch.randn(W, 1, generator=g)
    out = {}
    for l in range(L):
        h = torch.randn(W, T, D, generator=g)
        if l >= onset:
            for p in positions:
                h[:, p, list(coords)] = scale * value * torch.tensor([1.0, -1.0][: len(coords)] if len(coords) == 2 else 1.0)
        out[l] = h
    return out


# --------------------------------------------------------------------------- detection
def test_sun_criterion_finds_the_known_coordinates_layers_and_the_sink():
    det = detect(magnitudes(hidden_states()), min_ratio=100.0)
    assert det.criterion == "sun"
    assert det.coordinates == [3, 7]
    assert sorted(det.by_layer) == [2, 3, 4]
    assert det.edit_layer == 2 and det.sink_coordinates == [3, 7]


def test_below_sun_s_absolute_floor_the_scale_free_variant_finds_them():
    # 80 < 100 (Sun's floor) but > 100 x the median |h| of a standard Gaussian (0.67)
    det = detect(magnitudes(hidden_states(value=80.0)), min_ratio=100.0)
    assert det.criterion == "ratio" and det.coordinates == [3, 7]


def test_a_null_without_massive_coordinates_is_not_present_and_does_not_crash():
    mag = magnitudes(hidden_states(value=3.0))
    assert not detect(mag, min_ratio=100.0).present
    out = h6_verdicts(mag, None, np.full(D, 0.05), alpha=0.05, min_ratio=100.0, min_fold=5.0, tolerance=0.1,
                      n_sets=999, n_boot=50)
    assert set(out) == set(claims_h6.CLAIMS)
    assert all(not passed and m["present"] is False and "no massive" in m["reason"] for passed, m in out.values())


def test_coordinates_off_the_sink_are_present_but_give_no_intervention():
    det = detect(magnitudes(hidden_states(positions=(5,))), min_ratio=100.0)
    assert det.coordinates == [3, 7] and det.edit_layer is None and det.sink_coordinates == []


def test_one_window_s_outlier_is_not_a_massive_coordinate():
    h = hidden_states(value=3.0)
    h[3][0, 4, 11] = 5000.0  # one window, one layer
    assert not detect(magnitudes(h), min_ratio=100.0).present


def test_carrier_positions_count_windows_per_position():
    h = hidden_states(positions=(0, 9))
    mag = magnitudes(h)
    thr = threshold(mag.median[:, 2], "sun", 100.0)
    assert carrier_positions(h[2], [3, 7], thr) == {0: W, 9: W}


# --------------------------------------------------------------------------- claim (a)
def spectrum_with_dark(d: int = 200, dark=(), n_bands: int = 20, seed: int = 0) -> Spectrum:
    """The spectrum of W_U diag(g) for a Gaussian W_U whose final-norm gain g is small on `dark`
    coordinates: their directions fall into band K, as a small final-norm gain does in a model."""
    g = torch.Generator().manual_seed(seed)
    w_u = torch.randn(4 * d, d, generator=g, dtype=torch.float64)
    gain = torch.ones(d, dtype=torch.float64)
    gain[list(dark)] = 1e-3
    b, s = right_singular_basis(folded_unembedding(w_u, gain))
    return Spectrum(b.float(), s.float(), n_bands)


def test_band_k_shares_are_the_diagonal_of_the_projector():
    sp = spectrum_with_dark(dark=(1, 2))
    diag = coordinate_dark_shares(sp)
    assert diag.sum() == pytest.approx(sp.band_dim([sp.n_bands]), rel=1e-5)
    assert np.allclose(diag, torch.diagonal(sp.keep([sp.n_bands])).numpy(), atol=1e-5)
    assert diag[[1, 2]].min() > 0.99  # a near-zero gain puts e_i in the dark tail


def test_rank_pvalue_is_exact_and_never_zero():
    null = np.arange(99, dtype=float)
    assert rank_pvalue(1000.0, null) == pytest.approx(1 / 100)
    assert rank_pvalue(-1.0, null) == 1.0
    assert rank_pvalue(float("nan"), null) == 1.0


def test_random_sets_have_the_right_size_and_mean():
    diag = np.linspace(0, 1, 50)
    shares = random_set_shares(diag, 3, 4000, seed=1)
    assert shares.shape == (4000,)
    assert shares.mean() == pytest.approx(diag.mean(), abs=0.01)
    assert random_set_shares(diag, 50, 5, seed=1) == pytest.approx(np.full(5, diag.mean()))


def passes_a(diag, coords, min_fold: float = 5.0, alpha: float = 0.05) -> bool:
    """Claim (a)'s raw criterion: every coordinate of the set dark (the weakest member's p and fold)."""
    r = per_coordinate_test(diag, list(coords), min_fold)
    return r["p_raw"] < alpha and r["min_fold_over_chance"] >= min_fold


def passes_set_mean(diag, coords, min_fold: float = 5.0, n_sets: int = 999, alpha: float = 0.05) -> bool:
    """The criterion before issue 30: the set's mean share against random sets and the fold."""
    r = dark_share_test(diag, list(coords), n_sets)
    return r["p_raw_set_mean"] < alpha and r["dark_share"] >= min_fold * r["chance_dark_share"]


def false_pass_and_power(size: int, trials: int = 300, seed: int = 0) -> tuple[float, float]:
    """Claim (a)'s pass rate on random coordinate sets (the null) and on the dark ones, over
    `trials` draws, on a spectrum with 3 dark (small-gain) coordinates out of 200 (band K: 10
    dimensions), as a model's few massive coordinates among hundreds."""
    dark = (0, 67, 134)
    diag = coordinate_dark_shares(spectrum_with_dark(dark=dark))
    rng = np.random.default_rng(seed)
    null = np.mean([passes_a(diag, rng.choice(200, size, replace=False)) for _ in range(trials)])
    power = np.mean([passes_a(diag, rng.choice(dark, size, replace=False)) for _ in range(trials // 10)])
    return float(null), float(power)


@pytest.mark.parametrize("size", [1, 3])
def test_the_dark_share_test_false_passes_rarely_on_random_coordinates(size):
    """The null: the 'massive' coordinates are random ones. The rank test is exact, so its raw
    false-pass rate is at most alpha (the minimum fold makes it rarer still); measured."""
    null, power = false_pass_and_power(size)
    assert null <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 300)
    assert power == 1.0


def test_the_dark_share_test_fails_on_random_coordinates():
    diag = coordinate_dark_shares(spectrum_with_dark(dark=(0, 20, 40)))
    assert not passes_a(diag, [5, 77, 130])
    assert passes_a(diag, [0, 20, 40])


def test_a_dark_set_fails_claim_a_below_the_minimum_fold():
    """A set above every random one but below min_fold x chance fails: 'far above' is a minimum."""
    diag = np.full(100, 0.05)
    diag[0] = 0.2  # 4x chance
    assert per_coordinate_test(diag, [0], 5.0)["p_raw"] < 0.05
    assert not passes_a(diag, [0], min_fold=5.0)
    assert passes_a(diag, [0], min_fold=3.0)


def partners_null(trials: int = 400, seed: int = 0) -> tuple[float, float]:
    """Issue 30's null for claim (a): one dark coordinate and 1-2 partners at about 0.72x chance
    (not dark: the claim "the massive coordinates are dark" is false). Returns the pass rates
    of the set-mean criterion (before) and the per-coordinate one (now) over `trials` sets."""
    diag = coordinate_dark_shares(spectrum_with_dark(dark=(0,)))
    chance = diag.mean()
    partners = np.flatnonzero(np.abs(diag / chance - 0.72) <= 0.05)  # coordinates at 0.72x chance, +-0.05
    assert partners.size >= 2
    rng = np.random.default_rng(seed)
    sets = [[0, *rng.choice(partners, rng.integers(1, 3), replace=False)] for _ in range(trials)]
    return (float(np.mean([passes_set_mean(diag, c) for c in sets])), float(np.mean([passes_a(diag, c) for c in sets])))


def test_one_dark_coordinate_does_not_carry_partners_at_072_chance():
    """The set mean passed this null every time (one dark coordinate carries the rest); the
    per-coordinate test fails it at the rate its weakest member's exact p allows."""
    before, after = partners_null()
    assert before > 0.9  # the old criterion's false pass, kept as the witness that the null bites
    assert after <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 400)


def test_one_dark_coordinate_with_uniformly_random_partners_passes_at_most_alpha():
    """The intersection-union test's boundary: a partner is a uniformly random coordinate, so
    its exact p is uniform and the claim passes at most alpha of the time (400 sets)."""
    diag = coordinate_dark_shares(spectrum_with_dark(dark=(0,)))
    rng = np.random.default_rng(5)
    sets = [[0, *rng.choice(np.arange(1, 200), rng.integers(1, 3), replace=False)] for _ in range(400)]
    assert np.mean([passes_set_mean(diag, c) for c in sets]) > 0.9  # the set mean's false pass
    assert np.mean([passes_a(diag, c) for c in sets]) <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 400)


def test_a_set_of_dark_coordinates_passes_and_records_each_coordinate():
    diag = coordinate_dark_shares(spectrum_with_dark(dark=(0, 67, 134)))
    r = per_coordinate_test(diag, [0, 67, 134], 5.0)
    assert passes_a(diag, [0, 67, 134]) and not passes_a(diag, [0, 67, 5])
    assert set(r["per_coordinate"]) == {0, 67, 134}
    assert all(v["p_raw"] <= 3 / 200 and v["fold_over_chance"] > 5 for v in r["per_coordinate"].values())
    assert per_coordinate_test(diag, [0, 5], 5.0)["weakest_coordinate"] == 5


def test_claim_a_records_the_magnitude_weighted_share_and_near_threshold_coordinates():
    """Coordinate 3 at 5000, coordinate 7 just above Sun's 1000x median (1.05x the threshold):
    7 is flagged near threshold, and the weighted share follows the large coordinate."""
    h = hidden_states(coords=(3,), jitter=0.0)
    mag0 = magnitudes(h)
    level = 1.05 * 1000 * float(np.median(mag0.median[:, 2:]))
    for l in range(2, L):
        h[l][:, 0, 7] = level
    diag = np.full(D, 0.05)
    diag[3] = 0.9
    out = h6_verdicts(magnitudes(h), None, diag, alpha=0.05, min_ratio=100.0, min_fold=5.0, tolerance=0.1,
                      n_sets=999, n_boot=50)
    m = out["a"][1]
    assert m["coordinates"] == [3, 7] and 7 in m["near_threshold"] and 3 not in m["near_threshold"]
    assert m["near_threshold"][7] == pytest.approx(1.05, abs=0.03)
    assert m["dark_share"] == pytest.approx((0.9 + 0.05) / 2)
    assert m["magnitude_weighted_share"] > 0.85  # 5000^2 against about 1700^2
    assert not out["a"][0] and m["weakest_coordinate"] == 7  # 7 is at chance: the claim fails on it


# --------------------------------------------------------------------------- claim (b)
def test_arrays(rng, mean_rise=0.0, zero_rise=1.5, zero_drop=0.2, n=16) -> H6Test:
    base = 3 + 0.1 * rng.standard_normal(n)
    mass = 0.5 + 0.02 * rng.standard_normal(n)
    noise = lambda s: s * rng.standard_normal(n)  # noqa: E731
    return H6Test(base_nll=base, base_mass=mass, mean_nll=base + mean_rise + noise(0.01), mean_mass=mass + noise(0.005),
                  zero_nll=base + zero_rise + noise(0.05), zero_mass=mass - zero_drop + noise(0.01),
                  dark_sink_mass=mass - 0.3 + noise(0.01), dark_sink_nll=base + 0.4 + noise(0.05))


test_arrays.__test__ = False  # a builder, not a test


def verdicts_b(test: H6Test, tolerance: float = 0.1, min_zero_rise: float = Settings.h6_min_zero_rise) -> dict:
    return h6_verdicts(magnitudes(hidden_states()), test, coordinate_dark_shares(spectrum_with_dark(D, dark=(3, 7))),
                       alpha=0.05, min_ratio=100.0, min_fold=5.0, tolerance=tolerance, n_sets=999, n_boot=400,
                       min_zero_rise=min_zero_rise)


def test_claim_b_passes_when_the_mean_is_harmless_and_zeroing_hurts():
    out = verdicts_b(test_arrays(np.random.default_rng(0)))
    assert out["a"][0] and out["b-mean"][0] and out["b-zero"][0]
    m = out["b-zero"][1]
    assert m["zeroed_over_dark_sink_drop"] == pytest.approx(0.2 / 0.3, rel=0.1)
    lo, hi = m["zeroed_over_dark_sink_drop_ci"]
    assert lo < m["zeroed_over_dark_sink_drop"] < hi


def test_claim_b_fails_when_the_mean_costs_more_than_the_tolerance_or_zeroing_does_nothing():
    out = verdicts_b(test_arrays(np.random.default_rng(1), mean_rise=0.3, zero_rise=0.0, zero_drop=0.0))
    assert not out["b-mean"][0] and not out["b-zero"][0]


def test_b_mean_false_passes_rarely_at_the_tolerance():
    """The equivalence null at its boundary (mean rise = tolerance, skewed windows): the
    b-mean criterion alone (raw, before Holm) passes at most about alpha of the time."""
    from sinkbench.stats.inference import mean_ci, mean_greater

    rng = np.random.default_rng(2)
    tol, trials, passed = 0.1, 300, 0
    for i in range(trials):
        rise = tol + 0.05 * (rng.lognormal(0, 0.6, 16) - np.exp(0.18))  # mean tol, long tail to the null side
        passed += mean_greater(tol - rise, seed=i) < 0.05 and mean_ci(tol - rise, 400, seed=i)[0] >= 0
    assert passed / trials <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / trials)


def test_b_mean_with_a_constant_contrast_is_not_testable_never_a_pass():
    """A BOS sink: the sink's state is the same in every window, setting it to its mean changes
    nothing, the contrast is constant and its mean test gives p = 2^-16. Not testable; with
    the same arrays and a sink that varies over windows, b-mean passes (the check can pass)."""
    t = test_arrays(np.random.default_rng(0))
    t.mean_nll = t.base_nll.copy()  # the edit changes nothing: rise 0 in every window
    diag = coordinate_dark_shares(spectrum_with_dark(D, dark=(3, 7)))
    kw = dict(alpha=0.05, min_ratio=100.0, min_fold=5.0, tolerance=0.1, n_sets=999, n_boot=400)
    bos = h6_verdicts(magnitudes(hidden_states(jitter=0.0)), t, diag, **kw)["b-mean"]
    assert bos[0] is False and "same in every window" in bos[1]["not_testable"]
    assert bos[1]["reason"].startswith("not testable")
    const = h6_verdicts(magnitudes(hidden_states()), t, diag, **kw)["b-mean"]  # the sink varies, the contrast does not
    assert const[0] is False and "zero spread" in const[1]["not_testable"]
    varying = h6_verdicts(magnitudes(hidden_states()), test_arrays(np.random.default_rng(0)), diag, **kw)["b-mean"]
    assert varying[0] is True and "not_testable" not in varying[1]


def test_b_zero_fails_a_rise_below_the_minimum():
    """Zeroing raises the NLL by 0.3 nats in every window (p about 2^-16 against 0): the old
    criterion (rise > 0) passed; Sun's claim is a catastrophic rise, h6_min_zero_rise (ln 2)."""
    rng = np.random.default_rng(3)
    small = verdicts_b(test_arrays(rng, zero_rise=0.3))["b-zero"]
    assert small[1]["nll_rise_zeroed"] == pytest.approx(0.3, abs=0.05) and small[1]["min_zero_rise"] == pytest.approx(0.693)
    assert not small[0]
    assert verdicts_b(test_arrays(rng, zero_rise=1.5))["b-zero"][0]
    assert verdicts_b(test_arrays(rng, zero_rise=0.3), min_zero_rise=0.1)["b-zero"][0]  # the setting is read


def test_the_edit_reaches_every_carrier_and_records_it():
    """Coordinates 3 and 7 massive at position 0 and at position 9 (a delimiter, as on
    LLaMA2-7B): both positions are edited, the sink to its value, position 9 to its own."""
    h = hidden_states(positions=(0, 9))[2]
    mask = carrier_mask(h, [3, 7], "sun", 100.0)
    assert mask[:, 0].all() and mask[:, 9].all() and mask[:, 1:9].sum() == 0 and mask[:, 10:].sum() == 0
    out = set_carriers(h, slice(0, W), torch.tensor([3, 7]), mask, torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0]))
    assert torch.equal(out[:, 0, [3, 7]], torch.tensor([[1.0, 2.0]]).expand(W, 2))
    assert torch.equal(out[:, 9, [3, 7]], torch.zeros(W, 2))
    assert torch.equal(out[:, 5], h[:, 5])  # not a carrier: untouched
    rec = edited_positions(mask)
    assert rec["edited_positions"] == {0: W, 9: W} and rec["windows_with_carriers_beyond_sink"] == W
    only_sink = edited_positions(carrier_mask(hidden_states()[2], [3, 7], "sun", 100.0))
    assert only_sink["edited_positions"] == {0: W} and only_sink["windows_with_carriers_beyond_sink"] == 0


# --------------------------------------------------------------------------- the grid on a model
def test_the_grid_runs_on_a_tiny_model_with_a_massive_bos_coordinate(monkeypatch, windows):
    """A tiny Llama whose BOS embedding carries 300 on coordinate 5: detection (Sun's criterion,
    at the sink, from layer 0), claim (a) and Sun's intervention run to verdicts."""
    from tests.conftest import as_subject, tiny_llama

    from sinkbench.measure import experiments
    from sinkbench.hypotheses.h6_massive import h6_grid
    from sinkbench.measure.spectrum import spectrum_for
    from sinkbench.measure.sweep import FilterSweep

    model = tiny_llama(seed=3)
    delimiter = int(windows[0, 7])  # a token that also carries the massive coordinate (Sun's first delimiter)
    with torch.no_grad():
        model.model.embed_tokens.weight[1, 5] = 300.0
        model.model.embed_tokens.weight[delimiter, 5] = 300.0
    subject = as_subject(model, "tiny-massive")
    monkeypatch.setattr(experiments, "selection_windows", lambda subj, s: windows)
    s = Settings(n_bands=8, n_seqs=len(windows), bootstrap=100, h6_random_sets=199)
    sweep = FilterSweep(subject, windows, spectrum_for(subject, 8), 3, 1, layers=[])
    out = h6_grid(sweep, s)
    det = out["a"][1]["detection"]
    assert det["present"] and det["criterion"] == "sun" and 5 in det["coordinates"]
    assert det["edit_layer"] == 0 and 5 in det["sink_coordinates"] and det["carrier_positions"].get(0) == len(windows)
    for claim in claims_h6.CLAIMS:
        passed, m = out[claim]
        assert isinstance(passed, bool) and 0 <= m["verdict_stability"] <= 1
    assert np.isfinite(out["b-zero"][1]["sink_mass_zeroed"])
    # Sun's edit reaches every carrier, not only position 0, and the record says where
    carried = {p for w in range(len(windows)) for p in torch.nonzero(windows[w] == delimiter).flatten().tolist()}
    for claim in ("b-mean", "b-zero"):
        m = out[claim][1]
        assert set(m["edited_positions"]) == {0} | carried and m["edited_positions"][7] >= 1
        assert m["windows_with_carriers_beyond_sink"] == sum(bool((windows[w, 1:] == delimiter).any()) for w in range(len(windows)))
    # BOS at position 0 but the edit also reached the delimiters: b-mean has something to test
    assert "not_testable" not in out["b-mean"][1]
    # BOS first in every window: the sink's state is the same everywhere, b-mean is vacuous, and says so
    assert out["b-mean"][1]["sink_value_relative_sd"] < 1e-4
    assert len(out["a"][1]["sink_profile"]["sink_abs"]) == subject.d_model


def test_the_grid_on_a_bos_only_sink_records_b_mean_as_not_testable(monkeypatch, windows):
    """Only BOS carries the massive coordinate: Sun's mean-set edit changes nothing (the sink's
    state is the same in every window), so b-mean is not testable, never a pass."""
    from tests.conftest import as_subject, tiny_llama

    from sinkbench.measure import experiments
    from sinkbench.hypotheses.h6_massive import h6_grid
    from sinkbench.measure.spectrum import spectrum_for
    from sinkbench.measure.sweep import FilterSweep

    model = tiny_llama(seed=3)
    with torch.no_grad():
        model.model.embed_tokens.weight[1, 5] = 300.0
    subject = as_subject(model, "tiny-massive-bos")
    monkeypatch.setattr(experiments, "selection_windows", lambda subj, s: windows)
    s = Settings(n_bands=8, n_seqs=len(windows), bootstrap=100, h6_random_sets=199)
    out = h6_grid(FilterSweep(subject, windows, spectrum_for(subject, 8), 3, 1, layers=[]), s)
    m = out["b-mean"][1]
    assert out["b-mean"][0] is False and "same in every window" in m["not_testable"]
    assert m["edited_positions"] == {0: len(windows)} and m["windows_with_carriers_beyond_sink"] == 0


def test_detection_is_a_dataclass_default_not_present():
    assert not Detection(None).present
    assert set_share(np.arange(4.0), []) != set_share(np.arange(4.0), [])  # nan for an empty set


def test_the_unit_parametrizes_every_h6_claim():
    from sinkbench.registry import test_p_values, units

    (test,) = units()["H6"].tests
    assert test.axes[0].values(None, "any") == list(claims_h6.CLAIMS)
    assert test_p_values()["test_massive_activations"][0] == "H6"


@pytest.mark.slow  # an end-to-end pytest subprocess (about 40 s at load 8), like the other runs marked slow
def test_a_zoo_model_without_massive_activations_is_recorded_as_not_present(tmp_path):
    """tiny-bb-bos through pytest: three recorded failures saying 'not present', no crash."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    cmd = [sys.executable, "-m", "pytest", "hypotheses/test_massive_activations.py", "-q", "-p", "no:cacheprovider",
           "--model", "tiny-bb-bos", "--seq-len", "64", "--n-seqs", "8", "--results", str(tmp_path)]
    out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600)
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    assert out.stdout.count("(no massive activations: no coordinate reaches") == 3  # one finding line per claim
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted(r["claim"] for r in records) == sorted(claims_h6.CLAIMS)
    assert all(r["metrics"]["present"] is False for r in records)


def test_one_massive_rule_serves_h1_h6_and_h7_as_their_own_copies_did():
    """sinkbench.measure.massive replaced three copies of the rule (H6's flagged/massive_by_layer,
    H1's massive_in, H7's first-token ratio): on heavy-tailed hidden states with planted massive
    coordinates, each user's answer equals what its old inline code gave, bit for bit, and the
    three agree with one another."""
    import torch

    from sinkbench.hypotheses.h6_massive.measurement import magnitudes
    from sinkbench.measure.massive import (MIN_WINDOW_SHARE, first_massive_layer, first_token_ratio, flagged,
                                           massive_by_layer, massive_coordinates)

    g = torch.Generator().manual_seed(0)
    hidden = {}
    for layer in range(4):
        h = torch.distributions.StudentT(2.0).sample((8, 32, 48))
        if layer >= 1:
            h[:5, 0, 7] = 500.0 * (layer + 1)  # at the first token in 5 of 8 windows
        if layer >= 2:
            h[:3, 9, 11] = -800.0  # elsewhere, in 3 of 8 windows only
            h[:, 4, 20] = 300.0 * torch.rand(8, generator=g) + 50
        hidden[layer] = h
    r = 100.0
    for layer, h in hidden.items():  # H1's old massive_in
        a = h.float().abs()
        median = a.flatten(1).median(1).values
        hit = a.amax(1) > r * median[:, None]
        old = np.flatnonzero((hit.float().mean(0)).numpy() >= MIN_WINDOW_SHARE).tolist()
        assert massive_coordinates(h, r) == old
        mag = magnitudes(hidden)  # H6's set at this layer, scale-free criterion
        assert massive_by_layer(flagged(mag.max_abs, mag.median, "ratio", r)).get(layer, []) == old
    old_ratio = np.stack([(h.float()[:, 0].abs().amax(-1) / h.float().abs().flatten(1).median(1).values).numpy()
                          for h in hidden.values()], 1)  # H7's old early-layer ratio
    new_ratio = first_token_ratio(hidden, range(4))
    assert np.array_equal(new_ratio, old_ratio)
    layer, info = first_massive_layer(new_ratio, r, fallback=1)
    assert layer == 1 and 7 in massive_coordinates(hidden[1], r) and 11 not in massive_coordinates(hidden[3], r)
