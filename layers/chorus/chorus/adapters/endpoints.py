"""The SageMaker runtime: asynchronous endpoints, and real-time endpoints run the way an
asynchronous one would (output written to S3, SageMaker's notification published), so results
have a single path whatever the endpoint's mode."""

from __future__ import annotations

from botocore.exceptions import ClientError

from chorus.adapters import payloads, topics
from chorus.core.clients import client
from chorus.core.errors import EndpointError
from chorus.events.sagemaker import inference_notification
from chorus.model.records import S3Location


def invoke_async(endpoint_name: str, inference_id: str, location: S3Location, timeout_seconds: int) -> None:
    """Queue the S3 object on an async endpoint (no copy); its notification reports the result."""
    try:
        client("sagemaker-runtime").invoke_endpoint_async(
            EndpointName=endpoint_name,
            InputLocation=location.uri,
            ContentType=location.content_type,
            InferenceId=inference_id,
            InvocationTimeoutSeconds=max(1, min(timeout_seconds, 3600)),
        )
    except ClientError as exc:
        _raise_permanent(exc, endpoint_name)
        raise


def run_sync(endpoint_name: str, inference_id: str, location: S3Location, tenant: str) -> None:
    """Invoke a real-time endpoint, store its answer and publish the notification an async
    endpoint would have sent (a model's own refusal is a `Failed` notification)."""
    runtime = client("sagemaker-runtime")
    body = payloads.read_bytes(location)
    try:
        response = runtime.invoke_endpoint(
            EndpointName=endpoint_name, Body=body, ContentType=location.content_type, Accept="application/json"
        )
    except runtime.exceptions.ModelError as exc:
        reason = exc.response["Error"].get("Message") or str(exc)
        topics.publish_result(
            inference_notification(inference_id, endpoint_name, location, "Failed", failure_reason=reason)
        )
        return
    except ClientError as exc:
        _raise_permanent(exc, endpoint_name)
        raise
    output = payloads.put_bytes(
        payloads.output_key(tenant, inference_id),
        response["Body"].read(),
        response.get("ContentType", "application/json"),
    )
    topics.publish_result(inference_notification(inference_id, endpoint_name, location, "Completed", output=output))


def _raise_permanent(exc: ClientError, endpoint_name: str) -> None:
    """Validation errors (unknown endpoint, bad request) will not heal on retry; the rest may."""
    code = exc.response["Error"].get("Code", "")
    if code in {"ValidationError", "ValidationException"}:
        message = exc.response["Error"].get("Message", str(exc))
        raise EndpointError(f"endpoint {endpoint_name!r} refused the request: {message}") from exc
