"""H3's verdicts under nulls where a test within windows and a test across windows disagree
(issue 30, gaps 1 and 2): false-pass rates per claim and null, and power at true effects.

  python benchmarks/h3_nulls.py [--trials 1000] [--windows 16] [--only TEXT] [--out FILE]

Every trial draws one table of `--windows` windows x 119 positions
(sinkbench.hypotheses.h3_distributed.synthetic.null_table, SmolLM2-135M's within-window
sizes) and runs the product's own verdict functions on it (h3_raw, then h3_verdicts). The
claim under test is the only one given to h3_verdicts: a Holm family of one, which is the
hardest case (every other test of the family at a clear effect). The nulls:

* random effects: each window's true effect is N(0, tau) around a mean of exactly 0, with
  Gaussian, t2, AR(1) or lognormal noise along the positions (claim 1: tau in probability
  units; claim 2: in correlation units; claim 3: in units of the within-window sd of the
  profile cosine);
* claim 1's weighting null: a quarter of the windows hold 6 enriched sink-like positions,
  the rest 1 depleted one, the mean over windows of (share - base rate) exactly 0;
* early drift: profile cosine and dark ratio rise over positions 1-4 only (0.02 and 0.04 at
  position 1, falling to 0 at position 5), and every sink-like position lies there.

A rate is compared with alpha + 2 binomial standard errors. Power rows put a true effect
of each claim on the same tables. Writes JSON to --out and prints a table."""
from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sinkbench.hypotheses.h3_distributed import h3_raw, h3_verdicts  # noqa: E402
from sinkbench.hypotheses.h3_distributed.synthetic import NOISES, null_table  # noqa: E402
from sinkbench.stats import claims  # noqa: E402
from sinkbench.stats.nulls import DEFAULTS, H3_PERMUTATIONS  # noqa: E402

ALPHA = DEFAULTS["alpha"]


def cases() -> list[tuple[str, str, str, dict]]:
    """(kind, claim, name, null_table keyword arguments); kind is 'null' or 'power'."""
    out = []
    for claim in "123":
        out.append(("null", claim, "no effect", dict(tau_claims="")))
    for tau in (0.05, 0.10, 0.15):
        out.append(("null", "1", f"random effects tau {tau}", dict(tau=tau, tau_claims="1")))
        for claim in "23":
            for noise in NOISES:
                out.append(("null", claim, f"random effects tau {tau}, {noise}", dict(tau=tau, tau_claims=claim, noise=noise)))
    for tau in (0.5, 1.0):  # claim 3's tau in within-window sds: the larger spreads too
        for noise in NOISES:
            out.append(("null", "3", f"random effects tau {tau}, {noise}", dict(tau=tau, tau_claims="3", noise=noise)))
    out.append(("null", "1", "weighting: 25% windows 6 enriched, 75% 1 depleted", dict(weighting=True, tau_claims="")))
    for drift in (0.02, 0.04):
        for claim in "123":
            out.append(("null", claim, f"early drift {drift} (positions 1-4, sink-like there)",
                        dict(drift=drift, tau_claims="")))
    # power: SmolLM2's measured effects (claim 1 0.36-0.43, claim 2 0.18-0.24, claim 3 0.07-0.08)
    # and smaller ones, with a between-window spread
    for claim, key, effects in (("1", "on_frequent", (0.15, 0.4)), ("2", "rho", (0.1, 0.2)), ("3", "cos_gap", (0.02, 0.07))):
        for e in effects:
            out.append(("power", claim, f"{key} {e}, tau 0.1", {key: e, "tau": 0.1, "tau_claims": claim}))
    return out


def run_case(claim: str, kw: dict, trials: int, windows: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    extra = {"permutations": H3_PERMUTATIONS} if "permutations" in inspect.signature(h3_raw).parameters else {}
    passes = 0
    with claims.without_intervals():  # no verdict reads an H3 interval
        for _ in range(trials):
            raw = h3_raw(null_table(rng, windows, **kw), **extra)
            passes += bool(h3_verdicts({"x": {claim: raw[claim]}}, alpha=ALPHA, n_boot=50)["x", claim][0])
    return passes


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--only", default="", help="run the cases whose name contains this text")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/out/h3_nulls.json"))
    a = ap.parse_args(argv)
    bound = ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / a.trials)
    rows = []
    for i, (kind, claim, name, kw) in enumerate(cases()):
        if a.only and a.only not in name:
            continue
        t0 = time.time()
        k = run_case(claim, kw, a.trials, a.windows, seed=1000 + i)
        rate = k / a.trials
        row = dict(kind=kind, claim=claim, case=name, passes=k, trials=a.trials, rate=rate,
                   over_bound=bool(kind == "null" and rate > bound), seconds=round(time.time() - t0, 1))
        rows.append(row)
        print(f"{kind:5} claim {claim}  {name:55} {rate:6.3f}  ({k}/{a.trials}){'  OVER' if row['over_bound'] else ''}",
              flush=True)
        out = dict(trials=a.trials, windows=a.windows, alpha=ALPHA, bound=bound, rows=rows)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=1))
    print(f"bound alpha + 2 SE at {a.trials} trials: {bound:.4f}")
    return out


if __name__ == "__main__":
    main()
