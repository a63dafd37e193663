"""Every architecture checked against the model's own forward (issue 19).

Each case is a tiny random checkpoint built here (hidden 64, 3 layers, the zoo's 70-token
tokenizer and language), with every norm gain and bias, the output embedding's bias and
every logit scale, divisor, soft cap and residual multiplier drawn at random away from 1,
so that a wrong fold or a missed scale fails. Against references computed here from the
model itself (not through sinkbench.model.access), each supported case checks:

* NLL: run_pass's chunked NLL equals cross-entropy of the model's own forward logits;
* fold: the band basis equals the SVD of W_U diag(g) [C], with g, C and the bias identified
  here from the norm module's output (RMSNorm, 1 + g, LayerNorm, bias-free LayerNorm);
* sink mass: run_pass's sink mass equals eager output_attentions;
* block: every layer's output equals its input plus its branch writes;
* H1-H5: each grid of sinkbench.measure.experiments runs to verdicts (few windows, few bootstraps).

A case that is not supported must be refused by architectures.unsupported_reason(config)
in one line naming the architecture, before any weight is loaded.

`python -m tests.test_conformance --write-docs` runs the same checks and writes
docs/architectures.md (the table is generated, never typed; a failed check is a FAIL cell
in its column, listed again on exit 1). The page ends with every model_type the pinned
transformers maps to a causal-LM class and is not a case here, with its start-up refusal
(`--write-families` rewrites that list alone, from configs only)."""
from __future__ import annotations

import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "fixtures" / "zoo"
TOKENIZER = ZOO / "tiny-bb-bos"
VOCAB = 70
D, LAYERS, HEADS = 64, 3, 4
TOL_NLL = 1e-5  # nats; the external check asks 1e-4
TOL_MASS = 1e-6


def _draw(lo: float, hi: float, seed: int) -> float:
    """A scale drawn away from 1 (a scale of 1 would hide a missed one)."""
    return round(float(torch.empty(()).uniform_(lo, hi, generator=torch.Generator().manual_seed(seed))), 4)


def _common(**kw) -> dict:
    base = dict(vocab_size=VOCAB, bos_token_id=1, eos_token_id=1, pad_token_id=2, tie_word_embeddings=False)
    base.update(kw)
    return base


def _llama_like(**kw) -> dict:
    base = dict(hidden_size=D, intermediate_size=128, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                num_key_value_heads=2, max_position_embeddings=128)
    return _common(**{**base, **kw})


_MOE = dict(num_experts_per_tok=2, moe_intermediate_size=32)  # a tiny MoE (the expert count's name varies)
_MLA = dict(num_key_value_heads=HEADS, q_lora_rank=32, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8,
            v_head_dim=16, n_routed_experts=4, first_k_dense_replace=1, n_group=1, topk_group=1, n_shared_experts=1, **_MOE)
_INDEXER = dict(index_topk=8, index_head_dim=16, index_n_heads=2)  # fewer keys than a window: the selection binds

# name -> (model_type, config kwargs). Names are what the docs table shows.
CASES: dict[str, tuple[str, dict]] = {
    "Llama": ("llama", _llama_like()),
    "Mistral (sliding window 8)": ("mistral", _llama_like(sliding_window=8)),
    "Mixtral (MoE)": ("mixtral", _llama_like(num_local_experts=4, num_experts_per_tok=2)),
    "Qwen2": ("qwen2", _llama_like()),
    "Qwen2-MoE": ("qwen2_moe", _llama_like(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                                           shared_expert_intermediate_size=64, decoder_sparse_step=1)),
    "Qwen3 (q/k norm)": ("qwen3", _llama_like(head_dim=16)),
    "Qwen3-MoE": ("qwen3_moe", _llama_like(head_dim=16, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                                           decoder_sparse_step=1)),
    "Gemma": ("gemma", _llama_like(head_dim=16)),
    "Gemma-2 (softcaps)": ("gemma2", _llama_like(head_dim=16, sliding_window=8, attn_logit_softcapping=_draw(4, 8, 1),
                                                 final_logit_softcapping=_draw(1.5, 3, 2))),
    "Gemma-3": ("gemma3_text", _llama_like(head_dim=16, sliding_window=8, final_logit_softcapping=_draw(1.5, 3, 3))),
    "Phi (Phi-1/2)": ("phi", _common(hidden_size=D, intermediate_size=128, num_hidden_layers=LAYERS,
                                     num_attention_heads=HEADS, max_position_embeddings=128, partial_rotary_factor=0.5)),
    "Phi-3": ("phi3", _llama_like()),
    "GPT-2": ("gpt2", _common(n_embd=D, n_layer=LAYERS, n_head=HEADS, n_positions=128)),
    "GPT-NeoX (parallel)": ("gpt_neox", _common(hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                                intermediate_size=128, max_position_embeddings=128)),
    "GPT-NeoX (sequential)": ("gpt_neox", _common(hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                                  intermediate_size=128, max_position_embeddings=128,
                                                  use_parallel_residual=False)),
    "GPT-J": ("gptj", _common(n_embd=D, n_layer=LAYERS, n_head=HEADS, n_positions=128, rotary_dim=8)),
    "OPT": ("opt", _common(hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=HEADS, ffn_dim=128,
                           max_position_embeddings=128, word_embed_proj_dim=D)),
    "OPT (project_out)": ("opt", _common(hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=HEADS, ffn_dim=128,
                                         max_position_embeddings=128, word_embed_proj_dim=32)),
    "OPT (post-LN, OPT-350m)": ("opt", _common(hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                               ffn_dim=128, max_position_embeddings=128, do_layer_norm_before=False)),
    "Falcon (old arch, parallel)": ("falcon", _common(hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                                      new_decoder_architecture=False, parallel_attn=True,
                                                      multi_query=True, bias=False)),
    "Falcon (old arch, sequential, ALiBi)": ("falcon", _common(hidden_size=D, num_hidden_layers=LAYERS,
                                                               num_attention_heads=HEADS, new_decoder_architecture=False,
                                                               parallel_attn=False, alibi=True, multi_query=False, bias=True)),
    "Falcon (new decoder arch)": ("falcon", _common(hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                                    new_decoder_architecture=True, num_kv_heads=2)),
    "Bloom (ALiBi)": ("bloom", _common(hidden_size=D, n_layer=LAYERS, n_head=HEADS)),
    "Bloom (residual after LN)": ("bloom", _common(hidden_size=D, n_layer=LAYERS, n_head=HEADS,
                                                   apply_residual_connection_post_layernorm=True)),
    "OLMo": ("olmo", _llama_like()),
    "OLMo-2": ("olmo2", _llama_like()),
    "OLMo-3": ("olmo3", _llama_like(sliding_window=8)),
    "StableLM": ("stablelm", _llama_like()),
    "StableLM (parallel, q/k norm)": ("stablelm", _llama_like(use_parallel_residual=True, qk_layernorm=True)),
    "Cohere": ("cohere", _llama_like(logit_scale=_draw(2, 4, 4))),
    "Granite": ("granite", _llama_like(logits_scaling=_draw(0.2, 0.5, 5), residual_multiplier=_draw(0.3, 0.7, 6),
                                       embedding_multiplier=_draw(2, 6, 7), attention_multiplier=_draw(0.1, 0.3, 8))),
    "GPT-BigCode (MQA)": ("gpt_bigcode", _common(n_embd=D, n_layer=LAYERS, n_head=HEADS, n_positions=128,
                                                 multi_query=True)),
    "Starcoder2": ("starcoder2", _llama_like()),
    "GPT-OSS (learned sinks)": ("gpt_oss", _llama_like(head_dim=16, num_local_experts=2, num_experts_per_tok=1,
                                                       sliding_window=8)),
    "DeepSeek-V3 (MLA)": ("deepseek_v3", _llama_like(num_key_value_heads=HEADS, q_lora_rank=32, kv_lora_rank=16, qk_nope_head_dim=8,
                                                     qk_rope_head_dim=8, v_head_dim=16, n_routed_experts=4,
                                                     num_experts_per_tok=2, moe_intermediate_size=32,
                                                     first_k_dense_replace=1, n_group=1, topk_group=1,
                                                     n_shared_experts=1)),
    "SmolLM3": ("smollm3", _llama_like()),
    "Helium": ("helium", _llama_like(head_dim=16)),
    "Nemotron (LayerNorm1P)": ("nemotron", _llama_like(num_key_value_heads=HEADS, partial_rotary_factor=0.5)),
    "Cohere-2": ("cohere2", _llama_like(logit_scale=_draw(2, 4, 9), sliding_window=8)),
    "GraniteMoE": ("granitemoe", _llama_like(logits_scaling=_draw(0.2, 0.5, 10), num_local_experts=2,
                                             num_experts_per_tok=1)),
    # variants of the families above (issue 31)
    "DeepSeek-V2 (MLA, MoE)": ("deepseek_v2", _llama_like(num_key_value_heads=HEADS, q_lora_rank=32, kv_lora_rank=16,
                                                          qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=16,
                                                          n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                                                          first_k_dense_replace=1, n_shared_experts=1)),
    "OLMoE": ("olmoe", _llama_like(num_experts=4, num_experts_per_tok=2)),
    "Llama-4 (text, MoE)": ("llama4_text", _llama_like(head_dim=16, num_local_experts=2, num_experts_per_tok=1,
                                                       intermediate_size_mlp=128)),
    "EXAONE-4": ("exaone4", _llama_like(sliding_window=8)),
    "GLM": ("glm", _llama_like(head_dim=16)),
    "GLM-4 (sandwich norms)": ("glm4", _llama_like(head_dim=16)),
    "ERNIE-4.5": ("ernie4_5", _llama_like(head_dim=16)),
    "Hunyuan-V1 dense": ("hunyuan_v1_dense", _llama_like(head_dim=16)),
    "Arcee": ("arcee", _llama_like()),
    "Apertus": ("apertus", _llama_like()),
    "Seed-OSS": ("seed_oss", _llama_like(head_dim=16)),
    "dots.llm1": ("dots1", _llama_like(head_dim=16, n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                                       first_k_dense_replace=1, n_shared_experts=1)),
    "BitNet": ("bitnet", _llama_like(head_dim=16)),
    "CodeGen": ("codegen", _common(n_embd=D, n_layer=LAYERS, n_head=HEADS, n_positions=128, n_ctx=128, rotary_dim=8)),
    "XGLM": ("xglm", _common(d_model=D, num_layers=LAYERS, attention_heads=HEADS, ffn_dim=128, max_position_embeddings=128)),
    "MPT (ALiBi)": ("mpt", _common(d_model=D, n_layers=LAYERS, n_heads=HEADS, max_seq_len=128, expansion_ratio=2)),
    # multimodal wrappers whose text model is a row above (text input only); Gemma-3's wrapper does not cap its logits
    "Gemma-3 (multimodal wrapper)": ("gemma3", dict(
        text_config=_llama_like(head_dim=16, sliding_window=8, final_logit_softcapping=_draw(1.5, 3, 11)),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=28, patch_size=14),
        mm_tokens_per_image=4, boi_token_index=67, eoi_token_index=68, image_token_index=69)),
    "Llama-4 (multimodal config)": ("llama4", dict(
        text_config=_llama_like(head_dim=16, num_local_experts=2, num_experts_per_tok=1, intermediate_size_mlp=128),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=28,
                           patch_size=14, vision_output_dim=32, projector_input_dim=32, projector_output_dim=32),
        boi_token_index=67, eoi_token_index=68, image_token_index=69)),
    "Qwen2.5-VL (text)": ("qwen2_5_vl", dict(
        text_config=_llama_like(rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0}),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=D),
        image_token_id=69, video_token_id=68, vision_start_token_id=67)),
    # model types of their own whose transformers class is a row above's (the mapping names
    # LlamaForCausalLM / DeepseekV3ForCausalLM): run as that class, checked here on their own config
    "EXAONE (Llama class)": ("exaone", _llama_like()),
    "InternLM3 (Llama class)": ("internlm3", _llama_like()),
    "IQuest-Coder (Llama class)": ("iquestcoder", _llama_like()),
    "Sarvam-M (DeepSeek-V3 class, MLA)": ("sarvam_mla", _llama_like(
        num_key_value_heads=HEADS, q_lora_rank=32, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=16,
        n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, first_k_dense_replace=1, n_group=1,
        topk_group=1, n_shared_experts=1)),
    # Llama-layout families of the pinned transformers (the accessors of the Llama row; each checked
    # here against its own forward, as every row)
    "Ministral-3": ("ministral3", _llama_like()),
    "ERNIE-4.5 MoE": ("ernie4_5_moe", _llama_like()),
    "GLM-4 MoE": ("glm4_moe", _llama_like()),
    "PhiMoE": ("phimoe", _llama_like()),
    "Solar-Open": ("solar_open", _llama_like()),
    "Mellum": ("mellum", _llama_like()),
    "Laguna": ("laguna", _llama_like()),
    "CWM": ("cwm", _llama_like()),
    "Apertus-1.5 (text)": ("apertus1p5_text", _llama_like()),
    # MoE variants of the Cohere-2 and OLMo-2 rows (Cohere-2's logit scale drawn)
    "Cohere-2 MoE": ("cohere2_moe", _llama_like(logit_scale=_draw(2, 4, 21), sliding_window=8)),
    "FlexOlmo": ("flex_olmo", _llama_like(num_experts=4, num_experts_per_tok=2)),
    # the Llama layout under their own names (issue 31): MoE, q/k norms, sliding windows, learned sinks
    "EXAONE MoE": ("exaone_moe", _llama_like(head_dim=16, **_MOE, num_experts=4, sliding_window=8,
                                             layer_types=["sliding_attention", "full_attention", "sliding_attention"])),
    "Flint (learned sinks)": ("flint", _llama_like(head_dim=16, **_MOE, num_experts=4, shared_expert_intermediate_size=32,
                                                   sliding_window=8,
                                                   layer_types=["sliding_attention", "full_attention", "sliding_attention"])),
    "Hunyuan-V1 MoE": ("hunyuan_v1_moe", _llama_like(head_dim=16, num_experts=4, moe_topk=2)),
    "HY-V3": ("hy_v3", _llama_like(head_dim=16, **_MOE, num_experts=4)),
    "Jais-2": ("jais2", _llama_like()),
    "MiniMax-M2": ("minimax_m2", _llama_like(head_dim=16, num_local_experts=4, num_experts_per_tok=2)),
    "Ministral (sliding window 8)": ("ministral", _llama_like(head_dim=16, sliding_window=8)),
    "MiMo-V2-Flash (sinks on sliding layers)": ("mimo_v2_flash", _llama_like(head_dim=16, **_MOE, n_routed_experts=4,
                                                                             sliding_window=8)),
    "Sarvam MoE (GLM-4 MoE class)": ("sarvam_moe", _llama_like(**_MOE, n_routed_experts=4, first_k_dense_replace=1,
                                                               n_group=1, topk_group=1)),
    "Aria (text)": ("aria_text", _llama_like(moe_num_experts=4, moe_topk=2, moe_num_shared_experts=1)),
    # multi-head latent attention; the DeepSeek sparse-attention indexers keep 8 of the 24 keys (index_topk=8)
    "AXK1 (MLA)": ("axk1", _llama_like(**_MLA)),
    "AXK2 (MLA, indexer)": ("axk2", _llama_like(**_MLA, **_INDEXER)),
    "GLM-4 MoE Lite (MLA)": ("glm4_moe_lite", _llama_like(**_MLA)),
    "Youtu (MLA)": ("youtu", _llama_like(**_MLA)),
    "DeepSeek-V3.2 (MLA, indexer)": ("deepseek_v32", _llama_like(**_MLA, **_INDEXER)),
    "GLM MoE DSA (MLA, indexer)": ("glm_moe_dsa", _llama_like(**_MLA, **_INDEXER)),
    # sandwich norms (each branch normed before the residual add)
    "AFMoE (gated attention)": ("afmoe", _llama_like(head_dim=16, **_MOE, num_experts=4, num_dense_layers=1,
                                                     sliding_window=8)),
    "Kolibri-1": ("kolibri1", _llama_like(head_dim=16, **_MOE, num_local_experts=4, shared_expert_intermediate_size=32,
                                          sliding_window=8)),
    "HyperCLOVA X (muP, post norms)": ("hyperclovax", _llama_like(
        use_post_norm=True, logits_scaling=_draw(0.2, 0.5, 23), residual_multiplier=_draw(0.3, 0.7, 24),
        embedding_multiplier=_draw(2, 6, 25), attention_multiplier=_draw(0.1, 0.3, 26))),
    # the Llama layout again (MoA attention experts; text models of multimodal families)
    "JetMoE (mixture of attention)": ("jetmoe", _llama_like(num_local_experts=4, num_experts_per_tok=2, kv_channels=16)),
    "MiniMax-M3-VL (text)": ("minimax_m3_vl_text", _llama_like(head_dim=16, layer_types=["full_attention"] * LAYERS)),
    "Phi-4 multimodal (text)": ("phi4_multimodal", _llama_like()),
    "dots.3 note (text, MLA, indexer)": ("dots3_note_text", _llama_like(
        **_MLA, **_INDEXER, sliding_window=8, layer_types=["indexed_attention", "sliding_attention", "indexed_attention"],
        mlp_layer_types=["dense", "sparse", "sparse"])),
    "dots.3 note (multimodal config)": ("dots3_note", dict(text_config=_llama_like(
        **_MLA, **_INDEXER, sliding_window=8, layer_types=["indexed_attention", "sliding_attention", "indexed_attention"],
        mlp_layer_types=["dense", "sparse", "sparse"]), vision_config=dict(adapter_out_dim=D),
        audio_config=dict(adapter_out_dim=D))),
    "GOT-OCR2 (text)": ("got_ocr2", dict(
        text_config=_llama_like(), image_token_index=69,
        vision_config=dict(hidden_size=32, output_channels=16, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                           patch_size=16, mlp_dim=64, global_attn_indexes=[0]))),
    "Emu3 (text)": ("emu3", dict(text_config=_llama_like(), vq_config=dict(
        embed_dim=8, num_embeddings=16, latent_channels=8, base_channels=8, channel_multiplier=[1], num_res_blocks=1,
        attn_resolutions=[]))),
    "Fuyu (Persimmon text)": ("fuyu", dict(text_config=_llama_like(num_key_value_heads=HEADS, qk_layernorm=True,
                                                                   partial_rotary_factor=0.5),
                                           hidden_size=D, image_token_id=69, patch_size=4, num_channels=3)),
    "Persimmon": ("persimmon", _llama_like(num_key_value_heads=HEADS, qk_layernorm=True, partial_rotary_factor=0.5)),
    "MiniCPM3 (MLA, scaled writes)": ("minicpm3", _llama_like(
        num_key_value_heads=HEADS, q_lora_rank=32, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=16,
        scale_depth=_draw(1, 2, 31), dim_model_base=16, scale_emb=_draw(2, 6, 32))),
    "VaultGemma (final soft cap)": ("vaultgemma", _llama_like(head_dim=16, sliding_window=8,
                                                              final_logit_softcapping=_draw(1.5, 3, 27))),
    "Cohere Compass (text)": ("cohere_compass_text", _llama_like(
        head_dim=16, logit_scale=_draw(2, 4, 29), sliding_window=8,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}, "full_attention": None})),
    "Inkling (text, short convolutions)": ("inkling_text", _llama_like(
        head_dim=16, sliding_window=8, layer_types=["hybrid_sliding", "hybrid", "hybrid_sliding"],
        logits_mup_width_multiplier=_draw(2, 4, 30))),
    "DBRX (MoE)": ("dbrx", _common(d_model=D, n_heads=HEADS, n_layers=LAYERS, max_seq_len=128,
                                   attn_config=dict(kv_n_heads=2, clip_qkv=8.0, rope_theta=10000.0),
                                   ffn_config=dict(ffn_hidden_size=32, moe_num_experts=4, moe_top_k=2))),
    "CTRL": ("ctrl", _common(n_embd=D, n_layer=LAYERS, n_head=HEADS, n_positions=128, dff=128)),
    "GPT-Neo (local attention)": ("gpt_neo", _common(hidden_size=D, num_layers=LAYERS, num_heads=HEADS,
                                                     max_position_embeddings=128, window_size=8,
                                                     attention_types=[[["global", "local"], 1], [["global"], 1]])),
    "BioGPT": ("biogpt", _common(hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=128,
                                 max_position_embeddings=128)),
    # refused from the config, each for its mechanism
    "MPT (prefix-LM)": ("mpt", _common(d_model=D, n_layers=LAYERS, n_heads=HEADS, max_seq_len=128,
                                       attn_config={"prefix_lm": True})),
    "EmbeddingGemma (bidirectional)": ("gemma3_text", _llama_like(head_dim=16, sliding_window=8,
                                                                   use_bidirectional_attention=True)),
    "Gemma-3n (text)": ("gemma3n_text", _llama_like(head_dim=16)),
    "Jamba (hybrid)": ("jamba", _llama_like()),
    "Falcon-H1 (hybrid)": ("falcon_h1", _llama_like()),
    "Zamba2 (hybrid)": ("zamba2", _common(hidden_size=D, num_attention_heads=HEADS)),
    "GraniteMoE-hybrid": ("granitemoehybrid", _llama_like()),
    "LFM2 (hybrid)": ("lfm2", _common(hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=HEADS)),
    "MiniMax (hybrid, linear attention)": ("minimax", _llama_like(head_dim=16)),
    "Mamba (attention-free)": ("mamba", _common(hidden_size=D, num_hidden_layers=LAYERS)),
    "DiffLlama (differential attention)": ("diffllama", _llama_like()),
    "Granite SWA (sink as output scale)": ("granite_swa", _llama_like()),
    "Gemma-4 (text, layer scalar)": ("gemma4_text", _llama_like(head_dim=16)),
    "Qwen3.5 (hybrid, gated delta)": ("qwen3_5_text", _llama_like(head_dim=16)),
}


def make_config(model_type: str, kwargs: dict):
    from transformers import AutoConfig

    cfg = AutoConfig.for_model(model_type, **kwargs)
    cfg._attn_implementation = "eager"
    cfg.architectures = [type(cfg).__name__.replace("Config", "ForCausalLM")]
    return cfg


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Every norm gain drawn in [0.5, 2] (Gemma-style 1 + g: g in [-0.5, 0.5]), every norm
    bias and the output embedding's bias drawn in [-0.5, 0.5]: a unit gain or a zero bias
    would hide a wrong fold or a dropped bias."""
    from sinkbench.model.access import UNIT_OFFSET_NORMS

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            name = type(module).__name__
            if "Norm" not in name:
                continue
            w, b = getattr(module, "weight", None), getattr(module, "bias", None)
            if isinstance(w, torch.Tensor):
                lo, hi = (-0.5, 0.5) if name in UNIT_OFFSET_NORMS else (0.5, 2.0)
                w.copy_(torch.empty(w.shape).uniform_(lo, hi, generator=g))
            if isinstance(b, torch.Tensor):
                b.copy_(torch.empty(b.shape).uniform_(-0.5, 0.5, generator=g))
        head_bias = getattr(model.get_output_embeddings(), "bias", None)
        if isinstance(head_bias, torch.Tensor):
            head_bias.copy_(torch.empty(head_bias.shape).uniform_(-1, 1, generator=g))


def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(TOKENIZER)


def zoo_manifest() -> dict:
    import json

    return json.loads((TOKENIZER / "sinkbench_zoo.json").read_text())


_TOKENS: list[int] = []


def zoo_tokens(subject) -> list[int]:
    """The zoo language's held-out text tokenized once (1.5 s of text generation + 2 s of
    tokenizing per case otherwise)."""
    from sinkbench.measure.data import text_tokens

    if not _TOKENS:
        _TOKENS.extend(text_tokens(subject, "auto"))
    return _TOKENS


@dataclass
class Case:
    name: str
    model_type: str
    refused: str | None = None  # the one-line reason, if refused before loading
    subject: object = None
    results: dict = field(default_factory=dict)  # check -> "ok (err)" / error


def build(name: str, tok=None):
    """(Case, config) for one architecture: refused from the config alone, or built,
    randomised and loaded as a Subject (whose load-time checks must pass)."""
    from sinkbench.model.access import Subject
    from sinkbench.model.architectures import unsupported_reason
    from transformers import AutoModelForCausalLM

    model_type, kwargs = CASES[name]
    cfg = make_config(model_type, kwargs)
    case = Case(name, model_type)
    case.refused = unsupported_reason(cfg)
    if case.refused is not None:
        return case
    torch.manual_seed(0)
    try:
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").eval()
    except ValueError:  # a multimodal wrapper AutoModelForCausalLM does not map (Qwen2.5-VL): as models.load_hf_model
        from sinkbench.model.models import image_text_model

        model = image_text_model().from_config(cfg, attn_implementation="eager").eval()
    randomize(model, seed=1)
    model.requires_grad_(False)
    import hashlib

    sha = hashlib.sha256(f"{name} {sorted(kwargs.items())}".encode()).hexdigest()  # cached spectra are keyed by it
    subject = Subject(name=f"tiny-{model_type}", model=model, tokenizer=tok or tokenizer(), sha256=sha, dtype="float32")
    subject.meta["zoo"] = zoo_manifest()  # the zoo language as evaluation text (fast, in-repo)
    subject.meta["tokens"] = {"auto": zoo_tokens(subject)}  # the same tokenizer for every case: tokenized once
    subject.check()
    case.subject = subject
    return case


def windows(n: int = 6, t: int = 24) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, VOCAB, (n, t), generator=g)
    ids[:, 0] = 1  # BOS
    return ids


# --------------------------------------------------------------------------- references
def eager_reference(model, ids):
    """(per-window NLL [B], sink mass [B, L]) from the model's own forward with eager attention."""
    impl = model.config._attn_implementation
    if impl != "eager":
        model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model(ids, output_attentions=True)
    finally:
        if impl != "eager":
            model.set_attn_implementation(impl)
    logits = out.logits[:, :-1].float()
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none")
    mass = torch.stack([a[:, :, 1:, 0].float().mean((1, 2)) for a in out.attentions], 1)
    return nll.view(len(ids), -1).mean(1), mass, out.attentions


NORM_KINDS = {  # the test's own candidates: name -> (centred, gain from weight, has bias)
    "RMSNorm (g)": (False, lambda w: w),
    "RMSNorm (1 + g)": (False, lambda w: 1 + w),
    "LayerNorm (g, b)": (True, lambda w: w),
    "LayerNorm (1 + g, b)": (True, lambda w: 1 + w),
}


def identify_norm(norm: torch.nn.Module, d: int) -> tuple[str, torch.Tensor, bool, torch.Tensor | None]:
    """Which normalisation the module computes, found by comparing its output on random
    inputs with each candidate formula (eps read off the module as far as it has one):
    (kind, gain [d], centred, bias or None). Independent of sinkbench.model.access.read_norm."""
    x = 3 * torch.randn(4, 5, d, generator=torch.Generator().manual_seed(3)) + 1
    with torch.no_grad():
        got = norm(x).double()
    w, b = getattr(norm, "weight", None), getattr(norm, "bias", None)
    w = torch.ones(d, dtype=torch.float64) if w is None else w.detach().double()
    bias = None if b is None else b.detach().double()
    eps = next((float(getattr(norm, a)) for a in ("eps", "variance_epsilon", "epsilon") if hasattr(norm, a)), 1e-5)
    for kind, (centred, gain_of) in NORM_KINDS.items():
        if getattr(norm, "weight", None) is None and "1 + g" in kind:
            continue
        xc = x.double() - x.double().mean(-1, keepdim=True) if centred else x.double()
        y = gain_of(w) * xc / (xc.pow(2).mean(-1, keepdim=True) + eps).sqrt()
        if bias is not None:
            y = y + bias
        if (y - got).abs().max() < 1e-4 * got.abs().max():
            label = kind if getattr(norm, "weight", None) is not None else kind.split(" (")[0] + " (no parameters)"
            if centred and bias is None:
                label = label.replace(", b)", ", no bias)")
            return label, gain_of(w), centred, bias
    raise AssertionError(f"{type(norm).__name__} computes none of {list(NORM_KINDS)}")


# --------------------------------------------------------------------------- checks
def check_nll(subject) -> str:
    from sinkbench.measure.interventions import run_pass

    ids = windows()
    ref, _, _ = eager_reference(subject.model, ids)
    got = run_pass(subject, ids).nll
    err = (got - ref).abs().max().item()
    assert err < TOL_NLL, f"NLL off by {err:.3g} nats from the model's own logits"
    return f"{err:.0e}"


def check_fold(subject, tmp_cache=None) -> tuple[str, str]:
    """(error, norm kind): the band basis against the SVD of the fold built here."""
    from sinkbench.measure.spectrum import spectrum_for

    model = subject.model
    norm = subject.final_norm(model)
    kind, gain, centred, _ = identify_norm(norm, subject.unembedding.shape[1])
    w_u = model.get_output_embeddings().weight.detach().double()
    if subject.project_out_path:  # OPT: final norm -> project_out -> lm_head
        from sinkbench.model.access import get_path

        w_u = w_u @ get_path(model, subject.project_out_path).weight.detach().double()
    d = gain.shape[0]
    w = w_u * gain[None, :]
    if centred:
        w = w @ (torch.eye(d, dtype=torch.float64) - 1.0 / d)
    _, sv, vt = torch.linalg.svd(w, full_matrices=False)
    subject.meta.pop("spectra", None)
    sp = spectrum_for(subject, 8)
    basis = sp.basis.double()
    err = (sp.singular_values.double() - sv).abs().max().item() / sv[0].item()
    null = sv < 1e-9 * sv[0]
    for idx in [i[~null.numpy()[i]] for i in sp.slices] + [null.nonzero().squeeze(1).numpy()]:
        if len(idx) == 0:
            continue
        ours, ref = basis[:, idx], vt[idx].T
        err = max(err, (ours @ ours.T - ref @ ref.T).abs().max().item())
    assert err < 1e-5, f"band basis off by {err:.3g} from the fold of {kind}"
    return f"{err:.0e}", kind


def check_sink_mass(subject) -> str:
    from sinkbench.measure.interventions import run_pass

    ids = windows()
    _, ref, attentions = eager_reference(subject.model, ids)
    got = run_pass(subject, ids, attn_layers=range(subject.n_layers)).sink_mass
    err = (got - ref).abs().max().item()
    assert err < TOL_MASS, f"sink mass off by {err:.3g} from eager output_attentions"
    for i, att in enumerate(attentions):  # per layer: MiMo-V2-Flash has sinks on some layers only
        learned = 1 - att.float().sum(-1)
        if isinstance(getattr(subject.attention(subject.model, i), "sinks", None), torch.Tensor):
            # a trained head may leave its sink unused (tiny-bb-sinklogit): rows sum to at most 1, some to less
            assert subject.learned_sinks and learned.min() > -1e-5 and learned.max() > 1e-4, \
                f"layer {i}: learned sinks but every row sums to 1"
        else:
            assert learned.abs().max() < 1e-5, f"layer {i}: rows do not sum to 1 without learned sinks"
    return f"{err:.0e}"


def check_block(subject) -> tuple[str, str]:
    """Every layer: output = input + branch_scale * (attention write + MLP write), from hooks on
    the layer itself (its own input and output) and on the accessors' write modules."""
    model, seen = subject.model, {}
    hooks = []
    for i in range(subject.n_layers):
        layer = subject.layer(model, i)
        hooks.append(layer.register_forward_hook(
            lambda m, args, out, i=i: seen.__setitem__(("io", i), (args[0] if args else None, out)), with_kwargs=False))
        hooks.append(layer.register_forward_pre_hook(
            lambda m, args, kwargs, i=i: seen.__setitem__(("in", i), (args[0] if args else kwargs["hidden_states"]).clone()),
            with_kwargs=True))
        for b, mod in enumerate(subject.branches(model, i)):
            hooks.append(mod.register_forward_hook(
                lambda m, a, out, key=(b, i): seen.__setitem__(key, (out[0] if isinstance(out, tuple) else out).clone())))
    ids = windows()
    try:
        with torch.no_grad():
            model(ids)
    finally:
        for h in hooks:
            h.remove()
    err = 0.0
    for i in range(subject.n_layers):
        out = seen["io", i][1]
        out = out[0] if isinstance(out, tuple) else out
        writes = seen[0, i].view(out.shape) + seen[1, i].view(out.shape)  # OPT's fc2 write is [B * T, d]
        gap = (seen["in", i] + subject.branch_scale * writes - out).abs().max() / out.abs().max()
        err = max(err, gap.item())
    assert err < 1e-5, f"layer output differs from input + writes by {err:.3g} (relative)"
    return f"{err:.0e}", subject.block_kind


HYPOTHESES = ("H1", "H2", "H3", "H4", "H5")


def settings():
    from sinkbench.measure.config import Settings

    return Settings(n_bands=8, n_seqs=8, seq_len=24, layers="0", n_select=4, random_seeds=1, bootstrap=20,
                    batch_size="8", h2_ks="0.5")


def run_hypotheses(subject, on_error=None) -> dict[str, str]:
    """Each hypothesis's grid on the subject, to verdicts: 'ran' per hypothesis.
    H4 is H4-A (H4-B needs a zoo model trained with a designated sink). on_error(exc) -> the
    cell of a hypothesis whose grid fails, and the others still run (the docs table); None:
    the first failure raises (the tests)."""
    from sinkbench.measure.data import windows_for
    from sinkbench.hypotheses.h1_dark_tail import h1_grid
    from sinkbench.hypotheses.h2_middle import h2_grid
    from sinkbench.hypotheses.h3_distributed import h3_grid
    from sinkbench.hypotheses.h4a_designated_write import h4a_grid
    from sinkbench.hypotheses.h5_sink_writer import h5_grid
    from sinkbench.measure.spectrum import spectrum_for
    from sinkbench.measure.sweep import FilterSweep, resolve_ks

    s = settings()
    subject.meta.pop("spectra", None)
    sp = spectrum_for(subject, s.n_bands, s.basis)
    w = windows_for(subject, s.dataset, s.seq_len, s.n_seqs, layout=s.windows)
    sweep = FilterSweep(subject, w, sp, 8, s.random_seeds, layers=[0])
    grids = {
        "H1": lambda: h1_grid(sweep, [0], s),
        "H2": lambda: h2_grid(sweep, [0], resolve_ks(s.h2_ks, s.n_bands), s, frontier=False),
        "H3": lambda: h3_grid(subject, s),
        "H4": lambda: h4a_grid(sweep, [0], s, s.h4_rho),
        "H5": lambda: h5_grid(sweep, s, s.h5_min_share, 0),
    }
    out = {}
    for h, grid in grids.items():
        try:
            res = grid()
            verdicts = [v for v, _ in res.values()]
            assert verdicts and all(isinstance(v, (bool, type(None))) or hasattr(v, "__bool__") for v in verdicts), h
            metrics = [m for _, m in res.values()]
            nums = [x for m in metrics for x in m.values() if isinstance(x, float)]
            assert nums and not all(math.isnan(x) for x in nums), f"{h}: no finite metric"
        except Exception as exc:
            if on_error is None:
                raise
            out[h] = on_error(exc)
            continue
        out[h] = "ran"
    return out


# --------------------------------------------------------------------------- pytest
@pytest.fixture(scope="module")
def tok():
    # Tiny models: one thread. On a loaded 2-core machine two threads spin against each other
    # (measured: H1-H5 on tiny Llama 23 s with 2 threads, 0.9 s with 1).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tokenizer()
    torch.set_num_threads(threads)


_BUILT: dict[str, Case] = {}


def built(name: str, tok, tmp_path_factory) -> Case:
    """Each case built once per session (the checks and the H1-H5 run share it)."""
    import os

    if name not in _BUILT:
        os.environ["SINKBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
        _BUILT[name] = build(name, tok)
    return _BUILT[name]


@pytest.fixture(scope="module", params=list(CASES))
def case(request, tok, tmp_path_factory):
    return built(request.param, tok, tmp_path_factory)


# H1-H5 in the fast set on one case per mechanism the accessors or the NLL handle differently
# (the statistics cost about 2 s of CPU per case, 75 s for all of them): the rest run with
# -m slow. The forward checks above run on every case in the fast set.
H_FAST = ("Llama", "Gemma-2 (softcaps)", "GPT-NeoX (parallel)", "OPT (project_out)", "Falcon (old arch, sequential, ALiBi)",
          "Bloom (ALiBi)", "Phi (Phi-1/2)", "Cohere", "Granite", "GPT-OSS (learned sinks)", "DeepSeek-V3 (MLA)")


def _supported(case):
    if case.refused is not None:
        pytest.skip(f"refused: {case.refused}")
    return case.subject


def test_refusal_is_one_line_naming_the_architecture(case):
    if case.refused is None:
        assert case.subject is not None
        return
    assert "\n" not in case.refused and case.refused.startswith("unsupported architecture ")
    assert "ForCausalLM" in case.refused or case.model_type in case.refused


def test_nll_is_the_models_own(case):
    check_nll(_supported(case))


def test_band_basis_is_the_fold_of_the_norm(case):
    check_fold(_supported(case))


def test_sink_mass_is_eager_output_attentions(case):
    check_sink_mass(_supported(case))


def test_layer_output_is_input_plus_writes(case):
    check_block(_supported(case))


@pytest.mark.parametrize("name", [n if n in H_FAST else pytest.param(n, marks=pytest.mark.slow) for n in CASES])
def test_h1_to_h5_run(name, tok, tmp_path_factory):
    run_hypotheses(_supported(built(name, tok, tmp_path_factory)))


def test_a_missed_logit_scale_is_refused_at_load(tok):
    """The load check compares with the model's own forward: a Cohere whose row forgot the
    scale is refused in one line, not run with wrong NLL."""
    from dataclasses import replace

    import sinkbench.model.architectures as arch
    from sinkbench.errors import SinkbenchError

    saved = arch.FAMILIES["cohere"]
    arch.FAMILIES["cohere"] = replace(saved, logit_scale=None)
    try:
        with pytest.raises(SinkbenchError, match="post-processes its logits") as e:
            build("Cohere", tok)
    finally:
        arch.FAMILIES["cohere"] = saved
    assert "\n" not in str(e.value)


def test_the_zoo_sink_logit_model_records_its_learned_sinks(tok, tmp_path, monkeypatch):
    """A trained GPT-OSS-style zoo model: the record says it has learned sink logits and how
    much they absorb; its NLL and sink mass still equal the model's own forward."""
    from sinkbench.model.access import load_subject
    from sinkbench.read.results import architecture

    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    s = load_subject(str(ZOO / "tiny-bb-sinklogit"))
    rec = architecture(s)
    assert rec["learned_sinks"] and 0 < rec["learned_sink_mass_at_load"] < 1
    check_nll(s)
    check_sink_mass(s)


def test_an_unsupported_checkpoint_is_refused_before_its_weights_load(tmp_path):
    from sinkbench.model.access import refuse_unsupported
    from sinkbench.errors import SinkbenchError

    make_config(*CASES["Jamba (hybrid)"]).save_pretrained(tmp_path)  # a config and no weights at all
    with pytest.raises(SinkbenchError, match=r"ckpt: unsupported architecture JambaForCausalLM: a hybrid") as e:
        refuse_unsupported(tmp_path, "ckpt")
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------- docs
DOC = ROOT / "docs" / "architectures.md"


def conformance_table(names=None) -> tuple[list[dict], float]:
    """Run every check on every case (or `names`); one row per case, and the seconds it took."""
    import os
    import tempfile

    os.environ.setdefault("SINKBENCH_CACHE", tempfile.mkdtemp())
    torch.set_num_threads(1)  # see the tok fixture
    tok = tokenizer()
    rows, t0 = [], time.perf_counter()
    fail = lambda e: f"FAIL: {type(e).__name__}: {(str(e).splitlines() or ['no detail'])[0][:120]}"
    for name in names or CASES:
        row = {"name": name, "model_type": CASES[name][0]}
        try:
            case = build(name, tok)
        except Exception as e:  # a load-time refusal after loading is a failure of the table, not a refusal
            row["error"] = f"{fail(e)} (at load)"
            rows.append(row)
            continue
        if case.refused:
            row["refused"] = case.refused
            rows.append(row)
            continue
        s = case.subject
        row.update(block=s.block_kind, bos="BOS first" if s.uses_bos else "no BOS",
                   post=describe_post(s), learned_sinks=s.learned_sinks)
        for key, fn in (("NLL", check_nll), ("fold", check_fold), ("sink mass", check_sink_mass),
                        ("block check", check_block), ("H", lambda s: run_hypotheses(s, on_error=fail))):
            try:
                r = fn(s)
            except Exception as e:  # the cell (every H column when the grids' set-up fails) says FAIL and why
                row.update(dict.fromkeys(HYPOTHESES if key == "H" else (key,), fail(e)))
                continue
            if key == "fold":
                row["fold"], row["norm"] = r
            elif key == "block check":
                row["block check"] = r[0]
            elif key == "H":
                row.update(r)
            else:
                row[key] = r
        rows.append(row)
    return rows, time.perf_counter() - t0


def test_the_docs_table_is_current():
    """docs/architectures.md lists every case, and each refusal as unsupported_reason gives it
    today (regenerate: python -m tests.test_conformance --write-docs)."""
    from sinkbench.model.architectures import unsupported_reason

    doc = DOC.read_text()
    for name, (model_type, kwargs) in CASES.items():
        reason = unsupported_reason(make_config(model_type, kwargs))
        line = next((l for l in doc.splitlines() if l.startswith(f"| {name} | {model_type} |")), None)
        assert line is not None, f"{name} missing from {DOC.name}"
        assert (f"refused: {reason} |" in line) if reason else ("refused" not in line and "FAIL" not in line), line


def test_every_causal_lm_family_of_transformers_is_listed_with_its_start_up_line():
    """docs/architectures.md names every model_type the pinned transformers maps to a causal-LM
    class: a case of the table, or a line saying what sinkbench says of it at start-up, as
    unsupported_reason says it today (regenerate: python -m tests.test_conformance --write-families).
    A type that would run without a conformance case of its own config fails here."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    doc = DOC.read_text()
    rows = causal_lm_families()
    cased = {mt for mt, _ in CASES.values()}
    assert {r["model_type"] for r in rows} | cased >= set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
    for r in rows:
        assert family_line(r) in doc.splitlines(), f"{r['model_type']}: {family_line(r)!r} not in {DOC.name}"
        if r["reason"] is None:  # accepted at start-up: only as a type whose config is a case's
            assert r["config_type"] in cased, r
    assert families_section(rows) in doc


def test_a_family_that_would_run_without_a_case_fails_the_list(monkeypatch):
    """The check above can fail: a family in the table with no conformance case."""
    import sinkbench.model.architectures as arch

    monkeypatch.delitem(arch.REFUSED_FAMILIES, "openai-gpt")
    monkeypatch.setitem(arch.FAMILIES, "openai-gpt", arch.FAMILIES["gpt2"])
    rows = causal_lm_families()
    gpt1 = next(r for r in rows if r["model_type"] == "openai-gpt")
    assert gpt1["reason"] is None and gpt1["config_type"] not in {mt for mt, _ in CASES.values()}
    assert family_line(gpt1) not in DOC.read_text().splitlines()


def test_shared_experts_are_why_granitemoeshared_is_refused(tok, monkeypatch):
    """GraniteMoeShared is refused for its shared experts: read with the GraniteMoE row, its
    load check finds layer 0 off once they are on, and not while they are off."""
    import sinkbench.model.architectures as arch
    from sinkbench.errors import SinkbenchError

    monkeypatch.delitem(arch.REFUSED_FAMILIES, "granitemoeshared")
    monkeypatch.setitem(arch.FAMILIES, "granitemoeshared", arch.FAMILIES["granitemoe"])
    kw = _llama_like(logits_scaling=_draw(0.2, 0.5, 22), num_local_experts=2, num_experts_per_tok=1)
    monkeypatch.setitem(CASES, "shared off", ("granitemoeshared", dict(kw, shared_intermediate_size=0)))
    monkeypatch.setitem(CASES, "shared on", ("granitemoeshared", dict(kw, shared_intermediate_size=32)))
    check_block(build("shared off", tok).subject)
    with pytest.raises(SinkbenchError, match="layer 0's output is not its input plus its attention and MLP writes"):
        build("shared on", tok)


@pytest.mark.parametrize("model_type, tuple_out", [("doge", False), ("beam", False), ("zaya", True)])
def test_residual_rescaling_is_why_these_are_refused(model_type, tuple_out, tok, monkeypatch):
    """Doge, Beam and Zaya are refused because their residual adds are not input + writes
    (learned residual weights, depth scaling, learned scales and biases): read
    with the Llama row, their load check finds layer 0 off once those weights are not identities."""
    import sinkbench.model.architectures as arch
    from sinkbench.errors import SinkbenchError
    from sinkbench.model import access

    monkeypatch.delitem(arch.REFUSED_FAMILIES, model_type)
    monkeypatch.setitem(arch.FAMILIES, model_type, arch._like(arch._LLAMA_LIKE, layer_returns_tuple=tuple_out))
    kw = _llama_like(head_dim=16, **({"num_experts": 4, "num_experts_per_tok": 1} if model_type == "zaya" else {}))
    monkeypatch.setitem(CASES, "probe", (model_type, kw))
    g = torch.Generator().manual_seed(5)
    check = access.Subject.check

    def perturbed_check(self):  # the residual weights a trained checkpoint has, drawn away from identity
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                if any(k in name for k in ("residual", "lambda")):
                    p.copy_(p + torch.empty(p.shape).uniform_(0.3, 0.6, generator=g))
        check(self)

    monkeypatch.setattr(access.Subject, "check", perturbed_check)
    with pytest.raises(SinkbenchError, match="layer 0's output is not its input plus its attention and MLP writes"):
        build("probe", tok)


def test_write_docs_shows_every_fail_cell_in_its_column():
    """A failed check is a FAIL cell in its own column: a failed block check no longer
    overwrote the block type, a failed hypothesis grid no longer vanished (the H columns
    read H1..H5, the failure was kept under 'H'), a load that raised was not shown as a
    refusal, and a '|' in a message does not break the table."""
    ok = dict(NLL="5e-07", fold="3e-08", norm="RMSNorm (g)", block="sequential", bos="BOS first", post="none",
              learned_sinks=False, **{"sink mass": "0e+00", "block check": "1e-07"}, **dict.fromkeys(HYPOTHESES, "ran"))
    rows = [
        {"name": "A", "model_type": "llama", **ok, "NLL": "FAIL: AssertionError: 2e-03 > 1e-05"},
        {"name": "B", "model_type": "llama", **ok, "H2": "FAIL: ValueError: a | b"},
        {"name": "C", "model_type": "llama", **ok, "block check": "FAIL: AssertionError: layer 1"},
        {"name": "D", "model_type": "llama", "error": "FAIL: RuntimeError: shape mismatch (at load)"},
        {"name": "E", "model_type": "opt", "refused": "unsupported architecture OPTForCausalLM: post-LN"},
    ]
    text = write_docs(rows, 1.0)
    table = [l for l in text.splitlines() if l.startswith("| ") and l.split(" | ")[0][2:] in "ABCDE"]
    cols = lambda line: [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
    header = cols(next(l for l in text.splitlines() if l.startswith("| architecture |")))
    by = {cols(l)[0]: dict(zip(header, cols(l))) for l in table}
    assert all(len(cols(l)) == len(header) for l in table if not l.startswith(("| D ", "| E "))), table
    assert by["A"]["NLL"].startswith("FAIL") and by["A"]["fold"] == "3e-08"
    assert by["B"]["H2"] == "FAIL: ValueError: a \\| b" and by["B"]["H1"] == "ran"
    assert by["C"]["block"].startswith("FAIL") and by["C"]["block type"] == "sequential"
    assert by["D"]["NLL"].startswith("FAIL: RuntimeError") and "refused" not in by["D"]["NLL"]
    assert by["E"]["NLL"] == "refused: unsupported architecture OPTForCausalLM: post-LN"
    assert failed_cells(rows) == ["A: NLL: FAIL: AssertionError: 2e-03 > 1e-05", "B: H2: FAIL: ValueError: a | b",
                                  "C: block check: FAIL: AssertionError: layer 1",
                                  "D: error: FAIL: RuntimeError: shape mismatch (at load)"]


def test_a_failing_grid_is_its_hypothesis_fail_cell_and_the_others_run(monkeypatch):
    """conformance_table on one case whose H2 grid raises: H2 says FAIL and why, H1 and H3-H5 ran."""
    import sinkbench.hypotheses.h2_middle as h2

    def broken(*args, **kwargs):
        raise RuntimeError("a check that crashes")

    monkeypatch.setattr(h2, "h2_grid", broken)
    threads = torch.get_num_threads()
    try:
        (row,), _ = conformance_table(["Llama"])
    finally:
        torch.set_num_threads(threads)  # conformance_table runs on one thread (see the tok fixture)
    assert row["H2"] == "FAIL: RuntimeError: a check that crashes", row
    assert [row[h] for h in HYPOTHESES if h != "H2"] == ["ran"] * 4, row
    assert failed_cells([row]) == ["Llama: H2: FAIL: RuntimeError: a check that crashes"]


def describe_post(subject) -> str:
    m, parts = subject.logit_map, []
    if m.bias is not None:
        parts.append("+ output bias")
    if subject.arch.logit_scale:
        parts.append(f"x {subject.arch.logit_scale}")
    if subject.arch.logit_divisor:
        parts.append(f"/ {subject.arch.logit_divisor}")
    if m.softcap:
        parts.append("final soft cap")
    if subject.branch_scale != 1.0:
        parts.append(f"writes x {subject.arch.residual_multiplier}")
    return ", ".join(parts) or "none"


def write_docs(rows: list[dict], seconds: float) -> str:
    import platform

    import transformers

    lines = [
        "# Architectures",
        "",
        "Generated by `python -m tests.test_conformance --write-docs` (tests/test_conformance.py); do not edit by hand.",
        f"transformers {transformers.__version__}, torch {torch.__version__}, float32 on CPU ({platform.machine()}); "
        f"the checks below took {seconds:.0f} s for {len(rows)} tiny random checkpoints.",
        "",
        "Each checkpoint has hidden size 64, 3 layers and the zoo's 70-token tokenizer; every norm gain and bias, the",
        "output embedding's bias and every logit scale, divisor, soft cap and residual multiplier are drawn away from 1.",
        "Columns: **NLL** max |chunked NLL - cross-entropy of the model's own logits| (nats); **fold** max error of the",
        "band basis against the SVD of the fold built in the test from the norm's own math; **sink mass** max error",
        "against eager `output_attentions`; **block** max relative error of layer output = input + writes, all layers;",
        "**H1..H5** each grid run to verdicts on 8 windows of 24 tokens (H4 = H4-A). *Refused* rows are refused by",
        "`sinkbench.model.architectures.unsupported_reason(config)` before any weight loads, in the one line shown.",
        "**BOS** is what the test tokenizer (the zoo's) does; a real checkpoint's tokenizer decides it (`Subject.uses_bos`).",
        "",
        "| architecture | model_type | NLL | fold | sink mass | block | H1 | H2 | H3 | H4 | H5 | norm | block type | BOS | logit post-processing |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    cell = lambda text: str(text).replace("|", "\\|").replace("\n", " ")  # a message never breaks the table
    for r in rows:
        if "refused" in r or "error" in r:  # a load that raised is a FAIL of the table, never shown as a refusal
            text = f"refused: {r['refused']}" if "refused" in r else r["error"]
            lines.append(f"| {cell(r['name'])} | {r['model_type']} | {cell(text)} |" + " |" * 12)
            continue
        sinks = "; learned sink logits" if r.get("learned_sinks") else ""
        lines.append("| " + " | ".join(cell(c) for c in [r["name"], r["model_type"], r.get("NLL", ""), r.get("fold", ""),
                                                          r.get("sink mass", ""), r.get("block check", ""),
                                                          *[r.get(h, "") for h in HYPOTHESES], r.get("norm", ""),
                                                          r["block"] + sinks, r["bos"], r["post"]]) + " |")
    return "\n".join(lines) + "\n" + DOC_TAIL + families_section()


def failed_cells(rows: list[dict]) -> list[str]:
    """'case: column: FAIL ...' for every failed check of the table (the --write-docs run lists them and exits 1)."""
    return [f"{r['name']}: {k}: {v}" for r in rows for k, v in r.items() if isinstance(v, str) and v.startswith("FAIL")]


DOC_TAIL = """
In CI (`pytest tests -m "not slow"`) the NLL, fold, sink-mass and block checks run on every row, and H1-H5 on one
row per mechanism (`H_FAST`: Llama, Gemma-2, GPT-NeoX parallel, OPT project_out, Falcon ALiBi, Bloom, Phi, Cohere,
Granite, GPT-OSS, DeepSeek-V3); `-m slow` runs H1-H5 on the others. This table runs everything.

## What a family needs

One row in `sinkbench.model.architectures.FAMILIES`: where the decoder layers and the final norm are, the attribute
names of a layer's attention and MLP (a dotted path where they sit in a sub-block: DBRX's `norm_attn_norm.attn`),
which modules carry the residual writes when those are not the attention and MLP outputs (post-norm blocks: `post_attention_layernorm` / `post_feedforward_layernorm`; Bloom adds the
residual inside its modules, so its writes are `self_attention.dense` and `mlp.dense_4h_to_h`), the config
attributes of its logit post-processing (`logit_scale`, `logits_scaling`, `final_logit_softcapping`) and of a
residual multiplier (`scale_depth`: MiniCPM's scale_depth / sqrt(layers)), whether its attention goes through transformers' AttentionInterface, and whether its layers
return tuples. The output embedding's bias (Phi, GPT-J) is read from the module. Then one tiny config in
`CASES` of tests/test_conformance.py, and this file regenerated.

At load, `Subject.check()` compares the logits sinkbench forms (final norm output -> unembedding -> bias, scale,
soft cap) with one full forward of the model on a short input, and refuses the model in one line if they differ:
a post-processing the table does not know is never computed wrongly.

## Learned sink logits

GPT-OSS (and the zoo's `tiny-bb-sinklogit`) adds a learned logit per head to every attention row; the eager
probabilities over the keys then sum to less than 1. **Sink mass** (read by H1 (b) and H5) is attention to
position 0 among the keys, as the model's eager `output_attentions` gives it (checked above, GPT-OSS included);
**sink rate** (Gu et al., recorded beside H1) reads key scores from the same key probabilities; the
**learned-sink mass** is 1 - row sum, the weight the learned logits absorbed (`sinkbench.model.metrics.learned_sink_mass`).
No criterion reads the learned-sink mass: every record's `architecture` field says `learned_sinks: true` and gives
`learned_sink_mass_at_load`, its mean over layers, heads and queries on the load-time check input (5 tokens), so
that a low sink mass can be read against it (for the zoo's `tiny-bb-sinklogit`: between 0 and 1, tested).

## nnterp (weighed, not adopted)

nnterp 1.3.0 (`pip download nnterp==1.3.0 --no-deps`, read and run from the unpacked wheel, never installed;
`benchmarks/nnterp_probe.py` wraps each tiny checkpoint of this table in its `StandardizedTransformer`):

* **It does not run on the pinned nnsight 0.8.1.** Importing it fails (`nnsight.intervention.tracing.globals`
  moved); with that import shimmed, wrapping fails on every one of the 40 checkpoints above in 0.02-0.05 s
  (`'StandardizedTransformer' object has no attribute '_model'`): it is written against nnsight 0.5-0.6.
  Adopting it means pinning nnsight back, which the remote (NDIF) path and every trace here depend on.
* **It would not fix the silent errors this suite is about.** Its `project_on_vocab` is `lm_head(ln_final(h))`:
  no Cohere `logit_scale`, no Granite `logits_scaling`, no Gemma-2/3 final soft cap, and no norm fold (it has no
  notion of the gain, centring and bias sinkbench's band basis needs). Its name tables (`ATTENTION_NAMES` =
  attn, self_attention, attention, norm_attn_norm; layers h / blocks / model.layers) are what
  `sinkbench.model.architectures.FAMILIES` holds per family, plus the write modules (post-norm, Bloom) it does not
  describe; its attention probabilities come from source hooks on the attention's dropout, where sinkbench
  reads the module's own eager output[1] and checks it against `output_attentions` here.

So sinkbench keeps its own accessor table (one row per family) and validates each row against the model's
forward at load (`Subject.check`) and here; nnterp's validation idea (check the renaming and that attention
rows sum to 1 at load) is what `Subject.check` already does, with the learned-sink exception (GPT-OSS rows sum
to less than 1).
"""


# --------------------------------------------------------------------------- every causal-LM family
FAMILIES_HEADING = "## Every causal-LM family of the pinned transformers"


def default_config(model_type: str, cls: str):
    """A config of this model_type as transformers builds it with its defaults (what a checkpoint
    of the family says unless it changes them), naming `cls`; a bare stand-in where the defaults
    do not build (only model_type and the class are then read)."""
    import logging
    import warnings
    from types import SimpleNamespace

    from transformers import AutoConfig

    log = logging.getLogger("transformers")
    level = log.level
    log.setLevel(logging.ERROR)  # defaults that warn about themselves (a rope or token id note)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cfg = AutoConfig.for_model(model_type)
    except Exception:
        cfg = SimpleNamespace(model_type=model_type)
    finally:
        log.setLevel(level)
    cfg.architectures = [cls]
    return cfg


def causal_lm_families() -> list[dict]:
    """Every model_type the pinned transformers maps to a causal-LM class that no case of CASES
    runs, with what sinkbench says at start-up of a checkpoint of it (unsupported_reason of its
    default config; None: it runs, as the row of the config's own model_type)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from sinkbench.model.architectures import unsupported_reason

    cased = {mt for mt, _ in CASES.values()}
    rows = []
    for model_type, cls in sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.items()):
        if model_type in cased:
            continue
        cfg = default_config(model_type, cls)
        rows.append({"model_type": model_type, "class": cls, "config_type": getattr(cfg, "model_type", model_type),
                     "reason": unsupported_reason(cfg)})
    return rows


NOT_IN_TABLE = "not in sinkbench's architecture table"


def family_line(row: dict) -> str:
    """One family: what unsupported_reason says, without its 'unsupported architecture <class>' head
    (the class has its column); the refusal of a family the table lacks, shortened."""
    if row["reason"] is None:
        said = f"runs: its config is `{row['config_type']}`'s, a row of the table above"
    elif NOT_IN_TABLE in row["reason"]:
        said = "refused: not in the table (no row, no conformance case yet): its layers, final norm and logit post-processing are unknown"
    else:
        said = "refused: " + row["reason"].split(": ", 1)[1] if ": " in row["reason"] else row["reason"]
    return f"| {row['model_type']} | {row['class']} | {said.replace('|', chr(92) + '|')} |"


def reason_kind(reason: str | None) -> str:
    if reason is None:
        return "runs (a config of a table row)"
    for words, kind in ((NOT_IN_TABLE, "not in the table (no row, no conformance case yet)"),
                        ("an encoder-only model", "encoder-only"), ("an encoder-decoder", "encoder-decoder"),
                        ("attention-free", "attention-free"), ("a hybrid", "hybrid"), ("prefix-LM", "prefix-LM"),
                        ("bidirectional", "bidirectional"), ("is_causal=False", "not causal")):
        if words in reason:
            return kind
    return "what its layers do (see its line)"


def families_section(rows: list[dict] | None = None) -> str:
    """The list of every causal-LM family outside CASES, generated from the installed transformers."""
    import collections

    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    rows = causal_lm_families() if rows is None else rows
    kinds = collections.Counter(reason_kind(r["reason"]) for r in rows)
    cased = {mt for mt, _ in CASES.values()}
    listed = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
    extra = sorted(cased - listed)
    return "\n".join([
        "", FAMILIES_HEADING, "",
        f"transformers {transformers.__version__} maps {len(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)} model types to a causal-LM "
        f"class (`MODEL_FOR_CAUSAL_LM_MAPPING_NAMES`). {len(cased & listed)} of them are cases of the table above"
        + (f" (which also runs {', '.join(extra)}, not in that mapping)" if extra else "") +
        f". The other {len(rows)}, each with what sinkbench says at start-up "
        "of a checkpoint of that type (`unsupported_reason` of the config transformers builds with the type's defaults; "
        "one line, exit 4, before any weight loads; a checkpoint whose config differs from the defaults is judged on "
        "its own). Regenerate this list alone: `python -m tests.test_conformance --write-families` (seconds).",
        "",
        "By reason: " + "; ".join(f"{kind} {n}" for kind, n in kinds.most_common()) + ".",
        "",
        "| model_type | class | at start-up |",
        "|---|---|---|",
        *[family_line(r) for r in rows],
    ]) + "\n"


if __name__ == "__main__":
    if "--write-families" in sys.argv:  # the list needs no model: splice it into the generated page
        DOC.write_text(DOC.read_text().split("\n" + FAMILIES_HEADING)[0].rstrip("\n") + "\n" + families_section())
        print(f"wrote the family list of {DOC}")
        sys.exit(0)
    if "--write-docs" not in sys.argv:
        sys.exit("usage: python -m tests.test_conformance --write-docs | --write-families")
    rows, seconds = conformance_table()
    DOC.write_text(write_docs(rows, seconds))
    print(f"wrote {DOC} ({len(rows)} architectures, {seconds:.0f} s)")
    failed = failed_cells(rows)
    if failed:  # written, so the table shows them; never a clean exit
        sys.exit("FAIL cells in the table:\n" + "\n".join(failed))
