"""process-input: S3 upload events (through SQS) start their predictions; due clocks (upload
expiry, client deadline, run deadline) end what has not finished; messages that failed every
retry (the dead-letter queue) end their prediction truthfully instead of leaving it queued."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from chorus.adapters.payloads import upload_key_parts
from chorus.core import settings
from chorus.core.observability import logger, metrics, tracer
from chorus.domain import clocks, dispatch
from chorus.events.models import DeadlineMessage, S3TestEvent, UploadRecord

processor = BatchProcessor(event_type=EventType.SQS, model=UploadRecord, raise_on_entire_batch_failure=False)


@tracer.capture_method
def on_message(record: UploadRecord) -> None:
    body = record.body
    if isinstance(body, S3TestEvent):
        logger.info("skipping s3:TestEvent")
        return
    dead = record.eventSourceARN == settings.load(settings.DeadLetterSettings).upload_dlq_arn
    if isinstance(body, DeadlineMessage):
        # A dead-lettered deadline is enforced like any other: the clock is the truth.
        clocks.enforce_deadline(body.deadline.prediction_id, body.deadline.at)
        return
    for s3_record in body.records:
        if not s3_record.event_name.startswith("ObjectCreated"):
            continue
        key = s3_record.s3.object.decoded_key
        if dead:
            parts = upload_key_parts(key)
            if parts is not None:
                tenant, prediction_id = parts
                dispatch.dead_lettered(prediction_id, "uploaded input", tenant=tenant)
        else:
            dispatch.receive_upload(s3_record.s3.bucket.name, key)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=on_message, processor=processor, context=context)
