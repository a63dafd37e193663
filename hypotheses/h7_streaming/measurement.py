"""H7, sinks that do work: attention regimes as masks on the test windows (StreamingLLM,
Xiao et al. 2023), and the grid that hands their NLLs to the verdicts (sinkbench.hypotheses.h7_streaming.verdicts).
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

from sinkbench.errors import SinkbenchError
from sinkbench.model.tensors import to_numpy

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
    from sinkbench.measure.interventions import run_batched

    mask = regime_mask(subject, windows.shape[1], regime, window)
    return to_numpy(run_batched(subject, windows, batch, attention_mask=mask).token_nll)


def designated_edit(spectrum, layer: int, n_windows: int):
    """H4-A's dark write ("add", designate.write_dark) at `layer`: position 0's band-K
    component added to the control token's residual, in every window (the ladder's rung 1)."""
    from sinkbench.measure.designate import dark_write

    return dark_write(spectrum, layer, torch.full((n_windows,), CONTROL_POSITION, dtype=torch.long), "add")


# --------------------------------------------------------------------------- the reference and the ladder
EARLY_LAYER = 1  # the ladder's early layer where no massive activation is found at the first token (clamped to L - 2)
LADDER_LAYERS = ("default", "grid")  # default: the early layer and the middle grid layer; grid: the early layer and every grid layer
LEARNED_SINK = ("auto", "on", "off")  # rung 6: auto = on for zoo models, off for pretrained ones (its cost: benchmarks/NOTES.md)
READOUT = ("on", "off")  # each rung of the ladder also run with the natural sink present (H4-A's capture readout)
UNIT_DEFAULTS = {"ladder": "default", "early_layer": -1, "learned_sink": "auto", "readout": "on"}  # the unit's Settings' defaults (__init__)


def learned_on(how: str, subject) -> bool:
    """Whether rung 6 (a learned sink embedding) runs: the unit setting learned_sink, 'auto'
    meaning on for zoo models (cheap there) and off for pretrained ones."""
    from sinkbench.model.models import zoo_aliases

    return how == "on" or (how == "auto" and subject.name in zoo_aliases())


def early_layer(subject, windows: torch.Tensor, batch: int, min_ratio: float, chosen: int = -1,
                hidden: dict | None = None) -> tuple[int, dict]:
    """The ladder's early layer and how it was found. chosen >= 0: that layer (the unit setting
    early_layer). Else the first layer l <= L - 2 at whose output the first token's residual
    holds a massive coordinate (sinkbench.measure.massive: |h| > min_ratio x the layer's median
    |h|, H6's scale-free criterion, h6_min_ratio) on at least half of the selection `windows`
    (never the test windows; `hidden`: their layer outputs when already computed, the model
    run's shared selection pass): where the massive activation forms, so a copy of the sink's
    state there carries it. None found: EARLY_LAYER (clamped), and the record says so."""
    from sinkbench.measure.interventions import run_batched
    from sinkbench.measure.massive import first_massive_layer, first_token_ratio

    last = max(0, subject.n_layers - 2)
    if chosen >= 0:
        if chosen > last:
            raise SinkbenchError(f"H7.early_layer = {chosen}: {subject.name} has {subject.n_layers} layers and a write must "
                                 f"leave a layer to act on; pass a layer in 0..{last} (or -1 to detect it)")
        return chosen, {"rule": "set (H7.early_layer)", "layer": chosen}
    if hidden is None:
        hidden = run_batched(subject, windows, batch, hidden_layers=range(last + 1)).hidden
    return first_massive_layer(first_token_ratio(hidden, range(last + 1)), min_ratio, fallback=min(EARLY_LAYER, last))


def ladder_layers(grid: list[int], n_layers: int, how: str = "default", early: int | None = None) -> list[int]:
    """The ladder's layers: the early layer (detected, see early_layer; EARLY_LAYER when not
    given, at most L - 2) and the middle layer of the --layers grid ('default'), or the early
    layer and every grid layer ('grid')."""
    early = max(0, min(EARLY_LAYER if early is None else early, n_layers - 2))
    chosen = [early, grid[len(grid) // 2]] if (how == "default" and grid) else [early, *grid]
    return sorted(set(chosen))


def late_key(layer: int) -> str:
    return f"late_sink_L{layer}"


def readout_key(rung: str, layer: int) -> str:
    """The regime of a rung run with every key visible (the natural sink present): H4-A's readout."""
    return f"readout_{rung_key(rung, layer)}"


def rung_key(rung: str, layer: int) -> str:
    from .verdicts import designated_key

    return designated_key(layer) if rung == "dark_write" else f"{rung}_L{layer}"


def recompute_token_nll(subject, windows: torch.Tensor, batch: int, window: int, bos: bool = False) -> np.ndarray:
    """StreamingLLM's recompute baseline, [N, T-1-W]: the prediction at each position i >= W
    made by a fresh pass over the W most recent tokens (i - W + 1 .. i) alone, re-indexed from
    position 0: the context a window holds, with the sink the model makes of a sequence's
    start. bos: the windows start with the model's BOS (every text the model saw did), so the
    fresh sequence is that BOS and the W - 1 most recent tokens (W keys either way)."""
    from sinkbench.measure.interventions import run_batched

    n, t = windows.shape
    starts = range(window, t - 1)
    recent = window - 1 if bos else window
    subs = torch.stack([windows[:, i - recent + 1: i + 2] for i in starts], 1)  # [N, P, recent + 1]
    if bos:
        subs = torch.cat([windows[:, None, :1].expand(n, len(starts), 1), subs], 2)
    subs = subs.flatten(0, 1)  # [N * P, W + 1]
    res = run_batched(subject, subs, max(1, batch * t // (window + 1)))
    return to_numpy(res.token_nll[:, window - 1]).reshape(n, len(starts))


def _mask_at(mask, subject, layer: int):
    """The mask a layer reads from a regime_mask (a dict by layer type where the types differ)."""
    if not isinstance(mask, dict):
        return mask
    return mask[subject.model.config.layer_types[layer]]


def passes_per_run(n_grid_layers: int, n_ladder_layers: int = 2, t: int = 128, window: int = 32,
                   readout: bool = True) -> int:
    """Forward passes H7 runs per batch of test windows (about: the profile rides on them,
    sinkbench.measure.sink_profile): the five mask regimes, the recompute baseline (its short windows
    batched), rung 1 and the upper bound at each grid and ladder layer, rungs 2-5 at each
    ladder layer, and (readout) rungs 1-5 with the natural sink present at each ladder layer.
    n_ladder_layers 0: the five regimes and rung 1 at the grid layers."""
    if not n_ladder_layers:
        return len(REGIMES) + n_grid_layers
    n1 = n_grid_layers + max(0, n_ladder_layers - 1)
    return (len(REGIMES) + -(-(t - 1 - window) * (window + 1) // t) + 2 * n1 + 4 * n_ladder_layers
            + (5 * n_ladder_layers if readout else 0))


@dataclass
class H7Test:
    """Per-test-window arrays [N]: mean NLL of the predictions made at positions >= W under
    each regime; designated: layer -> [N] (the control regime with H4's dark write there: the
    ladder's rung 1); recompute: StreamingLLM's recompute baseline (None: no reference run, the
    full regime stands in); late: layer -> [N] (the first token visible only after that layer,
    the upper bound of a write there); ladder: (rung, layer) -> [N] for rungs 2-5
    (sinkbench.measure.designate.RUNGS)."""

    full: np.ndarray
    window: np.ndarray
    sink1: np.ndarray
    sink4: np.ndarray
    control: np.ndarray
    designated: dict = field(default_factory=dict)
    recompute: np.ndarray | None = None
    late: dict = field(default_factory=dict)
    cut_bound: dict = field(default_factory=dict)  # layer -> upper bound on the selection windows (floats)
    ladder: dict = field(default_factory=dict)


def _profiled(subject, windows, batch, positions, from_query, mask, edit, hooks):
    """sink_profile.profiled_pass, with `hooks` (a context, designate.ladder_hooks) entered
    inside the profile's capture so that what it reads is what the edited layers computed."""
    from functools import partial

    from sinkbench.measure.interventions import run_batched
    from sinkbench.measure.sink_profile import capturing, profile_readout, profiled_pass

    if hooks is None:
        return profiled_pass(subject, windows, batch, positions=positions, from_query=from_query,
                             attention_mask=mask, edit=edit)
    layers = list(range(subject.n_layers))
    with capturing(subject, from_query), hooks():
        res = run_batched(subject, windows, batch, attention_mask=mask, edit=edit, attn_layers=layers,
                          attn_readout=partial(profile_readout, positions=tuple(positions)))
    return res, {i: res.attention[i].float().cpu() for i in layers}


def late_runs(subject, t: int, window: int, layers) -> dict:
    """The upper bounds' regimes, late_sink_L<l> -> (mask, edit, hooks): the window's mask at
    layers 0..l (swapped in at each layer's attention function), sink1's after."""
    from functools import partial

    from sinkbench.measure.designate import ladder_hooks, marked
    from sinkbench.measure.interventions import Edit

    win, sink1 = regime_mask(subject, t, "window", window), regime_mask(subject, t, "sink1", window)
    runs = {}
    for layer in layers:
        masks = {i: _mask_at(win, subject, i) for i in range(layer + 1)}
        runs[late_key(layer)] = (sink1, Edit(layer, partial(marked, regime="late_sink", layer=layer)),
                                 partial(ladder_hooks, subject, "late_sink", layer, CONTROL_POSITION, masks=masks))
    return runs


def selection_bounds(subject, select: torch.Tensor, batch: int, window: int, layers) -> dict[int, float]:
    """layer -> the upper bound (the first token visible only after the layer: its recovery as a
    share of sink1's, ratio of means) on the selection windows. Which layers leave the Holm
    family ("no write can pass here") is a choice made from data, so it is made on these
    windows, apart from the test windows the rungs are tested on (the test windows' bound is
    recorded beside it)."""
    t = select.shape[1]
    runs = {r: (regime_mask(subject, t, r, window), None, None) for r in ("window", "sink1")}
    runs.update(late_runs(subject, t, window, layers))
    from .verdicts import bound_shares

    read = {}
    for r, (mask, edit, hooks) in runs.items():
        res, _ = _profiled(subject, select, batch, (0, CONTROL_POSITION), window, mask, edit, hooks)
        read[r] = to_numpy(res.token_nll)[:, window:].mean(1)
    return {l: float(b) for l, b in bound_shares(read["window"], read["sink1"],
                                                   {l: read[late_key(l)] for l in layers}).items()}


def h7_inputs(subject, windows: torch.Tensor, batch: int, window: int, spectrum=None, layers=(),
              ladder=(), learned: torch.Tensor | None = None, readout: bool = False) -> tuple[H7Test, dict]:
    """The regimes' per-window NLLs over positions >= W, and what the record reads beside
    them: per regime (designated ones as designated_L<l>, the ladder's as <rung>_L<l>, the
    upper bounds as late_sink_L<l>, the recompute baseline as recompute) the mean NLL by
    position ([T-1] over windows; the StreamingLLM curve) and the value/key profile of
    positions 0 and the control per layer (sinkbench.measure.sink_profile; its learned_sink_mass is
    the learned sinks'). layers: the grid (rung 1, claim d); ladder: the ladder's layers (rung
    1 there too, rungs 2-5, and the upper bound at every layer of both); learned: rung 6's input
    embedding (designate.learn_sink_embedding), run as learned_sink_L-1. With no ladder, the
    recompute baseline and the upper bounds are not run either (the verdicts then read the
    full regime as the reference). readout: rungs 1-5 at the ladder's layers are also run under
    the full mask (readout_<rung>_L<l>: the natural sink present, H4-A's setting); extra's
    "attention" then holds, for them and the full regime, the per-window attention of the
    queries >= W to positions 0 and 1 per layer ({layer: [N, 2]})."""
    from functools import partial

    from .verdicts import designated_key
    from sinkbench.measure.designate import RUNGS, ladder_hooks, marked, rung_edit
    from sinkbench.measure.interventions import Edit
    from sinkbench.measure.sink_profile import MEASURES, summarize, supported

    positions, t, n = (0, CONTROL_POSITION), windows.shape[1], len(windows)
    runs = {r: (regime_mask(subject, t, r, window), None, None) for r in REGIMES}
    rung1 = sorted(set(layers) | set(ladder))
    for layer in rung1:
        runs[designated_key(layer)] = (regime_mask(subject, t, "control", window),
                                       designated_edit(spectrum, layer, n), None)
    ladder = list(ladder) if supported(subject) else []  # the hooks ride on the profile's attention function
    if ladder:
        dark = spectrum.keep([spectrum.n_bands])
        runs.update(late_runs(subject, t, window, rung1))
        for rung in RUNGS[1:]:
            for layer in ladder:
                runs[rung_key(rung, layer)] = (regime_mask(subject, t, "control", window),
                                               rung_edit(spectrum, rung, layer, CONTROL_POSITION, n),
                                               partial(ladder_hooks, subject, rung, layer, CONTROL_POSITION, dark))
        if learned is not None:
            from sinkbench.measure.designate import LEARNED, LEARNED_LAYER

            runs[rung_key(LEARNED, LEARNED_LAYER)] = (
                regime_mask(subject, t, "control", window), Edit(0, partial(marked, rung=LEARNED, vector=learned)),
                partial(ladder_hooks, subject, LEARNED, LEARNED_LAYER, CONTROL_POSITION, embedding=learned))
    if ladder and readout:
        full = regime_mask(subject, t, "full", window)
        for layer in ladder:
            for rung in RUNGS:
                edit, hooks = ((designated_edit(spectrum, layer, n), None) if rung == "dark_write" else
                               (rung_edit(spectrum, rung, layer, CONTROL_POSITION, n),
                                partial(ladder_hooks, subject, rung, layer, CONTROL_POSITION, dark)))
                runs[readout_key(rung, layer)] = (full, edit, hooks)
    token, profile, attention = {}, {}, {}
    att = [MEASURES.index("attention") + len(MEASURES) * k for k in range(len(positions))]
    for r, (mask, edit, hooks) in runs.items():
        res, prof = _profiled(subject, windows, batch, positions, window, mask, edit, hooks)
        token[r], profile[r] = to_numpy(res.token_nll), summarize(prof, positions)
        if readout and prof is not None and (r == "full" or r.startswith("readout_")):
            attention[r] = {i: prof[i][:, att].numpy() for i in prof}
    recompute = None
    if ladder:
        rec = recompute_token_nll(subject, windows, batch, window, bos=bool(subject.uses_bos))
        token["recompute"] = np.concatenate([token["full"][:, :window], rec], 1)  # below W the window holds the whole prefix
        recompute = rec.mean(1)
    read = {r: v[:, window:].mean(1) for r, v in token.items()}
    test = H7Test(**{r: read[r] for r in REGIMES}, designated={l: read[designated_key(l)] for l in rung1},
                  recompute=recompute, late={l: read[late_key(l)] for l in rung1 if late_key(l) in read},
                  ladder={(rung, l): read[rung_key(rung, l)] for rung in RUNGS[1:] for l in ladder})
    if ladder and learned is not None:
        from sinkbench.measure.designate import LEARNED, LEARNED_LAYER

        test.ladder[(LEARNED, LEARNED_LAYER)] = read[rung_key(LEARNED, LEARNED_LAYER)]
    return test, {"nll_by_position": {r: v.mean(0).tolist() for r, v in token.items() if not r.startswith("readout_")},
                  "profile": profile, "attention": attention, "nll": read}


def rung_readout(attention: dict, nll: dict, rung: str, layer: int, seed_key=()) -> dict | None:
    """H4-A's readout of one rung at `layer`, with the natural sink present (every key visible):
    the attention of the queries >= W to the designated position 1 and to the sink (position
    0), each a per-window mean over layers layer+1..L-1, against the unedited full pass; capture
    = attention to position 1 edited / unedited (H4-A1's ratio of means), sink_kept = the same
    for position 0, and the NLL rise of the predictions >= W that the edit causes. Intervals:
    ratio_ci / mean_ci over windows. None where the readout did not run."""
    from sinkbench.stats.inference import case_seed, mean_ci, ratio_ci

    key = readout_key(rung, layer)
    if key not in attention or "full" not in attention:
        return None
    keep = [i for i in sorted(attention[key]) if i > layer]
    if not keep:
        return None
    edited = np.mean([attention[key][i] for i in keep], 0)  # [N, 2]
    base = np.mean([attention["full"][i] for i in keep], 0)
    seed = case_seed("H7", "readout", rung, layer, *seed_key)
    rise = nll[key] - nll["full"]
    return {"capture": float(edited[:, 1].mean() / base[:, 1].mean()),
            "capture_ci": list(ratio_ci(edited[:, 1], base[:, 1], seed=seed)),
            "attention_to_designated": float(edited[:, 1].mean()), "attention_to_designated_unedited": float(base[:, 1].mean()),
            "sink_kept": float(edited[:, 0].mean() / base[:, 0].mean()),
            "sink_kept_ci": list(ratio_ci(edited[:, 0], base[:, 0], seed=seed + 1)),
            "attention_to_sink": float(edited[:, 0].mean()), "attention_to_sink_unedited": float(base[:, 0].mean()),
            "nll_rise": float(np.mean(rise)), "nll_rise_ci": list(mean_ci(rise, seed=seed + 2)),
            "layers_read": [keep[0], keep[-1]]}


PROPERTIES = {"attention": "attention", "value_ratio": "value drain", "query_key_cos": "key alignment",
              "residual_ratio": "residual size"}


def profile_comparison(profile: dict, layers, ladder=()) -> dict | None:
    """Per layer l, each profile measure as its mean over layers l+1..L-1 (where a write at l
    can act): the natural sink (position 0 under sink1), the plain control token (position 1
    under control), the designated sink (position 1 under designated_L<l>) and, at the ladder's
    layers, position 1 under each rung 2-5 (by rung name)."""
    from .verdicts import designated_key
    from sinkbench.measure.designate import RUNGS
    from sinkbench.measure.sink_profile import over_layers

    if profile.get("sink1") is None:
        return None
    c = str(CONTROL_POSITION)
    out = {}
    from sinkbench.measure.designate import LEARNED, LEARNED_LAYER

    learned = profile.get(rung_key(LEARNED, LEARNED_LAYER)) is not None
    for l in sorted(set(layers) | set(ladder) | ({LEARNED_LAYER} if learned else set())):
        if l == LEARNED_LAYER:  # rung 6 acts at the input: every layer
            out[str(l)] = {"natural": over_layers(profile["sink1"], 0, 0),
                           "control": over_layers(profile["control"], CONTROL_POSITION, 0),
                           LEARNED: over_layers(profile[rung_key(LEARNED, l)], CONTROL_POSITION, 0)}
            continue
        row = {"natural": over_layers(profile["sink1"], 0, l + 1),
               "control": over_layers(profile["control"], CONTROL_POSITION, l + 1),
               "designated": over_layers(profile[designated_key(l)], CONTROL_POSITION, l + 1),
               "positions": {"natural": 0, "control": int(c), "designated": int(c)}}
        for rung in RUNGS[1:]:
            if profile.get(rung_key(rung, l)) is not None:
                row[rung] = over_layers(profile[rung_key(rung, l)], CONTROL_POSITION, l + 1)
        out[str(l)] = row
    return out


def lacks(row: dict, which: str) -> list[str]:
    """The profile properties the designated position under `which` (a profile_comparison row's
    key) lacks: those where it sits closer to the plain control token than to the natural sink
    (ratios on a log scale). No threshold: a property is lacked when the edit left it nearer to
    an ordinary token's than to the sink's."""
    import math

    out = []
    for m, name in PROPERTIES.items():
        x, nat, ctl = row[which].get(m), row["natural"].get(m), row["control"].get(m)
        if any(v is None or not np.isfinite(v) for v in (x, nat, ctl)):
            continue
        if m in ("value_ratio", "residual_ratio"):
            if min(x, nat, ctl) <= 0:
                continue
            x, nat, ctl = math.log(x), math.log(nat), math.log(ctl)
        if abs(x - ctl) < abs(x - nat):
            out.append(name)
    return out


def h7_grid(sweep, s, unit: dict | None = None) -> dict:
    """H7 on one model: the five regimes, the recompute baseline, the ladder's rungs and the
    upper bounds on the test windows, the verdicts of sinkbench.hypotheses.h7_streaming.verdicts with their stability,
    and what the record needs to read them. unit: the unit's own settings (ladder,
    learned_sink, early_layer; the unit's declared defaults where None)."""
    from . import verdicts as claims_h7
    from sinkbench.measure.designate import LEARNED, RUNGS
    from sinkbench.measure.experiments import as_units, parse_layers
    from sinkbench.measure.sink_profile import supported

    subj = sweep.subject
    w = window_size(s)
    layers = parse_layers(s.layers, subj.n_layers, subj.name)
    from sinkbench.measure.experiments import selection_windows
    unit = {**UNIT_DEFAULTS, **(unit or {})}
    how = unit["ladder"]
    select = selection_windows(subj, s)
    from sinkbench.measure.massive import selection_hidden

    early, early_info = early_layer(subj, select, s.windows_per_pass(subj), s.h6_min_ratio, unit["early_layer"],
                                    hidden=selection_hidden(sweep, s) if unit["early_layer"] < 0 else None)
    ladder = ladder_layers(layers, subj.n_layers, how, early)
    trained = None
    if ladder and learned_on(unit["learned_sink"], subj) and supported(subj):
        from sinkbench.measure.designate import learn_sink_embedding

        trained = learn_sink_embedding(subj, select, regime_mask(subj, s.seq_len, "control", w), w, CONTROL_POSITION)
    test, extra = h7_inputs(subj, sweep.windows, s.windows_per_pass(subj), w, sweep.spectrum, layers, ladder,
                            learned=None if trained is None else trained["vector"], readout=unit["readout"] == "on")
    if test.late:  # the family's cut, chosen on the selection windows (verdicts.upper_bounds)
        test.cut_bound = selection_bounds(subj, select, s.windows_per_pass(subj), w, sorted(test.late))
    units, n_units = as_units(test, subj, s, len(sweep.windows))
    out = claims_h7.verdicts_with_stability(units, s, model=subj.name, n_units=n_units)
    profile = extra["profile"]
    learned = subj.learned_sinks
    ran_ladder = bool(test.ladder)
    comparison = profile_comparison(profile, layers, ladder if ran_ladder else ())
    info = {"window": w, "control_position": CONTROL_POSITION, "read_from_position": w,
            "first_token_is_bos": bool(subj.uses_bos), "model_own_mask": own_mask(subj.model.config),
            "designated_layers": sorted(test.designated), "grid_layers": layers,
            "ladder_layers": ladder if ran_ladder else [], "ladder_setting": how, "early_layer": early_info,
            "reference": "recompute" if test.recompute is not None else "full",
            "designated_write": "add: position 0's band-K component into the control token "
            "(designate.write_dark), at one layer per regime, under the control regime's mask",
            "rungs": list(RUNGS) + ([LEARNED] if trained is not None else []),
            "readout": ("rungs 1-5 at the ladder layers also run with every key visible (the natural sink present): "
                        "attention of the queries >= W to position 1 and 0, over layers l+1..L-1, against the "
                        "unedited full pass (H4-A's capture), and the NLL rise" if extra["attention"] else "off"),
            "learned_sink": None if trained is None else {k: v for k, v in trained.items() if k != "vector"},
            "nll_by_regime": {r: float(np.mean(v)) for r, v in extra_means(test).items()},
            "nll_by_position": extra["nll_by_position"],
            "learned_sinks": bool(learned),
            "learned_sink_mass": {r: (p["learned_sink_mass"] if p is not None else None) for r, p in profile.items()}
            if learned else None,
            "sink_profile": comparison}
    for key, (_, m) in out.items():
        m["regimes"] = info
        if key == "d":
            m["profile_by_regime"] = profile
        if key == "e" and comparison is not None:
            for rung, r in m["rungs"].items():
                which = "designated" if rung == "dark_write" else rung
                r["lacks"] = {str(l): lacks(comparison[str(l)], which) for l in r["layers"]
                              if str(l) in comparison and which in comparison[str(l)]}
                readouts = {str(l): rung_readout(extra["attention"], extra["nll"], rung, l) for l in r["layers"]}
                if any(v is not None for v in readouts.values()):
                    r["readout"] = readouts
            best = (m["rungs"].get(m.get("weakest_passing_rung") or "", {}).get("readout") or {}).get(
                str(m.get("weakest_passing_layer")))
            if best is not None:  # what the working rung does with the natural sink present (H4-A's readout)
                m["answer"] += (f"; with the first token present it draws {best['capture']:.1f}x the attention an "
                                f"unedited token gets, and the first token keeps {best['sink_kept']:.2f} of its own")
    return out


def extra_means(test: H7Test) -> dict:
    """regime name -> per-window array, every regime of an H7Test (designated_L<l>,
    <rung>_L<l>, late_sink_L<l>, recompute)."""
    from .verdicts import designated_key

    out = {r: getattr(test, r) for r in REGIMES}
    if test.recompute is not None:
        out["recompute"] = test.recompute
    out.update({designated_key(l): d for l, d in test.designated.items()})
    out.update({f"{r}_L{l}": d for (r, l), d in test.ladder.items()})
    out.update({late_key(l): d for l, d in test.late.items()})
    return out
