"""Regression comparison of two results directories (nightly runs).

A case is identified by hypothesis, claim, variant, condition, target, model,
layer and k. Reported: cases whose verdict changed, key metrics that moved outside
the old run's 95% interval (every metric that has a `<name>_ci` next to it), and
cases present in only one run. Any of these makes the comparison "dirty"."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .results import read_jsonl

CASE_FIELDS = ("hypothesis", "claim", "variant", "condition", "target", "model", "layer")


def case_id(rec: dict) -> tuple:
    return tuple(rec.get(f) for f in CASE_FIELDS) + (rec.get("params", {}).get("k"),)


def case_label(key: tuple) -> str:
    names = CASE_FIELDS + ("k",)
    return " ".join(f"{n}={v}" for n, v in zip(names, key) if v is not None)


@dataclass
class Comparison:
    verdict_changes: list = field(default_factory=list)
    metric_moves: list = field(default_factory=list)
    only_old: list = field(default_factory=list)
    only_new: list = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.verdict_changes or self.metric_moves or self.only_old or self.only_new)

    def lines(self) -> list[str]:
        out = [f"verdict {old} -> {new}: {case_label(k)}" for k, old, new in self.verdict_changes]
        out += [f"metric {m} moved {old:.4g} -> {new:.4g} (old 95% CI {lo:.4g}..{hi:.4g}): {case_label(k)}"
                for k, m, old, new, lo, hi in self.metric_moves]
        out += [f"only in old run: {case_label(k)}" for k in self.only_old]
        out += [f"only in new run: {case_label(k)}" for k in self.only_new]
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
        ma, mb = ra.get("metrics", {}), rb.get("metrics", {})
        for name, ci in ma.items():
            if not name.endswith("_ci") or not isinstance(ci, list) or None in ci:
                continue
            metric = name[:-3]
            old_v, new_v = ma.get(metric), mb.get(metric)
            if not isinstance(old_v, (int, float)) or not isinstance(new_v, (int, float)):
                continue
            if not ci[0] <= new_v <= ci[1]:
                cmp.metric_moves.append((key, metric, old_v, new_v, ci[0], ci[1]))
    return cmp


def compare_dirs(old_dir: Path, new_dir: Path) -> Comparison:
    return compare_records(read_jsonl(Path(old_dir) / "results.jsonl"), read_jsonl(Path(new_dir) / "results.jsonl"))
