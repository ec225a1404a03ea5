"""The edge's rules for bad input, without AWS: the body screen (chorus.api.edge) and the request
models (chorus.api.models). Through the handlers: tests/integration/test_bad_input_handlers.py."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer
from pydantic import ValidationError

from chorus.api import edge
from chorus.api.models import MAX_METADATA_DEPTH, EmailCallbackRequest, PredictionRequest, WebhookCallbackRequest
from chorus.core.errors import ChorusError, InvalidRequest


def proxy_event(
    body: str | bytes | None, headers: dict[str, str] | None = None, *, base64_encoded: bool = False
) -> dict[str, Any]:
    if isinstance(body, bytes):
        body, base64_encoded = base64.b64encode(body).decode(), True
    headers = {"Content-Type": "application/json", **(headers or {})}
    return {
        "path": "/predictions",
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "body": body,
        "isBase64Encoded": base64_encoded,
    }


def nested(levels: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(levels):
        value = {"a": value}
    return value


def refusal(event: dict[str, Any]) -> ChorusError:
    with pytest.raises(ChorusError) as caught:
        edge.screen(event)
    return caught.value


def model_error(**fields: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        PredictionRequest.model_validate({"service": "digits-svm", **fields})
    return str(caught.value)


# --- the body screen ------------------------------------------------------------------------------


def test_base64_body_that_is_not_utf8_is_refused():
    # Given a body API Gateway base64-encoded because its bytes are not UTF-8
    event = proxy_event(b'{"service": "digits-svm\xff"}')
    # When it is screened
    error = refusal(event)
    # Then it is an invalid request that says so
    assert isinstance(error, InvalidRequest) and "not UTF-8" in error.message


def test_text_body_holding_undecodable_bytes_is_refused():
    # Given a text body carrying a byte that was not UTF-8 (as Python decodes it with surrogateescape)
    event = proxy_event(b'{"service": "x\xff"}'.decode("utf-8", "surrogateescape"))
    # When it is screened, Then it is refused as not UTF-8
    assert "not UTF-8" in refusal(event).message


def test_base64_utf8_body_is_handed_on_as_text():
    # Given a valid JSON body that API Gateway base64-encoded
    event = proxy_event('{"service": "digits-svm", "metadata": {"name": "Zoë"}}'.encode())
    # When it is screened
    screened = edge.screen(event)
    # Then the handler sees the decoded text, no longer marked base64
    assert screened["isBase64Encoded"] is False
    assert json.loads(screened["body"])["metadata"] == {"name": "Zoë"}


def test_body_marked_base64_that_is_not_base64_is_refused():
    # Given a body flagged base64 that is not base64
    event = proxy_event("%%% not base64 %%%", base64_encoded=True)
    # When it is screened, Then it is refused as such
    assert "not valid base64" in refusal(event).message


def test_json_nested_a_thousand_levels_is_refused_without_recursion_error():
    # Given a body nested 1,000 levels deep (json.loads alone raises RecursionError)
    event = proxy_event('{"service": "digits-svm", "metadata": {"a": ' + "[" * 1000 + "]" * 1000 + "}}")
    # When it is screened
    error = refusal(event)
    # Then it is an invalid request naming the depth limit
    assert isinstance(error, InvalidRequest) and f"{edge.MAX_BODY_DEPTH} levels" in error.message


def test_body_depth_limit_is_exactly_max_body_depth():
    # Given bodies exactly at, and one past, the depth limit (the body object is level 1)
    at_limit = proxy_event(json.dumps(nested(edge.MAX_BODY_DEPTH)))
    past_limit = proxy_event(json.dumps(nested(edge.MAX_BODY_DEPTH + 1)))
    # When they are screened, Then the first passes and the second is refused
    assert edge.screen(at_limit)["body"] == at_limit["body"]
    assert "nested more than" in refusal(past_limit).message


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_as_not_json(constant):
    # Given a body with a constant json.loads accepts but JSON does not have
    event = proxy_event(f'{{"service": "digits-svm", "input": {{"x": {constant}}}}}')
    # When it is screened, Then it is refused, naming the constant
    message = refusal(event).message
    assert constant in message and "not JSON" in message


def test_number_too_large_for_a_float_is_refused():
    # Given a number json.loads would silently turn into infinity
    event = proxy_event('{"service": "digits-svm", "input": {"x": 1e400}}')
    # When it is screened, Then it is refused
    assert "too large for a 64-bit float" in refusal(event).message


def test_integer_with_more_digits_than_python_reads_is_refused():
    # Given an integer beyond Python's int-from-string limit (a ValueError inside json.loads)
    event = proxy_event('{"service": "digits-svm", "input": {"x": ' + "9" * 5000 + "}}")
    # When it is screened, Then it is an invalid request, not an unhandled ValueError
    assert "too many to read" in refusal(event).message


@pytest.mark.parametrize(
    ("body", "place"),
    [
        ('{"service": "digits-svm", "metadata": {"note": "\\ud800"}}', "metadata.note"),
        ('{"service": "digits-svm", "metadata": {"\\udfff": 1}}', "metadata"),
        ('{"service": "\\ud800"}', "service"),
        ('{"service": "digits-svm", "input": ["ok", "\\udc00x"]}', "input[1]"),
    ],
)
def test_lone_surrogate_anywhere_is_refused_naming_its_place(body, place):
    # Given a string (or key) holding a lone surrogate, written as a JSON escape
    event = proxy_event(body)
    # When it is screened
    message = refusal(event).message
    # Then the message says where and why
    assert message.startswith(f"{place}:") and "lone surrogate" in message


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonp"],
)
def test_body_sent_as_anything_but_json_is_an_unsupported_media_type(content_type):
    # Given a JSON body sent with a non-JSON Content-Type
    event = proxy_event('{"service": "digits-svm"}', {"Content-Type": content_type})
    # When it is screened
    error = refusal(event)
    # Then it is a 415 unsupported_media_type
    assert (error.status, error.code) == (415, "unsupported_media_type")


def test_json_body_without_content_type_is_accepted():
    # Given a JSON body and no Content-Type at all
    event = proxy_event('{"service": "digits-svm"}')
    event["headers"].pop("Content-Type")
    event["multiValueHeaders"].pop("Content-Type")
    # When it is screened, Then it passes unchanged
    assert edge.screen(event)["body"] == '{"service": "digits-svm"}'


def test_json_content_type_in_any_case_and_with_parameters_is_normalised():
    # Given a JSON media type spelled with capitals and a charset
    event = proxy_event('{"service": "digits-svm"}', {"Content-Type": "Application/JSON; charset=UTF-8"})
    # When it is screened
    screened = edge.screen(event)
    # Then the handler sees plain application/json (Powertools compares case-sensitively)
    assert screened["headers"]["Content-Type"] == "application/json"
    assert screened["multiValueHeaders"]["Content-Type"] == ["application/json"]


def test_empty_body_is_left_to_the_route():
    # Given a request without a body, with a non-JSON Content-Type
    event = proxy_event(None, {"Content-Type": "text/plain"})
    # When it is screened, Then it passes (a route that needs a body answers for itself)
    assert edge.screen(event)["body"] is None


@pytest.mark.parametrize("key", ["key\x00", "line\nbreak", "crlf\r\n", "tab\there", "del\x7f", "c1\x85", "\ud800"])
def test_idempotency_key_with_control_characters_is_refused(key):
    # Given an Idempotency-Key holding a control character (or a lone surrogate)
    event = proxy_event('{"service": "digits-svm"}', {"Idempotency-Key": key})
    # When it is screened, Then it is refused
    assert "Idempotency-Key must not contain control characters" in refusal(event).message


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_idempotency_key_of_wrong_length_is_refused(key):
    # Given an empty or over-long Idempotency-Key
    event = proxy_event('{"service": "digits-svm"}', {"Idempotency-Key": key})
    # When it is screened, Then it is refused naming the limits
    assert "1 to 255 characters" in refusal(event).message


def test_ordinary_idempotency_key_passes():
    # Given a UUID-like key, and one with non-ASCII letters
    for key in ("7f9c1f5e-2b1d-4c7e-9a0b-3d2f1e0c9b8a", "commande-été-42"):
        # When it is screened, Then it passes
        assert edge.screen(proxy_event("{}", {"Idempotency-Key": key}))["headers"]["Idempotency-Key"] == key


# --- the request models ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["10", True, 10.0, 10.5, [10]])
def test_deadline_seconds_must_be_a_json_integer(value):
    # Given deadlineSeconds as a string, a boolean, a float or something else
    # When the request is validated, Then it is refused without coercion
    assert "deadlineSeconds" in model_error(deadlineSeconds=value)


def test_deadline_seconds_as_integer_is_accepted():
    # Given deadlineSeconds as a JSON integer, When validated, Then it is kept
    assert PredictionRequest.model_validate({"service": "s", "deadlineSeconds": 10}).deadline_seconds == 10


@pytest.mark.parametrize("value", [1e200, -1e200, 10**40, -(10**38), 1e-131, 5e-324])
def test_metadata_numbers_dynamodb_cannot_store_are_refused(value):
    # Given metadata holding a number outside DynamoDB's range or precision
    # When the request is validated
    message = model_error(metadata={"claim": {"amount": value}})
    # Then the message names the place and the rule
    assert "metadata.claim.amount:" in message and "38 digits" in message and "1e-130" in message


@pytest.mark.parametrize("value", [10**38 - 1, -(10**38) + 1, 9.99e125, 1e-130, -1e-130, 0, 0.0, 1.5, True])
def test_metadata_numbers_dynamodb_can_store_are_accepted_and_serialise(value):
    # Given metadata holding a number at the edge of DynamoDB's range
    request = PredictionRequest.model_validate({"service": "s", "metadata": {"n": value}})
    # When it is serialised as the predictions adapter does (floats through their repr)
    number = request.metadata["n"]
    stored = number if isinstance(number, int) else Decimal(str(number))
    # Then boto3 serialises it without error
    assert TypeSerializer().serialize(stored)


@pytest.mark.parametrize("field", ["metadata", "input"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_from_python_callers_are_refused(field, value):
    # Given a Python caller passing a non-finite float in metadata or inline input
    # When the request is validated, Then it is refused as not JSON
    assert "NaN and Infinity are not JSON numbers" in model_error(**{field: {"x": [value]}})


@pytest.mark.parametrize("value", [1e200, 10**40, -(10**45)])
def test_huge_numbers_in_inline_input_are_accepted(value):
    # Given inline input (stored in S3 as JSON) holding numbers DynamoDB could not store
    request = PredictionRequest.model_validate({"service": "s", "input": {"x": value}})
    # When it is validated, Then it is kept exactly
    assert request.input == {"x": value}


def test_metadata_nested_at_the_limit_is_accepted():
    # Given metadata exactly MAX_METADATA_DEPTH levels deep (the metadata object is level 1)
    metadata = nested(MAX_METADATA_DEPTH)
    # When validated, Then it is kept
    assert PredictionRequest.model_validate({"service": "s", "metadata": metadata}).metadata == metadata


def test_metadata_nested_deeper_than_the_limit_is_refused_saying_the_limit():
    # Given metadata one level deeper than allowed (lists count as levels too)
    metadata = nested(MAX_METADATA_DEPTH, leaf=[1])
    # When validated, Then the message states the 16-level limit
    assert f"metadata is nested more than {MAX_METADATA_DEPTH} levels deep" in model_error(metadata=metadata)


@pytest.mark.parametrize(
    "fields",
    [
        {"metadata": {"note": "\ud800"}},
        {"metadata": {"\udfff": 1}},
        {"input": ["\udc00"]},
        {"service": "digits\ud800"},
        {"contentType": "image/png\ud800"},
        {"callback": {"type": "email", "address": "ann\ud800@example.com"}},
        {"callback": {"type": "webhook", "url": "https://example.com/\ud800"}},
    ],
)
def test_lone_surrogate_in_any_string_field_is_refused(fields):
    # Given a Python caller passing a lone surrogate in a string field
    # When the request is validated, Then it is refused
    with pytest.raises(ValidationError):
        PredictionRequest.model_validate({"service": "digits-svm", **fields})


@pytest.mark.parametrize(
    "address",
    [
        "ann@example.com\n",
        "ann@example.com\r\n",
        "ann@example.com\r\nBcc: eve@example.com",
        "Ann <ann@example.com>",
        "<ann@example.com>",
        "ann @example.com",
        "ann@example",
        "ann@@example.com",
        "a" * 65 + "@example.com",
    ],
)
def test_email_address_must_be_a_bare_address_and_nothing_more(address):
    # Given an e-mail callback with a trailing newline, CRLF, a display name or no real domain
    # When it is validated, Then it is refused as not an e-mail address
    with pytest.raises(ValidationError, match="is not an e-mail address"):
        EmailCallbackRequest.model_validate({"type": "email", "address": address})


@pytest.mark.parametrize("address", ["ann@example.com", "a.b+claims@mail.example.co.uk", "x@xn--p1ai.xn--p1ai"])
def test_bare_email_addresses_are_accepted(address):
    # Given an ordinary address, When validated, Then it is kept as given
    assert EmailCallbackRequest.model_validate({"type": "email", "address": address}).address == address


@pytest.mark.parametrize("url", ["https://example.com/\r\nX-Evil: 1", "https://example.com/a b", "https://ex\x00.com/"])
def test_webhook_url_with_whitespace_or_control_characters_is_refused(url):
    # Given a webhook URL carrying CRLF, a space or a NUL
    # When it is validated, Then it is refused
    with pytest.raises(ValidationError, match="must not contain spaces or control characters"):
        WebhookCallbackRequest.model_validate({"type": "webhook", "url": url})


@pytest.mark.parametrize("path", ["/predictions/abc\n", "/predictions/abc%0A\x00/cancel", "/services\r"])
def test_path_with_control_characters_names_no_route(path):
    # Given a path holding a control character (Powertools' `$` would match before a trailing newline)
    event = {**proxy_event(None), "path": path}
    # When it is screened
    error = refusal(event)
    # Then it is a 404 not_found, as for any path that names nothing
    assert (error.status, error.code) == (404, "not_found")
