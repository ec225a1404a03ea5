"""Bad input, end to end over HTTP against the local stack: raw bytes, raw paths and raw headers
(http.client sends them as given; requests would normalise some). Each gets a 4xx in the API's
shape `{"error": {"code", "message"}}`, never a 5xx, and a refused create stores nothing."""

from __future__ import annotations

import http.client
import json
import uuid
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from tests.e2e.conftest import RunningStack

UPLOAD = {"service": "digits-forest", "contentType": "image/png"}
UNKNOWN_ID = "0" * 32
ROUTES = [
    ("POST", "/predictions"),
    ("GET", f"/predictions/{UNKNOWN_ID}"),
    ("POST", f"/predictions/{UNKNOWN_ID}/cancel"),
    ("POST", f"/predictions/{UNKNOWN_ID}/webhook/redeliver"),
    ("GET", "/services"),
]


class Api:
    """The stack's REST API, spoken to byte for byte."""

    def __init__(self, stack: RunningStack) -> None:
        self.stack = stack
        url = urlsplit(stack.api_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80

    def request(
        self, method: str, path: str, body: bytes | str | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            data = body.encode() if isinstance(body, str) else body
            connection.putrequest(method, path, skip_accept_encoding=True)
            # Authenticated as the local tenant unless the test sends an Authorization of its own.
            sent = {**self.stack.auth_headers, **({"Content-Type": "application/json"} if data is not None else {})}
            sent |= headers or {}
            for name, value in sent.items():
                connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(data or b"")))
            connection.endheaders(data)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw.decode(errors="replace")

    def create(self, body: bytes | str | dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, Any]:
        return self.request("POST", "/predictions", json.dumps(body) if isinstance(body, dict) else body, headers)

    def stored_with(self, marker: str) -> int:
        """Predictions in the stack's table whose metadata carries `marker`."""
        dynamodb = self.stack.client("dynamodb")
        table = next(name for name in dynamodb.list_tables()["TableNames"] if "Predictions" in name)
        return int(
            dynamodb.scan(
                TableName=table,
                FilterExpression="metadata.probe = :m",
                ExpressionAttributeValues={":m": {"S": marker}},
                Select="COUNT",
            )["Count"]
        )


@pytest.fixture
def api(stack) -> Api:
    return Api(stack)


@pytest.fixture
def marker() -> str:
    return f"bad-input-{uuid.uuid4().hex}"


def assert_refused(result: tuple[int, Any], status: int, code: str, fragment: str = "") -> None:
    got_status, body = result
    assert got_status == status, body
    assert isinstance(body, dict) and set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    assert fragment in body["error"]["message"], body


def deep_json(levels: int) -> str:
    return '{"service": "digits-svm", "metadata": {"a": ' + "[" * levels + "]" * levels + "}}"


# --- 1 and 2: bodies that are not UTF-8, or too deep, on every route -----------------------------------


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_body_that_is_not_utf8_is_400_on_every_route(api, method, path):
    # Given a body in Latin-1, not UTF-8 (the gateway hands it to Lambda base64-encoded)
    body = '{"service": "digits-svm", "metadata": {"city": "Zürich"}}'.encode("latin-1")
    # When it is sent to the route
    result = api.request(method, path, body)
    # Then it is a 400 invalid_request saying it is not UTF-8
    assert_refused(result, 400, "invalid_request", "not UTF-8")


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_json_nested_a_thousand_levels_is_400_on_every_route(api, method, path):
    # Given a JSON body nested 1,000 levels deep
    # When it is sent to the route
    result = api.request(method, path, deep_json(1000))
    # Then it is a 400 invalid_request naming the depth limit
    assert_refused(result, 400, "invalid_request", "nested more than 64 levels")


# --- 3, 4, 5: what metadata and inline input may hold ----------------------------------------------------


@pytest.mark.parametrize("number", ["1e200", "1" + "0" * 40, "NaN", "Infinity", "-Infinity"])
def test_metadata_number_dynamodb_cannot_store_is_400_and_not_stored(api, marker, number):
    # Given metadata holding 1e200, a 41-digit integer, NaN or ±Infinity
    body = json.dumps({**UPLOAD, "metadata": {"probe": marker}})[:-2] + ', "amount": ' + number + "}}"
    # When it is submitted
    result = api.create(body)
    # Then it is a 400 invalid_request, and no prediction was stored
    assert_refused(result, 400, "invalid_request")
    assert api.stored_with(marker) == 0


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_or_infinity_in_inline_input_is_400(api, constant):
    # Given inline input holding a constant that is not JSON
    # When it is submitted, Then it is a 400 naming it
    result = api.create('{"service": "digits-svm", "input": {"x": ' + constant + "}}")
    assert_refused(result, 400, "invalid_request", f"{constant}, which is not JSON")


def test_huge_numbers_in_inline_input_are_accepted(api):
    # Given inline input holding 1e200 and a 41-digit integer (S3 stores any JSON number)
    body = '{"service": "digits-svm", "input": {"pixels": [1e200, ' + "1" + "0" * 40 + "]}}"
    # When it is submitted, Then the prediction is created
    status, created = api.create(body)
    assert status in (200, 202), created


@pytest.mark.parametrize(
    "body",
    [
        '{"service": "digits-forest", "contentType": "image/png", "metadata": {"probe": "M", "note": "\\ud800"}}',
        '{"service": "digits-forest", "contentType": "image/png", "metadata": {"probe": "M", "\\udfff": 1}}',
        '{"service": "digits-\\ud800forest", "metadata": {"probe": "M"}}',
    ],
)
def test_lone_surrogate_in_a_string_is_400_and_not_stored(api, marker, body):
    # Given a string field or metadata key holding a lone surrogate (a JSON escape)
    # When it is submitted
    result = api.create(body.replace('"M"', json.dumps(marker)))
    # Then it is a 400 saying so, and nothing was stored
    assert_refused(result, 400, "invalid_request", "lone surrogate")
    assert api.stored_with(marker) == 0


def test_surrogate_encoded_as_raw_bytes_is_400(api):
    # Given a surrogate written as raw (CESU-8) bytes, which are not UTF-8
    body = b'{"service": "digits-forest", "metadata": {"note": "\xed\xa0\x80"}}'
    # When it is submitted, Then it is a 400: the body is not UTF-8
    assert_refused(api.create(body), 400, "invalid_request", "not UTF-8")


def test_metadata_nested_seventeen_levels_is_400_saying_the_limit(api, marker):
    # Given metadata 17 levels deep (the limit is 16)
    metadata: dict[str, Any] = {"probe": marker}
    for _ in range(16):
        metadata = {"probe": marker, "a": metadata}
    # When it is submitted
    result = api.create({**UPLOAD, "metadata": metadata})
    # Then it is a 400 stating the limit, and nothing was stored
    assert_refused(result, 400, "invalid_request", "metadata is nested more than 16 levels deep")
    assert api.stored_with(marker) == 0


# --- 6: ids that cannot be ours ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "segment", ["a" * 2100, "..", "%2e%2e", quote("naïve"), "id.with.dots", "x" * 65, "%00", "%0A"]
)
@pytest.mark.parametrize("method,suffix", [("GET", ""), ("POST", "/cancel"), ("POST", "/webhook/redeliver")])
def test_id_that_cannot_be_a_prediction_is_404_not_found(api, segment, method, suffix):
    # Given a path whose id is outside [A-Za-z0-9_-]{1,64}: over 2 KB, "..", non-ASCII, a NUL...
    # When it is requested
    result = api.request(method, f"/predictions/{segment}{suffix}")
    # Then it is a 404 not_found, as for an unknown id
    assert_refused(result, 404, "not_found")


@pytest.mark.parametrize("method,suffix", [("POST", "/cancel"), ("POST", "/webhook/redeliver")])
def test_id_climbing_out_with_dot_dot_slash_is_404_not_found(api, method, suffix):
    # Given a raw path /predictions/../<route> (no client-side normalisation)
    # When it is requested
    result = api.request(method, f"/predictions/..{suffix}")
    # Then it is a 404 not_found, never a 5xx
    assert_refused(result, 404, "not_found")


def test_unknown_well_formed_id_is_the_same_404(api):
    # Given a well-formed id nobody has, When it is read, Then it is the same 404 not_found
    assert_refused(api.request("GET", f"/predictions/{UNKNOWN_ID}"), 404, "not_found")


# --- 7: the media type ------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_create_with_a_non_json_content_type_is_415_in_the_api_shape(api, marker, content_type):
    # Given a JSON body sent as something else
    body = json.dumps({**UPLOAD, "metadata": {"probe": marker}})
    # When it is submitted
    result = api.create(body, {"Content-Type": content_type})
    # Then it is a 415 unsupported_media_type in the API's error shape, and nothing was stored
    assert_refused(result, 415, "unsupported_media_type", "application/json")
    assert api.stored_with(marker) == 0


def test_create_without_a_content_type_is_accepted(api):
    # Given a JSON body and no Content-Type header at all
    connection = http.client.HTTPConnection(api.host, api.port, timeout=60)
    body = json.dumps(UPLOAD).encode()
    connection.request(
        "POST", "/predictions", body=body, headers={"Content-Length": str(len(body)), **api.stack.auth_headers}
    )
    # When it is submitted
    status = connection.getresponse().status
    connection.close()
    # Then the prediction is created
    assert status == 202


# --- 8 and 9: strict types and e-mail addresses ----------------------------------------------------------


@pytest.mark.parametrize("value", ["10", True, 10.0])
def test_deadline_seconds_that_is_not_an_integer_is_400(api, marker, value):
    # Given deadlineSeconds as a string, a boolean or a float
    # When it is submitted
    result = api.create({**UPLOAD, "deadlineSeconds": value, "metadata": {"probe": marker}})
    # Then it is a 400 naming the field, and nothing was stored
    assert_refused(result, 400, "invalid_request", "deadlineSeconds")
    assert api.stored_with(marker) == 0


@pytest.mark.parametrize(
    "address",
    ["ann@example.com\n", "ann@example.com\r\n", "ann@example.com\r\nBcc: eve@example.com", "Ann <ann@example.com>"],
)
def test_email_callback_that_is_not_a_bare_address_is_400(api, marker, address):
    # Given an e-mail callback with a trailing newline, CRLF or a display name
    # When it is submitted
    result = api.create({**UPLOAD, "callback": {"type": "email", "address": address}, "metadata": {"probe": marker}})
    # Then it is a 400 saying it is not an e-mail address, and nothing was stored
    assert_refused(result, 400, "invalid_request", "is not an e-mail address")
    assert api.stored_with(marker) == 0


# --- headers ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["claim\x01-77", "claim\x7f", "claim\x1b[31m"])
def test_idempotency_key_with_control_characters_is_400(api, marker, key):
    # Given an Idempotency-Key header holding a control character
    # When a valid request is submitted with it
    result = api.create({**UPLOAD, "metadata": {"probe": marker}}, {"Idempotency-Key": key})
    # Then it is a 400 naming the header, and nothing was stored
    assert_refused(result, 400, "invalid_request", "Idempotency-Key")
    assert api.stored_with(marker) == 0
