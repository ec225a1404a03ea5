"""Every prediction has clocks, and the deadline queue looks at it again when one is due:
- the upload URL's expiry (+ a grace period): no input came → `expired`;
- the client's `deadlineSeconds`: whatever is unfinished → `canceled` (`deadline_exceeded`);
- the run deadline set at dispatch: a result that never came → `failed` (`timed_out`).
A read past a clock enforces it too, so no client ever sees a stale status.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from chorus.adapters import predictions, queues
from chorus.core.clock import iso, utcnow
from chorus.core.observability import logger
from chorus.domain import callbacks, measures, trials
from chorus.domain.cancel import cancel_tree
from chorus.domain.submit import UPLOAD_GRACE
from chorus.model.records import CallbackEvent, ErrorDetail, PredictionRecord, Status

EARLY = timedelta(seconds=1)  # a message delivered a moment early is due


def enforce_deadline(prediction_id: str, at: datetime) -> None:
    """A deadline message arrived: wait again if it is early, else enforce what is due."""
    if at - utcnow() > EARLY:
        queues.schedule_deadline(prediction_id, at)  # further out than one SQS delay
        return
    record = predictions.find(prediction_id)
    if record is None:
        return
    if record.status.terminal:
        callbacks.announce(record, CallbackEvent.COMPLETED)  # finishes a callback a crash left unqueued
        return
    enforce(record)


def due(record: PredictionRecord) -> str | None:
    now = utcnow() + EARLY
    if (
        record.status is Status.AWAITING_INPUT
        and record.upload_expires_at
        and now > record.upload_expires_at + UPLOAD_GRACE
    ):
        return "expired"
    if record.deadline_at and now >= record.deadline_at:
        return "deadline"
    if record.status is Status.RUNNING and record.run_deadline_at and now >= record.run_deadline_at:
        return "timed_out"
    return None


def enforce(record: PredictionRecord) -> PredictionRecord | None:
    """Apply whichever clock is due; returns the finished record, or None if nothing changed."""
    reason = due(record)
    if reason == "expired":
        error = ErrorDetail(code="expired", message="no input arrived before the upload URL expired")
        finished = predictions.finish(record.id, Status.EXPIRED, error=error)
        if finished is not None:
            measures.finished(finished)
    elif reason == "deadline":
        message = f"the prediction did not finish by its deadline ({iso(record.deadline_at)})"
        finished = cancel_tree(record, ErrorDetail(code="deadline_exceeded", message=message))
    elif reason == "timed_out":
        seconds = (record.run_deadline_at - record.started_at).total_seconds() if record.started_at else 0  # type: ignore[operator]
        message = f"no result from {record.service} within {seconds:.0f} s of dispatch"
        finished = predictions.finish(record.id, Status.FAILED, error=ErrorDetail(code="timed_out", message=message))
        if finished is not None:
            measures.finished(finished)
            trials.record_trial(finished)
    else:
        return None
    if finished is not None:
        logger.info("prediction ended by its clock", extra={"prediction_id": record.id, "reason": reason})
        callbacks.announce(finished, CallbackEvent.COMPLETED)
    return finished
