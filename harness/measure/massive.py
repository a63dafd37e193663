"""Massive activations (Sun et al., COLM 2024): the one rule every hypothesis uses to say which
residual coordinates are massive, and the selection-window pass they read it from.

A coordinate i of layer l's output is massive in one window when |h_i| exceeds the window's
threshold somewhere in the window; the threshold is Sun's max(100, 1000 x the median |h| of
the window's layer output, every position and coordinate) or, scale-free, `h6_min_ratio` x
that median (small models rarely reach 100). A coordinate is massive at a layer when it is so
on at least MIN_WINDOW_SHARE of the selection windows: one window's outlier is not a model's
feature. Users:
* H6 (massive activations are dark): Sun's criterion if it finds any, else the scale-free one;
* H1(a)'s fair random control: random subspaces orthogonal to the scale-free coordinates of
  the layer (the wider set: Sun's flags a subset), so it avoids every coordinate H6 could call
  massive;
* H7's early layer: the first layer whose output holds a scale-free massive coordinate at the
  first token, where a copy of the sink's state carries the massive activation.
All three read the same pass over the selection windows (`selection_hidden`, one per model
run), never the test windows. Everything is fp32 (hidden states are cast before any reduction)."""
from __future__ import annotations

import numpy as np
import torch

from sinkbench.model.tensors import to_numpy

SUN_ABSOLUTE = 100.0  # Sun et al.: |h| > 100 ...
SUN_RATIO = 1000.0  # ... and > 1000x the median |h| of the layer's hidden state
MIN_WINDOW_SHARE = 0.5  # a coordinate is massive at a layer on at least half the selection windows
CRITERIA = ("sun", "ratio")


def threshold(median: np.ndarray, criterion: str, min_ratio: float) -> np.ndarray:
    """The |h| a coordinate must exceed, per (window, layer): Sun's max(100, 1000 x median),
    or the scale-free min_ratio x median."""
    if criterion == "sun":
        return np.maximum(SUN_ABSOLUTE, SUN_RATIO * median)
    if criterion == "ratio":
        return min_ratio * median
    raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")


def flagged(abs_values: np.ndarray, median: np.ndarray, criterion: str, min_ratio: float) -> np.ndarray:
    """[W, L, d] booleans: the coordinate meets the criterion (abs_values [W, L, d], median [W, L])."""
    return abs_values > threshold(median, criterion, min_ratio)[..., None]


def massive_by_layer(flags: np.ndarray, min_share: float = MIN_WINDOW_SHARE) -> dict[int, list[int]]:
    """layer -> coordinates flagged on at least min_share of the windows (layers with none left out)."""
    share = flags.mean(0)  # [L, d]
    return {l: np.flatnonzero(share[l] >= min_share).tolist() for l in range(share.shape[0])
            if (share[l] >= min_share).any()}


def reductions(hidden: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One layer's output on W windows [W, T, d] -> (max over positions of |h| [W, d], |h| at
    position 0 [W, d], the window's median |h| over positions and coordinates [W], signed h at
    position 0 [W, d]), fp32."""
    h = hidden.float()
    return (to_numpy(h.abs().amax(1)), to_numpy(h[:, 0].abs()), to_numpy(h.abs().flatten(1).median(1).values),
            to_numpy(h[:, 0]))


def massive_coordinates(hidden: torch.Tensor, min_ratio: float) -> list[int]:
    """The scale-free massive coordinates of one layer's output (hidden [W, T, d], selection windows)."""
    max_abs, _, median, _ = reductions(hidden)
    return massive_by_layer(flagged(max_abs[:, None], median[:, None], "ratio", min_ratio)).get(0, [])


def first_massive_layer(ratio: np.ndarray, min_ratio: float, fallback: int) -> tuple[int, dict]:
    """ratio [windows, layers]: the first token's largest |coordinate| / the layer's median |h|.
    The first layer where it exceeds min_ratio (a scale-free massive coordinate at the first
    token) on at least MIN_WINDOW_SHARE of the windows; fallback where none does. Returns the
    layer and what the record says about it."""
    share = (ratio > min_ratio).mean(0)
    found = next((l for l in range(ratio.shape[1]) if share[l] >= MIN_WINDOW_SHARE), None)
    info = {"min_ratio": min_ratio, "first_token_max_ratio": np.median(ratio, 0).round(2).tolist(),
            "share_of_windows": share.round(3).tolist(), "n_selection_windows": int(ratio.shape[0])}
    if found is None:
        return fallback, {"rule": f"no massive coordinate at the first token; layer {fallback} by default", "layer": fallback, **info}
    return found, {"rule": "the first layer whose output holds a massive coordinate at the first token", "layer": found, **info}


def first_token_ratio(hidden: dict[int, torch.Tensor], layers) -> np.ndarray:
    """[windows, layers]: the first token's largest |coordinate| over the layer's median |h|."""
    cols = []
    for l in layers:
        _, sink_abs, median, _ = reductions(hidden[l])
        cols.append(sink_abs.max(-1) / median)
    return np.stack(cols, 1)


def selection_hidden(sweep, s) -> dict[int, torch.Tensor]:
    """Every layer's output on the model's selection windows (sinkbench.measure.experiments
    .selection_windows), one pass, kept on the sweep so that H1, H6 and H7 share it."""
    cached = getattr(sweep, "_selection_hidden", None)
    if cached is None:
        from sinkbench.measure.experiments import selection_windows
        from sinkbench.measure.interventions import run_batched

        subj = sweep.subject
        cached = run_batched(subj, selection_windows(subj, s), s.windows_per_pass(subj),
                             hidden_layers=range(subj.n_layers)).hidden
        sweep._selection_hidden = cached
    return cached
