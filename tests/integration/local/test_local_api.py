"""The REST API: routes from `Type: Api` events, API Gateway's proxy event and its own errors."""

from __future__ import annotations

import base64
import json

import requests

from chorus_local import api_gateway


def test_request_becomes_an_api_gateway_proxy_event(local_stack):
    # When a client calls a templated route through the stage prefix
    response = requests.get(
        f"{local_stack.api_url}/v1/items/42?tag=a&tag=b&one=1",
        headers={"X-Custom": "yes", "User-Agent": "tests"},
        timeout=30,
    )
    # Then the proxy response is mapped back (status, headers, multi-value headers)
    assert response.status_code == 201
    assert response.headers["X-Echo"] == "yes"
    assert response.headers["x-amzn-RequestId"]
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    # And the function got API Gateway's REST proxy event (payload format 1.0)
    event = response.json()
    assert event["resource"] == "/items/{id}"
    assert event["path"] == "/items/42"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"id": "42"}
    assert event["queryStringParameters"] == {"tag": "b", "one": "1"}
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b"], "one": ["1"]}
    assert event["headers"]["X-Custom"] == "yes"
    assert event["multiValueHeaders"]["X-Custom"] == ["yes"]
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert event["stageVariables"] is None
    assert event["body"] is None and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["resourcePath"] == "/items/{id}"
    assert context["path"] == "/v1/items/42"
    assert context["stage"] == "v1"
    assert context["httpMethod"] == "GET"
    assert context["accountId"] == "123456789012"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["identity"]["userAgent"] == "tests"
    assert context["requestId"] == response.headers["x-amzn-RequestId"]
    assert isinstance(context["requestTimeEpoch"], int)
    assert context["protocol"].startswith("HTTP/")


def test_paths_work_without_the_stage_prefix_and_greedy_proxy_matches(local_stack):
    event = requests.post(f"{local_stack.api_url}/items", data="{}", timeout=30).json()
    assert event["resource"] == "/items" and event["body"] == "{}"
    event = requests.delete(f"{local_stack.api_url}/v1/files/a/b.txt", timeout=30).json()
    assert event["resource"] == "/files/{proxy+}"
    assert event["pathParameters"] == {"proxy": "a/b.txt"}


def test_binary_body_is_base64_encoded_and_binary_response_decoded(local_stack):
    payload = bytes(range(256))
    response = requests.post(
        f"{local_stack.api_url}/items",
        data=payload,
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    event = response.json()
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload
    binary = requests.get(f"{local_stack.api_url}/items/1?mode=binary", timeout=30)
    assert binary.content == b"\x00\xffbinary"


def test_unknown_route_or_method_answers_like_api_gateway(local_stack):
    for response in (
        requests.get(f"{local_stack.api_url}/v1/nothing-here", timeout=30),
        requests.put(f"{local_stack.api_url}/items/1", timeout=30),
    ):
        assert response.status_code == 403
        assert response.json() == {"message": "Missing Authentication Token"}
        assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_function_error_or_malformed_response_is_a_502(local_stack):
    for mode in ("raise", "malformed"):
        response = requests.get(f"{local_stack.api_url}/items/1?mode={mode}", timeout=30)
        assert response.status_code == 502
        assert json.loads(response.text) == {"message": "Internal server error"}


def test_integration_longer_than_the_timeout_is_a_504(local_stack, monkeypatch):
    # Given an integration timeout shortened from API Gateway's 29 s to 0.5 s
    monkeypatch.setattr(api_gateway, "INTEGRATION_TIMEOUT_SECONDS", 0.5)
    # When the function takes 1.5 s
    response = requests.get(f"{local_stack.api_url}/items/1?mode=sleep&seconds=1.5", timeout=30)
    # Then the client gets API Gateway's timeout answer
    assert response.status_code == 504
    assert response.json() == {"message": "Endpoint request timed out"}
