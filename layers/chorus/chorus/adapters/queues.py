"""The two work queues Chorus schedules on: deadlines (process-input) and callback deliveries.

SQS delays a message at most 15 minutes; a message for later carries its moment and is sent
again when it arrives early (`reschedule`)."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from chorus.core import settings
from chorus.core.clients import client
from chorus.core.clock import iso, utcnow
from chorus.model.records import CallbackEvent

MAX_DELAY_SECONDS = 900


def _delay_until(at: datetime | None) -> int:
    if at is None:
        return 0
    return min(MAX_DELAY_SECONDS, max(0, math.ceil((at - utcnow()).total_seconds())))


def _send(queue_url: str, body: dict[str, Any], at: datetime | None) -> None:
    client("sqs").send_message(QueueUrl=queue_url, MessageBody=json.dumps(body), DelaySeconds=_delay_until(at))


def schedule_deadline(prediction_id: str, at: datetime) -> None:
    """Look at the prediction again at `at`: an upload that never came, a deadline, a lost result."""
    queue = settings.load(settings.DeadlineQueueSettings).deadline_queue_url
    _send(queue, {"deadline": {"predictionId": prediction_id, "at": iso(at)}}, at)


def schedule_delivery(
    prediction_id: str,
    event: CallbackEvent,
    series: int,
    attempt: int,
    not_before: datetime | None = None,
    step_id: str | None = None,
) -> None:
    """Ask the delivery consumer to make attempt `attempt` of a callback series (at `not_before`);
    a `step` event names the step's child prediction."""
    queue = settings.load(settings.DeliveryQueueSettings).delivery_queue_url
    delivery: dict[str, Any] = {
        "predictionId": prediction_id,
        "event": event.value,
        "series": series,
        "attempt": attempt,
    }
    if step_id is not None:
        delivery["stepId"] = step_id
    if not_before is not None:
        delivery["notBefore"] = iso(not_before)
    _send(queue, {"delivery": delivery}, not_before)
