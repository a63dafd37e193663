"""H7's figure (docs/methods.md §11): the StreamingLLM curve (mean NLL by position under each
attention regime) and the recovered shares with their 95% intervals, from one H7 record's
metrics (any claim's: each carries `regimes` and `recovered_shares`)."""
from __future__ import annotations

import io

COLORS = {"full": "k", "window": "C3", "sink1": "C0", "sink4": "C9", "control": "C7", "recompute": "C2"}
RUNGS = ("dark_write", "dark_kept", "value_drain", "kv_transplant", "state_copy")  # sinkbench.measure.designate.RUNGS


def draw_h7(plt, metrics: dict, model: str = ""):
    """(figure, title): left, mean NLL of the prediction made at each position per regime
    (the window's edge W dashed; NLL is read from there on); right, each kept-token regime's
    share of the eviction gap it recovers, with its interval (designated_L<l>: the control token
    given H4's dark write at layer l; the dotted lines are h7_min_recovered and 0 and 1)."""
    regimes = metrics["regimes"]
    by_pos = regimes["nll_by_position"]
    w = regimes["window"]
    ladder = regimes.get("ladder_layers") or []
    fig, axes = plt.subplots(1, 3 if ladder else 2, figsize=(16 if ladder else 11, 4.0),
                             gridspec_kw={"width_ratios": [1.6, 1, 1.2] if ladder else [1.6, 1]})
    left, right = axes[0], axes[1]
    layer_of = lambda r: int(r.split("_L")[1].split("_")[0])  # noqa: E731
    designated = sorted((r for r in by_pos if r.startswith("designated")), key=layer_of)
    for j, r in enumerate([*COLORS, *designated]):
        if r in by_pos:
            ys = by_pos[r]
            color = COLORS.get(r, f"C{(j + 1) % 10}")
            left.plot(range(len(ys)), ys, lw=1.0 if r in ("full", "window") else 0.8, color=color,
                      ls="--" if r.startswith("designated") else "-", label=r)
    # the first predictions (no context yet) can be far above the rest: the axis shows positions >= 2
    left.set_ylim(top=1.05 * max(max(v[2:], default=v[-1]) for v in by_pos.values()))
    left.axvline(w, color="#888", ls="--", lw=0.8)
    left.text(w, left.get_ylim()[1], f" W = {w}", fontsize=7, va="top", color="#555")
    left.set_xlabel("position of the prediction", fontsize=8)
    left.set_ylabel("mean NLL (nats)", fontsize=8)
    left.legend(fontsize=7, ncol=2)
    left.grid(alpha=0.25)
    shares = metrics.get("recovered_shares", {})
    names = [r for r in COLORS if r in shares] + sorted((r for r in shares if r.startswith("designated")
                                                         and not r.endswith("_of_sink1")), key=layer_of)
    for y, r in enumerate(names):
        s, (lo, hi) = shares[r]
        right.errorbar([s], [y], xerr=[[max(s - lo, 0)], [max(hi - s, 0)]] if lo == lo and hi == hi else None,
                       fmt="o", color=COLORS.get(r, "C1"), ms=5, capsize=3)
    right.set_yticks(range(len(names)), names, fontsize=7)
    for x, ls in ((0, ":"), (1, ":"), (metrics.get("min_recovered", 0.5), "--")):
        right.axvline(x, color="#888", ls=ls, lw=0.8)
    right.set_xlabel(f"share of NLL(window) - NLL({regimes.get('reference', 'full')}) recovered (95% interval)", fontsize=8)
    right.invert_yaxis()
    right.grid(alpha=0.25)
    if ladder:
        draw_ladder(axes[2], metrics, ladder)
    for ax in axes:
        ax.tick_params(labelsize=7)
    nll = regimes["nll_by_regime"]
    title = (f"{model + ': ' if model else ''}H7, attention regimes (W = {w}, read from position {regimes['read_from_position']};"
             f" NLL full {nll['full']:.3f}, window {nll['window']:.3f}, sink1 {nll['sink1']:.3f})")
    return fig, title


def draw_ladder(ax, metrics: dict, layers) -> None:
    """The designation ladder: rungs on x (weakest first), each rung's recovery as a share of the
    first token's with its 95% interval on y, one line per ladder layer; the layer's upper bound
    (the first token visible only after it) as a dashed line of the same colour; h7_min_designated
    dashed grey, 0 and 1 dotted."""
    shares = metrics.get("recovered_shares", {})
    for j, layer in enumerate(layers):
        xs, ys, lo, hi = [], [], [], []
        for x, rung in enumerate(RUNGS):
            key = (f"designated_L{layer}" if rung == "dark_write" else f"{rung}_L{layer}") + "_of_sink1"
            if key in shares:
                s, (a, b) = shares[key]
                xs.append(x + 0.06 * (j - (len(layers) - 1) / 2))
                ys.append(s)
                lo.append(max(s - a, 0) if a == a else 0)
                hi.append(max(b - s, 0) if b == b else 0)
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o-", color=f"C{j}", ms=4, capsize=3, lw=1, label=f"layer {layer}")
        bound = shares.get(f"late_sink_L{layer}_of_sink1")
        if bound is not None and bound[0] == bound[0]:
            ax.axhline(bound[0], color=f"C{j}", ls="--", lw=0.8)
    names = list(RUNGS)
    learned = shares.get("learned_sink_L-1_of_sink1")
    if learned is not None:  # rung 6 acts at the input, not at a layer: one point
        s, (a, b) = learned
        ax.errorbar([len(RUNGS)], [s], yerr=[[max(s - a, 0) if a == a else 0], [max(b - s, 0) if b == b else 0]],
                    fmt="s", color="k", ms=5, capsize=3, label="input (learned)")
        names.append("learned_sink")
    for y, ls in ((0, ":"), (1, ":"), (metrics.get("min_designated", 0.5), "--")):
        ax.axhline(y, color="#888", ls=ls, lw=0.8)
    ax.set_xticks(range(len(names)), [f"{i + 1} {r}" for i, r in enumerate(names)], fontsize=7, rotation=20)
    ax.set_ylabel("share of the first token's recovery (95% interval)", fontsize=8)
    lo_y, hi_y = ax.get_ylim()
    ax.set_ylim(max(lo_y, -1.5), min(hi_y, 2.5))
    ax.legend(fontsize=7)
    ax.grid(alpha=0.25)
    answer = metrics.get("answer")
    ax.set_title(("ladder: " + answer) if answer else "the designation ladder", fontsize=7, wrap=True)


def ladder_point(metrics: dict, rung: str, layer: int) -> tuple[float, float, float] | None:
    """(share of sink1's recovery, low, high) of one rung at one layer, from (e)'s metrics."""
    key = (f"designated_L{layer}" if rung == "dark_write" else f"{rung}_L{layer}") + "_of_sink1"
    got = metrics.get("recovered_shares", {}).get(key)
    return None if got is None else (got[0], *got[1])


def draw_ladder_across(plt, metrics_by_model: dict[str, dict]):
    """(figure, title) over models: left, each rung's recovery as a share of the first token's at
    the model's early ladder layer (its positive control's layer), 95% intervals, one line per
    model; right, the profile beside it: position 1's value ratio under each rung at the same
    layer, over the natural sink's (1 = the sink's value drain; the plain control token's ratio
    as the model's dotted line), log scale."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1.3, 1]})
    for j, (model, m) in enumerate(sorted(metrics_by_model.items())):
        layer = (m.get("positive_control") or {}).get("layer")
        if layer is None:
            continue
        color = f"C{j % 10}"
        pts = [(x, ladder_point(m, r, layer)) for x, r in enumerate(RUNGS)]
        pts = [(x + 0.05 * (j - (len(metrics_by_model) - 1) / 2), p) for x, p in pts if p is not None]
        ys = [p[0] for _, p in pts]
        err = [[max(p[0] - p[1], 0) if p[1] == p[1] else 0 for _, p in pts],
               [max(p[2] - p[0], 0) if p[2] == p[2] else 0 for _, p in pts]]
        left.errorbar([x for x, _ in pts], ys, yerr=err, fmt="o-", color=color, ms=4, capsize=3, lw=1,
                      label=f"{model} (layer {layer})")
        row = ((m.get("regimes") or {}).get("sink_profile") or {}).get(str(layer)) or {}
        natural = (row.get("natural") or {}).get("value_ratio")
        if natural:
            vals = [((row.get("designated" if r == "dark_write" else r) or {}).get("value_ratio"), x) for x, r in enumerate(RUNGS)]
            vals = [(v / natural, x) for v, x in vals if v is not None and v > 0]
            right.plot([x for _, x in vals], [v for v, _ in vals], "o-", color=color, ms=4, lw=1, label=model)
            control = (row.get("control") or {}).get("value_ratio")
            if control:
                right.axhline(control / natural, color=color, ls=":", lw=0.8)
    for y, ls in ((0, ":"), (1, ":"), (0.5, "--")):
        left.axhline(y, color="#888", ls=ls, lw=0.8)
    for ax in (left, right):
        ax.set_xticks(range(len(RUNGS)), [f"{i + 1} {r}" for i, r in enumerate(RUNGS)], fontsize=7, rotation=20)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
        ax.legend(fontsize=7)
    lo_y, hi_y = left.get_ylim()
    left.set_ylim(max(lo_y, -1.5), min(hi_y, 1.5))
    left.set_ylabel("share of the first token's recovery (95% interval)", fontsize=8)
    right.set_yscale("log")
    right.axhline(1, color="#888", ls="--", lw=0.8)
    right.set_ylabel("position 1's value ratio / the sink's (dotted: plain token)", fontsize=8)
    return fig, "H7 across models: the designation ladder at each model's early layer, and the value drain each rung gives"


def h7_figure(plt, metrics: dict, model: str = "") -> tuple[str, bytes]:
    """(title, PNG bytes) of draw_h7, the convention of report.py's figures."""
    fig, title = draw_h7(plt, metrics, model)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return title, buf.getvalue()
