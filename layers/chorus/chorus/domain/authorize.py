"""Who is calling: the REST API's REQUEST authorizer turns a bearer token into an IAM policy.

`Authorization: Bearer chr_<id>_<secret>` (header name and scheme in any case) is looked up by id
and checked against its stored hash; a missing, malformed, unknown, expired or revoked token is
`Refused` (the handler raises API Gateway's `Unauthorized`, a 401). An accepted token gets a
policy that allows exactly the routes of its scopes, for the whole API, because API Gateway caches
the result per token and evaluates later requests (other routes, other ids) against it: a route
its scopes do not allow is API Gateway's 403. The token itself is never logged, only its id.

The result also names the tenant's usage plan: `usageIdentifierKey` is the tenant's API key value
(stored on the token), which API Gateway uses to apply the tenant's rate, burst and daily quota (the
REST API's `ApiKeySourceType` is `AUTHORIZER`). A token without one (its tenant has no usage plan
yet) gets none, and API Gateway refuses the request with 403 (API_KEY).
"""

from __future__ import annotations

from typing import Any

from chorus.adapters import tokens
from chorus.core.clock import utcnow
from chorus.core.observability import logger, metrics
from chorus.model.tenancy import Scope, Token, parse_token

BEARER = "bearer"

# The routes each scope allows, as API Gateway method ARN suffixes (`*` stands for an id).
SCOPE_ROUTES: dict[Scope, tuple[str, ...]] = {
    Scope.CREATE: ("POST/predictions", "POST/predictions/*/cancel", "POST/predictions/*/webhook/redeliver"),
    Scope.READ: ("GET/predictions", "GET/predictions/*", "GET/services", "GET/services/*", "GET/webhooks/secret"),
    Scope.ADMIN: ("*/*",),  # every method of every route
}
# The routes only `admin` reaches (through its `*/*`). IAM's `*` matches `/` too, so `GET/services/*`
# would reach `GET/services/x/monitoring`: a token without admin gets an explicit Deny of these.
ADMIN_ONLY_ROUTES = ("POST/webhooks/secret/rotate", "GET/services/*/monitoring")


class Refused(Exception):
    """No valid token: the caller is not authenticated (never says why, to the caller)."""


def bearer_token(headers: dict[str, Any] | None) -> str:
    """The token of `Authorization: Bearer <token>`; Refused without one."""
    values = [v for k, v in (headers or {}).items() if k.lower() == "authorization" and isinstance(v, str)]
    if len(values) != 1:
        raise Refused("no Authorization header" if not values else "more than one Authorization header")
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != BEARER or not token.strip():
        raise Refused("not a bearer token")
    return token.strip()


def api_arn(method_arn: str) -> str:
    """`arn:aws:execute-api:<region>:<account>:<apiId>/<stage>/` of a request's method ARN."""
    arn, sep, path = method_arn.partition(":execute-api:")
    parts = path.split(":")
    if not arn.startswith("arn:") or not sep or len(parts) != 3 or parts[2].count("/") < 2:
        raise ValueError(f"not an execute-api method ARN: {method_arn!r}")
    api_id, stage = parts[2].split("/")[:2]
    return f"{arn}:execute-api:{parts[0]}:{parts[1]}:{api_id}/{stage}/"


def allowed_resources(scopes: tuple[Scope, ...] | frozenset[Scope], method_arn: str) -> list[str]:
    """Every route the scopes allow, as resources of this API and stage (sorted, no duplicates)."""
    base = api_arn(method_arn)
    return sorted({base + route for scope in scopes for route in SCOPE_ROUTES[scope]})


def policy(token: Token, method_arn: str) -> dict[str, Any]:
    """API Gateway's authorizer result: an Allow for the token's routes, and who is calling."""
    resources = allowed_resources(token.scopes, method_arn)
    statements: list[dict[str, Any]] = (
        [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resources}] if resources else []
    )
    if resources and Scope.ADMIN not in token.scopes:
        base = api_arn(method_arn)
        denied = [base + route for route in ADMIN_ONLY_ROUTES]
        statements.append({"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": denied})
    result: dict[str, Any] = {
        "principalId": token.token_id,
        # No statement (a token without scopes) still denies everything: no Allow is a 403.
        "policyDocument": {"Version": "2012-10-17", "Statement": statements},
        "context": {
            "tenant": token.tenant,
            "tokenId": token.token_id,
            "scopes": " ".join(sorted(token.scopes)),
        },
    }
    if token.usage_key:
        result["usageIdentifierKey"] = token.usage_key
    return result


def authorize(event: dict[str, Any]) -> dict[str, Any]:
    """The policy for a REQUEST authorizer event; Refused when the caller is not authenticated."""
    token_id = ""
    try:
        parsed = parse_token(bearer_token(event.get("headers")))
        if parsed is None:
            raise Refused("malformed token")
        token_id, secret = parsed
        token = tokens.find_token(token_id)
        if token is None:
            raise Refused("unknown token")
        if not token.accepts(secret, utcnow()):
            raise Refused("revoked" if token.revoked else "expired or wrong secret")
    except Refused as refused:
        logger.info(
            "token refused", extra={"reason": str(refused), "token_id": token_id, "method_arn": event.get("methodArn")}
        )
        metrics.add_metric(name="TokensRefused", unit="Count", value=1)
        raise
    tokens.touch_token(token)
    logger.info("token accepted", extra={"tenant": token.tenant, "token_id": token.token_id})
    return policy(token, str(event.get("methodArn", "")))
