"""Sink rate (Gu et al. 2024): key_scores reduced inside a pass equals a direct computation
from output_attentions=True, and sink_rate counts (window, layer, head) triples."""
import pytest
import torch

from sinkbench.measure.interventions import run_batched
from sinkbench.model.metrics import key_scores, sink_rate
from tests.conftest import as_subject
from tests.test_families import tiny_family


def direct_rates(attentions, epsilon):
    """By the definition, one triple and one key at a time: score = mean over q >= k of p[q, k]."""
    t = attentions[0].shape[-1]
    hits = torch.zeros(t)
    triples = 0
    for probs in attentions:  # one layer: [B, H, T, T]
        for b in range(probs.shape[0]):
            for h in range(probs.shape[1]):
                triples += 1
                for k in range(t):
                    hits[k] += float(probs[b, h, k:, k].mean()) > epsilon
    return hits / triples


def test_key_scores_on_hand_made_attention():
    t = 4
    uniform = torch.tril(torch.ones(t, t)) / torch.arange(1, t + 1)[:, None]
    onto0 = torch.zeros(t, t)
    onto0[:, 0] = 1
    scores = key_scores(torch.stack([onto0, uniform])[None])[0]  # [H, T]
    assert torch.allclose(scores[0], torch.tensor([1.0, 0, 0, 0]))
    h = [1, 1 / 2, 1 / 3, 1 / 4]
    assert torch.allclose(scores[1], torch.tensor([sum(h) / 4, sum(h[1:]) / 3, sum(h[2:]) / 2, h[3]]))
    r = sink_rate(scores[None], epsilon=0.3)  # 2 triples: key 0 > 0.3 in both, key 1 (0.36) in one
    assert r["sink_1"] == 1.0 and r["max_other"] == 0.5 and r["max_other_position"] == 1
    assert sink_rate(scores[None], epsilon=1.0)["sink_1"] == 0.0  # strictly greater


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def rate_subject(request, llama_subject):
    return llama_subject if request.param == "llama" else as_subject(tiny_family("gpt2"), "tiny-gpt2")


def test_sink_rate_in_one_pass_equals_direct_computation(rate_subject, windows):
    s = rate_subject
    res = run_batched(s, windows, 4, attn_layers=range(s.n_layers), attn_readout=key_scores)
    with torch.no_grad():
        attentions = s.model(windows, output_attentions=True).attentions
    t = windows.shape[1]
    for i, probs in enumerate(attentions):  # the reduced readout is the per-key score of every head
        direct = torch.stack([probs[..., k:, k].float().mean(-1) for k in range(t)], -1)  # [B, H, T]
        assert torch.allclose(res.attention[i], direct, atol=1e-6)
    median = float(torch.stack(list(res.attention.values()))[..., 0].median())
    for epsilon in (0.3, median):  # 0.3 as Gu et al.; key 0's median score splits its triples
        rates = direct_rates(attentions, epsilon)
        got = sink_rate(res.attention, epsilon)
        assert got["sink_1"] == pytest.approx(float(rates[0]), abs=1e-9)
        assert got["max_other"] == pytest.approx(float(rates[1:].max()), abs=1e-9)
        assert rates[got["max_other_position"]] == rates[1:].max()
        if epsilon == median:
            assert 0 < rates[0] < 1, "key 0 must have triples on both sides of epsilon"


def test_sink_rates_of_a_run_equal_the_direct_computation(llama_subject, windows, tmp_path, monkeypatch):
    """What H1 records (sinkbench.measure.experiments.sink_rates) on the sweep's test windows."""
    from sinkbench.measure.config import make_settings
    from sinkbench.measure.experiments import sink_rates
    from sinkbench.measure.spectrum import spectrum_for
    from sinkbench.measure.sweep import FilterSweep

    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    sweep = FilterSweep(llama_subject, windows, spectrum_for(llama_subject, 8), 4, 1)
    got = sink_rates(sweep, make_settings(batch_size="4"))
    with torch.no_grad():
        rates = direct_rates(llama_subject.model(windows, output_attentions=True).attentions, 0.3)
    t = windows.shape[1]
    assert got["sink_1"] == pytest.approx(float(rates[0])) and got["max_other"] == pytest.approx(float(rates[1:].max()))
    assert got["max_other_min_queries"] == pytest.approx(float(rates[1:t - 7].max()))


def test_the_sink_rate_pass_also_reads_what_learned_sinks_absorb():
    """scores_and_learned_mass: Gu's key scores unchanged, plus per head 1 - row sum (the
    learned sink's share): 0.3 where each row keeps 0.7 of its mass on real keys, 0 where 1."""
    import torch

    from sinkbench.measure.experiments import scores_and_learned_mass
    from sinkbench.model.metrics import key_scores

    t = 6
    full = torch.tril(torch.ones(t, t)) / torch.arange(1, t + 1)[:, None]  # causal uniform rows
    probs = torch.stack([full, 0.7 * full])[None]  # [1, 2 heads, T, T]
    out = scores_and_learned_mass(probs)
    assert out.shape == (1, 2, t + 1)
    assert torch.equal(out[..., :-1], key_scores(probs))
    assert torch.allclose(out[0, :, -1], torch.tensor([0.0, 0.3]), atol=1e-6)
