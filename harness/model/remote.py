"""--remote: run the interventions on NDIF (https://ndif.us) through nnsight.

What it does, and what a test can check without the network (tests/test_remote.py runs
all of it against a local stand-in for the hub, the server simulated in-process):

* the model is an nnsight TransformersModel built from the hub id with meta weights: only
  config.json and the tokenizer are fetched;
* the hub id is pinned to the commit its revision resolves to; that commit names the
  weights in every cache key (``hub:{repo}@{commit}``) and is where tensors are read;
* the tensors the harness reads locally are read from the checkpoint's safetensors at that
  commit, fetching only the shards that hold them (the index names them): the output
  embedding, the final norm's weight and bias (and OPT's project_out) at load, the input
  embedding only when a basis needs it (``--basis E``, H1's dark_alignment);
* NDIF keys a deployment by repo and revision, not dtype, so --dtype cannot choose what
  the server computes in: one two-token pass reads it off the server's output, the
  subject records that dtype (and the materialised tensors take it), and a different
  --dtype gets a warning;
* every trace of sinkbench.measure.interventions runs with remote=True, and the harness package is
  registered with nnsight so that its helpers (edits, chunked NLL, sink mass) travel with
  each request by value. The NLL reads the server's own output embedding inside the
  trace, so nothing of size V x d is uploaded, and a subject pickles without its
  client-side memos (spectra, tokenized text).

Passes whose prefix was saved from the base run upload that prefix (B x T x d per
batch); on NDIF, --layers all therefore moves L of them per batch."""
from __future__ import annotations

import functools
import json
import os
import warnings
from pathlib import Path

import torch

from sinkbench.model import models
from sinkbench.model.access import Subject, get_path
from sinkbench.errors import SinkbenchError


def check_remote(spec: str, env=os.environ) -> str:
    """The hub id to run remotely, or a SinkbenchError saying what to fix."""
    if not env.get("NDIF_API_KEY"):
        raise SinkbenchError("--remote: no NDIF API key; get one at https://login.ndif.us and export NDIF_API_KEY=<key>")
    try:
        is_hub = models.resolve(spec).kind == "hub"  # the registry's own reading of --model
    except SinkbenchError:
        is_hub = False
    if not is_hub:
        raise SinkbenchError(
            f"--remote --model {spec!r}: expected a Hugging Face repo id that NDIF hosts (e.g. meta-llama/Llama-3.1-8B); "
            "aliases, local directories and .gguf files run locally: drop --remote")
    return spec


_NDIF_UNREACHABLE: dict[str, str] = {}  # host -> why it cannot be reached ("" when it answered)


def ndif_unreachable(host: str | None = None) -> str | None:
    """Why NDIF cannot be reached now, or None. One GET with short timeouts and no retries,
    asked once per host and session: without it, a run with no network found out only in its
    first test, after huggingface_hub's retries of every file (141 s measured) and a websocket
    that waits on the operating system's connect timeout."""
    import httpx
    from nnsight import CONFIG

    host = (host or CONFIG.API.HOST).rstrip("/")
    if host not in _NDIF_UNREACHABLE:
        why = ""
        try:
            httpx.get(host, timeout=httpx.Timeout(5.0, read=10.0))  # any HTTP answer: the service is there
        except Exception as exc:  # DNS, refused connection, timeout, proxy, TLS
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else 'no detail'}"
        _NDIF_UNREACHABLE[host] = why
    return f"NDIF ({host}) cannot be reached: {_NDIF_UNREACHABLE[host]}" if _NDIF_UNREACHABLE[host] else None


def ndif_problem(host: str | None = None) -> str | None:
    """The one-line start-up error for --remote with NDIF out of reach, or None."""
    why = ndif_unreachable(host)
    return None if why is None else (f"--remote: {why}; check the network (and NDIF_HOST), or drop --remote to run "
                                     "the model locally")


def _offline(repo: str) -> dict:
    """from_pretrained / hf_hub_download arguments that read only the local cache when the hub
    cannot be reached (each of their files would otherwise be retried for 23 s)."""
    return {"local_files_only": True} if models.hub_unreachable(repo) else {}


def _hub_file(repo: str, filename: str, revision: str | None, missing_ok: bool = False) -> str | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    offline = _offline(repo)
    try:
        with models.quiet_hub():  # the retries' log lines; the error below says what failed
            return hf_hub_download(repo, filename, revision=revision, **offline)
    except Exception as exc:
        if missing_ok and isinstance(exc, EntryNotFoundError):
            return None
        where = (f"not in the local cache, and {models.hub_unreachable(repo)}" if offline
                 else f"{type(exc).__name__}; check the repo id, the network, and HF_TOKEN for a gated model")
        raise SinkbenchError(f"--remote --model {repo}: cannot fetch {filename} (revision {revision or 'main'}) from the hub "
                             f"({where})") from None


@functools.lru_cache(maxsize=None)
def commit(repo: str, revision: str | None = None) -> str:
    """The commit the hub resolves `revision` to: the snapshot folder config.json lands in
    (huggingface_hub's cache layout); the requested revision where the path names none."""
    path = Path(_hub_file(repo, "config.json", revision))
    return path.parent.name if path.parent.parent.name == "snapshots" else (revision or "main")


def weights_id(repo: str, revision: str | None = None) -> str:
    """What stands for a remote model's weights sha256 in records and cache keys."""
    return f"hub:{repo}@{commit(repo, revision)}"


def _checkpoint_tensor(repo: str, revision: str, names: list[str]) -> torch.Tensor:
    """The first of `names` in the repo's safetensors checkpoint, fetching only its shard."""
    from safetensors import safe_open

    index = _hub_file(repo, "model.safetensors.index.json", revision, missing_ok=True)
    index = None if index is None else json.loads(Path(index).read_text())["weight_map"]
    for name in names:
        shard = "model.safetensors" if index is None else index.get(name)
        if shard is None:
            continue
        with safe_open(_hub_file(repo, shard, revision), framework="pt") as fh:
            if name in fh.keys():
                return fh.get_tensor(name)
    raise SinkbenchError(f"--remote --model {repo}: none of {names} is in its safetensors checkpoint "
                         "(sinkbench reads the unembedding and final norm from *.safetensors only)")


def _cached_property(func, name: str) -> functools.cached_property:
    prop = functools.cached_property(func)
    prop.__set_name__(None, name)
    return prop


def _register_harness() -> None:
    """Ship the harness package by value with each request. Its classes travel with their
    class dicts, and a cached_property there holds a lock (Python 3.11) that cannot be
    pickled: send the wrapped function and its name instead."""
    import copyreg

    import nnsight

    import sinkbench

    nnsight.register(sinkbench)
    copyreg.pickle(functools.cached_property, lambda p: (_cached_property, (p.func, p.attrname)))


class RemoteSubject(Subject):
    """A Subject whose traces run on NDIF. It travels with every request (the trace code
    calls its accessors), so it pickles without the client's memos."""

    def __getstate__(self):
        state = dict(self.__dict__)
        state.update(meta={}, tokenizer=None)  # spectra (d x d) and tokenized text stay here
        for name in ("nn", "norm_fold", "_projected_unembedding", "logit_map"):
            state.pop(name, None)
        return state


def materialise(subject: RemoteSubject, module_path: str, attrs=("weight", "bias"), also: tuple = ()) -> None:
    """Replace a module's meta parameters by the checkpoint's, in the subject's dtype.
    Checkpoint names are the module path, or it without the base model's prefix (older
    checkpoints, e.g. gpt2's 'wte.weight'); `also` lists fallback module paths (a tied head)."""
    model, hub = subject.model, subject.meta["hub"]
    module = get_path(model, module_path)
    prefix = getattr(model, "base_model_prefix", "") + "."
    for attr in attrs:
        param = getattr(module, attr, None)
        if not isinstance(param, torch.Tensor) or not param.is_meta:
            continue
        names = [f"{p}.{attr}" for p in (module_path, *also)]
        names += [n[len(prefix):] for n in names if n.startswith(prefix)]
        t = _checkpoint_tensor(hub["repo"], hub["commit"], names)
        setattr(module, attr, torch.nn.Parameter(t.to(getattr(torch, subject.dtype)), requires_grad=False))


def _module_path(model, module) -> str:
    return next(n for n, m in model.named_modules() if m is module)


def materialise_embedding(subject: RemoteSubject) -> torch.Tensor:
    """The input embedding, read when a basis needs it: a tied model shares the head's."""
    model = subject.model
    emb = model.get_input_embeddings()
    if subject.meta["hub"]["tied"]:
        emb.weight = model.get_output_embeddings().weight
    else:
        materialise(subject, _module_path(model, emb), ("weight",))
    return emb.weight


def remote_subject(spec: str, trust_remote_code: bool = False, revision: str | None = None) -> RemoteSubject:
    """The subject on meta weights (config and tokenizer fetched, nothing sent yet)."""
    from nnsight.modeling.transformers import TransformersModel
    from transformers import AutoTokenizer

    repo = check_remote(spec)  # (NDIF's reachability is a start-up check: sinkbench.run.preflight, ndif_problem)
    sha = commit(repo, revision)
    _register_harness()
    offline = _offline(repo)
    try:
        # The tokenizer is passed in: nnsight's meta build does not source one itself.
        with models.quiet_hub():
            tok = AutoTokenizer.from_pretrained(repo, revision=sha, trust_remote_code=trust_remote_code, **offline)
            lm = TransformersModel(repo, task="text-generation", tokenizer=tok, revision=revision,
                                   attn_implementation="eager", trust_remote_code=trust_remote_code)
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise SinkbenchError(f"--model {repo}: needs custom code; rerun with --trust-remote-code if you trust it") from None
        raise
    model = lm._module
    # The server resolves this id to its own model (as nnsight tags modules it pickles), so the
    # subject in a request never carries this meta model or the tensors materialised on it.
    model._persistent_id = f"Module:{lm.path}"
    dtype = str(getattr(model.config, "dtype", None) or torch.float32).removeprefix("torch.")
    subject = RemoteSubject(name=spec, model=model, tokenizer=lm.tokenizer, sha256=f"hub:{repo}@{sha}", dtype=dtype, remote=True)
    subject.__dict__["nn"] = lm  # the TransformersModel, not a local NNsight wrapper
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    subject.meta.update(hub={"repo": repo, "revision": revision, "commit": sha, "tied": tied},
                        source={"kind": "hub", "path": repo}, quantization=models.quantization(models.resolve(repo)))
    return subject


def materialise_for_spectrum(subject: RemoteSubject) -> None:
    """The parameters the spectrum and norm fold read locally: head, final norm, project_out."""
    model = subject.model
    emb_path = _module_path(model, model.get_input_embeddings())
    materialise(subject, _module_path(model, model.get_output_embeddings()), ("weight",),
                also=(emb_path,) if subject.meta["hub"]["tied"] else ())
    materialise(subject, subject.norm_path)
    if subject.project_out_path:
        materialise(subject, subject.project_out_path, ("weight",))


def server_dtype(subject: RemoteSubject) -> str:
    """What the server computes in, read off the final norm's output of a two-token pass."""
    norm = subject.final_norm(subject.nn)
    with torch.no_grad(), subject.trace(torch.tensor([[subject.bos_id or 0, 1]])):
        out = norm.output.save()
    return str(out.dtype).removeprefix("torch.")


_NETWORK_PACKAGES = {"httpx", "httpx2", "httpcore", "httpcore2", "websocket", "huggingface_hub", "requests", "urllib3"}


def _is_network_error(exc: BaseException) -> bool:
    """A failure to reach or hear from a server (not a bug of sinkbench or of the model)."""
    return isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in _NETWORK_PACKAGES


def load_remote_subject(spec: str, dtype: str = "auto", trust_remote_code: bool = False, revision: str | None = None):
    """A Subject whose traces run on NDIF, recording the dtype the server runs. A network
    failure on the way (the hub or NDIF gone mid-load) is one line naming what failed."""
    try:
        return _load_remote_subject(spec, dtype, trust_remote_code, revision)
    except SinkbenchError:
        raise
    except Exception as exc:
        if not _is_network_error(exc):
            raise
        detail = str(exc).splitlines()[0][:160] if str(exc) else "no detail"
        raise SinkbenchError(f"--remote --model {spec}: a request to NDIF or the hub failed while loading "
                             f"({type(exc).__name__}: {detail}); check the network, or drop --remote") from None


def _load_remote_subject(spec: str, dtype: str, trust_remote_code: bool, revision: str | None):
    subject = remote_subject(spec, trust_remote_code, revision)
    subject.dtype = server_dtype(subject)
    if dtype != "auto" and models.TORCH_DTYPES[dtype] != getattr(torch, subject.dtype):
        warnings.warn(f"--dtype {dtype} is ignored with --remote: NDIF runs {spec} in {subject.dtype}, "
                      f"which is what the records say; drop --dtype to silence this", stacklevel=2)
    materialise_for_spectrum(subject)
    subject.check()  # one tiny remote pass: accessors and attention probabilities
    return subject
