"""The one expression language of ensembles: JSONata (Step Functions' own), for mappings,
conditions, rules and fan-out lists alike (docs/decisions.md).

An expression reads *sources*: `input` (the request input), a step name (`svm.output.label`,
`svm.status`) or, inside a fanned-out step, `item`. The sources are the leading names of the
expression's paths, found in its syntax tree, so the registry can check them before anything runs
and the runtime loads only the documents an expression reads.

Pure logic: no AWS, no I/O.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any

import jsonata

INPUT = "input"
ITEM = "item"
MAX_AUDIT_VALUE_CHARS = 512  # a value shown in an audit trail is cut to this much JSON text

# Syntax-tree node types that can never yield a list (a `forEach` must yield one).
_SCALAR_NODES = {"number", "string", "value", "regex"}
_SCALAR_OPERATORS = {"=", "!=", "<", "<=", ">", ">=", "and", "or", "in", "&", "+", "-", "*", "/", "%"}


class ExpressionError(ValueError):
    """An expression that does not parse, or that failed while it was evaluated."""


@lru_cache(maxsize=512)
def compile_expression(text: str) -> jsonata.Jsonata:
    """The parsed expression (cached: registries are small and evaluated many times)."""
    if not text.strip():
        raise ExpressionError("the expression is empty")
    try:
        return jsonata.Jsonata(text)
    except Exception as exc:  # jsonata raises its own JException, and sometimes plain errors
        raise ExpressionError(f"{text!r} is not a valid JSONata expression ({_reason(exc)})") from None


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "message", None) or exc).strip() or type(exc).__name__


def _children(node: Any) -> list[Any]:
    """Every sub-node of a syntax-tree node, whatever attribute holds it."""
    found: list[Any] = []
    for name, value in vars(node).items():
        if name == "_outer_instance" or value is None:
            continue
        values = value if isinstance(value, list) else [value]
        for item in values:
            for inner in item if isinstance(item, list) else [item]:
                if hasattr(inner, "type") and hasattr(inner, "value"):
                    found.append(inner)
    return found


def _sources(node: Any, into: set[str]) -> None:
    kind = getattr(node, "type", None)
    if kind == "path":
        steps = node.steps or []
        if steps and steps[0].type == "name":
            into.add(str(steps[0].value))
        elif steps:
            _sources(steps[0], into)
        # Later steps and every predicate (`[label = 3]`) navigate from the current item: their
        # names are relative, never sources. Only `$$` (the scope's root) could escape, and
        # `_root_references` refuses it.
        return
    if kind == "name":  # a bare name is a path of one step
        into.add(str(node.value))
        return
    if kind == "variable" and node.value in ("", "$"):  # `$` or `$$`: the whole scope
        into.add("$")
        return
    for child in _children(node):
        _sources(child, into)


def _root_references(node: Any) -> bool:
    """`$$` anywhere, or `$` outside a predicate: the expression reads the whole scope."""
    if getattr(node, "type", None) == "variable" and node.value == "$":
        return True
    return any(_root_references(child) for child in _children(node))


def sources(text: str) -> set[str]:
    """The sources an expression reads: `input`, `item` or step names (`$` if it reads the whole
    scope, which no declaration may do)."""
    tree = compile_expression(text).ast
    found: set[str] = set()
    _sources(tree, found)
    if _root_references(tree):
        found.add("$")
    return found


def can_yield_list(text: str) -> bool:
    """False for expressions that can never yield a list: literals, comparisons, arithmetic,
    boolean logic, object constructors. Paths, array constructors, functions and conditionals may."""
    node = compile_expression(text).ast
    kind = node.type
    if kind in _SCALAR_NODES:
        return False
    if kind == "binary" and node.value in _SCALAR_OPERATORS:
        return False
    return not (kind == "unary" and node.value in {"{", "-"})


def fanned_out_field_reads(text: str, fanned_out: set[str]) -> list[str]:
    """`batch.output.label` where `batch` fans out: a field of one item read without saying which
    item (its output is a list). Returns the offending step names."""
    offenders: list[str] = []

    def visit(node: Any) -> None:
        if getattr(node, "type", None) == "path":
            steps = node.steps or []
            if (
                len(steps) >= 3
                and steps[0].type == "name"
                and steps[0].value in fanned_out
                and steps[1].type == "name"
                and steps[1].value == "output"
                and not getattr(steps[1], "stages", None)
                and steps[2].type == "name"
            ):
                offenders.append(str(steps[0].value))
        for child in _children(node):
            visit(child)

    visit(compile_expression(text).ast)
    return offenders


def evaluate(text: str, scope: dict[str, Any]) -> Any:
    """The value of an expression over `scope` (None when it yields nothing)."""
    expression = compile_expression(text)
    try:
        value = expression.evaluate(scope)
    except Exception as exc:
        raise ExpressionError(f"{text!r} failed: {_reason(exc)}") from None
    return _plain(value)


def _plain(value: Any) -> Any:
    """JSON-ready: JSONata's sequences become lists, whole floats stay floats, NaN is refused."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpressionError("the expression yielded a number JSON cannot hold (NaN or infinity)")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    # A lambda, a regex or a native function: nothing JSON can hold.
    raise ExpressionError(f"the expression yielded a {type(value).__name__}, not a JSON value")


def truthy(value: Any) -> bool:
    """JSONata's boolean cast ($boolean): what `when` and rule cases test."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str | list | dict):
        if isinstance(value, list):
            return any(truthy(v) for v in value)
        return len(value) > 0
    return True


def path_texts(text: str) -> list[str]:
    """The plain source paths an expression reads (`svm.output.probabilities`), in order: what an
    audit trail shows the values of."""
    found: list[str] = []

    def visit(node: Any) -> None:
        if getattr(node, "type", None) == "path":
            steps = node.steps or []
            names = []
            for step in steps:
                if step.type != "name":
                    break
                names.append(str(step.value))
                if getattr(step, "stages", None):
                    break  # `images[pixels = 2]`: what follows depends on the predicate
            if names:
                found.append(".".join(names))
            return  # names inside a path's steps and predicates are relative
        for child in _children(node):
            visit(child)

    visit(compile_expression(text).ast)
    return list(dict.fromkeys(found))


def audit_value(value: Any) -> Any:
    """A value as an audit trail keeps it: as is when small, else its JSON text cut short."""
    text = json.dumps(value, separators=(",", ":"), default=str)
    if len(text) <= MAX_AUDIT_VALUE_CHARS:
        return value
    return text[: MAX_AUDIT_VALUE_CHARS - 1] + "…"
