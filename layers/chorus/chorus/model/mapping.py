"""Render an ensemble mapping: JSON whose `"{{ expression }}"` strings are replaced by values.

Pure logic, no AWS: the caller supplies the sources.

- `resolve(root)` returns the JSON document of a root (`input`, `item`, or a step name: that
  step's output). It is called only for roots whose *fields* are used, at most once per root per
  rendering, and never for a step in `absent`.
- `location(root)` returns the S3 URI of a root's payload. It is called for whole-payload
  references nested inside a larger mapping; whole payloads are never downloaded.
- `absent` maps the steps that did not produce an output (skipped by their condition, or an
  optional step that failed) to their status: their output reads `null`.

Rules (one for every caller):
- A string that is *exactly* one reference is replaced; any other value (numbers, booleans, null,
  strings with text around a reference) passes through unchanged — there is no interpolation.
- The expression is JSONata over `{"input": <request input>, "<step>": {"output": <its output>,
  "status": "succeeded" | "skipped" | "failed"}, "item": <the fanned-out item>}`; it may read
  several sources (`{{ estimate.output.cost > 0.7 * value.output.price }}`).
- `{{ input }}`, `{{ item }}`, `{{ <step> }}` and `{{ <step>.output }}` are whole-payload
  references. If the whole mapping is one of them, `RenderResult.passthrough` names the root and
  the caller hands the S3 object on as it is (no copy). Nested in a larger mapping, they render to
  the payload's S3 URI (`null` for an absent step).
- An expression that yields nothing is a `MappingError` naming it — unless it reads an absent
  step, when it is `null` (give a default with JSONata's `??`: `{{ forest.output.label ?? -1 }}`).
  A field holding JSON `null` counts as missing too: a silently missing value would reach the
  model as `null` and hide the bug in the declaration or in the upstream model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chorus.core.errors import InvalidInput
from chorus.model.expressions import INPUT, ITEM, ExpressionError, evaluate
from chorus.model.references import expression_sources, reference_expression, whole_payload_root

Resolve = Callable[[str], Any]
Location = Callable[[str], str]
SUCCEEDED = "succeeded"


class MappingError(InvalidInput):
    """A mapping cannot be rendered: an expression yielded nothing or a document is missing."""

    code = "mapping_error"


@dataclass(frozen=True)
class RenderResult:
    """Either `passthrough` (the root whose payload is handed on as is) or the rendered `document`."""

    document: Any = None
    passthrough: str | None = None


class Scope:
    """The documents expressions read, loaded on first use."""

    def __init__(self, resolve: Resolve, absent: Mapping[str, str] | None = None) -> None:
        self._resolve = resolve
        self.absent = dict(absent or {})
        self._documents: dict[str, Any] = {}

    def document(self, root: str) -> Any:
        if root in self.absent:
            return None
        if root not in self._documents:
            document = self._resolve(root)
            if document is None:
                raise MappingError(f"no document for {root!r}")
            self._documents[root] = document
        return self._documents[root]

    def for_expression(self, expression: str) -> tuple[dict[str, Any], set[str]]:
        """(the scope an expression is evaluated over, the sources it reads)."""
        try:
            roots = expression_sources(expression)
        except ExpressionError as exc:
            raise MappingError(str(exc)) from exc
        if "$" in roots:
            raise MappingError(f"{{{{ {expression} }}}} reads the whole scope ($ or $$); name its sources")
        scope: dict[str, Any] = {}
        for root in roots:
            if root in (INPUT, ITEM):
                scope[root] = self.document(root)
            else:
                scope[root] = {"output": self.document(root), "status": self.absent.get(root, SUCCEEDED)}
        return scope, roots

    def value(self, expression: str, *, required: bool = True) -> Any:
        """The expression's value; nothing at all is an error when `required` and no source is absent."""
        scope, roots = self.for_expression(expression)
        try:
            value = evaluate(expression, scope)
        except ExpressionError as exc:
            raise MappingError(str(exc)) from exc
        if value is None and required and not (roots & set(self.absent)):
            step_roots = sorted(roots - {INPUT, ITEM})
            hint = f" (a step's output is read as `{step_roots[0]}.output.<field>`)" if step_roots else ""
            raise MappingError(f"{{{{ {expression} }}}} matched nothing{hint}")
        return value


def render_mapping(
    mapping: Any,
    resolve: Resolve,
    location: Location | None = None,
    absent: Mapping[str, str] | None = None,
    scope: Scope | None = None,
) -> RenderResult:
    """Replace every reference in `mapping`; see the module docstring for the rules."""
    expression = reference_expression(mapping)
    if expression is not None and (root := whole_payload_root(expression)) is not None:
        if absent and root in absent:
            raise MappingError(f"{{{{ {expression} }}}}: step {root!r} {absent[root]}, so it has no payload to hand on")
        return RenderResult(passthrough=root)
    return RenderResult(document=_Renderer(scope or Scope(resolve, absent), location).render(mapping))


class _Renderer:
    def __init__(self, scope: Scope, location: Location | None) -> None:
        self._scope = scope
        self._location = location

    def render(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: self.render(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.render(item) for item in value]
        expression = reference_expression(value)
        return value if expression is None else self._value_of(expression)

    def _value_of(self, expression: str) -> Any:
        root = whole_payload_root(expression)
        if root is not None and root != ITEM:  # `{{ item }}` is a value, not a payload
            if root in self._scope.absent:
                return None
            if self._location is None:
                raise MappingError(f"{{{{ {expression} }}}} needs the payload location, which was not given")
            return self._location(root)  # type: ignore[arg-type]
        return self._scope.value(expression)
