"""The SageMaker runtime adapter: asynchronous and real-time model endpoints."""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError

from chorus.aws import client
from chorus.errors import EndpointError
from chorus.records import S3Location

SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024  # InvokeEndpoint's request limit (6 MB)


@dataclass(frozen=True)
class ModelFailure:
    """The model itself rejected the input (SageMaker ModelError, HTTP 424)."""

    reason: str


@dataclass(frozen=True)
class ModelAnswer:
    body: bytes
    content_type: str


def invoke_async(endpoint_name: str, inference_id: str, location: S3Location, timeout_seconds: int) -> str:
    """Queue the S3 object on an async endpoint (no copy); returns SageMaker's output location."""
    try:
        response = client("sagemaker-runtime").invoke_endpoint_async(
            EndpointName=endpoint_name,
            InputLocation=location.uri,
            ContentType=location.content_type,
            InferenceId=inference_id,
            InvocationTimeoutSeconds=max(1, min(timeout_seconds, 3600)),
        )
    except ClientError as exc:
        _raise_permanent(exc, endpoint_name)
        raise
    return str(response.get("OutputLocation", ""))


def invoke_sync(endpoint_name: str, body: bytes, content_type: str) -> ModelAnswer | ModelFailure:
    runtime = client("sagemaker-runtime")
    try:
        response = runtime.invoke_endpoint(
            EndpointName=endpoint_name, Body=body, ContentType=content_type, Accept="application/json"
        )
    except runtime.exceptions.ModelError as exc:
        return ModelFailure(reason=exc.response["Error"].get("Message") or str(exc))
    except ClientError as exc:
        _raise_permanent(exc, endpoint_name)
        raise
    return ModelAnswer(body=response["Body"].read(), content_type=response.get("ContentType", "application/json"))


def _raise_permanent(exc: ClientError, endpoint_name: str) -> None:
    """Validation errors (unknown endpoint, bad request) will not heal on retry; the rest may."""
    code = exc.response["Error"].get("Code", "")
    if code in {"ValidationError", "ValidationException"}:
        message = exc.response["Error"].get("Message", str(exc))
        raise EndpointError(f"endpoint {endpoint_name!r} refused the request: {message}") from exc
