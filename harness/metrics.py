"""Measurements reduced to per-sequence numbers (SCIENCE.md §3).

Everything here takes plain tensors, so it can run inside an nnsight trace
(on real values) or be unit-tested on hand-made inputs."""
from __future__ import annotations

import torch

# Largest logits block materialised at once (elements). 2^25 floats = 128 MiB:
# Gemma-3's 262k vocabulary then gets 128 tokens per chunk instead of B*T at once.
NLL_CHUNK_ELEMENTS = 1 << 25


def chunked_nll(
    hidden: torch.Tensor,
    unembedding: torch.Tensor,
    ids: torch.Tensor,
    softcap: float | None = None,
    chunk_elements: int = NLL_CHUNK_ELEMENTS,
    reduce: bool = True,
) -> torch.Tensor:
    """Mean next-token NLL per sequence, in nats, from final-normed hidden states.

    hidden [B, T, d] (after the final norm), unembedding [V, d], ids [B, T].
    Position t predicts ids[:, t + 1]; each sequence's NLL is the mean over its
    T - 1 predictions (reduce=False: the [B, T-1] per-token losses). Logits are formed in chunks of tokens, in float32, so the
    B x T x V tensor never exists."""
    b, t, d = hidden.shape
    h = hidden[:, :-1].reshape(-1, d)
    targets = ids[:, 1:].reshape(-1).to(h.device)
    w = unembedding
    per_chunk = max(1, chunk_elements // w.shape[0])
    losses = torch.empty(h.shape[0], dtype=torch.float32, device=h.device)
    for start in range(0, h.shape[0], per_chunk):
        stop = start + per_chunk
        logits = (h[start:stop] @ w.T).float()
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        tgt = logits.gather(1, targets[start:stop, None]).squeeze(1)
        # log-sum-exp in place on the chunk (torch.logsumexp allocates a shifted copy):
        # bit-identical here, and 13% less time for the NLL step on SmolLM2's vocabulary.
        top = logits.amax(1, keepdim=True)
        losses[start:stop] = logits.sub_(top).exp_().sum(1).log_() + top.squeeze(1) - tgt
    losses = losses.view(b, t - 1)
    return losses.mean(1) if reduce else losses


def sink_mass(probs: torch.Tensor, sink: int = 0) -> torch.Tensor:
    """Attention weight from queries after the sink to the sink, mean over heads and
    queries: [B, H, T, T] -> [B]."""
    return probs[:, :, sink + 1:, sink].float().mean(dim=(1, 2))


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
