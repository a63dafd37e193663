"""sinkbench report on a synthetic results file; a slow check renders it in headless Chromium."""
import base64
import re
from pathlib import Path

import pytest

from sinkbench.read.report import write_report
from sinkbench.read.results import append_jsonl

PARAMS = {"dataset": "pydoc", "n_seqs": 16, "seq_len": 128, "n_bands": 20, "dtype": "float32", "device": "cpu"}


def make_results(d):
    for layer, delta in ((3, 2.5), (7, 0.2)):
        append_jsonl(d / "results.jsonl", {"hypothesis": "H1", "model": "m1", "family": "llama", "layer": layer, "params": PARAMS,
                                           "verdict": "pass" if delta > 0.5 else "fail",
                                           "metrics": {"dark_all_delta": delta, "sink_mass_base": 0.5, "sink_mass_dark_all": 0.2,
                                                       "sink_mass_dark_sink": 0.3, "dark_ratio_sink": 3.0, "dark_ratio_ordinary": 0.3,
                                                       "sink_rate": {"epsilon": 0.3, "sink_1": 0.62, "max_other": 0.05}}})
        append_jsonl(d / "results.jsonl", {"hypothesis": "H2", "model": "m1", "family": "llama", "layer": layer, "params": dict(PARAMS, k=5),
                                           "verdict": "pass", "metrics": {"head_minus_omega": 1.0, "frontier": {
                                               "omega_deltas": {str(k): 1.0 / k for k in range(1, 19)}}}})
    append_jsonl(d / "results.jsonl", {"hypothesis": "H3", "claim": "2", "condition": "native", "model": "m2", "family": "gemma3",
                                       "layer": None, "params": PARAMS, "verdict": "fail",
                                       "metrics": {"within_window_spearman": 0.1, "scatter_sample": {"bar_ratio": [1, 2, 9], "dark_ratio": [0.1, 0.2, 2.0], "sink_like": [0, 0, 1]}}})


def test_report_writes_markdown_and_self_contained_html(tmp_path):
    make_results(tmp_path)
    md, page = write_report(tmp_path)
    text = md.read_text()
    # the key effect's range over layers (2.5 at one, 0.2 at the other), not its mean
    # then the case that speaks for the cell: the strongest passing one
    assert ("| H1 · removing the dark tail (band K) raises NLL, and does so through the sink | – | "
            "MIXED 1/2 · ΔNLL dark 0.2..2.5; best (L3): 2.5 |") in text and "m2 (gemma3)" in text
    # the Answers come first, in words, a failing claim as failing, with a link to the case table
    answers = text.split("## Answers")[1].split("## Matrix")[0]
    assert "**H1: Is the dark tail necessary?** Partly." in answers and "holds in 1 of 2 cases" in answers
    assert "**H3: One sink or several" in answers and "(H3/2) does not hold" in answers and "(#cases-m2)" in answers
    assert "PASS: every case of the claim passes" in text  # the legend
    assert "| sink rate (Gu et al.) | – | INFO Sink_1 0.62 · max other 0.05 (ε=0.3) |" in text
    html = page.read_text()
    imgs = re.findall(r"src='data:image/png;base64,([^']+)'", html)
    assert len(imgs) == 4  # heatmap, sink mass, dark ratio (m1); scatter (m2)
    assert all(base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n" for b in imgs)
    assert "http" not in html  # nothing to fetch: viewable offline
    assert "pydoc 16x128 tokens, K=20, float32 on cpu" in text


def test_report_matrix_shows_a_not_testable_cell_apart_from_a_fail(tmp_path):
    """A claim recorded as failed because it could not be tested (metrics['not_testable'])
    reads NOT TESTABLE in the report's matrix, not FAIL; with a tested case beside it, ?u."""
    why = "2 informative windows of 16, fewer than h3_min_windows = 8: a mean over windows cannot be tested"
    for model, cond, verdict, m in (("m1", "nobos", "fail", {"not_testable": why, "profile_cos_gap": 0.01}),
                                    ("m2", "nobos", "fail", {"not_testable": why, "profile_cos_gap": 0.01}),
                                    ("m2", "bos", "pass", {"profile_cos_gap": 0.05})):
        append_jsonl(tmp_path / "results.jsonl", {"hypothesis": "H3", "claim": "3", "condition": cond, "model": model,
                                                  "family": "llama", "layer": None, "params": PARAMS, "verdict": verdict,
                                                  "metrics": m})
    md, _ = write_report(tmp_path)
    row = next(line for line in md.read_text().splitlines() if line.startswith("| H3/3") or line.startswith("| H3 ·"))
    cells = [c.strip() for c in row.split("|")[2:4]]
    assert cells[0].startswith("NOT TESTABLE 0/1") and cells[1].startswith("MIXED 1/2 ?1"), cells
    assert "NOT TESTABLE: no case of the cell could be tested" in md.read_text()


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path):
    """Needs Debian's chromium (apt-get install chromium). Run: pytest tests -m slow -k chromium"""
    from tests.conftest import rendered_check

    make_results(tmp_path)
    _, page = write_report(tmp_path)
    check, title = rendered_check(page, tmp_path, "'rows '+document.querySelectorAll('#matrix tr').length")
    # rows: the header, H1, H2, H3/2 and the sink-rate row
    assert check == "images 4/4 rows 5" and "ERROR" not in title


@pytest.mark.slow
def test_report_answers_titles_and_legend_render_at_1400px(tmp_path):
    """The Answers section, the claim titles beside the codes and the legend are there as a
    reader sees them: rendered by headless Chromium at 1400 px, read back from the DOM, and no
    matrix cell or caption wider than the page."""
    from tests.conftest import rendered_check

    make_results(tmp_path)
    _, page = write_report(tmp_path)
    js = ("[document.querySelectorAll('#answers li').length, "
          "document.querySelector('#answers').innerText.includes('Is the dark tail necessary?'), "
          "document.querySelector('#matrix').innerText.includes('removing the dark tail'), "
          "document.querySelector('#legend').innerText.includes('fragile'), "
          "document.documentElement.scrollWidth <= window.innerWidth].join(' ')")
    check, title = rendered_check(page, tmp_path, js, width=1400)
    assert check == "images 4/4 3 true true true true", (check, title)


# ------------------------------------------------------------------ report faults (issue 31)
def test_a_non_string_family_is_reported_not_a_traceback(tmp_path):
    """A record whose family is not a string (a hand-edited file, `family = 3` from a models
    file of an older sinkbench) used to crash the matrix's sort (TypeError)."""
    make_results(tmp_path)
    text = (tmp_path / "results.jsonl").read_text().replace('"family": "llama"', '"family": 3')
    (tmp_path / "results.jsonl").write_text(text)
    md, _ = write_report(tmp_path)
    assert "m1 (3)" in md.read_text()


@pytest.mark.parametrize("out", ["a-file", "a-file/sub"])
def test_out_naming_a_file_is_one_line(tmp_path, out):
    """--out naming an existing file (or a folder under one) used to end in FileExistsError /
    NotADirectoryError tracebacks."""
    import subprocess
    import sys

    make_results(tmp_path / "run")
    (tmp_path / "a-file").write_text("not a folder")
    p = subprocess.run([sys.executable, "-m", "sinkbench", "report", str(tmp_path / "run"), "--out", str(tmp_path / out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path / out) in lines[0], lines
    assert ("a file, not a folder" if out == "a-file" else "cannot create the report folder") in lines[0]
    assert (tmp_path / "a-file").read_text() == "not a folder"  # never overwritten


def test_non_utf8_folder_and_model_names_are_shown_as_bytes(tmp_path):
    """A results folder and a model whose names are not UTF-8 (Python decodes them with lone
    surrogates) used to crash the report: UnicodeEncodeError writing report.md, and
    matplotlib's set_text on a figure title. The names are shown with their bytes as \\xNN."""
    import os
    import subprocess
    import sys

    folder = os.fsencode(str(tmp_path)) + b"/run-caf\xe9"
    os.makedirs(folder)
    make_results(Path(os.fsdecode(folder)))
    results = Path(os.fsdecode(folder)) / "results.jsonl"
    results.write_text(results.read_text().replace('"model": "m1"', '"model": "/models/caf\\udce9"'))
    p = subprocess.run([sys.executable, "-m", "sinkbench", "report", folder], capture_output=True, timeout=180)
    assert p.returncode == 0 and b"Traceback" not in p.stderr, p.stderr.decode(errors="replace")
    md = (Path(os.fsdecode(folder)) / "report.md").read_text(encoding="utf-8")
    assert "/models/caf\\xe9 (llama)" in md and "run-caf\\xe9/results.jsonl" in md
    assert b"run-caf\\xe9/report.md" in p.stdout
    html = (Path(os.fsdecode(folder)) / "report.html").read_text(encoding="utf-8")
    assert len(re.findall(r"src='data:image/png;base64,", html)) == 4  # the figures titled with the name are drawn


def non_utf8_pair(tmp_path) -> None:
    """tmp_path/new and tmp_path/old: the same results with a non-UTF-8 model name, one verdict flipped."""
    import shutil

    make_results(tmp_path / "new")
    results = tmp_path / "new" / "results.jsonl"
    results.write_text(results.read_text().replace('"model": "m1"', '"model": "/models/caf\\udce9"'))
    shutil.copytree(tmp_path / "new", tmp_path / "old")
    old = tmp_path / "old" / "results.jsonl"
    old.write_text(old.read_text().replace('"verdict": "pass"', '"verdict": "fail"', 1))


def test_a_non_utf8_model_name_in_the_expectations_block(tmp_path):
    """The --expect block names flipped cases by model: a non-UTF-8 name there crashed the
    report.md write (UnicodeEncodeError) after the figures were drawn."""
    import subprocess
    import sys

    non_utf8_pair(tmp_path)
    p = subprocess.run([sys.executable, "-m", "sinkbench", "report", str(tmp_path / "new"), "--expect", str(tmp_path / "old")],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert "flipped  fail -> pass: hypothesis=H1 model=/models/caf\\xe9 layer=3" in p.stdout, p.stdout
    assert "model=/models/caf\\xe9 layer=3" in (tmp_path / "new" / "report.md").read_text(encoding="utf-8")


def test_compare_and_expect_with_a_non_utf8_model_name(tmp_path):
    """`sinkbench compare` printed a non-UTF-8 model name into a UTF-8 stdout
    (UnicodeEncodeError traceback); `sinkbench expect` wrote it into expected.toml, which is
    UTF-8. compare shows it as \\xNN; expect refuses in one line, since no expectation could match it."""
    import os
    import subprocess
    import sys

    non_utf8_pair(tmp_path)
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "sinkbench", *a], capture_output=True, text=True, timeout=120, env=env)
    p = run("compare", str(tmp_path / "old"), str(tmp_path / "new"))
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert "verdict fail -> pass: hypothesis=H1 model=/models/caf\\xe9 layer=3" in p.stdout, p.stdout
    p = run("expect", str(tmp_path / "new"))
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "a name is not UTF-8" in lines[0] and not p.stdout, p.stderr
