"""Every kind of forward pass a hypothesis run makes, timed against its floor: an unedited
forward of the same windows over the same layers (fused attention, the NLL step included).

    python benchmarks/pass_costs.py smollm2-135m [--layers 0.5] [-k expr] [--out costs.json]

It runs the hypotheses on the model in this process (pytest.main, a fresh results folder, no
resume), with every `interventions.run_pass` call timed and labelled by what called it (the
kind: base, H1/H2 filter, H4-A write, value/key profile, H7 regime, H6 intervention, H3
detector, H5 attribution, sink rate, ...) and by where it starts (a pass fed a saved prefix
skips the layers up to its edit). Then, on the same batches, the floor of each start: an
unedited pass from that layer on, the median of 3. The table gives per kind the passes, the
mean seconds per pass, the floor of the same layers and their ratio; run it on a quiet
machine (the load average is printed beside it).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from pathlib import Path

# the frame (module, function) nearest the pass that says what kind of pass it is; first match wins
KINDS = [
    (("sink_profile", "profiled_pass"), "value/key profile"),
    (("designate", "run_write"), "H4-A write"),
    (("experiments", "run_shared_write"), "H4-A write (target-free)"),
    (("streaming", ""), "H7 regime"),
    (("massive", ""), "H6 intervention / detection"),
    (("distributed", ""), "H3 detector"),
    (("writer", ""), "H5 attribution / removal"),
    (("sink_controls", ""), "sink rate (controls)"),
    (("experiments", "sink_rates"), "sink rate"),
    (("h4b_designated_training", ""), "H4-B"),
    (("sweep", "base"), "base"),
    (("sweep", ""), "H1/H2 filter"),
]


def kind_of(stack) -> str:
    """'<unit>: <kind>': the hypothesis unit whose grid asked for the pass (the outermost
    sinkbench.hypotheses frame) and the innermost frame that says what kind of pass it is."""
    unit = next((Path(f.filename).stem for f in stack if "/hypotheses/" in f.filename and Path(f.filename).stem.startswith("h")), "")
    unit = unit.split("_")[0].upper().replace("H4A", "H4-A").replace("H4B", "H4-B")
    for (mod, fn), label in KINDS:  # the kinds in order of precedence, each looked for anywhere in the stack
        for frame in reversed(stack[:-2]):  # leaving out this wrapper
            if Path(frame.filename).stem == mod and (not fn or frame.name == fn):
                return f"{unit}: {label}" if unit else label
    return (f"{unit}: " if unit else "") + "other: " + " < ".join(f"{Path(f.filename).stem}.{f.name}" for f in stack[-7:-3])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--layers", default="0.25,0.5,0.75")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("-k", default=None, help="pytest -k expression (default: every hypothesis)")
    ap.add_argument("--out", default=None, help="write the table as JSON here")
    a, extra = ap.parse_known_args(argv)

    import pytest
    import torch

    from sinkbench import interventions

    calls = []
    real = interventions.run_pass

    def timed(subject, ids, edit=None, attn_layers=(), hidden_layers=(), attn_readout=None, prefix=None, **kw):
        t0 = time.perf_counter()
        out = real(subject, ids, edit=edit, attn_layers=attn_layers, hidden_layers=hidden_layers,
                   attn_readout=attn_readout, prefix=prefix, **kw)
        dt = time.perf_counter() - t0
        start = edit.layer + 1 if (prefix is not None and edit is not None) else 0
        calls.append({"kind": kind_of(traceback.extract_stack()), "start": start, "batch": int(ids.shape[0]) * kw.get("copies", 1),
                      "attn_layers": len(list(attn_layers)), "masked": kw.get("attention_mask") is not None, "s": dt})
        return out

    interventions.run_pass = timed
    # H5's passes are traces of their own (sinkbench.writer): timed whole, per batch of windows
    from sinkbench import writer

    def whole(fn, label, batch_of):
        def run(*args, **kw):
            t0 = time.perf_counter()
            out = fn(*args, **kw)
            n = len(args[1])
            calls.append({"kind": f"H5: {label}", "start": 0, "batch": n, "passes": -(-n // batch_of(args, kw)),
                          "attn_layers": 0, "masked": False, "s": time.perf_counter() - t0})
            return out
        return run

    writer._attribute = whole(writer._attribute, "attribution (one pass, all windows)", lambda a, k: len(a[1]))
    writer._run_removal = whole(writer._run_removal, "removal", lambda a, k: a[6])
    results = tempfile.mkdtemp(prefix="pass_costs_")
    args = ["hypotheses", "--model", a.model, "--layers", a.layers, "--seq-len", str(a.seq_len), "--results", results, "-q", "-p", "no:cacheprovider",
            "--tb=no", *(["-k", a.k] if a.k else []), *extra]
    t0 = time.perf_counter()
    pytest.main(args)
    wall = time.perf_counter() - t0
    interventions.run_pass = real

    # the floors: an unedited pass of one batch from each start layer seen, median of 3
    from sinkbench.access import load_subject
    from sinkbench.config import make_settings
    from sinkbench.data import windows_for
    from sinkbench.interventions import Edit

    s = make_settings(Path.cwd())
    subj = load_subject(a.model, "cpu", "float32")
    windows = windows_for(subj, s.dataset, a.seq_len, s.n_seqs, layout=s.windows)
    batch = windows[: s.windows_per_pass(subj)]
    floors = {}
    for start in sorted({c["start"] for c in calls}):
        if start == 0:
            fn = lambda: real(subj, batch)  # noqa: E731
        else:
            prefix = real(subj, batch, hidden_layers=[start - 1]).hidden[start - 1]
            ident = Edit(start - 1, lambda h, rows: h)
            fn = lambda: real(subj, batch, edit=ident, prefix=prefix)  # noqa: E731,B023
        times = []
        for _ in range(3):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        floors[start] = sorted(times)[1]

    table = defaultdict(lambda: {"passes": 0, "s": 0.0, "floor_s": 0.0})
    for c in calls:
        row = table[c["kind"]]
        row["passes"] += c.get("passes", 1)
        row["s"] += c["s"]
        row["floor_s"] += floors[c["start"]] * c["batch"] / len(batch)
    load = os.getloadavg()[0]
    print(f"\n{a.model}: {len(calls)} passes in {wall:.0f} s of pytest wall time; load average {load:.1f}; "
          f"floors (s per {len(batch)}-window batch, by start layer): " + ", ".join(f"L{k}: {v:.2f}" for k, v in floors.items()))
    print(f"{'kind':38s} {'passes':>6s} {'s/pass':>7s} {'floor':>7s} {'ratio':>6s} {'total s':>8s}")
    out = {}
    for kind, row in sorted(table.items(), key=lambda kv: -kv[1]["s"]):
        per, floor = row["s"] / row["passes"], row["floor_s"] / row["passes"]
        out[kind] = dict(row, per_pass_s=per, floor_per_pass_s=floor, ratio=per / floor)
        print(f"{kind:38s} {row['passes']:6d} {per:7.2f} {floor:7.2f} {per / floor:6.2f} {row['s']:8.1f}")
    if a.out:
        Path(a.out).write_text(json.dumps({"model": a.model, "wall_s": wall, "load": load, "floors": floors, "kinds": out,
                                           "calls": calls}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
