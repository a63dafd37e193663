"""The most any exact method can gain over the naive reference on a compute-bound
device, from matmul FLOPs alone.

A filter applied after layer l changes the residual stream from layer l + 1 on,
so an exact result must still run layers l+1..L-1 and the full unembedding (the
NLL needs the log-partition over every vocabulary entry) once per filter. The
naive reference runs all L layers and the unembedding. Their FLOP ratio bounds the
speed-up of any exact method that does not share work between filters.

It also measures this machine's rate on the two product shapes that dominate (a
decoder MLP projection and one unembedding slice, 2048 tokens each) and prints the
least time the exact work of the benchmark's grid (27 filters per layer, 16 x 128
tokens, plus the base run) can take at those rates: the harness's time can only
approach it, and naive time / that time bounds the ratio the benchmark can show.

    python benchmarks/flop_ceiling.py smollm2-135m gemma3-270m
"""
import time

import torch

import sys

from sinkbench.model.access import load_subject
from sinkbench.measure.experiments import parse_layers


def flops_per_token(subject, seq_len: int) -> tuple[float, float]:
    """(one decoder layer, the unembedding), matmul FLOPs per token."""
    cfg = getattr(subject.model.config, "text_config", subject.model.config)
    d, heads, kv = subject.d_model, cfg.num_attention_heads, cfg.num_key_value_heads
    dh = getattr(cfg, "head_dim", None) or d // heads
    layer = 2 * d * heads * dh * 2 + 2 * 2 * d * kv * dh + 3 * 2 * d * cfg.intermediate_size + 2 * 2 * heads * dh * seq_len
    return layer, 2 * d * subject.unembedding.shape[0]


def product_rate(m: int, k: int, n: int) -> float:
    """FLOP/s of an [m, k] x [k, n] float32 product here (best of 3)."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(3))
    return 2 * m * k * n / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(names: list[str], seq_len: int = 128, n_seqs: int = 16, filters: int = 27) -> None:
    for name in names:
        subject = load_subject(name)
        n = subject.n_layers
        layer, head = flops_per_token(subject, seq_len)
        print(f"{name}: {n} layers, per token {layer * n / 1e6:.0f} MFLOP decoder + {head / 1e6:.0f} MFLOP unembedding "
              f"({head / (layer * n + head):.0%} of a full pass)")
        cfg = getattr(subject.model.config, "text_config", subject.model.config)
        tokens = n_seqs * seq_len
        layer_rate = product_rate(tokens, subject.d_model, cfg.intermediate_size)
        head_rate = product_rate(tokens, subject.d_model, 16384)
        for spec in ("0.25,0.5,0.75", "all"):
            grid = parse_layers(spec, n)
            naive = len(grid) * (n * layer + head)
            exact = sum((n - 1 - l) * layer + head for l in grid)
            print(f"  layers {spec}: FLOP ratio naive / exact {naive / exact:.2f}x; "
                  f"with zero decoder cost (unembedding only) {naive / (len(grid) * head):.2f}x")
            least = tokens * (n * layer / layer_rate + head / head_rate  # the base run
                              + filters * sum((n - 1 - l) * layer / layer_rate + head / head_rate for l in grid))
            print(f"    least time for the benchmark's exact work at this machine's product rates "
                  f"({layer_rate / 1e9:.0f} and {head_rate / 1e9:.0f} GFLOP/s): {least:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:] or ["smollm2-135m", "gemma3-270m"])
