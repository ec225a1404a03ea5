"""Render an ensemble mapping: JSON whose `"{{ expression }}"` strings are replaced by values.

Pure logic, no AWS: the caller supplies two callbacks.

- `resolve(root)` returns the JSON document of a root (`input`, or a step name: that step's output).
  It is called only for roots whose *fields* are used, at most once per root per rendering.
- `location(root)` returns the S3 URI of a root's payload. It is called for whole-payload
  references nested inside a larger mapping; whole payloads are never downloaded.

Rules (one for every caller):
- A string that is *exactly* one reference is replaced; any other value (numbers, booleans, null,
  strings with text around a reference) passes through unchanged — there is no interpolation.
- `{{ input.<field> }}` reads the request input; `{{ <step>.output.<field> }}` reads a step's
  output. The expression is JMESPath evaluated over `{"input": doc}` or `{"<step>": {"output": doc}}`.
- `{{ input }}`, `{{ <step> }}` and `{{ <step>.output }}` are whole-payload references. If the whole
  mapping is one of them, `RenderResult.passthrough` names the root and the caller hands the S3
  object on as it is (no copy). Nested in a larger mapping, they render to the payload's S3 URI.
- An expression that matches nothing is a `MappingError` naming it. A field holding JSON `null`
  counts as missing too (JMESPath cannot tell them apart): a silently missing value would reach the
  model as `null` and hide the bug in the declaration or in the upstream model.
- An expression is evaluated against its root (the leading identifier) only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from chorus.core.errors import InvalidInput
from chorus.model.references import INPUT, InvalidReference, reference_expression
from chorus.model.references import expression_root as _expression_root
from chorus.model.references import whole_payload_root as _whole_payload_root

Resolve = Callable[[str], Any]
Location = Callable[[str], str]


class MappingError(InvalidInput):
    """A mapping cannot be rendered: an expression matched nothing or a document is missing."""

    code = "mapping_error"


@dataclass(frozen=True)
class RenderResult:
    """Either `passthrough` (the root whose payload is handed on as is) or the rendered `document`."""

    document: Any = None
    passthrough: str | None = None


def expression_root(expression: str) -> str:
    try:
        return _expression_root(expression)
    except InvalidReference as exc:
        raise MappingError(str(exc)) from exc


def whole_payload_root(expression: str) -> str | None:
    try:
        return _whole_payload_root(expression)
    except InvalidReference as exc:
        raise MappingError(str(exc)) from exc


def render_mapping(mapping: Any, resolve: Resolve, location: Location | None = None) -> RenderResult:
    """Replace every reference in `mapping`; see the module docstring for the rules."""
    expression = reference_expression(mapping)
    if expression is not None and (root := whole_payload_root(expression)) is not None:
        return RenderResult(passthrough=root)
    return RenderResult(document=_Renderer(resolve, location).render(mapping))


class _Renderer:
    def __init__(self, resolve: Resolve, location: Location | None) -> None:
        self._resolve = resolve
        self._location = location
        self._documents: dict[str, Any] = {}

    def render(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: self.render(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.render(item) for item in value]
        expression = reference_expression(value)
        return value if expression is None else self._value_of(expression)

    def _value_of(self, expression: str) -> Any:
        root = whole_payload_root(expression)
        if root is not None:
            if self._location is None:
                raise MappingError(f"{{{{ {expression} }}}} needs the payload location, which was not given")
            return self._location(root)
        root = expression_root(expression)
        scope = {root: self._document(root) if root == INPUT else {"output": self._document(root)}}
        try:
            value = jmespath.search(expression, scope)
        except JMESPathError as exc:
            raise MappingError(f"{{{{ {expression} }}}} is not valid JMESPath ({exc})") from exc
        if value is None:
            hint = "" if root == INPUT else f" (a step's output is read as `{root}.output.<field>`)"
            raise MappingError(f"{{{{ {expression} }}}} matched nothing in {root!r}{hint}")
        return value

    def _document(self, root: str) -> Any:
        if root not in self._documents:
            document = self._resolve(root)
            if document is None:
                raise MappingError(f"no document for {root!r}")
            self._documents[root] = document
        return self._documents[root]
