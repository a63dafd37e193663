"""The `sinkbench` console script (also `python -m sinkbench`): run the bundled hypotheses
(`sinkbench run [pytest args]`, from any folder), compare two results directories, report one
(or several nightly runs: the latest, with each model's history), or write the expectations
of one. Exit codes: 0 fine, 1 differences (compare), 2 bad input (a missing, empty or
unreadable folder or file: one line on stderr, never a clean result); `run` exits with
pytest's codes (0 all passed, 1 some failed, 2 interrupted or bad input, 4 usage error,
5 nothing collected)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sinkbench.errors import SinkbenchError


def run_hypotheses(args: list[str]) -> int:
    """pytest over the bundled hypotheses with ARGS, any option of a repository run included.
    The rootdir is the current folder: its pyproject.toml's [tool.sinkbench] (if any) sets the
    defaults, and pytest's cache goes there, not into the installed package. The plugin is
    already loaded through its pytest11 entry point (unless PYTEST_DISABLE_PLUGIN_AUTOLOAD)."""
    import pytest

    plugins = []
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        from sinkbench.run import plugin

        plugins.append(plugin)
    # What the repository's [tool.pytest.ini_options] sets; the user's ARGS come after and win.
    quiet = ["-W", "ignore::DeprecationWarning", "-W", "ignore::FutureWarning"]
    try:
        pyproject_check(Path.cwd())
    except SinkbenchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 4
    try:  # third-party units' own test modules (Hypothesis.test_module): their tests, with their node ids
        from sinkbench.registry import own_test_files
        from sinkbench.run.plugin import hypotheses_dir

        own = own_test_files()
    except SinkbenchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 4
    return int(pytest.main([str(hypotheses_dir()), *own, f"--rootdir={os.getcwd()}", *config_file(args), *quiet, *args],
                           plugins=plugins))


def pyproject_check(root: Path) -> None:
    """The current folder's pyproject.toml, read as pytest and sinkbench will read it, before
    pytest does: pytest parses it before any plugin loads, and a byte that is not UTF-8 or a
    `tool` or `tool.pytest` that is not a table ends there in its traceback (exit 1), out of the
    plugin's reach. One line (SinkbenchError) naming the file and the fix instead."""
    from sinkbench.measure.config import load_pyproject_defaults

    path = root / "pyproject.toml"
    if not path.is_file():
        return
    load_pyproject_defaults(root)  # UTF-8, TOML, [tool.sinkbench] a table of known keys
    import tomllib

    tool = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {})
    if isinstance(tool, dict) and "pytest" in tool and not isinstance(tool["pytest"], dict):
        raise SinkbenchError(f"{path}: [tool.pytest] must be a table (its [tool.pytest.ini_options]), "
                             f"got {type(tool['pytest']).__name__}; fix the file")


def config_file(args: list[str]) -> list[str]:
    """pytest's configfile for `sinkbench run`: the current folder's (pytest.ini, .pytest.ini,
    pyproject.toml, tox.ini, setup.cfg, as pytest looks for them), else none; never the one
    above the installed hypotheses (an editable install's own pyproject.toml, whose testpaths
    and markers are the product's). The user's own -c / --config-file wins."""
    if any(a in ("-c", "--config-file") or a.startswith("--config-file=") for a in args):
        return []
    for name in ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg"):
        if Path(name).is_file():
            return ["-c", str(Path(name).resolve())]
    return ["-c", os.devnull]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["run"]:  # everything after `run` goes to pytest untouched (argparse would parse -k, --model)
        return run_hypotheses(argv[1:])
    ap = argparse.ArgumentParser(prog="sinkbench")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("run", help="run the bundled hypothesis tests through pytest: `sinkbench run [pytest args]` takes "
                               "every option of a repository run (--model, --models-file, --results, --expect, -k, ...; "
                               "see `sinkbench run --help`); pytest's exit codes")
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
    ls = sub.add_parser("list", help="the hypothesis units: name, title, claims, tests, settings, declared support, "
                                     "origin (package and version, or file) and where the method is described")
    ls.add_argument("--hypothesis-module", action="append", default=[], metavar="PATH.py",
                    help="also list the unit of an unpackaged module (as `sinkbench run --hypothesis-module` loads it)")
    n = sub.add_parser("new-hypothesis", help="write a skeleton package for a hypothesis unit NAME into ./sinkbench-NAME "
                                              "(unit, entry point, a synthetic-data test, README); its test passes as written")
    n.add_argument("name", help="the unit's name, e.g. X2 (letters, digits, '-' or '_', starting with a letter)")
    n.add_argument("--dir", default=None, help="where to write the package (default ./sinkbench-<name>)")
    args = ap.parse_args(argv)
    try:
        return run(args)
    except SinkbenchError as exc:
        print(f"sinkbench {args.cmd}: error: {exc}", file=sys.stderr)
        return 2


def list_units(modules: list[str]) -> str:
    """`sinkbench list`: every registered unit, a block each."""
    from sinkbench import registry

    if modules:
        registry.add_modules(modules)
    lines = []
    for unit in registry.units().values():
        o = registry.origin(unit)
        source = o.get("package") or "unpackaged"
        if o.get("version"):
            source += f" {o['version']}"
        lines.append(f"{unit.name}: {unit.title}")
        if unit.question:
            lines.append(f"  question: {unit.question}")
        lines.append(f"  origin: {source} ({o.get('where')}; module {o.get('module')}, source sha256 {o.get('source')})")
        lines.append(f"  method: {unit.methods or (o.get('file') or '') + ' (its module docstring; no methods= declared)'}")
        lines.append(f"  tests: {', '.join(t.name for t in unit.tests)}")
        for code, title in unit.claims.items():
            lines.append(f"  claim {code}: {title}")
        declared = unit.declared_settings()
        for key, st in declared.items():
            rng = f" in [{st.low}, {st.high}]" if st.low is not None or st.high is not None else ""
            rng += f" one of {', '.join(map(str, st.choices))}" if st.choices else ""
            lines.append(f"  setting {unit.name}.{key} = {st.default!r}{rng}: {st.help}")
        sup = unit.support
        lines.append(f"  supports: --units {'/'.join(sup.units)}; --remote {'yes' if sup.remote else 'no'}; devices "
                     f"{'/'.join(sup.devices)}; families without a sink profile {'yes' if sup.unprofiled_families else 'no'}")
        lines.append("")
    lines.append("set a unit's setting with --set UNIT.KEY=VALUE, in [tool.sinkbench.UNIT] of pyproject.toml, or in a "
                 "--models-file's [settings.UNIT]")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.cmd == "list":
        print(list_units(args.hypothesis_module))
        return 0
    if args.cmd == "new-hypothesis":
        from sinkbench.run.skeleton import write_skeleton

        where = write_skeleton(args.name, args.dir)
        print(f"wrote {where}; next: pip install --no-build-isolation --no-deps -e {where} && "
              f"pytest {where}/tests && sinkbench list")
        return 0
    if args.cmd == "compare":
        from sinkbench.read.compare import compare_dirs

        from sinkbench.read.report import readable

        cmp = compare_dirs(args.old, args.new)
        print(readable("\n".join(cmp.lines(args.old, args.new))))  # a non-UTF-8 model name as \\xNN
        return 0 if cmp.clean else 1
    if args.cmd == "expect":
        from sinkbench.read.compare import load_results
        from sinkbench.read.expect import to_toml

        text = to_toml(load_results(args.results), args.results)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # TOML is UTF-8: a name that is not cannot be an expectation that matches
            from sinkbench.read.report import readable

            line = next(line for line in text.splitlines() if readable(line) != line)
            raise SinkbenchError(f"results {args.results}: a name is not UTF-8 ({readable(line).strip()}), and expected.toml "
                                 "is UTF-8: rename the model folder (or link it under a UTF-8 name) and rerun") from None
        sys.stdout.write(text)
        return 0
    from sinkbench.read.report import write_report

    summary = None
    if args.expect:
        from sinkbench.read.compare import load_results
        from sinkbench.read.expect import load, summarize

        from sinkbench.read.report import load_runs

        expected = load(args.expect)  # before the figures: a bad --expect fails fast
        newest = load_runs(args.dir)[-1][1]  # the expectations are checked against the latest run
        summary = summarize(expected, load_results(newest), args.expect_tolerance, args.expect)
    md, html = write_report(args.dir, summary, out_dir=args.out)
    from sinkbench.read.report import readable

    if summary is not None:
        print(readable("\n".join(summary.lines())))

    print(f"wrote {readable(str(md))} and {readable(str(html))}")  # a non-UTF-8 folder name as \\xNN, never a crash
    return 0


if __name__ == "__main__":
    sys.exit(main())
