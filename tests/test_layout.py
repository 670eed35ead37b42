"""The package's shape: no import cycle, and the packages depend on each other one way.

Every import counts, at the top of a module or inside a function: an import hidden in a
function is still a dependency, and a cycle through it is still a cycle.
"""

from __future__ import annotations

import ast
import importlib
import random
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "gateway"

LAYERS: dict[str, set[str]] = {
    # package -> the packages it may import (besides itself and the base modules)
    "ops": set(),
    "store": {"ops"},
    "ingest": {"ops", "store"},
    "dialects": {"ops", "ingest"},
    "http": {"ops", "store", "ingest", "dialects"},
    "worker": {"ops", "store"},
    "control": {"ops", "store", "ingest"},
}
BASE = {"gateway", "gateway.constants", "gateway.errors", "gateway.settings"}
"""Modules every package may use: the version, key names, the answers, the settings."""
TOP = {"gateway.app", "gateway.cli", "gateway.server", "gateway.__main__"}
"""The command line and the app's assembly: above every package."""


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The gateway modules `name` imports, wherever in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("gateway"):
                out.add(target)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else None


def test_no_import_cycle() -> None:
    # Tarjan's strongly connected components: any of more than one module is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(GRAPH[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert cycles == []


def test_packages_depend_one_way() -> None:
    wrong = []
    for module, targets in GRAPH.items():
        package = _package(module)
        if module in TOP or package is None:
            continue
        allowed = LAYERS[package] | {package}
        for target in targets:
            if target in BASE:
                continue
            if target in TOP or _package(target) not in allowed:
                wrong.append(f"{module} -> {target}")
    assert sorted(wrong) == []


def test_base_modules_import_no_package_above_ops() -> None:
    for module in BASE - {"gateway"}:
        above = {t for t in GRAPH[module] if t not in BASE and _package(t) != "ops"}
        assert above == set(), module


def test_top_of_the_package_is_small() -> None:
    top = [p.name for p in ROOT.glob("*.py")]
    assert len(top) <= 12, top


def test_no_module_is_long() -> None:
    long = {
        name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > 400
    }
    assert long == {}


def test_every_package_says_what_lives_there() -> None:
    for path in ROOT.rglob("__init__.py"):
        assert ast.get_docstring(ast.parse(path.read_text())), path


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_module_imports_in_any_order(seed: int) -> None:
    """Each module imported first in a fresh interpreter would be slow; instead, import every
    module in a shuffled order in a subprocess, so an order-dependent import fails here."""
    import subprocess
    import sys

    names = sorted(n for n in MODULES if n != "gateway.__main__")
    random.Random(seed).shuffle(names)
    code = f"import importlib\nfor n in {names!r}:\n    importlib.import_module(n)\n"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    importlib.invalidate_caches()


def test_every_module_is_in_the_architecture_doc() -> None:
    doc = (ROOT.parent / "docs" / "architecture.md").read_text()
    unlisted = [
        str(path.relative_to(ROOT.parent))
        for path in ROOT.rglob("*.py")
        if path.name != "__init__.py" and f"`{path.name}`" not in doc and path.name not in doc
    ]
    assert unlisted == []
