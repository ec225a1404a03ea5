"""SageMaker's asynchronous-inference notification: parsing it defensively and producing it.

The sync-endpoint path and the ensemble state machines publish the very same message, so the
notifications function has a single path for every kind of result. (`awsRegion` is optional in
what SageMaker sends and unused here, so the sync path leaves it out.)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from chorus.core.clock import iso, utcnow
from chorus.events.base import LooseModel
from chorus.model.records import S3Location


class RequestParameters(LooseModel):
    endpoint_name: str | None = Field(default=None, alias="endpointName")
    input_location: str | None = Field(default=None, alias="inputLocation")


class ResponseParameters(LooseModel):
    content_type: str | None = Field(default=None, alias="contentType")
    output_location: str | None = Field(default=None, alias="outputLocation")
    failure_location: str | None = Field(default=None, alias="failureLocation")


class InferenceResult(LooseModel):
    inference_id: str = Field(alias="inferenceId", min_length=1)
    invocation_status: str = Field(alias="invocationStatus")
    failure_reason: str | None = Field(default=None, alias="failureReason")
    error_code: str | None = Field(default=None, alias="errorCode")
    request_parameters: RequestParameters = Field(default_factory=RequestParameters, alias="requestParameters")
    response_parameters: ResponseParameters = Field(default_factory=ResponseParameters, alias="responseParameters")

    @property
    def succeeded(self) -> bool:
        return self.invocation_status.lower() == "completed" and bool(self.response_parameters.output_location)

    def output(self) -> S3Location:
        content_type = self.response_parameters.content_type or "application/json"
        return S3Location.from_uri(self.response_parameters.output_location or "", content_type)


def inference_notification(
    inference_id: str,
    endpoint_name: str,
    input_location: S3Location,
    outcome: Literal["Completed", "Failed"],
    *,
    output: S3Location | None = None,
    failure_reason: str | None = None,
) -> dict[str, Any]:
    now = iso(utcnow())
    body: dict[str, Any] = {
        "eventTime": now,
        "receivedTime": now,
        "invocationStatus": outcome,
        "inferenceId": inference_id,
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
        "requestParameters": {
            "endpointName": endpoint_name,
            "inputLocation": input_location.uri,
            "contentType": input_location.content_type,
        },
    }
    if output is not None:
        body["responseParameters"] = {"contentType": output.content_type, "outputLocation": output.uri}
    if failure_reason is not None:
        body["failureReason"] = failure_reason
    return body
