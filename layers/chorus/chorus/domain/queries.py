"""Reading predictions. A read changes nothing but an overdue clock (`clocks.enforce`), whose
callback is only queued: no read ever talks to a client."""

from __future__ import annotations

import time
from typing import Any

from chorus.adapters import predictions
from chorus.api.views import represent
from chorus.domain import clocks

POLL_SECONDS = 0.2


def describe(prediction_id: str) -> dict[str, Any]:
    record = predictions.get(prediction_id)
    if not record.status.terminal and clocks.due(record) is not None:
        record = clocks.enforce(record) or predictions.get(prediction_id)
    return represent(record)


def wait_until_finished(prediction_id: str, seconds: float, fallback: dict[str, Any]) -> dict[str, Any]:
    """`Prefer: wait=N`: hold the answer until the prediction finishes or N seconds pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        record = predictions.find(prediction_id)
        if record is not None and record.status.terminal:
            return represent(record)
        time.sleep(POLL_SECONDS)
    return fallback if (record := predictions.find(prediction_id)) is None else represent(record)
