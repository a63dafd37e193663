"""Expected verdicts for nightly runs: `pytest hypotheses --expect OLD` and
`sinkbench expect RESULTS > expected.toml`.

An expectation is, for one case (compare.case_id), the verdict it should keep, its key
metrics (every metric with a `<name>_ci`) with their 95% intervals, its p-values (shown
beside the new ones when something changed, never checked) and the settings it ran with.
It comes from an earlier results folder, or from an expected.toml that `sinkbench expect`
wrote and a lab reviewed and committed.

Each case of a run is then one of
  expected  same verdict, every key metric inside its old interval (widened by the tolerance)
  flipped   the verdict changed
  drifted   same verdict, but a key metric left its old interval (the `sinkbench compare` rule)
  new       no expectation for it
and an expectation that no case of the run matched is "missing"."""
from __future__ import annotations

import json
import math
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from sinkbench.read.compare import CASE_FIELDS, NOT_SETTINGS, case_id, case_label, latest, load_results, moved_metrics, settings_diff, settings_line
from sinkbench.errors import SinkbenchError

LIST_AT_MOST = 20  # new/missing cases listed in a summary (a first run or a -k subset has many)


@dataclass
class Expected:
    verdict: str
    metrics: dict  # record-shaped: name -> value, name_ci -> [lo, hi], p_* -> p-value(s)
    settings: dict  # the record's params less NOT_SETTINGS
    sha256: str | None = None  # weights the expectation was measured on


def kept_metrics(metrics: dict) -> dict:
    """Key metrics with their intervals, then the Holm-adjusted p-values (for display)."""
    out = {}
    for name, ci in metrics.items():
        value = metrics.get(name[:-3])
        if name.endswith("_ci") and isinstance(ci, list) and len(ci) == 2 and None not in ci and isinstance(value, (int, float)):
            out[name[:-3]], out[name] = value, ci
    for name, p in metrics.items():
        if name.startswith("p_") and not name.endswith("_raw") and _numbers(p):
            out[name] = p
    if isinstance(metrics.get("verdict_stability"), (int, float)):  # to say when a flip is of a fragile verdict
        out["verdict_stability"] = metrics["verdict_stability"]
    return out


def _numbers(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) or (
        isinstance(v, list) and bool(v) and all(isinstance(x, (int, float)) for x in v))


def from_record(rec: dict) -> Expected:
    settings = {k: v for k, v in rec.get("params", {}).items() if k not in NOT_SETTINGS and v is not None}
    return Expected(rec["verdict"], kept_metrics(rec.get("metrics", {})), settings, rec.get("model_sha256"))


def load(path) -> dict[tuple, Expected]:
    """Expectations from an expected.toml, or from the records of a results folder.
    Missing, empty or malformed is a one-line SinkbenchError."""
    p = Path(path)
    if p.suffix != ".toml":
        return {key: from_record(r) for key, r in latest(load_results(path, "--expect")).items()}
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise SinkbenchError(f"--expect {path}: no such file (write it with sinkbench expect RESULTS > {path})") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        if isinstance(exc, tomllib.TOMLDecodeError) and p.read_bytes()[:3] == b"\xef\xbb\xbf":  # named, not "Invalid statement"
            raise SinkbenchError(f"--expect {path}: starts with a UTF-8 byte-order mark (BOM), which TOML does not allow; save it as UTF-8 without a BOM") from None
        raise SinkbenchError(f"--expect {path}: cannot read it ({exc})") from None
    common, models, out = data.get("settings", {}), data.get("models", {}), {}
    for i, c in enumerate(data.get("case", []), 1):
        if not isinstance(c, dict) or not {"hypothesis", "model", "verdict"} <= set(c) or c["verdict"] not in ("pass", "fail"):
            raise SinkbenchError(f"--expect {path}: case {i} needs hypothesis, model and verdict = 'pass' or 'fail'; got {c!r}")
        metrics = {}
        for name, m in c.get("metrics", {}).items():
            if isinstance(m, dict):
                metrics[name] = m.get("value")
                if "ci" in m:
                    metrics[f"{name}_ci"] = m["ci"]
            else:  # a bare p-value
                metrics[name] = m
        key = tuple(c.get(f) for f in CASE_FIELDS) + (c.get("k"),)
        model = dict(models.get(c["model"], {}))
        sha = model.pop("sha256", None)
        out[key] = Expected(c["verdict"], metrics, {**common, **model, **c.get("settings", {})}, sha)
    if not out:
        raise SinkbenchError(f"--expect {path}: no [[case]] tables in it (write it with sinkbench expect RESULTS > {path})")
    return out


# ---------------------------------------------------------------- checking a run

@dataclass
class Check:
    key: tuple
    status: str  # expected | flipped | drifted | new
    verdict: str
    expected: Expected | None
    record: dict
    drift: list = field(default_factory=list)  # compare.moved_metrics tuples
    settings: list = field(default_factory=list)  # compare.settings_diff tuples

    def fragility(self) -> str:
        """' (fragile: ...)' when the expected or the new verdict was fragile, else ''."""
        from sinkbench.stats.stability import FRAGILE_BELOW

        shares = [("expected", self.expected.metrics.get("verdict_stability") if self.expected else None),
                  ("now", self.record.get("metrics", {}).get("verdict_stability"))]
        weak = [f"{when} {share:.0%}" for when, share in shares if isinstance(share, (int, float)) and share < FRAGILE_BELOW]
        return f" (fragile verdict: same on {', '.join(weak)} of window resamples)" if weak else ""

    def headline(self) -> str:
        label = case_label(self.key)
        if self.status == "flipped":
            return f"verdict flipped: expected {self.expected.verdict}, got {self.verdict}: {label}{self.fragility()}"
        if self.status == "drifted":
            return f"verdict {self.verdict} as expected, but {', '.join(m for m, *_ in self.drift)} left the expected interval: {label}"
        if self.status == "new":
            return f"new case (no expectation), verdict {self.verdict}: {label}"
        return f"verdict {self.verdict} as expected: {label}"

    def details(self) -> str:
        """The headline, then the expected and the new numbers side by side."""
        out = [self.headline()]
        if self.settings:
            out.append("settings differ: " + settings_line(self.settings, "expectation", "this run"))
        old_sha, new_sha = (self.expected.sha256 if self.expected else None), self.record.get("model_sha256")
        if old_sha and new_sha and old_sha != new_sha:
            out.append(f"weights differ: sha256 {old_sha[:12]} (expected) -> {new_sha[:12]} (now)")
        if self.expected:
            drifted = {m for m, *_ in self.drift}
            new = self.record.get("metrics", {})
            rows = [(name, _num(v, self.expected.metrics.get(f"{name}_ci")), _num(new.get(name), new.get(f"{name}_ci")),
                     "  <- outside" if name in drifted else "")
                    for name, v in self.expected.metrics.items() if not name.endswith("_ci")]
            if rows:
                w0, w1 = max(len(r[0]) for r in rows + [("metric",)]), max(len(r[1]) for r in rows + [("", "expected")])
                out.append(f"  {'metric'.ljust(w0)}  {'expected'.ljust(w1)}  now")
                out += [f"  {a.ljust(w0)}  {b.ljust(w1)}  {c}{d}" for a, b, c, d in rows]
        return "\n".join(out)


def _num(v, ci=None) -> str:
    def one(x):
        return "-" if x is None else f"{x:.4g}" if isinstance(x, (int, float)) else str(x)
    text = "[" + ", ".join(map(one, v)) + "]" if isinstance(v, list) else one(v)
    return text + (f" [{one(ci[0])}, {one(ci[1])}]" if isinstance(ci, list) and len(ci) == 2 else "")


def check(expected: Expected | None, rec: dict, tolerance: float = 0.0) -> Check:
    key, verdict = case_id(rec), rec["verdict"]
    if expected is None:
        return Check(key, "new", verdict, None, rec)
    drift = moved_metrics(expected.metrics, rec.get("metrics", {}), tolerance)
    settings = settings_diff(expected.settings, rec.get("params", {}))
    status = "flipped" if verdict != expected.verdict else "drifted" if drift else "expected"
    return Check(key, status, verdict, expected, rec, drift, settings)


def outcome_for(checks: list[Check], strict: bool = False) -> tuple[str, str]:
    """What a test whose records got these checks becomes: ('fail', details) when anything
    changed (or, with strict, when a case is new); ('xfail', reason) when its verdict is a
    failure that was expected (or new, not strict); ('keep', '') otherwise."""
    bad = [c for c in checks if c.status in ("flipped", "drifted") or (strict and c.status == "new")]
    if bad:
        return "fail", "\n\n".join(c.details() + ("\n(--expect-strict: add it with sinkbench expect)" if c.status == "new" else "")
                                    for c in bad)
    if checks and all(c.verdict == "fail" for c in checks):
        return "xfail", "; ".join(c.headline() for c in checks)
    return "keep", ""


@dataclass
class Summary:
    checks: list[Check]
    missing: list[tuple]  # (key, Expected) not matched by any case of the run
    source: str = ""
    tolerance: float = 0.0

    def of(self, status: str) -> list[Check]:
        return [c for c in self.checks if c.status == status]

    @property
    def problems(self) -> list[str]:
        """Why this comparison checked nothing, so it must not pass: a tolerance that is not a
        finite number >= 0 (no metric could drift), or expectations that share no case with
        the run (another model, other hypotheses: everything would be new and missing)."""
        out = []
        if not (isinstance(self.tolerance, (int, float)) and math.isfinite(self.tolerance) and self.tolerance >= 0):
            out.append(f"--expect-tolerance {self.tolerance}: not a finite number >= 0, so no metric could drift and "
                       "nothing is checked; pass e.g. --expect-tolerance 0.1")
        if self.checks and not any(c.expected is not None for c in self.checks):
            theirs = f"; expected cases are e.g. {case_label(self.missing[0][0])}" if self.missing else ""
            out.append(f"--expect {self.source}: no case of this run has an expectation there ({len(self.checks)} new, "
                       f"{len(self.missing)} missing: this run's cases are e.g. {case_label(self.checks[0].key)}{theirs}); "
                       "nothing was checked: pass the expectations of these models and hypotheses")
        return out

    @property
    def changed(self) -> bool:
        return bool(self.of("flipped") or self.of("drifted") or self.problems)

    def counts(self) -> str:
        return ", ".join(f"{n} {s}" for s, n in (
            ("as expected", len(self.of("expected"))), ("flipped", len(self.of("flipped"))),
            ("drifted", len(self.of("drifted"))), ("new", len(self.of("new"))), ("missing", len(self.missing))))

    def lines(self) -> list[str]:
        out = [f"ERROR: {p}" for p in self.problems]
        out.append(f"{self.counts()} (expectations: {self.source}, tolerance {self.tolerance:g})")
        diffs = [d for c in self.checks for d in c.settings]
        if diffs:
            out.append("settings differ: " + settings_line(_unique(diffs), "expectation", "this run"))
        shas = {}
        for c in self.checks:
            old, new = (c.expected.sha256 if c.expected else None), c.record.get("model_sha256")
            if old and new and old != new:
                shas[c.key[CASE_FIELDS.index("model")]] = (old, new)
        out += [f"weights differ: {m} (sha256 {o[:12]} expected, {n[:12]} now)" for m, (o, n) in sorted(shas.items())]
        out += [f"flipped  {c.expected.verdict} -> {c.verdict}: {case_label(c.key)}{c.fragility()}" for c in self.of("flipped")]
        out += [f"drifted  {m} {old:.4g} -> {new:.4g} (expected 95% CI {lo:.4g}..{hi:.4g}): {case_label(c.key)}"
                for c in self.of("drifted") for m, old, new, lo, hi in c.drift]
        out += _capped([f"new      {c.verdict}: {case_label(c.key)}" for c in self.of("new")])
        out += _capped([f"missing  {e.verdict}: {case_label(k)}" for k, e in self.missing])
        return out


def _unique(items: list) -> list:
    out = []
    for x in items:
        if x not in out:
            out.append(x)
    return out


def _capped(lines: list[str]) -> list[str]:
    if len(lines) <= LIST_AT_MOST:
        return lines
    return lines[:LIST_AT_MOST] + [f"         ... and {len(lines) - LIST_AT_MOST} more"]


def summarize(expected: dict[tuple, Expected], records: list[dict], tolerance: float = 0.0, source: str = "") -> Summary:
    """Check the newest record of each case; expectations no record matched are missing."""
    recs = latest(records)
    checks = [check(expected.get(k), r, tolerance) for k, r in sorted(recs.items(), key=lambda kv: _order(kv[0]))]
    missing = [(k, e) for k, e in sorted(expected.items(), key=lambda kv: _order(kv[0])) if k not in recs]
    return Summary(checks, missing, source, tolerance)


# ---------------------------------------------------------------- writing expected.toml

def _order(key: tuple) -> tuple:
    """Sort cases by model, hypothesis, claim, variant, condition, target, layer, k; None first, numbers numerically."""
    names = CASE_FIELDS + ("k",)
    v = dict(zip(names, key))
    return tuple((0, 0, "") if v[n] is None else (1, v[n], "") if isinstance(v[n], int) else (2, 0, str(v[n]))
                 for n in ("model", "hypothesis", "claim", "variant", "condition", "target", "layer", "k"))


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)  # full precision: an interval [x, x] must round-trip exactly
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v if x is not None) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml(x)}" for k, x in v.items() if x is not None) + " }"
    raise SinkbenchError(f"sinkbench expect: cannot write {v!r} in TOML")


def _shared(settings: list[dict]) -> dict:
    """The settings every one of these dicts has, with the same value."""
    common = dict(settings[0]) if settings else {}
    for s in settings[1:]:
        common = {k: v for k, v in common.items() if k in s and s[k] == v}
    return common


def to_toml(records: list[dict], source: str = "") -> str:
    """expected.toml text: settings common to every case; per model, its weights' sha256 and
    the settings common to its cases (its windows); then one [[case]] table per case (sorted)
    with its verdict, its remaining settings and its key metrics."""
    recs = sorted(latest(records).items(), key=lambda kv: _order(kv[0]))
    exps = [(key, from_record(r)) for key, r in recs]
    model_of = lambda key: key[CASE_FIELDS.index("model")]  # noqa: E731
    common = _shared([e.settings for _, e in exps])
    per_model = {}
    for m in dict.fromkeys(model_of(k) for k, _ in exps):
        mine = [e for k, e in exps if model_of(k) == m]
        per_model[m] = {k: v for k, v in _shared([e.settings for e in mine]).items() if k not in common}
        if mine[0].sha256:
            per_model[m] = {"sha256": mine[0].sha256, **per_model[m]}
    out = ["# sinkbench expectations: the verdict each case must keep, and its key metrics with the",
           "# 95% interval a later run's value must stay inside (widened by --expect-tolerance R by",
           "# R x |value| on each side). p-values are shown when something changed, never checked.",
           f"# Written by `sinkbench expect {source}` on {time.strftime('%Y-%m-%d')} from {len(exps)} cases; review, then commit.",
           "# Use: pytest hypotheses --expect expected.toml   (exit 0: every verdict as expected)", "",
           "[settings]  # of every case below"]
    out += [f"{_toml_key(k)} = {_toml(v)}" for k, v in sorted(common.items())]
    for m, table in sorted(per_model.items()):
        out += ["", f"[models.{_toml_key(m)}]  # the weights measured and the settings of every case of {m}"]
        out += [f"{_toml_key(k)} = {_toml(v)}" for k, v in table.items()]
    for key, e in exps:
        out += ["", "[[case]]"]
        out += [f"{n} = {_toml(v)}" for n, v in zip(CASE_FIELDS + ("k",), key) if v is not None]
        out.append(f"verdict = {_toml(e.verdict)}")
        shared = {**common, **per_model[model_of(key)]}
        rest = {k: v for k, v in sorted(e.settings.items()) if k not in shared}
        if rest:
            out.append(f"settings = {_toml(rest)}")
        for name, v in e.metrics.items():
            if name.endswith("_ci"):
                continue
            ci = e.metrics.get(f"{name}_ci")
            out.append(f"metrics.{_toml_key(name)} = " + (_toml({"value": v, "ci": ci}) if ci else _toml(v)))
    return "\n".join(out) + "\n"
