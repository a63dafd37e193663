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

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from .interventions import Edit, run_batched
from .metrics import attention_from
from .tensors import to_numpy

TARGET_KINDS = ("middle", "frequent", "ordinary")
WRITES = ("base", "add", "transplant", "control", "broken")


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


def dark_write(spectrum, layer: int, targets: torch.Tensor, mode: str, control_dirs: torch.Tensor | None = None) -> Edit:
    """H4's write as a pass edit at the output of `layer`: write_dark with position 0's band-K
    component (H4-A's writes; H7's designated sink; the value/key profile of a target)."""
    return Edit(layer, partial(write_dark, targets=targets, dark=spectrum.keep([spectrum.n_bands]), mode=mode,
                               control_dirs=control_dirs))


def run_write(subject, windows, spectrum, layer: int, targets: torch.Tensor, mode: str, batch_size: int,
              seed: int = 0, prefix: torch.Tensor | None = None) -> WriteResult:
    n_layers = subject.n_layers
    control = None
    if mode == "control":
        g = torch.Generator().manual_seed(seed)
        light = spectrum.band_vectors(list(range(1, spectrum.n_bands))).cpu()
        c = torch.randn(len(windows), light.shape[1], generator=g) @ light.T
        control = (c / c.norm(dim=-1, keepdim=True)).to(spectrum.basis)
    # mode 'base' is the identity edit: it still lets the pass start from the saved prefix
    edit = dark_write(spectrum, layer, targets, mode, control)
    res = run_batched(subject, windows, batch_size, edit=edit, prefix=prefix,
                      attn_layers=range(layer + 1, n_layers), attn_readout=partial(target_readout, targets=targets))
    att = to_numpy(torch.stack([res.attention[i] for i in range(layer + 1, n_layers)]).mean(0))  # [N, 2]
    pos = torch.arange(windows.shape[1] - 1)
    after = (pos[None] > targets[:, None]).float()
    nll_after = to_numpy((res.token_nll * after).sum(1) / after.sum(1).clamp_min(1))
    return WriteResult(att[:, 0], att[:, 1], nll_after)
