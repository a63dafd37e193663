"""The hypothesis registry: built-in units, entry points, and the errors a bad unit gets."""
from __future__ import annotations

import importlib
import inspect
import sys
import types
from pathlib import Path

import pytest

from sinkbench import registry
from sinkbench.errors import SinkbenchError


@pytest.fixture
def fresh(monkeypatch):
    """units() re-read, with fake entry points (group -> [(name, module)])."""
    monkeypatch.setattr(registry, "_UNITS", None)
    fakes: list = []

    class EP:
        def __init__(self, name, value):
            self.name, self.value, self.dist = name, value, None

    monkeypatch.setattr("importlib.metadata.entry_points",
                        lambda group=None: [EP(n, v) for n, v in fakes] if group == registry.ENTRY_POINT_GROUP else [])
    yield fakes
    registry._UNITS = None


def fake_module(monkeypatch, name: str, **attrs) -> str:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    monkeypatch.setitem(sys.modules, name, mod)
    return name


def unit(name="X9", test="test_x9"):
    return registry.Hypothesis(name=name, title="x", tests=(registry.Test(test, (registry.LAYER,)),),
                               measure=lambda bench, model: {})


def test_every_built_in_hypothesis_is_a_unit_and_every_test_file_names_only_unit_tests(fresh):
    units = registry.units()
    assert list(units) == ["H1", "H2", "H3", "H4-A", "H4-B", "H5", "H6", "H7"]
    assert all(u.built_in and u.methods.startswith("docs/methods.md") for u in units.values())
    declared = {t.name for u in units.values() for t in u.tests}
    here = Path(registry.__file__).resolve().parent.parent / "hypotheses"
    found = set()
    for path in here.glob("test_*.py"):
        module = importlib.import_module(f"sinkbench.hypotheses.{path.stem}")
        for name, fn in vars(module).items():
            if name.startswith("test_") and callable(fn):
                assert getattr(fn, "sinkbench_test", None) is not None, f"{path.name}::{name} is not a unit's test"
                found.add(name)
    assert found == declared  # every declared test has its file, and nothing else is collected


def test_a_units_pytest_function_asks_for_its_axes():
    fn = registry.pytest_function(unit(), "test_x9")
    assert list(inspect.signature(fn).parameters) == ["sinkbench", "model_name", "layer"]
    assert fn.__name__ == "test_x9" and fn.sinkbench_test[0].name == "X9"


def test_an_entry_point_unit_is_registered_after_the_built_in_ones(fresh, monkeypatch):
    fresh.append(("x9", fake_module(monkeypatch, "lab_x9", HYPOTHESIS=unit())))
    units = registry.units()
    assert list(units)[-1] == "X9" and [u.name for u in registry.third_party()] == ["X9"]
    assert registry.test_p_values()["test_x9"] == ("X9", 1.0)


@pytest.mark.parametrize("attrs, message", [
    ({}, "must define HYPOTHESIS"),
    ({"HYPOTHESIS": 42}, "is a int, not a sinkbench.registry.Hypothesis"),
    ({"HYPOTHESIS": unit(name="H1")}, "two hypothesis units are named 'H1'"),
    ({"HYPOTHESIS": unit(test="test_dark_tail_necessary")}, "test 'test_dark_tail_necessary' is declared by H1 and X9"),
])
def test_a_bad_unit_stops_with_one_line_naming_it(fresh, monkeypatch, attrs, message):
    fresh.append(("bad", fake_module(monkeypatch, "lab_bad", **attrs)))
    with pytest.raises(SinkbenchError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        registry.units()
    assert "\n" not in str(err.value)


def test_a_missing_module_names_the_entry_point(fresh):
    fresh.append(("gone", "lab_not_installed_anywhere"))
    with pytest.raises(SinkbenchError, match="entry point 'gone'.*lab_not_installed_anywhere"):
        registry.units()
