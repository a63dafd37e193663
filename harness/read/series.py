"""Checkpoint series: a folder of checkpoints of one training run, each measured as its own
model, every record carrying the checkpoint's training step (and tokens seen, when known).

A series folder holds one checkpoint directory per saved step (each with config.json and
safetensors). The step of a checkpoint, in this order of preference:

* its sinkbench_zoo.json manifest: `step` and `tokens_seen` (the zoo's series), or `steps`
  for a final zoo model (tokens seen = steps x batch_size x seq_len of its train_config);
* a Hugging Face Trainer `trainer_state.json`: `global_step`, `num_input_tokens_seen`;
* the last number in the directory's name (`step-000010`, `checkpoint-500`, `step143000`).

`--models-file` expands `[[series]] name = "...", path = "..."` into one model per
checkpoint, named `<name>@<directory>` (e.g. `tiny-bb-bos@step-000010`)."""
from __future__ import annotations

import json
import re
from pathlib import Path

from sinkbench.measure.config import PER_MODEL
from sinkbench.errors import SinkbenchError


def checkpoint_info(path, from_name: bool = True) -> dict:
    """{'step', 'tokens_seen', 'series'} of a checkpoint directory, each key only when known
    (from_name: fall back on the last number in the directory's name)."""
    d = Path(path)
    out: dict = {}
    zoo = d / "sinkbench_zoo.json"
    if zoo.is_file():
        m = _json_or_empty(zoo)
        if isinstance(m.get("step"), int):
            out["step"] = m["step"]
        elif isinstance(m.get("steps"), int):  # a final zoo model: trained for `steps` updates
            out["step"] = m["steps"]
        tc = m.get("train_config", {})
        if isinstance(m.get("tokens_seen"), int):
            out["tokens_seen"] = m["tokens_seen"]
        elif "step" in out and isinstance(tc.get("batch_size"), int) and isinstance(tc.get("seq_len"), int):
            out["tokens_seen"] = out["step"] * tc["batch_size"] * tc["seq_len"]
        if isinstance(m.get("series"), str):
            out["series"] = m["series"]
    state = d / "trainer_state.json"
    if "step" not in out and state.is_file():
        s = _json_or_empty(state)
        if isinstance(s.get("global_step"), int):
            out["step"] = s["global_step"]
        if isinstance(s.get("num_input_tokens_seen"), int) and s["num_input_tokens_seen"] > 0:
            out["tokens_seen"] = s["num_input_tokens_seen"]
    if "step" not in out and from_name:
        m = re.search(r"(\d+)\D*$", d.name)
        if m:
            out["step"] = int(m.group(1))
    return out


def find_dir(path: str, base: Path | None) -> Path | None:
    """`path` as given (relative to the working directory), else relative to `base`."""
    p = Path(path).expanduser()
    if p.is_dir():
        return p.resolve()
    if base is not None and not p.is_absolute() and (base / p).is_dir():
        return (base / p).resolve()
    return None


def expand_series(entry: dict, where: str, base: Path | None = None) -> list[dict]:
    """One model entry per checkpoint of a `[[series]]` table (name, path, optional family),
    sorted by step: {'name', 'path', 'series', 'step', 'tokens_seen'?, 'family'?}."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not isinstance(entry.get("path"), str):
        raise SinkbenchError(f"{where}: every [[series]] needs name = '...' and path = '...' (a folder of checkpoints); got {entry!r}")
    unknown = set(entry) - {"name", "path", "family", *PER_MODEL}
    if unknown:
        raise SinkbenchError(f"{where}: [[series]] {entry['name']!r} has unknown keys {sorted(unknown)} "
                             f"(name, path, family, {', '.join(PER_MODEL)})")
    if "family" in entry and not (isinstance(entry["family"], str) and entry["family"].strip()):
        raise SinkbenchError(f"{where}: [[series]] {entry['name']!r}: family must be a non-empty string, got {entry['family']!r}")
    folder = find_dir(entry["path"], base)
    if folder is None:
        raise SinkbenchError(f"{where}: [[series]] {entry['name']!r}: {entry['path']} is not a folder")
    out = []
    for d in sorted(folder.iterdir()):
        if not d.is_dir() or d.name.startswith(".") or not (d / "config.json").exists():
            continue
        info = checkpoint_info(d)
        if "step" not in info:
            raise SinkbenchError(f"{where}: [[series]] {entry['name']!r}: cannot tell the step of {d} "
                                 "(no manifest step, trainer_state.json or number in its name)")
        e = {"name": f"{entry['name']}@{d.name}", "path": str(d), "series": entry["name"], **info}
        e["series"] = entry["name"]  # the models file names the series, whatever the manifest says
        if "family" in entry:
            e["family"] = entry["family"]
        e.update({k: entry[k] for k in PER_MODEL if k in entry})  # window settings of every checkpoint
        out.append(e)
    if not out:
        raise SinkbenchError(f"{where}: [[series]] {entry['name']!r}: no checkpoint directories (with config.json) in {folder}")
    steps = [e["step"] for e in out]
    if len(set(steps)) != len(steps):
        raise SinkbenchError(f"{where}: [[series]] {entry['name']!r}: two checkpoints share a step ({sorted(steps)})")
    return sorted(out, key=lambda e: e["step"])


STEP_FIELDS = ("series", "step", "tokens_seen")


def model_entry(entry: dict, where: str) -> dict:
    """A `[[model]]` table: name, and optional family, series, step, tokens_seen."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise SinkbenchError(f"{where}: every [[model]] needs name = '...'; got {entry!r}")
    unknown = set(entry) - {"name", "family", *STEP_FIELDS, *PER_MODEL}
    if unknown:
        raise SinkbenchError(f"{where}: [[model]] {entry['name']!r} has unknown keys {sorted(unknown)} "
                             f"(name, family, series, step, tokens_seen, {', '.join(PER_MODEL)})")
    for key in ("family", "series"):
        if key in entry and not (isinstance(entry[key], str) and entry[key].strip()):
            raise SinkbenchError(f"{where}: [[model]] {entry['name']!r}: {key} must be a non-empty string, got {entry[key]!r}")
    for key in ("step", "tokens_seen"):
        if key in entry and (not isinstance(entry[key], int) or isinstance(entry[key], bool) or entry[key] < 0):
            raise SinkbenchError(f"{where}: [[model]] {entry['name']!r}: {key} must be a non-negative integer, got {entry[key]!r}")
    return dict(entry)


def read_models_file(path) -> list[dict]:
    """The models of a --models-file, in order: [[model]] tables, then each [[series]]
    expanded to its checkpoints. Each entry: name, and what is known of family, path,
    series, step, tokens_seen."""
    import tomllib

    where = f"--models-file {path}"
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise SinkbenchError(f"{where}: cannot read it ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        if Path(path).read_bytes()[:3] == b"\xef\xbb\xbf":  # named, not "Invalid statement (line 1, column 1)"
            raise SinkbenchError(f"{where}: starts with a UTF-8 byte-order mark (BOM), which TOML does not allow; save it as UTF-8 without a BOM") from None
        raise SinkbenchError(f"{where}: not valid TOML ({exc})") from None
    except UnicodeDecodeError as exc:  # a Latin-1 byte: TOML is UTF-8
        raise SinkbenchError(f"{where}: not UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                             "TOML files are UTF-8: re-save it as UTF-8") from None
    for key, value in data.items():
        if key in ("model", "series", "settings"):  # [settings.<unit>]: the units' own settings (sinkbench.run.plugin)
            continue
        if isinstance(value, (dict, list)):
            shown = f"[[{key}]]" if isinstance(value, list) else f"[{key}]"
            hint = " (did you mean [[model]]?)" if key in ("models", "Model", "MODEL") else ""
            raise SinkbenchError(f"{where}: unknown table {shown}{hint}; a models file holds [[model]] and "
                                 "[[series]] tables, and [settings.<unit>] tables of the units' settings")
        raise SinkbenchError(f"{where}: {key} = {value!r} is outside any [[model]] table, so it would apply to no "
                             f"model; put it under a [[model]] (or [[series]]), or pass it on the command line")
    models, series = data.get("model", []), data.get("series", [])
    if not isinstance(models, list) or not isinstance(series, list):
        raise SinkbenchError(f"{where}: 'model' and 'series' must be arrays of tables ([[model]], [[series]])")
    if not models and not series:
        raise SinkbenchError(f"{where}: no [[model]] or [[series]] tables in it, so it names no model "
                             "(each model is a [[model]] table with name = '...')")
    out = [model_entry(e, where) for e in models]
    base = Path(path).resolve().parent
    for e in series:
        out += expand_series(e, where, base)
    names = [e["name"] for e in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SinkbenchError(f"{where}: a model appears twice: {', '.join(dup)}")
    return out


def step_fields(subject, declared: dict | None = None) -> dict:
    """What a record says about where in training its model is: `step`, `tokens_seen` and
    `series`, from the models file (declared: a [[series]] checkpoint or a [[model]] with
    step = ...) or else the checkpoint's own manifest or trainer state (never its name)."""
    out = {}
    source = subject.meta.get("source", {})
    if source.get("kind") == "hf_dir":
        out = checkpoint_info(source["path"], from_name=False)
    declared = {k: v for k, v in (declared or {}).items() if k in STEP_FIELDS and v is not None}
    if "step" in declared and out.get("step") != declared["step"]:
        out = {k: v for k, v in out.items() if k == "series"}  # the checkpoint's tokens_seen is another step's
    out.update(declared)
    return {k: out[k] for k in STEP_FIELDS if k in out}


def _json_or_empty(path: Path) -> dict:
    """A metadata file's object, or {} when it is unreadable or not JSON (step info is optional)."""
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}
