"""Gu et al.'s input controls for the sink rate (sinkbench.measure.sink_controls): windows of the
natural windows' shape made of random tokens or one repeated token, and their rates."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sinkbench.measure.sink_controls import CONTROLS, control_windows, input_control_rates


def test_control_windows_keep_the_shape_and_bos_and_draw_from_the_text_s_types(windows):
    types = np.array([10, 20, 30, 40])
    rnd = control_windows(windows, types, "random", keep_first=True)
    rep = control_windows(windows, types, "repeated", keep_first=True)
    for w in (rnd, rep):
        assert w.shape == windows.shape and torch.equal(w[:, 0], windows[:, 0])
        assert set(w[:, 1:].unique().tolist()) <= set(types.tolist())
    assert all(len(set(row[1:].tolist())) == 1 for row in rep)
    assert len(set(rnd[:, 1:].flatten().tolist())) > 1


def test_without_bos_the_repeated_token_fills_position_0(windows):
    rep = control_windows(windows, np.array([7, 8]), "repeated", keep_first=False)
    assert all(len(set(row.tolist())) == 1 for row in rep)


def test_an_unknown_control_is_refused(windows):
    with pytest.raises(ValueError):
        control_windows(windows, np.array([7]), "shuffled", keep_first=False)


def test_rates_on_each_control_are_recorded(llama_subject, windows, monkeypatch):
    from sinkbench.measure import data

    monkeypatch.setattr(data, "text_tokens", lambda subject, dataset: list(range(3, 200)))
    out = input_control_rates(llama_subject, windows, "pydoc", batch=3)
    assert set(out) == set(CONTROLS)
    for r in out.values():
        assert 0.0 <= r["sink_1"] <= 1.0 and r["epsilon"] == 0.3 and r["token_types"] == 197
