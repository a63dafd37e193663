"""`sinkbench report DIR`: DIR/report.md and a self-contained DIR/report.html
(figures embedded as base64 PNG) from DIR/results.jsonl. Matplotlib only."""
from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from pathlib import Path

from .compare import latest, load_results

KEY_EFFECT = {  # the number shown next to pass/fail in the matrix: (metric, label)
    "H1": ("dark_all_delta", "ΔNLL dark"), "H2/a": ("head_minus_omega", "head−Ω"), "H2/b": ("omega_delta", "ΔNLL Ω"),
    "H3/1": ("frequent_share_minus_base_rate", "freq − base"), "H3/2": ("within_window_spearman", "ρ"),
    "H3/3": ("cos_sink_like_minus_ordinary", "Δcos"), "H3/4": ("share_windows_with_min_sinks", "windows ≥2 sinks"),
    "H4/A1": ("capture_ratio", "capture×"), "H4/A2": ("control_capture_ratio", "ctrl×"),
    "H4/A3": ("recovered_share", "recovered"), "H4/B1": ("att_k", "att k"), "H4/B2": ("dark_ratio_k", "dark k"),
    "H5/1": ("dark_share", "dark share"), "H5/2": ("sink_drop_beyond_control", "sink drop − ctrl"),
}
SINK_RATE_ROW = "sink rate (Gu et al.)"  # from the H1 records: Sink_1 and the largest other position's rate


def claim_key(r: dict) -> str:
    return r["hypothesis"] + (f"/{r['claim']}" if r.get("claim") else "")


def matrix_rows(records) -> tuple[list, list, dict]:
    """(claims, models grouped by family, cells): cell = (passed, total, mean key effect)."""
    cells = defaultdict(lambda: [0, 0, []])
    fam = {}
    for r in records:
        key, model = claim_key(r), r["model"]
        fam[model] = r.get("family", "?")
        c = cells[key, model]
        c[0] += r["verdict"] == "pass"
        c[1] += 1
        metric = KEY_EFFECT.get(key, (None,))[0]
        v = r.get("metrics", {}).get(metric)
        if isinstance(v, (int, float)):
            c[2].append(v)
    claims = sorted({k for k, _ in cells})
    models = sorted(fam, key=lambda m: (fam[m], m))
    out = {k: (p, t, (min(v), max(v)) if v else None) for k, (p, t, v) in cells.items()}
    rates = {r["model"]: r["metrics"]["sink_rate"] for r in records
             if r["hypothesis"] == "H1" and isinstance(r.get("metrics", {}).get("sink_rate"), dict)}
    if rates:
        claims.append(SINK_RATE_ROW)
        out.update({(SINK_RATE_ROW, m): rate for m, rate in rates.items()})
    return claims, [(m, fam[m]) for m in models], out


def effect_text(label: str, eff: tuple | None) -> str:
    """The key effect of a cell: its value, or its range over the cell's cases (layers, k,
    targets), never a mean that hides both ends."""
    if eff is None:
        return ""
    lo, hi = eff
    return f" · {label} {lo:.3g}" if lo == hi else f" · {label} {lo:.3g}..{hi:.3g}"


def settings_line(r: dict) -> str:
    p = r.get("params", {})
    return (f"{r['model']} ({r.get('family', '?')}), {p.get('dataset')} {p.get('n_seqs')}x{p.get('seq_len')} tokens, "
            f"K={p.get('n_bands')}, {p.get('dtype')} on {p.get('device')}")


def figures_for(model: str, recs: list[dict]) -> list[tuple[str, bytes]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figs = []
    caption = settings_line(recs[0])

    def emit(fig, title):
        fig.suptitle(title, fontsize=10)
        fig.text(0.01, 0.005, caption, fontsize=7, color="#555")
        buf = io.BytesIO()
        fig.tight_layout(rect=(0, 0.04, 1, 0.95))
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        figs.append((title, buf.getvalue()))

    h2 = [r for r in recs if r["hypothesis"] == "H2" and r["metrics"].get("frontier", {}).get("omega_deltas")]
    if h2:
        by_layer = {r["layer"]: r["metrics"]["frontier"]["omega_deltas"] for r in h2}
        layers = sorted(by_layer)
        ks = sorted({int(k) for d in by_layer.values() for k in d})
        grid = np.array([[by_layer[l].get(str(k), np.nan) for k in ks] for l in layers], float)
        fig, ax = plt.subplots(figsize=(6, max(2.8, 0.8 + 0.35 * len(layers))))
        im = ax.imshow(grid, aspect="auto", cmap="magma_r", vmin=0)
        ax.set_xticks(range(len(ks)), [str(k) for k in ks], fontsize=7)
        ax.set_yticks(range(len(layers)), [str(l) for l in layers], fontsize=7)
        ax.set_xlabel("Ω_k: head bands 1..k kept, plus the dark tail")
        ax.set_ylabel("layer filtered")
        fig.colorbar(im, ax=ax, label="NLL increase (nats)")
        emit(fig, f"{model}: NLL increase under sink-preserving filters (layer x kept bands)")

    h1 = sorted((r for r in recs if r["hypothesis"] == "H1"), key=lambda r: r["layer"])
    if h1:
        layers = [r["layer"] for r in h1]
        fig, ax = plt.subplots(figsize=(6, 3))
        for metric, label in (("sink_mass_base", "unfiltered"), ("sink_mass_dark_all", "dark tail removed, all positions"),
                              ("sink_mass_dark_sink", "dark tail removed at the sink")):
            ax.plot(layers, [r["metrics"].get(metric) for r in h1], marker="o", label=label)
        ax.set_xlabel("layer filtered")
        ax.set_ylabel("post-filter sink mass")
        ax.legend(fontsize=7)
        emit(fig, f"{model}: post-filter sink mass per layer under each filter")
        if any("dark_ratio_sink" in r["metrics"] for r in h1):
            fig, ax = plt.subplots(figsize=(6, 3))
            ax.plot(layers, [r["metrics"].get("dark_ratio_sink") for r in h1], marker="o", label="sink (position 0)")
            ax.plot(layers, [r["metrics"].get("dark_ratio_ordinary") for r in h1], marker="s", label="ordinary positions")
            ax.set_yscale("log")
            ax.set_xlabel("layer")
            ax.set_ylabel("dark ratio ||P_K h|| / ||(I-P_K) h||")
            ax.legend(fontsize=7)
            emit(fig, f"{model}: dark-tail share of the sink vs ordinary positions")

    h3 = [r for r in recs if r["hypothesis"] == "H3" and r.get("claim") == "2" and r["metrics"].get("scatter_sample")]
    for r in h3:
        s = r["metrics"]["scatter_sample"]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        sink = np.array(s["sink_like"], bool)
        x, y = np.array(s["bar_ratio"]), np.array(s["dark_ratio"])
        ax.scatter(x[~sink], y[~sink], s=6, alpha=0.5, label="ordinary")
        ax.scatter(x[sink], y[sink], s=14, color="red", label="sink-like")
        ax.set_xscale("log")
        ax.set_xlabel("attention received / uniform causal")
        ax.set_ylabel("dark ratio")
        ax.legend(fontsize=7)
        emit(fig, f"{model} ({r.get('condition')}): attention received vs dark ratio (mean within-window ρ={r['metrics'].get('within_window_spearman', float('nan')):.2f})")
    return figs


def write_report(results_dir, expectations=None) -> tuple[Path, Path]:
    """`expectations` (an expect.Summary, optional) adds its as-expected/flipped/drifted/new/missing block.
    A missing, empty or unreadable folder raises a one-line SinkbenchError."""
    d = Path(results_dir)
    records = list(latest(load_results(d, "results folder")).values())
    claims, models, cells = matrix_rows(records)

    def cell(k, m):
        if (k, m) not in cells:
            return "–"
        if k == SINK_RATE_ROW:
            rate = cells[k, m]
            return f"INFO Sink_1 {rate['sink_1']:.2f} · max other {rate['max_other']:.2f} (ε={rate['epsilon']})"
        p, t, eff = cells[k, m]
        label = KEY_EFFECT.get(k, (None, ""))[1]
        return f"{'PASS' if p == t else 'FAIL' if p == 0 else 'MIXED'} {p}/{t}" + effect_text(label, eff)

    md = ["# sinkbench report", "", f"{len(records)} test cases from `{d / 'results.jsonl'}`.", "",
          "| claim | " + " | ".join(f"{m} ({f})" for m, f in models) + " |", "|---|" + "---|" * len(models)]
    md += [f"| {k} | " + " | ".join(cell(k, m) for m, _ in models) + " |" for k in claims]
    expect_lines = expectations.lines() if expectations is not None else []
    if expect_lines:
        md += ["", "## Expectations", "", "```", *expect_lines, "```"]
    fig_dir = d / "figures"
    fig_dir.mkdir(exist_ok=True)
    html_figs = []
    by_model = defaultdict(list)
    for r in records:
        by_model[r["model"]].append(r)
    for m, _ in models:
        md += ["", f"## {m}", "", settings_line(by_model[m][0])]
        for i, (title, png) in enumerate(figures_for(m, by_model[m])):
            name = f"{m.replace('/', '_')}-{i}.png"
            (fig_dir / name).write_bytes(png)
            md += ["", f"![{title}](figures/{name})"]
            html_figs.append((m, title, base64.b64encode(png).decode()))
    md_path = d / "report.md"
    md_path.write_text("\n".join(md) + "\n")

    rows = "".join(f"<tr><th>{html.escape(k)}</th>" + "".join(
        f"<td class='{cell(k, m).split()[0].lower()}'>{html.escape(cell(k, m))}</td>" for m, _ in models) + "</tr>" for k in claims)
    head = "".join(f"<th>{html.escape(m)}<br><small>{html.escape(f)}</small></th>" for m, f in models)
    figs = "".join(f"<figure><img alt='{html.escape(t)}' src='data:image/png;base64,{b}'><figcaption>{html.escape(t)}</figcaption></figure>"
                   for _, t, b in html_figs)
    expect_block = (f"<h2>Expectations</h2><pre id='expectations'>{html.escape(chr(10).join(expect_lines))}</pre>"
                    if expect_lines else "")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>sinkbench report</title><style>
body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:4px 8px;font-size:13px}}
td.pass{{background:#d8f5d8}} td.info{{background:#eef}} td.fail{{background:#f8d8d8}} td.mixed{{background:#f5f0c8}} figure{{display:inline-block;margin:1em}} img{{max-width:640px}}
</style></head><body><h1>sinkbench report</h1><p>{len(records)} test cases.</p>
<table id="matrix"><tr><th>claim</th>{head}</tr>{rows}</table>{expect_block}<h2>Figures</h2>{figs}</body></html>"""
    html_path = d / "report.html"
    html_path.write_text(page)
    return md_path, html_path
