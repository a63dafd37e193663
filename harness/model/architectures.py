"""Per-family names and logit post-processing: the one table sinkbench reads an architecture from.

A family is supported when it has a row here. The row says where the decoder layers, the
final norm, each layer's attention and MLP are; which modules carry the residual writes
when they are not the attention and MLP modules themselves (post-norm blocks, Bloom's
in-module residual add); what the model does to W_U h before it returns logits (a scale,
a divisor, a soft cap); and whether its attention modules go through transformers'
AttentionInterface (else sinkbench keeps their own eager code). Adding a family is one row
here plus one tiny config in tests/test_conformance.py, which checks the row against the
model's own forward.

`unsupported_reason(config)` decides from the config alone, before any weight is loaded."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """Where a family keeps what sinkbench reads. Paths are tried in order (multimodal wrappers
    nest the text model one level deeper)."""

    # Preset, since copyreg adds it to the class on the first pickle of an instance, and the
    # class travels by value with every remote request (whose size must not change).
    __slotnames__ = []

    layers: tuple[str, ...]
    final_norm: tuple[str, ...]
    attention: str  # attribute of a decoder layer
    mlp: str  # attribute of a decoder layer whose output is the MLP (OPT: fc2)
    block: str  # "sequential", "parallel", "post-norm" or "config" (read by block_kind)
    # Sub-paths of a decoder layer whose outputs are the residual writes, when those are not
    # the attention's output[0] and the MLP's output (None: the attention and MLP modules).
    writes: tuple[str, str] | None = None
    logit_scale: str | None = None  # config attribute the logits are multiplied by
    logit_divisor: str | None = None  # config attribute the logits are divided by
    logit_softcap: str | None = None  # config attribute of tanh soft-capping of the logits
    residual_multiplier: str | None = None  # config attribute each branch write is multiplied by
    attention_interface: bool = True  # attention computed by transformers' AttentionInterface
    layer_returns_tuple: bool = False  # a decoder layer returns (hidden, attention), not hidden


_LLAMA_LIKE = Family(("model.layers", "model.language_model.layers"), ("model.norm", "model.language_model.norm"),
                     "self_attn", "mlp", "sequential")
_POST_NORM = Family(_LLAMA_LIKE.layers, _LLAMA_LIKE.final_norm, "self_attn", "mlp", "post-norm",
                    writes=("post_attention_layernorm", "post_feedforward_layernorm"))
_GPT2_LIKE = Family(("transformer.h",), ("transformer.ln_f",), "attn", "mlp", "sequential")


def _like(base: Family, **changes) -> Family:
    from dataclasses import replace

    return replace(base, **changes)


FAMILIES: dict[str, Family] = {
    # pre-norm, sequential, RMSNorm (Gemma: 1 + weight), logits = W_U h
    **dict.fromkeys(("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "phi3",
                     "olmo", "starcoder2", "gpt_oss", "deepseek_v3", "smollm3", "helium"), _LLAMA_LIKE),
    "stablelm": _like(_LLAMA_LIKE, block="config"),  # use_parallel_residual
    "nemotron": _LLAMA_LIKE,  # LayerNorm1P: centred, 1 + weight
    # branches normed before the residual add
    **dict.fromkeys(("gemma2", "gemma3", "gemma3_text"), _like(_POST_NORM, logit_softcap="final_logit_softcapping")),
    **dict.fromkeys(("olmo2", "olmo3"), _POST_NORM),
    # logit post-processing
    "cohere": _like(_LLAMA_LIKE, block="parallel", logit_scale="logit_scale"),
    "granite": _like(_LLAMA_LIKE, logit_divisor="logits_scaling", residual_multiplier="residual_multiplier"),
    "phi": _like(_LLAMA_LIKE, final_norm=("model.final_layernorm",), block="parallel"),
    # GPT-2 naming
    "gpt2": _GPT2_LIKE,
    "gpt_bigcode": _GPT2_LIKE,
    "gptj": _like(_GPT2_LIKE, block="parallel"),
    "gpt_neox": Family(("gpt_neox.layers",), ("gpt_neox.final_layer_norm",), "attention", "mlp", "config"),
    "opt": Family(("model.decoder.layers",), ("model.decoder.final_layer_norm",), "self_attn", "fc2", "sequential"),
    # own attention code (not the AttentionInterface); ALiBi or rotary
    "falcon": _like(_GPT2_LIKE, attention="self_attention", block="config", attention_interface=False,
                    layer_returns_tuple=True),
    # Bloom adds the residual inside its attention and MLP modules: the writes are their dense outputs
    "bloom": _like(_GPT2_LIKE, attention="self_attention", writes=("self_attention.dense", "mlp.dense_4h_to_h"),
                   attention_interface=False, layer_returns_tuple=True),
    # variants of the rows above (issue 31), each checked against its own forward in tests/test_variant_families.py
    **dict.fromkeys(("deepseek_v2", "olmoe", "glm", "ernie4_5", "hunyuan_v1_dense", "arcee", "apertus", "seed_oss",
                     "dots1", "bitnet"), _LLAMA_LIKE),
    "llama4_text": _like(_LLAMA_LIKE, mlp="feed_forward"),
    # multimodal wrappers whose text model is a row above: text input only (the vision tower never runs)
    "llama4": _like(_LLAMA_LIKE, mlp="feed_forward", layers=(*_LLAMA_LIKE.layers, "language_model.model.layers"),
                    final_norm=(*_LLAMA_LIKE.final_norm, "language_model.model.norm")),
    "qwen2_5_vl": _LLAMA_LIKE,  # loaded by AutoModelForImageTextToText (sinkbench.model.models.load_hf_model)
    # model types whose transformers class is LlamaForCausalLM or DeepseekV3ForCausalLM (their own configs)
    **dict.fromkeys(("exaone", "internlm3", "iquestcoder", "sarvam_mla"), _LLAMA_LIKE),
    # the Llama layout under their own names (tests/test_conformance.py checks each against its forward)
    **dict.fromkeys(("ministral3", "ernie4_5_moe", "glm4_moe", "phimoe", "solar_open", "mellum", "laguna", "cwm",
                     "apertus1p5_text"), _LLAMA_LIKE),
    "cohere2_moe": _like(_LLAMA_LIKE, block="parallel", logit_scale="logit_scale"),
    "flex_olmo": _POST_NORM,
    "cohere2": _like(_LLAMA_LIKE, block="parallel", logit_scale="logit_scale"),
    "granitemoe": _like(_LLAMA_LIKE, mlp="block_sparse_moe", logit_divisor="logits_scaling",
                        residual_multiplier="residual_multiplier"),
    "exaone4": _POST_NORM,
    "glm4": _like(_POST_NORM, writes=("post_self_attn_layernorm", "post_mlp_layernorm")),  # sandwich norms
    "codegen": _like(_GPT2_LIKE, block="parallel"),
    "xglm": Family(("model.layers",), ("model.layer_norm",), "self_attn", "fc2", "sequential", attention_interface=False),
    # MPT adds the residual inside its MLP module (like Bloom): the MLP's write is down_proj's output
    "mpt": Family(("transformer.blocks",), ("transformer.norm_f",), "attn", "ffn", "sequential",
                  writes=("attn", "ffn.down_proj"), attention_interface=False, layer_returns_tuple=True),
    # the Llama layout (MoE, q/k norms, sliding windows; Flint and MiMo-V2-Flash with learned sink
    # logits, read like GPT-OSS's); tests/test_conformance.py checks each against its own forward
    **dict.fromkeys(("exaone_moe", "flint", "hunyuan_v1_moe", "hy_v3", "jais2", "minimax_m2", "ministral",
                     "mimo_v2_flash", "sarvam_moe", "aria_text"), _LLAMA_LIKE),
    # multi-head latent attention (DeepSeek-V3's MLA), some with a top-k key indexer (DeepSeek
    # sparse attention): the indexer's mask is inside the model's own eager attention probabilities
    **dict.fromkeys(("axk1", "axk2", "glm4_moe_lite", "youtu", "deepseek_v32"), _LLAMA_LIKE),
    "glm_moe_dsa": _like(_LLAMA_LIKE, layer_returns_tuple=True),  # a layer returns (hidden, top-k indices)
    # sandwich norms: each branch is normed before the residual add
    "afmoe": _like(_POST_NORM, writes=("post_attention_layernorm", "post_mlp_layernorm")),
    "kolibri1": _like(_POST_NORM, writes=("post_self_attn_layernorm", "post_mlp_layernorm")),
    # muP: logits x logits_scaling, writes x residual_multiplier; post_norm1/2 are identities unless use_post_norm
    "hyperclovax": _like(_POST_NORM, block="config", writes=("post_norm1", "post_norm2"), logit_scale="logits_scaling",
                         residual_multiplier="residual_multiplier"),
    # the Llama layout again: MoA attention experts (JetMoE), text models of multimodal families
    **dict.fromkeys(("jetmoe",), _like(_LLAMA_LIKE, attention="self_attention")),
    **dict.fromkeys(("minimax_m3_vl_text", "phi4_multimodal", "dots3_note", "dots3_note_text", "got_ocr2", "emu3",
                     "emu3_text_model"),
                    _LLAMA_LIKE),
    # MiniCPM: writes x scale_depth / sqrt(layers), logits of h / (hidden_size / dim_model_base)
    "minicpm3": _like(_LLAMA_LIKE, residual_multiplier="scale_depth", logit_divisor="logits_scaling"),
    "vaultgemma": _like(_LLAMA_LIKE, logit_softcap="final_logit_softcapping"),  # Gemma's 1 + g norms, no post norms
    "cohere_compass_text": _like(_LLAMA_LIKE, block="parallel", logit_scale="logit_scale"),
    # Inkling: a short causal convolution after each branch; the writes are the convolutions' outputs
    "inkling_text": _like(_LLAMA_LIKE, writes=("attn_sconv", "mlp_sconv"), logit_divisor="logits_mup_width_multiplier"),
    "persimmon": _like(_LLAMA_LIKE, final_norm=("model.final_layernorm",)),
    "fuyu": _like(_LLAMA_LIKE, layers=("model.language_model.layers",), final_norm=("model.language_model.final_layernorm",)),
    # DBRX: the attention and its residual add sit in a sub-block (norm_attn_norm)
    "dbrx": Family(("transformer.blocks",), ("transformer.norm_f",), "norm_attn_norm.attn", "ffn", "sequential"),
    # older GPT-style decoders with their own attention code
    "ctrl": Family(("transformer.h",), ("transformer.layernorm",), "multi_head_attention", "ffn", "sequential",
                   attention_interface=False),
    "gpt_neo": _like(_GPT2_LIKE, attention="attn.attention", attention_interface=False, layer_returns_tuple=True),
    "biogpt": Family(("biogpt.layers",), ("biogpt.layer_norm",), "self_attn", "fc2", "sequential"),
}

# Families of the pinned transformers refused by what their layers do (beyond non-causal,
# attention-free and hybrid, which noncausal_reason and mechanism_reason give).
REFUSED_FAMILIES = {
    **dict.fromkeys(("gemma3n", "gemma3n_text"), (
        "AltUp keeps several predictions of the residual stream and adds per-layer embeddings inside every layer, so "
        "a layer's output is not its input plus an attention and an MLP write of one residual stream; sinkbench's "
        "edits and writes need one residual stream")),
    **dict.fromkeys(("gemma4", "gemma4_text", "gemma4_unified", "gemma4_unified_text"), (
        "every layer multiplies the whole residual stream by a learned layer_scalar (and Gemma-4 adds a third write, "
        "its per-layer input embeddings), so a layer's output is not its input plus an attention and an MLP write")),
    **dict.fromkeys(("gemma4_assistant", "gemma4_unified_assistant"), (
        "a speculative-decoding drafter: its forward needs the target model's key/value states (shared_kv_states) and "
        "hidden states; it is not a standalone causal language model")),
    "diffllama": (
        "differential attention: each head's output is softmax_1 V - lambda softmax_2 V followed by a per-head norm, so "
        "neither softmax is the weight a head puts on position 0, and the sink mass sinkbench reads would not be it"),
    "doge": (
        "learned per-channel residual weights (input_residual, post_attention_residual) scale the residual stream in "
        "every layer, so a layer's output is not its input plus its writes"),
    **dict.fromkeys(("granite_swa", "granitemoe_swa"), (
        "its learned attention sink scales each head's output after the softmax (sigmoid(logsumexp - sink)), and its eager "
        "attention probabilities leave that scale out: the sink mass and learned-sink mass sinkbench reads would be wrong")),
    **dict.fromkeys(("deepseek_v4", "hy_v4"), (
        "hyper-connections: the residual stream is several streams mixed by learned weights in every layer, so there is "
        "no single residual stream to edit or read")),
    **dict.fromkeys(("inkling2_text", "inkling2_loop_text"), (
        "block attention residuals: each layer reads a learned mix of earlier blocks' states (block_states), not one "
        "residual stream that a layer adds its writes to")),
    "longcat_flash": (
        "each decoder layer holds two attention and two MLP blocks plus a shortcut MoE added across them; sinkbench "
        "reads one attention and one MLP write per layer"),
    "beam": (
        "depth-scaled residual adds: each add multiplies the residual by sqrt((k-1)/k) and the write by 1/sqrt(k), so a "
        "layer's output is not its input plus its writes"),
    "dory": (
        "interpolated residuals: each branch moves the stream toward its output (h + rate (f(h) - h)) instead of adding "
        "to it, so a layer's output is not its input plus its writes; its final norm is an L2 norm"),
    "zaya": (
        "learned residual scales and biases on both the stream and each write (ZayaResidualScaling), so a layer's output "
        "is not its input plus its writes"),
    "nanochat": (
        "its final norm module (model.norm) also normalises the embeddings before layer 0; sinkbench reads the final "
        "norm's output from that module, which would be the embeddings' norm"),
    "cpmant": (
        "CPM-Ant prepends its own prompt tokens to every input and drops them from the output, so attention position 0 "
        "is a prompt token, not the input's first token"),
    "mllama": (
        "cross-attention layers to image features interleave with the self-attention layers (and are skipped without "
        "an image); sinkbench reads a self-attention in every decoder layer"),
    "modernbert-decoder": (
        "its LM head is a dense layer, an activation and a LayerNorm before the unembedding, so the logits are not "
        "linear in the final norm's output; sinkbench's band basis needs the unembedding to read the final norm directly"),
    "gpt_neox_japanese": (
        "its attention returns the output bias apart and the layer adds it (bias_dropout_add), so the attention module's "
        "output is not the attention write"),
    "blt": (
        "a byte latent transformer: a local encoder, a global transformer over dynamic byte patches and a local "
        "decoder, so there is no one stack of decoder layers over the input tokens"),
    "moshi": (
        "a speech-text model: its text decoder is driven by parallel audio-token streams (the depth decoder); sinkbench "
        "measures text-only causal language models"),
    "moss_transcribe_diarize": (
        "a speech transcription model: its decoder reads audio-encoder features; sinkbench measures text-only causal "
        "language models"),
    "trocr": (
        "an OCR decoder: post-LN layers with cross-attention to an image encoder's states; sinkbench needs a pre-LN "
        "decoder-only model"),
    "git": (
        "post-LN BERT layers over image tokens followed by text (GIT); sinkbench needs a pre-LN decoder with a final "
        "norm to fold"),
    "bert-generation": (
        "post-LN BERT layers (a BERT checkpoint used as a decoder) with no final norm to fold; sinkbench needs a pre-LN "
        "decoder"),
    "openai-gpt": (
        "post-LN (GPT-1): every layer renormalises the residual and there is no final norm to fold; sinkbench needs a "
        "pre-LN model"),
    "reformer": (
        "reversible residual layers (two residual streams) with LSH or chunked local attention, so there is no single "
        "residual stream and no full attention map"),
    "xlnet": (
        "a permutation language model with two-stream attention (content and query streams) and relative positions; "
        "its loss is not a left-to-right causal language model's"),
    # measured in tests/test_conformance.py: with the GraniteMoE row, layer 0 is off by 0.004 once shared experts are on
    "granitemoeshared": (
        "its MLP write is the sum of two modules (the routed experts, block_sparse_moe, and the shared experts, shared_mlp), "
        "and sinkbench's table reads one module per write; sinkbench's MLP edits and writes would miss the shared experts"),
}


def architecture_name(config) -> str:
    archs = getattr(config, "architectures", None) or []
    return archs[0] if archs else f"model_type {getattr(config, 'model_type', '?')!r}"


def family_of(config) -> Family | None:
    return FAMILIES.get(getattr(config, "model_type", None))


def _config_reason(model_type: str, config) -> str | None:
    """Settings of a supported family that leave the model outside what sinkbench computes."""
    get = lambda name, default=None: getattr(config, name, default)
    if model_type == "opt" and get("do_layer_norm_before", True) is False:  # OPT-350m
        return ("post-LN (do_layer_norm_before=False) renormalises the residual in every layer and has no final norm "
                "to fold; sinkbench needs a pre-LN model")
    if model_type == "bloom":
        if get("apply_residual_connection_post_layernorm", False):
            return "apply_residual_connection_post_layernorm=True: the residual is the normed input, not the layer's input"
        if (get("pretraining_tp", 1) or 1) > 1 and get("slow_but_exact", False):
            return "pretraining_tp > 1 with slow_but_exact: the writes are not the dense modules' outputs"
    return None


# Not causal decoders: their loss at a position sees later tokens (or they have no LM head).
ENCODER_ONLY = frozenset({
    "bert", "roberta", "xlm-roberta", "xlm-roberta-xl", "deberta", "deberta-v2", "electra", "distilbert", "albert",
    "camembert", "modernbert", "ernie", "nomic_bert", "mpnet", "funnel", "longformer", "big_bird", "megatron-bert",
    "rembert", "roformer", "squeezebert", "mobilebert", "layoutlm", "esm", "canine", "xlm", "flaubert", "ibert",
    "data2vec-text", "luke", "nystromformer", "yoso", "mra", "convbert", "bros", "lilt", "markuplm", "splinter",
    "qdqbert", "realm", "tapas", "xmod", "jina_bert", "neobert", "ettin", "modernbert-decoder-bidirectional",
    "roberta-prelayernorm", "roc_bert",
})
# Layers that are not (softmax) attention: no attention probabilities to measure a sink in.
ATTENTION_FREE = frozenset({"mamba", "mamba2", "falcon_mamba", "rwkv", "rwkv6", "rwkv7", "xlstm", "hgrn", "retnet"})
HYBRID = frozenset({"jamba", "falcon_h1", "zamba", "zamba2", "granitemoehybrid", "lfm2", "lfm2_moe", "minimax",
                    "bamba", "nemotron_h", "qwen3_next", "plamo2", "recurrent_gemma", "olmo_hybrid", "kimi_linear",
                    "hunyuan_v1_hybrid", "jetmoe_hybrid", "qwen3_5", "qwen3_5_text", "qwen3_5_moe", "qwen3_5_moe_text",
                    "qwen4_exp", "qwen4_exp_text", "lara_mini", "lfm3", "bailing_hybrid"})


def _truthy(value) -> bool:
    return bool(value) and str(value).lower() not in ("false", "none", "0", "causal")


def noncausal_reason(config) -> str | None:
    """Why a config describes a model whose outputs are not a causal language model's
    (bidirectional attention, a prefix-LM, an encoder-decoder or an encoder-only model), or None.
    Read from the wrapper and its text_config."""
    model_type = getattr(config, "model_type", None)
    text = text_config(config)
    for cfg in (config,) if text is config else (config, text):
        bidir = getattr(cfg, "use_bidirectional_attention", None)
        # "vision" (Gemma-4): image tokens attend to each other both ways, text stays causal, and
        # sinkbench feeds text only; "all" or True: every position sees later tokens
        if _truthy(bidir) and bidir != "vision":
            return (f"bidirectional attention (use_bidirectional_attention={bidir!r}, an embedding model's layout): every "
                    "position attends to later tokens, so its NLL is not a language-model loss; sinkbench needs a causal decoder")
        if getattr(cfg, "is_causal", True) is False:
            return ("is_causal=False: its attention is not causal, so its NLL is not a language-model loss; "
                    "sinkbench needs a causal decoder")
        attn = getattr(cfg, "attn_config", None)
        prefix = getattr(cfg, "prefix_lm", None)
        if prefix is None and isinstance(attn, dict):
            prefix = attn.get("prefix_lm")
        elif prefix is None and attn is not None:
            prefix = getattr(attn, "prefix_lm", None)
        if _truthy(prefix):
            return ("a prefix-LM (prefix_lm=True): the prefix attends bidirectionally, so its NLL is not a causal "
                    "language-model loss; sinkbench needs a causal decoder")
        if getattr(cfg, "is_encoder_decoder", False):
            return ("an encoder-decoder (is_encoder_decoder=True): the encoder is bidirectional and the decoder reads it "
                    "through cross-attention; sinkbench needs a decoder-only causal model")
    if model_type in ENCODER_ONLY:
        return (f"an encoder-only model ({model_type}): bidirectional attention and no causal language-model head; "
                "sinkbench needs a decoder-only causal model")
    return None


def mechanism_reason(config) -> str | None:
    """Why a family outside the table cannot be measured at all, by its mechanism, or None."""
    model_type = getattr(config, "model_type", None)
    if model_type in ATTENTION_FREE:
        return (f"attention-free ({model_type}: state-space or recurrent layers): there are no attention probabilities, "
                "so there is no attention sink to measure")
    if model_type in HYBRID:
        return (f"a hybrid ({model_type}): some decoder layers are state-space, recurrent or linear attention, not "
                "softmax attention; sinkbench's grids edit and read every layer's attention, so it does not measure "
                "hybrids (their attention layers alone are not the whole residual stream's story)")
    return None


def unsupported_reason(config) -> str | None:
    """None if sinkbench supports this architecture with this config; else one line naming the
    architecture and what is missing. Reads the config only (no weights)."""
    model_type = getattr(config, "model_type", None)
    name = architecture_name(config)
    reason = noncausal_reason(config) or mechanism_reason(config) or REFUSED_FAMILIES.get(model_type)
    if reason is not None:
        return f"unsupported architecture {name}: {reason}"
    if model_type not in FAMILIES:
        return (f"unsupported architecture {name} (model_type {model_type!r}): not in sinkbench's architecture table "
                f"(sinkbench.model.architectures.FAMILIES), so its layers, final norm and logit post-processing are unknown")
    reason = _config_reason(model_type, config)
    return None if reason is None else f"unsupported architecture {name}: {reason}"


def block_kind(family: Family, config) -> str:
    """sequential / parallel / post-norm, reading the config where the family has both kinds."""
    if family.block != "config":
        return family.block
    mt = getattr(config, "model_type", "")
    if mt == "gpt_neox":
        return "parallel" if getattr(config, "use_parallel_residual", True) else "sequential"
    if mt == "stablelm":
        return "parallel" if getattr(config, "use_parallel_residual", False) else "sequential"
    if mt == "hyperclovax":
        return "post-norm" if getattr(config, "use_post_norm", False) else "sequential"
    if mt == "falcon":
        return "parallel" if getattr(config, "parallel_attn", True) or getattr(config, "new_decoder_architecture", False) else "sequential"
    return "sequential"


def residual_scale(family: Family | None, config) -> float:
    """What each branch write is multiplied by before the residual add: the config attribute the
    row names (Granite's residual_multiplier), MiniCPM's scale_depth / sqrt(layers), or 1."""
    attr = family.residual_multiplier if family is not None else None
    if not attr:
        return 1.0
    if attr == "scale_depth":  # MiniCPM: the multiplier is derived from the depth
        import math

        return float(config.scale_depth) / math.sqrt(config.num_hidden_layers)
    return float(getattr(config, attr))


def text_config(config):
    """The config of the text model: itself, or a multimodal wrapper's text_config (Gemma-3,
    Llama-4, Qwen2.5-VL keep the vocabulary, widths and logit settings there)."""
    text = getattr(config, "text_config", None)
    return text if text is not None and text is not config else config


def logit_post(family: Family, config) -> tuple[float, float | None]:
    """(scale, softcap) the family applies to W_U h + b, in that order. Read from the model's
    own config, not a wrapper's text_config: Gemma-3's multimodal wrapper does not cap its
    logits even where its text_config sets final_logit_softcapping (check_logits verifies)."""
    scale = 1.0
    if family.logit_scale:
        scale *= float(getattr(config, family.logit_scale))
    if family.logit_divisor:
        scale /= float(getattr(config, family.logit_divisor))
    cap = getattr(config, family.logit_softcap, None) if family.logit_softcap else None
    return scale, (float(cap) if cap else None)
