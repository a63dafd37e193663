"""Compare two results.jsonl key by key, ignoring what is allowed to differ between two runs
of the same measurement (when the record was written, library versions).

    python benchmarks/compare_records.py OLD NEW [--measured] [--ignore PATTERN ...] [--tol X]

OLD and NEW are results folders or results.jsonl files. Records are paired by their case
(hypothesis, model, layer, claim, condition, target, variant, k); every leaf of each pair
is compared at its dotted path (metrics.per_window.base_nll.3). Numbers are equal when
|a - b| <= tol (default 0: bit-identical as written to JSON).

--measured leaves out what a statistical verdict function derives from the measurements
(p-values, intervals, verdicts, claim flags): use it when claims.py or stats.py differ
between the two runs, so that only the measured numbers (per-window arrays, means, NLLs,
sink masses) are compared.

Exit status: 0 equal, 1 some difference or unpaired case (unless --subset), 2 unreadable input."""
from __future__ import annotations

import argparse
import fnmatch
import json
import math
import sys
from pathlib import Path

CASE_FIELDS = ("hypothesis", "model", "layer", "claim", "condition", "target", "variant")
# Never a measurement: when the record was written, with which library versions, and how
# long a pass took on the wall clock (H7's regimes record their seconds).
ALWAYS_IGNORED = ("time", "versions", "versions.*", "*.seconds")
# Derived by the statistics (claims.py, stats.py) from the measured numbers.
STATISTICS = ("verdict", "*p_value*", "*.p_*", "p_*", "*_p", "*.holm*", "*_ci", "*_ci.*", "*.claim_*",
              "*passed*", "*.ci", "*.ci.*", "*windows_needed*", "*.power*", "*.n_boot*")


def load(path: str) -> list[dict]:
    p = Path(path)
    f = p / "results.jsonl" if p.is_dir() else p
    try:
        return [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        sys.exit(f"compare_records: cannot read {f}: {exc}")


def case_of(rec: dict) -> tuple:
    return tuple(rec.get(k) for k in CASE_FIELDS) + (rec.get("params", {}).get("k"),)


def leaves(x, path: str = ""):
    """(dotted path, value) of every leaf of a JSON value."""
    if isinstance(x, dict):
        for k, v in x.items():
            yield from leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from leaves(v, f"{path}.{i}")
        if not x:
            yield path, []
    else:
        yield path, x


def ignored(path: str, patterns) -> bool:
    # a pattern matches the path itself or any prefix of it (metrics.frontier ignores its leaves too)
    parts = path.split(".")
    prefixes = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatchcase(p, pat) for pat in patterns for p in prefixes)


def differ(a, b, tol: float) -> float | None:
    """None if equal; else |a - b| for two numbers, inf otherwise."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        if a == b or (math.isnan(a) and math.isnan(b)):
            return None
        d = abs(a - b)
        return None if d <= tol else d
    return None if a == b else math.inf


def compare(old: list[dict], new: list[dict], patterns, tol: float):
    """(pairs compared, leaves compared, differences [(case, path, old, new, diff)], unpaired cases)."""
    a = {case_of(r): r for r in old}
    b = {case_of(r): r for r in new}
    unpaired = sorted(set(a) ^ set(b), key=str)
    diffs, n_leaves = [], 0
    for case in sorted(set(a) & set(b), key=str):
        la = {p: v for p, v in leaves(a[case]) if not ignored(p, patterns)}
        lb = {p: v for p, v in leaves(b[case]) if not ignored(p, patterns)}
        for path in sorted(set(la) | set(lb)):
            n_leaves += 1
            if path not in la or path not in lb:
                diffs.append((case, path, la.get(path, "<absent>"), lb.get(path, "<absent>"), math.inf))
                continue
            d = differ(la[path], lb[path], tol)
            if d is not None:
                diffs.append((case, path, la[path], lb[path], d))
    return len(set(a) & set(b)), n_leaves, diffs, unpaired


def label(case: tuple) -> str:
    return " ".join(f"{n}={v}" for n, v in zip(CASE_FIELDS + ("k",), case) if v is not None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--measured", action="store_true", help="leave out p-values, intervals, verdicts, claim flags")
    ap.add_argument("--ignore", action="append", default=[], metavar="PATTERN",
                    help="dotted-path glob to leave out (repeatable), e.g. metrics.frontier")
    ap.add_argument("--tol", type=float, default=0.0, help="absolute tolerance for numbers (default 0)")
    ap.add_argument("--subset", action="store_true", help="cases only one side has (a run with -k) are listed, not a difference")
    ap.add_argument("--show", type=int, default=20, help="differences to list (default 20)")
    args = ap.parse_args(argv)
    patterns = list(ALWAYS_IGNORED) + args.ignore + (list(STATISTICS) if args.measured else [])
    pairs, n_leaves, diffs, unpaired = compare(load(args.old), load(args.new), patterns, args.tol)
    numeric = [d for *_, d in diffs if d != math.inf]
    largest = f" (largest numeric difference {max(numeric):.3g})" if numeric else ""
    print(f"{pairs} cases paired, {n_leaves} values compared, {len(diffs)} differ{largest}")
    for case, path, x, y, d in diffs[:args.show]:
        print(f"  {label(case)}  {path}: {json.dumps(x)[:60]} -> {json.dumps(y)[:60]}")
    if len(diffs) > args.show:
        print(f"  ... and {len(diffs) - args.show} more")
    print(f"{len(unpaired)} cases unpaired" + (" (allowed: --subset)" if args.subset and unpaired else ""))
    for case in unpaired[:args.show]:
        print(f"  unpaired: {label(case)}")
    return 1 if diffs or (unpaired and not args.subset) else 0


if __name__ == "__main__":
    sys.exit(main())
