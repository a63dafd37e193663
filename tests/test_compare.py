from sinkbench.run.cli import main
from sinkbench.read.compare import compare_records
from sinkbench.read.results import append_jsonl


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


def test_missing_empty_or_unreadable_folders_are_one_line_errors_with_exit_2(tmp_path, capsys):
    good = tmp_path / "good"
    append_jsonl(good / "results.jsonl", rec(1, "pass", 2.0, [1.8, 2.2]))
    (tmp_path / "nofile").mkdir()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "results.jsonl").write_text("")
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "results.jsonl").write_text("not json\n{\"x\": 1}\n")
    expected = {"typo": "no such folder", "nofile": "no results.jsonl there", "empty": "results.jsonl is empty",
                "garbage": "results.jsonl: line 1: not JSON"}  # named with its line (issue 31), never skipped
    for name, message in expected.items():
        for args in ([str(tmp_path / name), str(good)], [str(good), str(tmp_path / name)]):
            assert main(["compare", *args]) == 2, name
            out, err = capsys.readouterr()
            assert out == "" and err.count("\n") == 1 and message in err, (name, err)
        assert main(["report", str(tmp_path / name)]) == 2  # no traceback, no report
        assert message in capsys.readouterr().err


def test_different_settings_are_named_in_one_line_instead_of_every_case():
    old = [dict(rec(layer, "fail", 0.1, [0.0, 0.2]), params={"alpha": 0.05, "n_seqs": 16, "k": 5}) for layer in range(5)]
    new = [dict(rec(layer, "pass", 0.9, [0.8, 1.0]), params={"alpha": 0.5, "n_seqs": 16, "k": 5}) for layer in range(5)]
    cmp = compare_records(old, new)
    assert not cmp.clean
    lines = cmp.lines()
    assert lines[0] == "settings differ: baseline used alpha=0.05, this run alpha=0.5"
    assert len(lines) == 2 and "5 verdicts changed" in lines[1]
    assert compare_records(old, old).clean


def test_cli_compare_names_the_folders_in_the_settings_line(tmp_path, capsys):
    for d, alpha in (("a", 0.05), ("b", 0.5)):
        append_jsonl(tmp_path / d / "results.jsonl", dict(rec(1, "pass", 2.0, [1.8, 2.2]), params={"alpha": alpha}))
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    assert f"{tmp_path / 'a'} used alpha=0.05, {tmp_path / 'b'} alpha=0.5" in capsys.readouterr().out
