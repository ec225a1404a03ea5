"""`Prefer: wait` through the new-prediction handler, against moto: the wait is bounded per tenant
(MAX_WAITS_PER_TENANT), a request that finds every slot taken answers at once, and
`Preference-Applied` says when the preference was honoured (RFC 7240)."""

from __future__ import annotations

import json
import time
from types import ModuleType
from typing import Any

import pytest

from chorus.adapters import waits
from chorus.core import settings
from tests.support.aws_resources import OTHER_TENANT, TENANT, as_tenant, load_event
from tests.support.handlers import FakeLambdaContext, load_handler

INLINE = {"service": "digits-svm", "input": {"pixels": [0] * 64}}  # never finishes: no process-input here


@pytest.fixture
def new_prediction(aws, monkeypatch) -> ModuleType:
    monkeypatch.setenv("MAX_WAITS_PER_TENANT", "1")
    settings.load.cache_clear()
    return load_handler("new_prediction")


def submit(handler: ModuleType, prefer: str | None, tenant: str = TENANT) -> tuple[dict[str, Any], float]:
    """The handler's answer to POST /predictions with inline input, and how long it took."""
    event = as_tenant(load_event("new_prediction_create.json"), tenant)
    event["body"] = json.dumps(INLINE)
    if prefer is not None:
        event["headers"]["Prefer"] = prefer
        event["multiValueHeaders"]["Prefer"] = [prefer]
    started = time.monotonic()
    response = handler.handler(event, FakeLambdaContext())
    return response, time.monotonic() - started


def headers(response: dict[str, Any]) -> dict[str, str]:
    merged = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    merged |= {k.lower(): ", ".join(v) for k, v in (response.get("multiValueHeaders") or {}).items()}
    return merged


def test_a_wait_with_a_free_slot_is_applied_and_says_so(new_prediction):
    # When a tenant with a free slot asks to wait a second for a prediction that will not finish by then
    response, took = submit(new_prediction, "wait=1")
    # Then the answer waited, says the preference was applied, and the slot is free again
    assert response["statusCode"] == 202 and took >= 1
    assert headers(response)["preference-applied"] == "wait=1"
    assert waits.claim_slot(TENANT, "next", lapses_at=time.time() + 30, now=time.time(), limit=1)


def test_a_wait_beyond_the_tenants_bound_answers_at_once_without_preference_applied(new_prediction):
    # Given the tenant's one wait slot held by another request
    assert waits.claim_slot(TENANT, "elsewhere", lapses_at=time.time() + 30, now=time.time(), limit=1)
    # When it asks to wait 20 s
    response, took = submit(new_prediction, "wait=20")
    # Then it gets its 202 at once, and no Preference-Applied
    assert response["statusCode"] == 202 and took < 5
    assert "preference-applied" not in headers(response)
    assert json.loads(response["body"])["status"] not in {"succeeded", "failed"}
    # While another tenant's wait is applied
    response, _ = submit(new_prediction, "wait=1", tenant=OTHER_TENANT)
    assert headers(response)["preference-applied"] == "wait=1"


def test_without_prefer_nothing_waits_or_claims_a_slot(new_prediction):
    response, took = submit(new_prediction, None)
    assert response["statusCode"] == 202 and "preference-applied" not in headers(response) and took < 5
    assert waits.claim_slot(TENANT, "next", lapses_at=time.time() + 30, now=time.time(), limit=1)
