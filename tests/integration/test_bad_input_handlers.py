"""Bad input through the real API handlers (new-prediction and results), fed API Gateway proxy
events built from events/*.json, against moto: every one gets a 4xx in the API's error shape,
never a 5xx, and a refused create stores nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import boto3
import pytest

from chorus.adapters import payloads
from chorus.core import clients
from tests.support import aws_resources
from tests.support.aws_resources import load_event
from tests.support.handlers import FakeLambdaContext, load_handler

KNOWN_ID = "4f1c2d7e9a8b4c3d2e1f0a9b8c7d6e5f"
ROUTES = ["create", "get", "cancel", "redeliver", "services"]


@pytest.fixture
def handlers(aws) -> dict[str, ModuleType]:
    return {"new_prediction": load_handler("new_prediction"), "results": load_handler("results")}


@pytest.fixture
def dynamodb_calls(aws) -> list[str]:
    """The DynamoDB operations the handlers call (moto does not enforce DynamoDB's 2 KB key limit)."""
    calls: list[str] = []
    clients.client("dynamodb").meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
    )
    return calls


def set_header(event: dict[str, Any], name: str, value: str) -> None:
    """Set a header as API Gateway delivers it: in `headers` and in `multiValueHeaders`."""
    for existing in [k for k in event["headers"] if k.lower() == name.lower()]:
        event["headers"].pop(existing)
        event["multiValueHeaders"].pop(existing, None)
    event["headers"][name] = value
    event["multiValueHeaders"][name] = [value]


def route_event(route: str, prediction_id: str = KNOWN_ID) -> tuple[str, dict[str, Any]]:
    """(function, proxy event) for one API route, from the sample events."""
    if route == "create":
        return "new_prediction", load_event("new_prediction_create.json")
    if route == "services":
        return "results", load_event("results_list_services.json")
    function, name, suffix = {
        "get": ("results", "results_get_prediction.json", ""),
        "cancel": ("new_prediction", "new_prediction_cancel.json", "/cancel"),
        "redeliver": ("new_prediction", "new_prediction_cancel.json", "/webhook/redeliver"),
    }[route]
    event = load_event(name)
    event["resource"] = event["requestContext"]["resourcePath"] = "/predictions/{id}" + suffix
    event["path"] = f"/predictions/{prediction_id}{suffix}"
    event["pathParameters"] = {"id": prediction_id}
    return function, event


def call(handlers: dict[str, ModuleType], function: str, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = handlers[function].handler(event, FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"])


def send(
    handlers: dict[str, ModuleType],
    route: str,
    body: str | bytes | dict[str, Any] | None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """One request: a dict body is sent as JSON, bytes base64-encoded as API Gateway does."""
    function, event = route_event(route)
    if isinstance(body, bytes):
        event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    else:
        event["body"] = json.dumps(body) if isinstance(body, dict) else body
    for name, value in (headers or {}).items():
        set_header(event, name, value)
    return call(handlers, function, event)


def create(handlers: dict[str, ModuleType], body: str | bytes | dict[str, Any], **headers: str):
    return send(handlers, "create", body, {name.replace("_", "-"): value for name, value in headers.items()})


def assert_refused(result: tuple[int, dict[str, Any]], status: int, code: str, fragment: str = "") -> None:
    got_status, body = result
    assert (got_status, set(body), set(body["error"])) == (status, {"error"}, {"code", "message"}), body
    assert body["error"]["code"] == code
    assert fragment in body["error"]["message"]


def assert_nothing_stored() -> None:
    table = boto3.client("dynamodb").scan(TableName=aws_resources.TABLE, Select="COUNT")["Count"]
    keys = boto3.client("dynamodb").scan(TableName=aws_resources.IDEMPOTENCY_TABLE, Select="COUNT")["Count"]
    objects = boto3.client("s3").list_objects_v2(Bucket=aws_resources.BUCKET)["KeyCount"]
    assert (table, keys, objects) == (0, 0, 0)


def stored_input(prediction_id: str) -> bytes:
    return bytes(
        boto3.client("s3")
        .get_object(Bucket=aws_resources.BUCKET, Key=payloads.upload_key(aws_resources.TENANT, prediction_id))["Body"]
        .read()
    )


def deep_json(levels: int) -> str:
    return '{"service": "digits-svm", "metadata": {"a": ' + "[" * levels + "]" * levels + "}}"


def with_metadata(depth: int) -> dict[str, Any]:
    metadata: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        metadata = {"a": metadata}
    return {"service": "digits-forest", "contentType": "image/png", "metadata": metadata}


UPLOAD = {"service": "digits-forest", "contentType": "image/png"}


# --- 1. a body that is not UTF-8 ------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_base64_body_that_is_not_utf8_is_400_on_every_route(handlers, route):
    # Given a body of Latin-1 bytes, which API Gateway hands over base64-encoded
    body = '{"service": "digits-svm", "metadata": {"city": "Zürich"}}'.encode("latin-1")
    # When it is sent to the route
    result = send(handlers, route, body)
    # Then it is a 400 invalid_request saying it is not UTF-8, and nothing is stored
    assert_refused(result, 400, "invalid_request", "not UTF-8")
    assert_nothing_stored()


def test_text_body_that_is_not_utf8_is_400(handlers):
    # Given a text body carrying undecodable bytes (surrogate-escaped), not marked base64
    body = b'{"service": "digits-svm\xff"}'.decode("utf-8", "surrogateescape")
    # When it is sent to POST /predictions, Then it is a 400 and nothing is stored
    assert_refused(create(handlers, body), 400, "invalid_request", "not UTF-8")
    assert_nothing_stored()


def test_base64_utf8_body_is_accepted(handlers):
    # Given a valid JSON body that API Gateway base64-encoded
    body = json.dumps({**UPLOAD, "metadata": {"city": "Zürich"}}).encode()
    # When it is submitted
    status, created = create(handlers, body)
    # Then the prediction is created with the text as sent
    assert status == 202 and created["metadata"] == {"city": "Zürich"}


# --- 2. JSON nested 1,000 levels ------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_json_nested_a_thousand_levels_is_400_on_every_route(handlers, route):
    # Given a JSON body nested 1,000 levels deep
    # When it is sent to the route
    result = send(handlers, route, deep_json(1000))
    # Then it is a 400 invalid_request naming the depth limit, and nothing is stored
    assert_refused(result, 400, "invalid_request", "nested more than 64 levels")
    assert_nothing_stored()


# --- 3. numbers DynamoDB cannot store, and NaN / Infinity ------------------------------------------


@pytest.mark.parametrize("number", ["1e200", "-1e200", "1" + "0" * 40, "1e-200"])
def test_metadata_number_dynamodb_cannot_store_is_400(handlers, number):
    # Given metadata holding a number beyond DynamoDB's 38 digits or 1e-130..1e126 magnitude
    body = '{"service": "digits-forest", "contentType": "image/png", "metadata": {"amount": ' + number + "}}"
    # When it is submitted
    result = create(handlers, body)
    # Then it is a 400 naming the field and the rule, and nothing is stored
    assert_refused(result, 400, "invalid_request", "metadata.amount:")
    assert "38 digits" in result[1]["error"]["message"]
    assert_nothing_stored()


@pytest.mark.parametrize(
    ("metadata", "place"), [({"": 1}, "metadata:"), ({"order": {"lines": [{"": "x"}]}}, "metadata.order.lines[0]:")]
)
def test_metadata_with_an_empty_key_is_400(handlers, metadata, place):
    # Given metadata with an empty key at any depth (a record holding one no longer read back: a 502
    # on every read and listing of it, on the local stack)
    # When it is submitted
    result = create(handlers, {**UPLOAD, "metadata": metadata})
    # Then it is a 400 naming the place, and nothing is stored
    assert_refused(result, 400, "invalid_request", f"{place} an empty key cannot be stored")
    assert_nothing_stored()


@pytest.mark.parametrize("field", ["metadata", "input"])
@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_or_infinity_in_metadata_or_input_is_400(handlers, field, constant):
    # Given metadata or inline input holding NaN or Infinity (not JSON)
    body = '{"service": "digits-svm", "' + field + '": {"x": ' + constant + "}}"
    # When it is submitted
    result = create(handlers, body)
    # Then it is a 400 naming the constant, and nothing is stored
    assert_refused(result, 400, "invalid_request", f"{constant}, which is not JSON")
    assert_nothing_stored()


def test_number_too_large_for_a_float_in_input_is_400(handlers):
    # Given inline input holding 1e400 (json.loads would store it as Infinity, not JSON)
    # When it is submitted, Then it is a 400 and nothing is stored
    assert_refused(create(handlers, '{"service": "digits-svm", "input": {"x": 1e400}}'), 400, "invalid_request")
    assert_nothing_stored()


def test_huge_numbers_in_inline_input_are_stored_exactly_in_s3(handlers):
    # Given inline input holding 1e200 and a 41-digit integer (fine in S3's JSON, not in DynamoDB)
    big = "1" + "0" * 40
    body = '{"service": "digits-svm", "input": {"pixels": [], "scale": 1e200, "id": ' + big + "}}"
    # When it is submitted
    status, created = create(handlers, body)
    # Then it is accepted and S3 holds exactly those numbers
    assert status == 202
    assert json.loads(stored_input(created["id"])) == {"pixels": [], "scale": 1e200, "id": int(big)}


# --- 4. a lone surrogate --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '{"service": "digits-\\ud800svm"}',
        '{"service": "digits-forest", "contentType": "image/png\\udfff"}',
        '{"service": "digits-forest", "contentType": "image/png", "metadata": {"note": "\\ud800"}}',
        '{"service": "digits-forest", "contentType": "image/png", "metadata": {"\\ud800": "key"}}',
        '{"service": "digits-svm", "input": {"text": "a\\udc00b"}}',
        '{"service": "digits-forest", "callback": {"type": "email", "address": "ann\\ud800@example.com"}}',
        '{"service": "digits-forest", "callback": {"type": "webhook", "url": "https://example.com/\\ud800"}}',
    ],
)
def test_lone_surrogate_in_any_string_field_is_400(handlers, body):
    # Given a request whose string field (or metadata key) holds a lone surrogate
    # When it is submitted
    result = create(handlers, body)
    # Then it is a 400 saying so, and nothing is stored
    assert_refused(result, 400, "invalid_request", "lone surrogate")
    assert_nothing_stored()


# --- 5. metadata nested deeper than DynamoDB allows -------------------------------------------------


def test_metadata_nested_seventeen_levels_is_400_saying_the_limit(handlers):
    # Given metadata 17 levels deep (the limit is 16; DynamoDB nests at most 32 per item)
    # When it is submitted
    result = create(handlers, with_metadata(17))
    # Then it is a 400 stating the 16-level limit, and nothing is stored
    assert_refused(result, 400, "invalid_request", "metadata is nested more than 16 levels deep")
    assert_nothing_stored()


def test_metadata_nested_sixteen_levels_is_stored(handlers):
    # Given metadata exactly 16 levels deep
    request = with_metadata(16)
    # When it is submitted
    status, created = create(handlers, request)
    # Then it is accepted and echoed back as sent
    assert status == 202 and created["metadata"] == request["metadata"]


# --- 6. prediction ids that cannot be ours ------------------------------------------------------------


@pytest.mark.parametrize("route", ["get", "cancel", "redeliver"])
@pytest.mark.parametrize(
    "prediction_id",
    ["a" * 2100, "..", "..%2F..%2Fetc%2Fpasswd", "id.with.dots", "naïve", "x" * 65, "%00", "id\n"],
)
def test_id_that_cannot_be_a_prediction_is_404_not_found(handlers, dynamodb_calls, route, prediction_id):
    # Given a path naming an id outside [A-Za-z0-9_-]{1,64} (ours are 32 hex characters)
    function, event = route_event(route, prediction_id)
    # When it is requested
    result = call(handlers, function, event)
    # Then it is a 404 not_found, as for an unknown id, and DynamoDB (which refuses keys over 2 KB
    # with a ValidationException, a 5xx) was never asked
    assert_refused(result, 404, "not_found")
    assert dynamodb_calls == []


@pytest.mark.parametrize("route", ["get", "cancel", "redeliver"])
def test_id_with_a_path_traversal_is_404_not_found(handlers, dynamodb_calls, route):
    # Given a path whose id segment decodes to "../" (so the route no longer matches)
    function, event = route_event(route, "../../etc/passwd")
    # When it is requested, Then it is a 404 not_found in the API's shape, without a table read
    assert_refused(call(handlers, function, event), 404, "not_found")
    assert dynamodb_calls == []


@pytest.mark.parametrize("route", ["get", "cancel", "redeliver"])
def test_well_formed_unknown_id_is_404_not_found(handlers, dynamodb_calls, route):
    # Given a well-formed id no prediction has
    function, event = route_event(route, "0" * 32)
    # When it is requested, Then it is the same 404 not_found, after looking it up
    assert_refused(call(handlers, function, event), 404, "not_found")
    assert "GetItem" in dynamodb_calls


# --- 7. a body that is not sent as JSON ---------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b"],
)
def test_non_json_content_type_on_create_is_415_unsupported_media_type(handlers, content_type):
    # Given a JSON body sent with a non-JSON Content-Type
    # When it is submitted
    result = create(handlers, UPLOAD, Content_Type=content_type)
    # Then it is a 415 unsupported_media_type in the API's shape, and nothing is stored
    assert_refused(result, 415, "unsupported_media_type", "application/json")
    assert_nothing_stored()


def test_text_plain_content_type_without_a_body_is_415_unsupported_media_type(handlers):
    # Given POST /predictions with no body and Content-Type text/plain
    # When it is submitted, Then Powertools' refusal is answered in the API's shape
    assert_refused(create(handlers, None, Content_Type="text/plain"), 415, "unsupported_media_type")


def test_json_body_without_content_type_is_accepted(handlers):
    # Given a JSON body and no Content-Type header
    function, event = route_event("create")
    event["body"] = json.dumps(UPLOAD)
    event["headers"].pop("Content-Type")
    event["multiValueHeaders"].pop("Content-Type")
    # When it is submitted, Then the prediction is created
    assert call(handlers, function, event)[0] == 202


def test_json_content_type_with_capitals_and_charset_is_accepted(handlers):
    # Given Content-Type: Application/JSON; charset=UTF-8
    # When a JSON body is submitted with it, Then the prediction is created
    assert create(handlers, UPLOAD, Content_Type="Application/JSON; charset=UTF-8")[0] == 202


# --- 8. strict types ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["10", True, 10.0, "1e1", [10], {"seconds": 10}])
def test_deadline_seconds_that_is_not_an_integer_is_400(handlers, value):
    # Given deadlineSeconds as a string, a boolean, a float, a list or an object
    # When it is submitted
    result = create(handlers, {**UPLOAD, "deadlineSeconds": value})
    # Then it is a 400 naming the field (no coercion), and nothing is stored
    assert_refused(result, 400, "invalid_request", "deadlineSeconds")
    assert_nothing_stored()


@pytest.mark.parametrize(
    "fields",
    [
        {"service": 7},
        {"contentType": True},
        {"callback": {"type": "webhook", "url": "https://example.com/hook", "events": "completed"}},
        {"metadata": ["not", "an", "object"]},
    ],
)
def test_fields_of_the_wrong_json_type_are_400(handlers, fields):
    # Given a field of the wrong JSON type
    # When it is submitted, Then it is a 400 and nothing is stored
    assert_refused(create(handlers, {**UPLOAD, **fields}), 400, "invalid_request")
    assert_nothing_stored()


@pytest.mark.parametrize("url", ["http://[abc/hook", "https://[::1/hook", "https://user@[2001:db8::1/hook"])
def test_webhook_url_that_urllib_cannot_split_is_400(handlers, url):
    # Given a webhook URL whose bracketed host is no IPv6 address (urlsplit raises: it was a 502)
    # When it is submitted
    result = create(handlers, {**UPLOAD, "callback": {"type": "webhook", "url": url}})
    # Then it is a 400 saying it is not a URL, and nothing is stored
    assert_refused(result, 400, "invalid_request", "callback.url is not a URL")
    assert_nothing_stored()


# --- 9. e-mail addresses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["ann@example.com\n", "ann@example.com\r\n", "ann@example.com\r\nBcc: eve@example.com", "Ann <ann@example.com>"],
)
def test_email_callback_that_is_not_a_bare_address_is_400(handlers, address):
    # Given an e-mail callback with a trailing newline, CRLF (header injection) or a display name
    # When it is submitted
    result = create(handlers, {**UPLOAD, "callback": {"type": "email", "address": address}})
    # Then it is a 400 saying it is not an e-mail address, and nothing is stored
    assert_refused(result, 400, "invalid_request", "is not an e-mail address")
    assert_nothing_stored()


# --- headers ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["claim\x00", "claim\x01-77", "claim\t77", "claim\x7f", "claim\x85"])
def test_idempotency_key_with_control_characters_is_400(handlers, key):
    # Given an Idempotency-Key header holding a control character
    # When a valid body is submitted with it
    result = create(handlers, UPLOAD, Idempotency_Key=key)
    # Then it is a 400, and neither a prediction nor an idempotency record is stored
    assert_refused(result, 400, "invalid_request", "Idempotency-Key")
    assert_nothing_stored()


def test_prefer_wait_with_an_absurd_number_is_ignored_not_a_5xx(handlers):
    # Given Prefer: wait=<5,000 digits> (int() of it raises past Python's digit limit)
    # When inline input is submitted with it
    status, _ = create(handlers, {"service": "digits-svm", "input": {"pixels": []}}, Prefer="wait=" + "9" * 5000)
    # Then the preference is ignored and the prediction is created
    assert status == 202


# --- never a 5xx ------------------------------------------------------------------------------------------


BAD_BODIES: list[Callable[[], str | bytes]] = [
    lambda: b"\xff\xfe\x00",
    lambda: deep_json(1000),
    lambda: '{"service": "digits-svm", "metadata": {"x": NaN}}',
    lambda: '{"service": "digits-svm", "metadata": {"x": "\\ud800"}}',
    lambda: "{not json",
    lambda: "[]",
    lambda: "null",
    lambda: '"a string"',
    lambda: '{"service": "digits-svm", "input": ' + "9" * 5000 + "}",
]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("make_body", BAD_BODIES)
def test_no_bad_body_is_ever_a_5xx(handlers, route, make_body):
    # Given one of the bad bodies
    # When it is sent to any route
    status, body = send(handlers, route, make_body())
    # Then the answer is not a server error, and any error is in the API's shape
    assert status < 500
    if status >= 400:
        assert set(body["error"]) == {"code", "message"}
