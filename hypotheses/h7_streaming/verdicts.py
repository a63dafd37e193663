"""H7 verdicts (sinks that do work) from per-window arrays: pure functions, like
sinkbench.stats.claims. docs/methods.md §11 states the criteria; the window (or, with --units
document, the document) is the unit of replication. NLLs are the mean over the predictions
made at positions >= W under each regime (sinkbench.hypotheses.h7_streaming.measurement).

recovered(R) = NLL(window) - NLL(R) is the part of the window's loss a regime R takes back.
The claims isolate the first token: each compares regimes with the same context but for it.
(a) evicting the sink hurts: mean(recovered(sink1) - h7_min_gap) > 0 (window + first token
    against the window alone; window - full, which also holds the context lost beyond W, is
    recorded beside it, `gap_window_full`);
(b) keeping the sink rescues: window + first token recovers >= m = h7_min_recovered of what
    the reference recovers, the reference being StreamingLLM's recompute baseline (the W most
    recent tokens run as a sequence of their own: the context a window holds, with a sink of
    its own): mean(recovered(sink1) - m * recovered(reference)) > 0;
(c) the control token alone does not: mean(m * recovered(reference) - recovered(control)) > 0;
(d) a designated sink rescues (the ladder's rung 1, H4's dark write at one layer): at a layer
    l, mean(recovered(designated_l) - d * recovered(sink1)) > 0, d = h7_min_designated;
(e) the designation ladder: the same test for each rung (sinkbench.measure.designate.RUNGS) at each
    ladder layer; passes when some rung does.
Sign logic: "share >= c" is "mean(num - c * den) > 0" only where the mean denominator is
positive. (b) and (c) therefore also need recovered(reference) established > 0 (its own mean
test at alpha, `reference_gap_p`); (d) and (e) need (a) (sink1's recovery established above
h7_min_gap > 0) and (b). A claim that needs two rejections has an error rate no larger than
either's (intersection-union), so the gates join no Holm family.
Upper bounds: at each layer l a write can only reach what the natural sink, visible only after
l, recovers (regime late_sink_L<l>); where that share of sink1's recovery is below d, the
layer is recorded as "no write can pass here" and its rung tests leave the Holm family.
The positive control is rung 5 (the sink's whole state copied) at the earliest ladder layer;
where it fails the ladder's failures are inconclusive and the record says so.
Each test is the skew-guarded mean test (stats.mean_greater); Holm over (a), (b), (c) and every
rung test left in; a claim passes when its Holm-adjusted p-value is < alpha and its gates hold.
With no reference run (recompute None) the full regime stands in, as before the reference."""
from __future__ import annotations

import numpy as np

from sinkbench.stats import claims, stability
from sinkbench.stats.claims import mean_or_nan, test_mean, window_counts
from sinkbench.stats.inference import holm

CLAIMS = ("a", "b", "c", "d", "e")
KEPT = ("sink1", "sink4", "control")
RUNG_ORDER = ("dark_write", "dark_kept", "value_drain", "kv_transplant", "state_copy", "learned_sink")  # designate.RUNGS + LEARNED
POSITIVE_CONTROL = "state_copy"


def designated_key(layer: int) -> str:
    return f"designated_L{layer}"


def rungs_of(t) -> dict:
    """(rung, layer) -> [N]: rung 1 (dark_write) at t.designated's layers, the rest from t.ladder."""
    out = {("dark_write", l): d for l, d in t.designated.items()}
    out.update(t.ladder)
    return dict(sorted(out.items(), key=lambda kv: (RUNG_ORDER.index(kv[0][0]), kv[0][1])))


def reference(t) -> tuple[str, np.ndarray]:
    return ("recompute", t.recompute) if t.recompute is not None else ("full", t.full)


def contrasts(t, min_gap: float, min_recovered: float, min_designated: float = 0.5) -> dict:
    """claim -> contrast [N]; 'rungs': (rung, layer) -> contrast; 'reference_gap': the gate of (b), (c)."""
    natural = t.window - t.sink1
    ref_gap = t.window - reference(t)[1]
    return {"a": natural - min_gap,
            "b": natural - min_recovered * ref_gap,
            "c": min_recovered * ref_gap - (t.window - t.control),
            "reference_gap": ref_gap,
            "rungs": {k: (t.window - d) - min_designated * natural for k, d in rungs_of(t).items()}}


def _share(num, den, n_boot: int, name: str) -> tuple[float, tuple[float, float]]:
    d = mean_or_nan(den)
    return (mean_or_nan(num) / d if d != 0 else float("nan"), claims.ci_ratio(num, den, n_boot, "H7", name))


def recovered_shares(t, n_boot: int) -> dict:
    """regime -> (share of the reference's recovery it recovers, 95% interval), for every regime
    that keeps a token; <regime>_of_full: the same share of window - full (the share before the
    reference); designated_L<l> / <rung>_L<l> / late_sink_L<l> _of_sink1: recovery as a share of
    sink1's (claims d, e and the upper bounds)."""
    ref = t.window - reference(t)[1]
    gap = t.window - t.full
    natural = t.window - t.sink1
    out = {}
    for r in KEPT:
        out[r] = _share(t.window - getattr(t, r), ref, n_boot, f"share_{r}")
        out[r + "_of_full"] = _share(t.window - getattr(t, r), gap, n_boot, f"share_full_{r}")
    for (rung, l), d in rungs_of(t).items():
        key = designated_key(l) if rung == "dark_write" else f"{rung}_L{l}"
        out[key] = _share(t.window - d, ref, n_boot, f"share_{key}")
        out[key + "_of_sink1"] = _share(t.window - d, natural, n_boot, f"of_sink1_{l}" if rung == "dark_write"
                                        else f"of_sink1_{key}")
    for l, d in sorted(t.late.items()):
        out[f"late_sink_L{l}_of_sink1"] = _share(t.window - d, natural, n_boot, f"late_of_sink1_{l}")
    return out


def upper_bounds(t, min_designated: float) -> tuple[dict, list]:
    """layer -> share of sink1's recovery that sink1 visible only after the layer recovers (ratio
    of means, on the test windows); and the layers where it is below min_designated ("no write
    can pass here"), read from the selection windows' bound (t.cut_bound) where it was run, so
    that the Holm family is not chosen on the windows it is tested on."""
    bound = bound_shares(t.window, t.sink1, t.late)
    cut = t.cut_bound or bound
    return bound, [l for l in bound if cut.get(l, float("nan")) < min_designated]


def bound_shares(window, sink1, late: dict) -> dict:
    """layer -> mean(window - late[layer]) / mean(window - sink1), per-window arrays (NaN where
    sink1 recovers nothing): the upper bound on whichever windows they come from."""
    natural = mean_or_nan(window - sink1)
    return {l: (mean_or_nan(window - d) / natural if natural > 0 else float("nan")) for l, d in sorted(late.items())}


def _raw_rung(c, rung: str, layer: int) -> float:
    # rung 1 keeps (d)'s seed of old: records of the same windows stay identical
    return test_mean(c, "H7", "d", layer) if rung == "dark_write" else test_mean(c, "H7", "rung", rung, layer)


def h7_verdicts(t, *, alpha: float, min_gap: float, min_recovered: float, n_boot: int,
                min_designated: float = 0.5) -> dict:
    """claim -> (passed, metrics) from an H7Test."""
    c = contrasts(t, min_gap, min_recovered, min_designated)
    ref_name, _ = reference(t)
    bound, blocked = upper_bounds(t, min_designated)
    keys = [k for k in c["rungs"] if k[1] not in blocked]
    raw = [test_mean(c[k], "H7", k) for k in ("a", "b", "c")] + [_raw_rung(c["rungs"][k], *k) for k in keys]
    p = holm(raw)
    p_ref = test_mean(c["reference_gap"], "H7", "reference_gap")
    ref_ok = bool(p_ref < alpha)
    a_ok = bool(p[0] < alpha)
    b_ok = bool(p[1] < alpha) and ref_ok
    c_ok = bool(p[2] < alpha) and ref_ok
    adj = {k: float(p[3 + n]) for n, k in enumerate(keys)}
    raw_k = {k: float(raw[3 + n]) for n, k in enumerate(keys)}
    rung_ok = {k: adj[k] < alpha and a_ok and b_ok for k in keys}
    gap = t.window - t.full
    nll = {r: mean_or_nan(getattr(t, r)) for r in ("full", "window", *KEPT)}
    if t.recompute is not None:
        nll["recompute"] = mean_or_nan(t.recompute)
    nll.update({designated_key(l): mean_or_nan(d) for l, d in t.designated.items()})
    nll.update({f"{r}_L{l}": mean_or_nan(d) for (r, l), d in t.ladder.items()})
    nll.update({f"late_sink_L{l}": mean_or_nan(d) for l, d in t.late.items()})
    shares = recovered_shares(t, n_boot)
    common = {"nll": nll, "reference": ref_name, "gap": mean_or_nan(t.window - t.sink1),
              "gap_window_full": mean_or_nan(gap), "reference_gap": mean_or_nan(c["reference_gap"]),
              "reference_gap_p": float(p_ref), "min_gap": min_gap, "min_recovered": min_recovered,
              "min_designated": min_designated, "recovered_shares": shares,
              "upper_bound": {str(l): b for l, b in bound.items()}, "no_write_can_pass": blocked,
              "upper_bound_selection": {str(l): float(b) for l, b in sorted(t.cut_bound.items())},
              "cut_read_from": "selection windows" if t.cut_bound else "test windows"}
    out = {"a": (a_ok, {**common, "gap_ci": claims.ci_mean(t.window - t.sink1, n_boot, "H7", "gap"),
                        "gap_window_full_ci": claims.ci_mean(gap, n_boot, "H7", "gap_window_full"),
                        "p_value": float(p[0]), "p_value_raw": float(raw[0]), **window_counts(c["a"]),
                        "recovered_share_of_full": shares["sink1_of_full"][0]})}
    for i, (key, regime, ok) in enumerate((("b", "sink1", b_ok), ("c", "control", c_ok)), start=1):
        out[key] = (ok, {**common, "regime": regime, "recovered_share": shares[regime][0],
                         "recovered_share_ci": shares[regime][1],
                         "recovered_share_of_full": shares[regime + "_of_full"][0],
                         "recovered_share_sink4": shares["sink4"][0], "recovered_share_sink4_ci": shares["sink4"][1],
                         "gap_established": ref_ok, "p_value": float(p[i]), "p_value_raw": float(raw[i]),
                         **window_counts(c[key])})

    def of(rung, l):
        return shares[(designated_key(l) if rung == "dark_write" else f"{rung}_L{l}") + "_of_sink1"]

    gates = {"sink_works": a_ok, "sink_rescues": b_ok}
    # (d): rung 1 at its layers
    layers = sorted(t.designated)
    tested = [l for l in layers if ("dark_write", l) in adj]
    passing = [l for l in tested if rung_ok[("dark_write", l)]]
    best = min(tested, key=lambda l: (adj[("dark_write", l)], -np.nan_to_num(of("dark_write", l)[0], nan=-np.inf))) \
        if tested else None  # ties: the larger share
    out["d"] = (bool(passing), {
        **common, **gates, "regime": "designated", "layers": layers, "tested_layers": tested,
        "passing_layers": passing, "best_layer": best,
        "share_of_sink1": {str(l): of("dark_write", l)[0] for l in layers},
        "share_of_sink1_ci": {str(l): of("dark_write", l)[1] for l in layers},
        "p_value_by_layer": {str(l): adj.get(("dark_write", l)) for l in layers},
        "p_value_raw_by_layer": {str(l): raw_k.get(("dark_write", l)) for l in layers},
        "p_value": adj[("dark_write", best)] if best is not None else float("nan"),
        "recovered_share": of("dark_write", best)[0] if best is not None else float("nan"),
        "recovered_share_ci": of("dark_write", best)[1] if best is not None else (float("nan"), float("nan")),
        **window_counts(*(c["rungs"][("dark_write", l)] for l in tested))})
    out["e"] = ladder_verdict(t, c, adj, raw_k, rung_ok, of, common, gates, blocked)
    return out


def ladder_verdict(t, c, adj, raw_k, rung_ok, of, common, gates, blocked) -> tuple[bool, dict]:
    """Claim (e): per rung (weakest first) its layers, shares of sink1's recovery, adjusted p-values
    (None where the layer is blocked) and verdict; the weakest passing rung; the positive control."""
    ladder_layers = sorted({l for (_, l) in t.ladder if l >= 0})  # rung 6 (learned_sink) sits at -1: the input
    rungs = {}
    for (rung, l) in rungs_of(t):
        if rung != "dark_write" and l not in ladder_layers and l >= 0:
            continue
        if rung == "dark_write" and ladder_layers and l not in ladder_layers:
            continue  # rung 1 at the other grid layers is (d)'s
        r = rungs.setdefault(rung, {"rung": RUNG_ORDER.index(rung) + 1, "layers": [], "share_of_sink1": {},
                                    "share_of_sink1_ci": {}, "p_value_by_layer": {}, "p_value_raw_by_layer": {},
                                    "passing_layers": []})
        r["layers"].append(l)
        r["share_of_sink1"][str(l)], r["share_of_sink1_ci"][str(l)] = of(rung, l)
        r["p_value_by_layer"][str(l)] = adj.get((rung, l))
        r["p_value_raw_by_layer"][str(l)] = raw_k.get((rung, l))
        if rung_ok.get((rung, l)):
            r["passing_layers"].append(l)
    for r in rungs.values():
        r["passes"] = bool(r["passing_layers"])
    weakest = next((name for name in RUNG_ORDER if rungs.get(name, {}).get("passes")), None)
    early = ladder_layers[0] if ladder_layers else None
    pc_key = (POSITIVE_CONTROL, early)
    pc = {"rung": POSITIVE_CONTROL, "layer": early, "tested": pc_key in adj,
          "passes": bool(rung_ok.get(pc_key, False)),
          "share_of_sink1": of(POSITIVE_CONTROL, early)[0] if pc_key in c["rungs"] else float("nan")}
    conclusive = pc["passes"] or weakest is not None
    if weakest is not None:
        wl = rungs[weakest]["passing_layers"][0]
        answer = (f"a sink can be designated by hand: the weakest rung that works is {weakest} at layer {wl} "
                  f"({of(weakest, wl)[0]:.2f} of the first token's recovery)")
    elif not ladder_layers:
        answer = "the ladder was not run"
    elif not (gates["sink_works"] and gates["sink_rescues"]):
        answer = "no working sink to designate: (a) or (b) fails"
        if set(ladder_layers) <= set(blocked):
            answer += f"; and no write can pass at layer(s) {ladder_layers} (the upper bound is below the minimum)"
    elif set(ladder_layers) <= set(blocked):
        answer = (f"no write can pass at the ladder's layers {ladder_layers}: the first token visible only after them "
                  f"recovers less than the minimum share")
    elif not pc["passes"]:
        answer = (f"inconclusive: the positive control ({POSITIVE_CONTROL} at layer {early}) fails, so a failing rung "
                  f"says nothing about the property it adds")
    else:
        answer = "no rung works"
    passing = [(name, l) for name, r in rungs.items() for l in r["passing_layers"]]
    best = min(adj.items(), key=lambda kv: kv[1])[0] if adj else None
    shown = (weakest, rungs[weakest]["passing_layers"][0]) if weakest else best
    tested = [k for k in c["rungs"] if k in adj and (k[0] != "dark_write" or k[1] in ladder_layers)]
    return bool(passing), {
        **common, **gates, "regime": "ladder", "ladder_layers": ladder_layers, "rungs": rungs,
        "weakest_passing_rung": weakest,
        "weakest_passing_layer": rungs[weakest]["passing_layers"][0] if weakest else None,
        "positive_control": pc, "conclusive": bool(conclusive), "answer": answer,
        "p_value": adj[shown] if shown in adj else float("nan"),
        "recovered_share": of(*shown)[0] if shown else float("nan"),
        "recovered_share_ci": of(*shown)[1] if shown else (float("nan"), float("nan")),
        **window_counts(*(c["rungs"][k] for k in tested))}


def verdicts_with_stability(t, s, model: str = "", n_units: int | None = None) -> dict:
    """h7_verdicts with verdict_stability over resamples of the test windows (units)."""
    run = lambda x: h7_verdicts(x, alpha=s.alpha, min_gap=s.h7_min_gap, min_recovered=s.h7_min_recovered,  # noqa: E731
                                min_designated=s.h7_min_designated, n_boot=s.bootstrap)
    out = run(t)
    return stability.attach(out, run, t, n_units or len(t.full), "H7", model=model)
