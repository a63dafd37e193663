"""H1 and H2 over a model's layer (x k) grid: pull the conditions each claim needs
from a FilterSweep and hand the per-sequence arrays to the pure verdict functions."""
from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from .claims import (H1Inputs, H2Inputs, compression_frontier, h1_verdicts, h2_verdicts, h3_raw, h3_verdicts, h4a_raw,
                     h4a_verdicts, h4b_verdicts, h5_verdicts)
from .config import Settings
from .errors import SinkbenchError
from .sweep import FilterSweep, middle_band


def parse_layers(spec: str, n_layers: int, model: str = "model") -> list[int]:
    """--layers: 'all', integer indices '3,10', or depth fractions '0.25,0.5,0.75'
    (a fraction f means layer int(f * L), clamped to 0..L-2). The last layer is excluded:
    the post-filter measurements need at least one layer after the edit."""
    last = n_layers - 2
    if str(spec).strip() == "all":
        return list(range(0, last + 1))
    out = []
    for part in str(spec).split(","):
        part = part.strip()
        try:
            if "." in part:
                f = float(part)
                if not 0.0 <= f <= 1.0:
                    raise ValueError
                layer = min(max(int(f * n_layers), 0), last)
            else:
                layer = int(part)
        except ValueError:
            raise SinkbenchError(f"--layers {spec!r}: cannot read {part!r}; expected 'all', indices like '3,10' or fractions in [0, 1] like '0.25,0.5'") from None
        if not 0 <= layer <= last:
            raise SinkbenchError(
                f"--layers {spec!r}: layer {layer} is out of range for {model} ({n_layers} layers); "
                f"use 0..{last} (the last layer has no later layer to measure)"
            )
        if layer not in out:
            out.append(layer)
    return out


def h1_grid(sweep: FilterSweep, layers: list[int], s: Settings) -> dict:
    base = sweep.base()
    grid = {}
    for layer in layers:
        sweep.prefetch(layer, sweep.filters_for("h1"))
        grid[layer] = H1Inputs(
            base=base.nll,
            dark_all=sweep.get(layer, "dark_all").nll,
            random=sweep.random_mean_nll(layer),
            middle=sweep.get(layer, "middle").nll,
            dark_sink=sweep.get(layer, "dark_sink").nll,
            sink_mass_base=base.post_filter_sink_mass(layer),
            sink_mass_dark_sink=sweep.get(layer, "dark_sink").post_filter_sink_mass(layer),
        )
    results = h1_verdicts(grid, alpha=s.alpha, min_delta=s.h1_min_delta, min_sink_drop=s.h1_min_sink_drop, n_boot=s.bootstrap)
    for layer, (_, metrics) in results.items():
        metrics["sink_mass_dark_all"] = float(sweep.get(layer, "dark_all").post_filter_sink_mass(layer).mean())
        hidden = sweep.base_hidden.get(layer)
        if hidden is not None:  # the dark tail's share at the sink vs ordinary positions (report figure)
            ratio = sweep.spectrum.dark_ratio(hidden.float()).cpu()
            metrics["dark_ratio_sink"] = float(ratio[:, 0].mean())
            metrics["dark_ratio_ordinary"] = float(ratio[:, 1:].mean())
        metrics["middle_band"] = middle_band(s.n_bands)
        metrics["removed_dims"] = sweep.spectrum.band_dim([s.n_bands])
    return results


def h2_grid(sweep: FilterSweep, layers: list[int], ks: list[int], s: Settings, frontier: bool = True) -> dict:
    base = sweep.base()
    sp, K = sweep.spectrum, s.n_bands
    grid = {}
    for layer in layers:
        sweep.prefetch(layer, sweep.filters_for("h2", ks, frontier))
        for k in ks:
            grid[layer, k] = H2Inputs(
                base=base.nll,
                omega=sweep.get(layer, f"omega{k}").nll,
                head=sweep.get(layer, f"head{k + 1}").nll,
                omega_dim=sp.band_dim(list(range(1, k + 1)) + [K]),
                head_dim=sp.band_dim(list(range(1, k + 2))),
            )
    results = h2_verdicts(grid, alpha=s.alpha, n_boot=s.bootstrap)
    if frontier:
        for layer in layers:
            deltas, shares = {}, {}
            for k in range(1, K - 1):
                deltas[k] = float((sweep.get(layer, f"omega{k}").nll - base.nll).mean())
                shares[k] = 1.0 - sp.band_dim(list(range(1, k + 1)) + [K]) / sp.d
            front = compression_frontier(deltas, shares, s.frontier_tolerance)
            front["omega_deltas"] = deltas
            for k in ks:
                results[layer, k][1]["frontier"] = front
    return results


# --------------------------------------------------------------------------- H3
H3_CONDITIONS = ("native", "bos", "nobos")


def scatter_sample(table, n: int = 400) -> dict:
    """A fixed-seed subsample of (bar ratio, dark ratio, sink-like) for the report's H3 scatter."""
    idx = np.random.default_rng(0).permutation(table.bar_ratio.size)[:n]
    return {"bar_ratio": table.bar_ratio.ravel()[idx].round(4).tolist(),
            "dark_ratio": table.dark_ratio.ravel()[idx].round(4).tolist(),
            "sink_like": table.sink_like.ravel()[idx].astype(int).tolist()}


def h3_grid(subject, s: Settings) -> dict:
    """H3 under each BOS condition the tokenizer allows; Holm over conditions x claims."""
    from .data import windows_for
    from .distributed import measure_positions
    from .spectrum import spectrum_for

    sp = spectrum_for(subject, s.n_bands, s.basis)
    raws, extra = {}, {}
    for cond in H3_CONDITIONS:
        bos = {"native": None, "bos": True, "nobos": False}[cond]
        if bos and subject.bos_id is None:
            continue
        windows = windows_for(subject, s.dataset, s.seq_len, s.n_seqs, bos=bos)
        counts = Counter(subject.meta["tokens"][s.dataset])
        table = measure_positions(subject, windows, sp, counts, s.windows_per_pass(subject))
        raws[cond] = h3_raw(table)
        sinks = Counter(table.tokens[table.sink_like].tolist())
        extra[cond] = {
            "uses_bos": bool(subject.bos_id is not None and windows[0, 0] == subject.bos_id),
            "active_layers": table.active_layers,
            "position0_received": float(table.position0_received.mean()),
            "position0_bar_ratio": float(table.position0_bar_ratio.mean()),
            "position0_dark_ratio": float(table.position0_dark_ratio.mean()),
            "mean_dark_ratio_sink_like": float(table.dark_ratio[table.sink_like].mean()) if table.sink_like.any() else None,
            "mean_dark_ratio_ordinary": float(table.dark_ratio[~table.sink_like].mean()),
            "n_sink_like": int(table.sink_like.sum()), "n_positions": int(table.sink_like.size),
            "top_sink_tokens": [[subject.tokenizer.convert_ids_to_tokens(t), c] for t, c in sinks.most_common(10)],
            "scatter_sample": scatter_sample(table),
        }
    out = h3_verdicts(raws, alpha=s.alpha, n_boot=s.bootstrap)
    for (cond, _), (_, m) in out.items():
        m.update(extra[cond])
    return out


# --------------------------------------------------------------------------- H4
def h4a_grid(sweep: FilterSweep, layers: list[int], s: Settings, rho: float) -> dict:
    """H4-A over layers x target kinds; Holm over every p-value of the grid."""
    from .designate import TARGET_KINDS, WRITES, choose_targets, run_write
    from .distributed import frequent_mask

    subj = sweep.subject
    sweep.base()
    freq = frequent_mask(subj.tokenizer, sweep.windows.numpy(), Counter(subj.meta["tokens"][s.dataset]))
    raws, targets_used = {}, {}
    for layer in layers:
        for kind in TARGET_KINDS:
            targets = choose_targets(sweep.windows, kind, freq)
            targets_used[layer, kind] = targets
            writes = {mode: run_write(subj, sweep.windows, sweep.spectrum, layer, targets, mode, s.windows_per_pass(subj),
                                      prefix=sweep.base_hidden.get(layer)) for mode in WRITES}
            raws[layer, kind] = h4a_raw(writes, rho, s.bootstrap)
    out = h4a_verdicts(raws, alpha=s.alpha)
    for (layer, kind, _, _), (_, m) in out.items():
        t = targets_used[layer, kind]
        m["target_positions"] = t.tolist()
        m["target_tokens"] = subj.tokenizer.convert_ids_to_tokens(sweep.windows[torch.arange(len(t)), t].tolist())
    return out


def h4b_grid(sweep: FilterSweep, layers: list[int], s: Settings) -> dict:
    """H4-B on a zoo model trained with a <sink> token at k (its manifest says where)."""
    from .interventions import Edit, run_batched
    from .metrics import attention_from
    from .zoo.language import BigramBackcopy

    subj, w = sweep.subject, sweep.windows
    ev = subj.meta["zoo"]["evaluation"]
    k = ev["designated_sink"]
    is_trig = torch.as_tensor(BigramBackcopy(**ev["language"]).is_trigger(w.numpy()))

    def readout(probs, rows):
        """attention to k and to 0 from non-trigger queries after k, head-averaged: [B, 2]"""
        keep = (~is_trig[rows]) & (torch.arange(probs.shape[-1])[None] > k)
        keys = torch.full((keep.shape[0],), k, dtype=torch.long)
        return torch.stack([attention_from(probs, keys, keep), attention_from(probs, torch.zeros_like(keys), keep)], 1)

    att = run_batched(subj, w, s.windows_per_pass(subj), attn_layers=range(subj.n_layers), attn_readout=readout,
                      hidden_layers=layers)
    dark = sweep.spectrum.remove([s.n_bands])
    grid = {}
    for layer in layers:
        later = torch.stack([att.attention[i] for i in range(layer + 1, subj.n_layers)]).mean(0).numpy()
        dr = sweep.spectrum.dark_ratio(att.hidden[layer]).numpy()  # [N, T]
        ordinary = np.ones(dr.shape[1], bool)
        ordinary[[0, k]] = False
        grid[layer] = {"att_k": later[:, 0], "att_0": later[:, 1], "nll_base": sweep.base().nll,
                       "nll_dark_k": run_batched(subj, w, s.windows_per_pass(subj), edit=Edit.project(layer, dark, k)).nll.numpy(),
                       "nll_dark_0": run_batched(subj, w, s.windows_per_pass(subj), edit=Edit.project(layer, dark, 0)).nll.numpy(),
                       "dark_ratio_k": dr[:, k], "dark_ratio_ordinary": dr[:, ordinary].mean(1)}
    return h4b_verdicts(grid, alpha=s.alpha, n_boot=s.bootstrap)


# --------------------------------------------------------------------------- H5
def h5_grid(sweep: FilterSweep, s: Settings, min_share: float, seed: int) -> dict:
    """Attribute the sink's dark norm, pick the largest writer in the first half of the
    components, remove its dark write at the sink, and an equal-norm write of a random other."""
    from .writer import attribute, run_removal

    subj = sweep.subject
    att = attribute(subj, sweep.windows, sweep.spectrum)
    first_half = range(0, 2 * (subj.n_layers // 2))
    chosen = max(first_half, key=lambda c: att.dark_write[:, c].mean())
    other = int(np.random.default_rng(seed).choice([c for c in range(len(att.names)) if c != chosen]))
    scale = att.dark_write[:, chosen] / np.maximum(att.write_norm[:, other], 1e-12)
    removal = {"dark": run_removal(subj, sweep.windows, sweep.spectrum, chosen, "dark", batch_size=s.windows_per_pass(subj)),
               "control": run_removal(subj, sweep.windows, sweep.spectrum, other, "scaled", scale, s.windows_per_pass(subj),
                                      mass_after=chosen // 2)}
    base = sweep.base()
    out = h5_verdicts(att, chosen, removal, base.nll, base.sink_mass[:, chosen // 2 + 1:].mean(1),
                      alpha=s.alpha, min_share=min_share, n_boot=s.bootstrap)
    out["2"][1]["control_component"] = att.names[other]
    out["1"][1]["embedding_dark_norm"] = float(att.dark_embed.mean())
    return out
