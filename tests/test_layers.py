"""The library layers stay navigable: every public builder has a caller outside the tests, no
two public functions of ``tasks/`` and ``requests/`` share a name (ast based), and the import
contracts of docs/architecture.md (``[tool.importlinter]`` in pyproject.toml) hold."""

from __future__ import annotations

import ast
import tomllib
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


def test_the_import_contracts_hold(monkeypatch, capsys):
    """The "may import" table as ``lint-imports`` checks it in ``make lint``: every contract
    kept (a broken one is listed with the import that breaks it)."""
    from importlinter.cli import lint_imports

    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(REPO))
    code = lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True, no_logo=True)
    report = capsys.readouterr().out
    assert code == 0, report
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert "0 broken" in report and f"{len(contracts['contracts'])} kept" in report
