"""The client's models (client/chorus_client/models.py) against docs/openapi.json: for each route,
the schema it declares for an answer (or its request body) has exactly the fields of the client's
model, at every level of nesting; what the client requires, the document requires; and the enums
(statuses, kinds) have the same values.

A route whose answer the document types as a bare object (no properties) is skipped, naming it:
there is nothing to compare yet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from chorus_client.models import (
    CreatedPrediction,
    ErrorResponse,
    Prediction,
    PredictionPage,
    PredictionRequest,
    RotatedWebhookSecret,
    ServiceList,
    Status,
    WebhookSecret,
)

DOCUMENT = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text())
BY_ID = "/predictions/{prediction_id}"

ANSWERS: list[tuple[type[BaseModel], str, str, str]] = [
    (CreatedPrediction, "/predictions", "post", "202"),
    (CreatedPrediction, "/predictions", "post", "200"),
    (PredictionPage, "/predictions", "get", "200"),
    (Prediction, BY_ID, "get", "200"),
    (Prediction, f"{BY_ID}/cancel", "post", "200"),
    (Prediction, f"{BY_ID}/webhook/redeliver", "post", "202"),
    (ServiceList, "/services", "get", "200"),
    (WebhookSecret, "/webhooks/secret", "get", "200"),
    (RotatedWebhookSecret, "/webhooks/secret/rotate", "post", "200"),
    (ErrorResponse, BY_ID, "get", "404"),
    (ErrorResponse, "/predictions", "post", "400"),
]


def resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = defs[name]
    return schema


def alternatives(schema: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-null schemas of an anyOf/oneOf (or the schema itself)."""
    schema = resolve(schema, defs)
    options = schema.get("anyOf") or schema.get("oneOf")
    if not options:
        return [schema]
    found = []
    for option in options:
        found.extend(o for o in alternatives(option, defs) if o.get("type") != "null")
    return found


def discriminator(schema: dict[str, Any], defs: dict[str, Any]) -> str | None:
    kind = resolve(schema.get("properties", {}).get("type", {}), defs)
    values = [kind["const"]] if "const" in kind else kind.get("enum", [])
    return str(values[0]) if len(values) == 1 else None


def compare(mine: dict[str, Any], my_defs: dict, theirs: dict[str, Any], their_defs: dict, where: str) -> list[str]:
    """Every difference between two JSON schemas in fields, required fields and enums."""
    problems: list[str] = []
    my_options, their_options = alternatives(mine, my_defs), alternatives(theirs, their_defs)
    if len(my_options) > 1 or len(their_options) > 1:  # a union: match its members by their `type`
        mine_by = {discriminator(o, my_defs) or str(i): o for i, o in enumerate(my_options)}
        theirs_by = {discriminator(o, their_defs) or str(i): o for i, o in enumerate(their_options)}
        if set(mine_by) != set(theirs_by):
            return [f"{where}: the client's alternatives {sorted(mine_by)}, the document's {sorted(theirs_by)}"]
        for key in mine_by:
            problems += compare(mine_by[key], my_defs, theirs_by[key], their_defs, f"{where}<{key}>")
        return problems
    mine, theirs = my_options[0], their_options[0]
    if "enum" in mine and "enum" in theirs and set(mine["enum"]) != set(theirs["enum"]):
        problems.append(f"{where}: the client's values {sorted(mine['enum'])}, the document's {sorted(theirs['enum'])}")
    if mine.get("type") == "array" and theirs.get("type") == "array" and "items" in mine and "items" in theirs:
        problems += compare(mine["items"], my_defs, theirs["items"], their_defs, f"{where}[]")
    if "properties" in mine and "properties" in theirs:
        my_fields, their_fields = set(mine["properties"]), set(theirs["properties"])
        if my_fields != their_fields:
            problems.append(
                f"{where}: only the client has {sorted(my_fields - their_fields)}, "
                f"only the document has {sorted(their_fields - my_fields)}"
            )
        loose = set(mine.get("required", [])) - set(theirs.get("required", []))
        if loose:
            problems.append(f"{where}: the client requires {sorted(loose)}, which the document does not")
        for name in my_fields & their_fields:
            problems += compare(
                mine["properties"][name], my_defs, theirs["properties"][name], their_defs, f"{where}.{name}"
            )
    return problems


def model_schema(model: type[BaseModel]) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return schema, schema.get("$defs", {})


def described(schema: dict[str, Any], defs: dict[str, Any]) -> bool:
    return any("properties" in option for option in alternatives(schema, defs))


@pytest.mark.parametrize(
    ("model", "path", "method", "status"), ANSWERS, ids=[f"{m.upper()} {p} {s}" for _, p, m, s in ANSWERS]
)
def test_each_answer_has_the_fields_of_the_clients_model(model, path, method, status):
    operation = DOCUMENT["paths"][path][method]
    defs = DOCUMENT["components"]["schemas"]
    answer = operation["responses"].get(status)
    if answer is None:
        pytest.skip(f"docs/openapi.json declares no {status} answer for {method.upper()} {path} yet")
    schema = answer["content"]["application/json"]["schema"]
    if not described(schema, defs):
        pytest.skip(f"docs/openapi.json types the {status} answer of {method.upper()} {path} as a bare object")
    mine, my_defs = model_schema(model)
    assert compare(mine, my_defs, schema, defs, model.__name__) == []


def test_the_request_body_has_the_fields_of_the_clients_request():
    operation = DOCUMENT["paths"]["/predictions"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    mine, my_defs = model_schema(PredictionRequest)
    assert compare(mine, my_defs, schema, DOCUMENT["components"]["schemas"], "PredictionRequest") == []


def test_the_status_filter_has_the_clients_statuses():
    [status] = [p for p in DOCUMENT["paths"]["/predictions"]["get"]["parameters"] if p["name"] == "status"]
    schema = alternatives(status["schema"], DOCUMENT["components"]["schemas"])[0]
    assert set(schema["enum"]) == {s.value for s in Status}


def test_the_comparison_finds_a_missing_a_renamed_and_a_loosely_required_field():
    class Inner(BaseModel):
        code: str

    class Mine(BaseModel):
        name: str
        inner: Inner

    theirs = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "inner": {"$ref": "#/components/schemas/Inner"}},
        "required": ["title"],
    }
    their_defs = {"Inner": {"type": "object", "properties": {"code": {}, "more": {}}, "required": ["code"]}}
    mine, my_defs = model_schema(Mine)
    problems = compare(mine, my_defs, theirs, their_defs, "Mine")
    assert problems == [
        "Mine: only the client has ['name'], only the document has ['title']",
        "Mine: the client requires ['inner', 'name'], which the document does not",
        "Mine.inner: only the client has [], only the document has ['more']",
    ]
