import json
import multiprocessing as mp

from sinkbench.read.results import append_jsonl, matrix, read_jsonl


def _writer(path, worker):
    for i in range(50):
        append_jsonl(path, {"worker": worker, "i": i, "pad": "x" * 5000})


def test_concurrent_appends_never_interleave(tmp_path):
    path = tmp_path / "results.jsonl"
    procs = [mp.get_context("fork").Process(target=_writer, args=(path, w)) for w in range(4)]
    [p.start() for p in procs]
    [p.join() for p in procs]
    lines = path.read_text().splitlines()
    assert len(lines) == 200 and all(json.loads(line)["pad"] == "x" * 5000 for line in lines)


def test_torn_last_line_is_named_and_left_out(tmp_path, capsys):
    path = tmp_path / "results.jsonl"
    rec = {"hypothesis": "H1", "model": "m", "verdict": "pass"}
    append_jsonl(path, rec)
    with path.open("a") as fh:
        fh.write('{"a": 2, "b"')
    assert read_jsonl(path) == [rec]  # named in a warning (tests/test_faults.py), not silently
    assert f"{path}: line 2: a torn last line" in capsys.readouterr().err


def test_matrix():
    recs = [{"hypothesis": "H1", "model": "m1", "verdict": "pass"}, {"hypothesis": "H1", "model": "m1", "verdict": "fail"},
            {"hypothesis": "H2", "model": "m2", "verdict": "pass"}]
    text = matrix(recs)
    assert "1/2" in text and "1/1" in text and "-" in text.splitlines()[2]


def test_matrix_marks_tails_outside_the_calibrated_range():
    recs = [{"hypothesis": "H1", "model": "m1", "verdict": "pass", "metrics": {"outside_calibrated_range": True}},
            {"hypothesis": "H1", "model": "m1", "verdict": "pass", "metrics": {"outside_calibrated_range": False}}]
    text = matrix(recs)
    assert "2/2 !1" in text and "calibrated range" in text
    assert "!" not in matrix(recs[1:])


def test_matrix_shows_a_not_testable_verdict_apart_from_a_fail():
    """A case recorded as failed because it could not be tested (H3 with 2 informative windows,
    H6 b-mean on a BOS sink: metrics['not_testable']) reads 'n/t' in the terminal matrix, not
    '0/1', which reads as a finding against the claim; a cell with some such cases counts them."""
    nt = {"not_testable": "2 informative windows of 16, fewer than h3_min_windows = 8"}
    recs = [{"hypothesis": "H3", "claim": "3", "model": "m1", "verdict": "fail", "condition": "nobos", "metrics": nt},
            {"hypothesis": "H3", "claim": "3", "model": "m2", "verdict": "fail", "condition": "nobos", "metrics": nt},
            {"hypothesis": "H3", "claim": "3", "model": "m2", "verdict": "pass", "condition": "bos", "metrics": {}},
            {"hypothesis": "H3", "claim": "2", "model": "m1", "verdict": "fail", "metrics": {}},
            {"hypothesis": "H3", "claim": "2", "model": "m2", "verdict": "fail", "metrics": nt},
            {"hypothesis": "H3", "claim": "2", "model": "m2", "verdict": "fail", "metrics": nt}]
    rows = {line.split("|")[0].strip(): [c.strip() for c in line.split("|")[1:]] for line in matrix(recs).splitlines()
            if "|" in line}
    assert rows["H3/3"] == ["n/t", "1/2 ?1"]
    assert rows["H3/2"] == ["0/1", "n/t (2)"]  # a plain failure stays 0/1
    assert "n/t: not testable" in matrix(recs)
    assert "n/t" not in matrix(recs[3:4]) and "?" not in matrix(recs[3:4])
