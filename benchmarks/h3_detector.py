"""H3's sink detector, measured: per-position false-flag rates and claim 4's false-pass rate
(docs/calibration.md, "H3's sink detector").

  python benchmarks/h3_detector.py synthetic [--trials 50]
  python benchmarks/h3_detector.py model tiny-bb-bos [--seq-len 64] [--null-perms 200]

* synthetic: attention with one sink head plus three recency heads (exp(-0.1 distance))
  and no secondary sink (sinkbench.hypotheses.h3_distributed.synthetic): every flag at a position >= 1 is false.
  The uniform-head rule it replaced is measured beside it on the same maps.
* model: the default H3 measurement (selection windows fix the detector, test windows are
  measured) per BOS condition: flag rates per tenth of the window (new rule and the
  uniform-head rule), claim 4's verdict; then two within-window nulls on the same model:
  test windows with their tokens shuffled within the window (position 0 kept; a flag that
  follows position rather than the token shows up in the same tenth), and the permutation
  nulls of claims 1-3 (frequent labels, dark ratio, profile cosine permuted within windows),
  each a raw-p false-pass rate at alpha.
Writes JSON to --out (default benchmarks/out/h3_detector_<part>.json) and prints it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sinkbench.hypotheses.h3_distributed import h3_raw, h3_verdicts  # noqa: E402
from sinkbench.measure.config import make_settings  # noqa: E402
from sinkbench.hypotheses.h3_distributed.measurement import SinkRule, position_histogram  # noqa: E402


def claim4_passes(table, alpha: float, permutations: int = 100) -> tuple[bool, float]:
    r = h3_raw(table, permutations=permutations)
    v = h3_verdicts({"x": r}, alpha=alpha, n_boot=50)["x", "4"]
    return v[0], float(r["4"][0])


def synthetic(args) -> dict:
    from dataclasses import replace

    from sinkbench.hypotheses.h3_distributed import synthetic as hs

    s = make_settings(ROOT)
    rule = SinkRule.from_settings(s)
    new_pos, old_pos, new_pass, old_pass, chose_secondary, score_gap = [], [], 0, 0, 0, []
    drift_pass = {d: [0, 0] for d in DRIFTS}
    for trial in range(args.trials):
        det, table = hs.run({"recency": "recency", "sink_only": "sink_only"}, rule, seed=1000 * trial,
                            n_select=s.n_select, n_test=s.n_seqs, t=s.seq_len, decay=args.decay)
        score_gap.append(det.layer_scores["recency"] / det.layer_scores["sink_only"])
        three, _ = hs.run({"recency": "recency", "sink_only": "sink_only", "secondary": "secondary"}, rule,
                          seed=1000 * trial + 7, n_select=s.n_select, n_test=2, t=s.seq_len, decay=args.decay)
        chose_secondary += three.active_layers == ["secondary"]
        rates = hs.flag_rates(table, rule, s.h3_position_bins)
        new_pos.append(rates["new_per_position"])
        old_pos.append(rates["old_per_position"])
        new_pass += claim4_passes(table, s.alpha)[0]
        old = replace(table, sink_like=rule.flags(table.uniform_ratio, table.cv))
        old_pass += claim4_passes(old, s.alpha)[0]
        for drift in DRIFTS:
            new2, old2 = claim2_under_drift(table, drift, np.random.default_rng(trial), s)
            drift_pass[drift][0] += new2 < s.alpha
            drift_pass[drift][1] += old2 < s.alpha
    new_pos, old_pos = np.mean(new_pos, 0), np.mean(old_pos, 0)
    return {"trials": args.trials, "windows": s.n_seqs, "select": s.n_select, "seq_len": s.seq_len, "rule": rule.record(),
            "new_flag_rate_max": float(new_pos.max()), "new_flag_rate_mean": float(new_pos.mean()),
            "new_flag_rate_argmax_position": int(new_pos.argmax()) + 1,
            "old_flag_rate_max": float(old_pos.max()), "old_flag_rate_mean": float(old_pos.mean()),
            "old_flagged_positions": (np.flatnonzero(old_pos > 0.01) + 1).tolist(),
            "new_by_tenth": tenths(new_pos, s.seq_len), "old_by_tenth": tenths(old_pos, s.seq_len),
            "claim4_false_pass_new": new_pass / args.trials, "claim4_false_pass_old": old_pass / args.trials,
            "decay": args.decay, "score_recency_over_sink_only_mean": float(np.mean(score_gap)),
            "secondary_layer_chosen_share": chose_secondary / args.trials,
            "claim2_false_pass_under_drift": {str(d): {"new": n / args.trials, "old": o / args.trials}
                                              for d, (n, o) in drift_pass.items()}}


DRIFTS = (0.1, 0.2)  # dark ratio's drift with position, in SD per SD of position (the review's nulls)


def claim2_under_drift(table, drift: float, rng, s) -> tuple[float, float]:
    """Claim 2's raw p when the dark ratio is unrelated to attention but drifts with position:
    the within-bin test on the new ratio, and the old statistic (Wilcoxon of within-window
    Spearman coefficients of the uniform-head ratio)."""
    from dataclasses import replace

    from scipy import stats

    n, p = table.bar_ratio.shape
    pos = np.arange(p)
    dark = drift * (pos - pos.mean()) / pos.std() + rng.standard_normal((n, p))
    new = h3_raw(replace(table, dark_ratio=dark), position_bins=s.h3_position_bins, permutations=500)["2"][0]
    rhos = [stats.spearmanr(u, d)[0] for u, d in zip(table.uniform_ratio, dark)]
    return new, float(stats.wilcoxon(rhos, alternative="greater").pvalue)


def tenths(per_position: np.ndarray, seq_len: int) -> list:
    """Mean per-position flag rate within each tenth of the window (positions 1..P)."""
    which = np.arange(1, per_position.size + 1) * 10 // seq_len
    return [round(float(per_position[which == b].mean()), 4) if (which == b).any() else None for b in range(10)]


def shuffled(windows: torch.Tensor, seed: int) -> torch.Tensor:
    """Each window's tokens after position 0 shuffled within the window."""
    g = torch.Generator().manual_seed(seed)
    out = windows.clone()
    for w in range(len(out)):
        out[w, 1:] = out[w, 1:][torch.randperm(out.shape[1] - 1, generator=g)]
    return out


def permutation_nulls(table, perms: int, alpha: float, inner: int, seed: int = 0) -> dict:
    """Raw-p false-pass rates of claims 1-3 when their per-position field is permuted within windows."""
    from dataclasses import replace

    rng = np.random.default_rng(seed)
    fields = {"1": "frequent", "2": "dark_ratio", "3": "profile_cos"}
    out = {}
    for claim, name in fields.items():
        hits = 0
        for _ in range(perms):
            t = replace(table, **{name: rng.permuted(getattr(table, name), axis=1)})
            hits += h3_raw(t, permutations=inner, seed=int(rng.integers(1 << 30)))[claim][0] < alpha
        out[claim] = {"field": name, "false_pass": hits / perms, "perms": perms}
    return out


def model(args) -> dict:
    from sinkbench.model.access import load_subject
    from sinkbench.measure.data import text_tokens, windows_for
    from sinkbench.hypotheses.h3_distributed.measurement import calibrate_detector, measure_positions
    from sinkbench.measure.experiments import selection_windows
    from sinkbench.hypotheses.h3_distributed import h3_conditions
    from sinkbench.measure.spectrum import spectrum_for

    over = {k: v for k, v in {"seq_len": args.seq_len, "n_seqs": args.n_seqs}.items() if v}
    s = make_settings(ROOT, **over)
    rule = SinkRule.from_settings(s)
    subject = load_subject(args.model)
    sp = spectrum_for(subject, s.n_bands, s.basis)
    counts = Counter(text_tokens(subject, s.dataset))
    batch = s.windows_per_pass(subject)
    out = {"model": args.model, "seq_len": s.seq_len, "windows": s.n_seqs, "select": s.n_select, "rule": rule.record()}
    for cond in h3_conditions(subject):
        t0 = time.time()
        bos = cond == "bos"
        windows = windows_for(subject, s.dataset, s.seq_len, s.n_seqs, bos=bos, layout=s.windows)
        det = calibrate_detector(subject, selection_windows(subject, s, bos=bos), batch, rule)
        table = measure_positions(subject, windows, sp, counts, batch, det)
        old = rule.flags(table.uniform_ratio, table.cv)
        raw = h3_raw(table, position_bins=s.h3_position_bins)
        verdicts = h3_verdicts({cond: raw}, alpha=s.alpha, n_boot=200)
        shuf = measure_positions(subject, shuffled(windows, 0), sp, counts, batch, det)
        ratio_by_tenth = [round(float(np.median(table.bar_ratio[:, w])), 3) if w.any() else None
                          for w in [np.arange(1, table.bar_ratio.shape[1] + 1) * 10 // s.seq_len == b for b in range(10)]]
        old_ratio_by_tenth = [round(float(np.median(table.uniform_ratio[:, w])), 3) if w.any() else None
                              for w in [np.arange(1, table.bar_ratio.shape[1] + 1) * 10 // s.seq_len == b for b in range(10)]]
        out[cond] = {
            "active_layers": det.active_layers,
            "layer_scores": {int(k): round(v, 3) for k, v in sorted(det.layer_scores.items())},
            "position0_sink_like": float(table.position0_sink_like.mean()),
            "flags_per_window_new": float(table.sink_like.sum(1).mean()), "flags_per_window_old": float(old.sum(1).mean()),
            "flag_rate_max_new": float(table.sink_like.mean(0).max()), "flag_rate_max_old": float(old.mean(0).max()),
            "new_by_tenth": tenths(table.sink_like.mean(0), s.seq_len), "old_by_tenth": tenths(old.mean(0), s.seq_len),
            "median_ratio_by_tenth_new": ratio_by_tenth, "median_ratio_by_tenth_old": old_ratio_by_tenth,
            "histogram": position_histogram(table.sink_like, s.seq_len, s.h3_position_bins),
            "shuffled_by_tenth": tenths(shuf.sink_like.mean(0), s.seq_len),
            "shuffled_flags_per_window": float(shuf.sink_like.sum(1).mean()),
            "top_tokens": [[subject.tokenizer.convert_ids_to_tokens(int(t)), c]
                           for t, c in Counter(table.tokens[table.sink_like].tolist()).most_common(8)],
            "claims": {c: {"passed": verdicts[cond, c][0], "p_raw": float(raw[c][0]),
                           "effect": float(raw[c][1]["effect"]), "n_windows": raw[c][1]["n_windows"]} for c in "1234"},
            "null": permutation_nulls(table, args.null_perms, s.alpha, inner=200),
            "seconds": round(time.time() - t0, 1),
        }
        print(cond, json.dumps(out[cond]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("part", choices=["synthetic", "model"])
    ap.add_argument("model", nargs="?")
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--seq-len", type=int)
    ap.add_argument("--n-seqs", type=int)
    ap.add_argument("--null-perms", type=int, default=200)
    ap.add_argument("--decay", type=float, default=0.1, help="synthetic: recency heads' attention ~ exp(-decay distance)")
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(1)
    res = synthetic(args) if args.part == "synthetic" else model(args)
    name = f"synthetic_decay{args.decay}" if args.part == "synthetic" else args.model.replace("/", "_")
    path = Path(args.out or ROOT / "benchmarks" / "out" / f"h3_detector_{name}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1, default=str))
    print(json.dumps(res, default=str))


if __name__ == "__main__":
    main()
