"""`sinkbench new-hypothesis NAME`: a skeleton package for a lab's own hypothesis unit. What it
writes is complete and passes as written: the unit (a worked example, the one of the README's
"Write your own hypothesis": two claims on the sink's share of attention over depth, a unit
setting, intervals and key effects, verdict stability, a custom check, a layer-free test,
declared support, a hostile null), its entry point, a synthetic-data test of its verdicts
(no model) and a README with the install and run commands."""
from __future__ import annotations

import re
from pathlib import Path

from sinkbench.errors import SinkbenchError

# The unit module; __NAME__ is the unit's name (e.g. D1), __SLUG__ its lower-case identifier.
UNIT = '''"""__NAME__: the sink's share of attention grows with depth.

Per test window, the sink's share (attention paid to position 0, mean over heads and
queries) at the deepest layer minus at the first layer ("grows": > 0), and at the deepest
layer minus the unit setting __SLUG__.min_deepest ("deepest": > 0). One case per claim, not
per layer (a layer-free test); Holm over the two claims."""
import numpy as np

from sinkbench.stats import stability
from sinkbench.stats.claims import ci_mean, holm_by_key, test_mean, window_counts
from sinkbench.measure.experiments import as_units
from sinkbench.registry import Axis, Hypothesis, Setting, Support, Test, constant

CLAIMS = ("grows", "deepest")


def verdicts(inputs, alpha, min_deepest, n_boot=2000):
    """Pure function of per-window arrays: {"mass": [N, L] sink share per layer} -> claim ->
    (passed, metrics). Stability and the hostile nulls call it on resampled or simulated windows."""
    mass = inputs["mass"]
    contrast = {"grows": mass[:, -1] - mass[:, 0], "deepest": mass[:, -1] - min_deepest}
    p = holm_by_key({c: [test_mean(x, "__NAME__", c)] for c, x in contrast.items()})
    return {c: (p[c][0] < alpha,
                {"sink_change": float(np.mean(x)),                                # the key effect ...
                 "sink_change_ci": list(ci_mean(x, n_boot, "__NAME__", c)),        # ... and its 95% interval
                 "p_value": p[c][0], **window_counts(x)})
            for c, x in contrast.items()}


def measure(bench, model_name):
    """One model's whole Holm family: claim -> (passed, metrics), memoised by sinkbench."""
    s = bench.of(model_name)                                # this model's settings (--models-file may change its windows)
    own = bench.unit_settings("__NAME__", model_name)       # this unit's settings (defaults, pyproject, --set)
    base = bench.sweep(model_name).base()                   # the unedited pass over the N test windows
    inputs = {"mass": base.sink_mass}                       # [N, L]: the sink's share of attention per window and layer
    inputs, n = as_units(inputs, bench.subject(model_name), s, base.sink_mass.shape[0])  # --units document
    out = verdicts(inputs, s.alpha, own.min_deepest, s.bootstrap)
    # how often the verdicts hold on resamples of the windows: verdict_stability, fragile (~f)
    return stability.attach(out, lambda x: verdicts(x, s.alpha, own.min_deepest, 200), inputs, n, "__NAME__",
                            model=model_name)


def check(bench, model_name, claim):
    """A custom check (the default, registry.standard_check, does the same without `where`):
    resume first (--resume skips a recorded case), then results, params, record, assert."""
    bench.resume("__NAME__", model_name, None, claim=claim)
    passed, m = bench.results(HYPOTHESIS, model_name)[claim]
    params = bench.params(model_name, **bench.unit_settings("__NAME__", model_name), where="first vs deepest layer")
    bench.record("__NAME__", model_name, None, params, passed, m, claim=claim)
    assert passed, f"__NAME__ {claim} fails on {model_name}: {m['sink_change']:.3f}"


def hostile_deepest(e, rng):
    """'deepest' at its boundary under a hostile null: e is the null's noise over the windows
    (mean 0); the deepest layer's share sits at min_deepest plus e, "grows" clearly holds."""
    n = len(e)
    first = np.full(n, 0.2)
    mass = np.stack([first, 0.5 + 0.1 * e], axis=1)
    return verdicts({"mass": mass}, 0.05, 0.5, n_boot=200)["deepest"][0]


HYPOTHESIS = Hypothesis(
    name="__NAME__", title="the sink's share of attention grows with depth",
    question="Does the sink take a larger share of attention in deeper layers?",
    tests=(Test("test___SLUG___sink_grows_with_depth", (Axis("claim", constant(*CLAIMS)),), check, p_values=1),),
    measure=measure, passes=lambda bench, name: bench.base_passes(name),
    settings={"min_deepest": Setting(0.5, "share of the deepest layer's attention the sink must hold", low=0.0, high=1.0)},
    supports=Support(units=("window", "document")),       # as_units above applies --units document
    claims={"__NAME__/grows": "the sink's share at the deepest layer exceeds the first layer's",
            "__NAME__/deepest": "the sink holds more than min_deepest of the deepest layer's attention"},
    key_effects={"__NAME__/grows": ("sink_change", "sink share deepest − first"),
                 "__NAME__/deepest": ("sink_change", "sink share − min_deepest")},
    hostile={"__NAME__ deepest": hostile_deepest},
    methods="this module's docstring")
'''

TEST = '''"""__NAME__'s verdicts on synthetic windows (no model): a clear effect passes, none fails."""
import numpy as np

from sinkbench.registry import Hypothesis

import sinkbench___SLUG__ as unit


def test_the_unit_is_a_hypothesis():
    assert isinstance(unit.HYPOTHESIS, Hypothesis) and unit.HYPOTHESIS.name == "__NAME__"


def test_a_clear_growth_passes_and_none_fails():
    rng = np.random.default_rng(0)
    grows = np.stack([0.2 + 0.01 * rng.standard_normal(32), 0.8 + 0.01 * rng.standard_normal(32)], axis=1)
    flat = np.stack([0.3 + 0.01 * rng.standard_normal(32), 0.3 + 0.01 * rng.standard_normal(32)], axis=1)
    assert all(passed for passed, _ in unit.verdicts({"mass": grows}, 0.05, 0.5, 200).values())
    assert not any(passed for passed, _ in unit.verdicts({"mass": flat}, 0.05, 0.5, 200).values())


def test_the_hostile_null_at_the_boundary_rarely_passes():
    rng = np.random.default_rng(1)
    rate = np.mean([unit.hostile_deepest(rng.standard_normal(16), rng) for _ in range(100)])
    assert rate <= 0.15
'''

PYPROJECT = '''[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "sinkbench-__SLUG__"
version = "0.1.0"
description = "__NAME__, a sinkbench hypothesis unit"
dependencies = ["sinkbench"]

[project.entry-points."sinkbench.hypotheses"]
__SLUG__ = "sinkbench___SLUG__"

[tool.setuptools]
py-modules = ["sinkbench___SLUG__"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

README = '''# sinkbench-__SLUG__: __NAME__, a sinkbench hypothesis unit

Install next to sinkbench, in the environment sinkbench is installed in (editable: edits
apply without reinstalling):

    pip install --no-build-isolation --no-deps -e .

Then:

    pytest tests                                   # the verdicts on synthetic windows (no model)
    sinkbench list                                 # __NAME__ is listed, with its origin and settings
    sinkbench run --model tiny-bb-bos -k __SLUG__  # run it on a tiny zoo model
    sinkbench run --model tiny-bb-bos -k __SLUG__ --set __NAME__.min_deepest=0.8

Its setting in the pyproject.toml of the folder you run sinkbench from:

    [tool.sinkbench.__NAME__]
    min_deepest = 0.8

Without installing: `sinkbench run --hypothesis-module sinkbench___SLUG__.py ...`.
'''


def write_skeleton(name: str, folder: str | None = None) -> Path:
    """Write the skeleton package of unit `name` into folder (default ./sinkbench-<slug>)."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name or ""):
        raise SinkbenchError(f"new-hypothesis {name!r}: a unit's name is letters, digits, '-' or '_', starting with a "
                             "letter, e.g. X2")
    slug = re.sub(r"\W", "_", name.lower().replace("-", "_"))
    root = Path(folder) if folder else Path(f"sinkbench-{slug}")
    if root.exists() and any(root.iterdir()):
        raise SinkbenchError(f"new-hypothesis {name}: {root} exists and is not empty; pass --dir with a new folder")
    fill = lambda text: text.replace("__NAME__", name).replace("__SLUG__", slug)  # noqa: E731
    (root / "tests").mkdir(parents=True, exist_ok=True)
    (root / f"sinkbench_{slug}.py").write_text(fill(UNIT))
    (root / "tests" / f"test_{slug}.py").write_text(fill(TEST))
    (root / "pyproject.toml").write_text(fill(PYPROJECT))
    (root / "README.md").write_text(fill(README))
    return root
