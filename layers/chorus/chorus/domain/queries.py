"""Reading predictions: one (GET /predictions/{id}, `Prefer: wait`) or a tenant's listing
(GET /predictions). Every read is the caller's tenant's: another tenant's prediction is not found,
exactly like an unknown id."""

from __future__ import annotations

import time
from typing import Any

from chorus.adapters import listings, predictions
from chorus.api.views import represent, summary
from chorus.domain import clocks
from chorus.model.records import PredictionRecord
from chorus.model.tenancy import Caller

POLL_SECONDS = 0.2
NO_FILTERS = listings.Filters()


def describe(caller: Caller, prediction_id: str) -> dict[str, Any]:
    record = predictions.get_owned(prediction_id, caller.tenant)
    return represent(_current(record))


def _current(record: PredictionRecord) -> PredictionRecord:
    """The record with any clock that is due enforced, so no client sees a stale status."""
    if not record.status.terminal and clocks.due(record) is not None:
        return clocks.enforce(record) or predictions.get(record.id)
    return record


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
