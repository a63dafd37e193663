"""H3, distributed sinks (docs/methods.md).

Per model and BOS condition (bos: BOS first in every window; nobos: no BOS; the
model's native one is recorded as native), in the layers where attention
concentrates (chosen on selection windows, hypotheses/h3_distributed/measurement.py), a position is
sink-like when it receives h3_min_ratio times what the same layers give that place
(its query-key cells) on selection windows, steadily (CV <= h3_max_cv). Claims 1-3 are
means over windows: one statistic per window, tested across windows by the skew-guarded
mean test (equal weight per window), and only on at least H3_MIN_WINDOWS informative
windows (fewer: not testable, never a pass). Position is removed first: each position's
mean over windows, then bins of nearby positions after the first H3_EXACT_POSITIONS.
 1. sink-like positions fall on frequent tokens (top h3_frequent_share types,
    punctuation or whitespace) more than the window's base rate (per window: share minus
    base rate; also the exact summed hypergeometric test within these windows, the larger p);
 2. attention received and dark ratio correlate within windows (per window: the rank
    correlation, position removed from both);
 3. sink-like positions' band profiles are closer (cosine) to position 0's than
    ordinary positions' (per window: the difference, position removed);
 4. more than one sink: more than half of the windows have at least two sink-like
    positions, position 0 included when it meets the rule (exact binomial test,
    Clopper-Pearson interval).
p-values Holm-corrected over the model's conditions x claims.

This module is the hypothesis unit (sinkbench.registry): its grid, verdicts, simulated
calibration nulls, checks and figures; hypotheses/test_*.py only names its tests."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from sinkbench.stats import claims, stability
from sinkbench.stats.nulls import DEFAULTS, N_BOOT_CHEAP, POSITIONS, Criterion, skewed_unit
from sinkbench.stats.claims import ci_mean, holm_by_key, mean_or_nan
from sinkbench.measure.config import Settings
from sinkbench.measure.experiments import selection_windows
from sinkbench.registry import Axis, Hypothesis, Test, constant


H3_EFFECTS = {"1": "frequent_share_minus_base_rate", "2": "within_window_spearman",
              "3": "cos_sink_like_minus_ordinary", "4": "share_windows_with_min_sinks"}


# Unit defaults (documented in docs/methods.md §5, H3): users pass others to h3_raw.
H3_MIN_WINDOWS = 8  # claims 1-3: fewest informative windows a test across windows is run on
H3_EXACT_POSITIONS = 4  # positions 1..4 are never binned with others (the drift is steepest there)

H3_ESTIMANDS = {
    "1": "mean over informative windows of (share of sink-like positions on frequent tokens - base rate), "
         "and sink-like positions not a random subset within these windows (exact)",
    "2": "mean over windows of the within-window rank correlation of attention received and dark ratio, position removed",
    "3": "mean over informative windows of (profile cosine to position 0 at sink-like minus ordinary positions), "
         "position removed",
    "4": "share of windows with at least min_sinks sink-like positions"}


def _across_windows(values: np.ndarray, min_windows: int, seed_key: tuple, n_total: int) -> tuple[float, dict]:
    """The mean test over per-window statistics, or p = 1 with the reason when fewer than
    min_windows windows are informative (a test across windows cannot pass on 2 windows: its
    smallest p is about 0.6 there, and a test within them answers another question)."""
    values = np.asarray(values, float)
    m = {"n_windows": int(values.size), "n_windows_total": int(n_total), "min_windows": int(min_windows)}
    if values.size < min_windows:
        m["not_testable"] = (f"{values.size} informative windows of {n_total}, fewer than h3_min_windows = {min_windows}: "
                             "a mean over windows cannot be tested")
        return 1.0, m
    return claims.test_mean(values, *seed_key), m


def h3_raw(table, min_sinks: int = 2, position_bins: int = 10, permutations: int | None = None, seed: int | str = 0,
           min_windows: int = H3_MIN_WINDOWS, exact_positions: int = H3_EXACT_POSITIONS) -> dict:
    """Per-window statistics of H3's four claims on one PositionTable, each tested across the
    windows where it is defined (sinkbench.hypotheses.h3_distributed.verdicts): claims 1-3 by
    the skew-guarded mean test over those windows, with equal weight per window (claim 1 also
    by its exact test within windows), and only when at least min_windows are informative;
    claim 4 by an exact binomial over all windows. Column c of the table is position c + 1.
    permutations: accepted for callers of the within-window tests this replaced; no claim
    permutes now. seed: part of the mean tests' seed (with the claim). Returns claim -> (raw p, metrics)."""
    from .verdicts import frequent_enrichment, position_adjusted_correlation, position_adjusted_difference

    sink, cos = table.sink_like, table.profile_cos
    n = sink.shape[0]
    # 1. sink-like positions fall on frequent tokens more than the window's base rate: the
    #    per-window excess, equal weight per window (the effect's weighting), and the exact
    #    within-window test beside it; the claim needs both (the larger p)
    p1_exact, d1, m1 = frequent_enrichment(sink, table.frequent)
    p1_mean, w1 = _across_windows(d1, min_windows, ("H3", seed, "1"), n)
    # 2. attention received and dark ratio correlate within windows once position is removed
    #    from both (each position's mean over windows; bins of nearby positions after the first)
    rhos = position_adjusted_correlation(table.bar_ratio, table.dark_ratio, position_bins, exact_positions)
    p2, w2 = _across_windows(rhos, min_windows, ("H3", seed, "2"), n)
    # 3. band profile closer to position 0's at sink-like than at ordinary positions, position removed
    d3 = position_adjusted_difference(cos, sink, position_bins, exact_positions)
    p3, w3 = _across_windows(d3, min_windows, ("H3", seed, "3"), n)
    has = sink.sum(1) > 0
    # 4. a typical window has at least min_sinks sink-like positions (position 0 counts when
    #    it meets the same rule); windows with none count too
    counts = sink.sum(1) + table.position0_sink_like.astype(int)
    many = int((counts >= min_sinks).sum())
    position = f"each position's mean over windows removed, then {position_bins} bins after position {exact_positions}"
    return {
        "1": (max(p1_mean, p1_exact), {"effect": mean_or_nan(d1), "values": d1, **w1, "p_mean_across_windows": p1_mean,
                                       "test": "mean over windows (skew-guarded) and exact summed hypergeometric "
                                               "within windows, the larger p", **m1}),
        "2": (p2, {"effect": mean_or_nan(rhos), "values": rhos, **w2,
                   "test": f"mean over windows (skew-guarded) of rank correlations, {position}"}),
        "3": (p3, {"effect": mean_or_nan(d3), "values": d3, **w3,
                   "test": f"mean over windows (skew-guarded) of sink-like minus ordinary, {position}",
                   "cos_sink_like": mean_or_nan([cos[i][sink[i]].mean() for i in np.flatnonzero(has)]),
                   "cos_ordinary": float(cos[~sink].mean()) if (~sink).any() else float("nan")}),
        "4": (claims.binomial_greater(many, n, 0.5), {"effect": many / n if n else float("nan"), "n_windows": int(n),
                                               "windows_with_min_sinks": many, "min_sinks": min_sinks,
                                               "per_window_counts": counts.tolist(),
                                               "mean_count": float(counts.mean()) if n else float("nan")}),
    }


def h3_verdicts(raws: dict, *, alpha: float, n_boot: int) -> dict:
    """raws: condition -> h3_raw(...). Holm over conditions x claims. A claim passes when its
    Holm-adjusted p < alpha and its effect points the claimed way (> 0; claim 4: more than
    half of the windows); a claim with too few informative windows never passes (its record
    says `not_testable`). Returns (condition, claim) -> (passed, metrics)."""
    raw = {(cond, claim): [r[claim][0]] for cond, r in raws.items() for claim in r}
    adjusted = holm_by_key(raw)
    out = {}
    for (cond, claim), (p,) in adjusted.items():
        p_raw, m = raws[cond][claim]
        m = dict(m)
        name = H3_EFFECTS[claim]
        m[name] = m.pop("effect")
        m["estimand"] = H3_ESTIMANDS[claim]
        if claim == "4":
            m[name + "_ci"] = claims.proportion_ci(m["windows_with_min_sinks"], m["n_windows"])
            passed = m[name] > 0.5
        else:
            values = m.pop("values")
            m[name + "_ci"] = ci_mean(values, n_boot, "H3", cond, claim)
            m["per_window"] = np.round(values, 4).tolist()
            passed = m[name] > 0 and "not_testable" not in m
        m.update(p_value=p, p_value_raw=float(p_raw))
        out[cond, claim] = (bool(passed and p < alpha), m)
    return out


# BOS conditions, named for what they are: the model's native one is one of them
# (recorded as native), so no data is measured or counted twice.
H3_CONDITIONS = ("bos", "nobos")


def scatter_sample(table, n: int = 400) -> dict:
    """A fixed-seed subsample of (bar ratio, dark ratio, sink-like) for the report's H3 scatter."""
    idx = np.random.default_rng(0).permutation(table.bar_ratio.size)[:n]
    return {"bar_ratio": table.bar_ratio.ravel()[idx].round(4).tolist(),
            "dark_ratio": table.dark_ratio.ravel()[idx].round(4).tolist(),
            "sink_like": table.sink_like.ravel()[idx].astype(int).tolist()}


def h3_conditions(subject) -> list[str]:
    """The BOS conditions this tokenizer allows (bos needs a BOS token)."""
    return [c for c in H3_CONDITIONS if c == "nobos" or subject.bos_id is not None]


def h3_grid(subject, s: Settings) -> dict:
    """H3 under each BOS condition the tokenizer allows; Holm over conditions x claims.
    Active layers and the expected attention at each (query, key) cell are fixed on
    selection windows; the claims are tested on test windows."""
    from sinkbench.measure.data import text_tokens, windows_for
    from .measurement import SinkRule, calibrate_detector, measure_positions, position_histogram
    from sinkbench.measure.spectrum import spectrum_for

    sp = spectrum_for(subject, s.n_bands, s.basis)
    counts = Counter(text_tokens(subject, s.dataset))
    batch = s.windows_per_pass(subject)
    rule = SinkRule.from_settings(s)
    raws, extra, tables = {}, {}, {}
    for cond in h3_conditions(subject):
        bos = cond == "bos"
        windows = windows_for(subject, s.dataset, s.seq_len, s.n_seqs, bos=bos, layout=s.windows)
        detector = calibrate_detector(subject, selection_windows(subject, s, bos=bos), batch, rule)
        table = measure_positions(subject, windows, sp, counts, batch, detector)
        raws[cond] = h3_raw(table, position_bins=s.h3_position_bins, seed=cond)
        tables[cond] = table
        sinks = Counter(table.tokens[table.sink_like].tolist())
        old_rule = rule.flags(table.uniform_ratio, table.cv)  # what a uniform-head baseline would flag
        extra[cond] = {
            "native": bool(subject.uses_bos) == bos,
            "active_layers": detector.active_layers, "active_layers_chosen_on": "selection windows",
            "layer_scores": {int(l): round(v, 4) for l, v in detector.layer_scores.items()},
            "position0_received": float(table.position0_received.mean()),
            "position0_bar_ratio": float(table.position0_bar_ratio.mean()),
            "position0_dark_ratio": float(table.position0_dark_ratio.mean()),
            "position0_sink_like_share": float(table.position0_sink_like.mean()),
            "mean_dark_ratio_sink_like": float(table.dark_ratio[table.sink_like].mean()) if table.sink_like.any() else None,
            "mean_dark_ratio_ordinary": float(table.dark_ratio[~table.sink_like].mean()),
            "n_sink_like": int(table.sink_like.sum()), "n_positions": int(table.sink_like.size),
            "n_sink_like_uniform_baseline": int(old_rule.sum()),
            "sink_like_by_position": position_histogram(table.sink_like, table.seq_len, s.h3_position_bins),
            "top_sink_tokens": [[subject.tokenizer.convert_ids_to_tokens(t), c] for t, c in sinks.most_common(10)],
            "scatter_sample": scatter_sample(table),
        }
    verdicts = lambda tabs: h3_verdicts(  # noqa: E731
        {c: h3_raw(t, position_bins=s.h3_position_bins, seed=c) for c, t in tabs.items()},
        alpha=s.alpha, n_boot=s.bootstrap)
    out = stability.attach(h3_verdicts(raws, alpha=s.alpha, n_boot=s.bootstrap), verdicts, tables, s.n_seqs, "H3", model=subject.name)
    for (cond, _), (_, m) in out.items():
        m.update(extra[cond])
    return out


# Measured on SmolLM2-135M's H3 tables (16 x 128 windows, bos and nobos): 57% of positions
# are frequent tokens (window sd 0.10), 0.8-1.9 sink-like positions per window besides
# position 0, which is sink-like in 75-88% of windows; profile cosines to position 0 have
# mean 0.92, within-window sd 0.034-0.037 and skewness -0.11 to -0.25; real effects: claim 1 0.36-0.43, claim 2
# 0.18-0.24, claim 3 0.07-0.08.
H3_PROFILE = dict(positions=POSITIONS, frequent_rate=0.57, rate_sd=0.10, extra_sinks=0.8, position0=0.8,
                  on_frequent=0.4, rho=0.3, cos_mean=0.92, cos_sd=0.035, cos_skew=-0.2, cos_gap=0.08, many=0.4)


@dataclass
class _Table:
    """A PositionTable with the fields h3_raw reads."""

    sink_like: np.ndarray
    frequent: np.ndarray
    profile_cos: np.ndarray
    bar_ratio: np.ndarray
    dark_ratio: np.ndarray
    position0_sink_like: np.ndarray


def h3_table(rng, n, claim_null: str | None, p) -> _Table:
    """One simulated H3 table. claim_null: the claim at its null ('1', '2', '3', '4'), the
    others at the effects in p (p['on_frequent'], p['rho'], p['cos_gap'], p['many'])."""
    P = p["positions"]
    rate = np.clip(p["frequent_rate"] + p["rate_sd"] * rng.standard_normal((n, 1)), 0.02, 0.98)
    frequent = rng.random((n, P)) < rate
    # sink-like positions besides position 0. Claim 4 reads P(count >= 2), where position 0
    # counts when it is sink-like (probability position0): a window "has many" with
    # probability 0.5 under claim 4's null, 0.5 + many otherwise; a window with many has the
    # minimum that makes 2 plus Poisson(extra_sinks) more, one without has at most 1 in all
    pos0 = rng.random(n) < p["position0"]
    share_many = 0.5 if claim_null == "4" else 0.5 + p["many"]
    has_many = rng.random(n) < share_many
    need = np.where(pos0, 1, 2)
    n_sink = np.where(has_many, need + rng.poisson(p["extra_sinks"], n), np.where(pos0, 0, rng.integers(0, 2, n)))
    n_sink = np.minimum(n_sink, P // 2)[:, None]
    rank = lambda u: np.argsort(np.argsort(u, axis=1), axis=1)  # 0-based rank within each window
    u = rng.random((n, P))
    if claim_null == "1":  # the within-window permutation null: positions uniformly at random
        sink = rank(u) < n_sink
    else:  # each sink lands on a frequent token with probability base rate + on_frequent
        q = np.minimum(1.0, frequent.mean(1, keepdims=True) + p["on_frequent"])
        nf = np.minimum(rng.binomial(n_sink, q), frequent.sum(1, keepdims=True))
        no = np.minimum(n_sink - nf, (~frequent).sum(1, keepdims=True))
        sink = np.where(frequent, rank(np.where(frequent, u, 2.0)) < nf, rank(np.where(frequent, 2.0, u)) < no)
    # bar ratio: lognormal for ordinary positions, >= 5 at sink-like ones
    log_bar = 0.6 * rng.standard_normal((n, P))
    bar = np.where(sink, 5.0 + np.exp(log_bar), np.exp(log_bar))
    # dark ratio: Gaussian copula with the (log) bar ratio, correlation rho (0 under claim 2's null)
    z = (np.log(bar) - np.log(bar).mean(1, keepdims=True)) / np.log(bar).std(1, keepdims=True)
    rho = 0.0 if claim_null == "2" else p["rho"]
    dark = np.exp(0.3 + 0.4 * (rho * z + math.sqrt(1 - rho ** 2) * rng.standard_normal((n, P))))
    # profile cosine to position 0: mean cos_mean, sd cos_sd, skewness cos_skew (a standardised
    # gamma, mirrored for a left skew), at most 1; sink-like ones shifted up by cos_gap
    cos = np.minimum(p["cos_mean"] + p["cos_sd"] * skewed_unit(rng, (n, P), p["cos_skew"]), 1.0)
    if claim_null != "3":
        cos = np.where(sink, np.minimum(cos + p["cos_gap"], 1.0), cos)
    return _Table(sink, frequent, cos, bar, dark, pos0)


def _h3_sim(claim):
    def simulate(rng, trials, n, layers, effect, **profile):
        p = dict(H3_PROFILE)
        p.update(profile)
        key = {"1": "on_frequent", "2": "rho", "3": "cos_gap", "4": "many"}[claim]
        null = claim if effect == 0 else None
        if effect != 0:
            p[key] = effect
        out = np.zeros((trials, 1), bool)
        for t in range(trials):
            raws = {"x": h3_raw(h3_table(rng, n, null, p))}
            for extra in range(layers - 1):  # more BOS conditions in the family: clear effects
                raws[f"c{extra}"] = h3_raw(h3_table(rng, n, None, dict(H3_PROFILE)))
            res = h3_verdicts(raws, alpha=DEFAULTS["alpha"], n_boot=N_BOOT_CHEAP)
            out[t, 0] = res["x", claim][0]
        return out

    return simulate


def sink_position_figure(plt, where: dict) -> tuple:
    """H3: the share of measured positions that are sink-like, per bin of the window, one bar
    series per BOS condition (a recency artefact shows as a ramp at the window's end)."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 2.8))
    width = 0.8 / len(where)
    for c, (cond, h) in enumerate(sorted(where.items(), key=lambda kv: str(kv[0]))):
        rate = [v if v is not None and v == v else 0.0 for v in h["rate"]]
        ax.bar(np.arange(h["bins"]) + c * width, rate, width, label=f"{cond}: {sum(h['sink_like'])} sink-like")
    ax.set_xlabel(f"bin of the window (1/{h['bins']} of its length each; position 0 excluded)")
    ax.set_ylabel("share sink-like")
    ax.legend(fontsize=7)
    return (fig,)


NULLS = (
    Criterion("H3-1", "excess probability that a sink-like position is a frequent token", _h3_sim("1"),
              nulls={"labels permuted": dict(effect=0.0)}, clear=dict(effect=0.4), profile=H3_PROFILE,
              description="H3 claim 1: sink-like positions fall on frequent tokens more than the window's base rate"),
    Criterion("H3-2", "within-window correlation of attention received and dark ratio (Gaussian copula)", _h3_sim("2"),
              nulls={"dark ratio permuted": dict(effect=0.0)}, clear=dict(effect=0.3), profile=H3_PROFILE,
              description="H3 claim 2: attention received and dark ratio correlate within windows"),
    Criterion("H3-3", "cosine-to-position-0 shift of sink-like positions", _h3_sim("3"),
              nulls={"labels permuted": dict(effect=0.0)}, clear=dict(effect=0.08), profile=H3_PROFILE,
              description="H3 claim 3: sink-like positions' band profiles are closer to position 0's"),
    Criterion("H3-4", "P(window has >= 2 sinks) - 0.5", _h3_sim("4"),
              nulls={"P(>= 2 sinks) = 0.5": dict(effect=0.0)}, clear=dict(effect=0.4), profile=H3_PROFILE,
              description="H3 claim 4: a typical window has at least two sink-like positions"),
)


# --------------------------------------------------------------------------- the unit
def measure(bench, model_name: str) -> dict:
    return h3_grid(bench.subject(model_name), bench.of(model_name))


def check(bench, model_name: str, condition: str, claim: str) -> None:
    import pytest

    from .measurement import SinkRule

    bench.resume("H3", model_name, None, claim=claim, condition=condition)
    if condition == "bos" and bench.subject(model_name).bos_id is None:
        pytest.skip(f"{model_name}: the tokenizer has no BOS token to force on")
    passed, m = bench.results(HYPOTHESIS, model_name)[condition, claim]
    s = bench.settings
    # H3's statistics are over windows whatever --units says (its detector and tests are per
    # window, never averaged by document): the record says so rather than claim document units
    units = {"units": "window", "units_requested": s.units} if s.units != "window" else {}
    params = bench.params(model_name, condition=condition, **SinkRule.from_settings(s).record(),
                          h3_position_bins=s.h3_position_bins,
                          h3_min_windows=H3_MIN_WINDOWS, h3_exact_positions=H3_EXACT_POSITIONS, **units)
    bench.record("H3", model_name, None, params, passed, m, claim=claim, condition=condition)
    shown = {k: v for k, v in m.items() if k not in ("per_window", "per_window_counts", "scatter_sample", "top_sink_tokens",
                                                "layer_scores", "sink_like_by_position", "not_testable", "estimand")}
    why = f"not testable: {m['not_testable']}; " if m.get("not_testable") else ""
    assert passed, f"H3 claim {claim} fails on {model_name} ({condition}): {why}[estimand: {m['estimand']}] " + ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())


def passes(bench, model_name: str) -> int:
    s = bench.of(model_name)
    return len(h3_conditions(bench.subject(model_name))) * (bench.runs(model_name, s.n_select) + bench.runs(model_name, s.n_seqs))


def figures(plt, model: str, recs: list[dict]) -> list:
    """Attention received vs dark ratio (claim 2's sample); where sink-like positions fall."""
    out = []
    for r in recs:
        if r["hypothesis"] == "H3" and r.get("claim") == "2" and r["metrics"].get("scatter_sample"):
            s = r["metrics"]["scatter_sample"]
            fig, ax = plt.subplots(figsize=(5, 3.5))
            sink = np.array(s["sink_like"], bool)
            x, y = np.array(s["bar_ratio"]), np.array(s["dark_ratio"])
            ax.scatter(x[~sink], y[~sink], s=6, alpha=0.5, label="ordinary")
            ax.scatter(x[sink], y[sink], s=14, color="red", label="sink-like")
            ax.set_xscale("log")
            ax.set_xlabel("attention received / expected at its query-key cells")
            ax.set_ylabel("dark ratio")
            ax.legend(fontsize=7)
            rho = r["metrics"].get("within_window_spearman", float("nan"))
            out.append((fig, f"{model} ({r.get('condition')}): attention received vs dark ratio (mean within-window ρ={rho:.2f})"))
    where = {r.get("condition"): r["metrics"]["sink_like_by_position"] for r in recs
             if r["hypothesis"] == "H3" and r.get("claim") == "4" and r["metrics"].get("sink_like_by_position")}
    if where:
        out.append((sink_position_figure(plt, where)[0], f"{model}: where in the window H3's sink-like positions fall"))
    return out


HYPOTHESIS = Hypothesis(
    name="H3", title="distributed sinks",
    tests=(Test("test_distributed_sinks", (Axis("condition", constant(*H3_CONDITIONS)), Axis("claim", constant("1", "2", "3", "4"))),
                check),),
    measure=measure, passes=passes, nulls=NULLS,
    key_effects={"H3/1": ("frequent_share_minus_base_rate", "freq − base"), "H3/2": ("within_window_spearman", "ρ"),
                 "H3/3": ("cos_sink_like_minus_ordinary", "Δcos"), "H3/4": ("share_windows_with_min_sinks", "windows ≥2 sinks")},
    question="One sink or several, and does a model without BOS spread sinks over frequent tokens with the U-dark profile?",
    claims={"H3/1": "sink-like positions fall on frequent tokens", "H3/2": "attention received rises with the dark ratio",
            "H3/3": "sink-like positions share position 0's band profile", "H3/4": "most windows hold two or more sinks"},
    figures=figures, methods="docs/methods.md §5 (H3), §6", built_in=True)
