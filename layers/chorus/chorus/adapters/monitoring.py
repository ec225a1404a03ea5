"""Where data capture and the drift monitor keep their objects in the payloads bucket: one key
layout, used by the API (the latest report), the monitor and the capture transformation
(functions/monitor/store.py) and `chorus admin monitor` (a baseline's reference data).

    capture/<service>/<yyyy>/<MM>/<dd>/<HH>/…       Firehose batches (JSON Lines), per arrival hour
    baselines/<service>/statistics.json             the baseline, and the thresholds it is judged by
    baselines/<service>/constraints.json
    baselines/<service>/data.jsonl                  reference data uploaded by `chorus admin monitor baseline`
    reports/<service>/<window>/statistics.json      each window's statistics, its violations and the report
    reports/<service>/<window>/constraint_violations.json
    reports/<service>/<window>/report.json
    reports/<service>/latest.json                   the newest report (GET /services/{name}/monitoring)
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from chorus.core import settings
from chorus.core.clients import client

CAPTURE, BASELINES, REPORTS = "capture", "baselines", "reports"


def bucket() -> str:
    return settings.load(settings.PayloadSettings).payloads_bucket


def capture_hour_prefix(service: str, hour: datetime) -> str:
    return f"{CAPTURE}/{service}/{hour:%Y/%m/%d/%H}/"


def baseline_key(service: str, name: str) -> str:
    return f"{BASELINES}/{service}/{name}"


def window_name(since: datetime, until: datetime) -> str:
    return f"{since:%Y%m%dT%H%M%SZ}-{until:%Y%m%dT%H%M%SZ}"


def report_key(service: str, window: str, name: str) -> str:
    return f"{REPORTS}/{service}/{window}/{name}"


def latest_report_key(service: str) -> str:
    return f"{REPORTS}/{service}/latest.json"


def read_document(key: str) -> Any | None:
    """A JSON object of the bucket, or None when there is none."""
    try:
        body = client("s3").get_object(Bucket=bucket(), Key=key)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    return json.loads(body)


def write_document(key: str, document: Any) -> None:
    body = json.dumps(document, indent=1, sort_keys=False).encode()
    client("s3").put_object(Bucket=bucket(), Key=key, Body=body, ContentType="application/json")


def latest_report(service: str) -> Any | None:
    return read_document(latest_report_key(service))
