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


# ------------------------------------------------------------------ position tables for the verdicts' nulls
# The per-window effect of each claim varies around a mean over windows (a random-effects
# model), and a drift over the first positions of the window can coincide with the sink-like
# labels: the cases where a test within windows and a test across windows disagree
# (benchmarks/h3_nulls.py, tests/test_distributed.py). The within-window sizes are
# H3_PROFILE's (SmolLM2-135M's tables).
NOISES = ("gaussian", "t2", "ar1", "lognormal")


def position_noise(rng, kind: str, shape: tuple) -> np.ndarray:
    """[N, P] noise along each window's positions: Gaussian, Student t2, AR(1) (phi 0.5,
    unit variance) or a centred, unit-variance lognormal (sigma 0.6, tail up)."""
    if kind == "gaussian":
        return rng.standard_normal(shape)
    if kind == "t2":
        return rng.standard_t(2, shape)
    if kind == "ar1":
        e = rng.standard_normal(shape)
        out = np.empty(shape)
        out[:, 0] = e[:, 0]
        for j in range(1, shape[1]):
            out[:, j] = 0.5 * out[:, j - 1] + np.sqrt(1 - 0.25) * e[:, j]
        return out
    if kind == "lognormal":
        s2 = 0.36
        sd = np.sqrt((np.exp(s2) - 1) * np.exp(s2))
        return (rng.lognormal(0.0, 0.6, shape) - np.exp(s2 / 2)) / sd
    raise ValueError(f"noise {kind!r}: one of {', '.join(NOISES)}")


def null_table(rng, n: int = 16, positions: int = 119, *, on_frequent: float = 0.0, rho: float = 0.0,
               cos_gap: float = 0.0, tau: float = 0.0, tau_claims: str = "123", noise: str = "gaussian",
               drift: float = 0.0, drift_positions: int = 4, weighting: bool = False, base_rate: float = 0.57,
               rate_sd: float = 0.10, cos_sd: float = 0.035) -> PositionTable:
    """One simulated H3 table of n windows x `positions` measured positions (column c is
    position c + 1) where each claim's per-window effect is its mean plus N(0, tau):
    * claim 1: a sink-like position lands on a frequent token with probability the
      window's base rate + on_frequent + tau z_w;
    * claim 2: log bar ratio and log dark ratio are correlated rho + tau z_w within the window
      (clipped to +-0.95), around noise of kind `noise`;
    * claim 3: profile cosines to position 0 are 0.92 + cos_sd x noise, and sink-like
      positions are shifted by cos_gap + tau z_w (in cosine units; tau counts in units of
      cos_sd here, so one tau means the same signal-to-noise for every claim);
    tau_claims: which claims get the random effect.
    drift > 0: the early-drift null: profile cosine and (standardised the same way) log dark
    ratio rise by drift x (drift_positions + 1 - j) / drift_positions at positions j =
    1..drift_positions and by 0 after, and every sink-like position lies there.
    weighting: claim 1's weighting null: a quarter of the windows hold 6 sink-like positions
    on frequent tokens with probability base + 3e, the rest 1 with probability base - e
    (e = min(base, 1 - base) / 4), so the mean over windows of (share - base rate) is 0.
    Each window has 1 + Poisson(0.8) sink-like positions otherwise (at most drift_positions
    under a drift)."""
    P = positions
    shape = (n, P)
    rate = np.clip(base_rate + rate_sd * rng.standard_normal((n, 1)), 0.05, 0.95)
    frequent = rng.random(shape) < rate
    z = lambda c: tau * rng.standard_normal(n) if c in tau_claims else np.zeros(n)  # noqa: E731
    # how many sink-like positions, and how likely each is on a frequent token
    if weighting:
        e = min(base_rate, 1 - base_rate) / 4
        many = np.zeros(n, bool)
        many[: max(1, n // 4)] = True
        n_sink = np.where(many, 6, 1)
        q = frequent.mean(1) + np.where(many, 3 * e, -e)
    else:
        n_sink = 1 + rng.poisson(0.8, n)
        q = frequent.mean(1) + on_frequent + z("1")
    allowed = np.arange(P) < drift_positions if drift > 0 else np.ones(P, bool)
    n_sink = np.minimum(n_sink, allowed.sum() - (1 if drift > 0 else 0))
    sink = np.zeros(shape, bool)
    for w in range(n):
        # each sink-like position lands on a frequent token with probability q_w (clipped)
        nf = rng.binomial(n_sink[w], float(np.clip(q[w], 0.0, 1.0)))
        f_pool, o_pool = np.flatnonzero(frequent[w] & allowed), np.flatnonzero(~frequent[w] & allowed)
        nf = min(nf, f_pool.size)
        no = min(n_sink[w] - nf, o_pool.size)
        nf = min(n_sink[w] - no, f_pool.size)
        sink[w, rng.choice(f_pool, nf, replace=False)] = True
        sink[w, rng.choice(o_pool, no, replace=False)] = True
    # the drift: highest at position 1, gone after drift_positions
    j = np.arange(1, P + 1)
    ramp = np.where(j <= drift_positions, (drift_positions + 1 - j) / drift_positions, 0.0)[None] * drift
    # claim 2: log bar ratio (sink-like ones >= 5x) and log dark ratio correlated rho_w
    # (t2's largest draws clipped at 10 sds before exponentiating: an overflow is no test of a statistic)
    log_bar = 0.6 * np.clip(position_noise(rng, noise, shape), -10, 10)
    bar = np.where(sink, 5.0 + np.exp(log_bar), np.exp(log_bar))
    lb = np.log(bar)
    zb = (lb - lb.mean(1, keepdims=True)) / lb.std(1, keepdims=True)
    r = np.clip(rho + z("2"), -0.95, 0.95)[:, None]
    dark = np.exp(0.3 + 0.4 * (r * zb + np.sqrt(1 - r ** 2) * np.clip(position_noise(rng, noise, shape), -10, 10)
                         + ramp / cos_sd))
    # claim 3: profile cosine, sink-like positions shifted by their window's gap
    gap = (cos_gap + cos_sd * z("3"))[:, None]
    cos = np.minimum(0.92 + cos_sd * position_noise(rng, noise, shape) + ramp + np.where(sink, gap, 0.0), 1.0)
    zeros = np.zeros(shape)
    return PositionTable(bar_ratio=bar, cv=np.full(shape, 0.5), sink_like=sink, dark_ratio=dark, profile_cos=cos,
                         frequent=frequent, tokens=np.zeros(shape, int), position0_received=np.ones(n),
                         position0_bar_ratio=np.ones(n), position0_dark_ratio=np.ones(n), active_layers=[1],
                         position0_sink_like=np.ones(n, bool), uniform_ratio=zeros, seq_len=P + 9)
