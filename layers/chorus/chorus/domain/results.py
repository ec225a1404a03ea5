"""A result arrived (an async endpoint's notification, the real-time path, an ensemble's end), or
a prediction failed on our side: record the terminal state once, then announce it."""

from __future__ import annotations

import contextlib
import json

from chorus.adapters import predictions
from chorus.core.observability import about, logger
from chorus.domain import callbacks, capture, measures, trials
from chorus.events.sagemaker import InferenceResult
from chorus.model.records import CallbackEvent, ErrorDetail, PredictionRecord, Status

STEP_TIMED_OUT = "StepTimedOut"  # the error the compiled state machines name a timed-out step by


def record_result(result: InferenceResult) -> None:
    """Duplicates and late results find the prediction finished and only re-announce it, which
    finishes a callback an earlier attempt crashed before queuing."""
    if result.succeeded:
        updated = predictions.finish(result.inference_id, Status.SUCCEEDED, output=result.output())
    else:
        record = predictions.find(result.inference_id)
        if record is None:
            logger.warning("result for an unknown prediction", extra={"inference_id": result.inference_id})
            return
        code = "step_failed" if record.kind == "ensemble" else "model_error"
        if result.error_code == STEP_TIMED_OUT:
            code = "step_timed_out"
        error = ErrorDetail(code=code, message=_failure_reason(record, result))
        updated = predictions.finish(record.id, Status.FAILED, error=error)
    if updated is None:
        current = predictions.find(result.inference_id)
        if current is None:
            logger.warning("result for an unknown prediction", extra={"inference_id": result.inference_id})
            return
        logger.info("duplicate or late result ignored", extra={"prediction_id": current.id, "status": current.status})
        updated, fresh = current, False
    else:
        measures.finished(updated)
        fresh = True
    about(updated.tenant, updated.token_id, updated.id)
    if updated.status.terminal:
        callbacks.announce(updated, CallbackEvent.COMPLETED)
    if fresh:
        # Last, after the caller has been told: evidence and capture never delay or fail a result.
        trials.record_trial(updated)
        capture.offer(updated)


def _failure_reason(record: PredictionRecord, result: InferenceResult) -> str:
    reason = (result.failure_reason or "").strip()
    if reason.startswith("{"):
        # A Lambda error relayed by Step Functions: keep its message, never its stack trace.
        with contextlib.suppress(json.JSONDecodeError, AttributeError):
            reason = str(json.loads(reason).get("errorMessage", "")) or reason
    if not reason and record.kind == "ensemble":
        # Step Functions does not always carry the cause along; the failed step's record has it.
        failed = [c for c in predictions.children(record.id) if c.status is Status.FAILED and c.error]
        if failed:
            step = failed[0]
            reason = f"step {step.step_name!r} ({step.service}) failed: {step.error.message}"  # type: ignore[union-attr]
    return reason or f"invocation {result.invocation_status.lower()} without a reason"


def fail(prediction_id: str, error: ErrorDetail) -> None:
    failed = predictions.finish(prediction_id, Status.FAILED, error=error)
    if failed is not None:
        logger.info("prediction failed", extra={"prediction_id": prediction_id, "code": error.code})
        measures.finished(failed)
    current = failed or predictions.find(prediction_id)
    if current is not None and current.status.terminal:
        callbacks.announce(current, CallbackEvent.COMPLETED)
    if failed is not None:
        trials.record_trial(failed)
