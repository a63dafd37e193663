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
Holm over each model's grid.

The hypothesis itself (grid, verdicts, calibration nulls, figures) is the unit
sinkbench.hypotheses.h4a_designated_write, sinkbench.hypotheses.h4b_designated_training; this file only names its tests."""
from sinkbench.hypotheses import h4a_designated_write, h4b_designated_training
from sinkbench.registry import pytest_function

test_designated_by_intervention = pytest_function(h4a_designated_write.HYPOTHESIS, "test_designated_by_intervention")
test_designated_by_training = pytest_function(h4b_designated_training.HYPOTHESIS, "test_designated_by_training")
