"""Pass checkpoints: a kill costs at most the pass in flight.

Records are written when a hypothesis's grid on a model is complete, and a grid can take
many minutes of passes. Every pass (interventions.run_batched, and H5's attribution and
removal traces in sinkbench.hypotheses.h5_sink_writer.measurement) goes through `cached`: while a run is active
(`configure`, from the plugin), its per-window arrays are written under
RESULTS/checkpoints/<model>/ as soon as it finishes, atomically (a temporary file, then
os.replace), and with --resume a pass whose file exists is read back instead of run, so a
resumed grid continues where the killed one stopped and its records are bit-identical.

A checkpoint's name is a hash of everything its numbers depend on: the model (weights
hash, dtype, device), the windows and any saved prefix (their bytes), the edit and the
readout (function, arguments, tensors), the torch version, and the source of the sinkbench
package itself (changed code never reads old numbers). An input the hash cannot describe
makes the pass run unchecked, never reuse another pass's numbers.

What does not change the numbers is left out of the key (NOT_KEYED), so a resume with
another thread count or --batch-size (or CUDA's `auto` batch size, which follows free
memory) reads back every saved pass: the thread count, and the batch layout, since every
pass is batch-invariant (windows have one length, no padding, and every edit and readout
takes the rows of its batch: Edit.transform(h, rows)). Summation order can still differ
with them at float rounding, as the case keys of --resume already allow
(bench.case_key leaves batch_size out); with both unchanged, a resumed grid is bit-identical.

A pass of several batches also saves each batch as it finishes (kind 'batch', keyed by its
windows and rows, so by the batch layout, and named after the pass's key) and drops those
once the whole pass is saved or read back, the parts of every batch layout included (a resume
with another --batch-size cannot read a killed run's parts, and leaves none behind): a kill
mid-pass loses at most the batch in flight (with an unchanged --batch-size).

Each file carries a sha256 of its contents (MAGIC, the code and torch that wrote it, hex
digest, then torch.save's bytes): a flipped bit, a truncated or a foreign file is named in one
warning and its pass run again. A session that recorded its grids also deletes, in the model
folders it used, checkpoints no run of this code can read (another sinkbench source or torch,
an older format) and temporary files of killed writers (prune_stale).

Saved passes are deleted at the end of a session (clear_touched) only once their grid's
records are safely written: results.append_jsonl reports each record it wrote (`recorded`),
which releases the passes of that model's grid (the grid a pass ran in is the label of
sinkbench.measure.progress's tracking, e.g. 'H4-A on <model>'); a grid that wrote no record (an
error, a full disk) keeps its passes for --resume, and a failed record write keeps all of
that model's."""
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

from sinkbench.measure import progress


@dataclasses.dataclass
class Store:
    folder: Path
    read: bool  # --resume: reuse what an earlier run of the same passes left
    saved: int = 0  # whole passes (and attribution, removal traces) saved
    restored: int = 0  # checkpoints read back (whole passes and batches of passes)
    parts_saved: int = 0  # batches of a pass saved before the whole pass
    parts_restored: int = 0  # batches among `restored`
    redone: int = 0  # damaged checkpoints run again
    write_failed: int = 0  # checkpoints that could not be written (full disk, read-only folder)
    touched: set = dataclasses.field(default_factory=set)
    grid_of: dict = dataclasses.field(default_factory=dict)  # path -> (model folder, grid label) not yet recorded
    released: set = dataclasses.field(default_factory=set)  # paths whose grid's records are written
    held: set = dataclasses.field(default_factory=set)  # model folders a record write failed for


_store: Store | None = None


def configure(folder: Path | str | None, read: bool = False) -> Store | None:
    """Checkpoint the passes of this process under `folder` (None: stop checkpointing)."""
    global _store
    _store = None if folder is None else Store(Path(folder), read)
    return _store


def active() -> Store | None:
    return _store


def _grid_label() -> str | None:
    """The grid running now: progress's label 'H1 on <model>' -> 'H1' (None outside a grid)."""
    active = getattr(progress, "_active", None)
    label = getattr(active, "label", None)
    return label.split(" on ", 1)[0] if isinstance(label, str) else None


def _grid_records(grid: str | None, hypothesis: str) -> bool:
    """Do records of `hypothesis` come from `grid`? A hypothesis grid ('H4-A', 'H1') writes
    records of its hypothesis ('H4', 'H1'); a grid of no hypothesis ('sink rate', 'windows',
    'UE', None) feeds every record of its model."""
    if grid is None or not re.match(r"H\d", grid):
        return True
    return re.split(r"[-/ ]", grid, maxsplit=1)[0] == str(hypothesis)


def recorded(model: str, hypothesis: str) -> None:
    """A record of `hypothesis` on `model` is safely written (fsync'd): the saved passes of its
    grid are spent, and clear_touched may delete them."""
    store = _store
    if store is None:
        return
    folder = _slug(str(model))
    for path, (m, grid) in list(store.grid_of.items()):
        if m == folder and _grid_records(grid, hypothesis):
            store.released.add(path)
            del store.grid_of[path]


def record_failed(model: str) -> None:
    """A record of `model` could not be written: keep every saved pass of that model."""
    if _store is not None:
        _store.held.add(_slug(str(model)))


def clear_touched() -> int:
    """Delete the checkpoints this process wrote or read whose grid's records are written
    (recorded): the number of files removed. The passes of a grid that wrote no record (an
    error, a full disk) stay for --resume, as do others' checkpoints (another run's, killed)."""
    if _store is None:
        return 0
    removed = 0
    spent = {p for p in _store.touched if p in _store.released and p.parent.name not in _store.held}
    for path in sorted(spent):
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    for folder in [*{p.parent for p in spent}, _store.folder]:
        try:
            folder.rmdir()  # only when empty
        except OSError:
            pass
    _store.touched -= spent
    _store.released -= spent
    for folder in {p.parent for p in spent}:
        prune_stale(folder)
    return removed


def prune_stale(folder: Path) -> int:
    """Delete what no run of this code can read back from a model's checkpoint folder: files
    of another sinkbench source or torch (their keys include both), of an older format, and
    temporary files of writers that are gone (killed mid-write). Called when a session has
    recorded its grids; checkpoints of this code (another run's, killed) stay."""
    removed = 0
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return 0
    head = MAGIC + stamp()
    for path in entries:
        stale = False
        if path.suffix == ".tmp" and path.name.startswith("."):
            try:
                os.kill(int(path.name.rsplit(".", 2)[-2]), 0)
            except (ValueError, IndexError):
                stale = False
            except ProcessLookupError:
                stale = True
            except PermissionError:
                stale = False
        elif path.suffix == ".pt":
            try:
                with path.open("rb") as fh:
                    stale = fh.read(len(head)) != head
            except OSError:
                stale = False
        if stale:
            try:
                path.unlink()
                removed += 1
            except OSError:
                pass
    try:
        Path(folder).rmdir()  # only when empty
    except OSError:
        pass
    return removed


class Unkeyable(Exception):
    """An input whose identity the hash cannot capture: run the pass without a checkpoint."""


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the sinkbench package's source, the hypothesis units' included (H3, H6 and H7
    keep their passes in hypotheses/): a changed computation never reads old numbers."""
    import importlib.util

    # the units' folder is found, not imported (this layer sits below the units); installed, it
    # lies inside the package, in the repository beside it (hypotheses/)
    roots = [Path(__file__).resolve().parent.parent]
    spec = importlib.util.find_spec("sinkbench.hypotheses")
    if spec is not None:
        roots += [Path(p).resolve() for p in spec.submodule_search_locations or []]
    h = hashlib.sha256()
    seen = set()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if path in seen:
                continue
            seen.add(path)
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


# Inputs that decide how a pass is split into forward passes, not its numbers (module docstring).
NOT_KEYED = frozenset({"batch_size"})


def key_of(kind: str, inputs: dict) -> str:
    """The checkpoint's hash: what the pass computes (kind), its inputs less NOT_KEYED, the
    code and torch's version (not its thread count: see the module docstring)."""
    h = hashlib.sha256()
    h.update(repr((kind, code_version(), torch.__version__)).encode())
    _feed(h, {k: v for k, v in inputs.items() if k not in NOT_KEYED})
    return h.hexdigest()[:32]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", text).strip("_")[:80] or "model"


MAGIC = b"sinkbench-checkpoint-1\n"


def stamp() -> bytes:
    """The code and torch a checkpoint was written by (both are in every key, so a file with
    another stamp can never be read again: prune_stale deletes it)."""
    return f"code {code_version()[:16]} torch {torch.__version__}\n".encode()


def _write(path: Path, payload) -> None:
    """MAGIC, stamp(), the sha256 hex of the body and a newline, then the body (torch.save's bytes)."""
    import io

    body = io.BytesIO()
    torch.save(payload, body)
    data = body.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as fh:
            fh.write(MAGIC + stamp() + hashlib.sha256(data).hexdigest().encode() + b"\n")
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # atomic: a kill leaves either no checkpoint or a whole one
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def read(path: Path):
    """(payload, None) of a checkpoint file, or (None, why it cannot be used): another format,
    a checksum that does not match (a flipped bit, a truncated copy), or a body torch cannot read."""
    import io

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"
    if not data.startswith(MAGIC):
        return None, "not a sinkbench checkpoint (or one of an older format)"
    rest = data[len(MAGIC):]
    if not rest.startswith(stamp()):
        return None, "written by another sinkbench or torch (or its header is damaged)"
    rest = rest[len(stamp()):]
    digest, body = rest[:64], rest[65:]
    if len(rest) < 65 or rest[64:65] != b"\n" or hashlib.sha256(body).hexdigest().encode() != digest:
        return None, "its checksum does not match its contents (a flipped bit or a truncated file)"
    try:
        return torch.load(io.BytesIO(body), weights_only=True), None
    except Exception as exc:  # checksum fine, yet unreadable: another torch, or written wrongly
        return None, f"torch cannot read it ({type(exc).__name__})"


def _warn(text: str) -> None:
    import sys

    print(f"[sinkbench] warning: {text}", file=sys.stderr, flush=True)


def cached(kind: str, inputs: dict, compute: Callable[[], Any], encode: Callable[[Any], Any] = lambda x: x,
           decode: Callable[[Any], Any] = lambda x: x, passes: int = 1) -> Any:
    """compute(), checkpointed when a store is active. encode turns its result into tensors,
    numbers, strings and containers of them (torch.load(weights_only=True) reads them back);
    decode turns that back. passes: progress ticks a restored result stands for. A damaged
    checkpoint is named in a warning and its pass run again."""
    store = _store
    if store is None:
        return compute()
    try:
        key = key_of(kind, inputs)
    except Unkeyable:
        return compute()
    subject = inputs.get("subject")
    folder = store.folder / _slug(getattr(subject, "name", "model"))
    part = bool(_parts)
    # a part is named after the computation it is part of, so that saving that one finds its
    # parts in any batch layout (a resume with another --batch-size leaves the old ones unread)
    path = folder / (f"{kind}-{_parts[-1][0][:PART_TAG]}-{key}.pt" if part else f"{kind}-{key}.pt")
    grid = _grid_label()
    if part:  # a part of a larger checkpointed computation: spent once that one is saved
        _parts[-1][1].append(path)
    if store.read and path.is_file():
        payload, why = read(path)
        value = None
        if why is None:
            try:
                value = decode(payload)
            except Exception:  # a payload of the wrong shape for this kind
                why = "its contents are not what this pass returns"
        if why is None and value is not None:
            store.restored += 1  # what --resume reports as read back (a batch of a pass, or a whole one)
            store.parts_restored += part
            store.touched.add(path)
            store.grid_of.setdefault(path, (path.parent.name, grid))
            for _ in range(passes):
                progress.tick()
            _drop(store, _parts_of(folder, key))  # parts left by a writer killed before dropping them
            return value
        store.redone += 1
        _warn(f"checkpoint {path}: {why}; running its pass again")
    _parts.append((key, []))
    try:
        value = compute()
    finally:
        parts = _parts.pop()[1]
    try:
        _write(path, encode(value))
    except OSError as exc:  # a full disk, a read-only folder: the pass is done, only its checkpoint is lost
        if not store.write_failed:
            _warn(f"checkpoint {path}: cannot write it ({exc.strerror or exc}); continuing without saving passes "
                  "(a kill now loses them)")
        store.write_failed += 1
        return value
    if part:
        store.parts_saved += 1
    else:
        store.saved += 1
    store.touched.add(path)
    store.grid_of[path] = (path.parent.name, grid)
    store.released.discard(path)
    _drop(store, sorted(set(parts) | set(_parts_of(folder, key))))
    return value


# For each computation `cached` is running now, innermost last: its key and the paths of the part
# checkpoints (interventions: one per batch of a pass) written or read inside it. A computation
# saved whole makes its parts spent, those of other batch layouts too (found by PART_TAG).
_parts: list[tuple[str, list[Path]]] = []
PART_TAG = 12  # hex digits of the whole computation's key in its parts' names


def _parts_of(folder: Path, key: str) -> list[Path]:
    """The part checkpoints of the computation `key` in `folder`, from any batch layout."""
    try:
        return sorted(folder.glob(f"*-{key[:PART_TAG]}-*.pt"))
    except OSError:
        return []


def _drop(store: Store, paths: list[Path]) -> None:
    for p in paths:
        try:
            p.unlink()
        except OSError:
            pass
        store.touched.discard(p)
        store.released.discard(p)
        store.grid_of.pop(p, None)


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
