"""Every hypothesis unit a third-party package registers through the entry-point group
`sinkbench.hypotheses` (README: "Write your own hypothesis"): one pytest function per test
it declares, parametrized, run, recorded and reported like the built-in hypotheses, whose
own files (test_*.py beside this one) name theirs. A unit whose package names its tests in a
module of its own (Hypothesis(test_module=...), node ids of its own) is collected from there.
--hypothesis-module files' units are registered before this module is imported."""
from sinkbench.registry import pytest_function, third_party

for _unit in third_party(own_modules=False):  # a unit with a test_module of its own is collected from there
    for _test in _unit.tests:
        globals()[_test.name] = pytest_function(_unit, _test.name)
