"""Tenants end to end: two tenants on one running stack, their tokens made with the `chorus` CLI
against the stack's ready file (`python -m chorus_cli admin … --local <ready file>`, a subprocess:
the CLI proven end to end too).

A tenant never sees another's predictions (a foreign id is the same 404 as an unknown one on every
route), lists only its own (newest first, paged by an opaque cursor, filtered), has Idempotency-Keys
of its own; and the authorizer refuses a missing, malformed, unknown, revoked or expired token (401)
and a token without the scope a route needs (403), every refusal in the API's error shape. Each
tenant's webhooks are signed with its own secret (both old and new during a rotation), its e-mail
goes only to recipients it allows, and what administrators did is in the audit trail.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.e2e.client import ChorusClient, bearer, digit_pixels
from tests.e2e.conftest import REPO_ROOT, RunningStack
from tests.support.webhook_receiver import WebhookReceiver

UPLOAD = {"service": "digits-forest", "contentType": "image/png"}  # waits for its upload: no model runs
UNKNOWN_ID = "0" * 32
AUTHORIZER_CACHE_SECONDS = 60
ID_ROUTES = [("GET", ""), ("POST", "/cancel"), ("POST", "/webhook/redeliver")]
# These tests are about isolation, not limits (test_limits.py): their tenants have room to spare.
ROOMY = ("--rate-limit", "500", "--burst", "500")

# --- the CLI and the API -------------------------------------------------------------------------------


def chorus(stack: RunningStack, *argv: str) -> str:
    """`chorus admin …` against the running stack; its standard output."""
    command = [sys.executable, "-m", "chorus_cli", "admin", *argv, "--local", str(stack.ready_file)]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(argv)} exited {result.returncode}: {result.stderr}"
    return result.stdout


def new_token(stack: RunningStack, tenant: str, *options: str) -> str:
    """A token made by the CLI: the last line it prints."""
    return chorus(stack, "tokens", "create", "--tenant", tenant, *options).rstrip("\n").splitlines()[-1]


def token_id(token: str) -> str:
    return token.split("_")[1]


def assert_error(response: requests.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is `status` with a body in the API's error shape `{"error": {"code", "message"}}`."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message"} and error["code"] and error["message"], body
    if code is not None:
        assert error["code"] == code, body
    return dict(error)


def listing(client: ChorusClient, **query: Any) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `GET /predictions`: its predictions and the cursor of the next page (None on the last)."""
    response = client.request("GET", "/predictions", params={k: v for k, v in query.items() if v is not None})
    assert response.status_code == 200, response.text
    body = response.json()
    return list(body["predictions"]), body.get("nextCursor")


def list_all(client: ChorusClient, **query: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        page, cursor = listing(client, **query, cursor=cursor)
        found += page
        if cursor is None:
            return found
    raise AssertionError("the listing never ended")


def eventually(check: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# --- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tenancy_stack(stack: RunningStack) -> RunningStack:
    if not stack.api_token or not {"TenantsTable", "TokensTable"} <= set(stack.resources):
        pytest.fail("the local stack's ready file has no api_token or no resources: tenancy is not wired locally")
    return stack


@pytest.fixture(scope="module")
def new_tenant(tenancy_stack: RunningStack) -> Callable[..., tuple[str, ChorusClient]]:
    """A new tenant (its name) and a client holding a token of its own, both made by the CLI."""

    def make(prefix: str, *token_options: str) -> tuple[str, ChorusClient]:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        assert name in chorus(tenancy_stack, "tenants", "create", name, *ROOMY)
        return name, tenancy_stack.api(new_token(tenancy_stack, name, *token_options))

    return make


@pytest.fixture(scope="module")
def mine(tenancy_stack: RunningStack) -> ChorusClient:
    """The local tenant, as every other end-to-end test calls the API."""
    return tenancy_stack.api()


@pytest.fixture(scope="module")
def other(tenancy_stack: RunningStack) -> ChorusClient:
    """A second tenant, `other`, and its token, made with the CLI."""
    chorus(tenancy_stack, "tenants", "create", "other", *ROOMY)
    listed = json.loads(chorus(tenancy_stack, "tenants", "list", "--json"))
    assert {t["tenant"]: t["createdBy"] for t in listed}["other"] == "local"
    return tenancy_stack.api(new_token(tenancy_stack, "other"))


# --- one tenant never sees another's predictions --------------------------------------------------------


@pytest.mark.parametrize(("method", "suffix"), ID_ROUTES)
def test_another_tenants_prediction_is_the_same_404_as_an_unknown_id(mine, other, method, suffix):
    # Given a prediction of the local tenant (no webhook: redelivering it would be 409 for its owner)
    created = mine.create(UPLOAD)
    # When the other tenant reads, cancels or redelivers it, and an id nobody has
    foreign = other.request(method, f"/predictions/{created['id']}{suffix}")
    unknown = other.request(method, f"/predictions/{UNKNOWN_ID}{suffix}")
    # Then both are the same 404 not_found, told apart by nothing but the id
    foreign_error = assert_error(foreign, 404, "not_found")
    unknown_error = assert_error(unknown, 404, "not_found")
    assert foreign_error["message"].replace(created["id"], "ID") == unknown_error["message"].replace(UNKNOWN_ID, "ID")
    assert foreign.headers.get("content-type") == unknown.headers.get("content-type")
    # And the prediction is untouched, still its owner's
    assert mine.get(created["id"])["status"] == "awaiting_input"


def test_each_tenant_lists_only_its_own_predictions(mine, other):
    # Given predictions of both tenants
    own = {other.create(UPLOAD)["id"] for _ in range(3)}
    theirs = {mine.create(UPLOAD)["id"] for _ in range(3)}
    # When each lists its predictions
    listed_by_other = {p["id"] for p in list_all(other, limit=100)}
    listed_by_mine = {p["id"] for p in list_all(mine, limit=100)}
    # Then each sees its own and none of the other's
    assert own <= listed_by_other and not theirs & listed_by_other
    assert theirs <= listed_by_mine and not own & listed_by_mine


def test_the_same_idempotency_key_from_two_tenants_makes_two_predictions(mine, other):
    # Given one Idempotency-Key and one body
    key = f"order-{uuid.uuid4().hex}"
    headers = {"Idempotency-Key": key}
    # When both tenants submit it, and each again
    first, second = mine.create(UPLOAD, headers), other.create(UPLOAD, headers)
    # Then there are two predictions, one each, and each tenant's replay is its own
    assert first["id"] != second["id"]
    assert mine.create(UPLOAD, headers)["id"] == first["id"]
    assert other.create(UPLOAD, headers)["id"] == second["id"]
    assert mine.get(first["id"])["id"] == first["id"] and other.get(second["id"])["id"] == second["id"]
    assert_error(other.request("GET", f"/predictions/{first['id']}"), 404, "not_found")


# --- GET /predictions: pages and filters ---------------------------------------------------------------


@pytest.fixture(scope="module")
def forty_five(new_tenant) -> tuple[ChorusClient, list[dict[str, Any]]]:
    """A fresh tenant with 45 predictions, made one after another (every third on digits-svm), and
    the last three of them canceled."""
    _, client = new_tenant("pages")
    created = []
    for i in range(45):
        created.append(client.create({**UPLOAD, "service": "digits-svm" if i % 3 == 0 else "digits-forest"}))
    for prediction in created[-3:]:
        assert client.cancel(prediction["id"]).status_code == 200
    return client, created


def test_listing_pages_45_predictions_newest_first_20_20_5(forty_five):
    client, created = forty_five
    # When the tenant pages through its predictions 20 at a time
    first, cursor = listing(client, limit=20)
    assert cursor is not None
    second, cursor = listing(client, limit=20, cursor=cursor)
    assert cursor is not None
    third, cursor = listing(client, limit=20, cursor=cursor)
    # Then the pages hold 20, 20 and 5, the last one says there is no more, newest first, no overlap
    assert [len(first), len(second), len(third)] == [20, 20, 5] and cursor is None
    ids = [p["id"] for p in first + second + third]
    assert ids == [p["id"] for p in reversed(created)]
    created_at = [p["createdAt"] for p in first + second + third]
    assert created_at == sorted(created_at, reverse=True)
    # And each entry is the prediction's representation
    assert {p["service"] for p in first + second + third} == {"digits-svm", "digits-forest"}


def test_listing_filters_by_service_and_status(forty_five):
    client, created = forty_five
    svm = [p["id"] for p in reversed(created) if p["service"] == "digits-svm"]
    assert [p["id"] for p in list_all(client, service="digits-svm", limit=7)] == svm
    canceled = [p["id"] for p in reversed(created[-3:])]
    assert [p["id"] for p in list_all(client, status="canceled")] == canceled
    waiting = list_all(client, status="awaiting_input", service="digits-forest", limit=50)
    assert {p["status"] for p in waiting} == {"awaiting_input"}
    assert [p["id"] for p in waiting] == [p["id"] for p in reversed(created[:-3]) if p["service"] == "digits-forest"]


def test_listing_filters_by_creation_time(forty_five):
    client, created = forty_five
    # Given the creation times of the 11th and the 21st prediction
    after, before = created[10]["createdAt"], created[20]["createdAt"]
    assert after < before
    # When the tenant lists those created from the one (inclusive) until the other (exclusive)
    listed = list_all(client, createdAfter=after, createdBefore=before, limit=4)
    # Then it gets exactly the ten in between, newest first
    assert [p["id"] for p in listed] == [p["id"] for p in reversed(created[10:20])]
    assert [p["id"] for p in list_all(client, createdAfter=created[40]["createdAt"])] == [
        p["id"] for p in reversed(created[40:])
    ]
    assert [p["id"] for p in list_all(client, createdBefore=created[5]["createdAt"])] == [
        p["id"] for p in reversed(created[:5])
    ]


def test_listing_rejects_a_cursor_it_did_not_hand_out(forty_five, other):
    client, _ = forty_five
    _, cursor = listing(client, limit=20)
    assert_error(client.request("GET", "/predictions", params={"cursor": "not-a-cursor"}), 400)
    # Another tenant's cursor is refused too, rather than paging through someone else's listing
    assert_error(other.request("GET", "/predictions", params={"cursor": cursor}), 400)


def test_listing_filters_by_parent_the_steps_of_an_ensemble(mine, other):
    # Given an ensemble prediction that finished
    pixels, _ = digit_pixels(1300)
    created = mine.create({"service": "digits-ensemble", "input": {"pixels": pixels}})
    finished = mine.wait(created["id"], timeout=120)
    assert finished["status"] == "succeeded", finished
    # When its owner lists by parentId
    steps = list_all(mine, parentId=created["id"])
    # Then it gets the ensemble's steps, and only them
    assert {p["id"] for p in steps} == {s["id"] for s in finished["steps"]}
    assert {p["parentId"] for p in steps} == {created["id"]}
    # And top-level listings do not mix the steps in
    assert not {p["id"] for p in steps} & {p["id"] for p in list_all(mine, service="digits-svm", limit=100)}
    # And another tenant listing by that parent gets nothing
    response = other.request("GET", "/predictions", params={"parentId": created["id"]})
    assert response.status_code == 200 and response.json()["predictions"] == [], response.text


# --- the authorizer: 401 and 403 -------------------------------------------------------------------------


ROUTES = [
    ("POST", "/predictions"),
    ("GET", "/predictions"),
    ("GET", f"/predictions/{UNKNOWN_ID}"),
    ("POST", f"/predictions/{UNKNOWN_ID}/cancel"),
    ("POST", f"/predictions/{UNKNOWN_ID}/webhook/redeliver"),
    ("GET", "/services"),
]
MALFORMED = [
    "",
    "Bearer",
    "Bearer ",
    "Bearer not-a-token",
    "Basic dXNlcjpwYXNz",
    "Bearer chr_0123456789ab_short",
    "Bearer chr_0123456789ab_" + "x" * 43 + " trailing",
    "bearer chr_" + "0" * 12 + "_" + "A" * 43,  # well-formed, but nobody's: unknown token
    "Bearer chr_" + "0" * 12 + "_" + "A" * 43,
]


def _call(stack: RunningStack, method: str, path: str, headers: dict[str, str]) -> requests.Response:
    body = UPLOAD if method == "POST" and path == "/predictions" else None
    return requests.request(method, f"{stack.api_url}{path}", json=body, headers=headers, timeout=30)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_no_token_is_401_on_every_route(tenancy_stack, method, path):
    assert_error(_call(tenancy_stack, method, path, {}), 401)


@pytest.mark.parametrize("authorization", MALFORMED)
@pytest.mark.parametrize(("method", "path"), [ROUTES[0], ROUTES[2]])
def test_a_malformed_or_unknown_token_is_401(tenancy_stack, method, path, authorization):
    assert_error(_call(tenancy_stack, method, path, {"Authorization": authorization}), 401)


def test_a_revoked_token_never_used_is_401_at_once(tenancy_stack, new_tenant):
    # Given a working token, revoked before its first use (so no authorizer cache entry can exist)
    _, client = new_tenant("revoked")
    assert client.token
    chorus(tenancy_stack, "tokens", "revoke", token_id(client.token))
    # When it is used, Then it is 401 on every route
    for method, path in ROUTES:
        assert_error(_call(tenancy_stack, method, path, bearer(client.token)), 401)


def test_a_revoked_token_in_use_is_401_once_the_authorizer_cache_lapses(tenancy_stack, new_tenant):
    # Given a token in use (the authorizer has cached its answer)
    _, client = new_tenant("revoked-later")
    assert client.token
    assert client.request("GET", "/services").status_code == 200
    revoked_at = time.monotonic()
    # When it is revoked
    chorus(tenancy_stack, "tokens", "revoke", token_id(client.token))
    # Then within the cache's TTL (plus a margin) it is refused, and stays refused
    refused = eventually(
        lambda: client.request("GET", "/services").status_code == 401, timeout=AUTHORIZER_CACHE_SECONDS + 15
    )
    assert refused, f"still accepted {time.monotonic() - revoked_at:.0f} s after it was revoked"
    assert_error(client.request("GET", "/services"), 401)
    assert_error(client.submit(UPLOAD), 401)


def test_an_expired_token_is_401(tenancy_stack, new_tenant):
    # Given a token that lives one second, never used
    _, client = new_tenant("expiring", "--expires-in", "1s")
    # When it is used after that, Then it is 401
    time.sleep(2)
    assert_error(client.request("GET", "/services"), 401)
    assert_error(client.submit(UPLOAD), 401)


def test_a_token_without_predictions_create_is_403_on_creating_routes(tenancy_stack, new_tenant, other):
    # Given a read-only token of a tenant with a prediction
    tenant, writer = new_tenant("readonly")
    reader = tenancy_stack.api(new_token(tenancy_stack, tenant, "--scopes", "predictions:read"))
    created = writer.create(UPLOAD)
    # When it creates, cancels or redelivers, Then it is 403
    assert_error(reader.submit(UPLOAD), 403)
    assert_error(reader.request("POST", f"/predictions/{created['id']}/cancel"), 403)
    assert_error(reader.request("POST", f"/predictions/{created['id']}/webhook/redeliver"), 403)
    # And what it may do still works, on its own tenant's predictions only
    assert reader.get(created["id"])["status"] == "awaiting_input"
    assert created["id"] in {p["id"] for p in list_all(reader)}
    assert reader.request("GET", "/services").status_code == 200


def test_a_token_without_predictions_read_cannot_read(tenancy_stack, new_tenant):
    _, writer = new_tenant("writeonly", "--scopes", "predictions:create")
    created = writer.create(UPLOAD)
    assert_error(writer.request("GET", f"/predictions/{created['id']}"), 403)
    assert_error(writer.request("GET", "/predictions"), 403)


def _tokens(stack: RunningStack) -> list[dict[str, Any]]:
    return list(json.loads(chorus(stack, "tokens", "list", "--json")))


def test_the_cli_lists_tokens_without_their_secrets(tenancy_stack, other):
    listed = chorus(tenancy_stack, "tokens", "list", "--tenant", "other")
    assert other.token and token_id(other.token) in listed and other.token.split("_", 2)[2] not in listed
    assert tenancy_stack.api_token and tenancy_stack.api_token.split("_", 2)[2] not in chorus(
        tenancy_stack, "tokens", "list", "--json"
    )


def test_the_use_of_a_token_is_recorded(tenancy_stack, new_tenant):
    # Given a new token, When it is used, Then the CLI shows when it was last used
    tenant, client = new_tenant("used")
    assert client.token
    listed = [t for t in _tokens(tenancy_stack) if t["tokenId"] == token_id(client.token)]
    assert listed and listed[0]["tenant"] == tenant and listed[0]["state"] == "active"
    assert listed[0]["lastUsedAt"] is None
    assert client.request("GET", "/services").status_code == 200
    used = eventually(
        lambda: [t for t in _tokens(tenancy_stack) if t["tokenId"] == token_id(client.token) and t["lastUsedAt"]],
        timeout=15,
    )
    assert used, "lastUsedAt was not recorded"


# --- per-tenant webhook secrets, allow-lists and the audit trail ------------------------------------------


@pytest.fixture
def receiver() -> Any:
    server = WebhookReceiver()
    yield server
    server.close()


def webhook_secret(client: ChorusClient) -> str:
    response = client.request("GET", "/webhooks/secret")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"key"} and body["key"].startswith("whsec_"), body
    return str(body["key"])


def one_webhook(client: ChorusClient, receiver: WebhookReceiver) -> Any:
    """A prediction with a webhook, canceled (which announces it); the webhook as it arrived."""
    before = len(receiver.received)
    created = client.create({**UPLOAD, "callback": {"type": "webhook", "url": receiver.url}})
    assert client.cancel(created["id"]).status_code == 200
    assert eventually(lambda: len(receiver.received) > before, timeout=30), "the webhook never arrived"
    [arrived] = [r for r in receiver.received[before:] if json.loads(r.body)["id"] == created["id"]]
    return arrived


def verifies(secret: str, arrived: Any) -> bool:
    try:
        Webhook(secret).verify(arrived.body, arrived.headers)
    except WebhookVerificationError:
        return False
    return True


def test_the_local_tenants_webhook_secret_is_the_stacks(tenancy_stack, mine):
    assert webhook_secret(mine) == tenancy_stack.webhook_secret


def test_each_tenants_webhooks_verify_with_its_own_secret_also_during_a_rotation(new_tenant, receiver):
    # Given two tenants, each with an admin token, and their secrets as GET /webhooks/secret gives them
    _, first = new_tenant("signer-a", "--scopes", "admin")
    _, second = new_tenant("signer-b", "--scopes", "admin")
    first_secret, second_secret = webhook_secret(first), webhook_secret(second)
    assert first_secret != second_secret
    # When each gets a webhook, Then it verifies with its tenant's secret and not with the other's
    arrived = one_webhook(first, receiver)
    assert verifies(first_secret, arrived) and not verifies(second_secret, arrived)
    arrived = one_webhook(second, receiver)
    assert verifies(second_secret, arrived) and not verifies(first_secret, arrived)
    # When the first tenant rotates its secret
    rotated = first.request("POST", "/webhooks/secret/rotate")
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["key"]
    assert new_secret not in {first_secret, second_secret} and webhook_secret(first) == new_secret
    # Then its webhooks carry both signatures for the overlap: a receiver holding either verifies,
    # one holding the other tenant's secret does not
    arrived = one_webhook(first, receiver)
    assert len(arrived.headers["webhook-signature"].split(" ")) == 2
    assert verifies(new_secret, arrived) and verifies(first_secret, arrived)
    assert not verifies(second_secret, arrived)
    # And the other tenant's webhooks are untouched
    arrived = one_webhook(second, receiver)
    assert verifies(second_secret, arrived) and not verifies(new_secret, arrived)


def test_rotating_the_secret_needs_admin(new_tenant):
    _, client = new_tenant("no-admin")  # predictions:create predictions:read
    before = webhook_secret(client)
    assert_error(client.request("POST", "/webhooks/secret/rotate"), 403)
    assert webhook_secret(client) == before


def test_email_to_a_recipient_the_tenant_has_not_allowed_is_refused(tenancy_stack, mine, new_tenant):
    # The local tenant may e-mail example.com (make local's allow-list), nobody else
    email = {**UPLOAD, "callback": {"type": "email", "address": "claims@example.org"}}
    assert_error(mine.submit(email), 400, "invalid_callback")
    # A new tenant may send no e-mail at all until an administrator allows recipients
    name, client = new_tenant("mailer")
    allowed = {**UPLOAD, "callback": {"type": "email", "address": "claims@example.com"}}
    assert_error(client.submit(allowed), 400, "invalid_callback")
    chorus(tenancy_stack, "tenants", "update", name, "--email-recipients", "claims@example.com")
    assert client.submit(allowed).status_code == 202
    assert_error(client.submit({**UPLOAD, "callback": {"type": "email", "address": "other@example.com"}}), 400)


def test_webhook_hosts_restrict_where_webhooks_go(tenancy_stack, new_tenant, receiver):
    name, client = new_tenant("hosts")
    chorus(tenancy_stack, "tenants", "update", name, "--webhook-hosts", "hooks.example.com")
    assert_error(
        client.submit({**UPLOAD, "callback": {"type": "webhook", "url": receiver.url}}), 400, "invalid_callback"
    )
    chorus(tenancy_stack, "tenants", "update", name, "--webhook-hosts", "hooks.example.com", "127.0.0.1")
    assert client.submit({**UPLOAD, "callback": {"type": "webhook", "url": receiver.url}}).status_code == 202


def test_the_audit_trail_records_what_administrators_did(tenancy_stack, new_tenant):
    name, client = new_tenant("audited", "--scopes", "admin")
    assert client.token
    assert client.request("POST", "/webhooks/secret/rotate").status_code == 200
    chorus(tenancy_stack, "tokens", "revoke", token_id(client.token))
    events = json.loads(chorus(tenancy_stack, "audit", "--tenant", name, "--json"))
    assert [(e["action"], e["actor"]) for e in events] == [
        ("tenant.created", "local"),
        ("token.created", "local"),
        ("webhook_secret.rotated", f"token:{token_id(client.token)}"),
        ("token.revoked", "local"),
    ]
    assert "whsec_" not in json.dumps(events)
    listed = json.loads(chorus(tenancy_stack, "tenants", "list", "--json"))
    assert "whsec_" not in json.dumps(listed)
