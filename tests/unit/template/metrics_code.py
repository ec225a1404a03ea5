"""The metrics the code emits, read statically from the layer and the functions.

Two ways to emit, as `chorus.core.observability` defines them:
- `metrics.add_metric(name=…)` on the handler's shared Powertools instance: dimension `service` =
  the application (`POWERTOOLS_SERVICE_NAME`), flushed by `@metrics.log_metrics`;
- `X.add_metric(name=…)` inside `with per_service(…) as X:`: its own EMF line whose dimensions are
  the ones `per_service` adds (`service`, and `step` when given).

A metric's name must be a string literal or a lookup in a module-level dict of string literals
(`ATTEMPT_METRICS[outcome]`): anything else cannot be checked, so `emitted()` fails naming the
place. `single_metric(name=…)` (Powertools' one-off EMF line) would count as a shared metric
with its own dimensions; the code uses none, and finding one fails too until it is classified.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "layers" / "chorus" / "chorus"
SOURCES = [*sorted(PACKAGE.rglob("*.py")), *sorted((ROOT / "functions").glob("*/*.py"))]
OBSERVABILITY = PACKAGE / "core" / "observability.py"
SHARED_INSTANCE = "metrics"  # chorus.core.observability.metrics
PER_SERVICE = "per_service"  # chorus.core.observability.per_service
PER_FEATURE = "per_feature"  # chorus.core.observability.per_feature (the drift monitor's)


@dataclass(frozen=True)
class Emitted:
    shared: frozenset[str]  # on the handler's instance: dimensions {service: <application>}
    per_service: frozenset[str]  # inside `per_service`: dimensions PER_SERVICE_DIMENSIONS
    per_feature: frozenset[str] = frozenset()  # inside `per_feature`: dimensions `service`, `feature`


def _literal_tables(tree: ast.Module) -> dict[str, list[str]]:
    """Module-level `NAME = {key: "literal", …}`: the values a lookup can yield."""
    tables = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values = node.value.values if isinstance(node.value, ast.Dict) else []
            if values and all(isinstance(v, ast.Constant) and isinstance(v.value, str) for v in values):
                tables[node.targets[0].id] = [v.value for v in values]  # type: ignore[union-attr]
    return tables


def _names(call: ast.Call, tables: dict[str, list[str]], where: str) -> list[str]:
    given = next((k.value for k in call.keywords if k.arg == "name"), call.args[0] if call.args else None)
    if isinstance(given, ast.Constant) and isinstance(given.value, str):
        return [given.value]
    if isinstance(given, ast.Subscript) and isinstance(given.value, ast.Name) and given.value.id in tables:
        return tables[given.value.id]
    raise AssertionError(f"{where}: a metric name must be a literal or a lookup in a module-level table of literals")


def _receiver(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr == "add_metric" and isinstance(func.value, ast.Name):
        return func.value.id
    return None


@cache
def emitted() -> Emitted:
    shared: set[str] = set()
    scoped: set[str] = set()
    featured: set[str] = set()
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        tables = _literal_tables(tree)
        per_service_names: set[str] = set()
        per_feature_names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.With):
                for item in node.items:
                    call = item.context_expr
                    if (
                        isinstance(call, ast.Call)
                        and isinstance(call.func, ast.Name)
                        and call.func.id in (PER_SERVICE, PER_FEATURE)
                        and isinstance(item.optional_vars, ast.Name)
                    ):
                        names = per_service_names if call.func.id == PER_SERVICE else per_feature_names
                        names.add(item.optional_vars.id)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            func = node.func
            if (isinstance(func, ast.Name) and func.id == "single_metric") or (
                isinstance(func, ast.Attribute) and func.attr == "single_metric"
            ):
                raise AssertionError(f"{where}: single_metric is not classified by this check yet")
            receiver = _receiver(node)
            if receiver is None:
                continue
            if path == OBSERVABILITY:
                continue  # the helpers themselves
            if receiver == SHARED_INSTANCE:
                shared.update(_names(node, tables, where))
            elif receiver in per_service_names:
                scoped.update(_names(node, tables, where))
            elif receiver in per_feature_names:
                featured.update(_names(node, tables, where))
            else:
                raise AssertionError(
                    f"{where}: add_metric on {receiver!r}: neither `metrics` nor a per_service or per_feature block"
                )
    return Emitted(frozenset(shared), frozenset(scoped), frozenset(featured))


@cache
def per_service_dimensions() -> tuple[str, ...]:
    """The dimension names `per_service` adds, in order (`service`, then the optional `step`)."""
    tree = ast.parse(OBSERVABILITY.read_text())
    (helper,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == PER_SERVICE]
    found = []
    for node in ast.walk(helper):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_dimension":
            (name,) = [k.value for k in node.keywords if k.arg == "name"]
            assert isinstance(name, ast.Constant), "per_service: dimension names are literals"
            found.append(str(name.value))
    return tuple(found)
