"""An independent recomputation of H7's regime NLLs, to compare with a run's records.

    python benchmarks/h7_independent.py RESULTS [--model smollm2-135m] [--seq-len 128] [--n-seqs 16]

The model is loaded a second time as a plain transformers model (eager attention, fp32, no
sinkbench code in its forward). Each regime is an explicitly built 4-D additive float mask
[1, 1, T, T] (0 where query i may read key j, float32's minimum where not), written out here
from the definitions in docs/methods.md §11 (not sinkbench.streaming's masks); the
designated regime adds, by a forward hook on decoder layer l, the band-K component of
position 0's layer-l output to position 1's (the dark write of H4-A, with the band vectors
of sinkbench.spectrum: the basis is shared, the write and the mask are not). NLL: the
cross-entropy of the plain model's own logits, mean over the predictions made at positions
>= W. Shared with sinkbench: the test windows (sinkbench.data.windows_for, same settings)
and the spectrum. Prints each regime's mean NLL beside the records' and the largest
difference; exit status 1 when one exceeds --tol (default 1e-3 nats)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch


def mask_for(regime: str, t: int, w: int, control: int = 1) -> torch.Tensor:
    ok = torch.zeros(t, t, dtype=torch.bool)
    for i in range(t):
        for j in range(i + 1):
            keep = {"full": True, "window": i - j < w, "sink1": i - j < w or j == 0, "sink4": i - j < w or j < 4,
                    "control": i - j < w or j == control}[regime.split("_L")[0].replace("designated", "control")]
            ok[i, j] = keep
    return torch.where(ok, 0.0, torch.finfo(torch.float32).min)[None, None]


def nll(model, ids: torch.Tensor, mask, w: int) -> torch.Tensor:
    with torch.no_grad():
        logits = model(ids, attention_mask=mask).logits.float()
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten(), reduction="none")
    return ce.view(ids.shape[0], -1)[:, w:].mean(1)


def main(argv=None) -> int:
    from transformers import AutoModelForCausalLM

    from sinkbench import models
    from sinkbench.access import load_subject
    from sinkbench.data import windows_for
    from sinkbench.spectrum import spectrum_for

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--n-seqs", type=int, default=16)
    ap.add_argument("--n-bands", type=int, default=20)
    ap.add_argument("--tol", type=float, default=1e-3)
    a = ap.parse_args(argv)
    f = Path(a.results) / "results.jsonl"
    recs = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    rec = next(r for r in recs if r["hypothesis"] == "H7" and r["model"] == a.model)
    info = rec["metrics"]["regimes"]
    w, layers = info["window"], info.get("designated_layers", [])
    subject = load_subject(a.model)
    ids = windows_for(subject, "auto", a.seq_len, a.n_seqs)
    spectrum = spectrum_for(subject, a.n_bands, "U")
    band_k = spectrum.band_vectors([spectrum.n_bands]).float()  # [d, dim K], orthonormal columns
    # the checkpoint sinkbench converted (a GGUF dequantized to safetensors), loaded plainly
    path = models.converted_dir(models.resolve(a.model))
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager", dtype=torch.float32).eval()
    decoder = model.model.layers
    ours = {}
    for regime in ["full", "window", "sink1", "sink4", "control"] + [f"designated_L{l}" for l in layers]:
        hook = None
        if regime.startswith("designated"):
            layer = int(regime.split("_L")[1])

            def write(module, args, out):
                h = out[0] if isinstance(out, tuple) else out
                h = h.clone()
                h[:, 1] += (h[:, 0] @ band_k) @ band_k.T
                return (h, *out[1:]) if isinstance(out, tuple) else h
            hook = decoder[layer].register_forward_hook(write)
        mask = None if regime == "full" else mask_for(regime, a.seq_len, w)
        ours[regime] = float(nll(model, ids, mask, w).mean())
        if hook is not None:
            hook.remove()
    worst = 0.0
    print(f"{a.model}: W = {w}, {a.n_seqs} x {a.seq_len} windows, fp32, eager")
    print(f"{'regime':16s} {'independent':>12s} {'record':>12s} {'diff':>10s}")
    for r, v in ours.items():
        theirs = info["nll_by_regime"][r]
        worst = max(worst, abs(v - theirs))
        print(f"{r:16s} {v:12.6f} {theirs:12.6f} {v - theirs:10.2e}")
    print(f"largest |difference|: {worst:.2e} nats (tolerance {a.tol})")
    return int(worst > a.tol)


if __name__ == "__main__":
    sys.exit(main())
