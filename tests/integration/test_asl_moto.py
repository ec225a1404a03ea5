"""The compiled definitions run in moto's Step Functions interpreter (the local stack's engine).

get-transform-call is not executed here (moto's Docker-less Lambda only echoes); the test plays
its role and the notifications' role instead: it reads each step's task token from the execution
history (TaskScheduled parameters) and answers with SendTaskSuccess / SendTaskFailure, then reads
the SNS notification the state machine published. The lead's e2e tests run the real functions.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.awslambda_simple.models import lambda_simple_backends
from moto.core import DEFAULT_ACCOUNT_ID

from chorus.model.plan import step_timeouts
from chorus.model.registry import PACKAGED_REGISTRY, Registry, parse_registry
from chorus_compiler.compiler import compile_ensemble, to_json

REGION = "us-east-1"
TEMPLATE_NAMES = {"GetTransformCallArn", "SuccessTopicArn", "ErrorTopicArn"}

# Answers a scheduled step: (step name, payload) -> ("success", result) | ("failure", (error, cause)) | None
Answer = Callable[[str, dict[str, Any]], tuple[str, Any] | None]


@dataclass
class Stack:
    sfn: Any
    sqs: Any
    queue_url: str
    role_arn: str
    substitutions: dict[str, str]
    registry: Registry

    def create(self, ensemble: str, registry: Registry | None = None) -> str:
        registry = registry or self.registry
        text = to_json(compile_ensemble(registry.get(ensemble), registry))
        for name, value in self.substitutions.items():
            text = text.replace("${" + name + "}", value)
        return self.sfn.create_state_machine(name=f"chorus-test-{ensemble}", definition=text, roleArn=self.role_arn)[
            "stateMachineArn"
        ]

    def run(self, machine: str, execution_input: dict[str, Any], answer: Answer) -> tuple[dict, list[dict]]:
        """Start an execution, answer each scheduled step, return (description, scheduled payloads)."""
        arn = self.sfn.start_execution(
            stateMachineArn=machine, name=execution_input["prediction"]["id"], input=json.dumps(execution_input)
        )["executionArn"]
        answered: set[int] = set()
        replies: dict[int, Any] = {}  # each scheduled task is answered once, the same way if sent again
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            description = self.sfn.describe_execution(executionArn=arn)
            if description["status"] != "RUNNING":
                return description, [payload for _, payload in self._lambda_payloads(arn)]
            for event_id, payload in self._lambda_payloads(arn):
                if event_id in answered or "taskToken" not in payload:
                    continue
                if event_id not in replies:
                    replies[event_id] = answer(payload["step"]["name"], payload)
                reply = replies[event_id]
                try:
                    if reply and reply[0] == "success":
                        self.sfn.send_task_success(taskToken=payload["taskToken"], output=json.dumps(reply[1]))
                    elif reply:
                        error, cause = reply[1]
                        self.sfn.send_task_failure(taskToken=payload["taskToken"], error=error, cause=cause)
                except (self.sfn.exceptions.InvalidToken, self.sfn.exceptions.TaskDoesNotExist):
                    # moto schedules a retried task before its (reused) token waits again: on a
                    # loaded machine the answer can arrive in between; send it again next round
                    continue
                answered.add(event_id)
            time.sleep(0.05)
        raise AssertionError("execution did not finish in 20 s")

    def _lambda_payloads(self, execution: str) -> list[tuple[int, dict]]:
        """(event id, Payload) of every Lambda task scheduled so far, in order."""
        events = self.sfn.get_execution_history(executionArn=execution)["events"]
        return [
            (event["id"], json.loads(details["parameters"])["Payload"])
            for event in events
            if (details := event.get("taskScheduledEventDetails")) and details["resourceType"] == "lambda"
        ]

    def notifications(self) -> list[dict]:
        messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    # Hermetic whatever ran before: an endpoint or profile left in the environment (a test that
    # pointed boto3 at a local server) would send these calls past moto.
    for variable in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    with mock_aws(config=config):  # type: ignore[arg-type]
        role = boto3.client("iam", region_name=REGION).create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")
        role_arn = role["Role"]["Arn"]
        function_arn = boto3.client("lambda", region_name=REGION).create_function(
            FunctionName="get-transform-call",
            Runtime="python3.11",
            Role=role_arn,
            Handler="app.handler",
            Code={"ZipFile": _zip()},
        )["FunctionArn"]
        sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="notifications")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        topics = {name: sns.create_topic(Name=name)["TopicArn"] for name in ("success", "error")}
        for topic in topics.values():
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
        yield Stack(
            sfn=boto3.client("stepfunctions", region_name=REGION),
            sqs=sqs,
            queue_url=queue_url,
            role_arn=role_arn,
            substitutions={
                "GetTransformCallArn": function_arn,
                "SuccessTopicArn": topics["success"],
                "ErrorTopicArn": topics["error"],
            },
            registry=parse_registry(json.loads(PACKAGED_REGISTRY.read_text())),
        )


def execution_input(registry: Registry, ensemble: str, **timeouts: int) -> dict[str, Any]:
    prediction = {
        "id": "parent-1",
        "service": ensemble,
        "input": {"bucket": "payloads", "key": "inputs/parent-1/input", "contentType": "image/png"},
    }
    return {"prediction": prediction, "timeouts": {**step_timeouts(registry.get(ensemble), registry), **timeouts}}


def step_result(step: str) -> dict[str, Any]:
    key = f"outputs/child-{step}/output"
    return {
        "id": f"child-{step}",
        "parentId": "parent-1",
        "bucket": "payloads",
        "key": key,
        "contentType": "application/json",
        "outputLocation": f"s3://payloads/{key}",
    }


def succeed(step: str, payload: dict[str, Any]) -> tuple[str, Any]:
    return "success", step_result(step)


def test_moto_accepts_every_compiled_definition(stack: Stack) -> None:
    # Given every packaged ensemble, When created in moto, Then each is accepted as written
    for service in stack.registry.ensembles():
        arn = stack.create(service.name)
        definition = stack.sfn.describe_state_machine(stateMachineArn=arn)["definition"]
        assert "${" not in definition


def test_digits_ensemble_runs_to_a_success_notification(stack: Stack) -> None:
    # Given the compiled digits-ensemble, every step answered with a result
    machine = stack.create("digits-ensemble")
    # When a prediction runs through it
    description, payloads = stack.run(machine, execution_input(stack.registry, "digits-ensemble"), succeed)
    # Then svm and forest ran before stacker, which received both results
    assert description["status"] == "SUCCEEDED"
    assert sorted(p["step"]["name"] for p in payloads[:2]) == ["forest", "svm"]
    assert payloads[2]["step"]["name"] == "stacker"
    assert payloads[2]["outputs"] == {"svm": step_result("svm"), "forest": step_result("forest")}
    assert payloads[2]["parent"]["id"] == "parent-1"
    # And the parent's SageMaker-shaped notification points at stacker's output
    (message,) = stack.notifications()
    assert message["invocationStatus"] == "Completed" and message["inferenceId"] == "parent-1"
    assert message["responseParameters"] == {
        "contentType": "application/json",
        "outputLocation": "s3://payloads/outputs/child-stacker/output",
    }


def test_failed_step_fails_the_execution_and_publishes_the_failure(stack: Stack) -> None:
    # Given digits-ensemble where the svm step reports a failure
    machine = stack.create("digits-ensemble")

    def svm_fails(step: str, payload: dict[str, Any]) -> tuple[str, Any]:
        return ("failure", ("EndpointError", "step 'svm' failed")) if step == "svm" else succeed(step, payload)

    # When a prediction runs
    description, payloads = stack.run(machine, execution_input(stack.registry, "digits-ensemble"), svm_fails)
    # Then the execution fails with that error, stacker never runs, and the failure is published
    assert description["status"] == "FAILED" and description["error"] == "EndpointError"
    assert "stacker" not in [p["step"]["name"] for p in payloads]
    (message,) = stack.notifications()
    assert message["invocationStatus"] == "Failed" and message["errorCode"] == "EndpointError"
    # (moto 5.2.5 drops SendTaskFailure's cause, so failureReason is "" locally; AWS keeps it)
    assert "failureReason" in message


def test_timed_out_branch_step_is_named_in_the_failure(stack: Stack) -> None:
    # Given digits-ensemble whose forest step never answers, with a 1 s timeout
    machine = stack.create("digits-ensemble")

    def forest_silent(step: str, payload: dict[str, Any]) -> tuple[str, Any] | None:
        return None if step == "forest" else succeed(step, payload)

    # When a prediction runs
    description, _ = stack.run(machine, execution_input(stack.registry, "digits-ensemble", forest=1), forest_silent)
    # Then the execution and the notification name the step that timed out
    assert (description["status"], description["error"]) == ("FAILED", "StepTimedOut")
    assert description["cause"] == "step 'forest' (digits-forest) timed out"
    (message,) = stack.notifications()
    assert message["failureReason"] == "step 'forest' (digits-forest) timed out"


def test_timed_out_single_step_is_named_in_the_failure(stack: Stack) -> None:
    # Given digits-ensemble whose stacker step never answers, with a 1 s timeout
    machine = stack.create("digits-ensemble")

    def stacker_silent(step: str, payload: dict[str, Any]) -> tuple[str, Any] | None:
        return None if step == "stacker" else succeed(step, payload)

    # When a prediction runs
    description, _ = stack.run(machine, execution_input(stack.registry, "digits-ensemble", stacker=1), stacker_silent)
    # Then the execution and the notification name stacker
    assert description["cause"] == "step 'stacker' (digits-stacker) timed out"
    (message,) = stack.notifications()
    assert (message["errorCode"], message["failureReason"]) == ("StepTimedOut", description["cause"])


def test_rendered_output_is_published_and_mappings_stay_in_the_registry(stack: Stack) -> None:
    # Given an ensemble whose step mapping contains ASL-looking text and whose output is rendered
    odd_mapping = {"path": "$.prediction", "call": "States.Array(1)", "Type": "Task", "nested": [{}, None, 1.5]}
    registry = parse_registry(
        {
            "services": [
                *[s.model_dump(by_alias=True, exclude_none=True) for s in stack.registry.services],
                {
                    "name": "odd",
                    "kind": "ensemble",
                    "contentTypes": ["application/json"],
                    "maxInputBytes": 1024,
                    "steps": [{"name": "svm", "service": "digits-svm", "input": odd_mapping}],
                    "output": {"label": "{{ svm.output.label }}"},
                },
            ]
        }
    )
    machine = stack.create("odd", registry)
    rendered = {**step_result("output"), "key": "outputs/parent-1/output"}
    # moto's Docker-less Lambda answers invocations from a queue: first svm's (ignored), then the render call
    lambda_simple_backends[DEFAULT_ACCOUNT_ID][REGION].lambda_simple_results_queue.extend(["{}", json.dumps(rendered)])
    # When a prediction runs
    description, payloads = stack.run(machine, execution_input(registry, "odd"), succeed)
    # Then the step saw its mapping unevaluated, the render call got the output mapping and svm's result
    assert description["status"] == "SUCCEEDED"
    assert payloads[0]["step"] == {"name": "svm", "service": "digits-svm"}  # the mapping stays in the registry
    assert payloads[1] == {"action": "output", "parent": payloads[0]["parent"], "outputs": {"svm": step_result("svm")}}
    # And the notification points at the rendered output
    (message,) = stack.notifications()
    assert message["responseParameters"]["outputLocation"] == rendered["outputLocation"]


def registry_with(stack: Stack, *ensembles: dict[str, Any], retryable: bool = False) -> Registry:
    services = [s.model_dump(by_alias=True, exclude_none=True) for s in stack.registry.services]
    if retryable:
        for service in services:
            if service["name"] == "digits-svm":
                service["retryableErrors"] = ["ThrottlingException"]
    return parse_registry({"services": [*services, *ensembles]})


def queue_lambda_results(*results: Any) -> None:
    """moto's Docker-less Lambda answers invocations in order from this queue."""
    queue = lambda_simple_backends[DEFAULT_ACCOUNT_ID][REGION].lambda_simple_results_queue
    queue.extend(json.dumps(r) for r in results)


def test_fan_out_runs_one_task_per_item_and_an_optional_item_failure_reads_as_caught(stack: Stack) -> None:
    # Given digits-batch, whose classify step fans out over input.images (optional per item)
    machine = stack.create("digits-batch")
    queue_lambda_results({"items": [0, 1, 2], "skipped": False}, {}, {}, {}, {})

    def item_one_fails(step: str, payload: dict[str, Any]) -> tuple[str, Any]:
        if step == "classify" and payload["item"] == 1:
            return "failure", ("StepFailed", "step 'classify[1]' (digits-svm) failed: 3 pixels")
        return "success", step_result(f"{step}-{payload.get('item')}")

    # When a prediction runs
    description, payloads = stack.run(machine, execution_input(stack.registry, "digits-batch"), item_one_fails)
    # Then the items were listed first, each item ran as its own task, and the batch still succeeded
    assert description["status"] == "SUCCEEDED", description
    assert payloads[0]["action"] == "items" and payloads[0]["step"]["name"] == "classify"
    items = [p for p in payloads if p.get("item") is not None]
    assert sorted(p["item"] for p in items) == [0, 1, 2]
    assert all(p["attempt"] == 0 and p["action"] == "step" for p in items)
    # And the rule step read the items' outcomes in order, the failed one as caught
    summary = next(p for p in payloads if p["step"]["name"] == "summary")
    outcome = summary["outputs"]["classify"]
    assert outcome["items"] == [0, 1, 2] and outcome["skipped"] is False
    assert [o.get("key") for o in outcome["outcomes"]] == ["outputs/child-classify-0/output", None,
                                                            "outputs/child-classify-2/output"]  # fmt: skip
    assert outcome["outcomes"][1]["Error"] == "StepFailed"


def test_required_fan_out_item_failure_fails_the_ensemble(stack: Stack) -> None:
    # Given a fan-out that is not optional
    batch = stack.registry.get("digits-batch").model_dump(by_alias=True, exclude_none=True)
    batch["name"] = "strict-batch"
    batch["steps"][0]["optional"] = False
    registry = registry_with(stack, batch)
    machine = stack.create("strict-batch", registry)
    queue_lambda_results({"items": [0, 1], "skipped": False}, {}, {})

    def item_zero_fails(step: str, payload: dict[str, Any]) -> tuple[str, Any]:
        if payload.get("item") == 0:
            return "failure", ("StepFailed", "step 'classify[0]' (digits-svm) failed")
        return succeed(step, payload)

    # When a prediction runs, Then it fails with the item's error and the summary never runs
    description, payloads = stack.run(machine, execution_input(registry, "strict-batch"), item_zero_fails)
    assert (description["status"], description["error"]) == ("FAILED", "StepFailed")
    assert "summary" not in [p["step"]["name"] for p in payloads]


def test_skipped_steps_resume_with_their_status_and_the_rule_reads_them(stack: Stack) -> None:
    # Given digits-cascade, where svm is sure: forest and stacker answer "skipped" (as get-transform-call does)
    machine = stack.create("digits-cascade")

    def svm_sure(step: str, payload: dict[str, Any]) -> tuple[str, Any]:
        if step in ("forest", "stacker"):
            return "success", {"id": f"child-{step}", "parentId": "parent-1", "status": "skipped"}
        return succeed(step, payload)

    # When a prediction runs
    description, payloads = stack.run(machine, execution_input(stack.registry, "digits-cascade"), svm_sure)
    # Then every step ran in order, the rule received each outcome, and the output is the rule's
    assert description["status"] == "SUCCEEDED"
    assert [p["step"]["name"] for p in payloads] == ["svm", "forest", "stacker", "decide"]
    decide = payloads[3]
    assert decide["outputs"]["stacker"]["status"] == "skipped" and decide["outputs"]["svm"] == step_result("svm")
    (message,) = stack.notifications()
    assert message["responseParameters"]["outputLocation"] == step_result("decide")["outputLocation"]


def test_optional_step_failure_lets_the_ensemble_go_on(stack: Stack) -> None:
    # Given an ensemble whose first step is optional and fails, and a second step reading it
    ensemble = {
        "name": "lenient",
        "kind": "ensemble",
        "contentTypes": ["application/json"],
        "maxInputBytes": 1024,
        "steps": [
            {"name": "forest", "service": "digits-forest", "optional": True},
            {"name": "svm", "service": "digits-svm", "input": {"hint": "{{ forest.output.label ?? -1 }}"}},
        ],
        "output": "{{ svm }}",
    }
    registry = registry_with(stack, ensemble)
    machine = stack.create("lenient", registry)

    def forest_fails(step: str, payload: dict[str, Any]) -> tuple[str, Any]:
        if step == "forest":
            return "failure", ("StepFailed", "step 'forest' (digits-forest) failed: boom")
        return succeed(step, payload)

    # When a prediction runs, Then it succeeds and svm saw forest's caught failure
    description, payloads = stack.run(machine, execution_input(registry, "lenient"), forest_fails)
    assert description["status"] == "SUCCEEDED"
    assert payloads[1]["outputs"]["forest"]["Error"] == "StepFailed"


def test_retryable_failure_retries_the_step_with_the_attempt_number(stack: Stack) -> None:
    # Given a step with retry on a service declaring ThrottlingException retryable
    ensemble = {
        "name": "patient",
        "kind": "ensemble",
        "contentTypes": ["application/json"],
        "maxInputBytes": 1024,
        "steps": [{"name": "svm", "service": "digits-svm", "retry": {"maxAttempts": 3, "intervalSeconds": 1}}],
        "output": "{{ svm }}",
    }
    registry = registry_with(stack, ensemble, retryable=True)
    machine = stack.create("patient", registry)
    # (one failure answered: moto reuses the task token across retries, where AWS issues a new one,
    # and replays the stored failure to the next attempt, so locally one more attempt fails)
    failures = iter([("StepRetryable", "ThrottlingException")])

    def flaky(step: str, payload: dict[str, Any]) -> tuple[str, Any]:
        failure = next(failures, None)
        return ("failure", failure) if failure else succeed(step, payload)

    # When a prediction runs, Then a later attempt succeeds, each attempt numbered, within maxAttempts
    description, payloads = stack.run(machine, execution_input(registry, "patient"), flaky)
    assert description["status"] == "SUCCEEDED", description
    assert [p["attempt"] for p in payloads] == list(range(len(payloads))) and 2 <= len(payloads) <= 3
