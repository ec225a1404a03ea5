"""get-transform-call: runs one ensemble step for a waiting Step Functions task — evaluates its
condition, builds its input from earlier outputs (or computes a rule's output), creates the child
prediction (the task token is its callback) and invokes the step's service. Without a task token it
lists a fanned-out step's items, or renders the ensemble's output mapping."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from chorus.core.observability import logger, metrics, tracer
from chorus.domain import steps
from chorus.events.models import StepInvocation


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Errors propagate on purpose: their class name (InvalidInput, UnknownService…) is the error
    # Step Functions sees, and the message names the step.
    invocation = StepInvocation.model_validate(event)
    if invocation.kind == "items":
        return steps.expand_items(invocation)
    if invocation.kind == "output":
        return steps.render_output(invocation)
    return steps.run_step(invocation)
