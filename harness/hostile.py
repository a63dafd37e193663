"""Hostile nulls: every test of H1, H2, H4, H5 and H7 at its boundary, under noise built to break it.

For each criterion, `CONTRASTS` builds the per-window inputs of its verdict function so that
the contrast under test has mean exactly at its boundary (the claim false, just), with
per-window noise of one of the shapes in `NULLS`, while every other test of its Holm family
gets a clear effect (the hardest case: Holm then multiplies its p-value by the least). A
trial passes when the verdict function says the claim holds. The verdict functions are
called unchanged.

Ratio criteria get their noise multiplicatively (the contrast is the window's denominator
times the noise), so a lognormal tail is a tail of the per-window ratio.

The nulls (issue 18 of the project's tracker; docs/calibration.md has the table):
gaussian; t2 (Student t, 2 df); lognormal sigma 0.6 with the long tail on the null side
and on the other side; AR(1) with rho 0.5 across windows in corpus order; 50-75% exact
zeros; one NaN window. H3's claims are exact permutation/binomial tests with their own
nulls (sinkbench.h3_stats, tests/test_distributed.py).
"""
from __future__ import annotations

import math

import numpy as np

from .hypotheses.h1_dark_tail import H1Inputs, h1_verdicts
from .hypotheses.h2_middle import H2bInputs, H2Inputs, h2_verdicts
from .hypotheses.h4a_designated_write import h4a_raw, h4a_verdicts
from .hypotheses.h4b_designated_training import h4b_verdicts
from .hypotheses.h5_sink_writer import H5Inputs, h5_verdicts
from .designate import WriteResult
from .stats import case_seed

ALPHA = 0.05
D = dict(min_delta=0.5, min_sink_drop=0.2, tolerance=0.25, rho=3.0, min_recovered=0.5, min_share=0.5,
         h5_min_sink_drop=0.1, h5_min_nll_rise=0.05)
N_BOOT = 200  # intervals: only H2b's verdict reads one, and it gets 2000
SIGMA_LN = 0.6


def _ar1(rng, n: int, rho: float = 0.5) -> np.ndarray:
    e = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = e[0]
    for i in range(1, n):
        x[i] = rho * x[i - 1] + math.sqrt(1 - rho ** 2) * e[i]
    return x


def _lognormal(rng, n: int) -> np.ndarray:
    """Centred, unit-variance lognormal(0, 0.6): long tail up."""
    s2 = SIGMA_LN ** 2
    sd = math.sqrt((math.exp(s2) - 1) * math.exp(s2))
    return (rng.lognormal(0.0, SIGMA_LN, n) - math.exp(s2 / 2)) / sd


def _zeros(rng, n: int) -> np.ndarray:
    share = rng.uniform(0.5, 0.75)
    return np.where(rng.random(n) < share, 0.0, rng.standard_normal(n))


def _one_nan(rng, n: int) -> np.ndarray:
    x = rng.standard_normal(n)
    x[rng.integers(n)] = np.nan
    return x


# noise with mean 0 (the boundary); a positive value points the claimed way
NULLS = {
    "gaussian": lambda rng, n: rng.standard_normal(n),
    "t2": lambda rng, n: rng.standard_t(2, n),
    "lognormal, tail on the null side": lambda rng, n: -_lognormal(rng, n),
    "lognormal, tail on the claim side": _lognormal,
    "AR(1) rho 0.5": _ar1,
    "50-75% zeros": _zeros,
    "one NaN window": _one_nan,
}

# --units document under the same dependence: consecutive windows grouped into documents of
# g windows, each document one unit (its windows averaged), so the tests run over n / g units
DOCUMENT_UNITS = {
    f"AR(1) rho 0.5, documents of {g} windows as units": (lambda g: lambda rng, n: _ar1(rng, n).reshape(-1, g).mean(1))(g)
    for g in (2, 4)
}


def _nll(rng, n):
    return 3.0 + 0.3 * rng.standard_normal(n)


def _small(rng, n, sd=0.02):
    return sd * rng.standard_normal(n)


# ---- H1: one layer, 6 tests
def _h1(which: str):
    def run(e, rng):
        n = e.size
        base = _nll(rng, n)
        dark_all = base + 2.0 + _small(rng, n, 0.1)
        random = base + 0.3 + _small(rng, n, 0.1)
        middle = base + 0.2 + _small(rng, n, 0.1)
        each = base + np.array([[0.2], [0.3], [0.4]]) + _small(rng, (3, n), 0.05)
        mass = 0.5 + _small(rng, n, 0.05)
        mass_edit = mass * 0.5 + _small(rng, n, 0.01)
        sink_rest = base + 0.5 + _small(rng, n, 0.1)
        if which == "vs_random":
            random = dark_all - 0.2 * e
        elif which == "vs_middle":
            middle = dark_all - 0.2 * e
        elif which == "min_delta":
            dark_all = base + D["min_delta"] + 0.2 * e
            random, middle = base + 0.05 + _small(rng, n), base + 0.02 + _small(rng, n)
            each = base + np.array([[0.03], [0.05], [0.07]]) + _small(rng, (3, n), 0.01)
        elif which == "sink_mass":
            mass_edit = mass * (1 - D["min_sink_drop"]) * (1 - 0.3 * e)
        elif which == "sink_nll":
            sink_rest = base + 0.2 * e
        x = H1Inputs(base=base, dark_all=dark_all, random=random, middle=middle, base_rest=base,
                     dark_all_rest=dark_all, dark_sink=sink_rest, dark_sink_rest=sink_rest,
                     sink_mass_base=mass, sink_mass_dark_sink=mass_edit, random_each=each)
        m = h1_verdicts({1: x}, alpha=ALPHA, min_delta=D["min_delta"], min_sink_drop=D["min_sink_drop"], n_boot=N_BOOT)[1][1]
        return m["claim_a"] if which in ("vs_random", "vs_middle", "min_delta") else m["claim_b"]

    return run


# ---- H2: one layer; H2a alone, H2b alone
def _h2a(e, rng):
    n = e.size
    base = _nll(rng, n)
    omega = base + 0.3 + _small(rng, n, 0.1)
    return h2_verdicts({(1, 5): H2Inputs(base, omega, omega + 0.2 * e, 30, 30)}, alpha=ALPHA, n_boot=N_BOOT)[1, 5][0]


def _h2b(e, rng):
    n = e.size
    base = _nll(rng, n)
    x = H2bInputs(base, base + D["tolerance"] - 0.1 * e, 5, 0.5)
    return h2_verdicts({}, {1: x}, alpha=ALPHA, n_boot=2000, tolerance=D["tolerance"])[1, "b"][0]


# ---- H4-A: one layer, one target kind, 8 tests
def _h4a(which: str):
    case = {"capture": ("A1", "add"), "fall": ("A1", "add"), "control_below": ("A2", "add"),
            "damage": ("A3", "transplant"), "recovered": ("A3", "transplant")}[which]

    def run(e, rng):
        n = e.size
        b_att, b0, nll = rng.uniform(0.01, 0.02, n), 0.6 + _small(rng, n, 0.03), _nll(rng, n)
        rho = D["rho"]
        add = WriteResult(b_att * 10 * (1 + _small(rng, n, 0.1)), b0 * 0.7, nll + _small(rng, n, 0.01))
        broken = WriteResult(b_att, b0 * 0.5, nll + 1.0 + _small(rng, n, 0.05))
        transplant = WriteResult(b_att * 15, b0 * 0.5, nll + 0.1 + _small(rng, n, 0.05))
        control = WriteResult(b_att * 1.2 * (1 + _small(rng, n, 0.05)), b0 * 0.95, nll + _small(rng, n, 0.01))
        if which == "capture":
            add.att_t = rho * b_att * (1 + 0.3 * e)
        elif which == "fall":
            add.att_0 = b0 - 0.05 * e
        elif which == "control_below":
            control.att_t = rho * b_att * (1 - 0.3 * e)
        elif which == "damage":
            broken.nll_after = nll + 0.2 * e
            transplant.nll_after = nll - 0.5 + _small(rng, n, 0.05)  # the share's own test stays clear
        elif which == "recovered":
            dmg = broken.nll_after - nll
            transplant.nll_after = nll + (1 - D["min_recovered"]) * dmg - 0.2 * e
        w = {"base": WriteResult(b_att, b0, nll), "add": add, "transplant": transplant, "control": control, "broken": broken}
        raws = {(1, "t"): h4a_raw(w, rho, N_BOOT, D["min_recovered"], key=(1, "t"))}
        return h4a_verdicts(raws, alpha=ALPHA)[(1, "t") + case][0]

    return run


# ---- H4-B: one layer, 3 tests
def _h4b(which: str):
    def run(e, rng):
        n = e.size
        att_0 = 0.3 + _small(rng, n, 0.03)
        nll = 1.6 + _small(rng, n, 0.1)
        x = {"att_k": att_0 + 0.3 + _small(rng, n, 0.03), "att_0": att_0, "nll_base": nll,
             "nll_dark_k": nll + 0.8 + _small(rng, n, 0.05), "nll_dark_0": nll + 0.2 + _small(rng, n, 0.05),
             "dark_ratio_k": 2.0 + _small(rng, n, 0.1), "dark_ratio_ordinary": 0.5 + _small(rng, n, 0.05)}
        if which == "attention":
            x["att_k"] = att_0 + 0.05 * e
        elif which == "nll":
            x["nll_dark_k"] = x["nll_dark_0"] + 0.2 * e
        else:
            x["dark_ratio_k"] = x["dark_ratio_ordinary"] * (1 + 0.5 * e)
        out = h4b_verdicts({1: x}, alpha=ALPHA, n_boot=N_BOOT)
        return out[1, "B2" if which == "dark" else "B1"][0]

    return run


# ---- H5: 5 tests
def _h5(which: str):
    def run(e, rng):
        n = e.size
        share = 0.8 + _small(rng, n, 0.05)
        base_nll, mass = _nll(rng, n), 0.55 + _small(rng, n, 0.05)
        removed_mass, control_mass = mass * 0.5, mass * 0.95
        removed_nll, control_nll = base_nll + 0.6 + _small(rng, n, 0.05), base_nll + 0.05 + _small(rng, n, 0.05)
        if which == "share":
            share = D["min_share"] + 0.1 * e
        elif which == "mass_vs_base":  # the control raises the mass, so the beyond-control test stays clear
            removed_mass, control_mass = mass * (1 - 0.3 * e), mass * 1.5
        elif which == "nll_vs_base":
            removed_nll, control_nll = base_nll + 0.2 * e, base_nll - 0.6 + _small(rng, n, 0.05)
        elif which == "mass_vs_control":
            removed_mass = control_mass - D["h5_min_sink_drop"] * mass - mass * 0.3 * e
        elif which == "nll_vs_control":
            removed_nll = control_nll + D["h5_min_nll_rise"] + 0.2 * e
        x = H5Inputs(share, base_nll, mass, removed_nll, removed_mass, control_nll, control_mass)
        out = h5_verdicts(x, alpha=ALPHA, min_share=D["min_share"], min_sink_drop=D["h5_min_sink_drop"],
                          min_nll_rise=D["h5_min_nll_rise"], n_boot=N_BOOT)
        return out["1" if which == "share" else "2"][0]

    return run


# ---- H7: 3 tests per model + 1 per grid layer (claim d; one layer here)
def _h7(which: str):
    def run(e, rng):
        from .claims_h7 import h7_verdicts
        from .streaming import H7Test

        n = e.size
        full = _nll(rng, n)
        window = full + 1.0 + _small(rng, n, 0.1)
        sink1 = full + 0.1 + _small(rng, n, 0.05)
        control = window - 0.05 + _small(rng, n, 0.05)
        designated = None
        if which == "gap":  # the gap at its minimum: sink1 and control scaled with it
            window = full + 0.1 + 0.05 * e
            sink1, control = full + _small(rng, n, 0.005), window + 0.05
        elif which == "recovered":  # the first token recovers exactly the minimum share
            sink1 = window - 0.5 * (window - full) - 0.2 * e
        elif which == "control":  # the control recovers exactly the minimum share
            control = window - 0.5 * (window - full) + 0.2 * e
        elif which == "designated":  # the designated sink recovers exactly the minimum share of sink1's recovery
            designated = window - 0.5 * (window - sink1) - 0.2 * e
        if designated is None:  # a designated sink as good as the first token
            designated = sink1 + _small(rng, n, 0.01)
        t = H7Test(full, window, sink1, sink1 + _small(rng, n, 0.01), control, designated={0: designated})
        return h7_verdicts(t, alpha=ALPHA, min_gap=0.1, min_recovered=0.5, min_designated=0.5, n_boot=N_BOOT)[
            {"gap": "a", "recovered": "b", "control": "c", "designated": "d"}[which]][0]

    return run


CONTRASTS = {
    "H1a vs random": _h1("vs_random"), "H1a vs middle": _h1("vs_middle"), "H1a above min_delta": _h1("min_delta"),
    "H1b sink-mass drop": _h1("sink_mass"), "H1b NLL rise": _h1("sink_nll"),
    "H2a": _h2a, "H2b": _h2b,
    "H4-A1 capture": _h4a("capture"), "H4-A1 attention to 0 falls": _h4a("fall"),
    "H4-A2 control below rho": _h4a("control_below"), "H4-A3 damage": _h4a("damage"),
    "H4-A3 recovered share": _h4a("recovered"),
    "H4-B1 attention": _h4b("attention"), "H4-B1 NLL": _h4b("nll"), "H4-B2 dark ratio": _h4b("dark"),
    "H5-1 share": _h5("share"), "H5-2 mass vs base": _h5("mass_vs_base"), "H5-2 NLL vs base": _h5("nll_vs_base"),
    "H5-2 mass vs control": _h5("mass_vs_control"), "H5-2 NLL vs control": _h5("nll_vs_control"),
    "H7a eviction gap": _h7("gap"), "H7b first token recovers": _h7("recovered"),
    "H7c control does not": _h7("control"), "H7d designated sink recovers": _h7("designated"),
}


def false_pass_rate(criterion: str, null: str, trials: int = 1000, n_windows: int = 16, seed: int = 0) -> float:
    """Share of trials in which the criterion passes with its contrast at the boundary."""
    rng = np.random.default_rng([seed, case_seed("hostile", criterion, null)])
    run, noise = CONTRASTS[criterion], {**NULLS, **DOCUMENT_UNITS}[null]
    return float(np.mean([run(noise(rng, n_windows), rng) for _ in range(trials)]))


def clear_pass_rate(criterion: str, trials: int = 50, n_windows: int = 16, seed: int = 1, shift: float = 3.0) -> float:
    """Power check of the construction: the contrast shifted `shift` noise-sds the claimed way."""
    rng = np.random.default_rng(seed)
    return float(np.mean([CONTRASTS[criterion](rng.standard_normal(n_windows) + shift, rng) for _ in range(trials)]))


def table(trials: int = 1000, n_windows: int = 16) -> list[dict]:
    bound = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / trials)
    return [dict(criterion=c, null=nl, rate=false_pass_rate(c, nl, trials, n_windows), bound=bound)
            for c in CONTRASTS for nl in NULLS]


def markdown(rows: list[dict], trials: int, n_windows: int) -> str:
    nulls = list(NULLS)
    lines = [f"| criterion ({n_windows} windows, {trials} trials) | " + " | ".join(nulls) + " |",
             "|---|" + "---|" * len(nulls)]
    by = {(r["criterion"], r["null"]): r for r in rows}
    for c in CONTRASTS:
        cells = []
        for nl in nulls:
            r = by[c, nl]
            mark = "" if r["rate"] <= r["bound"] else " **over**"
            cells.append(f"{r['rate']:.3f}{mark}")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def dependence_table(trials: int = 1000, n_windows: int = 16) -> str:
    """False-pass rates at AR(1) rho 0.5 with windows as units and with document units."""
    cols = ["AR(1) rho 0.5"] + list(DOCUMENT_UNITS)
    lines = [f"| criterion ({n_windows} windows, {trials} trials) | windows as units | " +
             " | ".join(c.split(", ")[1] for c in cols[1:]) + " |", "|---|" + "---|" * len(cols)]
    for c in CONTRASTS:
        lines.append(f"| {c} | " + " | ".join(f"{false_pass_rate(c, col, trials, n_windows):.3f}" for col in cols) + " |")
    return "\n".join(lines)


def _percentile_ci(v, n_boot: int, seed: int) -> tuple[float, float]:
    """The percentile bootstrap of the mean (the interval sinkbench used before), for comparison."""
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, (n_boot, v.size))].mean(1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)


def interval_coverage(trials: int = 1000, n_windows: int = 16, n_boot: int = 2000) -> str:
    """Achieved coverage of the nominal 95% intervals: the studentized interval of a mean
    (stats.mean_ci), the studentized interval of a ratio of means (stats.ratio_ci), and the old
    percentile interval of a mean, under the window shapes of the hostile nulls."""
    from .stats import mean_ci, ratio_ci

    shapes = {k: NULLS[k] for k in ("gaussian", "t2", "lognormal, tail on the null side", "lognormal, tail on the claim side")}
    rows = [f"| interval ({n_windows} windows, {trials} trials) | " + " | ".join(shapes) + " |", "|---|" + "---|" * len(shapes)]
    cover = {"mean, studentized (used)": [], "mean, percentile (before)": [], "ratio of means, studentized (used)": []}
    for name, noise in shapes.items():
        rng = np.random.default_rng(case_seed("coverage", name))
        hits = {k: 0 for k in cover}
        for t in range(trials):
            e = noise(rng, n_windows)
            e = e[np.isfinite(e)]
            lo, hi = mean_ci(e, n_boot, seed=t)
            hits["mean, studentized (used)"] += lo <= 0 <= hi
            lo, hi = _percentile_ci(e, n_boot, t)
            hits["mean, percentile (before)"] += lo <= 0 <= hi
            den = 0.5 + 0.05 * rng.standard_normal(e.size)  # a ratio of means whose true value is 0.8
            num = den * (0.8 + 0.2 * e)
            lo, hi = ratio_ci(num, den, n_boot, seed=t)
            hits["ratio of means, studentized (used)"] += lo <= 0.8 <= hi
        for k in cover:
            cover[k].append(hits[k] / trials)
    rows += [f"| {k} | " + " | ".join(f"{c:.3f}" for c in v) + " |" for k, v in cover.items()]
    return "\n".join(rows)


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="false-pass rates of every criterion under hostile nulls")
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--dependence", action="store_true", help="only the dependence table (document units)")
    ap.add_argument("--coverage", action="store_true", help="only the intervals' achieved coverage")
    a = ap.parse_args(argv)
    if a.dependence:
        print(dependence_table(a.trials, a.windows))
    elif a.coverage:
        print(interval_coverage(a.trials, a.windows))
    else:
        print(markdown(table(a.trials, a.windows), a.trials, a.windows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
