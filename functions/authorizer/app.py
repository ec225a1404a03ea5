"""authorizer: the REST API's REQUEST authorizer (every route).

`Authorization: Bearer chr_...` -> an IAM policy allowing the routes of the token's scopes, with
the tenant, token id and scopes as context (`requestContext.authorizer` of the proxy event).
Anything but a valid token raises `Unauthorized`, which API Gateway answers with a 401.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from chorus.core.observability import logger, metrics, tracer
from chorus.domain import authorize


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return authorize.authorize(event)
    except authorize.Refused:
        raise Exception("Unauthorized") from None  # API Gateway's contract for a 401
