"""Event sources from the template's `Events`: SQS event source mappings and SNS subscriptions.

SQS: Lambda's poller, reproduced on top of moto's SQS API. One receiving thread per mapping
(moto's queues are not safe for concurrent receives), invocations in parallel up to the
function's pool size. Records are built exactly as Lambda builds them; after the invocation
- handler raised (FunctionError) → nothing is deleted: the whole batch returns after the
  visibility timeout;
- ReportBatchItemFailures → everything except `batchItemFailures[].itemIdentifier` is deleted;
  an unparseable response or an unknown identifier fails the whole batch, as Lambda does;
- otherwise → the batch is deleted.
Redrive to the dead-letter queue after maxReceiveCount is moto's own: its ReceiveMessage moves a
message whose receive count reached maxReceiveCount to the DLQ instead of returning it.

SNS: the function is subscribed with protocol `http` to the gateway's `/_local/sns/{function}`;
the gateway turns each delivery into Lambda's SNS event and invokes asynchronously.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from chorus_local.gateway import AwsEndpoint
from chorus_local.lambda_runtime import LambdaRuntime

log = logging.getLogger("chorus_local.events")

RECEIVE_WAIT_SECONDS = 1  # short long-poll, so stop() returns promptly


@dataclass(frozen=True)
class SqsMapping:
    """A function's `Type: SQS` event."""

    function: str
    queue_arn: str
    batch_size: int = 10
    batching_window_seconds: int = 0
    report_batch_item_failures: bool = False
    enabled: bool = True
    maximum_concurrency: int | None = None

    @property
    def queue_name(self) -> str:
        return self.queue_arn.split(":")[5]

    @property
    def region(self) -> str:
        return self.queue_arn.split(":")[3]


@dataclass(frozen=True)
class SnsSubscription:
    """A function's `Type: SNS` event."""

    function: str  # logical id, used in the delivery URL
    topic_arn: str
    filter_policy: Mapping[str, Any] | None = None
    filter_policy_scope: str | None = None


def sqs_message_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """SQS API message attributes → the camelCase form Lambda puts in SQS records."""
    converted: dict[str, Any] = {}
    for name, value in attributes.items():
        item: dict[str, Any] = {
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
        if "StringValue" in value:
            item["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            item["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
        converted[name] = item
    return converted


def sqs_record(message: Mapping[str, Any], queue_arn: str) -> dict[str, Any]:
    """One SQS message as Lambda's event source mapping delivers it."""
    system = message.get("Attributes", {})
    attributes = {
        "ApproximateReceiveCount": system.get("ApproximateReceiveCount", "1"),
        "SentTimestamp": system.get("SentTimestamp", str(int(time.time() * 1000))),
        "SenderId": system.get("SenderId", "AIDAIT2UOQQY3AUEKVGXU"),
        "ApproximateFirstReceiveTimestamp": system.get(
            "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
        ),
    }
    # Present only when the message has them (FIFO queues, X-Ray, redriven messages).
    for optional in (
        "AWSTraceHeader",
        "MessageGroupId",
        "MessageDeduplicationId",
        "SequenceNumber",
        "DeadLetterQueueSourceArn",
    ):
        if optional in system:
            attributes[optional] = system[optional]
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": sqs_message_attributes(message.get("MessageAttributes", {})),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3],
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def failed_message_ids(response: Any, batch_ids: set[str]) -> set[str]:
    """Lambda's reading of a ReportBatchItemFailures response.

    Empty/None response or an empty list: all succeeded. A malformed response or an identifier
    that is not in the batch: the whole batch failed.
    """
    if response is None or response == {} or response == "":
        return set()
    if not isinstance(response, dict):
        return batch_ids
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return batch_ids
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in batch_ids:
            return batch_ids
        failed.add(identifier)
    return failed


class SqsPoller:
    """The event source mapping for one (queue, function) pair."""

    def __init__(self, mapping: SqsMapping, runtime: LambdaRuntime, endpoint: AwsEndpoint):
        self.mapping = mapping
        self._runtime = runtime
        self._sqs = endpoint.client("sqs")
        concurrency = min(runtime.pool_size, mapping.maximum_concurrency or runtime.pool_size)
        self._slots = threading.Semaphore(concurrency)
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"sqs-{mapping.function}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sqs-poller-{mapping.queue_name}", daemon=True)
        self._queue_url = ""

    def start(self) -> None:
        self._queue_url = self._sqs.get_queue_url(
            QueueName=self.mapping.queue_name,
            QueueOwnerAWSAccountId=self.mapping.queue_arn.split(":")[4],
        )["QueueUrl"]
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=RECEIVE_WAIT_SECONDS + 5)
        self._executor.shutdown(wait=True)

    def _receive(self, limit: int, wait_seconds: int) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=min(10, limit),
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def _collect_batch(self) -> list[dict[str, Any]]:
        """Up to BatchSize messages; keep filling during MaximumBatchingWindowInSeconds.

        Follow-up receives are short polls, so the window never outlasts it by a long poll, and
        a message seen twice (its visibility timeout ran out meanwhile) is kept once, with its
        newest receipt handle, the only one that still deletes it.
        """
        batch: dict[str, dict[str, Any]] = {}
        for message in self._receive(self.mapping.batch_size, RECEIVE_WAIT_SECONDS):
            batch[message["MessageId"]] = message
        window_ends = time.monotonic() + self.mapping.batching_window_seconds
        while (
            batch
            and len(batch) < self.mapping.batch_size
            and time.monotonic() < window_ends
            and not self._stop.is_set()
        ):
            more = self._receive(self.mapping.batch_size - len(batch), 0)
            for message in more:
                batch[message["MessageId"]] = message
            if not more:
                self._stop.wait(0.1)
        return list(batch.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._slots.acquire(timeout=0.5):
                continue
            try:
                batch = self._collect_batch()
            except Exception as error:  # the gateway is stopping, or the queue went away
                self._slots.release()
                if not self._stop.is_set():
                    log.warning("SQS poller for %s: %s", self.mapping.queue_name, error)
                    self._stop.wait(1.0)
                continue
            if not batch:
                self._slots.release()
                continue
            self._executor.submit(self._process, batch)

    def _process(self, batch: list[dict[str, Any]]) -> None:
        try:
            records = [sqs_record(message, self.mapping.queue_arn) for message in batch]
            event = json.dumps({"Records": records}).encode()
            result = self._runtime.invoke(self.mapping.function, event)
            by_id = {message["MessageId"]: message for message in batch}
            if result.function_error:
                log.info(
                    "%s failed a batch of %d; messages return after the visibility timeout",
                    self.mapping.function,
                    len(batch),
                )
                return
            failed: set[str] = set()
            if self.mapping.report_batch_item_failures:
                try:
                    response = result.json()
                except ValueError:
                    response = "malformed"
                failed = failed_message_ids(response, set(by_id))
            done = [m for message_id, m in by_id.items() if message_id not in failed]
            self._delete(done)
        except Exception:
            log.exception("SQS poller for %s could not process a batch", self.mapping.queue_name)
        finally:
            self._slots.release()

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            response = self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]} for index, message in enumerate(chunk)
                ],
            )
            for failure in response.get("Failed", []):
                log.warning("could not delete a message from %s: %s", self.mapping.queue_name, failure)


def sns_event(message: Mapping[str, Any], subscription_arn: str) -> dict[str, Any]:
    """An SNS HTTP(S) delivery body → the event SNS gives a Lambda subscriber."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": {
                    "Type": message.get("Type", "Notification"),
                    "MessageId": message["MessageId"],
                    "TopicArn": message["TopicArn"],
                    "Subject": message.get("Subject"),
                    "Message": message["Message"],
                    "Timestamp": message["Timestamp"],
                    "SignatureVersion": message.get("SignatureVersion", "1"),
                    "Signature": message.get("Signature", ""),
                    # HTTP deliveries spell these ...URL, Lambda events ...Url.
                    "SigningCertUrl": message.get("SigningCertURL", ""),
                    "UnsubscribeUrl": message.get("UnsubscribeURL", ""),
                    "MessageAttributes": dict(message.get("MessageAttributes") or {}),
                },
            }
        ]
    }


@dataclass
class SnsDeliveries:
    """Subscribes functions to topics and turns deliveries into asynchronous invocations."""

    runtime: LambdaRuntime
    endpoint: AwsEndpoint
    delivery_base_url: str
    subscriptions: dict[tuple[str, str], str] = field(default_factory=dict)  # (fn, topic) → ARN

    def subscribe(self, subscription: SnsSubscription) -> str:
        attributes: dict[str, str] = {}
        if subscription.filter_policy is not None:
            attributes["FilterPolicy"] = json.dumps(subscription.filter_policy)
        if subscription.filter_policy_scope:
            attributes["FilterPolicyScope"] = subscription.filter_policy_scope
        response = self.endpoint.client("sns").subscribe(
            TopicArn=subscription.topic_arn,
            Protocol="http",
            Endpoint=f"{self.delivery_base_url}/_local/sns/{subscription.function}",
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )
        arn = str(response["SubscriptionArn"])
        self.subscriptions[(subscription.function, subscription.topic_arn)] = arn
        return arn

    def deliver(self, function: str, message: Mapping[str, Any]) -> None:
        if message.get("Type") == "SubscriptionConfirmation":
            # moto 5.2.5 confirms HTTP subscriptions itself and never sends this; AWS does.
            log.info("ignoring an SNS subscription confirmation for %s", function)
            return
        topic_arn = str(message.get("TopicArn", ""))
        subscription_arn = self.subscriptions.get((function, topic_arn), f"{topic_arn}:local")
        event = sns_event(message, subscription_arn)
        self.runtime.invoke_async(function, json.dumps(event).encode())
