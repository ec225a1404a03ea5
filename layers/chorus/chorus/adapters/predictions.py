"""The predictions table. It alone knows the storage vocabulary: attribute names and condition
expressions live here, behind methods named for what the domain means (`claim_dispatch`,
`mark_running`, `finish`, `claim_delivery`). Every state change is one conditional write, so a
duplicate event, a retry or a race finds the prediction already moved on and changes nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from chorus.adapters.dynamo import CONDITION_FAILED, from_item, serialize
from chorus.core import settings
from chorus.core.clients import client
from chorus.core.clock import iso, utcnow
from chorus.core.errors import PredictionNotFound
from chorus.model.records import (
    ALLOWED_FROM,
    Delivery,
    DeliveryStatus,
    ErrorDetail,
    PredictionRecord,
    S3Location,
    Status,
    StepFunctionsCallback,
)
from chorus.model.versions import Trial


def _settings() -> settings.TableSettings:
    return settings.load(settings.TableSettings)


def record_ttl(now: datetime) -> int:
    return int((now + timedelta(days=_settings().record_ttl_days)).timestamp())


# --- reads --------------------------------------------------------------------------------------


def find(prediction_id: str) -> PredictionRecord | None:
    response = client("dynamodb").get_item(
        TableName=_settings().predictions_table, Key={"id": {"S": prediction_id}}, ConsistentRead=True
    )
    item = response.get("Item")
    return PredictionRecord.model_validate(from_item(item)) if item else None


def get(prediction_id: str) -> PredictionRecord:
    found = find(prediction_id)
    if found is None:
        raise PredictionNotFound(f"prediction {prediction_id!r} not found")
    return found


def find_owned(prediction_id: str, tenant: str) -> PredictionRecord | None:
    """The prediction if it belongs to `tenant`; another tenant's is None, exactly like an unknown id
    (the same single read either way)."""
    found = find(prediction_id)
    # A shadow is evidence for an approver, never an answer: to its tenant it does not exist.
    return found if found is not None and found.tenant == tenant and found.shadow_of is None else None


def get_owned(prediction_id: str, tenant: str) -> PredictionRecord:
    """`get` for a caller: another tenant's prediction is the same 404 as an unknown id."""
    found = find_owned(prediction_id, tenant)
    if found is None:
        raise PredictionNotFound(f"prediction {prediction_id!r} not found")
    return found


def children(parent_id: str) -> list[PredictionRecord]:
    """The step predictions of an ensemble prediction."""
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "TableName": _settings().predictions_table,
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
    return [PredictionRecord.model_validate(from_item(i)) for i in items]


# --- state changes --------------------------------------------------------------------------------


def create(record: PredictionRecord) -> bool:
    """Store a new record; False when a record with this id already exists."""
    try:
        client("dynamodb").put_item(
            TableName=_settings().predictions_table,
            Item={k: serialize(v) for k, v in record.to_item().items()},
            ConditionExpression="attribute_not_exists(id)",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == CONDITION_FAILED:
            return False
        raise
    return True


def claim_dispatch(prediction_id: str, location: S3Location, lease_until: datetime) -> PredictionRecord | None:
    """Take the prediction for dispatch: `awaiting_input → queued` with its input, or renew the
    lease of a claim whose worker died (its lease ran out). None if someone else holds it."""
    claimed = _transition(
        prediction_id,
        Status.QUEUED,
        {"input": location.as_dict(), "queuedAt": iso(utcnow()), "leaseUntil": iso(lease_until)},
    )
    if claimed is not None:
        return claimed
    return _update(
        prediction_id,
        "SET leaseUntil = :lease",
        "#status IN (:queued, :running) AND leaseUntil < :now",
        {"#status": "status"},
        {
            ":lease": {"S": iso(lease_until)},
            ":queued": {"S": Status.QUEUED.value},
            ":running": {"S": Status.RUNNING.value},
            ":now": {"S": iso(utcnow())},
        },
    )


def mark_running(
    prediction_id: str,
    *,
    lease_until: datetime | None,
    run_deadline_at: datetime | None = None,
    execution_arn: str | None = None,
    version: str | None = None,
    trial: Trial | None = None,
) -> tuple[PredictionRecord | None, bool]:
    """`queued → running` (first start), or refresh a running prediction a retry dispatched again.

    `lease_until=None` hands the work over for good (an async endpoint or an execution owns it;
    its notification or the run deadline ends it): the lease is removed, so nobody reclaims it.
    Returns (record, first_start); the record is None when the prediction already finished."""
    changes: dict[str, Any] = {}
    if lease_until is not None:
        changes["leaseUntil"] = iso(lease_until)
    if run_deadline_at is not None:
        changes["runDeadlineAt"] = iso(run_deadline_at)
    if execution_arn is not None:
        changes["executionArn"] = execution_arn
    if version is not None:
        changes["version"] = version
    if trial is not None:
        changes["trial"] = trial.model_dump()
    remove = [] if lease_until is not None else ["leaseUntil"]
    started = _transition(prediction_id, Status.RUNNING, {**changes, "startedAt": iso(utcnow())}, remove=remove)
    if started is not None:
        return started, True
    names = {f"#f{i}": name for i, name in enumerate(changes)} | {"#status": "status"}
    values = {f":v{i}": serialize(v) for i, v in enumerate(changes.values())} | {
        ":running": {"S": Status.RUNNING.value}
    }
    expression = "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(changes))) if changes else ""
    if remove:
        expression += " REMOVE " + ", ".join(remove)
    refreshed = _update(prediction_id, expression.strip(), "#status = :running", names, values)
    return refreshed, False


def finish(
    prediction_id: str, status: Status, *, output: S3Location | None = None, error: ErrorDetail | None = None
) -> PredictionRecord | None:
    """Move to a terminal status (succeeded, failed, canceled, expired); None if not allowed now."""
    assert status.terminal
    changes: dict[str, Any] = {}
    if output is not None:
        changes["output"] = output.as_dict()
    if error is not None:
        changes["error"] = error.model_dump()
    return _transition(prediction_id, status, changes)


def redirect_callback(prediction_id: str, callback: StepFunctionsCallback) -> PredictionRecord | None:
    """A retried step task waits on a new token: the child's result must resume that one."""
    return _update(
        prediction_id,
        "SET callback = :callback",
        "attribute_exists(id)",
        {},
        {":callback": serialize(callback.model_dump(by_alias=True))},
    )


# --- callback deliveries --------------------------------------------------------------------------


def claim_delivery(
    prediction_id: str, key: str, series: int, attempt: int, lease_until: datetime
) -> PredictionRecord | None:
    """Take attempt `attempt` of a delivery series, once: the previous attempt must have been the
    last one recorded, or this attempt's earlier claim must have lapsed (its worker died).
    None when the series moved on (a duplicate message, a redelivery, a final outcome)."""
    now = iso(utcnow())
    fresh = Delivery(series=series, attempts=attempt, lease_until=lease_until).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    if attempt == 1 and series == 1:
        first = _update(
            prediction_id,
            "SET deliveries.#event = :delivery",
            "attribute_exists(id) AND attribute_not_exists(deliveries.#event)",
            {"#event": key},
            {":delivery": serialize(fresh)},
        )
        if first is not None:
            return first
    return _update(
        prediction_id,
        "SET deliveries.#event.attempts = :attempt, deliveries.#event.leaseUntil = :lease,"
        " deliveries.#event.#status = :pending",
        "deliveries.#event.series = :series AND deliveries.#event.#status = :pending AND"
        " (deliveries.#event.attempts = :previous OR"
        " (deliveries.#event.attempts = :attempt AND deliveries.#event.leaseUntil < :now))",
        {"#event": key, "#status": "status"},
        {
            ":attempt": {"N": str(attempt)},
            ":previous": {"N": str(attempt - 1)},
            ":series": {"N": str(series)},
            ":lease": {"S": iso(lease_until)},
            ":pending": {"S": DeliveryStatus.PENDING.value},
            ":now": {"S": now},
        },
    )


def record_delivery(prediction_id: str, key: str, delivery: Delivery) -> PredictionRecord | None:
    """Store the outcome of an attempt, if the series is still the one that was attempted."""
    document = delivery.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"lease_until"})
    return _update(
        prediction_id,
        "SET deliveries.#event = :delivery",
        "deliveries.#event.series = :series AND deliveries.#event.attempts = :attempts",
        {"#event": key},
        {
            ":delivery": serialize(document),
            ":series": {"N": str(delivery.series)},
            ":attempts": {"N": str(delivery.attempts)},
        },
    )


def start_delivery_series(prediction_id: str, key: str, current_series: int) -> PredictionRecord | None:
    """Begin the next attempt series of `event` (a redelivery); None if another one began first."""
    document = Delivery(series=current_series + 1).model_dump(mode="json", by_alias=True, exclude_none=True)
    condition = (
        "attribute_exists(id) AND attribute_not_exists(deliveries.#event)"
        if current_series == 0
        else "deliveries.#event.series = :series"
    )
    values = {":delivery": serialize(document)}
    if current_series:
        values[":series"] = {"N": str(current_series)}
    return _update(prediction_id, "SET deliveries.#event = :delivery", condition, {"#event": key}, values)


# --- the one conditional write ----------------------------------------------------------------------


def _transition(
    prediction_id: str, to: Status, changes: dict[str, Any], remove: list[str] | None = None
) -> PredictionRecord | None:
    """Move a prediction to `to` if its current state allows it (`ALLOWED_FROM`).

    Returns the updated record, or None when the condition failed: the prediction was already
    moved on (a duplicate event, a retry, a race with cancel). Never overwrites a terminal state.
    """
    now = utcnow()
    fields: dict[str, Any] = {"status": to.value, "updatedAt": iso(now), **changes}
    if to.terminal:
        fields.setdefault("completedAt", iso(now))
    names = {f"#f{i}": name for i, name in enumerate(fields)}
    values = {f":v{i}": serialize(value) for i, value in enumerate(fields.values())}
    allowed = sorted(s.value for s in ALLOWED_FROM[to])
    values.update({f":from{i}": {"S": s} for i, s in enumerate(allowed)})
    names["#status"] = "status"
    condition = f"#status IN ({', '.join(f':from{i}' for i in range(len(allowed)))})"
    expression = "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields)))
    if remove:
        expression += " REMOVE " + ", ".join(remove)
    return _update(prediction_id, expression, condition, names, values)


def _update(
    prediction_id: str, expression: str, condition: str, names: dict[str, str], values: dict[str, Any]
) -> PredictionRecord | None:
    kwargs: dict[str, Any] = {
        "TableName": _settings().predictions_table,
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
        if exc.response["Error"]["Code"] == CONDITION_FAILED:
            return None
        raise
    return PredictionRecord.model_validate(from_item(response["Attributes"]))
