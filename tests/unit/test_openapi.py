"""docs/openapi.json: what Powertools generates from the API functions, a valid OpenAPI 3.1
document, every status each route answers, and response models that describe exactly what the
API returns (real representations, validated against the document closed to undeclared fields)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from openapi_spec_validator import validate

from chorus.adapters import payloads, predictions
from chorus.api.models import PredictionRequest
from chorus.api.responses import StepStatus, error_body
from chorus.api.views import represent
from chorus.core.clock import utcnow
from chorus.domain import queries, submit, webhook_secrets
from chorus.model.records import (
    Delivery,
    DeliveryStatus,
    EmailCallback,
    ErrorDetail,
    PredictionRecord,
    S3Location,
    Status,
    WebhookCallback,
)
from scripts import openapi
from tests.support import aws_resources
from tests.support.aws_resources import TENANT, caller, load_event
from tests.support.handlers import FakeLambdaContext, load_handler
from tests.support.openapi import problems
from tests.support.registry_documents import ensemble, rule

EVERY_ROUTE = {"400", "401", "403", "413", "415", "429", "5XX"}  # the edge and API Gateway
STATUSES = {
    ("post", "/predictions"): {"200", "202", "409"},
    ("get", "/predictions"): {"200"},
    ("get", "/predictions/{prediction_id}"): {"200", "404"},
    ("post", "/predictions/{prediction_id}/cancel"): {"200", "404", "409"},
    ("post", "/predictions/{prediction_id}/webhook/redeliver"): {"202", "404", "409"},
    ("get", "/services"): {"200"},
    ("get", "/services/{name}"): {"200", "404"},
    ("get", "/services/{name}/monitoring"): {"200", "404"},
    ("get", "/webhooks/secret"): {"200", "404"},
    ("post", "/webhooks/secret/rotate"): {"200", "404", "409"},
}
BODIES = {
    ("post", "/predictions"): "CreatedPrediction",
    ("get", "/predictions"): "PredictionPage",
    ("get", "/predictions/{prediction_id}"): "Prediction",
    ("post", "/predictions/{prediction_id}/cancel"): "Prediction",
    ("post", "/predictions/{prediction_id}/webhook/redeliver"): "Prediction",
    ("get", "/services"): "ServiceList",
    ("get", "/services/{name}"): "ServiceDetail",
    ("get", "/services/{name}/monitoring"): "Monitoring",
    ("get", "/webhooks/secret"): "WebhookSecret",
    ("post", "/webhooks/secret/rotate"): "RotatedWebhookSecret",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return dict(json.loads(openapi.build()))


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method, path): operation for path, item in document["paths"].items() for method, operation in item.items()}


def test_committed_openapi_document_is_current():
    assert openapi.DOCUMENT.read_text() == openapi.build(), "docs/openapi.json is stale: run `make openapi`"


def test_openapi_document_is_valid_openapi_3(document):
    assert document["openapi"].startswith("3.")
    validate(document)  # raises naming the first violation of the OpenAPI 3.1 schema


def test_openapi_document_describes_the_prediction_request(document):
    schema = document["components"]["schemas"]["PredictionRequest"]
    assert set(schema["properties"]) >= {"service", "input", "contentType", "callback", "metadata", "deadlineSeconds"}
    assert schema["required"] == ["service"]
    assert set(document["paths"]) == {path for _, path in STATUSES}
    listing = {p["name"] for p in document["paths"]["/predictions"]["get"]["parameters"]}
    assert listing == {"limit", "cursor", "service", "status", "createdAfter", "createdBefore", "parentId"}
    creating = {p["name"].lower() for p in document["paths"]["/predictions"]["post"]["parameters"]}
    assert creating == {"idempotency-key", "prefer"}


def test_every_route_declares_every_status_it_answers_and_no_other(document):
    operations = _operations(document)
    assert set(operations) == set(STATUSES)
    for key, operation in operations.items():
        assert set(operation["responses"]) == STATUSES[key] | EVERY_ROUTE, key


def test_every_answer_names_its_model_and_every_refusal_the_error_shape(document):
    for key, operation in _operations(document).items():
        for status, response in operation["responses"].items():
            schema = response["content"]["application/json"]["schema"]
            expected = BODIES[key] if status.startswith("2") else "ErrorResponse"
            assert schema == {"$ref": f"#/components/schemas/{expected}"}, (key, status)


def test_document_names_the_v1_stage_bearer_auth_and_no_framework_422(document):
    assert all(server["url"].endswith("/v1") for server in document["servers"])
    assert document["security"] == [{"bearer": []}]
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearer"]["description"],
    }
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert all("422" not in operation["responses"] for operation in _operations(document).values())


def test_created_prediction_links_to_reading_canceling_and_redelivering_it(document):
    created = document["paths"]["/predictions"]["post"]["responses"]["202"]
    operation_ids = {operation["operationId"] for operation in _operations(document).values()}
    assert {link["operationId"] for link in created["links"].values()} <= operation_ids
    assert created["headers"]["Location"]["required"] is True


def test_step_statuses_cover_every_prediction_status():
    assert {status.value for status in Status} <= set(StepStatus.__args__)


# --- real representations against the document --------------------------------------------------------

CLAIMS = ensemble(
    "audit",
    [
        {"name": "estimate", "service": "digits-svm"},
        {"name": "photos", "service": "digits-svm", "forEach": "input.photos", "input": {"pixels": "{{ item }}"}},
        {"name": "review", "service": "digits-stacker", "when": "estimate.output.label > 5"},
        rule("decide", {"decision": "repair"}),
        {"name": "value", "service": "digits-forest"},
    ],
    "{{ decide }}",
)


def record(**fields: Any) -> PredictionRecord:
    now = utcnow()
    defaults: dict[str, Any] = {
        "id": fields.get("id", "p" * 32),
        "tenant": TENANT,
        "service": "digits-svm",
        "kind": "model",
        "status": Status.RUNNING,
        "created_at": now - timedelta(seconds=3),
        "updated_at": now,
        "queued_at": now - timedelta(seconds=2),
        "started_at": now - timedelta(seconds=1),
        "content_type": "application/json",
        "metadata": {"order": "A-17", "lines": [1, 2.5, None, True, {"sku": "x"}]},
        "ttl": 2_000_000_000,
    }
    return PredictionRecord(**{**defaults, **fields})


def stored(**fields: Any) -> PredictionRecord:
    created = record(**fields)
    predictions.create(created)
    return created


def assert_conforms(body: Any, schema_name: str) -> None:
    assert problems(body, schema_name) == [], json.dumps(body, indent=1)


def test_model_predictions_with_output_error_and_deliveries_are_described_exactly(aws):
    # Given a succeeded prediction with an output, a deadline and a webhook mid-retry, and a failed one
    # whose e-mail is not sent yet
    now = utcnow()
    output = S3Location(bucket=aws_resources.BUCKET, key=f"outputs/{TENANT}/p/output", contentType="application/json")
    retrying = Delivery(attempts=2, last_attempt_at=now, last_error="HTTP 500", next_attempt_at=now)
    succeeded = record(
        status=Status.SUCCEEDED,
        completed_at=now,
        output=output,
        deadline_at=now + timedelta(hours=1),
        callback=WebhookCallback(url="https://hooks.example.com/c", events=("start", "completed")),
        deliveries={
            "start": Delivery(attempts=1, status=DeliveryStatus.DELIVERED, last_attempt_at=now),
            "completed": retrying,
        },
    )
    failed = record(
        status=Status.FAILED,
        completed_at=now,
        error=ErrorDetail(code="model_error", message="3 pixels"),
        callback=EmailCallback(address="ann@example.com"),
    )
    # When they are represented (GET /predictions/{id}, webhooks, e-mails)
    views = [represent(succeeded), represent(failed), represent(record(status=Status.AWAITING_INPUT))]
    # Then each is exactly a Prediction
    assert views[0]["webhook"]["nextAttemptAt"] and views[0]["output"]["url"] and views[1]["email"]
    for view in views:
        assert_conforms(view, "Prediction")


def test_ensemble_steps_of_every_shape_are_described_exactly(aws, custom_registry):
    # Given an ensemble mid-run: a retried step, a fan-out with a failed item, a skipped step, a rule
    # step with its decision and a step not reached yet; and a canceled one whose steps never ran
    custom_registry(CLAIMS)
    now = utcnow()
    parent = stored(id="e" * 32, service="audit", kind="ensemble", child_salt="0" * 32)
    child: dict[str, Any] = {"parent_id": parent.id, "started_at": now, "updated_at": now}
    stored(
        id="c1", step_name="estimate", status=Status.FAILED, error=ErrorDetail(code="model_error", message="x"), **child
    )
    stored(id="c2", step_name="estimate", attempt=1, status=Status.SUCCEEDED, completed_at=now, **child)
    for item, status in enumerate((Status.SUCCEEDED, Status.FAILED, Status.RUNNING)):
        error = ErrorDetail(code="model_error", message="3 pixels") if status is Status.FAILED else None
        stored(id=f"i{item}", step_name="photos", item_index=item, status=status, error=error, **child)
    decision = {"condition": "estimate.output.label > 5", "values": {"estimate.output.label": 1}, "run": False}
    stored(id="c3", step_name="review", status=Status.SKIPPED, decision=decision, **child)
    rule_step = stored(
        id="c4", step_name="decide", kind="rule", status=Status.SUCCEEDED, decision={"case": "default"}, **child
    )
    canceled = record(id="f" * 32, service="audit", kind="ensemble", status=Status.CANCELED, completed_at=now)
    # When the ensembles and a step are represented
    view = represent(parent)
    # Then each is exactly a Prediction, whatever shape its steps take
    statuses = {step["name"]: step["status"] for step in view["steps"]}
    assert statuses == {
        "estimate": "succeeded",
        "photos": "running",
        "review": "skipped",
        "decide": "succeeded",
        "value": "pending",
    }
    assert view["steps"][0]["attempts"] == 2 and view["steps"][1]["itemErrors"]
    assert {step["status"] for step in represent(canceled)["steps"]} == {"not_run"}
    for body in (view, represent(canceled), represent(rule_step)):
        assert_conforms(body, "Prediction")


def test_creation_answers_and_listing_pages_are_described_exactly(aws):
    # Given an upload and an inline prediction created by the caller
    acme = caller()
    upload = submit.submit(PredictionRequest(service="digits-svm", contentType="image/png"), acme)
    inline = submit.submit(
        PredictionRequest(service="digits-svm", input={"pixels": [0] * 64}, metadata={"n": 1}, deadlineSeconds=60),
        acme,
    )
    # When the creation answers and the listing's pages are read
    first = queries.list_predictions(acme, limit=1)
    last = queries.list_predictions(acme, limit=1, cursor=first["nextCursor"])
    # Then they are exactly a CreatedPrediction and PredictionPages
    assert upload["upload"]["fields"] and "upload" not in inline and first["nextCursor"]
    assert_conforms(upload, "CreatedPrediction")
    assert_conforms(inline, "CreatedPrediction")
    assert_conforms(first, "PredictionPage")
    assert_conforms(last, "PredictionPage")
    assert payloads.upload_key(TENANT, upload["id"]) == upload["upload"]["fields"]["key"]


def test_services_secrets_and_errors_are_described_exactly(aws):
    # Given the registry, the tenant's webhook secret and an error
    results = load_handler("results")
    response = results.handler(load_event("results_list_services.json"), FakeLambdaContext())
    acme = caller(scopes="admin")
    rotated = webhook_secrets.rotate(acme)
    # When they are answered, Then each is exactly its model
    assert response["statusCode"] == 200
    assert_conforms(json.loads(response["body"]), "ServiceList")
    assert_conforms(rotated, "RotatedWebhookSecret")
    assert_conforms(webhook_secrets.current(acme), "WebhookSecret")
    assert_conforms(error_body("not_found", "prediction 'x' not found"), "ErrorResponse")


def test_an_undeclared_field_does_not_conform():
    # The check above would catch a field the models forgot
    assert problems({"error": {"code": "x", "message": "y", "detail": 1}}, "ErrorResponse")
