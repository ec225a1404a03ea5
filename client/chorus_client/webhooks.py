"""Verifying a Chorus webhook with the Standard Webhooks reference library.

    from chorus_client import verify_webhook

    prediction = verify_webhook(secret, request_body, request_headers)   # a Prediction

`secret` is the tenant's `whsec_…` (`Client.webhook_secret()`); the headers are the request's
`webhook-id`, `webhook-timestamp` and `webhook-signature` (any case). A header carrying two
signatures (for 24 h after a rotation) verifies if either does. A timestamp more than five minutes
from now is refused, as the library does, so a replayed webhook does not verify.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError
from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook
from standardwebhooks.webhooks import WebhookVerificationError as SignatureMismatch

from chorus_client.errors import WebhookVerificationError
from chorus_client.models import Prediction


def verify_webhook(secret: str, body: bytes | str, headers: Mapping[str, str]) -> Prediction:
    """The prediction a webhook carries, once its signature and timestamp verify; else
    `WebhookVerificationError` saying why."""
    try:
        Webhook(secret).verify(body, dict(headers), json_parse=False)
    except (SignatureMismatch, EmptyWebhookSecretError) as exc:
        raise WebhookVerificationError(str(exc) or type(exc).__name__) from exc
    except ValueError as exc:  # a secret or signature that is not base64, a signature without "v1,"
        raise WebhookVerificationError(f"malformed secret or signature: {exc}") from exc
    try:
        return Prediction.model_validate_json(body)
    except ValidationError as exc:
        raise WebhookVerificationError(f"the signature verifies but the body is no prediction: {exc}") from exc
