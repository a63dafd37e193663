"""--remote (NDIF): the argument checks, and that traces are sent with remote=True.
Nothing here reaches NDIF; see harness/remote.py for what is not exercised."""
import pytest
import torch

from harness.access import Subject
from harness.errors import SinkbenchError
from harness.interventions import run_pass
from harness.remote import check_remote


def test_remote_needs_an_api_key():
    with pytest.raises(SinkbenchError, match="export NDIF_API_KEY"):
        check_remote("meta-llama/Llama-3.1-8B", env={})


@pytest.mark.parametrize("spec", ["smollm2-135m", "model.gguf", "/tmp"])
def test_remote_needs_a_hub_id(spec):
    with pytest.raises(SinkbenchError, match="expected a Hugging Face repo id that NDIF hosts"):
        check_remote(spec, env={"NDIF_API_KEY": "k"})


def test_a_hub_id_with_a_key_is_accepted():
    assert check_remote("meta-llama/Llama-3.1-8B", env={"NDIF_API_KEY": "k"}) == "meta-llama/Llama-3.1-8B"


class Sent(Exception):
    pass


class FakeNDIF:
    """Stands in for the LanguageModel: records what a trace was asked, sends nothing."""

    def __init__(self):
        self.kwargs = None

    def trace(self, ids, **kwargs):
        self.kwargs = kwargs
        raise Sent


def test_a_remote_subject_sends_its_traces_and_reads_the_servers_unembedding(windows):
    from tests.conftest import ByteTokenizer, tiny_llama

    model = tiny_llama().requires_grad_(False)
    subject = Subject(name="org/tiny", model=model, tokenizer=ByteTokenizer(), sha256="hub:org/tiny", dtype="float32", remote=True)
    assert model.config._attn_implementation == "eager"  # the server's own attention, not a local registration
    fake = FakeNDIF()
    subject.__dict__["nn"] = fake
    with pytest.raises(Sent):
        run_pass(subject, windows)
    assert fake.kwargs["remote"] is True
    assert subject.unembedding_in(model) is model.lm_head.weight  # looked up by path in the envoy tree
    local = Subject(name="tiny", model=tiny_llama(), tokenizer=ByteTokenizer(), sha256="0", dtype="float32")
    assert isinstance(local.unembedding_in(None), torch.Tensor)
