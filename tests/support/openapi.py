"""docs/openapi.json as the tests hold the API to it: closed, so an answer carrying a field the
document does not declare fails as surely as one missing a required field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def document() -> dict[str, Any]:
    return dict(json.loads(DOCUMENT.read_text()))


def closed(openapi: dict[str, Any]) -> dict[str, Any]:
    """A copy of `openapi` whose object schemas with declared properties allow no others. The
    published document leaves response objects open, so clients tolerate fields added later."""
    closed_document = copy.deepcopy(openapi)
    pending: list[Any] = [closed_document["components"]["schemas"]]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if "properties" in item and "additionalProperties" not in item:
                item["additionalProperties"] = False
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return closed_document


def problems(body: Any, schema_name: str, openapi: dict[str, Any] | None = None) -> list[str]:
    """Where `body` breaks components.schemas[schema_name] of the closed document (formats such as
    date-time checked), as `path: message` lines; empty when it conforms."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    resource = Resource.from_contents(closed(openapi or document()), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:chorus:openapi", resource)
    validator = Draft202012Validator(
        {"$ref": f"urn:chorus:openapi#/components/schemas/{schema_name}"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '.'}: {error.message}" for error in validator.iter_errors(body)
    ]
