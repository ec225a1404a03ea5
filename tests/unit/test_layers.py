"""The domain package's layers point one way: core ← model ← events ← adapters ← api ← domain.

A module may import from its own layer and the layers below it, never above; the build-time
compiler is not part of the runtime package at all."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "chorus" / "chorus"
ORDER = ["core", "model", "events", "adapters", "api", "domain"]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("chorus"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("chorus"))
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_its_own_layer_and_below(path: Path) -> None:
    layer = ORDER.index(path.parent.name)
    for module in _imports(path):
        parts = module.split(".")
        if parts[0] != "chorus" or len(parts) < 2:
            assert not module.startswith("chorus_compiler"), f"{path.name} imports the build-time compiler"
            continue
        if parts[1] in ORDER:
            assert ORDER.index(parts[1]) <= layer, f"{path.relative_to(PACKAGE)} imports {module} (a layer above)"


def test_every_module_lives_in_a_layer() -> None:
    assert {p.name for p in PACKAGE.glob("*.py")} == {"__init__.py"}
    assert {p.parent.name for p in MODULES} == set(ORDER)
