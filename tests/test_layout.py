"""The package's shape: imports run one way, with no cycle.

    domain, messages  ←  repositories  ←  services (feature packages)  ←  {api, activities, loops, CLI}

Each module's layer follows from its path (see `layer`). The graph is grimp's, which sees
every import, including those inside functions, so a cycle cannot hide in a lazy import.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import grimp
import pytest

FEATURES = {"auth", "campaigns", "scheduling", "analytics", "abtests", "webhooks", "widget"}
COMPOSITION = {"campaigns.worker", "campaigns.cli"}
# Libraries that do I/O or serve HTTP: never in pure code or workflow code.
IO_LIBRARIES = {"asyncpg", "redis", "httpx", "aiohttp", "fastapi", "starlette", "uvicorn", "sse_starlette"}


def layer(module: str) -> str:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    if top in ("domain", "messages"):
        return "pure"
    if top == "workflows":
        return "workflow"
    if top == "activities":
        return "activity"
    if top == "api":
        return "http"
    if top in ("stack", "simulator") or module in COMPOSITION:
        return "composition"
    if top in FEATURES:
        return "repository" if parts[-1] == "repository" else "application"
    return "foundation"  # settings, errors, db, temporal, metrics, caches' memory tier, outbound clients


# What each layer may import from the package (besides itself, and anything for a composition root).
ALLOWED = {
    "pure": {"pure"},
    "workflow": {"pure", "workflow"},
    "foundation": {"pure", "foundation"},
    "repository": {"pure", "foundation", "repository"},
    "application": {"pure", "foundation", "repository", "application"},
    "activity": {"pure", "foundation", "repository", "application", "activity"},
    "http": {"pure", "foundation", "repository", "application", "http"},
}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("campaigns", include_external_packages=True, cache_dir=None)


def internal_imports(graph: grimp.ImportGraph) -> Iterator[tuple[str, str]]:
    for importer in sorted(graph.modules):
        if not importer.startswith("campaigns"):
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if imported.startswith("campaigns.") and imported != importer:
                yield importer, imported


def where(graph: grimp.ImportGraph, importer: str, imported: str) -> str:
    details = graph.get_import_details(importer=importer, imported=imported)
    return f"{importer} → {imported} (line {details[0]['line_number']})" if details else f"{importer} → {imported}"


def test_no_import_cycle(graph):
    edges: dict[str, set[str]] = {}
    for importer, imported in internal_imports(graph):
        edges.setdefault(importer, set()).add(imported)
    cycles = strongly_connected(edges)
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(sorted(c)) for c in cycles)


def test_imports_run_one_way(graph):
    wrong = []
    for importer, imported in internal_imports(graph):
        source, target = layer(importer), layer(imported)
        if source == "composition" or imported == "campaigns":
            continue
        if target == "workflow" and importer.endswith(".workflow_client"):
            continue  # the one place a feature starts or talks to its workflows
        if target not in ALLOWED[source]:
            wrong.append(f"{source} imports {target}: {where(graph, importer, imported)}")
    assert not wrong, "\n".join(wrong)


def test_only_workflow_clients_and_the_worker_import_workflows(graph):
    wrong = [
        where(graph, importer, imported)
        for importer, imported in internal_imports(graph)
        if layer(imported) == "workflow"
        and layer(importer) != "workflow"
        and not importer.endswith(".workflow_client")
        and importer != "campaigns.worker"
    ]
    assert not wrong, "\n".join(wrong)


def test_nothing_imports_the_http_layer(graph):
    wrong = [
        where(graph, importer, imported)
        for importer, imported in internal_imports(graph)
        if layer(imported) == "http" and layer(importer) != "http"
    ]
    assert not wrong, "\n".join(wrong)


def test_pure_and_workflow_code_does_no_io(graph):
    wrong = []
    for module in sorted(graph.modules):
        if module.startswith("campaigns") and layer(module) in ("pure", "workflow"):
            for imported in graph.find_modules_directly_imported_by(module):
                if imported.split(".")[0] in IO_LIBRARIES:
                    wrong.append(where(graph, module, imported))
    assert not wrong, "\n".join(wrong)


def test_no_import_hidden_in_a_function(graph):
    """Only the CLI imports lazily (each command loads only what it runs)."""
    wrong = []
    for importer, imported in internal_imports(graph):
        if importer == "campaigns.cli":
            continue
        for detail in graph.get_import_details(importer=importer, imported=imported):
            if detail["is_lazy"]:
                wrong.append(f"{importer} line {detail['line_number']}: {detail['line_contents']}")
    assert not wrong, "\n".join(wrong)


def test_the_rules_see_a_cycle_and_a_wrong_direction():
    """The checks above would fail on a graph that breaks them."""
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert layer("campaigns.workflows.campaign") == "workflow"
    assert layer("campaigns.campaigns.repository") == "repository"
    assert layer("campaigns.campaigns.service") == "application"
    assert "application" not in ALLOWED["repository"] and "http" not in ALLOWED["activity"]


def strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm: the groups of two or more modules that import each other."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(group)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found
