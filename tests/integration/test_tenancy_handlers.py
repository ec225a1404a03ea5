"""Tenancy through the real API handlers (new-prediction and results), fed the sample events with
the authorizer's context: 401 without an identity, 403 without the route's scope, another
tenant's prediction answered exactly like an unknown one, a tenant's listing, and
Idempotency-Key per tenant."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest

from chorus.api.models import PredictionRequest
from chorus.domain import submit
from tests.support.aws_resources import OTHER_TENANT, TENANT, as_tenant, caller, load_event
from tests.support.handlers import FakeLambdaContext, load_handler

UNKNOWN = "0" * 32
ROUTES = ["create", "get", "list", "cancel", "redeliver", "services"]
WRITES = {"create", "cancel", "redeliver"}


@pytest.fixture
def handlers(aws, monkeypatch) -> dict[str, ModuleType]:
    monkeypatch.setattr("chorus.adapters.webhooks.resolve_addresses", lambda host, port: ["93.184.216.34"])
    return {"new_prediction": load_handler("new_prediction"), "results": load_handler("results")}


def route_event(route: str, prediction_id: str = UNKNOWN) -> tuple[str, dict[str, Any]]:
    if route == "create":
        return "new_prediction", load_event("new_prediction_create.json")
    if route == "services":
        return "results", load_event("results_list_services.json")
    if route == "list":
        event = load_event("results_list_predictions.json")
        event["queryStringParameters"] = event["multiValueQueryStringParameters"] = None
        return "results", event
    function, name, suffix = {
        "get": ("results", "results_get_prediction.json", ""),
        "cancel": ("new_prediction", "new_prediction_cancel.json", "/cancel"),
        "redeliver": ("new_prediction", "new_prediction_cancel.json", "/webhook/redeliver"),
    }[route]
    event = load_event(name)
    event["resource"] = event["requestContext"]["resourcePath"] = "/predictions/{id}" + suffix
    event["path"] = f"/predictions/{prediction_id}{suffix}"
    event["pathParameters"] = {"id": prediction_id}
    return function, event


def call(handlers: dict[str, ModuleType], function: str, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = handlers[function].handler(event, FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"])


def send(handlers, route: str, prediction_id: str = UNKNOWN, tenant: str = TENANT, **query: str):
    function, event = route_event(route, prediction_id)
    as_tenant(event, tenant)
    if query:
        event["queryStringParameters"] = query
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    return call(handlers, function, event)


def create(handlers, tenant: str = TENANT, key: str | None = None, service: str = "digits-forest"):
    _, event = route_event("create")
    as_tenant(event, tenant)
    event["body"] = json.dumps(
        {
            "service": service,
            "contentType": "image/png",
            "callback": {"type": "webhook", "url": "https://h.example.com/x"},
        }
    )
    if key is not None:
        event["headers"]["Idempotency-Key"] = key
        event["multiValueHeaders"]["Idempotency-Key"] = [key]
    return call(handlers, "new_prediction", event)


# --- 401 and 403 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("context", [None, {}, {"tenant": "acme"}, {"tenant": "acme", "tokenId": "zz", "scopes": ""}])
def test_a_request_without_a_valid_identity_is_401(handlers, route, context):
    function, event = route_event(route)
    if context is None:
        event["requestContext"].pop("authorizer")
    else:
        event["requestContext"]["authorizer"] = context
    status, body = call(handlers, function, event)
    assert status == 401 and body["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("route", ROUTES)
def test_a_token_without_the_routes_scope_is_403(handlers, route):
    needed, other = (
        ("predictions:create", "predictions:read") if route in WRITES else ("predictions:read", "predictions:create")
    )
    function, event = route_event(route)
    as_tenant(event, TENANT, scopes=other)
    status, body = call(handlers, function, event)
    assert status == 403 and body["error"]["code"] == "forbidden" and needed in body["error"]["message"]


@pytest.mark.parametrize("route", ["create", "list", "services"])
def test_admin_implies_every_scope(handlers, route):
    function, event = route_event(route)
    as_tenant(event, TENANT, scopes="admin")
    assert call(handlers, function, event)[0] in {200, 202}


# --- another tenant's prediction ---------------------------------------------------------------------


@pytest.mark.parametrize("route", ["get", "cancel", "redeliver"])
def test_another_tenants_prediction_is_404_like_an_unknown_one(handlers, route):
    _, created = create(handlers)
    foreign_status, foreign = send(handlers, route, created["id"], tenant=OTHER_TENANT)
    unknown_status, unknown = send(handlers, route, UNKNOWN, tenant=OTHER_TENANT)
    assert foreign_status == unknown_status == 404
    assert foreign == json.loads(json.dumps(unknown).replace(UNKNOWN, created["id"]))
    # and its owner still sees it as it was
    status, mine = send(handlers, "get", created["id"])
    assert status == 200 and mine["status"] == "awaiting_input"


# --- Idempotency-Key ------------------------------------------------------------------------------------


def test_the_same_idempotency_key_from_two_tenants_gives_two_predictions(handlers):
    _, first = create(handlers, TENANT, key="order-1")
    _, again = create(handlers, TENANT, key="order-1")
    _, theirs = create(handlers, OTHER_TENANT, key="order-1")
    assert first["id"] == again["id"] != theirs["id"]
    assert send(handlers, "get", theirs["id"], tenant=OTHER_TENANT)[0] == 200
    assert send(handlers, "get", theirs["id"], tenant=TENANT)[0] == 404


# --- GET /predictions -----------------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    moments = iter(datetime(2026, 11, 22, 3, 0, tzinfo=UTC) + timedelta(seconds=i) for i in range(1000))
    monkeypatch.setattr("chorus.domain.submit.utcnow", lambda: next(moments))


def seed(count: int, tenant: str = TENANT, service: str = "digits-forest") -> list[str]:
    request = PredictionRequest(service=service, contentType="application/json")
    return [submit.submit(request, caller(tenant))["id"] for _ in range(count)]


def test_listing_pages_through_45_predictions_newest_first(handlers, clock):
    created = seed(45)
    seed(2, OTHER_TENANT)
    pages, cursor = [], None
    while True:
        status, page = send(handlers, "list", limit="20", **({"cursor": cursor} if cursor else {}))
        assert status == 200
        pages.append([p["id"] for p in page["predictions"]])
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [20, 20, 5]
    assert [i for p in pages for i in p] == created[::-1]
    shown = send(handlers, "list", limit="1")[1]["predictions"][0]
    assert set(shown) >= {"id", "service", "kind", "status", "createdAt", "completedAt", "metadata"}
    assert "output" not in shown and "steps" not in shown


def test_listing_defaults_to_20(handlers, clock):
    seed(21)
    status, page = send(handlers, "list")
    assert status == 200 and len(page["predictions"]) == 20 and page["nextCursor"]


def test_listing_filters(handlers, clock):
    forest = seed(3)
    svm = seed(1, service="digits-svm")
    send(handlers, "cancel", forest[0])
    ids = lambda **q: [p["id"] for p in send(handlers, "list", **q)[1]["predictions"]]  # noqa: E731
    assert ids(service="digits-svm") == svm
    assert ids(status="canceled") == [forest[0]]
    assert ids(createdAfter="2026-11-22T03:00:01Z") == svm + forest[:0:-1]
    assert ids(createdBefore="2026-11-22T04:00:02+01:00") == forest[1::-1]
    assert ids(createdAfter="2026-11-22T03:00:01.000Z", createdBefore="2026-11-22T03:00:03Z") == forest[:0:-1]
    assert ids(parentId=forest[0]) == []


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "abc"},
        {"limit": "1.5"},
        {"limit": " 20"},
        {"limit": "020"},
        {"cursor": "not-a-cursor"},
        {"cursor": "e30"},
        {"status": "sleeping"},
        {"createdAfter": "yesterday"},
        {"createdBefore": "2026-11-22T03:00:00"},
        {"parentId": "../x"},
    ],
)
def test_bad_listing_parameters_are_400(handlers, query):
    status, body = send(handlers, "list", **query)
    assert status == 400 and body["error"]["code"] == "invalid_request"


def test_another_tenants_cursor_is_400(handlers, clock):
    seed(3, OTHER_TENANT)
    theirs = send(handlers, "list", tenant=OTHER_TENANT, limit="1")[1]["nextCursor"]
    status, body = send(handlers, "list", cursor=theirs)
    assert status == 400 and body["error"]["code"] == "invalid_request"


def test_log_lines_carry_the_tenant_and_token_id(handlers):
    from chorus.core.observability import logger

    send(handlers, "get", tenant=OTHER_TENANT)
    keys = logger.get_current_keys()
    assert keys["tenant"] == OTHER_TENANT and keys["token_id"] == caller(OTHER_TENANT).token_id
    function, event = route_event("get")
    event["requestContext"].pop("authorizer")
    call(handlers, function, event)
    assert "tenant" not in logger.get_current_keys()


def test_the_sample_list_event_is_accepted(handlers):
    status, body = call(handlers, "results", load_event("results_list_predictions.json"))
    assert status == 200 and body == {"predictions": [], "nextCursor": None}


def test_a_query_parameter_the_route_does_not_take_is_refused(handlers):
    # The listing takes its seven parameters; any other name (even an empty one) is a 400, as is a
    # parameter on a route that takes none
    assert send(handlers, "list", limit="5", service="digits-svm")[0] == 200
    for route, query in (
        ("list", {"": "true"}),
        ("list", {"\x91": "null"}),
        ("list", {"page": "2"}),
        ("get", {"x": "1"}),
    ):
        status, body = send(handlers, route, **query)
        assert status == 400 and body["error"]["code"] == "invalid_request", (route, query, body)
        assert "unknown query parameter" in body["error"]["message"]
