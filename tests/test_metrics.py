import torch
import torch.nn.functional as F

from sinkbench.model.metrics import attention_received, chunked_nll, sink_mass


def test_chunked_nll_equals_unchunked():
    g = torch.Generator().manual_seed(0)
    h, w = torch.randn(3, 17, 8, generator=g), torch.randn(101, 8, generator=g)
    ids = torch.randint(0, 101, (3, 17), generator=g)
    full = F.cross_entropy((h[:, :-1] @ w.T).reshape(-1, 101), ids[:, 1:].reshape(-1), reduction="none").view(3, 16).mean(1)
    for chunk in (7, 101, 101 * 5, 10**9):  # 7 tokens x 1 entry per slice ... everything at once
        assert torch.allclose(chunked_nll(h, w, ids, chunk_elements=chunk), full, atol=1e-5)
    # logits in the thousands (massive activations): the running maximum keeps it finite and exact
    big = F.cross_entropy((100 * h[:, :-1] @ w.T).reshape(-1, 101), ids[:, 1:].reshape(-1), reduction="none").view(3, 16).mean(1)
    assert torch.allclose(chunked_nll(100 * h, w, ids, chunk_elements=7), big, rtol=1e-5)
    capped = F.cross_entropy((torch.tanh((h[:, :-1] @ w.T) / 3.0) * 3.0).reshape(-1, 101), ids[:, 1:].reshape(-1), reduction="none").view(3, 16).mean(1)
    assert torch.allclose(chunked_nll(h, w, ids, softcap=3.0, chunk_elements=303), capped, atol=1e-5)


def test_sink_mass_on_hand_made_attention():
    # 1 sequence, 2 heads, 4 positions. Head 0 puts all mass on position 0; head 1 is uniform causal.
    t = 4
    uniform = torch.tril(torch.ones(t, t)) / torch.arange(1, t + 1)[:, None]
    onto0 = torch.zeros(t, t)
    onto0[:, 0] = 1
    probs = torch.stack([onto0, uniform])[None]
    expected = (1.0 + (1 / 2 + 1 / 3 + 1 / 4) / 3) / 2  # queries 1..3 only
    assert torch.allclose(sink_mass(probs), torch.tensor([expected]))


def test_attention_received():
    t = 4
    uniform = torch.tril(torch.ones(t, t)) / torch.arange(1, t + 1)[:, None]
    rec = attention_received(uniform[None, None])[0]
    assert torch.allclose(rec[:3], torch.tensor([(1 / 2 + 1 / 3 + 1 / 4) / 3, (1 / 3 + 1 / 4) / 2, 1 / 4]))
    assert torch.isnan(rec[3])
