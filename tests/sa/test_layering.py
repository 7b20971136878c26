"""The shared SA layer's shape, read from the source with ``ast`` (every import counts,
``TYPE_CHECKING`` ones and imports inside functions too): neither IKE version imports the
other, ``pike.sa`` imports neither, and no import cycle runs inside ``pike.ikev1``,
``pike.ikev2`` or ``pike.sa``."""

from __future__ import annotations

import ast
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
PACKAGES = ("pike.ikev1", "pike.ikev2", "pike.sa")


def _modules() -> dict[str, Path]:
    out = {}
    for f in (FIRMWARE / "pike").rglob("*.py"):
        parts = f.relative_to(FIRMWARE).with_suffix("").parts
        name = ".".join(parts).removesuffix(".__init__")
        out[name] = f
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, f in mods.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"  # ``from pike.sa import traps``
                    deps.add(full if full in mods else node.module)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def _package(module: str) -> str | None:
    return next((p for p in PACKAGES if module == p or module.startswith(p + ".")), None)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_the_packages() -> None:
    graph = _graph()
    assert "pike.ikev1.engine" in graph and "pike.sa.context" in graph
    assert "pike.sa.child_sa" in graph["pike.ikev1.engine"]  # so the rules below can fail


def test_no_cross_version_imports() -> None:
    allowed = {"pike.ikev1": {"pike.ikev1", "pike.sa"}, "pike.ikev2": {"pike.ikev2", "pike.sa"}}
    allowed["pike.sa"] = {"pike.sa"}
    bad = []
    for name, deps in sorted(_graph().items()):
        own = _package(name)
        if own is None:
            continue
        for d in sorted(deps):
            theirs = _package(d)
            if theirs is not None and theirs not in allowed[own]:
                bad.append(f"{name} -> {d}")
    assert bad == []


def test_no_import_cycles_inside_the_sa_packages() -> None:
    graph = _graph()
    inside = {n: {d for d in ds if _package(d)} for n, ds in graph.items() if _package(n)}
    assert _cycles(inside) == []


def test_cycle_finder_finds_one() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
