from harness.cli import main
from harness.compare import compare_records
from harness.results import append_jsonl


def rec(layer, verdict, delta, ci, model="m"):
    return {"hypothesis": "H1", "model": model, "layer": layer, "params": {}, "verdict": verdict,
            "metrics": {"dark_all_delta": delta, "dark_all_delta_ci": ci}}


def test_identical_runs_compare_clean():
    old = [rec(1, "pass", 2.0, [1.8, 2.2]), rec(2, "fail", 0.1, [0.0, 0.2])]
    assert compare_records(old, list(old)).clean


def test_changes_are_listed():
    old = [rec(1, "pass", 2.0, [1.8, 2.2]), rec(2, "fail", 0.1, [0.0, 0.2]), rec(3, "pass", 1.0, [0.9, 1.1])]
    new = [rec(1, "fail", 2.0, [1.8, 2.2]), rec(2, "fail", 0.5, [0.4, 0.6]), rec(4, "pass", 1.0, [0.9, 1.1])]
    cmp = compare_records(old, new)
    assert [k[-2] for k, *_ in cmp.verdict_changes] == [1]
    assert [(k[-2], m) for k, m, *_ in cmp.metric_moves] == [(2, "dark_all_delta")]
    assert [k[-2] for k in cmp.only_old] == [3] and [k[-2] for k in cmp.only_new] == [4]
    assert not cmp.clean and len(cmp.lines()) == 4


def test_cli_exit_codes(tmp_path, capsys):
    for d, verdict in (("a", "pass"), ("b", "pass"), ("c", "fail")):
        append_jsonl(tmp_path / d / "results.jsonl", rec(1, verdict, 2.0, [1.8, 2.2]))
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "c")]) == 1
    assert "verdict pass -> fail" in capsys.readouterr().out
