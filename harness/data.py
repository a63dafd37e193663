"""Evaluation text and windows of token ids (SCIENCE.md, issue 2 §7).

The text is tokenized once without special tokens and cut into consecutive,
non-overlapping windows of seq_len tokens. For a model that uses BOS, BOS is the
first token of every window and counts inside seq_len."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .errors import SinkbenchError


def pydoc_text() -> str:
    """Python's own pydoc_data.topics (about 465 KB of English), sorted by key."""
    from pydoc_data.topics import topics

    return "\n".join(topics[k] for k in sorted(topics))


def load_text(dataset: str) -> str:
    """--dataset: 'pydoc', a .txt file, a .jsonl file with a 'text' field, or a hub
    spec 'name:config:split:column' (via `datasets`, for users who are online)."""
    if dataset in ("pydoc", "auto", "", None):
        return pydoc_text()
    path = Path(dataset).expanduser()
    if path.suffix == ".txt":
        if not path.is_file():
            raise SinkbenchError(f"--dataset {dataset}: file not found")
        return path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        if not path.is_file():
            raise SinkbenchError(f"--dataset {dataset}: file not found")
        texts = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                texts.append(json.loads(line)["text"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise SinkbenchError(f"--dataset {dataset}: line {n} is not a JSON object with a 'text' field") from None
        return "\n".join(texts)
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
        return "\n".join(t for t in ds[column] if t)
    raise SinkbenchError(
        f"--dataset {dataset!r}: expected 'pydoc', a .txt file, a .jsonl file with a 'text' field, "
        "or a hub spec 'name:config:split:column'"
    )


def make_windows(token_ids: list[int], seq_len: int, n_seqs: int, bos_id: int | None = None,
                 insert: tuple[int, int] | None = None) -> torch.Tensor:
    """[n_seqs, seq_len] consecutive non-overlapping windows; BOS first if bos_id is given;
    insert=(position, token_id) puts a fixed token at that position of every window."""
    body = seq_len - (1 if bos_id is not None else 0) - (1 if insert is not None else 0)
    need = n_seqs * body
    if len(token_ids) < need:
        raise SinkbenchError(
            f"--dataset has {len(token_ids)} tokens, fewer than --n-seqs x --seq-len needs ({n_seqs} x {body} = {need}); "
            "lower --n-seqs or --seq-len, or use a longer dataset"
        )
    ids = torch.tensor(token_ids[:need], dtype=torch.long).view(n_seqs, body)
    if insert is not None:
        k, tok = insert
        ids = torch.cat([ids[:, :k], torch.full((n_seqs, 1), tok, dtype=torch.long), ids[:, k:]], 1)
    if bos_id is not None:
        ids = torch.cat([torch.full((n_seqs, 1), bos_id, dtype=torch.long), ids], 1)
    return ids


def zoo_text(manifest: dict, n_tokens: int = 200_000) -> str:
    """Held-out text of a zoo model's own Bigram-Backcopy language."""
    from .zoo.language import BigramBackcopy

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


def windows_for(subject, dataset: str, seq_len: int, n_seqs: int, bos: bool | None = None) -> torch.Tensor:
    """Windows for a subject; bos=None means the model's native use. A zoo model trained
    with a designated sink token gets it at its trained position in every window."""
    use_bos = subject.uses_bos if bos is None else bos
    longest = getattr(subject.model.config, "max_position_embeddings", None)
    if longest is not None and seq_len > longest:
        raise SinkbenchError(f"--seq-len {seq_len}: longer than {subject.name}'s max_position_embeddings ({longest}); pass --seq-len {longest} or less")
    if use_bos and subject.bos_id is None:
        raise SinkbenchError(f"{subject.name}: the tokenizer has no BOS token, so BOS cannot be forced on")
    memo = subject.meta.setdefault("tokens", {})
    if dataset not in memo:
        memo[dataset] = subject.tokenizer(subject_text(subject, dataset), add_special_tokens=False).input_ids
    k = subject.meta.get("zoo", {}).get("evaluation", {}).get("designated_sink")
    insert = (k, subject.tokenizer.convert_tokens_to_ids("<sink>")) if k is not None else None
    return make_windows(memo[dataset], seq_len, n_seqs, subject.bos_id if use_bos else None, insert)
