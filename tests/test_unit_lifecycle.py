"""A lab's own unit as safe as a built-in one (issue 27), end to end on the tiny zoo model with
the unit `sinkbench new-hypothesis` writes, loaded unpackaged (--hypothesis-module):
--resume recomputes a case whose unit code or setting changed and says so in one line;
--units the unit does not apply is refused at start-up; the start-up checks run for
hypothesis tests collected from any folder; unit settings are checked in one line;
`sinkbench list` shows the unit."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sinkbench.run.plugin import hypotheses_dir
from sinkbench.run.skeleton import write_skeleton

ARGS = ["--model", "tiny-bb-bos", "--seq-len", "64", "--n-seqs", "16", "-p", "no:cacheprovider"]


@pytest.fixture
def unit(tmp_path) -> Path:
    return write_skeleton("D1", str(tmp_path / "pkg")) / "sinkbench_d1.py"


def pytest_run(cwd: Path, *args: str, target=None) -> subprocess.CompletedProcess:
    target = str(target or hypotheses_dir() / "test_registered.py")
    return subprocess.run([sys.executable, "-m", "pytest", target, *ARGS, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, PYTHONPATH=""))


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_resume_recomputes_a_case_of_other_unit_settings_or_code_and_says_so(unit, tmp_path):
    results = tmp_path / "r"
    common = ("--hypothesis-module", str(unit), "--results", str(results), "-q")
    first = pytest_run(tmp_path, *common)
    assert first.returncode in (0, 1), (first.stdout + first.stderr)[-3000:]
    recs = records(results / "results.jsonl")
    assert len(recs) == 2 and all(r["params"]["min_deepest"] == 0.5 and r["params"]["units"] == "window" for r in recs)
    assert all(r["unit"]["name"] == "D1" and r["unit"]["package"] is None and len(r["unit"]["source"]) == 16 for r in recs)
    assert "2 results appended" in first.stdout
    # the same code and settings: kept, and nothing is said to be appended
    same = pytest_run(tmp_path, *common, "--resume")
    assert "0 results appended" in same.stdout and "2 kept from an earlier run by --resume" in same.stdout, same.stdout
    assert len(records(results / "results.jsonl")) == 2
    # another threshold: recomputed, one line saying which setting changed
    other = pytest_run(tmp_path, *common, "--resume", "--set", "D1.min_deepest=0.8")
    lines = [line for line in other.stdout.splitlines() if "--resume:" in line]
    assert lines == [f"[sinkbench] --resume: D1 on tiny-bb-bos: cases recomputed, not reused from {results / 'results.jsonl'}: "
                     "D1.min_deepest changed (0.5 -> 0.8)"], other.stdout[-3000:]
    assert [r["params"]["min_deepest"] for r in records(results / "results.jsonl")] == [0.5, 0.5, 0.8, 0.8]
    # other unit code (same settings as the first run): recomputed, the source named
    unit.write_text(unit.read_text() + "\n# an edit\n")
    edited = pytest_run(tmp_path, *common, "--resume")
    assert "D1's source changed" in edited.stdout and "2 results appended" in edited.stdout, edited.stdout[-3000:]


def test_units_document_is_refused_at_start_up_by_a_unit_that_does_not_apply_it(unit, tmp_path):
    unit.write_text(unit.read_text().replace('supports=Support(units=("window", "document"))', "supports=Support()"))
    docs = tmp_path / "docs.txt"
    docs.write_text("\n\n".join(" ".join(f"word{i} text{j} of document {i}." for j in range(400)) for i in range(40)))
    done = pytest_run(tmp_path, "--hypothesis-module", str(unit), "--units", "document", "--dataset", str(docs),
                      "--results", str(tmp_path / "r"))
    assert done.returncode == 4, (done.stdout + done.stderr)[-3000:]
    assert done.stderr.strip().splitlines() == [
        f"ERROR: --units document: D1 (--hypothesis-module {unit}) does not apply it (it supports window); pass --units "
        "window, or leave its tests out with -k 'not test_d1_sink_grows_with_depth'"]
    assert not (tmp_path / "r" / "results.jsonl").exists()


def test_start_up_checks_run_for_hypothesis_tests_collected_from_another_folder(tmp_path):
    """Another checkout's hypotheses (not the installed folder): the seq-len error comes at
    start-up, exit 4, before any weights load, not as a test failure."""
    other = tmp_path / "other-checkout" / "hypotheses"
    other.mkdir(parents=True)
    shutil.copy(hypotheses_dir() / "test_dark_tail_necessary.py", other / "test_dark_tail_necessary.py")
    done = subprocess.run([sys.executable, "-m", "pytest", "hypotheses", "--model", "tiny-bb-bos", "--seq-len", "100000",
                           "--results", str(tmp_path / "r"), "-p", "no:cacheprovider"], cwd=other.parent,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 4, (done.stdout + done.stderr)[-3000:]
    assert "ERROR: --seq-len 100000: longer than tiny-bb-bos's max_position_embeddings" in done.stderr
    assert "loading" not in done.stdout


@pytest.mark.parametrize("args, message", [
    (["--set", "D1.nope=1"], "ERROR: --set: D1 has no setting 'nope'; its settings: min_deepest"),
    (["--set", "D1.min_deepest=2"], "ERROR: --set D1.min_deepest: 2.0 is outside [0.0, 1.0]; pass a value in that range"),
    (["--set", "D1.min_deepest=much"], "ERROR: --set D1.min_deepest: expected a number, got 'much'"),
    (["--set", "nounit.x=1"], "ERROR: --set: no hypothesis unit named 'nounit'; units with settings: H7, D1 (`sinkbench list` shows them)"),
    (["--set", "D1min_deepest"], "ERROR: --set 'D1min_deepest': expected UNIT.KEY=VALUE"),
])
def test_a_bad_unit_setting_is_one_line_at_start_up(unit, tmp_path, args, message):
    done = pytest_run(tmp_path, "--hypothesis-module", str(unit), *args, "--collect-only")
    assert done.returncode == 4, (done.stdout + done.stderr)[-2000:]
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(message), line


def sinkbench_run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sinkbench", "run", *ARGS, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def test_pyproject_sets_a_unit_setting_and_an_unknown_key_lists_the_real_ones(unit, tmp_path):
    """`sinkbench run` reads the current folder's pyproject.toml: its configfile, and its
    [tool.sinkbench] and [tool.sinkbench.<unit>] tables (never the product's own)."""
    (tmp_path / "pyproject.toml").write_text("[tool.sinkbench]\nbogus = 1\n")
    done = sinkbench_run(tmp_path, "--hypothesis-module", str(unit), "--collect-only")
    (line,) = done.stderr.strip().splitlines()
    assert done.returncode == 4 and "unknown key(s) ['bogus']" in line and "n_seqs" in line and "extra" not in line, line
    (tmp_path / "pyproject.toml").write_text("[tool.sinkbench.D1]\nmin_deepest = 0.9\nfoo = 1\n")
    done = sinkbench_run(tmp_path, "--hypothesis-module", str(unit), "--collect-only")
    assert done.returncode == 4 and "D1 has no setting 'foo'; its settings: min_deepest" in done.stderr, done.stderr
    (tmp_path / "pyproject.toml").write_text("[tool.sinkbench.D1]\nmin_deepest = 0.9\n")
    done = sinkbench_run(tmp_path, "--hypothesis-module", str(unit), "-k", "deepest", "--results", str(tmp_path / "r"))
    assert f"configfile: pyproject.toml" in done.stdout, done.stdout[:1500]
    assert [r["params"]["min_deepest"] for r in records(tmp_path / "r" / "results.jsonl")] == [0.9], done.stdout[-2000:]


def test_sinkbench_list_shows_a_unit_its_origin_settings_and_support(unit, tmp_path):
    done = subprocess.run([sys.executable, "-m", "sinkbench", "list", "--hypothesis-module", str(unit)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "H1: the dark tail is necessary" in out and "origin: sinkbench 0.1.0 (built in" in out
    block = out[out.index("D1: the sink's share of attention grows with depth"):]
    assert "origin: unpackaged (--hypothesis-module" in block
    assert "setting D1.min_deepest = 0.5 in [0.0, 1.0]: share of the deepest layer's attention the sink must hold" in block
    assert "claim D1/grows:" in block and "supports: --units window/document; --remote no" in block


def test_the_power_warning_names_only_the_selected_units(unit, tmp_path):
    done = subprocess.run([sys.executable, "-m", "pytest", "hypotheses", "--co", "-q", "-p", "no:cacheprovider",
                           "--model", "tiny-bb-bos", "--seq-len", "64", "--n-seqs", "3", "--hypothesis-module", str(unit),
                           "-k", "test_d1", "--results", str(tmp_path / "r")],
                          cwd=hypotheses_dir().parent, capture_output=True, text=True, timeout=300)
    warnings = [line for line in done.stdout.splitlines() if "[sinkbench] warning" in line]
    assert warnings and all("D1" in line for line in warnings), done.stdout[-3000:]


def test_a_models_file_sets_a_unit_setting_checked_like_the_others(unit, tmp_path):
    models = tmp_path / "models.toml"
    models.write_text('[[model]]\nname = "tiny-bb-bos"\n\n[settings.D1]\nmin_deepest = 1.5\n')
    done = subprocess.run([sys.executable, "-m", "pytest", str(hypotheses_dir() / "test_registered.py"), "--models-file",
                           str(models), "--seq-len", "64", "-p", "no:cacheprovider", "--hypothesis-module", str(unit),
                           "--collect-only"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 4, done.stdout[-2000:]
    assert done.stderr.strip() == (f"ERROR: --models-file {models} [settings.<unit>] D1.min_deepest: 1.5 is outside "
                                   "[0.0, 1.0]; pass a value in that range")


def test_baseline_does_not_compare_cases_made_by_other_unit_code():
    from sinkbench.read.compare import compare_records

    rec = {"hypothesis": "D1", "model": "m", "layer": None, "claim": "grows", "verdict": "pass", "metrics": {},
           "params": {"min_deepest": 0.5}, "unit": {"name": "D1", "package": "sinkbench-d1", "version": "0.1", "source": "a"}}
    same = compare_records([rec], [dict(rec)])
    assert same.clean
    other = compare_records([rec], [dict(rec, verdict="fail", unit=dict(rec["unit"], version="0.2", source="b"))])
    assert not other.clean
    assert other.lines() == ["unit code differs: D1 version 0.1 -> 0.2; D1 source a -> b (baseline -> this run); its cases "
                             "were computed by other code, so they are not compared: rerun the baseline with this code"]
    older = dict(rec)
    del older["unit"]  # a record from before records named their unit: not a difference
    assert compare_records([older], [rec]).clean


@pytest.mark.parametrize("resume_call, record_extra, reused", [
    # resume names fewer fields than record, one recorded case matches: reused (H2a: k, then claim 'a')
    ('bench.resume("D1", model_name, None, claim=claim)', ', variant="v"', True),
    # resume names none of the fields that tell the two claims apart: recomputed, and said why
    ('bench.resume("D1", model_name, None)', "", False),
])
def test_resume_with_fewer_case_fields_than_the_record(unit, tmp_path, resume_call, record_extra, reused):
    text = unit.read_text()
    text = text.replace('bench.resume("D1", model_name, None, claim=claim)', resume_call)
    text = text.replace('passed, m, claim=claim)', f'passed, m, claim=claim{record_extra})')
    unit.write_text(text)
    common = ("--hypothesis-module", str(unit), "--results", str(tmp_path / "r"), "-q")
    pytest_run(tmp_path, *common)
    again = pytest_run(tmp_path, *common, "--resume")
    if reused:
        assert "0 results appended" in again.stdout and "--resume:" not in again.stdout, again.stdout[-2000:]
    else:
        assert "2 results appended" in again.stdout, again.stdout[-2000:]
        assert ("--resume: D1 on tiny-bb-bos: cases recomputed: bench.resume() was given no case fields and cannot tell 2 "
                "recorded cases apart (they differ in ['claim']); pass bench.resume the case fields bench.record gets"
                in again.stdout), again.stdout[-2000:]


def test_a_units_own_test_module_gives_its_tests_their_own_node_ids(unit, tmp_path):
    """Hypothesis(test_module=...): the package's module names the tests (pytest_functions), pytest
    --pyargs collects them with node ids of their own, and test_registered.py leaves them out."""
    unit.write_text(unit.read_text().replace('methods="this module\'s docstring")',
                                             'methods="this module\'s docstring", test_module="d1_tests")'))
    (unit.parent / "d1_tests.py").write_text('from sinkbench.registry import pytest_functions\n\nglobals().update(pytest_functions("D1"))\n')
    done = subprocess.run([sys.executable, "-m", "pytest", str(hypotheses_dir() / "test_registered.py"), "--pyargs", "d1_tests",
                           *ARGS, "--hypothesis-module", str(unit), "--collect-only", "-q", "--rootdir", str(unit.parent)],
                          cwd=unit.parent, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(unit.parent)))
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    assert ids == ["d1_tests.py::test_d1_sink_grows_with_depth[tiny-bb-bos-grows]",
                   "d1_tests.py::test_d1_sink_grows_with_depth[tiny-bb-bos-deepest]"], done.stdout + done.stderr


def test_start_up_checks_stop_an_xdist_run_from_another_folder_with_their_line(tmp_path):
    """With pytest-xdist the workers collect: their start-up problems reach the controller,
    which stops the run (exit 4) with the line, instead of a worker crash that loses it."""
    other = tmp_path / "other-checkout" / "hypotheses"
    other.mkdir(parents=True)
    shutil.copy(hypotheses_dir() / "test_dark_tail_necessary.py", other / "test_dark_tail_necessary.py")
    done = subprocess.run([sys.executable, "-m", "pytest", "hypotheses", "-n", "2", "--model", "tiny-bb-bos", "--seq-len",
                           "100000", "--results", str(tmp_path / "r"), "-p", "no:cacheprovider"], cwd=other.parent,
                          capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 4, out[-3000:]
    assert "--seq-len 100000: longer than tiny-bb-bos's max_position_embeddings" in out and "INTERNALERROR" not in out


def test_what_resume_says_differs_from_an_old_record():
    from sinkbench.run.resume_note import differences

    identity = {"sinkbench": "0.2.0", "units": [{"name": "D1", "package": "lab", "version": "1.1", "source": "b",
                                                 "settings": {"min_deepest": 0.8}}]}
    old = {"versions": {"sinkbench": "0.1.0"}, "params": {"min_deepest": 0.5, "n_seqs": 16},
           "unit": {"name": "D1", "package": "lab", "version": "1.0", "source": "a"}}
    assert differences(old, identity, {"n_seqs": 32}, None) == [
        "made by sinkbench 0.1.0, this is 0.2.0", "D1's version changed (1.0 -> 1.1)", "D1's source changed (a -> b)",
        "D1.min_deepest changed (0.5 -> 0.8)", "n_seqs changed (16 -> 32)"]
    del old["unit"]
    assert "the record does not say which D1 code made it" in differences(old, identity, {}, None)


def test_new_hypothesis_writes_a_package_whose_tests_pass(tmp_path):
    done = subprocess.run([sys.executable, "-m", "sinkbench", "new-hypothesis", "X5"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "wrote sinkbench-x5" in done.stdout, done.stderr
    pkg = tmp_path / "sinkbench-x5"
    assert sorted(p.name for p in pkg.iterdir()) == ["README.md", "pyproject.toml", "sinkbench_x5.py", "tests"]
    assert 'x5 = "sinkbench_x5"' in (pkg / "pyproject.toml").read_text()  # the entry point
    tests = subprocess.run([sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"], cwd=pkg,
                           capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(pkg)))
    assert tests.returncode == 0 and "3 passed" in tests.stdout, tests.stdout[-2000:]
    again = subprocess.run([sys.executable, "-m", "sinkbench", "new-hypothesis", "X5"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 2 and again.stderr.strip() == (
        "sinkbench new-hypothesis: error: new-hypothesis X5: sinkbench-x5 exists and is not empty; pass --dir with a new folder")
    bad = subprocess.run([sys.executable, "-m", "sinkbench", "new-hypothesis", "9x"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "a unit's name is letters, digits" in bad.stderr
