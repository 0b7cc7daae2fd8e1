"""Dependencies point one way: cli, api → services → store; engine → services/store; sdk stands alone;
the MCP tools reach the server only through the SDK (the HTTP API)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rotor_lite

PACKAGE = Path(rotor_lite.__file__).parent
FORBIDDEN = {
    "store": ("rotor_lite.services", "rotor_lite.engine", "rotor_lite.api", "rotor_lite.cli"),
    "services": ("rotor_lite.engine", "rotor_lite.api", "rotor_lite.cli"),
    "engine": ("rotor_lite.api", "rotor_lite.cli"),
    "api": ("rotor_lite.cli",),
    "mcp": ("rotor_lite.store", "rotor_lite.services", "rotor_lite.engine", "rotor_lite.api", "rotor_lite.cli"),
    "sdk": ("rotor_lite.store", "rotor_lite.services", "rotor_lite.engine", "rotor_lite.api", "rotor_lite.cli",
            "rotor_lite.config", "rotor_lite.models"),
}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_one_way(layer: str) -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)} imports {module}"
        for path in (PACKAGE / layer).rglob("*.py")
        for module in _imports(path)
        if module.startswith(FORBIDDEN[layer])
    ]
    assert not offenders


def test_sql_lives_only_in_store() -> None:
    keywords = ("SELECT ", "INSERT INTO", "UPDATE job", "DELETE FROM")
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "store" not in path.parts and any(k in path.read_text() for k in keywords)
    ]
    assert not offenders
