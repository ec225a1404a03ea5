"""The REST contract's request bodies and parameters (v1; what it answers is in responses.py).
Constrained at the edge: strict types (no coercion: `"10"` or `true` is not a number), and only
what the stores can hold — metadata goes to DynamoDB, inline input to S3 as JSON. The body itself
was screened before these run (edge.py): UTF-8, strict JSON, at most 64 levels deep."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from aws_lambda_powertools.event_handler.openapi.params import Header, Path
from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from chorus.api.edge import MAX_BODY_DEPTH, MAX_IDEMPOTENCY_KEY_LENGTH, json_problem
from chorus.model.content import MAX_INLINE_INPUT_BYTES, MAX_METADATA_BYTES
from chorus.model.records import WebhookEvent

# An address SES can send to: ASCII, no display name, no whitespace; matched with fullmatch.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL = re.compile(
    rf"(?=[^@]{{1,64}}@){_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+[A-Za-z](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])"
)
CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f-\x9f]")

# Ids we issue are 32 hex characters; anything outside this is no prediction (404, never a 5xx).
PREDICTION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

# DynamoDB nests at most 32 levels in an item; the record holds metadata one level down.
MAX_METADATA_DEPTH = 16
# DynamoDB numbers: at most 38 significant digits, magnitude from 1e-130 up to (not including) 1e126.
DYNAMODB_MAX_DIGITS = 38
DYNAMODB_MIN_MAGNITUDE = 1e-130
DYNAMODB_MAX_MAGNITUDE = 1e126


PredictionId = Annotated[
    str, Path(pattern=PREDICTION_ID_PATTERN, description="A prediction id (ours are 32 hex characters)")
]
# Any text: a name the registry does not have is a 404 `not_found`, like an unknown prediction id.
ServiceNameParameter = Annotated[str, Path(max_length=200, description="A service's name, as in GET /services")]
# Request headers of POST /predictions (edge.py checked every value of the key already).
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        description="The same key (per tenant) with the same body answers the same prediction for 24 h; "
        "with another body, 409 `idempotency_conflict`. No control characters.",
    ),
]
Prefer = Annotated[
    str | None,
    Header(
        alias="Prefer",
        description="`wait=N` (N ≤ 25 s; `wait` alone is 25): with inline input, hold the answer until the "
        "prediction finishes (200) or N seconds pass (202). `Preference-Applied` says when it waited.",
    ),
]


def dynamodb_key_problem(key: str) -> str | None:
    """Why a map key cannot be stored; None when it can. An empty one is refused: moto cannot return
    an item holding one (every later read of it was a 5xx), and a name of one character or more is
    what DynamoDB's attribute names need."""
    return None if key else "an empty key cannot be stored: give every key at least one character"


def dynamodb_number_problem(number: int | float) -> str | None:
    """Why DynamoDB (through our serializer: ints as they are, floats via their shortest repr)
    cannot store `number`; None when it can."""
    if isinstance(number, int):
        if abs(number) < 10**DYNAMODB_MAX_DIGITS:
            return None
        shown = f"an integer of more than {DYNAMODB_MAX_DIGITS} digits"
    else:
        if number == 0 or DYNAMODB_MIN_MAGNITUDE <= abs(number) < DYNAMODB_MAX_MAGNITUDE:
            return None
        shown = repr(number)
    return (
        f"{shown} cannot be stored: metadata numbers need at most {DYNAMODB_MAX_DIGITS} digits"
        " and a magnitude between 1e-130 and 1e126"
    )


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class WebhookCallbackRequest(_Request):
    type: Literal["webhook"]
    url: Annotated[str, Field(min_length=8, max_length=2048)]
    events: Annotated[list[WebhookEvent], Field(min_length=1, max_length=3)] = ["completed"]

    @field_validator("url")
    @classmethod
    def _one_token(cls, value: str) -> str:
        if CONTROL_OR_SPACE.search(value):
            raise ValueError("callback.url must not contain spaces or control characters")
        try:
            urlsplit(value)  # what vets and sends it splits it too: a bracketed host that is no IPv6 raises
        except ValueError as exc:
            raise ValueError(f"callback.url is not a URL: {exc}") from None
        return value


class EmailCallbackRequest(_Request):
    type: Literal["email"]
    address: Annotated[str, Field(max_length=254)]

    @field_validator("address")
    @classmethod
    def _looks_like_email(cls, value: str) -> str:
        if not EMAIL.fullmatch(value):
            raise ValueError("callback.address is not an e-mail address (a bare address such as ann@example.com)")
        return value


CallbackRequest = Annotated[WebhookCallbackRequest | EmailCallbackRequest, Field(discriminator="type")]


# A handwritten digit (8x8 pixels, 0 to 16, as the demo digits models read them): the request's example.
EXAMPLE_DIGIT: list[JsonValue] = [
    0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0,
    0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0,
]  # fmt: skip


class PredictionRequest(_Request):
    """POST /predictions."""

    service: Annotated[str, Field(min_length=1, max_length=64, description="A registered service (`GET /services`)")]
    input: Annotated[
        JsonValue, Field(description="Inline JSON input (≤ 256 KB); without it the answer carries an `upload` form")
    ] = None
    content_type: Annotated[
        str | None,
        Field(
            alias="contentType",
            max_length=255,
            description="The upload's content type, one the service accepts (default: its first)",
        ),
    ] = None
    callback: CallbackRequest | None = None
    metadata: Annotated[
        dict[str, JsonValue], Field(description="≤ 4 KB, ≤ 16 levels; echoed in every representation")
    ] = {}
    deadline_seconds: Annotated[
        int | None,
        Field(
            alias="deadlineSeconds",
            ge=1,
            le=7 * 24 * 3600,
            description="Whatever has not finished by then is canceled (error `deadline_exceeded`)",
        ),
    ] = None

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {"service": "digits-svm", "contentType": "image/png"},
                {"service": "digits-svm", "input": {"pixels": EXAMPLE_DIGIT}, "metadata": {"order": "A-17"}},
            ]
        },
    )

    @field_validator("input")
    @classmethod
    def _inline_input_is_json(cls, value: Any) -> Any:
        # S3 holds any JSON (huge numbers too), but not NaN, Infinity or lone surrogates.
        problem = json_problem(value, max_depth=MAX_BODY_DEPTH, root="input")
        if problem is not None:
            raise ValueError(problem)
        if value is not None and len(json.dumps(value)) > MAX_INLINE_INPUT_BYTES:
            raise ValueError("inline input is larger than 256 KB; upload it instead (omit `input`)")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_storable(cls, value: dict[str, Any]) -> dict[str, Any]:
        problem = json_problem(
            value,
            max_depth=MAX_METADATA_DEPTH,
            root="metadata",
            number=dynamodb_number_problem,
            key=dynamodb_key_problem,
        )
        if problem is not None:
            raise ValueError(problem)
        if len(json.dumps(value)) > MAX_METADATA_BYTES:
            raise ValueError("metadata is larger than 4 KB")
        return value
