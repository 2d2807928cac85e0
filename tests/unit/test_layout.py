"""The package layout is the pipeline: each stage imports only the stages below it (as its
``__init__`` docstring says), and no modules import each other in a cycle. Read from the
source with ``ast`` (every import, lazy ones too), so it runs in milliseconds."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "liteparity"

#: Stages from the bottom up; a module may import its own stage and the ones before it.
ORDER = [
    "errors",
    "progress",
    "timings",
    "files",
    "plain",
    "specs",
    "qparams",
    "_tf",
    "_litert",
    "results",
    "data",
    "runtime",
    "reference",
    "convert",
    "measure",
    "layerwise",
    "diagnose",
    "repair",
    "demo",
    "report",
    "cli",
]
#: Stages that must stay leaner than their rank: renderers and result types read data only.
ONLY = {
    "results": {"errors", "plain", "results"},
    "report": {"errors", "files", "plain", "results", "report"},
    "runtime": {"errors", "plain", "qparams", "_litert", "specs", "data", "runtime"},
}


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


@functools.cache
def _imports() -> dict[str, set[str]]:
    """Every liteparity module and the liteparity modules it imports (anywhere in it but in
    ``if TYPE_CHECKING:`` blocks, which only annotations read)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(p for p in parts if p != "__init__")
        found: set[str] = set()
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module.startswith("liteparity"):
                    found.add(node.module)
                    found |= {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("liteparity")}
        graph[name] = found
    return {m: {i for i in found if i in graph and i != m} for m, found in graph.items()}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` outside ``if TYPE_CHECKING:`` blocks."""
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for child in node.body
        for n in ast.walk(child)
    }
    return [n for n in ast.walk(tree) if id(n) not in skipped]


def test_no_relative_imports() -> None:
    """Absolute imports only: a module's imports say which stage they come from."""
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}: relative import of {node.module}"


@pytest.mark.parametrize("module", sorted(_imports()))
def test_each_stage_imports_only_the_stages_below_it(module: str) -> None:
    stage = _stage(module)
    if stage in ("__init__", "__main__"):
        return  # the public API and ``python -m liteparity`` re-export the stages
    assert stage in ORDER, f"{module}: stage {stage!r} is not in the layout table"
    allowed = ONLY.get(stage, set(ORDER[: ORDER.index(stage) + 1]))
    wrong = sorted(i for i in _imports()[module] if _stage(i) not in allowed | {"__init__"})
    assert not wrong, f"{module} ({stage}) imports {wrong}"


def test_no_import_cycles() -> None:
    graph = _imports()
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, "cycle: " + " → ".join([*visiting, module])
        visiting.append(module)
        for target in sorted(graph[module]):
            if target != "liteparity":  # the package root re-exports lazily (PEP 562)
                visit(target)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
