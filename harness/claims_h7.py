"""H7 verdicts (sinks that do work) from per-window arrays: pure functions, like
sinkbench.claims. docs/methods.md §11 states the criteria; the window (or, with --units
document, the document) is the unit of replication. NLLs are the mean over the predictions
made at positions >= W under each regime (sinkbench.streaming).

With gap = NLL(window) - NLL(full) and, for a regime R that keeps a token visible,
recovered(R) = NLL(window) - NLL(R) (the part of the gap R takes back):
(a) evicting the sink hurts: mean(gap - h7_min_gap) > 0;
(b) keeping the sink rescues: the share recovered by window + first token is >= m =
    h7_min_recovered, tested as the linear contrast mean(recovered(sink1) - m * gap) > 0
    (the share's 95% interval is recorded beside it, ratio_ci);
(c) the control token alone does not rescue: mean(m * gap - recovered(control)) > 0, the
    mirror of (b);
(d) a designated sink rescues: at a grid layer l, window + the control token given H4's
    dark write at l (regime designated_L<l>) recovers >= d = h7_min_designated of what the
    natural sink recovers: mean(recovered(designated_l) - d * recovered(sink1)) > 0, one test
    per grid layer; (d) passes when any layer's does (the family-wise error over the layers
    is Holm's).
Each is the skew-guarded mean test (stats.mean_greater); Holm over the model's 3 + (grid
layers) p-values; a claim passes when its Holm-adjusted p-value is < alpha. (b) and (c) read
a share of (a)'s gap: where (a) fails the gap is about 0 and their contrasts say little, so
they record `gap_established` = (a)'s verdict; (d) reads a share of (b)'s recovery and records
`sink_rescues` = (b)'s verdict. No verdict reads them (the contrasts are still tests of what
they state)."""
from __future__ import annotations

import numpy as np

from . import claims, stability
from .claims import mean_or_nan, test_mean, window_counts
from .stats import holm

CLAIMS = ("a", "b", "c", "d")
KEPT = ("sink1", "sink4", "control")


def designated_key(layer: int) -> str:
    return f"designated_L{layer}"


def contrasts(t, min_gap: float, min_recovered: float, min_designated: float = 0.5) -> dict:
    """claim -> contrast [N] (claim d: layer -> contrast)."""
    gap = t.window - t.full
    natural = t.window - t.sink1
    return {"a": gap - min_gap,
            "b": natural - min_recovered * gap,
            "c": min_recovered * gap - (t.window - t.control),
            "d": {l: (t.window - d) - min_designated * natural for l, d in sorted(t.designated.items())}}


def _share(num, den, n_boot: int, name: str) -> tuple[float, tuple[float, float]]:
    d = mean_or_nan(den)
    return (mean_or_nan(num) / d if d != 0 else float("nan"), claims.ci_ratio(num, den, n_boot, "H7", name))


def recovered_shares(t, n_boot: int) -> dict:
    """regime -> (share of the gap it recovers, 95% interval), for every regime that keeps a
    token; and designated_L<l> -> its recovery as a share of sink1's (claim d's ratio)."""
    gap = t.window - t.full
    out = {r: _share(t.window - getattr(t, r), gap, n_boot, f"share_{r}") for r in KEPT}
    for l, d in sorted(t.designated.items()):
        out[designated_key(l)] = _share(t.window - d, gap, n_boot, f"share_designated_{l}")
        out[designated_key(l) + "_of_sink1"] = _share(t.window - d, t.window - t.sink1, n_boot, f"of_sink1_{l}")
    return out


def h7_verdicts(t, *, alpha: float, min_gap: float, min_recovered: float, n_boot: int,
                min_designated: float = 0.5) -> dict:
    """claim -> (passed, metrics) from an H7Test (arrays [N] per regime; designated: layer -> [N])."""
    c = contrasts(t, min_gap, min_recovered, min_designated)
    layers = list(c["d"])
    raw = [test_mean(c[k], "H7", k) for k in ("a", "b", "c")] + [test_mean(c["d"][l], "H7", "d", l) for l in layers]
    p = holm(raw)
    gap = t.window - t.full
    nll = {r: mean_or_nan(getattr(t, r)) for r in ("full", "window", *KEPT)}
    nll.update({designated_key(l): mean_or_nan(t.designated[l]) for l in layers})
    shares = recovered_shares(t, n_boot)
    common = {"nll": nll, "gap": mean_or_nan(gap), "min_gap": min_gap, "min_recovered": min_recovered,
              "min_designated": min_designated, "recovered_shares": shares}
    out = {}
    a_ok = bool(p[0] < alpha)
    out["a"] = (a_ok, {**common, "gap_ci": claims.ci_mean(gap, n_boot, "H7", "gap"),
                       "p_value": float(p[0]), "p_value_raw": float(raw[0]), **window_counts(c["a"])})
    for i, (key, regime) in enumerate((("b", "sink1"), ("c", "control")), start=1):
        out[key] = (bool(p[i] < alpha), {**common, "regime": regime, "recovered_share": shares[regime][0],
                                          "recovered_share_ci": shares[regime][1],
                                          "recovered_share_sink4": shares["sink4"][0],
                                          "recovered_share_sink4_ci": shares["sink4"][1],
                                          "gap_established": a_ok, "p_value": float(p[i]),
                                          "p_value_raw": float(raw[i]), **window_counts(c[key])})
    pd = {l: float(p[3 + n]) for n, l in enumerate(layers)}
    passing = [l for l in layers if pd[l] < alpha]
    of = lambda l: shares[designated_key(l) + "_of_sink1"]  # noqa: E731
    best = min(layers, key=lambda l: (pd[l], -np.nan_to_num(of(l)[0], nan=-np.inf))) if layers else None  # ties: the larger share
    rescues = bool(p[1] < alpha)
    # (d) is about replacing a sink that does work: where the first token rescues nothing (b
    # fails), "at least half of sink1's recovery" holds trivially and says nothing; (d) fails
    out["d"] = (bool(passing) and rescues, {
        **common, "regime": "designated", "layers": layers, "passing_layers": passing, "best_layer": best,
        "share_of_sink1": {str(l): of(l)[0] for l in layers}, "share_of_sink1_ci": {str(l): of(l)[1] for l in layers},
        "p_value_by_layer": {str(l): pd[l] for l in layers},
        "p_value_raw_by_layer": {str(l): float(raw[3 + n]) for n, l in enumerate(layers)},
        "p_value": pd[best] if layers else float("nan"),
        "recovered_share": of(best)[0] if layers else float("nan"),
        "recovered_share_ci": of(best)[1] if layers else (float("nan"), float("nan")),
        "sink_rescues": rescues,
        **window_counts(*(c["d"][l] for l in layers))})
    return out


def verdicts_with_stability(t, s, model: str = "", n_units: int | None = None) -> dict:
    """h7_verdicts with verdict_stability over resamples of the test windows (units)."""
    run = lambda x: h7_verdicts(x, alpha=s.alpha, min_gap=s.h7_min_gap, min_recovered=s.h7_min_recovered,  # noqa: E731
                                min_designated=s.h7_min_designated, n_boot=s.bootstrap)
    out = run(t)
    return stability.attach(out, run, t, n_units or len(t.full), "H7", model=model)
