"""Per-tenant webhook secrets and allow-lists through the real handlers and the delivery consumer,
against moto: GET /webhooks/secret (predictions:read), POST /webhooks/secret/rotate (admin), both
signatures during a rotation's overlap and only the new one after it, each tenant's webhooks signed
with its own secret, e-mail only to allowed recipients, webhooks only to allowed hosts, and the
audit trail of what an administrator did."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from types import ModuleType
from typing import Any

import boto3
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from chorus.adapters import audit, tenants, tokens
from chorus.api.models import PredictionRequest
from chorus.core import settings
from chorus.core.clock import iso, utcnow
from chorus.core.errors import InvalidCallback
from chorus.domain import cancel, submit
from tests.support import aws_resources
from tests.support.aws_resources import OTHER_TENANT, TENANT, as_tenant, caller, load_event
from tests.support.handlers import FakeLambdaContext, load_handler
from tests.support.webhook_receiver import WebhookReceiver

UPLOAD = {"service": "digits-forest", "contentType": "image/png"}


@pytest.fixture
def handlers(aws, monkeypatch) -> dict[str, ModuleType]:
    monkeypatch.setattr("chorus.adapters.webhooks.resolve_addresses", lambda host, port: ["93.184.216.34"])
    return {"new_prediction": load_handler("new_prediction"), "results": load_handler("results")}


@pytest.fixture
def receiver(aws, monkeypatch) -> Iterator[WebhookReceiver]:
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
    settings.load.cache_clear()
    server = WebhookReceiver()
    yield server
    server.close()


def secret_event(method: str, tenant: str = TENANT, scopes: str = "predictions:create predictions:read") -> dict:
    event = load_event("results_list_services.json")
    path = "/webhooks/secret" if method == "GET" else "/webhooks/secret/rotate"
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["path"] = event["resource"] = event["requestContext"]["resourcePath"] = path
    event["body"] = None
    return as_tenant(event, tenant, scopes)


def call(handlers, method: str, tenant: str = TENANT, scopes: str = "predictions:read") -> tuple[int, dict]:
    function = "results" if method == "GET" else "new_prediction"
    response = handlers[function].handler(secret_event(method, tenant, scopes), FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"])


def webhook_of(tenant: str, url: str) -> list:
    """A prediction of `tenant` with a webhook to `url`, canceled (which announces it), delivered."""
    who = caller(tenant)
    view = submit.submit(PredictionRequest.model_validate({**UPLOAD, "callback": {"type": "webhook", "url": url}}), who)
    cancel.cancel(who, view["id"])
    aws_resources.run_deliveries()
    return view["id"]


def verifies(secret: str, received: Any) -> bool:
    try:
        Webhook(secret).verify(received.body, received.headers)
    except WebhookVerificationError:
        return False
    return True


# --- GET /webhooks/secret and POST /webhooks/secret/rotate -------------------------------------------


def test_get_webhook_secret_returns_the_callers_tenants_key(handlers):
    other = tenants.rotate_webhook_secret(OTHER_TENANT, "tests")  # the two tenants' secrets now differ
    assert call(handlers, "GET") == (200, {"key": aws_resources.WEBHOOK_SECRET})
    assert call(handlers, "GET", OTHER_TENANT) == (200, {"key": other.webhook_secret})


def test_a_token_without_predictions_read_cannot_read_the_secret(handlers):
    status, body = call(handlers, "GET", scopes="predictions:create")
    assert status == 403 and body["error"]["code"] == "forbidden"


@pytest.mark.parametrize("scopes", ["predictions:read", "predictions:create predictions:read"])
def test_rotating_needs_admin(handlers, scopes):
    status, body = call(handlers, "POST", scopes=scopes)
    assert status == 403 and "'admin'" in body["error"]["message"]
    assert tenants.find_tenant(TENANT).webhook_secret == aws_resources.WEBHOOK_SECRET


def test_rotating_issues_a_new_key_keeps_the_old_one_for_24_hours_and_is_audited(handlers):
    before = utcnow()
    status, body = call(handlers, "POST", scopes="admin")
    assert status == 200 and body["key"].startswith("whsec_") and body["key"] != aws_resources.WEBHOOK_SECRET
    assert call(handlers, "GET") == (200, {"key": body["key"]})
    stored = tenants.find_tenant(TENANT)
    assert stored.previous_webhook_secret == aws_resources.WEBHOOK_SECRET
    assert stored.previous_webhook_secret_expires_at - before >= timedelta(hours=24) - timedelta(seconds=5)
    assert body["previousKeyExpiresAt"] == iso(stored.previous_webhook_secret_expires_at)
    [event] = [e for e in audit.list_events(TENANT) if e.action == "webhook_secret.rotated"]
    assert event.actor == f"token:{caller(TENANT).token_id}" and body["key"] not in json.dumps(event.details)


# --- deliveries sign with the tenant's secrets ---------------------------------------------------------


def test_each_tenants_webhooks_verify_with_its_own_secret_only(receiver):
    other = tenants.rotate_webhook_secret(OTHER_TENANT, "tests")
    tenants_table = settings.load(settings.TenantsSettings).tenants_table
    boto3.client("dynamodb").update_item(  # no overlap: globex's old secret (acme's) no longer signs
        TableName=tenants_table,
        Key={"tenant": {"S": OTHER_TENANT}},
        UpdateExpression="REMOVE previousWebhookSecret, previousWebhookSecretExpiresAt",
    )
    webhook_of(TENANT, receiver.url)
    webhook_of(OTHER_TENANT, receiver.url)
    mine, theirs = receiver.received
    assert verifies(aws_resources.WEBHOOK_SECRET, mine) and not verifies(str(other.webhook_secret), mine)
    assert verifies(str(other.webhook_secret), theirs) and not verifies(aws_resources.WEBHOOK_SECRET, theirs)


def test_during_the_overlap_both_secrets_verify_and_after_it_only_the_new_one(receiver):
    # Given a rotation
    new = str(tenants.rotate_webhook_secret(TENANT, "tests").webhook_secret)
    old = aws_resources.WEBHOOK_SECRET
    # When a webhook goes out during the overlap, Then it carries both signatures and either verifies
    webhook_of(TENANT, receiver.url)
    during = receiver.received[-1]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert verifies(new, during) and verifies(old, during)
    # When the 24 hours have passed (the previous secret's expiry moved into the past)
    boto3.client("dynamodb").update_item(
        TableName=settings.load(settings.TenantsSettings).tenants_table,
        Key={"tenant": {"S": TENANT}},
        UpdateExpression="SET previousWebhookSecretExpiresAt = :past",
        ExpressionAttributeValues={":past": {"S": iso(utcnow() - timedelta(seconds=1))}},
    )
    webhook_of(TENANT, receiver.url)
    after = receiver.received[-1]
    # Then only the new secret verifies
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert verifies(new, after) and not verifies(old, after)


# --- allow-lists ---------------------------------------------------------------------------------------


def request(callback: dict[str, Any]) -> PredictionRequest:
    return PredictionRequest.model_validate({**UPLOAD, "callback": callback})


def test_email_goes_only_to_recipients_the_tenant_allows(aws):
    assert submit.submit(request({"type": "email", "address": "claims@example.com"}), caller())
    with pytest.raises(InvalidCallback, match="does not allow e-mail"):
        submit.submit(request({"type": "email", "address": "claims@example.org"}), caller())
    tenants.update_tenant(TENANT, "tests", email_recipients=["claims@example.org"])
    assert submit.submit(request({"type": "email", "address": "Claims@Example.org"}), caller())
    with pytest.raises(InvalidCallback, match="does not allow e-mail"):
        submit.submit(request({"type": "email", "address": "claims@example.com"}), caller())


def test_a_tenant_without_recipients_sends_no_email_at_all(aws):
    tenants.create_tenant("newco", "tests")
    with pytest.raises(InvalidCallback, match="does not allow e-mail"):
        submit.submit(request({"type": "email", "address": "claims@example.com"}), caller("newco"))


def test_email_to_a_recipient_is_a_400_invalid_callback_through_the_handler(handlers):
    event = as_tenant(load_event("new_prediction_create.json"), TENANT)
    event["body"] = json.dumps({**UPLOAD, "callback": {"type": "email", "address": "someone@elsewhere.net"}})
    response = handlers["new_prediction"].handler(event, FakeLambdaContext())
    body = json.loads(response["body"])
    assert response["statusCode"] == 400 and body["error"]["code"] == "invalid_callback"


def test_webhooks_go_only_to_allowed_hosts_once_the_tenant_restricts_them(aws, monkeypatch):
    monkeypatch.setattr("chorus.adapters.webhooks.resolve_addresses", lambda host, port: ["93.184.216.34"])
    assert submit.submit(request({"type": "webhook", "url": "https://anywhere.example.net/x"}), caller())
    tenants.update_tenant(TENANT, "tests", webhook_hosts=["hooks.example.com", "*.example.org"])
    assert submit.submit(request({"type": "webhook", "url": "https://hooks.example.com/x"}), caller())
    assert submit.submit(request({"type": "webhook", "url": "https://a.b.example.org/x"}), caller())
    for url in ("https://anywhere.example.net/x", "https://example.org/x", "https://evilexample.org/x"):
        with pytest.raises(InvalidCallback, match="does not allow webhooks"):
            submit.submit(request({"type": "webhook", "url": url}), caller())


def test_a_recipient_removed_later_is_not_sent_to(aws):
    view = submit.submit(request({"type": "email", "address": "claims@example.com"}), caller())
    tenants.update_tenant(TENANT, "tests", email_recipients=[])
    cancel.cancel(caller(), view["id"])
    aws_resources.run_deliveries()
    assert boto3.client("ses").get_send_quota()["SentLast24Hours"] == 0


def test_bad_allow_list_entries_are_refused(aws):
    with pytest.raises(tenants.InvalidTenantSettings):
        tenants.update_tenant(TENANT, "tests", email_recipients=["not an address"])
    with pytest.raises(tenants.InvalidTenantSettings):
        tenants.create_tenant("newco", "tests", webhook_hosts=["https://x.com/"])


# --- audit ---------------------------------------------------------------------------------------------


def test_admin_actions_are_audited_with_who_and_when(aws):
    tenants.create_tenant("audited", "alice", email_recipients=["@x.com"])
    tenants.update_tenant("audited", "bob", webhook_hosts=["*.x.com"])
    token, _ = tokens.create_token("audited", [], "carol")
    tokens.revoke_token(token.token_id, "dave")
    rotated = tenants.rotate_webhook_secret("audited", "erin")
    events = audit.list_events("audited")
    assert [(e.action, e.actor) for e in events] == [
        ("tenant.created", "alice"),
        ("tenant.updated", "bob"),
        ("token.created", "carol"),
        ("token.revoked", "dave"),
        ("webhook_secret.rotated", "erin"),
    ]
    assert events[0].details == {
        "emailRecipients": ["@x.com"],
        "webhookHosts": [],
        "rateLimit": "10",
        "burstLimit": "20",
        "dailyQuota": "none",
    }
    assert events[1].details == {"webhookHosts": ["*.x.com"]}
    assert events[3].details == {"tokenId": token.token_id}
    assert all(e.moment <= iso(utcnow()) for e in events)
    assert str(rotated.webhook_secret) not in json.dumps([e.model_dump() for e in events])
    assert audit.list_events(TENANT)[0].action == "tenant.created"
