"""SQS event source mappings: Lambda's record shape, partial batch failures, redrive to the DLQ."""

from __future__ import annotations

import json
import uuid

from tests.integration.local.support import wait_for


def queue_url(aws, local_stack, logical_id: str) -> str:
    return local_stack.provisioned.ref(logical_id)


def observed(aws, observations, body: str) -> dict[str, dict]:
    """receive count → what the handler saw, for one message body."""
    seen = {}
    for key in observations(f"sqs/{body}/"):
        document = aws("s3").get_object(Bucket=observations.bucket, Key=key)["Body"].read()
        seen[key.rsplit("/", 1)[1]] = json.loads(document)
    return seen


def dlq_bodies(aws, url: str) -> dict[str, dict]:
    messages = (
        aws("sqs")
        .receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageSystemAttributeNames=["All"])
        .get("Messages", [])
    )
    return {m["Body"]: m for m in messages}


def test_records_have_lambdas_sqs_event_shape(aws, local_stack, observations):
    # When a message with attributes is sent to a mapped queue
    body = f"ok-shape-{uuid.uuid4().hex[:8]}"
    aws("sqs").send_message(
        QueueUrl=queue_url(aws, local_stack, "PartialQueue"),
        MessageBody=body,
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "demo"}},
    )
    # Then the handler received it in Lambda's SQS record format
    record = wait_for(lambda: observed(aws, observations, body))["1"]["record"]
    assert set(record) >= {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["body"] == body
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == local_stack.provisioned.attribute("PartialQueue", "Arn")
    assert record["awsRegion"] == "us-east-1"
    assert set(record["attributes"]) >= {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    }
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "demo",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }


def test_partial_batch_failure_deletes_only_the_succeeded_records(aws, local_stack, observations):
    # Given a batch with one record the handler succeeds on and one it reports as failed
    tag = uuid.uuid4().hex[:8]
    ok, failing = f"ok-{tag}", f"fail-{tag}"
    aws("sqs").send_message_batch(
        QueueUrl=queue_url(aws, local_stack, "PartialQueue"),
        Entries=[{"Id": "1", "MessageBody": ok}, {"Id": "2", "MessageBody": failing}],
    )
    # Then the failed record comes back after the visibility timeout (3 s) with receive count 2
    second = wait_for(lambda: observed(aws, observations, failing).get("2"))
    assert second["record"]["attributes"]["ApproximateReceiveCount"] == "2"
    # And, after maxReceiveCount (2), lands in the dead-letter queue
    dlq = queue_url(aws, local_stack, "PartialDLQ")
    wait_for(lambda: dlq_bodies(aws, dlq).get(failing), timeout=30)
    assert set(observed(aws, observations, failing)) == {"1", "2"}
    # While the succeeded record was deleted after its first delivery
    assert list(observed(aws, observations, ok)) == ["1"]
    first = observed(aws, observations, failing)["1"]
    assert observed(aws, observations, ok)["1"]["batch"] == first["batch"], "not one batch"


def test_handler_raising_fails_the_whole_batch(aws, local_stack, observations):
    # Given a batch where the handler raises (a record that would succeed rides along)
    tag = uuid.uuid4().hex[:8]
    raising, bystander = f"raise-{tag}", f"ok-{tag}"
    aws("sqs").send_message_batch(
        QueueUrl=queue_url(aws, local_stack, "RaiseQueue"),
        Entries=[{"Id": "1", "MessageBody": raising}, {"Id": "2", "MessageBody": bystander}],
    )
    # Then nothing was deleted: both records are delivered again, then both go to the DLQ
    dlq = queue_url(aws, local_stack, "RaiseDLQ")
    found: dict[str, dict] = {}

    def both_in_dlq() -> bool:
        found.update(dlq_bodies(aws, dlq))
        return {raising, bystander} <= set(found)

    wait_for(both_in_dlq, timeout=30)
    assert set(observed(aws, observations, bystander)) == {"1", "2"}
    assert set(observed(aws, observations, raising)) == {"1", "2"}
