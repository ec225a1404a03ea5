"""The Lambda Invoke API on the AWS gateway, served by per-function worker processes."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from tests.integration.local.support import STACK_NAME, wait_for

ECHO = f"{STACK_NAME}-echo"
ECHO_ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{ECHO}"


def invoke(aws, name: str, payload: object, **kwargs) -> tuple[dict, object]:
    response = aws("lambda").invoke(FunctionName=name, Payload=json.dumps(payload), **kwargs)
    return response, json.loads(response["Payload"].read() or b"null")


def test_request_response_returns_the_handler_result_with_a_real_context(aws):
    # When a boto3 Lambda client invokes by name
    response, body = invoke(aws, ECHO, {"hello": "world"})
    # Then the handler saw the event and a context with a real deadline (Timeout 2 s)
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert body["event"] == {"hello": "world"}
    context = body["context"]
    assert context["function_name"] == ECHO
    assert context["invoked_function_arn"] == ECHO_ARN
    assert context["memory_limit_in_mb"] == "192"
    assert context["function_version"] == "$LATEST"
    assert 0 < context["remaining_ms"] <= 2000
    assert context["aws_request_id"] == response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]


def test_function_can_be_invoked_by_arn_and_by_qualified_arn(aws):
    assert invoke(aws, ECHO_ARN, {"n": 1})[1]["event"] == {"n": 1}
    assert invoke(aws, f"{ECHO_ARN}:$LATEST", {"n": 2})[1]["event"] == {"n": 2}


def test_handler_exception_is_an_unhandled_function_error_with_lambdas_payload(aws):
    response, body = invoke(aws, ECHO, {"raise": "bad input"})
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "bad input"
    assert isinstance(body["stackTrace"], list) and "app.py" in "".join(body["stackTrace"])


def test_handler_over_its_timeout_fails_and_the_environment_is_replaced(aws, local_stack):
    # Given a function with Timeout 2 s, when the handler sleeps 5 s
    started = time.monotonic()
    response, body = invoke(aws, ECHO, {"sleep": 5})
    elapsed = time.monotonic() - started
    # Then the invocation fails at the deadline, not when the handler would have finished
    assert response["FunctionError"] == "Unhandled"
    assert "Task timed out after 2.00 seconds" in body["errorMessage"]
    assert body["errorType"] == "Sandbox.Timedout"
    assert elapsed < 4.5
    # And the next invocation gets a fresh, working environment
    assert invoke(aws, ECHO, {"after": "timeout"})[1]["event"] == {"after": "timeout"}


def test_event_invocation_is_accepted_and_runs_asynchronously(aws, observations):
    response = aws("lambda").invoke(
        FunctionName=f"{STACK_NAME}-sns",
        InvocationType="Event",
        Payload=json.dumps({"Records": [{"Sns": {"Message": "direct-async"}}]}),
    )
    assert response["StatusCode"] == 202

    wait_for(lambda: observations("sns/direct-async/"))


def test_dry_run_checks_the_function_without_running_it(aws):
    assert aws("lambda").invoke(FunctionName=ECHO, InvocationType="DryRun")["StatusCode"] == 204


def test_unknown_function_or_qualifier_is_resource_not_found(aws):
    for name, qualifier in (("no-such-function", {}), (ECHO, {"Qualifier": "prod"}), (f"{ECHO_ARN}:prod", {})):
        with pytest.raises(ClientError) as raised:
            aws("lambda").invoke(FunctionName=name, Payload=b"{}", **qualifier)
        assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_payload_that_is_not_json_is_rejected_like_lambda(aws):
    with pytest.raises(ClientError) as raised:
        aws("lambda").invoke(FunctionName=ECHO, Payload=b"not json")
    assert raised.value.response["Error"]["Code"] == "InvalidRequestContentException"


def test_concurrent_invocations_beyond_the_pool_queue_instead_of_failing(aws):
    # Given a pool of 2 workers, when 4 invocations of 1 s arrive at once
    with ThreadPoolExecutor(max_workers=4) as pool:
        started = time.monotonic()
        results = list(pool.map(lambda n: invoke(aws, ECHO, {"sleep": 1, "n": n})[1], range(4)))
        elapsed = time.monotonic() - started
    # Then all succeed, two at a time
    assert sorted(r["event"]["n"] for r in results) == [0, 1, 2, 3]
    assert elapsed >= 2.0


def test_each_function_sees_only_its_own_environment_and_code(aws, local_stack):
    # Given two functions with different variables and code directories, and a variable that
    # exists only in the process running the stack
    os.environ["CHORUS_TEST_HOST_ONLY"] = "leak"
    try:
        a = invoke(aws, f"{STACK_NAME}-env-a", {})[1]
        b = invoke(aws, f"{STACK_NAME}-env-b", {})[1]
    finally:
        del os.environ["CHORUS_TEST_HOST_ONLY"]
    # Then each sees its own variables (plus Globals and Lambda's), never the other's or the host's
    assert a["environ"]["ONLY_A"] == "from-a" and "ONLY_B" not in a["environ"]
    assert b["environ"]["ONLY_B"] == "from-b" and "ONLY_A" not in b["environ"]
    assert (a["environ"]["SHARED"], b["environ"]["SHARED"]) == ("a", "b")
    for seen in (a, b):
        environ = seen["environ"]
        assert "CHORUS_TEST_HOST_ONLY" not in environ
        assert environ["AWS_ENDPOINT_URL"] == local_stack.aws_endpoint_url
        assert environ["AWS_ACCESS_KEY_ID"] == "testing"
        assert environ["AWS_REGION"] == environ["AWS_DEFAULT_REGION"] == "us-east-1"
        assert environ["OBSERVATIONS_BUCKET"].startswith(f"{STACK_NAME}-observations")
        assert environ["_HANDLER"] == "app.handler"
        assert environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
        assert not seen["can_import_other"], "one function imported another's code"
        assert not seen["can_import_stack"], "a function could import the local stack"
    assert a["environ"]["AWS_LAMBDA_FUNCTION_NAME"] == f"{STACK_NAME}-env-a"
    assert any(p.endswith("isolation_a") for p in a["sys_path"])
    assert not any(p.endswith("isolation_b") for p in a["sys_path"])


def test_function_output_goes_to_one_log_stream_prefixed_with_the_function(aws, local_stack):
    invoke(aws, ECHO, {"raise": "for the logs"})
    logs = local_stack._sink._stream.getvalue()  # type: ignore[attr-defined]
    assert "[echo] START RequestId:" in logs
    assert "[echo] [ERROR] ValueError: for the logs" in logs
    assert "[echo] REPORT RequestId:" in logs


def test_state_machine_lambda_task_reaches_the_local_runtime(aws, local_stack):
    # Given a Standard state machine whose Task is arn:aws:states:::lambda:invoke on the echo function
    machine = local_stack.provisioned.ref("EchoStateMachine")
    # When an execution starts
    execution = aws("stepfunctions").start_execution(
        stateMachineArn=machine, name=f"echo-{time.monotonic_ns()}", input=json.dumps({"x": 1})
    )["executionArn"]

    def finished() -> dict | None:
        described = aws("stepfunctions").describe_execution(executionArn=execution)
        return described if described["status"] != "RUNNING" else None

    # Then moto's interpreter invoked the function through the gateway and used its result
    described = wait_for(finished, timeout=30)
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["event"] == {"x": 1}
    assert output["context"]["function_name"] == ECHO
