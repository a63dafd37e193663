"""Docs and code agree on every Holm family size: the table in docs/methods.md (section 6)
and the sentence in docs/calibration.md against the number of p-values the verdict
functions actually Holm-correct together on the default grid; and, for H6 and H7, the
documented defaults and claim lists against the code."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from sinkbench.stats import claims, inference
from sinkbench.measure.designate import RUNGS, WriteResult
from sinkbench.hypotheses import (h1_dark_tail, h2_middle, h3_distributed, h4a_designated_write, h4b_designated_training,
                                  h5_sink_writer, h6_massive, h7_streaming)
from sinkbench.hypotheses.h1_dark_tail import H1Inputs
from sinkbench.hypotheses.h2_middle import H2bInputs, H2Inputs
from sinkbench.hypotheses.h5_sink_writer import H5Inputs
from sinkbench.hypotheses.h6_massive import verdicts as claims_h6
from sinkbench.hypotheses.h7_streaming import measurement as measure_h7, verdicts as claims_h7
from sinkbench.measure.config import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs"
N = 16
GRID = [7, 15, 22]  # the default --layers 0.25,0.5,0.75 of a 30-layer model (SmolLM2-135M)
N_LAYERS = 30


def counted(monkeypatch) -> list[int]:
    """Record the size of every Holm family: holm is replaced in every loaded sinkbench module
    that holds it by name (claims, the units' verdict modules), so a new caller is counted too."""
    sizes: list[int] = []
    real = inference.holm

    def spy(p):
        sizes.append(len(p))
        return real(p)

    for name, module in list(sys.modules.items()):
        if name.startswith("sinkbench") and getattr(module, "holm", None) is real:
            monkeypatch.setattr(module, "holm", spy)
    return sizes


def h7_default_test(b: np.ndarray, x=lambda level: level) -> "measure_h7.H7Test":
    """H7's arrays on the default grid as h7_inputs lays them out: rung 1 at the grid layers and
    the ladder's, rungs 2-5 at the ladder's layers (the early layer and the middle grid layer),
    an upper bound at every rung-1 layer that leaves it open (the first token visible after l
    recovers as much as sink1), and the recompute baseline."""
    ladder = measure_h7.ladder_layers(GRID, N_LAYERS, "default", None)
    rung1 = sorted(set(GRID) | set(ladder))
    window, sink1 = b + x(1), b + x(0.1)
    return measure_h7.H7Test(b, window, sink1, sink1 + x(0), b + x(0.9), designated={l: b + x(0.2) for l in rung1},
                             recompute=b + x(0.1), late={l: sink1 + x(0) for l in rung1},
                             ladder={(r, l): b + x(0.2) for r in RUNGS[1:] for l in ladder})


def arr(rng, shift=0.0):
    return 3.0 + shift + 0.1 * rng.standard_normal(N)


def verdict_calls() -> list[tuple[str, callable]]:
    """(hypothesis, a call of its verdict function on the default grid) for every hypothesis;
    each call returns the function's case -> (passed, metrics). Every array has noise of its
    own (a constant contrast is a special case of the mean test), and the effects are large:
    most cases pass, so a verdict that read a NaN interval would be seen to change."""
    from tests.test_massive import coordinate_dark_shares, hidden_states, magnitudes, spectrum_with_dark, test_arrays

    rng = np.random.default_rng(0)
    x = lambda level, sd=0.1: level + sd * rng.standard_normal(N)  # noqa: E731
    b = x(3.0)
    h1 = H1Inputs(b, b + x(2), b + x(0.2), b + x(0.1), b, b + x(2), b + x(0.5), b + x(0.5), x(0.5, 0.02), x(0.2, 0.02),
                  random_each=np.stack([b + x(0.1), b + x(0.2), b + x(0.3)]))
    tables = {c: h3_distributed.h3_table(rng, N, None, dict(h3_distributed.H3_PROFILE)) for c in ("bos", "nobos")}
    w = {m: WriteResult(x(0.01 * f, 0.001), x(a0, 0.02), b + x(d, 0.02)) for m, f, a0, d in
         [("base", 1, 0.6, 0), ("add", 10, 0.3, 0), ("transplant", 15, 0.3, 0.1), ("control", 1.2, 0.6, 0),
          ("broken", 1, 0.6, 1)]}
    g = {"att_k": x(0.6, 0.02), "att_0": x(0.3, 0.02), "nll_base": b, "nll_dark_k": b + x(1), "nll_dark_0": b + x(0.2),
         "dark_ratio_k": x(2.0), "dark_ratio_ordinary": x(0.5)}
    h2 = {(l, k): H2Inputs(b, b + x(0.1, 0.02), b + x(0.5), 30, 30) for l in range(3) for k in (5, 10, 15)}
    h2b = {l: H2bInputs(b, b + x(0.1, 0.02), 15, 0.3) for l in range(3)}
    h5 = H5Inputs(x(0.8, 0.02), b, x(0.5, 0.02), b + x(1), x(0.2, 0.02), b + x(0.1, 0.02), x(0.45, 0.02))
    h6_test = test_arrays(rng)
    h7 = h7_default_test(b, x)
    return [
        ("H1", lambda: h1_dark_tail.h1_verdicts({l: h1 for l in range(3)}, alpha=0.05, min_delta=0.5, min_sink_drop=0.2,
                                                n_boot=50)),
        ("H2", lambda: h2_middle.h2_verdicts(h2, h2b, alpha=0.05, n_boot=200)),
        ("H3", lambda: h3_distributed.h3_verdicts({c: h3_distributed.h3_raw(t) for c, t in tables.items()}, alpha=0.05,
                                                  n_boot=50)),
        ("H4-A", lambda: h4a_designated_write.h4a_verdicts(
            {(l, t): h4a_designated_write.h4a_raw(w, 3.0, 50, 0.5, key=(l, t)) for l in range(3) for t in range(3)}, alpha=0.05)),
        ("H4-B", lambda: h4b_designated_training.h4b_verdicts({l: g for l in range(3)}, alpha=0.05, n_boot=50)),
        ("H5", lambda: h5_sink_writer.h5_verdicts(h5, alpha=0.05, min_share=0.5, min_sink_drop=0.1, min_nll_rise=0.05,
                                                  n_boot=50)),
        ("H6", lambda: claims_h6.h6_verdicts(magnitudes(hidden_states()), h6_test,
                                             coordinate_dark_shares(spectrum_with_dark(64, dark=(3, 7))), alpha=0.05,
                                             min_ratio=100.0, min_fold=5.0, tolerance=0.1, n_sets=99, n_boot=200)),
        ("H7", lambda: claims_h7.h7_verdicts(h7, alpha=0.05, min_gap=0.1, min_recovered=0.5, min_designated=0.5, n_boot=50)),
    ]


def families(monkeypatch) -> dict[str, int]:
    sizes = counted(monkeypatch)
    out = {}
    for name, call in verdict_calls():
        call()
        out[name] = sizes.pop()
        assert not sizes, f"{name}'s verdicts ran more than one Holm family"
    return out


def methods_table() -> dict[str, int]:
    text = (DOCS / "methods.md").read_text()
    rows = re.findall(r"^\| (H\d(?:-[AB])?) \| [^|]+ \| [^|]+ \| [^|]+ \| (\d+) \|$", text, re.M)
    return {h: int(n) for h, n in rows}


def test_methods_family_table_matches_the_verdict_functions(monkeypatch):
    assert methods_table() == families(monkeypatch)


def test_calibration_page_states_the_same_families(monkeypatch):
    text = (DOCS / "calibration.md").read_text()
    m = re.search(r"Holm families at the default grid: (.+?) \(methods\.md", text, re.S)  # H6 and H7 carry notes
    assert m, "docs/calibration.md must state the family sizes"
    stated = {h: int(n) for h, n in re.findall(r"(H\d(?:-[AB])?) (\d+)", m.group(1))}
    assert stated == families(monkeypatch)


@pytest.mark.parametrize("page", ["methods.md", "calibration.md"])
def test_no_stale_family_counts(page):
    """Family sizes of older rounds (4 tests per H1 layer, 54 for H4-A) are gone."""
    text = (DOCS / page).read_text()
    assert not re.search(r"\(4 tests\)|= 54\b|54 for H4|for H4-A \(54|tests per H1 layer", text)


@pytest.mark.parametrize("early,family", [(1, 15), (7, 14), (15, 10)])
def test_methods_states_h7_s_family_for_each_place_of_the_early_layer(monkeypatch, early, family):
    """§6's sentence on H7's family (15 / 14 / 10 with the early layer off the grid, on another
    grid layer, on the middle one) against the verdicts, and a blocked layer leaves it."""
    b = arr(np.random.default_rng(0))
    ladder = measure_h7.ladder_layers(GRID, N_LAYERS, "default", early)
    rung1 = sorted(set(GRID) | set(ladder))
    sizes = counted(monkeypatch)
    kw = dict(alpha=0.05, min_gap=0.1, min_recovered=0.5, min_designated=0.5, n_boot=50)
    t = measure_h7.H7Test(b, b + 1, b + 0.1, b + 0.1, b + 0.9, designated={l: b + 0.2 for l in rung1}, recompute=b + 0.1,
                          late={l: b + 0.1 for l in rung1}, ladder={(r, l): b + 0.2 for r in RUNGS[1:] for l in ladder})
    claims_h7.h7_verdicts(t, **kw)
    assert sizes.pop() == family
    text = " ".join(section(6).split())
    assert {15: "= 15 when the ladder's early layer", 14: "14 when it is another grid layer",
            10: "10 when it is the middle grid layer"}[family] in text
    t.late[GRID[-1]] = b + 0.95  # the first token visible only after the last grid layer recovers little: blocked
    claims_h7.h7_verdicts(t, **kw)
    assert sizes.pop() == family - 1 - (4 if GRID[-1] in ladder else 0)


# --------------------------------------------------------------------------- H6 and H7 defaults and claims
def section(number: int) -> str:
    """The text of methods.md's section `number` (## N. ...), up to the next section."""
    text = (DOCS / "methods.md").read_text()
    m = re.search(rf"^## {number}\. .*?(?=^## \d+\. |\Z)", text, re.M | re.S)
    assert m, f"methods.md has no section {number}"
    return m.group(0)


def stated_values(text: str) -> list[tuple[str, float]]:
    """Every "`name` (value" or "`name` = value" in the text (a percentage as a fraction; "ln 2 =
    0.693" as 0.693)."""
    out = []
    for m in re.finditer(r"`([\w.]+)`\s*(?:\(|=\s*)(?:ln 2 = )?(-?\d[\d.]*(?:e-?\d+)?)(%)?", text):
        name, value, pct = m.groups()
        out.append((name, float(value.rstrip(".")) / (100 if pct else 1)))
    return out


def code_value(name: str):
    """The code's value of a setting or constant named in the docs, or None if it names neither."""
    from sinkbench import stats
    from sinkbench.hypotheses.h6_massive import measurement as measure_h6
    from sinkbench.measure import designate, sink_controls
    from sinkbench.read import results
    from sinkbench.stats import stability

    if name in Settings.__dataclass_fields__:
        return getattr(Settings, name)
    where = {"verdicts.NEAR_THRESHOLD": claims_h6.NEAR_THRESHOLD, "verdicts.CONSTANT_SPREAD": claims_h6.CONSTANT_SPREAD,
             "massive.MIN_WINDOW_SHARE": measure_h6.MIN_WINDOW_SHARE, "LEARN_STEPS": designate.LEARN_STEPS,
             "LEARN_LR": designate.LEARN_LR, "streaming.EARLY_LAYER": measure_h7.EARLY_LAYER,
             "H3_MIN_WINDOWS": h3_distributed.H3_MIN_WINDOWS, "H3_EXACT_POSITIONS": h3_distributed.H3_EXACT_POSITIONS,
             "stats.TEST_RESAMPLES": stats.TEST_RESAMPLES, "stats.MAX_NAN_SHARE": stats.MAX_NAN_SHARE,
             "stability.STABILITY_RESAMPLES": stability.STABILITY_RESAMPLES,
             "stability.FRAGILE_BELOW": stability.FRAGILE_BELOW, "results.DEPENDENCE_WARN": results.DEPENDENCE_WARN,
             "sink_controls.CONTROL_SEED": sink_controls.CONTROL_SEED}
    return where.get(name)


@pytest.mark.parametrize("number", [9, 11])
def test_h6_and_h7_documented_defaults_are_the_code_s(number):
    """Every setting or constant §9 (H6) and §11 (H7) state with a value has that value in the code."""
    stated = [(name, v) for name, v in stated_values(section(number)) if code_value(name) is not None]
    names = {name for name, _ in stated}
    expected = {9: {"h6_min_ratio", "h6_min_fold", "h6_random_sets", "h6_tolerance", "h6_min_zero_rise",
                    "verdicts.NEAR_THRESHOLD", "verdicts.CONSTANT_SPREAD"},
                11: {"h7_window"}}[number]
    assert expected <= names, f"§{number} no longer states {sorted(expected - names)}"
    for name, v in stated:
        assert v == pytest.approx(code_value(name), rel=1e-3), f"methods.md §{number}: `{name}` ({v}) but the code has {code_value(name)}"
    assert "half the selection windows" in section(9) and measure_h6_share() == 0.5


def measure_h6_share() -> float:
    from sinkbench.hypotheses.h6_massive import measurement as measure_h6

    return measure_h6.MIN_WINDOW_SHARE


def test_every_setting_and_constant_methods_states_has_its_value():
    """Across methods.md: a `setting` (value) or `module.CONSTANT` = value names the value the
    code gives it (Settings, which pyproject.toml's [tool.sinkbench] repeats, or the module);
    a backticked name with a value that the code does not have is a stale name."""
    import tomllib

    text = (DOCS / "methods.md").read_text()
    stated = stated_values(text)
    unknown = sorted({n for n, _ in stated if code_value(n) is None})
    assert unknown == [], f"methods.md states values for names the code does not have: {unknown}"
    assert len(stated) >= 25
    for name, v in stated:
        assert v == pytest.approx(code_value(name), rel=1e-3), f"methods.md: `{name}` ({v}) but the code has {code_value(name)}"
    table = tomllib.loads((DOCS.parent / "pyproject.toml").read_text())["tool"]["sinkbench"]
    for name, v in table.items():
        assert v == getattr(Settings, name), f"pyproject.toml: {name} = {v} but Settings has {getattr(Settings, name)}"


def test_h7_claims_table_matches_the_verdicts_and_their_defaults():
    """§11's claims table: one row per claim of the code, in its order, each naming the setting
    its contrast reads with that setting's default; the regimes and the ladder's rungs likewise."""
    text = section(11)
    rows = re.findall(r"^\| H7\((\w)\) [^|]+\| ([^|]+)\| [^|]+\| ([^|]+)\|$", text, re.M)
    assert [c for c, _, _ in rows] == list(claims_h7.CLAIMS) == list(h7_streaming.CLAIMS)
    assert [k.split("/")[1] for k in h7_streaming.HYPOTHESIS.claims] == list(claims_h7.CLAIMS)
    for claim, contrast, default in rows:
        (setting,) = set(re.findall(r"`(h7_\w+)`", contrast))
        assert float(default.split()[0]) == getattr(Settings, setting), (claim, setting, default)
    regimes = re.findall(r"^\| `([\w<>]+)` \|", text, re.M)
    assert regimes[:len(measure_h7.REGIMES)] == list(measure_h7.REGIMES)
    assert {"designated_L<l>", "<rung>_L<l>", "late_sink_L<l>", "recompute"} <= set(regimes)
    rungs = re.findall(r"^\| (\d) `(\w+)` \|", text, re.M)
    assert [(int(i), r) for i, r in rungs] == list(enumerate(RUNGS, start=1))
    assert [r for r in claims_h7.RUNG_ORDER[:len(RUNGS)]] == list(RUNGS)
    assert f"`{claims_h7.POSITIVE_CONTROL}`" in text or claims_h7.POSITIVE_CONTROL.replace("_", " ") in text


def test_h6_claims_match_the_code():
    """§9 names the three cases the unit parametrizes, in its order, and the family of 4."""
    text = " ".join(section(9).split())
    assert f"three cases ({', '.join(f'`{c}`' for c in claims_h6.CLAIMS)})" in text
    assert [k.split("/")[1] for k in h6_massive.HYPOTHESIS.claims] == list(claims_h6.CLAIMS)
    assert "4 p-values" in text


def test_the_verdicts_that_read_an_interval_are_the_ones_methods_names():
    """With every interval NaN (claims.without_intervals, as stability and calibration run the
    verdicts that read none) exactly the verdicts methods.md §5 says read an interval change:
    H2b and H6 b-mean. Each passes on these inputs, so a NaN upper end would fail it."""
    changed = set()
    for name, call in verdict_calls():
        with_ci = call()
        with claims.without_intervals():
            without = call()
        changed |= {(name, str(k[-1] if isinstance(k, tuple) else k)) for k, v in with_ci.items()
                    if isinstance(v, tuple) and v[0] != without[k][0]}
    assert changed == {("H2", "b"), ("H6", "b-mean")}
    text = " ".join(section(5).split())
    assert "Two verdicts read an interval: H2b and H6 b-mean" in text


def test_readme_states_the_settings_defaults():
    """README's list of statistical thresholds: each `setting` value is the code's."""
    text = (DOCS.parent / "README.md").read_text()
    stated = re.findall(r"`(\w+)` (\d[\d.]*)", text)
    stated = [(n, float(v)) for n, v in stated if n in Settings.__dataclass_fields__]
    assert {"h6_min_zero_rise", "h7_min_gap", "h1_min_delta"} <= {n for n, _ in stated}
    for name, v in stated:
        assert v == pytest.approx(getattr(Settings, name), rel=1e-3), f"README: `{name}` {v} but Settings has {getattr(Settings, name)}"


# --------------------------------------------------------------------------- H1's control, stability, max-T
def test_methods_names_the_random_control_h1_a_reads():
    """§5 names the control H1(a)'s verdict reads as the code records it (`random_control`), and
    the plain one's record (`plain_random`): with a fair control that differs from the plain
    one, the verdict follows the fair one and the plain one's claim_a is recorded beside it."""
    rng = np.random.default_rng(0)
    x = lambda level, sd=0.1: level + sd * rng.standard_normal(N)  # noqa: E731
    b = x(3.0)
    plain = np.stack([b + x(3), b + x(3.2), b + x(3.4)])  # the plain subspaces cost more than band K
    fair = np.stack([b + x(0.1), b + x(0.2), b + x(0.3)])
    h1 = H1Inputs(b, b + x(2), plain.mean(0), b + x(0.1), b, b + x(2), b + x(0.5), b + x(0.5), x(0.5, 0.02),
                  x(0.2, 0.02), random_each=plain, random_fair=fair.mean(0), random_fair_each=fair)
    out = h1_dark_tail.h1_verdicts({l: h1 for l in range(3)}, alpha=0.05, min_delta=0.5, min_sink_drop=0.2, n_boot=50)
    m = out[0][1]
    assert m["claim_a"] and not m["plain_random"]["claim_a"]
    text = " ".join(section(5).split())
    assert "orthogonal to the layer's massive coordinates" in text
    assert f'(`random_control`: "{m["random_control"]}"' in text and "`plain_random`" in text


def test_stability_is_documented_as_observed_power_with_calibration_s_cut():
    """methods §6 states the adjusted p at the fragile cut that calibration.md's generated stability
    table gives, and no page says a fragile verdict 'may well flip' on another sample."""
    cal = " ".join((DOCS / "calibration.md").read_text().split())
    m = re.search(r"at an adjusted p of about (0\.\d+)", cal)
    assert m, "calibration.md's stability table states no cut"
    six = " ".join(section(6).split())
    assert "observed power, not replication" in six
    assert f"Holm-adjusted p of about {m.group(1)}" in six
    from sinkbench.stats import stability

    for text in (six, (DOCS.parent / "README.md").read_text(), stability.__doc__):
        assert "may well flip" not in " ".join(text.split())


MAXT_ROWS = {"Gaussian": "gaussian", "t2": "t2", "lognormal sigma 0.6, tail on the null side": "lognormal null-side tail",
             "lognormal sigma 0.6, tail on the claim side": "lognormal claim-side tail",
             "AR(1) 0.5 over windows": "AR(1) 0.5", "5% of windows at -10": "5% at -10",
             "50-75% exact zeros": "50-75% zeros", "one NaN window": "one NaN window"}


def test_methods_max_t_table_is_the_benchmark_s_and_no_verdict_uses_max_t():
    """§6's Holm vs max-T table restates benchmarks/out/maxt_nulls.jsonl (range over the cells of
    each null, cells over alpha + 3 SE), and, as it says, no verdict module calls max-T."""
    import importlib
    import json

    rows = [json.loads(line) for line in (DOCS.parent / "benchmarks" / "out" / "maxt_nulls.jsonl").read_text().splitlines()]
    bound = 0.05 + 3 * (0.05 * 0.95 / 1000) ** 0.5
    stated = re.findall(r"^\| ([^|]+?) \| (\d\.\d+)-(\d\.\d+)(?: \((\d+) of (\d+)\))? \| (\d\.\d+)-(\d\.\d+)(?: \((\d+) of (\d+)\))? \|$",
                        section(6), re.M)
    assert {s[0] for s in stated} == set(MAXT_ROWS)
    for name, *cells in stated:
        cell = [r for r in rows if r["part"] == "null" and r["null"] == MAXT_ROWS[name]]
        for proc, (lo, hi, over, of) in (("holm", cells[:4]), ("maxt", cells[4:])):
            rates = [r[proc] for r in cell]
            assert (float(lo), float(hi)) == (round(min(rates), 3), round(max(rates), 3)), (name, proc)
            assert int(over or 0) == sum(v > bound for v in rates), (name, proc)
            assert of in ("", str(len(rates)))
    maxt = importlib.import_module("sinkbench.stats.maxt")
    for name, module in list(sys.modules.items()):
        if name.startswith(("sinkbench.hypotheses", "sinkbench.stats.claims")):
            used = [k for k, v in vars(module).items() if v is maxt or v is maxt.maxt_stepdown]
            assert not used, f"{name} uses max-T ({used}); methods §6 says no verdict does"
