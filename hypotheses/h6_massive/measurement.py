"""H6, massive activations are dark: detection of massive-activation coordinates on
selection windows, the band-K share of their directions, Sun et al.'s intervention at the
sink on test windows, and the grid that hands the arrays to the verdicts
(sinkbench.hypotheses.h6_massive.verdicts). docs/methods.md §9 states every definition and why.

Massive activation (Sun et al., COLM 2024): a residual-stream coordinate i at layer l whose
|h| exceeds 100 and 1000x the median |h| of that layer's hidden state (one window: every
position and coordinate). Small models rarely reach 100 in absolute terms, so a scale-free
variant drops the absolute floor and asks for `h6_min_ratio` x the median. A coordinate is
massive at a layer when it meets the criterion somewhere in the window on at least
MIN_WINDOW_SHARE of the selection windows (one window's outlier is not a model's feature).
Sun's criterion is used when it finds any coordinate; otherwise the scale-free one; the
record says which. Everything is fp32 (hidden states are cast before any reduction)."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from sinkbench.model.tensors import to_numpy

from sinkbench.measure.massive import (CRITERIA, MIN_WINDOW_SHARE, SUN_ABSOLUTE, SUN_RATIO,  # noqa: F401  (the rule, shared)
                                      flagged, massive_by_layer, reductions, threshold)


# --------------------------------------------------------------------------- detection
@dataclass
class Magnitudes:
    """Per selection window (axis 0, so stability resamples them): the reductions of the
    layer outputs that detection needs, fp32."""

    max_abs: np.ndarray  # [W, L, d] max over positions of |h|
    sink_abs: np.ndarray  # [W, L, d] |h| at position 0
    median: np.ndarray  # [W, L] median |h| over the window's positions and coordinates
    sink_value: np.ndarray  # [W, L, d] signed h at position 0 (Sun's mean value)


@dataclass
class H6Test:
    """Per-test-window arrays [N]: NLL of the predictions made at positions >= 1 and the
    sink mass of the layers after the edit layer."""

    base_nll: np.ndarray
    base_mass: np.ndarray
    mean_nll: np.ndarray  # the sink's massive coordinates set to their selection-window mean
    mean_mass: np.ndarray
    zero_nll: np.ndarray  # ... set to zero
    zero_mass: np.ndarray
    dark_sink_mass: np.ndarray  # band K removed at the sink at the same layer (H1(b)'s edit)
    dark_sink_nll: np.ndarray


def magnitudes(hidden: dict[int, torch.Tensor]) -> Magnitudes:
    """hidden: layer -> [W, T, d] layer outputs (every layer 0..L-1)."""
    per_layer = [reductions(hidden[l]) for l in sorted(hidden)]
    max_abs, sink_abs, median, sink_value = (np.stack([r[k] for r in per_layer], 1) for k in range(4))
    return Magnitudes(max_abs=max_abs, sink_abs=sink_abs, median=median, sink_value=sink_value)


@dataclass
class Detection:
    """What the selection windows say: the criterion used, the massive coordinates per layer
    (anywhere in the window, and at the sink), the union over layers, and the edit layer:
    the first layer (with a later layer to read) where massive coordinates sit at the sink."""

    criterion: str | None
    by_layer: dict = field(default_factory=dict)  # layer -> coordinates, any position
    sink_by_layer: dict = field(default_factory=dict)  # layer -> coordinates, at position 0
    coordinates: list = field(default_factory=list)  # union of by_layer: claim (a)'s set
    edit_layer: int | None = None
    sink_coordinates: list = field(default_factory=list)  # sink_by_layer[edit_layer]: claim (b)'s set

    @property
    def present(self) -> bool:
        return bool(self.coordinates)


def detect(mag: Magnitudes, min_ratio: float, last_edit_layer: int | None = None) -> Detection:
    """Sun's criterion if it finds any coordinate at any layer, else the scale-free one;
    edits are allowed up to last_edit_layer (default L-2: sink mass is read after the edit)."""
    n_layers = mag.max_abs.shape[1]
    last = n_layers - 2 if last_edit_layer is None else last_edit_layer
    for criterion in CRITERIA:
        by_layer = massive_by_layer(flagged(mag.max_abs, mag.median, criterion, min_ratio))
        if by_layer:
            sink = massive_by_layer(flagged(mag.sink_abs, mag.median, criterion, min_ratio))
            edit = min((l for l in sink if l <= last), default=None)
            return Detection(criterion, by_layer, sink, sorted({i for c in by_layer.values() for i in c}), edit,
                             sink.get(edit, []) if edit is not None else [])
    return Detection(None)


def carrier_positions(hidden: torch.Tensor, coords: list[int], thresholds: np.ndarray) -> dict[int, int]:
    """position -> number of selection windows in which some coordinate of coords exceeds its
    window's threshold there (hidden [W, T, d] one layer; thresholds [W])."""
    if not coords:
        return {}
    a = hidden.float()[..., coords].abs().amax(-1)  # [W, T]
    hit = to_numpy(a) > thresholds[:, None]
    counts = hit.sum(0)
    return {int(p): int(c) for p, c in enumerate(counts) if c}


# --------------------------------------------------------------------------- claim (a)
def coordinate_dark_shares(spectrum) -> np.ndarray:
    """[d] share of each standard basis vector e_i's squared norm in band K: the diagonal of
    P_K = B_K B_K^T in the basis the bands are defined in (final norm folded in)."""
    bk = spectrum.band_vectors([spectrum.n_bands]).double()
    return to_numpy((bk ** 2).sum(1))


def set_share(diag: np.ndarray, coords) -> float:
    """Band-K share of the coordinate set's directions: mean of diag over the set (each e_i has
    unit norm, so this is the set's total squared norm in band K over its total)."""
    return float(np.mean(diag[np.asarray(coords, int)])) if len(coords) else float("nan")


def random_set_shares(diag: np.ndarray, size: int, n_sets: int, seed: int) -> np.ndarray:
    """Band-K shares of n_sets coordinate sets of `size` drawn uniformly without replacement."""
    rng = np.random.default_rng(seed)
    d = diag.size
    # argpartition of uniform keys: a uniform size-subset per row, without a Python loop
    idx = np.argpartition(rng.random((n_sets, d)), size - 1, axis=1)[:, :size] if size < d else np.tile(np.arange(d), (n_sets, 1))
    return diag[idx].mean(1)


def rank_pvalue(observed: float, null: np.ndarray) -> float:
    """(1 + #null >= observed) / (1 + R): exact under exchangeability of the observed set with
    the random ones (never below 1 / (1 + R))."""
    if not np.isfinite(observed):
        return 1.0
    return float((1 + np.count_nonzero(null >= observed)) / (1 + null.size))


# --------------------------------------------------------------------------- claim (b)
def carrier_mask(h: torch.Tensor, coords: list[int], criterion: str, min_ratio: float) -> torch.Tensor:
    """[N, T, m] booleans: where each of coords carries a massive activation in its window
    (|h| above the window's threshold at this layer, the criterion detection used), and
    always at position 0 (the sink, which claim (b) is about). Sun et al. edit every token
    that carries the massive activations (on LLaMA2-7B the first delimiter too), not only
    position 0. h: [N, T, d] one layer's outputs."""
    x = h.float()
    median = to_numpy(x.abs().flatten(1).median(1).values)  # as Magnitudes.median, per window
    thr = torch.as_tensor(threshold(median, criterion, min_ratio), dtype=torch.float32)
    mask = x[..., coords].abs() > thr[:, None, None]
    mask[:, 0] = True
    return mask


def carrier_values(hidden: torch.Tensor, coords: list[int], criterion: str, min_ratio: float,
                   sink_mean: np.ndarray) -> tuple[np.ndarray, bool]:
    """Sun's mean values for the carriers beyond position 0: per coordinate, the mean of its
    signed value over the selection windows' positions >= 1 where it is massive; the sink's
    mean where it never is (a delimiter's value need not be the sink's, so they are kept apart).
    Returns ([m] values, whether any carrier beyond position 0 was seen)."""
    mask = carrier_mask(hidden, coords, criterion, min_ratio)[:, 1:]
    v = hidden.float()[:, 1:, coords]
    n = mask.sum((0, 1))
    mean = to_numpy((v * mask).sum((0, 1)) / n.clamp(min=1))
    seen = to_numpy(n) > 0
    return np.where(seen, mean, sink_mean), bool(seen.any())


def set_carriers(h: torch.Tensor, rows: slice, coords: torch.Tensor, mask: torch.Tensor, sink: torch.Tensor,
                 other: torch.Tensor) -> torch.Tensor:
    """h with coords set where mask [N, T, m] (the rows of this batch) holds: to `sink` at
    position 0, to `other` at the carriers beyond it (Edit transform)."""
    out = h.clone()
    c = coords.to(h.device)
    m = mask[rows].to(h.device)
    values = other.to(device=h.device, dtype=h.dtype).expand(h.shape[1], -1).clone()
    values[0] = sink.to(device=h.device, dtype=h.dtype)
    out[..., c] = torch.where(m, values, out[..., c])
    return out


def set_sink(h: torch.Tensor, rows: slice, coords: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """h with coordinates coords at position 0 set to values (Edit transform)."""
    out = h.clone()
    out[:, 0, coords.to(h.device)] = values.to(device=h.device, dtype=h.dtype)
    return out


def sink_edit(layer: int, coords: list[int], values: np.ndarray):
    """An Edit setting the sink's coords after `layer` to values (their mean, or zeros)."""
    from sinkbench.measure.interventions import Edit

    return Edit(layer, partial(set_sink, coords=torch.as_tensor(coords, dtype=torch.long),
                               values=torch.as_tensor(np.asarray(values, np.float32))))


def carrier_edit(layer: int, coords: list[int], mask: torch.Tensor, sink: np.ndarray, other: np.ndarray):
    """An Edit setting coords after `layer` at every carrier (mask [N, T, m] over the test
    windows): the sink to `sink`, the other carriers to `other` (their means, or zeros)."""
    from sinkbench.measure.interventions import Edit

    return Edit(layer, partial(set_carriers, coords=torch.as_tensor(coords, dtype=torch.long), mask=mask.cpu(),
                               sink=torch.as_tensor(np.asarray(sink, np.float32)),
                               other=torch.as_tensor(np.asarray(other, np.float32))))


def edited_positions(mask: torch.Tensor) -> dict:
    """What the record says of the edit: position -> windows edited there, and how many
    windows had a carrier beyond position 0."""
    any_coord = to_numpy(mask.any(-1))  # [N, T]
    counts = any_coord.sum(0)
    return {"edited_positions": {int(p): int(c) for p, c in enumerate(counts) if c},
            "windows_with_carriers_beyond_sink": int(any_coord[:, 1:].any(1).sum()), "test_windows": int(mask.shape[0])}


# --------------------------------------------------------------------------- grid
def detection_record(det: Detection, mag: Magnitudes, hidden: dict, windows: torch.Tensor, diag: np.ndarray,
                     tokenizer, min_ratio: float) -> dict:
    """What the record says of the detection: coordinates per layer, the layers, the positions
    that carry them at the edit layer (or the first layer that has them) and their tokens,
    each coordinate's band-K share and its median |h| at the sink."""
    if not det.present:
        return {"present": False, "criteria_tried": list(CRITERIA), "min_ratio": min_ratio,
                "largest_ratio_to_median": float((mag.max_abs / mag.median[..., None]).max())}
    layer = det.edit_layer if det.edit_layer is not None else min(det.by_layer)
    thr = threshold(mag.median[:, layer], det.criterion, min_ratio)
    positions = carrier_positions(hidden[layer], det.by_layer.get(layer, det.sink_coordinates), thr)
    tok = {}
    for p in positions:
        if p > 0:
            ids = windows[:, p].tolist()
            tok[p] = sorted(set(tokenizer.convert_ids_to_tokens(ids)))[:5]
    sun = massive_by_layer(flagged(mag.max_abs, mag.median, "sun", min_ratio))
    return {"present": True, "criterion": det.criterion, "min_ratio": min_ratio,
            "coordinates_by_layer": {int(l): c for l, c in det.by_layer.items()},
            "sink_coordinates_by_layer": {int(l): c for l, c in det.sink_by_layer.items()},
            "layers": sorted(int(l) for l in det.by_layer), "coordinates": det.coordinates,
            "sun_coordinates": sorted({i for c in sun.values() for i in c}),
            "edit_layer": det.edit_layer, "sink_coordinates": det.sink_coordinates,
            "positions_layer": int(layer), "carrier_positions": positions,
            "carrier_tokens": {int(p): t for p, t in tok.items()},
            "coordinate_dark_share": {int(i): round(float(diag[i]), 6) for i in det.coordinates},
            "sink_abs_median_over_windows": {int(i): round(float(np.median(mag.sink_abs[:, layer, i])), 4)
                                             for i in det.coordinates},
            "layer_median_abs": round(float(np.median(mag.median[:, layer])), 6)}


def sink_profile(mag: Magnitudes, layer: int, diag: np.ndarray) -> dict:
    """The report's figure: the sink's mean |h| per coordinate at one layer and each
    coordinate's band-K share."""
    return {"layer": int(layer), "sink_abs": np.round(mag.sink_abs[:, layer].mean(0), 4).tolist(),
            "dark_share": np.round(diag, 5).tolist()}


def sink_value_spread(mag: Magnitudes, det: Detection) -> float:
    """How much the sink's massive coordinates vary over selection windows: the sd of their
    values over the windows, relative to their mean |value|. About 0 when position 0 always
    holds the same token (BOS): it attends only to itself, so its state is the same in every
    window and setting it to its mean changes nothing (b-mean is then vacuous)."""
    v = mag.sink_value[:, det.edit_layer, det.sink_coordinates]  # [W, m]
    return float(v.std(0).mean() / max(float(np.abs(v.mean(0)).mean()), 1e-30))


def intervention_inputs(sweep, det: Detection, mag: Magnitudes, batch: int, select_layer_hidden: torch.Tensor,
                        min_ratio: float) -> tuple["H6Test", dict]:
    """Claim (b)'s per-test-window arrays: NLL of the predictions made at positions >= 1 and
    post-edit sink mass, for the base run, the massive coordinates set to their mean (over
    selection windows) and zeroed at the edit layer at every position that carries them
    (Sun's protocol: the sink and any other carrier, found per test window), and band K
    removed at the sink. select_layer_hidden: the selection windows' outputs of the edit layer
    (for the carriers' mean values). Returns the arrays and the record of the edit."""
    from sinkbench.measure.interventions import run_batched

    layer, coords = det.edit_layer, det.sink_coordinates
    mean = mag.sink_value[:, layer, coords].mean(0)
    other, seen = carrier_values(select_layer_hidden, coords, det.criterion, min_ratio, mean)
    base = sweep.base()
    test_hidden = getattr(sweep, "base_hidden", {}).get(layer)
    if test_hidden is None:  # the sweep kept no prefix at this layer: one pass for it
        test_hidden = run_batched(sweep.subject, sweep.windows, batch, hidden_layers=[layer]).hidden[layer]
    mask = carrier_mask(test_hidden, coords, det.criterion, min_ratio)

    def run(sink_values, other_values):
        r = run_batched(sweep.subject, sweep.windows, batch, edit=carrier_edit(layer, coords, mask, sink_values, other_values),
                        prefix=sweep.base_hidden.get(layer), attn_layers=range(layer + 1, sweep.n_layers))
        return to_numpy(r.token_nll[:, 1:].mean(1)), to_numpy(r.sink_mass[:, layer + 1:].mean(1))

    mean_nll, mean_mass = run(mean, other)
    zero_nll, zero_mass = run(np.zeros_like(mean), np.zeros_like(mean))
    dark = sweep.get(layer, "dark_sink")
    record = edited_positions(mask)
    record["carrier_values_from"] = ("the selection windows' carriers beyond position 0" if seen else
                                     "the sink's mean (no carrier beyond position 0 in the selection windows)")
    return H6Test(base_nll=base.nll_rest, base_mass=base.post_filter_sink_mass(layer), mean_nll=mean_nll,
                  mean_mass=mean_mass, zero_nll=zero_nll, zero_mass=zero_mass,
                  dark_sink_mass=dark.post_filter_sink_mass(layer), dark_sink_nll=dark.nll_rest), record
