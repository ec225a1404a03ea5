"""get-transform-call's logic against moto: rendering a step's input, creating the child
prediction with the task token as its callback, retries, and the ensemble output."""

from __future__ import annotations

import json

import boto3
import pytest

from chorus.adapters import payloads, predictions
from chorus.api.models import PredictionRequest
from chorus.core.errors import StepCanceled
from chorus.domain import cancel, dispatch, results, steps
from chorus.domain import submit as submission
from chorus.events.models import StepInvocation
from chorus.model.mapping import MappingError
from chorus.model.records import StepFunctionsCallback
from chorus.model.registry import PACKAGED_REGISTRY
from tests.support import aws_resources
from tests.support.aws_resources import TENANT, caller, load_event
from tests.support.registry_documents import ensemble

ACME = caller()

PROBABILITIES = {"svm": [0.9] + [0.01] * 9, "forest": [0.8] + [0.02] * 9}


@pytest.fixture
def parent(aws) -> dict:
    """A running digits-ensemble prediction whose svm and forest steps have written outputs."""
    view = submission.submit(PredictionRequest(service="digits-ensemble", contentType="application/json"), ACME)
    s3 = boto3.client("s3")
    s3.put_object(
        Bucket=aws_resources.BUCKET,
        Key=payloads.upload_key(TENANT, view["id"]),
        Body=b'{"pixels": []}',
        ContentType="application/json",
    )
    for step, probabilities in PROBABILITIES.items():
        s3.put_object(
            Bucket=aws_resources.BUCKET,
            Key=f"outputs/{step}/output",
            Body=json.dumps({"label": 0, "probabilities": probabilities}).encode(),
        )
    return view


def invocation(parent: dict, step: dict, token: str = "token-1") -> StepInvocation:
    event = load_event("get_transform_call_step.json")
    event["taskToken"] = token
    event["parent"]["id"] = parent["id"]
    event["parent"]["input"] = {
        "bucket": aws_resources.BUCKET,
        "key": payloads.upload_key(TENANT, parent["id"]),
        "contentType": "application/json",
    }
    event["step"] = step
    for name in ("svm", "forest"):
        event["outputs"][name].update(bucket=aws_resources.BUCKET, key=f"outputs/{name}/output")
    return StepInvocation.model_validate(event)


def test_sample_event_parses():
    assert StepInvocation.model_validate(load_event("get_transform_call_step.json")).step.name == "stacker"


def test_field_references_are_read_from_earlier_outputs(parent):
    # When the stacker step runs with a mapping over the svm and forest outputs
    answer = steps.run_step(invocation(parent, load_event("get_transform_call_step.json")["step"]))
    # Then the child's input is the rendered document, and its callback is the task token
    child = predictions.get(answer["childId"])
    assert child.parent_id == parent["id"] and child.step_name == "stacker"
    assert child.callback == StepFunctionsCallback(task_token="token-1")
    rendered = payloads.read_json(
        payloads.S3Location(
            bucket=aws_resources.BUCKET, key=payloads.step_input_key(TENANT, child.id), contentType="application/json"
        )
    )
    assert rendered == PROBABILITIES


def test_whole_input_reference_passes_the_object_on_without_a_copy(parent):
    answer = steps.run_step(invocation(parent, {"name": "svm", "service": "digits-svm", "input": "{{ input }}"}))
    child = predictions.get(answer["childId"])
    assert child.input is not None and child.input.key == payloads.upload_key(TENANT, parent["id"])
    listed = boto3.client("s3").list_objects_v2(Bucket=aws_resources.BUCKET, Prefix="steps/")
    assert listed.get("KeyCount", 0) == 0


def test_reference_to_a_missing_field_fails_naming_the_step(parent, custom_registry):
    custom_registry(
        ensemble(
            "digits-ensemble",
            [
                {"name": "svm", "service": "digits-svm"},
                {"name": "forest", "service": "digits-forest"},
                {"name": "stacker", "service": "digits-stacker", "input": {"svm": "{{ svm.output.nothing }}"}},
            ],
            "{{ stacker }}",
        )
    )
    with pytest.raises(MappingError, match=r"stacker.*svm\.output\.nothing"):
        steps.run_step(invocation(parent, {"name": "stacker", "service": "digits-stacker"}))


def test_retried_task_reuses_the_child_and_takes_the_new_token(parent):
    step = {"name": "svm", "service": "digits-svm", "input": "{{ input }}"}
    first = steps.run_step(invocation(parent, step, token="token-1"))
    second = steps.run_step(invocation(parent, step, token="token-2"))
    assert first["childId"] == second["childId"]
    assert predictions.get(first["childId"]).callback == StepFunctionsCallback(task_token="token-2")
    assert len(predictions.children(parent["id"])) == 1


def test_step_of_a_canceled_prediction_does_not_start(parent):
    cancel.cancel(ACME, parent["id"])
    with pytest.raises(StepCanceled, match="canceled"):
        steps.run_step(invocation(parent, {"name": "svm", "service": "digits-svm", "input": "{{ input }}"}))


def test_spent_task_token_is_recorded_not_raised(parent):
    # Given a child whose task already timed out (moto knows no such token)
    answer = steps.run_step(invocation(parent, {"name": "forest", "service": "digits-forest", "input": "{{ input }}"}))
    key = f"async-outputs/{answer['childId']}.out"
    boto3.client("s3").put_object(Bucket=aws_resources.BUCKET, Key=key, Body=b"{}")
    result = {
        "invocationStatus": "Completed",
        "inferenceId": answer["childId"],
        "responseParameters": {
            "contentType": "application/json",
            "outputLocation": f"s3://{aws_resources.BUCKET}/{key}",
        },
    }
    # When its result arrives, resuming the parent fails with a spent token — a duplicate, not an error
    from chorus.events.sagemaker import InferenceResult

    results.record_result(InferenceResult.model_validate(result))
    child = predictions.get(answer["childId"])
    assert child.status.value == "succeeded"


def test_output_mapping_is_rendered_into_the_parents_output(parent, custom_registry):
    output = {"label": "{{ svm.output.label }}", "both": ["{{ svm }}", "{{ forest.output.probabilities[0] }}"]}
    digits = json.loads(PACKAGED_REGISTRY.read_text())["services"]
    declared = next(s for s in digits if s["name"] == "digits-ensemble")
    custom_registry({**declared, "output": output})
    event = invocation(parent, None).model_dump(by_alias=True, exclude_none=True)
    event.pop("taskToken")
    event.pop("step", None)
    event["action"] = "output"
    location = steps.render_output(StepInvocation.model_validate(event))
    assert location["key"] == payloads.output_key(TENANT, parent["id"])
    rendered = json.loads(
        boto3.client("s3").get_object(Bucket=aws_resources.BUCKET, Key=location["key"])["Body"].read()
    )
    assert rendered == {"label": 0, "both": [f"s3://{aws_resources.BUCKET}/outputs/svm/output", 0.8]}


def test_ensemble_upload_starts_the_execution_named_after_the_prediction(aws):
    sfn = boto3.client("stepfunctions")
    aws_resources.create_state_machine("digits-ensemble")
    view = submission.submit(PredictionRequest(service="digits-ensemble", input={"pixels": [0] * 64}), ACME)
    dispatch.receive_upload(aws_resources.BUCKET, payloads.upload_key(TENANT, view["id"]))
    record = predictions.get(view["id"])
    assert record.status.value == "running"
    assert record.execution_arn is not None and record.execution_arn.endswith(f":{view['id']}")
    execution = sfn.describe_execution(executionArn=record.execution_arn)
    document = json.loads(execution["input"])
    assert document["prediction"]["id"] == view["id"]
    assert set(document["timeouts"]) == {"svm", "forest", "stacker"}
