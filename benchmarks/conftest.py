"""Benchmark settings (environment variables, so the command stays one line):
SINKBENCH_BENCH_MODELS  comma-separated aliases   (default: smollm2-135m,gemma3-270m)
SINKBENCH_BENCH_LAYERS  --layers syntax           (default: all)
SINKBENCH_BENCH_NSEQS   windows                   (default: 16)
SINKBENCH_BENCH_SEQLEN  tokens per window         (default: 128)
SINKBENCH_BENCH_FRONTIER 1/0: include H2's compression-frontier filters (default: 1)"""
import os

MODELS = os.environ.get("SINKBENCH_BENCH_MODELS", "smollm2-135m,gemma3-270m").split(",")


def pytest_generate_tests(metafunc):
    if "bench_model" in metafunc.fixturenames:
        metafunc.parametrize("bench_model", MODELS, scope="module")
