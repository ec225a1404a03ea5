"""Approval links: a small claim signed with the stack's HMAC key in KMS (GenerateMac / VerifyMac),
so the key never leaves KMS and a forged or edited link fails verification."""

from __future__ import annotations

import base64
import json
from typing import Any

from botocore.exceptions import ClientError

from chorus.core import settings
from chorus.core.clients import client

ALGORITHM = "HMAC_SHA_256"


class BadSignature(Exception):
    """The link was not signed by this stack's key, or was changed after signing."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(claim: dict[str, Any]) -> str:
    """`<payload>.<mac>`, both base64url: URL-safe as a path segment."""
    payload = json.dumps(claim, separators=(",", ":"), sort_keys=True).encode()
    mac = client("kms").generate_mac(
        KeyId=settings.load(settings.ApprovalSettings).approval_link_key_id, MacAlgorithm=ALGORITHM, Message=payload
    )["Mac"]
    return f"{_b64(payload)}.{_b64(mac)}"


def verify(token: str) -> dict[str, Any]:
    """The claim of a link this stack signed; BadSignature otherwise (malformed, forged, edited)."""
    payload_text, _, mac_text = token.partition(".")
    try:
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except (ValueError, TypeError) as exc:
        raise BadSignature("the link is malformed") from exc
    if not payload or not mac or len(payload) > 2048 or len(mac) > 128:
        raise BadSignature("the link is malformed")
    try:
        valid = client("kms").verify_mac(
            KeyId=settings.load(settings.ApprovalSettings).approval_link_key_id,
            MacAlgorithm=ALGORITHM,
            Message=payload,
            Mac=mac,
        )["MacValid"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] in {"KMSInvalidMacException", "ValidationException"}:
            raise BadSignature("the link's signature is not valid") from exc
        raise
    if not valid:
        raise BadSignature("the link's signature is not valid")
    try:
        claim = json.loads(payload)
    except ValueError as exc:
        raise BadSignature("the link is malformed") from exc
    if not isinstance(claim, dict):
        raise BadSignature("the link is malformed")
    return claim
