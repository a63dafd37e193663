"""Every hypothesis unit a third-party package registers through the entry-point group
`sinkbench.hypotheses` (README: "Write your own hypothesis"): one pytest function per test
it declares, parametrized, run, recorded and reported like the built-in hypotheses, whose
own files (test_*.py beside this one) name theirs."""
from sinkbench.registry import pytest_function, third_party

for _unit in third_party():
    for _test in _unit.tests:
        globals()[_test.name] = pytest_function(_unit, _test.name)
