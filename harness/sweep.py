"""Filter sweeps: per-sequence measurements of one model under named spectral
filters at chosen layers, computed lazily and memoised, so that every test case
of a model x layer grid shares one base run and never repeats a pass."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .interventions import Edit, run_batched
from .spectrum import Spectrum


@dataclass
class Measurement:
    """Per-sequence results of one condition: NLL [N] and sink mass per layer [N, L]
    (NaN for layers not measured: those before the edit, and every layer of a filter
    outside SINK_MASS_FILTERS)."""

    nll: np.ndarray
    sink_mass: np.ndarray

    def post_filter_sink_mass(self, layer: int) -> np.ndarray:
        """Sink mass averaged over layers layer+1 .. L-1 (those that see the edit): [N]."""
        return self.sink_mass[:, layer + 1:].mean(1)


# Filters whose post-filter sink mass a claim reads (H1 (b) and the report); every
# other filter is measured by NLL alone, so its pass runs no attention readout.
SINK_MASS_FILTERS = ("dark_all", "dark_sink", "dark_nonsink")


def middle_band(n_bands: int) -> int:
    """The median band of the middle bands 2..K-1 (lower median): 10 for K = 20."""
    return (n_bands + 1) // 2


def resolve_ks(fractions: str, n_bands: int) -> list[int]:
    """H2's k values from fractions of K ('0.25,0.5,0.75' -> 5,10,15 for K = 20), within 1..K-2
    so that head_{k+1} keeps fewer than all bands."""
    ks = []
    for f in str(fractions).split(","):
        k = min(max(1, round(float(f) * n_bands)), n_bands - 2)
        if k not in ks:
            ks.append(k)
    return ks


class FilterSweep:
    """All filtered runs of one subject on one set of windows."""

    def __init__(self, subject, windows: torch.Tensor, spectrum: Spectrum, batch_size: int, random_seeds: int,
                 layers: list[int] = (), reuse_prefix: bool = True):
        self.subject, self.windows, self.spectrum = subject, windows, spectrum
        # The base run keeps these layers' outputs so that a filter applied after
        # layer l skips layers 0..l (see run_pass's prefix).
        self.prefix_layers = sorted(set(layers)) if reuse_prefix else []
        self.batch_size = batch_size
        self.seeds = [1000 + s for s in range(random_seeds)]
        self._memo: dict[tuple, Measurement] = {}
        self.passes = 0

    @property
    def n_layers(self) -> int:
        return self.subject.n_layers

    def _run(self, edit: Edit | None, first_attn: int) -> Measurement:
        self.passes += 1
        prefix = None
        if edit is not None and edit.layer in self.prefix_layers:
            prefix = self.base_hidden[edit.layer]
        res = run_batched(self.subject, self.windows, self.batch_size, edit=edit, prefix=prefix,
                          attn_layers=range(first_attn, self.n_layers),
                          hidden_layers=self.prefix_layers if edit is None else ())
        if edit is None:
            self.base_hidden = res.hidden
        return Measurement(res.nll.numpy(), res.sink_mass.numpy())

    def base(self) -> Measurement:
        if ("base",) not in self._memo:
            self._memo["base",] = self._run(None, 0)
        return self._memo["base",]

    def projector(self, name: str) -> tuple[torch.Tensor, str]:
        """Named filter -> (projector, positions). Names: dark_all, dark_sink, dark_nonsink,
        random<seed>, middle, omega<k>, head<k>."""
        sp, k_dark = self.spectrum, self.spectrum.n_bands
        if name == "dark_all":
            return sp.remove([k_dark]), "all"
        if name == "dark_sink":
            return sp.remove([k_dark]), "sink"
        if name == "dark_nonsink":
            return sp.remove([k_dark]), "nonsink"
        if name == "middle":
            return sp.remove([middle_band(k_dark)]), "all"
        if name.startswith("random"):
            return sp.random_removal(sp.band_dim([k_dark]), int(name[6:])), "all"
        if name.startswith("omega"):
            return sp.omega(int(name[5:])), "all"
        if name.startswith("head"):
            return sp.head(int(name[4:])), "all"
        raise ValueError(f"unknown filter {name!r}")

    def get(self, layer: int, name: str) -> Measurement:
        key = (layer, name)
        if key not in self._memo:
            projector, positions = self.projector(name)
            self.base()  # its saved layer outputs are the prefix of every filtered run
            first_attn = layer + 1 if name in SINK_MASS_FILTERS else self.n_layers
            self._memo[key] = self._run(Edit.project(layer, projector, positions), first_attn)
        return self._memo[key]

    def random_mean_nll(self, layer: int) -> np.ndarray:
        """Per-sequence NLL averaged over the random-subspace seeds."""
        return np.mean([self.get(layer, f"random{s}").nll for s in self.seeds], axis=0)
