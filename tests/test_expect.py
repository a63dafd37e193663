"""Expected verdicts (harness/read/expect.py, `sinkbench expect`, `sinkbench report --expect`) on
synthetic records; tests/test_expect_run.py runs --expect through pytest on a zoo model."""
import json
import tomllib

import pytest

from sinkbench.read import expect
from sinkbench.run.cli import main
from sinkbench.read.compare import case_id
from sinkbench.errors import SinkbenchError
from sinkbench.read.results import append_jsonl

PARAMS = {"alpha": 0.05, "n_seqs": 8, "seq_len": 64, "dataset": "pydoc", "n_bands": 20, "dtype": "float32", "device": "cpu",
          "windows": {"layout": "spread", "test_starts": [0, 100]}}


def h1(layer, verdict="fail", delta=0.05, ci=(0.02, 0.08), model="m", **params):
    return {"hypothesis": "H1", "model": model, "model_sha256": "a" * 64, "layer": layer, "verdict": verdict,
            "params": {**PARAMS, "min_delta": 0.5, **params},
            "metrics": {"dark_all_delta": delta, "dark_all_delta_ci": list(ci), "p_vs_random": 0.9, "p_values_raw": [0.1]}}


def h4(target, verdict="pass"):
    return {"hypothesis": "H4", "claim": "A1", "variant": "add", "target": target, "model": "org/m2", "layer": 3,
            "verdict": verdict, "params": {**PARAMS, "rho": 3.0, "target": target, "variant": "add"},
            "metrics": {"capture_ratio": 5.0, "capture_ratio_ci": [3.0, 9.0], "p_values": [0.01, 0.02]}}


RUN = [h1(0), h1(1, "pass", 0.9, (0.7, 1.1)), h4("middle"), h4("frequent", "fail")]


def write(d, records):
    for r in records:
        append_jsonl(d / "results.jsonl", r)
    return d


def toml_of(records, tmp_path):
    path = tmp_path / "expected.toml"
    path.write_text(expect.to_toml(records, "runs/x"))
    return path


def test_toml_round_trip_is_sorted_readable_and_all_as_expected(tmp_path):
    path = toml_of(RUN, tmp_path)
    text = path.read_text()
    data = tomllib.loads(text)
    assert [(c["model"], c["hypothesis"], c.get("target"), c.get("layer")) for c in data["case"]] == [
        ("m", "H1", None, 0), ("m", "H1", None, 1), ("org/m2", "H4", "frequent", 3), ("org/m2", "H4", "middle", 3)]
    assert data["settings"]["alpha"] == 0.05 and data["models"]["m"]["sha256"] == "a" * 64
    assert data["case"][0]["metrics"]["dark_all_delta"] == {"value": 0.05, "ci": [0.02, 0.08]}
    assert data["case"][0]["metrics"]["p_vs_random"] == 0.9 and "p_values_raw" not in data["case"][0]["metrics"]
    # settings shared by every case sit in [settings], those of every case of a model in [models.NAME]
    assert data["models"]["m"]["min_delta"] == 0.5 and "settings" not in data["case"][0]
    assert '[models."org/m2"]' in text
    for source in (path, write(tmp_path / "run", RUN)):  # an expected.toml or a results folder
        summary = expect.summarize(expect.load(source), RUN)
        assert summary.counts() == "4 as expected, 0 flipped, 0 drifted, 0 new, 0 missing"
        assert not summary.changed


def test_expected_failure_is_xfail_and_expected_pass_is_kept():
    exp = {case_id(r): expect.from_record(r) for r in RUN}
    assert expect.outcome_for([expect.check(exp[case_id(RUN[0])], RUN[0])]) == (
        "xfail", "verdict fail as expected: hypothesis=H1 model=m layer=0")
    assert expect.outcome_for([expect.check(exp[case_id(RUN[1])], RUN[1])]) == ("keep", "")


def test_flipped_verdict_fails_with_old_and_new_numbers_side_by_side(tmp_path):
    exp = expect.load(toml_of(RUN, tmp_path))
    now = h1(0, "pass", 0.6, (0.5, 0.7), alpha=0.5)
    c = expect.check(exp[case_id(now)], now)
    assert c.status == "flipped"
    kind, text = expect.outcome_for([c])
    assert kind == "fail"
    assert "verdict flipped: expected fail, got pass: hypothesis=H1 model=m layer=0" in text
    assert "expectation used alpha=0.05, this run alpha=0.5" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("dark_all_delta"))
    assert "0.05 [0.02, 0.08]" in row and "0.6 [0.5, 0.7]" in row and "outside" in row
    summary = expect.summarize(exp, [now] + RUN[1:])
    assert summary.counts().startswith("3 as expected, 1 flipped")
    assert "flipped  fail -> pass: hypothesis=H1 model=m layer=0" in summary.lines()


def test_drift_outside_the_old_interval_fails_unless_within_the_tolerance(tmp_path):
    # a new checkpoint of the same model name: same verdicts, one number moved (edit a copied expected.toml)
    path = toml_of(RUN, tmp_path)
    path.write_text(path.read_text().replace("value = 0.9, ci = [0.7, 1.1]", "value = 1.9, ci = [1.7, 2.1]"))
    exp = expect.load(path)
    summary = expect.summarize(exp, RUN)
    assert summary.counts() == "3 as expected, 0 flipped, 1 drifted, 0 new, 0 missing" and summary.changed
    assert "drifted  dark_all_delta 1.9 -> 0.9 (expected 95% CI 1.7..2.1): hypothesis=H1 model=m layer=1" in summary.lines()
    kind, text = expect.outcome_for([c for c in summary.checks if c.status == "drifted"])
    assert kind == "fail" and "left the expected interval" in text
    # --expect-tolerance R widens the interval by R x |expected value| on each side: 0.8 needs R >= 0.8/1.9
    assert expect.summarize(exp, RUN, tolerance=0.4).changed
    assert not expect.summarize(exp, RUN, tolerance=0.43).changed


def test_drift_against_a_results_folder_with_edited_numbers(tmp_path):
    old = [dict(r, metrics=dict(r["metrics"])) for r in RUN]
    old[2]["metrics"].update(capture_ratio=20.0, capture_ratio_ci=[15.0, 25.0])  # H4 middle: was 5.0 [3, 9]
    for r in old[:2]:
        r["model_sha256"] = "b" * 64  # the expectation was measured on other weights of model m
    summary = expect.summarize(expect.load(write(tmp_path / "old", old)), RUN)
    assert [(c.status, c.drift[0][0]) for c in summary.of("drifted")] == [("drifted", "capture_ratio")]
    assert f"weights differ: m (sha256 {'b' * 12} expected, {'a' * 12} now)" in summary.lines()


def test_new_and_missing_cases(tmp_path):
    exp = expect.load(toml_of(RUN[:3], tmp_path))  # lacks the failing H4 frequent case
    run = RUN[1:]  # and this run lacks H1 layer 0
    summary = expect.summarize(exp, run)
    assert summary.counts() == "2 as expected, 0 flipped, 0 drifted, 1 new, 1 missing"
    assert not summary.changed
    lines = summary.lines()
    assert "new      fail: hypothesis=H4 claim=A1 variant=add target=frequent model=org/m2 layer=3" in lines
    assert "missing  fail: hypothesis=H1 model=m layer=0" in lines
    new = summary.of("new")
    assert expect.outcome_for(new)[0] == "xfail"  # visible, not red
    kind, text = expect.outcome_for(new, strict=True)
    assert kind == "fail" and "new case (no expectation)" in text and "--expect-strict" in text


def test_bad_expectations_are_one_line_errors(tmp_path):
    with pytest.raises(SinkbenchError, match="no such file"):
        expect.load(tmp_path / "nope.toml")
    (tmp_path / "empty.toml").write_text("")
    with pytest.raises(SinkbenchError, match=r"no \[\[case\]\] tables"):
        expect.load(tmp_path / "empty.toml")
    (tmp_path / "bad.toml").write_text("[[case]\n")
    with pytest.raises(SinkbenchError, match="cannot read it"):
        expect.load(tmp_path / "bad.toml")
    (tmp_path / "noverdict.toml").write_text('[[case]]\nhypothesis = "H1"\nmodel = "m"\n')
    with pytest.raises(SinkbenchError, match="case 1 needs hypothesis, model and verdict"):
        expect.load(tmp_path / "noverdict.toml")
    with pytest.raises(SinkbenchError, match="no such folder"):
        expect.load(tmp_path / "typo")


def test_cli_expect_writes_toml_and_report_shows_the_summary(tmp_path, capsys):
    run = write(tmp_path / "run", RUN)
    assert main(["expect", str(run)]) == 0
    text = capsys.readouterr().out
    (tmp_path / "expected.toml").write_text(text.replace('verdict = "pass"', 'verdict = "fail"', 1))
    assert len(tomllib.loads(text)["case"]) == 4
    assert main(["report", str(run), "--expect", str(tmp_path / "expected.toml")]) == 0
    out = capsys.readouterr().out
    assert "3 as expected, 1 flipped, 0 drifted, 0 new, 0 missing" in out
    assert "flipped  fail -> pass: hypothesis=H1 model=m layer=1" in out
    md = (run / "report.md").read_text()
    assert "## Expectations" in md and "1 flipped" in md
    assert "id='expectations'" in (run / "report.html").read_text()


def test_cli_expect_and_report_on_missing_input_exit_2(tmp_path, capsys):
    assert main(["expect", str(tmp_path / "typo")]) == 2
    run = write(tmp_path / "run", RUN)
    assert main(["report", str(run), "--expect", str(tmp_path / "typo.toml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "no such folder" in err and "no such file" in err
    assert not (run / "report.md").exists()  # a bad --expect stops before writing anything


def test_settings_in_toml_keep_nested_windows_and_types(tmp_path):
    exp = expect.load(toml_of(RUN, tmp_path))
    e = exp[case_id(RUN[0])]
    assert e.settings["windows"] == {"layout": "spread", "test_starts": [0, 100]} and e.settings["min_delta"] == 0.5
    moved = h1(0, windows={"layout": "consecutive", "test_starts": [0, 64]})
    c = expect.check(e, moved)
    assert [d[0] for d in c.settings] == ["windows.layout", "windows.test_starts"]
    assert json.dumps(c.settings[0][1:]) == '["spread", "consecutive"]'


def test_a_flip_of_a_fragile_verdict_says_so(tmp_path):
    stable, fragile = h1(0), h1(1, "pass", 0.9, (0.7, 1.1))
    stable["metrics"]["verdict_stability"], fragile["metrics"]["verdict_stability"] = 1.0, 0.55
    exp = expect.load(toml_of([stable, fragile], tmp_path))
    flipped_stable = h1(0, "pass", 0.05, (0.02, 0.08))
    flipped_fragile = h1(1, "fail", 0.9, (0.7, 1.1))
    flipped_fragile["metrics"]["verdict_stability"] = 0.7
    lines = expect.summarize(exp, [flipped_stable, flipped_fragile]).lines()
    assert "flipped  fail -> pass: hypothesis=H1 model=m layer=0" in lines  # no note: neither was fragile
    assert any(line.startswith("flipped  pass -> fail: hypothesis=H1 model=m layer=1 (fragile verdict: same on "
                               "expected 55%, now 70% of window resamples)") for line in lines)
