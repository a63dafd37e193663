"""H1, the dark tail is necessary (Cancedda 2024; docs/methods.md).

After decoder layer l:
 (a) removing band K (the U-dark tail) at all positions raises NLL by at least
     h1_min_delta nats, significantly more than removing a random subspace of the
     same dimension and more than removing the median middle band;
 (b) removing band K at the sink position only lowers post-filter sink mass by at
     least h1_min_sink_drop (relative; significant) and raises the NLL of the other
     predictions (those made at positions >= 1) significantly.
Paired one-sided tests of means over windows (skew-guarded), Holm-corrected over the model's
layers x 6 tests. Also recorded: the share of (a)'s damage that (b) reproduces.

This module is the hypothesis unit (sinkbench.registry): its grid, verdicts, simulated
calibration nulls, checks and figures; hypotheses/test_*.py only names its tests."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sinkbench.stats import stability
from sinkbench.stats.nulls import (ALPHA, BOUNDARY, Criterion, DEFAULTS, N_BOOT, N_BOOT_CHEAP, hardness, nll_like,
                                   small, split_profile, window_noise)
from sinkbench.stats.claims import ci_mean, ci_ratio, holm_by_key, mean_or_nan, test_mean, window_counts, windows_note
from sinkbench.measure.config import Settings
from sinkbench.measure.experiments import as_units
from sinkbench.registry import LAYER, Hypothesis, Test
from sinkbench.stats.inference import cost_greater, prediction_greater
from sinkbench.measure.sweep import FilterSweep, middle_band
from sinkbench.model.tensors import to_numpy
from sinkbench.measure.massive import MIN_WINDOW_SHARE


@dataclass
class H1Inputs:
    """Per-window arrays [N] for one layer. NLLs of every prediction, except the *_rest
    ones: predictions made at positions >= 1 (an edit at the sink changes the prediction
    made at position 0 directly, not through attention)."""

    base: np.ndarray
    dark_all: np.ndarray
    random: np.ndarray  # averaged over seeds
    middle: np.ndarray
    base_rest: np.ndarray
    dark_all_rest: np.ndarray
    dark_sink: np.ndarray
    dark_sink_rest: np.ndarray
    sink_mass_base: np.ndarray  # post-filter layers of the unfiltered run
    sink_mass_dark_sink: np.ndarray  # post-filter layers, dark tail removed at the sink
    # [S, N]: each random subspace's NLL (S >= 2 for the subspace test); windows on axis 1
    random_each: np.ndarray | None = field(default=None, metadata={"window_axis": 1})
    # The control fair to massive activations: random subspaces of the same dimension orthogonal
    # to the massive coordinates flagged at this layer on the selection windows (None: the plain
    # ones, as when no coordinate is flagged). The verdict reads these (see h1_verdicts).
    random_fair: np.ndarray | None = None
    random_fair_each: np.ndarray | None = field(default=None, metadata={"window_axis": 1})


def _control_tests(x: H1Inputs, layer, mean, each, key: str) -> tuple[np.ndarray, float, float, tuple]:
    """One random control's tests: (contrast dark - control, paired p, subspace p, log-scale
    (p, scale)). key names the contrast (its bootstrap seed)."""
    delta = x.dark_all - x.base
    costs = None if each is None else np.nanmean(np.asarray(each, float) - x.base, 1)  # each subspace's mean cost
    c = x.dark_all - mean
    p_paired = test_mean(c, "H1", layer, key)
    p_subspaces = 1.0 if costs is None else prediction_greater(mean_or_nan(delta), costs)
    log_test = (1.0, "") if costs is None else cost_greater(mean_or_nan(delta), costs)
    return c, p_paired, p_subspaces, log_test


def h1_verdicts(grid: dict, *, alpha: float, min_delta: float, min_sink_drop: float, n_boot: int) -> dict:
    """grid: layer -> H1Inputs. Holm over layers x 6 tests. Returns layer -> (passed, metrics).
    Every test is of a mean over windows (stats.mean_greater), a ratio of means through its
    linear contrast.
    (a) dark-tail removal at all positions raises mean NLL by more than min_delta (test of
        rise - min_delta), more than the middle band (paired), and more than random
        subspaces of its dimension do: paired over windows against their mean, and as a
        subspace, against the spread of the random subspaces' mean costs (one-sided
        prediction-interval t-test, S - 1 degrees of freedom), so that band K must stand out
        from random subspaces, not only from the few that were drawn;
    (b) dark-tail removal at the sink only drops mean post-filter sink mass by more than
        min_sink_drop of it (test of (1 - min_sink_drop) * base - edited: the ratio-of-means
        drop against its minimum), and the mean NLL of the other predictions rises.
    Two random controls: the plain one (random subspaces of band K's dimension) and the one
    fair to massive activations (the same, orthogonal to the layer's massive coordinates;
    random_fair*). (a) reads the fair one: a plain random projector moves a share ~dim K / d of
    each massive coordinate's value (thousands of medians) into dim K random directions, so it
    tests "corrupt the massive activation", not "remove ordinary directions" (docs/methods.md
    §5, H1). With no massive coordinate the two are the same subspaces, and so the same numbers.
    The plain control's tests are recorded under "plain_random", Holm-adjusted in the family it
    would have formed (its claim_a: the verdict had it been read)."""
    raw, raw_plain, contrasts, log_test, log_plain = {}, {}, {}, {}, {}
    for layer, x in grid.items():
        delta = x.dark_all - x.base
        fair_mean = x.random if x.random_fair is None else x.random_fair
        fair_each = x.random_each if x.random_fair is None else x.random_fair_each
        vs_plain, p_plain, p_sub_plain, log_plain[layer] = _control_tests(x, layer, x.random, x.random_each, "vs_random")
        if x.random_fair is None:  # the same subspaces: the same tests
            vs_fair, p_fair, p_sub_fair, log_test[layer] = vs_plain, p_plain, p_sub_plain, log_plain[layer]
        else:
            vs_fair, p_fair, p_sub_fair, log_test[layer] = _control_tests(x, layer, fair_mean, fair_each, "vs_random_fair")
        c = {"vs_random": vs_fair, "vs_middle": x.dark_all - x.middle, "above_min_delta": delta - min_delta,
             "sink_mass_drop": (1 - min_sink_drop) * x.sink_mass_base - x.sink_mass_dark_sink,
             "dark_sink": x.dark_sink_rest - x.base_rest}
        contrasts[layer] = c
        # the verdict reads the linear-scale subspace test; the log-scale one (exact for lognormal
        # costs, but far weaker when the subspaces' costs spread over a multiple, as SmolLM2's
        # 0.3-0.9 do) is recorded beside it (docs/calibration.md)
        rest = [test_mean(c["vs_middle"], "H1", layer, "vs_middle"), test_mean(c["above_min_delta"], "H1", layer, "above_min_delta"),
                test_mean(c["sink_mass_drop"], "H1", layer, "sink_mass_drop"), test_mean(c["dark_sink"], "H1", layer, "dark_sink")]
        raw[layer] = [p_fair, rest[0], rest[1], p_sub_fair, rest[2], rest[3]]
        raw_plain[layer] = [p_plain, rest[0], rest[1], p_sub_plain, rest[2], rest[3]]
    adjusted = holm_by_key(raw)
    # the plain control's own family (recorded, not read): a second Holm only when it differs
    adjusted_plain = adjusted if raw_plain == raw else holm_by_key(raw_plain)
    out = {}
    for layer, x in grid.items():
        p_rand, p_mid, p_min, p_subspaces, p_mass, p_sink = adjusted[layer]
        ci = lambda v, name: ci_mean(v, n_boot, "H1", layer, name)
        delta = x.dark_all - x.base
        fair_mean = x.random if x.random_fair is None else x.random_fair
        fair_each = x.random_each if x.random_fair is None else x.random_fair_each
        plain_costs = [] if x.random_each is None else np.nanmean(np.asarray(x.random_each, float) - x.base, 1)
        pp = adjusted_plain[layer]
        plain = {  # the plain random control: recorded, not read (unless it is the fair one too)
            "random_delta": mean_or_nan(x.random - x.base),
            "random_delta_ci": ci(x.random - x.base, "random_delta"),
            "random_delta_per_subspace": [round(float(c), 6) for c in plain_costs],
            "p_vs_random": pp[0], "p_vs_random_raw": raw_plain[layer][0],
            "p_vs_random_subspaces": pp[3], "p_vs_random_subspaces_raw": raw_plain[layer][3],
            "p_vs_random_subspaces_log_raw": log_plain[layer][0], "vs_random_subspaces_log_scale": log_plain[layer][1],
            "claim_a": bool(mean_or_nan(delta) >= min_delta and max(pp[:4]) < alpha),
        }
        sink_delta, all_rest_delta = x.dark_sink_rest - x.base_rest, x.dark_all_rest - x.base_rest
        mass_base, mass_dark = mean_or_nan(x.sink_mass_base), mean_or_nan(x.sink_mass_dark_sink)
        mass_lost = x.sink_mass_base - x.sink_mass_dark_sink
        sink_drop = mean_or_nan(mass_lost) / mass_base if mass_base > 0 else float("nan")
        a = bool(mean_or_nan(delta) >= min_delta and max(p_rand, p_mid, p_min, p_subspaces) < alpha)
        b = bool(sink_drop >= min_sink_drop and p_mass < alpha and p_sink < alpha)
        random_costs = [] if fair_each is None else np.nanmean(np.asarray(fair_each, float) - x.base, 1)
        share_rest = mean_or_nan(all_rest_delta)
        out[layer] = (a and b, {
            "base_nll": mean_or_nan(x.base),
            "dark_all_nll": mean_or_nan(x.dark_all),
            "dark_all_delta": mean_or_nan(delta),
            "dark_all_delta_ci": ci(delta, "dark_all_delta"),
            # the random control the verdict reads: orthogonal to the massive coordinates
            # (the plain subspaces when none is flagged); the plain one under plain_random
            "random_control": "orthogonal to massive coordinates" if x.random_fair is not None else "plain",
            "random_delta": mean_or_nan(fair_mean - x.base),
            "random_delta_ci": (plain["random_delta_ci"] if x.random_fair is None
                                else ci(fair_mean - x.base, "random_fair_delta")),
            "random_delta_per_subspace": [round(float(c), 6) for c in random_costs],
            "plain_random": plain,
            "middle_delta": mean_or_nan(x.middle - x.base),
            "middle_delta_ci": ci(x.middle - x.base, "middle_delta"),
            "p_vs_random": p_rand, "p_vs_middle": p_mid, "p_above_min_delta": p_min,
            "p_vs_random_subspaces": p_subspaces,
            "p_vs_random_raw": raw[layer][0], "p_vs_middle_raw": raw[layer][1], "p_above_min_delta_raw": raw[layer][2],
            "p_vs_random_subspaces_raw": raw[layer][3],
            # recorded, not read: the log-scale test and its scale (linear when a cost was <= 0)
            "p_vs_random_subspaces_log_raw": log_test[layer][0], "vs_random_subspaces_log_scale": log_test[layer][1],
            # (b): NLL of the predictions made at positions >= 1; the all-prediction mean beside it
            "dark_sink_delta": mean_or_nan(sink_delta),
            "dark_sink_delta_ci": ci(sink_delta, "dark_sink_delta"),
            "dark_sink_delta_all_predictions": mean_or_nan(x.dark_sink - x.base),
            "p_dark_sink": p_sink, "p_dark_sink_raw": raw[layer][5],
            "sink_mass_base": mass_base,
            "sink_mass_dark_sink": mass_dark,
            "sink_mass_drop": sink_drop,
            "sink_mass_drop_ci": ci_ratio(mass_lost, x.sink_mass_base, n_boot, "H1", layer, "sink_mass_drop"),
            "p_sink_mass_drop": p_mass, "p_sink_mass_drop_raw": raw[layer][4],
            # how much of the all-position damage removing the tail at the sink alone reproduces
            "sink_share_of_damage": mean_or_nan(sink_delta) / share_rest if share_rest > 0 else float("nan"),
            "sink_share_of_damage_ci": ci_ratio(sink_delta, all_rest_delta, n_boot, "H1", layer, "share"),
            "claim_a": a,
            "claim_b": b,
            **window_counts(*contrasts[layer].values()),
        })
    return out


def massive_coordinates(sweep: FilterSweep, layers: list[int], s: Settings) -> dict[int, list[int]]:
    """layer -> its massive coordinates (sinkbench.measure.massive: H6's scale-free criterion,
    |h| > h6_min_ratio x the window's median |h| somewhere in the window, on at least half of
    the selection windows; Sun's stricter criterion flags a subset, so the fair control avoids
    every coordinate H6 could call massive), from the model run's shared selection pass, never
    the test windows the verdict reads."""
    from sinkbench.measure.massive import massive_coordinates as coordinates, selection_hidden

    hidden = selection_hidden(sweep, s)
    return {layer: coordinates(hidden[layer], s.h6_min_ratio) for layer in layers}


def h1_grid(sweep: FilterSweep, layers: list[int], s: Settings) -> dict:
    base = sweep.base()
    massive = massive_coordinates(sweep, layers, s)
    grid = {}
    for layer in layers:
        fair = sweep.fair_random_names(massive[layer])
        sweep.prefetch(layer, sweep.filters_for("h1") + fair)
        dark_all, dark_sink = sweep.get(layer, "dark_all"), sweep.get(layer, "dark_sink")
        fair_each = np.stack([sweep.get(layer, n).nll for n in fair]) if massive[layer] else None
        grid[layer] = H1Inputs(
            base=base.nll, dark_all=dark_all.nll, random=sweep.random_mean_nll(layer),
            middle=sweep.get(layer, "middle").nll, base_rest=base.nll_rest, dark_all_rest=dark_all.nll_rest,
            dark_sink=dark_sink.nll, dark_sink_rest=dark_sink.nll_rest,
            sink_mass_base=base.post_filter_sink_mass(layer),
            sink_mass_dark_sink=dark_sink.post_filter_sink_mass(layer),
            random_each=np.stack([sweep.get(layer, f"random{q}").nll for q in sweep.seeds]),
            random_fair=None if fair_each is None else fair_each.mean(0), random_fair_each=fair_each,
        )
    verdicts = lambda g: h1_verdicts(g, alpha=s.alpha, min_delta=s.h1_min_delta, min_sink_drop=s.h1_min_sink_drop,  # noqa: E731
                                     n_boot=s.bootstrap)
    grid, n_units = as_units(grid, sweep.subject, s, len(base.nll))
    results = stability.attach(verdicts(grid), verdicts, grid, n_units, "H1", model=sweep.subject.name)
    for layer, (_, metrics) in results.items():
        metrics["sink_mass_dark_all"] = float(sweep.get(layer, "dark_all").post_filter_sink_mass(layer).mean())
        hidden = sweep.base_hidden.get(layer)
        if hidden is not None:  # the dark tail's share at the sink vs ordinary positions (report figure)
            ratio = to_numpy(sweep.spectrum.dark_ratio(hidden.float()))
            metrics["dark_ratio_sink"] = float(ratio[:, 0].mean())
            metrics["dark_ratio_ordinary"] = float(ratio[:, 1:].mean())
        metrics["middle_band"] = middle_band(s.n_bands)
        metrics["removed_dims"] = sweep.spectrum.band_dim([s.n_bands])
        # what the fair control avoided: coordinates, how they were found
        metrics["massive_coordinates"] = massive[layer]
        metrics["massive_criterion"] = (f"|h| > h6_min_ratio {s.h6_min_ratio:g} x the layer's median |h|, on >= "
                                        f"{MIN_WINDOW_SHARE:.0%} of the {s.n_select} selection windows")
        # per test window, in the order of params.windows.test_starts: for audits that rebuild the windows
        metrics["per_window"] = {"base_nll": np.round(base.nll, 6).tolist(),
                                 "dark_all_nll": np.round(grid[layer].dark_all, 6).tolist(),
                                 "sink_mass_base": np.round(grid[layer].sink_mass_base, 6).tolist()}
    return results


# Measured on SmolLM2-135M, layer 15, 16 x 128-token pydoc windows (benchmarks/calibrate_zoo.py
# and the default run's H1 records): a random 28-dim subspace costs 1.09 nats, the window sd
# of one subspace's rise beyond the shared hardness is 0.18, window hardness cv 0.11, the
# middle band costs 0.15; between random subspaces the mean cost varies with sd 0.27
# (tau = 0.24), which the first null leaves out (tau = 0) and the second puts in. plain_extra > 0
# makes the drawn subspaces the fair control (orthogonal to massive coordinates) and adds plain
# ones that cost plain_extra more (x window hardness), as on Gemma-3-270M (plain 14-20 nats).
H1_PROFILE = dict(random_rise=1.09, tau=0.0, random_sd=0.18, dark_sd=0.3, middle_rise=0.15, middle_sd=0.05, cv=0.11,
                  sink_rise=0.6, sink_sd=0.25, sink_drop=0.4, drop_sd=0.1, mass=0.5, mass_sd=0.05, seeds=3,
                  plain_extra=0.0)


def _h1_arrays(rng, trials, n, layers, excess, p):
    shape = (trials, layers, n)
    h = hardness(rng, shape, p["cv"])
    base = 3.1 + 0.35 * rng.standard_normal((trials, 1, n)) + 0.02 * rng.standard_normal(shape)
    # each random subspace (and, under the null, the "dark" one) has its own mean effect:
    # random_rise * (1 + tau * z_s), fixed across the windows of a trial
    sub = p["random_rise"] * (1 + p["tau"] * rng.standard_normal((trials, layers, p["seeds"] + 1, 1)))
    rand = base[:, :, None] + sub[:, :, 1:] * h[:, :, None] + p["random_sd"] * window_noise(rng, (trials, layers, p["seeds"], n))
    random = rand.mean(2)
    dark_mean = sub[:, :, 0] + excess  # [trials, layers, 1]
    dark_sd = p["random_sd"] if excess == 0 else p["dark_sd"]
    dark_all = base + dark_mean * h + dark_sd * window_noise(rng, shape)
    middle = base + p["middle_rise"] * h + p["middle_sd"] * window_noise(rng, shape)
    base_rest = base - 0.01
    dark_sink_rest = base_rest + p["sink_rise"] * h + p["sink_sd"] * window_noise(rng, shape)
    mass0 = np.clip(p["mass"] + p["mass_sd"] * rng.standard_normal(shape), 0.05, 0.95)
    drop = p["sink_drop"] + p["drop_sd"] * rng.standard_normal(shape)
    mass1 = np.clip(mass0 * (1 - drop) + 0.005 * rng.standard_normal(shape), 0.0, 1.0)
    fair = {}
    if p.get("plain_extra", 0.0):  # the drawn subspaces are the fair ones; the plain ones cost more
        fair = dict(random_fair=random, random_fair_each=rand)
        rand = rand + p["plain_extra"] * h[:, :, None] + p["random_sd"] * window_noise(rng, rand.shape)
        random = rand.mean(2)
    return dict(base=base * np.ones(shape), dark_all=dark_all, random=random, random_each=rand, middle=middle, **fair,
                base_rest=base_rest * np.ones(shape),
                dark_all_rest=dark_all - 0.01, dark_sink=dark_sink_rest + 0.01, dark_sink_rest=dark_sink_rest,
                sink_mass_base=mass0, sink_mass_dark_sink=mass1)


def _h1_sim(claim):
    def simulate(rng, trials, n, layers, effect, **profile):
        _, p = split_profile(effect, H1_PROFILE, profile)
        if claim == "a":
            arr = _h1_arrays(rng, trials, n, layers, effect, p)
        else:
            arr = _h1_arrays(rng, trials, n, layers, p.pop("excess", 2.0), dict(p, sink_drop=effect))
        out = np.zeros((trials, layers), bool)
        s = DEFAULTS
        for t in range(trials):
            grid = {l: H1Inputs(**{k: v[t, l] for k, v in arr.items()}) for l in range(layers)}
            res = h1_verdicts(grid, alpha=s["alpha"], min_delta=s["h1_min_delta"], min_sink_drop=s["h1_min_sink_drop"],
                              n_boot=N_BOOT_CHEAP)
            out[t] = [res[l][1]["claim_" + claim] for l in range(layers)]
        return out

    return simulate


NULLS = (
    Criterion("H1a", "dark-tail NLL rise minus the random-subspace rise (nats)", _h1_sim("a"),
              nulls={"random-like": dict(effect=0.0),
                     "random-like, subspaces differ": dict(effect=0.0, tau=0.24),
                     "random-like to the fair control, plain costlier": dict(effect=0.0, tau=0.24, plain_extra=8.0),
                     "at min_delta": dict(effect=DEFAULTS["h1_min_delta"] - 0.1, random_rise=0.1)},
              clear=dict(effect=1.0), profile=H1_PROFILE,
              description="H1(a): band K removed everywhere raises NLL >= min_delta, more than a random subspace and the middle band"),
    Criterion("H1b", "relative sink-mass drop (tail removed at the sink)", _h1_sim("b"),
              nulls={"no NLL effect": dict(effect=0.4, sink_rise=0.0),
                     "drop at min_sink_drop": dict(effect=DEFAULTS["h1_min_sink_drop"])},
              clear=dict(effect=0.4), profile=H1_PROFILE,
              description="H1(b): band K removed at the sink lowers later sink mass by >= min_sink_drop and raises NLL"),
)


# --------------------------------------------------------------------------- hostile nulls
# Each test at its boundary, one function of the null noise e (sinkbench.run.hostile runs them
# under heavy tails, skew both ways, AR(1) dependence, zeros and NaN windows).
def _h1(which: str):
    def run(e, rng):
        n = e.size
        base = nll_like(rng, n)
        dark_all = base + 2.0 + small(rng, n, 0.1)
        random = base + 0.3 + small(rng, n, 0.1)
        middle = base + 0.2 + small(rng, n, 0.1)
        each = base + np.array([[0.2], [0.3], [0.4]]) + small(rng, (3, n), 0.05)
        mass = 0.5 + small(rng, n, 0.05)
        mass_edit = mass * 0.5 + small(rng, n, 0.01)
        sink_rest = base + 0.5 + small(rng, n, 0.1)
        if which == "vs_random":
            random = dark_all - 0.2 * e
        elif which == "vs_middle":
            middle = dark_all - 0.2 * e
        elif which == "min_delta":
            dark_all = base + BOUNDARY["min_delta"] + 0.2 * e
            random, middle = base + 0.05 + small(rng, n), base + 0.02 + small(rng, n)
            each = base + np.array([[0.03], [0.05], [0.07]]) + small(rng, (3, n), 0.01)
        elif which == "sink_mass":
            mass_edit = mass * (1 - BOUNDARY["min_sink_drop"]) * (1 - 0.3 * e)
        elif which == "sink_nll":
            sink_rest = base + 0.2 * e
        x = H1Inputs(base=base, dark_all=dark_all, random=random, middle=middle, base_rest=base,
                     dark_all_rest=dark_all, dark_sink=sink_rest, dark_sink_rest=sink_rest,
                     sink_mass_base=mass, sink_mass_dark_sink=mass_edit, random_each=each)
        m = h1_verdicts({1: x}, alpha=ALPHA, min_delta=BOUNDARY["min_delta"], min_sink_drop=BOUNDARY["min_sink_drop"], n_boot=N_BOOT)[1][1]
        return m["claim_a"] if which in ("vs_random", "vs_middle", "min_delta") else m["claim_b"]

    return run


HOSTILE = {"H1a vs random": _h1("vs_random"), "H1a vs middle": _h1("vs_middle"), "H1a above min_delta": _h1("min_delta"),
           "H1b sink-mass drop": _h1("sink_mass"), "H1b NLL rise": _h1("sink_nll")}


# --------------------------------------------------------------------------- the unit
def measure(bench, model_name: str) -> dict:
    return h1_grid(bench.sweep(model_name), bench.layers(model_name), bench.settings)


def check(bench, model_name: str, layer: int) -> None:
    bench.resume("H1", model_name, layer)
    s = bench.settings
    passed, m = bench.results(HYPOTHESIS, model_name)[layer]
    m["dark_alignment_UE"] = bench.dark_alignment(model_name)
    m["sink_rate"] = bench.sink_rate(model_name)  # of the unedited model: context for the verdict

    params = bench.params(model_name, bands=[s.n_bands], positions=["all", "sink"],
                          min_delta=s.h1_min_delta, min_sink_drop=s.h1_min_sink_drop)
    bench.record("H1", model_name, layer, params, passed, m)

    plain = m["plain_random"]
    control = ("random" if m["random_control"] == "plain" else
               f"random orthogonal to massive coordinates {m['massive_coordinates']}")
    beside = ("" if m["random_control"] == "plain" else
              f"; plain random {plain['random_delta']:.3f} (Holm p={plain['p_vs_random']:.3g}, recorded, not read)")
    assert m["claim_a"], (
        f"H1(a) fails on {model_name} after layer {layer}: removing the dark tail raises mean NLL by "
        f"{m['dark_all_delta']:.3f} nats (need >= {s.h1_min_delta}); {control} {m['random_delta']:.3f} "
        f"(Holm p={m['p_vs_random']:.3g}, as a subspace {m['p_vs_random_subspaces']:.3g}), middle {m['middle_delta']:.3f} "
        f"(Holm p={m['p_vs_middle']:.3g}){beside}" + windows_note(m)
    )
    lo, hi = m["sink_mass_drop_ci"]
    assert m["claim_b"], (
        f"H1(b) fails on {model_name} after layer {layer}: dark tail removed at the sink only: sink mass "
        f"{m['sink_mass_base']:.3f} -> {m['sink_mass_dark_sink']:.3f} (drop {m['sink_mass_drop']:.1%}, 95% CI "
        f"{lo:.1%}..{hi:.1%}, need >= {s.h1_min_sink_drop:.0%}, Holm p={m['p_sink_mass_drop']:.3g}), NLL of the other "
        f"predictions +{m['dark_sink_delta']:.3f} (Holm p={m['p_dark_sink']:.3g})" + windows_note(m)
    )


def passes(bench, model_name: str) -> int:
    """Forward passes H1 still needs (for the progress line): the plain filters, one pass over
    the selection windows to find massive coordinates, and at most random_seeds more filters per
    layer for the fair control (none at a layer without massive coordinates: an upper bound)."""
    import math

    sweep = bench.sweep(model_name)
    fair = len(bench.layers(model_name)) * math.ceil(len(sweep.seeds) / sweep.filters_per_pass)
    return (bench.filter_passes(model_name, sweep.filters_for("h1")) + bench.runs(model_name, bench.of(model_name).n_select)
            + fair * bench.runs(model_name, bench.of(model_name).n_seqs))


def figures(plt, model: str, recs: list[dict]) -> list:
    """Post-filter sink mass per layer under each filter; the dark ratio of the sink vs
    ordinary positions."""
    h1 = sorted((r for r in recs if r["hypothesis"] == "H1"), key=lambda r: r["layer"])
    if not h1:
        return []
    out = []
    layers = [r["layer"] for r in h1]
    fig, ax = plt.subplots(figsize=(6, 3))
    for metric, label in (("sink_mass_base", "unfiltered"), ("sink_mass_dark_all", "dark tail removed, all positions"),
                          ("sink_mass_dark_sink", "dark tail removed at the sink")):
        ax.plot(layers, [r["metrics"].get(metric) for r in h1], marker="o", label=label)
    ax.set_xlabel("layer filtered")
    ax.set_ylabel("post-filter sink mass")
    ax.legend(fontsize=7)
    out.append((fig, f"{model}: post-filter sink mass per layer under each filter"))
    if any("dark_ratio_sink" in r["metrics"] for r in h1):
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.plot(layers, [r["metrics"].get("dark_ratio_sink") for r in h1], marker="o", label="sink (position 0)")
        ax.plot(layers, [r["metrics"].get("dark_ratio_ordinary") for r in h1], marker="s", label="ordinary positions")
        ax.set_yscale("log")
        ax.set_xlabel("layer")
        ax.set_ylabel("dark ratio ||P_K h|| / ||(I-P_K) h||")
        ax.legend(fontsize=7)
        out.append((fig, f"{model}: dark-tail share of the sink vs ordinary positions"))
    return out


HYPOTHESIS = Hypothesis(
    name="H1", title="the dark tail is necessary",
    tests=(Test("test_dark_tail_necessary", (LAYER,), check, p_values=6),),
    measure=measure, passes=passes,
    nulls=NULLS, hostile=HOSTILE, key_effects={"H1": ("dark_all_delta", "ΔNLL dark")},
    question="Is the dark tail necessary?",
    claims={"H1": "removing the dark tail (band K) raises NLL, and does so through the sink"}, figures=figures,
    methods="docs/methods.md §5 (H1), §6", built_in=True)
