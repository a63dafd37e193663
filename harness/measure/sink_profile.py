"""The sink's value/key profile (docs/methods.md §11): what a sink position looks like to
attention, beyond the attention it receives. Per layer i and position p, per window:

  value_ratio     ||v_p|| / median_j ||v_j||  (value vectors of layer i, mean over kv heads;
                  "value drain", Gu et al. 2025, Guo et al. 2024: a sink's value is small)
  query_key_cos   mean over heads and the later queries q >= from_query (q > p) of
                  cos(query_q, key_p), post-rotary, the vectors the scores are made of
  residual_ratio  ||h_p|| / median_j ||h_j||  (the residual entering decoder layer i)
  attention       mean attention (heads, the same queries) to p

j runs over the positions other than the profiled ones. Beside them, per layer: the mean
cosine between those queries and every other key before them (`query_key_cos_reference`,
the baseline the sink's cosine is read against) and the mass the learned sink logits
absorbed (1 - row sum of the softmax over real keys; 0 for a model without learned sinks).
A position may be one per window (H4-A's targets): pass a [N] tensor instead of an int.

How it is read: the layers' eager attention function gets the post-rotary queries, keys and
values. `capturing(subject)` wraps it (the module's `_sinkbench_eager`, sinkbench.model.attention)
and hooks each decoder layer's input, and `profile_readout` (an `attn_readout` of
interventions.run_pass) collects what the wrapper computed for the same layer, so the profile
rides on an ordinary pass (any mask, any edit) and is checkpointed with it. Families whose
attention does not go through transformers' AttentionInterface (Falcon, Bloom) have no
profile (None). fp32 reductions whatever the model's dtype."""
from __future__ import annotations

from contextlib import contextmanager
from functools import partial

import numpy as np
import torch

from sinkbench.model.metrics import learned_sink_mass

MEASURES = ("value_ratio", "query_key_cos", "residual_ratio", "attention")
_stash: dict = {}  # data_ptr of a layer's attention probabilities -> what the wrapper computed
_residual: dict = {}  # decoder layer index -> norms [B, T] of its input residual


def supported(subject) -> bool:
    return bool(subject.arch is not None and subject.arch.attention_interface and not subject.remote
                and hasattr(subject.attention(subject.model, 0), "_sinkbench_eager"))


def _per_key(query, key, value, probs, residual, from_query: int) -> dict:
    """Per-key reductions of one layer, for any later choice of positions: value and residual
    norms [B, T], and over the queries i >= from_query later than the key (i > j) the sums of
    the query-key cosine and of the attention [B, T], their count [T], and the learned-sink
    mass [B]."""
    b, hq, t, _ = query.shape
    key = key.float().repeat_interleave(hq // key.shape[1], 1)
    q = torch.nn.functional.normalize(query.float(), dim=-1)
    k = torch.nn.functional.normalize(key, dim=-1)
    ar = torch.arange(t, device=query.device)
    later = ((ar[:, None] > ar[None]) & (ar[:, None] >= from_query)).float()  # [query, key]
    cos = (q @ k.transpose(2, 3)).mean(1)  # [B, T, T], mean over heads
    qs = ar >= from_query
    return {"vn": value.float().norm(dim=-1).mean(1),
            "rn": residual if residual is not None else torch.full((b, t), float("nan"), device=query.device),
            "cos": (cos * later).sum(1), "att": (probs.float().mean(1) * later).sum(1), "n": later.sum(0),
            "learned": learned_sink_mass(probs[:, :, qs])}


def _select(r: dict, idx: list) -> torch.Tensor:
    """[B, 4 * len(idx) + 2] from _per_key's arrays: MEASURES at each position (idx: one [B]
    index tensor per profiled position), then the cosine reference (every other key, pairs
    weighted equally) and the learned-sink mass."""
    b, t = r["vn"].shape
    rows = torch.arange(b, device=r["vn"].device)
    others = torch.ones(b, t, dtype=torch.bool, device=r["vn"].device)
    for p in idx:
        others[rows, p] = False
    med = lambda x: torch.stack([x[i][others[i]].median() for i in range(b)])  # noqa: E731
    n = r["n"][None].expand(b, -1)
    out = []
    for p in idx:
        out += [r["vn"][rows, p] / med(r["vn"]), r["cos"][rows, p] / n[rows, p].clamp_min(1),
                r["rn"][rows, p] / med(r["rn"]), r["att"][rows, p] / n[rows, p].clamp_min(1)]
    out.append((r["cos"] * others).sum(1) / (n * others).sum(1).clamp_min(1))
    out.append(r["learned"])
    return torch.stack(out, 1)


def _wrapped(forward, from_query, layer):
    def eager(module, query, key, value, attention_mask, **kwargs):
        out, probs = forward(module, query, key, value, attention_mask, **kwargs)
        _stash[probs.data_ptr()] = _per_key(query, key, value, probs, _residual.get(layer), from_query)
        return out, probs
    return eager


def _residual_hook(layer):
    def hook(module, args, kwargs):
        h = args[0] if args else kwargs["hidden_states"]
        _residual[layer] = h.float().norm(dim=-1)
    return hook


@contextmanager
def capturing(subject, from_query: int):
    """Within the block, every layer whose attention computes its probabilities ('probs' in
    the attention plan) also computes the per-key reductions profile_readout selects from."""
    from sinkbench.model.attention import generic_eager

    modules = [subject.attention(subject.model, i) for i in range(subject.n_layers)]
    saved = [m._sinkbench_eager for m in modules]
    hooks = [subject.layer(subject.model, i).register_forward_pre_hook(_residual_hook(i), with_kwargs=True)
             for i in range(subject.n_layers)]
    for i, m in enumerate(modules):
        m._sinkbench_eager = _wrapped(saved[i] or generic_eager, from_query, i)
    try:
        yield
    finally:
        for m, f in zip(modules, saved):
            m._sinkbench_eager = f
        for h in hooks:
            h.remove()
        _stash.clear()
        _residual.clear()


def profile_readout(probs, rows, *, positions: tuple):
    """attn_readout for run_pass: the profile of `positions` (each an int, or a [N] tensor of
    one position per window, as H4-A's targets) from what the wrapper computed for these
    probabilities."""
    r = _stash.pop(probs.data_ptr())
    b = r["vn"].shape[0]
    idx = [torch.full((b,), p, dtype=torch.long) if isinstance(p, int) else p[rows].long() for p in positions]
    return _select(r, [i.to(r["vn"].device) for i in idx])


@contextmanager
def alongside(subject, readout, positions: tuple, from_query: int):
    """The profile of `positions` riding on a pass that has an attn_readout of its own (H4-A's
    write passes): yields (readout, width) where readout returns [B, width + profile columns],
    the pass's own readout first (as float) then the profile; (readout, None) unchanged for a
    family without a profile. One pass where the profile used to take one more."""
    if not supported(subject):
        yield readout, None
        return
    with capturing(subject, from_query):
        yield partial(_both, first=readout, positions=tuple(positions)), True


def _both(probs, rows, *, first, positions):
    own = first(probs, rows).float()
    return torch.cat([own.reshape(own.shape[0], -1), profile_readout(probs, rows, positions=positions)], 1)


def profiled_pass(subject, windows: torch.Tensor, batch: int, *, positions: tuple, from_query: int,
                  attention_mask=None, edit=None, layers=None):
    """run_batched with the profile of `positions` (ints, or [N] tensors of one position per
    window) at `layers` (default: all): the PassResult and profile {layer: [N, 4 *
    len(positions) + 2]} (None where not supported)."""
    from sinkbench.measure.interventions import run_batched

    layers = list(range(subject.n_layers)) if layers is None else list(layers)
    if not supported(subject):
        return run_batched(subject, windows, batch, attention_mask=attention_mask, edit=edit), None
    with capturing(subject, from_query):
        res = run_batched(subject, windows, batch, attention_mask=attention_mask, edit=edit, attn_layers=layers,
                          attn_readout=partial(profile_readout, positions=tuple(positions)))
    return res, {i: res.attention[i].float().cpu() for i in layers}


def summarize(profile: dict | None, positions: tuple) -> dict | None:
    """Per-window profile -> means over windows, per layer (lists ordered by layer):
    {"layers": [...], "<position>": {measure: [...]}, "query_key_cos_reference": [...],
    "learned_sink_mass": [...]}."""
    if profile is None:
        return None
    layers = sorted(profile)
    m = np.stack([np.nanmean(profile[i].numpy(), 0) for i in layers])  # [L, cols]
    out = {"layers": layers}
    for n, p in enumerate(positions):
        out[str(p)] = {k: m[:, 4 * n + c].tolist() for c, k in enumerate(MEASURES)}
    out["query_key_cos_reference"] = m[:, -2].tolist()
    out["learned_sink_mass"] = m[:, -1].tolist()
    return out


def over_layers(summary: dict | None, position: int, first_layer: int) -> dict | None:
    """Each measure's mean over the summary's layers >= first_layer (H4-A's readout layers
    l+1..L-1 for a write at l), for one position."""
    if summary is None:
        return None
    keep = [n for n, i in enumerate(summary["layers"]) if i >= first_layer]
    mean = lambda v: float(np.mean([v[n] for n in keep])) if keep else float("nan")  # noqa: E731
    out = {k: mean(v) for k, v in summary[str(position)].items()}
    out["query_key_cos_reference"] = mean(summary["query_key_cos_reference"])
    out["learned_sink_mass"] = mean(summary["learned_sink_mass"])
    return out


def sink_profile(subject, windows: torch.Tensor, batch: int, position, *, from_query: int = 1,
                 attention_mask=None, edit=None, first_layer: int = 0) -> dict | None:
    """The profile of one position (an int, or a [N] tensor: H4-A's per-window targets), e.g.
    a designated target under its write (edit=): each measure's mean over windows and over
    layers >= first_layer, and the per-layer lists ("per_layer", the position keyed "0"). For a
    caller outside H7; None for a family without a profile. One extra pass per call."""
    _, prof = profiled_pass(subject, windows, batch, positions=(position,), from_query=from_query,
                            attention_mask=attention_mask, edit=edit, layers=range(first_layer, subject.n_layers))
    summary = summarize(prof, (0,))
    return None if summary is None else {**over_layers(summary, 0, first_layer), "per_layer": summary}
