"""Time three per-pass changes on their own, each against what it replaced, on one
model at its middle layer (16 windows x 128 tokens, fp32):

1. NLL step: chunked_nll (vocabulary slices, online in-place log-sum-exp) vs token
   chunks of the whole vocabulary with torch.logsumexp (round 1) and in place (round 2);
2. attention: six NLL-only filtered passes with the fused kernel and no readout vs
   eager attention reduced to sink mass in every layer after the edit (the old path);
3. stacking: the same six filters one per pass vs 3 and 6 per pass (Edit.stack).

    python benchmarks/isolate_pass_costs.py smollm2-135m [--nll-only]
"""
import sys
import time

import torch

from sinkbench.model.access import load_subject
from sinkbench.measure.data import windows_for
from sinkbench.measure.interventions import Edit, run_batched
from sinkbench.model.metrics import chunked_nll
from sinkbench.measure.spectrum import spectrum_for
from sinkbench.measure.sweep import FilterSweep

FILTERS = ["middle", "random1000", "random1001", "omega5", "omega10", "head6"]


def timed(fn, repeat: int = 1, warm: bool = True) -> float:
    if warm:
        fn()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def token_chunk_nll(hidden, w, ids, in_place: bool, chunk=1 << 25):
    """The NLL step of rounds 1 and 2: chunks of tokens against the whole vocabulary."""
    h, tgt = hidden[:, :-1].reshape(-1, hidden.shape[-1]), ids[:, 1:].reshape(-1)
    per, out = max(1, chunk // w.shape[0]), []
    for s in range(0, h.shape[0], per):
        logits = h[s:s + per] @ w.T
        target = logits.gather(1, tgt[s:s + per, None]).squeeze(1)
        if in_place:
            top = logits.amax(1, keepdim=True)
            out.append(logits.sub_(top).exp_().sum(1).log_() + top.squeeze(1) - target)
        else:
            out.append(torch.logsumexp(logits, 1) - target)
    return torch.cat(out)


def main(name: str) -> None:
    torch.set_grad_enabled(False)
    subject = load_subject(name)
    windows = windows_for(subject, "pydoc", 128, 16)
    sp = spectrum_for(subject, 20)
    layer = subject.n_layers // 2
    print(f"{name}: layer {layer} of {subject.n_layers}, vocabulary {subject.unembedding.shape[0]}", flush=True)

    final = torch.randn(16, 128, subject.d_model) * 3
    w = subject.unembedding
    ref = token_chunk_nll(final, w, windows, in_place=False)
    r1 = timed(lambda: token_chunk_nll(final, w, windows, in_place=False), 3)
    r2 = timed(lambda: token_chunk_nll(final, w, windows, in_place=True), 3)
    r3 = timed(lambda: chunked_nll(final, w, windows), 3)
    diff = (chunked_nll(final, w, windows, reduce=False).flatten() - ref).abs().max()
    print(f"  NLL step: token chunks + torch.logsumexp {r1:.3f}s, token chunks in place {r2:.3f}s, "
          f"vocabulary slices, online {r3:.3f}s ({r1 / r3:.2f}x over round 1), max diff {float(diff):.1e}", flush=True)
    if "--nll-only" in sys.argv:
        return

    sweep = FilterSweep(subject, windows, sp, 16, 3, layers=[layer])
    sweep.base()
    prefix = sweep.base_hidden[layer]
    edits = [Edit.project(layer, *sweep.projector(f)) for f in FILTERS]

    def passes(attn_layers):
        for e in edits:
            run_batched(subject, windows, 16, edit=e, prefix=prefix, attn_layers=attn_layers)
    # Interleaved rounds, the best of each: a first timed block in a process can run slow.
    eager, fused = [], []
    for _ in range(2):
        eager.append(timed(lambda: passes(range(layer + 1, subject.n_layers)), warm=False))
        fused.append(timed(lambda: passes(()), warm=False))
    eager, fused = min(eager), min(fused)
    print(f"  attention: eager + sink readout {eager:.1f}s, fused, none read {fused:.1f}s ({eager / fused:.2f}x) for {len(FILTERS)} passes (best of 2)", flush=True)

    for per_pass in (1, 3, 6):
        def run():
            s = FilterSweep(subject, windows, sp, 16, 3, layers=[layer], filters_per_pass=per_pass)
            s.base_hidden, s._memo["base",] = sweep.base_hidden, sweep.base()
            s.prefetch(layer, FILTERS)
        print(f"  stacking: {per_pass} filter(s) per pass: {timed(run):.1f}s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])  # --nll-only: stop after the NLL step
