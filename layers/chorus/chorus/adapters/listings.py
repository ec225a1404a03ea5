"""Listing a tenant's predictions: the by-tenant and by-parent indexes of the predictions table,
filters, and the opaque cursor. Never a scan."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chorus.adapters.dynamo import deserialize, from_item
from chorus.core import settings
from chorus.core.clients import client
from chorus.core.clock import iso
from chorus.core.errors import InvalidRequest
from chorus.model.records import PredictionRecord, Status

BY_TENANT = "by-tenant"  # PK tenant, SK createdAt (ISO 8601 with milliseconds and Z), projection ALL
BY_PARENT = "by-parent"  # PK parentId, SK stepName, projection ALL
_PAGE_READ = 100  # items read per Query when a filter may drop some
_MAX_READS = 10  # Query calls per listing request: a sparse filter answers a short page, not a long wait
_CURSOR_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CURSOR_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


class InvalidCursor(InvalidRequest):
    """A `cursor` this listing did not hand out (malformed, another tenant's or another parent's)."""


@dataclass(frozen=True)
class Page:
    records: list[PredictionRecord]
    cursor: str | None  # opaque: where the next page starts; None on the last page


@dataclass(frozen=True)
class Filters:
    service: str | None = None
    status: Status | None = None
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive


NO_FILTERS = Filters()


def list_for_tenant(
    tenant: str, *, limit: int, cursor: str | None = None, filters: Filters = NO_FILTERS, parent_id: str | None = None
) -> Page:
    """A tenant's predictions, newest first: top-level ones from the by-tenant index, or the steps
    of one ensemble (`parent_id`, from the by-parent index in step-name order, checked against the
    tenant: another tenant's parent lists nothing). Never a scan.

    The cursor is base64url of the index's LastEvaluatedKey as JSON, validated on the way back in:
    exactly the key attributes of this listing, this tenant's (and parent's) values."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {":tenant": {"S": tenant}}
    conditions: list[str] = []
    if parent_id is None:
        key_names = ("id", "tenant", "createdAt")
        index = BY_TENANT
        key_condition = "tenant = :tenant"
        lower, upper = _time_bounds(filters)
        if lower is not None and upper is not None:
            if lower > upper:
                return Page([], None)
            key_condition += " AND createdAt BETWEEN :lower AND :upper"
        elif lower is not None:
            key_condition += " AND createdAt >= :lower"
        elif upper is not None:
            key_condition += " AND createdAt <= :upper"
        values.update({k: {"S": v} for k, v in ((":lower", lower), (":upper", upper)) if v is not None})
        conditions.append("attribute_not_exists(parentId)")
    else:
        key_names = ("id", "parentId", "stepName")
        index = BY_PARENT
        key_condition = "parentId = :parent"
        values[":parent"] = {"S": parent_id}
        conditions.append("tenant = :tenant")
        lower, upper = _time_bounds(filters)
        if lower is not None:
            conditions.append("createdAt >= :lower")
            values[":lower"] = {"S": lower}
        if upper is not None:
            conditions.append("createdAt <= :upper")
            values[":upper"] = {"S": upper}
    conditions.append("attribute_not_exists(shadowOf)")  # a shadow is evidence, never shown
    if filters.service is not None:
        conditions.append("service = :service")
        values[":service"] = {"S": filters.service}
    if filters.status is not None:
        conditions.append("#status = :status")
        names["#status"] = "status"
        values[":status"] = {"S": filters.status.value}
    expected = {"tenant": tenant} if parent_id is None else {"parentId": parent_id}
    kwargs: dict[str, Any] = {
        "TableName": settings.load(settings.TableSettings).predictions_table,
        "IndexName": index,
        "KeyConditionExpression": key_condition,
        "FilterExpression": " AND ".join(conditions),
        "ExpressionAttributeValues": values,
        "ScanIndexForward": parent_id is not None,
        "Limit": _PAGE_READ,
    }
    if names:
        kwargs["ExpressionAttributeNames"] = names
    if cursor is not None:
        kwargs["ExclusiveStartKey"] = _decode_cursor(cursor, key_names, expected)
    records: list[PredictionRecord] = []
    for _ in range(_MAX_READS):
        page = client("dynamodb").query(**kwargs)
        for item in page.get("Items", []):
            records.append(PredictionRecord.model_validate(from_item(item)))
            if len(records) == limit:
                last = {name: item[name] for name in key_names}
                more = item is not page["Items"][-1] or "LastEvaluatedKey" in page
                return Page(records, _encode_cursor(last) if more else None)
        if "LastEvaluatedKey" not in page:
            return Page(records, None)
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return Page(records, _encode_cursor(kwargs["ExclusiveStartKey"]))


def _time_bounds(filters: Filters) -> tuple[str | None, str | None]:
    """createdAt bounds as stored strings (millisecond precision): `>= lower`, `<= upper`."""
    lower = upper = None
    if filters.created_after is not None:
        moment = filters.created_after
        if moment.microsecond % 1000:  # round up to the next stored millisecond
            moment += timedelta(microseconds=1000 - moment.microsecond % 1000)
        lower = iso(moment)
    if filters.created_before is not None:
        moment = filters.created_before - timedelta(microseconds=1)
        upper = iso(moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000))
    return lower, upper


def _encode_cursor(key: dict[str, Any]) -> str:
    plain = {name: deserialize(value) for name, value in sorted(key.items())}
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, key_names: tuple[str, ...], expected: dict[str, str]) -> dict[str, Any]:
    problem = InvalidCursor("`cursor` is not one this listing handed out")
    if not cursor or len(cursor) > 1024 or not re.fullmatch(r"[A-Za-z0-9_-]+", cursor):
        raise problem
    try:
        plain = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise problem from None
    if not isinstance(plain, dict) or set(plain) != set(key_names):
        raise problem
    if not all(isinstance(value, str) for value in plain.values()) or not _CURSOR_ID.match(plain["id"]):
        raise problem
    if any(plain[name] != value for name, value in expected.items()):
        raise problem
    if "createdAt" in plain and not _CURSOR_TIME.match(plain["createdAt"]):
        raise problem
    if "stepName" in plain and not 1 <= len(plain["stepName"]) <= 256:
        raise problem
    return {name: {"S": value} for name, value in plain.items()}
