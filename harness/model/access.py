"""The only place that reads a model through architecture names (nnterp-style accessors).

A Subject bundles a loaded model, its nnsight wrapper, tokenizer and the few
handles the rest of the harness needs: decoder layers, each layer's attention and
MLP branches, the final norm (read as a fold: gain, centring, bias), the
unembedding, the logit post-processing and the embedding. Which names and
post-processing a family has is one row of sinkbench.model.architectures.FAMILIES; a
family without a row is refused in one line (architectures.unsupported_reason).
Everything is checked once at load time: the norm fold against the norm module on
a random input, the branches and attention probabilities with a tiny traced pass,
and the logits sinkbench forms against one full forward of the model.

(Over 400 lines on purpose: the accessors and the load-time checks that prove them are one
contract, read together; splitting them would put the check apart from what it checks.)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import torch

from sinkbench.model import architectures, attention
from sinkbench.model.architectures import unsupported_reason  # noqa: F401 (the config-only start-up check, before weights load)
from sinkbench.errors import SinkbenchError
from sinkbench.model.metrics import LogitMap

# A linear map between the final norm and the unembedding (OPT with word_embed_proj_dim != d).
PROJECT_OUT_PATHS = ("model.decoder.project_out",)
# RMSNorm classes that scale by (1 + weight) instead of weight.
UNIT_OFFSET_NORMS = frozenset({
    "GemmaRMSNorm", "Gemma2RMSNorm", "Gemma3RMSNorm", "RecurrentGemmaRMSNorm", "T5GemmaRMSNorm", "T5Gemma2RMSNorm",
    "VaultGemmaRMSNorm", "Qwen3NextRMSNorm", "Qwen3_5RMSNorm", "Qwen3_5MoeRMSNorm", "Qwen4ExpTextRMSNorm",
    "MiniMaxM3VLRMSNorm", "Step3p7RMSNorm", "NemotronLayerNorm1P",
})


def get_path(obj, path: str):
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def _find_path(model, paths: tuple[str, ...]) -> str | None:
    for p in paths:
        try:
            if get_path(model, p) is not None:  # OPT sets absent modules to None
                return p
        except (AttributeError, IndexError):
            continue
    return None


def _first_path(model, paths: tuple[str, ...], what: str) -> str:
    found = _find_path(model, paths)
    if found is None:
        raise SinkbenchError(f"unsupported architecture {type(model).__name__}: cannot find its {what} (tried {', '.join(paths)})")
    return found


def _first_name(module, names: tuple[str, ...], what: str, model) -> str:
    for name in names:  # a dotted path where the attention sits in a sub-block (DBRX: norm_attn_norm.attn)
        try:
            if get_path(module, name) is not None:
                return name
        except (AttributeError, IndexError):
            continue
    raise SinkbenchError(f"unsupported architecture {type(model).__name__}: no {what} module in its decoder layers (tried {', '.join(names)})")


@dataclass(frozen=True)
class NormFold:
    """The final norm as an affine map after a scalar division:
    y = gain * (C x) / sigma(x) + bias, with C = I - 11^T/d when centred (LayerNorm)
    and C = I otherwise (RMSNorm). The logits are then W_U diag(gain) C x / sigma + W_U bias."""

    gain: torch.Tensor  # [d] float32 (Gemma-style norms: 1 + weight)
    centred: bool
    bias: torch.Tensor | None  # [d] or None
    eps: float

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """The norm computed from the fold (float32): what the module must reproduce."""
        x = x.float()
        if self.centred:
            x = x - x.mean(-1, keepdim=True)
        y = self.gain.to(x.device) * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return y if self.bias is None else y + self.bias.float().to(x.device)


def read_norm(norm: torch.nn.Module, model_name: str, width: int | None = None) -> NormFold:
    """Read the fold from the norm module's class, weight, bias and epsilon (no probing).
    A LayerNorm-like class centres; an RMSNorm-like class does not; anything else is refused.
    width: the model's d, for a norm with no parameter or shape at all (NanoChat's bare RMSNorm)."""
    cls = type(norm).__name__
    if isinstance(norm, torch.nn.LayerNorm) or ("LayerNorm" in cls and "RMS" not in cls):
        centred = True  # custom '*LayerNorm' classes that are RMS norms (T5) fail verify_norm
    elif isinstance(norm, torch.nn.RMSNorm) or "RMSNorm" in cls:
        centred = False
    else:
        raise SinkbenchError(f"{model_name}: cannot fold its final norm {cls} (neither a LayerNorm nor an RMSNorm)")
    weight, bias = getattr(norm, "weight", None), getattr(norm, "bias", None)
    if weight is None:  # a norm without a learned scale (OLMo): unit gain
        shape = getattr(norm, "normalized_shape", None) or (None if bias is None else bias.shape) or (width and (width,))
        if not shape:
            raise SinkbenchError(f"{model_name}: cannot fold its final norm {cls}: no weight, bias or normalized_shape gives its width")
        gain = torch.ones(shape[-1])
    else:
        gain = weight.detach().float() + (1.0 if cls in UNIT_OFFSET_NORMS else 0.0)
    eps = next((float(getattr(norm, a)) for a in ("eps", "variance_epsilon", "epsilon") if isinstance(getattr(norm, a, None), (int, float))), 1e-6)
    return NormFold(gain=gain, centred=centred, bias=None if bias is None else bias.detach(), eps=eps)


def verify_norm(norm: torch.nn.Module, fold: NormFold, model_name: str) -> None:
    """The fold must reproduce the module on a random input, else the basis would be wrong."""
    params = [t for t in (getattr(norm, "weight", None), getattr(norm, "bias", None)) if isinstance(t, torch.Tensor)]
    if any(t.is_meta for t in params):
        return  # a remote subject: only the weight was materialised (sinkbench.model.remote)
    device, dtype = (params[0].device, params[0].dtype) if params else (fold.gain.device, torch.float32)
    x = 3 * torch.randn(2, 3, fold.gain.shape[-1], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = norm(x.to(device=device, dtype=dtype)).float()
    want = fold.apply(x.to(device))
    tol = 1e-3 if dtype == torch.float32 else 3e-2
    if not torch.allclose(got, want, rtol=tol, atol=tol * want.abs().max().item()):
        kind = "LayerNorm" if fold.centred else "RMSNorm"
        raise SinkbenchError(
            f"{model_name}: cannot fold its final norm {type(norm).__name__}: it does not compute a {kind} with "
            f"{'(1 + weight)' if type(norm).__name__ in UNIT_OFFSET_NORMS else 'weight'} as gain (max error "
            f"{(got - want).abs().max().item():.3g}); add its class to sinkbench.model.access"
        )


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
    mlp_name: str = ""
    project_out_path: str | None = None
    family: str = ""
    arch: architectures.Family | None = None  # this family's row of sinkbench.model.architectures
    meta: dict = field(default_factory=dict)
    remote: bool = False  # traces run on NDIF (sinkbench.model.remote)
    _trace_shape: tuple = field(default=(), init=False, repr=False)  # [B, T] of the trace now running

    def __post_init__(self):
        config = self.model.config
        reason = architectures.unsupported_reason(config)
        if reason is not None:
            raise SinkbenchError(f"{self.name}: {reason}")
        fam = architectures.family_of(config)
        self.arch = fam
        self.layers_path = _first_path(self.model, fam.layers, "decoder layers")
        self.norm_path = _first_path(self.model, fam.final_norm, "final norm")
        self.project_out_path = _find_path(self.model, PROJECT_OUT_PATHS)
        layer0 = get_path(self.model, self.layers_path)[0]
        self.attn_name = _first_name(layer0, (fam.attention,), "attention", self.model)
        self.mlp_name = _first_name(layer0, (fam.mlp,), "MLP", self.model)
        self.family = getattr(config, "model_type", "unknown")
        if fam.attention_interface and not self.remote and getattr(config, "_attn_implementation", None) == "eager":
            # Same eager numbers, but a pass may ask for less (sinkbench.model.attention). Families
            # with their own attention code (Falcon, Bloom) stay eager: every mode reads full maps.
            attention.install(self.model, [self.attention(self.model, i) for i in range(self.n_layers)])

    # --- handles -----------------------------------------------------------
    @cached_property
    def nn(self):
        """The nnsight wrapper (built lazily: unit tests of pure functions don't need it)."""
        from nnsight import NNsight

        return NNsight(self.model)

    def layer(self, envoy_or_model, i: int):
        return get_path(envoy_or_model, self.layers_path)[i]

    def attention(self, envoy_or_model, i: int):
        return get_path(self.layer(envoy_or_model, i), self.attn_name)

    def mlp(self, envoy_or_model, i: int):
        return get_path(self.layer(envoy_or_model, i), self.mlp_name)

    def branches(self, envoy_or_model, i: int) -> tuple:
        """(attention branch, MLP branch) modules of layer i: what each adds to the residual,
        so that layer output = layer input + branch_scale * both writes (checked at load).
        Post-norm layers (Gemma-2/3, OLMo-2) norm each branch before the residual add, and
        Bloom adds the residual inside its modules: their writes are the modules named by the
        family's `writes`; elsewhere the attention's output[0] and the MLP's output (OPT:
        fc2's). Parallel blocks (GPT-NeoX, GPT-J, Phi, Cohere, Falcon) add both to the same input."""
        layer = self.layer(envoy_or_model, i)
        if self.arch is not None and self.arch.writes is not None:
            return tuple(get_path(layer, p) for p in self.arch.writes)
        return get_path(layer, self.attn_name), get_path(layer, self.mlp_name)

    @property
    def branch_scale(self) -> float:
        """What each branch output is multiplied by before the residual add (Granite's
        residual_multiplier; 1 elsewhere)."""
        return architectures.residual_scale(self.arch, self.model.config)

    @property
    def block_kind(self) -> str:
        return architectures.block_kind(self.arch, self.model.config)

    def layer_output(self, envoy, i: int):
        """The hidden states decoder layer i returns, inside a trace (Falcon's and Bloom's
        layers return a tuple (hidden, attention))."""
        out = self.layer(envoy, i).output
        return out[0] if isinstance(out, tuple) else out

    def set_layer_output(self, envoy, i: int, value) -> None:
        layer = self.layer(envoy, i)
        out = layer.output
        layer.output = (value, *out[1:]) if isinstance(out, tuple) else value

    def skip_layer(self, envoy, i: int, value) -> None:
        """nnsight's skip of layer i, returning `value` in the layer's own output structure."""
        self.layer(envoy, i).skip((value, None) if self._layer_tuple else value)

    @property
    def _layer_tuple(self) -> bool:
        return self.arch is not None and self.arch.layer_returns_tuple

    def branch_tensor(self, output):
        """The residual write inside a branch module's output, as [B, T, d]: attention returns
        a tuple, and OPT's fc2 returns [B * T, d] (a view is returned, so in-place edits of it
        edit the write)."""
        t = output[0] if isinstance(output, tuple) else output
        if t.dim() == 2:
            t = t.view(*self._trace_shape, t.shape[-1])
        return t

    def final_norm(self, envoy_or_model):
        return get_path(envoy_or_model, self.norm_path)

    @property
    def vocab_size(self) -> int:
        """The text model's vocabulary (multimodal wrappers such as Gemma-3 keep it in text_config)."""
        return int(self.unembedding.shape[0])

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
        """[V, d]: the linear map from the final norm's output to the logits (the output
        embedding, times OPT's project_out where the model has one)."""
        if self.project_out_path is None:
            return self.model.get_output_embeddings().weight
        return self._projected_unembedding

    @cached_property
    def _projected_unembedding(self) -> torch.Tensor:
        out = get_path(self.model, self.project_out_path)
        if getattr(out, "bias", None) is not None:
            raise SinkbenchError(f"{self.name}: project_out has a bias; sinkbench folds only a linear map before the unembedding")
        with torch.no_grad():
            return self.model.get_output_embeddings().weight @ out.weight

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
        self._trace_shape = tuple(ids.shape[:2])  # [B, T], for branch_tensor
        return self.nn.trace(ids, remote=True, **kwargs) if self.remote else self.nn.trace(ids, **kwargs)

    @property
    def embedding(self) -> torch.Tensor:
        return self.model.get_input_embeddings().weight

    @property
    def logit_softcap(self) -> float | None:
        return self.logit_map.softcap

    @cached_property
    def logit_map(self) -> LogitMap:
        """What the model does to W_U h to make its logits (bias, scale, soft cap), from the
        family's row (sinkbench.model.architectures) and the output embedding's bias; check()
        compares it with the model's own forward."""
        scale, cap = architectures.logit_post(self.arch, self.model.config)
        bias = getattr(self.model.get_output_embeddings(), "bias", None)
        if bias is not None and bias.is_meta:
            raise SinkbenchError(f"{self.name}: its output embedding has a bias that is not loaded here (remote subject)")
        return LogitMap(scale=scale, softcap=cap, bias=None if bias is None else bias.detach())

    @property
    def learned_sinks(self) -> bool:
        """Do attention rows end in a learned sink logit (GPT-OSS's `sinks`)? Then the eager
        probabilities over keys sum to less than 1; the rest went to the learned sink."""
        # any layer: MiMo-V2-Flash has them on its sliding-window layers only
        return any(isinstance(getattr(self.attention(self.model, i), "sinks", None), torch.Tensor)
                   for i in range(self.n_layers))

    @cached_property
    def norm_fold(self) -> NormFold:
        """The final norm read as gain, centring and bias (verified against the module once)."""
        norm = self.final_norm(self.model)
        fold = read_norm(norm, self.name, self.d_model)
        verify_norm(norm, fold, self.name)
        return fold

    @property
    def norm_gain(self) -> torch.Tensor:
        """Per-dimension gain g of the final norm: its weight, or 1 + weight (Gemma-style)."""
        return self.norm_fold.gain

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
        """_check, with any failure of the model's own code (its forward raising at load: a bad
        config, missing weights, a kernel it needs) one line naming the model and the exception."""
        try:
            self._check()
        except SinkbenchError:
            raise
        except Exception as exc:
            detail = next((line.strip() for line in str(exc).splitlines() if line.strip()), "no detail")[:300]
            raise SinkbenchError(f"{self.name}: its forward pass fails at load ({type(exc).__name__}: {detail}); "
                                 f"sinkbench cannot measure a {architectures.architecture_name(self.model.config)} "
                                 "that does not run") from None

    def _check(self) -> None:
        """The final norm folds (norm_fold), and one tiny traced pass: layer outputs are
        [B, T, d] tensors, the layer's output is its input plus its two branch writes, and
        attention probabilities are available and sum to one; then the logits formed from
        the final norm's output (unembedding and logit_map) are the model's own. Fails loudly
        at load time, in one line."""
        import nnsight

        _ = self.norm_fold  # reads the fold and verifies it against the module
        ids = torch.tensor([[self.bos_id or 0, 1, 2, 3, 4]], device=self.device) % self.vocab_size
        nn = self.nn
        attn_mod = self.attention(self.model, 0)
        write_mod = self.branches(self.model, 0)[0]
        attn_is_branch = write_mod is attn_mod
        # Bloom's write (dense) runs inside the attention module: nnsight needs it touched first.
        inside = not attn_is_branch and any(m is write_mod for m in attn_mod.modules())
        with torch.no_grad(), self.trace(ids):
            start = self.layer(nn, 0).input.save()
            branch_attn, branch_mlp = self.branches(nn, 0)
            if inside:
                write_attn = self.branch_tensor(branch_attn.output).clone().save()
            attn_out = self.attention(nn, 0).output
            probs = attn_out[1].save()
            if not inside:
                write_attn = self.branch_tensor(attn_out if attn_is_branch else branch_attn.output).clone().save()
            # a clone: Falcon adds the attention write into the MLP's output tensor in place
            write_mlp = self.branch_tensor(branch_mlp.output).clone().save()
            raw = self.layer(nn, 0).output
            hidden = (raw[0] if isinstance(raw, tuple) else raw).save()
            returns_tuple = nnsight.save(isinstance(raw, tuple))
        if returns_tuple != self._layer_tuple or not isinstance(hidden, torch.Tensor) or hidden.shape[-1] != self.d_model:
            got = "a tuple" if returns_tuple else type(hidden).__name__  # (`raw` lives inside the trace only)
            raise SinkbenchError(f"{self.name}: decoder layer output is {got}, not what sinkbench.model.architectures "
                                 f"says of {self.family} (layer_returns_tuple={self._layer_tuple})")
        m = self.branch_scale
        gap = (start.float() + m * (write_attn.float() + write_mlp.float()) - hidden.float()).abs().max().item()
        if gap > (1e-3 if hidden.dtype == torch.float32 else 3e-2) * max(1.0, hidden.float().abs().max().item()):
            raise SinkbenchError(f"{self.name}: layer 0's output is not its input plus its attention and MLP writes "
                                 f"(off by {gap:.3g}); its branch accessors (sinkbench.model.access) do not fit this architecture")
        if probs is None or probs.dim() != 4:
            raise SinkbenchError(
                f"{self.name}: attention probabilities are not available (got {type(probs).__name__}); "
                "the model must run with attn_implementation='eager'"
            )
        # Rows sum to 1, or to less where a learned sink logit (gpt-oss) absorbs the rest.
        sums = probs.float().sum(-1)
        if (probs < 0).any() or (sums > 1 + 1e-2).any() or (sums <= 0).any():
            raise SinkbenchError(f"{self.name}: attention output[1] is not a probability distribution over keys")
        if not self.remote:
            self.check_logits(ids)

    def check_logits(self, ids: torch.Tensor) -> None:
        """One full forward: the model's logits must equal logit_map(unembedding @ final norm
        output), so that the chunked NLL is the model's own (a scale, bias or cap the family
        table does not know is refused here, not computed wrongly)."""
        from sinkbench.model.metrics import learned_sink_mass

        seen = []
        handle = self.final_norm(self.model).register_forward_hook(lambda mod, a, out: seen.append(out))
        try:
            with torch.no_grad():
                out = self.model(ids, output_attentions=True)
                logits = out.logits.float()
        finally:
            handle.remove()
        if self.learned_sinks and out.attentions:  # recorded (results.make_record): mean over layers
            self.meta["learned_sink_mass_at_load"] = float(torch.stack([learned_sink_mass(a)[0] for a in out.attentions]).mean())
        with torch.no_grad():
            ours = self.logit_map.apply(seen[-1].float() @ self.unembedding.float().T)
        gap = (ours - logits).abs().max().item()
        tol = (1e-4 if self.unembedding.dtype == torch.float32 else 3e-2) * max(1.0, logits.abs().max().item())
        if not gap <= tol:
            raise SinkbenchError(
                f"{self.name}: {architectures.architecture_name(self.model.config)} post-processes its logits in a way "
                f"sinkbench.model.architectures does not know (logits off by {gap:.3g} from scale {self.logit_map.scale:g}, "
                f"soft cap {self.logit_map.softcap}); add it to the family's row"
            )


def refuse_unsupported(path, name: str, trust_remote_code: bool = False) -> None:
    """Raise the one-line refusal of architectures.unsupported_reason for a checkpoint's config,
    before any weight is read (a config that does not load is left to the loader to explain)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except (ValueError, OSError):
        return
    reason = architectures.unsupported_reason(config)
    if reason is not None:
        raise SinkbenchError(f"{name}: {reason}")


def load_subject(spec: str, device: str = "cpu", dtype: str = "float32", trust_remote_code: bool = False) -> Subject:
    """Resolve, convert (cached), refuse an unsupported architecture from its config, load
    with eager attention, and check accessors."""
    from sinkbench.model import models

    source = models.resolve(spec)
    refuse_unsupported(models.converted_dir(source), spec, trust_remote_code)
    problem = models.weights_problem(source)
    if problem:
        raise SinkbenchError(problem)
    model, tok = models.load_hf_model(source, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    subject = Subject(name=spec, model=model, tokenizer=tok, sha256=models.weights_sha256(source), dtype=dtype)
    subject.meta["source"] = {"kind": source.kind, "path": source.path}
    subject.meta["quantization"] = models.quantization(source)
    manifest = models.converted_dir(source) / "sinkbench_zoo.json"
    if manifest.exists():  # a zoo model: it declares its own evaluation language and sink position
        import json

        subject.meta["zoo"] = json.loads(manifest.read_text())
    subject.check()
    return subject
