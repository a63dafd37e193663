"""The `sinkbench` console script: compare two results directories, or report one."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sinkbench")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare", help="list verdict changes, metrics outside the old CI and unmatched cases; exit 1 if any")
    c.add_argument("old")
    c.add_argument("new")
    r = sub.add_parser("report", help="write DIR/report.md and a self-contained DIR/report.html")
    r.add_argument("dir")
    args = ap.parse_args(argv)
    if args.cmd == "compare":
        from .compare import compare_dirs

        cmp = compare_dirs(args.old, args.new)
        print("\n".join(cmp.lines()))
        return 0 if cmp.clean else 1
    from .report import write_report

    md, html = write_report(args.dir)
    print(f"wrote {md} and {html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
