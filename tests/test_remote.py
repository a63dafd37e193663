"""--remote (NDIF), offline: the argument checks, and the whole load against a local folder
that stands in for the hub (huggingface_hub's cache layout, offline mode), with the
server simulated in-process by nnsight's own remote="local" backend (it pickles each
request as for NDIF and unpickles it with this repository's modules hidden).
What only a real run can show is in the README's --remote paragraph."""
import io
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sinkbench.model import remote
from sinkbench.model.access import Subject
from sinkbench.errors import SinkbenchError
from sinkbench.measure.interventions import run_pass
from sinkbench.model.remote import check_remote
from sinkbench.measure.spectrum import dark_alignment, spectrum_for, spectrum_key

ROOT = Path(__file__).resolve().parent.parent
SHA = "0123456789abcdef0123456789abcdef01234567"


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
    """Stands in for the TransformersModel: records what a trace was asked, sends nothing."""

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


# --------------------------------------------------------------------------- a local hub
def publish(hub_root: Path, model, repo: str = "org/tiny", sha: str = SHA, main: bool = True, **save) -> Path:
    """Save `model` as hub repo `repo` at commit `sha` (main points there unless main=False), with the zoo's tokenizer."""
    folder = hub_root / f"models--{repo.replace('/', '--')}"
    snap = folder / "snapshots" / sha
    model.save_pretrained(snap, **save)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(ROOT / "fixtures" / "zoo" / "tiny-bb-bos" / f, snap / f)
    (folder / "refs").mkdir(exist_ok=True)
    if main:
        (folder / "refs" / "main").write_text(sha)
    return snap


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """Repo ids resolve to tmp_path/hub with no network; every file asked of the hub is recorded."""
    import huggingface_hub
    import huggingface_hub.constants
    import transformers.utils.hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("NDIF_API_KEY", "k")
    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path / "cache"))
    asked = []

    def recorded(fetch):  # a file fetched, or served from the cache without asking the hub
        def call(*args, **kwargs):
            path = fetch(*args, **kwargs)
            if isinstance(path, str):
                asked.append(Path(path).name)
            return path
        return call

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", recorded(huggingface_hub.hf_hub_download))
    for name in ("hf_hub_download", "try_to_load_from_cache"):  # how transformers reads a repo's files
        monkeypatch.setattr(transformers.utils.hub, name, recorded(getattr(transformers.utils.hub, name)))
    for module in (huggingface_hub, transformers.utils.hub):  # a whole-repo download is never needed
        monkeypatch.setattr(module, "snapshot_download", lambda *a, **k: pytest.fail(f"snapshot_download{a}{k}"))
    remote.commit.cache_clear()
    yield SimpleNamespace(root=tmp_path / "hub", asked=asked)
    remote.commit.cache_clear()


def tiny(seed=0):
    from tests.conftest import tiny_llama

    return tiny_llama(seed, vocab_size=70, bos_token_id=0).requires_grad_(False)  # the zoo tokenizer's vocabulary


def local_subject(model, name="local"):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ROOT / "fixtures" / "zoo" / "tiny-bb-bos")
    return Subject(name=name, model=model, tokenizer=tok, sha256="0" * 64, dtype="float32")


def test_a_remote_subject_reads_only_the_shards_it_needs(hub):
    model = tiny()
    snap = publish(hub.root, model, max_shard_size="200KB")
    shard_of = json.loads((snap / "model.safetensors.index.json").read_text())["weight_map"]
    shards = set(shard_of.values())
    subject = remote.remote_subject("org/tiny")
    assert not any(f.endswith(".safetensors") for f in hub.asked)  # building it reads config and tokenizer only
    assert all(p.is_meta for p in subject.model.parameters())
    assert subject.sha256 == f"hub:org/tiny@{SHA}" and subject.dtype == "float32" and subject.meta["quantization"] == {"type": "none"}

    size = request_size(subject)
    remote.materialise_for_spectrum(subject)
    needed = {shard_of["lm_head.weight"], shard_of["model.norm.weight"]}
    assert {f for f in hub.asked if f.endswith(".safetensors")} == needed and len(shards) > len(needed) + 1
    assert torch.equal(subject.unembedding, model.lm_head.weight)
    assert torch.equal(subject.norm_gain, model.model.norm.weight)

    local = local_subject(model)
    assert torch.equal(spectrum_for(subject, 8).basis, spectrum_for(local, 8).basis)
    # the U/E alignment reads the input embedding from its shard when first asked
    assert dark_alignment(subject, 8) == dark_alignment(local, 8)
    assert torch.equal(subject.embedding, model.model.embed_tokens.weight)
    read = {f for f in hub.asked if f.endswith(".safetensors")}
    assert read == needed | {shard_of["model.embed_tokens.weight"]} and read < shards
    # each request carries the subject: not its materialised tensors, spectra or other memos
    assert request_size(subject) == size


def request_size(subject) -> int:
    from nnsight.intervention.serialization import CustomCloudPickler

    buf = io.BytesIO()
    CustomCloudPickler(buf).dump(subject)  # nnsight's request pickler
    return len(buf.getvalue())


def test_a_tied_layernorm_checkpoint_in_one_file(hub):
    """GPT-2: one model.safetensors (no index), a tied head stored as 'transformer.wte.weight',
    and a LayerNorm whose bias the fold needs."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=70, n_embd=32, n_layer=2, n_head=2, n_positions=64, bos_token_id=0,
                                       tie_word_embeddings=True)).eval().requires_grad_(False)
    with torch.no_grad():
        model.transformer.ln_f.weight.uniform_(0.5, 2.0)
        model.transformer.ln_f.bias.uniform_(-1.0, 1.0)
    publish(hub.root, model, repo="org/tiny-gpt2")
    subject = remote.remote_subject("org/tiny-gpt2")
    remote.materialise_for_spectrum(subject)
    fold = subject.norm_fold  # verified against the materialised module: nothing is left on meta
    assert fold.centred and torch.equal(fold.bias, model.transformer.ln_f.bias)
    assert torch.equal(subject.unembedding, model.transformer.wte.weight)
    local = local_subject(model)
    assert torch.equal(spectrum_for(subject, 4).basis, spectrum_for(local, 4).basis)
    assert dark_alignment(subject, 4) == dark_alignment(local, 4)
    assert subject.embedding is subject.unembedding  # tied: the head's tensor, nothing more read


def test_weights_id_and_cache_keys_name_the_commit(hub):
    model = tiny()
    publish(hub.root, model)
    other = "f" * 40
    publish(hub.root, model, sha=other, main=False)  # the same weights at a second commit
    assert remote.weights_id("org/tiny") == f"hub:org/tiny@{SHA}"
    assert remote.weights_id("org/tiny", other) == f"hub:org/tiny@{other}"
    keys = {spectrum_key(SimpleNamespace(sha256=remote.weights_id("org/tiny", rev), dtype="float32"), 8) for rev in (None, other)}
    assert len(keys) == 2 and all(len(k) == 64 for k in keys)
    from sinkbench.run.plugin import Bench
    from sinkbench.measure.config import make_settings

    bench = Bench(SimpleNamespace(sinkbench_settings=make_settings(remote=True), sinkbench_model_settings={}))
    key = bench.case_key("H1", "org/tiny", 2)
    (hub.root / "models--org--tiny" / "refs" / "main").write_text(other)  # main moves on
    remote.commit.cache_clear()
    assert bench.case_key("H1", "org/tiny", 2) != key


def test_collection_reads_the_layer_count_from_config_json_alone(hub):
    from sinkbench.model import models

    publish(hub.root, tiny(), max_shard_size="200KB")
    assert models.num_layers("org/tiny") == 4
    assert "config.json" in hub.asked and not any(f.endswith(".safetensors") for f in hub.asked)


def test_load_stops_where_the_request_is_sent(hub, monkeypatch):
    """The first trace goes out with the repo id and requested revision as NDIF's model key."""
    from nnsight.modeling import huggingface
    from nnsight.modeling.mixins.remotable import Remotable

    publish(hub.root, tiny(), max_shard_size="200KB")
    monkeypatch.setitem(huggingface._ID_CACHE, "org/tiny", "org/tiny")  # the hub's canonical id, not asked offline

    def send(self, *args):
        raise Sent(self.to_model_key())

    monkeypatch.setattr(Remotable, "_remote_backend", send)
    with pytest.raises(Sent) as e:
        remote.load_remote_subject("org/tiny")
    key = json.loads(e.value.args[0].split(":", 1)[1])
    assert key["repo_id"] == "org/tiny" and key["revision"] is None and key["task"] == "text-generation"


def test_the_remote_path_against_a_simulated_server(hub, monkeypatch, windows):
    """load_remote_subject and a pass of sinkbench.measure.interventions, each request pickled as for
    NDIF and run from its unpickled copy with this repository's modules hidden."""
    from nnsight.intervention.backends.local import LocalSimulationBackend
    from nnsight.modeling import huggingface
    from nnsight.modeling.mixins.remotable import Remotable

    model = tiny()
    publish(hub.root, model, max_shard_size="200KB")
    sent = []

    def simulate(self, *args):
        sent.append(self.to_model_key())
        return LocalSimulationBackend(self, verbose=True)

    monkeypatch.setitem(huggingface._ID_CACHE, "org/tiny", "org/tiny")  # the hub's canonical id, not asked offline
    monkeypatch.setattr(Remotable, "_remote_backend", simulate)
    build = remote.remote_subject

    def with_weights(*args, **kwargs):  # the simulated server computes with this process's wrapper: load its weights
        subject = build(*args, **kwargs)
        subject.nn.dispatch()
        return subject

    monkeypatch.setattr(remote, "remote_subject", with_weights)
    with pytest.warns(UserWarning, match="--dtype bfloat16 is ignored with --remote: NDIF runs org/tiny in float32"):
        subject = remote.load_remote_subject("org/tiny", "bfloat16")
    assert subject.dtype == "float32" and len(sent) == 2  # the dtype probe and the load-time check
    local = local_subject(model)
    ids = windows % 70
    got, want = run_pass(subject, ids, hidden_layers=[1], attn_layers=[2]), run_pass(local, ids, hidden_layers=[1], attn_layers=[2])
    assert torch.allclose(got.token_nll, want.token_nll, atol=1e-5)
    assert torch.allclose(got.sink_mass[:, 2], want.sink_mass[:, 2], atol=1e-6)
    assert torch.allclose(got.hidden[1], want.hidden[1], atol=1e-5)
    # a filter sweep: the base run's saved prefix goes up with each edited pass (skip path)
    from sinkbench.measure.sweep import FilterSweep

    sweeps = [FilterSweep(s, ids, spectrum_for(s, 8), batch_size=6, random_seeds=1) for s in (subject, local)]
    for name in ("dark_sink", "dark_all"):
        a, b = (sweep.get(1, name) for sweep in sweeps)
        assert np.allclose(a.nll, b.nll, atol=1e-5) and np.allclose(a.sink_mass, b.sink_mass, atol=1e-6, equal_nan=True)
    assert len(sent) == 2 + 1 + 3  # the load, run_pass above, the base run and two edited passes


# ------------------------------------------------------------------ an unreachable hub (issue 31 d)
def _run_offline(tmp_path, model, extra_env=None):
    import os
    import subprocess
    import sys
    import time

    # port 9 (discard) on this machine: the connection is refused at once, as with no network
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9",
           "SINKBENCH_CACHE": str(tmp_path / "cache")}
    env.pop("HF_HUB_OFFLINE", None)
    env.update(extra_env or {})
    cmd = [sys.executable, "-m", "pytest", "hypotheses/test_dark_tail_necessary.py", "-p", "no:cacheprovider",
           "--results", str(tmp_path / "results"), "--model", model, "--seq-len", "64", "--collect-only", "-q"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    return p.returncode, p.stdout + p.stderr, time.perf_counter() - t0


@pytest.mark.parametrize("offline_env", [None, {"HF_HUB_OFFLINE": "1"}])
def test_an_unreachable_hub_is_one_line_without_retries(tmp_path, offline_env):
    """A hub id with no network used to print 11 lines of huggingface_hub retries (23 s of
    back-off) before its one-line error. One request without retries finds the hub
    unreachable; the model is not in the cache: one line, exit 4, no retry."""
    code, out, seconds = _run_offline(tmp_path, "some-org/not-cached", offline_env)
    lines = [line for line in out.splitlines() if line.strip()]
    assert code == 4 and len(lines) == 1, out
    assert "Retry" not in out and "thrown while requesting" not in out
    why = "HF_HUB_OFFLINE is set" if offline_env else "http://127.0.0.1:9 cannot be reached: ConnectError"
    assert lines[0].startswith(f"ERROR: --model some-org/not-cached: {why}") and "not in the local cache" in lines[0], lines
    assert seconds < 20, seconds  # the retries alone took 23 s


def test_an_unreachable_hub_runs_a_cached_model_from_the_cache(tmp_path):
    """Offline with the model in huggingface_hub's cache: the start-up checks read it there,
    quietly, and the run goes on (tiny-bb-bos's files stand in for a hub snapshot)."""
    snap = tmp_path / "hf" / "hub" / "models--some-org--tiny" / "snapshots" / SHA
    shutil.copytree(ROOT / "fixtures" / "zoo" / "tiny-bb-bos", snap)
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text(SHA)
    code, out, _ = _run_offline(tmp_path, "some-org/tiny")
    assert code == 0 and "Retry" not in out and "ERROR" not in out, out
    assert "test_dark_tail_necessary[some-org/tiny-L" in out, out
