"""--remote: run the interventions on NDIF (https://ndif.us) through nnsight.

Thin by design, and not exercised here (it needs a network, an NDIF API key and a
model NDIF hosts); the tests cover its argument checks and that traces are sent
with remote=True. What it does:

* the model is an nnsight LanguageModel built from the hub id with meta weights
  (only config and tokenizer are fetched), asked to run eager attention;
* the two tensors the spectrum needs locally, the output embedding and the final
  norm's weight, are read from the checkpoint's safetensors (this downloads the
  shards that hold them, not the whole model);
* every trace of harness.interventions runs with remote=True, and the harness
  package is registered with nnsight so that its helpers (edits, chunked NLL,
  sink mass) travel with each request by value. The NLL reads the server's own
  output embedding inside the trace, so nothing of size V x d is uploaded.

Passes whose prefix was saved from the base run upload that prefix (B x T x d per
batch); on NDIF, --layers all therefore moves L of them per batch."""
from __future__ import annotations

import os

import torch

from . import models
from .errors import SinkbenchError


def check_remote(spec: str, env=os.environ) -> str:
    """The hub id to run remotely, or a SinkbenchError saying what to fix."""
    if not env.get("NDIF_API_KEY"):
        raise SinkbenchError("--remote: no NDIF API key; get one at https://login.ndif.us and export NDIF_API_KEY=<key>")
    try:
        is_hub = models.resolve(spec).kind == "hub"  # the registry's own reading of --model
    except SinkbenchError:
        is_hub = False
    if not is_hub:
        raise SinkbenchError(
            f"--remote --model {spec!r}: expected a Hugging Face repo id that NDIF hosts (e.g. meta-llama/Llama-3.1-8B); "
            "aliases, local directories and .gguf files run locally: drop --remote")
    return spec


def _checkpoint_tensor(repo: str, names: list[str]) -> torch.Tensor:
    """The first of `names` found in the repo's safetensors checkpoint."""
    import json

    from huggingface_hub import hf_hub_download
    from safetensors import safe_open

    try:
        index = json.loads(open(hf_hub_download(repo, "model.safetensors.index.json")).read())["weight_map"]
    except Exception:  # a single-file checkpoint
        index = None
    for name in names:
        shard = "model.safetensors" if index is None else index.get(name)
        if shard is None:
            continue
        with safe_open(hf_hub_download(repo, shard), framework="pt") as fh:
            if name in fh.keys():
                return fh.get_tensor(name).float()
    raise SinkbenchError(f"--remote --model {repo}: none of {names} in its safetensors checkpoint")


def load_remote_subject(spec: str, dtype: str = "float32"):
    """A Subject whose traces run on NDIF."""
    import nnsight
    from nnsight import LanguageModel

    import harness

    from .access import Subject

    repo = check_remote(spec)
    nnsight.register(harness)
    lm = LanguageModel(repo, attn_implementation="eager")
    model = lm._model
    subject = Subject(name=spec, model=model, tokenizer=lm.tokenizer, sha256=f"hub:{repo}", dtype=dtype, remote=True)
    subject.__dict__["nn"] = lm  # the LanguageModel, not a local NNsight wrapper
    # Materialise the two parameters the spectrum reads; the rest stays on the meta device.
    head = model.get_output_embeddings()
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    head.weight = torch.nn.Parameter(_checkpoint_tensor(repo, ["model.embed_tokens.weight"] if tied else ["lm_head.weight"]),
                                     requires_grad=False)
    norm = subject.final_norm(model)
    norm.weight = torch.nn.Parameter(_checkpoint_tensor(repo, [f"{subject.norm_path}.weight"]), requires_grad=False)
    subject.check()  # one tiny remote pass: accessors and attention probabilities
    return subject
