"""Filter sweeps: per-sequence measurements of one model under named spectral
filters at chosen layers, computed lazily and memoised, so that every test case
of a model x layer grid shares one base run and never repeats a pass."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sinkbench.measure.interventions import Edit, run_batched
from sinkbench.measure.spectrum import Spectrum


@dataclass
class Measurement:
    """Per-window results of one condition: NLL [N] of every prediction, NLL [N] of the
    predictions made at positions >= 1 (an edit at the sink changes the prediction made at
    position 0 directly), and sink mass per layer [N, L] (NaN for layers not measured:
    those before the edit, and every layer of a filter outside SINK_MASS_FILTERS)."""

    nll: np.ndarray
    sink_mass: np.ndarray
    nll_rest: np.ndarray | None = None

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
                 layers: list[int] = (), reuse_prefix: bool = True, filters_per_pass: int = 1):
        self.subject, self.windows, self.spectrum = subject, windows, spectrum
        # The base run keeps these layers' outputs so that a filter applied after
        # layer l skips layers 0..l (see run_pass's prefix).
        self.prefix_layers = sorted(set(layers)) if reuse_prefix else []
        self.batch_size = batch_size
        # Filters of one layer stacked into one pass (batch = windows x filters): fewer,
        # larger passes. No gain on a compute-bound CPU; meant for GPUs (see NOTES.md).
        self.filters_per_pass = max(1, int(filters_per_pass))
        self.seeds = [1000 + s for s in range(random_seeds)]
        self._memo: dict[tuple, Measurement] = {}
        self.passes = 0

    @property
    def n_layers(self) -> int:
        return self.subject.n_layers

    def _run(self, edit: Edit | None, first_attn: int, copies: int = 1) -> list[Measurement]:
        self.passes += 1
        prefix = None
        if edit is not None and edit.layer in self.prefix_layers:
            prefix = self.base_hidden[edit.layer]
        res = run_batched(self.subject, self.windows, self.batch_size, edit=edit, prefix=prefix, copies=copies,
                          attn_layers=range(first_attn, self.n_layers),
                          hidden_layers=self.prefix_layers if edit is None else ())
        if edit is None:
            self.base_hidden = res.hidden
        nll, mass = res.nll.view(copies, -1).numpy(), res.sink_mass.unflatten(0, (copies, -1)).numpy()
        rest = res.token_nll[:, 1:].mean(1).view(copies, -1).numpy()
        return [Measurement(nll[c], mass[c], rest[c]) for c in range(copies)]

    def base(self) -> Measurement:
        if ("base",) not in self._memo:
            self._memo["base",] = self._run(None, 0)[0]
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
        if name.startswith("random"):  # random<seed>, or random<seed>x<i>.<j>...: orthogonal to coordinates i, j, ...
            seed, _, avoid = name[6:].partition("x")
            exclude = [int(i) for i in avoid.split(".")] if avoid else []
            return sp.random_removal(sp.band_dim([k_dark]), int(seed), exclude), "all"
        if name.startswith("omega"):
            return sp.omega(int(name[5:])), "all"
        if name.startswith("head"):
            return sp.head(int(name[4:])), "all"
        raise ValueError(f"unknown filter {name!r}")

    def get(self, layer: int, name: str) -> Measurement:
        if (layer, name) not in self._memo:
            self.prefetch(layer, [name])
        return self._memo[layer, name]

    def prefetch(self, layer: int, names: list[str]) -> None:
        """Measure the named filters at `layer` not measured yet, filters_per_pass per pass;
        filters whose sink mass is read share passes only with each other."""
        todo = [n for n in dict.fromkeys(names) if (layer, n) not in self._memo]
        self.base()  # its saved layer outputs are the prefix of every filtered run
        for reads_mass in (True, False):
            kind = [n for n in todo if (n in SINK_MASS_FILTERS) == reads_mass]
            first_attn = layer + 1 if reads_mass else self.n_layers
            for i in range(0, len(kind), self.filters_per_pass):
                group = kind[i:i + self.filters_per_pass]
                edits = [Edit.project(layer, *self.projector(n)) for n in group]
                edit = edits[0] if len(edits) == 1 else Edit.stack(edits)
                for n, m in zip(group, self._run(edit, first_attn, copies=len(edits))):
                    self._memo[layer, n] = m

    def filters_for(self, hypotheses: str = "h1,h2", ks: list[int] = (), frontier: bool = True) -> list[str]:
        """The filter names H1 and/or H2 read at each layer (for prefetch)."""
        names = []
        if "h1" in hypotheses:
            names += ["dark_all", "dark_sink", "middle"] + [f"random{s}" for s in self.seeds]
        if "h2" in hypotheses:
            names += [f"omega{k}" for k in ks] + [f"head{k + 1}" for k in ks]
            if frontier:
                names += [f"omega{k}" for k in range(1, self.spectrum.n_bands - 1)]
        return list(dict.fromkeys(names))

    def fair_random_names(self, coords: list[int]) -> list[str]:
        """H1's random subspaces orthogonal to these coordinates (the plain ones when there are none)."""
        tail = "x" + ".".join(str(int(i)) for i in sorted(set(coords))) if len(coords) else ""
        return [f"random{s}{tail}" for s in self.seeds]

    def random_mean_nll(self, layer: int) -> np.ndarray:
        """Per-sequence NLL averaged over the random-subspace seeds."""
        return np.mean([self.get(layer, f"random{s}").nll for s in self.seeds], axis=0)
