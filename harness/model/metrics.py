"""Measurements reduced to per-sequence numbers (docs/methods.md §4).

Everything here takes plain tensors, so it can run inside an nnsight trace
(on real values) or be unit-tested on hand-made inputs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

# Largest logits block materialised at once (elements). 2^25 floats = 128 MiB:
# 2048 tokens x 16k vocabulary entries.
NLL_CHUNK_ELEMENTS = 1 << 25
# Tokens per block: the unembedding product runs on all of them against one slice of
# the vocabulary at a time (a wide product runs faster than a tall, thin one).
NLL_TOKEN_BLOCK = 2048


@dataclass(frozen=True)
class LogitMap:
    """What a model does to W_U h before it returns logits: add the output embedding's bias
    (Phi, GPT-J), multiply by a scale (Cohere's logit_scale, 1 / Granite's logits_scaling),
    then soft-cap (Gemma-2/3: cap * tanh(z / cap)). Read by sinkbench.model.access from the
    family table (sinkbench.model.architectures) and checked at load against the model's forward."""

    __slotnames__ = []  # preset: see sinkbench.model.architectures.Family

    scale: float = 1.0
    softcap: float | None = None
    bias: torch.Tensor | None = None  # [V]

    def apply(self, logits: torch.Tensor, lo: int = 0) -> torch.Tensor:
        """Post-process a float32 slice of logits whose vocabulary starts at entry lo."""
        if self.bias is not None:
            logits = logits + self.bias[lo:lo + logits.shape[-1]].to(logits)
        if self.scale != 1.0:
            logits = logits * self.scale
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


def chunked_nll(
    hidden: torch.Tensor,
    unembedding: torch.Tensor,
    ids: torch.Tensor,
    softcap: float | LogitMap | None = None,
    chunk_elements: int = NLL_CHUNK_ELEMENTS,
    reduce: bool = True,
) -> torch.Tensor:
    """Mean next-token NLL per sequence, in nats, from final-normed hidden states.

    hidden [B, T, d] (after the final norm), unembedding [V, d], ids [B, T].
    Position t predicts ids[:, t + 1]; each sequence's NLL is the mean over its
    T - 1 predictions (reduce=False: the [B, T-1] per-token losses). softcap: a soft cap, or
    the model's whole LogitMap (bias, scale, soft cap).

    Logits are formed in float32 for a block of tokens against one slice of the
    vocabulary at a time (at most chunk_elements of them), and the log-partition is
    accumulated over slices with a running maximum (online log-sum-exp), so the
    B x T x V tensor never exists. Against token-by-token chunks of the whole
    vocabulary this is 1.5x faster on Gemma-3's 262k vocabulary (the product is wide
    instead of 128 tokens tall) and agrees to 4e-6 nats (benchmarks/NOTES.md)."""
    b, t, d = hidden.shape
    h = hidden[:, :-1].reshape(-1, d)
    targets = ids[:, 1:].reshape(-1).to(h.device)
    post = softcap if isinstance(softcap, LogitMap) else LogitMap(softcap=softcap)
    w, n = unembedding, h.shape[0]
    block = max(1, min(n, NLL_TOKEN_BLOCK, chunk_elements))
    width = max(1, chunk_elements // block)  # vocabulary entries per slice
    losses = torch.empty(n, dtype=torch.float32, device=h.device)
    for start in range(0, n, block):
        hb, tb = h[start:start + block], targets[start:start + block]
        top = torch.full((hb.shape[0],), -torch.inf, device=h.device)
        total = torch.zeros(hb.shape[0], device=h.device)
        target_logit = torch.empty(hb.shape[0], device=h.device)
        for lo in range(0, w.shape[0], width):
            logits = post.apply((hb @ w[lo:lo + width].T).float(), lo)
            hit = ((tb >= lo) & (tb < lo + width)).nonzero().squeeze(1)
            target_logit[hit] = logits[hit, tb[hit] - lo]
            new_top = torch.maximum(top, logits.amax(1))
            # in place on the slice: no shifted copy of 128 MiB
            total = total * torch.exp(top - new_top) + logits.sub_(new_top[:, None]).exp_().sum(1)
            top = new_top
        losses[start:start + block] = total.log() + top - target_logit
    losses = losses.view(b, t - 1)
    return losses.mean(1) if reduce else losses


def sink_mass(probs: torch.Tensor, sink: int = 0) -> torch.Tensor:
    """Attention weight from queries after the sink to the sink, mean over heads and
    queries: [B, H, T, T] -> [B]."""
    return probs[:, :, sink + 1:, sink].float().mean(dim=(1, 2))


def learned_share(probs: torch.Tensor) -> torch.Tensor:
    """Per query, the attention weight a learned sink logit (GPT-OSS's `sinks`) absorbed: 1 -
    the row sum over real keys: [B, H, T, T] -> [B, H, T]. Zero without learned sinks."""
    return 1 - probs.float().sum(-1)


def learned_sink_mass(probs: torch.Tensor) -> torch.Tensor:
    """learned_share, mean over heads and queries: [B, H, T, T] -> [B]."""
    return learned_share(probs).mean(dim=(1, 2))


def received_moments(probs: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
    """[B, H, T, T] -> [B, 2, T]: sum and sum of squares over queries i > j of the
    head-averaged attention i -> j. `rows` is unused; it lets this serve as a pass readout."""
    p = probs.float().mean(1)
    t = p.shape[-1]
    later = torch.tril(torch.ones(t, t, dtype=torch.bool, device=p.device), diagonal=-1)
    p = p * later
    return torch.stack([p.sum(1), (p * p).sum(1)], 1)


def attention_received(probs: torch.Tensor) -> torch.Tensor:
    """Mean attention each key position j gets from later queries i > j, over heads:
    [B, H, T, T] -> [B, T] (the last position, with no later queries, is NaN)."""
    t = probs.shape[-1]
    count = torch.arange(t - 1, -1, -1, dtype=torch.float32, device=probs.device)  # T - 1 - j
    return received_moments(probs)[:, 0] / count.where(count > 0, torch.tensor(float("nan"), device=probs.device))


def attention_from(probs: torch.Tensor, keys: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Mean attention (over heads and the selected queries) to one key per window.
    probs [B, H, T, T], keys [B] key position per window, queries [B, T] bool/float mask -> [B]."""
    p = probs.float().mean(1)  # [B, T, T]
    b = torch.arange(p.shape[0], device=p.device)
    to_key = p[b, :, keys.to(p.device)]  # [B, T]: every query's attention to its window's key
    q = queries.to(device=p.device, dtype=p.dtype)
    return (to_key * q).sum(1) / q.sum(1).clamp_min(1)


def key_scores(probs: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
    """Gu et al. (2024) score of every key, per head: the mean attention key k receives
    from the queries that see it (q >= k, itself included). [B, H, T, T] -> [B, H, T].
    A pass readout (`rows` unused): per layer it keeps T numbers per head, not the T x T map."""
    p = probs.float()
    t = p.shape[-1]
    seen = torch.ones(t, t, dtype=torch.bool, device=p.device).tril()  # [q, k]: q >= k
    received = p.masked_fill(~seen, 0).sum(-2)
    return received / torch.arange(t, 0, -1, device=p.device, dtype=p.dtype)  # T - k queries see key k


def sink_rate(scores: Mapping[int, torch.Tensor] | torch.Tensor, epsilon: float = 0.3) -> dict:
    """Sink rate (Gu et al. 2024, "When Attention Sink Emerges"): the share of (window,
    layer, head) triples in which a key's score (key_scores) exceeds epsilon strictly.
    scores: {layer: [B, H, T]} as a pass returns them, or a tensor [..., T].
    Returns sink_1 (the rate of position 0) and the largest rate of any other position."""
    s = torch.stack([scores[i] for i in sorted(scores)], 1) if isinstance(scores, Mapping) else scores
    rate = (s > epsilon).float().reshape(-1, s.shape[-1]).mean(0)  # [T]: one rate per key position
    if rate.numel() < 2:
        return {"epsilon": epsilon, "sink_1": float(rate[0]), "max_other": float("nan"), "max_other_position": None}
    k = int(rate[1:].argmax()) + 1
    return {"epsilon": epsilon, "sink_1": float(rate[0]), "max_other": float(rate[k]), "max_other_position": k}
