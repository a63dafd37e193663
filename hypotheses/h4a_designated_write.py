"""H4-A, a sink can be designated by hand, by intervention (docs/methods.md §5).

A (any model), after layer l, for targets t in {middle, frequent-token, ordinary-token position}:
 A1 capture: writing position 0's dark-tail component into t (add, or transplant =
    add + remove it from 0) raises attention to t from later queries significantly and
    by >= rho (3x), while attention to position 0 from the same queries falls;
 A2 specificity: the dark write captures significantly more than a same-norm write from
    the non-dark bands, which stays below rho;
 A3 rescue: with the dark tail removed at position 0, also writing it into t lowers the
    NLL of the predictions after t significantly and recovers at least h4_min_recovered
    (default 0.5) of the damage (recovered share with its bootstrap CI).
Holm over each model's grid.

This module is the hypothesis unit (sinkbench.registry): its grid, verdicts, simulated
calibration nulls, checks and figures; hypotheses/test_*.py only names its tests."""
from __future__ import annotations

import dataclasses

import math
from collections import Counter

import numpy as np
import torch

from sinkbench.stats import stability
from sinkbench.stats.nulls import (ALPHA, BOUNDARY, Criterion, DEFAULTS, N_BOOT, N_BOOT_CHEAP, hardness, nll_like,
                                   small, window_noise)
from sinkbench.stats.claims import ci_mean, ci_ratio, holm_by_key, mean_or_nan, test_mean, window_counts, windows_note
from sinkbench.measure.config import Settings
from sinkbench.measure.experiments import as_units, h4a_writes
from sinkbench.measure.designate import WriteResult
from sinkbench.registry import LAYER, Axis, Hypothesis, Test, constant
from sinkbench.measure.sweep import FilterSweep
from sinkbench.model.tensors import to_numpy


def h4a_raw(w: dict, rho: float, n_boot: int, min_recovered: float = 0.5, key: tuple = ()) -> dict:
    """w: write mode -> WriteResult for one (layer, target); key: that (layer, target), which
    seeds its resamples. Raw p-values per claim case, each a test of a mean over windows."""
    base = w["base"]
    out = {}
    for variant in ("add", "transplant"):
        x = w[variant]
        ratio = mean_or_nan(x.att_t) / max(mean_or_nan(base.att_t), 1e-12)
        capture, fall = x.att_t - rho * base.att_t, base.att_0 - x.att_0
        # capture >= rho as a ratio of means, tested per window: att_t(edit) - rho * att_t(base) > 0
        out["A1", variant] = ([test_mean(capture, "H4A", key, "A1", variant, "capture"),
                               test_mean(fall, "H4A", key, "A1", variant, "fall")], {
            "att_t_base": mean_or_nan(base.att_t), "att_t_edit": mean_or_nan(x.att_t), "capture_ratio": ratio,
            "capture_ratio_ci": ci_ratio(x.att_t, base.att_t, n_boot, "H4A", key, "A1", variant),
            "att_0_base": mean_or_nan(base.att_0), "att_0_edit": mean_or_nan(x.att_0), "rho": rho,
            **window_counts(capture, fall),
        })
    ctrl, add = w["control"], w["add"]
    ctrl_ratio = mean_or_nan(ctrl.att_t) / max(mean_or_nan(base.att_t), 1e-12)
    # the dark write beats the control and the control stays below rho; that the dark write
    # captures >= rho is A1-add's capture test, which A2's verdict reads (not counted twice)
    beats, below = add.att_t - ctrl.att_t, rho * base.att_t - ctrl.att_t
    out["A2", "add"] = ([test_mean(beats, "H4A", key, "A2", "beats"), test_mean(below, "H4A", key, "A2", "below")], {
        "att_t_dark": mean_or_nan(add.att_t), "att_t_control": mean_or_nan(ctrl.att_t),
        "control_capture_ratio": ctrl_ratio, "dark_capture_ratio": mean_or_nan(add.att_t) / max(mean_or_nan(base.att_t), 1e-12),
        "dark_minus_control_ci": ci_mean(beats, n_boot, "H4A", key, "A2"), "rho": rho,
        **window_counts(beats, below),
    })
    broken, rescued = w["broken"].nll_after - base.nll_after, w["transplant"].nll_after - base.nll_after
    damage = mean_or_nan(broken)
    # below 1e-3 nats there is nothing to recover and the share is meaningless
    share = (damage - mean_or_nan(rescued)) / damage if damage > 1e-3 else float("nan")
    # the damage itself is tested (breaking the sink must hurt), and the recovered share >=
    # min_recovered as a ratio of means, per window
    recovered = (broken - rescued) - min_recovered * broken
    out["A3", "transplant"] = ([test_mean(broken, "H4A", key, "A3", "damage"),
                                test_mean(recovered, "H4A", key, "A3", "recovered")], {
        "delta_broken": damage, "delta_broken_ci": ci_mean(broken, n_boot, "H4A", key, "A3", "damage"),
        "delta_rescued": mean_or_nan(rescued),
        "recovered_share": share, "recovered_share_ci": ci_ratio(broken - rescued, broken, n_boot, "H4A", key, "A3"),
        "nll_after_base": mean_or_nan(base.nll_after), "min_recovered": min_recovered,
        **window_counts(recovered, broken),
    })
    return out


def h4a_verdicts(raws: dict, *, alpha: float) -> dict:
    """raws: (layer, target) -> h4a_raw(...). Holm over every p-value of the model's grid
    (8 per (layer, target)). Every minimum is tested, not only compared with a point estimate:
    A1: capture ratio >= rho (tested) and attention to 0 falls; A2: the dark write beats the
    control, captures >= rho (A1-add's test), and the control stays below rho; A3: breaking
    the sink does damage, and the transplant recovers >= min_recovered of it (both tested).
    Returns (layer, target, claim, variant) -> (passed, metrics)."""
    raw = {(lt, case): ps for lt, r in raws.items() for case, (ps, _) in r.items()}
    adjusted = holm_by_key(raw)
    out = {}
    for (lt, case), p_adj in adjusted.items():
        ps, m = raws[lt][case]
        m = dict(m, p_values=p_adj, p_values_raw=[float(p) for p in ps])
        claim = case[0]
        if claim == "A1":
            passed = all(p < alpha for p in p_adj) and m["capture_ratio"] >= m["rho"]
        elif claim == "A2":
            p_capture = adjusted[lt, ("A1", "add")][0]
            m["p_dark_capture"] = p_capture
            passed = (all(p < alpha for p in p_adj) and p_capture < alpha
                      and m["control_capture_ratio"] < m["rho"] <= m["dark_capture_ratio"])
        else:
            passed = all(p < alpha for p in p_adj) and m["delta_broken"] > 0 and m["recovered_share"] >= m["min_recovered"]
        out[lt + case] = (bool(passed), m)
    return out


def h4a_grid(sweep: FilterSweep, layers: list[int], s: Settings, rho: float) -> dict:
    """H4-A over layers x target kinds; Holm over every p-value of the grid. Targets are
    chosen from token identities and positions alone (no activations are looked at)."""
    from sinkbench.measure.data import text_tokens
    from sinkbench.measure.designate import TARGET_KINDS, WRITES, choose_targets
    from sinkbench.measure.data import frequent_mask

    subj = sweep.subject
    sweep.base()
    freq = frequent_mask(subj.tokenizer, to_numpy(sweep.windows), Counter(text_tokens(subj, s.dataset)))
    targets_used, all_writes, written = {}, {}, {}
    for layer in layers:
        targets = {kind: choose_targets(sweep.windows, kind, freq) for kind in TARGET_KINDS}
        writes = h4a_writes(subj, sweep.windows, sweep.spectrum, layer, targets, s.windows_per_pass(subj),
                            prefix=sweep.base_hidden.get(layer), profile_mode=PROFILED_WRITE)
        for kind in TARGET_KINDS:
            targets_used[layer, kind] = targets[kind]
            # the profile read in the write's own pass, kept apart from what the verdicts read
            written[layer, kind] = writes[kind, PROFILED_WRITE].profile
            all_writes[layer, kind] = {mode: dataclasses.replace(writes[kind, mode], profile=None) for mode in WRITES}
    verdicts = lambda ws: h4a_verdicts({lt: h4a_raw(w, rho, s.bootstrap, s.h4_min_recovered, key=lt)  # noqa: E731
                                        for lt, w in ws.items()}, alpha=s.alpha)
    all_writes, n_units = as_units(all_writes, subj, s, len(sweep.windows))
    out = stability.attach(verdicts(all_writes), verdicts, all_writes, n_units, "H4A", model=subj.name)
    profiles = target_profiles(sweep, layers, targets, s, written)
    for (layer, kind, _, _), (_, m) in out.items():
        t = targets_used[layer, kind]
        m["target_positions"] = t.tolist()
        m["target_tokens"] = subj.tokenizer.convert_ids_to_tokens(sweep.windows[torch.arange(len(t)), t].tolist())
        m["value_key_profile"] = profiles.get((layer, kind))
    return out


PROFILED_WRITE = "add"  # the write whose passes also read the target's value/key profile


def target_profiles(sweep: FilterSweep, layers: list[int], targets: dict, s: Settings, written: dict) -> dict:
    """The value/key profile (sinkbench.measure.sink_profile: value norm and residual norm over the
    median position's, query-key cosine, attention received) of each designated target, over
    the layers after the write: the natural sink (position 0) and the target on the unedited
    model, and both under the dark write into the target (mode add). A reader sees whether the
    designated sink takes on the natural sink's profile or only its attention. One pass for the
    unedited model; the written profiles (layer, kind) -> {layer: [N, cols]} were read in the add
    writes' own passes (designate.run_write's profile); {} for a family without a profile (Falcon, Bloom)."""
    from sinkbench.measure.sink_profile import over_layers, profiled_pass, summarize, supported

    subj = sweep.subject
    if not supported(subj):
        return {}
    batch, kinds = s.windows_per_pass(subj), list(targets)
    labels = tuple(range(1 + len(kinds)))  # 0: the natural sink, then each kind's target
    _, base = profiled_pass(subj, sweep.windows, batch, positions=(0, *(targets[k] for k in kinds)), from_query=1)
    base = summarize(base, labels)
    out = {}
    for layer in layers:
        for n, kind in enumerate(kinds, start=1):
            under = summarize(written[layer, kind], (0, 1))
            out[layer, kind] = {"layers": f"{layer + 1}..{subj.n_layers - 1}", "write": PROFILED_WRITE,
                                "natural_sink": over_layers(base, 0, layer + 1), "target": over_layers(base, n, layer + 1),
                                "natural_sink_under_write": over_layers(under, 0, layer + 1),
                                "designated_target": over_layers(under, 1, layer + 1)}
    return out


H4A_PROFILE = dict(att_t=0.01, att_t_cv=0.4, att0=0.6, att0_sd=0.05, ratio=10.0, ratio_cv=0.4, fall=0.15, fall_sd=0.05,
                   control_ratio=1.5, rise=0.5, rise_cv=0.4, rise_sd=0.05, share=0.9, targets=1)


def _lognormal(rng, shape, cv):
    return hardness(rng, shape, cv)


def _h4a_sim(case):
    def simulate(rng, trials, n, layers, effect, **profile):
        from sinkbench.measure.designate import WriteResult

        p = dict(H4A_PROFILE)
        p.update(profile)
        if case == "A1":
            p["ratio"] = effect
        elif case == "A2":
            p["ratio"] = effect * p["control_ratio"]  # effect: dark capture over the control's
        else:
            p["share"] = effect
        s = DEFAULTS
        cells = layers * p["targets"]
        shape = (trials, cells, n)
        att_t = p["att_t"] * _lognormal(rng, shape, p["att_t_cv"])
        att_0 = np.clip(p["att0"] + p["att0_sd"] * rng.standard_normal(shape), 0.05, 0.99)
        nll = 3.1 + 0.3 * rng.standard_normal(shape)
        mult = lambda ratio: ratio * _lognormal(rng, shape, p["ratio_cv"])
        fall_add = p["fall"] + p["fall_sd"] * rng.standard_normal(shape)
        add_att0 = att_0 * (1 - fall_add) if not p.get("att0_null") else att_0 + p["att0_sd"] * 0.3 * (
            rng.standard_normal(shape) - rng.standard_normal(shape)) / math.sqrt(2)
        h = hardness(rng, shape, p["rise_cv"])
        broken_nll = nll + p["rise"] * h + p["rise_sd"] * window_noise(rng, shape)
        rescued_nll = nll + (1 - p["share"]) * p["rise"] * h + p["rise_sd"] * window_noise(rng, shape)
        modes = {
            "base": (att_t, att_0, nll),
            "add": (att_t * mult(p["ratio"]), add_att0, nll + 0.01 * window_noise(rng, shape)),
            "transplant": (att_t * mult(max(p["ratio"], 1.0) * 1.5), att_0 * (1 - 2 * fall_add), rescued_nll),
            "control": (att_t * mult(p["control_ratio"]), att_0 * (1 - 0.2 * fall_add), nll + 0.01 * window_noise(rng, shape)),
            "broken": (att_t, att_0 * (1 - 2 * fall_add), broken_nll),
        }
        target = {"A1": ("A1", "add"), "A2": ("A2", "add"), "A3": ("A3", "transplant")}[case]
        out = np.zeros((trials, layers), bool)
        for t in range(trials):
            raws = {}
            for c in range(cells):
                w = {m: WriteResult(a[t, c], b[t, c], x[t, c]) for m, (a, b, x) in modes.items()}
                raws[c // p["targets"], c % p["targets"]] = h4a_raw(w, s["h4_rho"], N_BOOT_CHEAP, s["h4_min_recovered"],
                                                                  key=(c // p["targets"], c % p["targets"]))
            res = h4a_verdicts(raws, alpha=s["alpha"])
            out[t] = [res[(l, 0) + target][0] for l in range(layers)]
        return out

    return simulate


NULLS = (
    Criterion("H4-A1", "capture ratio of the dark write (attention to t, edit / base)", _h4a_sim("A1"),
              nulls={"attention to 0 does not fall": dict(effect=10.0, att0_null=True),
                     "capture at rho": dict(effect=DEFAULTS["h4_rho"])},
              clear=dict(effect=10.0), profile=H4A_PROFILE,
              description="H4-A1: writing the dark component into t raises attention to t >= rho-fold and lowers attention to 0"),
    Criterion("H4-A2", "dark capture over the control's (ratio of the two capture ratios)", _h4a_sim("A2"),
              nulls={"control in place of the dark write": dict(effect=1.0, control_ratio=DEFAULTS["h4_rho"]),
                     "control captures at rho": dict(effect=10.0 / DEFAULTS["h4_rho"], control_ratio=DEFAULTS["h4_rho"])},
              clear=dict(effect=6.0), profile=H4A_PROFILE,
              description="H4-A2: the dark write captures more than a same-norm control, which stays below rho"),
    Criterion("H4-A3", "recovered share of the damage", _h4a_sim("A3"),
              nulls={"no rescue": dict(effect=0.0), "share at min_recovered": dict(effect=DEFAULTS["h4_min_recovered"])},
              clear=dict(effect=0.9), profile=H4A_PROFILE,
              description="H4-A3: with the tail removed at 0, writing it into t recovers >= min_recovered of the damage"),
)


# --------------------------------------------------------------------------- hostile nulls
# Each test at its boundary, one function of the null noise e (sinkbench.run.hostile runs them
# under heavy tails, skew both ways, AR(1) dependence, zeros and NaN windows).
def _h4a(which: str):
    case = {"capture": ("A1", "add"), "fall": ("A1", "add"), "control_below": ("A2", "add"),
            "damage": ("A3", "transplant"), "recovered": ("A3", "transplant")}[which]

    def run(e, rng):
        n = e.size
        b_att, b0, nll = rng.uniform(0.01, 0.02, n), 0.6 + small(rng, n, 0.03), nll_like(rng, n)
        rho = BOUNDARY["rho"]
        add = WriteResult(b_att * 10 * (1 + small(rng, n, 0.1)), b0 * 0.7, nll + small(rng, n, 0.01))
        broken = WriteResult(b_att, b0 * 0.5, nll + 1.0 + small(rng, n, 0.05))
        transplant = WriteResult(b_att * 15, b0 * 0.5, nll + 0.1 + small(rng, n, 0.05))
        control = WriteResult(b_att * 1.2 * (1 + small(rng, n, 0.05)), b0 * 0.95, nll + small(rng, n, 0.01))
        if which == "capture":
            add.att_t = rho * b_att * (1 + 0.3 * e)
        elif which == "fall":
            add.att_0 = b0 - 0.05 * e
        elif which == "control_below":
            control.att_t = rho * b_att * (1 - 0.3 * e)
        elif which == "damage":
            broken.nll_after = nll + 0.2 * e
            transplant.nll_after = nll - 0.5 + small(rng, n, 0.05)  # the share's own test stays clear
        elif which == "recovered":
            dmg = broken.nll_after - nll
            transplant.nll_after = nll + (1 - BOUNDARY["min_recovered"]) * dmg - 0.2 * e
        w = {"base": WriteResult(b_att, b0, nll), "add": add, "transplant": transplant, "control": control, "broken": broken}
        raws = {(1, "t"): h4a_raw(w, rho, N_BOOT, BOUNDARY["min_recovered"], key=(1, "t"))}
        return h4a_verdicts(raws, alpha=ALPHA)[(1, "t") + case][0]

    return run


HOSTILE = {"H4-A1 capture": _h4a("capture"), "H4-A1 attention to 0 falls": _h4a("fall"),
           "H4-A2 control below rho": _h4a("control_below"), "H4-A3 damage": _h4a("damage"),
           "H4-A3 recovered share": _h4a("recovered")}


# --------------------------------------------------------------------------- the unit
H4A_CASES = ("A1-add", "A1-transplant", "A2-add", "A3-transplant")  # claim-variant


def measure(bench, model_name: str) -> dict:
    return h4a_grid(bench.sweep(model_name), bench.layers(model_name), bench.of(model_name), bench.settings.h4_rho)


def check(bench, model_name: str, layer: int, target: str, h4_case: str) -> None:
    claim, variant = h4_case.split("-")
    bench.resume("H4", model_name, layer, claim=claim, variant=variant, target=target)
    passed, m = bench.results(HYPOTHESIS, model_name)[layer, target, claim, variant]
    params = bench.params(model_name, target=target, variant=variant, rho=bench.settings.h4_rho, bands=[bench.settings.n_bands])
    bench.record("H4", model_name, layer, params, passed, m, claim=claim, variant=variant, target=target)
    shown = {k: v for k, v in m.items() if k not in ("target_positions", "target_tokens")}
    assert passed, f"H4 {claim} ({variant}) fails on {model_name}, layer {layer}, {target} target: {shown}" + windows_note(m)


def passes(bench, model_name: str) -> int:
    from sinkbench.measure.designate import TARGET_KINDS, WRITES
    from sinkbench.measure.experiments import h4a_passes

    from sinkbench.measure.sink_profile import supported

    per_run = bench.runs(model_name, bench.of(model_name).n_seqs)
    n_layers = len(bench.layers(model_name))
    profiles = 1 if supported(bench.subject(model_name)) else 0  # target_profiles' unedited pass (the rest ride on the writes)
    return bench.base_passes(model_name) + (h4a_passes(n_layers, len(TARGET_KINDS), len(WRITES)) + profiles) * per_run


def _targets(s, model_name: str) -> list[str]:
    from sinkbench.measure.designate import TARGET_KINDS

    return list(TARGET_KINDS)


HYPOTHESIS = Hypothesis(
    name="H4-A", records="H4", title="a sink can be designated by hand (by intervention)",
    tests=(Test("test_designated_by_intervention",
                (LAYER, Axis("target", _targets), Axis("h4_case", constant(*H4A_CASES),
                                                      record=lambda case: dict(zip(("claim", "variant"), case.split("-"))))),
                check, p_values=2),),
    measure=measure, passes=passes, nulls=NULLS, hostile=HOSTILE,
    key_effects={"H4/A1": ("capture_ratio", "capture×"), "H4/A2": ("control_capture_ratio", "ctrl×"),
                 "H4/A3": ("recovered_share", "recovered")},
    question="Can a sink be designated by hand?",
    claims={"H4/A1": "a dark write draws the sink's attention to the target", "H4/A2": "more than a same-norm non-dark write does",
            "H4/A3": "transplanting the sink's dark signal rescues a broken sink"},
    methods="docs/methods.md §5 (H4-A), §6", built_in=True)
