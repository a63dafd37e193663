"""Docs and code agree on every Holm family size: the table in docs/methods.md (section 6)
and the sentence in docs/calibration.md against the number of p-values the verdict
functions actually Holm-correct together on the default grid."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from sinkbench.stats import claims
from sinkbench.measure.designate import WriteResult
from sinkbench.hypotheses import (h1_dark_tail, h2_middle, h3_distributed, h4a_designated_write, h4b_designated_training,
                                  h5_sink_writer)
from sinkbench.hypotheses.h1_dark_tail import H1Inputs
from sinkbench.hypotheses.h2_middle import H2bInputs, H2Inputs
from sinkbench.hypotheses.h5_sink_writer import H5Inputs

DOCS = Path(__file__).resolve().parent.parent / "docs"
N = 16


def counted(monkeypatch) -> list[int]:
    sizes: list[int] = []
    real = claims.holm

    def spy(p):
        sizes.append(len(p))
        return real(p)

    for module in (claims, h5_sink_writer):  # every module whose verdicts call holm by name
        monkeypatch.setattr(module, "holm", spy)
    return sizes


def arr(rng, shift=0.0):
    return 3.0 + shift + 0.1 * rng.standard_normal(N)


def families(monkeypatch) -> dict[str, int]:
    rng = np.random.default_rng(0)
    out = {}
    sizes = counted(monkeypatch)
    b = arr(rng)
    h1 = H1Inputs(b, b + 2, b + 0.2, b + 0.1, b, b + 2, b + 0.5, b + 0.5, np.full(N, 0.5), np.full(N, 0.2),
                  random_each=np.stack([b + 0.1, b + 0.2, b + 0.3]))
    h1_dark_tail.h1_verdicts({l: h1 for l in range(3)}, alpha=0.05, min_delta=0.5, min_sink_drop=0.2, n_boot=50)
    out["H1"] = sizes.pop()
    h2_middle.h2_verdicts({(l, k): H2Inputs(b, b + 0.1, b + 0.5, 30, 30) for l in range(3) for k in (5, 10, 15)},
                       {l: H2bInputs(b, b + 0.1, 15, 0.3) for l in range(3)}, alpha=0.05, n_boot=50)
    out["H2"] = sizes.pop()
    tables = {c: h3_distributed.h3_table(rng, N, None, dict(h3_distributed.H3_PROFILE)) for c in ("bos", "nobos")}
    h3_distributed.h3_verdicts({c: h3_distributed.h3_raw(t, permutations=50) for c, t in tables.items()}, alpha=0.05, n_boot=50)
    out["H3"] = sizes.pop()
    w = {m: WriteResult(np.full(N, 0.01) * f, np.full(N, 0.6), b + d) for m, f, d in
         [("base", 1, 0), ("add", 10, 0), ("transplant", 15, 0.1), ("control", 1.2, 0), ("broken", 1, 1)]}
    h4a_designated_write.h4a_verdicts({(l, t): h4a_designated_write.h4a_raw(w, 3.0, 50, 0.5, key=(l, t)) for l in range(3) for t in range(3)},
                        alpha=0.05)
    out["H4-A"] = sizes.pop()
    g = {"att_k": np.full(N, 0.6), "att_0": np.full(N, 0.3), "nll_base": b, "nll_dark_k": b + 1, "nll_dark_0": b + 0.2,
         "dark_ratio_k": np.full(N, 2.0), "dark_ratio_ordinary": np.full(N, 0.5)}
    h4b_designated_training.h4b_verdicts({l: g for l in range(3)}, alpha=0.05, n_boot=50)
    out["H4-B"] = sizes.pop()
    h5_sink_writer.h5_verdicts(H5Inputs(np.full(N, 0.8), b, np.full(N, 0.5), b + 1, np.full(N, 0.2), b + 0.1, np.full(N, 0.45)),
                       alpha=0.05, min_share=0.5, min_sink_drop=0.1, min_nll_rise=0.05, n_boot=50)
    out["H5"] = sizes.pop()
    from sinkbench.hypotheses.h7_streaming import verdicts as claims_h7
    from sinkbench.hypotheses.h7_streaming.measurement import H7Test

    monkeypatch.setattr(claims_h7, "holm", claims.holm)  # the spy
    claims_h7.h7_verdicts(H7Test(b, b + 1, b + 0.1, b + 0.1, b + 0.9, designated={l: b + 0.2 for l in range(3)}),
                          alpha=0.05, min_gap=0.1, min_recovered=0.5, min_designated=0.5, n_boot=50)
    out["H7"] = sizes.pop()
    return out


def methods_table() -> dict[str, int]:
    text = (DOCS / "methods.md").read_text()
    rows = re.findall(r"^\| (H\d(?:-[AB])?) \| [^|]+ \| [^|]+ \| [^|]+ \| (\d+) \|$", text, re.M)
    return {h: int(n) for h, n in rows}


def test_methods_family_table_matches_the_verdict_functions(monkeypatch):
    assert methods_table() == families(monkeypatch)


def test_calibration_page_states_the_same_families(monkeypatch):
    text = (DOCS / "calibration.md").read_text()
    m = re.search(r"Holm families at the default grid: (.+?) \(", text)
    assert m, "docs/calibration.md must state the family sizes"
    stated = {h: int(n) for h, n in re.findall(r"(H\d(?:-[AB])?) (\d+)", m.group(1))}
    assert stated == families(monkeypatch)


@pytest.mark.parametrize("page", ["methods.md", "calibration.md"])
def test_no_stale_family_counts(page):
    """Family sizes of older rounds (4 tests per H1 layer, 54 for H4-A) are gone."""
    text = (DOCS / page).read_text()
    assert not re.search(r"\(4 tests\)|= 54\b|54 for H4|for H4-A \(54|tests per H1 layer", text)
