"""The README's "Write your own hypothesis" is enough: its unit, pyproject.toml and install
commands, copied out of the README, install into a fresh venv and run (listed, run on the
tiny zoo model, recorded with its identity, --resume recomputing after a changed setting);
and its unit is the one `sinkbench new-hypothesis` writes."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sinkbench.run.skeleton import UNIT

README = Path(__file__).resolve().parent.parent / "README.md"


def section() -> str:
    text = README.read_text()
    start = text.index("## Write your own hypothesis")
    return text[start:text.index("\n## ", start + 1)]


def blocks() -> dict[str, str]:
    """The section's code blocks by language (python, toml, sh), one each."""
    found = re.findall(r"```(\w+)\n(.*?)```", section(), flags=re.S)
    langs = [lang for lang, _ in found]
    assert sorted(langs) == ["python", "sh", "toml"], langs
    return dict(found)


def test_the_readme_unit_is_the_skeleton_of_new_hypothesis():
    code = blocks()["python"]
    first, rest = code.split("\n", 1)
    assert first == "# sinkbench-d1/sinkbench_d1.py"
    assert rest == UNIT.replace("__NAME__", "D1").replace("__SLUG__", "d1")


@pytest.mark.slow  # a fresh venv, an editable install and three runs on the tiny zoo model: about a minute
def test_the_readme_unit_installs_in_a_fresh_venv_and_runs(tmp_path):
    b = blocks()
    pkg = tmp_path / "sinkbench-d1"
    pkg.mkdir()
    (pkg / "sinkbench_d1.py").write_text(b["python"].split("\n", 1)[1])
    (pkg / "pyproject.toml").write_text(b["toml"].split("\n", 1)[1])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["SINKBENCH_PYTHON"] = sys.executable
    done = subprocess.run(["bash", "-c", b["sh"]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    out = done.stdout + done.stderr
    assert (tmp_path / "lab-env" / "pyvenv.cfg").exists(), out[-3000:]
    # listed, with its origin: the package installed into the fresh venv
    assert "D1: the sink's share of attention grows with depth" in out, out[-3000:]
    assert "origin: sinkbench-d1 0.1.0 (entry point d1 = 'sinkbench_d1'" in out
    # run and recorded, then recomputed by --resume after the changed setting, saying so
    recs = [json.loads(line) for line in (tmp_path / "results" / "results.jsonl").read_text().splitlines()]
    assert [r["params"]["min_deepest"] for r in recs] == [0.5, 0.5, 0.8, 0.8], out[-3000:]
    assert all(r["unit"]["package"] == "sinkbench-d1" and r["unit"]["version"] == "0.1.0" for r in recs)
    assert "D1.min_deepest changed (0.5 -> 0.8)" in out
    assert "D1/grows" in out and "D1/deepest" in out  # in the matrix
    # the report's criterion column reads the unit's setting from each record
    rep = subprocess.run([str(tmp_path / "lab-env" / "bin" / "python"), "-m", "sinkbench", "report", "results"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=600)
    assert rep.returncode == 0, rep.stderr[-2000:]
    text = (tmp_path / "results" / "report.md").read_text()
    assert "min_deepest 0.8" in text and "sink share deepest − first" in text
