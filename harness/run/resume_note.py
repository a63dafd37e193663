"""Why --resume recomputes a case it has a record of: the one line Bench.resume prints when
results.jsonl holds the same case (hypothesis, model, layer, case fields) under another case
key, naming what differs: sinkbench's version, the unit's package, version or source, one of
the unit's settings, the model's weights, or one of sinkbench's settings."""
from __future__ import annotations

from sinkbench.registry import RECORD_FIELDS


def made_by_another_version(r: dict) -> bool:
    """A record whose `versions` names another sinkbench than this one (a record without it is
    judged by its case key alone). Its case key alone could match (a copied or edited record)."""
    from sinkbench import __version__

    return r.get("versions", {}).get("sinkbench", __version__) != __version__


def same_case(r: dict, hypothesis: str, name: str, layer, case: dict) -> bool:
    if r.get("hypothesis") != hypothesis or r.get("model") != name or r.get("layer") != layer:
        return False
    for k, v in case.items():
        got = r.get(k) if k in RECORD_FIELDS else r.get("params", {}).get(k)
        if got != v:
            return False
    return True


def differences(old: dict, identity: dict, settings: dict, sha: str | None) -> list[str]:
    """What differs between an old record and the case about to be computed, in words."""
    out = []
    was = old.get("versions", {}).get("sinkbench")
    if was != identity["sinkbench"]:
        out.append(f"made by sinkbench {was}, this is {identity['sinkbench']}")
    old_units = old.get("unit")
    old_units = [old_units] if isinstance(old_units, dict) else (old_units or [])
    by_name = {u.get("name"): u for u in old_units}
    for unit in identity["units"]:
        prev = by_name.get(unit["name"])
        if prev is None:
            out.append(f"the record does not say which {unit['name']} code made it")
            continue
        for field, label in (("package", "package"), ("version", "version"), ("source", "source")):
            if prev.get(field) != unit.get(field):
                out.append(f"{unit['name']}'s {label} changed ({prev.get(field)} -> {unit.get(field)})")
        params = old.get("params", {})
        for k, v in unit["settings"].items():
            if params.get(k) != v:
                out.append(f"{unit['name']}.{k} changed ({params.get(k, 'unset')} -> {v})")
    if sha is not None and old.get("model_sha256") not in (None, sha):
        out.append("the model's weights changed")
    for k, v in settings.items():
        if k in old.get("params", {}) and k not in ("windows", "dataset", "dtype", "seeds") and old["params"][k] != v:
            out.append(f"{k} changed ({old['params'][k]} -> {v})")
    return out


def record_case(r: dict) -> dict:
    """The case fields a record's case key was made of (Bench.record): its claim, condition,
    target and variant as recorded, and params' k."""
    out = {k: r[k] for k in RECORD_FIELDS if k in r}
    if r.get("params", {}).get("k") is not None:
        out["k"] = r["params"]["k"]
    return out


def current(bench, hypothesis: str, name: str, layer, case: dict, records) -> dict:
    """case key -> record, over the records of this case (as far as `case` names it) whose key
    is the one this code and these settings give their own case fields."""
    out = {}
    for r in records:
        if same_case(r, hypothesis, name, layer, case) and r.get("case_key") not in out:
            if bench.case_key(hypothesis, name, layer, **record_case(r)) == r.get("case_key"):
                out[r["case_key"]] = r
    return out


def reusable(bench, hypothesis: str, name: str, layer, case: dict, records) -> dict | None:
    """The one record of this code and settings that `case` names, or None (none, or several
    cases that the fields given to bench.resume cannot tell apart)."""
    found = current(bench, hypothesis, name, layer, case, records)
    return next(iter(found.values())) if len(found) == 1 else None


def why_recomputed(bench, hypothesis: str, name: str, layer, case: dict, records) -> str | None:
    """One line, or None when no record of this case exists (a new case needs no word)."""
    import dataclasses

    old = [r for r in records if same_case(r, hypothesis, name, layer, case)]
    if not old:
        return None
    found = current(bench, hypothesis, name, layer, case, old)
    if len(found) > 1:
        fields = sorted({k for r in found.values() for k in record_case(r)} - set(case))
        return (f"{hypothesis} on {name}: cases recomputed: bench.resume() was given {sorted(case) or 'no case fields'} and "
                f"cannot tell {len(found)} recorded cases apart (they differ in {fields}); pass bench.resume the case "
                "fields bench.record gets")
    identity = bench.unit_identity(hypothesis, name)
    settings = dataclasses.asdict(bench.of(name))
    found = differences(old[-1], identity, settings, None)
    because = "; ".join(found) if found else "its settings or model differ from the records'"
    # one line per hypothesis, model and reason (Bench.note prints a line once)
    return f"{hypothesis} on {name}: cases recomputed, not reused from {bench.results_path}: {because}"
