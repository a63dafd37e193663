"""The H1-H5 grids of one model: pull the conditions each claim needs from a
FilterSweep (test windows) and, where a claim chooses something from data, from
selection windows that never overlap the test windows; hand the per-window arrays
to the pure verdict functions in sinkbench.claims."""
from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from . import stability
from .claims import (H1Inputs, H2bInputs, H2Inputs, H5Inputs, compression_frontier, frontier_k, h1_verdicts,
                     h2_verdicts, h3_raw, h3_verdicts, h4a_raw, h4a_verdicts, h4b_verdicts, h5_verdicts)
from .config import Settings
from .errors import SinkbenchError
from .sweep import FilterSweep, middle_band
from .tensors import to_numpy


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


def selection_windows(subject, s: Settings, bos: bool | None = None) -> torch.Tensor:
    """The --n-select selection windows (in the gaps between the test windows) for choices
    made from data."""
    from .data import windows_for

    return windows_for(subject, s.dataset, s.seq_len, s.n_seqs, bos=bos, layout=s.windows, split="select",
                       n_select=s.n_select)


def document_groups(subject, s: Settings) -> np.ndarray | None:
    """With --units document, the document of each test window (None with --units window)."""
    if s.units != "document":
        return None
    from .data import window_documents, window_layout

    layout = window_layout(subject, s.dataset, s.seq_len, s.n_seqs, layout=s.windows, n_select=s.n_select)
    return np.asarray(window_documents(subject, s.dataset, layout["test_starts"]))


def as_units(inputs, subject, s: Settings, n_windows: int):
    """The verdict inputs over the unit of replication, and how many units there are: the
    n_windows test windows, or (--units document) per-document means of them."""
    from .units import by_group

    groups = document_groups(subject, s)
    if groups is None:
        return inputs, n_windows
    return by_group(inputs, groups), len(set(groups.tolist()))


def h1_grid(sweep: FilterSweep, layers: list[int], s: Settings) -> dict:
    base = sweep.base()
    grid = {}
    for layer in layers:
        sweep.prefetch(layer, sweep.filters_for("h1"))
        dark_all, dark_sink = sweep.get(layer, "dark_all"), sweep.get(layer, "dark_sink")
        grid[layer] = H1Inputs(
            base=base.nll, dark_all=dark_all.nll, random=sweep.random_mean_nll(layer),
            middle=sweep.get(layer, "middle").nll, base_rest=base.nll_rest, dark_all_rest=dark_all.nll_rest,
            dark_sink=dark_sink.nll, dark_sink_rest=dark_sink.nll_rest,
            sink_mass_base=base.post_filter_sink_mass(layer),
            sink_mass_dark_sink=dark_sink.post_filter_sink_mass(layer),
            random_each=np.stack([sweep.get(layer, f"random{q}").nll for q in sweep.seeds]),
        )
    verdicts = lambda g: h1_verdicts(g, alpha=s.alpha, min_delta=s.h1_min_delta, min_sink_drop=s.h1_min_sink_drop,  # noqa: E731
                                     n_boot=s.bootstrap)
    grid, n_units = as_units(grid, sweep.subject, s, len(base.nll))
    results = stability.attach(verdicts(grid), verdicts, grid, n_units, "H1", model=sweep.subject.name)
    for layer, (_, metrics) in results.items():
        metrics["sink_mass_dark_all"] = float(sweep.get(layer, "dark_all").post_filter_sink_mass(layer).mean())
        hidden = sweep.base_hidden.get(layer)
        if hidden is not None:  # the dark tail's share at the sink vs ordinary positions (report figure)
            ratio = to_numpy(sweep.spectrum.dark_ratio(hidden.float()))
            metrics["dark_ratio_sink"] = float(ratio[:, 0].mean())
            metrics["dark_ratio_ordinary"] = float(ratio[:, 1:].mean())
        metrics["middle_band"] = middle_band(s.n_bands)
        metrics["removed_dims"] = sweep.spectrum.band_dim([s.n_bands])
        # per test window, in the order of params.windows.test_starts: for audits that rebuild the windows
        metrics["per_window"] = {"base_nll": np.round(base.nll, 6).tolist(),
                                 "dark_all_nll": np.round(grid[layer].dark_all, 6).tolist(),
                                 "sink_mass_base": np.round(grid[layer].sink_mass_base, 6).tolist()}
    return results


def sink_rates(sweep: FilterSweep, s: Settings, epsilon: float = 0.3) -> dict:
    """Sink rate (Gu et al. 2024) of the unedited model on the test windows: Sink_1 (position 0)
    and the largest rate of any other position, over every (window, layer, head). Late keys
    are seen by few queries (the last only by itself), so the largest other rate is also given
    among keys seen by at least MIN_QUERIES queries."""
    from .distributed import MIN_QUERIES
    from .interventions import run_batched
    from .metrics import key_scores, sink_rate

    subj = sweep.subject
    scores = run_batched(subj, sweep.windows, s.windows_per_pass(subj), attn_layers=range(subj.n_layers),
                         attn_readout=key_scores).attention
    t = sweep.windows.shape[1]
    out = sink_rate(scores, epsilon)
    seen = sink_rate({l: v[..., : t - MIN_QUERIES + 1] for l, v in scores.items()}, epsilon)
    out.update(max_other_min_queries=seen["max_other"], max_other_min_queries_position=seen["max_other_position"],
               min_queries=MIN_QUERIES)
    from .sink_controls import input_control_rates  # Gu et al.'s random- and repeated-token inputs, same shape

    out["input_controls"] = input_control_rates(subj, sweep.windows, s.dataset, s.windows_per_pass(subj), epsilon)
    return out


def omega_deleted_share(sp, k: int) -> float:
    """Share of the residual dimensions Omega_k (bands 1..k + K) deletes."""
    return 1.0 - sp.band_dim(list(range(1, k + 1)) + [sp.n_bands]) / sp.d


def wants_frontier(s: Settings) -> bool:
    """Whether H2 scans the descriptive compression frontier: Omega_1..Omega_{K-2} at every
    layer, two thirds of H2's passes, and no verdict reads them. The plugin sets it from
    `--frontier` (off by default: the hypothesis run scans it only on request); Settings made
    elsewhere (library use, the unit tests) scan it, as before."""
    return bool(s.extra.get("frontier", True))


def h2_filters(sweep: FilterSweep, ks: list[int], s: Settings, frontier: bool | None = None) -> list[str]:
    """The filters H2 reads at a layer: H2a's Omega_k and head_{k+1}, H2b's Omega_k*, and with
    the frontier (default: wants_frontier) Omega_1..Omega_{K-2} (which already hold Omega_k*)."""
    frontier = wants_frontier(s) if frontier is None else frontier
    k_b = frontier_k({k: omega_deleted_share(sweep.spectrum, k) for k in range(1, s.n_bands - 1)}, s.h2_min_frontier)
    return list(dict.fromkeys(sweep.filters_for("h2", ks, frontier) + ([f"omega{k_b}"] if k_b else [])))


def h2_grid(sweep: FilterSweep, layers: list[int], ks: list[int], s: Settings, frontier: bool | None = None) -> dict:
    """H2a per (layer, k), H2b per layer (Omega_k fixed by h2_min_frontier), one Holm family.
    Keys: (layer, k) and (layer, 'b'). The descriptive frontier (metrics 'frontier') is
    measured and recorded only with frontier (default: wants_frontier, `--frontier`)."""
    frontier = wants_frontier(s) if frontier is None else frontier
    base = sweep.base()
    sp, K = sweep.spectrum, s.n_bands
    shares = {k: omega_deleted_share(sp, k) for k in range(1, K - 1)}
    k_b = frontier_k(shares, s.h2_min_frontier)
    grid, grid_b = {}, {}
    for layer in layers:
        sweep.prefetch(layer, h2_filters(sweep, ks, s, frontier))
        for k in ks:
            grid[layer, k] = H2Inputs(
                base=base.nll,
                omega=sweep.get(layer, f"omega{k}").nll,
                head=sweep.get(layer, f"head{k + 1}").nll,
                omega_dim=sp.band_dim(list(range(1, k + 1)) + [K]),
                head_dim=sp.band_dim(list(range(1, k + 2))),
            )
        grid_b[layer] = H2bInputs(base=base.nll, omega=sweep.get(layer, f"omega{k_b}").nll if k_b else base.nll,
                                  k=k_b, deleted_share=shares.get(k_b, 0.0))
    verdicts = lambda g: h2_verdicts(g[0], g[1], alpha=s.alpha, n_boot=s.bootstrap,  # noqa: E731
                                     tolerance=s.frontier_tolerance, min_frontier=s.h2_min_frontier)
    (grid, grid_b), n_units = as_units((grid, grid_b), sweep.subject, s, len(base.nll))
    results = stability.attach(verdicts((grid, grid_b)), verdicts, (grid, grid_b), n_units, "H2",
                               reads_intervals=True, model=sweep.subject.name)  # H2b's verdict reads its interval's upper end
    if frontier:
        for layer in layers:
            deltas = {k: float((sweep.get(layer, f"omega{k}").nll - base.nll).mean()) for k in range(1, K - 1)}
            front = compression_frontier(deltas, shares, s.frontier_tolerance)
            front["omega_deltas"] = deltas
            for k in ks + ["b"]:
                results[layer, k][1]["frontier"] = front
    return results


# --------------------------------------------------------------------------- H3
# BOS conditions, named for what they are: the model's native one is one of them
# (recorded as native), so no data is measured or counted twice.
H3_CONDITIONS = ("bos", "nobos")


def scatter_sample(table, n: int = 400) -> dict:
    """A fixed-seed subsample of (bar ratio, dark ratio, sink-like) for the report's H3 scatter."""
    idx = np.random.default_rng(0).permutation(table.bar_ratio.size)[:n]
    return {"bar_ratio": table.bar_ratio.ravel()[idx].round(4).tolist(),
            "dark_ratio": table.dark_ratio.ravel()[idx].round(4).tolist(),
            "sink_like": table.sink_like.ravel()[idx].astype(int).tolist()}


def h3_conditions(subject) -> list[str]:
    """The BOS conditions this tokenizer allows (bos needs a BOS token)."""
    return [c for c in H3_CONDITIONS if c == "nobos" or subject.bos_id is not None]


def h3_grid(subject, s: Settings) -> dict:
    """H3 under each BOS condition the tokenizer allows; Holm over conditions x claims.
    Active layers and the expected attention at each (query, key) cell are fixed on
    selection windows; the claims are tested on test windows."""
    from .data import text_tokens, windows_for
    from .distributed import SinkRule, calibrate_detector, measure_positions, position_histogram
    from .spectrum import spectrum_for

    sp = spectrum_for(subject, s.n_bands, s.basis)
    counts = Counter(text_tokens(subject, s.dataset))
    batch = s.windows_per_pass(subject)
    rule = SinkRule.from_settings(s)
    raws, extra, tables = {}, {}, {}
    for cond in h3_conditions(subject):
        bos = cond == "bos"
        windows = windows_for(subject, s.dataset, s.seq_len, s.n_seqs, bos=bos, layout=s.windows)
        detector = calibrate_detector(subject, selection_windows(subject, s, bos=bos), batch, rule)
        table = measure_positions(subject, windows, sp, counts, batch, detector)
        raws[cond] = h3_raw(table, position_bins=s.h3_position_bins, permutations=s.h3_permutations)
        tables[cond] = table
        sinks = Counter(table.tokens[table.sink_like].tolist())
        old_rule = rule.flags(table.uniform_ratio, table.cv)  # what a uniform-head baseline would flag
        extra[cond] = {
            "native": bool(subject.uses_bos) == bos,
            "active_layers": detector.active_layers, "active_layers_chosen_on": "selection windows",
            "layer_scores": {int(l): round(v, 4) for l, v in detector.layer_scores.items()},
            "position0_received": float(table.position0_received.mean()),
            "position0_bar_ratio": float(table.position0_bar_ratio.mean()),
            "position0_dark_ratio": float(table.position0_dark_ratio.mean()),
            "position0_sink_like_share": float(table.position0_sink_like.mean()),
            "mean_dark_ratio_sink_like": float(table.dark_ratio[table.sink_like].mean()) if table.sink_like.any() else None,
            "mean_dark_ratio_ordinary": float(table.dark_ratio[~table.sink_like].mean()),
            "n_sink_like": int(table.sink_like.sum()), "n_positions": int(table.sink_like.size),
            "n_sink_like_uniform_baseline": int(old_rule.sum()),
            "sink_like_by_position": position_histogram(table.sink_like, table.seq_len, s.h3_position_bins),
            "top_sink_tokens": [[subject.tokenizer.convert_ids_to_tokens(t), c] for t, c in sinks.most_common(10)],
            "scatter_sample": scatter_sample(table),
        }
    verdicts = lambda tabs: h3_verdicts(  # noqa: E731
        {c: h3_raw(t, position_bins=s.h3_position_bins, permutations=s.h3_permutations) for c, t in tabs.items()},
        alpha=s.alpha, n_boot=s.bootstrap)
    out = stability.attach(h3_verdicts(raws, alpha=s.alpha, n_boot=s.bootstrap), verdicts, tables, s.n_seqs, "H3", model=subject.name)
    for (cond, _), (_, m) in out.items():
        m.update(extra[cond])
    return out


# --------------------------------------------------------------------------- H4
# Writes whose edit does not depend on the target: base (the identity) and broken (the dark
# tail removed at position 0). One pass serves every target kind, read out once per kind, so
# a layer costs 2 + 3 x 3 = 11 passes instead of 15 for three target kinds (same numbers).
TARGET_FREE_WRITES = ("base", "broken")


def h4a_passes(n_layers: int, n_kinds: int, n_writes: int) -> int:
    """Passes (per batch of windows) H4-A runs over n_layers grid layers."""
    shared = len(TARGET_FREE_WRITES)
    return n_layers * (shared + n_kinds * (n_writes - shared))


def readouts_for_targets(probs, rows, *, targets: tuple):
    """target_readout for several target sets side by side: [B, 2 * len(targets)]."""
    from .designate import target_readout

    return torch.cat([target_readout(probs, rows, targets=t) for t in targets], 1)


def write_result(res, layer: int, n_layers: int, targets: torch.Tensor, cols: slice):
    """designate.run_write's reduction of one pass to a WriteResult, for the readout columns
    `cols` of one target set (the same operations on the same values: identical numbers)."""
    from .designate import WriteResult

    att = to_numpy(torch.stack([res.attention[i][:, cols] for i in range(layer + 1, n_layers)]).mean(0))  # [N, 2]
    pos = torch.arange(res.token_nll.shape[1])
    after = (pos[None] > targets[:, None]).float()
    nll_after = to_numpy((res.token_nll * after).sum(1) / after.sum(1).clamp_min(1))
    return WriteResult(att[:, 0], att[:, 1], nll_after)


def run_shared_write(subject, windows, spectrum, layer: int, targets: dict, mode: str, batch_size: int,
                     prefix=None) -> dict:
    """A target-free write (TARGET_FREE_WRITES) in one pass, read out for every target set:
    kind -> WriteResult."""
    from functools import partial

    from .designate import write_dark
    from .interventions import Edit, run_batched

    assert mode in TARGET_FREE_WRITES, mode
    kinds = list(targets)
    dark = spectrum.keep([spectrum.n_bands])
    # write_dark reads the targets only for add, transplant and control: any set will do here
    edit = Edit(layer, partial(write_dark, targets=targets[kinds[0]], dark=dark, mode=mode))
    res = run_batched(subject, windows, batch_size, edit=edit, prefix=prefix, attn_layers=range(layer + 1, subject.n_layers),
                      attn_readout=partial(readouts_for_targets, targets=tuple(targets[k] for k in kinds)))
    return {k: write_result(res, layer, subject.n_layers, targets[k], slice(2 * j, 2 * j + 2)) for j, k in enumerate(kinds)}


def h4a_writes(subject, windows, spectrum, layer: int, targets: dict, batch_size: int, prefix=None) -> dict:
    """Every write of H4-A at one layer: (kind, mode) -> WriteResult."""
    from .designate import WRITES, run_write

    out = {}
    for mode in WRITES:
        if mode in TARGET_FREE_WRITES:
            for kind, w in run_shared_write(subject, windows, spectrum, layer, targets, mode, batch_size, prefix).items():
                out[kind, mode] = w
        else:
            for kind, t in targets.items():
                out[kind, mode] = run_write(subject, windows, spectrum, layer, t, mode, batch_size, prefix=prefix)
    return out


def h4a_grid(sweep: FilterSweep, layers: list[int], s: Settings, rho: float) -> dict:
    """H4-A over layers x target kinds; Holm over every p-value of the grid. Targets are
    chosen from token identities and positions alone (no activations are looked at)."""
    from .data import text_tokens
    from .designate import TARGET_KINDS, WRITES, choose_targets
    from .distributed import frequent_mask

    subj = sweep.subject
    sweep.base()
    freq = frequent_mask(subj.tokenizer, to_numpy(sweep.windows), Counter(text_tokens(subj, s.dataset)))
    targets_used, all_writes = {}, {}
    for layer in layers:
        targets = {kind: choose_targets(sweep.windows, kind, freq) for kind in TARGET_KINDS}
        writes = h4a_writes(subj, sweep.windows, sweep.spectrum, layer, targets, s.windows_per_pass(subj),
                            prefix=sweep.base_hidden.get(layer))
        for kind in TARGET_KINDS:
            targets_used[layer, kind] = targets[kind]
            all_writes[layer, kind] = {mode: writes[kind, mode] for mode in WRITES}
    verdicts = lambda ws: h4a_verdicts({lt: h4a_raw(w, rho, s.bootstrap, s.h4_min_recovered, key=lt)  # noqa: E731
                                        for lt, w in ws.items()}, alpha=s.alpha)
    all_writes, n_units = as_units(all_writes, subj, s, len(sweep.windows))
    out = stability.attach(verdicts(all_writes), verdicts, all_writes, n_units, "H4A", model=subj.name)
    for (layer, kind, _, _), (_, m) in out.items():
        t = targets_used[layer, kind]
        m["target_positions"] = t.tolist()
        m["target_tokens"] = subj.tokenizer.convert_ids_to_tokens(sweep.windows[torch.arange(len(t)), t].tolist())
    return out


def nll_excluding(token_nll: torch.Tensor, positions: list[int]) -> np.ndarray:
    """Per-window mean NLL [N] of the predictions made at positions not in `positions`
    (token_nll [N, T-1]: column t is the prediction made at position t)."""
    keep = torch.ones(token_nll.shape[1], dtype=torch.bool)
    keep[[p for p in positions if 0 <= p < len(keep)]] = False
    return to_numpy(token_nll[:, keep].mean(1))


def h4b_grid(sweep: FilterSweep, layers: list[int], s: Settings) -> dict:
    """H4-B on a zoo model trained with a <sink> token at k (its manifest says where).
    NLLs leave out the predictions made at 0 and k (edited directly) and at k-1 (it predicts
    the <sink> token, which training masked out)."""
    from .interventions import Edit, run_batched
    from .metrics import attention_from
    from .zoo.language import BigramBackcopy

    subj, w = sweep.subject, sweep.windows
    ev = subj.meta["zoo"]["evaluation"]
    k = ev["designated_sink"]
    is_trig = torch.as_tensor(BigramBackcopy(**ev["language"]).is_trigger(to_numpy(w)))
    skip = [0, k - 1, k]

    def readout(probs, rows):
        """attention to k and to 0 from non-trigger queries after k, head-averaged: [B, 2]"""
        keep = (~is_trig[rows].to(probs.device)) & (torch.arange(probs.shape[-1], device=probs.device)[None] > k)
        keys = torch.full((keep.shape[0],), k, dtype=torch.long, device=probs.device)
        return torch.stack([attention_from(probs, keys, keep), attention_from(probs, torch.zeros_like(keys), keep)], 1)

    batch = s.windows_per_pass(subj)
    att = run_batched(subj, w, batch, attn_layers=range(subj.n_layers), attn_readout=readout, hidden_layers=layers)
    base_nll = nll_excluding(att.token_nll, skip)
    dark = sweep.spectrum.remove([s.n_bands])
    grid = {}
    for layer in layers:
        later = to_numpy(torch.stack([att.attention[i] for i in range(layer + 1, subj.n_layers)]).mean(0))
        dr = to_numpy(sweep.spectrum.dark_ratio(att.hidden[layer]))  # [N, T]
        ordinary = np.ones(dr.shape[1], bool)
        ordinary[[0, k]] = False
        dark_k = run_batched(subj, w, batch, edit=Edit.project(layer, dark, k)).token_nll
        dark_0 = run_batched(subj, w, batch, edit=Edit.project(layer, dark, 0)).token_nll
        grid[layer] = {"att_k": later[:, 0], "att_0": later[:, 1], "nll_base": base_nll,
                       "nll_dark_k": nll_excluding(dark_k, skip), "nll_dark_0": nll_excluding(dark_0, skip),
                       "dark_ratio_k": dr[:, k], "dark_ratio_ordinary": dr[:, ordinary].mean(1)}
    verdicts = lambda g: h4b_verdicts(g, alpha=s.alpha, n_boot=s.bootstrap)  # noqa: E731
    grid, n_units = as_units(grid, subj, s, len(w))
    out = stability.attach(verdicts(grid), verdicts, grid, n_units, "H4B", model=subj.name)
    for key, (_, m) in out.items():
        m["nll_positions_left_out"] = skip
    return out


# --------------------------------------------------------------------------- H5
def h5_grid(sweep: FilterSweep, s: Settings, min_share: float, seed: int) -> dict:
    """Choose the largest dark writer at the sink among the first half of the components on
    selection windows; on the test windows, measure its share and remove its band-K write at
    the sink, against h5_controls equal-norm removals of other components of the same layer
    range (at or before the writer's layer, so before every layer whose sink mass is read),
    averaged per window."""
    from .writer import attribute, run_removal

    subj = sweep.subject
    batch = s.windows_per_pass(subj)
    chosen_on = attribute(subj, selection_windows(subj, s), sweep.spectrum)
    first_half = range(0, 2 * (subj.n_layers // 2))
    chosen = max(first_half, key=lambda c: chosen_on.dark_write[:, c].mean())
    layer = chosen // 2
    candidates = [c for c in range(2 * layer + 2) if c != chosen]
    rng = np.random.default_rng(seed)
    controls = sorted(rng.choice(candidates, min(s.h5_controls, len(candidates)), replace=False).tolist())
    att = attribute(subj, sweep.windows, sweep.spectrum)
    dark_nll, dark_mass = run_removal(subj, sweep.windows, sweep.spectrum, chosen, "dark", batch_size=batch)
    ctrl = [run_removal(subj, sweep.windows, sweep.spectrum, c, "scaled",
                        att.dark_write[:, chosen] / np.maximum(att.write_norm[:, c], 1e-12), batch, mass_after=layer)
            for c in controls]
    base = sweep.base()
    x = H5Inputs(share=att.dark_write[:, chosen] / np.maximum(att.dark_after[:, chosen], 1e-12),
                 base_nll=base.nll_rest, base_mass=base.sink_mass[:, layer + 1:].mean(1),
                 removed_nll=dark_nll, removed_mass=dark_mass,
                 control_nll=np.mean([c[0] for c in ctrl], 0), control_mass=np.mean([c[1] for c in ctrl], 0))
    verdicts = lambda v: h5_verdicts(v, alpha=s.alpha, min_share=min_share, min_sink_drop=s.h5_min_sink_drop,  # noqa: E731
                                     min_nll_rise=s.h5_min_nll_rise, n_boot=s.bootstrap)
    x, n_units = as_units(x, subj, s, len(x.share))
    out = stability.attach(verdicts(x), verdicts, x, n_units, "H5", model=subj.name)
    for _, m in out.values():
        m.update(component=att.names[chosen], chosen_on="selection windows",
                 chosen_dark_write_on_selection=float(chosen_on.dark_write[:, chosen].mean()),
                 control_components=[att.names[c] for c in controls])
    out["1"][1].update(dark_write_norm=float(att.dark_write[:, chosen].mean()), dark_norm_final=float(att.dark_final.mean()),
                       attribution_sum_error=att.sum_error, embedding_dark_norm=float(att.dark_embed.mean()),
                       mean_dark_write_per_component=dict(zip(att.names, att.dark_write.mean(0).round(4).tolist())))
    return out
