"""Regression comparison of two results directories (nightly runs).

A case is identified by hypothesis, claim, variant, condition, target, model,
layer and k. Reported: cases whose verdict changed, key metrics that moved outside
the old run's 95% interval (every metric that has a `<name>_ci` next to it), and
cases present in only one run. Any of these makes the comparison "dirty".

When the two runs used different settings (the records' `params`: windows, dataset,
alpha, thresholds, ...), every case may differ for that reason alone, so the
comparison names the settings in one line instead of listing every case."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sinkbench.errors import SinkbenchError
from sinkbench.read.results import read_jsonl

CASE_FIELDS = ("hypothesis", "claim", "variant", "condition", "target", "model", "layer")
# params that identify a case or are results (H5's chosen writer), not settings of the run
NOT_SETTINGS = frozenset({"k", "head_bands", "omega_bands", "condition", "target", "variant", "component", "uses_bos"})


def case_id(rec: dict) -> tuple:
    return tuple(rec.get(f) for f in CASE_FIELDS) + (rec.get("params", {}).get("k"),)


def case_label(key: tuple) -> str:
    names = CASE_FIELDS + ("k",)
    return " ".join(f"{n}={v}" for n, v in zip(names, key) if v is not None)


def load_results(path, what: str = "results") -> list[dict]:
    """The records of a results folder (or its results.jsonl). Missing, empty or unreadable
    is a one-line SinkbenchError: a comparison against nothing must never look clean."""
    p = Path(path)
    f = p if p.suffix == ".jsonl" else p / "results.jsonl"
    if not p.exists():
        raise SinkbenchError(f"{what} {path}: no such folder")
    if not f.is_file():
        raise SinkbenchError(f"{what} {path}: no results.jsonl there (write one with pytest hypotheses --results {path})")
    try:
        data = f.read_bytes()
    except OSError as exc:
        raise SinkbenchError(f"{what} {path}: cannot read {f.name} ({exc.strerror or exc})") from None
    if not data.strip():
        raise SinkbenchError(f"{what} {path}: {f.name} is empty")
    try:  # a corrupt or foreign line is named (file and line), never skipped: a comparison must not look clean
        records = read_jsonl(f, strict=True)
    except SinkbenchError as exc:
        raise SinkbenchError(f"{what} {path}: {exc}") from None
    if not records:
        raise SinkbenchError(f"{what} {path}: {f.name} has no readable sinkbench records")
    return records


def _show(v) -> str:
    text = v if isinstance(v, str) else json.dumps(v)
    return text if len(text) <= 40 else text[:37] + "..."  # window offsets etc.: enough to see they differ


def _flat(params: dict, prefix: str = "") -> dict:
    """{'windows': {'layout': 'spread'}} -> {'windows.layout': 'spread'}, so a difference names its field."""
    out = {}
    for k, v in params.items():
        if prefix or k not in NOT_SETTINGS:
            out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def settings_diff(old_params: dict, new_params: dict) -> list[tuple[str, object, object]]:
    """(name, old, new) for every setting recorded in both params that differs. A setting only
    one side records (a newer sinkbench added it) is not a difference."""
    a, b = _flat(old_params), _flat(new_params)
    return [(k, a[k], b[k]) for k in sorted(set(a) & set(b)) if a[k] != b[k]]


def settings_line(diffs: list[tuple[str, object, object]], old_name: str = "baseline", new_name: str = "this run") -> str:
    """'baseline used alpha=0.05, this run alpha=0.5' (each setting once, all values seen)."""
    olds: dict[str, list[str]] = {}
    news: dict[str, list[str]] = {}
    for k, o, n in diffs:
        for side, v in ((olds, o), (news, n)):
            if _show(v) not in side.setdefault(k, []):
                side[k].append(_show(v))

    def show(side: dict) -> str:
        return " and ".join(f"{k}={'|'.join(v)}" for k, v in side.items())

    return f"{old_name} used {show(olds)}, {new_name} {show(news)}"


def moved_metrics(old: dict, new: dict, tolerance: float = 0.0) -> list[tuple]:
    """(metric, old, new, lo, hi) for each metric with an `<name>_ci` in `old` whose new
    value falls outside that interval, widened on each side by tolerance x |old value|."""
    out = []
    for name, ci in old.items():
        if not name.endswith("_ci") or not isinstance(ci, list) or len(ci) != 2 or None in ci:
            continue
        metric = name[:-3]
        old_v, new_v = old.get(metric), new.get(metric)
        if not isinstance(old_v, (int, float)) or not isinstance(new_v, (int, float)):
            continue
        margin = tolerance * abs(old_v)
        if not ci[0] - margin <= new_v <= ci[1] + margin:
            out.append((metric, old_v, new_v, ci[0], ci[1]))
    return out


@dataclass
class Comparison:
    verdict_changes: list = field(default_factory=list)
    metric_moves: list = field(default_factory=list)
    only_old: list = field(default_factory=list)
    only_new: list = field(default_factory=list)
    settings: list = field(default_factory=list)  # (name, old, new) over the matched cases
    code: list = field(default_factory=list)  # (unit, field, old, new): the units' code that made the matched cases

    @property
    def clean(self) -> bool:
        return not (self.verdict_changes or self.metric_moves or self.only_old or self.only_new or self.settings or self.code)

    def lines(self, old_name: str = "baseline", new_name: str = "this run") -> list[str]:
        if self.code:  # other unit code made the cases: their differences are not the model's
            said = "; ".join(f"{u} {f} {_show(o)} -> {_show(n)}" for u, f, o, n in self.code)
            whose = "code" if any(u == "sinkbench" for u, *_ in self.code) else "unit code"
            return [f"{whose} differs: {said} ({old_name} -> {new_name}); its cases were computed by other code, "
                    "so they are not compared: rerun the baseline with this code"]
        if self.settings:
            # Differences are then mostly the settings' doing; listing every case would bury that.
            counts = (f"{len(self.verdict_changes)} verdicts changed, {len(self.metric_moves)} metrics moved, "
                      f"{len(self.only_old)} cases only in {old_name}, {len(self.only_new)} only in {new_name}")
            return [f"settings differ: {settings_line(self.settings, old_name, new_name)}",
                    f"({counts}; not listed: compare runs made with the same settings)"]
        out = [f"verdict {old} -> {new}: {case_label(k)}" for k, old, new in self.verdict_changes]
        out += [f"metric {m} moved {old:.4g} -> {new:.4g} (old 95% CI {lo:.4g}..{hi:.4g}): {case_label(k)}"
                for k, m, old, new, lo, hi in self.metric_moves]
        out += [f"only in {old_name}: {case_label(k)}" for k in self.only_old]
        out += [f"only in {new_name}: {case_label(k)}" for k in self.only_new]
        return out or ["no differences"]


def latest(records: list[dict]) -> dict:
    """Last record per case (a resumed or repeated run appends; the newest counts)."""
    return {case_id(r): r for r in records}


def compare_records(old: list[dict], new: list[dict]) -> Comparison:
    a, b = latest(old), latest(new)
    cmp = Comparison(only_old=sorted((k for k in a if k not in b), key=str), only_new=sorted((k for k in b if k not in a), key=str))
    for key in sorted(set(a) & set(b), key=str):
        ra, rb = a[key], b[key]
        if ra["verdict"] != rb["verdict"]:
            cmp.verdict_changes.append((key, ra["verdict"], rb["verdict"]))
        cmp.metric_moves += [(key, *m) for m in moved_metrics(ra.get("metrics", {}), rb.get("metrics", {}))]
        cmp.settings += [d for d in settings_diff(ra.get("params", {}), rb.get("params", {})) if d not in cmp.settings]
        cmp.code += [d for d in code_diff(ra, rb) if d not in cmp.code]
    return cmp


def code_diff(old: dict, new: dict) -> list[tuple]:
    """(unit, field, old, new) where two records of one case name other code: sinkbench's own
    version (the records' `versions`), and the unit's package, version, source sha256 (the
    record's `unit`). A record without them (older sinkbench) is not a difference."""
    def units(r):
        u = r.get("unit")
        return {x.get("name"): x for x in ([u] if isinstance(u, dict) else u or [])}

    a, b = units(old), units(new)
    made = [r.get("versions", {}).get("sinkbench") for r in (old, new)]
    # sinkbench's own version made the numbers too (issue 31: a baseline of another version is said so)
    out = [("sinkbench", "version", *made)] if None not in made and made[0] != made[1] else []
    return out + [(name, f, a[name].get(f), b[name].get(f)) for name in sorted(set(a) & set(b))
                  for f in ("package", "version", "source") if a[name].get(f) != b[name].get(f)]


def compare_dirs(old_dir: Path, new_dir: Path) -> Comparison:
    """Raises SinkbenchError (one line) when either folder is missing, empty or unreadable."""
    return compare_records(load_results(old_dir, "old run"), load_results(new_dir, "new run"))
