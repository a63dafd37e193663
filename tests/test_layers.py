"""The layout's rule (ARCHITECTURE.md): sinkbench's layers import one way only, and no two
modules import each other, directly or round a circle. Every import counts, including the
ones inside functions (a lazy import is still an arrow).

    errors < stats < model < measure < registry < hypotheses < read < run

A module may import its own layer and the layers below it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["errors", "stats", "model", "measure", "registry", "hypotheses", "read", "run"]
# the package's own entry points sit above everything
TOP = {"sinkbench.__main__"}


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (harness/ is sinkbench, hypotheses/ is
    sinkbench.hypotheses; the hypotheses' own test files are not part of the package)."""
    out = {}
    for base, prefix in ((ROOT / "harness", "sinkbench"), (ROOT / "hypotheses", "sinkbench.hypotheses")):
        for p in base.rglob("*.py"):
            rel = p.relative_to(base).with_suffix("")
            parts = [x for x in rel.parts if x != "__init__"]
            if parts and parts[0].startswith("test_"):
                continue
            out[".".join([prefix, *parts])] = p
    return out


MODULES = module_files()


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def imports(name: str) -> set[str]:
    """The sinkbench modules `name` imports anywhere in its file, resolved to modules."""
    tree = ast.parse(MODULES[name].read_text())
    package = name if is_package(name) else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for t in targets:
            while t and t not in MODULES and "." in t:
                t = t.rpartition(".")[0]
            if t in MODULES and t != name and t != "sinkbench":
                out.add(t)
    return out


def layer(name: str) -> int:
    if name in TOP:
        return len(LAYERS)
    parts = name.split(".")
    if name == "sinkbench" or len(parts) < 2:
        return 0
    return LAYERS.index(parts[1])


GRAPH = {m: imports(m) for m in MODULES}


def test_every_module_sits_in_a_layer():
    strays = [m for m in MODULES if m not in TOP and m != "sinkbench" and m.split(".")[1] not in LAYERS]
    assert not strays, f"modules outside the layers of ARCHITECTURE.md: {strays}"


def test_imports_run_one_way():
    up = [f"{m} ({LAYERS[layer(m)] if layer(m) < len(LAYERS) else 'top'}) imports {d} ({LAYERS[layer(d)]})"
          for m, deps in GRAPH.items() for d in deps
          # a package's __init__ may re-export its own modules
          if layer(d) > layer(m) and not d.startswith(m + ".")]
    assert not up, "imports that run up the layers:\n" + "\n".join(sorted(up))


def test_no_import_circles():
    # Tarjan's strongly connected components over the module graph; a package importing its
    # own module is not a circle (Python imports the package before the module anyway)
    index, low, stack, on, sccs = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not sccs, f"import circles: {sccs}"


def test_statistics_need_no_torch():
    # the verdicts are pure functions of per-window arrays: numpy and scipy, no model
    heavy = []
    for m in MODULES:
        if layer(m) != LAYERS.index("stats"):
            continue
        for node in ast.walk(ast.parse(MODULES[m].read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            heavy += [f"{m}: {n}" for n in names if n.split(".")[0] in ("torch", "transformers", "nnsight")]
    assert not heavy, heavy


def test_the_rule_catches_an_arrow_up_and_a_circle(monkeypatch):
    # the checks can fail: a stats module importing the run, and two run modules importing each other
    assert layer("sinkbench.run.plugin") > layer("sinkbench.stats.claims")
    monkeypatch.setitem(GRAPH, "sinkbench.stats.claims", GRAPH["sinkbench.stats.claims"] | {"sinkbench.run.plugin"})
    with pytest.raises(AssertionError, match=r"sinkbench.stats.claims \(stats\) imports sinkbench.run.plugin \(run\)"):
        test_imports_run_one_way()
    monkeypatch.setitem(GRAPH, "sinkbench.run.plugin", GRAPH["sinkbench.run.plugin"] | {"sinkbench.run.bench"})
    monkeypatch.setitem(GRAPH, "sinkbench.run.bench", GRAPH["sinkbench.run.bench"] | {"sinkbench.run.plugin"})
    with pytest.raises(AssertionError, match="sinkbench.run.bench"):
        test_no_import_circles()
