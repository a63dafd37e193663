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
    monkeypatch.setattr(registry, "_ORIGINS", {})
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


def test_an_entry_point_units_identity_names_its_distribution_version_and_source(fresh, monkeypatch, tmp_path):
    path = tmp_path / "lab_x8.py"
    path.write_text("from sinkbench.registry import Hypothesis, Test, LAYER\n"
                    "HYPOTHESIS = Hypothesis(name='X8', title='x', tests=(Test('test_x8', (LAYER,)),), "
                    "measure=lambda bench, model: {})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    fresh.append(("x8", "lab_x8"))

    class Dist:  # the fixture's entry points have no distribution: this one has
        name, version = "lab-x8", "1.2"

    import importlib.metadata as md

    real = md.entry_points
    monkeypatch.setattr("importlib.metadata.entry_points",
                        lambda group=None: [type("EP", (), {"name": "x8", "value": "lab_x8", "dist": Dist})()]
                        if group == registry.ENTRY_POINT_GROUP else real(group=group))
    ident = registry.identity("X8")
    assert ident["package"] == "lab-x8" and ident["version"] == "1.2" and len(ident["source"]) == 16
    assert registry.identity("H1")["package"] == "sinkbench"
    before = ident["source"]
    path.write_text(path.read_text() + "# edited\n")
    monkeypatch.delitem(sys.modules, "lab_x8")
    registry._UNITS = None
    assert registry.identity("X8")["source"] != before  # another source, another identity (and case key)


def test_a_third_party_unit_supports_window_units_locally_unless_it_declares_more():
    assert unit().support == registry.Support(units=("window",), remote=False)
    assert registry.units()["H1"].support == registry.FULL_SUPPORT


@pytest.mark.parametrize("setting, value, message", [
    (registry.Setting(0.5, "h", low=0.0, high=1.0), "2", "S: 2.0 is outside [0.0, 1.0]; pass a value in that range"),
    (registry.Setting(3, "h"), "2.5", "S: expected a whole number, got '2.5'"),
    (registry.Setting(True, "h"), "maybe", "S: expected true or false, got 'maybe'"),
    (registry.Setting("a", "h", choices=("a", "b")), "c", "S: 'c' is not one of a, b"),
])
def test_a_unit_setting_is_parsed_and_checked_in_one_line(setting, value, message):
    with pytest.raises(SinkbenchError) as err:
        setting.parse(value, "S")
    assert str(err.value) == message


def test_unit_settings_resolve_in_order_and_name_the_real_keys(fresh, monkeypatch):
    u = registry.Hypothesis(name="X9", title="x", tests=(registry.Test("test_x9", (registry.LAYER,)),),
                            measure=lambda bench, model: {}, settings={"min_share": (0.5, "share"), "n": registry.Setting(3, "n")})
    fresh.append(("x9", fake_module(monkeypatch, "lab_x9", HYPOTHESIS=u)))
    chosen = registry.resolve_settings([("pyproject", {"X9": {"min_share": 0.6, "n": 4}}),
                                        ("--set", registry.parse_set(["x9.min_share=0.8"]))])
    assert chosen == {"X9": {"min_share": 0.8, "n": 4}}
    assert registry.settings_for(u, chosen).min_share == 0.8 and registry.settings_for(u, {}).n == 3
    with pytest.raises(SinkbenchError, match=r"^--set: X9 has no setting 'min'; its settings: min_share, n$"):
        registry.resolve_settings([("--set", registry.parse_set(["X9.min=1"]))])
    with pytest.raises(SinkbenchError, match=r"^--set: H1 has no setting 'x'; its settings: none \(it declares no settings\)$"):
        registry.resolve_settings([("--set", registry.parse_set(["H1.x=1"]))])


def test_a_unit_setting_named_like_one_of_sinkbenchs_is_refused(fresh, monkeypatch):
    u = registry.Hypothesis(name="X9", title="x", tests=(registry.Test("test_x9", (registry.LAYER,)),),
                            measure=lambda bench, model: {}, settings={"alpha": (0.1, "my alpha")})
    fresh.append(("x9", fake_module(monkeypatch, "lab_x9", HYPOTHESIS=u)))
    with pytest.raises(SinkbenchError, match=r"X9 \(lab_x9\): setting\(s\) \['alpha'\] are named like sinkbench's own"):
        registry.units()


def test_an_option_a_unit_does_not_support_is_one_line_naming_it_and_the_fix():
    from sinkbench.measure.config import make_settings
    from sinkbench.run.preflight import support_problems

    only_cpu = registry.Hypothesis(name="X9", title="x", tests=(registry.Test("test_x9", (registry.LAYER,)),),
                                   measure=lambda bench, model: {}, supports=registry.Support(devices=("cpu",)))
    s = make_settings(device="cuda", units="document")
    lines = support_problems({"m": s, "n": s}, [(only_cpu, ["test_x9"])])
    assert lines == [
        "--units document: X9 (local) does not apply it (it supports window); pass --units window, or leave its tests "
        "out with -k 'not test_x9'",
        "--device cuda: X9 (local) runs on cpu only; pass --device cpu, or leave its tests out with -k 'not test_x9'"]
    assert support_problems({"m": make_settings()}, [(only_cpu, ["test_x9"])]) == []
