"""Measurements for H3, distributed sinks: per position, the attention it
receives in the layers where sinks are active, whether it is sink-like, its dark
ratio and band profile, and its token's frequency.

Definitions (documented defaults):
* attention received by key j: mean over heads and over queries i > j of the
  attention i -> j; its "bar ratio" is that divided by what a uniform causal head
  gives j (mean over i > j of 1 / (i + 1)).
* active layers: the sink is wherever attention concentrates, so the active layers
  are the upper half (by median split, layer 0 excluded) of layers ranked by
  their largest mean bar ratio over key positions 1..T-1-min_queries. This does
  not presume the sink sits at position 0 (it cannot in a sliding-window model).
  They are chosen on selection windows, never on the windows the claims test.
* sink-like position j >= 1: bar ratio >= 5 and coefficient of variation of the
  attention it receives over its queries <= 1 (a "bar": many queries, steadily),
  among positions with at least min_queries = 8 later queries.
"""
from __future__ import annotations

import string
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from .errors import SinkbenchError
from .interventions import run_batched
from .metrics import received_moments
from .tensors import to_numpy

MIN_QUERIES = 8


def uniform_received(t: int) -> np.ndarray:
    """What a uniform causal head gives key j: mean over i > j of 1 / (i + 1) (NaN for j = T-1)."""
    inv = 1.0 / np.arange(1, t + 1)
    out = np.full(t, np.nan)
    for j in range(t - 1):
        out[j] = inv[j + 1:].mean()
    return out


def is_punct_or_space(token: str) -> bool:
    s = token.replace("Ġ", " ").replace("▁", " ").replace("Ċ", "\n")
    return s.strip() == "" or all(c in string.punctuation or c.isspace() for c in s)


@dataclass
class PositionTable:
    """Per (window, position) arrays, positions 1..T-1-MIN_QUERIES of every window."""

    bar_ratio: np.ndarray  # [N, P]
    cv: np.ndarray  # [N, P]
    sink_like: np.ndarray  # [N, P] bool
    dark_ratio: np.ndarray  # [N, P]
    profile_cos: np.ndarray  # [N, P] cosine of band profile to position 0's
    frequent: np.ndarray  # [N, P] bool: top 1% token type or punctuation/whitespace
    tokens: np.ndarray  # [N, P] token ids
    position0_received: np.ndarray  # [N] attention received by position 0 (active layers)
    position0_bar_ratio: np.ndarray  # [N]
    position0_dark_ratio: np.ndarray  # [N]
    active_layers: list
    position0_sink_like: np.ndarray | None = None  # [N] bool: position 0 meets the sink-like rule


def last_measured(t: int) -> int:
    """Last key position with at least MIN_QUERIES later queries in a window of t tokens."""
    last = t - 1 - MIN_QUERIES
    if last < 2:
        raise SinkbenchError(f"--seq-len {t}: H3 needs windows of at least {MIN_QUERIES + 3} tokens "
                             f"(positions with {MIN_QUERIES} later queries); pass a longer --seq-len")
    return last


def choose_active_layers(subject, windows: torch.Tensor, batch_size: int) -> list[int]:
    """The upper half of layers 1..L-1 ranked by how strongly attention concentrates on one key
    position >= 1 (its largest mean bar ratio). Pass selection windows, not test windows."""
    n_layers, t = subject.n_layers, windows.shape[1]
    last = last_measured(t)
    res = run_batched(subject, windows, batch_size, attn_layers=range(1, n_layers), attn_readout=received_moments)
    counts, uni = t - 1 - np.arange(t), uniform_received(t)
    concentration = {}
    for l in range(1, n_layers):
        mean = to_numpy(res.attention[l][:, 0]) / np.maximum(counts, 1)
        concentration[l] = float(np.nanmax((mean[:, 1:last + 1] / uni[1:last + 1]).mean(0)))
    ranked = sorted(concentration, key=concentration.get, reverse=True)
    return sorted(ranked[: max(1, len(ranked) // 2)])


def measure_positions(subject, windows: torch.Tensor, spectrum, token_counts: Counter, batch_size: int,
                      active_layers: list[int], min_ratio: float = 5.0, max_cv: float = 1.0,
                      top_share: float = 0.01) -> PositionTable:
    """Per-position measurements on the test windows, in the given (pre-chosen) active layers."""
    t = windows.shape[1]
    active = list(active_layers)
    res = run_batched(subject, windows, batch_size, attn_layers=active, hidden_layers=active,
                      attn_readout=received_moments)
    counts = t - 1 - np.arange(t)  # later queries per key
    uni = uniform_received(t)
    last = last_measured(t)
    m1 = np.mean([to_numpy(res.attention[l][:, 0]) / np.maximum(counts, 1) for l in active], 0)
    m2 = np.mean([to_numpy(res.attention[l][:, 1]) / np.maximum(counts, 1) for l in active], 0)
    std = np.sqrt(np.maximum(m2 - m1 ** 2, 0))
    ratio = m1 / uni
    cv = std / np.maximum(m1, 1e-12)
    hidden = torch.stack([res.hidden[l] for l in active]).float()  # [A, N, T, d]
    dark = to_numpy(spectrum.dark_ratio(hidden).mean(0))
    profile = spectrum.band_profile(hidden).mean(0)  # [N, T, K]
    cos = to_numpy(torch.nn.functional.cosine_similarity(profile, profile[:, :1], dim=-1))
    ids = to_numpy(windows)
    frequent = frequent_mask(subject.tokenizer, ids, token_counts, top_share)
    sl = slice(1, last + 1)
    return PositionTable(
        bar_ratio=ratio[:, sl], cv=cv[:, sl], sink_like=(ratio[:, sl] >= min_ratio) & (cv[:, sl] <= max_cv),
        dark_ratio=dark[:, sl], profile_cos=cos[:, sl], frequent=frequent[:, sl], tokens=ids[:, sl],
        position0_received=m1[:, 0], position0_bar_ratio=ratio[:, 0], position0_dark_ratio=dark[:, 0],
        active_layers=active, position0_sink_like=(ratio[:, 0] >= min_ratio) & (cv[:, 0] <= max_cv),
    )


def frequent_mask(tokenizer, ids: np.ndarray, counts: Counter, top_share: float = 0.01) -> np.ndarray:
    """True where the token is among the text's most frequent types or is punctuation/whitespace."""
    punct = np.vectorize(lambda i: is_punct_or_space(tokenizer.convert_ids_to_tokens(int(i)) or ""))(ids)
    return np.isin(ids, list(frequent_token_ids(counts, top_share))) | punct


def frequent_token_ids(counts: Counter, top_share: float = 0.01) -> set:
    """The most frequent top_share of the text's token types (at least one)."""
    n = max(1, int(round(len(counts) * top_share)))
    return {tok for tok, _ in counts.most_common(n)}
