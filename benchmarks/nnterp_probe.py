"""Measure nnterp 1.3.0 on the conformance suite's tiny architectures (docs/architectures.md, nnterp).

nnterp is not a dependency: unpack its wheel and put it on PYTHONPATH only for this script.
    pip download nnterp==1.3.0 --no-deps -d /tmp/nnterp && unzip /tmp/nnterp/*.whl -d /tmp/nnterp/src
    PYTHONPATH=.:/tmp/nnterp/src python benchmarks/nnterp_probe.py
Per checkpoint: does StandardizedTransformer wrap it (and in how long), are attention
probabilities enabled, and does its ln_final -> lm_head path give the model's logits."""
import os, sys, time, tempfile, warnings
warnings.filterwarnings("ignore")
os.environ["SINKBENCH_CACHE"] = tempfile.mkdtemp()
import torch; torch.set_num_threads(1)
from tests.test_conformance import CASES, make_config, randomize, build, tokenizer
from transformers import AutoModelForCausalLM
import types
shim = types.ModuleType("nnsight.intervention.tracing.globals"); shim.Object = object  # moved in nnsight 0.8
sys.modules["nnsight.intervention.tracing"] = types.ModuleType("nnsight.intervention.tracing")
sys.modules["nnsight.intervention.tracing.globals"] = shim
try:
    from nnterp import StandardizedTransformer
except Exception as e:
    print("IMPORT ->", type(e).__name__, e); sys.exit(0)
tok = tokenizer()
rows = {}
ids = torch.tensor([[1, 5, 6, 7, 8, 9]])
for name, (mt, kw) in CASES.items():
    cfg = make_config(mt, kw)
    torch.manual_seed(0)
    try:
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").eval()
    except Exception as e:
        rows[name] = f"build error {e}"; continue
    randomize(model, 1)
    t = time.perf_counter()
    try:
        st = StandardizedTransformer(model, tokenizer=tok, enable_attention_probs=True, check_attn_probs_with_trace=True)
        dt = time.perf_counter() - t
        probs_ok = st.attention_probabilities.enabled
        # does ln_final -> lm_head reproduce the model's logits (nnterp's logit lens path)?
        with torch.no_grad(), st.trace(ids):
            fin = st.ln_final.output.save()
            logits = st.logits.save()
        lens = st.lm_head._module(fin) if hasattr(st.lm_head, "_module") else model.get_output_embeddings()(fin)
        gap = (lens.float() - logits.float()).abs().max().item()
        rows[name] = f"wrapped in {dt:.2f}s, attention probs {'on' if probs_ok else 'off'}, ln_final->lm_head vs logits {gap:.2g}"
    except Exception as e:
        rows[name] = f"refused/error after {time.perf_counter()-t:.2f}s: {type(e).__name__}: {str(e).splitlines()[0][:150]}"
    print(name, "->", rows[name], flush=True)
