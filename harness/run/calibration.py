"""Calibration of the criteria by simulation: false-pass rates under nulls with realistic
within-window structure, and power (windows needed) at given effects.

This module is the engine's driver (simulate / false_pass_rate / power, the tables; Criterion
and the window-level noise are in sinkbench.stats.nulls); each hypothesis unit declares its own criteria and simulators beside its
verdicts (`NULLS` in sinkbench.hypotheses.h1_dark_tail ... h5_sink_writer, read through the
registry). Every simulated trial builds the per-window arrays one real run would hand to
the unit's verdict functions (H1Inputs, H2Inputs/H2bInputs, a PositionTable, WriteResults,
the H4-B dict, H5Inputs) and calls those functions unchanged; a criterion "passes" in a
trial when the verdict function says so for the case under test. Nothing here re-implements
a verdict.

How the per-window numbers are made: sinkbench.stats.nulls."""
from __future__ import annotations

import math

import numpy as np

from sinkbench.stats.nulls import Criterion, DEFAULTS, exact_fast_stats

D = DEFAULTS


def criteria() -> dict[str, Criterion]:
    """Every criterion with simulated nulls, by name: the `nulls` of the registered
    hypothesis units (sinkbench.registry), each declared beside its verdict."""
    from sinkbench.registry import units

    return {c.name: c for u in units().values() for c in u.nulls}


def __getattr__(name: str):
    if name == "CRITERIA":  # the registry loads the units, which import this module: read it late
        return criteria()
    raise AttributeError(name)


def parse(criterion: str) -> tuple[Criterion, str | None]:
    """'H1a' (its first null) or 'H1a:random-like' -> (Criterion, null name)."""
    name, _, null = criterion.partition(":")
    known = criteria()
    if name not in known:
        raise KeyError(f"unknown criterion {name!r}; known: {sorted(known)}")
    c = known[name]
    null = null or next(iter(c.nulls))
    if null not in c.nulls:
        raise KeyError(f"{name}: unknown null {null!r}; known: {list(c.nulls)}")
    return c, null


def simulate(criterion: str, effect: float, *, trials: int, n_windows: int = 16, seed: int = 0, layers: int = 1,
             intervals: bool | None = None, **profile) -> np.ndarray:
    """bool [trials, layers]: whether the criterion passed in each simulated trial.
    intervals: compute the bootstrap intervals (None: only where the verdict reads one)."""
    c, _ = parse(criterion)
    rng = np.random.default_rng(seed)
    with exact_fast_stats(intervals=c.reads_intervals if intervals is None else intervals):
        return c.simulate(rng, trials, n_windows, layers, effect, **profile)


def pass_rate(criterion: str, effect: float, *, trials: int, n_windows: int = 16, seed: int = 0, layers: int = 1,
              family: bool = False, **profile) -> tuple[float, float]:
    """Share of trials in which the criterion passed (at the first layer; family=True: at any
    layer of the grid), with its Monte-Carlo standard error sqrt(r (1 - r) / trials)."""
    passed = simulate(criterion, effect, trials=trials, n_windows=n_windows, seed=seed, layers=layers, **profile)
    hits = passed.any(1) if family else passed[:, 0]
    rate = float(hits.mean())
    return rate, math.sqrt(rate * (1 - rate) / trials)


def false_pass_rate(criterion: str, trials: int = 1000, n_windows: int = 16, seed: int = 0, layers: int = 1,
                    family: bool = False, **profile) -> tuple[float, float]:
    """(rate, Monte-Carlo SE) of passing under the criterion's null ('H1a' -> its first
    null, 'H1a:<null>' -> that one). layers > 1: the null holds at every layer of the grid;
    family=True counts a trial when any layer passes (the family-wise rate)."""
    c, null = parse(criterion)
    params = dict(c.nulls[null])
    params.update(profile)
    effect = params.pop("effect")
    return pass_rate(c.name, effect, trials=trials, n_windows=n_windows, seed=seed, layers=layers, family=family, **params)


def power(criterion: str, effect: float, n_windows: int = 16, trials: int = 400, seed: int = 1, layers: int = 1,
          **profile) -> float:
    """Share of trials passing at `effect` (units: CRITERIA[name].effect_name), with the
    criterion's realistic profile (overridable) and `layers` layers in the Holm family."""
    return pass_rate(criterion.partition(":")[0], effect, trials=trials, n_windows=n_windows, seed=seed, layers=layers,
                     **profile)[0]


def windows_needed(criterion: str, effect: float, target_power: float = 0.8, trials: int = 400, max_windows: int = 256,
                   layers: int = 1, seed: int = 1, **profile) -> int | None:
    """Fewest windows with power >= target_power at `effect` (None: not within max_windows).
    Doubling from the Holm floor, then bisection (power is taken as monotone in windows)."""
    from sinkbench.stats.inference import min_windows

    lo = max(2, min_windows(DEFAULTS["alpha"], 1))
    if power(criterion, effect, lo, trials, seed, layers, **profile) >= target_power:
        return lo
    hi = lo
    while True:
        hi = min(hi * 2, max_windows)
        if power(criterion, effect, hi, trials, seed, layers, **profile) >= target_power:
            break
        if hi >= max_windows:
            return None
        lo = hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if power(criterion, effect, mid, trials, seed, layers, **profile) >= target_power:
            hi = mid
        else:
            lo = mid
    return hi


def calibration_table(trials: int = 1000, n_windows: int = 16, seed: int = 0) -> list[dict]:
    """Every criterion x null: false-pass rate, MC SE, the bound alpha + 3 SE(alpha), verdict."""
    rows = []
    alpha = DEFAULTS["alpha"]
    bound = alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials)
    for name, c in criteria().items():
        for null in c.nulls:
            rate, se = false_pass_rate(f"{name}:{null}", trials, n_windows, seed)
            rows.append(dict(criterion=name, null=null, rate=rate, se=se, bound=bound, calibrated=rate <= bound))
    return rows


# --------------------------------------------------------------------------- docs
SIM_BEGIN, SIM_END = "<!-- simulated-calibration:begin -->", "<!-- simulated-calibration:end -->"
POW_BEGIN, POW_END = "<!-- power-table:begin -->", "<!-- power-table:end -->"


def replace_block(text: str, begin: str, end: str, body: str) -> str:
    if begin not in text:
        return text + f"\n{begin}\n{body}\n{end}\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head + begin + "\n" + body + "\n" + end + tail


def calibration_markdown(rows: list[dict], trials: int) -> str:
    lines = [f"{trials} trials per null, 16 windows, seed 0; bound = alpha + 3 SE(alpha) = {rows[0]['bound']:.4f}.", "",
             "| criterion | null | false-pass rate | MC SE | within bound |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['criterion']} | {r['null']} | {r['rate']:.3f} | {r['se']:.3f} | {'yes' if r['calibrated'] else '**no**'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    """python -m sinkbench.run.calibration [--results R.jsonl ...] [--real J.json ...] [--docs docs/calibration.md]"""

    import argparse
    import json
    import time
    from pathlib import Path

    ap = argparse.ArgumentParser(prog="python -m sinkbench.run.calibration")
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--power-trials", type=int, default=300)
    ap.add_argument("--results", action="append", default=[], help="results.jsonl with real effect sizes (repeatable)")
    ap.add_argument("--real", action="append", default=[], help="JSON written by benchmarks/calibrate_zoo.py (repeatable)")
    ap.add_argument("--docs", help="write the tables between the markers of this markdown file")
    ap.add_argument("--skip-calibration", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    blocks = {}
    if not args.skip_calibration:
        rows = calibration_table(args.trials)
        blocks["sim"] = calibration_markdown(rows, args.trials)
        print(blocks["sim"], flush=True)
        print(f"[{time.perf_counter() - t0:.0f}s]", flush=True)
    if args.results or args.real:
        records, real = [], []
        for path in args.results:
            for line in Path(path).read_text().splitlines():
                if line.strip():
                    r = json.loads(line)
                    r["_source"] = path
                    records.append(r)
        for path in args.real:
            for model, out in json.loads(Path(path).read_text()).items():
                out["_source"] = path
                real.append((model, out))
        rows = power_rows(effect_specs(records, real), args.power_trials)
        blocks["power"] = power_markdown(rows, args.power_trials)
        print(blocks["power"], flush=True)
        print(f"[{time.perf_counter() - t0:.0f}s]", flush=True)
    if args.docs:
        path = Path(args.docs)
        text = path.read_text() if path.exists() else ""
        if "sim" in blocks:
            text = replace_block(text, SIM_BEGIN, SIM_END, blocks["sim"])
        if "power" in blocks:
            text = replace_block(text, POW_BEGIN, POW_END, blocks["power"])
        path.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


# --------------------------------------------------------------------------- power at the measured effects
def _ci_sd(ci, n: int) -> float | None:
    """Per-window sd implied by a 95% interval of a mean over n windows."""
    if not ci or ci[0] is None or ci[1] is None:
        return None
    return (ci[1] - ci[0]) / 3.92 * math.sqrt(n)


def never_passes(criterion: str, effect: float, profile: dict) -> str | None:
    """Why the criterion cannot reach power at this effect however many windows (a point
    estimate on the failing side of its threshold, or no effect), or None."""
    d, p = DEFAULTS, profile
    known = criteria()
    H1_PROFILE, H4A_PROFILE = known["H1a"].profile, known["H4-A2"].profile
    rules = {
        "H1a": effect <= 0 or p.get("random_rise", H1_PROFILE["random_rise"]) + effect < d["h1_min_delta"],
        "H1b": effect < d["h1_min_sink_drop"] or p.get("sink_rise", 1.0) <= 0,
        "H2a": effect <= 0, "H2b": effect <= 0, "H3-1": effect <= 0, "H3-2": effect <= 0, "H3-3": effect <= 0,
        "H3-4": effect <= 0, "H4-A1": effect < d["h4_rho"],
        "H4-A2": p.get("control_ratio", H4A_PROFILE["control_ratio"]) >= d["h4_rho"] or effect <= 1
        or effect * p.get("control_ratio", H4A_PROFILE["control_ratio"]) < d["h4_rho"],
        "H4-A3": effect < d["h4_min_recovered"], "H4-B1": effect <= 0 or p.get("nll_gap", 1.0) <= 0, "H4-B2": effect <= 0,
        "H5-1": effect <= 0,
        "H5-2": effect < d["h5_min_sink_drop"] or p.get("nll_rise", 1.0) < d["h5_min_nll_rise"],
    }
    return "effect on the failing side of the criterion's threshold" if rules[criterion] else None


def effect_specs(records: list[dict], real) -> list[dict]:
    """Effect sizes seen on real models as simulator inputs. records: result records
    (results.jsonl lines, each with its '_source'; older metric names tolerated); real:
    (model, output) pairs of benchmarks/calibrate_zoo.py --json files (each output with its
    '_source'; a dict model -> output is accepted). A later source replaces an earlier one
    for the same criterion, model and case. Each spec: criterion, model, case, effect,
    profile, grid (layers or conditions of the default grid: the family the run uses), source."""
    specs = []
    if isinstance(real, dict):
        real = list(real.items())

    def add(criterion, model, case, effect, profile, grid, source):
        if effect is None or not np.isfinite(effect):
            return
        prof = {k: (v if isinstance(v, int) else float(v)) for k, v in profile.items() if v is not None}
        key = (criterion, model, case)
        specs[:] = [x for x in specs if (x["criterion"], x["model"], x["case"]) != key]  # a later source wins
        specs.append(dict(criterion=criterion, model=model, case=case, effect=float(effect), profile=prof, grid=grid,
                          source=source))

    for r in records:
        m, h, model, src = r["metrics"], r["hypothesis"], r["model"], r.get("_source", "results.jsonl")
        n = int(r.get("params", {}).get("n_seqs", 16))
        layer = r.get("layer")
        if h == "H1":
            add("H1a", model, f"layer {layer}", m["dark_all_delta"] - m["random_delta"],
                {"random_rise": m["random_delta"]}, 3, src)
            add("H1b", model, f"layer {layer}", m.get("sink_mass_drop"),
                {"sink_rise": m.get("dark_sink_delta"), "sink_sd": _ci_sd(m.get("dark_sink_delta_ci"), n),
                 "drop_sd": _ci_sd(m.get("sink_mass_drop_ci"), n)}, 3, src)
        elif h == "H2" and "head_minus_omega" in m:
            sd = _ci_sd(m.get("head_minus_omega_ci"), n)
            add("H2a", model, f"layer {layer}, k {r['params'].get('k')}", m["head_minus_omega"],
                {"omega_rise": m.get("omega_delta"), "gap_sd": sd / math.sqrt(2) if sd else None, "ks": 3}, 3, src)
        elif h == "H2" and "deleted_share" in m and m.get("k") is not None:
            add("H2b", model, f"layer {layer}, k {m['k']}", m.get("tolerance", 0.25) - m["omega_delta"],
                {"b_sd": _ci_sd(m.get("omega_delta_ci"), n), "cv": 0.0}, 3, src)
        elif h == "H4" and "capture_ratio" in m and r["params"].get("variant") == "add" and r["params"].get("target") == "middle":
            add("H4-A1", model, f"layer {layer}, middle", m["capture_ratio"], {}, 3, src)
        elif h == "H4" and "control_capture_ratio" in m and r["params"].get("target") == "middle":
            add("H4-A2", model, f"layer {layer}, middle", m["dark_capture_ratio"] / max(m["control_capture_ratio"], 1e-9),
                {"control_ratio": m["control_capture_ratio"]}, 3, src)
        elif h == "H4" and "recovered_share" in m and r["params"].get("target") == "middle":
            add("H4-A3", model, f"layer {layer}, middle", m["recovered_share"],
                {"rise": m.get("delta_broken"), "rise_sd": _ci_sd(m.get("delta_broken_ci"), n)}, 3, src)
        elif h == "H5" and "dark_share" in m:
            add("H5-1", model, "", m["dark_share"] - DEFAULTS["h5_min_share"],
                {"share_sd": _ci_sd(m.get("dark_share_ci"), n)}, 1, src)
        elif h == "H5" and "sink_drop_beyond_control" in m:
            sd = _ci_sd(m.get("nll_rise_beyond_control_ci"), n)
            add("H5-2", model, "", m["sink_drop_beyond_control"],
                {"nll_rise": m.get("nll_rise_beyond_control"), "nll_sd": sd / math.sqrt(2) if sd else None}, 1, src)
    for model, out in real:
        src = out.get("_source", "benchmarks/calibrate_zoo.py")
        for cond, t in out.get("h3", {}).get("tables", {}).items():
            e = t.get("real_effect", {})
            add("H3-1", model, cond, e.get("1"), {}, 2, src)
            r2 = e.get("2")
            add("H3-2", model, cond, 2 * math.sin(math.pi * r2 / 6) if r2 is not None else None, {}, 2, src)
            add("H3-3", model, cond, e.get("3"), {}, 2, src)
            add("H3-4", model, cond, e["4"] - 0.5 if e.get("4") is not None else None, {}, 2, src)
        for layer, sh in out.get("h2", {}).get("shape", {}).items():
            add("H2b", model, f"layer {layer}, k {sh['k']}", DEFAULTS["frontier_tolerance"] - sh["mean"],
                {"b_sd": sh["sd"], "cv": 0.0}, 3, src)
        for key, m in out.get("h4", {}).get("real", {}).items():
            layer, target, claim, variant = key.split("/")
            if target != "middle":
                continue
            if claim == "A1" and variant == "add":
                add("H4-A1", model, f"layer {layer}, middle", m.get("capture_ratio"), {}, 3, src)
            elif claim == "A2" and m.get("control_capture_ratio"):
                add("H4-A2", model, f"layer {layer}, middle", m["dark_capture_ratio"] / m["control_capture_ratio"],
                    {"control_ratio": m["control_capture_ratio"]}, 3, src)
            elif claim == "A3":
                add("H4-A3", model, f"layer {layer}, middle", m.get("recovered_share"), {"rise": m.get("delta_broken")}, 3, src)
        eff = out.get("effects", {})
        for key, m in eff.get("H2", {}).items():
            layer, k = key.split("/")
            if k != "b":
                sd = _ci_sd(m.get("head_minus_omega_ci"), 16)
                add("H2a", model, f"layer {layer}, k {k}", m["head_minus_omega"],
                    {"omega_rise": m.get("omega_delta"), "gap_sd": sd / math.sqrt(2) if sd else None, "ks": 3}, 3, src)
        for key, m in eff.get("H4B", {}).items():
            layer, claim = key.split("/")
            if claim == "B1":
                nsd = _ci_sd(m.get("nll_dark_k_minus_0_ci"), 16)
                add("H4-B1", model, f"layer {layer}", m["att_k"] - m["att_0"],
                    {"att": m["att_0"], "att_sd": _ci_sd(m.get("att_k_minus_0_ci"), 16),
                     "nll_gap": m["nll_dark_k"] - m["nll_dark_0"], "nll_sd": nsd / math.sqrt(2) if nsd else None}, 1, src)
            else:  # the dark ratio's scale and spread as measured: lognormal with the ordinary
                # positions' mean and the spread that gives the measured window sd of the gap
                sd = _ci_sd(m.get("difference_ci"), 16) or 0.1
                mean = max(m["dark_ratio_ordinary"], 1e-6)
                sigma = math.sqrt(math.log1p((sd / mean) ** 2))
                add("H4-B2", model, f"layer {layer}", m["dark_ratio_k"] - m["dark_ratio_ordinary"],
                    {"dark_mu": math.log(mean) - sigma ** 2 / 2, "dark_sigma": sigma}, 1, src)
        h5 = eff.get("H5", {})
        if "1" in h5:
            add("H5-1", model, "", h5["1"]["dark_share"] - DEFAULTS["h5_min_share"],
                {"share_sd": max(_ci_sd(h5["1"].get("dark_share_ci"), 16) or 0.0, 1e-3)}, 1, src)
        if "2" in h5:
            add("H5-2", model, "", h5["2"]["sink_drop_beyond_control"], {"nll_rise": h5["2"]["nll_rise_beyond_control"]}, 1, src)
    return specs


def power_rows(specs: list[dict], trials: int = 300, target_power: float = 0.8, max_windows: int = 128) -> list[dict]:
    """windows_needed at each spec's effect: alone (the criterion's own tests as the family)
    and in the default grid (the same effect at each of `grid` layers / conditions)."""
    rows = []
    for sp in specs:
        why = never_passes(sp["criterion"], sp["effect"], sp["profile"])
        row = dict(sp, why=why, own=None, grid_windows=None, power16=None)
        if why is None:
            kw = dict(trials=trials, max_windows=max_windows, **sp["profile"])
            row["own"] = windows_needed(sp["criterion"], sp["effect"], target_power, **kw)
            grid_kw = dict(sp["profile"], **({"targets": 3} if sp["criterion"].startswith("H4-A") else {}))
            row["power16"] = power(sp["criterion"], sp["effect"], 16, trials, layers=sp["grid"], **grid_kw)
            if sp["criterion"].startswith("H4-A"):  # the default grid: 3 layers x 3 target kinds
                kw["targets"] = 3
            if sp["grid"] > 1 or "targets" in kw:
                row["grid_windows"] = windows_needed(sp["criterion"], sp["effect"], target_power, layers=sp["grid"], **kw)
            else:
                row["grid_windows"] = row["own"]
        rows.append(row)
    return rows


def power_markdown(rows: list[dict], trials: int) -> str:
    lines = [f"Windows for 80% power ({trials} simulated trials per evaluation, searched up to 128 windows); "
             "'alone': the criterion's own tests are the Holm family; 'grid': the same effect at every "
             "layer (H1, H2, H4-A: 3 layers; H4-A: x 3 targets) or BOS condition (H3: 2) of the default run. "
             "'power@16': pass rate at 16 windows in the grid.", "",
             "| criterion | model | case | effect | windows (alone) | windows (grid) | power@16 | source |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fmt = lambda v: "never" if r["why"] else (">128" if v is None else str(v))
        p16 = "0" if r["why"] else f"{r['power16']:.2f}"
        lines.append(f"| {r['criterion']} | {r['model']} | {r['case']} | {r['effect']:.3g} | {fmt(r['own'])} | "
                     f"{fmt(r['grid_windows'])} | {p16} | {r['source']} |")
    return "\n".join(lines)
