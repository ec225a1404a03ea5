"""notifications: SageMaker-format results (async endpoints, the sync path, ensemble ends) update
the prediction, then the caller is told (webhook, e-mail, or the parent ensemble's task token).
Executions that end outside their own failure path arrive from EventBridge as failures."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import SnsModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from chorus import lifecycle
from chorus.events import ExecutionStatusChange
from chorus.observability import logger, metrics, tracer
from chorus.sagemaker_events import InferenceResult


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> None:
    # SNS and EventBridge invoke asynchronously: raising makes them retry, then the DLQ keeps it.
    if "detail-type" in event:
        ended = parse(event=event, model=ExecutionStatusChange)
        lifecycle.record_result(ended.detail.as_result())
        return
    for record in parse(event=event, model=SnsModel).Records:
        result = InferenceResult.model_validate_json(record.Sns.Message)
        logger.info(
            "inference result", extra={"prediction_id": result.inference_id, "status": result.invocation_status}
        )
        lifecycle.record_result(result)
