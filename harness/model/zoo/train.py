"""Train the zoo: tiny Hugging Face models on Bigram-Backcopy, plain torch.

    python -m sinkbench.model.zoo            # regenerate every variant into fixtures/zoo/
    python -m sinkbench.model.zoo tiny-bb-bos

Each variant differs from its neighbour in one respect (see VARIANTS). Models are
saved with save_pretrained (safetensors) plus a tokenizer, so the harness loads
them like any other checkpoint; a manifest (sinkbench_zoo.json) records the
training config, seed, steps, losses, wall time and the measured sink behaviour.

The variants in SERIES also save checkpoints during training (CHECKPOINTS: log-spaced
steps, the last one the final model) into fixtures/zoo/series/<variant>/step-NNNNNN/,
each a loadable checkpoint whose manifest adds `step` and `tokens_seen`. Saving them
reads the model only (no update, no random draw), so the trajectory and the final
model are the same with or without them (tests/test_zoo.py checks the final one)."""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..models import ZOO_DIR  # fixtures/zoo/ in the repository
from .language import BigramBackcopy, make_tokenizer

SERIES_DIR = ZOO_DIR / "series"


@dataclass(frozen=True)
class Variant:
    arch: str = "llama"  # llama | mistral (sliding window) | gpt_oss (learned sink logits) | gpt2 | gpt_neox
    bos: bool = True  # BOS at position 0 of every sequence
    sliding_window: int | None = None
    designated: int | None = None  # position k of a dedicated <sink> token (no BOS then)
    note: str = ""


VARIANTS = {
    "tiny-bb-bos": Variant("llama", bos=True, note="BOS at position 0 of every sequence"),
    "tiny-bb-nobos": Variant("llama", bos=False, note="no BOS; windows start anywhere in the stream"),
    "tiny-bb-nobos-swa": Variant("mistral", bos=False, sliding_window=8,
                                 note="no BOS, sliding-window attention (8): later queries cannot see position 0"),
    # k = 1: every query after it can see it, as every query sees BOS in tiny-bb-bos.
    # With k = 8 (tried first) the first 8 queries learn another way to do nothing
    # (diffuse attention 4-5 tokens back) and it spreads: attention to k was 0.02.
    "tiny-bb-designated": Variant("llama", bos=False, designated=1,
                                  note="no BOS; a <sink> token at position 1 of every sequence"),
    "tiny-bb-sinklogit": Variant("gpt_oss", bos=True,
                                 note="BOS present, every head has a learned sink logit (gpt-oss attention)"),
    # LayerNorm families, same language, sizes and training as tiny-bb-bos.
    "tiny-bb-gpt2-bos": Variant("gpt2", bos=True,
                                note="GPT-2: LayerNorm, learned absolute positions, GELU MLP; BOS at position 0"),
    "tiny-bb-neox-bos": Variant("gpt_neox", bos=True,
                                note="GPT-NeoX (Pythia): LayerNorm, rotary on a quarter of each head, parallel "
                                     "attention and MLP; BOS at position 0"),
}
# Variants whose training also saves a checkpoint series (SERIES_DIR/<variant>/step-NNNNNN).
SERIES = ("tiny-bb-bos", "tiny-bb-gpt2-bos", "tiny-bb-neox-bos")


def checkpoint_steps(total: int, n: int = 8, first: int = 10) -> list[int]:
    """n optimizer-step counts, log-spaced from `first` to `total` (the last is the final model)."""
    steps = sorted({int(round(x)) for x in np.geomspace(first, total, n)})
    return [s for s in steps if 1 <= s <= total]


@dataclass(frozen=True)
class TrainConfig:
    # Small on purpose: with 3 layers x 4 heads and a wide MLP (tried first), heads
    # "do nothing" by attending diffusely and the MLP cancels their output, and no
    # BOS sink formed in 1500-3000 steps (copy head's non-trigger attention to BOS
    # 0.08-0.14). One head per layer, a narrow MLP and lr 1e-2 for 6000 steps give
    # a dormant copying head that parks on BOS (see the manifests).
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 1
    d_mlp: int = 32
    seq_len: int = 64
    batch_size: int = 32
    steps: int = 6000
    lr: float = 1e-2
    warmup: int = 100
    weight_decay: float = 0.01
    seed: int = 0
    language: dict = field(default_factory=lambda: BigramBackcopy().to_dict())


def build_model(variant: Variant, cfg: TrainConfig, vocab_size: int):
    import transformers as tf

    common = dict(vocab_size=vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.d_mlp,
                  num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.n_heads,
                  max_position_embeddings=cfg.seq_len, bos_token_id=0, pad_token_id=2, eos_token_id=None,
                  tie_word_embeddings=False, attn_implementation="eager")
    if variant.arch == "llama":
        config = tf.LlamaConfig(**common)
    elif variant.arch == "mistral":
        config = tf.MistralConfig(**common, sliding_window=variant.sliding_window, head_dim=cfg.d_model // cfg.n_heads)
    elif variant.arch == "gpt_oss":
        config = tf.GptOssConfig(**common, head_dim=cfg.d_model // cfg.n_heads, num_local_experts=1,
                                 num_experts_per_tok=1, layer_types=["full_attention"] * cfg.n_layers,
                                 sliding_window=cfg.seq_len, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    elif variant.arch == "gpt2":
        # no dropout anywhere (the Llama variants have none); untied unembedding like the others
        config = tf.GPT2Config(vocab_size=vocab_size, n_embd=cfg.d_model, n_layer=cfg.n_layers, n_head=cfg.n_heads,
                               n_inner=cfg.d_mlp, n_positions=cfg.seq_len, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                               bos_token_id=0, pad_token_id=2, eos_token_id=None, tie_word_embeddings=False,
                               attn_implementation="eager")
    elif variant.arch == "gpt_neox":
        # Pythia's defaults: rotary on 25% of each head's dimensions, parallel residual
        config = tf.GPTNeoXConfig(vocab_size=vocab_size, hidden_size=cfg.d_model, num_hidden_layers=cfg.n_layers,
                                  num_attention_heads=cfg.n_heads, intermediate_size=cfg.d_mlp,
                                  max_position_embeddings=cfg.seq_len, rotary_pct=0.25, use_parallel_residual=True,
                                  hidden_dropout=0.0, attention_dropout=0.0, bos_token_id=0, pad_token_id=2,
                                  eos_token_id=None, tie_word_embeddings=False, attn_implementation="eager")
    else:
        raise ValueError(f"unknown arch {variant.arch!r}")
    torch.manual_seed(cfg.seed)
    return tf.AutoModelForCausalLM.from_config(config)


def make_batch(stream: np.ndarray, offsets: np.ndarray, variant: Variant, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids [B, T], loss mask over targets [B, T-1]): BOS first and/or <sink> at k as the variant says."""
    body = seq_len - int(variant.bos) - int(variant.designated is not None)
    rows = np.stack([stream[o:o + body] for o in offsets])
    if variant.designated is not None:
        k = variant.designated
        rows = np.concatenate([rows[:, :k], np.full((len(rows), 1), 1), rows[:, k:]], 1)
    if variant.bos:
        rows = np.concatenate([np.zeros((len(rows), 1), dtype=rows.dtype), rows], 1)
    ids = torch.as_tensor(rows, dtype=torch.long)
    mask = torch.ones(ids.shape[0], seq_len - 1, dtype=torch.bool)
    if variant.designated is not None:
        mask[:, variant.designated - 1] = False  # the <sink> itself is not a prediction
    return ids, mask


def heldout(lang: BigramBackcopy, variant: Variant, seq_len: int, n: int = 64, seed: int = 12345):
    """Held-out windows from a fresh sample of the same language."""
    stream = lang.stream(n * seq_len + 10, sample_seed=seed)
    body = seq_len - int(variant.bos) - int(variant.designated is not None)
    return make_batch(stream, np.arange(n) * body, variant, seq_len)


def train(name: str, cfg: TrainConfig = TrainConfig(), out_dir: Path = ZOO_DIR, log=print,
          series_dir: Path | None = None, checkpoints: list[int] | None = None) -> dict:
    """Train one variant and save it into out_dir/name. With series_dir, also save a checkpoint
    after each step count in `checkpoints` (default checkpoint_steps(cfg.steps)) into
    series_dir/name/step-NNNNNN; the directory is replaced as a whole."""
    variant = VARIANTS[name]
    # One thread: tiny matmuls gain nothing from more, and the run is then
    # bit-reproducible whatever the machine's core count.
    torch.set_num_threads(1)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    lang = BigramBackcopy(**cfg.language)
    stream = lang.stream(400_000, sample_seed=cfg.seed)
    model = build_model(variant, cfg, len(lang.vocab)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    body = cfg.seq_len - int(variant.bos) - int(variant.designated is not None)
    tokenizer = make_tokenizer(lang, add_bos=variant.bos)
    held_ids, held_mask = heldout(lang, variant, cfg.seq_len)
    saves = sorted(set(checkpoints or checkpoint_steps(cfg.steps))) if series_dir is not None else []
    series_tmp = None
    if saves:
        Path(series_dir).mkdir(parents=True, exist_ok=True)
        series_tmp = Path(tempfile.mkdtemp(dir=series_dir, prefix=f".tmp-{name}-"))
    t0, losses, saved = time.time(), [], []
    for step in range(cfg.steps):
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / cfg.steps)))
        for group in opt.param_groups:
            group["lr"] = lr
        ids, mask = make_batch(stream, rng.integers(0, len(stream) - body, cfg.batch_size), variant, cfg.seq_len)
        logits = model(ids).logits[:, :-1]
        loss = F.cross_entropy(logits[mask], ids[:, 1:][mask])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 250 == 0 or step == cfg.steps - 1:
            log(f"[zoo] {name} step {step:5d} loss {loss.item():.4f} ({time.time() - t0:.0f}s)")
        if step + 1 in saves:  # after step + 1 optimizer updates
            m = checkpoint(model, name, variant, cfg, lang, step + 1, losses, held_ids, held_mask)
            m["wall_time_s"] = round(time.time() - t0, 1)
            save(model, tokenizer, m, series_tmp / f"step-{step + 1:06d}")
            saved.append(step + 1)
            log(f"[zoo] {name} checkpoint step {step + 1}: copy head sink attn "
                f"{m['sink_behaviour']['copy_head_sink_attn_nontrigger']:.2f}, loss {m['train_loss']:.3f}")
    wall = time.time() - t0
    model.eval()

    from .measure import measure_sink_behaviour

    behaviour = measure_sink_behaviour(model, held_ids, held_mask, lang, variant)
    manifest = {
        "name": name, "variant": asdict(variant), "train_config": asdict(cfg), "seed": cfg.seed,
        "steps": cfg.steps, "final_train_loss": float(np.mean(losses[-50:])), "wall_time_s": round(wall, 1),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "evaluation": {"language": lang.to_dict(), "heldout_sample_seed": 12345, "designated_sink": variant.designated},
        "sink_behaviour": behaviour,
    }
    save(model, tokenizer, manifest, Path(out_dir) / name)
    if series_tmp is not None:
        target = Path(series_dir) / name
        if target.exists():
            shutil.rmtree(target)
        os.chmod(series_tmp, 0o755)
        os.replace(series_tmp, target)
        manifest["series"] = {"dir": str(target), "steps": saved}
    return manifest


def tokens_seen(cfg: TrainConfig, step: int) -> int:
    """Tokens in the training batches of the first `step` optimizer updates (BOS and <sink> included)."""
    return step * cfg.batch_size * cfg.seq_len


def checkpoint(model, name: str, variant: Variant, cfg: TrainConfig, lang, step: int, losses: list, ids, mask) -> dict:
    """The manifest of a checkpoint after `step` updates, its sink behaviour measured on the held-out
    windows. Leaves the model in training mode and the torch random state as it found them."""
    from .measure import measure_sink_behaviour

    state, was_training = torch.get_rng_state(), model.training
    model.eval()
    behaviour = measure_sink_behaviour(model, ids, mask, lang, variant)
    model.train(was_training)
    torch.set_rng_state(state)
    return {
        "name": f"{name}@step-{step:06d}", "series": name, "step": step, "tokens_seen": tokens_seen(cfg, step),
        "variant": asdict(variant), "train_config": asdict(cfg), "seed": cfg.seed, "steps": cfg.steps,
        "train_loss": float(np.mean(losses[-50:])), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "evaluation": {"language": lang.to_dict(), "heldout_sample_seed": 12345, "designated_sink": variant.designated},
        "sink_behaviour": behaviour,
    }


def save(model, tokenizer, manifest: dict, target: Path) -> None:
    """Write atomically: a temporary directory renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / "sinkbench_zoo.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    os.chmod(tmp, 0o755)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
