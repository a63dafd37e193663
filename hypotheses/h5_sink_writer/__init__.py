"""H5, who writes the sink's dark signal (Cancedda 2024 §4; docs/methods.md).

The paper's mechanism: an early MLP writes a large, almost purely dark vector into
the sink's residual, and later heads find the sink through it.
 The writer is the largest dark writer at the sink among the first half of the
 components (attention and MLP branch outputs), chosen on selection windows; the
 claims are tested on the test windows:
 1. it wrote >= h5_min_share (50%) of the dark norm present after it;
 2. removing its band-K write at the sink only lowers the later layers' sink mass and
    raises the NLL of the other predictions, against the base run and against
    h5_controls equal-norm removals of other components at or before its layer, by at
    least h5_min_sink_drop (relative sink mass) and h5_min_nll_rise nats beyond them.
Tests of means over windows (skew-guarded), Holm over the model's five p-values.

This module is the hypothesis unit (sinkbench.registry): its grid, verdicts, simulated
calibration nulls, checks and figures; hypotheses/test_*.py only names its tests."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sinkbench.stats import stability
from sinkbench.stats.nulls import (ALPHA, BOUNDARY, Criterion, DEFAULTS, N_BOOT, N_BOOT_CHEAP, hardness, nll_like,
                                   small, window_noise)
from sinkbench.stats.claims import ci_mean, ci_ratio, mean_or_nan, test_mean, window_counts, windows_note
from sinkbench.measure.config import Settings
from sinkbench.measure.experiments import as_units, selection_windows
from sinkbench.registry import Axis, Hypothesis, Test, constant
from sinkbench.stats.inference import holm
from sinkbench.measure.sweep import FilterSweep


@dataclass
class H5Inputs:
    """Per-window arrays [N] on the test windows, for a writer chosen on selection windows.
    NLLs are of the predictions made at positions >= 1 (the edit is at the sink)."""

    share: np.ndarray  # the writer's dark write / dark norm present after it
    base_nll: np.ndarray
    base_mass: np.ndarray  # sink mass of the layers after the writer
    removed_nll: np.ndarray  # the writer's band-K write removed at the sink
    removed_mass: np.ndarray
    control_nll: np.ndarray  # equal-norm removals of other components, averaged per window
    control_mass: np.ndarray


def h5_verdicts(x: H5Inputs, *, alpha: float, min_share: float, min_sink_drop: float, min_nll_rise: float,
                n_boot: int) -> dict:
    """Claim 1: the writer wrote >= min_share of the dark norm present after it (mean share
    at or above it, and the share significantly above it). Claim 2: removing its dark write
    at the sink lowers the later sink mass and raises NLL, significantly against the base run,
    and beyond the controls by more than min_sink_drop (relative to the base sink mass) and
    min_nll_rise nats (both tested against these minimums). Holm over the five p-values."""
    mass_vs_ctrl = x.control_mass - x.removed_mass
    nll_vs_ctrl = x.removed_nll - x.control_nll
    # the minimums beyond the controls are tested: (control - removed) - min_sink_drop * base
    # mass > 0 is the relative drop against its minimum, per window
    contrasts = [x.share - min_share, x.base_mass - x.removed_mass, x.removed_nll - x.base_nll,
                 mass_vs_ctrl - min_sink_drop * x.base_mass, nll_vs_ctrl - min_nll_rise]
    names = ["share", "mass_vs_base", "nll_vs_base", "mass_vs_control", "nll_vs_control"]
    raw = [test_mean(c, "H5", name) for c, name in zip(contrasts, names)]
    p = holm(raw)
    ci = lambda v, name: ci_mean(v, n_boot, "H5", name)
    mass_base = mean_or_nan(x.base_mass)
    drop = mean_or_nan(mass_vs_ctrl) / mass_base if mass_base > 0 else float("nan")
    c1 = {"dark_share": mean_or_nan(x.share), "dark_share_ci": ci(x.share, "share"), "min_share": min_share,
          "p_value": float(p[0]), "p_value_raw": raw[0], **window_counts(contrasts[0])}
    c2 = {"sink_mass_base": mass_base, "sink_mass_removed": mean_or_nan(x.removed_mass),
          "sink_mass_control": mean_or_nan(x.control_mass),
          "sink_drop_beyond_control": drop,
          "sink_drop_beyond_control_ci": ci_ratio(mass_vs_ctrl, x.base_mass, n_boot, "H5", "drop"),
          "nll_base": mean_or_nan(x.base_nll), "nll_removed": mean_or_nan(x.removed_nll),
          "nll_control": mean_or_nan(x.control_nll), "nll_delta_ci": ci(x.removed_nll - x.base_nll, "nll_delta"),
          "nll_rise_beyond_control": mean_or_nan(nll_vs_ctrl), "nll_rise_beyond_control_ci": ci(nll_vs_ctrl, "nll_vs_control"),
          "min_sink_drop": min_sink_drop, "min_nll_rise": min_nll_rise,
          "p_values": {"mass_vs_base": float(p[1]), "nll_vs_base": float(p[2]), "mass_vs_control": float(p[3]),
                       "nll_vs_control": float(p[4])}, **window_counts(*contrasts[3:], *contrasts[1:3])}
    ok2 = all(q < alpha for q in p[1:]) and drop >= min_sink_drop and c2["nll_rise_beyond_control"] >= min_nll_rise
    return {"1": (bool(c1["dark_share"] >= min_share and p[0] < alpha), c1), "2": (bool(ok2), c2)}


def h5_grid(sweep: FilterSweep, s: Settings, min_share: float, seed: int) -> dict:
    """Choose the largest dark writer at the sink among the first half of the components on
    selection windows; on the test windows, measure its share and remove its band-K write at
    the sink, against h5_controls equal-norm removals of other components of the same layer
    range (at or before the writer's layer, so before every layer whose sink mass is read),
    averaged per window."""
    from .measurement import attribute, run_removal

    subj = sweep.subject
    batch = s.windows_per_pass(subj)
    chosen_on = attribute(subj, selection_windows(subj, s), sweep.spectrum)
    first_half = range(0, 2 * (subj.n_layers // 2))
    chosen = max(first_half, key=lambda c: chosen_on.dark_write[:, c].mean())
    layer = chosen // 2
    candidates = [c for c in range(2 * layer + 2) if c != chosen]
    rng = np.random.default_rng(seed)
    controls = sorted(rng.choice(candidates, min(s.h5_controls, len(candidates)), replace=False).tolist())
    att = attribute(subj, sweep.windows, sweep.spectrum)
    dark_nll, dark_mass = run_removal(subj, sweep.windows, sweep.spectrum, chosen, "dark", batch_size=batch)
    ctrl = [run_removal(subj, sweep.windows, sweep.spectrum, c, "scaled",
                        att.dark_write[:, chosen] / np.maximum(att.write_norm[:, c], 1e-12), batch, mass_after=layer)
            for c in controls]
    base = sweep.base()
    x = H5Inputs(share=att.dark_write[:, chosen] / np.maximum(att.dark_after[:, chosen], 1e-12),
                 base_nll=base.nll_rest, base_mass=base.sink_mass[:, layer + 1:].mean(1),
                 removed_nll=dark_nll, removed_mass=dark_mass,
                 control_nll=np.mean([c[0] for c in ctrl], 0), control_mass=np.mean([c[1] for c in ctrl], 0))
    verdicts = lambda v: h5_verdicts(v, alpha=s.alpha, min_share=min_share, min_sink_drop=s.h5_min_sink_drop,  # noqa: E731
                                     min_nll_rise=s.h5_min_nll_rise, n_boot=s.bootstrap)
    x, n_units = as_units(x, subj, s, len(x.share))
    out = stability.attach(verdicts(x), verdicts, x, n_units, "H5", model=subj.name)
    for _, m in out.values():
        m.update(component=att.names[chosen], chosen_on="selection windows",
                 chosen_dark_write_on_selection=float(chosen_on.dark_write[:, chosen].mean()),
                 control_components=[att.names[c] for c in controls])
    out["1"][1].update(dark_write_norm=float(att.dark_write[:, chosen].mean()), dark_norm_final=float(att.dark_final.mean()),
                       attribution_sum_error=att.sum_error, embedding_dark_norm=float(att.dark_embed.mean()),
                       mean_dark_write_per_component=dict(zip(att.names, att.dark_write.mean(0).round(4).tolist())))
    return out


H5_PROFILE = dict(share_sd=0.1, share_skew=0.0, share=0.8, mass=0.55, mass_sd=0.05, drop=0.3, drop_sd=0.08,
                  nll_rise=0.5, nll_sd=0.1, cv=0.3, control_drop=0.0, control_nll=0.0)


def _h5_shares(rng, shape, mean, sd, skew):
    """Per-window shares with the given mean and sd: Beta when skew == 0 (symmetric at 0.5),
    else a two-point-plus-noise mixture whose long tail points down (skew < 0) or up."""
    if skew == 0:
        m = min(max(mean, 1e-3), 1 - 1e-3)
        k = max(m * (1 - m) / sd ** 2 - 1, 1.0)
        return rng.beta(m * k, (1 - m) * k, shape)
    # mixture: with probability q a window is shifted by -delta (skew < 0) or +delta
    q = 0.15
    delta = sd / math.sqrt(q * (1 - q)) * np.sign(skew)
    bump = (rng.random(shape) < q) * delta
    x = bump - q * delta + 0.3 * sd * rng.standard_normal(shape)
    return mean + x


def _h5_sim(claim):
    def simulate(rng, trials, n, layers, effect, **profile):
        p = dict(H5_PROFILE)
        p.update(profile)
        s = DEFAULTS
        if claim == "1":
            p["share"] = s["h5_min_share"] + effect
        else:
            p["drop"] = p["control_drop"] + effect  # effect: relative sink-mass drop beyond the controls
        shape = (trials, n)
        share = _h5_shares(rng, shape, p["share"], p["share_sd"], p["share_skew"])
        base_nll = 3.1 + 0.3 * rng.standard_normal(shape)
        base_mass = np.clip(p["mass"] + p["mass_sd"] * rng.standard_normal(shape), 0.05, 0.95)
        h = hardness(rng, shape, p["cv"])
        drop = lambda d: d + p["drop_sd"] * rng.standard_normal(shape)
        removed_mass = base_mass * (1 - drop(p["drop"]))
        control_mass = base_mass * (1 - drop(p["control_drop"]))
        removed_nll = base_nll + (p["control_nll"] + p["nll_rise"]) * h + p["nll_sd"] * window_noise(rng, shape)
        control_nll = base_nll + p["control_nll"] * h + p["nll_sd"] * window_noise(rng, shape)
        out = np.zeros((trials, 1), bool)
        for t in range(trials):
            x = H5Inputs(share[t], base_nll[t], base_mass[t], removed_nll[t], removed_mass[t], control_nll[t],
                         control_mass[t])
            res = h5_verdicts(x, alpha=s["alpha"], min_share=s["h5_min_share"], min_sink_drop=s["h5_min_sink_drop"],
                              min_nll_rise=s["h5_min_nll_rise"], n_boot=N_BOOT_CHEAP)
            out[t, 0] = res[claim][0]
        return out

    return simulate


NULLS = (
    Criterion("H5-1", "writer's dark share minus min_share", _h5_sim("1"),
              nulls={"share at min_share": dict(effect=0.0),
                     "share at min_share, skewed windows": dict(effect=0.0, share_skew=-1.0)},
              clear=dict(effect=0.2), profile=H5_PROFILE,
              description="H5 claim 1: the largest early dark writer wrote >= min_share of the dark norm after it"),
    Criterion("H5-2", "relative sink-mass drop beyond the controls", _h5_sim("2"),
              nulls={"controls equal to the removal": dict(effect=0.0, nll_rise=0.0, control_drop=0.3, control_nll=0.5),
                     "effects at the minimums": dict(effect=DEFAULTS["h5_min_sink_drop"], nll_rise=DEFAULTS["h5_min_nll_rise"])},
              clear=dict(effect=0.3), profile=H5_PROFILE,
              description="H5 claim 2: removing the writer's dark write at the sink lowers sink mass and raises NLL beyond controls"),
)


# --------------------------------------------------------------------------- hostile nulls
# Each test at its boundary, one function of the null noise e (sinkbench.run.hostile runs them
# under heavy tails, skew both ways, AR(1) dependence, zeros and NaN windows).
def _h5(which: str):
    def run(e, rng):
        n = e.size
        share = 0.8 + small(rng, n, 0.05)
        base_nll, mass = nll_like(rng, n), 0.55 + small(rng, n, 0.05)
        removed_mass, control_mass = mass * 0.5, mass * 0.95
        removed_nll, control_nll = base_nll + 0.6 + small(rng, n, 0.05), base_nll + 0.05 + small(rng, n, 0.05)
        if which == "share":
            share = BOUNDARY["min_share"] + 0.1 * e
        elif which == "mass_vs_base":  # the control raises the mass, so the beyond-control test stays clear
            removed_mass, control_mass = mass * (1 - 0.3 * e), mass * 1.5
        elif which == "nll_vs_base":
            removed_nll, control_nll = base_nll + 0.2 * e, base_nll - 0.6 + small(rng, n, 0.05)
        elif which == "mass_vs_control":
            removed_mass = control_mass - BOUNDARY["h5_min_sink_drop"] * mass - mass * 0.3 * e
        elif which == "nll_vs_control":
            removed_nll = control_nll + BOUNDARY["h5_min_nll_rise"] + 0.2 * e
        x = H5Inputs(share, base_nll, mass, removed_nll, removed_mass, control_nll, control_mass)
        out = h5_verdicts(x, alpha=ALPHA, min_share=BOUNDARY["min_share"], min_sink_drop=BOUNDARY["h5_min_sink_drop"],
                          min_nll_rise=BOUNDARY["h5_min_nll_rise"], n_boot=N_BOOT)
        return out["1" if which == "share" else "2"][0]

    return run


HOSTILE = {"H5-1 share": _h5("share"), "H5-2 mass vs base": _h5("mass_vs_base"), "H5-2 NLL vs base": _h5("nll_vs_base"),
           "H5-2 mass vs control": _h5("mass_vs_control"), "H5-2 NLL vs control": _h5("nll_vs_control")}


# --------------------------------------------------------------------------- the unit
H5_SEED = 0  # picks H5's random control component


def measure(bench, model_name: str) -> dict:
    return h5_grid(bench.sweep(model_name), bench.of(model_name), bench.settings.h5_min_share, H5_SEED)


def check(bench, model_name: str, h5_claim: str) -> None:
    bench.resume("H5", model_name, None, claim=h5_claim)
    passed, m = bench.results(HYPOTHESIS, model_name)[h5_claim]
    params = bench.params(model_name, component=m["component"], min_share=bench.settings.h5_min_share,
                          bands=[bench.settings.n_bands], positions="sink")
    bench.record("H5", model_name, None, params, passed, m, claim=h5_claim)
    shown = {k: v for k, v in m.items() if k != "mean_dark_write_per_component"}
    assert passed, f"H5 claim {h5_claim} fails on {model_name}: {shown}" + windows_note(m)


def passes(bench, model_name: str) -> int:  # two attributions (one trace each), the removals
    return bench.base_passes(model_name) + 2 + (1 + bench.of(model_name).h5_controls) * bench.runs(model_name, bench.of(model_name).n_seqs)


HYPOTHESIS = Hypothesis(
    name="H5", title="who writes the sink's dark signal",
    tests=(Test("test_sink_writer", (Axis("h5_claim", constant("1", "2"), "claim{}", record=lambda c: {"claim": c}),),
                check, p_values=2.5),),
    measure=measure, passes=passes, nulls=NULLS, hostile=HOSTILE,
    key_effects={"H5/1": ("dark_share", "dark share"), "H5/2": ("sink_drop_beyond_control", "sink drop − ctrl")},
    question="Who writes the sink's dark signal?",
    claims={"H5/1": "one component writes most of the sink's dark norm", "H5/2": "removing its write lowers sink mass and raises NLL beyond controls"},
    methods="docs/methods.md §5 (H5), §6", built_in=True)
