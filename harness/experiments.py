"""H1 and H2 over a model's layer (x k) grid: pull the conditions each claim needs
from a FilterSweep and hand the per-sequence arrays to the pure verdict functions."""
from __future__ import annotations

from .claims import H1Inputs, H2Inputs, compression_frontier, h1_verdicts, h2_verdicts
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
