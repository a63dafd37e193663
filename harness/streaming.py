"""H7, sinks that do work: attention regimes as masks on the test windows (StreamingLLM,
Xiao et al. 2023), and the grid that hands their NLLs to the verdicts (sinkbench.claims_h7).
docs/methods.md §11 states every definition and why.

A regime says which keys each query may read. Query i reads key j <= i when
  * full:    always (the model's own mask; no mask is passed);
  * window:  i - j < W (the W most recent keys, the query itself included);
  * sink1:   the window, or j = 0 (the first token always visible; StreamingLLM's k = 1);
  * sink4:   the window, or j < 4 (StreamingLLM's four initial tokens);
  * control: the window, or j = CONTROL_POSITION (1): one always-visible token that is not
             the natural sink, at the same distance class (it leaves the window one step
             after position 0 does, and every query >= W + 1 sees it from as far as the sink);
  * designated_L<l>: the control mask, and the control token given H4-A's dark write
             (position 0's band-K component added to its residual) at grid layer l.
NLL is read on the predictions made at positions >= W: those whose window no longer holds
position 0 (token_nll[:, W:], position t predicting token t + 1).

Masks, not a cache. Positions stay the original ones: each query keeps its rotary (or
learned) position, and the evicted keys are masked out of the softmax of every layer. A
streaming KV cache (StreamingLLM) instead keeps only the cached keys and re-indexes their
positions inside the cache (the sink at 0, the window at 1..W), so its queries see the kept
tokens at cache distances, never at distances beyond W + k. The mask keeps the true distances,
so position i > W reads the sink from distance i: a harder test of whether the sink works
from far away, and the same computation as StreamingLLM's for queries < W + k only. Keys
evicted from the cache were also computed, in the cache, from their own windowed pasts; here
every layer's keys are computed under the same regime, which is what a cache that evicts at
every layer does.

The mask is the model's own mechanism: an additive float mask [1, 1, T, T] (0 where allowed,
the dtype's minimum where not) given as `attention_mask` to the forward (the pinned
transformers passes a 4-D mask through unchanged; a 4-D *bool* mask is not converted under
the eager/"sinkbench" implementation, it would be added as 0/1, so it is never used). A model
with a sliding window of its own (Mistral's `sliding_window`, Gemma-3's sliding layers) keeps
it: the regime's mask is intersected with the model's window at the layers that have one (a
dict of masks by layer type where the types differ), and the record says what the model's own
mask was."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import SinkbenchError
from .tensors import to_numpy

REGIMES = ("full", "window", "sink1", "sink4", "control")
CONTROL_POSITION = 1  # the control token: the nearest position to the sink that is not the sink


def window_size(s) -> int:
    """W: h7_window, or seq_len // 4 when 0. Needs room for the first tokens and the control
    beyond the window, and a prediction at positions >= W."""
    w = s.h7_window or s.seq_len // 4
    if not 4 < w <= s.seq_len - 2:
        raise SinkbenchError(f"h7_window ([tool.sinkbench] in pyproject.toml): W = {w} with --seq-len {s.seq_len}; "
                             f"H7 needs 4 < W <= seq_len - 2 (pass h7_window in that range, or 0 for seq_len // 4)")
    return w


def kept(regime: str) -> tuple[int, ...]:
    """Positions a regime keeps visible to every later query, beyond the window."""
    return {"full": (), "window": (), "sink1": (0,), "sink4": (0, 1, 2, 3), "control": (CONTROL_POSITION,)}[regime]


def allowed(t: int, regime: str, window: int, own_window: int | None = None) -> torch.Tensor:
    """[T, T] bool: query i may read key j. own_window: the model's own sliding window,
    intersected with the regime (None: the model has none at this layer type)."""
    i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
    ok = j <= i
    if regime != "full":
        keep = torch.zeros(t, dtype=torch.bool)
        keep[list(kept(regime))] = True
        ok = ok & ((i - j < window) | keep[None, :])
    if own_window is not None:
        ok = ok & (i - j < own_window)
    return ok


def additive(ok: torch.Tensor, dtype: torch.dtype, device) -> torch.Tensor:
    """[1, 1, T, T] additive float mask: 0 where allowed, the dtype's minimum where not."""
    return torch.where(ok, 0.0, torch.finfo(dtype).min).to(dtype=dtype, device=device)[None, None]


def own_mask(config) -> dict:
    """What the model's own mask is: its sliding window (None if none) and the layer types
    that use it (None: every layer, when the config names no layer types)."""
    window = getattr(config, "sliding_window", None)
    if window is not None and getattr(config, "use_sliding_window", True) is False:
        window = None
    types = getattr(config, "layer_types", None)
    if types is not None and "sliding_attention" not in types:
        window = None
    return {"sliding_window": window, "layer_types": None if types is None else sorted(set(types))}


def regime_mask(subject, t: int, regime: str, window: int):
    """The attention_mask a pass under `regime` gets (None for full: the model's own)."""
    if regime == "full":
        return None
    dtype, device = subject.model.dtype, subject.device
    own = own_mask(subject.model.config)
    if own["sliding_window"] is None:
        return additive(allowed(t, regime, window), dtype, device)
    if own["layer_types"] is None or own["layer_types"] == ["sliding_attention"]:
        return additive(allowed(t, regime, window, own["sliding_window"]), dtype, device)
    return {"full_attention": additive(allowed(t, regime, window), dtype, device),
            "sliding_attention": additive(allowed(t, regime, window, own["sliding_window"]), dtype, device)}


def regime_token_nll(subject, windows: torch.Tensor, batch: int, regime: str, window: int) -> np.ndarray:
    """[N, T-1] per-prediction NLL under a regime (position t predicting token t + 1)."""
    from .interventions import run_batched

    mask = regime_mask(subject, windows.shape[1], regime, window)
    return to_numpy(run_batched(subject, windows, batch, attention_mask=mask).token_nll)


def designated_edit(spectrum, layer: int, n_windows: int):
    """H4-A's dark write ("add", designate.write_dark) at `layer`: position 0's band-K
    component added to the control token's residual, in every window."""
    from .designate import dark_write

    return dark_write(spectrum, layer, torch.full((n_windows,), CONTROL_POSITION, dtype=torch.long), "add")


def passes_per_run(n_grid_layers: int) -> int:
    """Forward passes H7 runs per batch of test windows: the five mask regimes and one
    designated regime per grid layer (the profile rides on them; sinkbench.sink_profile)."""
    return len(REGIMES) + n_grid_layers


@dataclass
class H7Test:
    """Per-test-window arrays [N]: mean NLL of the predictions made at positions >= W under
    each regime; designated: grid layer -> [N] (the control regime with H4's dark write there)."""

    full: np.ndarray
    window: np.ndarray
    sink1: np.ndarray
    sink4: np.ndarray
    control: np.ndarray
    designated: dict = field(default_factory=dict)


def h7_inputs(subject, windows: torch.Tensor, batch: int, window: int, spectrum=None, layers=()) -> tuple[H7Test, dict]:
    """The regimes' per-window NLLs over positions >= W, and what the record reads beside
    them: per regime (designated ones as designated_L<l>) the mean NLL by position ([T-1]
    over windows; the StreamingLLM curve) and the value/key profile of positions 0 and the
    control per layer (sinkbench.sink_profile; its learned_sink_mass is the learned sinks')."""
    from .claims_h7 import designated_key
    from .sink_profile import profiled_pass, summarize

    positions, t = (0, CONTROL_POSITION), windows.shape[1]
    runs = {r: (regime_mask(subject, t, r, window), None) for r in REGIMES}
    for layer in layers:
        runs[designated_key(layer)] = (regime_mask(subject, t, "control", window),
                                       designated_edit(spectrum, layer, len(windows)))
    token, profile = {}, {}
    for r, (mask, edit) in runs.items():
        res, prof = profiled_pass(subject, windows, batch, positions=positions, from_query=window,
                                  attention_mask=mask, edit=edit)
        token[r], profile[r] = to_numpy(res.token_nll), summarize(prof, positions)
    read = {r: v[:, window:].mean(1) for r, v in token.items()}
    test = H7Test(**{r: read[r] for r in REGIMES}, designated={l: read[designated_key(l)] for l in layers})
    return test, {"nll_by_position": {r: v.mean(0).tolist() for r, v in token.items()}, "profile": profile}


def profile_comparison(profile: dict, layers) -> dict | None:
    """Per grid layer l, each profile measure as its mean over layers l+1..L-1 (where H4-A's
    write can act): the natural sink (position 0 under sink1), the plain control token
    (position 1 under control) and the designated sink (position 1 under designated_L<l>)."""
    from .claims_h7 import designated_key
    from .sink_profile import over_layers

    if profile.get("sink1") is None:
        return None
    c = str(CONTROL_POSITION)
    return {str(l): {"natural": over_layers(profile["sink1"], 0, l + 1),
                     "control": over_layers(profile["control"], CONTROL_POSITION, l + 1),
                     "designated": over_layers(profile[designated_key(l)], CONTROL_POSITION, l + 1),
                     "positions": {"natural": 0, "control": int(c), "designated": int(c)}} for l in layers}


def h7_grid(sweep, s) -> dict:
    """H7 on one model: the five regimes and the designated one per grid layer on the test
    windows, the verdicts of sinkbench.claims_h7 with their stability, and what the record
    needs to read them."""
    from . import claims_h7
    from .experiments import as_units, parse_layers

    subj = sweep.subject
    w = window_size(s)
    layers = parse_layers(s.layers, subj.n_layers, subj.name)
    test, extra = h7_inputs(subj, sweep.windows, s.windows_per_pass(subj), w, sweep.spectrum, layers)
    units, n_units = as_units(test, subj, s, len(sweep.windows))
    out = claims_h7.verdicts_with_stability(units, s, model=subj.name, n_units=n_units)
    profile = extra["profile"]
    learned = subj.learned_sinks
    info = {"window": w, "control_position": CONTROL_POSITION, "read_from_position": w,
            "first_token_is_bos": bool(subj.uses_bos), "model_own_mask": own_mask(subj.model.config),
            "designated_layers": layers, "designated_write": "add: position 0's band-K component into the control token "
            "(designate.write_dark), at one grid layer per regime, under the control regime's mask",
            "nll_by_regime": {r: float(np.mean(v)) for r, v in
                              {**{r: getattr(test, r) for r in REGIMES},
                               **{claims_h7.designated_key(l): d for l, d in test.designated.items()}}.items()},
            "nll_by_position": extra["nll_by_position"],
            "learned_sinks": bool(learned),
            "learned_sink_mass": {r: (p["learned_sink_mass"] if p is not None else None) for r, p in profile.items()}
            if learned else None,
            "sink_profile": profile_comparison(profile, layers)}
    for key, (_, m) in out.items():
        m["regimes"] = info
        if key == "d":
            m["profile_by_regime"] = profile
    return out
