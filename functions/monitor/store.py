"""The monitor's S3 adapter: the payload objects a capture record points at, and everything the
monitor reads and writes in the payloads bucket. The key layout is the layer's
(`chorus.adapters.monitoring`), shared with the API and `chorus admin monitor`."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from chorus.adapters import monitoring
from chorus.core.clients import client

JSON = "application/json"
_GZIP_MAGIC = b"\x1f\x8b"
_GONE = {"NoSuchKey", "404", "NotFound"}
MAX_LINES_OBJECT = 512 * 1024 * 1024  # a capture object is Firehose's buffer (at most 128 MB), a baseline less


@dataclass(frozen=True)
class StoredObject:
    size: int
    content_type: str | None
    body: bytes | None  # None: larger than the reader asked for, left unread


def bucket() -> str:
    return monitoring.bucket()


def location(bucket_name: str, key: str) -> str:
    return f"s3://{bucket_name}/{key}"


# --- payloads ----------------------------------------------------------------------------------


def read_object(bucket_name: str, key: str, max_bytes: int) -> StoredObject | None:
    """The object, its body read only if it has at most `max_bytes`; None if it is gone."""
    try:
        answer = client("s3").get_object(Bucket=bucket_name, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in _GONE:
            return None
        raise
    size = int(answer["ContentLength"])
    stream = answer["Body"]
    try:
        body = stream.read() if size <= max_bytes else None
    finally:
        stream.close()
    return StoredObject(size=size, content_type=answer.get("ContentType"), body=body)


# --- capture records -----------------------------------------------------------------------------


def capture_prefix(service: str, hour: datetime) -> str:
    return monitoring.capture_hour_prefix(service, hour)


def capture_keys(service: str, since: datetime, until: datetime) -> Iterator[str]:
    """Every capture object delivered in the hours from `since`'s to `until`'s (exclusive of an
    `until` on the hour)."""
    hour = since.replace(minute=0, second=0, microsecond=0)
    paginator = client("s3").get_paginator("list_objects_v2")
    while hour < until:
        for page in paginator.paginate(Bucket=bucket(), Prefix=capture_prefix(service, hour)):
            for item in page.get("Contents", []):
                yield item["Key"]
        hour += timedelta(hours=1)


def read_lines(key: str) -> list[bytes] | None:
    """The lines of a JSON-lines object in the bucket (gunzipped, if Firehose compressed it); None
    if it is gone."""
    found = read_object(bucket(), key, max_bytes=MAX_LINES_OBJECT)
    if found is None:
        return None
    if found.body is None:
        raise ValueError(f"{location(bucket(), key)} has {found.size} bytes, more than the monitor reads at once")
    body = found.body
    if body.startswith(_GZIP_MAGIC):
        body = gzip.decompress(body)
    return [line for line in body.splitlines() if line.strip()]


# --- baselines and reports ----------------------------------------------------------------------


def baseline_keys(service: str) -> tuple[str, str]:
    return monitoring.baseline_key(service, "statistics.json"), monitoring.baseline_key(service, "constraints.json")


def read_baseline(service: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(statistics, constraints), or None if the service has no baseline yet."""
    documents = [_read_json(key) for key in baseline_keys(service)]
    statistics, constraints = documents
    if statistics is None or constraints is None:
        return None
    return statistics, constraints


def write_baseline(service: str, statistics: dict[str, Any], constraints: dict[str, Any]) -> tuple[str, str]:
    statistics_key, constraints_key = baseline_keys(service)
    _write_json(statistics_key, statistics)
    _write_json(constraints_key, constraints)
    return statistics_key, constraints_key


@dataclass(frozen=True)
class ReportKeys:
    statistics: str
    violations: str
    report: str
    latest: str


def report_keys(service: str, since: datetime, until: datetime) -> ReportKeys:
    window = monitoring.window_name(since, until)
    return ReportKeys(
        statistics=monitoring.report_key(service, window, "statistics.json"),
        violations=monitoring.report_key(service, window, "constraint_violations.json"),
        report=monitoring.report_key(service, window, "report.json"),
        latest=monitoring.latest_report_key(service),
    )


def write_report(
    keys: ReportKeys, statistics: dict[str, Any], violations: dict[str, Any], report: dict[str, Any]
) -> None:
    _write_json(keys.statistics, statistics)
    _write_json(keys.violations, violations)
    _write_json(keys.report, report)
    _write_json(keys.latest, report)  # last: `latest` never names a report whose files are not there


def _read_json(key: str) -> Any:
    found = read_object(bucket(), key, max_bytes=MAX_LINES_OBJECT)
    return None if found is None or found.body is None else json.loads(found.body)


def _write_json(key: str, document: Any) -> None:
    body = json.dumps(document, separators=(",", ":")).encode()
    client("s3").put_object(Bucket=bucket(), Key=key, Body=body, ContentType=JSON)
