"""Decision workflows in get-transform-call against moto: conditions, rule steps, optional and
skipped steps read as null, fan-out items, retried attempts, and the audit trail a client sees."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from chorus.adapters import payloads, predictions
from chorus.api.models import PredictionRequest
from chorus.api.views import represent
from chorus.domain import callbacks, results, steps
from chorus.domain import submit as submission
from chorus.events.models import StepInvocation
from chorus.model.mapping import MappingError
from chorus.model.records import ErrorDetail, Status
from tests.support import aws_resources
from tests.support.aws_resources import TENANT, caller
from tests.support.registry_documents import ensemble, rule

ACME = caller()
BUCKET = aws_resources.BUCKET
CLAIMS = ensemble(
    "claims",
    [
        {"name": "estimate", "service": "digits-svm"},
        {"name": "value", "service": "digits-forest", "optional": True},
        {"name": "photos", "service": "digits-svm", "forEach": "input.photos", "input": {"pixels": "{{ item }}"}},
        {"name": "review", "service": "digits-stacker", "when": "estimate.output.cost > 1000"},
        rule(
            "decide",
            {"decision": "repair", "cost": "{{ estimate.output.cost }}"},
            cases=[
                {
                    "when": "estimate.output.cost >= 0.7 * (value.output.price ?? 1e9)",
                    "output": {"decision": "total_loss", "value": "{{ value.output.price }}"},
                }
            ],
        ),
    ],
    "{{ decide }}",
)


@pytest.fixture
def claim(aws, custom_registry) -> dict[str, Any]:
    """A running `claims` prediction (an ensemble over the demo models) with an uploaded input."""
    custom_registry(CLAIMS)
    view = submission.submit(PredictionRequest(service="claims", contentType="application/json"), ACME)
    put(payloads.upload_key(TENANT, view["id"]), {"photos": [[1] * 64, [2] * 64, "not pixels"]})
    predictions.claim_dispatch(view["id"], location(payloads.upload_key(TENANT, view["id"])), predictions_lease())
    return view


def predictions_lease() -> Any:
    from datetime import timedelta

    from chorus.core.clock import utcnow

    return utcnow() + timedelta(minutes=5)


def put(key: str, document: Any) -> None:
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=json.dumps(document).encode())


def location(key: str) -> payloads.S3Location:
    return payloads.S3Location(bucket=BUCKET, key=key, contentType="application/json")


def outcome(step: str, document: Any) -> dict[str, Any]:
    key = f"outputs/{TENANT}/{step}/output"
    put(key, document)
    return {
        "id": f"child-{step}",
        "bucket": BUCKET,
        "key": key,
        "contentType": "application/json",
        "status": "succeeded",
    }


def invoke(parent: dict, step: str | None, action: str = "step", **fields: Any) -> StepInvocation:
    event: dict[str, Any] = {
        "action": action,
        "parent": {
            "id": parent["id"],
            "service": "claims",
            "input": location(payloads.upload_key(TENANT, parent["id"])).as_dict(),
        },
        "outputs": fields.pop("outputs", {}),
        **fields,
    }
    if step is not None:
        event["step"] = {"name": step}
    if action == "step":
        event.setdefault("taskToken", f"token-{step}-{fields.get('item')}-{fields.get('attempt', 0)}")
    return StepInvocation.model_validate(event)


def child_of(parent: dict, step: str, **key: Any) -> Any:
    return predictions.get(steps.child_id(predictions.get(parent["id"]), step, **key))


# --- conditions --------------------------------------------------------------------------------------


def test_false_condition_records_the_step_skipped_with_the_values_it_read(claim):
    # Given an estimate below the review threshold
    outputs = {"estimate": outcome("estimate", {"cost": 800})}
    # When the review step is invoked
    answer = steps.run_step(invoke(claim, "review", outputs=outputs))
    # Then no model runs: the step is recorded skipped with its condition, the values and the result
    child = child_of(claim, "review")
    assert answer["status"] == "skipped" and child.status is Status.SKIPPED and child.input is None
    assert child.decision == {
        "condition": "estimate.output.cost > 1000",
        "values": {"estimate.output.cost": 800},
        "result": False,
    }


def test_true_condition_runs_the_step_and_keeps_the_decision(claim):
    outputs = {"estimate": outcome("estimate", {"cost": 5000})}
    steps.run_step(invoke(claim, "review", outputs=outputs))
    child = child_of(claim, "review")
    assert child.status is not Status.SKIPPED and child.input is not None
    assert child.decision is not None and child.decision["result"] is True


def test_skipped_child_resumes_its_task_with_status_skipped(claim, monkeypatch):
    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr("chorus.adapters.executions.send_success", lambda token, out: sent.append((token, out)) or True)
    steps.run_step(invoke(claim, "review", outputs={"estimate": outcome("estimate", {"cost": 1})}))
    ((token, output),) = sent
    assert token == "token-review-None-0" and output["status"] == "skipped" and "key" not in output


# --- rules -------------------------------------------------------------------------------------------


def test_rule_step_takes_the_first_matching_case_and_stores_its_output(claim):
    # Given a repair estimate above 70 % of the market value
    outputs = {"estimate": outcome("estimate", {"cost": 8000}), "value": outcome("value", {"price": 10000})}
    # When the rule step runs
    answer = steps.run_step(invoke(claim, "decide", outputs=outputs))
    # Then it is a succeeded child of kind rule whose stored output is the matching case's
    child = predictions.get(answer["childId"])
    assert child.kind == "rule" and child.status is Status.SUCCEEDED and child.output is not None
    assert payloads.read_json(child.output) == {"decision": "total_loss", "value": 10000}
    # And the audit trail names the case and the values it compared
    assert child.decision["case"] == 1
    (seen,) = child.decision["conditions"]
    assert seen["values"] == {"estimate.output.cost": 8000, "value.output.price": 10000} and seen["result"] is True


def test_rule_falls_back_to_its_default(claim):
    outputs = {"estimate": outcome("estimate", {"cost": 500}), "value": outcome("value", {"price": 10000})}
    answer = steps.run_step(invoke(claim, "decide", outputs=outputs))
    child = predictions.get(answer["childId"])
    assert payloads.read_json(child.output) == {"decision": "repair", "cost": 500}
    assert child.decision["case"] == "default"


def test_optional_step_that_failed_reads_null_and_its_default_applies(claim):
    # Given the optional value step failed (Step Functions caught it)
    outputs = {"estimate": outcome("estimate", {"cost": 8000}), "value": {"Error": "StepFailed", "Cause": "boom"}}
    # When the rule runs, Then `value.output.price ?? 1e9` read null and took its default: no total loss
    answer = steps.run_step(invoke(claim, "decide", outputs=outputs))
    assert payloads.read_json(predictions.get(answer["childId"]).output) == {"decision": "repair", "cost": 8000}


def test_reference_to_a_skipped_step_reads_null_but_a_missing_field_still_fails(claim, custom_registry):
    # Given a rule that reads a skipped step and a present one
    custom_registry(
        ensemble(
            "claims",
            [
                {"name": "estimate", "service": "digits-svm"},
                {"name": "review", "service": "digits-stacker", "when": "false"},
                rule("decide", {"review": "{{ review.output.label }}", "cost": "{{ estimate.output.nothing }}"}),
            ],
            "{{ decide }}",
        )
    )
    outputs = {"estimate": outcome("estimate", {"cost": 1}), "review": {"id": "x", "status": "skipped"}}
    # When it runs, Then the missing field of the succeeded step is an error naming it
    with pytest.raises(MappingError, match=r"step 'decide' \(rule\).*estimate\.output\.nothing.*matched nothing"):
        steps.run_step(invoke(claim, "decide", outputs=outputs))


# --- fan-out -------------------------------------------------------------------------------------------


def test_items_step_stores_each_items_input_and_answers_the_indices(claim):
    answer = steps.expand_items(invoke(claim, "photos", action="items"))
    assert answer == {"items": [0, 1, 2], "skipped": False}
    parent = predictions.get(claim["id"])
    stored = [
        payloads.read_json(location(payloads.step_input_key(TENANT, steps.child_id(parent, "photos", item=i))))
        for i in range(3)
    ]
    assert stored == [{"pixels": [1] * 64}, {"pixels": [2] * 64}, {"pixels": "not pixels"}]


def test_item_task_creates_the_items_child_on_its_stored_input(claim):
    steps.expand_items(invoke(claim, "photos", action="items"))
    answer = steps.run_step(invoke(claim, "photos", item=1))
    child = predictions.get(answer["childId"])
    assert (child.step_name, child.item_index) == ("photos", 1)
    assert child.input is not None and child.input.key.endswith(
        steps.child_id(predictions.get(claim["id"]), "photos", item=1) + "/input"
    )


def test_for_each_that_is_not_a_list_at_run_time_fails_naming_the_step(claim, custom_registry):
    custom_registry(
        ensemble(
            "claims",
            [{"name": "photos", "service": "digits-svm", "forEach": "input.photos[0][0]"}],
            {"photos": "{{ input.photos }}"},
        )
    )
    with pytest.raises(MappingError, match=r"step 'photos' \(digits-svm\): forEach .* yielded int, not a list"):
        steps.expand_items(invoke(claim, "photos", action="items"))


def test_more_items_than_declared_are_refused(claim, custom_registry):
    declared = {
        "name": "photos",
        "service": "digits-svm",
        "forEach": "input.photos",
        "input": "{{ item }}",
        "maxItems": 2,
    }
    custom_registry(ensemble("claims", [declared], {"photos": "{{ input.photos }}"}))
    with pytest.raises(Exception, match=r"forEach yielded 3 items; the step allows at most 2"):
        steps.expand_items(invoke(claim, "photos", action="items"))


def test_fan_out_whose_condition_is_false_is_recorded_skipped_with_no_items(claim, custom_registry):
    declared = {
        "name": "photos",
        "service": "digits-svm",
        "forEach": "input.photos",
        "when": "$count(input.photos) > 5",
    }
    custom_registry(ensemble("claims", [declared], {"photos": "{{ input.photos }}"}))
    assert steps.expand_items(invoke(claim, "photos", action="items")) == {"items": [], "skipped": True}
    assert child_of(claim, "photos").status is Status.SKIPPED


def test_rule_reads_a_fanned_out_steps_outputs_in_order_with_null_for_failed_items(claim, custom_registry):
    summary = rule(
        "summary",
        {
            "labels": "{{ [$map(photos.output, function($o) { $o ? $o.label : null })] }}",
            "failed": "{{ $count(photos.output) - $count(photos.output[$exists(label)]) }}",
        },
    )
    custom_registry(
        ensemble(
            "claims",
            [{"name": "photos", "service": "digits-svm", "forEach": "input.photos", "optional": True}, summary],
            "{{ summary }}",
        )
    )
    fan_out = {
        "items": [0, 1, 2],
        "skipped": False,
        "outcomes": [outcome("p0", {"label": 7}), {"Error": "StepFailed", "Cause": "bad"}, outcome("p2", {"label": 0})],
    }
    answer = steps.run_step(invoke(claim, "summary", outputs={"photos": fan_out}))
    assert payloads.read_json(predictions.get(answer["childId"]).output) == {"labels": [7, None, 0], "failed": 1}


# --- retries -------------------------------------------------------------------------------------------


def test_retried_attempt_after_a_failure_is_a_new_child(claim):
    outputs = {"estimate": outcome("estimate", {"cost": 5000})}
    first = steps.run_step(invoke(claim, "review", outputs=outputs))
    predictions.finish(first["childId"], Status.FAILED, error=ErrorDetail(code="model_error", message="Throttling"))
    second = steps.run_step(invoke(claim, "review", outputs=outputs, attempt=1))
    assert second["childId"] != first["childId"] and second["childId"] == child_of(claim, "review", attempt=1).id
    assert child_of(claim, "review", attempt=1).attempt == 1


def test_retry_count_raised_by_a_transient_error_resumes_the_running_child(claim):
    # Given attempt 0 created its child, then the invocation failed transiently (RetryCount became 1)
    outputs = {"estimate": outcome("estimate", {"cost": 5000})}
    first = steps.run_step(invoke(claim, "review", outputs=outputs))
    # When attempt 1 arrives while that child still runs, Then it is resumed, not started twice
    again = steps.run_step(invoke(claim, "review", outputs=outputs, attempt=1))
    assert again == {"childId": first["childId"], "resumed": True}


def test_failure_the_service_declares_retryable_is_named_so(claim, custom_registry):
    svm = {
        "name": "digits-svm",
        "kind": "model",
        "endpoint": {"name": "digits-svm", "mode": "sync"},
        "contentTypes": ["image/png", "application/json"],
        "maxInputBytes": 6291456,
        "retryableErrors": ["ThrottlingException"],
    }
    custom_registry(svm, CLAIMS)
    answer = steps.run_step(invoke(claim, "estimate"))
    failed = predictions.finish(
        answer["childId"],
        Status.FAILED,
        error=ErrorDetail(code="model_error", message="ThrottlingException: slow down"),
    )
    assert callbacks.step_error(failed) == "StepRetryable"
    other = failed.model_copy(update={"error": ErrorDetail(code="model_error", message="ValueError")})
    assert callbacks.step_error(other) == "StepFailed"


# --- the audit trail a client sees -------------------------------------------------------------------


def test_prediction_lists_every_declared_step_with_kind_status_and_decision(claim, monkeypatch):
    monkeypatch.setattr("chorus.adapters.executions.send_success", lambda *_: True)
    steps.run_step(invoke(claim, "estimate"))
    steps.run_step(invoke(claim, "review", outputs={"estimate": outcome("estimate", {"cost": 5})}))
    steps.expand_items(invoke(claim, "photos", action="items"))
    for item in range(3):
        steps.run_step(invoke(claim, "photos", item=item))
    parent = predictions.get(claim["id"])
    item_failed = steps.child_id(parent, "photos", item=2)
    predictions.finish(item_failed, Status.FAILED, error=ErrorDetail(code="model_error", message="3 pixels"))
    view = represent(parent)
    by_name = {s["name"]: s for s in view["steps"]}
    assert [s["name"] for s in view["steps"]] == ["estimate", "value", "photos", "review", "decide"]
    assert (by_name["review"]["kind"], by_name["review"]["status"]) == ("model", "skipped")
    assert by_name["review"]["decision"]["values"] == {"estimate.output.cost": 5}
    assert by_name["value"]["status"] == "pending" and by_name["decide"]["kind"] == "rule"
    photos = by_name["photos"]
    assert len(photos["ids"]) == 3 and photos["items"] == 3 and photos["status"] == "running"
    assert photos["itemErrors"] == [{"item": 2, "code": "model_error", "message": "3 pixels"}]


def test_result_of_an_item_resumes_its_own_task(claim, monkeypatch):
    resumed: list[str] = []
    monkeypatch.setattr("chorus.adapters.executions.send_success", lambda token, out: resumed.append(token) or True)
    steps.expand_items(invoke(claim, "photos", action="items"))
    answer = steps.run_step(invoke(claim, "photos", item=0))
    key = f"async-outputs/{answer['childId']}.out"
    put(key, {"label": 1})
    from chorus.events.sagemaker import InferenceResult

    results.record_result(
        InferenceResult.model_validate(
            {
                "invocationStatus": "Completed",
                "inferenceId": answer["childId"],
                "responseParameters": {"contentType": "application/json", "outputLocation": f"s3://{BUCKET}/{key}"},
            }
        )
    )
    assert "token-photos-0-0" in resumed
