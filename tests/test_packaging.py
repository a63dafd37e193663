"""sinkbench as an installed pytest plugin: one import name (sinkbench), options registered
through the pytest11 entry point, `sinkbench run` over the bundled hypotheses from any
folder, and defaults that do not depend on the repository's pyproject.toml."""
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from sinkbench.measure.config import Settings, make_settings

ROOT = Path(__file__).resolve().parent.parent


def test_settings_defaults_equal_the_repositorys_tool_sinkbench_table():
    """An installed copy run from a folder without [tool.sinkbench] uses the dataclass
    defaults: they must be the documented ones in pyproject.toml."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["sinkbench"]
    defaults = Settings()
    assert {k: getattr(defaults, k) for k in table} == table
    assert make_settings(ROOT) == make_settings(None)


def test_plugin_options_load_outside_the_repository(tmp_path):
    """The entry point, not the repository's conftest.py, registers the options."""
    p = subprocess.run([sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "--models-file" in p.stdout and "--expect" in p.stdout, p.stdout[-2000:] + p.stderr


def test_the_plugin_leaves_other_test_suites_alone(tmp_path):
    """Loaded by every pytest run in the environment, it parametrizes only sinkbench's own
    tests: another suite's `model_name` fixture is its own."""
    (tmp_path / "conftest.py").write_text("import pytest\n@pytest.fixture\ndef model_name():\n    return 'mine'\n")
    (tmp_path / "test_other.py").write_text("def test_it(model_name):\n    assert model_name == 'mine'\n")
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "1 passed" in p.stdout, p.stdout[-2000:] + p.stderr


def test_the_fixtures_folder_shadows_no_fixtures_package_from_the_repository_root():
    """fixtures/ holds only the zoo (package data, no __init__.py): from the repository root
    `import fixtures` finds the PyPI testing package when it is installed, never this folder."""
    code = "import importlib.util as u; s = u.find_spec('fixtures'); print(s and s.origin)"
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    origin = p.stdout.strip()
    assert origin in ("None", "") or not origin.startswith(str(ROOT)), origin


def _run(cmd, cwd, env, timeout=600):
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _records(d: Path) -> list[dict]:
    return [json.loads(x) for x in (d / "results.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_the_hypotheses_from_an_empty_folder(tmp_path):
    """Build the wheel, install it (and PyPI's `fixtures` and `harness`) into a fresh venv
    that borrows torch & co. from this one, then run from an empty folder. About 35 s;
    slow because it needs PyPI for `fixtures` and `harness`."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")}
    wheels = tmp_path / "wheels"
    p = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", ROOT, "-w", wheels], ROOT, env)
    assert p.returncode == 0, p.stderr[-3000:]
    (wheel,) = wheels.glob("sinkbench-*.whl")
    assert wheel.stat().st_size < 12 * 2**20  # the code plus the zoo (about 6 MB)

    venv = tmp_path / "venv"
    p = _run([sys.executable, "-m", "venv", venv], tmp_path, env)
    assert p.returncode == 0, p.stderr
    py = venv / "bin" / "python"
    # sinkbench from the wheel, and the PyPI packages whose names the repository's folders carry
    p = _run([py, "-m", "pip", "install", "-q", "--no-deps", wheel, "fixtures", "harness"], tmp_path, env)
    assert p.returncode == 0, p.stderr[-3000:]
    # The dependencies (torch, transformers, pytest, ...) from this venv, without reinstalling them:
    # a path line, so this venv's own .pth files (its editable sinkbench) are not processed there.
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, env).stdout.strip())
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_sinkbench_deps.pth").write_text("".join(f"{d}\n" for d in sorted(ours)))

    empty = tmp_path / "empty"
    empty.mkdir()
    code = ("import json, fixtures, harness, sinkbench, sinkbench.run.plugin, sinkbench.run.cli, sinkbench.model.models as m; "
            "print(json.dumps({'fixtures': fixtures.__file__, 'harness': harness.__file__, 'sinkbench': sinkbench.__file__, "
            "'fixture': hasattr(fixtures, 'Fixture'), 'zoo': str(m.ZOO_DIR), 'hyp': str(sinkbench.run.plugin.hypotheses_dir())}))")
    p = _run([py, "-c", code], empty, env)
    assert p.returncode == 0, p.stderr[-3000:]
    where = json.loads(p.stdout)
    for name in ("fixtures", "harness", "sinkbench", "zoo", "hyp"):
        assert where[name].startswith(str(site)), where  # the new venv's files, not the repository's
    assert where["fixture"] and Path(where["harness"]).parent.name == "harness"
    assert (Path(where["zoo"]) / "tiny-bb-bos" / "model.safetensors").exists()

    small = ["--layers", "0", "--n-seqs", "8", "--seq-len", "32", "-k", "dark_tail", "-p", "no:cacheprovider"]
    p = _run([venv / "bin" / "sinkbench", "run", "--model", "tiny-bb-bos", *small, "--results", "R"], empty, env)
    assert p.returncode in (0, 1), p.stdout[-3000:] + p.stderr[-3000:]
    recs = _records(empty / "R")
    assert recs and {r["model"] for r in recs} == {"tiny-bb-bos"} and {r["hypothesis"] for r in recs} == {"H1"}
    assert recs[0]["params"]["n_bands"] == 20  # the dataclass defaults: no pyproject.toml here

    ckpt = tmp_path / "ckpt" / "my-model"
    shutil.copytree(ROOT / "fixtures" / "zoo" / "tiny-bb-nobos", ckpt)
    p = _run([py, "-m", "sinkbench", "run", "--model", ckpt, *small, "--results", "L"], empty, env)
    assert p.returncode in (0, 1), p.stdout[-3000:] + p.stderr[-3000:]
    recs = _records(empty / "L")
    assert recs and all(r["hypothesis"] == "H1" for r in recs), recs

    p = _run([venv / "bin" / "sinkbench", "run", "--model", "tiny-bb-bos", "--alpha", "1.5"], empty, env)
    lines = [x for x in (p.stdout + p.stderr).splitlines() if x.strip()]
    assert p.returncode == 4 and lines == ["ERROR: --alpha: 1.5 is outside (0.0, 0.5]; pass a value in that range"], lines
    p = _run([venv / "bin" / "sinkbench", "compare", "missing", "also-missing"], empty, env)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert sorted(x.name for x in empty.iterdir() if x.name != ".benchmarks") == ["L", "R"]  # nothing else left behind
