"""The committed OpenAPI document is what Powertools generates from the API functions."""

from __future__ import annotations

import json

from scripts import openapi


def test_committed_openapi_document_is_current():
    assert openapi.DOCUMENT.read_text() == openapi.build(), "docs/openapi.json is stale: run `make openapi`"


def test_openapi_document_describes_the_prediction_request():
    document = json.loads(openapi.build())
    schema = document["components"]["schemas"]["PredictionRequest"]
    assert set(schema["properties"]) >= {"service", "input", "contentType", "callback", "metadata", "deadlineSeconds"}
    assert schema["required"] == ["service"]
    assert set(document["paths"]) == {
        "/predictions",
        "/predictions/{prediction_id}",
        "/predictions/{prediction_id}/cancel",
        "/predictions/{prediction_id}/webhook/redeliver",
        "/services",
        "/webhooks/secret",
        "/webhooks/secret/rotate",
    }
    assert set(document["paths"]["/predictions"]) == {"get", "post"}
    listing = {p["name"] for p in document["paths"]["/predictions"]["get"]["parameters"]}
    assert listing == {"limit", "cursor", "service", "status", "createdAfter", "createdBefore", "parentId"}
