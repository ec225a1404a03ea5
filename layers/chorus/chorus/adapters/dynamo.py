"""DynamoDB's wire format, once for every table adapter: items in and out (floats as Decimal,
whole Decimals back as int), and the code of a failed conditional write."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

CONDITION_FAILED = "ConditionalCheckFailedException"
_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def serialize(value: Any) -> dict[str, Any]:
    return dict(_SERIALIZER.serialize(_to_dynamo(value)))


def to_item(document: dict[str, Any]) -> dict[str, Any]:
    """A document as an item; None fields are left out."""
    return {k: serialize(v) for k, v in document.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _from_dynamo(_DESERIALIZER.deserialize(v)) for k, v in item.items()}


def deserialize(value: Any) -> Any:
    return _from_dynamo(_DESERIALIZER.deserialize(value))


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_from_dynamo(v) for v in value]
    return value
