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
    from sinkbench import models
    from sinkbench.experiments import parse_layers

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
    nulls: tuple = ()  # sinkbench.calibration.Criterion: simulated nulls of its verdicts
    hostile: dict[str, Callable] = field(default_factory=dict)  # test name -> run(e, rng) -> passed, at its boundary (sinkbench.hostile)
    key_effects: dict[str, tuple[str, str]] = field(default_factory=dict)  # "H4/A1" -> (metric, label) in the report's matrix
    # what the report and the one-line findings say in words: "H4/A1" -> the claim's title, and
    # the question the unit answers (the report's Answers); the unit's title where absent
    claims: dict[str, str] = field(default_factory=dict)
    question: str = ""
    figures: Callable[[Any, str, list[dict]], list] | None = None  # (plt, model, records) -> [(figure, title)]
    methods: str = ""  # where docs/methods.md states it
    built_in: bool = False

    @property
    def hypothesis(self) -> str:
        return self.records or self.name


def standard_check(unit: Hypothesis, test: Test, bench, model_name: str, **case) -> None:
    """Record one case of a unit's (single) grid and assert its verdict: what a third-party
    unit gets unless it writes its own check."""
    from sinkbench.claims import windows_note

    layer = case.get("layer")
    fields = {k: v for axis in test.axes if axis.name != "layer" for k, v in axis.fields(case[axis.name]).items()}
    bench.resume(unit.hypothesis, model_name, layer, **fields)
    key = tuple(case[a.name] for a in test.axes)
    passed, m = bench.results(unit, model_name)[key[0] if len(key) == 1 else key]
    params = bench.params(model_name, **{k: v for k, v in case.items() if k != "layer"})
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
        check(sinkbench, model_name, **case)

    names = ["sinkbench", "model_name"] + [a.name for a in test.axes]
    run.__signature__ = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])
    run.__name__ = run.__qualname__ = test.name
    run.__doc__ = f"{unit.hypothesis}: {unit.title}"
    run.sinkbench_test = (unit, test)
    return run


_UNITS: dict[str, Hypothesis] | None = None


def _load(module: str, origin: str) -> Hypothesis:
    from sinkbench.errors import SinkbenchError

    try:
        unit = importlib.import_module(module).HYPOTHESIS
    except (ImportError, AttributeError) as exc:
        raise SinkbenchError(f"{origin}: cannot load a hypothesis from {module!r} ({exc}); "
                             "the module must define HYPOTHESIS = sinkbench.registry.Hypothesis(...)") from None
    if not isinstance(unit, Hypothesis):
        raise SinkbenchError(f"{origin}: {module}.HYPOTHESIS is a {type(unit).__name__}, not a sinkbench.registry.Hypothesis")
    return unit


def units() -> dict[str, Hypothesis]:
    """Every registered unit by name: the built-in ones, then the entry points' (loaded once).
    Two units with one name, or one test name in two units, is an error naming both."""
    global _UNITS
    if _UNITS is None:
        from importlib.metadata import entry_points

        from sinkbench.errors import SinkbenchError

        found = [(_load(f"sinkbench.hypotheses.{m}", "sinkbench"), "sinkbench") for m in BUILT_IN]
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            found.append((_load(ep.value, f"entry point {ep.name!r} ({ep.dist.name if ep.dist else '?'})"), ep.value))
        out: dict[str, Hypothesis] = {}
        tests: dict[str, str] = {}
        for unit, origin in found:
            if unit.name in out:
                raise SinkbenchError(f"two hypothesis units are named {unit.name!r} ({origin} and an earlier one); rename one")
            for t in unit.tests:
                if t.name in tests:
                    raise SinkbenchError(f"test {t.name!r} is declared by {tests[t.name]} and {unit.name}; rename one")
                tests[t.name] = unit.name
            out[unit.name] = unit
        _UNITS = out
    return _UNITS


def third_party() -> list[Hypothesis]:
    return [u for u in units().values() if not u.built_in]


def key_effects() -> dict[str, tuple[str, str]]:
    return {k: v for u in units().values() for k, v in u.key_effects.items()}


def claim_titles() -> dict[str, str]:
    """Claim code ("H4/A1", or "H1" for a one-claim unit) -> its title, over every unit."""
    return {k: v for u in units().values() for k, v in u.claims.items()}


def test_p_values() -> dict[str, tuple[str, float]]:
    """pytest function name -> (Holm family label, raw p-values per case)."""
    return {t.name: (u.name, t.p_values) for u in units().values() for t in u.tests}
