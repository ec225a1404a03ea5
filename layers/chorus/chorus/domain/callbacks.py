"""Telling the caller that a prediction started or finished.

A state change never talks to a client: it only *announces* the event. A webhook or e-mail is
queued for the delivery consumer (`deliveries.py`); an ensemble step resumes its parent's waiting
task at once (an AWS call, not a client's endpoint, and the next step waits on it).
"""

from __future__ import annotations

from chorus.adapters import notifier, queues
from chorus.core.errors import UnknownService
from chorus.model.records import (
    CallbackEvent,
    EmailCallback,
    PredictionRecord,
    Status,
    StepFunctionsCallback,
    WebhookCallback,
)
from chorus.model.registry import get_registry

# The errors a failed step's task ends with: a step with `retry` retries only the first.
STEP_RETRYABLE, STEP_FAILED, STEP_CANCELED = "StepRetryable", "StepFailed", "StepCanceled"


def wants(record: PredictionRecord, event: CallbackEvent) -> bool:
    callback = record.callback
    if isinstance(callback, WebhookCallback):
        return event.value in callback.events
    return isinstance(callback, EmailCallback) and event is CallbackEvent.COMPLETED


def announce(record: PredictionRecord, event: CallbackEvent) -> None:
    """Called after every state change that reaches `event`, and again by every retry of it: a
    series that already began is left to its own messages, so repeating this sends nothing twice."""
    if isinstance(record.callback, StepFunctionsCallback):
        if event is CallbackEvent.COMPLETED:
            notifier.resume_parent(record, record.callback, step_error(record))
            if record.announce_to_parent and record.parent_id:
                # The parent's webhook asked for `step` events: a series of its own per step (its
                # first claim is conditional, so a repeated announcement sends nothing twice).
                queues.schedule_delivery(record.parent_id, CallbackEvent.STEP, 1, 1, step_id=record.id)
        return
    if wants(record, event) and event not in record.deliveries:
        queues.schedule_delivery(record.id, event, series=1, attempt=1)


def step_error(record: PredictionRecord) -> str:
    """How a step's failure is named to its state machine: retryable when its service says the
    failure reason is worth another attempt."""
    if record.status is not Status.FAILED:
        return STEP_CANCELED
    reason = record.error.message if record.error else ""
    try:
        retryable = get_registry().get(record.service).retryable(reason)
    except UnknownService:
        retryable = False
    return STEP_RETRYABLE if retryable else STEP_FAILED
