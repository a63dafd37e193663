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
    mirror of (b).
Each is the skew-guarded mean test (stats.mean_greater); Holm over the model's three
p-values; a claim passes when its Holm-adjusted p-value is < alpha. (b) and (c) read a share
of (a)'s gap: where (a) fails the gap is about 0 and their contrasts say little, so they
record `gap_established` = (a)'s verdict; the verdict does not read it (the contrasts are
still tests of what they state)."""
from __future__ import annotations

from . import claims, stability
from .claims import mean_or_nan, test_mean, window_counts
from .stats import holm

CLAIMS = ("a", "b", "c")


def contrasts(t, min_gap: float, min_recovered: float) -> dict:
    gap = t.window - t.full
    return {"a": gap - min_gap,
            "b": (t.window - t.sink1) - min_recovered * gap,
            "c": min_recovered * gap - (t.window - t.control)}


def h7_verdicts(t, *, alpha: float, min_gap: float, min_recovered: float, n_boot: int) -> dict:
    """claim -> (passed, metrics) from an H7Test (arrays [N] per regime)."""
    c = contrasts(t, min_gap, min_recovered)
    raw = [test_mean(c[k], "H7", k) for k in CLAIMS]
    p = holm(raw)
    gap = t.window - t.full
    nll = {r: mean_or_nan(getattr(t, r)) for r in ("full", "window", "sink1", "sink4", "control")}
    common = {"nll": nll, "gap": mean_or_nan(gap), "min_gap": min_gap, "min_recovered": min_recovered}

    def share(regime):
        rec = t.window - getattr(t, regime)
        g = mean_or_nan(gap)
        return (mean_or_nan(rec) / g if g != 0 else float("nan"), claims.ci_ratio(rec, gap, n_boot, "H7", f"share_{regime}"))

    out = {}
    a_ok = bool(p[0] < alpha)
    out["a"] = (a_ok, {**common, "gap_ci": claims.ci_mean(gap, n_boot, "H7", "gap"),
                       "p_value": float(p[0]), "p_value_raw": float(raw[0]), **window_counts(c["a"])})
    for i, (key, regime) in enumerate((("b", "sink1"), ("c", "control")), start=1):
        s, ci = share(regime)
        s4, ci4 = share("sink4")
        out[key] = (bool(p[i] < alpha), {**common, "regime": regime, "recovered_share": s, "recovered_share_ci": ci,
                                          "recovered_share_sink4": s4, "recovered_share_sink4_ci": ci4,
                                          "gap_established": a_ok, "p_value": float(p[i]),
                                          "p_value_raw": float(raw[i]), **window_counts(c[key])})
    return out


def verdicts_with_stability(t, s, model: str = "", n_units: int | None = None) -> dict:
    """h7_verdicts with verdict_stability over resamples of the test windows (units)."""
    run = lambda x: h7_verdicts(x, alpha=s.alpha, min_gap=s.h7_min_gap, min_recovered=s.h7_min_recovered,  # noqa: E731
                                n_boot=s.bootstrap)
    out = run(t)
    return stability.attach(out, run, t, n_units or len(t.full), "H7", model=model)

