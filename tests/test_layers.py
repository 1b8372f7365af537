"""The library layers stay navigable: every public builder has a caller outside the tests, and
no two public functions of ``tasks/`` and ``requests/`` share a name (ast based)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from tests.conftest import REPO

PIPELINE = REPO / "include" / "pipeline"
LAYERS = ("requests", "tasks")
# Where callers may live: everything that runs, never the tests.
SOURCES = [REPO / "dags", REPO / "plugins", REPO / "include"]


def _modules(layer: str) -> list[Path]:
    return sorted(p for p in (PIPELINE / layer).rglob("*.py") if p.name != "__init__.py")


def _public_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and not node.name.startswith("_")
    ]


def _used_names(path: Path) -> set[str]:
    """Every name a module refers to (calls, attributes, imports), definitions excluded."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add(node.name.rsplit(".", 1)[-1])
    return names


def test_every_public_builder_has_a_caller_outside_the_tests():
    used = set().union(*(_used_names(p) for root in SOURCES for p in root.rglob("*.py")))
    uncalled = [
        f"{path.relative_to(REPO)}:{name}"
        for layer in LAYERS
        for path in _modules(layer)
        for name in _public_functions(path)
        if name not in used
    ]
    assert uncalled == [], "wire these into a DAG / task, or delete them"


def test_no_public_function_name_is_defined_in_two_layers():
    where = defaultdict(list)
    for layer in LAYERS:
        for path in _modules(layer):
            for name in _public_functions(path):
                where[name].append(str(path.relative_to(REPO)))
    assert {name: paths for name, paths in where.items() if len(paths) > 1} == {}
