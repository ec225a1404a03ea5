"""The predictions table adapter: every state change is a conditional write."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from chorus.aws import client
from chorus.errors import PredictionNotFound
from chorus.records import ALLOWED_FROM, PredictionRecord, Status, iso, utcnow
from chorus.settings import get_settings

_CONDITION_FAILED = "ConditionalCheckFailedException"


_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def _serialize(value: Any) -> dict[str, Any]:
    return dict(_SERIALIZER.serialize(_to_dynamo(value)))


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_dynamo(v) for v in value]
    return value


def _deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return _from_dynamo({k: _DESERIALIZER.deserialize(v) for k, v in item.items()})


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_from_dynamo(v) for v in value]
    return value


def record_ttl(now: datetime) -> int:
    return int((now + timedelta(days=get_settings().record_ttl_days)).timestamp())


def _table() -> str:
    return get_settings().predictions_table


def create(record: PredictionRecord) -> bool:
    """Store a new record; False when a record with this id already exists."""
    try:
        client("dynamodb").put_item(
            TableName=_table(),
            Item={k: _serialize(v) for k, v in record.to_item().items()},
            ConditionExpression="attribute_not_exists(id)",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == _CONDITION_FAILED:
            return False
        raise
    return True


def get(prediction_id: str) -> PredictionRecord:
    found = find(prediction_id)
    if found is None:
        raise PredictionNotFound(f"prediction {prediction_id!r} not found")
    return found


def find(prediction_id: str) -> PredictionRecord | None:
    response = client("dynamodb").get_item(TableName=_table(), Key={"id": {"S": prediction_id}}, ConsistentRead=True)
    item = response.get("Item")
    return PredictionRecord.model_validate(_deserialize(item)) if item else None


def children(parent_id: str) -> list[PredictionRecord]:
    """The step predictions of an ensemble prediction, in step-name order."""
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "TableName": _table(),
        "IndexName": "by-parent",
        "KeyConditionExpression": "parentId = :p",
        "ExpressionAttributeValues": {":p": {"S": parent_id}},
    }
    while True:
        page = client("dynamodb").query(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return [PredictionRecord.model_validate(_deserialize(i)) for i in items]


def transition(
    prediction_id: str,
    to: Status,
    changes: dict[str, Any] | None = None,
    *,
    extra_condition: str = "",
    extra_values: dict[str, Any] | None = None,
) -> PredictionRecord | None:
    """Move a prediction to `to` if its current state allows it.

    Returns the updated record, or None when the condition failed: the prediction was already
    moved on (a duplicate event, a retry, a race with cancel). Never overwrites a terminal state.
    """
    now = utcnow()
    fields: dict[str, Any] = {"status": to.value, "updatedAt": iso(now), **(changes or {})}
    if to.terminal:
        fields.setdefault("completedAt", iso(now))
    names = {f"#f{i}": name for i, name in enumerate(fields)}
    values = {f":v{i}": _serialize(value) for i, value in enumerate(fields.values())}
    allowed = sorted(s.value for s in ALLOWED_FROM[to])
    values.update({f":from{i}": {"S": s} for i, s in enumerate(allowed)})
    names["#status"] = "status"
    condition = f"#status IN ({', '.join(f':from{i}' for i in range(len(allowed)))})"
    if extra_condition:
        condition = f"{condition} AND ({extra_condition})"
        values.update({k: _serialize(v) for k, v in (extra_values or {}).items()})
    return _update(
        prediction_id,
        "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields))),
        condition,
        names,
        values,
    )


def update_fields(
    prediction_id: str,
    changes: dict[str, Any],
    condition: str = "attribute_exists(id)",
    values: dict[str, Any] | None = None,
) -> PredictionRecord | None:
    """Set fields other than the status; `#status` may be used in the condition."""
    names = {f"#f{i}": name for i, name in enumerate(changes)}
    if "#status" in condition:
        names["#status"] = "status"
    serialized = {f":v{i}": _serialize(v) for i, v in enumerate(changes.values())}
    serialized.update({k: _serialize(v) for k, v in (values or {}).items()})
    return _update(
        prediction_id,
        "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(changes))),
        condition,
        names,
        serialized,
    )


def lease_attribute(event: str) -> str:
    return f"callbackLease_{event}"


def claim_callback(prediction_id: str, event: str, seconds: int) -> bool:
    """Take the right to send the `event` callback for `seconds`; False if it was delivered
    already or another invocation holds the claim (two copies of one message never both send)."""
    now = utcnow()
    updated = _update(
        prediction_id,
        "SET #lease = :until",
        "attribute_exists(id) AND NOT contains(callbackDelivered, :event)"
        " AND (attribute_not_exists(#lease) OR #lease < :now)",
        {"#lease": lease_attribute(event)},
        {":until": {"S": iso(now + timedelta(seconds=seconds))}, ":now": {"S": iso(now)}, ":event": {"S": event}},
    )
    return updated is not None


def mark_callback_delivered(prediction_id: str, event: str) -> bool:
    """Record that the `event` callback went out; False if it had already been recorded."""
    updated = _update(
        prediction_id,
        "SET callbackDelivered = list_append(if_not_exists(callbackDelivered, :empty), :event)",
        "attribute_exists(id) AND NOT contains(callbackDelivered, :name)",
        {},
        {":empty": {"L": []}, ":event": {"L": [{"S": event}]}, ":name": {"S": event}},
    )
    return updated is not None


def _update(
    prediction_id: str, expression: str, condition: str, names: dict[str, str], values: dict[str, Any]
) -> PredictionRecord | None:
    kwargs: dict[str, Any] = {
        "TableName": _table(),
        "Key": {"id": {"S": prediction_id}},
        "UpdateExpression": expression,
        "ConditionExpression": condition,
        "ExpressionAttributeValues": values,
        "ReturnValues": "ALL_NEW",
    }
    if names:
        kwargs["ExpressionAttributeNames"] = names
    try:
        response = client("dynamodb").update_item(**kwargs)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == _CONDITION_FAILED:
            return None
        raise
    return PredictionRecord.model_validate(_deserialize(response["Attributes"]))
