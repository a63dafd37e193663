"""Hypotheses as units, in a registry (the shape of lm-evaluation-harness's tasks).

A hypothesis is one module that declares a `Hypothesis`: its cases (the axes its pytest
functions are parametrized over), the forward passes its grid runs (progress), its
criterion (`measure`: from one model's measurements to the verdict and metrics of every case
of its Holm family), its simulated calibration nulls and its tests at their boundary for the
hostile nulls, and what it adds to the matrix and the report (key effects, figures). The built-in units are the modules of sinkbench.hypotheses
listed in BUILT_IN; a third-party package adds its own through the entry-point group
`sinkbench.hypotheses` (pyproject.toml):

    [project.entry-points."sinkbench.hypotheses"]
    x1 = "my_lab.sinkbench_x1"          # a module with HYPOTHESIS = Hypothesis(...)

Its tests are collected by hypotheses/test_registered.py, parametrized, run, recorded and
shown like the built-in ones (README: "Write your own hypothesis").

Importing this module is cheap (no numpy, no torch); the units themselves are imported
only when something asks for them: collecting the hypotheses, the report, calibration."""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

ENTRY_POINT_GROUP = "sinkbench.hypotheses"
# One module per hypothesis (a unit may hold several Holm families, e.g. H4-A and H4-B).
BUILT_IN = ("h1_dark_tail", "h2_middle", "h3_distributed", "h4a_designated_write", "h4b_designated_training",
            "h5_sink_writer", "h6_massive", "h7_streaming")
RECORD_FIELDS = ("claim", "condition", "target", "variant")  # the case fields compare/--expect pair records on


@dataclass(frozen=True)
class Axis:
    """One parametrization axis: the fixture `name` a test asks for, its `values` for a
    model (values(settings, model_name) -> list), how a value shows in the node id, and the
    record fields a value stands for (default: {name: value} when name is a RECORD_FIELD,
    or `layer`)."""

    name: str
    values: Callable[[Any, str], list]
    label: str = "{}"
    record: Callable[[Any], dict] | None = None

    def fields(self, value) -> dict:
        if self.record is not None:
            return self.record(value)
        return {self.name: value} if self.name in RECORD_FIELDS else {}


def _layers(settings, model_name: str) -> list[int]:
    from sinkbench.model import models
    from sinkbench.measure.experiments import parse_layers

    return parse_layers(settings.layers, models.num_layers(model_name, settings.trust_remote_code), model_name)


LAYER = Axis("layer", _layers, "L{}")  # the settings' layer grid of the model (--layers)


def constant(*values) -> Callable[[Any, str], list]:
    return lambda settings, model_name: list(values)


@dataclass(frozen=True)
class Test:
    """One pytest function of a unit. check(bench, model_name, **case) records the case and
    asserts its verdict; None uses `standard_check` (the case's key is its axis values, in
    order, a single value unwrapped)."""

    __test__ = False  # not a pytest test class, wherever it is imported

    name: str  # the pytest function's name: node ids and -k
    axes: tuple[Axis, ...] = ()
    check: Callable[..., None] | None = None
    # raw p-values per case in the Holm family (the power warning); a function of the model's
    # number of grid layers where the family's size depends on it (H7: 3 + one per layer)
    p_values: float | Callable[[int], float] = 1.0


@dataclass(frozen=True)
class Setting:
    """One setting a unit declares (Hypothesis(settings={"min_share": Setting(0.5, "...")})):
    its default (whose type a value must have: bool, int, float or str), a one-line help,
    and optionally the closed range [low, high] or the choices it must lie in. Users set it
    in [tool.sinkbench.<unit>] of pyproject.toml, in a --models-file's [settings.<unit>]
    table, or with --set <unit>.<key>=<value>; measure reads it as
    bench.unit_settings(<unit>, model_name).<key>."""

    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple = ()

    def parse(self, value, name: str):
        """value as this setting's type, checked; a SinkbenchError names `name` and the fix."""
        from sinkbench.errors import SinkbenchError

        kind = type(self.default)
        what = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(kind, kind.__name__)
        try:
            if kind is bool:
                if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
                    value = value.strip().lower() in ("true", "1", "yes")
                if not isinstance(value, bool):
                    raise ValueError
            elif kind is int:
                if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
                    raise ValueError
                value = int(str(value).strip()) if isinstance(value, str) else int(value)
            elif kind is float:
                if isinstance(value, bool):
                    raise ValueError
                value = float(value)
            elif kind is str:
                if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                    raise ValueError
                value = str(value)
        except (TypeError, ValueError):
            raise SinkbenchError(f"{name}: expected {what}, got {value!r}") from None
        if self.choices and value not in self.choices:
            raise SinkbenchError(f"{name}: {value!r} is not one of {', '.join(map(str, self.choices))}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value != value or (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
                interval = f"[{'-inf' if self.low is None else self.low}, {'inf' if self.high is None else self.high}]"
                raise SinkbenchError(f"{name}: {value} is outside {interval}; pass a value in that range")
        return value


class UnitSettings(dict):
    """A unit's settings for one model, read as attributes or keys (bench.unit_settings)."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"no setting {key!r}; settings: {', '.join(self) or 'none'}") from None


@dataclass(frozen=True)
class Support:
    """What a unit's measure honours. units: the --units values it applies (a unit that
    averages its per-window arrays with sinkbench.measure.experiments.as_units supports 'document');
    remote: whether it runs with --remote (NDIF); devices: the device types it runs on;
    unprofiled_families: whether it runs on model families without a sink profile
    (sinkbench.measure.sink_profile: attention outside transformers' AttentionInterface, Falcon,
    Bloom). An option a selected unit does not support stops the run at start-up with one
    line naming the unit."""

    units: tuple[str, ...] = ("window",)
    remote: bool = False
    devices: tuple[str, ...] = ("cpu", "cuda", "mps")
    unprofiled_families: bool = True


FULL_SUPPORT = Support(units=("window", "document"), remote=True)  # the built-in units, as before declared support


@dataclass(frozen=True)
class Hypothesis:
    """A hypothesis unit: one Holm family. name: the unit (and its family) in the registry,
    progress and the power warning; records: the records' `hypothesis` (the matrix row),
    default the name (H4-A and H4-B both record H4). measure(bench, model_name) -> case key ->
    (passed, metrics), memoised per model (Bench.results). passes(bench, model_name) ->
    forward passes measure runs (progress)."""

    name: str
    title: str
    tests: tuple[Test, ...]
    measure: Callable[[Any, str], dict]
    passes: Callable[[Any, str], int] | None = None
    records: str = ""
    nulls: tuple = ()  # sinkbench.run.calibration.Criterion: simulated nulls of its verdicts
    hostile: dict[str, Callable] = field(default_factory=dict)  # test name -> run(e, rng) -> passed, at its boundary (sinkbench.run.hostile)
    key_effects: dict[str, tuple[str, str]] = field(default_factory=dict)  # "H4/A1" -> (metric, label) in the report's matrix
    # what the report and the one-line findings say in words: "H4/A1" -> the claim's title, and
    # the question the unit answers (the report's Answers); the unit's title where absent
    claims: dict[str, str] = field(default_factory=dict)
    question: str = ""
    figures: Callable[[Any, str, list[dict]], list] | None = None  # (plt, model, records) -> [(figure, title)]
    # one figure over every model of a run (the report's "Across models"): (plt, {model: records}) -> [(figure, title)]
    figures_across: Callable[[Any, dict[str, list[dict]]], list] | None = None
    methods: str = ""  # where docs/methods.md states it
    built_in: bool = False
    # the unit's own settings: key -> Setting (or (default, help)); see Setting
    settings: dict[str, Any] = field(default_factory=dict)
    supports: Support | None = None  # default: Support() for a third-party unit, FULL_SUPPORT for a built-in one
    # a module of the unit's package that names its tests (`globals().update(pytest_functions("X1"))`): node ids of its
    # own, run by `pytest --pyargs MODULE` and by `sinkbench run`; hypotheses/test_registered.py leaves them out
    test_module: str = ""

    @property
    def hypothesis(self) -> str:
        return self.records or self.name

    @property
    def support(self) -> Support:
        return self.supports if self.supports is not None else (FULL_SUPPORT if self.built_in else Support())

    def declared_settings(self) -> dict[str, Setting]:
        return {k: v if isinstance(v, Setting) else Setting(*v) for k, v in self.settings.items()}


def standard_check(unit: Hypothesis, test: Test, bench, model_name: str, **case) -> None:
    """Record one case of a unit's (single) grid and assert its verdict: what a third-party
    unit gets unless it writes its own check."""
    from sinkbench.stats.claims import windows_note

    layer = case.get("layer")
    fields = {k: v for axis in test.axes if axis.name != "layer" for k, v in axis.fields(case[axis.name]).items()}
    bench.resume(unit.hypothesis, model_name, layer, **fields)
    key = tuple(case[a.name] for a in test.axes)
    passed, m = bench.results(unit, model_name)[key[0] if len(key) == 1 else key]
    params = bench.params(model_name, **bench.unit_settings(unit.name, model_name),
                          **{k: v for k, v in case.items() if k != "layer"})
    bench.record(unit.hypothesis, model_name, layer, params, passed, m, **fields)
    shown = {k: v for k, v in m.items() if isinstance(v, (int, float, str, bool))}
    assert passed, f"{unit.hypothesis} {test.name} fails on {model_name} {case}: {shown}" + windows_note(m)


def pytest_function(unit: Hypothesis, test_name: str) -> Callable:
    """The pytest function of one of a unit's tests: asks for the `sinkbench` fixture, the
    model and the test's axes, and calls its check. plugin.pytest_generate_tests reads its
    `sinkbench_test` attribute to parametrize it."""
    test = next(t for t in unit.tests if t.name == test_name)
    check = test.check or (lambda bench, model_name, **case: standard_check(unit, test, bench, model_name, **case))

    def run(sinkbench, model_name, **case):
        sinkbench.current_unit = unit  # whose code and settings the case key and record name (H4-A and H4-B record H4)
        try:
            check(sinkbench, model_name, **case)
        finally:
            sinkbench.current_unit = None

    names = ["sinkbench", "model_name"] + [a.name for a in test.axes]
    run.__signature__ = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])
    run.__name__ = run.__qualname__ = test.name
    run.__doc__ = f"{unit.hypothesis}: {unit.title}"
    run.sinkbench_test = (unit, test)
    return run


def pytest_functions(name: str) -> dict[str, Callable]:
    """A unit's pytest functions by name, for a test module of its own package:
    `globals().update(sinkbench.registry.pytest_functions("X1"))` (declare it as the unit's test_module)."""
    from sinkbench.errors import SinkbenchError

    unit = find(name)
    if unit is None:
        raise SinkbenchError(f"pytest_functions({name!r}): no hypothesis unit of that name; units: {', '.join(units())}")
    return {t.name: pytest_function(unit, t.name) for t in unit.tests}


def own_test_files() -> list[str]:
    """The files of the units' own test modules (test_module), for `sinkbench run`."""
    import importlib.util

    from sinkbench.errors import SinkbenchError

    out = []
    for unit in units().values():
        if unit.test_module:
            spec = importlib.util.find_spec(unit.test_module)
            if spec is None or not spec.origin:
                raise SinkbenchError(f"{unit.name}: its test_module {unit.test_module!r} cannot be imported; install the "
                                     "unit's package with it, or drop test_module")
            out.append(spec.origin)
    return out


_UNITS: dict[str, Hypothesis] | None = None
_ORIGINS: dict[str, dict] = {}  # unit name -> package, version, module, file, source (sha256 of its sources)
_LOCAL: list[str] = []  # --hypothesis-module files, in order


def _load(module: str, origin: str):
    from sinkbench.errors import SinkbenchError

    try:
        mod = importlib.import_module(module)
        unit = mod.HYPOTHESIS
    except (ImportError, AttributeError) as exc:
        raise SinkbenchError(f"{origin}: cannot load a hypothesis from {module!r} ({exc}); "
                             "the module must define HYPOTHESIS = sinkbench.registry.Hypothesis(...)") from None
    if not isinstance(unit, Hypothesis):
        raise SinkbenchError(f"{origin}: {module}.HYPOTHESIS is a {type(unit).__name__}, not a sinkbench.registry.Hypothesis")
    return unit, mod


def _load_file(path: str):
    """A --hypothesis-module file, imported under a module name of its own (sinkbench_local_<stem>)."""
    import importlib.util
    import re
    import sys
    from pathlib import Path

    from sinkbench.errors import SinkbenchError

    file = Path(path).expanduser().resolve()
    where = f"--hypothesis-module {path}"
    if not file.is_file() or file.suffix != ".py":
        raise SinkbenchError(f"{where}: not a .py file; pass the path of a module that defines HYPOTHESIS = Hypothesis(...)")
    name = "sinkbench_local_" + re.sub(r"\W", "_", file.stem)
    spec = importlib.util.spec_from_file_location(name, file)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except Exception as exc:
        del sys.modules[name]
        raise SinkbenchError(f"{where}: importing it raised {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}; "
                             "fix the module (run `python " + str(path) + "` to see the traceback)") from None
    unit = getattr(mod, "HYPOTHESIS", None)
    if not isinstance(unit, Hypothesis):
        got = "no HYPOTHESIS" if unit is None else f"HYPOTHESIS is a {type(unit).__name__}"
        raise SinkbenchError(f"{where}: {got}; the module must define HYPOTHESIS = sinkbench.registry.Hypothesis(...)")
    return unit, mod


def source_sha256(unit: Hypothesis, mod) -> str:
    """sha256 of the unit's sources: its module's file, and the files of the modules its
    measure, check and passes functions come from (sinkbench's own helpers included where a
    unit keeps its criterion there, e.g. sinkbench.hypotheses.h7_streaming.verdicts)."""
    import hashlib
    import sys

    names = {mod.__name__}
    for fn in [unit.measure, unit.passes, *(t.check for t in unit.tests)]:
        if fn is not None and getattr(fn, "__module__", None):
            names.add(fn.__module__)
    digest = hashlib.sha256()
    for name in sorted(names):
        file = getattr(sys.modules.get(name), "__file__", None)
        if file:
            try:
                with open(file, "rb") as fh:
                    digest.update(name.encode() + b"\0" + fh.read() + b"\0")
            except OSError:
                digest.update(name.encode())
    return digest.hexdigest()[:16]


def _origin(unit: Hypothesis, mod, package: str | None, version: str | None, where: str) -> dict:
    return {"package": package, "version": version, "module": mod.__name__, "file": getattr(mod, "__file__", None),
            "source": source_sha256(unit, mod), "where": where}


def add_modules(paths: list[str]) -> None:
    """--hypothesis-module: unpackaged unit files, registered after the entry points' units
    (units() re-read)."""
    global _UNITS
    _LOCAL[:] = list(dict.fromkeys(paths))
    _UNITS = None


def units() -> dict[str, Hypothesis]:
    """Every registered unit by name: the built-in ones, then the entry points', then the
    --hypothesis-module files' (loaded once). Two units with one name, or one test name in two
    units, is an error naming both. A unit's setting named like one of sinkbench's is an error."""
    global _UNITS
    if _UNITS is None:
        from importlib.metadata import entry_points

        from sinkbench import __version__
        from sinkbench.errors import SinkbenchError

        found = []
        for m in BUILT_IN:
            unit, mod = _load(f"sinkbench.hypotheses.{m}", "sinkbench")
            found.append((unit, "sinkbench", _origin(unit, mod, "sinkbench", __version__, "built in")))
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            where = f"entry point {ep.name!r} ({dist.name if dist else '?'})"
            unit, mod = _load(ep.value, where)
            found.append((unit, ep.value, _origin(unit, mod, dist.name if dist else None, dist.version if dist else None,
                                                  f"entry point {ep.name} = {ep.value!r}")))
        for path in _LOCAL:
            unit, mod = _load_file(path)
            found.append((unit, f"--hypothesis-module {path}", _origin(unit, mod, None, None, f"--hypothesis-module {path}")))
        from sinkbench.measure.config import FIELDS

        out: dict[str, Hypothesis] = {}
        tests: dict[str, str] = {}
        origins: dict[str, dict] = {}
        for unit, origin, info in found:
            if unit.name in out:
                raise SinkbenchError(f"two hypothesis units are named {unit.name!r} ({origin} and an earlier one); rename one")
            for t in unit.tests:
                if t.name in tests:
                    raise SinkbenchError(f"test {t.name!r} is declared by {tests[t.name]} and {unit.name}; rename one")
                tests[t.name] = unit.name
            clash = sorted((set(unit.settings) & (set(FIELDS) | RESERVED_PARAMS)))
            if clash:
                raise SinkbenchError(f"{unit.name} ({origin}): setting(s) {clash} are named like sinkbench's own "
                                     "settings or record params; rename them (e.g. with the unit's prefix)")
            out[unit.name] = unit
            origins[unit.name] = info
        _UNITS = out
        _ORIGINS.clear()
        _ORIGINS.update(origins)
    return _UNITS


# params every record carries (sinkbench.run.bench.Bench.params); a unit's setting may not shadow one
RESERVED_PARAMS = {"n_bands", "n_seqs", "seq_len", "dataset", "windows", "n_select", "units", "dtype", "device", "seeds",
                   "alpha", "basis", "uses_bos", "layers_grid", "k", "not_applied"}


def origin(unit: Hypothesis | str) -> dict:
    """Where a unit comes from: package (distribution name; None for a --hypothesis-module
    file), version, module, file, source (sha256 of its sources, 16 hex digits), where."""
    found = units()
    if not isinstance(unit, str) and found.get(unit.name) is not unit:  # not a registered unit: no known origin
        return {}
    return dict(_ORIGINS.get(unit if isinstance(unit, str) else unit.name, {}))


def identity(unit: Hypothesis | str) -> dict:
    """What a record and its case key say of the unit that made it: its name, distribution
    name and version (None for an unpackaged --hypothesis-module file) and source hash."""
    o = origin(unit)
    return {"name": unit if isinstance(unit, str) else unit.name, "package": o.get("package"),
            "version": o.get("version"), "source": o.get("source")}


def recording(hypothesis: str) -> list[Hypothesis]:
    """The units whose records carry this `hypothesis` (H4: H4-A and H4-B)."""
    return [u for u in units().values() if u.hypothesis == hypothesis or u.name == hypothesis]


def find(name: str) -> Hypothesis | None:
    """A unit by name, case-insensitively (--set h8.min_deepest=... names H8)."""
    found = units()
    return found.get(name) or next((u for n, u in found.items() if n.lower() == name.lower()), None)


def resolve_settings(sources: list[tuple[str, dict]]) -> dict[str, dict]:
    """Unit settings set by the user, checked: sources are (where, {unit: {key: value}}) in
    increasing precedence ([tool.sinkbench.<unit>], a --models-file's [settings.<unit>],
    --set). Returns unit name -> {key: value} (only what was set; defaults apply elsewhere).
    Every error is one line naming where the value was set, and the real units or keys."""
    from sinkbench.errors import SinkbenchError

    out: dict[str, dict] = {}
    for where, table in sources:
        for unit_name, values in table.items():
            unit = find(unit_name)
            if unit is None:
                with_settings = [u.name for u in units().values() if u.settings]
                raise SinkbenchError(f"{where}: no hypothesis unit named {unit_name!r}; units with settings: "
                                     f"{', '.join(with_settings) or 'none'} (`sinkbench list` shows them)")
            declared = unit.declared_settings()
            if not isinstance(values, dict):
                raise SinkbenchError(f"{where}: {unit_name} must be a table of settings, got {values!r}")
            for key, value in values.items():
                if key not in declared:
                    known = ", ".join(sorted(declared)) if declared else "none (it declares no settings)"
                    raise SinkbenchError(f"{where}: {unit.name} has no setting {key!r}; its settings: {known}")
                out.setdefault(unit.name, {})[key] = declared[key].parse(value, f"{where} {unit.name}.{key}")
    return out


def parse_set(items: list[str]) -> dict[str, dict]:
    """--set UNIT.KEY=VALUE options as {unit: {key: value-as-text}} (checked by resolve_settings)."""
    from sinkbench.errors import SinkbenchError

    out: dict[str, dict] = {}
    for item in items or []:
        left, eq, value = str(item).partition("=")
        unit_name, dot, key = left.strip().partition(".")
        if not eq or not dot or not unit_name or not key.strip():
            raise SinkbenchError(f"--set {item!r}: expected UNIT.KEY=VALUE, e.g. --set X1.min_share=0.8 "
                                 "(`sinkbench list` shows each unit's settings)")
        out.setdefault(unit_name, {})[key.strip()] = value.strip()
    return out


def settings_for(unit: Hypothesis, chosen: dict[str, dict] | None) -> UnitSettings:
    """A unit's settings: its defaults, with what the user set (resolve_settings' result)."""
    values = {k: s.default for k, s in unit.declared_settings().items()}
    values.update((chosen or {}).get(unit.name, {}))
    return UnitSettings(values)


def third_party(own_modules: bool = True) -> list[Hypothesis]:
    """The units not built in (own_modules=False: without those whose tests live in a test_module of their own)."""
    return [u for u in units().values() if not u.built_in and (own_modules or not u.test_module)]


def key_effects() -> dict[str, tuple[str, str]]:
    return {k: v for u in units().values() for k, v in u.key_effects.items()}


def claim_titles() -> dict[str, str]:
    """Claim code ("H4/A1", or "H1" for a one-claim unit) -> its title, over every unit."""
    return {k: v for u in units().values() for k, v in u.claims.items()}


def test_p_values() -> dict[str, tuple[str, float]]:
    """pytest function name -> (Holm family label, raw p-values per case)."""
    return {t.name: (u.name, t.p_values) for u in units().values() for t in u.tests}
