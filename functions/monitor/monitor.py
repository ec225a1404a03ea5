"""The monitor: a window of a service's capture records judged against its baseline, and baselines
made from reference data.

A window is `[since, until)` of the records' inference times. The scheduled run judges the last
full `windowMinutes` window aligned to the epoch whose records have all arrived: one that ended at
least the capture stream's buffering interval (`bufferSeconds`, the stack's CaptureBufferSeconds)
plus DELIVERY_MARGIN before the run. With 60 and the default 60 s buffer, a run at 13:05 (or 13:59)
judges 12:00-13:00 and a run at 13:01 judges 11:00-12:00: a `rate(1 hour)` schedule, whatever
minute it fires at, judges every hour once and never a window whose last records are still in
Firehose's buffer. A record is read from the hourly prefixes of its arrival, which is up to the
buffering interval (at most 900 s) after its inference time, so the hours read run to `until` plus
that lag. Firehose delivers at least once: records are deduplicated by eventId.

`evaluate` is pure (records in, report out), so the statistics can run over in-memory records;
`run` and `make_baseline` add the bucket (store.py) and the metrics (measures.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chorus.core.clock import iso
from chorus.core.errors import UnknownService as UnknownRegisteredService
from chorus.model.registry import get_registry

import drift
import features
import measures
import store

ARRIVAL_LAG = timedelta(seconds=900)  # Firehose's longest buffering interval
# After its buffering interval, Firehose still runs the transformation and writes to S3.
DELIVERY_MARGIN = timedelta(seconds=120)
CHECK_TYPES = {"missing_fraction": "completeness_check"}  # SageMaker's names; the others drift
Baseline = tuple[dict[str, Any], dict[str, Any]]  # statistics.json, constraints.json


class MonitorError(ValueError):
    """A request the monitor cannot carry out; its class names the reason."""


class UnknownService(MonitorError):
    pass


class BaselineDataInvalid(MonitorError):
    pass


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime

    def contains(self, moment: datetime) -> bool:
        return self.since <= moment < self.until

    def as_dict(self) -> dict[str, str | None]:
        return {"since": iso(self.since), "until": iso(self.until)}


def last_full_window(now: datetime, minutes: int, settle: timedelta = timedelta(0)) -> Window:
    """The last `minutes` window, aligned to the epoch, that ended by `now - settle` (floored to
    the minute)."""
    elapsed = int((now - settle).timestamp()) // 60
    until = datetime.fromtimestamp((elapsed - elapsed % minutes) * 60, UTC)
    return Window(until - timedelta(minutes=minutes), until)


# --- pure: records to a report ------------------------------------------------------------------


@dataclass
class Selection:
    """The capture records inferred within the window, each event once, read lazily (a window's
    records are never all held at once: only their features are). A line that is not JSON or has
    no event id and inference time is counted as unreadable."""

    lines: Iterable[bytes | str]
    window: Window
    unreadable: int = 0
    duplicates: int = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        for line in self.lines:
            try:
                record = json.loads(line)
                event = record["eventMetadata"]
                event_id, moment = str(event["eventId"]), datetime.fromisoformat(event["inferenceTime"])
            except (ValueError, TypeError, KeyError):
                self.unreadable += 1
                continue
            if moment.tzinfo is None:
                self.unreadable += 1
            elif self.window.contains(moment):
                if event_id in seen:
                    self.duplicates += 1
                else:
                    seen.add(event_id)
                    yield record


def evaluate(records: Iterable[Mapping[str, Any]], baseline: Baseline | None) -> dict[str, Any]:
    """The window's statistics and, against the baseline, its violations and every judged
    feature's measure. Records whose features cannot be read are counted, not judged."""
    gathered = drift.Columns()
    labels: list[features.Label | None] = []
    unreadable = 0
    for record in records:
        try:
            row, label = features.from_record(record)
        except features.UnreadableRecord:
            unreadable += 1
            continue
        gathered.add(row)
        labels.append(label)
    columns = gathered.as_dict()
    observed = labels if any(label is not None for label in labels) else None
    if baseline is None:
        return {
            "records": gathered.count,
            "unreadableRecords": unreadable,
            "status": "no_baseline",
            "violations": [],
            "measures": [],
            "tests": 0,
            "alphaPerTest": None,
            "statistics": drift.baseline(columns, observed),
        }
    statistics, limits = baseline
    judged = drift.report(statistics, limits, columns, observed)
    status = ("drift" if judged["violations"] else "ok") if judged["judged"] else "too_few_records"
    return {
        "records": gathered.count,
        "unreadableRecords": unreadable,
        "status": status,
        "violations": judged["violations"],
        "measures": judged["measures"],
        "tests": judged["tests"],
        "alphaPerTest": judged["alphaPerTest"],
        "statistics": judged["statistics"],
    }


def constraint_violations(violations: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """`constraint_violations.json` as SageMaker Model Monitor names them, with our measures."""
    return {
        "violations": [
            {
                "feature_name": v["feature"],
                "constraint_check_type": CHECK_TYPES.get(v["measure"], "baseline_drift_check"),
                "description": f"{v['measure']} {v['value']} is above its threshold {v['threshold']}",
                **v,
            }
            for v in violations
        ]
    }


# --- with the bucket ------------------------------------------------------------------------------


def settled_window(now: datetime, minutes: int, buffer_seconds: int) -> Window:
    """The scheduled run's window: the last full one whose records Firehose has delivered."""
    return last_full_window(now, minutes, timedelta(seconds=buffer_seconds) + DELIVERY_MARGIN)


def services_to_monitor(service: str | None) -> list[str]:
    """The named service, or every registered service that declares capture."""
    registry = get_registry()
    if service is not None:
        try:
            return [registry.get(service).name]
        except UnknownRegisteredService as error:
            raise UnknownService(str(error)) from error
    return [s.name for s in registry.services if getattr(s, "capture", None) is not None]


def _lines(service: str, window: Window) -> Iterator[bytes]:
    for key in store.capture_keys(service, window.since, window.until + ARRIVAL_LAG):
        yield from store.read_lines(key) or []


def run(service: str, window: Window, now: datetime) -> dict[str, Any]:
    """Judge one service's window, write its report files and publish its metrics."""
    baseline = store.read_baseline(service)
    selection = Selection(_lines(service, window), window)
    result = evaluate(selection, baseline)
    keys = store.report_keys(service, window.since, window.until)
    report = {
        "service": service,
        "window": window.as_dict(),
        "createdAt": iso(now),
        "records": result["records"],
        "unreadableRecords": selection.unreadable + result["unreadableRecords"],
        "status": result["status"],
        "violations": result["violations"],
        "tests": result["tests"],
        "alphaPerTest": result["alphaPerTest"],
        "baseline": None if baseline is None else _about(baseline[0]),
        "keys": {"statistics": keys.statistics, "violations": keys.violations, "report": keys.report},
    }
    statistics = {
        "service": service,
        "window": report["window"],
        "createdAt": report["createdAt"],
        "records": report["records"],
        **result["statistics"],
    }
    store.write_report(keys, statistics, constraint_violations(result["violations"]), report)
    measures.window_judged(service, result["records"], len(result["violations"]), result["measures"])
    return report


def _about(statistics: Mapping[str, Any]) -> dict[str, Any]:
    return {"createdAt": statistics.get("createdAt"), "records": statistics.get("records")}


def make_baseline(service: str, data_key: str, now: datetime) -> dict[str, Any]:
    """A service's baseline from a JSON-lines object of reference records (features.from_record's
    shapes). A line that cannot be read fails the whole baseline, naming it: a baseline that
    silently skipped part of its data would judge every later window against the wrong reference."""
    (name,) = services_to_monitor(service)
    lines = store.read_lines(data_key)
    if lines is None:
        raise BaselineDataInvalid(f"no object {store.location(store.bucket(), data_key)}")
    gathered = drift.Columns()
    labels: list[features.Label | None] = []
    for number, line in enumerate(lines, start=1):
        try:
            row, label = features.from_record(json.loads(line))
        except ValueError as error:  # UnreadableRecord and JSONDecodeError are both ValueErrors
            raise BaselineDataInvalid(f"line {number} of {data_key}: {error}") from error
        gathered.add(row)
        labels.append(label)
    if not gathered.count:
        raise BaselineDataInvalid(f"{data_key} holds no records")
    observed = labels if any(label is not None for label in labels) else None
    statistics = {"createdAt": iso(now), "records": gathered.count, **drift.baseline(gathered.as_dict(), observed)}
    constraints = drift.constraints(statistics)
    statistics_key, constraints_key = store.write_baseline(name, statistics, constraints)
    return {
        "service": name,
        "records": gathered.count,
        "features": len(statistics["features"]),
        "statisticsKey": statistics_key,
        "constraintsKey": constraints_key,
    }
