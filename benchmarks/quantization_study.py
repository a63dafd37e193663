"""Does weight quantization move the dark tail? A float zoo model against copies of itself
quantized with gguf's reference quantizers (Q8_0, Q5_0, Q4_0: the block formats llama.cpp
uses, 32 weights per block along each row) and dequantized, the way the default GGUF models
reach sinkbench. Compared: the principal angles between the float and quantized band K (and
band 1, for scale), the base NLL, and H1 / H2 numbers and verdicts at every layer of the grid.

    python benchmarks/quantization_study.py [zoo names...]   (writes docs/quantization.md)

Norm weights stay in float32, as llama.cpp keeps them."""
from __future__ import annotations

import copy
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sinkbench.model.access import Subject, load_subject  # noqa: E402
from sinkbench.measure.config import make_settings  # noqa: E402
from sinkbench.measure.data import windows_for  # noqa: E402
from sinkbench.hypotheses.h1_dark_tail import h1_grid  # noqa: E402
from sinkbench.hypotheses.h2_middle import h2_grid  # noqa: E402
from sinkbench.measure.spectrum import spectrum_for  # noqa: E402
from sinkbench.measure.sweep import FilterSweep  # noqa: E402

QTYPES = ("Q8_0", "Q5_0", "Q4_0")


def quantized_copy(model, qtype: str):
    """The model with every 2-D weight whose rows split into 32-blocks quantized and dequantized."""
    from gguf import GGMLQuantizationType, quants

    t = GGMLQuantizationType[qtype]
    q = copy.deepcopy(model)
    n = 0
    with torch.no_grad():
        for name, p in q.named_parameters():
            if p.ndim == 2 and p.shape[-1] % 32 == 0:
                w = p.detach().float().cpu().numpy()
                p.copy_(torch.from_numpy(quants.dequantize(quants.quantize(w, t), t).reshape(w.shape)))
                n += 1
    return q, n


def as_subject(base: Subject, model, label: str) -> Subject:
    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
    subject = Subject(name=label, model=model, tokenizer=base.tokenizer, sha256=digest, dtype="float32")
    subject.meta.update({k: v for k, v in base.meta.items() if k in ("zoo", "source")})
    subject.check()
    return subject


def principal_cosines(a, b) -> np.ndarray:
    return torch.linalg.svdvals(a.double().T @ b.double()).numpy()


def study(name: str, s) -> list[dict]:
    base = load_subject(name)
    rows = []
    ref = spectrum_for(base, s.n_bands)
    for qtype in (None,) + QTYPES:
        if qtype is None:
            subject, n = base, 0
        else:
            model, n = quantized_copy(base.model, qtype)
            subject = as_subject(base, model, f"{name}@{qtype}")
        sp = spectrum_for(subject, s.n_bands)
        dark = principal_cosines(ref.band_vectors([s.n_bands]), sp.band_vectors([s.n_bands]))
        head = principal_cosines(ref.band_vectors([1]), sp.band_vectors([1]))
        windows = windows_for(subject, "auto", s.seq_len, s.n_seqs)
        layers = list(range(subject.n_layers - 1))
        sweep = FilterSweep(subject, windows, sp, s.n_seqs, s.random_seeds, layers=layers)
        h1, h2 = h1_grid(sweep, layers, s), h2_grid(sweep, layers, [5, 10, 15], s)
        for layer in layers:
            m1 = h1[layer][1]
            rows.append({
                "model": name, "weights": qtype or "float32", "quantized_matrices": n, "layer": layer,
                "bandK_min_cos": float(dark.min()), "bandK_share": float((dark ** 2).mean()),
                "band1_share": float((head ** 2).mean()), "base_nll": m1["base_nll"],
                "dark_all_delta": m1["dark_all_delta"], "sink_mass_drop": m1["sink_mass_drop"],
                "H1": "pass" if h1[layer][0] else "fail", "H1a": m1["claim_a"], "H1b": m1["claim_b"],
                "H2a": "".join("P" if h2[layer, k][0] else "f" for k in (5, 10, 15)),
                "H2b": "pass" if h2[layer, "b"][0] else "fail", "H2b_delta": h2[layer, "b"][1]["omega_delta"],
            })
    return rows


def markdown(rows: list[dict]) -> str:
    head = ("| model | weights | layer | band K: min cos / share kept | band 1 share | base NLL | H1 ΔNLL dark | "
            "H1 sink drop | H1 (a, b) | H2a k=5,10,15 | H2b (ΔNLL) |")
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        out.append(f"| {r['model']} | {r['weights']} | {r['layer']} | {r['bandK_min_cos']:.3f} / {r['bandK_share']:.3f} | "
                   f"{r['band1_share']:.3f} | {r['base_nll']:.4f} | {r['dark_all_delta']:.4f} | {r['sink_mass_drop']:.3f} | "
                   f"{r['H1']} ({'P' if r['H1a'] else 'f'}, {'P' if r['H1b'] else 'f'}) | {r['H2a']} | "
                   f"{r['H2b']} ({r['H2b_delta']:.3f}) |")
    return "\n".join(out)


def main(names: list[str]) -> None:
    s = make_settings(ROOT, seq_len=64, n_seqs=16)
    rows = [r for name in names for r in study(name, s)]
    table = markdown(rows)
    print(table)
    (ROOT / "docs" / "quantization_table.md").write_text(
        f"<!-- written by benchmarks/quantization_study.py ({s.n_seqs} windows x {s.seq_len} tokens, K={s.n_bands}, "
        f"fp32 on CPU) -->\n{table}\n")


if __name__ == "__main__":
    main(sys.argv[1:] or ["tiny-bb-bos", "tiny-bb-nobos"])
