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
sinkbench.read.report, each hypothesis's figures by its unit (sinkbench.registry)."""
from __future__ import annotations

import base64
import glob
import html
import io
import math
from collections import defaultdict
from pathlib import Path

from sinkbench.errors import SinkbenchError
from sinkbench.read.compare import case_id, latest, load_results
from sinkbench.read.results import not_testable
from sinkbench.read.findings import answers, criterion_text  # criterion_text: the thresholds as each record's params give them
from sinkbench.registry import claim_titles, key_effects  # the number shown next to pass/fail in the matrix: claim -> (metric, label)

SINK_RATE_ROW = "sink rate (Gu et al.)"  # from the H1 records: Sink_1 and the largest other position's rate


def claim_key(r: dict) -> str:
    return r["hypothesis"] + (f"/{r['claim']}" if r.get("claim") else "")


def matrix_rows(records) -> tuple[list, list, dict]:
    """(claims, models grouped by family, cells): cell = (passed, total, key effect range over
    the cell's cases or None, fragile verdicts, the strongest case's effect with its interval)."""
    from sinkbench.read.findings import effect_value, short_case, strongest

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
                    sum(bool(r.get("metrics", {}).get("fragile")) for r in recs), shown, key_effects().get(key[0], (None, ""))[1],
                    sum(bool(r.get("metrics", {}).get("outside_calibrated_range")) for r in recs),
                    sum(not_testable(r) for r in recs))
    rates = {r["model"]: r["metrics"]["sink_rate"] for r in records
             if r["hypothesis"] == "H1" and isinstance(r.get("metrics", {}).get("sink_rate"), dict)}
    if rates:
        claims.append(SINK_RATE_ROW)
        out.update({(SINK_RATE_ROW, m): rate for m, rate in rates.items()})
    return claims, [(m, fam[m]) for m in models], out


LEGEND = ("PASS: every case of the claim passes on that model; FAIL: none does; MIXED: some do (the model's case table "
          "says which); INFO: a descriptive number, no verdict. ~f: f of the cell's verdicts are fragile (the same "
          "verdict on fewer than 80% of resamples of the test windows, so another sample of the text may flip them). "
          "!o: o of the cell's cases have per-window contrasts with tails heavier than the range where the tests' "
          "false-pass rate was measured (a window carrying an outsized share of the sum, or a long skew). "
          "NOT TESTABLE: no case of the cell could be tested on these windows (too few informative windows, a constant "
          "contrast), recorded as failed, never a pass; ?u: u of the cell's cases were not testable. "
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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(plt, fig, title: str, caption: str) -> tuple[str, bytes]:
    """(title, PNG bytes): the title and the settings caption wrapped to the figure's width."""
    import textwrap

    # wrapped to the figure's width (about 0.55 em per character), so no caption is clipped
    chars = lambda size: max(20, int(fig.get_size_inches()[0] * 72 / (0.55 * size)))  # noqa: E731
    head = textwrap.fill(title, chars(10))
    foot = textwrap.fill(caption, chars(7))
    fig.suptitle(head, fontsize=10)
    fig.text(0.01, 0.005, foot, fontsize=7, color="#555", va="bottom")
    buf = io.BytesIO()
    top, bottom = 1 - 0.05 * (head.count("\n") + 1), 0.04 * (foot.count("\n") + 1)
    fig.tight_layout(rect=(0, bottom, 1, top))
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return title, buf.getvalue()


def figures_for(model: str, recs: list[dict]) -> list[tuple[str, bytes]]:
    """One model's figures, each hypothesis unit drawing its own from the model's records."""
    from sinkbench.registry import units

    plt = _pyplot()
    return [_png(plt, fig, title, settings_line(recs[0]))
            for unit in units().values() if unit.figures is not None for fig, title in unit.figures(plt, model, recs)]


def figures_across(by_model: dict[str, list[dict]]) -> list[tuple[str, bytes]]:
    """The figures over every model of the run (a unit's figures_across: one line per model)."""
    from sinkbench.registry import units

    plt = _pyplot()
    caption = "; ".join(f"{m}: {settings_line(recs[0])}" for m, recs in by_model.items() if recs)
    return [_png(plt, fig, title, caption)
            for unit in units().values() if unit.figures_across is not None for fig, title in unit.figures_across(plt, by_model)]


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


def readable(value):
    """A record's text as text every writer can encode (UTF-8 files, matplotlib's font engine).
    A path or model name that was not UTF-8 reaches Python as lone surrogates (surrogateescape);
    they are shown as their bytes, \\xNN, instead of crashing the report."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            try:  # the bytes the name had on disk, each undecodable one as \xNN
                return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            except UnicodeEncodeError:  # a surrogate no byte maps to: its code point
                return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {readable(k): readable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [readable(v) for v in value]
    return value


NAME_FIELDS = ("model", "family", "series", "hypothesis", "claim", "verdict")


def tidy(record: dict) -> dict:
    """A record as the report reads it: readable text, and its names as strings (a hand-edited
    or foreign record's `family = 3` would otherwise be sorted against strings)."""
    r = readable(record)
    for f in NAME_FIELDS:
        if r.get(f) is not None and not isinstance(r[f], str):
            r[f] = str(r[f])
    return r


def _out_folder(d: Path) -> None:
    """The report's folder, created if missing; one line when it cannot be (a file by that name,
    a parent that is a file, no permission)."""
    if d.exists() and not d.is_dir():
        raise SinkbenchError(f"--out {readable(str(d))}: a file, not a folder; name a folder (it is created if missing)")
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SinkbenchError(f"cannot create the report folder {readable(str(d))} ({exc.strerror or type(exc).__name__}); "
                             "name a folder you can write (--out DIR)") from None


def _write(path: Path, data: str | bytes) -> None:
    """One file of the report; a failed write is one line naming it (full disk, read-only folder)."""
    try:
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
    except OSError as exc:
        raise SinkbenchError(f"cannot write {readable(str(path))} ({exc.strerror or type(exc).__name__}); "
                             "name a folder you can write (--out DIR)") from None


def write_report(results_dir, expectations=None, out_dir=None) -> tuple[Path, Path]:
    """results_dir: one results folder, or several (nightly runs; a list, or a glob). The
    matrix and tables describe the latest run; with several runs each model also gets its
    key effects over the runs. Written into out_dir (default: the latest run's folder).
    `expectations` (an expect.Summary, optional) adds its as-expected/flipped/drifted/new/missing
    block. A missing, empty or unreadable folder, or an out_dir that cannot be written (a file
    by that name), raises a one-line SinkbenchError."""
    runs = [(readable(label), d, [tidy(r) for r in recs]) for label, d, recs in load_runs(results_dir)]
    _, latest_dir, records = runs[-1]
    d = Path(out_dir) if out_dir is not None else latest_dir
    _out_folder(d)
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
        p, t, eff, fragile, best, label, tails, untested = cells[k, m]
        word = "NOT TESTABLE" if untested == t else "PASS" if p == t else "FAIL" if p == 0 else "MIXED"
        head = (f"{word} {p}/{t}" + (f" ?{untested}" if untested and untested < t else "") + (f" ~{fragile}" if fragile else "")
                + (f" !{tails}" if tails else ""))
        if eff is None:
            return head + (f" · {label} {best}" if best else "")
        return head + effect_text(label, eff) + (f"; {best}" if best else "")

    src = f"`{readable(str(latest_dir / 'results.jsonl'))}`"
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
    expect_lines = [readable(line) for line in expectations.lines()] if expectations is not None else []
    if expect_lines:
        md += ["", "## Expectations", "", "```", *expect_lines, "```"]
    fig_dir = d / "figures"
    _out_folder(fig_dir)
    sections = []  # html per section

    def save_fig(stem: str, i: int, title: str, png: bytes) -> str:
        name = f"{stem.replace('/', '_').replace('@', '_')}-{i}.png"
        _write(fig_dir / name, png)
        md.extend(["", f"![{title}](figures/{name})"])
        return (f"<figure><img alt='{html.escape(title)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
                f"<figcaption>{html.escape(title)}</figcaption></figure>")

    by_model = defaultdict(list)
    for r in plain:
        by_model[r["model"]].append(r)
    across = figures_across({m: by_model[m] for m, _ in models}) if len(models) > 1 else []
    if across:
        md += ["", "## Across models"]
        sections.append("<section><h2>Across models</h2>" + "".join(
            save_fig("across", i, title, png) for i, (title, png) in enumerate(across)) + "</section>")
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
    _write(md_path, "\n".join(md) + "\n")

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
    _write(html_path, page)
    return md_path, html_path


# --------------------------------------------------------------------------- over time
# A checkpoint series (records with `series` and `step`, from --models-file [[series]]: key metrics
# against the training step, a claims x steps matrix, the step at which each claim starts to hold)
# and nightly runs (several results folders: each model's key effects and each case's verdicts over the runs).


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
