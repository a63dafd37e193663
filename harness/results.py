"""Result records: one JSON object per test case, appended to DIR/results.jsonl
as soon as the case finishes. Each line is written with a single write() on an
O_APPEND descriptor under an exclusive lock and fsync'd, so a crash loses at most
the case in flight and concurrent pytest-xdist workers never interleave lines."""
from __future__ import annotations

import fcntl
import json
import math
import os
import platform
import time
from collections import defaultdict
from pathlib import Path


def versions() -> dict:
    import nnsight
    import torch
    import transformers

    from . import __version__

    return {
        "sinkbench": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
        "nnsight": getattr(nnsight, "__version__", "unknown"), "python": platform.python_version(),
    }


def _clean(x):
    """JSON-safe: numpy/torch scalars to floats, NaN/inf to None, tuples to lists."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "tolist"):
        return _clean(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def architecture(subject) -> dict:
    """What the record says of the architecture (docs/architectures.md): block type, logit
    post-processing, and learned sink logits with the mass 1 - row sum they absorbed at load."""
    arch = getattr(subject, "arch", None)
    if arch is None:
        return {}
    post = subject.logit_map
    out = {"block": subject.block_kind, "logit_scale": post.scale, "logit_softcap": post.softcap,
           "output_bias": post.bias is not None, "learned_sinks": subject.learned_sinks}
    if "learned_sink_mass_at_load" in subject.meta:
        out["learned_sink_mass_at_load"] = subject.meta["learned_sink_mass_at_load"]
    return out


def make_record(hypothesis: str, subject, layer, params: dict, verdict: bool, metrics: dict, **extra) -> dict:
    rec = {
        "hypothesis": hypothesis,
        "model": subject.name,
        "family": subject.family,
        "model_sha256": subject.sha256,
        "quantization": subject.meta.get("quantization", {}).get("type", "unknown"),
        "architecture": architecture(subject),
        "layer": layer,
        "params": params,
        "verdict": "pass" if verdict else "fail",
        "metrics": metrics,
        "versions": versions(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    rec.update(extra)
    return _clean(rec)


def append_jsonl(path: Path, record: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_jsonl(path: Path) -> list[dict]:
    """Records of a results file; a torn last line (killed mid-write) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def matrix(records: list[dict]) -> str:
    """Hypotheses x models, each cell 'passed/total', with ' ~f' when f of those verdicts are
    fragile (they flip on more than a fifth of the resamples of their windows: stability)."""
    cells: dict = defaultdict(lambda: [0, 0])
    fragile: dict = defaultdict(int)
    hyps, models = [], []
    for r in records:
        key = r["hypothesis"] + (f"/{r['claim']}" if r.get("claim") else "")
        if key not in hyps:
            hyps.append(key)
        if r["model"] not in models:
            models.append(r["model"])
        cell = cells[key, r["model"]]
        cell[0] += r["verdict"] == "pass"
        cell[1] += 1
        fragile[key, r["model"]] += bool(r.get("metrics", {}).get("fragile"))
    if not records:
        return "(no results)"
    w0 = max(len("hypothesis"), *(len(h) for h in hyps))
    widths = [max(len(m), 10) for m in models]
    lines = ["hypothesis".ljust(w0) + " | " + " | ".join(m.ljust(w) for m, w in zip(models, widths))]
    lines.append("-" * len(lines[0]))
    for h in sorted(hyps):
        row = []
        for m, w in zip(models, widths):
            p, t = cells.get((h, m), (0, 0))
            f = fragile.get((h, m), 0)
            row.append((f"{p}/{t}" + (f" ~{f}" if f else "") if t else "-").ljust(w))
        lines.append(h.ljust(w0) + " | " + " | ".join(row))
    rates = {r["model"]: r["metrics"]["sink_rate"] for r in records
             if r["hypothesis"] == "H1" and isinstance(r.get("metrics", {}).get("sink_rate"), dict)}
    if rates:  # Gu et al.'s sink rate of position 0 (Sink_1), for context beside the verdicts
        row = [(f"{rates[m]['sink_1']:.2f}" if m in rates else "-").ljust(w) for m, w in zip(models, widths)]
        lines.append("Sink_1@0.3".ljust(w0) + " | " + " | ".join(row))
    if any(fragile.values()):
        lines.append("~f: f verdicts of the cell are fragile (same verdict on < 80% of window resamples)")
    return "\n".join(lines)


DEPENDENCE_WARN = 0.3  # mean lag-1 autocorrelation of a (hypothesis, model)'s contrasts above which a run warns


def dependence_warnings(records: list[dict], level: float = DEPENDENCE_WARN) -> list[str]:
    """One line per (hypothesis, model) whose per-window contrasts correlate with their
    neighbours in corpus order (mean lag-1 autocorrelation over its cases above `level`):
    its tests assume independent windows, and at rho 0.5 their false-pass rate is about three
    times alpha (docs/calibration.md). Independent windows give a mean near -1/n, with sd
    about 1/sqrt(n) for one case."""
    by: dict = defaultdict(list)
    for r in records:
        v = r.get("metrics", {}).get("lag1_autocorrelation")
        if isinstance(v, (int, float)) and v == v:
            by[r["hypothesis"], r["model"]].append(float(v))
    out = []
    for (hyp, model), vals in by.items():
        mean = sum(vals) / len(vals)
        if mean > level:
            out.append(f"[sinkbench] warning: {hyp} on {model}: neighbouring windows correlate (mean lag-1 "
                       f"autocorrelation {mean:.2f} over {len(vals)} cases, above {level}); its tests assume "
                       "independent windows: pass --units document, or spread the windows over more text")
    return out

