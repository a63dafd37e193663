"""H4, designating a sink by hand.

A. By intervention: at layer l, take the dark-tail (band K) component v of the
primary sink's residual (position 0) and write it into a target position t:
  add        h_t += v
  transplant h_t += v, h_0 -= v   (the sink is broken and its dark signal moved)
  control    h_t += u, u a random direction in the non-dark bands with ||u|| = ||v||
  broken     h_0 -= v             (the dark tail removed at the sink only)
Measured per window, in layers l+1..L-1: mean attention (over heads and queries
i > t) to t and to 0, and the NLL of the predictions made after t.

B. By training (zoo model with a designated <sink> token at k): attention to k vs 0
from non-trigger queries after k, NLL with the dark tail removed at k vs at 0,
and the dark ratio at k vs ordinary positions."""
from __future__ import annotations

from contextlib import nullcontext
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from sinkbench.measure.interventions import Edit, run_batched
from sinkbench.model.metrics import attention_from
from sinkbench.model.tensors import to_numpy

TARGET_KINDS = ("middle", "frequent", "ordinary")
WRITES = ("base", "add", "transplant", "control", "broken")
# writes whose claims read attention only (A1, A2): their passes skip the NLL step, nll_after is NaN
ATTENTION_ONLY = ("add", "control")


def choose_targets(windows: torch.Tensor, kind: str, frequent_mask: np.ndarray) -> torch.Tensor:
    """Per-window target position [N]: the middle of the window, or the position nearest the
    middle whose token is frequent (top 1% or punctuation/whitespace), or is not."""
    n, t = windows.shape
    mid = t // 2
    if kind == "middle":
        return torch.full((n,), mid, dtype=torch.long)
    want = frequent_mask if kind == "frequent" else ~frequent_mask
    order = np.argsort(np.abs(np.arange(t) - mid), kind="stable")
    order = order[(order >= 2) & (order <= t - 9)]  # leave queries after t to measure
    out = []
    for row in want:
        hits = order[row[order]]
        out.append(int(hits[0]) if hits.size else mid)
    return torch.tensor(out, dtype=torch.long)


def write_dark(h: torch.Tensor, rows: slice, *, targets: torch.Tensor, dark: torch.Tensor, mode: str,
               control_dirs: torch.Tensor | None = None) -> torch.Tensor:
    """The edit of H4-A on a batch of layer outputs (see the module docstring)."""
    t = targets[rows].to(h.device)
    b = torch.arange(h.shape[0], device=h.device)
    v = (h[:, 0].float() @ dark).to(h.dtype)  # band-K component of position 0, [B, d]
    out = h.clone()
    if mode in ("add", "transplant"):
        out[b, t] += v
    if mode == "control":
        u = control_dirs[rows].to(h.device)
        out[b, t] += (u * v.float().norm(dim=-1, keepdim=True)).to(h.dtype)
    if mode in ("transplant", "broken"):
        out[:, 0] -= v
    return out


def target_readout(probs: torch.Tensor, rows: slice, *, targets: torch.Tensor) -> torch.Tensor:
    """[B, H, T, T] -> [B, 2]: mean attention (heads, queries i > t) to t and to 0."""
    t = targets[rows].to(probs.device)
    after = torch.arange(probs.shape[-1], device=probs.device)[None] > t[:, None]
    return torch.stack([attention_from(probs, t, after), attention_from(probs, torch.zeros_like(t), after)], 1)


@dataclass
class WriteResult:
    att_t: np.ndarray  # [N] mean over layers l+1.. of attention to t from queries after t
    att_0: np.ndarray  # [N] same, to position 0
    nll_after: np.ndarray  # [N] NLL of predictions made at positions > t
    dark_norm: np.ndarray | None = None
    profile: dict | None = None  # layer -> [N, cols]: the value/key profile read in the same pass (profile=...)


def dark_write(spectrum, layer: int, targets: torch.Tensor, mode: str, control_dirs: torch.Tensor | None = None) -> Edit:
    """H4's write as a pass edit at the output of `layer`: write_dark with position 0's band-K
    component (H4-A's writes; H7's designated sink; the value/key profile of a target)."""
    return Edit(layer, partial(write_dark, targets=targets, dark=spectrum.keep([spectrum.n_bands]), mode=mode,
                               control_dirs=control_dirs))


def run_write(subject, windows, spectrum, layer: int, targets: torch.Tensor, mode: str, batch_size: int,
              seed: int = 0, prefix: torch.Tensor | None = None, profile: tuple | None = None) -> WriteResult:
    """One write, read out at layers l+1..L-1. profile: positions (ints or [N] tensors) whose
    value/key profile (sinkbench.measure.sink_profile, from query 1) is read in the same pass."""
    from sinkbench.measure.sink_profile import alongside

    n_layers = subject.n_layers
    control = None
    if mode == "control":
        g = torch.Generator().manual_seed(seed)
        light = spectrum.band_vectors(list(range(1, spectrum.n_bands))).cpu()
        c = torch.randn(len(windows), light.shape[1], generator=g) @ light.T
        control = (c / c.norm(dim=-1, keepdim=True)).to(spectrum.basis)
    # mode 'base' is the identity edit: it still lets the pass start from the saved prefix
    edit = dark_write(spectrum, layer, targets, mode, control)
    own = partial(target_readout, targets=targets)
    with (alongside(subject, own, profile, 1) if profile is not None else nullcontext((own, None))) as (readout, both):
        res = run_batched(subject, windows, batch_size, edit=edit, prefix=prefix, nll=mode not in ATTENTION_ONLY,
                          attn_layers=range(layer + 1, n_layers), attn_readout=readout)
    after_layers = range(layer + 1, n_layers)
    att = to_numpy(torch.stack([res.attention[i][:, :2] for i in after_layers]).mean(0))  # [N, 2]
    read = {i: res.attention[i][:, 2:].float().cpu() for i in after_layers} if both else None
    pos = torch.arange(windows.shape[1] - 1)
    after = (pos[None] > targets[:, None]).float()
    nll_after = to_numpy((res.token_nll * after).sum(1) / after.sum(1).clamp_min(1))
    return WriteResult(att[:, 0], att[:, 1], nll_after, profile=read)


# --------------------------------------------------------------------------- H7's designation ladder
# Edits that make a chosen position (H7's designated position, 1 by default) more and more like
# the natural sink (position 0), weakest first; docs/methods.md §11. Each acts on what layers
# l+1..L-1 see, l the rung's layer:
#   1 dark_write:    position 0's band-K component added to the position's residual at layer l's
#                    output (H4-A's "add"; dark_write above);
#   2 dark_kept:     the position's band-K component set to position 0's at the output of every
#                    layer from l on (l..L-2: the output of L-1 feeds only the final norm);
#   3 value_drain:   rung 2, and at every layer after l the position's value vectors scaled, per
#                    key-value head, to position 0's value norm;
#   4 kv_transplant: at every layer after l the position's key and value replaced by position 0's
#                    (the key re-rotated to the position), as a streaming cache could hold them;
#                    its residual is left as it is;
#   5 state_copy:    position 0's whole residual state copied into the position at layer l's output.
RUNGS = ("dark_write", "dark_kept", "value_drain", "kv_transplant", "state_copy")
LEARNED = "learned_sink"  # rung 6 (below): a learned input embedding, run where h7's setting says


def set_dark(h: torch.Tensor, rows: slice, *, dark: torch.Tensor, position: int) -> torch.Tensor:
    """h with `position`'s band-K component replaced by position 0's (dark: the band-K projector)."""
    out = h.clone()
    hf = h.float()
    out[:, position] = (hf[:, position] - hf[:, position] @ dark + hf[:, 0] @ dark).to(h.dtype)
    return out


def copy_state(h: torch.Tensor, rows: slice, *, position: int) -> torch.Tensor:
    """h with position 0's whole residual copied into `position`."""
    out = h.clone()
    out[:, position] = h[:, 0]
    return out


def marked(h: torch.Tensor, rows: slice, **what) -> torch.Tensor:
    """The identity edit, named: a pass whose work is done by hooks (ladder_hooks) carries what
    they do in its edit's arguments, so a checkpointed pass is never read back for another."""
    return h


def rung_edit(spectrum, rung: str, layer: int, position: int, n_windows: int) -> Edit:
    """The layer-l part of a rung as a pass edit (rung 4's is `marked`: its work is all hooks)."""
    if rung not in RUNGS:
        raise ValueError(f"rung must be one of {RUNGS}, got {rung!r}")
    if rung == "dark_write":
        return dark_write(spectrum, layer, torch.full((n_windows,), position, dtype=torch.long), "add")
    if rung in ("dark_kept", "value_drain"):
        return Edit(layer, partial(_set_dark_rung, dark=spectrum.keep([spectrum.n_bands]), position=position, rung=rung))
    if rung == "state_copy":
        return Edit(layer, partial(copy_state, position=position))
    return Edit(layer, partial(marked, rung=rung, layer=layer, position=position))


def _set_dark_rung(h, rows, *, dark, position, rung):
    return set_dark(h, rows, dark=dark, position=position)


def rerotate(module, key0: torch.Tensor, cos_sin, position: int) -> tuple[torch.Tensor, bool]:
    """Position 0's post-rotary key [B, H, 1, hd] as it would be at `position`: rotary at
    position 0 is the identity, so the key is rotated once by the module file's own
    apply_rotary_pos_emb with the layer's (cos, sin) at `position`. (key, True), or (key0,
    False) where the layer has no rotary embedding (learned absolute positions)."""
    import sys

    apply = getattr(sys.modules[type(module).__module__], "apply_rotary_pos_emb", None)
    if cos_sin is None or apply is None:
        return key0, False
    cos, sin = cos_sin
    c, s = cos[:, position:position + 1], sin[:, position:position + 1]
    return apply(key0, key0, c, s)[1].to(key0.dtype), True


# rung 6, learned_sink: one input embedding at the position, trained with the model frozen on the
# selection windows under the evicting (control) mask: StreamingLLM's learnable sink without
# retraining. It acts at the input (layer -1 in the ladder's keys).
LEARNED_LAYER = -1
LEARN_STEPS = 150  # Adam steps on the selection windows (documented default; docs/methods.md §11)
LEARN_LR = 0.1  # Adam's step, in units of the input embeddings' root-mean-square coordinate


def learn_sink_embedding(subject, windows: torch.Tensor, mask, read_from: int, position: int,
                         steps: int = LEARN_STEPS, lr: float = LEARN_LR, seed: int = 0) -> dict:
    """The input embedding at `position` (every window) that minimises the mean NLL of the
    predictions made at positions >= read_from under `mask` (an additive mask, or a dict by
    layer type), the model frozen. Starts from the mean input embedding of the windows' tokens
    at positions >= 1 (an ordinary token, not the sink's). Returns {"vector": [d] float32 on the
    model's device, "loss": [first, last], "steps", "seconds"}."""
    import time

    start = time.time()
    emb = subject.model.get_input_embeddings()
    ids = windows.to(subject.device)
    with torch.no_grad():
        base = emb(ids).float()
    scale = float(base[:, 1:].pow(2).mean().sqrt())
    torch.manual_seed(seed)
    v = base[:, 1:].mean((0, 1)).clone().requires_grad_(True)
    opt = torch.optim.Adam([v], lr=lr * scale)
    t = ids.shape[1]
    losses = []
    with torch.enable_grad():
        for _ in range(steps):
            x = torch.cat([base[:, :position], v.expand(len(ids), 1, -1), base[:, position + 1:]], 1)
            logits = subject.model(inputs_embeds=x.to(subject.model.dtype), attention_mask=mask,
                                   logits_to_keep=t - read_from).logits.float()
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, read_from + 1:].flatten())
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    return {"vector": v.detach(), "loss": [losses[0], losses[-1]] if losses else [], "steps": steps,
            "seconds": time.time() - start}


@contextmanager
def ladder_hooks(subject, rung: str, layer: int, position: int, dark: torch.Tensor | None = None,
                 masks: dict | None = None, embedding: torch.Tensor | None = None):
    """Within the block, the parts of a rung that act after layer l (rung_edit does layer l's):
    rungs 2-3 set the position's band K at the outputs of layers l+1..L-2 (forward hooks);
    rung 3 scales its values and rung 4 replaces its key and value at layers l+1..L-1 (around the
    attention function the layer calls, so the sink profile read inside reads the edited ones).
    masks: {layer: attention mask} replacing the pass's mask at those layers (H7's upper bound,
    the first token visible only after l). Enter it inside sink_profile.capturing."""
    n = subject.n_layers
    handles, saved, cos_sin = [], {}, {}
    modules = {i: subject.attention(subject.model, i) for i in range(n)}
    if rung == "learned_sink":
        def put(module, args, out):
            out = out.clone()
            out[:, position] = embedding.to(out.dtype)
            return out
        handles.append(subject.model.get_input_embeddings().register_forward_hook(put))
    if rung in ("dark_kept", "value_drain"):
        def keep_dark(module, args, out):
            h = out[0] if isinstance(out, tuple) else out
            h = set_dark(h, slice(None), dark=dark.to(h.device), position=position)
            return (h, *out[1:]) if isinstance(out, tuple) else h
        handles += [subject.layer(subject.model, i).register_forward_hook(keep_dark) for i in range(layer + 1, n - 1)]
    edit_layers = range(layer + 1, n) if rung in ("value_drain", "kv_transplant") else ()
    if rung == "kv_transplant":
        def grab(i):
            def hook(module, args, kwargs):
                cos_sin[i] = kwargs.get("position_embeddings")
            return hook
        handles += [modules[i].register_forward_pre_hook(grab(i), with_kwargs=True) for i in edit_layers]
    rotated = []

    def wrap(i, forward):
        def eager(module, query, key, value, attention_mask, **kwargs):
            if i in edit_layers:
                key, value = key.clone(), value.clone()
                if rung == "value_drain":
                    v0, vp = value[:, :, 0].float().norm(dim=-1), value[:, :, position].float().norm(dim=-1)
                    value[:, :, position] = (value[:, :, position].float() * (v0 / vp.clamp_min(1e-30))[..., None]
                                             ).to(value.dtype)
                else:
                    k, ok = rerotate(module, key[:, :, :1], cos_sin.get(i), position)
                    rotated.append(ok)
                    key[:, :, position] = k[:, :, 0]
                    value[:, :, position] = value[:, :, 0]
            if masks is not None and i in masks:
                attention_mask = masks[i]
            return forward(module, query, key, value, attention_mask, **kwargs)
        return eager

    from sinkbench.model.attention import generic_eager

    wrapped = set(edit_layers) | set(masks or ())
    for i in wrapped:
        saved[i] = modules[i]._sinkbench_eager
        modules[i]._sinkbench_eager = wrap(i, saved[i] or generic_eager)
    try:
        yield rotated
    finally:
        for i, f in saved.items():
            modules[i]._sinkbench_eager = f
        for h in handles:
            h.remove()
