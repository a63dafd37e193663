"""The only place that knows architecture names (nnterp-style accessors).

A Subject bundles a loaded model, its nnsight wrapper, tokenizer and the few
handles the rest of the harness needs: decoder layers, final norm (as its
effective gain, measured numerically so Gemma's (1 + g) needs no special case),
unembedding, embedding, and each layer's attention module. Everything is checked
once at load time with a tiny forward pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import torch

from . import attention
from .errors import SinkbenchError

LAYER_PATHS = ("model.layers", "model.language_model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers")
NORM_PATHS = ("model.norm", "model.language_model.norm", "transformer.ln_f", "gpt_neox.final_layer_norm", "model.decoder.final_layer_norm")
ATTN_NAMES = ("self_attn", "attn", "attention")


def get_path(obj, path: str):
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def _first_path(model, paths: tuple[str, ...], what: str) -> str:
    for p in paths:
        try:
            get_path(model, p)
            return p
        except (AttributeError, IndexError):
            continue
    raise SinkbenchError(f"unsupported architecture {type(model).__name__}: cannot find its {what} (tried {', '.join(paths)})")


@dataclass
class Subject:
    """A loaded model and its accessors. Nothing downstream asks which model it is."""

    name: str
    model: torch.nn.Module  # the Hugging Face model
    tokenizer: object
    sha256: str
    dtype: str
    layers_path: str = ""
    norm_path: str = ""
    attn_name: str = ""
    family: str = ""
    meta: dict = field(default_factory=dict)
    remote: bool = False  # traces run on NDIF (harness.remote)

    def __post_init__(self):
        self.layers_path = _first_path(self.model, LAYER_PATHS, "decoder layers")
        self.norm_path = _first_path(self.model, NORM_PATHS, "final norm")
        layer0 = get_path(self.model, self.layers_path)[0]
        for name in ATTN_NAMES:
            if hasattr(layer0, name):
                self.attn_name = name
                break
        else:
            raise SinkbenchError(f"unsupported architecture {type(self.model).__name__}: no attention module in its decoder layers")
        self.family = getattr(self.model.config, "model_type", "unknown")
        if not self.remote and getattr(self.model.config, "_attn_implementation", None) == "eager":
            # Same eager numbers, but a pass may ask for less (harness.attention).
            attention.install(self.model)

    # --- handles -----------------------------------------------------------
    @cached_property
    def nn(self):
        """The nnsight wrapper (built lazily: unit tests of pure functions don't need it)."""
        from nnsight import NNsight

        return NNsight(self.model)

    def layer(self, envoy_or_model, i: int):
        return get_path(envoy_or_model, self.layers_path)[i]

    def attention(self, envoy_or_model, i: int):
        return getattr(self.layer(envoy_or_model, i), self.attn_name)

    def branches(self, envoy_or_model, i: int) -> tuple:
        """(attention branch, MLP branch) modules of layer i: what each adds to the residual.
        Gemma-style layers norm each branch before the residual add (post_*_layernorm);
        Llama/Qwen/Mistral/GPT-OSS add the attention's output[0] and the MLP's output."""
        layer = self.layer(envoy_or_model, i)
        if hasattr(layer, "post_feedforward_layernorm"):
            return layer.post_attention_layernorm, layer.post_feedforward_layernorm
        return getattr(layer, self.attn_name), layer.mlp

    @staticmethod
    def branch_tensor(output):
        """The residual write inside a branch module's output (attention returns a tuple)."""
        return output[0] if isinstance(output, tuple) else output

    def final_norm(self, envoy_or_model):
        return get_path(envoy_or_model, self.norm_path)

    @property
    def n_layers(self) -> int:
        return len(get_path(self.model, self.layers_path))

    @property
    def d_model(self) -> int:
        return self.unembedding.shape[1]

    @property
    def device(self) -> torch.device:
        return self.unembedding.device

    @property
    def unembedding(self) -> torch.Tensor:
        return self.model.get_output_embeddings().weight

    def unembedding_in(self, envoy):
        """The output embedding as seen inside a trace: the local tensor, or, for a
        remote subject, the server's parameter (so that V x d is never uploaded)."""
        if not self.remote:
            return self.unembedding
        head = self.model.get_output_embeddings()
        path = next(n for n, m in self.model.named_modules() if m is head)
        return get_path(envoy, path).weight

    def trace(self, ids, **kwargs):
        """nnsight's trace, sent to NDIF for a remote subject."""
        return self.nn.trace(ids, remote=True, **kwargs) if self.remote else self.nn.trace(ids, **kwargs)

    @property
    def embedding(self) -> torch.Tensor:
        return self.model.get_input_embeddings().weight

    @property
    def logit_softcap(self) -> float | None:
        return getattr(self.model.config, "final_logit_softcapping", None)

    @cached_property
    def norm_gain(self) -> torch.Tensor:
        """Effective per-dimension gain g of the final norm: norm(c * 1) / 1 for a large c.
        RMSNorm(c*1) = gain exactly up to eps; this covers w, (1 + w) and LayerNorm-free scales."""
        norm = self.final_norm(self.model)
        probe = torch.full((1, 1, self.d_model), 1000.0, dtype=self.unembedding.dtype, device=self.device)
        with torch.no_grad():
            gain = norm(probe).reshape(-1).float()
        return gain

    @cached_property
    def uses_bos(self) -> bool:
        """Does the tokenizer put BOS first by default (the model's native use)?"""
        tok = self.tokenizer
        if tok.bos_token_id is None:
            return False
        ids = tok("a").input_ids
        return len(ids) > 0 and ids[0] == tok.bos_token_id

    @property
    def bos_id(self) -> int | None:
        return self.tokenizer.bos_token_id

    # --- load-time check -----------------------------------------------------
    def check(self) -> None:
        """One tiny traced pass: layer outputs are [B, T, d] tensors and attention
        probabilities are available and sum to one. Fails loudly at load time."""
        ids = torch.tensor([[self.bos_id or 0, 1, 2, 3, 4]], device=self.device) % self.model.config.vocab_size
        nn = self.nn
        with torch.no_grad(), self.trace(ids):
            probs = self.attention(nn, 0).output[1].save()
            hidden = self.layer(nn, 0).output.save()
        if not isinstance(hidden, torch.Tensor) or hidden.shape[-1] != self.d_model:
            raise SinkbenchError(f"{self.name}: decoder layer output is {type(hidden).__name__}, expected a [B, T, d] tensor")
        if probs is None or probs.dim() != 4:
            raise SinkbenchError(
                f"{self.name}: attention probabilities are not available (got {type(probs).__name__}); "
                "the model must run with attn_implementation='eager'"
            )
        # Rows sum to 1, or to less where a learned sink logit (gpt-oss) absorbs the rest.
        sums = probs.float().sum(-1)
        if (probs < 0).any() or (sums > 1 + 1e-2).any() or (sums <= 0).any():
            raise SinkbenchError(f"{self.name}: attention output[1] is not a probability distribution over keys")


def load_subject(spec: str, device: str = "cpu", dtype: str = "float32", trust_remote_code: bool = False) -> Subject:
    """Resolve, convert (cached), load with eager attention, and check accessors."""
    from . import models

    source = models.resolve(spec)
    model, tok = models.load_hf_model(source, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    subject = Subject(name=spec, model=model, tokenizer=tok, sha256=models.weights_sha256(source), dtype=dtype)
    subject.meta["source"] = {"kind": source.kind, "path": source.path}
    manifest = models.converted_dir(source) / "sinkbench_zoo.json"
    if manifest.exists():  # a zoo model: it declares its own evaluation language and sink position
        import json

        subject.meta["zoo"] = json.loads(manifest.read_text())
    subject.check()
    return subject
