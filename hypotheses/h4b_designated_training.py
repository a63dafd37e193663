"""H4-B, a sink can be designated by hand, by training (docs/methods.md §5).

B (a zoo model trained with a <sink> token at k):
 B1 attention from non-trigger queries after k goes to k more than to 0, and removing
    the dark tail at k raises NLL more than removing it at 0 (NLL of the predictions not
    made at 0, k-1 or k: those are edited directly or predict the <sink> token itself);
 B2 the residual at k is darker (dark ratio) than ordinary positions.
Holm over each model's grid.

This module is the hypothesis unit (sinkbench.registry): its grid, verdicts, simulated
calibration nulls, checks and figures; hypotheses/test_*.py only names its tests."""
from __future__ import annotations

import math

import numpy as np
import torch

from sinkbench.stats import stability
from sinkbench.stats.nulls import ALPHA, Criterion, DEFAULTS, N_BOOT, N_BOOT_CHEAP, hardness, small, window_noise
from sinkbench.stats.claims import ci_mean, holm_by_key, mean_or_nan, test_mean, window_counts, windows_note
from sinkbench.measure.config import Settings
from sinkbench.measure.experiments import as_units
from sinkbench.registry import LAYER, Axis, Hypothesis, Test, constant
from sinkbench.measure.sweep import FilterSweep
from sinkbench.model.tensors import to_numpy


def h4b_verdicts(grid: dict, *, alpha: float, n_boot: int) -> dict:
    """grid: layer -> dict of per-window arrays: att_k, att_0 (non-trigger queries after k),
    nll_base, nll_dark_k, nll_dark_0 (predictions made at positions other than 0, k-1 and k:
    those are edited directly or predict the <sink> token itself), dark_ratio_k,
    dark_ratio_ordinary. Holm over layers x 3 tests of means. Returns (layer, 'B1'|'B2') -> (passed, metrics)."""
    raw = {l: [test_mean(x["att_k"] - x["att_0"], "H4B", l, "att"), test_mean(x["nll_dark_k"] - x["nll_dark_0"], "H4B", l, "nll"),
               test_mean(x["dark_ratio_k"] - x["dark_ratio_ordinary"], "H4B", l, "dark")] for l, x in grid.items()}
    adj = holm_by_key(raw)
    out = {}
    for l, x in grid.items():
        p_att, p_nll, p_dark = adj[l]
        att_gap, nll_gap = x["att_k"] - x["att_0"], x["nll_dark_k"] - x["nll_dark_0"]
        out[l, "B1"] = (bool(p_att < alpha and p_nll < alpha and mean_or_nan(att_gap) > 0 and mean_or_nan(nll_gap) > 0), {
            "att_k": mean_or_nan(x["att_k"]), "att_0": mean_or_nan(x["att_0"]),
            "att_k_minus_0_ci": ci_mean(att_gap, n_boot, "H4B", l, "att"),
            "nll_base": mean_or_nan(x["nll_base"]),
            "nll_dark_k": mean_or_nan(x["nll_dark_k"]), "nll_dark_0": mean_or_nan(x["nll_dark_0"]),
            "nll_dark_k_minus_0_ci": ci_mean(nll_gap, n_boot, "H4B", l, "nll"),
            "p_attention": p_att, "p_nll": p_nll, **window_counts(att_gap, nll_gap)})
        gap = x["dark_ratio_k"] - x["dark_ratio_ordinary"]
        out[l, "B2"] = (bool(p_dark < alpha and mean_or_nan(gap) > 0), {
            "dark_ratio_k": mean_or_nan(x["dark_ratio_k"]), "dark_ratio_ordinary": mean_or_nan(x["dark_ratio_ordinary"]),
            "difference_ci": ci_mean(gap, n_boot, "H4B", l, "dark"), "p_value": p_dark, **window_counts(gap)})
    return out


def nll_excluding(token_nll: torch.Tensor, positions: list[int]) -> np.ndarray:
    """Per-window mean NLL [N] of the predictions made at positions not in `positions`
    (token_nll [N, T-1]: column t is the prediction made at position t)."""
    keep = torch.ones(token_nll.shape[1], dtype=torch.bool)
    keep[[p for p in positions if 0 <= p < len(keep)]] = False
    return to_numpy(token_nll[:, keep].mean(1))


def h4b_grid(sweep: FilterSweep, layers: list[int], s: Settings) -> dict:
    """H4-B on a zoo model trained with a <sink> token at k (its manifest says where).
    NLLs leave out the predictions made at 0 and k (edited directly) and at k-1 (it predicts
    the <sink> token, which training masked out)."""
    from sinkbench.measure.interventions import Edit, run_batched
    from sinkbench.model.metrics import attention_from
    from sinkbench.model.zoo.language import BigramBackcopy

    subj, w = sweep.subject, sweep.windows
    ev = subj.meta["zoo"]["evaluation"]
    k = ev["designated_sink"]
    is_trig = torch.as_tensor(BigramBackcopy(**ev["language"]).is_trigger(to_numpy(w)))
    skip = [0, k - 1, k]

    def readout(probs, rows):
        """attention to k and to 0 from non-trigger queries after k, head-averaged: [B, 2]"""
        keep = (~is_trig[rows].to(probs.device)) & (torch.arange(probs.shape[-1], device=probs.device)[None] > k)
        keys = torch.full((keep.shape[0],), k, dtype=torch.long, device=probs.device)
        return torch.stack([attention_from(probs, keys, keep), attention_from(probs, torch.zeros_like(keys), keep)], 1)

    batch = s.windows_per_pass(subj)
    att = run_batched(subj, w, batch, attn_layers=range(subj.n_layers), attn_readout=readout, hidden_layers=layers)
    base_nll = nll_excluding(att.token_nll, skip)
    dark = sweep.spectrum.remove([s.n_bands])
    grid = {}
    for layer in layers:
        later = to_numpy(torch.stack([att.attention[i] for i in range(layer + 1, subj.n_layers)]).mean(0))
        dr = to_numpy(sweep.spectrum.dark_ratio(att.hidden[layer]))  # [N, T]
        ordinary = np.ones(dr.shape[1], bool)
        ordinary[[0, k]] = False
        dark_k = run_batched(subj, w, batch, edit=Edit.project(layer, dark, k)).token_nll
        dark_0 = run_batched(subj, w, batch, edit=Edit.project(layer, dark, 0)).token_nll
        grid[layer] = {"att_k": later[:, 0], "att_0": later[:, 1], "nll_base": base_nll,
                       "nll_dark_k": nll_excluding(dark_k, skip), "nll_dark_0": nll_excluding(dark_0, skip),
                       "dark_ratio_k": dr[:, k], "dark_ratio_ordinary": dr[:, ordinary].mean(1)}
    verdicts = lambda g: h4b_verdicts(g, alpha=s.alpha, n_boot=s.bootstrap)  # noqa: E731
    grid, n_units = as_units(grid, subj, s, len(w))
    out = stability.attach(verdicts(grid), verdicts, grid, n_units, "H4B", model=subj.name)
    for key, (_, m) in out.items():
        m["nll_positions_left_out"] = skip
    return out


H4B_PROFILE = dict(att_gap=0.2, att=0.3, att_sd=0.05, nll_gap=0.3, nll_sd=0.1, cv=0.3, dark_gap=0.3, dark_mu=0.5,
                   dark_sigma=0.5, ordinary=60)


def _h4b_sim(case):
    def simulate(rng, trials, n, layers, effect, **profile):
        p = dict(H4B_PROFILE)
        p.update(profile)
        if case == "B1-attention":
            p["att_gap"] = effect
        elif case == "B1-nll":
            p["nll_gap"] = effect
        else:
            p["dark_gap"] = effect
        shape = (trials, layers, n)
        att_0 = np.clip(p["att"] + p["att_sd"] * rng.standard_normal(shape), 0.01, 0.99)
        att_k = np.clip(att_0 + p["att_gap"] + p["att_sd"] * (rng.standard_normal(shape) - rng.standard_normal(shape)) / math.sqrt(2),
                        0.0, 1.0)
        nll = 1.6 + 0.1 * rng.standard_normal(shape)
        h = hardness(rng, shape, p["cv"])
        nll_0 = nll + 0.2 * h + p["nll_sd"] * window_noise(rng, shape)
        nll_k = nll + (0.2 + p["nll_gap"]) * h + p["nll_sd"] * window_noise(rng, shape)
        # dark ratio per position: lognormal with a per-window level; k is one more position
        level = p["dark_sigma"] * 0.5 * rng.standard_normal(shape + (1,))
        ordinary = np.exp(p["dark_mu"] + level + p["dark_sigma"] * rng.standard_normal(shape + (p["ordinary"],)))
        k_one = np.exp(p["dark_mu"] + level[..., 0] + p["dark_sigma"] * rng.standard_normal(shape))
        dark_k = k_one + p["dark_gap"]
        out = np.zeros((trials, layers), bool)
        claim = "B2" if case == "B2" else "B1"
        for t in range(trials):
            grid = {l: {"att_k": att_k[t, l], "att_0": att_0[t, l], "nll_base": nll[t, l], "nll_dark_k": nll_k[t, l],
                        "nll_dark_0": nll_0[t, l], "dark_ratio_k": dark_k[t, l],
                        "dark_ratio_ordinary": ordinary[t, l].mean(-1)} for l in range(layers)}
            res = h4b_verdicts(grid, alpha=DEFAULTS["alpha"], n_boot=N_BOOT_CHEAP)
            out[t] = [res[l, claim][0] for l in range(layers)]
        return out

    return simulate


NULLS = (
    Criterion("H4-B1", "attention to k minus attention to 0", _h4b_sim("B1-attention"),
              nulls={"attention to k like to 0": dict(effect=0.0),
                     "removal at k like at 0": dict(effect=0.2, nll_gap=0.0)},
              clear=dict(effect=0.1), profile=H4B_PROFILE,
              description="H4-B1: attention goes to k more than to 0, and removing the tail at k hurts more"),
    Criterion("H4-B2", "dark ratio at k minus a random ordinary position's", _h4b_sim("B2"),
              nulls={"k is an ordinary position": dict(effect=0.0)}, clear=dict(effect=1.5), profile=H4B_PROFILE,
              description="H4-B2: the residual at k is darker than at ordinary positions"),
)


# --------------------------------------------------------------------------- hostile nulls
# Each test at its boundary, one function of the null noise e (sinkbench.run.hostile runs them
# under heavy tails, skew both ways, AR(1) dependence, zeros and NaN windows).
def _h4b(which: str):
    def run(e, rng):
        n = e.size
        att_0 = 0.3 + small(rng, n, 0.03)
        nll = 1.6 + small(rng, n, 0.1)
        x = {"att_k": att_0 + 0.3 + small(rng, n, 0.03), "att_0": att_0, "nll_base": nll,
             "nll_dark_k": nll + 0.8 + small(rng, n, 0.05), "nll_dark_0": nll + 0.2 + small(rng, n, 0.05),
             "dark_ratio_k": 2.0 + small(rng, n, 0.1), "dark_ratio_ordinary": 0.5 + small(rng, n, 0.05)}
        if which == "attention":
            x["att_k"] = att_0 + 0.05 * e
        elif which == "nll":
            x["nll_dark_k"] = x["nll_dark_0"] + 0.2 * e
        else:
            x["dark_ratio_k"] = x["dark_ratio_ordinary"] * (1 + 0.5 * e)
        out = h4b_verdicts({1: x}, alpha=ALPHA, n_boot=N_BOOT)
        return out[1, "B2" if which == "dark" else "B1"][0]

    return run


HOSTILE = {"H4-B1 attention": _h4b("attention"), "H4-B1 NLL": _h4b("nll"), "H4-B2 dark ratio": _h4b("dark")}


# --------------------------------------------------------------------------- the unit
def measure(bench, model_name: str) -> dict:
    return h4b_grid(bench.sweep(model_name), bench.layers(model_name), bench.of(model_name))


def check(bench, model_name: str, layer: int, b_claim: str) -> None:
    import pytest

    bench.resume("H4", model_name, layer, claim=b_claim, target=None)
    subject = bench.subject(model_name)
    if subject.meta.get("zoo", {}).get("evaluation", {}).get("designated_sink") is None:
        pytest.skip(f"{model_name} was not trained with a designated sink token (B applies to tiny-bb-designated)")
    passed, m = bench.results(HYPOTHESIS, model_name)[layer, b_claim]
    k = subject.meta["zoo"]["evaluation"]["designated_sink"]
    params = bench.params(model_name, designated_position=k, bands=[bench.settings.n_bands])
    bench.record("H4", model_name, layer, params, passed, m, claim=b_claim, target=None, designated_position=k)
    assert passed, f"H4 {b_claim} fails on {model_name}, layer {layer}: {m}" + windows_note(m)


def passes(bench, model_name: str) -> int:
    return (1 + 2 * len(bench.layers(model_name))) * bench.runs(model_name, bench.of(model_name).n_seqs)


HYPOTHESIS = Hypothesis(
    name="H4-B", records="H4", title="a sink can be designated by hand (by training)",
    tests=(Test("test_designated_by_training", (LAYER, Axis("b_claim", constant("B1", "B2"), record=lambda c: {"claim": c})),
                check, p_values=1.5),),
    measure=measure, passes=passes, nulls=NULLS, hostile=HOSTILE,
    key_effects={"H4/B1": ("att_k", "att k"), "H4/B2": ("dark_ratio_k", "dark k")},
    question="Can a sink be designated by training?",
    claims={"H4/B1": "a model trained with a designated sink uses it", "H4/B2": "the designated sink carries the dark signal"},
    methods="docs/methods.md §5 (H4-B), §6", built_in=True)
