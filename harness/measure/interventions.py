"""One forward pass with an optional spectral edit, traced with nnsight.

Attention probabilities are reduced to per-sequence sink mass inside the pass,
layer by layer, and NLL is computed from the final-norm output in vocabulary
chunks (the model itself only forms logits for the last position), so no full
attention map or logits tensor is kept."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import torch

from sinkbench.measure import progress
from sinkbench.model.attention import attention_plan
from sinkbench.model.metrics import chunked_nll, sink_mass

POSITIONS = ("all", "sink", "nonsink")


@dataclass(frozen=True)
class Edit:
    """Replace the output h [B, T, d] of decoder layer `layer` by transform(h, rows),
    rows being the slice of the windows in this batch (for per-window targets)."""

    layer: int
    transform: Callable[[torch.Tensor, slice], torch.Tensor]

    @classmethod
    def project(cls, layer: int, projector: torch.Tensor, positions: str | int = "all") -> "Edit":
        """h -> h @ P at positions: 'all', 'sink' (position 0), 'nonsink' (all but 0), or an index."""
        if positions not in POSITIONS and not isinstance(positions, int):
            raise ValueError(f"positions must be one of {POSITIONS} or an int, got {positions!r}")
        return cls(layer, partial(_project, projector=projector, positions=positions))

    @classmethod
    def stack(cls, edits: list["Edit"]) -> "Edit":
        """Several edits of one layer in one pass: the batch holds len(edits) copies of
        the windows (copy-major), and copy c gets edits[c] (see run_batched's copies)."""
        if len({e.layer for e in edits}) != 1:
            raise ValueError("Edit.stack: every edit must act on the same layer")
        return cls(edits[0].layer, partial(_stacked, edits=tuple(edits)))


def _stacked(h, rows, edits):
    return torch.cat([e.transform(part, rows) for e, part in zip(edits, h.chunk(len(edits)))])


def _project(h, rows, projector, positions):
    return apply_projector(h, projector, positions)


def apply_projector(h: torch.Tensor, projector: torch.Tensor, positions: str | int) -> torch.Tensor:
    """A new tensor: h with the projector applied (in float32) at the chosen positions."""
    if positions == "all":
        return (h.float() @ projector.float()).to(h.dtype)
    sel = {"sink": slice(0, 1), "nonsink": slice(1, None)}.get(positions, slice(positions, positions + 1) if isinstance(positions, int) else None)
    out = h.clone()
    out[:, sel] = (h[:, sel].float() @ projector.float()).to(h.dtype)
    return out


@dataclass
class PassResult:
    nll: torch.Tensor  # [B]
    token_nll: torch.Tensor  # [B, T-1]: loss of predicting token t+1 at position t
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
    rows: slice = slice(None),
    copies: int = 1,
    attention_mask: torch.Tensor | dict | None = None,
    nll: bool = True,
) -> PassResult:
    """Run one traced forward pass on a batch of windows.

    attn_layers: layers whose attention probabilities are reduced to sink mass
    (and, if attn_readout is given, to attn_readout(probs, rows) as well). Other
    layers run the fused attention kernel (see sinkbench.model.attention).
    hidden_layers: layers whose (possibly edited) output is returned.
    prefix: the unedited output of layer edit.layer for these windows, saved from
    an earlier pass. Layers 0..edit.layer are then skipped (nnsight's skip) and the
    edited prefix is fed in: the same numbers as a full pass, without recomputing
    the layers the edit cannot affect.
    copies: the batch is `copies` repeats of ids (and of prefix), for Edit.stack;
    results are copy-major [copies * B, ...].
    attention_mask: an additive float mask [1, 1, T, T] on the model's device (0 where a query may read a key, the
    dtype's minimum where not), or a dict of them by layer type, that replaces the model's own masks
    (sinkbench.hypotheses.h7_streaming.measurement).
    nll: False for a pass whose NLL nothing reads (H4-A's attention-only writes): the final
    norm and the unembedding, the largest single cost of a pass (62% of a Gemma-3 pass), are
    skipped and token_nll/nll are NaN."""
    nn = subject.nn
    ids = ids.to(subject.device).repeat(copies, 1)
    if prefix is not None:
        prefix = prefix.repeat(copies, 1, 1)
    n = subject.n_layers
    attn_set, hidden_set = set(attn_layers), set(hidden_layers)
    saved_mass, saved_hidden, saved_readout = {}, {}, {}
    post = subject.logit_map  # bias, scale and soft cap of the model's own logits
    plan = dict.fromkeys(attn_set, "probs" if attn_readout is not None else "sink")
    masked = {} if attention_mask is None else {"attention_mask": attention_mask}
    with torch.no_grad(), attention_plan(plan), subject.trace(ids, logits_to_keep=1, **masked):
        unembedding = subject.unembedding_in(nn)  # inside the trace: on NDIF, the server's
        # nnsight requires touching modules in execution order.
        if prefix is not None:
            edited = edit.transform(prefix.to(subject.device), rows)
            for i in range(edit.layer + 1):
                subject.skip_layer(nn, i, edited)
        for i in range(n):
            if prefix is not None and i <= edit.layer:
                continue
            if i in attn_set:
                probs = subject.attention(nn, i).output[1]
                saved_mass[i] = sink_mass(probs).save()
                if attn_readout is not None:
                    saved_readout[i] = attn_readout(probs, rows).save()
            if edit is not None and i == edit.layer:
                subject.set_layer_output(nn, i, edit.transform(subject.layer_output(nn, i), rows))
            if i in hidden_set:
                saved_hidden[i] = subject.layer_output(nn, i).detach().clone().save()
        if nll:
            final = subject.final_norm(nn).output
            token_nll = chunked_nll(final, unembedding, ids, post, reduce=False).save()
    mass = torch.full((ids.shape[0], n), float("nan"))
    for i, m in saved_mass.items():
        mass[:, i] = m.float().cpu()
    token_nll = token_nll.float().cpu() if nll else torch.full((ids.shape[0], ids.shape[1] - 1), float("nan"))
    progress.tick()
    return PassResult(nll=token_nll.mean(1), token_nll=token_nll, sink_mass=mass, hidden=saved_hidden, attention=saved_readout)


def run_batched(subject, windows: torch.Tensor, batch_size: int, prefix: torch.Tensor | None = None, copies: int = 1,
                **kwargs) -> PassResult:
    """run_pass over windows in batches, concatenated along the sequence axis.
    With copies > 1 (Edit.stack) a pass holds batch_size windows times copies, and the
    results stay copy-major: row c * N + i is window i under copy c.
    Every pass of every grid comes through here: while a run is checkpointed
    (sinkbench.measure.checkpoint) its result is saved as soon as it is done, and read back on --resume."""
    from sinkbench.measure import checkpoint

    inputs = dict(subject=subject, windows=windows, batch_size=batch_size, prefix=prefix, copies=copies, **kwargs)
    return checkpoint.cached("pass", inputs, lambda: _run_batched(subject, windows, batch_size, prefix, copies, **kwargs),
                             encode=lambda r: {f: getattr(r, f) for f in PassResult.__dataclass_fields__},
                             decode=lambda d: PassResult(**d), passes=-(-len(windows) // batch_size))


def _run_batched(subject, windows: torch.Tensor, batch_size: int, prefix: torch.Tensor | None, copies: int,
                 **kwargs) -> PassResult:
    from sinkbench.measure import checkpoint

    def part(i: int) -> PassResult:
        sub = dict(ids=windows[i:i + batch_size], prefix=None if prefix is None else prefix[i:i + batch_size],
                   rows=slice(i, i + batch_size), copies=copies, **kwargs)
        if len(windows) <= batch_size:  # one batch: the pass's own checkpoint is the batch's
            return run_pass(subject, **sub)
        # several: each batch is saved as it finishes (a kill loses at most one), dropped once the pass is saved
        return checkpoint.cached("batch", dict(subject=subject, **sub), lambda: run_pass(subject, **sub),
                                 encode=lambda r: {f: getattr(r, f) for f in PassResult.__dataclass_fields__},
                                 decode=lambda d: PassResult(**d))

    parts = [part(i) for i in range(0, len(windows), batch_size)]

    def join(tensors):  # each part is [copies * b, ...]: regroup to [copies * N, ...]
        return torch.cat([t.unflatten(0, (copies, -1)) for t in tensors], 1).flatten(0, 1)

    return PassResult(
        nll=join([p.nll for p in parts]),
        token_nll=join([p.token_nll for p in parts]),
        sink_mass=join([p.sink_mass for p in parts]),
        hidden={k: join([p.hidden[k] for p in parts]) for k in parts[0].hidden},
        attention={k: join([p.attention[k] for p in parts]) for k in parts[0].attention},
    )
