"""Evaluation text and windows of token ids.

The text is tokenized once without special tokens. Each window holds L0 text
tokens, L0 = seq_len minus the BOS slot (if the model uses BOS; BOS is then the
first token of every window and counts inside seq_len) and minus a designated
sink token (zoo models trained with one).

Layouts of the n test windows (docs/methods.md):
* spread (default): window i takes text tokens [s_i, s_i + L0) with
  s_i = floor(i * (n_tokens - L0) / max(n - 1, 1)), so windows sample the whole
  corpus instead of its first documents;
* consecutive: window i takes [i * L0, (i + 1) * L0) (the layout of older runs).
Selection windows (what a claim chooses from data, it chooses on these) sit in the
gaps between spread test windows and never overlap them (select_starts)."""
from __future__ import annotations

import json
import re
import string
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from sinkbench.errors import SinkbenchError
from sinkbench.measure.config import Settings


def pydoc_topics() -> list[str]:
    """Python's own pydoc_data.topics (about 465 KB of English), sorted by key."""
    from pydoc_data.topics import topics

    return [topics[k] for k in sorted(topics)]


def pydoc_text() -> str:
    return "\n".join(pydoc_topics())


def load_text(dataset: str) -> str:
    """--dataset: 'pydoc', a .txt file, a .jsonl file with a 'text' field, or a hub
    spec 'name:config:split:column' (via `datasets`, for users who are online)."""
    docs, separator = load_documents(dataset)
    return separator.join(docs)


def load_documents(dataset: str) -> tuple[list[str], str]:
    """The dataset's documents and the separator load_text joins them with: pydoc topics,
    jsonl records and hub rows joined by newlines; a .txt file's blocks between blank lines
    (each keeps its own trailing blank line, so they join with nothing into the file)."""
    if dataset in ("pydoc", "auto", "", None):
        return pydoc_topics(), "\n"
    path = Path(dataset).expanduser()
    if path.suffix in (".txt", ".jsonl"):
        if not path.is_file():
            raise SinkbenchError(f"--dataset {dataset}: file not found")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise SinkbenchError(f"--dataset {dataset}: not UTF-8 text; convert it to UTF-8") from None
        except OSError as exc:
            raise SinkbenchError(f"--dataset {dataset}: cannot read it ({exc.strerror or type(exc).__name__})") from None
        if path.suffix == ".txt":
            starts = [0] + [m.end() for m in re.finditer(r"\n[ \t]*\n", text)]
            return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])], ""
        texts = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)["text"]
                if not isinstance(value, str):
                    raise TypeError
                texts.append(value)
            except (json.JSONDecodeError, KeyError, TypeError):
                raise SinkbenchError(f"--dataset {dataset}: line {n} is not a JSON object with a string 'text' field") from None
        return texts, "\n"
    parts = dataset.split(":")
    if len(parts) == 4:
        name, config, split, column = parts
        try:
            import datasets

            ds = datasets.load_dataset(name, config or None, split=split)
        except Exception as exc:
            raise SinkbenchError(f"--dataset {dataset}: could not load from the hub ({type(exc).__name__}: {exc})") from None
        if column not in ds.column_names:
            raise SinkbenchError(f"--dataset {dataset}: no column {column!r}; columns are {ds.column_names}")
        return [t for t in ds[column] if t], "\n"
    raise SinkbenchError(
        f"--dataset {dataset!r}: expected 'pydoc', a .txt file, a .jsonl file with a 'text' field, "
        "or a hub spec 'name:config:split:column'"
    )


LAYOUTS = ("spread", "consecutive")


def window_starts(n_tokens: int, body: int, n_seqs: int, layout: str = "spread") -> list[int]:
    """Start offsets (in text tokens) of the n_seqs test windows of `body` tokens each."""
    if layout not in LAYOUTS:
        raise SinkbenchError(f"--windows {layout!r}: expected one of {', '.join(LAYOUTS)}")
    need = n_seqs * body
    if n_tokens < need:
        raise SinkbenchError(
            f"--dataset has {n_tokens} tokens, fewer than --n-seqs x --seq-len needs ({n_seqs} x {body} = {need}); "
            "lower --n-seqs or --seq-len, or use a longer dataset"
        )
    if layout == "consecutive":
        return [i * body for i in range(n_seqs)]
    return [i * (n_tokens - body) // max(n_seqs - 1, 1) for i in range(n_seqs)]


def select_starts(test: list[int], body: int, n_select: int, n_tokens: int) -> list[int]:
    """Start offsets of n_select selection windows that overlap no test window.

    The free stretches are the gaps between consecutive test windows (with the spread
    layout the test windows touch both ends of the text). Selection window j goes to
    gap floor(j * G / n_select) of the G gaps, so they spread over the corpus too; the c
    windows of one gap are laid out inside it by the spread rule (one window: centred)."""
    if n_select == 0:
        return []
    ends = sorted(test)
    gaps = [(a + body, b) for a, b in zip(ends, ends[1:])] + [(ends[-1] + body, n_tokens)]
    gaps = [(a, b) for a, b in gaps if b > a]
    if not gaps:
        raise SinkbenchError(f"--n-select {n_select}: the text has no room between the test windows; "
                             "use --windows spread, fewer --n-seqs, or a longer --dataset")
    per_gap = [0] * len(gaps)
    for j in range(n_select):
        per_gap[j * len(gaps) // n_select] += 1
    out = []
    for (a, b), c in zip(gaps, per_gap):
        if c == 0:
            continue
        room = b - a - c * body
        if room < 0:
            raise SinkbenchError(
                f"--n-select {n_select}: a gap of {b - a} tokens between test windows cannot hold {c} selection windows "
                f"of {body} tokens; lower --n-select or --n-seqs, or use a longer --dataset")
        out += [a + room // 2] if c == 1 else [a + r * (b - a - body) // (c - 1) for r in range(c)]
    return out


def make_windows(token_ids: list[int], seq_len: int, n_seqs: int, bos_id: int | None = None,
                 insert: tuple[int, int] | None = None, layout: str = "consecutive",
                 starts: list[int] | None = None) -> torch.Tensor:
    """[n_seqs, seq_len] windows laid out by `layout` (or at the given text offsets `starts`);
    BOS first if bos_id is given; insert=(position, token_id) puts a fixed token at that
    position of every window."""
    body = window_body(seq_len, bos_id is not None, insert is not None)
    if starts is None:
        starts = window_starts(len(token_ids), body, n_seqs, layout)
    n_seqs = len(starts)
    ids = torch.tensor([token_ids[s:s + body] for s in starts], dtype=torch.long).view(n_seqs, body)
    if insert is not None:
        k, tok = insert
        ids = torch.cat([ids[:, :k], torch.full((n_seqs, 1), tok, dtype=torch.long), ids[:, k:]], 1)
    if bos_id is not None:
        ids = torch.cat([torch.full((n_seqs, 1), bos_id, dtype=torch.long), ids], 1)
    return ids


def window_body(seq_len: int, bos: bool, insert: bool = False) -> int:
    """L0: text tokens per window (seq_len minus the BOS slot and a designated sink token)."""
    return seq_len - int(bos) - int(insert)


def zoo_text(manifest: dict, n_tokens: int = 200_000) -> str:
    """Held-out text of a zoo model's own Bigram-Backcopy language."""
    from sinkbench.model.zoo.language import BigramBackcopy

    ev = manifest["evaluation"]
    lang = BigramBackcopy(**ev["language"])
    return lang.text(lang.stream(n_tokens, sample_seed=ev["heldout_sample_seed"]))


def dataset_name(subject, dataset: str) -> str:
    """What 'auto' stands for on this subject, for the record."""
    if dataset != "auto":
        return dataset
    if "zoo" in subject.meta:
        ev = subject.meta["zoo"]["evaluation"]
        return f"bigram-backcopy(language seed {ev['language']['seed']}, sample seed {ev['heldout_sample_seed']})"
    return "pydoc"


def subject_text(subject, dataset: str) -> str:
    """'auto' is pydoc for pretrained models and the model's own language for zoo models."""
    if dataset == "auto":
        return zoo_text(subject.meta["zoo"]) if "zoo" in subject.meta else pydoc_text()
    return load_text(dataset)


def windows_for(subject, dataset: str, seq_len: int, n_seqs: int, bos: bool | None = None, layout: str = "spread",
                split: str = "test", n_select: int = 0) -> torch.Tensor:
    """Test windows (split='test') or the n_select selection windows between them
    (split='select') for a subject; bos=None means the model's native use. A zoo model
    trained with a designated sink token gets it at its trained position in every window."""
    use_bos = subject.uses_bos if bos is None else bos
    longest = getattr(subject.model.config, "max_position_embeddings", None)
    if longest is not None and seq_len > longest:
        raise SinkbenchError(f"--seq-len {seq_len}: longer than {subject.name}'s max_position_embeddings ({longest}); pass --seq-len {longest} or less")
    if use_bos and subject.bos_id is None:
        raise SinkbenchError(f"{subject.name}: the tokenizer has no BOS token, so BOS cannot be forced on")
    tokens = text_tokens(subject, dataset)
    k = subject.meta.get("zoo", {}).get("evaluation", {}).get("designated_sink")
    insert = (k, subject.tokenizer.convert_tokens_to_ids("<sink>")) if k is not None else None
    layout_ = window_layout(subject, dataset, seq_len, n_seqs, use_bos, layout, n_select)
    return make_windows(tokens, seq_len, n_seqs, subject.bos_id if use_bos else None, insert,
                        starts=layout_["select_starts" if split == "select" else "test_starts"])


# Token ids of (model source path, dataset) that the start-up checks (sinkbench.run.preflight)
# already computed with the same tokenizer files: the run reuses them instead of tokenizing twice.
_SHARED: dict[tuple[str, str], list[int]] = {}


def share_tokens(source_path: str, dataset: str, ids: list[int]) -> list[int]:
    """Keep the token ids of a dataset under a model's source path for text_tokens."""
    _SHARED[str(source_path), dataset] = ids
    return ids


def text_tokens(subject, dataset: str) -> list[int]:
    """The dataset's text tokenized once per subject (no special tokens), memoised."""
    memo = subject.meta.setdefault("tokens", {})
    if dataset not in memo:
        shared = _SHARED.pop((str(subject.meta.get("source", {}).get("path")), dataset), None)
        if shared is not None and not getattr(subject, "remote", False):
            memo[dataset] = shared
        else:
            memo[dataset] = subject.tokenizer(subject_text(subject, dataset), add_special_tokens=False).input_ids
    return memo[dataset]


def window_layout(subject, dataset: str, seq_len: int, n_seqs: int, bos: bool | None = None, layout: str = "spread",
                  n_select: int = 0) -> dict:
    """Where the test and selection windows start in the tokenized text (for the record:
    anyone can rebuild the windows from these offsets and the rule in the module docstring)."""
    use_bos = subject.uses_bos if bos is None else bos
    n_tokens = len(text_tokens(subject, dataset))
    designated = subject.meta.get("zoo", {}).get("evaluation", {}).get("designated_sink") is not None
    body = window_body(seq_len, use_bos, designated)
    test = window_starts(n_tokens, body, n_seqs, layout)
    return {"layout": layout, "text_tokens": n_tokens, "window_text_tokens": body, "test_starts": test,
            "select_starts": select_starts(test, body, n_select, n_tokens)}


def window_documents(subject, dataset: str, starts: list[int]) -> list[int]:
    """The document (see load_documents) of each window's first text token; windows start
    at these token offsets of text_tokens. Memoised per subject."""
    from sinkbench.stats.units import document_index

    memo = subject.meta.setdefault("window_documents", {})
    key = (dataset, tuple(starts))
    if key not in memo:
        if dataset == "auto" and "zoo" in subject.meta:
            raise SinkbenchError("--units document: a zoo model's generated language has no documents; "
                                 "use --units window")
        docs, separator = load_documents("pydoc" if dataset == "auto" else dataset)
        doc_starts = np.cumsum([0] + [len(d) + len(separator) for d in docs[:-1]])
        enc = subject.tokenizer(separator.join(docs), add_special_tokens=False, return_offsets_mapping=True)
        memo[key] = document_index(doc_starts, [enc["offset_mapping"][i][0] for i in starts]).tolist()
    return memo[key]


# --------------------------------------------------------------------------- frequent tokens
# H3's frequency tests and H4-A's frequent-token targets.


def is_punct_or_space(token: str) -> bool:
    s = token.replace("Ġ", " ").replace("▁", " ").replace("Ċ", "\n")
    return s.strip() == "" or all(c in string.punctuation or c.isspace() for c in s)


def frequent_mask(tokenizer, ids: np.ndarray, counts: Counter, top_share: float = Settings.h3_frequent_share) -> np.ndarray:
    """True where the token is among the text's most frequent types or is punctuation/whitespace."""
    punct = np.vectorize(lambda i: is_punct_or_space(tokenizer.convert_ids_to_tokens(int(i)) or ""))(ids)
    return np.isin(ids, list(frequent_token_ids(counts, top_share))) | punct


def frequent_token_ids(counts: Counter, top_share: float) -> set:
    """The most frequent top_share of the text's token types (at least one)."""
    n = max(1, int(round(len(counts) * top_share)))
    return {tok for tok, _ in counts.most_common(n)}
