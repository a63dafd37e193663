"""Logit spectroscopy: the SVD basis of the (norm-folded) unembedding, K bands,
band specs, spectral-filter projectors, dark ratio and band profile (docs/methods.md §2).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from sinkbench.errors import SinkbenchError


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

    def random_removal(self, dim: int, seed: int, exclude: tuple[int, ...] | list[int] = ()) -> torch.Tensor:
        """Remove a random orthonormal dim-dimensional subspace (seeded, QR of a Gaussian).
        exclude: coordinates (standard-basis directions) the subspace must be orthogonal to, so
        the removal leaves them and everything they carry untouched (H1's control fair to
        massive activations); their rows of the same Gaussian are zeroed, so with no
        exclusions the subspace is the plain one of this seed."""
        g = torch.Generator().manual_seed(seed)
        gauss = torch.randn(self.d, dim, generator=g, dtype=torch.float64)
        if len(exclude):
            if dim > self.d - len(set(exclude)):
                raise SinkbenchError(f"a random {dim}-dim subspace cannot avoid {len(set(exclude))} of {self.d} "
                                     "coordinates; pass a larger --n-bands (a smaller band K)")
            gauss[torch.as_tensor(sorted(set(exclude)), dtype=torch.long)] = 0.0
        q, _ = torch.linalg.qr(gauss)
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


def _digest(t: torch.Tensor) -> str:
    import hashlib

    t = t.detach().to("cpu", torch.float32).contiguous()
    return hashlib.sha256(t.numpy().tobytes()).hexdigest()


PROJECT_IN_PATHS = ("model.decoder.project_in",)  # OPT: the embedding's width -> d, before layer 0


def project_in_path(subject) -> str | None:
    from sinkbench.model.access import _find_path

    return _find_path(subject.model, PROJECT_IN_PATHS)


def residual_embedding(subject) -> torch.Tensor:
    """[V, d]: each token's embedding as it enters the residual stream, in float64: the input
    embedding, times OPT's project_in where the embedding is narrower than d."""
    w = subject.embedding
    if w.is_meta:  # a remote subject reads its input embedding only when a basis needs it
        from sinkbench.model.remote import materialise_embedding

        w = materialise_embedding(subject)
    w = w.detach().double()
    path = project_in_path(subject)
    if path is not None:
        from sinkbench.model.access import get_path

        proj = get_path(subject.model, path)
        weight = getattr(proj, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.is_meta:
            raise SinkbenchError(f"{subject.name}: --basis E needs {path}'s weight, which is not loaded here")
        if getattr(proj, "bias", None) is not None:
            raise SinkbenchError(f"{subject.name}: {path} has a bias; sinkbench folds only a linear map after the embedding")
        w = w @ weight.detach().double().to(w.device).T
    return w


def fold_fields(subject, basis: str = "U") -> dict:
    """What the basis depends on beyond the weights file: the config fields that say which
    tensors form it and how, and, for U, the final norm's fold (its class, LayerNorm centring,
    the gain offset w vs 1 + w and the gain itself) and project_out; for E, project_in. Two
    models can share a weights file byte for byte and differ only here."""
    if getattr(subject, "model", None) is None:  # a bare description (weights and dtype only): nothing more to key
        return {}
    config = subject.model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    get = lambda name: getattr(text, name, getattr(config, name, None))
    fields = {"model_type": getattr(config, "model_type", None), "text_model_type": getattr(text, "model_type", None),
              "architectures": list(getattr(config, "architectures", None) or []),
              **{k: get(k) for k in ("hidden_size", "vocab_size", "tie_word_embeddings", "word_embed_proj_dim")}}
    if basis == "U":
        from sinkbench.model.access import UNIT_OFFSET_NORMS

        norm = subject.final_norm(subject.model)
        fold = subject.norm_fold
        cls = type(norm).__name__
        fields.update(norm=cls, centred=bool(fold.centred), gain_offset=1.0 if cls in UNIT_OFFSET_NORMS else 0.0,
                      gain=_digest(fold.gain), project_out=subject.project_out_path,
                      unembedding=list(subject.unembedding.shape))
    else:
        fields.update(project_in=project_in_path(subject), embedding=list(subject.embedding.shape))
    return json_safe(fields)


def json_safe(x):
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x if x is None or isinstance(x, (bool, int, float, str)) else str(x)


def spectrum_key(subject, n_bands: int, basis: str = "U") -> str:
    """Full sha256 hex of everything that decides a cached basis: the weights, which
    matrix (U or E), the model dtype, K, this code's SPECTRUM_VERSION, and the fold and
    config fields of fold_fields (two models can share a weights file but not a fold)."""
    import hashlib
    import json

    fields = {"weights": subject.sha256, "basis": basis, "dtype": str(subject.dtype), "n_bands": int(n_bands),
              "version": SPECTRUM_VERSION, "fold": fold_fields(subject, basis)}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _checksum(b: torch.Tensor, s: torch.Tensor) -> str:
    import hashlib

    h = hashlib.sha256()
    for t in (b, s):
        t = t.detach().to("cpu").contiguous()
        h.update(repr((str(t.dtype), tuple(t.shape))).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def read_cached(path, key: str, d: int) -> tuple[torch.Tensor, torch.Tensor] | str:
    """(basis, singular values) of a spectrum cache file, or why it cannot be used: not a
    safetensors file, written for another key, wrong shapes, or its checksum (sha256 of the
    tensors' bytes, in the file's metadata) does not match (a flipped bit, a truncated copy)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            if set(fh.keys()) != {"basis", "singular_values"}:
                return f"tensors {sorted(fh.keys())}, expected basis and singular_values"
            b, s = fh.get_tensor("basis"), fh.get_tensor("singular_values")
    except Exception as exc:  # safetensors raises its own error types for a damaged header or body
        return f"unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"
    if meta.get("key") != key:
        return "written for another key (or by an older sinkbench)"
    if tuple(b.shape) != (d, d) or tuple(s.shape) != (d,):
        return f"shapes {tuple(b.shape)} and {tuple(s.shape)}, expected ({d}, {d}) and ({d},)"
    if meta.get("sha256") != _checksum(b, s):
        return "its checksum does not match its contents"
    if not (torch.isfinite(b).all() and torch.isfinite(s).all()):
        return "non-finite values"
    return b, s


def _warn(text: str) -> None:
    import sys

    print(f"[sinkbench] warning: {text}", file=sys.stderr, flush=True)


def spectrum_for(subject, n_bands: int, basis: str = "U") -> Spectrum:
    """The cached spectrum of a subject (file and memo keyed by spectrum_key), on the model's device.
    A damaged or foreign cache file is named in a warning and rebuilt; a cache that cannot be
    written is named and skipped (the basis is then computed for this run only)."""
    from safetensors.torch import save_file

    from sinkbench.model.models import cache_root

    if basis not in ("U", "E"):
        raise SinkbenchError(f"--basis {basis!r}: expected U (unembedding) or E (embedding)")
    band_slices(subject.d_model, n_bands)  # a bad --n-bands fails before the SVD, not after
    memo = subject.meta.setdefault("spectra", {})
    key = spectrum_key(subject, n_bands, basis)
    if key not in memo:
        path = cache_root() / "spectra" / f"{key}.safetensors"
        got = read_cached(path, key, subject.d_model) if path.exists() else None
        if isinstance(got, tuple):
            b, s = got
        else:
            if isinstance(got, str):
                _warn(f"spectrum cache {path}: {got}; rebuilding it")
            if basis == "U":
                fold = subject.norm_fold
                w = folded_unembedding(subject.unembedding.detach(), fold.gain, fold.centred)
            else:
                w = residual_embedding(subject)
            b, s = right_singular_basis(w)
            b, s = b.contiguous().cpu(), s.contiguous().cpu()
            tmp = path.with_suffix(f".{os.getpid()}.tmp")  # concurrent workers never share a temp file
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                save_file({"basis": b, "singular_values": s}, str(tmp), metadata={"key": key, "sha256": _checksum(b, s)})
                tmp.replace(path)
            except OSError as exc:
                _warn(f"spectrum cache {path.parent}: cannot write it ({exc.strerror or exc}); the basis is not cached")
                try:
                    tmp.unlink()
                except OSError:
                    pass
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
