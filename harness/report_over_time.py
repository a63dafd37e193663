"""The report's sections over time (sinkbench.report): a checkpoint series (records with
`series` and `step`, from --models-file [[series]]: key metrics against the training step,
a claims x steps matrix, the step at which each claim starts to hold) and nightly runs
(several results folders: each model's key effects and each case's verdicts over the runs)."""
from __future__ import annotations

import glob
import io
import math
from collections import defaultdict
from pathlib import Path

from .compare import case_id, latest, load_results
from .errors import SinkbenchError
from .registry import key_effects
from .report import claim_key, effect_text, num, settings_line


def series_groups(records: list[dict]) -> dict[str, list[dict]]:
    """series name -> its records, for every series with at least two distinct steps."""
    groups = defaultdict(list)
    for r in records:
        if r.get("series") and isinstance(r.get("step"), int):
            groups[r["series"]].append(r)
    return {k: v for k, v in sorted(groups.items()) if len({r["step"] for r in v}) >= 2}


def _claim_flags(recs: list[dict]) -> dict[str, dict[int, list[bool]]]:
    """claim -> step -> verdicts of its cases (H1's parts (a) and (b) as their own rows)."""
    out = defaultdict(lambda: defaultdict(list))
    for r in recs:
        out[claim_key(r)][r["step"]].append(r["verdict"] == "pass")
        if r["hypothesis"] == "H1":
            for part in ("a", "b"):
                if isinstance(r.get("metrics", {}).get(f"claim_{part}"), bool):
                    out[f"H1({part})"][r["step"]].append(r["metrics"][f"claim_{part}"])
    return out


def from_step(steps: list[int], flags: list[bool]) -> str:
    """'from step S on' (true there and at every later step), 'first at S, not stable', or 'never'."""
    if not any(flags):
        return "never"
    first = next(s for s, f in zip(steps, flags) if f)
    stable = next((s for i, s in enumerate(steps) if all(flags[i:])), None)
    if stable is None:
        return f"first at step {first}, not at the last"
    return f"from step {stable} on" + ("" if stable == first else f" (first at {first}, then lost)")


def _sink_1(r: dict):
    rate = r.get("metrics", {}).get("sink_rate")
    return rate.get("sink_1") if isinstance(rate, dict) else None


def emergence(recs: list[dict]) -> list[str]:
    """When the sink and the dark signal appear: the step from which each holds."""
    steps = sorted({r["step"] for r in recs})
    h1 = [r for r in recs if r["hypothesis"] == "H1"]
    lines = []
    rate = {r["step"]: _sink_1(r) for r in h1 if _sink_1(r) is not None}
    eps = next((r["metrics"]["sink_rate"].get("epsilon") for r in h1 if isinstance(r["metrics"].get("sink_rate"), dict)), 0.3)
    if rate:
        st = sorted(rate)
        lines.append(f"sink (Sink_1 ≥ ε = {eps}, Gu et al.): {from_step(st, [rate[s] >= eps for s in st])}")
    flags = _claim_flags(recs)
    names = {"H1(a)": "dark tail necessary for the loss, H1(a)", "H1(b)": "the sink's dark tail holds the sink, H1(b)",
             "H1": "H1 (a and b)", "H2/b": "middle bands dispensable, H2b"}
    for claim, label in names.items():
        if claim in flags:
            st = [s for s in steps if s in flags[claim]]
            lines.append(f"{label}, at some layer: {from_step(st, [any(flags[claim][s]) for s in st])}")
    return lines


def series_figure(name: str, recs: list[dict]) -> tuple[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h1 = sorted((r for r in recs if r["hypothesis"] == "H1"), key=lambda r: r["step"])
    h2b = sorted((r for r in recs if r["hypothesis"] == "H2" and r.get("claim") == "b"), key=lambda r: r["step"])
    steps = sorted({r["step"] for r in recs})
    layers = sorted({r["layer"] for r in h1 + h2b if r.get("layer") is not None})
    colors = {l: f"C{i % 10}" for i, l in enumerate(layers)}
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.4))

    def trace(ax, rs, value, verdict, label_prefix="", err=None, **kw):
        for layer in layers:
            pts = [(r["step"], value(r), verdict(r), err(r) if err else None) for r in rs if r.get("layer") == layer]
            pts = [p for p in pts if isinstance(p[1], (int, float))]
            if not pts:
                continue
            c = colors[layer]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=c, lw=1, label=f"{label_prefix}layer {layer}", **kw)
            for x, y, ok, e in pts:
                if e is not None and None not in e:
                    ax.plot([x, x], e, color=c, lw=0.8, alpha=0.6)
                ax.plot([x], [y], marker="o", ms=6, color=c, markerfacecolor=c if ok else "white", markeredgewidth=1.3,
                        ls="none")

    claim_b = lambda r: bool(r["metrics"].get("claim_b"))
    claim_a = lambda r: bool(r["metrics"].get("claim_a"))
    passed = lambda r: r["verdict"] == "pass"

    ax = axes[0, 0]
    trace(ax, h1, lambda r: r["metrics"].get("sink_mass_base"), claim_b)
    ax.set_title("sink mass after the layer (markers: H1(b))", fontsize=9)
    ax.set_ylim(-0.03, 1.03)

    ax = axes[0, 1]
    rate = sorted({(r["step"], _sink_1(r)) for r in h1 if _sink_1(r) is not None})
    if rate:
        ax.plot([s for s, _ in rate], [v for _, v in rate], color="k", lw=1, marker="D", ms=5, markerfacecolor="#999")
        eps = next(r["metrics"]["sink_rate"].get("epsilon") for r in h1 if _sink_1(r) is not None)
        ax.axhline(eps, color="#888", ls=":", lw=1)
        ax.text(steps[0], eps, f" ε = {eps}", fontsize=7, va="bottom", color="#555")
    ax.set_title("sink rate Sink_1, all layers and heads (descriptive)", fontsize=9)
    ax.set_ylim(-0.03, 1.03)

    ax = axes[0, 2]
    trace(ax, h1, lambda r: r["metrics"].get("dark_ratio_sink"), passed)
    for layer in layers:
        pts = [(r["step"], r["metrics"].get("dark_ratio_ordinary")) for r in h1 if r.get("layer") == layer]
        pts = [p for p in pts if isinstance(p[1], (int, float))]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=colors[layer], ls="--", lw=1, alpha=0.7)
    ax.set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.set_title("dark ratio: sink (solid, markers: H1) vs ordinary (dashed)", fontsize=9)

    ax = axes[1, 0]
    trace(ax, h1, lambda r: r["metrics"].get("dark_all_delta"), claim_a, err=lambda r: r["metrics"].get("dark_all_delta_ci"))
    thr = next((r["params"].get("min_delta") for r in h1 if r.get("params", {}).get("min_delta") is not None), None)
    if thr is not None:
        ax.axhline(thr, color="#888", ls=":", lw=1)
    ax.set_title("ΔNLL, dark tail removed after the layer (markers: H1(a))", fontsize=9)

    ax = axes[1, 1]
    trace(ax, h2b, lambda r: (r["metrics"].get("frontier") or {}).get("share_deleted"), passed)
    thr = next((r["params"].get("min_frontier") for r in h2b if r.get("params", {}).get("min_frontier") is not None), None)
    if thr is not None:
        ax.axhline(thr, color="#888", ls=":", lw=1)
    ax.set_title("H2 frontier: share of dims deletable (markers: H2b)", fontsize=9)
    ax.set_ylim(-0.03, 1.03)

    ax = axes[1, 2]
    flags = _claim_flags(recs)
    order = sorted(flags, key=lambda c: (c.split("/")[0].split("(")[0], c))
    for y, claim in enumerate(order):
        for s, vs in flags[claim].items():
            face = "k" if all(vs) else "white" if not any(vs) else "#999"
            ax.plot([s], [y], marker="o", ms=7, color="k", markerfacecolor=face, ls="none")
    ax.set_yticks(range(len(order)), order, fontsize=7)
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.set_title("verdicts: filled pass, open fail, grey mixed", fontsize=9)

    for ax in axes.flat:
        ax.set_xscale("symlog", linthresh=max(1, min(s for s in steps if s > 0) if any(steps) else 1)) if 0 in steps else ax.set_xscale("log")
        ax.set_xlim(min(steps) * 0.8 if min(steps) > 0 else -0.5, max(steps) * 1.25)
        ax.set_xlabel("training step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
    if layers:
        axes[0, 0].legend(fontsize=7, loc="upper left")
    caption = settings_line(recs[0]).split(", ", 1)[1]
    title = f"series {name}: sink and dark signal over training ({len(steps)} checkpoints)"
    fig.suptitle(title + "  ·  filled marker = pass, open = fail", fontsize=10)
    fig.text(0.01, 0.005, caption, fontsize=7, color="#555")
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return title, buf.getvalue()


def series_table(recs: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Per step and layer: tokens seen, Sink_1, sink mass, dark ratios, ΔNLL dark with its
    interval and H1's verdicts, the H2 frontier with H2b's verdict."""
    h2b = {(r["step"], r.get("layer")): r for r in recs if r["hypothesis"] == "H2" and r.get("claim") == "b"}
    header = ["step", "tokens seen", "layer", "Sink_1", "sink mass", "dark ratio sink / ordinary", "ΔNLL dark [95%]",
              "H1 (a, b)", "frontier share", "H2b"]
    rows = []
    for r in sorted((r for r in recs if r["hypothesis"] == "H1"), key=lambda r: (r["step"], r.get("layer") or 0)):
        m = r["metrics"]
        ci = m.get("dark_all_delta_ci")
        b = h2b.get((r["step"], r.get("layer")))
        ratio = (f"{num(m.get('dark_ratio_sink'))} / {num(m.get('dark_ratio_ordinary'))}"
                 if m.get("dark_ratio_sink") is not None else "–")
        pf = lambda v: "pass" if v else "fail"
        rows.append([str(r["step"]), f"{r['tokens_seen']:,}" if isinstance(r.get("tokens_seen"), int) else "–", str(r.get("layer")),
                     num(_sink_1(r)) if _sink_1(r) is not None else "–", num(m.get("sink_mass_base")), ratio,
                     num(m.get("dark_all_delta")) + (f" [{num(ci[0])}, {num(ci[1])}]" if isinstance(ci, list) and None not in ci else ""),
                     f"{r['verdict']} ({pf(m.get('claim_a'))}, {pf(m.get('claim_b'))})",
                     num((b["metrics"].get("frontier") or {}).get("share_deleted")) if b else "–", b["verdict"] if b else "–"])
    return header, rows


def step_matrix(recs: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Claims x steps, each cell PASS/FAIL/MIXED passed/total and the key effect's range."""
    steps = sorted({r["step"] for r in recs})
    by = defaultdict(list)
    for r in recs:
        by[claim_key(r), r["step"]].append(r)
    claims = sorted({k for k, _ in by})
    rows = []
    for k in claims:
        row = [k]
        for s in steps:
            rs = by.get((k, s), [])
            if not rs:
                row.append("–")
                continue
            p = sum(r["verdict"] == "pass" for r in rs)
            metric, label = key_effects().get(k, (None, ""))
            vals = [r["metrics"].get(metric) for r in rs if isinstance(r.get("metrics", {}).get(metric), (int, float))]
            row.append(f"{'PASS' if p == len(rs) else 'FAIL' if p == 0 else 'MIXED'} {p}/{len(rs)}"
                       + effect_text(label, (min(vals), max(vals)) if vals else None))
        rows.append(row)
    return ["claim"] + [f"step {s}" for s in steps], rows


def expand_runs(paths) -> list[Path]:
    """Run folders from the command line: folders as given, a quoted glob expanded (sorted)."""
    out = []
    for p in ([paths] if isinstance(paths, (str, Path)) else list(paths)):
        p = str(p)
        if any(c in p for c in "*?[") and not Path(p).exists():
            matches = sorted(m for m in glob.glob(p) if Path(m).is_dir())
            if not matches:
                raise SinkbenchError(f"results folder {p}: the pattern matches no folder")
            out += [Path(m) for m in matches]
        else:
            out.append(Path(p))
    if not out:
        raise SinkbenchError("no results folder given")
    return out


def load_runs(paths) -> list[tuple[str, Path, list[dict]]]:
    """(label, folder, latest record per case) of each run, oldest first by its newest record's
    time (folders given in order break ties). Any missing, empty or unreadable folder fails."""
    runs = []
    for i, d in enumerate(expand_runs(paths)):
        recs = list(latest(load_results(d, "results folder")).values())
        runs.append((max(str(r.get("time", "")) for r in recs), i, d, recs))
    runs.sort(key=lambda x: (x[0], x[1]))
    labels = [d.name or str(d) for _, _, d, _ in runs]
    if len(set(labels)) < len(labels):
        labels = [str(d) for _, _, d, _ in runs]
    return [(label, d, recs) for label, (_, _, d, recs) in zip(labels, runs)]


def history_figure(model: str, runs: list[tuple[str, Path, list[dict]]]) -> tuple[str, bytes] | None:
    """The key effect of each claim of one model over the runs, one line per case (layer, k,
    target, ...), filled marker = pass, open = fail; Sink_1 as a last panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = defaultdict(dict)  # claim -> case_id -> {run index: (value, passed)}
    rates = {}
    for i, (_, _, recs) in enumerate(runs):
        for r in recs:
            if r["model"] != model:
                continue
            metric = key_effects().get(claim_key(r), (None,))[0]
            v = r.get("metrics", {}).get(metric)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                series[claim_key(r)].setdefault(case_id(r), {})[i] = (v, r["verdict"] == "pass")
            if r["hypothesis"] == "H1" and _sink_1(r) is not None:
                rates[i] = _sink_1(r)
    panels = sorted(series) + (["Sink_1"] if rates else [])
    if not panels:
        return None
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.5 * rows + 0.6), squeeze=False)
    labels = [label if len(label) <= 14 else label[:6] + "…" + label[-7:] for label, _, _ in runs]
    for ax, claim in zip(axes.flat, panels):
        if claim == "Sink_1":
            xs = sorted(rates)
            ax.plot(xs, [rates[x] for x in xs], color="k", marker="D", ms=4, markerfacecolor="#999", lw=1)
            ax.set_title("Sink_1 (descriptive)", fontsize=8)
        else:
            for j, (_, pts) in enumerate(sorted(series[claim].items(), key=lambda kv: str(kv[0]))):
                xs = sorted(pts)
                c = f"C{j % 10}"
                ax.plot(xs, [pts[x][0] for x in xs], color=c, lw=0.9, alpha=0.8)
                for x in xs:
                    ax.plot([x], [pts[x][0]], marker="o", ms=4.5, color=c, markerfacecolor=c if pts[x][1] else "white", ls="none")
            ax.set_title(f"{claim}: {key_effects()[claim][1]}", fontsize=8)
        ax.set_xticks(range(len(runs)), labels, fontsize=6, rotation=30, ha="right")
        ax.set_xlim(-0.3, len(runs) - 0.7)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.25)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    title = f"{model}: key effects over {len(runs)} runs (one line per case; filled = pass, open = fail)"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / (2.5 * rows + 0.6)))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return title, buf.getvalue()


def history_matrix(runs: list[tuple[str, Path, list[dict]]], models: list[str]) -> tuple[list[str], list[list[str]]]:
    """Claims x models of the latest run's models, each cell its passed/total in every run,
    oldest first ('–' where a run has no such case)."""
    counts = defaultdict(lambda: [[0, 0] for _ in runs])
    for i, (_, _, recs) in enumerate(runs):
        for r in recs:
            if r["model"] in models:
                c = counts[claim_key(r), r["model"]][i]
                c[0] += r["verdict"] == "pass"
                c[1] += 1
    claims = sorted({k for k, _ in counts})
    rows = [[k] + [" → ".join(f"{p}/{t}" if t else "–" for p, t in counts[k, m]) if (k, m) in counts else "–" for m in models]
            for k in claims]
    return ["claim"] + list(models), rows
