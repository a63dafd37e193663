"""`sinkbench report DIR [DIR ...]`: report.md and a self-contained report.html (figures
embedded as base64 PNG) from results.jsonl. Matplotlib only.

One folder: the matrix (claims x models), then per model its figures and a table of every
case (layer, claim, verdict, the criterion's key numbers with their intervals, thresholds).
A checkpoint series in the run (records with `series` and `step`, from --models-file
[[series]]) gets its own section: the key metrics against the training step, verdicts
marked (filled = pass, open = fail), a claims x steps matrix and the step at which each
claim starts to hold. Several folders (nightly runs): the latest run's matrix, and per model
its key metrics over the runs and each case's verdicts over the runs; written into the
latest run's folder unless out= is given. The sections over time are drawn by
sinkbench.report_over_time, each hypothesis's figures by its unit (sinkbench.registry)."""
from __future__ import annotations

import base64
import html
import io
import math
from collections import defaultdict
from pathlib import Path

from .compare import case_id
from .findings import answers, criterion_text  # criterion_text: the thresholds as each record's params give them
from .registry import claim_titles, key_effects  # the number shown next to pass/fail in the matrix: claim -> (metric, label)

SINK_RATE_ROW = "sink rate (Gu et al.)"  # from the H1 records: Sink_1 and the largest other position's rate


def claim_key(r: dict) -> str:
    return r["hypothesis"] + (f"/{r['claim']}" if r.get("claim") else "")


def matrix_rows(records) -> tuple[list, list, dict]:
    """(claims, models grouped by family, cells): cell = (passed, total, key effect range over
    the cell's cases or None, fragile verdicts, the strongest case's effect with its interval)."""
    from .findings import effect_value, short_case, strongest

    cells = defaultdict(list)
    fam = {}
    for r in records:
        fam[r["model"]] = r.get("family", "?")
        cells[claim_key(r), r["model"]].append(r)
    claims = sorted({k for k, _ in cells})
    models = sorted(fam, key=lambda m: (fam[m], m))
    out = {}
    for key, recs in cells.items():
        metric = key_effects().get(key[0], (None,))[0]
        vals = [r.get("metrics", {}).get(metric) for r in recs]
        vals = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
        best = strongest(recs)
        value = effect_value(best)
        if len(recs) > 1 and value:  # the range over the cases, then the case that speaks for the cell
            shown = f"{'best' if best.get('verdict') == 'pass' else 'closest'} ({short_case(best)}): {value}"
        elif value:  # one case: its value and interval in place of the range
            vals, shown = [], value
        else:
            shown = ""
        out[key] = (sum(r["verdict"] == "pass" for r in recs), len(recs), (min(vals), max(vals)) if vals else None,
                    sum(bool(r.get("metrics", {}).get("fragile")) for r in recs), shown, key_effects().get(key[0], (None, ""))[1])
    rates = {r["model"]: r["metrics"]["sink_rate"] for r in records
             if r["hypothesis"] == "H1" and isinstance(r.get("metrics", {}).get("sink_rate"), dict)}
    if rates:
        claims.append(SINK_RATE_ROW)
        out.update({(SINK_RATE_ROW, m): rate for m, rate in rates.items()})
    return claims, [(m, fam[m]) for m in models], out


LEGEND = ("PASS: every case of the claim passes on that model; FAIL: none does; MIXED: some do (the model's case table "
          "says which); INFO: a descriptive number, no verdict. ~f: f of the cell's verdicts are fragile (the same "
          "verdict on fewer than 80% of resamples of the test windows, so another sample of the text may flip them). "
          "After the count: the claim's key effect (its range over the cell's cases: layers, targets, k), then the "
          "case that speaks for the cell (the strongest passing one, else the closest to passing) with its 95% interval.")


def effect_text(label: str, eff: tuple | None) -> str:
    """The key effect of a cell: its value, or its range over the cell's cases (layers, k,
    targets), never a mean that hides both ends."""
    if eff is None:
        return ""
    lo, hi = eff
    return f" · {label} {lo:.3g}" if lo == hi else f" · {label} {lo:.3g}..{hi:.3g}"


def claim_label(k: str) -> str:
    """A matrix row: the claim's code and its title."""
    title = claim_titles().get(k)
    return f"{k} · {title}" if title else k


def anchor(model: str) -> str:
    """An HTML id for a model's case table."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in model)


def settings_line(r: dict) -> str:
    p = r.get("params", {})
    return (f"{r['model']} ({r.get('family', '?')}), {p.get('dataset')} {p.get('n_seqs')}x{p.get('seq_len')} tokens, "
            f"K={p.get('n_bands')}, {p.get('dtype')} on {p.get('device')}, weights quantization {r.get('quantization', 'unknown')}")


def figures_for(model: str, recs: list[dict]) -> list[tuple[str, bytes]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = []
    caption = settings_line(recs[0])

    def emit(fig, title):
        import textwrap

        # wrapped to the figure's width (about 0.55 em per character), so no caption is clipped
        chars = lambda size: max(20, int(fig.get_size_inches()[0] * 72 / (0.55 * size)))
        head = textwrap.fill(title, chars(10))
        foot = textwrap.fill(caption, chars(7))
        fig.suptitle(head, fontsize=10)
        fig.text(0.01, 0.005, foot, fontsize=7, color="#555", va="bottom")
        buf = io.BytesIO()
        top, bottom = 1 - 0.05 * (head.count("\n") + 1), 0.04 * (foot.count("\n") + 1)
        fig.tight_layout(rect=(0, bottom, 1, top))
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        figs.append((title, buf.getvalue()))

    from .registry import units

    for unit in units().values():  # each hypothesis unit draws its own figures from its records
        if unit.figures is not None:
            for fig, title in unit.figures(plt, model, recs):
                emit(fig, title)
    return figs


# --------------------------------------------------------------------------- case tables
P_VALUES = ("p_value", "p_values", "p_vs_random", "p_vs_middle", "p_sink_mass_drop", "p_dark_sink")


def num(v) -> str:
    if v is None:  # NaN in the record (e.g. a ratio over a zero denominator)
        return "–"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return "nan"
    return f"{v:.3g}"


def case_text(r: dict) -> str:
    """What distinguishes a case within its claim: variant, condition, target, k."""
    parts = [f"{f} {r[f]}" for f in ("variant", "condition", "target") if r.get(f) is not None]
    k = r.get("params", {}).get("k")
    return ", ".join(parts + ([f"k {k}"] if k is not None else []))


def key_numbers(r: dict) -> str:
    """The criterion's key numbers: the claim's key effect first, then every metric with a 95%
    interval beside it (value [lo, hi]), then the Holm-adjusted p-values."""
    m = r.get("metrics", {})
    first = key_effects().get(claim_key(r), (None,))[0]
    names = [n[:-3] for n in m if n.endswith("_ci") and n[:-3] in m]
    names = ([first] if first in m else []) + sorted(n for n in names if n != first)
    out = []
    for n in names:
        ci = m.get(f"{n}_ci")
        ci_text = f" [{num(ci[0])}, {num(ci[1])}]" if isinstance(ci, list) and len(ci) == 2 and None not in ci else ""
        out.append(f"{n} {num(m[n])}{ci_text}")
    for n in ("dark_minus_control_ci",):  # an interval without its own value (H4-A2)
        if isinstance(m.get(n), list) and len(m[n]) == 2 and None not in m[n]:
            out.append(f"{n[:-3]} [{num(m[n][0])}, {num(m[n][1])}]")
    for n in P_VALUES:
        v = m.get(n)
        if isinstance(v, list):
            out.append(f"{n} " + "/".join(num(x) for x in v))
        elif isinstance(v, dict):
            out.append(f"{n} " + ", ".join(f"{k} {num(x)}" for k, x in v.items()))
        elif isinstance(v, (int, float)):
            out.append(f"{n} {num(v)}")
    return "; ".join(out)


def case_sort_key(r: dict):
    k = r.get("params", {}).get("k")
    return (r["hypothesis"], str(r.get("claim") or ""), r.get("step") if r.get("step") is not None else -1,
            r.get("layer") if r.get("layer") is not None else -1, k if isinstance(k, int) else -1, case_text(r))


def case_rows(recs: list[dict], history: dict | None = None, with_step: bool = False) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the every-case table. history: case_id -> verdicts over the runs."""
    header = (["step"] if with_step else []) + ["claim", "case", "layer", "verdict", "key numbers [95% interval]", "criterion"]
    if history is not None:
        header.append("verdicts over runs (oldest first)")
    rows = []
    for r in sorted(recs, key=case_sort_key):
        row = ([str(r.get("step", "–"))] if with_step else []) + [
            claim_key(r), case_text(r) or "–", "–" if r.get("layer") is None else str(r["layer"]),
            r["verdict"].upper(), key_numbers(r) or "–", criterion_text(r) or "–"]
        if history is not None:
            row.append(" ".join({"pass": "P", "fail": "F"}.get(v, "–") for v in history.get(case_id(r), [])))
        rows.append(row)
    return header, rows


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    esc = lambda t: str(t).replace("|", "\\|")
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]


def html_table(header: list[str], rows: list[list[str]], cls: str = "cases", verdict_col: int | None = None) -> str:
    out = [f"<table class='{cls}'><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        cells = []
        for i, c in enumerate(row):
            k = f" class='{c.lower()}'" if i == verdict_col and c in ("PASS", "FAIL") else ""
            cells.append(f"<td{k}>{html.escape(str(c))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out) + "</table>"


# --------------------------------------------------------------------------- series


# --------------------------------------------------------------------------- history


# --------------------------------------------------------------------------- the report
STYLE = """body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;margin:0.5em 0} td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}
td.pass{background:#d8f5d8} td.info{background:#eef} td.fail{background:#f8d8d8} td.mixed{background:#f5f0c8} figure{display:inline-block;margin:1em} img{max-width:100%}
table.cases td,table.cases th{font-size:11px;padding:2px 5px;vertical-align:top} table.cases td:nth-last-child(2){max-width:40em}
ul.emergence li{margin:2px 0} section{border-top:2px solid #ddd;margin-top:1.5em}
ul.answers li{margin:6px 0;max-width:70em;line-height:1.4} span.yes{color:#060;font-weight:bold} span.no{color:#a00;font-weight:bold}
span.partly{color:#860;font-weight:bold} th.claim{text-align:left;max-width:22em;font-weight:normal} #matrix td{max-width:18em}
#legend{font-size:12px;color:#444;max-width:70em} figure{max-width:100%} figcaption{font-size:12px;max-width:40em;overflow-wrap:anywhere}"""


def write_report(results_dir, expectations=None, out_dir=None) -> tuple[Path, Path]:
    """results_dir: one results folder, or several (nightly runs; a list, or a glob). The
    matrix and tables describe the latest run; with several runs each model also gets its
    key effects over the runs. Written into out_dir (default: the latest run's folder).
    `expectations` (an expect.Summary, optional) adds its as-expected/flipped/drifted/new/missing
    block. A missing, empty or unreadable folder raises a one-line SinkbenchError."""
    from .report_over_time import (emergence, history_figure, history_matrix, load_runs, series_figure, series_groups,
                                   series_table, step_matrix)

    runs = load_runs(results_dir)
    _, latest_dir, records = runs[-1]
    d = Path(out_dir) if out_dir is not None else latest_dir
    d.mkdir(parents=True, exist_ok=True)
    multi = len(runs) > 1
    history = None
    if multi:
        history = defaultdict(list)
        keys = {case_id(r) for r in records}
        for _, _, recs in runs:
            by = {case_id(r): r["verdict"] for r in recs}
            for k in keys:
                history[k].append(by.get(k))
    groups = series_groups(records)
    in_series = {r["model"] for rs in groups.values() for r in rs}
    plain = [r for r in records if r["model"] not in in_series]
    claims, models, cells = matrix_rows(plain) if plain else ([], [], {})

    def cell(k, m):
        if (k, m) not in cells:
            return "–"
        if k == SINK_RATE_ROW:
            rate = cells[k, m]
            learned = rate.get("learned_sink_mass")
            extra = f" · learned sinks absorb {learned['mean']:.2f}" if learned else ""
            return f"INFO Sink_1 {rate['sink_1']:.2f} · max other {rate['max_other']:.2f} (ε={rate['epsilon']}){extra}"
        p, t, eff, fragile, best, label = cells[k, m]
        head = f"{'PASS' if p == t else 'FAIL' if p == 0 else 'MIXED'} {p}/{t}" + (f" ~{fragile}" if fragile else "")
        if eff is None:
            return head + (f" · {label} {best}" if best else "")
        return head + effect_text(label, eff) + (f"; {best}" if best else "")

    src = f"`{latest_dir / 'results.jsonl'}`"
    intro = f"{len(records)} test cases from {src}" + (
        f", the latest of {len(runs)} runs ({', '.join(label for label, _, _ in runs)}, oldest first)." if multi else ".")
    md = ["# sinkbench report", "", intro, ""]
    said = answers(plain)
    answer_block = ""
    if said:
        md += ["## Answers", ""]
        parts = ["<section id='answers'><h2>Answers</h2>"]
        for m, _ in models:
            md += [f"### {m}", ""] + [f"* **{q}** {word}. {text} ([cases](#cases-{anchor(m)}))" for q, word, text in said[m]] + [""]
            parts.append(f"<h3>{html.escape(m)}</h3><ul class='answers'>" + "".join(
                f"<li><b>{html.escape(q)}</b> <span class='{word.split(',')[0].lower()}'>{html.escape(word)}</span>. "
                f"{html.escape(text)} <a href='#cases-{anchor(m)}'>cases</a></li>" for q, word, text in said[m]) + "</ul>")
        answer_block = "".join(parts) + "</section>"
    if models:
        md += ["## Matrix", "", "| claim | " + " | ".join(f"{m} ({f})" for m, f in models) + " |", "|---|" + "---|" * len(models)]
        md += [f"| {claim_label(k)} | " + " | ".join(cell(k, m) for m, _ in models) + " |" for k in claims]
        md += ["", LEGEND]
    if groups:
        md += ["", "Checkpoint series (their matrices are in their sections): "
               + ", ".join(f"{n} ({len({r['step'] for r in rs})} checkpoints)" for n, rs in groups.items()) + "."]
    history_block = ""
    if multi and models:
        header, rows = history_matrix(runs, [m for m, _ in models])
        md += ["", f"Passed/total over the {len(runs)} runs, oldest first:", ""] + md_table(header, rows)
        history_block = (f"<h2>Over the {len(runs)} runs</h2><p>passed/total per run, oldest first</p>"
                         + html_table(header, rows, cls="history"))
    expect_lines = expectations.lines() if expectations is not None else []
    if expect_lines:
        md += ["", "## Expectations", "", "```", *expect_lines, "```"]
    fig_dir = d / "figures"
    fig_dir.mkdir(exist_ok=True)
    sections = []  # html per section

    def save_fig(stem: str, i: int, title: str, png: bytes) -> str:
        name = f"{stem.replace('/', '_').replace('@', '_')}-{i}.png"
        (fig_dir / name).write_bytes(png)
        md.extend(["", f"![{title}](figures/{name})"])
        return (f"<figure><img alt='{html.escape(title)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
                f"<figcaption>{html.escape(title)}</figcaption></figure>")

    by_model = defaultdict(list)
    for r in plain:
        by_model[r["model"]].append(r)
    for m, fam in models:
        recs = by_model[m]
        md += ["", f"## {m}", "", settings_line(recs[0])]
        parts = [f"<section><h2>{html.escape(m)} <small>({html.escape(fam)})</small></h2><p>{html.escape(settings_line(recs[0]))}</p>"]
        figs = figures_for(m, recs)
        if multi:
            hf = history_figure(m, runs)
            if hf:
                figs = [hf] + figs
        parts += [save_fig(m, i, t, png) for i, (t, png) in enumerate(figs)]
        header, rows = case_rows(recs, history)
        md += ["", f"<a id='cases-{anchor(m)}'></a>Every case of {m}:", ""] + md_table(header, rows)
        parts.append(f"<h3 id='cases-{anchor(m)}'>Every case</h3>" + html_table(header, rows, verdict_col=3))
        sections.append("".join(parts) + "</section>")
    for name, recs in groups.items():
        fam = recs[0].get("family", "?")
        md += ["", f"## series {name}", "", f"{len({r['model'] for r in recs})} checkpoints of {name} ({fam}); "
               + settings_line(recs[0]).split(", ", 1)[1], ""]
        lines = emergence(recs)
        md += [f"* {x}" for x in lines]
        parts = [f"<section><h2>series {html.escape(name)} <small>({html.escape(fam)})</small></h2>"
                 f"<ul class='emergence'>" + "".join(f"<li>{html.escape(x)}</li>" for x in lines) + "</ul>"]
        title, png = series_figure(name, recs)
        parts.append(save_fig(f"series-{name}", 0, title, png))
        header, rows = series_table(recs)
        md += ["", "Key metrics per checkpoint:", ""] + md_table(header, rows)
        parts.append("<h3>Key metrics per checkpoint</h3>" + html_table(header, rows))
        header, rows = step_matrix(recs)
        md += ["", "Claims x steps:", ""] + md_table(header, rows)
        parts.append("<h3>Claims x steps</h3><table class='steps'><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
                     + "".join("<tr><th>" + html.escape(row[0]) + "</th>" + "".join(
                         f"<td class='{c.split()[0].lower() if c != '–' else ''}'>{html.escape(c)}</td>" for c in row[1:]) + "</tr>"
                         for row in rows) + "</table>")
        header, rows = case_rows(recs, history, with_step=True)
        md += ["", f"Every case of series {name}:", ""] + md_table(header, rows)
        parts.append("<h3>Every case</h3>" + html_table(header, rows, verdict_col=4))
        sections.append("".join(parts) + "</section>")
    md_path = d / "report.md"
    md_path.write_text("\n".join(md) + "\n")

    matrix = ""
    if models:
        rows = "".join(f"<tr><th class='claim'>{html.escape(claim_label(k))}</th>" + "".join(
            f"<td class='{cell(k, m).split()[0].lower()}'>{html.escape(cell(k, m))}</td>" for m, _ in models) + "</tr>" for k in claims)
        head = "".join(f"<th>{html.escape(m)}<br><small>{html.escape(f)}</small></th>" for m, f in models)
        matrix = f'<h2>Matrix</h2><table id="matrix"><tr><th>claim</th>{head}</tr>{rows}</table><p id="legend">{html.escape(LEGEND)}</p>'
    expect_block = (f"<h2>Expectations</h2><pre id='expectations'>{html.escape(chr(10).join(expect_lines))}</pre>"
                    if expect_lines else "")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>sinkbench report</title><style>
{STYLE}
</style></head><body><h1>sinkbench report</h1><p>{html.escape(intro.replace('`', ''))}</p>
{answer_block}{matrix}{history_block}{expect_block}{''.join(sections)}</body></html>"""
    html_path = d / "report.html"
    html_path.write_text(page)
    return md_path, html_path
