"""Throughput with N predictions in flight: all submitted at once (one thread each), completion
read straight from DynamoDB by one watcher (BatchGetItem through the gateway, caller `clients`),
so no client polling loads the API or the functions. Predictions per second = N / (first submit →
last terminal record). Part of `make benchmark`; prints numbers, asserts nothing."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.calls import TERMINAL
from tests.e2e.client import ChorusClient, digit_pixels
from tests.e2e.conftest import RunningStack


def _statuses(stack: RunningStack, ids: list[str]) -> dict[str, str]:
    dynamodb, table = stack.client("dynamodb"), stack.resources["PredictionsTable"]
    found: dict[str, str] = {}
    for start in range(0, len(ids), 100):
        keys = [{"id": {"S": i}} for i in ids[start : start + 100]]
        request: dict[str, Any] = {
            table: {"Keys": keys, "ProjectionExpression": "id, #s", "ExpressionAttributeNames": {"#s": "status"}}
        }
        while request:
            answer = dynamodb.batch_get_item(RequestItems=request)
            for item in answer["Responses"].get(table, []):
                found[item["id"]["S"]] = item.get("status", {}).get("S", "")
            request = answer.get("UnprocessedKeys") or {}
    return found


def in_flight(stack: RunningStack, client: ChorusClient, count: int, service: str | None = None) -> float:
    def submit(i: int) -> str:
        pixels, _ = digit_pixels(i)
        name = service or ("digits-svm" if i % 2 else "digits-forest")
        return str(client.create({"service": name, "input": {"pixels": pixels}})["id"])

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=count) as pool:
        pending = set(pool.map(submit, range(count)))
    failed = 0
    deadline = time.monotonic() + 600
    while pending:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} predictions did not finish")
        for prediction_id, status in _statuses(stack, sorted(pending)).items():
            if status in TERMINAL:
                pending.discard(prediction_id)
                failed += status != "succeeded"
        if pending:
            time.sleep(0.1)
    elapsed = time.perf_counter() - started
    label = service or "svm + forest"
    note = f"   ({failed} not succeeded)" if failed else ""
    print(f"  {count} in flight, {label:<20} {elapsed:6.1f} s   {count / elapsed:5.1f} predictions/s{note}")
    return count / elapsed
