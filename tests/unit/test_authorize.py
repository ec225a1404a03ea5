"""The REST API's authorizer (chorus.domain.authorize and functions/authorizer) under moto."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta
from typing import Any

import pytest

from chorus.core.clock import utcnow
from chorus.model.tenancy import Scope
from tests.support import aws_resources
from tests.support.handlers import FakeLambdaContext, load_handler

METHOD_ARN = "arn:aws:execute-api:eu-west-1:111122223333:abc123/v1/GET/services"
BASE = "arn:aws:execute-api:eu-west-1:111122223333:abc123/v1/"


@pytest.fixture
def tenancy(aws: dict[str, str]) -> Any:
    """The tokens adapter over the tables template.yaml defines, with tenant `acme` (the `aws` fixture's)."""
    from chorus.adapters import tokens

    return tokens


def event(headers: dict[str, str] | None, method_arn: str = METHOD_ARN) -> dict[str, Any]:
    with open(aws_resources.REPO / "events" / "authorizer_request.json") as sample:
        request = json.load(sample)
    request["headers"] = headers
    request["multiValueHeaders"] = {k: [v] for k, v in (headers or {}).items()} or None
    request["methodArn"] = method_arn
    return request


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_valid_token_gets_its_routes_its_identity_and_is_touched(tenancy: Any) -> None:
    from chorus.domain import authorize

    # Given a token of tenant acme that may read
    token, plaintext = tenancy.create_token("acme", [Scope.READ], created_by="tests")
    # When the authorizer sees it
    result = authorize.authorize(event(bearer(plaintext)))
    # Then it allows exactly the read routes of this API and stage, says who is calling, and names
    # the tenant's usage plan (its API key, which API Gateway applies the tenant's limits by)
    from chorus.adapters import tenants

    assert result == {
        "principalId": token.token_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": [
                        BASE + "GET/predictions",
                        BASE + "GET/predictions/*",
                        BASE + "GET/services",
                        BASE + "GET/services/*",
                        BASE + "GET/webhooks/secret",
                    ],
                },
                {  # IAM's `*` matches `/`: GET/services/* would reach the admin-only monitoring route
                    "Action": "execute-api:Invoke",
                    "Effect": "Deny",
                    "Resource": [BASE + "POST/webhooks/secret/rotate", BASE + "GET/services/*/monitoring"],
                },
            ],
        },
        "context": {"tenant": "acme", "tokenId": token.token_id, "scopes": "predictions:read"},
        "usageIdentifierKey": tenants.require_tenant("acme").api_key,
    }
    # And the token's use is recorded
    touched = tenancy.find_token(token.token_id)
    assert touched.last_used_at is not None and utcnow() - touched.last_used_at < timedelta(minutes=1)


def test_the_handler_returns_the_policy_and_never_logs_the_token(tenancy: Any) -> None:
    from chorus.core.observability import logger

    token, plaintext = tenancy.create_token("acme", [Scope.CREATE], created_by="tests")
    handler = load_handler("authorizer").handler
    buffer = io.StringIO()
    handlers = [h for h in logger._logger.handlers if isinstance(h, logging.StreamHandler)]
    saved = [(h, h.setStream(buffer)) for h in handlers]
    try:
        result = handler(event(bearer(plaintext)), FakeLambdaContext())
        with pytest.raises(Exception, match=r"^Unauthorized$"):
            handler(event(bearer(plaintext[:-1] + "x")), FakeLambdaContext())
    finally:
        for h, stream in saved:
            if stream is not None:
                h.setStream(stream)
    assert result["principalId"] == token.token_id
    logs = buffer.getvalue()
    assert token.token_id in logs and "acme" in logs
    assert plaintext not in logs and plaintext.rsplit("_", 1)[1] not in logs


def test_a_lower_case_header_and_scheme_are_accepted(tenancy: Any) -> None:
    from chorus.domain import authorize

    token, plaintext = tenancy.create_token("acme", [Scope.READ], created_by="tests")
    result = authorize.authorize(event({"authorization": f"bearer {plaintext}"}))
    assert result["principalId"] == token.token_id


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"X-Other": "x"},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Bearer chr_0123456789ab_short"},
        {"Authorization": "chr_0123456789ab_" + "a" * 43},  # no scheme
    ],
    ids=lambda h: repr(h),
)
def test_a_missing_or_malformed_header_is_refused(tenancy: Any, headers: dict[str, str] | None) -> None:
    from chorus.domain import authorize

    with pytest.raises(authorize.Refused):
        authorize.authorize(event(headers))
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        load_handler("authorizer").handler(event(headers), FakeLambdaContext())


def test_an_unknown_token_is_refused(tenancy: Any) -> None:
    from chorus.domain import authorize

    with pytest.raises(authorize.Refused, match="unknown"):
        authorize.authorize(event(bearer("chr_0123456789ab_" + "a" * 43)))


def test_a_wrong_secret_is_refused(tenancy: Any) -> None:
    from chorus.domain import authorize

    _, plaintext = tenancy.create_token("acme", [Scope.READ], created_by="tests")
    token_id = plaintext.split("_")[1]
    with pytest.raises(authorize.Refused):
        authorize.authorize(event(bearer(f"chr_{token_id}_" + "b" * 43)))


def test_an_expired_token_is_refused(tenancy: Any) -> None:
    from chorus.domain import authorize

    _, plaintext = tenancy.create_token(
        "acme", [Scope.READ], created_by="tests", expires_at=utcnow() - timedelta(seconds=1)
    )
    with pytest.raises(authorize.Refused):
        authorize.authorize(event(bearer(plaintext)))


def test_a_revoked_token_is_refused_and_not_touched(tenancy: Any) -> None:
    from chorus.domain import authorize

    token, plaintext = tenancy.create_token("acme", [Scope.ADMIN], created_by="tests")
    tenancy.revoke_token(token.token_id, revoked_by="tests")
    with pytest.raises(authorize.Refused, match="revoked"):
        authorize.authorize(event(bearer(plaintext)))
    assert tenancy.find_token(token.token_id).last_used_at is None


@pytest.mark.parametrize(
    ("scopes", "routes"),
    [
        ([Scope.CREATE], ["POST/predictions", "POST/predictions/*/cancel", "POST/predictions/*/webhook/redeliver"]),
        (
            [Scope.READ],
            ["GET/predictions", "GET/predictions/*", "GET/services", "GET/services/*", "GET/webhooks/secret"],
        ),
        ([Scope.ADMIN], ["*/*"]),
        (
            [Scope.CREATE, Scope.READ],
            [
                "GET/predictions",
                "GET/predictions/*",
                "GET/services",
                "GET/services/*",
                "GET/webhooks/secret",
                "POST/predictions",
                "POST/predictions/*/cancel",
                "POST/predictions/*/webhook/redeliver",
            ],
        ),
        ([], []),
    ],
    ids=["create", "read", "admin", "create+read", "none"],
)
def test_the_policy_allows_exactly_the_routes_of_the_scopes(
    tenancy: Any, scopes: list[Scope], routes: list[str]
) -> None:
    from chorus.domain import authorize

    _, plaintext = tenancy.create_token("acme", scopes, created_by="tests")
    # For any route of the API (the result is cached per token and reused for other routes)
    request = event(bearer(plaintext), method_arn=BASE + "POST/predictions/p-1/cancel")
    statements = authorize.authorize(request)["policyDocument"]["Statement"]
    allowed = [r for s in statements if s["Effect"] == "Allow" for r in s["Resource"]]
    assert allowed == sorted(BASE + route for route in routes)
    denied = [r for s in statements if s["Effect"] == "Deny" for r in s["Resource"]]
    # A token without admin is denied the admin-only routes its patterns would otherwise match
    assert denied == ([] if not routes or Scope.ADMIN in scopes else [BASE + r for r in authorize.ADMIN_ONLY_ROUTES])
    assert all(s["Action"] == "execute-api:Invoke" for s in statements)


def test_the_api_arn_comes_from_the_method_arn() -> None:
    from chorus.domain import authorize

    assert authorize.api_arn("arn:aws:execute-api:us-east-1:123456789012:a1/v1/GET/") == (
        "arn:aws:execute-api:us-east-1:123456789012:a1/v1/"
    )
    with pytest.raises(ValueError):
        authorize.api_arn("arn:aws:lambda:us-east-1:123456789012:function:f")
