"""The Bigram-Backcopy language (Guo et al. 2024, "Active-Dormant Attention Heads").

Ordinary tokens follow a fixed random bigram Markov chain. A few trigger tokens
interrupt it: right after a trigger, the next token copies the token *before*
the trigger, and the chain continues from there. A head that copies after
triggers has nothing to do on every other token: the situation that makes sinks.

Token ids: 0 <bos>, 1 <sink> (the designated sink), 2 <pad>, then the triggers,
then the ordinary tokens. Text form: tokens separated by spaces ("a12 t0 a3 ...")."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SPECIALS = ["<bos>", "<sink>", "<pad>"]


@dataclass(frozen=True)
class BigramBackcopy:
    n_ordinary: int = 64
    n_triggers: int = 3
    successors: int = 6  # each token's next-token distribution is spread over this many tokens
    trigger_prob: float = 0.12  # chance that a trigger follows an ordinary token
    seed: int = 0  # fixes the transition matrix

    @property
    def vocab(self) -> list[str]:
        return SPECIALS + [f"t{i}" for i in range(self.n_triggers)] + [f"a{i}" for i in range(self.n_ordinary)]

    @property
    def first_trigger(self) -> int:
        return len(SPECIALS)

    @property
    def first_ordinary(self) -> int:
        return len(SPECIALS) + self.n_triggers

    def is_trigger(self, ids) -> np.ndarray:
        ids = np.asarray(ids)
        return (ids >= self.first_trigger) & (ids < self.first_ordinary)

    def transitions(self) -> np.ndarray:
        """[n_ordinary, n_ordinary] row-stochastic, sparse-ish (seeded)."""
        rng = np.random.default_rng(self.seed)
        p = np.zeros((self.n_ordinary, self.n_ordinary))
        for i in range(self.n_ordinary):
            nxt = rng.choice(self.n_ordinary, self.successors, replace=False)
            p[i, nxt] = rng.dirichlet(np.ones(self.successors))
        return p

    def stream(self, n_tokens: int, sample_seed: int) -> np.ndarray:
        """A token-id stream of length n_tokens (sample_seed picks the sample, not the language)."""
        rng = np.random.default_rng(sample_seed)
        cdf = np.cumsum(self.transitions(), 1)
        out = np.empty(n_tokens, dtype=np.int64)
        u = rng.random(n_tokens)
        trig = rng.random(n_tokens) < self.trigger_prob
        which = rng.integers(0, self.n_triggers, n_tokens)
        state = int(rng.integers(self.n_ordinary))
        out[0] = state + self.first_ordinary
        i = 1
        while i < n_tokens:
            if trig[i] and i + 1 < n_tokens:
                out[i] = self.first_trigger + which[i]
                out[i + 1] = out[i - 1]  # back-copy: the token before the trigger
                i += 2
                continue
            state = min(int(np.searchsorted(cdf[state], u[i])), self.n_ordinary - 1)
            out[i] = state + self.first_ordinary
            i += 1
        return out

    def text(self, ids) -> str:
        vocab = self.vocab
        return " ".join(vocab[i] for i in ids)

    def to_dict(self) -> dict:
        return asdict(self)


def make_tokenizer(lang: BigramBackcopy, add_bos: bool):
    """A word-level fast tokenizer over the language's vocabulary, saved with the model."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(lang.vocab)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if add_bos:
        tk.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<bos>", pad_token="<pad>", unk_token="<pad>",
                                   additional_special_tokens=["<sink>"])
