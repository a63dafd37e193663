"""Every kind of forward pass a hypothesis run makes, timed against its floor: an unedited
forward of the same windows over the same layers (fused attention, the NLL step included).

    python benchmarks/pass_costs.py smollm2-135m [--layers 0.5] [-k expr] [--repeat 3] [--out costs.json]

It runs the hypotheses on the model in this process (pytest.main, a fresh results folder, no
resume), with every `interventions.run_pass` call (and H5's own traces, sinkbench.hypotheses.h5_sink_writer.measurement)
counted and labelled by the unit that asked for it and by what kind of pass it is (base,
H1/H2 filter, H4-A write, value/key profile, H7 regime, H6 intervention, H3 detector, H5
attribution, sink rate, ...). The first call of each kind is kept. Afterwards each kept call
is replayed `--repeat` times, alternating with its floor (the same batch, no edit, no
readout, starting where the pass starts: a pass fed a saved prefix skips the layers up to
its edit), and the table gives the median process CPU time of the pass and of its floor and
their ratio. Alternating pass and floor, and CPU time rather than wall time, keep the ratio
honest on a machine shared with other jobs (the load average is printed beside it); the
counts and wall seconds per kind come from the run itself.
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
    (("sink_writer", ""), "H5 attribution / removal"),
    (("sink_controls", ""), "sink rate (controls)"),
    (("experiments", "sink_rates"), "sink rate"),
    (("h4b_designated_training", ""), "H4-B"),
    (("sweep", "base"), "base"),
    (("sweep", ""), "H1/H2 filter"),
]


def _unit_file(filename: str) -> str:
    """The unit a frame belongs to: a module's stem (h1_dark_tail), or for a unit that is a
    folder (hypotheses/h7_streaming/measurement.py) the folder's name."""
    path = Path(filename)
    return path.parent.name if path.parent.name.startswith("h") and path.parent.parent.name == "hypotheses" else path.stem


def _module(filename: str) -> str:
    """What KINDS matches on: a module's stem, or a unit folder's name without its hN_ prefix
    (h7_streaming/measurement.py -> streaming)."""
    name = _unit_file(filename)
    return name.split("_", 1)[1] if name != Path(filename).stem else name


def kind_of(stack) -> str:
    """'<unit>: <kind>': the hypothesis unit whose grid asked for the pass (the outermost
    sinkbench.hypotheses frame) and the innermost frame that says what kind of pass it is."""
    unit = next((_unit_file(f.filename) for f in stack if "/hypotheses/" in f.filename and _unit_file(f.filename).startswith("h")), "")
    unit = unit.split("_")[0].upper().replace("H4A", "H4-A").replace("H4B", "H4-B")
    for (mod, fn), label in KINDS:  # the kinds in order of precedence, each looked for anywhere in the stack
        for frame in reversed(stack[:-2]):  # leaving out this wrapper
            if _module(frame.filename) == mod and (not fn or frame.name == fn):
                return f"{unit}: {label}" if unit else label
    return (f"{unit}: " if unit else "") + "other: " + " < ".join(f"{Path(f.filename).stem}.{f.name}" for f in stack[-7:-3])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--layers", default="0.25,0.5,0.75")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("-k", default=None, help="pytest -k expression (default: every hypothesis)")
    ap.add_argument("--repeat", type=int, default=3, help="replays of each kind's first pass, alternating with its floor")
    ap.add_argument("--out", default=None, help="write the table as JSON here")
    a, extra = ap.parse_known_args(argv)

    import pytest

    from sinkbench.measure import interventions
    from sinkbench.hypotheses.h5_sink_writer import measurement as writer
    from sinkbench.measure.interventions import Edit

    real = interventions.run_pass
    counts = defaultdict(lambda: {"passes": 0, "wall_s": 0.0})
    replayed = {}  # kind -> {"pass_cpu_s": [...], "floor_cpu_s": [...], "start": layer, "batch": n}

    def cpu(fn) -> float:
        t0 = time.process_time()
        fn()
        return time.process_time() - t0

    def replay(kind, again, floor, start, batch):
        """Right after the first pass of a kind (inside whatever context the hypothesis set up,
        e.g. the profile's capturing wrapper): the pass again and its floor, alternating."""
        got = {"pass_cpu_s": [], "floor_cpu_s": [], "start": start, "batch": batch}
        for _ in range(a.repeat):
            got["floor_cpu_s"].append(cpu(floor))
            got["pass_cpu_s"].append(cpu(again))
        replayed[kind] = got

    def timed(subject, ids, edit=None, attn_layers=(), hidden_layers=(), attn_readout=None, prefix=None, **kw):
        kind = kind_of(traceback.extract_stack())
        call = lambda: real(subject, ids, edit=edit, attn_layers=attn_layers, hidden_layers=hidden_layers,  # noqa: E731
                            attn_readout=attn_readout, prefix=prefix, **kw)
        t0 = time.perf_counter()
        out = call()
        counts[kind]["passes"] += 1
        counts[kind]["wall_s"] += time.perf_counter() - t0
        if kind not in replayed:
            copies = kw.get("copies", 1)
            if prefix is not None and edit is not None:  # the same layers: from edit.layer + 1 on, unedited
                ident = Edit(edit.layer, lambda h, rows: h)
                floor = lambda: real(subject, ids, edit=ident, prefix=prefix, copies=copies)  # noqa: E731
            else:
                floor = lambda: real(subject, ids, copies=copies)  # noqa: E731
            replay(kind, call, floor, edit.layer + 1 if prefix is not None and edit is not None else 0, int(ids.shape[0]) * copies)
        return out

    interventions.run_pass = timed

    def whole(fn, label, batch_of):
        """H5's passes are traces of their own (sinkbench.hypotheses.h5_sink_writer.measurement): timed whole, against unedited
        passes over the same windows in the same batches."""
        def run(*args, **kw):
            kind = f"H5: {label}"
            t0 = time.perf_counter()
            out = fn(*args, **kw)
            subject, windows, b = args[0], args[1], batch_of(args, kw)
            counts[kind]["passes"] += -(-len(windows) // b)
            counts[kind]["wall_s"] += time.perf_counter() - t0
            if kind not in replayed:
                floor = lambda: [real(subject, windows[i:i + b]) for i in range(0, len(windows), b)]  # noqa: E731
                replay(kind, lambda: fn(*args, **kw), floor, 0, len(windows))
            return out
        return run

    writer._attribute = whole(writer._attribute, "attribution (one pass, all windows)", lambda a_, k: len(a_[1]))
    writer._run_removal = whole(writer._run_removal, "removal", lambda a_, k: a_[6])
    results = tempfile.mkdtemp(prefix="pass_costs_")
    args = ["hypotheses", "--model", a.model, "--layers", a.layers, "--seq-len", str(a.seq_len), "--results", results,
            "-q", "-p", "no:cacheprovider", "--tb=no", *(["-k", a.k] if a.k else []), *extra]
    t0 = time.perf_counter()
    pytest.main(args)
    wall = time.perf_counter() - t0
    interventions.run_pass = real

    load = os.getloadavg()[0]
    replay_s = sum(sum(r["pass_cpu_s"]) + sum(r["floor_cpu_s"]) for r in replayed.values())
    print(f"\n{a.model}: {sum(c['passes'] for c in counts.values())} passes, pytest wall {wall:.0f} s (of which the "
          f"replays below, CPU {replay_s:.0f} s); load average at the end {load:.1f}")
    print(f"{'kind':40s} {'passes':>6s} {'wall s':>7s} {'start':>5s} {'cpu/pass':>8s} {'floor':>7s} {'ratio':>6s}")
    out = {}
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    for kind, c in sorted(counts.items(), key=lambda kv: -kv[1]["wall_s"]):
        r = replayed[kind]
        p, f = med(r["pass_cpu_s"]), med(r["floor_cpu_s"])
        out[kind] = dict(c, start=r["start"], batch=r["batch"], pass_cpu_s=p, floor_cpu_s=f, ratio=p / f,
                         pass_cpu_all=r["pass_cpu_s"], floor_cpu_all=r["floor_cpu_s"])
        print(f"{kind:40s} {c['passes']:6d} {c['wall_s']:7.0f} {'L' + str(r['start']):>5s} {p:8.2f} {f:7.2f} {p / f:6.2f}")
    if a.out:
        Path(a.out).write_text(json.dumps({"model": a.model, "layers": a.layers, "wall_s": wall, "load": load, "kinds": out},
                                          indent=1))


if __name__ == "__main__":
    sys.exit(main())
