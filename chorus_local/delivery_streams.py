"""Amazon Data Firehose, DirectPut to S3, as the template declares it: buffering, the Lambda
data transformation, dynamic partitioning from the transformation's partition keys, error output.

moto 5.2.5 stores delivery streams, but its PutRecord writes each call straight to S3 under a key
of its own, with no transformation and no `!{…}` prefix expressions. The AWS gateway routes
`Firehose_20150804.PutRecord` and `PutRecordBatch` here instead (after recording the call and
applying `/_local/faults`, so an outage is injected as for any service); the stream itself is still
moto's, so `DeleteDeliveryStream` makes the next put answer `ResourceNotFoundException`.

A background thread flushes a stream's buffer once its oldest record has waited
`BufferingHints.IntervalInSeconds` (or the buffer reached `SizeInMBs`), and `stop()` flushes what
is left. A flush invokes the processor function synchronously (at most its `BufferSizeInMBs` per
invocation) with Firehose's transformation event, writes every `Ok` record under `Prefix` with
`!{partitionKeyFromLambda:KEY}` and `!{timestamp:FMT}` resolved (one object per resolved prefix per
flush), drops `Dropped` ones, and writes `ProcessingFailed` ones — or all of a failed invocation's —
as Firehose's error records under `ErrorOutputPrefix`.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chorus_local.gateway import AwsEndpoint
    from chorus_local.lambda_runtime import LambdaRuntime

log = logging.getLogger("chorus_local.firehose")

MAX_RECORD_BYTES = 1000 * 1024
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 4 * 1024 * 1024
_EXPRESSION = re.compile(r"!\{(?P<namespace>[a-zA-Z]+):(?P<argument>[^}]*)\}")
# Java DateTimeFormatter letters Firehose's !{timestamp:…} takes, as strftime.
_JAVA_TIME = [("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S")]


class FirehoseError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass(frozen=True)
class DeliveryStreamConfig:
    name: str
    arn: str
    bucket: str
    prefix: str = ""
    error_prefix: str = ""
    interval_seconds: float = 300.0
    size_bytes: int = 5 * 1024 * 1024
    processor: str | None = None  # a function of the local runtime
    processor_batch_bytes: int = 1024 * 1024
    kms_key_arn: str | None = None
    encrypted: bool = False  # server-side encryption of the stream (DeliveryStreamEncryptionConfigurationInput)


@dataclass
class _Record:
    record_id: str
    data: bytes
    arrived: float  # epoch seconds


@dataclass
class _Buffer:
    records: list[_Record] = field(default_factory=list)
    size: int = 0


def _resolve_time(pattern: str, moment: datetime) -> str:
    for java, strftime in _JAVA_TIME:
        pattern = pattern.replace(java, strftime)
    return moment.strftime(pattern)


def resolve_prefix(prefix: str, moment: datetime, partition_keys: Mapping[str, str], error_type: str = "") -> str:
    """A prefix with Firehose's `!{…}` expressions filled in; KeyError names a missing partition key."""

    def value(match: re.Match[str]) -> str:
        namespace, argument = match["namespace"], match["argument"]
        if namespace == "timestamp":
            return _resolve_time(argument, moment)
        if namespace == "partitionKeyFromLambda":
            return str(partition_keys[argument])
        if namespace == "firehose" and argument == "error-output-type":
            return error_type
        raise KeyError(f"{namespace}:{argument}")

    return _EXPRESSION.sub(value, prefix)


class DeliveryStreams:
    """The local Firehose data plane for the template's DirectPut streams."""

    def __init__(
        self,
        configs: list[DeliveryStreamConfig],
        runtime: LambdaRuntime,
        endpoint: AwsEndpoint,
        stream_exists: Any = None,
    ) -> None:
        self._configs = {c.name: c for c in configs}
        self._runtime = runtime
        self._endpoint = endpoint
        self._exists = stream_exists or (lambda name: True)
        self._buffers: dict[str, _Buffer] = {c.name: _Buffer() for c in configs}
        self._lock = threading.Condition()
        self._stopping = False
        self._flush_lock = threading.Lock()  # one flush at a time: objects and their order stay whole
        self._thread = threading.Thread(target=self._run, name="firehose", daemon=True)

    @property
    def names(self) -> list[str]:
        return sorted(self._configs)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self.flush(force=True)

    # -- the API ---------------------------------------------------------------------------

    def handle(self, operation: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """(status, JSON answer) of PutRecord or PutRecordBatch, in Firehose's wire shapes."""
        try:
            request = json.loads(body or b"{}")
            name = str(request.get("DeliveryStreamName", ""))
            config = self._configs.get(name)
            if config is None or not self._exists(name):
                raise FirehoseError("ResourceNotFoundException", f"Firehose {name} under account was not found.")
            if operation == "PutRecord":
                records = [request.get("Record") or {}]
            elif operation == "PutRecordBatch":
                records = list(request.get("Records") or [])
                if not 1 <= len(records) <= MAX_BATCH_RECORDS:
                    raise FirehoseError("InvalidArgumentException", f"Records must hold 1 to {MAX_BATCH_RECORDS}")
            else:
                raise FirehoseError("InvalidArgumentException", f"{operation} is not emulated locally")
            decoded = [self._decode(record) for record in records]
            if sum(len(d) for d in decoded) > MAX_BATCH_BYTES:
                raise FirehoseError("InvalidArgumentException", "a batch may hold at most 4 MiB")
        except FirehoseError as error:
            return error.status, {"__type": error.code, "message": error.message}
        except ValueError as error:
            return 400, {"__type": "SerializationException", "message": str(error)}
        ids = self._append(config, decoded)
        if operation == "PutRecord":
            return 200, {"RecordId": ids[0], "Encrypted": config.encrypted}
        return 200, {
            "FailedPutCount": 0,
            "Encrypted": config.encrypted,
            "RequestResponses": [{"RecordId": record_id} for record_id in ids],
        }

    @staticmethod
    def _decode(record: Mapping[str, Any]) -> bytes:
        try:
            data = base64.b64decode(str(record["Data"]), validate=True)
        except (KeyError, ValueError) as error:
            raise FirehoseError("InvalidArgumentException", f"Record.Data must be base64: {error}") from error
        if len(data) > MAX_RECORD_BYTES:
            raise FirehoseError("InvalidArgumentException", "a record may hold at most 1,000 KiB")
        return data

    def _append(self, config: DeliveryStreamConfig, records: list[bytes]) -> list[str]:
        now = time.time()
        added = [_Record(uuid.uuid4().hex + uuid.uuid4().hex, data, now) for data in records]
        with self._lock:
            buffer = self._buffers[config.name]
            buffer.records.extend(added)
            buffer.size += sum(len(r.data) for r in added)
            self._lock.notify_all()
        return [r.record_id for r in added]

    # -- flushing --------------------------------------------------------------------------

    def _due(self, now: float) -> list[str]:
        due = []
        for name, buffer in self._buffers.items():
            config = self._configs[name]
            if buffer.records and (
                now - buffer.records[0].arrived >= config.interval_seconds or buffer.size >= config.size_bytes
            ):
                due.append(name)
        return due

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                self._lock.wait(timeout=0.1)
            try:
                self.flush()
            except Exception:  # never let the flusher die: log and try the next round
                log.exception("firehose flush failed")

    def flush(self, force: bool = False) -> int:
        """Deliver every due buffer (every non-empty one with `force`); returns the records taken."""
        with self._flush_lock:
            with self._lock:
                names = [n for n, b in self._buffers.items() if b.records] if force else self._due(time.time())
                taken = {}
                for name in names:
                    taken[name] = self._buffers[name].records
                    self._buffers[name] = _Buffer()
            for name, records in taken.items():
                self._deliver(self._configs[name], records)
            return sum(len(r) for r in taken.values())

    def _deliver(self, config: DeliveryStreamConfig, records: list[_Record]) -> None:
        delivered: dict[str, list[bytes]] = {}
        failed: list[tuple[_Record, str, str]] = []
        for batch in self._batches(config, records):
            if config.processor is None:
                for record in batch:
                    moment = datetime.fromtimestamp(record.arrived, UTC)
                    delivered.setdefault(resolve_prefix(config.prefix, moment, {}), []).append(record.data)
                continue
            ok, errors = self._transform(config, batch)
            for prefix, data in ok:
                delivered.setdefault(prefix, []).append(data)
            failed += errors
        for prefix, chunks in delivered.items():
            self._put(config, prefix, b"".join(chunks))
        if failed:
            self._put_errors(config, failed)
        log.info(
            "%s: %d records in, %d objects written, %d failed", config.name, len(records), len(delivered), len(failed)
        )

    @staticmethod
    def _batches(config: DeliveryStreamConfig, records: list[_Record]) -> list[list[_Record]]:
        batches: list[list[_Record]] = [[]]
        size = 0
        for record in records:
            if batches[-1] and size + len(record.data) > config.processor_batch_bytes:
                batches.append([])
                size = 0
            batches[-1].append(record)
            size += len(record.data)
        return [b for b in batches if b]

    def _transform(
        self, config: DeliveryStreamConfig, batch: list[_Record]
    ) -> tuple[list[tuple[str, bytes]], list[tuple[_Record, str, str]]]:
        assert config.processor is not None
        event = {
            "invocationId": str(uuid.uuid4()),
            "deliveryStreamArn": config.arn,
            "region": self._endpoint.region,
            "records": [
                {
                    "recordId": r.record_id,
                    "approximateArrivalTimestamp": int(r.arrived * 1000),
                    "data": base64.b64encode(r.data).decode(),
                }
                for r in batch
            ],
        }
        result = self._runtime.invoke(config.processor, json.dumps(event).encode())
        answered: dict[str, Any] = {}
        problem = ""
        if result.function_error:
            problem = f"The Lambda function was invoked but it returned an error: {result.payload[:300]!r}"
        else:
            try:
                answered = {str(r["recordId"]): r for r in (result.json() or {})["records"]}
            except (TypeError, KeyError, ValueError) as error:
                problem = f"The Lambda function returned an invalid response: {error}"
        ok: list[tuple[str, bytes]] = []
        errors: list[tuple[_Record, str, str]] = []
        for record in batch:
            answer = answered.get(record.record_id)
            if problem or answer is None:
                errors.append((record, "Lambda.FunctionError", problem or "the record is missing from the answer"))
                continue
            outcome = answer.get("result")
            if outcome == "Dropped":
                continue
            if outcome != "Ok":
                errors.append((record, "Lambda.ProcessingFailed", "the function marked the record ProcessingFailed"))
                continue
            keys = (answer.get("metadata") or {}).get("partitionKeys") or {}
            try:
                prefix = resolve_prefix(config.prefix, datetime.fromtimestamp(record.arrived, UTC), keys)
                ok.append((prefix, base64.b64decode(str(answer.get("data", "")))))
            except KeyError as missing:
                errors.append((record, "DynamicPartitioning.MetadataExtractionFailed", f"no partition key {missing}"))
        return ok, errors

    def _put_errors(self, config: DeliveryStreamConfig, failed: list[tuple[_Record, str, str]]) -> None:
        now = datetime.now(UTC)
        by_type: dict[str, list[bytes]] = {}
        for record, code, message in failed:
            kind = "partitioning-failed" if code.startswith("DynamicPartitioning") else "processing-failed"
            line = {
                "attemptsMade": 1,
                "arrivalTimestamp": int(record.arrived * 1000),
                "errorCode": code,
                "errorMessage": message,
                "attemptEndingTimestamp": int(time.time() * 1000),
                "rawData": base64.b64encode(record.data).decode(),
                "lambdaArn": self._runtime.config(config.processor).arn(self._endpoint.region)
                if config.processor
                else None,
            }
            by_type.setdefault(kind, []).append(json.dumps(line).encode() + b"\n")
        for kind, lines in by_type.items():
            self._put(config, resolve_prefix(config.error_prefix or config.prefix, now, {}, kind), b"".join(lines))

    def _put(self, config: DeliveryStreamConfig, prefix: str, body: bytes) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d-%H-%M-%S")
        key = f"{prefix}{config.name}-1-{stamp}-{uuid.uuid4()}"
        extra: dict[str, Any] = {}
        if config.kms_key_arn:
            extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": config.kms_key_arn}
        self._endpoint.client("s3").put_object(Bucket=config.bucket, Key=key, Body=body, **extra)
