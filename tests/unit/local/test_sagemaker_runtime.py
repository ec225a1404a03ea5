"""The local SageMaker runtime, driven through an unmodified boto3 sagemaker-runtime client."""

from __future__ import annotations

import json
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from chorus_local.models import train
from chorus_local.sagemaker import DEFAULT_ENDPOINTS_FILE, MAX_SYNC_PAYLOAD_BYTES, EndpointConfig, SageMakerRuntime

REGION = "us-east-1"

# A test-only model: sleeps as long as asked, or raises, and reports when it ran.
SLOW_MODEL = textwrap.dedent(
    """
    import json
    import time

    def model_fn(model_dir):
        return "slow"

    def input_fn(request_body, content_type):
        return json.loads(request_body)

    def predict_fn(data, model):
        started = time.time()
        time.sleep(data["seconds"])
        if data.get("fail"):
            raise RuntimeError("the slow model was asked to fail")
        return {"started": started, "finished": time.time()}

    def output_fn(prediction, accept):
        return json.dumps(prediction).encode()
    """
)


@pytest.fixture(scope="module", autouse=True)
def aws_credentials() -> Iterator[None]:
    # Module-wide, because the moto server and the demo runtime are shared by the module.
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
        }.items():
            monkeypatch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
            monkeypatch.delenv(name, raising=False)
        yield


@pytest.fixture(scope="module", autouse=True)
def trained_models() -> None:
    train.ensure_trained()


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass(frozen=True)
class Cloud:
    """A bucket and the success/error topics, each observed through an SQS queue."""

    url: str
    s3: Any
    sqs: Any
    bucket: str
    success_topic_arn: str
    error_topic_arn: str
    success_queue_url: str
    error_queue_url: str
    # Notifications received so far, by queue and inference id: tests share the queues, and
    # each one waits for its own invocations only.
    received: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def put_input(self, body: bytes, content_type: str) -> str:
        key = f"inputs/{uuid.uuid4()}/input"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        return f"s3://{self.bucket}/{key}"

    def read(self, location: str) -> bytes:
        bucket, key = location.removeprefix("s3://").split("/", 1)
        body: bytes = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    def notification(self, queue_url: str, inference_id: str, timeout: float = 15) -> dict[str, Any]:
        """The SNS notification about `inference_id` delivered to `queue_url`, unwrapped."""
        deadline = time.monotonic() + timeout
        while (queue_url, inference_id) not in self.received:
            if time.monotonic() > deadline:
                raise AssertionError(f"no notification for {inference_id} on {queue_url} within {timeout} s")
            batch = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            for delivered in batch.get("Messages", []):
                message = json.loads(json.loads(delivered["Body"])["Message"])
                self.received[(queue_url, message["inferenceId"])] = message
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=delivered["ReceiptHandle"])
        return self.received[(queue_url, inference_id)]


@pytest.fixture(scope="module")
def cloud(moto_url: str) -> Cloud:
    suffix = uuid.uuid4().hex[:8]
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name=REGION)
    sns = boto3.client("sns", endpoint_url=moto_url, region_name=REGION)
    sqs = boto3.client("sqs", endpoint_url=moto_url, region_name=REGION)
    bucket = f"payloads-{suffix}"
    s3.create_bucket(Bucket=bucket)
    topics, queues = {}, {}
    for kind in ("success", "error"):
        topics[kind] = sns.create_topic(Name=f"{kind}-{suffix}")["TopicArn"]
        queues[kind] = sqs.create_queue(QueueName=f"{kind}-{suffix}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queues[kind], AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=topics[kind], Protocol="sqs", Endpoint=queue_arn)
    return Cloud(moto_url, s3, sqs, bucket, topics["success"], topics["error"], queues["success"], queues["error"])


def _runtime(
    cloud: Cloud, *extra: EndpointConfig, endpoints_file: Path | None = DEFAULT_ENDPOINTS_FILE
) -> SageMakerRuntime:
    return SageMakerRuntime(
        endpoints_file,
        output_bucket=cloud.bucket,
        success_topic_arn=cloud.success_topic_arn,
        error_topic_arn=cloud.error_topic_arn,
        aws_endpoint_url=cloud.url,
        region=REGION,
        extra_endpoints=extra,
    )


def _client(url: str) -> Any:
    return boto3.client("sagemaker-runtime", endpoint_url=url, region_name=REGION)


@pytest.fixture(scope="module")
def demo(cloud: Cloud) -> Iterator[Any]:
    """A boto3 sagemaker-runtime client for the demo endpoints of chorus_local/endpoints.json."""
    runtime = _runtime(cloud)
    url = runtime.serve()
    yield _client(url)
    runtime.close()


def _slow_endpoint(tmp_path: Path, max_concurrency: int) -> EndpointConfig:
    model_dir = tmp_path / f"slow-{max_concurrency}"
    (model_dir / "code").mkdir(parents=True)
    (model_dir / "code" / "inference.py").write_text(SLOW_MODEL)
    return EndpointConfig(name="slow", model_dir=model_dir, mode="async", max_concurrency=max_concurrency)


@pytest.fixture
def slow_runtime(cloud: Cloud, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A client for an async endpoint `slow` whose maxConcurrency is the test's parameter."""
    runtime = _runtime(cloud, _slow_endpoint(tmp_path, request.param), endpoints_file=None)
    url = runtime.serve()
    yield _client(url)
    runtime.close()


def _pixels(index: int = 0) -> tuple[bytes, int]:
    split = train.load_split()
    return json.dumps({"pixels": split.x_test[index].tolist()}).encode(), int(split.y_test[index])


def test_sync_invoke_returns_the_models_label(demo: Any) -> None:
    # Given a held-out digit as JSON pixels
    body, expected = _pixels()

    # When digits-svm is invoked through boto3
    response = demo.invoke_endpoint(
        EndpointName="digits-svm", Body=body, ContentType="application/json", Accept="application/json"
    )

    # Then it answers the digit, with ten probabilities, from the production variant
    answer = json.loads(response["Body"].read())
    assert answer["label"] == expected
    assert len(answer["probabilities"]) == 10
    assert response["ContentType"] == "application/json"
    assert response["InvokedProductionVariant"] == "AllTraffic"


def test_model_error_surfaces_as_boto3_model_error_with_the_models_message(demo: Any) -> None:
    # Given pixels the model rejects
    body = json.dumps({"pixels": [0] * 10}).encode()

    # When digits-svm is invoked through boto3
    with pytest.raises(demo.exceptions.ModelError) as raised:
        demo.invoke_endpoint(EndpointName="digits-svm", Body=body, ContentType="application/json")

    # Then the error is SageMaker's ModelError (424) carrying the model's message
    error = raised.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert "pixels must be 64 numbers between 0 and 16" in error["Error"]["Message"]
    assert error["OriginalStatusCode"] == 500
    assert "pixels must be 64 numbers between 0 and 16" in error["OriginalMessage"]


def test_payload_over_6_mb_is_rejected_with_a_validation_error(demo: Any) -> None:
    # Given a payload one byte over SageMaker's 6 MB limit
    body = b"x" * (MAX_SYNC_PAYLOAD_BYTES + 1)

    # When it is sent to a sync endpoint
    with pytest.raises(demo.exceptions.ValidationError) as raised:
        demo.invoke_endpoint(EndpointName="digits-svm", Body=body, ContentType="application/json")

    # Then the request is refused before it reaches the model
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "exceeds the InvokeEndpoint limit" in raised.value.response["Error"]["Message"]


def test_payload_of_exactly_6_mb_reaches_the_model(demo: Any) -> None:
    # Given a payload of exactly 6 MB (not a valid digit)
    body = b" " * MAX_SYNC_PAYLOAD_BYTES

    # When it is sent to a sync endpoint
    with pytest.raises(demo.exceptions.ModelError) as raised:
        demo.invoke_endpoint(EndpointName="digits-svm", Body=body, ContentType="application/json")

    # Then the model, not the size check, rejects it
    assert "input is not valid JSON" in raised.value.response["Error"]["Message"]


def test_unknown_endpoint_is_a_validation_error_naming_it(demo: Any) -> None:
    # Given an endpoint name that is not configured
    # When it is invoked
    with pytest.raises(demo.exceptions.ValidationError) as raised:
        demo.invoke_endpoint(EndpointName="no-such-model", Body=b"{}", ContentType="application/json")

    # Then SageMaker's not-found message names it
    assert raised.value.response["Error"]["Message"] == "Endpoint no-such-model of account 123456789012 not found."


def test_sync_invoke_of_an_async_endpoint_is_a_validation_error(demo: Any) -> None:
    # Given digits-forest, an async endpoint
    body, _ = _pixels()

    # When it is invoked synchronously
    with pytest.raises(demo.exceptions.ValidationError) as raised:
        demo.invoke_endpoint(EndpointName="digits-forest", Body=body, ContentType="application/json")

    # Then the caller is told to use InvokeEndpointAsync
    assert "InvokeEndpointAsync" in raised.value.response["Error"]["Message"]


def test_async_invoke_answers_at_once_with_the_inference_id_and_locations(demo: Any, cloud: Cloud) -> None:
    # Given an input object in S3
    body, _ = _pixels()
    location = cloud.put_input(body, "application/json")

    # When digits-forest is invoked asynchronously with an inference id
    response = demo.invoke_endpoint_async(
        EndpointName="digits-forest", InputLocation=location, ContentType="application/json", InferenceId="pred-1"
    )

    # Then the answer is 202 with the id and the output and failure locations
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert response["InferenceId"] == "pred-1"
    assert response["OutputLocation"] == f"s3://{cloud.bucket}/async-outputs/pred-1.out"
    assert response["FailureLocation"] == f"s3://{cloud.bucket}/async-failures/pred-1.err"


def test_async_output_lands_in_s3_and_success_is_notified_in_sagemaker_format(demo: Any, cloud: Cloud) -> None:
    # Given a held-out digit uploaded to S3
    body, expected = _pixels()
    location = cloud.put_input(body, "application/json")

    # When digits-forest is invoked asynchronously
    response = demo.invoke_endpoint_async(
        EndpointName="digits-forest", InputLocation=location, ContentType="application/json", InferenceId="pred-2"
    )

    # Then the success topic receives SageMaker's notification
    message = cloud.notification(cloud.success_queue_url, "pred-2")
    assert message["invocationStatus"] == "Completed"
    assert message["eventSource"] == "aws:sagemaker"
    assert message["eventName"] == "InferenceResult"
    assert message["eventVersion"] == "1.0"
    assert message["awsRegion"] == REGION
    assert message["receivedTime"] <= message["eventTime"]
    assert message["requestParameters"] == {
        "endpointName": "digits-forest",
        "inputLocation": location,
        "contentType": "application/json",
    }
    assert message["responseParameters"] == {
        "contentType": "application/json",
        "outputLocation": response["OutputLocation"],
    }
    # And the output in S3 is the model's answer
    assert json.loads(cloud.read(response["OutputLocation"]))["label"] == expected


def test_async_model_error_writes_the_failure_and_notifies_the_error_topic(demo: Any, cloud: Cloud) -> None:
    # Given a corrupt PNG uploaded to S3
    location = cloud.put_input(b"\x89PNG\r\n\x1a\nbroken", "image/png")

    # When digits-forest is invoked asynchronously with it
    response = demo.invoke_endpoint_async(
        EndpointName="digits-forest", InputLocation=location, ContentType="image/png", InferenceId="pred-3"
    )

    # Then the error topic receives SageMaker's Failed notification with the model's reason
    message = cloud.notification(cloud.error_queue_url, "pred-3")
    assert message["invocationStatus"] == "Failed"
    assert "input is not a readable PNG image" in message["failureReason"]
    assert message["responseParameters"] == {"failureLocation": response["FailureLocation"]}
    assert message["requestParameters"]["contentType"] == "image/png"
    # And the failure reason is stored at the failure location
    assert cloud.read(response["FailureLocation"]).decode() == message["failureReason"]


def test_async_missing_input_object_is_a_failed_notification(demo: Any, cloud: Cloud) -> None:
    # Given an input location with no object
    location = f"s3://{cloud.bucket}/inputs/missing/input"

    # When digits-forest is invoked asynchronously with it
    response = demo.invoke_endpoint_async(
        EndpointName="digits-forest", InputLocation=location, ContentType="application/json"
    )

    # Then the failure names the input it could not read
    message = cloud.notification(cloud.error_queue_url, response["InferenceId"])
    assert message["invocationStatus"] == "Failed"
    assert location in message["failureReason"]


@pytest.mark.parametrize("slow_runtime", [1], indirect=True)
def test_async_invocation_over_its_timeout_fails_as_timed_out(slow_runtime: Any, cloud: Cloud) -> None:
    # Given a request that keeps the model busy for 3 s
    location = cloud.put_input(json.dumps({"seconds": 3}).encode(), "application/json")

    # When it is invoked with a 1 s invocation timeout
    response = slow_runtime.invoke_endpoint_async(
        EndpointName="slow", InputLocation=location, ContentType="application/json", InvocationTimeoutSeconds=1
    )

    # Then it fails as timed out
    message = cloud.notification(cloud.error_queue_url, response["InferenceId"])
    assert message["invocationStatus"] == "Failed"
    assert "Invocation timed out" in message["failureReason"]


@pytest.mark.parametrize("slow_runtime", [1], indirect=True)
def test_async_model_exception_is_reported_with_its_message(slow_runtime: Any, cloud: Cloud) -> None:
    # Given a request the model raises on
    location = cloud.put_input(json.dumps({"seconds": 0, "fail": True}).encode(), "application/json")

    # When it is invoked asynchronously
    response = slow_runtime.invoke_endpoint_async(
        EndpointName="slow", InputLocation=location, ContentType="application/json"
    )

    # Then the failure reason carries the model's exception
    message = cloud.notification(cloud.error_queue_url, response["InferenceId"])
    assert "RuntimeError: the slow model was asked to fail" in message["failureReason"]


def _run_two(client: Any, cloud: Cloud, seconds: float) -> tuple[list[dict[str, float]], float]:
    """Invoke `slow` twice at once; returns both runs' times and how long accepting took."""
    locations = [cloud.put_input(json.dumps({"seconds": seconds}).encode(), "application/json") for _ in range(2)]
    started = time.monotonic()
    responses = [
        client.invoke_endpoint_async(EndpointName="slow", InputLocation=location, ContentType="application/json")
        for location in locations
    ]
    accepted_in = time.monotonic() - started
    for response in responses:
        assert cloud.notification(cloud.success_queue_url, response["InferenceId"])["invocationStatus"] == "Completed"
    runs = sorted(
        (json.loads(cloud.read(response["OutputLocation"])) for response in responses), key=lambda run: run["started"]
    )
    return runs, accepted_in


@pytest.mark.parametrize("slow_runtime", [1], indirect=True)
def test_requests_beyond_max_concurrency_wait_in_the_queue(slow_runtime: Any, cloud: Cloud) -> None:
    # Given an async endpoint with maxConcurrency 1 and a model that takes 0.5 s
    # When two requests arrive at once
    (first, second), accepted_in = _run_two(slow_runtime, cloud, seconds=0.5)

    # Then both are accepted at once, but the second runs only after the first finished
    assert accepted_in < 0.5
    assert second["started"] >= first["finished"]


@pytest.mark.parametrize("slow_runtime", [2], indirect=True)
def test_requests_within_max_concurrency_run_in_parallel(slow_runtime: Any, cloud: Cloud) -> None:
    # Given an async endpoint with maxConcurrency 2 and a model that takes 0.5 s
    # When two requests arrive at once
    (first, second), _ = _run_two(slow_runtime, cloud, seconds=0.5)

    # Then they overlap
    assert second["started"] < first["finished"]


def test_runtime_handle_answers_the_wire_protocol_without_a_server(cloud: Cloud) -> None:
    # Given a runtime that is not serving (as behind the local gateway)
    body, expected = _pixels()
    with _runtime(cloud) as runtime:
        # When a gateway passes it an InvokeEndpoint request
        status, headers, payload = runtime.handle(
            "POST",
            "/endpoints/digits-svm/invocations",
            {"Content-Type": "application/json", "Accept": "application/json"},
            body,
        )

    # Then it answers as SageMaker does
    assert status == 200
    assert headers["x-Amzn-Invoked-Production-Variant"] == "AllTraffic"
    assert json.loads(payload)["label"] == expected
