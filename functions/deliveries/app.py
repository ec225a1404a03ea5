"""deliveries: one callback attempt per message (webhook or e-mail), then the next attempt is
scheduled or the outcome recorded. The only function that opens a connection to a client."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from chorus.core.observability import logger, metrics, tracer
from chorus.domain import deliveries
from chorus.events.models import DeliveryRecord

processor = BatchProcessor(event_type=EventType.SQS, model=DeliveryRecord, raise_on_entire_batch_failure=False)


def on_delivery(record: DeliveryRecord) -> None:
    deliveries.attempt(record.body.delivery)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=on_delivery, processor=processor, context=context)
