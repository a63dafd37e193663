"""Faults that lose nothing (issue 31): damaged inputs are named in one line at start-up
(exit 4), damaged caches and checkpoints are detected and redone, and corrupt results lines
are named with their file and line, never skipped silently."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sinkbench import models, preflight
from sinkbench.config import make_settings
from sinkbench.errors import SinkbenchError

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "fixtures" / "zoo"


def pytest_run(tmp_path, *args, path="hypotheses", timeout=300):
    cmd = [sys.executable, "-m", "pytest", path, "-p", "no:cacheprovider", "--results", str(tmp_path / "results"), *args]
    env = {**os.environ, "SINKBENCH_CACHE": str(tmp_path / "cache")}
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    return p.returncode, p.stdout + p.stderr


def one_line_exit_4(code: int, out: str) -> list[str]:
    assert code == 4, out
    assert not re.search(r"Traceback|INTERNALERROR|\.py:\d+|During handling", out), out
    return [line for line in out.splitlines() if line.strip()]


# ------------------------------------------------------------------ damaged weights
def zoo_copy(tmp_path, name="tiny-bb-bos") -> Path:
    d = tmp_path / name
    shutil.copytree(ZOO / name, d)
    return d


def _truncate(f: Path, keep: float = 0.5) -> None:
    data = f.read_bytes()
    f.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("damage,match", [
    (lambda f: _truncate(f), r"truncated or half-copied"),
    (lambda f: _truncate(f, 0.0), r"shorter than a safetensors header"),
    (lambda f: f.write_bytes(f.read_bytes()[:8] + b"\xff" * 40 + f.read_bytes()[48:]), r"header is not JSON"),
    (lambda f: f.write_bytes((10 ** 12).to_bytes(8, "little") + f.read_bytes()[8:]), r"header says \d+ bytes"),
    (lambda f: f.write_bytes(f.read_bytes() + b"\0" * 16), r"trailing bytes"),
])
def test_damaged_weights_are_named_at_start_up(tmp_path, damage, match):
    d = zoo_copy(tmp_path)
    damage(d / "model.safetensors")
    problem = models.weights_problem(models.resolve(str(d)))
    assert problem and re.search(match, problem) and str(d / "model.safetensors") in problem and "\n" not in problem
    (msg,) = preflight.model_problems(str(d), make_settings(seq_len=64), "", True)
    assert msg == problem


def test_whole_weights_pass_the_header_check():
    for name in models.zoo_aliases():
        assert models.weights_problem(models.resolve(name)) is None, name


def test_a_missing_shard_is_named(tmp_path):
    d = zoo_copy(tmp_path)
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-00002-of-00002.safetensors"}}))
    assert "model-00002-of-00002.safetensors" in models.weights_problem(models.resolve(str(d)))


def test_half_copied_weights_stop_the_run_at_start_up(tmp_path):
    d = zoo_copy(tmp_path)
    _truncate(d / "model.safetensors", 0.7)
    lines = one_line_exit_4(*pytest_run(tmp_path, "--model", str(d), "--seq-len", "32", "--n-seqs", "4", "-k", "H1"))
    assert len(lines) == 1 and lines[0].startswith(f"ERROR: --model {d}: damaged weights: {d / 'model.safetensors'}"), lines


def test_the_loader_refuses_damaged_weights_in_one_line(tmp_path):
    from sinkbench.access import load_subject

    d = zoo_copy(tmp_path)
    _truncate(d / "model.safetensors", 0.9)
    with pytest.raises(SinkbenchError, match="damaged weights") as e:
        load_subject(str(d))
    assert "\n" not in str(e.value)


def test_a_damaged_converted_gguf_cache_is_named_and_redone(tmp_path, monkeypatch, capsys):
    """The conversion cache of a GGUF (converted/<sha>) is checked before use: missing files, a
    manifest for another file or transformers, or damaged weights make it convert again."""
    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF not really")
    digest = models.sha256_file(gguf)
    target = models.cache_root() / "converted" / digest[:20]
    shutil.copytree(ZOO / "tiny-bb-bos", target)
    (target / "sinkbench_source.json").write_text(json.dumps({"gguf": str(gguf), "sha256": digest}))
    source = models.ModelSource("m", "gguf", str(gguf))
    assert models.converted_dir(source) == target  # whole: used as is
    _truncate(target / "model.safetensors", 0.5)
    converted = []

    class Stop(Exception):
        pass

    def fake_convert(*a, **k):
        converted.append(1)
        raise Stop

    import transformers

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake_convert)
    with pytest.raises(Stop):
        models.converted_dir(source)
    assert converted and "converted model cache" in capsys.readouterr().err
    assert "damaged weights" in models.weights_problem(source)
