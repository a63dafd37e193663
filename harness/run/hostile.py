"""Hostile nulls: every test of H1, H2, H4, H5 and H7 at its boundary, under noise built to break it.

This module is the engine (the noise shapes, the rates, the tables); each hypothesis unit
declares its own tests at their boundary beside its verdicts (`HOSTILE` in
sinkbench.hypotheses.h1_dark_tail ... h7_streaming, read through the registry: `contrasts()`).
For each criterion, the contrast builds the per-window inputs of its verdict function so that
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
zeros; one NaN window. Beyond the mean test's calibrated range (issue 30, finding 5:
`BEYOND`): lognormal sigma 1.0 with the tail on the null side; 5% of windows at -10 sds and
10% at -5 sds (the rest shifted to keep the mean at the boundary); a ratio contrast whose
denominator is lognormal (sigma 1.0) and whose numerator does not follow it; two-point
windows at 8 windows (80% a little above the boundary, 20% far below, so that a fifth of
the samples hold no window of the tail). Every trial also records whether the heavy-tail
guard (stats.tail_diagnostics, the flag `outside_calibrated_range`) marks the contrast
under test, so each cell has the guard's flag rate and the false passes it leaves unmarked.

H3 declares no contrast here, because its per-window statistics are computed from tables
of windows x positions rather than drawn as one contrast: claims 1-3 are mean tests across
windows (claim 1 also an exact test within the same windows), claim 4 an exact binomial
over windows. H3's nulls of issue 30 (random effects around 0, claim 1's weighting, the early
drift) and H7's negative gap are run at the same trial count by `issue30_table`
(`--issue30`).
"""
from __future__ import annotations

import math

import numpy as np

from sinkbench.stats.inference import case_seed, tail_diagnostics
from sinkbench.stats.nulls import ALPHA, DOCUMENT_UNITS, N_BOOT
from sinkbench.stats.nulls import NULLS as WITHIN  # the shapes inside the calibrated range (issue 18)


def _centred_lognormal(rng, size, sigma: float) -> np.ndarray:
    """Mean 0, sd 1, long tail up."""
    s2 = sigma ** 2
    sd = math.sqrt((math.exp(s2) - 1) * math.exp(s2))
    return (rng.lognormal(0.0, sigma, size) - math.exp(s2 / 2)) / sd


def _outliers(share: float, at: float):
    """Each window is at `at` (in sds of the rest) with probability `share`, else N(c, 1) with
    c = -share * at / (1 - share): the mean is exactly the boundary, the tail on the null side."""
    def draw(rng, n: int) -> np.ndarray:
        return np.where(rng.random(n) < share, at, rng.standard_normal(n) - share * at / (1 - share))
    return draw


def _ratio_lognormal_denominator(rng, n: int) -> np.ndarray:
    """A ratio-of-means contrast a - c b at its boundary where the denominator b is lognormal
    (sigma 1.0, mean 1) and the numerator a = c (1 + 0.3 z) does not follow it: a - c b =
    c (1 - b + 0.3 z), scaled to sd 1 (c = 1). A window with a large denominator is a long
    tail on the null side."""
    b = np.exp(rng.normal(-0.5, 1.0, n))  # mean 1
    return (1.0 - b + 0.3 * rng.standard_normal(n)) / math.sqrt(math.e - 1 + 0.09)


def _two_point(rng, n: int) -> np.ndarray:
    """+0.5 with probability 0.8, -2 with probability 0.2 (mean 0, sd 1): at 8 windows
    0.8^8 = 17% of the samples are all +0.5, all-equal and positive, with nothing in them to
    show the tail."""
    return np.where(rng.random(n) < 0.8, 0.5, -2.0)


# issue 30, finding 5: shapes beyond the range where mean_greater was calibrated (lognormal
# sigma 0.6); the verdicts are expected to pass too often here, and the heavy-tail guard to
# mark the cases (docs/calibration.md, "Heavy tails")
BEYOND = {
    "lognormal sigma 1.0, tail on the null side": lambda rng, n: -_centred_lognormal(rng, n, 1.0),
    "5% of windows at -10": _outliers(0.05, -10.0),
    "10% of windows at -5": _outliers(0.10, -5.0),
    "ratio, lognormal denominator": _ratio_lognormal_denominator,
    "two-point, 8 windows": _two_point,
}
NULLS = {**WITHIN, **BEYOND}
WINDOWS = {"two-point, 8 windows": 8}  # a null's own window count (the others: the table's)

def contrasts() -> dict:
    """Every registered unit's tests at their boundary (`hostile` of sinkbench.registry.Hypothesis):
    name -> run(e, rng) -> passed, e the null's noise over the windows."""
    from sinkbench.registry import units

    return {name: run for u in units().values() for name, run in u.hostile.items()}


def __getattr__(name: str):
    if name == "CONTRASTS":  # the units import this module's helpers: read them late
        return contrasts()
    raise AttributeError(name)


def cell(criterion: str, null: str, trials: int = 1000, n_windows: int = 16, seed: int = 0) -> dict:
    """One cell of the grid: the false-pass rate of the criterion under the null, the share of
    trials the heavy-tail guard marks `outside_calibrated_range` (stats.tail_diagnostics on the
    contrast under test: the null's noise, which is that contrast up to a positive scale,
    exactly for additive criteria and within the denominator's +-10% for ratio ones), and the
    false passes it leaves unmarked. The guard reads the noise without drawing from the
    generator, so the rate is the same as without it."""
    n_windows = WINDOWS.get(null, n_windows)
    rng = np.random.default_rng([seed, case_seed("hostile", criterion, null)])
    run, noise = contrasts()[criterion], {**NULLS, **DOCUMENT_UNITS}[null]
    passed, flagged = np.zeros(trials, bool), np.zeros(trials, bool)
    for t in range(trials):
        e = noise(rng, n_windows)
        flagged[t] = tail_diagnostics(e)["outside_calibrated_range"]
        passed[t] = bool(run(e, rng))
    return dict(criterion=criterion, null=null, rate=float(passed.mean()), flagged=float(flagged.mean()),
                unflagged=float((passed & ~flagged).mean()), n_windows=n_windows, trials=trials)


def false_pass_rate(criterion: str, null: str, trials: int = 1000, n_windows: int = 16, seed: int = 0) -> float:
    """Share of trials in which the criterion passes with its contrast at the boundary."""
    return cell(criterion, null, trials, n_windows, seed)["rate"]


def clear_pass_rate(criterion: str, trials: int = 50, n_windows: int = 16, seed: int = 1, shift: float = 3.0) -> float:
    """Power check of the construction: the contrast shifted `shift` noise-sds the claimed way."""
    rng = np.random.default_rng(seed)
    return float(np.mean([contrasts()[criterion](rng.standard_normal(n_windows) + shift, rng) for _ in range(trials)]))


def bound(trials: int) -> float:
    """alpha + 3 Monte-Carlo standard errors of a rate equal to alpha."""
    return ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / trials)


def table(trials: int = 1000, n_windows: int = 16, nulls=None, progress: bool = False) -> list[dict]:
    rows = []
    for c in contrasts():
        for nl in nulls or NULLS:
            rows.append(dict(cell(c, nl, trials, n_windows), bound=bound(trials)))
            if progress:
                r = rows[-1]
                print(f"{c:40} {nl:45} {r['rate']:.3f} (guard {r['flagged']:.2f}, unmarked {r['unflagged']:.3f})",
                      flush=True)
    return rows


def markdown(rows: list[dict], trials: int, n_windows: int) -> str:
    """The grid: each cell the false-pass rate, **over** above the bound; a cell over the
    bound says what the heavy-tail guard leaves of it: 'guarded' when the false passes it
    does not mark are within the bound, else 'unguarded' with that rate. The last row is the
    guard's flag rate under each null (the mean over the criteria)."""
    nulls = list(dict.fromkeys(r["null"] for r in rows))
    head = [f"{nl} ({WINDOWS[nl]} windows)" if nl in WINDOWS and "windows" not in nl else nl for nl in nulls]
    lines = [f"| criterion ({n_windows} windows, {trials} trials) | " + " | ".join(head) + " |",
             "|---|" + "---|" * len(nulls)]
    by = {(r["criterion"], r["null"]): r for r in rows}
    for c in dict.fromkeys(r["criterion"] for r in rows):
        cells = []
        for nl in nulls:
            r = by[c, nl]
            mark = ""
            if r["rate"] > r["bound"]:
                mark = (" **over**, guarded" if r["unflagged"] <= r["bound"]
                        else f" **over**, unguarded ({r['unflagged']:.3f} unmarked)")
            cells.append(f"{r['rate']:.3f}{mark}")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    flags = [np.mean([by[c, nl]["flagged"] for c in dict.fromkeys(r["criterion"] for r in rows)]) for nl in nulls]
    lines.append("| *guard: share of trials marked outside the calibrated range* | " +
                 " | ".join(f"*{f:.2f}*" for f in flags) + " |")
    return "\n".join(lines)


def dependence_table(trials: int = 1000, n_windows: int = 16) -> str:
    """False-pass rates at AR(1) rho 0.5 with windows as units and with document units."""
    cols = ["AR(1) rho 0.5"] + list(DOCUMENT_UNITS)
    lines = [f"| criterion ({n_windows} windows, {trials} trials) | windows as units | " +
             " | ".join(c.split(", ")[1] for c in cols[1:]) + " |", "|---|" + "---|" * len(cols)]
    for c in contrasts():
        lines.append(f"| {c} | " + " | ".join(f"{false_pass_rate(c, col, trials, n_windows):.3f}" for col in cols) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- issue 30's nulls of H3 and H7
def _h3_case(claim: str, **kw):
    """One H3 claim on a simulated table (sinkbench.hypotheses.h3_distributed.synthetic.null_table,
    SmolLM2-135M's within-window sizes) through h3_raw and h3_verdicts, a Holm family of one
    (the hardest case). Returns run(rng) -> (passed, marked by the guard)."""
    def run(rng, n_windows: int):
        from sinkbench.hypotheses.h3_distributed import h3_raw, h3_verdicts
        from sinkbench.hypotheses.h3_distributed.synthetic import null_table

        raw = h3_raw(null_table(rng, n_windows, **kw))
        passed, m = h3_verdicts({"x": {claim: raw[claim]}}, alpha=ALPHA, n_boot=50)["x", claim]
        flag = m.get("outside_calibrated_range")
        if flag is None:
            flag = tail_diagnostics(m.get("values", []))["outside_calibrated_range"]
        return bool(passed), bool(flag)
    return run


def _h7_negative_gap(claim: str):
    """Issue 30's H7 null (tests/test_h7_claims.py): the sliding window beats the reference by
    0.05 nats, the first token and the control recover nothing, the designated token as much
    as the first token; before the sign gates (b) and (d) passed 400 of 400."""
    def run(rng, n_windows: int):
        from sinkbench.hypotheses.h7_streaming.measurement import H7Test
        from sinkbench.hypotheses.h7_streaming.verdicts import h7_verdicts

        n = n_windows
        full = 2.0 + 0.1 * rng.standard_normal(n)
        window = full - 0.05 + 0.05 * rng.standard_normal(n)
        sink1 = window + 0.02 * rng.standard_normal(n)
        t = H7Test(full=full, window=window, sink1=sink1, sink4=sink1, control=window + 0.02 * rng.standard_normal(n),
                   designated={0: sink1 + 0.01 * rng.standard_normal(n)}, recompute=full)
        passed, m = h7_verdicts(t, alpha=ALPHA, min_gap=0.1, min_recovered=0.5, min_designated=0.5, n_boot=N_BOOT)[claim]
        return bool(passed), bool(m.get("outside_calibrated_range", False))
    return run


def issue30_cases() -> dict:
    """name -> run(rng, n_windows) -> (passed, guard's mark): H3's random-effects, weighting
    and early-drift nulls (issue 30, finding 1 and 2; benchmarks/h3_nulls.py has every tau and
    noise) and H7's negative gap (finding 3)."""
    cases = {}
    for tau in (0.10, 0.15):
        cases[f"H3-1 random effects tau {tau}"] = _h3_case("1", tau=tau, tau_claims="1")
        for claim in "23":
            for noise in ("gaussian", "lognormal"):
                cases[f"H3-{claim} random effects tau {tau}, {noise}"] = _h3_case(claim, tau=tau, tau_claims=claim, noise=noise)
    cases["H3-1 weighting: 25% of windows 6 enriched, 75% 1 depleted"] = _h3_case("1", weighting=True, tau_claims="")
    for drift in (0.02, 0.04):
        for claim in "123":
            cases[f"H3-{claim} early drift {drift} (positions 1-4)"] = _h3_case(claim, drift=drift, tau_claims="")
    for claim in "bcd":
        cases[f"H7{claim} negative gap (-0.05), nothing recovered"] = _h7_negative_gap(claim)
    return cases


def issue30_table(trials: int = 1000, n_windows: int = 16, seed: int = 0, only: str = "", progress: bool = False) -> list[dict]:
    from sinkbench.stats import claims

    rows = []
    with claims.without_intervals():  # no verdict here reads an interval
        cases = issue30_cases()
        for name, run in cases.items():
            if only and (name != only if only in cases else only not in name):  # a name, or a part of names
                continue
            rng = np.random.default_rng([seed, case_seed("hostile-issue30", name)])
            res = np.array([run(rng, n_windows) for _ in range(trials)], bool).reshape(trials, 2)
            passed, flagged = res[:, 0], res[:, 1]
            rows.append(dict(criterion=name, rate=float(passed.mean()), flagged=float(flagged.mean()),
                             unflagged=float((passed & ~flagged).mean()), trials=trials, bound=bound(trials)))
            if progress:
                r = rows[-1]
                print(f"{name:60} {r['rate']:.3f} (guard {r['flagged']:.2f})", flush=True)
    return rows


def issue30_markdown(rows: list[dict], trials: int, n_windows: int) -> str:
    lines = [f"| null ({n_windows} windows, {trials} trials) | false-pass rate | guard marks | false passes unmarked |",
             "|---|---|---|---|"]
    for r in rows:
        mark = " **over**" if r["rate"] > r["bound"] else ""
        lines.append(f"| {r['criterion']} | {r['rate']:.3f}{mark} | {r['flagged']:.2f} | {r['unflagged']:.3f} |")
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
    from sinkbench.stats.inference import mean_ci, ratio_ci

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


HOSTILE_BEGIN, HOSTILE_END = "<!-- hostile:begin -->", "<!-- hostile:end -->"
ISSUE30_BEGIN, ISSUE30_END = "<!-- hostile-issue30:begin -->", "<!-- hostile-issue30:end -->"


def main(argv=None) -> int:
    import argparse
    import json
    import time
    from pathlib import Path

    from sinkbench.run.calibration import replace_block

    ap = argparse.ArgumentParser(description="false-pass rates of every criterion under hostile nulls")
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--dependence", action="store_true", help="only the dependence table (document units)")
    ap.add_argument("--coverage", action="store_true", help="only the intervals' achieved coverage")
    ap.add_argument("--issue30", action="store_true", help="only H3's and H7's nulls of issue 30 (random effects, drift, negative gap)")
    ap.add_argument("--null", action="append", help="only these columns of the grid (repeatable)")
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--docs", help="write the table between its markers in this markdown file (docs/calibration.md)")
    ap.add_argument("--progress", action="store_true", help="print each cell as it is measured")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    if a.dependence:
        print(dependence_table(a.trials, a.windows))
        return 0
    if a.coverage:
        print(interval_coverage(a.trials, a.windows))
        return 0
    if a.null and (bad := [n for n in a.null if n not in NULLS]):
        ap.error(f"--null {bad[0]!r} is not a null of the grid; one of: {', '.join(NULLS)}")
    if a.issue30:
        rows = issue30_table(a.trials, a.windows, progress=a.progress)
        md, markers = issue30_markdown(rows, a.trials, a.windows), (ISSUE30_BEGIN, ISSUE30_END)
    else:
        rows = table(a.trials, a.windows, nulls=a.null, progress=a.progress)
        md, markers = markdown(rows, a.trials, a.windows), (HOSTILE_BEGIN, HOSTILE_END)
    print(md)
    print(f"[{time.perf_counter() - t0:.0f} s]")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    if a.docs:
        path = Path(a.docs)
        path.write_text(replace_block(path.read_text(), *markers, md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
