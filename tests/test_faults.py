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

from sinkbench.model import models
from sinkbench.run import preflight
from sinkbench.measure.config import make_settings
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
    from sinkbench.model.access import load_subject

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


# ------------------------------------------------------------------ checkpoints
import torch  # noqa: E402

from sinkbench.measure import checkpoint
from sinkbench.read import results  # noqa: E402


def _one_pass(subject, windows, n=None):
    from sinkbench.measure import interventions

    return interventions.run_batched(subject, windows if n is None else windows[:n], 4, attn_layers=range(2))


@pytest.mark.parametrize("how", ["flip", "truncate", "random", "empty", "old format"])
def test_a_damaged_checkpoint_is_named_and_its_pass_redone(tmp_path, llama_subject, how, capsys):
    windows = torch.randint(3, 60, (6, 16), generator=torch.Generator().manual_seed(1))
    store = checkpoint.configure(tmp_path, read=True)
    try:
        first = _one_pass(llama_subject, windows)
        (path,) = (tmp_path / "tiny").iterdir()
        data = bytearray(path.read_bytes())
        if how == "flip":
            data[len(data) // 2] ^= 0x01  # one bit of the tensors
        elif how == "truncate":
            data = data[: len(data) - 100]
        elif how == "random":
            data = bytearray(os.urandom(len(data)))
        elif how == "empty":
            data = bytearray()
        else:  # a bare torch.save, as sinkbench wrote before checksums
            path.unlink()
            torch.save({"nll": first.nll}, path)
            data = bytearray(path.read_bytes())
        path.write_bytes(bytes(data))
        capsys.readouterr()
        again = _one_pass(llama_subject, windows)
        err = capsys.readouterr().err
        assert store.restored == 0 and store.redone == 1 and store.saved == 2
        assert f"checkpoint {path}" in err and "running its pass again" in err, err
        assert torch.equal(again.token_nll, first.token_nll)
        third = _one_pass(llama_subject, windows)  # rewritten whole: read back now
        assert store.restored == 1 and torch.equal(third.token_nll, first.token_nll)
    finally:
        checkpoint.configure(None)


def test_the_key_leaves_out_thread_count_and_batch_size():
    t = torch.arange(6.0)
    threads = torch.get_num_threads()
    a = checkpoint.key_of("pass", dict(windows=t, batch_size=4))
    try:
        torch.set_num_threads(1 if threads > 1 else 2)
        assert checkpoint.key_of("pass", dict(windows=t, batch_size=16)) == a
    finally:
        torch.set_num_threads(threads)
    assert checkpoint.key_of("pass", dict(windows=t + 1, batch_size=4)) != a


def rec(model="tiny", hypothesis="H1", **extra):
    return {"hypothesis": hypothesis, "model": model, "verdict": "pass", **extra}


def test_saved_passes_are_deleted_only_once_their_grids_records_are_written(tmp_path, llama_subject):
    from sinkbench.measure import progress

    windows = torch.randint(3, 60, (6, 16), generator=torch.Generator().manual_seed(2))
    store = checkpoint.configure(tmp_path / "checkpoints", read=True)
    out = tmp_path / "results.jsonl"
    try:
        with progress.tracking(f"H1 on {llama_subject.name}", 1, lambda s: None):
            _one_pass(llama_subject, windows)
        with progress.tracking(f"H4-A on {llama_subject.name}", 1, lambda s: None):
            _one_pass(llama_subject, windows, 5)
        with progress.tracking(f"H2 on {llama_subject.name}", 1, lambda s: None):
            _one_pass(llama_subject, windows, 4)  # a grid that ends in an error: no record
        results.append_jsonl(out, rec(hypothesis="H1"))
        results.append_jsonl(out, rec(hypothesis="H4", claim="A1"))
        results.append_jsonl(out, rec(model="other", hypothesis="H2"))  # another model's record
        assert checkpoint.clear_touched() == 2  # H1's and H4-A's passes
        left = list((tmp_path / "checkpoints").rglob("*.pt"))
        assert len(left) == 1 and store.saved == 3
    finally:
        checkpoint.configure(None)


def test_a_session_with_no_records_keeps_every_saved_pass(tmp_path, llama_subject):
    """The full-disk case of issue 31: the grid's records could not be written, so the
    session's end deletes nothing and --resume reads every pass back."""
    windows = torch.randint(3, 60, (6, 16), generator=torch.Generator().manual_seed(3))
    checkpoint.configure(tmp_path / "checkpoints", read=True)
    try:
        _one_pass(llama_subject, windows)
        _one_pass(llama_subject, windows, 5)
        assert checkpoint.clear_touched() == 0
        assert len(list((tmp_path / "checkpoints").rglob("*.pt"))) == 2
    finally:
        checkpoint.configure(None)


def test_a_failed_record_write_is_one_line_and_keeps_the_models_passes(tmp_path, llama_subject, monkeypatch):
    windows = torch.randint(3, 60, (6, 16), generator=torch.Generator().manual_seed(4))
    checkpoint.configure(tmp_path / "checkpoints", read=True)
    out = tmp_path / "res" / "results.jsonl"
    try:
        _one_pass(llama_subject, windows)
        results.append_jsonl(out, rec())  # releases the pass ...
        real = os.write

        def full(fd, data):
            if data.startswith(b"{"):
                raise OSError(28, "No space left on device")
            return real(fd, data)

        monkeypatch.setattr(os, "write", full)
        with pytest.raises(SinkbenchError) as e:
            results.append_jsonl(out, rec(layer=2))
        monkeypatch.undo()
        msg = str(e.value)
        assert "\n" not in msg and "No space left on device" in msg and "--resume" in msg and str(out.parent) in msg
        assert checkpoint.clear_touched() == 0  # ... but a record of that model was lost: keep them
    finally:
        checkpoint.configure(None)


# ------------------------------------------------------------------ results.jsonl
GOOD = json.dumps(rec()) + "\n"


@pytest.mark.parametrize("content,line,why", [
    (GOOD + '{"hypothesis": "H1", "mo', 2, "a torn last line"),
    (GOOD + "\0\0\0\0", 2, "only NUL bytes"),
    (GOOD.encode() + b'{"hypothesis": "H\xe9"}\n' + GOOD.encode(), 2, "not UTF-8 (byte 0xe9"),
    (GOOD + "[1, 2]\n" + GOOD, 2, "a JSON list, not a record object"),
    (GOOD + '{"time": 1}\n', 2, "not a sinkbench record (no hypothesis, model, verdict)"),
    (GOOD + "garbage\n" + GOOD, 2, "not JSON"),
    ("\ufeff" + GOOD, 1, "starts with a UTF-8 byte-order mark (BOM)"),
])
def test_every_reader_names_a_bad_line_with_its_file_and_number(tmp_path, content, line, why, capsys):
    from sinkbench.read.compare import load_results

    path = tmp_path / "results.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(SinkbenchError) as e:  # --expect, --baseline, compare, report: one-line error
        load_results(tmp_path, "--expect")
    assert f"{path}: line {line}: {why}" in str(e.value) and "\n" not in str(e.value)
    got = results.read_jsonl(path)  # the --resume reader: warns, reads the rest (and repairs a torn tail)
    assert all(r["model"] == "tiny" for r in got) and got
    err = capsys.readouterr().err
    assert f"{path}: line {line}: {why}" in err, err


@pytest.mark.parametrize("tail,kept", [('{"hypothesis": "H1", "mo', True), ("\0" * 37, False),
                                       (json.dumps(rec(layer=7)), None)])
def test_appending_repairs_a_torn_tail_first(tmp_path, tail, kept, capsys):
    path = tmp_path / "results.jsonl"
    path.write_text(GOOD + tail)
    results.append_jsonl(path, rec(layer=9))
    lines = path.read_text().splitlines()
    assert [json.loads(x).get("layer") for x in lines] == ([None, 7, 9] if kept is None else [None, 9])
    torn = list(tmp_path.glob("results.jsonl.torn-*"))
    assert (len(torn) == 1 and torn[0].read_text() == tail) if kept else not torn
    if kept is not None:
        assert f"{path}: line 2 is a torn last line" in capsys.readouterr().err
    assert len(results.read_jsonl(path)) == len(lines)


def test_expect_with_a_torn_expectation_is_an_error_not_a_new_case(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "results.jsonl").write_text(GOOD + GOOD[:30])
    code, out = pytest_run(tmp_path, "--model", "tiny-bb-bos", "--expect", str(tmp_path / "old"), "-k", "H1",
                           "--seq-len", "32", "--n-seqs", "4")
    lines = one_line_exit_4(code, out)
    assert "line 2: a torn last line" in lines[0] and len(lines) == 1, lines


# ------------------------------------------------------------------ models file and pyproject.toml
@pytest.mark.parametrize("text,match", [
    (b'[[models]]\nname = "tiny-bb-bos"\n', r"unknown table \[\[models\]\] \(did you mean \[\[model\]\]\?\)"),
    (b'[defaults]\nseq_len = 32\n[[model]]\nname = "tiny-bb-bos"\n', r"unknown table \[defaults\]"),
    (b'seq_len = 32\n[[model]]\nname = "tiny-bb-bos"\n', r"seq_len = 32 is outside any \[\[model\]\] table"),
    (b"", r"no \[\[model\]\] or \[\[series\]\] tables"),
    (b"# only a comment\n", r"no \[\[model\]\] or \[\[series\]\] tables"),
    (b'[[model]]\nname = "caf\xe9"\n', r"not UTF-8 \(byte 0xe9 at offset \d+\)"),
    (b'[[model]]\nname = "tiny-bb-bos"\nfamily = 3\n', r"family must be a non-empty string, got 3"),
    (b'[[model]]\nname = "tiny-bb-bos"\nseq_len = 32\nlayer = "1"\n', r"unknown keys \['layer'\]"),
    (b'[[model]]\nname = = 1\n', r"not valid TOML"),
])
def test_a_models_file_mistake_is_one_line(tmp_path, text, match):
    from sinkbench.read.series import read_models_file

    f = tmp_path / "models.toml"
    f.write_bytes(text)
    with pytest.raises(SinkbenchError, match=match) as e:
        read_models_file(f)
    assert "\n" not in str(e.value) and str(f) in str(e.value)


# (a Latin-1 byte is read first by the plugin's unit_settings, which needs UnicodeDecodeError in its except)
@pytest.mark.parametrize("text", [b'[[models]]\nname = "tiny-bb-bos"\n', b'seq_len = 32\n[[model]]\nname = "tiny-bb-bos"\n',
                                  b'[[model]]\nname = "tiny-bb-bos"\nfamily = 3\n'])
def test_a_models_file_mistake_stops_the_run_at_start_up(tmp_path, text):
    f = tmp_path / "models.toml"
    f.write_bytes(text)
    lines = one_line_exit_4(*pytest_run(tmp_path, "--models-file", str(f)))
    assert lines[0].startswith(f"ERROR: --models-file {f}:") and len(lines) == 1, lines


# ------------------------------------------------------------------ --expect that checks nothing
def _expect_rec(model, verdict="pass", **extra):
    return {"hypothesis": "H1", "model": model, "layer": 0, "verdict": verdict, "params": {"k": None},
            "metrics": {"delta": 1.0, "delta_ci": [0.5, 1.5]}, **extra}


def test_expectations_that_share_no_case_with_the_run_fail_with_a_message():
    from sinkbench.read import expect

    expected = {expect.case_id(r): expect.from_record(r) for r in [_expect_rec("other-model")]}
    summary = expect.summarize(expected, [_expect_rec("tiny-bb-bos")], 0.0, "old/")
    assert summary.changed and summary.lines()[0].startswith("ERROR: --expect old/: no case of this run has an expectation")
    assert "model=tiny-bb-bos" in summary.lines()[0] and "model=other-model" in summary.lines()[0]
    same = expect.summarize(expected, [_expect_rec("other-model")], 0.0, "old/")
    assert not same.changed and not same.problems


@pytest.mark.parametrize("tolerance", [float("inf"), float("nan"), -1.0])
def test_a_tolerance_that_is_not_finite_fails_with_a_message(tolerance):
    from sinkbench.read import expect

    expected = {expect.case_id(r): expect.from_record(r) for r in [_expect_rec("m")]}
    summary = expect.summarize(expected, [_expect_rec("m")], tolerance, "old/")
    assert summary.changed and "not a finite number >= 0" in summary.lines()[0]


@pytest.mark.slow  # one H1 run of the tiny zoo model (about 20 s on two cores)
def test_a_run_whose_expectations_are_for_another_model_does_not_exit_0(tmp_path):
    old = tmp_path / "old"
    results.append_jsonl(old / "results.jsonl", _expect_rec("another-model", "fail"))
    code, out = pytest_run(tmp_path, "--model", "tiny-bb-bos", "--seq-len", "32", "--n-seqs", "8", "--expect", str(old),
                           path="hypotheses/test_dark_tail_necessary.py")
    assert code == 1, out
    assert "no case of this run has an expectation" in out


def test_a_checkpoint_that_cannot_be_written_is_named_once_and_the_pass_kept(tmp_path, llama_subject, capsys):
    windows = torch.randint(3, 60, (6, 16), generator=torch.Generator().manual_seed(5))
    (tmp_path / "checkpoints").write_text("a file where the folder should be")
    store = checkpoint.configure(tmp_path / "checkpoints", read=True)
    try:
        a = _one_pass(llama_subject, windows)
        b = _one_pass(llama_subject, windows, 5)
        assert torch.equal(a.token_nll[:5], b.token_nll) and store.saved == 0 and store.write_failed >= 2
        err = capsys.readouterr().err
        assert err.count("cannot write it") == 1, err
    finally:
        checkpoint.configure(None)


def test_a_pass_of_several_batches_saves_each_batch_until_the_pass_is_saved(tmp_path, llama_subject):
    """A kill mid-pass loses at most the batch in flight: each batch is saved as it finishes,
    read back on --resume, and dropped once the whole pass is saved."""
    from sinkbench.measure import interventions

    windows = torch.randint(3, 60, (10, 16), generator=torch.Generator().manual_seed(6))
    store = checkpoint.configure(tmp_path, read=True)
    calls = []
    real = interventions.run_pass

    def counting(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed in the third batch
        return real(*a, **k)

    try:
        interventions.run_pass = counting
        with pytest.raises(KeyboardInterrupt):
            interventions.run_batched(llama_subject, windows, 4, attn_layers=range(2))
        assert sorted(p.name.split("-")[0] for p in (tmp_path / "tiny").iterdir()) == ["batch", "batch"]
        calls.clear()
        interventions.run_pass = real
        resumed = interventions.run_batched(llama_subject, windows, 4, attn_layers=range(2))
        assert store.parts_restored == store.restored == 2 and store.saved == 1  # two batches read back; the third ran
        assert [p.name.split("-")[0] for p in (tmp_path / "tiny").iterdir()] == ["pass"]  # batches dropped
        checkpoint.configure(None)
        whole = interventions.run_batched(llama_subject, windows, 4, attn_layers=range(2))
        assert torch.equal(resumed.token_nll, whole.token_nll)
        assert torch.equal(resumed.sink_mass.nan_to_num(), whole.sink_mass.nan_to_num())
    finally:
        interventions.run_pass = real
        checkpoint.configure(None)


def test_the_resume_reader_repairs_a_torn_tail_even_when_nothing_is_appended(tmp_path, capsys):
    from sinkbench.read.compare import load_results

    path = tmp_path / "results.jsonl"
    path.write_text(GOOD + GOOD[:20])
    assert len(results.read_jsonl(path)) == 1  # --resume's reader: names line 2, moves it aside
    err = capsys.readouterr().err
    assert f"{path}: line 2: a torn last line" in err and "kept in results.jsonl.torn-" in err
    assert path.read_text() == GOOD and len(list(tmp_path.glob("results.jsonl.torn-*"))) == 1
    assert len(load_results(tmp_path)) == 1  # readable by every reader now


def test_a_model_folder_whose_name_is_not_utf8_is_named_as_such(tmp_path):
    d = os.fsencode(str(tmp_path)) + b"/caf\xe9-model"
    shutil.copytree(os.fsencode(str(ZOO / "tiny-bb-bos")), d)
    name = os.fsdecode(d)
    problems = preflight.model_problems(name, make_settings(seq_len=32, n_seqs=4), "", True)
    assert problems == [f"--model {name}: its path is not valid UTF-8 (byte 0xe9), which the tokenizer library cannot "
                        "open; rename the folder (or link it under a UTF-8 name)"], problems


def test_a_finished_session_prunes_checkpoints_no_run_of_this_code_can_read(tmp_path, llama_subject):
    windows = torch.randint(3, 60, (6, 16), generator=torch.Generator().manual_seed(7))
    folder = tmp_path / "checkpoints" / "tiny"
    folder.mkdir(parents=True)
    (folder / "pass-old.pt").write_bytes(checkpoint.MAGIC + b"code 0123456789abcdef torch 1.0\n" + b"0" * 80)
    (folder / "pass-older.pt").write_bytes(b"PK\x03\x04 a bare torch.save")
    (folder / ".pass-x.pt.999999999.tmp").write_bytes(b"half")  # a writer that is gone
    (folder / f".pass-y.pt.{os.getpid()}.tmp").write_bytes(b"mine, still writing")
    checkpoint.configure(tmp_path / "checkpoints", read=True)
    try:
        _one_pass(llama_subject, windows)
        other = folder / "pass-another-run-of-this-code.pt"
        other.write_bytes(checkpoint.MAGIC + checkpoint.stamp() + b"0" * 80)
        results.append_jsonl(tmp_path / "results.jsonl", rec())
        assert checkpoint.clear_touched() == 1
        assert sorted(p.name for p in folder.iterdir()) == sorted([other.name, f".pass-y.pt.{os.getpid()}.tmp"])
    finally:
        checkpoint.configure(None)


def test_weights_that_do_not_fit_their_config_are_one_line_at_load(tmp_path):
    """A whole safetensors file of another shape (hidden size 64 under a config that says 32):
    transformers raises deep inside its loader; the run gets one line naming the model."""
    from sinkbench.model.access import load_subject

    d = zoo_copy(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["intermediate_size"] = cfg["intermediate_size"] * 2
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SinkbenchError) as e:
        load_subject(str(d))
    msg = str(e.value)
    assert msg.startswith(f"--model {d}: transformers cannot load it (") and "\n" not in msg, msg


# ------------------------------------------------------------------ a BOM, and a model folder that is not UTF-8 (issue 31 e)
BOM = b"\xef\xbb\xbf"
BOM_SAID = "starts with a UTF-8 byte-order mark (BOM), which"


def _bom_models_file(tmp_path):
    from sinkbench.read.series import read_models_file

    f = tmp_path / "models.toml"
    f.write_bytes(BOM + b'[[model]]\nname = "tiny-bb-bos"\n')
    read_models_file(f)


def _bom_expectations(tmp_path):
    from sinkbench.read import expect

    f = tmp_path / "expected.toml"
    f.write_bytes(BOM + b'[[case]]\nhypothesis = "H1"\nmodel = "m"\nverdict = "pass"\n')
    expect.load(f)


def _bom_pyproject(tmp_path):
    from sinkbench.measure.config import load_pyproject_defaults

    (tmp_path / "pyproject.toml").write_bytes(BOM + b"[tool.sinkbench]\nseq_len = 32\n")
    load_pyproject_defaults(tmp_path)


def _bom_dataset(tmp_path):
    f = tmp_path / "text.jsonl"
    f.write_bytes(BOM + b'{"text": "a line of text"}\n')
    problem = preflight.dataset_problem(str(f))
    if problem:
        raise SinkbenchError(problem)


@pytest.mark.parametrize("read", [_bom_models_file, _bom_expectations, _bom_pyproject, _bom_dataset])
def test_a_bom_is_named_not_called_invalid(tmp_path, read):
    """A UTF-8 byte-order mark at the start of a TOML file (models file, expected.toml,
    pyproject.toml) or a --dataset JSONL was reported as 'Invalid statement (at line 1,
    column 1)' or 'line 1 is not JSON'. Now the BOM is named, with the fix. (results.jsonl:
    test_every_reader_names_a_bad_line_with_its_file_and_number.)"""
    with pytest.raises(SinkbenchError) as e:
        read(tmp_path)
    msg = str(e.value)
    assert BOM_SAID in msg and "without a BOM" in msg and "\n" not in msg and "Invalid statement" not in msg, msg


@pytest.mark.parametrize("file", ["tokenizer.json", "tokenizer_config.json"])
def test_a_model_folder_file_that_is_not_utf8_is_named(tmp_path, file):
    """A Latin-1 byte in a tokenizer file gave 'cannot read its tokenizer (UnicodeDecodeError);
    check the checkpoint's tokenizer files'. Now: the file, the byte and its offset."""
    d = zoo_copy(tmp_path)
    data = (d / file).read_bytes()
    (d / file).write_bytes(data[:-2] + b"\xe9" + data[-2:])
    problems = preflight.model_problems(str(d), make_settings(seq_len=32, n_seqs=4), "", True)
    assert problems == [f"--model {d}: {file} is not UTF-8 (byte 0xe9 at offset {len(data) - 2}); re-save it as UTF-8 "
                        "(or replace the checkpoint's tokenizer files)"], problems


# ------------------------------------------------------------------ records of another sinkbench version (issue 31, 6)
def test_a_record_that_says_another_sinkbench_made_it_is_not_reused():
    """Its case key could still match (a copied or hand-edited record, fault 6 of issue 31):
    the `versions` field alone is enough to recompute it."""
    from sinkbench import __version__
    from sinkbench.run.resume_note import made_by_another_version

    assert made_by_another_version(rec(versions={"sinkbench": "0.0.1"}))
    assert not made_by_another_version(rec(versions={"sinkbench": __version__}))
    assert not made_by_another_version(rec())  # no versions field: the case key decides


def test_a_baseline_of_another_sinkbench_version_is_said_and_not_compared():
    from sinkbench.read.compare import compare_records

    old = _expect_rec("m", versions={"sinkbench": "0.0.1"})
    new = _expect_rec("m", "fail", versions={"sinkbench": "0.1.0"})
    cmp = compare_records([old], [new])
    assert not cmp.clean and cmp.code == [("sinkbench", "version", "0.0.1", "0.1.0")]
    assert cmp.lines()[0].startswith("code differs: sinkbench version 0.0.1 -> 0.1.0 (baseline -> this run)")
    assert compare_records([_expect_rec("m")], [new]).clean is False  # the verdict change still counts ...
    assert compare_records([_expect_rec("m")], [new]).code == []  # ... and a record without versions is no code change


@pytest.mark.slow  # two H1 runs of the tiny zoo model (about 20 s)
def test_resume_recomputes_a_record_edited_to_another_version_and_says_so(tmp_path):
    args = ("--model", "tiny-bb-bos", "--seq-len", "64", "--n-seqs", "8", "-k", "dark_tail")
    code, out = pytest_run(tmp_path, *args)
    path = tmp_path / "results" / "results.jsonl"
    (old,) = [json.loads(x) for x in path.read_text().splitlines()]
    old["versions"]["sinkbench"], old["verdict"] = "0.0.1", "pass" if old["verdict"] == "fail" else "fail"
    path.write_text(json.dumps(old) + "\n")
    code, out = pytest_run(tmp_path, *args, "--resume")
    assert "made by sinkbench 0.0.1" in out and "1 results appended" in out, out[-3000:]
    assert len(path.read_text().splitlines()) == 2


# ------------------------------------------------------------------ a warning inside a test is seen (issue 31, 10)
def test_warnings_a_test_prints_are_shown_once_though_pytest_captured_them():
    """A damaged spectrum cache is named and rebuilt inside a test, whose stderr pytest captures
    and never shows for a passing or finding-failed case: the plugin prints the warning lines."""
    from types import SimpleNamespace

    from sinkbench.run.plugin import show_warnings

    written = []
    tr = SimpleNamespace(write_line=lambda line, **kw: written.append(line), ensure_newline=lambda: None)
    plugins = {"terminalreporter": tr, "capturemanager": None}
    config = SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=plugins.get), option=SimpleNamespace(verbose=0),
                             stash=pytest.Stash())
    warning = "[sinkbench] warning: spectrum cache /c/x.safetensors: unreadable; rebuilding it"
    report = SimpleNamespace(capstderr=f"Loading weights ...\n{warning}\nnoise\n")
    show_warnings(config, report)
    show_warnings(config, report)  # the same line from the next test: once
    assert written == [warning]


@pytest.mark.slow  # two H1 runs of the tiny zoo model (about 20 s)
def test_a_damaged_spectrum_cache_is_named_in_the_run_and_rebuilt(tmp_path):
    args = ("--model", "tiny-bb-bos", "--seq-len", "64", "--n-seqs", "8", "-k", "dark_tail")
    pytest_run(tmp_path, *args)
    files = sorted((tmp_path / "cache" / "spectra").glob("*.safetensors"))
    assert files
    for f in files:
        _truncate(f)
    shutil.rmtree(tmp_path / "results")
    code, out = pytest_run(tmp_path, *args)
    assert code == 1 and "Traceback" not in out, out[-3000:]
    for f in files:
        assert f"[sinkbench] warning: spectrum cache {f}: " in out and "rebuilding it" in out, out[-3000:]
    assert "spectrum cache" not in pytest_run(tmp_path, *args)[1]  # rebuilt whole: read silently
