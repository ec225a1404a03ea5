"""References in ensemble mappings: `"{{ expression }}"` strings, and the source each one reads.

The one parser of reference syntax: the registry validates with it, the mapping renders with it,
the compiler plans with it.
"""

from __future__ import annotations

import re
from typing import Any

import jmespath

INPUT = "input"
REFERENCE = re.compile(r"^\{\{\s*(?P<expr>.+?)\s*\}\}$")
_ROOT = re.compile(r"^(?P<root>[A-Za-z_][A-Za-z0-9_]*)")


class InvalidReference(ValueError):
    """A reference that does not start with `input` or a step name."""


def reference_expression(value: Any) -> str | None:
    """The expression of a string that is exactly one `{{ expression }}`, else None."""
    if not isinstance(value, str):
        return None
    match = REFERENCE.match(value)
    return match["expr"] if match else None


def references(mapping: Any) -> list[str]:
    """Every `{{ expression }}` in a mapping, in document order."""
    if isinstance(mapping, dict):
        return [ref for value in mapping.values() for ref in references(value)]
    if isinstance(mapping, list):
        return [ref for value in mapping for ref in references(value)]
    expression = reference_expression(mapping)
    return [expression] if expression is not None else []


def expression_root(expression: str) -> str:
    """The source an expression reads: `input` or a step name (its leading identifier)."""
    match = _ROOT.match(expression)
    if not match:
        raise InvalidReference(f"reference {expression!r} must start with `input` or a step name")
    return match["root"]


def whole_payload_root(expression: str) -> str | None:
    """The root of a whole-payload reference (`input`, `svm`, `svm.output`), else None.

    `input.output` is the field `output` of the request input, not a whole payload.
    """
    root = expression_root(expression)
    if expression == root or (root != INPUT and expression == f"{root}.output"):
        return root
    return None


# JMESPath nodes whose first child is evaluated against the document and the rest against its
# elements or result: only the first can name a source.
_LEFT_ONLY = {
    "subexpression",
    "index_expression",
    "projection",
    "value_projection",
    "filter_projection",
    "flatten",
    "pipe",
    "slice",
}


def _sources(node: dict[str, Any]) -> set[str]:
    kind = node.get("type")
    if kind == "field":
        return {node["value"]}
    children = node.get("children", [])
    if kind in _LEFT_ONLY:
        return _sources(children[0]) if children else set()
    return {name for child in children if isinstance(child, dict) for name in _sources(child)}


def expression_sources(expression: str) -> set[str]:
    """Every source (`input` or a step) an expression reads, e.g. both in `a.output.x || b.output.y`."""
    return _sources(jmespath.compile(expression).parsed)


def step_dependencies(mapping: Any) -> set[str]:
    """The steps a mapping reads (never `input`)."""
    return {expression_root(expr) for expr in references(mapping)} - {INPUT}
