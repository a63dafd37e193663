"""One forward pass with an optional spectral edit, traced with nnsight.

Attention probabilities are reduced to per-sequence sink mass inside the pass,
layer by layer, and NLL is computed from the final-norm output in vocabulary
chunks (the model itself only forms logits for the last position), so no full
attention map or logits tensor is kept."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .metrics import chunked_nll, sink_mass

POSITIONS = ("all", "sink", "nonsink")


@dataclass(frozen=True)
class Edit:
    """h -> h @ P on the output of decoder layer `layer` at `positions`
    ('all', 'sink' = position 0 only, 'nonsink' = every position but 0)."""

    layer: int
    projector: torch.Tensor
    positions: str = "all"

    def __post_init__(self):
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {self.positions!r}")


def apply_projector(h: torch.Tensor, projector: torch.Tensor, positions: str) -> torch.Tensor:
    """A new tensor: h with the projector applied (in float32) at the chosen positions."""
    projected = (h.float() @ projector.float()).to(h.dtype)
    if positions == "all":
        return projected
    out = h.clone()
    if positions == "sink":
        out[:, :1] = projected[:, :1]
    else:
        out[:, 1:] = projected[:, 1:]
    return out


@dataclass
class PassResult:
    nll: torch.Tensor  # [B]
    sink_mass: torch.Tensor  # [B, L], NaN where not measured
    hidden: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [B, T, d] (after any edit)
    attention: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> reduced readout [B, ...]


def run_pass(
    subject,
    ids: torch.Tensor,
    edit: Edit | None = None,
    attn_layers: list[int] | tuple = (),
    hidden_layers: list[int] | tuple = (),
    attn_readout=None,
    prefix: torch.Tensor | None = None,
) -> PassResult:
    """Run one traced forward pass on a batch of windows.

    attn_layers: layers whose attention probabilities are reduced to sink mass
    (and, if attn_readout is given, to attn_readout(probs) as well).
    hidden_layers: layers whose (possibly edited) output is returned.
    prefix: the unedited output of layer edit.layer for these windows, saved from
    an earlier pass. Layers 0..edit.layer are then skipped (nnsight's skip) and the
    edited prefix is fed in: the same numbers as a full pass, without recomputing
    the layers the edit cannot affect."""
    nn = subject.nn
    ids = ids.to(subject.device)
    n = subject.n_layers
    attn_set, hidden_set = set(attn_layers), set(hidden_layers)
    saved_mass, saved_hidden, saved_readout = {}, {}, {}
    unembedding, softcap = subject.unembedding, subject.logit_softcap
    with torch.no_grad(), nn.trace(ids, logits_to_keep=1):
        # nnsight requires touching modules in execution order.
        if prefix is not None:
            edited = apply_projector(prefix.to(subject.device), edit.projector, edit.positions)
            for i in range(edit.layer + 1):
                subject.layer(nn, i).skip(edited)
        for i in range(n):
            if prefix is not None and i <= edit.layer:
                continue
            if i in attn_set:
                probs = subject.attention(nn, i).output[1]
                saved_mass[i] = sink_mass(probs).save()
                if attn_readout is not None:
                    saved_readout[i] = attn_readout(probs).save()
            if edit is not None and i == edit.layer:
                layer = subject.layer(nn, i)
                layer.output = apply_projector(layer.output, edit.projector, edit.positions)
            if i in hidden_set:
                saved_hidden[i] = subject.layer(nn, i).output.detach().clone().save()
        final = subject.final_norm(nn).output
        nll = chunked_nll(final, unembedding, ids, softcap).save()
    mass = torch.full((ids.shape[0], n), float("nan"))
    for i, m in saved_mass.items():
        mass[:, i] = m.float().cpu()
    return PassResult(nll=nll.float().cpu(), sink_mass=mass, hidden=saved_hidden, attention=saved_readout)


def run_batched(subject, windows: torch.Tensor, batch_size: int, prefix: torch.Tensor | None = None, **kwargs) -> PassResult:
    """run_pass over windows in batches, concatenated along the sequence axis."""
    parts = [run_pass(subject, windows[i:i + batch_size], prefix=None if prefix is None else prefix[i:i + batch_size], **kwargs)
             for i in range(0, len(windows), batch_size)]
    return PassResult(
        nll=torch.cat([p.nll for p in parts]),
        sink_mass=torch.cat([p.sink_mass for p in parts]),
        hidden={k: torch.cat([p.hidden[k] for p in parts]) for k in parts[0].hidden},
        attention={k: torch.cat([p.attention[k] for p in parts]) for k in parts[0].attention},
    )
