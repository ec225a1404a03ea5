"""notifications: SageMaker-format results (async endpoints, the sync path, ensemble ends) update
the prediction, and the caller is told (a queued webhook or e-mail, or the parent ensemble's task).
Executions that end outside their own failure path arrive from EventBridge as failures. Events
that failed every attempt come back once more from the dead-letter queue."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import SnsModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from chorus.core.observability import logger, metrics, tracer
from chorus.domain import results
from chorus.events.models import ExecutionStatusChange, FailedInvocation, NotificationDeadLetter
from chorus.events.sagemaker import InferenceResult

dead_letters = BatchProcessor(
    event_type=EventType.SQS, model=NotificationDeadLetter, raise_on_entire_batch_failure=False
)


def on_event(event: dict[str, Any]) -> None:
    if "detail-type" in event:
        ended = parse(event=event, model=ExecutionStatusChange)
        results.record_result(ended.detail.as_result())
        return
    for record in parse(event=event, model=SnsModel).Records:
        result = InferenceResult.model_validate_json(record.Sns.Message)
        logger.info(
            "inference result", extra={"prediction_id": result.inference_id, "status": result.invocation_status}
        )
        results.record_result(result)


def on_dead_letter(record: NotificationDeadLetter) -> None:
    body = record.body
    on_event(body.request_payload if isinstance(body, FailedInvocation) else body)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any] | None:
    # SNS and EventBridge invoke asynchronously: raising makes them retry, then the DLQ keeps it.
    if event.get("Records") and event["Records"][0].get("eventSource") == "aws:sqs":
        return process_partial_response(
            event=event, record_handler=on_dead_letter, processor=dead_letters, context=context
        )
    on_event(event)
    return None
