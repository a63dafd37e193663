"""A hypothesis from outside sinkbench: a toy package with one hypothesis module and an entry
point in the group `sinkbench.hypotheses` is installed into a temporary site folder next to
sinkbench (pip --target, then on PYTHONPATH: a second environment layer that sinkbench's own
does not see), and a pytest run collects its test, parametrizes it over the model's layers,
runs it, records it, shows it in the matrix and in `sinkbench report`, and holds it to
`--expect` (kept verdicts pass, a flipped one fails)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sinkbench.run.plugin import hypotheses_dir

MODULE = '''
"""X1 (a toy): at each grid layer the sink (position 0) holds more than m times a uniform
share of the attention that later layers pay (post-filter sink mass above m / seq_len, claim
"1x": m = 1, "2x": m = 2), as a mean over test windows, Holm over layers x claims."""
import numpy as np

from sinkbench.stats.claims import holm_by_key, test_mean, window_counts
from sinkbench.registry import LAYER, Axis, Hypothesis, Test, constant

CLAIMS = {"1x": 1.0, "2x": 2.0}


def measure(bench, model_name):
    sweep = bench.sweep(model_name)
    base = sweep.base()
    uniform = 1.0 / sweep.windows.shape[1]
    contrasts = {(layer, claim): base.post_filter_sink_mass(layer) - m * uniform
                 for layer in bench.layers(model_name) for claim, m in CLAIMS.items()}
    raw = {key: [test_mean(c, "X1", *key)] for key, c in contrasts.items()}
    adjusted = holm_by_key(raw)
    return {key: (adjusted[key][0] < bench.settings.alpha,
                  {"sink_excess": float(np.mean(c)), "p_value": adjusted[key][0], **window_counts(c)})
            for key, c in contrasts.items()}


def figures(plt, model, recs):
    rows = sorted((r for r in recs if r["hypothesis"] == "X1"), key=lambda r: (r["layer"], r["claim"]))
    if not rows:
        return []
    fig, ax = plt.subplots(figsize=(4, 2.5))
    ax.bar([f"L{r['layer']} {r['claim']}" for r in rows], [r["metrics"]["sink_excess"] for r in rows])
    return [(fig, f"{model}: X1 sink mass above uniform per layer")]


HYPOTHESIS = Hypothesis(
    name="X1", title="the sink holds more than a uniform share",
    tests=(Test("test_sink_above_uniform", (LAYER, Axis("claim", constant(*CLAIMS)))),),
    measure=measure, passes=lambda bench, name: bench.base_passes(name),
    key_effects={"X1/1x": ("sink_excess", "sink − uniform"), "X1/2x": ("sink_excess", "sink − 2 uniform")},
    figures=figures)
'''

PYPROJECT = '''
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "sinkbench-x1"
version = "0.1"

[project.entry-points."sinkbench.hypotheses"]
x1 = "sinkbench_x1"

[tool.setuptools]
py-modules = ["sinkbench_x1"]
'''

ARGS = ["--model", "tiny-bb-bos", "--seq-len", "64", "--n-seqs", "16", "-p", "no:cacheprovider"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The toy package, built and installed into a site folder of its own."""
    root = tmp_path_factory.mktemp("x1")
    src, site = root / "src", root / "site"
    src.mkdir()
    (src / "pyproject.toml").write_text(PYPROJECT)
    (src / "sinkbench_x1.py").write_text(textwrap.dedent(MODULE))
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(site), str(src)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert list(site.glob("sinkbench_x1-0.1.dist-info/entry_points.txt"))
    return site


def run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(site))
    return subprocess.run([sys.executable, "-m", "pytest", str(hypotheses_dir() / "test_registered.py"), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_a_third_party_hypothesis_is_collected_run_recorded_reported_and_expected(site, tmp_path):
    first = run(site, tmp_path, *ARGS, "--results", str(tmp_path / "r1"), "-v")
    out = first.stdout + first.stderr
    # collected and parametrized over the grid's layers (one on this 2-layer model) and the claims
    assert "test_registered.py::test_sink_above_uniform[tiny-bb-bos-L0-1x]" in out, out[-3000:]
    assert "test_registered.py::test_sink_above_uniform[tiny-bb-bos-L0-2x]" in out
    # run and recorded, with the settings and versions of every record
    records = [json.loads(line) for line in (tmp_path / "r1" / "results.jsonl").read_text().splitlines()]
    assert {(r["hypothesis"], r["layer"], r["claim"]) for r in records} == {("X1", 0, "1x"), ("X1", 0, "2x")}
    assert all(r["verdict"] in ("pass", "fail") and "sink_excess" in r["metrics"] and r["params"]["seq_len"] == 64
               for r in records)
    # the unit that made each record: its distribution, version and source hash (also in the case key)
    assert all(r["unit"]["name"] == "X1" and r["unit"]["package"] == "sinkbench-x1" and r["unit"]["version"] == "0.1"
               and len(r["unit"]["source"]) == 16 and r["params"]["units"] == "window" for r in records)
    # in the matrix at the end of the run
    assert any(line.startswith("X1/1x ") and "/1" in line for line in out.splitlines()), out[-2000:]
    # in the report (`sinkbench report`), with its key effect and its figure
    rep = subprocess.run([sys.executable, "-m", "sinkbench", "report", str(tmp_path / "r1")], cwd=tmp_path,
                         env=dict(os.environ, PYTHONPATH=str(site)), capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr[-2000:]
    text = (tmp_path / "r1" / "report.md").read_text()
    assert "X1" in text and "sink − uniform" in text
    assert "X1 sink mass above uniform per layer" in (tmp_path / "r1" / "report.html").read_text()
    # --expect: the same run again keeps every verdict (exit 0) ...
    again = run(site, tmp_path, *ARGS, "--results", str(tmp_path / "r2"), "--expect", str(tmp_path / "r1"), "-q")
    assert again.returncode == 0, (again.stdout + again.stderr)[-2000:]
    assert "as expected" in again.stdout
    # ... and a flipped verdict fails it, naming the case
    flipped = tmp_path / "flipped"
    flipped.mkdir()
    for r in records:
        r["verdict"] = "fail" if r["verdict"] == "pass" else "pass"
    (flipped / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    bad = run(site, tmp_path, *ARGS, "--results", str(tmp_path / "r3"), "--expect", str(flipped), "-q")
    assert bad.returncode == 1, (bad.stdout + bad.stderr)[-2000:]
    assert "X1" in bad.stdout


def test_without_the_package_nothing_extra_is_collected(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pytest", str(hypotheses_dir() / "test_registered.py"), *ARGS,
                           "--collect-only", "-q"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "test_sink_above_uniform" not in done.stdout
