"""What the records say in words: the one-line finding a failing case prints (in place of a
traceback: a verdict that fails is a finding on that model, not a bug), a model's one-line
summary and matrix row once its cases are done, and the report's Answers (one paragraph per
model, each unit's question answered from its claims' verdicts and key effects).

Everything here reads records only (results.jsonl's dicts), never a model, so the terminal,
the report and a third-party unit's records get the same words. A unit's claim titles and
question come from its registration (sinkbench.registry: `claims`, `question`)."""
from __future__ import annotations

import math
from collections import defaultdict

from sinkbench.read.results import count_text
from sinkbench.registry import claim_titles, key_effects, units

# the parameters every record carries (Bench.params) and the case fields: what is left of a
# record's params are the criterion's settings (thresholds, a unit's own settings)
RUN_PARAMS = {"n_bands", "n_seqs", "seq_len", "dataset", "windows", "n_select", "units", "dtype", "device", "seeds",
              "basis", "uses_bos", "layers_grid", "k", "target", "variant", "condition", "claim", "component",
              "bands", "positions", "head_bands", "omega_bands", "designated_layers", "control_position"}
FRAGILE_BELOW = 0.8  # sinkbench.stats.stability: a verdict the same on fewer resamples than this is fragile


def claim_key(r: dict) -> str:
    return r["hypothesis"] + (f"/{r['claim']}" if r.get("claim") else "")


def num(v) -> str:
    if v is None:  # NaN in the record (a ratio over a zero denominator)
        return "nan"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if v != v else ("inf" if v > 0 else "-inf")
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e6:  # 2000.0 -> '2000', not '2e+03'
        return str(int(v))
    return f"{v:.3g}"


def interval(m: dict, name: str) -> str:
    """' [lo, hi]' when the record has a finite 95% interval for metric `name`, else ''."""
    ci = m.get(f"{name}_ci")
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(x, (int, float)) and math.isfinite(x) for x in ci):
        return f" [{num(ci[0])}, {num(ci[1])}]"
    return ""


def effect_value(r: dict) -> str:
    """The claim's key effect as 'value [lo, hi]' ('' when the unit declares none or the record lacks it)."""
    metric = key_effects().get(claim_key(r), (None,))[0]
    m = r.get("metrics", {})
    v = m.get(metric) if metric is not None else None
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return ""
    return f"{num(v)}{interval(m, metric)}"


def key_effect(r: dict) -> str:
    """The claim's key effect with its label and interval, e.g. 'capture× 3.87 [1.82, 6.01]'."""
    value = effect_value(r)
    return f"{key_effects()[claim_key(r)][1]} {value}" if value else ""


def thresholds(r: dict) -> dict:
    """The criterion's settings as the record's params give them: every scalar parameter that
    is not a run setting or a case field (sinkbench's thresholds and a unit's own)."""
    p = r.get("params", {})
    return {k: v for k, v in p.items() if k not in RUN_PARAMS and isinstance(v, (int, float)) and not isinstance(v, bool)}


def criterion_text(r: dict) -> str:
    return ", ".join(f"{k} {num(v)}" for k, v in thresholds(r).items())


def short_case(r: dict) -> str:
    """A case in a few characters: 'L15 middle add', 'nobos', 'k 10'."""
    parts = [f"L{r['layer']}"] if r.get("layer") is not None else []
    parts += [str(r[f]) for f in ("condition", "target", "variant") if r.get(f) is not None]
    k = r.get("params", {}).get("k")
    return " ".join(parts + ([f"k{k}"] if k is not None else []))


def untestable(recs: list[dict]) -> str:
    """The reason a claim could not be tested on this model (every record says not present, or
    every one is `not_testable` on these windows), or ''."""
    reasons = [r.get("metrics", {}).get("reason") for r in recs]
    if all(r.get("metrics", {}).get("present") is False for r in recs) and reasons[0]:
        return reasons[0]
    why = [r.get("metrics", {}).get("not_testable") for r in recs]
    if all(why):
        return why[0]
    return ""


def case_text(r: dict) -> str:
    """What distinguishes a case within its claim: layer, variant, condition, target, k."""
    parts = [f"layer {r['layer']}"] if r.get("layer") is not None else []
    parts += [f"{f} {r[f]}" for f in ("variant", "condition", "target") if r.get(f) is not None]
    k = r.get("params", {}).get("k")
    return ", ".join(parts + ([f"k {k}"] if k is not None else []))


def p_text(m: dict) -> str:
    """The case's Holm-adjusted p-value; for a verdict that needs several tests to reject (a
    list or dict of p-values, or several p_* metrics), the largest: the one that binds."""
    if isinstance(m.get("p_value"), (int, float)) and not isinstance(m.get("p_value"), bool):
        return f"Holm p {num(m['p_value'])}"
    ps = {}
    for k, v in m.items():
        if not k.startswith("p_") or k.endswith("_raw") or "_raw_" in k:
            continue
        vals = v if isinstance(v, list) else list(v.values()) if isinstance(v, dict) else [v]
        vals = [x for x in vals if isinstance(x, (int, float)) and not isinstance(x, bool) and x == x]
        if vals:
            ps[k] = max(vals)
    if not ps:
        return ""
    name = max(ps, key=ps.get)
    return f"largest Holm p {num(ps[name])} ({name})"


def windows_text(m: dict) -> str:
    n, used, nan = m.get("n_windows"), m.get("n_informative"), m.get("n_nan")
    if n is None:
        return ""
    out = f"{used if used is not None else n}/{n} windows"
    return out + (f", {nan} NaN" if nan else "")


def is_fragile(r: dict) -> bool:
    return bool(r.get("metrics", {}).get("fragile"))


def stability_text(r: dict) -> str:
    s = r.get("metrics", {}).get("verdict_stability")
    return f"fragile: the same verdict on {num(100 * s)}% of window resamples" if is_fragile(r) and isinstance(s, (int, float)) else ""


def tail_text(r: dict) -> str:
    """Said of a case whose contrasts have heavier tails than its tests were calibrated for."""
    m = r.get("metrics", {})
    if not m.get("outside_calibrated_range"):
        return ""
    return (f"tails outside the calibrated range (largest window {num(m.get('largest_window_share'))} of the sum, "
            f"skewness {num(m.get('skewness_min'))})")


def failed_parts(m: dict) -> list[str]:
    """Sub-claims a record holds as booleans (H1's claim_a, claim_b) that failed."""
    return [k[len("claim_"):] for k, v in m.items() if k.startswith("claim_") and v is False]


def finding_line(r: dict) -> str:
    """One line for a case: what failed (or passed), on what, by how much, on how many windows.
    e.g. 'H4/A1 FAILS on smollm2-135m (layer 15, variant add, target middle): a dark write draws
    the sink's attention to the target · capture× 2.1 [1.4, 2.9] · need rho 3 · Holm p 0.21 · 16/16 windows'"""
    m = r.get("metrics", {})
    key = claim_key(r)
    # a case its windows could not test is recorded as failed but is no finding against the
    # claim: its line says NOT TESTABLE, as the report's cell does, never FAILS
    untested = r.get("verdict") != "pass" and bool(m.get("not_testable"))
    verb = "holds" if r.get("verdict") == "pass" else "NOT TESTABLE" if untested else "FAILS"
    title = claim_titles().get(key) or next((u.title for u in units().values() if u.hypothesis == r["hypothesis"]), "")
    where = case_text(r)
    head = f"{key} {verb} on {r['model']}" + (f" ({where})" if where else "") + (f": {title}" if title else "")
    parts = failed_parts(m)
    if parts and verb == "FAILS":
        head += f" (fails: {', '.join(parts)})"
    if m.get("reason"):  # a claim that could not be tested (H6 without massive activations)
        head += f" ({m['reason']})"
    elif untested:  # why: too few informative windows (H3), a constant contrast (H6 b-mean)
        head += f" ({m['not_testable']})"
    need = criterion_text(r)
    bits = [key_effect(r), f"criterion {need}" if need else "", p_text(m), windows_text(m), stability_text(r), tail_text(r)]
    return " · ".join([head] + [b for b in bits if b])


def cell_counts(records: list[dict]) -> dict:
    """claim key -> [passed, total, fragile, not testable] over records."""
    cells: dict = defaultdict(lambda: [0, 0, 0, 0])
    for r in records:
        c = cells[claim_key(r)]
        c[0] += r.get("verdict") == "pass"
        c[1] += 1
        c[2] += is_fragile(r)
        c[3] += bool(r.get("metrics", {}).get("not_testable"))
    return cells



def model_summary(model: str, records: list[dict], seconds: float | None = None) -> str:
    """'smollm2-135m: 23 of 45 cases pass (3 fragile) · H1 3/3 · H2/a 1/3 ~1 · ...' over its records."""
    recs = [r for r in records if r.get("model") == model]
    cells = cell_counts(recs)
    passed = sum(c[0] for c in cells.values())
    fragile = sum(c[2] for c in cells.values())
    untested = sum(c[3] for c in cells.values())
    took = f" in {seconds / 60:.1f} min" if seconds is not None else ""
    notes = [f"{fragile} fragile"] * bool(fragile) + [f"{untested} not testable"] * bool(untested)
    head = f"{model}: {passed} of {len(recs)} cases pass" + (f" ({', '.join(notes)})" if notes else "") + took
    return " · ".join([head] + [f"{k} {count_text(p, t, u)}" + (f" ~{f}" if f else "") for k, (p, t, f, u) in sorted(cells.items())])


# --------------------------------------------------------------------------- the Answers
def unit_of(r: dict):
    """The registered unit that made a record: by its claim code, else by its hypothesis."""
    key = claim_key(r)
    for u in units().values():
        if key in u.claims or key in u.key_effects:
            return u
    return next((u for u in units().values() if u.hypothesis == r["hypothesis"]), None)


def strongest(recs: list[dict]) -> dict:
    """The case that speaks for a claim: among the passing cases (or all, when none passes)
    the one with the largest key effect (ties and missing effects: the first)."""
    pool = [r for r in recs if r.get("verdict") == "pass"] or recs
    metric = key_effects().get(claim_key(pool[0]), (None,))[0]

    def size(r):
        v = r.get("metrics", {}).get(metric)
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v else -math.inf

    return max(pool, key=size)


def claim_sentence(recs: list[dict]) -> str:
    """One claim on one model in words: whether it holds, in how many cases, how fragile, and
    the case that speaks for it with its key effect and interval."""
    key = claim_key(recs[0])
    title = claim_titles().get(key, key)
    passed = sum(r.get("verdict") == "pass" for r in recs)
    fragile = [r for r in recs if is_fragile(r)]
    n = len(recs)
    if passed == n:
        verdict = "holds" if n == 1 else f"holds in all {n} cases"
    elif passed == 0:
        verdict = "does not hold" if n == 1 else f"holds in none of its {n} cases"
    else:
        verdict = f"holds in {passed} of {n} cases"
    why = untestable(recs)
    if why:  # recorded as a failure: the claim needs what this model does not have
        return f"{title} ({key}) cannot be tested on this model, so it fails: {why}"
    best = strongest(recs)
    eff = key_effect(best)
    where = case_text(best)
    said = f"{title} ({key}) {verdict}"
    if fragile:
        said += (", but fragile" if passed else ", fragile") + f" ({len(fragile)} of {n} verdicts flip on over a fifth of window resamples)"
    heavy = sum(bool(r.get("metrics", {}).get("outside_calibrated_range")) for r in recs)
    if heavy:
        said += f" ({heavy} of {n} cases have tails outside the range where the tests are calibrated)"
    if eff:
        said += f": {'best' if passed else 'closest'} case{' ' + where if where else ''}, {eff}"
    elif best.get("metrics", {}).get("reason"):
        said += f": {best['metrics']['reason']}"
    answer = best.get("metrics", {}).get("answer")  # a claim that answers its question in words (H7(e): the ladder)
    if isinstance(answer, str) and answer:
        said += f". In words: {answer}"
    return said


def answer_word(recs: list[dict]) -> str:
    passed = sum(r.get("verdict") == "pass" for r in recs)
    if passed == len(recs):
        return "Yes" if not any(is_fragile(r) for r in recs) else "Yes, but fragile"
    return "No" if passed == 0 else "Partly"


def answers(records: list[dict]) -> dict[str, list[tuple[str, str, str]]]:
    """model -> [(question, one-word answer, sentence)] for each unit with records on it, in
    the registry's order. Units sharing a question (H4-A, H4-B) keep their own sentences."""
    order = list(units().values())
    out: dict = {}
    by_model: dict = defaultdict(lambda: defaultdict(list))
    for r in records:
        u = unit_of(r)
        by_model[r["model"]][u.name if u is not None else r["hypothesis"]].append(r)
    for model, by_unit in by_model.items():
        rows = []
        for name in sorted(by_unit, key=lambda n: next((i for i, u in enumerate(order) if u.name == n), len(order))):
            recs = by_unit[name]
            u = units().get(name)
            question = (u.question if u is not None and u.question else f"Does {name} hold" +
                        (f" ({u.title})?" if u is not None else "?"))
            by_claim: dict = defaultdict(list)
            for r in recs:
                by_claim[claim_key(r)].append(r)
            whys = {untestable(rs) for rs in by_claim.values()}
            if len(whys) == 1 and "" not in whys:  # one reason for every claim: say it once
                rows.append((f"{name}: {question}", answer_word(recs), f"Cannot be tested on this model, so every claim fails: {whys.pop()}."))
                continue
            sentences = [claim_sentence(rs) for _, rs in sorted(by_claim.items())]
            sentences = [x[:1].upper() + x[1:] for x in sentences]
            rows.append((f"{name}: {question}", answer_word(recs), "; ".join(sentences) + "."))
        out[model] = rows
    return out
