"""Pass checkpoints: a kill costs at most the pass in flight.

Records are written when a hypothesis's grid on a model is complete, and a grid can take
many minutes of passes. Every pass (interventions.run_batched, and H5's attribution and
removal traces in sinkbench.writer) goes through `cached`: while a run is active
(`configure`, from the plugin), its per-window arrays are written under
RESULTS/checkpoints/<model>/ as soon as it finishes, atomically (a temporary file, then
os.replace), and with --resume a pass whose file exists is read back instead of run, so a
resumed grid continues where the killed one stopped and its records are bit-identical.

A checkpoint's name is a hash of everything its numbers depend on: the model (weights
hash, dtype, device), the windows and any saved prefix (their bytes), the edit and the
readout (function, arguments, tensors), the batch layout, the torch version and thread
count, and the source of the sinkbench package itself (changed code never reads old
numbers). An input the hash cannot describe makes the pass run unchecked, never reuse
another pass's numbers."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
import types
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import progress


@dataclasses.dataclass
class Store:
    folder: Path
    read: bool  # --resume: reuse what an earlier run of the same passes left
    saved: int = 0
    restored: int = 0
    touched: set = dataclasses.field(default_factory=set)


_store: Store | None = None


def configure(folder: Path | str | None, read: bool = False) -> Store | None:
    """Checkpoint the passes of this process under `folder` (None: stop checkpointing)."""
    global _store
    _store = None if folder is None else Store(Path(folder), read)
    return _store


def active() -> Store | None:
    return _store


def clear_touched() -> int:
    """Delete the checkpoints this process wrote or read (its grids are all recorded):
    the number of files removed. Others' checkpoints (another run's, killed) stay."""
    if _store is None:
        return 0
    removed = 0
    for path in sorted(_store.touched):
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    for folder in [*{p.parent for p in _store.touched}, _store.folder]:
        try:
            folder.rmdir()  # only when empty
        except OSError:
            pass
    _store.touched.clear()
    return removed


class Unkeyable(Exception):
    """An input whose identity the hash cannot capture: run the pass without a checkpoint."""


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the sinkbench package's source: a changed computation never reads old numbers."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _feed(h, obj: Any, depth: int = 0) -> None:
    """Update hash h with a description of obj that differs whenever its numbers could."""
    if depth > 20:
        raise Unkeyable("nested too deep")
    up = lambda *parts: h.update(repr(parts).encode())
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        up(type(obj).__name__, obj)
    elif isinstance(obj, torch.Tensor):
        t = obj.detach().to("cpu").contiguous()
        up("tensor", str(t.dtype), tuple(t.shape))
        h.update(t.flatten().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        up("ndarray", str(a.dtype), a.shape)
        h.update(a.tobytes())
    elif isinstance(obj, (np.generic,)):
        up("np", str(obj.dtype), obj.item())
    elif isinstance(obj, (torch.device, torch.dtype, range, slice)):
        up(type(obj).__name__, str(obj))
    elif isinstance(obj, (list, tuple)):
        up(type(obj).__name__, len(obj))
        for v in obj:
            _feed(h, v, depth + 1)
    elif isinstance(obj, dict):
        up("dict", len(obj))
        for k in sorted(obj, key=repr):
            _feed(h, k, depth + 1)
            _feed(h, obj[k], depth + 1)
    elif isinstance(obj, functools.partial):
        up("partial")
        _feed(h, obj.func, depth + 1)
        _feed(h, obj.args, depth + 1)
        _feed(h, obj.keywords, depth + 1)
    elif isinstance(obj, types.FunctionType):
        # the code itself is in code_version(); what one function object adds is its state
        up("function", obj.__module__, obj.__qualname__)
        _feed(h, obj.__defaults__, depth + 1)
        _feed(h, obj.__kwdefaults__, depth + 1)
        for cell in obj.__closure__ or ():
            _feed(h, cell.cell_contents, depth + 1)
    elif isinstance(obj, types.BuiltinFunctionType) or isinstance(obj, types.ModuleType):
        up(type(obj).__name__, getattr(obj, "__module__", None), getattr(obj, "__name__", None))
    elif hasattr(obj, "sha256") and hasattr(obj, "model") and hasattr(obj, "name"):  # a Subject
        up("subject", obj.name, obj.sha256, obj.dtype, str(obj.device), bool(getattr(obj, "remote", False)))
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        up("dataclass", type(obj).__module__, type(obj).__qualname__)
        for f in dataclasses.fields(obj):
            up(f.name)
            _feed(h, getattr(obj, f.name), depth + 1)
    else:
        raise Unkeyable(type(obj).__qualname__)


def key_of(kind: str, inputs: dict) -> str:
    """The checkpoint's hash: what the pass computes (kind), its inputs, the code and torch."""
    h = hashlib.sha256()
    h.update(repr((kind, code_version(), torch.__version__, torch.get_num_threads())).encode())
    _feed(h, inputs)
    return h.hexdigest()[:32]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", text).strip("_")[:80] or "model"


def _write(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        torch.save(payload, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)  # atomic: a kill leaves either no checkpoint or a whole one


def cached(kind: str, inputs: dict, compute: Callable[[], Any], encode: Callable[[Any], Any] = lambda x: x,
           decode: Callable[[Any], Any] = lambda x: x, passes: int = 1) -> Any:
    """compute(), checkpointed when a store is active. encode turns its result into tensors,
    numbers, strings and containers of them (torch.load(weights_only=True) reads them back);
    decode turns that back. passes: progress ticks a restored result stands for."""
    store = _store
    if store is None:
        return compute()
    try:
        key = key_of(kind, inputs)
    except Unkeyable:
        return compute()
    subject = inputs.get("subject")
    path = store.folder / _slug(getattr(subject, "name", "model")) / f"{kind}-{key}.pt"
    if store.read and path.is_file():
        try:
            value = decode(torch.load(path, weights_only=True))
        except Exception:  # unreadable (a disk fault): run the pass again
            value = None
        if value is not None:
            store.restored += 1
            store.touched.add(path)
            for _ in range(passes):
                progress.tick()
            return value
    value = compute()
    _write(path, encode(value))
    store.saved += 1
    store.touched.add(path)
    return value


def arrays_to_tensors(value):
    """numpy arrays (in tuples, lists, dicts) as tensors, bit for bit, for a checkpoint."""
    if isinstance(value, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value).copy())}
    if isinstance(value, (list, tuple)):
        return type(value)(arrays_to_tensors(v) for v in value)
    if isinstance(value, dict):
        return {k: arrays_to_tensors(v) for k, v in value.items()}
    return value


def tensors_to_arrays(value):
    """The inverse of arrays_to_tensors."""
    if isinstance(value, dict):
        if set(value) == {"__ndarray__"}:
            return value["__ndarray__"].numpy()
        return {k: tensors_to_arrays(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(tensors_to_arrays(v) for v in value)
    return value
