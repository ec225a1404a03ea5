"""new-prediction: POST /predictions, POST /predictions/{id}/cancel,
POST /predictions/{id}/webhook/redeliver — the routes that change predictions — and
POST /webhooks/secret/rotate (admin)."""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from chorus.api.identity import authorize
from chorus.api.models import IdempotencyKey, PredictionId, PredictionRequest, Prefer
from chorus.api.resolver import create_resolver, json_response
from chorus.api.responses import Prediction, RotatedWebhookSecret, answer, created, declare
from chorus.api.views import represent
from chorus.core import settings
from chorus.core.clients import client
from chorus.core.errors import IdempotencyConflict
from chorus.core.observability import logger, metrics, tracer
from chorus.domain import cancel, deliveries, queries, submit, webhook_secrets
from chorus.model.tenancy import Caller, Scope

app = create_resolver()
PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait(?:=([0-9]{1,6}))?(?:$|[,;\s])")
MAX_WAIT_SECONDS = 25  # API Gateway ends every request at 29 s


@cache
def _idempotency_config() -> IdempotencyConfig:
    return IdempotencyConfig(
        event_key_jmespath="key",
        payload_validation_jmespath="request",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=24 * 3600,
    )


@cache
def _submit_once() -> Any:
    persistence = DynamoDBPersistenceLayer(
        table_name=settings.load(settings.IdempotencySettings).idempotency_table, boto3_client=client("dynamodb")
    )

    @idempotent_function(
        data_keyword_argument="submission", persistence_store=persistence, config=_idempotency_config()
    )
    def submit_once(submission: dict[str, Any]) -> dict[str, Any]:
        caller = Caller.model_validate(submission["caller"])
        return submit.submit(PredictionRequest.model_validate(submission["request"]), caller)

    return submit_once


@app.post(
    "/predictions",
    operation_id="createPrediction",
    summary="Create a prediction",
    responses=declare(
        {
            200: created("Finished while `Prefer: wait` held the answer"),
            202: created("Created: upload its input (`upload`), or, inline, it runs now"),
        },
        {
            400: "`invalid_request` (the body breaks a rule of its fields, or the body or `Idempotency-Key` is "
            "malformed), `unknown_service`, `invalid_callback` (a webhook or e-mail the tenant does not allow)",
            409: "`service_disabled`, `idempotency_conflict` (the key came with another body, or is in use)",
            413: "`payload_too_large`: inline input larger than the service accepts (or the request larger than "
            "API Gateway's 10 MB)",
            415: "`unsupported_content_type` (the service does not accept `contentType`), "
            "`unsupported_media_type` (the body is not sent as `application/json`)",
        },
    ),
)
def create_prediction(
    request: Annotated[PredictionRequest, Body()],
    idempotency_key: IdempotencyKey = None,
    prefer: Prefer = None,
) -> Response[dict[str, Any]]:
    caller = authorize(app.current_event.raw_event, Scope.CREATE)
    if idempotency_key is None:
        view = submit.submit(request, caller)
    else:
        # The key is the tenant's: the same key from two tenants names two predictions.
        submission = {
            "key": f"{caller.tenant}:{idempotency_key}",
            "request": request.model_dump(mode="json", by_alias=True, exclude_none=True),
            "caller": caller.model_dump(mode="json"),
        }
        try:
            view = _submit_once()(submission=submission)
        except IdempotencyValidationError as exc:
            raise IdempotencyConflict("this Idempotency-Key was used with a different request body") from exc
        except IdempotencyAlreadyInProgressError as exc:
            raise IdempotencyConflict("a request with this Idempotency-Key is still in progress; retry") from exc
    headers = {"Location": f"/predictions/{view['id']}"}
    wait = _prefer_wait(prefer)
    if wait and request.input is not None:  # an upload cannot finish while we hold the answer
        view, waited = queries.wait_for_result(caller, view["id"], wait, fallback=view)
        if waited:  # only a preference (RFC 7240): say so when it was honoured
            headers["Preference-Applied"] = f"wait={wait}"
    finished = view["status"] in {"succeeded", "failed", "canceled", "expired"}
    return json_response(200 if finished else 202, view, headers)


@app.post(
    "/predictions/<prediction_id>/cancel",
    operation_id="cancelPrediction",
    summary="Cancel a prediction",
    responses=declare(
        {200: answer(Prediction, "Canceled (also when it already was)")},
        {
            404: "`not_found`: no prediction of the caller's tenant has this id",
            409: "`not_cancelable`: it already succeeded, failed or expired",
        },
    ),
)
def cancel_prediction(prediction_id: PredictionId) -> Response[dict[str, Any]]:
    caller = authorize(app.current_event.raw_event, Scope.CREATE)
    return json_response(200, represent(cancel.cancel(caller, prediction_id)))


@app.post(
    "/predictions/<prediction_id>/webhook/redeliver",
    operation_id="redeliverWebhook",
    summary="Send a prediction's webhook events again",
    responses=declare(
        {202: answer(Prediction, "Every event the prediction reached is sent again, as a new attempt series")},
        {
            404: "`not_found`: no prediction of the caller's tenant has this id",
            409: "`not_redeliverable`: it has no webhook, or has reached no event the webhook asked for",
        },
    ),
)
def redeliver_webhook(prediction_id: PredictionId) -> Response[dict[str, Any]]:
    caller = authorize(app.current_event.raw_event, Scope.CREATE)
    deliveries.redeliver(caller, prediction_id)
    return json_response(202, queries.describe(caller, prediction_id))


@app.post(
    "/webhooks/secret/rotate",
    operation_id="rotateWebhookSecret",
    summary="Rotate the tenant's webhook signing secret (scope admin)",
    responses=declare(
        {200: answer(RotatedWebhookSecret, "The new secret")},
        {
            404: "`not_found`: the caller's tenant no longer exists",
            409: "`conflict`: another rotation changed the secret meanwhile; retry",
        },
    ),
)
def rotate_webhook_secret() -> Response[dict[str, Any]]:
    """A new webhook signing secret for the caller's tenant; the previous one keeps signing beside
    it for 24 hours (both signatures in `webhook-signature`)."""
    caller = authorize(app.current_event.raw_event, Scope.ADMIN)
    return json_response(200, webhook_secrets.rotate(caller))


def _prefer_wait(header: str | None) -> int:
    match = PREFER_WAIT.search(header or "")
    if not match:
        return 0
    return min(int(match.group(1) or MAX_WAIT_SECONDS), MAX_WAIT_SECONDS)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _idempotency_config().register_lambda_context(context)
    return app.resolve(event, context)
