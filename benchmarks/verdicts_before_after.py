"""Verdicts of the same per-window arrays under two versions of the verdict functions.

A run with SINKBENCH_DUMP_INPUTS=DIR pickles every grid's verdict inputs. This script
re-evaluates them with the verdict functions (claims.py + stats.py) of an older commit and
with the current ones, and prints one line per case whose verdict differs, then a table
of passed/total per (model, hypothesis) under both. H3 is left out: its detector changed
with its tests, so its inputs are not comparable across the two versions.

    python benchmarks/verdicts_before_after.py DIR [--before ad5d30e]
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import pickle
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
D = dict(alpha=0.05, min_delta=0.5, min_sink_drop=0.2, tolerance=0.25, min_frontier=0.25, rho=3.0, min_recovered=0.5,
         min_share=0.5, h5_min_sink_drop=0.1, h5_min_nll_rise=0.05, n_boot=2000)


def old_claims(commit: str):
    """claims.py and stats.py of `commit`, importable as the package sinkbench_before."""
    pkg = Path(tempfile.mkdtemp()) / "sinkbench_before"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in ("claims.py", "stats.py"):
        text = subprocess.run(["git", "show", f"{commit}:harness/{name}"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout
        (pkg / name).write_text(text)
    sys.path.insert(0, str(pkg.parent))
    return importlib.import_module("sinkbench_before.claims")


def convert(x, cls):
    """A dataclass of the current version as the same-named dataclass of the other one."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in dataclasses.asdict(x).items() if k in names})


def verdicts(c, hypothesis: str, inputs, new: bool) -> dict:
    if hypothesis == "H1":
        grid = {l: convert(x, c.H1Inputs) for l, x in inputs.items()}
        return c.h1_verdicts(grid, alpha=D["alpha"], min_delta=D["min_delta"], min_sink_drop=D["min_sink_drop"],
                             n_boot=D["n_boot"])
    if hypothesis == "H2":
        grid, grid_b = inputs
        return c.h2_verdicts({k: convert(x, c.H2Inputs) for k, x in grid.items()},
                             {k: convert(x, c.H2bInputs) for k, x in grid_b.items()}, alpha=D["alpha"],
                             n_boot=D["n_boot"], tolerance=D["tolerance"], min_frontier=D["min_frontier"])
    if hypothesis == "H4A":
        raws = {lt: (c.h4a_raw(w, D["rho"], D["n_boot"], D["min_recovered"], key=lt) if new
                     else c.h4a_raw(w, D["rho"], D["n_boot"], D["min_recovered"])) for lt, w in inputs.items()}
        return c.h4a_verdicts(raws, alpha=D["alpha"])
    if hypothesis == "H4B":
        return c.h4b_verdicts(inputs, alpha=D["alpha"], n_boot=D["n_boot"])
    if hypothesis == "H5":
        return c.h5_verdicts(convert(inputs, c.H5Inputs), alpha=D["alpha"], min_share=D["min_share"],
                             min_sink_drop=D["h5_min_sink_drop"], min_nll_rise=D["h5_min_nll_rise"], n_boot=D["n_boot"])
    raise KeyError(hypothesis)


def _arrays(obj):
    """Every per-window array in a grid of verdict inputs (for the number of windows)."""
    import numpy as np

    if isinstance(obj, np.ndarray):
        yield obj
    elif dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            if f.metadata.get("window_axis", 0) == 0:
                yield from _arrays(getattr(obj, f.name))
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _arrays(v)
    elif isinstance(obj, tuple):
        for v in obj:
            yield from _arrays(v)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("inputs", help="folder of SINKBENCH_DUMP_INPUTS pickles")
    ap.add_argument("--before", default="ad5d30e", help="commit of the older verdict functions")
    ap.add_argument("--stability", action="store_true", help="also the current verdicts' stability (window resamples)")
    a = ap.parse_args(argv)
    before = old_claims(a.before)
    from types import SimpleNamespace

    from sinkbench.hypotheses import h1_dark_tail, h2_middle, h4a_designated_write, h4b_designated_training, h5_sink_writer

    # today's verdict functions live in their hypothesis units, under the names claims.py had
    now = SimpleNamespace(**{k: v for m in (h1_dark_tail, h2_middle, h4a_designated_write, h4b_designated_training,
                                            h5_sink_writer) for k, v in vars(m).items()})

    from sinkbench.stats.stability import FRAGILE_BELOW, verdict_stability

    table = defaultdict(lambda: [0, 0, 0])
    fragile = []
    for path in sorted(Path(a.inputs).glob("*.pkl")):
        d = pickle.loads(path.read_bytes())
        if d["hypothesis"] not in ("H1", "H2", "H4A", "H4B", "H5"):  # H3: detector changed; H6: new
            continue
        old, new = verdicts(before, d["hypothesis"], d["inputs"], False), verdicts(now, d["hypothesis"], d["inputs"], True)
        if a.stability:
            n = len(next(iter(_arrays(d["inputs"]))))
            shares = verdict_stability(lambda x: verdicts(now, d["hypothesis"], x, True), d["inputs"], n,
                                       reads_intervals=d["hypothesis"] == "H2")
            fragile += [(d["model"], d["hypothesis"], k, new[k][0], v) for k, v in shares.items() if v < FRAGILE_BELOW]
        for key in new:
            o, n = bool(old[key][0]), bool(new[key][0])
            cell = table[d["model"], d["hypothesis"]]
            cell[0] += o
            cell[1] += n
            cell[2] += 1
            if o != n:
                print(f"{d['model']} {d['hypothesis']} {key}: {'pass' if o else 'fail'} -> {'pass' if n else 'fail'}")
    for model, hyp, key, passed, share in fragile:
        print(f"fragile now: {model} {hyp} {key} {'pass' if passed else 'fail'}, same verdict on {share:.0%} of resamples")
    print("\n| model | hypothesis | passed before | passed now | cases |\n|---|---|---|---|---|")
    for (model, hyp), (o, n, t) in sorted(table.items()):
        print(f"| {model} | {hyp} | {o} | {n} | {t} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
