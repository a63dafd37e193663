"""What the hypothesis units' grids share: the layer grid (--layers), the selection windows
(in the gaps between the test windows: what a claim chooses from data), the unit of
replication (--units), Gu et al.'s sink rate, and H4's dark writes (H4-A and H7's designated
sink). Each grid itself lives in its unit (sinkbench.hypotheses.*)."""
from __future__ import annotations

import numpy as np
import torch

from sinkbench.measure.config import Settings
from sinkbench.errors import SinkbenchError
from sinkbench.measure.sweep import FilterSweep
from sinkbench.model.tensors import to_numpy


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
    from sinkbench.measure.data import windows_for

    return windows_for(subject, s.dataset, s.seq_len, s.n_seqs, bos=bos, layout=s.windows, split="select",
                       n_select=s.n_select)


def document_groups(subject, s: Settings) -> np.ndarray | None:
    """With --units document, the document of each test window (None with --units window)."""
    if s.units != "document":
        return None
    from sinkbench.measure.data import window_documents, window_layout

    layout = window_layout(subject, s.dataset, s.seq_len, s.n_seqs, layout=s.windows, n_select=s.n_select)
    return np.asarray(window_documents(subject, s.dataset, layout["test_starts"]))


def as_units(inputs, subject, s: Settings, n_windows: int):
    """The verdict inputs over the unit of replication, and how many units there are: the
    n_windows test windows, or (--units document) per-document means of them."""
    from sinkbench.stats.units import by_group

    groups = document_groups(subject, s)
    if groups is None:
        return inputs, n_windows
    return by_group(inputs, groups), len(set(groups.tolist()))


def scores_and_learned_mass(probs: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
    """A pass readout: Gu's key scores [B, H, T] (metrics.key_scores) and, as one more column,
    each head's learned-sink mass (1 - row sum, mean over queries): [B, H, T + 1]."""
    from sinkbench.model.metrics import key_scores, learned_share

    learned = learned_share(probs).mean(-1, keepdim=True)  # [B, H, 1]
    return torch.cat([key_scores(probs, rows), learned], -1)


def sink_rates(sweep: FilterSweep, s: Settings, epsilon: float = 0.3) -> dict:
    """Sink rate (Gu et al. 2024) of the unedited model on the test windows: Sink_1 (position 0)
    and the largest rate of any other position, over every (window, layer, head). Late keys
    are seen by few queries (the last only by itself), so the largest other rate is also given
    among keys seen by at least MIN_QUERIES queries. Beside them, for a model with learned sink
    logits (GPT-OSS's `sinks`), the attention those absorbed per layer (1 - the row sum over
    real keys, mean over heads, queries and windows), which Gu's rate over keys cannot see;
    None for a model without them."""
    MIN_QUERIES = Settings.h3_min_queries  # H3's default, as H3's detector counts queries
    from sinkbench.measure.interventions import run_batched
    from sinkbench.model.metrics import sink_rate

    subj = sweep.subject
    read = run_batched(subj, sweep.windows, s.windows_per_pass(subj), attn_layers=range(subj.n_layers),
                       attn_readout=scores_and_learned_mass).attention
    scores = {l: v[..., :-1] for l, v in read.items()}
    t = sweep.windows.shape[1]
    out = sink_rate(scores, epsilon)
    out["learned_sink_mass"] = ({"by_layer": [float(read[l][..., -1].mean()) for l in sorted(read)],
                                 "mean": float(torch.stack([read[l][..., -1].mean() for l in read]).mean())}
                                if subj.learned_sinks else None)
    seen = sink_rate({l: v[..., : t - MIN_QUERIES + 1] for l, v in scores.items()}, epsilon)
    out.update(max_other_min_queries=seen["max_other"], max_other_min_queries_position=seen["max_other_position"],
               min_queries=MIN_QUERIES)
    from sinkbench.measure.sink_controls import input_control_rates  # Gu et al.'s random- and repeated-token inputs, same shape

    out["input_controls"] = input_control_rates(subj, sweep.windows, s.dataset, s.windows_per_pass(subj), epsilon)
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
    from sinkbench.measure.designate import target_readout

    return torch.cat([target_readout(probs, rows, targets=t) for t in targets], 1)


def write_result(res, layer: int, n_layers: int, targets: torch.Tensor, cols: slice):
    """designate.run_write's reduction of one pass to a WriteResult, for the readout columns
    `cols` of one target set (the same operations on the same values: identical numbers)."""
    from sinkbench.measure.designate import WriteResult

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

    from sinkbench.measure.designate import dark_write
    from sinkbench.measure.interventions import run_batched

    assert mode in TARGET_FREE_WRITES, mode
    kinds = list(targets)
    # write_dark reads the targets only for add, transplant and control: any set will do here
    edit = dark_write(spectrum, layer, targets[kinds[0]], mode)
    res = run_batched(subject, windows, batch_size, edit=edit, prefix=prefix, attn_layers=range(layer + 1, subject.n_layers),
                      attn_readout=partial(readouts_for_targets, targets=tuple(targets[k] for k in kinds)))
    return {k: write_result(res, layer, subject.n_layers, targets[k], slice(2 * j, 2 * j + 2)) for j, k in enumerate(kinds)}


def h4a_writes(subject, windows, spectrum, layer: int, targets: dict, batch_size: int, prefix=None,
               profile_mode: str | None = None) -> dict:
    """Every write of H4-A at one layer: (kind, mode) -> WriteResult. profile_mode: the write
    whose passes also read the value/key profile of the natural sink and the target."""
    from sinkbench.measure.designate import WRITES, run_write

    out = {}
    for mode in WRITES:
        if mode in TARGET_FREE_WRITES:
            for kind, w in run_shared_write(subject, windows, spectrum, layer, targets, mode, batch_size, prefix).items():
                out[kind, mode] = w
        else:
            for kind, t in targets.items():
                out[kind, mode] = run_write(subject, windows, spectrum, layer, t, mode, batch_size, prefix=prefix,
                                            profile=(0, t) if mode == profile_mode else None)
    return out


# --------------------------------------------------------------------------- H5
