"""pytest plugin: wall and CPU time of each hypothesis on each model in a hypothesis run.

    PYTHONPATH=benchmarks SINKBENCH_TIMES=times.json python -m pytest hypotheses -p hypothesis_timer ...

A grid is computed by the first case of a (hypothesis, model) that needs it, so the sum over
a hypothesis's cases is that hypothesis's cost on the model (the model's load and spectrum
fall to the first hypothesis run on it, H1 in the default order). CPU time is this process's
(all its threads): on a machine shared with other jobs it moves much less than wall time,
which is why both are kept, with the 1-minute load average seen at the end of each case
(averaged over the hypothesis, weighted by wall time). Written as JSON to $SINKBENCH_TIMES
(if set) and printed as a table at the end."""
from __future__ import annotations

import json
import os
import time
from collections import defaultdict

import pytest

MODULES = {"test_dark_tail_necessary": "H1", "test_middle_dispensable": "H2", "test_distributed_sinks": "H3",
           "test_designated_sink": "H4", "test_sink_writer": "H5"}
_times: dict = defaultdict(lambda: {"wall_s": 0.0, "cpu_s": 0.0, "load_x_wall": 0.0, "cases": 0})


def _key(item) -> tuple[str, str]:
    module = item.module.__name__.rsplit(".", 1)[-1]
    params = getattr(getattr(item, "callspec", None), "params", {})
    return MODULES.get(module, module), str(params.get("model_name"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    w0, c0 = time.perf_counter(), time.process_time()
    yield
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    t = _times[_key(item)]
    t["wall_s"] += wall
    t["cpu_s"] += cpu
    t["load_x_wall"] += os.getloadavg()[0] * wall
    t["cases"] += 1


def table() -> list[dict]:
    rows = []
    for (hyp, model), t in _times.items():
        rows.append({"hypothesis": hyp, "model": model, "cases": t["cases"], "wall_s": round(t["wall_s"], 1),
                     "cpu_s": round(t["cpu_s"], 1), "load": round(t["load_x_wall"] / max(t["wall_s"], 1e-9), 2)})
    return rows


def pytest_terminal_summary(terminalreporter):
    rows = table()
    if not rows:
        return
    terminalreporter.section("hypothesis_timer: wall and CPU time per hypothesis and model")
    for r in rows:
        terminalreporter.write_line(f"{r['hypothesis']:3} {r['model']:24} {r['cases']:3} cases  wall {r['wall_s']:7.1f} s"
                                    f"  cpu {r['cpu_s']:7.1f} s  load {r['load']:.2f}")
    total_w, total_c = sum(r["wall_s"] for r in rows), sum(r["cpu_s"] for r in rows)
    terminalreporter.write_line(f"total wall {total_w:.1f} s, cpu {total_c:.1f} s")
    path = os.environ.get("SINKBENCH_TIMES")
    if path:
        with open(path, "w") as fh:
            json.dump({"rows": rows, "loadavg_end": os.getloadavg()}, fh, indent=1)
