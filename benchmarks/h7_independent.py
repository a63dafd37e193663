"""An independent recomputation of H7's regime NLLs, to compare with a run's records.

    python benchmarks/h7_independent.py RESULTS [--model smollm2-135m] [--seq-len 128] [--n-seqs 16]

The model is loaded a second time as a plain transformers model (eager attention, fp32, no
sinkbench code in its forward). Each regime is an explicitly built 4-D additive float mask
[1, 1, T, T] (0 where query i may read key j, float32's minimum where not), written out here
from the definitions in docs/methods.md §11 (not sinkbench.hypotheses.h7_streaming.measurement's masks); the
designated regime adds, by a forward hook on decoder layer l, the band-K component of
position 0's layer-l output to position 1's (the dark write of H4-A, with the band vectors
of sinkbench.measure.spectrum: the basis is shared, the write and the mask are not). The ladder's
rungs 2-5 (docs/methods.md §11) are hooks too: band K set to position 0's at the outputs of
layers l..L-2; the values of position 1 scaled per head to position 0's norm on v_proj's
output at layers > l; position 0's pre-rotary key and value copied into position 1 on k_proj
/ v_proj's outputs at layers > l (the model's own rotary then rotates the key to position 1);
position 0's whole residual copied at layer l. Rung 6's regime (learned_sink) is named and
skipped: the embedding it trained is not in the record. The upper bound late_sink_L<l> swaps the
window mask in at layers <= l by a pre-hook on the attention modules; the recompute
baseline runs every W-token window (BOS + W - 1 for a BOS model) as a plain pass. NLL: the
cross-entropy of the plain model's own logits, mean over the predictions made at positions
>= W. Shared with sinkbench: the test windows (sinkbench.measure.data.windows_for, same settings)
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


def recompute_nll(model, ids: torch.Tensor, w: int, bos: bool) -> torch.Tensor:
    """StreamingLLM's recompute baseline by plain passes: each prediction i >= W made from the W
    most recent tokens alone (BOS + the W - 1 most recent for a BOS model); [N, T - 1 - W]."""
    recent = w - 1 if bos else w
    out = []
    for i in range(w, ids.shape[1] - 1):
        sub = ids[:, i - recent + 1: i + 2]
        if bos:
            sub = torch.cat([ids[:, :1], sub], 1)
        with torch.no_grad():
            logits = model(sub).logits.float()
        out.append(torch.nn.functional.cross_entropy(logits[:, w - 1], sub[:, w], reduction="none"))
    return torch.stack(out, 1)


def nll(model, ids: torch.Tensor, mask, w: int) -> torch.Tensor:
    with torch.no_grad():
        logits = model(ids, attention_mask=mask).logits.float()
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten(), reduction="none")
    return ce.view(ids.shape[0], -1)[:, w:].mean(1)


def main(argv=None) -> int:
    from transformers import AutoModelForCausalLM

    from sinkbench.model import models
    from sinkbench.model.access import load_subject
    from sinkbench.measure.data import windows_for
    from sinkbench.measure.spectrum import spectrum_for

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
    n_layers, hd = len(decoder), decoder[0].self_attn.head_dim
    proj = band_k @ band_k.T
    bos = bool(subject.uses_bos)

    def out_hook(fn):
        def hook(module, args, out):
            h = (out[0] if isinstance(out, tuple) else out).clone()
            h = fn(h)
            return (h, *out[1:]) if isinstance(out, tuple) else h
        return hook

    def heads_hook(fn):
        def hook(module, args, out):
            return fn(out.clone().view(*out.shape[:2], -1, hd)).flatten(2)
        return hook

    def add(h):
        h[:, 1] += h[:, 0] @ proj
        return h

    def set_k(h):
        h[:, 1] = h[:, 1] - h[:, 1] @ proj + h[:, 0] @ proj
        return h

    def copy(h):
        h[:, 1] = h[:, 0]
        return h

    def drain(x):
        x[:, 1] = x[:, 1] * (x[:, 0].norm(dim=-1) / x[:, 1].norm(dim=-1))[..., None]
        return x

    def transplant(x):
        x[:, 1] = x[:, 0]
        return x

    def hooks_for(regime: str, layer: int) -> list:
        later = range(layer + 1, n_layers)
        attn = lambda i: decoder[i].self_attn  # noqa: E731
        if regime == "late_sink":
            win = mask_for("window", a.seq_len, w)

            def early(module, args, kwargs):
                return args, {**kwargs, "attention_mask": win}
            return [attn(i).register_forward_pre_hook(early, with_kwargs=True) for i in range(layer + 1)]
        if regime == "designated":
            return [decoder[layer].register_forward_hook(out_hook(add))]
        if regime in ("dark_kept", "value_drain"):
            hs = [decoder[i].register_forward_hook(out_hook(set_k)) for i in range(layer, n_layers - 1)]
            if regime == "value_drain":
                hs += [attn(i).v_proj.register_forward_hook(heads_hook(drain)) for i in later]
            return hs
        if regime == "kv_transplant":
            return [getattr(attn(i), p).register_forward_hook(heads_hook(transplant)) for i in later
                    for p in ("k_proj", "v_proj")]
        if regime == "state_copy":
            return [decoder[layer].register_forward_hook(out_hook(copy))]
        return []

    def recompute() -> float:
        return float(recompute_nll(model, ids, w, bos).mean())

    ours, skipped = {}, []
    for regime in info["nll_by_regime"]:
        if regime.startswith("learned_sink"):  # its trained embedding is not in the record
            skipped.append(regime)
            continue
        if regime == "recompute":
            ours[regime] = recompute()
            continue
        name, _, layer = regime.rpartition("_L") if "_L" in regime else (regime, "", "")
        base = name
        mask_regime = {"late_sink": "sink1"}.get(base, "control" if layer else base)
        handles = hooks_for(base, int(layer)) if layer else []
        mask = None if regime == "full" else mask_for(mask_regime, a.seq_len, w)
        ours[regime] = float(nll(model, ids, mask, w).mean())
        for h in handles:
            h.remove()
    worst = 0.0
    print(f"{a.model}: W = {w}, {a.n_seqs} x {a.seq_len} windows, fp32, eager")
    print(f"{'regime':16s} {'independent':>12s} {'record':>12s} {'diff':>10s}")
    for r, v in ours.items():
        theirs = info["nll_by_regime"][r]
        worst = max(worst, abs(v - theirs))
        print(f"{r:16s} {v:12.6f} {theirs:12.6f} {v - theirs:10.2e}")
    for r in skipped:
        print(f"{r:16s} not recomputed: the embedding rung 6 trained is not in the record "
              "(tests/test_h7_ladder.py checks that regime against a plain forward given inputs_embeds)")
    print(f"largest |difference|: {worst:.2e} nats (tolerance {a.tol})")
    return int(worst > a.tol)


if __name__ == "__main__":
    sys.exit(main())
