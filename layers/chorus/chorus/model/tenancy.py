"""Tenants, their API tokens and who is calling: the identity vocabulary every layer shares.

A token is `chr_<tokenId>_<secret>`: the id (12 hex characters) finds the stored record, the secret
(43 URL-safe characters, 256 bits) is checked against the stored SHA-256 hash, never stored itself.

A tenant signs its webhooks with a `whsec_…` secret of its own (32 random bytes, base64); after a
rotation the previous one keeps signing alongside the new one until `previousWebhookSecretExpiresAt`.
Its e-mail callbacks may go only to the recipients it allows (addresses or `@domain`s: none by
default), its webhooks only to the hosts it allows, if it restricts them (exact names or `*.domain`).

A tenant's `Limits` (requests per second, burst, optional daily quota) are an API Gateway usage plan
of its own with one API key: the authorizer returns the key's value as `usageIdentifierKey` (copied
onto each token record, so authorizing stays one read), and no client ever sends it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

TOKEN_PREFIX = "chr_"
_TOKEN = re.compile(r"^chr_(?P<id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")
TENANT_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"
WEBHOOK_SECRET_PREFIX = "whsec_"
SECRET_OVERLAP = timedelta(hours=24)  # how long the previous webhook secret still signs after a rotation
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})+"
_RECIPIENT = re.compile(rf"^(?:[a-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}})?@{_DOMAIN}$")
_HOST = re.compile(rf"^(?:\*\.)?{_DOMAIN}$|^{_LABEL}$")


class Scope(StrEnum):
    CREATE = "predictions:create"  # POST /predictions, cancel, redeliver
    READ = "predictions:read"  # GET /predictions, GET /predictions/{id}, GET /services, GET /webhooks/secret
    ADMIN = "admin"  # everything, including rotating the tenant's webhook secret


DEFAULT_SCOPES = (Scope.CREATE, Scope.READ)


class Caller(BaseModel):
    """Who made a request, as the authorizer established it (requestContext.authorizer)."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    token_id: str
    scopes: frozenset[Scope]

    def allows(self, scope: Scope) -> bool:
        """The token holds `scope`, or `admin`, which implies every scope."""
        return scope in self.scopes or Scope.ADMIN in self.scopes


def recipient_entry(value: str) -> str:
    """An allowed e-mail recipient: an address (`a@x.com`) or a whole domain (`@x.com`), lowercased."""
    entry = value.strip().lower()
    if not _RECIPIENT.match(entry):
        raise ValueError(f"{value!r} is neither an e-mail address nor an @domain")
    return entry


def host_entry(value: str) -> str:
    """An allowed webhook host: a host name (`hooks.x.com`) or its subdomains (`*.x.com`), lowercased."""
    entry = value.strip().lower().rstrip(".")
    if not _HOST.match(entry):
        raise ValueError(f"{value!r} is neither a host name nor *.domain")
    return entry


# Limits of a tenant created without any: the create rate Replicate allows one account (600 a minute),
# a burst of two seconds of it, no daily quota. The stage's throttle (ApiThrottling*) caps them all.
DEFAULT_RATE_LIMIT = 10.0
DEFAULT_BURST_LIMIT = 20
MAX_RATE_LIMIT = 10_000.0  # API Gateway's account quota per Region: no plan may exceed it
MAX_BURST_LIMIT = 5_000


class Limits(BaseModel):
    """A tenant's usage plan: steady requests per second, the burst above it, requests per UTC day."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    rate_limit: float = Field(default=DEFAULT_RATE_LIMIT, gt=0, le=MAX_RATE_LIMIT, alias="rateLimit")
    burst_limit: int = Field(default=DEFAULT_BURST_LIMIT, ge=1, le=MAX_BURST_LIMIT, alias="burstLimit")
    daily_quota: int | None = Field(default=None, ge=1, alias="dailyQuota")  # None: no quota

    def changed(
        self, *, rate_limit: float | None = None, burst_limit: int | None = None, daily_quota: int | None = None
    ) -> Limits:
        """These limits with the given ones replaced (a `daily_quota` of 0 removes the quota)."""
        update: dict[str, object] = {}
        if rate_limit is not None:
            update["rate_limit"] = rate_limit
        if burst_limit is not None:
            update["burst_limit"] = burst_limit
        if daily_quota is not None:
            update["daily_quota"] = daily_quota or None
        return Limits.model_validate({**self.model_dump(), **update})

    def describe(self) -> str:
        quota = f"{self.daily_quota} a day" if self.daily_quota else "no daily quota"
        return f"{self.rate_limit:g} requests/s, burst {self.burst_limit}, {quota}"

    def audited(self) -> dict[str, str]:
        """The limits as audit details."""
        return {
            "rateLimit": f"{self.rate_limit:g}",
            "burstLimit": str(self.burst_limit),
            "dailyQuota": str(self.daily_quota or "none"),
        }


class Tenant(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    tenant: str = Field(pattern=TENANT_NAME)
    created_at: datetime = Field(alias="createdAt")
    created_by: str = Field(alias="createdBy")
    updated_at: datetime | None = Field(default=None, alias="updatedAt")
    updated_by: str | None = Field(default=None, alias="updatedBy")
    webhook_secret: str | None = Field(default=None, alias="webhookSecret", repr=False)
    previous_webhook_secret: str | None = Field(default=None, alias="previousWebhookSecret", repr=False)
    previous_webhook_secret_expires_at: datetime | None = Field(default=None, alias="previousWebhookSecretExpiresAt")
    email_recipients: tuple[str, ...] = Field(default=(), alias="emailRecipients")
    webhook_hosts: tuple[str, ...] = Field(default=(), alias="webhookHosts")  # empty: any (public) host
    # The usage plan: its limits, and the plan and API key (ids, and the key's value) that enforce them.
    # A tenant created before limits existed has none until an administrator sets them.
    limits: Limits | None = None
    usage_plan_id: str | None = Field(default=None, alias="usagePlanId")
    api_key_id: str | None = Field(default=None, alias="apiKeyId")
    api_key: str | None = Field(default=None, alias="apiKey", repr=False)

    @field_validator("email_recipients", mode="before")
    @classmethod
    def _recipients(cls, value: object) -> tuple[str, ...]:
        return tuple(dict.fromkeys(recipient_entry(str(v)) for v in value or ()))  # type: ignore[attr-defined]

    @field_validator("webhook_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: object) -> tuple[str, ...]:
        return tuple(dict.fromkeys(host_entry(str(v)) for v in value or ()))  # type: ignore[attr-defined]

    def public(self) -> dict[str, object]:
        """The record as an administrator may see it: everything but the secrets."""
        return self.model_dump(
            mode="json", by_alias=True, exclude={"webhook_secret", "previous_webhook_secret", "api_key"}
        )

    def signing_secrets(self, now: datetime) -> tuple[str, ...]:
        """The secrets a webhook is signed with now: the current one, and the previous one while
        its overlap lasts."""
        current = (self.webhook_secret,) if self.webhook_secret else ()
        expires = self.previous_webhook_secret_expires_at
        if self.previous_webhook_secret and expires is not None and now < expires:
            return (*current, self.previous_webhook_secret)
        return current

    def allows_recipient(self, address: str) -> bool:
        """An e-mail may go to `address`: it, or its domain, is on the list (an empty list allows none)."""
        address = address.strip().lower()
        domain = "@" + address.rpartition("@")[2]
        return address in self.email_recipients or domain in self.email_recipients

    def allows_webhook_host(self, host: str) -> bool:
        """A webhook may go to `host`: no list, or the host (or a `*.` parent of it) is on it."""
        if not self.webhook_hosts:
            return True
        host = host.strip().lower().rstrip(".")
        return any(
            host.endswith(entry[1:]) if entry.startswith("*.") else host == entry for entry in self.webhook_hosts
        )


class Token(BaseModel):
    """A stored token: its hash, never its secret."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    token_id: str = Field(alias="tokenId")
    tenant: str
    secret_hash: str = Field(alias="secretHash")
    scopes: tuple[Scope, ...]
    created_at: datetime = Field(alias="createdAt")
    created_by: str = Field(alias="createdBy")
    expires_at: datetime | None = Field(default=None, alias="expiresAt")
    revoked: bool = False
    revoked_at: datetime | None = Field(default=None, alias="revokedAt")
    last_used_at: datetime | None = Field(default=None, alias="lastUsedAt")
    # The tenant's API key value, copied here when the token is made (the usage identifier).
    usage_key: str | None = Field(default=None, alias="usageKey", repr=False)

    def accepts(self, secret: str, now: datetime) -> bool:
        """The secret matches (in constant time), and the token is neither revoked nor expired."""
        if self.revoked or (self.expires_at is not None and now >= self.expires_at):
            return False
        return hmac.compare_digest(self.secret_hash, hash_secret(secret))


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and 32 random bytes in base64."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token() -> tuple[str, str, str]:
    """(token id, secret, the token a client sends)."""
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return token_id, secret, f"{TOKEN_PREFIX}{token_id}_{secret}"


def parse_token(value: str) -> tuple[str, str] | None:
    """(token id, secret) of a well-formed token, else None."""
    match = _TOKEN.match(value)
    return (match["id"], match["secret"]) if match else None
