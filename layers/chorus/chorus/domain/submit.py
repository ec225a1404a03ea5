"""Submitting a prediction: the record, its clocks, and where its input goes.

Inline input is stored exactly where an upload lands, so its S3 event starts it through the same
path with the same retries: a model is never called from the API request path.
"""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from chorus.adapters import payloads, predictions, queues, tenants, webhooks
from chorus.api.models import PredictionRequest
from chorus.api.views import represent
from chorus.core import settings
from chorus.core.clock import iso, utcnow
from chorus.core.errors import InvalidCallback, InvalidRequest, PayloadTooLarge, UnsupportedContentType, WebhookRefused
from chorus.domain import measures
from chorus.model.content import JSON, normalize
from chorus.model.records import Callback, EmailCallback, PredictionRecord, Status, WebhookCallback
from chorus.model.registry import ServiceDefinition, get_registry
from chorus.model.tenancy import Caller

UPLOAD_GRACE = timedelta(seconds=60)  # an upload that began just before expiry may still land


def new_prediction_id() -> str:
    return uuid.uuid4().hex


def new_child_salt(kind: str) -> str | None:
    """An ensemble's secret for deriving its step ids (steps.child_id); models have no steps."""
    return secrets.token_hex(16) if kind == "ensemble" else None


def submit(request: PredictionRequest, caller: Caller, prediction_id: str | None = None) -> dict[str, Any]:
    """Create the caller's tenant's prediction and answer with its upload form (or, for inline
    input, store it)."""
    service = get_registry().require_enabled(request.service)
    inline = request.input is not None
    content_type = _content_type(service, request, inline)
    callback = _callback(request, caller)
    if isinstance(callback, WebhookCallback) and "step" in callback.events and service.kind != "ensemble":
        raise InvalidCallback(f"`step` events are sent for ensembles; {service.name!r} is a model")
    body = json.dumps(request.input, separators=(",", ":")).encode() if inline else b""
    if len(body) > service.max_input_bytes:
        raise PayloadTooLarge(f"input is {len(body)} bytes; {service.name} accepts at most {service.max_input_bytes}")
    upload_ttl = settings.load(settings.PayloadSettings).upload_url_ttl_seconds
    now = utcnow()
    record = PredictionRecord(
        id=prediction_id or new_prediction_id(),
        tenant=caller.tenant,
        token_id=caller.token_id,
        service=service.name,
        kind=service.kind,
        status=Status.AWAITING_INPUT,
        created_at=now,
        updated_at=now,
        upload_expires_at=now + timedelta(seconds=upload_ttl),
        deadline_at=now + timedelta(seconds=request.deadline_seconds) if request.deadline_seconds else None,
        content_type=content_type,
        metadata=request.metadata,
        callback=callback,
        child_salt=new_child_salt(service.kind),
        ttl=predictions.record_ttl(now),
    )
    predictions.create(record)
    measures.submitted(record)
    if record.deadline_at is not None:
        queues.schedule_deadline(record.id, record.deadline_at)
    if inline:
        payloads.put_bytes(payloads.upload_key(record.tenant, record.id), body, JSON)
        return represent(record)
    # Nobody may ever read this prediction again: expire it on schedule, not only on read.
    queues.schedule_deadline(record.id, now + timedelta(seconds=upload_ttl) + UPLOAD_GRACE)
    upload = payloads.presigned_upload(record.tenant, record.id, content_type, service.max_input_bytes, upload_ttl)
    view = represent(record)
    view["upload"] = {
        "url": upload["url"],
        "method": "POST",
        "fields": upload["fields"],
        "expiresAt": iso(record.upload_expires_at),
        "maxBytes": service.max_input_bytes,
        "contentType": content_type,
    }
    return view


def _content_type(service: ServiceDefinition, request: PredictionRequest, inline: bool) -> str:
    if inline:
        if request.content_type is not None and normalize(request.content_type) != JSON:
            raise InvalidRequest("inline `input` is JSON: omit `contentType` or set it to application/json")
        content_type = JSON
    else:
        content_type = normalize(request.content_type or service.content_types[0])
    if not service.accepts(content_type):
        accepted = ", ".join(service.content_types)
        raise UnsupportedContentType(f"service {service.name!r} accepts {accepted}; not {content_type!r}")
    return content_type


def _callback(request: PredictionRequest, caller: Caller) -> Callback | None:
    """The callback, if the caller's tenant allows it: e-mail only to the recipients it allows
    (none unless an administrator set some), webhooks only to its hosts (if it restricts them)."""
    given = request.callback
    if given is None:
        return None
    tenant = tenants.find_tenant(caller.tenant)
    if given.type == "email":
        if tenant is None or not tenant.allows_recipient(given.address):
            raise InvalidCallback(
                f"tenant {caller.tenant!r} does not allow e-mail to {given.address!r}: an administrator "
                "allows recipients with `chorus admin tenants update --email-recipients`"
            )
        return EmailCallback(address=given.address)
    host = urlsplit(given.url).hostname or ""
    if tenant is None or not tenant.allows_webhook_host(host):
        raise InvalidCallback(
            f"tenant {caller.tenant!r} does not allow webhooks to host {host!r}: an administrator "
            "allows hosts with `chorus admin tenants update --webhook-hosts`"
        )
    try:
        webhooks.vet(given.url, settings.load(settings.WebhookGuardSettings).allowed_networks)
    except WebhookRefused as exc:
        raise InvalidCallback(exc.message) from exc
    return WebhookCallback(url=given.url, events=tuple(dict.fromkeys(given.events)))
