"""The caller's tenant's webhook signing secret: read it (`GET /webhooks/secret`, predictions:read,
as a receiver needs it to verify) and rotate it (`POST /webhooks/secret/rotate`, admin). After a
rotation both secrets sign for 24 hours, so receivers can switch without missing a webhook."""

from __future__ import annotations

from typing import Any

from chorus.adapters import tenants
from chorus.core.clock import iso
from chorus.core.errors import ChorusError
from chorus.model.tenancy import Caller, Tenant


class NoWebhookSecret(ChorusError):
    code = "not_found"
    status = 404


def _key(tenant: Tenant) -> dict[str, Any]:
    if not tenant.webhook_secret:
        raise NoWebhookSecret(f"tenant {tenant.tenant!r} has no webhook secret yet: rotate to issue one")
    return {"key": tenant.webhook_secret}


def current(caller: Caller) -> dict[str, Any]:
    """`{"key": "whsec_…"}`: the secret webhooks are signed with now."""
    return _key(tenants.require_tenant(caller.tenant))


def rotate(caller: Caller) -> dict[str, Any]:
    """A new secret; the previous one still signs until `previousKeyExpiresAt`."""
    rotated = tenants.rotate_webhook_secret(caller.tenant, rotated_by=f"token:{caller.token_id}")
    return {**_key(rotated), "previousKeyExpiresAt": iso(rotated.previous_webhook_secret_expires_at)}
