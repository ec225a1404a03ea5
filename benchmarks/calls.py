"""The AWS calls one prediction costs, counted at the local stack's gateway (`/_local/calls`), and
the Lambda invocations it caused (the `REPORT` lines the local runtime prints, as Lambda does).

The product's calls are those of callers `functions` (Lambda workers) and `stepfunctions` (the state
machines' own integrations). Waiting for a prediction must not add to them, so nothing here polls
the API: a single-model prediction is left to settle for a fixed time and its record is then read
straight from DynamoDB with this process's own boto3 client, whose calls the gateway files under
`clients` (chorus_local/gateway.py `_caller`), which is not counted.

Data capture is part of the product's cost when a service captures (the demo registry captures
100 %): the Firehose `PutRecord`, and the capture transformation Lambda's S3 reads when the stream
flushes. The local stack flushes after 1 s (`CaptureBufferSeconds`, chorus_local/stack.py), so both
fall inside a prediction's window; the same prediction is counted again on the stack without
capture that benchmarks/capture.py starts, and the difference is the capture path.

Part of `make benchmark`; prints numbers, asserts nothing.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests

from tests.e2e.client import ChorusClient, digit_pixels
from tests.e2e.conftest import RunningStack

PRODUCT = frozenset({"functions", "stepfunctions"})
TERMINAL = frozenset({"succeeded", "failed", "canceled", "expired", "skipped"})
CAPTURE_FUNCTION = "capture"  # the capture transformation's log label
_REPORT = re.compile(
    r"^\[(?P<label>[^\]]+)\] REPORT RequestId: \S+\s+Duration: (?P<duration>[\d.]+) ms"
    r".*?Memory Size: (?P<memory>\d+) MB"
)
_FLUSH = re.compile(r"(?P<records>\d+) records in, \d+ objects written, \d+ failed")


@dataclass(frozen=True)
class Invocation:
    """One Lambda invocation as its REPORT line tells it."""

    function: str
    duration_ms: float
    memory_mb: int

    @property
    def gb_seconds(self) -> float:
        # Lambda bills duration rounded up to the millisecond.
        billed_ms = int(self.duration_ms) + (0 if self.duration_ms.is_integer() else 1)
        return billed_ms / 1000 * self.memory_mb / 1024


@dataclass
class Window:
    """What happened between two moments: the calls (by caller, service and operation) and the
    Lambda invocations the stack log reports."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    invocations: list[Invocation] = field(default_factory=list)

    def counts(self, callers: frozenset[str] = PRODUCT) -> Counter[tuple[str, str]]:
        found: Counter[tuple[str, str]] = Counter()
        for call in self.calls:
            if call["caller"] in callers:
                found[(call["service"], call["operation"])] += call["count"]
        return found

    def total(self, callers: frozenset[str] = PRODUCT) -> int:
        return sum(self.counts(callers).values())

    def by_service(self, callers: frozenset[str] = PRODUCT) -> Counter[str]:
        found: Counter[str] = Counter()
        for (service, _), count in self.counts(callers).items():
            found[service] += count
        return found

    def operation(self, service: str, operation: str, callers: frozenset[str] = PRODUCT) -> int:
        return self.counts(callers).get((service, operation), 0)


class Recorder:
    """Resets the gateway's call log and remembers where the stack log stood; `take()` returns
    what happened since."""

    def __init__(self, stack: RunningStack) -> None:
        self.stack = stack
        self.url = f"{stack.aws_endpoint_url}/_local/calls"
        self._mark = 0

    def start(self) -> None:
        requests.delete(self.url, timeout=10).raise_for_status()
        self._mark = len(self.stack.logs())

    def log_since(self) -> str:
        return self.stack.logs()[self._mark :]

    def take(self) -> Window:
        calls = requests.get(self.url, timeout=10).json()["calls"]
        return Window(calls=calls, invocations=invocations(self.log_since()))


def invocations(log: str) -> list[Invocation]:
    found = []
    for line in log.splitlines():
        match = _REPORT.match(line)
        if match:
            found.append(Invocation(match["label"], float(match["duration"]), int(match["memory"])))
    return found


def record_status(stack: RunningStack, prediction_id: str) -> str:
    """The prediction's status read from its DynamoDB record (caller `clients`: not counted)."""
    item = stack.client("dynamodb").get_item(
        TableName=stack.resources["PredictionsTable"], Key={"id": {"S": prediction_id}}, ConsistentRead=True
    )
    return str(item.get("Item", {}).get("status", {}).get("S", "missing"))


def wait_by_record(stack: RunningStack, prediction_id: str, settle: float, timeout: float = 60) -> str:
    """Sleep `settle` seconds, then read the record until it is terminal (no API polling)."""
    time.sleep(settle)
    deadline = time.monotonic() + timeout
    while (status := record_status(stack, prediction_id)) not in TERMINAL:
        if time.monotonic() > deadline:
            raise RuntimeError(f"prediction {prediction_id} still {status}")
        time.sleep(0.5)
    return status


def single_model(stack: RunningStack, client: ChorusClient, service: str, settle: float = 3.0) -> Window:
    """One prediction of `service`, inline JSON, no callback, completion read from DynamoDB."""
    pixels, _ = digit_pixels(5)
    recorder = Recorder(stack)
    client.wait(client.create({"service": service, "input": {"pixels": pixels}})["id"])  # warm (polling)
    time.sleep(3)  # its tail, and its capture flush, end before the window opens
    recorder.start()
    created = client.create({"service": service, "input": {"pixels": pixels}})
    status = wait_by_record(stack, created["id"], settle)
    if status != "succeeded":
        raise RuntimeError(f"{service} prediction {created['id']} {status}")
    time.sleep(2)  # what follows the terminal write (notifications, capture put and flush) settles
    return recorder.take()


def print_window(title: str, window: Window, plain: Window | None = None) -> None:
    counts = window.counts()
    print(f"\n{title}")
    for (service, operation), count in sorted(counts.items()):
        print(f"    {service:<14} {operation:<28} {count}")
    total = sum(counts.values())
    dynamodb = window.by_service().get("dynamodb", 0)
    print(f"  product calls, capture path included (PutRecord + transformation): {total}   (DynamoDB {dynamodb})")
    if plain is not None:
        print(
            f"  product calls on the stack without capture:                        {plain.total()}"
            f"   (DynamoDB {plain.by_service().get('dynamodb', 0)})"
        )
        extra = counts - plain.counts()
        print("  the capture path: " + ", ".join(f"{s} {o} {n}" for (s, o), n in sorted(extra.items())))
    functions = Counter(i.function for i in window.invocations)
    print("  Lambda invocations: " + ", ".join(f"{name} x{n}" for name, n in sorted(functions.items())))
    local = window.counts(frozenset({"local"}))
    if local:
        print(
            "  AWS-internal work the local stack stands in for (caller local): "
            + ", ".join(f"{s} {o} {n}" for (s, o), n in sorted(local.items()))
        )


SINGLE_MODELS = {"digits-forest": "async", "digits-svm": "sync"}


def single_models(stack: RunningStack, client: ChorusClient) -> dict[str, Window]:
    """Row 1 of the issue: digits-forest (async) and digits-svm (sync), one prediction each."""
    print("\nAWS calls by the product per single-model prediction (inline JSON, no callback, no polling:")
    print(" completion read from DynamoDB by the benchmark, caller `clients`, not counted)")
    windows = {name: single_model(stack, client, name) for name in SINGLE_MODELS}
    for name, window in windows.items():
        print_window(
            f"One {name} ({SINGLE_MODELS[name]}) prediction: product calls (functions + state machines)", window
        )
    return windows


def print_without_capture(windows: dict[str, Window], plain: dict[str, Window]) -> None:
    print("\nThe same predictions with and without data capture (the second stack captures nothing)")
    for name, window in windows.items():
        if name in plain:
            print_window(f"{name}: with capture (first stack)", window, plain[name])


def authorizer_miss(stack: RunningStack) -> Window:
    """What one authorizer run costs: a fresh token's first request minus its second (cached)."""
    from chorus_cli import target

    target.local(stack.ready_file)
    from chorus.adapters import tokens as token_store
    from chorus.model.tenancy import Scope

    _, plaintext = token_store.create_token("local", [Scope.READ], created_by="benchmark")
    headers = {"Authorization": f"Bearer {plaintext}"}
    url = f"{stack.api_url}/services"
    recorder = Recorder(stack)
    taken = []
    for _ in range(2):
        recorder.start()
        requests.get(url, headers=headers, timeout=30).raise_for_status()
        time.sleep(0.5)
        taken.append(recorder.take())
    miss, hit = taken
    only = miss.counts() - hit.counts()
    window = Window(
        calls=[{"caller": "functions", "service": s, "operation": o, "count": n} for (s, o), n in sorted(only.items())],
        invocations=[i for i in miss.invocations if i.function == "authorizer"],
    )
    print("\nAuthorizer run (a fresh token's first request minus its cached second):")
    print("  " + ", ".join(f"{s} {o} {n}" for (s, o), n in sorted(only.items())) + f"   ({sum(only.values())} calls)")
    return window
