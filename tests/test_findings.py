"""Findings in one line: a failing verdict reads as one line naming the claim, model, case,
criterion, effect with its interval, p-value and windows (sinkbench.read.findings), in place of a
traceback; a real error keeps its traceback; each model gets a one-line summary; the
report's Answers say in words whether each claim holds, fragile or failing included."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sinkbench.read import findings

ROOT = Path(__file__).resolve().parents[1]


def record(verdict="fail", fragile=False, **over):
    r = {"hypothesis": "H4", "claim": "A1", "model": "m", "layer": 15, "target": "middle", "variant": "add",
         "verdict": verdict,
         "params": {"rho": 3.0, "n_seqs": 16, "alpha": 0.05, "dtype": "float32", "target": "middle", "variant": "add"},
         "metrics": {"capture_ratio": 2.1, "capture_ratio_ci": [1.4, 2.9], "p_values": [0.21, 1e-4],
                     "n_windows": 16, "n_informative": 15, "n_nan": 1, "fragile": fragile,
                     "verdict_stability": 0.62 if fragile else 1.0}}
    r.update(over)
    return r


def test_a_finding_names_claim_model_case_criterion_effect_interval_p_and_windows():
    line = findings.finding_line(record())
    assert "\n" not in line
    for part in ("H4/A1 FAILS on m", "layer 15", "variant add", "target middle", "a dark write draws the sink's attention",
                 "capture× 2.1 [1.4, 2.9]", "criterion rho 3", "largest Holm p 0.21", "15/16 windows, 1 NaN"):
        assert part in line, (part, line)
    assert "fragile" not in line
    assert "fragile: the same verdict on 62% of window resamples" in findings.finding_line(record(fragile=True))
    # run settings and case fields are not thresholds; a unit's own setting is
    assert findings.thresholds(record(params={"n_seqs": 16, "target": "x", "min_deepest": 0.8})) == {"min_deepest": 0.8}


def test_model_summary_counts_passes_and_fragile_verdicts():
    recs = [record("pass"), record("fail", fragile=True), record("pass", hypothesis="H1", claim=None, model="other")]
    line = findings.model_summary("m", recs, seconds=90)
    assert line.startswith("m: 1 of 2 cases pass (1 fragile) in 1.5 min")
    assert "H4/A1 1/2 ~1" in line and "H1" not in line


def test_answers_say_in_words_when_a_claim_fails_or_is_fragile():
    ans = findings.answers([record("fail"), record("fail", layer=7)])["m"]
    (question, word, sentence), = ans
    assert question.startswith("H4-A: Can a sink be designated by hand?")
    assert word == "No" and "holds in none of its 2 cases" in sentence and "closest case" in sentence
    (_, word, sentence), = findings.answers([record("pass", fragile=True)])["m"]
    assert word == "Yes, but fragile" and "fragile" in sentence and "best case" in sentence
    (_, word, _), = findings.answers([record("pass"), record("fail", layer=7)])["m"]
    assert word == "Partly"


def test_a_claim_that_answers_in_words_is_quoted_in_the_answers():
    """H7(e)'s record carries the ladder's answer in words (metrics['answer']); the report's
    Answers quote it after the claim's numbers."""
    words = "a sink can be designated by hand: the weakest rung that works is the value drain at layer 1"
    rec = record("pass", hypothesis="H7", claim="e", layer=None)
    rec["metrics"]["answer"] = words
    (_, _, sentence), = findings.answers([rec])["m"]
    assert sentence.endswith(f"In words: {words}.")
    (_, _, sentence), = findings.answers([record("pass")])["m"]
    assert "In words" not in sentence


TOY = '''
from sinkbench.registry import Hypothesis, Test, pytest_function


def finding(bench, model_name):
    bench.config.sinkbench_records.append({
        "hypothesis": "X9", "claim": "1", "model": model_name, "layer": None, "verdict": "fail",
        "params": {"min_x": 0.5}, "metrics": {"x": 0.1, "x_ci": [0.0, 0.2], "p_value": 0.3, "n_windows": 16,
                                             "n_informative": 16, "n_nan": 0}})
    assert False, "a long unit message\\n" * 30


def bug(bench, model_name):
    raise ValueError("a real bug inside the unit")


UNIT = Hypothesis(name="X9", title="toy", measure=lambda bench, name: {},
                  tests=(Test("test_finding", (), finding), Test("test_bug", (), bug)))
test_finding = pytest_function(UNIT, "test_finding")
test_bug = pytest_function(UNIT, "test_bug")
'''


def test_a_failing_verdict_prints_one_line_and_a_real_error_its_traceback(tmp_path):
    (tmp_path / "test_toy.py").write_text(textwrap.dedent(TOY))
    out = subprocess.run([sys.executable, "-m", "pytest", "test_toy.py", "--model", "tiny-bb-bos", "--seq-len", "64", "-p", "no:cacheprovider",
                          "--results", str(tmp_path / "res")], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    finding_block = text.split("test_finding[tiny-bb-bos]")[1].split("test_bug")[0]
    assert "X9/1 FAILS on tiny-bb-bos" in finding_block and "a long unit message" not in finding_block, text
    assert "Traceback" not in finding_block and "assert False" not in finding_block, text
    assert "ValueError: a real bug inside the unit" in text and 'raise ValueError' in text, text  # the bug's traceback
    # printed as the model finishes, not only inside a failing case's captured teardown output
    live = text.split("= FAILURES =")[0]
    assert "[sinkbench] done: tiny-bb-bos: 0 of 1 cases pass" in live, text
    assert re.search(r"peak memory \d+\.\d GB so far", live), text


def test_the_run_goes_model_by_model_keeping_each_models_order():
    from types import SimpleNamespace

    from sinkbench.run.plugin import model_by_model

    def item(name, model):
        fn = lambda: None
        if model is not None:
            fn.sinkbench_test = ("unit", "test")
        return SimpleNamespace(name=name, function=fn, callspec=SimpleNamespace(params={"model_name": model}))

    items = [item("h1-a", "a"), item("h1-b", "b"), item("other", None), item("h2-a", "a"), item("h2-b", "b")]
    model_by_model(items, ["b", "a"])
    assert [i.name for i in items] == ["other", "h1-b", "h2-b", "h1-a", "h2-a"]


@pytest.mark.slow
def test_h3_records_window_units_when_document_units_are_asked_for(tmp_path):
    """H3's detector and tests are per window whatever --units says: its records say
    `units: window` (and what was asked for), never `document` for numbers made per window."""
    import json

    out = subprocess.run([sys.executable, "-m", "pytest", "hypotheses/test_distributed_sinks.py", "--model", "tiny-bb-bos",
                          "--seq-len", "64", "--units", "document", "--dataset", "pydoc", "-k", "bos-1", "-q",
                          "-p", "no:cacheprovider", "--results", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    recs = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert recs and all(r["params"]["units"] == "window" and r["params"]["units_requested"] == "document" for r in recs), out.stdout[-2000:]


def test_a_not_testable_case_says_so_in_the_summary_line_the_finding_and_the_answers():
    """H3 records a claim with too few informative windows as failed with `not_testable`: the
    per-model line shows it as n/t (not 0/1), its finding line and its answer say why."""
    why = "2 informative windows of 16, fewer than h3_min_windows = 8: a mean over windows cannot be tested"
    nt = record("fail", hypothesis="H3", claim="3", layer=None, target=None, variant=None, condition="nobos",
                metrics={"not_testable": why, "p_value": 1.0, "n_windows": 2})
    ok = record("pass", hypothesis="H3", claim="3", layer=None, target=None, variant=None, condition="bos",
                metrics={"p_value": 0.001, "n_windows": 16})
    assert "H3/3 n/t" in findings.model_summary("m", [nt]) and "(1 not testable)" in findings.model_summary("m", [nt])
    assert "H3/3 1/2 ?1" in findings.model_summary("m", [nt, ok])
    line = findings.finding_line(nt)
    assert line.startswith("H3/3 NOT TESTABLE on m") and f"({why})" in line and "FAILS" not in line, line
    (_, word, sentence), = findings.answers([nt])["m"]
    assert word == "No" and sentence.startswith("Cannot be tested") and why in sentence
