"""capture: Amazon Data Firehose's data-transformation Lambda for the capture stream.

The product sends one JSON line per captured prediction naming where its input and output are
(chorus/domain/capture.py). This turns it into SageMaker Model Monitor's data-capture shape plus
Chorus's own block (service, tenant, locations, the input's features, the output's label), and
partitions it by service, so Firehose writes it under `capture/<service>/<yyyy>/<MM>/<dd>/<HH>/`.

- A JSON input or output of at most 4 KiB is copied inline (`"encoding": "JSON"`). Anything larger,
  and every binary one, is captured *by reference* — `"data": "s3://bucket/key"`, `"encoding": "S3"`,
  Chorus's extension of SageMaker's encodings — because an uploaded image may be personal data that
  must not be copied out of its expiring payload object, and because the transformation's answer
  for a whole batch must stay under Lambda's 6 MB response limit.
- Features are computed either way: an image's from its pixels, a JSON document's of any size.
- An object that is gone (expired, deleted) leaves the record `Ok`, with `chorus.missing` naming it.
- A product line that is not a capture entry, or an object S3 refuses to read, fails only its own
  record (`ProcessingFailed`: Firehose writes it under its error prefix); the batch never raises.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import (
    KinesisFirehoseDataTransformationRecord,
    KinesisFirehoseDataTransformationRecordMetadata,
    KinesisFirehoseDataTransformationResponse,
    KinesisFirehoseEvent,
)
from aws_lambda_powertools.utilities.data_classes.kinesis_firehose_event import KinesisFirehoseRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chorus.core.observability import logger, metrics

import features
import store

INLINE_MAX_BYTES = 4 * 1024
# A body larger than this is captured by reference without features (a 1 GB async input is not
# worth a Lambda's memory to summarise).
FEATURE_MAX_BYTES = 16 * 1024 * 1024
# Inline copies stop once the batch's answer holds this much, leaving room under Lambda's 6 MB for
# the remaining records by reference (the stream's processor buffer keeps batches small: 0.2 MB).
INLINE_BUDGET_BYTES = 4 * 1024 * 1024
SERVICE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"  # becomes an S3 prefix


class _Entry(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Location(_Entry):
    bucket: Annotated[str, Field(min_length=1)]
    key: Annotated[str, Field(min_length=1)]
    content_type: Annotated[str, Field(alias="contentType")] = ""


class ProductEntry(_Entry):
    """One line the product wrote to the capture stream."""

    event_id: Annotated[str, Field(alias="eventId", min_length=1)]
    inference_id: Annotated[str, Field(alias="inferenceId", min_length=1)]
    inference_time: Annotated[str, Field(alias="inferenceTime")]
    service: Annotated[str, Field(pattern=SERVICE_NAME)]
    tenant: str
    version: str | None = None
    parent_id: Annotated[str | None, Field(alias="parentId")] = None
    step: str | None = None
    input: Location | None = None
    output: Location | None = None

    @field_validator("inference_time")
    @classmethod
    def _is_a_moment(cls, value: str) -> str:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("inferenceTime needs a time zone")
        return value  # kept as the product wrote it


@dataclass
class Side:
    """What was captured of one side (input or output) of a prediction."""

    entry: dict[str, Any]  # SageMaker's endpointInput / endpointOutput
    document: Any = None  # the parsed JSON, when it is JSON
    measured: features.Features = field(default_factory=dict)  # the features of an input
    missing: bool = False


def read_side(where: Location, mode: Literal["INPUT", "OUTPUT"], inline: bool) -> Side:
    reference = {
        "observedContentType": where.content_type,
        "mode": mode,
        "data": store.location(where.bucket, where.key),
        "encoding": "S3",
    }
    found = store.read_object(where.bucket, where.key, max_bytes=FEATURE_MAX_BYTES)
    if found is None:
        return Side(entry=reference, missing=True)
    if found.body is None:
        return Side(entry=reference)
    if features.is_json(where.content_type):
        try:
            text = found.body.decode()
            document = json.loads(text)
        except ValueError:  # not UTF-8 or not JSON after all: kept by reference, unmeasured
            return Side(entry=reference)
        side = Side(entry=reference, document=document, measured=features.json_features(document))
        if inline and len(found.body) <= INLINE_MAX_BYTES:
            side.entry = {**reference, "data": text, "encoding": "JSON"}
        return side
    try:
        return Side(entry=reference, measured=features.image_features(found.body))
    except ValueError:  # a binary input that is no image Pillow reads: kept by reference, unmeasured
        return Side(entry=reference)


def capture(entry: ProductEntry, inline: bool = True) -> dict[str, Any]:
    """The capture record of one product entry (reads its payload objects)."""
    data: dict[str, Any] = {}
    chorus: dict[str, Any] = {
        "service": entry.service,
        "tenant": entry.tenant,
        "version": entry.version,
        "parentId": entry.parent_id,
        "step": entry.step,
        "inputLocation": None,
        "outputLocation": None,
        "features": {},
        "label": None,
    }
    missing = []
    if entry.input is not None:
        side = read_side(entry.input, "INPUT", inline)
        data["endpointInput"] = side.entry
        chorus["inputLocation"] = store.location(entry.input.bucket, entry.input.key)
        chorus["features"] = side.measured
        if side.missing:
            missing.append("input")
    if entry.output is not None:
        side = read_side(entry.output, "OUTPUT", inline)
        data["endpointOutput"] = side.entry
        chorus["outputLocation"] = store.location(entry.output.bucket, entry.output.key)
        chorus["label"] = features.label_of(side.document)
        if side.missing:
            missing.append("output")
    if missing:
        chorus["missing"] = missing
    return {
        "captureData": data,
        "eventMetadata": {
            "eventId": entry.event_id,
            "inferenceId": entry.inference_id,
            "inferenceTime": entry.inference_time,
        },
        "eventVersion": "0",
        "chorus": chorus,
    }


def transform(record: KinesisFirehoseRecord, inline: bool) -> KinesisFirehoseDataTransformationRecord:
    try:
        entry = ProductEntry.model_validate_json(record.data_as_bytes)
        captured = capture(entry, inline)
    except (ValidationError, ValueError, ClientError, BotoCoreError) as error:
        logger.warning("capture record failed", extra={"record_id": record.record_id, "error": str(error)[:500]})
        metrics.add_metric(name="CaptureRecordsFailed", unit=MetricUnit.Count, value=1)
        return record.build_data_transformation_response(result="ProcessingFailed", data=record.data)
    line = json.dumps(captured, separators=(",", ":")) + "\n"
    return record.build_data_transformation_response(
        data=base64.b64encode(line.encode()).decode(),
        metadata=KinesisFirehoseDataTransformationRecordMetadata(partition_keys={"service": entry.service}),
    )


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    answer = KinesisFirehoseDataTransformationResponse()
    used = 0
    for record in KinesisFirehoseEvent(event).records:
        transformed = transform(record, inline=used < INLINE_BUDGET_BYTES)
        used += len(transformed.data)
        answer.add_record(transformed)
    return answer.asdict()
