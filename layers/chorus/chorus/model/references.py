"""References in ensemble mappings: `"{{ expression }}"` strings, and the sources each one reads.

The one parser of reference syntax: the registry validates with it, the mapping renders with it,
the compiler plans with it. The expression inside the braces is JSONata (`model/expressions.py`).
"""

from __future__ import annotations

import re
from typing import Any

from chorus.model.expressions import INPUT, ITEM, sources

REFERENCE = re.compile(r"^\{\{\s*(?P<expr>.+?)\s*\}\}$", re.DOTALL)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LITERALS = {"true", "false", "null"}  # JSONata's literal values, not names

__all__ = [
    "INPUT",
    "ITEM",
    "expression_sources",
    "mapping_dependencies",
    "reference_expression",
    "references",
    "whole_payload_root",
]


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


def whole_payload_root(expression: str) -> str | None:
    """The root of a whole-payload reference (`input`, `item`, `svm`, `svm.output`), else None.

    `input.output` is the field `output` of the request input, not a whole payload.
    """
    expression = expression.strip()
    if expression in _LITERALS:
        return None
    if _NAME.match(expression):
        return expression
    root, _, rest = expression.partition(".")
    if rest == "output" and _NAME.match(root) and root not in (INPUT, ITEM):
        return root
    return None


def expression_sources(expression: str) -> set[str]:
    """Every source (`input`, `item` or a step) an expression reads, e.g. both in
    `a.output.x + b.output.y`."""
    root = whole_payload_root(expression)
    return {root} if root is not None else sources(expression)


def mapping_dependencies(mapping: Any) -> set[str]:
    """The steps a mapping reads (never `input` or `item`)."""
    return {name for expr in references(mapping) for name in expression_sources(expr)} - {INPUT, ITEM}
