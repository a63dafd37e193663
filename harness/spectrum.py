"""Logit spectroscopy: the SVD basis of the (norm-folded) unembedding, K bands,
band specs, spectral-filter projectors, dark ratio and band profile (docs/methods.md §2).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from .errors import SinkbenchError


# Bump whenever the code that turns weights into a basis changes, so cached bases are not
# reused. 2: LayerNorm folds its centring (W_U diag(g) C), not the bias read as a gain.
SPECTRUM_VERSION = 2


def folded_unembedding(unembedding: torch.Tensor, norm_gain: torch.Tensor, centred: bool = False) -> torch.Tensor:
    """The linear part of norm-then-unembed, up to the norm's scalar 1/sigma(x):
    W = W_U diag(g) for an RMSNorm (g = 1 + weight for Gemma), and W = W_U diag(g) C,
    C = I - 11^T/d, for a LayerNorm, whose centring makes the all-ones direction
    invisible to the logits (so it lands in the darkest band). The bias only adds the
    constant W_U b to every logit vector and does not enter the basis."""
    w = unembedding.double() * norm_gain.double().to(unembedding.device)[None, :]
    return w - w.mean(1, keepdim=True) if centred else w  # W C: subtract each row's mean


def right_singular_basis(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S): right singular vectors (columns) and singular values of w, decreasing.

    Computed from the d x d Gram matrix in float64: identical subspaces to a full
    SVD of the vocab x d matrix at a fraction of the cost (vocab up to 262k here).
    Each vector's sign is fixed (largest component positive) so the basis is reproducible."""
    w = w.double()
    gram = w.T @ w
    evals, evecs = torch.linalg.eigh(gram)
    order = torch.argsort(evals, descending=True)
    evals, evecs = evals[order].clamp_min(0), evecs[:, order]
    idx = evecs.abs().argmax(0)
    signs = torch.sign(evecs[idx, torch.arange(evecs.shape[1])])
    return evecs * signs[None, :], evals.sqrt()


def band_slices(d: int, n_bands: int) -> list[np.ndarray]:
    """Index arrays of K contiguous near-equal bands, as numpy.array_split does."""
    if not 1 <= n_bands <= d:
        raise SinkbenchError(f"--n-bands {n_bands}: expected 1..{d} (at most the model width d = {d}); "
                             f"pass a smaller --n-bands, e.g. --n-bands {min(20, d)}")
    return np.array_split(np.arange(d), n_bands)


def parse_bands(spec: str, n_bands: int) -> list[int]:
    """'1-5,20' -> [1, 2, 3, 4, 5, 20]; 1-based, sorted, unique. 'K' or 'dark' means band K."""
    out: set[int] = set()
    text = str(spec).strip()
    if not text:
        raise SinkbenchError("--bands: empty band spec; expected e.g. '1-5,20'")
    for part in text.split(","):
        part = part.strip().replace("K", str(n_bands)).replace("dark", str(n_bands))
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
            else:
                lo = hi = int(part)
        except ValueError:
            raise SinkbenchError(f"--bands {spec!r}: cannot read {part!r}; expected numbers and ranges like '1-5,20'") from None
        if lo > hi or lo < 1 or hi > n_bands:
            raise SinkbenchError(f"--bands {spec!r}: {part!r} is outside 1..{n_bands} (K = {n_bands} bands)")
        out.update(range(lo, hi + 1))
    return sorted(out)


@dataclass
class Spectrum:
    """The residual-stream basis of one model: columns of `basis` ordered head -> dark tail."""

    basis: torch.Tensor  # [d, d] float32, orthonormal columns
    singular_values: torch.Tensor  # [d]
    n_bands: int

    def __post_init__(self):
        self.slices = band_slices(self.basis.shape[0], self.n_bands)

    @property
    def d(self) -> int:
        return self.basis.shape[0]

    def band_vectors(self, bands: list[int]) -> torch.Tensor:
        """[d, m] basis vectors of the given 1-based bands."""
        idx = np.concatenate([self.slices[b - 1] for b in bands]) if bands else np.array([], dtype=int)
        return self.basis[:, torch.as_tensor(idx, dtype=torch.long, device=self.basis.device)]

    def band_dim(self, bands: list[int]) -> int:
        return int(sum(len(self.slices[b - 1]) for b in bands))

    # --- projectors (symmetric d x d matrices, applied as h @ P) -------------
    def keep(self, bands: list[int]) -> torch.Tensor:
        v = self.band_vectors(bands)
        return v @ v.T

    def remove(self, bands: list[int]) -> torch.Tensor:
        return torch.eye(self.d, dtype=self.basis.dtype, device=self.basis.device) - self.keep(bands)

    def omega(self, k: int) -> torch.Tensor:
        """Sink-preserving Omega_k: keep bands 1..k and the dark tail K."""
        self._check_k(k, self.n_bands - 1)
        return self.keep(list(range(1, k + 1)) + [self.n_bands])

    def head(self, k: int) -> torch.Tensor:
        """head_k: keep bands 1..k."""
        self._check_k(k, self.n_bands)
        return self.keep(list(range(1, k + 1)))

    def random_removal(self, dim: int, seed: int) -> torch.Tensor:
        """Remove a random orthonormal dim-dimensional subspace (seeded, QR of a Gaussian)."""
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(self.d, dim, generator=g, dtype=torch.float64))
        q = q.to(self.basis)
        return torch.eye(self.d, dtype=self.basis.dtype, device=self.basis.device) - q @ q.T

    def _check_k(self, k: int, hi: int) -> None:
        if not 1 <= k <= hi:
            raise SinkbenchError(f"k = {k}: must be between 1 and {hi} for K = {self.n_bands} bands")

    # --- readouts --------------------------------------------------------------
    def band_profile(self, h: torch.Tensor) -> torch.Tensor:
        """Share of ||h||^2 in each band: [..., K], summing to 1."""
        coeff = (h.to(self.basis) @ self.basis) ** 2
        energy = torch.stack([coeff[..., torch.as_tensor(s, device=coeff.device)].sum(-1) for s in self.slices], -1)
        return energy / energy.sum(-1, keepdim=True).clamp_min(1e-30)

    def dark_ratio(self, h: torch.Tensor) -> torch.Tensor:
        """||P_K h|| / ||(I - P_K) h|| for each vector in h [..., d]."""
        coeff = (h.to(self.basis) @ self.basis) ** 2
        dark = coeff[..., torch.as_tensor(self.slices[-1], device=coeff.device)].sum(-1)
        return (dark / (coeff.sum(-1) - dark).clamp_min(1e-30)).sqrt()


def spectrum_key(subject, n_bands: int, basis: str = "U") -> str:
    """Full sha256 hex of everything that decides a cached basis: the weights, which
    matrix (U or E), the model dtype, K, and this code's SPECTRUM_VERSION."""
    import hashlib
    import json

    fields = {"weights": subject.sha256, "basis": basis, "dtype": str(subject.dtype), "n_bands": int(n_bands),
              "version": SPECTRUM_VERSION}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def spectrum_for(subject, n_bands: int, basis: str = "U") -> Spectrum:
    """The cached spectrum of a subject (file and memo keyed by spectrum_key), on the model's device."""
    from safetensors.torch import load_file, save_file

    from .models import cache_root

    if basis not in ("U", "E"):
        raise SinkbenchError(f"--basis {basis!r}: expected U (unembedding) or E (embedding)")
    band_slices(subject.d_model, n_bands)  # a bad --n-bands fails before the SVD, not after
    memo = subject.meta.setdefault("spectra", {})
    key = spectrum_key(subject, n_bands, basis)
    if key not in memo:
        path = cache_root() / "spectra" / f"{key}.safetensors"
        if path.exists():
            t = load_file(str(path))
            b, s = t["basis"], t["singular_values"]
        else:
            if basis == "U":
                fold = subject.norm_fold
                w = folded_unembedding(subject.unembedding.detach(), fold.gain, fold.centred)
            else:
                w = subject.embedding
                if w.is_meta:  # a remote subject reads its input embedding only when a basis needs it
                    from .remote import materialise_embedding

                    w = materialise_embedding(subject)
                w = w.detach().double()
            b, s = right_singular_basis(w)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")  # concurrent workers never share a temp file
            save_file({"basis": b.contiguous(), "singular_values": s.contiguous()}, str(tmp))
            tmp.replace(path)
        memo[key] = (b, s)
    b, s = memo[key]
    return Spectrum(b.to(device=subject.device, dtype=torch.float32), s.float(), n_bands)


def dark_alignment(subject, n_bands: int) -> dict:
    """How aligned the U-dark and E-dark tails are: the share of E's band K that lies in U's
    band K (1 = same subspace; a random subspace of that size gives about dim/d), and the
    cosines of their principal angles. U folds the final norm's gain in, E does not, so even
    tied models need not give 1."""
    u = spectrum_for(subject, n_bands, "U")
    e = spectrum_for(subject, n_bands, "E")
    bu, be = u.band_vectors([n_bands]).double(), e.band_vectors([n_bands]).double()
    cos = torch.linalg.svdvals(bu.T @ be)
    return {"share_E_dark_in_U_dark": float((cos ** 2).sum() / be.shape[1]), "chance_share": be.shape[1] / u.d,
            "principal_cosines": [round(float(c), 4) for c in cos]}
