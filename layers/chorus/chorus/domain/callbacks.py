"""Telling the caller that a prediction started or finished.

A state change never talks to a client: it only *announces* the event. A webhook or e-mail is
queued for the delivery consumer (`deliveries.py`); an ensemble step resumes its parent's waiting
task at once (an AWS call, not a client's endpoint, and the next step waits on it).
"""

from __future__ import annotations

from chorus.adapters import notifier, queues
from chorus.model.records import CallbackEvent, EmailCallback, PredictionRecord, StepFunctionsCallback, WebhookCallback


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
            notifier.resume_parent(record, record.callback)
        return
    if wants(record, event) and event not in record.deliveries:
        queues.schedule_delivery(record.id, event, series=1, attempt=1)
