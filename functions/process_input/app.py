"""process-input: S3 upload events (through SQS) start their predictions; due deadlines cancel
what has not finished."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from chorus import lifecycle
from chorus.events import DeadlineMessage, S3TestEvent, UploadRecord
from chorus.observability import logger, metrics, tracer

processor = BatchProcessor(event_type=EventType.SQS, model=UploadRecord, raise_on_entire_batch_failure=False)


@tracer.capture_method
def on_upload(record: UploadRecord) -> None:
    if isinstance(record.body, S3TestEvent):
        logger.info("skipping s3:TestEvent")
        return
    if isinstance(record.body, DeadlineMessage):
        lifecycle.enforce_deadline(record.body.deadline.prediction_id, record.body.deadline.at)
        return
    for s3_record in record.body.records:
        if s3_record.event_name.startswith("ObjectCreated"):
            lifecycle.receive_upload(s3_record.s3.bucket.name, s3_record.s3.object.decoded_key)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=on_upload, processor=processor, context=context)
