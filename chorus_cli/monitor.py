"""`chorus admin monitor …`: a service's drift baseline, and a monitor run now (docs/monitoring.md).

Both invoke the stack's monitor function (MonitorFunction), which owns the statistics; a baseline's
reference data travels through the payloads bucket (Lambda's invocation payload stops at 6 MB).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chorus_cli.target import Target

_SERVICE_HELP = "a service of the registry that declares capture"
# A run reads a whole window; Lambda allows it 15 minutes.
_INVOKE_SECONDS = 910


def moment(value: str) -> datetime:
    """ISO 8601; without a zone it is UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time like 2026-12-03T12:00:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def data_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{value!r} is not a file")
    return path


class MonitorFailed(Exception):
    """The monitor function refused the request or failed (exit 1, with its message)."""


def _require_monitoring(where: Target) -> None:
    missing = [r for r in ("PayloadsBucket", "MonitorFunction") if r not in where.resources]
    if missing:
        raise MonitorFailed(f"{where.description} has no {' or '.join(missing)}: it predates drift monitoring")


def _invoke(where: Target, event: dict[str, Any]) -> Any:
    import boto3
    from botocore.config import Config

    _require_monitoring(where)
    config = Config(read_timeout=_INVOKE_SECONDS, retries={"mode": "standard", "max_attempts": 1})
    answer = boto3.client("lambda", config=config).invoke(
        FunctionName=where.resources["MonitorFunction"], Payload=json.dumps(event).encode()
    )
    body = json.loads(answer["Payload"].read() or b"null")
    if answer.get("FunctionError"):
        message = body.get("errorMessage") if isinstance(body, dict) else None
        raise MonitorFailed(str(message or body))
    return body


def baseline(args: argparse.Namespace, where: Target) -> int:
    from chorus.adapters import monitoring
    from chorus.core.clients import client

    _require_monitoring(where)
    key = monitoring.baseline_key(args.service, "data.jsonl")
    with args.data.open("rb") as body:
        client("s3").put_object(Bucket=monitoring.bucket(), Key=key, Body=body, ContentType="application/x-ndjson")
    summary = _invoke(where, {"action": "baseline", "service": args.service, "dataKey": key})
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(
        f"baseline of {summary['service']} on {where.description}: {summary['records']} records, "
        f"{summary['features']} features"
    )
    print(f"s3://{monitoring.bucket()}/{summary['statisticsKey']}")
    print(f"s3://{monitoring.bucket()}/{summary['constraintsKey']}")
    return 0


def run(args: argparse.Namespace, where: Target) -> int:
    event: dict[str, Any] = {"action": "run", "service": args.service}
    if args.since is not None or args.until is not None:
        # One end given: the other is now, or an hour before the end.
        until = args.until or datetime.now(UTC)
        since = args.since or until - timedelta(hours=1)
        if since >= until:
            raise MonitorFailed(f"--since {since.isoformat()} is not before --until {until.isoformat()}")
        event |= {"since": since.isoformat(), "until": until.isoformat()}
    answer = _invoke(where, event)
    reports = answer.get("reports", []) if isinstance(answer, dict) else []
    if args.json:
        print(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2))
        return 0
    for report in reports:
        _print_report(report)
    return 0


def _print_report(report: dict[str, Any]) -> None:
    window = report.get("window", {})
    print(
        f"{report['service']} {window.get('since')} → {window.get('until')}: {report['status']} "
        f"({report['records']} records, {report.get('tests', 0)} tests, "
        f"p < {report.get('alphaPerTest', 0):.2g} per test)"
    )
    violations = report.get("violations") or []
    if not violations:
        print("no drifted feature" if report["status"] == "ok" else _why(report["status"]))
        return
    rows = [["FEATURE", "MEASURE", "VALUE", "THRESHOLD"]]
    rows += [[v["feature"], v["measure"], f"{v['value']:g}", f"{v['threshold']:g}"] for v in violations]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _why(status: str) -> str:
    return {
        "no_baseline": "no baseline yet: chorus admin monitor baseline SERVICE --data FILE.jsonl",
        "too_few_records": "too few captured records in the window to judge",
    }.get(status, status)


def add_commands(admin: Any, common: list[argparse.ArgumentParser], listing: argparse.ArgumentParser) -> None:
    monitor = admin.add_parser("monitor", help="drift baselines and monitor runs").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    made = monitor.add_parser(
        "baseline",
        parents=[*common, listing],
        help="compute a service's baseline from reference data (JSON Lines: capture records, "
        '{"input": …, "output": …} or {"features": …, "label": …})',
    )
    made.add_argument("service", metavar="SERVICE", help=_SERVICE_HELP)
    made.add_argument("--data", required=True, type=data_file, metavar="FILE.jsonl")
    made.set_defaults(run=baseline)
    now = monitor.add_parser(
        "run",
        parents=[*common, listing],
        help="judge a window of captured predictions now and print the report (default: the last full hour "
        "Firehose has delivered, as the schedule does; --since alone: until now)",
    )
    now.add_argument("service", metavar="SERVICE", help=_SERVICE_HELP)
    now.add_argument("--since", type=moment, metavar="ISO", help="the window's start")
    now.add_argument("--until", type=moment, metavar="ISO", help="the window's end (with --since, default: now)")
    now.set_defaults(run=run)
