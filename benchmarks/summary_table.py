"""The final table of `make benchmark`: exactly the rows of the performance issue (#13), each as
measured in this run next to its target."""

from __future__ import annotations

from typing import Any

from benchmarks.calls import Window

MILLION = 1_000_000


def _plain(plain: dict[str, Window], name: str) -> str:
    """`N (DynamoDB D)` counted on the stack without capture, or `?`."""
    if name not in plain:
        return "?"
    return f"{plain[name].total()} (DynamoDB {plain[name].by_service().get('dynamodb', 0)})"


def print_summary(
    results: dict[str, Any],
    singles: dict[str, Window],
    plain: dict[str, Window],
    ensemble: dict[str, Any],
    cost_table: dict[str, dict[str, Any]],
) -> None:
    forest, svm = singles["digits-forest"], singles["digits-svm"]
    ens: Window = ensemble["window"]
    lat = results["latency"]
    cold = results.get("coldImport") or {}
    ratios = cold.get("ratios") or {}
    slowest = max(ratios.values()) if ratios else float("nan")
    fastest = min(ratios.values()) if ratios else float("nan")
    seconds = list((cold.get("functions") or {}).values())
    single_p50 = lat["digits-forest (async), inline JSON"]["p50"]
    sync_p50 = lat["digits-svm (sync), inline JSON"]["p50"]
    ensemble_p50 = lat["digits-ensemble, inline JSON"]["p50"]
    single_cost = max(cost_table["digits-forest"]["total"], cost_table["digits-svm"]["total"]) * MILLION
    rows = [
        (
            "AWS calls by the product per single-model prediction (inline input, no callback, no client polling)",
            f"with capture (PutRecord + transformation's reads): {forest.total()} async, {svm.total()} sync "
            f"(DynamoDB {forest.by_service().get('dynamodb', 0)} / {svm.by_service().get('dynamodb', 0)}); "
            f"without capture: {_plain(plain, 'digits-forest')} async, {_plain(plain, 'digits-svm')} sync",
            "≤ 6 async, ≤ 8 sync (DynamoDB ≤ 3)",
        ),
        (
            "AWS calls per `digits-ensemble` prediction (webhook callback)",
            f"{ens.total()} (DynamoDB {ens.by_service().get('dynamodb', 0)}, of them "
            f"{ens.operation('dynamodb', 'UpdateItem')} UpdateItem), capture included; "
            f"without capture: {_plain(plain, 'digits-ensemble')}",
            "≤ 40 (DynamoDB ≤ 20)",
        ),
        (
            "orchestration cost per 1M predictions at list prices (API Gateway, authorizer, Lambda requests and "
            "GB-s, DynamoDB, S3, SQS, SNS, Step Functions, Firehose)",
            f"${single_cost:.2f} single (forest ${cost_table['digits-forest']['total'] * MILLION:.2f}, "
            f"svm ${cost_table['digits-svm']['total'] * MILLION:.2f}), "
            f"${cost_table['digits-ensemble']['total'] * MILLION:.2f} ensemble",
            "≤ $12 single, ≤ $150 ensemble",
        ),
        (
            "cold import of a function's handler module",
            (
                f"{min(seconds):.2f}-{max(seconds):.2f} s, {fastest:.1f}-{slowest:.1f}x a bare `import boto3` "
                f"({cold['boto3']:.2f} s) in the same run"
            )
            if seconds
            else "not measured",
            "≤ 1.5x `import boto3`",
        ),
        (
            "throughput, 200 single-model predictions in flight",
            f"{results['inFlight']['models']:.1f} per second",
            "≥ 25 per second",
        ),
        (
            "throughput, 30 ensembles in flight",
            f"{results['inFlight']['ensemble']:.1f} per second",
            "≥ 4 per second",
        ),
        (
            "p50 submit → succeeded, single model / ensemble",
            f"{single_p50 * 1000:.0f} ms async, {sync_p50 * 1000:.0f} ms sync / {ensemble_p50 * 1000:.0f} ms",
            "≤ 60 ms / ≤ 300 ms",
        ),
    ]
    print("\nSummary: the rows of the performance issue, measured in this run")
    print("| figure | measured | target |")
    print("|---|---|---|")
    for figure, measured, target in rows:
        print(f"| {figure} | {measured} | {target} |")
    base = max(single_p50, sync_p50)
    print(f"\n  ensemble p50 / slowest model p50:        {ensemble_p50 / base:.2f}")
    if ratios:
        print(
            f"  cold import / `import boto3`:            {fastest:.2f}-{slowest:.2f}"
            f" (worst: {max(ratios, key=ratios.__getitem__)})"
        )
