"""Checkpoint series: --models-file [[series]] expands to one model per checkpoint, every
record carries the step (and tokens seen), and `sinkbench report` draws a series against
the step and several runs against each other. Synthetic records where possible; one short
pytest run on two committed checkpoints."""
import base64
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from sinkbench.model import models
from sinkbench.run.cli import main
from sinkbench.errors import SinkbenchError
from sinkbench.read.report import write_report
from sinkbench.read.report import expand_runs, load_runs
from sinkbench.read.results import append_jsonl
from sinkbench.read.series import checkpoint_info, read_models_file, step_fields

ROOT = Path(__file__).resolve().parent.parent
SERIES = ROOT / "fixtures" / "zoo" / "series"
STEPS = [10, 25, 62, 155, 387, 965, 2406, 6000]


# --------------------------------------------------------------------------- models file
def test_series_expands_to_one_model_per_checkpoint_in_step_order(tmp_path):
    f = tmp_path / "models.toml"
    f.write_text(f'[[model]]\nname = "tiny-bb-nobos"\nstep = 123\ntokens_seen = 4567\n\n'
                 f'[[series]]\nname = "bos"\npath = "{SERIES / "tiny-bb-bos"}"\nfamily = "zoo-llama"\n')
    entries = read_models_file(f)
    assert entries[0] == {"name": "tiny-bb-nobos", "step": 123, "tokens_seen": 4567}
    series = entries[1:]
    assert [e["step"] for e in series] == STEPS
    assert [e["name"] for e in series][:2] == ["bos@step-000010", "bos@step-000025"]
    assert all(e["series"] == "bos" and e["family"] == "zoo-llama" for e in series)
    assert [e["tokens_seen"] for e in series] == [s * 32 * 64 for s in STEPS]  # from each checkpoint's manifest
    assert Path(series[-1]["path"]) == SERIES / "tiny-bb-bos" / "step-006000"


def test_series_path_relative_to_the_models_file_and_steps_from_names_or_trainer_state(tmp_path):
    folder = tmp_path / "cfg" / "ckpts"
    for name in ("checkpoint-500", "checkpoint-20", "step3000"):
        (folder / name).mkdir(parents=True)
        (folder / name / "config.json").write_text("{}")
    (folder / "checkpoint-500" / "trainer_state.json").write_text(json.dumps({"global_step": 512, "num_input_tokens_seen": 99}))
    (folder / "notes").mkdir()  # no config.json: not a checkpoint
    f = tmp_path / "cfg" / "models.toml"
    f.write_text('[[series]]\nname = "run"\npath = "ckpts"\n')
    entries = read_models_file(f)
    assert [(e["name"], e["step"], e.get("tokens_seen")) for e in entries] == [
        ("run@checkpoint-20", 20, None), ("run@checkpoint-500", 512, 99), ("run@step3000", 3000, None)]
    assert checkpoint_info(folder / "step3000", from_name=False) == {}


@pytest.mark.parametrize("text, message", [
    ('[[series]]\nname = "x"\n', "needs name"),
    ('[[series]]\nname = "x"\npath = "nowhere"\n', "is not a folder"),
    ('[[series]]\nname = "x"\npath = "."\nfamilly = "a"\n', "unknown keys"),
    ('[[series]]\nname = "x"\npath = "."\n', "no checkpoint directories"),
    ('[[model]]\nname = "tiny-bb-bos"\nstep = "ten"\n', "non-negative integer"),
    ('[[model]]\nname = "tiny-bb-bos"\n[[model]]\nname = "tiny-bb-bos"\n', "appears twice"),
])
def test_models_file_errors_say_what_is_wrong(tmp_path, text, message):
    f = tmp_path / "models.toml"
    f.write_text(text)
    with pytest.raises(SinkbenchError, match=message):
        read_models_file(f)


def test_step_fields_from_a_manifest_or_declared():
    ckpt = SERIES / "tiny-bb-bos" / "step-000155"
    subject = types.SimpleNamespace(meta={"source": {"kind": "hf_dir", "path": str(ckpt)}, "zoo": {}})
    assert step_fields(subject) == {"series": "tiny-bb-bos", "step": 155, "tokens_seen": 155 * 32 * 64}
    # a declared step wins, and the manifest's tokens_seen (another step's) is dropped
    assert step_fields(subject, {"series": "mine", "step": 7}) == {"series": "mine", "step": 7}
    assert step_fields(subject, {"series": "mine"}) == {"series": "mine", "step": 155, "tokens_seen": 155 * 32 * 64}
    final = types.SimpleNamespace(meta={"source": {"kind": "hf_dir", "path": str(models.ZOO_DIR / "tiny-bb-bos")}, "zoo": {}})
    assert step_fields(final) == {"step": 6000, "tokens_seen": 6000 * 32 * 64}  # a final zoo model: its manifest's steps
    gguf = types.SimpleNamespace(meta={"source": {"kind": "gguf", "path": "/x.gguf"}})
    assert step_fields(gguf) == {}
    assert step_fields(gguf, {"step": 3}) == {"step": 3}


def test_registered_series_names_resolve_to_their_checkpoint():
    ckpt = SERIES / "tiny-bb-bos" / "step-000025"
    models.register_local("tiny-bb-bos@step-000025", ckpt)
    src = models.resolve("tiny-bb-bos@step-000025")
    assert (src.kind, Path(src.path)) == ("hf_dir", ckpt)


@pytest.mark.slow
def test_every_record_carries_the_step_through_pytest(tmp_path):
    """H1 through pytest on two committed checkpoints (a series folder of links to them), a
    [[model]] with a declared step and a zoo model with none declared (its manifest's)."""
    folder = tmp_path / "two"
    folder.mkdir()
    for s in ("step-000062", "step-002406"):
        (folder / s).symlink_to(SERIES / "tiny-bb-bos" / s)
    f = tmp_path / "models.toml"
    f.write_text(f'[[model]]\nname = "tiny-bb-nobos"\nstep = 123\n\n[[series]]\nname = "bos"\npath = "{folder}"\n')
    cmd = [sys.executable, "-m", "pytest", "hypotheses/test_dark_tail_necessary.py", "--seq-len", "64", "--n-seqs", "8",
           "-p", "no:cacheprovider", "-q", "--models-file", str(f), "--model", "tiny-bb-designated", "--results", str(tmp_path / "r")]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    recs = [json.loads(x) for x in (tmp_path / "r" / "results.jsonl").read_text().splitlines()]
    got = {r["model"]: (r.get("series"), r.get("step"), r.get("tokens_seen")) for r in recs}
    assert got == {"tiny-bb-designated": (None, 6000, 6000 * 32 * 64), "tiny-bb-nobos": (None, 123, None),
                   "bos@step-000062": ("bos", 62, 62 * 2048), "bos@step-002406": ("bos", 2406, 2406 * 2048)}, p.stdout + p.stderr
    assert all(r["hypothesis"] == "H1" and "sink_rate" in r["metrics"] for r in recs)


# --------------------------------------------------------------------------- report: series
PARAMS = {"dataset": "bb", "n_seqs": 16, "seq_len": 64, "n_bands": 20, "dtype": "float32", "device": "cpu",
          "min_delta": 0.5, "min_sink_drop": 0.2, "alpha": 0.05}


def h1(model, step, sink_1, delta, a, b, **extra):
    return {"hypothesis": "H1", "model": model, "family": "llama", "layer": 0, "params": PARAMS, "verdict": "pass" if a and b else "fail",
            "metrics": {"dark_all_delta": delta, "dark_all_delta_ci": [delta * 0.8, delta * 1.2], "claim_a": a, "claim_b": b,
                        "sink_mass_base": sink_1, "sink_mass_dark_sink": sink_1 / 2, "sink_mass_dark_all": 0.1,
                        "dark_ratio_sink": 0.1 + 2 * sink_1, "dark_ratio_ordinary": 0.1, "p_vs_random": 0.01,
                        "sink_rate": {"epsilon": 0.3, "sink_1": sink_1, "max_other": 0.05}}, "step": step, **extra}


def h2b(model, step, share, ok, **extra):
    return {"hypothesis": "H2", "claim": "b", "model": model, "family": "llama", "layer": 0,
            "params": dict(PARAMS, min_frontier=0.25, frontier_tolerance=0.25), "verdict": "pass" if ok else "fail",
            "metrics": {"omega_delta": 0.1, "omega_delta_ci": [0.0, 0.2], "p_value": 0.01,
                        "frontier": {"share_deleted": share, "k": 5, "tolerance": 0.25}}, "step": step, **extra}


def make_series(d, name="bos", time="2026-01-01T00:00:00Z"):
    # the sink appears at step 100, the dark tail becomes necessary at 1000, the frontier opens at 1000
    for step, sink, delta, share in ((10, 0.05, 0.01, 0.0), (100, 0.6, 0.2, 0.0), (1000, 0.8, 1.5, 0.6), (6000, 0.85, 2.0, 0.65)):
        model = f"{name}@step-{step:06d}"
        tag = {"series": name, "tokens_seen": step * 2048, "time": time}
        append_jsonl(d / "results.jsonl", h1(model, step, sink, delta, delta > 0.5, sink > 0.3, **tag))
        append_jsonl(d / "results.jsonl", h2b(model, step, share, share > 0.25, **tag))


def test_report_draws_a_series_against_the_step(tmp_path):
    make_series(tmp_path)
    append_jsonl(tmp_path / "results.jsonl", h1("plain", None, 0.5, 1.0, True, True))  # a model outside any series
    md, page = write_report(tmp_path)
    text = md.read_text()
    assert "## series bos" in text and "## plain" in text
    # the main matrix lists the plain model only; the series has its own claims x steps matrix
    assert "| claim | plain (llama) |" in text
    assert "| claim | step 10 | step 100 | step 1000 | step 6000 |" in text
    assert "| H1 | FAIL 0/1 · ΔNLL dark 0.01 | FAIL 0/1 · ΔNLL dark 0.2 | PASS 1/1 · ΔNLL dark 1.5 | PASS 1/1 · ΔNLL dark 2 |" in text
    # when each thing starts to hold
    assert "sink (Sink_1 ≥ ε = 0.3, Gu et al.): from step 100 on" in text
    assert "dark tail necessary for the loss, H1(a), at some layer: from step 1000 on" in text
    assert "the sink's dark tail holds the sink, H1(b), at some layer: from step 100 on" in text
    assert "middle bands dispensable, H2b, at some layer: from step 1000 on" in text
    # the per-checkpoint table: tokens seen, Sink_1, the delta with its interval, verdicts
    assert "| 1000 | 2,048,000 | 0 | 0.8 | 0.8 | 1.7 / 0.1 | 1.5 [1.2, 1.8] | pass (pass, pass) | 0.6 | pass |" in text
    html = page.read_text()
    assert "series bos: sink and dark signal over training (4 checkpoints)" in html
    imgs = re.findall(r"src='data:image/png;base64,([^']+)'", html)
    assert all(base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n" for b in imgs)
    assert len(imgs) == 3  # the series' trajectory; plain's sink mass and dark ratio
    assert (tmp_path / "figures" / "series-bos-0.png").exists()


def test_from_step_says_when_a_claim_flickers():
    from sinkbench.read.report import from_step

    assert from_step([1, 2, 3], [False, True, True]) == "from step 2 on"
    assert from_step([1, 2, 3], [True, False, True]) == "from step 3 on (first at 1, then lost)"
    assert from_step([1, 2, 3], [False, True, False]) == "first at step 2, not at the last"
    assert from_step([1, 2, 3], [False] * 3) == "never"


# --------------------------------------------------------------------------- report: history
def make_run(d, time, delta, verdict_h2):
    append_jsonl(d / "results.jsonl", dict(h1("m1", None, 0.6, delta, delta > 0.5, True, time=time), step=None))
    append_jsonl(d / "results.jsonl", {**h2b("m1", None, 0.5, verdict_h2, time=time), "step": None})


def test_report_over_several_runs_draws_history_and_ends_with_every_case(tmp_path):
    runs = []
    for day, delta, ok in (("2026-01-03", 0.9, True), ("2026-01-01", 0.2, False), ("2026-01-02", 0.7, True)):
        d = tmp_path / "runs" / day
        make_run(d, f"{day}T03:00:00Z", delta, ok)
        runs.append(d)
    loaded = load_runs(runs)  # ordered by the records' time, not by the order given
    assert [label for label, _, _ in loaded] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert [p.name for p in expand_runs(str(tmp_path / "runs" / "2026-*"))] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    md, page = write_report(runs)
    assert md.parent == tmp_path / "runs" / "2026-01-03"  # the latest run's folder
    text = md.read_text()
    assert "the latest of 3 runs (2026-01-01, 2026-01-02, 2026-01-03, oldest first)" in text
    assert ("| H1 · removing the dark tail (band K) raises NLL, and does so through the sink | PASS 1/1 · ΔNLL dark 0.9 "
            "[0.72, 1.08] |") in text  # the matrix is the latest run's
    assert "| H1 | 0/1 → 1/1 → 1/1 |" in text and "| H2/b | 0/1 → 1/1 → 1/1 |" in text  # and beside it, every run's
    # every case: claim, layer, verdict, key numbers with intervals, criterion, verdicts over runs
    # the criterion column: the thresholds the record's params carry
    assert ("| H1 | – | 0 | PASS | dark_all_delta 0.9 [0.72, 1.08]; p_vs_random 0.01 | alpha 0.05, min_delta 0.5, "
            "min_sink_drop 0.2 | F P P |") in text
    assert "| H2/b | – | 0 | PASS | omega_delta 0.1 [0, 0.2]; p_value 0.01 |" in text
    html = page.read_text()
    assert "m1: key effects over 3 runs" in html
    assert len(re.findall(r"<img ", html)) == 3  # history; sink mass; dark ratio


def test_cli_report_several_runs_glob_and_out(tmp_path, capsys):
    for day, delta in (("a", 0.2), ("b", 0.9)):
        make_run(tmp_path / "runs" / day, f"2026-01-0{1 + (day == 'b')}T00:00:00Z", delta, True)
    assert main(["report", str(tmp_path / "runs" / "*"), "--out", str(tmp_path / "site")]) == 0
    assert (tmp_path / "site" / "report.html").exists() and "F P" in (tmp_path / "site" / "report.md").read_text()
    assert main(["report", str(tmp_path / "runs" / "a"), str(tmp_path / "runs" / "missing")]) == 2
    assert main(["report", str(tmp_path / "nothing-*")]) == 2
    assert "matches no folder" in capsys.readouterr().err


@pytest.mark.slow
def test_series_and_history_report_render_in_headless_chromium(tmp_path):
    """Needs Debian's chromium (apt-get install chromium). Run: pytest tests -m slow -k chromium"""
    from tests.conftest import rendered_check

    for day, delta in (("a", 0.2), ("b", 0.9)):
        make_run(tmp_path / day, f"2026-01-0{1 + (day == 'b')}T00:00:00Z", delta, True)
    make_series(tmp_path / "b", time="2026-01-02T00:00:00Z")
    _, page = write_report([tmp_path / "a", tmp_path / "b"])
    check, title = rendered_check(page, tmp_path, "'tables '+document.querySelectorAll('table').length")
    # images: m1's history, sink mass, dark ratio; the series trajectory. tables: matrix, history,
    # m1's cases, the series' per-checkpoint table, claims x steps and cases
    assert check == "images 4/4 tables 6" and "ERROR" not in title
