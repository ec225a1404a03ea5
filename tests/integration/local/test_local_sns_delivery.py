"""SNS → Lambda: subscriptions from `Type: SNS` events, Lambda's SNS event, async retries and
the OnFailure destination."""

from __future__ import annotations

import json
import uuid

from tests.integration.local.support import wait_for


def sns_events(aws, observations, message: str) -> list[dict]:
    return [
        json.loads(aws("s3").get_object(Bucket=observations.bucket, Key=key)["Body"].read())
        for key in observations(f"sns/{message}/")
    ]


def test_published_message_reaches_the_function_as_lambdas_sns_event(aws, local_stack, observations):
    # Given the function's SNS event on the topic
    topic = local_stack.provisioned.ref("EventsTopic")
    message = f"hello-{uuid.uuid4().hex[:8]}"
    # When a message is published
    message_id = aws("sns").publish(TopicArn=topic, Message=message, Subject="greeting")["MessageId"]
    # Then the function got one SNS event shaped as SNS gives it to Lambda
    (event,) = wait_for(lambda: sns_events(aws, observations, message))
    (record,) = event["Records"]
    subscriptions = aws("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert record["EventSource"] == "aws:sns"
    assert record["EventVersion"] == "1.0"
    assert record["EventSubscriptionArn"] in {s["SubscriptionArn"] for s in subscriptions}
    sns = record["Sns"]
    assert sns["Type"] == "Notification"
    assert sns["MessageId"] == message_id
    assert sns["TopicArn"] == topic
    assert sns["Subject"] == "greeting"
    assert sns["Message"] == message
    assert sns["Timestamp"].endswith("Z")
    assert sns["SignatureVersion"] and sns["Signature"]
    assert sns["SigningCertUrl"].startswith("https://sns.")
    assert sns["UnsubscribeUrl"].startswith("https://sns.")
    assert sns["MessageAttributes"] == {}


def test_failing_delivery_is_retried_then_recorded_on_the_failure_destination(aws, local_stack, observations):
    # Given MaximumRetryAttempts 1 and OnFailure → FailuresQueue (retry delay 0.2 s in tests)
    topic = local_stack.provisioned.ref("EventsTopic")
    message = f"fail-{uuid.uuid4().hex[:8]}"
    # When every attempt raises
    aws("sns").publish(TopicArn=topic, Message=message)
    # Then Lambda's failure record arrives on the destination after 2 attempts
    failures = local_stack.provisioned.ref("FailuresQueue")

    def failure_record() -> dict | None:
        for m in aws("sqs").receive_message(QueueUrl=failures, WaitTimeSeconds=1).get("Messages", []):
            body = json.loads(m["Body"])
            if body["requestPayload"]["Records"][0]["Sns"]["Message"] == message:
                return body
        return None

    record = wait_for(failure_record, timeout=30)
    assert len(sns_events(aws, observations, message)) == 2
    assert record["version"] == "1.0"
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestContext"]["functionArn"].endswith(f"function:{local_stack.stack_name}-sns:$LATEST")
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    assert record["responsePayload"]["errorMessage"] == f"refusing {message}"
