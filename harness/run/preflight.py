"""Start-up checks of a hypothesis run: every input that can be judged without loading a
model's weights is judged before the first one loads, so a mistake costs seconds, not the
minutes of a model load and a grid. Each problem is one line that names the setting and
the fix; the plugin prints them all and exits with pytest's usage-error status (4).

What is checked: the results folder (a folder, creatable, writable), the device, the dataset
(exists, readable, text, not empty, a .jsonl's `text` field, a hub spec's shape), --bands,
and per model, from its config.json and tokenizer only: that it resolves, its maximum
positions against --seq-len, its width against --n-bands, its layers against --layers, its
architecture (sinkbench.model.access / sinkbench.model.architectures `unsupported_reason`, when that
hook exists), and that the dataset holds the test and selection windows it needs."""
from __future__ import annotations

import importlib
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

from sinkbench.measure.config import Settings
from sinkbench.errors import SinkbenchError

SNIFF_BYTES = 1 << 16  # how much of a dataset file is read to tell text from binary


# --------------------------------------------------------------------------- results folder
def results_problem(folder: str) -> str | None:
    """None if `folder` is (or can be made) a writable folder for results.jsonl."""
    fix = "pass --results a folder you can write to (results.jsonl is appended inside it)"
    if not str(folder).strip():  # '--results $UNSET': not the current folder by accident
        return f"--results {folder!r}: empty; {fix}"
    path = Path(folder).expanduser()
    if path.exists() and not path.is_dir():
        return f"--results {folder}: is a file, not a folder; {fix}"
    created = next((p for p in [path, *path.parents] if not p.exists() and p.parent.exists()), None)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"--results {folder}: cannot create the folder ({exc.strerror or type(exc).__name__}); {fix}"
    try:
        return _writable_problem(path, folder, fix)
    finally:  # a check leaves nothing behind: a run that stops at start-up creates no folder
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)


def _writable_problem(path: Path, folder: str, fix: str) -> str | None:
    target = path / "results.jsonl"
    if target.exists() and not target.is_file():
        return f"--results {folder}: {target} is not a file; remove it or {fix}"
    try:  # os.access says yes to root on a read-only file system: write a probe instead
        with tempfile.NamedTemporaryFile(dir=path, prefix=".sinkbench-probe-"):
            pass
        if target.exists():
            with target.open("a"):
                pass
    except OSError as exc:
        return f"--results {folder}: not writable ({exc.strerror or type(exc).__name__}); {fix}"
    return None


# --------------------------------------------------------------------------- device
def device_problem(device: str) -> str | None:
    """None if --device names a device this machine has."""
    from sinkbench.model import models

    text = str(device).strip()
    if not text or text.split(":")[0] not in ("cpu", "cuda", "mps"):
        return f"--device {device!r}: expected cpu, cuda, cuda:N or mps"
    try:
        dev = models.check_device(text)
    except SinkbenchError as exc:
        return str(exc)
    if dev.type == "cuda" and dev.index is not None:
        import torch

        if dev.index >= torch.cuda.device_count():
            return f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s); use cuda:0..cuda:{torch.cuda.device_count() - 1}"
    return None


# --------------------------------------------------------------------------- dataset
BUILTIN_DATASETS = ("auto", "pydoc", "")
DATASET_FORMS = ("'auto', 'pydoc', a .txt file, a .jsonl file with a 'text' field a line, "
                 "or a hub spec 'name:config:split:column'")


def dataset_problem(dataset: str) -> str | None:
    """None if --dataset is well formed, and (a file) readable, text and not empty. Whether it is
    long enough depends on each model's tokenizer (window_problem)."""
    if dataset in BUILTIN_DATASETS:
        return None
    path = Path(dataset).expanduser()
    if path.suffix in (".txt", ".jsonl"):
        return text_file_problem(dataset, path)
    if path.is_file() or path.is_dir():
        return f"--dataset {dataset}: a file must end in .txt (plain text) or .jsonl; expected {DATASET_FORMS}"
    parts = dataset.split(":")
    if len(parts) != 4:
        return f"--dataset {dataset!r}: not a known dataset or file; expected {DATASET_FORMS}"
    name, _, split, column = parts
    if not name or not split or not column:
        return (f"--dataset {dataset!r}: a hub spec is 'name:config:split:column' with a name, a split and a column "
                "(the config may be empty), e.g. 'wikitext:wikitext-2-raw-v1:test:text'")
    if importlib.util.find_spec("datasets") is None:
        return f"--dataset {dataset}: a hub dataset needs the `datasets` package; run `pip install datasets`"
    return None


def text_file_problem(dataset: str, path: Path) -> str | None:
    if not path.exists():
        return f"--dataset {dataset}: file not found; check the path"
    if not path.is_file():
        return f"--dataset {dataset}: not a file; pass a .txt or .jsonl file"
    try:
        with path.open("rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError as exc:
        return f"--dataset {dataset}: cannot read it ({exc.strerror or type(exc).__name__}); check its permissions"
    if b"\0" in head:
        return f"--dataset {dataset}: a binary file, not text; pass a UTF-8 text file"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return f"--dataset {dataset}: not UTF-8 text (bad byte at offset {exc.start}); convert it to UTF-8"
    except OSError as exc:
        return f"--dataset {dataset}: cannot read it ({exc.strerror or type(exc).__name__})"
    if not text.strip():
        return f"--dataset {dataset}: the file is empty; pass a file with text"
    if path.suffix == ".jsonl":
        if text.startswith("\ufeff"):  # named, not "line 1 is not JSON"
            return (f"--dataset {dataset}: starts with a UTF-8 byte-order mark (BOM), which JSON Lines does not allow; "
                    "save it as UTF-8 without a BOM")
        total = 0
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                return f"--dataset {dataset}: line {n} is not JSON; every line must be an object with a 'text' field"
            if not isinstance(value, dict) or not isinstance(value.get("text"), str):
                return f"--dataset {dataset}: line {n} has no string 'text' field; every line must be an object like {{\"text\": \"...\"}}"
            total += len(value["text"].strip())
        if not total:
            return f"--dataset {dataset}: every 'text' field is empty; pass a file with text"
    return None


# --------------------------------------------------------------------------- models
def model_config(name: str, trust_remote_code: bool):
    """(source, config) of a model, from its config.json alone."""
    from sinkbench.model import models

    source = models.resolve(name)
    local = Path(source.path) / "config.json" if source.kind == "hf_dir" else None
    if local is not None and local.is_file():  # said plainly, before transformers calls it an OSError
        try:
            json.loads(local.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
            raise SinkbenchError(f"--model {name}: {local} is not valid JSON{where}; fix or replace the checkpoint's config.json") from None
    try:
        cfg = models.load_config(source, trust_remote_code)
    except SinkbenchError:
        raise
    except Exception as exc:  # a malformed config.json, an unknown model_type
        raise SinkbenchError(f"--model {name}: cannot read its config.json ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200] if str(exc) else 'no detail'}); check the checkpoint") from None
    return source, cfg


def unsupported_reason(cfg) -> str | None:
    """The architecture hook of issue 19: why sinkbench cannot measure this architecture, or
    None. Looked up where the architecture code lives; absent there, every config passes here
    and the load-time check (Subject.check) still catches what does not fit."""
    for module in ("sinkbench.model.architectures", "sinkbench.model.access"):
        if importlib.util.find_spec(module) is None:
            continue
        hook = getattr(importlib.import_module(module), "unsupported_reason", None)
        if hook is not None:
            return hook(cfg)
    return None


def limits_problems(name: str, cfg, s: Settings, seq_len_fix: str) -> list[str]:
    """The model's own limits against the settings: positions, width, layers, architecture."""
    from sinkbench.measure.experiments import parse_layers

    text = getattr(cfg, "text_config", None) or cfg
    out = []
    reason = unsupported_reason(cfg)
    if reason:
        out.append(f"--model {name}: {reason}")
    longest = getattr(text, "max_position_embeddings", None)
    if isinstance(longest, int) and s.seq_len > longest:
        out.append(f"--seq-len {s.seq_len}: longer than {name}'s max_position_embeddings ({longest}); "
                   f"pass --seq-len {longest} or less{seq_len_fix}")
    width = getattr(text, "hidden_size", None)
    if isinstance(width, int) and s.n_bands > width:
        out.append(f"--n-bands {s.n_bands}: more bands than {name}'s width (d = {width}); "
                   f"pass --n-bands {min(20, width)} or another value up to {width}")
    layers = getattr(text, "num_hidden_layers", None)
    if isinstance(layers, int):
        if layers < 2:
            out.append(f"--model {name}: {layers} layer(s); sinkbench measures after an edited layer, so it needs at least 2")
        else:
            try:
                parse_layers(s.layers, layers, name)
            except SinkbenchError as exc:
                out.append(str(exc))
    return out


def native_bos(tokenizer) -> bool:
    """Whether the tokenizer puts BOS first by default (the rule of Subject.uses_bos)."""
    if tokenizer.bos_token_id is None:
        return False
    ids = tokenizer("a").input_ids
    return len(ids) > 0 and ids[0] == tokenizer.bos_token_id


def not_utf8_file(folder: Path) -> str | None:
    """The first text file of a checkpoint folder (JSON, text, chat template) that is not UTF-8,
    named with its first bad byte and its offset, or None."""
    for f in sorted(Path(folder).iterdir()):
        if f.is_file() and f.suffix in (".json", ".txt", ".jinja"):
            try:
                f.read_bytes().decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"{f.name} is not UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start})"
            except OSError:
                continue
    return None


def window_problem(name: str, source, s: Settings, trust_remote_code: bool) -> str | None:
    """None if the dataset, tokenized by this model's tokenizer, holds n_seqs test windows and
    n_select selection windows between them, under every BOS condition a grid uses (H3
    measures with and without BOS). The tokens are handed on to the run (data.share_tokens)."""
    from sinkbench.measure import data
    from sinkbench.model import models

    where = None
    try:
        where = models.converted_dir(source)
        manifest_path = where / "sinkbench_zoo.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else None
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(where), trust_remote_code=trust_remote_code)
    except SinkbenchError as exc:
        return str(exc)
    except Exception as exc:
        try:
            str(source.path).encode("utf-8")
        except UnicodeEncodeError as bad:  # a folder name with a non-UTF-8 byte: the files are fine, the path is not
            byte = f" (byte {ord(bad.object[bad.start]) - 0xDC00:#04x})" if "\udc80" <= bad.object[bad.start] <= "\udcff" else ""
            return (f"--model {name}: its path is not valid UTF-8{byte}, which the tokenizer library cannot open; "
                    "rename the folder (or link it under a UTF-8 name)")
        bad = not_utf8_file(where) if isinstance(exc, UnicodeDecodeError) and where is not None else None
        if bad is not None:  # the file and byte, not "cannot read its tokenizer"
            return f"--model {name}: {bad}; re-save it as UTF-8 (or replace the checkpoint's tokenizer files)"
        return f"--model {name}: cannot read its tokenizer ({type(exc).__name__}); check the checkpoint's tokenizer files"
    if s.dataset == "auto" and manifest is not None:
        if s.units == "document":
            return (f"--units document: {name} is evaluated on its own generated language, which has no documents; "
                    "use --units window, or pass a --dataset with documents")
        text = data.zoo_text(manifest)
    else:
        text = data.load_text(s.dataset)
    if not text.strip():
        return f"--dataset {s.dataset}: no text; pass a dataset with text"
    tokens = data.share_tokens(source.path, s.dataset, tokenizer(text, add_special_tokens=False).input_ids)
    designated = (manifest or {}).get("evaluation", {}).get("designated_sink") is not None
    conditions = {native_bos(tokenizer), False} | ({True} if tokenizer.bos_token_id is not None else set())
    try:
        for bos in sorted(conditions):
            body = data.window_body(s.seq_len, bos, designated)
            test = data.window_starts(len(tokens), body, s.n_seqs, s.windows)
            data.select_starts(test, body, s.n_select, len(tokens))
    except SinkbenchError as exc:
        return f"{name}: {exc}"
    return None


def model_problems(name: str, s: Settings, seq_len_fix: str, dataset_ok: bool) -> list[str]:
    """Every problem of one model under its settings, or [] (config.json and tokenizer only)."""
    try:
        return _model_problems(name, s, seq_len_fix, dataset_ok)
    except Exception as exc:  # whatever a checkpoint's files throw: one line naming the model, never a traceback
        detail = str(exc).splitlines()[0][:200] if str(exc) else "no detail"
        return [f"--model {name}: its config or tokenizer cannot be read ({type(exc).__name__}: {detail}); check the checkpoint's files"]


def _model_problems(name: str, s: Settings, seq_len_fix: str, dataset_ok: bool) -> list[str]:
    try:
        if s.remote:
            from sinkbench.model.remote import check_remote, ndif_problem

            check_remote(name)
            problem = ndif_problem()  # one request, no retries: not a minute of retries in the first test
            if problem:
                return [problem]
        source, cfg = model_config(name, s.trust_remote_code)
    except SinkbenchError as exc:
        return [str(exc)]
    out = limits_problems(name, cfg, s, seq_len_fix)
    if not s.remote and unsupported_reason(cfg) is None:  # a half-copied safetensors file: named now, not in every test
        from sinkbench.model.models import weights_problem

        problem = weights_problem(source)
        if problem:
            out.append(problem)
    hub = s.dataset.count(":") == 3 and Path(s.dataset).suffix not in (".txt", ".jsonl")
    # a hub dataset is only downloaded by the run itself: its shape is checked, not its length
    if dataset_ok and not hub and not s.remote and not any(p.startswith("--seq-len") for p in out):
        try:
            problem = window_problem(name, source, s, s.trust_remote_code)
        except SinkbenchError as exc:
            problem = str(exc)
        if problem:
            out.append(problem)
    return out


def bands_problem(s: Settings) -> str | None:
    """--bands (or h2_ks) must leave H2 a k <= K-2."""
    from sinkbench.hypotheses.h2_middle import ks_of

    try:
        ks_of(s)
    except SinkbenchError as exc:
        return str(exc)
    return None


def run_problems(settings: Settings, per_model: dict[str, Settings], models_file: str | None) -> list[str]:
    """Every problem of a hypothesis run, one line each, in the order a user would fix them."""
    out = [p for p in (results_problem(settings.results), None if settings.remote else device_problem(settings.device),
                       dataset_problem(settings.dataset), bands_problem(settings)) if p]
    dataset_ok = not any(p.startswith("--dataset") for p in out)
    fix = f", or set seq_len for it in {models_file}" if models_file else ", or give it its own seq_len in a --models-file"
    seen = set(out)
    for name, s in per_model.items():
        for problem in model_problems(name, s, fix, dataset_ok):
            if problem not in seen:  # a global setting wrong for no model in particular: once
                seen.add(problem)
                out.append(problem)
    return out


# --------------------------------------------------------------------------- declared support
def support_problems(per_model: dict[str, Settings], selected, unit_choices: dict | None = None) -> list[str]:
    """What a selected hypothesis unit does not support (sinkbench.registry.Support) among the
    run's options: --units, --remote, the device, a model family without a sink profile. One
    line each naming the unit, its origin and both fixes; never applied silently.
    selected: (unit, [its selected test names]) pairs; unit_choices: the unit settings the user
    set ({unit: {key: value}}), for the checks that need a model's shape (H7.early_layer)."""
    from sinkbench import registry

    out = []
    for unit, tests in selected:
        sup = unit.support
        o = registry.origin(unit)
        who = f"{unit.name} ({o.get('package') or o.get('where', 'local')}{' ' + o['version'] if o.get('version') else ''})"
        leave_out = "leave its tests out with -k '" + " and ".join(f"not {t}" for t in dict.fromkeys(tests)) + "'"
        for name, s in per_model.items():
            if s.units not in sup.units:
                out.append(f"--units {s.units}: {who} does not apply it (it supports {', '.join(sup.units)}); "
                           f"pass --units {sup.units[0]}, or {leave_out}")
            if s.remote and not sup.remote:
                out.append(f"--remote: {who} does not run on NDIF; drop --remote, or {leave_out}")
            device = str(s.device).split(":")[0]
            if not s.remote and device not in sup.devices:
                out.append(f"--device {s.device}: {who} runs on {', '.join(sup.devices)} only; pass --device "
                           f"{sup.devices[0]}, or {leave_out}")
            if not sup.unprofiled_families and not s.remote:
                family = _family(name, s)
                if family is not None and not family.attention_interface:
                    out.append(f"--model {name}: {who} needs a sink profile, which {name}'s family has not (attention "
                               f"outside transformers' AttentionInterface); drop this model, or {leave_out}")
    if any(unit.name == "H7" and unit.built_in for unit, _ in selected):
        tests = next(t for unit, t in selected if unit.name == "H7")
        leave_out = "leave H7 out with -k '" + " and ".join(f"not {t}" for t in dict.fromkeys(tests)) + "'"
        out += [p for name, s in per_model.items() if (p := h7_window_problem(name, s, leave_out))]
        early = (unit_choices or {}).get("H7", {}).get("early_layer", -1)
        out += [p for name, s in per_model.items() if (p := h7_early_layer_problem(name, s, early, leave_out))]
    return list(dict.fromkeys(out))


def h7_early_layer_problem(name: str, s: Settings, early: int, leave_out: str) -> str | None:
    """A hand-set H7.early_layer must leave a layer for the write to act on (<= L - 2): said at
    start-up from the model's config, not after the model loads as a failure of every H7 case."""
    if early is None or early < 0:
        return None
    try:
        _, cfg = model_config(name, s.trust_remote_code)
    except Exception:  # an unreadable config is model_problems' to report
        return None
    layers = getattr(getattr(cfg, "text_config", None) or cfg, "num_hidden_layers", None)
    if not isinstance(layers, int) or early <= layers - 2:
        return None
    return (f"H7.early_layer = {early}: {name} has {layers} layers and a write must leave a layer to act on; "
            f"set it to a layer in 0..{max(0, layers - 2)} (or -1 to detect it), or {leave_out}")


def h7_window_problem(name: str, s: Settings, leave_out: str) -> str | None:
    """H7's sliding window W (h7_window, or seq_len // 4 when 0) must leave room for the first
    tokens and the control outside it: 4 < W <= seq_len - 2. Said at start-up, naming --seq-len
    and the window, not after the model loads as a failure of every H7 case."""
    from sinkbench.hypotheses.h7_streaming.measurement import window_size

    try:
        window_size(s)
        return None
    except SinkbenchError:
        pass
    top = s.seq_len - 2
    if s.h7_window:  # the user's window: too large for this seq_len, or too small
        fix = (f"set h7_window between 5 and {top} (or 0 for seq_len // 4)" if top >= 5 else "")
        need = max(s.h7_window + 2, 7)
        return (f"--seq-len {s.seq_len} with H7's h7_window {s.h7_window} on {name}: H7's sliding window W must satisfy "
                f"4 < W <= seq_len - 2 = {top}; pass --seq-len {need} or more, {fix + ', ' if fix else ''}or {leave_out}")
    return (f"--seq-len {s.seq_len} is too short for H7 on {name}: its sliding window W = seq_len // 4 = {s.seq_len // 4} "
            f"must be over 4 (4 < W <= seq_len - 2); pass --seq-len 20 or more"
            f"{f', set h7_window between 5 and {top}' if top >= 5 else ''}, or {leave_out}")


def _family(name: str, s: Settings):
    try:
        from sinkbench.model.architectures import family_of

        _, cfg = model_config(name, s.trust_remote_code)
        return family_of(cfg)
    except Exception:  # its own problem was reported by model_problems
        return None
