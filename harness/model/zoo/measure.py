"""Sink behaviour of a zoo model on held-out windows, with plain transformers
(output_attentions=True): attention to the sink position per layer and head, on
trigger and non-trigger queries, and the copying head."""
from __future__ import annotations

import numpy as np
import torch


def measure_sink_behaviour(model, ids: torch.Tensor, mask: torch.Tensor, lang, variant) -> dict:
    with torch.no_grad():
        out = model(ids, output_attentions=True)
    logits = out.logits[:, :-1]
    nll = torch.nn.functional.cross_entropy(logits[mask], ids[:, 1:][mask], reduction="none")
    trig = torch.as_tensor(lang.is_trigger(ids.numpy()))  # [B, T] query is a trigger
    after_trigger = torch.zeros_like(mask)
    after_trigger[:, :] = trig[:, :-1] & mask  # predictions made at trigger positions: the copies
    sink = variant.designated if variant.designated is not None else 0
    t = ids.shape[1]
    q = torch.arange(t)
    window = variant.sliding_window or t
    # queries strictly after the sink that can still see it
    sees_sink = (q > sink) & (q - sink < window)
    per_layer = []
    for layer, probs in enumerate(out.attentions):  # [B, H, T, T]
        p = probs.float()
        to_sink = p[:, :, :, sink]  # [B, H, T]
        prev = torch.zeros_like(to_sink)
        prev[:, :, 1:] = p.diagonal(offset=-1, dim1=2, dim2=3)  # attention q -> q-1
        nontrig_q = (~trig) & sees_sink[None]
        trig_q = trig & sees_sink[None]
        heads = []
        for h in range(p.shape[1]):
            received = (p[:, h].sum(1) - p[:, h].diagonal(dim1=1, dim2=2)) / (t - 1 - q).clamp_min(1)
            top = received[:, : t - 8].mean(0)  # mean over windows; ignore the last keys (few queries)
            heads.append({
                "sink_attn_nontrigger": float(to_sink[:, h][nontrig_q].mean()),
                "sink_attn_trigger": float(to_sink[:, h][trig_q].mean()) if trig_q.any() else None,
                "copy_score": float(prev[:, h][trig].mean()) if trig.any() else None,
                "top_received_position": int(top.argmax()),
                "top_received": float(top.max()),
            })
        per_layer.append(heads)
    # the copying head: attends from a trigger to the token before it
    cands = [(l, h) for l in range(len(per_layer)) for h in range(len(per_layer[l]))]
    cl, ch = max(cands, key=lambda lh: per_layer[lh[0]][lh[1]]["copy_score"] or 0.0)
    copy = per_layer[cl][ch]
    return {
        "sink_position": sink,
        "heldout_windows": int(ids.shape[0]),
        "heldout_nll": float(nll.mean()),
        "heldout_copy_nll": float(torch.nn.functional.cross_entropy(logits[after_trigger], ids[:, 1:][after_trigger])),
        "copy_head": [cl, ch],
        "copy_head_copy_score": copy["copy_score"],
        "copy_head_sink_attn_nontrigger": copy["sink_attn_nontrigger"],
        "copy_head_sink_attn_trigger": copy["sink_attn_trigger"],
        "max_sink_attn_nontrigger": max(h["sink_attn_nontrigger"] for layer in per_layer for h in layer),
        "max_top_received": max(h["top_received"] for layer in per_layer for h in layer),
        "per_layer_head": per_layer,
    }
