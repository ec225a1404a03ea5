"""The local REST API's reading of Lambda authorizers: results, policies and security schemes."""

from __future__ import annotations

from typing import Any

import pytest

from chorus_local.api_gateway import AuthorizerResult, evaluate_policy
from chorus_local.cloudformation import TemplateError, _authorizers

ARN = "arn:aws:execute-api:us-east-1:123456789012:api1/v1/POST/predictions/p-1/cancel"


def statement(effect: str, resource: Any, action: Any = "execute-api:Invoke") -> dict[str, Any]:
    return {"Effect": effect, "Action": action, "Resource": resource}


@pytest.mark.parametrize(
    ("statements", "decision"),
    [
        ([statement("Allow", ARN)], "Allow"),
        ([statement("Allow", [ARN.replace("p-1", "*")])], "Allow"),
        ([statement("Allow", ARN.replace("p-1", "p-?"))], "Allow"),
        ([statement("Allow", "arn:aws:execute-api:us-east-1:123456789012:api1/v1/*/*")], "Allow"),
        ([statement("Allow", "arn:aws:execute-api:*")], "Allow"),  # * crosses slashes and colons
        ([statement("Allow", ARN, action="execute-api:*")], "Allow"),
        ([statement("Allow", ARN, action=["EXECUTE-API:invoke"])], "Allow"),  # actions ignore case
        ([statement("Allow", ARN.upper())], ""),  # resources do not
        ([statement("Allow", ARN.replace("p-1", "p-??"))], ""),  # ? is one character
        ([statement("Allow", ARN.replace("POST", "GET"))], ""),
        ([statement("Allow", ARN, action="execute-api:ManageConnections")], ""),
        ([], ""),  # no Allow: API Gateway's 403
        ([statement("Allow", "*"), statement("Deny", ARN)], "Deny"),  # explicit deny wins
        ([statement("Deny", ARN), statement("Allow", ARN)], "Deny"),
        ([statement("Deny", ARN.replace("POST", "GET")), statement("Allow", "*")], "Allow"),
    ],
)
def test_policy_evaluation(statements: list[dict[str, Any]], decision: str) -> None:
    assert evaluate_policy({"Version": "2012-10-17", "Statement": statements}, ARN) == decision


def test_a_single_statement_object_is_read_like_a_list() -> None:
    assert evaluate_policy({"Statement": statement("Allow", ARN)}, ARN) == "Allow"


def test_the_result_context_reaches_the_function_as_strings() -> None:
    result = AuthorizerResult.parse(
        {
            "principalId": "tok",
            "policyDocument": {"Statement": [statement("Allow", "*")]},
            "context": {"tenant": "acme", "n": 7, "ok": True, "none": None},
        }
    )
    assert result.context == {"tenant": "acme", "n": "7", "ok": "true"}


@pytest.mark.parametrize(
    "value",
    [
        None,
        [],
        {"policyDocument": {"Statement": []}},  # no principal
        {"principalId": "tok"},  # no policy
        {"principalId": "tok", "policyDocument": {"Statement": [statement("Maybe", "*")]}},
        {"principalId": "tok", "policyDocument": {"Statement": []}, "context": {"nested": {"a": 1}}},
        {"principalId": "tok", "policyDocument": {"Statement": []}, "usageIdentifierKey": 42},
    ],
)
def test_a_malformed_result_is_refused(value: Any) -> None:
    with pytest.raises(ValueError):
        AuthorizerResult.parse(value)


@pytest.mark.parametrize(
    ("scheme", "message"),
    [
        (
            {"type": "apiKey", "name": "Authorization", "in": "header", "x-amazon-apigateway-authtype": "awsSigv4"},
            "only Lambda authorizers and API keys",
        ),
        (
            {
                "x-amazon-apigateway-authtype": "cognito_user_pools",
                "x-amazon-apigateway-authorizer": {"type": "cognito_user_pools", "providerARNs": ["arn"]},
            },
            "no Cognito",
        ),
        (
            {
                "x-amazon-apigateway-authtype": "custom",
                "x-amazon-apigateway-authorizer": {
                    "type": "request",
                    "authorizerUri": "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/f/invocations",
                    "identitySource": "context.requestId",
                },
            },
            "identity source context.requestId",
        ),
    ],
)
def test_what_is_not_emulated_fails_loudly(scheme: dict[str, Any], message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        _authorizers(None, {"components": {"securitySchemes": {"Auth": scheme}}}, "Api")  # type: ignore[arg-type]


def test_the_usage_identifier_key_is_kept_and_an_api_key_scheme_is_recognised() -> None:
    result = AuthorizerResult.parse(
        {"principalId": "tok", "policyDocument": {"Statement": []}, "usageIdentifierKey": "k" * 40}
    )
    assert result.usage_identifier_key == "k" * 40
    assert (
        AuthorizerResult.parse({"principalId": "tok", "policyDocument": {"Statement": []}}).usage_identifier_key is None
    )
    # SAM's Auth.ApiKeyRequired writes this scheme: a method naming it requires an API key
    scheme = {"type": "apiKey", "name": "x-api-key", "in": "header"}
    assert _authorizers(None, {"components": {"securitySchemes": {"api_key": scheme}}}, "Api") == ({}, {"api_key"})  # type: ignore[arg-type]
