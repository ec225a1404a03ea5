"""The payload store (S3): presigned uploads and downloads, inline inputs, step inputs, outputs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chorus.core import settings
from chorus.core.clients import client
from chorus.model.content import JSON
from chorus.model.records import S3Location


def _bucket() -> str:
    return settings.load(settings.PayloadSettings).payloads_bucket


# Every key a prediction's payloads live under names its tenant first, so a presigned POST (which
# pins its key) or a bucket policy can only ever reach that tenant's objects. Async endpoints'
# outputs stay where SageMaker writes them (async-outputs/).


def upload_key(tenant: str, prediction_id: str) -> str:
    return f"inputs/{tenant}/{prediction_id}/input"


def step_input_key(tenant: str, prediction_id: str) -> str:
    return f"steps/{tenant}/{prediction_id}/input"


def output_key(tenant: str, prediction_id: str) -> str:
    return f"outputs/{tenant}/{prediction_id}/output"


def upload_key_parts(key: str) -> tuple[str, str] | None:
    """(tenant, prediction id) of an object at `inputs/<tenant>/<id>/input`, else None."""
    parts = key.split("/")
    if len(parts) == 4 and parts[0] == "inputs" and parts[3] == "input" and parts[1] and parts[2]:
        return parts[1], parts[2]
    return None


def prediction_id_from_upload_key(key: str) -> str | None:
    parts = upload_key_parts(key)
    return parts[1] if parts else None


def presigned_upload(
    tenant: str, prediction_id: str, content_type: str, max_bytes: int, expires_in: int
) -> dict[str, Any]:
    """A presigned POST that only accepts this key (under the tenant), this content type and at
    most `max_bytes`."""
    return client("s3").generate_presigned_post(  # type: ignore[no-any-return]
        Bucket=_bucket(),
        Key=upload_key(tenant, prediction_id),
        Fields={"Content-Type": content_type},
        Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
        ExpiresIn=expires_in,
    )


def presigned_download(location: S3Location, expires_in: int) -> str:
    return client("s3").generate_presigned_url(  # type: ignore[no-any-return]
        "get_object",
        Params={"Bucket": location.bucket, "Key": location.key, "ResponseContentType": location.content_type},
        ExpiresIn=expires_in,
    )


def put_bytes(key: str, body: bytes, content_type: str) -> S3Location:
    bucket = _bucket()
    client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
    return S3Location(bucket=bucket, key=key, contentType=content_type)


def put_json(key: str, document: Any) -> S3Location:
    return put_bytes(key, json.dumps(document, separators=(",", ":")).encode(), JSON)


def read_bytes(location: S3Location) -> bytes:
    return client("s3").get_object(Bucket=location.bucket, Key=location.key)["Body"].read()  # type: ignore[no-any-return]


def read_prefix(location: S3Location, limit: int) -> bytes:
    """At most the first `limit` + 1 bytes (a ranged GET): enough to tell a small object from a
    larger one without reading a large one."""
    response = client("s3").get_object(Bucket=location.bucket, Key=location.key, Range=f"bytes=0-{limit}")
    return response["Body"].read()  # type: ignore[no-any-return]


def read_json(location: S3Location) -> Any:
    return json.loads(read_bytes(location))


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    content_type: str


def describe(bucket: str, key: str) -> ObjectInfo | None:
    """Size and content type of an object, or None if it is gone."""
    try:
        head = client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise
    return ObjectInfo(size=head["ContentLength"], content_type=head.get("ContentType", ""))
