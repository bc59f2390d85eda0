"""Fails on any import cycle between the modules of the given packages (default: gateway, pipelines).

`python tools/check_imports.py [PACKAGE ...]` prints each cycle spelled out, module by module with the
line of every import in it, and exits 1; it exits 0 when the import graph has none. The packages must
be importable (installed, or on PYTHONPATH).

Every import counts, wherever it is written: inside a function (a late import is the usual way a cycle
gets hidden) and under `if TYPE_CHECKING:`. Those last never run, so they are no runtime cycle; they
count all the same because two modules that need each other's names to be read are one module split in
two, and moving the shared piece down is what breaks such a cycle either way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from itertools import pairwise

import grimp

Graph = Mapping[str, frozenset[str]]


def import_graph(packages: Iterable[str]) -> tuple[grimp.ImportGraph, Graph]:
    """grimp's graph of `packages` (no cache on disk), and each module's direct imports within them."""
    first, *others = packages
    graph = grimp.build_graph(first, *others, cache_dir=None)
    edges = {m: frozenset(graph.find_modules_directly_imported_by(m)) - {m} for m in graph.modules}
    return graph, edges


def strongly_connected(edges: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative, so a
    deep import chain cannot overflow the stack), each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components)


def _shortest_path(edges: Graph, start: str, goal: str, within: set[str]) -> list[str]:
    """The shortest import chain start -> ... -> goal through modules of `within` (breadth first)."""
    previous: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier and goal not in previous:
        following = []
        for module in frontier:
            for nxt in sorted(edges[module] & within):
                if nxt not in previous:
                    previous[nxt] = module
                    following.append(nxt)
        frontier = following
    path = [goal]
    while (step := previous[path[-1]]) is not None:
        path.append(step)
    return path[::-1]


def cycles(edges: Graph, component: list[str]) -> list[list[str]]:
    """Cycles that together use every import inside `component`, each as [a, b, ..., a]: the first
    through the first import not yet shown, by the shortest way back."""
    members = set(component)
    shown: set[tuple[str, str]] = set()
    found = []
    for importer in component:
        for imported in sorted(edges[importer] & members):
            if (importer, imported) in shown:
                continue
            cycle = [importer, *_shortest_path(edges, imported, importer, members)]
            shown.update(pairwise(cycle))
            found.append(cycle)
    return found


def describe(graph: grimp.ImportGraph, cycle: list[str]) -> str:
    lines = [" -> ".join(cycle)]
    for importer, imported in pairwise(cycle):
        details = graph.get_import_details(importer=importer, imported=imported)
        where = "; ".join(f"line {d['line_number']}: {d['line_contents']}" for d in details)
        lines.append(f"    {importer} -> {imported}  ({where})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("packages", nargs="*", default=["gateway", "pipelines"])
    packages: list[str] = parser.parse_args(argv).packages
    graph, edges = import_graph(packages)
    components = strongly_connected(edges)
    if not components:
        print(f"no import cycles in {', '.join(packages)} ({len(edges)} modules)")
        return 0
    for component in components:
        print(f"import cycle among {len(component)} modules: {', '.join(component)}")
        for cycle in cycles(edges, component):
            print(f"  {describe(graph, cycle)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
