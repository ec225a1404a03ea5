"""Tenancy in the domain, against moto: the caller read from the authorizer's context, every
prediction its tenant's (records, payload keys, idempotency, step ids), another tenant's
prediction exactly as unknown, and a tenant's listing."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from chorus.adapters import listings, payloads, predictions
from chorus.api.identity import authorize, caller_from_event
from chorus.api.models import PredictionRequest
from chorus.core.errors import Forbidden, InvalidRequest, PredictionNotFound, Unauthorized
from chorus.domain import cancel, deliveries, dispatch, queries, steps, submit
from chorus.events.models import StepInvocation
from chorus.model.records import Status
from chorus.model.tenancy import Scope
from tests.support import aws_resources
from tests.support.aws_resources import OTHER_TENANT, TENANT, authorizer, caller, load_event

ACME = caller()
GLOBEX = caller(OTHER_TENANT)
WEBHOOK = {"type": "webhook", "url": "https://hooks.example.com/chorus"}


def create(who=ACME, service: str = "digits-forest", **fields) -> dict:
    return submit.submit(PredictionRequest.model_validate({"service": service, **fields}), who)


# --- the caller --------------------------------------------------------------------------------------


def test_the_caller_is_read_from_the_authorizers_context():
    got = caller_from_event({"requestContext": {"authorizer": authorizer()}})
    assert got.tenant == TENANT and got.token_id == "a1b2c3d4e5f6"
    assert got.scopes == {Scope.CREATE, Scope.READ}


def test_unknown_scope_names_are_ignored_and_admin_implies_every_scope():
    context = {"tenant": TENANT, "tokenId": "a1b2c3d4e5f6", "scopes": "admin telepathy"}
    got = caller_from_event({"requestContext": {"authorizer": context}})
    assert got.scopes == {Scope.ADMIN}
    assert got.allows(Scope.CREATE) and got.allows(Scope.READ)


@pytest.mark.parametrize(
    "context",
    [
        None,
        "acme",
        {},
        {"tokenId": "a1b2c3d4e5f6", "scopes": "predictions:read"},
        {"tenant": "ACME!", "tokenId": "a1b2c3d4e5f6", "scopes": "predictions:read"},
        {"tenant": "acme", "scopes": "predictions:read"},
        {"tenant": "acme", "tokenId": "not-a-token", "scopes": "predictions:read"},
        {"tenant": "acme", "tokenId": "a1b2c3d4e5f6", "scopes": ["predictions:read"]},
    ],
)
def test_a_missing_or_malformed_context_is_unauthorized(context):
    event = {"requestContext": {} if context is None else {"authorizer": context}}
    with pytest.raises(Unauthorized):
        caller_from_event(event)


def test_a_token_without_the_routes_scope_is_forbidden():
    event = {"requestContext": {"authorizer": authorizer(scopes="predictions:read")}}
    assert authorize(event, Scope.READ).tenant == TENANT
    with pytest.raises(Forbidden, match="predictions:create"):
        authorize(event, Scope.CREATE)


# --- records and payloads ----------------------------------------------------------------------------


def test_a_prediction_and_its_upload_key_are_its_tenants(aws):
    view = create(contentType="image/png")
    record = predictions.get(view["id"])
    assert record.tenant == TENANT and record.child_salt is None
    assert view["upload"]["fields"]["key"] == f"inputs/{TENANT}/{view['id']}/input"
    policy = json.loads(base64.b64decode(view["upload"]["fields"]["policy"]))
    assert {"key": f"inputs/{TENANT}/{view['id']}/input"} in policy["conditions"]
    assert "tenant" not in view


def test_stored_times_have_milliseconds_and_z(aws):
    view = create(contentType="image/png")
    item = boto3.client("dynamodb").get_item(TableName=aws_resources.TABLE, Key={"id": {"S": view["id"]}})["Item"]
    assert len(item["createdAt"]["S"]) == len("2026-11-22T03:10:07.123Z") and item["createdAt"]["S"].endswith("Z")
    assert item["tenant"] == {"S": TENANT}


def test_upload_keys_name_tenant_and_prediction():
    assert payloads.upload_key_parts("inputs/acme/abc/input") == ("acme", "abc")
    assert payloads.prediction_id_from_upload_key("inputs/acme/abc/input") == "abc"
    for key in ("inputs/abc/input", "inputs//abc/input", "inputs/acme/abc/other", "steps/acme/abc/input"):
        assert payloads.upload_key_parts(key) is None


def test_an_object_under_another_tenants_prefix_does_not_start_the_prediction(aws):
    # Given acme's prediction, and an object naming it under globex's prefix
    view = create(contentType="application/json")
    key = payloads.upload_key(OTHER_TENANT, view["id"])
    boto3.client("s3").put_object(Bucket=aws_resources.BUCKET, Key=key, Body=b"{}", ContentType="application/json")
    # When its S3 event arrives (and even when it is dead-lettered)
    dispatch.receive_upload(aws_resources.BUCKET, key)
    dispatch.dead_lettered(view["id"], "uploaded input", tenant=OTHER_TENANT)
    # Then the prediction still awaits its own input
    assert predictions.get(view["id"]).status is Status.AWAITING_INPUT


# --- another tenant's prediction is not found ---------------------------------------------------------


def _not_found_message(call) -> str:
    with pytest.raises(PredictionNotFound) as raised:
        call()
    return raised.value.message


@pytest.mark.parametrize(
    "use",
    [
        lambda who, pid: queries.describe(who, pid),
        lambda who, pid: cancel.cancel(who, pid),
        lambda who, pid: deliveries.redeliver(who, pid),
    ],
    ids=["describe", "cancel", "redeliver"],
)
def test_another_tenants_prediction_is_exactly_an_unknown_one(aws, use, monkeypatch):
    monkeypatch.setattr("chorus.adapters.webhooks.resolve_addresses", lambda host, port: ["93.184.216.34"])
    view = create(contentType="application/json", callback=WEBHOOK)
    foreign = _not_found_message(lambda: use(GLOBEX, view["id"]))
    unknown = _not_found_message(lambda: use(GLOBEX, "0" * 32))
    assert foreign == unknown.replace("0" * 32, view["id"])
    # and the owner's prediction is untouched
    assert predictions.get(view["id"]).status is Status.AWAITING_INPUT


def test_waiting_on_another_tenants_prediction_sees_nothing(aws):
    view = create(contentType="application/json")
    assert queries.wait_until_finished(GLOBEX, view["id"], 0, fallback={"none": True}) == {"none": True}


# --- ensemble step ids ---------------------------------------------------------------------------------


def _run_step(parent_id: str, step: str = "svm", token: str = "token-1") -> str:
    event = load_event("get_transform_call_step.json")
    event["taskToken"] = token
    event["parent"]["id"] = parent_id
    event["parent"]["input"] = {
        "bucket": aws_resources.BUCKET,
        "key": payloads.upload_key(TENANT, parent_id),
        "contentType": "application/json",
    }
    event["step"] = {"name": step, "service": "digits-svm", "input": "{{ input }}"}
    for name in ("svm", "forest"):
        event["outputs"][name].update(bucket=aws_resources.BUCKET, key=f"outputs/{TENANT}/{name}/output")
    return steps.run_step(StepInvocation.model_validate(event))["childId"]


def test_child_ids_are_keyed_by_a_secret_salt_per_parent(aws):
    first, second = create(service="digits-ensemble", contentType="application/json"), None
    second = create(service="digits-ensemble", contentType="application/json")
    salts = {predictions.get(v["id"]).child_salt for v in (first, second)}
    assert len(salts) == 2 and all(s and len(s) == 32 for s in salts)
    one, two = _run_step(first["id"]), _run_step(second["id"])
    # Deterministic for a retry of the same step, different for two parents, not derivable from the id
    assert _run_step(first["id"], token="token-2") == one
    assert one != two
    old_namespace = uuid.UUID("6f1c8a52-1d0e-4c55-9a51-3c3f0a3b5e21")
    for parent, child in ((first, one), (second, two)):
        assert child not in {
            uuid.uuid5(old_namespace, f"{parent['id']}/svm").hex,
            uuid.uuid5(uuid.UUID(parent["id"]), "svm").hex,
        }
    # and a step is its ensemble's tenant's
    assert predictions.get(one).tenant == TENANT


def test_listing_leaves_out_steps_unless_asked_for_by_parent(aws):
    parent = create(service="digits-ensemble", contentType="application/json")
    child = _run_step(parent["id"])
    top = queries.list_predictions(ACME, limit=100)
    assert [p["id"] for p in top["predictions"]] == [parent["id"]]
    listed = queries.list_predictions(ACME, limit=100, parent_id=parent["id"])
    assert [(p["id"], p["parentId"], p["stepName"]) for p in listed["predictions"]] == [(child, parent["id"], "svm")]
    assert queries.list_predictions(GLOBEX, limit=100, parent_id=parent["id"]) == {
        "predictions": [],
        "nextCursor": None,
    }


# --- listings ---------------------------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    """Each submit a second after the last, so createdAt orders them."""
    moments = iter(datetime(2026, 11, 22, 3, 0, tzinfo=UTC) + timedelta(seconds=i) for i in range(1000))
    monkeypatch.setattr("chorus.domain.submit.utcnow", lambda: next(moments))


def test_a_tenants_listing_pages_newest_first_without_overlap(aws, clock):
    created = [create(contentType="application/json")["id"] for _ in range(45)]
    create(GLOBEX, contentType="application/json")
    pages, cursor = [], None
    while True:
        page = queries.list_predictions(ACME, limit=20, cursor=cursor)
        pages.append([p["id"] for p in page["predictions"]])
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [20, 20, 5]
    assert [i for p in pages for i in p] == created[::-1]


def test_listing_filters(aws, clock):
    ids = [create(contentType="application/json")["id"] for _ in range(4)]
    svm = create(service="digits-svm", contentType="application/json")["id"]
    cancel.cancel(ACME, ids[1])

    def listed(**f) -> list[str]:
        page = queries.list_predictions(ACME, limit=100, filters=listings.Filters(**f))
        return [p["id"] for p in page["predictions"]]

    assert listed(service="digits-svm") == [svm]
    assert listed(status=Status.CANCELED) == [ids[1]]
    start = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    assert listed(created_after=start + timedelta(seconds=1)) == [svm, ids[3], ids[2], ids[1]]
    assert listed(created_before=start + timedelta(seconds=2)) == [ids[1], ids[0]]
    assert listed(created_after=start + timedelta(seconds=1), created_before=start + timedelta(seconds=3)) == [
        ids[2],
        ids[1],
    ]
    assert listed(created_after=start + timedelta(seconds=3), created_before=start + timedelta(seconds=1)) == []
    assert listed(service="digits-svm", status=Status.CANCELED) == []


def _cursor(document: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        "e30",  # {}
        _cursor({"id": "x", "tenant": TENANT}),
        _cursor({"id": "x", "tenant": OTHER_TENANT, "createdAt": "2026-11-22T03:00:00.000Z"}),
        _cursor({"id": "x", "tenant": TENANT, "createdAt": "yesterday"}),
        _cursor({"id": 7, "tenant": TENANT, "createdAt": "2026-11-22T03:00:00.000Z"}),
        _cursor(["id", "tenant", "createdAt"]),
        "x" * 2000,
    ],
)
def test_a_cursor_this_listing_did_not_hand_out_is_invalid(aws, cursor):
    with pytest.raises(InvalidRequest, match="cursor"):
        queries.list_predictions(ACME, limit=20, cursor=cursor)


def test_another_tenants_cursor_is_invalid(aws, clock):
    for _ in range(3):
        create(GLOBEX, contentType="application/json")
    theirs = queries.list_predictions(GLOBEX, limit=1)["nextCursor"]
    assert theirs is not None
    with pytest.raises(InvalidRequest, match="cursor"):
        queries.list_predictions(ACME, limit=1, cursor=theirs)


def test_background_work_logs_the_tenant_and_the_token_that_created_the_prediction(aws):
    from chorus.core.observability import logger
    from chorus.model.records import S3Location

    created = create()
    logger.remove_keys(["tenant", "token_id", "prediction_id"])
    location = S3Location(
        bucket=aws["PAYLOADS_BUCKET"],
        key=payloads.upload_key(ACME.tenant, created["id"]),
        contentType="application/json",
    )
    dispatch.start(created["id"], location, 0)  # an empty input: failed, after saying whose it is
    keys = logger.get_current_keys()
    assert (keys["tenant"], keys["token_id"], keys["prediction_id"]) == (ACME.tenant, ACME.token_id, created["id"])
    assert predictions.get(created["id"]).token_id == ACME.token_id
