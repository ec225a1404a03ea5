"""Measured, not asserted: latency, throughput and the AWS calls one prediction costs, on the
local stack. Prints numbers and ratios; nothing here passes or fails.

    make benchmark            # or: .venv/bin/python -m benchmarks.run [--samples 20]

The local stack runs every component on this machine, so the absolute numbers say more about the
overhead of the architecture's hops (S3 event → SQS → Lambda → endpoint → SNS → Lambda) than about
AWS, where each hop adds network and service latency of its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks import authorizer, calls, capture, cold_import, costs, decisions, load, monitor, summary_table
from tests.e2e.client import ChorusClient, digit_pixels, digit_png
from tests.e2e.conftest import RunningStack
from tests.support.webhook_receiver import WebhookReceiver

SFN_PRICE_PER_TRANSITION = 0.025 / 1000  # Standard workflows, us-east-1 list price


def timed(client: ChorusClient, body: dict[str, Any], upload: bytes | None = None) -> float:
    started = time.perf_counter()
    created = client.create(body)
    if upload is not None:
        client.upload(created, upload)
    deadline = time.monotonic() + 120
    while (status := client.get(created["id"])["status"]) not in {"succeeded", "failed", "canceled", "expired"}:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{body['service']} prediction {created['id']} still {status}")
        time.sleep(0.02)
    if status != "succeeded":
        raise RuntimeError(f"{body['service']} prediction {created['id']} {status}")
    return time.perf_counter() - started


def summary(name: str, samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    stats = {"p50": statistics.median(ordered), "p95": p95, "min": ordered[0]}
    print(
        f"  {name:<34} p50 {stats['p50'] * 1000:7.0f} ms   p95 {p95 * 1000:7.0f} ms   min {ordered[0] * 1000:6.0f} ms"
    )
    return stats


def latency(client: ChorusClient, samples: int) -> dict[str, dict[str, float]]:
    image, _ = digit_png(7, size=64)
    pixels, _ = digit_pixels(7)
    cases = {
        "digits-svm (sync), upload": ({"service": "digits-svm", "contentType": "image/png"}, image),
        "digits-svm (sync), inline JSON": ({"service": "digits-svm", "input": {"pixels": pixels}}, None),
        "digits-forest (async), upload": ({"service": "digits-forest", "contentType": "image/png"}, image),
        "digits-forest (async), inline JSON": ({"service": "digits-forest", "input": {"pixels": pixels}}, None),
        "digits-ensemble, upload": ({"service": "digits-ensemble", "contentType": "image/png"}, image),
        "digits-ensemble, inline JSON": ({"service": "digits-ensemble", "input": {"pixels": pixels}}, None),
    }
    print(f"\nEnd-to-end latency, submit → succeeded seen by a polling client ({samples} sequential each)")
    results = {}
    for name, (body, upload) in cases.items():
        timed(client, body, upload)  # warm: the first call pays the workers' cold starts
        results[name] = summary(name, [timed(client, body, upload) for _ in range(samples)])
    return results


def throughput(client: ChorusClient, count: int, service: str | None = None) -> float:
    def one(i: int) -> None:
        pixels, _ = digit_pixels(i)
        name = service or ("digits-svm" if i % 2 else "digits-forest")
        created = client.create({"service": name, "input": {"pixels": pixels}})
        deadline = time.monotonic() + 300
        while client.get(created["id"])["status"] not in {"succeeded", "failed"}:
            if time.monotonic() > deadline:
                raise RuntimeError("prediction did not finish")
            time.sleep(0.1)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(one, range(count)))
    elapsed = time.perf_counter() - started
    label = service or "svm + forest"
    print(f"  {count} concurrent {label:<22} {elapsed:6.1f} s   {count / elapsed:5.1f} predictions/s")
    return count / elapsed


def ensemble_cost(stack: RunningStack, client: ChorusClient) -> dict[str, Any]:
    pixels, _ = digit_pixels(11)
    receiver = WebhookReceiver()
    time.sleep(2)
    recorder = calls.Recorder(stack)
    recorder.start()
    # A webhook tells us it finished, so no status polling is counted in the cost.
    created = client.create(
        {
            "service": "digits-ensemble",
            "input": {"pixels": pixels},
            "callback": {"type": "webhook", "url": receiver.url},
        }
    )
    deadline = time.monotonic() + 120
    while not receiver.received:
        if time.monotonic() > deadline:
            raise RuntimeError("no webhook arrived")
        time.sleep(0.05)
    time.sleep(2)  # let the last callbacks settle
    window = recorder.take()
    counted = window.calls
    receiver.close()
    finished = json.loads(receiver.received[0].body)
    sfn = stack.client("stepfunctions")
    history = sfn.get_execution_history(executionArn=_execution_arn(sfn, created["id"]), maxResults=1000)["events"]
    transitions = sum(1 for e in history if e["type"].endswith("StateEntered"))
    print(f"\nOne digits-ensemble prediction (inline JSON, webhook callback, status {finished['status']})")
    print(f"  Step Functions state transitions: {transitions}  (≈ ${transitions * SFN_PRICE_PER_TRANSITION:.6f})")
    product = [c for c in counted if c["caller"] in {"functions", "stepfunctions"}]
    by_service = Counter()
    for call in product:
        by_service[call["service"]] += call["count"]
    print(f"  AWS API calls made by the product (functions + state machine): {sum(by_service.values())}")
    for call in product:
        print(f"    {call['caller']:<13} {call['service']:<10} {call['operation']:<24} {call['count']}")
    emulated = sum(c["count"] for c in counted if c["caller"] == "local")
    print(f"  (plus {emulated} calls the local stack makes standing in for AWS-internal work: SQS polling,")
    print("   SNS delivery, the SageMaker endpoints' own S3 reads/writes and notifications)")
    return {
        "transitions": transitions,
        "calls": sum(by_service.values()),
        "byService": dict(by_service),
        "updateItem": window.operation("dynamodb", "UpdateItem"),
        "window": window,
    }


def _execution_arn(sfn: Any, name: str) -> str:
    for machine in sfn.list_state_machines()["stateMachines"]:
        if machine["name"].endswith("-digits-ensemble"):
            return str(machine["stateMachineArn"]).replace(":stateMachine:", ":execution:") + f":{name}"
    raise RuntimeError("digits-ensemble state machine not found")


def _count_without_capture(plain: RunningStack) -> dict[str, calls.Window]:
    """The counted predictions again, on the stack whose registry captures nothing."""
    client = plain.api()
    windows = {name: calls.single_model(plain, client, name) for name in calls.SINGLE_MODELS}
    pixels, _ = digit_pixels(3)
    client.wait(client.create({"service": "digits-ensemble", "input": {"pixels": pixels}})["id"])  # warm
    print("\n(the same count on the stack without capture)")
    windows["digits-ensemble"] = ensemble_cost(plain, client)["window"]
    return windows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--decision-samples", type=int, default=120, help="held-out digits for cascade vs ensemble")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args()
    started = time.perf_counter()
    stack = RunningStack()
    try:
        print(f"local stack ready in {time.perf_counter() - started:.1f} s (models cached)")
        client = stack.api()
        results: dict[str, Any] = {"coldImport": cold_import.cold_import(stack)}
        singles = calls.single_models(stack, client)
        authorizer_run = calls.authorizer_miss(stack)
        # Counted now: the capture stream has just flushed, so no transformation falls in the window.
        pixels, _ = digit_pixels(3)
        client.wait(client.create({"service": "digits-ensemble", "input": {"pixels": pixels}})["id"])  # warm
        ensemble = ensemble_cost(stack, client)
        results["latency"] = latency(client, args.samples)
        print("\nThroughput")
        results["throughput"] = {
            "models": throughput(client, 100),
            "ensemble": throughput(client, 30, "digits-ensemble"),
        }
        print("\nThroughput, all in flight at once (completion read from DynamoDB, no client polling)")
        results["inFlight"] = {
            "models": load.in_flight(stack, client, 200),
            "ensemble": load.in_flight(stack, client, 30, "digits-ensemble"),
        }
        prices = costs.load_prices()
        cost_table = {
            name: costs.prediction_cost(window, authorizer=authorizer_run, prices=prices)
            for name, window in singles.items()
        }
        cost_table["digits-ensemble"] = costs.prediction_cost(
            ensemble["window"], authorizer=authorizer_run, transitions=ensemble["transitions"], prices=prices
        )
        costs.print_costs("Orchestration cost per prediction and per 1M predictions", cost_table, prices)
        results["cost"] = {name: {k: v for k, v in c.items()} for name, c in cost_table.items()}
        results["ensembleCost"] = {k: v for k, v in ensemble.items() if k != "window"}
        results["authorizer"] = authorizer.authorizer_latency(stack)
        results["decisions"] = {
            "cascade": decisions.cascade_against_ensemble(client, args.decision_samples),
            "batch": decisions.batch_latency(client),
        }
        results["capture"] = capture.capture_latency(stack, args.samples, on_plain=_count_without_capture)
        plain = results["capture"].pop("plain") or {}
        calls.print_without_capture(singles, plain)
        if "digits-ensemble" in plain:
            calls.print_window(
                "digits-ensemble: with capture (first stack)", ensemble["window"], plain["digits-ensemble"]
            )
        results["monitor"] = monitor.main(100_000)
        lat = results["latency"]
        print("\nRatios")
        base = max(lat["digits-svm (sync), inline JSON"]["p50"], lat["digits-forest (async), inline JSON"]["p50"])
        print(f"  ensemble p50 / slower base model p50:  {lat['digits-ensemble, inline JSON']['p50'] / base:.2f}")
        print(
            "  async / sync p50 (inline):             "
            f"{lat['digits-forest (async), inline JSON']['p50'] / lat['digits-svm (sync), inline JSON']['p50']:.2f}"
        )
        print(
            "  upload / inline p50 (svm):             "
            f"{lat['digits-svm (sync), upload']['p50'] / lat['digits-svm (sync), inline JSON']['p50']:.2f}"
        )
        summary_table.print_summary(results, singles, plain, ensemble, cost_table)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str))
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
