"""Synthetic attention for checking H3's detector: maps built from a few kinds of head,
with per-window noise, reduced by the same functions a model pass uses
(metrics.received_moments, distributed.head_mean_map). Under `recency` there is no
sink besides position 0, so every flag at a position >= 1 is a false flag."""
from __future__ import annotations

import numpy as np
import torch

from .measurement import Detector, PositionTable, SinkRule, detector_from_maps, head_mean_map, position_histogram
from sinkbench.model.metrics import received_moments


def head_logits(kind: str, t: int, decay: float, sink_logit: float, extra_sinks: list[int] | None = None) -> torch.Tensor:
    """[T, T] pre-softmax scores of one head: 'sink' puts sink_logit on key 0, 'recency'
    scores -decay * (i - j), 'uniform' scores 0, 'secondary' is 'sink' plus sink_logit on
    the keys in extra_sinks."""
    i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
    if kind == "recency":
        return -decay * (i - j).float()
    scores = torch.zeros(t, t)
    if kind in ("sink", "secondary"):
        scores[:, 0] = sink_logit
    if kind == "secondary":
        for k in extra_sinks or []:
            scores[:, k] = sink_logit
    return scores


def attention(kinds: list[str], n: int, t: int, seed: int, decay: float = 0.1, sink_logit: float = 6.0,
              noise: float = 0.5, extra_sinks: int = 2) -> torch.Tensor:
    """[N, H, T, T] causal attention probabilities, one head per entry of kinds; every score
    gets Gaussian noise (sd `noise`) per window, and 'secondary' heads put a sink on
    `extra_sinks` random keys 1..T/2 of each window."""
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(n, len(kinds), t, t)
    mask = torch.ones(t, t, dtype=torch.bool).tril()
    for w in range(n):
        keys = (torch.randperm(t // 2 - 1, generator=g)[:extra_sinks] + 1).tolist()
        for h, kind in enumerate(kinds):
            s = head_logits(kind, t, decay, sink_logit, keys) + noise * torch.randn(t, t, generator=g)
            out[w, h] = torch.softmax(s.masked_fill(~mask, -torch.inf), -1)
    return out


LAYERS = {"recency": ["sink", "recency", "recency", "recency"],
          "sink_only": ["sink", "uniform", "uniform", "uniform"],
          "secondary": ["secondary", "recency", "recency", "recency"]}


def layer_maps(layers: dict, n: int, t: int, seed: int, **kw) -> dict:
    """name -> [N, H, T, T] probabilities for each layer kind in `layers` (name -> kind)."""
    return {name: attention(LAYERS[kind], n, t, seed + 1000 * i, **kw) for i, (name, kind) in enumerate(layers.items())}


def synthetic_table(detector: Detector, probs: dict) -> PositionTable:
    """A PositionTable of the attention fields (dark ratio, cosine, frequency are left
    uninformative) from test-window probabilities of the detector's layers."""
    moments = np.mean([received_moments(probs[l]).numpy() for l in detector.active_layers], 0).astype(np.float64)
    c = detector.classify(moments)
    n, p = c["ratio"].shape
    zeros = np.zeros((n, p))
    return PositionTable(bar_ratio=c["ratio"], cv=c["cv"], sink_like=c["sink_like"], dark_ratio=zeros, profile_cos=zeros,
                         frequent=np.zeros((n, p), bool), tokens=np.zeros((n, p), int),
                         position0_received=c["mean"][:, 0], position0_bar_ratio=c["position0_ratio"],
                         position0_dark_ratio=np.zeros(n), active_layers=list(detector.active_layers),
                         position0_sink_like=c["position0_sink_like"], uniform_ratio=c["uniform_ratio"],
                         seq_len=moments.shape[-1])


def run(layers: dict, rule: SinkRule, n_select: int = 8, n_test: int = 16, t: int = 128, seed: int = 0, **kw):
    """Detector from selection maps, table from test maps. Returns (detector, table)."""
    select = layer_maps(layers, n_select, t, seed, **kw)
    test = layer_maps(layers, n_test, t, seed + 1, **kw)
    detector = detector_from_maps({l: head_mean_map(p).double().numpy() for l, p in select.items()}, rule)
    return detector, synthetic_table(detector, test)


def flag_rates(table: PositionTable, rule: SinkRule, bins: int) -> dict:
    """Per-position false-flag rates (no sink but position 0 exists) of the new rule and of
    the uniform-head baseline it replaced, and where in the window they fall."""
    old = rule.flags(table.uniform_ratio, table.cv)
    return {"new_per_position": table.sink_like.mean(0), "old_per_position": old.mean(0),
            "new_per_window": table.sink_like.sum(1).mean(), "old_per_window": old.sum(1).mean(),
            "new_by_bin": position_histogram(table.sink_like, table.seq_len, bins),
            "old_by_bin": position_histogram(old, table.seq_len, bins)}
