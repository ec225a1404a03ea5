"""The REST contract's request and response bodies (v1). Constrained at the edge."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from chorus.model.content import MAX_INLINE_INPUT_BYTES, MAX_METADATA_BYTES
from chorus.model.records import WebhookEvent

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookCallbackRequest(_Request):
    type: Literal["webhook"]
    url: Annotated[str, Field(min_length=8, max_length=2048)]
    events: Annotated[list[WebhookEvent], Field(min_length=1, max_length=2)] = ["completed"]


class EmailCallbackRequest(_Request):
    type: Literal["email"]
    address: Annotated[str, Field(max_length=254)]

    @field_validator("address")
    @classmethod
    def _looks_like_email(cls, value: str) -> str:
        if not EMAIL.match(value):
            raise ValueError("callback.address is not an e-mail address")
        return value


CallbackRequest = Annotated[WebhookCallbackRequest | EmailCallbackRequest, Field(discriminator="type")]


class PredictionRequest(_Request):
    """POST /predictions."""

    service: Annotated[str, Field(min_length=1, max_length=64)]
    input: JsonValue = None
    content_type: Annotated[str | None, Field(alias="contentType", max_length=255)] = None
    callback: CallbackRequest | None = None
    metadata: dict[str, JsonValue] = {}
    deadline_seconds: Annotated[int | None, Field(alias="deadlineSeconds", ge=1, le=7 * 24 * 3600)] = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("input")
    @classmethod
    def _inline_input_small(cls, value: Any) -> Any:
        if value is not None and len(json.dumps(value)) > MAX_INLINE_INPUT_BYTES:
            raise ValueError("inline input is larger than 256 KB; upload it instead (omit `input`)")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value)) > MAX_METADATA_BYTES:
            raise ValueError("metadata is larger than 4 KB")
        return value


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
