"""The `sinkbench` console script: compare two results directories, report one (or several
nightly runs: the latest, with each model's history), or write the expectations of one. Exit codes: 0 fine, 1 differences (compare), 2 bad input (a
missing, empty or unreadable folder or file: one line on stderr, never a clean result)."""
from __future__ import annotations

import argparse
import sys

from .errors import SinkbenchError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sinkbench")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare", help="list verdict changes, metrics outside the old CI and unmatched cases; exit 1 if any")
    c.add_argument("old")
    c.add_argument("new")
    r = sub.add_parser("report", help="write DIR/report.md and a self-contained DIR/report.html; with several run "
                                      "folders (or a quoted glob), each model's key metrics over the runs too")
    r.add_argument("dir", nargs="+", help="a results folder; several (nightly runs, oldest to newest by their records' "
                                          "time) add the history; the report describes the latest")
    r.add_argument("--out", metavar="DIR", default=None, help="where to write the report (default: the latest run's folder)")
    r.add_argument("--expect", metavar="OLD", help="expected.toml or results folder: add the as-expected/flipped/drifted/new/missing block")
    r.add_argument("--expect-tolerance", metavar="R", type=float, default=0.0,
                   help="widen each expected interval by R x |expected value| on each side (default 0)")
    e = sub.add_parser("expect", help="print an expected.toml (verdicts, key metrics and intervals) for RESULTS; review and commit it")
    e.add_argument("results")
    args = ap.parse_args(argv)
    try:
        return run(args)
    except SinkbenchError as exc:
        print(f"sinkbench {args.cmd}: error: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    if args.cmd == "compare":
        from .compare import compare_dirs

        cmp = compare_dirs(args.old, args.new)
        print("\n".join(cmp.lines(args.old, args.new)))
        return 0 if cmp.clean else 1
    if args.cmd == "expect":
        from .compare import load_results
        from .expect import to_toml

        sys.stdout.write(to_toml(load_results(args.results), args.results))
        return 0
    from .report import write_report

    summary = None
    if args.expect:
        from .compare import load_results
        from .expect import load, summarize

        from .report import load_runs

        expected = load(args.expect)  # before the figures: a bad --expect fails fast
        newest = load_runs(args.dir)[-1][1]  # the expectations are checked against the latest run
        summary = summarize(expected, load_results(newest), args.expect_tolerance, args.expect)
    md, html = write_report(args.dir, summary, out_dir=args.out)
    if summary is not None:
        print("\n".join(summary.lines()))
    print(f"wrote {md} and {html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
