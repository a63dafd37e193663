"""Attention computed only as far as a pass's measurements need it.

The eager kernel materialises every [B, H, T, T] probability map; the fused
kernel (torch's scaled_dot_product_attention) does not, and is faster. A pass
says, per layer, what it reads from the attention module's output[1]:

* "probs": the full map (eager; H3/H4 readouts and the load-time check);
* "sink":  only the attention to key 0, as a [B, H, T, 1] map (eager, then
  sliced, so `metrics.sink_mass` reads it unchanged and no full map outlives the
  layer). A fused variant (an extra value channel that is 1 at key 0 makes the
  kernel output p_i0) was measured slower on CPU: 7.0 ms vs 5.2 ms eager per
  SmolLM2 layer at 16 x 128, since head dim 65 leaves the fast path;
* "none":  nothing (fused kernel, output[1] is None).

The model runs under the registered implementation "sinkbench", whose masks
are the eager (additive float) masks, so "probs" is the eager computation
itself (the fused kernel takes the same additive mask). Outside `attention_plan`
every layer gets "probs": code that does not ask for less sees plain eager attention."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Mapping

import torch

IMPLEMENTATION = "sinkbench"
MODES = ("probs", "sink", "none")

_plan: Mapping[int, str] | None = None  # layer index -> mode, for the pass now running


@contextmanager
def attention_plan(plan: Mapping[int, str]) -> Iterator[None]:
    """Within the block, layer i's attention computes plan.get(i, 'none')."""
    global _plan
    bad = {m for m in plan.values() if m not in MODES}
    if bad:
        raise ValueError(f"attention modes must be among {MODES}, got {sorted(bad)}")
    previous, _plan = _plan, dict(plan)
    try:
        yield
    finally:
        _plan = previous


def _mode(module) -> str:
    if _plan is None:
        return "probs"
    return _plan.get(getattr(module, "_sinkbench_layer", -1), "none")


def generic_eager(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Eager attention for a module whose file defines no eager function of its own.
    Key/value heads are repeated to the query heads by the tensors' own shapes, so no
    grouped-query attribute (num_key_value_groups) is assumed of the module."""
    from sinkbench.errors import SinkbenchError

    if kwargs.get("softcap") is not None or kwargs.get("sinks") is not None or kwargs.get("s_aux") is not None:
        raise SinkbenchError(f"{type(module).__name__}: soft-capped or sink-logit attention needs the model's own eager function")
    groups = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
    scores = query @ key.transpose(2, 3) * (query.shape[-1] ** -0.5 if scaling is None else scaling)
    if attention_mask is not None:
        scores = scores + attention_mask[..., : key.shape[-2]]
    probs = scores.softmax(-1, dtype=torch.float32).to(query.dtype)
    return (probs @ value).transpose(1, 2).contiguous(), probs


def sinkbench_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """An AttentionInterface function: eager or fused, as the current plan says."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    mode = _mode(module)
    indices = kwargs.pop("indices", None)
    if indices is not None:  # DeepSeek sparse attention (V3.2, GLM-MoE-DSA): transformers hands implementations
        # other than eager/sdpa the indexer's top-k keys [B, S, k] instead of masking them; mask them as eager does
        attention_mask = index_mask(indices, attention_mask, key.shape[-2], query.dtype)
    # Soft-capped scores or learned sink logits (gpt-oss) have no fused kernel here.
    fusable = kwargs.get("softcap") is None and kwargs.get("s_aux") is None and kwargs.get("sinks") is None
    if mode != "none" or not fusable:
        forward = getattr(module, "_sinkbench_eager", None) or generic_eager
        out, probs = forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
        return out, (probs[..., :1] if mode == "sink" else probs if mode == "probs" else None)
    kwargs.pop("output_attentions", None)
    return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)


def index_mask(indices: torch.Tensor, attention_mask: torch.Tensor | None, n_keys: int, dtype) -> torch.Tensor:
    """The additive mask that keeps, for each query, only the keys a top-k indexer selected
    (the model's eager path does the same with its own boolean mask)."""
    keep = torch.zeros((*indices.shape[:2], n_keys), dtype=torch.bool, device=indices.device)
    keep = keep.scatter(-1, indices.long(), True).unsqueeze(1)  # [B, 1, S, T]
    base = torch.zeros((), dtype=dtype, device=indices.device) if attention_mask is None else attention_mask[..., :n_keys]
    return base.masked_fill(~keep, torch.finfo(dtype).min)


def install(model, modules: list) -> None:
    """Register the implementation (with eager masks) and switch an eager model to it.
    `modules` are the attention modules of decoder layers 0..L-1 (from the accessors, so
    no attribute such as layer_idx or num_key_value_groups is assumed). Each keeps its
    own file's eager function for the "probs" mode (it may differ per architecture, e.g.
    soft-capping, learned sink logits, or GPT-2's and OPT's plain multi-head attention);
    a module whose file has none gets generic_eager."""
    import sys

    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    ALL_ATTENTION_FUNCTIONS.register(IMPLEMENTATION, sinkbench_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(IMPLEMENTATION, eager_mask)
    for i, module in enumerate(modules):
        module._sinkbench_layer = i  # what an attention plan is keyed by
        module._sinkbench_eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
    model.set_attn_implementation(IMPLEMENTATION)
