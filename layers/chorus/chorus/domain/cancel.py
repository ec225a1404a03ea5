"""Canceling a prediction: its execution is stopped and its unfinished steps canceled with it."""

from __future__ import annotations

from chorus.adapters import executions, predictions
from chorus.core.errors import NotCancelable
from chorus.domain import callbacks, measures
from chorus.model.records import CallbackEvent, ErrorDetail, PredictionRecord, Status
from chorus.model.tenancy import Caller


def cancel(caller: Caller, prediction_id: str) -> PredictionRecord:
    """Cancel one of the caller's tenant's predictions, or confirm an earlier cancel (a retried
    request finishes a callback left unqueued). Another tenant's prediction is not found."""
    record = predictions.get_owned(prediction_id, caller.tenant)
    if record.status is not Status.CANCELED:
        if record.status.terminal:
            raise NotCancelable(f"prediction {prediction_id!r} already {record.status.value}")
        canceled = cancel_tree(record)
        if canceled is None:
            record = predictions.get(prediction_id)
            if record.status is not Status.CANCELED:
                raise NotCancelable(f"prediction {prediction_id!r} already {record.status.value}")
        else:
            record = canceled
    callbacks.announce(record, CallbackEvent.COMPLETED)
    return record


def cancel_tree(record: PredictionRecord, error: ErrorDetail | None = None) -> PredictionRecord | None:
    canceled = predictions.finish(record.id, Status.CANCELED, error=error)
    if canceled is None:
        return None
    measures.finished(canceled)
    if canceled.execution_arn:
        executions.stop(canceled.execution_arn, "prediction canceled")
    for child in predictions.children(record.id):
        if not child.status.terminal:
            # The parent's execution is stopped: the children's tokens are spent, so no callback.
            cancel_tree(child, error)
    return canceled
