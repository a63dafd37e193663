"""Measurements for H3, distributed sinks: per position, the attention it
receives in the layers where sinks are active, whether it is sink-like, its dark
ratio and band profile, and its token's frequency.

Definitions (thresholds are settings, [tool.sinkbench] h3_*; docs/methods.md):
* attention received by key j: mean over heads and over queries i > j of the
  attention i -> j, averaged over the active layers.
* expected attention at j: what the same layers give the same (query, key) cells on
  the selection windows: per layer, the median over selection windows of the
  head-averaged attention i -> j, then the mean over i > j (and over active layers).
  It knows position and distance, so a head whose attention decays with distance
  (recency) or that spreads over fewer keys at early queries sets its own baseline,
  and only a key that receives far more than a key at that place usually gets stands
  out. Its "bar ratio" is received / expected.
* sink-like position j >= 1: bar ratio >= h3_min_ratio and coefficient of variation
  of the attention it receives over its queries <= h3_max_cv (a "bar": many queries,
  steadily), among positions with at least h3_min_queries later queries.
* position 0 is the sink of almost every window, so its own baseline is itself; it
  is judged against a uniform causal head (mean over i > 0 of 1 / (i + 1)), which a
  recency head can only under-shoot at position 0.
* active layers: the upper half (layer 0 excluded) of layers ranked by their mean,
  over selection windows, of the largest bar ratio at a key position
  1..T-1-h3_min_queries, each selection window measured against the median of the
  other selection windows (leave-one-out). A recency layer matches its own baseline
  (ratio near 1), so it cannot win. This does not presume the sink sits at position
  0 (it cannot in a sliding-window model). Everything here is chosen on selection
  windows, never on the windows the claims test.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
import torch

from sinkbench.measure.config import Settings
from sinkbench.measure.data import frequent_mask
from sinkbench.errors import SinkbenchError
from sinkbench.measure.interventions import run_batched
from sinkbench.model.metrics import received_moments
from sinkbench.model.tensors import to_numpy

# The default, for measurements outside H3 that only need "keys seen by enough queries"
# (experiments.sink_rates); H3 itself reads the setting.
MIN_QUERIES = Settings.h3_min_queries


@dataclass(frozen=True)
class SinkRule:
    """H3's sink-like rule and frequency threshold, copied from the settings (never retyped)."""

    min_ratio: float
    max_cv: float
    min_queries: int
    frequent_share: float

    @classmethod
    def from_settings(cls, s: Settings) -> "SinkRule":
        return cls(min_ratio=s.h3_min_ratio, max_cv=s.h3_max_cv, min_queries=s.h3_min_queries,
                   frequent_share=s.h3_frequent_share)

    def record(self) -> dict:
        """The rule as a record's params carry it."""
        return {f"h3_{k}": v for k, v in asdict(self).items()}

    def flags(self, ratio: np.ndarray, cv: np.ndarray) -> np.ndarray:
        return (ratio >= self.min_ratio) & (cv <= self.max_cv)


def uniform_received(t: int) -> np.ndarray:
    """What a uniform causal head gives key j: mean over i > j of 1 / (i + 1) (NaN for j = T-1)."""
    inv = 1.0 / np.arange(1, t + 1)
    out = np.full(t, np.nan)
    for j in range(t - 1):
        out[j] = inv[j + 1:].mean()
    return out


@dataclass
class PositionTable:
    """Per (window, position) arrays, positions 1..T-1-min_queries of every window."""

    bar_ratio: np.ndarray  # [N, P] received / expected at those cells (selection windows)
    cv: np.ndarray  # [N, P]
    sink_like: np.ndarray  # [N, P] bool
    dark_ratio: np.ndarray  # [N, P]
    profile_cos: np.ndarray  # [N, P] cosine of band profile to position 0's
    frequent: np.ndarray  # [N, P] bool: top h3_frequent_share token type or punctuation/whitespace
    tokens: np.ndarray  # [N, P] token ids
    position0_received: np.ndarray  # [N] attention received by position 0 (active layers)
    position0_bar_ratio: np.ndarray  # [N] against a uniform causal head
    position0_dark_ratio: np.ndarray  # [N]
    active_layers: list
    position0_sink_like: np.ndarray | None = None  # [N] bool: position 0 meets the sink-like rule
    uniform_ratio: np.ndarray | None = None  # [N, P] received / uniform causal head (the old rule's ratio)
    seq_len: int | None = None  # T: column c is position c + 1


def last_measured(t: int, min_queries: int) -> int:
    """Last key position with at least min_queries later queries in a window of t tokens."""
    last = t - 1 - min_queries
    if last < 2:
        raise SinkbenchError(f"--seq-len {t}: H3 needs windows of at least {min_queries + 3} tokens "
                             f"(positions with h3_min_queries = {min_queries} later queries); pass a longer --seq-len "
                             "or a smaller h3_min_queries")
    return last


# ---------------------------------------------------------------- pure functions of maps
def head_mean_map(probs: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
    """Pass readout: [B, H, T, T] -> [B, T, T], the head-averaged attention map."""
    return probs.float().mean(1)


def received_mean_cv(moments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N, 2, T] sums and sums of squares over queries i > j -> mean and CV over those queries."""
    t = moments.shape[-1]
    counts = np.maximum(t - 1 - np.arange(t), 1)
    m1, m2 = moments[:, 0] / counts, moments[:, 1] / counts
    std = np.sqrt(np.maximum(m2 - m1 ** 2, 0))
    return m1, std / np.maximum(m1, 1e-12)


def cell_baseline(maps: np.ndarray) -> np.ndarray:
    """[N, T, T] head-averaged maps of one layer -> [T, T]: the median over windows of each
    (query, key) cell. The median, so that a sink at key j in one selection window does not
    raise the baseline of every test window at j."""
    return np.median(maps, axis=0)


def expected_received(cells: np.ndarray) -> np.ndarray:
    """[T, T] baseline cells -> [T]: mean over queries i > j of cell (i, j) (NaN at T-1)."""
    t = cells.shape[-1]
    below = np.tril(np.ones((t, t), bool), -1)
    sums = np.where(below, cells, 0.0).sum(0)
    counts = t - 1 - np.arange(t)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def leave_one_out_expected(maps: np.ndarray) -> np.ndarray:
    """[N, T, T] -> [N, T]: each window's expected attention from the other windows' median
    (from all of them when there is only one)."""
    n = maps.shape[0]
    if n == 1:
        return expected_received(cell_baseline(maps))[None]
    return np.stack([expected_received(cell_baseline(np.delete(maps, w, axis=0))) for w in range(n)])


def layer_score(maps: np.ndarray, last: int) -> float:
    """How strongly one layer concentrates attention on a key position 1..last beyond its
    own typical attention at that place: mean over windows of the largest bar ratio
    (each window against the others' median)."""
    moments = moments_from_maps(maps)
    mean, _ = received_mean_cv(moments)
    ratio = mean / np.maximum(leave_one_out_expected(maps), 1e-12)
    return float(ratio[:, 1:last + 1].max(1).mean())


def choose_layers(scores: dict) -> list[int]:
    """The upper half (at least one) of layers by score."""
    ranked = sorted(scores, key=scores.get, reverse=True)
    return sorted(ranked[: max(1, len(ranked) // 2)])


def moments_from_maps(maps: np.ndarray) -> np.ndarray:
    """[N, T, T] head-averaged maps -> [N, 2, T], as metrics.received_moments gives them."""
    t = maps.shape[-1]
    below = np.tril(np.ones((t, t), bool), -1)
    p = np.where(below, maps, 0.0)
    return np.stack([p.sum(1), (p * p).sum(1)], 1)


# ---------------------------------------------------------------- the detector
@dataclass
class Detector:
    """What H3 fixes on selection windows before it looks at a test window."""

    rule: SinkRule
    active_layers: list[int]
    expected: np.ndarray  # [T]: expected attention received at key j in the active layers
    layer_scores: dict

    def classify(self, moments: np.ndarray) -> dict:
        """[N, 2, T] received moments (mean over the active layers) -> bar ratio, CV and
        sink-like flags for positions 1..last, and position 0's against a uniform head."""
        t = moments.shape[-1]
        last = last_measured(t, self.rule.min_queries)
        mean, cv = received_mean_cv(moments)
        ratio = mean / np.maximum(self.expected, 1e-12)
        uni = mean / uniform_received(t)
        sl = slice(1, last + 1)
        return {"mean": mean, "ratio": ratio[:, sl], "cv": cv[:, sl], "sink_like": self.rule.flags(ratio[:, sl], cv[:, sl]),
                "uniform_ratio": uni[:, sl], "position0_ratio": uni[:, 0],
                "position0_sink_like": self.rule.flags(uni[:, 0], cv[:, 0])}


def detector_from_maps(maps: dict, rule: SinkRule) -> Detector:
    """maps: layer -> [N, T, T] head-averaged attention on selection windows."""
    t = next(iter(maps.values())).shape[-1]
    last = last_measured(t, rule.min_queries)
    scores = {l: layer_score(m, last) for l, m in maps.items()}
    active = choose_layers(scores)
    expected = np.mean([expected_received(cell_baseline(maps[l])) for l in active], 0)
    return Detector(rule, active, expected, scores)


def calibrate_detector(subject, windows: torch.Tensor, batch_size: int, rule: SinkRule) -> Detector:
    """Active layers and expected attention from selection windows (never test windows)."""
    last_measured(windows.shape[1], rule.min_queries)
    res = run_batched(subject, windows, batch_size, attn_layers=range(1, subject.n_layers), attn_readout=head_mean_map)
    return detector_from_maps({l: to_numpy(res.attention[l]).astype(np.float64) for l in range(1, subject.n_layers)}, rule)


def choose_active_layers(subject, windows: torch.Tensor, batch_size: int, rule: SinkRule) -> list[int]:
    """The active layers alone (calibrate_detector keeps the baseline too)."""
    return calibrate_detector(subject, windows, batch_size, rule).active_layers


def measure_positions(subject, windows: torch.Tensor, spectrum, token_counts: Counter, batch_size: int,
                      detector: Detector) -> PositionTable:
    """Per-position measurements on the test windows, in the detector's (pre-chosen) layers."""
    t = windows.shape[1]
    active = list(detector.active_layers)
    res = run_batched(subject, windows, batch_size, attn_layers=active, hidden_layers=active,
                      attn_readout=received_moments)
    moments = np.mean([to_numpy(res.attention[l]) for l in active], 0)
    c = detector.classify(moments)
    last = last_measured(t, detector.rule.min_queries)
    hidden = torch.stack([res.hidden[l] for l in active]).float()  # [A, N, T, d]
    dark = to_numpy(spectrum.dark_ratio(hidden).mean(0))
    profile = spectrum.band_profile(hidden).mean(0)  # [N, T, K]
    cos = to_numpy(torch.nn.functional.cosine_similarity(profile, profile[:, :1], dim=-1))
    ids = to_numpy(windows)
    frequent = frequent_mask(subject.tokenizer, ids, token_counts, detector.rule.frequent_share)
    sl = slice(1, last + 1)
    return PositionTable(
        bar_ratio=c["ratio"], cv=c["cv"], sink_like=c["sink_like"],
        dark_ratio=dark[:, sl], profile_cos=cos[:, sl], frequent=frequent[:, sl], tokens=ids[:, sl],
        position0_received=c["mean"][:, 0], position0_bar_ratio=c["position0_ratio"], position0_dark_ratio=dark[:, 0],
        active_layers=active, position0_sink_like=c["position0_sink_like"], uniform_ratio=c["uniform_ratio"], seq_len=t,
    )


def position_histogram(sink_like: np.ndarray, seq_len: int, bins: int) -> dict:
    """Where in the window the sink-like positions fall: per bin of the window (bin b holds
    positions j with floor(j * bins / T) = b), their count, the number of measured
    (window, position) cells, and the flag rate. Columns of sink_like are positions 1..P."""
    pos = np.arange(1, sink_like.shape[1] + 1)
    which = pos * bins // seq_len
    counts = np.bincount(which, weights=sink_like.sum(0), minlength=bins)
    cells = np.bincount(which, minlength=bins) * sink_like.shape[0]
    rate = [round(float(c / n), 5) if n else None for c, n in zip(counts, cells)]  # None: no measured position
    return {"bins": bins, "sink_like": counts.astype(int).tolist(), "cells": cells.astype(int).tolist(), "rate": rate}
