"""Calibration on real models: run the verdict functions where the claim is false by
construction, and count how often they pass anyway.

    python benchmarks/calibrate_zoo.py                      # tiny-bb-bos, every part (~1-2 min)
    python benchmarks/calibrate_zoo.py --model smollm2-135m --parts h1,h3 --subspaces 12 --seq-len 128
    python benchmarks/calibrate_zoo.py --json out.json      # also save the numbers

Nulls (docs/calibration.md says why each is a null):

* H1 random-vs-random: a random subspace of the dark band's dimension (seeds 2000+) takes
  the place of band K in H1(a); every other input is the real one (default random controls
  1000-1002, the middle band, the sink edit and sink masses). Counted: how often claim (a)
  passes, and how often its comparison with the random controls alone is significant
  (p_vs_random < alpha after Holm), which is the test the null is aimed at (min_delta
  often fails such a subspace on its own). Two designs: every subspace against the
  default controls (correlated through the shared controls), and disjoint groups of four
  fresh subspaces, one as "dark" and three as controls (independent trials).
* H3 within-window permutations of the measured PositionTable, 1000 each: claim 1 with the
  frequent-token mask permuted, claim 2 with the dark ratio permuted, claim 3 with the
  band-profile cosine permuted (each within every window, every BOS condition at once);
  the other claims keep their real values. Claim 4 has no label to permute (simulated only).
* H4-A with the control write in place of the dark write: A1 with a control write as the
  "add" edit, A2 with one control write as "dark" against another, A3 with "transplant"
  replaced by the dark tail removed at 0 plus a control write at t.

Prints a table and, unless --no-docs, writes it between the markers in docs/calibration.md.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sinkbench.stats.nulls import exact_fast_stats  # noqa: E402
from sinkbench.hypotheses.h1_dark_tail import H1Inputs, h1_verdicts  # noqa: E402
from sinkbench.hypotheses.h3_distributed import h3_raw, h3_verdicts  # noqa: E402
from sinkbench.hypotheses.h4a_designated_write import h4a_raw, h4a_verdicts  # noqa: E402
from sinkbench.measure.config import make_settings  # noqa: E402

DOC = ROOT / "docs" / "calibration.md"
BEGIN, END = "<!-- real-calibration:begin -->", "<!-- real-calibration:end -->"


def rate_row(part, null, passes, trials, note=""):
    r = passes / trials if trials else float("nan")
    se = math.sqrt(r * (1 - r) / trials) if trials else float("nan")
    return dict(part=part, null=null, passes=int(passes), trials=int(trials), rate=r, se=se, note=note)


# --------------------------------------------------------------------------- H1
def h1_null(subject, s, windows, spectrum, layers, n_subspaces, out):
    from sinkbench.measure.sweep import FilterSweep

    sweep = FilterSweep(subject, windows, spectrum, s.windows_per_pass(subject), s.random_seeds, layers=layers)
    base = sweep.base()
    rows, extra = [], {}
    for layer in layers:
        dark_sink = sweep.get(layer, "dark_sink")
        common = dict(base=base.nll, random=sweep.random_mean_nll(layer), middle=sweep.get(layer, "middle").nll,
                      random_each=np.stack([sweep.get(layer, f"random{q}").nll for q in sweep.seeds]),
                      base_rest=base.nll_rest, dark_sink=dark_sink.nll, dark_sink_rest=dark_sink.nll_rest,
                      sink_mass_base=base.post_filter_sink_mass(layer),
                      sink_mass_dark_sink=dark_sink.post_filter_sink_mass(layer))
        subs = [sweep.get(layer, f"random{2000 + i}") for i in range(n_subspaces)]
        kw = dict(alpha=s.alpha, min_delta=s.h1_min_delta, min_sink_drop=s.h1_min_sink_drop, n_boot=200)
        a = sig = sub = log = 0
        for m in subs:  # design 1: each subspace as "dark" against the default controls
            x = H1Inputs(dark_all=m.nll, dark_all_rest=m.nll_rest, **common)
            v = h1_verdicts({layer: x}, **kw)[layer][1]
            a += v["claim_a"]
            sig += v["p_vs_random"] < s.alpha
            sub += v.get("p_vs_random_subspaces", 1.0) < s.alpha
            log += v.get("p_vs_random_subspaces_log_raw", 1.0) < s.alpha
        design = "random subspace as dark, default controls"
        rows.append(rate_row(f"H1a layer {layer}", design, a, len(subs), "claim (a)"))
        rows.append(rate_row(f"H1a layer {layer}", design, sig, len(subs), "p_vs_random < alpha (paired, Holm)"))
        rows.append(rate_row(f"H1a layer {layer}", design, sub, len(subs), "subspace test < alpha (linear, Holm; read)"))
        rows.append(rate_row(f"H1a layer {layer}", design, log, len(subs), "subspace test < alpha (log scale, raw; recorded)"))
        a2 = sig2 = sub2 = log2 = groups = 0
        for g in range(0, n_subspaces - 3, 4):  # design 2: disjoint groups of four
            dark, ctrl = subs[g], subs[g + 1:g + 4]
            x = H1Inputs(**dict(common, dark_all=dark.nll, dark_all_rest=dark.nll_rest,
                                random=np.mean([c.nll for c in ctrl], 0), random_each=np.stack([c.nll for c in ctrl])))
            v = h1_verdicts({layer: x}, **kw)[layer][1]
            a2 += v["claim_a"]
            sig2 += v["p_vs_random"] < s.alpha
            sub2 += v.get("p_vs_random_subspaces", 1.0) < s.alpha
            log2 += v.get("p_vs_random_subspaces_log_raw", 1.0) < s.alpha
            groups += 1
        design = "random vs 3 fresh random subspaces"
        rows.append(rate_row(f"H1a layer {layer}", design, a2, groups, "claim (a)"))
        rows.append(rate_row(f"H1a layer {layer}", design, sig2, groups, "p_vs_random < alpha (paired, Holm)"))
        rows.append(rate_row(f"H1a layer {layer}", design, sub2, groups, "subspace test < alpha (linear, Holm; read)"))
        rows.append(rate_row(f"H1a layer {layer}", design, log2, groups, "subspace test < alpha (log scale, raw; recorded)"))
        # the between-subspace spread that makes such comparisons significant
        deltas = np.array([m.nll - base.nll for m in subs])  # [S, N]
        per_sub = deltas.mean(1)
        diff_sd = float(np.std(deltas[1:] - deltas[:-1], axis=1, ddof=1).mean() / math.sqrt(2))
        extra[layer] = {"random_delta_mean": float(per_sub.mean()), "between_subspace_sd": float(per_sub.std(ddof=1)),
                        "tau": float(per_sub.std(ddof=1) / per_sub.mean()) if per_sub.mean() > 0 else float("nan"),
                        "within_window_sd_of_one_subspace_vs_another": diff_sd,
                        "window_sd_of_delta": float(deltas.std(1, ddof=1).mean()),
                        "dark_all_delta": float((sweep.get(layer, "dark_all").nll - base.nll).mean()),
                        "dark_minus_random_sd": float(np.std(sweep.get(layer, "dark_all").nll - common["random"], ddof=1)),
                        "n_subspaces": n_subspaces}
    out["h1"] = {"rows": rows, "spread": extra}
    return rows


# --------------------------------------------------------------------------- H2b (shape only)
def h2_shape(subject, s, windows, spectrum, layers, out):
    """Not a null: the per-window distribution of H2b's NLL rise (Omega_k at the frontier),
    whose skew decides how well a Wilcoxon and a percentile bootstrap of 16 windows
    calibrate H2b at its tolerance."""
    from scipy.stats import skew
    from sinkbench.hypotheses.h2_middle import frontier_k
    from sinkbench.hypotheses.h2_middle import omega_deleted_share
    from sinkbench.measure.sweep import FilterSweep

    sweep = FilterSweep(subject, windows, spectrum, s.windows_per_pass(subject), s.random_seeds, layers=layers)
    base = sweep.base()
    k_b = frontier_k({k: omega_deleted_share(spectrum, k) for k in range(1, s.n_bands - 1)}, s.h2_min_frontier)
    shape = {}
    for layer in layers:
        rise = sweep.get(layer, f"omega{k_b}").nll - base.nll
        shape[layer] = {"k": k_b, "mean": float(rise.mean()), "sd": float(rise.std(ddof=1)),
                        "cv": float(rise.std(ddof=1) / rise.mean()) if rise.mean() > 0 else float("nan"),
                        "skewness": float(skew(rise)), "per_window": np.round(rise, 4).tolist()}
    out["h2"] = {"shape": shape}
    return []


# --------------------------------------------------------------------------- effect sizes
def real_effects(subject, s, windows, spectrum, layers, out):
    """Not a null: the model's own H2 (a and b), H4-B (a designated-sink zoo model) and H5
    verdict metrics, through sinkbench.measure.experiments, for the power table's effect sizes."""
    from sinkbench.hypotheses.h2_middle import h2_grid
    from sinkbench.hypotheses.h4b_designated_training import h4b_grid
    from sinkbench.hypotheses.h5_sink_writer import h5_grid
    from sinkbench.measure.sweep import FilterSweep, resolve_ks

    sweep = FilterSweep(subject, windows, spectrum, s.windows_per_pass(subject), s.random_seeds, layers=layers)
    keep = lambda m: {k: v for k, v in m.items() if isinstance(v, (int, float, list, tuple, type(None))) and k != "per_window"}
    eff = {"H2": {f"{k[0]}/{k[1]}": {"passed": p, **keep(m)}
                  for k, (p, m) in h2_grid(sweep, layers, resolve_ks(s.h2_ks, s.n_bands), s, frontier=False).items()}}
    if subject.meta.get("zoo", {}).get("evaluation", {}).get("designated_sink") is not None:
        eff["H4B"] = {f"{k[0]}/{k[1]}": {"passed": p, **keep(m)} for k, (p, m) in h4b_grid(sweep, layers, s).items()}
    eff["H5"] = {c: {"passed": p, **{k: v for k, v in keep(m).items()}, **({"p_values": m["p_values"]} if "p_values" in m else {})}
                 for c, (p, m) in h5_grid(sweep, s, s.h5_min_share, 0).items()}
    out["effects"] = eff
    return []


# --------------------------------------------------------------------------- H3
def h3_null(subject, s, spectrum, perms, out, seed=0):
    from collections import Counter

    from scipy.stats import skew

    from sinkbench.measure.data import text_tokens, windows_for
    from sinkbench.hypotheses.h3_distributed.measurement import SinkRule, calibrate_detector, measure_positions
    from sinkbench.measure.experiments import selection_windows
    from sinkbench.hypotheses.h3_distributed import h3_conditions

    counts = Counter(text_tokens(subject, s.dataset))
    batch = s.windows_per_pass(subject)
    rule = SinkRule.from_settings(s)
    tables = {}
    for cond in h3_conditions(subject):  # as h3_grid measures them: detector on selection windows
        bos = cond == "bos"
        w = windows_for(subject, s.dataset, s.seq_len, s.n_seqs, bos=bos, layout=s.windows)
        detector = calibrate_detector(subject, selection_windows(subject, s, bos=bos), batch, rule)
        tables[cond] = measure_positions(subject, w, spectrum, counts, batch, detector)
    raw_of = lambda t, c: h3_raw(t, position_bins=s.h3_position_bins, seed=c)  # noqa: E731  (h3_grid's call)
    real = {c: raw_of(t, c) for c, t in tables.items()}
    rng = np.random.default_rng(seed)
    rows, desc = [], {}
    fields = {"1": "frequent", "2": "dark_ratio", "3": "profile_cos"}
    for claim, name in fields.items():
        hits = {c: 0 for c in tables}
        any_hits = 0
        for _ in range(perms):
            raws = {}
            for c, t in tables.items():
                saved = getattr(t, name)
                setattr(t, name, rng.permuted(saved, axis=1))
                raws[c] = dict(real[c], **{claim: raw_of(t, c)[claim]})
                setattr(t, name, saved)
            res = h3_verdicts(raws, alpha=s.alpha, n_boot=50)
            passed = [res[c, claim][0] for c in tables]
            for c, p in zip(tables, passed):
                hits[c] += p
            any_hits += any(passed)
        for c in tables:
            m = real[c][claim][1]
            rows.append(rate_row(f"H3 claim {claim} ({c})", f"{name} permuted within windows", hits[c], perms,
                                 f"{m.get('n_informative', m['n_windows'])} windows informative"
                                 + (" (not testable)" if m.get("not_testable") else "")))
        rows.append(rate_row(f"H3 claim {claim} (any condition)", f"{name} permuted within windows", any_hits, perms))
    for c, t in tables.items():
        n_sink = t.sink_like.sum(1)
        counts_ = n_sink + t.position0_sink_like.astype(int)
        desc[c] = {"frequent_rate": float(t.frequent.mean()), "frequent_rate_window_sd": float(t.frequent.mean(1).std()),
                   "sink_like_per_window": n_sink.tolist(), "position0_sink_like": float(t.position0_sink_like.mean()),
                   "share_windows_ge2": float((counts_ >= 2).mean()), "positions": int(t.sink_like.shape[1]),
                   "cos_mean": float(t.profile_cos.mean()), "cos_sd": float(t.profile_cos.std()),
                   "cos_within_window_sd": float(t.profile_cos.std(1).mean()),
                   "cos_within_window_skewness": float(np.mean(skew(t.profile_cos, axis=1))),
                   "cos_quantiles": np.round(np.quantile(t.profile_cos - t.profile_cos.mean(1, keepdims=True),
                                                         [0.01, 0.1, 0.5, 0.9, 0.99]), 4).tolist(),
                   "real_p": {k: float(v[0]) for k, v in real[c].items()},
                   "real_effect": {k: float(v[1]["effect"]) for k, v in real[c].items()}}
    out["h3"] = {"rows": rows, "tables": desc}
    return rows


# --------------------------------------------------------------------------- H4
def control_transplant(h, rows, *, targets, dark, control_dirs):
    """The dark tail removed at 0 and a same-norm control write (non-dark bands) added at t."""
    from sinkbench.measure.designate import write_dark

    out = write_dark(h, rows, targets=targets, dark=dark, mode="control", control_dirs=control_dirs)
    v = (h[:, 0].float() @ dark).to(h.dtype)
    out[:, 0] -= v
    return out


def run_control_transplant(subject, windows, spectrum, layer, targets, batch, seed, prefix):
    from sinkbench.measure.designate import WriteResult, target_readout
    from sinkbench.measure.interventions import Edit, run_batched
    from sinkbench.model.tensors import to_numpy

    dark = spectrum.keep([spectrum.n_bands])
    g = torch.Generator().manual_seed(seed)
    light = spectrum.band_vectors(list(range(1, spectrum.n_bands))).cpu()
    c = torch.randn(len(windows), light.shape[1], generator=g) @ light.T
    control = (c / c.norm(dim=-1, keepdim=True)).to(spectrum.basis)
    edit = Edit(layer, partial(control_transplant, targets=targets, dark=dark, control_dirs=control))
    res = run_batched(subject, windows, batch, edit=edit, prefix=prefix, attn_layers=range(layer + 1, subject.n_layers),
                      attn_readout=partial(target_readout, targets=targets))
    att = to_numpy(torch.stack([res.attention[i] for i in range(layer + 1, subject.n_layers)]).mean(0))
    pos = torch.arange(windows.shape[1] - 1)
    after = (pos[None] > targets[:, None]).float()
    nll_after = to_numpy((res.token_nll * after).sum(1) / after.sum(1).clamp_min(1))
    return WriteResult(att[:, 0], att[:, 1], nll_after)


def h4_null(subject, s, windows, spectrum, layers, n_controls, out):
    from collections import Counter

    from sinkbench.measure.data import text_tokens
    from sinkbench.measure.designate import TARGET_KINDS, choose_targets, run_write
    from sinkbench.measure.data import frequent_mask
    from sinkbench.measure.sweep import FilterSweep
    from sinkbench.model.tensors import to_numpy

    batch = s.windows_per_pass(subject)
    sweep = FilterSweep(subject, windows, spectrum, batch, s.random_seeds, layers=layers)
    sweep.base()
    freq = frequent_mask(subject.tokenizer, to_numpy(windows), Counter(text_tokens(subject, s.dataset)))
    hits = {"A1": 0, "A2": 0, "A3": 0}
    sig = {"A1": 0, "A2": 0, "A3": 0}
    trials = {"A1": 0, "A2": 0, "A3": 0}
    real = {}
    for layer in layers:
        prefix = sweep.base_hidden.get(layer)
        for kind in TARGET_KINDS:
            targets = choose_targets(windows, kind, freq)
            w = {m: run_write(subject, windows, spectrum, layer, targets, m, batch, prefix=prefix)
                 for m in ("base", "add", "transplant", "control", "broken")}
            real[layer, kind] = h4a_verdicts({(layer, kind): h4a_raw(w, s.h4_rho, 200, s.h4_min_recovered)}, alpha=s.alpha)
            ctrl = [run_write(subject, windows, spectrum, layer, targets, "control", batch, seed=100 + i, prefix=prefix)
                    for i in range(n_controls)]
            ctrl_tp = [run_control_transplant(subject, windows, spectrum, layer, targets, batch, 100 + i, prefix)
                       for i in range(n_controls)]
            for i in range(n_controls):
                j = (i + 1) % n_controls
                fake = dict(w, add=ctrl[i], control=ctrl[j], transplant=ctrl_tp[i])
                res = h4a_verdicts({(layer, kind): h4a_raw(fake, s.h4_rho, 200, s.h4_min_recovered)}, alpha=s.alpha)
                for claim, variant in (("A1", "add"), ("A2", "add"), ("A3", "transplant")):
                    passed, m = res[layer, kind, claim, variant]
                    hits[claim] += passed
                    sig[claim] += all(p < s.alpha for p in m["p_values"])
                    trials[claim] += 1
    what = {"A1": "a control write as the dark write (add)", "A2": "control write i as dark vs control write i+1",
            "A3": "transplant = tail removed at 0 + control write at t"}
    rows = []
    for claim in hits:
        rows.append(rate_row(f"H4-{claim}", what[claim], hits[claim], trials[claim], "verdict"))
        rows.append(rate_row(f"H4-{claim}", what[claim], sig[claim], trials[claim], "tests alone (p < alpha)"))
    out["h4"] = {"rows": rows, "real": {f"{l}/{k}/{c}/{v}": {"passed": p, **{x: m.get(x) for x in (
        "capture_ratio", "control_capture_ratio", "dark_capture_ratio", "recovered_share", "delta_broken", "p_values")}}
        for (l, k), r in real.items() for (_, _, c, v), (p, m) in r.items()}}
    return rows


# --------------------------------------------------------------------------- main
def markdown(model, settings, rows, seconds, parts=""):
    lines = [f"Model `{model}`{parts}, {settings['n_seqs']} windows x {settings['seq_len']} tokens, alpha {settings['alpha']}; "
             f"{seconds:.0f} s on this machine (2 shared CPU cores).", "",
             "| part | null | counted | passes / trials | rate | MC SE |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['part']} | {r['null']} | {r['note']} | {r['passes']} / {r['trials']} | {r['rate']:.3f} | {r['se']:.3f} |")
    return "\n".join(lines)


def write_docs(blocks: list[str]) -> None:
    text = DOC.read_text() if DOC.exists() else f"{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(head + BEGIN + "\n" + "\n\n".join(blocks) + "\n" + END + tail)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", help="zoo alias or model (repeatable; default tiny-bb-bos)")
    ap.add_argument("--parts", default="h1,h2,h3,h4", help="h1,h2,h3,h4 (nulls and shapes); effects (verdict metrics for the power table)")
    ap.add_argument("--subspaces", type=int, default=80, help="random subspaces used as 'dark' (H1)")
    ap.add_argument("--perms", type=int, default=1000, help="within-window permutations (H3)")
    ap.add_argument("--controls", type=int, default=12, help="control writes per layer and target (H4)")
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--n-seqs", type=int, default=16)
    ap.add_argument("--layers", default="0.25,0.5,0.75")
    ap.add_argument("--json", help="write every number here")
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument("--from-json", action="append", default=[],
                    help="render saved --json output instead of running (repeatable; later files add rows)")
    args = ap.parse_args(argv)
    if args.from_json:
        merged = {}
        for path in args.from_json:
            for model, out in json.loads(Path(path).read_text()).items():
                m = merged.setdefault(model, {"rows": [], "seconds": 0.0, "parts": []})
                m["rows"] += out["rows"]
                m["seconds"] += out["seconds"]
                m["settings"] = out["settings"]
                m["parts"] += [k.upper() for k in ("h1", "h2", "h3", "h4") if k in out]
        blocks = [markdown(model, m["settings"], m["rows"], m["seconds"], f" ({', '.join(m['parts'])})")
                  for model, m in merged.items()]
        print("\n\n".join(blocks))
        if not args.no_docs:
            write_docs(blocks)
        return 0
    from sinkbench.model.access import load_subject
    from sinkbench.measure.data import windows_for
    from sinkbench.measure.experiments import parse_layers
    from sinkbench.measure.spectrum import spectrum_for

    torch.set_grad_enabled(False)
    parts = set(args.parts.split(","))
    blocks, everything = [], {}
    for model in args.model or ["tiny-bb-bos"]:
        t0 = time.perf_counter()
        s = make_settings(ROOT, n_seqs=args.n_seqs, seq_len=args.seq_len, layers=args.layers)
        subject = load_subject(model)
        windows = windows_for(subject, s.dataset, s.seq_len, s.n_seqs, layout=s.windows)
        spectrum = spectrum_for(subject, s.n_bands, s.basis)
        layers = parse_layers(s.layers, subject.n_layers, model)
        out, rows = {"layers": layers}, []
        with exact_fast_stats():
            if "h1" in parts:
                rows += h1_null(subject, s, windows, spectrum, layers, args.subspaces, out)
                print(f"[{model}] H1 done at {time.perf_counter() - t0:.0f}s", flush=True)
            if "h2" in parts:
                rows += h2_shape(subject, s, windows, spectrum, layers, out)
                print(f"[{model}] H2 shape done at {time.perf_counter() - t0:.0f}s", flush=True)
            if "effects" in parts:
                rows += real_effects(subject, s, windows, spectrum, layers, out)
                print(f"[{model}] effects done at {time.perf_counter() - t0:.0f}s", flush=True)
            if "h3" in parts:
                rows += h3_null(subject, s, spectrum, args.perms, out)
                print(f"[{model}] H3 done at {time.perf_counter() - t0:.0f}s", flush=True)
            if "h4" in parts:
                rows += h4_null(subject, s, windows, spectrum, layers, args.controls, out)
                print(f"[{model}] H4 done at {time.perf_counter() - t0:.0f}s", flush=True)
        seconds = time.perf_counter() - t0
        out["settings"] = {"n_seqs": s.n_seqs, "seq_len": s.seq_len, "alpha": s.alpha}
        md = markdown(model, out["settings"], rows, seconds)
        print(md, flush=True)
        blocks.append(md)
        out["rows"], out["seconds"] = rows, seconds
        everything[model] = out
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1, default=lambda x: x.tolist() if hasattr(x, "tolist") else str(x)))
    if not args.no_docs:
        write_docs(blocks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
