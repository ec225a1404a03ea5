"""Orchestration cost per 1M predictions at list prices: the counted calls and measured Lambda
durations of one prediction x the dated price table in benchmarks/prices.json.

What is priced, per prediction:
- API Gateway: the client's REST requests (one create; nothing polls).
- Lambda: one request per REPORT line in the prediction's window, GB-s from its measured duration
  (rounded up to 1 ms) x its configured memory, at the arm64 rate (the template's architecture).
  The authorizer is assumed to run once per API request (a cache miss: a token seen for the first
  time in its 60 s cache; an upper bound), priced from one measured run.
- DynamoDB on demand: 1 RRU per read and 1 WRU per write (items ≤ 4 KB / ≤ 1 KB; transactions 2),
  base table only (a GSI write adds WRUs that are not counted here).
- S3: PUT/POST/LIST at the PUT tier, GET/HEAD at the GET tier, DELETE free.
- SQS: every request; SNS: publishes (deliveries to SQS and Lambda are free); KMS: every request;
  EventBridge: one custom event per PutEvents.
- Step Functions: state transitions (Standard), read from the execution history.
- Firehose: each captured record rounded up to 5 KB (the capture entries are far smaller). The
  capture transformation Lambda runs inside the window (the local stream flushes after 1 s), one
  invocation per record: on AWS (60 s buffer) one invocation takes a batch, so its requests and
  GB-s here are an upper bound. Its S3 reads are per record either way.
- AWS-internal work the local stack performs with caller `local` but AWS bills to the account: the
  SageMaker endpoint's S3 reads/writes and SNS notifications (less one S3 PUT per capture flush:
  Firehose writes one object per partition per buffer, negligible per prediction on AWS's 60 s
  buffer), and for SQS event sources one
  ReceiveMessage per DeleteMessage(Batch) (idle long polls are a fixed monthly cost, not per
  prediction). SNS deliveries and S3 event notifications are free.
Not priced: SageMaker (model compute, a separate figure), CloudWatch Logs, X-Ray, data transfer.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from benchmarks.calls import CAPTURE_FUNCTION, Invocation, Window

PRICES = Path(__file__).with_name("prices.json")
MILLION = 1_000_000
_DDB_READS = {"GetItem": 1, "Query": 1, "Scan": 1, "BatchGetItem": 1, "TransactGetItems": 2}
_DDB_WRITES = {"PutItem": 1, "UpdateItem": 1, "DeleteItem": 1, "BatchWriteItem": 1, "TransactWriteItems": 2}
_SQS_POLLED = {"DeleteMessage", "DeleteMessageBatch"}


def load_prices() -> dict[str, Any]:
    return dict(json.loads(PRICES.read_text()))


def _local_billed(window: Window) -> Counter[tuple[str, str]]:
    """Calls of caller `local` that AWS would bill to the account."""
    billed: Counter[tuple[str, str]] = Counter()
    local = window.counts(frozenset({"local"}))
    flushes = sum(1 for i in window.invocations if i.function == CAPTURE_FUNCTION)
    if ("s3", "PUT object") in local:
        local[("s3", "PUT object")] = max(0, local[("s3", "PUT object")] - flushes)
    for (service, operation), count in local.items():
        if service == "s3" or (service == "sns" and operation.startswith("Publish")):
            billed[(service, operation)] += count
        elif service == "sqs" and operation in _SQS_POLLED:
            billed[(service, operation)] += count
            billed[(service, "ReceiveMessage (one per delete, estimated)")] += count
    return billed


def price_call(service: str, operation: str, count: float, p: dict[str, Any]) -> tuple[str, float]:
    """(cost line, dollars) for `count` calls of one operation."""
    if service == "dynamodb":
        if operation in _DDB_READS:
            return "DynamoDB", count * _DDB_READS[operation] * p["dynamodb"]["perMillionReadRequestUnits"] / MILLION
        if operation in _DDB_WRITES:
            return "DynamoDB", count * _DDB_WRITES[operation] * p["dynamodb"]["perMillionWriteRequestUnits"] / MILLION
        return "DynamoDB", 0.0
    if service == "s3":
        if operation.startswith(("PUT", "POST")) or operation == "GET bucket":
            return "S3", count * p["s3"]["perThousandPutCopyPostList"] / 1000
        if operation.startswith("DELETE"):
            return "S3", 0.0
        return "S3", count * p["s3"]["perThousandGetAndOther"] / 1000
    if service == "sqs":
        return "SQS", count * p["sqs"]["perMillionRequests"] / MILLION
    if service == "sns":
        return "SNS", count * p["sns"]["perMillionPublishes"] / MILLION if operation.startswith("Publish") else 0.0
    if service == "kms":
        return "KMS", count * p["kms"]["perTenThousandRequests"] / 10_000
    if service == "events":
        return "EventBridge", count * p["eventBridge"][
            "perMillionCustomEvents"
        ] / MILLION if operation == "PutEvents" else 0.0
    if service == "firehose":
        rounding_gb = p["firehose"]["recordRoundingKb"] * 1024 / 1024**3
        return "Firehose", count * rounding_gb * p["firehose"]["perGbIngestedDirectPut"]
    if service == "states":
        return "Step Functions API calls (free)", 0.0  # transitions are priced below
    if service == "lambda":
        return "Lambda Invoke API calls (free)", 0.0  # the invocation is priced from its REPORT
    if service == "sagemaker":
        return "(SageMaker: model compute, not priced here)", 0.0
    return f"({service}: not priced)", 0.0


def lambda_cost(invocations: list[Invocation], p: dict[str, Any], weight: float = 1.0) -> dict[str, float]:
    return {
        "Lambda requests": weight * len(invocations) * p["lambda"]["perMillionRequests"] / MILLION,
        "Lambda GB-s": weight * sum(i.gb_seconds for i in invocations) * p["lambda"]["perGbSecondArm64"],
    }


def prediction_cost(
    window: Window,
    *,
    api_requests: int = 1,
    authorizer: Window | None = None,
    transitions: int = 0,
    prices: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Per-service dollars and call counts for one prediction."""
    p = prices or load_prices()
    dollars: dict[str, float] = defaultdict(float)
    calls: dict[str, float] = defaultdict(float)
    dollars["API Gateway"] += api_requests * p["apiGateway"]["restPerMillionRequests"] / MILLION
    calls["API Gateway"] += api_requests

    def add(counts: Counter[tuple[str, str]] | dict[tuple[str, str], float], weight: float = 1.0) -> None:
        for (service, operation), count in counts.items():
            line, cost = price_call(service, operation, count * weight, p)
            dollars[line] += cost
            calls[line] += count * weight

    add(window.counts())
    add(_local_billed(window))
    invocations = window.invocations
    for line, cost in lambda_cost(invocations, p).items():
        dollars[line] += cost
    calls["Lambda requests"] += len(invocations)
    calls["Lambda GB-s"] += sum(i.gb_seconds for i in invocations)
    if authorizer is not None:
        add(authorizer.counts(), api_requests)
        for line, cost in lambda_cost(authorizer.invocations, p, api_requests).items():
            dollars[line] += cost
        calls["Lambda requests"] += api_requests * len(authorizer.invocations)
        calls["Lambda GB-s"] += api_requests * sum(i.gb_seconds for i in authorizer.invocations)
    dollars["Step Functions transitions"] += transitions * p["stepFunctions"]["perThousandStandardTransitions"] / 1000
    calls["Step Functions transitions"] += transitions
    return {"dollars": dict(dollars), "calls": dict(calls), "total": sum(dollars.values())}


def print_costs(title: str, costs: dict[str, dict[str, Any]], prices: dict[str, Any]) -> None:
    """A table: one row per AWS service, one column per kind of prediction ($ per 1M)."""
    names = list(costs)
    lines = sorted({line for cost in costs.values() for line in (*cost["dollars"], *cost["calls"])})
    print(f"\n{title} ({prices['region']} list prices as of {prices['asOf']}, benchmarks/prices.json)")
    header = "".join(f" | {name:>28}" for name in names)
    print(f"  {'service':<44}{header}")
    print(f"  {'':<44}" + "".join(f" | {'per prediction · $ per 1M':>28}" for _ in names))
    for line in lines:
        cells = ""
        for name in names:
            count = costs[name]["calls"].get(line, 0.0)
            cost = costs[name]["dollars"].get(line, 0.0) * MILLION
            shown = f"{count:g}" if math.isclose(count, round(count)) else f"{count:.3f}"
            cells += f" | {shown:>10} · ${cost:>14.2f}"
        print(f"  {line:<44}{cells}")
    print(f"  {'total':<44}" + "".join(f" | {'':>10}   ${costs[n]['total'] * MILLION:>14.2f}" for n in names))
