"""Data capture: a sampled share of finished predictions is recorded for drift monitoring.

Offered once a prediction has succeeded and its caller has been told, so capture is never on the
request path and never delays a result; a capture that fails is counted (CaptureRecordsDropped)
and forgotten, never retried into a prediction's time. Only locations travel: the capture
transformation (functions/monitor/capture.py) reads the input and output, computes the features
the monitor needs, and writes SageMaker's data-capture shape (docs/monitoring.md).
"""

from __future__ import annotations

import hashlib

from botocore.exceptions import BotoCoreError, ClientError

from chorus.adapters import capture
from chorus.core.clock import iso
from chorus.core.errors import UnknownService
from chorus.core.observability import logger
from chorus.domain import measures
from chorus.model.records import PredictionRecord, Status
from chorus.model.registry import CaptureDeclaration, get_registry

_BUCKETS = 10_000  # sampling resolution: 0.01 %


def declaration(record: PredictionRecord) -> CaptureDeclaration | None:
    """What the prediction's service captures. A rule step is not a service's prediction (its
    `service` is its ensemble's): its output is already in the ensemble's audit trail."""
    if record.kind == "rule" or record.shadow_of:  # a shadow's answer was never served
        return None
    try:
        return get_registry().get(record.service).capture
    except UnknownService:
        return None


def sampled(prediction_id: str, percent: float) -> bool:
    """The same answer for every retry of the same prediction, so a redelivered result is captured
    or not exactly as the first (the monitor dedupes the copies Firehose may make)."""
    bucket = int.from_bytes(hashlib.sha256(prediction_id.encode()).digest()[:4], "big") % _BUCKETS
    return bucket < percent * _BUCKETS / 100


def offer(record: PredictionRecord) -> None:
    declared = declaration(record)
    if declared is None or record.status is not Status.SUCCEEDED or not capture.enabled():
        return
    if not sampled(record.id, declared.sampling_percent):
        return
    entry = {
        "eventId": record.id,
        "inferenceId": record.id,
        "inferenceTime": iso(record.completed_at or record.updated_at),
        "service": record.service,
        "tenant": record.tenant,
        "version": record.version,
        "parentId": record.parent_id,
        "step": record.step_name,
        "input": record.input.as_dict() if declared.inputs and record.input else None,
        "output": record.output.as_dict() if declared.outputs and record.output else None,
    }
    try:
        capture.put(entry)
    except (BotoCoreError, ClientError) as error:
        logger.warning(
            "capture failed; the prediction is unaffected", extra={"prediction_id": record.id, "error": str(error)}
        )
        measures.capture_dropped(record)
