"""H5, who writes the sink's dark signal (Cancedda 2024 §4).

Attribution: the residual at the sink (position 0) after layer l is the embedding
plus every attention and MLP branch output up to l; each branch's write is
projected on band K. A component's dark share is ||P_K write|| / ||P_K h|| with h
the residual right after that component (the dark norm present after it).
Causal test: remove one component's band-K write at the sink only (not the whole
component), and, as control, remove a write of the same norm taken from a randomly
chosen other component (its own write at the sink, rescaled)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from sinkbench.measure import progress
from sinkbench.model.metrics import chunked_nll, sink_mass
from sinkbench.model.tensors import to_numpy


@dataclass
class Attribution:
    names: list  # "L3.attn", "L3.mlp", ...
    dark_write: np.ndarray  # [N, C] ||P_K write|| at the sink
    dark_after: np.ndarray  # [N, C] ||P_K h|| right after each component
    write_norm: np.ndarray  # [N, C] ||write|| at the sink
    dark_embed: np.ndarray  # [N] ||P_K embedding|| at the sink
    dark_final: np.ndarray  # [N] ||P_K h|| after the last layer
    sum_error: float  # max | P_K(embedding + sum of writes) - P_K(final residual) |


def attribute(subject, windows: torch.Tensor, spectrum) -> Attribution:
    """One traced pass saving the sink's embedding, every branch write and the final residual
    (checkpointed like every pass: sinkbench.measure.checkpoint)."""
    from sinkbench.measure import checkpoint

    pk = spectrum.keep([spectrum.n_bands])
    return checkpoint.cached("attribution", dict(subject=subject, windows=windows, pk=pk),
                             lambda: _attribute(subject, windows, pk),
                             encode=lambda a: checkpoint.arrays_to_tensors(dataclasses.asdict(a)),
                             decode=lambda d: Attribution(**checkpoint.tensors_to_arrays(d)))


def _attribute(subject, windows: torch.Tensor, pk: torch.Tensor) -> Attribution:
    nn, n = subject.nn, subject.n_layers
    writes = []
    m = subject.branch_scale  # Granite multiplies each branch output before the residual add
    with torch.no_grad(), subject.trace(windows.to(subject.device), logits_to_keep=1):
        embed = subject.layer(nn, 0).input[:, 0].float().save()
        for i in range(n):
            attn, mlp = subject.branches(nn, i)
            # clones: Falcon adds the attention write into the MLP's output in place
            writes.append((subject.branch_tensor(attn.output)[:, 0].float() * m).clone().save())
            writes.append((subject.branch_tensor(mlp.output)[:, 0].float() * m).clone().save())
        final = subject.layer_output(nn, n - 1)[:, 0].float().save()
    progress.tick()
    w = torch.stack(writes, 1)  # [N, C, d]
    cum = embed[:, None] + torch.cumsum(w, 1)  # residual after each component
    dark = lambda x: to_numpy((x @ pk).norm(dim=-1))
    err = float(((embed + w.sum(1)) @ pk - final @ pk).abs().max() / (final @ pk).norm(dim=-1).max().clamp_min(1e-12))
    return Attribution(names=[f"L{i}.{b}" for i in range(n) for b in ("attn", "mlp")], dark_write=dark(w),
                       dark_after=dark(cum), write_norm=to_numpy(w.norm(dim=-1)), dark_embed=dark(embed),
                       dark_final=dark(final), sum_error=err)


def run_removal(subject, windows, spectrum, component: int, mode: str, scale: np.ndarray | None = None,
                batch_size: int = 16, mass_after: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(NLL [N] of the predictions made at positions >= 1, sink mass of layers
    mass_after+1..L-1 [N]) with component's write at the sink edited: mode 'dark' removes its band-K part; mode 'scaled' removes its whole write rescaled
    per window by `scale` (the control of equal norm). mass_after defaults to the component's layer.
    Checkpointed like every pass (sinkbench.measure.checkpoint)."""
    from sinkbench.measure import checkpoint

    pk = spectrum.keep([spectrum.n_bands])
    inputs = dict(subject=subject, windows=windows, pk=pk, component=component, mode=mode, scale=scale,
                  batch_size=batch_size, mass_after=mass_after)
    return checkpoint.cached("removal", inputs,
                             lambda: _run_removal(subject, windows, pk, component, mode, scale, batch_size, mass_after),
                             encode=checkpoint.arrays_to_tensors, decode=checkpoint.tensors_to_arrays,
                             passes=-(-len(windows) // batch_size))


def _run_removal(subject, windows, pk: torch.Tensor, component: int, mode: str, scale: np.ndarray | None,
                 batch_size: int, mass_after: int | None) -> tuple[np.ndarray, np.ndarray]:
    layer, branch = divmod(component, 2)
    mass_after = layer if mass_after is None else mass_after
    nn, n = subject.nn, subject.n_layers
    attn_is_branch = subject.branches(subject.model, layer)[0] is subject.attention(subject.model, layer)
    nll_out, mass_out = [], []
    for start in range(0, len(windows), batch_size):
        ids = windows[start:start + batch_size].to(subject.device)
        masses = []
        with torch.no_grad(), subject.trace(ids, logits_to_keep=1):
            for i in range(n):  # nnsight: touch modules in execution order
                attn_out = None
                if i > mass_after or (i == layer and branch == 0 and attn_is_branch):
                    attn_out = subject.attention(nn, i).output
                if i > mass_after:
                    masses.append(sink_mass(attn_out[1]).save())
                if i == layer:
                    mod = subject.branches(nn, i)[branch]
                    t = subject.branch_tensor(attn_out if branch == 0 and attn_is_branch else mod.output)
                    sink = t[:, 0].float()
                    if mode == "dark":
                        delta = sink @ pk
                    else:
                        delta = sink * torch.as_tensor(scale[start:start + len(ids)], device=sink.device, dtype=sink.dtype)[:, None]
                    t[:, 0] = (sink - delta).to(t.dtype)
            nll = chunked_nll(subject.final_norm(nn).output, subject.unembedding_in(nn), ids, subject.logit_map,
                              reduce=False).save()
        # the prediction made at the edited sink changes directly, not through attention: left out
        nll_out.append(nll[:, 1:].float().mean(1).cpu())
        progress.tick()
        mass_out.append(torch.stack([m.float().cpu() for m in masses], 1).mean(1) if masses else torch.full((len(ids),), float("nan")))
    return torch.cat(nll_out).numpy(), torch.cat(mass_out).numpy()
