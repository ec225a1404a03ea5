"""Reading predictions: one (GET /predictions/{id}, `Prefer: wait`) or a tenant's listing
(GET /predictions). Every read is the caller's tenant's: another tenant's prediction is not found,
exactly like an unknown id."""

from __future__ import annotations

import time
import uuid
from typing import Any

from chorus.adapters import listings, predictions, waits
from chorus.api.views import represent, summary
from chorus.core import settings
from chorus.core.observability import metrics
from chorus.domain import clocks
from chorus.model.records import PredictionRecord
from chorus.model.tenancy import Caller

POLL_SECONDS = 0.2
# A waiter that crashed or timed out keeps its slot this long after its wait would have ended.
WAIT_LEASE_MARGIN_SECONDS = 5
NO_FILTERS = listings.Filters()


def describe(caller: Caller, prediction_id: str) -> dict[str, Any]:
    record = predictions.get_owned(prediction_id, caller.tenant)
    return represent(_current(record))


def _current(record: PredictionRecord) -> PredictionRecord:
    """The record with any clock that is due enforced, so no client sees a stale status."""
    if not record.status.terminal and clocks.due(record) is not None:
        return clocks.enforce(record) or predictions.get(record.id)
    return record


def wait_for_result(
    caller: Caller, prediction_id: str, seconds: int, fallback: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """`Prefer: wait=N`, bounded per tenant: hold the answer as `wait_until_finished` does if one of
    the tenant's wait slots (WaitSettings) is free, and give the slot back afterwards. With every
    slot taken, answer at once: `Prefer` is only a preference (RFC 7240). (the view, waited?)"""
    holder = uuid.uuid4().hex
    now = time.time()
    limit = settings.load(settings.WaitSettings).max_waits_per_tenant
    lapses_at = now + seconds + WAIT_LEASE_MARGIN_SECONDS
    if not waits.claim_slot(caller.tenant, holder, lapses_at=lapses_at, now=now, limit=limit):
        metrics.add_metric(name="WaitsRefused", unit="Count", value=1)
        return fallback, False
    try:
        return wait_until_finished(caller, prediction_id, seconds, fallback), True
    finally:
        waits.release_slot(caller.tenant, holder)


def wait_until_finished(caller: Caller, prediction_id: str, seconds: float, fallback: dict[str, Any]) -> dict[str, Any]:
    """`Prefer: wait=N`: hold the answer until the prediction finishes or N seconds pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        record = predictions.find_owned(prediction_id, caller.tenant)
        if record is not None and record.status.terminal:
            return represent(record)
        time.sleep(POLL_SECONDS)
    record = predictions.find_owned(prediction_id, caller.tenant)
    return fallback if record is None else represent(record)


def list_predictions(
    caller: Caller,
    *,
    limit: int,
    cursor: str | None = None,
    filters: listings.Filters = NO_FILTERS,
    parent_id: str | None = None,
) -> dict[str, Any]:
    """The caller's tenant's predictions, newest first (or one ensemble's steps), a page at a time."""
    page = listings.list_for_tenant(caller.tenant, limit=limit, cursor=cursor, filters=filters, parent_id=parent_id)
    return {"predictions": [summary(_current(record)) for record in page.records], "nextCursor": page.cursor}
