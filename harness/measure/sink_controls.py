"""Gu et al.'s input controls for the sink rate (ICLR 2025, "When Attention Sink Emerges"):
the same Sink_1 measurement (epsilon 0.3, docs/methods.md §8) on inputs of the test
windows' shape made of random tokens and of one repeated token, recorded beside the
natural-text rate. Gu report LLaMA2-7B at 92.47 natural / 90.13 random / 0 repeated and
GPT2-XL at 77.00 / 70.29 / 62.28.

Tokens are drawn from the token types of the model's own text (uniformly over types, not
over the whole vocabulary, whose unused and special entries no model was trained on),
with a fixed seed. A model that uses BOS keeps it at position 0 (it always gets it); the
rest of the window is random tokens, or one type (drawn per window) repeated. Without BOS
the repeated token fills position 0 too, as in Gu's setting."""
from __future__ import annotations

import numpy as np
import torch

CONTROL_SEED = 0
CONTROLS = ("random", "repeated")


def control_windows(natural: torch.Tensor, types: np.ndarray, kind: str, keep_first: bool, seed: int = CONTROL_SEED) -> torch.Tensor:
    """Windows of natural's shape: uniform random token types, or one type repeated per
    window; column 0 kept from natural when keep_first (BOS)."""
    rng = np.random.default_rng(seed)
    n, t = natural.shape
    if kind == "random":
        ids = rng.choice(types, size=(n, t))
    elif kind == "repeated":
        ids = np.repeat(rng.choice(types, size=(n, 1)), t, axis=1)
    else:
        raise ValueError(f"kind must be one of {CONTROLS}, got {kind!r}")
    out = torch.as_tensor(ids, dtype=natural.dtype)
    if keep_first:
        out[:, 0] = natural[:, 0]
    return out


def scores_on(subject, windows: torch.Tensor, batch: int) -> dict:
    """Per layer [N, H, T] key scores of the unedited model (one pass per batch)."""
    from sinkbench.measure.interventions import run_batched
    from sinkbench.model.metrics import key_scores

    return run_batched(subject, windows, batch, attn_layers=range(subject.n_layers), attn_readout=key_scores).attention


def input_control_rates(subject, natural: torch.Tensor, dataset: str, batch: int, epsilon: float = 0.3) -> dict:
    """kind -> {sink_1, max_other, max_other_position, epsilon, tokens}: the sink rate on each
    control input (what experiments.sink_rates records under 'input_controls')."""
    from sinkbench.measure.data import text_tokens
    from sinkbench.model.metrics import sink_rate

    types = np.unique(np.asarray(text_tokens(subject, dataset)))
    out = {}
    for kind in CONTROLS:
        w = control_windows(natural, types, kind, keep_first=bool(subject.uses_bos))
        out[kind] = dict(sink_rate(scores_on(subject, w, batch), epsilon), bos_kept=bool(subject.uses_bos),
                         token_types=int(types.size), seed=CONTROL_SEED)
    return out
