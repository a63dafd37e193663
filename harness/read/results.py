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

    from sinkbench import __version__

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
    """Append one record as one line, under an exclusive lock, fsync'd. A torn last line left
    by an earlier writer (a full disk, a crash: no newline at the end) is repaired first
    (repair_tail), so the new record never lands on it. Then the checkpoints of the record's
    grid are released (checkpoint.recorded); a write that fails keeps them and is one line."""
    from sinkbench.errors import SinkbenchError

    path = Path(path)
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    model, hypothesis = record.get("model"), record.get("hypothesis")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            repair_tail(fd, path)
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(28, f"only {written} of {len(line)} bytes written")
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
    except OSError as exc:
        _checkpoints("record_failed", model)
        raise SinkbenchError(
            f"--results {path.parent}: cannot write {path.name} ({exc.strerror or exc}); the record of {hypothesis} on "
            f"{model} is not saved, and this run's saved passes are kept: fix the folder (space, permissions) and "
            "rerun with --resume") from None
    _checkpoints("recorded", model, hypothesis)


def _checkpoints(what: str, *args) -> None:
    import sys

    checkpoint = sys.modules.get("sinkbench.measure.checkpoint")  # loaded whenever passes were checkpointed; never imported here (torch)
    if checkpoint is not None:
        getattr(checkpoint, what)(*args)


def repair_tail(fd: int, path: Path) -> str | None:
    """Make the file end at a line boundary before appending (called under the lock). A last
    line without its newline that is a whole JSON record gets the newline; anything else after
    the last newline (a torn write, NUL bytes a crash left) is moved to PATH.torn-<time> and
    cut off, with a warning naming the line. Returns what was done, or None."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return None
    start, chunk = size, 1 << 16
    tail = b""
    while start > 0:  # find the last newline, reading backwards
        lo = max(0, start - chunk)
        block = os.pread(fd, start - lo, lo)
        cut = block.rfind(b"\n")
        if cut >= 0:
            tail = block[cut + 1:] + tail
            start = lo + cut + 1
            break
        tail, start = block + tail, lo
    lineno = _count_lines(fd, start) + 1
    try:
        whole = isinstance(json.loads(tail.decode("utf-8")), dict)
    except (UnicodeDecodeError, json.JSONDecodeError):
        whole = False
    if whole:
        os.write(fd, b"\n")
        return f"line {lineno} had no newline; added"
    what = f"{path}: line {lineno} is a torn last line ({len(tail)} bytes, not a whole record)"
    if tail.strip(b"\0 \t\r"):
        keep = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}")
        keep.write_bytes(tail)
        what += f"; its bytes are kept in {keep.name}"
    else:
        what += "; only NUL bytes or blanks, dropped"
    os.ftruncate(fd, start)
    _warn(what + "; appending after the last whole line")
    return what


def _count_lines(fd: int, end: int) -> int:
    n, pos = 0, 0
    while pos < end:
        block = os.pread(fd, min(1 << 20, end - pos), pos)
        if not block:
            break
        n += block.count(b"\n")
        pos += len(block)
    return n


def _warn(text: str) -> None:
    import sys
    import warnings

    print(f"[sinkbench] warning: {text}", file=sys.stderr, flush=True)
    warnings.warn(ResultsWarning(text), stacklevel=3)


class ResultsWarning(UserWarning):
    """A results file line that was not read (named with its file and line)."""


RECORD_FIELDS = ("hypothesis", "model", "verdict")
BOM = b"\xef\xbb\xbf"


def bad_lines(data: bytes) -> tuple[list[dict], list[tuple[int, str]]]:
    """(records, [(line number, why)]) of a results file's bytes: each line must be UTF-8 JSON
    of an object with hypothesis, model and verdict; blank lines are allowed. A leading
    byte-order mark is named as such (and the line read without it)."""
    records, bad = [], []
    lines = data.split(b"\n")
    torn = bool(data) and not data.endswith(b"\n")
    for i, raw in enumerate(lines, 1):
        if i == 1 and raw.startswith(BOM):
            bad.append((i, "starts with a UTF-8 byte-order mark (BOM), which JSON Lines does not allow; "
                           "the line is read without it (save the file as UTF-8 without a BOM)"))
            raw = raw[len(BOM):]
        if not raw.strip(b" \t\r"):
            continue
        if not raw.strip(b"\0 \t\r"):
            bad.append((i, "only NUL bytes (a crash mid-write?)"))
            continue
        last = torn and i == len(lines)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad.append((i, f"not UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1})"))
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            bad.append((i, "a torn last line (no newline, not whole JSON: a write cut short)" if last
                        else f"not JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(value, dict):
            bad.append((i, f"a JSON {type(value).__name__}, not a record object"))
            continue
        missing = [f for f in RECORD_FIELDS if f not in value]
        if missing:
            bad.append((i, f"not a sinkbench record (no {', '.join(missing)})"))
            continue
        records.append(value)
    return records, bad


def repair(path: Path) -> str | None:
    """repair_tail under the writers' lock, outside an append (what --resume's reader does,
    so that a resume that records nothing new still leaves a readable file); None when
    nothing needed doing or the file cannot be written (then the readers keep naming the line)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return repair_tail(fd, Path(path))
    except OSError:
        return None
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_jsonl(path: Path, strict: bool = False) -> list[dict]:
    """Records of a results file. A line that is not one (a torn write, a non-UTF-8 byte, a
    line of another program, a BOM) is never skipped silently: strict raises a one-line
    SinkbenchError naming the file and line; otherwise (the reader of --resume and of a
    pytest-xdist controller, both in a run that appends here) each is named in a warning
    (file and line) and left out, and a torn last line is repaired (repair_tail: its bytes
    kept beside the file)."""
    from sinkbench.errors import SinkbenchError

    path = Path(path)
    if not path.exists():
        return []
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SinkbenchError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    records, bad = bad_lines(data)
    if bad and strict:
        more = f" (and {len(bad) - 1} more bad line{'s' if len(bad) > 2 else ''})" if len(bad) > 1 else ""
        line, why = bad[0]
        raise SinkbenchError(f"{path}: line {line}: {why}{more}; repair or remove that line (a torn last line is "
                             "repaired by the next run with --resume on this folder)")
    for line, why in bad[:5]:
        _warn(f"{path}: line {line}: {why}" + ("" if why.startswith("starts with") else "; not read"))
    if len(bad) > 5:
        _warn(f"{path}: {len(bad) - 5} more lines not read")
    if data and not data.endswith(b"\n"):
        repair(path)
    return records


def count_text(passed: int, total: int, untested: int = 0) -> str:
    """A cell's count: '2/3', '1/2 ?1' (one case not testable), or 'n/t' when no case could be
    tested (the terminal matrix and the per-model line; a not-testable verdict is recorded as
    a failure but is no finding against the claim)."""
    if untested and untested == total:
        return "n/t" if total == 1 else f"n/t ({total})"
    return f"{passed}/{total}" + (f" ?{untested}" if untested else "")


def not_testable(r: dict) -> bool:
    """A case recorded as failed because its claim could not be tested on these windows (H3 with
    fewer than h3_min_windows informative windows, H6 b-mean on a constant contrast): the record's
    metrics say `not_testable`. Not a finding against the claim, so the matrix shows it apart."""
    return bool(r.get("metrics", {}).get("not_testable"))


def matrix(records: list[dict]) -> str:
    """Hypotheses x models, each cell 'passed/total', with ' ~f' when f of those verdicts are
    fragile (they flip on more than a fifth of the resamples of their windows: stability), ' !o'
    when o cases have tails outside the calibrated range, and ' ?u' when u cases were not
    testable; a cell whose every case was not testable reads 'n/t', never a plain 0/t."""
    cells: dict = defaultdict(lambda: [0, 0])
    fragile: dict = defaultdict(int)
    tails: dict = defaultdict(int)
    untested: dict = defaultdict(int)
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
        tails[key, r["model"]] += bool(r.get("metrics", {}).get("outside_calibrated_range"))
        untested[key, r["model"]] += not_testable(r)
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
            f, o, u = fragile.get((h, m), 0), tails.get((h, m), 0), untested.get((h, m), 0)
            count = count_text(p, t, u)
            row.append((count + (f" ~{f}" if f else "") + (f" !{o}" if o else "") if t else "-").ljust(w))
        lines.append(h.ljust(w0) + " | " + " | ".join(row))
    rates = {r["model"]: r["metrics"]["sink_rate"] for r in records
             if r["hypothesis"] == "H1" and isinstance(r.get("metrics", {}).get("sink_rate"), dict)}
    if rates:  # Gu et al.'s sink rate of position 0 (Sink_1), for context beside the verdicts
        row = [(f"{rates[m]['sink_1']:.2f}" if m in rates else "-").ljust(w) for m, w in zip(models, widths)]
        lines.append("Sink_1@0.3".ljust(w0) + " | " + " | ".join(row))
    if any(fragile.values()):
        lines.append("~f: f verdicts of the cell are fragile (same verdict on < 80% of window resamples)")
    if any(tails.values()):
        lines.append("!o: o cases of the cell have tails outside the tests' calibrated range (docs/calibration.md)")
    if any(untested.values()):
        lines.append("n/t: not testable on these windows (recorded as failed, never a pass; the record's not_testable "
                     "says why); ?u: u cases of the cell not testable")
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

