"""The unit of replication: each test window (default), or each document.

Windows that fall in one document share its topic, style and difficulty, so with
`--units document` the per-window arrays of a grid are averaged within each document
(pydoc topic, jsonl record, a .txt block between blank lines) before any verdict, and
every test then runs over documents. A mean over windows and a mean over documents
weigh windows differently (a document's windows count as one); with the spread layout
most windows sit in documents of their own and the two agree.

Dependence between neighbouring units is measured either way (the lag-1 autocorrelation
in every record); docs/calibration.md gives the false-pass rate at AR(1) rho 0.5 with and
without document units."""
from __future__ import annotations

import dataclasses

import numpy as np

UNITS = ("window", "document")


def group_mean(a: np.ndarray, groups: np.ndarray, axis: int = 0) -> np.ndarray:
    """Mean of a over each group along axis (groups: a group index per window, in order of
    first appearance)."""
    order = list(dict.fromkeys(groups.tolist()))
    return np.stack([np.take(a, np.flatnonzero(groups == g), axis=axis).mean(axis) for g in order], axis=axis)


def map_windows(obj, fn):
    """obj (verdict inputs: dataclasses, dicts, tuples of per-window arrays) with fn(array,
    axis) applied to every per-window array. Arrays carry windows on axis 0 unless their
    dataclass field says otherwise (metadata window_axis); anything else is kept."""
    if isinstance(obj, np.ndarray):
        return fn(obj, 0) if obj.ndim else obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {}
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if isinstance(v, np.ndarray) and v.ndim:
                changes[f.name] = fn(v, f.metadata.get("window_axis", 0))
            elif isinstance(v, (dict, tuple)) or dataclasses.is_dataclass(v):
                changes[f.name] = map_windows(v, fn)
        return dataclasses.replace(obj, **changes)
    if isinstance(obj, dict):
        return {k: map_windows(v, fn) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(map_windows(v, fn) for v in obj)
    return obj


def by_group(obj, groups: np.ndarray):
    """obj with every per-window array averaged within groups (one unit per group)."""
    return map_windows(obj, lambda a, axis: group_mean(a.astype(float), groups, axis))


def document_index(doc_starts: list[int], char_offsets: list[int]) -> np.ndarray:
    """The document (index into doc_starts, ascending character offsets) of each offset."""
    return np.searchsorted(np.asarray(doc_starts), np.asarray(char_offsets), side="right") - 1
