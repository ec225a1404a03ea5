"""Tenants, their API tokens and who is calling: the identity vocabulary every layer shares.

A token is `chr_<tokenId>_<secret>`: the id (12 hex characters) finds the stored record, the secret
(43 URL-safe characters, 256 bits) is checked against the stored SHA-256 hash, never stored itself.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

TOKEN_PREFIX = "chr_"
_TOKEN = re.compile(r"^chr_(?P<id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")
TENANT_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"


class Scope(StrEnum):
    CREATE = "predictions:create"  # POST /predictions, cancel, redeliver
    READ = "predictions:read"  # GET /predictions, GET /predictions/{id}, GET /services
    ADMIN = "admin"  # everything, including the tenant's webhook secret


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


class Tenant(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    tenant: str = Field(pattern=TENANT_NAME)
    created_at: datetime = Field(alias="createdAt")
    created_by: str = Field(alias="createdBy")


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

    def accepts(self, secret: str, now: datetime) -> bool:
        """The secret matches (in constant time), and the token is neither revoked nor expired."""
        if self.revoked or (self.expires_at is not None and now >= self.expires_at):
            return False
        return hmac.compare_digest(self.secret_hash, hash_secret(secret))


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
