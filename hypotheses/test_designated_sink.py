"""H4, a sink can be designated by hand (docs/methods.md).

A (any model), after layer l, for targets t in {middle, frequent-token, ordinary-token position}:
 A1 capture: writing position 0's dark-tail component into t (add, or transplant =
    add + remove it from 0) raises attention to t from later queries significantly and
    by >= rho (3x), while attention to position 0 from the same queries falls;
 A2 specificity: the dark write captures significantly more than a same-norm write from
    the non-dark bands, which stays below rho;
 A3 rescue: with the dark tail removed at position 0, also writing it into t lowers the
    NLL of the predictions after t significantly and recovers at least h4_min_recovered
    (default 0.5) of the damage (recovered share with its bootstrap CI).
B (a zoo model trained with a <sink> token at k):
 B1 attention from non-trigger queries after k goes to k more than to 0, and removing
    the dark tail at k raises NLL more than removing it at 0 (NLL of the predictions not
    made at 0, k-1 or k: those are edited directly or predict the <sink> token itself);
 B2 the residual at k is darker (dark ratio) than ordinary positions.
Holm over each model's grid."""
import pytest

from sinkbench.claims import windows_note



def test_designated_by_intervention(sinkbench, model_name, layer, target, h4_case):
    claim, variant = h4_case.split("-")
    sinkbench.resume("H4", model_name, layer, claim=claim, variant=variant, target=target)
    passed, m = sinkbench.h4a(model_name)[layer, target, claim, variant]
    params = sinkbench.params(model_name, target=target, variant=variant, rho=sinkbench.settings.h4_rho, bands=[sinkbench.settings.n_bands])
    sinkbench.record("H4", model_name, layer, params, passed, m, claim=claim, variant=variant, target=target)
    shown = {k: v for k, v in m.items() if k not in ("target_positions", "target_tokens")}
    assert passed, f"H4 {claim} ({variant}) fails on {model_name}, layer {layer}, {target} target: {shown}" + windows_note(m)


def test_designated_by_training(sinkbench, model_name, layer, b_claim):
    sinkbench.resume("H4", model_name, layer, claim=b_claim, target=None)
    subject = sinkbench.subject(model_name)
    if subject.meta.get("zoo", {}).get("evaluation", {}).get("designated_sink") is None:
        pytest.skip(f"{model_name} was not trained with a designated sink token (B applies to tiny-bb-designated)")
    passed, m = sinkbench.h4b(model_name)[layer, b_claim]
    k = subject.meta["zoo"]["evaluation"]["designated_sink"]
    params = sinkbench.params(model_name, designated_position=k, bands=[sinkbench.settings.n_bands])
    sinkbench.record("H4", model_name, layer, params, passed, m, claim=b_claim, target=None, designated_position=k)
    assert passed, f"H4 {b_claim} fails on {model_name}, layer {layer}: {m}" + windows_note(m)
