"""Who is calling: the `Caller` the Lambda authorizer established, read from the proxy event.

For an authenticated request API Gateway puts the authorizer's context in
`requestContext.authorizer`: `{"tenant": "<name>", "tokenId": "<12 hex>", "scopes": "<space-separated>"}`
(and `principalId`, the token id). A request without it never reaches a function in AWS; the
handlers refuse it anyway (401), and check the route's scope again (403), so a misconfigured
policy or a local call cannot open a hole.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from chorus.core.errors import Forbidden, Unauthorized
from chorus.model.tenancy import TENANT_NAME, Caller, Scope

_TENANT = re.compile(TENANT_NAME)
_TOKEN_ID = re.compile(r"^[0-9a-f]{12}$")
_KNOWN_SCOPES = {scope.value: scope for scope in Scope}


def caller_from_event(event: Mapping[str, Any]) -> Caller:
    """The caller of an API Gateway proxy event; Unauthorized when the authorizer context is
    missing or malformed. Scope names this version does not know are ignored."""
    context = (event.get("requestContext") or {}).get("authorizer")
    if not isinstance(context, Mapping):
        raise Unauthorized("the request is not authenticated: send Authorization: Bearer <token>")
    tenant, token_id, scopes = context.get("tenant"), context.get("tokenId"), context.get("scopes", "")
    if not isinstance(tenant, str) or not _TENANT.match(tenant):
        raise Unauthorized("the request's identity names no valid tenant")
    if not isinstance(token_id, str) or not _TOKEN_ID.match(token_id):
        raise Unauthorized("the request's identity names no valid token")
    if not isinstance(scopes, str):
        raise Unauthorized("the request's identity carries malformed scopes")
    granted = frozenset(_KNOWN_SCOPES[name] for name in scopes.split() if name in _KNOWN_SCOPES)
    return Caller(tenant=tenant, token_id=token_id, scopes=granted)


def authorize(event: Mapping[str, Any], scope: Scope) -> Caller:
    """The caller, if its token holds `scope` (or admin); Forbidden otherwise."""
    caller = caller_from_event(event)
    if not caller.allows(scope):
        raise Forbidden(f"this token lacks the {scope.value!r} scope")
    return caller
