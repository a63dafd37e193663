"""A kill costs at most one pass: every pass is checkpointed as it finishes (sinkbench.measure.checkpoint),
and --resume continues a killed grid with records bit-identical to an uninterrupted run's."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sinkbench.measure import checkpoint

ROOT = Path(__file__).resolve().parent.parent
# H2 on the tiny zoo model: one layer, about 25 passes of 8 batches each, so a grid lasts
# seconds and a kill lands inside it.
RUN = ["hypotheses/test_middle_dispensable.py", "-s", "-p", "no:cacheprovider", "--model", "tiny-bb-bos",
       "--seq-len", "64", "--n-seqs", "32", "--batch-size", "4"]
TIMING = ("time",)  # fields that differ between two runs of the same case


def command(results: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", *RUN, "--results", str(results), *extra]


def records(results: Path) -> dict:
    out = {}
    for line in (results / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        out[r["case_key"]] = {k: v for k, v in r.items() if k not in TIMING}
    return out


@pytest.mark.slow  # three runs of an H2 grid: about 2 minutes here
def test_kill_in_the_middle_of_a_grid_then_resume_gives_identical_records(tmp_path):
    reference = tmp_path / "reference"
    done = subprocess.run(command(reference), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert not list((reference / "checkpoints").rglob("*.pt")), "a finished run leaves its checkpoints behind"

    killed = tmp_path / "killed"
    proc = subprocess.Popen(command(killed), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 600
    try:
        while len(list((killed / "checkpoints").rglob("*.pt"))) < 4:  # base pass and a few filters done
            assert proc.poll() is None, "the run ended before it was killed"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    saved = list((killed / "checkpoints").rglob("*.pt"))
    # in the middle of the grid: passes are saved, no record of the grid is written yet
    assert not (killed / "results.jsonl").exists() or not (killed / "results.jsonl").read_text().strip()

    resumed = subprocess.run(command(killed, "--resume"), cwd=ROOT, capture_output=True, text=True, timeout=600)
    out = resumed.stdout + resumed.stderr
    assert resumed.returncode == done.returncode, out
    assert "read back from checkpoints" in out, out
    want, got = records(reference), records(killed)
    assert got.keys() == want.keys() and len(got) == 4
    for key in want:
        assert got[key] == want[key], key
    assert len(saved) >= 4 and not list((killed / "checkpoints").rglob("*.pt"))


def test_a_checkpointed_pass_is_read_back_bit_for_bit(tmp_path, llama_subject):
    """The same pass twice, the second under --resume: read back, identical, no forward pass."""
    from sinkbench.measure import interventions

    windows = torch.randint(3, 60, (6, 16))
    store = checkpoint.configure(tmp_path, read=True)
    try:
        first = interventions.run_batched(llama_subject, windows, 4, attn_layers=range(2))
        assert store.saved == 1 and store.restored == 0
        second = interventions.run_batched(llama_subject, windows, 4, attn_layers=range(2))
        assert store.restored == 1
        for a, b in ((first.nll, second.nll), (first.token_nll, second.token_nll), (first.sink_mass, second.sink_mass)):
            assert torch.equal(a, b) or (a.isnan() == b.isnan()).all() and torch.equal(a.nan_to_num(), b.nan_to_num())
        # another window set or readout is another pass; another batch size is the same pass
        # (batch-invariant: sinkbench.measure.checkpoint.NOT_KEYED), read back
        interventions.run_batched(llama_subject, windows[:5], 4, attn_layers=range(2))
        interventions.run_batched(llama_subject, windows, 4, attn_layers=range(1))
        third = interventions.run_batched(llama_subject, windows, 3, attn_layers=range(2))
        assert store.saved == 3 and store.restored == 2
        assert torch.equal(third.token_nll, first.token_nll)
    finally:
        checkpoint.configure(None)


def test_a_key_tells_apart_what_changes_the_numbers():
    from functools import partial

    key = lambda **kw: checkpoint.key_of("pass", kw)
    t = torch.arange(6.0)
    assert key(x=t) == key(x=t.clone())
    assert key(x=t) != key(x=t + 1e-7) and key(x=t) != key(x=t.double())
    f = lambda h, rows, m: h * m
    assert key(e=partial(f, m=t)) != key(e=partial(f, m=2 * t))
    assert key(a=np.zeros(3)) != key(a=np.zeros(3, dtype=np.float32))
    with pytest.raises(checkpoint.Unkeyable):
        key(o=object())


def test_numpy_results_round_trip_exactly():
    value = (np.random.default_rng(0).normal(size=5), np.arange(3, dtype=np.float32))
    back = checkpoint.tensors_to_arrays(checkpoint.arrays_to_tensors(value))
    assert isinstance(back, tuple) and all(a.dtype == b.dtype and a.tobytes() == b.tobytes() for a, b in zip(value, back))


def test_parts_of_another_batch_layout_go_when_their_pass_is_saved(tmp_path):
    """Issue 31, fault 15b: a run killed mid-pass leaves that pass's batch parts (batch size 2);
    a resume with another batch size cannot read them, runs the pass in its own parts and saves
    it whole. Every part of that pass is then gone, the killed run's included; another pass's
    parts stay."""
    def run_pass(inputs: dict, batch_size: int, fail: bool = False):
        def compute():
            for start in range(0, 6, batch_size):
                checkpoint.cached("batch", dict(inputs, rows=(start, start + batch_size)), lambda: torch.zeros(1))
                if fail and start >= 2:
                    raise KeyboardInterrupt  # the kill, after two parts were saved
            return torch.ones(1)
        return checkpoint.cached("pass", inputs, compute)

    store = checkpoint.configure(tmp_path, read=True)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_pass({"x": 1}, 2, fail=True)
        with pytest.raises(KeyboardInterrupt):
            run_pass({"x": 2}, 2, fail=True)
        assert len(list(tmp_path.rglob("batch-*.pt"))) == 4 and store.saved == 0
        assert torch.equal(run_pass({"x": 1}, 3), torch.ones(1))
        left = sorted(p.name for p in tmp_path.rglob("batch-*.pt"))
        assert len(left) == 2 and all(checkpoint.key_of("pass", {"x": 2})[:checkpoint.PART_TAG] in n for n in left)
        assert store.saved == 1 and len(list(tmp_path.rglob("pass-*.pt"))) == 1
    finally:
        checkpoint.configure(None)
